"""The slow, obviously-correct NumPy twin of every kernel (no Numba here).

Tests and benchmarks compare the fast kernels against these.  Each function
has the same name and signature as its kernel and is written for clarity:
pad the input explicitly, then loop over the kernel taps ``(kh, kw)``; for a
tap, the input pixels seen by all outputs form one strided slice of the
padded input, ``xp[:, kh*DH : kh*DH + SH*(OH-1) + 1 : SH, ...]``.
Argument parsing (pairs, ``'same'``...) and the output size are shared with
the kernels: ``ConvGeometry`` and ``pool_geometry`` of ``_args``.
"""

import numpy as np

from ._args import ConvGeometry, pool_geometry


def _pad(x, g):
    """``x`` (N, H, W, C) with ``g.pads`` zeros around H and W."""
    return np.pad(x, ((0, 0), (g.PT, g.PB), (g.PL, g.PR), (0, 0)))


def _tap(g, kh, kw):
    """The (rows, cols) slices of the padded input that tap (kh, kw) reads for every
    output pixel ``(oh, ow)`` of the geometry ``g``."""
    return (slice(kh * g.DH, kh * g.DH + g.SH * (g.OH - 1) + 1, g.SH),
            slice(kw * g.DW, kw * g.DW + g.SW * (g.OW - 1) + 1, g.SW))


def im2col(x, kernel_size, stride=1, padding=0, dilation=1):
    """Columns ``(N*OH*OW, KH*KW*C)``, rows ``(n, oh, ow)``, columns ``(kh, kw, c)``."""
    N, H, W, C = x.shape
    g = ConvGeometry(x.shape, kernel_size, stride, padding, dilation)
    xp = _pad(x, g)
    cols = np.zeros((N, g.OH, g.OW, g.KH, g.KW, C), dtype=x.dtype)
    for kh in range(g.KH):
        for kw in range(g.KW):
            rows, columns = _tap(g, kh, kw)
            cols[:, :, :, kh, kw, :] = xp[:, rows, columns, :]
    return cols.reshape(N * g.OH * g.OW, g.KH * g.KW * C)


def col2im(cols, x_shape, kernel_size, stride=1, padding=0, dilation=1):
    """Sum every column back onto the input pixel it was copied from (adjoint of im2col)."""
    N, H, W, C = x_shape
    g = ConvGeometry(x_shape, kernel_size, stride, padding, dilation)
    c = cols.reshape(N, g.OH, g.OW, g.KH, g.KW, C)
    xp = np.zeros((N, H + g.PT + g.PB, W + g.PL + g.PR, C), dtype=cols.dtype)
    for kh in range(g.KH):
        for kw in range(g.KW):
            rows, columns = _tap(g, kh, kw)
            xp[:, rows, columns, :] += c[:, :, :, kh, kw, :]
    return xp[:, g.PT:g.PT + H, g.PL:g.PL + W, :].copy()


def conv2d_forward(x, w, b=None, stride=1, padding=0, dilation=1, groups=1):
    """``y[n, oh, ow, o] = b[o] + sum_{kh, kw, c in group(o)} xp[n, tap] * w[kh, kw, c, o]``."""
    N, H, W, C = x.shape
    KH, KW, CG, O = w.shape
    g = ConvGeometry(x.shape, (KH, KW), stride, padding, dilation)
    OG = O // groups
    xp = _pad(x, g)
    y = np.zeros((N, g.OH, g.OW, O), dtype=x.dtype)
    for kh in range(KH):
        for kw in range(KW):
            rows, columns = _tap(g, kh, kw)
            patch = xp[:, rows, columns, :]
            for k in range(groups):
                cg, og = slice(k * CG, (k + 1) * CG), slice(k * OG, (k + 1) * OG)
                y[..., og] += np.einsum("nhwc,co->nhwo", patch[..., cg], w[kh, kw][:, og])
    if b is not None:
        y += b
    return y


def conv2d_backward_input(gy, w, x_shape, stride=1, padding=0, dilation=1, groups=1):
    """``gx``: each tap sends ``gy @ w[kh, kw].T`` back to the pixels it read."""
    N, H, W, C = x_shape
    KH, KW, CG, O = w.shape
    g = ConvGeometry(x_shape, (KH, KW), stride, padding, dilation)
    OG = O // groups
    gxp = np.zeros((N, H + g.PT + g.PB, W + g.PL + g.PR, C), dtype=gy.dtype)
    for kh in range(KH):
        for kw in range(KW):
            rows, columns = _tap(g, kh, kw)
            for k in range(groups):
                cg, og = slice(k * CG, (k + 1) * CG), slice(k * OG, (k + 1) * OG)
                gxp[:, rows, columns, cg] += np.einsum("nhwo,co->nhwc", gy[..., og],
                                                       w[kh, kw][:, og])
    return gxp[:, g.PT:g.PT + H, g.PL:g.PL + W, :].copy()


def conv2d_backward_weight(x, gy, w_shape, stride=1, padding=0, dilation=1, groups=1):
    """``gw[kh, kw, c, o] = sum_{n, oh, ow} xp[n, tap, g*CG + c] * gy[n, oh, ow, o]``."""
    KH, KW, CG, O = w_shape
    g = ConvGeometry(x.shape, (KH, KW), stride, padding, dilation)
    OG = O // groups
    xp = _pad(x, g)
    gw = np.zeros(tuple(w_shape), dtype=x.dtype)
    for kh in range(KH):
        for kw in range(KW):
            rows, columns = _tap(g, kh, kw)
            patch = xp[:, rows, columns, :]
            for k in range(groups):
                cg, og = slice(k * CG, (k + 1) * CG), slice(k * OG, (k + 1) * OG)
                gw[kh, kw, :, og] = np.einsum("nhwc,nhwo->co", patch[..., cg], gy[..., og])
    return gw


def conv2d_backward_bias(gy):
    """``gb[o] = sum_{n, oh, ow} gy[n, oh, ow, o]``."""
    return gy.sum(axis=(0, 1, 2))


# ----------------------------------------------------------------------
# Depthwise convolution, pooling and BatchNorm.  Window loops run over the
# kernel offsets (kh, kw) as above (``_tap``).  Everything computes in
# float64 and returns the input dtype.

# ------------------------------------------------------------------ depthwise


def depthwise_conv2d_forward(x, w, b=None, stride=1, padding=0, dilation=1):
    N, H, W, C = x.shape
    KH, KW, _, M = w.shape
    g = ConvGeometry(x.shape, (KH, KW), stride, padding, dilation)
    xp = _pad(x.astype(np.float64), g)
    y = np.zeros((N, g.OH, g.OW, C, M))
    for kh in range(KH):
        for kw in range(KW):
            rows, columns = _tap(g, kh, kw)
            patch = xp[:, rows, columns]  # (N, OH, OW, C)
            y += patch[..., None] * w[kh, kw].astype(np.float64)
    y = y.reshape(N, g.OH, g.OW, C * M)
    if b is not None:
        y += b
    return y.astype(x.dtype)


def depthwise_conv2d_backward_input(gy, w, x_shape, stride=1, padding=0, dilation=1):
    N, H, W, C = x_shape
    KH, KW, _, M = w.shape
    g = ConvGeometry(x_shape, (KH, KW), stride, padding, dilation)
    gy5 = gy.astype(np.float64).reshape(N, g.OH, g.OW, C, M)
    gxp = np.zeros((N, H + g.PT + g.PB, W + g.PL + g.PR, C))
    for kh in range(KH):
        for kw in range(KW):
            rows, columns = _tap(g, kh, kw)
            gxp[:, rows, columns] += (gy5 * w[kh, kw]).sum(axis=-1)
    return gxp[:, g.PT:g.PT + H, g.PL:g.PL + W].astype(gy.dtype)


def depthwise_conv2d_backward_weight(x, gy, w_shape, stride=1, padding=0, dilation=1):
    N, H, W, C = x.shape
    KH, KW, _, M = w_shape
    g = ConvGeometry(x.shape, (KH, KW), stride, padding, dilation)
    xp = _pad(x.astype(np.float64), g)
    gy5 = gy.astype(np.float64).reshape(N, g.OH, g.OW, C, M)
    gw = np.zeros((KH, KW, C, M))
    for kh in range(KH):
        for kw in range(KW):
            rows, columns = _tap(g, kh, kw)
            patch = xp[:, rows, columns]
            gw[kh, kw] = np.einsum("nhwc,nhwcm->cm", patch, gy5)
    return gw.astype(x.dtype)


def depthwise_conv2d_backward_bias(gy):
    return gy.astype(np.float64).sum(axis=(0, 1, 2)).astype(gy.dtype)


# -------------------------------------------------------------------- pooling


def max_pool2d_forward(x, kernel_size, stride=None, padding=0):
    """Scan the taps in order ``(kh, kw)``; a tap inside the input replaces the
    running maximum when nothing was taken yet, when it is larger, or when it is
    NaN and the maximum is not (so ties and NaNs keep the first one)."""
    N, H, W, C = x.shape
    g = pool_geometry(x.shape, kernel_size, stride, padding)
    KH, KW, SH, SW, PH, PW, OH, OW = g.KH, g.KW, g.SH, g.SW, g.PT, g.PL, g.OH, g.OW
    best = np.zeros((N, OH, OW, C), dtype=x.dtype)
    argmax = np.zeros((N, OH, OW, C), dtype=np.int64)
    unset = np.ones((N, OH, OW, C), dtype=bool)
    for kh in range(KH):
        ih = np.arange(OH) * SH - PH + kh
        for kw in range(KW):
            iw = np.arange(OW) * SW - PW + kw
            inside = ((ih >= 0) & (ih < H))[:, None] & ((iw >= 0) & (iw < W))[None, :]
            v = x[:, np.clip(ih, 0, H - 1)][:, :, np.clip(iw, 0, W - 1)]
            take = inside[None, :, :, None] & (
                unset | (v > best) | (np.isnan(v) & ~np.isnan(best)))
            best = np.where(take, v, best)
            flat = (ih[:, None] * W + iw[None, :])[None, :, :, None]
            argmax = np.where(take, flat, argmax)
            unset &= ~inside[None, :, :, None]
    return best, argmax


def max_pool2d_backward(gy, argmax, x_shape):
    N, H, W, C = x_shape
    gx = np.zeros((N, H * W, C))
    n = np.arange(N)[:, None, None, None]
    c = np.arange(C)[None, None, None, :]
    np.add.at(gx, (np.broadcast_to(n, gy.shape), argmax, np.broadcast_to(c, gy.shape)),
              gy.astype(np.float64))
    return gx.reshape(N, H, W, C).astype(gy.dtype)


def _avg_divisor(g, count_include_pad):
    """PyTorch's divisor per output pixel ``(OH, OW)``: the window clipped to the
    padded input (``count_include_pad``) or to the input itself."""
    H, W = g.H, g.W
    h0 = np.arange(g.OH) * g.SH - g.PT
    w0 = np.arange(g.OW) * g.SW - g.PL
    h1 = np.minimum(h0 + g.KH, H + g.PB)
    w1 = np.minimum(w0 + g.KW, W + g.PR)
    if count_include_pad:
        return (h1 - h0)[:, None] * (w1 - w0)[None, :]
    h0, w0 = np.maximum(h0, 0), np.maximum(w0, 0)
    h1, w1 = np.minimum(h1, H), np.minimum(w1, W)
    return (h1 - h0)[:, None] * (w1 - w0)[None, :]


def avg_pool2d_forward(x, kernel_size, stride=None, padding=0, count_include_pad=True):
    N, H, W, C = x.shape
    g = pool_geometry(x.shape, kernel_size, stride, padding)
    xp = _pad(x.astype(np.float64), g)
    y = np.zeros((N, g.OH, g.OW, C))
    for kh in range(g.KH):
        for kw in range(g.KW):
            rows, columns = _tap(g, kh, kw)
            y += xp[:, rows, columns]
    div = _avg_divisor(g, count_include_pad)
    return (y / div[None, :, :, None]).astype(x.dtype)


def avg_pool2d_backward(gy, x_shape, kernel_size, stride=None, padding=0,
                        count_include_pad=True):
    N, H, W, C = x_shape
    g = pool_geometry(x_shape, kernel_size, stride, padding)
    div = _avg_divisor(g, count_include_pad)
    share = gy.astype(np.float64) / div[None, :, :, None]
    gxp = np.zeros((N, H + g.PT + g.PB, W + g.PL + g.PR, C))
    for kh in range(g.KH):
        for kw in range(g.KW):
            rows, columns = _tap(g, kh, kw)
            gxp[:, rows, columns] += share
    return gxp[:, g.PT:g.PT + H, g.PL:g.PL + W].astype(gy.dtype)


def global_avg_pool2d_forward(x):
    return x.astype(np.float64).mean(axis=(1, 2)).astype(x.dtype)


def global_avg_pool2d_backward(gy, x_shape):
    N, H, W, C = x_shape
    g = gy.astype(np.float64)[:, None, None, :] / (H * W)
    return np.broadcast_to(g, (N, H, W, C)).astype(gy.dtype)


# ------------------------------------------------------------------ batchnorm


def _affine(weight, bias, C):
    w = np.ones(C) if weight is None else weight.astype(np.float64)
    b = np.zeros(C) if bias is None else bias.astype(np.float64)
    return w, b


def batch_norm_forward_train(x, weight, bias, eps):
    C = x.shape[3]
    x64 = x.astype(np.float64)
    mean = x64.mean(axis=(0, 1, 2))
    var = ((x64 - mean) ** 2).mean(axis=(0, 1, 2))
    invstd = 1.0 / np.sqrt(var + eps)
    w, b = _affine(weight, bias, C)
    y = (x64 - mean) * invstd * w + b
    dt = x.dtype
    return y.astype(dt), mean.astype(dt), var.astype(dt), invstd.astype(dt)


def batch_norm_forward_eval(x, running_mean, running_var, weight, bias, eps):
    C = x.shape[3]
    w, b = _affine(weight, bias, C)
    rm = running_mean.astype(np.float64)
    rv = running_var.astype(np.float64)
    y = (x.astype(np.float64) - rm) / np.sqrt(rv + eps) * w + b
    return y.astype(x.dtype)


def batch_norm_backward(gy, x, mean, invstd, weight):
    C = x.shape[3]
    w, _ = _affine(weight, None, C)
    g = gy.astype(np.float64)
    xhat = (x.astype(np.float64) - mean.astype(np.float64)) * invstd.astype(np.float64)
    gbias = g.sum(axis=(0, 1, 2))
    gweight = (g * xhat).sum(axis=(0, 1, 2))
    gx = w * invstd.astype(np.float64) * (
        g - g.mean(axis=(0, 1, 2)) - xhat * (g * xhat).mean(axis=(0, 1, 2)))
    dt = x.dtype
    return gx.astype(dt), gweight.astype(dt), gbias.astype(dt)


def batch_norm_update_running(running_mean, running_var, mean, var, n, momentum):
    unbiased = var.astype(np.float64) * n / (n - 1)
    running_mean[...] = (1 - momentum) * running_mean + momentum * mean.astype(np.float64)
    running_var[...] = (1 - momentum) * running_var + momentum * unbiased


# ======================================================================
# Fused inference passes (twins of kernels/fused.py)
# ======================================================================


def bias_relu_(y, b):
    """``y = max(y + b, 0)`` over the last axis, in place (NaN stays NaN)."""
    np.maximum(y + b, 0, out=y)
    return y

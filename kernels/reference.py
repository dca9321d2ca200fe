"""The slow, obviously-correct NumPy twin of every kernel (no Numba here).

Tests and benchmarks compare the fast kernels against these.  Each function
has the same name and signature as its kernel and is written for clarity:
pad the input explicitly, then loop over the kernel taps ``(kh, kw)``; for a
tap, the input pixels seen by all outputs form one strided slice of the
padded input, ``xp[:, kh*DH : kh*DH + SH*(OH-1) + 1 : SH, ...]``.
Argument parsing (pairs, ``'same'``...) is shared with the kernels through
``_args``.
"""

import numpy as np

from ._args import conv_output_hw, pair, resolve_padding


def _geometry(x_shape, kernel_size, stride, padding, dilation):
    _, H, W, _ = x_shape
    KH, KW = pair(kernel_size, "kernel_size")
    SH, SW = pair(stride, "stride")
    DH, DW = pair(dilation, "dilation")
    pads = resolve_padding(padding, (KH, KW), (DH, DW), (SH, SW), (H, W))
    OH, OW = conv_output_hw((H, W), (KH, KW), (SH, SW), pads, (DH, DW))
    return KH, KW, SH, SW, DH, DW, pads, OH, OW


def _pad(x, pads):
    PT, PB, PL, PR = pads
    return np.pad(x, ((0, 0), (PT, PB), (PL, PR), (0, 0)))


def _tap(kh, kw, SH, SW, DH, DW, OH, OW):
    """The (rows, cols) slices of the padded input that tap (kh, kw) reads."""
    return (slice(kh * DH, kh * DH + SH * (OH - 1) + 1, SH),
            slice(kw * DW, kw * DW + SW * (OW - 1) + 1, SW))


def im2col(x, kernel_size, stride=1, padding=0, dilation=1):
    """Columns ``(N*OH*OW, KH*KW*C)``, rows ``(n, oh, ow)``, columns ``(kh, kw, c)``."""
    N, H, W, C = x.shape
    KH, KW, SH, SW, DH, DW, pads, OH, OW = _geometry(x.shape, kernel_size, stride,
                                                      padding, dilation)
    xp = _pad(x, pads)
    cols = np.zeros((N, OH, OW, KH, KW, C), dtype=x.dtype)
    for kh in range(KH):
        for kw in range(KW):
            rows, columns = _tap(kh, kw, SH, SW, DH, DW, OH, OW)
            cols[:, :, :, kh, kw, :] = xp[:, rows, columns, :]
    return cols.reshape(N * OH * OW, KH * KW * C)


def col2im(cols, x_shape, kernel_size, stride=1, padding=0, dilation=1):
    """Sum every column back onto the input pixel it was copied from (adjoint of im2col)."""
    N, H, W, C = x_shape
    KH, KW, SH, SW, DH, DW, pads, OH, OW = _geometry(x_shape, kernel_size, stride,
                                                      padding, dilation)
    PT, PB, PL, PR = pads
    c = cols.reshape(N, OH, OW, KH, KW, C)
    xp = np.zeros((N, H + PT + PB, W + PL + PR, C), dtype=cols.dtype)
    for kh in range(KH):
        for kw in range(KW):
            rows, columns = _tap(kh, kw, SH, SW, DH, DW, OH, OW)
            xp[:, rows, columns, :] += c[:, :, :, kh, kw, :]
    return xp[:, PT:PT + H, PL:PL + W, :].copy()


def conv2d_forward(x, w, b=None, stride=1, padding=0, dilation=1, groups=1):
    """``y[n, oh, ow, o] = b[o] + sum_{kh, kw, c in group(o)} xp[n, tap] * w[kh, kw, c, o]``."""
    N, H, W, C = x.shape
    KH, KW, CG, O = w.shape
    _, _, SH, SW, DH, DW, pads, OH, OW = _geometry(x.shape, (KH, KW), stride, padding,
                                                  dilation)
    OG = O // groups
    xp = _pad(x, pads)
    y = np.zeros((N, OH, OW, O), dtype=x.dtype)
    for kh in range(KH):
        for kw in range(KW):
            rows, columns = _tap(kh, kw, SH, SW, DH, DW, OH, OW)
            patch = xp[:, rows, columns, :]
            for g in range(groups):
                cg, og = slice(g * CG, (g + 1) * CG), slice(g * OG, (g + 1) * OG)
                y[..., og] += np.einsum("nhwc,co->nhwo", patch[..., cg], w[kh, kw][:, og])
    if b is not None:
        y += b
    return y


def conv2d_backward_input(gy, w, x_shape, stride=1, padding=0, dilation=1, groups=1):
    """``gx``: each tap sends ``gy @ w[kh, kw].T`` back to the pixels it read."""
    N, H, W, C = x_shape
    KH, KW, CG, O = w.shape
    _, _, SH, SW, DH, DW, pads, OH, OW = _geometry(x_shape, (KH, KW), stride, padding,
                                                  dilation)
    PT, PB, PL, PR = pads
    OG = O // groups
    gxp = np.zeros((N, H + PT + PB, W + PL + PR, C), dtype=gy.dtype)
    for kh in range(KH):
        for kw in range(KW):
            rows, columns = _tap(kh, kw, SH, SW, DH, DW, OH, OW)
            for g in range(groups):
                cg, og = slice(g * CG, (g + 1) * CG), slice(g * OG, (g + 1) * OG)
                gxp[:, rows, columns, cg] += np.einsum("nhwo,co->nhwc", gy[..., og],
                                                       w[kh, kw][:, og])
    return gxp[:, PT:PT + H, PL:PL + W, :].copy()


def conv2d_backward_weight(x, gy, w_shape, stride=1, padding=0, dilation=1, groups=1):
    """``gw[kh, kw, c, o] = sum_{n, oh, ow} xp[n, tap, g*CG + c] * gy[n, oh, ow, o]``."""
    KH, KW, CG, O = w_shape
    _, _, SH, SW, DH, DW, pads, OH, OW = _geometry(x.shape, (KH, KW), stride, padding,
                                                  dilation)
    OG = O // groups
    xp = _pad(x, pads)
    gw = np.zeros(tuple(w_shape), dtype=x.dtype)
    for kh in range(KH):
        for kw in range(KW):
            rows, columns = _tap(kh, kw, SH, SW, DH, DW, OH, OW)
            patch = xp[:, rows, columns, :]
            for g in range(groups):
                cg, og = slice(g * CG, (g + 1) * CG), slice(g * OG, (g + 1) * OG)
                gw[kh, kw, :, og] = np.einsum("nhwc,nhwo->co", patch[..., cg], gy[..., og])
    return gw


def conv2d_backward_bias(gy):
    """``gb[o] = sum_{n, oh, ow} gy[n, oh, ow, o]``."""
    return gy.sum(axis=(0, 1, 2))


# ----------------------------------------------------------------------
# Depthwise convolution, pooling and BatchNorm.  Window loops run over the
# kernel offsets (kh, kw); for each offset a strided slice of the padded input
# holds that tap for every output pixel at once.  Everything computes in
# float64 and returns the input dtype.

def _tap_nhw(kh, kw, SH, SW, DH, DW, OH, OW):
    """Slices of the padded input that tap ``(kh, kw)`` reads for all ``(oh, ow)``."""
    return (slice(None),
            slice(kh * DH, kh * DH + (OH - 1) * SH + 1, SH),
            slice(kw * DW, kw * DW + (OW - 1) * SW + 1, SW))


# ------------------------------------------------------------------ depthwise


def _dw_geometry(x_shape, w_shape, stride, padding, dilation):
    H, W = x_shape[1], x_shape[2]
    KH, KW = w_shape[0], w_shape[1]
    SH, SW = pair(stride, "stride")
    DH, DW = pair(dilation, "dilation")
    pads = resolve_padding(padding, (KH, KW), (DH, DW), (SH, SW), (H, W))
    OH, OW = conv_output_hw((H, W), (KH, KW), (SH, SW), pads, (DH, DW))
    return OH, OW, SH, SW, DH, DW, pads


def _pad_zero(x, pads):
    PT, PB, PL, PR = pads
    return np.pad(x, ((0, 0), (PT, PB), (PL, PR), (0, 0)))


def depthwise_conv2d_forward(x, w, b=None, stride=1, padding=0, dilation=1):
    N, H, W, C = x.shape
    KH, KW, _, M = w.shape
    OH, OW, SH, SW, DH, DW, pads = _dw_geometry(x.shape, w.shape, stride, padding, dilation)
    xp = _pad_zero(x.astype(np.float64), pads)
    y = np.zeros((N, OH, OW, C, M))
    for kh in range(KH):
        for kw in range(KW):
            patch = xp[_tap_nhw(kh, kw, SH, SW, DH, DW, OH, OW)]  # (N, OH, OW, C)
            y += patch[..., None] * w[kh, kw].astype(np.float64)
    y = y.reshape(N, OH, OW, C * M)
    if b is not None:
        y += b
    return y.astype(x.dtype)


def depthwise_conv2d_backward_input(gy, w, x_shape, stride=1, padding=0, dilation=1):
    N, H, W, C = x_shape
    KH, KW, _, M = w.shape
    OH, OW, SH, SW, DH, DW, pads = _dw_geometry(x_shape, w.shape, stride, padding, dilation)
    PT, PB, PL, PR = pads
    gy5 = gy.astype(np.float64).reshape(N, OH, OW, C, M)
    gxp = np.zeros((N, H + PT + PB, W + PL + PR, C))
    for kh in range(KH):
        for kw in range(KW):
            gxp[_tap_nhw(kh, kw, SH, SW, DH, DW, OH, OW)] += (gy5 * w[kh, kw]).sum(axis=-1)
    return gxp[:, PT:PT + H, PL:PL + W].astype(gy.dtype)


def depthwise_conv2d_backward_weight(x, gy, w_shape, stride=1, padding=0, dilation=1):
    N, H, W, C = x.shape
    KH, KW, _, M = w_shape
    OH, OW, SH, SW, DH, DW, pads = _dw_geometry(x.shape, w_shape, stride, padding, dilation)
    xp = _pad_zero(x.astype(np.float64), pads)
    gy5 = gy.astype(np.float64).reshape(N, OH, OW, C, M)
    gw = np.zeros((KH, KW, C, M))
    for kh in range(KH):
        for kw in range(KW):
            patch = xp[_tap_nhw(kh, kw, SH, SW, DH, DW, OH, OW)]
            gw[kh, kw] = np.einsum("nhwc,nhwcm->cm", patch, gy5)
    return gw.astype(x.dtype)


def depthwise_conv2d_backward_bias(gy):
    return gy.astype(np.float64).sum(axis=(0, 1, 2)).astype(gy.dtype)


# -------------------------------------------------------------------- pooling


def _pool_geometry(x_shape, kernel_size, stride, padding):
    KH, KW = pair(kernel_size, "kernel_size")
    SH, SW = (KH, KW) if stride is None else pair(stride, "stride")
    PH, PW = pair(padding, "padding", minimum=0)
    H, W = x_shape[1], x_shape[2]
    OH = (H + 2 * PH - KH) // SH + 1
    OW = (W + 2 * PW - KW) // SW + 1
    return KH, KW, SH, SW, PH, PW, OH, OW


def max_pool2d_forward(x, kernel_size, stride=None, padding=0):
    """Scan the taps in order ``(kh, kw)``; a tap inside the input replaces the
    running maximum when nothing was taken yet, when it is larger, or when it is
    NaN and the maximum is not (so ties and NaNs keep the first one)."""
    N, H, W, C = x.shape
    KH, KW, SH, SW, PH, PW, OH, OW = _pool_geometry(x.shape, kernel_size, stride, padding)
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


def _avg_divisor(H, W, KH, KW, SH, SW, PH, PW, OH, OW, count_include_pad):
    """PyTorch's divisor per output pixel ``(OH, OW)``: the window clipped to the
    padded input (``count_include_pad``) or to the input itself."""
    h0 = np.arange(OH) * SH - PH
    w0 = np.arange(OW) * SW - PW
    h1 = np.minimum(h0 + KH, H + PH)
    w1 = np.minimum(w0 + KW, W + PW)
    if count_include_pad:
        return (h1 - h0)[:, None] * (w1 - w0)[None, :]
    h0, w0 = np.maximum(h0, 0), np.maximum(w0, 0)
    h1, w1 = np.minimum(h1, H), np.minimum(w1, W)
    return (h1 - h0)[:, None] * (w1 - w0)[None, :]


def avg_pool2d_forward(x, kernel_size, stride=None, padding=0, count_include_pad=True):
    N, H, W, C = x.shape
    KH, KW, SH, SW, PH, PW, OH, OW = _pool_geometry(x.shape, kernel_size, stride, padding)
    xp = _pad_zero(x.astype(np.float64), (PH, PH, PW, PW))
    y = np.zeros((N, OH, OW, C))
    for kh in range(KH):
        for kw in range(KW):
            y += xp[_tap_nhw(kh, kw, SH, SW, 1, 1, OH, OW)]
    div = _avg_divisor(H, W, KH, KW, SH, SW, PH, PW, OH, OW, count_include_pad)
    return (y / div[None, :, :, None]).astype(x.dtype)


def avg_pool2d_backward(gy, x_shape, kernel_size, stride=None, padding=0,
                        count_include_pad=True):
    N, H, W, C = x_shape
    KH, KW, SH, SW, PH, PW, OH, OW = _pool_geometry(x_shape, kernel_size, stride, padding)
    div = _avg_divisor(H, W, KH, KW, SH, SW, PH, PW, OH, OW, count_include_pad)
    g = gy.astype(np.float64) / div[None, :, :, None]
    gxp = np.zeros((N, H + 2 * PH, W + 2 * PW, C))
    for kh in range(KH):
        for kw in range(KW):
            gxp[_tap_nhw(kh, kw, SH, SW, 1, 1, OH, OW)] += g
    return gxp[:, PH:PH + H, PW:PW + W].astype(gy.dtype)


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

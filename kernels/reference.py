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

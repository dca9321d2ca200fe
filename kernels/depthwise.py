"""Depthwise 2-D convolution with a channel multiplier, channels-last.

Layouts: input ``x`` is ``(N, H, W, C)``, weight ``w`` is ``(KH, KW, C, M)``
(``M`` is the channel multiplier), output ``y`` is ``(N, OH, OW, C*M)`` with
output channel ``j = c*M + m`` (PyTorch ``groups=C`` and TensorFlow
``depthwise_conv2d`` order).  So ``w.reshape(KH, KW, C*M)`` lines up with the
output channels, and every kernel below works on that flat weight.

For output pixel ``(n, oh, ow)`` and tap ``(kh, kw)`` the input pixel is
``ih = oh*SH - PT + kh*DH``, ``iw = ow*SW - PL + kw*DW``; taps in the padding
contribute nothing.  The loops are direct (no im2col, no loop over groups) and
the innermost loop runs over the contiguous channel axis.

3x3 kernels with stride 1, dilation 1 and multiplier 1 (the MobileNet/Xception
case) use ``_dw3x3_s1``: each output pixel's 9 taps (6 or 3 on border rows and
columns) in one pass, written once with no zero/bias pre-pass.  Their input
gradient is the same kernel applied to ``gy`` with the kernel flipped and padding
``(2 - PT, 2 - PL)``.  Taps in the padding are skipped, as in the general kernels.

Races: the forward pass and the input gradient are parallel over rows that
each thread owns (output rows ``(n, oh)``, input rows ``(n, ih)``: the input
gradient is gathered per input row).  The weight and bias gradients are sums
over all pixels: the ``N*OH`` output rows are cut into a fixed number of
chunks, each chunk adds into its own float64 partial buffer, and the buffers
are summed serially afterwards.  The number of chunks depends only on the
problem size and on ``numba.config.NUMBA_NUM_THREADS`` (fixed per process), not
on ``numba.set_num_threads``: results are bitwise identical whatever the
current thread count.
"""

import numba
import numpy as np
from numba import njit, prange

from ._args import (
    check_nhwc, check_output_grad, check_same_dtype, check_shape4, check_weight, conv_output_hw, pair,
    resolve_padding,
)
from ._config import FASTMATH

__all__ = [
    "depthwise_conv2d_forward", "depthwise_conv2d_backward_input",
    "depthwise_conv2d_backward_weight", "depthwise_conv2d_backward_bias",
]


def _num_chunks(rows):
    """Chunks a reduction over ``rows`` rows is split into (independent of the thread count)."""
    return max(1, min(rows, 4 * numba.config.NUMBA_NUM_THREADS))


# --------------------------------------------------------------------- kernels


@njit(cache=True, fastmath=FASTMATH)
def _valid_range(O, S, offset, size):
    """Return ``(lo, hi)``: the outputs ``lo <= o < hi`` (``0 <= o < O``) whose
    input index ``i = o*S + offset`` lies inside ``0 <= i < size``.

    ``o*S + offset >= 0``  <=>  ``o >= ceil(-offset / S)``;
    ``o*S + offset <= size - 1``  <=>  ``o <= floor((size - 1 - offset) / S)``.
    """
    lo = -(offset // S)  # ceil(-offset / S) with floor division
    hi = (size - 1 - offset) // S + 1
    if lo < 0:
        lo = 0
    if hi > O:
        hi = O
    return lo, hi


@njit(cache=True, fastmath=FASTMATH, parallel=True)
def _dw_forward(x, w, b, y, SH, SW, PT, PL, DH, DW):
    """``y[n, oh, ow, c*M + m] = b[c*M + m] + sum_{kh, kw} x[n, ih, iw, c] * w[kh, kw, c*M + m]``.

    ``w`` is the weight flattened to ``(KH, KW, C*M)``; ``ih = oh*SH - PT + kh*DH``,
    ``iw = ow*SW - PL + kw*DW``.  Parallel over output rows ``r = n*OH + oh``: the
    thread owns ``y[n, oh]``, first fills it with the bias, then adds tap by tap
    (only the ``ow`` range whose ``iw`` is inside the input, from ``_valid_range``).
    """
    N, H, W, C = x.shape
    KH, KW, CM = w.shape
    OH, OW = y.shape[1], y.shape[2]
    M = CM // C
    for r in prange(N * OH):
        n = r // OH
        oh = r - n * OH
        for ow in range(OW):
            for j in range(CM):
                y[n, oh, ow, j] = b[j]
        for kh in range(KH):
            ih = oh * SH - PT + kh * DH
            if ih < 0 or ih >= H:
                continue
            for kw in range(KW):
                lo, hi = _valid_range(OW, SW, kw * DW - PL, W)
                for ow in range(lo, hi):
                    iw = ow * SW - PL + kw * DW
                    if M == 1:
                        for c in range(C):
                            y[n, oh, ow, c] += x[n, ih, iw, c] * w[kh, kw, c]
                    else:
                        for c in range(C):
                            xv = x[n, ih, iw, c]
                            for m in range(M):
                                y[n, oh, ow, c * M + m] += xv * w[kh, kw, c * M + m]


@njit(cache=True, fastmath=FASTMATH, parallel=True)
def _dw_backward_input(gy, w, gx, SH, SW, PT, PL, DH, DW):
    """``gx[n, ih, iw, c] = sum over taps (kh, kw) and m of gy[n, oh, ow, c*M + m] * w[kh, kw, c*M + m]``
    for the output pixels ``(oh, ow)`` whose tap ``(kh, kw)`` reads ``(ih, iw)``.

    Gather by input row, so no two threads write the same pixel: parallel over
    ``t = n*H + ih``; the thread zeroes and owns ``gx[n, ih]``.  Row ``ih`` is read by
    tap ``kh`` of output row ``oh`` when ``s = ih + PT - kh*DH`` is a non-negative
    multiple of ``SH`` and ``oh = s // SH < OH``; within that output row, output
    column ``ow`` adds into ``iw = ow*SW - PL + kw*DW`` (a scatter inside the
    thread's own row).  Input pixels no tap reads (stride > kernel) stay zero.
    """
    N, H, W, C = gx.shape
    KH, KW, CM = w.shape
    OH, OW = gy.shape[1], gy.shape[2]
    M = CM // C
    zero = gx.dtype.type(0)
    for t in prange(N * H):
        n = t // H
        ih = t - n * H
        for iw in range(W):
            for c in range(C):
                gx[n, ih, iw, c] = zero
        for kh in range(KH):
            s = ih + PT - kh * DH
            if s < 0 or s % SH != 0:
                continue
            oh = s // SH
            if oh >= OH:
                continue
            for kw in range(KW):
                lo, hi = _valid_range(OW, SW, kw * DW - PL, W)
                for ow in range(lo, hi):
                    iw = ow * SW - PL + kw * DW
                    if M == 1:
                        for c in range(C):
                            gx[n, ih, iw, c] += gy[n, oh, ow, c] * w[kh, kw, c]
                    else:
                        for c in range(C):
                            acc = zero
                            for m in range(M):
                                acc += gy[n, oh, ow, c * M + m] * w[kh, kw, c * M + m]
                            gx[n, ih, iw, c] += acc


@njit(cache=True, fastmath=FASTMATH, parallel=True)
def _dw_backward_weight(x, gy, partial, SH, SW, PT, PL, DH, DW):
    """Per-chunk weight gradient: ``partial[p, kh, kw, c*M + m]`` (float64, zeroed by
    the caller) ``+= sum x[n, ih, iw, c] * gy[n, oh, ow, c*M + m]`` over the output rows
    ``r = n*OH + oh`` of chunk ``p`` (rows ``p*R//P <= r < (p+1)*R//P``, ``R = N*OH``)
    and all ``ow``, with ``ih, iw`` as in ``_dw_forward``.

    Parallel over chunks: each writes only ``partial[p]``.  One output row's sum over
    ``ow`` is taken in the input dtype (``acc``), then added to the float64 partial.
    The caller sums the partials over ``p``.
    """
    N, H, W, C = x.shape
    P, KH, KW, CM = partial.shape
    OH, OW = gy.shape[1], gy.shape[2]
    M = CM // C
    R = N * OH
    zero = gy.dtype.type(0)
    for p in prange(P):
        acc = np.empty(CM, dtype=gy.dtype)
        for r in range(p * R // P, (p + 1) * R // P):
            n = r // OH
            oh = r - n * OH
            for kh in range(KH):
                ih = oh * SH - PT + kh * DH
                if ih < 0 or ih >= H:
                    continue
                for kw in range(KW):
                    lo, hi = _valid_range(OW, SW, kw * DW - PL, W)
                    if lo >= hi:
                        continue
                    for j in range(CM):
                        acc[j] = zero
                    for ow in range(lo, hi):
                        iw = ow * SW - PL + kw * DW
                        if M == 1:
                            for c in range(C):
                                acc[c] += x[n, ih, iw, c] * gy[n, oh, ow, c]
                        else:
                            for c in range(C):
                                xv = x[n, ih, iw, c]
                                for m in range(M):
                                    acc[c * M + m] += xv * gy[n, oh, ow, c * M + m]
                    for j in range(CM):
                        partial[p, kh, kw, j] += acc[j]


@njit(cache=True, fastmath=FASTMATH, parallel=True)
def _dw3x3_s1(x, w, b, y, PT, PL):
    """3x3, stride 1, dilation 1, multiplier 1: ``y[n, oh, ow, c] = b[c] + sum_{kh, kw < 3}
    x[n, oh - PT + kh, ow - PL + kw, c] * w[3*kh + kw, c]`` (taps outside ``x`` skipped).

    ``w`` is ``(9, C)``; ``y`` gives ``OH, OW`` (any size: the input gradient calls this
    with ``gy`` as ``x``, the flipped kernel and padding ``2 - PT, 2 - PL``).  Parallel over
    output rows ``(n, oh)``, each owned by one thread and written once: the interior
    columns (all 3 column taps inside) sum the 3, 6 or 9 valid taps in one pass over the
    contiguous channel axis; the border columns add tap by tap.
    """
    N, H, W, C = x.shape
    OH, OW = y.shape[1], y.shape[2]
    lo3 = min(max(PL, 0), OW)
    hi3 = max(min(OW, W - 2 + PL), lo3)
    for r in prange(N * OH):
        n = r // OH
        oh = r - n * OH
        yr = y[n, oh]
        ih0 = oh - PT
        khlo = max(0, -ih0)
        khhi = min(3, H - ih0)
        nk = khhi - khlo
        if nk == 3:
            x0 = x[n, ih0]
            x1 = x[n, ih0 + 1]
            x2 = x[n, ih0 + 2]
            for ow in range(lo3, hi3):
                iw = ow - PL
                for c in range(C):
                    yr[ow, c] = (b[c] + x0[iw, c] * w[0, c] + x0[iw + 1, c] * w[1, c]
                                 + x0[iw + 2, c] * w[2, c] + x1[iw, c] * w[3, c]
                                 + x1[iw + 1, c] * w[4, c] + x1[iw + 2, c] * w[5, c]
                                 + x2[iw, c] * w[6, c] + x2[iw + 1, c] * w[7, c]
                                 + x2[iw + 2, c] * w[8, c])
        elif nk == 2:
            x0 = x[n, ih0 + khlo]
            x1 = x[n, ih0 + khlo + 1]
            k0 = 3 * khlo
            for ow in range(lo3, hi3):
                iw = ow - PL
                for c in range(C):
                    yr[ow, c] = (b[c] + x0[iw, c] * w[k0, c] + x0[iw + 1, c] * w[k0 + 1, c]
                                 + x0[iw + 2, c] * w[k0 + 2, c] + x1[iw, c] * w[k0 + 3, c]
                                 + x1[iw + 1, c] * w[k0 + 4, c] + x1[iw + 2, c] * w[k0 + 5, c])
        elif nk == 1:
            x0 = x[n, ih0 + khlo]
            k0 = 3 * khlo
            for ow in range(lo3, hi3):
                iw = ow - PL
                for c in range(C):
                    yr[ow, c] = (b[c] + x0[iw, c] * w[k0, c] + x0[iw + 1, c] * w[k0 + 1, c]
                                 + x0[iw + 2, c] * w[k0 + 2, c])
        else:
            for ow in range(lo3, hi3):
                for c in range(C):
                    yr[ow, c] = b[c]
        for ow in range(OW):
            if ow >= lo3 and ow < hi3:
                continue
            kwlo = max(0, PL - ow)
            kwhi = min(3, W + PL - ow)
            if nk == 3 and kwhi - kwlo == 2:
                # A border column of a full row: its 6 taps in one pass.
                x0 = x[n, ih0]
                x1 = x[n, ih0 + 1]
                x2 = x[n, ih0 + 2]
                iw = ow - PL + kwlo
                for c in range(C):
                    yr[ow, c] = (b[c] + x0[iw, c] * w[kwlo, c] + x0[iw + 1, c] * w[kwlo + 1, c]
                                 + x1[iw, c] * w[kwlo + 3, c] + x1[iw + 1, c] * w[kwlo + 4, c]
                                 + x2[iw, c] * w[kwlo + 6, c] + x2[iw + 1, c] * w[kwlo + 7, c])
                continue
            for c in range(C):
                yr[ow, c] = b[c]
            for kh in range(khlo, khhi):
                xr = x[n, ih0 + kh]
                for kw in range(3):
                    iw = ow - PL + kw
                    if iw >= 0 and iw < W:
                        for c in range(C):
                            yr[ow, c] += xr[iw, c] * w[3 * kh + kw, c]


@njit(cache=True, fastmath=FASTMATH, parallel=True)
def _column_sums(a, partial):
    """``partial[p, j] = sum over rows i of chunk p of a[i, j]`` (float64).

    ``a`` is ``(R, K)``; chunk ``p`` holds rows ``p*R//P <= i < (p+1)*R//P``.
    Parallel over chunks, each writing only ``partial[p]``; the caller sums over ``p``.
    """
    R, K = a.shape
    P = partial.shape[0]
    for p in prange(P):
        for j in range(K):
            partial[p, j] = 0.0
        for i in range(p * R // P, (p + 1) * R // P):
            for j in range(K):
                partial[p, j] += a[i, j]


# -------------------------------------------------------------------- checking


def _check_channels(C, w_shape, x_name, w_name):
    if w_shape[2] != C:
        raise ValueError(f"channel mismatch: {w_name} (KH, KW, C, M) = {tuple(w_shape)} expects "
                         f"C={w_shape[2]} input channels, but {x_name} has C={C}")


def _geometry(x_shape, w_shape, stride, padding, dilation):
    """Return ``(OH, OW, (SH, SW, PT, PL, DH, DW))`` for an input and a weight shape."""
    H, W = x_shape[1], x_shape[2]
    KH, KW = w_shape[0], w_shape[1]
    SH, SW = pair(stride, "stride")
    DH, DW = pair(dilation, "dilation")
    pads = resolve_padding(padding, (KH, KW), (DH, DW), (SH, SW), (H, W))
    OH, OW = conv_output_hw((H, W), (KH, KW), (SH, SW), pads, (DH, DW))
    PT, _, PL, _ = pads
    return OH, OW, (SH, SW, PT, PL, DH, DW)


def _is_3x3_s1(w_shape, args):
    """True for the specialised kernels: 3x3, multiplier 1, stride 1, dilation 1."""
    SH, SW, _, _, DH, DW = args
    return (tuple(w_shape[:2]) == (3, 3) and w_shape[3] == 1
            and SH == SW == DH == DW == 1)


# ---------------------------------------------------------------------- public


def depthwise_conv2d_forward(x, w, b=None, stride=1, padding=0, dilation=1):
    """Depthwise convolution: ``(N, H, W, C)`` x ``(KH, KW, C, M)`` -> ``(N, OH, OW, C*M)``.

    Output channel ``c*M + m`` is input channel ``c`` convolved (cross-correlated)
    with ``w[:, :, c, m]``, plus ``b[c*M + m]`` when ``b`` (shape ``(C*M,)``) is given.
    ``stride``/``dilation``: int or pair; ``padding``: int, pair, ``(top, bottom,
    left, right)``, ``'same'`` or ``'valid'``.  Output dtype = ``x.dtype``.
    """
    check_nhwc(x, "x")
    check_weight(w, "(KH, KW, C, M)")
    check_same_dtype(x, "x", w, "w")
    N, H, W, C = x.shape
    KH, KW, _, M = w.shape
    _check_channels(C, w.shape, "x", "w")
    if b is None:
        b = np.zeros(C * M, dtype=x.dtype)
    else:
        if not isinstance(b, np.ndarray):
            raise TypeError(f"b must be a numpy.ndarray or None, got {type(b).__name__}")
        if b.shape != (C * M,):
            raise ValueError(f"b must have shape (C*M,) = ({C * M},), got {b.shape}")
        check_same_dtype(x, "x", b, "b")
    OH, OW, args = _geometry(x.shape, w.shape, stride, padding, dilation)
    y = np.empty((N, OH, OW, C * M), dtype=x.dtype)
    if _is_3x3_s1(w.shape, args):
        _dw3x3_s1(np.ascontiguousarray(x), np.ascontiguousarray(w).reshape(9, C),
                  np.ascontiguousarray(b), y, args[2], args[3])
        return y
    _dw_forward(np.ascontiguousarray(x), np.ascontiguousarray(w).reshape(KH, KW, C * M),
                np.ascontiguousarray(b), y, *args)
    return y


def depthwise_conv2d_backward_input(gy, w, x_shape, stride=1, padding=0, dilation=1):
    """Gradient of ``depthwise_conv2d_forward`` with respect to ``x`` (shape ``x_shape``)."""
    check_weight(w, "(KH, KW, C, M)")
    x_shape = check_shape4(x_shape, "x_shape", "(N, H, W, C)")
    N, H, W, C = x_shape
    KH, KW, _, M = w.shape
    _check_channels(C, w.shape, "x_shape", "w")
    OH, OW, args = _geometry(x_shape, w.shape, stride, padding, dilation)
    check_output_grad(gy, (N, OH, OW, C * M), "(N, OH, OW, C*M)")
    check_same_dtype(gy, "gy", w, "w")
    gx = np.empty(x_shape, dtype=gy.dtype)
    if _is_3x3_s1(w.shape, args):
        # The input gradient of a stride-1 convolution is the convolution of gy with the
        # flipped kernel and padding (2 - PT, 2 - PL), computed straight into gx.
        wf = np.ascontiguousarray(w[::-1, ::-1]).reshape(9, C)
        _dw3x3_s1(np.ascontiguousarray(gy), wf, np.zeros(C, dtype=gy.dtype), gx,
                  2 - args[2], 2 - args[3])
        return gx
    _dw_backward_input(np.ascontiguousarray(gy),
                       np.ascontiguousarray(w).reshape(KH, KW, C * M), gx, *args)
    return gx


def depthwise_conv2d_backward_weight(x, gy, w_shape, stride=1, padding=0, dilation=1):
    """Gradient of ``depthwise_conv2d_forward`` with respect to ``w`` (shape ``w_shape``)."""
    check_nhwc(x, "x")
    w_shape = check_shape4(w_shape, "w_shape", "(KH, KW, C, M)")
    if w_shape[0] < 1:
        raise ValueError(f"w_shape must have positive sizes (KH, KW, C, M), got {w_shape}")
    N, H, W, C = x.shape
    KH, KW, _, M = w_shape
    _check_channels(C, w_shape, "x", "w_shape")
    OH, OW, args = _geometry(x.shape, w_shape, stride, padding, dilation)
    check_output_grad(gy, (N, OH, OW, C * M), "(N, OH, OW, C*M)")
    check_same_dtype(x, "x", gy, "gy")
    partial = np.zeros((_num_chunks(N * OH), KH, KW, C * M), dtype=np.float64)
    _dw_backward_weight(np.ascontiguousarray(x), np.ascontiguousarray(gy), partial, *args)
    return partial.sum(axis=0).astype(x.dtype).reshape(w_shape)


def depthwise_conv2d_backward_bias(gy):
    """Gradient with respect to the bias: ``gy`` summed over ``N, OH, OW`` -> ``(C*M,)``."""
    check_nhwc(gy, "gy")
    CM = gy.shape[3]
    gy2 = np.ascontiguousarray(gy).reshape(-1, CM)
    partial = np.empty((_num_chunks(gy2.shape[0]), CM), dtype=np.float64)
    _column_sums(gy2, partial)
    return partial.sum(axis=0).astype(gy.dtype)

"""Depthwise 2-D convolution with a channel multiplier, channels-last.

Layouts: input ``x`` is ``(N, H, W, C)``, weight ``w`` is ``(KH, KW, C, M)``
(``M`` is the channel multiplier), output ``y`` is ``(N, OH, OW, C*M)`` with
output channel ``j = c*M + m`` (PyTorch ``groups=C`` and TensorFlow
``depthwise_conv2d`` order).  So ``w.reshape(KH, KW, C*M)`` lines up with the
output channels, and every kernel below works on that flat weight.

This file holds the public functions (the API that ``tinycnn.ops`` imports),
which check their arguments, and the general kernels, which handle any kernel
size, stride, dilation and multiplier.  3x3 kernels with stride 1, dilation 1
and multiplier 1 (the MobileNet/Xception case) go to the faster family of
``depthwise3x3.py`` instead: its index tricks (flat rows, tiled weights, blocks
of 4 rows) are a file's reading of their own.

For output pixel ``(n, oh, ow)`` and tap ``(kh, kw)`` the input pixel is
``ih = oh*SH - PT + kh*DH``, ``iw = ow*SW - PL + kw*DW``; taps in the padding
contribute nothing.  The loops are direct (no im2col, no loop over groups) and
the innermost loop runs over the contiguous channel axis.

Races: the forward pass and the input gradient are parallel over rows that
each thread owns (output rows ``(n, oh)``, input rows ``(n, ih)``: the input
gradient is gathered per input row).  The weight and bias gradients are sums
over all pixels: the output rows are cut into a fixed number of chunks
(``num_chunks`` of ``_parallel.py``), each chunk adds into its own float64
partial buffer, and the buffers are summed serially afterwards.  The number of
chunks depends only on the problem size and on ``numba.config.NUMBA_NUM_THREADS``
(fixed per process), not on ``numba.set_num_threads``: results are bitwise
identical whatever the current thread count.
"""

import numpy as np
from numba import njit, prange

from . import depthwise3x3
from ._args import ConvGeometry, check_nhwc, check_output_grad, check_same_dtype, check_shape4, check_weight
from ._config import FASTMATH
from ._parallel import num_chunks

__all__ = [
    "depthwise_conv2d_forward", "depthwise_conv2d_backward_input",
    "depthwise_conv2d_backward_weight", "depthwise_conv2d_backward",
    "depthwise_conv2d_backward_bias",
]


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


def _kernel_args(g):
    """The geometry arguments of ``_dw_forward`` / ``_dw_backward_*`` after the arrays."""
    return g.SH, g.SW, g.PT, g.PL, g.DH, g.DW


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
    g = ConvGeometry(x.shape, w.shape[:2], stride, padding, dilation)
    if depthwise3x3.applies(w.shape, g):
        return depthwise3x3.forward(x, w, b, g)
    y = np.empty((N, g.OH, g.OW, C * M), dtype=x.dtype)
    _dw_forward(np.ascontiguousarray(x), np.ascontiguousarray(w).reshape(KH, KW, C * M),
                np.ascontiguousarray(b), y, *_kernel_args(g))
    return y


def depthwise_conv2d_backward_input(gy, w, x_shape, stride=1, padding=0, dilation=1):
    """Gradient of ``depthwise_conv2d_forward`` with respect to ``x`` (shape ``x_shape``)."""
    check_weight(w, "(KH, KW, C, M)")
    x_shape = check_shape4(x_shape, "x_shape", "(N, H, W, C)")
    N, H, W, C = x_shape
    KH, KW, _, M = w.shape
    _check_channels(C, w.shape, "x_shape", "w")
    g = ConvGeometry(x_shape, w.shape[:2], stride, padding, dilation)
    check_output_grad(gy, (N, g.OH, g.OW, C * M), "(N, OH, OW, C*M)")
    check_same_dtype(gy, "gy", w, "w")
    if depthwise3x3.applies(w.shape, g):
        return depthwise3x3.backward_input(gy, w, g)
    gx = np.empty(x_shape, dtype=gy.dtype)
    _dw_backward_input(np.ascontiguousarray(gy),
                       np.ascontiguousarray(w).reshape(KH, KW, C * M), gx, *_kernel_args(g))
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
    g = ConvGeometry(x.shape, w_shape[:2], stride, padding, dilation)
    check_output_grad(gy, (N, g.OH, g.OW, C * M), "(N, OH, OW, C*M)")
    check_same_dtype(x, "x", gy, "gy")
    if depthwise3x3.applies(w_shape, g):
        return depthwise3x3.backward_weight(x, gy, g)
    partial = np.zeros((num_chunks(N * g.OH), KH, KW, C * M), dtype=np.float64)
    _dw_backward_weight(np.ascontiguousarray(x), np.ascontiguousarray(gy), partial, *_kernel_args(g))
    return partial.sum(axis=0).astype(x.dtype).reshape(w_shape)


def depthwise_conv2d_backward(x, gy, w, stride=1, padding=0, dilation=1):
    """Both gradients of ``depthwise_conv2d_forward``: returns ``(gx, gw)``, equal to
    ``depthwise_conv2d_backward_input(gy, w, x.shape, ...)`` and
    ``depthwise_conv2d_backward_weight(x, gy, w.shape, ...)``.

    For 3x3 kernels with stride 1, dilation 1 and multiplier 1 both come from one
    pass that reads each row of ``gy`` once (``depthwise3x3.backward``); other
    geometries call the two kernels.
    """
    check_nhwc(x, "x")
    check_weight(w, "(KH, KW, C, M)")
    check_same_dtype(x, "x", w, "w")
    N, H, W, C = x.shape
    KH, KW, _, M = w.shape
    _check_channels(C, w.shape, "x", "w")
    g = ConvGeometry(x.shape, w.shape[:2], stride, padding, dilation)
    check_output_grad(gy, (N, g.OH, g.OW, C * M), "(N, OH, OW, C*M)")
    check_same_dtype(x, "x", gy, "gy")
    if depthwise3x3.applies(w.shape, g):
        return depthwise3x3.backward(x, gy, w, g)
    return (depthwise_conv2d_backward_input(gy, w, x.shape, stride, padding, dilation),
            depthwise_conv2d_backward_weight(x, gy, w.shape, stride, padding, dilation))


def depthwise_conv2d_backward_bias(gy):
    """Gradient with respect to the bias: ``gy`` summed over ``N, OH, OW`` -> ``(C*M,)``."""
    check_nhwc(gy, "gy")
    CM = gy.shape[3]
    gy2 = np.ascontiguousarray(gy).reshape(-1, CM)
    partial = np.empty((num_chunks(gy2.shape[0]), CM), dtype=np.float64)
    _column_sums(gy2, partial)
    return partial.sum(axis=0).astype(gy.dtype)

"""Max, average and global average pooling on channels-last arrays.

Layouts: ``x`` is ``(N, H, W, C)``, pooled ``y`` is ``(N, OH, OW, C)``.  Output
pixel ``(oh, ow)`` pools the window ``oh*SH - PH <= ih < oh*SH - PH + KH``,
``ow*SW - PW <= iw < ow*SW - PW + KW`` (no dilation, floor output size as in
PyTorch without ``ceil_mode``): ``OH = (H + 2*PH - KH) // SH + 1``.  Padding is
symmetric and at most half the kernel (``PH <= KH // 2``, as PyTorch demands),
so every window holds at least one real input pixel.

* Max pooling treats the padding as -inf.  ``argmax`` keeps, per output element,
  the flat index ``ih*W + iw`` of the input pixel that won; ties keep the first
  maximum in window order ``(ih, iw)``, a NaN wins over any number (the first
  NaN) so NaNs propagate.
* Average pooling follows PyTorch: with ``count_include_pad`` the divisor is the
  window clipped to the padded input (always ``KH*KW`` here); without it, the
  number of real input pixels in the window.

Races: forward passes are parallel over output rows ``(n, oh)``, the
average-pool input gradient over input rows ``(n, ih)`` (gathered per row), the
max-pool input gradient (a scatter through ``argmax``) and the global average
over ``(n, channel block)`` pairs (whole images unless the batch is small), each
thread owning its slice of ``gx`` / ``y``.
"""

import numba
import numpy as np
from numba import njit, prange

from ._args import check_nhwc, check_output_grad, check_shape4, pool_geometry
from ._config import FASTMATH

__all__ = [
    "max_pool2d_forward", "max_pool2d_backward",
    "avg_pool2d_forward", "avg_pool2d_backward",
    "global_avg_pool2d_forward", "global_avg_pool2d_backward",
]

_CHANNEL_BLOCK = 16  # the finest split of the channel axis (channels per thread task)


def _channel_block(N, C):
    """Channels per task for kernels parallel over ``(image, channel block)``: all ``C``
    (whole contiguous pixel rows) unless the batch is too small to keep every thread busy."""
    blocks = max(1, min(-(-4 * numba.get_num_threads() // max(N, 1)), C // _CHANNEL_BLOCK))
    return -(-C // blocks)


# --------------------------------------------------------------------- kernels


@njit(cache=True, fastmath=FASTMATH, parallel=True)
def _max_pool_forward(x, y, argmax, KH, KW, SH, SW, PH, PW):
    """``y[n, oh, ow, c] = max x[n, ih, iw, c]`` over the window clipped to the input,
    ``argmax[n, oh, ow, c] = ih*W + iw`` of the winner.

    Parallel over output rows ``r = n*OH + oh``.  The running maximum starts at
    the window's first real pixel ``(h0, w0)`` (clipped start), so an all -inf
    window still points at a real pixel; a later pixel replaces it when it is
    larger, or NaN while the maximum is not.
    """
    N, H, W, C = x.shape
    OH, OW = y.shape[1], y.shape[2]
    for r in prange(N * OH):
        n = r // OH
        oh = r - n * OH
        h0 = max(oh * SH - PH, 0)
        h1 = min(oh * SH - PH + KH, H)
        for ow in range(OW):
            w0 = max(ow * SW - PW, 0)
            w1 = min(ow * SW - PW + KW, W)
            first = h0 * W + w0
            for c in range(C):
                y[n, oh, ow, c] = x[n, h0, w0, c]
                argmax[n, oh, ow, c] = first
            for ih in range(h0, h1):
                for iw in range(w0, w1):
                    idx = ih * W + iw
                    for c in range(C):
                        v = x[n, ih, iw, c]
                        best = y[n, oh, ow, c]
                        take = (v > best) | ((v != v) & (best == best))  # branch-free
                        y[n, oh, ow, c] = v if take else best
                        argmax[n, oh, ow, c] = idx if take else argmax[n, oh, ow, c]


@njit(cache=True, fastmath=FASTMATH, parallel=True)
def _max_pool_backward(gy, argmax, gx, CB):
    """``gx[n, argmax[n, oh, ow, c], c] += gy[n, oh, ow, c]`` (``gx`` is ``(N, H*W, C)``,
    uninitialised: each task zeroes its own slice first).  Returns the number of
    ``argmax`` entries outside ``[0, H*W)``; those are skipped (the caller raises).

    A scatter: windows overlap, so two outputs may hit one input pixel.  Parallel
    over tasks ``t = n*NB + block``, each owning channels ``block*CB .. block*CB+CB-1``
    of image ``n`` in ``gx``; no two tasks write the same element.  With ``CB = C``
    a task streams whole pixel rows and its image's ``gx`` stays in cache.
    """
    N, OH, OW, C = gy.shape
    HW = gx.shape[1]
    NB = (C + CB - 1) // CB
    bad = 0
    for t in prange(N * NB):
        n = t // NB
        c0 = (t - n * NB) * CB
        c1 = min(c0 + CB, C)
        nbad = 0
        if NB == 1:  # whole images: contiguous views (faster than the sliced ones below)
            gxn = gx[n]
            gxn[:] = 0
            for oh in range(OH):
                for ow in range(OW):
                    arow_n = argmax[n, oh, ow]
                    grow_n = gy[n, oh, ow]
                    for c in range(C):
                        a = arow_n[c]
                        if a >= 0 and a < HW:
                            gxn[a, c] += grow_n[c]
                        else:
                            nbad += 1
            bad += nbad
            continue
        gxt = gx[n, :, c0:c1]  # views: the row offsets are computed once per pixel
        gxt[:] = 0
        for oh in range(OH):
            for ow in range(OW):
                arow = argmax[n, oh, ow, c0:c1]
                grow = gy[n, oh, ow, c0:c1]
                for c in range(c1 - c0):
                    a = arow[c]
                    if a >= 0 and a < HW:
                        gxt[a, c] += grow[c]
                    else:
                        nbad += 1
        bad += nbad
    return bad


@njit(cache=True, fastmath=FASTMATH)
def _avg_window(o, S, P, K, size, count_include_pad):
    """Window of output index ``o`` along one axis: ``(i0, i1, count)``.

    ``[i0, i1)`` is the window clipped to the input; ``count`` its length
    counted as PyTorch does: clipped to the padded input ``[-P, size + P)`` when
    ``count_include_pad``, to the input otherwise.
    """
    start = o * S - P
    end = min(start + K, size + P)
    count = end - start
    i0 = max(start, 0)
    i1 = min(end, size)
    if not count_include_pad:
        count = i1 - i0
    return i0, i1, count


@njit(cache=True, fastmath=FASTMATH, parallel=True)
def _avg_pool_forward(x, y, KH, KW, SH, SW, PH, PW, count_include_pad):
    """``y[n, oh, ow, c] = sum x[n, ih, iw, c] / (count_h * count_w)`` over the window
    clipped to the input (``_avg_window`` gives the bounds and counts).

    Parallel over output rows ``r = n*OH + oh``; each thread owns ``y[n, oh]``.
    """
    N, H, W, C = x.shape
    OH, OW = y.shape[1], y.shape[2]
    zero = y.dtype.type(0)
    for r in prange(N * OH):
        n = r // OH
        oh = r - n * OH
        h0, h1, ch = _avg_window(oh, SH, PH, KH, H, count_include_pad)
        for ow in range(OW):
            w0, w1, cw = _avg_window(ow, SW, PW, KW, W, count_include_pad)
            for c in range(C):
                y[n, oh, ow, c] = zero
            for ih in range(h0, h1):
                for iw in range(w0, w1):
                    for c in range(C):
                        y[n, oh, ow, c] += x[n, ih, iw, c]
            div = y.dtype.type(ch * cw)
            for c in range(C):
                y[n, oh, ow, c] = y[n, oh, ow, c] / div


@njit(cache=True, fastmath=FASTMATH, parallel=True)
def _avg_pool_backward(gy, gx, KH, KW, SH, SW, PH, PW, count_include_pad):
    """``gx[n, ih, iw, c] = sum gy[n, oh, ow, c] / (count_h * count_w)`` over the output
    pixels whose clipped window contains ``(ih, iw)``.

    Gather by input row: parallel over ``t = n*H + ih``, the thread zeroes and owns
    ``gx[n, ih]``.  Row ``ih`` lies in the window of output row ``oh`` when
    ``oh*SH - PH <= ih < oh*SH - PH + KH``, i.e.
    ``ceil((ih + PH - KH + 1) / SH) <= oh <= floor((ih + PH) / SH)``.
    """
    N, H, W, C = gx.shape
    OH, OW = gy.shape[1], gy.shape[2]
    zero = gx.dtype.type(0)
    for t in prange(N * H):
        n = t // H
        ih = t - n * H
        for iw in range(W):
            for c in range(C):
                gx[n, ih, iw, c] = zero
        oh_lo = max(-((KH - 1 - ih - PH) // SH), 0)
        oh_hi = min((ih + PH) // SH + 1, OH)
        for oh in range(oh_lo, oh_hi):
            _, _, ch = _avg_window(oh, SH, PH, KH, H, count_include_pad)
            for ow in range(OW):
                w0, w1, cw = _avg_window(ow, SW, PW, KW, W, count_include_pad)
                div = gx.dtype.type(ch * cw)
                for iw in range(w0, w1):
                    for c in range(C):
                        gx[n, ih, iw, c] += gy[n, oh, ow, c] / div


@njit(cache=True, fastmath=FASTMATH, parallel=True)
def _global_avg_forward(x, y, CB):
    """``y[n, c] = sum_{h, w} x[n, h, w, c] / (H*W)``, summed in float64.

    Parallel over tasks ``t = n*NB + block``, each owning channels
    ``block*CB .. block*CB+CB-1`` of ``y[n]`` (with ``CB = C``, whole images whose
    pixel rows are read as one contiguous stream).
    """
    N, H, W, C = x.shape
    NB = (C + CB - 1) // CB
    xf = x.reshape(N, H * W, C)
    for t in prange(N * NB):
        n = t // NB
        c0 = (t - n * NB) * CB
        c1 = min(c0 + CB, C)
        acc = np.zeros(c1 - c0, dtype=np.float64)
        if NB == 1:  # whole images: contiguous row views (the offsets computed once per pixel)
            xn = xf[n]
            for i in range(H * W):
                row = xn[i]
                for c in range(C):
                    acc[c] += row[c]
        else:
            for i in range(H * W):
                for c in range(c0, c1):
                    acc[c - c0] += xf[n, i, c]
        for c in range(c0, c1):
            y[n, c] = acc[c - c0] / (H * W)


@njit(cache=True, fastmath=FASTMATH, parallel=True)
def _global_avg_backward(gy, gx):
    """``gx[n, h, w, c] = gy[n, c] / (H*W)``.  Parallel over rows ``t = n*H + h``."""
    N, H, W, C = gx.shape
    div = gx.dtype.type(H * W)
    for t in prange(N * H):
        n = t // H
        h = t - n * H
        for w in range(W):
            for c in range(C):
                gx[n, h, w, c] = gy[n, c] / div


# -------------------------------------------------------------------- checking


def _window_args(g):
    """``(KH, KW, SH, SW, PH, PW)`` of a ``pool_geometry`` (its padding is symmetric)."""
    return g.KH, g.KW, g.SH, g.SW, g.PT, g.PL


def _check_bool(value, name):
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be a bool, got {value!r} ({type(value).__name__})")
    return bool(value)


# ---------------------------------------------------------------------- public


def max_pool2d_forward(x, kernel_size, stride=None, padding=0):
    """Max pooling -> ``(y, argmax)``, both ``(N, OH, OW, C)``.

    ``kernel_size``, ``stride`` (default: ``kernel_size``) and ``padding`` are ints or
    pairs; padding counts as -inf and must be ``<= kernel_size // 2``.  ``argmax``
    (int64) holds the flat index ``ih*W + iw`` of each output's input pixel.
    """
    check_nhwc(x, "x")
    N, H, W, C = x.shape
    g = pool_geometry(x.shape, kernel_size, stride, padding)
    y = np.empty((N, g.OH, g.OW, C), dtype=x.dtype)
    argmax = np.empty((N, g.OH, g.OW, C), dtype=np.int64)
    _max_pool_forward(np.ascontiguousarray(x), y, argmax, *_window_args(g))
    return y, argmax


def max_pool2d_backward(gy, argmax, x_shape):
    """Gradient of max pooling: each ``gy`` element goes to the pixel its ``argmax`` names."""
    check_nhwc(gy, "gy")
    N, H, W, C = check_shape4(x_shape, "x_shape", "(N, H, W, C)")
    if not isinstance(argmax, np.ndarray):
        raise TypeError(f"argmax must be a numpy.ndarray, got {type(argmax).__name__}")
    if argmax.dtype.kind not in "iu":
        raise TypeError(f"argmax must have an integer dtype, got {argmax.dtype}")
    if argmax.shape != gy.shape:
        raise ValueError(f"argmax must have the shape of gy {gy.shape}, got {argmax.shape}")
    if gy.shape[0] != N or gy.shape[3] != C:
        raise ValueError(f"gy (N, OH, OW, C) = {gy.shape} does not match x_shape "
                         f"(N, H, W, C) = {(N, H, W, C)}: expected N={N} and C={C}")
    gx = np.empty((N, H * W, C), dtype=gy.dtype)
    bad = _max_pool_backward(np.ascontiguousarray(gy),
                             np.ascontiguousarray(argmax, dtype=np.int64), gx,
                             _channel_block(N, C))
    if bad:
        raise ValueError(f"argmax must hold flat indices ih*W + iw in [0, {H * W}) for "
                         f"H={H}, W={W}; got values in [{argmax.min()}, {argmax.max()}]")
    return gx.reshape(N, H, W, C)


def avg_pool2d_forward(x, kernel_size, stride=None, padding=0, count_include_pad=True):
    """Average pooling -> ``(N, OH, OW, C)``, PyTorch semantics for ``count_include_pad``."""
    check_nhwc(x, "x")
    count_include_pad = _check_bool(count_include_pad, "count_include_pad")
    N, H, W, C = x.shape
    g = pool_geometry(x.shape, kernel_size, stride, padding)
    y = np.empty((N, g.OH, g.OW, C), dtype=x.dtype)
    _avg_pool_forward(np.ascontiguousarray(x), y, *_window_args(g), count_include_pad)
    return y


def avg_pool2d_backward(gy, x_shape, kernel_size, stride=None, padding=0,
                        count_include_pad=True):
    """Gradient of ``avg_pool2d_forward`` with respect to its input (shape ``x_shape``)."""
    x_shape = check_shape4(x_shape, "x_shape", "(N, H, W, C)")
    count_include_pad = _check_bool(count_include_pad, "count_include_pad")
    N, H, W, C = x_shape
    g = pool_geometry(x_shape, kernel_size, stride, padding)
    check_output_grad(gy, (N, g.OH, g.OW, C), "(N, OH, OW, C)")
    gx = np.empty(x_shape, dtype=gy.dtype)
    _avg_pool_backward(np.ascontiguousarray(gy), gx, *_window_args(g), count_include_pad)
    return gx


def global_avg_pool2d_forward(x):
    """Mean over ``H, W``: ``(N, H, W, C)`` -> ``(N, C)`` (summed in float64)."""
    check_nhwc(x, "x")
    N, H, W, C = x.shape
    y = np.empty((N, C), dtype=x.dtype)
    _global_avg_forward(np.ascontiguousarray(x), y, _channel_block(N, C))
    return y


def global_avg_pool2d_backward(gy, x_shape):
    """Gradient of ``global_avg_pool2d_forward``: ``gy[n, c] / (H*W)`` at every pixel."""
    x_shape = check_shape4(x_shape, "x_shape", "(N, H, W, C)")
    N, H, W, C = x_shape
    if not isinstance(gy, np.ndarray):
        raise TypeError(f"gy must be a numpy.ndarray, got {type(gy).__name__}")
    if gy.dtype not in (np.float32, np.float64):
        raise TypeError(f"gy must have dtype float32 or float64, got {gy.dtype}")
    if gy.shape != (N, C):
        raise ValueError(f"gy must have shape (N, C) = {(N, C)}, got {gy.shape}")
    gx = np.empty(x_shape, dtype=gy.dtype)
    _global_avg_backward(np.ascontiguousarray(gy), gx)
    return gx

"""Depthwise 3x3 convolution with stride 1, dilation 1 and multiplier 1 (the
MobileNet/Xception case), channels-last: a faster family for the one geometry
that dominates those models.

``depthwise.py`` holds the public functions, which check their arguments, and
the general kernels, which handle every geometry; when ``applies`` says so, they
hand the work to ``forward``, ``backward_input``, ``backward_weight`` or
``backward`` here.  Layouts as there with ``M = 1``: ``x`` is ``(N, H, W, C)``, ``w``
``(3, 3, C, 1)``, ``y`` ``(N, OH, OW, C)``, and ``y[n, oh, ow, c] = b[c] + sum_{kh, kw < 3}
x[n, oh - PT + kh, ow - PL + kw, c] * w[kh, kw, c, 0]`` (padding taps read zeros).

Flat-row indexing: an NHWC row ``x[n, ih]`` is one contiguous vector of ``W*C``
values, and for stride 1 the input of output pixel ``ow``, tap ``kw``, channel
``c`` sits at flat position ``(ow - PL + kw)*C + c``: a fixed shift of the output
position ``ow*C + c``.  So the interior columns of a row (all 3 column taps
inside the input) are one long loop over flat positions, and only the weight
changes with the channel.  The weights are therefore tiled ``J`` pixels wide
(``wt[k, p*C + c] = w[k, c]``, ``J*C >= _FLAT_MIN``) and the interior is walked
in segments of ``J`` pixels; a long, branch-free inner loop is what LLVM
vectorises well.  Flat indices are unsigned (``np.uint64``): Numba applies
negative-index wraparound to signed indices, and an index that LLVM cannot
prove non-negative turns the vector loads into gathers.

Rows are handled 4 output rows at a time (6 input rows): every input value
and weight loaded in the inner loop serves up to 3 rows' outputs, so the loop
does 36 multiply-adds per 28 vector loads instead of 9 per 18.  Input rows in
the padding are a row of zeros.  The 1 or 2 border columns on each side are
computed per pixel.  The weight gradient walks the same blocks with one loop
per kernel row (3 accumulator streams: with all 9 in one loop LLVM gives up
vectorising it).

The input gradient is the forward kernel ``_dw3x3_s1`` applied to ``gy`` with the
kernel flipped and padding ``(2 - PT, 2 - PL)``; ``backward`` computes both
gradients in one pass over ``gy`` (``_dw3x3_s1_backward``).

Races: the forward pass and the input gradient are parallel over blocks of 4
rows, each written by one thread only.  The weight gradient cuts the blocks into
``num_chunks`` fixed chunks, each adding into its own float64 partial, summed
serially afterwards: bitwise the same for any thread count (``_parallel.py``).
"""

import numpy as np
from numba import njit, prange

from ._config import FASTMATH
from ._parallel import num_chunks

__all__ = ["applies", "forward", "backward_input", "backward_weight", "backward"]

# --------------------------------------------------------------------- kernels


_FLAT_MIN = 512  # minimum inner-loop length (values) of one weight tile


def _tile_pixels(C):
    """``J``: pixels the weights are tiled over so that an inner loop runs ``>= _FLAT_MIN`` values."""
    return max(1, -(-_FLAT_MIN // C))


@njit(cache=True, fastmath=FASTMATH)
def _interior(OW, W, PL):
    """Output columns ``[lo, hi)`` whose 3 column taps ``ow - PL + kw`` all lie in ``[0, W)``."""
    lo = min(max(PL, 0), OW)
    return lo, max(min(OW, W - 2 + PL), lo)


@njit(cache=True, fastmath=FASTMATH, inline="always")
def _row3(xr, j, C, C2, wa, wb, wc):
    """One input row's share of one output: ``xr[j]*wa + xr[j + C]*wb + xr[j + 2C]*wc``."""
    return xr[j] * wa + xr[j + C] * wb + xr[j + C2] * wc


@njit(cache=True, fastmath=FASTMATH, inline="always")
def _dot4(a, b, c, d, j, g0, g1, g2, g3):
    """``a[j]*g0 + b[j]*g1 + c[j]*g2 + d[j]*g3``: one tap's weight-gradient share of 4 rows."""
    return a[j] * g0 + b[j] * g1 + c[j] * g2 + d[j] * g3


@njit(cache=True, fastmath=FASTMATH)
def _input_row(x, n, ih, zrow):
    """Row ``x[n, ih]`` flattened to ``(W*C,)``, or the zero row when ``ih`` is in the padding."""
    if ih < 0 or ih >= x.shape[1]:
        return zrow
    return x[n, ih].reshape(-1)


@njit(cache=True, fastmath=FASTMATH, inline="always")
def _six_rows(x, n, ih0, zrow):
    """The input rows ``ih0 .. ih0 + 5`` of image ``n`` that a block of 4 output rows
    reads, flattened (the zero row for rows in the padding)."""
    return (_input_row(x, n, ih0, zrow), _input_row(x, n, ih0 + 1, zrow),
            _input_row(x, n, ih0 + 2, zrow), _input_row(x, n, ih0 + 3, zrow),
            _input_row(x, n, ih0 + 4, zrow), _input_row(x, n, ih0 + 5, zrow))


@njit(cache=True, fastmath=FASTMATH, inline="always")
def _four_rows(a, n, r0):
    """Rows ``r0 .. r0 + 3`` of image ``n`` of ``a``, flattened (all inside ``a``): the
    output rows of a full block, or the ``gy`` rows its weight gradient reads."""
    return (a[n, r0].reshape(-1), a[n, r0 + 1].reshape(-1),
            a[n, r0 + 2].reshape(-1), a[n, r0 + 3].reshape(-1))


@njit(cache=True, fastmath=FASTMATH)
def _conv_rows(x, wt, y, n, oh0, PT, PL, zrow):
    """Output rows ``oh0 <= oh < min(oh0 + 4, OH)`` of image ``n`` (see ``_dw3x3_s1``)."""
    W, C = x.shape[2], x.shape[3]
    OH, OW = y.shape[1], y.shape[2]
    J = wt.shape[1] // C
    lo, hi = _interior(OW, W, PL)
    Cu, C2 = np.uint64(C), np.uint64(2 * C)
    f0, f1, f2, f3, f4, f5 = _six_rows(x, n, oh0 - PT, zrow)
    if oh0 + 4 <= OH:
        y0, y1, y2, y3 = _four_rows(y, n, oh0)
        for s in range(lo, hi, J):
            ji = np.uint64((s - PL) * C)
            jo = np.uint64(s * C)
            for i in range(np.uint64(min(J, hi - s) * C)):
                j = ji + i
                wa, wb, wc = wt[0, i], wt[1, i], wt[2, i]
                wd, we, wf = wt[3, i], wt[4, i], wt[5, i]
                wg, wh, wk = wt[6, i], wt[7, i], wt[8, i]
                bi = wt[9, i]
                v0 = (bi + _row3(f0, j, Cu, C2, wa, wb, wc) + _row3(f1, j, Cu, C2, wd, we, wf)
                      + _row3(f2, j, Cu, C2, wg, wh, wk))
                v1 = (bi + _row3(f1, j, Cu, C2, wa, wb, wc) + _row3(f2, j, Cu, C2, wd, we, wf)
                      + _row3(f3, j, Cu, C2, wg, wh, wk))
                v2 = (bi + _row3(f2, j, Cu, C2, wa, wb, wc) + _row3(f3, j, Cu, C2, wd, we, wf)
                      + _row3(f4, j, Cu, C2, wg, wh, wk))
                v3 = (bi + _row3(f3, j, Cu, C2, wa, wb, wc) + _row3(f4, j, Cu, C2, wd, we, wf)
                      + _row3(f5, j, Cu, C2, wg, wh, wk))
                y0[jo + i] = v0
                y1[jo + i] = v1
                y2[jo + i] = v2
                y3[jo + i] = v3
    else:
        for oh in range(oh0, OH):
            k = oh - oh0  # 0, 1 or 2: the rows are f_k, f_k+1, f_k+2
            a0 = f0 if k == 0 else (f1 if k == 1 else f2)
            a1 = f1 if k == 0 else (f2 if k == 1 else f3)
            a2 = f2 if k == 0 else (f3 if k == 1 else f4)
            yr = y[n, oh].reshape(-1)
            for s in range(lo, hi, J):
                ji = np.uint64((s - PL) * C)
                jo = np.uint64(s * C)
                for i in range(np.uint64(min(J, hi - s) * C)):
                    j = ji + i
                    yr[jo + i] = (wt[9, i] + _row3(a0, j, Cu, C2, wt[0, i], wt[1, i], wt[2, i])
                                  + _row3(a1, j, Cu, C2, wt[3, i], wt[4, i], wt[5, i])
                                  + _row3(a2, j, Cu, C2, wt[6, i], wt[7, i], wt[8, i]))
    # Border columns: per pixel, only the column taps inside the input.
    for oh in range(oh0, min(oh0 + 4, OH)):
        yr = y[n, oh]
        for ow in range(OW):
            if lo <= ow < hi:
                continue
            for c in range(C):
                yr[ow, c] = wt[9, c]
            for kh in range(3):
                xr = _input_row(x, n, oh - PT + kh, zrow)
                for kw in range(max(0, PL - ow), min(3, W + PL - ow)):
                    j0 = np.uint64((ow - PL + kw) * C)
                    for c in range(Cu):
                        yr[ow, c] += xr[j0 + c] * wt[3 * kh + kw, c]


@njit(cache=True, fastmath=FASTMATH)
def _weight_taps4(a, b, c, d, g0, g1, g2, g3, acc, k, ji, jo, m, C, C2):
    """One kernel row's 3 taps for 4 output rows: ``acc[k + kw, i] += sum_r
    (input row r)[ji + i + kw*C] * (gy row r)[jo + i]`` for ``i < m``, ``kw < 3``, with
    the input rows ``a, b, c, d`` and the ``gy`` rows ``g0..g3`` (flat, unsigned indices).
    One loop per kernel row keeps the stores to 3 streams, which LLVM still vectorises."""
    for i in range(m):
        j = ji + i
        o = jo + i
        e0, e1, e2, e3 = g0[o], g1[o], g2[o], g3[o]
        acc[k, i] += _dot4(a, b, c, d, j, e0, e1, e2, e3)
        acc[k + 1, i] += _dot4(a, b, c, d, j + C, e0, e1, e2, e3)
        acc[k + 2, i] += _dot4(a, b, c, d, j + C2, e0, e1, e2, e3)


@njit(cache=True, fastmath=FASTMATH)
def _weight_taps1(a, g, acc, k, ji, jo, m, C, C2):
    """``_weight_taps4`` for a single output row (input row ``a``, ``gy`` row ``g``)."""
    for i in range(m):
        j = ji + i
        e = g[jo + i]
        acc[k, i] += a[j] * e
        acc[k + 1, i] += a[j + C] * e
        acc[k + 2, i] += a[j + C2] * e


@njit(cache=True, fastmath=FASTMATH)
def _weight_rows(x, gy, acc, part, n, oh0, PT, PL, zrow):
    """Add the weight gradient of output rows ``oh0 <= oh < min(oh0 + 4, OH)`` of image
    ``n`` to ``part`` (``(9, C)`` float64), via the ``(9, J*C)`` scratch ``acc``
    (see ``_dw3x3_s1_weight``)."""
    W, C = x.shape[2], x.shape[3]
    OH, OW = gy.shape[1], gy.shape[2]
    J = acc.shape[1] // C
    lo, hi = _interior(OW, W, PL)
    Cu, C2 = np.uint64(C), np.uint64(2 * C)
    zero = acc.dtype.type(0)
    for k in range(9):
        for i in range(J * C):
            acc[k, i] = zero
    f0, f1, f2, f3, f4, f5 = _six_rows(x, n, oh0 - PT, zrow)
    if oh0 + 4 <= OH:
        g0, g1, g2, g3 = _four_rows(gy, n, oh0)
        for s in range(lo, hi, J):
            ji = np.uint64((s - PL) * C)
            jo = np.uint64(s * C)
            m = np.uint64(min(J, hi - s) * C)
            _weight_taps4(f0, f1, f2, f3, g0, g1, g2, g3, acc, 0, ji, jo, m, Cu, C2)
            _weight_taps4(f1, f2, f3, f4, g0, g1, g2, g3, acc, 3, ji, jo, m, Cu, C2)
            _weight_taps4(f2, f3, f4, f5, g0, g1, g2, g3, acc, 6, ji, jo, m, Cu, C2)
    else:
        for oh in range(oh0, OH):
            k = oh - oh0
            a0 = f0 if k == 0 else (f1 if k == 1 else f2)
            a1 = f1 if k == 0 else (f2 if k == 1 else f3)
            a2 = f2 if k == 0 else (f3 if k == 1 else f4)
            gr = gy[n, oh].reshape(-1)
            for s in range(lo, hi, J):
                ji = np.uint64((s - PL) * C)
                jo = np.uint64(s * C)
                m = np.uint64(min(J, hi - s) * C)
                _weight_taps1(a0, gr, acc, 0, ji, jo, m, Cu, C2)
                _weight_taps1(a1, gr, acc, 3, ji, jo, m, Cu, C2)
                _weight_taps1(a2, gr, acc, 6, ji, jo, m, Cu, C2)
    # Border columns, into the first pixel of the tile.
    for oh in range(oh0, min(oh0 + 4, OH)):
        gr = gy[n, oh]
        for ow in range(OW):
            if lo <= ow < hi:
                continue
            for kh in range(3):
                xr = _input_row(x, n, oh - PT + kh, zrow)
                for kw in range(max(0, PL - ow), min(3, W + PL - ow)):
                    j0 = np.uint64((ow - PL + kw) * C)
                    for c in range(Cu):
                        acc[3 * kh + kw, c] += xr[j0 + c] * gr[ow, c]
    for k in range(9):
        for p in range(J):
            for c in range(C):
                part[k, c] += acc[k, p * C + c]


@njit(cache=True, fastmath=FASTMATH, parallel=True)
def _dw3x3_s1(x, wt, y, PT, PL):
    """3x3, stride 1, dilation 1, multiplier 1: ``y[n, oh, ow, c] = b[c] + sum_{kh, kw < 3}
    x[n, oh - PT + kh, ow - PL + kw, c] * w[3*kh + kw, c]`` (padding taps read zeros).

    ``wt`` is ``(10, J*C)``: the 9 taps and the bias, each tiled over ``J`` pixels (see
    the module notes).  ``y`` gives ``OH, OW`` (any size: the input gradient calls this
    with ``gy`` as ``x``, the flipped kernel and padding ``2 - PT, 2 - PL``).  Parallel
    over blocks of 4 output rows ``(n, oh0)``, each written by one thread only: the
    interior as flat segments of ``J`` pixels, then the border columns per pixel.
    """
    N, W, C = x.shape[0], x.shape[2], x.shape[3]
    OH = y.shape[1]
    zrow = np.zeros(W * C, dtype=x.dtype)
    NB = (OH + 3) // 4
    for t in prange(N * NB):
        n = t // NB
        _conv_rows(x, wt, y, n, 4 * (t - n * NB), PT, PL, zrow)


@njit(cache=True, fastmath=FASTMATH, parallel=True)
def _dw3x3_s1_weight(x, gy, partial, J, PT, PL):
    """Weight gradient of ``_dw3x3_s1``: ``partial[p, 3*kh + kw, c]`` (float64, zeroed by
    the caller) ``+= sum x[n, oh - PT + kh, ow - PL + kw, c] * gy[n, oh, ow, c]`` over the
    blocks of 4 output rows of chunk ``p`` (blocks ``p*B//P <= t < (p+1)*B//P``,
    ``B = N*ceil(OH/4)``).

    Parallel over chunks.  A block's sums are taken in the input dtype in a ``(9, J*C)``
    scratch (tiled like the weights), then added to the float64 partial; the caller
    sums the partials over ``p``.
    """
    N, W, C = x.shape[0], x.shape[2], x.shape[3]
    OH = gy.shape[1]
    P = partial.shape[0]
    NB = (OH + 3) // 4
    B = N * NB
    zrow = np.zeros(W * C, dtype=x.dtype)
    for p in prange(P):
        acc = np.empty((9, J * C), dtype=gy.dtype)
        for t in range(p * B // P, (p + 1) * B // P):
            n = t // NB
            _weight_rows(x, gy, acc, partial[p], n, 4 * (t - n * NB), PT, PL, zrow)


@njit(cache=True, fastmath=FASTMATH, parallel=True)
def _dw3x3_s1_backward(x, gy, wtf, gx, partial, PT, PL):
    """Both gradients of ``_dw3x3_s1`` in one pass: ``gx`` as ``_dw3x3_s1(gy, wtf, gx,
    2 - PT, 2 - PL)`` (``wtf``: the flipped kernel, zero bias, tiled) and ``partial`` as
    in ``_dw3x3_s1_weight``.

    Block ``t = (n, k)`` computes the input-gradient rows ``4k <= ih < 4k + 4`` and the
    weight gradient of the output rows ``4k <= oh < 4k + 4``; both read the ``gy`` rows
    around ``4k``, so each ``gy`` row comes from memory once.  Blocks are cut into
    ``P`` fixed chunks as in ``_dw3x3_s1_weight`` (so ``partial`` is the same whatever
    the thread count); every ``gx`` row is written by one block only.
    """
    N, H, W, C = x.shape
    OH, OW = gy.shape[1], gy.shape[2]
    P = partial.shape[0]
    J = wtf.shape[1] // C
    NB = (max(H, OH) + 3) // 4
    B = N * NB
    zx = np.zeros(W * C, dtype=x.dtype)
    zg = np.zeros(OW * C, dtype=gy.dtype)
    for p in prange(P):
        acc = np.empty((9, J * C), dtype=gy.dtype)
        for t in range(p * B // P, (p + 1) * B // P):
            n = t // NB
            r0 = 4 * (t - n * NB)
            if r0 < H:
                _conv_rows(gy, wtf, gx, n, r0, 2 - PT, 2 - PL, zg)
            if r0 < OH:
                _weight_rows(x, gy, acc, partial[p], n, r0, PT, PL, zx)


# ------------------------------------------------------ called by depthwise.py


def _blocks4(rows):
    """Blocks of 4 rows (the last may be shorter) the 3x3 stride-1 kernels cut ``rows`` into."""
    return (rows + 3) // 4


def _tiled_weights(w, b=None):
    """``(10, J*C)``: the 9 taps of a ``(3, 3, C, 1)`` weight and the bias (zero when
    ``b`` is None), each tiled over ``J = _tile_pixels(C)`` pixels, for ``_dw3x3_s1``."""
    C = w.shape[2]
    wb = np.empty((10, C), dtype=w.dtype)
    wb[:9] = w.reshape(9, C)
    wb[9] = 0 if b is None else b
    return np.tile(wb, (1, _tile_pixels(C)))


def applies(w_shape, g):
    """True for this family: a 3x3 weight of multiplier 1 with stride 1 and dilation 1
    (``g``: the ``ConvGeometry`` of the call)."""
    return (tuple(w_shape[:2]) == (3, 3) and w_shape[3] == 1
            and g.SH == g.SW == g.DH == g.DW == 1)


def forward(x, w, b, g):
    """``y`` (N, OH, OW, C) for ``x`` (N, H, W, C), ``w`` (3, 3, C, 1) and ``b`` (C,),
    checked by the caller."""
    y = np.empty((g.N, g.OH, g.OW, g.C), dtype=x.dtype)
    _dw3x3_s1(np.ascontiguousarray(x), _tiled_weights(w, b), y, g.PT, g.PL)
    return y


def backward_input(gy, w, g):
    """``gx`` (N, H, W, C): the convolution of ``gy`` with the flipped kernel and
    padding ``(2 - PT, 2 - PL)``, computed straight into ``gx``."""
    gx = np.empty((g.N, g.H, g.W, g.C), dtype=gy.dtype)
    _dw3x3_s1(np.ascontiguousarray(gy), _tiled_weights(w[::-1, ::-1]), gx, 2 - g.PT, 2 - g.PL)
    return gx


def backward_weight(x, gy, g):
    """``gw`` (3, 3, C, 1), summed in float64 over ``num_chunks`` fixed chunks of blocks."""
    C = g.C
    partial = np.zeros((num_chunks(g.N * _blocks4(g.OH)), 9, C), dtype=np.float64)
    _dw3x3_s1_weight(np.ascontiguousarray(x), np.ascontiguousarray(gy), partial,
                     _tile_pixels(C), g.PT, g.PL)
    return partial.sum(axis=0).astype(x.dtype).reshape(3, 3, C, 1)


def backward(x, gy, w, g):
    """``(gx, gw)`` as ``backward_input`` and ``backward_weight``, in one pass over ``gy``."""
    C = g.C
    gx = np.empty(x.shape, dtype=x.dtype)
    partial = np.zeros((num_chunks(g.N * _blocks4(max(g.H, g.OH))), 9, C), dtype=np.float64)
    _dw3x3_s1_backward(np.ascontiguousarray(x), np.ascontiguousarray(gy),
                       _tiled_weights(w[::-1, ::-1]), gx, partial, g.PT, g.PL)
    return gx, partial.sum(axis=0).astype(x.dtype).reshape(w.shape)

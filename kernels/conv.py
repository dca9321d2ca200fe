"""2-D convolution on channels-last arrays: im2col + BLAS GEMM.

Layouts: activations ``x`` are ``(N, H, W, C)``, weights ``w`` are
``(KH, KW, C/groups, C_out)``, outputs ``y`` are ``(N, OH, OW, C_out)``.

The columns matrix has one row per output pixel, in order ``(n, oh, ow)``, and
one column per kernel tap and input channel, in order ``(kh, kw, c)``.  So
``w.reshape(KH*KW*C, C_out)`` multiplies it directly, and the GEMM result *is*
the NHWC output, reshaped: no transposes anywhere.

Workspace: the convolutions never build the columns of the whole batch.  They
walk the ``N*OH`` output rows ``(n, oh)`` in chunks of ``rows`` consecutive
rows, with ``rows * OW * KH*KW*C/groups * itemsize <= min(CHUNK_BYTES,
get_workspace_limit())`` (``CHUNK_BYTES``: 4 MiB, so that the GEMM reads the
columns from the cache).
A chunk may span image boundaries (rows are numbered ``n*OH + oh``).  The
smallest chunk is one output row; if even one row's columns exceed the limit,
that one row is processed anyway (the only case where the limit is exceeded).
One buffer serves every chunk and group of a call, and it is kept for the
next call (one per dtype, only if it fits in the limit): fresh buffers of
tens of MB cost more in page faults than the im2col copy.

A 1x1 kernel with stride 1 and no padding needs no columns at all: the input
reshaped to ``(N*H*W, C)`` already is the columns matrix.

3x3 kernels with stride 1, no dilation, one group and padding of at most 2
on each side (every 3x3 layer of a ResNet but the stride-2 ones) take the
Winograd F(2x2, 3x3) route of ``kernels.winograd`` instead, for the forward
and both gradients: 2.25x fewer multiplies than the GEMM over im2col columns.
``set_winograd(False)`` turns it off (the results differ by rounding only).
"""

import numpy as np
from numba import njit, prange

from ._args import (
    ConvGeometry, _is_int, check_groups, check_nhwc, check_output_grad, check_same_dtype, check_shape4,
    check_weight,
)
from . import _buffers
from . import fused as _fused
from . import winograd as _wg
from ._config import FASTMATH

__all__ = [
    "im2col", "col2im", "conv2d_forward", "conv2d_backward_input",
    "conv2d_backward_weight", "conv2d_backward_bias",
    "set_workspace_limit", "get_workspace_limit", "set_winograd", "winograd_enabled",
]

_DEFAULT_WORKSPACE_LIMIT = 256 * 2**20
_workspace_limit = _DEFAULT_WORKSPACE_LIMIT


def set_workspace_limit(nbytes):
    """Set the most bytes an im2col buffer may take (default 256 MiB)."""
    global _workspace_limit
    if not _is_int(nbytes):
        raise TypeError(f"workspace limit must be an int number of bytes, got "
                        f"{nbytes!r} ({type(nbytes).__name__})")
    if nbytes < 1:
        raise ValueError(f"workspace limit must be >= 1 byte, got {nbytes}")
    _workspace_limit = int(nbytes)


def get_workspace_limit():
    """Return the most bytes an im2col buffer may take."""
    return _workspace_limit


_winograd = True


def set_winograd(enabled):
    """Turn the Winograd route for 3x3 stride-1 convolutions on (default) or off.

    Off, those convolutions use im2col + GEMM like every other shape; the two
    routes agree to rounding (about 1e-6 relative in float32).  Returns the
    previous setting, so a benchmark can time both and restore it.
    """
    global _winograd
    if not isinstance(enabled, (bool, np.bool_)):
        raise TypeError(f"enabled must be a bool, got {enabled!r} ({type(enabled).__name__})")
    previous, _winograd = _winograd, bool(enabled)
    return previous


def winograd_enabled():
    """True when 3x3 stride-1 convolutions take the Winograd route."""
    return _winograd


# --------------------------------------------------------------------- kernels


@njit(cache=True, fastmath=FASTMATH, parallel=True)
def _im2col_rows(x, cols, r0, r1, c0, CG, KH, KW, SH, SW, PT, PL, DH, DW, OH, OW):
    """Fill ``cols`` with the columns of output rows ``r0 <= r < r1``.

    Output row ``r = n*OH + oh`` owns the ``OW`` column rows starting at
    ``(r - r0)*OW``.  For output pixel ``(n, oh, ow)`` and tap ``(kh, kw)`` the
    input pixel is ``ih = oh*SH - PT + kh*DH``, ``iw = ow*SW - PL + kw*DW``;
    its channels ``c0 .. c0+CG-1`` go to columns ``(kh*KW + kw)*CG + j``.
    Taps that fall in the padding are written as zeros.  Parallel over ``r``:
    each thread writes its own column rows.
    """
    N, H, W, C = x.shape
    zero = x.dtype.type(0)
    run = DW == 1 and CG == C  # the KW taps of a row are one contiguous run of x
    KWCG = KW * CG
    for r in prange(r0, r1):
        n = r // OH
        oh = r - n * OH
        base = (r - r0) * OW
        for ow in range(OW):
            cr = cols[base + ow]  # row views and slice copies: contiguous, vectorised runs
            iw0 = ow * SW - PL
            for kh in range(KH):
                ih = oh * SH - PT + kh * DH
                colk = kh * KWCG
                if ih < 0 or ih >= H:
                    cr[colk:colk + KWCG] = zero
                    continue
                xr = x[n, ih]
                if run and iw0 >= 0 and iw0 + KW <= W:
                    cr[colk:colk + KWCG] = xr[iw0:iw0 + KW].ravel()
                    continue
                for kw in range(KW):
                    iw = iw0 + kw * DW
                    col = colk + kw * CG
                    if iw < 0 or iw >= W:
                        cr[col:col + CG] = zero
                    else:
                        cr[col:col + CG] = xr[iw, c0:c0 + CG]


@njit(cache=True, fastmath=FASTMATH, nogil=True)
def _add_into(out, a):
    """``out += a`` over 1-D arrays: a loop over two contiguous runs, which LLVM
    vectorises (the 4-D indexing it replaced did not)."""
    for j in range(out.shape[0]):
        out[j] += a[j]


@njit(cache=True, fastmath=FASTMATH, parallel=True)
def _col2im_rows(cols, gx, r0, r1, c0, CG, KH, KW, SH, SW, PT, PL, DH, DW, OH, OW):
    """Add the columns of output rows ``r0 <= r < r1`` into ``gx`` (the adjoint of im2col).

    Gather form, so that no two threads write the same pixel: parallel over
    input rows ``(n, ih)`` of the images those output rows touch.  Input row
    ``ih`` receives tap ``kh`` of output row ``oh`` when
    ``oh*SH - PT + kh*DH == ih``, i.e. ``s = ih + PT - kh*DH`` is a
    non-negative multiple of ``SH`` and ``oh = s // SH < OH``; within it,
    column row ``(r - r0)*OW + ow`` adds its columns ``(kh*KW + kw)*CG + j``
    to ``gx[n, ih, ow*SW - PL + kw*DW, c0 + j]`` when that ``iw`` is inside.
    """
    N, H, W, C = gx.shape
    n_lo = r0 // OH
    n_hi = (r1 - 1) // OH + 1
    for t in prange(n_lo * H, n_hi * H):
        n = t // H
        ih = t - n * H
        for kh in range(KH):
            s = ih + PT - kh * DH
            if s < 0 or s % SH != 0:
                continue
            oh = s // SH
            r = n * OH + oh
            if oh >= OH or r < r0 or r >= r1:
                continue
            base = (r - r0) * OW
            gr = gx[n, ih]
            for ow in range(OW):
                cr = cols[base + ow]
                for kw in range(KW):
                    iw = ow * SW - PL + kw * DW
                    if iw < 0 or iw >= W:
                        continue
                    _add_into(gr[iw, c0:c0 + CG], cr[(kh * KW + kw) * CG:(kh * KW + kw + 1) * CG])


# -------------------------------------------------------------------- geometry


class _Geometry(ConvGeometry):
    """``ConvGeometry`` (kernels/_args.py) with the questions the routes below ask of it."""

    def is_pointwise(self):
        """True for a 1x1 kernel with stride 1 and no padding (no im2col needed)."""
        return (self.KH == 1 and self.KW == 1 and self.SH == 1 and self.SW == 1
                and self.pads == (0, 0, 0, 0))

    def winograd(self, KH, KW, G, C):
        """True when this convolution takes the Winograd F(2x2, 3x3) route.

        3x3, stride 1, dilation 1, one group, each padding 0..2 (so the input
        gradient, a convolution padded by ``2 - P``, qualifies as well), and at
        least 8 input channels: with fewer, the transforms cost more than the
        multiplies they save.
        """
        return (_winograd and KH == 3 and KW == 3 and self.SH == 1 and self.SW == 1
                and self.DH == 1 and self.DW == 1 and G == 1 and C >= 8 and self.N > 0
                and self.OH > 0 and self.OW > 0 and max(self.pads) <= 2)

    def kernel_args(self):
        """The geometry arguments of ``_im2col_rows``/``_col2im_rows`` after ``CG``."""
        return (self.KH, self.KW, self.SH, self.SW, self.PT, self.PL, self.DH, self.DW, self.OH, self.OW)


# ------------------------------------------------------------------ public API


def im2col(x, kernel_size, stride=1, padding=0, dilation=1):
    """Return the columns of ``x`` (N, H, W, C): shape ``(N*OH*OW, KH*KW*C)``.

    Rows are ordered ``(n, oh, ow)`` and columns ``(kh, kw, c)``; padded taps
    are zero.  ``padding`` is an int, a pair, ``'same'``, ``'valid'`` or
    ``(top, bottom, left, right)``.  Builds the whole matrix (no workspace cap).
    """
    check_nhwc(x, "x")
    g = _Geometry(x.shape, kernel_size, stride, padding, dilation)
    x = np.ascontiguousarray(x)
    cols = np.empty((g.N * g.OH * g.OW, g.KH * g.KW * g.C), dtype=x.dtype)
    _im2col_rows(x, cols, 0, g.N * g.OH, 0, g.C, *g.kernel_args())
    return cols


def col2im(cols, x_shape, kernel_size, stride=1, padding=0, dilation=1):
    """Return the ``x_shape`` array that sums the columns back onto their pixels.

    The exact adjoint of ``im2col`` with the same arguments: contributions of
    overlapping windows add up; padded taps are dropped.
    """
    x_shape = check_shape4(x_shape, "x_shape", "(N, H, W, C)")
    if not isinstance(cols, np.ndarray):
        raise TypeError(f"cols must be a numpy.ndarray, got {type(cols).__name__}")
    if cols.dtype not in (np.float32, np.float64):
        raise TypeError(f"cols must have dtype float32 or float64, got {cols.dtype}")
    g = _Geometry(x_shape, kernel_size, stride, padding, dilation)
    expected = (g.N * g.OH * g.OW, g.KH * g.KW * g.C)
    if cols.shape != expected:
        raise ValueError(f"cols must have shape (N*OH*OW, KH*KW*C) = {expected} for "
                         f"x_shape={x_shape}, got {cols.shape}")
    cols = np.ascontiguousarray(cols)
    gx = np.zeros(x_shape, dtype=cols.dtype)
    if g.N > 0:
        _col2im_rows(cols, gx, 0, g.N * g.OH, 0, g.C, *g.kernel_args())
    return gx


def _workspace(rows, ncols, dtype):
    """Return an uninitialised ``(rows, ncols)`` im2col buffer (tests wrap this to watch its size).

    Reuses the buffer the previous call gave back when it is large enough
    (``kernels/_buffers.py``): a fresh buffer of tens of MB costs more in
    first-touch page faults than the im2col copy itself.
    """
    size = rows * ncols
    return _buffers.take("im2col", size, dtype)[:size].reshape(rows, ncols)


def _release_workspace(cols):
    """Give a buffer from ``_workspace`` back for reuse, if it fits in the workspace limit."""
    _buffers.give("im2col", cols.base if cols.base is not None else cols, _workspace_limit)


# Columns per chunk: a few MiB stay in the L3 cache between im2col writing them and
# the GEMM reading them.  Measured on the 2-core EPYC (32 MiB L3), one process,
# stride-2 3x3 64->128 at 32x32, forward + both gradients: 28.3 ms with the whole
# batch in one chunk (18.9 MB of columns), 26.9 ms at 8 MiB, 25.1 ms at 4 MiB;
# at batch 128, 123 -> 100 ms.  The workspace limit still caps it.
CHUNK_BYTES = 4 * 2**20


def _chunks(g, CG, dtype):
    """Return ``(buffer, [(r0, r1), ...])``: chunks of output rows ``n*OH + oh``.

    Each chunk's columns ``(r1 - r0)*OW x KH*KW*CG`` fit in ``CHUNK_BYTES``
    and in the workspace limit, except that a chunk always holds at least one
    output row.
    """
    total = g.N * g.OH
    ncols = g.KH * g.KW * CG
    row_bytes = g.OW * ncols * np.dtype(dtype).itemsize
    rows = max(1, min(total, min(CHUNK_BYTES, _workspace_limit) // row_bytes))
    buf = _workspace(rows * g.OW, ncols, dtype)
    return buf, [(r0, min(r0 + rows, total)) for r0 in range(0, total, rows)]


def conv2d_forward(x, w, b=None, stride=1, padding=0, dilation=1, groups=1, *, relu=False):
    """Convolve ``x`` (N, H, W, C) with ``w`` (KH, KW, C/groups, C_out), add ``b`` (C_out,).

    ``y[n, oh, ow, o] = b[o] + sum_{kh, kw, c} x[n, oh*SH - PT + kh*DH,
    ow*SW - PL + kw*DW, g*C/groups + c] * w[kh, kw, c, o]`` with ``g`` the group
    of ``o``.  Returns ``(N, OH, OW, C_out)`` in x's dtype.  ``relu=True``
    applies ``max(y, 0)`` as well (NaN stays NaN), fused into the Winograd
    output transform or into the bias pass: the inference path of
    convolution + folded BatchNorm + ReLU.
    """
    check_nhwc(x, "x")
    check_weight(w, "(KH, KW, C_in/groups, C_out)")
    check_same_dtype(x, "x", w, "w")
    KH, KW, CG, O = w.shape
    G = check_groups(groups, x.shape[3], KH, KW, CG, O)
    if b is not None:
        if not isinstance(b, np.ndarray):
            raise TypeError(f"b must be a numpy.ndarray or None, got {type(b).__name__}")
        check_same_dtype(x, "x", b, "b")
        if b.shape != (O,):
            raise ValueError(f"b must have shape (C_out,) = ({O},), got {b.shape}")
    g = _Geometry(x.shape, (KH, KW), stride, padding, dilation)
    x = np.ascontiguousarray(x)
    if g.winograd(KH, KW, G, CG):
        return _wg.winograd_forward(x, np.ascontiguousarray(w), g.pads, b, relu=bool(relu),
                                    budget=_workspace_limit)
    w2 = np.ascontiguousarray(w).reshape(KH * KW * CG, O)
    OG = O // G
    y = np.empty((g.N, g.OH, g.OW, O), dtype=x.dtype)
    y2 = y.reshape(-1, O)
    if g.is_pointwise():
        x2 = x.reshape(-1, g.C)
        for k in range(G):
            np.matmul(x2[:, k * CG:(k + 1) * CG], w2[:, k * OG:(k + 1) * OG],
                      out=y2[:, k * OG:(k + 1) * OG])
    elif g.N > 0:
        buf, chunks = _chunks(g, CG, x.dtype)
        for r0, r1 in chunks:
            cols = buf[:(r1 - r0) * g.OW]
            out = y2[r0 * g.OW:r1 * g.OW]
            for k in range(G):
                _im2col_rows(x, cols, r0, r1, k * CG, CG, *g.kernel_args())
                np.matmul(cols, w2[:, k * OG:(k + 1) * OG], out=out[:, k * OG:(k + 1) * OG])
        _release_workspace(buf)
    if relu:
        _fused.bias_relu_(y, np.zeros(O, dtype=y.dtype) if b is None else np.ascontiguousarray(b))
    elif b is not None:
        y2 += b
    return y


def conv2d_backward_input(gy, w, x_shape, stride=1, padding=0, dilation=1, groups=1):
    """Gradient of ``conv2d_forward`` with respect to ``x``: ``gx`` of shape ``x_shape``.

    Per chunk and group: columns ``gy2 @ w2.T`` (GEMM), then col2im adds them
    onto the input pixels they came from.  Stride 1, dilation 1, one group and
    padding ``< kernel`` take a faster route: the convolution of ``gy`` with the
    flipped, channel-swapped kernel (im2col + GEMM, no scatter).
    """
    check_nhwc(gy, "gy")
    check_weight(w, "(KH, KW, C_in/groups, C_out)")
    check_same_dtype(gy, "gy", w, "w")
    x_shape = check_shape4(x_shape, "x_shape", "(N, H, W, C)")
    KH, KW, CG, O = w.shape
    G = check_groups(groups, x_shape[3], KH, KW, CG, O, x_name="x_shape")
    g = _Geometry(x_shape, (KH, KW), stride, padding, dilation)
    check_output_grad(gy, (g.N, g.OH, g.OW, O), "(N, OH, OW, C_out)")
    gy2 = np.ascontiguousarray(gy).reshape(-1, O)
    w2 = np.ascontiguousarray(w).reshape(KH * KW * CG, O)
    OG = O // G
    if g.is_pointwise():
        gx = np.empty(x_shape, dtype=gy.dtype)
        gx2 = gx.reshape(-1, g.C)
        for k in range(G):
            np.matmul(gy2[:, k * OG:(k + 1) * OG], w2[:, k * OG:(k + 1) * OG].T,
                      out=gx2[:, k * CG:(k + 1) * CG])
        return gx
    PT, PB, PL, PR = g.pads
    flipped = (KH - 1 - PT, KH - 1 - PB, KW - 1 - PL, KW - 1 - PR)
    if g.winograd(KH, KW, G, O):  # the flipped convolution reads O channels
        return _wg.winograd_forward(np.ascontiguousarray(gy), np.ascontiguousarray(w), flipped,
                                    budget=_workspace_limit, flip=True)
    if (G == 1 and g.SH == g.SW == 1 and g.DH == g.DW == 1 and min(flipped) >= 0
            and g.N > 0 and g.H * g.W >= 64):  # measured slower at 4x4
        # Stride 1: gx is the convolution of gy with the flipped kernel, its in/out
        # channels swapped, padded by K-1-P: im2col of gy + GEMM, which is faster
        # than GEMM + col2im (the col2im scatter-add is the slowest step).
        wf = np.ascontiguousarray(w[::-1, ::-1].transpose(0, 1, 3, 2))
        return conv2d_forward(np.ascontiguousarray(gy), wf, None, stride=1, padding=flipped)
    gx = np.zeros(x_shape, dtype=gy.dtype)
    if g.N == 0:
        return gx
    buf, chunks = _chunks(g, CG, gy.dtype)
    for r0, r1 in chunks:
        cols = buf[:(r1 - r0) * g.OW]
        gy_chunk = gy2[r0 * g.OW:r1 * g.OW]
        for k in range(G):
            np.matmul(gy_chunk[:, k * OG:(k + 1) * OG], w2[:, k * OG:(k + 1) * OG].T, out=cols)
            _col2im_rows(cols, gx, r0, r1, k * CG, CG, *g.kernel_args())
    _release_workspace(buf)
    return gx


def conv2d_backward_weight(x, gy, w_shape, stride=1, padding=0, dilation=1, groups=1):
    """Gradient of ``conv2d_forward`` with respect to ``w``: ``gw`` of shape ``w_shape``.

    ``gw2[(kh, kw, c), o] = sum over chunks of cols.T @ gy2`` per group, where
    the columns are rebuilt chunk by chunk (bounded workspace).
    """
    check_nhwc(x, "x")
    check_nhwc(gy, "gy")
    check_same_dtype(x, "x", gy, "gy")
    w_shape = check_shape4(w_shape, "w_shape", "(KH, KW, C_in/groups, C_out)", allow_empty_batch=False)
    KH, KW, CG, O = w_shape
    G = check_groups(groups, x.shape[3], KH, KW, CG, O)
    g = _Geometry(x.shape, (KH, KW), stride, padding, dilation)
    check_output_grad(gy, (g.N, g.OH, g.OW, O), "(N, OH, OW, C_out)")
    x = np.ascontiguousarray(x)
    gy2 = np.ascontiguousarray(gy).reshape(-1, O)
    OG = O // G
    gw = np.zeros(w_shape, dtype=x.dtype)
    gw2 = gw.reshape(KH * KW * CG, O)
    if g.is_pointwise():
        x2 = x.reshape(-1, g.C)
        for k in range(G):
            np.matmul(x2[:, k * CG:(k + 1) * CG].T, gy2[:, k * OG:(k + 1) * OG],
                      out=gw2[:, k * OG:(k + 1) * OG])
        return gw
    if g.winograd(KH, KW, G, CG):
        return _wg.winograd_backward_weight(x, np.ascontiguousarray(gy), g.pads,
                                            budget=_workspace_limit)
    if g.N == 0:
        return gw
    buf, chunks = _chunks(g, CG, x.dtype)
    partial = np.empty((KH * KW * CG, OG), dtype=x.dtype)
    for r0, r1 in chunks:
        cols = buf[:(r1 - r0) * g.OW]
        gy_chunk = gy2[r0 * g.OW:r1 * g.OW]
        for k in range(G):
            _im2col_rows(x, cols, r0, r1, k * CG, CG, *g.kernel_args())
            np.matmul(cols.T, gy_chunk[:, k * OG:(k + 1) * OG], out=partial)
            gw2[:, k * OG:(k + 1) * OG] += partial
    _release_workspace(buf)
    return gw


def conv2d_backward_bias(gy):
    """Gradient with respect to the bias: ``gy`` summed over N, OH and OW."""
    check_nhwc(gy, "gy")
    return gy.sum(axis=(0, 1, 2))

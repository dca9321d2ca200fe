"""Winograd F(2x2, 3x3) convolution for 3x3, stride-1, undilated kernels (NHWC).

The output is cut into 2x2 tiles; tile ``t = (n, th, tw)`` covers output rows
``2*th, 2*th+1`` and columns ``2*tw, 2*tw+1`` and reads the 4x4 input patch
``d`` whose top-left pixel is ``(2*th - PT, 2*tw - PL)`` (pixels in the padding
are zero).  With the F(2, 3) matrices (Lavin & Gray, 2015)::

    B^T = [[1, 0, -1, 0],    G = [[1,    0,   0  ],    A^T = [[1, 1,  1,  0],
           [0, 1,  1, 0],         [1/2,  1/2, 1/2],           [0, 1, -1, -1]]
           [0, -1, 1, 0],         [1/2, -1/2, 1/2],
           [0, 1,  0, -1]]        [0,    0,   1  ]]

the 2x2 output tile of one output channel is ``A^T [sum_c U_c (.) V_c] A`` with
``U_c = G g_c G^T`` (the 3x3 filter moved to 4x4) and ``V_c = B^T d_c B``.
Read per element ``xi = (a, b)`` of the 4x4 tile, the channel sum is a matrix
product: ``M[xi] = V[xi] @ U[xi]`` with ``V[xi]`` of shape (tiles, C) and
``U[xi]`` of shape (C, C_out).  So one convolution is an input transform, 16
GEMMs and an output transform, and it needs 16 multiplies per 4 outputs where
the direct form needs 36: 2.25x fewer.  The transforms are additions only.

The gradients are the adjoints of the same three steps:

- weight: ``dU[xi] = V[xi].T @ Z[xi]`` with ``Z = A gy_tile A^T`` (the adjoint
  of the output transform), then ``dg = G^T dU G``;
- input: the stride-1 3x3 convolution of ``gy`` with the kernel flipped in
  space and its channel axes swapped, padded by ``2 - P``.  Flipping ``g``
  only swaps the first and last rows of ``G g G^T`` (rows 1 and 2 of ``G``
  are mirror images of themselves), so that convolution reuses ``U`` with
  ``a, b`` mapped through ``(3, 1, 2, 0)`` and each ``U[xi]`` transposed:
  no flipped copy of the weights is made (``flip=True``).

Tiles are processed in chunks of whole tile rows so that ``V`` and ``M`` of a
chunk stay in the last-level cache; one buffer pair serves every chunk.
"""

import numpy as np
from numba import njit, prange

from . import _buffers
from ._config import FASTMATH
from ._parallel import SLOTS, run_units

__all__ = ["winograd_forward", "winograd_backward_weight", "weight_transform",
           "weight_transform_adjoint", "tile_grid", "CHUNK_BYTES", "GRAD_CHUNK_BYTES"]

# Bytes of V + M (or V + Z) per chunk of tiles.  Measured on the 2-core EPYC
# (32 MiB L3, 1 MiB L2 per core) for the ResNet-34 CIFAR shapes: the forward is
# fastest with chunks that stay in the L3 (8 MiB); the weight gradient prefers
# one long reduction per GEMM (its outputs are only C x C_out).
CHUNK_BYTES = 8 * 2**20
GRAD_CHUNK_BYTES = 64 * 2**20


def tile_grid(OH, OW):
    """Number of 2x2 output tiles along the height and the width."""
    return (OH + 1) // 2, (OW + 1) // 2


# ----------------------------------------------------------- weight transforms


@njit(cache=True, fastmath=FASTMATH, parallel=True)
def _weight_transform(w, U):
    """``U[4a + b, c, :] = (G g G^T)[a, b]`` for the 3x3 filters ``g = w[:, :, c, :]``.

    Parallel over input channels; the inner loops run over contiguous output
    channels.
    """
    C, K = w.shape[2], w.shape[3]
    half = w.dtype.type(0.5)
    for c in prange(C):
        for k in range(K):
            # G g: rows (g0, (g0+g1+g2)/2, (g0-g1+g2)/2, g2), for each filter column
            r00 = w[0, 0, c, k]
            r01 = w[0, 1, c, k]
            r02 = w[0, 2, c, k]
            r10 = (w[0, 0, c, k] + w[1, 0, c, k] + w[2, 0, c, k]) * half
            r11 = (w[0, 1, c, k] + w[1, 1, c, k] + w[2, 1, c, k]) * half
            r12 = (w[0, 2, c, k] + w[1, 2, c, k] + w[2, 2, c, k]) * half
            r20 = (w[0, 0, c, k] - w[1, 0, c, k] + w[2, 0, c, k]) * half
            r21 = (w[0, 1, c, k] - w[1, 1, c, k] + w[2, 1, c, k]) * half
            r22 = (w[0, 2, c, k] - w[1, 2, c, k] + w[2, 2, c, k]) * half
            r30 = w[2, 0, c, k]
            r31 = w[2, 1, c, k]
            r32 = w[2, 2, c, k]
            # (G g) G^T: the same combination across the columns
            U[0, c, k] = r00
            U[1, c, k] = (r00 + r01 + r02) * half
            U[2, c, k] = (r00 - r01 + r02) * half
            U[3, c, k] = r02
            U[4, c, k] = r10
            U[5, c, k] = (r10 + r11 + r12) * half
            U[6, c, k] = (r10 - r11 + r12) * half
            U[7, c, k] = r12
            U[8, c, k] = r20
            U[9, c, k] = (r20 + r21 + r22) * half
            U[10, c, k] = (r20 - r21 + r22) * half
            U[11, c, k] = r22
            U[12, c, k] = r30
            U[13, c, k] = (r30 + r31 + r32) * half
            U[14, c, k] = (r30 - r31 + r32) * half
            U[15, c, k] = r32


@njit(cache=True, fastmath=FASTMATH, parallel=True)
def _weight_transform_adjoint(dU, dw):
    """``dw[:, :, c, :] = G^T dU G`` (the adjoint of ``_weight_transform``)."""
    C, K = dU.shape[1], dU.shape[2]
    half = dU.dtype.type(0.5)
    for c in prange(C):
        for k in range(K):
            # G^T over the rows a: (d0 + (d1+d2)/2, (d1-d2)/2, (d1+d2)/2 + d3), per column b
            d00, d01, d02, d03 = dU[0, c, k], dU[1, c, k], dU[2, c, k], dU[3, c, k]
            d10, d11, d12, d13 = dU[4, c, k], dU[5, c, k], dU[6, c, k], dU[7, c, k]
            d20, d21, d22, d23 = dU[8, c, k], dU[9, c, k], dU[10, c, k], dU[11, c, k]
            d30, d31, d32, d33 = dU[12, c, k], dU[13, c, k], dU[14, c, k], dU[15, c, k]
            e00 = d00 + (d10 + d20) * half
            e01 = d01 + (d11 + d21) * half
            e02 = d02 + (d12 + d22) * half
            e03 = d03 + (d13 + d23) * half
            e10 = (d10 - d20) * half
            e11 = (d11 - d21) * half
            e12 = (d12 - d22) * half
            e13 = (d13 - d23) * half
            e20 = (d10 + d20) * half + d30
            e21 = (d11 + d21) * half + d31
            e22 = (d12 + d22) * half + d32
            e23 = (d13 + d23) * half + d33
            # ... then G over the columns b
            dw[0, 0, c, k] = e00 + (e01 + e02) * half
            dw[0, 1, c, k] = (e01 - e02) * half
            dw[0, 2, c, k] = (e01 + e02) * half + e03
            dw[1, 0, c, k] = e10 + (e11 + e12) * half
            dw[1, 1, c, k] = (e11 - e12) * half
            dw[1, 2, c, k] = (e11 + e12) * half + e13
            dw[2, 0, c, k] = e20 + (e21 + e22) * half
            dw[2, 1, c, k] = (e21 - e22) * half
            dw[2, 2, c, k] = (e21 + e22) * half + e23


def weight_transform(w):
    """``U[xi] = (G g G^T)[a, b]`` for ``w`` (3, 3, C, C_out) -> (16, C, C_out), ``xi = 4*a + b``."""
    w = np.ascontiguousarray(w)
    U = np.empty((16,) + w.shape[2:], dtype=w.dtype)
    _weight_transform(w, U)
    return U


def weight_transform_adjoint(du):
    """``dg = G^T dU G`` for ``du`` (16, C, C_out) -> (3, 3, C, C_out): the
    gradient of a loss with respect to ``g`` given its gradient w.r.t. ``U``."""
    du = np.ascontiguousarray(du)
    dw = np.empty((3, 3) + du.shape[1:], dtype=du.dtype)
    _weight_transform_adjoint(du, dw)
    return dw


# ------------------------------------------------------------------ kernels


@njit(cache=True, fastmath=FASTMATH)
def _lin2(out, a, sa, b, sb):
    """``out = sa*a + sb*b`` elementwise over 1-D arrays (``sa``, ``sb`` are +-1).

    The transforms are built from these short loops over contiguous channel
    runs: with three arrays per loop LLVM vectorises them (one loop writing
    sixteen arrays at once it does not)."""
    for i in range(out.shape[0]):
        out[i] = sa * a[i] + sb * b[i]


@njit(cache=True, fastmath=FASTMATH)
def _lin3(out, a, sa, b, sb, c, sc, bias):
    """``out = sa*a + sb*b + sc*c + bias`` elementwise over 1-D arrays (``bias`` 1-D)."""
    for i in range(out.shape[0]):
        out[i] = sa * a[i] + sb * b[i] + sc * c[i] + bias[i]


@njit(cache=True, fastmath=FASTMATH, nogil=True)
def _input_row(x, V, q, t0, TH, TW, PT, PL, d, r):
    """``V[xi, t0 + tw, :] = (B^T d B)[a, b]`` for the tiles of tile row ``q = n*TH + th``.

    Copies the row's four input rows, zero-padded, into the scratch ``d``
    (4, ``WP*C``) with ``WP = 2*TW + 2`` pixels, applies ``B^T`` down the rows
    once for the whole tile row (every tile of the row shares it) into the
    scratch ``r``, then ``B`` across each tile's four columns.
    """
    N, H, W, C = x.shape
    WP = 2 * TW + 2
    one = x.dtype.type(1)
    zero = x.dtype.type(0)
    n = q // TH
    th = q - n * TH
    lo = PL  # scratch columns lo .. hi-1 hold input columns 0 .. hi-lo-1
    hi = min(WP, W + PL)
    for i in range(4):
        ih = 2 * th - PT + i
        di = d[i]
        if ih < 0 or ih >= H:
            di[:] = zero
            continue
        di[:lo * C] = zero
        di[hi * C:] = zero
        di[lo * C:hi * C] = x[n, ih, :hi - lo].ravel()
    _lin2(r[0], d[0], one, d[2], -one)  # B^T down the rows
    _lin2(r[1], d[1], one, d[2], one)
    _lin2(r[2], d[2], one, d[1], -one)
    _lin2(r[3], d[1], one, d[3], -one)
    for tw in range(TW):
        t = t0 + tw
        j = 2 * tw * C
        for a in range(4):  # B across the columns
            ra = r[a]
            c0 = ra[j:j + C]
            c1 = ra[j + C:j + 2 * C]
            c2 = ra[j + 2 * C:j + 3 * C]
            c3 = ra[j + 3 * C:j + 4 * C]
            _lin2(V[4 * a, t], c0, one, c2, -one)
            _lin2(V[4 * a + 1, t], c1, one, c2, one)
            _lin2(V[4 * a + 2, t], c2, one, c1, -one)
            _lin2(V[4 * a + 3, t], c1, one, c3, -one)


@njit(cache=True, fastmath=FASTMATH, parallel=True)
def _input_transform(x, V, q0, q1, TH, TW, PT, PL):
    """``_input_row`` for tile rows ``q0 <= q < q1`` (tiles ``(q - q0)*TW + tw``), in parallel."""
    L = (2 * TW + 2) * x.shape[3]
    for q in prange(q0, q1):
        d = np.empty((4, L), dtype=x.dtype)
        r = np.empty((4, L), dtype=x.dtype)
        _input_row(x, V, q, (q - q0) * TW, TH, TW, PT, PL, d, r)


@njit(cache=True, fastmath=FASTMATH, nogil=True)
def _input_transform_serial(x, V, q0, q1, TH, TW, PT, PL):
    """``_input_transform`` on the calling thread only (for one-chunk-per-core work)."""
    L = (2 * TW + 2) * x.shape[3]
    d = np.empty((4, L), dtype=x.dtype)
    r = np.empty((4, L), dtype=x.dtype)
    for q in range(q0, q1):
        _input_row(x, V, q, (q - q0) * TW, TH, TW, PT, PL, d, r)


@njit(cache=True, fastmath=FASTMATH, nogil=True)
def _relu_rows(y):
    """In-place ReLU of a 2-D array (NaN passes through: ``v < 0`` is false)."""
    zero = y.dtype.type(0)
    for i in range(y.shape[0]):
        yi = y[i]
        for k in range(yi.shape[0]):
            if yi[k] < zero:
                yi[k] = zero


@njit(cache=True, fastmath=FASTMATH, nogil=True)
def _output_row(M, y, q, t0, TH, TW, b, relu, s, u, zl):
    """``y`` tiles of tile row ``q`` = ``A^T M A`` (+ ``b``, then ReLU if ``relu``).

    ``M`` is (16, tiles, K); the row's tiles are ``t0 .. t0 + TW - 1``.
    ``A^T`` down the rows runs once over all the row's tiles (contiguous runs
    of ``TW*K``) into the scratch ``s`` and ``u`` (4, ``TW*K``) each, then
    ``A`` across the columns writes each tile's 2x2 pixels; outputs past
    ``OH``/``OW`` (odd sizes) are dropped.  ``b`` has length K (zeros when
    there is no bias); ``zl`` is a zero vector of length ``TW*K``.
    """
    N, OH, OW, K = y.shape
    one = y.dtype.type(1)
    n = q // TH
    th = q - n * TH
    oh = 2 * th
    for bcol in range(4):
        m0 = M[bcol, t0:t0 + TW].ravel()
        m1 = M[4 + bcol, t0:t0 + TW].ravel()
        m2 = M[8 + bcol, t0:t0 + TW].ravel()
        m3 = M[12 + bcol, t0:t0 + TW].ravel()
        _lin3(s[bcol], m0, one, m1, one, m2, one, zl)
        _lin3(u[bcol], m1, one, m2, -one, m3, -one, zl)
    for i in range(2):
        if oh + i >= OH:
            break
        rows = s if i == 0 else u
        yr = y[n, oh + i]
        for tw in range(TW):
            ow = 2 * tw
            k0 = tw * K
            v0 = rows[0, k0:k0 + K]
            v1 = rows[1, k0:k0 + K]
            v2 = rows[2, k0:k0 + K]
            v3 = rows[3, k0:k0 + K]
            _lin3(yr[ow], v0, one, v1, one, v2, one, b)
            if ow + 1 < OW:
                _lin3(yr[ow + 1], v1, one, v2, -one, v3, -one, b)
        if relu:
            _relu_rows(yr)


@njit(cache=True, fastmath=FASTMATH, parallel=True)
def _output_transform(M, y, q0, q1, TH, TW, b, relu):
    """``_output_row`` for tile rows ``q0 <= q < q1`` (tiles ``(q - q0)*TW + tw``), in parallel."""
    L = TW * y.shape[3]
    for q in prange(q0, q1):
        s = np.empty((4, L), dtype=y.dtype)
        u = np.empty((4, L), dtype=y.dtype)
        zl = np.zeros(L, dtype=y.dtype)
        _output_row(M, y, q, (q - q0) * TW, TH, TW, b, relu, s, u, zl)


@njit(cache=True, fastmath=FASTMATH, nogil=True)
def _output_transform_serial(M, y, q0, q1, TH, TW, b, relu):
    """``_output_transform`` on the calling thread only."""
    L = TW * y.shape[3]
    s = np.empty((4, L), dtype=y.dtype)
    u = np.empty((4, L), dtype=y.dtype)
    zl = np.zeros(L, dtype=y.dtype)
    for q in range(q0, q1):
        _output_row(M, y, q, (q - q0) * TW, TH, TW, b, relu, s, u, zl)


@njit(cache=True, fastmath=FASTMATH, nogil=True)
def _adjoint_row(gy, Z, q, t0, TH, TW, g, p):
    """``Z[xi, t0 + tw, :] = (A g A^T)[a, b]`` for the 2x2 tiles ``g`` of tile row ``q``
    of ``gy`` (zero past ``OH``/``OW``): the adjoint of ``_output_row``.

    The two gradient rows are copied, zero-padded to ``2*TW`` pixels, into the
    scratch ``g`` (2, ``2*TW*K``); ``A`` down the rows gives the four rows
    ``(g0, g0+g1, g0-g1, -g1)`` of the scratch ``p`` (4, ``2*TW*K``) for all
    tiles at once, then ``A^T`` across each tile's two columns gives
    ``(c0, c0+c1, c0-c1, -c1)``.
    """
    N, OH, OW, K = gy.shape
    one = gy.dtype.type(1)
    zero = gy.dtype.type(0)
    n = q // TH
    th = q - n * TH
    oh = 2 * th
    for i in range(2):
        gi = g[i]
        if oh + i >= OH:
            gi[:] = zero
            continue
        gi[:OW * K] = gy[n, oh + i].ravel()
        gi[OW * K:] = zero
    p[0] = g[0]
    _lin2(p[1], g[0], one, g[1], one)
    _lin2(p[2], g[0], one, g[1], -one)
    _lin2(p[3], g[1], -one, g[1], zero)
    for tw in range(TW):
        t = t0 + tw
        k0 = 2 * tw * K
        for a in range(4):
            pa = p[a]
            c0 = pa[k0:k0 + K]
            c1 = pa[k0 + K:k0 + 2 * K]
            Z[4 * a, t] = c0
            _lin2(Z[4 * a + 1, t], c0, one, c1, one)
            _lin2(Z[4 * a + 2, t], c0, one, c1, -one)
            _lin2(Z[4 * a + 3, t], c1, -one, c1, zero)


@njit(cache=True, fastmath=FASTMATH, parallel=True)
def _output_transform_adjoint(gy, Z, q0, q1, TH, TW):
    """``_adjoint_row`` for tile rows ``q0 <= q < q1`` (tiles ``(q - q0)*TW + tw``), in parallel."""
    L = 2 * TW * gy.shape[3]
    for q in prange(q0, q1):
        g = np.empty((2, L), dtype=gy.dtype)
        p = np.empty((4, L), dtype=gy.dtype)
        _adjoint_row(gy, Z, q, (q - q0) * TW, TH, TW, g, p)


@njit(cache=True, fastmath=FASTMATH, nogil=True)
def _output_transform_adjoint_serial(gy, Z, q0, q1, TH, TW):
    """``_output_transform_adjoint`` on the calling thread only."""
    L = 2 * TW * gy.shape[3]
    g = np.empty((2, L), dtype=gy.dtype)
    p = np.empty((4, L), dtype=gy.dtype)
    for q in range(q0, q1):
        _adjoint_row(gy, Z, q, (q - q0) * TW, TH, TW, g, p)


# ------------------------------------------------------------------ drivers
#
# Two ways to spread a convolution over the threads, chosen by the size of U:
#
# - per core (U of at most U_PER_CORE_MAX bytes, the usual case): the tiles are
#   cut into small chunks whose V and M fit in a core's L2 (PER_CORE_BYTES);
#   each thread takes every n-th chunk and runs its input transform, its 16
#   GEMMs (BLAS held at one thread) and its output transform on its own, so a
#   chunk never leaves its core's cache and the threads never wait for each
#   other inside a convolution.  Threads take the next chunk when done with
#   one (a core shared with another process does less of the work).  Measured at batch 128 on the 2-core EPYC:
#   64@32x32 forward 65 -> 40 ms, 128@16x16 51 -> 31 ms.
# - shared (large U, e.g. 512 channels in and out: 16 MiB in float32): each
#   chunk's transforms run in parallel over its tile rows and its GEMMs use
#   BLAS's threads, so both cores share the one copy of U that the chunk reads.
#
# Either way the results do not depend on the thread count: a chunk's outputs
# are computed the same way whoever computes them, and the weight gradient sums
# its chunks into a fixed number (SLOTS) of partial sums, each in chunk order,
# added up in slot order.

U_PER_CORE_MAX = 2 * 2**20
PER_CORE_BYTES = 512 * 2**10


def _per_core(C, K, itemsize):
    return 16 * C * K * itemsize <= U_PER_CORE_MAX

def _budget(default, cap):
    return default if cap is None else min(default, cap)


def _chunk_rows(N, TH, TW, per_tile, budget):
    """Tile rows per chunk so that ``per_tile`` bytes per tile fit in ``budget`` (>= 1 row)."""
    total = N * TH
    rows = max(1, min(total, budget // max(1, TW * per_tile)))
    return rows, [(q0, min(q0 + rows, total)) for q0 in range(0, total, rows)]


_FLIP = np.array([4 * (3 - a if a in (0, 3) else a) + (3 - b if b in (0, 3) else b)
                  for a in range(4) for b in range(4)])  # xi of the flipped kernel -> xi of U


def _gemms(V, U, M, flip):
    """``M[xi] = V[xi] @ U[xi]`` (``flip``: ``V[xi] @ U[_FLIP[xi]].T``)."""
    if flip:
        for xi in range(16):
            np.matmul(V[xi], U[_FLIP[xi]].T, out=M[xi])
    else:
        np.matmul(V, U, out=M)


def _flipped(U):
    """``U[_FLIP[xi]].T`` for every ``xi``, as one contiguous (16, K, C) array."""
    return np.ascontiguousarray(U[_FLIP].transpose(0, 2, 1))


def winograd_forward(x, w, pads, b=None, relu=False, budget=None, flip=False):
    """``y = conv2d(x, w)`` for a 3x3 kernel, stride 1, dilation 1 and padding
    ``pads = (top, bottom, left, right)``, each in ``0..2``; optionally
    ``+ b`` and ReLU fused into the output transform.

    ``x`` (N, H, W, C) and ``w`` (3, 3, C, K) are contiguous arrays of one
    float dtype (the caller checks).  With ``flip=True`` the kernel is ``w``
    flipped in space with its channel axes swapped: ``w`` is (3, 3, K, C),
    which is how the input gradient convolves ``gy`` (see the module notes).
    Returns (N, OH, OW, K).  ``budget`` caps the bytes of the chunk buffers
    (at least one tile row is processed at a time).
    """
    N, H, W, C = x.shape
    K = w.shape[2] if flip else w.shape[3]
    PT, PB, PL, PR = pads
    OH, OW = H + PT + PB - 2, W + PL + PR - 2
    y = np.empty((N, OH, OW, K), dtype=x.dtype)
    if y.size == 0:
        return y
    if C == 0:
        y[...] = 0 if b is None else b
        if relu:
            np.maximum(y, 0, out=y)
        return y
    TH, TW = tile_grid(OH, OW)
    U = weight_transform(w)
    bias = np.zeros(K, dtype=x.dtype) if b is None else np.ascontiguousarray(b)
    per_tile = 16 * (C + K) * x.itemsize
    if _per_core(C, K, x.itemsize):
        rows, chunks = _chunk_rows(N, TH, TW, per_tile, _budget(PER_CORE_BYTES, budget))
        if flip:  # a small U: one copy, then one stacked GEMM call per chunk
            U, flip = _flipped(U), False

        def make_worker():
            vbuf = np.empty(16 * rows * TW * C, dtype=x.dtype)
            mbuf = np.empty(16 * rows * TW * K, dtype=x.dtype)

            def work(i):
                q0, q1 = chunks[i]
                T = (q1 - q0) * TW
                V = vbuf[:16 * T * C].reshape(16, T, C)
                M = mbuf[:16 * T * K].reshape(16, T, K)
                _input_transform_serial(x, V, q0, q1, TH, TW, PT, PL)
                _gemms(V, U, M, flip)
                _output_transform_serial(M, y, q0, q1, TH, TW, bias, relu)
            return work

        run_units(make_worker, len(chunks))
        return y
    budget_bytes = _budget(CHUNK_BYTES, budget)
    rows, chunks = _chunk_rows(N, TH, TW, per_tile, budget_bytes)
    vbuf = _buffers.take("winograd V", 16 * rows * TW * C, x.dtype)
    mbuf = _buffers.take("winograd M", 16 * rows * TW * K, x.dtype)
    for q0, q1 in chunks:
        T = (q1 - q0) * TW
        V = vbuf[:16 * T * C].reshape(16, T, C)
        M = mbuf[:16 * T * K].reshape(16, T, K)
        _input_transform(x, V, q0, q1, TH, TW, PT, PL)
        _gemms(V, U, M, flip)
        _output_transform(M, y, q0, q1, TH, TW, bias, relu)
    _buffers.give("winograd V", vbuf, budget_bytes)
    _buffers.give("winograd M", mbuf, budget_bytes)
    return y


def winograd_backward_weight(x, gy, pads, budget=None):
    """Gradient of ``winograd_forward`` with respect to ``w``: (3, 3, C, K).

    Per chunk of tiles: ``V`` of ``x`` as in the forward, ``Z`` of ``gy``
    (adjoint output transform), ``dU[xi] += V[xi].T @ Z[xi]``; then
    ``dg = G^T dU G``.  ``V`` is transformed again rather than kept from the
    forward: it is 4x the size of ``x``, and keeping it for every layer until
    backward would cost more memory than the transform costs time.
    """
    N, H, W, C = x.shape
    K = gy.shape[3]
    PT, PB, PL, PR = pads
    OH, OW = gy.shape[1], gy.shape[2]
    dU = np.zeros((16, C, K), dtype=x.dtype)
    if N == 0 or OH == 0 or OW == 0 or C == 0 or K == 0:
        return weight_transform_adjoint(dU)
    TH, TW = tile_grid(OH, OW)
    per_tile = 16 * (C + K) * x.itemsize
    if _per_core(C, K, x.itemsize):
        rows, chunks = _chunk_rows(N, TH, TW, per_tile, _budget(PER_CORE_BYTES, budget))
        slots = np.zeros((SLOTS, 16, C, K), dtype=x.dtype)

        def make_worker():
            vbuf = np.empty(16 * rows * TW * C, dtype=x.dtype)
            zbuf = np.empty(16 * rows * TW * K, dtype=x.dtype)
            partial = np.empty((16, C, K), dtype=x.dtype)

            def work(slot):  # the chunks slot, slot + SLOTS, ... in order
                for q0, q1 in chunks[slot::SLOTS]:
                    T = (q1 - q0) * TW
                    V = vbuf[:16 * T * C].reshape(16, T, C)
                    Z = zbuf[:16 * T * K].reshape(16, T, K)
                    _input_transform_serial(x, V, q0, q1, TH, TW, PT, PL)
                    _output_transform_adjoint_serial(gy, Z, q0, q1, TH, TW)
                    np.matmul(V.transpose(0, 2, 1), Z, out=partial)
                    slots[slot] += partial
            return work

        run_units(make_worker, min(SLOTS, len(chunks)))
        for slot in range(SLOTS):
            dU += slots[slot]
        return weight_transform_adjoint(dU)
    budget_bytes = _budget(GRAD_CHUNK_BYTES, budget)
    rows, chunks = _chunk_rows(N, TH, TW, per_tile, budget_bytes)
    vbuf = _buffers.take("winograd V", 16 * rows * TW * C, x.dtype)
    zbuf = _buffers.take("winograd M", 16 * rows * TW * K, x.dtype)
    partial = np.empty((16, C, K), dtype=x.dtype)
    for q0, q1 in chunks:
        T = (q1 - q0) * TW
        V = vbuf[:16 * T * C].reshape(16, T, C)
        Z = zbuf[:16 * T * K].reshape(16, T, K)
        _input_transform(x, V, q0, q1, TH, TW, PT, PL)
        _output_transform_adjoint(gy, Z, q0, q1, TH, TW)
        np.matmul(V.transpose(0, 2, 1), Z, out=partial)
        dU += partial
    _buffers.give("winograd V", vbuf, budget_bytes)
    _buffers.give("winograd M", zbuf, budget_bytes)
    return weight_transform_adjoint(dU)

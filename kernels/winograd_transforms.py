"""The three transforms of the Winograd F(2x2, 3x3) convolution (``winograd.py``
derives them and holds the drivers that call them), on NHWC arrays:

- weights: ``U = G g G^T`` per (input, output) channel pair, and its adjoint
  ``dg = G^T dU G`` (``weight_transform``, ``weight_transform_adjoint``);
- input: ``V = B^T d B`` for the 4x4 patch ``d`` of every 2x2 output tile
  (``_input_row``);
- output: ``y = A^T M A`` per tile, plus the bias and an optional ReLU
  (``_output_row``), and its adjoint ``Z = A gy A^T`` for the weight gradient
  (``_adjoint_row``).

``V``, ``M`` and ``Z`` are ``(16, tiles, channels)``: element ``xi = 4*a + b`` of
every tile of a chunk, channels contiguous.  The transforms are additions only,
written as short loops over contiguous channel runs (``_lin2``, ``_lin3``) that
LLVM vectorises.

Each ``_*_row`` kernel does one tile row ``q = n*TH + th`` with the scratch it is
given.  Two loops over the tile rows of a chunk call it:

- ``_input_transform``, ``_output_transform``, ``_output_transform_adjoint``:
  parallel over tile rows (``prange``), each iteration with scratch of its own;
  for the drivers in which all threads share each chunk;
- ``..._serial`` twins: on the calling thread, scratch allocated once for all
  rows, and ``nogil``: for the one-chunk-per-core drivers, whose Python threads
  (``_parallel.run_units``) each run whole chunks.

The twins are not one function compiled twice: where the scratch lives
differs (per iteration, as parallel threads need, or once, hoisted out of the
loop), and only the serial ones release the GIL.

Races: the entries of ``V``, ``Z`` or ``y`` of a tile row are written only by the
iteration that owns the row, those of ``U`` or ``dg`` of an input channel only
by the iteration that owns the channel.
"""

import numpy as np
from numba import njit, prange

from ._config import FASTMATH

# The drivers of winograd.py also import the loops over tile rows: _input_transform,
# _output_transform, _output_transform_adjoint and their _serial twins.
__all__ = ["weight_transform", "weight_transform_adjoint"]


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


# ------------------------------------------- input and output transforms


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

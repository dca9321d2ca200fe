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
chunk stay in the last-level cache; one buffer pair serves every chunk.  This
file holds
the drivers (how the chunks are cut and shared out between the threads, and
the GEMMs); the transforms themselves are in ``winograd_transforms.py``.
"""

import numpy as np

from . import _buffers
from ._parallel import SLOTS, run_units
from .winograd_transforms import (
    _input_transform, _input_transform_serial, _output_transform, _output_transform_adjoint,
    _output_transform_adjoint_serial, _output_transform_serial, weight_transform, weight_transform_adjoint,
)

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

"""Fused elementwise passes for inference: bias + ReLU in one sweep.

Used after a convolution whose BatchNorm was folded into its weights
(``tinycnn.nn.fusion``): the GEMM writes ``y`` without bias, then one pass
adds the folded bias and applies the ReLU, in place, instead of three
passes (bias, normalise, ReLU) over the activation.
"""

import numpy as np
from numba import njit, prange

from ._config import FASTMATH

__all__ = ["bias_relu_"]


@njit(cache=True, fastmath=FASTMATH, parallel=True)
def _bias_relu_rows(y2, b):
    """``y2[r, c] = max(y2[r, c] + b[c], 0)`` in place; rows in parallel.

    ``y2`` is (R, C): an NHWC activation viewed as ``R = N*H*W`` rows of C
    channels, so each thread owns whole rows and the inner loop runs over
    contiguous channels.  A NaN stays NaN (``v < 0`` is false for it).
    """
    R, C = y2.shape
    for r in prange(R):
        for c in range(C):
            v = y2[r, c] + b[c]
            if v < 0:
                v = 0
            y2[r, c] = v


def bias_relu_(y, b):
    """Add ``b`` (C,) to the last axis of ``y`` (..., C) and apply ReLU, in place.

    ``y`` must be a C-contiguous float32 or float64 array, ``b`` a vector of
    its last-axis length and dtype.  Returns ``y``.
    """
    if not isinstance(y, np.ndarray) or not isinstance(b, np.ndarray):
        raise TypeError(f"bias_relu_: y and b must be numpy.ndarrays, got {type(y).__name__} and "
                        f"{type(b).__name__}")
    if y.dtype not in (np.float32, np.float64) or b.dtype != y.dtype:
        raise TypeError(f"bias_relu_: y must be float32 or float64 and b of the same dtype, got "
                        f"{y.dtype} and {b.dtype}")
    if y.ndim < 1 or b.shape != (y.shape[-1],):
        raise ValueError(f"bias_relu_: b must have shape ({y.shape[-1] if y.ndim else '?'},) for y of shape "
                         f"{y.shape}, got {b.shape}")
    if not y.flags.c_contiguous or not y.flags.writeable:
        raise ValueError("bias_relu_: y must be a writeable C-contiguous array (it is updated in place)")
    if y.size:
        _bias_relu_rows(y.reshape(-1, y.shape[-1]), np.ascontiguousarray(b))
    return y

"""Checks shared by the convolution, pooling and normalisation functions.

The kernels validate their own arguments; these wrappers check what only
the Tensor level knows (types, dtypes of several tensors together) and
prefix every kernel error with the function's name.  The rules for scalar
arguments are the kernels' own (``kernels/_args.py``), re-exported here for
the layers, which check them when they are built: the ops are the only part
of the engine that imports the kernels.
"""

import contextlib

import numpy as np

from ..kernels._args import check_eps, check_positive_int, check_unit_interval, pair  # noqa: F401  (re-exported)
from ..tensor import Tensor


def tensor_arg(op, name, value, ndim=None, optional=False):
    """``value`` as a Tensor with a float32/float64 dtype (and ``ndim`` if given)."""
    if value is None and optional:
        return None
    if isinstance(value, np.ndarray):
        if value.dtype not in (np.float32, np.float64):  # Tensor() would quietly make it float32
            raise TypeError(f"{op}: {name} must be float32 or float64, got {value.dtype}")
        value = Tensor(value)
    if not isinstance(value, Tensor):
        raise TypeError(f"{op}: {name} must be a Tensor, got {type(value).__name__}")
    if value.dtype not in (np.float32, np.float64):
        raise TypeError(f"{op}: {name} must be float32 or float64, got {value.dtype}")
    if ndim is not None and value.ndim != ndim:
        layout = " (N, H, W, C)" if ndim == 4 and name in ("x", "input") else ""
        raise ValueError(f"{op}: {name} must be {ndim}-D{layout}, got shape {value.shape}")
    return value


def same_dtype(op, **tensors):
    named = {k: t for k, t in tensors.items() if t is not None}
    dtypes = {t.dtype for t in named.values()}
    if len(dtypes) > 1:
        listed = ", ".join(f"{k} {t.dtype}" for k, t in named.items())
        raise TypeError(f"{op}: all tensors must share one dtype, got {listed}")


@contextlib.contextmanager
def named_errors(op):
    """Prefix ValueError/TypeError raised by a kernel wrapper with ``op``."""
    try:
        yield
    except (ValueError, TypeError) as err:
        raise type(err)(f"{op}: {err}") from None

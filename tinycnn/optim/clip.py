"""Gradient clipping, in place on the parameters' ``.grad`` arrays."""

import math

import numpy as np

from ..tensor import Tensor
from .optimizer import NONNEGATIVE, check_number


def _grads(owner, parameters):
    params = [parameters] if isinstance(parameters, Tensor) else parameters
    try:
        params = list(params)
    except TypeError:
        raise TypeError(f"{owner}: parameters must be a Tensor or an iterable of Tensors, "
                        f"got {type(parameters).__name__}") from None
    for i, p in enumerate(params):
        if not isinstance(p, Tensor):
            raise TypeError(f"{owner}: parameters must be Tensors, got {type(p).__name__} at position {i}")
    return [p.grad for p in params if p.grad is not None]


def clip_grad_norm_(parameters, max_norm, norm_type=2.0, error_if_nonfinite=False):
    """Scale the gradients so that their joint norm is at most ``max_norm``.

    The total norm is the ``norm_type``-norm of all gradients viewed as one
    vector (``norm_type`` > 0, or ``float('inf')``/``'inf'`` for the largest
    absolute value), computed in float64.  As in PyTorch, every grad is
    multiplied in place by ``max_norm / (total + 1e-6)`` when that is below 1,
    keeping its dtype.  Parameters whose grad is None are skipped.  Returns
    the total norm before clipping, a float (0.0 when no parameter has a
    grad).  With ``error_if_nonfinite=True`` a NaN or infinite total raises
    RuntimeError; otherwise the grads are scaled by the resulting NaN or 0.
    """
    owner = "clip_grad_norm_"
    grads = _grads(owner, parameters)
    check_number(owner, "max_norm", max_norm, NONNEGATIVE)
    try:
        norm_type = float(norm_type)
    except (TypeError, ValueError):
        raise TypeError(f"{owner}: norm_type must be a number > 0 or 'inf', got {norm_type!r}") from None
    if not norm_type > 0:
        raise ValueError(f"{owner}: norm_type must be > 0 or inf, got {norm_type}")
    if not grads:
        return 0.0
    norms = [np.linalg.norm(np.asarray(g, dtype=np.float64).reshape(-1), norm_type) for g in grads]
    total = float(np.linalg.norm(np.array(norms), norm_type))
    if error_if_nonfinite and not math.isfinite(total):
        raise RuntimeError(
            f"{owner}: the total norm of order {norm_type} of the gradients is {total}, so they cannot be "
            "clipped; pass error_if_nonfinite=False to scale them anyway"
        )
    coef = float(max_norm) / (total + 1e-6)
    if not coef >= 1.0:  # also when coef is NaN, as PyTorch does
        for g in grads:
            g *= coef
    return total


def clip_grad_value_(parameters, clip_value):
    """Clamp every gradient in place to ``[-clip_value, clip_value]``."""
    owner = "clip_grad_value_"
    grads = _grads(owner, parameters)
    check_number(owner, "clip_value", clip_value, NONNEGATIVE)
    for g in grads:
        np.clip(g, -clip_value, clip_value, out=g)



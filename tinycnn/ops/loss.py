"""Losses: cross-entropy on integer class targets, mean squared error."""

import numbers

import numpy as np

from ..autograd import Function
from ..tensor import Tensor, as_tensor
from .activation import _log_softmax

_REDUCTIONS = ("mean", "sum", "none")


class CrossEntropy(Function):
    """Softmax cross-entropy of logits (N, C) against class indices (N,).

    With label smoothing ``s`` the target distribution is
    ``(1 - s) * onehot + s / C``; the gradient of each row is then
    ``softmax(logits) - target``.
    """

    def forward(self, logits, targets, label_smoothing, reduction):
        n, c = logits.shape
        logp = _log_softmax(logits, axis=1)
        q = np.full(logits.shape, label_smoothing / c, dtype=logits.dtype)
        q[np.arange(n), targets] += 1 - label_smoothing
        self.p, self.q, self.reduction = np.exp(logp), q, reduction
        losses = -(q * logp).sum(axis=1)
        if reduction == "mean":
            return np.asarray(losses.mean(), dtype=logits.dtype)
        if reduction == "sum":
            return np.asarray(losses.sum(), dtype=logits.dtype)
        return losses

    def backward(self, gy):
        g = self.p - self.q
        if self.reduction == "mean":
            return g * (gy / g.shape[0])
        if self.reduction == "sum":
            return g * gy
        return g * gy[:, None]


def cross_entropy(logits, targets, label_smoothing=0.0, reduction="mean"):
    """Cross-entropy between ``softmax(logits)`` and integer class targets.

    ``logits``: (N, C) scores; ``targets``: (N,) integers in ``[0, C)``
    (an ndarray, a list or an integer Tensor).  ``reduction``: 'mean' (the
    default), 'sum' or 'none' (one loss per sample).
    """
    logits = as_tensor(logits)
    if logits.ndim != 2:
        raise ValueError(f"cross_entropy: logits must be 2-D (N, C), got shape {logits.shape}")
    n, c = logits.shape
    if n == 0 or c == 0:
        raise ValueError(f"cross_entropy: logits must be non-empty, got shape {logits.shape}")
    raw = targets.data if isinstance(targets, Tensor) else targets
    try:
        targets = np.asarray(raw)
    except (TypeError, ValueError):
        raise TypeError(f"cross_entropy: targets must be integer class indices, got {type(raw).__name__}") from None
    if targets.dtype.kind not in "iu":
        raise TypeError(
            f"cross_entropy: targets must be integer class indices, got dtype {targets.dtype} "
            "(float targets are not class indices)"
        )
    if targets.shape != (n,):
        raise ValueError(f"cross_entropy: targets must have shape ({n},) to match logits {logits.shape}, got {targets.shape}")
    if targets.min() < 0 or targets.max() >= c:
        bad = targets[(targets < 0) | (targets >= c)][0]
        raise ValueError(f"cross_entropy: targets must lie in [0, {c}) for {c} classes, got {bad}")
    if not isinstance(label_smoothing, (numbers.Real, np.number)) or not 0.0 <= label_smoothing <= 1.0:
        raise ValueError(f"cross_entropy: label_smoothing must be a number in [0, 1], got {label_smoothing!r}")
    if reduction not in _REDUCTIONS:
        raise ValueError(f"cross_entropy: reduction must be one of {_REDUCTIONS}, got {reduction!r}")
    return CrossEntropy.apply(
        logits, targets=targets.astype(np.intp), label_smoothing=float(label_smoothing), reduction=reduction
    )


def mse_loss(input, target, reduction="mean"):
    """Mean squared error ``(input - target) ** 2``, averaged ('mean'),
    summed ('sum') or elementwise ('none').  Shapes must be equal."""
    input = as_tensor(input)
    target = as_tensor(target, like=input)
    if input.shape != target.shape:
        raise ValueError(f"mse_loss: input and target shapes differ: {input.shape} and {target.shape}")
    if reduction not in _REDUCTIONS:
        raise ValueError(f"mse_loss: reduction must be one of {_REDUCTIONS}, got {reduction!r}")
    squared = (input - target) ** 2
    if reduction == "mean":
        return squared.mean()
    if reduction == "sum":
        return squared.sum()
    return squared

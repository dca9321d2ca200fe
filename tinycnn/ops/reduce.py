"""Reductions over axes: sum, mean, max."""

import builtins
import numbers

import numpy as np

from ..autograd import Function
from ..tensor import as_tensor


def normalize_axes(name, axis, ndim):
    """``axis`` (None, an int or a sequence of ints) as a sorted tuple of
    non-negative axes, with a clear error for an axis out of range."""
    if axis is None:
        return tuple(range(ndim))
    axes = (axis,) if isinstance(axis, (numbers.Integral, np.integer)) else axis
    try:
        axes = tuple(axes)
    except TypeError:
        raise TypeError(f"{name}: axis must be None, an int or a tuple of ints, got {axis!r}") from None
    out = []
    for a in axes:
        if isinstance(a, bool) or not isinstance(a, (numbers.Integral, np.integer)):
            raise TypeError(f"{name}: axis must be None, an int or a tuple of ints, got {axis!r}")
        if not -ndim <= a < builtins.max(ndim, 1) or (ndim == 0 and a not in (0, -1)):
            raise ValueError(f"{name}: axis {a} is out of range for a {ndim}-D tensor")
        out.append(int(a) % builtins.max(ndim, 1))
    if len(set(out)) != len(out):
        raise ValueError(f"{name}: repeated axis in {axis!r}")
    return tuple(sorted(out)) if ndim else ()


def _expand(gy, shape, axes, keepdims):
    """Re-insert the reduced axes so ``gy`` broadcasts against the input."""
    if not keepdims and axes:
        gy = np.expand_dims(gy, axes)
    return np.broadcast_to(gy, shape)


class Sum(Function):
    def forward(self, x, axes, keepdims):
        self.shape, self.axes, self.keepdims = x.shape, axes, keepdims
        return np.asarray(x.sum(axis=axes, keepdims=keepdims))

    def backward(self, gy):
        return np.array(_expand(gy, self.shape, self.axes, self.keepdims))


class Mean(Function):
    def forward(self, x, axes, keepdims):
        self.shape, self.axes, self.keepdims = x.shape, axes, keepdims
        self.count = int(np.prod([x.shape[a] for a in axes])) if axes else 1
        return np.asarray(x.mean(axis=axes, keepdims=keepdims), dtype=x.dtype)

    def backward(self, gy):
        return _expand(gy, self.shape, self.axes, self.keepdims) / np.asarray(self.count, gy.dtype)


class Max(Function):
    """The gradient is shared equally among tied maxima (as ``torch.amax``)."""

    def forward(self, x, axes, keepdims):
        y = x.max(axis=axes, keepdims=True)
        self.mask = x == y
        self.axes, self.keepdims = axes, keepdims
        return y if keepdims else np.asarray(np.squeeze(y, axis=axes))

    def backward(self, gy):
        if not self.keepdims and self.axes:
            gy = np.expand_dims(gy, self.axes)
        count = self.mask.sum(axis=self.axes, keepdims=True)
        return np.where(self.mask, gy / count, 0).astype(gy.dtype)


def sum(x, axis=None, keepdims=False):
    """Sum over ``axis`` (None: all axes)."""
    x = as_tensor(x)
    return Sum.apply(x, axes=normalize_axes("sum", axis, x.ndim), keepdims=bool(keepdims))


def mean(x, axis=None, keepdims=False):
    """Mean over ``axis`` (None: all axes)."""
    x = as_tensor(x)
    axes = normalize_axes("mean", axis, x.ndim)
    if x.size == 0:
        raise ValueError(f"mean: cannot average an empty tensor of shape {x.shape}")
    return Mean.apply(x, axes=axes, keepdims=bool(keepdims))


def max(x, axis=None, keepdims=False):
    """Maximum over ``axis`` (None: all axes)."""
    x = as_tensor(x)
    axes = normalize_axes("max", axis, x.ndim)
    if x.size == 0:
        raise ValueError(f"max: cannot reduce an empty tensor of shape {x.shape}")
    return Max.apply(x, axes=axes, keepdims=bool(keepdims))

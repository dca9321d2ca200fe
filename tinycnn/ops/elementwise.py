"""Elementwise functions: exp, log, sqrt, abs, clip, dtype casts."""

import numbers

import numpy as np

from ..autograd import Function
from ..tensor import as_tensor


class Exp(Function):
    def forward(self, x):
        self.y = np.exp(x)
        return self.y

    def backward(self, gy):
        return gy * self.y


class Log(Function):
    def forward(self, x):
        self.x = x
        return np.log(x)

    def backward(self, gy):
        return gy / self.x


class Sqrt(Function):
    def forward(self, x):
        self.y = np.sqrt(x)
        return self.y

    def backward(self, gy):
        return gy / (2 * self.y)


class Abs(Function):
    def forward(self, x):
        self.sign = np.sign(x)
        return np.abs(x)

    def backward(self, gy):
        return gy * self.sign


class Clip(Function):
    """Gradient 1 where ``min <= x <= max`` (bounds included, as PyTorch)."""

    def forward(self, x, low, high):
        self.inside = np.ones(x.shape, dtype=bool)
        if low is not None:
            self.inside &= x >= low
        if high is not None:
            self.inside &= x <= high
        return np.clip(x, low, high)

    def backward(self, gy):
        return np.where(self.inside, gy, 0).astype(gy.dtype)


class Cast(Function):
    def forward(self, x, dtype):
        self.in_dtype = x.dtype
        return x.astype(dtype)

    def backward(self, gy):
        return gy.astype(self.in_dtype)


def exp(x):
    """``e ** x``."""
    return Exp.apply(as_tensor(x))


def log(x):
    """Natural logarithm (NaN for negative inputs, -inf at 0, as NumPy)."""
    return Log.apply(as_tensor(x))


def sqrt(x):
    """Square root."""
    return Sqrt.apply(as_tensor(x))


def abs(x):
    """``|x|``; the gradient at 0 is 0."""
    return Abs.apply(as_tensor(x))


def clip(x, min=None, max=None):
    """Limit values to ``[min, max]`` (either bound may be None)."""
    for name, bound in (("min", min), ("max", max)):
        if bound is not None and (not isinstance(bound, (numbers.Real, np.number)) or isinstance(bound, bool)):
            raise TypeError(f"clip: {name} must be a real number or None, got {type(bound).__name__}")
    if min is None and max is None:
        raise ValueError("clip: give at least one of min and max")
    if min is not None and max is not None and min > max:
        raise ValueError(f"clip: min must not exceed max, got min={min}, max={max}")
    return Clip.apply(as_tensor(x), low=min, high=max)


def cast(x, dtype):
    """The tensor converted to a floating dtype; gradients flow back in the
    input's dtype."""
    dtype = np.dtype(dtype)
    if dtype not in (np.float32, np.float64):
        raise TypeError(f"cast: dtype must be float32 or float64, got {dtype}")
    x = as_tensor(x)
    if x.dtype == dtype:
        return x
    return Cast.apply(x, dtype=dtype)

"""Arithmetic: + - * / ** negation and matrix multiplication.

Binary operations broadcast like NumPy; the autograd engine sums each
gradient back to its input's shape, so these backward rules ignore
broadcasting.
"""

import numbers

import numpy as np

from ..autograd import Function
from ..tensor import Tensor, as_tensor


def _binary(name, a, b):
    """Both operands as tensors (a plain number takes the other's dtype)."""
    if not isinstance(a, Tensor) and not isinstance(b, Tensor):
        raise TypeError(f"{name}: expected at least one Tensor, got {type(a).__name__} and {type(b).__name__}")
    like = a if isinstance(a, Tensor) else b
    try:
        a, b = as_tensor(a, like), as_tensor(b, like)
    except TypeError as err:
        raise TypeError(f"{name}: {err}") from None
    try:
        np.broadcast_shapes(a.shape, b.shape)
    except ValueError:
        raise ValueError(f"{name}: shapes {a.shape} and {b.shape} do not broadcast") from None
    return a, b


class Add(Function):
    def forward(self, a, b):
        return a + b

    def backward(self, gy):
        return gy, gy


class Sub(Function):
    def forward(self, a, b):
        return a - b

    def backward(self, gy):
        return gy, (-gy if self.needs_input_grad[1] else None)


class Mul(Function):
    def forward(self, a, b):
        self.a, self.b = a, b
        return a * b

    def backward(self, gy):
        ga = gy * self.b if self.needs_input_grad[0] else None
        gb = gy * self.a if self.needs_input_grad[1] else None
        return ga, gb


class Div(Function):
    def forward(self, a, b):
        self.a, self.b = a, b
        return a / b

    def backward(self, gy):
        ga = gy / self.b if self.needs_input_grad[0] else None
        gb = -gy * self.a / (self.b * self.b) if self.needs_input_grad[1] else None
        return ga, gb


class Neg(Function):
    def forward(self, x):
        return -x

    def backward(self, gy):
        return -gy


class Pow(Function):
    def forward(self, x, exponent):
        self.x, self.exponent = x, exponent
        return x ** exponent

    def backward(self, gy):
        p = self.exponent
        return gy * p * self.x ** (p - 1) if p != 0 else np.zeros_like(gy)


class MatMul(Function):
    def forward(self, a, b):
        self.a, self.b = a, b
        return a @ b

    def backward(self, gy):
        ga = gy @ np.swapaxes(self.b, -1, -2) if self.needs_input_grad[0] else None
        gb = np.swapaxes(self.a, -1, -2) @ gy if self.needs_input_grad[1] else None
        return ga, gb


def add(a, b):
    """``a + b`` with broadcasting."""
    return Add.apply(*_binary("add", a, b))


def sub(a, b):
    """``a - b`` with broadcasting."""
    return Sub.apply(*_binary("sub", a, b))


def mul(a, b):
    """``a * b`` elementwise, with broadcasting."""
    return Mul.apply(*_binary("mul", a, b))


def div(a, b):
    """``a / b`` elementwise, with broadcasting."""
    return Div.apply(*_binary("div", a, b))


def neg(x):
    """``-x``."""
    return Neg.apply(as_tensor(x))


def pow(x, exponent):
    """``x ** exponent`` for a real scalar exponent."""
    if isinstance(exponent, Tensor) or not isinstance(exponent, (numbers.Real, np.number)) or isinstance(exponent, bool):
        raise TypeError(f"pow: exponent must be a real Python or NumPy scalar, got {type(exponent).__name__}")
    return Pow.apply(as_tensor(x), exponent=float(exponent) if not float(exponent).is_integer() else int(exponent))


def matmul(a, b):
    """Matrix product of 2-D tensors, or a batched product of stacks of
    matrices (leading axes broadcast)."""
    a, b = as_tensor(a), as_tensor(b)
    if a.ndim < 2 or b.ndim < 2:
        raise ValueError(
            f"matmul: both operands must be at least 2-D, got shapes {a.shape} and {b.shape}"
        )
    if a.shape[-1] != b.shape[-2]:
        raise ValueError(
            f"matmul: inner sizes differ: {a.shape} @ {b.shape}; expected a.shape[-1] == "
            f"b.shape[-2], got {a.shape[-1]} and {b.shape[-2]}"
        )
    try:
        np.broadcast_shapes(a.shape[:-2], b.shape[:-2])
    except ValueError:
        raise ValueError(f"matmul: batch shapes {a.shape[:-2]} and {b.shape[:-2]} do not broadcast") from None
    return MatMul.apply(a, b)

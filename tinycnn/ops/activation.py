"""Activations: relu, leaky_relu, sigmoid, tanh, softmax, log_softmax."""

import numbers

import numpy as np

from ..autograd import Function
from ..tensor import as_tensor
from .shape import _axis


class ReLU(Function):
    """Saves its output, not a mask: the next layer usually keeps that array
    alive anyway, so the gradient's mask ``y > 0`` costs no extra memory."""

    def forward(self, x):
        self.y = np.maximum(x, 0)
        return self.y

    def backward(self, gy):
        return gy * (self.y > 0)


class LeakyReLU(Function):
    def forward(self, x, slope):
        self.scale = np.where(x > 0, 1, slope).astype(x.dtype)
        return x * self.scale

    def backward(self, gy):
        return gy * self.scale


class Sigmoid(Function):
    def forward(self, x):
        # exp of a non-positive number only, so large |x| cannot overflow
        e = np.exp(-np.abs(x))
        self.y = np.where(x >= 0, 1 / (1 + e), e / (1 + e)).astype(x.dtype)
        return self.y

    def backward(self, gy):
        return gy * self.y * (1 - self.y)


class Tanh(Function):
    def forward(self, x):
        self.y = np.tanh(x)
        return self.y

    def backward(self, gy):
        return gy * (1 - self.y * self.y)


def _log_softmax(x, axis):
    shifted = x - x.max(axis=axis, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=axis, keepdims=True))


class Softmax(Function):
    def forward(self, x, axis):
        self.axis = axis
        self.y = np.exp(_log_softmax(x, axis))
        return self.y

    def backward(self, gy):
        y = self.y
        return y * (gy - (gy * y).sum(axis=self.axis, keepdims=True))


class LogSoftmax(Function):
    def forward(self, x, axis):
        self.axis = axis
        y = _log_softmax(x, axis)
        self.p = np.exp(y)
        return y

    def backward(self, gy):
        return gy - self.p * gy.sum(axis=self.axis, keepdims=True)


def relu(x):
    """``max(x, 0)``; the gradient at 0 is 0."""
    return ReLU.apply(as_tensor(x))


def leaky_relu(x, negative_slope=0.01):
    """``x`` where positive, ``negative_slope * x`` elsewhere."""
    if not isinstance(negative_slope, (numbers.Real, np.number)) or isinstance(negative_slope, bool):
        raise TypeError(f"leaky_relu: negative_slope must be a real number, got {type(negative_slope).__name__}")
    return LeakyReLU.apply(as_tensor(x), slope=negative_slope)


def sigmoid(x):
    """``1 / (1 + exp(-x))``, computed without overflow."""
    return Sigmoid.apply(as_tensor(x))


def tanh(x):
    """Hyperbolic tangent."""
    return Tanh.apply(as_tensor(x))


def softmax(x, axis=-1):
    """``exp(x) / sum(exp(x))`` along ``axis``, shifted by the maximum so it
    cannot overflow."""
    x = as_tensor(x)
    return Softmax.apply(x, axis=_axis("softmax", axis, x.ndim))


def log_softmax(x, axis=-1):
    """``log(softmax(x))`` computed stably (no log of an underflowed 0)."""
    x = as_tensor(x)
    return LogSoftmax.apply(x, axis=_axis("log_softmax", axis, x.ndim))

"""Fully connected layer and dropout."""


import numpy as np

from ..autograd import Function
from ..kernels._args import check_unit_interval
from ..random import get_rng
from ..tensor import as_tensor
from ._checks import same_dtype, tensor_arg


class Linear(Function):
    """``y = x @ W + b`` over the last axis; W is (in, out)."""

    def forward(self, x, w, b=None):
        self.x, self.w, self.has_bias = x, w, b is not None
        y = x @ w
        if b is not None:
            y += b
        return y

    def backward(self, gy):
        gx = gy @ self.w.T if self.needs_input_grad[0] else None
        gw = None
        if self.needs_input_grad[1]:
            gw = self.x.reshape(-1, self.x.shape[-1]).T @ gy.reshape(-1, gy.shape[-1])
        if not self.has_bias:
            return gx, gw
        gb = gy.reshape(-1, gy.shape[-1]).sum(axis=0) if self.needs_input_grad[2] else None
        return gx, gw, gb


class Dropout(Function):
    def forward(self, x, p):
        keep = get_rng().random(x.shape) >= p
        self.mask = keep.astype(x.dtype) / np.asarray(1.0 - p, dtype=x.dtype)
        return x * self.mask

    def backward(self, gy):
        return gy * self.mask


def linear(x, weight, bias=None):
    """``x @ weight + bias`` on the last axis of ``x``; ``weight`` is
    (in_features, out_features), ``bias`` (out_features,)."""
    op = "linear"
    x = tensor_arg(op, "x", x)
    weight = tensor_arg(op, "weight", weight, ndim=2)
    bias = tensor_arg(op, "bias", bias, ndim=1, optional=True)
    same_dtype(op, x=x, weight=weight, bias=bias)
    if x.ndim < 1 or x.shape[-1] != weight.shape[0]:
        raise ValueError(
            f"{op}: x's last axis must match weight's in_features {weight.shape[0]}, got x of shape {x.shape}"
        )
    if bias is not None and bias.shape != (weight.shape[1],):
        raise ValueError(f"{op}: bias must have shape ({weight.shape[1]},), got {bias.shape}")
    return Linear.apply(*((x, weight) if bias is None else (x, weight, bias)))


def dropout(x, p=0.5, training=True):
    """Zero each element with probability ``p`` and scale the rest by
    ``1 / (1 - p)`` in training; the identity otherwise."""
    p = check_unit_interval(p, "dropout: p", "a probability in [0, 1]")
    x = as_tensor(x)
    if not training or p == 0:
        return x
    if p == 1:
        return x * 0.0
    return Dropout.apply(x, p=float(p))

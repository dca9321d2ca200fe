"""Batch normalisation over N, H and W for each channel of an NHWC tensor."""

import numpy as np

from ..autograd import Function
from ..kernels import batchnorm as bn_kernels
from ..kernels._args import check_eps, check_unit_interval
from ._checks import named_errors, same_dtype, tensor_arg


class BatchNormTrain(Function):
    """Normalise with the batch's own statistics; the gradient flows through
    the mean and the variance too."""

    def forward(self, x, weight=None, bias=None, *, eps, running, momentum):
        y, mean, var, self.invstd = bn_kernels.batch_norm_forward_train(x, weight, bias, eps)
        if running is not None:
            n = x.shape[0] * x.shape[1] * x.shape[2]
            bn_kernels.batch_norm_update_running(running[0], running[1], mean, var, n, momentum)
        self.x, self.mean, self.weight = x, mean, weight
        return y

    def backward(self, gy):
        gx, gw, gb = bn_kernels.batch_norm_backward(gy, self.x, self.mean, self.invstd, self.weight)
        return (gx,) + ((gw, gb) if self.weight is not None else ())


class BatchNormEval(Function):
    """Normalise with fixed running statistics: an affine map per channel."""

    def forward(self, x, weight=None, bias=None, *, eps, running_mean, running_var):
        self.invstd = (1.0 / np.sqrt(running_var.astype(np.float64) + eps)).astype(x.dtype)
        self.x, self.mean, self.weight = x, running_mean.astype(x.dtype), weight
        return bn_kernels.batch_norm_forward_eval(x, running_mean, running_var, weight, bias, eps)

    def backward(self, gy):
        scale = self.invstd if self.weight is None else self.invstd * self.weight
        gx = gy * scale if self.needs_input_grad[0] else None
        if self.weight is None:
            return gx
        gw = (gy * ((self.x - self.mean) * self.invstd)).sum(axis=(0, 1, 2)) if self.needs_input_grad[1] else None
        gb = gy.sum(axis=(0, 1, 2)) if self.needs_input_grad[2] else None
        return gx, gw, gb


def batch_norm(x, running_mean, running_var, weight=None, bias=None, training=False, momentum=0.1, eps=1e-5):
    """Batch normalisation of (N, H, W, C) per channel.

    ``training=True``: normalise with the batch mean and (biased) variance and,
    when running arrays are given, update them in place as PyTorch does
    (``running_var`` with the unbiased estimate).  ``training=False``:
    normalise with ``running_mean`` and ``running_var``.  ``weight``/``bias``
    (C,) scale and shift the result.
    """
    op = "batch_norm"
    x = tensor_arg(op, "x", x, ndim=4)
    weight = tensor_arg(op, "weight", weight, ndim=1, optional=True)
    bias = tensor_arg(op, "bias", bias, ndim=1, optional=True)
    same_dtype(op, x=x, weight=weight, bias=bias)
    if (weight is None) != (bias is None):
        raise ValueError(f"{op}: give both weight and bias, or neither")
    with named_errors(op):  # the kernels' rules, checked before any array work
        eps, momentum = check_eps(eps), check_unit_interval(momentum, "momentum")
    C = x.shape[3]
    for name, arr in (("running_mean", running_mean), ("running_var", running_var)):
        if arr is None:
            continue
        if not isinstance(arr, np.ndarray):
            raise TypeError(f"{op}: {name} must be an ndarray or None, got {type(arr).__name__}")
        if arr.shape != (C,):
            raise ValueError(f"{op}: {name} must have shape ({C},) for {C} channels, got {arr.shape}")
    if (running_mean is None) != (running_var is None):
        raise ValueError(f"{op}: give both running_mean and running_var, or neither")
    inputs = (x,) if weight is None else (x, weight, bias)
    with named_errors(op):
        if training:
            if x.shape[0] * x.shape[1] * x.shape[2] < 2:
                raise ValueError(
                    f"expected more than 1 value per channel when training, got input of shape {x.shape}"
                )
            running = None if running_mean is None else (running_mean, running_var)
            return BatchNormTrain.apply(*inputs, eps=float(eps), running=running, momentum=float(momentum))
        if running_mean is None:
            raise ValueError("running_mean and running_var are needed when training=False")
        return BatchNormEval.apply(*inputs, eps=float(eps), running_mean=running_mean, running_var=running_var)

"""Pooling over H and W of NHWC tensors: max, average, global average."""

from ..autograd import Function
from ..kernels import pool as pool_kernels
from ._checks import named_errors, tensor_arg


class MaxPool2d(Function):
    """Backward routes each output's gradient to the input pixel that won
    the window (the argmax kept from forward)."""

    def forward(self, x, kernel_size, stride, padding):
        y, self.argmax = pool_kernels.max_pool2d_forward(x, kernel_size, stride, padding)
        self.x_shape = x.shape
        return y

    def backward(self, gy):
        return pool_kernels.max_pool2d_backward(gy, self.argmax, self.x_shape)


class AvgPool2d(Function):
    def forward(self, x, **args):
        self.args, self.x_shape = args, x.shape
        return pool_kernels.avg_pool2d_forward(x, **args)

    def backward(self, gy):
        return pool_kernels.avg_pool2d_backward(gy, self.x_shape, **self.args)


class GlobalAvgPool2d(Function):
    def forward(self, x):
        self.x_shape = x.shape
        return pool_kernels.global_avg_pool2d_forward(x)

    def backward(self, gy):
        return pool_kernels.global_avg_pool2d_backward(gy, self.x_shape)


def max_pool2d(x, kernel_size, stride=None, padding=0):
    """Max over ``kernel_size`` windows of (N, H, W, C); ``stride`` defaults to
    ``kernel_size``; padding (at most half the window) never wins."""
    x = tensor_arg("max_pool2d", "x", x, ndim=4)
    with named_errors("max_pool2d"):
        return MaxPool2d.apply(x, kernel_size=kernel_size, stride=stride, padding=padding)


def avg_pool2d(x, kernel_size, stride=None, padding=0, count_include_pad=True):
    """Mean over windows of (N, H, W, C).  With ``count_include_pad`` the
    divisor is always the window size, else the number of real pixels."""
    x = tensor_arg("avg_pool2d", "x", x, ndim=4)
    with named_errors("avg_pool2d"):
        return AvgPool2d.apply(x, kernel_size=kernel_size, stride=stride, padding=padding,
                               count_include_pad=bool(count_include_pad))


def global_avg_pool2d(x):
    """Mean over H and W: (N, H, W, C) -> (N, C)."""
    x = tensor_arg("global_avg_pool2d", "x", x, ndim=4)
    with named_errors("global_avg_pool2d"):
        return GlobalAvgPool2d.apply(x)

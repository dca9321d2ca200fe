"""Convolutions: im2col + GEMM convolution and depthwise convolution (NHWC)."""

from ..autograd import Function
from ..kernels import conv as conv_kernels
from ..kernels import depthwise as dw_kernels
from ._checks import named_errors, same_dtype, tensor_arg


class Conv2d(Function):
    def forward(self, x, w, b=None, *, stride, padding, dilation, groups):
        self.args = dict(stride=stride, padding=padding, dilation=dilation, groups=groups)
        self.x, self.w, self.has_bias = x, w, b is not None
        return conv_kernels.conv2d_forward(x, w, b, **self.args)

    def backward(self, gy):
        need_x, need_w = self.needs_input_grad[:2]
        gx = conv_kernels.conv2d_backward_input(gy, self.w, self.x.shape, **self.args) if need_x else None
        gw = conv_kernels.conv2d_backward_weight(self.x, gy, self.w.shape, **self.args) if need_w else None
        if self.has_bias:
            gb = conv_kernels.conv2d_backward_bias(gy) if self.needs_input_grad[2] else None
            return gx, gw, gb
        return gx, gw


class DepthwiseConv2d(Function):
    def forward(self, x, w, b=None, *, stride, padding, dilation):
        self.args = dict(stride=stride, padding=padding, dilation=dilation)
        self.x, self.w, self.has_bias = x, w, b is not None
        return dw_kernels.depthwise_conv2d_forward(x, w, b, **self.args)

    def backward(self, gy):
        need_x, need_w = self.needs_input_grad[:2]
        if need_x and need_w:  # one pass over gy for both
            gx, gw = dw_kernels.depthwise_conv2d_backward(self.x, gy, self.w, **self.args)
        else:
            gx = dw_kernels.depthwise_conv2d_backward_input(gy, self.w, self.x.shape, **self.args) if need_x else None
            gw = dw_kernels.depthwise_conv2d_backward_weight(self.x, gy, self.w.shape, **self.args) if need_w else None
        if self.has_bias:
            gb = dw_kernels.depthwise_conv2d_backward_bias(gy) if self.needs_input_grad[2] else None
            return gx, gw, gb
        return gx, gw


def _apply(fn, op, x, weight, bias, **args):
    x = tensor_arg(op, "x", x, ndim=4)
    weight = tensor_arg(op, "weight", weight, ndim=4)
    bias = tensor_arg(op, "bias", bias, ndim=1, optional=True)
    same_dtype(op, x=x, weight=weight, bias=bias)
    inputs = (x, weight) if bias is None else (x, weight, bias)
    with named_errors(op):
        return fn.apply(*inputs, **args)


def conv2d(x, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
    """2-D convolution of ``x`` (N, H, W, C_in) with ``weight``
    (KH, KW, C_in/groups, C_out) -> (N, OH, OW, C_out).

    ``padding``: an int, a pair, ``'same'`` (output ``ceil(H/stride)``; an odd
    total puts the extra pixel bottom/right) or ``'valid'``.  Computed as
    im2col + one matrix product per group (a 1x1 stride-1 convolution is a
    plain matrix product).
    """
    return _apply(Conv2d, "conv2d", x, weight, bias, stride=stride, padding=padding,
                  dilation=dilation, groups=groups)


def depthwise_conv2d(x, weight, bias=None, stride=1, padding=0, dilation=1):
    """Depthwise convolution: one spatial filter per input map.

    ``weight`` is (KH, KW, C, M) for a channel multiplier M; the output has
    C*M channels, channel ``c*M + m`` from input channel ``c`` and filter ``m``.
    """
    return _apply(DepthwiseConv2d, "depthwise_conv2d", x, weight, bias, stride=stride,
                  padding=padding, dilation=dilation)

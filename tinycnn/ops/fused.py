"""Inference-only fused convolution: one convolution with folded weights, then
bias (+ ReLU) in one in-place pass.

Not differentiable and builds no graph: ``tinycnn.nn.fusion`` calls it only
when no gradient is needed (eval mode, and ``no_grad()`` or nothing requiring
a gradient).
"""

from ..kernels import conv as conv_kernels
from ..kernels import fused as fused_kernels
from ..tensor import Tensor
from ._checks import named_errors, tensor_arg


def conv2d_bias_act(x, weight, bias, relu, stride=1, padding=0, dilation=1, groups=1):
    """``relu(conv2d(x, weight) + bias)`` (no ReLU with ``relu=False``) for
    ``x`` (N, H, W, C_in), ``weight`` (KH, KW, C_in/groups, C_out) and ``bias``
    (C_out,) ndarrays.  The GEMM writes the output without bias; one Numba
    pass then adds the bias and applies the ReLU in place."""
    op = "conv2d_bias_act"
    x = tensor_arg(op, "x", x, ndim=4)
    with named_errors(op):
        y = conv_kernels.conv2d_forward(x.data, weight, None, stride, padding, dilation, groups)
        if relu:
            fused_kernels.bias_relu_(y, bias)
        else:
            y += bias
    return Tensor(y)

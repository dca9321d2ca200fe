"""Inference-only fused convolution: one convolution with folded weights, its
bias and ReLU applied as the output is written (no separate passes).

Not differentiable and builds no graph: ``tinycnn.nn.fusion`` calls it only
when no gradient is needed (eval mode, and ``no_grad()`` or nothing requiring
a gradient).
"""

from ..kernels import conv as conv_kernels
from ..tensor import Tensor
from ._checks import named_errors, tensor_arg


def conv2d_bias_act(x, weight, bias, relu, stride=1, padding=0, dilation=1, groups=1):
    """``relu(conv2d(x, weight) + bias)`` (no ReLU with ``relu=False``) for
    ``x`` (N, H, W, C_in), ``weight`` (KH, KW, C_in/groups, C_out) and ``bias``
    (C_out,) ndarrays.  The bias and the ReLU are applied in the Winograd
    output transform (3x3 stride-1 layers) or in one Numba pass after the
    GEMM."""
    op = "conv2d_bias_act"
    x = tensor_arg(op, "x", x, ndim=4)
    with named_errors(op):
        y = conv_kernels.conv2d_forward(x.data, weight, bias, stride, padding, dilation, groups,
                                        relu=relu)
    return Tensor(y)

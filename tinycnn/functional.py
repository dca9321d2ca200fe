"""Every differentiable function of tinycnn, in one namespace.

Imported as ``import tinycnn.functional as F`` by convention.  Each function
lives, with its checks, its forward and its backward, in a module of
``tinycnn.ops``.
"""

from .ops.activation import leaky_relu, log_softmax, relu, sigmoid, softmax, tanh
from .ops.conv import conv2d, depthwise_conv2d
from .ops.linear import dropout, linear
from .ops.norm import batch_norm
from .ops.pool import avg_pool2d, global_avg_pool2d, max_pool2d
from .ops.arith import add, div, matmul, mul, neg, pow, sub
from .ops.elementwise import abs, cast, clip, exp, log, sqrt
from .ops.loss import cross_entropy, mse_loss
from .ops.reduce import max, mean, sum
from .ops.shape import concatenate, flatten, getitem, pad, permute, reshape, stack, transpose

__all__ = [
    "avg_pool2d", "batch_norm", "conv2d", "depthwise_conv2d", "dropout", "global_avg_pool2d",
    "linear", "max_pool2d",
    "abs", "add", "cast", "clip", "concatenate", "cross_entropy", "div", "exp", "flatten",
    "getitem", "leaky_relu", "log", "log_softmax", "matmul", "max", "mean", "mse_loss", "mul",
    "neg", "pad", "permute", "pow", "relu", "reshape", "sigmoid", "softmax", "sqrt", "stack",
    "sub", "sum", "tanh", "transpose",
]

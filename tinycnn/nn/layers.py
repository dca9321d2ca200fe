"""Layers: thin Modules over the functions of ``tinycnn.functional``.

Images are channels-last ``(N, H, W, C)``.  Weights are stored in the
layout the kernels consume: convolution ``(KH, KW, C_in/groups, C_out)``,
depthwise ``(KH, KW, C, multiplier)``, linear ``(in, out)``.
"""

import math
from collections import OrderedDict

import numpy as np

from .. import functional as F
from ..ops._checks import check_eps, check_positive_int, check_unit_interval, pair
from . import init
from .module import Module, Parameter


def _positive_int(layer, name, value):
    return check_positive_int(value, f"{layer}: {name}")


def _dtype(layer, dtype):
    try:
        dtype = np.dtype(dtype)
    except TypeError:
        raise TypeError(f"{layer}: dtype must be float32 or float64, got {dtype!r}") from None
    if dtype not in (np.float32, np.float64):
        raise TypeError(f"{layer}: dtype must be float32 or float64, got {dtype}")
    return dtype


def _check_input(layer, x, channels):
    shape = getattr(x, "shape", None)
    if shape is None or len(shape) != 4:
        raise ValueError(f"{layer}: expected a 4-D input (N, H, W, C), got {'shape ' + str(shape) if shape is not None else type(x).__name__}")
    if shape[3] != channels:
        raise ValueError(
            f"{layer}: expected {channels} input channels in the last axis (N, H, W, C), got shape {shape}"
        )


class Conv2d(Module):
    """2-D convolution; weight (KH, KW, in_channels/groups, out_channels),
    He-normal initialised (fan-in), bias zeros."""

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0, dilation=1,
                 groups=1, bias=True, dtype=np.float32):
        super().__init__()
        name = "Conv2d"
        self.in_channels = _positive_int(name, "in_channels", in_channels)
        self.out_channels = _positive_int(name, "out_channels", out_channels)
        self.groups = _positive_int(name, "groups", groups)
        if in_channels % groups or out_channels % groups:
            raise ValueError(
                f"{name}: groups ({groups}) must divide in_channels ({in_channels}) and out_channels ({out_channels})"
            )
        self.kernel_size = pair(kernel_size, "Conv2d: kernel_size")
        self.stride = pair(stride, "Conv2d: stride")
        self.dilation = pair(dilation, "Conv2d: dilation")
        self.padding = padding if isinstance(padding, str) else (
            tuple(padding) if isinstance(padding, (tuple, list)) and len(padding) == 4 else pair(padding, "Conv2d: padding", minimum=0)
        )
        dtype = _dtype(name, dtype)
        KH, KW = self.kernel_size
        self.weight = Parameter.new((KH, KW, in_channels // groups, out_channels), dtype)
        self.bias = Parameter.new((out_channels,), dtype, 0) if bias else None
        init.kaiming_normal_(self.weight, fan=KH * KW * in_channels // groups)

    def forward(self, x):
        self.check_input(x)
        return F.conv2d(x, self.weight, self.bias, self.stride, self.padding, self.dilation, self.groups)

    def _label(self):
        return f"Conv2d({self.in_channels}, {self.out_channels})"

    def check_input(self, x):
        """Refuse an input that is not (N, H, W, in_channels), naming the layer."""
        _check_input(self._label(), x, self.in_channels)

    def extra_repr(self):
        s = f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, stride={self.stride}"
        if self.padding not in ((0, 0), "valid"):
            s += f", padding={self.padding}"
        if self.dilation != (1, 1):
            s += f", dilation={self.dilation}"
        if self.groups != 1:
            s += f", groups={self.groups}"
        if self.bias is None:
            s += ", bias=False"
        return s


class DepthwiseConv2d(Module):
    """One spatial filter per input map (times ``depth_multiplier``);
    weight (KH, KW, channels, depth_multiplier)."""

    def __init__(self, channels, kernel_size, stride=1, padding=0, dilation=1, depth_multiplier=1,
                 bias=False, dtype=np.float32):
        super().__init__()
        name = "DepthwiseConv2d"
        self.channels = _positive_int(name, "channels", channels)
        self.depth_multiplier = _positive_int(name, "depth_multiplier", depth_multiplier)
        self.kernel_size = pair(kernel_size, f"{name}: kernel_size")
        self.stride = pair(stride, f"{name}: stride")
        self.dilation = pair(dilation, f"{name}: dilation")
        self.padding = padding if isinstance(padding, str) else pair(padding, f"{name}: padding", minimum=0)
        dtype = _dtype(name, dtype)
        KH, KW = self.kernel_size
        self.weight = Parameter.new((KH, KW, channels, depth_multiplier), dtype)
        self.bias = Parameter.new((channels * depth_multiplier,), dtype, 0) if bias else None
        init.kaiming_normal_(self.weight, fan=KH * KW)

    @property
    def out_channels(self):
        return self.channels * self.depth_multiplier

    def forward(self, x):
        _check_input(f"DepthwiseConv2d({self.channels})", x, self.channels)
        return F.depthwise_conv2d(x, self.weight, self.bias, self.stride, self.padding, self.dilation)

    def extra_repr(self):
        s = f"{self.channels}, kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}"
        if self.depth_multiplier != 1:
            s += f", depth_multiplier={self.depth_multiplier}"
        if self.dilation != (1, 1):
            s += f", dilation={self.dilation}"
        return s


class SeparableConv2d(Module):
    """Xception's depthwise separable convolution: a depthwise
    ``kernel_size`` convolution (``conv1``) then a 1x1 convolution across
    channels (``pointwise``); names follow timm so its weights map one to one."""

    def __init__(self, in_channels, out_channels, kernel_size=3, stride=1, padding=1, dilation=1,
                 depth_multiplier=1, bias=False, dtype=np.float32):
        super().__init__()
        self.conv1 = DepthwiseConv2d(in_channels, kernel_size, stride, padding, dilation, depth_multiplier,
                                     bias=False, dtype=dtype)
        self.pointwise = Conv2d(in_channels * depth_multiplier, out_channels, 1, bias=bias, dtype=dtype)

    def forward(self, x):
        return self.pointwise(self.conv1(x))


class BatchNorm2d(Module):
    """Batch normalisation per channel over N, H, W of (N, H, W, C).

    Training mode normalises with the batch's statistics and updates
    ``running_mean``/``running_var`` (momentum 0.1, unbiased variance, as
    PyTorch); eval mode uses the running statistics.
    """

    def __init__(self, num_features, eps=1e-5, momentum=0.1, affine=True, track_running_stats=True,
                 dtype=np.float32):
        super().__init__()
        self.num_features = _positive_int("BatchNorm2d", "num_features", num_features)
        # the rules of the batch_norm kernels, checked when the layer is built
        self.eps = check_eps(eps, "BatchNorm2d: eps")
        self.momentum = check_unit_interval(momentum, "BatchNorm2d: momentum")
        dtype = _dtype("BatchNorm2d", dtype)
        self.affine, self.track_running_stats = bool(affine), bool(track_running_stats)
        self.weight = Parameter.new((num_features,), dtype, 1) if affine else None
        self.bias = Parameter.new((num_features,), dtype, 0) if affine else None
        if track_running_stats:
            self.register_buffer("running_mean", np.zeros(num_features, dtype=dtype))
            self.register_buffer("running_var", np.ones(num_features, dtype=dtype))
            self.register_buffer("num_batches_tracked", np.zeros((), dtype=np.int64))
        else:
            self.running_mean = self.running_var = None

    def forward(self, x):
        _check_input(f"BatchNorm2d({self.num_features})", x, self.num_features)
        running = (self.running_mean, self.running_var) if self.track_running_stats else (None, None)
        use_batch_stats = self.training or not self.track_running_stats
        y = F.batch_norm(x, *running, self.weight, self.bias, use_batch_stats, self.momentum, self.eps)
        if self.training and self.track_running_stats:  # only once the batch was accepted
            self.num_batches_tracked += 1
        return y

    def extra_repr(self):
        return f"{self.num_features}, eps={self.eps}, momentum={self.momentum}"


class Linear(Module):
    """``x @ weight + bias``; weight (in_features, out_features), initialised
    like PyTorch's: uniform in ``±1/sqrt(in_features)``."""

    def __init__(self, in_features, out_features, bias=True, dtype=np.float32):
        super().__init__()
        self.in_features = _positive_int("Linear", "in_features", in_features)
        self.out_features = _positive_int("Linear", "out_features", out_features)
        dtype = _dtype("Linear", dtype)
        bound = 1.0 / math.sqrt(in_features)
        self.weight = init.uniform_(Parameter.new((in_features, out_features), dtype), -bound, bound)
        self.bias = init.uniform_(Parameter.new((out_features,), dtype), -bound, bound) if bias else None

    def forward(self, x):
        shape = getattr(x, "shape", None)
        if shape is None or len(shape) < 1 or shape[-1] != self.in_features:
            raise ValueError(
                f"Linear({self.in_features}, {self.out_features}): expected input with {self.in_features} "
                f"features in the last axis, got shape {shape}"
            )
        return F.linear(x, self.weight, self.bias)

    def extra_repr(self):
        return f"in_features={self.in_features}, out_features={self.out_features}, bias={self.bias is not None}"


class ReLU(Module):
    def forward(self, x):
        return F.relu(x)


class LeakyReLU(Module):
    def __init__(self, negative_slope=0.01):
        super().__init__()
        self.negative_slope = negative_slope

    def forward(self, x):
        return F.leaky_relu(x, self.negative_slope)

    def extra_repr(self):
        return f"negative_slope={self.negative_slope}"


class Sigmoid(Module):
    def forward(self, x):
        return F.sigmoid(x)


class Tanh(Module):
    def forward(self, x):
        return F.tanh(x)


class Dropout(Module):
    """Zero elements with probability ``p`` in training mode (scaling the
    rest by ``1/(1-p)``); the identity in eval mode."""

    def __init__(self, p=0.5):
        super().__init__()
        self.p = check_unit_interval(p, "Dropout: p", "a probability in [0, 1]")

    def forward(self, x):
        return F.dropout(x, self.p, self.training)

    def extra_repr(self):
        return f"p={self.p}"


def _check_window(layer, kernel_size, stride, padding):
    """Refuse a bad pooling window when the layer is built, not at its first call."""
    pair(kernel_size, f"{layer}: kernel_size")
    if stride is not None:
        pair(stride, f"{layer}: stride")
    pair(padding, f"{layer}: padding", minimum=0)


class MaxPool2d(Module):
    def __init__(self, kernel_size, stride=None, padding=0):
        super().__init__()
        _check_window("MaxPool2d", kernel_size, stride, padding)
        self.kernel_size, self.stride, self.padding = kernel_size, stride, padding

    def forward(self, x):
        return F.max_pool2d(x, self.kernel_size, self.stride, self.padding)

    def extra_repr(self):
        return f"kernel_size={self.kernel_size}, stride={self.stride or self.kernel_size}, padding={self.padding}"


class AvgPool2d(Module):
    def __init__(self, kernel_size, stride=None, padding=0, count_include_pad=True):
        super().__init__()
        _check_window("AvgPool2d", kernel_size, stride, padding)
        self.kernel_size, self.stride, self.padding = kernel_size, stride, padding
        self.count_include_pad = count_include_pad

    def forward(self, x):
        return F.avg_pool2d(x, self.kernel_size, self.stride, self.padding, self.count_include_pad)

    def extra_repr(self):
        return f"kernel_size={self.kernel_size}, stride={self.stride or self.kernel_size}, padding={self.padding}"


class GlobalAvgPool2d(Module):
    """(N, H, W, C) -> (N, C): the mean of each feature map."""

    def forward(self, x):
        return F.global_avg_pool2d(x)


class Flatten(Module):
    def __init__(self, start_dim=1, end_dim=-1):
        super().__init__()
        self.start_dim, self.end_dim = start_dim, end_dim

    def forward(self, x):
        return F.flatten(x, self.start_dim, self.end_dim)


class Identity(Module):
    def forward(self, x):
        return x


class Sequential(Module):
    """Modules applied in order; built from modules or an ordered dict of
    named modules.  Indexable, iterable, ``len()``-able.  At inference, each
    run of a convolution, a BatchNorm and a ReLU among its children is one
    fused convolution (``tinycnn.nn.fusion``)."""

    def __init__(self, *modules):
        super().__init__()
        if len(modules) == 1 and isinstance(modules[0], (dict, OrderedDict)):
            items = modules[0].items()
        else:
            items = ((str(i), m) for i, m in enumerate(modules))
        for name, module in items:
            if not isinstance(module, Module):
                raise TypeError(f"Sequential: item {name} must be a Module, got {type(module).__name__}")
            self.add_module(name, module)

    def append(self, module):
        if not isinstance(module, Module):
            raise TypeError(f"Sequential.append: expected a Module, got {type(module).__name__}")
        self.add_module(str(len(self._modules)), module)
        return self

    def __len__(self):
        return len(self._modules)

    def __iter__(self):
        return iter(self._modules.values())

    def __getitem__(self, index):
        modules = list(self._modules.values())
        if isinstance(index, slice):
            return Sequential(*modules[index])
        return modules[index]

    def forward(self, x):
        for module in self._modules.values():
            x = module(x)
        return x

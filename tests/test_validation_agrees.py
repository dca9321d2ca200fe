"""The same bad argument gets the same error class at every level it can
enter: the kernel wrapper (``tinycnn.kernels``), the function
(``tinycnn.functional``), the layer (``tinycnn.nn``) and the model.  Each rule
has one owner (``kernels/_args.py`` for scalars and arrays); the levels above
call it, or let it speak, prefixing their own name.  A wrong type is a
``TypeError``; a value of the right type outside its range a ``ValueError``;
every message names the argument and shows the value it got.
"""

import numpy as np
import pytest

import tinycnn
from tinycnn import functional as F
from tinycnn import nn
from tinycnn.kernels import batchnorm as bn_kernels
from tinycnn.kernels import conv as conv_kernels
from tinycnn.kernels import depthwise as dw_kernels
from tinycnn.kernels import pool as pool_kernels
from tinycnn.models import create_model

X = np.random.default_rng(0).standard_normal((2, 6, 6, 3)).astype(np.float32)
XT = tinycnn.Tensor(X)
W = np.random.default_rng(1).standard_normal((3, 3, 3, 4)).astype(np.float32)
WT = tinycnn.Tensor(W)
DW = np.ones((3, 3, 3, 1), np.float32)
V = np.ones(3, np.float32)

BAD_TYPES = [1.5, "2", True, None]


def _levels(kernel=None, function=None, layer=None, model=None):
    return [(name, call) for name, call in
            (("kernel", kernel), ("function", function), ("layer", layer), ("model", model)) if call]


# argument -> (bad values by error class, the levels, each a function of the value)
CASES = {
    "eps": ({ValueError: [0, 0.0, -1e-5, float("inf"), float("nan")], TypeError: ["1e-5", None, True]}, _levels(
        kernel=lambda v: bn_kernels.batch_norm_forward_train(X, None, None, v),
        function=lambda v: F.batch_norm(XT, None, None, training=True, eps=v),
        layer=lambda v: nn.BatchNorm2d(3, eps=v))),
    "momentum": ({ValueError: [-0.1, 1.5, float("nan")], TypeError: ["0.1", None, True]}, _levels(
        kernel=lambda v: bn_kernels.batch_norm_update_running(V.copy(), V.copy(), V, V, 4, v),
        function=lambda v: F.batch_norm(XT, V.copy(), V.copy(), training=True, momentum=v),
        layer=lambda v: nn.BatchNorm2d(3, momentum=v))),
    "p": ({ValueError: [-0.1, 1.5, float("nan")], TypeError: ["0.5", None, True]}, _levels(
        function=lambda v: F.dropout(XT, v),
        layer=lambda v: nn.Dropout(v))),
    "stride": ({ValueError: [0, -1, (1, 0), (1, 2, 3)], TypeError: BAD_TYPES[:3] + [(1, 1.0)]}, _levels(
        kernel=lambda v: conv_kernels.conv2d_forward(X, W, None, v),
        function=lambda v: F.conv2d(XT, WT, None, v),
        layer=lambda v: nn.Conv2d(3, 4, 3, stride=v))),
    "dilation": ({ValueError: [0, (0, 1)], TypeError: BAD_TYPES[:3]}, _levels(
        kernel=lambda v: dw_kernels.depthwise_conv2d_forward(X, DW, None, 1, 1, v),
        function=lambda v: F.depthwise_conv2d(XT, tinycnn.Tensor(DW), None, 1, 1, v),
        layer=lambda v: nn.DepthwiseConv2d(3, 3, dilation=v))),
    "kernel_size": ({ValueError: [0, (2, 0)], TypeError: BAD_TYPES}, _levels(
        kernel=lambda v: pool_kernels.max_pool2d_forward(X, v),
        function=lambda v: F.max_pool2d(XT, v),
        layer=lambda v: nn.MaxPool2d(v))),
    "padding": ({ValueError: [-1, (0, -1)], TypeError: [1.5, True, (1, 1.0)]}, _levels(
        kernel=lambda v: conv_kernels.conv2d_forward(X, W, None, 1, v),
        function=lambda v: F.conv2d(XT, WT, None, 1, v),
        layer=lambda v: nn.Conv2d(3, 4, 3, padding=v))),
    "in_channels": ({ValueError: [0, -3], TypeError: [3.0, "3", True, None]}, _levels(
        layer=lambda v: nn.Conv2d(v, 4, 3),
        model=lambda v: create_model("resnet20", in_chans=v))),
    "num_features": ({ValueError: [0], TypeError: [3.0, True]}, _levels(
        layer=lambda v: nn.BatchNorm2d(v),
        model=lambda v: create_model("resnet20", num_classes=v))),
    "se_reduction": ({ValueError: [0, -1], TypeError: [2.5, "4", True]}, _levels(
        model=lambda v: create_model("resnet20", se=True, se_reduction=v))),
}

PARAMS = [pytest.param(arg, error, value, level, call, id=f"{arg}-{level}-{value!r}")
          for arg, (bad, levels) in CASES.items() for error, values in bad.items()
          for value in values for level, call in levels]


@pytest.mark.parametrize("arg, error, value, level, call", PARAMS)
def test_a_bad_argument_gets_one_error_class_everywhere(arg, error, value, level, call):
    with pytest.raises((TypeError, ValueError)) as info:
        call(value)
    assert type(info.value) is error, f"{level}: {type(info.value).__name__}: {info.value}"
    message = str(info.value)
    named = {"in_channels": ("in_channels", "in_chans"), "num_features": ("num_features", "num_classes")}
    assert any(name in message for name in named.get(arg, (arg,))), message


# input arrays: (bad input, error class) through the levels that take an input
INPUTS = [
    ("3-D", X[0], ValueError),
    ("NCHW", np.ascontiguousarray(X.transpose(0, 3, 1, 2)), ValueError),
    ("4 channels", np.concatenate([X, X[..., :1]], axis=3), ValueError),
    ("int", X.astype(np.int32), TypeError),
    ("float16", X.astype(np.float16), TypeError),
]


def _input_levels():
    conv, bn, model = nn.Conv2d(3, 4, 3), nn.BatchNorm2d(3), create_model("resnet20")
    return _levels(kernel=lambda x: conv_kernels.conv2d_forward(x, W),
                   function=lambda x: F.conv2d(tinycnn.Tensor(x, dtype=x.dtype), WT),
                   layer=lambda x: conv(tinycnn.Tensor(x, dtype=x.dtype))) + \
        [("batchnorm kernel", lambda x: bn_kernels.batch_norm_forward_train(x, None, None, 1e-5)),
         ("batchnorm layer", lambda x: bn(tinycnn.Tensor(x, dtype=x.dtype))),
         ("model", lambda x: model(tinycnn.Tensor(x, dtype=x.dtype)))]


@pytest.mark.parametrize("what, x, error", INPUTS, ids=[i[0] for i in INPUTS])
def test_a_bad_input_gets_one_error_class_everywhere(what, x, error):
    for level, call in _input_levels():
        if level == "batchnorm kernel" and what in ("NCHW", "4 channels"):
            continue  # the kernel normalises any number of channels: no channel count to check against
        with pytest.raises((TypeError, ValueError)) as info:
            call(x)
        assert type(info.value) is error, f"{what} at the {level}: {type(info.value).__name__}: {info.value}"

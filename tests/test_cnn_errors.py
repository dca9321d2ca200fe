"""Bad input to the CNN functions and layers raises ValueError/TypeError whose
message names the op or layer (or the argument), what was expected and what
was given."""

import re

import numpy as np
import pytest

import tinycnn.functional as F
from tinycnn import Tensor, nn


def t(*shape, dtype=np.float64):
    return Tensor(np.ones(shape, dtype=dtype))


def t32(*shape):
    return t(*shape, dtype=np.float32)


X = t(2, 5, 5, 3)
W = t(3, 3, 3, 4)

FUNCTIONAL = [
    # ---------------------------------------------------- channels and sizes
    ("conv2d channels", lambda: F.conv2d(X, t(3, 3, 2, 4)), ValueError,
     r"conv2d: channel mismatch: weight \(KH, KW, C_in/groups, C_out\) = \(3, 3, 2, 4\) expects C_in/groups=2, "
     r"but x has C=3 channels"),
    ("depthwise channels", lambda: F.depthwise_conv2d(X, t(3, 3, 4, 1)), ValueError,
     r"depthwise_conv2d: channel mismatch: w \(KH, KW, C, M\) = \(3, 3, 4, 1\) expects C=4 .*x has C=3"),
    ("conv2d kernel too big", lambda: F.conv2d(t(1, 2, 6, 3), W), ValueError,
     r"conv2d: kernel_size \(height\): the dilated kernel spans 3 pixels but the padded input is only 2"),
    ("conv2d dilated kernel too big", lambda: F.conv2d(X, W, padding=1, dilation=4), ValueError,
     r"conv2d: kernel_size \(height\): the dilated kernel spans 9 pixels but the padded input is only 7 "
     r"\(input 5 \+ padding 1\+1\)"),
    ("depthwise kernel too big", lambda: F.depthwise_conv2d(t(1, 4, 4, 3), t(1, 5, 3, 1)), ValueError,
     r"depthwise_conv2d: kernel_size \(width\): the dilated kernel spans 5 pixels but the padded input is only 4"),
    ("max_pool2d window too big", lambda: F.max_pool2d(t(1, 2, 2, 3), 3), ValueError,
     r"max_pool2d: kernel_size \(height\): .*spans 3 pixels but the padded input is only 2"),
    # ------------------------------------------------------ number of axes
    ("conv2d 3-D", lambda: F.conv2d(t(5, 5, 3), W), ValueError, r"conv2d: x must be 4-D \(N, H, W, C\), got shape \(5, 5, 3\)"),
    ("conv2d 5-D", lambda: F.conv2d(t(1, 2, 5, 5, 3), W), ValueError, r"conv2d: x must be 4-D .*got shape \(1, 2, 5, 5, 3\)"),
    ("conv2d 3-D weight", lambda: F.conv2d(X, t(3, 3, 3)), ValueError, r"conv2d: weight must be 4-D, got shape \(3, 3, 3\)"),
    ("depthwise 3-D", lambda: F.depthwise_conv2d(t(5, 5, 3), t(3, 3, 3, 1)), ValueError, r"depthwise_conv2d: x must be 4-D .*\(5, 5, 3\)"),
    ("max_pool2d 3-D", lambda: F.max_pool2d(t(5, 5, 3), 2), ValueError, r"max_pool2d: x must be 4-D .*\(5, 5, 3\)"),
    ("avg_pool2d 5-D", lambda: F.avg_pool2d(t(1, 1, 5, 5, 3), 2), ValueError, r"avg_pool2d: x must be 4-D .*\(1, 1, 5, 5, 3\)"),
    ("global_avg_pool2d 3-D", lambda: F.global_avg_pool2d(t(5, 5, 3)), ValueError, r"global_avg_pool2d: x must be 4-D .*\(5, 5, 3\)"),
    ("batch_norm 3-D", lambda: F.batch_norm(t(5, 5, 3), None, None, training=True), ValueError,
     r"batch_norm: x must be 4-D .*\(5, 5, 3\)"),
    # ------------------------------------------------------------- dtypes
    ("conv2d int array", lambda: F.conv2d(np.ones((2, 5, 5, 3), np.int64), W), TypeError,
     r"conv2d: x must be float32 or float64, got int64"),
    ("conv2d float16 array", lambda: F.conv2d(np.ones((2, 5, 5, 3), np.float16), W), TypeError,
     r"conv2d: x must be float32 or float64, got float16"),
    ("conv2d int tensor", lambda: F.conv2d(Tensor(np.ones((2, 5, 5, 3)), dtype=np.int32), W), TypeError,
     r"conv2d: x must be float32 or float64, got int32"),
    ("conv2d int weight", lambda: F.conv2d(X, np.ones((3, 3, 3, 4), np.int64)), TypeError,
     r"conv2d: weight must be float32 or float64, got int64"),
    ("max_pool2d bool array", lambda: F.max_pool2d(np.ones((1, 4, 4, 1), bool), 2), TypeError,
     r"max_pool2d: x must be float32 or float64, got bool"),
    ("batch_norm float16", lambda: F.batch_norm(Tensor(np.ones((2, 2, 2, 3)), dtype=np.float16), None, None, training=True),
     TypeError, r"batch_norm: x must be float32 or float64, got float16"),
    ("linear int array", lambda: F.linear(np.ones((2, 3), np.int32), t(3, 4)), TypeError,
     r"linear: x must be float32 or float64, got int32"),
    ("conv2d list", lambda: F.conv2d([[1.0]], W), TypeError, r"conv2d: x must be a Tensor, got list"),
    ("conv2d mixed dtypes", lambda: F.conv2d(t32(2, 5, 5, 3), W), TypeError,
     r"conv2d: all tensors must share one dtype, got x float32, weight float64"),
    ("conv2d bias dtype", lambda: F.conv2d(X, W, t32(4)), TypeError,
     r"conv2d: all tensors must share one dtype, got x float64, weight float64, bias float32"),
    ("depthwise mixed dtypes", lambda: F.depthwise_conv2d(X, t32(3, 3, 3, 1)), TypeError,
     r"depthwise_conv2d: all tensors must share one dtype, got x float64, weight float32"),
    ("batch_norm weight dtype", lambda: F.batch_norm(X, None, None, t32(3), t32(3), training=True), TypeError,
     r"batch_norm: all tensors must share one dtype, got x float64, weight float32, bias float32"),
    ("batch_norm running dtype", lambda: F.batch_norm(X, np.zeros(3, np.float32), np.ones(3, np.float32)), TypeError,
     r"batch_norm: running_mean must have the dtype of x \(float64\), got float32"),
    ("linear mixed dtypes", lambda: F.linear(t32(2, 3), t(3, 4)), TypeError,
     r"linear: all tensors must share one dtype, got x float32, weight float64"),
    # ----------------------------------------------------------- arguments
    ("conv2d groups in", lambda: F.conv2d(X, t(3, 3, 1, 4), groups=2), ValueError,
     r"conv2d: groups=2 must divide the input channels: x has C=3 channels"),
    ("conv2d groups out", lambda: F.conv2d(t(1, 5, 5, 4), t(3, 3, 2, 3), groups=2), ValueError,
     r"conv2d: groups=2 must divide the output channels: weight has C_out=3 channels"),
    ("conv2d groups zero", lambda: F.conv2d(X, W, groups=0), ValueError, r"conv2d: groups must be >= 1, got 0"),
    ("conv2d negative padding", lambda: F.conv2d(X, W, padding=-1), ValueError, r"conv2d: padding must be >= 0, got -1"),
    ("conv2d negative pair", lambda: F.conv2d(X, W, padding=(1, -2)), ValueError, r"conv2d: padding must be >= 0, got \(1, -2\)"),
    ("conv2d unknown padding", lambda: F.conv2d(X, W, padding="full"), ValueError,
     r"conv2d: padding must be an int, a pair, 'same' or 'valid', got 'full'"),
    ("depthwise negative padding", lambda: F.depthwise_conv2d(X, t(3, 3, 3, 1), padding=-1), ValueError,
     r"depthwise_conv2d: padding must be >= 0, got -1"),
    ("max_pool2d negative padding", lambda: F.max_pool2d(X, 2, padding=-1), ValueError, r"max_pool2d: padding must be >= 0, got -1"),
    ("conv2d zero stride", lambda: F.conv2d(X, W, stride=0), ValueError, r"conv2d: stride must be >= 1, got 0"),
    ("conv2d zero stride pair", lambda: F.conv2d(X, W, stride=(1, 0)), ValueError, r"conv2d: stride must be >= 1, got \(1, 0\)"),
    ("conv2d float stride", lambda: F.conv2d(X, W, stride=1.5), TypeError, r"conv2d: stride must be an int or a pair of ints, got 1.5"),
    ("conv2d zero dilation", lambda: F.conv2d(X, W, dilation=0), ValueError, r"conv2d: dilation must be >= 1, got 0"),
    ("depthwise zero stride", lambda: F.depthwise_conv2d(X, t(3, 3, 3, 1), stride=0), ValueError,
     r"depthwise_conv2d: stride must be >= 1, got 0"),
    ("avg_pool2d zero stride", lambda: F.avg_pool2d(X, 2, stride=0), ValueError, r"avg_pool2d: stride must be >= 1, got 0"),
    ("max_pool2d zero kernel", lambda: F.max_pool2d(X, 0), ValueError, r"max_pool2d: kernel_size must be >= 1, got 0"),
    ("max_pool2d padding over half", lambda: F.max_pool2d(X, 3, padding=2), ValueError,
     r"max_pool2d: padding must be at most half the kernel size, i.e. <= \(1, 1\) for kernel_size \(3, 3\); got padding \(2, 2\)"),
    ("avg_pool2d padding over half", lambda: F.avg_pool2d(X, (2, 4), padding=(1, 3)), ValueError,
     r"avg_pool2d: padding must be at most half the kernel size, i.e. <= \(1, 2\) .*got padding \(1, 3\)"),
    ("conv2d bias shape", lambda: F.conv2d(X, W, t(3)), ValueError, r"conv2d: b must have shape \(C_out,\) = \(4,\), got \(3,\)"),
    # ------------------------------------------------------------ batch norm
    ("batch_norm momentum", lambda: F.batch_norm(X, None, None, training=True, momentum=1.5), ValueError,
     r"batch_norm: momentum must be a number in \[0, 1\], got 1.5"),
    ("batch_norm momentum None", lambda: F.batch_norm(X, None, None, training=True, momentum=None), TypeError,
     r"batch_norm: momentum must be a number in \[0, 1\], got None"),
    ("batch_norm eps", lambda: F.batch_norm(X, None, None, training=True, eps=0.0), ValueError,
     r"batch_norm: eps must be a positive finite number, got 0.0"),
    ("batch_norm running shape", lambda: F.batch_norm(X, np.zeros(4), np.ones(4)), ValueError,
     r"batch_norm: running_mean must have shape \(3,\) for 3 channels, got \(4,\)"),
    ("batch_norm half running", lambda: F.batch_norm(X, np.zeros(3), None, training=True), ValueError,
     r"batch_norm: give both running_mean and running_var, or neither"),
    ("batch_norm half affine", lambda: F.batch_norm(X, None, None, t(3), None, training=True), ValueError,
     r"batch_norm: give both weight and bias, or neither"),
    ("batch_norm eval without stats", lambda: F.batch_norm(X, None, None, training=False), ValueError,
     r"batch_norm: running_mean and running_var are needed when training=False"),
    ("batch_norm one value", lambda: F.batch_norm(t(1, 1, 1, 3), None, None, training=True), ValueError,
     r"batch_norm: expected more than 1 value per channel when training, got input of shape \(1, 1, 1, 3\)"),
    # ---------------------------------------------------------------- linear
    ("linear features", lambda: F.linear(t(2, 3), t(4, 5)), ValueError,
     r"linear: x's last axis must match weight's in_features 4, got x of shape \(2, 3\)"),
    ("linear 3-D weight", lambda: F.linear(t(2, 3), t(1, 3, 5)), ValueError, r"linear: weight must be 2-D, got shape \(1, 3, 5\)"),
    ("linear bias shape", lambda: F.linear(t(2, 3), t(3, 5), t(4)), ValueError,
     r"linear: bias must have shape \(5,\), got \(4,\)"),
    ("dropout p", lambda: F.dropout(X, 1.5), ValueError, r"dropout: p must be a probability in \[0, 1\], got 1.5"),
]


def _check(call, error, message):
    with pytest.raises(error) as info:
        call()
    assert type(info.value) is error  # not a subclass such as a NumPy or Numba error
    assert re.search(message, str(info.value)), f"message: {info.value}"


@pytest.mark.parametrize("call, error, message", [c[1:] for c in FUNCTIONAL], ids=[c[0] for c in FUNCTIONAL])
def test_functional_bad_input_is_explained(call, error, message):
    _check(call, error, message)


MODULE = [
    # ------------------------------------------------------- construction
    ("Conv2d groups", lambda: nn.Conv2d(3, 4, 3, groups=2), ValueError,
     r"Conv2d: groups \(2\) must divide in_channels \(3\) and out_channels \(4\)"),
    ("Conv2d negative padding", lambda: nn.Conv2d(3, 4, 3, padding=-1), ValueError, r"Conv2d: padding must be >= 0, got -1"),
    ("Conv2d zero stride", lambda: nn.Conv2d(3, 4, 3, stride=0), ValueError, r"Conv2d: stride must be >= 1, got 0"),
    ("Conv2d zero kernel", lambda: nn.Conv2d(3, 4, (3, 0)), ValueError, r"Conv2d: kernel_size must be >= 1, got \(3, 0\)"),
    ("Conv2d zero channels", lambda: nn.Conv2d(0, 4, 3), ValueError, r"Conv2d: in_channels must be >= 1, got 0"),
    ("Conv2d float channels", lambda: nn.Conv2d(3.0, 4, 3), TypeError, r"Conv2d: in_channels must be an int, got float"),
    ("Conv2d int dtype", lambda: nn.Conv2d(3, 4, 3, dtype=np.int32), TypeError, r"Conv2d: dtype must be float32 or float64, got int32"),
    ("DepthwiseConv2d zero stride", lambda: nn.DepthwiseConv2d(3, 3, stride=0), ValueError, r"DepthwiseConv2d: stride must be >= 1, got 0"),
    ("DepthwiseConv2d negative padding", lambda: nn.DepthwiseConv2d(3, 3, padding=-1), ValueError,
     r"DepthwiseConv2d: padding must be >= 0, got -1"),
    ("DepthwiseConv2d multiplier", lambda: nn.DepthwiseConv2d(3, 3, depth_multiplier=0), ValueError,
     r"DepthwiseConv2d: depth_multiplier must be >= 1, got 0"),
    ("BatchNorm2d momentum", lambda: nn.BatchNorm2d(3, momentum=1.5), ValueError,
     r"BatchNorm2d: momentum must be a number in \[0, 1\], got 1.5"),
    ("BatchNorm2d negative momentum", lambda: nn.BatchNorm2d(3, momentum=-0.1), ValueError,
     r"BatchNorm2d: momentum must be a number in \[0, 1\], got -0.1"),
    ("BatchNorm2d momentum None", lambda: nn.BatchNorm2d(3, momentum=None), TypeError,
     r"BatchNorm2d: momentum must be a number in \[0, 1\], got None"),
    ("BatchNorm2d eps", lambda: nn.BatchNorm2d(3, eps=0), ValueError, r"BatchNorm2d: eps must be a positive finite number, got 0"),
    ("BatchNorm2d negative eps", lambda: nn.BatchNorm2d(3, eps=-1e-5), ValueError,
     r"BatchNorm2d: eps must be a positive finite number, got -1e-05"),
    ("BatchNorm2d eps string", lambda: nn.BatchNorm2d(3, eps="1e-5"), TypeError,
     r"BatchNorm2d: eps must be a positive finite number, got '1e-5'"),
    ("BatchNorm2d features", lambda: nn.BatchNorm2d(0), ValueError, r"BatchNorm2d: num_features must be >= 1, got 0"),
    ("Linear features", lambda: nn.Linear(0, 3), ValueError, r"Linear: in_features must be >= 1, got 0"),
    # ------------------------------------------------------------- forward
    ("Conv2d NCHW input", lambda: nn.Conv2d(3, 8, 3)(t32(2, 3, 8, 8)), ValueError,
     r"Conv2d\(3, 8\): expected 3 input channels in the last axis \(N, H, W, C\), got shape \(2, 3, 8, 8\)"),
    ("Conv2d channels", lambda: nn.Conv2d(3, 8, 3)(t32(2, 8, 8, 4)), ValueError,
     r"Conv2d\(3, 8\): expected 3 input channels .*got shape \(2, 8, 8, 4\)"),
    ("Conv2d 3-D", lambda: nn.Conv2d(3, 8, 3)(t32(8, 8, 3)), ValueError,
     r"Conv2d\(3, 8\): expected a 4-D input \(N, H, W, C\), got shape \(8, 8, 3\)"),
    ("Conv2d 5-D", lambda: nn.Conv2d(3, 8, 3)(t32(1, 2, 8, 8, 3)), ValueError,
     r"Conv2d\(3, 8\): expected a 4-D input \(N, H, W, C\), got shape \(1, 2, 8, 8, 3\)"),
    ("Conv2d list", lambda: nn.Conv2d(3, 8, 3)([1, 2, 3]), ValueError, r"Conv2d\(3, 8\): expected a 4-D input .*got list"),
    ("Conv2d kernel too big", lambda: nn.Conv2d(3, 8, 5)(t32(1, 4, 8, 3)), ValueError,
     r"conv2d: kernel_size \(height\): the dilated kernel spans 5 pixels but the padded input is only 4"),
    ("Conv2d float64 input", lambda: nn.Conv2d(3, 8, 3)(t(1, 5, 5, 3)), TypeError,
     r"conv2d: all tensors must share one dtype, got x float64, weight float32, bias float32"),
    ("Conv2d int input", lambda: nn.Conv2d(3, 8, 3)(np.ones((1, 5, 5, 3), np.uint8)), TypeError,
     r"conv2d: x must be float32 or float64, got uint8"),
    ("Conv2d float16 input", lambda: nn.Conv2d(3, 8, 3)(np.ones((1, 5, 5, 3), np.float16)), TypeError,
     r"conv2d: x must be float32 or float64, got float16"),
    ("DepthwiseConv2d NCHW input", lambda: nn.DepthwiseConv2d(3, 3)(t32(2, 3, 8, 8)), ValueError,
     r"DepthwiseConv2d\(3\): expected 3 input channels in the last axis \(N, H, W, C\), got shape \(2, 3, 8, 8\)"),
    ("SeparableConv2d channels", lambda: nn.SeparableConv2d(3, 8)(t32(1, 5, 5, 4)), ValueError,
     r"DepthwiseConv2d\(3\): expected 3 input channels .*\(1, 5, 5, 4\)"),
    ("BatchNorm2d NCHW input", lambda: nn.BatchNorm2d(3)(t32(2, 3, 8, 8)), ValueError,
     r"BatchNorm2d\(3\): expected 3 input channels in the last axis \(N, H, W, C\), got shape \(2, 3, 8, 8\)"),
    ("BatchNorm2d 2-D", lambda: nn.BatchNorm2d(3)(t32(4, 3)), ValueError,
     r"BatchNorm2d\(3\): expected a 4-D input \(N, H, W, C\), got shape \(4, 3\)"),
    ("BatchNorm2d float64 input", lambda: nn.BatchNorm2d(3)(t(2, 2, 2, 3)), TypeError,
     r"batch_norm: all tensors must share one dtype, got x float64, weight float32, bias float32"),
    ("Linear features", lambda: nn.Linear(3, 4)(t32(2, 5)), ValueError,
     r"Linear\(3, 4\): expected input with 3 features in the last axis, got shape \(2, 5\)"),
    ("MaxPool2d padding over half", lambda: nn.MaxPool2d(2, padding=2)(t32(1, 6, 6, 3)), ValueError,
     r"max_pool2d: padding must be at most half the kernel size, i.e. <= \(1, 1\) for kernel_size \(2, 2\); got padding \(2, 2\)"),
    ("AvgPool2d padding over half", lambda: nn.AvgPool2d(3, padding=2)(t32(1, 6, 6, 3)), ValueError,
     r"avg_pool2d: padding must be at most half the kernel size, i.e. <= \(1, 1\) .*got padding \(2, 2\)"),
    ("MaxPool2d zero stride", lambda: nn.MaxPool2d(2, stride=0)(t32(1, 6, 6, 3)), ValueError,
     r"MaxPool2d: stride must be >= 1, got 0"),
    ("MaxPool2d 3-D", lambda: nn.MaxPool2d(2)(t32(6, 6, 3)), ValueError, r"max_pool2d: x must be 4-D \(N, H, W, C\), got shape \(6, 6, 3\)"),
    ("GlobalAvgPool2d 2-D", lambda: nn.GlobalAvgPool2d()(t32(6, 3)), ValueError,
     r"global_avg_pool2d: x must be 4-D \(N, H, W, C\), got shape \(6, 3\)"),
    ("Dropout p", lambda: nn.Dropout(-0.5), ValueError, r"Dropout: p must be a probability in \[0, 1\], got -0.5"),
]


@pytest.mark.parametrize("call, error, message", [c[1:] for c in MODULE], ids=[c[0] for c in MODULE])
def test_module_bad_input_is_explained(call, error, message):
    _check(call, error, message)


def test_failed_forward_leaves_batchnorm_state_alone():
    bn = nn.BatchNorm2d(3)
    with pytest.raises(TypeError):
        bn(t(2, 2, 2, 3))  # float64 input to a float32 layer
    assert bn.num_batches_tracked == 0  # a failed call is not a tracked batch
    np.testing.assert_array_equal(bn.running_mean, 0.0)

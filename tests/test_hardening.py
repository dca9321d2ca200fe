"""Hardening: bad input anywhere in the public API raises ValueError or TypeError
naming the argument, what was expected and what was given -- never an
IndexError, a NumPy/Numba error from inside a kernel, or a crash.

``BAD_INPUTS`` lists distinct bad inputs (the op/layer tables in
test_errors.py and test_cnn_errors.py hold more); the hypothesis tests below
throw random shapes, dtypes and arguments at the kernels' wrappers and random
garbage at save/load.  NaN and infinity in the data are not errors: the ops
propagate them and anomaly mode names the op that produced them.
"""

import os
import re

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import tinycnn
import tinycnn.functional as F
from tinycnn import Tensor, nn, optim, serialization
from tinycnn.anomaly import AnomalyError, detect_anomaly
from tinycnn.data import ArrayDataset, DataLoader
from tinycnn.kernels import batchnorm as bn_kernels
from tinycnn.kernels import conv as conv_kernels
from tinycnn.kernels import depthwise as dw_kernels
from tinycnn.kernels import pool as pool_kernels
from tinycnn.models import create_model


def t(*shape, dtype=np.float32):
    return Tensor(np.ones(shape, dtype=dtype))


def param(*shape):
    return Tensor(np.ones(shape, np.float32), requires_grad=True)


def ds(n=3):
    return ArrayDataset(np.zeros((n, 4, 4, 1), np.uint8), np.arange(n) % 2)


def with_grad(p, grad):
    p.grad = grad
    return p


X = t(2, 5, 5, 3)
W = t(3, 3, 3, 4)
SGD_GROUPS = optim.SGD([param(3)], lr=0.1).state_dict()["param_groups"]

BAD_INPUTS = [
    # ------------------------------------------------------- functional ops
    ("conv2d groups str", lambda: F.conv2d(X, W, groups="1"), TypeError, r"conv2d: groups must be an int, got '1'"),
    ("conv2d stride None", lambda: F.conv2d(X, W, stride=None), TypeError,
     r"conv2d: stride must be an int or a pair of ints, got None"),
    ("conv2d padding 3 values", lambda: F.conv2d(X, W, padding=(1, 1, 1)), ValueError,
     r"conv2d: padding must be an int or a pair of ints, got a sequence of length 3"),
    ("conv2d negative explicit padding", lambda: F.conv2d(X, W, padding=(1, 1, 1, -1)), ValueError,
     r"conv2d: padding must be >= 0, got \(1, 1, 1, -1\)"),
    ("conv2d empty C_out", lambda: F.conv2d(X, t(3, 3, 3, 0)), ValueError,
     r"conv2d: w must have no empty axis, got shape \(3, 3, 3, 0\)"),
    ("conv2d empty channels", lambda: F.conv2d(t(1, 5, 5, 0), t(3, 3, 0, 4)), ValueError,
     r"conv2d: x must have non-empty H, W and C axes .*got shape \(1, 5, 5, 0\)"),
    ("conv2d 2-D bias", lambda: F.conv2d(X, W, t(4, 1)), ValueError, r"conv2d: bias must be 1-D, got shape \(4, 1\)"),
    ("conv2d int bias", lambda: F.conv2d(X, W, np.ones(4, np.int32)), TypeError,
     r"conv2d: bias must be float32 or float64, got int32"),
    ("depthwise empty multiplier", lambda: F.depthwise_conv2d(X, t(3, 3, 3, 0)), ValueError,
     r"depthwise_conv2d: w must have no empty axis, got shape \(3, 3, 3, 0\)"),
    ("depthwise bias shape", lambda: F.depthwise_conv2d(X, t(3, 3, 3, 2), t(3)), ValueError,
     r"depthwise_conv2d: b must have shape \(C\*M,\) = \(6,\), got \(3,\)"),
    ("max_pool2d kernel None", lambda: F.max_pool2d(X, None), TypeError,
     r"max_pool2d: kernel_size must be an int or a pair of ints, got None"),
    ("avg_pool2d negative kernel", lambda: F.avg_pool2d(X, -1), ValueError, r"avg_pool2d: kernel_size must be >= 1, got -1"),
    ("global_avg_pool2d empty H", lambda: F.global_avg_pool2d(t(1, 0, 4, 3)), ValueError,
     r"global_avg_pool2d: x must have non-empty H, W and C axes .*got shape \(1, 0, 4, 3\)"),
    ("batch_norm eps nan", lambda: F.batch_norm(X, None, None, training=True, eps=float("nan")), ValueError,
     r"batch_norm: eps must be a positive finite number, got nan"),
    ("batch_norm eps inf", lambda: F.batch_norm(X, None, None, training=True, eps=float("inf")), ValueError,
     r"batch_norm: eps must be a positive finite number, got inf"),
    ("batch_norm momentum nan", lambda: F.batch_norm(X, None, None, training=True, momentum=float("nan")), ValueError,
     r"batch_norm: momentum must be a number in \[0, 1\], got nan"),
    ("batch_norm running list", lambda: F.batch_norm(X, [0, 0, 0], [1, 1, 1]), TypeError,
     r"batch_norm: running_mean must be an ndarray or None, got list"),
    ("batch_norm read-only running", lambda: F.batch_norm(X, _read_only(np.zeros(3, np.float32)), np.ones(3, np.float32),
                                                          training=True), ValueError,
     r"batch_norm: running_mean must be writeable"),
    ("batch_norm weight shape", lambda: F.batch_norm(X, None, None, t(4), t(4), training=True), ValueError,
     r"batch_norm: weight must have shape \(C,\) = \(3,\) to match the channels of x, got \(4,\)"),
    ("batch_norm empty batch", lambda: F.batch_norm(t(0, 2, 2, 3), None, None, training=True), ValueError,
     r"batch_norm: expected more than 1 value per channel when training, got input of shape \(0, 2, 2, 3\)"),
    ("cross_entropy bool targets", lambda: F.cross_entropy(t(2, 3), np.array([True, False])), TypeError,
     r"cross_entropy: targets must be integer class indices, got dtype bool"),
    ("cross_entropy empty", lambda: F.cross_entropy(t(0, 3), np.zeros(0, int)), ValueError,
     r"cross_entropy: logits must be non-empty, got shape \(0, 3\)"),
    ("dropout p nan", lambda: F.dropout(X, float("nan")), ValueError, r"dropout: p must be a probability in \[0, 1\], got nan"),
    ("linear 1-D weight", lambda: F.linear(t(2, 3), t(3)), ValueError, r"linear: weight must be 2-D, got shape \(3,\)"),
    # ---------------------------------------------------------------- modules
    ("Conv2d float kernel", lambda: nn.Conv2d(3, 4, 2.5), TypeError,
     r"Conv2d: kernel_size must be an int or a pair of ints, got 2.5"),
    ("Conv2d bool channels", lambda: nn.Conv2d(True, 4, 3), TypeError, r"Conv2d: in_channels must be an int, got bool"),
    ("Conv2d unknown dtype", lambda: nn.Conv2d(3, 4, 3, dtype="banana"), TypeError,
     r"Conv2d: dtype must be float32 or float64, got 'banana'"),
    ("Conv2d float16", lambda: nn.Conv2d(3, 4, 3, dtype=np.float16), TypeError,
     r"Conv2d: dtype must be float32 or float64, got float16"),
    ("MaxPool2d zero kernel", lambda: nn.MaxPool2d(0), ValueError, r"MaxPool2d: kernel_size must be >= 1, got 0"),
    ("MaxPool2d str kernel", lambda: nn.MaxPool2d("2"), TypeError,
     r"MaxPool2d: kernel_size must be an int or a pair of ints, got '2'"),
    ("AvgPool2d negative stride", lambda: nn.AvgPool2d(2, stride=-1), ValueError, r"AvgPool2d: stride must be >= 1, got -1"),
    ("AvgPool2d negative padding", lambda: nn.AvgPool2d(2, padding=-1), ValueError, r"AvgPool2d: padding must be >= 0, got -1"),
    ("BatchNorm2d eps inf", lambda: nn.BatchNorm2d(3, eps=float("inf")), ValueError,
     r"BatchNorm2d: eps must be a positive finite number, got inf"),
    ("Linear 0-D input", lambda: nn.Linear(3, 4)(t()), ValueError,
     r"Linear\(3, 4\): expected input with 3 features in the last axis, got shape \(\)"),
    ("Sequential of an int", lambda: nn.Sequential(3), TypeError, r"Sequential: item 0 must be a Module, got int"),
    # ----------------------------------------------------------------- models
    ("create_model unknown", lambda: create_model("resnet7"), ValueError,
     r"create_model: unknown model 'resnet7'.*Known models: .*resnet20"),
    ("create_model name int", lambda: create_model(20), TypeError, r"create_model: name must be a str, got int"),
    ("create_model num_classes 0", lambda: create_model("resnet20", num_classes=0), ValueError,
     r"create_model: num_classes must be an int >= 1, got 0"),
    ("create_model num_classes str", lambda: create_model("resnet20", num_classes="10"), TypeError,
     r"create_model: num_classes must be an int >= 1, got str '10'"),
    ("create_model in_chans 0", lambda: create_model("resnet20", in_chans=0), ValueError,
     r"create_model: in_chans must be an int >= 1, got 0"),
    ("create_model se_reduction 0", lambda: create_model("resnet20", se=True, se_reduction=0), ValueError,
     r"ResNet: se_reduction must be >= 1, got 0"),
    ("xception se_reduction float", lambda: create_model("xception", se=True, se_reduction=2.5), TypeError,
     r"Xception: se_reduction must be an int, got float"),
    ("model NCHW input", lambda: create_model("resnet20", num_classes=10)(t(1, 3, 8, 8)), ValueError,
     r"ResNet expects \(N, H, W, C\) input with C = 3 channels, got shape \(1, 3, 8, 8\) \(this looks like NCHW"),
    ("model uint8 input", lambda: create_model("resnet20", num_classes=10)(np.ones((1, 8, 8, 3), np.uint8)), TypeError,
     r"conv2d: x must be float32 or float64, got uint8"),
    ("model float64 input", lambda: create_model("resnet20", num_classes=10)(t(1, 8, 8, 3, dtype=np.float64)),
     TypeError, r"conv2d: all tensors must share one dtype, got x float64, weight float32"),
    ("model image too small", lambda: create_model("resnet18", num_classes=10)(t(1, 1, 1, 3)), ValueError,
     r"batch_norm: expected more than 1 value per channel when training, got input of shape \(1, 1, 1, 64\)"),
    # ------------------------------------------------------------- optimizers
    ("SGD lr nan", lambda: optim.SGD([param(3)], lr=float("nan")), ValueError, r"SGD: lr must be a finite number >= 0, got nan"),
    ("SGD single tensor", lambda: optim.SGD(param(3), lr=0.1), TypeError, r"SGD: params must be an iterable .*single Tensor"),
    ("SGD ndarray params", lambda: optim.SGD([np.ones(3)], lr=0.1), TypeError,
     r"SGD: params must be Parameters or Tensors, got ndarray at position 0"),
    ("Adam betas triple", lambda: optim.Adam([param(3)], betas=(0.9, 0.9, 0.9)), TypeError,
     r"Adam: betas must be a pair \(beta1, beta2\), got \(0.9, 0.9, 0.9\)"),
    ("Adam beta2 1.5", lambda: optim.Adam([param(3)], betas=(0.9, 1.5)), ValueError,
     r"Adam: betas\[1\] must be a finite number in \[0, 1\), got 1.5"),
    ("SGD grad shape", lambda: optim.SGD([with_grad(param(3), np.ones(4, np.float32))], lr=0.1).step(), ValueError,
     r"SGD: a parameter of shape \(3,\) has a grad of shape \(4,\)"),
    ("SGD state of wrong shape", lambda: optim.SGD([param(3)], lr=0.1, momentum=0.9).load_state_dict(
        {"state": {0: {"momentum_buffer": np.ones(4)}}, "param_groups": SGD_GROUPS}), ValueError,
     r"SGD.load_state_dict: state 'momentum_buffer' of parameter 0 must be a numeric array of shape \(3,\), got .*\(4,\)"),
    ("SGD param_groups str", lambda: optim.SGD([param(3)], lr=0.1).load_state_dict({"state": {}, "param_groups": "x"}),
     ValueError, r"SGD.load_state_dict: malformed state dict .*expected \{'state'"),
    ("SGD state key str", lambda: optim.SGD([param(3)], lr=0.1).load_state_dict(
        {"state": {"a": {}}, "param_groups": SGD_GROUPS}), ValueError, r"SGD.load_state_dict: malformed state dict .*'a'"),
    ("clip norm_type 0", lambda: optim.clip_grad_norm_([param(3)], 1.0, norm_type=0), ValueError,
     r"clip_grad_norm_: norm_type must be > 0 or inf, got 0.0"),
    ("scheduler of a str", lambda: optim.CosineAnnealingLR("x", T_max=10), TypeError,
     r"CosineAnnealingLR: expected a tinycnn Optimizer, got str"),
    # ------------------------------------------------------ data and loaders
    ("ArrayDataset float labels", lambda: ArrayDataset(np.ones((3, 4, 4, 1)), np.zeros(3)), TypeError,
     r"ArrayDataset: labels must be integers, got float64"),
    ("ArrayDataset 2-D images", lambda: ArrayDataset(np.ones((3, 4)), np.zeros(3, int)), ValueError,
     r"ArrayDataset: images must be \(N, H, W, C\), got shape \(3, 4\)"),
    ("ArrayDataset too few classes", lambda: ArrayDataset(np.ones((3, 4, 4, 1)), np.arange(3), classes=["a"]), ValueError,
     r"ArrayDataset: labels span 0..2, expected 0..0 for 1 classes"),
    ("subset out of range", lambda: ds().subset([7]), ValueError,
     r"ArrayDataset.subset: indices must lie in \[-3, 3\) for 3 images, got 7"),
    ("DataLoader batch_size float", lambda: DataLoader(ds(), batch_size=2.0), ValueError,
     r"DataLoader: batch_size must be an int >= 1, got 2.0"),
    ("DataLoader negative seed", lambda: DataLoader(ds(), seed=-1), ValueError,
     r"DataLoader: seed must be a non-negative int or None, got -1"),
    ("DataLoader state None", lambda: DataLoader(ds(), seed=0).load_state_dict(None), TypeError,
     r"DataLoader.load_state_dict: expected a dict with 'seed', 'epoch' and 'batch', got NoneType"),
    ("DataLoader state str", lambda: DataLoader(ds(), seed=0).load_state_dict({"seed": 0, "epoch": "b", "batch": 0}),
     TypeError, r"DataLoader.load_state_dict: epoch must be an int, got 'b'"),
    ("DataLoader transform drops N", lambda: list(DataLoader(ds(), transform=lambda x: x[0])), ValueError,
     r"DataLoader: batch images must be \(N, H, W, C\) after transforms, got \(4, 4, 1\)"),
    # ------------------------------------------------------- save, load, state
    ("save a set", lambda: serialization.save({1, 2}, "unused.npz"), TypeError, r"save: obj is a set; tinycnn saves dicts"),
    ("save object array", lambda: serialization.save({"a": np.array([None])}, "unused.npz"), TypeError,
     r"save: obj\['a'\] is an array of dtype object"),
    ("save tuple key", lambda: serialization.save({(1, 2): 3}, "unused.npz"), TypeError,
     r"save: obj has a key \(1, 2\) of type tuple; keys must be str or int"),
    ("save path float", lambda: serialization.save({}, 3.5), TypeError, r"save: path must be a str or os.PathLike, got float"),
    ("save to a folder", lambda: serialization.save({}, os.getcwd()), ValueError, r"atomic_write: path must be a file name, got the folder"),
    ("load path None", lambda: serialization.load(None), TypeError, r"load: path must be a str or os.PathLike, got NoneType"),
    ("load a folder", lambda: serialization.load(os.getcwd()), ValueError, r"load: .* is not a readable tinycnn \.npz file"),
    ("load_state_dict ragged", lambda: nn.Linear(3, 4).load_state_dict({"weight": [[1], [1, 2]], "bias": np.ones(4)}),
     ValueError, r"load_state_dict into Linear failed.*\n  weight: expected a numeric array of shape \(3, 4\), got list"),
    ("load_state_dict int key", lambda: nn.Linear(3, 4).load_state_dict({0: 1, "weight": np.ones((3, 4)), "bias": np.ones(4)}),
     ValueError, r"load_state_dict into Linear failed.*\n  unexpected keys: 0"),
    ("load_state_dict transposed", lambda: nn.Linear(3, 4).load_state_dict({"weight": np.ones((4, 3)), "bias": np.ones(4)}),
     ValueError, r"weight: expected shape \(3, 4\), got \(4, 3\)"),
    ("load_state_dict complex", lambda: nn.Linear(3, 4).load_state_dict({"weight": np.ones((3, 4), complex),
                                                                          "bias": np.ones(4)}),
     ValueError, r"weight: expected a numeric array, got dtype complex128"),
    ("load_state_dict other width", lambda: nn.Linear(3, 4).load_state_dict(nn.Linear(3, 5).state_dict()), ValueError,
     r"weight: expected shape \(3, 4\), got \(3, 5\)\n  bias: expected shape \(4,\), got \(5,\)"),
    # ----------------------------------------------------------------- global
    ("set_num_threads 0", lambda: tinycnn.set_num_threads(0), ValueError, r"set_num_threads: n must be between 1 and"),
    ("workspace limit 0", lambda: conv_kernels.set_workspace_limit(0), ValueError, r"workspace limit must be >= 1 byte, got 0"),
]


def _read_only(a):
    a.setflags(write=False)
    return a


def test_the_table_is_large_and_distinct():
    assert len(BAD_INPUTS) >= 30
    assert len({name for name, *_ in BAD_INPUTS}) == len(BAD_INPUTS)


@pytest.mark.parametrize("call, error, message", [c[1:] for c in BAD_INPUTS], ids=[c[0] for c in BAD_INPUTS])
def test_bad_input_is_explained(call, error, message, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises((ValueError, TypeError)) as info:
        call()
    assert type(info.value) is error, f"{type(info.value).__name__}: {info.value}"
    assert re.search(message, str(info.value)), f"message: {info.value}"
    assert os.listdir(tmp_path) == []  # a refused save writes nothing, not even a temporary


# ------------------------------------------------------------------ fuzzing

# Weighted towards inputs that pass some checks, so the later checks and the kernels get exercised too.
DTYPES = st.sampled_from([np.float32] * 4 + [np.float64] * 2 + [np.float16, np.int32, np.int64, np.bool_, np.uint8])
SMALL = st.integers(-1, 4)
ARG = st.one_of(st.integers(1, 3), st.integers(1, 3), SMALL, st.tuples(SMALL, SMALL), st.just(None), st.just("same"),
                st.just("valid"), st.just(1.5), st.just("x"), st.tuples(SMALL, SMALL, SMALL, SMALL), st.just(True))
SHAPE4 = st.tuples(st.integers(0, 3), st.integers(0, 7), st.integers(0, 7), st.integers(0, 4))
SHAPE = st.one_of(SHAPE4, SHAPE4, SHAPE4, st.lists(st.integers(0, 5), min_size=0, max_size=5).map(tuple))


def _array(shape, dtype):
    return np.ones(shape, dtype=dtype)


def _only_value_or_type_error(call):
    """Run ``call``; anything but a result or a ValueError/TypeError fails (re-raised)."""
    try:
        return call()
    except (ValueError, TypeError) as err:
        assert type(err) in (ValueError, TypeError), f"a subclass leaked out: {type(err)!r}: {err}"
        assert str(err), "an empty message"
        return None


BAD_VALUES = st.one_of(SHAPE, DTYPES, ARG, st.sampled_from([np.nan, np.inf, -7, 0, 2**40, "3", b"3", [1, 2], object()]))


def _mutate(data, valid, n_max=2):
    """``valid`` (a dict of arguments) with up to ``n_max`` of them replaced by random garbage."""
    args = dict(valid)
    for key in data.draw(st.lists(st.sampled_from(sorted(valid)), max_size=n_max, unique=True), label="mutated"):
        args[key] = data.draw(BAD_VALUES, label=key)
    return args


def _as_input(shape, dtype):
    if not isinstance(shape, tuple) or not all(isinstance(n, int) and 0 <= n <= 16 for n in shape):
        return shape  # a garbage "shape" is passed on as the input itself
    if not isinstance(dtype, type) or not issubclass(dtype, np.generic):
        dtype = np.float32
    return np.ones(shape, dtype)


@given(data=st.data(), op=st.sampled_from(["conv2d", "depthwise_conv2d"]))
def test_fuzz_convolutions(data, op):
    n, h, w, c = data.draw(st.tuples(st.integers(1, 2), st.integers(1, 6), st.integers(1, 6), st.integers(1, 4)))
    k, o = data.draw(st.integers(1, 3)), data.draw(st.integers(1, 3))
    dtype = data.draw(st.sampled_from([np.float32, np.float64]))
    a = _mutate(data, dict(x_shape=(n, h, w, c), w_shape=(k, k, c, o), x_dtype=dtype, w_dtype=dtype,
                           stride=data.draw(st.integers(1, 2)), padding=data.draw(st.integers(0, 1)),
                           dilation=data.draw(st.integers(1, 2)), groups=1))
    x, wt = _as_input(a["x_shape"], a["x_dtype"]), _as_input(a["w_shape"], a["w_dtype"])
    if op == "conv2d":
        out = _only_value_or_type_error(lambda: F.conv2d(x, wt, stride=a["stride"], padding=a["padding"],
                                                         dilation=a["dilation"], groups=a["groups"]))
    else:
        out = _only_value_or_type_error(lambda: F.depthwise_conv2d(x, wt, stride=a["stride"], padding=a["padding"],
                                                                   dilation=a["dilation"]))
    if out is not None:
        assert out.ndim == 4 and out.shape[0] == x.shape[0] and out.dtype == x.dtype
        assert np.isfinite(out.data).all()


@given(data=st.data(), op=st.sampled_from(["max_pool2d", "avg_pool2d", "global_avg_pool2d"]))
def test_fuzz_pools(data, op):
    shape = data.draw(st.tuples(st.integers(1, 2), st.integers(1, 6), st.integers(1, 6), st.integers(1, 3)))
    k = data.draw(st.integers(1, 3))
    a = _mutate(data, dict(x_shape=shape, x_dtype=np.float32, kernel=k, stride=data.draw(st.integers(1, 3)),
                           padding=data.draw(st.integers(0, k // 2))))
    x = _as_input(a["x_shape"], a["x_dtype"])
    if op == "global_avg_pool2d":
        out = _only_value_or_type_error(lambda: F.global_avg_pool2d(x))
    else:
        out = _only_value_or_type_error(lambda: getattr(F, op)(x, a["kernel"], a["stride"], a["padding"]))
    if out is not None:
        assert out.shape[0] == x.shape[0] and out.shape[-1] == x.shape[-1]
        if op == "max_pool2d" or op == "global_avg_pool2d":
            np.testing.assert_array_equal(out.data, 1.0)


@given(data=st.data(), affine=st.booleans(), training=st.booleans())
def test_fuzz_batch_norm(data, affine, training):
    shape = data.draw(st.tuples(st.integers(1, 3), st.integers(1, 4), st.integers(1, 4), st.integers(1, 3)))
    a = _mutate(data, dict(x_shape=shape, x_dtype=np.float32, stats_shape=shape[3:], stats_dtype=np.float32,
                           eps=1e-5, momentum=0.1))
    x = _as_input(a["x_shape"], a["x_dtype"])
    mean, var = _as_input(a["stats_shape"], a["stats_dtype"]), _as_input(a["stats_shape"], a["stats_dtype"])
    wb = (_as_input(a["stats_shape"], a["stats_dtype"]), _as_input(a["stats_shape"], a["stats_dtype"])) if affine \
        else (None, None)
    out = _only_value_or_type_error(lambda: F.batch_norm(x, mean, var, *wb, training=training, momentum=a["momentum"],
                                                         eps=a["eps"]))
    if out is not None:
        assert out.shape == x.shape


@given(gy_shape=SHAPE, x_shape=st.lists(st.integers(-1, 5), min_size=3, max_size=5).map(tuple),
       kind=st.sampled_from(["conv_input", "conv_weight", "dw_input", "dw_weight", "max", "avg", "gap", "bn"]))
def test_fuzz_kernel_backward_wrappers(gy_shape, x_shape, kind):
    """The kernels' public backward wrappers refuse a gradient or a shape that
    does not fit the forward geometry (no out-of-bounds write)."""
    gy = np.ones(gy_shape, np.float32)
    w = np.ones((3, 3, 2, 2), np.float32)
    x = np.ones((2, 5, 5, 2), np.float32)
    calls = {
        "conv_input": lambda: conv_kernels.conv2d_backward_input(gy, w, x_shape, padding=1),
        "conv_weight": lambda: conv_kernels.conv2d_backward_weight(x, gy, (3, 3) + tuple(x_shape[2:4]), padding=1),
        "dw_input": lambda: dw_kernels.depthwise_conv2d_backward_input(gy, w, x_shape, padding=1),
        "dw_weight": lambda: dw_kernels.depthwise_conv2d_backward_weight(x, gy, x_shape, padding=1),
        "max": lambda: pool_kernels.max_pool2d_backward(gy, np.zeros(gy_shape, np.int64), x_shape),
        "avg": lambda: pool_kernels.avg_pool2d_backward(gy, x_shape, kernel_size=2),
        "gap": lambda: pool_kernels.global_avg_pool2d_backward(gy, x_shape),
        "bn": lambda: bn_kernels.batch_norm_backward(gy, x, np.zeros(2, np.float32), np.ones(2, np.float32), None),
    }
    out = _only_value_or_type_error(calls[kind])
    if out is not None and kind in ("conv_input", "dw_input", "avg", "gap"):
        assert out.shape == tuple(x_shape)


@given(argmax=st.lists(st.integers(-3, 40), min_size=1, max_size=8))
def test_fuzz_max_pool_backward_argmax(argmax):
    """An argmax pointing outside the input is refused, not written through."""
    gy = np.ones((1, 1, 1, len(argmax)), np.float32)
    am = np.array(argmax, np.int64).reshape(gy.shape)
    out = _only_value_or_type_error(lambda: pool_kernels.max_pool2d_backward(gy, am, (1, 2, 2, len(argmax))))
    if out is not None:
        assert all(0 <= a < 4 for a in argmax)


_LEAF = st.one_of(st.none(), st.booleans(), st.integers(-2**70, 2**70), st.floats(allow_nan=True), st.text(max_size=5),
                  st.binary(max_size=4), st.sets(st.integers(), max_size=2), st.complex_numbers(max_magnitude=2),
                  st.builds(lambda n, d: np.ones(n, d), st.integers(0, 3), DTYPES),
                  st.builds(lambda s: np.array(list(s)), st.text(min_size=1, max_size=3)))
_TREE = st.recursive(_LEAF, lambda inner: st.one_of(
    st.lists(inner, max_size=3), st.tuples(inner, inner),
    st.dictionaries(st.one_of(st.text(max_size=3), st.integers(-3, 3), st.booleans(), st.floats(0, 1)), inner,
                    max_size=3)), max_leaves=8)


def _same(a, b):
    if isinstance(a, np.ndarray):
        return isinstance(b, np.ndarray) and a.dtype == b.dtype and np.array_equal(a, b, equal_nan=a.dtype.kind in "fc")
    if isinstance(a, float) and a != a:
        return isinstance(b, float) and b != b
    if isinstance(a, (list, tuple)):
        return type(a) is type(b) and len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    if isinstance(a, dict):
        return list(a) == list(b) and all(_same(a[k], b[k]) for k in a)
    return type(a) is type(b) and a == b


@given(obj=_TREE)
def test_fuzz_save_round_trips_or_refuses(obj, tmp_path_factory):
    """Anything saves and loads back equal, or is refused with TypeError/ValueError
    before a file exists."""
    folder = tmp_path_factory.mktemp("fuzz")
    path = folder / "obj.npz"
    try:
        serialization.save(obj, path)
    except (TypeError, ValueError):
        assert os.listdir(folder) == []
        return
    assert _same(obj, serialization.load(path))


@given(data=st.binary(max_size=300), cut=st.integers(0, 10_000), flips=st.lists(st.integers(0, 10_000), max_size=3))
def test_fuzz_load_garbage(data, cut, flips, tmp_path_factory):
    """Random bytes, a random cut or random bit flips of a real file: load
    returns the saved object intact or raises ValueError naming the file."""
    folder = tmp_path_factory.mktemp("garbage")
    good = folder / "good.npz"
    serialization.save({"w": np.arange(6, dtype=np.float32).reshape(2, 3), "step": 3}, good)
    raw = bytearray(good.read_bytes())
    raw = raw[:cut % (len(raw) + 1)] if cut < 5000 else raw
    for f in flips:
        if raw:
            raw[f % len(raw)] ^= 1 << (f % 8)
    for content in (data, bytes(raw)):
        bad = folder / "bad.npz"
        bad.write_bytes(content)
        try:
            loaded = serialization.load(bad)
        except ValueError as err:
            assert "bad.npz" in str(err)
            continue
        assert loaded["step"] == 3 and np.array_equal(loaded["w"], np.arange(6, dtype=np.float32).reshape(2, 3))


# ------------------------------------------------------------ NaN and inf


MAX_POOL = lambda x: F.max_pool2d(x, 2)  # noqa: E731
NONFINITE_OPS = [
    ("conv2d", lambda x: F.conv2d(x, Tensor(np.ones((2, 2, 1, 1), np.float32)))),
    ("conv2d 1x1", lambda x: F.conv2d(x, Tensor(np.ones((1, 1, 1, 1), np.float32)))),
    ("depthwise_conv2d", lambda x: F.depthwise_conv2d(x, Tensor(np.ones((2, 2, 1, 1), np.float32)))),
    ("max_pool2d", MAX_POOL),
    ("avg_pool2d", lambda x: F.avg_pool2d(x, 2)),
    ("global_avg_pool2d", lambda x: F.global_avg_pool2d(x)),
    ("batch_norm", lambda x: F.batch_norm(x, None, None, training=True)),
    ("relu", F.relu),
]


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
@pytest.mark.parametrize("position", [0, 3])
@pytest.mark.parametrize("op", [o[1] for o in NONFINITE_OPS], ids=[o[0] for o in NONFINITE_OPS])
def test_non_finite_input_propagates(op, position, bad):
    """NaN/inf in the data is not an error: it reaches the output (max-pooling
    included: a NaN in a window wins, as in PyTorch), and the op does not crash."""
    x = np.array([1.0, 2.0, 3.0, 4.0], np.float32)
    x[position] = bad
    y = op(Tensor(x.reshape(1, 2, 2, 1))).data
    if op in (F.relu, MAX_POOL) and bad == -np.inf:  # max(-inf, finite) is finite
        assert np.isfinite(y).all()
    else:
        assert not np.isfinite(y).all(), y


@pytest.mark.parametrize("op, expected", [
    (lambda x: F.conv2d(x, Tensor(np.ones((2, 2, 1, 1), np.float32))), "Conv2d"),
    (lambda x: F.max_pool2d(x, 2), "MaxPool2d"),
    (lambda x: F.batch_norm(x, None, None, training=True), "BatchNormTrain"),
], ids=["conv2d", "max_pool2d", "batch_norm"])
def test_anomaly_mode_names_the_op_fed_nan(op, expected):
    x = np.ones((1, 2, 2, 1), np.float32)
    x[0, 0, 0, 0] = np.nan
    op(Tensor(x))  # outside anomaly mode: no error
    with detect_anomaly():
        with pytest.raises(AnomalyError, match=f"{expected} produced a non-finite value in forward"):
            op(Tensor(x))


def test_nan_loss_stops_training_naming_the_step(tmp_path, monkeypatch):
    """A NaN in the input batch makes the loss NaN: the trainer stops at that
    step with a TrainingError, and with anomaly mode names the first op."""
    from tinycnn import train
    from tinycnn.data import transforms

    real = transforms.Normalize.__call__

    def poisoned(self, x, rng=None):
        x = real(self, x, rng)
        x[0, 0, 0, 0] = np.nan
        return x

    monkeypatch.setattr(transforms.Normalize, "__call__", poisoned)
    settings = dict(model="resnet20", model_kwargs={}, dataset="digits", train_subset=32, test_subset=16, batch_size=16,
                    epochs=1, progress=False, plot=False, log=lambda msg: None)
    with pytest.raises(train.TrainingError, match=r"the training loss became nan at step 1 \(epoch 1, batch 1\)"):
        train.fit(tmp_path / "plain", **settings)
    with pytest.raises(AnomalyError, match=r"Conv2d produced a non-finite value in forward"):
        train.fit(tmp_path / "anomaly", anomaly=True, **settings)

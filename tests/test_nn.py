"""Modules and layers: registration, traversal, modes, state dicts, every
layer against its functional form, initialisation, BatchNorm2d and Dropout
behaviour, and (when PyTorch is installed) layers against torch.nn."""

import math
import re

import numpy as np
import pytest

import tinycnn
import tinycnn.functional as F
from tinycnn import Tensor, nn
from tinycnn.nn import Parameter, init

RNG = np.random.default_rng(0)


def randn(*shape, dtype=np.float32):
    return RNG.standard_normal(shape).astype(dtype)


class Block(nn.Module):
    """Own parameter and buffer, two child modules and a plain attribute."""

    def __init__(self):
        super().__init__()
        self.scale = Parameter(np.ones(4, np.float32))
        self.register_buffer("steps", np.zeros((), np.int64))
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        self.bn = nn.BatchNorm2d(4)
        self.note = "not state"

    def forward(self, x):
        return self.bn(self.conv(x)) * self.scale


BLOCK_PARAMS = ["scale", "conv.weight", "conv.bias", "bn.weight", "bn.bias"]
BLOCK_STATE = ["scale", "steps", "conv.weight", "conv.bias", "bn.weight", "bn.bias",
               "bn.running_mean", "bn.running_var", "bn.num_batches_tracked"]


# ------------------------------------------------------------ registration


def test_attributes_register_parameters_buffers_and_children():
    m = Block()
    assert [name for name, _ in m.named_parameters()] == BLOCK_PARAMS
    assert [p for p in m.parameters()] == [m.scale, m.conv.weight, m.conv.bias, m.bn.weight, m.bn.bias]
    assert all(isinstance(p, Parameter) and p.requires_grad for p in m.parameters())
    assert [name for name, _ in m.named_buffers()] == ["steps", "bn.running_mean", "bn.running_var",
                                                       "bn.num_batches_tracked"]
    assert len(list(m.buffers())) == 4
    assert list(m.children()) == [m.conv, m.bn]
    assert list(m.modules()) == [m, m.conv, m.bn]
    assert [name for name, _ in m.named_modules()] == ["", "conv", "bn"]
    assert m.note == "not state" and "note" not in m.state_dict()
    assert m.num_parameters() == 4 + 3 * 3 * 3 * 4 + 4 + 4 + 4


def test_nested_names_are_dotted():
    net = nn.Sequential(nn.Conv2d(3, 4, 3), nn.Sequential(nn.ReLU(), nn.BatchNorm2d(4)))
    assert [n for n, _ in net.named_parameters()] == ["0.weight", "0.bias", "1.1.weight", "1.1.bias"]
    assert [n for n, _ in net.named_modules()] == ["", "0", "1", "1.0", "1.1"]
    assert [n for n, _ in net.named_parameters(prefix="net")] == [
        "net.0.weight", "net.0.bias", "net.1.1.weight", "net.1.1.bias"]


def test_shared_parameters_and_modules_are_listed_once():
    m = nn.Module()
    m.a = nn.Linear(2, 2)
    m.b = nn.Linear(2, 2)
    m.b.weight = m.a.weight  # tied weights
    m.c = m.a  # the same module under a second name
    assert [n for n, _ in m.named_parameters()] == ["a.weight", "a.bias", "b.bias"]
    assert len(list(m.parameters())) == 3
    assert list(m.modules()) == [m, m.a, m.b]
    assert m.num_parameters() == 4 + 2 + 2


def test_reassigning_and_deleting_registered_attributes():
    m = Block()
    with pytest.raises(TypeError, match=r"cannot assign ndarray to parameter 'scale' \(expected a Parameter or None\)"):
        m.scale = np.ones(4)
    with pytest.raises(TypeError, match="cannot assign str to submodule 'conv'"):
        m.conv = "conv"
    m.conv = nn.Identity()  # a module replaces a module
    assert "conv.weight" not in dict(m.named_parameters())
    m.scale = None  # None keeps the slot, holds nothing
    assert "scale" not in dict(m.named_parameters())
    m.steps = np.ones((), np.int64)  # a buffer takes a new array
    assert m.state_dict()["steps"] == 1
    del m.bn
    assert [n for n, _ in m.named_modules()] == ["", "conv"]
    with pytest.raises(AttributeError, match="'Block' has no attribute 'bn'"):
        m.bn


def test_assigning_before_super_init_is_explained():
    class Broken(nn.Module):
        def __init__(self):
            self.w = Parameter(np.ones(2))

    with pytest.raises(AttributeError, match=r"Broken: call super\(\).__init__\(\)"):
        Broken()


# ------------------------------------------------------- modes, grads, apply


def test_train_and_eval_propagate():
    net = nn.Sequential(nn.Conv2d(3, 4, 3), nn.Sequential(nn.BatchNorm2d(4), nn.Dropout(0.5)))
    assert all(m.training for m in net.modules())
    assert net.eval() is net
    assert not any(m.training for m in net.modules())
    assert net.train() is net
    assert all(m.training for m in net.modules())
    net[1].eval()  # a subtree alone
    assert net.training and net[0].training and not net[1].training and not net[1][1].training


def test_zero_grad_clears_every_gradient():
    m = Block()
    m(Tensor(randn(2, 5, 5, 3))).sum().backward()
    assert all(p.grad is not None and p.grad.shape == p.shape for p in m.parameters())
    m.zero_grad()
    assert all(p.grad is None for p in m.parameters())


def test_apply_visits_children_before_parents():
    net = nn.Sequential(nn.Conv2d(3, 4, 3), nn.Sequential(nn.ReLU(), nn.Linear(2, 2)))
    seen = []
    assert net.apply(lambda m: seen.append(type(m).__name__)) is net
    assert seen.index("Linear") < seen.index("Sequential") and seen[-1] == "Sequential" and len(seen) == 5
    net.apply(lambda m: init.zeros_(m.weight) if isinstance(m, nn.Conv2d) else None)
    assert not net[0].weight.data.any()


def test_to_float64_converts_parameters_and_float_buffers():
    m = Block()
    m(Tensor(randn(2, 5, 5, 3))).sum().backward()
    before = m.state_dict()
    assert m.to(np.float64) is m
    for name, p in m.named_parameters():
        assert p.dtype == np.float64 and p.grad.dtype == np.float64, name
        np.testing.assert_array_equal(p.data, before[name])
    assert m.bn.running_mean.dtype == np.float64
    assert m.bn.num_batches_tracked.dtype == np.int64 and m.steps.dtype == np.int64
    assert m(Tensor(randn(2, 5, 5, 3, dtype=np.float64))).dtype == np.float64
    with pytest.raises(TypeError, match="to: dtype must be float32 or float64, got int32"):
        m.to(np.int32)


def test_repr_shows_nested_children():
    net = nn.Sequential(nn.Conv2d(3, 8, 3, stride=2, padding=1, bias=False),
                        nn.Sequential(nn.BatchNorm2d(8), nn.ReLU()), nn.Linear(8, 2))
    text = repr(net)
    assert text.splitlines()[0] == "Sequential("
    assert "  (0): Conv2d(3, 8, kernel_size=(3, 3), stride=(2, 2), padding=(1, 1), bias=False)" in text
    assert "  (1): Sequential(\n    (0): BatchNorm2d(8, eps=1e-05, momentum=0.1)\n    (1): ReLU()\n  )" in text
    assert "  (2): Linear(in_features=8, out_features=2, bias=True)" in text
    assert text.endswith("\n)")


# -------------------------------------------------------------- state dict


def test_state_dict_keys_values_and_copies():
    m = Block()
    state = m.state_dict()
    assert list(state) == BLOCK_STATE
    np.testing.assert_array_equal(state["conv.weight"], m.conv.weight.data)
    assert state["bn.num_batches_tracked"].dtype == np.int64
    state["conv.weight"][...] = 7.0  # the dict holds copies ...
    assert not (m.conv.weight.data == 7.0).any()
    m.bn.running_mean[...] = 3.0  # ... and later changes to the module do not reach it
    assert not (state["bn.running_mean"] == 3.0).any()


def test_load_state_dict_round_trip_copies_values():
    src, dst = Block(), Block()
    src.bn.running_var[...] = 2.5
    state = src.state_dict()
    assert dst.load_state_dict(state) == ([], [])
    for key, value in dst.state_dict().items():
        np.testing.assert_array_equal(value, state[key], err_msg=key)
    state["conv.weight"][...] = 0.0  # the module does not share the loaded arrays
    assert dst.conv.weight.data.any()
    x = Tensor(randn(2, 5, 5, 3))
    np.testing.assert_array_equal(src.eval()(x).data, dst.eval()(x).data)


def test_load_state_dict_casts_to_the_module_dtype():
    m = nn.Linear(2, 3)
    m.load_state_dict({"weight": np.ones((2, 3)), "bias": np.arange(3)})
    assert m.weight.dtype == np.float32 and m.bias.dtype == np.float32
    np.testing.assert_array_equal(m.bias.data, [0, 1, 2])


def _assert_unchanged(m, before):
    after = m.state_dict()
    assert list(after) == list(before)
    for key in before:
        np.testing.assert_array_equal(after[key], before[key], err_msg=key)


def test_strict_load_lists_missing_and_unexpected_keys_and_loads_nothing():
    m = Block()
    before = m.state_dict()
    state = {k: np.zeros_like(v) for k, v in before.items()}  # valid values that would show a partial load
    del state["bn.running_var"], state["scale"]
    state["bn.extra"] = np.zeros(4)
    with pytest.raises(ValueError) as err:
        m.load_state_dict(state)
    message = str(err.value)
    assert "load_state_dict into Block failed; nothing was loaded" in message
    assert re.search(r"missing keys: scale, bn\.running_var\b", message)
    assert "unexpected keys: bn.extra" in message
    _assert_unchanged(m, before)


def test_shape_mismatch_is_an_error_even_when_not_strict():
    m = Block()
    before = m.state_dict()
    state = {k: np.zeros_like(v) for k, v in before.items()}
    state["conv.weight"] = np.zeros((3, 3, 4, 3))  # HWIO read as OIHW-ish
    state["bn.bias"] = np.zeros(5)
    for strict in (True, False):
        with pytest.raises(ValueError) as err:
            m.load_state_dict(state, strict=strict)
        assert r"conv.weight: expected shape (3, 3, 3, 4), got (3, 3, 4, 3)" in str(err.value)
        assert r"bn.bias: expected shape (4,), got (5,)" in str(err.value)
        _assert_unchanged(m, before)


def test_non_strict_load_returns_the_key_lists_and_loads_the_rest():
    m = Block()
    state = {"conv.bias": np.full(4, 2.0), "bn.weight": np.full(4, 3.0), "head.weight": np.zeros(2)}
    result = m.load_state_dict(state, strict=False)
    assert result.missing_keys == [k for k in BLOCK_STATE if k not in ("conv.bias", "bn.weight")]
    assert result.unexpected_keys == ["head.weight"]
    np.testing.assert_array_equal(m.conv.bias.data, 2.0)
    np.testing.assert_array_equal(m.bn.weight.data, 3.0)


def test_load_state_dict_refuses_non_numeric_values():
    m = nn.Linear(2, 2)
    with pytest.raises(ValueError, match="weight: expected a numeric array, got dtype <U1"):
        m.load_state_dict({"weight": np.array([["a", "b"], ["c", "d"]]), "bias": np.zeros(2)})
    with pytest.raises(TypeError, match="expected a mapping of names to arrays, got list"):
        m.load_state_dict([("weight", np.zeros((2, 2)))])


# ------------------------------------------------------------------ layers

x4 = randn(2, 6, 6, 4)
LAYERS = [  # (layer, input, expected output shape, functional form)
    (nn.Conv2d(4, 6, 3), x4, (2, 4, 4, 6), lambda m, x: F.conv2d(x, m.weight, m.bias)),
    (nn.Conv2d(4, 6, (3, 1), stride=2, padding=(1, 0), dilation=(1, 2), groups=2, bias=False), x4, (2, 3, 3, 6),
     lambda m, x: F.conv2d(x, m.weight, None, 2, (1, 0), (1, 2), 2)),
    (nn.Conv2d(4, 2, 2, stride=2, padding="same"), randn(1, 5, 5, 4), (1, 3, 3, 2),
     lambda m, x: F.conv2d(x, m.weight, m.bias, 2, "same")),
    (nn.DepthwiseConv2d(4, 3, padding=1, depth_multiplier=2), x4, (2, 6, 6, 8),
     lambda m, x: F.depthwise_conv2d(x, m.weight, None, 1, 1)),
    (nn.DepthwiseConv2d(4, 3, stride=2, bias=True), x4, (2, 2, 2, 4),
     lambda m, x: F.depthwise_conv2d(x, m.weight, m.bias, 2)),
    (nn.SeparableConv2d(4, 5, 3), x4, (2, 6, 6, 5),
     lambda m, x: F.conv2d(F.depthwise_conv2d(x, m.conv1.weight, None, 1, 1), m.pointwise.weight)),
    (nn.BatchNorm2d(4), x4, (2, 6, 6, 4),
     lambda m, x: F.batch_norm(x, None, None, m.weight, m.bias, training=True)),
    (nn.Linear(4, 3), randn(5, 4), (5, 3), lambda m, x: F.linear(x, m.weight, m.bias)),
    (nn.Linear(4, 3, bias=False), randn(2, 5, 4), (2, 5, 3), lambda m, x: F.linear(x, m.weight)),
    (nn.ReLU(), x4, x4.shape, lambda m, x: F.relu(x)),
    (nn.Sigmoid(), x4, x4.shape, lambda m, x: F.sigmoid(x)),
    (nn.Dropout(0.3).eval(), x4, x4.shape, lambda m, x: x),
    (nn.MaxPool2d(2), x4, (2, 3, 3, 4), lambda m, x: F.max_pool2d(x, 2)),
    (nn.MaxPool2d(3, stride=2, padding=1), x4, (2, 3, 3, 4), lambda m, x: F.max_pool2d(x, 3, 2, 1)),
    (nn.AvgPool2d(2), x4, (2, 3, 3, 4), lambda m, x: F.avg_pool2d(x, 2)),
    (nn.AvgPool2d(3, 1, 1, count_include_pad=False), x4, (2, 6, 6, 4),
     lambda m, x: F.avg_pool2d(x, 3, 1, 1, False)),
    (nn.GlobalAvgPool2d(), x4, (2, 4), lambda m, x: F.global_avg_pool2d(x)),
    (nn.Flatten(), x4, (2, 144), lambda m, x: x.reshape(2, 144)),
    (nn.Identity(), x4, x4.shape, lambda m, x: x),
    (nn.Sequential(nn.Conv2d(4, 2, 1), nn.ReLU(), nn.GlobalAvgPool2d()), x4, (2, 2),
     lambda m, x: F.global_avg_pool2d(F.relu(F.conv2d(x, m[0].weight, m[0].bias)))),
]


@pytest.mark.parametrize("layer, x, shape, functional", LAYERS, ids=[type(c[0]).__name__ for c in LAYERS])
def test_layer_output_shape_and_functional_form(layer, x, shape, functional):
    for p in layer.parameters():  # non-trivial biases and BN affine parameters
        p.data[...] = randn(*p.shape)
    y = layer(Tensor(x))
    assert isinstance(y, Tensor) and y.shape == shape and y.dtype == np.float32
    expected = functional(layer, Tensor(x))
    np.testing.assert_allclose(y.data, expected.data, rtol=1e-6, atol=1e-6)


def test_sequential_indexing_slicing_and_append():
    a, b, c = nn.ReLU(), nn.Identity(), nn.Sigmoid()
    seq = nn.Sequential(a, b)
    assert len(seq) == 2 and seq[0] is a and seq[-1] is b and list(seq) == [a, b]
    assert seq.append(c) is seq and seq[2] is c
    assert list(seq[1:]) == [b, c] and isinstance(seq[1:], nn.Sequential)
    named = nn.Sequential({"act": a, "out": c})
    assert [n for n, _ in named.named_children()] == ["act", "out"] and named.act is a
    with pytest.raises(TypeError, match="Sequential: item 1 must be a Module, got function"):
        nn.Sequential(a, lambda x: x)


def test_conv2d_he_init_std():
    tinycnn.manual_seed(0)
    conv = nn.Conv2d(64, 128, 3)  # fan_in = 3*3*64 = 576
    w = conv.weight.data
    assert w.shape == (3, 3, 64, 128) and w.dtype == np.float32
    assert abs(w.std() / math.sqrt(2 / 576) - 1) < 0.02
    assert abs(w.mean()) < 0.002
    assert not conv.bias.data.any()
    grouped = nn.Conv2d(64, 128, 3, groups=4)  # fan_in = 3*3*16
    assert abs(grouped.weight.data.std() / math.sqrt(2 / 144) - 1) < 0.03
    depthwise = nn.DepthwiseConv2d(512, 3, depth_multiplier=2)  # fan_in = 3*3 per filter
    assert abs(depthwise.weight.data.std() / math.sqrt(2 / 9) - 1) < 0.03


def test_linear_init_is_uniform_within_one_over_sqrt_fan_in():
    lin = nn.Linear(400, 300)
    bound = 1 / math.sqrt(400)
    assert np.abs(lin.weight.data).max() <= bound
    assert abs(lin.weight.data.std() / (bound / math.sqrt(3)) - 1) < 0.02
    assert np.abs(lin.bias.data).max() <= bound and lin.bias.data.std() > bound / 3


def test_initialisation_follows_the_seed():
    tinycnn.manual_seed(3)
    a = nn.Conv2d(3, 4, 3).weight.data.copy()
    tinycnn.manual_seed(3)
    np.testing.assert_array_equal(nn.Conv2d(3, 4, 3).weight.data, a)
    assert not np.array_equal(nn.Conv2d(3, 4, 3).weight.data, a)


# -------------------------------------------------------------- BatchNorm2d


def test_batchnorm2d_train_uses_batch_statistics_and_updates_running_stats():
    bn = nn.BatchNorm2d(3, momentum=0.2, dtype=np.float64)
    x = RNG.normal(2.0, 3.0, (4, 5, 5, 3))
    mean, var = x.mean(axis=(0, 1, 2)), x.var(axis=(0, 1, 2))
    y = bn(Tensor(x)).data
    np.testing.assert_allclose(y, (x - mean) / np.sqrt(var + 1e-5), rtol=1e-10, atol=1e-10)
    n = 4 * 5 * 5
    np.testing.assert_allclose(bn.running_mean, 0.2 * mean, rtol=1e-12)
    np.testing.assert_allclose(bn.running_var, 0.8 + 0.2 * var * n / (n - 1), rtol=1e-12)
    assert bn.num_batches_tracked == 1
    bn(Tensor(x))
    np.testing.assert_allclose(bn.running_mean, 0.8 * 0.2 * mean + 0.2 * mean, rtol=1e-12)
    assert bn.num_batches_tracked == 2


def test_batchnorm2d_eval_uses_running_stats_and_leaves_them_alone():
    bn = nn.BatchNorm2d(3, dtype=np.float64)
    bn.running_mean[...] = [1.0, -2.0, 0.5]
    bn.running_var[...] = [4.0, 0.25, 1.0]
    bn.weight.data[...] = [2.0, 1.0, -1.0]
    bn.bias.data[...] = [0.0, 1.0, 3.0]
    bn.eval()
    x = RNG.normal(size=(2, 3, 3, 3))
    y = bn(Tensor(x)).data
    expected = (x - bn.running_mean) / np.sqrt(bn.running_var + 1e-5) * bn.weight.data + bn.bias.data
    np.testing.assert_allclose(y, expected, rtol=1e-12)
    np.testing.assert_array_equal(bn.running_mean, [1.0, -2.0, 0.5])
    np.testing.assert_array_equal(bn.running_var, [4.0, 0.25, 1.0])
    assert bn.num_batches_tracked == 0
    # eval is deterministic per sample: a batch of one gives the same rows
    np.testing.assert_allclose(bn(Tensor(x[:1])).data, y[:1], rtol=1e-12)


def test_batchnorm2d_without_running_stats_or_affine():
    bn = nn.BatchNorm2d(2, affine=False, track_running_stats=False, dtype=np.float64).eval()
    assert list(bn.parameters()) == [] and bn.state_dict() == {}
    x = RNG.normal(1.0, 2.0, (3, 2, 2, 2))
    y = bn(Tensor(x)).data  # no running stats: batch statistics even in eval mode
    np.testing.assert_allclose(y.mean(axis=(0, 1, 2)), 0.0, atol=1e-12)
    np.testing.assert_allclose(y.var(axis=(0, 1, 2)), 1.0, rtol=1e-4)


def test_batchnorm2d_train_needs_more_than_one_value_per_channel():
    with pytest.raises(ValueError, match=r"batch_norm: expected more than 1 value per channel.*\(1, 1, 1, 3\)"):
        nn.BatchNorm2d(3)(Tensor(randn(1, 1, 1, 3)))


# ------------------------------------------------------------------ Dropout


def test_dropout_eval_is_identity():
    x = Tensor(randn(4, 5))
    assert nn.Dropout(0.5).eval()(x) is x
    assert F.dropout(x, 0.5, training=False) is x


def test_dropout_train_zeros_about_p_and_scales_the_rest():
    tinycnn.manual_seed(0)
    x = RNG.uniform(1.0, 2.0, (100, 1000)).astype(np.float32)  # never 0
    for p in (0.1, 0.5, 0.8):
        y = nn.Dropout(p)(Tensor(x)).data
        dropped = y == 0
        assert abs(dropped.mean() - p) < 0.01, p  # 7 standard deviations
        np.testing.assert_allclose(y[~dropped], x[~dropped] / (1 - p), rtol=1e-6)
        assert y.dtype == np.float32


def test_dropout_gradient_is_the_mask():
    tinycnn.manual_seed(1)
    x = Tensor(RNG.uniform(1.0, 2.0, (50, 40)), requires_grad=True)
    y = F.dropout(x, 0.25)
    gy = RNG.normal(size=y.shape)
    y.backward(gy)
    mask = y.data / x.data
    assert set(np.unique(np.round(mask, 12))) == {0.0, round(1 / 0.75, 12)}
    np.testing.assert_allclose(x.grad, gy * mask, rtol=1e-12)


def test_dropout_edge_probabilities():
    x = Tensor(randn(3, 4), requires_grad=True)
    assert nn.Dropout(0.0)(x) is x
    y = nn.Dropout(1.0)(x)
    assert not y.data.any()
    y.sum().backward()
    assert not x.grad.any()
    for p in (-0.1, 1.5, float("nan")):
        with pytest.raises(ValueError, match="Dropout: p must be a probability in"):
            nn.Dropout(p)
    for p in (True, "0.5", None):
        with pytest.raises(TypeError, match="Dropout: p must be a probability in"):
            nn.Dropout(p)


def test_dropout_mask_follows_the_seed():
    x = Tensor(np.ones((20, 30), np.float32))
    tinycnn.manual_seed(42)
    a = nn.Dropout(0.5)(x).data
    tinycnn.manual_seed(42)
    b = nn.Dropout(0.5)(x).data
    c = nn.Dropout(0.5)(x).data
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(b, c)


# ------------------------------------------------- against torch.nn (optional)

TOL = {np.float64: 1e-6, np.float32: 1e-4}
DTYPES = [np.float64, np.float32]


@pytest.fixture(scope="module")
def torch():
    return pytest.importorskip("torch")


def _nchw(a):
    return np.ascontiguousarray(a.transpose(0, 3, 1, 2))


def _nhwc(a):
    return a.transpose(0, 2, 3, 1)


def _close(actual, expected, dtype, what):
    rtol = TOL[dtype]
    np.testing.assert_allclose(actual, expected, rtol=rtol, atol=rtol * max(1.0, np.abs(expected).max()),
                               err_msg=what)


def _compare(torch, ours, theirs, x, dtype, pairs=(), image=True):
    """Forward and backward (same upstream gradient) through both layers;
    ``pairs``: (our parameter, their parameter, their->our layout)."""
    x = x.astype(dtype)
    xt = Tensor(x.copy(), requires_grad=True)
    y = ours(xt)
    gy = RNG.standard_normal(y.shape).astype(dtype)
    y.backward(gy)
    to_t, from_t = (_nchw, _nhwc) if image else (np.ascontiguousarray, lambda a: a)
    xtt = torch.tensor(to_t(x), requires_grad=True)
    yt = theirs(xtt)
    yt.backward(torch.tensor(to_t(gy)))
    assert y.dtype == dtype
    _close(y.data, from_t(yt.detach().numpy()), dtype, "output")
    _close(xt.grad, from_t(xtt.grad.numpy()), dtype, "input gradient")
    for name, (mine, theirs_p, layout) in pairs:
        _close(mine.grad, layout(theirs_p.grad.numpy()), dtype, f"{name} gradient")


def _hwio(w):  # OIHW -> HWIO
    return w.transpose(2, 3, 1, 0)


CONV_CASES = [  # in, out, kernel, stride, padding, dilation, groups, bias
    (3, 4, 3, 1, 0, 1, 1, True),
    (4, 6, (3, 2), (2, 1), (1, 0), 1, 2, True),
    (3, 5, 3, 2, 1, 2, 1, False),
    (6, 6, 1, 1, 0, 1, 3, True),
    (2, 3, 4, 1, "same", 1, 1, True),  # even kernel: the extra padding goes bottom/right
]


@pytest.mark.filterwarnings("ignore:Using padding='same' with even kernel")
@pytest.mark.parametrize("dtype", DTYPES, ids=["float64", "float32"])
@pytest.mark.parametrize("case", CONV_CASES)
def test_conv2d_matches_torch(torch, case, dtype):
    cin, cout, k, stride, padding, dilation, groups, bias = case
    ours = nn.Conv2d(cin, cout, k, stride, padding, dilation, groups, bias, dtype=dtype)
    theirs = torch.nn.Conv2d(cin, cout, k, stride, padding, dilation, groups, bias,
                             dtype=getattr(torch, np.dtype(dtype).name))
    with torch.no_grad():
        theirs.weight.copy_(torch.tensor(ours.weight.data.transpose(3, 2, 0, 1).copy()))
        if bias:
            ours.bias.data[...] = RNG.standard_normal(cout)
            theirs.bias.copy_(torch.tensor(ours.bias.data))
    pairs = [("weight", (ours.weight, theirs.weight, _hwio))]
    if bias:
        pairs.append(("bias", (ours.bias, theirs.bias, lambda a: a)))
    _compare(torch, ours, theirs, RNG.standard_normal((2, 7, 6, cin)), dtype, pairs)


@pytest.mark.parametrize("dtype", DTYPES, ids=["float64", "float32"])
@pytest.mark.parametrize("case", [(3, 3, 1, 1, 1, 1, False), (4, 3, 2, 1, 2, 2, True), (2, (3, 5), 3, (1, 2), 1, 1, True)])
def test_depthwise_conv2d_matches_torch(torch, case, dtype):
    C, k, M, stride, padding, dilation, bias = case
    ours = nn.DepthwiseConv2d(C, k, stride, padding, dilation, depth_multiplier=M, bias=bias, dtype=dtype)
    theirs = torch.nn.Conv2d(C, C * M, k, stride, padding, dilation, groups=C, bias=bias,
                             dtype=getattr(torch, np.dtype(dtype).name))
    KH, KW = ours.kernel_size

    def from_torch(w):  # (C*M, 1, KH, KW) -> (KH, KW, C, M)
        return w.reshape(C, M, KH, KW).transpose(2, 3, 0, 1)

    with torch.no_grad():  # (KH, KW, C, M) -> (C*M, 1, KH, KW)
        theirs.weight.copy_(torch.tensor(ours.weight.data.transpose(2, 3, 0, 1).reshape(C * M, 1, KH, KW).copy()))
        if bias:
            ours.bias.data[...] = RNG.standard_normal(C * M)
            theirs.bias.copy_(torch.tensor(ours.bias.data))
    np.testing.assert_array_equal(from_torch(theirs.weight.detach().numpy()), ours.weight.data)
    pairs = [("weight", (ours.weight, theirs.weight, from_torch))]
    if bias:
        pairs.append(("bias", (ours.bias, theirs.bias, lambda a: a)))
    _compare(torch, ours, theirs, RNG.standard_normal((2, 8, 7, C)), dtype, pairs)


@pytest.mark.parametrize("dtype", DTYPES, ids=["float64", "float32"])
def test_batchnorm2d_matches_torch_in_train_and_eval(torch, dtype):
    ours = nn.BatchNorm2d(3, momentum=0.3, dtype=dtype)
    theirs = torch.nn.BatchNorm2d(3, momentum=0.3, dtype=getattr(torch, np.dtype(dtype).name))
    with torch.no_grad():
        ours.weight.data[...] = RNG.uniform(0.5, 2.0, 3)
        ours.bias.data[...] = RNG.standard_normal(3)
        theirs.weight.copy_(torch.tensor(ours.weight.data))
        theirs.bias.copy_(torch.tensor(ours.bias.data))
    pairs = [("weight", (ours.weight, theirs.weight, lambda a: a)), ("bias", (ours.bias, theirs.bias, lambda a: a))]
    for step in range(3):
        ours.zero_grad(), theirs.zero_grad()
        _compare(torch, ours, theirs, RNG.normal(step, 2.0, (4, 5, 3, 3)), dtype, pairs)
        _close(ours.running_mean, theirs.running_mean.numpy(), dtype, "running_mean")
        _close(ours.running_var, theirs.running_var.numpy(), dtype, "running_var")
        assert ours.num_batches_tracked == theirs.num_batches_tracked.item() == step + 1
    ours.eval(), theirs.eval()
    ours.zero_grad(), theirs.zero_grad()
    _compare(torch, ours, theirs, RNG.normal(1.0, 2.0, (2, 4, 4, 3)), dtype, pairs)
    assert ours.num_batches_tracked == 3


@pytest.mark.parametrize("dtype", DTYPES, ids=["float64", "float32"])
@pytest.mark.parametrize("shape, bias", [((5, 4), True), ((2, 3, 4), False), ((2, 3, 4), True)])
def test_linear_matches_torch(torch, shape, bias, dtype):
    ours = nn.Linear(4, 3, bias=bias, dtype=dtype)
    theirs = torch.nn.Linear(4, 3, bias=bias, dtype=getattr(torch, np.dtype(dtype).name))
    with torch.no_grad():
        theirs.weight.copy_(torch.tensor(ours.weight.data.T.copy()))
        if bias:
            theirs.bias.copy_(torch.tensor(ours.bias.data))
    pairs = [("weight", (ours.weight, theirs.weight, lambda w: w.T))]
    if bias:
        pairs.append(("bias", (ours.bias, theirs.bias, lambda a: a)))
    _compare(torch, ours, theirs, RNG.standard_normal(shape), dtype, pairs, image=False)


POOL_CASES = [  # kernel, stride, padding
    (2, None, 0), (3, 2, 1), ((3, 2), (1, 2), (1, 0)), (3, 1, 0),
]


@pytest.mark.parametrize("dtype", DTYPES, ids=["float64", "float32"])
@pytest.mark.parametrize("case", POOL_CASES)
def test_max_pool2d_matches_torch(torch, case, dtype):
    k, s, p = case
    _compare(torch, nn.MaxPool2d(k, s, p), torch.nn.MaxPool2d(k, s, p), RNG.standard_normal((2, 7, 6, 3)), dtype)


@pytest.mark.parametrize("dtype", DTYPES, ids=["float64", "float32"])
@pytest.mark.parametrize("count_include_pad", [True, False])
@pytest.mark.parametrize("case", POOL_CASES)
def test_avg_pool2d_matches_torch(torch, case, count_include_pad, dtype):
    k, s, p = case
    _compare(torch, nn.AvgPool2d(k, s, p, count_include_pad), torch.nn.AvgPool2d(k, s, p, count_include_pad=count_include_pad),
             RNG.standard_normal((2, 7, 6, 3)), dtype)

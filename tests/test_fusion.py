"""Inference fusion (tinycnn.nn.fusion): BatchNorm folded into the convolution
before it, bias + ReLU in one Numba pass.  The fused path must give the
unfused outputs, run only when no gradient is needed, and never serve stale
folded weights."""

import numpy as np
import pytest

import tinycnn
from tinycnn import nn
from tinycnn.kernels import fused as fused_kernels
from tinycnn.kernels import reference
from tinycnn.models import create_model
from tinycnn.nn import fusion
from tinycnn.optim import SGD

MODELS = [("resnet18", {"stem": "cifar"}), ("se_resnet18", {"stem": "cifar"}), ("xception_small", {})]


@pytest.fixture
def calls(monkeypatch):
    """Count fused convolutions and weight folds."""
    counts = {"fused": 0, "fold": 0}
    fused_fn, fold_fn = fusion.conv2d_bias_act, fusion.fold

    def counting_fused(*args, **kwargs):
        counts["fused"] += 1
        return fused_fn(*args, **kwargs)

    def counting_fold(*args, **kwargs):
        counts["fold"] += 1
        return fold_fn(*args, **kwargs)

    monkeypatch.setattr(fusion, "conv2d_bias_act", counting_fused)
    monkeypatch.setattr(fusion, "fold", counting_fold)
    return counts


def _randomise_bn(model, rng):
    """Non-trivial BatchNorm statistics and affine parameters, so folding matters."""
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            C = m.num_features
            m.running_mean[...] = rng.normal(0, 0.5, C)
            m.running_var[...] = rng.uniform(0.5, 2.0, C)
            m.weight.data[...] = rng.uniform(0.5, 1.5, C)
            m.bias.data[...] = rng.normal(0, 0.2, C)


def _outputs(model, x):
    with tinycnn.no_grad():
        fused = model(x).data
        with fusion.fusion_disabled():
            unfused = model(x).data
    return fused, unfused


def _small(dtype=np.float32):
    return nn.Sequential(nn.Conv2d(3, 8, 3, padding=1, bias=False, dtype=dtype), nn.BatchNorm2d(8, dtype=dtype),
                         nn.ReLU(), nn.Conv2d(8, 4, 1, dtype=dtype), nn.BatchNorm2d(4, dtype=dtype))


@pytest.mark.parametrize("dtype, tol", [(np.float64, 1e-10), (np.float32, 1e-4)])
@pytest.mark.parametrize("name, kwargs", MODELS, ids=[m[0] for m in MODELS])
def test_eval_fused_equals_unfused(name, kwargs, dtype, tol, calls):
    rng = np.random.default_rng(0)
    model = create_model(name, num_classes=10, **kwargs).to(dtype)
    _randomise_bn(model, rng)
    model.eval()
    x = tinycnn.Tensor(rng.standard_normal((2, 32, 32, 3)).astype(dtype))
    fused, unfused = _outputs(model, x)
    n_bn = sum(isinstance(m, nn.BatchNorm2d) for m in model.modules())
    assert calls["fused"] == n_bn  # every BatchNorm follows a convolution and was folded
    assert fused.dtype == unfused.dtype == dtype
    scale = np.abs(unfused).max()
    np.testing.assert_allclose(fused, unfused, rtol=tol, atol=tol * scale)


def test_training_mode_is_unfused_and_unchanged(calls):
    rng = np.random.default_rng(1)
    model = create_model("resnet20", num_classes=10)
    _randomise_bn(model, rng)
    x = rng.standard_normal((4, 16, 16, 3)).astype(np.float32)
    state = model.state_dict()
    out = model(tinycnn.Tensor(x))
    out.sum().backward()
    grads = [p.grad.copy() for p in model.parameters()]
    assert calls["fused"] == 0
    model.load_state_dict(state)
    model.zero_grad()
    with fusion.fusion_disabled():
        ref = model(tinycnn.Tensor(x))
        ref.sum().backward()
    np.testing.assert_array_equal(out.data, ref.data)
    for g, p in zip(grads, model.parameters()):
        np.testing.assert_array_equal(g, p.grad)


def test_eval_mode_with_gradients_runs_unfused(calls):
    """Eval mode with parameters that need gradients (frozen BN statistics while
    fine-tuning, gradient checks) keeps the exact unfused graph."""
    model = _small().eval()
    x = tinycnn.Tensor(np.random.default_rng(2).standard_normal((2, 6, 6, 3)).astype(np.float32))
    model(x).sum().backward()
    assert calls["fused"] == 0
    assert all(p.grad is not None for p in model.parameters())
    model.requires_grad_(False)
    model(x)  # nothing needs a gradient, even outside no_grad
    assert calls["fused"] == 2


def test_folded_weights_are_cached(calls):
    model = _small().eval()
    x = tinycnn.Tensor(np.ones((1, 5, 5, 3), np.float32))
    with tinycnn.no_grad():
        model(x)
        model(x)
    assert calls == {"fused": 4, "fold": 2}


def _check_fresh(model, x, calls, folds_before):
    fused, unfused = _outputs(model, x)
    assert calls["fold"] > folds_before  # refolded, not served from the cache
    np.testing.assert_allclose(fused, unfused, rtol=1e-5, atol=1e-5)
    return fused


def test_cache_invalidated_by_optimizer_step(calls):
    rng = np.random.default_rng(3)
    model = _small().eval()
    _randomise_bn(model, rng)
    x = tinycnn.Tensor(rng.standard_normal((2, 6, 6, 3)).astype(np.float32))
    before, _ = _outputs(model, x)
    opt = SGD(model.parameters(), lr=0.5, momentum=0.9)
    for p in model.parameters():
        p.grad = np.ones_like(p.data)
    opt.step()  # updates p.data in place: only the step itself can tell the cache
    after = _check_fresh(model, x, calls, calls["fold"])
    assert not np.allclose(before, after)


def test_cache_invalidated_by_load_state_dict_and_train(calls):
    rng = np.random.default_rng(4)
    model = _small().eval()
    x = tinycnn.Tensor(rng.standard_normal((2, 6, 6, 3)).astype(np.float32))
    _outputs(model, x)
    state = model.state_dict()
    for key in state:
        if key.endswith(("running_mean", "weight")):
            state[key] = state[key] + np.float32(0.25)
    model.load_state_dict(state)
    _check_fresh(model, x, calls, calls["fold"])

    model.train()
    model(x)  # training updates the running statistics in place
    model.eval()
    _check_fresh(model, x, calls, calls["fold"])

    nn.init.constant_(model[1].weight, 2.0)  # in-place init
    _check_fresh(model, x, calls, calls["fold"])


def test_separable_and_sequential_fusion(calls):
    """Xception's rep: ReLU, SeparableConv2d, BatchNorm2d, ReLU, ... and a strided 1x1 + BN."""
    rng = np.random.default_rng(5)
    seq = nn.Sequential(nn.ReLU(), nn.SeparableConv2d(4, 6, 3, padding=1), nn.BatchNorm2d(6), nn.ReLU(),
                        nn.SeparableConv2d(6, 6, 3, padding=1), nn.BatchNorm2d(6), nn.MaxPool2d(3, 2, 1))
    _randomise_bn(seq, rng)
    seq.eval()
    x = tinycnn.Tensor(rng.standard_normal((2, 7, 7, 4)).astype(np.float32))
    fused, unfused = _outputs(seq, x)
    assert calls["fused"] == 2
    np.testing.assert_allclose(fused, unfused, rtol=1e-5, atol=1e-5)


def test_fused_input_errors_name_the_layer():
    model = _small().eval()
    with tinycnn.no_grad(), pytest.raises(ValueError, match=r"Conv2d\(3, 8\)"):
        model(tinycnn.Tensor(np.ones((1, 5, 5, 4), np.float32)))


class _Unit(nn.Module):
    """A model written as the paper reads, naming its chains for the pass."""

    fuse_chains = (("conv1", "bn1", "relu"), ("conv2", "bn2"))

    def __init__(self):
        super().__init__()
        self.conv1, self.bn1, self.relu = nn.Conv2d(3, 4, 3, padding=1, bias=False), nn.BatchNorm2d(4), nn.ReLU()
        self.conv2, self.bn2 = nn.Conv2d(4, 4, 1, bias=False), nn.BatchNorm2d(4)

    def forward(self, x):
        out = self.relu(self.bn1(self.conv1(x)))
        return self.relu(self.bn2(self.conv2(out)) - 0.5)  # the shared ReLU also runs outside a chain


def _unit(rng):
    unit = _Unit()
    _randomise_bn(unit, rng)
    return unit


def test_eval_applies_the_pass_and_train_removes_it(calls):
    rng = np.random.default_rng(7)
    unit = _unit(rng)
    keys = list(unit.state_dict())
    x = tinycnn.Tensor(rng.standard_normal((2, 5, 5, 3)).astype(np.float32))
    unit.eval()
    fused, unfused = _outputs(unit, x)
    assert calls["fused"] == 2
    np.testing.assert_allclose(fused, unfused, rtol=1e-5, atol=1e-5)
    assert list(unit.state_dict()) == keys  # the pass changes how layers are called, not the model
    nn.unfuse(unit)
    with tinycnn.no_grad():
        np.testing.assert_array_equal(unit(x).data, unfused)
    assert calls["fused"] == 2
    nn.fuse(unit)
    with tinycnn.no_grad():
        unit(x)
    assert calls["fused"] == 4
    unit.train()
    unit.bn1.eval(), unit.bn2.eval()  # eval BatchNorms, but the pass was removed with train()
    with tinycnn.no_grad():
        np.testing.assert_allclose(unit(x).data, unfused, rtol=1e-6)
    assert calls["fused"] == 4


def test_a_replaced_or_retrained_member_is_never_served_stale(calls):
    rng = np.random.default_rng(8)
    unit = _unit(rng).eval()
    x = tinycnn.Tensor(rng.standard_normal((2, 5, 5, 3)).astype(np.float32))
    _outputs(unit, x)
    unit.bn1 = nn.BatchNorm2d(4)  # a new BatchNorm the pass has not seen: the chain runs unfused
    fused, unfused = _outputs(unit, x)
    np.testing.assert_allclose(fused, unfused, rtol=1e-5, atol=1e-5)
    unit.eval()
    folds = calls["fold"]
    unit.bn2.train()  # one member trained alone, its statistics move in place
    unit(tinycnn.Tensor(rng.standard_normal((4, 5, 5, 3)).astype(np.float32) + 3))
    unit.bn2.eval()
    _check_fresh(unit, x, calls, folds)


def test_declared_chains_are_checked():
    class Wrong(_Unit):
        fuse_chains = (("conv1", "relu", "bn1"),)

    with pytest.raises(TypeError, match=r"Wrong chain \('conv1', 'relu', 'bn1'\): relu must be a BatchNorm2d"):
        Wrong().eval()

    class Mismatch(_Unit):
        fuse_chains = (("conv2", "bn1"),)

    unit = Mismatch()
    unit.bn1 = nn.BatchNorm2d(5)
    with pytest.raises(ValueError, match="conv2 has 4 output channels, bn1 normalises 5"):
        unit.eval()
    with pytest.raises(TypeError, match="fuse: model must be a Module"):
        nn.fuse([unit])


def test_summary_wrappers_and_fused_chains_agree():
    rng = np.random.default_rng(9)
    model = create_model("resnet20", num_classes=10)
    _randomise_bn(model, rng)
    model.eval()
    x = tinycnn.Tensor(rng.standard_normal((2, 16, 16, 3)).astype(np.float32))
    with tinycnn.no_grad():
        before = model(x).data
    tinycnn.summary(model, (16, 16, 3))  # wraps every forward while it runs, then unwraps
    with tinycnn.no_grad():
        np.testing.assert_allclose(model(x).data, before, rtol=1e-6, atol=1e-6)


# ------------------------------------------------------------------ the kernel


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape", [(2, 5, 7, 3), (1, 1, 1, 1), (33, 17), (0, 4, 4, 8)])
def test_bias_relu_kernel_matches_reference(shape, dtype):
    rng = np.random.default_rng(6)
    y = rng.standard_normal(shape).astype(dtype)
    b = rng.standard_normal(shape[-1]).astype(dtype)
    expected = reference.bias_relu_(y.copy(), b)
    got = y.copy()
    assert fused_kernels.bias_relu_(got, b) is got
    np.testing.assert_array_equal(got, expected)
    assert (got >= 0).all()


def test_bias_relu_kernel_keeps_nan_and_checks_arguments():
    y = np.array([[np.nan, -1.0, 2.0]], np.float32)
    b = np.zeros(3, np.float32)
    out = fused_kernels.bias_relu_(y, b)
    assert np.isnan(out[0, 0]) and out[0, 1] == 0 and out[0, 2] == 2
    assert np.isnan(reference.bias_relu_(np.array([[np.nan, 1.0, 1.0]], np.float32), b)[0, 0])
    with pytest.raises(ValueError, match="shape"):
        fused_kernels.bias_relu_(y, np.zeros(2, np.float32))
    with pytest.raises(TypeError, match="dtype|float"):
        fused_kernels.bias_relu_(y, np.zeros(3, np.float64))
    with pytest.raises(ValueError, match="contiguous"):
        fused_kernels.bias_relu_(np.zeros((4, 3), np.float32)[::2], b)

"""Parity with PyTorch: the same networks written in plain torch (torchvision's
ResNet layout, timm's SE unit and Xception layout), their weights copied into
ours through the state-dict keys, must give the same logits, input gradients,
parameter gradients and (in training mode) BatchNorm running statistics."""

import copy

import numpy as np
import pytest

import tinycnn
import tinycnn.models as M
from tinycnn import nn

torch = pytest.importorskip("torch")
tnn = torch.nn


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    # A shared 2-core machine: one thread avoids Numba/BLAS spin-wait contention.
    numba_threads, torch_threads = tinycnn.get_num_threads(), torch.get_num_threads()
    tinycnn.set_num_threads(1)
    torch.set_num_threads(1)
    yield
    tinycnn.set_num_threads(numba_threads)
    torch.set_num_threads(torch_threads)


# ----------------------------------------------------------- torch reference
# The plain-torch twins (torchvision/timm layouts) live in bench/, which also
# times them.
from bench.torch_models import TorchBasicBlock, TorchBottleneck, TorchResNet, TorchSmallXception  # noqa: E402



# ------------------------------------------------------ weights and layouts
def _to_ours(module, value):
    """A torch parameter/buffer as the array our ``module`` stores."""
    v = value.detach().numpy()
    if isinstance(module, nn.DepthwiseConv2d):          # (C*M, 1, KH, KW) -> (KH, KW, C, M)
        C = module.channels
        return v.reshape(C, -1, *v.shape[2:]).transpose(2, 3, 0, 1)
    if isinstance(module, nn.Conv2d):                   # OIHW -> HWIO
        return v.transpose(2, 3, 1, 0)
    if isinstance(module, nn.Linear) and v.ndim >= 2:   # (out, in[, 1, 1]) -> (in, out)
        return v.reshape(v.shape[0], v.shape[1]).T
    return v


def _randomise_bn(tmodel):
    """Random BN affine parameters and running statistics, so that eval mode
    is not the identity and the running-statistics update is visible."""
    gen = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for m in tmodel.modules():
            if isinstance(m, tnn.BatchNorm2d):
                m.weight.copy_(torch.rand(m.num_features, generator=gen) + 0.5)
                m.bias.copy_(torch.randn(m.num_features, generator=gen) * 0.1)
                m.running_mean.copy_(torch.randn(m.num_features, generator=gen) * 0.1)
                m.running_var.copy_(torch.rand(m.num_features, generator=gen) + 0.5)


def _copy_weights(tmodel, model):
    """Load torch's state dict into ours by key, strictly (every key of
    either side must have its counterpart, with the converted shape)."""
    modules = dict(model.named_modules())
    state = {k: _to_ours(modules[k.rpartition(".")[0]], v) for k, v in tmodel.state_dict().items()}
    model.load_state_dict(state, strict=True)


def _converted(model):
    """A function turning a torch tensor under ``key`` into our layout, as float64."""
    modules = dict(model.named_modules())
    return lambda key, v: _to_ours(modules[key.rpartition(".")[0]], v).astype(np.float64)


def _torch_pass(tmodel, x, g, training, convert):
    """One forward/backward of the torch reference; results by name, in our layouts."""
    dtype = next(tmodel.parameters()).dtype
    tmodel.train(training)
    tmodel.zero_grad()
    xt = torch.tensor(x.transpose(0, 3, 1, 2), dtype=dtype).requires_grad_()
    y = tmodel(xt)
    (y * torch.tensor(g, dtype=dtype)).sum().backward()
    out = {"logits": y.detach().double().numpy(), "input gradient": xt.grad.double().numpy().transpose(0, 2, 3, 1)}
    out.update({f"gradient of {k}": convert(k, p.grad) for k, p in tmodel.named_parameters()})
    if training:
        out.update({f"updated {k}": v.double().numpy() for k, v in tmodel.state_dict().items()
                    if k.endswith(("running_mean", "running_var"))})
    return out


def _our_pass(model, x, g, training, dtype):
    model.train(training)
    model.zero_grad()
    xo = tinycnn.Tensor(x.astype(dtype), requires_grad=True)
    y = model(xo)
    assert y.dtype == dtype
    (y * tinycnn.Tensor(g.astype(dtype))).sum().backward()
    out = {"logits": y.data, "input gradient": xo.grad}
    out.update({f"gradient of {k}": p.grad for k, p in model.named_parameters()})
    if training:
        state = model.state_dict()
        out.update({f"updated {k}": v for k, v in state.items() if k.endswith(("running_mean", "running_var"))})
        assert all(v == 1 for k, v in state.items() if k.endswith("num_batches_tracked"))
    return out


def _check_parity(model, tmodel, shape):
    """Our model in float32 and in float64 against the torch reference in
    float64 (the exact answer, to ~1e-15), in training and in eval mode:
    logits, the input gradient, every parameter gradient and, in training
    mode, the updated BatchNorm running statistics.

    float64: within 1e-9 of each array's scale.  float32: within 1e-4 of the
    array's scale, or within three times torch's own float32 error if that
    is larger: training-mode BatchNorm over a few pixels per channel makes the
    gradients of a deep net ill-conditioned (float32 torch strays from the
    exact gradient by up to a few percent for ResNet-50 at 16x16), and no
    float32 implementation can do better than the problem allows.  (Three,
    not two, since the 3x3 layers use Winograd F(2x2, 3x3), which rounds a
    little more than a direct sum: ResNet-50's worst gradient element was
    2.1x torch's error with it, under 2x with ``set_winograd(False)``.)
    """
    _randomise_bn(tmodel)
    reference, torch32 = tmodel.double(), copy.deepcopy(tmodel).float()
    initial = copy.deepcopy(reference.state_dict())
    rng = np.random.default_rng(0)
    x = rng.standard_normal(shape)  # NHWC
    g = rng.standard_normal((shape[0], model.num_classes))
    convert = _converted(model)
    for dtype, rtol in ((np.float32, 1e-4), (np.float64, 1e-9)):
        reference.load_state_dict(initial)
        torch32.load_state_dict(initial)
        model.to(dtype)
        _copy_weights(reference, model)
        for training in (True, False):
            exact = _torch_pass(reference, x, g, training, convert)
            theirs = _torch_pass(torch32, x, g, training, convert) if dtype == np.float32 else exact
            ours = _our_pass(model, x, g, training, dtype)
            assert ours.keys() == exact.keys()
            for name, want in exact.items():
                scale = float(np.abs(want).max())
                torch_error = float(np.abs(theirs[name] - want).max())
                atol = max(rtol * scale, 3 * torch_error, 1e-30)
                np.testing.assert_allclose(ours[name], want, rtol=rtol, atol=atol, err_msg=(
                    f"{np.dtype(dtype).name} {'train' if training else 'eval'} {name} "
                    f"(torch float32 error {torch_error:.2e}, scale {scale:.2e})"))


def test_resnet18_cifar_stem_matches_torch():
    torch.manual_seed(0)
    tmodel = TorchResNet(TorchBasicBlock, [2, 2, 2, 2], 10, stem="cifar")
    _check_parity(M.resnet18(num_classes=10, stem="cifar"), tmodel, (4, 16, 16, 3))


def test_resnet50_cifar_stem_bottleneck_matches_torch():
    torch.manual_seed(0)
    tmodel = TorchResNet(TorchBottleneck, [3, 4, 6, 3], 10, stem="cifar")
    _check_parity(M.resnet50(num_classes=10, stem="cifar"), tmodel, (2, 16, 16, 3))


def test_se_resnet18_imagenet_stem_matches_torch():
    torch.manual_seed(0)
    tmodel = TorchResNet(TorchBasicBlock, [2, 2, 2, 2], 10, se=True)
    _check_parity(M.se_resnet18(num_classes=10), tmodel, (2, 64, 64, 3))


def test_cifar_resnet20_with_se_matches_torch():
    torch.manual_seed(0)
    tmodel = TorchResNet(TorchBasicBlock, [3, 3, 3], 10, stem="cifar", widths=(16, 32, 64), se=True)
    _check_parity(M.resnet20(num_classes=10, se=True), tmodel, (4, 16, 16, 3))


def test_xception_small_matches_torch():
    torch.manual_seed(0)
    _check_parity(M.xception_small(num_classes=10), TorchSmallXception(10), (2, 32, 32, 3))

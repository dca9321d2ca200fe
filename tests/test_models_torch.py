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
class TorchSE(tnn.Module):
    """timm's SEModule: 1x1 convolutions with bias as the dense layers."""

    def __init__(self, channels, reduction=16):
        super().__init__()
        hidden = max(1, channels // reduction)
        self.fc1 = tnn.Conv2d(channels, hidden, 1, bias=True)
        self.fc2 = tnn.Conv2d(hidden, channels, 1, bias=True)

    def forward(self, x):
        s = x.mean((2, 3), keepdim=True)
        return x * torch.sigmoid(self.fc2(torch.relu(self.fc1(s))))


class TorchBasicBlock(tnn.Module):
    expansion = 1

    def __init__(self, inplanes, planes, stride=1, downsample=None, se=False):
        super().__init__()
        self.conv1 = tnn.Conv2d(inplanes, planes, 3, stride, 1, bias=False)
        self.bn1 = tnn.BatchNorm2d(planes)
        self.relu = tnn.ReLU()
        self.conv2 = tnn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.bn2 = tnn.BatchNorm2d(planes)
        self.se = TorchSE(planes) if se else None
        self.downsample = downsample

    def forward(self, x):
        identity = x
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        if self.se is not None:
            out = self.se(out)
        if self.downsample is not None:
            identity = self.downsample(x)
        return self.relu(out + identity)


class TorchBottleneck(tnn.Module):
    expansion = 4

    def __init__(self, inplanes, planes, stride=1, downsample=None, se=False):
        super().__init__()
        self.conv1 = tnn.Conv2d(inplanes, planes, 1, bias=False)
        self.bn1 = tnn.BatchNorm2d(planes)
        self.conv2 = tnn.Conv2d(planes, planes, 3, stride, 1, bias=False)
        self.bn2 = tnn.BatchNorm2d(planes)
        self.conv3 = tnn.Conv2d(planes, planes * 4, 1, bias=False)
        self.bn3 = tnn.BatchNorm2d(planes * 4)
        self.relu = tnn.ReLU()
        self.se = TorchSE(planes * 4) if se else None
        self.downsample = downsample

    def forward(self, x):
        identity = x
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        if self.se is not None:
            out = self.se(out)
        if self.downsample is not None:
            identity = self.downsample(x)
        return self.relu(out + identity)


class TorchResNet(tnn.Module):
    def __init__(self, block, layers, num_classes, stem="imagenet", widths=(64, 128, 256, 512), se=False):
        super().__init__()
        self.inplanes = widths[0]
        if stem == "imagenet":
            self.conv1 = tnn.Conv2d(3, widths[0], 7, 2, 3, bias=False)
            self.maxpool = tnn.MaxPool2d(3, 2, 1)
        else:
            self.conv1 = tnn.Conv2d(3, widths[0], 3, 1, 1, bias=False)
            self.maxpool = tnn.Identity()
        self.bn1 = tnn.BatchNorm2d(widths[0])
        self.relu = tnn.ReLU()
        self.stages = []
        for i, (planes, n) in enumerate(zip(widths, layers)):
            stride = 1 if i == 0 else 2
            downsample = None
            if stride != 1 or self.inplanes != planes * block.expansion:
                downsample = tnn.Sequential(
                    tnn.Conv2d(self.inplanes, planes * block.expansion, 1, stride, bias=False),
                    tnn.BatchNorm2d(planes * block.expansion),
                )
            blocks = [block(self.inplanes, planes, stride, downsample, se)]
            self.inplanes = planes * block.expansion
            blocks += [block(self.inplanes, planes, se=se) for _ in range(1, n)]
            setattr(self, f"layer{i + 1}", tnn.Sequential(*blocks))
            self.stages.append(f"layer{i + 1}")
        self.fc = tnn.Linear(self.inplanes, num_classes)

    def forward(self, x):
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        for name in self.stages:
            x = getattr(self, name)(x)
        return self.fc(x.mean((2, 3)))


class TorchSeparable(tnn.Module):
    def __init__(self, cin, cout):
        super().__init__()
        self.conv1 = tnn.Conv2d(cin, cin, 3, 1, 1, groups=cin, bias=False)
        self.pointwise = tnn.Conv2d(cin, cout, 1, bias=False)

    def forward(self, x):
        return self.pointwise(self.conv1(x))


class TorchXBlock(tnn.Module):
    """timm's legacy Xception Block."""

    def __init__(self, cin, cout, reps, stride=1, start_with_relu=True, grow_first=True):
        super().__init__()
        if cout != cin or stride != 1:
            self.skip = tnn.Conv2d(cin, cout, 1, stride=stride, bias=False)
            self.skipbn = tnn.BatchNorm2d(cout)
        else:
            self.skip = None
        rep = []
        for i in range(reps):
            inc, outc = (cin if i == 0 else cout, cout) if grow_first else (cin, cin if i < reps - 1 else cout)
            rep += [tnn.ReLU(), TorchSeparable(inc, outc), tnn.BatchNorm2d(outc)]
        if not start_with_relu:
            rep = rep[1:]
        if stride != 1:
            rep.append(tnn.MaxPool2d(3, stride, 1))
        self.rep = tnn.Sequential(*rep)

    def forward(self, inp):
        x = self.rep(inp)
        skip = self.skipbn(self.skip(inp)) if self.skip is not None else inp
        return x + skip


class TorchSmallXception(tnn.Module):
    """xception_small's configuration in timm's layout (stride-1 padded stem)."""

    def __init__(self, num_classes, stem=(16, 32), entry=(64, 128, 256), middle=4, exit=(384, 512, 768)):
        super().__init__()
        self.conv1 = tnn.Conv2d(3, stem[0], 3, 1, 1, bias=False)
        self.bn1 = tnn.BatchNorm2d(stem[0])
        self.conv2 = tnn.Conv2d(stem[0], stem[1], 3, 1, 1, bias=False)
        self.bn2 = tnn.BatchNorm2d(stem[1])
        blocks = [TorchXBlock(stem[1], entry[0], 2, 2, start_with_relu=False),
                  TorchXBlock(entry[0], entry[1], 2, 2), TorchXBlock(entry[1], entry[2], 2, 2)]
        blocks += [TorchXBlock(entry[2], entry[2], 3, 1) for _ in range(middle)]
        blocks += [TorchXBlock(entry[2], exit[0], 2, 2, grow_first=False)]
        self.n_blocks = len(blocks)
        for i, b in enumerate(blocks):
            setattr(self, f"block{i + 1}", b)
        self.conv3 = TorchSeparable(exit[0], exit[1])
        self.bn3 = tnn.BatchNorm2d(exit[1])
        self.conv4 = TorchSeparable(exit[1], exit[2])
        self.bn4 = tnn.BatchNorm2d(exit[2])
        self.fc = tnn.Linear(exit[2], num_classes)

    def forward(self, x):
        x = torch.relu(self.bn1(self.conv1(x)))
        x = torch.relu(self.bn2(self.conv2(x)))
        for i in range(self.n_blocks):
            x = getattr(self, f"block{i + 1}")(x)
        x = torch.relu(self.bn3(self.conv3(x)))
        x = torch.relu(self.bn4(self.conv4(x)))
        return self.fc(x.mean((2, 3)))


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
    array's scale, or within twice torch's own float32 error if that is
    larger: training-mode BatchNorm over a few pixels per channel makes the
    gradients of a deep net ill-conditioned (float32 torch strays from the
    exact gradient by up to a few percent for ResNet-50 at 16x16), and no
    float32 implementation can do better than the problem allows.
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
                atol = max(rtol * scale, 2 * torch_error, 1e-30)
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

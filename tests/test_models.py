"""The model zoo: exact parameter counts, state-dict layouts, forward and
backward on every factory, initialisation, input checks, and a small ResNet
that memorises a random training set."""

import numpy as np
import pytest

import tinycnn
import tinycnn.functional as F
import tinycnn.models as M
from tinycnn import nn


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    # A shared 2-core machine: one thread avoids Numba/BLAS spin-wait contention.
    before = tinycnn.get_num_threads()
    tinycnn.set_num_threads(1)
    yield
    tinycnn.set_num_threads(before)


CIFAR_RESNETS = ["resnet20", "resnet32", "resnet44", "resnet56", "resnet110"]

PARAMETER_COUNTS = [
    ("resnet18", {}, 11_689_512),
    ("resnet34", {}, 21_797_672),
    ("resnet50", {}, 25_557_032),
    ("resnet101", {}, 44_549_160),
    ("resnet152", {}, 60_192_808),
    ("resnet18", {"stem": "cifar", "num_classes": 10}, 11_173_962),
    ("resnet34", {"stem": "cifar", "num_classes": 10}, 21_282_122),
    ("resnet20", {"num_classes": 10}, 272_474),
    ("resnet32", {"num_classes": 10}, 466_906),
    ("resnet44", {"num_classes": 10}, 661_338),
    ("resnet56", {"num_classes": 10}, 855_770),
    ("resnet110", {"num_classes": 10}, 1_730_714),
    ("se_resnet18", {}, 11_778_592),
    ("se_resnet34", {}, 21_958_868),
    ("se_resnet50", {}, 28_088_024),
    ("se_resnet101", {}, 49_326_872),
    ("se_resnet152", {}, 66_821_848),
    ("xception", {}, 22_855_952),
    ("xception_small", {"num_classes": 10}, 1_883_066),
]


def test_registry_lists_every_factory():
    expected = {"resnet18", "resnet34", "resnet50", "resnet101", "resnet152", *CIFAR_RESNETS,
                "se_resnet18", "se_resnet34", "se_resnet50", "se_resnet101", "se_resnet152",
                "xception", "xception_small"}
    assert set(M.list_models()) == expected
    assert M.list_models() == sorted(M.list_models())


@pytest.mark.parametrize("name, kwargs, expected", PARAMETER_COUNTS,
                         ids=[f"{n}-{'-'.join(map(str, k.values())) or 'imagenet'}" for n, k, _ in PARAMETER_COUNTS])
def test_parameter_count(name, kwargs, expected):
    assert M.create_model(name, **kwargs).num_parameters() == expected


def test_resnet50_state_dict_uses_torchvision_keys_and_our_layouts():
    state = M.resnet50().state_dict()
    assert state["conv1.weight"].shape == (7, 7, 3, 64)
    for bn in ("bn1", "layer1.0.downsample.1", "layer4.2.bn3"):
        for suffix in ("weight", "bias", "running_mean", "running_var", "num_batches_tracked"):
            assert f"{bn}.{suffix}" in state
    # v1.5: the stride sits on the 3x3 convolution of a Bottleneck; projections are 1x1.
    assert state["layer2.0.conv1.weight"].shape == (1, 1, 256, 128)
    assert state["layer2.0.conv2.weight"].shape == (3, 3, 128, 128)
    assert state["layer2.0.downsample.0.weight"].shape == (1, 1, 256, 512)
    model = M.resnet50()
    assert model.layer2[0].conv2.stride == (2, 2) and model.layer2[0].conv1.stride == (1, 1)
    assert model.layer2[0].downsample[0].stride == (2, 2)
    # A projection only where the stride or the width changes.
    assert "layer1.0.downsample.0.weight" in state  # 64 -> 256
    assert not any(k.startswith(("layer1.1.downsample", "layer3.5.downsample")) for k in state)
    assert state["fc.weight"].shape == (2048, 1000) and state["fc.bias"].shape == (1000,)


def test_basic_block_resnets_project_only_when_the_shape_changes():
    keys = M.resnet18().state_dict().keys()
    assert not any(k.startswith("layer1.0.downsample") for k in keys)  # 64 -> 64, stride 1
    assert {f"layer{i}.0.downsample.0.weight" for i in (2, 3, 4)} <= set(keys)
    cifar = M.resnet20(num_classes=10).state_dict()
    assert cifar["conv1.weight"].shape == (3, 3, 3, 16)
    assert cifar["layer2.0.downsample.0.weight"].shape == (1, 1, 16, 32)
    assert "layer4.0.conv1.weight" not in cifar and "layer1.0.downsample.0.weight" not in cifar


def test_se_keys_and_shapes_follow_timm():
    state = M.se_resnet50(num_classes=10).state_dict()
    assert state["layer1.0.se.fc1.weight"].shape == (256, 16)  # dense (in, out): C -> C // 16
    assert state["layer1.0.se.fc1.bias"].shape == (16,)
    assert state["layer4.2.se.fc2.weight"].shape == (128, 2048)
    assert state["layer4.2.se.fc2.bias"].shape == (2048,)
    cifar_se = M.resnet20(num_classes=10, se=True)
    assert cifar_se.num_parameters() == 272_474 + 3 * 49 + 3 * 162 + 3 * 580
    xse = M.xception_small(num_classes=10, se=True).state_dict()
    assert xse["block5.se.fc1.weight"].shape == (256, 16)
    assert "block1.se.fc2.bias" in xse


def test_xception_keys_follow_timm():
    state = M.xception().state_dict()
    assert state["conv1.weight"].shape == (3, 3, 3, 32)
    assert state["conv2.weight"].shape == (3, 3, 32, 64)
    # block1 does not start with a ReLU, so its rep starts with the separable convolution.
    assert state["block1.rep.0.conv1.weight"].shape == (3, 3, 64, 1)
    assert state["block1.rep.0.pointwise.weight"].shape == (1, 1, 64, 128)
    assert state["block2.rep.1.conv1.weight"].shape == (3, 3, 128, 1)
    assert state["block2.skip.weight"].shape == (1, 1, 128, 256)
    assert "block2.skipbn.running_var" in state
    assert "block4.skip.weight" not in state  # middle flow: identity shortcut
    assert state["block11.rep.7.pointwise.weight"].shape == (1, 1, 728, 728)
    assert state["block12.rep.1.pointwise.weight"].shape == (1, 1, 728, 728)  # grow last
    assert state["block12.rep.4.pointwise.weight"].shape == (1, 1, 728, 1024)
    assert state["conv3.conv1.weight"].shape == (3, 3, 1024, 1)
    assert state["conv4.pointwise.weight"].shape == (1, 1, 1536, 2048)
    assert state["bn4.running_mean"].shape == (2048,)
    assert state["fc.weight"].shape == (2048, 1000)


def test_xception_at_299_is_10x10_before_the_pool():
    model = M.xception(num_classes=10).eval()
    with tinycnn.no_grad():
        features = model.forward_features(np.zeros((1, 299, 299, 3), np.float32))
    assert features.shape == (1, 10, 10, 2048)


@pytest.mark.parametrize("name", sorted(M.list_models()))
def test_every_factory_runs_forward_and_backward(name):
    tinycnn.manual_seed(0)
    model = M.create_model(name, num_classes=3)
    x = np.random.default_rng(0).standard_normal((2, 32, 32, 3)).astype(np.float32)

    logits = model(tinycnn.Tensor(x))
    assert logits.shape == (2, 3) and np.isfinite(logits.data).all()
    F.cross_entropy(logits, np.array([0, 2])).backward()
    for key, p in model.named_parameters():
        assert p.grad is not None, key
        assert p.grad.shape == p.shape and p.grad.dtype == p.dtype, key
        assert np.isfinite(p.grad).all(), key
    assert any(np.abs(p.grad).max() > 0 for p in model.parameters())

    model.eval()
    with tinycnn.no_grad():
        first, second = model(x).data, model(x).data
        split = model.forward_head(model.forward_features(x)).data
    np.testing.assert_array_equal(first, second)
    np.testing.assert_array_equal(first, split)


def test_create_model_passes_options_to_the_constructor():
    model = M.create_model("resnet18", num_classes=7, stem="cifar", in_chans=1)
    assert model.conv1.weight.shape == (3, 3, 1, 64) and model.maxpool is None
    with tinycnn.no_grad():
        assert model.eval()(np.zeros((2, 28, 28, 1), np.float32)).shape == (2, 7)
    small = M.create_model("xception_small", num_classes=4, in_chans=1)
    with tinycnn.no_grad():
        assert small.eval()(np.zeros((1, 28, 28, 1), np.float32)).shape == (1, 4)


def test_unknown_model_name_lists_the_known_ones():
    with pytest.raises(ValueError, match="unknown model 'resnet19'") as info:
        M.create_model("resnet19")
    for name in M.list_models():
        assert name in str(info.value)
    with pytest.raises(ValueError, match="stem"):
        M.create_model("resnet18", stem="tiny")


@pytest.mark.parametrize("name", ["resnet20", "xception_small"])
@pytest.mark.parametrize("shape", [(2, 3, 32, 32), (32, 32, 3), (2, 32, 32, 1)])
def test_wrong_input_layout_is_refused(name, shape):
    model = M.create_model(name, num_classes=10)
    with pytest.raises(ValueError, match=r"expects \(N, H, W, C\) input with C = 3 channels") as info:
        model(np.zeros(shape, np.float32))
    assert str(shape) in str(info.value)
    if shape == (2, 3, 32, 32):
        assert "NCHW" in str(info.value)


def _fan_out_std(weight, depthwise=False):
    KH, KW, C, M_ = weight.shape
    fan_out = KH * KW * C * M_ if depthwise else KH * KW * M_
    return np.sqrt(2.0 / fan_out)


def test_initialisation_is_kaiming_fan_out_and_unit_batchnorm():
    tinycnn.manual_seed(0)
    model = M.resnet50()
    w = model.layer4[1].conv2.weight.data  # (3, 3, 512, 512): fan-out 4608, fan-in 4608 too
    assert abs(w.std() / _fan_out_std(w) - 1) < 0.01 and abs(w.mean()) < 1e-3
    w = model.layer4[1].conv3.weight.data  # (1, 1, 512, 2048): fan-out 2048, fan-in 512
    assert abs(w.std() / _fan_out_std(w) - 1) < 0.01
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            assert (m.weight.data == 1).all() and (m.bias.data == 0).all()
    depthwise = M.xception().block5.rep[1].conv1.weight.data  # (3, 3, 728, 1): fan-out 3*3*728
    assert abs(depthwise.std() / _fan_out_std(depthwise, depthwise=True) - 1) < 0.03


def _last_bn(unit):
    if isinstance(unit, M.BasicBlock):
        return unit.bn2
    if isinstance(unit, M.Bottleneck):
        return unit.bn3
    return [m for m in unit.rep if isinstance(m, nn.BatchNorm2d)][-1]


def _shortcut(unit):
    return unit.skip if isinstance(unit, M.XceptionBlock) else unit.downsample


@pytest.mark.parametrize("name", ["resnet20", "resnet50", "se_resnet18", "xception_small"])
def test_zero_init_residual_makes_every_unit_start_as_its_shortcut(name):
    model = M.create_model(name, num_classes=10, zero_init_residual=True).eval()
    units = [m for m in model.modules() if isinstance(m, (M.BasicBlock, M.Bottleneck, M.XceptionBlock))]
    assert len(units) >= 8
    for unit in units:
        assert (_last_bn(unit).weight.data == 0).all()
    zeroed = sum(int((m.weight.data == 0).all()) for m in model.modules() if isinstance(m, nn.BatchNorm2d))
    assert zeroed == len(units)  # only the last BN of each unit
    default = M.create_model(name, num_classes=10)
    assert all((m.weight.data == 1).all() for m in default.modules() if isinstance(m, nn.BatchNorm2d))

    # An identity-shortcut unit maps a non-negative (post-ReLU) input to itself.
    unit = next(u for u in units if _shortcut(u) is None)
    first_conv = next(m for m in unit.modules() if isinstance(m, (nn.Conv2d, nn.DepthwiseConv2d)))
    channels = getattr(first_conv, "in_channels", None) or first_conv.channels
    x = np.abs(np.random.default_rng(0).standard_normal((2, 4, 4, channels))).astype(np.float32)
    with tinycnn.no_grad():
        np.testing.assert_array_equal(unit(x).data, x)
        assert not np.array_equal(next(u for u in default.modules() if type(u) is type(unit)
                                       and _shortcut(u) is None)(x).data, x)


def test_se_unit_reweights_maps_before_the_residual_addition():
    tinycnn.manual_seed(0)
    block = M.BasicBlock(8, 8, se_reduction=4).eval()
    x = np.abs(np.random.default_rng(1).standard_normal((2, 5, 5, 8))).astype(np.float32)
    with tinycnn.no_grad():
        # The gate, by hand: mean over H, W -> dense -> ReLU -> dense -> sigmoid.
        branch = block.bn2(block.conv2(block.relu(block.bn1(block.conv1(x))))).data
        s = branch.mean(axis=(1, 2))
        h = np.maximum(s @ block.se.fc1.weight.data + block.se.fc1.bias.data, 0)
        gate = 1 / (1 + np.exp(-(h @ block.se.fc2.weight.data + block.se.fc2.bias.data)))
        expected = np.maximum(branch * gate[:, None, None, :] + x, 0)
        assert not np.allclose(expected, np.maximum(branch + x, 0))  # the gate matters
        np.testing.assert_allclose(block(x).data, expected, rtol=1e-5, atol=1e-6)
        # A closed gate leaves only the shortcut: the unit sits before the addition.
        block.se.fc2.bias.data[...] = -1e4
        np.testing.assert_array_equal(block(x).data, x)


def test_small_resnet_memorises_32_random_images():
    """resnet20, SGD with momentum: 100% training accuracy (eval mode) on 32
    random 32x32 images with random labels."""
    tinycnn.manual_seed(0)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((32, 32, 32, 3)).astype(np.float32)
    y = rng.integers(0, 10, 32)
    model = M.resnet20(num_classes=10)
    params = list(model.parameters())
    velocity = [np.zeros_like(p.data) for p in params]
    lr, momentum = 0.05, 0.9
    accuracy = 0.0
    for step in range(60):
        model.train()
        model.zero_grad()
        loss = F.cross_entropy(model(x), y)
        loss.backward()
        for p, v in zip(params, velocity):
            v *= momentum
            v += p.grad
            p.data -= lr * v
        model.eval()
        with tinycnn.no_grad():
            accuracy = (model(x).data.argmax(axis=1) == y).mean()
        if accuracy == 1.0:
            break
    assert accuracy == 1.0, f"training accuracy {accuracy:.2f} after {step + 1} steps (loss {loss.item():.3f})"

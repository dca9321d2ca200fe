"""Weights in and out: torchvision/timm-layout state dicts imported from
.safetensors, .npz and .pth (built here in torch with random weights, no
network), ``to_torch`` loaded back into plain-torch twins, transfer learning
through ``create_model(weights=..., num_classes=...)``, the fine-tuning
helpers, and bad files that must fail by name and leave the model unchanged."""

import numpy as np
import pytest

import tinycnn
import tinycnn.models as M
from tinycnn import finetune, nn, optim
from tinycnn.weights import load_weights, read_state_dict, torch_state_dict

from _helpers import randomise_batchnorm

safetensors_numpy = pytest.importorskip("safetensors.numpy")


@pytest.fixture(scope="module")
def torch_twins():
    """torch, and test_models_torch (the plain-torch twins and their BN randomiser)."""
    torch = pytest.importorskip("torch")
    import test_models_torch as twins
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield torch, twins
    torch.set_num_threads(threads)


_randomise = randomise_batchnorm


def _logits(model, x):
    model.eval()
    with tinycnn.no_grad():
        return model(tinycnn.Tensor(x)).data


def _torch_logits(torch, tmodel, x):
    tmodel.eval()
    with torch.no_grad():
        return tmodel(torch.tensor(x.transpose(0, 3, 1, 2))).numpy()


def _close(ours, want, rtol=1e-4):
    np.testing.assert_allclose(ours, want, rtol=rtol, atol=rtol * float(np.abs(want).max()))


def _numpy_state(tmodel, drop_num_batches=False):
    return {k: v.detach().numpy().copy() for k, v in tmodel.state_dict().items()
            if not (drop_num_batches and k.endswith("num_batches_tracked"))}


def _unchanged(model, before):
    after = model.state_dict()
    assert after.keys() == before.keys()
    for k in before:
        np.testing.assert_array_equal(after[k], before[k], err_msg=k)


X = np.random.default_rng(1).standard_normal((2, 16, 16, 3)).astype(np.float32)


# ------------------------------------------------------------ torch -> ours
def test_torchvision_resnet_from_safetensors(torch_twins, tmp_path):
    torch, T = torch_twins
    torch.manual_seed(0)
    tmodel = T.TorchResNet(T.TorchBasicBlock, [3, 3, 3], 10, stem="cifar", widths=(16, 32, 64))
    T._randomise_bn(tmodel)
    path = tmp_path / "resnet20.safetensors"
    safetensors_numpy.save_file(_numpy_state(tmodel), str(path))
    model = M.create_model("resnet20", num_classes=10, weights=path)
    _close(_logits(model, X), _torch_logits(torch, tmodel, X))


def test_timm_se_resnet_from_pth_with_conv_se(torch_twins, tmp_path):
    torch, T = torch_twins
    torch.manual_seed(0)
    tmodel = T.TorchResNet(T.TorchBasicBlock, [2, 2, 2, 2], 10, stem="cifar", se=True)
    T._randomise_bn(tmodel)
    assert tmodel.state_dict()["layer1.0.se.fc1.weight"].shape == (4, 64, 1, 1)  # timm's 1x1 conv
    path = tmp_path / "se_resnet18.pth"
    torch.save({"state_dict": tmodel.state_dict()}, path)
    model = M.create_model("se_resnet18", num_classes=10, stem="cifar", weights=path)
    _close(_logits(model, X), _torch_logits(torch, tmodel, X))


def test_timm_xception_from_npz_without_num_batches_tracked(torch_twins, tmp_path):
    torch, T = torch_twins
    torch.manual_seed(0)
    tmodel = T.TorchSmallXception(10)
    T._randomise_bn(tmodel)
    path = tmp_path / "xception_small.npz"
    np.savez(path, **_numpy_state(tmodel, drop_num_batches=True))
    model = M.xception_small(num_classes=10)
    result = load_weights(model, path)
    assert result.unexpected_keys == [] and result.reset_keys == []
    assert result.missing_keys and all(k.endswith("num_batches_tracked") for k in result.missing_keys)
    _close(_logits(model, X), _torch_logits(torch, tmodel, X))


def test_transfer_learning_resets_only_the_head(torch_twins, tmp_path):
    torch, T = torch_twins
    torch.manual_seed(0)
    tmodel = T.TorchResNet(T.TorchBasicBlock, [3, 3, 3], 100, stem="cifar", widths=(16, 32, 64))
    T._randomise_bn(tmodel)
    path = tmp_path / "resnet20_100.safetensors"
    safetensors_numpy.save_file(_numpy_state(tmodel), str(path))

    tinycnn.manual_seed(3)
    model = M.create_model("resnet20", num_classes=5, weights=path)
    assert model.fc.weight.shape == (64, 5)
    # Everything but the head is the file's: features match torch's.
    model.eval()
    with tinycnn.no_grad():
        feats = model.avgpool(model.forward_features(tinycnn.Tensor(X))).data
    tmodel.eval()
    with torch.no_grad():
        h = tmodel.relu(tmodel.bn1(tmodel.conv1(torch.tensor(X.transpose(0, 3, 1, 2)))))
        for name in tmodel.stages:
            h = getattr(tmodel, name)(h)
    _close(feats, h.mean((2, 3)).numpy())

    # Same classes: loading the head is not skipped; another model gets the same.
    result = load_weights(M.resnet20(num_classes=5), path, reset_head=True)
    assert result.reset_keys == ["fc.weight", "fc.bias"]
    with pytest.raises(ValueError, match=r"fc\.weight: expected shape \(5, 64\)"):
        load_weights(M.resnet20(num_classes=5), path)


# ------------------------------------------------------------ ours -> torch
@pytest.mark.parametrize("factory, twin", [
    (lambda: M.resnet20(num_classes=10, se=True),
     lambda T: T.TorchResNet(T.TorchBasicBlock, [3, 3, 3], 10, stem="cifar", widths=(16, 32, 64), se=True)),
    (lambda: M.xception_small(num_classes=10), lambda T: T.TorchSmallXception(10)),
], ids=["resnet20_se", "xception_small"])
def test_to_torch_loads_into_plain_torch_twin(torch_twins, tmp_path, factory, twin):
    torch, T = torch_twins
    from safetensors.torch import load_file

    import tinycnn.export
    tinycnn.manual_seed(0)
    model = _randomise(factory())
    path = tinycnn.export.to_torch(model, tmp_path / "model.safetensors")
    tmodel = twin(T)
    tmodel.load_state_dict(load_file(path), strict=True)
    _close(_torch_logits(torch, tmodel, X), _logits(model, X))


def test_to_torch_round_trip_without_torch(tmp_path):
    import tinycnn.export
    tinycnn.manual_seed(0)
    model = _randomise(M.resnet20(num_classes=10, se=True))
    path = tinycnn.export.to_torch(model, tmp_path / "r.safetensors")
    state = read_state_dict(path)
    assert state["conv1.weight"].shape == (16, 3, 3, 3)                # OIHW
    assert state["layer1.0.se.fc1.weight"].shape == (1, 16, 1, 1)     # timm's 1x1 conv
    assert state["fc.weight"].shape == (10, 64)                       # (out, in)
    assert state["bn1.num_batches_tracked"].dtype == np.int64 and state["bn1.num_batches_tracked"].shape == ()
    fresh = M.resnet20(num_classes=10, se=True)
    load_weights(fresh, path)
    _unchanged(fresh, model.state_dict())
    np.testing.assert_array_equal(_logits(fresh, X), _logits(model, X))


def test_tinycnn_save_npz_is_read_in_our_layout(tmp_path):
    tinycnn.manual_seed(0)
    model = _randomise(M.resnet20(num_classes=10))
    tinycnn.save(model.state_dict(), tmp_path / "ours.npz")
    fresh = M.create_model("resnet20", num_classes=10, weights=tmp_path / "ours.npz")
    _unchanged(fresh, model.state_dict())


def test_depthwise_layout_round_trip():
    dw = nn.DepthwiseConv2d(3, 3, depth_multiplier=2)
    state = torch_state_dict(nn.Sequential(dw))
    w = state["0.weight"]
    assert w.shape == (6, 1, 3, 3)
    # torch output channel c*M + m is input channel c with multiplier m
    np.testing.assert_array_equal(w[1 * 2 + 1, 0], dw.weight.data[:, :, 1, 1])
    other = nn.Sequential(nn.DepthwiseConv2d(3, 3, depth_multiplier=2))
    load_weights(other, state)
    np.testing.assert_array_equal(other[0].weight.data, dw.weight.data)


# ----------------------------------------------------------------- bad input
@pytest.fixture
def resnet20_file(tmp_path):
    import tinycnn.export
    tinycnn.manual_seed(0)
    return tinycnn.export.to_torch(_randomise(M.resnet20(num_classes=10)), tmp_path / "resnet20.safetensors")


def test_file_of_another_architecture_names_keys_and_changes_nothing(resnet20_file):
    model = M.xception_small(num_classes=10)
    before = model.state_dict()
    with pytest.raises(ValueError) as info:
        M.create_model("resnet32", num_classes=10, weights=resnet20_file)
    assert "resnet20.safetensors" in str(info.value) and "missing keys" in str(info.value)
    assert "layer1.3.conv1.weight" in str(info.value)
    with pytest.raises(ValueError, match=r"(?s)resnet20\.safetensors.*block1\.skip\.weight.*another architecture"):
        load_weights(model, resnet20_file)
    _unchanged(model, before)


def test_wrong_shape_names_key_and_shapes(resnet20_file):
    model = M.resnet20(num_classes=10, in_chans=1)
    before = model.state_dict()
    with pytest.raises(ValueError, match=r"conv1\.weight: expected shape \(16, 1, 3, 3\), got \(16, 3, 3, 3\)"):
        load_weights(model, resnet20_file)
    _unchanged(model, before)


def test_truncated_files_are_named(resnet20_file, tmp_path):
    data = open(resnet20_file, "rb").read()
    cut = tmp_path / "cut.safetensors"
    cut.write_bytes(data[: len(data) // 2])
    np.savez(tmp_path / "whole.npz", **read_state_dict(resnet20_file))
    npz = (tmp_path / "whole.npz").read_bytes()
    (tmp_path / "cut.npz").write_bytes(npz[: len(npz) // 2])
    model = M.resnet20(num_classes=10)
    before = model.state_dict()
    for name in ("cut.safetensors", "cut.npz"):
        with pytest.raises(ValueError, match=rf"{name}.*cannot be read"):
            load_weights(model, tmp_path / name)
    _unchanged(model, before)


def test_wrong_dtype_names_key(resnet20_file, tmp_path):
    state = read_state_dict(resnet20_file)
    state["layer2.0.conv1.weight"] = state["layer2.0.conv1.weight"].astype(np.int32)
    bad = tmp_path / "int.safetensors"
    safetensors_numpy.save_file(state, str(bad))
    model = M.resnet20(num_classes=10)
    before = model.state_dict()
    with pytest.raises(ValueError, match=r"layer2\.0\.conv1\.weight: expected a floating-point array, got dtype int32"):
        load_weights(model, bad)
    _unchanged(model, before)
    # float16 and float64 files are fine (converted to the model's dtype)
    state = read_state_dict(resnet20_file)
    safetensors_numpy.save_file({k: (v.astype(np.float64) if v.dtype == np.float32 else v)
                                 for k, v in state.items()}, str(tmp_path / "f64.safetensors"))
    load_weights(model, tmp_path / "f64.safetensors")
    assert model.conv1.weight.dtype == np.float32


def test_unknown_extension_and_missing_file(tmp_path):
    (tmp_path / "w.h5").write_bytes(b"x")
    with pytest.raises(ValueError, match=r"w\.h5.*unknown extension"):
        load_weights(M.resnet20(), tmp_path / "w.h5")
    with pytest.raises(FileNotFoundError, match="nothere"):
        load_weights(M.resnet20(), tmp_path / "nothere.safetensors")


# ------------------------------------------------------------- fine-tuning
def test_replace_head_freeze_and_param_groups():
    tinycnn.manual_seed(0)
    model = M.resnet20(num_classes=10)
    head = finetune.replace_head(model, 3)
    assert model.fc is head and head.weight.shape == (64, 3) and model.num_classes == 3
    assert finetune.stage_names(model) == ["conv1", "bn1", "relu", "layer1", "layer2", "layer3", "avgpool", "fc"]

    finetune.freeze(model)
    unfrozen = finetune.unfreeze(model, ["layer3", "fc"])
    assert unfrozen and all(n.startswith(("layer3.", "fc.")) for n in unfrozen)
    assert finetune.trainable_parameter_names(model) == unfrozen
    with pytest.raises(ValueError, match="layer9"):
        finetune.freeze(model, "layer9")

    groups = finetune.param_groups(model, {"fc": 0.5}, default_lr=0.1)
    assert [g["lr"] for g in groups] == [0.1, 0.5]
    assert sum(len(g["params"]) for g in groups) == len(unfrozen)

    before = model.state_dict()
    for opt in (optim.SGD(groups, lr=1.0), optim.Adam(groups, lr=1.0), optim.AdamW(groups, lr=1.0)):
        assert [g["lr"] for g in opt.param_groups] == [0.1, 0.5]
    opt = optim.SGD(finetune.param_groups(model, {"fc": 0.5}, default_lr=0.1), lr=1.0)
    model.train()
    x = tinycnn.Tensor(X)
    loss = (model(x) ** 2).sum()
    loss.backward()
    grads = {n: None if p.grad is None else p.grad.copy() for n, p in model.named_parameters()}
    opt.step()
    after = model.state_dict()
    for name, _ in model.named_parameters():
        if name.startswith(("layer3.", "fc.")):
            lr = 0.5 if name.startswith("fc.") else 0.1
            np.testing.assert_allclose(after[name], before[name] - lr * grads[name], rtol=1e-6, atol=1e-7)
        else:
            assert grads[name] is None, name
            np.testing.assert_array_equal(after[name], before[name], err_msg=name)


def test_freeze_bn_keeps_running_statistics():
    model = M.resnet20(num_classes=10)
    finetune.freeze_bn(model, "layer1")
    before = model.layer1[0].bn1.running_mean.copy()
    model(tinycnn.Tensor(X))
    np.testing.assert_array_equal(model.layer1[0].bn1.running_mean, before)
    assert not np.array_equal(model.layer2[0].bn1.running_mean, 0)


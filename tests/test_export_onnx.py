"""ONNX export: the graph passes onnx.checker, uses only standard NCHW ops,
and onnxruntime's outputs equal ours (rtol 1e-4) for a ResNet, an SE-ResNet
and the small Xception, with BatchNorm folded and not folded."""

import numpy as np
import pytest

import tinycnn
import tinycnn.models as M
from tinycnn import nn

from _helpers import randomise_batchnorm

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")
export = pytest.importorskip("tinycnn.export")

ALLOWED = {"Conv", "BatchNormalization", "Relu", "LeakyRelu", "Sigmoid", "Tanh", "MaxPool", "AveragePool",
           "GlobalAveragePool", "Flatten", "Transpose", "Add", "Mul", "Gemm"}


def _randomise(model, seed=0):
    return randomise_batchnorm(model, seed).eval()


def _run(path, x):
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session.run(None, {"input": x.transpose(0, 3, 1, 2)})[0]


def _ours(model, x):
    with tinycnn.no_grad():
        return model(tinycnn.Tensor(x)).data


def _check(model, tmp_path, shape=(2, 32, 32, 3), batch=3, fold_bn=True):
    path = tmp_path / "model.onnx"
    proto = export.to_onnx(model, path, shape, fold_bn=fold_bn)
    onnx.checker.check_model(onnx.load(str(path)), full_check=True)
    ops = [n.op_type for n in proto.graph.node]
    assert set(ops) <= ALLOWED, set(ops) - ALLOWED
    assert ("BatchNormalization" in ops) != fold_bn
    # The batch size is symbolic: run another one than exported with.
    x = np.random.default_rng(1).standard_normal((batch, *shape[1:])).astype(np.float32)
    want = _ours(model, x)
    got = _run(path, x)
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4 * float(np.abs(want).max()))
    return ops


@pytest.mark.parametrize("fold_bn", [True, False])
def test_resnet20_matches_onnxruntime(tmp_path, fold_bn):
    tinycnn.manual_seed(0)
    ops = _check(_randomise(M.resnet20(num_classes=10)), tmp_path, fold_bn=fold_bn)
    assert ops.count("Add") == 9 and ops[-1] == "Gemm"


def test_imagenet_stem_resnet18_with_maxpool(tmp_path):
    tinycnn.manual_seed(0)
    ops = _check(_randomise(M.resnet18(num_classes=10)), tmp_path, shape=(1, 32, 32, 3), batch=1)
    assert ops.count("MaxPool") == 1


def test_se_resnet18_matches_onnxruntime(tmp_path):
    tinycnn.manual_seed(0)
    ops = _check(_randomise(M.se_resnet18(num_classes=10, stem="cifar")), tmp_path)
    assert ops.count("Sigmoid") == 8 and ops.count("Mul") == 8


def test_xception_small_depthwise_as_grouped_conv(tmp_path):
    tinycnn.manual_seed(0)
    model = _randomise(M.xception_small(num_classes=10))
    _check(model, tmp_path, batch=2)
    proto = onnx.load(str(tmp_path / "model.onnx"))
    groups = [a.i for n in proto.graph.node if n.op_type == "Conv" for a in n.attribute if a.name == "group"]
    separable = [m for m in model.modules() if isinstance(m, nn.SeparableConv2d)]
    # every depthwise convolution is a Conv with one group per channel
    assert sorted(g for g in groups if g > 1) == sorted(m.conv1.channels for m in separable)


def test_small_sequential_with_pools_flatten_and_dense(tmp_path):
    tinycnn.manual_seed(0)
    model = _randomise(nn.Sequential(
        nn.Conv2d(3, 8, 3, padding="same"), nn.BatchNorm2d(8), nn.LeakyReLU(0.2),
        nn.AvgPool2d(3, 2, 1), nn.DepthwiseConv2d(8, 3, padding=1, depth_multiplier=2, bias=True),
        nn.Tanh(), nn.MaxPool2d(2), nn.Dropout(0.5), nn.Flatten(), nn.Linear(16 * 4 * 4, 5), nn.Sigmoid(),
    ))
    ops = _check(model, tmp_path, shape=(2, 16, 16, 3))
    assert "AveragePool" in ops and "Transpose" in ops   # ours flattens NHWC: transposed first


def test_refuses_unknown_modules_and_nchw_shapes(tmp_path):
    class Custom(nn.Module):
        def forward(self, x):
            return x

    with pytest.raises(TypeError, match=r"cannot export Custom at '1'"):
        export.to_onnx(nn.Sequential(nn.ReLU(), Custom()), tmp_path / "c.onnx", (1, 8, 8, 3))
    with pytest.raises(ValueError, match=r"\(N, H, W, C\), not NCHW"):
        export.to_onnx(M.resnet20(), tmp_path / "r.onnx", (1, 3, 32, 32))
    assert not (tmp_path / "c.onnx").exists() and not (tmp_path / "r.onnx").exists()

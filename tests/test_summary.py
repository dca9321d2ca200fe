"""tinycnn.summary: per-layer output shapes, parameters and MACs, with totals."""

import numpy as np
import pytest

import tinycnn
import tinycnn.models as M
from tinycnn import nn


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    before = tinycnn.get_num_threads()
    tinycnn.set_num_threads(1)
    yield
    tinycnn.set_num_threads(before)


def _row(result, name):
    rows = [layer for layer in result.layers if layer.name == name]
    assert rows, f"no row for {name}"
    return rows[0]


def test_resnet18_summary_shapes_parameters_and_macs():
    model = M.resnet18(num_classes=10)
    result = tinycnn.summary(model, (2, 64, 64, 3))
    assert result.total_params == model.num_parameters() == 11_181_642
    # Each module's parameters, counted once, add up to the total.
    assert sum(layer.params for layer in result.layers) == result.total_params
    assert result.input_shape == (2, 64, 64, 3) and result.output_shape == (2, 10)

    conv1 = _row(result, "conv1")  # 7x7 stride 2, 3 -> 64 maps: 32x32 outputs per image
    assert conv1.type == "Conv2d" and conv1.output_shape == (2, 32, 32, 64)
    assert conv1.params == 7 * 7 * 3 * 64
    assert conv1.macs == 2 * 32 * 32 * 64 * (7 * 7 * 3)
    assert _row(result, "maxpool").output_shape == (2, 16, 16, 64)
    assert _row(result, "maxpool").macs == 0
    down = _row(result, "layer2.0.downsample.0")  # 1x1 stride 2, 64 -> 128
    assert down.output_shape == (2, 8, 8, 128) and down.macs == 2 * 8 * 8 * 128 * 64
    assert _row(result, "layer4.1.conv2").output_shape == (2, 2, 2, 512)
    fc = _row(result, "fc")
    assert fc.output_shape == (2, 10) and fc.params == 512 * 10 + 10 and fc.macs == 2 * 512 * 10
    # Containers are not rows; leaves are, in call order.
    names = [layer.name for layer in result.layers]
    assert "layer1" not in names and "layer1.0" not in names
    assert names[:4] == ["conv1", "bn1", "relu", "maxpool"] and names[-1] == "fc"

    table = str(result)
    for text in ("conv1 (Conv2d)", "(2, 32, 32, 64)", "Total params: 11,181,642", "Total MACs:",
                 f"{result.total_macs:,}"):
        assert text in table


def test_depthwise_macs_and_defaults_to_a_batch_of_one():
    model = M.xception_small(num_classes=10)
    result = tinycnn.summary(model, (32, 32, 3))
    assert result.input_shape == (1, 32, 32, 3)
    assert result.total_params == model.num_parameters() == 1_883_066
    depthwise = _row(result, "block1.rep.0.conv1")  # 3x3 depthwise over 32 maps at 32x32
    assert depthwise.type == "DepthwiseConv2d" and depthwise.output_shape == (1, 32, 32, 32)
    assert depthwise.macs == 32 * 32 * 32 * 9
    assert _row(result, "block1.rep.5").output_shape == (1, 16, 16, 64)  # the strided block's max-pool
    assert _row(result, "conv4.pointwise").output_shape == (1, 2, 2, 768)


def test_summary_leaves_the_model_as_it_was():
    model = M.resnet20(num_classes=10)
    model.layer2.train(False)  # a mixed mode must survive too
    before = model.state_dict()
    printed = []
    result = tinycnn.summary(model, (4, 16, 16, 3), print_fn=printed.append)
    assert printed == [str(result)]
    for key, value in model.state_dict().items():  # no running statistics updated
        np.testing.assert_array_equal(value, before[key])
    assert model.training and model.layer1.training and not model.layer2.training
    assert all("forward" not in m.__dict__ for m in model.modules())


def test_summary_restores_forward_when_the_model_fails():
    model = M.resnet20(num_classes=10)
    with pytest.raises(ValueError, match=r"\(N, H, W, C\)"):
        tinycnn.summary(model, (1, 3, 32, 32))
    assert all("forward" not in m.__dict__ for m in model.modules())
    assert model.training

    class Broken(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(3, 4, 3)
            self.bn = nn.BatchNorm2d(5)

        def forward(self, x):
            return self.bn(self.conv(x))

    broken = Broken()
    with pytest.raises(ValueError, match="BatchNorm2d"):
        tinycnn.summary(broken, (8, 8, 3))
    assert "forward" not in broken.conv.__dict__ and "forward" not in broken.bn.__dict__
    with tinycnn.no_grad():
        assert broken.conv(np.zeros((1, 8, 8, 3), np.float32)).shape == (1, 6, 6, 4)


def test_summary_checks_its_arguments():
    with pytest.raises(TypeError, match="Module"):
        tinycnn.summary(object(), (1, 8, 8, 3))
    with pytest.raises(ValueError, match="input_shape"):
        tinycnn.summary(M.resnet20(num_classes=10), (8, 8))

"""ResNet (He et al. 2015) in torchvision's v1.5 layout, and the classic CIFAR ResNets.

State-dict keys are torchvision's (``conv1``, ``bn1``, ``layer1.0.conv1``,
``layer1.0.downsample.0``, ``fc``), so its published weights map one to one
(after converting OIHW convolutions to HWIO and (out, in) dense weights to
(in, out)).  ``se=True`` puts a squeeze-and-excitation unit (keys
``layerX.Y.se.fc1``/``fc2``, as timm) in every block after its last
BatchNorm, before the residual addition.

Each module's ``fuse_chains`` names its convolution -> BatchNorm (-> ReLU)
chains; at inference each runs as one convolution with the BatchNorm folded
in (``tinycnn.nn.fusion``, applied by ``eval()``).
"""

from tinycnn import nn

from ._common import check_input, check_se_reduction, init_weights
from .registry import register_model
from .se import SEModule


def conv3x3(in_planes, out_planes, stride=1):
    """3x3 convolution with padding 1, no bias (a BatchNorm follows)."""
    return nn.Conv2d(in_planes, out_planes, 3, stride=stride, padding=1, bias=False)


def conv1x1(in_planes, out_planes, stride=1):
    """1x1 convolution, no bias."""
    return nn.Conv2d(in_planes, out_planes, 1, stride=stride, bias=False)


class BasicBlock(nn.Module):
    """Two 3x3 convolutions and a shortcut (ResNet-18/34 and the CIFAR ResNets)."""

    expansion = 1
    fuse_chains = (("conv1", "bn1", "relu"), ("conv2", "bn2"))

    def __init__(self, inplanes, planes, stride=1, downsample=None, se_reduction=None):
        super().__init__()
        self.conv1 = conv3x3(inplanes, planes, stride)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU()
        self.conv2 = conv3x3(planes, planes)
        self.bn2 = nn.BatchNorm2d(planes)
        self.se = SEModule(planes, se_reduction) if se_reduction else None
        self.downsample = downsample
        self.stride = stride

    def forward(self, x):
        identity = x

        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        if self.se is not None:
            out = self.se(out)

        if self.downsample is not None:
            identity = self.downsample(x)

        out = out + identity
        out = self.relu(out)
        return out

    def zero_init_last(self):
        """Zero the last BN's gamma: the block starts as its shortcut."""
        nn.init.zeros_(self.bn2.weight)


class Bottleneck(nn.Module):
    """1x1 reduce, 3x3 (carrying the stride: v1.5), 1x1 expand by 4, and a shortcut."""

    expansion = 4
    fuse_chains = (("conv1", "bn1", "relu"), ("conv2", "bn2", "relu"), ("conv3", "bn3"))

    def __init__(self, inplanes, planes, stride=1, downsample=None, se_reduction=None):
        super().__init__()
        width = planes
        self.conv1 = conv1x1(inplanes, width)
        self.bn1 = nn.BatchNorm2d(width)
        self.conv2 = conv3x3(width, width, stride)
        self.bn2 = nn.BatchNorm2d(width)
        self.conv3 = conv1x1(width, planes * self.expansion)
        self.bn3 = nn.BatchNorm2d(planes * self.expansion)
        self.relu = nn.ReLU()
        self.se = SEModule(planes * self.expansion, se_reduction) if se_reduction else None
        self.downsample = downsample
        self.stride = stride

    def forward(self, x):
        identity = x

        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        if self.se is not None:
            out = self.se(out)

        if self.downsample is not None:
            identity = self.downsample(x)

        out = out + identity
        out = self.relu(out)
        return out

    def zero_init_last(self):
        """Zero the last BN's gamma: the block starts as its shortcut."""
        nn.init.zeros_(self.bn3.weight)


class ResNet(nn.Module):
    """A stem, stages of residual blocks (the first at stride 1, each later
    one halving the resolution), global average pooling and a dense layer.

    ``block``: BasicBlock or Bottleneck; ``layers``: blocks per stage;
    ``widths``: each stage's ``planes`` (the block's output is
    ``planes * block.expansion``), the stem has ``widths[0]`` maps.
    ``stem='imagenet'``: 7x7 stride-2 convolution, BN, ReLU, 3x3 stride-2
    max-pool.  ``stem='cifar'``: 3x3 stride-1 convolution, BN, ReLU, no pool.
    ``se``: a squeeze-and-excitation unit (``se_reduction``) in every block.
    ``zero_init_residual``: zero the last BN gamma of every block, so each
    starts as the identity.  Input (N, H, W, in_chans).
    """

    fuse_chains = (("conv1", "bn1", "relu"),)

    def __init__(self, block, layers, num_classes=1000, in_chans=3, stem="imagenet",
                 widths=(64, 128, 256, 512), se=False, se_reduction=16, zero_init_residual=False):
        super().__init__()
        if stem not in ("imagenet", "cifar"):
            raise ValueError(f"ResNet: stem must be 'imagenet' or 'cifar', got {stem!r}")
        if len(layers) != len(widths) or not layers:
            raise ValueError(f"ResNet: layers {list(layers)} and widths {list(widths)} must have one entry per stage")
        self.num_classes, self.in_chans, self.stem = num_classes, in_chans, stem
        self._se_reduction = check_se_reduction("ResNet", se, se_reduction)
        self.inplanes = widths[0]

        if stem == "imagenet":
            self.conv1 = nn.Conv2d(in_chans, self.inplanes, 7, stride=2, padding=3, bias=False)
        else:
            self.conv1 = conv3x3(in_chans, self.inplanes)
        self.bn1 = nn.BatchNorm2d(self.inplanes)
        self.relu = nn.ReLU()
        self.maxpool = nn.MaxPool2d(3, stride=2, padding=1) if stem == "imagenet" else None

        self.stage_names = []
        for i, (planes, blocks) in enumerate(zip(widths, layers)):
            name = f"layer{i + 1}"
            self.add_module(name, self._make_layer(block, planes, blocks, stride=1 if i == 0 else 2))
            self.stage_names.append(name)

        self.num_features = widths[-1] * block.expansion
        self.avgpool = nn.GlobalAvgPool2d()
        self.fc = nn.Linear(self.num_features, num_classes)

        init_weights(self)
        if zero_init_residual:
            for module in self.modules():
                if isinstance(module, (BasicBlock, Bottleneck)):
                    module.zero_init_last()

    def _make_layer(self, block, planes, blocks, stride=1):
        downsample = None
        if stride != 1 or self.inplanes != planes * block.expansion:
            downsample = nn.Sequential(
                conv1x1(self.inplanes, planes * block.expansion, stride),
                nn.BatchNorm2d(planes * block.expansion),
            )
        layers = [block(self.inplanes, planes, stride, downsample, self._se_reduction)]
        self.inplanes = planes * block.expansion
        for _ in range(1, blocks):
            layers.append(block(self.inplanes, planes, se_reduction=self._se_reduction))
        return nn.Sequential(*layers)

    def forward_features(self, x):
        """(N, H, W, in_chans) -> the last stage's maps (N, h, w, num_features)."""
        check_input(self, x, self.in_chans)
        x = self.relu(self.bn1(self.conv1(x)))
        if self.maxpool is not None:
            x = self.maxpool(x)
        for name in self.stage_names:
            x = getattr(self, name)(x)
        return x

    def forward_head(self, x):
        """Feature maps -> logits (N, num_classes)."""
        x = self.avgpool(x)
        return self.fc(x)

    def forward(self, x):
        return self.forward_head(self.forward_features(x))


def _cifar_resnet(depth, **kwargs):
    """He et al.'s CIFAR ResNet of ``depth = 6n + 2`` layers: a 3x3 stem of
    16 maps, three stages of n BasicBlocks (16, 32, 64 maps), 1x1 stride-2
    convolution + BN projections where the width changes (option B)."""
    n = (depth - 2) // 6
    return ResNet(BasicBlock, [n, n, n], stem="cifar", widths=(16, 32, 64), **kwargs)


@register_model
def resnet18(**kwargs):
    """ResNet-18: 11,689,512 parameters at 1000 classes (11,173,962 with stem='cifar' at 10)."""
    return ResNet(BasicBlock, [2, 2, 2, 2], **kwargs)


@register_model
def resnet34(**kwargs):
    """ResNet-34: 21,797,672 parameters at 1000 classes (21,282,122 with stem='cifar' at 10)."""
    return ResNet(BasicBlock, [3, 4, 6, 3], **kwargs)


@register_model
def resnet50(**kwargs):
    """ResNet-50 (v1.5): 25,557,032 parameters at 1000 classes."""
    return ResNet(Bottleneck, [3, 4, 6, 3], **kwargs)


@register_model
def resnet101(**kwargs):
    """ResNet-101 (v1.5): 44,549,160 parameters at 1000 classes."""
    return ResNet(Bottleneck, [3, 4, 23, 3], **kwargs)


@register_model
def resnet152(**kwargs):
    """ResNet-152 (v1.5): 60,192,808 parameters at 1000 classes."""
    return ResNet(Bottleneck, [3, 8, 36, 3], **kwargs)


@register_model
def resnet20(**kwargs):
    """CIFAR ResNet-20: 272,474 parameters at 10 classes."""
    return _cifar_resnet(20, **kwargs)


@register_model
def resnet32(**kwargs):
    """CIFAR ResNet-32: 466,906 parameters at 10 classes."""
    return _cifar_resnet(32, **kwargs)


@register_model
def resnet44(**kwargs):
    """CIFAR ResNet-44: 661,338 parameters at 10 classes."""
    return _cifar_resnet(44, **kwargs)


@register_model
def resnet56(**kwargs):
    """CIFAR ResNet-56: 855,770 parameters at 10 classes."""
    return _cifar_resnet(56, **kwargs)


@register_model
def resnet110(**kwargs):
    """CIFAR ResNet-110: 1,730,714 parameters at 10 classes."""
    return _cifar_resnet(110, **kwargs)

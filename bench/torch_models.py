"""Plain-PyTorch twins of the benchmarked models (torchvision is not needed).

Adapted from tests/test_models_torch.py: torchvision's ResNet layout, timm's
SE unit and Xception layout, the same widths and depths as tinycnn's models.
Imported only when PyTorch is installed and wanted (``bench.models``).
"""

import torch
from torch import nn as tnn


def build(name, num_classes=10):
    """The torch twin of the tinycnn model ``name`` (as ``bench.models.MODELS`` builds it)."""
    if name == "resnet18":
        return TorchResNet(TorchBasicBlock, [2, 2, 2, 2], num_classes, stem="cifar")
    if name == "resnet34":
        return TorchResNet(TorchBasicBlock, [3, 4, 6, 3], num_classes, stem="cifar")
    if name == "resnet20":
        return TorchResNet(TorchBasicBlock, [3, 3, 3], num_classes, stem="cifar", widths=(16, 32, 64))
    if name == "se_resnet18":
        return TorchResNet(TorchBasicBlock, [2, 2, 2, 2], num_classes, stem="cifar", se=True)
    if name == "xception_small":
        return TorchSmallXception(num_classes)
    raise ValueError(f"no torch twin for {name!r}")


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

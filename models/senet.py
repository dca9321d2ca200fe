"""SE-ResNets (Hu et al. 2017): ResNets with a squeeze-and-excitation unit
(reduction 16) in every block after its last BN, before the residual
addition.  Keys as timm's ``seresnet*`` (``layer1.0.se.fc1``)."""

from .registry import register_model
from .resnet import BasicBlock, Bottleneck, ResNet


@register_model
def se_resnet18(**kwargs):
    """SE-ResNet-18: 11,778,592 parameters at 1000 classes."""
    return ResNet(BasicBlock, [2, 2, 2, 2], se=True, **kwargs)


@register_model
def se_resnet34(**kwargs):
    """SE-ResNet-34: 21,958,868 parameters at 1000 classes."""
    return ResNet(BasicBlock, [3, 4, 6, 3], se=True, **kwargs)


@register_model
def se_resnet50(**kwargs):
    """SE-ResNet-50: 28,088,024 parameters at 1000 classes."""
    return ResNet(Bottleneck, [3, 4, 6, 3], se=True, **kwargs)


@register_model
def se_resnet101(**kwargs):
    """SE-ResNet-101: 49,326,872 parameters at 1000 classes."""
    return ResNet(Bottleneck, [3, 4, 23, 3], se=True, **kwargs)


@register_model
def se_resnet152(**kwargs):
    """SE-ResNet-152: 66,821,848 parameters at 1000 classes."""
    return ResNet(Bottleneck, [3, 8, 36, 3], se=True, **kwargs)

"""Hand-written networks (installed as ``tinycnn.models``).

Built from ``tinycnn.nn`` and ``tinycnn.functional`` only, channels-last
(N, H, W, C).  ``list_models()`` names them; ``create_model(name,
num_classes=..., **kwargs)`` builds one; the factories are exported here
too (``tinycnn.models.resnet18(num_classes=10, stem='cifar')``).  Every
model has ``forward_features(x)`` (the last feature maps),
``forward_head(x)`` (pool and classify) and
``forward(x) = forward_head(forward_features(x))``.

As in timm, the name ``tinycnn.models.xception`` is the factory; the
module is ``import tinycnn.models.xception`` / ``sys.modules``.
"""

from .registry import create_model, list_models, register_model
from .resnet import (
    BasicBlock, Bottleneck, ResNet, resnet18, resnet20, resnet32, resnet34, resnet44, resnet50, resnet56,
    resnet101, resnet110, resnet152,
)
from .se import SEModule
from .senet import se_resnet18, se_resnet34, se_resnet50, se_resnet101, se_resnet152
from .xception import Block as XceptionBlock
from .xception import Xception, xception, xception_small

__all__ = [
    "BasicBlock", "Bottleneck", "ResNet", "SEModule", "Xception", "XceptionBlock", "create_model",
    "list_models", "register_model", "resnet18", "resnet20", "resnet32", "resnet34", "resnet44", "resnet50",
    "resnet56", "resnet101", "resnet110", "resnet152", "se_resnet18", "se_resnet34", "se_resnet50",
    "se_resnet101", "se_resnet152", "xception", "xception_small",
]

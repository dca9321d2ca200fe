"""Fine-tuning helpers: a new classifier, frozen and unfrozen stages, and
parameter groups with their own learning rates.

Stages are named by the model's top-level children (``conv1``, ``bn1``,
``layer1`` ... ``layer4``, ``fc`` for a ResNet; ``conv1`` ... ``block12``,
``conv3``, ``fc`` for Xception) or any dotted prefix (``layer4.1``).  A
prefix matches a parameter name equal to it or starting with it plus a dot,
so ``layer1`` never matches ``layer10``.

Typical transfer learning::

    model = create_model("resnet18", weights="resnet18.safetensors", num_classes=10)
    freeze(model)                          # everything ...
    unfreeze(model, ["layer4", "fc"])      # ... but the last stage and the head
    opt = SGD(param_groups(model, {"fc": 1e-2}, default_lr=1e-3), lr=1e-3, momentum=0.9)

Frozen parameters (``requires_grad=False``) get no gradient and are left out
of :func:`param_groups`.  BatchNorm layers in frozen stages still update
their running statistics in training mode; call :func:`freeze_bn` to keep
them in eval mode.
"""

import numbers

from . import nn
from .weights import head_name


def stage_names(model):
    """The model's top-level children in order: the prefixes for freezing."""
    return [name for name, _ in model.named_children()]


def _prefixes(model, prefixes, owner):
    if prefixes is None:
        return None
    if isinstance(prefixes, str):
        prefixes = [prefixes]
    prefixes = list(prefixes)
    names = [n for n, _ in model.named_parameters()]
    for p in prefixes:
        if not isinstance(p, str):
            raise TypeError(f"{owner}: prefixes must be strings, got {type(p).__name__}")
        if not any(_matches(n, p) for n in names):
            raise ValueError(f"{owner}: no parameter of {type(model).__name__} is under {p!r} "
                             f"(stages: {', '.join(stage_names(model))})")
    return prefixes


def _matches(name, prefix):
    return prefix == "" or name == prefix or name.startswith(prefix + ".")


def _set_requires_grad(model, prefixes, flag, owner):
    prefixes = _prefixes(model, prefixes, owner)
    changed = []
    for name, param in model.named_parameters():
        if prefixes is None or any(_matches(name, p) for p in prefixes):
            param.requires_grad = flag
            if not flag:
                param.grad = None
            changed.append(name)
    return changed


def freeze(model, prefixes=None):
    """Stop training the parameters under ``prefixes`` (a name or a list;
    None: all of them).  Returns the names frozen."""
    return _set_requires_grad(model, prefixes, False, "freeze")


def unfreeze(model, prefixes=None):
    """Train the parameters under ``prefixes`` again (None: all).  Returns the names unfrozen."""
    return _set_requires_grad(model, prefixes, True, "unfreeze")


def freeze_bn(model, prefixes=None):
    """Put the BatchNorm layers under ``prefixes`` (None: all) in eval mode
    so their running statistics stay fixed; ``model.train()`` undoes it."""
    prefixes = _prefixes(model, prefixes, "freeze_bn")
    for name, module in model.named_modules():
        if isinstance(module, nn.BatchNorm2d) and (prefixes is None or any(_matches(name, p) for p in prefixes)):
            object.__setattr__(module, "training", False)
    return model


def trainable_parameter_names(model):
    """Names of the parameters with ``requires_grad=True``."""
    return [n for n, p in model.named_parameters() if p.requires_grad]


def replace_head(model, num_classes):
    """Put a freshly initialised classifier with ``num_classes`` outputs in
    place of the model's (same input features and dtype); returns it."""
    if isinstance(num_classes, bool) or not isinstance(num_classes, numbers.Integral) or num_classes < 1:
        raise ValueError(f"replace_head: num_classes must be a positive int, got {num_classes!r}")
    name = head_name(model)
    old = getattr(model, name)
    new = nn.Linear(old.in_features, int(num_classes), bias=old.bias is not None, dtype=old.weight.dtype)
    setattr(model, name, new)
    if hasattr(model, "num_classes"):
        model.num_classes = int(num_classes)
    return new


def param_groups(model, lrs=None, default_lr=None, trainable_only=True, **group_options):
    """Parameter groups for any tinycnn optimizer, one per learning rate.

    ``lrs`` maps prefixes to learning rates (``{'fc': 1e-2, 'layer4':
    1e-3}``); a parameter takes the lr of its longest matching prefix, or
    ``default_lr`` (None: the optimizer's own ``lr``).  Frozen parameters
    are left out when ``trainable_only``.  ``group_options`` (e.g.
    ``weight_decay=0``) go into every group.  Empty groups are dropped;
    groups come in the order of their first parameter.
    """
    lrs = dict(lrs or {})
    _prefixes(model, list(lrs), "param_groups")
    for prefix, lr in lrs.items():
        if isinstance(lr, bool) or not isinstance(lr, numbers.Real) or lr < 0:
            raise ValueError(f"param_groups: lr for {prefix!r} must be a number >= 0, got {lr!r}")
    groups = {}
    for name, param in model.named_parameters():
        if trainable_only and not param.requires_grad:
            continue
        matching = [p for p in lrs if _matches(name, p)]
        key = max(matching, key=len) if matching else None
        if key not in groups:
            group = dict(group_options, params=[], names=[])
            lr = lrs[key] if key is not None else default_lr
            if lr is not None:
                group["lr"] = lr
            groups[key] = group
        groups[key]["params"].append(param)
        groups[key]["names"].append(name)
    if not groups:
        raise ValueError(f"param_groups: {type(model).__name__} has no trainable parameters (all frozen?)")
    out = []
    for group in groups.values():
        group.pop("names")
        out.append(group)
    return out


__all__ = [
    "freeze", "freeze_bn", "param_groups", "replace_head", "stage_names", "trainable_parameter_names", "unfreeze",
]

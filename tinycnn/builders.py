"""What a training run is made of, built from its settings.

A run's settings (``config``, see :data:`tinycnn.checkpoint.DEFAULTS`) name a
dataset, a model, an optimizer and an augmentation; its ``meta`` records what
the trained model needs to be rebuilt and fed (model name and kwargs, class
names, image shape, pixel scale, per-channel mean and std).  The functions
here turn those into datasets, transforms, a model and an optimizer with its
schedule; :class:`tinycnn.train.Trainer` puts them together.
"""

import numpy as np

from . import nn, optim
from .checkpoint import load_checkpoint
from .data import Compose, Normalize, RandomCrop, RandomHorizontalFlip, ToFloat, get_dataset
from .models import create_model

# ------------------------------------------------------------------ data


def _subset(dataset, n, seed):
    if n is None or n >= len(dataset):
        return dataset
    order = np.random.default_rng(seed).permutation(len(dataset))[:n]
    return dataset.subset(np.sort(order))


def load_datasets(dataset, split=None, train_subset=None, test_subset=None):
    """``(train, test)`` ArrayDatasets for a name or path.

    ``split=N``: the source has no usable train split (e.g. a folder holding only
    MNIST's t10k files): its test split is shuffled with a fixed seed (0) and the
    first N images train, the rest test.  ``train_subset``/``test_subset`` keep
    that many images (a fixed random choice, independent of the training seed).
    """
    if split is not None:
        full = get_dataset(dataset, "test")
        if not 0 < split < len(full):
            raise ValueError(f"split must be between 1 and {len(full) - 1} (the source has {len(full)} images), "
                             f"got {split}")
        order = np.random.default_rng(0).permutation(len(full))
        train, test = full.subset(np.sort(order[:split])), full.subset(np.sort(order[split:]))
    else:
        train, test = get_dataset(dataset, "train"), get_dataset(dataset, "test")
    return _subset(train, train_subset, 1), _subset(test, test_subset, 2)


def pixel_scale(images):
    """1/255 for uint8 images, else 1."""
    return 1 / 255 if images.dtype == np.uint8 else 1.0


def channel_stats(dataset):
    """Per-channel mean and std of ``dataset.images`` after :func:`pixel_scale`."""
    x = dataset.images.astype(np.float64) * pixel_scale(dataset.images)
    mean = x.mean(axis=(0, 1, 2))
    std = np.maximum(x.std(axis=(0, 1, 2)), 1e-6)
    return [float(v) for v in mean], [float(v) for v in std]


def eval_transform(meta):
    return Compose([ToFloat(meta["scale"]), Normalize(meta["mean"], meta["std"])])


def train_transform(meta, augment):
    steps = [ToFloat(meta["scale"])]
    H, W, _ = meta["image_shape"]
    if augment in ("crop", "crop-flip"):
        steps.append(RandomCrop((H, W), padding=max(1, H // 8)))
    if augment == "crop-flip":
        steps.append(RandomHorizontalFlip())
    elif augment not in ("crop", "none"):
        raise ValueError(f"augment must be 'crop', 'crop-flip' or 'none', got {augment!r}")
    steps.append(Normalize(meta["mean"], meta["std"]))
    return Compose(steps)


# ------------------------------------------------------------------ model, optimizer


def build_model(meta, state=None):
    """The model ``meta`` describes, freshly initialised.  With ``state``
    (the state dict of a checkpoint, which may come from elsewhere), a
    ``meta`` that describes a model with far more parameters than ``state``
    holds (over twice as many, plus 2**20) is refused before they are
    allocated; a smaller mismatch is left to ``load_state_dict`` to list."""
    kwargs = dict(meta.get("model_kwargs") or {})
    kwargs.setdefault("in_chans", meta["image_shape"][2])
    if state is None:
        return create_model(meta["model"], num_classes=meta["num_classes"], **kwargs)
    held = sum(np.size(v) for v in state.values())
    try:
        with nn.parameter_budget(2 * held + 2**20):
            return create_model(meta["model"], num_classes=meta["num_classes"], **kwargs)
    except (TypeError, ValueError) as err:
        raise ValueError(f"the checkpoint's meta describes a model it cannot rebuild: {err} "
                         f"(its state holds {held} values)") from None


def model_from_checkpoint(path_or_ckpt):
    """``(model in eval mode, meta)`` rebuilt from a checkpoint (a path, or
    a dict returned by :func:`tinycnn.checkpoint.load_checkpoint`)."""
    source = "checkpoint" if isinstance(path_or_ckpt, dict) else path_or_ckpt
    ckpt = path_or_ckpt if isinstance(path_or_ckpt, dict) else load_checkpoint(path_or_ckpt)
    try:
        model = build_model(ckpt["meta"], ckpt["model"])
        model.load_state_dict(ckpt["model"])
    except ValueError as err:
        raise ValueError(f"{source}: {err}") from None
    model.eval()
    return model, ckpt["meta"]


def build_optimizer(model, config, steps_per_epoch):
    """``(optimizer, scheduler)``: the configured optimizer and a per-step
    cosine schedule after a linear warm-up of ``warmup_epochs``."""
    name = config["optimizer"]
    lr, wd = config["lr"], config["weight_decay"]
    if name == "sgd":
        opt = optim.SGD(model.parameters(), lr=lr, momentum=config["momentum"], weight_decay=wd,
                        nesterov=config["momentum"] > 0, exempt_bn_and_bias=True)
    elif name in ("adam", "adamw"):
        cls = optim.Adam if name == "adam" else optim.AdamW
        opt = cls(optim.param_groups_without_decay(model, wd), lr=lr)
    else:
        raise ValueError(f"optimizer must be 'sgd', 'adam' or 'adamw', got {name!r}")
    total = config["epochs"] * steps_per_epoch
    warmup = min(int(config["warmup_epochs"] * steps_per_epoch), total - 1)
    sched = optim.CosineAnnealingLR(opt, T_max=total, warmup_steps=max(warmup, 0))
    return opt, sched

"""A training run's settings and its checkpoint: written, read and checked.

A run is made of :data:`DEFAULTS` overridden by the user's settings;
:func:`check_config` is the one place those settings are checked, for a new
run and for one resumed from a checkpoint alike.

A checkpoint (``checkpoint.npz``) is the dict :func:`make_checkpoint` builds,
which :class:`tinycnn.train.Trainer` writes with :func:`tinycnn.save`.  It
may come from elsewhere.  Its SHA-256 proves only that it is whole, not who
made it, so :func:`load_checkpoint` checks its content against the format
below before anything is built from it: every field is present with the
right type and range, the model it describes is rebuilt without a path to
open (``weights`` is refused in its settings), and the image shape and class
count are bounded.  :func:`tinycnn.builders.build_model` bounds the rebuilt
model by the parameters the checkpoint actually holds.
Anything wrong raises ``ValueError`` naming the file and the field.
"""

import math
import numbers

import numpy as np

from . import limits, serialization
from .random import get_rng_state

CHECKPOINT_FORMAT = "tinycnn-checkpoint"
HISTORY_FIELDS = ("epoch", "train_loss", "train_acc", "test_loss", "test_acc", "lr", "seconds", "images_per_s")

DEFAULTS = dict(
    model="resnet20", model_kwargs={"se": True, "se_reduction": 4}, dataset="digits", split=None,
    epochs=15, batch_size=32, lr=0.1, optimizer="sgd", momentum=0.9, weight_decay=5e-4,
    warmup_epochs=1, augment="crop", seed=0, train_subset=None, test_subset=None,
)
OPTIMIZERS = ("sgd", "adam", "adamw")
AUGMENTS = ("crop", "crop-flip", "none")
_KEYS = ("format", "version", "config", "meta", "model", "optimizer", "scheduler", "rng", "epoch", "batch", "step",
         "loader", "partial", "history")


def _is_int(value):
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _is_real(value):
    return isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(value)


def _is_number(value):
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def _need(ok, name, expected, value):
    if not ok:
        shown = repr(value)
        raise ValueError(f"{name} must be {expected}, got {shown[:80]}{'...' if len(shown) > 80 else ''}")


def _check_model_kwargs(kwargs, name):
    """Keyword arguments of a model factory: str keys and plain values."""
    _need(kwargs is None or isinstance(kwargs, dict), name, "a dict", kwargs)
    for key, value in (kwargs or {}).items():
        _need(isinstance(key, str), f"{name} keys", "strings", key)
        plain = value is None or isinstance(value, (bool, str)) or _is_int(value) or _is_real(value)
        if isinstance(value, (list, tuple)):
            plain = all(_is_int(v) or _is_real(v) for v in value)
        _need(plain, f"{name}[{key!r}]", "a number, string, bool, None or a list of numbers", value)


def check_config(config):
    """Check a run's settings (a dict with every key of :data:`DEFAULTS`)."""
    c = config
    _check_model_kwargs(c["model_kwargs"], "model_kwargs")
    _need(isinstance(c["model"], str), "model", "a model name", c["model"])
    _need(isinstance(c["dataset"], str), "dataset", "a dataset name or path", c["dataset"])
    for key in ("epochs", "batch_size"):
        _need(_is_int(c[key]) and c[key] >= 1, key, "an int >= 1", c[key])
    for key in ("split", "train_subset", "test_subset"):
        _need(c[key] is None or (_is_int(c[key]) and c[key] >= 1), key, "None or an int >= 1", c[key])
    _need(_is_int(c["seed"]) and c["seed"] >= 0, "seed", "an int >= 0", c["seed"])
    _need(_is_real(c["lr"]) and c["lr"] > 0, "lr", "a finite number > 0", c["lr"])
    for key in ("momentum", "weight_decay", "warmup_epochs"):
        _need(_is_real(c[key]) and c[key] >= 0, key, "a finite number >= 0", c[key])
    _need(c["optimizer"] in OPTIMIZERS, "optimizer", " or ".join(map(repr, OPTIMIZERS)), c["optimizer"])
    _need(c["augment"] in AUGMENTS, "augment", " or ".join(map(repr, AUGMENTS)), c["augment"])


def check_meta(meta):
    """Check the description of a trained model a checkpoint carries."""
    _need(isinstance(meta, dict), "meta", "a dict", meta)
    missing = {"model", "model_kwargs", "dataset", "num_classes", "classes", "image_shape", "scale", "mean",
               "std"} - set(meta)
    _need(not missing, "meta", f"a dict with {sorted(missing)}", sorted(meta))
    _need(isinstance(meta["model"], str), "meta['model']", "a model name", meta["model"])
    _check_model_kwargs(meta["model_kwargs"], "meta['model_kwargs']")
    _need("weights" not in (meta["model_kwargs"] or {}), "meta['model_kwargs']",
          "free of 'weights' (a checkpoint holds its weights; it may not name a file to open)", meta["model_kwargs"])
    classes = meta["classes"]
    _need(isinstance(classes, list) and all(isinstance(c, (str, int)) for c in classes), "meta['classes']",
          "a list of class names", classes)
    _need(meta["num_classes"] == len(classes) and _is_int(meta["num_classes"]) and meta["num_classes"] >= 1,
          "meta['num_classes']", f"the number of classes listed ({len(classes)})", meta["num_classes"])
    shape = meta["image_shape"]
    _need(isinstance(shape, (list, tuple)) and len(shape) == 3 and all(_is_int(n) and n >= 1 for n in shape)
          and shape[0] * shape[1] <= limits.max_image_pixels and shape[2] <= 4096, "meta['image_shape']",
          f"[H, W, C] with H*W <= tinycnn.limits.max_image_pixels and C <= 4096", shape)
    _need(_is_real(meta["scale"]) and meta["scale"] > 0, "meta['scale']", "a finite number > 0", meta["scale"])
    for key in ("mean", "std"):
        values = meta[key]
        _need(isinstance(values, list) and len(values) == shape[2] and all(_is_real(v) for v in values)
              and (key == "mean" or all(v > 0 for v in values)), f"meta[{key!r}]",
              f"a list of {shape[2]} finite numbers" + (" > 0" if key == "std" else ""), values)


def check_checkpoint(ckpt):
    """Check everything a resumed run or a rebuilt model reads from ``ckpt``."""
    _need(isinstance(ckpt, dict) and ckpt.get("format") == CHECKPOINT_FORMAT, "the file",
          "a tinycnn training checkpoint", type(ckpt).__name__ if not isinstance(ckpt, dict) else ckpt.get("format"))
    missing = [k for k in _KEYS if k not in ckpt]
    _need(not missing, "the checkpoint", f"complete (it lacks {missing})", sorted(ckpt))
    _need(ckpt["version"] == 1, "the checkpoint's version", "1", ckpt["version"])
    config = ckpt["config"]
    _need(isinstance(config, dict) and set(config) == set(DEFAULTS), "config",
          f"a dict with the keys {sorted(DEFAULTS)}", sorted(config) if isinstance(config, dict) else config)
    check_config(config)
    check_meta(ckpt["meta"])
    model = ckpt["model"]
    _need(isinstance(model, dict) and all(isinstance(k, str) and isinstance(v, np.ndarray) for k, v in model.items()),
          "model", "a dict of names to arrays", model)
    for key in ("optimizer", "scheduler", "rng", "loader", "partial"):
        _need(isinstance(ckpt[key], dict), key, "a dict", ckpt[key])
    try:
        np.random.PCG64().state = ckpt["rng"]  # the format's own check, on a throw-away generator
    except (TypeError, ValueError, KeyError) as err:
        raise ValueError(f"rng must be a PCG64 generator state ({type(err).__name__}: {err})") from None
    for key in ("epoch", "batch", "step"):
        _need(_is_int(ckpt[key]) and ckpt[key] >= 0, key, "an int >= 0", ckpt[key])
    _need(ckpt["epoch"] <= config["epochs"], "epoch", f"at most the run's {config['epochs']} epochs", ckpt["epoch"])
    partial = ckpt["partial"]
    _need(set(partial) == {"loss", "correct", "seen", "seconds"} and all(_is_number(v) for v in partial.values()),
          "partial", "a dict of loss, correct, seen and seconds", partial)
    history = ckpt["history"]
    _need(isinstance(history, list) and all(isinstance(r, dict) and set(r) == set(HISTORY_FIELDS)
                                            and all(_is_number(r[k]) for k in HISTORY_FIELDS) for r in history),
          "history", f"a list of rows of {', '.join(HISTORY_FIELDS)}", history)


def make_checkpoint(*, config, meta, model, optimizer, scheduler, epoch, batch, step, loader_seed, partial,
                    history):
    """The checkpoint of a run at this point: everything :func:`check_checkpoint`
    checks, with the state of ``model``, ``optimizer`` and ``scheduler`` and
    tinycnn's RNG state as they are now.  ``epoch``/``batch`` are the next epoch
    and the next batch in it, ``step`` the optimizer steps done, ``partial``
    the running sums of the unfinished epoch, ``history`` one row per epoch."""
    return {
        "format": CHECKPOINT_FORMAT, "version": 1, "config": config, "meta": meta,
        "model": model.state_dict(), "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
        "rng": get_rng_state(), "epoch": epoch, "batch": batch, "step": step,
        "loader": {"seed": loader_seed, "epoch": epoch, "batch": batch}, "partial": partial, "history": history,
    }


def load_checkpoint(path):
    """Read and check a checkpoint written by :class:`tinycnn.train.Trainer`."""
    ckpt = serialization.load(path)
    try:
        check_checkpoint(ckpt)
    except ValueError as err:
        raise ValueError(f"{path}: not a valid tinycnn training checkpoint: {err}") from None
    return ckpt

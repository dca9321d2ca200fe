"""The training loop: :func:`fit` and :class:`Trainer`.

``fit(model='resnet20', dataset='digits', epochs=..., out_dir=...)`` trains a
registered model on a dataset, evaluates on the test split after every epoch,
and writes under ``out_dir``:

- ``checkpoint.npz`` (every epoch and on Ctrl-C; :func:`tinycnn.save`, atomic):
  the model, optimizer and scheduler state, tinycnn's RNG state, the epoch, the
  step, the data loader's position, the history so far, and what is needed to
  rebuild the run (the config: model name and kwargs, dataset, num_classes,
  class names, image shape, normalisation mean/std);
- ``history.csv`` and ``history.json``: one row per epoch (epoch, train loss,
  train acc, test loss, test acc, lr, seconds, images/s);
- ``curves.png``: loss and accuracy curves (needs matplotlib; skipped otherwise).

``fit(resume='.../checkpoint.npz')`` continues a run exactly where it stopped:
with one thread the final parameters are bitwise those of an uninterrupted run.

The pieces of a run live beside this file, and their public names are
importable from here too: what a run is built from (datasets, transforms,
model, optimizer) in :mod:`tinycnn.builders`; the checkpoint's format in
:mod:`tinycnn.checkpoint`; the history files in :mod:`tinycnn.history`;
:func:`evaluate` and :func:`predict_arrays` in :mod:`tinycnn.evaluation`.
"""

import math
import os
import signal
import sys
import threading
import time
from contextlib import nullcontext

from . import functional as F
from . import serialization
from .anomaly import detect_anomaly
from .builders import (
    build_model, build_optimizer, channel_stats, eval_transform, load_datasets, model_from_checkpoint, pixel_scale,
    train_transform,
)
from .checkpoint import CHECKPOINT_FORMAT, DEFAULTS, HISTORY_FIELDS, check_config, load_checkpoint, make_checkpoint
from .data import DataLoader
from .evaluation import evaluate, predict_arrays
from .history import write_history, write_plot
from .random import manual_seed, set_rng_state
from .tensor import Tensor

__all__ = [
    "CHECKPOINT_FORMAT", "DEFAULTS", "HISTORY_FIELDS", "Trainer", "TrainingError", "build_model", "build_optimizer",
    "channel_stats", "check_config", "eval_transform", "evaluate", "fit", "load_checkpoint", "load_datasets",
    "model_from_checkpoint", "pixel_scale", "predict_arrays", "train_transform",
]


class TrainingError(RuntimeError):
    """Training cannot continue (e.g. the loss became NaN or infinite)."""


# ------------------------------------------------------------------ the trainer


class _InterruptFlag:
    """While active (main thread only), Ctrl-C sets a flag checked between steps;
    a second Ctrl-C interrupts at once."""

    def __init__(self):
        self.raised = False
        self._previous = None

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            self._previous = signal.signal(signal.SIGINT, self._handle)
        return self

    def _handle(self, signum, frame):
        if self.raised:
            raise KeyboardInterrupt
        self.raised = True

    def __exit__(self, *exc):
        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)
        return False


class Trainer:
    """One training run; see the module docstring and :func:`fit`.

    Callbacks: ``on_step(trainer)`` after every optimizer step and
    ``on_epoch_end(trainer, row)`` after every epoch's checkpoint; either may
    raise KeyboardInterrupt to stop (a checkpoint is saved first).
    """

    def __init__(self, out_dir, resume=None, progress=True, plot=True, log=None, on_step=None, on_epoch_end=None,
                 anomaly=False, **config):
        unknown = set(config) - set(DEFAULTS)
        if unknown:
            raise TypeError(f"Trainer: unknown settings {sorted(unknown)}; known: {sorted(DEFAULTS)}")
        self.out_dir = os.fspath(out_dir)
        self.progress, self.plot, self.anomaly = progress, plot, anomaly
        self.log = log or (lambda msg: print(msg, file=sys.stderr))
        self.on_step, self.on_epoch_end = on_step, on_epoch_end
        ckpt = load_checkpoint(resume) if resume is not None else None
        if ckpt is not None:
            self.config = dict(ckpt["config"])
            # only the length of the run may change on resume (the schedule is rebuilt from it)
            if config.get("epochs") not in (None, self.config["epochs"]):
                raise ValueError(f"resume: the run was configured for {self.config['epochs']} epochs; "
                                 "the number of epochs cannot change on resume")
        else:
            self.config = dict(DEFAULTS)
            if config.get("model") not in (None, DEFAULTS["model"]) and config.get("model_kwargs") is None:
                self.config["model_kwargs"] = {}  # the default's SE settings belong to the default model
            self.config.update({k: v for k, v in config.items() if v is not None})
        c = self.config
        check_config(c)

        manual_seed(c["seed"])
        self.train_set, self.test_set = load_datasets(c["dataset"], c["split"], c["train_subset"], c["test_subset"])
        if ckpt is not None:
            self.meta = ckpt["meta"]
        else:
            mean, std = channel_stats(self.train_set)
            # weights= (a file to start from) is not part of the model: the checkpoint holds the weights
            kwargs = {k: v for k, v in (c["model_kwargs"] or {}).items() if k != "weights"}
            self.meta = dict(model=c["model"], model_kwargs=kwargs, dataset=str(c["dataset"]),
                             split=c["split"], num_classes=self.train_set.num_classes,
                             classes=list(self.train_set.classes), image_shape=list(self.train_set.image_shape),
                             scale=pixel_scale(self.train_set.images), mean=mean, std=std)
        if ckpt is None:  # built from the settings, which may name a weights file to start from
            self.model = build_model(dict(self.meta, model_kwargs=c["model_kwargs"] or {}))
        else:
            try:
                self.model = build_model(self.meta, ckpt["model"])
            except ValueError as err:
                raise ValueError(f"resume: {resume}: {err}") from None
        self.loader = DataLoader(self.train_set, batch_size=c["batch_size"], shuffle=True, drop_last=True,
                                 seed=c["seed"], transform=train_transform(self.meta, c["augment"]))
        if len(self.loader) == 0:
            raise ValueError(f"batch_size {c['batch_size']} is larger than the training set ({len(self.train_set)})")
        self.optimizer, self.scheduler = build_optimizer(self.model, c, len(self.loader))
        self.epoch, self.batch, self.step = 0, 0, 0  # next epoch / next batch in it / optimizer steps done
        self.partial = {"loss": 0.0, "correct": 0, "seen": 0, "seconds": 0.0}
        self.history = []
        if ckpt is not None:
            try:
                self.model.load_state_dict(ckpt["model"])
                self.optimizer.load_state_dict(ckpt["optimizer"])
                self.scheduler.load_state_dict(ckpt["scheduler"])
            except (TypeError, ValueError) as err:
                raise ValueError(f"resume: {resume}: {err}") from None
            set_rng_state(ckpt["rng"])
            self.epoch, self.batch, self.step = ckpt["epoch"], ckpt["batch"], ckpt["step"]
            self.partial = dict(ckpt["partial"])
            self.history = list(ckpt["history"])
        self.checkpoint_path = os.path.join(self.out_dir, "checkpoint.npz")

    # -- checkpoint and history

    def state_dict(self):
        return make_checkpoint(config=self.config, meta=self.meta, model=self.model, optimizer=self.optimizer,
                               scheduler=self.scheduler, epoch=self.epoch, batch=self.batch, step=self.step,
                               loader_seed=self.loader.seed, partial=self.partial, history=self.history)

    def save_checkpoint(self):
        return serialization.save(self.state_dict(), self.checkpoint_path)

    def write_history(self):
        write_history(self.out_dir, self.history)

    def write_plot(self):
        """Write curves.png; returns its path, or None (with a message) without matplotlib."""
        return write_plot(self.out_dir, self.history, f"{self.meta['model']} on {self.meta['dataset']}", self.log)

    # -- the loop

    def _bar(self):
        if not self.progress:
            return None
        from tqdm import tqdm

        total = self.config["epochs"] * len(self.loader)
        return tqdm(total=total, initial=self.step, unit="step", dynamic_ncols=True, file=sys.stderr,
                    bar_format="{l_bar}{bar}| {n_fmt}/{total_fmt} [{elapsed}<{remaining}{postfix}]")

    def _train_step(self, x, y):
        self.model.train()
        self.optimizer.zero_grad()
        logits = self.model(Tensor(x))
        loss = F.cross_entropy(logits, y)
        value = float(loss.data)
        if not math.isfinite(value):
            raise TrainingError(f"the training loss became {value} at step {self.step + 1} "
                                f"(epoch {self.epoch + 1}, batch {self.batch + 1}); the last good checkpoint "
                                f"is {self.checkpoint_path if os.path.exists(self.checkpoint_path) else 'none'}; "
                                "try a lower --lr or --detect-anomaly to find the operation")
        loss.backward()
        self.optimizer.step()
        self.scheduler.step()
        return value, int((logits.data.argmax(axis=1) == y).sum())

    def fit(self):
        """Train to the configured number of epochs; returns the history.

        KeyboardInterrupt saves a checkpoint, then propagates (``self.interrupted`` is True).
        """
        self.interrupted = False
        bar = self._bar()
        try:
            with _InterruptFlag() as flag, (detect_anomaly() if self.anomaly else nullcontext()):
                while self.epoch < self.config["epochs"]:
                    self._run_epoch(bar, flag)
                    if flag.raised:  # Ctrl-C during evaluation: stop after the epoch's checkpoint
                        raise KeyboardInterrupt
        except KeyboardInterrupt:
            self.interrupted = True
            if bar is not None:
                bar.close()
                bar = None
            self.save_checkpoint()
            raise
        finally:
            if bar is not None:
                bar.close()
        if self.plot and self.history:
            self.write_plot()
        return self.history

    def _run_epoch(self, bar, flag):
        self.loader.load_state_dict({"seed": self.loader.seed, "epoch": self.epoch, "batch": self.batch})
        lr = self.optimizer.param_groups[0]["lr"]
        p = self.partial
        start = time.perf_counter()
        for x, y in self.loader:
            lr = self.optimizer.param_groups[0]["lr"]
            loss, correct = self._train_step(x, y)
            self.batch += 1
            self.step += 1
            p["loss"] += loss * len(y)
            p["correct"] += correct
            p["seen"] += len(y)
            if bar is not None:
                elapsed = p["seconds"] + time.perf_counter() - start
                bar.set_postfix_str(f"epoch {self.epoch + 1}/{self.config['epochs']} loss {p['loss'] / p['seen']:.4f} "
                                    f"acc {100 * p['correct'] / p['seen']:.1f}% {p['seen'] / elapsed:.0f} img/s",
                                    refresh=False)
                bar.update(1)
            if self.on_step is not None:
                self.on_step(self)
            if flag.raised:
                p["seconds"] += time.perf_counter() - start
                raise KeyboardInterrupt
        p["seconds"] += time.perf_counter() - start
        test_loss, test_acc = evaluate(self.model, self.test_set, self.meta)
        row = {"epoch": self.epoch + 1, "train_loss": p["loss"] / p["seen"], "train_acc": p["correct"] / p["seen"],
               "test_loss": test_loss, "test_acc": test_acc, "lr": lr, "seconds": round(p["seconds"], 3),
               "images_per_s": round(p["seen"] / p["seconds"], 1) if p["seconds"] > 0 else 0.0}
        self.history.append(row)
        self.epoch, self.batch = self.epoch + 1, 0
        self.partial = {"loss": 0.0, "correct": 0, "seen": 0, "seconds": 0.0}
        self.save_checkpoint()
        self.write_history()
        message = (f"epoch {row['epoch']}/{self.config['epochs']}: train loss {row['train_loss']:.4f} "
                   f"acc {100 * row['train_acc']:.2f}% | test loss {test_loss:.4f} acc {100 * test_acc:.2f}% | "
                   f"{row['seconds']:.1f} s, {row['images_per_s']:.0f} img/s")
        if bar is not None:
            bar.write(message, file=sys.stderr)
        else:
            self.log(message)
        if self.on_epoch_end is not None:
            self.on_epoch_end(self, row)


def fit(out_dir, resume=None, progress=True, plot=True, log=None, on_step=None, on_epoch_end=None, anomaly=False,
        **config):
    """Train and return the :class:`Trainer` (``.history``, ``.model``, ``.checkpoint_path``).

    Settings (``None`` keeps the default): model, model_kwargs, dataset, split,
    epochs, batch_size, lr, optimizer ('sgd', 'adam', 'adamw'), momentum,
    weight_decay, warmup_epochs, augment ('crop', 'crop-flip', 'none'), seed,
    train_subset, test_subset.  SGD uses Nesterov momentum; BN parameters and
    biases get no weight decay; the lr follows a cosine schedule per step after
    a linear warm-up.  ``resume``: a checkpoint path to continue from.
    """
    trainer = Trainer(out_dir, resume=resume, progress=progress, plot=plot, log=log, on_step=on_step,
                      on_epoch_end=on_epoch_end, anomaly=anomaly, **config)
    trainer.fit()
    return trainer

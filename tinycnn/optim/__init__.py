"""Optimizers, learning-rate schedules and gradient clipping.

Optimizers update ``p.data`` in place from ``p.grad`` (ndarrays, no graph),
skipping parameters whose grad is None; their ``state_dict()`` holds only
ndarrays, numbers, strings, bools and lists, so it saves to ``.npz`` without
pickle (structure in :mod:`tinycnn.optim.optimizer`).
"""

from . import lr_scheduler
from .adam import Adam, AdamW
from .clip import clip_grad_norm_, clip_grad_value_
from .lr_scheduler import CosineAnnealingLR, LRScheduler, OneCycleLR, StepLR
from .optimizer import Optimizer, param_groups_without_decay
from .sgd import SGD

__all__ = [
    "SGD", "Adam", "AdamW", "CosineAnnealingLR", "LRScheduler", "OneCycleLR", "Optimizer", "StepLR",
    "clip_grad_norm_", "clip_grad_value_", "lr_scheduler", "param_groups_without_decay",
]

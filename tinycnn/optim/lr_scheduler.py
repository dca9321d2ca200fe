"""Learning-rate schedules that set ``group['lr']`` of an optimizer's groups.

Every scheduler is a closed form of its step count ``last_epoch``: creating
one stores ``group['initial_lr']`` (if absent) as each group's base lr and
applies the schedule at step 0; each ``step()`` (once per epoch or once per
batch, as the user chooses) advances one step and sets the lrs.  A lr set by
hand is overwritten at the next ``step()``.

State dict: ``{"last_epoch": int, "base_lrs": [float, ...], "last_lr":
[float, ...]}`` plus the scheduler's own settings (listed in
``_state_keys``: ints, floats, bools, strings).  ``load_state_dict`` restores
them and re-applies the schedule at ``last_epoch`` to the param groups, so
the order in which optimizer and scheduler are restored does not matter.
"""

import math

from .optimizer import NONNEGATIVE, POSITIVE, UNIT, Optimizer, check_bool, check_int, check_number


class LRScheduler:
    """Base class.  Subclasses define ``_lr_at(epoch, base_lr)`` (or
    ``_values_at(epoch)`` to set more than the lr) and ``_check()``."""

    _state_keys = ()

    def __init__(self, optimizer):
        if not isinstance(optimizer, Optimizer):
            raise TypeError(f"{type(self).__name__}: expected a tinycnn Optimizer, got {type(optimizer).__name__}")
        self.optimizer = optimizer
        self._check()
        for group in optimizer.param_groups:
            group.setdefault("initial_lr", group["lr"])
        self.base_lrs = [group["initial_lr"] for group in optimizer.param_groups]
        self.last_epoch = -1
        self.step()

    def _check(self):  # pragma: no cover - abstract
        raise NotImplementedError

    def _lr_at(self, epoch, base_lr):  # pragma: no cover - abstract
        raise NotImplementedError

    def _values_at(self, epoch):
        """One dict of group entries to set per param group."""
        return [{"lr": self._lr_at(epoch, base)} for base in self.base_lrs]

    def step(self):
        """Advance one step and set every group's lr."""
        values = self._values_at(self.last_epoch + 1)  # may raise: nothing has changed yet
        self.last_epoch += 1
        self._apply(values)

    def _apply(self, values):
        for group, entries in zip(self.optimizer.param_groups, values):
            group.update(entries)
        self._last_lr = [group["lr"] for group in self.optimizer.param_groups]

    def get_last_lr(self):
        """The lrs set by the latest ``step()``, one per param group."""
        return list(self._last_lr)

    def state_dict(self):
        state = {"last_epoch": self.last_epoch, "base_lrs": list(self.base_lrs), "last_lr": list(self._last_lr)}
        state.update((key, getattr(self, key)) for key in self._state_keys)
        return state

    def load_state_dict(self, state_dict):
        """Restore :meth:`state_dict`; a failed load changes nothing."""
        name = type(self).__name__
        keys = ("last_epoch", "base_lrs") + self._state_keys
        if not hasattr(state_dict, "items") or any(k not in state_dict for k in keys):
            raise TypeError(f"{name}.load_state_dict: expected a dict with keys {list(keys)}")
        base_lrs = [float(v) for v in _tolist(state_dict["base_lrs"])]
        if len(base_lrs) != len(self.optimizer.param_groups):
            raise ValueError(
                f"{name}.load_state_dict: {len(base_lrs)} base lrs saved, but the optimizer has "
                f"{len(self.optimizer.param_groups)} param groups"
            )
        old = {key: getattr(self, key) for key in keys}
        try:
            for key in self._state_keys:
                setattr(self, key, _item(state_dict[key]))
            self.last_epoch = check_int(name, "last_epoch", _item(state_dict["last_epoch"]), NONNEGATIVE)
            self.base_lrs = base_lrs
            self._check()
            values = self._values_at(self.last_epoch)
        except Exception:
            for key, value in old.items():
                setattr(self, key, value)
            raise
        self._apply(values)

    def __repr__(self):
        settings = ", ".join(f"{k}={getattr(self, k)!r}" for k in self._state_keys)
        return f"{type(self).__name__}({settings}, last_epoch={self.last_epoch})"


class StepLR(LRScheduler):
    """``StepLR(optimizer, step_size, gamma=0.1)``:
    ``lr = base_lr * gamma ** (last_epoch // step_size)``."""

    _state_keys = ("step_size", "gamma")

    def __init__(self, optimizer, step_size, gamma=0.1):
        self.step_size, self.gamma = step_size, gamma
        super().__init__(optimizer)

    def _check(self):
        check_int("StepLR", "step_size", self.step_size, POSITIVE)
        check_number("StepLR", "gamma", self.gamma, POSITIVE)

    def _lr_at(self, epoch, base_lr):
        return base_lr * self.gamma ** (epoch // self.step_size)


class CosineAnnealingLR(LRScheduler):
    """``CosineAnnealingLR(optimizer, T_max, eta_min=0, warmup_steps=0,
    warmup_start_factor=0.0)``.

    With ``W = warmup_steps`` and ``f = warmup_start_factor``, at step t::

        t <  W:  lr = base * (f + (1 - f) * t / W)        (linear warm-up)
        t >= W:  lr = eta_min + (base - eta_min) * (1 + cos(pi * (t - W) / (T_max - W))) / 2

    so lr reaches ``base`` at step W and ``eta_min`` at step T_max.  With
    W = 0 this is PyTorch's CosineAnnealingLR closed form; like it, the
    cosine continues past T_max (rising again over the next T_max - W steps).
    """

    _state_keys = ("T_max", "eta_min", "warmup_steps", "warmup_start_factor")

    def __init__(self, optimizer, T_max, eta_min=0.0, warmup_steps=0, warmup_start_factor=0.0):
        self.T_max, self.eta_min = T_max, eta_min
        self.warmup_steps, self.warmup_start_factor = warmup_steps, warmup_start_factor
        super().__init__(optimizer)

    def _check(self):
        name = "CosineAnnealingLR"
        check_int(name, "T_max", self.T_max, POSITIVE)
        check_number(name, "eta_min", self.eta_min, NONNEGATIVE)
        check_int(name, "warmup_steps", self.warmup_steps, NONNEGATIVE)
        if self.warmup_steps >= self.T_max:
            raise ValueError(f"{name}: warmup_steps must be < T_max ({self.T_max}), got {self.warmup_steps}")
        check_number(name, "warmup_start_factor", self.warmup_start_factor, UNIT)

    def _lr_at(self, epoch, base_lr):
        W, f = self.warmup_steps, self.warmup_start_factor
        if epoch < W:
            return base_lr * (f + (1 - f) * epoch / W)
        T = self.T_max - W
        return self.eta_min + (base_lr - self.eta_min) * (1 + math.cos(math.pi * (epoch - W) / T)) / 2


class OneCycleLR(LRScheduler):
    """``OneCycleLR(optimizer, max_lr, total_steps, pct_start=0.3,
    anneal_strategy='cos', cycle_momentum=True, base_momentum=0.85,
    max_momentum=0.95, div_factor=25.0, final_div_factor=1e4,
    three_phase=False)``, PyTorch's 1cycle policy.

    Each group gets ``initial_lr = max_lr / div_factor``, ``max_lr`` and
    ``min_lr = initial_lr / final_div_factor``.  The lr rises from
    initial_lr to max_lr over the first ``pct_start * total_steps - 1``
    steps, then anneals to min_lr at step ``total_steps - 1`` (three_phase:
    back down to initial_lr symmetrically first, then to min_lr).  With
    ``cycle_momentum`` the momentum (SGD) or beta1 (Adam) moves inversely
    between max_momentum and base_momentum.  ``max_lr`` and the momenta
    may be one number or one per group.  Stepping more than ``total_steps``
    times raises ValueError.
    """

    _state_keys = ("total_steps", "pct_start", "anneal_strategy", "cycle_momentum", "use_beta1", "three_phase")

    def __init__(self, optimizer, max_lr, total_steps, pct_start=0.3, anneal_strategy="cos", cycle_momentum=True,
                 base_momentum=0.85, max_momentum=0.95, div_factor=25.0, final_div_factor=1e4, three_phase=False):
        name = "OneCycleLR"
        if not isinstance(optimizer, Optimizer):
            raise TypeError(f"{name}: expected a tinycnn Optimizer, got {type(optimizer).__name__}")
        self.total_steps, self.pct_start, self.anneal_strategy = total_steps, pct_start, anneal_strategy
        self.cycle_momentum, self.three_phase = cycle_momentum, three_phase
        self.use_beta1 = "betas" in optimizer.defaults
        self._check()
        check_number(name, "div_factor", div_factor, POSITIVE)
        check_number(name, "final_div_factor", final_div_factor, POSITIVE)
        groups = optimizer.param_groups
        max_lrs = _per_group(name, "max_lr", max_lr, len(groups), NONNEGATIVE)
        if self.cycle_momentum:
            if "momentum" not in optimizer.defaults and "betas" not in optimizer.defaults:
                raise ValueError(f"{name}: cycle_momentum=True needs an optimizer with momentum or betas")
            max_momenta = _per_group(name, "max_momentum", max_momentum, len(groups), NONNEGATIVE)
            base_momenta = _per_group(name, "base_momentum", base_momentum, len(groups), NONNEGATIVE)
        for i, group in enumerate(groups):
            group["initial_lr"] = max_lrs[i] / div_factor
            group["max_lr"] = max_lrs[i]
            group["min_lr"] = group["initial_lr"] / final_div_factor
            if self.cycle_momentum:
                if self.use_beta1:
                    group["betas"] = (max_momenta[i], *group["betas"][1:])
                else:
                    group["momentum"] = max_momenta[i]
                group["max_momentum"] = max_momenta[i]
                group["base_momentum"] = base_momenta[i]
        super().__init__(optimizer)

    def _check(self):
        name = "OneCycleLR"
        check_int(name, "total_steps", self.total_steps, POSITIVE)
        check_number(name, "pct_start", self.pct_start, UNIT)
        if self.anneal_strategy not in ("cos", "linear"):
            raise ValueError(f"{name}: anneal_strategy must be 'cos' or 'linear', got {self.anneal_strategy!r}")
        check_bool(name, "cycle_momentum", self.cycle_momentum)
        check_bool(name, "three_phase", self.three_phase)

    def _phases(self):
        """(end_step, start_lr, end_lr, start_momentum, end_momentum) per phase, as in PyTorch."""
        n, pct = self.total_steps, self.pct_start
        if self.three_phase:
            return [
                (float(pct * n) - 1, "initial_lr", "max_lr", "max_momentum", "base_momentum"),
                (float(2 * pct * n) - 2, "max_lr", "initial_lr", "base_momentum", "max_momentum"),
                (n - 1, "initial_lr", "min_lr", "max_momentum", "max_momentum"),
            ]
        return [
            (float(pct * n) - 1, "initial_lr", "max_lr", "max_momentum", "base_momentum"),
            (n - 1, "max_lr", "min_lr", "base_momentum", "max_momentum"),
        ]

    def _anneal(self, start, end, pct):
        if self.anneal_strategy == "cos":
            return end + (start - end) / 2.0 * (math.cos(math.pi * pct) + 1)
        return (end - start) * pct + start

    def _values_at(self, epoch):
        if epoch > self.total_steps:
            raise ValueError(f"OneCycleLR: tried to step {epoch} times, but total_steps is {self.total_steps}")
        phases = self._phases()
        values = []
        for group in self.optimizer.param_groups:
            start_step = 0.0
            for i, (end_step, start_lr, end_lr, start_m, end_m) in enumerate(phases):
                if epoch <= end_step or i == len(phases) - 1:
                    pct = (epoch - start_step) / (end_step - start_step)
                    entries = {"lr": self._anneal(group[start_lr], group[end_lr], pct)}
                    if self.cycle_momentum:
                        momentum = self._anneal(group[start_m], group[end_m], pct)
                        if self.use_beta1:
                            entries["betas"] = (momentum, *group["betas"][1:])
                        else:
                            entries["momentum"] = momentum
                    break
                start_step = end_step
            values.append(entries)
        return values


def _per_group(owner, name, value, n, rule):
    values = list(value) if isinstance(value, (list, tuple)) else [value] * n
    if len(values) != n:
        raise ValueError(f"{owner}: {name} must be one number or {n} (one per param group), got {len(values)}")
    return [check_number(owner, name, v, rule) for v in values]


def _item(value):
    return value.item() if hasattr(value, "item") and getattr(value, "ndim", 1) == 0 else value


def _tolist(value):
    return value.tolist() if hasattr(value, "tolist") else list(value)

"""The Optimizer base class: param groups, per-parameter state, state dicts.

State dict structure (``Optimizer.state_dict()``), PyTorch-style::

    {
      "state": {                       # only parameters that have state yet
        0: {"momentum_buffer": ndarray},                     # SGD, momentum != 0
        1: {"step": 5, "exp_avg": ndarray, "exp_avg_sq": ndarray,
            "max_exp_avg_sq": ndarray},                      # Adam/AdamW (last if amsgrad)
        ...
      },
      "param_groups": [
        {"lr": 0.1, "momentum": 0.9, ..., "betas": [0.9, 0.999],   # every hyperparameter
         "initial_lr": 0.1,                                        # + keys schedulers add
         "params": [0, 1, 2]},                                     # parameter indices
        ...
      ],
    }

A parameter's index is its position counting through the groups in order.
Values are only ndarrays (copies, each shaped like its parameter), ints,
floats, strings, bools and lists of numbers (tuples such as ``betas`` become
lists), so the dict flattens to ``.npz`` keys without pickle.
``load_state_dict`` accepts the same dict back, also after such a round
trip: ``state``/``param_groups`` may be mappings keyed by index strings,
numbers may be 0-d arrays and lists may be 1-d arrays.
"""

import math
import numbers

import numpy as np

from ..tensor import Tensor

_FLOATS = (np.dtype(np.float32), np.dtype(np.float64))

# (what the message says, the test) for check_number
NONNEGATIVE = (">= 0", lambda v: v >= 0)
POSITIVE = ("> 0", lambda v: v > 0)
UNIT = ("in [0, 1]", lambda v: 0 <= v <= 1)
UNIT_OPEN = ("in [0, 1)", lambda v: 0 <= v < 1)


def check_number(owner, name, value, rule):
    """TypeError unless ``value`` is a real number, ValueError unless it is
    finite and satisfies ``rule``; the message names owner, argument,
    expected and actual value."""
    expected, ok = rule
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{owner}: {name} must be a number {expected}, got {type(value).__name__} {value!r}")
    if not (math.isfinite(value) and ok(value)):
        raise ValueError(f"{owner}: {name} must be a finite number {expected}, got {value!r}")
    return value


def check_int(owner, name, value, rule):
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{owner}: {name} must be an integer {rule[0]}, got {type(value).__name__} {value!r}")
    return check_number(owner, name, int(value), rule)


def check_bool(owner, name, value):
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{owner}: {name} must be True or False, got {type(value).__name__} {value!r}")
    return bool(value)


class Optimizer:
    """Base class of the optimizers.

    ``params`` is an iterable of Parameters (one group) or of dicts
    ``{'params': [...], 'lr': ..., ...}`` (one group each; keys not given
    take the optimizer's ``defaults``).  Subclasses define ``_check_group``
    (validate one group's hyperparameters) and ``_update`` (update one
    parameter in place).  ``step()`` skips parameters whose grad is None.
    ``state`` maps ``id(param)`` to that parameter's state dict.
    """

    _state_keys = ()  # the per-parameter state entries a subclass keeps

    def __init__(self, params, defaults):
        self.defaults = dict(defaults)
        self.param_groups = []
        self.state = {}  # id(param) -> dict of that parameter's state
        self._check_group(dict(self.defaults, params=[]))
        if isinstance(params, Tensor):
            raise TypeError(
                f"{self._name}: params must be an iterable of Parameters or of param-group dicts, "
                "got a single Tensor (wrap it in a list)"
            )
        if isinstance(params, dict):
            params = [params]
        try:
            groups = list(params)
        except TypeError:
            raise TypeError(
                f"{self._name}: params must be an iterable of Parameters or of param-group dicts, "
                f"got {type(params).__name__}"
            ) from None
        if not groups:
            raise ValueError(f"{self._name}: got an empty parameter list")
        if not isinstance(groups[0], dict):
            groups = [{"params": groups}]
        for group in groups:
            self.add_param_group(group)

    @property
    def _name(self):
        return type(self).__name__

    def add_param_group(self, group):
        """Add a group: a dict with ``'params'`` and optional hyperparameters."""
        if not isinstance(group, dict):
            raise TypeError(
                f"{self._name}: a param group must be a dict with a 'params' key, got {type(group).__name__} "
                "(give either Parameters or param-group dicts, not both)"
            )
        if "params" not in group:
            raise ValueError(f"{self._name}: param group has no 'params' key (keys: {sorted(group)})")
        params = group["params"]
        if isinstance(params, Tensor):
            params = [params]
        elif isinstance(params, (set, frozenset)):
            raise TypeError(f"{self._name}: a group's params must be an ordered sequence, got a set")
        else:
            params = list(params)
        seen = {id(p) for g in self.param_groups for p in g["params"]}
        mine = set()
        for i, p in enumerate(params):
            if not isinstance(p, Tensor):
                raise TypeError(
                    f"{self._name}: params must be Parameters or Tensors, got {type(p).__name__} at position {i}"
                )
            if p.dtype not in _FLOATS:
                raise TypeError(f"{self._name}: parameter {i} must be float32 or float64, got {p.dtype}")
            if id(p) in mine:
                raise ValueError(f"{self._name}: parameter {i} (shape {p.shape}) appears twice in one param group")
            if id(p) in seen:
                raise ValueError(f"{self._name}: parameter {i} (shape {p.shape}) is already in another param group")
            mine.add(id(p))
        new = dict(self.defaults)
        new.update((k, v) for k, v in group.items() if k != "params")
        new["params"] = params
        self._check_group(new)
        self.param_groups.append(new)

    def zero_grad(self):
        """Set every parameter's grad to None."""
        for group in self.param_groups:
            for p in group["params"]:
                p.grad = None

    def step(self, closure=None):
        """Update every parameter that has a grad, in place on ``p.data``.

        ``closure``, if given, is called first (it should recompute the
        loss and gradients) and its result is returned.
        """
        loss = None if closure is None else closure()
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is None:
                    continue
                grad = np.asarray(p.grad)
                if grad.shape != p.data.shape:
                    raise ValueError(
                        f"{self._name}: a parameter of shape {p.data.shape} has a grad of shape {grad.shape}"
                    )
                grad = grad.astype(p.data.dtype, copy=False)
                self._update(p, grad, group, self.state.setdefault(id(p), {}))
                p.bump_version()  # the update wrote p.data in place
        return loss

    def _check_group(self, group):  # pragma: no cover - abstract
        raise NotImplementedError

    def _update(self, p, grad, group, state):  # pragma: no cover - abstract
        """Update ``p.data`` in place from ``grad`` (never modify ``grad``:
        it may be ``p.grad`` itself) and the parameter's ``state`` dict."""
        raise NotImplementedError

    # ---------------------------------------------------------- state dict
    def state_dict(self):
        """The optimizer's state; see the module docstring for the structure."""
        index = {}
        groups = []
        for group in self.param_groups:
            packed = {k: _plain(v) for k, v in group.items() if k != "params"}
            packed["params"] = [index.setdefault(id(p), len(index)) for p in group["params"]]
            groups.append(packed)
        state = {}
        for group in self.param_groups:
            for p in group["params"]:
                entry = self.state.get(id(p))
                if entry:
                    state[index[id(p)]] = {k: (v.copy() if isinstance(v, np.ndarray) else v) for k, v in entry.items()}
        return {"state": state, "param_groups": groups}

    def load_state_dict(self, state_dict):
        """Restore hyperparameters and state saved by :meth:`state_dict`.

        The groups must hold as many parameters as when saved, and each state
        array the shape of its parameter (it is copied in the parameter's
        dtype).  Everything is checked first: a failed load changes nothing.
        """
        name = self._name
        if not hasattr(state_dict, "items") or "state" not in state_dict or "param_groups" not in state_dict:
            raise TypeError(f"{name}.load_state_dict: expected a dict with 'state' and 'param_groups'")
        try:
            new_groups, new_state = self._parse_state_dict(state_dict)
        except (KeyError, IndexError, AttributeError, TypeError, ValueError) as err:
            if str(err).startswith(f"{name}."):
                raise
            # a malformed structure (a str where a list of groups belongs, a non-integer index...)
            raise ValueError(f"{name}.load_state_dict: malformed state dict ({type(err).__name__}: {err}); expected "
                             "{'state': {index: {name: array}}, 'param_groups': [{'params': [indices], ...}]} "
                             f"as returned by {name}.state_dict()") from None
        for group, merged in zip(self.param_groups, new_groups):
            group.clear()
            group.update(merged)
        self.state = new_state

    def _parse_state_dict(self, state_dict):
        name = self._name
        saved_groups = _as_list(state_dict["param_groups"])
        if len(saved_groups) != len(self.param_groups):
            raise ValueError(
                f"{name}.load_state_dict: expected {len(self.param_groups)} param groups, got {len(saved_groups)}"
            )
        by_index = {}
        new_groups = []
        for g, (group, saved) in enumerate(zip(self.param_groups, saved_groups)):
            indices = [int(i) for i in np.asarray(saved["params"]).reshape(-1)]
            if len(indices) != len(group["params"]):
                raise ValueError(
                    f"{name}.load_state_dict: param group {g} has {len(group['params'])} parameters, "
                    f"the saved one {len(indices)}"
                )
            by_index.update(zip(indices, group["params"]))
            merged = dict(group)
            merged.update((k, _unplain(v)) for k, v in saved.items() if k != "params")
            self._check_group(merged)
            new_groups.append(merged)
        new_state = {}
        for key, entry in _as_items(state_dict["state"]):
            if int(key) not in by_index:
                raise ValueError(f"{name}.load_state_dict: state for parameter {key}, which no group holds")
            p = by_index[int(key)]
            unknown = set(entry) - set(self._state_keys)
            if unknown:
                raise ValueError(
                    f"{name}.load_state_dict: parameter {key} has state {sorted(unknown)} that {name} does not "
                    f"keep (expected some of {list(self._state_keys)})"
                )
            new_state[id(p)] = {k: self._load_state_value(key, k, v, p) for k, v in entry.items()}
        return new_groups, new_state

    def _load_state_value(self, index, key, value, p):
        if key == "step":
            return int(np.asarray(value).item())
        array = np.asarray(value)
        if array.dtype.kind not in "biuf" or array.shape != p.data.shape:
            raise ValueError(
                f"{self._name}.load_state_dict: state '{key}' of parameter {index} must be a numeric array of "
                f"shape {p.data.shape}, got dtype {array.dtype} shape {array.shape}"
            )
        return array.astype(p.data.dtype, copy=True)

    def __repr__(self):
        lines = [f"{self._name}("]
        for i, group in enumerate(self.param_groups):
            hyper = ", ".join(f"{k}={v}" for k, v in group.items() if k != "params")
            lines.append(f"  group {i}: {len(group['params'])} params, {hyper}")
        return "\n".join(lines) + "\n)"


def _plain(value):
    if isinstance(value, tuple):
        return [_plain(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    return value


def _unplain(value):
    """Undo what an .npz round trip does to a hyperparameter."""
    if isinstance(value, np.ndarray):
        value = value.item() if value.ndim == 0 else value.tolist()
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, list):
        return tuple(value)
    return value


def _as_items(mapping_or_list):
    if hasattr(mapping_or_list, "items"):
        return list(mapping_or_list.items())
    return list(enumerate(mapping_or_list))


def _as_list(mapping_or_list):
    """A list as saved, or a mapping keyed by '0', '1', ... (after flattening)."""
    if hasattr(mapping_or_list, "items"):
        return [v for _, v in sorted(mapping_or_list.items(), key=lambda kv: int(kv[0]))]
    return list(mapping_or_list)


def _split_by_ndim(params):
    """Split params (Parameters or group dicts) so that every parameter with
    ``ndim <= 1`` lands in a group with ``weight_decay = 0``."""
    if isinstance(params, Tensor):
        return params  # let Optimizer refuse it
    if isinstance(params, dict):
        params = [params]
    items = list(params)
    groups = items if items and isinstance(items[0], dict) else [{"params": items}]
    out = []
    for group in groups:
        if not isinstance(group, dict):
            return items  # mixed input: let Optimizer report it
        members = group.get("params", [])
        members = [members] if isinstance(members, Tensor) else list(members)
        exempt = [p for p in members if isinstance(p, Tensor) and p.ndim <= 1]
        decayed = [p for p in members if not (isinstance(p, Tensor) and p.ndim <= 1)]
        if decayed or not exempt:
            out.append(dict(group, params=decayed))
        if exempt:
            out.append(dict(group, params=exempt, weight_decay=0.0))
    return out if items else items


def param_groups_without_decay(model, weight_decay):
    """Two param groups for any optimizer: ``[{'params': decayed,
    'weight_decay': weight_decay}, {'params': exempt, 'weight_decay': 0.0}]``.

    Exempt are parameters with ``ndim <= 1`` (BatchNorm gamma/beta, biases)
    and any parameter whose name ends in ``bias``.  ``model`` is a Module
    (anything with ``named_parameters()``).  Either group may be empty.
    """
    if not hasattr(model, "named_parameters"):
        raise TypeError(f"param_groups_without_decay: model must be a Module, got {type(model).__name__}")
    check_number("param_groups_without_decay", "weight_decay", weight_decay, NONNEGATIVE)
    decayed, exempt = [], []
    for name, p in model.named_parameters():
        (exempt if p.ndim <= 1 or name.rsplit(".", 1)[-1] == "bias" else decayed).append(p)
    return [{"params": decayed, "weight_decay": weight_decay}, {"params": exempt, "weight_decay": 0.0}]

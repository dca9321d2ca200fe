"""Module and Parameter: the containers that layers and models are built from."""

import math
from collections import OrderedDict, namedtuple
from contextlib import contextmanager

import numpy as np

from ..tensor import Tensor

IncompatibleKeys = namedtuple("IncompatibleKeys", ["missing_keys", "unexpected_keys"])

_mode_hooks = []


def on_mode_change(hook):
    """Call ``hook(module, training)`` after every ``module.train(mode)`` and
    ``eval()`` (``tinycnn.nn.fusion`` applies or removes its pass there)."""
    _mode_hooks.append(hook)
    return hook


_budget = None  # values Parameters may still hold inside parameter_budget(); None: no bound


@contextmanager
def parameter_budget(values):
    """Inside the block, Parameters holding more than ``values`` numbers in
    all cannot be created: the one that would pass the bound raises
    ``ValueError``, before its array is allocated when it is made by
    :meth:`Parameter.new` (as every layer makes its parameters).  This bounds
    a model that an untrusted file describes by the weights the file really
    holds (:func:`tinycnn.builders.build_model`)."""
    global _budget
    outer, _budget = _budget, values
    try:
        yield
    finally:
        _budget = outer


def _charge(shape, spend):
    global _budget
    if _budget is None:
        return
    if math.prod(shape) > _budget:
        raise ValueError(f"a Parameter of shape {tuple(shape)} passes the parameter budget "
                         f"({_budget} values left)")
    if spend:
        _budget -= math.prod(shape)


class Parameter(Tensor):
    """A tensor that a Module registers as trainable (``requires_grad=True``)."""

    def __init__(self, data, requires_grad=True, dtype=None):
        _charge(np.shape(data), spend=True)
        super().__init__(data, requires_grad=requires_grad, dtype=dtype)

    @classmethod
    def new(cls, shape, dtype, fill=None):
        """A Parameter of ``shape``: uninitialised (``fill=None``) or filled
        with ``fill``; checked against :func:`parameter_budget` before its
        array is allocated."""
        _charge(shape, spend=False)
        return cls(np.empty(shape, dtype=dtype) if fill is None else np.full(shape, fill, dtype=dtype))

    def __repr__(self):
        return f"Parameter(shape={self.shape}, dtype={self.dtype})"


class Module:
    """Base class of every layer and model.

    Assigning a :class:`Parameter` or a Module to an attribute registers it;
    ``register_buffer`` registers an ndarray that is state but not trained
    (BatchNorm's running statistics).  Subclasses define ``forward``.
    """

    def __init__(self):
        object.__setattr__(self, "_parameters", OrderedDict())
        object.__setattr__(self, "_buffers", OrderedDict())
        object.__setattr__(self, "_modules", OrderedDict())
        object.__setattr__(self, "training", True)

    # ------------------------------------------------------- registration
    def __setattr__(self, name, value):
        if "_parameters" not in self.__dict__:
            raise AttributeError(f"{type(self).__name__}: call super().__init__() before assigning attributes")
        if isinstance(value, (Parameter, Module)):
            for store in (self._parameters, self._buffers, self._modules):
                store.pop(name, None)
            self.__dict__.pop(name, None)
            (self._parameters if isinstance(value, Parameter) else self._modules)[name] = value
        elif name in self._parameters or name in self._modules:
            if value is not None:
                kind = "parameter" if name in self._parameters else "submodule"
                expected = "a Parameter" if kind == "parameter" else "a Module"
                raise TypeError(f"cannot assign {type(value).__name__} to {kind} '{name}' (expected {expected} or None)")
            (self._parameters if name in self._parameters else self._modules)[name] = None
        elif name in self._buffers:
            self._buffers[name] = _as_buffer(name, value)
        else:
            object.__setattr__(self, name, value)

    def __getattr__(self, name):
        for store in ("_parameters", "_buffers", "_modules"):
            items = self.__dict__.get(store)
            if items is not None and name in items:
                return items[name]
        raise AttributeError(f"'{type(self).__name__}' has no attribute '{name}'")

    def __delattr__(self, name):
        for store in (self._parameters, self._buffers, self._modules):
            if name in store:
                del store[name]
                return
        object.__delattr__(self, name)

    def register_buffer(self, name, array):
        """Register ``array`` (an ndarray, or None) as state saved in the
        state dict but not trained."""
        self.__dict__.pop(name, None)
        self._buffers[name] = _as_buffer(name, array)

    def register_parameter(self, name, param):
        if param is not None and not isinstance(param, Parameter):
            raise TypeError(f"register_parameter: {name} must be a Parameter or None, got {type(param).__name__}")
        self.__dict__.pop(name, None)
        self._parameters[name] = param

    def add_module(self, name, module):
        if module is not None and not isinstance(module, Module):
            raise TypeError(f"add_module: {name} must be a Module, got {type(module).__name__}")
        self._modules[name] = module

    # ----------------------------------------------------------- traversal
    def named_modules(self, prefix=""):
        seen = set()
        stack = [(prefix, self)]
        while stack:
            name, module = stack.pop()
            if id(module) in seen:
                continue
            seen.add(id(module))
            yield name, module
            children = [(f"{name}.{k}" if name else k, m) for k, m in module._modules.items() if m is not None]
            stack.extend(reversed(children))

    def modules(self):
        for _, module in self.named_modules():
            yield module

    def named_children(self):
        for name, module in self._modules.items():
            if module is not None:
                yield name, module

    def children(self):
        for _, module in self.named_children():
            yield module

    def named_parameters(self, prefix="", recurse=True):
        seen = set()
        modules = self.named_modules(prefix) if recurse else [(prefix, self)]
        for name, module in modules:
            for key, param in module._parameters.items():
                if param is None or id(param) in seen:
                    continue
                seen.add(id(param))
                yield (f"{name}.{key}" if name else key), param

    def parameters(self, recurse=True):
        for _, param in self.named_parameters(recurse=recurse):
            yield param

    def named_buffers(self, prefix=""):
        for name, module in self.named_modules(prefix):
            for key, buf in module._buffers.items():
                if buf is not None:
                    yield (f"{name}.{key}" if name else key), buf

    def buffers(self):
        for _, buf in self.named_buffers():
            yield buf

    def num_parameters(self, trainable_only=False):
        """How many scalars the parameters hold."""
        return sum(p.size for p in self.parameters() if p.requires_grad or not trainable_only)

    # --------------------------------------------------------------- modes
    def train(self, mode=True):
        """Training mode (BatchNorm uses batch statistics, Dropout drops)."""
        for module in self.modules():
            object.__setattr__(module, "training", bool(mode))
        for hook in _mode_hooks:
            hook(self, bool(mode))
        return self

    def eval(self):
        """Evaluation mode (BatchNorm uses running statistics, no dropout)."""
        return self.train(False)

    def zero_grad(self):
        for param in self.parameters():
            param.grad = None

    def requires_grad_(self, requires_grad=True):
        for param in self.parameters():
            param.requires_grad = bool(requires_grad)
        return self

    def apply(self, fn):
        """Call ``fn(module)`` on every submodule and on this one (children first)."""
        for module in reversed(list(self.modules())):
            fn(module)
        return self

    def to(self, dtype):
        """Convert every parameter and floating buffer to ``dtype`` (float32 or float64)."""
        dtype = np.dtype(dtype)
        if dtype not in (np.float32, np.float64):
            raise TypeError(f"to: dtype must be float32 or float64, got {dtype}")
        for module in self.modules():
            for key, param in module._parameters.items():
                if param is not None:
                    param.data = param.data.astype(dtype)
                    param.grad = None if param.grad is None else param.grad.astype(dtype)
            for key, buf in module._buffers.items():
                if buf is not None and buf.dtype.kind == "f":
                    module._buffers[key] = buf.astype(dtype)
        return self

    # ---------------------------------------------------------- state dict
    def state_dict(self):
        """Every parameter and buffer by dotted name, as ndarray copies."""
        state = OrderedDict()
        for name, module in self.named_modules():
            for key, param in module._parameters.items():
                if param is not None:
                    state[f"{name}.{key}" if name else key] = param.data.copy()
            for key, buf in module._buffers.items():
                if buf is not None:
                    state[f"{name}.{key}" if name else key] = buf.copy()
        return state

    def _state_slots(self):
        """name -> (module, kind, key) for every parameter and buffer."""
        slots = OrderedDict()
        for name, module in self.named_modules():
            for kind, store in (("param", module._parameters), ("buffer", module._buffers)):
                for key, value in store.items():
                    if value is not None:
                        slots[f"{name}.{key}" if name else key] = (module, kind, key)
        return slots

    def load_state_dict(self, state_dict, strict=True):
        """Copy parameters and buffers from ``state_dict`` (name -> array).

        Everything is checked before anything is copied, so a failed load
        leaves the module unchanged: with ``strict=True`` missing and
        unexpected keys are errors; shape mismatches always are.  Returns
        ``(missing_keys, unexpected_keys)``.
        """
        if not hasattr(state_dict, "items"):
            raise TypeError(f"load_state_dict: expected a mapping of names to arrays, got {type(state_dict).__name__}")
        slots = self._state_slots()
        missing = [k for k in slots if k not in state_dict]
        unexpected = [k for k in state_dict if k not in slots]
        problems = []
        arrays = {}
        for key, value in state_dict.items():
            if key not in slots:
                continue
            module, kind, attr = slots[key]
            current = module._parameters[attr].data if kind == "param" else module._buffers[attr]
            try:
                array = np.asarray(getattr(value, "data", value))
            except (ValueError, TypeError) as err:  # ragged nested lists
                problems.append(f"{key}: expected a numeric array of shape {current.shape}, got {type(value).__name__} "
                                f"({err})")
                continue
            if array.dtype.kind not in "biuf":
                problems.append(f"{key}: expected a numeric array, got dtype {array.dtype}")
            elif array.shape != current.shape:
                problems.append(f"{key}: expected shape {current.shape}, got {array.shape}")
            else:
                arrays[key] = array
        if strict:
            if missing:
                problems.append("missing keys: " + ", ".join(missing))
            if unexpected:
                problems.append("unexpected keys: " + ", ".join(map(str, unexpected)))
        if problems:
            raise ValueError(
                f"load_state_dict into {type(self).__name__} failed; nothing was loaded:\n  " + "\n  ".join(problems)
            )
        for key, array in arrays.items():
            module, kind, attr = slots[key]
            if kind == "param":
                param = module._parameters[attr]
                param.data = array.astype(param.dtype, copy=True)
            else:
                buf = module._buffers[attr]
                module._buffers[attr] = array.astype(buf.dtype, copy=True)
        return IncompatibleKeys(missing, unexpected)

    # -------------------------------------------------------------- calling
    def forward(self, *args, **kwargs):  # pragma: no cover - abstract
        raise NotImplementedError(f"{type(self).__name__} does not define forward()")

    def __call__(self, *args, **kwargs):
        role = self.__dict__.get("_fusion")  # given by tinycnn.nn.fusion.fuse() to a fused chain's layers
        if role is not None:
            return role(self, *args, **kwargs)
        return self.forward(*args, **kwargs)

    def extra_repr(self):
        return ""

    def __repr__(self):
        lines = []
        for name, module in self._modules.items():
            body = repr(module).replace("\n", "\n  ")
            lines.append(f"({name}): {body}")
        head = f"{type(self).__name__}({self.extra_repr()}"
        if not lines:
            return head + ")"
        return head + "\n  " + "\n  ".join(lines) + "\n)"


def _as_buffer(name, value):
    if value is None:
        return None
    if isinstance(value, Tensor):
        value = value.data
    if not isinstance(value, np.ndarray):
        raise TypeError(f"buffer {name}: expected an ndarray or None, got {type(value).__name__}")
    return value

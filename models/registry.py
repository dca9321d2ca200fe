"""The model registry: factories by name, ``list_models`` and ``create_model``."""

import difflib
import numbers

from tinycnn.weights import load_weights

_MODELS = {}


def register_model(factory):
    """Decorator: register ``factory`` under its function name."""
    name = factory.__name__
    if name in _MODELS:
        raise ValueError(f"register_model: a model called {name!r} is already registered")
    _MODELS[name] = factory
    return factory


def list_models():
    """The names of every registered model, sorted."""
    return sorted(_MODELS)


def create_model(name, num_classes=1000, weights=None, **kwargs):
    """Build the registered model ``name`` with ``num_classes`` outputs;
    other keyword arguments go to its constructor (``in_chans``, ``stem``,
    ``se``, ``zero_init_residual``, ...).

    ``weights``: a PyTorch-layout state dict file (.safetensors, .npz or
    .pth; torchvision/timm keys) to load, see ``tinycnn.weights``.  When
    its classifier has another number of classes than ``num_classes``, the
    classifier is left freshly initialised and everything else loaded
    (transfer learning); any other mismatch is an error naming the keys."""
    if not isinstance(name, str):
        raise TypeError(f"create_model: name must be a str, got {type(name).__name__}")
    if name not in _MODELS:
        close = difflib.get_close_matches(name, _MODELS, n=3)
        hint = f" Did you mean {', '.join(close)}?" if close else ""
        raise ValueError(f"create_model: unknown model {name!r}.{hint} Known models: {', '.join(list_models())}")
    for arg in ("num_classes", "in_chans"):
        value = num_classes if arg == "num_classes" else kwargs.get(arg, 1)
        if isinstance(value, bool) or not isinstance(value, numbers.Integral):
            raise TypeError(f"create_model: {arg} must be an int >= 1, got {type(value).__name__} {value!r}")
        if value < 1:
            raise ValueError(f"create_model: {arg} must be an int >= 1, got {value!r}")
    model = _MODELS[name](num_classes=num_classes, **kwargs)
    if weights is not None:
        load_weights(model, weights, reset_head=True)
    return model

"""The model registry: factories by name, ``list_models`` and ``create_model``."""

import difflib

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


def create_model(name, num_classes=1000, **kwargs):
    """Build the registered model ``name`` with ``num_classes`` outputs;
    other keyword arguments go to its constructor (``in_chans``, ``stem``,
    ``se``, ``zero_init_residual``, ...)."""
    if not isinstance(name, str):
        raise TypeError(f"create_model: name must be a str, got {type(name).__name__}")
    if name not in _MODELS:
        close = difflib.get_close_matches(name, _MODELS, n=3)
        hint = f" Did you mean {', '.join(close)}?" if close else ""
        raise ValueError(f"create_model: unknown model {name!r}.{hint} Known models: {', '.join(list_models())}")
    return _MODELS[name](num_classes=num_classes, **kwargs)

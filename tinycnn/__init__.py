"""tinycnn: a convolutional-network engine written from scratch on NumPy and Numba.

``Tensor`` and reverse-mode autograd, differentiable functions in
``tinycnn.functional`` (imported as ``F``), Numba kernels in
``tinycnn.kernels``.  Activations are channels-last ``(N, H, W, C)``.

As in PyTorch, ``import tinycnn`` is enough to reach ``tinycnn.nn``,
``tinycnn.optim``, ``tinycnn.data`` and ``tinycnn.models``; the last three
are imported on first use, so ``import tinycnn`` does not pay for them.
"""

from . import _env  # noqa: F401  (first: thread settings before NumPy loads OpenBLAS)
from . import functional, tensor
tensor.bind_functional(functional)  # the one link from Tensor's operators up to the functions
from . import nn  # noqa: E402
from .anomaly import AnomalyError, detect_anomaly, is_anomaly_enabled
from .autograd import Function, enable_grad, is_grad_enabled, no_grad
from .gradcheck import GradcheckError, gradcheck
from .serialization import load, save
from .random import get_rng_state, manual_seed, set_rng_state
from .model_summary import summary
from .tensor import Tensor
from .threads import get_num_threads, set_num_threads

__version__ = "0.1.0"

_LAZY_SUBPACKAGES = ("data", "models", "optim")  # imported by __getattr__ on first use

__all__ = [
    "AnomalyError", "detect_anomaly", "is_anomaly_enabled",
    "Function", "GradcheckError", "Tensor", "data", "enable_grad", "functional", "get_num_threads",
    "get_rng_state", "gradcheck", "is_grad_enabled", "load", "manual_seed", "models", "nn", "no_grad", "optim",
    "save", "set_num_threads", "set_rng_state", "summary",
]


def __getattr__(name):
    if name in _LAZY_SUBPACKAGES:
        import importlib

        return importlib.import_module(f"{__name__}.{name}")  # which also sets it as an attribute here
    if name == "io":  # the old name of tinycnn.serialization, which shadowed the standard library's io
        import warnings

        warnings.warn("tinycnn.io is deprecated: use tinycnn.save/tinycnn.load, or tinycnn.serialization",
                      DeprecationWarning, stacklevel=2)
        from . import serialization

        return serialization
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(_LAZY_SUBPACKAGES))

"""tinycnn: a convolutional-network engine written from scratch on NumPy and Numba.

``Tensor`` and reverse-mode autograd, differentiable functions in
``tinycnn.functional`` (imported as ``F``), Numba kernels in
``tinycnn.kernels``.  Activations are channels-last ``(N, H, W, C)``.
"""

from . import functional
from .autograd import Function, enable_grad, is_grad_enabled, no_grad
from .gradcheck import GradcheckError, gradcheck
from .tensor import Tensor

__version__ = "0.1.0"

__all__ = [
    "Function", "GradcheckError", "Tensor", "enable_grad", "functional", "gradcheck",
    "is_grad_enabled", "no_grad",
]

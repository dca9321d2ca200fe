"""The Tensor: an ndarray, its gradient, and the operation that produced it."""

import numbers

import numpy as np

from . import autograd

_FLOATS = (np.dtype(np.float32), np.dtype(np.float64))


def _to_array(data, dtype=None):
    """Turn tensor data into an ndarray, float32 unless told otherwise.

    A float32 or float64 ndarray keeps its dtype (and is not copied); Python
    numbers, lists and integer or bool arrays become float32.  Strings,
    objects and complex numbers are refused.
    """
    if isinstance(data, Tensor):
        data = data.data
    if isinstance(data, (str, bytes)) or data is None:
        raise TypeError(f"Tensor: data must be numbers or an array, got {type(data).__name__}")
    try:
        array = np.asarray(data)
    except (ValueError, TypeError) as err:
        raise TypeError(f"Tensor: data must be numbers or an array: {err}") from None
    if array.dtype.kind not in "biuf":
        raise TypeError(
            f"Tensor: data must be numeric (bool, int or float), got dtype {array.dtype}"
            + (f" holding {type(array.flat[0]).__name__}" if array.dtype == object and array.size else "")
        )
    if dtype is not None:
        dtype = np.dtype(dtype)
        if dtype.kind not in "biuf":
            raise TypeError(f"Tensor: dtype must be a real numeric dtype, got {dtype}")
        return array.astype(dtype, copy=False)
    if isinstance(data, (np.ndarray, np.generic)) and array.dtype in _FLOATS:
        return array
    return array.astype(np.float32)


class Tensor:
    """An n-dimensional array that records how it was computed.

    ``Tensor(data, requires_grad=False, dtype=None)``: float32 by default;
    a float32/float64 ndarray keeps its dtype and is shared, not copied.
    ``requires_grad=True`` makes it a leaf whose ``.grad`` receives gradients
    from :meth:`backward`.
    """

    __array_priority__ = 1000  # ndarray <op> Tensor defers to Tensor
    _version = 0  # in-place writes through tinycnn so far (see ``version``)

    def __init__(self, data, requires_grad=False, dtype=None):
        self.data = _to_array(data, dtype)
        if requires_grad and self.data.dtype not in _FLOATS:
            raise TypeError(
                f"Tensor: only float32/float64 tensors can require grad, got {self.data.dtype}"
            )
        self.requires_grad = bool(requires_grad)
        self.grad = None
        self._ctx = None

    @staticmethod
    def _from_op(data, ctx):
        """The output of an operation (``autograd.Function.apply`` makes its
        outputs through its inputs' ``_from_op``, so it needs no import of
        this module): a plain Tensor, whatever the inputs' class."""
        out = Tensor.__new__(Tensor)
        out.data = data
        out.grad = None
        out._ctx = ctx
        out.requires_grad = ctx is not None
        return out

    # ----------------------------------------------------------- properties
    @property
    def shape(self):
        return self.data.shape

    @property
    def dtype(self):
        return self.data.dtype

    @property
    def ndim(self):
        return self.data.ndim

    @property
    def size(self):
        return self.data.size

    @property
    def version(self):
        """How many times ``data`` has been written in place through tinycnn
        (an optimizer step, an ``nn.init`` function), as PyTorch's
        ``_version``: caches derived from the data compare it."""
        return self._version

    def bump_version(self):
        """Record an in-place write to ``data`` (for code that writes it
        directly and keeps a cache honest)."""
        self._version += 1

    @property
    def is_leaf(self):
        return self._ctx is None

    @property
    def T(self):
        return self.transpose()

    def __len__(self):
        if self.ndim == 0:
            raise TypeError("len() of a 0-d tensor")
        return self.shape[0]

    def numpy(self):
        """The underlying ndarray (shared, not copied)."""
        return self.data

    def item(self):
        if self.data.size != 1:
            raise ValueError(f"item: needs a single-element tensor, got shape {self.shape}")
        return self.data.item()

    def detach(self):
        """A tensor sharing this one's data, outside the graph."""
        return Tensor._from_op(self.data, None)

    def astype(self, dtype):
        return _F.cast(self, dtype)

    def __repr__(self):
        body = np.array2string(self.data, separator=", ", prefix="Tensor(")
        extra = "" if self.dtype == np.float32 else f", dtype={self.dtype}"
        if self.requires_grad:
            extra += ", requires_grad=True"
        return f"Tensor({body}{extra})"

    # ------------------------------------------------------------- autograd
    def backward(self, grad=None, retain_graph=False):
        """Backpropagate from this tensor into every leaf that requires grad.

        ``grad`` defaults to 1 for a single-element tensor.  The graph is
        freed afterwards unless ``retain_graph=True``.
        """
        autograd.backward(self, grad.data if isinstance(grad, Tensor) else grad, retain_graph)

    def zero_grad(self):
        self.grad = None

    # ------------------------------------------------------------ operators
    def __add__(self, other):
        return _F.add(self, other)

    def __radd__(self, other):
        return _F.add(other, self)

    def __sub__(self, other):
        return _F.sub(self, other)

    def __rsub__(self, other):
        return _F.sub(other, self)

    def __mul__(self, other):
        return _F.mul(self, other)

    def __rmul__(self, other):
        return _F.mul(other, self)

    def __truediv__(self, other):
        return _F.div(self, other)

    def __rtruediv__(self, other):
        return _F.div(other, self)

    def __pow__(self, exponent):
        return _F.pow(self, exponent)

    def __neg__(self):
        return _F.neg(self)

    def __matmul__(self, other):
        return _F.matmul(self, other)

    def __rmatmul__(self, other):
        return _F.matmul(other, self)

    def __getitem__(self, index):
        return _F.getitem(self, index)

    # -------------------------------------------------------------- methods
    def sum(self, axis=None, keepdims=False):
        return _F.sum(self, axis, keepdims)

    def mean(self, axis=None, keepdims=False):
        return _F.mean(self, axis, keepdims)

    def max(self, axis=None, keepdims=False):
        return _F.max(self, axis, keepdims)

    def argmax(self, axis=None):
        """Indices of the maxima (an ndarray; not differentiable)."""
        return self.data.argmax(axis=axis)

    def reshape(self, *shape):
        if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
            shape = tuple(shape[0])
        return _F.reshape(self, shape)

    def permute(self, *axes):
        if len(axes) == 1 and isinstance(axes[0], (tuple, list)):
            axes = tuple(axes[0])
        return _F.permute(self, axes)

    def transpose(self, dim0=None, dim1=None):
        """No arguments: reverse the axes (like ``.T``); two: swap them."""
        return _F.transpose(self, dim0, dim1)

    def flatten(self, start_dim=0, end_dim=-1):
        return _F.flatten(self, start_dim, end_dim)

    def exp(self):
        return _F.exp(self)

    def log(self):
        return _F.log(self)

    def sqrt(self):
        return _F.sqrt(self)

    def abs(self):
        return _F.abs(self)

    def clip(self, min=None, max=None):
        return _F.clip(self, min, max)

    def relu(self):
        return _F.relu(self)

    def sigmoid(self):
        return _F.sigmoid(self)

    def tanh(self):
        return _F.tanh(self)

    def softmax(self, axis=-1):
        return _F.softmax(self, axis)

    def log_softmax(self, axis=-1):
        return _F.log_softmax(self, axis)


# Tensor's operators and methods (x + y, x @ w, x.sum()...) are the functions
# of tinycnn.functional, and that module imports this one (through the ops):
# it cannot be imported here.  tinycnn/__init__.py links the two once, after
# both are loaded, as DeZero's setup_variable() does.
_F = None


def bind_functional(functional):
    """Give Tensor's operators the functions they call (done once by the package)."""
    global _F
    _F = functional


def as_tensor(value, like=None):
    """``value`` as a Tensor; a plain number takes the dtype of ``like``."""
    if isinstance(value, Tensor):
        return value
    if like is not None and isinstance(value, (numbers.Real, np.number)):
        return Tensor(np.asarray(value, dtype=like.dtype))
    return Tensor(value)

"""Operations that move data without arithmetic: reshape, permute, indexing,
concatenation, stacking, padding."""

import numbers

import numpy as np

from ..autograd import Function
from ..tensor import Tensor, as_tensor


class Reshape(Function):
    def forward(self, x, shape):
        self.in_shape = x.shape
        return x.reshape(shape)

    def backward(self, gy):
        return gy.reshape(self.in_shape)


class Permute(Function):
    def forward(self, x, axes):
        self.inverse = tuple(np.argsort(axes))
        return np.transpose(x, axes)

    def backward(self, gy):
        return np.transpose(gy, self.inverse)


class GetItem(Function):
    def forward(self, x, index, basic):
        self.shape, self.index, self.basic = x.shape, index, basic
        return x[index]

    def backward(self, gy):
        gx = np.zeros(self.shape, dtype=gy.dtype)
        if self.basic:  # basic indexing never repeats an element
            gx[self.index] = gy
        else:
            np.add.at(gx, self.index, gy)
        return gx


class Concatenate(Function):
    def forward(self, *arrays, axis):
        self.axis = axis
        self.bounds = np.cumsum([a.shape[axis] for a in arrays])[:-1]
        return np.concatenate(arrays, axis=axis)

    def backward(self, gy):
        return tuple(np.split(gy, self.bounds, axis=self.axis))


class Stack(Function):
    def forward(self, *arrays, axis):
        self.axis = axis
        return np.stack(arrays, axis=axis)

    def backward(self, gy):
        return tuple(np.moveaxis(gy, self.axis, 0))


class Pad(Function):
    def forward(self, x, pad_width, value):
        self.crop = tuple(slice(lo, lo + n) for (lo, _), n in zip(pad_width, x.shape))
        if x.ndim == 0:  # nothing to pad, and np.pad refuses 0-d arrays
            return x.copy()
        return np.pad(x, pad_width, mode="constant", constant_values=value)

    def backward(self, gy):
        return np.ascontiguousarray(gy[self.crop])


def _axis(name, axis, ndim):
    if isinstance(axis, bool) or not isinstance(axis, (numbers.Integral, np.integer)):
        raise TypeError(f"{name}: axis must be an int, got {axis!r}")
    if not -ndim <= axis < ndim:
        raise ValueError(f"{name}: axis {axis} is out of range for {ndim}-D tensors")
    return int(axis) % ndim


def reshape(x, shape):
    """A tensor with the same data and a new shape (one entry may be -1)."""
    x = as_tensor(x)
    if isinstance(shape, (numbers.Integral, np.integer)):
        shape = (shape,)
    shape = tuple(int(s) for s in shape)
    known = int(np.prod([s for s in shape if s != -1]))
    if -1 in shape:
        fits = shape.count(-1) == 1 and known > 0 and x.size % known == 0
    else:
        fits = known == x.size
    if not fits or any(s < -1 for s in shape):
        raise ValueError(f"reshape: cannot reshape a tensor of shape {x.shape} (size {x.size}) into {shape}")
    return Reshape.apply(x, shape=shape)


def permute(x, axes):
    """Reorder the axes: output axis i is input axis ``axes[i]``."""
    x = as_tensor(x)
    axes = tuple(axes)
    if len(axes) != x.ndim:
        raise ValueError(f"permute: axes {axes} are not a permutation of the {x.ndim} axes of shape {x.shape}")
    normalized = tuple(_axis("permute", a, x.ndim) for a in axes)
    if sorted(normalized) != list(range(x.ndim)):
        raise ValueError(f"permute: axes {axes} are not a permutation of the {x.ndim} axes of shape {x.shape}")
    return Permute.apply(x, axes=normalized)


def transpose(x, dim0=None, dim1=None):
    """Swap two axes (PyTorch's ``transpose(dim0, dim1)``); with no axes
    given, reverse all of them (NumPy's ``transpose``, ``.T``)."""
    x = as_tensor(x)
    if dim0 is None and dim1 is None:
        return Permute.apply(x, axes=tuple(reversed(range(x.ndim))))
    if dim0 is None or dim1 is None:
        raise TypeError("transpose: give both dim0 and dim1, or neither (use permute for a full order)")
    axes = list(range(x.ndim))
    d0, d1 = _axis("transpose", dim0, x.ndim), _axis("transpose", dim1, x.ndim)
    axes[d0], axes[d1] = axes[d1], axes[d0]
    return Permute.apply(x, axes=tuple(axes))


def flatten(x, start_dim=0, end_dim=-1):
    """Merge axes ``start_dim`` to ``end_dim`` (inclusive) into one."""
    x = as_tensor(x)
    if x.ndim == 0:
        return reshape(x, (1,))
    start, end = _axis("flatten", start_dim, x.ndim), _axis("flatten", end_dim, x.ndim)
    if start > end:
        raise ValueError(f"flatten: start_dim {start_dim} comes after end_dim {end_dim}")
    shape = x.shape[:start] + (int(np.prod(x.shape[start : end + 1])),) + x.shape[end + 1 :]
    return Reshape.apply(x, shape=shape)


def _is_basic(index):
    items = index if isinstance(index, tuple) else (index,)
    return all(
        isinstance(i, (slice, numbers.Integral, np.integer, type(None), type(Ellipsis))) and not isinstance(i, bool)
        for i in items
    )


def getitem(x, index):
    """``x[index]`` for integers, slices, ``None``, ``...`` and integer or
    boolean index arrays (repeated indices accumulate their gradients)."""
    x = as_tensor(x)
    items = index if isinstance(index, tuple) else (index,)
    items = tuple(i.data if isinstance(i, Tensor) else i for i in items)
    converted = []
    for i in items:
        if isinstance(i, (list, np.ndarray)):
            arr = np.asarray(i)
            if arr.dtype.kind not in "biu" and arr.size:
                raise TypeError(f"getitem: index arrays must hold integers or bools, got dtype {arr.dtype}")
            i = arr.astype(np.intp) if arr.dtype.kind != "b" else arr
        elif isinstance(i, float):
            raise TypeError(f"getitem: indices must be integers, slices or integer arrays, got float {i}")
        converted.append(i)
    index = tuple(converted)
    try:
        np.empty(x.shape, dtype=np.bool_)[index]
    except IndexError as err:
        raise ValueError(f"getitem: index {index!r} does not fit a tensor of shape {x.shape}: {err}") from None
    return GetItem.apply(x, index=index, basic=_is_basic(index))


def _sequence(name, tensors):
    if isinstance(tensors, Tensor) or not isinstance(tensors, (list, tuple)) or not tensors:
        raise TypeError(f"{name}: expected a non-empty list or tuple of tensors")
    tensors = [as_tensor(t) for t in tensors]
    dtypes = {t.dtype for t in tensors}
    if len(dtypes) > 1:
        raise TypeError(f"{name}: all tensors must share a dtype, got {sorted(map(str, dtypes))}")
    return tensors


def concatenate(tensors, axis=0):
    """Join tensors along an existing axis."""
    tensors = _sequence("concatenate", tensors)
    ndim = tensors[0].ndim
    if ndim == 0:
        raise ValueError("concatenate: 0-d tensors cannot be concatenated (use stack)")
    axis = _axis("concatenate", axis, ndim)
    for i, t in enumerate(tensors):
        if t.ndim != ndim or t.shape[:axis] + t.shape[axis + 1 :] != tensors[0].shape[:axis] + tensors[0].shape[axis + 1 :]:
            raise ValueError(
                f"concatenate: tensor {i} has shape {t.shape}, which does not match {tensors[0].shape} "
                f"outside axis {axis}"
            )
    return Concatenate.apply(*tensors, axis=axis)


def stack(tensors, axis=0):
    """Join tensors of one shape along a new axis."""
    tensors = _sequence("stack", tensors)
    for i, t in enumerate(tensors):
        if t.shape != tensors[0].shape:
            raise ValueError(f"stack: tensor {i} has shape {t.shape}, expected {tensors[0].shape} like tensor 0")
    axis = _axis("stack", axis, tensors[0].ndim + 1)
    return Stack.apply(*tensors, axis=axis)


def pad(x, pad_width, value=0.0):
    """Pad with a constant.  ``pad_width`` as NumPy's: an int, a
    ``(before, after)`` pair for every axis, or one pair per axis."""
    x = as_tensor(x)
    try:
        widths = np.broadcast_to(np.asarray(pad_width), (x.ndim, 2))
    except ValueError:
        raise ValueError(
            f"pad: pad_width must be an int, a (before, after) pair, or {x.ndim} such pairs; got {pad_width!r}"
        ) from None
    if widths.dtype.kind not in "iu":
        raise TypeError(f"pad: pad_width must hold integers, got {pad_width!r}")
    if (widths < 0).any():
        raise ValueError(f"pad: pad_width must be non-negative, got {pad_width!r}")
    widths = tuple((int(a), int(b)) for a, b in widths)
    return Pad.apply(x, pad_width=widths, value=value)

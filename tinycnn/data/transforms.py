"""Batch transforms on NHWC arrays.

A transform is called as ``t(x, rng)`` on a whole batch ``x`` of shape
``(N, H, W, C)`` and returns a new array (the input is never modified). Random
transforms draw only from ``rng``, the ``numpy.random.Generator`` that the
:class:`~tinycnn.data.DataLoader` derives from its seed, epoch and batch index,
so augmentation is reproducible and resumes exactly. Called without ``rng`` they
use tinycnn's global generator (``tinycnn.manual_seed``).
"""

import numbers

import numpy as np

from ..random import get_rng


def _check_batch(name, x):
    x = np.asarray(x)
    if x.ndim != 4:
        raise ValueError(f"{name}: expected a batch (N, H, W, C), got shape {x.shape}")
    return x


def _rng(rng):
    return get_rng() if rng is None else rng


def apply(transform, x, rng=None):
    """Call ``transform`` on ``x``: with ``rng`` if it is a :class:`Transform`, else ``transform(x)``."""
    if isinstance(transform, Transform):
        return transform(x, rng)
    return transform(x)


class Transform:
    """Base class: subclasses implement ``__call__(self, x, rng=None)``."""

    def __call__(self, x, rng=None):
        raise NotImplementedError

    def __repr__(self):
        args = ", ".join(f"{k}={v!r}" for k, v in vars(self).items())
        return f"{type(self).__name__}({args})"


class Compose(Transform):
    """Apply transforms in order, passing the same generator to each."""

    def __init__(self, transforms):
        self.transforms = list(transforms)
        for t in self.transforms:
            if not callable(t):
                raise TypeError(f"Compose: {t!r} is not callable")

    def __call__(self, x, rng=None):
        for t in self.transforms:
            x = apply(t, x, rng)
        return x


class ToFloat(Transform):
    """``x.astype(float32) * scale``: uint8 0-255 to float32 0-1 by default."""

    def __init__(self, scale=1 / 255):
        self.scale = float(scale)

    def __call__(self, x, rng=None):
        x = _check_batch("ToFloat", x)
        return x.astype(np.float32) * np.float32(self.scale)


class Normalize(Transform):
    """``(x - mean) / std`` per channel; ``mean``/``std`` are scalars or one value per channel."""

    def __init__(self, mean, std):
        self.mean = np.atleast_1d(np.asarray(mean, dtype=np.float32))
        self.std = np.atleast_1d(np.asarray(std, dtype=np.float32))
        if self.mean.ndim != 1 or self.std.ndim != 1:
            shapes = f"{self.mean.shape}, {self.std.shape}"
            raise ValueError(f"Normalize: mean and std must be scalars or 1-D, got {shapes}")
        if not np.all(self.std > 0):
            raise ValueError(f"Normalize: std must be positive, got {self.std.tolist()}")

    def __call__(self, x, rng=None):
        x = _check_batch("Normalize", x)
        C = x.shape[-1]
        for name, v in (("mean", self.mean), ("std", self.std)):
            if len(v) not in (1, C):
                raise ValueError(f"Normalize: {name} has {len(v)} values, the batch has C={C} channels")
        out = x.astype(np.float32, copy=True) if x.dtype != np.float64 else x.copy()
        out -= self.mean.astype(out.dtype)
        out /= self.std.astype(out.dtype)
        return out


class RandomHorizontalFlip(Transform):
    """Mirror each image left-right with probability ``p`` (one draw per image)."""

    def __init__(self, p=0.5):
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"RandomHorizontalFlip: p must be in [0, 1], got {p}")
        self.p = float(p)

    def __call__(self, x, rng=None):
        x = _check_batch("RandomHorizontalFlip", x)
        flip = _rng(rng).random(len(x)) < self.p
        out = x.copy()
        out[flip] = x[flip, :, ::-1]
        return out


class RandomCrop(Transform):
    """Zero-pad each side by ``padding``, then crop a random ``size`` window per image.

    ``size`` is an int or ``(height, width)``. Each image gets its own offset,
    uniform over all windows that fit; the crop is one fancy-indexing gather for
    the whole batch. The padding value is 0 in the batch's current units (apply
    the crop before ``Normalize`` for black borders).
    """

    def __init__(self, size, padding=0):
        size = (size, size) if isinstance(size, numbers.Integral) else tuple(size)
        if len(size) != 2 or not all(isinstance(s, numbers.Integral) and s > 0 for s in size):
            raise ValueError(f"RandomCrop: size must be a positive int or (height, width), got {size!r}")
        if not isinstance(padding, numbers.Integral) or padding < 0:
            raise ValueError(f"RandomCrop: padding must be an int >= 0, got {padding!r}")
        self.size = (int(size[0]), int(size[1]))
        self.padding = int(padding)

    def __call__(self, x, rng=None):
        x = _check_batch("RandomCrop", x)
        N, H, W, C = x.shape
        P, (OH, OW) = self.padding, self.size
        if OH > H + 2 * P or OW > W + 2 * P:
            raise ValueError(f"RandomCrop: crop {self.size} is larger than padded image {(H + 2 * P, W + 2 * P)}")
        padded = np.pad(x, ((0, 0), (P, P), (P, P), (0, 0))) if P else x
        rng = _rng(rng)
        top = rng.integers(0, H + 2 * P - OH + 1, size=N)
        left = rng.integers(0, W + 2 * P - OW + 1, size=N)
        rows = top[:, None, None] + np.arange(OH)[None, :, None]   # (N, OH, 1)
        cols = left[:, None, None] + np.arange(OW)[None, None, :]  # (N, 1, OW)
        return padded[np.arange(N)[:, None, None], rows, cols]     # (N, OH, OW, C)

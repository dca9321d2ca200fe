"""DataLoader: seeded, resumable batching of a dataset.

The order of epoch ``k`` is a permutation drawn from a generator seeded by
``(seed, k)`` alone, and the generator handed to the transforms for batch ``b``
of epoch ``k`` is seeded by ``(seed, k, b)`` alone. So the loader's whole
position is three integers, ``state_dict()`` returns them, and a run restored
with ``load_state_dict()`` yields exactly the batches, augmentation included,
that the interrupted run would have.
"""

import numbers

import numpy as np

from ..random import get_rng
from .transforms import apply

_SHUFFLE, _AUGMENT = 0, 1  # first spawn-key word: keeps the two streams apart


def _generator(seed, purpose, epoch, batch):
    return np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(purpose, epoch, batch)))


class DataLoader:
    """Iterate over ``dataset`` in batches of ``(x, y)``.

    ``dataset`` is anything with ``__len__`` and ``__getitem__`` returning
    ``(image, label)`` with an HWC (or HW) image; if it also has
    ``get_batch(indices)`` (like :class:`~tinycnn.data.ArrayDataset`) a batch is one
    fancy-indexing call instead of a Python loop over items.

    Each batch is ``x``: ``transform(images, rng)`` as NHWC float32 (without a
    transform the images are only cast to float32, not rescaled; use
    :class:`~tinycnn.data.ToFloat`), and ``y``: int64 labels. ``len(loader)`` is the
    number of batches per epoch. With ``shuffle`` the order changes every epoch but
    depends only on ``seed`` and the epoch number; ``seed=None`` draws one from
    tinycnn's generator (so ``tinycnn.manual_seed`` fixes it).

    Iterating runs the rest of the current epoch, then advances to the next one.
    """

    def __init__(self, dataset, batch_size=32, shuffle=False, drop_last=False, seed=None, transform=None):
        if not hasattr(dataset, "__len__") or not hasattr(dataset, "__getitem__"):
            raise TypeError(f"DataLoader: dataset must have __len__ and __getitem__, got {type(dataset).__name__}")
        if isinstance(batch_size, bool) or not isinstance(batch_size, numbers.Integral) or batch_size < 1:
            raise ValueError(f"DataLoader: batch_size must be an int >= 1, got {batch_size!r}")
        if seed is None:
            seed = int(get_rng().integers(0, 2**63))
        elif isinstance(seed, bool) or not isinstance(seed, numbers.Integral) or seed < 0:
            raise ValueError(f"DataLoader: seed must be a non-negative int or None, got {seed!r}")
        if transform is not None and not callable(transform):
            raise TypeError(f"DataLoader: transform must be callable, got {type(transform).__name__}")
        self.dataset = dataset
        self.batch_size = int(batch_size)
        self.shuffle = bool(shuffle)
        self.drop_last = bool(drop_last)
        self.seed = int(seed)
        self.transform = transform
        self.epoch = 0
        self.batch = 0  # index of the next batch to yield within self.epoch

    def __len__(self):
        n = len(self.dataset)
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)

    def order(self, epoch):
        """The sample indices of ``epoch`` in the order they are served."""
        n = len(self.dataset)
        if not self.shuffle:
            return np.arange(n)
        return _generator(self.seed, _SHUFFLE, epoch, 0).permutation(n)

    def state_dict(self):
        """The position: ``{'seed', 'epoch', 'batch'}`` (the next batch to yield)."""
        self._normalise()
        return {"seed": self.seed, "epoch": self.epoch, "batch": self.batch}

    def load_state_dict(self, state):
        """Resume at a position returned by :meth:`state_dict`."""
        if not hasattr(state, "keys"):
            raise TypeError(f"DataLoader.load_state_dict: expected a dict with 'seed', 'epoch' and 'batch', "
                            f"got {type(state).__name__}")
        missing = {"seed", "epoch", "batch"} - set(state)
        if missing:
            raise ValueError(f"DataLoader.load_state_dict: missing keys {sorted(missing)}")
        for key in ("seed", "epoch", "batch"):
            value = np.asarray(state[key])
            if value.shape != () or value.dtype.kind not in "iu":
                raise TypeError(f"DataLoader.load_state_dict: {key} must be an int, got {state[key]!r}")
        epoch, batch = int(state["epoch"]), int(state["batch"])
        if epoch < 0 or not 0 <= batch <= len(self):
            raise ValueError(f"DataLoader.load_state_dict: epoch {epoch}, batch {batch} out of range "
                             f"(epoch >= 0, 0 <= batch <= {len(self)})")
        self.seed, self.epoch, self.batch = int(state["seed"]), epoch, batch

    def _normalise(self):
        if self.batch >= len(self):  # the epoch was consumed to its end
            self.epoch, self.batch = self.epoch + 1, 0

    def __iter__(self):
        self._normalise()
        epoch, start = self.epoch, self.batch
        order = self.order(epoch)
        for b in range(start, len(self)):
            indices = order[b * self.batch_size:(b + 1) * self.batch_size]
            x, y = self._fetch(indices)
            if self.transform is not None:
                x = apply(self.transform, x, _generator(self.seed, _AUGMENT, epoch, b))
            x = np.asarray(x)
            if x.dtype != np.float32:
                x = x.astype(np.float32)
            if x.ndim != 4:
                raise ValueError(f"DataLoader: batch images must be (N, H, W, C) after transforms, got {x.shape}")
            if self.epoch == epoch:  # not moved by load_state_dict meanwhile
                self.batch = b + 1
            yield x, y
        if self.epoch == epoch and self.batch == len(self):
            self._normalise()

    def _fetch(self, indices):
        if hasattr(self.dataset, "get_batch"):
            x, y = self.dataset.get_batch(indices)
            return np.asarray(x), np.asarray(y, dtype=np.int64)
        items = [self.dataset[int(i)] for i in indices]
        x = np.stack([np.asarray(image) for image, _ in items])
        if x.ndim == 3:
            x = x[..., None]
        return x, np.asarray([label for _, label in items], dtype=np.int64)

    def __repr__(self):
        return (f"DataLoader({len(self.dataset)} samples, batch_size={self.batch_size}, shuffle={self.shuffle}, "
                f"drop_last={self.drop_last}, seed={self.seed}, epoch={self.epoch}, batch={self.batch})")

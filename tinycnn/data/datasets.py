"""In-memory datasets, the bundled digits, a fixed split, and the dataset registry.

``get_dataset(name_or_path, split)`` is what the command line uses: a name
('digits', the default, bundled; 'mnist', 'fashion-mnist', 'kmnist', 'cifar10',
'cifar100', read from a root folder and optionally downloaded) or a path to an
IDX folder, a CIFAR folder or an image-folder tree, recognised by its content.
"""

import gzip
import hashlib
import os
from pathlib import Path

import numpy as np

from . import downloads, readers
from .images import image_folder_classes, load_image_folder

_BUNDLED = Path(__file__).resolve().parent / "bundled"
DIGITS_FILE = _BUNDLED / "digits.csv.gz"
DIGITS_SHA256 = "09f66e6debdee2cd2b5ae59e0d6abbb73fc2b0e0185d2e1957e9ebb51e23aa22"

# The documented split of the bundled digits: stratified, 20 % test, seed 0.
DIGITS_TEST_FRACTION = 0.2
DIGITS_SPLIT_SEED = 0


class ArrayDataset:
    """Images and labels held as two arrays, batched by fancy indexing.

    ``images`` is ``(N, H, W, C)`` (a ``(N, H, W)`` array gets ``C = 1``), uint8 or
    float; ``labels`` is ``(N,)`` integers, stored as int64. ``classes`` names the
    classes (default ``'0'``, ``'1'``...). ``dataset[i]`` is one ``(image, label)``;
    :meth:`get_batch` fetches many at once with one indexing operation per array,
    which is what :class:`~tinycnn.data.DataLoader` uses.
    """

    def __init__(self, images, labels, classes=None, name=None):
        images = np.asarray(images)
        labels = np.asarray(labels)
        if images.ndim == 3:
            images = images[..., None]
        if images.ndim != 4:
            raise ValueError(f"ArrayDataset: images must be (N, H, W, C), got shape {images.shape}")
        if labels.ndim != 1 or len(labels) != len(images):
            raise ValueError(f"ArrayDataset: labels must be ({len(images)},), got shape {labels.shape}")
        if labels.size and not np.issubdtype(labels.dtype, np.integer):
            raise TypeError(f"ArrayDataset: labels must be integers, got {labels.dtype}")
        self.images = images
        self.labels = labels.astype(np.int64, copy=False)
        if classes is None:
            count = int(self.labels.max()) + 1 if self.labels.size else 0
            classes = [str(i) for i in range(count)]
        self.classes = list(classes)
        if self.labels.size and (self.labels.min() < 0 or self.labels.max() >= len(self.classes)):
            raise ValueError(
                f"ArrayDataset: labels span {self.labels.min()}..{self.labels.max()}, "
                f"expected 0..{len(self.classes) - 1} for {len(self.classes)} classes"
            )
        self.name = name

    @property
    def num_classes(self):
        return len(self.classes)

    @property
    def image_shape(self):
        """``(H, W, C)``."""
        return tuple(self.images.shape[1:])

    def __len__(self):
        return len(self.images)

    def __getitem__(self, index):
        return self.images[index], self.labels[index]

    def get_batch(self, indices):
        """``(images[indices], labels[indices])``: copies of the batch only."""
        return self.images[indices], self.labels[indices]

    def subset(self, indices):
        """A new ArrayDataset holding ``indices`` (same classes and name)."""
        idx = np.asarray(indices)
        if idx.dtype.kind in "iu" and idx.size and not -len(self) <= idx.min() <= idx.max() < len(self):
            bad = idx.max() if idx.max() >= len(self) else idx.min()
            raise ValueError(f"ArrayDataset.subset: indices must lie in [-{len(self)}, {len(self)}) for "
                             f"{len(self)} images, got {bad}")
        return ArrayDataset(self.images[indices], self.labels[indices], self.classes, self.name)

    def __repr__(self):
        name = f"{self.name!r}, " if self.name else ""
        shape = f"{self.image_shape} {self.images.dtype}"
        return f"ArrayDataset({name}{len(self)} images of {shape}, {self.num_classes} classes)"


# ------------------------------------------------------------------ the split


def _splitmix64(x):
    """SplitMix64 finaliser on a uint64 array (wrapping arithmetic): a fixed hash."""
    x = x + np.uint64(0x9E3779B97F4A7C15)
    x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return x ^ (x >> np.uint64(31))


def stratified_split(labels, test_fraction=0.2, seed=0):
    """Indices ``(train, test)`` of a stratified split, each sorted ascending.

    From each class with ``n`` samples, ``floor(n * test_fraction + 0.5)`` go to the
    test set: those whose SplitMix64 hash of ``(seed << 32) + index`` is smallest.
    The hash is fixed arithmetic, not a random generator, so the split is the same
    on every machine and NumPy version.
    """
    labels = np.asarray(labels)
    if not 0.0 <= test_fraction <= 1.0:
        raise ValueError(f"stratified_split: test_fraction must be in [0, 1], got {test_fraction}")
    if not isinstance(seed, (int, np.integer)) or not 0 <= seed < 2**32:
        raise ValueError(f"stratified_split: seed must be an int in [0, 2**32), got {seed!r}")
    index = np.arange(len(labels), dtype=np.uint64)
    keys = _splitmix64((np.uint64(seed) << np.uint64(32)) + index)
    test = []
    for c in np.unique(labels):
        members = np.flatnonzero(labels == c)
        count = int(np.floor(len(members) * test_fraction + 0.5))
        test.append(members[np.argsort(keys[members], kind="stable")[:count]])
    test = np.sort(np.concatenate(test)) if test else np.zeros(0, np.int64)
    train = np.setdiff1d(np.arange(len(labels)), test)
    return train.astype(np.int64), test.astype(np.int64)


def split_dataset(dataset, split, test_fraction=0.2, seed=0):
    """``split`` ('train', 'test' or 'all') of an ArrayDataset by :func:`stratified_split`."""
    if split == "all":
        return dataset
    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train', 'test' or 'all', got {split!r}")
    train, test = stratified_split(dataset.labels, test_fraction, seed)
    return dataset.subset(train if split == "train" else test)


# --------------------------------------------------------------------- digits


def load_digits(rescale=True):
    """The bundled UCI handwritten digits: ``(images (1797, 8, 8, 1) uint8, labels (1797,) int64)``.

    The original pixels are counts 0-16. With ``rescale=True`` (default) they are
    mapped to 0-255 by ``(255 * v + 8) // 16`` so every tinycnn dataset shares the
    0-255 range; ``rescale=False`` keeps 0-16. See ``tinycnn/data/bundled/README.md``
    for the source and licence (CC BY 4.0).
    """
    raw = DIGITS_FILE.read_bytes()
    digest = hashlib.sha256(raw).hexdigest()
    if digest != DIGITS_SHA256:
        raise ValueError(f"{DIGITS_FILE}: bundled file is damaged: sha256 {digest}, expected {DIGITS_SHA256}")
    text = gzip.decompress(raw).decode("ascii")
    table = np.array([line.split(",") for line in text.split()], dtype=np.int64)
    images = table[:, :64].reshape(-1, 8, 8, 1)
    labels = table[:, 64]
    if rescale:
        images = (255 * images + 8) // 16
    return images.astype(np.uint8), labels


def digits_dataset(split="train"):
    """The bundled digits as an ArrayDataset: 'train' (1,438), 'test' (359) or 'all' (1,797).

    The split is :func:`stratified_split` with ``test_fraction=0.2, seed=0``.
    """
    images, labels = load_digits()
    full = ArrayDataset(images, labels, [str(i) for i in range(10)], name="digits")
    return split_dataset(full, split, DIGITS_TEST_FRACTION, DIGITS_SPLIT_SEED)


# ------------------------------------------------------------------- registry

FASHION_MNIST_CLASSES = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                         "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"]
KMNIST_CLASSES = ["o", "ki", "su", "tsu", "na", "ha", "ma", "ya", "re", "wo"]
_MNIST_CLASSES = {"mnist": [str(i) for i in range(10)], "fashion-mnist": FASHION_MNIST_CLASSES,
                  "kmnist": KMNIST_CLASSES}

NAMES = ("digits", "mnist", "fashion-mnist", "kmnist", "cifar10", "cifar100")
FORMATS = ("an MNIST-format IDX folder (train-/t10k-images-idx3-ubyte[.gz] and labels)",
           "a CIFAR-10 folder (data_batch_1..5, test_batch)",
           "a CIFAR-100 folder (train, test, meta)",
           "an image-folder tree (one sub-folder of images per class)")


def get_dataset(name_or_path="digits", split="train", root=None, download=False, size=None, mode=None):
    """A dataset by name or path, as an :class:`ArrayDataset`.

    Names: 'digits' (bundled; split 'train'/'test'/'all' by the fixed stratified
    split), 'mnist', 'fashion-mnist', 'kmnist', 'cifar10', 'cifar100' (split
    'train'/'test', read from ``root/<name folder>``, ``root`` defaulting to
    ``$TINYCNN_DATA`` or ``~/.tinycnn/data``; ``download=True`` fetches missing files).
    A path is recognised by content: an IDX folder, a CIFAR-10 or CIFAR-100 folder,
    or an image-folder tree (``size``/``mode`` passed to :func:`load_image_folder`;
    if the tree has ``train/`` and ``test/`` sub-trees the split picks one, else the
    whole tree is split 80/20 by :func:`stratified_split` with seed 0).
    The result has ``images``, ``labels``, ``num_classes``, ``classes``, ``image_shape``.
    """
    key = str(name_or_path).lower()
    if key == "digits":
        return digits_dataset(split)
    if key in downloads.DATASETS:
        if split not in ("train", "test"):
            raise ValueError(f"get_dataset({key!r}): split must be 'train' or 'test', got {split!r}")
        root = Path(root) if root is not None else downloads.default_root()
        folder = root / downloads.DATASETS[key]["folder"]
        if download:
            folder = downloads.download(key, root, verbose=True)
        elif not folder.is_dir():
            raise FileNotFoundError(f"{folder}: {key} not found; pass download=True to fetch it into {root}")
        dataset = _load_folder(folder, split, size, mode, kind=downloads.DATASETS[key]["kind"])
        if key in _MNIST_CLASSES:
            dataset.classes = list(_MNIST_CLASSES[key])
        dataset.name = key
        return dataset
    path = Path(name_or_path)
    if not path.exists():
        raise FileNotFoundError(
            f"{name_or_path!r} is neither a dataset name ({', '.join(NAMES)}) nor an existing path"
        )
    return _load_folder(path, split, size, mode)


def detect_format(path):
    """'idx', 'cifar10', 'cifar100' or 'image-folder' for a folder, by its content."""
    path = Path(path)
    if not path.is_dir():
        raise ValueError(f"{path}: not a folder; expected one of: {'; '.join(FORMATS)}")
    names = {p.name for p in path.iterdir()}
    if any(n.startswith(("train-images", "t10k-images")) and "idx3-ubyte" in n for n in names):
        return "idx"
    if {"data_batch_1", "test_batch"} & names or (path / "cifar-10-batches-py").is_dir():
        return "cifar10"
    if ({"train", "test"} & names and (path / "meta").is_file()) or (path / "cifar-100-python").is_dir():
        return "cifar100"
    if _is_image_tree(path) or all(_is_image_tree(path / s) for s in ("train", "test")):
        return "image-folder"
    raise ValueError(f"{path}: unrecognised dataset folder; expected one of: {'; '.join(FORMATS)}")


def _is_image_tree(path):
    return path.is_dir() and any(files for _, files in image_folder_classes(path))


def _load_folder(path, split, size=None, mode=None, kind=None):
    kind = kind or detect_format(path)
    name = os.path.basename(os.path.normpath(path))
    if kind != "image-folder" and split not in ("train", "test"):
        raise ValueError(f"{path}: split must be 'train' or 'test', got {split!r}")
    if kind == "idx":
        images, labels = readers.load_mnist(path, split)
        return ArrayDataset(images, labels, [str(i) for i in range(10)], name=name)
    if kind == "cifar10":
        return ArrayDataset(*readers.load_cifar10(path, split), name=name)
    if kind == "cifar100":
        return ArrayDataset(*readers.load_cifar100(path, split), name=name)
    if split in ("train", "test") and _is_image_tree(path / split):
        return ArrayDataset(*load_image_folder(path / split, size, mode), name=name)
    full = ArrayDataset(*load_image_folder(path, size, mode), name=name)
    return split_dataset(full, split)

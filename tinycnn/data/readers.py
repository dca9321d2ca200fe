"""Readers for image datasets people keep on disk.

- MNIST-family IDX files, raw or gzipped: :func:`read_idx`, :func:`load_mnist`
  (MNIST, Fashion-MNIST and KMNIST share the format and the file names).
- CIFAR-10 / CIFAR-100 "python version" pickle batches: :func:`read_cifar_batch`,
  :func:`load_cifar10`, :func:`load_cifar100`. The pickles are read with an
  unpickler that can only rebuild plain containers and NumPy arrays, so a
  tampered file cannot run code (:mod:`tinycnn.data.pickles`).
- A folder tree with one sub-folder of images per class: :func:`load_image_folder`
  (needs Pillow: ``pip install tinycnn[image]``; in :mod:`tinycnn.data.images`,
  and importable from here).

Every loader returns NHWC ``uint8`` images and ``int64`` labels. Every error
names the file and says what was expected: ``FileNotFoundError`` for a missing
file, ``ValueError`` for a truncated, corrupted or unrecognised one.
"""

import gzip
import math
import os
import zlib
from pathlib import Path

import numpy as np

from .. import limits
from .images import IMAGE_EXTENSIONS, IMAGE_FORMATS, image_folder_classes, load_image_folder, open_image
from .pickles import safe_pickle_load

__all__ = [
    "CIFAR10_CLASSES", "IDX_IMAGES_MAGIC", "IDX_LABELS_MAGIC", "IMAGE_EXTENSIONS", "IMAGE_FORMATS",
    "image_folder_classes", "load_cifar10", "load_cifar100", "load_image_folder", "load_mnist", "open_image",
    "read_cifar_batch", "read_idx", "safe_pickle_load",
]

# --------------------------------------------------------------------------- IDX

# IDX header: two zero bytes, a type code, the number of dimensions, then one
# big-endian uint32 per dimension; the data follow, big-endian, row-major.
_IDX_TYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}
IDX_IMAGES_MAGIC = 2051  # 0x00000803: uint8, 3 dimensions (N, rows, cols)
IDX_LABELS_MAGIC = 2049  # 0x00000801: uint8, 1 dimension (N,)


_GZIP_RATIO = 1032  # the most deflate can expand one byte to
_CHUNK = 16 << 20


def read_idx(path, magic=None):
    """Read an IDX file (raw or gzipped) into an ndarray of its declared shape.

    ``magic``, if given, is the expected magic number (2051 for MNIST images,
    2049 for labels). Raises ``FileNotFoundError`` if the file is missing and
    ``ValueError`` naming the file if its magic number, type code or byte count
    is wrong (a truncated file, or one with trailing bytes).

    The header is read first and the size it declares checked against what
    the file can hold (exactly, for a raw file; what deflate can expand the
    file to, for a gzipped one) and :data:`tinycnn.limits.max_array_bytes`;
    gzipped data are then streamed, so memory follows the data actually there.
    """
    path = Path(path)
    what = "an IDX file" if magic is None else f"an IDX file with magic number {magic}"
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file (expected {what})")
    with open(path, "rb") as raw:
        size = os.fstat(raw.fileno()).st_size
        gzipped = raw.read(2) == b"\x1f\x8b"
        raw.seek(0)
        stream = gzip.GzipFile(fileobj=raw, mode="rb") if gzipped else raw
        try:
            return _read_idx_stream(stream, path, what, magic, size, gzipped)
        except (EOFError, OSError, zlib.error) as e:  # gzip.BadGzipFile is an OSError
            if not gzipped:
                raise
            raise ValueError(f"{path}: corrupted or truncated gzip data ({e}); expected {what}") from None


def _read_idx_stream(f, path, what, magic, file_size, gzipped):
    start = f.read(4)
    if len(start) < 4:
        raise ValueError(f"{path}: {len(start)} bytes is too short for {what} (4-byte header)")
    found = int.from_bytes(start, "big")
    type_code, ndim = start[2], start[3]
    if start[:2] != b"\0\0" or type_code not in _IDX_TYPES or ndim == 0:
        raise ValueError(f"{path}: not an IDX file (magic number {found}, bytes {start.hex()}); expected {what}")
    if magic is not None and found != magic:
        raise ValueError(f"{path}: IDX magic number is {found}, expected {magic}")
    header = 4 + 4 * ndim
    dims = f.read(4 * ndim)
    if len(dims) < 4 * ndim:
        raise ValueError(f"{path}: truncated IDX header: {4 + len(dims)} bytes, the header alone needs {header}")
    shape = tuple(int.from_bytes(dims[4 * i: 4 * i + 4], "big") for i in range(ndim))
    dtype = np.dtype(_IDX_TYPES[type_code])
    nbytes = math.prod(shape) * dtype.itemsize  # Python ints: no wrap-around
    declared = f"header says shape {shape} of {dtype.name}, so {header + nbytes} bytes"
    if not gzipped and header + nbytes != file_size:
        state = "truncated" if file_size < header + nbytes else "has trailing bytes"
        raise ValueError(f"{path}: IDX file {state}: {declared}, but the file has {file_size}")
    if gzipped and header + nbytes > _GZIP_RATIO * file_size + 1024:
        raise ValueError(f"{path}: IDX file truncated: {declared}, more than {file_size} gzipped bytes can hold")
    limits.check_nbytes(nbytes, f"{path}: IDX header")
    data = bytearray()
    while len(data) < nbytes:
        chunk = f.read(min(_CHUNK, nbytes - len(data)))
        if not chunk:
            raise ValueError(f"{path}: IDX file truncated: {declared}, but the decompressed file has "
                             f"{header + len(data)}")
        data += chunk
    if f.read(1):
        raise ValueError(f"{path}: IDX file has trailing bytes: {declared}, but the decompressed file has more")
    array = np.frombuffer(data, dtype=dtype).reshape(shape)
    return array if dtype.isnative else array.astype(dtype.newbyteorder("="))  # writable, native order


def _find_file(folder, names, what):
    for name in names:
        for candidate in (folder / name, folder / (name + ".gz")):
            if candidate.is_file():
                return candidate
    tried = ", ".join(f"{n}[.gz]" for n in names)
    raise FileNotFoundError(f"{folder}: no {what} file found (looked for {tried})")


def load_mnist(folder, split="train"):
    """Load an MNIST-family split from ``folder``: ``(images, labels)``.

    Works for MNIST, Fashion-MNIST and KMNIST, whose files are named
    ``train-images-idx3-ubyte``, ``train-labels-idx1-ubyte``, ``t10k-images-idx3-ubyte``
    and ``t10k-labels-idx1-ubyte`` (raw or with ``.gz``; the ``.idx3-ubyte`` spelling
    also works). Images come back as ``(N, 28, 28, 1)`` uint8, labels as ``(N,)`` int64.
    """
    if split not in ("train", "test"):
        raise ValueError(f"load_mnist: split must be 'train' or 'test', got {split!r}")
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder}: no such folder (expected MNIST-format IDX files)")
    prefix = "train" if split == "train" else "t10k"
    image_path = _find_file(folder, [f"{prefix}-images-idx3-ubyte", f"{prefix}-images.idx3-ubyte"], f"{split} images")
    label_path = _find_file(folder, [f"{prefix}-labels-idx1-ubyte", f"{prefix}-labels.idx1-ubyte"], f"{split} labels")
    images = read_idx(image_path, magic=IDX_IMAGES_MAGIC)
    labels = read_idx(label_path, magic=IDX_LABELS_MAGIC).astype(np.int64)
    if len(images) != len(labels):
        raise ValueError(f"{image_path} holds {len(images)} images but {label_path} holds {len(labels)} labels")
    return images[..., None], labels


# ----------------------------------------------------------------------- CIFAR

CIFAR10_CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]


def read_cifar_batch(path, label_key=b"labels"):
    """Read one CIFAR python batch: ``(images (N, 32, 32, 3) uint8, labels (N,) int64)``.

    ``label_key`` is ``b'labels'`` for CIFAR-10, ``b'fine_labels'`` or
    ``b'coarse_labels'`` for CIFAR-100.
    """
    path = Path(path)
    batch = safe_pickle_load(path)
    what = f"a CIFAR batch: a dict with b'data' (N, 3072) uint8 and {label_key!r}"
    if not isinstance(batch, dict):
        raise ValueError(f"{path}: holds a {type(batch).__name__}, expected {what}")
    if b"data" not in batch or label_key not in batch:
        keys = sorted(k.decode("latin1") if isinstance(k, bytes) else str(k) for k in batch)
        raise ValueError(f"{path}: keys {keys}, expected {what}")
    data = batch[b"data"]
    if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3072:
        desc = f"{data.dtype} array of shape {data.shape}" if isinstance(data, np.ndarray) else type(data).__name__
        raise ValueError(f"{path}: b'data' is a {desc}, expected (N, 3072) uint8")
    try:
        labels = np.asarray(batch[label_key], dtype=np.int64)
    except (TypeError, ValueError):
        raise ValueError(f"{path}: {label_key!r} is not a list of integers") from None
    if labels.shape != (len(data),):
        raise ValueError(f"{path}: {len(data)} images but {label_key!r} has shape {labels.shape}")
    if labels.size and labels.min() < 0:
        raise ValueError(f"{path}: negative label {labels.min()} in {label_key!r}")
    # Each row is 1024 red, then 1024 green, then 1024 blue values (CHW): to NHWC.
    images = np.ascontiguousarray(data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1))
    return images, labels


def _cifar_folder(folder, sub, marker):
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder}: no such folder (expected CIFAR python batches)")
    if not (folder / marker).is_file() and (folder / sub / marker).is_file():
        return folder / sub
    return folder


def _label_names(path, key):
    if not path.is_file():
        return None
    meta = safe_pickle_load(path)
    names = meta.get(key) if isinstance(meta, dict) else None
    if not isinstance(names, list):
        raise ValueError(f"{path}: expected a dict with {key!r} (a list of class names)")
    return [n.decode("utf-8") if isinstance(n, bytes) else str(n) for n in names]


def load_cifar10(folder, split="train"):
    """Load CIFAR-10 from ``folder`` (or its ``cifar-10-batches-py`` sub-folder).

    ``split='train'`` reads ``data_batch_1`` .. ``data_batch_5``, ``'test'`` reads
    ``test_batch``. Returns ``(images (N, 32, 32, 3) uint8, labels int64, class names)``.
    """
    if split not in ("train", "test"):
        raise ValueError(f"load_cifar10: split must be 'train' or 'test', got {split!r}")
    folder = _cifar_folder(folder, "cifar-10-batches-py", "test_batch" if split == "test" else "data_batch_1")
    names = [f"data_batch_{i}" for i in range(1, 6)] if split == "train" else ["test_batch"]
    parts = [read_cifar_batch(folder / name, b"labels") for name in names]
    images = np.concatenate([p[0] for p in parts])
    labels = np.concatenate([p[1] for p in parts])
    classes = _label_names(folder / "batches.meta", b"label_names") or list(CIFAR10_CLASSES)
    _check_label_range(labels, classes, folder)
    return images, labels, classes


def load_cifar100(folder, split="train", label="fine"):
    """Load CIFAR-100 from ``folder`` (or its ``cifar-100-python`` sub-folder).

    Reads the file ``train`` or ``test``; ``label`` picks the 100 ``'fine'`` or the
    20 ``'coarse'`` classes. Returns ``(images (N, 32, 32, 3) uint8, labels int64,
    class names)``; names come from ``meta`` if present, else ``'0'``, ``'1'``...
    """
    if split not in ("train", "test"):
        raise ValueError(f"load_cifar100: split must be 'train' or 'test', got {split!r}")
    if label not in ("fine", "coarse"):
        raise ValueError(f"load_cifar100: label must be 'fine' or 'coarse', got {label!r}")
    folder = _cifar_folder(folder, "cifar-100-python", split)
    images, labels = read_cifar_batch(folder / split, f"{label}_labels".encode())
    count = 100 if label == "fine" else 20
    classes = _label_names(folder / "meta", f"{label}_label_names".encode()) or [str(i) for i in range(count)]
    _check_label_range(labels, classes, folder)
    return images, labels, classes


def _check_label_range(labels, classes, folder):
    if labels.size and labels.max() >= len(classes):
        raise ValueError(f"{folder}: label {labels.max()} out of range for {len(classes)} classes")

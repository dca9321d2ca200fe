"""Readers for image datasets people keep on disk.

- MNIST-family IDX files, raw or gzipped: :func:`read_idx`, :func:`load_mnist`
  (MNIST, Fashion-MNIST and KMNIST share the format and the file names).
- CIFAR-10 / CIFAR-100 "python version" pickle batches: :func:`read_cifar_batch`,
  :func:`load_cifar10`, :func:`load_cifar100`. The pickles are read with an
  unpickler that can only rebuild plain containers and NumPy arrays, so a
  tampered file cannot run code.
- A folder tree with one sub-folder of images per class: :func:`load_image_folder`
  (needs Pillow: ``pip install tinycnn[image]``).

Every loader returns NHWC ``uint8`` images and ``int64`` labels. Every error
names the file and says what was expected: ``FileNotFoundError`` for a missing
file, ``ValueError`` for a truncated, corrupted or unrecognised one.
"""

import gzip
import io
import pickle
import zlib
from pathlib import Path

import numpy as np

# --------------------------------------------------------------------------- IDX

# IDX header: two zero bytes, a type code, the number of dimensions, then one
# big-endian uint32 per dimension; the data follow, big-endian, row-major.
_IDX_TYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}
IDX_IMAGES_MAGIC = 2051  # 0x00000803: uint8, 3 dimensions (N, rows, cols)
IDX_LABELS_MAGIC = 2049  # 0x00000801: uint8, 1 dimension (N,)


def _read_bytes(path, what):
    """The file's bytes, gunzipped if it starts with the gzip magic."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file (expected {what})")
    raw = path.read_bytes()
    if raw[:2] == b"\x1f\x8b":
        try:
            return gzip.decompress(raw)
        except (EOFError, OSError, zlib.error) as e:
            raise ValueError(f"{path}: corrupted or truncated gzip data ({e}); expected {what}") from None
    return raw


def read_idx(path, magic=None):
    """Read an IDX file (raw or gzipped) into an ndarray of its declared shape.

    ``magic``, if given, is the expected magic number (2051 for MNIST images,
    2049 for labels). Raises ``FileNotFoundError`` if the file is missing and
    ``ValueError`` naming the file if its magic number, type code or byte count
    is wrong (a truncated file, or one with trailing bytes).
    """
    path = Path(path)
    what = "an IDX file" if magic is None else f"an IDX file with magic number {magic}"
    data = _read_bytes(path, what)
    if len(data) < 4:
        raise ValueError(f"{path}: {len(data)} bytes is too short for {what} (4-byte header)")
    found = int.from_bytes(data[:4], "big")
    type_code, ndim = data[2], data[3]
    if data[:2] != b"\0\0" or type_code not in _IDX_TYPES or ndim == 0:
        raise ValueError(f"{path}: not an IDX file (magic number {found}, bytes {data[:4].hex()}); expected {what}")
    if magic is not None and found != magic:
        raise ValueError(f"{path}: IDX magic number is {found}, expected {magic}")
    header = 4 + 4 * ndim
    if len(data) < header:
        raise ValueError(f"{path}: truncated IDX header: {len(data)} bytes, the header alone needs {header}")
    shape = tuple(int.from_bytes(data[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim))
    dtype = np.dtype(_IDX_TYPES[type_code])
    expected = header + int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    if len(data) != expected:
        state = "truncated" if len(data) < expected else "has trailing bytes"
        raise ValueError(
            f"{path}: IDX file {state}: header says shape {shape} of {dtype.name}, "
            f"so {expected} bytes, but the (decompressed) file has {len(data)}"
        )
    array = np.frombuffer(data, dtype=dtype, offset=header).reshape(shape)
    return array.astype(dtype.newbyteorder("="))  # native byte order, writable copy


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


# --------------------------------------------------------------------- pickles

# The only globals a CIFAR pickle may name: what NumPy needs to rebuild an
# ndarray (under NumPy 1 and NumPy 2 module names), plus _codecs.encode for
# latin1 only (see _latin1_encode). Containers, strings and numbers need none.
_ALLOWED_GLOBALS = {
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.multiarray", "scalar"),
    ("numpy._core.multiarray", "scalar"),
    ("numpy.core.numeric", "_frombuffer"),
    ("numpy._core.numeric", "_frombuffer"),
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
}


class _Forbidden(pickle.UnpicklingError):
    pass


def _latin1_encode(text, encoding="latin1"):
    """Python 3 pickles ``bytes`` at protocol <= 2 as ``_codecs.encode(str, 'latin1')``."""
    if encoding not in ("latin1", "latin-1") or not isinstance(text, str):
        raise _Forbidden(f"_codecs.encode with {encoding!r} is forbidden (only latin1 strings)")
    return text.encode("latin1")


class _ArrayUnpickler(pickle.Unpickler):
    """An unpickler that refuses every global except NumPy's array rebuilders."""

    def find_class(self, module, name):
        if (module, name) == ("_codecs", "encode"):
            return _latin1_encode
        if (module, name) in _ALLOWED_GLOBALS:
            return super().find_class(module, name)
        raise _Forbidden(f"global '{module}.{name}' is forbidden (only NumPy arrays are allowed)")


def safe_pickle_load(path):
    """Unpickle ``path`` allowing only builtin containers/scalars and NumPy arrays.

    Strings from Python 2 pickles come back as ``bytes`` (``encoding='bytes'``,
    as the CIFAR site recommends), so dictionary keys are ``b'data'`` etc.
    A pickle that names any other global (``os.system``, ``builtins.eval``...)
    raises ``ValueError`` before anything runs; object arrays are refused too.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file (expected a pickle)")
    raw = path.read_bytes()
    try:
        obj = _ArrayUnpickler(io.BytesIO(raw), encoding="bytes").load()
    except _Forbidden as e:
        raise ValueError(f"{path}: refused pickle: {e}") from None
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, KeyError, IndexError, AttributeError,
            OverflowError, MemoryError) as e:
        raise ValueError(f"{path}: corrupted or truncated pickle ({type(e).__name__}: {e})") from None
    _refuse_object_arrays(obj, path)
    return obj


def _refuse_object_arrays(obj, path):
    if isinstance(obj, np.ndarray) and obj.dtype.hasobject:
        raise ValueError(f"{path}: pickle holds an object array; only numeric arrays are allowed")
    if isinstance(obj, dict):
        for value in obj.values():
            _refuse_object_arrays(value, path)
    elif isinstance(obj, (list, tuple)):
        for value in obj:
            _refuse_object_arrays(value, path)


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


# ---------------------------------------------------------------- image folder

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff", ".ppm", ".pgm", ".pbm")
_GRAY_MODES = {"1", "L", "LA", "I", "I;16", "I;16B", "I;16L", "F"}


def _pillow():
    try:
        from PIL import Image
    except ImportError:
        raise ImportError("reading image folders needs Pillow: pip install tinycnn[image]") from None
    return Image


def image_folder_classes(root):
    """``[(class name, [image paths])]`` for a class-per-folder tree, sorted by name."""
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"{root}: no such folder (expected one sub-folder of images per class)")
    classes = []
    for sub in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")):
        files = sorted(f for f in sub.iterdir() if f.is_file() and f.suffix.lower() in IMAGE_EXTENSIONS)
        classes.append((sub.name, files))
    return classes


def load_image_folder(root, size=None, mode=None):
    """Load ``root/<class>/<image>`` into ``(images (N, H, W, C) uint8, labels int64, classes)``.

    Classes are the sub-folder names sorted; labels index that list. ``mode`` is
    ``'RGB'`` (C=3) or ``'L'`` (C=1); by default ``'L'`` if every image is greyscale,
    else ``'RGB'``. ``size`` (an int or ``(height, width)``) resizes every image
    (bilinear); without it all images must already share one size.
    """
    Image = _pillow()
    root = Path(root)
    if mode not in (None, "RGB", "L"):
        raise ValueError(f"load_image_folder: mode must be 'RGB', 'L' or None, got {mode!r}")
    if size is not None:
        size = (size, size) if isinstance(size, int) else tuple(size)
        if len(size) != 2 or not all(isinstance(s, int) and s > 0 for s in size):
            raise ValueError(f"load_image_folder: size must be a positive int or (height, width), got {size!r}")
    classes = image_folder_classes(root)
    if not classes:
        raise ValueError(f"{root}: no class sub-folders (expected one sub-folder of images per class)")
    for name, files in classes:
        if not files:
            raise ValueError(f"{root / name}: class folder has no images (extensions {', '.join(IMAGE_EXTENSIONS)})")

    def open_image(path):
        try:
            image = Image.open(path)
            image.load()
        except (OSError, SyntaxError, ValueError) as e:  # PIL's UnidentifiedImageError is an OSError
            raise ValueError(f"{path}: cannot read image ({e})") from None
        return image

    if mode is None:
        gray = True
        for _, files in classes:
            for f in files:
                with open_image(f) as image:
                    gray = gray and image.mode in _GRAY_MODES
        mode = "L" if gray else "RGB"

    images, labels, first = [], [], None
    for label, (_, files) in enumerate(classes):
        for f in files:
            with open_image(f) as image:
                image = image.convert(mode)
                if size is not None and image.size != (size[1], size[0]):
                    image = image.resize((size[1], size[0]), Image.BILINEAR)
                array = np.asarray(image, dtype=np.uint8)
            if first is None:
                first = (f, array.shape)
            elif array.shape != first[1]:
                raise ValueError(
                    f"{f}: image is {array.shape[1]}x{array.shape[0]} but {first[0]} is "
                    f"{first[1][1]}x{first[1][0]}; pass size=(height, width) to resize"
                )
            images.append(array)
            labels.append(label)
    stacked = np.stack(images)
    if stacked.ndim == 3:
        stacked = stacked[..., None]
    return stacked, np.asarray(labels, dtype=np.int64), [name for name, _ in classes]

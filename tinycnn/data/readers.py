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
import math
import os
import pickle
import pickletools
import zlib
from pathlib import Path

import numpy as np

from .. import limits

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


# --------------------------------------------------------------------- pickles

# A CIFAR pickle rebuilds its arrays through numpy.core.multiarray._reconstruct,
# numpy.ndarray and numpy.dtype (protocol 5: numpy.core.numeric._frombuffer; a
# NumPy scalar: numpy.core.multiarray.scalar).  NumPy's own versions trust the
# pickle (a crafted dtype state can make it read bytes of the file as object
# pointers), so those names resolve to the stand-ins below instead: they accept
# plain numeric dtypes only, check that the bytes are exactly shape x itemsize,
# and copy them into a fresh array.  _codecs.encode and bytes (how Python 3
# pickles bytes at protocol <= 2) are allowed for latin1 text and for b''
# only.  Every other global is refused.

_DTYPE_CODES = {"b1", "i1", "u1", "i2", "u2", "i4", "u4", "i8", "u8", "f2", "f4", "f8"}


class _Forbidden(pickle.UnpicklingError):
    pass


def _text(value):
    """Python 2 strings arrive as bytes under ``encoding='bytes'``."""
    return value.decode("latin1") if isinstance(value, bytes) else value


class _Dtype:
    """Stands in for ``numpy.dtype(code, align, copy)`` and its pickled state."""

    def __init__(self, code, align=False, copy=True):
        code = _text(code)
        if not isinstance(code, str) or code not in _DTYPE_CODES:
            raise _Forbidden(f"numpy.dtype {code!r} is forbidden (only plain numeric dtypes, no object arrays)")
        self.dtype = np.dtype(code)

    def __setstate__(self, state):
        # (version, byte order, subarray, names, fields, itemsize, alignment, flags[, metadata])
        if not isinstance(state, tuple) or len(state) not in (8, 9) or state[2:5] != (None, None, None):
            raise _Forbidden("a numpy.dtype state other than a plain numeric type's is forbidden")
        order = _text(state[1])
        if order not in ("<", ">", "|", "="):
            raise _Forbidden(f"numpy.dtype byte order {order!r} is forbidden")
        if order in "<>" and self.dtype.itemsize > 1:
            self.dtype = self.dtype.newbyteorder(order)


def _array_from_bytes(data, dtype, shape, fortran):
    """A fresh array of ``shape`` from exactly ``prod(shape) * itemsize`` bytes."""
    if not isinstance(dtype, _Dtype):
        raise _Forbidden("an array's dtype must be a pickled numpy.dtype")
    if not (isinstance(shape, tuple) and len(shape) <= 32
            and all(isinstance(n, int) and not isinstance(n, bool) and n >= 0 for n in shape)):
        raise _Forbidden(f"array shape {str(shape)[:80]} is not a tuple of non-negative ints")
    if isinstance(data, pickle.PickleBuffer):
        data = data.raw()
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise _Forbidden(f"array data must be bytes, got {type(data).__name__} (object arrays are forbidden)")
    nbytes = math.prod(shape) * dtype.dtype.itemsize
    if nbytes != len(data):
        raise _Forbidden(f"array of shape {shape} and dtype {dtype.dtype} needs {nbytes} bytes, "
                         f"the pickle has {len(data)}")
    return np.frombuffer(data, dtype=dtype.dtype).reshape(shape, order="F" if fortran else "C").copy(order="K")


class _Ndarray:
    """Stands in for ``numpy.ndarray``: only ever an argument of ``_reconstruct``."""

    def __new__(cls, *args, **kwargs):
        raise _Forbidden("calling numpy.ndarray is forbidden (it allocates uninitialised memory)")


class _Array:
    """What ``_reconstruct(ndarray, (0,), b'b')`` returns; ``__setstate__``
    receives the array's dtype, shape and bytes.  Replaced by the array
    itself after unpickling (:func:`_resolve_arrays`)."""

    array = None

    def __setstate__(self, state):
        if isinstance(state, tuple) and len(state) == 5:
            state = state[1:]  # (version, shape, dtype, fortran, data)
        if not isinstance(state, tuple) or len(state) != 4:
            raise _Forbidden("unexpected ndarray state")
        shape, dtype, fortran, data = state
        self.array = _array_from_bytes(data, dtype, shape, bool(fortran))


def _reconstruct(cls, shape, typecode):
    if cls is not _Ndarray:
        raise _Forbidden("numpy _reconstruct may only rebuild numpy.ndarray")
    return _Array()


def _frombuffer(data, dtype, shape, order):
    return _array_from_bytes(data, dtype, shape, _text(order) == "F")


def _scalar(dtype, data):
    return _array_from_bytes(data, dtype, (), False)[()]


def _empty_bytes(*args):
    """Python 3 pickles ``b''`` at protocol <= 2 as ``bytes()``; nothing else may call it."""
    if args:
        raise _Forbidden("calling bytes with arguments is forbidden")
    return b""


def _latin1_encode(text, encoding="latin1"):
    if encoding not in ("latin1", "latin-1") or not isinstance(text, str):
        raise _Forbidden(f"_codecs.encode with {encoding!r} is forbidden (only latin1 strings)")
    return text.encode("latin1")


_STAND_INS = {("_codecs", "encode"): _latin1_encode, ("__builtin__", "bytes"): _empty_bytes,
              ("builtins", "bytes"): _empty_bytes, ("numpy", "dtype"): _Dtype, ("numpy", "ndarray"): _Ndarray}
for _module in ("numpy.core", "numpy._core"):
    _STAND_INS[(f"{_module}.multiarray", "_reconstruct")] = _reconstruct
    _STAND_INS[(f"{_module}.multiarray", "scalar")] = _scalar
    _STAND_INS[(f"{_module}.numeric", "_frombuffer")] = _frombuffer


class _ArrayUnpickler(pickle.Unpickler):
    """An unpickler whose only globals are the stand-ins above."""

    def find_class(self, module, name):
        if (module, name) in _STAND_INS:
            return _STAND_INS[(module, name)]
        raise _Forbidden(f"global '{module}.{name}' is forbidden (only NumPy arrays are allowed)")


def _resolve_arrays(obj):
    """Replace every :class:`_Array` in the unpickled structure by its array,
    visiting each container once (a pickle can share children, nest deeply
    or refer to itself) and without recursion."""

    def real(value):
        if isinstance(value, _Array):
            if value.array is None:
                raise _Forbidden("an array without its state")
            return value.array
        return value.dtype if isinstance(value, _Dtype) else value

    top = [obj]
    todo, seen = [top], {id(top)}
    while todo:
        container = todo.pop()
        if isinstance(container, dict):
            if any(isinstance(k, (_Array, _Dtype)) for k in container):
                raise _Forbidden("an array as a dict key")
            children = list(container.items())
            for key, value in children:
                container[key] = real(value)
            children = container.values()
        elif isinstance(container, list):
            container[:] = [real(value) for value in container]
            children = container
        else:  # a tuple: cannot be mended in place
            if any(isinstance(value, (_Array, _Dtype)) for value in container):
                raise _Forbidden("arrays inside tuples are not supported")
            children = container
        for child in children:
            if isinstance(child, (dict, list, tuple)) and id(child) not in seen:
                seen.add(id(child))
                todo.append(child)
    return top[0]


def _check_memo_keys(raw):
    """Refuse memo keys a pickler would not write: CPython's unpickler keeps
    its memo in an array indexed by key, so one 6-byte LONG_BINPUT of key
    2**31 makes it allocate gigabytes.  A pickler numbers its memo entries in
    order, so no key can exceed the number of opcodes before it."""
    for count, (opcode, arg, _) in enumerate(pickletools.genops(raw)):
        if opcode.name in ("PUT", "BINPUT", "LONG_BINPUT") and not 0 <= int(arg) <= count:
            raise _Forbidden(f"memo key {arg} at opcode {count}: a pickler numbers its memo in order")


def safe_pickle_load(path):
    """Unpickle ``path`` allowing only builtin containers/scalars and NumPy arrays.

    Strings from Python 2 pickles come back as ``bytes`` (``encoding='bytes'``,
    as the CIFAR site recommends), so dictionary keys are ``b'data'`` etc.
    A pickle that names any other global (``os.system``, ``builtins.eval``...)
    raises ``ValueError`` before anything runs; arrays are rebuilt by tinycnn
    from their bytes, never by NumPy's unpickling code, and only with plain
    numeric dtypes (no object arrays).  The file may be at most
    :data:`tinycnn.limits.max_array_bytes`; what it unpickles to takes at
    most a small multiple of its size.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file (expected a pickle)")
    size = path.stat().st_size
    if size > limits.max_array_bytes:
        raise ValueError(f"{path}: {size} bytes, over tinycnn.limits.max_array_bytes = {limits.max_array_bytes}")
    raw = path.read_bytes()
    try:
        _check_memo_keys(raw)
        return _resolve_arrays(_ArrayUnpickler(io.BytesIO(raw), encoding="bytes").load())
    except _Forbidden as e:
        raise ValueError(f"{path}: refused pickle: {e}") from None
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, KeyError, IndexError, AttributeError,
            OverflowError, MemoryError, RecursionError, UnicodeDecodeError, LookupError) as e:
        raise ValueError(f"{path}: corrupted or truncated pickle ({type(e).__name__}: {str(e)[:200]})") from None


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
# The decoders Pillow may use, whatever a file's name or first bytes say (an
# EPS file named .png would otherwise go to Ghostscript).  PPM covers .pgm/.pbm.
IMAGE_FORMATS = ("PNG", "JPEG", "BMP", "GIF", "WEBP", "TIFF", "PPM")


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


def open_image(path, load=True):
    """A Pillow image of ``path`` opened by one of :data:`IMAGE_FORMATS`'
    decoders, its size checked against :data:`tinycnn.limits.max_image_pixels`
    before any pixel is decoded (``load=False``: the header only); any
    failure is a ``ValueError`` naming the file."""
    Image = _pillow()
    try:
        image = Image.open(path, formats=IMAGE_FORMATS)
    except Image.DecompressionBombError as e:
        raise ValueError(f"{path}: image too large ({e})") from None
    except Exception as e:  # noqa: BLE001 -- a decoder may raise anything on a crafted file
        raise ValueError(f"{path}: cannot read image as {', '.join(IMAGE_FORMATS)} ({type(e).__name__}: {e})") from None
    width, height = image.size
    if width * height > limits.max_image_pixels:
        image.close()
        raise ValueError(f"{path}: image is {width}x{height}, over tinycnn.limits.max_image_pixels = "
                         f"{limits.max_image_pixels} pixels (raise it if the file is trusted)")
    if load:
        try:
            image.load()
        except Exception as e:  # noqa: BLE001 -- as above
            image.close()
            raise ValueError(f"{path}: cannot read image ({type(e).__name__}: {e})") from None
    return image


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

    if mode is None:
        gray = True
        for _, files in classes:
            for f in files:
                with open_image(f, load=False) as image:  # the header says the mode
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

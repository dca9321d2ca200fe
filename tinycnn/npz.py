"""Reading ``.npz`` archives that may come from anyone.

``numpy.load`` trusts the archive: it decompresses a member whole before
looking at it (a 1 KB bzip2 member can ask for gigabytes) and allocates the
shape an ``.npy`` header declares.  :func:`read_npz` reads the zip directory
and each header first and refuses, with a ``ValueError`` naming the file,
anything that is not a plain archive of numeric arrays whose declared sizes
the file can actually hold:

- members must be ``.npy`` files, each named once, not encrypted, stored
  (or, with ``compressed=True``, deflated: ``numpy.savez_compressed``);
  bzip2 and lzma members are refused;
- a stored member's size must equal its size in the archive, a deflated
  member may declare at most what deflate can expand to (1032:1), and the
  members together cannot be larger than the file;
- each header must declare a numeric or bool dtype (no objects, no records)
  and a shape whose bytes are exactly what the member holds, within
  :data:`tinycnn.limits.max_array_bytes`;
- only then is the array allocated, and the data are streamed into it (the
  zip CRC is checked at the end of each member).

Nothing is unpickled and no code in the file can run.
"""

import ast
import math
import os
import struct
import zipfile
import zlib

import numpy as np

from . import limits

_MAGIC = b"\x93NUMPY"
_MAX_HEADER = 10_000      # numpy.lib.format's own cap on an .npy header
_MAX_DIMS = 32
_DEFLATE_RATIO = 1032     # the most deflate can expand one byte to
_CHUNK = 16 << 20


class NpzError(ValueError):
    """An archive :func:`read_npz` refuses; ``reason`` is the message without the path."""

    def __init__(self, path, reason):
        super().__init__(f"{path}: {reason}")
        self.path, self.reason = path, reason


def read_npz(path, compressed=False):
    """``{name: ndarray}`` of the ``.npz`` file at ``path`` (names without
    ``.npy``).  ``compressed=True`` also accepts deflated members.  Raises
    ``FileNotFoundError`` if there is no file and ``ValueError`` naming it
    for anything else that is wrong with it."""
    path = os.fspath(path)
    try:
        with open(path, "rb") as f, zipfile.ZipFile(f) as archive:
            infos = _check_directory(archive, os.fstat(f.fileno()).st_size, compressed, path)
            return {info.filename[:-len(".npy")]: _read_member(archive, info, path) for info in infos}
    except (FileNotFoundError, NpzError):
        raise
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, EOFError, zlib.error, NotImplementedError,
            RuntimeError, struct.error, ValueError) as err:  # a damaged zip raises any of these (names: Unicode)
        raise NpzError(path, f"not a readable .npz file (truncated or corrupted?): "
                         f"{type(err).__name__}: {err}") from None


def _check_directory(archive, file_size, compressed, path):
    infos = archive.infolist()
    if len(infos) > limits.max_members:
        raise NpzError(path, f"{len(infos)} members, over tinycnn.limits.max_members = {limits.max_members}")
    methods = (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED) if compressed else (zipfile.ZIP_STORED,)
    names, packed = set(), 0
    for info in infos:
        name = info.filename
        if not name.endswith(".npy") or name in names:
            raise NpzError(path, f"member {name!r} is {'repeated' if name in names else 'not an .npy file'}; "
                             "expected an .npz archive of .npy arrays")
        names.add(name)
        if info.flag_bits & 0x1:
            raise NpzError(path, f"member {name!r} is encrypted")
        if info.compress_type not in methods:
            allowed = " or ".join(("stored", "deflated")[:len(methods)])
            raise NpzError(path, f"member {name!r} uses zip compression method {info.compress_type}; "
                             f"expected {allowed}")
        bound = info.compress_size * (_DEFLATE_RATIO if info.compress_type == zipfile.ZIP_DEFLATED else 1)
        if info.file_size > bound + 64:
            raise NpzError(path, f"member {name!r} declares {info.file_size} bytes, more than its "
                             f"{info.compress_size} bytes in the archive can hold")
        if info.file_size > limits.max_array_bytes:
            raise NpzError(path, f"member {name!r} declares {info.file_size} bytes, over "
                                 f"tinycnn.limits.max_array_bytes = {limits.max_array_bytes}")
        packed += info.compress_size
    if packed > file_size:
        raise NpzError(path, f"members declare {packed} bytes in the archive, but the file has {file_size}")
    return infos


def read_npy(path):
    """The array in the ``.npy`` file at ``path``, read as carefully as
    :func:`read_npz` reads a member (the header must declare exactly the
    bytes the file holds)."""
    path = os.fspath(path)
    with open(path, "rb") as f:
        return _read_array(f, os.fstat(f.fileno()).st_size, path, "array")


def _read_member(archive, info, path):
    with archive.open(info) as f:
        array = _read_array(f, info.file_size, path, f"member {info.filename!r}")
        f.read()  # the end of the member: zipfile checks its CRC here
    return array


def _read_array(f, size, path, where):
    """Read the .npy stream ``f`` of ``size`` bytes."""
    dtype, shape, fortran, offset = _read_header(f, path, where)
    nbytes = math.prod(shape) * dtype.itemsize
    if offset + nbytes != size:
        raise NpzError(path, f"{where}: header declares shape {shape} of {dtype}, {nbytes} bytes, "
                             f"but {size - offset} follow it")
    data = np.empty(nbytes, dtype=np.uint8)
    view, done = memoryview(data), 0
    while done < nbytes:
        n = f.readinto(view[done:done + _CHUNK])
        if not n:
            raise NpzError(path, f"{where}: truncated: {done} of {nbytes} bytes")
        done += n
    return data.view(dtype).reshape(shape, order="F" if fortran else "C")


def _read_header(f, path, where):
    """``(dtype, shape, fortran_order, data offset)`` of an .npy stream, checked."""
    start = f.read(8)
    if len(start) != 8 or start[:6] != _MAGIC or start[6] not in (1, 2, 3):
        raise NpzError(path, f"{where}: not .npy data (starts {start[:8]!r})")
    version = start[6]
    size_format = "<H" if version == 1 else "<I"
    field = f.read(struct.calcsize(size_format))
    if len(field) != struct.calcsize(size_format):
        raise NpzError(path, f"{where}: truncated .npy header")
    (length,) = struct.unpack(size_format, field)
    if length > _MAX_HEADER:
        raise NpzError(path, f"{where}: .npy header of {length} bytes, over {_MAX_HEADER}")
    text = f.read(length)
    if len(text) != length:
        raise NpzError(path, f"{where}: truncated .npy header")
    try:
        header = ast.literal_eval(text.decode("utf-8" if version == 3 else "latin1"))
    except (SyntaxError, ValueError, TypeError, MemoryError, RecursionError, UnicodeDecodeError):
        raise NpzError(path, f"{where}: unreadable .npy header {text[:80]!r}") from None
    if not isinstance(header, dict) or set(header) != {"descr", "fortran_order", "shape"}:
        raise NpzError(path, f"{where}: .npy header {text[:80]!r} lacks descr, fortran_order and shape")
    descr, fortran, shape = header["descr"], header["fortran_order"], header["shape"]
    if not (isinstance(shape, tuple) and len(shape) <= _MAX_DIMS
            and all(isinstance(n, int) and not isinstance(n, bool) and n >= 0 for n in shape)):
        raise NpzError(path, f"{where}: .npy shape must be a tuple of at most {_MAX_DIMS} non-negative ints, "
                         f"got {shape!r}")
    if not isinstance(fortran, bool):
        raise NpzError(path, f"{where}: .npy fortran_order must be a bool, got {fortran!r}")
    return _numeric_dtype(descr, path, where), shape, fortran, len(start) + len(field) + length


def _numeric_dtype(descr, path, where):
    """The dtype ``descr`` names if it is a plain bool, integer, float or complex."""
    try:
        dtype = np.dtype(descr) if isinstance(descr, str) else None
    except (TypeError, ValueError, SyntaxError):
        dtype = None
    if dtype is None or dtype.kind not in "biufc" or dtype.names is not None or dtype.subdtype is not None:
        raise NpzError(path, f"{where}: dtype {descr!r} is not a plain numeric or bool type")
    return dtype

"""A pickle reader that cannot run code: :func:`safe_pickle_load`.

CIFAR-10/100's "python version" is a set of pickled dicts of NumPy arrays.
``pickle.load`` would run whatever a tampered file names; this unpickler
resolves only a handful of globals, each to a stand-in of tinycnn's own that
rebuilds plain containers and numeric arrays from their bytes.
"""

import io
import math
import pickle
import pickletools
from pathlib import Path

import numpy as np

from .. import limits

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

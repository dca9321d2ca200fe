"""Saving and loading state dicts and checkpoints as .npz files (no pickle).

``tinycnn.save`` and ``tinycnn.load`` are this module's :func:`save` and
:func:`load` (named as ``torch.serialization``; it was ``tinycnn.io``, which
still works with a ``DeprecationWarning``).

``save(obj, path)`` takes a nested structure of dicts (str or int keys),
lists, tuples, ndarrays, Tensors, numbers, strings, bools and None.  Arrays
are stored as .npz members; the structure and the small values go into a JSON
member; a SHA-256 over both is stored too, so a truncated or bit-flipped file
is detected on load.  Files are written atomically: to a temporary file in
the same folder, flushed and fsynced, then renamed over the real name, so a
crash never leaves a half-written file under that name.  A writer killed
mid-write (SIGKILL, power loss) can leave its temporary file
``.<name>.<pid>.<random>.tmp`` behind; the next write to the same name
removes such leftovers (see :func:`atomic_write`).
"""

import hashlib
import json
import numbers
import os
import re
import tempfile
import time

import numpy as np

from . import limits, npz
from .tensor import Tensor

_FORMAT = "tinycnn"
_VERSION = 1
_IMPORTED = time.time()  # no later than anything this process wrote


def save(obj, path):
    """Write ``obj`` to ``path`` (an .npz file) atomically; returns the path."""
    path = _path_arg("save", path)
    arrays = {}
    tree = _encode(obj, arrays, "obj")
    meta = json.dumps({"format": _FORMAT, "version": _VERSION, "tree": tree}, sort_keys=True).encode()
    members = {"__meta__": np.frombuffer(meta, dtype=np.uint8)}
    members.update(arrays)
    members["__checksum__"] = np.frombuffer(_digest(members).encode(), dtype=np.uint8)
    atomic_write(path, lambda f: np.savez(f, **members))
    return path


def load(path):
    """Read a file written by :func:`save`.

    The file is untrusted until proven otherwise: it is read with
    :func:`tinycnn.npz.read_npz` (stored members only, as :func:`save` writes
    them; every size bounded by the file's), its SHA-256 is checked, and its
    structure is checked against the format before anything is built from
    it.  Anything wrong raises ``ValueError`` naming the file.
    """
    path = _path_arg("load", path)
    if not os.path.exists(path):
        raise FileNotFoundError(f"load: no such file: {path}")
    try:
        members = npz.read_npz(path)
    except npz.NpzError as err:
        raise ValueError(f"load: {path} is not a readable tinycnn .npz file: {err.reason}") from None
    if "__meta__" not in members or "__checksum__" not in members:
        raise ValueError(f"load: {path} is an .npz file but not one written by tinycnn.save (no __meta__/__checksum__)")
    stored, meta = members.pop("__checksum__"), members["__meta__"]
    for name, array, most in (("__checksum__", stored, 64), ("__meta__", meta, limits.max_meta_bytes)):
        if array.dtype != np.uint8 or array.ndim != 1 or array.size > most:
            raise ValueError(f"load: {path}: {name} must be at most {most} bytes (uint8, 1-D), "
                             f"got {array.dtype} of shape {array.shape}")
    if stored.tobytes().decode("ascii", "replace") != _digest(members):
        raise ValueError(f"load: {path} failed its checksum: the file is corrupted or was modified")
    del members["__meta__"]
    try:
        meta = json.loads(meta.tobytes().decode("utf-8"))
    except (ValueError, RecursionError) as err:  # UnicodeDecodeError and JSONDecodeError are ValueErrors
        raise ValueError(f"load: {path}: __meta__ is not valid JSON ({type(err).__name__}: {err})") from None
    if not isinstance(meta, dict) or meta.get("format") != _FORMAT or meta.get("version") != _VERSION:
        found = (meta.get("format"), meta.get("version")) if isinstance(meta, dict) else (type(meta).__name__, None)
        raise ValueError(f"load: {path} has format {found[0]!r} version {found[1]!r}, "
                         f"expected {_FORMAT!r} version {_VERSION}")
    try:
        return _decode(meta.get("tree"), members, 0)
    except _Malformed as err:
        raise ValueError(f"load: {path}: malformed structure: {err}") from None


def _path_arg(op, path):
    try:
        return os.fspath(path)
    except TypeError:
        raise TypeError(f"{op}: path must be a str or os.PathLike, got {type(path).__name__}") from None


def atomic_write(path, write):
    """Call ``write(fileobj)`` on a temporary file beside ``path``, fsync it,
    then rename it to ``path``.  On any error the temporary file is removed
    and ``path`` is untouched."""
    path = _path_arg("atomic_write", path)
    if os.path.isdir(path):
        raise ValueError(f"atomic_write: path must be a file name, got the folder {path}")
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    remove_stale_temporaries(path)
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=f".{os.path.basename(path)}.{os.getpid()}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    try:
        dir_fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(dir_fd)
    except OSError:
        pass
    finally:
        os.close(dir_fd)


def remove_stale_temporaries(path):
    """Remove temporary files that killed writers of ``path`` left behind.

    Only files named like :func:`atomic_write`'s own temporaries for this
    very ``path`` (``.<name>.<pid>.<random>.tmp``), whose writer process
    ``pid`` no longer runs, and which were last modified before this process
    imported tinycnn are removed: a live writer's file is never touched.
    Returns the removed paths.
    """
    folder = os.path.dirname(os.path.abspath(path))
    pattern = re.compile(re.escape("." + os.path.basename(path)) + r"\.(\d+)\.[A-Za-z0-9_]+\.tmp")
    removed = []
    try:
        names = os.listdir(folder)
    except OSError:
        return removed
    for name in names:
        match = pattern.fullmatch(name)
        if match is None or int(match.group(1)) == os.getpid() or _is_running(int(match.group(1))):
            continue
        stale = os.path.join(folder, name)
        try:
            if os.path.isfile(stale) and not os.path.islink(stale) and os.path.getmtime(stale) < _IMPORTED:
                os.unlink(stale)
                removed.append(stale)
        except OSError:  # another process removed it first, or we may not
            pass
    return removed


def _is_running(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError, OSError):
        return True  # exists under another user, or cannot tell: keep its file
    return True


def _digest(members):
    h = hashlib.sha256()
    for key in sorted(members):
        a = np.ascontiguousarray(members[key])
        h.update(f"{key}|{a.dtype.str}|{a.shape}|".encode())
        h.update(a.tobytes())
    return h.hexdigest()


def _encode(obj, arrays, where, depth=0):
    if depth > limits.max_depth:
        raise ValueError(f"save: {where} is nested deeper than tinycnn.limits.max_depth = {limits.max_depth}")
    if isinstance(obj, Tensor):
        obj = obj.data
    if isinstance(obj, np.ndarray):
        if obj.dtype.kind not in "biufc":
            raise TypeError(f"save: {where} is an array of dtype {obj.dtype}; only numeric and bool arrays can be saved")
        key = f"a{len(arrays)}"
        arrays[key] = obj
        return {"t": "array", "key": key}
    if isinstance(obj, np.generic):
        obj = obj.item()
    if obj is None or isinstance(obj, (bool, str)):
        return {"t": "value", "v": obj}
    if isinstance(obj, numbers.Integral):
        return {"t": "value", "v": int(obj)}
    if isinstance(obj, numbers.Real):
        value = float(obj)
        if not np.isfinite(value):
            return {"t": "float", "v": repr(value)}
        return {"t": "value", "v": value}
    if isinstance(obj, dict):
        keys = list(obj)
        for k in keys:
            if not isinstance(k, (str, int)) or isinstance(k, bool):
                raise TypeError(f"save: {where} has a key {k!r} of type {type(k).__name__}; keys must be str or int")
        return {"t": "dict", "keys": keys,
                "values": [_encode(obj[k], arrays, f"{where}[{k!r}]", depth + 1) for k in keys]}
    if isinstance(obj, (list, tuple)):
        return {"t": "tuple" if isinstance(obj, tuple) else "list",
                "items": [_encode(v, arrays, f"{where}[{i}]", depth + 1) for i, v in enumerate(obj)]}
    raise TypeError(f"save: {where} is a {type(obj).__name__}; tinycnn saves dicts, lists, arrays, numbers, "
                    "strings, bools and None (no pickled objects)")


class _Malformed(Exception):
    pass


_NODE_FIELDS = {"array": {"key"}, "value": {"v"}, "float": {"v"}, "dict": {"keys", "values"},
                "list": {"items"}, "tuple": {"items"}}


def _decode(node, arrays, depth):
    """The object ``node`` (a JSON tree written by :func:`_encode`) stands
    for; every node is checked, since a file with a valid checksum may
    still have been crafted."""
    if depth > limits.max_depth:
        raise _Malformed(f"nested deeper than tinycnn.limits.max_depth = {limits.max_depth}")
    kind = node.get("t") if isinstance(node, dict) else None
    if kind not in _NODE_FIELDS or set(node) != _NODE_FIELDS[kind] | {"t"}:
        raise _Malformed(f"unexpected node {str(node)[:80]}")
    if kind == "array":
        if not isinstance(node["key"], str) or node["key"] not in arrays:
            raise _Malformed(f"no array member {str(node['key'])[:80]}")
        return arrays[node["key"]]
    if kind == "value":
        if node["v"] is not None and not isinstance(node["v"], (bool, int, float, str)):
            raise _Malformed(f"a value must be a number, string, bool or null, got {str(node['v'])[:80]}")
        return node["v"]
    if kind == "float":
        if node["v"] not in ("inf", "-inf", "nan"):
            raise _Malformed(f"a non-finite float must be 'inf', '-inf' or 'nan', got {str(node['v'])[:80]}")
        return float(node["v"])
    if kind == "dict":
        keys, values = node["keys"], node["values"]
        if not (isinstance(keys, list) and isinstance(values, list) and len(keys) == len(values)
                and all(isinstance(k, (str, int)) and not isinstance(k, bool) for k in keys)):
            raise _Malformed("a dict needs equally long lists of str or int keys and of values")
        return {k: _decode(v, arrays, depth + 1) for k, v in zip(keys, values)}
    if not isinstance(node["items"], list):
        raise _Malformed(f"a {kind} needs a list of items")
    items = [_decode(v, arrays, depth + 1) for v in node["items"]]
    return tuple(items) if kind == "tuple" else items

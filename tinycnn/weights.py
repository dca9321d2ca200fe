"""Pretrained weights in and out: PyTorch-layout state dicts (torchvision's
ResNet, timm's SE-ResNet and Xception) read from ``.safetensors``, ``.npz`` or
``.pth`` and converted to tinycnn's layouts, and back.

Keys are the same on both sides (the models use torchvision's and timm's
names); only the layouts differ, and the module owning a key decides:

==================  ==============================  ===========================
module              PyTorch / timm                  tinycnn
==================  ==============================  ===========================
Conv2d              (O, I/groups, KH, KW)  OIHW     (KH, KW, I/groups, O) HWIO
DepthwiseConv2d     (C*M, 1, KH, KW)                (KH, KW, C, M)
Linear              (out, in) or (out, in, 1, 1)    (in, out)
                    (timm's SE fc1/fc2 are 1x1
                    convolutions)
everything else     as is                           as is
==================  ==============================  ===========================

``num_batches_tracked`` may be present or absent in a file.  Every key,
shape and dtype is checked before anything is copied: a failed load raises
``ValueError`` naming the file and the offending keys, and leaves the model
unchanged.  Readers: ``.safetensors`` through safetensors' NumPy API (no
torch), ``.npz`` through NumPy (no pickle), ``.pth``/``.pt`` through
``torch.load(weights_only=True)`` when torch is installed.
"""

import os
import pickle
import re
import zipfile
from collections import namedtuple

import numpy as np

from . import limits, nn, npz, serialization

LoadResult = namedtuple("LoadResult", ["loaded_keys", "missing_keys", "unexpected_keys", "reset_keys"])
LoadResult.__doc__ = """What ``load_weights`` did: keys loaded, keys the model has but the
file lacked (only ``num_batches_tracked``, or anything with ``strict=False``),
keys of the file the model has no use for, and head keys re-initialised
because the file's head has another number of classes."""

_FLOAT_KINDS = "f"
_MAX_LISTED = 12


# ------------------------------------------------------------------ layouts
def to_torch_layout(module, key, array, se_as_conv=True):
    """``array`` (tinycnn layout), stored under ``key`` of ``module``, in
    PyTorch's layout.  ``se_as_conv``: a Linear inside an SEModule becomes
    a 1x1 convolution weight (out, in, 1, 1), as timm stores it."""
    array = np.asarray(array)
    if key != "weight":
        return array
    if isinstance(module, nn.DepthwiseConv2d):          # (KH, KW, C, M) -> (C*M, 1, KH, KW)
        KH, KW, C, M = array.shape
        return np.ascontiguousarray(array.transpose(2, 3, 0, 1).reshape(C * M, 1, KH, KW))
    if isinstance(module, nn.Conv2d):                   # HWIO -> OIHW
        return np.ascontiguousarray(array.transpose(3, 2, 0, 1))
    if isinstance(module, nn.Linear):                   # (in, out) -> (out, in[, 1, 1])
        out = np.ascontiguousarray(array.T)
        if se_as_conv and getattr(module, "_in_se", False):
            out = out.reshape(*out.shape, 1, 1)
        return out
    return array


def from_torch_layout(module, key, array):
    """Inverse of :func:`to_torch_layout`; the shape must already be checked."""
    if key != "weight":
        return array
    if isinstance(module, nn.DepthwiseConv2d):          # (C*M, 1, KH, KW) -> (KH, KW, C, M)
        return np.ascontiguousarray(array.reshape(module.channels, -1, *array.shape[2:]).transpose(2, 3, 0, 1))
    if isinstance(module, nn.Conv2d):                   # OIHW -> HWIO
        return np.ascontiguousarray(array.transpose(2, 3, 1, 0))
    if isinstance(module, nn.Linear):                   # (out, in[, 1, 1]) -> (in, out)
        return np.ascontiguousarray(array.reshape(array.shape[0], array.shape[1]).T)
    return array


def _mark_se_linears(model):
    """Tag the dense layers of SE units (timm stores them as 1x1 convolutions)."""
    from .models.se import SEModule
    for module in model.modules():
        if isinstance(module, SEModule):
            for linear in (module.fc1, module.fc2):
                object.__setattr__(linear, "_in_se", True)


def torch_state_dict(model, se_as_conv=True):
    """The model's state dict in PyTorch's layouts (ndarrays; float
    parameters keep the model's dtype, ``num_batches_tracked`` is int64)."""
    _mark_se_linears(model)
    slots = model._state_slots()
    out = {}
    for name, value in model.state_dict().items():
        module, _, key = slots[name]
        out[name] = to_torch_layout(module, key, value, se_as_conv)
    return out


def _accepted_torch_shapes(module, key, current):
    """The file shapes that convert to ``current`` (ours) for this key."""
    if key != "weight":
        return [current]
    if isinstance(module, nn.Linear):
        n_in, n_out = current
        return [(n_out, n_in), (n_out, n_in, 1, 1)]
    return [to_torch_layout(module, key, np.empty(current, dtype=np.uint8), se_as_conv=False).shape]


# ------------------------------------------------------------------ readers
def read_state_dict(path):
    """Read a state dict (name -> ndarray) from ``.safetensors``, ``.npz``
    (plain arrays, or a file written by ``tinycnn.save``) or
    ``.pth``/``.pt`` (needs torch; loaded with ``weights_only=True``).
    A ``{'state_dict': ...}`` or ``{'model': ...}`` wrapper and a
    DataParallel ``module.`` prefix are unwrapped.  An unreadable or
    truncated file raises ValueError naming it."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"weights file {path!r} does not exist")
    ext = os.path.splitext(path)[1].lower()
    try:
        if ext == ".safetensors":
            state = _read_safetensors(path)
        elif ext == ".npz":
            state = _read_npz(path)
        elif ext in (".pth", ".pt", ".bin"):
            state = _read_pth(path)
        else:
            raise ValueError(f"weights file {path!r}: unknown extension {ext!r} "
                             "(expected .safetensors, .npz, .pth or .pt)")
    except (ImportError, FileNotFoundError):
        raise
    except ValueError as exc:
        if path in str(exc):
            raise
        raise ValueError(f"weights file {path!r} cannot be read (truncated or not a {ext} file?): "
                         f"{type(exc).__name__}: {_brief(exc)}") from None
    except pickle.UnpicklingError as exc:  # torch.load(weights_only=True) met a forbidden global
        # torch's message goes on to suggest weights_only=False: not for a file from elsewhere
        reason = str(exc).rpartition("WeightsUnpickler error:")[2]
        raise ValueError(f"weights file {path!r} cannot be read: it pickles something other than tensors "
                         f"and containers, which torch.load(weights_only=True) refuses ({_brief(reason)})") from None
    except Exception as exc:  # each library has its own error for a damaged file
        raise ValueError(f"weights file {path!r} cannot be read (truncated or not a {ext} file?): "
                         f"{type(exc).__name__}: {_brief(exc)}") from None
    return _unwrap(state, path)


def _brief(exc, limit=300):
    """A library's error message on one line, without terminal escapes."""
    text = re.sub(r"\x1b\[[0-9;]*m", "", str(exc))
    text = " ".join(text.split())
    return text if len(text) <= limit else text[:limit] + "..."


def _read_safetensors(path):
    try:
        from safetensors.numpy import load_file
    except ImportError:
        raise ImportError("reading .safetensors needs the safetensors package: "
                          "pip install 'tinycnn[safetensors]'") from None
    return load_file(path)


def _read_npz(path):
    """Plain arrays (deflated members allowed, as ``numpy.savez_compressed``
    writes them), or the model of a file written by ``tinycnn.save``;
    both read through :mod:`tinycnn.npz`, so sizes are bounded by the file."""
    if _is_tinycnn_npz(path):
        obj = serialization.load(path)
        if isinstance(obj, dict) and "model" in obj and isinstance(obj["model"], dict):
            obj = obj["model"]
        if not isinstance(obj, dict):
            raise ValueError(f"weights file {path!r}: holds a {type(obj).__name__}, expected a state dict")
        return {k: np.asarray(getattr(v, "data", v)) for k, v in obj.items()}
    try:
        return npz.read_npz(path, compressed=True)
    except npz.NpzError as err:
        raise ValueError(f"weights file {path!r} cannot be read: {err.reason}") from None


def _read_pth(path):
    """A ``torch.save`` zip archive through ``torch.load(weights_only=True)``
    (which unpickles tensors and containers only).  The archive is checked
    first (stored members only, as torch writes them, no larger than the
    file), and so is every tensor: a view larger than the storage it comes
    from (a stride-0 expansion of a few bytes, say) is refused rather than
    materialised."""
    try:
        import torch
    except ImportError:
        raise ImportError(f"reading {path!r} needs torch (or convert it to .safetensors)") from None
    _check_torch_archive(path)
    obj = torch.load(path, map_location="cpu", weights_only=True)
    if hasattr(obj, "state_dict") and not isinstance(obj, dict):
        obj = obj.state_dict()
    if isinstance(obj, dict):
        for wrapper in ("state_dict", "model"):
            if isinstance(obj.get(wrapper), dict):
                obj = obj[wrapper]
    if not isinstance(obj, dict):
        raise ValueError(f"weights file {path!r}: holds a {type(obj).__name__}, expected a state dict")
    out = {}
    for k, v in obj.items():
        if isinstance(v, torch.Tensor):
            if v.numel() * v.element_size() > v.untyped_storage().nbytes():
                raise ValueError(f"weights file {path!r}: {str(k)[:80]} is a {tuple(v.shape)} view of "
                                 f"{v.untyped_storage().nbytes()} bytes of storage (an expanded or "
                                 "overlapping tensor); only plain tensors are accepted")
            v = v.detach()
            v = (v.float() if v.dtype == torch.bfloat16 else v).numpy()
        out[k] = v
    return out


def _check_torch_archive(path):
    size = os.path.getsize(path)
    if not zipfile.is_zipfile(path):
        raise ValueError(f"weights file {path!r} is not a zip archive: only files written by torch.save "
                         "since PyTorch 1.6 are read (load and save an older one with torch, or convert it "
                         "to .safetensors)")
    with zipfile.ZipFile(path) as archive:
        infos = archive.infolist()
    if len(infos) > limits.max_members:
        raise ValueError(f"weights file {path!r}: {len(infos)} members, over tinycnn.limits.max_members")
    for info in infos:
        if info.compress_type != zipfile.ZIP_STORED or info.file_size != info.compress_size:
            raise ValueError(f"weights file {path!r}: member {info.filename!r} is compressed; "
                             "torch.save stores its members uncompressed")
    if sum(info.file_size for info in infos) > size:
        raise ValueError(f"weights file {path!r}: members declare more bytes than the file's {size}")


def _unwrap(state, path):
    if not isinstance(state, dict):
        raise ValueError(f"weights file {path!r}: expected a state dict (names -> arrays), got {type(state).__name__}")
    for wrapper in ("state_dict", "model"):
        if isinstance(state.get(wrapper), dict):
            state = state[wrapper]
    bad = [k for k in state if not isinstance(k, str)]
    if bad:
        raise ValueError(f"weights file {path!r}: keys must be strings, got {type(bad[0]).__name__} "
                         f"{str(bad[0])[:80]}")
    bad = [k for k, v in state.items() if not isinstance(v, np.ndarray)]
    if bad:
        raise ValueError(f"weights file {path!r}: {bad[0][:80]!r} is a {type(state[bad[0]]).__name__}, "
                         "expected an array")
    if state and all(k.startswith("module.") for k in state):
        state = {k[len("module."):]: v for k, v in state.items()}
    return state


# ---------------------------------------------------------------- importing
def head_name(model):
    """The name of the classifier layer (``fc`` for the bundled models)."""
    name = getattr(model, "head_name", None) or "fc"
    if not isinstance(getattr(model, name, None), nn.Linear):
        raise TypeError(f"{type(model).__name__} has no Linear classifier called {name!r}")
    return name


def _listed(keys):
    keys = list(keys)
    shown = ", ".join(keys[:_MAX_LISTED])
    return shown + (f" ... and {len(keys) - _MAX_LISTED} more" if len(keys) > _MAX_LISTED else "")


def convert_state_dict(model, state, layout="torch", reset_head=False, strict=True, source="state dict"):
    """Check ``state`` (name -> array) against ``model`` and convert it to
    the model's layouts and dtypes without touching the model.

    Returns ``(converted, LoadResult)``.  ``layout``: ``'torch'`` (OIHW,
    (out, in)) or ``'tinycnn'`` (already ours).  ``reset_head``: when the
    file's classifier has another shape, leave it out (the caller
    re-initialises the model's).  Raises ValueError listing every problem
    (names, expected and actual shape or dtype), prefixed by ``source``.
    """
    if layout not in ("torch", "tinycnn"):
        raise ValueError(f"layout must be 'torch' or 'tinycnn', got {layout!r}")
    if not hasattr(state, "items"):
        raise TypeError(f"{source}: expected a mapping of names to arrays, got {type(state).__name__}")
    _mark_se_linears(model)
    slots = model._state_slots()
    current = model.state_dict()
    problems, converted, reset = [], {}, []

    head = None
    if reset_head:
        head = head_name(model)
        for key in (f"{head}.weight", f"{head}.bias"):
            if key in state and key in slots:
                module, _, attr = slots[key]
                want = _accepted_torch_shapes(module, attr, current[key].shape) if layout == "torch" \
                    else [current[key].shape]
                if tuple(np.shape(state[key])) not in want:
                    reset = [f"{head}.weight", f"{head}.bias"]
        reset = [k for k in reset if k in slots]

    for key, value in state.items():
        if key not in slots or key in reset:
            continue
        module, _, attr = slots[key]
        array = np.asarray(getattr(value, "data", value))
        mine = current[key]
        if attr == "num_batches_tracked":
            if array.shape not in ((), (1,)) or array.dtype.kind not in "iu":
                problems.append(f"{key}: expected an integer scalar, got dtype {array.dtype} shape {array.shape}")
                continue
            converted[key] = array.reshape(()).astype(mine.dtype)
            continue
        if array.dtype.kind not in _FLOAT_KINDS:
            problems.append(f"{key}: expected a floating-point array, got dtype {array.dtype}")
            continue
        want = _accepted_torch_shapes(module, attr, mine.shape) if layout == "torch" else [mine.shape]
        if array.shape not in want:
            problems.append(f"{key}: expected shape {' or '.join(map(str, want))}, got {array.shape}")
            continue
        if not np.all(np.isfinite(array)):
            problems.append(f"{key}: holds NaN or infinite values")
            continue
        if layout == "torch":
            array = from_torch_layout(module, attr, array)
        converted[key] = array.astype(mine.dtype, copy=True)

    unexpected = [k for k in state if k not in slots]
    missing = [k for k in slots if k not in state and k not in reset]
    # num_batches_tracked is optional in files: keep the model's own counter.
    for key in [k for k in missing if k.endswith("num_batches_tracked")]:
        converted[key] = current[key].copy()
    hard_missing = [k for k in missing if not k.endswith("num_batches_tracked")]
    for key in reset:
        converted[key] = current[key]  # placeholder; the caller re-initialises it
    if strict and hard_missing:
        problems.append(f"missing keys ({len(hard_missing)}): {_listed(hard_missing)}")
    if strict and unexpected:
        problems.append(f"unexpected keys ({len(unexpected)}): {_listed(unexpected)}")
    if problems:
        hint = ""
        if hard_missing and unexpected:
            hint = f"\n  (is this file for another architecture than {type(model).__name__}?)"
        raise ValueError(f"{source}: cannot load into {type(model).__name__}; nothing was loaded:\n  "
                         + "\n  ".join(problems) + hint)
    loaded = [k for k in converted if k in state and k not in reset]
    return converted, LoadResult(loaded, missing, unexpected, reset)


def load_weights(model, weights, layout="torch", reset_head=False, strict=True):
    """Load ``weights`` (a path to .safetensors/.npz/.pth, or a mapping of
    names to arrays) into ``model`` in place; returns a :class:`LoadResult`.

    ``layout='torch'``: the file holds PyTorch layouts (torchvision, timm,
    ``tinycnn.export.to_torch``); ``'tinycnn'``: our own (``.npz`` files
    written by ``tinycnn.save`` are always read as ours).
    ``reset_head=True``: if the file's classifier has another number of
    classes than the model, it is skipped and the model's classifier
    re-initialised (transfer learning); otherwise that is an error.
    Everything is checked first; on any error the model is unchanged.
    """
    source = "weights"
    if isinstance(weights, (str, os.PathLike)):
        source = f"weights file {os.fspath(weights)!r}"
        if os.fspath(weights).lower().endswith(".npz") and _is_tinycnn_npz(weights):
            layout = "tinycnn"
        weights = read_state_dict(weights)
    converted, result = convert_state_dict(model, weights, layout, reset_head, strict, source)
    model.load_state_dict(converted, strict=False)
    if result.reset_keys:
        reinit_head(model)
    return result


def _is_tinycnn_npz(path):
    """Whether ``path`` is a zip holding tinycnn's ``__meta__`` member (its
    directory alone is read)."""
    try:
        with zipfile.ZipFile(os.fspath(path)) as archive:
            return "__meta__.npy" in archive.namelist()
    except (OSError, zipfile.BadZipFile, ValueError):  # unreadable: read_state_dict reports it
        return False


def reinit_head(model):
    """Re-initialise the classifier's weight and bias in place (PyTorch's
    default uniform initialisation), keeping the same Parameter objects."""
    head = getattr(model, head_name(model))
    fresh = nn.Linear(head.in_features, head.out_features, bias=head.bias is not None, dtype=head.weight.dtype)
    head.weight.data = fresh.weight.data
    head.weight.grad = None
    if head.bias is not None:
        head.bias.data = fresh.bias.data
        head.bias.grad = None


def file_num_classes(state, head="fc"):
    """The number of classes of the classifier in a PyTorch-layout state dict, or None."""
    weight = state.get(f"{head}.weight")
    return None if weight is None else int(np.shape(weight)[0])


__all__ = [
    "LoadResult", "convert_state_dict", "file_num_classes", "from_torch_layout", "head_name", "load_weights",
    "read_state_dict", "reinit_head", "to_torch_layout", "torch_state_dict",
]

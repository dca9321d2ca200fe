"""Coverage-guided fuzzing of every file reader (atheris, libFuzzer's engine).

    python tests/fuzz_readers.py TARGET CORPUS_DIR [libFuzzer flags]

e.g. ``python tests/fuzz_readers.py idx /tmp/corpus -max_total_time=60``.
An empty CORPUS_DIR is first filled with valid files of the target's format
(made here, nothing committed), which the fuzzer then mutates.  Each input is
written to a file and handed to the reader; the only acceptable failure is a
``ValueError`` naming that file.  Anything else -- another exception, a crash,
a hang past ``-timeout``, memory past ``-rss_limit_mb`` -- stops the fuzzer
with the input that did it.  ``tests/test_fuzz_readers.py`` runs every target
for a few seconds in CI; where atheris cannot be installed it mutates the same
seeds with hypothesis instead.

Targets: ``load`` (tinycnn.load), ``checkpoint`` (the JSON structure of a
checkpoint, written back with a valid checksum, through model_from_checkpoint),
``npz``, ``safetensors`` and ``pth`` (tinycnn.weights), ``cifar``, ``idx`` and
``image`` (the dataset readers).
"""

import atexit
import gzip
import io as _io
import json
import os
import pickle
import shutil
import sys
import tempfile
import zipfile
from pathlib import Path

import numpy as np

import tinycnn
import tinycnn.weights
from tinycnn import data, serialization, train

_WORK = Path(tempfile.mkdtemp(prefix="tinycnn-fuzz-"))
atexit.register(shutil.rmtree, _WORK, True)


def _state():
    rng = np.random.default_rng(0)
    return {"conv1.weight": rng.standard_normal((4, 1, 3, 3)).astype(np.float32),
            "bn1.running_var": np.ones(4, np.float32), "bn1.num_batches_tracked": np.array(3, np.int64),
            "fc.weight": rng.standard_normal((2, 4)).astype(np.float64)}


def _npz_bytes(compressed=False, **arrays):
    buffer = _io.BytesIO()
    (np.savez_compressed if compressed else np.savez)(buffer, **arrays)
    return buffer.getvalue()


def _saved(obj):
    path = _WORK / "seed.npz"
    serialization.save(obj, path)
    return path.read_bytes()


# ----------------------------------------------------------------- targets


def _checkpoint_parts():
    """A real checkpoint's arrays and its JSON structure, made once."""
    if not hasattr(_checkpoint_parts, "parts"):
        tinycnn.set_num_threads(1)
        trainer = train.Trainer(_WORK / "run", model="resnet20", model_kwargs={}, dataset="digits",
                                train_subset=32, test_subset=16, batch_size=16, epochs=1, progress=False,
                                plot=False, log=lambda msg: None)
        trainer.save_checkpoint()
        with zipfile.ZipFile(trainer.checkpoint_path) as archive:
            arrays = {n[:-4]: np.load(_io.BytesIO(archive.read(n))) for n in archive.namelist()}
        meta = arrays.pop("__meta__").tobytes()
        arrays.pop("__checksum__")
        _checkpoint_parts.parts = arrays, meta
    return _checkpoint_parts.parts


def _checkpoint_file(meta, path):
    """``meta`` (bytes) as the JSON of a checkpoint with its real arrays and a valid checksum."""
    arrays, _ = _checkpoint_parts()
    members = {"__meta__": np.frombuffer(meta, np.uint8), **arrays}
    members["__checksum__"] = np.frombuffer(serialization._digest(members).encode(), np.uint8)
    path.write_bytes(_npz_bytes(**members))


def _cifar_seeds():
    batch = {b"data": np.arange(2 * 3072).reshape(2, 3072).astype(np.uint8), b"labels": [1, 7],
             b"batch_label": b"testing batch 1 of 1", b"filenames": [b"a.png", b"b.png"]}
    return [pickle.dumps(batch, protocol=p) for p in (2, 4, 5)]


def _idx_seeds():
    images = (np.arange(3 * 4 * 5) % 251).astype(np.uint8).reshape(3, 4, 5)
    raw = bytes([0, 0, 8, 3]) + b"".join(n.to_bytes(4, "big") for n in images.shape) + images.tobytes()
    shorts = np.array([[-3, 300]], ">i2")
    other = bytes([0, 0, 0x0B, 2, 0, 0, 0, 1, 0, 0, 0, 2]) + shorts.tobytes()
    return [raw, gzip.compress(raw), other]


def _image_seeds():
    from PIL import Image
    seeds = []
    for fmt, mode in (("PNG", "RGB"), ("PNG", "L"), ("JPEG", "RGB"), ("BMP", "RGB"), ("GIF", "P"), ("TIFF", "RGB")):
        buffer = _io.BytesIO()
        Image.new(mode, (6, 5), 3).save(buffer, format=fmt)
        seeds.append(buffer.getvalue())
    return seeds


def _safetensors_seeds():
    from safetensors.numpy import save
    return [save({k: v for k, v in _state().items() if v.ndim})]


def _pth_seeds():
    import torch
    buffer = _io.BytesIO()
    torch.save({k: torch.from_numpy(v) for k, v in _state().items()}, buffer)
    return [buffer.getvalue()]


def _plain(reader):
    """The usual case: the reader reads the input file itself."""
    return lambda path: (lambda: reader(path), path)


def _image_folder(path):
    return lambda: data.load_image_folder(path.parent.parent), path


def _checkpoint(path):
    target = path.with_name("checkpoint.npz")
    _checkpoint_file(path.read_bytes(), target)
    return lambda: train.model_from_checkpoint(target), target


# name -> (input file name, seeds(), prepare(input path) -> (call, the file its errors must name))
TARGETS = {
    "load": ("x.npz", lambda: [_saved({"a": np.arange(5.0), "b": [1, (2.5, None)], 3: {"s": "t"}}),
                               _saved([np.zeros((2, 3), np.float32), float("nan")])], _plain(serialization.load)),
    "checkpoint": ("meta.json", lambda: [_checkpoint_parts()[1]], _checkpoint),
    "npz": ("w.npz", lambda: [_npz_bytes(**_state()), _npz_bytes(True, **_state())],
            _plain(tinycnn.weights.read_state_dict)),
    "safetensors": ("w.safetensors", _safetensors_seeds, _plain(tinycnn.weights.read_state_dict)),
    "pth": ("w.pth", _pth_seeds, _plain(tinycnn.weights.read_state_dict)),
    "cifar": ("data_batch_1", _cifar_seeds, _plain(data.read_cifar_batch)),
    "idx": ("x-idx3-ubyte", _idx_seeds, _plain(data.read_idx)),
    "image": ("c/x.png", _image_seeds, _image_folder),
}


def input_file(target):
    """Where ``target``'s inputs are written (one file, rewritten for each)."""
    path = _WORK / target / TARGETS[target][0]
    path.parent.mkdir(parents=True, exist_ok=True)
    return path


def check_one(target, blob, path):
    """Run ``target``'s reader on ``blob``: it loads, or refuses with a
    ValueError naming the file; anything else propagates."""
    path.write_bytes(blob)
    call, named = TARGETS[target][2](path)
    try:
        call()
    except ValueError as err:
        if str(named) not in str(err):
            raise AssertionError(f"ValueError does not name {named}: {err}") from err


def seeds(target):
    return TARGETS[target][1]()


def _instrument():
    """Coverage for our readers and the standard-library parsers under them
    (not the Numba kernels: their bytecode must stay as Numba expects it)."""
    import atheris
    import gzip as gzip_module
    import zipfile as zipfile_module
    from tinycnn import builders, checkpoint, npz
    from tinycnn.data import images, pickles, readers
    for module in (serialization, npz, checkpoint, builders, readers, pickles, images, tinycnn.weights, train,
                   zipfile_module, gzip_module, json.decoder):
        for value in list(vars(module).values()):
            functions = [value] if callable(value) and hasattr(value, "__code__") else []
            if isinstance(value, type) and value.__module__ == module.__name__:
                functions = [f for f in vars(value).values() if hasattr(f, "__code__")]
            for function in functions:
                if getattr(function, "__module__", None) == module.__name__:
                    atheris.instrument_func(function)


def main(argv):
    import atheris
    target, corpus = argv[1], Path(argv[2])
    corpus.mkdir(parents=True, exist_ok=True)
    if not any(corpus.iterdir()):
        for i, blob in enumerate(seeds(target)):
            (corpus / f"seed{i}").write_bytes(blob)
    path = input_file(target)
    if target == "checkpoint":
        _checkpoint_parts()
    _instrument()
    atheris.Setup([argv[0]] + argv[2:], lambda blob: check_one(target, blob, path))
    atheris.Fuzz()


if __name__ == "__main__":
    main(sys.argv)

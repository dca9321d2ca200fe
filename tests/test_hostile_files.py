"""Crafted files, as an attacker would make them: every reader refuses each
with a ValueError naming the file, runs nothing, and allocates only what the
file really holds.  The files are built here (no binary blobs); each attack
is one from the hostile-files issue, or a close variant.

Memory is measured with tracemalloc, which sees NumPy's buffers and Python's
objects: a reader that allocated what a header declares would show it.
"""

import contextlib
import gzip
import json
import pickle
import signal
import struct
import tracemalloc
import zipfile
import zlib

import numpy as np
import pytest

import tinycnn
import tinycnn.weights
from tinycnn import data, limits, serialization, train
from tinycnn.checkpoint import DEFAULTS

from _helpers import tiny_checkpoint

MiB = 1 << 20
_RECONSTRUCT = (np._core if hasattr(np, "_core") else np.core).multiarray._reconstruct


@contextlib.contextmanager
def bounded(mib=32, seconds=30):
    """Fail if the block allocates more than ``mib`` MiB at its peak, or runs
    longer than ``seconds`` (a guard against a hang, not a speed check)."""
    def expire(signum, frame):
        raise TimeoutError(f"still running after {seconds} s")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    tracemalloc.start()
    try:
        yield
    finally:
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
    assert peak < mib * MiB, f"peak allocation {peak / MiB:.1f} MiB"


def refused(call, path, match=""):
    """``call()`` raises ValueError whose message names ``path`` (and matches ``match``)."""
    with pytest.raises(ValueError, match=match or None) as info:
        call()
    assert str(path) in str(info.value), str(info.value)
    return str(info.value)


# ------------------------------------------------------------------ CIFAR pickles


class _Reduces:
    """Pickles as ``callable(*args)`` with optional ``state``."""

    def __init__(self, callable_, args, state=None):
        self.reduction = (callable_, args) if state is None else (callable_, args, state)

    def __reduce__(self):
        return self.reduction


def _batch(data_value, labels=(0,)):
    return {b"data": data_value, b"labels": list(labels)}


def _write_pickle(path, obj):
    path.write_bytes(pickle.dumps(obj, protocol=2))
    return path


def test_dtype_state_hiding_an_object_field_is_refused(tmp_path):
    # A record dtype whose state holds an 'O' field while its flags (0) claim no
    # objects: NumPy's own __setstate__ would read 8 file bytes as a pointer.
    evil_dtype = _Reduces(np.dtype, ("V8", False, True),
                          (3, "|", None, ("a",), {"a": (np.dtype("O"), 0)}, 8, 1, 0))
    array = _Reduces(_RECONSTRUCT, (np.ndarray, (0,), b"b"),
                     (1, (1,), evil_dtype, False, b"\x41" * 8))
    path = _write_pickle(tmp_path / "data_batch_1", _batch(array))
    refused(lambda: data.read_cifar_batch(path), path, "refused pickle: numpy.dtype 'V8' is forbidden")


def test_dtype_state_with_fields_on_a_numeric_code_is_refused(tmp_path):
    evil_dtype = _Reduces(np.dtype, ("u1", False, True), (3, "|", None, ("a",), {"a": 0}, 8, 1, 0))
    array = _Reduces(_RECONSTRUCT, (np.ndarray, (0,), b"b"), (1, (1,), evil_dtype, False, b"A"))
    path = _write_pickle(tmp_path / "test_batch", _batch(array))
    refused(lambda: data.read_cifar_batch(path), path, "numpy.dtype state")


def test_calling_ndarray_for_uninitialised_memory_is_refused(tmp_path):
    path = _write_pickle(tmp_path / "data_batch_1", _batch(_Reduces(np.ndarray, ((300000, 3072), "u1"))))
    assert path.stat().st_size < 200
    with bounded():
        refused(lambda: data.read_cifar_batch(path), path, "calling numpy.ndarray is forbidden")


@pytest.mark.parametrize("nbytes", [0, 8, 3072 * 2 - 1, 3072 * 2 + 1])
def test_array_bytes_must_match_its_shape(tmp_path, nbytes):
    array = _Reduces(_RECONSTRUCT, (np.ndarray, (0,), b"b"),
                     (1, (2, 3072), np.dtype(np.uint8), False, b"\0" * nbytes))
    path = _write_pickle(tmp_path / "data_batch_1", _batch(array, [0, 1]))
    with bounded():
        refused(lambda: data.read_cifar_batch(path), path, r"needs 6144 bytes, the pickle has")


def test_shared_children_are_walked_once(tmp_path):
    x = []
    for _ in range(40):  # 2**40 paths through 41 objects
        x = [x, x]
    path = _write_pickle(tmp_path / "data_batch_1", {b"data": np.zeros((1, 3072), np.uint8), b"labels": [0],
                                                      b"extra": x})
    assert path.stat().st_size < 4000
    with bounded():
        images, labels = data.read_cifar_batch(path)
    assert images.shape == (1, 32, 32, 3) and labels.tolist() == [0]


def test_self_reference_and_deep_nesting(tmp_path):
    loop = []
    loop.append(loop)
    path = _write_pickle(tmp_path / "data_batch_1", {b"data": loop, b"labels": [0]})
    refused(lambda: data.read_cifar_batch(path), path, r"b'data' is a list")
    # 200,000 nested lists, written as opcodes (pickle.dumps itself would recurse)
    deep = tmp_path / "deep"
    depth = 200_000
    deep.write_bytes(b"\x80\x02" + b"]" * depth + b"a" * (depth - 1) + b".")
    with bounded(mib=64):
        refused(lambda: data.read_cifar_batch(deep), deep, "holds a list, expected a CIFAR batch")


def test_memo_key_far_beyond_the_pickle_is_refused(tmp_path):
    # CPython's unpickler keeps its memo in an array indexed by key: one
    # LONG_BINPUT of key 2**31 (6 bytes) would make it allocate 16 GiB.
    path = tmp_path / "data_batch_1"
    path.write_bytes(b"\x80\x02}q\x00(X\x01\x00\x00\x00ar\xff\xff\xff\x7fK\x01u.")
    with bounded():
        refused(lambda: data.read_cifar_batch(path), path, "memo key 2147483647")
    # the memo a real pickler writes still loads
    _write_pickle(path, {b"data": np.zeros((2, 3072), np.uint8), b"labels": [1, 1], b"names": [b"x", b"x"]})
    assert data.read_cifar_batch(path)[1].tolist() == [1, 1]


@pytest.mark.parametrize("protocol", [2, 4, 5])
def test_real_arrays_still_load_in_every_protocol(tmp_path, protocol):
    values = {b"data": np.arange(2 * 3072).reshape(2, 3072).astype(np.uint8), b"labels": [3, 9],
              b"f": np.asfortranarray(np.arange(6.0).reshape(2, 3)), b"be": np.arange(3, dtype=">i4"),
              b"scalar": np.int64(7)}
    path = tmp_path / "data_batch_1"
    path.write_bytes(pickle.dumps(values, protocol=protocol))
    loaded = data.safe_pickle_load(path)
    for key, value in values.items():
        np.testing.assert_array_equal(loaded[key], value)
    assert loaded[b"f"].flags.f_contiguous and loaded[b"data"].flags.writeable
    images, labels = data.read_cifar_batch(path)
    assert labels.tolist() == [3, 9]


def test_checkpoint_naming_a_hostile_cifar_folder_refuses_on_resume(tmp_path, checkpoint):
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    evil = _Reduces(np.ndarray, ((300000, 3072), "u1"))
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        _write_pickle(folder / name, _batch(evil))
    ckpt = train.load_checkpoint(checkpoint)
    ckpt["config"] = dict(ckpt["config"], dataset=str(folder))
    forged = tmp_path / "forged.npz"
    serialization.save(ckpt, forged)
    refused(lambda: train.fit(tmp_path / "run", resume=forged, progress=False, plot=False, log=lambda m: None),
            folder / "data_batch_1", "calling numpy.ndarray is forbidden")


# ------------------------------------------------------------------ tinycnn .npz files


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    return tiny_checkpoint(tmp_path_factory.mktemp("run"))


def _npy(array):
    import io as _io
    buffer = _io.BytesIO()
    np.lib.format.write_array(buffer, array, allow_pickle=False)
    return buffer.getvalue()


def _tinycnn_file(path, meta_text, arrays=(), checksum=None, compression=zipfile.ZIP_STORED):
    """A file laid out as tinycnn.save lays it out, with any meta text and a
    valid checksum unless ``checksum`` is given."""
    members = {"__meta__": np.frombuffer(meta_text.encode(), np.uint8), **dict(arrays)}
    digest = checksum if checksum is not None else np.frombuffer(serialization._digest(members).encode(), np.uint8)
    with zipfile.ZipFile(path, "w", compression=compression) as archive:
        for name, value in {**members, "__checksum__": digest}.items():
            archive.writestr(name + ".npy", value if isinstance(value, bytes) else _npy(value))
    return path


def _meta(tree):
    return json.dumps({"format": "tinycnn", "version": 1, "tree": tree})


def test_compressed_members_are_refused_before_decompressing(tmp_path):
    path = tmp_path / "bomb.npz"
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_BZIP2) as archive:
        archive.writestr("__meta__.npy", b"\0" * (64 * MiB))  # bzip2 packs 64 MiB of zeros into ~100 bytes
        archive.writestr("__checksum__.npy", b"\0" * 64)
    assert path.stat().st_size < 2000
    with bounded():
        refused(lambda: serialization.load(path), path, "compression method 12; expected stored")
    deflated = _tinycnn_file(tmp_path / "deflated.npz", _meta({"t": "value", "v": 1}),
                             compression=zipfile.ZIP_DEFLATED)
    refused(lambda: serialization.load(deflated), deflated, "compression method 8; expected stored")


def test_declared_sizes_beyond_the_file_are_refused(tmp_path):
    path = _tinycnn_file(tmp_path / "a.npz", _meta({"t": "array", "key": "a0"}), {"a0": np.zeros(4, np.float32)})
    member = _npy(np.zeros(4, np.float32))
    crafted = member.replace(b"(4,), }", b"(1073741824,), }").replace(b" " * 9 + b"\n", b"\n")
    assert len(crafted) == len(member)  # 2**30 float32 declared over 16 bytes
    with zipfile.ZipFile(path) as src, zipfile.ZipFile(tmp_path / "b.npz", "w") as dst:
        for name in src.namelist():
            dst.writestr(name, crafted if name == "a0.npy" else src.read(name))
    with bounded():
        refused(lambda: serialization.load(tmp_path / "b.npz"), tmp_path / "b.npz",
                r"header declares shape \(1073741824,\) of float32, 4294967296 bytes, but 16 follow it")
    # a zip directory whose first member claims 2 GiB, more than the whole file
    raw = bytearray(path.read_bytes())
    struct.pack_into("<II", raw, raw.find(b"PK\x03\x04") + 18, 2**31, 2**31)  # local header: sizes
    struct.pack_into("<II", raw, raw.find(b"PK\x01\x02") + 20, 2**31, 2**31)  # central directory: sizes
    (tmp_path / "c.npz").write_bytes(bytes(raw))
    with bounded():
        refused(lambda: serialization.load(tmp_path / "c.npz"), tmp_path / "c.npz", "bytes in the archive, but the file has")


def test_object_and_record_dtypes_are_refused(tmp_path):
    for i, header in enumerate([b"{'descr': '|O', 'fortran_order': False, 'shape': (1,), }",
                                b"{'descr': [('a', '<f4')], 'fortran_order': False, 'shape': (1,), }",
                                b"{'descr': '<M8[s]', 'fortran_order': False, 'shape': (1,), }",
                                b"{'descr': '<f4', 'fortran_order': 0, 'shape': (1,), }",
                                b"{'descr': '<f4', 'fortran_order': False, 'shape': (-1,), }",
                                b"{'descr': '<f4', 'fortran_order': False, 'shape': " + b"(" * 300 + b")" * 300 + b"}",
                                b"__import__('os').system('echo pwned')"]):
        npy = b"\x93NUMPY\x01\x00" + struct.pack("<H", len(header)) + header + b"\0" * 8
        path = tmp_path / f"{i}.npz"
        with zipfile.ZipFile(path, "w") as archive:
            archive.writestr("a.npy", npy)
        refused(lambda: tinycnn.weights.read_state_dict(path), path, "dtype|fortran_order|shape|header")


def test_zip_member_names_that_are_not_utf8(tmp_path):
    path = _tinycnn_file(tmp_path / "a.npz", _meta({"t": "value", "v": 1}))
    raw = bytearray(path.read_bytes())
    at = raw.find(b"PK\x01\x02")  # central directory entry: set the UTF-8 flag, break the name
    struct.pack_into("<H", raw, at + 8, struct.unpack_from("<H", raw, at + 8)[0] | 0x800)
    raw[at + 46] = 0xFF
    (tmp_path / "b.npz").write_bytes(bytes(raw))
    refused(lambda: serialization.load(tmp_path / "b.npz"), tmp_path / "b.npz", "not a readable .npz")
    refused(lambda: tinycnn.weights.read_state_dict(tmp_path / "b.npz"), tmp_path / "b.npz", "")


def test_checksum_member_that_is_not_npy(tmp_path):
    path = _tinycnn_file(tmp_path / "a.npz", _meta({"t": "value", "v": 1}), checksum=b"not .npy content")
    refused(lambda: serialization.load(path), path, "not .npy data")
    wrong_type = _tinycnn_file(tmp_path / "b.npz", _meta({"t": "value", "v": 1}), checksum=np.zeros(64, np.float64))
    refused(lambda: serialization.load(wrong_type), wrong_type, "__checksum__ must be")


@pytest.mark.parametrize("tree, message", [
    ({"t": "array", "key": "a9"}, "no array member"),
    ({"t": "array", "key": ["a0"]}, "no array member"),
    ({"t": "dict", "keys": ["a"], "values": []}, "equally long"),
    ({"t": "dict", "keys": [[1]], "values": [{"t": "value", "v": 1}]}, "str or int keys"),
    ({"t": "list", "items": 5}, "list of items"),
    ({"t": "list"}, "unexpected node"),
    ({"t": "exec", "v": "print(1)"}, "unexpected node"),
    ({"t": "value", "v": {"nested": 1}}, "a value must be"),
    ({"t": "float", "v": "1e999999"}, "non-finite float"),
    ([1, 2], "unexpected node"),
    (None, "unexpected node"),
])
def test_valid_checksum_hostile_structure(tmp_path, tree, message):
    path = _tinycnn_file(tmp_path / "a.npz", _meta(tree), {"a0": np.zeros(2)})
    refused(lambda: serialization.load(path), path, message)


def test_deep_json_and_deep_trees(tmp_path):
    deep = '{"format": "tinycnn", "version": 1, "tree": ' + "[" * 100_000 + "]" * 100_000 + "}"
    path = _tinycnn_file(tmp_path / "a.npz", deep)
    with bounded(mib=64):
        refused(lambda: serialization.load(path), path, "not valid JSON|malformed")
    tree = {"t": "value", "v": 1}
    for _ in range(limits.max_depth + 5):
        tree = {"t": "list", "items": [tree]}
    path = _tinycnn_file(tmp_path / "b.npz", _meta(tree))
    refused(lambda: serialization.load(path), path, "nested deeper than tinycnn.limits.max_depth")
    nested = []
    for _ in range(limits.max_depth + 5):
        nested = [nested]
    with pytest.raises(ValueError, match="nested deeper"):
        serialization.save(nested, tmp_path / "c.npz")
    assert not (tmp_path / "c.npz").exists()


def test_meta_over_its_limit(tmp_path, monkeypatch):
    path = _tinycnn_file(tmp_path / "a.npz", _meta({"t": "value", "v": "x" * 5000}))
    monkeypatch.setattr(limits, "max_meta_bytes", 4096)
    refused(lambda: serialization.load(path), path, "__meta__ must be at most 4096 bytes")
    monkeypatch.setattr(limits, "max_meta_bytes", 1 << 20)
    assert serialization.load(path) == "x" * 5000


# ------------------------------------------------------------------ checkpoints


def _forged(tmp_path, checkpoint, name="forged.npz", **changes):
    ckpt = train.load_checkpoint(checkpoint)
    for where, value in changes.items():
        if "__" in where:
            outer, inner = where.split("__")
            ckpt[outer] = dict(ckpt[outer], **{inner: value})
        else:
            ckpt[where] = value
    path = tmp_path / name
    serialization.save(ckpt, path)
    return path


def _readers_of(path, tmp_path):
    yield lambda: train.load_checkpoint(path)
    yield lambda: train.model_from_checkpoint(path)
    yield lambda: train.fit(tmp_path / "resumed", resume=path, progress=False, plot=False, log=lambda m: None)


@pytest.mark.parametrize("changes, message", [
    ({"epoch": "abc"}, "epoch must be an int >= 0, got 'abc'"),
    ({"step": -1}, "step must be an int >= 0"),
    ({"epoch": 10**6}, "epoch must be at most"),
    ({"config__epochs": "many"}, "epochs must be an int >= 1"),
    ({"config__lr": float("nan")}, "lr must be a finite number > 0"),
    ({"config__optimizer": "os.system"}, "optimizer must be"),
    ({"config": {"model": "resnet20"}}, "config must be a dict with the keys"),
    ({"meta__num_classes": 4_000_000}, r"num_classes'\] must be the number of classes listed \(10\)"),
    ({"meta__image_shape": [1 << 20, 1 << 20, 1]}, r"image_shape'\] must be"),
    ({"meta__image_shape": [8, 8, 1 << 20]}, r"image_shape'\] must be"),
    ({"meta__model_kwargs": {"weights": "/etc/passwd"}}, "free of 'weights'"),
    ({"meta__model_kwargs": {"se": {"nested": "dict"}}}, r"model_kwargs'\]\['se'\] must be"),
    ({"meta__std": [0.0]}, r"std'\] must be a list of 1 finite numbers > 0"),
    ({"meta": "resnet20"}, "meta must be a dict"),
    ({"model": {"fc.weight": "not an array"}}, "model must be a dict of names to arrays"),
    ({"rng": {"bit_generator": "MT19937"}}, "rng must be a PCG64 generator state"),
    ({"history": [{"epoch": 1}]}, "history must be a list of rows"),
    ({"partial": {"loss": "x", "correct": 0, "seen": 0, "seconds": 0}}, "partial must be"),
    ({"format": "something-else"}, "a tinycnn training checkpoint"),
])
def test_checkpoint_content_is_checked(tmp_path, checkpoint, changes, message):
    path = _forged(tmp_path, checkpoint, **changes)
    for read in _readers_of(path, tmp_path):
        refused(read, path, message)


def test_checkpoint_describing_a_huge_model_is_refused_before_allocating(tmp_path, checkpoint):
    classes = [str(i) for i in range(100_000)]  # a consistent meta: 100,000 classes, a 6.4M-value head
    huge = _forged(tmp_path, checkpoint, "classes.npz", meta__num_classes=len(classes), meta__classes=classes)
    wide = _forged(tmp_path, checkpoint, "wide.npz", meta__model="resnet18",
                   meta__model_kwargs={"stem": "cifar", "widths": [1 << 14, 1 << 15, 1 << 16, 1 << 17]})
    for path in (huge, wide):
        for read in list(_readers_of(path, tmp_path))[1:]:
            refused(read, path, "describes a model it cannot rebuild: a Parameter of shape .* passes the parameter budget")
        ckpt = train.load_checkpoint(path)
        with bounded(mib=8), pytest.raises(ValueError, match="passes the parameter budget"):
            train.build_model(ckpt["meta"], ckpt["model"])  # before the big array is allocated


def test_a_weights_path_in_a_checkpoint_is_never_opened(tmp_path, checkpoint, monkeypatch):
    opened = []
    monkeypatch.setattr(tinycnn.weights, "read_state_dict", lambda path: opened.append(path))
    path = _forged(tmp_path, checkpoint, meta__model_kwargs={"weights": str(tmp_path / "elsewhere.pth")})
    for read in _readers_of(path, tmp_path):
        refused(read, path, "free of 'weights'")
    assert opened == []


def test_a_run_started_from_weights_resumes(tmp_path):
    model = tinycnn.models.create_model("resnet20", num_classes=10, in_chans=1)
    start = tmp_path / "start.npz"
    tinycnn.save(model.state_dict(), start)
    settings = dict(model="resnet20", dataset="digits", train_subset=32, test_subset=16, batch_size=16, epochs=2,
                    progress=False, plot=False, log=lambda m: None)
    trainer = train.Trainer(tmp_path / "run", model_kwargs={"weights": str(start)}, **settings)
    assert "weights" not in trainer.meta["model_kwargs"]
    np.testing.assert_array_equal(trainer.model.fc.weight.data, model.fc.weight.data)  # started from the file
    trainer.save_checkpoint()
    resumed = train.Trainer(tmp_path / "run", resume=trainer.checkpoint_path, progress=False, plot=False,
                            log=lambda m: None)
    assert resumed.epoch == 0


def test_defaults_are_a_valid_config():
    from tinycnn.checkpoint import check_config
    check_config(dict(DEFAULTS))


# ------------------------------------------------------------------ IDX


def _idx_header(shape, type_code=0x08):
    return bytes([0, 0, type_code, len(shape)]) + b"".join(n.to_bytes(4, "big") for n in shape)


def test_gzipped_idx_claiming_gigabytes(tmp_path):
    # 2 GB declared, a few KB of gzip: refused from the header, nothing decompressed
    path = tmp_path / "train-images-idx3-ubyte.gz"
    path.write_bytes(gzip.compress(_idx_header((2**31 // 784, 28, 28)) + b"\0" * 10_000))
    with bounded():
        refused(lambda: data.read_idx(path), path, "more than .* gzipped bytes can hold")


def test_gzipped_idx_with_a_mountain_of_trailing_bytes(tmp_path):
    path = tmp_path / "t10k-labels-idx1-ubyte.gz"
    packer = zlib.compressobj(9, zlib.DEFLATED, 31)
    blob = packer.compress(_idx_header((10,)) + bytes(range(10)))
    for _ in range(256):  # 256 MiB of zeros after the 10 labels, ~256 KB gzipped
        blob += packer.compress(b"\0" * MiB)
    path.write_bytes(blob + packer.flush())
    assert path.stat().st_size < 2 * MiB
    with bounded():
        refused(lambda: data.read_idx(path), path, "trailing bytes")


def test_gzipped_idx_whose_data_stop_short(tmp_path):
    path = tmp_path / "short.gz"
    path.write_bytes(gzip.compress(_idx_header((4096, 28, 28)) + b"\0" * 1000))
    with bounded():
        refused(lambda: data.read_idx(path), path, "truncated")


def test_idx_dimensions_whose_int64_product_wraps(tmp_path):
    path = tmp_path / "wrap-idx"
    path.write_bytes(_idx_header((65536, 65536, 65536, 65536)))  # 2**64: 0 in int64
    with bounded():
        refused(lambda: data.read_idx(path), path, "truncated")


def test_idx_over_the_array_limit(tmp_path, monkeypatch):
    path = tmp_path / "big-idx"
    path.write_bytes(_idx_header((1000, 28, 28)) + b"\0" * 784_000)
    monkeypatch.setattr(limits, "max_array_bytes", 100_000)
    refused(lambda: data.read_idx(path), path, "over tinycnn.limits.max_array_bytes")
    monkeypatch.setattr(limits, "max_array_bytes", 1 << 30)
    assert data.read_idx(path).shape == (1000, 28, 28)


# ------------------------------------------------------------------ images


def _png_header_only(width, height):
    """A PNG whose IHDR declares width x height over a few bytes of pixel data."""
    def chunk(kind, body):
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")


@pytest.mark.parametrize("side", [12_000, 20_000, 100_000])
def test_huge_declared_images_are_refused_from_their_header(tmp_path, side):
    pytest.importorskip("PIL")
    (tmp_path / "cls").mkdir()
    path = tmp_path / "cls" / "big.png"
    path.write_bytes(_png_header_only(side, side))
    refused(lambda: data.load_image_folder(tmp_path), path, "image is .* over tinycnn.limits.max_image_pixels|too large")


def test_an_eps_named_png_never_reaches_ghostscript(tmp_path, monkeypatch):
    Image = pytest.importorskip("PIL.Image")
    from PIL import EpsImagePlugin
    called = []
    monkeypatch.setattr(EpsImagePlugin, "Ghostscript", lambda *a, **k: called.append(a))
    (tmp_path / "cls").mkdir()
    path = tmp_path / "cls" / "evil.png"
    path.write_bytes(b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 8 8\n%%EndComments\nshowpage\n%%EOF\n")
    refused(lambda: data.load_image_folder(tmp_path), path, "cannot read image as PNG, JPEG")
    assert called == []
    assert Image is not None


def test_image_limit_can_be_raised(tmp_path, monkeypatch):
    Image = pytest.importorskip("PIL.Image")
    (tmp_path / "cls").mkdir()
    Image.new("L", (64, 64)).save(tmp_path / "cls" / "a.png")
    monkeypatch.setattr(limits, "max_image_pixels", 1000)
    refused(lambda: data.load_image_folder(tmp_path), tmp_path / "cls" / "a.png", "64x64")
    monkeypatch.setattr(limits, "max_image_pixels", 4096)
    assert data.load_image_folder(tmp_path)[0].shape == (1, 64, 64, 1)


# ------------------------------------------------------------------ weights


def test_weights_npz_deflate_bomb_bounded_by_the_limit(tmp_path, monkeypatch):
    path = tmp_path / "bomb.npz"
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("fc.weight.npy", _npy(np.zeros(64 * MiB // 4, np.float32)))  # 64 MiB -> ~64 KB
    assert path.stat().st_size < MiB
    monkeypatch.setattr(limits, "max_array_bytes", 8 * MiB)
    with bounded():
        refused(lambda: tinycnn.weights.read_state_dict(path), path, "over tinycnn.limits.max_array_bytes")
    monkeypatch.setattr(limits, "max_array_bytes", 4 << 30)
    assert tinycnn.weights.read_state_dict(path)["fc.weight"].shape == (64 * MiB // 4,)


def test_weights_npz_bzip2_and_foreign_members(tmp_path):
    path = tmp_path / "b.npz"
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_BZIP2) as archive:
        archive.writestr("fc.weight.npy", _npy(np.zeros(4)))
    refused(lambda: tinycnn.weights.read_state_dict(path), path, "compression method 12")
    other = tmp_path / "c.npz"
    with zipfile.ZipFile(other, "w") as archive:
        archive.writestr("../../evil.sh", b"#!/bin/sh")
    refused(lambda: tinycnn.weights.read_state_dict(other), other, "not an .npy file")


def test_pth_expanded_view_is_refused_not_materialised(tmp_path):
    torch = pytest.importorskip("torch")
    path = tmp_path / "expand.pth"
    torch.save({"fc.weight": torch.zeros(1, dtype=torch.bfloat16).expand(2**14, 2**14)}, path)
    assert path.stat().st_size < 4000
    with bounded():
        refused(lambda: tinycnn.weights.read_state_dict(path), path, "view of 2 bytes of storage")


def test_pth_non_string_keys_compressed_and_legacy(tmp_path):
    torch = pytest.importorskip("torch")
    keys = tmp_path / "keys.pth"
    torch.save({1: torch.zeros(2)}, keys)
    refused(lambda: tinycnn.weights.read_state_dict(keys), keys, "keys must be strings")
    legacy = tmp_path / "legacy.pth"
    torch.save({"w": torch.zeros(2)}, legacy, _use_new_zipfile_serialization=False)
    refused(lambda: tinycnn.weights.read_state_dict(legacy), legacy, "not a zip archive")
    squeezed = tmp_path / "squeezed.pth"
    with zipfile.ZipFile(keys) as src, zipfile.ZipFile(squeezed, "w", compression=zipfile.ZIP_DEFLATED) as dst:
        for info in src.infolist():
            dst.writestr(info.filename, src.read(info))
    refused(lambda: tinycnn.weights.read_state_dict(squeezed), squeezed, "is compressed")
    code = tmp_path / "code.pth"
    torch.save({"w": _Reduces(print, ("pwned",))}, code)
    refused(lambda: tinycnn.weights.read_state_dict(code), code, "pickles something other than tensors")


def test_cli_predict_npy_with_a_lying_header(tmp_path, checkpoint, capsys):
    from tinycnn import cli
    path = tmp_path / "x.npy"
    header = b"{'descr': '<f4', 'fortran_order': False, 'shape': (1073741824,), }"
    path.write_bytes(b"\x93NUMPY\x01\x00" + struct.pack("<H", len(header)) + header + b"\0" * 16)
    with bounded():
        assert cli.main(["predict", str(checkpoint), str(path)]) != 0
    assert "x.npy" in capsys.readouterr().err

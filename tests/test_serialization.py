"""``tinycnn.save``/``load`` (tinycnn.serialization): exact round trips of nested structures, atomic
writes, corrupted and foreign files refused with the file named, nothing
that would need pickle."""

import math
import os
import zipfile

import numpy as np
import pytest

import tinycnn
from tinycnn import Tensor, nn, serialization


def _assert_same(a, b, where="obj"):
    """Equal values *and* types: a tuple stays a tuple, an int an int, an
    array keeps its dtype and shape; NaN equals NaN."""
    assert type(a) is type(b), f"{where}: {type(a).__name__} != {type(b).__name__}"
    if isinstance(a, dict):
        assert list(a) == list(b), where
        for k in a:
            _assert_same(a[k], b[k], f"{where}[{k!r}]")
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b)):
            _assert_same(x, y, f"{where}[{i}]")
    elif isinstance(a, np.ndarray):
        assert a.dtype == b.dtype and a.shape == b.shape, where
        np.testing.assert_array_equal(a, b, err_msg=where)
    elif isinstance(a, float) and math.isnan(a):
        assert math.isnan(b), where
    else:
        assert a == b, where


NESTED = {
    "arrays": {
        "f32": np.arange(6, dtype=np.float32).reshape(2, 3) / 7,
        "f64": np.array([[1e-300, -0.0], [np.pi, 1e300]]),
        "f64 specials": np.array([np.nan, np.inf, -np.inf]),
        "int8": np.array([-128, 127], np.int8),
        "int64": np.array([-(2**63), 2**63 - 1]),
        "uint8": np.arange(256, dtype=np.uint8),
        "bool": np.array([[True, False]]),
        "0-d float": np.array(2.5),
        "0-d int": np.array(7, np.int64),
        "empty": np.zeros((0, 3), np.float32),
        "fortran": np.asfortranarray(np.arange(12.0).reshape(3, 4)),
    },
    "ints": [0, -1, 2**63, 2**64 + 1, -(2**80), 10**40],
    "floats": (0.1, -0.0, 1e-320, float("inf"), float("-inf"), float("nan")),
    "strings": ["", "ascii", "ünïcødé ✓", "quote \" and \\ backslash", "__meta__"],
    "none": None,
    "bools": [True, False],
    "nesting": [[], (), {}, [(1, [2, {"deep": (None,)}])]],
    3: "an int key",
    "same array twice": [np.ones(2), np.ones(2)],
}


def test_nested_round_trip(tmp_path):
    path = tmp_path / "nested.npz"
    assert serialization.save(NESTED, path) == str(path)
    _assert_same(serialization.load(path), NESTED)


def test_array_round_trip_is_exact_and_writable(tmp_path):
    a = np.random.default_rng(0).standard_normal((3, 4)).astype(np.float32)
    serialization.save({"a": a[:, ::2]}, tmp_path / "a.npz")  # a non-contiguous view
    b = serialization.load(tmp_path / "a.npz")["a"]
    assert b.tobytes() == np.ascontiguousarray(a[:, ::2]).tobytes()
    b[0, 0] = 1.0  # loaded arrays are ordinary arrays


def test_tensors_and_numpy_scalars_are_saved_as_plain_values(tmp_path):
    obj = {"t": Tensor(np.arange(3, dtype=np.float64)), "i": np.int32(5), "f": np.float32(0.5), "b": np.bool_(True)}
    serialization.save(obj, tmp_path / "s.npz")
    _assert_same(serialization.load(tmp_path / "s.npz"), {"t": np.arange(3.0), "i": 5, "f": 0.5, "b": True})


def test_model_state_dict_round_trip(tmp_path):
    tinycnn.manual_seed(0)

    def model():
        return nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(),
                             nn.GlobalAvgPool2d(), nn.Linear(4, 2))

    src = model()
    src(Tensor(np.random.default_rng(1).standard_normal((2, 5, 5, 3)).astype(np.float32)))  # running stats move
    serialization.save({"model": src.state_dict(), "epoch": 3}, tmp_path / "ckpt.npz")
    loaded = serialization.load(tmp_path / "ckpt.npz")
    assert loaded["epoch"] == 3
    _assert_same(loaded["model"], dict(src.state_dict()))
    dst = model()
    assert dst.load_state_dict(loaded["model"]) == ([], [])
    x = Tensor(np.random.default_rng(2).standard_normal((2, 5, 5, 3)).astype(np.float32))
    assert src.eval()(x).data.tobytes() == dst.eval()(x).data.tobytes()


# ---------------------------------------------------------------- atomicity


class DiskFull(OSError):
    pass


def _failing_savez(path):
    """A stand-in for np.savez that writes half a file, checks the real name
    still holds the old content, then fails."""

    def savez(f, **members):
        f.write(b"PK\x03\x04 half a zip")
        f.flush()
        if os.path.exists(path):
            assert serialization.load(path) == {"version": "old"}
        raise DiskFull("disk full")

    return savez


@pytest.mark.parametrize("error", [DiskFull, KeyboardInterrupt])
def test_failed_write_keeps_the_old_file_and_leaves_no_temporary(tmp_path, monkeypatch, error):
    path = tmp_path / "ckpt.npz"
    serialization.save({"version": "old"}, path)
    before = path.read_bytes()
    savez = _failing_savez(path)
    if error is KeyboardInterrupt:
        def savez(f, **members):  # noqa: F811 - interrupted mid-write
            f.write(b"PK partial")
            raise KeyboardInterrupt
    monkeypatch.setattr(serialization.np, "savez", savez)
    with pytest.raises(error):
        serialization.save({"version": "new", "w": np.ones(3)}, path)
    assert os.listdir(tmp_path) == ["ckpt.npz"]
    assert path.read_bytes() == before
    monkeypatch.undo()
    assert serialization.load(path) == {"version": "old"}


def test_failed_first_write_creates_no_file(tmp_path, monkeypatch):
    path = tmp_path / "new.npz"
    monkeypatch.setattr(serialization.np, "savez", _failing_savez(path))
    with pytest.raises(DiskFull):
        serialization.save({"w": np.ones(3)}, path)
    assert os.listdir(tmp_path) == []


def test_unsaveable_object_fails_before_touching_the_file(tmp_path):
    path = tmp_path / "ckpt.npz"
    serialization.save({"version": "old"}, path)
    with pytest.raises(TypeError):
        serialization.save({"version": "new", "bad": object()}, path)
    assert os.listdir(tmp_path) == ["ckpt.npz"]
    assert serialization.load(path) == {"version": "old"}


def test_save_replaces_an_existing_file(tmp_path):
    path = tmp_path / "ckpt.npz"
    serialization.save({"version": "old", "w": np.zeros(100)}, path)
    serialization.save({"version": "new"}, path)
    assert serialization.load(path) == {"version": "new"}
    assert os.listdir(tmp_path) == ["ckpt.npz"]


# ---------------------------------------------------------------- corruption


def _saved(tmp_path):
    path = tmp_path / "good.npz"
    serialization.save({"w": np.arange(20, dtype=np.float32), "meta": {"epoch": 2, "name": "net"}}, path)
    return path, path.read_bytes()


@pytest.mark.parametrize("keep", [0, 10, 0.5, -1])
def test_truncated_file_is_refused_naming_it(tmp_path, keep):
    path, data = _saved(tmp_path)
    cut = tmp_path / "cut.npz"
    cut.write_bytes(data[: int(len(data) * keep) if isinstance(keep, float) else keep])
    with pytest.raises(ValueError, match=r"load: .*cut\.npz"):
        serialization.load(cut)


def test_every_bit_flip_is_detected_or_harmless(tmp_path):
    """Flip one bit in each byte in turn: the load raises ValueError naming
    the file, or (a flip in zip bookkeeping such as a timestamp) returns
    exactly what was saved; never another exception, never wrong data."""
    path, data = _saved(tmp_path)
    expected = serialization.load(path)
    bad = tmp_path / "flipped.npz"
    detected = 0
    for i in range(len(data)):
        flipped = bytearray(data)
        flipped[i] ^= 1 << (i % 8)
        bad.write_bytes(bytes(flipped))
        try:
            result = serialization.load(bad)
        except ValueError as err:
            assert "flipped.npz" in str(err), f"byte {i}: {err}"
            detected += 1
        else:
            _assert_same(result, expected, f"byte {i}")
    assert detected > len(data) // 2


def test_consistent_zip_with_changed_data_fails_the_checksum(tmp_path):
    """Rewrite the zip with one array byte changed and fresh zip CRCs: only
    tinycnn's own checksum can notice."""
    path, _ = _saved(tmp_path)
    needle = np.arange(20, dtype=np.float32).tobytes()
    with zipfile.ZipFile(path) as zin:
        members = {name: bytearray(zin.read(name)) for name in zin.namelist()}
    (name,) = [n for n, content in members.items() if needle in content]
    members[name][members[name].index(needle) + 8] ^= 0x40
    forged = tmp_path / "forged.npz"
    with zipfile.ZipFile(forged, "w") as zout:
        for name, content in members.items():
            zout.writestr(name, bytes(content))
    with pytest.raises(ValueError, match=r"load: .*forged\.npz failed its checksum"):
        serialization.load(forged)


def test_foreign_files_are_refused(tmp_path):
    plain = tmp_path / "plain.npz"
    np.savez(plain, w=np.ones(3))
    with pytest.raises(ValueError, match=r"load: .*plain\.npz is an \.npz file but not one written by tinycnn\.save"):
        serialization.load(plain)
    text = tmp_path / "notes.npz"
    text.write_text("hello")
    with pytest.raises(ValueError, match=r"load: .*notes\.npz is not a readable tinycnn \.npz file"):
        serialization.load(text)
    pickled = tmp_path / "pickled.npz"
    np.savez(pickled, obj=np.array([{"a": 1}], dtype=object))
    with pytest.raises(ValueError, match=r"load: .*pickled\.npz"):
        serialization.load(pickled)
    with pytest.raises(FileNotFoundError, match=r"load: no such file: .*missing\.npz"):
        serialization.load(tmp_path / "missing.npz")


class Thing:
    pass


@pytest.mark.parametrize("obj, what", [
    (Thing(), r"save: obj\['x'\] is a Thing"),
    ({1, 2}, r"save: obj\['x'\] is a set"),
    (b"bytes", r"save: obj\['x'\] is a bytes"),
    (np.array([{"a": 1}], dtype=object), r"save: obj\['x'\] is an array of dtype object"),
    (np.array(["a", "b"]), r"save: obj\['x'\] is an array of dtype <U1"),
    (np.array(["2020-01-01"], dtype="datetime64[D]"), r"save: obj\['x'\] is an array of dtype datetime64\[D\]"),
    ([1, lambda: 0], r"save: obj\['x'\]\[1\] is a function"),
    ({(1, 2): 3}, r"save: obj\['x'\] has a key \(1, 2\) of type tuple; keys must be str or int"),
    ({True: 3}, r"save: obj\['x'\] has a key True of type bool"),
    (1 + 2j, r"save: obj\['x'\] is a complex"),
])
def test_objects_that_would_need_pickle_are_refused(tmp_path, obj, what):
    with pytest.raises(TypeError, match=what):
        serialization.save({"x": obj}, tmp_path / "x.npz")
    assert os.listdir(tmp_path) == []


def test_save_and_load_are_exported_at_top_level(tmp_path):
    import tinycnn

    path = tinycnn.save({"w": np.arange(3.0)}, tmp_path / "state.npz")
    assert np.array_equal(tinycnn.load(path)["w"], np.arange(3.0))


def test_the_old_name_tinycnn_io_still_works_and_warns():
    with pytest.warns(DeprecationWarning, match="tinycnn.io is deprecated"):
        assert tinycnn.io is serialization
    with pytest.warns(DeprecationWarning):
        from tinycnn import io
    assert io.save is tinycnn.save is serialization.save

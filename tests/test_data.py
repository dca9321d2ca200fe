"""tinycnn.data: readers, bundled digits, registry and downloads.

Readers run on the real MNIST test set (when shared/ is beside the repository)
and on small files generated here in each format; downloads run against a
local HTTP server on 127.0.0.1 (there is no outside network).
"""

import functools
import gzip
import hashlib
import http.server
import io
import os
import pickle
import shutil
import sys
import tarfile
import threading
from pathlib import Path

import numpy as np
import pytest

import tinycnn.data as data
from tinycnn.data import downloads

# .ci/run tests a copy of the checkout, so it says where shared/ is.
MNIST_DIR = Path(os.environ.get("TINYCNN_SHARED_DATA", Path(__file__).resolve().parents[2] / "shared" / "data")) / "mnist"
MNIST_TEST_COUNTS = [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]


# ------------------------------------------------------------------ writers


def idx_bytes(array, type_code=0x08):
    array = np.asarray(array)
    dtype = {0x08: ">u1", 0x0B: ">i2", 0x0D: ">f4"}[type_code]
    header = bytes([0, 0, type_code, array.ndim]) + b"".join(int(d).to_bytes(4, "big") for d in array.shape)
    return header + array.astype(dtype).tobytes()


def write_mnist(folder, split, images, labels, gz=True):
    folder.mkdir(parents=True, exist_ok=True)
    prefix = "train" if split == "train" else "t10k"
    for kind, array in (("images-idx3", images), ("labels-idx1", labels)):
        raw = idx_bytes(array)
        name = f"{prefix}-{kind}-ubyte"
        if gz:
            (folder / (name + ".gz")).write_bytes(gzip.compress(raw))
        else:
            (folder / name).write_bytes(raw)


def small_mnist(n=12, seed=0):
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, (n, 28, 28), dtype=np.uint8), rng.integers(0, 10, n).astype(np.uint8)


def write_cifar10(folder, per_batch=4, seed=0, meta=True):
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    batches = {}
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        batch = {b"batch_label": name.encode(), b"data": rng.integers(0, 256, (per_batch, 3072), dtype=np.uint8),
                 b"labels": [int(v) for v in rng.integers(0, 10, per_batch)],
                 b"filenames": [f"img{i}.png".encode() for i in range(per_batch)]}
        (folder / name).write_bytes(pickle.dumps(batch, protocol=2))
        batches[name] = batch
    if meta:
        names = [n.encode() for n in data.readers.CIFAR10_CLASSES]
        (folder / "batches.meta").write_bytes(pickle.dumps({b"label_names": names, b"num_vis": 3072}, protocol=2))
    return batches


def write_cifar100(folder, n=6, seed=0):
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    out = {}
    for split in ("train", "test"):
        batch = {b"data": rng.integers(0, 256, (n, 3072), dtype=np.uint8),
                 b"fine_labels": [int(v) for v in rng.integers(0, 100, n)],
                 b"coarse_labels": [int(v) for v in rng.integers(0, 20, n)]}
        (folder / split).write_bytes(pickle.dumps(batch, protocol=2))
        out[split] = batch
    meta = {b"fine_label_names": [f"fine{i}".encode() for i in range(100)],
            b"coarse_label_names": [f"coarse{i}".encode() for i in range(20)]}
    (folder / "meta").write_bytes(pickle.dumps(meta, protocol=2))
    return out


# ------------------------------------------------------------- real MNIST


@pytest.mark.skipif(not MNIST_DIR.is_dir(), reason="shared/data/mnist not beside the repository")
def test_real_mnist_test_set():
    images, labels = data.load_mnist(MNIST_DIR, "test")
    assert images.shape == (10000, 28, 28, 1) and images.dtype == np.uint8
    assert labels.shape == (10000,) and labels.dtype == np.int64
    assert np.bincount(labels).tolist() == MNIST_TEST_COUNTS
    assert images.max() == 255 and images.min() == 0
    ds = data.get_dataset(MNIST_DIR, "test")
    assert ds.num_classes == 10 and ds.image_shape == (28, 28, 1) and len(ds) == 10000


@pytest.mark.skipif(not MNIST_DIR.is_dir(), reason="shared/data/mnist not beside the repository")
def test_real_mnist_raw_equals_gzipped(tmp_path):
    raw = tmp_path / "t10k-labels-idx1-ubyte"
    raw.write_bytes(gzip.decompress((MNIST_DIR / "t10k-labels-idx1-ubyte.gz").read_bytes()))
    gzipped = data.read_idx(MNIST_DIR / "t10k-labels-idx1-ubyte.gz")
    np.testing.assert_array_equal(data.read_idx(raw, magic=2049), gzipped)


# ------------------------------------------------------------------ IDX


@pytest.mark.parametrize("gz", [False, True])
def test_load_mnist_generated(tmp_path, gz):
    images, labels = small_mnist()
    write_mnist(tmp_path, "train", images, labels, gz=gz)
    got_images, got_labels = data.load_mnist(tmp_path, "train")
    np.testing.assert_array_equal(got_images[..., 0], images)
    np.testing.assert_array_equal(got_labels, labels)
    assert got_images.shape == (12, 28, 28, 1) and got_labels.dtype == np.int64


def test_read_idx_other_types_big_endian(tmp_path):
    values = np.array([[-300, 2], [1000, -1]], dtype=np.int16)
    (tmp_path / "a.idx").write_bytes(idx_bytes(values, 0x0B))
    got = data.read_idx(tmp_path / "a.idx")
    np.testing.assert_array_equal(got, values)
    floats = np.array([1.5, -2.25], dtype=np.float32)
    (tmp_path / "f.idx").write_bytes(idx_bytes(floats, 0x0D))
    np.testing.assert_array_equal(data.read_idx(tmp_path / "f.idx"), floats)


def test_idx_truncated_and_trailing_bytes(tmp_path):
    good = idx_bytes(np.zeros((3, 4, 4), np.uint8))
    path = tmp_path / "cut-images-idx3-ubyte"
    path.write_bytes(good[:-5])
    with pytest.raises(ValueError, match=r"cut-images-idx3-ubyte.*truncated.*\(3, 4, 4\)"):
        data.read_idx(path)
    path.write_bytes(good + b"xx")
    with pytest.raises(ValueError, match="cut-images-idx3-ubyte.*trailing"):
        data.read_idx(path)
    path.write_bytes(good[:10])  # inside the header
    with pytest.raises(ValueError, match="cut-images-idx3-ubyte.*header"):
        data.read_idx(path)


def test_idx_wrong_magic_and_not_idx(tmp_path):
    labels = tmp_path / "labels"
    labels.write_bytes(idx_bytes(np.zeros(5, np.uint8)))
    with pytest.raises(ValueError, match=r"labels: IDX magic number is 2049, expected 2051"):
        data.read_idx(labels, magic=2051)
    junk = tmp_path / "junk.bin"
    junk.write_bytes(b"GIF89a not an idx file")
    with pytest.raises(ValueError, match=r"junk\.bin: not an IDX file"):
        data.read_idx(junk)


def test_idx_corrupted_and_truncated_gzip(tmp_path):
    blob = gzip.compress(idx_bytes(np.arange(4000, dtype=np.uint8).reshape(10, 20, 20) % 251))
    cut = tmp_path / "cut.gz"
    cut.write_bytes(blob[: len(blob) // 2])
    with pytest.raises(ValueError, match=r"cut\.gz: corrupted or truncated gzip"):
        data.read_idx(cut)
    bad = bytearray(blob)
    bad[len(bad) // 2] ^= 0xFF
    bad[len(bad) // 2 + 1] ^= 0xFF
    flipped = tmp_path / "flipped.gz"
    flipped.write_bytes(bytes(bad))
    with pytest.raises(ValueError, match=r"flipped\.gz"):
        data.read_idx(flipped)


def test_idx_missing_files(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"nothere-idx3-ubyte: no such file"):
        data.read_idx(tmp_path / "nothere-idx3-ubyte")
    images, labels = small_mnist()
    write_mnist(tmp_path, "test", images, labels)
    (tmp_path / "t10k-labels-idx1-ubyte.gz").unlink()
    with pytest.raises(FileNotFoundError, match=r"no test labels file.*t10k-labels-idx1-ubyte"):
        data.load_mnist(tmp_path, "test")
    with pytest.raises(FileNotFoundError, match="no train images"):
        data.load_mnist(tmp_path, "train")


def test_idx_image_label_count_mismatch(tmp_path):
    images, labels = small_mnist()
    write_mnist(tmp_path, "test", images, labels[:-1])
    with pytest.raises(ValueError, match="12 images but .*t10k-labels.* 11 labels"):
        data.load_mnist(tmp_path, "test")


def test_idx_swapped_files_named_in_error(tmp_path):
    images, labels = small_mnist()
    write_mnist(tmp_path, "test", images, labels)
    a, b = tmp_path / "t10k-images-idx3-ubyte.gz", tmp_path / "t10k-labels-idx1-ubyte.gz"
    a.rename(tmp_path / "x"), b.rename(a), (tmp_path / "x").rename(b)
    with pytest.raises(ValueError, match=r"t10k-images-idx3-ubyte\.gz: IDX magic number is 2049, expected 2051"):
        data.load_mnist(tmp_path, "test")


# ----------------------------------------------------------------- CIFAR


def test_cifar10_generated_nhwc(tmp_path):
    batches = write_cifar10(tmp_path / "cifar-10-batches-py")
    images, labels, classes = data.load_cifar10(tmp_path, "train")  # finds the sub-folder
    assert images.shape == (20, 32, 32, 3) and images.dtype == np.uint8 and labels.dtype == np.int64
    assert classes == data.readers.CIFAR10_CLASSES
    raw = np.concatenate([batches[f"data_batch_{i}"][b"data"] for i in range(1, 6)])
    n, y, x, c = 7, 5, 30, 2
    assert images[n, y, x, c] == raw[n, c * 1024 + y * 32 + x]  # channel planes, row-major
    np.testing.assert_array_equal(images.transpose(0, 3, 1, 2).reshape(20, 3072), raw)
    expected = sum((batches[f"data_batch_{i}"][b"labels"] for i in range(1, 6)), [])
    assert labels.tolist() == expected
    test_images, test_labels, _ = data.load_cifar10(tmp_path / "cifar-10-batches-py", "test")
    assert test_images.shape == (4, 32, 32, 3) and test_labels.tolist() == batches["test_batch"][b"labels"]


def test_cifar100_fine_and_coarse(tmp_path):
    batches = write_cifar100(tmp_path)
    images, fine, names = data.load_cifar100(tmp_path, "test")
    assert images.shape == (6, 32, 32, 3) and fine.tolist() == batches["test"][b"fine_labels"]
    assert len(names) == 100 and names[3] == "fine3"
    _, coarse, coarse_names = data.load_cifar100(tmp_path, "train", label="coarse")
    assert coarse.tolist() == batches["train"][b"coarse_labels"] and len(coarse_names) == 20


def test_cifar_truncated_wrong_keys_and_dtype(tmp_path):
    write_cifar10(tmp_path)
    path = tmp_path / "test_batch"
    blob = path.read_bytes()
    path.write_bytes(blob[: len(blob) // 3])
    with pytest.raises(ValueError, match=r"test_batch: corrupted or truncated pickle"):
        data.load_cifar10(tmp_path, "test")
    path.write_bytes(pickle.dumps({b"data": np.zeros((2, 3072), np.uint8)}, protocol=2))
    with pytest.raises(ValueError, match=r"test_batch: keys \['data'\], expected a CIFAR batch"):
        data.load_cifar10(tmp_path, "test")
    path.write_bytes(pickle.dumps({b"data": np.zeros((2, 3072), np.float32), b"labels": [0, 1]}, protocol=2))
    with pytest.raises(ValueError, match=r"test_batch: b'data' is a float32 array.*expected \(N, 3072\) uint8"):
        data.load_cifar10(tmp_path, "test")
    path.write_bytes(pickle.dumps({b"data": np.zeros((2, 3072), np.uint8), b"labels": [0, 1, 2]}, protocol=2))
    with pytest.raises(ValueError, match=r"test_batch: 2 images but b'labels' has shape \(3,\)"):
        data.load_cifar10(tmp_path, "test")
    (tmp_path / "data_batch_3").unlink()
    with pytest.raises(FileNotFoundError, match="data_batch_3"):
        data.load_cifar10(tmp_path, "train")


class _RunsCode:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_restricted_unpickler_refuses_code(tmp_path):
    marker = tmp_path / "pwned"
    evil = tmp_path / "data_batch_1"
    evil.write_bytes(pickle.dumps({b"data": _RunsCode(marker)}, protocol=2))
    with pytest.raises(ValueError, match=r"data_batch_1: refused pickle: global '(posix|nt)\.system' is forbidden"):
        data.read_cifar_batch(evil)
    assert not marker.exists()
    # A hand-written protocol-0 pickle calling builtins.eval is refused too.
    evil.write_bytes(b"cbuiltins\neval\n(V__import__('os').system('touch " + str(marker).encode() + b"')\ntR.")
    with pytest.raises(ValueError, match="builtins.eval' is forbidden"):
        data.safe_pickle_load(evil)
    assert not marker.exists()
    evil.write_bytes(pickle.dumps({b"data": np.array([1, "a"], dtype=object)}, protocol=2))
    with pytest.raises(ValueError, match="object array"):
        data.safe_pickle_load(evil)
    # Plain numbers, strings, containers and numeric arrays are fine (all protocols).
    for protocol in (2, 4, 5):
        plain = {b"a": [1, 2.5, "x", b"y"], b"n": np.arange(6.0).reshape(2, 3)}
        evil.write_bytes(pickle.dumps(plain, protocol=protocol))
        loaded = data.safe_pickle_load(evil)
        np.testing.assert_array_equal(loaded[b"n"], np.arange(6.0).reshape(2, 3))


# ---------------------------------------------------------- image folder


def _png_tree(root, size=(6, 5)):
    Image = pytest.importorskip("PIL.Image")
    rng = np.random.default_rng(0)
    arrays = {}
    for cls in ("zebra", "ant"):  # created out of order: classes must come back sorted
        (root / cls).mkdir(parents=True)
        for i in range(3):
            a = rng.integers(0, 256, (size[0], size[1], 3), dtype=np.uint8)
            Image.fromarray(a, "RGB").save(root / cls / f"{i}.png")
            arrays[(cls, i)] = a
    return Image, arrays


def test_image_folder_rgb_sorted_classes(tmp_path):
    _, arrays = _png_tree(tmp_path)
    (tmp_path / "ant" / "notes.txt").write_text("ignored")
    images, labels, classes = data.load_image_folder(tmp_path)
    assert classes == ["ant", "zebra"]
    assert images.shape == (6, 6, 5, 3) and images.dtype == np.uint8
    assert labels.tolist() == [0, 0, 0, 1, 1, 1]
    np.testing.assert_array_equal(images[4], arrays[("zebra", 1)])


def test_image_folder_gray_mixed_and_resize(tmp_path):
    Image = pytest.importorskip("PIL.Image")
    for cls, value in (("a", 10), ("b", 200)):
        (tmp_path / cls).mkdir()
        Image.fromarray(np.full((4, 4), value, np.uint8), "L").save(tmp_path / cls / "x.png")
    images, labels, _ = data.load_image_folder(tmp_path)
    assert images.shape == (2, 4, 4, 1) and images[1].min() == 200  # all greyscale -> L
    Image.fromarray(np.zeros((4, 4, 3), np.uint8), "RGB").save(tmp_path / "b" / "y.png")
    images, labels, _ = data.load_image_folder(tmp_path)
    assert images.shape == (3, 4, 4, 3)  # one colour image -> everything RGB
    np.testing.assert_array_equal(images[0], np.full((4, 4, 3), 10))
    images, _, _ = data.load_image_folder(tmp_path, size=(8, 6), mode="L")
    assert images.shape == (3, 8, 6, 1)


def test_image_folder_errors(tmp_path):
    Image, _ = _png_tree(tmp_path)
    Image.fromarray(np.zeros((9, 9, 3), np.uint8)).save(tmp_path / "zebra" / "big.png")
    with pytest.raises(ValueError, match=r"big\.png: image is 9x9 but .* pass size="):
        data.load_image_folder(tmp_path)
    assert data.load_image_folder(tmp_path, size=4)[0].shape == (7, 4, 4, 3)
    (tmp_path / "zebra" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    with pytest.raises(ValueError, match=r"broken\.png: cannot read image"):
        data.load_image_folder(tmp_path, size=4)
    (tmp_path / "zebra" / "broken.png").unlink()
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="empty: class folder has no images"):
        data.load_image_folder(tmp_path, size=4)


def test_image_folder_without_pillow(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "PIL", None)
    with pytest.raises(ImportError, match=r"pip install tinycnn\[image\]"):
        data.load_image_folder(tmp_path)


# --------------------------------------------------------- digits, registry


def test_bundled_digits():
    images, labels = data.load_digits()
    assert images.shape == (1797, 8, 8, 1) and images.dtype == np.uint8
    assert labels.dtype == np.int64
    assert np.bincount(labels).tolist() == [178, 182, 177, 183, 181, 182, 181, 179, 174, 180]
    raw, raw_labels = data.load_digits(rescale=False)
    assert raw.max() == 16 and images.max() == 255
    np.testing.assert_array_equal(images, (255 * raw.astype(int) + 8) // 16)
    np.testing.assert_array_equal(labels, raw_labels)
    # First sample of sklearn's digits is a 0 whose top row is 0 0 5 13 9 1 0 0.
    assert labels[0] == 0 and raw[0, 0, :, 0].tolist() == [0, 0, 5, 13, 9, 1, 0, 0]


def test_digits_documented_split():
    train, test = data.get_dataset(), data.get_dataset("digits", "test")
    assert (len(train), len(test)) == (1438, 359)
    assert np.bincount(test.labels).tolist() == [36, 36, 35, 37, 36, 36, 36, 36, 35, 36]
    tr, te = data.stratified_split(data.load_digits()[1], 0.2, 0)
    assert not set(tr) & set(te) and len(set(tr) | set(te)) == 1797
    # Pinned: the split is fixed arithmetic and must never change.
    assert te[:12].tolist() == [3, 10, 18, 21, 33, 41, 48, 49, 68, 82, 83, 100] and int(te.sum()) == 335176
    np.testing.assert_array_equal(test.images, data.load_digits()[0][te])
    assert train.num_classes == 10 and train.classes[3] == "3" and train.image_shape == (8, 8, 1)
    assert len(data.get_dataset("digits", "all")) == 1797


def test_stratified_split_other_seed_differs():
    labels = np.repeat(np.arange(3), 50)
    a = data.stratified_split(labels, 0.2, 0)[1]
    b = data.stratified_split(labels, 0.2, 1)[1]
    assert len(a) == len(b) == 30 and not np.array_equal(a, b)
    assert np.bincount(labels[b]).tolist() == [10, 10, 10]


def test_get_dataset_detects_formats(tmp_path):
    images, labels = small_mnist()
    write_mnist(tmp_path / "idx", "test", images, labels, gz=False)
    write_cifar10(tmp_path / "c10")
    write_cifar100(tmp_path / "c100")
    assert data.detect_format(tmp_path / "idx") == "idx"
    assert data.detect_format(tmp_path / "c10") == "cifar10"
    assert data.detect_format(tmp_path / "c100") == "cifar100"
    ds = data.get_dataset(tmp_path / "idx", "test")
    assert ds.image_shape == (28, 28, 1) and len(ds) == 12 and ds.labels.dtype == np.int64
    c10 = data.get_dataset(str(tmp_path / "c10"), "train")
    assert (len(c10), c10.num_classes, c10.image_shape, c10.classes[0]) == (20, 10, (32, 32, 3), "airplane")
    c100 = data.get_dataset(tmp_path / "c100", "test")
    assert c100.num_classes == 100 and len(c100) == 6
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "readme.txt").write_text("hi")
    with pytest.raises(ValueError, match=r"other: unrecognised dataset folder; expected one of: an MNIST-format"):
        data.get_dataset(tmp_path / "other")
    with pytest.raises(FileNotFoundError, match=r"'nope' is neither a dataset name \(digits, mnist"):
        data.get_dataset("nope")
    with pytest.raises(FileNotFoundError, match="pass download=True"):
        data.get_dataset("cifar10", "train", root=tmp_path / "empty")


def test_get_dataset_image_folder(tmp_path):
    _png_tree(tmp_path / "tree")
    assert data.detect_format(tmp_path / "tree") == "image-folder"
    full = data.get_dataset(tmp_path / "tree", "all")
    train, test = data.get_dataset(tmp_path / "tree", "train"), data.get_dataset(tmp_path / "tree", "test")
    assert (len(full), len(train), len(test)) == (6, 4, 2) and full.classes == ["ant", "zebra"]
    _png_tree(tmp_path / "split" / "train")
    _png_tree(tmp_path / "split" / "test")
    assert len(data.get_dataset(tmp_path / "split", "test")) == 6  # the test/ sub-tree


# ------------------------------------------------------------- downloads


class _Handler(http.server.SimpleHTTPRequestHandler):
    requests = []

    def log_message(self, *args):
        pass

    def do_GET(self):
        _Handler.requests.append(self.path)
        if self.path.endswith("/short.bin"):  # promises 1000 bytes, sends 10
            self.send_response(200)
            self.send_header("Content-Length", "1000")
            self.end_headers()
            self.wfile.write(b"0123456789")
            self.close_connection = True
            return
        super().do_GET()


@pytest.fixture
def server(tmp_path):
    """An HTTP server on 127.0.0.1 serving tmp_path/'www'; yields (base URL, folder)."""
    www = tmp_path / "www"
    www.mkdir()
    _Handler.requests = []
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_Handler, directory=str(www)))
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}/", www
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(5)


def _md5(blob):
    return hashlib.md5(blob).hexdigest()


def _leftovers(folder):
    return [p.name for p in Path(folder).iterdir() if p.name.startswith(".") or p.name.endswith(".part")]


def test_download_file_good_and_corrupted(server, tmp_path):
    base, www = server
    good = os.urandom(300_000)
    (www / "good.bin").write_bytes(good)
    (www / "bad.bin").write_bytes(good[:-1] + bytes([good[-1] ^ 1]))  # one bit flipped
    dest = tmp_path / "dest"
    path = data.download_file(base + "good.bin", dest / "good.bin", md5=_md5(good), timeout=5, retries=0)
    assert path.read_bytes() == good and _leftovers(dest) == []
    with pytest.raises(data.ChecksumError) as err:
        data.download_file(base + "bad.bin", dest / "bad.bin", md5=_md5(good), timeout=5, retries=0)
    message = str(err.value)
    actual = _md5((www / "bad.bin").read_bytes())
    assert "bad.bin" in message and _md5(good) in message and actual in message
    assert not (dest / "bad.bin").exists() and _leftovers(dest) == []
    # sha256 works too; an existing good file is not fetched again.
    count = len(_Handler.requests)
    data.download_file(base + "good.bin", dest / "good.bin", sha256=hashlib.sha256(good).hexdigest(), timeout=5)
    assert len(_Handler.requests) == count


def test_download_file_http_errors_and_short_transfer(server, tmp_path):
    base, _ = server
    dest = tmp_path / "dest"
    with pytest.raises(data.DownloadError, match="HTTP 404"):
        data.download_file(base + "missing.bin", dest / "missing.bin", md5="0" * 32, timeout=5, retries=3, backoff=0)
    assert _Handler.requests.count("/missing.bin") == 1  # a 404 is not retried
    with pytest.raises(data.DownloadError, match="failed after 2 attempts"):
        data.download_file(base + "short.bin", dest / "short.bin", md5="0" * 32, timeout=5, retries=1, backoff=0)
    assert _Handler.requests.count("/short.bin") == 2
    assert not (dest / "short.bin").exists() and _leftovers(dest) == []


def test_download_mnist_end_to_end(server, tmp_path, monkeypatch):
    base, www = server
    images, labels = small_mnist(8)
    write_mnist(www, "train", images, labels)
    write_mnist(www, "test", images[:5], labels[:5])
    files = {name: _md5((www / name).read_bytes()) for name in downloads.DATASETS["mnist"]["files"]}
    monkeypatch.setitem(downloads.DATASETS, "mnist", {**downloads.DATASETS["mnist"], "files": files})
    monkeypatch.setenv("TINYCNN_DOWNLOAD_URL", base.rstrip("/"))  # the env var replaces the mirrors
    root = tmp_path / "root"
    ds = data.get_dataset("mnist", "test", root=root, download=True)
    assert len(ds) == 5 and ds.name == "mnist"
    np.testing.assert_array_equal(ds.images[..., 0], images[:5])
    assert sorted(p.name for p in (root / "mnist").iterdir()) == sorted(files)
    count = len(_Handler.requests)
    data.download("mnist", root, verbose=False)  # all present and verified: no request
    assert len(_Handler.requests) == count


def test_download_mnist_corrupted_file(server, tmp_path, monkeypatch):
    base, www = server
    images, labels = small_mnist(8)
    write_mnist(www, "train", images, labels)
    write_mnist(www, "test", images, labels)
    files = {name: _md5((www / name).read_bytes()) for name in downloads.DATASETS["mnist"]["files"]}
    monkeypatch.setitem(downloads.DATASETS, "mnist", {**downloads.DATASETS["mnist"], "files": files})
    blob = bytearray((www / "t10k-images-idx3-ubyte.gz").read_bytes())
    blob[100] ^= 0xFF
    (www / "t10k-images-idx3-ubyte.gz").write_bytes(bytes(blob))
    root = tmp_path / "root"
    with pytest.raises(data.ChecksumError, match="t10k-images-idx3-ubyte.gz: checksum mismatch"):
        data.download("mnist", root, base_url=base, timeout=5, retries=0, verbose=False)
    folder = root / "mnist"
    assert not (folder / "t10k-images-idx3-ubyte.gz").exists() and _leftovers(folder) == []


def _cifar_archive(tmp_path, www, members=None):
    src = tmp_path / "src"
    write_cifar10(src / "cifar-10-batches-py", per_batch=2)
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        tar.add(src / "cifar-10-batches-py", arcname="cifar-10-batches-py")
        for name, blob in (members or {}).items():
            info = tarfile.TarInfo(name)
            info.size = len(blob)
            tar.addfile(info, io.BytesIO(blob))
    (www / "cifar-10-python.tar.gz").write_bytes(buf.getvalue())
    shutil.rmtree(src)
    return _md5(buf.getvalue())


def test_download_cifar10_extracts(server, tmp_path, monkeypatch):
    base, www = server
    md5 = _cifar_archive(tmp_path, www)
    monkeypatch.setitem(downloads.DATASETS, "cifar10",
                        {**downloads.DATASETS["cifar10"], "files": {"cifar-10-python.tar.gz": md5}})
    root = tmp_path / "root"
    folder = data.download("cifar10", root, base_url=base, timeout=5, verbose=False)
    assert folder == root / "cifar-10-batches-py"
    images, labels, _ = data.load_cifar10(folder, "train")
    assert images.shape == (10, 32, 32, 3)
    assert _leftovers(root) == []
    assert sorted(p.name for p in root.iterdir()) == ["cifar-10-batches-py", "cifar-10-python.tar.gz"]


def test_download_cifar10_rejects_escaping_member(server, tmp_path, monkeypatch):
    base, www = server
    md5 = _cifar_archive(tmp_path, www, {"../escaped.txt": b"x"})
    monkeypatch.setitem(downloads.DATASETS, "cifar10",
                        {**downloads.DATASETS["cifar10"], "files": {"cifar-10-python.tar.gz": md5}})
    root = tmp_path / "root"
    with pytest.raises(ValueError, match=r"cifar-10-python.tar.gz: unexpected member '\.\./escaped.txt'"):
        data.download("cifar10", root, base_url=base, timeout=5, verbose=False)
    assert not (tmp_path / "escaped.txt").exists() and not (root / "cifar-10-batches-py").exists()
    assert _leftovers(root) == []


def test_download_unknown_name(tmp_path):
    with pytest.raises(ValueError, match="unknown dataset 'svhn'; known: mnist, fashion-mnist, kmnist, cifar10"):
        data.download("svhn", tmp_path)


def test_published_checksums_table():
    for name, spec in downloads.DATASETS.items():
        for filename, md5 in spec["files"].items():
            assert len(md5) == 32 and int(md5, 16) >= 0, (name, filename)
    # Values as published by torchvision (spot check two).
    assert downloads.DATASETS["mnist"]["files"]["t10k-images-idx3-ubyte.gz"] == "9fb629c4189551a2d022fa330f9573f3"
    assert downloads.DATASETS["cifar10"]["files"]["cifar-10-python.tar.gz"] == "c58f30108f718f92721af3b95e74349a"


def _py2_batch(data_bytes, n, labels):
    """A batch pickled as Python 2 wrote CIFAR (protocol 2, str opcodes, numpy.core names)."""
    dtype = (b"cnumpy\ndtype\nU\x02u1\x89\x88\x87R"
             b"(K\x03U\x01|NNNJ\xff\xff\xff\xffJ\xff\xff\xff\xffK\x00tb")
    array = (b"cnumpy.core.multiarray\n_reconstruct\ncnumpy\nndarray\nK\x00\x85U\x01b\x87R"
             b"(K\x01(M" + n.to_bytes(2, "little") + b"M\x00\x0ct" + dtype
             + b"\x89T" + len(data_bytes).to_bytes(4, "little") + data_bytes + b"tb")
    label_list = b"](" + b"".join(b"K" + bytes([v]) for v in labels) + b"e"
    return b"\x80\x02}(U\x04data" + array + b"U\x06labels" + label_list + b"u."


def test_cifar_python2_style_pickle(tmp_path):
    raw = np.random.default_rng(3).integers(0, 256, (2, 3072), dtype=np.uint8)
    (tmp_path / "test_batch").write_bytes(_py2_batch(raw.tobytes(), 2, [7, 1]))
    images, labels = data.read_cifar_batch(tmp_path / "test_batch")
    assert labels.tolist() == [7, 1]
    np.testing.assert_array_equal(images.transpose(0, 3, 1, 2).reshape(2, 3072), raw)

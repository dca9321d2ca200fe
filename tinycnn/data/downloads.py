"""Download the standard datasets, verified and written atomically.

``download(name, root)`` fetches 'mnist', 'fashion-mnist', 'kmnist', 'cifar10' or
'cifar100' from its usual public URLs into ``root`` and checks every file against
the MD5 of the original distribution. Each file is streamed into a temporary file
in the destination folder, checked, fsynced and then ``os.replace``d: a crash or a
bad download never leaves a partial file under the real name.

The base URL can be overridden with ``base_url=`` or the ``TINYCNN_DOWNLOAD_URL``
environment variable (files are then fetched as ``<base>/<file name>``), e.g. for
a local mirror or a test server. ``TINYCNN_DATA`` sets the default root.
"""

import gzip
import hashlib
import http.client
import os
import shutil
import sys
import tarfile
import tempfile
import time
import urllib.error
import urllib.request
import zlib
from pathlib import Path, PurePosixPath

# MD5s of the original distribution files, as published in torchvision
# (torchvision/datasets/mnist.py: MNIST.resources, FashionMNIST.resources,
# KMNIST.resources; torchvision/datasets/cifar.py: CIFAR10.tgz_md5,
# CIFAR100.tgz_md5). Mirrors are the ones torchvision uses.
_MNIST_FILES = ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz",
                "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz")
DATASETS = {
    "mnist": {
        "kind": "idx", "folder": "mnist",
        "mirrors": ["https://ossci-datasets.s3.amazonaws.com/mnist/", "http://yann.lecun.com/exdb/mnist/"],
        "files": dict(zip(_MNIST_FILES, ("f68b3c2dcbeaaa9fbdd348bbdeb94873", "d53e105ee54ea40749a09fcbcd1e9432",
                                         "9fb629c4189551a2d022fa330f9573f3", "ec29112dd5afa0611ce80d1b7f02629c"))),
    },
    "fashion-mnist": {
        "kind": "idx", "folder": "fashion-mnist",
        "mirrors": ["http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/"],
        "files": dict(zip(_MNIST_FILES, ("8d4fb7e6c68d591d4c3dfef9ec88bf0d", "25c81989df183df01b3e8a0aad5dffbe",
                                         "bef4ecab320f06d8554ea6380940ec79", "bb300cfdad3c16e7a12a480ee83cd310"))),
    },
    "kmnist": {
        "kind": "idx", "folder": "kmnist",
        "mirrors": ["http://codh.rois.ac.jp/kmnist/dataset/kmnist/"],
        "files": dict(zip(_MNIST_FILES, ("bdb82020997e1d708af4cf47b453dcf7", "e144d726b3acfaa3e44228e80efcd344",
                                         "5c965bf0a639b31b8f53240b1b52f4d7", "7320c461ea6c1c855c0b718fb2a4b134"))),
    },
    "cifar10": {
        "kind": "cifar10", "folder": "cifar-10-batches-py",
        "mirrors": ["https://www.cs.toronto.edu/~kriz/"],
        "files": {"cifar-10-python.tar.gz": "c58f30108f718f92721af3b95e74349a"},
        "contents": ["data_batch_1", "data_batch_2", "data_batch_3", "data_batch_4", "data_batch_5",
                     "test_batch", "batches.meta"],
    },
    "cifar100": {
        "kind": "cifar100", "folder": "cifar-100-python",
        "mirrors": ["https://www.cs.toronto.edu/~kriz/"],
        "files": {"cifar-100-python.tar.gz": "eb9058c3a382ffc7106e4002c42a8d85"},
        "contents": ["train", "test", "meta"],
    },
}


class ChecksumError(ValueError):
    """A downloaded file's digest differs from the published one."""


class DownloadError(OSError):
    """A file could not be fetched (network error, HTTP error, short transfer)."""


def default_root():
    """``$TINYCNN_DATA`` or ``~/.tinycnn/data``."""
    return Path(os.environ.get("TINYCNN_DATA") or Path.home() / ".tinycnn" / "data")


def file_digest(path, algorithm="md5"):
    """Hex digest of a file, read in 1 MiB chunks."""
    h = hashlib.new(algorithm)
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _fsync_dir(folder):
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:  # e.g. platforms without directory file descriptors
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _retryable(error):
    if isinstance(error, urllib.error.HTTPError):
        return error.code >= 500 or error.code in (408, 429)
    return isinstance(error, (urllib.error.URLError, http.client.HTTPException, ConnectionError,
                              TimeoutError, DownloadError))


def _fetch_once(url, path, algorithm, expected, timeout):
    """Stream ``url`` to a temp file beside ``path``, verify, fsync, rename."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".part")
    try:
        digest = hashlib.new(algorithm)
        size = 0
        with os.fdopen(fd, "wb") as out:
            with urllib.request.urlopen(url, timeout=timeout) as response:
                length = response.headers.get("Content-Length")
                for chunk in iter(lambda: response.read(1 << 20), b""):
                    out.write(chunk)
                    digest.update(chunk)
                    size += len(chunk)
            if length is not None and size != int(length):
                raise DownloadError(f"{url}: transfer cut short: got {size} of {length} bytes")
            out.flush()
            os.fsync(out.fileno())
        actual = digest.hexdigest()
        if actual != expected:
            raise ChecksumError(
                f"{path.name}: checksum mismatch for {url}: expected {algorithm} {expected}, "
                f"got {actual}; the download was discarded"
            )
        os.replace(tmp, path)
        tmp = None
        _fsync_dir(path.parent)
    finally:
        if tmp is not None:
            try:
                os.unlink(tmp)
            except FileNotFoundError:
                pass


def download_file(url, path, md5=None, sha256=None, timeout=30.0, retries=2, backoff=1.0, verbose=False):
    """Download ``url`` to ``path`` atomically, checking its MD5 or SHA-256.

    An existing ``path`` with the right digest is kept without downloading. Network
    errors, HTTP 5xx/408/429 and short transfers are retried up to ``retries`` times
    (waiting ``backoff * 2**attempt`` seconds, at most 10). A digest mismatch raises
    :class:`ChecksumError` naming the file and both digests, and leaves nothing behind;
    other failures raise :class:`DownloadError`. Returns ``path``.
    """
    if (md5 is None) == (sha256 is None):
        raise ValueError("download_file: give exactly one of md5= or sha256=")
    algorithm, expected = ("md5", md5.lower()) if md5 is not None else ("sha256", sha256.lower())
    if retries < 0 or timeout <= 0:
        raise ValueError(f"download_file: need retries >= 0 and timeout > 0, got {retries}, {timeout}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.is_file() and file_digest(path, algorithm) == expected:
        return path
    for attempt in range(retries + 1):
        if verbose:
            print(f"downloading {url}", file=sys.stderr)
        try:
            _fetch_once(url, path, algorithm, expected, timeout)
            return path
        except ChecksumError:
            raise
        except Exception as e:  # noqa: BLE001 -- classified just below
            if not _retryable(e):
                if isinstance(e, urllib.error.HTTPError):
                    raise DownloadError(f"{url}: HTTP {e.code} {e.reason} (for {path.name})") from None
                raise
            if attempt == retries:
                raise DownloadError(f"{url}: failed after {retries + 1} attempts (for {path.name}): {e}") from None
            time.sleep(min(backoff * 2**attempt, 10.0))
    raise AssertionError("unreachable")


def download(name, root=None, base_url=None, timeout=30.0, retries=2, verbose=True):
    """Download dataset ``name`` into ``root`` (verified); return the folder to read it from.

    'mnist', 'fashion-mnist', 'kmnist': the four ``*-ubyte.gz`` files go to
    ``root/<name>/``. 'cifar10', 'cifar100': the archive goes to ``root/`` and is
    extracted (regular files only, no paths outside its folder) to
    ``root/cifar-10-batches-py`` or ``root/cifar-100-python``. Files already present
    with the right checksum are not fetched again. ``base_url`` (or
    ``$TINYCNN_DOWNLOAD_URL``) replaces the public mirrors.
    """
    if name not in DATASETS:
        raise ValueError(f"download: unknown dataset {name!r}; known: {', '.join(DATASETS)}")
    spec = DATASETS[name]
    root = Path(root) if root is not None else default_root()
    base_url = base_url or os.environ.get("TINYCNN_DOWNLOAD_URL")
    mirrors = [base_url] if base_url else spec["mirrors"]
    mirrors = [m if m.endswith("/") else m + "/" for m in mirrors]
    folder = root / spec["folder"]
    if spec["kind"] == "idx":
        for filename, md5 in spec["files"].items():
            _from_mirrors(mirrors, filename, folder / filename, md5, timeout, retries, verbose)
        return folder
    if all((folder / f).is_file() for f in spec["contents"]):
        return folder
    ((filename, md5),) = spec["files"].items()
    archive = _from_mirrors(mirrors, filename, root / filename, md5, timeout, retries, verbose)
    _extract_tar(archive, root, spec["folder"], spec["contents"])
    return folder


def _from_mirrors(mirrors, filename, path, md5, timeout, retries, verbose):
    error = None
    for mirror in mirrors:
        try:
            return download_file(mirror + filename, path, md5=md5, timeout=timeout, retries=retries, verbose=verbose)
        except (DownloadError, ChecksumError) as e:
            error = e
            if verbose and len(mirrors) > 1:
                print(f"  failed: {e}", file=sys.stderr)
    raise error


def _extract_tar(archive, root, top, contents):
    """Extract ``archive`` (whose members all sit under ``top/``) to ``root/top`` atomically."""
    staging = Path(tempfile.mkdtemp(dir=root, prefix=f".{top}.", suffix=".part"))
    try:
        try:
            with tarfile.open(archive, "r:gz") as tar:
                for member in tar:
                    parts = PurePosixPath(member.name).parts
                    if member.name.startswith("/") or ".." in parts or not parts or parts[0] != top:
                        raise ValueError(f"{archive}: unexpected member {member.name!r} (expected paths under {top}/)")
                    if member.isdir():
                        continue
                    if not member.isfile():
                        raise ValueError(f"{archive}: member {member.name!r} is not a regular file")
                    target = staging.joinpath(*parts)
                    target.parent.mkdir(parents=True, exist_ok=True)
                    with tar.extractfile(member) as src, open(target, "wb") as dst:
                        shutil.copyfileobj(src, dst)
        except (tarfile.TarError, EOFError, zlib.error, gzip.BadGzipFile) as e:
            raise ValueError(f"{archive}: corrupted archive ({e})") from None
        missing = [f for f in contents if not (staging / top / f).is_file()]
        if missing:
            raise ValueError(f"{archive}: archive lacks {', '.join(top + '/' + m for m in missing)}")
        final = root / top
        if final.exists():  # an incomplete earlier extraction: removed with the staging folder
            os.replace(final, staging / "previous")
        os.replace(staging / top, final)
        _fsync_dir(root)
    finally:
        shutil.rmtree(staging, ignore_errors=True)

"""Download the standard datasets, verified, bounded and written atomically.

``download(name, root)`` fetches 'mnist', 'fashion-mnist', 'kmnist', 'cifar10' or
'cifar100' from its usual public URLs into ``root`` and checks every file against
the MD5 of the original distribution. Each file is streamed into a temporary file
in the destination folder, checked, fsynced and then ``os.replace``d: a crash or a
bad download never leaves a partial file under the real name.

A misbehaving server cannot make a download run away. The exact size of every
published file is known: a ``Content-Length`` announcing another size is refused
before the body is read, and the transfer stops as soon as more bytes arrive than
the file has (a file of unknown size is capped at ``MAX_DOWNLOAD_BYTES``, 1 GiB).
The body is read one socket read at a time, and each attempt has an overall
deadline (by default 60 s plus the time the file takes at 50 KiB/s) checked
between reads, so a server that trickles the body is cut off as well. The
built-in mirrors are all https, and a redirect from https to anything else is
refused. CIFAR archives are extracted with bounds on their number of members and
their total size.

The base URL can be overridden with ``base_url=`` or the ``TINYCNN_DOWNLOAD_URL``
environment variable (files are then fetched as ``<base>/<file name>``), e.g. for
a local mirror or a test server; it may be plain http. ``TINYCNN_DATA`` sets the
default root.
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
import urllib.parse
import urllib.request
import zlib
from pathlib import Path, PurePosixPath

# MD5s of the original distribution files, as published in torchvision
# (torchvision/datasets/mnist.py: MNIST.resources, FashionMNIST.resources,
# KMNIST.resources; torchvision/datasets/cifar.py: CIFAR10.tgz_md5,
# CIFAR100.tgz_md5). Sizes in bytes: tensorflow-datasets'
# url_checksums/{mnist,fashion_mnist,kmnist}.txt for the IDX files; for the CIFAR
# archives, the Content-Length www.cs.toronto.edu serves (as seen in published
# torchvision, Keras and wget download logs). Mirrors are https only: the ones
# torchvision uses, plus the CVDF copy of MNIST that tensorflow-datasets uses and
# Fashion-MNIST's own GitHub repository.
_MNIST_FILES = ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz",
                "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz")
DATASETS = {
    "mnist": {
        "kind": "idx", "folder": "mnist",
        "mirrors": ["https://ossci-datasets.s3.amazonaws.com/mnist/",
                    "https://storage.googleapis.com/cvdf-datasets/mnist/"],
        "files": dict(zip(_MNIST_FILES, ("f68b3c2dcbeaaa9fbdd348bbdeb94873", "d53e105ee54ea40749a09fcbcd1e9432",
                                         "9fb629c4189551a2d022fa330f9573f3", "ec29112dd5afa0611ce80d1b7f02629c"))),
        "sizes": dict(zip(_MNIST_FILES, (9912422, 28881, 1648877, 4542))),
    },
    "fashion-mnist": {
        "kind": "idx", "folder": "fashion-mnist",
        "mirrors": ["https://github.com/zalandoresearch/fashion-mnist/raw/master/data/fashion/"],
        "files": dict(zip(_MNIST_FILES, ("8d4fb7e6c68d591d4c3dfef9ec88bf0d", "25c81989df183df01b3e8a0aad5dffbe",
                                         "bef4ecab320f06d8554ea6380940ec79", "bb300cfdad3c16e7a12a480ee83cd310"))),
        "sizes": dict(zip(_MNIST_FILES, (26421880, 29515, 4422102, 5148))),
    },
    "kmnist": {
        "kind": "idx", "folder": "kmnist",
        "mirrors": ["https://codh.rois.ac.jp/kmnist/dataset/kmnist/"],
        "files": dict(zip(_MNIST_FILES, ("bdb82020997e1d708af4cf47b453dcf7", "e144d726b3acfaa3e44228e80efcd344",
                                         "5c965bf0a639b31b8f53240b1b52f4d7", "7320c461ea6c1c855c0b718fb2a4b134"))),
        "sizes": dict(zip(_MNIST_FILES, (18165135, 29497, 3041136, 5120))),
    },
    "cifar10": {
        "kind": "cifar10", "folder": "cifar-10-batches-py",
        "mirrors": ["https://www.cs.toronto.edu/~kriz/"],
        "files": {"cifar-10-python.tar.gz": "c58f30108f718f92721af3b95e74349a"},
        "sizes": {"cifar-10-python.tar.gz": 170498071},
        "contents": ["data_batch_1", "data_batch_2", "data_batch_3", "data_batch_4", "data_batch_5",
                     "test_batch", "batches.meta"],
    },
    "cifar100": {
        "kind": "cifar100", "folder": "cifar-100-python",
        "mirrors": ["https://www.cs.toronto.edu/~kriz/"],
        "files": {"cifar-100-python.tar.gz": "eb9058c3a382ffc7106e4002c42a8d85"},
        "sizes": {"cifar-100-python.tar.gz": 169001437},
        "contents": ["train", "test", "meta"],
    },
}

# A size belongs to the published file, so it is looked up by the file's MD5: a
# table whose digests were replaced (a private mirror of other files, the tests)
# falls back to the MAX_DOWNLOAD_BYTES cap instead of a size that cannot match.
_PUBLISHED_SIZES = {md5: spec["sizes"][name] for spec in DATASETS.values() for name, md5 in spec["files"].items()}

MAX_DOWNLOAD_BYTES = 1 << 30  # download_file's cap when the size is not known (max_bytes=None)
MIN_RATE = 50 * 1024  # bytes/s: the default deadline lets a file of known size arrive this slowly,
DEADLINE_SLACK = 60.0  # plus this many seconds
UNKNOWN_SIZE_DEADLINE = 3600.0  # the default deadline, in seconds, when the size is not known
MAX_EXTRACT_MEMBERS = 10_000  # members (files and folders) a tar archive may have
MAX_EXTRACT_BYTES = 1 << 30  # total size its members may add up to
_CHUNK = 64 * 1024  # at most one socket read per response.read1() call


class ChecksumError(ValueError):
    """A downloaded file's digest differs from the published one."""


class DownloadError(OSError):
    """A file could not be fetched (network or HTTP error, short, oversized or overdue transfer, refused redirect)."""


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


def _check_redirect(old_url, new_url):
    """Raise :class:`DownloadError` if a redirect from ``old_url`` to ``new_url`` leaves https."""
    if urllib.parse.urlsplit(old_url).scheme == "https" and urllib.parse.urlsplit(new_url).scheme != "https":
        raise DownloadError(f"{old_url}: refused a redirect from https to {new_url}")


class _NoDowngradeRedirectHandler(urllib.request.HTTPRedirectHandler):
    """urllib's redirect handling, except that a redirect from https to anything else is refused."""

    def redirect_request(self, req, fp, code, msg, headers, newurl):
        _check_redirect(req.full_url, newurl)
        return super().redirect_request(req, fp, code, msg, headers, newurl)


def _announced_length(url, response, size, limit):
    """The response's Content-Length (None if absent), refused unless it is ``size`` and within ``limit``."""
    header = response.headers.get("Content-Length")
    if header is None:
        return None
    if not header.strip().isdecimal():
        raise DownloadError(f"{url}: invalid Content-Length {header!r}")
    length = int(header)
    if size is not None and length != size:
        raise DownloadError(f"{url}: Content-Length {length} announced for a file of {size} bytes; refused")
    if length > limit:
        raise DownloadError(f"{url}: Content-Length {length} exceeds the {limit}-byte cap; refused")
    return length


def _fetch_once(url, path, algorithm, expected, timeout, size, limit, deadline):
    """Stream ``url`` to a temp file beside ``path``, verify, fsync, rename.

    At most ``limit`` bytes are accepted (``limit == size`` when the size is known)
    and the transfer must end within ``deadline`` seconds of its start.
    """
    give_up = time.monotonic() + deadline
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".part")
    try:
        digest = hashlib.new(algorithm)
        received = 0
        with os.fdopen(fd, "wb") as out:
            opener = urllib.request.build_opener(_NoDowngradeRedirectHandler)
            with opener.open(url, timeout=timeout) as response:
                length = _announced_length(url, response, size, limit)
                while True:
                    if time.monotonic() > give_up:
                        raise DownloadError(f"{url}: not complete within the {deadline:g} s deadline")
                    chunk = response.read1(_CHUNK)
                    if not chunk:
                        break
                    received += len(chunk)
                    if received > limit:
                        raise DownloadError(f"{url}: more than the {limit} bytes expected; stopped")
                    out.write(chunk)
                    digest.update(chunk)
            wanted = length if length is not None else size
            if wanted is not None and received != wanted:
                raise DownloadError(f"{url}: transfer cut short: got {received} of {wanted} bytes")
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


def download_file(url, path, md5=None, sha256=None, timeout=30.0, retries=2, backoff=1.0, verbose=False,
                  size=None, max_bytes=None, deadline=None):
    """Download ``url`` to ``path`` atomically, checking its MD5 or SHA-256.

    An existing ``path`` with the right digest is kept without downloading. Network
    errors, HTTP 5xx/408/429 and short transfers are retried up to ``retries`` times
    (waiting ``backoff * 2**attempt`` seconds, at most 10). A digest mismatch raises
    :class:`ChecksumError` naming the file and both digests, and leaves nothing behind;
    other failures raise :class:`DownloadError`. Returns ``path``.

    Bounds, each failure counted against ``retries`` like a network error:
    ``size`` (bytes), when known, is exact: a Content-Length announcing another size
    is refused before the body is read, and the transfer stops as soon as more
    bytes arrive. Without ``size`` at most ``max_bytes`` are accepted (default
    ``MAX_DOWNLOAD_BYTES``, 1 GiB). ``timeout`` bounds each socket operation;
    ``deadline`` (seconds) bounds each attempt as a whole, checked before every
    read of the body (each read waits at most ``timeout``). It defaults to
    ``DEADLINE_SLACK + size / MIN_RATE`` (60 s plus the time at 50 KiB/s) when the
    size is known, else ``UNKNOWN_SIZE_DEADLINE`` (1 hour).
    """
    if (md5 is None) == (sha256 is None):
        raise ValueError("download_file: give exactly one of md5= or sha256=")
    algorithm, expected = ("md5", md5.lower()) if md5 is not None else ("sha256", sha256.lower())
    if max_bytes is None:
        max_bytes = MAX_DOWNLOAD_BYTES
    limit = size if size is not None else max_bytes
    if deadline is None:
        deadline = DEADLINE_SLACK + size / MIN_RATE if size is not None else UNKNOWN_SIZE_DEADLINE
    if retries < 0 or timeout <= 0 or deadline <= 0 or limit < 0:
        raise ValueError("download_file: need retries >= 0, timeout > 0, deadline > 0 and size, max_bytes >= 0; "
                         f"got retries={retries}, timeout={timeout}, deadline={deadline}, "
                         f"size={size}, max_bytes={max_bytes}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.is_file() and file_digest(path, algorithm) == expected:
        return path
    for attempt in range(retries + 1):
        if verbose:
            print(f"downloading {url}", file=sys.stderr)
        try:
            _fetch_once(url, path, algorithm, expected, timeout, size, limit, deadline)
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
    extracted (regular files only, no paths outside its folder, at most
    ``MAX_EXTRACT_MEMBERS`` members of at most ``MAX_EXTRACT_BYTES`` in all) to
    ``root/cifar-10-batches-py`` or ``root/cifar-100-python``. Files already present
    with the right checksum are not fetched again; published files are held to their
    exact size (see :func:`download_file`). ``base_url`` (or
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
            return download_file(mirror + filename, path, md5=md5, timeout=timeout, retries=retries,
                                 verbose=verbose, size=_PUBLISHED_SIZES.get(md5))
        except (DownloadError, ChecksumError) as e:
            error = e
            if verbose and len(mirrors) > 1:
                print(f"  failed: {e}", file=sys.stderr)
    raise error


def _extract_tar(archive, root, top, contents):
    """Extract ``archive`` (whose members all sit under ``top/``) to ``root/top`` atomically.

    Only folders and regular files are accepted, at most ``MAX_EXTRACT_MEMBERS`` of
    them, whose sizes add up to at most ``MAX_EXTRACT_BYTES``.
    """
    staging = Path(tempfile.mkdtemp(dir=root, prefix=f".{top}.", suffix=".part"))
    try:
        try:
            with tarfile.open(archive, "r:gz") as tar:
                count = total = 0
                for member in tar:
                    count += 1
                    if count > MAX_EXTRACT_MEMBERS:
                        raise ValueError(f"{archive}: more than {MAX_EXTRACT_MEMBERS} members; refused")
                    parts = PurePosixPath(member.name).parts
                    if member.name.startswith("/") or ".." in parts or not parts or parts[0] != top:
                        raise ValueError(f"{archive}: unexpected member {member.name!r} (expected paths under {top}/)")
                    if member.isdir():
                        continue
                    if not member.isfile():
                        raise ValueError(f"{archive}: member {member.name!r} is not a regular file")
                    total += member.size
                    if total > MAX_EXTRACT_BYTES:
                        raise ValueError(f"{archive}: members add up to more than {MAX_EXTRACT_BYTES} bytes; refused")
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

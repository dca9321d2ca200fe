"""tinycnn.data.downloads against hostile servers: endless, lying, trickling, redirecting.

Every test talks to an HTTP server on 127.0.0.1 in a thread (no network needed)
whose behaviour per path is set by the test, and must finish within seconds.
"""

import functools
import hashlib
import http.server
import io
import tarfile
import threading
import time
import urllib.request
from pathlib import Path

import pytest

from tinycnn import data
from tinycnn.data import downloads

_BLOCK = b"x" * (64 * 1024)
_STREAM_CAP = 256 << 20  # the "endless" stream stops here at the latest, so the server thread always ends


class _Handler(http.server.SimpleHTTPRequestHandler):
    routes = {}  # path -> function(handler), set by the fixture's user
    requests = []

    def log_message(self, *args):
        pass

    def do_GET(self):
        _Handler.requests.append(self.path)
        route = _Handler.routes.get(self.path)
        if route is None:
            return super().do_GET()
        try:
            route(self)
        except OSError:  # the client hung up, as it should
            pass
        finally:
            self.close_connection = True


@pytest.fixture
def server(tmp_path):
    """An HTTP server on 127.0.0.1 serving tmp_path/'www' plus ``routes``; yields (base URL, www, routes)."""
    www = tmp_path / "www"
    www.mkdir()
    _Handler.routes, _Handler.requests = {}, []
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_Handler, directory=str(www)))
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}/", www, _Handler.routes
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(5)


class _Endless:
    """A route streaming 64 KiB blocks without Content-Length until the client hangs up."""

    def __init__(self, chunked=False):
        self.chunked, self.sent, self.done = chunked, 0, threading.Event()

    def __call__(self, handler):
        try:
            if self.chunked:
                handler.protocol_version = "HTTP/1.1"
            handler.send_response(200)
            if self.chunked:
                handler.send_header("Transfer-Encoding", "chunked")
            handler.end_headers()
            framed = b"%x\r\n%s\r\n" % (len(_BLOCK), _BLOCK) if self.chunked else _BLOCK
            while self.sent < _STREAM_CAP:
                handler.wfile.write(framed)
                self.sent += len(_BLOCK)
        finally:
            self.done.set()


def _headers_then(handler, length, body=b"", pause=0.0, step=0.0):
    """Send 200 with ``Content-Length: length`` (None: none), wait ``pause`` s, then ``body`` a byte per ``step`` s."""
    handler.send_response(200)
    if length is not None:
        handler.send_header("Content-Length", str(length))
    handler.end_headers()
    handler.wfile.flush()
    time.sleep(pause)
    for i in range(len(body)):
        handler.wfile.write(body[i:i + 1])
        handler.wfile.flush()
        time.sleep(step)


def _leftovers(folder):
    return [p.name for p in Path(folder).iterdir() if p.name.startswith(".") or p.name.endswith(".part")]


def _md5(blob):
    return hashlib.md5(blob).hexdigest()


LABELS = "train-labels-idx1-ubyte.gz"  # MNIST's 28,881-byte file


# ------------------------------------------------------------- sizes and byte caps


def test_sizes_table_is_complete():
    for name, spec in downloads.DATASETS.items():
        assert set(spec["sizes"]) == set(spec["files"]), name
        for filename, size in spec["sizes"].items():
            assert type(size) is int and size > 0, (name, filename)
    assert downloads.DATASETS["mnist"]["sizes"][LABELS] == 28881
    assert downloads.DATASETS["cifar10"]["sizes"]["cifar-10-python.tar.gz"] == 170498071


@pytest.mark.parametrize("chunked", [False, True], ids=["close-delimited", "chunked"])
def test_endless_stream_stops_at_the_known_size(server, tmp_path, chunked):
    base, _, routes = server
    routes["/endless.gz"] = stream = _Endless(chunked)
    dest = tmp_path / "dest"
    size = downloads.DATASETS["mnist"]["sizes"][LABELS]
    start = time.monotonic()
    with pytest.raises(data.DownloadError) as err:
        data.download_file(base + "endless.gz", dest / LABELS, md5="0" * 32, size=size, timeout=5, retries=0)
    assert time.monotonic() - start < 3
    message = str(err.value)
    assert base + "endless.gz" in message and LABELS in message and f"more than the {size} bytes" in message
    assert stream.done.wait(5)
    assert stream.sent < 64 << 20  # the client hung up early: what was sent is socket buffers, not the stream
    assert not (dest / LABELS).exists() and _leftovers(dest) == []


def test_download_holds_published_files_to_their_size(server, tmp_path):
    base, _, routes = server
    streams = {name: _Endless() for name in downloads.DATASETS["mnist"]["files"]}
    routes.update({"/" + name: stream for name, stream in streams.items()})
    root = tmp_path / "root"
    start = time.monotonic()
    with pytest.raises(data.DownloadError, match=r"train-images-idx3-ubyte.gz.*more than the 9912422 bytes"):
        data.download("mnist", root, base_url=base, timeout=5, retries=0, verbose=False)
    assert time.monotonic() - start < 5
    assert streams["train-images-idx3-ubyte.gz"].done.wait(5)
    assert streams["train-images-idx3-ubyte.gz"].sent < 64 << 20
    assert _leftovers(root / "mnist") == []


def test_unknown_size_is_capped_by_max_bytes(server, tmp_path):
    base, _, routes = server
    routes["/endless.bin"] = stream = _Endless()
    dest = tmp_path / "dest"
    with pytest.raises(data.DownloadError, match="more than the 1000000 bytes"):
        data.download_file(base + "endless.bin", dest / "x.bin", md5="0" * 32, max_bytes=10**6, timeout=5, retries=0)
    assert stream.done.wait(5) and stream.sent < 64 << 20
    assert _leftovers(dest) == []


def test_default_cap_applies_without_size(server, tmp_path, monkeypatch):
    base, _, routes = server
    routes["/endless.bin"] = _Endless()
    monkeypatch.setattr(downloads, "MAX_DOWNLOAD_BYTES", 200_000)
    with pytest.raises(data.DownloadError, match="more than the 200000 bytes"):
        data.download_file(base + "endless.bin", tmp_path / "x.bin", md5="0" * 32, timeout=5, retries=0)


def test_wrong_content_length_is_refused_before_the_body(server, tmp_path):
    base, _, routes = server
    body_requested = threading.Event()

    def liar(handler):  # announces 5 MB, then would send the body only after 3 s
        _headers_then(handler, 5_000_000, pause=3.0)
        body_requested.set()

    routes["/liar.gz"] = liar
    dest = tmp_path / "dest"
    start = time.monotonic()
    with pytest.raises(data.DownloadError, match=r"Content-Length 5000000 announced for a file of 28881 bytes"):
        data.download_file(base + "liar.gz", dest / LABELS, md5="0" * 32, size=28881, timeout=10, retries=0)
    assert time.monotonic() - start < 2 and not body_requested.is_set()
    assert _leftovers(dest) == []


def test_content_length_over_the_cap_is_refused(server, tmp_path):
    base, _, routes = server
    routes["/big.bin"] = functools.partial(_headers_then, length=10**9, pause=3.0)
    start = time.monotonic()
    with pytest.raises(data.DownloadError, match="Content-Length 1000000000 exceeds the 1000-byte cap"):
        data.download_file(base + "big.bin", tmp_path / "big.bin", md5="0" * 32, max_bytes=1000, timeout=10, retries=0)
    assert time.monotonic() - start < 2


def test_invalid_content_length_is_refused(server, tmp_path):
    base, _, routes = server
    routes["/odd.bin"] = functools.partial(_headers_then, length="-5", pause=3.0)
    start = time.monotonic()
    with pytest.raises(data.DownloadError, match="invalid Content-Length '-5'"):
        data.download_file(base + "odd.bin", tmp_path / "odd.bin", md5="0" * 32, timeout=10, retries=0)
    assert time.monotonic() - start < 2


def test_short_body_without_content_length_is_refused(server, tmp_path):
    base, _, routes = server
    routes["/short.bin"] = functools.partial(_headers_then, length=None, body=b"0123456789")
    with pytest.raises(data.DownloadError, match="transfer cut short: got 10 of 28881 bytes"):
        data.download_file(base + "short.bin", tmp_path / "s.bin", md5=_md5(b"0123456789"), size=28881,
                           timeout=5, retries=0)
    assert not (tmp_path / "s.bin").exists() and _leftovers(tmp_path) == []


def test_exact_size_is_accepted(server, tmp_path):
    base, www, _ = server
    blob = bytes(range(256)) * 100
    (www / "exact.bin").write_bytes(blob)
    path = data.download_file(base + "exact.bin", tmp_path / "dest" / "exact.bin", md5=_md5(blob), size=len(blob),
                              timeout=5, retries=0)
    assert path.read_bytes() == blob


# ------------------------------------------------------------- deadline


def test_trickling_server_hits_the_deadline(server, tmp_path):
    base, _, routes = server
    routes["/trickle.bin"] = functools.partial(_headers_then, length=100, body=b"y" * 100, step=0.2)
    dest = tmp_path / "dest"
    start = time.monotonic()
    with pytest.raises(data.DownloadError) as err:
        data.download_file(base + "trickle.bin", dest / "t.bin", md5="0" * 32, deadline=1.0, timeout=5, retries=0)
    elapsed = time.monotonic() - start
    assert 0.9 < elapsed < 2.0
    message = str(err.value)
    assert base + "trickle.bin" in message and "t.bin" in message and "1 s deadline" in message
    assert _leftovers(dest) == []


def test_deadline_overrun_counts_against_retries(server, tmp_path):
    base, _, routes = server
    routes["/trickle.bin"] = functools.partial(_headers_then, length=100, body=b"y" * 100, step=0.1)
    start = time.monotonic()
    with pytest.raises(data.DownloadError, match="failed after 2 attempts.*deadline"):
        data.download_file(base + "trickle.bin", tmp_path / "t.bin", md5="0" * 32, deadline=0.5, timeout=5,
                           retries=1, backoff=0)
    assert _Handler.requests.count("/trickle.bin") == 2 and time.monotonic() - start < 3


def test_default_deadline_follows_the_size(server, tmp_path, monkeypatch):
    base, _, routes = server
    routes["/trickle.bin"] = functools.partial(_headers_then, length=1000, body=b"y" * 1000, step=0.05)
    monkeypatch.setattr(downloads, "DEADLINE_SLACK", 0.3)
    monkeypatch.setattr(downloads, "MIN_RATE", 2000)  # 1000 bytes: 0.3 + 0.5 s
    start = time.monotonic()
    with pytest.raises(data.DownloadError, match="0.8 s deadline"):
        data.download_file(base + "trickle.bin", tmp_path / "t.bin", md5="0" * 32, size=1000, timeout=5, retries=0)
    assert time.monotonic() - start < 2


def test_bad_bounds_are_rejected(tmp_path):
    for kwargs in ({"deadline": 0}, {"size": -1}, {"max_bytes": -1}):
        with pytest.raises(ValueError, match="download_file: need"):
            data.download_file("http://127.0.0.1:9/x", tmp_path / "x", md5="0" * 32, **kwargs)


# ------------------------------------------------------------- https and redirects


def test_builtin_mirrors_are_https():
    for name, spec in downloads.DATASETS.items():
        assert spec["mirrors"], name
        for mirror in spec["mirrors"]:
            assert mirror.startswith("https://") and mirror.endswith("/"), (name, mirror)


@pytest.mark.parametrize("old, new, refused", [
    ("https://example.org/a.gz", "http://example.org/a.gz", True),
    ("https://example.org/a.gz", "ftp://example.org/a.gz", True),
    ("HTTPS://example.org/a.gz", "HTTP://example.org/a.gz", True),
    ("https://example.org/a.gz", "https://mirror.example.net/a.gz", False),
    ("http://127.0.0.1/a.gz", "http://127.0.0.1/b.gz", False),
    ("http://127.0.0.1/a.gz", "https://example.org/a.gz", False),
])
def test_redirect_decision(old, new, refused):
    handler = downloads._NoDowngradeRedirectHandler()
    request = urllib.request.Request(old)
    if refused:
        with pytest.raises(data.DownloadError, match="refused a redirect from https to"):
            handler.redirect_request(request, None, 302, "Found", {}, new)
    else:
        follow = handler.redirect_request(request, None, 302, "Found", {}, new)
        assert follow.full_url == new


def test_redirects_are_still_followed(server, tmp_path):
    base, www, routes = server
    blob = b"moved content"
    (www / "new.bin").write_bytes(blob)

    def moved(handler):
        handler.send_response(302)
        handler.send_header("Location", "/new.bin")
        handler.send_header("Content-Length", "0")
        handler.end_headers()

    routes["/old.bin"] = moved
    path = data.download_file(base + "old.bin", tmp_path / "x.bin", md5=_md5(blob), timeout=5, retries=0)
    assert path.read_bytes() == blob and _Handler.requests == ["/old.bin", "/new.bin"]


# ------------------------------------------------------------- tar extraction bounds


def _tar(members):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for name, blob in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(blob)
            tar.addfile(info, io.BytesIO(blob))
    return buf.getvalue()


_CIFAR10 = {f"cifar-10-batches-py/{name}": b"z" * 100 for name in downloads.DATASETS["cifar10"]["contents"]}


def _extract(tmp_path, members):
    archive = tmp_path / "cifar-10-python.tar.gz"
    archive.write_bytes(_tar(members))
    downloads._extract_tar(archive, tmp_path, "cifar-10-batches-py", downloads.DATASETS["cifar10"]["contents"])


def test_tar_extra_regular_files_are_allowed(tmp_path):
    _extract(tmp_path, {**_CIFAR10, "cifar-10-batches-py/readme.html": b"<html>"})
    assert (tmp_path / "cifar-10-batches-py" / "readme.html").read_bytes() == b"<html>"


def test_tar_member_count_is_bounded(tmp_path, monkeypatch):
    cap = len(_CIFAR10) + 2
    monkeypatch.setattr(downloads, "MAX_EXTRACT_MEMBERS", cap)
    extra = {f"cifar-10-batches-py/extra{i}": b"" for i in range(3)}
    (tmp_path / "at-cap").mkdir()
    _extract(tmp_path / "at-cap", {**_CIFAR10, **dict(list(extra.items())[:2])})  # exactly the cap: fine
    with pytest.raises(ValueError, match=f"cifar-10-python.tar.gz: more than {cap} members"):
        _extract(tmp_path, {**_CIFAR10, **extra})
    assert not (tmp_path / "cifar-10-batches-py").exists() and _leftovers(tmp_path) == []


def test_tar_total_size_is_bounded(tmp_path, monkeypatch):
    monkeypatch.setattr(downloads, "MAX_EXTRACT_BYTES", 100 * len(_CIFAR10) + 9)
    with pytest.raises(ValueError, match=r"cifar-10-python.tar.gz: members add up to more than \d+ bytes"):
        _extract(tmp_path, {**_CIFAR10, "cifar-10-batches-py/readme.html": b"y" * 10})
    assert not (tmp_path / "cifar-10-batches-py").exists() and _leftovers(tmp_path) == []

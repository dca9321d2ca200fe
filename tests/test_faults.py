"""Faults: a writer killed mid-save, damaged checkpoints, a checkpoint for another
architecture, the im2col workspace cap, and bitwise-deterministic training."""

import os
import signal
import subprocess
import sys
import textwrap
import time
import tracemalloc

import numba
import numpy as np
import pytest

import tinycnn
from tinycnn import serialization, train
from tinycnn.kernels import conv as conv_kernels

from _helpers import TINY_RUN, tiny_checkpoint

# resnet20 without SE on 32 digits, batch 16: 2 steps per epoch
TINY = TINY_RUN


@pytest.fixture
def threads():
    before = tinycnn.get_num_threads()
    yield tinycnn.set_num_threads
    tinycnn.set_num_threads(before)


def _python(code, **kwargs):
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    return subprocess.Popen([sys.executable, "-c", textwrap.dedent(code)], env=env, **kwargs)


# ------------------------------------------------------------------ SIGKILL mid-save

# The child saves a first checkpoint, then starts a second, much larger one whose
# write stops half-way (the zip writer blocks after ~1 MiB of the temporary file),
# says so on stdout and waits to be killed.
KILLED_WRITER = """
    import os, sys, time
    import numpy as np
    from tinycnn import serialization

    path = sys.argv[1]
    serialization.save({"step": 1, "w": np.arange(10, dtype=np.float32)}, path)

    def slow_savez(f, **members):
        class Blocking:
            written = 0
            def write(self, data):
                self.written += len(data)
                f.write(data)
                if self.written > 2**20:
                    f.flush()
                    print("writing", flush=True)
                    time.sleep(600)
                return len(data)
            def __getattr__(self, name):
                return getattr(f, name)
        real_savez(Blocking(), **members)

    real_savez = np.savez
    np.savez = slow_savez
    serialization.save({"step": 2, "w": np.random.default_rng(0).standard_normal(4 * 2**20).astype(np.float32)}, path)
    print("finished", flush=True)
"""


def test_sigkill_mid_save_keeps_the_previous_checkpoint(tmp_path):
    path = tmp_path / "checkpoint.npz"
    child = _python(KILLED_WRITER.replace("sys.argv[1]", repr(str(path))), stdout=subprocess.PIPE)
    try:
        line = child.stdout.readline()
        assert line == b"writing\n", line
        temporaries = [n for n in os.listdir(tmp_path) if n.endswith(".tmp")]
        assert len(temporaries) == 1 and os.path.getsize(tmp_path / temporaries[0]) > 2**20
        os.kill(child.pid, signal.SIGKILL)
    finally:
        child.kill()
        child.wait(timeout=30)
    assert child.returncode == -signal.SIGKILL
    # the real name still holds the first checkpoint, whole
    first = serialization.load(path)
    assert first["step"] == 1 and np.array_equal(first["w"], np.arange(10, dtype=np.float32))
    stale = tmp_path / temporaries[0]
    assert stale.exists()  # SIGKILL runs no cleanup: the next writer removes it
    # a writer in this (older) process leaves it: it cannot tell a killed writer
    # from a live one started after it; a fresh process -- a restarted run -- removes it
    time.sleep(0.05)
    done = _python(f"from tinycnn import serialization; serialization.save({{'step': 3}}, {str(path)!r})")
    assert done.wait(timeout=120) == 0
    assert not stale.exists()
    assert sorted(os.listdir(tmp_path)) == ["checkpoint.npz"]
    assert serialization.load(path)["step"] == 3


def test_cleanup_only_touches_dead_writers_of_the_same_file(tmp_path):
    target = tmp_path / "model.npz"
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    keep = [
        f".model.npz.{os.getpid()}.abc123.tmp",  # this process: maybe writing right now
        f".other.npz.{dead.pid}.abc123.tmp",  # another target
        f"model.npz.{dead.pid}.abc123.tmp",  # not hidden: not our pattern
        f".model.npz.{dead.pid}.abc123.tmp.bak",
        f".model.npz.{os.getppid()}.abc123.tmp",  # a live process (our parent)
    ]
    removed = f".model.npz.{dead.pid}.abc123.tmp"
    for name in keep + [removed]:
        (tmp_path / name).write_bytes(b"x")
        old = time.time() - 3600
        os.utime(tmp_path / name, (old, old))
    fresh = f".model.npz.{dead.pid}.fresh1.tmp"  # written after this process started: kept
    (tmp_path / fresh).write_bytes(b"x")
    serialization.save({"a": 1}, target)
    assert sorted(os.listdir(tmp_path)) == sorted(keep + [fresh, "model.npz"])


# ------------------------------------------------------------------ damaged checkpoints


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    return tiny_checkpoint(tmp_path_factory.mktemp("run"))


@pytest.mark.parametrize("damage", ["truncate", "bitflip"])
def test_damaged_checkpoint_is_refused_on_resume(checkpoint, tmp_path, damage):
    raw = bytearray(checkpoint.read_bytes())
    if damage == "truncate":
        raw = raw[:len(raw) * 2 // 3]
    else:
        raw[len(raw) // 2] ^= 0x10  # inside the stored arrays
    bad = tmp_path / "checkpoint.npz"
    bad.write_bytes(bytes(raw))
    with pytest.raises(ValueError, match=r"load: .*checkpoint\.npz (failed its checksum|is not a readable)"):
        train.fit(tmp_path / "resumed", resume=bad, **dict(TINY, epochs=None))
    with pytest.raises(ValueError, match=r"checkpoint\.npz"):
        train.model_from_checkpoint(bad)


def test_checkpoint_of_another_architecture_lists_keys_and_shapes(checkpoint, tmp_path):
    ckpt = train.load_checkpoint(checkpoint)
    # claims another model (and consistently 7 classes)
    ckpt["meta"] = dict(ckpt["meta"], model="resnet32", num_classes=7, classes=[str(i) for i in range(7)])
    forged = tmp_path / "forged.npz"
    serialization.save(ckpt, forged)
    with pytest.raises(ValueError) as info:
        train.fit(tmp_path / "resumed", resume=forged, **dict(TINY, epochs=None))
    message = str(info.value)
    assert "load_state_dict into ResNet failed; nothing was loaded" in message
    assert "fc.weight: expected shape (64, 7), got (64, 10)" in message
    assert "fc.bias: expected shape (7,), got (10,)" in message
    assert "missing keys: layer1.3.conv1.weight" in message  # resnet32 has 5 blocks per stage, resnet20 3


# ------------------------------------------------------------------ workspace cap


def test_im2col_workspace_cap_bounds_peak_memory():
    x = np.random.default_rng(0).standard_normal((8, 256, 256, 16)).astype(np.float32)  # 32 MiB
    w = np.random.default_rng(1).standard_normal((3, 3, 16, 16)).astype(np.float32)
    cap = 2 * 2**20  # below conv.CHUNK_BYTES, so the cap is what bounds the columns
    assert cap < conv_kernels.CHUNK_BYTES
    full_columns = 8 * 256 * 256 * (3 * 3 * 16) * 4  # im2col of the whole batch: 288 MiB
    assert full_columns == 288 * 2**20
    output = x.nbytes  # (8, 256, 256, 16) float32 with padding 1
    conv_kernels.conv2d_forward(x[:1, :8, :8], w, padding=1)  # compile or load the kernel before tracing
    before = conv_kernels.get_workspace_limit()
    conv_kernels.set_workspace_limit(cap)
    winograd = conv_kernels.set_winograd(False)  # this 3x3 layer would take Winograd (tested on its own)
    try:
        tracemalloc.start()
        y = conv_kernels.conv2d_forward(x, w, padding=1)
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
    finally:
        conv_kernels.set_winograd(winograd)
        conv_kernels.set_workspace_limit(before)
        if tracemalloc.is_tracing():
            tracemalloc.stop()
    print(f"peak {peak / 2**20:.1f} MiB (output {output / 2**20:.0f} MiB, cap {cap / 2**20:.0f} MiB)")
    assert y.shape == (8, 256, 256, 16)
    assert peak <= output + cap + 2**20, f"peak {peak / 2**20:.1f} MiB"  # x and w existed before tracing
    assert full_columns > 10 * (peak - output)  # without the cap the columns alone would take 288 MiB
    # spot-check the result against the NumPy reference on a corner
    from tinycnn.kernels import reference
    np.testing.assert_allclose(y[:1, :6, :6], reference.conv2d_forward(x[:1, :7, :7], w, padding=1)[:, :6, :6],
                               rtol=1e-4, atol=1e-4)


# ------------------------------------------------------------------ determinism


def _params(trainer):
    return {k: v.copy() for k, v in trainer.model.state_dict().items()}


def test_same_seed_one_thread_is_bitwise_identical(tmp_path, threads):
    threads(1)
    a = _params(train.fit(tmp_path / "a", **TINY))
    b = _params(train.fit(tmp_path / "b", **TINY))
    assert list(a) == list(b)
    for k in a:
        assert np.array_equal(a[k], b[k]), k
    c = _params(train.fit(tmp_path / "c", **dict(TINY, seed=1)))
    assert any(not np.array_equal(a[k], c[k]) for k in a)  # the seed matters
    if numba.config.NUMBA_NUM_THREADS >= 2:
        threads(2)
        d = _params(train.fit(tmp_path / "d", **TINY))
        for k in a:  # BLAS may split its sums differently: equal to rounding, not bitwise
            np.testing.assert_allclose(d[k], a[k], rtol=1e-3, atol=1e-4, err_msg=k)


def test_numba_reductions_do_not_depend_on_the_thread_count(threads):
    """BatchNorm statistics and depthwise weight gradients are summed in a fixed
    number of chunks (from NUMBA_NUM_THREADS, set at start-up), so
    set_num_threads changes who sums a chunk, not the order of the sums."""
    from tinycnn.kernels import batchnorm as bn_kernels
    from tinycnn.kernels import depthwise as dw_kernels

    rng = np.random.default_rng(0)
    x = rng.standard_normal((4, 17, 19, 8)).astype(np.float32)
    gy = rng.standard_normal((4, 17, 19, 8)).astype(np.float32)
    results = []
    for n in (1, min(2, numba.config.NUMBA_NUM_THREADS)):
        threads(n)
        y, mean, var, invstd = bn_kernels.batch_norm_forward_train(x, None, None, 1e-5)
        gx, _, _ = bn_kernels.batch_norm_backward(gy, x, mean, invstd, None)
        gw = dw_kernels.depthwise_conv2d_backward_weight(x, gy, (3, 3, 8, 1), padding=1)
        results.append((y, mean, var, gx, gw))
    for a, b in zip(*results):
        assert np.array_equal(a, b)

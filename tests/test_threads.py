"""``tinycnn.set_num_threads`` sets Numba's and BLAS's thread counts together;
results do not depend on the count beyond rounding, and repeat bitwise at a
fixed count."""

import os
import subprocess
import sys

import numba
import numpy as np
import pytest
from threadpoolctl import threadpool_info, threadpool_limits

import tinycnn
import tinycnn.functional as F
from tinycnn import Tensor
from tinycnn.threads import blas_num_threads

LIMIT = numba.config.NUMBA_NUM_THREADS


@pytest.fixture(autouse=True)
def restore_thread_counts():
    numba_before, blas_before = numba.get_num_threads(), blas_num_threads()
    yield
    numba.set_num_threads(numba_before)
    threadpool_limits(limits=blas_before, user_api="blas")


def _blas_counts():
    return {info["num_threads"] for info in threadpool_info() if info["user_api"] == "blas"}


@pytest.mark.parametrize("n", sorted({1, LIMIT}))
def test_set_num_threads_sets_numba_and_blas(n):
    np.ones((4, 4)) @ np.ones((4, 4))  # BLAS is loaded
    assert _blas_counts(), "no BLAS library found by threadpoolctl"
    tinycnn.set_num_threads(n)
    assert tinycnn.get_num_threads() == numba.get_num_threads() == n
    assert _blas_counts() == {n} and blas_num_threads() == n


def test_numpy_integers_are_accepted():
    tinycnn.set_num_threads(np.int64(1))
    assert tinycnn.get_num_threads() == 1


@pytest.mark.parametrize("n, error, message", [
    (0, ValueError, rf"set_num_threads: n must be between 1 and {LIMIT} \(NUMBA_NUM_THREADS\), got 0"),
    (-2, ValueError, r"set_num_threads: n must be between 1 and .*got -2"),
    (LIMIT + 1, ValueError, rf"set_num_threads: n must be between 1 and {LIMIT} .*got {LIMIT + 1}"),
    (1.0, TypeError, r"set_num_threads: n must be an int, got float"),
    ("2", TypeError, r"set_num_threads: n must be an int, got str"),
    (True, TypeError, r"set_num_threads: n must be an int, got bool"),
    (None, TypeError, r"set_num_threads: n must be an int, got NoneType"),
])
def test_invalid_counts_are_refused_and_change_nothing(n, error, message):
    tinycnn.set_num_threads(1)
    with pytest.raises(error, match=message):
        tinycnn.set_num_threads(n)
    assert tinycnn.get_num_threads() == 1 and blas_num_threads() == 1


def _network(dtype, seed=0):
    """conv2d -> batch_norm -> depthwise -> max pool -> avg pool, forward and
    backward; returns the output and every gradient."""
    rng = np.random.default_rng(seed)
    x = Tensor(rng.standard_normal((4, 16, 16, 8)).astype(dtype), requires_grad=True)
    w = Tensor(rng.standard_normal((3, 3, 8, 16)).astype(dtype) * 0.2, requires_grad=True)
    b = Tensor(rng.standard_normal(16).astype(dtype), requires_grad=True)
    gamma = Tensor(rng.uniform(0.5, 1.5, 16).astype(dtype), requires_grad=True)
    beta = Tensor(rng.standard_normal(16).astype(dtype), requires_grad=True)
    dw = Tensor(rng.standard_normal((3, 3, 16, 2)).astype(dtype), requires_grad=True)
    running = [np.zeros(16, dtype), np.ones(16, dtype)]
    h = F.conv2d(x, w, b, padding=1)
    h = F.batch_norm(h, *running, gamma, beta, training=True)
    h = F.depthwise_conv2d(h, dw, stride=2, padding="same")
    h = F.max_pool2d(h, 3, 1, 1)
    y = F.avg_pool2d(h, 2)
    y.backward(rng.standard_normal(y.shape).astype(dtype))
    return [y.data, *running] + [t.grad for t in (x, w, b, gamma, beta, dw)]


@pytest.mark.skipif(LIMIT < 2, reason="Numba was started with one thread")
@pytest.mark.parametrize("dtype, rtol", [(np.float64, 1e-10), (np.float32, 1e-4)], ids=["float64", "float32"])
def test_results_do_not_depend_on_the_thread_count(dtype, rtol):
    tinycnn.set_num_threads(1)
    one = _network(dtype)
    tinycnn.set_num_threads(2)
    two = _network(dtype)
    for a, b in zip(one, two):
        assert a.dtype == b.dtype == dtype
        np.testing.assert_allclose(b, a, rtol=rtol, atol=rtol * np.abs(a).max())


@pytest.mark.parametrize("n", sorted({1, min(2, LIMIT)}))
def test_a_fixed_thread_count_repeats_bitwise(n):
    tinycnn.set_num_threads(n)
    first, second = _network(np.float32), _network(np.float32)
    for a, b in zip(first, second):
        assert a.tobytes() == b.tobytes()


def _fresh_python(code, **env_overrides):
    env = {k: v for k, v in os.environ.items()
           if k not in ("OMP_WAIT_POLICY", "OPENBLAS_THREAD_TIMEOUT")}
    env.update(env_overrides)
    return subprocess.run([sys.executable, "-X", "importtime", "-c", code], env=env,
                          capture_output=True, text=True, check=True)


def test_import_sets_thread_waiting_defaults_before_numpy_loads():
    """OpenBLAS reads OPENBLAS_THREAD_TIMEOUT when it loads (with NumPy), so
    tinycnn must set it before its first NumPy import."""
    out = _fresh_python("import os, tinycnn; "
                        "print(os.environ['OMP_WAIT_POLICY'], os.environ['OPENBLAS_THREAD_TIMEOUT'])")
    assert out.stdout.split() == ["PASSIVE", "4"]
    modules = [line.rsplit("|", 1)[-1].strip() for line in out.stderr.splitlines()
               if line.startswith("import time:")]
    assert modules.index("tinycnn._env") < modules.index("numpy")


def test_thread_waiting_set_by_the_user_wins():
    out = _fresh_python("import os, tinycnn; "
                        "print(os.environ['OMP_WAIT_POLICY'], os.environ['OPENBLAS_THREAD_TIMEOUT'])",
                        OMP_WAIT_POLICY="ACTIVE", OPENBLAS_THREAD_TIMEOUT="20")
    assert out.stdout.split() == ["ACTIVE", "20"]


_TIMEOUT_PROBE = """
import ctypes, os, numpy as np
from threadpoolctl import threadpool_info
a = np.ones((300, 300), np.float32); a @ a          # OpenBLAS loaded and its workers running
info = [i for i in threadpool_info() if i["internal_api"] == "openblas"][0]
lib = ctypes.CDLL(info["filepath"], mode=os.RTLD_NOLOAD)
before = lib.openblas_thread_timeout()
import tinycnn
a @ a                                                 # the workers restart with the new setting
print(before, lib.openblas_thread_timeout())
"""


@pytest.mark.parametrize("user_value, expected", [(None, 4), ("7", 7)])
def test_blas_thread_timeout_holds_when_numpy_is_imported_first(user_value, expected):
    """OpenBLAS read OPENBLAS_THREAD_TIMEOUT when NumPy loaded it, before
    tinycnn could set it; tinycnn makes it read the value again (its own
    default, or the user's)."""
    if not any(i.get("internal_api") == "openblas" for i in threadpool_info()):
        pytest.skip("NumPy's BLAS is not OpenBLAS")
    env = {k: v for k, v in os.environ.items() if k != "OPENBLAS_THREAD_TIMEOUT"}
    if user_value is not None:
        env["OPENBLAS_THREAD_TIMEOUT"] = user_value
    out = subprocess.run([sys.executable, "-c", _TIMEOUT_PROBE], env=env, capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr
    before, after = map(int, out.stdout.split())
    assert after == expected
    if user_value is None:
        assert before == 0  # the default OpenBLAS chose at load: what tinycnn corrects

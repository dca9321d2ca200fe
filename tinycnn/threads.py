"""One call sets both Numba's and BLAS's thread counts; and OpenBLAS's
workers told to sleep soon after a product, whatever the import order.

OpenBLAS reads ``OPENBLAS_THREAD_TIMEOUT`` (how long its idle workers spin
before they sleep) when it loads, with NumPy.  Most scripts import NumPy
before tinycnn, so the value ``_env.py`` puts in the environment comes too
late, the workers spin for ~0.1 s after every threaded matrix product, and
they take the cores of the Numba kernels that follow: ResNet-18 trained 15%
slower with ``import numpy`` first (49.8-52.0 img/s against 59.2-61.2 at
batch 64, 3 alternating rounds).  :func:`apply_blas_thread_timeout` makes
OpenBLAS read its settings again and restarts its workers with them, so
the order no longer matters.
"""

import ctypes
import numbers
import os

from . import _env  # noqa: F401  (thread-waiting defaults: see _env.py)

import numba  # noqa: E402
from threadpoolctl import threadpool_info, threadpool_limits


def set_num_threads(n):
    """Use ``n`` threads in Numba kernels and in BLAS (matrix products).

    ``n`` must be between 1 and the number of threads Numba was started
    with (``NUMBA_NUM_THREADS``, by default the number of cores).
    """
    if isinstance(n, bool) or not isinstance(n, numbers.Integral):
        raise TypeError(f"set_num_threads: n must be an int, got {type(n).__name__}")
    limit = numba.config.NUMBA_NUM_THREADS
    if not 1 <= n <= limit:
        raise ValueError(f"set_num_threads: n must be between 1 and {limit} (NUMBA_NUM_THREADS), got {n}")
    numba.set_num_threads(int(n))
    threadpool_limits(limits=int(n), user_api="blas")


def get_num_threads():
    """The number of threads Numba kernels use (BLAS is kept equal by
    :func:`set_num_threads`)."""
    return numba.get_num_threads()


def blas_num_threads():
    """BLAS's current thread count (the largest over loaded BLAS libraries)."""
    counts = [info["num_threads"] for info in threadpool_info() if info.get("user_api") == "blas"]
    return max(counts) if counts else os.cpu_count()


def apply_blas_thread_timeout():
    """Make NumPy's OpenBLAS use ``OPENBLAS_THREAD_TIMEOUT`` from the
    environment now (as ``_env.py`` set it, or the user before start-up), even
    if it was loaded before the variable was set.  Its exported
    ``openblas_read_env`` re-reads the variables and ``blas_thread_shutdown_``
    stops the workers; the next threaded product starts them again with the
    new timeout.  Returns the timeout OpenBLAS now uses (a power of two of
    cycles, as its exponent), or None where NumPy's BLAS is not OpenBLAS or
    does not export these functions (then nothing is changed)."""
    wanted = os.environ.get("OPENBLAS_THREAD_TIMEOUT")
    for info in threadpool_info():
        if info.get("internal_api") != "openblas" or info.get("threading_layer") != "pthreads":
            continue
        try:
            lib = ctypes.CDLL(info["filepath"], mode=getattr(os, "RTLD_NOLOAD", 0) | ctypes.RTLD_GLOBAL)
            read_env, timeout, shutdown = lib.openblas_read_env, lib.openblas_thread_timeout, lib.blas_thread_shutdown_
        except (OSError, AttributeError):
            return None
        timeout.restype = ctypes.c_int
        if wanted is not None and str(timeout()) != wanted:
            read_env()
            shutdown()  # the workers restart, with the timeout just read, at the next threaded product
        return timeout()
    return None


apply_blas_thread_timeout()

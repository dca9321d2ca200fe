"""One call sets both Numba's and BLAS's thread counts."""

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

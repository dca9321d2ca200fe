"""How the kernels share work out between threads without the results depending on them.

- ``num_chunks``: the Numba reductions (BatchNorm statistics, depthwise weight
  and bias gradients) cut their rows into this many chunks, one float64 partial
  sum each, summed serially afterwards.  It depends on the problem size and on
  ``numba.config.NUMBA_NUM_THREADS`` (fixed per process), never on
  ``numba.set_num_threads``, so the sums are bitwise identical for any thread count.
- ``run_units`` ("one chunk per core"): the Winograd convolutions cut their work
  into chunks small enough for a core's L2 cache.  Rather than running each
  chunk's steps in parallel (threads meeting after every step), each thread runs
  whole chunks on its own, with BLAS held at one thread, and takes the next chunk
  when it finishes one.  Sums over chunks (weight gradients) go into a fixed
  number of slots (``SLOTS``), each summed in chunk order, so results do not
  depend on the thread count either.
"""

import itertools
import threading
from concurrent.futures import ThreadPoolExecutor

import numba

__all__ = ["SLOTS", "num_chunks", "run_units"]

SLOTS = 4  # partial sums of a reduction over chunks: fixed, so results do not depend on threads


def num_chunks(rows):
    """Chunks a reduction over ``rows`` rows is split into (independent of the thread count)."""
    return max(1, min(rows, 4 * numba.config.NUMBA_NUM_THREADS))


_pool = None
_blas = None
_pool_lock = threading.Lock()
_blas_users = 0  # run_units calls in progress; the first sets BLAS to one thread, the last restores it
_blas_limit = None


def _executor():
    """The worker threads (created on first use, one fewer than Numba's maximum)."""
    global _pool, _blas
    with _pool_lock:
        if _pool is None:
            from threadpoolctl import ThreadpoolController
            _blas = ThreadpoolController().select(user_api="blas")
            _pool = ThreadPoolExecutor(max(1, numba.config.NUMBA_NUM_THREADS - 1),
                                       thread_name_prefix="tinycnn-chunks")
    return _pool


def run_units(make_worker, units):
    """Process work units ``0 .. units-1`` on ``n = min(numba.get_num_threads(),
    units)`` threads, BLAS at one thread each.  ``make_worker()`` is called once
    per thread and returns ``work(i)`` (so each thread gets its own scratch).
    The threads take the next unit as they finish one: a core slowed down by
    another process takes fewer units instead of holding up the rest."""
    n = max(1, min(numba.get_num_threads(), units))
    if n == 1:
        work = make_worker()
        for i in range(units):
            work(i)
        return
    pool = _executor()
    counter = itertools.count()  # next() on it is atomic under the GIL

    def loop():
        work = make_worker()
        for i in iter(counter.__next__, None):
            if i >= units:
                return
            work(i)

    _blas_single(True)
    try:
        futures = [pool.submit(loop) for _ in range(n - 1)]
        try:
            loop()
        finally:
            for f in futures:  # wait for all before leaving (and re-raise the first error)
                f.result()
    finally:
        _blas_single(False)


def _blas_single(enter):
    """Hold BLAS at one thread while any ``run_units`` call runs.

    Counted, so that two calls from different user threads cannot restore each
    other's setting: the first in saves and limits, the last out restores.
    """
    global _blas_users, _blas_limit
    with _pool_lock:
        if enter:
            if _blas_users == 0:
                _blas_limit = _blas.limit(limits=1)
            _blas_users += 1
        else:
            _blas_users -= 1
            if _blas_users == 0:
                _blas_limit.restore_original_limits()
                _blas_limit = None

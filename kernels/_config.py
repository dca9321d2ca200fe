"""The one place that sets how Numba compiles tinycnn's kernels.

Every kernel is written ``@njit(cache=True, fastmath=FASTMATH, ...)``.  The
fastmath set allows re-association and contraction (so reductions vectorise and
multiply-adds fuse) but never ``nnan``/``ninf``: a NaN or an inf must travel
through a kernel unchanged so that training can detect it.
"""

FASTMATH = {"nsz", "arcp", "contract", "reassoc"}  # a set: Numba refuses a frozenset

"""Scratch buffers kept between kernel calls.

A fresh buffer of tens of MB costs more in first-touch page faults than the
copy that fills it, so the im2col columns and the Winograd chunk buffers are
taken from here and given back after the call.  One buffer is kept per
(name, dtype); a buffer in use is out of the cache, so concurrent calls never
share one.
"""

import threading

import numpy as np

__all__ = ["take", "give"]

_cache = {}  # (name, dtype) -> 1-D buffer
_lock = threading.Lock()


def take(name, size, dtype):
    """An uninitialised 1-D buffer of at least ``size`` elements: the kept one
    when it is large enough, else a new one (the smaller kept one is dropped)."""
    key = (name, np.dtype(dtype))
    with _lock:
        buf = _cache.pop(key, None)
    if buf is None or buf.size < size:
        buf = None  # free the smaller buffer before allocating
        buf = np.empty(max(size, 1), dtype=dtype)
    return buf


def give(name, buf, limit):
    """Keep ``buf`` (from ``take``) for the next call, unless it is over ``limit``
    bytes or smaller than the one already kept."""
    if buf.ndim != 1 or not buf.flags.c_contiguous or buf.nbytes > limit:
        return
    key = (name, buf.dtype)
    with _lock:
        kept = _cache.get(key)
        if kept is None or kept.size < buf.size:
            _cache[key] = buf

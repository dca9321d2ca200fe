"""Anomaly mode: find the first operation that produces NaN or infinity.

Inside ``with tinycnn.detect_anomaly():`` every :class:`~tinycnn.Function`'s
forward output and every gradient its backward returns are checked; the first
non-finite one raises :class:`AnomalyError` naming the operation (the Function
class) and the pass (forward or backward).  Outside the block the only cost is
one ``is_anomaly_enabled()`` call per operation.
"""

import numpy as np

_depth = 0  # how many detect_anomaly blocks are open (process-wide)


class AnomalyError(FloatingPointError):
    """A Function produced NaN or infinity under :func:`detect_anomaly`."""


def is_anomaly_enabled():
    """True inside a ``detect_anomaly()`` block."""
    return _depth > 0


class detect_anomaly:
    """Context manager (or decorator) turning anomaly checks on for its block."""

    def __enter__(self):
        global _depth
        _depth += 1
        return self

    def __exit__(self, *exc):
        global _depth
        _depth -= 1
        return False

    def __call__(self, func):
        def wrapper(*args, **kwargs):
            with detect_anomaly():
                return func(*args, **kwargs)

        wrapper.__name__ = getattr(func, "__name__", "wrapper")
        wrapper.__doc__ = getattr(func, "__doc__", None)
        wrapper.__wrapped__ = func
        return wrapper


def _describe(array):
    nan, inf = int(np.isnan(array).sum()), int(np.isinf(array).sum())
    return f"{nan} NaN and {inf} inf of {array.size} values, shape {array.shape}"


def check_forward(fn, output):
    """Raise if ``output`` of Function ``fn`` holds NaN or inf."""
    if output.dtype.kind in "fc" and not np.isfinite(output).all():
        raise AnomalyError(f"detect_anomaly: {fn.op_name} produced a non-finite value in forward "
                           f"({_describe(output)})")


def check_backward(fn, grads):
    """Raise if any gradient that Function ``fn``'s backward returned holds NaN or inf."""
    for i, g in enumerate(grads):
        if g is None:
            continue
        g = np.asarray(g)
        if g.dtype.kind in "fc" and not np.isfinite(g).all():
            raise AnomalyError(f"detect_anomaly: {fn.op_name} produced a non-finite gradient in backward "
                               f"for input {i} ({_describe(g)})")

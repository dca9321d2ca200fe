"""Batch normalisation over ``N, H, W`` per channel, channels-last.

``x`` is ``(N, H, W, C)``, seen as ``R = N*H*W`` rows of ``C`` channels; the
per-channel vectors (``weight``, ``bias``, statistics) are ``(C,)``.

Statistics are accumulated in float64 and two-pass within blocks of rows that
stay in cache (block mean, then squared deviations from it), blocks and chunks
merged with Chan et al.'s update: ``x`` is read from memory once, and a float32
input with a large offset keeps an accurate variance.  The normalisation itself is also computed in float64 and
rounded once to the input dtype.  Returned vectors have the input dtype.

Races: reductions cut the ``R`` rows into a fixed number of chunks; each chunk
adds into its own float64 partial row, and the partials are summed serially.
The number of chunks depends only on ``R`` and on
``numba.config.NUMBA_NUM_THREADS`` (fixed per process), never on the current
``numba.set_num_threads``, so results are bitwise identical for any thread
count.  Elementwise passes are parallel over chunks of rows.
"""


import numpy as np
from numba import njit, prange

from ._args import _is_int, check_eps, check_nhwc, check_unit_interval
from ._config import FASTMATH
from ._parallel import num_chunks

__all__ = [
    "batch_norm_forward_train", "batch_norm_forward_eval", "batch_norm_backward",
    "batch_norm_update_running",
]


_MOMENT_BLOCK = 32  # rows per in-cache two-pass block of _channel_moments


def _merge_moments(means, m2s, R):
    """Merge per-chunk ``(mean, M2)`` rows (chunk ``p`` has rows ``p*R//P .. (p+1)*R//P``)
    into the batch mean and biased variance (Chan et al.'s pairwise update, in order)."""
    P = means.shape[0]
    mean = means[0].copy()
    m2 = m2s[0].copy()
    count = R // P
    for p in range(1, P):
        nb = (p + 1) * R // P - p * R // P
        total = count + nb
        delta = means[p] - mean
        mean += delta * (nb / total)
        m2 += m2s[p] + delta * delta * (count * nb / total)
        count = total
    return mean, np.maximum(m2 / R, 0.0)


# --------------------------------------------------------------------- kernels


@njit(cache=True, fastmath=FASTMATH, parallel=True)
def _channel_moments(x, partial, B):
    """Per-chunk mean and sum of squared deviations, in float64, reading ``x`` from memory once.

    ``x`` is ``(R, C)``; chunk ``p`` holds rows ``p*R//P <= i < (p+1)*R//P`` where
    ``partial`` is ``(2P, C)``: ``partial[p]`` gets the chunk's mean and
    ``partial[P + p]`` its ``M2 = sum (x - chunk mean)**2``.  Within a chunk, blocks
    of ``B`` rows are done two-pass (block mean, then squared deviations from it,
    the block still in cache) and merged into the running moments with Chan et
    al.'s update, so a large offset costs no accuracy.  Parallel over chunks, each
    writing its own rows of ``partial``; the caller merges the chunks.
    """
    R, C = x.shape
    P = partial.shape[0] // 2
    for p in prange(P):
        lo = p * R // P
        hi = (p + 1) * R // P
        mean = np.zeros(C)
        m2 = np.zeros(C)
        bm = np.empty(C)
        bq = np.empty(C)
        count = 0
        for b0 in range(lo, hi, B):
            b1 = min(b0 + B, hi)
            nb = b1 - b0
            bm[:] = 0.0
            for i in range(b0, b1):
                xr = x[i]
                for c in range(C):
                    bm[c] += np.float64(xr[c])
            for c in range(C):
                bm[c] /= nb
            bq[:] = 0.0
            for i in range(b0, b1):
                xr = x[i]
                for c in range(C):
                    d = np.float64(xr[c]) - bm[c]
                    bq[c] += d * d
            total = count + nb
            fa = nb / total
            fb = count * fa
            for c in range(C):
                delta = bm[c] - mean[c]
                mean[c] += delta * fa
                m2[c] += bq[c] + delta * delta * fb
            count = total
        partial[p] = mean
        partial[P + p] = m2


@njit(cache=True, fastmath=FASTMATH, parallel=True)
def _grad_sums(gy, x, shift, partial):
    """Per-chunk sums for the backward pass, in float64, with ``d = x[i, c] - shift[c]``:
    ``partial[p, c] = sum gy[i, c]``, ``partial[P + p, c] = sum gy[i, c] * d`` and
    ``partial[2P + p, c] = sum d`` over the rows ``i`` of chunk ``p`` (as in
    ``_channel_moments``; ``partial`` is ``(3P, C)``).
    """
    R, C = x.shape
    P = partial.shape[0] // 3
    for p in prange(P):
        s1 = np.zeros(C)  # fresh local accumulators and row views vectorise best
        s2 = np.zeros(C)
        s3 = np.zeros(C)
        for i in range(p * R // P, (p + 1) * R // P):
            gr = gy[i]
            xr = x[i]
            for c in range(C):
                g = np.float64(gr[c])
                d = np.float64(xr[c]) - shift[c]
                s1[c] += g
                s2[c] += g * d
                s3[c] += d
        partial[p] = s1
        partial[P + p] = s2
        partial[2 * P + p] = s3


@njit(cache=True, fastmath=FASTMATH, parallel=True)
def _affine_rows(x, center, scale, shift, y, P):
    """``y[i, c] = (x[i, c] - center[c]) * scale[c] + shift[c]``, in float64, rounded to ``y``'s dtype.

    Normalisation with ``center = mean``, ``scale = weight * invstd``, ``shift = bias``.
    Parallel over ``P`` chunks of rows (elementwise: no two chunks share an element).
    """
    R, C = x.shape
    for p in prange(P):
        for i in range(p * R // P, (p + 1) * R // P):
            xr = x[i]
            yr = y[i]
            for c in range(C):
                yr[c] = (np.float64(xr[c]) - center[c]) * scale[c] + shift[c]


@njit(cache=True, fastmath=FASTMATH, parallel=True)
def _backward_rows(gy, x, mean, k, gy_mean, proj, gx, P):
    """``gx[i, c] = k[c] * (gy[i, c] - gy_mean[c] - (x[i, c] - mean[c]) * proj[c])`` in float64.

    With ``k = weight * invstd``, ``gy_mean = mean(gy)`` and
    ``proj = invstd**2 * mean(gy * (x - mean))`` this is
    ``weight * invstd * (gy - mean(gy) - xhat * mean(gy * xhat))``, ``xhat = (x - mean) * invstd``.
    Parallel over ``P`` chunks of rows.
    """
    R, C = x.shape
    for p in prange(P):
        for i in range(p * R // P, (p + 1) * R // P):
            gr = gy[i]
            xr = x[i]
            gxr = gx[i]
            for c in range(C):
                gxr[c] = k[c] * (np.float64(gr[c]) - gy_mean[c]
                                 - (np.float64(xr[c]) - mean[c]) * proj[c])


# -------------------------------------------------------------------- checking


def _check_vector(v, name, C, dtype, optional=False, like="x"):
    """Check a per-channel vector: ndarray of shape ``(C,)`` and dtype ``dtype`` (those of ``like``)."""
    if v is None and optional:
        return None
    if not isinstance(v, np.ndarray):
        allowed = "a numpy.ndarray or None" if optional else "a numpy.ndarray"
        raise TypeError(f"{name} must be {allowed}, got {type(v).__name__}")
    if v.shape != (C,):
        raise ValueError(f"{name} must have shape (C,) = ({C},) to match the channels of "
                         f"{like}, got {v.shape}")
    if v.dtype != dtype:
        raise TypeError(f"{name} must have the dtype of {like} ({dtype}), got {v.dtype}")
    return v



def _rows(x):
    """``x`` as a contiguous ``(N*H*W, C)`` matrix."""
    return np.ascontiguousarray(x).reshape(-1, x.shape[3])


def _affine64(weight, bias, C):
    w = np.ones(C) if weight is None else weight.astype(np.float64)
    b = np.zeros(C) if bias is None else bias.astype(np.float64)
    return w, b


# ---------------------------------------------------------------------- public


def batch_norm_forward_train(x, weight, bias, eps):
    """Normalise with the batch statistics -> ``(y, mean, var, invstd)``.

    ``mean``/``var`` are over ``N, H, W`` per channel, ``var`` biased (divided by
    ``N*H*W``), ``invstd = 1 / sqrt(var + eps)``; ``y = (x - mean) * invstd *
    weight + bias``.  ``weight``/``bias`` are ``(C,)`` or None (1 / 0).  The
    caller updates the running statistics (``batch_norm_update_running``).
    """
    check_nhwc(x, "x")
    C = x.shape[3]
    weight = _check_vector(weight, "weight", C, x.dtype, optional=True)
    bias = _check_vector(bias, "bias", C, x.dtype, optional=True)
    eps = check_eps(eps)
    x2 = _rows(x)
    R = x2.shape[0]
    if R == 0:
        raise ValueError(f"x must hold at least one value per channel, got shape {x.shape}")
    P = num_chunks(R)
    partial = np.empty((2 * P, C))
    _channel_moments(x2, partial, _MOMENT_BLOCK)
    mean, var = _merge_moments(partial[:P], partial[P:], R)
    invstd = 1.0 / np.sqrt(var + eps)
    w, b = _affine64(weight, bias, C)
    y = np.empty_like(x2)
    _affine_rows(x2, mean, w * invstd, b, y, P)
    dt = x.dtype
    return y.reshape(x.shape), mean.astype(dt), var.astype(dt), invstd.astype(dt)


def batch_norm_forward_eval(x, running_mean, running_var, weight, bias, eps):
    """Normalise with the running statistics: ``(x - running_mean) / sqrt(running_var + eps) * weight + bias``."""
    check_nhwc(x, "x")
    C = x.shape[3]
    running_mean = _check_vector(running_mean, "running_mean", C, x.dtype)
    running_var = _check_vector(running_var, "running_var", C, x.dtype)
    weight = _check_vector(weight, "weight", C, x.dtype, optional=True)
    bias = _check_vector(bias, "bias", C, x.dtype, optional=True)
    eps = check_eps(eps)
    x2 = _rows(x)
    w, b = _affine64(weight, bias, C)
    invstd = 1.0 / np.sqrt(running_var.astype(np.float64) + eps)
    y = np.empty_like(x2)
    _affine_rows(x2, running_mean.astype(np.float64), w * invstd, b, y,
                 num_chunks(x2.shape[0]))
    return y.reshape(x.shape)


def batch_norm_backward(gy, x, mean, invstd, weight):
    """Training-mode gradients -> ``(gx, gweight, gbias)``.

    ``mean``/``invstd`` are those ``batch_norm_forward_train`` returned; ``weight``
    is ``(C,)`` or None (1; ``gweight`` and ``gbias`` are returned anyway):
    ``gbias = sum gy``, ``gweight = sum gy * xhat``,
    ``gx = weight * invstd * (gy - mean(gy) - xhat * mean(gy * xhat))``.

    ``mean`` only centres the float64 sums: the exact batch mean of ``x`` is
    recovered from them (``mean + mean(x - mean)``), so a ``mean`` rounded to
    float32 costs no accuracy when ``x`` has a large offset.
    """
    check_nhwc(x, "x")
    check_nhwc(gy, "gy")
    if gy.shape != x.shape:
        raise ValueError(f"gy must have the shape of x {x.shape}, got {gy.shape}")
    if gy.dtype != x.dtype:
        raise TypeError(f"gy must have the dtype of x ({x.dtype}), got {gy.dtype}")
    C = x.shape[3]
    mean = _check_vector(mean, "mean", C, x.dtype)
    invstd = _check_vector(invstd, "invstd", C, x.dtype)
    weight = _check_vector(weight, "weight", C, x.dtype, optional=True)
    x2, gy2 = _rows(x), _rows(gy)
    R = x2.shape[0]
    if R == 0:
        raise ValueError(f"x must hold at least one value per channel, got shape {x.shape}")
    P = num_chunks(R)
    invstd64 = invstd.astype(np.float64)
    partial = np.empty((3 * P, C))
    _grad_sums(gy2, x2, mean.astype(np.float64), partial)
    sum_gy = partial[:P].sum(axis=0)
    # d = x - mean; the exact batch mean is mean + mean(d), so x - (exact mean) = d - mean(d)
    mean_d = partial[2 * P:].sum(axis=0) / R
    center = mean.astype(np.float64) + mean_d
    sum_gy_xc = partial[P:2 * P].sum(axis=0) - mean_d * sum_gy  # sum gy * (x - center)
    gbias = sum_gy
    gweight = sum_gy_xc * invstd64
    w, _ = _affine64(weight, None, C)
    gx = np.empty_like(x2)
    _backward_rows(gy2, x2, center, w * invstd64, sum_gy / R,
                   sum_gy_xc / R * invstd64 * invstd64, gx, P)
    dt = x.dtype
    return gx.reshape(x.shape), gweight.astype(dt), gbias.astype(dt)


def batch_norm_update_running(running_mean, running_var, mean, var, n, momentum):
    """Update the running statistics in place, PyTorch's rule.

    ``running_mean = (1 - momentum) * running_mean + momentum * mean``;
    ``running_var = (1 - momentum) * running_var + momentum * var * n / (n - 1)``
    (``var`` is the biased batch variance over ``n = N*H*W`` values, ``n >= 2``).
    """
    for v, name in ((running_mean, "running_mean"), (running_var, "running_var")):
        if not isinstance(v, np.ndarray):
            raise TypeError(f"{name} must be a numpy.ndarray, got {type(v).__name__}")
        if v.ndim != 1 or v.dtype not in (np.float32, np.float64):
            raise ValueError(f"{name} must be a 1-D float32/float64 array, got shape "
                             f"{v.shape} and dtype {v.dtype}")
        if not v.flags.writeable:
            raise ValueError(f"{name} must be writeable (it is updated in place)")
    C = running_mean.shape[0]
    _check_vector(running_var, "running_var", C, running_mean.dtype, like="running_mean")
    mean = _check_vector(mean, "mean", C, running_mean.dtype, like="running_mean")
    var = _check_vector(var, "var", C, running_mean.dtype, like="running_mean")
    if not _is_int(n):
        raise TypeError(f"n must be an int (values per channel, N*H*W), got {n!r} "
                        f"({type(n).__name__})")
    if n < 2:
        raise ValueError(f"n must be >= 2 for the unbiased variance n/(n-1), got {n}")
    m = check_unit_interval(momentum, "momentum")
    unbiased = var.astype(np.float64) * (n / (n - 1))
    running_mean[...] = (1.0 - m) * running_mean.astype(np.float64) + m * mean
    running_var[...] = (1.0 - m) * running_var.astype(np.float64) + m * unbiased

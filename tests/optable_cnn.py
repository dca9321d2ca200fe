"""Op-table entries for the CNN functions: convolution, pooling, batch norm, linear.

Picked up by ``tests/optable.py`` through ``EXTENSIONS``, so every entry runs
through the generic tests of ``tests/test_ops.py``.  The references are
written here in plain NumPy, one output pixel at a time, so they share no code
(not even the padding arithmetic) with the kernels or with
``tinycnn.kernels.reference``.  Inputs stay under ``MAX_CNN_SIZE`` elements so
the full-Jacobian gradient check stays cheap.  Dropout is random and is tested
in ``tests/test_nn.py``.
"""

import math

import numpy as np
from hypothesis import strategies as st

import tinycnn.functional as F
from optable import Case, OpSpec, array, distinct, floats

MAX_CNN_SIZE = 96  # elements per input


# ---------------------------------------------------------------- geometry


def _pads(padding, k, d, s, size):
    """Explicit ``(lo, hi)`` padding for one axis: 'valid', 'same' (TensorFlow:
    output ceil(size/s), the odd pixel at the end) or an int."""
    if padding == "valid":
        return 0, 0
    if padding == "same":
        out = -(-size // s)
        total = max((out - 1) * s + (k - 1) * d + 1 - size, 0)
        return total // 2, total - total // 2
    return padding, padding


def _explicit(padding, kernel, dilation, stride, hw):
    """``((top, bottom), (left, right))`` for any padding spelling."""
    if isinstance(padding, tuple) and len(padding) == 4:
        return (padding[0], padding[1]), (padding[2], padding[3])
    if isinstance(padding, tuple):
        return tuple(_pads(p, k, d, s, n) for p, k, d, s, n in zip(padding, kernel, dilation, stride, hw))
    return tuple(_pads(padding, k, d, s, n) for k, d, s, n in zip(kernel, dilation, stride, hw))


def _as_pair(v):
    return tuple(v) if isinstance(v, tuple) else (v, v)


def _windows(x, kernel, stride, padding, dilation, fill=0.0):
    """Yield ``(oh, ow, patch)``: ``patch`` (N, KH, KW, C) is what output pixel
    (oh, ow) sees of ``x`` padded with ``fill``."""
    (KH, KW), (SH, SW), (DH, DW) = kernel, stride, dilation
    (PT, PB), (PL, PR) = _explicit(padding, kernel, dilation, stride, x.shape[1:3])
    xp = np.pad(x, ((0, 0), (PT, PB), (PL, PR), (0, 0)), constant_values=fill)
    OH = (xp.shape[1] - DH * (KH - 1) - 1) // SH + 1
    OW = (xp.shape[2] - DW * (KW - 1) - 1) // SW + 1
    for oh in range(OH):
        for ow in range(OW):
            h, w = oh * SH, ow * SW
            yield oh, ow, OH, OW, xp[:, h : h + DH * (KH - 1) + 1 : DH, w : w + DW * (KW - 1) + 1 : DW, :]


def _fits(size, k, d, lo, hi):
    return size + lo + hi >= d * (k - 1) + 1


# ------------------------------------------------------------- convolution


def conv2d_ref(x, w, b=None, stride=1, padding=0, dilation=1, groups=1):
    KH, KW, CG, O = w.shape
    OG = O // groups
    y = None
    for oh, ow, OH, OW, patch in _windows(x, (KH, KW), _as_pair(stride), padding, _as_pair(dilation)):
        if y is None:
            y = np.zeros((x.shape[0], OH, OW, O))
        for g in range(groups):
            y[:, oh, ow, g * OG : (g + 1) * OG] = np.einsum(
                "nijc,ijco->no", patch[..., g * CG : (g + 1) * CG], w[..., g * OG : (g + 1) * OG]
            )
    return y if b is None else y + b


def depthwise_conv2d_ref(x, w, b=None, stride=1, padding=0, dilation=1):
    KH, KW, C, M = w.shape
    y = None
    for oh, ow, OH, OW, patch in _windows(x, (KH, KW), _as_pair(stride), padding, _as_pair(dilation)):
        if y is None:
            y = np.zeros((x.shape[0], OH, OW, C * M))
        y[:, oh, ow, :] = np.einsum("nijc,ijcm->ncm", patch, w).reshape(x.shape[0], C * M)
    return y if b is None else y + b


@st.composite
def padding_spelling(draw):
    return draw(
        st.sampled_from(["same", "valid"])
        | st.integers(0, 2)
        | st.tuples(st.integers(0, 2), st.integers(0, 2))
        | st.tuples(*(st.integers(0, 2) for _ in range(4)))
    )


@st.composite
def _conv_geometry(draw):
    """kernel, stride, dilation, padding and an (H, W) the kernel fits in."""
    kernel = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    stride = draw(st.integers(1, 2) | st.tuples(st.integers(1, 3), st.integers(1, 3)))
    dilation = draw(st.integers(1, 2) | st.tuples(st.integers(1, 2), st.integers(1, 2)))
    padding = draw(padding_spelling())
    hw = []
    for axis in range(2):
        size = draw(st.integers(1, 5))
        (lo, hi) = _explicit(padding, kernel, _as_pair(dilation), _as_pair(stride), (size, size))[axis]
        d = _as_pair(dilation)[axis]
        while not _fits(size, kernel[axis], d, lo, hi):
            size += 1
        hw.append(size)
    return kernel, stride, dilation, padding, tuple(hw)


def _batch(draw, per_image):
    return draw(st.integers(1, max(1, min(2, MAX_CNN_SIZE // per_image))))


@st.composite
def conv2d_cases(draw):
    kernel, stride, dilation, padding, (H, W) = draw(_conv_geometry())
    groups = draw(st.sampled_from([1, 1, 2, 3]))
    CG = draw(st.integers(1, max(1, 4 // groups)))
    OG = draw(st.integers(1, max(1, 4 // groups)))
    C = groups * CG
    while H * W * C > MAX_CNN_SIZE:  # shrink the image, keeping the kernel inside
        H, W = max(H - 1, 1), max(W - 1, 1)
        padding = "same"
    N = _batch(draw, H * W * C)
    x = draw(array((N, H, W, C)))
    w = draw(array(kernel + (CG, groups * OG), floats(-1, 1)))
    inputs = (x, w) + ((draw(array((groups * OG,))),) if draw(st.booleans()) else ())
    return Case(inputs, dict(stride=stride, padding=padding, dilation=dilation, groups=groups))


@st.composite
def depthwise_cases(draw):
    kernel, stride, dilation, padding, (H, W) = draw(_conv_geometry())
    C, M = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    while H * W * C > MAX_CNN_SIZE:
        H, W = max(H - 1, 1), max(W - 1, 1)
        padding = "same"
    N = _batch(draw, H * W * C)
    x = draw(array((N, H, W, C)))
    w = draw(array(kernel + (C, M), floats(-1, 1)))
    inputs = (x, w) + ((draw(array((C * M,))),) if draw(st.booleans()) else ())
    return Case(inputs, dict(stride=stride, padding=padding, dilation=dilation))


# ----------------------------------------------------------------- pooling


@st.composite
def pool_cases(draw, unique=False, count_include_pad=False):
    kernel = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    padding = (draw(st.integers(0, kernel[0] // 2)), draw(st.integers(0, kernel[1] // 2)))
    stride = draw(st.none() | st.integers(1, 2) | st.tuples(st.integers(1, 3), st.integers(1, 3)))
    H = draw(st.integers(max(1, kernel[0] - 2 * padding[0]), 5))
    W = draw(st.integers(max(1, kernel[1] - 2 * padding[1]), 5))
    C = draw(st.integers(1, 3))
    N = _batch(draw, H * W * C)
    kwargs = dict(
        kernel_size=kernel if draw(st.booleans()) or kernel[0] != kernel[1] else kernel[0],
        stride=stride,
        padding=padding if draw(st.booleans()) or padding[0] != padding[1] else padding[0],
    )
    if count_include_pad:
        kwargs["count_include_pad"] = draw(st.booleans())
    # max pooling: distinct values (multiples of 0.01), so no window has a tie
    x = draw(array((N, H, W, C), distinct() if unique else None, unique=unique))
    return Case((x,), kwargs)


def max_pool2d_ref(x, kernel_size, stride=None, padding=0):
    kernel = _as_pair(kernel_size)
    stride = kernel if stride is None else _as_pair(stride)
    y = None
    for oh, ow, OH, OW, patch in _windows(x, kernel, stride, _as_pair(padding), (1, 1), fill=-np.inf):
        if y is None:
            y = np.zeros((x.shape[0], OH, OW, x.shape[3]))
        y[:, oh, ow, :] = patch.max(axis=(1, 2))
    return y


def avg_pool2d_ref(x, kernel_size, stride=None, padding=0, count_include_pad=True):
    kernel = _as_pair(kernel_size)
    stride = kernel if stride is None else _as_pair(stride)
    ones = np.ones((1,) + x.shape[1:3] + (1,))
    real = {(oh, ow): p for oh, ow, _, _, p in _windows(ones, kernel, stride, _as_pair(padding), (1, 1))}
    y = None
    for oh, ow, OH, OW, patch in _windows(x, kernel, stride, _as_pair(padding), (1, 1)):
        if y is None:
            y = np.zeros((x.shape[0], OH, OW, x.shape[3]))
        divisor = math.prod(kernel) if count_include_pad else real[oh, ow].sum()
        y[:, oh, ow, :] = patch.sum(axis=(1, 2)) / divisor
    return y


@st.composite
def global_pool_cases(draw):
    H, W, C = draw(st.integers(1, 5)), draw(st.integers(1, 5)), draw(st.integers(1, 3))
    return Case((draw(array((_batch(draw, H * W * C), H, W, C))),))


# -------------------------------------------------------------- batch norm


@st.composite
def batch_norm_train_cases(draw):
    """x spread per channel (half the pixels +2, half -2, plus noise in
    [-1, 1]), so no channel's variance is near 0 where 1/sqrt(var + eps)
    makes finite differences meaningless."""
    N, H, W = draw(st.integers(1, 3)), draw(st.integers(1, 4)), draw(st.integers(1, 4))
    W = W if N * H * W >= 2 else 2  # at least 2 values per channel
    C = draw(st.integers(1, max(1, min(3, MAX_CNN_SIZE // (N * H * W)))))
    spread = np.where(np.arange(N * H * W) % 2, 2.0, -2.0).reshape(N, H, W, 1)
    x = draw(array((N, H, W, C), floats(-1, 1))) + spread
    inputs = (x,)
    if draw(st.booleans()):
        inputs += (draw(array((C,), floats(0.5, 2))), draw(array((C,))))
    return Case(inputs, dict(eps=draw(st.sampled_from([1e-5, 1e-3, 0.1])), track=draw(st.booleans())))


def _batch_norm_train(x, weight=None, bias=None, *, eps, track):
    """Training mode; with ``track`` fresh running arrays are updated (and
    dropped) on the way, which must not change the result."""
    running = (np.zeros(x.shape[3], x.dtype), np.ones(x.shape[3], x.dtype)) if track else (None, None)
    return F.batch_norm(x, *running, weight, bias, training=True, eps=eps)


def batch_norm_train_ref(x, weight=None, bias=None, *, eps, track):
    mean = x.mean(axis=(0, 1, 2))
    var = ((x - mean) ** 2).mean(axis=(0, 1, 2))
    y = (x - mean) / np.sqrt(var + eps)
    return y if weight is None else y * weight + bias


@st.composite
def batch_norm_eval_cases(draw):
    N, H, W, C = (draw(st.integers(1, 3)) for _ in range(4))
    inputs = (draw(array((N, H, W, C))),)
    if draw(st.booleans()):
        inputs += (draw(array((C,))), draw(array((C,))))
    running_mean = draw(array((C,)))
    running_var = draw(array((C,), floats(0.2, 3)))
    return Case(inputs, dict(running_mean=running_mean, running_var=running_var, eps=draw(st.sampled_from([1e-5, 0.1]))))


def _batch_norm_eval(x, weight=None, bias=None, *, running_mean, running_var, eps):
    # running statistics must have x's dtype (float32 under the float32 test)
    rm, rv = running_mean.astype(x.dtype), running_var.astype(x.dtype)
    return F.batch_norm(x, rm, rv, weight, bias, training=False, eps=eps)


def batch_norm_eval_ref(x, weight=None, bias=None, *, running_mean, running_var, eps):
    y = (x - running_mean) / np.sqrt(running_var + eps)
    return y if weight is None else y * weight + bias


# ------------------------------------------------------------------ linear


@st.composite
def linear_cases(draw):
    batch = draw(st.sampled_from([(), (1,), (2,), (3,), (2, 2), (1, 3), (3, 2)]))
    fin, fout = draw(st.integers(1, 6)), draw(st.integers(1, 6))
    x = draw(array(batch + (fin,)))
    w = draw(array((fin, fout), floats(-1, 1)))
    inputs = (x, w) + ((draw(array((fout,))),) if draw(st.booleans()) else ())
    return Case(inputs)


def linear_ref(x, w, b=None):
    return x @ w if b is None else x @ w + b


OPS = [
    OpSpec("conv2d", F.conv2d, conv2d_ref, conv2d_cases(), float32_tol=dict(rtol=1e-4, atol=1e-4)),
    OpSpec("depthwise_conv2d", F.depthwise_conv2d, depthwise_conv2d_ref, depthwise_cases(),
           float32_tol=dict(rtol=1e-4, atol=1e-4)),
    OpSpec("max_pool2d", F.max_pool2d, max_pool2d_ref, pool_cases(unique=True)),
    OpSpec("avg_pool2d", F.avg_pool2d, avg_pool2d_ref, pool_cases(count_include_pad=True)),
    OpSpec("global_avg_pool2d", F.global_avg_pool2d, lambda x: x.mean(axis=(1, 2)), global_pool_cases()),
    OpSpec("batch_norm_train", _batch_norm_train, batch_norm_train_ref, batch_norm_train_cases(),
           float32_tol=dict(rtol=1e-4, atol=1e-4)),
    OpSpec("batch_norm_eval", _batch_norm_eval, batch_norm_eval_ref, batch_norm_eval_cases(),
           float32_tol=dict(rtol=1e-4, atol=1e-4)),
    OpSpec("linear", F.linear, linear_ref, linear_cases(), float32_tol=dict(rtol=1e-4, atol=1e-4)),
]

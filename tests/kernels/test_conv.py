"""Convolution kernels (tinycnn.kernels.conv) against their NumPy twins.

Every kernel is compared with ``tinycnn.kernels.reference`` on drawn shapes and
arguments; the reference itself is checked against a loop-over-every-index
definition, and the backward kernels against the forward one through adjoint
identities, so a bug shared by a kernel and its twin still fails a test.
"""

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from tinycnn.kernels import _args, conv
from tinycnn.kernels import reference as ref

TOL = {np.float32: dict(rtol=1e-4, atol=1e-4), np.float64: dict(rtol=1e-10, atol=1e-10)}


# ------------------------------------------------------------------ strategies


@st.composite
def conv_cases(draw, max_c=5, max_hw=9, max_k=4, groups=True):
    """A convolution problem: arrays plus the keyword arguments of conv2d_forward."""
    dtype = draw(st.sampled_from([np.float32, np.float64]))
    G = draw(st.integers(1, 3)) if groups else 1
    CG = draw(st.integers(1, max_c // G))
    OG = draw(st.integers(1, max_c // G))
    KH, KW = draw(st.integers(1, max_k)), draw(st.integers(1, max_k))
    SH, SW = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    DH, DW = draw(st.integers(1, 2)), draw(st.integers(1, 2))
    padding = draw(st.one_of(
        st.integers(0, 3),
        st.tuples(st.integers(0, 3), st.integers(0, 3)),
        st.sampled_from(["same", "valid"]),
    ))
    if isinstance(padding, str):
        PH = PW = 0 if padding == "valid" else 99
    else:
        PH, PW = _args.pair(padding, "padding", minimum=0)
    # The dilated kernel must fit the padded input: H >= span - 2*PH.
    H = draw(st.integers(max(1, (KH - 1) * DH + 1 - 2 * PH), max_hw))
    W = draw(st.integers(max(1, (KW - 1) * DW + 1 - 2 * PW), max_hw))
    N = draw(st.integers(1, 3))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    x = rng.standard_normal((N, H, W, G * CG)).astype(dtype)
    w = rng.standard_normal((KH, KW, CG, G * OG)).astype(dtype)
    b = rng.standard_normal(G * OG).astype(dtype) if draw(st.booleans()) else None
    kwargs = dict(stride=(SH, SW), padding=padding, dilation=(DH, DW), groups=G)
    return x, w, b, kwargs, rng


def _geometry_kwargs(kwargs):
    return {k: v for k, v in kwargs.items() if k != "groups"}


def _random_like(rng, shape, dtype):
    return rng.standard_normal(shape).astype(dtype)


def naive_conv(x, w, b, stride=1, padding=0, dilation=1, groups=1):
    """Convolution by its definition: a loop over every index (tiny shapes only)."""
    N, H, W, C = x.shape
    KH, KW, CG, O = w.shape
    SH, SW = _args.pair(stride, "stride")
    DH, DW = _args.pair(dilation, "dilation")
    PT, PB, PL, PR = _args.resolve_padding(padding, (KH, KW), (DH, DW), (SH, SW), (H, W))
    OH = (H + PT + PB - DH * (KH - 1) - 1) // SH + 1
    OW = (W + PL + PR - DW * (KW - 1) - 1) // SW + 1
    OG = O // groups
    y = np.zeros((N, OH, OW, O))
    for n in range(N):
        for oh in range(OH):
            for ow in range(OW):
                for o in range(O):
                    g = o // OG
                    acc = 0.0 if b is None else float(b[o])
                    for kh in range(KH):
                        for kw in range(KW):
                            ih, iw = oh * SH - PT + kh * DH, ow * SW - PL + kw * DW
                            if 0 <= ih < H and 0 <= iw < W:
                                for c in range(CG):
                                    acc += x[n, ih, iw, g * CG + c] * w[kh, kw, c, o]
                    y[n, oh, ow, o] = acc
    return y


@pytest.fixture
def workspace_limit():
    """Set the workspace limit for one test and restore it afterwards."""
    old = conv.get_workspace_limit()
    yield conv.set_workspace_limit
    conv.set_workspace_limit(old)


# ----------------------------------------------------- kernels vs reference


@given(conv_cases(groups=False))
def test_im2col_matches_reference(case):
    x, w, _, kwargs, _ = case
    geo = _geometry_kwargs(kwargs)
    cols = conv.im2col(x, w.shape[:2], **geo)
    assert cols.dtype == x.dtype
    np.testing.assert_array_equal(cols, ref.im2col(x, w.shape[:2], **geo))


@given(conv_cases(groups=False))
def test_col2im_matches_reference(case):
    x, w, _, kwargs, rng = case
    geo = _geometry_kwargs(kwargs)
    shape = ref.im2col(x, w.shape[:2], **geo).shape
    cols = _random_like(rng, shape, x.dtype)
    gx = conv.col2im(cols, x.shape, w.shape[:2], **geo)
    assert gx.dtype == x.dtype and gx.shape == x.shape
    np.testing.assert_allclose(gx, ref.col2im(cols, x.shape, w.shape[:2], **geo),
                               **TOL[x.dtype.type])


@given(conv_cases())
def test_forward_matches_reference(case):
    x, w, b, kwargs, _ = case
    y = conv.conv2d_forward(x, w, b, **kwargs)
    assert y.dtype == x.dtype
    np.testing.assert_allclose(y, ref.conv2d_forward(x, w, b, **kwargs), **TOL[x.dtype.type])


@given(conv_cases())
def test_backward_input_matches_reference(case):
    x, w, _, kwargs, rng = case
    gy = _random_like(rng, ref.conv2d_forward(x, w, **kwargs).shape, x.dtype)
    gx = conv.conv2d_backward_input(gy, w, x.shape, **kwargs)
    assert gx.dtype == x.dtype and gx.shape == x.shape
    np.testing.assert_allclose(gx, ref.conv2d_backward_input(gy, w, x.shape, **kwargs),
                               **TOL[x.dtype.type])


@given(conv_cases())
def test_backward_weight_matches_reference(case):
    x, w, _, kwargs, rng = case
    gy = _random_like(rng, ref.conv2d_forward(x, w, **kwargs).shape, x.dtype)
    gw = conv.conv2d_backward_weight(x, gy, w.shape, **kwargs)
    assert gw.dtype == x.dtype and gw.shape == w.shape
    np.testing.assert_allclose(gw, ref.conv2d_backward_weight(x, gy, w.shape, **kwargs),
                               **TOL[x.dtype.type])


@given(conv_cases())
def test_backward_bias_matches_reference(case):
    x, w, _, kwargs, rng = case
    gy = _random_like(rng, ref.conv2d_forward(x, w, **kwargs).shape, x.dtype)
    gb = conv.conv2d_backward_bias(gy)
    assert gb.dtype == x.dtype and gb.shape == (w.shape[3],)
    np.testing.assert_allclose(gb, ref.conv2d_backward_bias(gy), **TOL[x.dtype.type])


# ------------------------------------------ checks that do not trust reference


@given(conv_cases(max_c=3, max_hw=5, max_k=3))
def test_reference_forward_matches_definition(case):
    x, w, b, kwargs, _ = case
    x, w = x.astype(np.float64), w.astype(np.float64)
    b = None if b is None else b.astype(np.float64)
    np.testing.assert_allclose(ref.conv2d_forward(x, w, b, **kwargs),
                               naive_conv(x, w, b, **kwargs), rtol=1e-10, atol=1e-10)


@given(conv_cases(groups=False))
def test_col2im_is_adjoint_of_im2col(case):
    x, w, _, kwargs, rng = case
    x = x.astype(np.float64)
    geo = _geometry_kwargs(kwargs)
    cols = conv.im2col(x, w.shape[:2], **geo)
    y = rng.standard_normal(cols.shape)
    lhs = np.vdot(cols, y)
    rhs = np.vdot(x, conv.col2im(y, x.shape, w.shape[:2], **geo))
    assert lhs == pytest.approx(rhs, rel=1e-10, abs=1e-10)


@given(conv_cases())
def test_backward_kernels_are_adjoints_of_forward(case):
    """<conv(x, w), gy> == <x, gx> == <w, gw>: conv is bilinear in x and w."""
    x, w, _, kwargs, rng = case
    x, w = x.astype(np.float64), w.astype(np.float64)
    y = conv.conv2d_forward(x, w, **kwargs)
    gy = rng.standard_normal(y.shape)
    inner = np.vdot(y, gy)
    gx = conv.conv2d_backward_input(gy, w, x.shape, **kwargs)
    gw = conv.conv2d_backward_weight(x, gy, w.shape, **kwargs)
    assert np.vdot(x, gx) == pytest.approx(inner, rel=1e-10, abs=1e-10)
    assert np.vdot(w, gw) == pytest.approx(inner, rel=1e-10, abs=1e-10)


# ---------------------------------------------------------------- pinned cases

PINNED = [
    # (x shape, w shape, kwargs)
    pytest.param((2, 1, 1, 3), (1, 1, 3, 2), dict(), id="1x1-input-1x1-kernel"),
    pytest.param((2, 1, 1, 3), (3, 3, 3, 2), dict(padding=1), id="1x1-input-3x3-pad1"),
    pytest.param((2, 3, 4, 2), (5, 6, 2, 3), dict(padding=1), id="kernel-equals-padded-input"),
    pytest.param((1, 3, 3, 1), (3, 3, 1, 1), dict(padding=0), id="kernel-equals-input"),
    pytest.param((2, 7, 8, 2), (2, 1, 2, 3), dict(stride=3), id="stride-larger-than-kernel"),
    pytest.param((2, 5, 5, 2), (3, 3, 2, 2), dict(padding=2), id="padding-ge-half-kernel"),
    pytest.param((1, 4, 4, 2), (3, 3, 2, 2), dict(padding=3), id="padding-3-kernel-3"),
    pytest.param((1, 6, 5, 3), (3, 3, 3, 4), dict(padding=1), id="batch-1"),
    pytest.param((3, 6, 5, 1), (3, 3, 1, 1), dict(padding="same"), id="one-channel"),
    pytest.param((2, 4, 9, 2), (2, 5, 2, 3), dict(padding="same", stride=2), id="H!=W-KH!=KW"),
    pytest.param((2, 9, 8, 2), (3, 2, 2, 2), dict(dilation=(2, 3), padding=2), id="dilation"),
    pytest.param((2, 6, 6, 6), (3, 3, 2, 6), dict(groups=3, padding=1), id="groups-3"),
    pytest.param((2, 6, 6, 4), (3, 3, 1, 4), dict(groups=4, stride=2), id="groups=C"),
    pytest.param((2, 5, 6, 2), (3, 3, 2, 3), dict(padding=(0, 1, 2, 0)), id="explicit-4-pads"),
    pytest.param((2, 5, 6, 4), (1, 1, 4, 3), dict(), id="pointwise"),
    pytest.param((2, 5, 6, 4), (1, 1, 2, 6), dict(groups=2), id="pointwise-groups"),
    pytest.param((2, 5, 6, 4), (1, 1, 4, 3), dict(stride=2), id="pointwise-stride2"),
    pytest.param((2, 5, 6, 4), (1, 1, 4, 3), dict(stride=(1, 2)), id="pointwise-stride1x2"),
    pytest.param((2, 5, 6, 4), (1, 1, 4, 3), dict(stride=(2, 1)), id="pointwise-stride2x1"),
    pytest.param((2, 5, 6, 4), (1, 1, 4, 3), dict(padding=(0, 0, 0, 1)), id="pointwise-pad-right"),
]


def _all_kernels(x, w, b, kwargs, gy):
    """Forward and the three gradients, from ``conv`` and from ``reference``."""
    out = {}
    for name, mod in (("fast", conv), ("ref", ref)):
        out[name] = (mod.conv2d_forward(x, w, b, **kwargs),
                     mod.conv2d_backward_input(gy, w, x.shape, **kwargs),
                     mod.conv2d_backward_weight(x, gy, w.shape, **kwargs),
                     mod.conv2d_backward_bias(gy))
    return out["fast"], out["ref"]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("x_shape, w_shape, kwargs", PINNED)
def test_pinned_cases(x_shape, w_shape, kwargs, dtype):
    rng = np.random.default_rng(0)
    x = _random_like(rng, x_shape, dtype)
    w = _random_like(rng, w_shape, dtype)
    b = _random_like(rng, w_shape[3], dtype)
    y_shape = ref.conv2d_forward(x, w, **kwargs).shape
    gy = _random_like(rng, y_shape, dtype)
    fast, slow = _all_kernels(x, w, b, kwargs, gy)
    for got, want in zip(fast, slow):
        assert got.dtype == dtype
        np.testing.assert_allclose(got, want, **TOL[dtype])
    np.testing.assert_allclose(fast[0], naive_conv(x, w, b, **kwargs), **TOL[dtype])


def test_kernel_as_large_as_padded_input_gives_one_pixel():
    x = np.ones((1, 3, 4, 1))
    w = np.ones((5, 6, 1, 1))
    y = conv.conv2d_forward(x, w, padding=1)
    assert y.shape == (1, 1, 1, 1)
    assert y[0, 0, 0, 0] == 12.0  # every real pixel, once


def test_skipped_pixels_get_exactly_zero_gradient():
    # Stride 3, kernel 2x1: rows 2, 5 and columns 1, 2, 4, 5, 7 are never read.
    rng = np.random.default_rng(1)
    x_shape = (2, 7, 8, 2)
    w = rng.standard_normal((2, 1, 2, 3))
    gy = rng.standard_normal((2, 2, 3, 3))
    gx = conv.conv2d_backward_input(gy, w, x_shape, stride=3)
    read = np.zeros(x_shape[1:3], bool)
    read[np.ix_([0, 1, 3, 4], [0, 3, 6])] = True
    assert np.all(gx[:, ~read, :] == 0.0)
    assert np.all(gx[:, read, :] != 0.0)


def test_same_padding_keeps_size_and_puts_extra_bottom_right():
    x = np.random.default_rng(2).standard_normal((1, 5, 6, 2))
    w = np.ones((2, 2, 2, 1))
    y = conv.conv2d_forward(x, w, padding="same")
    assert y.shape == (1, 5, 6, 1)
    # Kernel 2: one pad pixel, at the bottom/right: y[0, 0, 0] sums x[0, 0:2, 0:2].
    assert y[0, 0, 0, 0] == pytest.approx(x[0, 0:2, 0:2].sum())
    assert y[0, -1, -1, 0] == pytest.approx(x[0, -1, -1].sum())


@given(st.integers(1, 20), st.integers(1, 5), st.integers(1, 4), st.integers(1, 3))
def test_same_padding_output_is_ceil_in_over_stride(size, k, s, d):
    PT, PB, PL, PR = _args.resolve_padding("same", (k, 1), (d, 1), (s, 1), (size, 1))
    assert PB - PT in (0, 1)
    assert _args.conv_output_size(size, k, s, PT, PB, d) == math.ceil(size / s)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_non_contiguous_inputs(dtype):
    rng = np.random.default_rng(3)
    x = np.transpose(_random_like(rng, (2, 3, 7, 6), dtype), (0, 2, 3, 1))  # NCHW -> NHWC view
    x = x[:, ::1, 1:, :]
    w = np.transpose(_random_like(rng, (4, 3, 3, 3), dtype), (2, 3, 1, 0))[:, :, :, ::-1]
    b = _random_like(rng, 8, dtype)[::2]
    kwargs = dict(stride=(1, 2), padding=1)
    gy = _random_like(rng, (2, 4, 3, 7), dtype).transpose(0, 3, 2, 1)
    assert not (x.flags.c_contiguous or w.flags.c_contiguous or gy.flags.c_contiguous)
    xc, wc, bc, gyc = (np.ascontiguousarray(a) for a in (x, w, b, gy))
    assert gy.shape == ref.conv2d_forward(xc, wc, **kwargs).shape
    fast, _ = _all_kernels(x, w, b, kwargs, gy)
    _, slow = _all_kernels(xc, wc, bc, kwargs, gyc)
    for got, want in zip(fast, slow):
        np.testing.assert_allclose(got, want, **TOL[dtype])
    cols = conv.im2col(x, 3, padding=1)
    np.testing.assert_array_equal(cols, ref.im2col(xc, 3, padding=1))
    cols_view = np.asfortranarray(cols)
    np.testing.assert_allclose(conv.col2im(cols_view, x.shape, 3, padding=1),
                               ref.col2im(cols, x.shape, 3, padding=1), **TOL[dtype])


def test_pointwise_path_uses_no_im2col(monkeypatch):
    def refuse(*args):
        raise AssertionError("1x1 stride-1 unpadded convolution built an im2col buffer")

    monkeypatch.setattr(conv, "_workspace", refuse)
    monkeypatch.setattr(conv, "_im2col_rows", refuse)
    monkeypatch.setattr(conv, "_col2im_rows", refuse)
    rng = np.random.default_rng(4)
    for groups in (1, 2):
        x = rng.standard_normal((2, 4, 3, 4))
        w = rng.standard_normal((1, 1, 4 // groups, 6))
        b = rng.standard_normal(6)
        kwargs = dict(groups=groups, dilation=2)
        gy = rng.standard_normal((2, 4, 3, 6))
        fast, slow = _all_kernels(x, w, b, kwargs, gy)
        for got, want in zip(fast, slow):
            np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)


# ------------------------------------------------------------------- workspace


def test_workspace_limit_default_and_validation(workspace_limit):
    assert conv.get_workspace_limit() == 256 * 2**20
    workspace_limit(12345)
    assert conv.get_workspace_limit() == 12345
    for bad, err in ((0, ValueError), (-5, ValueError), (1.5, TypeError), (True, TypeError),
                     ("1k", TypeError)):
        with pytest.raises(err, match="workspace limit"):
            conv.set_workspace_limit(bad)
    assert conv.get_workspace_limit() == 12345


@pytest.mark.parametrize("limit", [4096, 1])
def test_workspace_limit_bounds_the_buffer_without_changing_results(
        workspace_limit, monkeypatch, limit):
    rng = np.random.default_rng(5)
    x = rng.standard_normal((3, 9, 8, 4))
    w = rng.standard_normal((3, 3, 2, 4))
    b = rng.standard_normal(4)
    kwargs = dict(stride=(1, 2), padding=1, groups=2)
    gy = rng.standard_normal((3, 9, 4, 4))
    uncapped, _ = _all_kernels(x, w, b, kwargs, gy)

    buffers, chunks = [], []
    real_workspace, real_im2col = conv._workspace, conv._im2col_rows

    def watched_workspace(rows, ncols, dtype):
        buffers.append(rows * ncols * np.dtype(dtype).itemsize)
        return real_workspace(rows, ncols, dtype)

    def watched_im2col(x, cols, r0, r1, *rest):
        chunks.append((r0, r1))
        return real_im2col(x, cols, r0, r1, *rest)

    monkeypatch.setattr(conv, "_workspace", watched_workspace)
    monkeypatch.setattr(conv, "_im2col_rows", watched_im2col)
    workspace_limit(limit)
    capped, _ = _all_kernels(x, w, b, kwargs, gy)
    for got, want in zip(capped, uncapped):
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)

    row_bytes = 4 * 3 * 3 * 2 * 8  # OW * KH*KW*C/groups * itemsize, one output row
    assert len(buffers) == 3  # forward, backward input, backward weight
    expected = max(limit // row_bytes, 1) * row_bytes
    assert all(size == expected for size in buffers)
    if limit >= row_bytes:
        assert all(size <= limit for size in buffers)
    # Forward and backward-weight chunks: per group, consecutive, covering N*OH = 27 rows.
    per_call = chunks[:len(chunks) // 2]
    starts = [r0 for r0, _ in per_call[::2]]
    assert per_call[::2] == per_call[1::2]  # both groups see the same chunk
    assert starts[0] == 0 and per_call[-1][1] == 27 and len(starts) > 1
    assert all(a[1] == b[0] for a, b in zip(per_call[::2], per_call[2::2]))


@given(conv_cases(), st.sampled_from([1, 300, 3000]))
def test_chunked_kernels_match_reference(case, limit):
    """Small limits split the (n, oh) rows into chunks, some straddling two images."""
    x, w, b, kwargs, rng = case
    gy = _random_like(rng, ref.conv2d_forward(x, w, **kwargs).shape, x.dtype)
    old = conv.get_workspace_limit()
    conv.set_workspace_limit(limit)
    try:
        fast, slow = _all_kernels(x, w, b, kwargs, gy)
    finally:
        conv.set_workspace_limit(old)
    for got, want in zip(fast, slow):
        np.testing.assert_allclose(got, want, **TOL[x.dtype.type])


# --------------------------------------------------------------- determinism


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_repeated_calls_are_bitwise_identical(dtype):
    rng = np.random.default_rng(6)
    x = _random_like(rng, (3, 8, 7, 4), dtype)
    w = _random_like(rng, (3, 2, 4, 5), dtype)
    b = _random_like(rng, 5, dtype)
    kwargs = dict(stride=2, padding="same", dilation=(1, 2))
    gy = _random_like(rng, ref.conv2d_forward(x, w, **kwargs).shape, dtype)
    first, _ = _all_kernels(x, w, b, kwargs, gy)
    second, _ = _all_kernels(x, w, b, kwargs, gy)
    for a, c in zip(first, second):
        assert a.tobytes() == c.tobytes()
    cols = _random_like(rng, conv.im2col(x, 3, padding=1).shape, dtype)
    assert (conv.col2im(cols, x.shape, 3, padding=1).tobytes()
            == conv.col2im(cols, x.shape, 3, padding=1).tobytes())


# -------------------------------------------------------------------- errors

X = np.zeros((2, 5, 5, 4))
Wt = np.zeros((3, 3, 4, 6))


@pytest.mark.parametrize("call, err, pattern", [
    (lambda: conv.conv2d_forward(X, np.zeros((3, 3, 3, 6))), ValueError, r"channel mismatch.*C=4"),
    (lambda: conv.conv2d_forward(X, np.zeros((7, 3, 4, 6))), ValueError,
     r"kernel_size \(height\).*spans 7.*only 5"),
    (lambda: conv.conv2d_forward(X, np.zeros((3, 9, 4, 6)), dilation=1, padding=(1, 1)),
     ValueError, r"kernel_size \(width\).*spans 9.*only 7"),
    (lambda: conv.conv2d_forward(X, np.zeros((3, 2, 4, 6)), dilation=3), ValueError,
     r"spans 7.*only 5"),
    (lambda: conv.conv2d_forward(X[0], Wt), ValueError, r"x must be 4-D.*\(N, H, W, C\).*3-D"),
    (lambda: conv.conv2d_forward(X[None], Wt), ValueError, r"x must be 4-D.*5-D"),
    (lambda: conv.conv2d_forward(X.astype(np.int64), Wt), TypeError, r"x must have dtype.*int64"),
    (lambda: conv.conv2d_forward(X.astype(np.float16), Wt), TypeError, r"float16"),
    (lambda: conv.conv2d_forward(X.astype(bool), Wt), TypeError, r"bool"),
    (lambda: conv.conv2d_forward(X.tolist(), Wt), TypeError, r"x must be a numpy.ndarray"),
    (lambda: conv.conv2d_forward(X, Wt[0]), ValueError, r"w must be 4-D"),
    (lambda: conv.conv2d_forward(X, Wt.astype(np.float32)), TypeError,
     r"same dtype.*x.dtype=float64.*w.dtype=float32"),
    (lambda: conv.conv2d_forward(X, np.zeros((3, 3, 1, 6)), groups=3), ValueError,
     r"groups=3 must divide the input channels.*C=4"),
    (lambda: conv.conv2d_forward(X, np.zeros((3, 3, 2, 5)), groups=2), ValueError,
     r"groups=2 must divide the output channels.*C_out=5"),
    (lambda: conv.conv2d_forward(X, np.zeros((3, 3, 4, 6)), groups=2), ValueError,
     r"channel mismatch.*C_in/groups=2"),
    (lambda: conv.conv2d_forward(X, Wt, groups=0), ValueError, r"groups must be >= 1"),
    (lambda: conv.conv2d_forward(X, Wt, padding=-1), ValueError, r"padding must be >= 0, got -1"),
    (lambda: conv.conv2d_forward(X, Wt, padding=(1, -2)), ValueError, r"padding must be >= 0"),
    (lambda: conv.conv2d_forward(X, Wt, padding=(0, 0, -1, 0)), ValueError, r"padding"),
    (lambda: conv.conv2d_forward(X, Wt, padding="full"), ValueError, r"'same' or 'valid'.*full"),
    (lambda: conv.conv2d_forward(X, Wt, padding=1.5), TypeError, r"padding must be an int"),
    (lambda: conv.conv2d_forward(X, Wt, stride=0), ValueError, r"stride must be >= 1, got 0"),
    (lambda: conv.conv2d_forward(X, Wt, stride=(1, 2, 3)), ValueError, r"stride.*length 3"),
    (lambda: conv.conv2d_forward(X, Wt, dilation=0), ValueError, r"dilation must be >= 1"),
    (lambda: conv.conv2d_forward(X, Wt, b=np.zeros(5)), ValueError, r"b must have shape.*\(6,\)"),
    (lambda: conv.conv2d_forward(X, Wt, b=np.zeros(6, np.float32)), TypeError, r"x and b"),
    (lambda: conv.conv2d_backward_input(np.zeros((2, 3, 3, 5)), Wt, X.shape), ValueError,
     r"gy must have the output shape.*\(2, 3, 3, 6\)"),
    (lambda: conv.conv2d_backward_input(np.zeros((2, 3, 3, 6), np.float32), Wt, X.shape),
     TypeError, r"gy and w must have the same dtype"),
    (lambda: conv.conv2d_backward_input(np.zeros((2, 3, 3, 6)), Wt, (2, 5, 5)), ValueError,
     r"x_shape must be 4 ints"),
    (lambda: conv.conv2d_backward_input(np.zeros((2, 3, 3, 6)), Wt, (2, 5, 5, 3)), ValueError,
     r"channel mismatch"),
    (lambda: conv.conv2d_backward_weight(X, np.zeros((2, 3, 3, 6)), (3, 3, 5, 6)), ValueError,
     r"channel mismatch"),
    (lambda: conv.conv2d_backward_weight(X, np.zeros((2, 3, 3, 6), np.float32), Wt.shape),
     TypeError, r"x and gy must have the same dtype"),
    (lambda: conv.conv2d_backward_weight(X, np.zeros((2, 4, 3, 6)), Wt.shape), ValueError,
     r"gy must have the output shape"),
    (lambda: conv.conv2d_backward_bias(np.zeros((3, 6))), ValueError, r"gy must be 4-D"),
    (lambda: conv.im2col(X, 6), ValueError, r"spans 6.*only 5"),
    (lambda: conv.im2col(X, (3, 0)), ValueError, r"kernel_size must be >= 1"),
    (lambda: conv.im2col(X, True), TypeError, r"kernel_size must be an int"),
    (lambda: conv.col2im(np.zeros((18, 35)), X.shape, 3), ValueError,
     r"cols must have shape.*\(18, 36\).*got \(18, 35\)"),
    (lambda: conv.col2im(np.zeros((18, 36), np.int32), X.shape, 3), TypeError, r"int32"),
])
def test_bad_arguments_raise_informative_errors(call, err, pattern):
    with pytest.raises(err, match=pattern):
        call()


def test_check_nhwc_rejects_empty_axes():
    with pytest.raises(ValueError, match=r"non-empty"):
        _args.check_nhwc(np.zeros((1, 0, 3, 2)), "x")

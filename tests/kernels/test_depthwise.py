"""Depthwise convolution kernels against their NumPy twins, plus pinned edge cases."""

import numba
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from tinycnn.kernels import depthwise as K
from tinycnn.kernels import reference as R
from tinycnn.kernels._args import resolve_padding

FLOATS = [np.float32, np.float64]


def tol(dtype):
    return dict(rtol=1e-4, atol=1e-4) if dtype == np.float32 else dict(rtol=1e-10, atol=1e-10)


def noncontig(a):
    """A copy of ``a`` as a view whose last axis has stride 2 (not C-contiguous
    unless it has a single element)."""
    big = np.zeros(a.shape[:-1] + (2 * a.shape[-1],), dtype=a.dtype)
    big[..., ::2] = a
    return big[..., ::2]


@st.composite
def cases(draw):
    """A valid depthwise problem: shapes, geometry, dtype and random data."""
    dtype = draw(st.sampled_from(FLOATS))
    N = draw(st.integers(1, 3))
    C = draw(st.integers(1, 6))
    M = draw(st.integers(1, 3))
    KH, KW = draw(st.integers(1, 4)), draw(st.integers(1, 4))
    stride = draw(st.one_of(st.integers(1, 3), st.tuples(st.integers(1, 3), st.integers(1, 3))))
    dilation = draw(st.one_of(st.integers(1, 2),
                              st.tuples(st.integers(1, 2), st.integers(1, 2))))
    p = st.integers(0, 2)
    padding = draw(st.one_of(p, st.tuples(p, p), st.tuples(p, p, p, p),
                             st.sampled_from(["same", "valid"])))
    DH, DW = (dilation, dilation) if isinstance(dilation, int) else dilation
    if padding == "same":
        min_h = min_w = 1
    else:
        PT, PB, PL, PR = resolve_padding(padding, (KH, KW), dilation, stride, (9, 9))
        min_h = max(1, DH * (KH - 1) + 1 - PT - PB)
        min_w = max(1, DW * (KW - 1) + 1 - PL - PR)
    H = draw(st.integers(min_h, 9))
    W = draw(st.integers(min_w, 9))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    x = rng.standard_normal((N, H, W, C)).astype(dtype)
    w = rng.standard_normal((KH, KW, C, M)).astype(dtype)
    b = rng.standard_normal(C * M).astype(dtype) if draw(st.booleans()) else None
    if draw(st.booleans()):
        x = noncontig(x)
    geo = dict(stride=stride, padding=padding, dilation=dilation)
    y = R.depthwise_conv2d_forward(x, w, b, **geo)
    gy = rng.standard_normal(y.shape).astype(dtype)
    return x, w, b, gy, geo


@given(cases())
def test_forward_matches_reference(case):
    x, w, b, gy, geo = case
    y = K.depthwise_conv2d_forward(x, w, b, **geo)
    assert y.dtype == x.dtype
    np.testing.assert_allclose(y, R.depthwise_conv2d_forward(x, w, b, **geo), **tol(x.dtype))


@given(cases())
def test_backward_input_matches_reference(case):
    x, w, b, gy, geo = case
    gx = K.depthwise_conv2d_backward_input(gy, w, x.shape, **geo)
    assert gx.dtype == x.dtype and gx.shape == x.shape
    np.testing.assert_allclose(gx, R.depthwise_conv2d_backward_input(gy, w, x.shape, **geo),
                               **tol(x.dtype))


@given(cases())
def test_backward_weight_matches_reference(case):
    x, w, b, gy, geo = case
    gw = K.depthwise_conv2d_backward_weight(x, gy, w.shape, **geo)
    assert gw.dtype == x.dtype and gw.shape == w.shape
    np.testing.assert_allclose(gw, R.depthwise_conv2d_backward_weight(x, gy, w.shape, **geo),
                               **tol(x.dtype))


@given(cases())
def test_fused_backward_matches_reference(case):
    x, w, b, gy, geo = case
    gx, gw = K.depthwise_conv2d_backward(x, gy, w, **geo)
    assert gx.dtype == gw.dtype == x.dtype and gx.shape == x.shape and gw.shape == w.shape
    np.testing.assert_allclose(gx, R.depthwise_conv2d_backward_input(gy, w, x.shape, **geo),
                               **tol(x.dtype))
    np.testing.assert_allclose(gw, R.depthwise_conv2d_backward_weight(x, gy, w.shape, **geo),
                               **tol(x.dtype))


@st.composite
def cases_3x3(draw):
    """3x3, stride 1, multiplier 1 (the specialised kernels): wider channel counts and
    rows, heights around the 4-row blocks, any padding."""
    dtype = draw(st.sampled_from(FLOATS))
    N = draw(st.integers(1, 3))
    C = draw(st.integers(1, 40))
    p = st.integers(0, 3)
    padding = draw(st.one_of(p, st.tuples(p, p, p, p), st.sampled_from(["same", "valid"])))
    PT, PB, PL, PR = resolve_padding(padding, 3, 1, 1, (12, 12))
    H = draw(st.integers(max(1, 3 - PT - PB), 12))
    W = draw(st.integers(max(1, 3 - PL - PR), 12))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    x = rng.standard_normal((N, H, W, C)).astype(dtype)
    w = rng.standard_normal((3, 3, C, 1)).astype(dtype)
    b = rng.standard_normal(C).astype(dtype) if draw(st.booleans()) else None
    geo = dict(stride=1, padding=padding, dilation=1)
    y = R.depthwise_conv2d_forward(x, w, b, **geo)
    gy = rng.standard_normal(y.shape).astype(dtype)
    return x, w, b, gy, geo


@given(cases_3x3())
def test_3x3_stride1_kernels_match_reference(case):
    x, w, b, gy, geo = case
    t = tol(x.dtype)
    np.testing.assert_allclose(K.depthwise_conv2d_forward(x, w, b, **geo),
                               R.depthwise_conv2d_forward(x, w, b, **geo), **t)
    gx_ref = R.depthwise_conv2d_backward_input(gy, w, x.shape, **geo)
    gw_ref = R.depthwise_conv2d_backward_weight(x, gy, w.shape, **geo)
    np.testing.assert_allclose(K.depthwise_conv2d_backward_input(gy, w, x.shape, **geo), gx_ref, **t)
    np.testing.assert_allclose(K.depthwise_conv2d_backward_weight(x, gy, w.shape, **geo), gw_ref, **t)
    gx, gw = K.depthwise_conv2d_backward(x, gy, w, **geo)
    np.testing.assert_allclose(gx, gx_ref, **t)
    np.testing.assert_allclose(gw, gw_ref, **t)


def test_3x3_stride1_non_finite_values_stay_in_their_pixels():
    """A NaN/inf travels to the outputs its taps reach and nowhere else (no leak
    across the row ends of the flat inner loops)."""
    x = np.ones((1, 6, 7, 5))
    x[0, 2, 6, 1] = np.nan
    x[0, 4, 0, 3] = np.inf
    w = np.ones((3, 3, 5, 1))
    y = K.depthwise_conv2d_forward(x, w, padding=1)
    np.testing.assert_array_equal(np.argwhere(np.isnan(y[..., 1]))[:, 1:],
                                  [[h, c] for h in (1, 2, 3) for c in (5, 6)])
    assert np.isinf(y[..., 3]).sum() == 6 and np.isfinite(np.delete(y, [1, 3], axis=3)).all()


@given(cases())
def test_backward_bias_matches_reference(case):
    x, w, b, gy, geo = case
    gb = K.depthwise_conv2d_backward_bias(gy)
    assert gb.dtype == gy.dtype and gb.shape == (gy.shape[3],)
    np.testing.assert_allclose(gb, R.depthwise_conv2d_backward_bias(gy), **tol(x.dtype))


@given(cases())
def test_backward_is_adjoint_of_forward(case):
    """<y(x, w), gy> == <x, gx> == <w, gw>: the gradients belong to this forward."""
    x, w, b, gy, geo = case
    x, w, gy = x.astype(np.float64), w.astype(np.float64), gy.astype(np.float64)
    inner = np.sum(K.depthwise_conv2d_forward(x, w, None, **geo) * gy)
    gx = K.depthwise_conv2d_backward_input(gy, w, x.shape, **geo)
    gw = K.depthwise_conv2d_backward_weight(x, gy, w.shape, **geo)
    np.testing.assert_allclose(np.sum(x * gx), inner, rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(np.sum(w * gw), inner, rtol=1e-10, atol=1e-10)


def test_channel_order_is_c_times_m_plus_m():
    """Output channel c*M + m is input channel c filtered by w[:, :, c, m]."""
    C, M = 3, 2
    x = np.zeros((1, 1, 1, C))
    x[0, 0, 0] = [1.0, 10.0, 100.0]
    w = np.arange(C * M, dtype=np.float64).reshape(1, 1, C, M) + 1  # w[0,0,c,m] = c*M + m + 1
    y = K.depthwise_conv2d_forward(x, w)
    expected = [x[0, 0, 0, c] * w[0, 0, c, m] for c in range(C) for m in range(M)]
    np.testing.assert_array_equal(y[0, 0, 0], expected)


PINNED = [
    # (N, H, W, C, M, KH, KW, stride, padding, dilation)
    (1, 1, 1, 1, 1, 3, 3, 1, 1, 1),            # 1x1 input, padding of half the kernel
    (2, 1, 1, 3, 2, 1, 1, 1, 0, 1),            # 1x1 input, 1x1 kernel
    (1, 3, 4, 2, 1, 5, 6, 1, 1, 1),            # kernel as large as the padded input
    (2, 7, 5, 3, 2, 3, 3, 1, 1, 1),            # padding of half the kernel: same size
    (1, 6, 9, 1, 3, 2, 4, (2, 3), 0, 1),       # batch 1, one channel, H != W, KH != KW
    (3, 9, 8, 4, 1, 3, 2, 1, (2, 1), 2),       # dilation > 1
    (2, 9, 9, 2, 2, 3, 3, 2, "same", (2, 1)),  # 'same' with stride and dilation
    (1, 8, 7, 5, 1, 4, 3, 1, (1, 2, 0, 1), 1),  # asymmetric explicit padding
]


@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("N,H,W,C,M,KH,KW,stride,padding,dilation", PINNED)
def test_pinned_cases(dtype, N, H, W, C, M, KH, KW, stride, padding, dilation):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((N, H, W, C)).astype(dtype)
    w = rng.standard_normal((KH, KW, C, M)).astype(dtype)
    b = rng.standard_normal(C * M).astype(dtype)
    geo = dict(stride=stride, padding=padding, dilation=dilation)
    y = K.depthwise_conv2d_forward(x, w, b, **geo)
    np.testing.assert_allclose(y, R.depthwise_conv2d_forward(x, w, b, **geo), **tol(dtype))
    gy = rng.standard_normal(y.shape).astype(dtype)
    np.testing.assert_allclose(K.depthwise_conv2d_backward_input(gy, w, x.shape, **geo),
                               R.depthwise_conv2d_backward_input(gy, w, x.shape, **geo),
                               **tol(dtype))
    np.testing.assert_allclose(K.depthwise_conv2d_backward_weight(x, gy, w.shape, **geo),
                               R.depthwise_conv2d_backward_weight(x, gy, w.shape, **geo),
                               **tol(dtype))


def test_one_by_one_input_uses_only_the_centre_tap():
    x = np.array([[[[2.0, -3.0]]]])
    w = np.arange(18, dtype=np.float64).reshape(3, 3, 2, 1)
    y = K.depthwise_conv2d_forward(x, w, padding=1)
    assert y.shape == (1, 1, 1, 2)
    np.testing.assert_array_equal(y[0, 0, 0], x[0, 0, 0] * w[1, 1, :, 0])


def test_kernel_as_large_as_padded_input_gives_one_output():
    rng = np.random.default_rng(1)
    x = rng.standard_normal((2, 3, 4, 2))
    w = rng.standard_normal((5, 6, 2, 1))
    y = K.depthwise_conv2d_forward(x, w, padding=1)
    assert y.shape == (2, 1, 1, 2)
    xp = np.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)))
    np.testing.assert_allclose(y[:, 0, 0], np.einsum("nhwc,hwc->nc", xp, w[..., 0]))


def test_stride_larger_than_kernel_skipped_pixels_get_zero_gradient():
    rng = np.random.default_rng(2)
    x = rng.standard_normal((2, 7, 8, 3)).astype(np.float32)
    w = rng.standard_normal((1, 2, 3, 2)).astype(np.float32)
    y = K.depthwise_conv2d_forward(x, w, stride=3)
    gy = rng.standard_normal(y.shape).astype(np.float32)
    gx = K.depthwise_conv2d_backward_input(gy, w, x.shape, stride=3)
    read = np.zeros((7, 8), dtype=bool)
    for oh in range(y.shape[1]):
        for ow in range(y.shape[2]):
            read[oh * 3, ow * 3:ow * 3 + 2] = True
    assert np.all(gx[:, ~read] == 0.0)
    assert np.all(gx[:, read] != 0.0)


def test_non_contiguous_views():
    rng = np.random.default_rng(3)
    x = rng.standard_normal((2, 6, 5, 4)).transpose(0, 2, 1, 3)  # (2, 5, 6, 4), a view
    w = rng.standard_normal((3, 2, 4, 2))[::-1]                 # negative stride
    b = rng.standard_normal(16)[::2]
    assert not (x.flags.c_contiguous or w.flags.c_contiguous or b.flags.c_contiguous)
    geo = dict(stride=(1, 2), padding=1)
    y = K.depthwise_conv2d_forward(x, w, b, **geo)
    np.testing.assert_allclose(y, R.depthwise_conv2d_forward(x, w, b, **geo), rtol=1e-12)
    gy = noncontig(rng.standard_normal(y.shape))
    assert not gy.flags.c_contiguous
    np.testing.assert_allclose(K.depthwise_conv2d_backward_input(gy, w, x.shape, **geo),
                               R.depthwise_conv2d_backward_input(gy, w, x.shape, **geo),
                               rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(K.depthwise_conv2d_backward_weight(x, gy, w.shape, **geo),
                               R.depthwise_conv2d_backward_weight(x, gy, w.shape, **geo),
                               rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(K.depthwise_conv2d_backward_bias(gy),
                               R.depthwise_conv2d_backward_bias(gy), rtol=1e-12)


@pytest.fixture
def restore_threads():
    old = numba.get_num_threads()
    yield
    numba.set_num_threads(old)


def _all_outputs(x, w, gy, geo):
    return (K.depthwise_conv2d_forward(x, w, None, **geo),
            K.depthwise_conv2d_backward_input(gy, w, x.shape, **geo),
            K.depthwise_conv2d_backward_weight(x, gy, w.shape, **geo),
            K.depthwise_conv2d_backward_bias(gy),
            *K.depthwise_conv2d_backward(x, gy, w, **geo))


@pytest.mark.parametrize("shape,w_shape,geo,gy_shape", [
    ((3, 17, 13, 7), (3, 3, 7, 2), dict(stride=(2, 1), padding=1, dilation=(1, 2)), (3, 9, 11, 14)),
    ((3, 18, 13, 37), (3, 3, 37, 1), dict(stride=1, padding=1, dilation=1), (3, 18, 13, 37)),
], ids=["general", "3x3-stride1"])
def test_thread_count_does_not_change_results(restore_threads, shape, w_shape, geo, gy_shape):
    if numba.config.NUMBA_NUM_THREADS < 2:
        pytest.skip("needs 2 Numba threads")
    rng = np.random.default_rng(4)
    x = rng.standard_normal(shape).astype(np.float32)
    w = rng.standard_normal(w_shape).astype(np.float32)
    gy = rng.standard_normal(gy_shape).astype(np.float32)
    numba.set_num_threads(1)
    one = _all_outputs(x, w, gy, geo)
    numba.set_num_threads(2)
    two = _all_outputs(x, w, gy, geo)
    again = _all_outputs(x, w, gy, geo)
    for a, b, c in zip(one, two, again):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5)
        np.testing.assert_array_equal(b, c)


# ------------------------------------------------------------------ bad input


X = np.zeros((1, 5, 5, 2))
W = np.zeros((3, 3, 2, 1))


@pytest.mark.parametrize("call,exc,match", [
    (lambda: K.depthwise_conv2d_forward(X[0], W), ValueError, r"x must be 4-D.*3-D"),
    (lambda: K.depthwise_conv2d_forward(X, W[0]), ValueError, r"w must be 4-D.*3-D"),
    (lambda: K.depthwise_conv2d_forward(X, np.zeros((3, 3, 3, 1))), ValueError,
     r"channel mismatch.*C=3.*C=2"),
    (lambda: K.depthwise_conv2d_forward(X, np.zeros((7, 3, 2, 1)), padding=0), ValueError,
     r"kernel_size \(height\).*7.*5"),
    (lambda: K.depthwise_conv2d_forward(X.astype(np.int64), W.astype(np.int64)), TypeError,
     r"x must have dtype float32 or float64, got int64"),
    (lambda: K.depthwise_conv2d_forward(X, W.astype(np.float32)), TypeError,
     r"x and w must have the same dtype.*float64.*float32"),
    (lambda: K.depthwise_conv2d_forward(X, W, padding=-1), ValueError, r"padding must be >= 0"),
    (lambda: K.depthwise_conv2d_forward(X, W, stride=0), ValueError, r"stride must be >= 1"),
    (lambda: K.depthwise_conv2d_forward(X, W, dilation=(1, 0)), ValueError,
     r"dilation must be >= 1"),
    (lambda: K.depthwise_conv2d_forward(X, W, stride=1.5), TypeError, r"stride"),
    (lambda: K.depthwise_conv2d_forward(X, W, b=np.zeros(3)), ValueError,
     r"b must have shape \(C\*M,\) = \(2,\), got \(3,\)"),
    (lambda: K.depthwise_conv2d_forward(X.tolist(), W), TypeError, r"x must be a numpy"),
    (lambda: K.depthwise_conv2d_backward_input(np.zeros((1, 4, 3, 2)), W, X.shape), ValueError,
     r"gy must have the output shape .*\(1, 3, 3, 2\).*\(1, 4, 3, 2\)"),
    (lambda: K.depthwise_conv2d_backward_input(np.zeros((1, 3, 3, 2)), W, (1, 5, 5, 4)),
     ValueError, r"channel mismatch"),
    (lambda: K.depthwise_conv2d_backward_input(np.zeros((1, 3, 3, 2)), W, (1, 5, 5)),
     ValueError, r"x_shape must be 4 ints"),
    (lambda: K.depthwise_conv2d_backward_weight(X, np.zeros((1, 3, 3, 4)), W.shape), ValueError,
     r"gy must have the output shape"),
    (lambda: K.depthwise_conv2d_backward_weight(X, np.zeros((1, 3, 3, 2)), (3, 3, 5, 1)),
     ValueError, r"channel mismatch"),
    (lambda: K.depthwise_conv2d_backward_bias(np.zeros((3, 3, 2))), ValueError, r"gy must be 4-D"),
    (lambda: K.depthwise_conv2d_backward(X, np.zeros((1, 4, 3, 2)), W), ValueError,
     r"gy must have the output shape"),
    (lambda: K.depthwise_conv2d_backward(X, np.zeros((1, 3, 3, 2)), np.zeros((3, 3, 3, 1))),
     ValueError, r"channel mismatch"),
    (lambda: K.depthwise_conv2d_backward(X[0], np.zeros((1, 3, 3, 2)), W), ValueError,
     r"x must be 4-D"),
    (lambda: K.depthwise_conv2d_backward(X, np.zeros((1, 3, 3, 2)), W.astype(np.float32)),
     TypeError, r"x and w must have the same dtype"),
    (lambda: K.depthwise_conv2d_backward(X, np.zeros((1, 3, 3, 2), np.float32), W), TypeError,
     r"x and gy must have the same dtype"),
])
def test_bad_input_raises_informative_error(call, exc, match):
    with pytest.raises(exc, match=match):
        call()

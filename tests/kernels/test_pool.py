"""Pooling kernels against their NumPy twins, plus pinned edge cases."""

import numba
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from tinycnn.kernels import pool as K
from tinycnn.kernels import reference as R

FLOATS = [np.float32, np.float64]


def tol(dtype):
    return dict(rtol=1e-5, atol=1e-6) if dtype == np.float32 else dict(rtol=1e-12, atol=1e-12)


def noncontig(a):
    """A copy of ``a`` as a view whose last axis has stride 2."""
    big = np.zeros(a.shape[:-1] + (2 * a.shape[-1],), dtype=a.dtype)
    big[..., ::2] = a
    return big[..., ::2]


@st.composite
def cases(draw):
    """A valid pooling problem: ``(x, kernel_size, stride, padding)``.

    Half the time the data are small integers, so windows hold ties.
    """
    dtype = draw(st.sampled_from(FLOATS))
    N, C = draw(st.integers(1, 3)), draw(st.integers(1, 6))
    KH, KW = draw(st.integers(1, 4)), draw(st.integers(1, 4))
    PH, PW = draw(st.integers(0, KH // 2)), draw(st.integers(0, KW // 2))
    H = draw(st.integers(max(1, KH - 2 * PH), 9))
    W = draw(st.integers(max(1, KW - 2 * PW), 9))
    kernel_size = (KH, KW) if KH != KW or draw(st.booleans()) else KH
    padding = (PH, PW) if PH != PW or draw(st.booleans()) else PH
    stride = draw(st.one_of(st.none(), st.integers(1, 3),
                            st.tuples(st.integers(1, 3), st.integers(1, 3))))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    if draw(st.booleans()):
        x = rng.integers(-2, 3, size=(N, H, W, C)).astype(dtype)
    else:
        x = rng.standard_normal((N, H, W, C)).astype(dtype)
    if draw(st.booleans()):
        x = noncontig(x)
    return x, kernel_size, stride, padding, rng


@given(cases())
def test_max_pool_forward_matches_reference(case):
    x, k, s, p, _ = case
    y, argmax = K.max_pool2d_forward(x, k, s, p)
    y_ref, argmax_ref = R.max_pool2d_forward(x, k, s, p)
    assert y.dtype == x.dtype and argmax.dtype == np.int64
    np.testing.assert_array_equal(y, y_ref)
    np.testing.assert_array_equal(argmax, argmax_ref)


@given(cases())
def test_max_pool_backward_matches_reference(case):
    x, k, s, p, rng = case
    y, argmax = K.max_pool2d_forward(x, k, s, p)
    gy = rng.standard_normal(y.shape).astype(x.dtype)
    gx = K.max_pool2d_backward(gy, argmax, x.shape)
    assert gx.dtype == x.dtype and gx.shape == x.shape
    np.testing.assert_allclose(gx, R.max_pool2d_backward(gy, argmax, x.shape), **tol(x.dtype))


@given(cases(), st.booleans())
def test_avg_pool_forward_matches_reference(case, count_include_pad):
    x, k, s, p, _ = case
    y = K.avg_pool2d_forward(x, k, s, p, count_include_pad)
    assert y.dtype == x.dtype
    np.testing.assert_allclose(y, R.avg_pool2d_forward(x, k, s, p, count_include_pad),
                               **tol(x.dtype))


@given(cases(), st.booleans())
def test_avg_pool_backward_matches_reference(case, count_include_pad):
    x, k, s, p, rng = case
    y = R.avg_pool2d_forward(x, k, s, p, count_include_pad)
    gy = noncontig(rng.standard_normal(y.shape).astype(x.dtype))
    gx = K.avg_pool2d_backward(gy, x.shape, k, s, p, count_include_pad)
    assert gx.dtype == x.dtype and gx.shape == x.shape
    np.testing.assert_allclose(
        gx, R.avg_pool2d_backward(gy, x.shape, k, s, p, count_include_pad), **tol(x.dtype))


@given(cases(), st.booleans())
def test_avg_pool_backward_is_adjoint_of_forward(case, count_include_pad):
    """<avg_pool(x), gy> == <x, gx> (float64): the gradient belongs to this forward."""
    x, k, s, p, rng = case
    x = x.astype(np.float64)
    y = K.avg_pool2d_forward(x, k, s, p, count_include_pad)
    gy = rng.standard_normal(y.shape)
    gx = K.avg_pool2d_backward(gy, x.shape, k, s, p, count_include_pad)
    np.testing.assert_allclose(np.sum(x * gx), np.sum(y * gy), rtol=1e-10, atol=1e-10)


@given(cases())
def test_global_avg_pool_matches_reference(case):
    x, _, _, _, rng = case
    y = K.global_avg_pool2d_forward(x)
    assert y.dtype == x.dtype and y.shape == (x.shape[0], x.shape[3])
    np.testing.assert_allclose(y, R.global_avg_pool2d_forward(x), **tol(x.dtype))
    np.testing.assert_allclose(y, x.astype(np.float64).mean(axis=(1, 2)), **tol(x.dtype))
    gy = rng.standard_normal(y.shape).astype(x.dtype)
    gx = K.global_avg_pool2d_backward(gy, x.shape)
    assert gx.dtype == x.dtype and gx.shape == x.shape
    np.testing.assert_allclose(gx, R.global_avg_pool2d_backward(gy, x.shape), **tol(x.dtype))


# ---------------------------------------------------------------- pinned cases


def test_max_pool_ties_pick_the_first_maximum():
    x = np.array([[1.0, 5.0, 5.0], [5.0, 2.0, 5.0]])[None, :, :, None]
    y, argmax = K.max_pool2d_forward(x, (2, 3))
    assert y[0, 0, 0, 0] == 5.0
    assert argmax[0, 0, 0, 0] == 1  # (ih, iw) = (0, 1), the first 5 in row-major order


def test_max_pool_nan_propagates():
    x = np.arange(16, dtype=np.float32).reshape(1, 4, 4, 1)
    x[0, 1, 0, 0] = np.nan  # top-left window, not its first pixel
    x[0, 2, 2, 0] = np.nan  # bottom-right window, its first pixel (larger numbers follow)
    x[0, 3, 3, 0] = np.nan  # ... and a second NaN: the first one is kept
    y, argmax = K.max_pool2d_forward(x, 2)
    assert np.isnan(y[0, 0, 0, 0]) and argmax[0, 0, 0, 0] == 1 * 4 + 0
    assert np.isnan(y[0, 1, 1, 0]) and argmax[0, 1, 1, 0] == 2 * 4 + 2
    assert y[0, 0, 1, 0] == 7.0 and y[0, 1, 0, 0] == 13.0


def test_max_pool_padding_is_minus_infinity():
    x = -1.0 - np.arange(9.0).reshape(1, 3, 3, 1)  # all negative: zero padding would win
    y, argmax = K.max_pool2d_forward(x, 3, stride=1, padding=1)
    assert y[0, 0, 0, 0] == -1.0 and argmax[0, 0, 0, 0] == 0
    assert y[0, 2, 2, 0] == -5.0 and argmax[0, 2, 2, 0] == 4
    assert np.all(y < 0)


def test_max_pool_all_minus_infinity_window_points_at_a_real_pixel():
    x = np.full((1, 3, 3, 2), -np.inf)
    y, argmax = K.max_pool2d_forward(x, 3, stride=2, padding=1)
    assert np.all(y == -np.inf)
    # first real pixel of each clipped window: (0, 0) and (1, 1)
    assert argmax[0, 0, 0, 0] == 0 and argmax[0, 1, 1, 0] == 1 * 3 + 1
    gx = K.max_pool2d_backward(np.ones_like(y), argmax, x.shape)
    assert gx.sum() == y.size


def test_avg_pool_count_include_pad_by_hand():
    x = np.ones((1, 2, 2, 1))
    with_pad = K.avg_pool2d_forward(x, 3, stride=1, padding=1, count_include_pad=True)
    without = K.avg_pool2d_forward(x, 3, stride=1, padding=1, count_include_pad=False)
    np.testing.assert_allclose(with_pad[0, :, :, 0], np.full((2, 2), 4 / 9))
    np.testing.assert_allclose(without[0, :, :, 0], np.ones((2, 2)))
    gx = K.avg_pool2d_backward(np.ones((1, 2, 2, 1)), x.shape, 3, 1, 1, False)
    np.testing.assert_allclose(gx, np.ones_like(x))  # every window holds the 4 pixels, 1/4 each
    gx = K.avg_pool2d_backward(np.ones((1, 2, 2, 1)), x.shape, 3, 1, 1, True)
    np.testing.assert_allclose(gx, np.full_like(x, 4 / 9))


def test_avg_pool_count_include_pad_false_divides_by_real_pixels_only():
    x = np.arange(1.0, 13.0).reshape(1, 3, 4, 1)
    y = K.avg_pool2d_forward(x, (2, 3), stride=(2, 2), padding=(1, 1), count_include_pad=False)
    # first window: rows -1..0, cols -1..1 -> real pixels x[0, 0:2] = 1, 2
    assert y[0, 0, 0, 0] == 1.5
    y = K.avg_pool2d_forward(x, (2, 3), stride=(2, 2), padding=(1, 1), count_include_pad=True)
    assert y[0, 0, 0, 0] == 3.0 / 6.0


PINNED = [
    # (N, H, W, C, kernel_size, stride, padding)
    (1, 1, 1, 1, 1, None, 0),         # 1x1 input
    (2, 1, 1, 3, 3, 1, 1),            # 1x1 input, padding half the kernel
    (1, 3, 4, 2, (5, 6), 1, (1, 1)),  # kernel as large as the padded input
    (1, 4, 5, 2, (4, 5), None, 0),    # kernel as large as the input
    (2, 7, 5, 3, 3, 1, 1),            # padding of half the kernel: same size
    (1, 6, 9, 1, (2, 4), (2, 3), (1, 2)),  # batch 1, one channel, H != W, KH != KW
    (3, 8, 8, 4, 2, None, 0),         # default stride = kernel
]


@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("N,H,W,C,k,s,p", PINNED)
def test_pinned_cases(dtype, N, H, W, C, k, s, p):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((N, H, W, C)).astype(dtype)
    y, argmax = K.max_pool2d_forward(x, k, s, p)
    y_ref, argmax_ref = R.max_pool2d_forward(x, k, s, p)
    np.testing.assert_array_equal(y, y_ref)
    np.testing.assert_array_equal(argmax, argmax_ref)
    gy = rng.standard_normal(y.shape).astype(dtype)
    np.testing.assert_allclose(K.max_pool2d_backward(gy, argmax, x.shape),
                               R.max_pool2d_backward(gy, argmax, x.shape), **tol(dtype))
    for cip in (True, False):
        np.testing.assert_allclose(K.avg_pool2d_forward(x, k, s, p, cip),
                                   R.avg_pool2d_forward(x, k, s, p, cip), **tol(dtype))
        np.testing.assert_allclose(K.avg_pool2d_backward(gy, x.shape, k, s, p, cip),
                                   R.avg_pool2d_backward(gy, x.shape, k, s, p, cip), **tol(dtype))


def test_default_stride_is_kernel_size():
    x = np.random.default_rng(1).standard_normal((1, 6, 6, 2))
    y, _ = K.max_pool2d_forward(x, (2, 3))
    assert y.shape == (1, 3, 2, 2)
    np.testing.assert_array_equal(y, K.max_pool2d_forward(x, (2, 3), stride=(2, 3))[0])


def test_stride_larger_than_kernel_skipped_pixels_get_zero_gradient():
    rng = np.random.default_rng(2)
    x = rng.standard_normal((2, 7, 8, 3))
    read = np.zeros((7, 8), dtype=bool)
    read[0::3, :] = True
    read[:, 2::3] = False
    read[:, 1::3] = False  # kernel (1, 1), stride 3: rows 0, 3, 6 and columns 0, 3, 6
    y, argmax = K.max_pool2d_forward(x, 1, stride=3)
    gy = rng.standard_normal(y.shape)
    gx = K.max_pool2d_backward(gy, argmax, x.shape)
    assert np.all(gx[:, ~read] == 0.0) and np.all(gx[:, read] == gy.reshape(2, 9, 3))
    gx = K.avg_pool2d_backward(gy, x.shape, 1, 3)
    assert np.all(gx[:, ~read] == 0.0) and np.all(gx[:, read] == gy.reshape(2, 9, 3))


def test_max_pool_backward_sums_overlapping_windows():
    x = np.array([[0.0, 0.0, 0.0], [0.0, 9.0, 0.0], [0.0, 0.0, 0.0]])[None, :, :, None]
    y, argmax = K.max_pool2d_forward(x, 2, stride=1)
    assert np.all(argmax == 4)
    gx = K.max_pool2d_backward(np.arange(1.0, 5.0).reshape(1, 2, 2, 1), argmax, x.shape)
    assert gx[0, 1, 1, 0] == 10.0 and gx.sum() == 10.0


def test_non_contiguous_views():
    rng = np.random.default_rng(3)
    x = rng.standard_normal((2, 6, 5, 4)).transpose(0, 2, 1, 3)  # (2, 5, 6, 4), a view
    assert not x.flags.c_contiguous
    y, argmax = K.max_pool2d_forward(x, 3, 2, 1)
    np.testing.assert_array_equal(y, R.max_pool2d_forward(x, 3, 2, 1)[0])
    gy = noncontig(rng.standard_normal(y.shape))
    am = noncontig(argmax)
    assert not (gy.flags.c_contiguous or am.flags.c_contiguous)
    np.testing.assert_allclose(K.max_pool2d_backward(gy, am, x.shape),
                               R.max_pool2d_backward(gy, argmax, x.shape), rtol=1e-12)
    np.testing.assert_allclose(K.avg_pool2d_forward(x, 3, 2, 1),
                               R.avg_pool2d_forward(x, 3, 2, 1), rtol=1e-12)
    np.testing.assert_allclose(K.avg_pool2d_backward(gy, x.shape, 3, 2, 1),
                               R.avg_pool2d_backward(gy, x.shape, 3, 2, 1), rtol=1e-12)
    np.testing.assert_allclose(K.global_avg_pool2d_forward(x),
                               R.global_avg_pool2d_forward(x), rtol=1e-12)
    g = rng.standard_normal((4, 2)).T
    np.testing.assert_allclose(K.global_avg_pool2d_backward(g, x.shape),
                               R.global_avg_pool2d_backward(g, x.shape), rtol=1e-12)


@pytest.fixture
def restore_threads():
    old = numba.get_num_threads()
    yield
    numba.set_num_threads(old)


def _all_outputs(x, gy, g):
    y, argmax = K.max_pool2d_forward(x, 3, 2, 1)
    return (y, argmax, K.max_pool2d_backward(gy, argmax, x.shape),
            K.avg_pool2d_forward(x, 3, 2, 1, False),
            K.avg_pool2d_backward(gy, x.shape, 3, 2, 1, False),
            K.global_avg_pool2d_forward(x), K.global_avg_pool2d_backward(g, x.shape))


def test_thread_count_does_not_change_results(restore_threads):
    if numba.config.NUMBA_NUM_THREADS < 2:
        pytest.skip("needs 2 Numba threads")
    rng = np.random.default_rng(4)
    x = rng.standard_normal((3, 15, 13, 37)).astype(np.float32)
    gy = rng.standard_normal((3, 8, 7, 37)).astype(np.float32)
    g = rng.standard_normal((3, 37)).astype(np.float32)
    numba.set_num_threads(1)
    one = _all_outputs(x, gy, g)
    numba.set_num_threads(2)
    two = _all_outputs(x, gy, g)
    again = _all_outputs(x, gy, g)
    for a, b, c in zip(one, two, again):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-6)
        np.testing.assert_array_equal(b, c)


# ------------------------------------------------------------------ bad input


X = np.zeros((1, 5, 5, 2))
GY = np.zeros((1, 2, 2, 2))
AM = np.zeros((1, 2, 2, 2), dtype=np.int64)


@pytest.mark.parametrize("call,exc,match", [
    (lambda: K.max_pool2d_forward(X[0], 2), ValueError, r"x must be 4-D.*3-D"),
    (lambda: K.avg_pool2d_forward(X.astype(np.int32), 2), TypeError,
     r"x must have dtype float32 or float64, got int32"),
    (lambda: K.max_pool2d_forward(X, 2, padding=-1), ValueError, r"padding must be >= 0"),
    (lambda: K.max_pool2d_forward(X, 2, stride=0), ValueError, r"stride must be >= 1"),
    (lambda: K.avg_pool2d_forward(X, (2, 0)), ValueError, r"kernel_size must be >= 1"),
    (lambda: K.max_pool2d_forward(X, 3, padding=2), ValueError,
     r"padding must be at most half the kernel size.*\(1, 1\).*\(2, 2\)"),
    (lambda: K.avg_pool2d_forward(X, (4, 2), padding=(1, 2)), ValueError,
     r"padding must be at most half"),
    (lambda: K.max_pool2d_forward(X, 8, padding=1), ValueError,
     r"kernel_size \(height\).*8.*7"),
    (lambda: K.avg_pool2d_forward(X, 2, count_include_pad=1), TypeError,
     r"count_include_pad must be a bool"),
    (lambda: K.max_pool2d_backward(GY, AM + 25, X.shape), ValueError,
     r"argmax must hold flat indices .*\[0, 25\)"),
    (lambda: K.max_pool2d_backward(GY, AM - 1, X.shape), ValueError, r"argmax must hold"),
    (lambda: K.max_pool2d_backward(GY, AM.astype(float), X.shape), TypeError,
     r"argmax must have an integer dtype"),
    (lambda: K.max_pool2d_backward(GY, AM[:, :1], X.shape), ValueError,
     r"argmax must have the shape of gy"),
    (lambda: K.max_pool2d_backward(GY, AM, (1, 5, 5, 3)), ValueError, r"expected N=1 and C=3"),
    (lambda: K.avg_pool2d_backward(GY, X.shape, 3), ValueError,
     r"gy must have the output shape .*\(1, 1, 1, 2\).*\(1, 2, 2, 2\)"),
    (lambda: K.avg_pool2d_backward(GY, (1, 5, 5), 2), ValueError, r"x_shape must be 4 ints"),
    (lambda: K.global_avg_pool2d_forward(X[0]), ValueError, r"x must be 4-D"),
    (lambda: K.global_avg_pool2d_backward(np.zeros((1, 3)), X.shape), ValueError,
     r"gy must have shape \(N, C\) = \(1, 2\), got \(1, 3\)"),
])
def test_bad_input_raises_informative_error(call, exc, match):
    with pytest.raises(exc, match=match):
        call()

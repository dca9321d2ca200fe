"""BatchNorm kernels against their NumPy twins, by-hand statistics and finite differences."""

import numba
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from tinycnn.kernels import batchnorm as K
from tinycnn.kernels import reference as R

FLOATS = [np.float32, np.float64]


def tol(dtype):
    return dict(rtol=1e-4, atol=1e-4) if dtype == np.float32 else dict(rtol=1e-9, atol=1e-9)


def noncontig(a):
    """A copy of ``a`` as a view whose last axis has stride 2."""
    big = np.zeros(a.shape[:-1] + (2 * a.shape[-1],), dtype=a.dtype)
    big[..., ::2] = a
    return big[..., ::2]


def exact_mean(x):
    """The batch mean in float64.  ``batch_norm_backward`` uses the exact batch mean of
    ``x`` (its ``mean`` argument only centres the sums), so the reference gets it too
    rather than the float32-rounded one, which matters for few values with an offset."""
    return x.astype(np.float64).mean(axis=(0, 1, 2))


@st.composite
def cases(draw):
    """``(x, weight, bias, gy, eps)`` with at least two values per channel."""
    dtype = draw(st.sampled_from(FLOATS))
    N, H, W = draw(st.integers(1, 3)), draw(st.integers(1, 9)), draw(st.integers(1, 9))
    if N * H * W == 1:
        W = 2
    C = draw(st.integers(1, 6))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    loc = draw(st.sampled_from([0.0, 3.0, -50.0]))
    scale = draw(st.sampled_from([1.0, 0.1, 10.0]))
    x = (loc + scale * rng.standard_normal((N, H, W, C))).astype(dtype)
    weight = rng.standard_normal(C).astype(dtype) if draw(st.booleans()) else None
    bias = rng.standard_normal(C).astype(dtype) if draw(st.booleans()) else None
    gy = rng.standard_normal((N, H, W, C)).astype(dtype)
    if draw(st.booleans()):
        x = noncontig(x)
    eps = draw(st.sampled_from([1e-5, 1e-3, 0.1]))
    return x, weight, bias, gy, eps


@given(cases())
def test_forward_train_matches_reference(case):
    x, weight, bias, _, eps = case
    out = K.batch_norm_forward_train(x, weight, bias, eps)
    ref = R.batch_norm_forward_train(x, weight, bias, eps)
    for a, b in zip(out, ref):
        assert a.dtype == x.dtype and a.shape == b.shape
        np.testing.assert_allclose(a, b, **tol(x.dtype))


@given(cases())
def test_statistics_equal_numpy_mean_and_var(case):
    x, weight, bias, _, eps = case
    _, mean, var, invstd = K.batch_norm_forward_train(x, weight, bias, eps)
    x64 = x.astype(np.float64)
    rtol = 1e-6 if x.dtype == np.float32 else 1e-12
    np.testing.assert_allclose(mean, np.mean(x64, axis=(0, 1, 2)), rtol=rtol, atol=rtol * 50)
    np.testing.assert_allclose(var, np.var(x64, axis=(0, 1, 2)), rtol=rtol, atol=1e-300)
    np.testing.assert_allclose(invstd, 1 / np.sqrt(np.var(x64, axis=(0, 1, 2)) + eps), rtol=rtol)


@given(cases())
def test_forward_eval_matches_reference(case):
    x, weight, bias, _, eps = case
    C = x.shape[3]
    rng = np.random.default_rng(C)
    rm = rng.standard_normal(C).astype(x.dtype)
    rv = rng.uniform(0.1, 3.0, C).astype(x.dtype)
    y = K.batch_norm_forward_eval(x, rm, rv, weight, bias, eps)
    assert y.dtype == x.dtype and y.shape == x.shape
    np.testing.assert_allclose(y, R.batch_norm_forward_eval(x, rm, rv, weight, bias, eps),
                               **tol(x.dtype))


@given(cases())
def test_backward_matches_reference(case):
    x, weight, bias, gy, eps = case
    _, mean, _, invstd = K.batch_norm_forward_train(x, weight, bias, eps)
    out = K.batch_norm_backward(gy, x, mean, invstd, weight)
    ref = R.batch_norm_backward(gy, x, exact_mean(x), invstd, weight)
    for a, b in zip(out, ref):
        assert a.dtype == x.dtype and a.shape == b.shape
        np.testing.assert_allclose(a, b, **tol(x.dtype))


def test_backward_matches_finite_differences():
    """Gradients of L = sum(gy * y(x, weight, bias)) in training mode, float64."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 2, 3, 2))
    weight, bias = rng.standard_normal(2), rng.standard_normal(2)
    gy = rng.standard_normal(x.shape)
    eps, h = 1e-3, 1e-6

    def loss(x, weight, bias):
        return np.sum(gy * K.batch_norm_forward_train(x, weight, bias, eps)[0])

    def numeric(arr):
        g = np.zeros_like(arr)
        for i in np.ndindex(arr.shape):
            old = arr[i]
            arr[i] = old + h
            up = loss(x, weight, bias)
            arr[i] = old - h
            down = loss(x, weight, bias)
            arr[i] = old
            g[i] = (up - down) / (2 * h)
        return g

    _, mean, _, invstd = K.batch_norm_forward_train(x, weight, bias, eps)
    gx, gweight, gbias = K.batch_norm_backward(gy, x, mean, invstd, weight)
    np.testing.assert_allclose(gx, numeric(x), rtol=1e-6, atol=1e-8)
    np.testing.assert_allclose(gweight, numeric(weight), rtol=1e-6, atol=1e-8)
    np.testing.assert_allclose(gbias, numeric(bias), rtol=1e-6, atol=1e-8)


def test_none_weight_and_bias_mean_one_and_zero():
    rng = np.random.default_rng(1)
    x = rng.standard_normal((2, 3, 3, 4)).astype(np.float32)
    gy = rng.standard_normal(x.shape).astype(np.float32)
    ones, zeros = np.ones(4, np.float32), np.zeros(4, np.float32)
    for a, b in zip(K.batch_norm_forward_train(x, None, None, 1e-5),
                    K.batch_norm_forward_train(x, ones, zeros, 1e-5)):
        np.testing.assert_array_equal(a, b)
    _, mean, var, invstd = K.batch_norm_forward_train(x, None, None, 1e-5)
    for a, b in zip(K.batch_norm_backward(gy, x, mean, invstd, None),
                    K.batch_norm_backward(gy, x, mean, invstd, ones)):
        assert a is not None
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(K.batch_norm_forward_eval(x, mean, var, None, None, 1e-5),
                                  K.batch_norm_forward_eval(x, mean, var, ones, zeros, 1e-5))


def test_train_output_is_normalised():
    x = np.random.default_rng(2).standard_normal((3, 4, 5, 3)) * 7 + 2
    y = K.batch_norm_forward_train(x, None, None, 1e-300)[0]
    np.testing.assert_allclose(y.mean(axis=(0, 1, 2)), 0, atol=1e-12)
    np.testing.assert_allclose(y.var(axis=(0, 1, 2)), 1, rtol=1e-12)


def test_float32_large_offset_keeps_accurate_statistics():
    rng = np.random.default_rng(3)
    x = (1e4 + 1e-2 * rng.standard_normal((4, 8, 8, 3))).astype(np.float32)
    x64 = x.astype(np.float64)  # the exact values the kernel sees
    true_mean, true_var = x64.mean(axis=(0, 1, 2)), x64.var(axis=(0, 1, 2))
    y, mean, var, invstd = K.batch_norm_forward_train(x, None, None, 1e-300)
    np.testing.assert_allclose(var, true_var, rtol=1e-5)
    np.testing.assert_allclose(mean, true_mean, rtol=1e-7)
    np.testing.assert_allclose(y, (x64 - true_mean) / np.sqrt(true_var), atol=1e-4)
    gy = rng.standard_normal(x.shape).astype(np.float32)
    gx, gweight, gbias = K.batch_norm_backward(gy, x, mean, invstd, None)
    ref = R.batch_norm_backward(gy.astype(np.float64), x64, true_mean, 1 / np.sqrt(true_var),
                                None)
    np.testing.assert_allclose(gx, ref[0], rtol=1e-4, atol=1e-4 * np.abs(ref[0]).max())
    np.testing.assert_allclose(gweight, ref[1], rtol=1e-4, atol=1e-3)


def test_update_running_follows_pytorch_rule_by_hand():
    running_mean = np.array([1.0, 2.0])
    running_var = np.array([3.0, 4.0])
    mean, var = np.array([5.0, 6.0]), np.array([2.0, 8.0])
    K.batch_norm_update_running(running_mean, running_var, mean, var, 4, 0.1)
    # (1 - 0.1) * old + 0.1 * new, the variance unbiased: var * 4 / 3
    np.testing.assert_allclose(running_mean, [0.9 * 1 + 0.1 * 5, 0.9 * 2 + 0.1 * 6], rtol=1e-15)
    np.testing.assert_allclose(running_var, [0.9 * 3 + 0.1 * 2 * 4 / 3, 0.9 * 4 + 0.1 * 8 * 4 / 3],
                               rtol=1e-15)


def test_update_running_float32_in_place_matches_reference():
    rng = np.random.default_rng(4)
    x = rng.standard_normal((2, 3, 3, 5)).astype(np.float32)
    _, mean, var, _ = K.batch_norm_forward_train(x, None, None, 1e-5)
    rm, rv = np.zeros(5, np.float32), np.ones(5, np.float32)
    rm_ref, rv_ref = rm.copy(), rv.copy()
    rm_id, rv_id = id(rm), id(rv)
    K.batch_norm_update_running(rm, rv, mean, var, 18, 0.3)
    R.batch_norm_update_running(rm_ref, rv_ref, mean, var, 18, 0.3)
    assert id(rm) == rm_id and id(rv) == rv_id and rm.dtype == np.float32
    np.testing.assert_allclose(rm, rm_ref, rtol=1e-6)
    np.testing.assert_allclose(rv, rv_ref, rtol=1e-6)
    np.testing.assert_allclose(rv, 0.7 + 0.3 * np.var(x.astype(np.float64), axis=(0, 1, 2),
                                                      ddof=1), rtol=1e-5)


@pytest.mark.parametrize("shape", [(1, 1, 1, 1), (1, 1, 2, 1), (1, 5, 1, 6), (2, 1, 1, 3),
                                   (1, 4, 7, 2)])
@pytest.mark.parametrize("dtype", FLOATS)
def test_pinned_shapes(shape, dtype):
    """Single values, batch 1, one channel, H != W."""
    rng = np.random.default_rng(5)
    x = rng.standard_normal(shape).astype(dtype)
    C = shape[3]
    weight, bias = rng.standard_normal(C).astype(dtype), rng.standard_normal(C).astype(dtype)
    out = K.batch_norm_forward_train(x, weight, bias, 1e-3)
    for a, b in zip(out, R.batch_norm_forward_train(x, weight, bias, 1e-3)):
        np.testing.assert_allclose(a, b, **tol(dtype))
    gy = rng.standard_normal(shape).astype(dtype)
    for a, b in zip(K.batch_norm_backward(gy, x, out[1], out[3], weight),
                    R.batch_norm_backward(gy, x, exact_mean(x), out[3], weight)):
        np.testing.assert_allclose(a, b, **tol(dtype))
    if x.size == C:  # one value per channel: y is the bias, gx is zero
        np.testing.assert_allclose(out[0].reshape(C), bias, **tol(dtype))


def test_non_contiguous_views():
    rng = np.random.default_rng(6)
    x = rng.standard_normal((2, 6, 5, 3)).transpose(0, 2, 1, 3)
    gy = noncontig(rng.standard_normal(x.shape))
    weight = rng.standard_normal(6)[::2]
    assert not (x.flags.c_contiguous or gy.flags.c_contiguous or weight.flags.c_contiguous)
    out = K.batch_norm_forward_train(x, weight, None, 1e-5)
    for a, b in zip(out, R.batch_norm_forward_train(x, weight, None, 1e-5)):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-12)
    for a, b in zip(K.batch_norm_backward(gy, x, out[1], out[3], weight),
                    R.batch_norm_backward(gy, x, out[1], out[3], weight)):
        np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(K.batch_norm_forward_eval(x, out[1], out[2], weight, None, 1e-5),
                               R.batch_norm_forward_eval(x, out[1], out[2], weight, None, 1e-5),
                               rtol=1e-12, atol=1e-12)


@pytest.fixture
def restore_threads():
    old = numba.get_num_threads()
    yield
    numba.set_num_threads(old)


def _all_outputs(x, gy, weight, bias):
    y, mean, var, invstd = K.batch_norm_forward_train(x, weight, bias, 1e-5)
    return (y, mean, var, invstd, *K.batch_norm_backward(gy, x, mean, invstd, weight),
            K.batch_norm_forward_eval(x, mean, var, weight, bias, 1e-5))


def test_thread_count_does_not_change_results(restore_threads):
    if numba.config.NUMBA_NUM_THREADS < 2:
        pytest.skip("needs 2 Numba threads")
    rng = np.random.default_rng(7)
    x = (rng.standard_normal((4, 9, 11, 21)) + 3).astype(np.float32)
    gy = rng.standard_normal(x.shape).astype(np.float32)
    weight, bias = rng.standard_normal(21).astype(np.float32), np.ones(21, np.float32)
    numba.set_num_threads(1)
    one = _all_outputs(x, gy, weight, bias)
    numba.set_num_threads(2)
    two = _all_outputs(x, gy, weight, bias)
    again = _all_outputs(x, gy, weight, bias)
    for a, b, c in zip(one, two, again):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
        np.testing.assert_array_equal(b, c)


# ------------------------------------------------------------------ bad input


X = np.zeros((2, 3, 3, 4))
V = np.ones(4)


@pytest.mark.parametrize("call,exc,match", [
    (lambda: K.batch_norm_forward_train(X[0], V, V, 1e-5), ValueError, r"x must be 4-D.*3-D"),
    (lambda: K.batch_norm_forward_train(X.astype(np.int64), None, None, 1e-5), TypeError,
     r"x must have dtype float32 or float64, got int64"),
    (lambda: K.batch_norm_forward_train(X, np.ones(3), V, 1e-5), ValueError,
     r"weight must have shape \(C,\) = \(4,\).*got \(3,\)"),
    (lambda: K.batch_norm_forward_train(X, V, np.ones(5), 1e-5), ValueError,
     r"bias must have shape \(C,\) = \(4,\)"),
    (lambda: K.batch_norm_forward_train(X, V.astype(np.float32), V, 1e-5), TypeError,
     r"weight must have the dtype of x \(float64\), got float32"),
    (lambda: K.batch_norm_forward_train(X, list(V), V, 1e-5), TypeError,
     r"weight must be a numpy.ndarray or None"),
    (lambda: K.batch_norm_forward_train(X, V, V, -1.0), ValueError, r"eps must be a positive finite number, got -1.0"),
    (lambda: K.batch_norm_forward_train(X, V, V, "1e-5"), TypeError, r"eps must be a positive finite number, got '1e-5' \(str\)"),
    (lambda: K.batch_norm_forward_train(X, V, V, 0.0), ValueError, r"eps must be a positive finite number, got 0.0"),
    (lambda: K.batch_norm_forward_eval(X, V, V, V, V, float("inf")), ValueError, r"eps must be a positive finite"),
    (lambda: K.batch_norm_forward_train(X[:0], V, V, 1e-5), ValueError,
     r"at least one value per channel"),
    (lambda: K.batch_norm_forward_eval(X, np.ones(3), V, V, V, 1e-5), ValueError,
     r"running_mean must have shape"),
    (lambda: K.batch_norm_backward(X[:1], X, V, V, V), ValueError,
     r"gy must have the shape of x"),
    (lambda: K.batch_norm_backward(X.astype(np.float32), X, V, V, V), TypeError,
     r"gy must have the dtype of x"),
    (lambda: K.batch_norm_backward(X, X, V, np.ones((4, 1)), V), ValueError,
     r"invstd must have shape"),
    (lambda: K.batch_norm_update_running(V.copy(), V.copy(), V, V, 1, 0.1), ValueError,
     r"n must be >= 2"),
    (lambda: K.batch_norm_update_running(V.copy(), V.copy(), V, V, 4.0, 0.1), TypeError,
     r"n must be an int"),
    (lambda: K.batch_norm_update_running(V.copy(), V.copy(), V, V, 4, 1.5), ValueError,
     r"momentum must be a number in \[0, 1\], got 1.5"),
    (lambda: K.batch_norm_update_running(V.copy(), np.ones(3), V, V, 4, 0.1), ValueError,
     r"running_var must have shape \(C,\) = \(4,\)"),
    (lambda: K.batch_norm_update_running(V.copy(), V.copy(), V.astype(np.float32), V, 4, 0.1),
     TypeError, r"mean must have the dtype"),
])
def test_bad_input_raises_informative_error(call, exc, match):
    with pytest.raises(exc, match=match):
        call()

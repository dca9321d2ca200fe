"""Winograd F(2x2, 3x3) convolution (tinycnn.kernels.winograd) and its routing in conv.

The kernels are compared with the NumPy reference convolution on drawn shapes
(odd sizes, asymmetric padding 0..2, one-pixel images), each transform is
checked to be the adjoint of its partner, and the convolution kernels are
checked to take the Winograd route exactly when they should.
"""

import numba
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from tinycnn import Tensor, functional as F
from tinycnn.gradcheck import gradcheck
from tinycnn.kernels import conv, winograd as wg
from tinycnn.kernels import reference as ref

TOL = {np.float32: dict(rtol=1e-4, atol=1e-4), np.float64: dict(rtol=1e-11, atol=1e-11)}


@st.composite
def cases(draw, max_c=6, max_hw=9):
    """A 3x3 stride-1 convolution with paddings 0..2 per side."""
    dtype = draw(st.sampled_from([np.float32, np.float64]))
    pads = tuple(draw(st.integers(0, 2)) for _ in range(4))
    PT, PB, PL, PR = pads
    H = draw(st.integers(max(1, 3 - PT - PB), max_hw))
    W = draw(st.integers(max(1, 3 - PL - PR), max_hw))
    N = draw(st.integers(1, 3))
    C, K = draw(st.integers(1, max_c)), draw(st.integers(1, max_c))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    x = rng.standard_normal((N, H, W, C)).astype(dtype)
    w = rng.standard_normal((3, 3, C, K)).astype(dtype)
    b = rng.standard_normal(K).astype(dtype) if draw(st.booleans()) else None
    gy = rng.standard_normal((N, H + PT + PB - 2, W + PL + PR - 2, K)).astype(dtype)
    return x, w, b, pads, gy


class drivers:
    """Force one of the two ways of spreading the work: ``per_core`` (small
    chunks, one thread each) or ``shared`` (parallel transforms, BLAS threads)."""

    def __init__(self, per_core):
        self.limit = 2**62 if per_core else -1

    def __enter__(self):
        self.old, wg.U_PER_CORE_MAX = wg.U_PER_CORE_MAX, self.limit

    def __exit__(self, *exc):
        wg.U_PER_CORE_MAX = self.old


@given(cases(), st.booleans(), st.sampled_from([None, 1, 2000]), st.booleans())
def test_forward_matches_reference(case, relu, budget, per_core):
    x, w, b, pads, _ = case
    want = ref.conv2d_forward(x, w, b, padding=pads)
    if relu:
        want = np.maximum(want, 0)
    with drivers(per_core):
        got = wg.winograd_forward(x, w, pads, b, relu=relu, budget=budget)
    assert got.shape == want.shape and got.dtype == x.dtype
    np.testing.assert_allclose(got, want, **TOL[x.dtype.type])


@given(cases(), st.sampled_from([None, 1, 2000]), st.booleans())
def test_backward_weight_matches_reference(case, budget, per_core):
    x, w, _, pads, gy = case
    want = ref.conv2d_backward_weight(x, gy, w.shape, padding=pads)
    with drivers(per_core):
        got = wg.winograd_backward_weight(x, gy, pads, budget=budget)
    assert got.shape == w.shape and got.dtype == x.dtype
    np.testing.assert_allclose(got, want, **TOL[x.dtype.type])


@given(cases(), st.sampled_from([None, 1, 2000]), st.booleans())
def test_flipped_forward_is_the_input_gradient(case, budget, per_core):
    """``flip=True`` convolves with the spatially flipped, channel-swapped kernel
    (padding ``2 - P``): the gradient with respect to the input."""
    x, w, _, pads, gy = case
    want = ref.conv2d_backward_input(gy, w, x.shape, padding=pads)
    flipped = tuple(2 - p for p in pads)
    with drivers(per_core):
        got = wg.winograd_forward(gy, w, flipped, flip=True, budget=budget)
    assert got.shape == x.shape
    np.testing.assert_allclose(got, want, **TOL[x.dtype.type])


def _dot(a, b):
    return float(np.vdot(a.astype(np.float64), b.astype(np.float64)))


@given(st.integers(1, 5), st.integers(1, 5), st.integers(0, 2**32 - 1))
def test_weight_transform_adjoint(C, K, seed):
    """<U(w), dU> == <w, U*(dU)>: the weight gradient's last step is the adjoint."""
    rng = np.random.default_rng(seed)
    w = rng.standard_normal((3, 3, C, K))
    du = rng.standard_normal((16, C, K))
    assert np.isclose(_dot(wg.weight_transform(w), du), _dot(w, wg.weight_transform_adjoint(du)),
                      rtol=1e-12, atol=1e-12)


@given(cases())
def test_output_transform_adjoint(case):
    """<out(M), gy> == <M, out*(gy)> with the odd-size edge tiles included."""
    x, _, _, pads, gy = case
    N, OH, OW, K = gy.shape
    TH, TW = wg.tile_grid(OH, OW)
    rng = np.random.default_rng(1)
    M = rng.standard_normal((16, N * TH * TW, K)).astype(x.dtype)
    y = np.empty_like(gy)
    wg._output_transform(M, y, 0, N * TH, TH, TW, np.zeros(K, x.dtype), False)
    Z = np.empty_like(M)
    wg._output_transform_adjoint(gy, Z, 0, N * TH, TH, TW)
    tol = 1e-10 if x.dtype == np.float64 else 1e-3
    assert np.isclose(_dot(y, gy), _dot(M, Z), rtol=tol, atol=tol)


def test_non_finite_inputs_never_vanish():
    """Every output that the direct convolution makes NaN or inf is non-finite
    here too, ReLU included (an inf may come out as NaN, and it spreads to the
    rest of its 2x2 output tile: the transforms subtract neighbours); outputs
    of tiles that read no non-finite pixel are unaffected."""
    rng = np.random.default_rng(6)
    x = rng.standard_normal((1, 8, 8, 8)).astype(np.float32)
    x[0, 1, 1, 0] = np.nan
    x[0, 6, 6, 1] = np.inf
    w = np.ones((3, 3, 8, 2), np.float32)
    with np.errstate(invalid="ignore"):
        y = wg.winograd_forward(x, w, (1, 1, 1, 1), relu=True)
    want = np.maximum(ref.conv2d_forward(x, w, padding=1), 0)
    assert not np.isfinite(y[~np.isfinite(want)]).any()
    clean = np.ones((8, 8), bool)  # tiles whose 4x4 input patch is all finite
    clean[0:4, 0:4] = False  # tiles (0..1, 0..1) read pixel (1, 1)
    clean[4:8, 4:8] = False  # tiles (2..3, 2..3) read pixel (6, 6)
    np.testing.assert_allclose(y[0][clean], want[0][clean], rtol=1e-5, atol=1e-5)


# -------------------------------------------------------------- routing in conv


@pytest.fixture
def spy(monkeypatch):
    """Count the Winograd calls made by the conv kernels."""
    calls = []
    for name in ("winograd_forward", "winograd_backward_weight"):
        real = getattr(wg, name)

        def watched(*args, _real=real, _name=name, **kwargs):
            calls.append(_name)
            return _real(*args, **kwargs)

        monkeypatch.setattr(wg, name, watched)
    return calls


def _conv_all(x, w, b, gy, **kwargs):
    return (conv.conv2d_forward(x, w, b, **kwargs),
            conv.conv2d_backward_input(gy, w, x.shape, **kwargs),
            conv.conv2d_backward_weight(x, gy, w.shape, **kwargs))


def _ref_all(x, w, b, gy, **kwargs):
    return (ref.conv2d_forward(x, w, b, **kwargs),
            ref.conv2d_backward_input(gy, w, x.shape, **kwargs),
            ref.conv2d_backward_weight(x, gy, w.shape, **kwargs))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("padding", [1, 0, 2, (2, 0), "same", (0, 1, 2, 1)])
def test_conv_kernels_take_the_winograd_route(spy, dtype, padding):
    rng = np.random.default_rng(7)
    x = rng.standard_normal((3, 7, 6, 8)).astype(dtype)
    w = rng.standard_normal((3, 3, 8, 12)).astype(dtype)
    b = rng.standard_normal(12).astype(dtype)
    y_ref = ref.conv2d_forward(x, w, b, padding=padding)
    gy = rng.standard_normal(y_ref.shape).astype(dtype)
    want = _ref_all(x, w, b, gy, padding=padding)
    got = _conv_all(x, w, b, gy, padding=padding)
    assert spy == ["winograd_forward", "winograd_forward", "winograd_backward_weight"]
    for g, r in zip(got, want):
        np.testing.assert_allclose(g, r, **TOL[dtype])


@pytest.mark.parametrize("winograd", [True, False])
@pytest.mark.parametrize("with_bias", [True, False])
def test_conv2d_forward_relu_fuses_bias_and_relu(winograd, with_bias):
    rng = np.random.default_rng(13)
    x = rng.standard_normal((2, 7, 6, 8)).astype(np.float32)
    x[0, 2, 2, 3] = np.nan
    w = rng.standard_normal((3, 3, 8, 5)).astype(np.float32)
    b = rng.standard_normal(5).astype(np.float32) if with_bias else None
    want = ref.conv2d_forward(x, w, b, padding=1)
    previous = conv.set_winograd(winograd)
    try:
        with np.errstate(invalid="ignore"):
            got = conv.conv2d_forward(x, w, b, padding=1, relu=True)
    finally:
        conv.set_winograd(previous)
    finite = np.isfinite(want)
    np.testing.assert_allclose(got[finite], np.maximum(want[finite], 0), rtol=1e-4, atol=1e-4)
    assert np.isnan(got[~finite]).all() and (got[np.isfinite(got)] >= 0).all()


@pytest.mark.parametrize("kwargs, C", [
    (dict(padding=1, stride=2), 8),        # stride 2
    (dict(padding=2, dilation=2), 8),      # dilated
    (dict(padding=3), 8),                  # padding beyond 2
    (dict(padding=1, groups=2), 8),        # grouped
    (dict(padding=1), 4),                  # too few input channels
])
def test_other_convolutions_keep_im2col(spy, kwargs, C):
    rng = np.random.default_rng(8)
    x = rng.standard_normal((2, 8, 8, C))
    groups = kwargs.get("groups", 1)
    w = rng.standard_normal((3, 3, C // groups, 8))
    gy = rng.standard_normal(ref.conv2d_forward(x, w, **kwargs).shape)
    got = _conv_all(x, w, None, gy, **kwargs)
    want = _ref_all(x, w, None, gy, **kwargs)
    if C >= 8:
        assert spy == []
    for g, r in zip(got, want):
        np.testing.assert_allclose(g, r, rtol=1e-11, atol=1e-11)


def test_set_winograd_switches_the_route(spy):
    rng = np.random.default_rng(9)
    x = rng.standard_normal((2, 6, 6, 8))
    w = rng.standard_normal((3, 3, 8, 8))
    gy = rng.standard_normal((2, 6, 6, 8))
    assert conv.winograd_enabled()
    assert conv.set_winograd(False) is True
    try:
        assert not conv.winograd_enabled()
        off = _conv_all(x, w, None, gy, padding=1)
        assert spy == []
    finally:
        assert conv.set_winograd(True) is False
    on = _conv_all(x, w, None, gy, padding=1)
    assert len(spy) == 3
    for a, c in zip(on, off):
        np.testing.assert_allclose(a, c, rtol=1e-11, atol=1e-11)
    for bad in (1, "yes", None):
        with pytest.raises(TypeError, match="enabled must be a bool"):
            conv.set_winograd(bad)


@pytest.mark.parametrize("per_core", [True, False])
def test_workspace_limit_caps_the_chunks(monkeypatch, per_core):
    rng = np.random.default_rng(10)
    x = rng.standard_normal((2, 9, 7, 8))
    w = rng.standard_normal((3, 3, 8, 8))
    gy = rng.standard_normal((2, 9, 7, 8))
    with drivers(per_core):
        whole = _conv_all(x, w, None, gy, padding=1)
    seen = []
    real = wg._chunk_rows

    def watched(N, TH, TW, per_tile, budget):
        rows, chunks = real(N, TH, TW, per_tile, budget)
        seen.append(rows * TW * per_tile)  # bytes of V + M (or V + Z) per chunk
        return rows, chunks

    monkeypatch.setattr(wg, "_chunk_rows", watched)
    old = conv.get_workspace_limit()
    tile_row = 4 * 16 * (8 + 8) * 8  # 4 tiles x 16 x (C + K) x 8 bytes
    conv.set_workspace_limit(tile_row + 100)  # room for one tile row per chunk
    try:
        with drivers(per_core):
            chunked = _conv_all(x, w, None, gy, padding=1)
    finally:
        conv.set_workspace_limit(old)
    assert seen == [tile_row] * 3
    for a, c in zip(chunked, whole):
        np.testing.assert_allclose(a, c, rtol=1e-11, atol=1e-11)


@pytest.fixture
def restore_threads():
    old = numba.get_num_threads()
    yield
    numba.set_num_threads(old)


@pytest.mark.parametrize("per_core", [True, False])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_results_do_not_depend_on_threads_or_repetition(restore_threads, dtype, per_core):
    rng = np.random.default_rng(11)
    x = rng.standard_normal((4, 11, 10, 16)).astype(dtype)
    w = rng.standard_normal((3, 3, 16, 24)).astype(dtype)
    b = rng.standard_normal(24).astype(dtype)
    gy = rng.standard_normal((4, 11, 10, 24)).astype(dtype)
    runs = []
    with drivers(per_core):
        for threads in (1, numba.config.NUMBA_NUM_THREADS, 1):
            numba.set_num_threads(threads)
            runs.append(_conv_all(x, w, b, gy, padding=1))
    for run in runs[1:]:
        for a, c in zip(run, runs[0]):
            assert a.tobytes() == c.tobytes()


def test_autograd_conv2d_gradcheck_through_winograd(spy):
    rng = np.random.default_rng(12)
    x = Tensor(rng.standard_normal((2, 5, 4, 8)), requires_grad=True)
    w = Tensor(rng.standard_normal((3, 3, 8, 3)), requires_grad=True)
    b = Tensor(rng.standard_normal(3), requires_grad=True)
    gradcheck(lambda x, w, b: F.conv2d(x, w, b, padding=1), (x, w, b))
    assert "winograd_backward_weight" in spy


def test_concurrent_calls_restore_the_blas_thread_count(monkeypatch, restore_threads):
    """Chunk-per-core work holds BLAS at one thread; calls from two user threads
    at once must leave it as it was, and give the same results as alone."""
    import threading

    from tinycnn.threads import blas_num_threads

    if numba.config.NUMBA_NUM_THREADS < 2:
        pytest.skip("needs 2 Numba threads")
    numba.set_num_threads(2)
    monkeypatch.setattr(wg, "PER_CORE_BYTES", 8192)  # many chunks: the work is shared out

    rng = np.random.default_rng(17)
    x = rng.standard_normal((4, 12, 12, 16)).astype(np.float32)
    w = rng.standard_normal((3, 3, 16, 16)).astype(np.float32)
    before = blas_num_threads()
    with drivers(True):
        want = conv.conv2d_forward(x, w, padding=1)
        results, errors = [], []

        def worker():
            try:
                for _ in range(50):
                    results.append(conv.conv2d_forward(x, w, padding=1))
            except Exception as e:  # noqa: BLE001 - reported below
                errors.append(e)

        threads = [threading.Thread(target=worker) for _ in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
    assert not errors and len(results) == 100
    assert all(r.tobytes() == want.tobytes() for r in results)
    assert blas_num_threads() == before

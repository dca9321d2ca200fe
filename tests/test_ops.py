"""Generic tests run on every entry of the op table (tests/optable.py).

Each test draws a case from the entry's strategy: forward against the NumPy
reference in float64 and float32, gradcheck in float64, inputs and upstream
gradient left untouched, bitwise-deterministic backward, non-contiguous
inputs giving the same results as contiguous ones.
"""

import copy

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import tinycnn
from optable import OPS
from tinycnn import Tensor

SPECS = [pytest.param(spec, id=spec.name) for spec in OPS]
# Under ci: 50 gradient checks and 30 examples of each other property per
# op (15 under dev), which keeps the whole table, conv and batch norm
# included, near two minutes of CPU on this machine
GRADCHECK_EXAMPLES = min(50, settings.default.max_examples)
CHEAP_EXAMPLES = min(30, settings.default.max_examples)


def _draw(spec, data):
    case = data.draw(spec.strategy, label="case")
    grad_inputs = spec.differentiable_inputs(len(case.inputs))
    return case, grad_inputs


def _tensors(case, requires_grad, dtype=np.float64, prepare=np.copy):
    return [
        Tensor(prepare(a.astype(dtype)), requires_grad=i in requires_grad) for i, a in enumerate(case.inputs)
    ]


def _run(spec, case, tensors, gy=None, seed=0):
    """Forward, then backward with ``gy`` (random if None); returns the
    output, the upstream gradient and the inputs' gradients."""
    out = spec.fn(*tensors, **case.kwargs)
    if gy is None:
        gy = np.random.default_rng(seed).standard_normal(out.shape).astype(out.dtype)
    if out.requires_grad:
        out.backward(gy)
    return out, gy, [t.grad for t in tensors]


@pytest.mark.parametrize("spec", SPECS)
@settings(max_examples=CHEAP_EXAMPLES)
@given(data=st.data())
def test_forward_matches_reference_float64(spec, data):
    case, _ = _draw(spec, data)
    out = spec.fn(*_tensors(case, ()), **case.kwargs)
    expected = np.asarray(spec.reference(*case.inputs, **case.kwargs))
    assert isinstance(out, Tensor) and isinstance(out.data, np.ndarray)
    assert out.dtype == np.float64
    assert out.shape == expected.shape
    assert not out.requires_grad and out._ctx is None
    np.testing.assert_allclose(out.data, expected, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("spec", SPECS)
@settings(max_examples=CHEAP_EXAMPLES)
@given(data=st.data())
def test_float32_in_float32_out(spec, data):
    case, grad_inputs = _draw(spec, data)
    tensors = _tensors(case, grad_inputs, dtype=np.float32)
    out, _, grads = _run(spec, case, tensors)
    # the reference sees the same float32-rounded inputs, computed in float64
    rounded = [a.astype(np.float32).astype(np.float64) for a in case.inputs]
    expected = np.asarray(spec.reference(*rounded, **case.kwargs))
    assert out.dtype == np.float32
    assert out.shape == expected.shape
    np.testing.assert_allclose(out.data, expected, **spec.float32_tol)
    for i in grad_inputs:
        assert grads[i].dtype == np.float32 and grads[i].shape == case.inputs[i].shape


@pytest.mark.parametrize("spec", SPECS)
@settings(max_examples=GRADCHECK_EXAMPLES)
@given(data=st.data())
def test_gradcheck(spec, data):
    case, grad_inputs = _draw(spec, data)
    checked = data.draw(st.sets(st.sampled_from(grad_inputs), min_size=1), label="requires_grad")
    tensors = _tensors(case, checked)
    assert tinycnn.gradcheck(lambda *ts: spec.fn(*ts, **case.kwargs), tensors)


@pytest.mark.parametrize("spec", SPECS)
@settings(max_examples=CHEAP_EXAMPLES)
@given(data=st.data())
def test_inputs_and_upstream_gradient_not_mutated(spec, data):
    case, grad_inputs = _draw(spec, data)
    tensors = _tensors(case, grad_inputs, prepare=lambda a: a)  # share the arrays: catch in-place writes
    inputs_before = [a.copy() for a in case.inputs]
    kwargs_before = copy.deepcopy(case.kwargs)
    out = spec.fn(*tensors, **case.kwargs)
    out_before = out.data.copy()
    gy = np.random.default_rng(1).standard_normal(out.shape)
    gy_before = gy.copy()
    out.backward(gy)
    for a, before in zip(case.inputs, inputs_before):
        np.testing.assert_array_equal(a, before)
    _assert_same(case.kwargs, kwargs_before)
    np.testing.assert_array_equal(gy, gy_before)
    np.testing.assert_array_equal(out.data, out_before)  # backward must not write into the output


def _assert_same(a, b):
    if isinstance(a, dict):
        assert a.keys() == b.keys()
        for k in a:
            _assert_same(a[k], b[k])
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b)
        for x, y in zip(a, b):
            _assert_same(x, y)
    elif isinstance(a, np.ndarray):
        np.testing.assert_array_equal(a, b)
    else:
        assert a == b or (a is None and b is None)


@pytest.mark.parametrize("spec", SPECS)
@settings(max_examples=CHEAP_EXAMPLES)
@given(data=st.data())
def test_backward_is_deterministic(spec, data):
    case, grad_inputs = _draw(spec, data)
    out1, gy, grads1 = _run(spec, case, _tensors(case, grad_inputs))
    out2, _, grads2 = _run(spec, case, _tensors(case, grad_inputs), gy=gy.copy())
    assert out1.data.tobytes() == out2.data.tobytes()
    for i in grad_inputs:
        assert grads1[i].shape == grads2[i].shape
        assert grads1[i].tobytes() == grads2[i].tobytes()


def _noncontiguous(a):
    """The same values in a strided view (every other element of a larger array)."""
    if a.ndim == 0:
        return a.copy()
    big = np.zeros(a.shape[:-1] + (2 * a.shape[-1],), dtype=a.dtype)
    view = big[..., ::2]
    view[...] = a
    return view


@pytest.mark.parametrize("spec", SPECS)
@settings(max_examples=CHEAP_EXAMPLES)
@given(data=st.data())
def test_noncontiguous_inputs(spec, data):
    case, grad_inputs = _draw(spec, data)
    out, gy, grads = _run(spec, case, _tensors(case, grad_inputs))
    strided = _tensors(case, grad_inputs, prepare=_noncontiguous)
    out_s, _, grads_s = _run(spec, case, strided, gy=gy.copy())
    np.testing.assert_allclose(out_s.data, out.data, rtol=1e-12, atol=1e-12)
    for i in grad_inputs:
        np.testing.assert_allclose(grads_s[i], grads[i], rtol=1e-12, atol=1e-12)

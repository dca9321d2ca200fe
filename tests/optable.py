"""The op table: one entry per differentiable operation.

``tests/test_ops.py`` runs every entry of ``OPS`` through the same generic
tests: forward against a plain NumPy reference (float64 and float32),
``tinycnn.gradcheck`` in float64 on drawn cases, inputs and upstream gradient
left unmodified, bitwise-deterministic backward, non-contiguous inputs, and
float32 in -> float32 out.

Adding an op
------------
Add an :class:`OpSpec` to the list of the section it belongs to
(``ARITHMETIC``, ``REDUCTIONS``, ``SHAPE``, ``ELEMENTWISE``, ``ACTIVATIONS``,
``LOSSES``; ``OPS`` joins them)::

    ACTIVATIONS.append(OpSpec(
        name="softplus",
        fn=lambda x: F.softplus(x),                  # Tensors (+ drawn kwargs) -> Tensor
        reference=lambda x: np.logaddexp(0.0, x),    # ndarrays (+ the same kwargs) -> ndarray
        strategy=unary(floats(-3, 3)),               # draws a Case(inputs, kwargs)
    ))

* ``strategy`` draws a :class:`Case`: the float64 input arrays, one per tensor
  argument of ``fn``, and the keyword arguments given to both ``fn`` and
  ``reference`` (axes, strides, integer targets, index arrays...).  Write it
  with ``@st.composite`` and the helpers below (``shapes``, ``array``,
  ``floats``).  Keep every input small (at most ``MAX_SIZE`` elements): the
  full gradient check costs two forward passes per input element.
* Keep inputs away from kinks and singularities, or the finite differences
  are meaningless: ``floats(avoid=(0,), margin=...)`` for abs/relu, positive
  ranges for log/sqrt, distinct values (``distinct``) where max or pooling
  could tie, divisors bounded away from 0.
* ``differentiable`` lists the inputs that get ``requires_grad`` (default:
  all); the gradient test checks a drawn non-empty subset of them.
* ``float32_tol`` loosens the float32 forward comparison for an op that
  needs it.

Entries that live in another module (``tests/optable_cnn.py`` for conv,
pooling, batch norm and linear) define their own list ``OPS`` from the helpers here
(``from optable import OpSpec, Case, array, ...``) and are added by naming
the module in ``EXTENSIONS`` at the bottom of this file.
"""

import importlib
import math
import operator
from dataclasses import dataclass, field
from typing import Callable, Optional, Sequence

import numpy as np
from hypothesis import assume
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import tinycnn.functional as F

MAX_SIZE = 60  # elements per input: keeps the full gradient check cheap


@dataclass(frozen=True)
class Case:
    """One drawn problem: the float64 inputs (one per tensor argument) and
    the keyword arguments shared by ``fn`` and ``reference``."""

    inputs: tuple
    kwargs: dict = field(default_factory=dict)


@dataclass(frozen=True)
class OpSpec:
    name: str
    fn: Callable  # fn(*tensors, **kwargs) -> Tensor
    reference: Callable  # reference(*ndarrays, **kwargs) -> ndarray (plain NumPy)
    strategy: st.SearchStrategy  # draws a Case
    differentiable: Optional[Sequence[int]] = None  # inputs that get requires_grad; None: all
    float32_tol: dict = field(default_factory=lambda: dict(rtol=2e-5, atol=2e-5))

    def differentiable_inputs(self, n_inputs):
        return tuple(range(n_inputs)) if self.differentiable is None else tuple(self.differentiable)

    def __repr__(self):
        return f"OpSpec({self.name})"


# --------------------------------------------------------------- strategies


def floats(lo=-3.0, hi=3.0, avoid=(), margin=0.05):
    """Floats in ``[lo, hi]`` at least ``margin`` away from every point in ``avoid``."""
    s = st.floats(lo, hi, allow_nan=False, allow_infinity=False, allow_subnormal=False)
    if avoid:
        s = s.filter(lambda v: all(abs(v - a) >= margin for a in avoid))
    return s


def distinct(lo=-3.0, hi=3.0, step=0.01):
    """Element strategy for ``array(..., unique=True)``: multiples of ``step``,
    so distinct elements differ by at least ``step`` (no near-ties)."""
    return st.integers(math.ceil(lo / step), math.floor(hi / step)).map(lambda i: i * step)


def shapes(min_dims=0, max_dims=4, max_side=5, max_size=MAX_SIZE):
    return hnp.array_shapes(min_dims=min_dims, max_dims=max_dims, min_side=1, max_side=max_side).filter(
        lambda s: math.prod(s) <= max_size
    )


def array(shape, elements=None, unique=False):
    """A float64 array of ``shape``."""
    return hnp.arrays(np.float64, shape, elements=floats() if elements is None else elements, unique=unique)


def _signed(draw, axis, ndim):
    """``axis`` (non-negative) or its negative spelling, drawn."""
    return axis - ndim if draw(st.booleans()) else axis


@st.composite
def unary(draw, elements=None, min_dims=0, max_dims=4):
    shape = draw(shapes(min_dims, max_dims))
    return Case((draw(array(shape, elements)),))


@st.composite
def broadcasting_pair(draw, a_elements=None, b_elements=None):
    """Two arrays whose shapes broadcast (either may be the larger one)."""
    bs = draw(
        hnp.mutually_broadcastable_shapes(num_shapes=2, min_dims=0, max_dims=4, max_side=4).filter(
            lambda b: math.prod(b.result_shape) <= MAX_SIZE
        )
    )
    a_shape, b_shape = bs.input_shapes
    return Case((draw(array(a_shape, a_elements)), draw(array(b_shape, b_elements))))


# -------------------------------------------------------------- arithmetic

SCALAR_EXPRESSIONS = {  # the same expression works on a Tensor and on an ndarray
    "x + c": lambda x, c: x + c,
    "c + x": lambda x, c: c + x,
    "x - c": lambda x, c: x - c,
    "c - x": lambda x, c: c - x,
    "x * c": lambda x, c: x * c,
    "c * x": lambda x, c: c * x,
    "x / c": lambda x, c: x / c,
    "c / x": lambda x, c: c / x,
}


@st.composite
def scalar_cases(draw):
    shape = draw(shapes())
    x = draw(array(shape, floats(avoid=(0,), margin=0.5)))
    return Case((x,), dict(expr=draw(st.sampled_from(sorted(SCALAR_EXPRESSIONS))), c=draw(floats(avoid=(0,), margin=0.5))))


def _scalar_expr(x, expr, c):
    return SCALAR_EXPRESSIONS[expr](x, c)


@st.composite
def pow_cases(draw):
    exponent = draw(st.sampled_from([-2, -1, 0, 1, 2, 3, -0.5, 0.5, 1.5, 2.5]) | floats(-3, 3))
    if float(exponent).is_integer():
        exponent = int(exponent)
        elements = floats() if exponent >= 0 else floats(avoid=(0,), margin=0.5)
    else:  # a fractional power is real only for positive bases
        elements = floats(0.5, 3.0)
    return Case((draw(array(draw(shapes()), elements)),), dict(exponent=exponent))


@st.composite
def matmul_cases(draw):
    m, k, n = (draw(st.integers(1, 4)) for _ in range(3))
    a_batch, b_batch = (), ()
    if draw(st.booleans()):  # batched, the batch axes broadcast
        a_batch, b_batch = draw(
            hnp.mutually_broadcastable_shapes(num_shapes=2, min_dims=0, max_dims=2, max_side=3)
        ).input_shapes
    a_shape, b_shape = a_batch + (m, k), b_batch + (k, n)
    out_size = math.prod(np.broadcast_shapes(a_batch, b_batch)) * m * n
    assume(max(math.prod(a_shape), math.prod(b_shape), out_size) <= MAX_SIZE)
    return Case((draw(array(a_shape)), draw(array(b_shape))))


ARITHMETIC = [
    OpSpec("add", operator.add, np.add, broadcasting_pair()),
    OpSpec("sub", operator.sub, np.subtract, broadcasting_pair()),
    OpSpec("mul", operator.mul, np.multiply, broadcasting_pair()),
    OpSpec("div", operator.truediv, np.divide, broadcasting_pair(b_elements=floats(avoid=(0,), margin=0.5))),
    OpSpec("F.add", F.add, np.add, broadcasting_pair()),
    OpSpec("F.div", F.div, np.divide, broadcasting_pair(b_elements=floats(avoid=(0,), margin=0.5))),
    OpSpec("scalar_arith", _scalar_expr, _scalar_expr, scalar_cases()),
    OpSpec("pow", lambda x, exponent: x**exponent, lambda x, exponent: np.power(x, exponent), pow_cases()),
    OpSpec("neg", operator.neg, np.negative, unary()),
    OpSpec("matmul", operator.matmul, np.matmul, matmul_cases()),
]


# -------------------------------------------------------------- reductions


@st.composite
def reduce_cases(draw, unique=False):
    shape = draw(shapes())
    ndim = len(shape)
    if ndim == 0:
        axis = draw(st.sampled_from([None, ()]))
    else:
        axis = draw(st.none() | st.integers(-ndim, ndim - 1) | hnp.valid_tuple_axes(ndim))
    elements = distinct() if unique else None
    return Case((draw(array(shape, elements, unique=unique)),), dict(axis=axis, keepdims=draw(st.booleans())))


REDUCTIONS = [
    OpSpec("sum", F.sum, np.sum, reduce_cases()),
    OpSpec("mean", F.mean, np.mean, reduce_cases()),
    OpSpec("max", F.max, np.max, reduce_cases(unique=True)),  # distinct values: no ties
    OpSpec(
        "Tensor.sum/mean/max",
        lambda x, axis, keepdims: x.sum(axis, keepdims) + x.mean(axis, keepdims) * x.max(axis, keepdims),
        lambda x, axis, keepdims: x.sum(axis, keepdims=keepdims)
        + x.mean(axis, keepdims=keepdims) * x.max(axis, keepdims=keepdims),
        reduce_cases(unique=True),
    ),
]


# ------------------------------------------------------------------- shape


@st.composite
def reshape_cases(draw):
    shape = draw(shapes())
    size = math.prod(shape)
    ndim = draw(st.integers(0 if size == 1 else 1, 4))
    new, rest = [], size
    for _ in range(ndim - 1):
        d = draw(st.sampled_from([d for d in range(1, rest + 1) if rest % d == 0]))
        new.append(d)
        rest //= d
    if ndim:
        new.append(rest)
        if draw(st.booleans()):
            new[draw(st.integers(0, ndim - 1))] = -1
    return Case((draw(array(shape)),), dict(shape=tuple(new)))


@st.composite
def permute_cases(draw):
    shape = draw(shapes())
    ndim = len(shape)
    axes = tuple(_signed(draw, a, ndim) for a in draw(st.permutations(range(ndim))))
    return Case((draw(array(shape)),), dict(axes=axes))


@st.composite
def transpose_cases(draw):
    shape = draw(shapes())
    ndim = len(shape)
    dims = None  # no arguments: reverse the axes, like .T
    if ndim and draw(st.booleans()):
        dims = (draw(st.integers(-ndim, ndim - 1)), draw(st.integers(-ndim, ndim - 1)))
    return Case((draw(array(shape)),), dict(dims=dims))


def _transpose(x, dims):
    return x.T if dims is None else x.transpose(*dims)


def _transpose_ref(x, dims):
    return x.T if dims is None else np.swapaxes(x, *dims)


@st.composite
def flatten_cases(draw):
    shape = draw(shapes())
    ndim = len(shape)
    if ndim == 0:
        return Case((draw(array(shape)),), dict(start_dim=0, end_dim=-1))
    start = draw(st.integers(0, ndim - 1))
    end = draw(st.integers(start, ndim - 1))
    return Case((draw(array(shape)),), dict(start_dim=_signed(draw, start, ndim), end_dim=_signed(draw, end, ndim)))


def _flatten_ref(x, start_dim, end_dim):
    if x.ndim == 0:
        return x.reshape(1)
    start, end = start_dim % x.ndim, end_dim % x.ndim
    return x.reshape(x.shape[:start] + (math.prod(x.shape[start : end + 1]),) + x.shape[end + 1 :])


@st.composite
def basic_index_cases(draw):
    shape = draw(shapes())
    index = draw(hnp.basic_indices(shape, min_dims=0, allow_newaxis=True, allow_ellipsis=True))
    return Case((draw(array(shape)),), dict(index=index))


@st.composite
def integer_array_index_cases(draw):
    """One integer array per axis (small axes, so indices repeat often)."""
    shape = draw(shapes(min_dims=1))
    result = hnp.array_shapes(min_dims=0, max_dims=2, min_side=1, max_side=5)
    index = draw(hnp.integer_array_indices(shape, result_shape=result))
    return Case((draw(array(shape)),), dict(index=index))


@st.composite
def mixed_index_cases(draw):
    """Slices around one integer list with repeats, or a boolean mask."""
    shape = draw(shapes(min_dims=1))
    if draw(st.booleans()):
        index = draw(hnp.arrays(np.bool_, shape))
    else:
        axis = draw(st.integers(0, len(shape) - 1))
        n = shape[axis]
        picks = draw(st.lists(st.integers(-n, n - 1), min_size=1, max_size=6))
        picks.append(picks[0])  # at least one repeated index
        index = (slice(None),) * axis + (picks,)
        if axis + 1 < len(shape) and draw(st.booleans()):
            index += (slice(None, None, -1),)
    return Case((draw(array(shape)),), dict(index=index))


def _getitem(x, index):  # x[index] on a Tensor, and on an ndarray for the reference
    return x[index]


@st.composite
def concatenate_cases(draw):
    ndim = draw(st.integers(1, 4))
    base = list(draw(shapes(ndim, ndim, max_side=4, max_size=20)))
    axis = draw(st.integers(0, ndim - 1))
    inputs = []
    for _ in range(draw(st.integers(1, 3))):
        base[axis] = draw(st.integers(1, 3))
        inputs.append(draw(array(tuple(base))))
    return Case(tuple(inputs), dict(axis=_signed(draw, axis, ndim)))


@st.composite
def stack_cases(draw):
    shape = draw(shapes(max_dims=3, max_size=20))
    ndim = len(shape) + 1
    inputs = tuple(draw(array(shape)) for _ in range(draw(st.integers(1, 3))))
    return Case(inputs, dict(axis=_signed(draw, draw(st.integers(0, ndim - 1)), ndim)))


@st.composite
def pad_cases(draw):
    shape = draw(shapes(max_dims=3, max_size=24))
    width = st.integers(0, 2)
    forms = [width, st.tuples(width, width)]  # one int for all, one pair for all
    if shape:
        forms.append(st.tuples(*(st.tuples(width, width) for _ in shape)))  # a pair per axis
    pad_width = draw(st.one_of(forms))
    return Case((draw(array(shape)),), dict(pad_width=pad_width, value=draw(st.sampled_from([0.0]) | floats(-2, 2))))


def _pad_ref(x, pad_width, value):
    if x.ndim == 0:
        return x.copy()
    return np.pad(x, pad_width, mode="constant", constant_values=value)


SHAPE = [
    OpSpec("reshape", lambda x, shape: x.reshape(shape), lambda x, shape: np.reshape(x, shape), reshape_cases()),
    OpSpec("permute", F.permute, np.transpose, permute_cases()),
    OpSpec("transpose", _transpose, _transpose_ref, transpose_cases()),
    OpSpec("flatten", F.flatten, _flatten_ref, flatten_cases()),
    OpSpec("getitem_basic", _getitem, _getitem, basic_index_cases()),
    OpSpec("getitem_int_arrays", _getitem, _getitem, integer_array_index_cases()),
    OpSpec("getitem_mixed", _getitem, _getitem, mixed_index_cases()),
    OpSpec(
        "concatenate",
        lambda *xs, axis: F.concatenate(list(xs), axis=axis),
        lambda *xs, axis: np.concatenate(xs, axis=axis),
        concatenate_cases(),
    ),
    OpSpec("stack", lambda *xs, axis: F.stack(xs, axis=axis), lambda *xs, axis: np.stack(xs, axis=axis), stack_cases()),
    OpSpec("pad", F.pad, _pad_ref, pad_cases()),
]


# ------------------------------------------------------------- elementwise


@st.composite
def clip_cases(draw):
    low = draw(st.none() | floats(-2, 1))
    high = draw(st.none() | floats(-1, 2))
    if low is None and high is None:
        low = -0.5
    if low is not None and high is not None and high < low + 0.2:
        high = low + 0.2
    bounds = tuple(b for b in (low, high) if b is not None)
    x = draw(array(draw(shapes()), floats(avoid=bounds, margin=0.05)))
    return Case((x,), dict(low=low, high=high))


@st.composite
def leaky_relu_cases(draw):
    x = draw(array(draw(shapes()), floats(avoid=(0,), margin=0.05)))
    kwargs = draw(st.just({}) | st.builds(lambda s: dict(negative_slope=s), floats(0, 0.5)))
    return Case((x,), kwargs)


def _leaky_relu_ref(x, negative_slope=0.01):
    return np.where(x > 0, x, negative_slope * x)


ELEMENTWISE = [
    OpSpec("exp", F.exp, np.exp, unary()),
    OpSpec("log", F.log, np.log, unary(floats(0.1, 5.0))),
    OpSpec("sqrt", lambda x: x.sqrt(), np.sqrt, unary(floats(0.1, 5.0))),
    OpSpec("abs", F.abs, np.abs, unary(floats(avoid=(0,)))),
    OpSpec("clip", lambda x, low, high: x.clip(low, high), lambda x, low, high: np.clip(x, low, high), clip_cases()),
]


# ------------------------------------------------------------- activations


@st.composite
def axis_cases(draw, elements=None):
    shape = draw(shapes(min_dims=1))
    kwargs = {}
    if draw(st.booleans()):
        kwargs["axis"] = draw(st.integers(-len(shape), len(shape) - 1))
    return Case((draw(array(shape, elements)),), kwargs)


def _softmax_ref(x, axis=-1):
    e = np.exp(x)
    return e / e.sum(axis=axis, keepdims=True)


def _log_softmax_ref(x, axis=-1):
    return x - np.log(np.exp(x).sum(axis=axis, keepdims=True))


ACTIVATIONS = [
    OpSpec("relu", F.relu, lambda x: np.maximum(x, 0.0), unary(floats(avoid=(0,)))),
    OpSpec("leaky_relu", F.leaky_relu, _leaky_relu_ref, leaky_relu_cases()),
    OpSpec("sigmoid", F.sigmoid, lambda x: 1.0 / (1.0 + np.exp(-x)), unary(floats(-8.0, 8.0))),
    OpSpec("tanh", F.tanh, np.tanh, unary()),
    OpSpec("softmax", F.softmax, _softmax_ref, axis_cases(floats(-5.0, 5.0))),
    OpSpec("log_softmax", F.log_softmax, _log_softmax_ref, axis_cases(floats(-5.0, 5.0))),
]


# ------------------------------------------------------------------ losses

REDUCTION = st.sampled_from(["mean", "sum", "none"])


@st.composite
def cross_entropy_cases(draw):
    n = draw(st.integers(1, 6))
    c = draw(st.integers(1, min(10, MAX_SIZE // n)))
    logits = draw(array((n, c), floats(-4.0, 4.0)))
    targets = draw(hnp.arrays(np.int64, (n,), elements=st.integers(0, c - 1)))
    smoothing = draw(st.sampled_from([0.0]) | floats(0.0, 1.0))
    return Case((logits,), dict(targets=targets, label_smoothing=smoothing, reduction=draw(REDUCTION)))


def _cross_entropy_ref(logits, targets, label_smoothing, reduction):
    """PyTorch's definition: (1 - s) * NLL + s * (mean over classes of -log p)."""
    logp = logits - np.log(np.exp(logits).sum(axis=1, keepdims=True))
    nll = -logp[np.arange(len(targets)), targets]
    losses = (1 - label_smoothing) * nll + label_smoothing * -logp.mean(axis=1)
    return _reduce(losses, reduction)


def _reduce(losses, reduction):
    return {"mean": np.mean, "sum": np.sum, "none": np.asarray}[reduction](losses)


@st.composite
def mse_cases(draw):
    shape = draw(shapes())
    return Case((draw(array(shape)), draw(array(shape))), dict(reduction=draw(REDUCTION)))


LOSSES = [
    OpSpec("cross_entropy", F.cross_entropy, _cross_entropy_ref, cross_entropy_cases()),
    OpSpec("mse_loss", F.mse_loss, lambda a, b, reduction: _reduce((a - b) ** 2, reduction), mse_cases()),
]


OPS = ARITHMETIC + REDUCTIONS + SHAPE + ELEMENTWISE + ACTIVATIONS + LOSSES

# Modules holding further entries, each as a list named OPS (imported last, so
# they can import the helpers above).
EXTENSIONS = ["optable_cnn"]
for _module in EXTENSIONS:
    OPS.extend(importlib.import_module(_module).OPS)

_names = [spec.name for spec in OPS]
assert len(set(_names)) == len(_names), "op table: duplicate names"

"""The gradient checker can fail: deliberately wrong backward rules are caught,
in both its full (every element) and directional (large input) modes, and
the report names the input, the worst element and both values."""

import re

import numpy as np
import pytest

import tinycnn
import tinycnn.functional as F
from tinycnn import Function, GradcheckError, Tensor, gradcheck


class TripleWrongBy2(Function):
    """y = 3x, but backward claims 6."""

    def forward(self, x):
        return 3 * x

    def backward(self, gy):
        return 6 * gy


class MatMulTransposedGrad(Function):
    """a @ b with the gradient of b transposed (square shapes hide it from a shape check)."""

    def forward(self, a, b):
        self.a, self.b = a, b
        return a @ b

    def backward(self, gy):
        return gy @ self.b.T, (self.a.T @ gy).T


class Center(Function):
    """y = x - mean(x): the gradient for a sum cotangent is exactly zero.
    ``mode`` picks the backward: 'right', 'zero' (forgets the gradient) or
    'double' (twice the right one): both wrong ones also give zero for a sum."""

    def forward(self, x, mode):
        self.mode = mode
        return x - x.mean()

    def backward(self, gy):
        right = gy - gy.mean()
        return {"right": right, "zero": np.zeros_like(gy), "double": 2 * right}[self.mode]


class OneElementWrong(Function):
    """tanh, with the gradient of one element off by 1."""

    def forward(self, x, where):
        self.y, self.where = np.tanh(x), where
        return self.y

    def backward(self, gy):
        gx = gy * (1 - self.y**2)
        gx[self.where] += 1.0
        return gx


def _x(shape, seed=0):
    return Tensor(np.random.default_rng(seed).standard_normal(shape), requires_grad=True)


def _numbers(message):
    numeric = float(re.search(r"numeric (\S+),", message).group(1))
    analytic = float(re.search(r"analytic (\S+) \(", message).group(1))
    return numeric, analytic


def test_factor_two_off_is_caught_and_reported():
    x = _x((3, 4))
    with pytest.raises(GradcheckError) as info:
        gradcheck(TripleWrongBy2.apply, [x])
    message = str(info.value)
    # the cotangent is standard normal from default_rng(seed=0): the worst
    # element is where |v| is largest, numeric 3 v there and analytic 6 v
    v = np.random.default_rng(0).standard_normal((3, 4))
    worst = np.unravel_index(np.argmax(np.abs(v)), v.shape)
    assert "input 0" in message and "(shape (3, 4))" in message
    assert f"element {tuple(int(i) for i in worst)}" in message
    numeric, analytic = _numbers(message)
    assert numeric == pytest.approx(3 * v[worst], rel=1e-6)  # the message prints 8 digits
    assert analytic == pytest.approx(6 * v[worst], rel=1e-7)


def test_a_transposed_gradient_names_the_input():
    a, b = _x((3, 3), seed=1), _x((3, 3), seed=2)
    with pytest.raises(GradcheckError, match=r"input 1 \(shape \(3, 3\)\).*element \(\d, \d\)"):
        gradcheck(MatMulTransposedGrad.apply, [a, b])
    b.requires_grad = False  # the gradient of a is right
    assert gradcheck(MatMulTransposedGrad.apply, [a, b])


def test_one_wrong_element_is_located():
    x = _x((4, 5))
    with pytest.raises(GradcheckError, match=r"input 0 .*element \(2, 3\)") as info:
        gradcheck(lambda t: OneElementWrong.apply(t, where=(2, 3)), [x])
    numeric, analytic = _numbers(str(info.value))
    assert analytic - numeric == pytest.approx(1.0, rel=1e-6)


def test_right_gradients_pass():
    a, b = _x((3, 3), seed=1), _x((3, 4), seed=2)
    assert gradcheck(lambda s, t: F.tanh(s @ t), [a, b])
    assert gradcheck(lambda t: Center.apply(t, mode="right"), [a])


@pytest.mark.parametrize("mode", ["zero", "double"])
def test_zero_gradient_for_a_sum_cotangent_is_still_checked(mode):
    x = _x((2, 5))
    # through a sum, a wrong backward is invisible: the right answer and the
    # wrong one are both exactly zero
    assert gradcheck(lambda t: F.sum(Center.apply(t, mode=mode)), [x])
    # checking the op itself uses a random cotangent, which catches it
    with pytest.raises(GradcheckError, match="input 0"):
        gradcheck(lambda t: Center.apply(t, mode=mode), [x])


def test_directional_mode_catches_a_wrong_backward():
    big = _x((30, 20))  # 600 elements > full_limit=512: random directions
    assert big.size > 512
    with pytest.raises(GradcheckError, match=r"input 0 \(shape \(30, 20\)\).*at direction \d") as info:
        gradcheck(TripleWrongBy2.apply, [big])
    numeric, analytic = _numbers(str(info.value))
    assert analytic == pytest.approx(2 * numeric, rel=1e-6)
    assert gradcheck(F.tanh, [big])  # and a right one passes


def test_full_limit_selects_the_mode():
    x = _x((4, 5))
    with pytest.raises(GradcheckError, match="at element"):
        gradcheck(TripleWrongBy2.apply, [x], full_limit=20)
    with pytest.raises(GradcheckError, match="at direction"):
        gradcheck(TripleWrongBy2.apply, [x], full_limit=19)
    with pytest.raises(GradcheckError, match="at direction"):
        gradcheck(lambda t: Center.apply(t, mode="zero"), [x], full_limit=10)


def test_float32_inputs_are_refused():
    x = Tensor(np.ones(3, np.float32), requires_grad=True)
    with pytest.raises(TypeError, match=r"input 0 is float32.*float64"):
        gradcheck(F.tanh, [x])


def test_float32_output_is_refused():
    x = _x(3)
    with pytest.raises(TypeError, match="float64 Tensor, got float32"):
        gradcheck(lambda t: F.cast(t, np.float32), [x])


def test_nothing_to_check_is_an_error():
    with pytest.raises(ValueError, match="requires_grad"):
        gradcheck(F.tanh, [Tensor(np.ones(3))])


def test_gradcheck_leaves_inputs_and_their_grads_alone():
    x = _x((3, 4))
    before = x.data.copy()
    x.grad = np.full((3, 4), 7.0)
    assert gradcheck(F.sigmoid, [x])
    assert gradcheck(F.sigmoid, [_x((30, 20))])
    assert x.data.tobytes() == before.tobytes()
    np.testing.assert_array_equal(x.grad, np.full((3, 4), 7.0))


def test_a_single_tensor_input_is_accepted():
    assert tinycnn.gradcheck(F.exp, _x(4))

"""Check analytic gradients against central finite differences."""

import numpy as np

from .autograd import no_grad
from .tensor import Tensor


class GradcheckError(AssertionError):
    """The analytic gradient of an input disagrees with finite differences."""


def gradcheck(fn, inputs, eps=1e-6, atol=1e-5, rtol=1e-3, full_limit=512, directions=6, seed=0):
    """Compare ``fn``'s backward pass with central differences, in float64.

    ``fn(*inputs)`` must return a float64 Tensor; every input tensor with
    ``requires_grad=True`` is checked.  The output is dotted with a random
    cotangent ``v`` (never all ones: ``sum(batch_norm(x))`` has a zero
    gradient and would pass whatever backward did), so the check compares
    the vector-Jacobian product ``J^T v`` from one backward pass with
    ``(f(x + eps e) - f(x - eps e)) . v / (2 eps)``:

    * for an input of at most ``full_limit`` elements, along every unit
      vector ``e`` (every element of the gradient is checked);
    * for a larger input, along ``directions`` random unit directions.

    An element passes when ``|numeric - analytic| <= atol + rtol * |numeric|``.
    Returns True; on a mismatch raises :class:`GradcheckError` naming the
    input, the worst element and both values.  float32 inputs are refused:
    float32 finite differences are too coarse to tell a wrong gradient from
    rounding.
    """
    if isinstance(inputs, Tensor):
        inputs = (inputs,)
    inputs = tuple(inputs)
    checked = [i for i, t in enumerate(inputs) if isinstance(t, Tensor) and t.requires_grad]
    if not checked:
        raise ValueError("gradcheck: no input has requires_grad=True, so there is nothing to check")
    for i in checked:
        if inputs[i].dtype != np.float64:
            raise TypeError(
                f"gradcheck: input {i} is {inputs[i].dtype}; gradcheck needs float64 inputs "
                "(float32 finite differences are too coarse to judge a gradient)"
            )
    rng = np.random.default_rng(seed)

    out = fn(*inputs)
    if not isinstance(out, Tensor):
        raise TypeError(f"gradcheck: fn must return a Tensor, got {type(out).__name__}")
    if out.dtype != np.float64:
        raise TypeError(f"gradcheck: fn must return a float64 Tensor, got {out.dtype}")
    v = rng.standard_normal(out.shape)

    saved_grads = [inputs[i].grad for i in checked]
    for i in checked:
        inputs[i].grad = None
    if not out.requires_grad:
        raise ValueError("gradcheck: fn's output does not depend on any input that requires grad")
    out.backward(v)
    analytic = {i: (inputs[i].grad if inputs[i].grad is not None else np.zeros(inputs[i].shape)) for i in checked}
    for i, g in zip(checked, saved_grads):
        inputs[i].grad = g

    def f_dot():
        with no_grad():
            return float(np.sum(fn(*inputs).data * v))

    for i in checked:
        x = inputs[i].data
        ana = analytic[i]
        if x.size <= full_limit:
            num = np.zeros(x.shape)
            flat = x.reshape(-1)  # a view: x is perturbed in place and restored
            if not np.shares_memory(flat, x):
                raise ValueError(f"gradcheck: input {i} must be a contiguous array")
            for j in range(flat.size):
                orig = flat[j]
                flat[j] = orig + eps
                fp = f_dot()
                flat[j] = orig - eps
                fm = f_dot()
                flat[j] = orig
                num.reshape(-1)[j] = (fp - fm) / (2 * eps)
            _compare(i, x.shape, num, ana, atol, rtol, "element")
        else:
            original = x.copy()
            nums, anas = [], []
            for _ in range(directions):
                d = rng.standard_normal(x.shape)
                d /= np.linalg.norm(d)
                x[...] = original + eps * d
                fp = f_dot()
                x[...] = original - eps * d
                fm = f_dot()
                x[...] = original
                nums.append((fp - fm) / (2 * eps))
                anas.append(float(np.sum(ana * d)))
            _compare(i, x.shape, np.array(nums), np.array(anas), atol, rtol, "direction")
    return True


def _compare(i, shape, num, ana, atol, rtol, what):
    excess = np.abs(num - ana) - (atol + rtol * np.abs(num))
    if np.all(excess <= 0) and np.all(np.isfinite(ana)):
        return
    excess = np.where(np.isfinite(excess), excess, np.inf)
    worst = tuple(int(k) for k in np.unravel_index(int(np.argmax(excess)), num.shape))  # not np.int64(...) in the message
    where = worst if what == "element" else worst[0]
    raise GradcheckError(
        f"gradcheck: input {i} (shape {shape}): analytic gradient disagrees with finite "
        f"differences at {what} {where}: numeric {num[worst]:.8g}, analytic {ana[worst]:.8g} "
        f"(|difference| {abs(num[worst] - ana[worst]):.3g} > atol + rtol*|numeric| = "
        f"{atol + rtol * abs(num[worst]):.3g})"
    )

"""Add a differentiable op of your own and gradient-check it.

    python examples/gradcheck_your_op.py [--quick] [--out DIR]

SiLU (also called Swish): ``y = x * sigmoid(x)``, so
``dy/dx = s + x * s * (1 - s)`` with ``s = sigmoid(x)``.  The op is one
``tinycnn.Function`` subclass with ``forward`` and ``backward`` side by side
(the pattern of every op in ``tinycnn/ops/``), plus a lowercase function.
``tinycnn.gradcheck`` compares its backward with central finite differences
in float64.  Then a deliberately wrong backward (the forgotten product-rule
term ``x * s * (1 - s)``) is caught with a ``GradcheckError``.  Writes
``silu_gradcheck.png``: SiLU, its analytic derivative, finite differences,
and the wrong derivative.
"""

import sys

import numpy as np

from _shared import parser, pyplot, save
from tinycnn import Function, GradcheckError, Tensor, gradcheck
from tinycnn.tensor import as_tensor


def _sigmoid(x):
    e = np.exp(-np.abs(x))  # never overflows
    return np.where(x >= 0, 1 / (1 + e), e / (1 + e)).astype(x.dtype)


class SiLU(Function):
    def forward(self, x):
        self.x, self.s = x, _sigmoid(x)  # save only what backward needs
        return x * self.s

    def backward(self, gy):
        s = self.s
        return gy * (s + self.x * s * (1 - s))


class WrongSiLU(SiLU):
    def backward(self, gy):
        return gy * self.s  # product rule half-forgotten


def silu(x):
    """``x * sigmoid(x)``."""
    return SiLU.apply(as_tensor(x))


def main(argv=None):
    args = parser(__doc__.splitlines()[0], data=False).parse_args(argv)
    rng = np.random.default_rng(0)
    x = Tensor(rng.standard_normal((4, 5)) * 3, requires_grad=True, dtype=np.float64)

    assert gradcheck(silu, x)
    print("SiLU: backward agrees with finite differences on all 20 elements")
    # composed with other ops, inside a graph
    assert gradcheck(lambda t: (silu(t) * t).sum(axis=1), x)

    try:
        gradcheck(lambda t: WrongSiLU.apply(t), x)
    except GradcheckError as err:
        print(f"WrongSiLU caught:\n  {err}")
    else:
        raise SystemExit("the wrong backward was not caught")

    # picture: the derivative from backward() against finite differences
    grid = np.linspace(-6, 6, 61 if args.quick else 241)
    t = Tensor(grid.copy(), requires_grad=True, dtype=np.float64)
    silu(t).sum().backward()
    eps = 1e-6
    numeric = (silu(Tensor(grid + eps, dtype=np.float64)).data - silu(Tensor(grid - eps, dtype=np.float64)).data) / (2 * eps)
    assert np.allclose(t.grad, numeric, atol=1e-7)
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(5.5, 3.4))
    ax.plot(grid, silu(Tensor(grid, dtype=np.float64)).data, color="k", label="silu(x)")
    ax.plot(grid, t.grad, color="tab:blue", lw=3, alpha=0.5, label="backward()")
    ax.plot(grid[::6], numeric[::6], "o", ms=3, color="tab:blue", label="finite differences")
    ax.plot(grid, _sigmoid(grid), "--", color="tab:red", label="WrongSiLU backward")
    ax.set(xlabel="x", ylim=(-1.5, 3), title="SiLU and its gradient")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    save(fig, args.out, "silu_gradcheck.png")


if __name__ == "__main__":
    main()
    sys.exit(0)

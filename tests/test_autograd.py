"""Pinned autograd cases: shapes at the edges, broadcasting, reuse, deep graphs,
accumulation, graph freeing, no_grad, Tensor dtype rules, and parity with
PyTorch on composite expressions (float64)."""

import math
import sys
import weakref

import numpy as np
import pytest

import tinycnn
import tinycnn.functional as F
from tinycnn import Tensor, no_grad


def leaf(values, dtype=np.float64):
    return Tensor(np.array(values, dtype=dtype), requires_grad=True)


# ------------------------------------------------------- shapes at the edges


def test_zero_dim_tensors():
    x = leaf(3.0)
    y = x * x + x.exp()
    assert y.shape == () and y.ndim == 0
    assert isinstance(y.numpy(), np.ndarray)  # a 0-d array, not a NumPy scalar
    y.backward()
    assert isinstance(x.grad, np.ndarray) and x.grad.shape == ()
    assert x.grad == pytest.approx(6.0 + math.exp(3.0), rel=1e-15)
    assert isinstance(y.item(), float) and y.item() == pytest.approx(9.0 + math.exp(3.0), rel=1e-15)


def test_zero_dim_broadcasts_against_a_matrix():
    s, m = leaf(2.0), leaf(np.arange(6.0).reshape(2, 3))
    (s * m).sum().backward()
    assert s.grad.shape == () and s.grad == 15.0
    np.testing.assert_array_equal(m.grad, np.full((2, 3), 2.0))


def test_size_one_dimensions():
    rng = np.random.default_rng(0)
    a, b = leaf(rng.standard_normal((1, 3, 1))), leaf(rng.standard_normal((2, 1, 4)))
    gy = rng.standard_normal((2, 3, 4))
    y = a * b
    assert y.shape == (2, 3, 4)
    y.backward(gy)
    np.testing.assert_allclose(a.grad, (gy * b.data).sum(axis=(0, 2), keepdims=True), rtol=1e-14)
    np.testing.assert_allclose(b.grad, (gy * a.data).sum(axis=1, keepdims=True), rtol=1e-14)
    assert a.grad.shape == (1, 3, 1) and b.grad.shape == (2, 1, 4)


def test_size_one_matmul_and_reductions():
    a, b = leaf([[2.0]]), leaf([[3.0, 4.0]])
    y = (a @ b).sum(axis=0, keepdims=True).mean()
    y.backward()
    assert y.item() == 7.0
    np.testing.assert_array_equal(a.grad, [[3.5]])
    np.testing.assert_array_equal(b.grad, [[1.0, 1.0]])


# ------------------------------------------------------------- broadcasting


def test_broadcast_column_plus_row():
    a, b = leaf(np.ones((3, 1))), leaf(np.ones((1, 4)))
    y = a + b
    assert y.shape == (3, 4)
    y.sum().backward()
    np.testing.assert_array_equal(a.grad, np.full((3, 1), 4.0))
    np.testing.assert_array_equal(b.grad, np.full((1, 4), 3.0))


@pytest.mark.parametrize("small_first", [True, False])
def test_broadcast_vector_against_3d(small_first):
    v, t = leaf(np.arange(4.0)), leaf(np.ones((2, 3, 4)))
    y = v * t if small_first else t * v
    gy = np.arange(24.0).reshape(2, 3, 4)
    y.backward(gy)
    np.testing.assert_array_equal(v.grad, gy.sum(axis=(0, 1)))
    np.testing.assert_array_equal(t.grad, gy * np.arange(4.0))


@pytest.mark.parametrize("small_first", [True, False])
def test_broadcast_subtraction_and_division_both_directions(small_first):
    v, t = leaf([1.0, 2.0, 4.0, 8.0]), leaf(np.full((2, 3, 4), 2.0))
    y = (v - t) + (v / t) if small_first else (t - v) + (t / v)
    y.sum().backward()
    if small_first:  # d/dv: 1 + 1/t, summed over 6 copies; d/dt: -1 - v/t^2
        np.testing.assert_array_equal(v.grad, np.full(4, 6 * 1.5))
        np.testing.assert_array_equal(t.grad, np.broadcast_to(-1 - v.data / 4.0, (2, 3, 4)))
    else:  # d/dv: -1 - t/v^2 summed over 6; d/dt: 1 + 1/v
        np.testing.assert_array_equal(v.grad, 6 * (-1 - 2.0 / v.data**2))
        np.testing.assert_array_equal(t.grad, np.broadcast_to(1 + 1 / v.data, (2, 3, 4)))


# -------------------------------------------------------------------- reuse


def test_reuse_x_times_x():
    x = leaf([-1.5, 0.25, 3.0])
    (x * x).sum().backward()
    np.testing.assert_array_equal(x.grad, 2 * x.data)


def test_reuse_x_plus_x():
    x = leaf([-1.5, 0.25, 3.0])
    (x + x).sum().backward()
    np.testing.assert_array_equal(x.grad, [2.0, 2.0, 2.0])


def test_tensor_used_by_three_ops():
    x = leaf([-1.0, 0.5, 2.0])
    y = x * 3.0 + x**2 + x.exp()
    y.sum().backward()
    np.testing.assert_allclose(x.grad, 3.0 + 2 * x.data + np.exp(x.data), rtol=1e-15)


def test_diamond_through_an_intermediate():
    x = leaf([1.0, -2.0])
    h = x * 2.0
    (h * h + h).sum().backward()  # d/dx = (2h + 1) * 2
    np.testing.assert_array_equal(x.grad, (2 * h.data + 1) * 2)
    assert h.grad is None  # only leaves receive .grad


def test_getitem_with_repeated_indices_accumulates():
    x = leaf([10.0, 20.0, 30.0])
    y = x[[0, 0, 2, 0]]
    np.testing.assert_array_equal(y.data, [10.0, 10.0, 30.0, 10.0])
    y.backward(np.array([1.0, 2.0, 3.0, 4.0]))
    np.testing.assert_array_equal(x.grad, [7.0, 0.0, 3.0])


def test_max_shares_the_gradient_among_ties():
    x = leaf([[1.0, 3.0, 3.0], [5.0, 2.0, 5.0]])
    F.max(x, axis=1).sum().backward()
    np.testing.assert_array_equal(x.grad, [[0.0, 0.5, 0.5], [0.5, 0.0, 0.5]])


def test_documented_gradients_at_kinks():
    x = leaf([-1.0, 0.0, 1.0])
    (F.abs(x) + F.relu(x)).sum().backward()
    np.testing.assert_array_equal(x.grad, [-1.0, 0.0, 2.0])  # abs and relu: 0 at 0
    x = leaf([-1.0, 0.0, 0.5, 1.0, 2.0])
    F.clip(x, 0.0, 1.0).sum().backward()
    np.testing.assert_array_equal(x.grad, [0.0, 1.0, 1.0, 1.0, 0.0])  # bounds included


# ------------------------------------------------------------ deep and freed


def test_chain_of_ten_thousand_ops():
    x = leaf([1.0, 2.0])
    y = x
    for _ in range(10_000):
        y = y * 1.0001
    assert 10_000 > sys.getrecursionlimit()
    y.sum().backward()
    np.testing.assert_allclose(x.grad, np.full(2, 1.0001**10_000), rtol=1e-10)


def test_grad_accumulates_across_backward_calls():
    x = leaf([1.0, 2.0, 3.0])
    (x * x).sum().backward()
    (x * 3.0).sum().backward()
    np.testing.assert_array_equal(x.grad, 2 * x.data + 3.0)
    x.zero_grad()
    assert x.grad is None


def test_backward_through_a_freed_graph_raises():
    x = leaf([1.0, 2.0])
    y = (x * x).sum()
    y.backward()
    with pytest.raises(RuntimeError, match="retain_graph"):
        y.backward()


def test_backward_through_a_freed_shared_subgraph_raises():
    x = leaf([1.0, 2.0])
    h = x.exp()
    h.sum().backward()
    with pytest.raises(RuntimeError, match=r"Exp.*retain_graph"):
        (h * 2.0).sum().backward()


def test_retain_graph_allows_a_second_backward():
    x = leaf([1.0, 2.0])
    y = (x * x).sum()
    y.backward(retain_graph=True)
    y.backward()
    np.testing.assert_array_equal(x.grad, 2 * (2 * x.data))
    with pytest.raises(RuntimeError, match="retain_graph"):
        y.backward()


def test_backward_frees_the_graph():
    x = leaf([1.0, 2.0])
    h = x.exp()  # Exp saves its output for backward
    saved = weakref.ref(h.data)
    y = h.sum()
    del h
    assert saved() is not None  # kept by the Exp node, which backward needs
    y.backward()
    assert saved() is None  # released once the node was used
    assert np.allclose(x.grad, np.exp([1.0, 2.0]))


def test_graph_keeps_no_intermediate_that_backward_does_not_need():
    x = leaf([1.0, 2.0])
    t = x * 3.0 + 1.0  # Add saves nothing: the sum's data is not needed by backward
    data = weakref.ref(t.data)
    y = t.sum()
    del t
    assert data() is None
    y.backward()
    assert np.array_equal(x.grad, [3.0, 3.0])


# ------------------------------------------------------------------ no_grad


def test_no_grad_builds_no_graph():
    x = leaf([1.0, 2.0])
    with no_grad():
        assert not tinycnn.is_grad_enabled()
        y = (x * 2.0).exp()
    assert tinycnn.is_grad_enabled()
    assert not y.requires_grad and y._ctx is None
    with pytest.raises(RuntimeError, match="does not require grad"):
        y.sum().backward()


def test_no_grad_keeps_no_activations_alive():
    x = leaf([1.0, 2.0])
    with no_grad():
        h = x.exp()
        alive = weakref.ref(h)
        y = h * 2.0
    del h
    assert alive() is None
    np.testing.assert_allclose(y.data, 2 * np.exp(x.data))


def test_no_grad_as_a_decorator():
    @no_grad()
    def double(t):
        """Doc."""
        return t * 2.0

    x = leaf([1.0])
    y = double(x)
    assert not y.requires_grad and y._ctx is None
    assert double.__name__ == "double" and double.__doc__ == "Doc."
    assert tinycnn.is_grad_enabled()


def test_no_grad_restores_the_mode_after_an_exception_and_nests():
    with pytest.raises(ZeroDivisionError):
        with no_grad():
            1 / 0
    assert tinycnn.is_grad_enabled()
    x = leaf([1.0])
    with no_grad():
        with tinycnn.enable_grad():
            y = x * 2.0
        z = x * 2.0
    assert y.requires_grad and y._ctx is not None
    assert not z.requires_grad


def test_gradients_reach_only_leaves_that_require_grad():
    a, b = leaf([1.0, 2.0]), Tensor(np.array([3.0, 4.0]))
    h = a * b
    (h + b).sum().backward()
    np.testing.assert_array_equal(a.grad, b.data)
    assert b.grad is None and h.grad is None
    c = b * 2.0  # no input requires grad: no graph even with grad enabled
    assert not c.requires_grad and c._ctx is None


def test_detach_cuts_the_graph():
    x = leaf([1.0, 2.0])
    d = x.detach()
    assert np.shares_memory(d.data, x.data)
    assert not d.requires_grad and d.is_leaf
    (d * x).sum().backward()
    np.testing.assert_array_equal(x.grad, x.data)  # d is a constant
    assert d.grad is None


def test_backward_needs_grad_for_a_non_scalar():
    x = leaf([1.0, 2.0])
    with pytest.raises(RuntimeError, match=r"single-element.*\(2,\)"):
        (x * 2.0).backward()
    y = x * 2.0
    y.backward(np.array([1.0, 10.0]))
    np.testing.assert_array_equal(x.grad, [2.0, 20.0])


def test_backward_accepts_a_single_element_non_scalar():
    x = leaf([[3.0]])
    (x * x).backward()
    np.testing.assert_array_equal(x.grad, [[6.0]])


# ------------------------------------------------------------- dtype rules


@pytest.mark.parametrize(
    "data, dtype, expected",
    [
        ([1, 2], None, np.float32),
        ([1.5, 2.5], None, np.float32),
        (3, None, np.float32),
        (2.5, None, np.float32),
        (True, None, np.float32),
        (np.arange(3), None, np.float32),
        (np.ones(2, np.float32), None, np.float32),
        (np.ones(2, np.float64), None, np.float64),
        (np.float64(1.0), None, np.float64),
        ([1, 2], np.float64, np.float64),
        (np.ones(2, np.float64), np.float32, np.float32),
        (np.ones(2, np.float32), "float64", np.float64),
        ([1, 2], np.int64, np.int64),
    ],
)
def test_tensor_dtype_rules(data, dtype, expected):
    assert Tensor(data, dtype=dtype).dtype == expected


def test_float_arrays_are_shared_not_copied():
    a = np.ones(3)
    t = Tensor(a)
    assert t.numpy() is a and np.shares_memory(t.data, a)


def test_result_dtypes_follow_the_inputs():
    x32, x64 = Tensor(np.ones(3, np.float32)), Tensor(np.ones(3))
    assert (x32 + 2.5).dtype == np.float32
    assert (x32 * np.float64(2.0)).dtype == np.float32  # a scalar takes the tensor's dtype
    assert (1.0 / x32).dtype == np.float32
    assert (x32**0.5).dtype == np.float32
    assert (x32 + x64).dtype == np.float64  # two tensors promote as NumPy


def test_cast_sends_gradients_back_in_the_input_dtype():
    x = leaf([1.0, 2.0], dtype=np.float32)
    y = F.cast(x, np.float64)
    assert y.dtype == np.float64
    (y * y).sum().backward()
    assert x.grad.dtype == np.float32
    np.testing.assert_array_equal(x.grad, [2.0, 4.0])
    z = leaf([1.0, 2.0])
    w = z.astype(np.float32)
    assert w.dtype == np.float32
    (w * 3.0).sum().backward()
    assert z.grad.dtype == np.float64
    np.testing.assert_array_equal(z.grad, [3.0, 3.0])
    assert F.cast(z, np.float64) is z


def test_tensor_properties():
    t = Tensor(np.arange(6.0).reshape(2, 3))
    assert t.shape == (2, 3) and t.ndim == 2 and t.dtype == np.float64 and t.size == 6 and len(t) == 2
    assert isinstance(t.numpy(), np.ndarray) and t.numpy() is t.data
    assert Tensor([[4.5]]).item() == 4.5 and isinstance(Tensor([[4.5]]).item(), float)
    assert t.is_leaf and not t.requires_grad and t.grad is None
    with pytest.raises(ValueError, match=r"item: .*\(2, 3\)"):
        t.item()


def test_ndarray_operand_on_the_left_defers_to_tensor():
    x = leaf([1.0, 2.0])
    y = np.array([3.0, 4.0]) * x
    assert isinstance(y, Tensor)
    y.sum().backward()
    np.testing.assert_array_equal(x.grad, [3.0, 4.0])


def test_softmax_and_sigmoid_do_not_overflow():
    x = leaf([[1000.0, 0.0, -1000.0]])
    with np.errstate(over="raise", invalid="raise", divide="raise"):
        s = F.softmax(x, axis=1)
        ls = F.log_softmax(x, axis=1)
        g = F.sigmoid(x)
    np.testing.assert_allclose(s.data, [[1.0, 0.0, 0.0]], atol=1e-300)
    np.testing.assert_allclose(ls.data, [[0.0, -1000.0, -2000.0]])
    np.testing.assert_allclose(g.data, [[1.0, 0.5, 0.0]], atol=1e-300)


# --------------------------------------------------------- PyTorch parity


def _torch():
    return pytest.importorskip("torch")


def _compare(ours, theirs, our_leaves, their_leaves):
    np.testing.assert_allclose(ours.data, theirs.detach().numpy(), rtol=1e-12, atol=1e-12)
    for a, b in zip(our_leaves, their_leaves):
        np.testing.assert_allclose(a.grad, b.grad.numpy(), rtol=1e-10, atol=1e-12)


def test_torch_parity_micrograd_sanity():
    torch = _torch()

    def expr(x, relu):
        z = 2 * x + 2 + x
        q = relu(z) + z * x
        h = relu(z * z)
        return h + q + q * x

    x = leaf(-4.0)
    y = expr(x, F.relu)
    y.backward()
    xt = torch.tensor(-4.0, dtype=torch.float64, requires_grad=True)
    yt = expr(xt, torch.relu)
    yt.backward()
    _compare(y, yt, [x], [xt])


def test_torch_parity_micrograd_more_ops():
    torch = _torch()

    def expr(a, b, relu):
        c = a + b
        d = a * b + b**3
        c = c + c + 1
        c = c + 1 + c + (-a)
        d = d + d * 2 + relu(b + a)
        d = d + 3 * d + relu(b - a)
        e = c - d
        f = e**2
        g = f / 2.0
        return g + 10.0 / f

    a, b = leaf(-4.0), leaf(2.0)
    g = expr(a, b, F.relu)
    g.backward()
    at, bt = (torch.tensor(v, dtype=torch.float64, requires_grad=True) for v in (-4.0, 2.0))
    gt = expr(at, bt, torch.relu)
    gt.backward()
    _compare(g, gt, [a, b], [at, bt])


def test_torch_parity_mlp_with_losses():
    torch = _torch()
    tF = torch.nn.functional
    rng = np.random.default_rng(0)
    arrays = [rng.standard_normal(s) for s in [(4, 5), (5, 6), (6,), (6, 3)]]
    target = np.array([2, 0, 1, 2])
    regress = rng.standard_normal((4, 3))

    ours = [leaf(a) for a in arrays]
    x, w1, b1, w2 = ours
    logits = F.tanh(x @ w1 + b1) @ w2
    loss = F.cross_entropy(logits, target, label_smoothing=0.1) + 0.5 * F.mse_loss(
        F.sigmoid(logits), Tensor(regress), reduction="sum"
    )
    loss.backward()

    theirs = [torch.tensor(a, requires_grad=True) for a in arrays]
    xt, w1t, b1t, w2t = theirs
    logits_t = torch.tanh(xt @ w1t + b1t) @ w2t
    loss_t = tF.cross_entropy(logits_t, torch.tensor(target), label_smoothing=0.1) + 0.5 * tF.mse_loss(
        torch.sigmoid(logits_t), torch.tensor(regress), reduction="sum"
    )
    loss_t.backward()
    _compare(loss, loss_t, ours, theirs)


def test_torch_parity_shape_ops_and_reductions():
    torch = _torch()
    rng = np.random.default_rng(1)
    x_np = rng.uniform(0.2, 2.0, (3, 4)) * rng.choice([-1.0, 1.0], (3, 4))

    x = leaf(x_np)
    y = F.sigmoid(x[[0, 0, 2]] * 2.0)
    z = F.concatenate([y, F.sqrt(F.abs(x))], axis=0)
    w = F.clip(F.leaky_relu(F.pad(z, ((1, 0), (0, 2)), value=0.5), 0.1), -0.5, 0.8)
    out = F.max(F.log_softmax(w, axis=1), axis=0).mean() + (F.softmax(w, axis=0) ** 1.5).sum() / x.exp().mean()
    out.backward()

    xt = torch.tensor(x_np, requires_grad=True)
    yt = torch.sigmoid(xt[[0, 0, 2]] * 2.0)
    zt = torch.cat([yt, torch.sqrt(torch.abs(xt))], dim=0)
    wt = torch.clamp(torch.nn.functional.leaky_relu(torch.nn.functional.pad(zt, (0, 2, 1, 0), value=0.5), 0.1), -0.5, 0.8)
    out_t = torch.amax(torch.log_softmax(wt, dim=1), dim=0).mean() + (
        torch.softmax(wt, dim=0) ** 1.5
    ).sum() / xt.exp().mean()
    out_t.backward()
    _compare(out, out_t, [x], [xt])


def test_torch_parity_batched_matmul_and_layout_ops():
    torch = _torch()
    rng = np.random.default_rng(2)
    a_np, b_np = rng.standard_normal((2, 1, 3, 4)), rng.standard_normal((3, 4, 2))

    a, b = leaf(a_np), leaf(b_np)
    c = (a @ b).permute(0, 2, 1, 3).reshape(2, 3, 6)  # (2, 3, 3, 2) -> (2, 3, 6)
    e = F.stack([c, c * c], axis=1)
    out = (F.softmax(e, axis=-1) / (1.0 + F.abs(e))).sum(axis=(1, 3)).transpose(0, 1)
    loss = (out**2).mean() - F.flatten(e, 1)[:, ::5].sum()
    loss.backward()

    at, bt = torch.tensor(a_np, requires_grad=True), torch.tensor(b_np, requires_grad=True)
    ct = (at @ bt).permute(0, 2, 1, 3).reshape(2, 3, 6)
    et = torch.stack([ct, ct * ct], dim=1)
    out_t = (torch.softmax(et, dim=-1) / (1.0 + torch.abs(et))).sum(dim=(1, 3)).transpose(0, 1)
    loss_t = (out_t**2).mean() - torch.flatten(et, 1)[:, ::5].sum()
    loss_t.backward()
    _compare(loss, loss_t, [a, b], [at, bt])

"""tinycnn.optim: optimizers, schedulers and clipping against PyTorch (float64,
same parameters and gradient sequence), hand-checked single steps, state-dict
round trips through .npz, and argument checks."""

import io
import math

import numpy as np
import pytest

from tinycnn import Tensor
from tinycnn.nn import Module, Parameter
from tinycnn.optim import (
    SGD, Adam, AdamW, CosineAnnealingLR, OneCycleLR, StepLR, clip_grad_norm_, clip_grad_value_,
    param_groups_without_decay,
)

SHAPES = [(3, 4), (4,), (2, 2, 3)]
STEPS = 20
OPTIMIZERS = {"SGD": SGD, "Adam": Adam, "AdamW": AdamW}
CONFIGS = [
    ("SGD", dict(lr=0.1)),
    ("SGD", dict(lr=0.1, momentum=0.9)),
    ("SGD", dict(lr=0.1, momentum=0.9, nesterov=True)),
    ("SGD", dict(lr=0.1, momentum=0.9, weight_decay=0.05)),
    ("SGD", dict(lr=0.1, momentum=0.8, dampening=0.3)),
    ("SGD", dict(lr=0.05, weight_decay=0.1)),
    ("Adam", dict(lr=1e-2)),
    ("Adam", dict(lr=1e-2, betas=(0.8, 0.99), weight_decay=0.1)),
    ("Adam", dict(lr=1e-2, amsgrad=True)),
    ("AdamW", dict(lr=1e-2)),
    ("AdamW", dict(lr=1e-2, weight_decay=0.1, amsgrad=True)),
]


@pytest.fixture(scope="module")
def torch():
    return pytest.importorskip("torch")


def _arrays(seed, dtype=np.float64):
    rng = np.random.default_rng(seed)
    return [rng.standard_normal(s).astype(dtype) for s in SHAPES]


def _grad_sequence(seed, steps=STEPS):
    """Per step, one gradient per parameter; parameter 1 has none at step 3
    (optimizers skip it) and gradients vary in scale so amsgrad's max matters."""
    rng = np.random.default_rng(seed)
    seq = []
    for t in range(steps):
        grads = [rng.standard_normal(s) * (3.0 if t % 4 == 0 else 0.5) for s in SHAPES]
        if t == 3:
            grads[1] = None
        seq.append(grads)
    return seq


def _groups(params, grouped):
    if not grouped:
        return params
    return [{"params": [params[0]], "lr": 0.003}, {"params": params[1:]}]


def _run_tiny(name, kwargs, seed=0, grouped=False, dtype=np.float64, steps=range(STEPS), params=None, opt=None):
    params = params or [Parameter(a) for a in _arrays(seed, dtype)]
    opt = opt or OPTIMIZERS[name](_groups(params, grouped), **kwargs)
    seq = _grad_sequence(seed + 1)
    for t in steps:
        for p, g in zip(params, seq[t]):
            p.grad = None if g is None else g.astype(dtype)
        opt.step()
    return params, opt


def _run_torch(torch, name, kwargs, seed=0, grouped=False):
    params = [torch.nn.Parameter(torch.tensor(a)) for a in _arrays(seed)]
    opt = getattr(torch.optim, name)(_groups(params, grouped), foreach=False, **kwargs)
    for grads in _grad_sequence(seed + 1):
        for p, g in zip(params, grads):
            p.grad = None if g is None else torch.tensor(g)
        opt.step()
    return [p.detach().numpy() for p in params]


# --------------------------------------------------------------- vs PyTorch
@pytest.mark.parametrize("name,kwargs", CONFIGS, ids=[f"{n}-{'-'.join(k)}" for n, k in CONFIGS])
def test_optimizer_matches_torch_for_20_steps(torch, name, kwargs):
    ours, _ = _run_tiny(name, kwargs)
    theirs = _run_torch(torch, name, kwargs)
    for p, ref in zip(ours, theirs):
        np.testing.assert_allclose(p.data, ref, rtol=1e-10, atol=1e-13)
    assert not np.allclose(ours[0].data, _arrays(0)[0])  # it moved


@pytest.mark.parametrize("name,kwargs", [("SGD", dict(lr=0.1, momentum=0.9)), ("Adam", dict(lr=1e-2)),
                                         ("AdamW", dict(lr=1e-2))])
def test_param_groups_with_their_own_lr_match_torch(torch, name, kwargs):
    ours, opt = _run_tiny(name, kwargs, grouped=True)
    theirs = _run_torch(torch, name, kwargs, grouped=True)
    assert [g["lr"] for g in opt.param_groups] == [0.003, kwargs["lr"]]
    for p, ref in zip(ours, theirs):
        np.testing.assert_allclose(p.data, ref, rtol=1e-10, atol=1e-13)


def _lr_sequence(opt, sched, steps, key="lr"):
    """The group values at steps 0 .. steps - 1."""
    seq = []
    for t in range(steps):
        if t:
            sched.step()
        seq.append([g[key] if key != "betas" else g["betas"][0] for g in opt.param_groups])
    return np.array(seq)


def _torch_pair(torch, optimizer="SGD"):
    params = [torch.nn.Parameter(torch.zeros(n, dtype=torch.float64)) for n in (2, 3)]
    groups = [{"params": params[:1], "lr": 0.1}, {"params": params[1:], "lr": 0.02}]
    if optimizer == "SGD":
        return torch.optim.SGD(groups, lr=0.1, momentum=0.9)
    return torch.optim.Adam(groups, lr=0.1)


def _tiny_pair(optimizer="SGD"):
    params = [Parameter(np.zeros(2)), Parameter(np.zeros(3))]
    groups = [{"params": params[:1], "lr": 0.1}, {"params": params[1:], "lr": 0.02}]
    return SGD(groups, lr=0.1, momentum=0.9) if optimizer == "SGD" else Adam(groups, lr=0.1)


SCHEDULES = [
    ("StepLR", dict(step_size=3, gamma=0.5), 20),
    ("CosineAnnealingLR", dict(T_max=10, eta_min=1e-3), 36),
    ("CosineAnnealingLR", dict(T_max=7), 7),
    ("OneCycleLR", dict(max_lr=[1.0, 0.5], total_steps=30), 31),
    ("OneCycleLR", dict(max_lr=1.0, total_steps=30, anneal_strategy="linear", pct_start=0.25), 31),
    ("OneCycleLR", dict(max_lr=1.0, total_steps=30, three_phase=True), 31),
    ("OneCycleLR", dict(max_lr=1.0, total_steps=25, three_phase=True, anneal_strategy="linear",
                        base_momentum=0.8, max_momentum=0.9, div_factor=10.0, final_div_factor=100.0), 26),
]


@pytest.mark.filterwarnings("ignore:Detected call of")
@pytest.mark.parametrize("name,kwargs,steps", SCHEDULES, ids=[f"{s[0]}-{i}" for i, s in enumerate(SCHEDULES)])
def test_scheduler_lr_sequence_matches_torch(torch, name, kwargs, steps):
    ours_opt, theirs_opt = _tiny_pair(), _torch_pair(torch)
    ours = globals()[name](ours_opt, **kwargs)
    theirs = getattr(torch.optim.lr_scheduler, name)(theirs_opt, **kwargs)
    ours_lr, theirs_lr = _lr_sequence(ours_opt, ours, steps), _lr_sequence(theirs_opt, theirs, steps)
    np.testing.assert_allclose(ours_lr, theirs_lr, rtol=1e-12, atol=1e-15)
    assert ours.get_last_lr() == [g["lr"] for g in ours_opt.param_groups]
    assert len(set(ours_lr[:, 0])) > 2
    if name == "OneCycleLR":  # momentum cycles too, and one more step is an error in both
        ours_m = [g["momentum"] for g in ours_opt.param_groups]
        assert ours_m == pytest.approx([g["momentum"] for g in theirs_opt.param_groups], rel=1e-12)
        with pytest.raises(ValueError, match="total_steps"):
            ours.step()
        with pytest.raises(ValueError):
            theirs.step()


@pytest.mark.filterwarnings("ignore:Detected call of")
def test_one_cycle_cycles_adam_beta1_like_torch(torch):
    ours_opt, theirs_opt = _tiny_pair("Adam"), _torch_pair(torch, "Adam")
    ours = OneCycleLR(ours_opt, max_lr=0.3, total_steps=20)
    theirs = torch.optim.lr_scheduler.OneCycleLR(theirs_opt, max_lr=0.3, total_steps=20)
    ours_b, theirs_b = _lr_sequence(ours_opt, ours, 20, "betas"), _lr_sequence(theirs_opt, theirs, 20, "betas")
    np.testing.assert_allclose(ours_b, theirs_b, rtol=1e-12)
    assert ours_b.min() == pytest.approx(0.85) and ours_b.max() == pytest.approx(0.95)
    assert ours_opt.param_groups[0]["betas"][1] == 0.999


@pytest.mark.parametrize("norm_type", [2.0, 1.0, 3.0, math.inf])
@pytest.mark.parametrize("max_norm", [0.5, 1e3])
def test_clip_grad_norm_matches_torch(torch, norm_type, max_norm):
    grads = [g for g in _grad_sequence(5, 1)[0]]
    ours = [Parameter(np.zeros(s)) for s in SHAPES]
    theirs = [torch.nn.Parameter(torch.zeros(s, dtype=torch.float64)) for s in SHAPES]
    for p, q, g in zip(ours, theirs, grads):
        p.grad = None if g is None else g.copy()
        q.grad = None if g is None else torch.tensor(g)
    total = clip_grad_norm_(ours, max_norm, norm_type)
    ref = torch.nn.utils.clip_grad_norm_(theirs, max_norm, norm_type)
    assert isinstance(total, float) and total == pytest.approx(ref.item(), rel=1e-12)
    for p, q in zip(ours, theirs):
        np.testing.assert_allclose(p.grad, q.grad.numpy(), rtol=1e-12)
    assert (max_norm < total) == (not np.array_equal(ours[0].grad, grads[0]))


# ---------------------------------------------------- hand-checked (no torch)
def _one_param(value, grad, dtype=np.float64):
    p = Parameter(np.array(value, dtype=dtype))
    p.grad = np.array(grad, dtype=dtype)
    return p


def test_sgd_hand_checked_steps():
    p = _one_param([1.0, -2.0], [0.5, 1.0])
    opt = SGD([p], lr=0.1, momentum=0.9, weight_decay=0.1)
    opt.step()  # g = grad + 0.1 p = [0.6, 0.8]; buf = g
    np.testing.assert_allclose(p.data, [1.0 - 0.06, -2.0 - 0.08], rtol=1e-15)
    p.grad = np.array([0.0, 0.0])
    opt.step()  # g = 0.1 p = [0.094, -0.208]; buf = 0.9 * [0.6, 0.8] + g
    np.testing.assert_allclose(p.data, [0.94 - 0.1 * 0.634, -2.08 - 0.1 * 0.512], rtol=1e-14)
    n = _one_param([1.0], [1.0])
    opt = SGD([n], lr=0.1, momentum=0.5, nesterov=True)
    opt.step()  # buf = 1, step = 1 + 0.5 * 1
    np.testing.assert_allclose(n.data, [0.85], rtol=1e-15)


@pytest.mark.parametrize("cls,expected", [(Adam, 1.0 - 0.1 * 0.5 / (0.5 + 1e-8)),
                                          (AdamW, 1.0 * (1 - 0.1 * 0.2) - 0.1 * 0.5 / (0.5 + 1e-8))])
def test_adam_first_step_is_lr_times_sign(cls, expected):
    p = _one_param([1.0], [0.5])
    cls([p], lr=0.1, weight_decay=0.2 if cls is AdamW else 0.0).step()
    np.testing.assert_allclose(p.data, [expected], rtol=1e-14)


def test_adam_l2_decay_enters_the_moments():
    p = _one_param([2.0], [0.0])
    opt = Adam([p], lr=0.1, weight_decay=0.5)
    opt.step()  # g = 0.5 * 2 = 1 -> first step moves by lr * sign(g)
    np.testing.assert_allclose(p.data, [2.0 - 0.1 / (1 + 1e-8)], rtol=1e-14)
    assert opt.state[id(p)]["step"] == 1
    np.testing.assert_allclose(opt.state[id(p)]["exp_avg"], [0.1])


def test_params_without_grad_are_skipped_and_keep_no_state():
    a, b = _one_param([1.0], [1.0]), Parameter(np.array([5.0]))
    opt = Adam([a, b], lr=0.1)
    opt.step()
    assert b.data[0] == 5.0 and id(b) not in opt.state and a.data[0] != 1.0
    opt.zero_grad()
    assert a.grad is None and b.grad is None


def test_clip_grad_norm_hand_checked_and_value_clip():
    p, q = _one_param([0.0], [3.0]), _one_param([0.0, 0.0], [0.0, 4.0], np.float32)
    total = clip_grad_norm_([p, q, Parameter(np.zeros(2))], max_norm=1.0)
    assert total == pytest.approx(5.0, rel=1e-12)
    np.testing.assert_allclose(p.grad, [3.0 / (5.0 + 1e-6)], rtol=1e-14)
    assert q.grad.dtype == np.float32 and q.grad[1] == pytest.approx(4.0 / 5.0, rel=1e-6)
    near = _one_param([0.0, 0.0], [3.0, 4.0])
    clip_grad_norm_([near], max_norm=5.0)  # PyTorch's rule: total == max_norm still scales by 5 / (5 + 1e-6)
    np.testing.assert_allclose(near.grad, np.array([3.0, 4.0]) * 5.0 / (5.0 + 1e-6), rtol=1e-15)
    assert near.grad[0] != 3.0
    unchanged = _one_param([0.0], [0.5])
    assert clip_grad_norm_(unchanged, 1.0) == 0.5 and unchanged.grad[0] == 0.5
    assert clip_grad_norm_([Parameter(np.zeros(1))], 1.0) == 0.0
    bad = _one_param([0.0], [np.inf])
    with pytest.raises(RuntimeError, match="inf"):
        clip_grad_norm_([bad], 1.0, error_if_nonfinite=True)
    v = _one_param([0.0, 0.0, 0.0], [-3.0, 0.2, 7.0], np.float32)
    clip_grad_value_([v], 0.5)
    np.testing.assert_array_equal(v.grad, np.array([-0.5, 0.2, 0.5], np.float32))


@pytest.mark.parametrize("name,kwargs", [("SGD", dict(lr=0.1, momentum=0.9, weight_decay=0.01)),
                                         ("Adam", dict(lr=1e-2, amsgrad=True)), ("AdamW", dict(lr=1e-2))])
def test_float32_parameters_stay_float32_and_track_float64(name, kwargs):
    p32, opt = _run_tiny(name, kwargs, dtype=np.float32)
    p64, _ = _run_tiny(name, kwargs)
    for a, b in zip(p32, p64):
        assert a.data.dtype == np.float32
        np.testing.assert_allclose(a.data, b.data, rtol=1e-4, atol=1e-5)
    for entry in opt.state.values():
        assert all(v.dtype == np.float32 for v in entry.values() if isinstance(v, np.ndarray))


def test_float64_grads_do_not_promote_float32_parameters_or_state():
    for cls, kwargs in ((SGD, dict(lr=0.1, momentum=0.9)), (Adam, dict(amsgrad=True))):
        p = Parameter(np.ones(3, np.float32))
        opt = cls([p], **kwargs)
        for _ in range(2):
            p.grad = np.full(3, 0.5)  # float64
            opt.step()
        assert p.data.dtype == np.float32 and p.data[0] < 1
        assert all(v.dtype == np.float32 for v in opt.state[id(p)].values() if isinstance(v, np.ndarray))


def test_updates_are_in_place_on_the_parameter_array():
    p = _one_param([1.0, 2.0], [1.0, 1.0])
    array = p.data
    SGD([p], lr=0.5).step()
    assert p.data is array and array.tolist() == [0.5, 1.5]


def test_param_group_lr_zero_freezes_that_group_only():
    for cls in (SGD, Adam, AdamW):
        a, b = _one_param([1.0], [1.0]), _one_param([1.0], [1.0])
        opt = cls([{"params": [a], "lr": 0.0}, {"params": [b]}], lr=0.1, weight_decay=0.1)
        opt.step()
        assert a.data[0] == 1.0 and b.data[0] < 1.0, cls.__name__


def test_warmup_cosine_matches_hand_written_closed_form():
    eta_min, W, T, f = 0.01, 5, 25, 0.1
    opt = _tiny_pair()  # group lrs 0.1 and 0.02

    def expected(base):
        ramp = np.linspace(f * base, base, W + 1)[:-1]
        cosine = eta_min + 0.5 * (base - eta_min) * (1 + np.cos(np.pi * np.arange(T - W + 1) / (T - W)))
        return np.concatenate([ramp, cosine])

    sched = CosineAnnealingLR(opt, T_max=T, eta_min=eta_min, warmup_steps=W, warmup_start_factor=f)
    got = _lr_sequence(opt, sched, T + 1)
    np.testing.assert_allclose(got, np.stack([expected(0.1), expected(0.02)], axis=1), rtol=1e-12)
    assert got[0, 0] == pytest.approx(f * 0.1) and got[W, 0] == pytest.approx(0.1)
    assert got[T, 0] == pytest.approx(eta_min) and np.all(np.diff(got[:W + 1, 0]) > 0)


def test_step_lr_and_cosine_hand_checked():
    opt = _tiny_pair()
    sched = StepLR(opt, step_size=2, gamma=0.5)
    np.testing.assert_allclose(_lr_sequence(opt, sched, 6)[:, 0], [0.1, 0.1, 0.05, 0.05, 0.025, 0.025])
    opt = _tiny_pair()
    sched = CosineAnnealingLR(opt, T_max=4)
    np.testing.assert_allclose(_lr_sequence(opt, sched, 5)[:, 0],
                               [0.1, 0.05 * (1 + math.sqrt(0.5)), 0.05, 0.05 * (1 - math.sqrt(0.5)), 0.0],
                               atol=1e-16)


# ---------------------------------------------------------- state dicts
def _flatten(obj, prefix=""):
    """Nested dicts/lists of dicts -> {'a/0/b': ndarray} for np.savez."""
    if isinstance(obj, dict) or (isinstance(obj, list) and obj and isinstance(obj[0], dict)):
        items = obj.items() if isinstance(obj, dict) else enumerate(obj)
        out = {}
        for key, value in items:
            out.update(_flatten(value, f"{prefix}{key}/"))
        return out
    return {prefix.rstrip("/"): np.asarray(obj)}


def _through_npz(state):
    buffer = io.BytesIO()
    np.savez(buffer, **_flatten(state))
    buffer.seek(0)
    nested = {}
    with np.load(buffer, allow_pickle=False) as archive:
        for key in archive.files:
            *path, leaf = key.split("/")
            node = nested
            for part in path:
                node = node.setdefault(part, {})
            node[leaf] = archive[key]
    return nested


@pytest.mark.parametrize("name,kwargs", [("SGD", dict(lr=0.1, momentum=0.9, nesterov=True, weight_decay=0.01)),
                                         ("Adam", dict(lr=1e-2, amsgrad=True, weight_decay=0.1)),
                                         ("AdamW", dict(lr=1e-2))])
def test_optimizer_resumes_bitwise_from_a_state_dict_saved_to_npz(name, kwargs):
    full, _ = _run_tiny(name, kwargs, grouped=True, steps=range(10))
    first, opt = _run_tiny(name, kwargs, grouped=True, steps=range(5))
    saved = opt.state_dict()
    params = [Parameter(p.data.copy()) for p in first]
    fresh = OPTIMIZERS[name](_groups(params, True), lr=0.5)  # hyperparameters come from the state dict
    fresh.load_state_dict(_through_npz(saved))
    _run_tiny(name, kwargs, steps=range(5, 10), params=params, opt=fresh)
    for a, b in zip(params, full):
        np.testing.assert_array_equal(a.data, b.data)
    assert all(isinstance(i, int) for i in saved["param_groups"][1]["params"])


def test_state_dict_is_a_copy_with_documented_structure():
    p = _one_param([1.0, 2.0], [1.0, 1.0])
    opt = Adam([{"params": [p], "lr": 0.01}], betas=(0.8, 0.9), amsgrad=True)
    opt.step()
    saved = opt.state_dict()
    assert set(saved) == {"state", "param_groups"}
    assert saved["param_groups"] == [dict(lr=0.01, betas=[0.8, 0.9], eps=1e-8, weight_decay=0.0, amsgrad=True,
                                          params=[0])]
    assert sorted(saved["state"][0]) == ["exp_avg", "exp_avg_sq", "max_exp_avg_sq", "step"]
    assert saved["state"][0]["step"] == 1
    before = saved["state"][0]["exp_avg"].copy()
    opt.step()
    np.testing.assert_array_equal(saved["state"][0]["exp_avg"], before)
    opt.load_state_dict(saved)
    assert opt.param_groups[0]["betas"] == (0.8, 0.9) and opt.state[id(p)]["step"] == 1


def test_load_state_dict_rejects_mismatches_and_changes_nothing():
    a, b = _one_param([1.0, 2.0], [1.0, 1.0]), _one_param([[1.0]], [[1.0]])
    opt = SGD([a, b], lr=0.1, momentum=0.9)
    opt.step()
    good = opt.state_dict()
    other = SGD([Parameter(np.zeros(3)), Parameter(np.zeros((1, 1)))], lr=0.3)
    with pytest.raises(ValueError, match=r"shape \(3,\)"):
        other.load_state_dict(good)
    assert other.param_groups[0]["lr"] == 0.3 and other.state == {}
    with pytest.raises(ValueError, match="param groups"):
        SGD([{"params": [a]}, {"params": [b]}], lr=0.1).load_state_dict(good)
    with pytest.raises(ValueError, match="does not keep"):
        Adam([a, b]).load_state_dict(good)
    bad = dict(good, param_groups=[dict(good["param_groups"][0], lr=-1.0)])
    with pytest.raises(ValueError, match="lr"):
        opt.load_state_dict(bad)
    assert opt.param_groups[0]["lr"] == 0.1


def _train_with_schedule(make_sched, steps, params=None, opt=None, sched=None, saved=None):
    params = params or [Parameter(a) for a in _arrays(3)]
    opt = opt or SGD([{"params": params[:1], "lr": 0.1}, {"params": params[1:], "lr": 0.02}], lr=0.1,
                     momentum=0.9)
    sched = sched or make_sched(opt)
    if saved is not None:
        opt.load_state_dict(_through_npz(saved[0]))
        sched.load_state_dict(_through_npz(saved[1]))
    seq = _grad_sequence(4)
    lrs = []
    for t in steps:
        for p, g in zip(params, seq[t]):
            p.grad = g
        opt.step()
        sched.step()
        lrs.append(sched.get_last_lr() + [opt.param_groups[0]["momentum"]])
    return params, opt, sched, lrs


@pytest.mark.parametrize("make_sched", [
    lambda o: StepLR(o, 3, 0.5),
    lambda o: CosineAnnealingLR(o, T_max=12, eta_min=1e-3, warmup_steps=4, warmup_start_factor=0.1),
    lambda o: OneCycleLR(o, max_lr=[0.5, 0.1], total_steps=10, three_phase=True),
], ids=["StepLR", "CosineWarmup", "OneCycleLR"])
def test_scheduler_resumes_bitwise_from_a_state_dict(make_sched):
    full, _, _, full_lrs = _train_with_schedule(make_sched, range(10))
    first, opt, sched, _ = _train_with_schedule(make_sched, range(5))
    saved = (opt.state_dict(), sched.state_dict())
    params = [Parameter(p.data.copy()) for p in first]
    fresh_opt = SGD([{"params": params[:1]}, {"params": params[1:]}], lr=0.7)
    fresh = make_sched(fresh_opt)
    _, _, _, lrs = _train_with_schedule(make_sched, range(5, 10), params, fresh_opt, fresh, saved)
    assert lrs == full_lrs[5:]
    for a, b in zip(params, full):
        np.testing.assert_array_equal(a.data, b.data)
    assert fresh.last_epoch == 10


# ------------------------------------------------------- weight-decay groups
class _Net(Module):
    def __init__(self):
        super().__init__()
        self.weight = Parameter(np.ones((2, 3)))
        self.bias = Parameter(np.ones(3))
        self.gamma = Parameter(np.ones(3))
        self.scale = Parameter(np.ones(()))


def test_exempt_bn_and_bias_does_not_decay_1d_params():
    net = _Net()
    for p in net.parameters():
        p.grad = np.zeros_like(p.data)
    opt = SGD(net.parameters(), lr=0.1, weight_decay=0.5, exempt_bn_and_bias=True)
    assert [g["weight_decay"] for g in opt.param_groups] == [0.5, 0.0]
    opt.step()
    np.testing.assert_allclose(net.weight.data, 0.95)
    for p in (net.bias, net.gamma, net.scale):
        np.testing.assert_array_equal(p.data, 1.0)
    decayed_everything = SGD([Parameter(np.ones(3))], lr=0.1, weight_decay=0.5)
    decayed_everything.param_groups[0]["params"][0].grad = np.zeros(3)
    decayed_everything.step()
    assert decayed_everything.param_groups[0]["params"][0].data[0] == pytest.approx(0.95)


def test_param_groups_without_decay_by_name_and_ndim():
    net = _Net()
    net.bias = Parameter(np.ones((1, 3)))  # 2-D but named bias
    decay, no_decay = param_groups_without_decay(net, 0.3)
    assert decay["params"] == [net.weight] and decay["weight_decay"] == 0.3
    assert {id(p) for p in no_decay["params"]} == {id(net.bias), id(net.gamma), id(net.scale)}
    assert len(no_decay["params"]) == 3 and no_decay["weight_decay"] == 0.0
    opt = AdamW([decay, no_decay], lr=0.1)
    assert [g["weight_decay"] for g in opt.param_groups] == [0.3, 0.0]


# ------------------------------------------------------------ bad arguments
P = Parameter(np.zeros(2))
BAD = [
    (lambda: SGD([P], lr=-0.1), ValueError, r"SGD: lr must be .*>= 0, got -0.1"),
    (lambda: SGD([P], lr=0.1, momentum=-1), ValueError, "momentum must be .*>= 0, got -1"),
    (lambda: SGD([P], lr=0.1, weight_decay=-1e-4), ValueError, "weight_decay"),
    (lambda: SGD([P], lr=0.1, nesterov=True), ValueError, "nesterov=True requires momentum > 0.*momentum=0"),
    (lambda: SGD([P], lr=0.1, momentum=0.9, dampening=0.1, nesterov=True), ValueError, "dampening=0.1"),
    (lambda: SGD([P], lr="fast"), TypeError, "lr must be a number"),
    (lambda: SGD([{"params": [P], "lr": -1}], lr=0.1), ValueError, "lr .*got -1"),
    (lambda: Adam([P], betas=(0.9, 1.0)), ValueError, r"betas\[1\] must be .*\[0, 1\), got 1.0"),
    (lambda: Adam([P], betas=(-0.1, 0.9)), ValueError, r"betas\[0\]"),
    (lambda: Adam([P], betas=0.9), TypeError, "pair"),
    (lambda: Adam([P], eps=0.0), ValueError, "eps must be .*> 0, got 0.0"),
    (lambda: AdamW([P], weight_decay=-0.01), ValueError, "AdamW: weight_decay"),
    (lambda: Adam([P], lr=float("nan")), ValueError, "lr"),
    (lambda: SGD([P, np.zeros(2)], lr=0.1), TypeError, "got ndarray at position 1"),
    (lambda: SGD(P, lr=0.1), TypeError, "single Tensor"),
    (lambda: SGD(5, lr=0.1), TypeError, "iterable"),
    (lambda: SGD([], lr=0.1), ValueError, "empty"),
    (lambda: SGD([{"params": [P]}, {"params": [P]}], lr=0.1), ValueError, "another param group"),
    (lambda: SGD([P, P], lr=0.1), ValueError, "twice"),
    (lambda: SGD([Tensor(np.zeros(2, np.int64), dtype=np.int64)], lr=0.1), TypeError, "float32 or float64"),
    (lambda: StepLR(SGD([P], lr=0.1), step_size=0), ValueError, "step_size must be .*> 0, got 0"),
    (lambda: StepLR(SGD([P], lr=0.1), step_size=2.5), TypeError, "step_size must be an integer"),
    (lambda: StepLR(object(), step_size=2), TypeError, "Optimizer"),
    (lambda: CosineAnnealingLR(SGD([P], lr=0.1), T_max=5, warmup_steps=5), ValueError, "warmup_steps must be < T_max"),
    (lambda: CosineAnnealingLR(SGD([P], lr=0.1), T_max=5, warmup_start_factor=2.0), ValueError, "warmup_start"),
    (lambda: OneCycleLR(SGD([P], lr=0.1), max_lr=1.0, total_steps=0), ValueError, "total_steps"),
    (lambda: OneCycleLR(SGD([P], lr=0.1), max_lr=1.0, total_steps=9, pct_start=1.5), ValueError, "pct_start"),
    (lambda: OneCycleLR(SGD([P], lr=0.1), max_lr=1.0, total_steps=9, anneal_strategy="exp"), ValueError, "'cos'"),
    (lambda: OneCycleLR(SGD([P], lr=0.1), max_lr=[1.0, 2.0], total_steps=9), ValueError, "one per param group"),
    (lambda: clip_grad_norm_([P], max_norm=-1.0), ValueError, "max_norm"),
    (lambda: clip_grad_norm_([P], max_norm=1.0, norm_type=0), ValueError, "norm_type"),
    (lambda: clip_grad_norm_([np.zeros(2)], max_norm=1.0), TypeError, "Tensors"),
    (lambda: clip_grad_value_([P], clip_value=-1), ValueError, "clip_value"),
]


@pytest.mark.parametrize("make,error,message", BAD, ids=[m for _, _, m in BAD])
def test_bad_arguments_raise_informative_errors(make, error, message):
    with pytest.raises(error, match=message):
        make()


def test_optimizer_state_survives_zero_grad_and_lr_change_by_hand():
    p = _one_param([1.0], [1.0])
    opt = SGD([p], lr=0.1, momentum=0.9)
    opt.step()
    opt.zero_grad()
    opt.param_groups[0]["lr"] = 0.0
    p.grad = np.array([1.0])
    opt.step()
    assert p.data[0] == pytest.approx(0.9)
    np.testing.assert_allclose(opt.state[id(p)]["momentum_buffer"], [1.9])


def test_training_a_linear_layer_with_autograd_reduces_the_loss():
    import tinycnn.functional as F
    from tinycnn.nn import Linear

    rng = np.random.default_rng(0)
    x = rng.standard_normal((64, 5)).astype(np.float32)
    y = x @ rng.standard_normal((5, 2)).astype(np.float32) + 0.5
    layer = Linear(5, 2)
    opt = AdamW(param_groups_without_decay(layer, 1e-4), lr=0.05)
    sched = CosineAnnealingLR(opt, T_max=100, warmup_steps=10)
    losses = []
    for _ in range(100):
        opt.zero_grad()
        loss = F.mse_loss(layer(Tensor(x)), Tensor(y))
        loss.backward()
        clip_grad_norm_(layer.parameters(), 10.0)
        opt.step()
        sched.step()
        losses.append(float(loss.data))
    assert losses[-1] < 1e-2 * losses[0]
    assert layer.weight.data.dtype == np.float32

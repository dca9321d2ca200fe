"""The training loop: outputs, exact resume, interrupts, non-finite losses, anomaly mode."""

import csv
import json

import numpy as np
import pytest

import tinycnn
import tinycnn.functional as F
from tinycnn import Tensor, train
from tinycnn.anomaly import AnomalyError, detect_anomaly, is_anomaly_enabled

# resnet20 without SE on 64 digits, batch 16: 4 steps per epoch, a second or so per run
TINY = dict(model="resnet20", model_kwargs={}, dataset="digits", train_subset=64, test_subset=32, batch_size=16,
            epochs=2, lr=0.05, warmup_epochs=0.5)


@pytest.fixture(autouse=True)
def one_thread():
    """One thread: tiny kernels gain nothing from more, and resume is bitwise only with one."""
    before = tinycnn.get_num_threads()
    tinycnn.set_num_threads(1)
    yield
    tinycnn.set_num_threads(before)


def _fit(out, **overrides):
    return train.fit(out, progress=False, plot=False, log=lambda msg: None, **dict(TINY, **overrides))


def _stop_at_step(n):
    def on_step(trainer):
        if trainer.step == n:
            raise KeyboardInterrupt

    return on_step


def test_fit_writes_checkpoint_history_and_plot(tmp_path):
    trainer = train.fit(tmp_path, progress=True, log=lambda msg: None, **TINY)
    assert [r["epoch"] for r in trainer.history] == [1, 2]
    rows = list(csv.DictReader(open(tmp_path / "history.csv")))
    assert list(rows[0]) == list(train.HISTORY_FIELDS) and len(rows) == 2
    assert json.load(open(tmp_path / "history.json")) == trainer.history
    for r in trainer.history:
        assert 0 <= r["test_acc"] <= 1 and np.isfinite(r["train_loss"]) and r["images_per_s"] > 0
    ckpt = train.load_checkpoint(tmp_path / "checkpoint.npz")
    assert ckpt["epoch"] == 2 and ckpt["step"] == 8
    assert ckpt["meta"]["model"] == "resnet20" and ckpt["meta"]["num_classes"] == 10
    assert ckpt["meta"]["image_shape"] == [8, 8, 1] and len(ckpt["meta"]["mean"]) == 1
    assert ckpt["meta"]["classes"] == [str(i) for i in range(10)]
    model, meta = train.model_from_checkpoint(tmp_path / "checkpoint.npz")
    for name, value in trainer.model.state_dict().items():
        assert np.array_equal(model.state_dict()[name], value), name
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        assert not (tmp_path / "curves.png").exists()
    else:
        assert (tmp_path / "curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def _assert_same_state(a, b):
    sa, sb = a.model.state_dict(), b.model.state_dict()
    assert list(sa) == list(sb)
    for name in sa:
        assert np.array_equal(sa[name], sb[name]), name


@pytest.mark.parametrize("stop", ["epoch", "step"])
def test_resume_is_bitwise_identical(tmp_path, stop):
    straight = _fit(tmp_path / "straight")
    if stop == "epoch":
        def on_epoch_end(trainer, row):
            raise KeyboardInterrupt
        with pytest.raises(KeyboardInterrupt):
            _fit(tmp_path / "resumed", on_epoch_end=on_epoch_end)
    else:
        with pytest.raises(KeyboardInterrupt):
            _fit(tmp_path / "resumed", on_step=_stop_at_step(3))
    tinycnn.manual_seed(12345)  # a resumed run must not depend on the process's generator state
    resumed = train.fit(tmp_path / "resumed", resume=tmp_path / "resumed" / "checkpoint.npz", progress=False,
                        plot=False, log=lambda msg: None)
    _assert_same_state(straight, resumed)
    assert resumed.step == straight.step == 8
    assert len(resumed.history) == 2
    assert [r["test_acc"] for r in resumed.history] == [r["test_acc"] for r in straight.history]
    opt_a, opt_b = straight.optimizer.state_dict()["state"], resumed.optimizer.state_dict()["state"]
    for i in opt_a:
        assert np.array_equal(opt_a[i]["momentum_buffer"], opt_b[i]["momentum_buffer"])


def test_keyboard_interrupt_saves_a_checkpoint(tmp_path):
    with pytest.raises(KeyboardInterrupt):
        _fit(tmp_path, on_step=_stop_at_step(2))
    ckpt = train.load_checkpoint(tmp_path / "checkpoint.npz")
    assert (ckpt["epoch"], ckpt["batch"], ckpt["step"]) == (0, 2, 2)
    assert ckpt["loader"]["batch"] == 2 and ckpt["history"] == []


def test_resume_cannot_change_epochs(tmp_path):
    with pytest.raises(KeyboardInterrupt):
        _fit(tmp_path, on_step=_stop_at_step(1))
    with pytest.raises(ValueError, match="epochs"):
        train.Trainer(tmp_path, resume=tmp_path / "checkpoint.npz", epochs=5)


def test_non_finite_loss_names_the_step(tmp_path, monkeypatch):
    real = F.cross_entropy
    calls = []

    def poisoned(logits, targets, **kwargs):
        calls.append(1)
        loss = real(logits, targets, **kwargs)
        return loss * float("nan") if len(calls) == 3 else loss

    monkeypatch.setattr(F, "cross_entropy", poisoned)
    with pytest.raises(train.TrainingError, match=r"nan at step 3 \(epoch 1, batch 3\)"):
        _fit(tmp_path)
    assert issubclass(train.TrainingError, RuntimeError)


def test_bad_settings_are_rejected(tmp_path):
    with pytest.raises(ValueError, match="optimizer"):
        _fit(tmp_path, optimizer="rmsprop")
    with pytest.raises(TypeError, match="unknown settings"):
        _fit(tmp_path, learning_rate=0.1)
    with pytest.raises(ValueError, match="batch_size"):
        _fit(tmp_path, batch_size=1000)


def test_split_option_splits_a_test_only_source():
    train_set, test_set = train.load_datasets("digits", split=300)
    assert len(train_set) == 300 and len(test_set) == 59  # the digits test split has 359 images
    full = train.load_datasets("digits")[1]
    both = np.concatenate([train_set.labels, test_set.labels])
    assert np.array_equal(np.sort(both), np.sort(full.labels))  # a partition of the source
    again = train.load_datasets("digits", split=300)[0]
    assert np.array_equal(again.images, train_set.images)  # fixed
    with pytest.raises(ValueError, match="split"):
        train.load_datasets("digits", split=359)


# ------------------------------------------------------------------ anomaly mode


def test_anomaly_mode_names_the_forward_op():
    x = Tensor(np.array([-1.0, 1.0]), requires_grad=True)
    with np.errstate(invalid="ignore"):
        assert np.isnan(F.log(x).data[0])  # off: no check
        with detect_anomaly():
            assert is_anomaly_enabled()
            with pytest.raises(AnomalyError, match="Log produced a non-finite value in forward"):
                F.log(x)
    assert not is_anomaly_enabled()


def test_anomaly_mode_names_the_backward_op():
    x = Tensor(np.array([0.0, 4.0]), requires_grad=True)
    with np.errstate(divide="ignore"):
        with tinycnn.detect_anomaly():
            y = F.sqrt(x).sum()  # forward is finite; d sqrt(x)/dx at 0 is inf
            with pytest.raises(AnomalyError, match="Sqrt produced a non-finite gradient in backward"):
                y.backward()
    assert issubclass(AnomalyError, FloatingPointError)


def test_anomaly_mode_in_training(tmp_path):
    trainer = _fit(tmp_path, epochs=1, train_subset=16, test_subset=16, anomaly=True)
    assert len(trainer.history) == 1 and not is_anomaly_enabled()

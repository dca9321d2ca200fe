"""The command line, run in-process through tinycnn.cli.main."""

import numpy as np
import pytest

import tinycnn
from tinycnn import train
from tinycnn.cli import main

COMMANDS = ["demo", "train", "eval", "predict", "summary", "models"]
TINY = ["--model", "resnet20", "--train-subset", "64", "--test-subset", "32", "--batch-size", "16", "--epochs", "1",
        "--quiet", "--no-plot"]


@pytest.fixture(autouse=True)
def restore_threads():
    """The CLI sets the thread count (one thread for small images); put it back."""
    before = tinycnn.get_num_threads()
    yield
    tinycnn.set_num_threads(before)


@pytest.mark.parametrize("command", [[]] + [[c] for c in COMMANDS])
def test_help_exits_zero(command, capsys):
    assert main(command + ["--help"]) == 0
    assert "usage: tinycnn" in capsys.readouterr().out


def test_models_lists_names(capsys):
    assert main(["models"]) == 0
    names = capsys.readouterr().out.split()
    assert {"resnet20", "resnet18", "se_resnet50", "xception"} <= set(names)


def test_summary_prints_a_table(capsys):
    assert main(["summary", "resnet20", "--input-shape", "8", "8", "1"]) == 0
    out = capsys.readouterr().out
    assert "layer1.0.conv1" in out or "conv1" in out
    assert "272,186" in out.replace(" ", "") or "272186" in out.replace(",", "")  # resnet20, 1 channel, 10 classes


@pytest.mark.parametrize("argv, message", [
    (["train", "--epochs", "0"], "--epochs: expected a positive integer"),
    (["train", "--model", "resnet21"], "unknown model 'resnet21'"),
    (["train", "--optimizer", "rmsprop"], "invalid choice: 'rmsprop'"),
    (["train", "--dataset", "/no/such/folder"], "neither a dataset name"),
    (["eval", "/no/such.npz"], "no such checkpoint"),
    (["summary", "resnet21"], "unknown model"),
    (["frobnicate"], "invalid choice"),
    (["train", "--dataset", "digits", "--download"], "not a downloadable dataset"),
    (["summary", "resnet20", "--input-shape", "8", "8"], "--input-shape"),
])
def test_bad_arguments_exit_2_with_one_line(argv, message, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1 and "Traceback" not in err


def test_train_eval_predict(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["train", *TINY, "--out", str(out)]) == 0
    captured = capsys.readouterr()
    assert "test accuracy:" in captured.out
    for name in ("checkpoint.npz", "history.csv", "history.json"):
        assert (out / name).is_file()
    ckpt = out / "checkpoint.npz"
    history_acc = train.load_checkpoint(ckpt)["history"][-1]["test_acc"]

    assert main(["eval", str(ckpt)]) == 0
    assert f"accuracy {100 * history_acc:.2f}%" in capsys.readouterr().out  # same 32 test images

    from tinycnn.data import get_dataset
    digits = get_dataset("digits", "test")
    paths = []
    for i in range(3):
        paths.append(tmp_path / f"digit{i}.npy")
        np.save(paths[-1], digits.images[i])
    big = tmp_path / "big.npy"  # 16x16 float 0-1: rescaled and resized to 8x8x1
    np.save(big, np.kron(digits.images[0, :, :, 0] / 255.0, np.ones((2, 2))))
    assert main(["predict", str(ckpt), *map(str, paths), str(big)]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 4
    for line in lines:
        label, prob = line.split(": ")[1].split(" (")
        assert label in [str(d) for d in range(10)] and 0 < float(prob.rstrip("%)")) <= 100


def test_predict_image_file(tmp_path, capsys):
    Image = pytest.importorskip("PIL.Image")
    out = tmp_path / "run"
    assert main(["train", *TINY, "--train-subset", "16", "--out", str(out)]) == 0
    png = tmp_path / "x.png"
    Image.fromarray(np.full((20, 20, 3), 200, np.uint8)).save(png)
    capsys.readouterr()
    assert main(["predict", str(out / "checkpoint.npz"), str(png)]) == 0
    assert capsys.readouterr().out.startswith(f"{png}: ")
    assert main(["predict", str(out / "checkpoint.npz"), str(tmp_path / "missing.png")]) == 2


def test_ctrl_c_exits_130_with_checkpoint(tmp_path, monkeypatch, capsys):
    real = train.Trainer._train_step

    def interrupted(self, x, y):
        if self.step == 2:
            raise KeyboardInterrupt
        return real(self, x, y)

    monkeypatch.setattr(train.Trainer, "_train_step", interrupted)
    out = tmp_path / "run"
    assert main(["train", *TINY, "--out", str(out)]) == 130
    err = capsys.readouterr().err
    assert f"checkpoint saved to {out / 'checkpoint.npz'}" in err
    ckpt = train.load_checkpoint(out / "checkpoint.npz")
    assert ckpt["step"] == 2 and ckpt["batch"] == 2
    monkeypatch.setattr(train.Trainer, "_train_step", real)
    assert main(["train", "--resume", str(out / "checkpoint.npz"), "--quiet", "--no-plot"]) == 0
    assert train.load_checkpoint(out / "checkpoint.npz")["step"] == 4


def test_detect_anomaly_flag(tmp_path, capsys):
    assert main(["train", *TINY, "--train-subset", "16", "--detect-anomaly", "--out", str(tmp_path)]) == 0

"""A training run's history on disk, beside its checkpoint.

One row per epoch (the fields of :data:`tinycnn.checkpoint.HISTORY_FIELDS`)
goes to ``history.json`` and ``history.csv``; ``curves.png`` plots loss and
accuracy (needs matplotlib).  Every file is written atomically
(:func:`tinycnn.serialization.atomic_write`).
"""

import csv
import io
import json
import os

from .checkpoint import HISTORY_FIELDS
from .serialization import atomic_write


def write_history(out_dir, history):
    """Write ``history.json`` and ``history.csv`` under ``out_dir``."""
    os.makedirs(out_dir, exist_ok=True)
    atomic_write(os.path.join(out_dir, "history.json"), lambda f: f.write(json.dumps(history, indent=1).encode()))
    text = io.StringIO()
    writer = csv.DictWriter(text, fieldnames=HISTORY_FIELDS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(history)
    atomic_write(os.path.join(out_dir, "history.csv"), lambda f: f.write(text.getvalue().encode()))


def write_plot(out_dir, history, title, log):
    """Write ``curves.png`` under ``out_dir``; returns its path, or None
    (after calling ``log`` with the reason) without matplotlib."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        log("curves.png skipped: matplotlib is not installed (pip install 'tinycnn[plot]')")
        return None
    epochs = [r["epoch"] for r in history]
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 4))
    ax1.plot(epochs, [r["train_loss"] for r in history], "o-", label="train")
    ax1.plot(epochs, [r["test_loss"] for r in history], "o-", label="test")
    ax1.set(xlabel="epoch", ylabel="cross-entropy loss", title="Loss")
    ax2.plot(epochs, [100 * r["train_acc"] for r in history], "o-", label="train")
    ax2.plot(epochs, [100 * r["test_acc"] for r in history], "o-", label="test")
    ax2.set(xlabel="epoch", ylabel="accuracy (%)", title="Accuracy")
    for ax in (ax1, ax2):
        ax.grid(alpha=0.3)
        ax.legend()
    fig.suptitle(title)
    fig.tight_layout()
    path = os.path.join(out_dir, "curves.png")
    atomic_write(path, lambda f: fig.savefig(f, format="png", dpi=100))
    plt.close(fig)
    return path

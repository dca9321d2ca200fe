"""Helpers shared by the example scripts: arguments, the MNIST folder, MNIST batches, PNG output."""

import argparse
import os
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]


def mnist_folder():
    """``$TINYCNN_SHARED_DATA/mnist`` if that variable is set, else ``<repo>/../shared/data/mnist``."""
    shared = os.environ.get("TINYCNN_SHARED_DATA")
    return Path(shared) / "mnist" if shared else REPO.parent / "shared" / "data" / "mnist"


def parser(description, data=True):
    """The arguments every example takes: ``--quick``, ``--out DIR`` and (optionally) the MNIST folder."""
    p = argparse.ArgumentParser(description=description)
    if data:
        p.add_argument("data", nargs="?", default=None,
                       help="folder holding MNIST's t10k IDX files (default: $TINYCNN_SHARED_DATA/mnist "
                            "or ../shared/data/mnist next to the repository)")
    p.add_argument("--quick", action="store_true", help="a tiny budget (seconds), for tests")
    p.add_argument("--out", default="example_out", help="folder for the PNG files (default: example_out)")
    return p


def mnist_arrays(folder, size=28):
    """MNIST's 10,000 t10k images as float32 (N, size, size, 1), normalised, and their labels.

    ``size=14`` averages 2x2 pixel blocks: four times less work per image,
    which is what lets the depth-56 experiments run in minutes.
    """
    from tinycnn.data import get_dataset

    ds = get_dataset(str(folder), "test")
    x = ds.images.astype(np.float32) / 255.0
    if size == 14:
        x = x.reshape(-1, 14, 2, 14, 2, 1).mean(axis=(2, 4))
    elif size != 28:
        raise ValueError(f"size must be 28 or 14, got {size}")
    x = (x - x.mean()) / x.std()
    return x.astype(np.float32), ds.labels.astype(np.int64)


def pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save(fig, out, name):
    """Write ``fig`` to ``out/name`` (creating ``out``) and return the path."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    path = out / name
    fig.savefig(path, dpi=80, bbox_inches="tight")
    pyplot().close(fig)
    print(f"wrote {path}")
    return path

"""Train the CIFAR-style ResNet-20 on MNIST's 10,000 test images (8000 train / 2000 test).

    python examples/train_mnist_resnet.py [MNIST_FOLDER] [--quick] [--out DIR]

Uses the library's own training loop, ``tinycnn.train.fit`` (the machinery
behind ``python -m tinycnn train``): SGD with Nesterov momentum, a cosine
learning rate after one warm-up epoch, random-crop augmentation, a
checkpoint every epoch.  Writes into DIR:

- ``curves.png``: loss and accuracy per epoch (written by ``fit``);
- ``first_layer_filters.png``: the 16 3x3 filters of the stem convolution,
  before and after training;
- ``checkpoint.npz``, ``history.csv``, ``history.json``.

MNIST's t10k files hold only a test split, so ``split=8000`` shuffles them
with a fixed seed and trains on the first 8000.  The default budget
(3 epochs on 4000 of those 8000 images) takes a few minutes on two cores;
``--quick`` trains one epoch on 256 images.
"""

import sys
import time

import numpy as np

from _shared import mnist_folder, parser, pyplot, save
from tinycnn.train import fit


def plot_filters(before, after, out):
    """One row per moment, one 3x3 image per filter (weight layout (KH, KW, C_in, C_out))."""
    plt = pyplot()
    n = before.shape[3]
    fig, axes = plt.subplots(2, n, figsize=(n * 0.7, 1.8))
    for row, (w, label) in enumerate(((before, "init"), (after, "trained"))):
        for k in range(n):
            ax = axes[row, k]
            f = w[:, :, 0, k]
            lim = np.abs(f).max()
            ax.imshow(f, cmap="RdBu_r", vmin=-lim, vmax=lim)
            ax.set_xticks([])
            ax.set_yticks([])
        axes[row, 0].set_ylabel(label, fontsize=8)
    fig.suptitle("ResNet-20 stem: conv1 filters (red +, blue -)", fontsize=9)
    return save(fig, out, "first_layer_filters.png")


def main(argv=None):
    args = parser(__doc__.splitlines()[0]).parse_args(argv)
    folder = args.data or mnist_folder()
    budget = dict(epochs=1, train_subset=256, test_subset=256) if args.quick else \
        dict(epochs=3, train_subset=4000, test_subset=2000)
    config = dict(model="resnet20", model_kwargs={}, dataset=str(folder), split=8000, batch_size=32, lr=0.1,
                  augment="crop", seed=0, **budget)

    # the stem's filters before training: fit() builds the model with seed 0, so rebuild the same one
    from tinycnn.random import manual_seed
    from tinycnn.models import resnet20

    manual_seed(config["seed"])
    before = resnet20(num_classes=10, in_chans=1).conv1.weight.data.copy()

    start = time.perf_counter()
    trainer = fit(args.out, progress=False, **config)
    seconds = time.perf_counter() - start
    last = trainer.history[-1]
    print(f"resnet20, {budget['epochs']} epoch(s) on {len(trainer.train_set)} images: "
          f"test accuracy {100 * last['test_acc']:.2f}% on {len(trainer.test_set)} images "
          f"({seconds:.0f} s)")
    print(f"wrote {args.out}/curves.png")
    plot_filters(before, trainer.model.conv1.weight.data, args.out)
    return last["test_acc"]


if __name__ == "__main__":
    sys.exit(0 if main() is not None else 1)

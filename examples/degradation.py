"""The degradation experiment (He et al. 2015, figure 1 and 6): plain nets against
residual nets at depth 20 and 56, trained on the same data in the same order.

    python examples/degradation.py [MNIST_FOLDER] [--quick] [--out DIR]

A *plain* net here is the same CIFAR ResNet (3x3 stem of 16 maps, three stages
of 16/32/64 maps, global average pooling, a dense layer) with every shortcut
removed: :class:`PlainBlock` is ``tinycnn.models.BasicBlock`` without
``out = out + identity``.  ``tinycnn.models`` offers only residual nets, so the
plain block is built here from ``tinycnn.nn``, and ``tinycnn.models.ResNet``
assembles both kinds.

Budget (stated, the same for all four nets): MNIST's t10k images shrunk to
14x14 (2x2 averages), batch 32, SGD with momentum 0.9, lr 0.05, weight decay
1e-4, ``--steps`` steps (default 150; ``--quick``: 4).  Every net sees the same
batches.  Writes ``degradation.png``: the training loss per step (smoothed) of
the four nets.  The paper's finding to look for: the plain 56-layer net trains
*worse* than the plain 20-layer one (deeper is harder to optimise, not
overfitting: this is training loss), while the residual 56-layer net does not
suffer.  With a budget this short the curves show the start of training only.
"""

import sys
import time

import numpy as np

from _shared import mnist_arrays, mnist_folder, parser, pyplot, save
from tinycnn import Tensor, functional as F, nn, optim
from tinycnn.models import BasicBlock, ResNet
from tinycnn.random import manual_seed


class PlainBlock(nn.Module):
    """BasicBlock without the shortcut: conv-BN-ReLU-conv-BN-ReLU.

    Takes (and ignores) ResNet's ``downsample`` argument, so
    ``ResNet._make_layer`` builds it exactly where it would build a BasicBlock.
    """

    expansion = 1

    def __init__(self, inplanes, planes, stride=1, downsample=None, se_reduction=None):
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU()

    def forward(self, x):
        out = self.relu(self.bn1(self.conv1(x)))
        return self.relu(self.bn2(self.conv2(out)))


def cifar_net(depth, residual):
    """The CIFAR net of ``depth = 6n + 2`` layers, with or without shortcuts."""
    n = (depth - 2) // 6
    block = BasicBlock if residual else PlainBlock
    return ResNet(block, [n, n, n], num_classes=10, in_chans=1, stem="cifar", widths=(16, 32, 64))


def train(model, x, y, steps, batch_size=32, seed=0):
    """Plain SGD loop; returns the training loss of every step."""
    opt = optim.SGD(model.parameters(), lr=0.05, momentum=0.9, weight_decay=1e-4)
    order = np.random.default_rng(seed).permutation(len(x))  # the same batches for every net
    losses = []
    model.train()
    for step in range(steps):
        idx = order[(step * batch_size) % len(x):][:batch_size]
        opt.zero_grad()
        loss = F.cross_entropy(model(Tensor(x[idx])), y[idx])
        loss.backward()
        opt.step()
        losses.append(float(loss.data))
    return np.array(losses)


def smooth(values, k=10):
    k = max(1, min(k, len(values)))
    return np.convolve(values, np.ones(k) / k, mode="valid")


def main(argv=None):
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--steps", type=int, default=150, help="training steps per net (default 150)")
    args = p.parse_args(argv)
    steps = 4 if args.quick else args.steps
    x, y = mnist_arrays(args.data or mnist_folder(), size=14)

    curves = {}
    for depth in (20, 56):
        for residual in (False, True):
            name = f"{'ResNet' if residual else 'plain'}-{depth}"
            manual_seed(0)
            model = cifar_net(depth, residual)
            start = time.perf_counter()
            curves[name] = train(model, x, y, steps)
            tail = curves[name][-min(20, steps):].mean()
            print(f"{name:10s} {model.num_parameters():7,d} parameters: training loss over the last "
                  f"{min(20, steps)} steps {tail:.3f} ({time.perf_counter() - start:.0f} s)")

    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6, 3.6))
    styles = {"plain-20": ("tab:blue", "--"), "plain-56": ("tab:red", "--"),
              "ResNet-20": ("tab:blue", "-"), "ResNet-56": ("tab:red", "-")}
    k = 10 if steps >= 40 else 1
    for name, losses in curves.items():
        color, style = styles[name]
        s = smooth(losses, k)
        ax.plot(np.arange(len(s)) + k, s, style, color=color, label=name)
    ax.set(xlabel=f"step (batch 32; mean of {k} steps)", ylabel="training loss",
           title="Plain vs residual nets on MNIST 14x14")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    save(fig, args.out, "degradation.png")
    return curves


if __name__ == "__main__":
    main()
    sys.exit(0)

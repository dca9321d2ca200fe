"""The channel weights of squeeze-and-excitation blocks in a trained network.

    python examples/se_weights.py [MNIST_FOLDER] [--quick] [--out DIR]

Trains a CIFAR ResNet-20 with an SE unit in every block
(``resnet20(se=True, se_reduction=4)``) briefly on MNIST 14x14 (6000 training
images, the rest held out), then runs 1000 held-out images through it and
records each SE unit's gate ``s = sigmoid(fc2(relu(fc1(mean over H, W))))``,
one number in (0, 1) per channel and image.  Writes ``se_weights.png``: for the
last block of each stage, the mean gate per digit class (rows) and channel
(columns).  Hu et al. (2017) found early gates nearly class-independent and
later ones increasingly class-specific; the figure lets you check that here.

Budget: 250 steps of batch 32 (``--quick``: 3 steps), SGD momentum 0.9, lr 0.05.
"""

import sys

import numpy as np

from _shared import mnist_arrays, mnist_folder, parser, pyplot, save
from tinycnn import Tensor, functional as F, nn, no_grad, optim
from tinycnn.models import resnet20
from tinycnn.random import manual_seed


class RecordGates(nn.Module):
    """Wraps an SEModule: same output, and keeps the gates it applied (N, C)."""

    def __init__(self, se):
        super().__init__()
        self.se = se
        self.gates = []

    def forward(self, x):
        se = self.se
        s = F.sigmoid(se.fc2(F.relu(se.fc1(F.global_avg_pool2d(x)))))
        self.gates.append(s.data.copy())
        return x * F.reshape(s, (x.shape[0], 1, 1, x.shape[3]))


def main(argv=None):
    args = parser(__doc__.splitlines()[0]).parse_args(argv)
    steps, n_eval = (3, 200) if args.quick else (250, 1000)
    x, y = mnist_arrays(args.data or mnist_folder(), size=14)
    x_train, y_train, x_test, y_test = x[:6000], y[:6000], x[6000:6000 + n_eval], y[6000:6000 + n_eval]

    manual_seed(0)
    model = resnet20(num_classes=10, in_chans=1, se=True, se_reduction=4)
    opt = optim.SGD(model.parameters(), lr=0.05, momentum=0.9, weight_decay=1e-4)
    order = np.random.default_rng(0).permutation(len(x_train))
    model.train()
    for step in range(steps):
        idx = order[(step * 32) % len(x_train):][:32]
        opt.zero_grad()
        loss = F.cross_entropy(model(Tensor(x_train[idx])), y_train[idx])
        loss.backward()
        opt.step()

    # wrap the SE unit of the last block of each stage, then run the held-out images
    recorders = {}
    for stage in model.stage_names:
        blocks = getattr(model, stage)
        last = blocks[len(blocks) - 1]
        last.se = recorders[f"{stage}.{len(blocks) - 1}"] = RecordGates(last.se)
    model.eval()
    correct = 0
    with no_grad():
        for i in range(0, len(x_test), 250):
            logits = model(Tensor(x_test[i:i + 250]))
            correct += int((logits.data.argmax(axis=1) == y_test[i:i + 250]).sum())
    print(f"SE-ResNet-20 after {steps} steps: held-out accuracy {100 * correct / len(x_test):.1f}% "
          f"on {len(x_test)} images")

    plt = pyplot()
    fig, axes = plt.subplots(1, len(recorders), figsize=(11, 3.2),
                             gridspec_kw={"width_ratios": [r.se.channels for r in recorders.values()]})
    for ax, (name, rec) in zip(axes, recorders.items()):
        gates = np.concatenate(rec.gates)  # (images, C)
        per_class = np.stack([gates[y_test == k].mean(axis=0) for k in range(10)])
        spread = per_class.std(axis=0).mean()
        print(f"{name}.se: {gates.shape[1]} channels, mean gate {gates.mean():.3f}, "
              f"std across classes {spread:.3f}")
        im = ax.imshow(per_class, aspect="auto", cmap="viridis", vmin=0, vmax=1)
        ax.set(title=f"{name}.se ({gates.shape[1]} ch)", xlabel="channel", ylabel="digit class")
        ax.set_yticks(range(10))
    fig.colorbar(im, ax=list(axes), fraction=0.02, label="mean SE gate")
    save(fig, args.out, "se_weights.png")
    return recorders


if __name__ == "__main__":
    main()
    sys.exit(0)

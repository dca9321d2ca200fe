"""A one-minute demonstration: train a small CNN on generated images.

Four classes of 12x12 single-channel images — a horizontal bar, a vertical
bar, a diagonal and a square outline — drawn at random positions with noise.
A small network (convolution, BatchNorm, ReLU, max-pool, a depthwise
separable convolution, global average pooling, a dense layer) learns them
with SGD and momentum; the held-out accuracy is printed at the end.
"""

import time

import numpy as np

from . import functional as F
from . import nn
from .autograd import no_grad
from .random import manual_seed
from .tensor import Tensor

CLASSES = ("horizontal bar", "vertical bar", "diagonal", "square")


def make_shapes(n, size=12, seed=0):
    """``n`` noisy images (n, size, size, 1) float32 and labels (n,) int64."""
    rng = np.random.default_rng(seed)
    images = rng.normal(0.0, 0.3, size=(n, size, size, 1)).astype(np.float32)
    labels = rng.integers(0, len(CLASSES), size=n)
    for img, label in zip(images[..., 0], labels):
        r, c = rng.integers(2, size - 6, size=2)
        length = rng.integers(4, 6)
        if label == 0:
            img[r, c : c + length] += 1.0
        elif label == 1:
            img[r : r + length, c] += 1.0
        elif label == 2:
            idx = np.arange(length)
            img[r + idx, c + idx] += 1.0
        else:
            img[r, c : c + 4] += 1.0
            img[r + 3, c : c + 4] += 1.0
            img[r : r + 4, c] += 1.0
            img[r : r + 4, c + 3] += 1.0
    return images, labels.astype(np.int64)


def small_cnn(num_classes=len(CLASSES)):
    return nn.Sequential(
        nn.Conv2d(1, 16, 3, padding=1, bias=False), nn.BatchNorm2d(16), nn.ReLU(),
        nn.MaxPool2d(2),
        nn.SeparableConv2d(16, 32, 3, padding=1), nn.BatchNorm2d(32), nn.ReLU(),
        nn.GlobalAvgPool2d(),
        nn.Linear(32, num_classes),
    )


def accuracy(model, images, labels, batch_size=256):
    model.eval()
    correct = 0
    with no_grad():
        for i in range(0, len(images), batch_size):
            logits = model(Tensor(images[i : i + batch_size]))
            correct += int((logits.argmax(axis=1) == labels[i : i + batch_size]).sum())
    return correct / len(images)


def run(epochs=6, batch_size=32, lr=0.05, momentum=0.9, seed=0, log=print):
    """Train the demo network; return the held-out accuracy."""
    manual_seed(seed)
    x_train, y_train = make_shapes(2000, seed=seed)
    x_test, y_test = make_shapes(500, seed=seed + 1)
    model = small_cnn()
    velocity = {id(p): np.zeros_like(p.data) for p in model.parameters()}
    order_rng = np.random.default_rng(seed)
    start = time.perf_counter()
    for epoch in range(1, epochs + 1):
        model.train()
        order = order_rng.permutation(len(x_train))
        total = 0.0
        for i in range(0, len(order), batch_size):
            idx = order[i : i + batch_size]
            loss = F.cross_entropy(model(Tensor(x_train[idx])), y_train[idx])
            model.zero_grad()
            loss.backward()
            for p in model.parameters():
                v = velocity[id(p)]
                v *= momentum
                v += p.grad
                p.data -= lr * v
            total += loss.item() * len(idx)
        log(f"epoch {epoch}/{epochs}  loss {total / len(order):.4f}  "
            f"test accuracy {accuracy(model, x_test, y_test):.3f}  ({time.perf_counter() - start:.1f} s)")
    acc = accuracy(model, x_test, y_test)
    log(f"held-out accuracy on {len(x_test)} generated images: {acc:.1%}")
    return acc

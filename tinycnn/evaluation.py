"""A trained model on data: :func:`evaluate` (loss and accuracy on a dataset)
and :func:`predict_arrays` (class probabilities for raw images)."""

import numpy as np

from . import functional as F
from .autograd import no_grad
from .builders import eval_transform
from .data import DataLoader
from .tensor import Tensor


def evaluate(model, dataset, meta, batch_size=256):
    """``(mean cross-entropy, accuracy)`` of ``model`` on ``dataset``."""
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=False, seed=0, transform=eval_transform(meta))
    was_training = model.training
    model.eval()
    total_loss, correct = 0.0, 0
    with no_grad():
        for x, y in loader:
            logits = model(Tensor(x))
            total_loss += float(F.cross_entropy(logits, y).data) * len(y)
            correct += int((logits.data.argmax(axis=1) == y).sum())
    model.train(was_training)
    return total_loss / len(dataset), correct / len(dataset)


def predict_arrays(model, meta, images):
    """Class probabilities ``(N, num_classes)`` for raw images ``(N, H, W, C)``."""
    x = eval_transform(meta)(np.asarray(images, dtype=np.float32))
    with no_grad():
        return F.softmax(model(Tensor(x)), axis=-1).data

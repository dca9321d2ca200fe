"""Small helpers shared by several test files."""

import numpy as np

from tinycnn import nn


def randomise_batchnorm(model, seed=0):
    """Random BN statistics and affine parameters, so eval mode is not the identity."""
    rng = np.random.default_rng(seed)
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            C = m.num_features
            m.weight.data[:] = rng.uniform(0.5, 1.5, C)
            m.bias.data[:] = rng.normal(0, 0.1, C)
            m.running_mean[:] = rng.normal(0, 0.1, C)
            m.running_var[:] = rng.uniform(0.5, 1.5, C)
    return model


# A one-epoch ResNet-20 run on 32 bundled digits: seconds, and a real checkpoint.
TINY_RUN = dict(model="resnet20", model_kwargs={}, dataset="digits", train_subset=32, test_subset=16,
                batch_size=16, epochs=1, lr=0.05, warmup_epochs=0.5, progress=False, plot=False,
                log=lambda msg: None)


def tiny_checkpoint(out):
    """Train ``TINY_RUN`` into the folder ``out`` on one thread (bitwise
    reproducible) and return its ``checkpoint.npz``."""
    import tinycnn
    from tinycnn import train

    before = tinycnn.get_num_threads()
    tinycnn.set_num_threads(1)
    try:
        train.fit(out, **TINY_RUN)
    finally:
        tinycnn.set_num_threads(before)
    return out / "checkpoint.npz"

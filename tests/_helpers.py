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

"""Weight initialisation, in place, from tinycnn's seeded generator.

Fans are passed by the layers, which know their weight layouts
(convolution ``(KH, KW, C_in/groups, C_out)``, linear ``(in, out)``).
"""

import math

from ..random import get_rng

_GAINS = {"linear": 1.0, "sigmoid": 1.0, "tanh": 5.0 / 3, "relu": math.sqrt(2.0)}


def gain(nonlinearity, param=None):
    """The recommended gain for a nonlinearity (as ``torch.nn.init.calculate_gain``)."""
    if nonlinearity == "leaky_relu":
        slope = 0.01 if param is None else param
        return math.sqrt(2.0 / (1 + slope**2))
    if nonlinearity not in _GAINS:
        raise ValueError(f"gain: unknown nonlinearity {nonlinearity!r}; known: {sorted(_GAINS) + ['leaky_relu']}")
    return _GAINS[nonlinearity]


def kaiming_normal_(param, fan, nonlinearity="relu"):
    """He et al. (2015): normal with std ``gain / sqrt(fan)``."""
    std = gain(nonlinearity) / math.sqrt(fan)
    param.data[...] = get_rng().normal(0.0, std, size=param.shape)
    param.bump_version()
    return param


def kaiming_uniform_(param, fan, nonlinearity="leaky_relu", a=math.sqrt(5)):
    """Uniform with bound ``gain * sqrt(3 / fan)``; with the defaults this is
    PyTorch's default for Linear and Conv weights: ``U(-1/sqrt(fan), 1/sqrt(fan))``."""
    g = gain(nonlinearity, a) if nonlinearity == "leaky_relu" else gain(nonlinearity)
    bound = g * math.sqrt(3.0 / fan)
    return uniform_(param, -bound, bound)


def uniform_(param, low, high):
    param.data[...] = get_rng().uniform(low, high, size=param.shape)
    param.bump_version()
    return param


def normal_(param, mean=0.0, std=1.0):
    param.data[...] = get_rng().normal(mean, std, size=param.shape)
    param.bump_version()
    return param


def zeros_(param):
    param.data[...] = 0
    param.bump_version()
    return param


def ones_(param):
    param.data[...] = 1
    param.bump_version()
    return param


def constant_(param, value):
    param.data[...] = value
    param.bump_version()
    return param

"""The random number generator behind initialisation, dropout and shuffling.

One NumPy Generator, so ``tinycnn.manual_seed(n)`` makes a whole run
repeatable and a checkpoint can save and restore its state.
"""

import numbers

import numpy as np

_rng = np.random.default_rng()


def manual_seed(seed):
    """Seed tinycnn's generator (an int >= 0)."""
    global _rng
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral) or seed < 0:
        raise ValueError(f"manual_seed: seed must be a non-negative int, got {seed!r}")
    _rng = np.random.default_rng(int(seed))


def get_rng():
    """The generator itself (draw from it; do not replace it)."""
    return _rng


def get_rng_state():
    """The generator's state, a plain dict (JSON-compatible)."""
    return _rng.bit_generator.state


def set_rng_state(state):
    """Restore a state returned by :func:`get_rng_state`."""
    _rng.bit_generator.state = state

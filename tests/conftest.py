"""Shared test configuration.

Hypothesis profiles: ``ci`` (the default, used by the README's test command
and by CI) is derandomised so every run draws the same examples, has no
deadline (Numba compiles on first call) and draws enough examples per test;
``dev`` draws fewer for a quick local loop (``HYPOTHESIS_PROFILE=dev``).
"""

import os
import sys
from pathlib import Path

from hypothesis import HealthCheck, settings

# bench/ is a tool of the checkout, not installed: the parity tests reuse its
# plain-PyTorch twins of the models (bench/torch_models.py) from here.
_ROOT = str(Path(__file__).resolve().parents[1])
if _ROOT not in sys.path:
    sys.path.insert(0, _ROOT)

settings.register_profile(
    "ci",
    max_examples=100,
    deadline=None,
    derandomize=True,
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
settings.register_profile(
    "dev",
    max_examples=15,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))

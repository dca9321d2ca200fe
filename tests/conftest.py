"""Shared test configuration.

Hypothesis profiles: ``ci`` (the default, used by the README's test command
and by CI) is derandomised so every run draws the same examples, has no
deadline (Numba compiles on first call) and draws enough examples per test;
``dev`` draws fewer for a quick local loop (``HYPOTHESIS_PROFILE=dev``).
"""

import os

from hypothesis import HealthCheck, settings

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

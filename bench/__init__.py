"""tinycnn's benchmarks, run as ``python -m bench SUITE`` from the repository root.

Suites: ``kernels`` (the Numba kernels against their NumPy twins and PyTorch CPU).
Each suite is a module with ``add_arguments(parser)`` and ``run(args, torch)``
returning a report dict (``bench.report``); ``bench.cli.SUITES`` lists them, so
a new suite (models, startup) is one module and one entry there.
"""

import tinycnn._env  # noqa: F401  (thread settings before anything loads NumPy's OpenBLAS)


def main(argv=None):
    """Run ``python -m bench`` with ``argv`` (default ``sys.argv[1:]``); return the exit code."""
    from .cli import main as _main

    return _main(argv)

"""tinycnn's benchmarks, run as ``python -m bench SUITE`` from the repository root.

Suites: ``kernels`` (the Numba kernels against their NumPy twins and PyTorch
CPU), ``models`` (whole models against PyTorch), ``startup``.  Each suite is a
module with ``add_arguments(parser)`` and ``run(args)`` returning a report dict
(``bench.report``); ``bench.cli.SUITES`` lists them.  The suites that compare
engines run each contender in its own fresh process (``bench.procs``,
``bench.child``), so this package imports neither tinycnn nor PyTorch itself.
"""

from . import procs  # noqa: F401  (first: it records the user's environment before anything imports tinycnn)


def main(argv=None):
    """Run ``python -m bench`` with ``argv`` (default ``sys.argv[1:]``); return the exit code."""
    from .cli import main as _main

    return _main(argv)

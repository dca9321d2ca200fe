"""The ``python -m bench`` command line: one sub-command per suite, shared options."""

import argparse
import importlib
import shlex
import sys

from . import procs, report

# name -> (module, help).  A suite module has add_arguments(parser) and run(args),
# and may set DEFAULT_REPEATS = (default, with --quick) when its samples are slow.
SUITES = {
    "kernels": ("bench.kernels", "time the Numba kernels against the NumPy reference and PyTorch"),
    "models": ("bench.models", "training and inference images/s and peak memory of whole models"),
    "startup": ("bench.startup", "time from `import tinycnn` to the end of the first training step"),
}

DEFAULT_REPEATS, QUICK_REPEATS = 15, 5
DEFAULT_REF_REPEATS, QUICK_REF_REPEATS = 3, 1


def positive_int(text):
    """argparse type: an int >= 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected an integer >= 1, got {value}")
    return value


def add_common_arguments(parser, repeats=(DEFAULT_REPEATS, QUICK_REPEATS)):
    parser.add_argument("--repeats", type=positive_int, default=None,
                        help=f"timed samples per contender and process (default {repeats[0]}, "
                             f"{repeats[1]} with --quick); medians are reported")
    parser.add_argument("--ref-repeats", type=positive_int, default=None,
                        help=f"samples for the slow NumPy reference (default "
                             f"{DEFAULT_REF_REPEATS}, {QUICK_REF_REPEATS} with --quick, "
                             "never more than --repeats)")
    parser.add_argument("--threads", type=positive_int, default=None,
                        help="threads of each contender, set in its process by tinycnn.set_num_threads "
                             "(Numba and BLAS) or torch.set_num_threads (default: all cores)")
    parser.add_argument("--quick", action="store_true",
                        help="fewer repeats, and skip the slow reference on the largest shapes")
    parser.add_argument("--no-torch", action="store_true", help="do not time PyTorch")
    parser.add_argument("--json", metavar="PATH", help="also write the results as JSON")
    parser.add_argument("--markdown", metavar="PATH", help="also write the markdown report")


def build_parser():
    parser = argparse.ArgumentParser(
        prog="python -m bench", description="tinycnn benchmarks (figures are medians).")
    suites = parser.add_subparsers(dest="suite", metavar="SUITE")
    for name, (module_name, help_text) in SUITES.items():
        module = importlib.import_module(module_name)
        sub = suites.add_parser(name, help=help_text, description=module.__doc__)
        repeats = getattr(module, "DEFAULT_REPEATS", (DEFAULT_REPEATS, QUICK_REPEATS))
        add_common_arguments(sub, repeats)
        module.add_arguments(sub)
        sub.set_defaults(run=module.run, default_repeats=repeats)
    return parser


def _torch_installed():
    import importlib.util

    return importlib.util.find_spec("torch") is not None


def _resolve(args, parser):
    """Fill in the defaults that depend on the machine and on the other options.
    Imports no engine: the contenders run in their own processes (``bench.procs``),
    or, with ``--in-process``, the suite imports them itself."""
    limit = procs.thread_limit()
    args.threads = limit if args.threads is None else args.threads
    if not 1 <= args.threads <= limit:
        parser.error(f"--threads must be between 1 and {limit} (NUMBA_NUM_THREADS, or the cores), "
                     f"got {args.threads}")
    if args.repeats is None:
        args.repeats = args.default_repeats[1 if args.quick else 0]
    if args.ref_repeats is None:
        args.ref_repeats = QUICK_REF_REPEATS if args.quick else DEFAULT_REF_REPEATS
    args.ref_repeats = min(args.ref_repeats, args.repeats)
    args.torch = not args.no_torch and _torch_installed()
    if getattr(args, "in_process", False) and args.import_order == "tinycnn-first":
        parser.error("--import-order tinycnn-first needs fresh processes: in one process the benchmark "
                     "has imported NumPy already (drop --in-process)")


def main(argv=None):
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = build_parser()
    args = parser.parse_args(argv)
    if not hasattr(args, "run"):
        parser.print_help()
        return 0
    _resolve(args, parser)
    args.command_line = "python -m bench " + " ".join(shlex.quote(a) for a in argv)
    result = args.run(args)
    text = report.to_markdown(result)
    sys.stdout.write(text)
    if args.markdown:
        report.write_text(args.markdown, text)
    if args.json:
        report.write_text(args.json, report.to_json(result))
    return 0

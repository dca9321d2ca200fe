"""The ``tinycnn`` command line."""

import argparse
import sys


def _demo(args):
    from . import demo

    demo.run(epochs=args.epochs, seed=args.seed)
    return 0


def build_parser():
    parser = argparse.ArgumentParser(prog="tinycnn", description="tinycnn: a CNN engine on NumPy and Numba.")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    demo = commands.add_parser("demo", help="train a small CNN on generated images (about a minute)",
                               description="Train a small CNN on generated images and print its held-out accuracy.")
    demo.add_argument("--epochs", type=int, default=6, help="training epochs (default 6)")
    demo.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    demo.set_defaults(run=_demo)
    return parser


def main(argv=None):
    parser = build_parser()
    args = parser.parse_args(argv)
    if not hasattr(args, "run"):
        parser.print_help()
        return 0
    return args.run(args)


if __name__ == "__main__":
    sys.exit(main())

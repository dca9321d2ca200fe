"""The ``tinycnn`` command line (filled in by the training issue)."""

import argparse
import sys


def main(argv=None):
    parser = argparse.ArgumentParser(prog="tinycnn", description=__doc__)
    parser.parse_args(argv)
    parser.print_help()
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""The ``minseg`` command.

    minseg gradcheck [--verbose] [--seed N]    check every op's backward against central differences

Bad arguments print a one-line error and exit with status 2; a failed check exits with status 1.
"""
from __future__ import annotations

import argparse
import sys

__all__ = ["main", "build_parser"]


class _Parser(argparse.ArgumentParser):
    """An ArgumentParser whose errors are one line, with no usage dump."""

    def error(self, message):  # noqa: D401  (argparse's hook)
        self.exit(2, f"minseg: error: {message}\n")


def _cmd_gradcheck(args) -> int:
    from .gradcheck import run_suite  # noqa: PLC0415

    return 0 if run_suite(seed=args.seed, verbose=args.verbose) else 1


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``minseg`` command, one sub-parser per sub-command."""
    parser = _Parser(prog="minseg", description="Semantic segmentation from scratch in NumPy.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    p = sub.add_parser("gradcheck", help="check every op's backward against numerical gradients")
    p.add_argument("--seed", type=int, default=0, help="seed of the random inputs (default 0)")
    p.add_argument("--verbose", "-v", action="store_true", help="print each op's full report")
    p.set_defaults(func=_cmd_gradcheck)
    return parser


def main(argv=None) -> int:
    """Entry point of the ``minseg`` console script; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())

"""Make minseg's built-in datasets (shapes, digits, coins) into the cache, or into --root.

    python data_scripts/make_datasets.py                 # all, seed 0, into $MINSEG_DATA or ~/.cache/minseg
    python data_scripts/make_datasets.py shapes --seed 3 --root data/

Each dataset is generated deterministically from the seed (coins is a photograph:
the seed changes nothing) and written atomically as <root>/<name>-seed<seed>/.
Datasets already there are kept unless --force.
"""
from __future__ import annotations

import argparse
import sys

import _common  # noqa: F401  (makes `import minseg` work from a checkout)
from minseg.data import BUILTINS, data_home, prepare_builtin


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="make_datasets.py", description=__doc__.split("\n")[0])
    parser.add_argument("names", nargs="*", metavar="NAME", help=f"datasets to make (default: all of {', '.join(BUILTINS)})")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    parser.add_argument("--root", default=None,
                        help="directory to write into (default $MINSEG_DATA or ~/.cache/minseg)")
    parser.add_argument("--force", action="store_true", help="make again even when already there")
    args = parser.parse_args(argv)
    names = args.names or list(BUILTINS)
    unknown = [n for n in names if n not in BUILTINS]
    if unknown:
        parser.error(f"unknown dataset {unknown[0]!r}; expected one of {', '.join(BUILTINS)}")
    print(f"make_datasets.py: writing into {args.root or data_home()}")
    for name in names:
        try:
            path = prepare_builtin(name, seed=args.seed, root=args.root, force=args.force, verbose=True)
        except (ValueError, ImportError, OSError) as err:
            print(f"make_datasets.py: error: {name}: {err}", file=sys.stderr)
            return 1
        print(f"make_datasets.py: {name} ready in {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

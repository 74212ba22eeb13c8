"""Shared bits of the data scripts: make ``import minseg`` work from a checkout, run a main with clear errors."""
from __future__ import annotations

import sys
from pathlib import Path

try:
    import minseg  # noqa: F401
except ImportError:                                   # run from a checkout without `pip install -e .`
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def run(prog: str, fn, **kwargs) -> int:
    """Call ``fn(**kwargs)``; print a one-line error naming ``prog`` and return 1 on bad input."""
    try:
        path = fn(**kwargs)
    except (FileNotFoundError, FileExistsError, ValueError, ImportError) as err:
        print(f"{prog}: error: {err}", file=sys.stderr)
        return 1
    print(f"{prog}: wrote {path}")
    return 0

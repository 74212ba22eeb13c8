"""``python -m minseg``: the same as the ``minseg`` command."""
import sys

from .cli import main

if __name__ == "__main__":
    sys.exit(main())

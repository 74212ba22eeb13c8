"""Store what torch and torchmetrics compute in lesson 10 in lessons/data/10_torch_outputs.npz.

Lesson 10 ("Checking a framework") compares PyTorch's and torchmetrics'
results with minseg. Where torch is not installed (or with
``MINSEG_LESSONS_NO_TORCH=1``) the lesson reads those results from this
file instead. The lesson itself is the single source of what is stored:
every torch call in it goes through ``from_torch(key, compute)``, which,
with ``MINSEG_LESSONS_RECORD=PATH`` set, writes every result it computed
to ``PATH`` (plain arrays, no pickle; the inputs are not stored, the lesson
always makes them with seeded NumPy). This script runs the lesson's source
that way, with torch, and checks the file it wrote. Regenerate with

    python data_scripts/make_lesson10_outputs.py [--out PATH]
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
LESSON = ROOT / "lessons" / "src" / "10_checking_a_framework.py"
OUT = ROOT / "lessons" / "data" / "10_torch_outputs.npz"
KEYS = ("conv64", "conv32", "conv_transpose", "unpool", "bilinear", "model", "metrics", "pq")   # from_torch keys
MAX_BYTES = 200_000


def record(out: Path) -> Path:
    """Run the lesson's source with torch, recording every ``from_torch`` result into ``out``."""
    try:
        import torch  # noqa: F401
        import torchmetrics  # noqa: F401
    except ImportError as err:
        raise SystemExit(f"make_lesson10_outputs: needs torch and torchmetrics installed ({err})") from None
    env = {**os.environ, "MPLBACKEND": "Agg", "MINSEG_LESSONS_RECORD": str(out)}
    env.pop("MINSEG_LESSONS_NO_TORCH", None)
    with tempfile.TemporaryDirectory() as tmp:          # the lesson runs from a scratch directory
        run = subprocess.run([sys.executable, str(LESSON)], cwd=tmp, env=env, capture_output=True, text=True)
    if run.returncode != 0:
        raise SystemExit(f"make_lesson10_outputs: the lesson failed:\n{run.stdout[-2000:]}\n{run.stderr[-4000:]}")
    return out


def check(path: Path) -> list:
    """The keys of the file; raises when a lesson key is missing or the file is too large."""
    with np.load(path, allow_pickle=False) as z:
        files = list(z.files)
    missing = [k for k in KEYS if not any(f.startswith(k + ".") for f in files)]
    if missing:
        raise SystemExit(f"make_lesson10_outputs: {path} lacks the results of {missing}")
    size = path.stat().st_size
    if size > MAX_BYTES:
        raise SystemExit(f"make_lesson10_outputs: {path} is {size} bytes, expected at most {MAX_BYTES}")
    return files


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=OUT, help=f"where to write (default {OUT.relative_to(ROOT)})")
    args = parser.parse_args(argv)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    if args.out.exists():
        args.out.unlink()                              # nothing stale survives
    files = check(record(args.out))
    print(f"wrote {args.out} ({args.out.stat().st_size} bytes, {len(files)} arrays)")
    return 0


if __name__ == "__main__":
    sys.exit(main())

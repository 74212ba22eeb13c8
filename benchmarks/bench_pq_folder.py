"""Timing of ``minseg pq`` on COCO-format folders against the per-segment loop of COCO's algorithm.

Writes ``--images`` ground-truth and prediction PNGs of ``--size`` x ``--size``
with ``--segments`` painted rectangles each (about 21 gt and 25 predicted
segments stay visible at the defaults; VOID, crowd, shifted and re-labelled
predictions: ``random_image`` of ``tests/test_pq_command.py``) and their
JSON files to a temporary folder, then times, end to end from the files:

* minseg: :func:`minseg.folder_metrics.pq_from_coco` (one bincount of the
  (gt, pred) pairs per image, in :mod:`minseg.panoptic`) and the scores;
* the reference: ``pq_compute_loop`` of ``tests/test_pq_command.py``, COCO's
  ``pq_compute`` written with one boolean mask per segment and one test per
  pair;
* reading the PNGs alone, each side's own way (minseg: ``read_panoptic_png``;
  the loop: PIL to a uint32 array, then ``R + 256 G + 256^2 B``), to see the
  matching and counting apart from the PNG decoding both must do.

Both must give identical numbers. The four are timed in alternating blocks
(each block a warm-up and ``--repeat`` runs, so a busy machine slows all of
them alike) in CPU seconds of this process (``time.process_time``: everything
here runs on one thread, and a shared machine disturbs CPU time far less than
wall time); each figure is the median over the blocks' runs. Run from the
repository root::

    python benchmarks/bench_pq_folder.py
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.join(ROOT, "tests"))

from minseg.folder_metrics import pq_from_coco, read_panoptic_png  # noqa: E402
from test_pq_command import _ids_of, pq_compute_loop, random_image, write_coco  # noqa: E402


def cpu_side_by_side(fns: dict, blocks: int, repeats: int) -> dict:
    """Median CPU seconds of each callable, timed in alternating blocks of a warm-up and ``repeats`` runs."""
    samples = {name: [] for name in fns}
    for _ in range(blocks):
        for name, fn in fns.items():
            fn()
            for _ in range(repeats):
                t0 = time.process_time()
                fn()
                samples[name].append(time.process_time() - t0)
    return {name: float(np.median(ts)) for name, ts in samples.items()}


def same(mine: dict, ref: dict) -> bool:
    """Equal All / Things / Stuff numbers and per-class counts (bit for bit)."""
    groups = all(mine[g][k] == ref[g][k] for g in ("All", "Things", "Stuff") for k in ("pq", "sq", "rq", "n"))
    counts = all((mine["per_class"][c]["tp"], mine["per_class"][c]["fp"], mine["per_class"][c]["fn"])
                 == (r["tp"], r["fp"], r["fn"]) for c, r in ref["per_class"].items())
    return groups and counts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=50)
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--segments", type=int, default=24, help="rectangles painted per image (default 24: "
                                                                  "about 20 remain visible)")
    parser.add_argument("--blocks", type=int, default=3)
    parser.add_argument("--repeat", type=int, default=2, help="runs per block (default 2)")
    args = parser.parse_args()

    rng = np.random.default_rng(0)
    gts, preds = [], []
    for k in range(args.images):
        (g, gs), (p, ps) = random_image(rng, args.size, args.size, args.segments)
        gts.append((k + 1, g, gs))
        preds.append((k + 1, p, ps))
    n_gt = np.mean([len(s) for _, _, s in gts])
    n_pred = np.mean([len(s) for _, _, s in preds])
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        gt_json, gt_dir = write_coco(root, "gt", gts)
        pred_json, pred_dir = write_coco(root, "pred", preds)
        files = (gt_json, gt_dir, pred_json, pred_dir)

        def read_all(reader):
            return [reader(d / f"{k + 1}.png") for k in range(args.images) for d in (gt_dir, pred_dir)]

        pq, ref = pq_from_coco(*files).compute(), pq_compute_loop(*files)
        fns = {"ours": lambda: pq_from_coco(*files).compute(), "loop": lambda: pq_compute_loop(*files),
               "read": lambda: read_all(read_panoptic_png), "read_loop": lambda: read_all(_ids_of)}
        times = cpu_side_by_side(fns, blocks=args.blocks, repeats=args.repeat)
    t_ours, t_loop, t_read, t_read_loop = (times[k] for k in ("ours", "loop", "read", "read_loop"))
    print(f"numpy {np.__version__}; CPU seconds, median of {args.blocks} blocks x {args.repeat} runs")
    print(f"{args.images} images of {args.size}x{args.size}, {n_gt:.1f} gt and {n_pred:.1f} predicted segments "
          f"per image on average, VOID and crowd")
    print(f"  minseg pq_from_coco     {t_ours:8.3f} s   ({1e3 * t_ours / args.images:6.1f} ms / image)")
    print(f"  per-segment loop        {t_loop:8.3f} s   ({1e3 * t_loop / args.images:6.1f} ms / image)")
    print(f"  of which reading PNGs   {t_read:8.3f} s   (minseg)   {t_read_loop:8.3f} s   (loop)")
    print(f"  speed-up {t_loop / t_ours:5.1f}x end to end; {(t_loop - t_read_loop) / (t_ours - t_read):5.1f}x "
          f"in the matching and counting (each side's reading time taken off)")
    print(f"  identical numbers: {same(pq, ref)}   PQ {100 * pq['All']['pq']:.2f}  SQ {100 * pq['All']['sq']:.2f}  "
          f"RQ {100 * pq['All']['rq']:.2f}  (Things {100 * pq['Things']['pq']:.2f}, "
          f"Stuff {100 * pq['Stuff']['pq']:.2f})")


if __name__ == "__main__":
    main()

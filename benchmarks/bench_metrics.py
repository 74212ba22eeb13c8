"""Timings for minseg.metrics and minseg.panoptic.

* mIoU on 8 x 512 x 512 label maps with 21 classes (one confusion-matrix
  update plus the scores), beside torchmetrics' MulticlassJaccardIndex when
  it is installed.
* PQ on 8 images of 512 x 512 with about 50 segments each, VOID and crowd:
  minseg's vectorised ``PanopticQuality`` (one bincount of (gt, pred) pairs
  per image) against ``pq_loop``, the slow per-segment loop of
  ``tests/test_metrics.py`` (one boolean mask per segment, one test per
  pair). The two must give identical numbers.
* ``instances_from_semantic`` on one 512 x 512 map.

Each timing is the median of ``--repeat`` runs. Run from the repository root::

    python benchmarks/bench_metrics.py
"""
from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.join(ROOT, "tests"))

from minseg.metrics import SegmentationMetrics  # noqa: E402
from minseg.panoptic import PanopticQuality, instances_from_semantic  # noqa: E402
from test_metrics import pq_loop, random_panoptic_pair  # noqa: E402


def median_time(fn, repeat: int) -> tuple[float, object]:
    """Median wall time of ``fn()`` over ``repeat`` calls (seconds) and the last result."""
    times, out = [], None
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return float(np.median(times)), out


def same(a, b) -> bool:
    """Identical results: same keys, equal numbers, NaN equal to NaN."""
    if isinstance(a, dict):
        return all(same(a[k], b[k]) for k in b)
    return (a != a and b != b) or a == b


def bench_miou(repeat: int) -> None:
    rng = np.random.default_rng(0)
    N, H, W, K = 8, 512, 512, 21
    target = rng.integers(0, K, size=(N, H, W)).astype(np.uint8)
    pred = np.where(rng.random(target.shape) < 0.8, target, rng.integers(0, K, size=target.shape)).astype(np.uint8)
    target[rng.random(target.shape) < 0.05] = 255

    def ours():
        m = SegmentationMetrics(K, ignore_index=255)
        m.update(pred, target)
        return m.compute()["miou"]

    t, miou = median_time(ours, repeat)
    print(f"mIoU  {N}x{H}x{W}, {K} classes: minseg {1e3 * t:8.1f} ms   (mIoU {miou:.6f})")
    try:
        import torch
        from torchmetrics.classification import MulticlassJaccardIndex
    except ImportError:
        print("      torchmetrics not installed: no comparison")
        return
    tp, tt = torch.from_numpy(pred.astype(np.int64)), torch.from_numpy(target.astype(np.int64))

    def theirs():
        j = MulticlassJaccardIndex(num_classes=K, ignore_index=255, average="macro")
        j.update(tp, tt)
        return float(j.compute())

    t_tm, miou_tm = median_time(theirs, repeat)
    print(f"      torchmetrics MulticlassJaccardIndex  {1e3 * t_tm:8.1f} ms   (mIoU {miou_tm:.6f}, "
          f"|diff| {abs(miou - miou_tm):.1e})")


def bench_pq(repeat: int, loop_repeat: int) -> None:
    rng = np.random.default_rng(0)
    cats = {c: c <= 8 for c in range(1, 14)}                # 8 thing, 5 stuff categories
    images = [random_panoptic_pair(rng, 512, 512, 50, cats) for _ in range(8)]
    n_seg = np.mean([len(img[1]) + len(img[3]) for img in images]) / 2

    def ours():
        pq = PanopticQuality(cats)
        for img in images:
            pq.update(*img)
        return pq.compute()

    t_vec, r_vec = median_time(ours, repeat)
    t_loop, r_loop = median_time(lambda: pq_loop(images, cats), loop_repeat)
    print(f"PQ    8 images 512x512, ~{n_seg:.0f} segments each (gt and pred), {len(cats)} categories:")
    print(f"      vectorised {1e3 * t_vec:8.1f} ms   per-segment loop {1e3 * t_loop:8.1f} ms   "
          f"speed-up {t_loop / t_vec:5.1f}x")
    print(f"      identical numbers: {same(r_vec, r_loop)}   "
          f"PQ {100 * r_vec['All']['pq']:.2f}  SQ {100 * r_vec['All']['sq']:.2f}  "
          f"RQ {100 * r_vec['All']['rq']:.2f}  n {r_vec['All']['n']}")


def bench_instances(repeat: int) -> None:
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:512, 0:512]
    seeds = rng.uniform(0, 512, size=(200, 2))
    semantic = rng.integers(0, 6, size=200)[np.argmin((yy[..., None] - seeds[:, 0]) ** 2
                                                      + (xx[..., None] - seeds[:, 1]) ** 2, axis=-1)]
    t, inst = median_time(lambda: instances_from_semantic(semantic, thing_ids=[1, 2, 3]), repeat)
    print(f"instances_from_semantic 512x512, 200 regions: {1e3 * t:8.1f} ms   "
          f"({int(sum(inst[semantic == c].max() for c in (1, 2, 3)))} instances)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--loop-repeat", type=int, default=3)
    args = parser.parse_args()
    print(f"numpy {np.__version__}, median of {args.repeat} runs ({args.loop_repeat} for the loop)")
    bench_miou(args.repeat)
    bench_pq(args.repeat, args.loop_repeat)
    bench_instances(args.repeat)


if __name__ == "__main__":
    main()

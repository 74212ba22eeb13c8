"""The decoder's upsampling ops, forward + backward: minseg vs PyTorch on the CPU, float32, side by side.

    python benchmarks/bench_upsampling.py [--blocks 5] [--repeats 3]

Cases (targets: ratio minseg / PyTorch at most 1.5 for the first two, at most 1.0 for bilinear):

* conv_transpose2d 64->32, kernel 4, stride 2, padding 1 on 8x64x32x32 (dx, dw, db)
* max_pool2d(2) with indices, then max_unpool2d, on 8x64x64x64 (both backwards)
* bilinear x2 on 8x64x32x32, align_corners False and True

Prints both medians, the ratio, and the machine's float32 GEMM rate.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _timing import print_header, side_by_side  # noqa: E402

from minseg.ops import (  # noqa: E402
    bilinear_interpolate,
    bilinear_interpolate_backward,
    conv_transpose2d,
    conv_transpose2d_backward,
    max_pool2d,
    max_pool2d_backward,
    max_unpool2d,
    max_unpool2d_backward,
)


def conv_transpose_case(rng, torch):
    x = rng.standard_normal((8, 64, 32, 32)).astype(np.float32)
    w = (rng.standard_normal((64, 32, 4, 4)) * 0.1).astype(np.float32)
    b = rng.standard_normal(32).astype(np.float32)
    dy = rng.standard_normal((8, 32, 64, 64)).astype(np.float32)
    tx, tw, tb = (torch.tensor(a, requires_grad=True) for a in (x, w, b))
    tdy = torch.tensor(dy)

    def run_minseg():
        _, cache = conv_transpose2d(x, w, b, stride=2, padding=1)
        conv_transpose2d_backward(dy, cache)

    def run_torch():
        tx.grad = tw.grad = tb.grad = None
        torch.nn.functional.conv_transpose2d(tx, tw, tb, stride=2, padding=1).backward(tdy)

    return "conv_transpose2d 64->32 k4 s2 p1", run_minseg, run_torch


def pool_unpool_case(rng, torch):
    x = rng.standard_normal((8, 64, 64, 64)).astype(np.float32)
    dy = rng.standard_normal((8, 64, 64, 64)).astype(np.float32)
    tx, tdy = torch.tensor(x, requires_grad=True), torch.tensor(dy)
    F = torch.nn.functional

    def run_minseg():
        pooled, pool_cache = max_pool2d(x, 2)
        _, unpool_cache = max_unpool2d(pooled, pool_cache.indices, 2)
        max_pool2d_backward(max_unpool2d_backward(dy, unpool_cache), pool_cache)

    def run_torch():
        tx.grad = None
        pooled, indices = F.max_pool2d(tx, 2, return_indices=True)
        F.max_unpool2d(pooled, indices, 2).backward(tdy)

    return "max_pool2d(2) + max_unpool2d", run_minseg, run_torch


def bilinear_case(rng, torch, align_corners):
    x = rng.standard_normal((8, 64, 32, 32)).astype(np.float32)
    dy = rng.standard_normal((8, 64, 64, 64)).astype(np.float32)
    tx, tdy = torch.tensor(x, requires_grad=True), torch.tensor(dy)

    def run_minseg():
        _, cache = bilinear_interpolate(x, scale_factor=2, align_corners=align_corners)
        bilinear_interpolate_backward(dy, cache)

    def run_torch():
        tx.grad = None
        torch.nn.functional.interpolate(tx, scale_factor=2, mode="bilinear",
                                        align_corners=align_corners).backward(tdy)

    return f"bilinear x2, align_corners={align_corners}", run_minseg, run_torch


def bench(blocks: int, repeats: int) -> list:
    import torch  # noqa: PLC0415

    rng = np.random.default_rng(0)
    cases = [conv_transpose_case(rng, torch), pool_unpool_case(rng, torch),
             bilinear_case(rng, torch, False), bilinear_case(rng, torch, True)]
    rows = []
    for name, run_minseg, run_torch in cases:
        t = side_by_side({"minseg": run_minseg, "torch": run_torch}, blocks=blocks, repeats=repeats)
        rows.append((name, t["minseg"], t["torch"]))
    return rows


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--blocks", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)
    print_header()
    print(f"{'fwd+bwd, float32':<38}{'minseg ms':>10}{'torch ms':>10}{'ratio':>7}")
    for name, tm, tt in bench(args.blocks, args.repeats):
        print(f"{name:<38}{tm * 1e3:>10.1f}{tt * 1e3:>10.1f}{tm / tt:>7.2f}")


if __name__ == "__main__":
    main()

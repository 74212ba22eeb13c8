"""conv2d forward + backward (dx, dw, db): minseg vs PyTorch on the CPU, float32, side by side.

    python benchmarks/bench_conv.py [--blocks 5] [--repeats 3]

Prints, per shape, both medians and the ratio minseg / PyTorch (target: at
most 1.5), with the machine's float32 GEMM rate as the ceiling.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _timing import print_header, side_by_side  # noqa: E402

from minseg.ops import conv2d, conv2d_backward  # noqa: E402

# name, (N, C, C_out, H, W), kernel, padding, dilation
SHAPES = [
    ("64->64, 64x64, 3x3, p1", (8, 64, 64, 64, 64), 3, 1, 1),
    ("64->64, 64x64, 3x3, p2 d2", (8, 64, 64, 64, 64), 3, 2, 2),
    ("3->64, 128x128, 3x3, p1", (8, 3, 64, 128, 128), 3, 1, 1),
]


def bench(blocks: int, repeats: int) -> list:
    import torch  # noqa: PLC0415

    rng = np.random.default_rng(0)
    rows = []
    for name, (N, C, C_out, H, W), k, p, d in SHAPES:
        x = rng.standard_normal((N, C, H, W)).astype(np.float32)
        w = (rng.standard_normal((C_out, C, k, k)) * 0.1).astype(np.float32)
        b = rng.standard_normal(C_out).astype(np.float32)
        dy = rng.standard_normal((N, C_out, H, W)).astype(np.float32)
        tx, tw, tb = (torch.tensor(a, requires_grad=True) for a in (x, w, b))
        tdy = torch.tensor(dy)

        def run_minseg():
            y, cache = conv2d(x, w, b, padding=p, dilation=d)
            conv2d_backward(dy, cache)

        def run_torch():
            tx.grad = tw.grad = tb.grad = None
            y = torch.nn.functional.conv2d(tx, tw, tb, padding=p, dilation=d)
            y.backward(tdy)

        t = side_by_side({"minseg": run_minseg, "torch": run_torch}, blocks=blocks, repeats=repeats)
        flops = 3 * 2 * N * C_out * H * W * C * k * k  # forward, dx and dw products
        rows.append((name, t["minseg"], t["torch"], flops))
    return rows


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--blocks", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)
    print_header()
    print(f"{'conv2d fwd+bwd, N=8, float32':<34}{'minseg ms':>10}{'torch ms':>10}{'ratio':>7}{'minseg GFLOP/s':>16}")
    for name, tm, tt, flops in bench(args.blocks, args.repeats):
        print(f"{name:<34}{tm * 1e3:>10.1f}{tt * 1e3:>10.1f}{tm / tt:>7.2f}{flops / tm / 1e9:>16.0f}")


if __name__ == "__main__":
    main()

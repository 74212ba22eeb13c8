"""3x3 conv2d by Winograd F(2x2, 3x3) and F(4x4, 3x3) vs minseg's conv2d path vs PyTorch, float32, side by side.

    python benchmarks/bench_winograd.py [--blocks 5] [--repeats 3] [--threads T]

``--threads T`` limits NumPy's BLAS (through threadpoolctl) and PyTorch to T
threads. On a machine shared with other jobs, ``--threads 1`` measures the
work of each algorithm far more stably than the default, where BLAS worker
threads that wait for each other at every small matrix product lose most of
their time when the cores are oversubscribed.

For each shape (batch 16, padding 1) it times, in alternating blocks, the
forward pass alone and forward + backward (dx, dw, db) of

- ``conv2d`` / ``conv2d_backward`` (im2col + GEMM, the path conv2d picks),
- ``conv2d_winograd`` / ``conv2d_winograd_backward`` with m = 2 and m = 4,
- ``torch.nn.functional.conv2d`` and autograd,

and prints the medians, the ratios to PyTorch and the rate in direct-convolution
GFLOP/s (2 * N * C_out * H_out * W_out * C * 9 per product), beside the machine's
float32 GEMM rate. It also prints the float32 error of each path against the float64
result.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _timing import print_header, side_by_side  # noqa: E402

from minseg.ops import conv2d, conv2d_backward  # noqa: E402
from minseg.ops.winograd import conv2d_winograd, conv2d_winograd_backward  # noqa: E402

# name, (N, C, C_out, H, W)
SHAPES = [
    ("16 x 64->64, 64x64", (16, 64, 64, 64, 64)),
    ("16 x 16->16, 64x64", (16, 16, 16, 64, 64)),
    ("16 x 32->32, 32x32", (16, 32, 32, 32, 32)),
]
PATHS = ("conv2d", "wino F2", "wino F4", "torch")


def _callables(x, w, b, dy):
    """name -> (forward, forward + backward) for every path, on the same float32 arrays."""
    import torch  # noqa: PLC0415

    tx, tw, tb = (torch.tensor(a, requires_grad=True) for a in (x, w, b))
    tdy = torch.tensor(dy)

    def minseg_pair(fwd, bwd):
        def both():
            _, cache = fwd()
            bwd(cache)
        return fwd, both

    def torch_fwd():
        with torch.no_grad():
            return torch.nn.functional.conv2d(tx, tw, tb, padding=1)

    def torch_both():
        tx.grad = tw.grad = tb.grad = None
        torch.nn.functional.conv2d(tx, tw, tb, padding=1).backward(tdy)

    return {
        "conv2d": minseg_pair(lambda: conv2d(x, w, b, padding=1), lambda c: conv2d_backward(dy, c)),
        "wino F2": minseg_pair(lambda: conv2d_winograd(x, w, b, padding=1, m=2),
                               lambda c: conv2d_winograd_backward(dy, c, m=2)),
        "wino F4": minseg_pair(lambda: conv2d_winograd(x, w, b, padding=1, m=4),
                               lambda c: conv2d_winograd_backward(dy, c, m=4)),
        "torch": (torch_fwd, torch_both),
    }


def float32_errors(x, w, b, dy) -> dict:
    """Relative max error of y, dx, dw in float32 against the float64 result: name -> (y, dx, dw)."""
    x64, w64, b64, dy64 = (a.astype(np.float64) for a in (x, w, b, dy))
    y64, c64 = conv2d(x64, w64, b64, padding=1)
    ref = (y64, *conv2d_backward(dy64, c64)[:2])
    runs = {
        "conv2d": lambda: (lambda y, c: (y, *conv2d_backward(dy, c)[:2]))(*conv2d(x, w, b, padding=1)),
        "wino F2": lambda: (lambda y, c: (y, *conv2d_winograd_backward(dy, c, m=2)[:2]))(
            *conv2d_winograd(x, w, b, padding=1, m=2)),
        "wino F4": lambda: (lambda y, c: (y, *conv2d_winograd_backward(dy, c, m=4)[:2]))(
            *conv2d_winograd(x, w, b, padding=1, m=4)),
    }
    return {name: tuple(float(np.abs(g - r).max() / np.abs(r).max()) for g, r in zip(run(), ref))
            for name, run in runs.items()}


def bench(blocks: int, repeats: int) -> None:
    rng = np.random.default_rng(0)
    for name, (N, C, C_out, H, W) in SHAPES:
        x = rng.standard_normal((N, C, H, W)).astype(np.float32)
        w = (rng.standard_normal((C_out, C, 3, 3)) / np.sqrt(9 * C)).astype(np.float32)
        b = rng.standard_normal(C_out).astype(np.float32)
        dy = rng.standard_normal((N, C_out, H, W)).astype(np.float32)
        fns = _callables(x, w, b, dy)
        flops = 2 * N * C_out * H * W * C * 9                      # one direct product: forward, dx or dw
        t_fwd = side_by_side({p: fns[p][0] for p in PATHS}, blocks=blocks, repeats=repeats)
        t_all = side_by_side({p: fns[p][1] for p in PATHS}, blocks=blocks, repeats=repeats)
        errs = float32_errors(x, w, b, dy)
        print(f"\n{name}, 3x3, padding 1, float32")
        print(f"{'path':<10}{'fwd ms':>9}{'/torch':>8}{'GFLOP/s':>9}{'fwd+bwd ms':>12}{'/torch':>8}{'GFLOP/s':>9}"
              f"{'f32 err y':>11}{'dx':>9}{'dw':>9}")
        for p in PATHS:
            e = "".join(f"{v:>9.1e}" for v in errs[p]) if p in errs else ""
            e = f"  {e}" if e else ""
            print(f"{p:<10}{t_fwd[p] * 1e3:>9.1f}{t_fwd[p] / t_fwd['torch']:>8.2f}{flops / t_fwd[p] / 1e9:>9.0f}"
                  f"{t_all[p] * 1e3:>12.1f}{t_all[p] / t_all['torch']:>8.2f}{3 * flops / t_all[p] / 1e9:>9.0f}{e}")


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--blocks", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=None, help="BLAS and torch threads (default: theirs)")
    args = parser.parse_args(argv)
    if args.threads is None:
        print_header()
        bench(args.blocks, args.repeats)
        return
    import torch  # noqa: PLC0415
    from threadpoolctl import threadpool_limits  # noqa: PLC0415

    torch.set_num_threads(args.threads)
    with threadpool_limits(limits=args.threads, user_api="blas"):
        print_header()
        print(f"limited to {args.threads} thread(s): NumPy's BLAS and torch")
        bench(args.blocks, args.repeats)


if __name__ == "__main__":
    main()

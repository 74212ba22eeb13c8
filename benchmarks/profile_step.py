"""Where the time of a float32 training step goes, by op: cProfile of a U-Net step and an FCN-8s step.

    python benchmarks/profile_step.py [--model unet fcn8s] [--steps 3] [--batch 16] [--size 64]

One step = forward, per-pixel cross-entropy (ignore 255), backward, Adam
update (``minseg.train.train_step``), float32, batch 16 x 3 x 64 x 64:

- U-Net: base_width 16, depth 3 (``bench_unet.py``'s network);
- FCN-8s: the VGG backbone widths (16, 32, 64, 64, 64), convs (1, 1, 2, 2, 2),
  fc_channels 64 (the configuration lesson 07 and ``compare_models.py`` train).

How the time is attributed. cProfile records, per function, its own time
and, per caller, the time spent in it when called from there. Every
function's own time is passed up to its callers in proportion to the time
each caller spent in it (the gprof assumption: a call from anywhere costs the
same per unit of time) until it reaches a minseg function (the *helper*: e.g.
``im2col``, ``_conv2d_backward_plain``), then further up while the callers are
in ``minseg/ops`` (the *op*: e.g. ``conv2d_backward``). The leaf decides the
kind: ``matmul`` / ``dot`` / ``einsum`` / ``tensordot`` are matrix products
(``np.matmul`` is a ufunc, which cProfile does not see, so while profiling
it is replaced by a one-line Python wrapper that it does see);
the conv helpers ``im2col``, ``col2im`` and their wide-row variants are the
im2col / col2im copies; the rest (element-wise passes, padding, other copies,
Python) is "other".

Prints per model: the step's time without the profiler, then a table by op
(ms per step and share of the profiled step), and the top helpers.
"""
from __future__ import annotations

import argparse
import cProfile
import os
import pstats
import re
import sys
import time
from collections import defaultdict
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from minseg.models import build_model  # noqa: E402
from minseg.optim import Adam  # noqa: E402
from minseg.train import train_step  # noqa: E402

MODELS = {
    "unet": dict(base_width=16, depth=3),
    "fcn8s": dict(widths=[16, 32, 64, 64, 64], convs=[1, 1, 2, 2, 2], fc_channels=64),
}
PRODUCT_RE = re.compile(r"\b(matmul|dot|vdot|einsum|c_einsum|tensordot|inner)\b")
COPY_HELPERS = ("im2col", "col2im", "_wide_rows", "_wide_im2col", "_wide_col2im")
ROOT = str(Path(__file__).resolve().parent.parent / "minseg") + os.sep

# op (or helper outside minseg/ops) -> row of the summary table; anything unlisted keeps its own name
CATEGORIES = {
    "conv.conv2d": "conv2d forward", "conv.conv2d_backward": "conv2d backward",
    "winograd.conv2d": "conv2d forward", "winograd.conv2d_backward": "conv2d backward",
    "conv_transpose.conv_transpose2d": "conv_transpose2d forward (upsampling)",
    "conv_transpose.conv_transpose2d_backward": "conv_transpose2d backward (upsampling)",
    "normalization.batch_norm2d": "batch norm forward", "normalization.batch_norm2d_backward": "batch norm backward",
    "normalization.batch_norm_relu2d": "batch norm + relu forward",
    "normalization.batch_norm_relu2d_backward": "batch norm + relu backward",
    "activations.relu": "relu forward", "activations.relu_backward": "relu backward",
    "activations.dropout": "dropout", "activations.dropout_backward": "dropout",
    "pooling.max_pool2d": "max pool forward", "pooling.max_pool2d_backward": "max pool backward",
    "interpolate.bilinear_interpolate": "bilinear", "interpolate.bilinear_interpolate_backward": "bilinear",
    "blocks.concat": "concat (forward)", "blocks.split": "split (concat backward)",
    "blocks.pad_to": "pad / crop", "blocks.pad_to_backward": "pad / crop", "backend.pad_to": "pad / crop",
    "losses.cross_entropy": "cross-entropy", "losses.cross_entropy_backward": "cross-entropy",
    "optim._update": "optimiser (Adam)", "optim.step": "optimiser (Adam)", "optim.zero_grad": "optimiser (Adam)",
}


def _is_minseg(func) -> bool:
    return func[0].startswith(ROOT)


def _is_op(func) -> bool:
    return func[0].startswith(ROOT + "ops" + os.sep)


def _label(func) -> str:
    return f"{Path(func[0]).stem}.{func[2]}"


_UFUNC_MATMUL = np.matmul


def matmul(*args, **kwargs):
    """``np.matmul`` seen by cProfile: a ufunc call is not a profiled C call, this Python wrapper is."""
    return _UFUNC_MATMUL(*args, **kwargs)


class profiled_matmul:
    """Context: ``np.matmul`` (what minseg's ``xp.matmul`` calls) is the wrapper above, so its time is its own."""

    def __enter__(self):
        np.matmul = matmul

    def __exit__(self, *exc):
        np.matmul = _UFUNC_MATMUL
        return False


def _leaf_kind(func) -> str:
    """"products" for NumPy's matrix products (builtins, or the matmul wrapper), else "other"."""
    if func[0] == __file__ and func[2] == "matmul":
        return "products"
    return "products" if func[0] == "~" and PRODUCT_RE.search(func[2]) else "other"


def attribute(stats: pstats.Stats) -> dict:
    """``{(op, helper, kind): seconds}``: every function's own time, passed up to its callers as described above."""
    raw = stats.stats  # func -> (cc, nc, tt, ct, callers{caller: (cc, nc, tt, ct)})
    out = defaultdict(float)

    def up(func, t, kind, helper, depth):
        if helper is None and _is_minseg(func):
            helper = func
            if func[2] in COPY_HELPERS:
                kind = "im2col/col2im"
            if not _is_op(func):  # a layer, model, optimiser or loop: the time stays here
                out[(_label(func), _label(func), kind)] += t
                return
        callers = raw[func][4] if func in raw else {}
        weights = {c: v[3] for c, v in callers.items()}
        total = sum(weights.values())
        if not callers or total <= 0 or depth > 40:
            out[(_label(func) if helper else "(outside minseg)", _label(helper or func), kind)] += t
            return
        for c, w in weights.items():
            if helper is not None and not _is_op(c):  # called from outside minseg/ops: func is the op
                out[(_label(func), _label(helper), kind)] += t * w / total
            else:
                up(c, t * w / total, kind, helper, depth + 1)

    for func, (_, _, tt, _, _) in raw.items():
        if tt > 0:
            up(func, tt, _leaf_kind(func), None, 0)
    return out


def make_step(name: str, batch: int, size: int):
    rng = np.random.default_rng(0)
    x = rng.random((batch, 3, size, size), dtype=np.float32)
    y = rng.integers(0, 5, size=(batch, size, size))
    y[:, 0] = 255
    model = build_model(name, num_classes=5, in_channels=3, rng=0, **MODELS[name])
    opt = Adam(model.parameters(), lr=1e-3)
    return model, (lambda: train_step(model, opt, x, y))


def profile(name: str, steps: int, batch: int, size: int) -> None:
    model, step = make_step(name, batch, size)
    step()  # warm-up: first-touch page faults, workspace allocation
    times = []
    for _ in range(steps):
        t0 = time.perf_counter()
        step()
        times.append(time.perf_counter() - t0)
    time.sleep(0.25)
    prof = cProfile.Profile()
    with profiled_matmul():
        prof.enable()
        for _ in range(steps):
            step()
        prof.disable()
    stats = pstats.Stats(prof)
    parts = attribute(stats)
    total = sum(parts.values())
    cfg = ", ".join(f"{k}={v}" for k, v in MODELS[name].items())
    print(f"\n{name} ({cfg}; {model.num_parameters():,} parameters), batch {batch} x 3 x {size} x {size}, "
          f"float32, forward + loss + backward + Adam")
    print(f"  step without the profiler: median {np.median(times) * 1e3:.1f} ms "
          f"(min {min(times) * 1e3:.1f}, max {max(times) * 1e3:.1f}, {steps} steps); "
          f"profiled: {total / steps * 1e3:.1f} ms/step")

    rows = defaultdict(lambda: defaultdict(float))
    for (op, helper, kind), t in parts.items():
        rows[CATEGORIES.get(op, op)][kind] += t / steps
    print(f"  {'op':42s} {'ms/step':>8s} {'share':>6s} {'matmul':>8s} {'im2col/':>8s} {'other':>8s}")
    print(f"  {'':42s} {'':>8s} {'':>6s} {'':>8s} {'col2im':>8s} {'':>8s}")
    for cat, kinds in sorted(rows.items(), key=lambda kv: -sum(kv[1].values())):
        s = sum(kinds.values())
        if s * steps < 0.002 * total:
            continue
        print(f"  {cat:42s} {s * 1e3:8.1f} {s * steps / total:6.1%} {kinds['products'] * 1e3:8.1f} "
              f"{kinds['im2col/col2im'] * 1e3:8.1f} {kinds['other'] * 1e3:8.1f}")
    shown = sum(sum(k.values()) for c, k in rows.items() if sum(k.values()) * steps >= 0.002 * total)
    print(f"  {'(rows under 0.2% left out)':42s} {(total / steps - shown) * 1e3:8.1f}")
    print(f"  {'total':42s} {total / steps * 1e3:8.1f} {1:6.1%} "
          f"{sum(t for (_, _, k), t in parts.items() if k == 'products') / steps * 1e3:8.1f} "
          f"{sum(t for (_, _, k), t in parts.items() if k == 'im2col/col2im') / steps * 1e3:8.1f} "
          f"{sum(t for (_, _, k), t in parts.items() if k == 'other') / steps * 1e3:8.1f}")

    helpers = defaultdict(float)
    for (op, helper, kind), t in parts.items():
        helpers[(op, helper, kind)] += t / steps
    print("  top helpers (op <- helper, kind):")
    for (op, helper, kind), t in sorted(helpers.items(), key=lambda kv: -kv[1])[:12]:
        where = op if op == helper else f"{op} <- {helper}"
        print(f"    {t * 1e3:7.1f} ms {t * steps / total:6.1%}  {where} [{kind}]")


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", nargs="+", default=["unet", "fcn8s"], choices=sorted(MODELS))
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--size", type=int, default=64)
    args = parser.parse_args(argv)
    print(f"numpy {np.__version__}, {os.cpu_count()} CPUs")
    for name in args.model:
        profile(name, args.steps, args.batch, args.size)


if __name__ == "__main__":
    main()

"""Write PyTorch's adaptive pooling results to tests/fixtures/pyramid_golden.npz.

Covers ``F.adaptive_avg_pool2d``, ``F.adaptive_max_pool2d`` (with indices,
on tie-free inputs, on inputs with ties and on inputs with -inf and NaN) and
spatial pyramid pooling as ``torch.cat([pool(x, l).flatten(1) for l in
levels], 1)``: float64 inputs, outputs and gradients, so the conformance
tests run where torch is not installed. Every case stores its arguments as
JSON under ``<op>/<i>/config``. Regenerate with

    python data_scripts/make_golden_pyramid.py
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

# N, C, H, W, output_size (None on an axis keeps it), input kind
ADAPTIVE = [
    (2, 3, 8, 8, (4, 4), "distinct"),        # bins tile exactly
    (1, 2, 7, 5, (3, 2), "distinct"),        # overlapping bins
    (1, 2, 5, 7, (5, 3), "ties"),
    (2, 1, 3, 4, (5, 9), "distinct"),        # output larger than input
    (1, 2, 9, 2, (4, 1), "ties"),
    (1, 1, 1, 6, (3, 4), "distinct"),
    (1, 2, 6, 9, (None, 4), "distinct"),     # keep H
    (1, 2, 6, 5, (4, 6), "special"),         # -inf and NaN (max: forward only)
]

# N, C, H, W, levels, mode
PYRAMID = [
    (2, 2, 13, 11, (4, 2, 1), "max"),
    (1, 3, 6, 8, (4, 2, 1), "avg"),
    (1, 2, 3, 2, (4, 2, 1), "max"),          # smaller than the finest level
    (2, 1, 9, 9, (6, 3, 2, 1), "avg"),
]


def _inputs(rng, shape, kind):
    """Distinct values (a permutation / 7), small integers with many ties, or ties with -inf and NaN."""
    if kind == "distinct":
        return rng.permutation(int(np.prod(shape))).reshape(shape).astype(np.float64) / 7.0
    x = rng.integers(-2, 3, size=shape).astype(np.float64)
    if kind == "special":
        x[rng.random(shape) < 0.2] = -np.inf
        x[rng.random(shape) < 0.1] = np.nan
    return x


def _grad(torch, y, t, rng):
    """Backpropagate a seeded standard-normal dy through ``y``; return dy and the input's gradient."""
    dy = rng.standard_normal(tuple(y.shape))
    y.backward(torch.tensor(dy))
    return dy, t.grad.numpy()


def make(path: Path) -> None:
    import torch  # noqa: PLC0415  (needed only to regenerate)
    import torch.nn.functional as F  # noqa: PLC0415

    torch.set_num_threads(1)
    rng = np.random.default_rng(20261202)
    out = {}

    def put(op, i, config, **arrays):
        out[f"{op}/{i}/config"] = np.array(json.dumps(config))
        out.update({f"{op}/{i}/{k}": np.asarray(v) for k, v in arrays.items()})

    for i, (N, C, H, W, size, kind) in enumerate(ADAPTIVE):
        x = _inputs(rng, (N, C, H, W), kind)
        config = {"output_size": list(size), "kind": kind}
        if kind != "special":
            t = torch.tensor(x, requires_grad=True)
            y = F.adaptive_avg_pool2d(t, size)
            dy, dx = _grad(torch, y, t, rng)
            put("adaptive_avg_pool2d", i, config, x=x, y=y.detach().numpy(), dy=dy, dx=dx)
        t = torch.tensor(x, requires_grad=True)
        y, idx = F.adaptive_max_pool2d(t, size, return_indices=True)
        arrays = dict(x=x, y=y.detach().numpy(), indices=idx.numpy())
        if kind != "special":
            arrays["dy"], arrays["dx"] = _grad(torch, y, t, rng)
        put("adaptive_max_pool2d", i, config, **arrays)

    for i, (N, C, H, W, levels, mode) in enumerate(PYRAMID):
        x = _inputs(rng, (N, C, H, W), "distinct")
        pool = F.adaptive_max_pool2d if mode == "max" else F.adaptive_avg_pool2d
        t = torch.tensor(x, requires_grad=True)
        y = torch.cat([pool(t, level).flatten(1) for level in levels], 1)
        dy, dx = _grad(torch, y, t, rng)
        put("spatial_pyramid_pool", i, {"levels": list(levels), "mode": mode}, x=x, y=y.detach().numpy(),
            dy=dy, dx=dx)

    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(path, **out)
    n = len([k for k in out if k.endswith("/config")])
    print(f"wrote {n} adaptive pooling cases to {path}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent.parent / "tests" / "fixtures"
                        / "pyramid_golden.npz")
    make(parser.parse_args().out)

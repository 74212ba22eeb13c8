"""Write PyTorch's upsampling results to tests/fixtures/upsampling_golden.npz.

Covers conv_transpose2d, max_pool2d (with indices), max_unpool2d,
bilinear and nearest interpolation, global average pooling and L2
normalisation: float64 inputs, outputs and gradients, so the conformance
tests run where torch is not installed. Every case stores its arguments as
JSON under ``<op>/<i>/config``. Regenerate with

    python data_scripts/make_golden_upsampling.py
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

# N, C_in, C_out, H, W, kernel, stride, padding, output_padding, dilation, groups, bias
CONV_TRANSPOSE = [
    (2, 3, 4, 4, 5, (3, 3), (1, 1), (0, 0), (0, 0), (1, 1), 1, True),
    (1, 4, 2, 4, 4, (4, 4), (2, 2), (1, 1), (0, 0), (1, 1), 1, False),
    (2, 4, 6, 3, 4, (3, 2), (2, 3), (1, 0), (1, 2), (1, 1), 2, True),
    (1, 2, 2, 5, 3, (3, 3), (1, 2), (2, 1), (1, 1), (2, 2), 2, True),   # output_padding < dilation only
    (1, 3, 3, 4, 4, (5, 5), (3, 3), (2, 2), (2, 0), (1, 1), 3, True),
    (2, 2, 3, 3, 3, (1, 1), (2, 2), (0, 0), (1, 1), (1, 1), 1, True),
    (1, 2, 4, 2, 6, (2, 3), (2, 1), (0, 1), (0, 0), (3, 2), 1, False),
    (1, 2, 2, 1, 1, (4, 4), (2, 2), (1, 1), (0, 0), (1, 1), 2, True),
]

# N, C, H, W, kernel, stride, padding, dilation, ceil_mode, ties
MAX_POOL = [
    (2, 3, 8, 8, (2, 2), None, (0, 0), (1, 1), False, False),
    (1, 2, 7, 9, (3, 3), (2, 2), (1, 1), (1, 1), True, False),
    (1, 2, 9, 7, (3, 2), (1, 2), (1, 0), (2, 1), False, False),
    (2, 1, 6, 6, (3, 3), (1, 1), (1, 1), (1, 1), False, True),      # overlapping windows, ties
    (1, 2, 10, 5, (2, 3), (3, 2), (0, 1), (2, 2), True, False),
    (1, 1, 5, 5, (4, 4), (3, 3), (2, 2), (1, 1), True, True),
]

# N, C, H, W, kernel, stride, padding, output_size (None: default)
MAX_UNPOOL = [
    (2, 3, 4, 4, (2, 2), None, (0, 0), None),
    (1, 2, 3, 4, (2, 2), None, (0, 0), (5, 7)),
    (1, 2, 4, 3, (3, 3), (2, 2), (1, 1), None),
    (1, 1, 3, 3, (3, 2), (2, 3), (1, 0), (6, 9)),
]

# N, C, H, W, size, scale_factor, align_corners
BILINEAR = [
    (2, 3, 4, 5, None, 2.0, False),
    (2, 3, 4, 5, None, 2.0, True),
    (1, 2, 5, 7, (9, 3), None, False),
    (1, 2, 5, 7, (9, 3), None, True),
    (1, 2, 6, 4, None, (0.5, 2.5), False),
    (1, 2, 6, 4, None, (1.7, 1.1), False),                        # 4 * 1.1 rounds back to 4: copied
    (1, 1, 1, 3, (4, 1), None, True),
    (1, 1, 1, 3, (4, 1), None, False),
    (1, 2, 7, 7, None, 1 / 3, False),
    (1, 2, 3, 3, None, 7 / 3, True),
]

# N, C, H, W, size, scale_factor
NEAREST = [
    (2, 2, 3, 4, None, 2.0),
    (1, 2, 5, 4, (7, 11), None),
    (1, 1, 6, 9, None, (0.5, 1 / 3)),
    (1, 2, 10, 4, None, (2.05, 2.5)),                             # 10 * 2.05 = 20 = 2 * 10: o // 2
]


def _grad_case(torch, fn, inputs, rng):
    """Run ``fn`` on float64 tensors made from ``inputs``; return output, the dy used, and every input's gradient."""
    ts = [torch.tensor(a, requires_grad=True) for a in inputs]
    out = fn(*ts)
    y = out[0] if isinstance(out, tuple) else out
    dy = rng.standard_normal(tuple(y.shape))
    y.backward(torch.tensor(dy))
    return out, dy, [t.grad.numpy() for t in ts]


def _distinct(rng, shape, ties: bool):
    """Inputs for max-pooling: distinct values (a permutation), or small integers with many ties."""
    if ties:
        return rng.integers(-2, 3, size=shape).astype(np.float64)
    return rng.permutation(int(np.prod(shape))).reshape(shape).astype(np.float64) / 7.0


def make(path: Path) -> None:
    import torch  # noqa: PLC0415  (needed only to regenerate)
    import torch.nn.functional as F  # noqa: PLC0415

    torch.set_num_threads(1)
    rng = np.random.default_rng(20261122)
    out = {}

    def put(op, i, config, **arrays):
        out[f"{op}/{i}/config"] = np.array(json.dumps(config))
        out.update({f"{op}/{i}/{k}": np.asarray(v) for k, v in arrays.items()})

    for i, (N, Ci, Co, H, W, k, s, p, o, d, g, bias) in enumerate(CONV_TRANSPOSE):
        x, w = rng.standard_normal((N, Ci, H, W)), rng.standard_normal((Ci, Co // g, *k))
        b = rng.standard_normal(Co) if bias else None
        hyper = dict(stride=s, padding=p, output_padding=o, dilation=d, groups=g)
        inputs = [x, w] + ([b] if bias else [])
        y, dy, grads = _grad_case(torch, lambda *t: F.conv_transpose2d(*t, **hyper) if bias
                                  else F.conv_transpose2d(t[0], t[1], None, **hyper), inputs, rng)
        arrays = dict(x=x, w=w, y=y.detach().numpy(), dy=dy, dx=grads[0], dw=grads[1])
        if bias:
            arrays.update(b=b, db=grads[2])
        put("conv_transpose2d", i, hyper, **arrays)

    for i, (N, C, H, W, k, s, p, d, ceil, ties) in enumerate(MAX_POOL):
        x = _distinct(rng, (N, C, H, W), ties)
        hyper = dict(kernel_size=k, stride=s, padding=p, dilation=d, ceil_mode=ceil)
        (y, idx), dy, (dx,) = _grad_case(torch, lambda t: F.max_pool2d(t, return_indices=True, **hyper), [x], rng)
        put("max_pool2d", i, hyper, x=x, y=y.detach().numpy(), indices=idx.numpy(), dy=dy, dx=dx)

    for i, (N, C, H, W, k, s, p, size) in enumerate(MAX_UNPOOL):
        x = rng.standard_normal((N, C, H, W))
        default = [(n - 1) * (s or k)[a] - 2 * p[a] + k[a] for a, n in enumerate((H, W))]
        plane = int(np.prod(size or default))
        indices = np.stack([rng.permutation(plane)[:H * W] for _ in range(N * C)]).reshape(N, C, H, W)
        hyper = dict(kernel_size=k, stride=s, padding=p, output_size=size)
        y, dy, (dx,) = _grad_case(torch, lambda t: F.max_unpool2d(t, torch.tensor(indices), **hyper), [x], rng)
        put("max_unpool2d", i, hyper, x=x, indices=indices, y=y.detach().numpy(), dy=dy, dx=dx)

    # switches of overlapping windows repeat: on one thread PyTorch's CPU kernel keeps the last write
    pooled, switches = F.max_pool2d(torch.tensor(_distinct(rng, (1, 2, 6, 6), False)), 3, 1, return_indices=True)
    x, indices = rng.standard_normal(tuple(pooled.shape)), switches.numpy()
    hyper = dict(kernel_size=(3, 3), stride=(1, 1), padding=(0, 0), output_size=None)
    y, dy, (dx,) = _grad_case(torch, lambda t: F.max_unpool2d(t, switches, **hyper), [x], rng)
    put("max_unpool2d", len(MAX_UNPOOL), hyper, x=x, indices=indices, y=y.detach().numpy(), dy=dy, dx=dx)

    for i, (N, C, H, W, size, sf, ac) in enumerate(BILINEAR):
        x = rng.standard_normal((N, C, H, W))
        hyper = dict(size=size, scale_factor=sf, align_corners=ac)
        y, dy, (dx,) = _grad_case(torch, lambda t: F.interpolate(t, mode="bilinear", **hyper), [x], rng)
        put("bilinear_interpolate", i, hyper, x=x, y=y.detach().numpy(), dy=dy, dx=dx)

    for i, (N, C, H, W, size, sf) in enumerate(NEAREST):
        x = rng.standard_normal((N, C, H, W))
        hyper = dict(size=size, scale_factor=sf)
        y, dy, (dx,) = _grad_case(torch, lambda t: F.interpolate(t, mode="nearest", **hyper), [x], rng)
        put("upsample_nearest", i, hyper, x=x, y=y.detach().numpy(), dy=dy, dx=dx)

    x = rng.standard_normal((2, 3, 5, 4))
    y, dy, (dx,) = _grad_case(torch, lambda t: F.adaptive_avg_pool2d(t, 1), [x], rng)
    put("global_avg_pool2d", 0, {}, x=x, y=y.detach().numpy(), dy=dy, dx=dx)

    x = rng.standard_normal((2, 4, 3, 3))
    x[0, :, 0, 0] = 0.0  # a zero vector: the eps branch
    y, dy, (dx,) = _grad_case(torch, lambda t: F.normalize(t, p=2.0, dim=1, eps=1e-12), [x], rng)
    put("l2_normalize", 0, {"eps": 1e-12}, x=x, y=y.detach().numpy(), dy=dy, dx=dx)

    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(path, **out)
    n = len([k for k in out if k.endswith("/config")])
    print(f"wrote {n} upsampling cases to {path}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent.parent / "tests" / "fixtures"
                        / "upsampling_golden.npz")
    make(parser.parse_args().out)

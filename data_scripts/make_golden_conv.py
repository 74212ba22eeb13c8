"""Write PyTorch's conv2d results to tests/fixtures/conv_golden.npz.

The stored float64 inputs, outputs and gradients let the conformance tests
run where torch is not installed. Regenerate with

    python data_scripts/make_golden_conv.py
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

# N, C, C_out, H, W, kernel, stride, padding, dilation, groups, bias
CASES = [
    (2, 3, 4, 7, 7, (3, 3), (1, 1), (1, 1), (1, 1), 1, True),
    (1, 4, 4, 9, 8, (3, 3), (2, 2), (1, 1), (1, 1), 2, False),
    (2, 4, 4, 8, 8, (3, 3), (1, 1), (2, 2), (2, 2), 4, True),
    (1, 2, 3, 10, 9, (5, 5), (3, 2), (2, 0), (1, 1), 1, True),
    (1, 3, 2, 6, 11, (2, 3), (1, 2), (0, 1), (3, 2), 1, True),
    (2, 6, 6, 7, 7, (1, 1), (1, 1), (0, 0), (1, 1), 3, True),
    (1, 2, 4, 5, 5, (3, 1), (2, 1), (1, 0), (1, 1), 2, False),
    (3, 1, 2, 4, 4, (4, 4), (1, 1), (2, 2), (1, 1), 1, True),
    (1, 4, 8, 12, 12, (3, 3), (1, 1), (3, 3), (3, 3), 4, True),
    (2, 2, 2, 3, 5, (3, 3), (3, 3), (2, 2), (2, 1), 1, True),
]


def make(path: Path) -> None:
    import torch  # noqa: PLC0415  (needed only to regenerate)

    rng = np.random.default_rng(20261121)
    out = {"n_cases": np.array(len(CASES))}
    for i, (N, C, Co, H, W, k, s, p, d, g, bias) in enumerate(CASES):
        x = rng.standard_normal((N, C, H, W))
        w = rng.standard_normal((Co, C // g, *k))
        b = rng.standard_normal(Co) if bias else None
        tx, tw = torch.tensor(x, requires_grad=True), torch.tensor(w, requires_grad=True)
        tb = torch.tensor(b, requires_grad=True) if bias else None
        y = torch.nn.functional.conv2d(tx, tw, tb, stride=s, padding=p, dilation=d, groups=g)
        dy = rng.standard_normal(tuple(y.shape))
        y.backward(torch.tensor(dy))
        out.update({f"{i}/x": x, f"{i}/w": w, f"{i}/dy": dy, f"{i}/y": y.detach().numpy(),
                    f"{i}/dx": tx.grad.numpy(), f"{i}/dw": tw.grad.numpy(),
                    f"{i}/stride": np.array(s), f"{i}/padding": np.array(p),
                    f"{i}/dilation": np.array(d), f"{i}/groups": np.array(g)})
        if bias:
            out.update({f"{i}/b": b, f"{i}/db": tb.grad.numpy()})
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(path, **out)
    print(f"wrote {len(CASES)} conv2d cases to {path}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path,
                        default=Path(__file__).resolve().parent.parent / "tests" / "fixtures" / "conv_golden.npz")
    make(parser.parse_args().out)

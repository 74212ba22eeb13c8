"""FCN-8s training step: minseg vs the same architecture in PyTorch on the CPU, side by side.

    python benchmarks/bench_fcn.py [--batch 16] [--size 64] [--runs 3] [--blocks 4] [--repeats 3]

One training step = forward, per-pixel cross-entropy (ignore 255), backward,
Adam update, float32. The network is ``minseg.models.FCN8s`` with the VGG
backbone widths (16, 32, 64, 64, 64), convs (1, 1, 2, 2, 2) and fc_channels 64
(the configuration lesson 07 trains), 5 classes. The PyTorch network is built
module for module like it (3x3 conv without bias + BatchNorm + ReLU blocks,
2x2 max-pooling, fc6 / fc7 as 1x1 convs + ReLU + Dropout(0), score_fr, two
learned 2x upsamplers (transposed conv k4 s2 p1, no bias) fused with the 1x1
scores of pool4 and pool3, the fixed bilinear 8x upsampler k16 s8 p4) and
starts from minseg's weights, so both do the same arithmetic.

Each run times the two in alternating blocks (``_timing.side_by_side_samples``);
the script prints per run the medians and ratio, and over all runs the median
of the per-run ratios and their spread, with the GEMM rate.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _timing import gemm_rate, print_header, side_by_side_samples, spread  # noqa: E402

from minseg.models import build_model  # noqa: E402
from minseg.ops import cross_entropy, cross_entropy_backward  # noqa: E402
from minseg.optim import Adam  # noqa: E402

CONFIG = dict(widths=[16, 32, 64, 64, 64], convs=[1, 1, 2, 2, 2], fc_channels=64)


def torch_fcn8s(model):
    """A torch.nn.Module with minseg FCN8s ``model``'s architecture and weights (parameter names are the same)."""
    import torch  # noqa: PLC0415
    from torch import nn  # noqa: PLC0415

    cfg = model.config
    K, F = cfg["num_classes"], cfg["fc_channels"]
    assert cfg["fc_kernel"] == 1 and cfg["batchnorm"], "the PyTorch twin is written for fc_kernel=1 with BatchNorm"

    class Backbone(nn.Module):
        def __init__(self):
            super().__init__()
            self.stages = nn.ModuleList()
            c = cfg["in_channels"]
            for w, n in zip(cfg["widths"], cfg["convs"]):
                blocks = []
                for _ in range(n):
                    blocks.append(nn.Sequential(nn.Conv2d(c, w, 3, padding=1, bias=False), nn.BatchNorm2d(w),
                                                nn.ReLU()))
                    c = w
                self.stages.append(nn.Sequential(*blocks))

    class TorchFCN8s(nn.Module):
        def __init__(self):
            super().__init__()
            C5 = cfg["widths"][-1]
            self.backbone = Backbone()
            self.fc6 = nn.Sequential(nn.Conv2d(C5, F, 1), nn.ReLU(), nn.Dropout(cfg["dropout"]))
            self.fc7 = nn.Sequential(nn.Conv2d(F, F, 1), nn.ReLU(), nn.Dropout(cfg["dropout"]))
            self.score_fr = nn.Conv2d(F, K, 1)
            self.up2 = nn.ModuleList([nn.ConvTranspose2d(K, K, 4, stride=2, padding=1, bias=False)
                                      for _ in model.taps])
            self.score_pool = nn.ModuleList([nn.Conv2d(cfg["widths"][s - 1], K, 1) for s in model.taps])
            f = model.final_stride
            self.upsample = nn.ConvTranspose2d(K, K, 2 * f, stride=f, padding=f // 2, bias=False)
            self.upsample.weight.requires_grad_(False)  # fixed bilinear, as minseg's (a buffer there)

        def forward(self, x):
            H, W = x.shape[2:]
            total = model.backbone.stride
            Hp, Wp = -(-H // total) * total, -(-W // total) * total
            x = nn.functional.pad(x, (0, Wp - W, 0, Hp - H))
            feats = []
            for stage in self.backbone.stages:
                x = nn.functional.max_pool2d(stage(x), 2)
                feats.append(x)
            score = self.score_fr(self.fc7(self.fc6(feats[-1])))
            for j, s in enumerate(model.taps):
                score = self.up2[j](score) + self.score_pool[j](feats[s - 1])
            return self.upsample(score)[:, :, :H, :W]

    net = TorchFCN8s().to(torch.float64 if model.dtype == np.float64 else torch.float32)
    theirs = dict(net.named_parameters())
    ours = dict(model.named_parameters())
    assert set(theirs) == set(ours) | {"upsample.weight"}, sorted(set(theirs) ^ set(ours))
    with torch.no_grad():
        for name, p in ours.items():
            assert tuple(theirs[name].shape) == tuple(p.shape), name
            theirs[name].copy_(torch.from_numpy(np.asarray(p.data)))
        net.upsample.weight.copy_(torch.from_numpy(np.asarray(model.upsample.weight_fixed)))
    return net


def check_twin(x, y) -> float:
    """Max relative difference (per parameter, to its largest gradient) of one float64 step of both networks."""
    import torch  # noqa: PLC0415

    model = build_model("fcn8s", num_classes=5, in_channels=3, rng=0, dtype=np.float64, **CONFIG)
    net = torch_fcn8s(model).train()
    logits = model.forward(x)
    tlogits = net(torch.from_numpy(x))
    loss, cache = cross_entropy(logits, y, ignore_index=255)
    model.backward(cross_entropy_backward(1.0, cache))
    torch.nn.functional.cross_entropy(tlogits, torch.from_numpy(y), ignore_index=255).backward()
    theirs = dict(net.named_parameters())
    diffs = [float(np.abs(tlogits.detach().numpy() - logits).max() / np.abs(logits).max())]
    diffs += [float(np.abs(theirs[n].grad.numpy() - p.grad).max() / np.abs(p.grad).max())
              for n, p in model.named_parameters()]
    assert max(diffs) < 1e-9, f"PyTorch and minseg FCN-8s disagree in float64 by {max(diffs):.1e} (relative)"
    return max(diffs)


def main(argv=None) -> None:
    import torch  # noqa: PLC0415

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--blocks", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)

    rng = np.random.default_rng(0)
    x = rng.random((args.batch, 3, args.size, args.size), dtype=np.float32)
    y = rng.integers(0, 5, size=(args.batch, args.size, args.size))
    y[:, 0] = 255
    model = build_model("fcn8s", num_classes=5, in_channels=3, rng=0, **CONFIG)
    opt = Adam(model.parameters(), lr=1e-3)
    net = torch_fcn8s(model)
    topt = torch.optim.Adam([p for p in net.parameters() if p.requires_grad], lr=1e-3)
    tx, ty = torch.from_numpy(x), torch.from_numpy(y)

    # the two networks compute the same thing: logits and every parameter gradient, checked in float64
    gdiff = check_twin(x[:2].astype(np.float64), y[:2])

    def step_minseg():
        opt.zero_grad()
        loss, cache = cross_entropy(model.forward(x), y, ignore_index=255)
        model.backward(cross_entropy_backward(1.0, cache))
        opt.step()

    def step_torch():
        topt.zero_grad()
        loss = torch.nn.functional.cross_entropy(net(tx), ty, ignore_index=255)
        loss.backward()
        topt.step()

    print_header()
    n = args.batch
    print(f"FCN-8s widths={CONFIG['widths']} convs={CONFIG['convs']} fc_channels={CONFIG['fc_channels']} "
          f"({model.num_parameters():,} parameters), batch {n} x 3 x {args.size} x {args.size}, "
          f"forward + loss + backward + Adam; float64 check of the twin: logits and gradients agree to {gdiff:.1e}")
    ratios, all_m, all_t = [], [], []
    for run in range(args.runs):
        s = side_by_side_samples({"minseg": step_minseg, "torch": step_torch}, blocks=args.blocks,
                                 repeats=args.repeats)
        ratios.append(np.median(s["minseg"]) / np.median(s["torch"]))
        all_m += s["minseg"]
        all_t += s["torch"]
        print(f"  run {run + 1}: minseg {spread(s['minseg'])}  torch {spread(s['torch'])}  "
              f"ratio {ratios[-1]:.2f}  (GEMM {gemm_rate():.0f} GFLOP/s after the run)")
    print(f"  all runs: minseg {spread(all_m)} ({n / np.median(all_m):.1f} images/s)  "
          f"torch {spread(all_t)} ({n / np.median(all_t):.1f} images/s)")
    print(f"  ratio (minseg time / torch time): median {np.median(ratios):.2f} over {args.runs} runs "
          f"[{min(ratios):.2f} - {max(ratios):.2f}]")


if __name__ == "__main__":
    main()

"""U-Net training throughput: minseg vs the same architecture in PyTorch on the CPU, side by side.

    python benchmarks/bench_unet.py [--base-width 16] [--depth 3] [--batch 16] [--size 64]

One training step = forward, per-pixel cross-entropy (ignore 255), backward,
Adam update, float32. The PyTorch network is built layer for layer like
``minseg.models.UNet`` (double 3x3 conv + BatchNorm + ReLU per level, 2x2
max-pooling, 2x2 stride-2 transposed convolutions, concatenated skips, 1x1
head) and starts from minseg's weights, so both do the same arithmetic.
Prints images/s for each and the time ratio minseg / PyTorch (target: at most 2).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _timing import print_header, side_by_side  # noqa: E402

from minseg.models import build_model  # noqa: E402
from minseg.ops import cross_entropy, cross_entropy_backward  # noqa: E402
from minseg.optim import Adam  # noqa: E402


def torch_unet(model):
    """A torch.nn.Module with minseg UNet ``model``'s architecture and weights."""
    import torch  # noqa: PLC0415
    from torch import nn  # noqa: PLC0415

    cfg = model.config
    widths = model.widths  # channels per level

    def double(c_in, c_out):
        return nn.Sequential(nn.Conv2d(c_in, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU(),
                             nn.Conv2d(c_out, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU())

    class TorchUNet(nn.Module):
        def __init__(self):
            super().__init__()
            c = cfg["in_channels"]
            self.enc = nn.ModuleList()
            for w in widths:
                self.enc.append(double(c, w))
                c = w
            self.up = nn.ModuleList([nn.ConvTranspose2d(widths[i + 1], widths[i], 2, stride=2)
                                     for i in range(cfg["depth"])])
            self.dec = nn.ModuleList([double(2 * widths[i], widths[i]) for i in range(cfg["depth"])])
            self.head = nn.Conv2d(widths[0], cfg["num_classes"], 1)

        def forward(self, x):
            skips = []
            for i, enc in enumerate(self.enc):
                if i > 0:
                    x = nn.functional.max_pool2d(x, 2)
                x = enc(x)
                skips.append(x)
            for i in range(cfg["depth"] - 1, -1, -1):
                x = self.up[i](x, output_size=skips[i].shape[2:])
                x = self.dec[i](torch.cat([skips[i], x], dim=1))
            return self.head(x)

    net = TorchUNet()
    # both register their parameters in the same order: enc[0..D], up[0..D-1], dec[0..D-1], head
    torch_order = list(net.parameters())
    ours = list(model.named_parameters())
    assert len(torch_order) == len(ours) == len(list(net.parameters()))
    with torch.no_grad():
        for t, (name, p) in zip(torch_order, ours):
            assert tuple(t.shape) == tuple(p.shape), (name, tuple(t.shape), tuple(p.shape))
            t.copy_(torch.from_numpy(np.asarray(p.data)))
    return net


def main(argv=None) -> None:
    import torch  # noqa: PLC0415

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base-width", type=int, default=16)
    parser.add_argument("--depth", type=int, default=3)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--blocks", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)

    rng = np.random.default_rng(0)
    x = rng.random((args.batch, 3, args.size, args.size), dtype=np.float32)
    y = rng.integers(0, 5, size=(args.batch, args.size, args.size))
    y[:, 0] = 255
    model = build_model("unet", num_classes=5, in_channels=3, base_width=args.base_width, depth=args.depth, rng=0)
    opt = Adam(model.parameters(), lr=1e-3)
    net = torch_unet(model)
    topt = torch.optim.Adam(net.parameters(), lr=1e-3)
    tx, ty = torch.from_numpy(x), torch.from_numpy(y)

    # the two networks compute the same thing
    with torch.no_grad():
        net.train()
        diff = np.abs(net(tx).numpy() - model.forward(x)).max()
    assert diff < 1e-3, f"PyTorch and minseg U-Nets disagree by {diff}"

    def step_minseg():
        loss, cache = cross_entropy(model.forward(x), y, ignore_index=255)
        model.backward(cross_entropy_backward(1.0, cache))
        opt.step()

    def step_torch():
        topt.zero_grad()
        loss = torch.nn.functional.cross_entropy(net(tx), ty, ignore_index=255)
        loss.backward()
        topt.step()

    print_header()
    t = side_by_side({"minseg": step_minseg, "torch": step_torch}, blocks=args.blocks, repeats=args.repeats)
    n = args.batch
    print(f"U-Net base_width={args.base_width} depth={args.depth} ({model.num_parameters():,} parameters), "
          f"batch {n} x 3 x {args.size} x {args.size}, forward + loss + backward + Adam, max |logit diff| {diff:.1e}")
    print(f"  minseg  {t['minseg'] * 1e3:8.1f} ms/step  {n / t['minseg']:7.1f} images/s")
    print(f"  torch   {t['torch'] * 1e3:8.1f} ms/step  {n / t['torch']:7.1f} images/s")
    print(f"  ratio (minseg time / torch time): {t['minseg'] / t['torch']:.2f}")


if __name__ == "__main__":
    main()

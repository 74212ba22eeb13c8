"""U-Net: a contracting path, an expanding path, and concatenated skips between them."""
from __future__ import annotations

import numpy as np

from ..nn.blocks import ConvBNReLU, concat, split
from ..nn.layers import Conv2d, ConvTranspose2d, MaxPool2d, ModuleList, Sequential
from ..nn.module import make_rng
from .registry import SegmentationModel, check_input, register_model

__all__ = ["UNet"]


def double_conv(c_in: int, c_out: int, batchnorm: bool, rng, dtype) -> Sequential:
    """Two 3x3 convolutions (padding 1, so the size is kept), each with BatchNorm and ReLU."""
    return Sequential(ConvBNReLU(c_in, c_out, 3, batchnorm=batchnorm, rng=rng, dtype=dtype),
                      ConvBNReLU(c_out, c_out, 3, batchnorm=batchnorm, rng=rng, dtype=dtype))


@register_model("unet")
class UNet(SegmentationModel):
    """U-Net with configurable depth and width, padded 3x3 convolutions, and any input size.

    Architecture for ``base_width=16, depth=3`` and an (N, C_in, H, W) input
    (``w_i = base_width * 2**i``; sizes floored by each pooling)::

        enc[0] = double_conv(C_in -> 16)                     (N, 16,  H,    W)     ----- skip 0 -----+
        enc[1] = double_conv(pool[0](enc[0]), 16 -> 32)      (N, 32,  H/2,  W/2)   -- skip 1 --+     |
        enc[2] = double_conv(pool[1](enc[1]), 32 -> 64)      (N, 64,  H/4,  W/4)   - skip 2 +  |     |
        enc[3] = double_conv(pool[2](enc[2]), 64 -> 128)     (N, 128, H/8,  W/8)  bottleneck |  |     |
        up[2] = convT 2x2 s2 (128 -> 64), dec[2] = double_conv(concat(skip2, up[2]), 128 -> 64)  (N, 64, H/4, W/4)
        up[1] = convT (64 -> 32),         dec[1] = double_conv(concat(skip1, up[1]), 64 -> 32)   (N, 32, H/2, W/2)
        up[0] = convT (32 -> 16),         dec[0] = double_conv(concat(skip0, up[0]), 32 -> 16)   (N, 16, H, W)
        head = Conv1x1(16 -> num_classes)                                                       (N, K, H, W)

    The odd-size pitfall: pooling an odd size floors it (13 -> 6), and
    upsampling 6 gives 12, not 13, so the skip and the upsampled map no longer
    line up. Here each transposed convolution is asked for the skip's exact
    size (``output_size``, i.e. ``output_padding = 1`` for an odd size), so
    every input size from ``2**depth`` up works and the output has the input's size. (The paper
    used unpadded convolutions and cropped the skips instead.)

    Backward routes the gradient of each concatenation back in two parts: the
    first ``w_i`` channels to the skip (added to the encoder's gradient from
    below), the rest to the transposed convolution.

    Parameters
    ----------
    num_classes, in_channels : int
    base_width : int
        Channels of the first level; each level down doubles them.
    depth : int
        Number of poolings (levels below the first).
    batchnorm : bool

    References
    ----------
    Ronneberger, Fischer & Brox, "U-Net: Convolutional Networks for Biomedical Image Segmentation", MICCAI 2015.
    """

    def __init__(self, num_classes: int, in_channels: int = 3, base_width: int = 16, depth: int = 3,
                 batchnorm: bool = True, *, rng=None, dtype=np.float32):
        super().__init__(num_classes=num_classes, in_channels=in_channels, base_width=base_width, depth=depth,
                         batchnorm=batchnorm)
        if depth < 1:
            raise ValueError(f"UNet: expected depth >= 1, got {depth!r}")
        rng = make_rng(rng)
        widths = [base_width * 2 ** i for i in range(depth + 1)]
        self.widths = widths
        c = in_channels
        self.pool, self.enc = ModuleList(), ModuleList()  # level i: enc[i]; pool[i - 1] brings level i - 1 down to i
        for i, w in enumerate(widths):
            if i > 0:
                self.pool.append(MaxPool2d(2, 2))
            self.enc.append(double_conv(c, w, batchnorm, rng, dtype))
            c = w
        ups, decs = {}, {}
        for i in range(depth - 1, -1, -1):  # built from the bottom up (the order the weights are drawn in)
            ups[i] = ConvTranspose2d(widths[i + 1], widths[i], 2, stride=2, rng=rng, dtype=dtype)
            decs[i] = double_conv(2 * widths[i], widths[i], batchnorm, rng, dtype)
        self.up = ModuleList(ups[i] for i in range(depth))    # up[i]: level i + 1 -> level i
        self.dec = ModuleList(decs[i] for i in range(depth))  # dec[i]: the convolutions after level i's concat
        self.head = Conv2d(widths[0], num_classes, 1, rng=rng, dtype=dtype)
        self._concat_sizes = {}

    def forward(self, x):
        D = self.config["depth"]
        check_input("UNet", x, self.config["in_channels"], 2 ** D)
        skips = []
        h = x
        for i in range(D + 1):
            if i > 0:
                h = self.pool[i - 1].forward(h)
            h = self.enc[i].forward(h)
            skips.append(h)
        for i in range(D - 1, -1, -1):
            skip = skips[i]
            up = self.up[i].forward(h, output_size=skip.shape[2:])  # exact size, odd or even
            h, self._concat_sizes[i] = concat([skip, up])
            h = self.dec[i].forward(h)
        return self.head.forward(h)

    def backward(self, dlogits):
        D = self.config["depth"]
        d = self.head.backward(dlogits)
        dskips = {}
        for i in range(D):
            d = self.dec[i].backward(d)
            dskips[i], dup = split(d, self._concat_sizes[i])
            d = self.up[i].backward(dup)
        for i in range(D, -1, -1):  # d: gradient w.r.t. enc[i]'s output from the level below
            if i < D:
                d = d + dskips[i]
            d = self.enc[i].backward(d)
            if i > 0:
                d = self.pool[i - 1].backward(d)
        return d

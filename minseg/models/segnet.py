"""SegNet / DeconvNet-style encoder-decoder: the decoder unpools with the encoder's max-pooling switches."""
from __future__ import annotations

import numpy as np

from ..nn.blocks import ConvBNReLU
from ..nn.layers import Conv2d, MaxPool2d, MaxUnpool2d, ModuleList, Sequential
from ..nn.module import make_rng
from .registry import SegmentationModel, check_input, register_model

__all__ = ["SegNet"]


@register_model("segnet")
class SegNet(SegmentationModel):
    """Encoder-decoder whose decoder puts values back where the encoder's maxima were.

    Architecture for ``widths=(16, 32, 64)``, ``convs=2`` and an (N, C_in, H, W) input::

        enc[0]: 2 x ConvBNReLU(C_in -> 16) -> pool[0] (keeps switches)   (N, 16, H/2, W/2)
        enc[1]: 2 x ConvBNReLU(16 -> 32)   -> pool[1]                    (N, 32, H/4, W/4)
        enc[2]: 2 x ConvBNReLU(32 -> 64)   -> pool[2]                    (N, 64, H/8, W/8)
        dec[2]: unpool[2](switches of pool[2]) -> ConvBNReLU(64 -> 64), ConvBNReLU(64 -> 32)   (N, 32, H/4, W/4)
        dec[1]: unpool[1](pool[1])             -> ConvBNReLU(32 -> 32), ConvBNReLU(32 -> 16)   (N, 16, H/2, W/2)
        dec[0]: unpool[0](pool[0])             -> ConvBNReLU(16 -> 16), ConvBNReLU(16 -> 16)   (N, 16, H, W)
        classifier: Conv1x1(16 -> num_classes)                                                (N, K, H, W)

    Max-unpooling writes each value at the position its max came from and
    zeros elsewhere (a sparse map the following convolutions densify); it is
    given the pooled input's size, so odd sizes come back exactly (13 -> 6 -> 13).
    Unlike FCN and U-Net nothing is concatenated or added: only the switches,
    a few bits per window, cross from encoder to decoder. The backward pass of
    unpooling gathers the gradient at the switches; that of pooling scatters it
    back to them.

    Parameters
    ----------
    num_classes, in_channels : int
    widths : sequence of int
        Channels of each encoder stage (the decoder mirrors them).
    convs : int
        Convolutions per stage (>= 1).
    batchnorm : bool

    References
    ----------
    Badrinarayanan, Kendall & Cipolla, "SegNet: A Deep Convolutional Encoder-Decoder Architecture for Image
    Segmentation", TPAMI 2017. Noh, Hong & Han, "Learning Deconvolution Network for Semantic Segmentation", ICCV 2015.
    """

    def __init__(self, num_classes: int, in_channels: int = 3, widths=(16, 32, 64), convs: int = 2,
                 batchnorm: bool = True, *, rng=None, dtype=np.float32):
        super().__init__(num_classes=num_classes, in_channels=in_channels, widths=list(widths), convs=convs,
                         batchnorm=batchnorm)
        if convs < 1 or not widths:
            raise ValueError(f"SegNet: expected convs >= 1 and at least one stage, got convs={convs}, widths={widths}")
        rng = make_rng(rng)
        widths = list(widths)
        c = in_channels
        self.enc, self.pool = ModuleList(), ModuleList()  # stage i (from 1): enc[i - 1] then pool[i - 1]
        for w in widths:
            layers = []
            for _ in range(convs):
                layers.append(ConvBNReLU(c, w, 3, batchnorm=batchnorm, rng=rng, dtype=dtype))
                c = w
            self.enc.append(Sequential(*layers))
            self.pool.append(MaxPool2d(2, 2))
        decs = {}
        for i in range(len(widths), 0, -1):  # built from the bottom up (the order the weights are drawn in)
            w = widths[i - 1]
            w_next = widths[i - 2] if i > 1 else widths[0]
            layers = [ConvBNReLU(w, w, 3, batchnorm=batchnorm, rng=rng, dtype=dtype) for _ in range(convs - 1)]
            layers.append(ConvBNReLU(w, w_next, 3, batchnorm=batchnorm, rng=rng, dtype=dtype))
            decs[i] = Sequential(*layers)
        self.unpool = ModuleList(MaxUnpool2d(2, 2) for _ in widths)  # unpool[i - 1] uses pool[i - 1]'s switches
        self.dec = ModuleList(decs[i] for i in range(1, len(widths) + 1))
        self.classifier = Conv2d(widths[0], num_classes, 1, rng=rng, dtype=dtype)
        self.num_stages = len(widths)

    def forward(self, x):
        check_input("SegNet", x, self.config["in_channels"], 2 ** self.num_stages)
        h = x
        for enc, pool in zip(self.enc, self.pool):
            h = pool.forward(enc.forward(h))
        for i in range(self.num_stages - 1, -1, -1):
            pool = self.pool[i]
            h = self.unpool[i].forward(h, pool.indices, output_size=pool.input_size)
            h = self.dec[i].forward(h)
        return self.classifier.forward(h)

    def backward(self, dlogits):
        d = self.classifier.backward(dlogits)
        for unpool, dec in zip(self.unpool, self.dec):
            d = unpool.backward(dec.backward(d))
        for i in range(self.num_stages - 1, -1, -1):
            d = self.enc[i].backward(self.pool[i].backward(d))
        return d

"""DeepLab-style network: dilated backbone, atrous spatial pyramid pooling with image pooling, bilinear upsampling."""
from __future__ import annotations

import numpy as np

from ..nn.batchnorm import BatchNorm2d
from ..nn.blocks import ConvBNReLU, concat, split
from ..nn.layers import Conv2d, Dropout, GlobalAvgPool2d, ModuleList, ReLU, SeparableConv2d, Sequential, Upsample
from ..nn.module import Module, make_rng
from ..ops.context import broadcast_to_size, broadcast_to_size_backward
from .registry import SegmentationModel, check_input, register_model
from .vgg import VGGBackbone

__all__ = ["ASPP", "DeepLab"]


class ASPP(Module):
    """Atrous spatial pyramid pooling: parallel branches at several rates, concatenated, then projected.

    Branches, each (N, C_in, h, w) -> (N, A, h, w) with A = ``channels``::

        branches[0]:      Conv1x1 -> BN -> ReLU
        branches[j + 1]:  Conv3x3 dilation r = rates[j] (padding r) -> BN -> ReLU        one per rate
               (separable=True: depthwise 3x3 dilated + pointwise 1x1, -> BN -> ReLU)
        pool:  global average -> Conv1x1 -> ReLU -> broadcast to (h, w)      image-level context (ParseNet)

        concat (N, A * (2 + len(rates)), h, w) -> Conv1x1 -> BN -> ReLU -> Dropout   (N, A, h, w)

    A 3x3 convolution at rate r sees a (2r+1) x (2r+1) window with 9 weights:
    the branches look at several scales with no extra resolution loss. The
    image-pooling branch has no BatchNorm (one value per channel and image
    would make its batch statistics degenerate for small batches); its
    broadcast's backward is the sum over the map.
    """

    def __init__(self, in_channels: int, channels: int, rates=(2, 4, 6), image_pooling: bool = True,
                 separable: bool = False, batchnorm: bool = True, dropout: float = 0.0, *, rng=None, dtype=np.float32):
        super().__init__()
        rng = make_rng(rng)
        self.rates, self.image_pooling = list(rates), image_pooling
        self.branches = ModuleList([ConvBNReLU(in_channels, channels, 1, batchnorm=batchnorm, rng=rng, dtype=dtype)])
        for r in self.rates:  # branches[0] the 1x1 convolution, branches[j + 1] the 3x3 at rates[j]
            if separable:
                branch = Sequential(SeparableConv2d(in_channels, channels, 3, padding=r, dilation=r, bias=not batchnorm,
                                                    rng=rng, dtype=dtype),
                                    *([BatchNorm2d(channels, dtype=dtype)] if batchnorm else []), ReLU())
            else:
                branch = ConvBNReLU(in_channels, channels, 3, padding=r, dilation=r, batchnorm=batchnorm, rng=rng,
                                    dtype=dtype)
            self.branches.append(branch)
        n_branches = 1 + len(self.rates)
        if image_pooling:
            self.gap = GlobalAvgPool2d()
            self.pool_conv = Sequential(Conv2d(in_channels, channels, 1, rng=rng, dtype=dtype), ReLU())
            n_branches += 1
        self.project = Sequential(ConvBNReLU(n_branches * channels, channels, 1, batchnorm=batchnorm, rng=rng,
                                             dtype=dtype), Dropout(dropout, rng=rng))
        self._sizes = self._bcast = None

    def forward(self, x):
        outs = [b.forward(x) for b in self.branches]
        if self.image_pooling:
            p = self.pool_conv.forward(self.gap.forward(x))  # (N, A, 1, 1)
            p, self._bcast = broadcast_to_size(p, x.shape[2:])  # (N, A, h, w), ParseNet's "unpool"
            outs.append(p)
        y, self._sizes = concat(outs)
        return self.project.forward(y)

    def backward(self, dy):
        parts = split(self.project.backward(dy), self._sizes)
        dx = None
        if self.image_pooling:
            dp = broadcast_to_size_backward(parts.pop(), self._bcast)  # the sum over the map
            dx = self.gap.backward(self.pool_conv.backward(dp))
        for b, d in zip(self.branches, parts):
            g = b.backward(d)
            dx = g if dx is None else dx + g
        return dx


@register_model("deeplab")
class DeepLab(SegmentationModel):
    """DeepLab (v3-style) on the small VGG backbone: output stride 8, ASPP, bilinear upsampling to the input size.

    Architecture for the defaults and an (N, C_in, H, W) input::

        backbone (output_stride=8): stage1..3 pooled (H/8), pool4 dropped,
                                    stage5 dilated 2, pool5 dropped      (N, 128, H/8, W/8)
        ASPP (rates 2, 4, 6 + 1x1 + image pooling) -> project            (N, 64,  H/8, W/8)
        classifier Conv1x1                                               (N, K,   H/8, W/8)
        bilinear upsampling to (H, W) (align_corners=False)              (N, K,   H,   W)

    This is DeepLab v1's surgery on VGG: the strides of pool4 and pool5 are
    removed and the convolutions after them dilated, so the backbone has the
    same parameters as ``VGGBackbone`` (``load_pretrained`` copies a trained
    classifier's). Dilation replaces the last poolings: the feature map stays at 1/8 of the
    input while the receptive field keeps growing, and the scores are brought back
    to full size by (parameter-free) bilinear interpolation. Any input size
    >= the output stride works (sizes are floored by pooling; the interpolation
    goes to the exact input size).

    Parameters
    ----------
    num_classes, in_channels : int
    widths, convs, batchnorm : of the ``VGGBackbone``
    output_stride : int
        8 or 16 (a power of two): where the backbone stops pooling and starts dilating.
    aspp_channels : int
    rates : sequence of int
        Dilation rates of the 3x3 ASPP branches (DeepLab v3 uses 6, 12, 18 at output
        stride 16 on 513-pixel crops; these defaults suit 64-pixel images).
    image_pooling : bool
        Add the global-average-pooling branch.
    separable : bool
        Depthwise-separable 3x3 convolutions in the ASPP (DeepLab v3+): far fewer parameters.
    dropout : float

    References
    ----------
    Chen et al., "DeepLab: Semantic Image Segmentation with Deep Convolutional Nets, Atrous Convolution, and
    Fully Connected CRFs", TPAMI 2017; "Rethinking Atrous Convolution for Semantic Image Segmentation", 2017
    (v3); "Encoder-Decoder with Atrous Separable Convolution", ECCV 2018 (v3+). Liu, Rabinovich & Berg,
    "ParseNet: Looking Wider to See Better", 2015 (image-level context).
    """

    def __init__(self, num_classes: int, in_channels: int = 3, widths=(16, 32, 64, 128, 128), convs=(1, 1, 2, 2, 2),
                 batchnorm: bool = True, output_stride: int = 8, aspp_channels: int = 64, rates=(2, 4, 6),
                 image_pooling: bool = True, separable: bool = False, dropout: float = 0.0,
                 *, rng=None, dtype=np.float32):
        super().__init__(num_classes=num_classes, in_channels=in_channels, widths=list(widths),
                         convs=convs if isinstance(convs, int) else list(convs), batchnorm=batchnorm,
                         output_stride=output_stride, aspp_channels=aspp_channels, rates=list(rates),
                         image_pooling=image_pooling, separable=separable, dropout=dropout)
        rng = make_rng(rng)
        self.backbone = VGGBackbone(in_channels, widths, convs, batchnorm, output_stride=output_stride, rng=rng,
                                    dtype=dtype)
        self.aspp = ASPP(self.backbone.out_channels, aspp_channels, rates, image_pooling, separable, batchnorm,
                         dropout, rng=rng, dtype=dtype)
        self.classifier = Conv2d(aspp_channels, num_classes, 1, rng=rng, dtype=dtype)
        self.upsample = Upsample(align_corners=False)

    def forward(self, x):
        check_input("DeepLab", x, self.config["in_channels"], self.backbone.stride)
        score = self.classifier.forward(self.aspp.forward(self.backbone.forward(x)))
        return self.upsample.forward(score, size=tuple(x.shape[2:]))

    def backward(self, dlogits):
        d = self.classifier.backward(self.upsample.backward(dlogits))
        return self.backbone.backward(self.aspp.backward(d))

    def load_pretrained(self, classifier):
        """Transfer learning: copy a trained ``VGGClassifier``'s backbone (same widths, convs, batchnorm)."""
        for key in ("in_channels", "widths", "convs", "batchnorm"):
            if classifier.config[key] != self.config[key]:
                raise ValueError(f"DeepLab.load_pretrained: expected the classifier's {key} to be "
                                 f"{self.config[key]!r}, got {classifier.config[key]!r}")
        self.backbone.load_state_dict(classifier.backbone.state_dict())
        return self

"""A small VGG-style backbone, its classifier with fully-connected layers, and convolutionalization.

The backbone is VGG's recipe at a small scale: stages of 3x3 convolutions
(+ BatchNorm + ReLU), each stage followed by 2x2 max-pooling, the width
doubling as the resolution halves. Trained as a classifier (fully-connected
head on the last feature map) it can then be *convolutionalized* (FCN,
section 3.1): an FC layer over a flattened (C, s, s) map is an s x s
convolution with the same weights, and an FC layer over a vector a 1x1
convolution. The convolutionalized classifier accepts any input size
and outputs a map of class scores, one per s x s window of the last feature
map: the classifier slid over the image in steps of ``2**stages`` pixels, in
one pass that shares all the convolutions between overlapping windows (the
scores differ from running the classifier on separate crops only near the
crop borders, where the padded convolutions saw zeros instead of the
neighbouring pixels).
"""
from __future__ import annotations

import numpy as np

from ..nn.blocks import ConvBNReLU
from ..nn.layers import Conv2d, Dropout, Flatten, Identity, Linear, MaxPool2d, ModuleList, ReLU, Sequential
from ..nn.module import Module, make_rng
from .registry import SegmentationModel, check_input, register_model

__all__ = ["VGGBackbone", "VGGClassifier", "FullyConvClassifier", "convolutionalize"]


class VGGBackbone(Module):
    """VGG-style feature extractor: ``len(widths)`` stages of 3x3 conv blocks, each followed by 2x2 max-pooling.

    Architecture, for an (N, C_in, H, W) input and the default ``widths=(16, 32, 64, 128, 128)``::

        stage1: convs[0] x ConvBNReLU(3x3) -> pool1   (N, 16,  H/2,  W/2)
        stage2: convs[1] x ConvBNReLU      -> pool2   (N, 32,  H/4,  W/4)
        stage3:                            -> pool3   (N, 64,  H/8,  W/8)    FCN-8s skip
        stage4:                            -> pool4   (N, 128, H/16, W/16)   FCN-16s skip
        stage5:                            -> pool5   (N, 128, H/32, W/32)   FCN-32s

    (sizes are floored at every pooling). With ``output_stride`` (DeepLab), the
    pooling that would take the stride beyond it is removed and the later
    stages' convolutions are dilated instead (rate 2, then 4, ...), so the
    receptive field keeps growing while the resolution stays at ``H / output_stride``.

    Parameters
    ----------
    in_channels : int
    widths : sequence of int
        Channels of each stage.
    convs : int or sequence of int
        3x3 convolutions per stage.
    batchnorm : bool
    output_stride : int, optional
        A power of two; None pools after every stage (stride ``2 ** len(widths)``).

    ``forward(x)`` returns the last stage's output; ``forward_features(x)``
    returns every stage's output (after its pooling), and
    ``backward_features({stage: grad})`` takes gradients for any of them.
    Stages are numbered from 1 as in the papers (``pool4`` is the 4th pooling); the modules are
    held in two lists, ``stages[i - 1]`` and ``pools[i - 1]`` for stage ``i``.
    """

    def __init__(self, in_channels: int = 3, widths=(16, 32, 64, 128, 128), convs=(1, 1, 2, 2, 2),
                 batchnorm: bool = True, output_stride=None, *, rng=None, dtype=np.float32):
        super().__init__()
        widths = list(widths)
        convs = [convs] * len(widths) if isinstance(convs, int) else list(convs)
        if len(convs) != len(widths):
            raise ValueError(f"VGGBackbone: expected one entry of convs per stage ({len(widths)}), got {convs}")
        if output_stride is not None and (output_stride < 1 or output_stride & (output_stride - 1)):
            raise ValueError(f"VGGBackbone: expected output_stride to be a power of two, got {output_stride!r}")
        rng = make_rng(rng)
        self.in_channels, self.widths, self.convs = in_channels, widths, convs
        self.output_stride = output_stride
        self.strides, self.dilations = [], []
        stride, dilation, c = 1, 1, in_channels
        self.stages, self.pools = ModuleList(), ModuleList()  # stage i + 1 and its pooling: "pool1" is pools[0]
        for w, n in zip(widths, convs):
            blocks = []
            for _ in range(n):
                blocks.append(ConvBNReLU(c, w, 3, padding=dilation, dilation=dilation, batchnorm=batchnorm,
                                         rng=rng, dtype=dtype))
                c = w
            self.stages.append(Sequential(*blocks))
            self.dilations.append(dilation)
            if output_stride is None or stride * 2 <= output_stride:
                self.pools.append(MaxPool2d(2, 2))
                stride *= 2
            else:  # keep the resolution, dilate the next stage instead
                self.pools.append(Identity())
                dilation *= 2
            self.strides.append(stride)
        self.out_channels = c
        self.num_stages = len(widths)

    @property
    def stride(self) -> int:
        """Total downsampling factor of the last stage's output."""
        return self.strides[-1]

    def forward_features(self, x):
        """Every stage's pooled output, ``[pool1, ..., poolS]``."""
        feats = []
        for stage, pool in zip(self.stages, self.pools):
            x = pool.forward(stage.forward(x))
            feats.append(x)
        return feats

    def forward(self, x):
        return self.forward_features(x)[-1]

    def backward_features(self, grads: dict):
        """Backward through all stages; ``grads[i]`` is dL/d(pool_i output) (missing or None: 0). Returns dx."""
        d = None
        for i in range(self.num_stages, 0, -1):
            g = grads.get(i)
            if g is not None:
                d = g if d is None else d + g
            if d is None:
                continue
            d = self.stages[i - 1].backward(self.pools[i - 1].backward(d))
        return d

    def backward(self, dy):
        return self.backward_features({self.num_stages: dy})


@register_model("vgg_classifier")
class VGGClassifier(SegmentationModel):
    """An image classifier: ``VGGBackbone`` + three fully-connected layers (VGG's fc6, fc7, fc8).

    Architecture, for an (N, C_in, S, S) input with ``S = input_size`` and ``s = S / 2**stages``::

        backbone             (N, C5, s, s)
        flatten              (N, C5*s*s)
        fc6 -> ReLU -> drop  (N, fc_channels)
        fc7 -> ReLU -> drop  (N, fc_channels)
        fc8                  (N, num_classes)      class scores

    ``convolutionalize(model)`` turns it into a fully convolutional network with the same weights.

    For the digits (``minseg.data.load_digits_classification``): 32-pixel crops
    with the default 5 stages (``s = 1``), or 16-pixel crops with 4 stages
    (``input_size=16, widths=(16, 32, 64, 128), convs=(1, 1, 2, 2)``).

    Parameters
    ----------
    num_classes, in_channels : int
    input_size : int
        The (square) input size the FC head is built for; ``input_size / 2**stages``
        must be a whole number >= 1 (the size ``s`` of the last feature map).
    widths, convs, batchnorm : as for ``VGGBackbone``
    fc_channels : int
    dropout : float
        Drop probability after fc6 and fc7.
    """

    def __init__(self, num_classes: int, in_channels: int = 1, input_size: int = 32, widths=(16, 32, 64, 128, 128),
                 convs=(1, 1, 2, 2, 2), batchnorm: bool = True, fc_channels: int = 128, dropout: float = 0.5,
                 *, rng=None, dtype=np.float32):
        super().__init__(num_classes=num_classes, in_channels=in_channels, input_size=input_size,
                         widths=list(widths), convs=convs if isinstance(convs, int) else list(convs),
                         batchnorm=batchnorm, fc_channels=fc_channels, dropout=dropout)
        rng = make_rng(rng)
        total = 2 ** len(widths)
        if input_size % total or input_size < total:
            raise ValueError(f"VGGClassifier: expected input_size to be a multiple of 2**stages = {total}, "
                             f"got {input_size}")
        self.fc_size = input_size // total
        self.backbone = VGGBackbone(in_channels, widths, convs, batchnorm, rng=rng, dtype=dtype)
        C5 = self.backbone.out_channels
        self.head = Sequential(
            Flatten(),
            Linear(C5 * self.fc_size ** 2, fc_channels, rng=rng, dtype=dtype), ReLU(), Dropout(dropout, rng=rng),
            Linear(fc_channels, fc_channels, rng=rng, dtype=dtype), ReLU(), Dropout(dropout, rng=rng),
            Linear(fc_channels, num_classes, rng=rng, dtype=dtype),
        )

    def forward(self, x):
        S = self.config["input_size"]
        check_input("VGGClassifier", x, self.config["in_channels"])
        if tuple(x.shape[2:]) != (S, S):
            raise ValueError(f"VGGClassifier: expected x of shape (N, {self.config['in_channels']}, {S}, {S}) "
                             f"(the FC head fixes the input size; convolutionalize() lifts that), "
                             f"got shape {tuple(x.shape)}")
        return self.head.forward(self.backbone.forward(x))

    def backward(self, dlogits):
        return self.backbone.backward(self.head.backward(dlogits))


def fc_to_conv(fc: Linear, in_channels: int, k: int, *, padding: int = 0) -> Conv2d:
    """The k x k convolution equal to an FC layer over a flattened (in_channels, k, k) map: same weights, reshaped."""
    conv = Conv2d(in_channels, fc.out_features, k, padding=padding, bias=fc.bias is not None, dtype=fc.weight.dtype)
    conv.weight.data[...] = fc.weight.data.reshape(fc.out_features, in_channels, k, k)  # Flatten's C-order
    if fc.bias is not None:
        conv.bias.data[...] = fc.bias.data
    return conv


@register_model("fully_conv_classifier")
class FullyConvClassifier(SegmentationModel):
    """A ``VGGClassifier`` convolutionalized: fc6 -> s x s conv, fc7 and fc8 -> 1x1 convs; inputs from input_size up.

    Architecture, for (N, C_in, H, W)::

        backbone                  (N, C5, H / 2**S, W / 2**S)
        fc6 (s x s conv) -> ReLU  (N, F, H / 2**S - s + 1, ...)
        fc7 (1x1)        -> ReLU  (N, F, ...)
        fc8 (1x1)                 (N, num_classes, h, w)    a score map

    At input size ``input_size`` the map is 1x1 and equals the classifier's
    output; on a larger input, score ``[i, j]`` is the classifier's FC head
    applied to the s x s window of backbone features at ``(i, j)`` (input
    stride ``2**S``), all computed in one pass.

    Build it with ``convolutionalize(classifier)``; its constructor takes the classifier's config.
    """

    def __init__(self, num_classes: int, in_channels: int = 1, input_size: int = 32, widths=(16, 32, 64, 128, 128),
                 convs=(1, 1, 2, 2, 2), batchnorm: bool = True, fc_channels: int = 128, dropout: float = 0.5,
                 *, rng=None, dtype=np.float32):
        super().__init__(num_classes=num_classes, in_channels=in_channels, input_size=input_size,
                         widths=list(widths), convs=convs if isinstance(convs, int) else list(convs),
                         batchnorm=batchnorm, fc_channels=fc_channels, dropout=dropout)
        rng = make_rng(rng)
        self.fc_size = input_size // 2 ** len(widths)
        self.backbone = VGGBackbone(in_channels, widths, convs, batchnorm, rng=rng, dtype=dtype)
        C5, s = self.backbone.out_channels, self.fc_size
        self.head = Sequential(
            Conv2d(C5, fc_channels, s, rng=rng, dtype=dtype), ReLU(), Dropout(dropout, rng=rng),
            Conv2d(fc_channels, fc_channels, 1, rng=rng, dtype=dtype), ReLU(), Dropout(dropout, rng=rng),
            Conv2d(fc_channels, num_classes, 1, rng=rng, dtype=dtype),
        )

    def forward(self, x):
        check_input("FullyConvClassifier", x, self.config["in_channels"], self.config["input_size"])
        return self.head.forward(self.backbone.forward(x))

    def backward(self, dlogits):
        return self.backbone.backward(self.head.backward(dlogits))


def convolutionalize(classifier: VGGClassifier) -> FullyConvClassifier:
    """Turn a ``VGGClassifier`` into a ``FullyConvClassifier`` with the same weights (copied).

    fc6's weight (F, C5*s*s) becomes an (F, C5, s, s) kernel (the reshape inverts
    the C-order flattening), fc7's (F, F) becomes (F, F, 1, 1), fc8's (K, F) becomes
    (K, F, 1, 1); biases are unchanged; the backbone (with its BatchNorm
    statistics) is copied as is. On an input of the classifier's size the two
    networks compute the same numbers (test: ``tests/test_models.py``).
    """
    if not isinstance(classifier, VGGClassifier):
        raise TypeError(f"convolutionalize: expected a VGGClassifier, got {type(classifier).__name__}")
    fcn = FullyConvClassifier(**classifier.config, dtype=classifier.dtype)
    fcn.backbone.load_state_dict(classifier.backbone.state_dict())
    C5, s = classifier.backbone.out_channels, classifier.fc_size
    for conv_i, fc_i, c_in, k in ((0, 1, C5, s), (3, 4, classifier.config["fc_channels"], 1),
                                  (6, 7, classifier.config["fc_channels"], 1)):
        conv = fc_to_conv(classifier.head[fc_i], c_in, k)
        fcn.head[conv_i].weight.data[...] = conv.weight.data
        fcn.head[conv_i].bias.data[...] = conv.bias.data
    fcn.train(classifier.training)
    return fcn

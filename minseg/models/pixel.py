"""The per-pixel baseline: every pixel classified on its own colour, with 1x1 convolutions only."""
from __future__ import annotations

import numpy as np

from ..nn.layers import Conv2d, ReLU, Sequential
from ..nn.module import make_rng
from .registry import SegmentationModel, check_input, register_model

__all__ = ["PixelClassifier"]


@register_model("pixel")
class PixelClassifier(SegmentationModel):
    """A per-pixel classifier: a stack of 1x1 convolutions (an MLP applied at every pixel).

    With ``hidden=()`` it is a per-pixel linear softmax classifier: a 1x1
    convolution *is* a linear classifier shared by all pixels. It sees one
    pixel at a time, so it has no context at all: the baseline every other
    model must beat.

    Architecture (shapes for an (N, C_in, H, W) input)::

        [Conv1x1(C_in -> h_1) -> ReLU]  (N, h_1, H, W)     one per entry of ``hidden``
        ...
        Conv1x1(h_last -> num_classes)  (N, num_classes, H, W)

    Parameters
    ----------
    num_classes : int
    in_channels : int
    hidden : sequence of int
        Widths of the hidden 1x1 layers.
    """

    def __init__(self, num_classes: int, in_channels: int = 3, hidden=(32,), *, rng=None, dtype=np.float32):
        super().__init__(num_classes=num_classes, in_channels=in_channels, hidden=list(hidden))
        rng = make_rng(rng)
        layers, c = [], in_channels
        for h in hidden:
            layers += [Conv2d(c, h, 1, rng=rng, dtype=dtype), ReLU()]
            c = h
        layers.append(Conv2d(c, num_classes, 1, rng=rng, dtype=dtype))
        self.net = Sequential(*layers)

    def forward(self, x):
        check_input("PixelClassifier", x, self.config["in_channels"])
        return self.net.forward(x)

    def backward(self, dlogits):
        return self.net.backward(dlogits)

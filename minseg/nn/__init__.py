"""Layers: thin objects over the ops in ``minseg.ops`` that hold parameters, gradients and the last cache.

    import minseg.nn as nn
    net = nn.Sequential(nn.Conv2d(3, 16, 3, padding=1, rng=0), nn.BatchNorm2d(16), nn.ReLU(),
                        nn.Conv2d(16, 5, 1, rng=1))
    logits = net.forward(x)              # (N, 5, H, W)
    dx = net.backward(dlogits)           # fills every Parameter.grad
    for name, p in net.named_parameters():
        print(name, p.shape, p.grad.shape)
    net.num_parameters(), net.state_dict(), net.eval()

See ``minseg.nn.module`` for the rules every layer follows.
"""
from .batchnorm import BatchNorm2d
from .blocks import (ConvBNReLU, center_crop_offsets, concat, crop, crop_backward, pad_to, pad_to_backward,
                     split)
from .layers import (Conv2d, ConvTranspose2d, Dropout, Flatten, GlobalAvgPool2d, Identity, Linear, MaxPool2d,
                     MaxUnpool2d, ModuleList, ReLU, SeparableConv2d, Sequential, Upsample)
from .module import LoadResult, Module, Parameter, kaiming_normal, make_rng
from .pyramid import AdaptiveAvgPool2d, AdaptiveMaxPool2d, SpatialPyramidPool

__all__ = [
    "Module", "Parameter", "LoadResult", "make_rng", "kaiming_normal",
    "Conv2d", "ConvTranspose2d", "SeparableConv2d", "Linear",
    "MaxPool2d", "MaxUnpool2d", "Upsample", "GlobalAvgPool2d",
    "ReLU", "Dropout", "Flatten", "Identity", "Sequential", "ModuleList", "BatchNorm2d",
    "ConvBNReLU", "concat", "split", "crop", "crop_backward", "center_crop_offsets", "pad_to", "pad_to_backward",
]
__all__ += ["AdaptiveAvgPool2d", "AdaptiveMaxPool2d", "SpatialPyramidPool"]

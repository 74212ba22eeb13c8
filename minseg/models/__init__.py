"""Segmentation models with hand-written forward and backward passes, and a registry to rebuild them.

==========================  ====================  ==============================================
name (``build_model``)      class                 idea
==========================  ====================  ==============================================
``pixel``                   PixelClassifier       1x1 convolutions only: no context (baseline)
``vgg_classifier``          VGGClassifier         small VGG + FC head, pretrained on crops
``fully_conv_classifier``   FullyConvClassifier   the same, convolutionalized
``fcn32s/fcn16s/fcn8s``     FCN32s/16s/8s         skips from pool4 / pool3, bilinear upsampling
``segnet``                  SegNet                decoder unpools with the encoder's switches
``deeplab``                 DeepLab               dilated backbone, ASPP + image pooling
``unet``                    UNet                  symmetric encoder-decoder, concatenated skips
==========================  ====================  ==============================================

The interface a training loop uses::

    model = build_model("unet", num_classes=5, base_width=16, depth=3)    # float32, seed 0
    logits = model.forward(x)                  # (N, K, H, W)
    loss, cache = cross_entropy(logits, y, ignore_index=255)
    model.backward(cross_entropy_backward(1.0, cache))   # fills p.grad for p in model.parameters()
    optimizer.step()
    model.eval(); pred = model.predict(x)      # (N, H, W) class ids
    ckpt = {"model": model.name, "config": model.config, "state": model.state_dict()}
"""
from .deeplab import ASPP, DeepLab
from .fcn import FCN, FCN8s, FCN16s, FCN32s
from .pixel import PixelClassifier
from .registry import MODELS, SegmentationModel, build_model, list_models, register_model
from .segnet import SegNet
from .unet import UNet
from .vgg import FullyConvClassifier, VGGBackbone, VGGClassifier, convolutionalize, fc_to_conv

__all__ = [
    "build_model", "list_models", "register_model", "MODELS", "SegmentationModel",
    "PixelClassifier", "VGGBackbone", "VGGClassifier", "FullyConvClassifier", "convolutionalize", "fc_to_conv",
    "FCN", "FCN32s", "FCN16s", "FCN8s", "SegNet", "ASPP", "DeepLab", "UNet",
]

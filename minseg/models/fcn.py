"""FCN-32s, FCN-16s and FCN-8s on the small VGG backbone, with transfer from a trained ``VGGClassifier``."""
from __future__ import annotations

import numpy as np

from ..nn.blocks import pad_to, pad_to_backward
from ..nn.layers import Conv2d, ConvTranspose2d, Dropout, ModuleList, ReLU, Sequential
from ..nn.module import make_rng
from .registry import SegmentationModel, check_input, register_model
from .vgg import VGGBackbone, VGGClassifier, fc_to_conv

__all__ = ["FCN", "FCN32s", "FCN16s", "FCN8s"]

_SKIPS = {"32s": 0, "16s": 1, "8s": 2}  # how many pooling taps below pool5 are fused


def _upsampler(channels: int, factor: int, trainable: bool, dtype) -> ConvTranspose2d:
    """Transposed conv with kernel 2f, stride f, padding f/2, bilinear-initialised: exactly f times the size."""
    return ConvTranspose2d(channels, channels, 2 * factor, stride=factor, padding=factor // 2, bias=False,
                           init="bilinear", trainable=trainable, dtype=dtype)


class FCN(SegmentationModel):
    """Fully convolutional network (Long et al.): a convolutionalized classifier plus skip fusion.

    Architecture, for the default 5-stage backbone, K classes, F = ``fc_channels``
    and an input padded (zeros, bottom and right) to ``Hp x Wp``, multiples of 32::

        backbone: pool3 (N, C3, Hp/8, Wp/8), pool4 (N, C4, Hp/16, ...), pool5 (N, C5, Hp/32, ...)
        fc6: conv k x k (pad k//2) -> ReLU -> Dropout   (N, F, Hp/32, Wp/32)
        fc7: conv 1x1 -> ReLU -> Dropout                (N, F, Hp/32, Wp/32)
        score_fr: conv 1x1                              (N, K, Hp/32, Wp/32)

        FCN-32s: up32 (fixed bilinear, stride 32)                    (N, K, Hp, Wp)
        FCN-16s: up2 (learned, from bilinear)(score_fr)
                 + score_pool4 (conv 1x1 on pool4)                   (N, K, Hp/16, Wp/16)
                 -> up16 (fixed bilinear, stride 16)                 (N, K, Hp, Wp)
        FCN-8s:  up2(16s fused) + score_pool3 (1x1 on pool3)         (N, K, Hp/8, Wp/8)
                 -> up8 (fixed bilinear, stride 8)                   (N, K, Hp, Wp)

        crop to the input size                                       (N, K, H, W)

    Any input size works: padding to a multiple of the backbone's stride makes
    every pooling exact, so the upsampled coarse scores line up with the
    skips without the paper's 100-pixel padding and crop offsets; the padding
    is cropped off at the end (its backward pads the gradient with zeros, and the
    input gradient is the top-left crop of the padded input's gradient).
    Each transposed convolution has kernel ``2f``, stride ``f`` and padding ``f/2``:
    exactly ``f`` times its input's size. With fewer backbone stages the same
    taps are the last three stages (strides 2**S, 2**(S-1), 2**(S-2)).

    Semantic information comes from the deep, coarse pool5 path; appearance
    (where exactly the edges are) from the shallow, fine pool4 / pool3 skips.

    Parameters
    ----------
    num_classes, in_channels : int
    variant : {"32s", "16s", "8s"}
    widths, convs, batchnorm : of the ``VGGBackbone``
    fc_channels : int
    fc_kernel : int (odd)
        Kernel of fc6: the classifier's last feature-map size ``s`` when transferring.
    dropout : float

    ``load_pretrained(classifier)`` copies a trained ``VGGClassifier``'s backbone
    and fc6 / fc7 (convolutionalized) for transfer learning.

    References
    ----------
    Long, Shelhamer & Darrell, "Fully Convolutional Networks for Semantic Segmentation", CVPR 2015.
    """

    variant = None

    def __init__(self, num_classes: int, in_channels: int = 3, widths=(16, 32, 64, 128, 128), convs=(1, 1, 2, 2, 2),
                 batchnorm: bool = True, fc_channels: int = 128, fc_kernel: int = 1, dropout: float = 0.0,
                 *, rng=None, dtype=np.float32):
        super().__init__(num_classes=num_classes, in_channels=in_channels, widths=list(widths),
                         convs=convs if isinstance(convs, int) else list(convs), batchnorm=batchnorm,
                         fc_channels=fc_channels, fc_kernel=fc_kernel, dropout=dropout)
        name = type(self).__name__
        if len(widths) < 3:
            raise ValueError(f"{name}: expected at least 3 backbone stages (pool3, pool4, pool5 taps), "
                             f"got widths {list(widths)}")
        if fc_kernel < 1 or fc_kernel % 2 == 0:
            raise ValueError(f"{name}: expected an odd fc_kernel >= 1, got {fc_kernel!r}")
        rng = make_rng(rng)
        K, F = num_classes, fc_channels
        self.backbone = VGGBackbone(in_channels, widths, convs, batchnorm, rng=rng, dtype=dtype)
        S = self.backbone.num_stages
        self.fc6 = Sequential(Conv2d(self.backbone.out_channels, F, fc_kernel, padding=fc_kernel // 2, rng=rng,
                                     dtype=dtype), ReLU(), Dropout(dropout, rng=rng))
        self.fc7 = Sequential(Conv2d(F, F, 1, rng=rng, dtype=dtype), ReLU(), Dropout(dropout, rng=rng))
        self.score_fr = Conv2d(F, K, 1, rng=rng, dtype=dtype)
        n_skips = _SKIPS[self.variant]
        self.taps = [S - j for j in range(1, n_skips + 1)]  # backbone stages fused: S-1 (pool4), S-2 (pool3)
        self.up2, self.score_pool = ModuleList(), ModuleList()  # per skip j: 2x upsampler, score of stage taps[j]
        for stage in self.taps:
            self.up2.append(_upsampler(K, 2, trainable=True, dtype=dtype))
            self.score_pool.append(Conv2d(widths[stage - 1], K, 1, rng=rng, dtype=dtype))
        self.final_stride = self.backbone.strides[(self.taps[-1] if self.taps else S) - 1]
        self.upsample = _upsampler(K, self.final_stride, trainable=False, dtype=dtype)
        self._sizes = None

    def forward(self, x):
        name = type(self).__name__
        check_input(name, x, self.config["in_channels"])
        N, _, H, W = x.shape
        total = self.backbone.stride
        Hp, Wp = -(-H // total) * total, -(-W // total) * total  # next multiples of the total stride
        feats = self.backbone.forward_features(pad_to(x, Hp, Wp))
        score = self.score_fr.forward(self.fc7.forward(self.fc6.forward(feats[-1])))
        for j, stage in enumerate(self.taps):
            score = self.up2[j].forward(score)
            score = score + self.score_pool[j].forward(feats[stage - 1])
        out = self.upsample.forward(score)  # (N, K, Hp, Wp)
        self._sizes = (H, W, Hp, Wp)
        return out[:, :, :H, :W]

    def backward(self, dlogits):
        H, W, Hp, Wp = self._sizes
        d = pad_to(dlogits, Hp, Wp)  # backward of the crop: zeros where the padding was
        d = self.upsample.backward(d)
        grads = {}
        for j in range(len(self.taps) - 1, -1, -1):
            stage = self.taps[j]
            grads[stage] = self.score_pool[j].backward(d)  # the sum sends d to both branches
            d = self.up2[j].backward(d)
        d = self.fc6.backward(self.fc7.backward(self.score_fr.backward(d)))
        grads[self.backbone.num_stages] = d
        dx = self.backbone.backward_features(grads)
        return pad_to_backward(dx, H, W)

    def load_pretrained(self, classifier: VGGClassifier):
        """Transfer learning: copy a trained classifier's backbone and its fc6 / fc7 as convolutions.

        The score layers and upsamplers keep their initialisation. Raises
        ``ValueError`` when the architectures do not match (backbone, ``fc_channels``,
        ``fc_kernel`` equal to the classifier's last feature-map size).
        """
        name = type(self).__name__
        if not isinstance(classifier, VGGClassifier):
            raise TypeError(f"{name}.load_pretrained: expected a VGGClassifier, got {type(classifier).__name__}")
        c = classifier.config
        mine = self.config
        for key in ("in_channels", "widths", "convs", "batchnorm", "fc_channels"):
            if c[key] != mine[key]:
                raise ValueError(f"{name}.load_pretrained: expected the classifier's {key} to be {mine[key]!r}, "
                                 f"got {c[key]!r}")
        if classifier.fc_size != mine["fc_kernel"]:
            raise ValueError(f"{name}.load_pretrained: expected fc_kernel == the classifier's last feature-map "
                             f"size {classifier.fc_size}, got fc_kernel={mine['fc_kernel']}")
        self.backbone.load_state_dict(classifier.backbone.state_dict())
        s, C5, F = classifier.fc_size, self.backbone.out_channels, mine["fc_channels"]
        for conv, fc, c_in, k in ((self.fc6[0], classifier.head[1], C5, s), (self.fc7[0], classifier.head[4], F, 1)):
            src = fc_to_conv(fc, c_in, k)
            conv.weight.data[...] = src.weight.data
            conv.bias.data[...] = src.bias.data
        return self


@register_model("fcn32s")
class FCN32s(FCN):
    """FCN-32s: class scores from pool5 only, upsampled 32x (see ``FCN``)."""

    variant = "32s"


@register_model("fcn16s")
class FCN16s(FCN):
    """FCN-16s: pool5 scores upsampled 2x and fused with pool4's, then upsampled 16x (see ``FCN``)."""

    variant = "16s"


@register_model("fcn8s")
class FCN8s(FCN):
    """FCN-8s: the FCN-16s fusion upsampled 2x and fused with pool3's, then upsampled 8x (see ``FCN``)."""

    variant = "8s"

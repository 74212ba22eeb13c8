"""Small building blocks shared by the models, and the glue that routes gradients through skips.

Skip connections have no parameters but do have a backward pass, written
here once:

==============================  ==========================================================
forward                         backward
==============================  ==========================================================
``concat([a, b])`` on channels  split the gradient at the same channel offsets
``a + b``                       the same gradient goes to both branches
``crop(x, top, left, H, W)``    pad the gradient with zeros back to x's size
``pad(x, ...)`` with zeros      crop the gradient (the adjoint of crop)
==============================  ==========================================================
"""
from __future__ import annotations

import numpy as np

from ..backend import get_array_module
from ..backend import pad_to as backend_pad_to
from .batchnorm import BatchNorm2d
from .layers import Conv2d, ReLU, Sequential
from .module import make_rng

__all__ = ["ConvBNReLU", "concat", "split", "crop", "crop_backward", "center_crop_offsets", "pad_to",
           "pad_to_backward"]


class ConvBNReLU(Sequential):
    """``Conv2d -> BatchNorm2d -> ReLU`` (the conv has no bias when BatchNorm follows: beta does its job).

    With ``batchnorm=False``: ``Conv2d (with bias) -> ReLU``. Children are "0", "1"[, "2"].
    With batch norm, forward and backward run the batch norm and the ReLU as one fused op
    (``BatchNorm2d.forward_relu``, ``ops.batch_norm_relu2d``): the same numbers, bit for
    bit, with one large array fewer in each direction. Calling the children one by one
    gives the same result, and a child swapped for another layer (a LeakyReLU, say)
    turns the fusion off: the block then runs its children in order.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size=3, stride=1, padding=None, dilation=1,
                 groups: int = 1, batchnorm: bool = True, *, rng=None, dtype=np.float32):
        k = kernel_size if isinstance(kernel_size, int) else kernel_size[0]
        d = dilation if isinstance(dilation, int) else dilation[0]
        if padding is None:  # "same" size for odd kernels at stride 1
            padding = d * (k - 1) // 2
        conv = Conv2d(in_channels, out_channels, kernel_size, stride, padding, dilation, groups,
                      bias=not batchnorm, rng=make_rng(rng), dtype=dtype)
        layers = [conv, BatchNorm2d(out_channels, dtype=dtype), ReLU()] if batchnorm else [conv, ReLU()]
        super().__init__(*layers)

    def _fused(self):
        """(conv, batch norm) when the children are still Conv2d, BatchNorm2d, ReLU (none swapped out), else None."""
        children = list(self._children.values())
        if len(children) == 3 and type(children[1]) is BatchNorm2d and type(children[2]) is ReLU:
            return children[0], children[1]
        return None

    def forward(self, x):
        fused = self._fused()
        if fused is None:
            return super().forward(x)
        conv, bn = fused
        return bn.forward_relu(conv.forward(x))  # batch norm and ReLU fused: one array fewer each way

    def backward(self, dy):
        fused = self._fused()
        if fused is None:
            return super().backward(dy)
        conv, bn = fused
        return conv.backward(bn.backward_relu(dy))


def concat(arrays):
    """Concatenate NCHW arrays on the channel axis. Returns ``(y, sizes)``; ``split(dy, sizes)`` undoes it.

    ``(N, C_1, H, W), (N, C_2, H, W), ... -> (N, C_1 + C_2 + ..., H, W)``. Arrays whose N, H or W
    differ (an upsampled map one pixel short of its skip) raise ``ValueError`` naming both shapes.
    """
    xp = get_array_module(*arrays)
    first = arrays[0]
    for i, a in enumerate(arrays[1:], 1):
        if a.ndim != 4 or first.ndim != 4 or (a.shape[0],) + a.shape[2:] != (first.shape[0],) + first.shape[2:]:
            raise ValueError(f"concat: expected arrays of shape (N, C, H, W) with the N, H and W of arrays[0] "
                             f"{tuple(first.shape)}, got arrays[{i}] of shape {tuple(a.shape)} (crop the larger "
                             f"map to the smaller, or pad the smaller to the larger)")
    return xp.concatenate(arrays, axis=1), [a.shape[1] for a in arrays]


def split(dy, sizes):
    """Backward of ``concat``: the gradient's channel slices, one per concatenated input."""
    out, c = [], 0
    for s in sizes:
        out.append(dy[:, c:c + s])
        c += s
    return out


def center_crop_offsets(size, target):
    """``(top, left)`` that centre a ``target`` (H, W) window inside ``size`` (H, W) (U-Net's skip crop)."""
    (H, W), (h, w) = size, target
    if h > H or w > W:
        raise ValueError(f"center_crop_offsets: expected a target no larger than {tuple(size)}, got {tuple(target)}")
    return (H - h) // 2, (W - w) // 2


def crop(x, top: int, left: int, H: int, W: int):
    """``x[:, :, top:top+H, left:left+W]`` (a view)."""
    if top < 0 or left < 0 or top + H > x.shape[2] or left + W > x.shape[3]:
        raise ValueError(f"crop: expected the window ({top}:{top + H}, {left}:{left + W}) inside x of shape "
                         f"{tuple(x.shape)}")
    return x[:, :, top:top + H, left:left + W]


def crop_backward(dy, x_shape, top: int, left: int):
    """Backward of ``crop``: the gradient placed at its window in zeros of ``x_shape``."""
    xp = get_array_module(dy)
    dx = xp.zeros(x_shape, dtype=dy.dtype)
    dx[:, :, top:top + dy.shape[2], left:left + dy.shape[3]] = dy
    return dx


def pad_to(x, H: int, W: int):
    """Zero-pad x (N, C, h, w) at the bottom and right to (N, C, H, W) (x itself when already that size)."""
    if x.shape[2] > H or x.shape[3] > W:
        raise ValueError(f"pad_to: expected x no larger than ({H}, {W}), got shape {tuple(x.shape)}")
    return backend_pad_to(x, H, W)


def pad_to_backward(dy, h: int, w: int):
    """Backward of ``pad_to``: the top-left (h, w) window of the gradient."""
    return dy[:, :, :h, :w]

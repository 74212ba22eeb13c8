"""Image-level context: global average pooling, and broadcasting a pooled vector back to a size.

ParseNet's global context and the image-pooling branch of DeepLab's ASPP
are both ``global_avg_pool2d`` (one value per channel), then
``broadcast_to_size`` ("unpool") to the feature map's size, then a concat::

    g, _ = global_avg_pool2d(x)          # (N, C, 1, 1)
    u, _ = broadcast_to_size(g, (H, W))  # (N, C, H, W), the same vector at every pixel

References
----------
W. Liu, A. Rabinovich, A. C. Berg, "ParseNet: Looking Wider to See Better",
ICLR 2016 workshop (global context).
L.-C. Chen et al., "Rethinking Atrous Convolution for Semantic Image
Segmentation", 2017 (DeepLabv3, image-level features in ASPP).
"""
from __future__ import annotations

from typing import NamedTuple

from ..backend import get_array_module
from ..shapes import check_nchw, check_ndim, check_positive, check_shape, pair

__all__ = [
    "global_avg_pool2d", "global_avg_pool2d_backward", "GlobalAvgPool2dCache",
    "broadcast_to_size", "broadcast_to_size_backward", "BroadcastToSizeCache",
]


class GlobalAvgPool2dCache(NamedTuple):
    """Field: ``x_shape`` (N, C, H, W)."""

    x_shape: tuple


def global_avg_pool2d(x):
    """Global average pooling: the mean of every channel over the image.

    Parameters
    ----------
    x : ndarray, shape (N, C, H, W), float

    Returns
    -------
    y : ndarray, shape (N, C, 1, 1), dtype of x
        ``y[n, c] = (1 / (H W)) sum_{h, w} x[n, c, h, w]`` (``F.adaptive_avg_pool2d(x, 1)``).
    cache : GlobalAvgPool2dCache

    See Also
    --------
    minseg.reference.global_avg_pool2d_loops : the same, by the definition, with loops.

    References
    ----------
    Liu, Rabinovich & Berg, "ParseNet", 2016; Chen et al., "Rethinking Atrous
    Convolution for Semantic Image Segmentation" (DeepLabv3, image-level ASPP branch), 2017.
    """
    check_nchw(x, "x", "global_avg_pool2d")
    return x.mean(axis=(2, 3), keepdims=True), GlobalAvgPool2dCache(tuple(x.shape))


def global_avg_pool2d_backward(dy, cache: GlobalAvgPool2dCache):
    """Gradient of ``global_avg_pool2d``: ``dx[n, c, h, w] = dy[n, c] / (H W)`` at every pixel."""
    N, C, H, W = cache.x_shape
    check_shape(dy, (N, C, 1, 1), "dy", "global_avg_pool2d_backward")
    xp = get_array_module(dy)
    dx = xp.empty((N, C, H, W), dtype=dy.dtype)
    dx[...] = dy / (H * W)
    return dx


class BroadcastToSizeCache(NamedTuple):
    """Field: ``size`` (H, W), the output size."""

    size: tuple


def broadcast_to_size(x, size):
    """"Unpool to size": copy a per-channel value to every pixel of an ``(H, W)`` map.

    ParseNet's global context: the globally pooled feature (N, C, 1, 1) is
    unpooled to the size of the local features so the two can be concatenated.

    Parameters
    ----------
    x : ndarray, shape (N, C, 1, 1), float
    size : int or (int, int)

    Returns
    -------
    y : ndarray, shape (N, C, H, W), dtype of x
        ``y[n, c, h, w] = x[n, c, 0, 0]``; bilinear upsampling of a 1x1 map gives the same.
    cache : BroadcastToSizeCache

    References
    ----------
    Liu, Rabinovich & Berg, "ParseNet: Looking Wider to See Better", 2016, section 3.1.
    """
    op = "broadcast_to_size"
    check_nchw(x, "x", op)
    if x.shape[2:] != (1, 1):
        raise ValueError(f"{op}: expected x of shape (N, C, 1, 1), got shape {tuple(x.shape)}")
    H, W = check_positive(pair(size, "size", op), "size", op)
    xp = get_array_module(x)
    y = xp.empty((x.shape[0], x.shape[1], H, W), dtype=x.dtype)
    y[...] = x
    return y, BroadcastToSizeCache((H, W))


def broadcast_to_size_backward(dy, cache: BroadcastToSizeCache):
    """Gradient of ``broadcast_to_size``: the sum of dy over the image, ``(N, C, 1, 1)``."""
    check_ndim(dy, 4, "dy", "broadcast_to_size_backward", "N, C, H, W")
    if tuple(dy.shape[2:]) != cache.size:
        raise ValueError(f"broadcast_to_size_backward: expected dy of spatial size {cache.size}, "
                         f"got shape {tuple(dy.shape)}")
    return dy.sum(axis=(2, 3), keepdims=True)

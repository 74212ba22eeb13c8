"""The math: pure forward / backward function pairs, no state."""
from .conv import Conv2dCache, col2im, conv2d, conv2d_backward, im2col

__all__ = ["conv2d", "conv2d_backward", "Conv2dCache", "im2col", "col2im"]

"""Layers over adaptive pooling: a fixed output size whatever the input size.

=================  ===============================================  ==========
layer              op pair (``minseg.ops.pyramid``)                 parameters
=================  ===============================================  ==========
AdaptiveAvgPool2d  adaptive_avg_pool2d / _backward                  -
AdaptiveMaxPool2d  adaptive_max_pool2d / _backward (keeps indices)  -
SpatialPyramidPool spatial_pyramid_pool / _backward                 -
=================  ===============================================  ==========

    spp = SpatialPyramidPool(levels=(4, 2, 1))
    v = spp.forward(features)           # (N, 21 C) for any (H, W): ready for a Linear layer
    dfeatures = spp.backward(dv)        # (N, C, H, W)
"""
from __future__ import annotations

from ..ops.pyramid import (_check_levels, adaptive_avg_pool2d, adaptive_avg_pool2d_backward, adaptive_max_pool2d,
                           adaptive_max_pool2d_backward, spatial_pyramid_pool, spatial_pyramid_pool_backward)
from .module import Module

__all__ = ["AdaptiveAvgPool2d", "AdaptiveMaxPool2d", "SpatialPyramidPool"]


def _check_output_size(name, output_size):
    """Check ``output_size`` at construction (int, or a pair of ints / None), so a bad one fails early."""
    ok_entry = lambda v: v is None or (isinstance(v, int) and not isinstance(v, bool) and v >= 1)  # noqa: E731
    if isinstance(output_size, int) and not isinstance(output_size, bool):
        if output_size < 1:
            raise ValueError(f"{name}: expected output_size >= 1, got {output_size!r}")
        return output_size
    if isinstance(output_size, (tuple, list)) and len(output_size) == 2 and all(ok_entry(v) for v in output_size):
        return tuple(output_size)
    raise TypeError(f"{name}: expected output_size to be an int >= 1 or a pair of ints >= 1 (or None to keep "
                    f"an axis), got {output_size!r}")


class AdaptiveAvgPool2d(Module):
    """Adaptive average pooling, PyTorch's ``nn.AdaptiveAvgPool2d``: (N, C, H, W) -> (N, C, H_out, W_out)."""

    def __init__(self, output_size):
        super().__init__()
        self.output_size = _check_output_size("AdaptiveAvgPool2d", output_size)
        self._cache = None

    def forward(self, x):
        y, self._cache = adaptive_avg_pool2d(x, self.output_size)
        return y

    def backward(self, dy):
        return adaptive_avg_pool2d_backward(dy, self._cache)

    def extra_repr(self) -> str:
        return f"output_size={self.output_size}"


class AdaptiveMaxPool2d(Module):
    """Adaptive max pooling, PyTorch's ``nn.AdaptiveMaxPool2d``: (N, C, H, W) -> (N, C, H_out, W_out).

    After ``forward``, ``indices`` holds where each maximum came from, as flat
    offsets ``h*W + w`` into each (N, C) input plane (PyTorch's ``return_indices``).
    """

    def __init__(self, output_size):
        super().__init__()
        self.output_size = _check_output_size("AdaptiveMaxPool2d", output_size)
        self._cache = None

    @property
    def indices(self):
        """The argmax of every bin in the last forward pass: (N, C, H_out, W_out) int64, or None before one."""
        return None if self._cache is None else self._cache.indices

    def forward(self, x):
        y, self._cache = adaptive_max_pool2d(x, self.output_size)
        return y

    def backward(self, dy):
        return adaptive_max_pool2d_backward(dy, self._cache)

    def extra_repr(self) -> str:
        return f"output_size={self.output_size}"


class SpatialPyramidPool(Module):
    """Spatial pyramid pooling (SPPNet): (N, C, H, W) -> (N, C * sum(l*l)) for any H, W.

    Each level ``l`` pools into ``l x l`` adaptive bins (``mode`` "max" or
    "avg"); the pools are flattened in C-order and concatenated level by
    level, as ``torch.cat([F.adaptive_max_pool2d(x, l).flatten(1) for l in levels], 1)``.
    The default levels ``(4, 2, 1)`` give ``21 C`` features.
    """

    def __init__(self, levels=(4, 2, 1), mode: str = "max"):
        super().__init__()
        self.levels = _check_levels("SpatialPyramidPool", levels, mode)
        self.mode = mode
        self._cache = None

    def output_features(self, channels: int) -> int:
        """The length of each output row for ``channels`` input channels: ``channels * sum(l*l)``."""
        return channels * sum(level * level for level in self.levels)

    def forward(self, x):
        y, self._cache = spatial_pyramid_pool(x, self.levels, self.mode)
        return y

    def backward(self, dy):
        return spatial_pyramid_pool_backward(dy, self._cache)

    def extra_repr(self) -> str:
        return f"levels={self.levels}, mode={self.mode!r}"

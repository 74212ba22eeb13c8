"""Fully-connected (affine) layer ``y = x W^T + b``, PyTorch's ``F.linear``.

    y[n, o] = b[o] + sum_i w[o, i] x[n, i]

    dx = dy @ w            dw = dy^T @ x            db = sum_n dy[n]

An FC layer over a flattened (C, K, K) feature map is a K x K convolution with
the same weights ``w.reshape(C_out, C, K, K)`` applied without padding: that
is FCN's "convolutionalization" (see ``minseg.models.convolutionalize``).

References
----------
Long, Shelhamer & Darrell, "Fully Convolutional Networks for Semantic Segmentation", 2015, section 3.1.
"""
from __future__ import annotations

from typing import NamedTuple

from ..backend import get_array_module
from ..shapes import check_float, check_ndim, check_shape

__all__ = ["linear", "linear_backward", "LinearCache"]


class LinearCache(NamedTuple):
    """Fields: ``x`` (N, D_in) input, ``w`` (D_out, D_in) weights, ``has_bias``."""

    x: object
    w: object
    has_bias: bool


def linear(x, w, b=None):
    """Affine map ``y = x @ w.T + b``.

    Parameters
    ----------
    x : ndarray, shape (N, D_in), float
    w : ndarray, shape (D_out, D_in), dtype of x
    b : ndarray, shape (D_out,), optional

    Returns
    -------
    y : ndarray, shape (N, D_out)
    cache : LinearCache
        ``(x, w, has_bias)``.
    """
    op = "linear"
    check_ndim(x, 2, "x", op, "N, D_in")
    check_ndim(w, 2, "w", op, "D_out, D_in")
    check_float(x, "x", op)
    get_array_module(x, w, b)
    if w.shape[1] != x.shape[1]:
        raise ValueError(f"{op}: expected w of shape (D_out, {x.shape[1]}) to match x's D_in={x.shape[1]}, "
                         f"got shape {tuple(w.shape)}")
    if w.dtype != x.dtype:
        raise TypeError(f"{op}: expected w with the dtype of x ({x.dtype}), got dtype {w.dtype}")
    if b is not None:
        check_ndim(b, 1, "b", op, "D_out")
        if b.shape[0] != w.shape[0]:
            raise ValueError(f"{op}: expected b of shape ({w.shape[0]},), got shape {tuple(b.shape)}")
    y = x @ w.T  # (N, D_out)
    if b is not None:
        y += b
    return y, LinearCache(x, w, b is not None)


def linear_backward(dy, cache: LinearCache):
    """Gradients of ``linear``: ``(dx, dw, db)``; ``db`` is None when the forward had no bias."""
    x, w, has_bias = cache
    check_shape(dy, (x.shape[0], w.shape[0]), "dy", "linear_backward")
    dx = dy @ w  # (N, D_in)
    dw = dy.T @ x  # (D_out, D_in)
    db = dy.sum(axis=0) if has_bias else None
    return dx, dw, db

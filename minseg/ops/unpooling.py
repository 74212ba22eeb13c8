"""Unpooling: max-unpooling with switches, nearest-neighbour upsampling, bed of nails.

Max-unpooling (DeconvNet, SegNet) puts every pooled value back where its
maximum came from (the switches ``max_pool2d`` stored) and zeros elsewhere,
so the decoder recovers *where* things were, not only *what*::

    pooled, cache = max_pool2d(x, 2)                      # (N, C, H/2, W/2), cache.indices
    restored, _ = max_unpool2d(pooled, cache.indices, 2)  # (N, C, H, W), sparse

The two simpler unpoolings forget the position: nearest-neighbour upsampling
(``upsample_nearest``: copy each value into its whole ``s x s`` block) and
*bed of nails* (``bed_of_nails_unpool``: the value in the block's top-left
corner, zeros elsewhere).

Sizes are PyTorch's (``torch.nn.MaxUnpool2d``, ``F.interpolate(mode="nearest")``):

    max_unpool2d      H_out = (H - 1) s - 2 p + k    (or an output_size within +- s of it)
    upsample_nearest  H_out = size, or floor(H * scale_factor)

References
----------
H. Noh, S. Hong, B. Han, "Learning Deconvolution Network for Semantic
Segmentation", ICCV 2015 (unpooling).
V. Badrinarayanan, A. Kendall, R. Cipolla, "SegNet: A Deep Convolutional
Encoder-Decoder Architecture for Image Segmentation", TPAMI 2017.
CS231n lecture 11 (2017), "In-network upsampling".
"""
from __future__ import annotations

from typing import NamedTuple

import numpy as np

from ..backend import get_array_module, plane_offsets, scatter_add
from ..shapes import check_nchw, check_ndim, check_nonnegative, check_positive, check_shape, pair, unpool_output_size
from .interpolate import nearest_indices, resize_output_size

__all__ = [
    "max_unpool2d", "max_unpool2d_backward", "MaxUnpool2dCache",
    "upsample_nearest", "upsample_nearest_backward", "NearestCache",
    "bed_of_nails_unpool", "bed_of_nails_unpool_backward", "BedOfNailsCache",
]


# --------------------------------------------------------------------------- max_unpool2d

class MaxUnpool2dCache(NamedTuple):
    """What ``max_unpool2d_backward`` needs from the forward pass.

    Fields
    ------
    indices : (N, C, H, W) int, flat offsets into each output plane
    output_size : (H_out, W_out)
    flat : (N*C*H*W,) int64, the same offsets into the whole flattened output
        (``indices`` plus each plane's start): where every value went
    """

    indices: object
    output_size: tuple
    flat: object


def _unpool_size(op, H, W, k, s, p, output_size):
    """The output size: PyTorch's default ``(H - 1) s - 2 p + k``, or a checked explicit one."""
    default = (unpool_output_size(H, k[0], s[0], p[0]), unpool_output_size(W, k[1], s[1], p[1]))
    if output_size is None:
        size = default
    else:
        if not (isinstance(output_size, (tuple, list)) and len(output_size) in (2, 4)
                and all(isinstance(v, int) and not isinstance(v, bool) for v in output_size)):
            raise TypeError(f"{op}: expected output_size (H_out, W_out) or (N, C, H_out, W_out) of ints, "
                            f"got {output_size!r}")
        size = tuple(output_size[-2:])
        for a in range(2):
            lo, hi = default[a] - s[a], default[a] + s[a]
            if not lo < size[a] < hi:
                raise ValueError(f"{op}: expected output_size[{a - 2}] strictly between {lo} and {hi} "
                                 f"(default {default[a]} +- stride {s[a]}), got output_size={size}")
    if min(size) < 1:
        raise ValueError(f"{op}: expected an output size >= 1, got {size}")
    return size


def _unique_last_writers(flat):
    """Positions ``m`` whose ``flat[m]`` does not occur again later: the writes that survive in order.

    ``target[flat] = values`` writes in order on the CPU, so the last write
    to a pixel wins; on a GPU the order is undefined. Writing only these
    positions (whose indices are all distinct) gives the in-order result
    on every backend.
    """
    xp = get_array_module(flat)
    M = flat.size
    key = xp.sort(flat.astype(xp.int64) * M + xp.arange(M, dtype=xp.int64))  # by index, then by position
    index = key // M
    last = xp.ones(M, dtype=bool)
    last[:-1] = index[1:] != index[:-1]
    return key[last] % M


def max_unpool2d(x, indices, kernel_size, stride=None, padding=0, output_size=None):
    """Max-unpooling: zeros, then every value written back where its maximum came from.

    PyTorch's ``F.max_unpool2d``; the partial inverse of ``max_pool2d``.

    Parameters
    ----------
    x : ndarray, shape (N, C, H, W), float
        Pooled values.
    indices : ndarray of int, shape (N, C, H, W)
        Flat offsets ``h*W_out + w`` into each output plane, as in ``max_pool2d``'s ``cache.indices``.
    kernel_size : int or (int, int)
    stride : int or (int, int), optional
        Defaults to ``kernel_size``.
    padding : int or (int, int)
    output_size : (H_out, W_out) or (N, C, H_out, W_out), optional
        Needed when the pooled input size is ambiguous (odd sizes); must lie
        strictly within ``default +- stride`` per axis, as in PyTorch.

    Returns
    -------
    y : ndarray, shape (N, C, H_out, W_out), dtype of x
        ``y[n, c].flat[indices[n, c, i, j]] = x[n, c, i, j]``, zero elsewhere;
        default ``H_out = (H - 1) s - 2 p + k``.
    cache : MaxUnpool2dCache
        ``(indices, output_size, flat)``.

    See Also
    --------
    minseg.reference.max_unpool2d_loops : the same, by the definition, with loops.

    Notes
    -----
    Repeated indices: overlapping pooling windows (stride < kernel) can
    select the same pixel twice. minseg keeps the **last write in row-major
    order of x** on every backend, deterministically. That is what PyTorch's
    CPU kernel gives when it runs on one thread; with several threads it
    writes chunks of x in parallel and which value survives depends on the
    scheduling, and on CUDA it is undefined.

    Raises
    ------
    ValueError
        Wrong ndim, indices not shaped like x, an index outside
        ``[0, H_out*W_out)``, or an output_size out of range.
    TypeError
        Non-integer indices, integer x, or a malformed output_size.

    References
    ----------
    Noh, Hong & Han, "Learning Deconvolution Network for Semantic Segmentation", 2015.
    Badrinarayanan, Kendall & Cipolla, "SegNet", 2017.
    """
    op = "max_unpool2d"
    check_nchw(x, "x", op)
    check_ndim(indices, 4, "indices", op, "N, C, H, W")
    get_array_module(x, indices)  # raises TypeError on a numpy / cupy mix
    if indices.dtype.kind not in "iu":
        raise TypeError(f"{op}: expected indices with an integer dtype, got dtype {indices.dtype}")
    if tuple(indices.shape) != tuple(x.shape):
        raise ValueError(f"{op}: expected indices of shape {tuple(x.shape)} like x, got {tuple(indices.shape)}")
    k = check_positive(pair(kernel_size, "kernel_size", op), "kernel_size", op)
    s = k if stride is None else check_positive(pair(stride, "stride", op), "stride", op)
    p = check_nonnegative(pair(padding, "padding", op), "padding", op)
    xp = get_array_module(x)
    N, C, H, W = x.shape
    H_out, W_out = _unpool_size(op, H, W, k, s, p, output_size)
    plane = H_out * W_out
    if indices.size:
        lo, hi = int(indices.min()), int(indices.max())
        if lo < 0 or hi >= plane:
            raise ValueError(f"{op}: expected indices in [0, {plane}) (flat offsets into a {H_out}x{W_out} "
                             f"output plane), got {lo if lo < 0 else hi}")
    flat = (plane_offsets(xp, N, C, plane) + indices).reshape(-1)  # (N*C*H*W,)
    y = xp.zeros(N * C * plane, dtype=x.dtype)
    if xp.__name__ == "numpy":
        y[flat] = x.reshape(-1)  # NumPy writes in order: the last of repeated indices wins
    else:  # the GPU writes repeated indices in any order: keep the last ones only
        last = _unique_last_writers(flat)
        y[flat[last]] = x.reshape(-1)[last]
    return y.reshape(N, C, H_out, W_out), MaxUnpool2dCache(indices, (H_out, W_out), flat)


def max_unpool2d_backward(dy, cache: MaxUnpool2dCache):
    """Gradient of ``max_unpool2d``: a gather, ``dx[n, c, i, j] = dy[n, c].flat[indices[n, c, i, j]]``.

    Parameters
    ----------
    dy : ndarray, shape (N, C, H_out, W_out)
    cache : MaxUnpool2dCache

    Returns
    -------
    dx : ndarray, shape (N, C, H, W)

    See Also
    --------
    minseg.reference.max_unpool2d_backward_loops : the same gradient, pixel by pixel.

    Notes
    -----
    This is PyTorch's gradient. With distinct indices it is exactly the
    transpose of the forward (``<unpool(x), u> == <x, gather(u)>``). With
    repeated indices every value gets the gradient at its index, also the
    ones whose write was overwritten (whose true derivative is zero).
    """
    op = "max_unpool2d_backward"
    indices, (H_out, W_out), flat = cache
    N, C = indices.shape[:2]
    check_shape(dy, (N, C, H_out, W_out), "dy", op)
    xp = get_array_module(dy, indices)
    return xp.take(dy.reshape(-1), flat).reshape(indices.shape)  # (N, C, H, W)


# --------------------------------------------------------------------------- bed of nails

class BedOfNailsCache(NamedTuple):
    """Fields: ``x_shape`` (N, C, H, W) and ``stride`` (s_h, s_w)."""

    x_shape: tuple
    stride: tuple


def bed_of_nails_unpool(x, stride=2):
    """Bed-of-nails unpooling: each value in the top-left corner of its ``s x s`` block, zeros elsewhere.

    Parameters
    ----------
    x : ndarray, shape (N, C, H, W), float
    stride : int or (int, int)

    Returns
    -------
    y : ndarray, shape (N, C, H*s_h, W*s_w), dtype of x
        ``y[n, c, i*s_h, j*s_w] = x[n, c, i, j]``; ``max_unpool2d`` with every
        switch in the top-left corner.
    cache : BedOfNailsCache

    References
    ----------
    CS231n lecture 11 (2017), "In-network upsampling: unpooling".
    """
    op = "bed_of_nails_unpool"
    check_nchw(x, "x", op)
    sh, sw = check_positive(pair(stride, "stride", op), "stride", op)
    xp = get_array_module(x)
    N, C, H, W = x.shape
    y = xp.zeros((N, C, H * sh, W * sw), dtype=x.dtype)
    y[:, :, ::sh, ::sw] = x
    return y, BedOfNailsCache(tuple(x.shape), (sh, sw))


def bed_of_nails_unpool_backward(dy, cache: BedOfNailsCache):
    """Gradient of ``bed_of_nails_unpool``: ``dx = dy[:, :, ::s_h, ::s_w]``."""
    (N, C, H, W), (sh, sw) = cache
    check_shape(dy, (N, C, H * sh, W * sw), "dy", "bed_of_nails_unpool_backward")
    return dy[:, :, ::sh, ::sw].copy()


# --------------------------------------------------------------------------- nearest

class NearestCache(NamedTuple):
    """Fields: ``x_shape`` (N, C, H, W), ``src_h`` (H_out,) and ``src_w`` (W_out,) int64 source pixels."""

    x_shape: tuple
    src_h: object
    src_w: object


def upsample_nearest(x, size=None, scale_factor=None):
    """Nearest-neighbour resizing, PyTorch's ``F.interpolate(x, size, scale_factor, mode="nearest")``.

    Parameters
    ----------
    x : ndarray, shape (N, C, H, W), float
    size : int or (int, int), optional
    scale_factor : float or (float, float), optional
        Exactly one of the two; ``H_out = floor(H * scale_factor_h)``.

    Returns
    -------
    y : ndarray, shape (N, C, H_out, W_out), dtype of x
        ``y[n, c, i, j] = x[n, c, src_h[i], src_w[j]]`` with
        ``src = nearest_indices(...)`` per axis; at an integer factor ``s``
        every value fills its ``s x s`` block.
    cache : NearestCache

    See Also
    --------
    minseg.reference.upsample_nearest_loops : the same, pixel by pixel.

    References
    ----------
    Long, Shelhamer & Darrell, 2015 (FCN, "shift-and-stitch" and simple upsampling);
    CS231n lecture 11 (2017), "In-network upsampling: nearest neighbor".
    """
    op = "upsample_nearest"
    (H_out, W_out), (sc_h, sc_w) = resize_output_size(op, x, size, scale_factor)
    xp = get_array_module(x)
    N, C, H, W = x.shape
    src_h = xp.asarray(nearest_indices(H, H_out, sc_h))
    src_w = xp.asarray(nearest_indices(W, W_out, sc_w))
    y = x[:, :, src_h[:, None], src_w[None, :]]                     # (N, C, H_out, W_out), a gather
    return y, NearestCache(tuple(x.shape), src_h, src_w)


def upsample_nearest_backward(dy, cache: NearestCache):
    """Gradient of ``upsample_nearest``: each input pixel receives the sum of dy over the outputs that copied it.

    With the 0/1 selection matrices ``S[o, src[o]] = 1`` the forward is
    ``Y = S_h X S_w^T``, so ``dX = S_h^T dY S_w``: two matrix products do the
    scatter-add. Where dy holds a NaN or inf, the zeros of ``S`` would spread it
    (``0 * NaN = NaN``), so that dy is scatter-added instead, as PyTorch's
    kernel does: a non-finite gradient reaches only the pixel it was copied from.

    See Also
    --------
    minseg.reference.upsample_nearest_backward_loops : the same, pixel by pixel.
    """
    (N, C, H, W), src_h, src_w = cache
    H_out, W_out = src_h.shape[0], src_w.shape[0]
    check_shape(dy, (N, C, H_out, W_out), "dy", "upsample_nearest_backward")
    xp = get_array_module(dy, src_h)
    S_h = xp.zeros((H_out, H), dtype=dy.dtype)
    S_h[xp.arange(H_out), src_h] = 1                               # (H_out, H), one 1 per row
    S_w = xp.zeros((W_out, W), dtype=dy.dtype)
    S_w[xp.arange(W_out), src_w] = 1                               # (W_out, W)
    with np.errstate(invalid="ignore"):                            # a non-finite dy is handled below
        dz = xp.matmul(S_h.T, dy.reshape(N * C, H_out, W_out))    # (N*C, H, W_out)
        dx = xp.matmul(dz.reshape(N * C * H, W_out), S_w)         # (N*C*H, W)
    if bool(xp.isfinite(dx).all()):                                # a NaN or inf in dy always leaves one in dx
        return dx.reshape(N, C, H, W)
    dx = xp.zeros((N, C, H, W), dtype=dy.dtype)
    with np.errstate(invalid="ignore"):                            # inf - inf: NaN on purpose
        scatter_add(dx, (slice(None), slice(None), src_h[:, None], src_w[None, :]), dy)
    return dx

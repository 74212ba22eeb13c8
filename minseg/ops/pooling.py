"""Pooling and unpooling: max-pooling with switches, max-unpooling, the simple unpoolings, global pooling.

Max-pooling keeps the largest value of every window and remembers where it
was: the *switches* (Zeiler & Fergus), stored as PyTorch does, as flat offsets
``h*W + w`` into each ``(n, c)`` input plane. Max-unpooling (DeconvNet,
SegNet) puts every value back where its maximum came from and zeros
elsewhere, so the decoder recovers *where* things were, not only *what*:

    pooled, cache = max_pool2d(x, 2)                    # (N, C, H/2, W/2), cache.indices
    restored, _ = max_unpool2d(pooled, cache.indices, 2)  # (N, C, H, W), sparse

The lessons contrast it with two simpler unpoolings that forget the
position: nearest-neighbour upsampling (``interpolate.upsample_nearest``:
copy each value into its whole ``s x s`` block) and *bed of nails*
(``bed_of_nails_unpool``: the value in the block's top-left corner, zeros
elsewhere). Global average pooling and its inverse, ``broadcast_to_size``,
give the image-level context of ParseNet and of DeepLab's ASPP;
``l2_normalize`` is ParseNet's per-pixel feature normalisation.

Window sizes are PyTorch's (``torch.nn.MaxPool2d``, ``MaxUnpool2d``):

    max_pool2d   H_out = floor_or_ceil((H + 2 p - d (k - 1) - 1) / s) + 1
    max_unpool2d H_out = (H - 1) s - 2 p + k    (or an output_size within +- s of it)

References
----------
M. D. Zeiler and R. Fergus, "Visualizing and Understanding Convolutional
Networks", ECCV 2014 (switches).
H. Noh, S. Hong, B. Han, "Learning Deconvolution Network for Semantic
Segmentation", ICCV 2015 (unpooling).
V. Badrinarayanan, A. Kendall, R. Cipolla, "SegNet: A Deep Convolutional
Encoder-Decoder Architecture for Image Segmentation", TPAMI 2017.
W. Liu, A. Rabinovich, A. C. Berg, "ParseNet: Looking Wider to See Better",
ICLR 2016 workshop (global context, L2 normalisation).
"""
from __future__ import annotations

import math
from typing import NamedTuple

from ..backend import get_array_module, scatter_add_flat
from ..shapes import (
    check_float,
    check_ndim,
    check_nonnegative,
    check_positive,
    pair,
    pool_output_size,
    unpool_output_size,
)

__all__ = [
    "max_pool2d", "max_pool2d_backward", "MaxPool2dCache",
    "max_unpool2d", "max_unpool2d_backward", "MaxUnpool2dCache",
    "bed_of_nails_unpool", "bed_of_nails_unpool_backward", "BedOfNailsCache",
    "global_avg_pool2d", "global_avg_pool2d_backward", "GlobalAvgPool2dCache",
    "broadcast_to_size", "broadcast_to_size_backward", "BroadcastToSizeCache",
    "l2_normalize", "l2_normalize_backward", "L2NormalizeCache",
]


# --------------------------------------------------------------------------- helpers

def _check_x(op, x, name="x"):
    """``x`` must be a 4-D floating array."""
    check_ndim(x, 4, name, op, "N, C, H, W")
    check_float(x, name, op)
    return x


def _check_dy(op, dy, shape):
    """``dy`` must have the forward output's shape."""
    check_ndim(dy, 4, "dy", op, "N, C, H_out, W_out")
    if tuple(dy.shape) != tuple(shape):
        raise ValueError(f"{op}: expected dy of shape {tuple(shape)}, got shape {tuple(dy.shape)}")
    return dy


def _steps(start: int, count: int, step: int) -> slice:
    """The slice ``start, start + step, ..., start + (count - 1) * step`` (count >= 1)."""
    return slice(start, start + (count - 1) * step + 1, step)


def _plane_offsets(xp, N, C, plane_size):
    """``(N, C, 1, 1)`` int64 offsets of each (n, c) plane in the flattened array."""
    return (xp.arange(N * C, dtype=xp.int64) * plane_size).reshape(N, C, 1, 1)


# --------------------------------------------------------------------------- max_pool2d

class MaxPool2dCache(NamedTuple):
    """What ``max_pool2d_backward`` needs from the forward pass.

    Fields
    ------
    x_shape : (N, C, H, W)
    indices : (N, C, H_out, W_out) int64, the switches: flat offsets ``h*W + w`` into each input plane
    kernel_size, stride, padding, dilation : (int, int) each
    ceil_mode : bool
    """

    x_shape: tuple
    indices: object
    kernel_size: tuple
    stride: tuple
    padding: tuple
    dilation: tuple
    ceil_mode: bool


def _check_pool_args(op, x, kernel_size, stride, padding, dilation, ceil_mode):
    """Validate max_pool2d's arguments; return the hyper-parameter pairs and (H_out, W_out)."""
    _check_x(op, x)
    k = check_positive(pair(kernel_size, "kernel_size", op), "kernel_size", op)
    s = k if stride is None else check_positive(pair(stride, "stride", op), "stride", op)
    p = check_nonnegative(pair(padding, "padding", op), "padding", op)
    d = check_positive(pair(dilation, "dilation", op), "dilation", op)
    if not isinstance(ceil_mode, bool):
        raise TypeError(f"{op}: expected ceil_mode to be a bool, got {ceil_mode!r}")
    if p[0] > k[0] // 2 or p[1] > k[1] // 2:
        raise ValueError(f"{op}: expected padding <= kernel_size // 2 = {(k[0] // 2, k[1] // 2)}, got padding={p}")
    _, _, H, W = x.shape
    out = tuple(pool_output_size(n, k[a], s[a], p[a], d[a], ceil_mode) for a, n in enumerate((H, W)))
    if min(out) < 1:
        raise ValueError(f"{op}: expected the dilated window ({d[0] * (k[0] - 1) + 1}, {d[1] * (k[1] - 1) + 1}) "
                         f"to fit in the padded input ({H + 2 * p[0]}, {W + 2 * p[1]}), got output size {out}")
    return k, s, p, d, out


def _arg_dtype(xp, kernel: int):
    """The smallest integer dtype that holds a tap number ``0 .. kernel - 1``."""
    return xp.int8 if kernel <= 127 else xp.int32


def _window_max(v, axis, n_out, kernel, stride, dilation, carry=None, nan_wins=True):
    """Max over 1-D windows along ``axis`` (-1 or -2), and which tap of each window holds it.

    Window ``o`` reads taps ``t = 0 .. kernel - 1`` at positions
    ``o*stride + t*dilation`` of ``v`` (already padded). A later tap takes
    over only when it is strictly larger, or NaN (PyTorch's rule), so the
    first maximum wins and a NaN propagates. ``nan_wins=False`` skips the
    NaN test: exact whenever no window holds a NaN.

    Returns ``(best, arg, kept)``: the maxima, the winning tap numbers, and
    ``carry`` read at the winning tap (None without ``carry``).
    """
    xp = get_array_module(v)

    def tap(a, t):  # a strided view: position o*stride + t*dilation along axis, for every o
        index = [slice(None)] * a.ndim
        index[axis] = _steps(t * dilation, n_out, stride)
        return a[tuple(index)]

    best = tap(v, 0)                           # views of the inputs: replaced below, never written
    kept = None if carry is None else tap(carry, 0)
    arg = xp.zeros(best.shape, dtype=_arg_dtype(xp, kernel))
    for t in range(1, kernel):
        cand = tap(v, t)
        wins = cand > best
        if nan_wins:
            wins |= xp.isnan(cand)
        best = xp.maximum(best, cand)          # the value where(wins, cand, best) gives, NaN included
        arg += wins * (t - arg)                # branch-free arg = where(wins, t, arg)
        if kept is not None:
            kept = kept + wins * (tap(carry, t) - kept)
    if kernel == 1:                            # a single tap: copy, so the result never aliases v
        best = best.copy()
        kept = None if kept is None else kept.copy()
    return best, arg, kept


def _first_valid(n_out, n_in, kernel, stride, padding, dilation):
    """Per window along one axis: the first tap position ``>= 0`` (PyTorch's index for a window of -infs).

    ``start = o*s - p`` moved forward by whole dilations until it is not in
    the left padding. Where no tap is inside the input this is ``>= n_in``,
    and the window is *empty* (all padding).
    """
    first, empty = [], []
    for o in range(n_out):
        start = o * stride - padding
        start += -(-max(0, -start) // dilation) * dilation
        first.append(start)
        empty.append(start >= n_in or start > o * stride - padding + (kernel - 1) * dilation)
    return first, empty


def max_pool2d(x, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False):
    """2-D max-pooling with switches, PyTorch's ``F.max_pool2d(..., return_indices=True)``.

    Parameters
    ----------
    x : ndarray, shape (N, C, H, W), float
    kernel_size : int or (int, int)
    stride : int or (int, int), optional
        Defaults to ``kernel_size``.
    padding : int or (int, int)
        Implicit ``-inf`` on each side (never zero); at most ``kernel_size // 2``.
    dilation : int or (int, int)
        Taps ``d`` pixels apart.
    ceil_mode : bool
        Round the output size up, keeping a last window that starts inside the
        input or the left padding.

    Returns
    -------
    y : ndarray, shape (N, C, H_out, W_out), dtype of x
        ``y[n, c, i, j] = max over (kh, kw) of x_pad[n, c, i*s_h + kh*d_h, j*s_w + kw*d_w]``;
        ``H_out = floor_or_ceil((H + 2 p_h - d_h (KH - 1) - 1) / s_h) + 1`` (``shapes.pool_output_size``).
    cache : MaxPool2dCache
        ``(x_shape, indices, kernel_size, stride, padding, dilation, ceil_mode)``;
        ``cache.indices[n, c, i, j] = h*W + w`` is where ``y[n, c, i, j]``
        came from in plane ``x[n, c]`` (the input to ``max_unpool2d``).

    Notes
    -----
    Ties: the first maximum in row-major window order wins. A NaN wins over
    any number (the last NaN in the window, as in PyTorch's CPU kernel). A
    window whose pixels are all ``-inf`` points at its first pixel inside the
    input; a window entirely in the padding (possible with dilation) gives
    ``-inf`` and PyTorch's index of its first tap past the padding, which
    lies outside the plane.

    The window is separable: a running max along W (one strided view per
    tap ``kw``), then along H carrying the winning ``kw``. With no padding
    nothing is copied but the results.

    Raises
    ------
    ValueError
        Wrong ndim, non-positive kernel, stride or dilation, negative padding
        or padding above ``kernel_size // 2``, or a window that does not fit.
    TypeError
        Integer dtype, non-int hyper-parameters, non-bool ceil_mode.

    References
    ----------
    Zeiler & Fergus, "Visualizing and Understanding Convolutional Networks", 2014 (switches).
    """
    op = "max_pool2d"
    (KH, KW), (sh, sw), (ph, pw), (dh, dw), (H_out, W_out) = _check_pool_args(
        op, x, kernel_size, stride, padding, dilation, ceil_mode)
    xp = get_array_module(x)
    N, C, H, W = x.shape
    # rows / columns the windows reach, starting at -p: pad with -inf only if they leave the input
    H_need, W_need = (H_out - 1) * sh + dh * (KH - 1) + 1, (W_out - 1) * sw + dw * (KW - 1) + 1
    bottom, right = max(0, H_need - ph - H), max(0, W_need - pw - W)
    if ph or pw or bottom or right:
        x_pad = xp.full((N, C, ph + H + bottom, pw + W + right), -xp.inf, dtype=x.dtype)
        x_pad[:, :, ph:ph + H, pw:pw + W] = x
    else:
        x_pad = x
    for nan_wins in (False, True):  # the NaN test costs two passes: only when a NaN reached the output
        m_w, arg_w, _ = _window_max(x_pad, -1, W_out, KW, sw, dw, nan_wins=nan_wins)  # (N, C, H_pad, W_out)
        y, arg_h, arg_w = _window_max(m_w, -2, H_out, KH, sh, dh, arg_w, nan_wins)    # (N, C, H_out, W_out)
        if nan_wins or not bool(xp.isnan(y).any()):
            break

    # switches: flat offset (i*s_h - p_h + arg_h*d_h) * W + (j*s_w - p_w + arg_w*d_w)
    top_left = ((xp.arange(H_out) * sh - ph) * W)[:, None] + (xp.arange(W_out) * sw - pw)  # (H_out, W_out)
    indices = xp.multiply(arg_h, dh * W, dtype=xp.int64)                 # (N, C, H_out, W_out)
    indices += arg_w if dw == 1 else xp.multiply(arg_w, dw, dtype=xp.int64)
    indices += top_left
    lost = y == -xp.inf  # every tap -inf (or padding): PyTorch points at the first tap in the input
    if bool(lost.any()):
        first_h, _ = _first_valid(H_out, H, KH, sh, ph, dh)
        first_w, _ = _first_valid(W_out, W, KW, sw, pw, dw)
        first = xp.asarray(first_h)[:, None] * W + xp.asarray(first_w)  # (H_out, W_out)
        indices = xp.where(lost, first, indices)
    return y, MaxPool2dCache(tuple(x.shape), indices, (KH, KW), (sh, sw), (ph, pw), (dh, dw), ceil_mode)


def max_pool2d_backward(dy, cache: MaxPool2dCache):
    """Gradient of ``max_pool2d``: each dy goes to the pixel its window's maximum came from.

    Parameters
    ----------
    dy : ndarray, shape (N, C, H_out, W_out)
    cache : MaxPool2dCache

    Returns
    -------
    dx : ndarray, shape (N, C, H, W)
        ``dx[n, c].flat[indices[n, c, i, j]] += dy[n, c, i, j]``: overlapping
        windows that share a maximum add their gradients (``scatter_add_flat``).
        Windows that lie entirely in the padding have no pixel and send
        nothing (their output is a constant ``-inf``); PyTorch instead adds
        their gradient at the index it reported, which lies outside the plane.
    """
    op = "max_pool2d_backward"
    (N, C, H, W), indices, (KH, KW), s, p, d, _ = cache
    _check_dy(op, dy, indices.shape)
    xp = get_array_module(dy, indices)
    H_out, W_out = indices.shape[2:]
    _, empty_h = _first_valid(H_out, H, KH, s[0], p[0], d[0])
    _, empty_w = _first_valid(W_out, W, KW, s[1], p[1], d[1])
    if any(empty_h) or any(empty_w):  # their PyTorch index points outside the plane: drop them
        keep = ~(xp.asarray(empty_h)[:, None] | xp.asarray(empty_w))  # (H_out, W_out)
        dy, indices = dy * keep, xp.where(keep, indices, 0)
    flat = (_plane_offsets(xp, N, C, H * W) + indices).reshape(-1)  # (N*C*H_out*W_out,)
    disjoint = all(s[a] >= d[a] * ((KH, KW)[a] - 1) + 1 for a in range(2))
    if disjoint:  # no pixel is in two windows: every flat index is distinct, a plain write is exact
        dx = xp.zeros(N * C * H * W, dtype=dy.dtype)
        dx[flat] = dy.reshape(-1)
    else:
        dx = scatter_add_flat(flat, dy.reshape(-1), N * C * H * W)
    return dx.reshape(N, C, H, W)


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
    _check_x(op, x)
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
    flat = (_plane_offsets(xp, N, C, plane) + indices).reshape(-1)  # (N*C*H*W,)
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
    _check_dy(op, dy, (N, C, H_out, W_out))
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
    _check_x(op, x)
    sh, sw = check_positive(pair(stride, "stride", op), "stride", op)
    xp = get_array_module(x)
    N, C, H, W = x.shape
    y = xp.zeros((N, C, H * sh, W * sw), dtype=x.dtype)
    y[:, :, ::sh, ::sw] = x
    return y, BedOfNailsCache(tuple(x.shape), (sh, sw))


def bed_of_nails_unpool_backward(dy, cache: BedOfNailsCache):
    """Gradient of ``bed_of_nails_unpool``: ``dx = dy[:, :, ::s_h, ::s_w]``."""
    (N, C, H, W), (sh, sw) = cache
    _check_dy("bed_of_nails_unpool_backward", dy, (N, C, H * sh, W * sw))
    return dy[:, :, ::sh, ::sw].copy()


# --------------------------------------------------------------------------- global context

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

    References
    ----------
    Liu, Rabinovich & Berg, "ParseNet", 2016; Chen et al., "Rethinking Atrous
    Convolution for Semantic Image Segmentation" (DeepLabv3, image-level ASPP branch), 2017.
    """
    _check_x("global_avg_pool2d", x)
    return x.mean(axis=(2, 3), keepdims=True), GlobalAvgPool2dCache(tuple(x.shape))


def global_avg_pool2d_backward(dy, cache: GlobalAvgPool2dCache):
    """Gradient of ``global_avg_pool2d``: ``dx[n, c, h, w] = dy[n, c] / (H W)`` at every pixel."""
    N, C, H, W = cache.x_shape
    _check_dy("global_avg_pool2d_backward", dy, (N, C, 1, 1))
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
    _check_x(op, x)
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


class L2NormalizeCache(NamedTuple):
    """Fields: ``y`` the output, ``norm`` (N, 1, H, W) the clamped norm ``max(||x||, eps)``,
    ``active`` (N, 1, H, W) bool, True where ``||x|| >= eps`` (the norm, not eps, divided)."""

    y: object
    norm: object
    active: object


def l2_normalize(x, eps=1e-12):
    """L2-normalise every pixel's feature vector over the channels: ``y = x / max(||x||_2, eps)``.

    PyTorch's ``F.normalize(x, p=2, dim=1, eps=eps)``; ParseNet normalises
    the local and the global features this way before combining them.

    Parameters
    ----------
    x : ndarray, shape (N, C, H, W), float
    eps : float
        Lower bound on the divisor.

    Returns
    -------
    y : ndarray, shape (N, C, H, W), dtype of x
    cache : L2NormalizeCache

    References
    ----------
    Liu, Rabinovich & Berg, "ParseNet: Looking Wider to See Better", 2016, section 3.2.
    """
    op = "l2_normalize"
    _check_x(op, x)
    if not (isinstance(eps, (int, float)) and eps > 0 and math.isfinite(eps)):
        raise ValueError(f"{op}: expected eps to be a positive finite number, got {eps!r}")
    xp = get_array_module(x)
    norm = xp.sqrt((x * x).sum(axis=1, keepdims=True))  # (N, 1, H, W)
    active = norm >= eps
    norm = xp.maximum(norm, eps).astype(x.dtype, copy=False)
    y = x / norm
    return y, L2NormalizeCache(y, norm, active)


def l2_normalize_backward(dy, cache: L2NormalizeCache):
    """Gradient of ``l2_normalize``.

    ``dx = (dy - y * sum_c(dy * y)) / ||x||`` where ``||x|| >= eps`` (the
    projection that removes the radial part), and ``dx = dy / eps`` where the
    clamp is active.
    """
    y, norm, active = cache
    _check_dy("l2_normalize_backward", dy, y.shape)
    radial = (dy * y).sum(axis=1, keepdims=True) * active  # (N, 1, H, W)
    return (dy - y * radial) / norm

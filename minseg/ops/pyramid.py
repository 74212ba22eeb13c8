"""Adaptive pooling and spatial pyramid pooling: a fixed-size output from an input of any size.

Ordinary pooling fixes the *window* and lets the output size follow the
input. Adaptive pooling fixes the *output* and lets the windows follow: to
pool an ``H``-long axis into ``out`` bins, bin ``i`` covers the rows

    start_i = floor(i * H / out),    end_i = ceil((i + 1) * H / out)      (rows start_i .. end_i - 1)

so the bins tile the axis from 0 to ``H``, each at least ``max(1, floor(H / out))``
long. When ``out`` does not divide ``H`` neighbouring bins *overlap* (share a
row); when ``out > H`` bins repeat rows. The rule is PyTorch's
(``F.adaptive_avg_pool2d`` / ``F.adaptive_max_pool2d``, ATen's
``start_index`` / ``end_index``), applied to both axes:

    avg:  y[n, c, i, j] = (1 / (|bin_i| |bin_j|)) sum_{h in bin_i, w in bin_j} x[n, c, h, w]
    max:  y[n, c, i, j] = max_{h in bin_i, w in bin_j} x[n, c, h, w]

Both are separable. The mean over a rectangle is a pooling matrix on each
side, ``Y = (B_h X B_w^T) / (|bin_i| |bin_j|)`` with the 0/1 bin indicators
``B_h`` (H_out, H) and ``B_w`` (W_out, W); its gradient is the transpose,
``dX = B_h^T (dY / area) B_w``. Every row of ``B`` and of ``B^T`` is one
contiguous run of ones (a bin; the bins that hold a pixel), so each product
is computed as sums over those runs (``_range_sum``), never as a dense
product: ``0 * inf`` would turn one infinite pixel into NaN in every bin of
its row, where PyTorch keeps it inside its own bins. The max over a
rectangle is the max over the rows of the max over the columns, the argmax
carried along.

Spatial pyramid pooling (SPPNet) pools the same feature map at several
levels ``l`` (``l x l`` bins each) and concatenates the flattened results:
a vector of length ``C * sum(l*l)`` whatever the input's size, which a
fully connected layer can take. PSPNet's pyramid pooling module uses the
same adaptive bins (levels 1, 2, 3, 6), upsampled instead of flattened.

References
----------
K. He, X. Zhang, S. Ren, J. Sun, "Spatial Pyramid Pooling in Deep
Convolutional Networks for Visual Recognition", ECCV 2014 / TPAMI 2015.
H. Zhao, J. Shi, X. Qi, X. Wang, J. Jia, "Pyramid Scene Parsing Network", CVPR 2017.
PyTorch, ``torch.nn.AdaptiveAvgPool2d`` and ``torch.nn.AdaptiveMaxPool2d``.
"""
from __future__ import annotations

import bisect
import numbers
from typing import NamedTuple

from ..backend import get_array_module, plane_offsets, scatter_add_flat
from ..shapes import check_nchw, check_ndim, check_shape

__all__ = [
    "adaptive_bins", "adaptive_output_size",
    "adaptive_avg_pool2d", "adaptive_avg_pool2d_backward", "AdaptiveAvgPool2dCache",
    "adaptive_max_pool2d", "adaptive_max_pool2d_backward", "AdaptiveMaxPool2dCache",
    "spatial_pyramid_pool", "spatial_pyramid_pool_backward", "SpatialPyramidPoolCache",
]


# --------------------------------------------------------------------------- bins and sizes

def _is_int(v) -> bool:
    return isinstance(v, numbers.Integral) and not isinstance(v, bool)


def adaptive_bins(in_size: int, out_size: int):
    """The bins of adaptive pooling along one axis: ``(starts, ends)``, PyTorch's rule.

    ``start_i = floor(i * in / out)``, ``end_i = ceil((i + 1) * in / out)``,
    in exact integer arithmetic; bin ``i`` holds ``start_i .. end_i - 1``.

    >>> adaptive_bins(5, 3)       # overlapping bins: rows 1 and 3 are in two bins
    ([0, 1, 3], [2, 4, 5])
    >>> adaptive_bins(2, 4)       # more bins than rows: every row is repeated
    ([0, 0, 1, 1], [1, 1, 2, 2])

    Parameters
    ----------
    in_size, out_size : int, both >= 1

    Returns
    -------
    starts, ends : list of int, length out_size
    """
    starts = [(i * in_size) // out_size for i in range(out_size)]
    ends = [-((-(i + 1) * in_size) // out_size) for i in range(out_size)]  # ceil by negated floor
    return starts, ends


def adaptive_output_size(output_size, input_size, op: str = "adaptive_pool2d"):
    """Normalise ``output_size`` to ``(H_out, W_out)``: an int, or a pair of ints or None.

    ``None`` on an axis keeps the input's size there (PyTorch's rule).

    Raises
    ------
    TypeError
        When ``output_size`` is not an int or a pair of ints / None.
    ValueError
        When an entry is < 1.
    """
    if _is_int(output_size):
        size = (int(output_size), int(output_size))
    elif (isinstance(output_size, (tuple, list)) and len(output_size) == 2
          and all(v is None or _is_int(v) for v in output_size)):
        size = tuple(int(input_size[a]) if v is None else int(v) for a, v in enumerate(output_size))
    else:
        raise TypeError(f"{op}: expected output_size to be an int or a pair of ints (or None to keep an axis), "
                        f"got {output_size!r}")
    if min(size) < 1:
        raise ValueError(f"{op}: expected output_size >= 1 on both axes, got output_size={output_size!r}")
    return size


def _check_x(op, x):
    """``x``: a 4-D floating array with a non-empty ``(H, W)`` plane."""
    check_nchw(x, "x", op)
    if x.shape[2] < 1 or x.shape[3] < 1:
        raise ValueError(f"{op}: expected x with H >= 1 and W >= 1 (a bin cannot be empty), "
                         f"got shape {tuple(x.shape)}")
    return x


def _bins_holding(in_size: int, out_size: int):
    """For every input position ``h``: the bins that contain it, ``first_h .. stop_h - 1`` (the rows of ``B^T``).

    >>> _bins_holding(5, 3)       # bins [0, 2), [1, 4), [3, 5): row 1 is in bins 0 and 1
    ([0, 0, 1, 1, 2], [1, 2, 2, 3, 3])
    """
    starts, ends = adaptive_bins(in_size, out_size)
    first = [bisect.bisect_right(ends, h) for h in range(in_size)]     # the first bin with end > h
    stop = [bisect.bisect_right(starts, h) for h in range(in_size)]    # one past the last bin with start <= h
    return first, stop


def _tap(a, axis, pos):
    """``a`` read at positions ``pos`` (1-D int array) along ``axis`` (-1 or -2): a copy."""
    return a[..., pos] if axis == -1 else a[..., pos, :]


def _range_sum(v, axis, lo, hi):
    """``out[..., o, ...] = sum of v[..., lo[o] : hi[o], ...]`` along ``axis`` (-1 or -2), every range non-empty.

    A sum over a contiguous run, as many taps as the longest run; positions
    past a shorter run's end add nothing (``where``, not a multiplication by
    0, so an inf or NaN stays in the runs that hold it).
    """
    xp = get_array_module(v)
    lo_a, hi_a = xp.asarray(lo), xp.asarray(hi)
    shape = [1] * v.ndim
    shape[axis] = len(lo)                                       # per-run flags broadcast along axis
    total = _tap(v, axis, lo_a)                                 # tap 0 of every run
    for t in range(1, max(h - l for l, h in zip(lo, hi))):
        inside = (lo_a + t < hi_a).reshape(shape)
        total += xp.where(inside, _tap(v, axis, xp.minimum(lo_a + t, hi_a - 1)), 0)
    return total


def _bin_areas(xp, H, W, H_out, W_out, dtype):
    """``|bin_i| |bin_j|``, the number of pixels of every bin: (H_out, W_out)."""
    (s_h, e_h), (s_w, e_w) = adaptive_bins(H, H_out), adaptive_bins(W, W_out)
    len_h = xp.asarray([e - s for s, e in zip(s_h, e_h)], dtype=dtype)  # (H_out,)
    len_w = xp.asarray([e - s for s, e in zip(s_w, e_w)], dtype=dtype)  # (W_out,)
    return len_h[:, None] * len_w


# --------------------------------------------------------------------------- adaptive average pooling

class AdaptiveAvgPool2dCache(NamedTuple):
    """What ``adaptive_avg_pool2d_backward`` needs: ``x_shape`` (N, C, H, W) and ``output_size`` (H_out, W_out)."""

    x_shape: tuple
    output_size: tuple


def adaptive_avg_pool2d(x, output_size):
    """Adaptive average pooling to a fixed ``(H_out, W_out)``, PyTorch's ``F.adaptive_avg_pool2d``.

    Parameters
    ----------
    x : ndarray, shape (N, C, H, W), float, H >= 1 and W >= 1
    output_size : int or (int or None, int or None)
        ``(H_out, W_out)``, each >= 1 (larger than the input is fine); None keeps that axis.

    Returns
    -------
    y : ndarray, shape (N, C, H_out, W_out), dtype of x
        ``y[n, c, i, j]`` = mean of ``x[n, c, start_i:end_i, start_j:end_j]`` with
        ``start_i = floor(i H / H_out)``, ``end_i = ceil((i + 1) H / H_out)`` (``adaptive_bins``).
        That is ``(B_h X B_w^T) / (|bin_i| |bin_j|)``, ``B`` the 0/1 bin indicators,
        computed as sums over each bin's columns, then its rows: an inf or NaN
        reaches only the bins that hold it, as in PyTorch.
    cache : AdaptiveAvgPool2dCache
        ``(x_shape, output_size)``.

    Raises
    ------
    ValueError
        x not 4-D or with an empty (H, W) plane; output_size < 1.
    TypeError
        Integer x; output_size not an int or a pair.

    References
    ----------
    He et al., "Spatial Pyramid Pooling in Deep Convolutional Networks", 2014.
    """
    op = "adaptive_avg_pool2d"
    _check_x(op, x)
    N, C, H, W = x.shape
    H_out, W_out = adaptive_output_size(output_size, (H, W), op)
    xp = get_array_module(x)
    sums = _range_sum(x, -1, *adaptive_bins(W, W_out))        # (N, C, H, W_out): X B_w^T
    sums = _range_sum(sums, -2, *adaptive_bins(H, H_out))     # (N, C, H_out, W_out): B_h X B_w^T
    y = sums / _bin_areas(xp, H, W, H_out, W_out, x.dtype)    # divided by the bin's area |bin_i| |bin_j|
    return y, AdaptiveAvgPool2dCache(tuple(x.shape), (H_out, W_out))


def adaptive_avg_pool2d_backward(dy, cache: AdaptiveAvgPool2dCache):
    """Gradient of ``adaptive_avg_pool2d``: each ``dy[i, j] / area`` spread over its bin.

    Parameters
    ----------
    dy : ndarray, shape (N, C, H_out, W_out)
    cache : AdaptiveAvgPool2dCache

    Returns
    -------
    dx : ndarray, shape (N, C, H, W)
        ``dx[n, c, h, w] = sum over bins (i, j) holding (h, w) of dy[n, c, i, j] / (|bin_i| |bin_j|)``,
        i.e. ``B_h^T (dY / area) B_w``: where bins overlap the pixel collects from each of them.
    """
    op = "adaptive_avg_pool2d_backward"
    (N, C, H, W), (H_out, W_out) = cache
    check_ndim(dy, 4, "dy", op, "N, C, H_out, W_out")
    check_shape(dy, (N, C, H_out, W_out), "dy", op)
    xp = get_array_module(dy)
    g = dy / _bin_areas(xp, H, W, H_out, W_out, dy.dtype)     # (N, C, H_out, W_out)
    g = _range_sum(g, -2, *_bins_holding(H, H_out))           # (N, C, H, W_out): B_h^T g
    return _range_sum(g, -1, *_bins_holding(W, W_out))        # (N, C, H, W): B_h^T g B_w


# --------------------------------------------------------------------------- adaptive max pooling

class AdaptiveMaxPool2dCache(NamedTuple):
    """What ``adaptive_max_pool2d_backward`` needs from the forward pass.

    Fields
    ------
    x_shape : (N, C, H, W)
    indices : (N, C, H_out, W_out) int64, where each maximum came from: flat offsets ``h*W + w`` into each plane
    """

    x_shape: tuple
    indices: object


def _bin_max(v, axis, starts, ends, carry=None):
    """Max over the adaptive bins along ``axis`` (-1 or -2), and the position in ``v`` that holds it.

    Bin ``o`` reads taps ``t = 0 .. K - 1`` at positions ``min(start_o + t, end_o - 1)``,
    ``K`` the longest bin: a shorter bin re-reads its last element, which
    changes neither its max nor its argmax. A later tap takes over only when
    it is strictly larger, or NaN (PyTorch's CPU rule), so the first maximum
    wins and the last NaN of a bin propagates.

    Returns ``(best, where, kept)``: the maxima, the winning positions along
    ``axis`` (int64), and ``carry`` read at the winning positions (None without ``carry``).
    """
    xp = get_array_module(v)
    K = max(e - s for s, e in zip(starts, ends))
    start, last = xp.asarray(starts), xp.asarray(ends) - 1          # (out,) each
    shape = [1] * v.ndim
    shape[axis] = len(starts)                                       # where broadcasts along axis

    best = _tap(v, axis, start)
    where = xp.broadcast_to(start.reshape(shape), best.shape).astype(xp.int64)  # (..., out, ...) writable
    kept = None if carry is None else _tap(carry, axis, start)
    for t in range(1, K):
        pos = xp.minimum(start + t, last)      # (out,): tap t of every bin, clamped to the bin's last element
        cand = _tap(v, axis, pos)
        wins = (cand > best) | xp.isnan(cand)
        best = xp.maximum(best, cand)          # the value where(wins, cand, best) gives, NaN included
        where += wins * (pos.reshape(shape) - where)   # branch-free where = where(wins, pos, where)
        if kept is not None:
            kept += wins * (_tap(carry, axis, pos) - kept)
    return best, where, kept


def adaptive_max_pool2d(x, output_size):
    """Adaptive max pooling to a fixed ``(H_out, W_out)``, with PyTorch's indices (``return_indices=True``).

    Parameters
    ----------
    x : ndarray, shape (N, C, H, W), float, H >= 1 and W >= 1
    output_size : int or (int or None, int or None)
        ``(H_out, W_out)``, each >= 1 (larger than the input is fine); None keeps that axis.

    Returns
    -------
    y : ndarray, shape (N, C, H_out, W_out), dtype of x
        ``y[n, c, i, j]`` = max of ``x[n, c, start_i:end_i, start_j:end_j]``, the bins of ``adaptive_bins``.
    cache : AdaptiveMaxPool2dCache
        ``(x_shape, indices)``; ``indices[n, c, i, j] = h*W + w`` is where
        ``y[n, c, i, j]`` came from in plane ``x[n, c]`` (PyTorch's indices).

    Notes
    -----
    Exactly PyTorch's CPU kernel, which scans each bin in row-major order and
    lets a value take over when it is strictly larger or NaN: ties go to the
    first maximum in row-major order; a NaN beats every number, and of
    several NaNs the last one wins; a bin of ``-inf`` only points at its
    first pixel. Separable: a running max over the columns of each column
    bin (every row), then over the rows of each row bin, carrying the
    winning column along. The row-major first maximum lies in the first row
    that reaches the bin's maximum, at that row's first maximum, so the two
    passes find it (and the last NaN likewise).

    Raises
    ------
    ValueError
        x not 4-D or with an empty (H, W) plane; output_size < 1.
    TypeError
        Integer x; output_size not an int or a pair.

    References
    ----------
    He et al., "Spatial Pyramid Pooling in Deep Convolutional Networks", 2014.
    """
    op = "adaptive_max_pool2d"
    _check_x(op, x)
    N, C, H, W = x.shape
    H_out, W_out = adaptive_output_size(output_size, (H, W), op)
    xp = get_array_module(x)
    m_w, col, _ = _bin_max(x, -1, *adaptive_bins(W, W_out))              # (N, C, H, W_out), winning w
    y, row, col = _bin_max(m_w, -2, *adaptive_bins(H, H_out), carry=col)  # (N, C, H_out, W_out)
    indices = row * W + col                                                # flat h*W + w in each plane
    return y, AdaptiveMaxPool2dCache(tuple(x.shape), indices.astype(xp.int64, copy=False))


def adaptive_max_pool2d_backward(dy, cache: AdaptiveMaxPool2dCache):
    """Gradient of ``adaptive_max_pool2d``: each dy goes to the pixel its bin's maximum came from.

    Parameters
    ----------
    dy : ndarray, shape (N, C, H_out, W_out)
    cache : AdaptiveMaxPool2dCache

    Returns
    -------
    dx : ndarray, shape (N, C, H, W)
        ``dx[n, c].flat[indices[n, c, i, j]] += dy[n, c, i, j]``: overlapping
        bins that share a maximum add their gradients (``scatter_add_flat``).
    """
    op = "adaptive_max_pool2d_backward"
    (N, C, H, W), indices = cache
    check_ndim(dy, 4, "dy", op, "N, C, H_out, W_out")
    check_shape(dy, indices.shape, "dy", op)
    xp = get_array_module(dy, indices)
    flat = (plane_offsets(xp, N, C, H * W) + indices).reshape(-1)                                      # (N*C*H_out*W_out,)
    dx = scatter_add_flat(flat, dy.reshape(-1), N * C * H * W)                 # (N*C*H*W,)
    return dx.reshape(N, C, H, W)


# --------------------------------------------------------------------------- spatial pyramid pooling

class SpatialPyramidPoolCache(NamedTuple):
    """What ``spatial_pyramid_pool_backward`` needs.

    Fields
    ------
    x_shape : (N, C, H, W)
    levels : tuple of int, the bins per side of each level
    mode : "max" or "avg"
    caches : tuple, the adaptive pooling cache of each level
    """

    x_shape: tuple
    levels: tuple
    mode: str
    caches: tuple


_POOLS = {"max": (adaptive_max_pool2d, adaptive_max_pool2d_backward),
          "avg": (adaptive_avg_pool2d, adaptive_avg_pool2d_backward)}


def _check_levels(op, levels, mode):
    if mode not in _POOLS:
        raise ValueError(f"{op}: expected mode 'max' or 'avg', got {mode!r}")
    if not (isinstance(levels, (tuple, list)) and len(levels) >= 1 and all(_is_int(v) for v in levels)):
        raise TypeError(f"{op}: expected levels to be a non-empty sequence of ints (bins per side), got {levels!r}")
    if min(levels) < 1:
        raise ValueError(f"{op}: expected every level >= 1, got levels={tuple(levels)}")
    return tuple(int(v) for v in levels)


def spatial_pyramid_pool(x, levels=(4, 2, 1), mode="max"):
    """Spatial pyramid pooling (SPPNet): adaptive pools at several levels, flattened and concatenated.

    Parameters
    ----------
    x : ndarray, shape (N, C, H, W), float, any H, W >= 1
    levels : sequence of int
        Level ``l`` pools into ``l x l`` bins; SPPNet's default is ``(4, 2, 1)``.
    mode : "max" or "avg"

    Returns
    -------
    y : ndarray, shape (N, C * sum(l*l)), dtype of x
        For the default levels ``(N, 21 C)``, whatever H and W. The levels
        follow each other in the order given; within level ``l`` the entry
        for channel ``c`` and bin ``(i, j)`` is at offset ``c*l*l + i*l + j``
        (the ``(N, C, l, l)`` pool flattened in C-order), i.e.
        ``torch.cat([F.adaptive_max_pool2d(x, l).flatten(1) for l in levels], 1)``.
    cache : SpatialPyramidPoolCache

    Raises
    ------
    ValueError
        Bad x (see ``adaptive_max_pool2d``), a level < 1, an unknown mode.
    TypeError
        levels not a non-empty sequence of ints.

    References
    ----------
    He, Zhang, Ren & Sun, "Spatial Pyramid Pooling in Deep Convolutional
    Networks for Visual Recognition", 2014, section 2.3 and figure 3.
    """
    op = "spatial_pyramid_pool"
    levels = _check_levels(op, levels, mode)
    _check_x(op, x)
    xp = get_array_module(x)
    N = x.shape[0]
    pool = _POOLS[mode][0]
    pooled, caches = [], []
    for level in levels:
        y_l, cache = pool(x, level)                 # (N, C, l, l)
        pooled.append(y_l.reshape(N, -1))           # (N, C*l*l): c, then i, then j
        caches.append(cache)
    y = xp.concatenate(pooled, axis=1)              # (N, C * sum(l*l))
    return y, SpatialPyramidPoolCache(tuple(x.shape), levels, mode, tuple(caches))


def spatial_pyramid_pool_backward(dy, cache: SpatialPyramidPoolCache):
    """Gradient of ``spatial_pyramid_pool``: split dy by level, back through each pool, and add.

    Parameters
    ----------
    dy : ndarray, shape (N, C * sum(l*l))
    cache : SpatialPyramidPoolCache

    Returns
    -------
    dx : ndarray, shape (N, C, H, W)
        ``sum over levels l of pool_backward(dy_l.reshape(N, C, l, l))``.
    """
    op = "spatial_pyramid_pool_backward"
    (N, C, H, W), levels, mode, caches = cache
    width = C * sum(l * l for l in levels)
    check_ndim(dy, 2, "dy", op, "N, C * sum(l*l)")
    check_shape(dy, (N, width), "dy", op)
    backward = _POOLS[mode][1]
    dx, offset = None, 0
    for level, c in zip(levels, caches):
        dy_l = dy[:, offset:offset + C * level * level].reshape(N, C, level, level)  # (N, C, l, l)
        offset += C * level * level
        g = backward(dy_l, c)                                                         # (N, C, H, W)
        dx = g if dx is None else dx + g
    return dx

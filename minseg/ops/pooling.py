"""Max-pooling with switches: ``max_pool2d`` and its backward.

Max-pooling keeps the largest value of every window and remembers where it
was: the *switches* (Zeiler & Fergus), stored as PyTorch does, as flat offsets
``h*W + w`` into each ``(n, c)`` input plane. Max-unpooling (DeconvNet,
SegNet) puts every value back where its maximum came from and zeros
elsewhere, so the decoder recovers *where* things were, not only *what*:

    pooled, cache = max_pool2d(x, 2)                    # (N, C, H/2, W/2), cache.indices
    restored, _ = max_unpool2d(pooled, cache.indices, 2)  # (N, C, H, W), sparse

Max-unpooling and the simpler unpoolings live in ``unpooling.py``; global
pooling and broadcasting a pooled context back to a size in ``context.py``.

The window size is PyTorch's (``torch.nn.MaxPool2d``):

    max_pool2d   H_out = floor_or_ceil((H + 2 p - d (k - 1) - 1) / s) + 1

References
----------
M. D. Zeiler and R. Fergus, "Visualizing and Understanding Convolutional
Networks", ECCV 2014 (switches).
"""
from __future__ import annotations

from typing import NamedTuple

from ..backend import get_array_module, plane_offsets, scatter_add_flat
from ..shapes import check_nchw, check_nonnegative, check_positive, check_shape, pair, pool_output_size, steps

__all__ = ["max_pool2d", "max_pool2d_backward", "MaxPool2dCache"]


# --------------------------------------------------------------------------- helpers

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
    check_nchw(x, "x", op)
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
        index[axis] = steps(t * dilation, n_out, stride)
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


def _max_plain(x_pad, kernel, stride, dilation, out):
    """The plain path: every window's ``KH*KW`` taps side by side, then ``argmax`` (the first maximum wins).

    x_pad : (N, C, H_pad, W_pad), already padded with -inf. Returns ``(y, arg_h, arg_w)``,
    each (N, C, H_out, W_out): the maxima and the winning tap ``(kh, kw)`` of every window.
    """
    xp = get_array_module(x_pad)
    (KH, KW), (sh, sw), (dh, dw), (H_out, W_out) = kernel, stride, dilation, out
    taps = xp.stack([x_pad[:, :, steps(kh * dh, H_out, sh), steps(kw * dw, W_out, sw)]
                     for kh in range(KH) for kw in range(KW)], axis=-1)  # (N, C, H_out, W_out, KH*KW)
    t = xp.argmax(taps, axis=-1)                                          # tap number kh*KW + kw
    nan = xp.isnan(taps)
    if bool(nan.any()):  # PyTorch: a NaN wins, and a later NaN over an earlier one: the last NaN
        last_nan = KH * KW - 1 - xp.argmax(nan[..., ::-1], axis=-1)
        t = xp.where(nan.any(axis=-1), last_nan, t)
    y = xp.take_along_axis(taps, t[..., None], axis=-1)[..., 0]           # (N, C, H_out, W_out)
    return y, t // KW, t % KW


def _max_separable(x_pad, kernel, stride, dilation, out):
    """The fast path: a running max along W (one strided view per tap), then along H carrying the winning kw.

    The same ``(y, arg_h, arg_w)`` as ``_max_plain``: the first maximum of a
    row wins, then the first row holding the window's maximum, which is the
    first maximum in row-major order; NaN the same way. Nothing of size
    ``KH*KW`` times the output is built, and without NaN the NaN test is skipped.
    """
    xp = get_array_module(x_pad)
    (KH, KW), (sh, sw), (dh, dw), (H_out, W_out) = kernel, stride, dilation, out
    for nan_wins in (False, True):  # the NaN test costs two passes: only when a NaN reached the output
        m_w, arg_w, _ = _window_max(x_pad, -1, W_out, KW, sw, dw, nan_wins=nan_wins)  # (N, C, H_pad, W_out)
        y, arg_h, arg_w = _window_max(m_w, -2, H_out, KH, sh, dh, arg_w, nan_wins)    # (N, C, H_out, W_out)
        if nan_wins or not bool(xp.isnan(y).any()):
            break
    return y, arg_h, arg_w


def _use_plain_path(kernel, stride) -> bool:
    """Whether to build every window (``_max_plain``): only when the tests force it.

    Both paths give the same maxima and switches; the separable running max
    measured 2.9x (2x2, stride 2), 4.2x (3x3, stride 2) and 3.6x (3x3, stride 1)
    faster on a (16, 32, 64, 64) float32 input, so it always runs otherwise.
    """
    return False


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

    See Also
    --------
    minseg.reference.max_pool2d_loops : the same, by the definition, with loops.

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
    window_max = _max_plain if _use_plain_path((KH, KW), (sh, sw)) else _max_separable
    y, arg_h, arg_w = window_max(x_pad, (KH, KW), (sh, sw), (dh, dw), (H_out, W_out))  # (N, C, H_out, W_out) each

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

    See Also
    --------
    minseg.reference.max_pool2d_backward_loops : the same gradient, pixel by pixel.
    """
    op = "max_pool2d_backward"
    (N, C, H, W), indices, (KH, KW), s, p, d, _ = cache
    check_shape(dy, indices.shape, "dy", op)
    xp = get_array_module(dy, indices)
    H_out, W_out = indices.shape[2:]
    _, empty_h = _first_valid(H_out, H, KH, s[0], p[0], d[0])
    _, empty_w = _first_valid(W_out, W, KW, s[1], p[1], d[1])
    flat = (plane_offsets(xp, N, C, H * W) + indices).reshape(-1)  # (N*C*H_out*W_out,)
    values = dy.reshape(-1)                                          # (N*C*H_out*W_out,)
    if any(empty_h) or any(empty_w):  # their PyTorch index points outside the plane: leave them out
        keep = ~(xp.asarray(empty_h)[:, None] | xp.asarray(empty_w))  # (H_out, W_out)
        keep = xp.broadcast_to(keep, indices.shape).reshape(-1)        # (N*C*H_out*W_out,)
        flat, values = flat[keep], values[keep]
    disjoint = all(s[a] >= d[a] * ((KH, KW)[a] - 1) + 1 for a in range(2))
    if disjoint:  # no pixel is in two windows: every flat index is distinct, a plain write is exact
        dx = xp.zeros(N * C * H * W, dtype=dy.dtype)
        dx[flat] = values
    else:
        dx = scatter_add_flat(flat, values, N * C * H * W)
    return dx.reshape(N, C, H, W)

"""Slow loop versions of minseg's ops, written to be read.

Each function here computes exactly what the fast op in ``minseg.ops``
computes, straight from the definition, with explicit loops and no tricks.
The tests check the fast ops against these; a learner can read them side by
side with the fast versions. They are far too slow for real sizes.
"""
from __future__ import annotations

import numpy as np

from .shapes import conv_output_size, pair, pool_output_size

__all__ = [
    "conv2d_loops", "conv2d_backward_loops",
    "conv_transpose2d_loops", "conv_transpose2d_backward_loops",
    "max_pool2d_loops", "max_pool2d_backward_loops", "max_unpool2d_loops", "max_unpool2d_backward_loops",
    "bilinear_interpolate_loops", "bilinear_interpolate_backward_loops", "upsample_nearest_loops",
]
__all__ += ["upsample_nearest_backward_loops", "softmax_loops", "cross_entropy_loops", "cross_entropy_backward_loops", "batch_norm2d_loops",
            "batch_norm2d_backward_loops", "l2_normalize_loops", "global_avg_pool2d_loops"]
__all__ += ["adaptive_avg_pool2d_loops", "adaptive_avg_pool2d_backward_loops",
            "adaptive_max_pool2d_loops", "adaptive_max_pool2d_backward_loops"]


# --------------------------------------------------------------------------- convolution

def conv2d_loops(x, w, b=None, stride=1, padding=0, dilation=1, groups=1):
    """Convolution (cross-correlation) by its definition.

    ``y[n, o, i, j] = b[o] + sum_{c, kh, kw} w[o, c, kh, kw] * x_pad[n, g*C_g + c, i*s + kh*d, j*s + kw*d]``
    where ``g = o // (C_out / groups)`` is the group of output channel ``o``.

    Parameters
    ----------
    x : (N, C, H, W); w : (C_out, C // groups, KH, KW); b : (C_out,) or None

    Returns
    -------
    y : (N, C_out, H_out, W_out), ``H_out = floor((H + 2p - d(KH - 1) - 1) / s) + 1``
    """
    (sh, sw), (ph, pw), (dh, dw) = pair(stride), pair(padding), pair(dilation)
    N, C, H, W = x.shape
    C_out, C_g, KH, KW = w.shape
    H_out = conv_output_size(H, KH, sh, ph, dh)
    W_out = conv_output_size(W, KW, sw, pw, dw)
    out_per_group = C_out // groups
    x_pad = np.zeros((N, C, H + 2 * ph, W + 2 * pw), dtype=x.dtype)
    x_pad[:, :, ph:ph + H, pw:pw + W] = x
    y = np.zeros((N, C_out, H_out, W_out), dtype=x.dtype)
    for n in range(N):
        for o in range(C_out):
            g = o // out_per_group  # the group this output channel belongs to
            for i in range(H_out):
                for j in range(W_out):
                    total = 0.0 if b is None else b[o]
                    for c in range(C_g):
                        for kh in range(KH):
                            for kw in range(KW):
                                total += w[o, c, kh, kw] * x_pad[n, g * C_g + c, i * sh + kh * dh, j * sw + kw * dw]
                    y[n, o, i, j] = total
    return y


def conv2d_backward_loops(dy, x, w, has_bias=True, stride=1, padding=0, dilation=1, groups=1):
    """Gradients of ``conv2d_loops``: every product in the forward sum sends dy back to its two factors.

    For each term ``w[o, c, kh, kw] * x_pad[n, ci, hi, wi]`` that contributed to ``y[n, o, i, j]``:
    ``dw[o, c, kh, kw] += dy[n, o, i, j] * x_pad[n, ci, hi, wi]`` and
    ``dx_pad[n, ci, hi, wi] += dy[n, o, i, j] * w[o, c, kh, kw]``; ``db[o] = sum dy[:, o]``.

    Returns
    -------
    dx : (N, C, H, W); dw : (C_out, C // groups, KH, KW); db : (C_out,) or None
    """
    (sh, sw), (ph, pw), (dh, dw_) = pair(stride), pair(padding), pair(dilation)
    N, C, H, W = x.shape
    C_out, C_g, KH, KW = w.shape
    _, _, H_out, W_out = dy.shape
    out_per_group = C_out // groups
    x_pad = np.zeros((N, C, H + 2 * ph, W + 2 * pw), dtype=x.dtype)
    x_pad[:, :, ph:ph + H, pw:pw + W] = x
    dx_pad = np.zeros_like(x_pad)
    dw = np.zeros_like(w)
    for n in range(N):
        for o in range(C_out):
            g = o // out_per_group
            for i in range(H_out):
                for j in range(W_out):
                    for c in range(C_g):
                        for kh in range(KH):
                            for kw in range(KW):
                                ci, hi, wi = g * C_g + c, i * sh + kh * dh, j * sw + kw * dw_
                                dw[o, c, kh, kw] += dy[n, o, i, j] * x_pad[n, ci, hi, wi]
                                dx_pad[n, ci, hi, wi] += dy[n, o, i, j] * w[o, c, kh, kw]
    dx = dx_pad[:, :, ph:ph + H, pw:pw + W]  # drop the gradient that landed on the padding
    db = dy.sum(axis=(0, 2, 3)) if has_bias else None
    return dx, dw, db


# --------------------------------------------------------------------------- transposed convolution

def conv_transpose2d_loops(x, w, b=None, stride=1, padding=0, output_padding=0, dilation=1, groups=1):
    """Transposed convolution by its definition: every input pixel stamps the kernel, scaled, onto the output.

    ``y_pad[n, o, h*s + kh*d, v*s + kw*d] += x[n, c, h, v] * w[c, o - g*C_out_g, kh, kw]`` for ``c`` and
    ``o`` in the same group ``g``; then ``p`` rows / columns are cropped from each side, plus ``b[o]``.

    Parameters
    ----------
    x : (N, C_in, H, W); w : (C_in, C_out // groups, KH, KW); b : (C_out,) or None

    Returns
    -------
    y : (N, C_out, H_out, W_out), ``H_out = (H - 1)s - 2p + d(KH - 1) + output_padding + 1``
    """
    (sh, sw), (ph, pw), (oh, ow), (dh, dw) = pair(stride), pair(padding), pair(output_padding), pair(dilation)
    N, C_in, H, W = x.shape
    _, C_out_g, KH, KW = w.shape
    C_in_g = C_in // groups
    H_out = (H - 1) * sh - 2 * ph + dh * (KH - 1) + oh + 1
    W_out = (W - 1) * sw - 2 * pw + dw * (KW - 1) + ow + 1
    y_pad = np.zeros((N, C_out_g * groups, H_out + 2 * ph, W_out + 2 * pw), dtype=x.dtype)
    for n in range(N):
        for c in range(C_in):
            g = c // C_in_g  # the group this input channel belongs to
            for h in range(H):
                for v in range(W):
                    for o in range(C_out_g):
                        for kh in range(KH):
                            for kw in range(KW):
                                hh, vv = h * sh + kh * dh, v * sw + kw * dw
                                y_pad[n, g * C_out_g + o, hh, vv] += x[n, c, h, v] * w[c, o, kh, kw]
    y = y_pad[:, :, ph:ph + H_out, pw:pw + W_out].copy()  # crop the padding
    if b is not None:
        y += b.reshape(1, -1, 1, 1)
    return y


def conv_transpose2d_backward_loops(dy, x, w, has_bias=True, stride=1, padding=0, output_padding=0,
                                    dilation=1, groups=1):
    """Gradients of ``conv_transpose2d_loops``: every product in the forward sum sends dy back to its factors.

    For each term ``x[n, c, h, v] * w[c, o, kh, kw]`` added to ``y_pad[n, g*C_out_g + o, hh, vv]``:
    ``dx[n, c, h, v] += dy_pad[...] * w[c, o, kh, kw]`` and ``dw[c, o, kh, kw] += dy_pad[...] * x[n, c, h, v]``,
    where ``dy_pad`` is dy with zeros on the cropped border; ``db[o] = sum dy[:, o]``.

    Returns
    -------
    dx : (N, C_in, H, W); dw : (C_in, C_out // groups, KH, KW); db : (C_out,) or None
    """
    (sh, sw), (ph, pw), (dh, dw_) = pair(stride), pair(padding), pair(dilation)
    N, C_in, H, W = x.shape
    _, C_out_g, KH, KW = w.shape
    _, _, H_out, W_out = dy.shape
    C_in_g = C_in // groups
    dy_pad = np.zeros((N, dy.shape[1], H_out + 2 * ph, W_out + 2 * pw), dtype=dy.dtype)
    dy_pad[:, :, ph:ph + H_out, pw:pw + W_out] = dy
    dx = np.zeros_like(x)
    dw = np.zeros_like(w)
    for n in range(N):
        for c in range(C_in):
            g = c // C_in_g
            for h in range(H):
                for v in range(W):
                    for o in range(C_out_g):
                        for kh in range(KH):
                            for kw in range(KW):
                                g_out = dy_pad[n, g * C_out_g + o, h * sh + kh * dh, v * sw + kw * dw_]
                                dx[n, c, h, v] += g_out * w[c, o, kh, kw]
                                dw[c, o, kh, kw] += g_out * x[n, c, h, v]
    db = dy.sum(axis=(0, 2, 3)) if has_bias else None
    return dx, dw, db


# --------------------------------------------------------------------------- pooling and unpooling

def max_pool2d_loops(x, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False):
    """Max-pooling with switches, window by window, as PyTorch's CPU kernel scans it.

    Each window starts at ``(i*s - p, j*s - p)`` and reads taps ``d`` apart;
    taps in the padding are skipped. The running maximum starts at ``-inf``
    with the index of the first tap inside the input, and a tap takes over when
    it is strictly larger or NaN, so the first maximum in row-major order wins.

    Returns
    -------
    y : (N, C, H_out, W_out); indices : (N, C, H_out, W_out) int64, flat ``h*W + w`` in each plane
    """
    (KH, KW) = pair(kernel_size)
    (sh, sw) = (KH, KW) if stride is None else pair(stride)
    (ph, pw), (dh, dw) = pair(padding), pair(dilation)
    N, C, H, W = x.shape
    H_out = pool_output_size(H, KH, sh, ph, dh, ceil_mode)
    W_out = pool_output_size(W, KW, sw, pw, dw, ceil_mode)
    y = np.empty((N, C, H_out, W_out), dtype=x.dtype)
    indices = np.empty((N, C, H_out, W_out), dtype=np.int64)
    for n in range(N):
        for c in range(C):
            for i in range(H_out):
                for j in range(W_out):
                    h0, v0 = i * sh - ph, j * sw - pw
                    while h0 < 0:  # first tap row inside the input
                        h0 += dh
                    while v0 < 0:
                        v0 += dw
                    h_end = min(i * sh - ph + (KH - 1) * dh + 1, H)
                    v_end = min(j * sw - pw + (KW - 1) * dw + 1, W)
                    best, best_index = -np.inf, h0 * W + v0
                    for h in range(h0, h_end, dh):
                        for v in range(v0, v_end, dw):
                            val = x[n, c, h, v]
                            if val > best or np.isnan(val):
                                best, best_index = val, h * W + v
                    y[n, c, i, j], indices[n, c, i, j] = best, best_index
    return y, indices


def max_pool2d_backward_loops(dy, indices, x_shape):
    """Gradient of max-pooling: each window's dy is added to the pixel its maximum came from.

    Windows whose index lies outside the plane (entirely in the padding) send nothing.
    """
    N, C, H, W = x_shape
    dx = np.zeros(x_shape, dtype=dy.dtype)
    for n in range(N):
        for c in range(C):
            for i in range(dy.shape[2]):
                for j in range(dy.shape[3]):
                    k = indices[n, c, i, j]
                    if k < H * W:
                        dx[n, c, k // W, k % W] += dy[n, c, i, j]
    return dx


def max_unpool2d_loops(x, indices, output_size):
    """Max-unpooling: zeros, then each value written at its index, in row-major order (the last write wins)."""
    N, C, H, W = x.shape
    H_out, W_out = output_size
    y = np.zeros((N, C, H_out, W_out), dtype=x.dtype)
    for n in range(N):
        for c in range(C):
            for i in range(H):
                for j in range(W):
                    k = indices[n, c, i, j]
                    y[n, c, k // W_out, k % W_out] = x[n, c, i, j]
    return y


def max_unpool2d_backward_loops(dy, indices):
    """Gradient of max-unpooling: each input reads dy at its index."""
    N, C, H, W = indices.shape
    W_out = dy.shape[3]
    dx = np.zeros((N, C, H, W), dtype=dy.dtype)
    for n in range(N):
        for c in range(C):
            for i in range(H):
                for j in range(W):
                    k = indices[n, c, i, j]
                    dx[n, c, i, j] = dy[n, c, k // W_out, k % W_out]
    return dx


# --------------------------------------------------------------------------- interpolation

def _linear_source(o, in_size, out_size, align_corners, scale):
    """PyTorch's source coordinate for output ``o``: ``(i0, i1, lambda)`` (an unchanged size is copied)."""
    if in_size == out_size:
        return o, o, 0.0
    if align_corners:
        src = o * (in_size - 1) / (out_size - 1) if out_size > 1 else 0.0
    else:
        step = 1.0 / scale if scale else in_size / out_size
        src = max((o + 0.5) * step - 0.5, 0.0)
    i0 = min(int(np.floor(src)), in_size - 1)
    return i0, min(i0 + 1, in_size - 1), min(max(src - i0, 0.0), 1.0)


def bilinear_interpolate_loops(x, size, align_corners=False, scales=(None, None)):
    """Bilinear interpolation pixel by pixel: ``P = q (b A + a B) + p (b D + a C)``.

    ``A = x[r0, c0]``, ``B = x[r0, c1]``, ``C = x[r1, c1]``, ``D = x[r1, c0]``;
    ``a``, ``p`` are the horizontal and vertical fractions, ``b = 1 - a``, ``q = 1 - p``.
    ``scales`` are the user's scale factors (or None), used when ``align_corners`` is False.
    """
    N, C_, H, W = x.shape
    H_out, W_out = size
    y = np.empty((N, C_, H_out, W_out), dtype=x.dtype)
    for i in range(H_out):
        r0, r1, p = _linear_source(i, H, H_out, align_corners, scales[0])
        for j in range(W_out):
            c0, c1, a = _linear_source(j, W, W_out, align_corners, scales[1])
            q, b = 1 - p, 1 - a
            A, B, C, D = x[:, :, r0, c0], x[:, :, r0, c1], x[:, :, r1, c1], x[:, :, r1, c0]
            y[:, :, i, j] = q * (b * A + a * B) + p * (b * D + a * C)
    return y


def bilinear_interpolate_backward_loops(dy, x_shape, align_corners=False, scales=(None, None)):
    """Gradient of bilinear interpolation: each output's dy goes to its four source pixels with the same weights."""
    N, C_, H, W = x_shape
    _, _, H_out, W_out = dy.shape
    dx = np.zeros(x_shape, dtype=dy.dtype)
    for i in range(H_out):
        r0, r1, p = _linear_source(i, H, H_out, align_corners, scales[0])
        for j in range(W_out):
            c0, c1, a = _linear_source(j, W, W_out, align_corners, scales[1])
            q, b = 1 - p, 1 - a
            g = dy[:, :, i, j]
            dx[:, :, r0, c0] += q * b * g  # A
            dx[:, :, r0, c1] += q * a * g  # B
            dx[:, :, r1, c1] += p * a * g  # C
            dx[:, :, r1, c0] += p * b * g  # D
    return dx


def _nearest_source(o, in_size, out_size, scale):
    """The input pixel nearest-neighbour resizing reads for output pixel ``o`` (PyTorch's float32 step)."""
    if out_size == in_size:
        return o
    if out_size == 2 * in_size:
        return o // 2
    step = np.float32(1.0 / scale) if scale else np.float32(in_size) / np.float32(out_size)
    return min(int(np.floor(np.float32(o) * step)), in_size - 1)


def upsample_nearest_loops(x, size, scales=(None, None)):
    """Nearest-neighbour resizing: ``y[i, j] = x[floor(i * step_h), floor(j * step_w)]`` (PyTorch's float32 steps)."""
    N, C, H, W = x.shape
    H_out, W_out = size
    y = np.empty((N, C, H_out, W_out), dtype=x.dtype)
    for i in range(H_out):
        for j in range(W_out):
            y[:, :, i, j] = x[:, :, _nearest_source(i, H, H_out, scales[0]), _nearest_source(j, W, W_out, scales[1])]
    return y


def upsample_nearest_backward_loops(dy, x_shape, scales=(None, None)):
    """Backward of nearest resizing: every ``dy[i, j]`` is added to the one input pixel that output read."""
    N, C, H, W = x_shape
    H_out, W_out = dy.shape[2:]
    dx = np.zeros(x_shape, dtype=dy.dtype)
    for i in range(H_out):
        for j in range(W_out):
            dx[:, :, _nearest_source(i, H, H_out, scales[0]), _nearest_source(j, W, W_out, scales[1])] += dy[:, :, i, j]
    return dx


# --------------------------------------------------------------------------- adaptive pooling

def _adaptive_bin(i, in_size, out_size):
    """Rows ``start .. end - 1`` of adaptive bin ``i``: ``start = floor(i*in/out)``, ``end = ceil((i+1)*in/out)``."""
    start = (i * in_size) // out_size
    end = ((i + 1) * in_size + out_size - 1) // out_size
    return start, end


def adaptive_avg_pool2d_loops(x, output_size):
    """Adaptive average pooling bin by bin: the sum over each bin divided by the number of its pixels.

    Returns
    -------
    y : (N, C, H_out, W_out), ``output_size = (H_out, W_out)``
    """
    N, C, H, W = x.shape
    H_out, W_out = output_size
    y = np.empty((N, C, H_out, W_out), dtype=x.dtype)
    for n in range(N):
        for c in range(C):
            for i in range(H_out):
                h0, h1 = _adaptive_bin(i, H, H_out)
                for j in range(W_out):
                    w0, w1 = _adaptive_bin(j, W, W_out)
                    total = 0.0
                    for h in range(h0, h1):
                        for w in range(w0, w1):
                            total += x[n, c, h, w]
                    y[n, c, i, j] = total / ((h1 - h0) * (w1 - w0))
    return y


def adaptive_avg_pool2d_backward_loops(dy, x_shape):
    """Gradient of adaptive average pooling: every pixel of a bin gets ``dy / (bin area)``, added where bins overlap."""
    N, C, H, W = x_shape
    _, _, H_out, W_out = dy.shape
    dx = np.zeros(x_shape, dtype=dy.dtype)
    for n in range(N):
        for c in range(C):
            for i in range(H_out):
                h0, h1 = _adaptive_bin(i, H, H_out)
                for j in range(W_out):
                    w0, w1 = _adaptive_bin(j, W, W_out)
                    share = dy[n, c, i, j] / ((h1 - h0) * (w1 - w0))
                    for h in range(h0, h1):
                        for w in range(w0, w1):
                            dx[n, c, h, w] += share
    return dx


def adaptive_max_pool2d_loops(x, output_size):
    """Adaptive max pooling bin by bin, as PyTorch's CPU kernel scans it.

    The running maximum starts at ``-inf`` with the index of the bin's first
    pixel; a pixel takes over when it is strictly larger or NaN, so the first
    maximum in row-major order wins and the last NaN propagates.

    Returns
    -------
    y : (N, C, H_out, W_out); indices : (N, C, H_out, W_out) int64, flat ``h*W + w`` in each plane
    """
    N, C, H, W = x.shape
    H_out, W_out = output_size
    y = np.empty((N, C, H_out, W_out), dtype=x.dtype)
    indices = np.empty((N, C, H_out, W_out), dtype=np.int64)
    for n in range(N):
        for c in range(C):
            for i in range(H_out):
                h0, h1 = _adaptive_bin(i, H, H_out)
                for j in range(W_out):
                    w0, w1 = _adaptive_bin(j, W, W_out)
                    best, best_index = -np.inf, h0 * W + w0
                    for h in range(h0, h1):
                        for w in range(w0, w1):
                            val = x[n, c, h, w]
                            if val > best or np.isnan(val):
                                best, best_index = val, h * W + w
                    y[n, c, i, j], indices[n, c, i, j] = best, best_index
    return y, indices


def adaptive_max_pool2d_backward_loops(dy, indices, x_shape):
    """Gradient of adaptive max pooling: each bin's dy is added to the pixel its maximum came from.

    The same scatter as max-pooling's (every bin's index lies inside the plane).
    """
    return max_pool2d_backward_loops(dy, indices, x_shape)


# --------------------------------------------------------------------------- layers' math

def softmax_loops(x, axis=1):
    """Softmax along ``axis`` by its definition: ``y_k = exp(x_k - m) / sum_j exp(x_j - m)``, ``m = max_j x_j``.

    Parameters
    ----------
    x : any shape; axis : int

    Returns
    -------
    y : shape of x
    """
    x = np.asarray(x)
    moved = np.moveaxis(x, axis, -1)  # (..., K): the softmax axis last
    y = np.zeros(moved.shape, dtype=x.dtype)
    for idx in np.ndindex(*moved.shape[:-1]):
        row = moved[idx]
        m = max(row)
        e = [np.exp(v - m) for v in row]
        total = sum(e)
        for k in range(len(row)):
            y[idx + (k,)] = e[k] / total
    return np.moveaxis(y, -1, axis)


def cross_entropy_loops(logits, target, weight=None, ignore_index=-100, reduction="mean"):
    """Per-pixel softmax cross-entropy by its definition, PyTorch's ``F.cross_entropy``.

    ``loss_i = -w[t_i] log softmax(logits_i)[t_i]`` at every pixel ``i`` whose
    target is not ``ignore_index`` (0 elsewhere); "mean" divides the sum by
    ``sum_i w[t_i]`` over those pixels, "sum" does not, "none" returns the map.

    Parameters
    ----------
    logits : (N, C, H, W); target : (N, H, W) int; weight : (C,) or None

    Returns
    -------
    loss : float for "mean" / "sum", (N, H, W) for "none"
    """
    N, C, H, W = logits.shape
    per_pixel = np.zeros((N, H, W), dtype=logits.dtype)
    total, den = 0.0, 0.0
    for n in range(N):
        for i in range(H):
            for j in range(W):
                t = int(target[n, i, j])
                if t == ignore_index:
                    continue
                scores = [float(logits[n, c, i, j]) for c in range(C)]
                m = max(scores)
                log_sum = m + np.log(sum(np.exp(s - m) for s in scores))
                w_t = 1.0 if weight is None else float(weight[t])
                per_pixel[n, i, j] = w_t * (log_sum - scores[t])
                total += per_pixel[n, i, j]
                den += w_t
    if reduction == "none":
        return per_pixel
    if reduction == "sum":
        return total
    return total / den if den else float("nan")


def cross_entropy_backward_loops(logits, target, weight=None, ignore_index=-100, reduction="mean", dloss=1.0):
    """Gradient of ``cross_entropy_loops`` with respect to the logits, pixel by pixel.

    ``dlogits[n, c, i, j] = w[t] (p_c - [c == t]) * g / D`` at a pixel with
    target ``t != ignore_index``, 0 at ignored pixels; ``p = softmax`` of the
    pixel's scores, ``g`` the upstream gradient (a scalar, or the pixel's
    entry of the (N, H, W) map for "none") and ``D = sum w[t]`` for "mean"
    (1 otherwise).

    Returns
    -------
    dlogits : (N, C, H, W)
    """
    N, C, H, W = logits.shape
    dx = np.zeros(logits.shape, dtype=logits.dtype)
    den = 1.0
    if reduction == "mean":
        den = sum(1.0 if weight is None else float(weight[int(t)]) for t in target.reshape(-1) if t != ignore_index)
    for n in range(N):
        for i in range(H):
            for j in range(W):
                t = int(target[n, i, j])
                if t == ignore_index:
                    continue
                scores = [float(logits[n, c, i, j]) for c in range(C)]
                m = max(scores)
                e = [np.exp(s - m) for s in scores]
                w_t = 1.0 if weight is None else float(weight[t])
                g = float(dloss[n, i, j]) if reduction == "none" else float(dloss)
                for c in range(C):
                    dx[n, c, i, j] = w_t * (e[c] / sum(e) - (c == t)) * g / den
    return dx


def batch_norm2d_loops(x, gamma, beta, eps=1e-5, mean=None, var=None):
    """Batch normalisation by its definition, one channel at a time.

    Training mode (``mean``, ``var`` None): each channel's mean and biased
    variance over its ``M = N H W`` values; evaluation mode: the given
    running statistics. ``y = gamma_c (x - mean_c) / sqrt(var_c + eps) + beta_c``.

    Parameters
    ----------
    x : (N, C, H, W); gamma, beta : (C,); mean, var : (C,) or None

    Returns
    -------
    y : (N, C, H, W)
    """
    N, C, H, W = x.shape
    y = np.zeros(x.shape, dtype=x.dtype)
    for c in range(C):
        values = [x[n, c, i, j] for n in range(N) for i in range(H) for j in range(W)]
        if mean is None:
            mu = sum(values) / len(values)
            sigma2 = sum((v - mu) ** 2 for v in values) / len(values)
        else:
            mu, sigma2 = mean[c], var[c]
        for n in range(N):
            for i in range(H):
                for j in range(W):
                    y[n, c, i, j] = gamma[c] * (x[n, c, i, j] - mu) / np.sqrt(sigma2 + eps) + beta[c]
    return y


def batch_norm2d_backward_loops(dy, x, gamma, eps=1e-5):
    """Gradients of training-mode ``batch_norm2d_loops``, from the Jacobian entry by entry.

    With ``xhat_k = (x_k - mu) / s``, ``s = sqrt(var + eps)`` over a channel's
    ``M`` values, ``d xhat_k / d x_m = ([k == m] - 1/M - xhat_k xhat_m / M) / s``,
    so ``dx_m = sum_k dy_k gamma d xhat_k / d x_m``: the double sum, written out.

    Returns
    -------
    dx : (N, C, H, W); dgamma, dbeta : (C,)
    """
    N, C, H, W = x.shape
    dx = np.zeros(x.shape, dtype=x.dtype)
    dgamma, dbeta = np.zeros(C, dtype=x.dtype), np.zeros(C, dtype=x.dtype)
    positions = [(n, i, j) for n in range(N) for i in range(H) for j in range(W)]
    M = len(positions)
    for c in range(C):
        values = [x[n, c, i, j] for n, i, j in positions]
        mu = sum(values) / M
        s = np.sqrt(sum((v - mu) ** 2 for v in values) / M + eps)
        xhat = [(v - mu) / s for v in values]
        g = [dy[n, c, i, j] for n, i, j in positions]
        dbeta[c] = sum(g)
        dgamma[c] = sum(g[k] * xhat[k] for k in range(M))
        for m, (n, i, j) in enumerate(positions):
            dx[n, c, i, j] = sum(g[k] * gamma[c] * ((k == m) - 1 / M - xhat[k] * xhat[m] / M) / s for k in range(M))
    return dx, dgamma, dbeta


def l2_normalize_loops(x, eps=1e-12):
    """Per-pixel L2 normalisation over the channels: ``y[:, :, i, j] = x[:, :, i, j] / max(||x[:, :, i, j]||, eps)``.

    Returns
    -------
    y : (N, C, H, W)
    """
    N, C, H, W = x.shape
    y = np.zeros(x.shape, dtype=x.dtype)
    for n in range(N):
        for i in range(H):
            for j in range(W):
                norm = np.sqrt(sum(x[n, c, i, j] ** 2 for c in range(C)))
                for c in range(C):
                    y[n, c, i, j] = x[n, c, i, j] / max(norm, eps)
    return y


def global_avg_pool2d_loops(x):
    """Global average pooling: ``y[n, c, 0, 0] = (1 / (H W)) sum_{i, j} x[n, c, i, j]``.

    Returns
    -------
    y : (N, C, 1, 1)
    """
    N, C, H, W = x.shape
    y = np.zeros((N, C, 1, 1), dtype=x.dtype)
    for n in range(N):
        for c in range(C):
            y[n, c, 0, 0] = sum(x[n, c, i, j] for i in range(H) for j in range(W)) / (H * W)
    return y

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

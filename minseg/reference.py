"""Slow loop versions of minseg's ops, written to be read.

Each function here computes exactly what the fast op in ``minseg.ops``
computes, straight from the definition, with explicit loops and no tricks.
The tests check the fast ops against these; a learner can read them side by
side with the fast versions. They are far too slow for real sizes.
"""
from __future__ import annotations

import numpy as np

from .shapes import conv_output_size, pair

__all__ = ["conv2d_loops", "conv2d_backward_loops"]


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

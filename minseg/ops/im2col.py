"""Unrolling receptive fields into columns and back: ``im2col``, its adjoint ``col2im``, and "wide rows".

``im2col`` copies every receptive field of ``x`` into one column of a matrix
``cols`` of shape ``(C*KH*KW, N*H_out*W_out)``, rows ordered ``(c, kh, kw)``
like ``w.reshape(C_out, -1)``, so a convolution becomes one matrix product
(``conv.py``). ``col2im`` adds every column back onto the pixels it came
from; as matrices it is the transpose of ``im2col``, which makes it the
backward pass of im2col and, applied to ``w_mat.T @ x``, a transposed
convolution (``conv_transpose.py``).

Both are one strided slice per kernel tap ``(kh, kw)``, never index arrays;
taps that read padding write zeros without a padded copy of ``x``.

At stride 1 the "wide rows" variants (``_wide_rows``, ``_wide_im2col``,
``_wide_col2im``) make each tap's row of the column matrix one contiguous run
of memory; see the comment above them.

References
----------
K. Chellapilla, S. Puri, P. Simard, "High Performance Convolutional Neural
Networks for Document Processing", 2006 (the im2col unrolling).
"""
from __future__ import annotations

from ..backend import get_array_module
from ..shapes import check_ndim, check_nonnegative, check_positive, conv_output_size, pair, steps

__all__ = ["im2col", "col2im"]


# --------------------------------------------------------------------------- im2col / col2im

def _tap_range(out_size: int, offset: int, stride: int, in_size: int):
    """Output positions ``o`` whose input position ``o*stride + offset`` lies inside ``[0, in_size)``.

    ``offset = k*d - p`` for kernel tap ``k``. Returns ``(o_lo, o_hi)``; the
    input positions are then ``o_lo*stride + offset, ..., (o_hi-1)*stride + offset``.
    Outside that range the tap reads padding (zeros).
    """
    o_lo = max(0, (-offset + stride - 1) // stride)               # ceil(-offset / stride)
    o_hi = min(out_size, (in_size - 1 - offset) // stride + 1)     # last o with o*s + offset <= in_size - 1
    return o_lo, max(o_lo, o_hi)


def _check_geometry(op, H, W, kernel_size, stride, padding, dilation):
    """Normalise (kernel, stride, padding, dilation) to pairs and return them with (H_out, W_out)."""
    KH, KW = check_positive(pair(kernel_size, "kernel_size", op), "kernel_size", op)
    sh, sw = check_positive(pair(stride, "stride", op), "stride", op)
    ph, pw = check_nonnegative(pair(padding, "padding", op), "padding", op)
    dil_h, dil_w = check_positive(pair(dilation, "dilation", op), "dilation", op)
    H_out = conv_output_size(H, KH, sh, ph, dil_h)
    W_out = conv_output_size(W, KW, sw, pw, dil_w)
    if H_out < 1 or W_out < 1:
        raise ValueError(
            f"{op}: expected the dilated kernel ({dil_h * (KH - 1) + 1}, {dil_w * (KW - 1) + 1}) to fit in the "
            f"padded input ({H + 2 * ph}, {W + 2 * pw}), got output size ({H_out}, {W_out})"
        )
    return (KH, KW), (sh, sw), (ph, pw), (dil_h, dil_w), (H_out, W_out)


def im2col(x, kernel_size, stride=1, padding=0, dilation=1, *, out=None):
    """Unroll every receptive field of ``x`` into a column.

    Parameters
    ----------
    x : ndarray, shape (N, C, H, W)
    kernel_size, stride, padding, dilation : int or (int, int)
    out : ndarray, optional
        A buffer of shape (C*KH*KW, N*H_out*W_out) to write into.

    Returns
    -------
    cols : ndarray, shape (C*KH*KW, N*H_out*W_out)
        ``cols[(c*KH + kh)*KW + kw, (n*H_out + i)*W_out + j] =
        x_pad[n, c, i*s_h + kh*d_h, j*s_w + kw*d_w]`` with zero padding.
        Rows are ordered like ``w.reshape(C_out, -1)``.

    Notes
    -----
    One strided copy per kernel tap; positions that fall in the padding are
    set to zero without materialising a padded copy of ``x``.
    """
    op = "im2col"
    check_ndim(x, 4, "x", op, "N, C, H, W")
    N, C, H, W = x.shape
    (KH, KW), (sh, sw), (ph, pw), (dil_h, dil_w), (H_out, W_out) = _check_geometry(
        op, H, W, kernel_size, stride, padding, dilation)
    xp = get_array_module(x, out)
    if out is None:
        out = xp.empty((C * KH * KW, N * H_out * W_out), dtype=x.dtype)
    cols = out.reshape(C, KH, KW, N, H_out, W_out)  # (C, KH, KW, N, H_out, W_out), a view of out
    x_t = x.transpose(1, 0, 2, 3)  # (C, N, H, W), a view
    for kh in range(KH):
        i_lo, i_hi = _tap_range(H_out, kh * dil_h - ph, sh, H)
        h0 = i_lo * sh + kh * dil_h - ph
        for kw in range(KW):
            j_lo, j_hi = _tap_range(W_out, kw * dil_w - pw, sw, W)
            w0 = j_lo * sw + kw * dil_w - pw
            tap = cols[:, kh, kw]  # (C, N, H_out, W_out), a view
            if i_lo > 0 or i_hi < H_out or j_lo > 0 or j_hi < W_out:
                tap[...] = 0  # the padding this tap reads
            if i_hi > i_lo and j_hi > j_lo:
                tap[:, :, i_lo:i_hi, j_lo:j_hi] = x_t[:, :, steps(h0, i_hi - i_lo, sh), steps(w0, j_hi - j_lo, sw)]
    return out


def col2im(cols, x_shape, kernel_size, stride=1, padding=0, dilation=1, *, out=None):
    """The adjoint of ``im2col``: add every column back onto the pixels it came from.

    Parameters
    ----------
    cols : ndarray, shape (C*KH*KW, N*H_out*W_out)
    x_shape : (N, C, H, W)
    kernel_size, stride, padding, dilation : int or (int, int)
    out : ndarray of shape x_shape, optional
        Written (not accumulated into).

    Returns
    -------
    x : ndarray, shape (N, C, H, W)
        ``x[n, c, h, w] = sum of cols[(c, kh, kw), (n, i, j)]`` over all
        ``(kh, kw, i, j)`` with ``i*s_h + kh*d_h - p_h == h`` and
        ``j*s_w + kw*d_w - p_w == w``; values that fall in the padding are dropped.
        ``<im2col(x), cols> == <x, col2im(cols)>``.
    """
    op = "col2im"
    N, C, H, W = (int(v) for v in x_shape)
    (KH, KW), (sh, sw), (ph, pw), (dil_h, dil_w), (H_out, W_out) = _check_geometry(
        op, H, W, kernel_size, stride, padding, dilation)
    expected = (C * KH * KW, N * H_out * W_out)
    if tuple(cols.shape) != expected:
        raise ValueError(f"{op}: expected cols of shape {expected}, got shape {tuple(cols.shape)}")
    xp = get_array_module(cols, out)
    if out is None:
        out = xp.empty((N, C, H, W), dtype=cols.dtype)
    out[...] = 0
    cols6 = cols.reshape(C, KH, KW, N, H_out, W_out)  # (C, KH, KW, N, H_out, W_out)
    out_t = out.transpose(1, 0, 2, 3)  # (C, N, H, W), a view
    for kh in range(KH):
        i_lo, i_hi = _tap_range(H_out, kh * dil_h - ph, sh, H)
        h0 = i_lo * sh + kh * dil_h - ph
        for kw in range(KW):
            j_lo, j_hi = _tap_range(W_out, kw * dil_w - pw, sw, W)
            w0 = j_lo * sw + kw * dil_w - pw
            if i_hi > i_lo and j_hi > j_lo:
                # one tap touches each input pixel at most once: a plain += is exact here
                out_t[:, :, steps(h0, i_hi - i_lo, sh), steps(w0, j_hi - j_lo, sw)] += \
                    cols6[:, kh, kw, :, i_lo:i_hi, j_lo:j_hi]
    return out


# --------------------------------------------------------------------------- stride 1: "wide rows"
#
# At stride 1, tap (kh, kw) of output pixel (i, j) reads the padded input at row i + kh*d_h and
# column j + kw*d_w. Flatten each padded image (Hp, Wp) = (H + 2 p_h, W + 2 p_w) row after row:
# that pixel is x_flat[q + start] with q = i*Wp + j and start = kh*d_h*Wp + kw*d_w. If the output
# is computed at *every* q = 0, 1, ..., H_out*Wp - 1, i.e. on rows Wp wide instead of W_out wide,
# then one tap's row of the column matrix is the single contiguous slice
#
#     x_flat[start : start + H_out*Wp]
#
# The Wp - W_out extra outputs at the end of each row read pixels wrapped around from the next row:
# they are meaningless and dropped from y, and in the backward pass their gradient is set to zero,
# so they add exactly nothing to dx or dw. One extra zero row below the padded image keeps the
# slice of the last tap inside the image.

def _wide_rows(x, padding, out=None):
    """Zero-pad ``x`` for the wide-row unrolling and flatten each image.

    Returns ``(N, C, (H + 2 p_h + 1) * (W + 2 p_w))``: ``x`` at rows ``p_h ...`` and columns
    ``p_w ...`` of a zero image ``(H + 2 p_h + 1, W + 2 p_w)`` (padding, plus one extra zero row).
    ``out``, optional, is scratch of at least that many elements to write it into.
    """
    xp = get_array_module(x)
    N, C, H, W = x.shape
    ph, pw = padding
    shape = (N, C, H + 2 * ph + 1, W + 2 * pw)
    if out is None:
        x_pad = xp.zeros(shape, dtype=x.dtype)
    else:
        x_pad = out.reshape(-1)[:N * C * shape[2] * shape[3]].reshape(shape)
        x_pad[:, :, :ph] = 0
        x_pad[:, :, ph + H:] = 0
        x_pad[:, :, ph:ph + H, :pw] = 0
        x_pad[:, :, ph:ph + H, pw + W:] = 0
    x_pad[:, :, ph:ph + H, pw:pw + W] = x
    return x_pad.reshape(N, C, -1)  # (N, C, (Hp+1)*Wp)


def _wide_im2col(x_rows, kernel_size, dilation, row, H_out, out, offset=0):
    """im2col at stride 1 on wide rows: ``out[(c, kh, kw), (n, q)] = x_rows[n, c, offset + q + kh*d_h*row + kw*d_w]``.

    x_rows : (n, C, F) from ``_wide_rows``; ``row`` is its padded width Wp.
    out : (C*KH*KW, n*H_out*row), written; one contiguous copy per (tap, channel, sample).
    offset : where the first output row starts in each flattened image (0 for a convolution;
        ``conv._conv2d_backward_as_conv`` starts at the first unpadded row).
    """
    (KH, KW), (dil_h, dil_w) = kernel_size, dilation
    n, C, _ = x_rows.shape
    L = H_out * row
    cols = out.reshape(C, KH, KW, n, L)  # (C, KH, KW, n, H_out*Wp), a view of out
    x_t = x_rows.transpose(1, 0, 2)  # (C, n, F), a view
    for kh in range(KH):
        for kw in range(KW):
            start = offset + kh * dil_h * row + kw * dil_w
            cols[:, kh, kw] = x_t[:, :, start:start + L]
    return out


def _wide_col2im(cols, kernel_size, dilation, row, H_out, out):
    """The adjoint of ``_wide_im2col``: ``out[n, c, q + kh*d_h*row + kw*d_w] += cols[(c, kh, kw), (n, q)]``.

    out : (n, C, F) wide rows, *accumulated into* (start from zeros).
    """
    (KH, KW), (dil_h, dil_w) = kernel_size, dilation
    n, C, _ = out.shape
    L = H_out * row
    cols5 = cols.reshape(C, KH, KW, n, L)  # (C, KH, KW, n, H_out*Wp)
    out_t = out.transpose(1, 0, 2)  # (C, n, F), a view
    for kh in range(KH):
        for kw in range(KW):
            start = kh * dil_h * row + kw * dil_w
            # within one tap the slice touches each element once: a plain += is exact here
            out_t[:, :, start:start + L] += cols5[:, kh, kw]
    return out

"""2-D convolution (plain, strided, padded, dilated, grouped, depthwise) as im2col + one matrix product.

"Convolution" here is cross-correlation, as in every deep-learning framework:

    y[n, o, i, j] = b[o] + sum_{c, kh, kw} w[o, c, kh, kw] * x_pad[n, g(o)*C_g + c, i*s_h + kh*d_h, j*s_w + kw*d_w]

where ``g(o)`` is the group of output channel ``o`` and ``x_pad`` is ``x``
with ``p`` zeros on each side. Output size per axis (PyTorch's
``torch.nn.Conv2d``):

    H_out = floor((H + 2 p - d (k - 1) - 1) / s) + 1

How it is computed
------------------
``im2col`` copies every receptive field of the input into one column of a
matrix ``cols`` of shape ``(C*KH*KW, N*H_out*W_out)``; the rows are ordered
``(c, kh, kw)`` exactly like ``w.reshape(C_out, -1)``, so the convolution is
the single matrix product ``w.reshape(C_out, -1) @ cols``.

The backward pass is two more products and the adjoint of im2col:

    dw    = dy_mat @ cols.T            (C_out, C*KH*KW)
    dcols = w_mat.T @ dy_mat           (C*KH*KW, N*H_out*W_out)
    dx    = col2im(dcols)              sums every column back onto the pixels it was copied from

``col2im`` is the transpose of ``im2col`` (as matrices), so ``dx`` is
``C.T @ dy`` for the convolution matrix ``C`` (see ``conv_matrix``).

Paths, one rule
---------------
``conv2d`` and ``conv2d_backward`` validate, then run one of these private
functions, picked in one place, ``_paths``:

- the **plain path**, ``_conv2d_plain`` / ``_conv2d_backward_plain``: exactly
  the formulas above, a few lines each. ``im2col`` and ``col2im``
  (``im2col.py``) are one strided slice per kernel tap ``(kh, kw)``, never
  index arrays.
- the **wide-rows path**, ``_conv2d_wide`` / ``_conv2d_backward_wide``, at
  stride 1 when ``C*KH*KW >= C_out`` (``_use_wide_rows``; most 3x3
  convolutions): the input is zero-padded once and the output computed on
  rows as wide as the padded input, which turns every copy of im2col and every
  addition of col2im into one long contiguous run of memory (about twice as
  fast as the strided slices); the few extra outputs per row are dropped.
- **row taps**, ``_conv2d_row_taps``, the wide-rows forward at stride 1 when
  ``C_out <= 2 C`` on images at least 8 times taller than the kernel's reach
  (``_use_row_taps``): a kernel row ``kh`` reads the same wide rows ``kh*d_h``
  rows further on, so only the ``KW`` taps of one kernel row are copied and
  the ``KH`` kernel rows are one product whose ``KH`` row blocks are summed at
  their shifts. A third of the copies for two more passes over the output:
  0.5-0.85x the time of wide rows on the U-Net's 3x3 convolutions at 16^2 and up.
- the **dy-columns backward**, ``_conv2d_backward_as_conv``, at stride 1 when
  ``C_out <= C`` (``_use_dy_columns``): the backward of a stride-1 convolution
  is itself a convolution, of ``dy`` zero-padded by the kernel's reach with
  the kernel flipped and its two channel axes swapped (Dumoulin & Visin,
  section 4). So ``dx`` is im2col of ``dy`` and one product, with no col2im,
  and ``dw`` is the product of the same columns with ``x``: a third fewer
  copies, and 1.3-1.9x faster where ``C_out = C / 2``.

All run over the batch in chunks (``shapes.chunk_size``) so the column
buffer stays a few megabytes and is reused: it is the only large temporary,
and it is recomputed in the backward pass rather than kept in the cache. The
tests force each path and compare it with the loops in ``minseg.reference``
and with PyTorch.

References
----------
V. Dumoulin and F. Visin, "A guide to convolution arithmetic for deep
learning", arXiv:1603.07285, 2016.
K. Chellapilla, S. Puri, P. Simard, "High Performance Convolutional Neural
Networks for Document Processing", 2006 (the im2col unrolling).
"""
from __future__ import annotations

from typing import NamedTuple

from ..backend import get_array_module, workspace
from ..shapes import check_bias, check_conv_operands, check_shape, chunk_size, conv_output_size
from .im2col import _check_geometry, _wide_col2im, _wide_im2col, _wide_rows, col2im, im2col

__all__ = ["conv2d", "conv2d_backward", "Conv2dCache", "im2col", "col2im"]


class Conv2dCache(NamedTuple):
    """What ``conv2d_backward`` needs from the forward pass.

    Fields
    ------
    x : (N, C, H, W) input
    w : (C_out, C // groups, KH, KW) weights
    has_bias : bool, whether a bias was given (then ``db`` is returned)
    stride, padding, dilation : (int, int) each
    groups : int
    """

    x: object
    w: object
    has_bias: bool
    stride: tuple
    padding: tuple
    dilation: tuple
    groups: int


# --------------------------------------------------------------------------- conv2d

def _check_conv_args(op, x, w, b, stride, padding, dilation, groups):
    """Validate conv2d's arguments; return the normalised hyper-parameters and output size."""
    check_conv_operands(x, w, b, groups, op, "N, C, H, W", "C_out, C_in // groups, KH, KW")
    N, C, H, W = x.shape
    C_out, C_g, KH, KW = w.shape
    if C % groups:
        raise ValueError(f"{op}: expected input channels C divisible by groups={groups}, got C={C}")
    if C_out % groups:
        raise ValueError(f"{op}: expected output channels C_out divisible by groups={groups}, got C_out={C_out}")
    if C_g * groups != C:
        raise ValueError(f"{op}: expected w.shape[1] == C // groups = {C // groups} "
                         f"(x has C={C}, groups={groups}), got w of shape {tuple(w.shape)}")
    check_bias(b, C_out, x.dtype, op)
    _, s, p, d, out_hw = _check_geometry(op, H, W, (KH, KW), stride, padding, dilation)
    return s, p, d, out_hw


def _use_wide_rows(stride, K, C_out) -> bool:
    """Whether to unroll wide rows (``_wide_im2col``): at stride 1, when the columns are at least as tall as the output.

    Wide rows make the K = C*KH*KW rows of columns cheaper to build and to add back, but the
    C_out rows of the output and of its gradient are then copied out of (and into) rows with
    a few extra entries at the end, which is slower than a plain transpose: a net gain only
    when K >= C_out (every 3x3 convolution that does not widen the channels more than 9x).
    """
    return stride == (1, 1) and K >= C_out


def _chunks(N: int, bytes_per_sample: int):
    """``(n0, n1)`` sample ranges whose column matrices are each about ``CHUNK_BYTES`` (see ``shapes.chunk_size``)."""
    nc = chunk_size(N, bytes_per_sample)
    return [(n0, min(N, n0 + nc)) for n0 in range(0, N, nc)], nc


def _as_cols(buf, rows, cols=-1):
    """A flat scratch vector ``buf`` as the (rows, cols) column matrix, or None (then im2col allocates)."""
    return None if buf is None else buf[:rows * cols if cols > 0 else None].reshape(rows, cols)


def _scratch_per_sample(path, x_shape, w_shape, stride, padding, dilation) -> int:
    """Elements of scratch one sample needs on ``path``: its column matrix, and what the path keeps beside it.

    The drivers cut the batch into chunks of about ``CHUNK_BYTES`` of it and hand each chunk a
    slice of one reused ``workspace``.
    """
    if path is _conv2d_wide:
        return _wide_scratch(1, x_shape, w_shape, padding, dilation)
    if path is _conv2d_row_taps:
        return _row_taps_scratch(1, x_shape, w_shape, padding, dilation)
    if path is _conv2d_backward_as_conv:
        return _as_conv_scratch(1, x_shape, w_shape, padding, dilation)
    (_, C, H, W), (_, _, KH, KW) = x_shape, w_shape
    H_out, W_out = (conv_output_size(n, k, s, p, d) for n, k, s, p, d in
                    zip((H, W), (KH, KW), stride, padding, dilation))
    if path is _conv2d_backward_wide:
        W_out = W + 2 * padding[1]                                             # columns on wide rows
    return C * KH * KW * H_out * W_out


# --------------------------------------------------------------------------- the plain path

def _conv2d_plain(x, w, stride, padding, dilation, groups, buf=None):
    """im2col, then one matrix product per group: ``y = w_mat @ cols``. x: (n, C, H, W) -> (n, C_out, H_out, W_out)."""
    xp = get_array_module(x, w)
    n, (C_out, C_g, KH, KW) = x.shape[0], w.shape
    K = C_g * KH * KW
    cols = im2col(x, (KH, KW), stride, padding, dilation, out=_as_cols(buf, x.shape[1] * KH * KW))  # (C*KH*KW, n*L)
    H_out, W_out = (conv_output_size(x.shape[2 + a], w.shape[2 + a], stride[a], padding[a], dilation[a]) for a in (0, 1))
    y = xp.matmul(w.reshape(groups, C_out // groups, K), cols.reshape(groups, K, -1))  # (G, C_out/G, n*H_out*W_out)
    return y.reshape(C_out, n, H_out, W_out).transpose(1, 0, 2, 3)             # (n, C_out, H_out, W_out)


def _conv2d_backward_plain(dy, x, w, stride, padding, dilation, groups, buf=None, dx_out=None):
    """The plain backward: ``dw = dy_mat @ cols.T``, ``dx = col2im(w_mat.T @ dy_mat)``.

    dy: (n, C_out, H_out, W_out), x: (n, C, H, W) -> ``dx`` (n, C, H, W) and ``dw`` (C_out, C/G, KH, KW).
    ``dx_out``, optional, is where ``dx`` is written.
    """
    xp = get_array_module(dy, x)
    n, (C_out, C_g, KH, KW) = x.shape[0], w.shape
    G, K = groups, C_g * KH * KW
    cols = im2col(x, (KH, KW), stride, padding, dilation, out=_as_cols(buf, G * K)).reshape(G, K, -1)  # (G, K, n*L)
    dy_mat = dy.transpose(1, 0, 2, 3).reshape(G, C_out // G, -1)               # (G, C_out/G, n*H_out*W_out)
    # dw = dy_mat @ cols.T, computed as its transpose cols @ dy_mat.T: with the long n*L axis as the
    # reduction of a tall matrix, BLAS runs this several times faster when C_out is small
    dw_t = xp.matmul(cols, dy_mat.transpose(0, 2, 1))                          # (G, K, C_out/G)
    w_mat_T = w.reshape(G, C_out // G, K).transpose(0, 2, 1)                   # (G, K, C_out/G)
    dcols = xp.matmul(w_mat_T, dy_mat, out=cols).reshape(G * K, -1)            # (C*KH*KW, n*L), reusing cols
    dx = col2im(dcols, x.shape, (KH, KW), stride, padding, dilation, out=dx_out)  # (n, C, H, W)
    return dx, dw_t.transpose(0, 2, 1).reshape(w.shape)                       # dw: (C_out, C/G, KH, KW)


# --------------------------------------------------------------------------- the wide-rows path (stride 1)

def _conv2d_wide(x, w, stride, padding, dilation, groups, buf=None):
    """The plain path on wide rows (stride 1): one contiguous copy per tap, the extra outputs dropped.

    ``buf``, optional, is a scratch vector of at least ``_wide_scratch(...)`` elements; the product
    is written there too, so the caller must copy the returned view out before the next call.
    """
    xp = get_array_module(x, w)
    (n, C, H, W), (C_out, C_g, KH, KW) = x.shape, w.shape
    H_out, W_out = (conv_output_size(H, KH, 1, padding[0], dilation[0]), conv_output_size(W, KW, 1, padding[1], dilation[1]))
    R = W + 2 * padding[1]                                                     # width of a wide output row
    K = C_g * KH * KW
    L = H_out * R
    if buf is None:
        buf = xp.empty(_wide_scratch(n, x.shape, w.shape, padding, dilation), dtype=x.dtype)
    n_cols, n_y = C * KH * KW * n * L, C_out * n * L                           # scratch: columns, product, padded x
    cols, y, rows = buf[:n_cols], buf[n_cols:n_cols + n_y], buf[n_cols + n_y:]
    cols = _wide_im2col(_wide_rows(x, padding, out=rows), (KH, KW), dilation, R, H_out, cols)  # (C*KH*KW, n*L)
    y = y.reshape(groups, C_out // groups, n * L)                              # (G, C_out/G, n*H_out*R)
    xp.matmul(w.reshape(groups, C_out // groups, K), cols.reshape(groups, K, -1), out=y)
    y = y.reshape(C_out, n, H_out, R)[..., :W_out]                             # (C_out, n, H_out, W_out), extra outputs dropped
    return y.transpose(1, 0, 2, 3)                                             # (n, C_out, H_out, W_out)


def _conv2d_row_taps(x, w, stride, padding, dilation, groups, buf=None):
    """Wide rows with the columns of one kernel row only: KW taps copied, KH products summed (stride 1).

    Every kernel row ``kh`` reads the same wide rows, ``kh*d_h`` image rows further on. So the
    columns are built for the ``KW`` taps of one kernel row, over all ``H_out + (KH-1) d_h``
    padded rows (``cols[(c, kw), (n, q)] = x_rows[n, c, q + kw*d_w]``), and each kernel row is
    a product whose output is read at a shift of ``kh*d_h*R`` columns:

        P[kh] = w[:, :, kh, :] @ cols               all KH kernel rows in one product (KH*C_out rows)
        y[o, q] = sum over kh of  P[kh][o, q + kh*d_h*R]

    ``KH`` times fewer copies than ``_conv2d_wide``, for ``KH - 1`` more passes over the
    output (C_out rows) and ``(KH-1) d_h`` wasted rows per sample: faster when ``C_out <= 2 C``
    and the image is tall (``_use_row_taps``). x: (n, C, H, W) -> (n, C_out, H_out, W_out), a view
    into ``buf`` (a scratch vector of at least ``_row_taps_scratch(...)`` elements).
    """
    xp = get_array_module(x, w)
    (n, C, H, W), (C_out, C_g, KH, KW) = x.shape, w.shape
    G, Co_g = groups, C_out // groups
    (ph, pw), (dh, dw_) = padding, dilation
    R, Hp = W + 2 * pw, H + 2 * ph                                             # wide-row width, padded height
    H_out, W_out = Hp - dh * (KH - 1), R - dw_ * (KW - 1)
    L = Hp * R                                                                 # columns per sample: every padded row
    J = n * L - (KH - 1) * dh * R                                              # columns one product reads
    if buf is None:
        buf = xp.empty(_row_taps_scratch(n, x.shape, w.shape, padding, dilation), dtype=x.dtype)
    n_cols, n_p = C * KW * n * L, KH * C_out * n * L                           # scratch: columns, products, padded x
    cols, prods, rows = buf[:n_cols], buf[n_cols:n_cols + n_p], buf[n_cols + n_p:]
    cols = _wide_im2col(_wide_rows(x, padding, out=rows), (1, KW), dilation, R, Hp, cols)  # (C*KW, n*L)
    cols = cols.reshape(G, C_g * KW, n * L)                                    # rows (c, kw) per group
    w_rows = w.reshape(G, Co_g, C_g, KH, KW).transpose(0, 3, 1, 2, 4)          # (G, KH, C_out/G, C/G, KW)
    w_rows = w_rows.reshape(G, KH * Co_g, C_g * KW)                            # rows (kh, o): a copy
    prods = prods.reshape(G, KH * Co_g, n * L)
    xp.matmul(w_rows, cols, out=prods)                                         # every kernel row in one product
    prods = prods.reshape(G, KH, Co_g, n * L)                                  # (G, KH, C_out/G, n*L)
    y = prods[:, 0]                                                            # kernel row 0, summed into in place
    for kh in range(1, KH):
        shift = kh * dh * R                                                    # kernel row kh: dh*kh rows down
        y[:, :, :J] += prods[:, kh, :, shift:shift + J]
    y = y.reshape(C_out, n, Hp, R)[:, :, :H_out, :W_out]                      # extra rows and outputs dropped
    return y.transpose(1, 0, 2, 3)                                             # (n, C_out, H_out, W_out)


def _row_taps_scratch(n, x_shape, w_shape, padding, dilation):
    """Elements of scratch ``_conv2d_row_taps`` uses for ``n`` samples: columns, KH products, padded x."""
    (_, C, H, W) = x_shape
    R, Hp = W + 2 * padding[1], H + 2 * padding[0]
    (C_out, _, KH, KW) = w_shape
    return n * ((C * KW + KH * C_out) * Hp * R + C * (Hp + 1) * R)


def _wide_scratch(n, x_shape, w_shape, padding, dilation):
    """Elements of scratch ``_conv2d_wide`` uses for ``n`` samples: columns, product, padded x."""
    (_, C, H, W), (C_out, _, KH, KW) = x_shape, w_shape
    R, Hp = W + 2 * padding[1], H + 2 * padding[0]
    L = (Hp - dilation[0] * (KH - 1)) * R                                     # H_out * R
    return n * ((C * KH * KW + C_out) * L + C * (Hp + 1) * R)


def _conv2d_backward_wide(dy, x, w, stride, padding, dilation, groups, buf=None, dx_out=None):
    """The plain backward on wide rows: dy widened with zeros, ``_wide_col2im``, the padding cropped off."""
    xp = get_array_module(dy, x)
    (n, C, H, W), (C_out, C_g, KH, KW) = x.shape, w.shape
    G, Co_g, K = groups, C_out // groups, C_g * KH * KW
    H_out, W_out = dy.shape[2:]
    R = W + 2 * padding[1]
    L = H_out * R
    x_rows = _wide_rows(x, padding)                                            # (n, C, (Hp+1)*Wp)
    dy_w = xp.empty((C_out, n, H_out, R), dtype=dy.dtype)
    dy_w[..., :W_out] = dy.transpose(1, 0, 2, 3)
    dy_w[..., W_out:] = 0                                                      # the extra outputs get no gradient
    dy_w = dy_w.reshape(G, Co_g, n * L)                                        # (G, C_out/G, n*L)
    cols = _wide_im2col(x_rows, (KH, KW), dilation, R, H_out, _as_cols(buf, C * KH * KW, n * L)).reshape(G, K, n * L)
    dw_t = xp.matmul(cols, dy_w.transpose(0, 2, 1))                            # (G, K, C_out/G), as the plain path
    dcols = xp.matmul(w.reshape(G, Co_g, K).transpose(0, 2, 1), dy_w, out=cols).reshape(C * KH * KW, n * L)
    dx_rows = _wide_col2im(dcols, (KH, KW), dilation, R, H_out, out=xp.zeros_like(x_rows))
    ph, pw = padding
    dx = dx_rows.reshape(n, C, -1, R)[:, :, ph:ph + H, pw:pw + W]               # (n, C, H, W), padding cropped
    if dx_out is not None:
        dx_out[...] = dx
        dx = dx_out
    return dx, dw_t.transpose(0, 2, 1).reshape(w.shape)                       # dw: (C_out, C/G, KH, KW)


def _conv2d_backward_as_conv(dy, x, w, stride, padding, dilation, groups, buf=None, dx_out=None):
    """The backward without col2im: ``dx`` is the convolution of the zero-padded ``dy`` with the
    flipped, transposed kernel, and ``dw`` comes from the same columns of ``dy`` (stride 1).

    On wide rows (row width ``R = W + 2 p_w``, tap shift ``s(kh, kw) = kh d_h R + kw d_w``) the
    forward is ``y[o, q] = sum_{c,k} w[o, c, k] x_rows[c, q + s(k)]``, so with ``g`` = ``dy``
    widened with zeros and shifted right by ``S = s(KH-1, KW-1)``, and the flipped tap
    ``k' = (KH-1-kh, KW-1-kw)`` (for which ``S - s(k) = s(k')``):

        dx_rows[c, p] = sum_{o,k} w[o, c, k] g[o, p + s(k')]         a convolution of g
        dw[o, c, k]   = sum_p x_rows[c, p] g[o, p + s(k')]           the same columns, times x

    Both need ``p`` only on the rows that hold ``x`` (not the padding rows), so one im2col of
    ``g`` (``C_out*KH*KW`` rows) and two products replace im2col of ``x``, the product that
    makes ``dcols`` and the nine-fold scatter-add of col2im. Cheaper when ``C_out <= C``
    (``_use_dy_columns``); the same sums in another order (float64 round-off).

    dy: (n, C_out, H_out, W_out), x: (n, C, H, W) -> ``dx`` (n, C, H, W), ``dw`` (C_out, C/G, KH, KW).
    ``buf`` is a scratch vector of at least ``_as_conv_scratch(...)`` elements.
    """
    xp = get_array_module(dy, x)
    (n, C, H, W), (C_out, C_g, KH, KW) = x.shape, w.shape
    G, Co_g = groups, C_out // groups
    (ph, pw), (dh, dw_) = padding, dilation
    H_out, W_out = dy.shape[2:]
    R = W + 2 * pw                                                             # width of a wide row
    S = (KH - 1) * dh * R + (KW - 1) * dw_                                     # the largest tap shift
    F = S + (H + 2 * ph) * R                                                   # length of one shifted, widened dy
    P = H * R                                                                  # positions of the rows that hold x
    n_cols, n_g = C_out * KH * KW * n * P, C_out * n * F                       # scratch: columns, widened dy, padded x
    buf = xp.empty(_as_conv_scratch(n, x.shape, w.shape, padding, dilation), dtype=dy.dtype) if buf is None else buf
    g = buf[n_cols:n_cols + n_g].reshape(C_out, n, F)                          # dy widened and shifted, zeros around
    g[:, :, :S] = 0
    g[:, :, S + H_out * R:] = 0
    g_rows = g[:, :, S:S + H_out * R].reshape(C_out, n, H_out, R)              # (C_out, n, H_out, R), a view
    g_rows[..., :W_out] = dy.transpose(1, 0, 2, 3)
    g_rows[..., W_out:] = 0                                                    # the extra outputs get no gradient
    cols = _wide_im2col(g.transpose(1, 0, 2), (KH, KW), dilation, R, H, buf[:n_cols], offset=ph * R)
    cols = cols.reshape(G, Co_g * KH * KW, n * P)                              # rows (o, kh', kw'), flipped taps
    x_rows = buf[n_cols + n_g:].reshape(C, n, H, R)                            # x padded to rows of width R
    x_rows[..., :pw] = 0
    x_rows[..., pw + W:] = 0
    x_rows[..., pw:pw + W] = x.transpose(1, 0, 2, 3)
    x_rows = x_rows.reshape(G, C_g, n * P)                                     # (G, C/G, n*P)
    w_flip = w[:, :, ::-1, ::-1].reshape(G, Co_g, C_g, KH * KW)                # taps flipped
    w_flip = w_flip.transpose(0, 2, 1, 3).reshape(G, C_g, Co_g * KH * KW)      # (G, C/G, C_out/G*KH*KW)
    dx_rows = xp.matmul(w_flip, cols).reshape(C, n, H, R)                      # (C, n, H, R)
    dx_out = xp.empty_like(x) if dx_out is None else dx_out
    dx_out[...] = dx_rows[..., pw:pw + W].transpose(1, 0, 2, 3)                # (n, C, H, W), padding cropped
    dw_flip = xp.matmul(cols, x_rows.transpose(0, 2, 1))                       # (G, C_out/G*KH*KW, C/G)
    dw = dw_flip.reshape(C_out, KH, KW, C_g)[:, ::-1, ::-1].transpose(0, 3, 1, 2)  # (C_out, C/G, KH, KW), taps back
    return dx_out, dw


def _as_conv_scratch(n, x_shape, w_shape, padding, dilation):
    """Elements of scratch ``_conv2d_backward_as_conv`` uses for ``n`` samples: columns, widened dy, padded x."""
    (_, C, H, W), (C_out, _, KH, KW) = x_shape, w_shape
    R = W + 2 * padding[1]
    F = (KH - 1) * dilation[0] * R + (KW - 1) * dilation[1] + (H + 2 * padding[0]) * R
    return n * (C_out * KH * KW * H * R + C_out * F + C * H * R)


def _use_dy_columns(stride, K, C_out, taps) -> bool:
    """Whether the backward takes ``dx`` and ``dw`` from the columns of ``dy`` (``_conv2d_backward_as_conv``).

    At stride 1 when those columns (``C_out * KH*KW`` rows) are no taller than the
    columns of x (``K = C * KH*KW``), i.e. ``C_out <= C``; measured on the U-Net's float32
    3x3 convolutions, batch 16: 1.3-1.9x faster than col2im when ``C_out = C / 2`` and about
    equal at ``C_out = C``, while at ``C_out = 2 C`` col2im is ahead (and far ahead at 3 -> 16).
    """
    return stride == (1, 1) and C_out * taps <= K


def _use_row_taps(stride, K, C_out, taps, H_out, reach) -> bool:
    """Whether the wide-rows forward copies one kernel row's taps only (``_conv2d_row_taps``).

    At stride 1 when ``C_out <= 2 C`` (the passes it adds are over the C_out rows of the
    output, the copies it saves are C rows of columns) and the output is at least 8 times
    taller than the kernel's reach ``(KH-1) d_h`` (the rows it wastes per sample). Measured
    on float32 3x3 convolutions, batch 16, against ``_conv2d_wide``: 0.51-0.65x the time at
    C_out <= C on 32^2-64^2, 0.72-0.80x at C_out = C on 16^2-32^2, 0.82-0.84x at
    C_out = 2 C on 32^2-64^2 and 1.00x at 32 -> 64 on 16^2; but 1.14-1.24x on 8^2 and
    1.30x at 3 -> 16 (C_out > 5 C).
    """
    return stride == (1, 1) and C_out * taps <= 2 * K and H_out >= 8 * reach


def _paths(stride, K, C_out, taps=9, H_out=0, reach=0):
    """The one place that picks the computation: (forward, backward) for these hyper-parameters.

    ``K = C*KH*KW``, ``taps = KH*KW``, ``H_out`` the output height and ``reach = (KH-1) d_h``.
    Forward: one kernel row's columns on wide rows when they pay (``_use_row_taps``), else
    wide rows (``_use_wide_rows``), else the plain path.
    Backward: the columns of ``dy`` when they are no taller than those of ``x``
    (``_use_dy_columns``), else the forward's own path (col2im).

    A third path, Winograd's F(2x2, 3x3) (``minseg.ops.winograd``), computes 3x3 stride-1
    convolutions with 2.25x fewer multiplications, exactly (1e-15 in float64); its input and
    output transforms cost about as much as it saves on a 2-core CPU (measured 1.00-1.5x the
    time of these paths, see its docstring), so it is not chosen here.
    """
    if _use_wide_rows(stride, K, C_out):
        forward, backward = _conv2d_wide, _conv2d_backward_wide
    else:
        forward, backward = _conv2d_plain, _conv2d_backward_plain
    if _use_row_taps(stride, K, C_out, taps, H_out, reach):
        forward = _conv2d_row_taps
    if _use_dy_columns(stride, K, C_out, taps):
        backward = _conv2d_backward_as_conv
    return forward, backward


# --------------------------------------------------------------------------- conv2d

def conv2d(x, w, b=None, *, stride=1, padding=0, dilation=1, groups=1):
    """2-D convolution (cross-correlation), PyTorch's ``torch.nn.functional.conv2d``.

    Parameters
    ----------
    x : ndarray, shape (N, C, H, W), float
    w : ndarray, shape (C_out, C // groups, KH, KW), same dtype as x
    b : ndarray, shape (C_out,), optional
    stride, padding, dilation : int or (int, int)
        ``dilation=1`` is an ordinary convolution; ``d`` spreads the kernel
        taps ``d`` pixels apart (atrous convolution).
    groups : int
        Input and output channels are split into ``groups`` independent
        convolutions; ``groups == C`` with ``C_out == C`` is depthwise.

    Returns
    -------
    y : ndarray, shape (N, C_out, H_out, W_out), dtype of x
        ``H_out = floor((H + 2 p_h - d_h (KH - 1) - 1) / s_h) + 1``, same for W.
    cache : Conv2dCache
        ``(x, w, has_bias, stride, padding, dilation, groups)``.

    Raises
    ------
    ValueError
        Wrong ndim, channels that do not match or do not divide by groups,
        a bias of the wrong shape, negative padding, non-positive stride or
        dilation, or a kernel that does not fit the padded input.
    TypeError
        Integer dtypes, mismatched dtypes, or NumPy and CuPy arrays mixed.

    See Also
    --------
    minseg.reference.conv2d_loops : the same, by the definition, with loops.

    References
    ----------
    Dumoulin & Visin, "A guide to convolution arithmetic for deep learning", 2016.
    Yu & Koltun, "Multi-Scale Context Aggregation by Dilated Convolutions", 2016.
    """
    op = "conv2d"
    s, p, d, (H_out, W_out) = _check_conv_args(op, x, w, b, stride, padding, dilation, groups)
    xp = get_array_module(x, w, b)
    N, C, H, W = x.shape
    C_out, _, KH, KW = w.shape
    forward, _ = _paths(s, C * KH * KW, C_out, KH * KW, H_out, (KH - 1) * d[0])
    y = xp.empty((N, C_out, H_out, W_out), dtype=x.dtype)
    per_sample = _scratch_per_sample(forward, x.shape, w.shape, s, p, d)
    chunks, nc = _chunks(N, per_sample * x.itemsize)
    buf = workspace(xp, (nc * per_sample,), x.dtype)  # the scratch, reused by every chunk and call
    for n0, n1 in chunks:
        y[n0:n1] = forward(x[n0:n1], w, s, p, d, groups, buf[:(n1 - n0) * per_sample])
    if b is not None:
        y += b.reshape(1, C_out, 1, 1)
    return y, Conv2dCache(x, w, b is not None, s, p, d, groups)


def conv2d_backward(dy, cache: Conv2dCache):
    """Gradients of ``conv2d`` with respect to x, w and b.

    Parameters
    ----------
    dy : ndarray, shape (N, C_out, H_out, W_out)
        Upstream gradient dL/dy.
    cache : Conv2dCache
        From ``conv2d``.

    Returns
    -------
    dx : ndarray, shape (N, C, H, W)
        ``col2im(w_mat.T @ dy_mat)`` = ``C.T @ vec(dy)`` per sample, with C the convolution matrix.
    dw : ndarray, shape (C_out, C // groups, KH, KW)
        ``dy_mat @ cols.T``: each weight's gradient is the correlation of dy with the input.
    db : ndarray of shape (C_out,), or None when the forward had no bias
        ``sum over n, i, j of dy``.

    See Also
    --------
    minseg.reference.conv2d_backward_loops : the same gradient, pixel by pixel.

    References
    ----------
    Dumoulin & Visin, 2016, section 4 (the backward pass of a convolution is a transposed convolution).
    """
    op = "conv2d_backward"
    x, w, has_bias, s, p, d, G = cache
    N, C, H, W = x.shape
    C_out, C_g, KH, KW = w.shape
    H_out, W_out = (conv_output_size(H, KH, s[0], p[0], d[0]), conv_output_size(W, KW, s[1], p[1], d[1]))
    check_shape(dy, (N, C_out, H_out, W_out), "dy", op)
    xp = get_array_module(dy, x)
    _, backward = _paths(s, C * KH * KW, C_out, KH * KW, H_out, (KH - 1) * d[0])  # the forward's rule
    dx = xp.empty_like(x)
    dw = xp.zeros(w.shape, dtype=x.dtype)  # summed over the chunks
    per_sample = _scratch_per_sample(backward, x.shape, w.shape, s, p, d)
    chunks, nc = _chunks(N, per_sample * x.itemsize)
    buf = workspace(xp, (nc * per_sample,), x.dtype)
    for n0, n1 in chunks:
        _, dw_c = backward(dy[n0:n1], x[n0:n1], w, s, p, d, G, buf[:(n1 - n0) * per_sample], dx_out=dx[n0:n1])
        dw += dw_c
    db = dy.sum(axis=(0, 2, 3)) if has_bias else None
    return dx, dw, db

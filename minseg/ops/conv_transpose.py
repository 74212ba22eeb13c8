"""2-D transposed convolution ("deconvolution"): the backward pass of a convolution, run forward.

A convolution with weights ``w`` maps an input of size ``H_out`` (here: the
transposed convolution's *output*) to an output of size ``H`` (here: its
*input*). Written as a matrix, ``vec(conv2d(z, w)) = C @ vec(z)``. The
transposed convolution multiplies by the transpose of that matrix:

    vec(conv_transpose2d(x, w)) = C.T @ vec(x)

so every input pixel ``x[n, c, h, w]`` spreads a copy of the kernel, scaled by
its value, onto the output, ``s`` pixels apart:

    y[n, o, h*s_h - p_h + kh*d_h, w*s_w - p_w + kw*d_w] += x[n, c, h, w] * w[c, o - g*C_out_g, kh, kw]

for ``c`` in group ``g`` (``o`` in the same group), plus ``b[o]``. Weights are
``(C_in, C_out // groups, KH, KW)``, PyTorch's ``torch.nn.ConvTranspose2d``
layout. Output size per axis:

    H_out = (H - 1) s - 2 p + d (k - 1) + output_padding + 1

A strided convolution maps ``s`` different input sizes to the same output size;
``output_padding`` (which must be smaller than the stride or the dilation)
picks which one the transposed convolution restores.

How it is computed
------------------
Exactly as ``conv2d_backward`` computes ``dx``, with no zero insertion:

    cols = w_mat.T @ x_mat           (C_out*KH*KW, N*H*W)   one matrix product per group
    y    = col2im(cols)              add every column onto the pixels its kernel covers

and the backward pass is a convolution and its weight gradient:

    dx = conv2d(dy, w)               = w_mat @ im2col(dy)
    dw = x_mat @ im2col(dy).T        conv2d's weight gradient with the roles of x and dy swapped
    db = sum of dy over (n, i, j)

Both passes go over the batch in chunks so the column buffer stays a few
megabytes, like ``conv2d``; ``im2col`` and ``col2im`` come from ``conv``.

References
----------
V. Dumoulin and F. Visin, "A guide to convolution arithmetic for deep
learning", arXiv:1603.07285, 2016, section 4 (transposed convolution arithmetic).
M. D. Zeiler and R. Fergus, "Visualizing and Understanding Convolutional
Networks", ECCV 2014; H. Noh, S. Hong, B. Han, "Learning Deconvolution Network
for Semantic Segmentation", ICCV 2015 (DeconvNet).
J. Long, E. Shelhamer, T. Darrell, "Fully Convolutional Networks for Semantic
Segmentation", CVPR 2015 (upsampling by backwards-strided convolution).
"""
from __future__ import annotations

from typing import NamedTuple

from ..backend import get_array_module
from ..shapes import (
    check_float,
    check_ndim,
    check_nonnegative,
    check_positive,
    conv_output_size,
    conv_transpose_output_size,
    pair,
)
from .conv import col2im, im2col

__all__ = ["conv_transpose2d", "conv_transpose2d_backward", "ConvTranspose2dCache"]

# Target size of one chunk of the column matrix: big enough for efficient
# matrix products, small enough that the product's output is still in the
# cache when col2im reads it back (a few megabytes of L2).
_CHUNK_BYTES = 4 * 2**20


class ConvTranspose2dCache(NamedTuple):
    """What ``conv_transpose2d_backward`` needs from the forward pass.

    Fields
    ------
    x : (N, C_in, H, W) input
    w : (C_in, C_out // groups, KH, KW) weights
    has_bias : bool, whether a bias was given (then ``db`` is returned)
    stride, padding, output_padding, dilation : (int, int) each
    groups : int
    """

    x: object
    w: object
    has_bias: bool
    stride: tuple
    padding: tuple
    output_padding: tuple
    dilation: tuple
    groups: int


# --------------------------------------------------------------------------- arguments

def _check_conv_transpose_args(op, x, w, b, stride, padding, output_padding, dilation, groups):
    """Validate conv_transpose2d's arguments; return the normalised hyper-parameters and output size."""
    check_ndim(x, 4, "x", op, "N, C_in, H, W")
    check_ndim(w, 4, "w", op, "C_in, C_out // groups, KH, KW")
    check_float(x, "x", op)
    check_float(w, "w", op)
    get_array_module(x, w, b)  # raises TypeError on a numpy / cupy mix
    if w.dtype != x.dtype:
        raise TypeError(f"{op}: expected w with the dtype of x ({x.dtype}), got dtype {w.dtype}")
    if not isinstance(groups, int) or isinstance(groups, bool) or groups < 1:
        raise ValueError(f"{op}: expected groups to be an int >= 1, got {groups!r}")
    N, C_in, H, W = x.shape
    C_w, C_out_g, KH, KW = w.shape
    if C_in % groups:
        raise ValueError(f"{op}: expected input channels C_in divisible by groups={groups}, got C_in={C_in}")
    if C_w != C_in:
        raise ValueError(f"{op}: expected w.shape[0] == C_in = {C_in} (weights are (C_in, C_out // groups, KH, KW)), "
                         f"got w of shape {tuple(w.shape)}")
    C_out = C_out_g * groups
    if b is not None:
        check_ndim(b, 1, "b", op, "C_out")
        if b.shape[0] != C_out:
            raise ValueError(f"{op}: expected b of shape ({C_out},), got shape {tuple(b.shape)}")
        if b.dtype != x.dtype:
            raise TypeError(f"{op}: expected b with the dtype of x ({x.dtype}), got dtype {b.dtype}")
    check_positive((KH, KW), "kernel_size", op)
    s = check_positive(pair(stride, "stride", op), "stride", op)
    p = check_nonnegative(pair(padding, "padding", op), "padding", op)
    o = check_nonnegative(pair(output_padding, "output_padding", op), "output_padding", op)
    d = check_positive(pair(dilation, "dilation", op), "dilation", op)
    for axis in range(2):
        if not (o[axis] < s[axis] or o[axis] < d[axis]):
            raise ValueError(f"{op}: expected output_padding smaller than stride or dilation, "
                             f"got output_padding={o} with stride={s} and dilation={d}")
    H_out = conv_transpose_output_size(H, KH, s[0], p[0], o[0], d[0])
    W_out = conv_transpose_output_size(W, KW, s[1], p[1], o[1], d[1])
    if H_out < 1 or W_out < 1:
        raise ValueError(f"{op}: expected an output size >= 1, got ({H_out}, {W_out}) from input ({H}, {W}), "
                         f"kernel ({KH}, {KW}), stride {s}, padding {p}, output_padding {o}, dilation {d}")
    return s, p, o, d, (H_out, W_out)


def _chunk(n_total: int, bytes_per_sample: int) -> int:
    """How many samples to process at once so a column chunk is about ``_CHUNK_BYTES``."""
    return max(1, min(n_total, _CHUNK_BYTES // max(1, bytes_per_sample)))


def _conv_size(H_out, W_out, w_shape, s, p, d):
    """Output size ``(H_c, W_c)`` of the convolution whose transpose this is (its input is our output).

    It equals the transposed convolution's input size ``(H, W)`` unless
    ``output_padding >= stride`` (allowed when it is below the dilation): then
    the convolution has extra outputs that the transposed convolution's input
    does not cover, and they are treated as zeros.
    """
    _, _, KH, KW = w_shape
    return conv_output_size(H_out, KH, s[0], p[0], d[0]), conv_output_size(W_out, KW, s[1], p[1], d[1])


def _pad_to(xp, x, H_c, W_c):
    """``x`` with zero rows / columns appended so it is ``(N, C, H_c, W_c)`` (no copy when it already is)."""
    N, C, H, W = x.shape
    if (H, W) == (H_c, W_c):
        return x
    out = xp.zeros((N, C, H_c, W_c), dtype=x.dtype)
    out[:, :, :H, :W] = x
    return out


# --------------------------------------------------------------------------- conv_transpose2d

def conv_transpose2d(x, w, b=None, *, stride=1, padding=0, output_padding=0, dilation=1, groups=1):
    """2-D transposed convolution, PyTorch's ``torch.nn.functional.conv_transpose2d``.

    Parameters
    ----------
    x : ndarray, shape (N, C_in, H, W), float
    w : ndarray, shape (C_in, C_out // groups, KH, KW), same dtype as x
    b : ndarray, shape (C_out,), optional
    stride, padding, output_padding, dilation : int or (int, int)
        ``stride`` spreads the input pixels' kernel copies ``s`` apart (the
        upsampling factor); ``padding`` crops ``p`` pixels from each border of
        the result; ``output_padding`` adds that many rows / columns at the
        bottom / right and must be smaller than ``stride`` or ``dilation``.
    groups : int
        Input and output channels are split into ``groups`` independent
        transposed convolutions.

    Returns
    -------
    y : ndarray, shape (N, C_out, H_out, W_out), dtype of x
        ``H_out = (H - 1) s_h - 2 p_h + d_h (KH - 1) + output_padding_h + 1``, same for W.
        ``vec(y[n]) = C.T @ vec(x[n])`` (+ b), with ``C`` the matrix of the
        convolution by ``w`` on ``(H_out, W_out)`` inputs (``convolution_matrix``).
    cache : ConvTranspose2dCache
        ``(x, w, has_bias, stride, padding, output_padding, dilation, groups)``.

    Raises
    ------
    ValueError
        Wrong ndim, ``w.shape[0] != C_in``, channels that do not divide by
        groups, a bias of the wrong shape, negative padding, non-positive
        stride or dilation, ``output_padding`` not below stride or dilation,
        or an output size below 1.
    TypeError
        Integer dtypes, mismatched dtypes, or NumPy and CuPy arrays mixed.

    References
    ----------
    Dumoulin & Visin, "A guide to convolution arithmetic for deep learning", 2016, section 4.
    Noh, Hong & Han, "Learning Deconvolution Network for Semantic Segmentation", 2015.
    """
    op = "conv_transpose2d"
    s, p, o, d, (H_out, W_out) = _check_conv_transpose_args(
        op, x, w, b, stride, padding, output_padding, dilation, groups)
    xp = get_array_module(x, w, b)
    N, C_in, H, W = x.shape
    _, Co_g, KH, KW = w.shape
    G, Ci_g, K = groups, C_in // groups, KH * KW
    C_out = Co_g * G
    H_c, W_c = _conv_size(H_out, W_out, w.shape, s, p, d)
    x_p = _pad_to(xp, x, H_c, W_c)                                # (N, C_in, H_c, W_c)
    L = H_c * W_c
    w_gT = w.reshape(G, Ci_g, Co_g * K).transpose(0, 2, 1)       # (G, C_out/G*KH*KW, C_in/G)
    y = xp.empty((N, C_out, H_out, W_out), dtype=x.dtype)
    nc = _chunk(N, C_out * K * L * x.itemsize)
    buf = xp.empty((G, Co_g * K, nc * L), dtype=x.dtype)
    for n0 in range(0, N, nc):
        n1 = min(N, n0 + nc)
        n = n1 - n0
        x_c = x_p[n0:n1].transpose(1, 0, 2, 3).reshape(G, Ci_g, n * L)  # (G, C_in/G, n*H*W), a copy
        cols = xp.matmul(w_gT, x_c, out=buf[:, :, :n * L])             # (G, C_out/G*KH*KW, n*H*W)
        col2im(cols.reshape(C_out * K, n * L), (n, C_out, H_out, W_out), (KH, KW), s, p, d, out=y[n0:n1])
    if b is not None:
        y += b.reshape(1, C_out, 1, 1)
    return y, ConvTranspose2dCache(x=x, w=w, has_bias=b is not None, stride=s, padding=p,
                                   output_padding=o, dilation=d, groups=groups)


def conv_transpose2d_backward(dy, cache: ConvTranspose2dCache):
    """Gradients of ``conv_transpose2d`` with respect to x, w and b.

    Parameters
    ----------
    dy : ndarray, shape (N, C_out, H_out, W_out)
        Upstream gradient dL/dy.
    cache : ConvTranspose2dCache
        From ``conv_transpose2d``.

    Returns
    -------
    dx : ndarray, shape (N, C_in, H, W)
        ``conv2d(dy, w)`` with the same stride, padding, dilation and groups:
        ``C @ vec(dy)``, the transpose of the forward's ``C.T``.
    dw : ndarray, shape (C_in, C_out // groups, KH, KW)
        ``x_mat @ im2col(dy).T`` per group.
    db : ndarray of shape (C_out,), or None when the forward had no bias
        ``sum over n, i, j of dy``.

    References
    ----------
    Dumoulin & Visin, 2016, section 4: the transpose of a transposed convolution is the convolution.
    """
    op = "conv_transpose2d_backward"
    x, w, has_bias, s, p, o, d, G = cache
    N, C_in, H, W = x.shape
    _, Co_g, KH, KW = w.shape
    C_out, Ci_g, K = Co_g * G, C_in // G, KH * KW
    check_ndim(dy, 4, "dy", op, "N, C_out, H_out, W_out")
    H_out = conv_transpose_output_size(H, KH, s[0], p[0], o[0], d[0])
    W_out = conv_transpose_output_size(W, KW, s[1], p[1], o[1], d[1])
    if tuple(dy.shape) != (N, C_out, H_out, W_out):
        raise ValueError(f"{op}: expected dy of shape {(N, C_out, H_out, W_out)}, got shape {tuple(dy.shape)}")
    xp = get_array_module(dy, x)
    H_c, W_c = _conv_size(H_out, W_out, w.shape, s, p, d)
    x_p = _pad_to(xp, x, H_c, W_c)                                # (N, C_in, H_c, W_c)
    L = H_c * W_c
    w_g = w.reshape(G, Ci_g, Co_g * K)                            # (G, C_in/G, C_out/G*KH*KW)
    dw_t = xp.zeros((G, Co_g * K, Ci_g), dtype=x.dtype)          # dw transposed, see below
    dx = xp.empty((N, C_in, H_c, W_c), dtype=x.dtype)
    nc = _chunk(N, C_out * K * L * x.itemsize)
    buf = xp.empty((C_out * K, nc * L), dtype=x.dtype)
    for n0 in range(0, N, nc):
        n1 = min(N, n0 + nc)
        n = n1 - n0
        cols = im2col(dy[n0:n1], (KH, KW), s, p, d, out=buf[:, :n * L]).reshape(G, Co_g * K, n * L)
        x_c = x_p[n0:n1].transpose(1, 0, 2, 3).reshape(G, Ci_g, n * L)  # (G, C_in/G, n*H*W), a copy
        # dw = x_c @ cols.T per group; computed as its transpose cols @ x_c.T, the orientation
        # in which BLAS keeps the long n*H*W axis as the reduction of a tall matrix (several times faster)
        dw_t += xp.matmul(cols, x_c.transpose(0, 2, 1))                # (G, C_out/G*KH*KW, C_in/G)
        dx_c = xp.matmul(w_g, cols)                                    # (G, C_in/G, n*H*W)
        dx[n0:n1] = dx_c.reshape(C_in, n, H_c, W_c).transpose(1, 0, 2, 3)  # (n, C_in, H_c, W_c)
    db = dy.sum(axis=(0, 2, 3)) if has_bias else None
    if (H_c, W_c) != (H, W):
        dx = xp.ascontiguousarray(dx[:, :, :H, :W])  # the convolution's extra outputs have no input to go to
    dw = dw_t.transpose(0, 2, 1).reshape(w.shape)                  # (C_in, C_out/G, KH, KW)
    return dx, dw, db

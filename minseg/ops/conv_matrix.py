"""The convolution matrix: a convolution is a (sparse) matrix times the flattened input.

For one sample, ``conv2d`` is linear in ``x``, so there is a matrix ``C`` of
shape ``(C_out*H_out*W_out, C*H*W)`` with

    vec(conv2d(x, w)) == C @ vec(x)            (no bias; vec is row-major flattening)

Row ``(o, i, j)`` of ``C`` holds the weights of output pixel ``y[o, i, j]``,
each placed in the column of the input pixel it multiplies:

    C[(o*H_out + i)*W_out + j, (c*H + h)*W + v] = w[o, c - g*C_g, kh, kw]
    where h = i*s_h - p_h + kh*d_h,  v = j*s_w - p_w + kw*d_w

for every tap ``(c, kh, kw)`` of output channel ``o``'s group ``g`` whose pixel
``(h, v)`` lies inside the image (taps on the padding multiply zeros and have
no column). Everything the lessons say about convolution follows from it:

* the backward pass ``dx = C.T @ vec(dy)`` (``conv2d_backward``),
* the transposed convolution ``conv_transpose2d(y, w) == C.T @ vec(y)``, with
  the ``output_padding`` that makes its output size ``(H, W)``,
* the adjoint identity ``<C x, y> == <x, C.T y>``.

``C`` is very sparse (at most ``C_g*KH*KW`` non-zeros per row), so besides the
dense matrix there is a coordinate (COO) form that scales to real sizes.

References
----------
V. Dumoulin and F. Visin, "A guide to convolution arithmetic for deep
learning", arXiv:1603.07285, 2016, section 4.1 ("Convolution as a matrix operation").
A. Zhang, Z. Lipton, M. Li, A. Smola, "Dive into Deep Learning", section 14.10
("Transposed Convolution", the ``kernel2matrix`` picture).
"""
from __future__ import annotations

from typing import NamedTuple

import numpy as np

from ..backend import get_array_module, scatter_add_flat
from ..shapes import check_float, check_ndim, check_nonnegative, check_positive, conv_output_size, pair

__all__ = ["convolution_matrix", "convolution_matrix_coo", "CooMatrix"]


class CooMatrix(NamedTuple):
    """A sparse matrix in coordinate form: ``A[rows[k], cols[k]] = vals[k]``, every (row, col) pair once.

    Fields
    ------
    rows, cols : ndarray of int64, shape (nnz,)
    vals : ndarray, shape (nnz,)
    shape : (int, int)

    ``matvec`` and ``rmatvec`` compute ``A @ v`` and ``A.T @ u`` with one
    gather and one ``scatter_add_flat`` each; ``to_dense`` and ``to_scipy``
    convert (SciPy is optional and imported only there).
    """

    rows: object
    cols: object
    vals: object
    shape: tuple

    def matvec(self, v):
        """``A @ v`` for a vector ``v`` of length ``shape[1]``."""
        return scatter_add_flat(self.rows, self.vals * v[self.cols], self.shape[0])

    def rmatvec(self, u):
        """``A.T @ u`` for a vector ``u`` of length ``shape[0]``."""
        return scatter_add_flat(self.cols, self.vals * u[self.rows], self.shape[1])

    def to_dense(self):
        """The dense ``(shape[0], shape[1])`` array."""
        xp = get_array_module(self.vals)
        dense = xp.zeros(self.shape, dtype=self.vals.dtype)
        dense[self.rows, self.cols] = self.vals  # each (row, col) appears once: assignment is exact
        return dense

    def to_scipy(self):
        """A ``scipy.sparse.csr_array`` (NumPy arrays only; SciPy must be installed)."""
        try:
            import scipy.sparse  # noqa: PLC0415  (optional dependency)
        except ImportError as err:
            raise ImportError("CooMatrix.to_scipy: expected scipy to be installed, got ImportError; "
                              "use matvec / rmatvec / to_dense instead") from err
        return scipy.sparse.csr_array((self.vals, (self.rows, self.cols)), shape=self.shape)


def _check_matrix_args(op, w, input_size, stride, padding, dilation, groups):
    """Validate the arguments; return (C, H, W), the hyper-parameter pairs and (H_out, W_out)."""
    check_ndim(w, 4, "w", op, "C_out, C_in // groups, KH, KW")
    check_float(w, "w", op)
    if not isinstance(groups, int) or isinstance(groups, bool) or groups < 1:
        raise ValueError(f"{op}: expected groups to be an int >= 1, got {groups!r}")
    C_out, C_g, KH, KW = w.shape
    if C_out % groups:
        raise ValueError(f"{op}: expected output channels C_out divisible by groups={groups}, got C_out={C_out}")
    if not (isinstance(input_size, (tuple, list)) and len(input_size) in (2, 3)
            and all(isinstance(v, (int, np.integer)) and v >= 1 for v in input_size)):
        raise ValueError(f"{op}: expected input_size (H, W) or (C, H, W) of positive ints, got {input_size!r}")
    if len(input_size) == 3:
        C, H, W = (int(v) for v in input_size)
        if C != C_g * groups:
            raise ValueError(f"{op}: expected input_size[0] == w.shape[1] * groups = {C_g * groups}, got {C}")
    else:
        (H, W), C = (int(v) for v in input_size), C_g * groups
    s = check_positive(pair(stride, "stride", op), "stride", op)
    p = check_nonnegative(pair(padding, "padding", op), "padding", op)
    d = check_positive(pair(dilation, "dilation", op), "dilation", op)
    H_out, W_out = conv_output_size(H, KH, s[0], p[0], d[0]), conv_output_size(W, KW, s[1], p[1], d[1])
    if H_out < 1 or W_out < 1:
        raise ValueError(f"{op}: expected the dilated kernel ({d[0] * (KH - 1) + 1}, {d[1] * (KW - 1) + 1}) to fit "
                         f"in the padded input ({H + 2 * p[0]}, {W + 2 * p[1]}), got output size ({H_out}, {W_out})")
    return (C, H, W), s, p, d, (H_out, W_out)


def convolution_matrix_coo(w, input_size, *, stride=1, padding=0, dilation=1, groups=1) -> CooMatrix:
    """The convolution matrix ``C`` of ``conv2d(., w)`` in coordinate form, built from index arithmetic.

    Parameters
    ----------
    w : ndarray, shape (C_out, C // groups, KH, KW), float
    input_size : (H, W) or (C, H, W)
    stride, padding, dilation : int or (int, int)
    groups : int

    Returns
    -------
    CooMatrix
        Shape ``(C_out*H_out*W_out, C*H*W)`` with
        ``H_out = floor((H + 2 p - d (KH - 1) - 1) / s) + 1``; one entry per
        tap of every output pixel that lands inside the image.
        ``C.matvec(vec(x)) == vec(conv2d(x, w))`` for one sample.

    References
    ----------
    Dumoulin & Visin, "A guide to convolution arithmetic for deep learning", 2016, section 4.1.
    """
    return _coo("convolution_matrix_coo", w, input_size, stride, padding, dilation, groups)


def _coo(op, w, input_size, stride, padding, dilation, groups) -> CooMatrix:
    """Build the COO triple by broadcasting over (o, i, j, c, kh, kw); ``op`` names the caller in errors."""
    (C, H, W), (sh, sw), (ph, pw), (dh, dw), (H_out, W_out) = _check_matrix_args(
        op, w, input_size, stride, padding, dilation, groups)
    xp = get_array_module(w)
    C_out, C_g, KH, KW = w.shape
    o = xp.arange(C_out).reshape(C_out, 1, 1, 1, 1, 1)
    i = xp.arange(H_out).reshape(1, H_out, 1, 1, 1, 1)
    j = xp.arange(W_out).reshape(1, 1, W_out, 1, 1, 1)
    c = xp.arange(C_g).reshape(1, 1, 1, C_g, 1, 1)
    kh = xp.arange(KH).reshape(1, 1, 1, 1, KH, 1)
    kw = xp.arange(KW).reshape(1, 1, 1, 1, 1, KW)
    shape = (C_out, H_out, W_out, C_g, KH, KW)
    h = i * sh - ph + kh * dh                        # input row of each tap
    v = j * sw - pw + kw * dw                        # input column of each tap
    channel = (o // (C_out // groups)) * C_g + c     # input channel: group of o, then c
    rows = xp.broadcast_to((o * H_out + i) * W_out + j, shape)
    cols = xp.broadcast_to((channel * H + h) * W + v, shape)
    vals = xp.broadcast_to(w.reshape(C_out, 1, 1, C_g, KH, KW), shape)
    inside = xp.broadcast_to((h >= 0) & (h < H) & (v >= 0) & (v < W), shape)  # taps on the padding drop out
    return CooMatrix(rows[inside], cols[inside], vals[inside], (C_out * H_out * W_out, C * H * W))


def convolution_matrix(w, input_size, *, stride=1, padding=0, dilation=1, groups=1):
    """The dense convolution matrix ``C`` with ``C @ vec(x) == vec(conv2d(x, w, ...))`` for one sample.

    Parameters
    ----------
    w : ndarray, shape (C_out, C // groups, KH, KW), float
    input_size : (H, W) or (C, H, W)
        The size of the input ``x`` (one sample, no batch axis).
    stride, padding, dilation : int or (int, int)
    groups : int

    Returns
    -------
    C : ndarray, shape (C_out*H_out*W_out, C*H*W), dtype of w
        ``C[(o*H_out + i)*W_out + j, (c*H + h)*W + v] = w[o, c - g*C_g, kh, kw]``
        with ``h = i*s_h - p_h + kh*d_h``, ``v = j*s_w - p_w + kw*d_w``, zero elsewhere.
        ``C.T @ vec(dy)`` is conv2d's ``dx``, and ``C.T @ vec(y)`` is
        ``conv_transpose2d(y, w)`` with the ``output_padding`` that gives size ``(H, W)``.

    Notes
    -----
    ``C`` has ``C_out*H_out*W_out * C*H*W`` entries: a 3x64x64 input to 16
    channels is already 200 million. For real sizes use
    ``convolution_matrix_coo``, which stores only the non-zeros.

    References
    ----------
    Dumoulin & Visin, "A guide to convolution arithmetic for deep learning", 2016, section 4.1.
    """
    return _coo("convolution_matrix", w, input_size, stride, padding, dilation, groups).to_dense()

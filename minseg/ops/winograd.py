"""3x3 convolution by Winograd's minimal filtering algorithm, F(2x2, 3x3) (and F(4x4, 3x3)).

For a 3x3 kernel at stride 1 (dilation 1, groups 1, any padding) every
``m x m`` block of outputs depends on one ``(m+2) x (m+2)`` tile of the padded
input. Winograd's algorithm computes that block with ``(m+2)^2`` products
instead of ``9 m^2`` (16 instead of 36 for m = 2, 36 instead of 144 for m = 4):

    Y = A^T [ (G g G^T) * (B^T d B) ] A          * is the element-wise product

for one 3x3 kernel ``g``, one input tile ``d`` and one output block ``Y``. With
many channels the element-wise product becomes a sum over input channels,
which is a matrix product for each of the ``(m+2)^2`` tile positions:

    U[k, l] = G g[o, c] G^T                      (C_out, C) for each (k, l)   kernel transform
    V[k, l] = B^T d[c, tile] B                   (C, tiles) for each (k, l)   input transform
    M[k, l] = U[k, l] @ V[k, l]                  (C_out, tiles): (m+2)^2 GEMMs
    Y       = A^T M[tile] A                      output transform, m x m outputs per tile

Tiles of the zero-padded input start every ``m`` pixels and overlap by 2.
When ``H_out`` or ``W_out`` is not a multiple of ``m`` the last tiles reach
past the padded input: they read zeros and their extra outputs are cropped.

The matrices (Lavin & Gray, 2016, section 4.1 and 4.2), F(2x2, 3x3)::

    B^T = [[1,  0, -1,  0],      G = [[  1,    0,    0],      A^T = [[1, 1,  1,  0],
           [0,  1,  1,  0],           [1/2,  1/2,  1/2],              [0, 1, -1, -1]]
           [0, -1,  1,  0],           [1/2, -1/2,  1/2],
           [0,  1,  0, -1]]           [  0,    0,    1]]

F(4x4, 3x3)::

    B^T = [[4,  0, -5,  0, 1, 0],      G = [[ 1/4,     0,    0],
           [0, -4, -4,  1, 1, 0],           [-1/6,  -1/6, -1/6],
           [0,  4, -4, -1, 1, 0],           [-1/6,   1/6, -1/6],
           [0, -2, -1,  2, 1, 0],           [1/24,  1/12,  1/6],
           [0,  2, -1, -2, 1, 0],           [1/24, -1/12,  1/6],
           [0,  4,  0, -5, 0, 1]]           [   0,     0,    1]]

    A^T = [[1, 1,  1, 1,  1, 0],
           [0, 1, -1, 2, -2, 0],
           [0, 1,  1, 4,  4, 0],
           [0, 1, -1, 8, -8, 1]]

``B^T`` and ``A^T`` have integer entries, so the input and output transforms
are additions (and, for F(4x4), small integer multiples) of shifted slices:
each is applied along the rows, then along the columns.

Backward
--------
Every step above is linear, so the backward pass runs the adjoints in reverse
(the "transposed Winograd transforms"):

    dM[k, l] = A dY A^T                          output-transform adjoint: 2x2 -> 4x4 per tile
    dU[k, l] = dM[k, l] @ V[k, l]^T              (C_out, C): (m+2)^2 GEMMs over the tiles
    dg       = G^T dU G                          kernel-transform adjoint
    dV[k, l] = U[k, l]^T @ dM[k, l]              (C, tiles): (m+2)^2 GEMMs
    dd       = B dV B^T                          input-transform adjoint, added back onto
                                                 the overlapping tiles of the padded input

``dx`` is the padded ``dd`` with the padding cropped off. It equals a Winograd
convolution of ``dy``, zero-padded by 2 (a full correlation), with the kernel
flipped in both spatial axes and its channel axes swapped, cropped by the
forward padding; the tests check that identity. The adjoint form shares ``dM``
with the weight gradient, so it needs one transform less.

Accuracy
--------
The algorithm is exact in exact arithmetic; in float64 it agrees with the
direct sum to about 1e-15 relative (F(2x2)) and 1e-14 (F(4x4)). In float32
the transforms add rounding: the relative error against a float64 result is
a few times that of the direct (im2col) float32 convolution for F(2x2),
and about ten times larger again for F(4x4), whose transform entries
(up to 8, and 1/24 in G) amplify rounding. The numbers measured on random
64-channel inputs are in tests/test_winograd.py and in the benchmark script.

References
----------
A. Lavin and S. Gray, "Fast Algorithms for Convolutional Neural Networks",
CVPR 2016 (arXiv:1509.09308).
S. Winograd, "Arithmetic Complexity of Computations", SIAM, 1980.
"""
from __future__ import annotations

from fractions import Fraction as _F

import numpy as np

from ..backend import get_array_module
from ..shapes import (
    check_bias,
    check_conv_operands,
    check_nonnegative,
    check_shape,
    chunk_size,
    conv_output_size,
    pair,
    steps,
)
from .conv import Conv2dCache

__all__ = ["conv2d_winograd", "conv2d_winograd_backward", "winograd_applies", "winograd_matrices"]


# --------------------------------------------------------------------------- the transform matrices

def _matrix(rows):
    """A float64 array from rows of exact fractions (every entry is a dyadic or a small rational)."""
    return np.array([[float(_F(v)) for v in row] for row in rows])


_MATRICES = {
    2: (
        _matrix([[1, 0, -1, 0], [0, 1, 1, 0], [0, -1, 1, 0], [0, 1, 0, -1]]),                      # B^T (4, 4)
        _matrix([[1, 0, 0], ["1/2", "1/2", "1/2"], ["1/2", "-1/2", "1/2"], [0, 0, 1]]),            # G   (4, 3)
        _matrix([[1, 1, 1, 0], [0, 1, -1, -1]]),                                                   # A^T (2, 4)
    ),
    4: (
        _matrix([[4, 0, -5, 0, 1, 0], [0, -4, -4, 1, 1, 0], [0, 4, -4, -1, 1, 0],
                 [0, -2, -1, 2, 1, 0], [0, 2, -1, -2, 1, 0], [0, 4, 0, -5, 0, 1]]),                # B^T (6, 6)
        _matrix([["1/4", 0, 0], ["-1/6", "-1/6", "-1/6"], ["-1/6", "1/6", "-1/6"],
                 ["1/24", "1/12", "1/6"], ["1/24", "-1/12", "1/6"], [0, 0, 1]]),                   # G   (6, 3)
        _matrix([[1, 1, 1, 1, 1, 0], [0, 1, -1, 2, -2, 0], [0, 1, 1, 4, 4, 0], [0, 1, -1, 8, -8, 1]]),  # A^T (4, 6)
    ),
}


def winograd_matrices(m: int = 2):
    """``(B^T, G, A^T)`` of F(m x m, 3x3) as float64 arrays: (m+2, m+2), (m+2, 3), (m, m+2).

    ``A^T [(G g G^T) * (B^T d B)] A`` is the valid 3x3 correlation of the
    (m+2)x(m+2) tile ``d`` with ``g``, an (m, m) block.

    >>> BT, G, AT = winograd_matrices(2)
    >>> BT.shape, G.shape, AT.shape
    ((4, 4), (4, 3), (2, 4))
    """
    if m not in _MATRICES:
        raise ValueError(f"winograd_matrices: expected m in {sorted(_MATRICES)}, got {m!r}")
    return tuple(a.copy() for a in _MATRICES[m])


def winograd_applies(kernel, stride=1, dilation=1, groups=1) -> bool:
    """Whether the Winograd path computes this convolution: a 3x3 kernel, stride 1, dilation 1, groups 1.

    Any padding works. ``kernel``, ``stride``, ``dilation`` are ints or pairs.

    >>> winograd_applies(3), winograd_applies((3, 3), stride=2), winograd_applies(3, groups=4)
    (True, False, False)
    """
    return pair(kernel) == (3, 3) and pair(stride) == (1, 1) and pair(dilation) == (1, 1) and groups == 1


# --------------------------------------------------------------------------- element-wise helpers

def _axpy(xp, c: float, t, out):
    """``out += c * t`` in place, without a temporary when ``c`` is +-1."""
    if c == 1:
        xp.add(out, t, out=out)
    elif c == -1:
        xp.subtract(out, t, out=out)
    elif c != 0:
        out += c * t  # c is a Python float: the product keeps t's dtype


def _lincomb(xp, coeffs, terms, out):
    """``out = sum_j coeffs[j] * terms[j]``, written in place; zero coefficients are skipped.

    One row of a transform matrix applied to a list of equally shaped slices. The first two
    terms are combined in one operation (``a + b``, ``a - b``), so a row with two entries +-1,
    as every row of F(2x2)'s ``B^T``, costs one pass over memory.
    """
    nz = [(float(c), t) for c, t in zip(coeffs, terms) if c != 0]  # Python floats: float32 stays float32
    if not nz:
        out[...] = 0
        return out
    (c0, t0), rest = nz[0], nz[1:]
    if rest and c0 == 1 and abs(rest[0][0]) == 1:          # t0 + t1 or t0 - t1
        (xp.add if rest[0][0] == 1 else xp.subtract)(t0, rest[0][1], out=out)
        rest = rest[1:]
    elif rest and c0 == -1 and rest[0][0] == 1:            # t1 - t0
        xp.subtract(rest[0][1], t0, out=out)
        rest = rest[1:]
    elif c0 == 1:
        out[...] = t0
    elif c0 == -1:
        xp.negative(t0, out=out)
    else:
        xp.multiply(t0, c0, out=out)
    for c, t in rest:
        _axpy(xp, c, t, out)
    return out


def _work(xp, buf, shape, dtype):
    """An array of ``shape`` on the memory of ``buf`` when it is C-contiguous, of ``dtype`` and large enough; else a new one."""
    size = int(np.prod(shape))
    if buf is not None and buf.dtype == dtype and buf.flags.c_contiguous and buf.size >= size:
        return buf.reshape(-1)[:size].reshape(shape)
    return xp.empty(shape, dtype=dtype)


def _tiles(H_out: int, W_out: int, m: int):
    """Number of tiles per axis, ``(ceil(H_out / m), ceil(W_out / m))``."""
    return -(-H_out // m), -(-W_out // m)


def _phase_range(pad: int, size: int, phase: int, m: int, blocks: int):
    """Blocks ``q`` with padded position ``m*q + phase`` inside the data ``[pad, pad + size)``.

    Returns ``(q_lo, q_hi, first)``: data positions ``first, first + m, ...`` go to blocks
    ``q_lo ... q_hi - 1``. Outside that range the padded position is a zero.
    """
    q_lo = max(0, -((phase - pad) // m))                    # ceil((pad - phase) / m)
    q_hi = min(blocks, (pad + size - 1 - phase) // m + 1)
    return q_lo, max(q_lo, q_hi), m * q_lo + phase - pad


# --------------------------------------------------------------------------- padding, with columns split by phase
#
# The input transform adds slices of the padded input shifted by whole pixels. Along the rows
# (axis H) such a slice, rows i, i + m, i + 2m, ..., is a strided view whose rows are contiguous.
# Along the columns it would be strided element by element, which NumPy adds several times more
# slowly. So the padded input is stored with its columns grouped by phase: column m*q + s of the
# padded image lives at [..., s, q]. Then the j-th column slice of every tile is the contiguous
# run [..., j % m, j // m : j // m + T_w].

def _pad_split(x, padding, m, T_h, T_w):
    """Zero-pad ``x`` and group its columns by phase.

    x : (n, C, H, W) -> x_p (C, n, m*(T_h+1), m, T_w+1) with
    ``x_p[c, n, h, s, q] = x_pad[n, c, h, m*q + s]``, ``x_pad`` being ``x`` with ``padding``
    zeros on the top / left and enough zeros on the bottom / right for every tile.
    """
    xp = get_array_module(x)
    n, C, H, W = x.shape
    ph, pw = padding
    x_p = xp.zeros((C, n, m * (T_h + 1), m, T_w + 1), dtype=x.dtype)
    x_t = x.transpose(1, 0, 2, 3)  # (C, n, H, W), a view
    for s in range(m):
        q_lo, q_hi, w0 = _phase_range(pw, W, s, m, T_w + 1)
        if q_hi > q_lo:
            x_p[:, :, ph:ph + H, s, q_lo:q_hi] = x_t[:, :, :, steps(w0, q_hi - q_lo, m)]
    return x_p


def _unsplit_crop(dx_p, x_shape, padding):
    """The adjoint of ``_pad_split``: columns back in order, the padding dropped.

    dx_p : (C, n, Hp, m, T_w+1) -> dx (n, C, H, W), a new array.
    """
    xp = get_array_module(dx_p)
    n, C, H, W = x_shape
    ph, pw = padding
    m, blocks = dx_p.shape[3], dx_p.shape[4]
    dx = xp.empty((n, C, H, W), dtype=dx_p.dtype)
    dx_t = dx.transpose(1, 0, 2, 3)  # (C, n, H, W), a view
    for s in range(m):
        q_lo, q_hi, w0 = _phase_range(pw, W, s, m, blocks)
        if q_hi > q_lo:
            dx_t[:, :, :, steps(w0, q_hi - q_lo, m)] = dx_p[:, :, ph:ph + H, s, q_lo:q_hi]
    return dx


# --------------------------------------------------------------------------- the three transforms

def _kernel_transform(w, G):
    """``U[k, l, o, c] = (G w[o, c] G^T)[k, l]``. w: (C_out, C, 3, 3) -> U (a*a, C_out, C), a = m + 2."""
    xp = get_array_module(w)
    C_out, C = w.shape[:2]
    a = G.shape[0]
    G = xp.asarray(G, dtype=w.dtype)
    U = G @ w @ G.T                                                        # (C_out, C, a, a)
    return xp.ascontiguousarray(U.transpose(2, 3, 0, 1)).reshape(a * a, C_out, C)  # (a*a, C_out, C)


def _kernel_transform_adjoint(dU, G):
    """``dw[o, c] = G^T dU[:, :, o, c] G``, the adjoint of ``_kernel_transform``. dU (a*a, C_out, C) -> (C_out, C, 3, 3)."""
    xp = get_array_module(dU)
    a = G.shape[0]
    C_out, C = dU.shape[1:]
    G = xp.asarray(G, dtype=dU.dtype)
    dU4 = dU.reshape(a, a, C_out, C).transpose(2, 3, 0, 1)                # (C_out, C, a, a), a view
    return G.T @ dU4 @ G                                                    # (C_out, C, 3, 3)


def _input_transform(x_p, BT, m, T_h, T_w, out):
    """``V[k, l, c, (n, t_h, t_w)] = (B^T d B)[k, l]`` for every tile ``d`` of the padded input.

    x_p : (C, n, m*(T_h+1), m, T_w+1) from ``_pad_split``; tile ``(t_h, t_w)`` is rows
    ``m t_h ... m t_h + a - 1`` and columns ``m t_w ... m t_w + a - 1``.
    out : (a*a, C, n*T_h*T_w), written.

    Rows first: ``R_k = sum_i B^T[k, i] x_pad[rows m t_h + i]`` (C, n, T_h, m, T_w+1); then
    columns: ``V[k, l] = sum_j B^T[l, j] R_k[columns m t_w + j]``.
    """
    xp = get_array_module(x_p)
    a = BT.shape[0]
    C, n = x_p.shape[:2]
    V = out.reshape(a, a, C, n, T_h, T_w)                                 # (a, a, C, n, T_h, T_w), a view
    rows = [x_p[:, :, steps(i, T_h, m)] for i in range(a)]                # a x (C, n, T_h, m, T_w+1), views
    R = xp.empty(rows[0].shape, dtype=x_p.dtype)
    for k in range(a):
        _lincomb(xp, BT[k], rows, R)
        cols = [R[:, :, :, j % m, j // m:j // m + T_w] for j in range(a)]  # a x (C, n, T_h, T_w), views
        for l in range(a):
            _lincomb(xp, BT[l], cols, V[k, l])
    return out


def _input_transform_adjoint(dV, BT, m, T_h, T_w, x_p_shape):
    """The adjoint of ``_input_transform``: ``B dV B^T`` of every tile, added onto the padded input.

    dV : (a*a, C, n*T_h*T_w) -> dx_p (C, n, m*(T_h+1), m, T_w+1), overlapping tiles summed.
    """
    xp = get_array_module(dV)
    a = BT.shape[0]
    C, n = x_p_shape[:2]
    dV6 = dV.reshape(a, a, C, n, T_h, T_w)                                # (a, a, C, n, T_h, T_w)
    dx_p = xp.zeros(x_p_shape, dtype=dV.dtype)
    dR = xp.empty((C, n, T_h, m, T_w + 1), dtype=dV.dtype)
    for k in range(a):
        dR[...] = 0
        for j in range(a):   # columns: dR_k[columns m t_w + j] += sum_l B^T[l, j] dV[k, l]
            for l in range(a):
                _axpy(xp, float(BT[l, j]), dV6[k, l], dR[:, :, :, j % m, j // m:j // m + T_w])
        for i in range(a):   # rows: x_pad[rows m t_h + i] += B^T[k, i] dR_k
            # one slice has no repeated rows: a plain += is exact here
            _axpy(xp, float(BT[k, i]), dR, dx_p[:, :, steps(i, T_h, m)])
    return dx_p


def _output_transform(M, AT, n, T_h, T_w, H_out, W_out):
    """``y[n, o, m t_h + u, m t_w + v] = (A^T M A)[u, v]`` per tile, cropped to (H_out, W_out).

    M : (a*a, C_out, n*T_h*T_w) -> y (n, C_out, H_out, W_out), a view of a new array.
    Columns first: ``S[k, v] = sum_l A^T[v, l] M[k, l]``; then rows: ``Y[u, v] = sum_k A^T[u, k] S[k, v]``.
    """
    xp = get_array_module(M)
    m, a = AT.shape
    C_out = M.shape[1]
    M5 = M.reshape(a, a, C_out, n, T_h, T_w)                              # (a, a, C_out, n, T_h, T_w)
    S = xp.empty((a, m, C_out, n, T_h, T_w), dtype=M.dtype)
    for k in range(a):
        for v in range(m):
            _lincomb(xp, AT[v], M5[k], S[k, v])
    y = xp.empty((n, C_out, T_h, m, T_w, m), dtype=M.dtype)
    for u in range(m):
        for v in range(m):   # written straight into the interleaved output: y[n, o, m t_h + u, m t_w + v]
            _lincomb(xp, AT[u], S[:, v], y[:, :, :, u, :, v].transpose(1, 0, 2, 3))
    return y.reshape(n, C_out, T_h * m, T_w * m)[:, :, :H_out, :W_out]    # (n, C_out, H_out, W_out)


def _output_transform_adjoint(dy, AT, T_h, T_w):
    """The adjoint of ``_output_transform``: ``dM[k, l] = (A dY A^T)[k, l]`` per tile.

    dy : (n, C_out, H_out, W_out) -> dM (a*a, C_out, n*T_h*T_w); the cropped outputs get zero gradient.
    """
    xp = get_array_module(dy)
    m, a = AT.shape
    n, C_out, H_out, W_out = dy.shape
    dY = xp.zeros((m, m, C_out, n, T_h, T_w), dtype=dy.dtype)             # dY[u, v] for each tile
    for u in range(m):
        for v in range(m):
            H_u, W_v = -(-(H_out - u) // m), -(-(W_out - v) // m)          # tiles whose (u, v) output exists
            dY[u, v, :, :, :H_u, :W_v] = dy[:, :, u::m, v::m].transpose(1, 0, 2, 3)
    dS = xp.empty((a, m, C_out, n, T_h, T_w), dtype=dy.dtype)
    for k in range(a):       # rows: dS[k, v] = sum_u A^T[u, k] dY[u, v]
        for v in range(m):
            _lincomb(xp, AT[:, k], dY[:, v], dS[k, v])
    dM = xp.empty((a, a, C_out, n, T_h, T_w), dtype=dy.dtype)
    for k in range(a):       # columns: dM[k, l] = sum_v A^T[v, l] dS[k, v]
        for l in range(a):
            _lincomb(xp, AT[:, l], dS[k], dM[k, l])
    return dM.reshape(a * a, C_out, n * T_h * T_w)                        # (a*a, C_out, n*T_h*T_w)


# --------------------------------------------------------------------------- the Winograd path

def _conv2d_winograd(x, w, stride, padding, dilation, groups, buf=None, m=2):
    """Winograd F(m x m, 3x3) convolution without bias. x: (n, C, H, W), w: (C_out, C, 3, 3) -> (n, C_out, H_out, W_out).

    ``stride``, ``dilation`` must be (1, 1) and ``groups`` 1 (``winograd_applies``); ``padding`` is a pair.
    ``buf`` : optional C-contiguous work array of x's dtype with at least ``(m+2)^2 * C * n * T_h * T_w``
    elements (``T = ceil(out / m)`` tiles per axis) that holds ``V``; a new one is made otherwise.
    """
    assert winograd_applies(w.shape[2:], stride, dilation, groups), "the Winograd path is 3x3, stride 1, groups 1"
    xp = get_array_module(x, w)
    (n, C, H, W), C_out = x.shape, w.shape[0]
    BT, G, AT = _MATRICES[m]
    a = m + 2
    H_out, W_out = H + 2 * padding[0] - 2, W + 2 * padding[1] - 2
    T_h, T_w = _tiles(H_out, W_out, m)
    U = _kernel_transform(w, G)                                           # (a*a, C_out, C)
    V = _input_transform(_pad_split(x, padding, m, T_h, T_w), BT, m, T_h, T_w,
                         _work(xp, buf, (a * a, C, n * T_h * T_w), x.dtype))  # (a*a, C, n*T_h*T_w)
    M = xp.matmul(U, V)                                                   # (a*a, C_out, n*T_h*T_w): the GEMMs
    return _output_transform(M, AT, n, T_h, T_w, H_out, W_out)            # (n, C_out, H_out, W_out)


def _conv2d_backward_winograd(dy, x, w, stride, padding, dilation, groups, buf=None, m=2):
    """The adjoint of ``_conv2d_winograd``. dy: (n, C_out, H_out, W_out) -> dx (n, C, H, W) and dw_t (1, C*9, C_out).

    ``dw_t`` is ``dw`` transposed as conv2d's other paths return it: ``dw_t[0] == dw.reshape(C_out, -1).T``.
    ``buf`` holds ``V`` and then ``dV``, as in the forward.
    """
    assert winograd_applies(w.shape[2:], stride, dilation, groups), "the Winograd path is 3x3, stride 1, groups 1"
    xp = get_array_module(dy, x, w)
    (n, C, H, W), C_out = x.shape, w.shape[0]
    BT, G, AT = _MATRICES[m]
    a = m + 2
    H_out, W_out = dy.shape[2:]
    T_h, T_w = _tiles(H_out, W_out, m)
    x_p = _pad_split(x, padding, m, T_h, T_w)                             # (C, n, Hp, m, T_w+1)
    V = _input_transform(x_p, BT, m, T_h, T_w, _work(xp, buf, (a * a, C, n * T_h * T_w), x.dtype))
    dM = _output_transform_adjoint(dy, AT, T_h, T_w)                      # (a*a, C_out, n*T_h*T_w)
    dU = xp.matmul(dM, V.transpose(0, 2, 1))                              # (a*a, C_out, C): the GEMMs of dw
    dw = _kernel_transform_adjoint(dU, G)                                 # (C_out, C, 3, 3)
    U = _kernel_transform(w, G)                                           # (a*a, C_out, C)
    dV = xp.matmul(U.transpose(0, 2, 1), dM, out=V)                       # (a*a, C, n*T_h*T_w), reusing V
    dx = _unsplit_crop(_input_transform_adjoint(dV, BT, m, T_h, T_w, x_p.shape), x.shape, padding)
    return dx, dw.reshape(C_out, C * 9).T[None]                           # (n, C, H, W), (1, C*9, C_out)


# --------------------------------------------------------------------------- public functions

def _check_winograd_args(op, x, w, b, padding, m):
    """Validate ``conv2d_winograd``'s arguments; return the padding pair and (H_out, W_out)."""
    check_conv_operands(x, w, b, 1, op, "N, C, H, W", "C_out, C, 3, 3")
    N, C, H, W = x.shape
    C_out, C_w, KH, KW = w.shape
    if (KH, KW) != (3, 3):
        raise ValueError(f"{op}: expected a 3x3 kernel, w of shape ({C_out}, {C}, 3, 3), got w of shape {tuple(w.shape)}")
    if C_w != C:
        raise ValueError(f"{op}: expected w.shape[1] == C = {C} (groups = 1), got w of shape {tuple(w.shape)}")
    check_bias(b, C_out, x.dtype, op)
    if m not in _MATRICES:
        raise ValueError(f"{op}: expected m in {sorted(_MATRICES)}, got {m!r}")
    ph, pw = check_nonnegative(pair(padding, "padding", op), "padding", op)
    H_out, W_out = conv_output_size(H, 3, 1, ph), conv_output_size(W, 3, 1, pw)
    if H_out < 1 or W_out < 1:
        raise ValueError(f"{op}: expected the 3x3 kernel to fit in the padded input ({H + 2 * ph}, {W + 2 * pw}), "
                         f"got output size ({H_out}, {W_out})")
    return (ph, pw), (H_out, W_out)


def _chunks(N, C, H_out, W_out, m, itemsize):
    """Sample ranges whose ``V`` is about ``shapes.CHUNK_BYTES``, and the largest chunk's size."""
    T_h, T_w = _tiles(H_out, W_out, m)
    nc = chunk_size(N, (m + 2) ** 2 * C * T_h * T_w * itemsize)
    return [(n0, min(N, n0 + nc)) for n0 in range(0, N, nc)], (m + 2) ** 2 * C * nc * T_h * T_w


def conv2d_winograd(x, w, b=None, *, padding=0, m=2):
    """3x3 convolution (stride 1, dilation 1, groups 1) by Winograd's F(m x m, 3x3); same result as ``conv2d``.

    Parameters
    ----------
    x : ndarray, shape (N, C, H, W), float
    w : ndarray, shape (C_out, C, 3, 3), same dtype as x
    b : ndarray, shape (C_out,), optional
    padding : int or (int, int)
    m : 2 or 4
        Output block per tile: F(2x2, 3x3) (16 products per 4 outputs) or F(4x4, 3x3) (36 per 16,
        less accurate in float32).

    Returns
    -------
    y : ndarray, shape (N, C_out, H_out, W_out), ``H_out = H + 2 p_h - 2``, ``W_out = W + 2 p_w - 2``
    cache : Conv2dCache
        ``(x, w, has_bias, (1, 1), padding, (1, 1), 1)``, as ``conv2d``'s; read by ``conv2d_winograd_backward``.

    Raises
    ------
    ValueError
        A kernel that is not 3x3, channels that do not match, a bias of the wrong shape,
        negative padding, an input too small for the kernel, or ``m`` not 2 or 4.
    TypeError
        Integer or mismatched dtypes, or NumPy and CuPy arrays mixed.

    See Also
    --------
    minseg.ops.conv2d : the same convolution by im2col + one matrix product.

    References
    ----------
    Lavin & Gray, "Fast Algorithms for Convolutional Neural Networks", CVPR 2016.
    """
    op = "conv2d_winograd"
    p, (H_out, W_out) = _check_winograd_args(op, x, w, b, padding, m)
    xp = get_array_module(x, w, b)
    N, C = x.shape[:2]
    C_out = w.shape[0]
    y = xp.empty((N, C_out, H_out, W_out), dtype=x.dtype)
    chunks, size = _chunks(N, C, H_out, W_out, m, x.itemsize)
    buf = xp.empty(size, dtype=x.dtype)  # V, reused by every chunk
    for n0, n1 in chunks:
        y[n0:n1] = _conv2d_winograd(x[n0:n1], w, (1, 1), p, (1, 1), 1, buf, m=m)
    if b is not None:
        y += b.reshape(1, C_out, 1, 1)
    return y, Conv2dCache(x, w, b is not None, (1, 1), p, (1, 1), 1)


def conv2d_winograd_backward(dy, cache: Conv2dCache, *, m=2):
    """Gradients of ``conv2d_winograd`` with respect to x, w and b, by the transposed Winograd transforms.

    Parameters
    ----------
    dy : ndarray, shape (N, C_out, H_out, W_out)
    cache : Conv2dCache
        From ``conv2d_winograd`` (or from ``conv2d`` of a 3x3, stride-1, dilation-1, groups-1 convolution).
    m : 2 or 4
        The tile size (need not match the forward's: the gradients are the same).

    Returns
    -------
    dx : ndarray, shape (N, C, H, W)
    dw : ndarray, shape (C_out, C, 3, 3)
    db : ndarray of shape (C_out,), or None when the forward had no bias
    """
    op = "conv2d_winograd_backward"
    x, w, has_bias, s, p, d, G = cache
    if not winograd_applies(w.shape[2:], s, d, G):
        raise ValueError(f"{op}: expected a cache of a 3x3 convolution with stride 1, dilation 1, groups 1, "
                         f"got kernel {tuple(w.shape[2:])}, stride {s}, dilation {d}, groups {G}")
    if m not in _MATRICES:
        raise ValueError(f"{op}: expected m in {sorted(_MATRICES)}, got {m!r}")
    xp = get_array_module(dy, x)
    N, C, H, W = x.shape
    C_out = w.shape[0]
    H_out, W_out = conv_output_size(H, 3, 1, p[0]), conv_output_size(W, 3, 1, p[1])
    check_shape(dy, (N, C_out, H_out, W_out), "dy", op)
    dx = xp.empty_like(x)
    dw_t = xp.zeros((1, C * 9, C_out), dtype=x.dtype)
    chunks, size = _chunks(N, C, H_out, W_out, m, x.itemsize)
    buf = xp.empty(size, dtype=x.dtype)
    for n0, n1 in chunks:
        dx[n0:n1], dw_c = _conv2d_backward_winograd(dy[n0:n1], x[n0:n1], w, s, p, d, G, buf, m=m)
        dw_t += dw_c
    db = dy.sum(axis=(0, 2, 3)) if has_bias else None
    dw = xp.ascontiguousarray(dw_t[0].T).reshape(w.shape)                  # (C_out, C, 3, 3)
    return dx, dw, db

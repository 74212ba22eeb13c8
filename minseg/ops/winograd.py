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
The algorithm is exact in exact arithmetic. In float64 it agrees with PyTorch
and with the direct sum to a few 1e-15 relative (F(2x2)) and about 1e-14
(F(4x4)) at 64 channels, forward and every gradient. In float32, against the
float64 result (normwise: max |error| / max |exact|), on random inputs of the
three shapes of benchmarks/bench_winograd.py (batch 16, 16 to 64 channels,
32x32 and 64x64):

    path          y              dx             dw
    im2col        3.7e-7-5.2e-7  1.4e-7-2.1e-7  3.7e-7-3.8e-7
    F(2x2, 3x3)   1.9e-7-2.6e-7  2.3e-7-3.4e-7  6.0e-7-7.5e-7
    F(4x4, 3x3)   3.1e-6-5.1e-6  2.5e-6-4.5e-6  4.6e-6-1.1e-5

F(2x2) stays within 2x of the direct sum's rounding (y is even a little more
accurate: its sums run over C channels, not 9 C taps); F(4x4) loses about one
more decimal digit, because its transform entries (up to 8 in A^T, 1/24 in G)
amplify rounding.

Speed
-----
The products shrink by 36/16 = 2.25 (F(2x2)) or 144/36 = 4 (F(4x4)), but the
transforms are element-wise passes over arrays 4x (F(2x2)) or 2.25x (F(4x4))
the size of the input, which NumPy runs on one core at memory speed. On a
2-core CPU they cost about what the smaller products save:
benchmarks/bench_winograd.py measures the two against the im2col path.

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

__all__ = ["conv2d_winograd", "conv2d_winograd_backward", "winograd_applies", "winograd_matrices", "winograd_work_size"]


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
    """``shape`` on ``buf``'s memory if ``buf`` is C-contiguous, of ``dtype`` and large enough; else a new array."""
    size = int(np.prod(shape))
    if buf is not None and buf.dtype == dtype and buf.flags.c_contiguous and buf.size >= size:
        return buf.reshape(-1)[:size].reshape(shape)
    return xp.empty(shape, dtype=dtype)


# --------------------------------------------------------------------------- the layout: phases and wide tile rows
#
# The transforms add slices of the padded input shifted by whole pixels. NumPy adds long contiguous
# runs of memory several times faster than short strided ones, so the padded input is stored split
# by phase: pixel (m q + r, m p + s) of the padded image lives at x_p[..., r, s, q, p], a grid of
# (T_h + 1) x (T_w + 1) blocks per phase. Row i of tile (t_h, t_w) is then row block t_h + i // m
# of phase i % m, and column j is column block t_w + j // m of phase j % m.
#
# As in conv.py's wide rows, the tiles are numbered t = t_h * (T_w + 1) + t_w over rows T_w + 1
# tiles wide, so that "one block to the right" is "one position further" in a flat array and every
# slice is one long run. The last tile of each row (t_w = T_w) reads values wrapped around from the
# next row: its outputs are dropped and its gradient is zero, so it adds exactly nothing.

def _tiles(H_out: int, W_out: int, m: int):
    """Number of tiles per axis, ``(ceil(H_out / m), ceil(W_out / m))``."""
    return -(-H_out // m), -(-W_out // m)


def _phase_range(pad: int, size: int, phase: int, m: int, blocks: int):
    """Blocks ``q`` whose padded position ``m*q + phase`` lies in the data ``[pad, pad + size)``.

    Returns ``(q_lo, q_hi, first)``: data positions ``first, first + m, ...`` go to blocks
    ``q_lo ... q_hi - 1``. Outside that range the padded position is a zero.
    """
    q_lo = max(0, -((phase - pad) // m))                    # ceil((pad - phase) / m)
    q_hi = min(blocks, (pad + size - 1 - phase) // m + 1)
    return q_lo, max(q_lo, q_hi), m * q_lo + phase - pad


def _pad_split(x, padding, m, T_h, T_w):
    """Zero-pad ``x`` and split it by phase.

    x : (n, C, H, W) -> x_p (C, n, m, m, T_h+1, T_w+1) with
    ``x_p[c, n, r, s, q, p] = x_pad[n, c, m*q + r, m*p + s]``, ``x_pad`` being ``x`` with ``padding``
    zeros on the top / left and enough zeros on the bottom / right for every tile.
    """
    xp = get_array_module(x)
    n, C, H, W = x.shape
    ph, pw = padding
    x_p = xp.zeros((C, n, m, m, T_h + 1, T_w + 1), dtype=x.dtype)
    x_t = x.transpose(1, 0, 2, 3)  # (C, n, H, W), a view
    for r in range(m):
        qh_lo, qh_hi, h0 = _phase_range(ph, H, r, m, T_h + 1)
        for s in range(m):
            qw_lo, qw_hi, w0 = _phase_range(pw, W, s, m, T_w + 1)
            if qh_hi > qh_lo and qw_hi > qw_lo:
                x_p[:, :, r, s, qh_lo:qh_hi, qw_lo:qw_hi] = \
                    x_t[:, :, steps(h0, qh_hi - qh_lo, m), steps(w0, qw_hi - qw_lo, m)]
    return x_p


def _unsplit_crop(dx_p, x_shape, padding):
    """The adjoint of ``_pad_split``: phases back in place, the padding dropped.

    dx_p : (C, n, m, m, T_h+1, T_w+1) -> dx (n, C, H, W), a new array.
    """
    xp = get_array_module(dx_p)
    n, C, H, W = x_shape
    ph, pw = padding
    m, Bh, Bw = dx_p.shape[2], dx_p.shape[4], dx_p.shape[5]
    dx = xp.empty((n, C, H, W), dtype=dx_p.dtype)
    dx_t = dx.transpose(1, 0, 2, 3)  # (C, n, H, W), a view
    for r in range(m):
        qh_lo, qh_hi, h0 = _phase_range(ph, H, r, m, Bh)
        for s in range(m):
            qw_lo, qw_hi, w0 = _phase_range(pw, W, s, m, Bw)
            if qh_hi > qh_lo and qw_hi > qw_lo:
                dx_t[:, :, steps(h0, qh_hi - qh_lo, m), steps(w0, qw_hi - qw_lo, m)] = \
                    dx_p[:, :, r, s, qh_lo:qh_hi, qw_lo:qw_hi]
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
    """``dw[o, c] = G^T dU[:, :, o, c] G``, adjoint of ``_kernel_transform``: (a*a, C_out, C) -> (C_out, C, 3, 3)."""
    xp = get_array_module(dU)
    a = G.shape[0]
    C_out, C = dU.shape[1:]
    G = xp.asarray(G, dtype=dU.dtype)
    dU4 = dU.reshape(a, a, C_out, C).transpose(2, 3, 0, 1)                # (C_out, C, a, a), a view
    return G.T @ dU4 @ G                                                    # (C_out, C, 3, 3)


def _input_transform(x_p, BT, T_h, T_w, out):
    """``V[k, l, c, (n, t)] = (B^T d B)[k, l]`` for every tile ``d`` of the padded input.

    x_p : (C, n, m, m, T_h+1, T_w+1) from ``_pad_split``.
    out : (a*a, C, n*F), written; ``F = T_h * (T_w+1)`` tiles per sample, on wide tile rows.

    Rows first: ``R_k = sum_i B^T[k, i] x_pad[rows m t_h + i]``, (C, n, m, F) plus one zero at the
    end of each phase; then columns: ``V[k, l] = sum_j B^T[l, j] R_k[columns m t_w + j]``.
    """
    xp = get_array_module(x_p)
    a = BT.shape[0]
    C, n, m = x_p.shape[:3]
    F = T_h * (T_w + 1)
    V = out.reshape(a, a, C, n, F)                                        # (a, a, C, n, F), a view
    rows = [x_p[:, :, i % m, :, i // m:i // m + T_h] for i in range(a)]  # a x (C, n, m, T_h, T_w+1), views
    R = xp.empty((C, n, m, F + 1), dtype=x_p.dtype)
    R[..., F] = 0                                                         # read only by the last, dropped tile
    R_rows = R[..., :F].reshape(C, n, m, T_h, T_w + 1)                   # (C, n, m, T_h, T_w+1), a view
    for k in range(a):
        _lincomb(xp, BT[k], rows, R_rows)
        cols = [R[:, :, j % m, j // m:j // m + F] for j in range(a)]     # a x (C, n, F), views
        for l in range(a):
            _lincomb(xp, BT[l], cols, V[k, l])
    return out


def _input_transform_adjoint(dV, BT, T_h, T_w, x_p_shape):
    """The adjoint of ``_input_transform``: ``B dV B^T`` of every tile, added onto the padded input.

    dV : (a*a, C, n*F) -> dx_p (C, n, m, m, T_h+1, T_w+1), the overlapping tiles summed.
    """
    xp = get_array_module(dV)
    a = BT.shape[0]
    C, n, m = x_p_shape[:3]
    F = T_h * (T_w + 1)
    dV5 = dV.reshape(a, a, C, n, F)                                       # (a, a, C, n, F)
    dx_p = xp.zeros(x_p_shape, dtype=dV.dtype)
    dR = xp.empty((C, n, m, F + 1), dtype=dV.dtype)
    dR_rows = dR[..., :F].reshape(C, n, m, T_h, T_w + 1)                 # (C, n, m, T_h, T_w+1), a view
    for k in range(a):
        dR[...] = 0
        for j in range(a):   # columns: dR_k[columns m t_w + j] += sum_l B^T[l, j] dV[k, l]
            for l in range(a):
                _axpy(xp, float(BT[l, j]), dV5[k, l], dR[:, :, j % m, j // m:j // m + F])
        for i in range(a):   # rows: x_pad[rows m t_h + i] += B^T[k, i] dR_k
            # one slice has no repeated rows: a plain += is exact here
            _axpy(xp, float(BT[k, i]), dR_rows, dx_p[:, :, i % m, :, i // m:i // m + T_h])
    return dx_p


def _output_transform(M, AT, n, T_h, T_w, H_out, W_out):
    """``y[n, o, m t_h + u, m t_w + v] = (A^T M A)[u, v]`` per tile, cropped to (H_out, W_out).

    M : (a*a, C_out, n*F) on wide tile rows -> y (n, C_out, H_out, W_out), a view of a new array.
    Columns first: ``S[k, v] = sum_l A^T[v, l] M[k, l]``; then rows: ``Y[u, v] = sum_k A^T[u, k] S[k, v]``.
    """
    xp = get_array_module(M)
    m, a = AT.shape
    C_out = M.shape[1]
    M5 = M.reshape(a, a, C_out, n, T_h * (T_w + 1))                       # (a, a, C_out, n, F)
    S = xp.empty((a, m, C_out, n, T_h * (T_w + 1)), dtype=M.dtype)
    for k in range(a):
        for v in range(m):
            _lincomb(xp, AT[v], M5[k], S[k, v])
    S = S.reshape(a, m, C_out, n, T_h, T_w + 1)[..., :T_w]               # (a, m, C_out, n, T_h, T_w), extra tiles out
    y = xp.empty((n, C_out, T_h, m, T_w, m), dtype=M.dtype)
    for u in range(m):
        for v in range(m):   # written straight into the interleaved output: y[n, o, m t_h + u, m t_w + v]
            _lincomb(xp, AT[u], S[:, v], y[:, :, :, u, :, v].transpose(1, 0, 2, 3))
    return y.reshape(n, C_out, T_h * m, T_w * m)[:, :, :H_out, :W_out]    # (n, C_out, H_out, W_out)


def _output_transform_adjoint(dy, AT, T_h, T_w):
    """The adjoint of ``_output_transform``: ``dM[k, l] = (A dY A^T)[k, l]`` per tile.

    dy : (n, C_out, H_out, W_out) -> dM (a*a, C_out, n*F) on wide tile rows; cropped outputs and
    the extra tile of each row get zero gradient.
    """
    xp = get_array_module(dy)
    m, a = AT.shape
    n, C_out, H_out, W_out = dy.shape
    F = T_h * (T_w + 1)
    dY = xp.zeros((m, m, C_out, n, T_h, T_w + 1), dtype=dy.dtype)        # dY[u, v] for each tile
    for u in range(m):
        for v in range(m):
            H_u, W_v = -(-(H_out - u) // m), -(-(W_out - v) // m)          # tiles whose (u, v) output exists
            dY[u, v, :, :, :H_u, :W_v] = dy[:, :, u::m, v::m].transpose(1, 0, 2, 3)
    dY = dY.reshape(m, m, C_out, n, F)                                    # (m, m, C_out, n, F)
    dS = xp.empty((a, m, C_out, n, F), dtype=dy.dtype)
    for k in range(a):       # rows: dS[k, v] = sum_u A^T[u, k] dY[u, v]
        for v in range(m):
            _lincomb(xp, AT[:, k], dY[:, v], dS[k, v])
    dM = xp.empty((a, a, C_out, n, F), dtype=dy.dtype)
    for k in range(a):       # columns: dM[k, l] = sum_v A^T[v, l] dS[k, v]
        for l in range(a):
            _lincomb(xp, AT[:, l], dS[k], dM[k, l])
    return dM.reshape(a * a, C_out, n * F)                                # (a*a, C_out, n*F)


# --------------------------------------------------------------------------- the Winograd path

def _conv2d_winograd(x, w, stride, padding, dilation, groups, buf=None, m=2):
    """Winograd F(m x m, 3x3) convolution, no bias. x: (n, C, H, W), w: (C_out, C, 3, 3) -> (n, C_out, H_out, W_out).

    ``stride``, ``dilation`` must be (1, 1) and ``groups`` 1 (``winograd_applies``); ``padding`` is a pair.
    ``buf`` : optional C-contiguous work array of x's dtype with at least ``winograd_work_size(...)``
    elements, which holds ``V``; a new one is made otherwise.
    """
    assert winograd_applies(w.shape[2:], stride, dilation, groups), "the Winograd path is 3x3, stride 1, groups 1"
    xp = get_array_module(x, w)
    (n, C, H, W), C_out = x.shape, w.shape[0]
    BT, G, AT = _MATRICES[m]
    a = m + 2
    H_out, W_out = H + 2 * padding[0] - 2, W + 2 * padding[1] - 2
    T_h, T_w = _tiles(H_out, W_out, m)
    P = n * T_h * (T_w + 1)                                               # tiles, on wide tile rows
    U = _kernel_transform(w, G)                                           # (a*a, C_out, C)
    V = _input_transform(_pad_split(x, padding, m, T_h, T_w), BT, T_h, T_w,
                         _work(xp, buf, (a * a, C, P), x.dtype))         # (a*a, C, P)
    M = xp.matmul(U, V)                                                   # (a*a, C_out, P): the GEMMs
    return _output_transform(M, AT, n, T_h, T_w, H_out, W_out)            # (n, C_out, H_out, W_out)


def _conv2d_backward_winograd(dy, x, w, stride, padding, dilation, groups, buf=None, m=2):
    """The adjoint of ``_conv2d_winograd``. dy: (n, C_out, H_out, W_out) -> dx (n, C, H, W) and dw (C_out, C, 3, 3).

    ``buf`` holds ``V`` and then ``dV``, as in the forward.
    """
    assert winograd_applies(w.shape[2:], stride, dilation, groups), "the Winograd path is 3x3, stride 1, groups 1"
    xp = get_array_module(dy, x, w)
    (n, C, H, W), C_out = x.shape, w.shape[0]
    BT, G, AT = _MATRICES[m]
    a = m + 2
    H_out, W_out = dy.shape[2:]
    T_h, T_w = _tiles(H_out, W_out, m)
    P = n * T_h * (T_w + 1)
    x_p = _pad_split(x, padding, m, T_h, T_w)                             # (C, n, m, m, T_h+1, T_w+1)
    V = _input_transform(x_p, BT, T_h, T_w, _work(xp, buf, (a * a, C, P), x.dtype))  # (a*a, C, P)
    dM = _output_transform_adjoint(dy, AT, T_h, T_w)                      # (a*a, C_out, P)
    dU = xp.matmul(dM, V.transpose(0, 2, 1))                              # (a*a, C_out, C): the GEMMs of dw
    dw = _kernel_transform_adjoint(dU, G)                                 # (C_out, C, 3, 3)
    U = _kernel_transform(w, G)                                           # (a*a, C_out, C)
    dV = xp.matmul(U.transpose(0, 2, 1), dM, out=V)                       # (a*a, C, P), reusing V
    dx = _unsplit_crop(_input_transform_adjoint(dV, BT, T_h, T_w, x_p.shape), x.shape, padding)
    return dx, dw.reshape(C_out, C, 3, 3)                                   # (n, C, H, W), (C_out, C, 3, 3)


def winograd_work_size(n: int, C: int, H_out: int, W_out: int, m: int = 2) -> int:
    """Elements of the work buffer ``V`` of a chunk of ``n`` samples: ``(m+2)^2 * C * n * T_h * (T_w+1)``."""
    T_h, T_w = _tiles(H_out, W_out, m)
    return (m + 2) ** 2 * C * n * T_h * (T_w + 1)


# --------------------------------------------------------------------------- public functions

def _check_winograd_args(op, x, w, b, padding, m):
    """Validate ``conv2d_winograd``'s arguments; return the padding pair and (H_out, W_out)."""
    check_conv_operands(x, w, b, 1, op, "N, C, H, W", "C_out, C, 3, 3")
    N, C, H, W = x.shape
    C_out, C_w, KH, KW = w.shape
    if (KH, KW) != (3, 3):
        raise ValueError(f"{op}: expected a 3x3 kernel, w of shape ({C_out}, {C}, 3, 3), "
                         f"got w of shape {tuple(w.shape)}")
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
    nc = chunk_size(N, winograd_work_size(1, C, H_out, W_out, m) * itemsize)
    return [(n0, min(N, n0 + nc)) for n0 in range(0, N, nc)], winograd_work_size(nc, C, H_out, W_out, m)


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
    dw = xp.zeros(w.shape, dtype=x.dtype)  # summed over the chunks
    chunks, size = _chunks(N, C, H_out, W_out, m, x.itemsize)
    buf = xp.empty(size, dtype=x.dtype)
    for n0, n1 in chunks:
        dx[n0:n1], dw_c = _conv2d_backward_winograd(dy[n0:n1], x[n0:n1], w, s, p, d, G, buf, m=m)
        dw += dw_c
    db = dy.sum(axis=(0, 2, 3)) if has_bias else None
    return dx, dw, db

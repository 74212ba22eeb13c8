"""2-D transposed convolution ("deconvolution"): the backward pass of a convolution, run forward.

A convolution with weights ``w`` maps an input of size ``H_out`` (here: the
transposed convolution's *output*) to an output of size ``H`` (here: its
*input*). Written as a matrix, ``vec(conv2d(z, w)) = C @ vec(z)``. The
transposed convolution multiplies by the transpose of that matrix:

    vec(conv_transpose2d(x, w)) = C.T @ vec(x)

so every input pixel ``x[n, c, h, v]`` stamps a copy of the kernel, scaled by
its value, onto the output, ``s`` pixels apart:

    y_pad[n, o, h*s_h + kh*d_h, v*s_w + kw*d_w] += x[n, c, h, v] * w[c, o - g*C_out_g, kh, kw]

for ``c`` in group ``g`` (``o`` in the same group); then ``y`` is ``y_pad``
without ``p`` rows / columns on each side, plus ``b[o]``. Weights are
``(C_in, C_out // groups, KH, KW)``, PyTorch's ``torch.nn.ConvTranspose2d``
layout. Output size per axis:

    H_out = (H - 1) s - 2 p + d (k - 1) + output_padding + 1

A strided convolution maps ``s`` different input sizes to the same output size;
``output_padding`` (which must be smaller than the stride or the dilation)
picks which one the transposed convolution restores.

The plain path: multiply by C.T
-------------------------------
Read literally, ``C.T @ vec(x)`` is ``col2im`` of ``w_mat.T @ x_mat``: every
input pixel's column ``w_mat.T x[:, h, v]`` holds its kernel stamp, and
``col2im`` (the transpose of ``im2col``) adds the stamps onto the output.
That is ``_conv_transpose2d_plain``, a few lines; it builds a column matrix
``C_out*KH*KW`` rows tall and runs only when the tests force it
(``_use_plain_path``), to check the fast path against it.

The fast path: output phases and shifted matrix products
--------------------------------------------------------
Write a tap's offset as ``kh*d = q*s + phase`` (quotient and remainder by the
stride). The tap writes input row ``h`` to output row ``s*(h + q) + phase``:
every output row of one *phase* (row mod ``s``) receives whole input rows,
*shifted* by ``q``. So per phase pair ``(a, b)`` the output is a plain sum of
shifted images, one per tap:

    Z[a, b][m, l] = sum over taps with phases (a, b) of  w_tap.T @ x[m - q_h, l - q_w]

and ``y_pad[s*m + a, s*l + b] = Z[a, b][m, l]`` interleaves the ``s_h * s_w``
phase images (a *pixel shuffle*: the transposed convolution is ``s^2`` small
stride-1 convolutions, Shi et al. 2016). No zeros are inserted and nothing is
unrolled:

* the taps with the same shift ``(q_h, q_w)`` are stacked into one matrix, so
  each shift is ONE matrix product ``(phases*C_out, C_in) @ (C_in, pixels)``;
* the shifted image is a *slice* of ``x`` laid out on a zero-bordered grid
  and flattened: shifting by ``(q_h, q_w)`` is an offset ``q_h*W_grid + q_w``
  into the flat array, so the product reads ``x`` in place.

The backward pass is a convolution: ``dx = conv2d(dy, w)`` with the same
stride, padding, dilation and groups. The plain backward
(``_conv_transpose2d_backward_plain``) computes it like ``conv2d`` itself, by
unrolling ``dy`` once (``im2col``) and two matrix products:

    cols = im2col(dy)                (C_out*KH*KW, N*H*W)
    dx   = w_mat @ cols              (C_in, N*H*W)            per group
    dw   = x_mat @ cols.T            (C_in, C_out*KH*KW)      per group
    db   = sum of dy over (n, i, j)

The fast backward (``_conv_transpose2d_backward_phases``) is the phase path
transposed: ``dy`` is de-interleaved into its phase images ``D`` (the inverse
pixel shuffle, one copy of ``dy``), and per shift ``q`` the forward's product
``Z += w_q.T @ x_shifted`` gives two products that read ``D`` and ``x`` in
place, ``dw_q = D @ x_shifted.T`` and ``dx += w_q @ D_shifted``. No column
matrix ``KH*KW`` times the size of ``dy`` is built.

References
----------
V. Dumoulin and F. Visin, "A guide to convolution arithmetic for deep
learning", arXiv:1603.07285, 2016, section 4 (transposed convolution arithmetic).
W. Shi, J. Caballero, L. Theis et al., "Is the deconvolution layer the same as
a convolutional layer?", arXiv:1609.07009, 2016 (the sub-pixel / phase view).
M. D. Zeiler and R. Fergus, "Visualizing and Understanding Convolutional
Networks", ECCV 2014; H. Noh, S. Hong, B. Han, "Learning Deconvolution Network
for Semantic Segmentation", ICCV 2015 (DeconvNet).
J. Long, E. Shelhamer, T. Darrell, "Fully Convolutional Networks for Semantic
Segmentation", CVPR 2015 (upsampling by backwards-strided convolution).
"""
from __future__ import annotations

from typing import NamedTuple

from ..backend import get_array_module, pad_to, workspace
from ..shapes import (
    check_bias,
    check_conv_operands,
    check_nonnegative,
    check_positive,
    check_shape,
    chunk_size,
    conv_output_size,
    conv_transpose_output_size,
    pair,
    steps,
)
from .im2col import col2im, im2col

__all__ = ["conv_transpose2d", "conv_transpose2d_backward", "ConvTranspose2dCache"]


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
    check_conv_operands(x, w, b, groups, op, "N, C_in, H, W", "C_in, C_out // groups, KH, KW")
    N, C_in, H, W = x.shape
    C_w, C_out_g, KH, KW = w.shape
    if H < 1 or W < 1:  # no pixel to stamp a kernel with: an all-bias output would be made up (PyTorch raises too)
        raise ValueError(f"{op}: expected an input image of at least 1x1 pixels, got x of shape {tuple(x.shape)}")
    if C_in % groups:
        raise ValueError(f"{op}: expected input channels C_in divisible by groups={groups}, got C_in={C_in}")
    if C_w != C_in:
        raise ValueError(f"{op}: expected w.shape[0] == C_in = {C_in} (weights are (C_in, C_out // groups, KH, KW)), "
                         f"got w of shape {tuple(w.shape)}")
    C_out = C_out_g * groups
    check_bias(b, C_out, x.dtype, op)
    check_positive((KH, KW), "kernel_size", op)
    s = check_positive(pair(stride, "stride", op), "stride", op)
    p = check_nonnegative(pair(padding, "padding", op), "padding", op)
    out_pad = check_nonnegative(pair(output_padding, "output_padding", op), "output_padding", op)
    d = check_positive(pair(dilation, "dilation", op), "dilation", op)
    for axis in range(2):
        if not (out_pad[axis] < s[axis] or out_pad[axis] < d[axis]):
            raise ValueError(f"{op}: expected output_padding smaller than stride or dilation, "
                             f"got output_padding={out_pad} with stride={s} and dilation={d}")
    H_out = conv_transpose_output_size(H, KH, s[0], p[0], out_pad[0], d[0])
    W_out = conv_transpose_output_size(W, KW, s[1], p[1], out_pad[1], d[1])
    if H_out < 1 or W_out < 1:
        raise ValueError(f"{op}: expected an output size >= 1, got ({H_out}, {W_out}) from input ({H}, {W}), "
                         f"kernel ({KH}, {KW}), stride {s}, padding {p}, output_padding {out_pad}, dilation {d}")
    return s, p, out_pad, d, (H_out, W_out)


class _AxisPlan(NamedTuple):
    """How one axis of a transposed convolution splits into phases and shifts.

    Fields
    ------
    Q : int, the largest shift ``(k - 1) * d // s``; the phase images have ``n_in + Q`` rows
    shifts : dict q -> (tap slice, phase slice): the taps ``k`` with ``k*d // s == q``
        (consecutive) and their phases ``k*d % s`` (every ``d``-th phase)
    rows : per phase ``a``, ``(output rows, phase-image rows)`` as two slices, or None
        when no output row has that phase
    covered : bool, False when some output rows lie past the phase images
        (``output_padding >= stride``): those rows are zero (plus bias)
    """

    Q: int
    shifts: dict
    rows: list
    covered: bool


def _axis_plan(n_in, n_out, kernel, stride, padding, dilation) -> _AxisPlan:
    """Split one axis: tap ``k`` adds input row ``h`` to output row ``s*(h + q) + phase - p``."""
    taps = {}
    for k in range(kernel):
        q, phase = divmod(k * dilation, stride)
        taps.setdefault(q, []).append((k, phase))
    shifts = {q: (slice(t[0][0], t[-1][0] + 1), slice(t[0][1], t[-1][1] + 1, dilation)) for q, t in taps.items()}
    Q = (kernel - 1) * dilation // stride
    n_grid = n_in + Q
    rows, covered = [], True
    for phase in range(stride):
        first = (phase - padding) % stride          # first output row of this phase
        m0 = (first + padding - phase) // stride    # its row in the phase image
        count = len(range(first, n_out, stride))
        on_grid = max(0, min(count, n_grid - m0))
        covered = covered and on_grid == count
        rows.append((steps(first, on_grid, stride), slice(m0, m0 + on_grid)) if on_grid else None)
    return _AxisPlan(Q, shifts, rows, covered)


def _grid(xp, x, G, Qh, Qw):
    """``x`` (n, C, H, W) on the zero-bordered grid, flattened per group: (G, C/G, n*(H+Qh)*(W+Qw) + tail).

    Each sample's image sits at rows ``Qh..``, columns ``Qw..`` of an
    ``(H + Qh, W + Qw)`` plane. A shift ``(q_h, q_w)`` is then the flat slice
    starting at ``(Qh - q_h)*(W + Qw) + (Qw - q_w)``: reads past a row's end
    land in the next row's zero border, and the ``tail`` of zeros covers the last.
    """
    n, C, H, W = x.shape
    Hg, Wg = H + Qh, W + Qw
    M = n * Hg * Wg
    grid = xp.zeros((G, C // G, M + Qh * Wg + Qw), dtype=x.dtype)
    planes = grid[:, :, :M].reshape(G, C // G, n, Hg, Wg)           # a view of grid
    planes[:, :, :, Qh:, Qw:] = x.reshape(n, G, C // G, H, W).transpose(1, 2, 0, 3, 4)
    return grid


class _Shift(NamedTuple):
    """One shift ``(q_h, q_w)`` of the phase path: its taps, their phases and their stacked weights.

    Fields
    ------
    q : (q_h, q_w)
    taps : (kh slice, kw slice), the taps with this shift
    phases : (phase_h slice, phase_w slice), their phases
    w : (G, nh*nw*C_out/G, C_in/G) the taps' weights stacked for one product, rows (phase_h, phase_w, o)
    """

    q: tuple
    taps: tuple
    phases: tuple
    w: object


def _shifts(w_g, plan_h, plan_w):
    """Every shift of the phase path, its weights stacked once per call. ``w_g``: (G, C_in/G, C_out/G, KH, KW)."""
    xp = get_array_module(w_g)
    G, Ci_g, Co_g = w_g.shape[:3]
    w_t = xp.ascontiguousarray(w_g.transpose(0, 3, 4, 2, 1))             # (G, KH, KW, C_out/G, C_in/G)
    out = []
    for qh, (kh, phase_h) in plan_h.shifts.items():
        for qw, (kw, phase_w) in plan_w.shifts.items():
            blk = w_t[:, kh, kw]                                       # (G, nh, nw, C_out/G, C_in/G)
            w_shift = xp.ascontiguousarray(blk).reshape(G, -1, Ci_g)
            out.append(_Shift((qh, qw), (kh, kw), (phase_h, phase_w), w_shift))
    return out


# --------------------------------------------------------------------------- the two forward paths

def _use_plain_path() -> bool:
    """Whether to multiply by the transposed convolution matrix literally (``_conv_transpose2d_plain``)
    and to take the backward from ``im2col(dy)`` (``_conv_transpose2d_backward_plain``).

    Only when the tests force it: both paths are exact, but they add the taps
    in a different order (different round-off), and the phase path reads ``x``
    in place instead of building a (C_out*KH*KW, N*H*W) column matrix.
    """
    return False


def _conv_transpose2d_plain(x, w, stride, padding, dilation, groups, out_hw):
    """The plain path: ``cols = w_mat.T @ x_mat``, then ``col2im``: multiplication by ``C.T``, per group.

    ``col2im`` is the transpose of the ``im2col`` of a convolution on (H_out, W_out) inputs,
    so this is ``vec(y) = C.T vec(x)`` read literally. x: (N, C_in, H, W) -> y (N, C_out, H_out, W_out).
    """
    xp = get_array_module(x, w)
    N, C_in, H, W = x.shape
    _, Co_g, KH, KW = w.shape
    G, (H_out, W_out) = groups, out_hw
    C_out = Co_g * G
    # the convolution on (H_out, W_out) has (H_c, W_c) outputs: (H, W), or more when output_padding >= stride
    H_c, W_c = (conv_output_size(n, k, s_, p_, d_) for n, k, s_, p_, d_ in
                zip((H_out, W_out), (KH, KW), stride, padding, dilation))
    x_mat = pad_to(x, H_c, W_c).transpose(1, 0, 2, 3).reshape(G, C_in // G, N * H_c * W_c)  # (G, C_in/G, N*H_c*W_c)
    w_mat_T = w.reshape(G, C_in // G, Co_g * KH * KW).transpose(0, 2, 1)                    # (G, C_out/G*KH*KW, C_in/G)
    cols = xp.matmul(w_mat_T, x_mat).reshape(C_out * KH * KW, N * H_c * W_c)                # rows ordered (o, kh, kw)
    return col2im(cols, (N, C_out, H_out, W_out), (KH, KW), stride, padding, dilation)      # (N, C_out, H_out, W_out)


def _conv_transpose2d_phases(x, w, s, p, d, groups, out_hw):
    """The fast path: one matrix product per shift, the phase images interleaved (see the module docstring)."""
    xp = get_array_module(x, w)
    N, C_in, H, W = x.shape
    _, Co_g, KH, KW = w.shape
    G, C_out, (H_out, W_out) = groups, Co_g * groups, out_hw
    plan_h, plan_w = _axis_plan(H, H_out, KH, s[0], p[0], d[0]), _axis_plan(W, W_out, KW, s[1], p[1], d[1])
    Hg, Wg = H + plan_h.Q, W + plan_w.Q                                    # phase-image size
    w_g = w.reshape(G, C_in // G, Co_g, KH, KW)                    # (G, C_in/G, C_out/G, KH, KW)
    covered = plan_h.covered and plan_w.covered
    shifts = _shifts(w_g, plan_h, plan_w)
    shifts.sort(key=lambda shift: -shift.w.shape[1])               # one that reaches every phase first, if any
    every_phase = shifts[0].w.shape[1] == s[0] * s[1] * Co_g        # then Z needs no zeros and one addition less
    y = (xp.empty if covered else xp.zeros)((N, C_out, H_out, W_out), dtype=x.dtype)
    nc = chunk_size(N, s[0] * s[1] * C_out * Hg * Wg * x.itemsize)
    for n0 in range(0, N, nc):
        n = min(N, n0 + nc) - n0
        M = n * Hg * Wg
        grid = _grid(xp, x[n0:n0 + n], G, plan_h.Q, plan_w.Q)              # (G, C_in/G, M + tail)
        # the phase images Z and each product z live in reused scratch, not in fresh pages: a first
        # write to fresh memory is a page fault, which made these additions 5x slower
        scratch = workspace(xp, (2, G * s[0] * s[1] * Co_g * M), x.dtype)  # Z, and z (or the padded y)
        Z = scratch[0].reshape(G, s[0], s[1], Co_g, M)             # the phase images, flattened
        if not every_phase:
            Z[...] = 0
        for i, shift in enumerate(shifts):
            (qh, qw), rows_q = shift.q, shift.w.shape[1]
            start = (plan_h.Q - qh) * Wg + (plan_w.Q - qw)             # the shift, as a flat offset
            if i == 0 and every_phase:  # its taps reach every phase: the product is all of Z
                xp.matmul(shift.w, grid[:, :, start:start + M], out=Z.reshape(G, rows_q, M))
                continue
            z = scratch[1, :G * rows_q * M].reshape(G, rows_q, M)
            xp.matmul(shift.w, grid[:, :, start:start + M], out=z)     # (G, nh*nw*C_out/G, M)
            Z_q = Z[:, shift.phases[0], shift.phases[1]]               # (G, nh, nw, C_out/G, M), a view
            Z_q += z.reshape(Z_q.shape)
        Z = Z.reshape(G, s[0], s[1], Co_g, n, Hg, Wg)
        y_g = y[n0:n0 + n].reshape(n, G, Co_g, H_out, W_out).transpose(1, 2, 0, 3, 4)  # (G, C_out/G, n, ...), a view
        _pixel_shuffle(Z, y_g, plan_h, plan_w, p, scratch[1])
    return y


# Up to this many phases (s_h * s_w) the pixel shuffle is one slice assignment per phase; with
# more (FCN's stride 8 and 32: 64 and 1024 phases) the per-phase Python loop costs more than
# the copies, and the phases are interleaved in one transpose through a padded image instead
# (measured on FCN's 21-class upsampling, batch 16: stride 8 9 -> 6 ms, stride 32 26 -> 19 ms).
_FEW_PHASES = 16


def _pixel_shuffle(Z, y_g, plan_h, plan_w, p, scratch):
    """``y_pad[s*m + a, s*l + b] = Z[a, b][m, l]``, cropped by the padding, written into ``y_g``.

    Z: (G, s_h, s_w, C_out/G, n, Hg, Wg) phase images -> y_g: (G, C_out/G, n, H_out, W_out).
    Output rows past the phase images (``output_padding >= stride``) are left as they are
    (zero). ``scratch`` holds ``Z.size`` elements for the padded image when there are many phases.
    """
    G, s_h, s_w, Co_g, n, Hg, Wg = Z.shape
    if s_h * s_w <= _FEW_PHASES:
        for a, rows in enumerate(plan_h.rows):
            for c, cols in enumerate(plan_w.rows):
                if rows is not None and cols is not None:
                    y_g[:, :, :, rows[0], cols[0]] = Z[:, a, c, :, :, rows[1], cols[1]]
        return
    y_pad = scratch[:Z.size].reshape(G, Co_g, n, Hg, s_h, Wg, s_w)
    y_pad[...] = Z.transpose(0, 3, 4, 5, 1, 6, 2)                      # row s*m + a is (m, a)
    y_pad = y_pad.reshape(G, Co_g, n, Hg * s_h, Wg * s_w)              # (G, C_out/G, n, H_pad, W_pad)
    h, w = (max(0, min(y_g.shape[3 + a], y_pad.shape[3 + a] - p[a])) for a in (0, 1))
    y_g[:, :, :, :h, :w] = y_pad[:, :, :, p[0]:p[0] + h, p[1]:p[1] + w]


def _fills(rows, n_grid) -> bool:
    """Whether every phase's image rows ``0 .. n_grid-1`` receive output rows (an ``_AxisPlan.rows``)."""
    return all(r is not None and r[1] == slice(0, n_grid) for r in rows)


def _pixel_unshuffle(dy_g, D_img, plan_h, plan_w):
    """The transpose of ``_pixel_shuffle``: ``D[a, b][m, l] = dy_pad[s*m + a, s*l + b]``, zero in the padding.

    dy_g: (G, C_out/G, n, H_out, W_out) -> D_img: (G, s_h, s_w, C_out/G, n, Hg, Wg), every entry written.
    One slice assignment per phase: with many phases (stride 32) this measured faster than one
    transpose through a padded image, whose innermost axis is then only Wg long.
    """
    G, s_h, s_w, Co_g, n, Hg, Wg = D_img.shape
    if not (_fills(plan_h.rows, Hg) and _fills(plan_w.rows, Wg)):  # some phase-image rows see only padding
        D_img[...] = 0
    for a, rows in enumerate(plan_h.rows):
        for c, cols in enumerate(plan_w.rows):
            if rows is not None and cols is not None:
                D_img[:, a, c, :, :, rows[1], cols[1]] = dy_g[:, :, :, rows[0], cols[0]]


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

    See Also
    --------
    minseg.reference.conv_transpose2d_loops : the same, by the definition, with loops.

    Notes
    -----
    Computed phase by phase with one matrix product per shift
    (``_conv_transpose2d_phases``, see the module docstring); no zeros are
    inserted and no column matrix is built. ``_conv_transpose2d_plain`` is the
    same product as ``col2im(w_mat.T @ x_mat)``. The backward is the same
    phase products transposed (``_conv_transpose2d_backward_phases``), or
    ``im2col(dy)`` on the plain path.

    References
    ----------
    Dumoulin & Visin, "A guide to convolution arithmetic for deep learning", 2016, section 4.
    Shi et al., "Is the deconvolution layer the same as a convolutional layer?", 2016.
    Noh, Hong & Han, "Learning Deconvolution Network for Semantic Segmentation", 2015.
    """
    op = "conv_transpose2d"
    s, p, out_pad, d, (H_out, W_out) = _check_conv_transpose_args(
        op, x, w, b, stride, padding, output_padding, dilation, groups)
    forward = _conv_transpose2d_plain if _use_plain_path() else _conv_transpose2d_phases
    y = forward(x, w, s, p, d, groups, (H_out, W_out))  # (N, C_out, H_out, W_out)
    if b is not None:
        y += b.reshape(1, -1, 1, 1)  # (1, C_out, 1, 1)
    return y, ConvTranspose2dCache(x=x, w=w, has_bias=b is not None, stride=s, padding=p,
                                   output_padding=out_pad, dilation=d, groups=groups)


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
        ``C @ vec(dy)``, the transpose of the forward's ``C.T``; ``w_mat @ im2col(dy)`` per group.
    dw : ndarray, shape (C_in, C_out // groups, KH, KW)
        ``dw[c, o, kh, kw] = sum over n, h, v of x[n, c, h, v] * dy_pad[n, o, h*s + kh*d, v*s + kw*d]``,
        ``x_mat @ im2col(dy).T`` per group (conv2d's weight gradient with x and dy swapped).
    db : ndarray of shape (C_out,), or None when the forward had no bias
        ``sum over n, i, j of dy``.

    See Also
    --------
    minseg.reference.conv_transpose2d_backward_loops : the same gradient, pixel by pixel.

    References
    ----------
    Dumoulin & Visin, 2016, section 4: the transpose of a transposed convolution is the convolution.
    """
    op = "conv_transpose2d_backward"
    x, w, has_bias, s, p, out_pad, d, G = cache
    N, C_in, H, W = x.shape
    _, Co_g, KH, KW = w.shape
    H_out = conv_transpose_output_size(H, KH, s[0], p[0], out_pad[0], d[0])
    W_out = conv_transpose_output_size(W, KW, s[1], p[1], out_pad[1], d[1])
    check_shape(dy, (N, Co_g * G, H_out, W_out), "dy", op)
    backward = _conv_transpose2d_backward_plain if _use_plain_path() else _conv_transpose2d_backward_phases
    dx, dw = backward(dy, x, w, s, p, d, G)
    db = dy.sum(axis=(0, 2, 3)) if has_bias else None
    return dx, dw, db


# --------------------------------------------------------------------------- the two backward paths

def _conv_transpose2d_backward_plain(dy, x, w, s, p, d, G):
    """The plain backward: ``cols = im2col(dy)``; ``dx = w_mat @ cols``, ``dw = x_mat @ cols.T`` per group.

    This is ``conv2d``'s forward and weight gradient with x and dy swapped.
    dy: (N, C_out, H_out, W_out) -> dx (N, C_in, H, W), dw (C_in, C_out/G, KH, KW).
    """
    xp = get_array_module(dy, x)
    N, C_in, H, W = x.shape
    _, Co_g, KH, KW = w.shape
    C_out, Ci_g, K = Co_g * G, C_in // G, KH * KW
    H_out, W_out = dy.shape[2:]
    # the convolution of dy has (H_c, W_c) outputs: (H, W), or more when output_padding >= stride
    H_c, W_c = conv_output_size(H_out, KH, s[0], p[0], d[0]), conv_output_size(W_out, KW, s[1], p[1], d[1])
    L = H_c * W_c
    w_g = w.reshape(G, Ci_g, Co_g * K)                            # (G, C_in/G, C_out/G*KH*KW)
    dw_t = xp.zeros((G, Co_g * K, Ci_g), dtype=x.dtype)          # dw transposed, see below
    dx = xp.empty((N, C_in, H_c, W_c), dtype=x.dtype)
    nc = chunk_size(N, C_out * K * L * x.itemsize)
    buf = workspace(xp, (C_out * K, nc * L), x.dtype)  # the column buffer, reused by every chunk and call
    for n0 in range(0, N, nc):
        n = min(N, n0 + nc) - n0
        cols = im2col(dy[n0:n0 + n], (KH, KW), s, p, d, out=buf[:, :n * L]).reshape(G, Co_g * K, n * L)
        x_c = pad_to(x[n0:n0 + n].transpose(1, 0, 2, 3), H_c, W_c)  # (C_in, n, H_c, W_c); zeros pair with
        # the extra outputs the convolution of dy has when output_padding >= stride
        x_c = x_c.reshape(G, Ci_g, n * L)                                  # (G, C_in/G, n*H_c*W_c), a copy
        # dw = x_c @ cols.T per group, computed as its transpose cols @ x_c.T: BLAS is much
        # faster with the long pixel axis as the reduction of a tall matrix
        dw_t += xp.matmul(cols, x_c.transpose(0, 2, 1))                # (G, C_out/G*KH*KW, C_in/G)
        dx_c = xp.matmul(w_g, cols)                                    # (G, C_in/G, n*H_c*W_c)
        dx[n0:n0 + n] = dx_c.reshape(C_in, n, H_c, W_c).transpose(1, 0, 2, 3)  # (n, C_in, H_c, W_c)
    if (H_c, W_c) != (H, W):
        dx = xp.ascontiguousarray(dx[:, :, :H, :W])
    return dx, dw_t.transpose(0, 2, 1).reshape(w.shape)


def _conv_transpose2d_backward_phases(dy, x, w, s, p, d, G):
    """The fast backward: the forward's phase products, transposed. No column matrix is built.

    The forward computed, per shift ``q``, ``Z[r] += w_q.T @ grid[r + off_q]`` on flat
    positions ``r`` of the phase images. Its transpose, with ``D`` the phase images of
    ``dy`` (``dy`` de-interleaved: ``D[a, b][m, l] = dy_pad[s*m + a, s*l + b]``, zero where
    the padding cropped), is

        dw_q   = D @ grid[off_q : off_q + M].T          (phases*C_out/G, C_in/G) per shift
        dx[r]  = sum over shifts of  w_q @ D[r + q_h*W_grid + q_w]

    where ``dx`` sits at the origin of a grid as wide as the phase images (its
    columns past ``W`` and rows past ``H`` are discarded). Each shift is two matrix
    products reading ``D`` and ``grid`` in place; the only copies are ``D`` (the size
    of ``dy``), ``grid`` (the size of ``x``) and ``dx``.
    dy: (N, C_out, H_out, W_out) -> dx (N, C_in, H, W), dw (C_in, C_out/G, KH, KW).
    """
    xp = get_array_module(dy, x)
    N, C_in, H, W = x.shape
    _, Co_g, KH, KW = w.shape
    Ci_g, (H_out, W_out) = C_in // G, dy.shape[2:]
    plan_h, plan_w = _axis_plan(H, H_out, KH, s[0], p[0], d[0]), _axis_plan(W, W_out, KW, s[1], p[1], d[1])
    Hg, Wg = H + plan_h.Q, W + plan_w.Q                                    # phase-image size
    tail = plan_h.Q * Wg + plan_w.Q                                        # zeros read past the last image
    P = s[0] * s[1]
    w_g = w.reshape(G, Ci_g, Co_g, KH, KW)                                 # (G, C_in/G, C_out/G, KH, KW)
    shifts = _shifts(w_g, plan_h, plan_w)
    dw_shifts = [xp.zeros(shift.w.shape, dtype=x.dtype) for shift in shifts]  # dw per shift, in its rows
    dx = xp.empty((N, C_in, H, W), dtype=x.dtype)
    nc = chunk_size(N, P * Co_g * G * Hg * Wg * x.itemsize)
    for n0 in range(0, N, nc):
        n = min(N, n0 + nc) - n0
        M = n * Hg * Wg
        grid = _grid(xp, x[n0:n0 + n], G, plan_h.Q, plan_w.Q)              # (G, C_in/G, M + tail)
        sizes = (G * P * Co_g * (M + tail), 2 * G * Ci_g * M)
        scratch = workspace(xp, (sum(sizes),), x.dtype)
        D = scratch[:sizes[0]].reshape(G, s[0], s[1], Co_g, M + tail)      # dy's phase images, flattened
        D[..., M:] = 0
        D_img = D[..., :M].reshape(G, s[0], s[1], Co_g, n, Hg, Wg)         # a view of D
        dy_g = dy[n0:n0 + n].reshape(n, G, Co_g, H_out, W_out).transpose(1, 2, 0, 3, 4)  # (G, C_out/G, n, ...)
        _pixel_unshuffle(dy_g, D_img, plan_h, plan_w)
        dx_c = scratch[sizes[0]:sizes[0] + G * Ci_g * M].reshape(G, Ci_g, M)
        z = scratch[sizes[0] + G * Ci_g * M:sum(sizes)].reshape(G, Ci_g, M)
        for i, shift in enumerate(shifts):
            (qh, qw), (phase_h, phase_w), rows_q = shift.q, shift.phases, shift.w.shape[1]
            off = (plan_h.Q - qh) * Wg + (plan_w.Q - qw)                   # the forward's flat offset
            start = qh * Wg + qw                                           # dx[r] reads D[r + start]
            # (a copy only when the shift's phases are not a contiguous block of D's rows)
            D_q = D[:, phase_h, phase_w, :, start:start + M].reshape(G, rows_q, M)
            D_0 = D[:, phase_h, phase_w, :, :M].reshape(G, rows_q, M)
            dw_shifts[i] += xp.matmul(D_0, grid[:, :, off:off + M].transpose(0, 2, 1))  # (G, rows_q, C_in/G)
            xp.matmul(shift.w.transpose(0, 2, 1), D_q, out=z if i else dx_c)  # (G, C_in/G, M)
            if i:
                dx_c += z
        dx_img = dx_c.reshape(G * Ci_g, n, Hg, Wg)[:, :, :H, :W]             # (C_in, n, H, W), a view
        dx[n0:n0 + n] = dx_img.transpose(1, 0, 2, 3)
    dw_g = xp.empty((G, Ci_g, Co_g, KH, KW), dtype=x.dtype)
    for shift, dw_q in zip(shifts, dw_shifts):  # each tap belongs to one shift: its rows are (phase_h, phase_w, o)
        kh, kw = shift.taps
        dw_blk = dw_g[:, :, :, kh, kw]                                     # (G, C_in/G, C_out/G, nh, nw), a view
        dw_blk[...] = dw_q.reshape(G, *dw_blk.shape[3:], Co_g, Ci_g).transpose(0, 4, 3, 1, 2)
    return dx, dw_g.reshape(w.shape)

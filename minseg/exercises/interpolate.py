"""Exercises of lesson 03: bilinear_interpolate and bilinear_interpolate_backward.

Every known mistake is written the way a learner writes the op: per axis a
source coordinate ``src`` for every output pixel, its two neighbours
``i0 = floor(src)``, ``i1 = min(i0 + 1, in - 1)`` and the fraction
``lambda = src - i0``; then per output pixel the four corners

    A = x[r0, c0]   B = x[r0, c1]        P = q (b A + a B) + p (b D + a C)
    D = x[r1, c0]   C = x[r1, c1]        a = column fraction, b = 1 - a
                                         p = row fraction,    q = 1 - p

(the slides' formula, with a and b for their alpha and beta), and, for the
backward pass, the same four weights scattered back onto the corners.
"""
from __future__ import annotations

import math

import numpy as np

from ..ops import bilinear_interpolate, bilinear_interpolate_backward
from .core import Case, Output, backward_case, exercise

_Y = Output("y", axes=("sample", "channel", "row", "column"))
_DX = Output("dx", axes=("sample", "channel", "row", "column"))

# (N, C, H, W), keyword arguments: up- and downsampling, non-square and odd sizes, a non-integer
# scale_factor (whose step 1/s differs from in/out), size 1 on an axis (input and output), batch > 1 and
# several channels, both align_corners. No scale_factor != 1 that rounds back to the input size.
_GRID = [
    ((1, 1, 2, 2), {"size": 4}),
    ((2, 3, 5, 7), {"size": (9, 12)}),
    ((2, 3, 5, 7), {"size": (9, 12), "align_corners": True}),
    ((1, 2, 9, 8), {"size": (4, 3)}),
    ((1, 2, 9, 8), {"size": (4, 3), "align_corners": True}),
    ((2, 2, 5, 6), {"scale_factor": 1.75}),
    ((1, 3, 4, 6), {"scale_factor": (2.5, 0.5), "align_corners": True}),
    ((1, 2, 3, 4), {"scale_factor": 2}),
    ((2, 1, 1, 5), {"size": (3, 8)}),
    ((1, 2, 6, 5), {"size": (1, 7)}),
    ((1, 2, 6, 5), {"size": (1, 7), "align_corners": True}),
]


def _label(shape, kwargs):
    return ", ".join([f"x {'x'.join(map(str, shape))}"] + [f"{k}={v!r}" for k, v in kwargs.items()])


def _inputs(rng):
    for shape, kwargs in _GRID:
        yield rng.standard_normal(shape), dict(kwargs)


# --------------------------------------------------------------------------- a learner's op, with switches

def _pair(v):
    return (v, v) if not isinstance(v, (tuple, list)) else tuple(v)


def _out_sizes(x, size, scale_factor, rounding=math.floor):
    """``(H_out, W_out), (s_h, s_w)``: ``floor(H * s)`` (or another ``rounding``) when a scale_factor is given."""
    H, W = x.shape[2:]
    if size is not None:
        return _pair(size), (None, None)
    s_h, s_w = map(float, _pair(scale_factor))
    return (int(rounding(H * s_h)), int(rounding(W * s_w))), (s_h, s_w)


def _source(in_size, out_size, align_corners, scale, clamp=True, step_in_out=False):
    """PyTorch's source coordinate of every output pixel along one axis, shape (out_size,)."""
    o = np.arange(out_size, dtype=np.float64)
    if align_corners:
        return o * ((in_size - 1) / (out_size - 1)) if out_size > 1 else np.zeros(out_size)
    step = in_size / out_size if (scale is None or step_in_out) else 1.0 / scale
    src = (o + 0.5) * step - 0.5
    return np.maximum(src, 0.0) if clamp else src


def _taps(src, in_size, negative="clamped"):
    """``i0, i1, lam`` for source coordinates ``src``; ``negative`` says what a learner does with src < 0.

    ``"clamped"``: src was clamped at 0 (right). ``"extrapolate"``: i0 clipped to 0 but lam = src - 0 < 0,
    so the weights leave [0, 1]. ``"wrap"``: i0 = floor(src) = -1, which NumPy reads as the last pixel.
    """
    i0 = np.floor(src).astype(np.int64)
    if negative == "extrapolate":
        i0 = np.clip(i0, 0, in_size - 1)
    else:
        i0 = np.minimum(i0, in_size - 1)
    i1 = np.minimum(i0 + 1, in_size - 1)
    return i0, i1, src - i0


def _axis_taps(in_size, out_size, align_corners, scale, **how):
    negative = how.pop("negative", "clamped")
    src = _source(in_size, out_size, align_corners, scale, clamp=negative == "clamped", **how)
    return _taps(src, in_size, negative)


def _forward(x, size=None, scale_factor=None, align_corners=False, *, rounding=math.floor, swap_xy=False,
             swap_cols=False, swap_rows=False, **how):
    """Bilinear interpolation from the four corners, with the switches of the known mistakes."""
    N, C, H, W = x.shape
    (H_out, W_out), (s_h, s_w) = _out_sizes(x, size, scale_factor, rounding)
    r0, r1, p = _axis_taps(H, H_out, align_corners, s_h, **how)
    c0, c1, a = _axis_taps(W, W_out, align_corners, s_w, **how)
    A = x[:, :, r0[:, None], c0[None, :]]                          # (N, C, H_out, W_out) each
    B = x[:, :, r0[:, None], c1[None, :]]
    Cc = x[:, :, r1[:, None], c1[None, :]]
    D = x[:, :, r1[:, None], c0[None, :]]
    p, a = p[:, None], a[None, :]                                  # (H_out, 1), (1, W_out)
    if swap_xy:                                                    # the column fraction between rows and back
        p, a = np.broadcast_to(a, (H_out, W_out)), np.broadcast_to(p, (H_out, W_out))
    q, b = 1 - p, 1 - a
    if swap_cols:
        a, b = b, a
    if swap_rows:
        p, q = q, p
    return q * (b * A + a * B) + p * (b * D + a * Cc)


def _backward(dy, cache, *, other_convention=False, swap_cols=False, swap_rows=False, overwrite=False, **how):
    """The scatter: every dy[i, j] goes to its four corners with the forward's weights."""
    (N, C, H, W), A_h, A_w, align_corners, (s_h, s_w) = cache
    H_out, W_out = A_h.shape[0], A_w.shape[0]
    ac = (not align_corners) if other_convention else align_corners
    r0, r1, p = _axis_taps(H, H_out, ac, s_h, **how)
    c0, c1, a = _axis_taps(W, W_out, ac, s_w, **how)
    p, a = p[:, None], a[None, :]
    q, b = 1 - p, 1 - a
    if swap_cols:
        a, b = b, a
    if swap_rows:
        p, q = q, p
    dx = np.zeros((N, C, H, W), dtype=dy.dtype)
    for rows, cols, weight in ((r0, c0, q * b), (r0, c1, q * a), (r1, c1, p * a), (r1, c0, p * b)):
        idx = (slice(None), slice(None), rows[:, None], cols[None, :])
        if overwrite:
            dx[idx] += weight * dy                                 # repeated indices: one addition survives
        else:
            np.add.at(dx, idx, weight * dy)
    return dx


# --------------------------------------------------------------------------- bilinear_interpolate

def _forward_cases(rng):
    return [Case((x,), kwargs, _label(x.shape, kwargs)) for x, kwargs in _inputs(rng)]


ex_bilinear = exercise(
    "bilinear_interpolate", reference=bilinear_interpolate, cases=_forward_cases, outputs=[_Y], returns_cache=True,
    spec="bilinear_interpolate(x, size=None, scale_factor=None, align_corners=False) -> y (or y, cache); "
         "H_out = size or floor(H * scale_factor); src = (dst + 0.5) * step - 0.5 clamped at 0 "
         "(step = in/out, or 1/scale_factor when given), or dst * (in - 1)/(out - 1) with align_corners=True")


@ex_bilinear.mistake("the other align_corners convention",
                     hint="align_corners=False (the default): src = (dst + 0.5) * in/out - 0.5, pixel centres "
                          "line up; align_corners=True: src = dst * (in - 1)/(out - 1), the corner pixels line up")
def _other_convention(x, size=None, scale_factor=None, align_corners=False):
    return bilinear_interpolate(x, size=size, scale_factor=scale_factor, align_corners=not align_corners)[0]


@ex_bilinear.mistake("source coordinate not clamped at 0 (negative src for align_corners=False)",
                     hint="the first output pixels map before pixel 0's centre (src = -0.25 when doubling): "
                          "src = max(src, 0), so they copy the edge pixel instead of extrapolating")
def _not_clamped_extrapolate(x, size=None, scale_factor=None, align_corners=False):
    return _forward(x, size, scale_factor, align_corners, negative="extrapolate")


@ex_bilinear.mistake("source coordinate not clamped at 0 (negative src for align_corners=False)",
                     hint="with src < 0, i0 = floor(src) = -1 and x[-1] is the LAST pixel in NumPy: "
                          "clamp src = max(src, 0) before taking floor")
def _not_clamped_wrap(x, size=None, scale_factor=None, align_corners=False):
    return _forward(x, size, scale_factor, align_corners, negative="wrap")


@ex_bilinear.mistake("output size off by one: H_out = floor(H * scale_factor), not rounded up",
                     hint="PyTorch floors: H = 5, scale_factor = 1.75 gives floor(8.75) = 8 rows")
def _size_ceil(x, size=None, scale_factor=None, align_corners=False):
    return _forward(x, size, scale_factor, align_corners, rounding=math.ceil)


@ex_bilinear.mistake("output size off by one: H_out = floor(H * scale_factor), not rounded to nearest",
                     hint="PyTorch floors: H = 5, scale_factor = 1.75 gives floor(8.75) = 8 rows, round gives 9")
def _size_round(x, size=None, scale_factor=None, align_corners=False):
    return _forward(x, size, scale_factor, align_corners, rounding=round)


@ex_bilinear.mistake("source step in/out instead of 1/scale_factor (a scale_factor given, align_corners=False)",
                     hint="when the user gives scale_factor, PyTorch steps by 1/scale_factor (it differs from "
                          "in/out when H * scale_factor is not an integer: 5/8 = 0.625 but 1/1.75 = 0.571)")
def _step_in_out(x, size=None, scale_factor=None, align_corners=False):
    return _forward(x, size, scale_factor, align_corners, step_in_out=True)


@ex_bilinear.mistake("x and y weights swapped (the column fraction a used between rows, the row fraction p "
                     "between columns)",
                     hint="p comes from the output row i (vertical, between A and D), a from the output column j "
                          "(horizontal, between A and B): P = q(bA + aB) + p(bD + aC)")
def _xy_swapped(x, size=None, scale_factor=None, align_corners=False):
    return _forward(x, size, scale_factor, align_corners, swap_xy=True)


@ex_bilinear.mistake("weights of the two neighbours swapped (a and b exchanged: the nearer column gets the "
                     "smaller weight)",
                     hint="f(x) = d2/(d1+d2) f(x1) + d1/(d1+d2) f(x2): x1 gets the distance to the OTHER "
                          "pixel, so A = x[r0, c0] gets b = 1 - a")
def _cols_swapped(x, size=None, scale_factor=None, align_corners=False):
    return _forward(x, size, scale_factor, align_corners, swap_cols=True)


@ex_bilinear.mistake("weights of the two neighbours swapped (p and q exchanged: the nearer row gets the "
                     "smaller weight)",
                     hint="the upper pair (A, B) gets q = 1 - p, p the lower pair (D, C)")
def _rows_swapped(x, size=None, scale_factor=None, align_corners=False):
    return _forward(x, size, scale_factor, align_corners, swap_rows=True)


@ex_bilinear.mistake("weights of the two neighbours swapped along both axes (lambda on i0, 1 - lambda on i1)",
                     hint="f(x) = d2/(d1+d2) f(x1) + d1/(d1+d2) f(x2): the neighbour at distance d1 gets "
                          "weight d2 / (d1 + d2), the nearer pixel the larger weight")
def _both_swapped(x, size=None, scale_factor=None, align_corners=False):
    return _forward(x, size, scale_factor, align_corners, swap_cols=True, swap_rows=True)


# --------------------------------------------------------------------------- bilinear_interpolate_backward

def _backward_cases(rng):
    cases = []
    for i, (x, kwargs) in enumerate(_inputs(rng)):
        cases.append(backward_case(bilinear_interpolate, {"x": x}, ("x",), rng=rng, numeric=i in (1, 4, 5, 6),
                                   label="bilinear_interpolate(" + _label(x.shape, kwargs) + ")", **kwargs))
    return cases


ex_bilinear_backward = exercise(
    "bilinear_interpolate_backward", reference=bilinear_interpolate_backward, cases=_backward_cases,
    outputs=[_DX],
    spec="bilinear_interpolate_backward(dy, cache) -> dx (N, C, H, W); cache.x_shape, cache.align_corners, "
         "cache.scales (the user's scale factors or None), cache.A_h.shape[0] = H_out, cache.A_w.shape[0] = W_out")


@ex_bilinear_backward.mistake("gradient gathered from the output instead of scattered (A dy instead of A^T dy)",
                              hint="do not interpolate dy back down to the input size: every dy[i, j] is SENT to "
                                   "the four pixels that made y[i, j], with their weights, dx = A_h^T dy A_w")
def _gathered(dy, cache):
    H, W = cache.x_shape[2:]
    return bilinear_interpolate(dy, size=(H, W), align_corners=cache.align_corners)[0]


@ex_bilinear_backward.mistake("weights of the two neighbours swapped (lambda sent to i0, 1 - lambda to i1)",
                              hint="scatter with exactly the forward's weights: A = x[r0, c0] got q*b, "
                                   "so dy goes back to [r0, c0] times q*b")
def _bw_both_swapped(dy, cache):
    return _backward(dy, cache, swap_cols=True, swap_rows=True)


@ex_bilinear_backward.mistake("weights of the two neighbours swapped (lambda sent to i0, 1 - lambda to i1)",
                              hint="along the columns: [r, c0] gets b = 1 - a and [r, c1] gets a")
def _bw_cols_swapped(dy, cache):
    return _backward(dy, cache, swap_cols=True)


@ex_bilinear_backward.mistake("weights of the two neighbours swapped (lambda sent to i0, 1 - lambda to i1)",
                              hint="along the rows: [r0, c] gets q = 1 - p and [r1, c] gets p")
def _bw_rows_swapped(dy, cache):
    return _backward(dy, cache, swap_rows=True)


@ex_bilinear_backward.mistake("repeated indices not accumulated (dx[..., rows, cols] += v keeps one addition "
                              "per pixel)",
                              hint="NumPy's fancy-index += writes each repeated index once: use np.add.at "
                                   "(or a loop over the output pixels) so every contribution is added")
def _overwrite(dy, cache):
    return _backward(dy, cache, overwrite=True)


@ex_bilinear_backward.mistake("the other align_corners convention",
                              hint="use the forward's own source coordinates: cache.align_corners")
def _bw_other_convention(dy, cache):
    return _backward(dy, cache, other_convention=True)


@ex_bilinear_backward.mistake("source coordinate not clamped at 0 (negative src for align_corners=False)",
                              hint="the backward must use the forward's coordinates: src = max(src, 0)")
def _bw_not_clamped(dy, cache):
    return _backward(dy, cache, negative="extrapolate")


@ex_bilinear_backward.mistake("source step in/out instead of 1/scale_factor (a scale_factor given, "
                              "align_corners=False)",
                              hint="with cache.scales not None, step = 1/scale_factor as in the forward")
def _bw_step_in_out(dy, cache):
    return _backward(dy, cache, step_in_out=True)


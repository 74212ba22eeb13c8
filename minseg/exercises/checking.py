"""Exercise of lesson 10: linear_taps, the source taps of 1-D linear interpolation in PyTorch's coordinates.

``linear_taps(in_size, out_size, align_corners=False, scale=None)`` returns
``(i0, i1, lam0, lam1)``, each of shape ``(out_size,)``: output ``o`` reads
``lam0[o] * x[i0[o]] + lam1[o] * x[i1[o]]`` (``minseg.ops.linear_taps``).
The source coordinate is

    align_corners=True    src = o * (in - 1) / (out - 1)         (0 when out = 1)
    align_corners=False   src = max((o + 0.5) * step - 0.5, 0)   step = 1 / scale when a scale is given,
                                                                  else in / out

then ``i0 = min(floor(src), in - 1)``, ``i1 = min(i0 + 1, in - 1)``,
``lam1 = src - i0`` (clipped to [0, 1]), ``lam0 = 1 - lam1``; an unchanged
size (``in == out``) is copied: ``i0 = i1 = o``, ``lam0 = 1``, ``lam1 = 0``.
The cases cover both conventions, up- and down-sampling, a scale whose
product with the size is not an integer, one output pixel and an unchanged
size; the named mistakes are the framework differences lesson 10 diagnoses
(the other convention, TensorFlow 1's asymmetric resize) and the usual slips.
"""
from __future__ import annotations

import numpy as np

from ..ops.interpolate import linear_taps
from .core import Case, Output, exercise

_TAP = ("output pixel",)


def _cases(rng):
    grid = [(4, 8, False, None), (4, 8, True, None), (5, 3, False, None), (5, 3, True, None),
            (3, 7, False, None), (6, 6, False, None), (6, 6, True, None), (5, 1, True, None),
            (5, 12, False, 2.5), (7, 4, False, 0.6)]
    cases = []
    for in_size, out_size, ac, scale in grid:
        kwargs = {"align_corners": ac} | ({"scale": scale} if scale is not None else {})
        cases.append(Case((in_size, out_size), kwargs, f"in {in_size} -> out {out_size}, align_corners={ac}"
                          + (f", scale={scale}" if scale is not None else "")))
    return cases


ex_linear_taps = exercise(
    "linear_taps", reference=linear_taps, cases=_cases,
    outputs=[Output(n, axes=_TAP, spatial=None) for n in ("i0", "i1", "lam0", "lam1")],
    spec="linear_taps(in_size, out_size, align_corners=False, scale=None) -> i0, i1, lam0, lam1, each (out_size,)")


def _taps(src, in_size):
    """i0, i1, lam0, lam1 from source coordinates (already clamped below as wanted)."""
    i0 = np.minimum(np.floor(src).astype(np.int64), in_size - 1)
    i1 = np.minimum(i0 + 1, in_size - 1)
    lam1 = np.clip(src - i0, 0.0, 1.0)
    return i0, i1, 1.0 - lam1, lam1


def _src(in_size, out_size, align_corners, scale, *, clamp=True, use_scale=True, half_pixel=True):
    dst = np.arange(out_size, dtype=np.float64)
    if align_corners:
        return dst * ((in_size - 1) / (out_size - 1) if out_size > 1 else 0.0)
    step = 1.0 / scale if (use_scale and scale is not None and scale > 0) else in_size / out_size
    src = (dst + 0.5) * step - 0.5 if half_pixel else dst * step
    return np.maximum(src, 0.0) if clamp else src


@ex_linear_taps.mistake(
    "the other align_corners convention",
    hint="align_corners=True puts the centres of the corner pixels on each other, src = o * (in - 1) / (out - 1); "
         "align_corners=False treats pixels as areas, src = (o + 0.5) * in / out - 0.5")
def _other_convention(in_size, out_size, align_corners=False, scale=None):
    return linear_taps(in_size, out_size, not align_corners, scale)


@ex_linear_taps.mistake(
    "TensorFlow 1's asymmetric resize: src = o * in / out, no half-pixel offset",
    hint="with align_corners=False the output pixel centre o + 0.5 maps to (o + 0.5) * in / out, and the input "
         "pixel centre is 0.5 past its index: subtract 0.5")
def _tf1_asymmetric(in_size, out_size, align_corners=False, scale=None):
    if in_size == out_size:
        return linear_taps(in_size, out_size, align_corners, scale)
    return _taps(_src(in_size, out_size, align_corners, scale, half_pixel=False), in_size)


@ex_linear_taps.mistake(
    "source coordinate not clamped at 0 (negative src near the first pixel)",
    hint="with align_corners=False the first output pixels map before the first input pixel centre; "
         "PyTorch clamps src to 0 there, so they copy x[0]")
def _not_clamped(in_size, out_size, align_corners=False, scale=None):
    if in_size == out_size:
        return linear_taps(in_size, out_size, align_corners, scale)
    src = _src(in_size, out_size, align_corners, scale, clamp=False)
    i0 = np.minimum(np.floor(src).astype(np.int64), in_size - 1)
    i1 = np.minimum(i0 + 1, in_size - 1)
    lam1 = src - i0
    return i0, i1, 1.0 - lam1, lam1


@ex_linear_taps.mistake(
    "scale ignored: the step is in / out even when a scale_factor is given",
    hint="with a scale_factor (and align_corners=False) PyTorch steps 1 / scale through the input, which differs "
         "from in / out when in * scale is not an integer")
def _scale_ignored(in_size, out_size, align_corners=False, scale=None):
    if in_size == out_size:
        return linear_taps(in_size, out_size, align_corners, scale)
    return _taps(_src(in_size, out_size, align_corners, scale, use_scale=False), in_size)


@ex_linear_taps.mistake(
    "an unchanged size is not copied (i1 = o + 1 with weight 0)",
    hint="when in == out PyTorch copies the axis: i0 = i1 = o, lam0 = 1, lam1 = 0 (so an infinite neighbour "
         "never enters as inf * 0)")
def _unchanged_not_copied(in_size, out_size, align_corners=False, scale=None):
    if in_size == out_size:
        return _taps(_src(in_size, out_size, align_corners, scale), in_size)
    return linear_taps(in_size, out_size, align_corners, scale)

"""Exercises of lesson 07: center_crop_offsets (U-Net's crop for concatenation) and crop_backward."""
from __future__ import annotations

import numbers

import numpy as np

from ..gradcheck import numerical_gradient
from ..nn.blocks import center_crop_offsets, crop, crop_backward
from .core import AnswerProblem, Case, Output, exercise, shape_text

# --------------------------------------------------------------------------- center_crop_offsets

# (size (H, W) of the larger map, target (h, w) of the window): odd and even differences, non-square maps,
# a window as large as the map, and the four skip crops of the paper's 572x572 U-Net
_OFFSET_GRID = [
    ((8, 8), (4, 4)),
    ((13, 20), (10, 11)),
    ((15, 9), (14, 4)),
    ((7, 12), (7, 5)),
    ((21, 6), (16, 6)),
    ((64, 65), (56, 56)),
    ((136, 136), (104, 104)),
    ((280, 280), (200, 200)),
    ((568, 568), (392, 392)),
]


def _offset_cases(rng):
    return [Case((size, target), {}, f"size {size}, target {target}") for size, target in _OFFSET_GRID]


def _is_int(v) -> bool:
    return isinstance(v, numbers.Integral) and not isinstance(v, bool)


def _offsets_extract(value, case):
    """``(top, left)`` as two int64 arrays of shape (1,), or AnswerProblem saying what was expected."""
    if value is None:
        raise AnswerProblem("expected center_crop_offsets to return two ints (top, left), got None (a missing return?)")
    if isinstance(value, np.ndarray) and value.ndim == 1:
        value = tuple(value.tolist())
    if not isinstance(value, (tuple, list)):
        raise AnswerProblem(f"expected center_crop_offsets to return two ints (top, left), "
                            f"got one {type(value).__name__}")
    if len(value) != 2:
        raise AnswerProblem(f"expected center_crop_offsets to return two ints (top, left), got {len(value)} values")
    for name, v in zip(("top", "left"), value):
        if not _is_int(v):
            raise AnswerProblem(f"expected {name} to be an int (a pixel index; // floors), "
                                f"got {type(v).__name__} {v!r}")
    return tuple(np.array([int(v)], dtype=np.int64) for v in value)  # (1,) each


ex_center_crop_offsets = exercise(
    "center_crop_offsets", reference=center_crop_offsets, cases=_offset_cases,
    outputs=[Output("top", spatial=None), Output("left", spatial=None)], extract=_offsets_extract,
    spec="center_crop_offsets(size, target) -> (top, left): the window target = (h, w) centred in size = (H, W), "
         "top = floor((H - h) / 2), left = floor((W - w) / 2)")


@ex_center_crop_offsets.mistake("offset rounded up instead of down (floor of (H - h) / 2)",
                                hint="when H - h is odd the extra row goes below the window: "
                                     "top = (H - h) // 2, not its ceiling")
def _rounded_up(size, target):
    (H, W), (h, w) = size, target
    return -(-(H - h) // 2), -(-(W - w) // 2)


@ex_center_crop_offsets.mistake("H and W swapped",
                                hint="size and target are (H, W): top comes from the heights, left from the widths")
def _h_w_swapped(size, target):
    (H, W), (h, w) = size, target
    return (W - w) // 2, (H - h) // 2


@ex_center_crop_offsets.mistake("offset of the larger map from the smaller (sign flipped)",
                                hint="the window lies inside the larger map, so its offsets are >= 0: "
                                     "top = (H - h) // 2 with H the larger size")
def _sign_flipped(size, target):
    (H, W), (h, w) = size, target
    return (h - H) // 2, (w - W) // 2


@ex_center_crop_offsets.mistake("offset of the larger map from the smaller (sign flipped)",
                                hint="the window lies inside the larger map, so its offsets are >= 0: "
                                     "top = (H - h) // 2 with H the larger size")
def _sign_flipped_truncated(size, target):
    (H, W), (h, w) = size, target
    return -((H - h) // 2), -((W - w) // 2)


# --------------------------------------------------------------------------- crop_backward

# (x shape (N, C, H, W), window top, left, h, w)
_CROP_GRID = [
    ((1, 1, 6, 6), 1, 1, 4, 4),
    ((2, 3, 9, 7), 1, 3, 6, 4),
    ((1, 2, 8, 11), 0, 2, 8, 5),
    ((2, 2, 10, 5), 3, 0, 4, 5),
    ((1, 4, 13, 12), 2, 1, 9, 8),
]


def _crop_backward_cases(rng):
    cases = []
    for i, (x_shape, top, left, h, w) in enumerate(_CROP_GRID):
        x = rng.standard_normal(x_shape)
        dy = rng.standard_normal((*x_shape[:2], h, w))

        def num(x=x, dy=dy, top=top, left=left, h=h, w=w):
            return (numerical_gradient(lambda x_: crop(x_, top, left, h, w), x, dy),)
        cases.append(Case((dy, x_shape, top, left), {}, f"dy {shape_text(dy)}, x_shape {x_shape}, top={top}, "
                          f"left={left}", numeric=num if i in (1, 4) else None))
    return cases


ex_crop_backward = exercise(
    "crop_backward", reference=crop_backward, cases=_crop_backward_cases, outputs=[Output("dx")],
    spec="crop_backward(dy, x_shape, top, left) -> dx of shape x_shape: zeros, with dy at rows top:top+h, "
         "columns left:left+w (the backward of crop(x, top, left, h, w))")


@ex_crop_backward.mistake("gradient placed at the top-left corner (top and left ignored)",
                          hint="dy belongs where the window was cut out: dx[:, :, top:top + h, left:left + w] = dy")
def _corner(dy, x_shape, top, left):
    return crop_backward(dy, x_shape, 0, 0)


@ex_crop_backward.mistake("top and left swapped",
                          hint="top is the row offset (axis 2), left the column offset (axis 3)")
def _swapped(dy, x_shape, top, left):
    return crop_backward(dy, x_shape, left, top)

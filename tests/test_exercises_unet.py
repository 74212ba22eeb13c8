"""Exercises of lesson 07 (center_crop_offsets, crop_backward): minseg passes, each named mistake is named."""
import math

import numpy as np
import pytest

from minseg import exercises
from minseg.nn.blocks import center_crop_offsets, crop_backward


def test_the_exercises_are_registered_after_the_convolution_ones():
    names = exercises.names()
    assert {"center_crop_offsets", "crop_backward"} <= set(names)
    assert names.index("conv2d_backward") < names.index("center_crop_offsets") < names.index("crop_backward")


@pytest.mark.parametrize("name, fn", [("center_crop_offsets", center_crop_offsets), ("crop_backward", crop_backward)])
def test_minseg_passes(name, fn):
    r = exercises.check(name, fn)
    assert r.passed, str(r)
    assert r.diagnosis is None
    assert "PASS" in str(r)


@pytest.mark.parametrize("name", ["center_crop_offsets", "crop_backward"])
def test_blank_is_not_implemented_yet(name):
    def blank(*args):
        raise NotImplementedError
    r = exercises.check(name, blank)
    assert not r.passed and r.diagnosis == "not implemented yet"
    assert "to do:" in str(r)


# --------------------------------------------------------------------------- center_crop_offsets

def rounded_up(size, target):
    (H, W), (h, w) = size, target
    return math.ceil((H - h) / 2), math.ceil((W - w) / 2)


def h_w_swapped(size, target):
    (H, W), (h, w) = size, target
    return (W - w) // 2, (H - h) // 2


def smaller_minus_larger(size, target):
    (H, W), (h, w) = size, target
    return (h - H) // 2, (w - W) // 2


def smaller_minus_larger_truncated(size, target):
    (H, W), (h, w) = size, target
    return int((h - H) / 2), int((w - W) / 2)


@pytest.mark.parametrize("fn, mistake", [
    (rounded_up, "offset rounded up instead of down (floor of (H - h) / 2)"),
    (h_w_swapped, "H and W swapped"),
    (smaller_minus_larger, "offset of the larger map from the smaller (sign flipped)"),
    (smaller_minus_larger_truncated, "offset of the larger map from the smaller (sign flipped)"),
])
def test_center_crop_offsets_mistakes_are_named(fn, mistake):
    r = exercises.check("center_crop_offsets", fn)
    assert not r.passed
    assert r.diagnosis == mistake, str(r)
    assert r.hint and "why:" in str(r)


def test_center_crop_offsets_unknown_mistake_shows_the_wrong_offset():
    def off_by_one(size, target):
        top, left = center_crop_offsets(size, target)
        return top + 1, left
    r = exercises.check("center_crop_offsets", off_by_one)
    assert not r.passed and r.diagnosis is None
    assert "top[0]: 1 vs 0" in str(r)        # case 3: (15, 9) -> (14, 4) has top 0


@pytest.mark.parametrize("fn, message", [
    (lambda size, target: center_crop_offsets(size, target) + (0,),
     "expected center_crop_offsets to return two ints (top, left), got 3 values"),
    (lambda size, target: center_crop_offsets(size, target)[0],
     "expected center_crop_offsets to return two ints (top, left), got one int"),
    (lambda size, target: None,
     "expected center_crop_offsets to return two ints (top, left), got None (a missing return?)"),
    (lambda size, target: ((size[0] - target[0]) / 2, (size[1] - target[1]) / 2),
     "expected top to be an int (a pixel index; // floors), got float 2.0"),
])
def test_center_crop_offsets_wrong_kind_gets_its_one_line_message(fn, message):
    r = exercises.check("center_crop_offsets", fn)
    assert not r.passed
    assert r.diagnosis == message
    assert "\n" not in r.diagnosis


def test_center_crop_offsets_as_a_numpy_pair_passes():
    r = exercises.check("center_crop_offsets", lambda size, target: np.array(center_crop_offsets(size, target)))
    assert r.passed, str(r)


# --------------------------------------------------------------------------- crop_backward

def at_the_corner(dy, x_shape, top, left):
    dx = np.zeros(x_shape, dtype=dy.dtype)
    dx[:, :, :dy.shape[2], :dy.shape[3]] = dy
    return dx


def top_left_swapped(dy, x_shape, top, left):
    dx = np.zeros(x_shape, dtype=dy.dtype)
    dx[:, :, left:left + dy.shape[2], top:top + dy.shape[3]] = dy
    return dx


@pytest.mark.parametrize("fn, mistake", [
    (at_the_corner, "gradient placed at the top-left corner (top and left ignored)"),
    (top_left_swapped, "top and left swapped"),
])
def test_crop_backward_mistakes_are_named(fn, mistake):
    r = exercises.check("crop_backward", fn)
    assert not r.passed
    assert r.diagnosis.split("; also ")[0] == mistake, str(r)


def test_crop_backward_wrong_shape_gets_its_one_line_message():
    def cropped_again(dy, x_shape, top, left):
        return dy.copy()
    r = exercises.check("crop_backward", cropped_again)
    assert r.diagnosis == "expected dx of shape (1, 1, 6, 6), got shape (1, 1, 4, 4)"


def test_crop_backward_wrong_dtype_gets_its_one_line_message():
    r = exercises.check("crop_backward", lambda dy, x_shape, top, left:
                        crop_backward(dy, x_shape, top, left).astype(np.float32))
    assert r.diagnosis == "expected dx with dtype float64 (the input's), got dtype float32"


def test_crop_backward_is_checked_against_central_differences():
    r = exercises.check("crop_backward", crop_backward)
    assert sum(row.numeric_rel is not None for c in r.cases for row in c.rows) == 2

"""Exercise of lesson 10 (linear_taps): minseg passes, each named mistake is named, wrong kinds get one line."""
import numpy as np
import pytest

from minseg import exercises
from minseg.ops.interpolate import linear_taps


def test_the_exercise_is_registered_after_lesson_09s():
    names = exercises.names()
    assert names.index("scatter_add_flat") < names.index("linear_taps")


def test_minseg_passes():
    r = exercises.check("linear_taps", linear_taps)
    assert r.passed and r.diagnosis is None, str(r)
    assert "PASS" in str(r)


def test_a_direct_formula_passes_too():
    def direct(in_size, out_size, align_corners=False, scale=None):
        o = np.arange(out_size)
        if in_size == out_size:
            return o, o.copy(), np.ones(out_size), np.zeros(out_size)
        if align_corners:
            src = o * ((in_size - 1) / (out_size - 1)) if out_size > 1 else np.zeros(out_size)
        else:
            step = 1 / scale if scale else in_size / out_size
            src = np.maximum((o + 0.5) * step - 0.5, 0)
        i0 = np.minimum(np.floor(src).astype(int), in_size - 1)
        lam1 = np.clip(src - i0, 0, 1)
        return i0, np.minimum(i0 + 1, in_size - 1), 1 - lam1, lam1
    assert exercises.check("linear_taps", direct).passed


def test_blank_is_not_implemented_yet():
    def blank(in_size, out_size, align_corners=False, scale=None):
        raise NotImplementedError
    r = exercises.check("linear_taps", blank)
    assert not r.passed and r.diagnosis == "not implemented yet"


def _src(in_size, out_size, align_corners, scale, half_pixel=True, clamp=True, use_scale=True):
    o = np.arange(out_size, dtype=float)
    if align_corners:
        return o * ((in_size - 1) / (out_size - 1) if out_size > 1 else 0.0)
    step = 1 / scale if (scale and use_scale) else in_size / out_size
    src = (o + 0.5) * step - 0.5 if half_pixel else o * step
    return np.maximum(src, 0) if clamp else src


def _from_src(src, in_size):
    i0 = np.minimum(np.floor(src).astype(np.int64), in_size - 1)
    lam1 = src - i0
    return i0, np.minimum(i0 + 1, in_size - 1), 1 - lam1, lam1


def other_convention(in_size, out_size, align_corners=False, scale=None):
    return linear_taps(in_size, out_size, not align_corners, scale)


def tf1(in_size, out_size, align_corners=False, scale=None):
    if in_size == out_size:
        return linear_taps(in_size, out_size, align_corners, scale)
    return _from_src(_src(in_size, out_size, align_corners, scale, half_pixel=False), in_size)


def no_clamp(in_size, out_size, align_corners=False, scale=None):
    if in_size == out_size:
        return linear_taps(in_size, out_size, align_corners, scale)
    return _from_src(_src(in_size, out_size, align_corners, scale, clamp=False), in_size)


def scale_ignored(in_size, out_size, align_corners=False, scale=None):
    if in_size == out_size:
        return linear_taps(in_size, out_size, align_corners, scale)
    return _from_src(_src(in_size, out_size, align_corners, scale, use_scale=False), in_size)


def not_copied(in_size, out_size, align_corners=False, scale=None):
    return _from_src(_src(in_size, out_size, align_corners, scale), in_size) if in_size == out_size else \
        linear_taps(in_size, out_size, align_corners, scale)


@pytest.mark.parametrize("fn, mistake", [
    (other_convention, "the other align_corners convention"),
    (tf1, "TensorFlow 1's asymmetric resize: src = o * in / out, no half-pixel offset"),
    (no_clamp, "source coordinate not clamped at 0 (negative src near the first pixel)"),
    (scale_ignored, "scale ignored: the step is in / out even when a scale_factor is given"),
    (not_copied, "an unchanged size is not copied (i1 = o + 1 with weight 0)"),
])
def test_mistakes_are_named(fn, mistake):
    r = exercises.check("linear_taps", fn)
    assert not r.passed
    assert r.diagnosis == mistake, str(r)
    assert r.hint and "why:" in str(r)


def test_float_indices_are_one_line():
    r = exercises.check("linear_taps", lambda *a, **k: (lambda t: (t[0].astype(float), *t[1:]))(linear_taps(*a, **k)))
    assert not r.passed
    assert r.diagnosis == "expected i0 with an integer dtype, got dtype float64"


def test_wrong_shape_is_one_line():
    r = exercises.check("linear_taps", lambda *a, **k: (lambda t: (t[0][:, None], *t[1:]))(linear_taps(*a, **k)))
    assert not r.passed
    assert r.diagnosis == "expected i0 of shape (8,), got shape (8, 1)"


def test_three_values_is_one_line():
    r = exercises.check("linear_taps", lambda *a, **k: linear_taps(*a, **k)[:3])
    assert not r.passed
    assert r.diagnosis == "expected linear_taps to return 4 values (i0, i1, lam0, lam1), got 3"

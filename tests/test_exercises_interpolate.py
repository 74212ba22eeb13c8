"""The exercises of lesson 03: minseg passes, each named mistake is named, blanks and wrong shapes are reported."""
import math

import numpy as np
import pytest

from minseg import exercises
from minseg.ops import bilinear_interpolate, bilinear_interpolate_backward


# --------------------------------------------------------------------------- a learner's loop version

def _pair(v):
    return (v, v) if not isinstance(v, (tuple, list)) else tuple(v)


def _source(o, n_in, n_out, align_corners, scale, mistake):
    """Source coordinate of output pixel o along one axis, as a learner writes it (with one mistake or none)."""
    if mistake == "convention":
        align_corners = not align_corners
    if align_corners:
        return o * (n_in - 1) / (n_out - 1) if n_out > 1 else 0.0
    step = n_in / n_out if scale is None or mistake == "step" else 1 / scale
    src = (o + 0.5) * step - 0.5
    return src if mistake in ("extrapolate", "wrap") else max(src, 0.0)


def _neighbours(src, n_in, mistake):
    """``i0, i1, lam``; a negative src (not clamped) is extrapolated from pixel 0 or wraps to x[-1]."""
    i0 = math.floor(src)
    if mistake == "extrapolate":
        i0 = max(i0, 0)
    i0 = min(i0, n_in - 1)
    return i0, min(i0 + 1, n_in - 1), src - i0


def _sizes(x, size, scale_factor, mistake):
    H, W = x.shape[2:]
    if size is not None:
        return _pair(size), (None, None)
    sh, sw = _pair(scale_factor)
    rounding = {"ceil": math.ceil, "round": round}.get(mistake, math.floor)
    return (rounding(H * sh), rounding(W * sw)), (sh, sw)


def _weights(p, a, mistake):
    """``(wA, wB, wC, wD)`` of P = q(bA + aB) + p(bD + aC), with one mistake or none."""
    if mistake == "xy":
        p, a = a, p
    q, b = 1 - p, 1 - a
    if mistake in ("ab", "both"):
        a, b = b, a
    if mistake in ("pq", "both"):
        p, q = q, p
    return q * b, q * a, p * a, p * b


def my_bilinear(x, size=None, scale_factor=None, align_corners=False, *, mistake=None):
    N, C, H, W = x.shape
    (H_out, W_out), (sh, sw) = _sizes(x, size, scale_factor, mistake)
    y = np.zeros((N, C, H_out, W_out))
    for i in range(H_out):
        r0, r1, p = _neighbours(_source(i, H, H_out, align_corners, sh, mistake), H, mistake)
        for j in range(W_out):
            c0, c1, a = _neighbours(_source(j, W, W_out, align_corners, sw, mistake), W, mistake)
            wA, wB, wC, wD = _weights(p, a, mistake)
            y[:, :, i, j] = wA * x[:, :, r0, c0] + wB * x[:, :, r0, c1] + wC * x[:, :, r1, c1] + wD * x[:, :, r1, c0]
    return y


def my_backward(dy, cache, *, mistake=None):
    (N, C, H, W), align_corners, (sh, sw) = cache.x_shape, cache.align_corners, cache.scales
    H_out, W_out = dy.shape[2:]
    if mistake == "gather":  # interpolates dy down to the input size: A dy instead of A^T dy
        return my_bilinear(dy, size=(H, W), align_corners=align_corners)
    dx = np.zeros((N, C, H, W))
    rows = [_neighbours(_source(i, H, H_out, align_corners, sh, mistake), H, mistake) for i in range(H_out)]
    cols = [_neighbours(_source(j, W, W_out, align_corners, sw, mistake), W, mistake) for j in range(W_out)]
    if mistake == "overwrite":  # vectorised with fancy-index +=: repeated indices keep one addition
        r0, r1, p = (np.array(v) for v in zip(*rows))
        c0, c1, a = (np.array(v) for v in zip(*cols))
        p, a = p[:, None], a[None, :]
        for rr, cc, wt in ((r0, c0, (1 - p) * (1 - a)), (r0, c1, (1 - p) * a), (r1, c1, p * a), (r1, c0, p * (1 - a))):
            dx[:, :, rr[:, None], cc[None, :]] += wt * dy
        return dx
    for i, (r0, r1, p) in enumerate(rows):
        for j, (c0, c1, a) in enumerate(cols):
            wA, wB, wC, wD = _weights(p, a, mistake)
            g = dy[:, :, i, j]
            dx[:, :, r0, c0] += wA * g
            dx[:, :, r0, c1] += wB * g
            dx[:, :, r1, c1] += wC * g
            dx[:, :, r1, c0] += wD * g
    return dx


# --------------------------------------------------------------------------- right answers pass

def test_registered_in_lesson_order():
    names = exercises.names()
    assert names.index("conv2d_backward") < names.index("bilinear_interpolate") < \
        names.index("bilinear_interpolate_backward")
    later = [n for n in ("convolution_matrix", "center_crop_offsets") if n in names]   # lessons 04 and 07
    assert all(names.index("bilinear_interpolate_backward") < names.index(n) for n in later)


@pytest.mark.parametrize("name, fn", [
    ("bilinear_interpolate", bilinear_interpolate),
    ("bilinear_interpolate", my_bilinear),
    ("bilinear_interpolate_backward", bilinear_interpolate_backward),
    ("bilinear_interpolate_backward", my_backward),
])
def test_right_answers_pass(name, fn):
    r = exercises.check(name, fn)
    assert r.passed, str(r)
    assert r.diagnosis is None and "PASS" in str(r)


def test_backward_is_checked_against_central_differences():
    r = exercises.check("bilinear_interpolate_backward", my_backward)
    rels = [row.numeric_rel for c in r.cases for row in c.rows if row.numeric_rel is not None]
    assert len(rels) >= 3 and max(rels) < 1e-6


def test_cases_cover_the_grid():
    labels = " | ".join(c.label for c in exercises.get("bilinear_interpolate").make_cases())
    for part in ("align_corners=True", "scale_factor=1.75", "size=(4, 3)", "x 2x1x1x5", "size=(1, 7)", "x 2x3x5x7"):
        assert part in labels, part


# --------------------------------------------------------------------------- named mistakes

@pytest.mark.parametrize("mistake, title, key", [
    ("convention", "the other align_corners convention", "other_convention"),
    ("extrapolate", "source coordinate not clamped at 0 (negative src for align_corners=False)",
     "not_clamped_extrapolate"),
    ("wrap", "source coordinate not clamped at 0 (negative src for align_corners=False)", "not_clamped_wrap"),
    ("ceil", "output size off by one: H_out = floor(H * scale_factor), not rounded up", "size_ceil"),
    ("round", "output size off by one: H_out = floor(H * scale_factor), not rounded to nearest", "size_round"),
    ("step", "source step in/out instead of 1/scale_factor (a scale_factor given, align_corners=False)",
     "step_in_out"),
    ("xy", "x and y weights swapped (the column fraction a used between rows, the row fraction p between columns)",
     "xy_swapped"),
    ("ab", "weights of the two neighbours swapped (a and b exchanged: the nearer column gets the smaller weight)",
     "cols_swapped"),
    ("pq", "weights of the two neighbours swapped (p and q exchanged: the nearer row gets the smaller weight)",
     "rows_swapped"),
    ("both", "weights of the two neighbours swapped along both axes (lambda on i0, 1 - lambda on i1)",
     "both_swapped"),
])
def test_forward_mistakes_are_named(mistake, title, key):
    r = exercises.check("bilinear_interpolate", lambda *a, **k: my_bilinear(*a, **k, mistake=mistake))
    assert not r.passed
    assert r.diagnosis == title, str(r)
    assert r.mistake == key


@pytest.mark.parametrize("mistake, title, key", [
    ("gather", "gradient gathered from the output instead of scattered (A dy instead of A^T dy)", "gathered"),
    ("both", "weights of the two neighbours swapped (lambda sent to i0, 1 - lambda to i1)", "bw_both_swapped"),
    ("ab", "weights of the two neighbours swapped (lambda sent to i0, 1 - lambda to i1)", "bw_cols_swapped"),
    ("pq", "weights of the two neighbours swapped (lambda sent to i0, 1 - lambda to i1)", "bw_rows_swapped"),
    ("overwrite", "repeated indices not accumulated (dx[..., rows, cols] += v keeps one addition per pixel)",
     "overwrite"),
    ("convention", "the other align_corners convention", "bw_other_convention"),
    ("extrapolate", "source coordinate not clamped at 0 (negative src for align_corners=False)", "bw_not_clamped"),
    ("step", "source step in/out instead of 1/scale_factor (a scale_factor given, align_corners=False)",
     "bw_step_in_out"),
])
def test_backward_mistakes_are_named(mistake, title, key):
    r = exercises.check("bilinear_interpolate_backward", lambda dy, cache: my_backward(dy, cache, mistake=mistake))
    assert not r.passed
    assert r.diagnosis == title, str(r)
    assert r.mistake == key
    assert "why:" in str(r) or r.hint


def test_size_mistake_report_names_the_shape():
    r = exercises.check("bilinear_interpolate", lambda *a, **k: my_bilinear(*a, **k, mistake="ceil"))
    assert "expected y of shape (2, 2, 8, 10), got shape (2, 2, 9, 11)" in str(r)


# --------------------------------------------------------------------------- blanks, shapes

def test_blank_forward_is_not_implemented_yet():
    def my_fn(x, size=None, scale_factor=None, align_corners=False):
        raise NotImplementedError
    r = exercises.check("bilinear_interpolate", my_fn)
    assert not r.passed and r.diagnosis == "not implemented yet"


def test_blank_backward_is_not_implemented_yet():
    def my_fn(dy, cache):
        raise NotImplementedError
    r = exercises.check("bilinear_interpolate_backward", my_fn)
    assert not r.passed and r.diagnosis == "not implemented yet"


def test_forward_transposed_output_is_a_shape_message():
    r = exercises.check("bilinear_interpolate", lambda *a, **k: np.ascontiguousarray(my_bilinear(*a, **k).swapaxes(2, 3)))
    assert r.diagnosis == "expected y of shape (2, 3, 9, 12), got shape (2, 3, 12, 9)"
    assert "\n" not in r.diagnosis


def test_backward_wrong_shape_one_line():
    r = exercises.check("bilinear_interpolate_backward", lambda dy, cache: my_backward(dy, cache)[:, :, :, :-1])
    assert r.diagnosis == "expected dx of shape (1, 1, 2, 2), got shape (1, 1, 2, 1)"


def test_forward_may_return_y_and_cache():
    r = exercises.check("bilinear_interpolate", lambda *a, **k: (my_bilinear(*a, **k), None))
    assert r.passed, str(r)

"""Exercise of lesson 09 (scatter_add_flat): minseg passes, each named mistake is named, wrong kinds get one line."""
import numpy as np
import pytest

from minseg import exercises
from minseg.backend import scatter_add_flat


def test_the_exercise_is_registered_after_the_metrics_ones():
    names = exercises.names()
    assert names.index("confusion_matrix") < names.index("scatter_add_flat")


def test_minseg_passes():
    r = exercises.check("scatter_add_flat", scatter_add_flat)
    assert r.passed and r.diagnosis is None, str(r)
    assert "PASS" in str(r)


def test_np_add_at_passes_too():
    def add_at(indices, values, size):
        out = np.zeros(size, dtype=values.dtype)
        np.add.at(out, indices, values)
        return out
    assert exercises.check("scatter_add_flat", add_at).passed


def test_blank_is_not_implemented_yet():
    def blank(indices, values, size):
        raise NotImplementedError
    r = exercises.check("scatter_add_flat", blank)
    assert not r.passed and r.diagnosis == "not implemented yet"


def fancy_plus_equals(indices, values, size):
    out = np.zeros(size, dtype=values.dtype)
    out[indices] += values
    return out


def last_write_wins(indices, values, size):
    out = np.zeros(size, dtype=values.dtype)
    out[indices] = values
    return out


def no_minlength(indices, values, size):
    return np.bincount(indices, weights=values).astype(values.dtype)


def counts(indices, values, size):
    return np.bincount(indices, minlength=size).astype(values.dtype)


@pytest.mark.parametrize("fn, mistake", [
    (fancy_plus_equals, "out[indices] += values: a repeated index keeps only one of its values"),
    (last_write_wins, "out[indices] += values: a repeated index keeps only one of its values"),
    (no_minlength, "bins end at the largest index (no minlength)"),
    (counts, "counted the indices instead of summing the values (bincount without weights)"),
])
def test_mistakes_are_named(fn, mistake):
    r = exercises.check("scatter_add_flat", fn)
    assert not r.passed
    assert r.diagnosis == mistake, str(r)
    assert r.hint and "why:" in str(r)


def test_float64_result_for_float32_values_is_one_line():
    r = exercises.check("scatter_add_flat", lambda i, v, s: np.bincount(i, weights=v, minlength=s))
    assert not r.passed
    assert r.diagnosis == "expected out with dtype float32 (the input's), got dtype float64"


def test_wrong_shape_is_one_line():
    r = exercises.check("scatter_add_flat", lambda i, v, s: scatter_add_flat(i, v, s)[:, None])
    assert not r.passed
    assert r.diagnosis == "expected out of shape (5,), got shape (5, 1)"

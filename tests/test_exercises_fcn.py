"""Lesson 05's exercise fc_to_conv: minseg's function and a learner's loop pass, each classic mistake is named."""
import numpy as np
import pytest

from minseg import exercises
from minseg.models.vgg import fc_to_conv
from minseg.nn.layers import Conv2d, Flatten, Linear


def test_registered_after_lesson_04_in_order():
    names = exercises.names()
    assert "fc_to_conv" in names
    assert names.index("max_unpool2d") < names.index("fc_to_conv")


def test_minseg_passes():
    r = exercises.check("fc_to_conv", fc_to_conv)
    assert r.passed, str(r)
    assert r.diagnosis is None and "PASS" in str(r)


def test_cases_cover_channels_batch_padding_bias_and_1x1():
    cases = exercises.get("fc_to_conv").make_cases()
    labels = " ".join(c.label for c in cases)
    for wanted in ["padding=1", "padding=2", "(no bias)", "k=1", "k=2", "k=7"]:
        assert wanted in labels, wanted
    assert any(c.extra["C"] > 1 and c.extra["k"] > 1 for c in cases)
    assert any(c.extra["x"].shape[0] > 1 for c in cases)
    assert any(c.extra["x"].shape[2] != c.extra["x"].shape[3] for c in cases)   # y on non-square inputs


def test_the_reference_equals_the_fc_layer_numerically():
    """What the exercise rests on: on a k x k input the conv's 1x1 output is the FC of the flattened input."""
    rng = np.random.default_rng(3)
    C, k, F = 3, 4, 5
    fc = Linear(C * k * k, F, rng=rng, dtype=np.float64)
    fc.bias.data[...] = rng.standard_normal(F)
    x = rng.standard_normal((2, C, k, k))
    y_fc = fc.forward(Flatten().forward(x))                  # (2, F)
    y_conv = fc_to_conv(fc, C, k).forward(x)                 # (2, F, 1, 1)
    assert np.allclose(y_conv[:, :, 0, 0], y_fc, rtol=1e-12, atol=1e-12)


# --------------------------------------------------------------------------- a learner's version

def _fc_to_conv_loops(fc, in_channels, k, *, padding=0, order="ckk", swap_spatial=False, keep_bias=True,
                      in_out_swapped=False, use_padding=True, dtype=None):
    """A learner's loop version: the flags make the classic mistakes."""
    F, C = fc.out_features, in_channels
    W = fc.weight.data                                       # (F, C*k*k)
    conv = Conv2d(C, F, k, padding=padding if use_padding else 0, bias=fc.bias is not None,
                  dtype=dtype or W.dtype)
    for o in range(F):
        for c in range(C):
            for i in range(k):
                for j in range(k):
                    a, b = (j, i) if swap_spatial else (i, j)
                    d = (c * k + a) * k + b if order == "ckk" else (a * k + b) * C + c
                    if in_out_swapped:                       # W read as (C*k*k, F), flat index d*F + o
                        conv.weight.data[o, c, i, j] = W.reshape(-1)[d * F + o]
                    else:
                        conv.weight.data[o, c, i, j] = W[o, d]
    if fc.bias is not None and keep_bias:
        conv.bias.data[...] = fc.bias.data
    return conv


def _learner(**flags):
    def my_fc_to_conv(fc, in_channels, k, *, padding=0):
        return _fc_to_conv_loops(fc, in_channels, k, padding=padding, **flags)
    return my_fc_to_conv


def test_learner_loops_pass():
    r = exercises.check("fc_to_conv", _learner())
    assert r.passed, str(r)


@pytest.mark.parametrize("flags, named", [
    ({"order": "kkc"}, "weights reshaped in the wrong axis order: (k, k, C) instead of Flatten's (C, k, k)"),
    ({"swap_spatial": True}, "kernel spatially transposed (kh and kw swapped)"),
    ({"keep_bias": False}, "bias dropped"),
    ({"in_out_swapped": True}, "in/out axes swapped: fc.weight read as (in_features, out_features)"),
    ({"use_padding": False}, "padding ignored"),
])
def test_mistakes_are_named(flags, named):
    r = exercises.check("fc_to_conv", _learner(**flags))
    assert not r.passed
    assert r.diagnosis == named, str(r)
    assert "why:" in str(r)


def test_transposed_weight_is_named():
    def my_fc_to_conv(fc, in_channels, k, *, padding=0):
        conv = Conv2d(in_channels, fc.out_features, k, padding=padding, bias=fc.bias is not None,
                      dtype=fc.weight.dtype)
        conv.weight.data[...] = fc.weight.data.T.reshape(conv.weight.data.shape)   # .T not needed
        if fc.bias is not None:
            conv.bias.data[...] = fc.bias.data
        return conv
    r = exercises.check("fc_to_conv", my_fc_to_conv)
    assert r.diagnosis == "in/out axes swapped: fc.weight.T reshaped to (out_features, in_channels, k, k)"


def test_conv_without_bias_is_bias_dropped():
    def my_fc_to_conv(fc, in_channels, k, *, padding=0):
        conv = Conv2d(in_channels, fc.out_features, k, padding=padding, bias=False, dtype=fc.weight.dtype)
        conv.weight.data[...] = fc.weight.data.reshape(conv.weight.data.shape)
        return conv
    r = exercises.check("fc_to_conv", my_fc_to_conv)
    assert not r.passed and r.diagnosis == "bias dropped"


# --------------------------------------------------------------------------- structural problems

def test_blank_is_not_implemented_yet():
    def my_fc_to_conv(fc, in_channels, k, *, padding=0):
        raise NotImplementedError
    r = exercises.check("fc_to_conv", my_fc_to_conv)
    assert not r.passed and r.diagnosis == "not implemented yet"
    assert "to do:" in str(r) and "Traceback" not in str(r)


def test_wrong_weight_shape_is_one_line():
    def my_fc_to_conv(fc, in_channels, k, *, padding=0):
        conv = _fc_to_conv_loops(fc, in_channels, k, padding=padding)
        conv.weight.data = fc.weight.data.reshape(fc.out_features, k, k, in_channels)  # replaces the array
        return conv
    r = exercises.check("fc_to_conv", my_fc_to_conv)
    assert r.diagnosis == "expected weight of shape (2, 4, 3, 3) (out_channels, in_channels, k, k), got shape (2, 3, 3, 4)"
    assert "\n" not in r.diagnosis


def test_returning_an_array_is_a_clear_problem():
    r = exercises.check("fc_to_conv", lambda fc, in_channels, k, padding=0: fc.weight.data.reshape(
        fc.out_features, in_channels, k, k))
    assert r.diagnosis == "expected fc_to_conv to return a minseg.nn.Conv2d layer, got ndarray"


def test_float32_layer_is_a_dtype_problem():
    r = exercises.check("fc_to_conv", _learner(dtype=np.float32))
    assert r.diagnosis == "expected weight with dtype float64 (the input's), got dtype float32"


def test_exception_in_learner_code_is_reported():
    def my_fc_to_conv(fc, in_channels, k, *, padding=0):
        return _fc_to_conv_loops(fc, in_channels, k + 1, padding=padding)   # reads past the FC's weight
    r = exercises.check("fc_to_conv", my_fc_to_conv)
    assert not r.passed and r.diagnosis.startswith("IndexError")
    assert "\n" not in r.diagnosis

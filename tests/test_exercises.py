"""minseg.exercises: minseg's own functions pass, deliberately wrong ones fail with the mistake named."""
import numpy as np
import pytest

from minseg import exercises
from minseg.exercises import describe_wrong
from minseg.ops import conv2d, conv2d_backward, im2col


def test_names_lists_the_exercises():
    assert {"im2col", "conv2d", "conv2d_backward"} <= set(exercises.names())


@pytest.mark.parametrize("name, fn", [("im2col", im2col), ("conv2d", conv2d), ("conv2d_backward", conv2d_backward)])
def test_minseg_passes(name, fn):
    r = exercises.check(name, fn)
    assert r.passed, str(r)
    assert r.diagnosis is None
    assert "PASS" in str(r)


def test_unknown_name_is_a_clear_error():
    with pytest.raises(ValueError, match="did you mean 'conv2d'"):
        exercises.check("conv2", conv2d)


# --------------------------------------------------------------------------- structural problems

def test_blank_is_not_implemented_yet():
    def my_conv2d(x, w, b=None, *, stride=1, padding=0, dilation=1, groups=1):
        raise NotImplementedError
    r = exercises.check("conv2d", my_conv2d)
    assert not r.passed and r.diagnosis == "not implemented yet"
    assert "Traceback" not in str(r) and "not implemented yet" in r._repr_html_()


def test_exception_is_reported_with_the_case():
    def my_conv2d(x, w, b=None, *, stride=1, padding=0, dilation=1, groups=1):
        if stride != 1:
            raise IndexError("index 9 is out of bounds")
        return conv2d(x, w, b, stride=stride, padding=padding, dilation=dilation, groups=groups)[0]
    r = exercises.check("conv2d", my_conv2d)
    assert not r.passed
    assert r.diagnosis.startswith("IndexError: index 9 is out of bounds (line")
    assert "stride=2" in r.diagnosis and "in my_conv2d" in r.diagnosis
    assert "\n" not in r.diagnosis


def test_wrong_arity():
    def my_backward(dy, cache):
        return conv2d_backward(dy, cache)[:2]
    r = exercises.check("conv2d_backward", my_backward)
    assert r.diagnosis == "expected conv2d_backward to return 3 values (dx, dw, db), got 2"


def test_missing_return():
    r = exercises.check("conv2d_backward", lambda dy, cache: None)
    assert "got None" in r.diagnosis and "return" in r.diagnosis


def test_wrong_dtype():
    def my_conv2d(x, w, b=None, **hyper):
        return conv2d(x, w, b, **hyper)[0].astype(np.float32)
    r = exercises.check("conv2d", my_conv2d)
    assert r.diagnosis == "expected y with dtype float64 (the input's), got dtype float32"


def test_wrong_shape():
    def my_conv2d(x, w, b=None, **hyper):
        return conv2d(x, w, b, **hyper)[0][:, :, :, ::-1].transpose(0, 1, 3, 2)
    r = exercises.check("conv2d", my_conv2d)
    assert r.diagnosis == "expected y of shape (2, 4, 7, 9), got shape (2, 4, 9, 7)"


def test_db_must_be_none_without_bias():
    def my_backward(dy, cache):
        dx, dw, db = conv2d_backward(dy, cache)
        return dx, dw, dy.sum(axis=(0, 2, 3)) if db is None else db
    r = exercises.check("conv2d_backward", my_backward)
    assert r.diagnosis.startswith("expected db None")


def test_forward_may_return_y_alone_or_with_cache():
    assert exercises.check("conv2d", lambda x, w, b=None, **h: conv2d(x, w, b, **h)[0]).passed
    assert exercises.check("conv2d", conv2d).passed


def test_inputs_are_copies():
    def my_conv2d(x, w, b=None, **hyper):
        y = conv2d(x, w, b, **hyper)[0]
        x[...] = 0  # vandalises its input: must not change the reference or later cases
        return y
    assert exercises.check("conv2d", my_conv2d).passed


# --------------------------------------------------------------------------- loops

def _conv2d_loops(x, w, b=None, *, stride=1, padding=0, dilation=1, groups=1, flip=False):
    """A learner's loop version (flip=True: the classic convolution-vs-correlation mistake)."""
    s = (stride, stride) if isinstance(stride, int) else stride
    p = (padding, padding) if isinstance(padding, int) else padding
    d = (dilation, dilation) if isinstance(dilation, int) else dilation
    N, C, H, W = x.shape
    C_out, C_g, KH, KW = w.shape
    H_out = (H + 2 * p[0] - d[0] * (KH - 1) - 1) // s[0] + 1
    W_out = (W + 2 * p[1] - d[1] * (KW - 1) - 1) // s[1] + 1
    xp = np.pad(x, ((0, 0), (0, 0), (p[0], p[0]), (p[1], p[1])))
    k = w[..., ::-1, ::-1] if flip else w
    y = np.zeros((N, C_out, H_out, W_out))
    for n in range(N):
        for o in range(C_out):
            g = o // (C_out // groups)
            for i in range(H_out):
                for j in range(W_out):
                    win = xp[n, g * C_g:(g + 1) * C_g, i * s[0]:i * s[0] + d[0] * (KH - 1) + 1:d[0],
                             j * s[1]:j * s[1] + d[1] * (KW - 1) + 1:d[1]]
                    y[n, o, i, j] = (win * k[o]).sum() + (0 if b is None else b[o])
    return y


def test_loop_conv2d_passes_quickly():
    r = exercises.check("conv2d", _conv2d_loops)
    assert r.passed, str(r)
    assert r.seconds < 3


def test_flipped_kernel_is_named():
    r = exercises.check("conv2d", lambda *a, **k: _conv2d_loops(*a, **k, flip=True))
    assert not r.passed and r.diagnosis == "kernel flipped (convolution instead of cross-correlation)"
    assert r.mistake == "kernel_flipped" and "why:" in str(r)


def test_missing_bias_is_named():
    r = exercises.check("conv2d", lambda x, w, b=None, **k: _conv2d_loops(x, w, None, **k))
    assert r.diagnosis == "bias missing"


def test_output_size_off_by_one_is_named():
    def my_conv2d(x, w, b=None, *, stride=1, padding=0, dilation=1, groups=1):
        y = _conv2d_loops(x, w, b, stride=stride, padding=padding, dilation=dilation, groups=groups)
        return y[:, :, :-1, :-1].copy()   # as with H_out = (H + 2p - d(k-1) - 1) // s
    r = exercises.check("conv2d", my_conv2d)
    assert "output size off by one" in r.diagnosis


def test_dilation_ignored_is_named():
    def my_conv2d(x, w, b=None, *, stride=1, padding=0, dilation=1, groups=1):
        H_out, W_out = conv2d(x, w, b, stride=stride, padding=padding, dilation=dilation, groups=groups)[0].shape[2:]
        return _conv2d_loops(x, w, b, stride=stride, padding=padding, groups=groups)[:, :, :H_out, :W_out].copy()
    assert exercises.check("conv2d", my_conv2d).diagnosis == "dilation ignored (taps adjacent)"


def test_report_says_where_errors_lie():
    def my_conv2d(x, w, b=None, **hyper):  # wrong only on the last row and column of every map
        y = conv2d(x, w, b, **hyper)[0].copy()
        y[:, :, -1, :] += 1.0
        y[:, :, :, -1] += 1.0
        return y
    r = exercises.check("conv2d", my_conv2d)
    assert not r.passed and r.diagnosis is None
    text = str(r)
    assert "all in the last row and column" in text
    assert "120/504" in text  # 2 samples x 4 channels x (7 + 9 - 1) border pixels
    assert "vs" in text and "worst elements" in text


def test_describe_wrong():
    m = np.zeros((2, 4, 5, 6), bool)
    m[:, 2, 1:-1, 1:-1] = True
    assert describe_wrong(m) == "all in the interior (no border pixel); only channel 2 (of 4)"
    m = np.zeros((2, 3, 5, 6), bool)
    m[1, :, 0, :] = True
    assert describe_wrong(m) == "all in the first row; only sample 1 (of 2)"
    m = np.zeros((1, 1, 4, 4), bool)
    m[0, 0, 3, 3] = True
    assert describe_wrong(m) == "only at row 3, column 3 (a corner)"
    assert describe_wrong(np.array([False, True, False]), axes=("channel",), spatial=None) == \
        "only channel 1 (of 3)"


# --------------------------------------------------------------------------- im2col

def _im2col_loops(x, kernel_size, stride=1, padding=0, dilation=1, order="c_kh_kw"):
    KH, KW = (kernel_size, kernel_size) if isinstance(kernel_size, int) else kernel_size
    s = (stride, stride) if isinstance(stride, int) else stride
    p = (padding, padding) if isinstance(padding, int) else padding
    d = (dilation, dilation) if isinstance(dilation, int) else dilation
    N, C, H, W = x.shape
    H_out = (H + 2 * p[0] - d[0] * (KH - 1) - 1) // s[0] + 1
    W_out = (W + 2 * p[1] - d[1] * (KW - 1) - 1) // s[1] + 1
    xp = np.pad(x, ((0, 0), (0, 0), (p[0], p[0]), (p[1], p[1])))
    cols = np.zeros((C * KH * KW, N * H_out * W_out))
    for c in range(C):
        for kh in range(KH):
            for kw in range(KW):
                r = (c * KH + kh) * KW + kw if order == "c_kh_kw" else (kh * KW + kw) * C + c
                for n in range(N):
                    for i in range(H_out):
                        for j in range(W_out):
                            cols[r, (n * H_out + i) * W_out + j] = xp[n, c, i * s[0] + kh * d[0], j * s[1] + kw * d[1]]
    return cols


def test_im2col_loops_pass_and_row_order_mistake_is_named():
    assert exercises.check("im2col", _im2col_loops).passed
    r = exercises.check("im2col", lambda *a, **k: _im2col_loops(*a, **k, order="kh_kw_c"))
    assert r.diagnosis == "rows ordered (kh, kw, c) instead of (c, kh, kw)"


def test_im2col_transposed_is_named():
    r = exercises.check("im2col", lambda *a, **k: _im2col_loops(*a, **k).T)
    assert r.diagnosis.startswith("output transposed")


# --------------------------------------------------------------------------- conv2d_backward

def _backward(dy, cache, *, swap_dw=False, db_per_sample=False, flip_dx=False, no_crop=False, db_mean=False):
    """A learner's backward from the definition (loops over the output), with optional classic mistakes."""
    x, w, has_bias, (sh, sw), (ph, pw), (dh, dwl), G = cache
    N, C, H, W = x.shape
    C_out, C_g, KH, KW = w.shape
    _, _, H_out, W_out = dy.shape
    xp = np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)))
    dxp = np.zeros_like(xp)
    dw = np.zeros_like(w)
    k = w[..., ::-1, ::-1] if flip_dx else w
    for n in range(N):
        for o in range(C_out):
            g = o // (C_out // G)
            for i in range(H_out):
                for j in range(W_out):
                    rs = slice(i * sh, i * sh + dh * (KH - 1) + 1, dh)
                    cs = slice(j * sw, j * sw + dwl * (KW - 1) + 1, dwl)
                    dxp[n, g * C_g:(g + 1) * C_g, rs, cs] += k[o] * dy[n, o, i, j]
                    dw[o] += xp[n, g * C_g:(g + 1) * C_g, rs, cs] * dy[n, o, i, j]
    dx = dxp if no_crop else dxp[:, :, ph:ph + H, pw:pw + W]
    if swap_dw:
        dw = dw.swapaxes(2, 3)
    db = None
    if has_bias:
        db = dy.sum(axis=(2, 3)) if db_per_sample else dy.sum(axis=(0, 2, 3)) / (N if db_mean else 1)
    return dx, dw, db


def test_backward_loops_pass():
    assert exercises.check("conv2d_backward", _backward).passed


@pytest.mark.parametrize("flag, title", [
    ("swap_dw", "dw with kernel axes swapped (kh and kw exchanged)"),
    ("db_per_sample", "db not summed over the batch"),
    ("db_mean", "db averaged over the batch instead of summed"),
    ("flip_dx", "dx computed with the kernel not flipped"),
    ("no_crop", "padding not cropped from dx"),
])
def test_backward_mistakes_are_named(flag, title):
    r = exercises.check("conv2d_backward", lambda dy, cache: _backward(dy, cache, **{flag: True}))
    assert not r.passed and r.diagnosis == title, str(r)


def test_two_backward_mistakes_are_both_named():
    r = exercises.check("conv2d_backward", lambda dy, c: _backward(dy, c, swap_dw=True, db_per_sample=True))
    assert r.diagnosis == "dw with kernel axes swapped (kh and kw exchanged); db not summed over the batch"


def test_backward_report_has_numerical_gradient_column():
    r = exercises.check("conv2d_backward", conv2d_backward)
    assert "vs num. grad" in str(r)
    assert any(row.numeric_rel is not None and row.numeric_rel < 1e-5 for c in r.cases for row in c.rows)

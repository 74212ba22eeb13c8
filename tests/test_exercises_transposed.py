"""Lesson 04's exercises: minseg's functions pass, learner-style loops pass, each classic mistake is named."""
import numpy as np
import pytest

from minseg import exercises
from minseg.ops import conv_transpose2d, convolution_matrix, max_pool2d, max_pool2d_backward, max_unpool2d

NAMES = ["convolution_matrix", "conv_transpose2d", "max_pool2d", "max_pool2d_backward", "max_unpool2d"]


def _pair(v):
    return (v, v) if isinstance(v, int) else tuple(v)


def test_registered_after_lesson_02_in_order():
    names = exercises.names()
    assert [n for n in names if n in NAMES] == NAMES
    assert names.index("conv2d_backward") < names.index("convolution_matrix")


@pytest.mark.parametrize("name, fn", [("convolution_matrix", convolution_matrix),
                                      ("conv_transpose2d", conv_transpose2d), ("max_pool2d", max_pool2d),
                                      ("max_pool2d_backward", max_pool2d_backward), ("max_unpool2d", max_unpool2d)])
def test_minseg_passes(name, fn):
    r = exercises.check(name, fn)
    assert r.passed, str(r)
    assert r.diagnosis is None and "PASS" in str(r)


@pytest.mark.parametrize("name", NAMES)
def test_blank_is_not_implemented_yet(name):
    def blank(*args, **kwargs):
        raise NotImplementedError
    r = exercises.check(name, blank)
    assert not r.passed and r.diagnosis == "not implemented yet"
    assert "to do:" in str(r)


@pytest.mark.parametrize("name", NAMES)
def test_every_exercise_has_tied_or_overlapping_or_grouped_cases(name):
    labels = " ".join(c.label for c in exercises.get(name).make_cases())
    wanted = {"convolution_matrix": ["groups=2", "stride=2", "dilation=2"],
              "conv_transpose2d": ["groups=2", "output_padding=1", "dilation=2"],
              "max_pool2d": ["tied maxima", "stride=1", "dilation", "ceil_mode=True", "-inf"],
              "max_pool2d_backward": ["tied maxima", "stride=1", "dilation"],
              "max_unpool2d": ["repeated", "output_size=(2, 2, 7, 6)", "padding=1"]}[name]
    for w in wanted:
        assert w in labels, (name, w)


# --------------------------------------------------------------------------- convolution_matrix

def _matrix_loops(w, input_size, *, stride=1, padding=0, dilation=1, groups=1, flip=False, transpose=False,
                  no_padding=False, no_stride=False, short=False, no_groups=False):
    """A learner's loop version (the flags: the classic mistakes)."""
    (sh, sw), (ph, pw), (dh, dw) = _pair(stride), _pair(padding), _pair(dilation)
    if no_padding:
        ph = pw = 0
    if no_stride:
        sh = sw = 1
    C_out, C_g, KH, KW = w.shape
    C, H, W = input_size if len(input_size) == 3 else (C_g * groups, *input_size)
    H_out = (H + 2 * ph - dh * (KH - 1) - 1) // sh + (0 if short else 1)
    W_out = (W + 2 * pw - dw * (KW - 1) - 1) // sw + (0 if short else 1)
    k = w[..., ::-1, ::-1] if flip else w
    M = np.zeros((C_out * H_out * W_out, C * H * W))
    for o in range(C_out):
        g = 0 if no_groups else o // (C_out // groups)
        for i in range(H_out):
            for j in range(W_out):
                for cg in range(C_g):
                    for kh in range(KH):
                        for kw in range(KW):
                            h, v = i * sh - ph + kh * dh, j * sw - pw + kw * dw
                            if 0 <= h < H and 0 <= v < W:
                                M[(o * H_out + i) * W_out + j, ((g * C_g + cg) * H + h) * W + v] = k[o, cg, kh, kw]
    return M.T if transpose else M


def test_matrix_loops_pass():
    assert exercises.check("convolution_matrix", _matrix_loops).passed


@pytest.mark.parametrize("flag, title", [
    ("flip", "kernel flipped (the matrix of a convolution, not of the cross-correlation)"),
    ("transpose", "rows and columns swapped (C.T instead of C)"),
    ("no_padding", "padding ignored"),
    ("no_stride", "stride ignored"),
    ("short", "output size off by one (the + 1 of H_out = floor((H + 2p - d(k-1) - 1)/s) + 1 is missing)"),
    ("no_groups", "groups ignored (every output channel reads the first C // groups input channels)"),
])
def test_matrix_mistakes_are_named(flag, title):
    r = exercises.check("convolution_matrix", lambda w, size, **h: _matrix_loops(w, size, **h, **{flag: True}))
    assert not r.passed and r.diagnosis == title, str(r)


def test_matrix_wrong_shape_and_report():
    r = exercises.check("convolution_matrix", lambda w, size, **h: convolution_matrix(w, size, **h)[:, :-1])
    assert r.diagnosis == "expected C of shape (4, 16), got shape (4, 15)"

    def one_wrong_row(w, size, **h):
        M = convolution_matrix(w, size, **h).copy()
        M[0] += 1.0                             # output pixel (0, 0, 0) wrong for every input pixel
        return M
    text = str(exercises.check("convolution_matrix", one_wrong_row))
    assert "only output row 0" in text and "only output column 0" in text and "only output channel 0" in text


# --------------------------------------------------------------------------- conv_transpose2d

def _tconv_loops(x, w, b=None, *, stride=1, padding=0, output_padding=0, dilation=1, groups=1,
                 no_output_padding=False, no_crop=False, flip=False, swap_channels=False, no_bias=False):
    """A learner's stamping loops: each input pixel adds x * w[c, o] at rows h*s + kh*d, then the crop."""
    (sh, sw), (ph, pw), (oph, opw), (dh, dw) = map(_pair, (stride, padding, output_padding, dilation))
    if no_output_padding:
        oph = opw = 0
    if no_crop:
        ph = pw = 0
    N, C_in, H, W = x.shape
    Co_g, KH, KW = w.shape[1:]
    Ci_g = C_in // groups
    H_full, W_full = (H - 1) * sh + dh * (KH - 1) + 1 + oph, (W - 1) * sw + dw * (KW - 1) + 1 + opw
    k = w[..., ::-1, ::-1] if flip else w
    canvas = np.zeros((N, Co_g * groups, H_full, W_full))
    for c in range(C_in):
        g = c // Ci_g
        for ol in range(Co_g):
            o = g * Co_g + ol
            tap = k[o, c - g * Ci_g] if swap_channels else k[c, ol]     # (KH, KW)
            for i in range(H):
                for j in range(W):
                    for kh in range(KH):
                        for kw in range(KW):
                            canvas[:, o, i * sh + kh * dh, j * sw + kw * dw] += x[:, c, i, j] * tap[kh, kw]
    y = canvas[:, :, ph:H_full - ph, pw:W_full - pw]
    if b is not None and not no_bias:
        y = y + b.reshape(1, -1, 1, 1)
    return y, None


def test_tconv_loops_pass():
    assert exercises.check("conv_transpose2d", _tconv_loops).passed


@pytest.mark.parametrize("flag, title", [
    ("no_output_padding", "output_padding ignored"),
    ("no_crop", "padding not cropped from the output"),
    ("flip", "kernel not flipped (the zero-inserted input correlated with w as it is)"),
    ("swap_channels", "in/out channel axes of w swapped (w read as (C_out, C_in, KH, KW))"),
    ("no_bias", "bias missing"),
])
def test_tconv_mistakes_are_named(flag, title):
    r = exercises.check("conv_transpose2d", lambda x, w, b=None, **h: _tconv_loops(x, w, b, **h, **{flag: True}))
    assert not r.passed and r.diagnosis.startswith(title), str(r)


def test_tconv_as_zero_inserted_correlation_with_unflipped_kernel_is_named():
    """The other route: dilate x with zeros, pad by d(k-1) - p, correlate; the mistake keeps w unrotated."""
    def via_correlation(x, w, b=None, *, stride=1, padding=0, output_padding=0, dilation=1, groups=1, rotate=True):
        (sh, sw), (ph, pw), (oph, opw), (dh, dw) = map(_pair, (stride, padding, output_padding, dilation))
        N, C_in, H, W = x.shape
        Co_g, KH, KW = w.shape[1:]
        Ci_g = C_in // groups
        z = np.zeros((N, C_in, (H - 1) * sh + 1, (W - 1) * sw + 1))
        z[:, :, ::sh, ::sw] = x                                        # zeros inserted between the pixels
        eh, ew = dh * (KH - 1) - ph, dw * (KW - 1) - pw
        z = np.pad(z, ((0, 0), (0, 0), (eh, eh + oph), (ew, ew + opw)))
        k = w[..., ::-1, ::-1] if rotate else w
        H_out, W_out = z.shape[2] - dh * (KH - 1), z.shape[3] - dw * (KW - 1)
        y = np.zeros((N, Co_g * groups, H_out, W_out))
        for c in range(C_in):
            g = c // Ci_g
            for ol in range(Co_g):
                for kh in range(KH):
                    for kw in range(KW):
                        window = z[:, c, kh * dh:kh * dh + H_out, kw * dw:kw * dw + W_out]   # (N, H_out, W_out)
                        y[:, g * Co_g + ol] += k[c, ol, kh, kw] * window
        return (y if b is None else y + b.reshape(1, -1, 1, 1)), None
    assert exercises.check("conv_transpose2d", via_correlation).passed
    r = exercises.check("conv_transpose2d", lambda *a, **h: via_correlation(*a, **h, rotate=False))
    assert r.diagnosis == "kernel not flipped (the zero-inserted input correlated with w as it is)", str(r)


def test_tconv_wrong_shape():
    r = exercises.check("conv_transpose2d", lambda x, w, b=None, **h: conv_transpose2d(x, w, b, **h)[0][..., :-1])
    assert r.diagnosis == "expected y of shape (1, 1, 4, 4), got shape (1, 1, 4, 3)"


# --------------------------------------------------------------------------- max_pool2d

def _pool_loops(x, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False, *, last_tie=False,
                index="plane", pad=None, stride_one=False, no_ceil=False):
    """A learner's max-pooling with switches. ``pad``: None skips taps on the padding (right); a number pads
    with it and takes np.argmax over the padded window (the padding a candidate)."""
    (KH, KW) = _pair(kernel_size)
    (sh, sw) = _pair(stride) if stride is not None else ((1, 1) if stride_one else (KH, KW))
    (ph, pw), (dh, dw) = _pair(padding), _pair(dilation)
    ceil_mode = ceil_mode and not no_ceil
    N, C, H, W = x.shape

    def out_size(n, k, s, p, d):
        span = n + 2 * p - d * (k - 1) - 1
        out = (-(-span // s) if ceil_mode else span // s) + 1
        return out - 1 if ceil_mode and (out - 1) * s >= n + p else out
    H_out, W_out = out_size(H, KH, sh, ph, dh), out_size(W, KW, sw, pw, dw)
    y = np.zeros((N, C, H_out, W_out))
    idx = np.zeros((N, C, H_out, W_out), dtype=np.int64)
    for n in range(N):
        for c in range(C):
            for i in range(H_out):
                for j in range(W_out):
                    taps = [(i * sh - ph + kh * dh, j * sw - pw + kw * dw, kh * KW + kw)
                            for kh in range(KH) for kw in range(KW)]
                    if pad is None:
                        inside = [t for t in taps if 0 <= t[0] < H and 0 <= t[1] < W]
                        best, where = -np.inf, inside[0]
                        for t in inside:
                            val = x[n, c, t[0], t[1]]
                            if val > best or (last_tie and val == best):
                                best, where = val, t
                    else:
                        vals = [x[n, c, h, v] if 0 <= h < H and 0 <= v < W else pad for h, v, _ in taps]
                        m = int(np.argmax(vals))
                        best, where = vals[m], taps[m]
                    y[n, c, i, j] = best
                    h, v, t = where
                    flat = {"plane": h * W + v, "window": t, "padded": (h + ph) * (W + 2 * pw) + v + pw}
                    idx[n, c, i, j] = flat[index]
    return y, idx


def test_pool_loops_pass():
    assert exercises.check("max_pool2d", _pool_loops).passed


@pytest.mark.parametrize("flags, title", [
    ({"last_tie": True}, "tied maxima: the last maximum wins instead of the first (row-major window order)"),
    ({"index": "window"}, "indices relative to the window (tap kh*KW + kw) instead of flat indices h*W + w "
                          "into the H*W input plane"),
    ({"index": "padded"}, "indices into the padded plane instead of the H*W input plane"),
    ({"pad": 0.0}, "padding filled with zeros (a padded 0 beats negative pixels): pad with -inf"),
    ({"pad": -np.inf}, "padding counted as a candidate: a window of -inf points into the padding"),
    ({"stride_one": True}, "stride=None taken as 1 instead of kernel_size"),
    ({"no_ceil": True}, "ceil_mode ignored"),
])
def test_pool_mistakes_are_named(flags, title):
    r = exercises.check("max_pool2d", lambda x, k, *a, **h: _pool_loops(x, k, *a, **h, **flags))
    assert not r.passed and r.diagnosis.startswith(title), str(r)


def test_pool_last_tie_wrong_only_in_the_indices():
    r = exercises.check("max_pool2d", lambda x, k, *a, **h: _pool_loops(x, k, *a, **h, last_tie=True))
    rows = [row for c in r.cases for row in c.rows]
    assert all(row.passed for row in rows if row.name == "y")
    assert not all(row.passed for row in rows if row.name == "indices")


def test_pool_return_value_problems():
    r = exercises.check("max_pool2d", lambda x, k, *a, **h: max_pool2d(x, k, *a, **h)[0])
    assert r.diagnosis == ("expected max_pool2d to return y and the switches, (y, indices) or (y, cache) with "
                           "cache.indices, got one array")
    r = exercises.check("max_pool2d", lambda x, k, *a, **h: (max_pool2d(x, k, *a, **h)[0],
                                                            max_pool2d(x, k, *a, **h)[1].indices.astype(float)))
    assert r.diagnosis == "expected indices with an integer dtype, got dtype float64"
    r = exercises.check("max_pool2d", lambda x, k, *a, **h: (max_pool2d(x, k, *a, **h)[0][:, :, :-1],
                                                            max_pool2d(x, k, *a, **h)[1].indices))
    assert r.diagnosis == "expected y of shape (2, 3, 3, 4), got shape (2, 3, 2, 4)"
    assert exercises.check("max_pool2d", lambda x, k, *a, **h: (max_pool2d(x, k, *a, **h)[0],
                                                               max_pool2d(x, k, *a, **h)[1].indices)).passed


# --------------------------------------------------------------------------- max_pool2d_backward

def _pool_backward_loops(dy, cache, *, assign=False, average=False):
    """A learner's backward: dy to the switch, added (assign=True: written; average=True: spread)."""
    N, C, H, W = cache.x_shape
    KH, KW = cache.kernel_size
    (sh, sw), (ph, pw), (dh, dw) = cache.stride, cache.padding, cache.dilation
    dx = np.zeros((N, C, H, W))
    for n in range(N):
        for c in range(C):
            for i in range(dy.shape[2]):
                for j in range(dy.shape[3]):
                    if average:
                        for kh in range(KH):
                            for kw in range(KW):
                                h, v = i * sh - ph + kh * dh, j * sw - pw + kw * dw
                                if 0 <= h < H and 0 <= v < W:
                                    dx[n, c, h, v] += dy[n, c, i, j] / (KH * KW)
                        continue
                    k = cache.indices[n, c, i, j]
                    if assign:
                        dx[n, c, k // W, k % W] = dy[n, c, i, j]
                    else:
                        dx[n, c, k // W, k % W] += dy[n, c, i, j]
    return dx


def test_pool_backward_loops_pass():
    r = exercises.check("max_pool2d_backward", _pool_backward_loops)
    assert r.passed, str(r)
    assert "vs num. grad" in str(r)


@pytest.mark.parametrize("flag, title", [
    ("assign", "overlapping windows: gradient assigned instead of accumulated"),
    ("average", "gradient spread over the window (average pooling's gradient) instead of sent to the switch"),
])
def test_pool_backward_mistakes_are_named(flag, title):
    r = exercises.check("max_pool2d_backward", lambda dy, cache: _pool_backward_loops(dy, cache, **{flag: True}))
    assert not r.passed and r.diagnosis == title, str(r)


def test_pool_backward_wrong_shape():
    r = exercises.check("max_pool2d_backward", lambda dy, cache: max_pool2d_backward(dy, cache)[:, :, 1:])
    assert r.diagnosis == "expected dx of shape (2, 3, 6, 8), got shape (2, 3, 5, 8)"


# --------------------------------------------------------------------------- max_unpool2d

def _unpool_loops(x, indices, kernel_size, stride=None, padding=0, output_size=None, *, first_kept=False,
                  add=False, no_output_size=False, no_stride=False, no_padding=False):
    """A learner's max-unpooling: zeros, then each value at its switch in row-major order."""
    (kh, kw) = _pair(kernel_size)
    (sh, sw) = _pair(stride) if stride is not None and not no_stride else (kh, kw)
    (ph, pw) = (0, 0) if no_padding else _pair(padding)
    N, C, H, W = x.shape
    if output_size is not None and not no_output_size:
        H_out, W_out = tuple(output_size)[-2:]
    else:
        H_out, W_out = (H - 1) * sh - 2 * ph + kh, (W - 1) * sw - 2 * pw + kw
    y = np.zeros((N, C, H_out, W_out))
    order = [(i, j) for i in range(H) for j in range(W)]
    for n in range(N):
        for c in range(C):
            for i, j in (order[::-1] if first_kept else order):
                k = indices[n, c, i, j]
                if add:
                    y[n, c, k // W_out, k % W_out] += x[n, c, i, j]
                else:
                    y[n, c, k // W_out, k % W_out] = x[n, c, i, j]
    return y, None


def test_unpool_loops_pass():
    assert exercises.check("max_unpool2d", _unpool_loops).passed


@pytest.mark.parametrize("flag, title", [
    ("first_kept", "overlapping indices: the first write kept instead of the last"),
    ("add", "overlapping indices: values added instead of written"),
    ("no_output_size", "output_size ignored (the default size (H - 1)s - 2p + k used)"),
    ("no_stride", "stride ignored (the kernel size used as the stride)"),
    ("no_padding", "padding ignored in the output size (H_out = (H - 1)s + k instead of (H - 1)s - 2p + k)"),
])
def test_unpool_mistakes_are_named(flag, title):
    r = exercises.check("max_unpool2d", lambda *a, **h: _unpool_loops(*a, **h, **{flag: True}))
    assert not r.passed and r.diagnosis.startswith(title), str(r)


def test_unpool_cases_repeat_indices_and_last_write_matters():
    """The overlapping cases really hold repeated switches, so keeping the first write changes the answer."""
    cases = exercises.get("max_unpool2d").make_cases()
    repeated = [c for c in cases if "(repeated)" in c.label]
    assert len(repeated) >= 2
    for c in repeated:
        first = _unpool_loops(*c.args, **c.kwargs, first_kept=True)[0]
        assert not np.array_equal(first, max_unpool2d(*c.args, **c.kwargs)[0])


def test_unpool_wrong_shape():
    r = exercises.check("max_unpool2d", lambda *a, **h: max_unpool2d(*a, **h)[0][:, :, :, :-1])
    assert r.diagnosis == "expected y of shape (2, 3, 6, 8), got shape (2, 3, 6, 7)"

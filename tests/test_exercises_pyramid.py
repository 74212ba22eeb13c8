"""Exercises of lesson 06 (receptive_field, conv_output_size, adaptive_max_pool2d and its backward,
spatial_pyramid_pool): minseg passes, each named mistake is named, wrong kinds get their one-line message."""
import math

import numpy as np
import pytest

from minseg import exercises
from minseg.ops import adaptive_avg_pool2d, adaptive_max_pool2d, adaptive_max_pool2d_backward, spatial_pyramid_pool
from minseg.shapes import conv_output_size, receptive_field

NAMES = ["receptive_field", "conv_output_size", "adaptive_max_pool2d", "adaptive_max_pool2d_backward",
         "spatial_pyramid_pool"]
MINSEG = [receptive_field, conv_output_size, adaptive_max_pool2d, adaptive_max_pool2d_backward,
          spatial_pyramid_pool]


def test_the_exercises_are_registered_in_the_lessons_order():
    names = exercises.names()
    assert set(NAMES) <= set(names)
    positions = [names.index(n) for n in NAMES]
    assert positions == sorted(positions)
    assert names.index("max_unpool2d") < positions[0]
    assert positions[-1] < names.index("center_crop_offsets")


@pytest.mark.parametrize("name, fn", list(zip(NAMES, MINSEG)))
def test_minseg_passes(name, fn):
    r = exercises.check(name, fn)
    assert r.passed, str(r)
    assert r.diagnosis is None
    assert "PASS" in str(r)


@pytest.mark.parametrize("name", NAMES)
def test_blank_is_not_implemented_yet(name):
    def blank(*args, **kwargs):
        raise NotImplementedError
    r = exercises.check(name, blank)
    assert not r.passed and r.diagnosis == "not implemented yet"
    assert "to do:" in str(r)


def _named(name, fn, mistake):
    r = exercises.check(name, fn)
    assert not r.passed
    assert r.diagnosis is not None and r.diagnosis.split("; also ")[0] == mistake, str(r)
    assert r.hint and "why:" in str(r)
    return r


# --------------------------------------------------------------------------- receptive_field

def rf_without_dilation(layers):
    r, jump = 1, 1
    for k, s, d in layers:
        r += (k - 1) * jump
        jump *= s
    return r


def rf_last_stride(layers):
    r, jump = 1, 1
    for k, s, d in layers:
        r += d * (k - 1) * jump
        jump = s
    return r


def rf_strides_added(layers):
    r, jump = 1, 1
    for k, s, d in layers:
        r += d * (k - 1) * jump
        jump = jump + s - 1
    return r


def rf_no_strides(layers):
    return 1 + sum(d * (k - 1) for k, s, d in layers)


@pytest.mark.parametrize("fn, mistake", [
    (rf_without_dilation, "receptive field without the dilation term (d_l (k_l - 1) computed as k_l - 1)"),
    (rf_last_stride, "strides not multiplied (jump not accumulated)"),
    (rf_strides_added, "strides not multiplied (jump not accumulated)"),
    (rf_no_strides, "strides ignored (every layer counted at the input's resolution)"),
])
def test_receptive_field_mistakes_are_named(fn, mistake):
    _named("receptive_field", fn, mistake)


def test_receptive_field_unknown_mistake_shows_the_wrong_value():
    r = exercises.check("receptive_field", lambda layers: receptive_field(layers) + 1)
    assert not r.passed and r.diagnosis is None
    assert "r[0]: 4 vs 3" in str(r)                 # case 1: one 3x3 conv sees 3 pixels


@pytest.mark.parametrize("fn, message", [
    (lambda layers: float(receptive_field(layers)),
     "expected receptive_field to return an int (input pixels; // floors), got float 3.0"),
    (lambda layers: None, "expected receptive_field to return an int (input pixels), got None (a missing return?)"),
    (lambda layers: (receptive_field(layers), receptive_field(layers)),
     "expected receptive_field to return an int (input pixels; // floors), got tuple (3, 3)"),
])
def test_receptive_field_wrong_kind_gets_its_one_line_message(fn, message):
    r = exercises.check("receptive_field", fn)
    assert r.diagnosis == message
    assert "\n" not in r.diagnosis


def test_receptive_field_numpy_int_passes():
    r = exercises.check("receptive_field", lambda layers: np.int64(receptive_field(layers)))
    assert r.passed, str(r)


# --------------------------------------------------------------------------- conv_output_size

def size_dilation_ignored(size, kernel, stride=1, padding=0, dilation=1):
    return (size + 2 * padding - kernel) // stride + 1


def size_d_times_k(size, kernel, stride=1, padding=0, dilation=1):
    return math.floor((size + 2 * padding - dilation * kernel) / stride) + 1


def size_no_plus_one(size, kernel, stride=1, padding=0, dilation=1):
    return (size + 2 * padding - dilation * (kernel - 1) - 1) // stride


@pytest.mark.parametrize("fn, mistake", [
    (size_dilation_ignored, "dilation ignored"),
    (size_d_times_k, "dilation applied as d*k instead of d*(k-1)+1"),
    (size_no_plus_one, "the + 1 missing (H_out = floor((H + 2p - d(k - 1) - 1) / s) + 1)"),
])
def test_conv_output_size_mistakes_are_named(fn, mistake):
    _named("conv_output_size", fn, mistake)


def test_conv_output_size_float_division_gets_its_one_line_message():
    r = exercises.check("conv_output_size", lambda size, kernel, stride=1, padding=0, dilation=1:
                        (size + 2 * padding - dilation * (kernel - 1) - 1) / stride + 1)
    assert r.diagnosis == "expected conv_output_size to return an int (the output length; // floors), got float 3.0"


# --------------------------------------------------------------------------- adaptive_max_pool2d

def _pool_loops(x, output_size, end_rule="ceil", ties="first", index="plane"):
    """A learner's adaptive max pooling, written with loops; the options make it wrong in known ways."""
    N, C, H, W = x.shape
    if isinstance(output_size, int):
        output_size = (output_size, output_size)
    H_out, W_out = (H if output_size[0] is None else output_size[0]), (W if output_size[1] is None else output_size[1])

    def bounds(i, n, out):
        start = math.floor(i * n / out)
        end = math.ceil((i + 1) * n / out) if end_rule == "ceil" else math.floor((i + 1) * n / out)
        return start, end

    y = np.zeros((N, C, H_out, W_out))
    idx = np.zeros((N, C, H_out, W_out), dtype=np.int64)
    for n in range(N):
        for c in range(C):
            for i in range(H_out):
                h0, h1 = bounds(i, H, H_out)
                for j in range(W_out):
                    w0, w1 = bounds(j, W, W_out)
                    best, where = None, None
                    for h in range(h0, h1):
                        for w in range(w0, w1):
                            v = x[n, c, h, w]
                            if best is None or v > best or (ties == "last" and v == best):
                                best = v
                                where = h * W + w if index == "plane" else (h - h0) * (w1 - w0) + (w - w0)
                    y[n, c, i, j], idx[n, c, i, j] = max(x[n, c, h0:h1, w0:w1].ravel()), where
    return y, idx


def test_a_loop_version_passes():
    r = exercises.check("adaptive_max_pool2d", _pool_loops)
    assert r.passed, str(r)


@pytest.mark.parametrize("options, mistake", [
    ({"end_rule": "floor"}, "bins computed with floor at both ends"),
    ({"ties": "last"}, "last of tied maxima"),
    ({"index": "bin"}, "indices relative to the bin instead of flat indices h*W + w into the input plane"),
])
def test_adaptive_max_pool2d_mistakes_are_named(options, mistake):
    _named("adaptive_max_pool2d", lambda x, output_size: _pool_loops(x, output_size, **options), mistake)


def test_adaptive_max_pool2d_sppnet_windows_are_named():
    def sppnet(x, output_size):
        N, C, H, W = x.shape
        out = output_size if isinstance(output_size, int) else output_size[0]
        out_h, out_w = (out, out) if isinstance(output_size, int) else (
            output_size[0], W if output_size[1] is None else output_size[1])
        y = np.zeros((N, C, out_h, out_w))
        idx = np.zeros((N, C, out_h, out_w), dtype=np.int64)
        kh, sh, kw, sw = math.ceil(H / out_h), H // out_h, math.ceil(W / out_w), W // out_w
        for i in range(out_h):
            for j in range(out_w):
                win = x[:, :, i * sh:i * sh + kh, j * sw:j * sw + kw]
                flat = win.reshape(N, C, -1)
                k = flat.argmax(axis=2)
                y[:, :, i, j] = flat.max(axis=2)
                idx[:, :, i, j] = (i * sh + k // win.shape[3]) * W + j * sw + k % win.shape[3]
        return y, idx
    _named("adaptive_max_pool2d", sppnet,
           "SPPNet's sliding windows (size ceil(H/n), stride floor(H/n)) instead of the adaptive bins")


@pytest.mark.parametrize("fn, message", [
    (lambda x, output_size: adaptive_max_pool2d(x, output_size)[0],
     "expected adaptive_max_pool2d to return y and where each maximum came from, (y, indices) or (y, cache) "
     "with cache.indices, got one array"),
    (lambda x, output_size: (adaptive_max_pool2d(x, output_size)[0], None),
     "expected adaptive_max_pool2d to return (y, indices) or (y, cache) with cache.indices, got (y, NoneType)"),
    (lambda x, output_size: (adaptive_max_pool2d(x, output_size)[0][..., :-1], adaptive_max_pool2d(x, output_size)[1]),
     "expected y of shape (2, 3, 4, 4), got shape (2, 3, 4, 3)"),
    (lambda x, output_size: (adaptive_max_pool2d(x, output_size)[0],
                             adaptive_max_pool2d(x, output_size)[1].indices.astype(np.float64)),
     "expected indices with an integer dtype, got dtype float64"),
])
def test_adaptive_max_pool2d_wrong_kind_gets_its_one_line_message(fn, message):
    r = exercises.check("adaptive_max_pool2d", fn)
    assert not r.passed
    assert r.diagnosis == message
    assert "\n" not in r.diagnosis


# --------------------------------------------------------------------------- adaptive_max_pool2d_backward

def backward_assigned(dy, cache):
    N, C, H, W = cache.x_shape
    dx = np.zeros((N, C, H * W))
    for n in range(N):
        for c in range(C):
            dx[n, c, cache.indices[n, c].ravel()] = dy[n, c].ravel()
    return dx.reshape(N, C, H, W)


def backward_spread(dy, cache):
    N, C, H, W = cache.x_shape
    H_out, W_out = dy.shape[2:]
    dx = np.zeros((N, C, H, W))
    for i in range(H_out):
        h0, h1 = (i * H) // H_out, math.ceil((i + 1) * H / H_out)
        for j in range(W_out):
            w0, w1 = (j * W) // W_out, math.ceil((j + 1) * W / W_out)
            dx[:, :, h0:h1, w0:w1] += dy[:, :, i:i + 1, j:j + 1] / ((h1 - h0) * (w1 - w0))
    return dx


def backward_accumulated(dy, cache):
    N, C, H, W = cache.x_shape
    dx = np.zeros((N, C, H * W))
    for n in range(N):
        for c in range(C):
            np.add.at(dx[n, c], cache.indices[n, c].ravel(), dy[n, c].ravel())
    return dx.reshape(N, C, H, W)


def test_adaptive_max_pool2d_backward_by_add_at_passes():
    r = exercises.check("adaptive_max_pool2d_backward", backward_accumulated)
    assert r.passed, str(r)


@pytest.mark.parametrize("fn, mistake", [
    (backward_assigned, "overlapping bins: gradient assigned instead of accumulated"),
    (backward_spread, "gradient spread over the bin (average pooling's gradient) instead of sent to the maximum"),
])
def test_adaptive_max_pool2d_backward_mistakes_are_named(fn, mistake):
    _named("adaptive_max_pool2d_backward", fn, mistake)


def test_adaptive_max_pool2d_backward_wrong_shape_gets_its_one_line_message():
    r = exercises.check("adaptive_max_pool2d_backward", lambda dy, cache: dy.copy())
    assert r.diagnosis == "expected dx of shape (2, 3, 8, 8), got shape (2, 3, 4, 4)"


def test_adaptive_max_pool2d_backward_is_checked_against_central_differences():
    r = exercises.check("adaptive_max_pool2d_backward", adaptive_max_pool2d_backward)
    assert sum(row.numeric_rel is not None for c in r.cases for row in c.rows) == 4


# --------------------------------------------------------------------------- spatial_pyramid_pool

def _spp_loops(x, levels=(4, 2, 1), mode="max", order="c-i-j", level_order=1, pool=None):
    """A learner's SPP from minseg's adaptive pools; the options make it wrong in known ways."""
    N = x.shape[0]
    parts = []
    for level in levels[::level_order]:
        p, _ = pool(x, level) if pool else (adaptive_max_pool2d(x, level) if mode == "max"
                                            else _avg(x, level))
        if order == "i-j-c":
            p = p.transpose(0, 2, 3, 1)
        elif order == "c-j-i":
            p = p.transpose(0, 1, 3, 2)
        parts.append(p.reshape(N, -1))
    return np.concatenate(parts, axis=1)


def _avg(x, level):
    return adaptive_avg_pool2d(x, level)


def test_a_spp_from_the_adaptive_pools_passes():
    r = exercises.check("spatial_pyramid_pool", _spp_loops)
    assert r.passed, str(r)


@pytest.mark.parametrize("options, mistake", [
    ({"order": "i-j-c"}, "flattened in the wrong order (levels or channel/position order swapped)"),
    ({"order": "c-j-i"}, "flattened in the wrong order (levels or channel/position order swapped)"),
    ({"level_order": -1}, "flattened in the wrong order (levels or channel/position order swapped)"),
    ({"pool": _avg}, "average instead of max"),
    ({"pool": adaptive_max_pool2d}, "max instead of average (mode ignored)"),
])
def test_spatial_pyramid_pool_mistakes_are_named(options, mistake):
    _named("spatial_pyramid_pool", lambda x, levels=(4, 2, 1), mode="max": _spp_loops(x, levels, mode, **options),
           mistake)


def test_spatial_pyramid_pool_unflattened_gets_its_one_line_message():
    def unflattened(x, levels=(4, 2, 1), mode="max"):
        y = spatial_pyramid_pool(x, levels, mode)[0]
        return y.reshape(x.shape[0], x.shape[1], -1)
    r = exercises.check("spatial_pyramid_pool", unflattened)
    assert r.diagnosis == "expected y of shape (2, 63), got shape (2, 3, 21)"

"""Pooling and unpooling: max_pool2d with switches, max_unpool2d, bed of nails, global pooling, L2 normalisation."""
import itertools
import json
from pathlib import Path

import numpy as np
import pytest

from minseg import backend
from minseg.gradcheck import check_backward
from minseg.ops import (
    bed_of_nails_unpool,
    bed_of_nails_unpool_backward,
    broadcast_to_size,
    broadcast_to_size_backward,
    global_avg_pool2d,
    global_avg_pool2d_backward,
    l2_normalize,
    l2_normalize_backward,
    max_pool2d,
    max_pool2d_backward,
    max_unpool2d,
    max_unpool2d_backward,
)
from minseg.ops.pooling import _first_valid
from minseg.ops.unpooling import _unique_last_writers
from minseg.reference import (
    max_pool2d_backward_loops,
    max_pool2d_loops,
    max_unpool2d_backward_loops,
    max_unpool2d_loops,
)
from minseg.shapes import pair, pool_output_size

FIXTURE = Path(__file__).parent / "fixtures" / "upsampling_golden.npz"


def _tie_free(rng, shape):
    """Distinct values at least 1/7 apart: a central difference of 1e-6 never changes a window's argmax."""
    return rng.permutation(int(np.prod(shape))).reshape(shape).astype(np.float64) / 7.0


def _sizes(H, W, k, s, p, d, ceil_mode):
    (KH, KW), (sh, sw), (ph, pw), (dh, dw) = pair(k), pair(s), pair(p), pair(d)
    return pool_output_size(H, KH, sh, ph, dh, ceil_mode), pool_output_size(W, KW, sw, pw, dw, ceil_mode)


def _has_empty_windows(H, W, k, s, p, d, ceil_mode):
    """Windows entirely in the padding (possible with dilation): -inf outputs, no gradient."""
    (KH, KW), (sh, sw), (ph, pw), (dh, dw) = pair(k), pair(s), pair(p), pair(d)
    H_out, W_out = _sizes(H, W, k, s, p, d, ceil_mode)
    return any(_first_valid(H_out, H, KH, sh, ph, dh)[1]) or any(_first_valid(W_out, W, KW, sw, pw, dw)[1])


# --------------------------------------------------------------------------- max_pool2d: gradient checks

# kernel x stride x padding (<= kernel // 2) x dilation x ceil_mode, on a 7x8 input
POOL_GRID = [(k, s, p, d, c) for k, s, p, d, c in itertools.product([2, 3, (3, 2)], [1, 2, None], [0, 1],
                                                                    [1, 2], [False, True])
             if max(pair(p)) <= min(pair(k)) // 2]


@pytest.mark.parametrize("k,s,p,d,ceil_mode", POOL_GRID)
def test_max_pool2d_gradcheck_grid(k, s, p, d, ceil_mode):
    if _has_empty_windows(7, 8, k, s or k, p, d, ceil_mode):
        pytest.skip("a window lies entirely in the padding")
    x = _tie_free(np.random.default_rng(0), (2, 2, 7, 8))
    report = check_backward(max_pool2d, max_pool2d_backward, {"x": x}, kernel_size=k, stride=s, padding=p,
                            dilation=d, ceil_mode=ceil_mode)
    assert report.passed, str(report)


# --------------------------------------------------------------------------- max_pool2d: loops and PyTorch

def _pool_inputs(rng, shape, kind):
    if kind == "distinct":
        return _tie_free(rng, shape)
    x = rng.integers(-2, 3, size=shape).astype(np.float64)  # many ties
    if kind == "special":
        x[rng.random(shape) < 0.2] = -np.inf
        x[rng.random(shape) < 0.1] = np.nan
    return x


@pytest.mark.parametrize("kind", ["distinct", "ties", "special"])
@pytest.mark.parametrize("k,s,p,d,ceil_mode", [(2, None, 0, 1, False), (3, 1, 1, 1, False), ((3, 2), (2, 1), (1, 0),
                                                (2, 3), True), (4, 3, 2, 1, True), (2, 3, 1, 3, False)])
def test_max_pool2d_matches_loops(k, s, p, d, ceil_mode, kind):
    rng = np.random.default_rng(1)
    x = _pool_inputs(rng, (2, 2, 9, 8), kind)
    y, cache = max_pool2d(x, k, s, p, d, ceil_mode)
    y_ref, idx_ref = max_pool2d_loops(x, k, s, p, d, ceil_mode)
    np.testing.assert_array_equal(y, y_ref)
    np.testing.assert_array_equal(cache.indices, idx_ref)
    dy = rng.standard_normal(y.shape)
    np.testing.assert_allclose(max_pool2d_backward(dy, cache), max_pool2d_backward_loops(dy, idx_ref, x.shape),
                               rtol=1e-12, atol=1e-12)


def test_max_pool2d_first_maximum_wins_and_nan_propagates():
    x = np.array([[[[5.0, 5.0, 1.0, np.nan],
                    [5.0, 2.0, 9.0, 0.0]]]])
    y, cache = max_pool2d(x, 2)
    assert y[0, 0, 0, 0] == 5.0 and cache.indices[0, 0, 0, 0] == 0  # three 5s: the first in row-major order
    assert np.isnan(y[0, 0, 0, 1]) and cache.indices[0, 0, 0, 1] == 3  # a NaN beats the 9 that comes after it


def test_max_pool2d_matches_torch_random_configs(torch):
    """Seeded random configurations with ties, -inf and NaN: values, switches and gradients."""
    F = torch.nn.functional
    rng = np.random.default_rng(7)
    checked = 0
    while checked < 60:
        k = tuple(int(v) for v in rng.integers(1, 5, size=2))
        s = tuple(int(v) for v in rng.integers(1, 4, size=2))
        d = tuple(int(v) for v in rng.integers(1, 4, size=2))
        p = tuple(int(rng.integers(0, k[a] // 2 + 1)) for a in range(2))
        ceil_mode = bool(rng.integers(2))
        H, W = (int(v) for v in rng.integers(1, 10, size=2))
        if min(_sizes(H, W, k, s, p, d, ceil_mode)) < 1:
            continue
        x = _pool_inputs(rng, (2, 2, H, W), ["distinct", "ties", "special"][checked % 3])
        y, cache = max_pool2d(x, k, s, p, d, ceil_mode)
        tx = torch.tensor(x, requires_grad=True)
        ty, ti = F.max_pool2d(tx, k, s, p, d, ceil_mode=ceil_mode, return_indices=True)
        np.testing.assert_array_equal(y, ty.detach().numpy())
        np.testing.assert_array_equal(cache.indices, ti.numpy())
        if not np.isnan(x).any() and not _has_empty_windows(H, W, k, s, p, d, ceil_mode):
            dy = rng.standard_normal(y.shape)
            ty.backward(torch.tensor(dy))
            np.testing.assert_allclose(max_pool2d_backward(dy, cache), tx.grad.numpy(), rtol=1e-12, atol=1e-12)
        checked += 1


def test_max_pool2d_window_of_minus_inf_and_window_in_the_padding(torch):
    """All -inf: the index of the first pixel inside the input. All padding: PyTorch's index, and no gradient."""
    F = torch.nn.functional
    x = np.full((1, 1, 3, 3), -np.inf)
    x[0, 0, 2, 2] = 5.0
    y, cache = max_pool2d(x, 2, stride=1, padding=1)
    ty, ti = F.max_pool2d(torch.tensor(x), 2, 1, 1, return_indices=True)
    np.testing.assert_array_equal(y, ty.numpy())
    np.testing.assert_array_equal(cache.indices, ti.numpy())
    assert cache.indices[0, 0, 0, 2] == 1  # window rows -1..0, columns 1..2: first pixel inside is (0, 1)

    x = np.array([[[[1.0, 2.0], [3.0, 4.0]]]])  # kernel 2, dilation 3, padding 1: taps at -1 and 2, both outside
    y, cache = max_pool2d(x, 2, stride=1, padding=1, dilation=3)
    ty, ti = F.max_pool2d(torch.tensor(x), 2, 1, 1, dilation=3, return_indices=True)
    assert y[0, 0, 0, 0] == -np.inf and ty[0, 0, 0, 0] == -np.inf
    np.testing.assert_array_equal(cache.indices, ti.numpy())   # 6: past the end of the 2x2 plane
    np.testing.assert_array_equal(max_pool2d_backward(np.ones((1, 1, 1, 1)), cache), np.zeros_like(x))


def test_max_pool2d_float32_keeps_dtype_and_matches_torch(torch):
    rng = np.random.default_rng(3)
    x = rng.standard_normal((2, 3, 10, 9)).astype(np.float32)
    y, cache = max_pool2d(x, 3, 2, 1, ceil_mode=True)
    dx = max_pool2d_backward(np.ones_like(y), cache)
    assert y.dtype == np.float32 and dx.dtype == np.float32 and cache.indices.dtype == np.int64
    ty, ti = torch.nn.functional.max_pool2d(torch.tensor(x), 3, 2, 1, ceil_mode=True, return_indices=True)
    np.testing.assert_array_equal(y, ty.numpy())
    np.testing.assert_array_equal(cache.indices, ti.numpy())


# --------------------------------------------------------------------------- max_unpool2d

def _unique_indices(rng, N, C, H, W, plane):
    return np.stack([rng.permutation(plane)[:H * W] for _ in range(N * C)]).reshape(N, C, H, W)


@pytest.mark.parametrize("k,s,p,output_size", [(2, None, 0, None), (3, 2, 1, None), ((2, 3), (3, 2), (0, 1), None),
                                               (2, None, 0, (7, 9)), (3, 2, 1, (8, 6))])
def test_max_unpool2d_gradcheck(k, s, p, output_size):
    rng = np.random.default_rng(2)
    N, C, H, W = 2, 2, 4, 4
    x = rng.standard_normal((N, C, H, W))
    _, cache = max_unpool2d(x, np.zeros(x.shape, dtype=np.int64), k, s, p, output_size)
    indices = _unique_indices(rng, N, C, H, W, int(np.prod(cache.output_size)))
    report = check_backward(max_unpool2d, max_unpool2d_backward, {"x": x}, indices=indices, kernel_size=k,
                            stride=s, padding=p, output_size=output_size)
    assert report.passed, str(report)


def test_max_unpool2d_puts_the_maxima_back_where_they_came_from():
    rng = np.random.default_rng(4)
    x = _tie_free(rng, (2, 3, 6, 8))
    pooled, cache = max_pool2d(x, 2)
    restored, _ = max_unpool2d(pooled, cache.indices, 2)
    is_max = restored != 0
    np.testing.assert_array_equal(restored[is_max], x[is_max])    # every kept value sits where it was
    assert is_max.sum() == pooled.size                            # and nothing else survives
    np.testing.assert_array_equal(max_pool2d(restored, 2)[0], pooled)


def test_max_unpool2d_matches_loops_and_torch(torch):
    rng = np.random.default_rng(5)
    for k, s, p, size in [(2, None, 0, None), (3, 2, 1, (8, 6)), ((3, 2), (2, 3), (1, 0), (6, 9))]:
        x = rng.standard_normal((2, 2, 4, 3))
        _, cache = max_unpool2d(x, np.zeros(x.shape, dtype=np.int64), k, s, p, size)
        indices = _unique_indices(rng, 2, 2, 4, 3, int(np.prod(cache.output_size)))
        y, cache = max_unpool2d(x, indices, k, s, p, size)
        np.testing.assert_array_equal(y, max_unpool2d_loops(x, indices, cache.output_size))
        tx = torch.tensor(x, requires_grad=True)
        ty = torch.nn.functional.max_unpool2d(tx, torch.tensor(indices), k, s, p, size)
        np.testing.assert_array_equal(y, ty.detach().numpy())
        dy = rng.standard_normal(y.shape)
        ty.backward(torch.tensor(dy))
        dx = max_unpool2d_backward(dy, cache)
        np.testing.assert_array_equal(dx, tx.grad.numpy())
        np.testing.assert_array_equal(dx, max_unpool2d_backward_loops(dy, indices))


def test_max_unpool2d_repeated_indices_last_write_wins(torch):
    """Overlapping windows (kernel 3, stride 1) repeat switches: minseg keeps the last write in row-major order.

    That is PyTorch's CPU result on one thread. With several threads PyTorch
    writes chunks in parallel and the survivor depends on the scheduling.
    """
    rng = np.random.default_rng(6)
    pooled, cache = max_pool2d(_tie_free(rng, (2, 2, 6, 7)), 3, 1)
    x = rng.standard_normal(pooled.shape)
    assert len(np.unique(cache.indices[0, 0])) < cache.indices[0, 0].size  # indices do repeat
    y, ucache = max_unpool2d(x, cache.indices, 3, 1, output_size=(6, 7))
    np.testing.assert_array_equal(y, max_unpool2d_loops(x, cache.indices, (6, 7)))
    tx = torch.tensor(x, requires_grad=True)
    ty = torch.nn.functional.max_unpool2d(tx, torch.tensor(cache.indices), 3, 1, output_size=(6, 7))
    np.testing.assert_array_equal(y, ty.detach().numpy())
    # the backward is PyTorch's gather: every value reads dy at its index, overwritten or not
    dy = rng.standard_normal(y.shape)
    ty.backward(torch.tensor(dy))
    np.testing.assert_array_equal(max_unpool2d_backward(dy, ucache), tx.grad.numpy())


def test_unique_last_writers_gives_the_in_order_result():
    """The GPU path: writing only the last occurrence of each index equals writing everything in order."""
    rng = np.random.default_rng(8)
    flat = rng.integers(0, 20, size=200)
    values = rng.standard_normal(200)
    in_order = np.zeros(20)
    for i, v in zip(flat, values):
        in_order[i] = v
    last = _unique_last_writers(flat)
    assert len(np.unique(flat[last])) == len(last) == len(np.unique(flat))
    dedup = np.zeros(20)
    dedup[flat[last]] = values[last]
    np.testing.assert_array_equal(dedup, in_order)


def test_max_unpool2d_output_size_range_matches_torch(torch):
    """An explicit output_size must lie strictly between default - stride and default + stride."""
    x, idx = np.ones((1, 1, 3, 3)), np.zeros((1, 1, 3, 3), dtype=np.int64)  # default 6x6 at kernel 2
    for size in [(3, 6), (4, 6), (5, 6), (7, 6), (8, 6), (6, 7)]:
        try:
            torch.nn.functional.max_unpool2d(torch.tensor(x), torch.tensor(idx), 2, output_size=size)
            torch_ok = True
        except ValueError:
            torch_ok = False
        if torch_ok:
            assert max_unpool2d(x, idx, 2, output_size=size)[0].shape[2:] == size
        else:
            with pytest.raises(ValueError, match=r"max_unpool2d: expected output_size\[-2\] strictly between 4 and 8"):
                max_unpool2d(x, idx, 2, output_size=size)
    assert max_unpool2d(x, idx, 2, output_size=(1, 1, 5, 7))[0].shape == (1, 1, 5, 7)  # (N, C, H, W) accepted


# --------------------------------------------------------------------------- the simple unpoolings and global context

def test_bed_of_nails_unpool_and_gradcheck():
    x = np.arange(1.0, 5.0).reshape(1, 1, 2, 2)
    y, _ = bed_of_nails_unpool(x, 2)
    np.testing.assert_array_equal(y[0, 0], [[1, 0, 2, 0], [0, 0, 0, 0], [3, 0, 4, 0], [0, 0, 0, 0]])
    indices = np.array([[[[0, 2], [8, 10]]]])                       # every switch in the top-left corner
    np.testing.assert_array_equal(y, max_unpool2d(x, indices, 2)[0])
    rng = np.random.default_rng(9)
    report = check_backward(bed_of_nails_unpool, bed_of_nails_unpool_backward,
                            {"x": rng.standard_normal((2, 3, 3, 4))}, stride=(2, 3))
    assert report.passed, str(report)


@pytest.mark.parametrize("forward,backward,shape,hyper", [
    (global_avg_pool2d, global_avg_pool2d_backward, (2, 3, 5, 4), {}),
    (broadcast_to_size, broadcast_to_size_backward, (2, 3, 1, 1), {"size": (4, 5)}),
    (l2_normalize, l2_normalize_backward, (2, 4, 3, 3), {}),
])
def test_global_context_gradcheck(forward, backward, shape, hyper):
    x = np.random.default_rng(10).standard_normal(shape)
    report = check_backward(forward, backward, {"x": x}, **hyper)
    assert report.passed, str(report)


def test_global_context_matches_torch(torch):
    F = torch.nn.functional
    rng = np.random.default_rng(11)
    x = rng.standard_normal((2, 3, 5, 4))
    y, cache = global_avg_pool2d(x)
    tx = torch.tensor(x, requires_grad=True)
    ty = F.adaptive_avg_pool2d(tx, 1)
    np.testing.assert_allclose(y, ty.detach().numpy(), rtol=1e-12, atol=1e-12)
    dy = rng.standard_normal(y.shape)
    ty.backward(torch.tensor(dy))
    np.testing.assert_allclose(global_avg_pool2d_backward(dy, cache), tx.grad.numpy(), rtol=1e-12, atol=1e-12)

    g, _ = broadcast_to_size(y, (5, 4))                 # a 1x1 map upsampled bilinearly is a constant
    np.testing.assert_allclose(g, F.interpolate(ty.detach(), size=(5, 4), mode="bilinear").numpy(), rtol=1e-12)

    x[0, :, 1, 1] = 0.0                                 # a zero vector: the eps branch of the clamp
    x[1, :, 2, 0] = 1e-13                               # a tiny one: norm < eps
    y, cache = l2_normalize(x)
    tx = torch.tensor(x, requires_grad=True)
    ty = F.normalize(tx, p=2.0, dim=1, eps=1e-12)
    np.testing.assert_allclose(y, ty.detach().numpy(), rtol=1e-12, atol=1e-12)
    dy = rng.standard_normal(y.shape)
    ty.backward(torch.tensor(dy))
    np.testing.assert_allclose(l2_normalize_backward(dy, cache), tx.grad.numpy(), rtol=1e-10, atol=1e-10)


# --------------------------------------------------------------------------- golden fixtures

def _golden_cases(data, op):
    cases = sorted({k.split("/")[1] for k in data.files if k.startswith(f"{op}/")}, key=int)
    for i in cases:
        config = json.loads(str(data[f"{op}/{i}/config"]))
        yield f"{op}/{i}", {k: (tuple(v) if isinstance(v, list) else v) for k, v in config.items()}


def test_matches_golden_fixtures():
    """PyTorch results stored by data_scripts/make_golden_upsampling.py: conformance without torch installed."""
    data = np.load(FIXTURE)
    n = 0
    for key, hyper in _golden_cases(data, "max_pool2d"):
        y, cache = max_pool2d(data[f"{key}/x"], **hyper)
        np.testing.assert_array_equal(y, data[f"{key}/y"], err_msg=key)
        np.testing.assert_array_equal(cache.indices, data[f"{key}/indices"], err_msg=key)
        np.testing.assert_allclose(max_pool2d_backward(data[f"{key}/dy"], cache), data[f"{key}/dx"],
                                   rtol=1e-12, atol=1e-12, err_msg=key)
        n += 1
    for key, hyper in _golden_cases(data, "max_unpool2d"):
        y, cache = max_unpool2d(data[f"{key}/x"], data[f"{key}/indices"], **hyper)
        np.testing.assert_array_equal(y, data[f"{key}/y"], err_msg=key)
        np.testing.assert_array_equal(max_unpool2d_backward(data[f"{key}/dy"], cache), data[f"{key}/dx"],
                                      err_msg=key)
        n += 1
    for op, forward, backward in [("global_avg_pool2d", global_avg_pool2d, global_avg_pool2d_backward),
                                  ("l2_normalize", l2_normalize, l2_normalize_backward)]:
        for key, hyper in _golden_cases(data, op):
            y, cache = forward(data[f"{key}/x"], **hyper)
            np.testing.assert_allclose(y, data[f"{key}/y"], rtol=1e-12, atol=1e-12, err_msg=key)
            np.testing.assert_allclose(backward(data[f"{key}/dy"], cache), data[f"{key}/dx"],
                                       rtol=1e-10, atol=1e-10, err_msg=key)
            n += 1
    assert n >= 13


# --------------------------------------------------------------------------- backends

def test_same_code_on_every_backend(xp):
    rng = np.random.default_rng(12)
    x = _pool_inputs(rng, (2, 3, 9, 8), "ties")
    y_ref, c_ref = max_pool2d(x, 3, 2, 1, ceil_mode=True)
    y, c = max_pool2d(xp.asarray(x), 3, 2, 1, ceil_mode=True)
    np.testing.assert_array_equal(backend.to_numpy(y), y_ref)
    np.testing.assert_array_equal(backend.to_numpy(c.indices), c_ref.indices)
    dy = rng.standard_normal(y_ref.shape)
    np.testing.assert_array_equal(backend.to_numpy(max_pool2d_backward(xp.asarray(dy), c)),
                                  max_pool2d_backward(dy, c_ref))
    pooled, pc = max_pool2d(_tie_free(rng, (2, 2, 6, 7)), 3, 1)          # repeated switches
    u_ref, uc_ref = max_unpool2d(pooled, pc.indices, 3, 1, output_size=(6, 7))
    u, uc = max_unpool2d(xp.asarray(pooled), xp.asarray(pc.indices), 3, 1, output_size=(6, 7))
    np.testing.assert_array_equal(backend.to_numpy(u), u_ref)
    np.testing.assert_array_equal(backend.to_numpy(max_unpool2d_backward(xp.asarray(u_ref), uc)),
                                  max_unpool2d_backward(u_ref, uc_ref))


# --------------------------------------------------------------------------- bad inputs

@pytest.mark.parametrize("args,kwargs,exc,words", [
    ((np.zeros((4, 8, 8)), 2), {}, ValueError, ["x", "(N, C, H, W)", "(4, 8, 8)"]),
    ((np.zeros((1, 1, 8, 8), dtype=np.int32), 2), {}, TypeError, ["x", "floating", "int32"]),
    ((np.zeros((1, 1, 8, 8)), 0), {}, ValueError, ["kernel_size", ">= 1", "(0, 0)"]),
    ((np.zeros((1, 1, 8, 8)), 3), {"padding": 2}, ValueError, ["padding", "kernel_size // 2", "(1, 1)", "(2, 2)"]),
    ((np.zeros((1, 1, 8, 8)), 2), {"stride": 0}, ValueError, ["stride", ">= 1"]),
    ((np.zeros((1, 1, 8, 8)), 2), {"dilation": 0}, ValueError, ["dilation", ">= 1"]),
    ((np.zeros((1, 1, 2, 2)), 3), {}, ValueError, ["window", "(3, 3)", "(2, 2)", "(0, 0)"]),
    ((np.zeros((1, 1, 8, 8)), 2), {"ceil_mode": 1}, TypeError, ["ceil_mode", "bool", "1"]),
    ((np.zeros((1, 1, 8, 8)), 2.5), {}, TypeError, ["kernel_size", "2.5"]),
])
def test_max_pool2d_bad_inputs(args, kwargs, exc, words):
    with pytest.raises(exc) as info:
        max_pool2d(*args, **kwargs)
    message = str(info.value)
    assert message.startswith("max_pool2d: expected")
    for word in words:
        assert word in message, f"{word!r} missing from {message!r}"


def _x():
    return np.ones((2, 3, 4, 4))


@pytest.mark.parametrize("args,kwargs,exc,words", [
    ((_x(), np.zeros((2, 3, 4, 5), dtype=np.int64), 2), {}, ValueError,
     ["indices of shape (2, 3, 4, 4) like x", "(2, 3, 4, 5)"]),
    ((_x(), np.zeros((2, 3, 4, 4)), 2), {}, TypeError, ["indices", "integer dtype", "float64"]),
    ((_x(), np.full((2, 3, 4, 4), 64), 2), {}, ValueError, ["indices in [0, 64)", "8x8", "got 64"]),
    ((_x(), np.full((2, 3, 4, 4), -1), 2), {}, ValueError, ["indices in [0, 64)", "got -1"]),
    ((_x(), np.zeros((2, 3, 4, 4), dtype=np.int64), 2), {"output_size": (10, 8)}, ValueError,
     ["output_size[-2]", "strictly between 6 and 10", "(10, 8)"]),
    ((_x(), np.zeros((2, 3, 4, 4), dtype=np.int64), 2), {"output_size": (8,)}, TypeError, ["output_size", "(8,)"]),
    ((_x()[0], np.zeros((3, 4, 4), dtype=np.int64), 2), {}, ValueError, ["x", "(N, C, H, W)", "(3, 4, 4)"]),
    ((_x(), np.zeros((2, 3, 4, 4), dtype=np.int64), 2), {"padding": -1}, ValueError, ["padding", ">= 0"]),
])
def test_max_unpool2d_bad_inputs(args, kwargs, exc, words):
    with pytest.raises(exc) as info:
        max_unpool2d(*args, **kwargs)
    message = str(info.value)
    assert message.startswith("max_unpool2d: expected")
    for word in words:
        assert word in message, f"{word!r} missing from {message!r}"


@pytest.mark.parametrize("call,message", [
    (lambda: bed_of_nails_unpool(np.zeros((2, 3, 4)), 2), r"bed_of_nails_unpool: expected x of shape \(N, C, H, W\)"),
    (lambda: bed_of_nails_unpool(np.zeros((1, 1, 2, 2)), 0), r"bed_of_nails_unpool: expected stride >= 1"),
    (lambda: global_avg_pool2d(np.zeros((2, 3), dtype=np.float32)), r"global_avg_pool2d: expected x of shape"),
    (lambda: broadcast_to_size(np.zeros((2, 3, 2, 1)), 4),
     r"broadcast_to_size: expected x of shape \(N, C, 1, 1\), got shape \(2, 3, 2, 1\)"),
    (lambda: broadcast_to_size(np.zeros((2, 3, 1, 1)), 0), r"broadcast_to_size: expected size >= 1"),
    (lambda: l2_normalize(np.zeros((1, 2, 2, 2)), eps=0.0), r"l2_normalize: expected eps to be a positive"),
])
def test_simple_ops_bad_inputs(call, message):
    with pytest.raises((ValueError, TypeError), match=message):
        call()


@pytest.mark.parametrize("forward,backward,x,hyper,bad_dy", [
    (max_pool2d, max_pool2d_backward, np.zeros((1, 2, 4, 4)), {"kernel_size": 2}, np.zeros((1, 2, 2, 3))),
    (global_avg_pool2d, global_avg_pool2d_backward, np.zeros((1, 2, 4, 4)), {}, np.zeros((1, 2, 2, 2))),
    (bed_of_nails_unpool, bed_of_nails_unpool_backward, np.zeros((1, 2, 2, 2)), {}, np.zeros((1, 2, 4, 3))),
    (l2_normalize, l2_normalize_backward, np.ones((1, 2, 2, 2)), {}, np.zeros((1, 2, 2, 3))),
])
def test_backward_rejects_wrong_dy_shape(forward, backward, x, hyper, bad_dy):
    _, cache = forward(x, **hyper)
    with pytest.raises(ValueError, match=r"_backward: expected dy of shape"):
        backward(bad_dy, cache)


# --------------------------------------------------------------------------- both max_pool2d paths, each forced

POOL_PATH_CASES = [  # (H, W, kernel, stride, padding, dilation, ceil_mode)
    (6, 8, 2, 2, 0, 1, False),
    (7, 5, 3, 2, 1, 1, True),
    (9, 9, 3, 1, 1, 2, False),
    (5, 7, (2, 3), (1, 2), (1, 1), (2, 1), True),
    (1, 1, 1, 1, 0, 1, False),
]


@pytest.mark.parametrize("fill", ["ties", "nan", "-inf"])
@pytest.mark.parametrize("case", POOL_PATH_CASES)
def test_max_pool2d_plain_and_separable_paths_agree_with_the_loops(monkeypatch, case, fill):
    """Every window built and argmax'ed (the plain path) gives the separable running max's maxima and switches."""
    import minseg.ops.pooling as module

    H, W, k, s, p, d, ceil = case
    rng = np.random.default_rng(H * 31 + W)
    x = np.round(rng.standard_normal((2, 3, H, W)) * 1.5)  # integers: many tied maxima
    if fill == "nan":
        x[0, 1].flat[rng.integers(0, H * W, size=3)] = np.nan
    elif fill == "-inf":
        x[1, 0] = -np.inf
    y_ref, idx_ref = max_pool2d_loops(x, k, s, p, d, ceil)
    results = {}
    for force in (True, False):
        monkeypatch.setattr(module, "_use_plain_path", lambda kernel, stride, force=force: force)
        y, cache = max_pool2d(x, k, s, p, d, ceil_mode=ceil)
        np.testing.assert_array_equal(y, y_ref)
        np.testing.assert_array_equal(cache.indices, idx_ref)
        results[force] = (y, cache.indices)
    np.testing.assert_array_equal(results[True][1], results[False][1])

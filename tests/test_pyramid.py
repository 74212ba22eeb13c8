"""Adaptive pooling and spatial pyramid pooling: bins, loops, PyTorch, golden files, gradient checks, layers, errors."""
import json
from fractions import Fraction
from math import ceil, floor
from pathlib import Path

import numpy as np
import pytest

import minseg.nn as nn
from minseg import backend
from minseg.gradcheck import check_backward
from minseg.ops import (
    adaptive_avg_pool2d,
    adaptive_avg_pool2d_backward,
    adaptive_bins,
    adaptive_max_pool2d,
    adaptive_max_pool2d_backward,
    adaptive_output_size,
    spatial_pyramid_pool,
    spatial_pyramid_pool_backward,
)
from minseg.reference import (
    adaptive_avg_pool2d_backward_loops,
    adaptive_avg_pool2d_loops,
    adaptive_max_pool2d_backward_loops,
    adaptive_max_pool2d_loops,
)

FIXTURE = Path(__file__).parent / "fixtures" / "pyramid_golden.npz"
EXACT = dict(rtol=1e-12, atol=1e-12)


def _inputs(rng, shape, kind):
    """Distinct values 1/7 apart (tie-free), small integers (many ties), or ties with -inf and NaN."""
    if kind == "distinct":
        return rng.permutation(int(np.prod(shape))).reshape(shape).astype(np.float64) / 7.0
    x = rng.integers(-2, 3, size=shape).astype(np.float64)
    if kind == "special":
        x[rng.random(shape) < 0.2] = -np.inf
        x[rng.random(shape) < 0.1] = np.nan
    return x


# --------------------------------------------------------------------------- the bins

@pytest.mark.parametrize("in_size", range(1, 13))
def test_adaptive_bins_are_floor_and_ceil_and_cover_the_axis(in_size):
    for out_size in range(1, in_size + 5):
        starts, ends = adaptive_bins(in_size, out_size)
        assert starts == [floor(Fraction(i * in_size, out_size)) for i in range(out_size)]
        assert ends == [ceil(Fraction((i + 1) * in_size, out_size)) for i in range(out_size)]
        assert starts[0] == 0 and ends[-1] == in_size
        assert all(s < e for s, e in zip(starts, ends))                  # never empty
        assert all(e >= s for e, s in zip(ends[:-1], starts[1:]))        # no row left out between bins
        if in_size % out_size == 0:                                     # an exact tiling: plain pooling
            k = in_size // out_size
            assert starts == list(range(0, in_size, k)) and all(e - s == k for s, e in zip(starts, ends))


def test_adaptive_bins_examples():
    assert adaptive_bins(5, 3) == ([0, 1, 3], [2, 4, 5])      # rows 1 and 3 are shared by two bins
    assert adaptive_bins(2, 4) == ([0, 0, 1, 1], [1, 1, 2, 2])
    assert adaptive_bins(7, 1) == ([0], [7])                   # one bin: global pooling


def test_adaptive_output_size_rules():
    assert adaptive_output_size(3, (5, 6)) == (3, 3)
    assert adaptive_output_size((2, None), (5, 6)) == (2, 6)
    assert adaptive_output_size([None, None], (5, 6)) == (5, 6)


# --------------------------------------------------------------------------- against the loops

LOOP_CASES = [((7, 5), (3, 2)), ((5, 7), (5, 3)), ((3, 4), (5, 9)), ((6, 6), (4, 4)), ((1, 6), (3, 4)),
              ((9, 2), (4, 1)), ((4, 4), (1, 1))]


@pytest.mark.parametrize("kind", ["distinct", "ties", "special"])
@pytest.mark.parametrize("hw,size", LOOP_CASES)
def test_adaptive_max_pool2d_matches_loops(hw, size, kind):
    rng = np.random.default_rng(1)
    x = _inputs(rng, (2, 3, *hw), kind)
    y, cache = adaptive_max_pool2d(x, size)
    y_ref, idx_ref = adaptive_max_pool2d_loops(x, size)
    np.testing.assert_array_equal(y, y_ref)
    np.testing.assert_array_equal(cache.indices, idx_ref)
    dy = rng.standard_normal(y.shape)
    np.testing.assert_allclose(adaptive_max_pool2d_backward(dy, cache),
                               adaptive_max_pool2d_backward_loops(dy, idx_ref, x.shape), **EXACT)


@pytest.mark.parametrize("hw,size", LOOP_CASES)
def test_adaptive_avg_pool2d_matches_loops(hw, size):
    rng = np.random.default_rng(2)
    x = rng.standard_normal((2, 3, *hw))
    y, cache = adaptive_avg_pool2d(x, size)
    np.testing.assert_allclose(y, adaptive_avg_pool2d_loops(x, size), **EXACT)
    dy = rng.standard_normal(y.shape)
    np.testing.assert_allclose(adaptive_avg_pool2d_backward(dy, cache),
                               adaptive_avg_pool2d_backward_loops(dy, x.shape), **EXACT)


# --------------------------------------------------------------------------- ties, NaN and -inf

def test_first_maximum_wins_last_nan_wins_and_minus_inf_bin_points_at_its_first_pixel():
    x = np.array([[[[5.0, 1.0, 5.0, np.nan, 2.0, np.nan],
                    [5.0, 9.0, 0.0, 1.0, -np.inf, -np.inf],
                    [-np.inf, -np.inf, 3.0, 3.0, -np.inf, -np.inf],
                    [-np.inf, -np.inf, 3.0, 7.0, -np.inf, -np.inf]]]])
    y, cache = adaptive_max_pool2d(x, (2, 3))   # exact 2x2 bins
    assert y[0, 0, 0, 0] == 9.0 and cache.indices[0, 0, 0, 0] == 7          # the 9 at (1, 1)
    assert np.isnan(y[0, 0, 0, 1]) and cache.indices[0, 0, 0, 1] == 3       # the one NaN, at (0, 3)
    assert np.isnan(y[0, 0, 0, 2]) and cache.indices[0, 0, 0, 2] == 5       # NaN at (0, 5) beats the 2 before it
    assert y[0, 0, 1, 0] == -np.inf and cache.indices[0, 0, 1, 0] == 12     # all -inf: the bin's first pixel (2, 0)
    assert y[0, 0, 1, 1] == 7.0 and cache.indices[0, 0, 1, 1] == 21
    assert y[0, 0, 1, 2] == -np.inf and cache.indices[0, 0, 1, 2] == 16
    y, cache = adaptive_max_pool2d(x[:, :, :2, :3], 1)                      # three 5s and a 9; then ties only
    assert y[0, 0, 0, 0] == 9.0 and cache.indices[0, 0, 0, 0] == 4
    y, cache = adaptive_max_pool2d(np.array([[[[5.0, 1.0, 5.0], [5.0, 2.0, 5.0]]]]), 1)
    assert cache.indices[0, 0, 0, 0] == 0                                   # four 5s: the first in row-major order
    y, cache = adaptive_max_pool2d(np.array([[[[np.nan, 1.0], [np.nan, 2.0]]]]), 1)
    assert np.isnan(y[0, 0, 0, 0]) and cache.indices[0, 0, 0, 0] == 2       # two NaNs: the last one


def test_ties_and_nan_match_torch(torch):
    F = torch.nn.functional
    rng = np.random.default_rng(3)
    for kind in ["ties", "special"]:
        for hw, size in LOOP_CASES:
            x = _inputs(rng, (2, 3, *hw), kind)
            y, cache = adaptive_max_pool2d(x, size)
            tx = torch.tensor(x, requires_grad=True)
            ty, ti = F.adaptive_max_pool2d(tx, size, return_indices=True)
            np.testing.assert_array_equal(y, ty.detach().numpy())
            np.testing.assert_array_equal(cache.indices, ti.numpy())
            dy = rng.standard_normal(y.shape)            # the gradient goes to the NaN that won, too
            ty.backward(torch.tensor(dy))
            np.testing.assert_allclose(adaptive_max_pool2d_backward(dy, cache), tx.grad.numpy(), **EXACT)


@pytest.mark.filterwarnings("ignore:invalid value encountered:RuntimeWarning")  # inf + (-inf) in a bin is NaN
def test_adaptive_avg_pool2d_keeps_inf_and_nan_in_their_own_bins(torch):
    """An inf or NaN reaches only the bins that hold it, forward and backward (never 0 * inf = NaN elsewhere)."""
    F = torch.nn.functional
    rng = np.random.default_rng(15)
    for hw, size in LOOP_CASES:
        x = _inputs(rng, (2, 2, *hw), "special")
        x[np.isneginf(x) & (rng.random(x.shape) < 0.5)] = np.inf
        y, cache = adaptive_avg_pool2d(x, size)
        tx = torch.tensor(x, requires_grad=True)
        ty = F.adaptive_avg_pool2d(tx, size)
        np.testing.assert_allclose(y, ty.detach().numpy(), **EXACT)          # NaN and inf where torch has them
        np.testing.assert_allclose(y, adaptive_avg_pool2d_loops(x, size), **EXACT)
        dy = rng.standard_normal(y.shape)
        dy[rng.random(dy.shape) < 0.2] = np.inf
        dy[rng.random(dy.shape) < 0.1] = np.nan
        ty.backward(torch.tensor(dy))
        dx = adaptive_avg_pool2d_backward(dy, cache)
        np.testing.assert_allclose(dx, tx.grad.numpy(), **EXACT)
        np.testing.assert_allclose(dx, adaptive_avg_pool2d_backward_loops(dy, x.shape), **EXACT)
    x = np.zeros((1, 1, 4, 4))
    x[0, 0, 0, 0], x[0, 0, 3, 3] = np.inf, np.nan
    y, _ = adaptive_avg_pool2d(x, 2)
    np.testing.assert_array_equal(y[0, 0], [[np.inf, 0.0], [0.0, np.nan]])


# --------------------------------------------------------------------------- exact to PyTorch on a grid

def _compare_with_torch(torch, x, size, rng, worst):
    """Forward and backward of both adaptive pools against PyTorch; record the largest errors in ``worst``."""
    F = torch.nn.functional
    dy = rng.standard_normal((*x.shape[:2], *adaptive_output_size(size, x.shape[2:])))
    y, cache = adaptive_avg_pool2d(x, size)
    tx = torch.tensor(x, requires_grad=True)
    ty = F.adaptive_avg_pool2d(tx, size)
    ty.backward(torch.tensor(dy))
    dx = adaptive_avg_pool2d_backward(dy, cache)
    np.testing.assert_allclose(y, ty.detach().numpy(), **EXACT)
    np.testing.assert_allclose(dx, tx.grad.numpy(), **EXACT)
    worst["avg y"] = max(worst.get("avg y", 0.0), float(np.abs(y - ty.detach().numpy()).max()))
    worst["avg dx"] = max(worst.get("avg dx", 0.0), float(np.abs(dx - tx.grad.numpy()).max()))

    y, cache = adaptive_max_pool2d(x, size)
    tx = torch.tensor(x, requires_grad=True)
    ty, ti = F.adaptive_max_pool2d(tx, size, return_indices=True)
    ty.backward(torch.tensor(dy))
    dx = adaptive_max_pool2d_backward(dy, cache)
    np.testing.assert_array_equal(y, ty.detach().numpy())
    np.testing.assert_array_equal(cache.indices, ti.numpy())
    np.testing.assert_allclose(dx, tx.grad.numpy(), **EXACT)
    worst["max dx"] = max(worst.get("max dx", 0.0), float(np.abs(dx - tx.grad.numpy()).max()))


@pytest.mark.parametrize("H", range(1, 10))
def test_matches_torch_on_a_grid_of_sizes(torch, H):
    """H, W in 1..9; H_out in 1..H+2 (above H: output larger than input); W_out from 1 to W+2."""
    rng = np.random.default_rng(100 + H)
    worst = {}
    for W in range(1, 10):
        for H_out in range(1, H + 3):
            for W_out in sorted({1, max(1, W - 1), W, W + 2, max(1, (W + 1) // 2)}):
                _compare_with_torch(torch, rng.standard_normal((2, 2, H, W)), (H_out, W_out), rng, worst)
    assert worst["avg y"] < 1e-14 and worst["avg dx"] < 1e-14 and worst["max dx"] == 0.0, worst


def test_matches_torch_on_seeded_random_configurations(torch):
    """Random batch, channels, sizes (up to 15) and output sizes (up to 17, None keeps an axis), 80 draws."""
    rng = np.random.default_rng(7)
    worst = {}
    for trial in range(80):
        N, C = (int(v) for v in rng.integers(1, 4, size=2))
        H, W = (int(v) for v in rng.integers(1, 16, size=2))
        size = [int(rng.integers(1, 18)) for _ in range(2)]
        if trial % 10 == 9:
            size[trial % 2] = None
        size = tuple(size) if trial % 3 else (size[0] if size[0] is not None else 3)
        x = _inputs(rng, (N, C, H, W), "distinct") if trial % 2 else rng.standard_normal((N, C, H, W))
        _compare_with_torch(torch, x, size, rng, worst)
    assert worst["avg y"] < 1e-13 and worst["avg dx"] < 1e-13 and worst["max dx"] == 0.0, worst


def test_float32_keeps_dtype_and_matches_torch(torch):
    F = torch.nn.functional
    x = np.random.default_rng(4).standard_normal((2, 3, 11, 9)).astype(np.float32)
    y, cache = adaptive_max_pool2d(x, (4, 5))
    ty, ti = F.adaptive_max_pool2d(torch.tensor(x), (4, 5), return_indices=True)
    assert y.dtype == np.float32 and cache.indices.dtype == np.int64
    np.testing.assert_array_equal(y, ty.numpy())
    np.testing.assert_array_equal(cache.indices, ti.numpy())
    assert adaptive_max_pool2d_backward(np.ones_like(y), cache).dtype == np.float32
    y, cache = adaptive_avg_pool2d(x, (4, 5))
    assert y.dtype == np.float32 and adaptive_avg_pool2d_backward(np.ones_like(y), cache).dtype == np.float32
    np.testing.assert_allclose(y, F.adaptive_avg_pool2d(torch.tensor(x), (4, 5)).numpy(), rtol=1e-5, atol=1e-6)


def test_empty_batch_gives_empty_output_like_torch(torch):
    x = np.zeros((0, 3, 5, 4))
    for pool in (adaptive_avg_pool2d, adaptive_max_pool2d):
        y, cache = pool(x, (2, 3))
        assert y.shape == (0, 3, 2, 3)
    assert torch.nn.functional.adaptive_avg_pool2d(torch.tensor(x), (2, 3)).shape == (0, 3, 2, 3)
    assert adaptive_max_pool2d_backward(np.zeros((0, 3, 2, 3)), cache).shape == (0, 3, 5, 4)


# --------------------------------------------------------------------------- golden fixtures

def _golden_cases(data, op):
    cases = sorted({k.split("/")[1] for k in data.files if k.startswith(f"{op}/")}, key=int)
    for i in cases:
        yield f"{op}/{i}", json.loads(str(data[f"{op}/{i}/config"]))


def test_matches_golden_fixtures():
    """PyTorch results stored by data_scripts/make_golden_pyramid.py: conformance without torch installed."""
    data = np.load(FIXTURE)
    n = 0
    for key, config in _golden_cases(data, "adaptive_avg_pool2d"):
        y, cache = adaptive_avg_pool2d(data[f"{key}/x"], tuple(config["output_size"]))
        np.testing.assert_allclose(y, data[f"{key}/y"], err_msg=key, **EXACT)
        np.testing.assert_allclose(adaptive_avg_pool2d_backward(data[f"{key}/dy"], cache), data[f"{key}/dx"],
                                   err_msg=key, **EXACT)
        n += 1
    for key, config in _golden_cases(data, "adaptive_max_pool2d"):
        y, cache = adaptive_max_pool2d(data[f"{key}/x"], tuple(config["output_size"]))
        np.testing.assert_array_equal(y, data[f"{key}/y"], err_msg=key)
        np.testing.assert_array_equal(cache.indices, data[f"{key}/indices"], err_msg=key)
        if f"{key}/dy" in data.files:
            np.testing.assert_allclose(adaptive_max_pool2d_backward(data[f"{key}/dy"], cache), data[f"{key}/dx"],
                                       err_msg=key, **EXACT)
        n += 1
    for key, config in _golden_cases(data, "spatial_pyramid_pool"):
        y, cache = spatial_pyramid_pool(data[f"{key}/x"], tuple(config["levels"]), config["mode"])
        np.testing.assert_allclose(y, data[f"{key}/y"], err_msg=key, **EXACT)
        np.testing.assert_allclose(spatial_pyramid_pool_backward(data[f"{key}/dy"], cache), data[f"{key}/dx"],
                                   err_msg=key, **EXACT)
        n += 1
    assert n == 19


def test_golden_fixtures_are_what_the_script_makes(torch, tmp_path):
    """Regenerating with data_scripts/make_golden_pyramid.py gives the stored file, array for array."""
    import importlib.util  # noqa: PLC0415

    script = Path(__file__).resolve().parents[1] / "data_scripts" / "make_golden_pyramid.py"
    spec = importlib.util.spec_from_file_location("make_golden_pyramid", script)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    module.make(tmp_path / "golden.npz")
    stored, fresh = np.load(FIXTURE), np.load(tmp_path / "golden.npz")
    assert sorted(stored.files) == sorted(fresh.files)
    for key in stored.files:
        np.testing.assert_array_equal(stored[key], fresh[key], err_msg=key)


# --------------------------------------------------------------------------- gradient checks

GRAD_CASES = [((7, 5), (3, 2)), ((5, 7), (3, 4)), ((3, 4), (5, 6)), ((6, 6), (3, 3)), ((4, 5), (1, 1)),
              ((2, 3), (2, None))]


@pytest.mark.parametrize("hw,size", GRAD_CASES)
def test_adaptive_avg_pool2d_gradcheck(hw, size):
    x = np.random.default_rng(5).standard_normal((2, 2, *hw))
    report = check_backward(adaptive_avg_pool2d, adaptive_avg_pool2d_backward, {"x": x}, output_size=size)
    assert report.passed, str(report)


@pytest.mark.parametrize("hw,size", GRAD_CASES)
def test_adaptive_max_pool2d_gradcheck(hw, size):
    x = _inputs(np.random.default_rng(6), (2, 2, *hw), "distinct")
    report = check_backward(adaptive_max_pool2d, adaptive_max_pool2d_backward, {"x": x}, output_size=size)
    assert report.passed, str(report)


@pytest.mark.parametrize("mode", ["max", "avg"])
@pytest.mark.parametrize("levels", [(4, 2, 1), (3, 1), (5,)])
def test_spatial_pyramid_pool_gradcheck(levels, mode):
    x = _inputs(np.random.default_rng(7), (2, 2, 7, 6), "distinct")
    report = check_backward(spatial_pyramid_pool, spatial_pyramid_pool_backward, {"x": x}, levels=levels, mode=mode)
    assert report.passed, str(report)


def test_adaptive_avg_pool2d_backward_is_the_adjoint():
    """``<A x, u> == <x, A^T u>``: the backward of the linear map is its transpose."""
    rng = np.random.default_rng(8)
    for hw, size in LOOP_CASES:
        x = rng.standard_normal((2, 3, *hw))
        y, cache = adaptive_avg_pool2d(x, size)
        u = rng.standard_normal(y.shape)
        assert np.isclose((y * u).sum(), (x * adaptive_avg_pool2d_backward(u, cache)).sum(), rtol=1e-12, atol=1e-12)


def test_backward_accumulates_where_bins_overlap():
    x = np.arange(5.0).reshape(1, 1, 5, 1)                         # bins rows 0-1, 1-3, 3-4: rows 1 and 3 shared
    y, cache = adaptive_avg_pool2d(x, (3, 1))
    np.testing.assert_allclose(y.ravel(), [0.5, 2.0, 3.5])
    dx = adaptive_avg_pool2d_backward(np.ones((1, 1, 3, 1)), cache)
    np.testing.assert_allclose(dx.ravel(), [1 / 2, 1 / 2 + 1 / 3, 1 / 3, 1 / 3 + 1 / 2, 1 / 2])
    y, cache = adaptive_max_pool2d(x, (3, 1))                      # row 3 is the max of bins 1 and 2
    np.testing.assert_array_equal(cache.indices.ravel(), [1, 3, 4])
    y, cache = adaptive_max_pool2d(x[:, :, ::-1].copy(), (3, 1))   # 4 3 2 1 0: row 1 (value 3) wins bins 0 and 1
    np.testing.assert_array_equal(cache.indices.ravel(), [0, 1, 3])
    np.testing.assert_array_equal(adaptive_max_pool2d_backward(np.array([[[[1.0], [10.0], [100.0]]]]), cache).ravel(),
                                  [1.0, 10.0, 0.0, 100.0, 0.0])
    y, cache = adaptive_max_pool2d(np.array([[[[1.0, 7.0]]]]), (1, 5))  # larger output: bins repeat pixels
    np.testing.assert_array_equal(cache.indices.ravel(), [0, 0, 1, 1, 1])
    np.testing.assert_array_equal(adaptive_max_pool2d_backward(np.ones((1, 1, 1, 5)), cache), [[[[2.0, 3.0]]]])


# --------------------------------------------------------------------------- spatial pyramid pooling

@pytest.mark.parametrize("hw", [(13, 11), (32, 20), (3, 2)])
def test_spatial_pyramid_pool_has_21_c_features_for_any_size(hw):
    C = 5
    x = np.random.default_rng(9).standard_normal((2, C, *hw))
    y, _ = spatial_pyramid_pool(x)
    assert y.shape == (2, 21 * C)
    y6, _ = spatial_pyramid_pool(x, levels=(6, 3, 2, 1), mode="avg")
    assert y6.shape == (2, 50 * C)


def test_spatial_pyramid_pool_flatten_order():
    """Level by level; inside a level channel c, then bin row i, then bin column j: offset c*l*l + i*l + j."""
    rng = np.random.default_rng(10)
    x = rng.standard_normal((2, 3, 9, 7))
    y, _ = spatial_pyramid_pool(x, (4, 2, 1), "max")
    p4, _ = adaptive_max_pool2d(x, 4)
    p2, _ = adaptive_max_pool2d(x, 2)
    p1, _ = adaptive_max_pool2d(x, 1)
    np.testing.assert_array_equal(y[:, :48].reshape(2, 3, 4, 4), p4)
    np.testing.assert_array_equal(y[:, 48:60].reshape(2, 3, 2, 2), p2)
    np.testing.assert_array_equal(y[:, 60:], p1.reshape(2, 3))
    assert y[1, 2 * 16 + 3 * 4 + 1] == p4[1, 2, 3, 1]


@pytest.mark.parametrize("mode", ["max", "avg"])
def test_spatial_pyramid_pool_matches_torch(torch, mode):
    F = torch.nn.functional
    pool = F.adaptive_max_pool2d if mode == "max" else F.adaptive_avg_pool2d
    rng = np.random.default_rng(11)
    for hw, levels in [((13, 11), (4, 2, 1)), ((32, 20), (4, 2, 1)), ((3, 2), (4, 2, 1)), ((9, 9), (6, 3, 2, 1))]:
        x = rng.standard_normal((2, 3, *hw))
        y, cache = spatial_pyramid_pool(x, levels, mode)
        tx = torch.tensor(x, requires_grad=True)
        ty = torch.cat([pool(tx, level).flatten(1) for level in levels], 1)
        np.testing.assert_allclose(y, ty.detach().numpy(), **EXACT)
        dy = rng.standard_normal(y.shape)
        ty.backward(torch.tensor(dy))
        np.testing.assert_allclose(spatial_pyramid_pool_backward(dy, cache), tx.grad.numpy(), **EXACT)


# --------------------------------------------------------------------------- layers

def test_adaptive_pool_layers_wrap_the_ops():
    rng = np.random.default_rng(12)
    x = _inputs(rng, (2, 3, 7, 5), "distinct")
    for layer, op, op_backward in [(nn.AdaptiveAvgPool2d((3, 2)), adaptive_avg_pool2d, adaptive_avg_pool2d_backward),
                                   (nn.AdaptiveMaxPool2d((3, 2)), adaptive_max_pool2d, adaptive_max_pool2d_backward)]:
        y = layer.forward(x)
        y_ref, cache = op(x, (3, 2))
        np.testing.assert_array_equal(y, y_ref)
        dy = rng.standard_normal(y.shape)
        np.testing.assert_array_equal(layer.backward(dy), op_backward(dy, cache))
        assert layer.num_parameters() == 0 and "output_size=(3, 2)" in repr(layer)
    pool = nn.AdaptiveMaxPool2d(4)
    assert pool.indices is None
    pool.forward(x)
    np.testing.assert_array_equal(pool.indices, adaptive_max_pool2d(x, 4)[1].indices)
    assert nn.AdaptiveAvgPool2d((None, 2)).forward(x).shape == (2, 3, 7, 2)


def test_spatial_pyramid_pool_layer_forward_backward_and_gradcheck():
    rng = np.random.default_rng(13)
    spp = nn.SpatialPyramidPool()
    assert spp.levels == (4, 2, 1) and spp.output_features(8) == 168 and "levels=(4, 2, 1)" in repr(spp)
    for hw in [(13, 11), (8, 20)]:
        x = _inputs(rng, (2, 8, *hw), "distinct")
        v = spp.forward(x)
        assert v.shape == (2, spp.output_features(8))
        dv = rng.standard_normal(v.shape)
        np.testing.assert_array_equal(spp.backward(dv), spatial_pyramid_pool_backward(dv, spatial_pyramid_pool(x)[1]))

    # the reason for SPP: one classifier head for images of any size
    head = nn.Sequential(nn.SpatialPyramidPool((2, 1), mode="avg"), nn.Linear(3 * 5, 4, rng=0, dtype=np.float64))
    for hw in [(6, 9), (11, 4)]:
        x = rng.standard_normal((2, 3, *hw))
        scores = head.forward(x)
        assert scores.shape == (2, 4)
        dx = head.backward(np.ones_like(scores))
        assert dx.shape == x.shape and head[1].weight.grad.shape == (4, 15)

    x = _inputs(rng, (1, 2, 5, 6), "distinct")
    layer = nn.SpatialPyramidPool((3, 1), mode="max")
    report = check_backward(lambda t: (layer.forward(t), None), lambda dy, _: layer.backward(dy), {"x": x})
    assert report.passed, str(report)


# --------------------------------------------------------------------------- bad inputs

@pytest.mark.parametrize("pool", [adaptive_avg_pool2d, adaptive_max_pool2d])
def test_adaptive_pools_reject_bad_inputs(pool):
    name = pool.__name__
    x = np.zeros((1, 2, 4, 4))
    with pytest.raises(ValueError, match=rf"{name}: expected x of shape \(N, C, H, W\), got shape \(2, 4, 4\)"):
        pool(x[0], 2)
    with pytest.raises(TypeError, match=rf"{name}: expected x with a floating dtype .* got dtype int64"):
        pool(np.zeros((1, 2, 4, 4), dtype=np.int64), 2)
    with pytest.raises(TypeError, match=rf"{name}: expected x to be a numpy or cupy ndarray, got list"):
        pool([[[[1.0]]]], 1)
    with pytest.raises(ValueError, match=rf"{name}: expected x with H >= 1 and W >= 1 .* got shape \(1, 2, 0, 4\)"):
        pool(np.zeros((1, 2, 0, 4)), 2)
    with pytest.raises(ValueError, match=rf"{name}: expected output_size >= 1 on both axes, got output_size=0"):
        pool(x, 0)
    with pytest.raises(ValueError, match=rf"{name}: expected output_size >= 1 on both axes, got output_size=\(2, -1\)"):
        pool(x, (2, -1))
    for bad in [2.0, True, (2, 2, 2), (2, "3"), None, (2.0, 2)]:
        with pytest.raises(TypeError, match=rf"{name}: expected output_size to be an int or a pair of ints"):
            pool(x, bad)
    y, cache = pool(x, (2, 3))
    backward = adaptive_avg_pool2d_backward if pool is adaptive_avg_pool2d else adaptive_max_pool2d_backward
    with pytest.raises(ValueError, match=rf"{name}_backward: expected dy of shape \(1, 2, 2, 3\), "
                                         r"got shape \(1, 2, 3, 2\)"):
        backward(np.zeros((1, 2, 3, 2)), cache)
    with pytest.raises(ValueError, match=rf"{name}_backward: expected dy of shape \(N, C, H_out, W_out\)"):
        backward(np.zeros((2, 2, 3)), cache)


def test_spatial_pyramid_pool_rejects_bad_inputs():
    x = np.zeros((1, 2, 4, 4))
    with pytest.raises(ValueError, match=r"spatial_pyramid_pool: expected mode 'max' or 'avg', got 'mean'"):
        spatial_pyramid_pool(x, mode="mean")
    with pytest.raises(ValueError, match=r"spatial_pyramid_pool: expected every level >= 1, got levels=\(4, 0\)"):
        spatial_pyramid_pool(x, levels=(4, 0))
    for bad in [4, (), (4, 2.0), [(2, 2)], None]:
        with pytest.raises(TypeError, match=r"spatial_pyramid_pool: expected levels to be a non-empty sequence"):
            spatial_pyramid_pool(x, levels=bad)
    with pytest.raises(ValueError, match=r"spatial_pyramid_pool: expected x of shape \(N, C, H, W\)"):
        spatial_pyramid_pool(x[0])
    with pytest.raises(ValueError, match=r"spatial_pyramid_pool: expected x with H >= 1 and W >= 1"):
        spatial_pyramid_pool(np.zeros((1, 2, 3, 0)))
    _, cache = spatial_pyramid_pool(x)
    with pytest.raises(ValueError, match=r"spatial_pyramid_pool_backward: expected dy of shape \(1, 42\), "
                                         r"got shape \(1, 21\)"):
        spatial_pyramid_pool_backward(np.zeros((1, 21)), cache)
    with pytest.raises(ValueError, match=r"spatial_pyramid_pool_backward: expected dy of shape \(N, C \* sum"):
        spatial_pyramid_pool_backward(np.zeros((1, 2, 21)), cache)


def test_layers_reject_bad_arguments_at_construction():
    with pytest.raises(ValueError, match=r"AdaptiveAvgPool2d: expected output_size >= 1, got 0"):
        nn.AdaptiveAvgPool2d(0)
    with pytest.raises(TypeError, match=r"AdaptiveMaxPool2d: expected output_size to be an int >= 1 or a pair"):
        nn.AdaptiveMaxPool2d((2, 0))
    with pytest.raises(ValueError, match=r"SpatialPyramidPool: expected mode 'max' or 'avg', got 'sum'"):
        nn.SpatialPyramidPool(mode="sum")
    with pytest.raises(TypeError, match=r"SpatialPyramidPool: expected levels to be a non-empty sequence"):
        nn.SpatialPyramidPool(levels=[])


# --------------------------------------------------------------------------- backends

def test_same_code_on_every_backend(xp):
    rng = np.random.default_rng(14)
    x = _inputs(rng, (2, 3, 9, 7), "special")
    y_ref, c_ref = adaptive_max_pool2d(x, (4, 5))
    y, c = adaptive_max_pool2d(xp.asarray(x), (4, 5))
    np.testing.assert_array_equal(backend.to_numpy(y), y_ref)
    np.testing.assert_array_equal(backend.to_numpy(c.indices), c_ref.indices)
    dy = rng.standard_normal(y_ref.shape)
    np.testing.assert_allclose(backend.to_numpy(adaptive_max_pool2d_backward(xp.asarray(dy), c)),
                               adaptive_max_pool2d_backward(dy, c_ref), **EXACT)
    x = rng.standard_normal((2, 3, 9, 7))
    y_ref, c_ref = adaptive_avg_pool2d(x, (4, 11))
    y, c = adaptive_avg_pool2d(xp.asarray(x), (4, 11))
    np.testing.assert_allclose(backend.to_numpy(y), y_ref, **EXACT)
    dy = rng.standard_normal(y_ref.shape)
    np.testing.assert_allclose(backend.to_numpy(adaptive_avg_pool2d_backward(xp.asarray(dy), c)),
                               adaptive_avg_pool2d_backward(dy, c_ref), **EXACT)
    v_ref, s_ref = spatial_pyramid_pool(x)
    v, s = spatial_pyramid_pool(xp.asarray(x))
    np.testing.assert_allclose(backend.to_numpy(v), v_ref, **EXACT)
    dv = rng.standard_normal(v_ref.shape)
    np.testing.assert_allclose(backend.to_numpy(spatial_pyramid_pool_backward(xp.asarray(dv), s)),
                               spatial_pyramid_pool_backward(dv, s_ref), **EXACT)

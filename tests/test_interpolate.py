"""bilinear_interpolate, upsample_nearest, interpolation matrices and FCN's bilinear kernel."""
import itertools
import json
import math
from pathlib import Path

import numpy as np
import pytest

from minseg import backend
from minseg.gradcheck import check_backward
from minseg.ops import (
    bilinear_interpolate,
    bilinear_interpolate_backward,
    bilinear_kernel,
    conv_transpose2d,
    interpolation_matrix,
    nearest_indices,
    upsample_nearest,
    upsample_nearest_backward,
)
from minseg.reference import (
    bilinear_interpolate_backward_loops,
    bilinear_interpolate_loops,
    upsample_nearest_backward_loops,
    upsample_nearest_loops,
)

FIXTURE = Path(__file__).parent / "fixtures" / "upsampling_golden.npz"

# size or scale_factor, up and down, integer and not, per axis, sizes 1 included
RESIZES = [
    dict(scale_factor=2), dict(scale_factor=3), dict(scale_factor=0.5), dict(scale_factor=(1.5, 0.75)),
    dict(scale_factor=(2.5, 1 / 3)), dict(scale_factor=1.1), dict(size=(9, 4)), dict(size=(1, 7)),
    dict(size=(3, 1)), dict(size=(5, 6)), dict(size=11),
]


# --------------------------------------------------------------------------- the matrices

def test_interpolation_matrix_rows_are_two_tap_weights_summing_to_one():
    for n_in, n_out, ac, scale in itertools.product([1, 2, 5, 8], [1, 3, 8, 13], [False, True], [None, 1.7]):
        A = interpolation_matrix(n_in, n_out, ac, scale)
        assert A.shape == (n_out, n_in)
        np.testing.assert_allclose(A.sum(axis=1), 1.0, rtol=0, atol=1e-15)
        assert ((A > 0).sum(axis=1) <= 2).all() and (A >= 0).all()


def test_interpolation_matrix_examples():
    np.testing.assert_allclose(interpolation_matrix(2, 4), [[1, 0], [0.75, 0.25], [0.25, 0.75], [0, 1]])
    np.testing.assert_allclose(interpolation_matrix(3, 5, align_corners=True),
                               [[1, 0, 0], [0.5, 0.5, 0], [0, 1, 0], [0, 0.5, 0.5], [0, 0, 1]])
    np.testing.assert_allclose(interpolation_matrix(4, 1, align_corners=True), [[1, 0, 0, 0]])  # out == 1: src 0
    np.testing.assert_array_equal(interpolation_matrix(4, 4, scale=1.1), np.eye(4))   # unchanged size: copied
    np.testing.assert_array_equal(nearest_indices(3, 7), [0, 0, 0, 1, 1, 2, 2])
    np.testing.assert_array_equal(nearest_indices(10, 20, scale=2.05), np.arange(20) // 2)  # PyTorch's doubling


def test_bilinear_is_the_four_point_formula():
    """P = q (b A + a B) + p (b D + a C), for one output pixel worked by hand."""
    x = np.array([[[[1.0, 2.0], [3.0, 5.0]]]])        # A=1 (top-left), B=2, D=3, C=5
    y, _ = bilinear_interpolate(x, size=(4, 4))         # output (1, 2): src row 0.25, src column 0.75
    a, p = 0.75, 0.25
    b, q = 1 - a, 1 - p
    assert y[0, 0, 1, 2] == pytest.approx(q * (b * 1 + a * 2) + p * (b * 3 + a * 5))


# --------------------------------------------------------------------------- gradient checks and loops

@pytest.mark.parametrize("resize,align_corners", list(itertools.product(RESIZES, [False, True])))
def test_bilinear_gradcheck_and_loops(resize, align_corners):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 2, 4, 5))
    report = check_backward(bilinear_interpolate, bilinear_interpolate_backward, {"x": x},
                            align_corners=align_corners, **resize)
    assert report.passed, str(report)
    y, cache = bilinear_interpolate(x, align_corners=align_corners, **resize)
    scales = _scales(resize)
    np.testing.assert_allclose(y, bilinear_interpolate_loops(x, y.shape[2:], align_corners, scales),
                               rtol=1e-12, atol=1e-12)
    dy = rng.standard_normal(y.shape)
    np.testing.assert_allclose(bilinear_interpolate_backward(dy, cache),
                               bilinear_interpolate_backward_loops(dy, x.shape, align_corners, scales),
                               rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("resize", RESIZES)
def test_nearest_gradcheck_and_loops(resize):
    rng = np.random.default_rng(1)
    x = rng.standard_normal((2, 2, 4, 5))
    report = check_backward(upsample_nearest, upsample_nearest_backward, {"x": x}, **resize)
    assert report.passed, str(report)
    y, cache = upsample_nearest(x, **resize)
    np.testing.assert_array_equal(y, upsample_nearest_loops(x, y.shape[2:], _scales(resize)))
    dy = rng.standard_normal(y.shape)
    np.testing.assert_allclose(upsample_nearest_backward(dy, cache),
                               upsample_nearest_backward_loops(dy, x.shape, _scales(resize)), rtol=1e-12, atol=1e-12)


def _scales(resize):
    sf = resize.get("scale_factor")
    return (None, None) if sf is None else (sf, sf) if np.isscalar(sf) else tuple(sf)


# --------------------------------------------------------------------------- PyTorch conformance

def _torch_resize(torch, x, dy, mode, **kwargs):
    tx = torch.tensor(x, requires_grad=True)
    ty = torch.nn.functional.interpolate(tx, mode=mode, **kwargs)
    ty.backward(torch.tensor(dy))
    return ty.detach().numpy(), tx.grad.numpy()


def test_bilinear_matches_torch_random_configs(torch):
    """Seeded sizes and scale factors (up, down, per axis, sizes 1), both align_corners, forward and backward."""
    rng = np.random.default_rng(2)
    checked = 0
    while checked < 80:
        H, W = (int(v) for v in rng.integers(1, 9, size=2))
        if rng.integers(2):
            resize = dict(size=tuple(int(v) for v in rng.integers(1, 14, size=2)))
        else:
            resize = dict(scale_factor=tuple(float(v) for v in rng.choice(
                [0.3, 0.5, 0.7, 0.99, 1.0, 1.01, 1.1, 1.5, 2.0, 2.05, 2.5, 3.0, 1 / 3, 7 / 3], size=2)))
            if min(math.floor(H * resize["scale_factor"][0]), math.floor(W * resize["scale_factor"][1])) < 1:
                continue
        ac = bool(rng.integers(2))
        x = rng.standard_normal((2, 2, H, W))
        y, cache = bilinear_interpolate(x, align_corners=ac, **resize)
        dy = rng.standard_normal(y.shape)
        ty, tdx = _torch_resize(torch, x, dy, "bilinear", align_corners=ac, **resize)
        assert y.shape == ty.shape, (H, W, resize)
        np.testing.assert_allclose(y, ty, rtol=1e-12, atol=1e-12, err_msg=f"{(H, W)} {resize} {ac}")
        np.testing.assert_allclose(bilinear_interpolate_backward(dy, cache), tdx, rtol=1e-12, atol=1e-12)
        checked += 1


def test_nearest_matches_torch_random_configs(torch):
    rng = np.random.default_rng(3)
    checked = 0
    while checked < 60:
        H, W = (int(v) for v in rng.integers(1, 20, size=2))
        if rng.integers(2):
            resize = dict(size=tuple(int(v) for v in rng.integers(1, 40, size=2)))
        else:
            resize = dict(scale_factor=tuple(float(v) for v in rng.choice(
                [0.3, 0.5, 0.7, 1.1, 1.5, 2.0, 2.05, 2.5, 3.0, 1 / 3, 7 / 3], size=2)))
            if min(math.floor(H * resize["scale_factor"][0]), math.floor(W * resize["scale_factor"][1])) < 1:
                continue
        x = rng.standard_normal((1, 2, H, W))
        y, cache = upsample_nearest(x, **resize)
        dy = rng.standard_normal(y.shape)
        ty, tdx = _torch_resize(torch, x, dy, "nearest", **resize)
        np.testing.assert_array_equal(y, ty, err_msg=f"{(H, W)} {resize}")
        np.testing.assert_allclose(upsample_nearest_backward(dy, cache), tdx, rtol=1e-12, atol=1e-12)
        checked += 1


@pytest.mark.parametrize("align_corners", [False, True])
def test_float32_keeps_dtype_and_matches_torch(torch, align_corners):
    rng = np.random.default_rng(4)
    x = rng.standard_normal((2, 3, 7, 9)).astype(np.float32)
    for resize in [dict(scale_factor=2), dict(size=(13, 5)), dict(scale_factor=(1.7, 0.6))]:
        y, cache = bilinear_interpolate(x, align_corners=align_corners, **resize)
        dy = rng.standard_normal(y.shape).astype(np.float32)
        dx = bilinear_interpolate_backward(dy, cache)
        assert y.dtype == np.float32 and dx.dtype == np.float32
        ty, tdx = _torch_resize(torch, x, dy, "bilinear", align_corners=align_corners, **resize)
        np.testing.assert_allclose(y, ty, rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(dx, tdx, rtol=1e-5, atol=1e-5)


# --------------------------------------------------------------------------- NaN and inf, as PyTorch

def _assert_same_non_finite(ours, theirs, what):
    """Same shape, NaN at the same places, the same +-inf at the same places, finite values to round-off."""
    assert ours.shape == theirs.shape, what
    np.testing.assert_array_equal(np.isnan(ours), np.isnan(theirs), err_msg=f"NaN pattern: {what}")
    np.testing.assert_array_equal(np.isposinf(ours), np.isposinf(theirs), err_msg=f"+inf pattern: {what}")
    np.testing.assert_array_equal(np.isneginf(ours), np.isneginf(theirs), err_msg=f"-inf pattern: {what}")
    finite = np.isfinite(theirs)
    np.testing.assert_allclose(ours[finite], theirs[finite], rtol=1e-12, atol=1e-12, err_msg=what)


# up and down, per axis, an axis that keeps its size, sizes 1, the whole map unchanged
NON_FINITE_RESIZES = [dict(size=(8, 8)), dict(size=(2, 3)), dict(size=(4, 9)), dict(size=(7, 4)),
                      dict(scale_factor=1.7), dict(scale_factor=(0.5, 2)), dict(size=(1, 1)), dict(size=(4, 4)),
                      dict(size=(40, 70))]


def _positions(H, W):
    """Corners, the middle of each edge, and an inside pixel."""
    return sorted({(0, 0), (0, W - 1), (H - 1, 0), (H - 1, W - 1), (0, W // 2), (H // 2, 0),
                   (H - 1, W // 2), (H // 2, W - 1), (H // 2, W // 2)})


@pytest.mark.parametrize("align_corners", [False, True])
@pytest.mark.parametrize("value", [np.nan, np.inf, -np.inf, "inf and -inf"])
def test_bilinear_non_finite_matches_torch(torch, align_corners, value):
    """NaN / +-inf in x (forward) and in dy (backward): the same pattern as PyTorch's CPU kernel, element for element."""
    rng = np.random.default_rng(10)
    checked = reached = 0
    for (H, W), resize in itertools.product([(4, 4), (3, 5), (1, 4), (5, 1)], NON_FINITE_RESIZES):
        if resize == dict(scale_factor=(0.5, 2)) and H == 1:
            continue                                   # floor(1 * 0.5) = 0 rows: refused, tested below
        for h, w in _positions(H, W):
            x = rng.standard_normal((2, 2, H, W))
            if value == "inf and -inf":        # neighbours of opposite sign meet: inf - inf
                x[0, 1, h, w], x[0, 1, (h + 1) % H, (w + 1) % W] = np.inf, -np.inf
            else:
                x[0, 1, h, w] = value
            y, cache = bilinear_interpolate(x, align_corners=align_corners, **resize)
            H_out, W_out = y.shape[2:]
            dy = rng.standard_normal(y.shape)
            g = np.inf if value == "inf and -inf" else value
            dy[1, 0, h * H_out // H, w * W_out // W] = g
            if value == "inf and -inf":
                dy[1, 0, H_out - 1 - h * H_out // H, W_out - 1 - w * W_out // W] = -np.inf
            ty, tdx = _torch_resize(torch, x, dy, "bilinear", align_corners=align_corners, **resize)
            what = f"{(H, W)} {resize} align_corners={align_corners} at {(h, w)}"
            _assert_same_non_finite(y, ty, "forward " + what)
            _assert_same_non_finite(bilinear_interpolate_backward(dy, cache), tdx, "backward " + what)
            checked += 1
            reached += not np.isfinite(ty).all()
    assert checked == (9 + 9 + 3 + 3) * len(NON_FINITE_RESIZES) - 3
    assert reached > 0.8 * checked     # most cases really produce NaN / inf (downsizing may skip the pixel)


def test_bilinear_non_finite_measured_counts(torch):
    """The numbers a matrix product gets wrong: one NaN or inf reaches only the outputs that read it."""
    x = np.arange(16.0).reshape(1, 1, 4, 4)
    x[0, 0, 1, 2] = np.nan
    y, cache = bilinear_interpolate(x, size=(8, 8))
    # rows 0..4 read input row 1 (row 0 with weight 0: NaN * 0 is NaN), columns 3..6 read input column 2
    assert np.isnan(y).sum() == 20 and np.isnan(y[0, 0, :5, 3:7]).all()
    ty, _ = _torch_resize(torch, x, np.ones((1, 1, 8, 8)), "bilinear", size=(8, 8), align_corners=False)
    np.testing.assert_array_equal(np.isnan(y), np.isnan(ty))
    dy = np.ones((1, 1, 8, 8))
    dy[0, 0, 3, 3] = np.nan                            # src (1.25, 1.25): taps rows 1, 2 and columns 1, 2
    dx = bilinear_interpolate_backward(dy, cache)
    np.testing.assert_array_equal(np.argwhere(np.isnan(dx))[:, 2:], [[1, 1], [1, 2], [2, 1], [2, 2]])
    x = np.arange(16.0).reshape(1, 1, 4, 4)
    x[0, 0, 1, 2] = np.inf
    y, _ = bilinear_interpolate(x, size=(4, 8))        # H unchanged: 1 * inf + 0 * inf = NaN in that row
    assert np.isnan(y[0, 0, 1, 3:7]).all() and np.isfinite(np.delete(y[0, 0], 1, axis=0)).all()
    y, _ = bilinear_interpolate(x, size=(4, 4))        # nothing changes size: the inf itself becomes NaN
    assert np.isnan(y[0, 0, 1, 2]) and np.isnan(y).sum() == 1
    y, _ = bilinear_interpolate(x, size=(8, 8), align_corners=True)
    assert np.isinf(y).sum() == 16 and np.isnan(y).sum() == 4   # row 0 reads row 1 with weight 0


@pytest.mark.filterwarnings("ignore:invalid value encountered:RuntimeWarning")  # the loops make NaN on purpose
def test_bilinear_non_finite_agrees_with_the_loops():
    """The loop version multiplies every tap too, so it gives the same NaN / inf pattern."""
    rng = np.random.default_rng(11)
    for align_corners, resize in itertools.product([False, True], NON_FINITE_RESIZES[:8]):
        x = rng.standard_normal((1, 2, 4, 5))
        x[0, 0, 0, 4], x[0, 1, 2, 2], x[0, 1, 3, 0] = np.nan, np.inf, -np.inf
        y, cache = bilinear_interpolate(x, align_corners=align_corners, **resize)
        _assert_same_non_finite(y, bilinear_interpolate_loops(x, y.shape[2:], align_corners, _scales(resize)),
                                f"{resize} {align_corners}")
        dy = rng.standard_normal(y.shape)
        dy[0, 1, 0, 0], dy[0, 0, -1, -1] = np.inf, np.nan
        _assert_same_non_finite(bilinear_interpolate_backward(dy, cache),
                                bilinear_interpolate_backward_loops(dy, x.shape, align_corners, _scales(resize)),
                                f"backward {resize} {align_corners}")


def test_bilinear_finite_path_unchanged_by_the_check():
    """Finite inputs still take the two matrix products: bit for bit A_h @ x @ A_w.T."""
    rng = np.random.default_rng(12)
    x = rng.standard_normal((2, 3, 6, 7))
    y, cache = bilinear_interpolate(x, scale_factor=(1.5, 0.7))
    expected = np.matmul(cache.A_h, np.matmul(x.reshape(-1, 7), cache.A_w.T).reshape(6, 6, -1))
    np.testing.assert_array_equal(y, expected.reshape(y.shape))


def test_nearest_non_finite_dy_matches_torch(torch):
    """A NaN or inf in dy reaches only the input pixel it was copied from (and inf - inf is NaN)."""
    rng = np.random.default_rng(13)
    for resize in [dict(size=(6, 6)), dict(size=(2, 5)), dict(scale_factor=(1.5, 0.7)), dict(size=(3, 4))]:
        x = rng.standard_normal((2, 2, 3, 4))
        x[0, 0, 1, 1], x[1, 1, 0, 3] = np.nan, -np.inf
        y, cache = upsample_nearest(x, **resize)
        dy = rng.standard_normal(y.shape)
        dy[0, 1, 0, 0], dy[1, 0, -1, -1], dy[1, 0, -1, 0] = np.nan, np.inf, -np.inf
        ty, tdx = _torch_resize(torch, x, dy, "nearest", **resize)
        _assert_same_non_finite(y, ty, f"forward {resize}")
        dx = upsample_nearest_backward(dy, cache)
        _assert_same_non_finite(dx, tdx, f"backward {resize}")
        assert np.isnan(dx).sum() == np.isnan(tdx).sum() >= 1


# --------------------------------------------------------------------------- empty inputs

@pytest.mark.parametrize("resize", [dict(size=(4, 5)), dict(scale_factor=2), dict(scale_factor=(0.5, 1.5))])
def test_empty_batch_gives_empty_results_like_torch(torch, resize):
    x = np.zeros((0, 3, 4, 6))
    for op, backward, mode, extra in [(bilinear_interpolate, bilinear_interpolate_backward, "bilinear",
                                       dict(align_corners=False)),
                                      (bilinear_interpolate, bilinear_interpolate_backward, "bilinear",
                                       dict(align_corners=True)),
                                      (upsample_nearest, upsample_nearest_backward, "nearest", {})]:
        y, cache = op(x, **resize, **extra)
        ty, tdx = _torch_resize(torch, x, np.zeros(y.shape), mode, **resize, **extra)
        assert y.shape == ty.shape and y.shape[:2] == (0, 3) and y.dtype == x.dtype
        dx = backward(np.zeros(y.shape), cache)
        assert dx.shape == tdx.shape == x.shape


@pytest.mark.parametrize("op", [bilinear_interpolate, upsample_nearest])
@pytest.mark.parametrize("shape", [(1, 1, 0, 0), (1, 1, 0, 3), (2, 1, 3, 0), (1, 0, 4, 4)])
def test_empty_planes_and_channels_are_refused_like_torch(torch, op, shape):
    with pytest.raises(ValueError) as info:
        op(np.zeros(shape), size=(4, 4))
    assert str(info.value) == (f"{op.__name__}: expected x with C, H, W >= 1 (N may be 0), got shape {shape}")
    with pytest.raises(RuntimeError):                  # PyTorch refuses the same inputs
        torch.nn.functional.interpolate(torch.zeros(shape, dtype=torch.float64), size=(4, 4),
                                        mode="bilinear" if op is bilinear_interpolate else "nearest")


# --------------------------------------------------------------------------- FCN's bilinear kernel

@pytest.mark.parametrize("factor", [2, 3, 4, 5])
def test_bilinear_kernel_transposed_conv_equals_interpolation_in_the_interior_only(factor):
    """conv_transpose2d with FCN's kernel == bilinear_interpolate(align_corners=False) except on a factor // 2 border."""
    rng = np.random.default_rng(factor)
    x = rng.standard_normal((2, 3, 5, 6))
    k, p = 2 * factor - factor % 2, math.ceil((factor - 1) / 2)
    y_conv, _ = conv_transpose2d(x, bilinear_kernel(k, 3), stride=factor, padding=p)
    y_interp, _ = bilinear_interpolate(x, scale_factor=factor)
    assert y_conv.shape == y_interp.shape == (2, 3, 5 * factor, 6 * factor)
    b = factor // 2
    np.testing.assert_allclose(y_conv[:, :, b:-b, b:-b], y_interp[:, :, b:-b, b:-b], rtol=1e-12, atol=1e-12)
    border = np.ones(y_conv.shape[2:], dtype=bool)
    border[b:-b, b:-b] = False
    agree = np.isclose(y_conv, y_interp, rtol=1e-9, atol=1e-12).all(axis=(0, 1))
    np.testing.assert_array_equal(agree, ~border)  # every border pixel differs, every interior pixel agrees
    # on the border the transposed convolution misses the neighbour beyond the edge (its zero padding)
    ones, _ = conv_transpose2d(np.ones((1, 3, 5, 6)), bilinear_kernel(k, 3), stride=factor, padding=p)
    np.testing.assert_allclose(ones[0, :, b:-b, b:-b], 1.0, rtol=1e-12)
    assert (ones[0][:, border] < 1).all()


def test_bilinear_kernel_shapes_and_values():
    np.testing.assert_allclose(bilinear_kernel(4)[1], [0.1875, 0.5625, 0.5625, 0.1875])
    np.testing.assert_allclose(bilinear_kernel(3), np.outer([0.5, 1, 0.5], [0.5, 1, 0.5]))
    w = bilinear_kernel(4, 3, dtype=np.float32)
    assert w.shape == (3, 3, 4, 4) and w.dtype == np.float32
    assert (w[0, 1] == 0).all() and np.array_equal(w[2, 2], bilinear_kernel(4).astype(np.float32))
    assert bilinear_kernel((4, 3)).shape == (4, 3)


# --------------------------------------------------------------------------- golden fixtures

def test_matches_golden_fixtures():
    """PyTorch results stored by data_scripts/make_golden_upsampling.py: conformance without torch installed."""
    data = np.load(FIXTURE)
    n = 0
    for op, forward, backward in [("bilinear_interpolate", bilinear_interpolate, bilinear_interpolate_backward),
                                  ("upsample_nearest", upsample_nearest, upsample_nearest_backward)]:
        keys = sorted({k.rsplit("/", 1)[0] for k in data.files if k.startswith(f"{op}/")})
        for key in keys:
            hyper = {k: (tuple(v) if isinstance(v, list) else v)
                     for k, v in json.loads(str(data[f"{key}/config"])).items()}
            y, cache = forward(data[f"{key}/x"], **hyper)
            np.testing.assert_allclose(y, data[f"{key}/y"], rtol=1e-12, atol=1e-12, err_msg=f"{key} {hyper}")
            np.testing.assert_allclose(backward(data[f"{key}/dy"], cache), data[f"{key}/dx"],
                                       rtol=1e-12, atol=1e-12, err_msg=f"{key} {hyper}")
            n += 1
    assert n >= 14


# --------------------------------------------------------------------------- backends

@pytest.mark.parametrize("align_corners", [False, True])
def test_same_code_on_every_backend(xp, align_corners):
    rng = np.random.default_rng(5)
    x = rng.standard_normal((2, 3, 5, 4))
    y_ref, c_ref = bilinear_interpolate(x, scale_factor=(2.5, 0.5), align_corners=align_corners)
    y, c = bilinear_interpolate(xp.asarray(x), scale_factor=(2.5, 0.5), align_corners=align_corners)
    assert backend.get_array_module(y) is xp
    np.testing.assert_allclose(backend.to_numpy(y), y_ref, rtol=1e-12, atol=1e-12)
    dy = rng.standard_normal(y_ref.shape)
    np.testing.assert_allclose(backend.to_numpy(bilinear_interpolate_backward(xp.asarray(dy), c)),
                               bilinear_interpolate_backward(dy, c_ref), rtol=1e-12, atol=1e-12)
    n_ref, nc_ref = upsample_nearest(x, size=(7, 9))
    n, nc = upsample_nearest(xp.asarray(x), size=(7, 9))
    np.testing.assert_array_equal(backend.to_numpy(n), n_ref)
    np.testing.assert_allclose(backend.to_numpy(upsample_nearest_backward(xp.asarray(n_ref), nc)),
                               upsample_nearest_backward(n_ref, nc_ref), rtol=1e-12)


# --------------------------------------------------------------------------- bad inputs

@pytest.mark.parametrize("op", [bilinear_interpolate, upsample_nearest])
@pytest.mark.parametrize("x,kwargs,exc,words", [
    (np.zeros((3, 4, 4)), dict(scale_factor=2), ValueError, ["x", "(N, C, H, W)", "(3, 4, 4)"]),
    (np.zeros((1, 1, 4, 4), dtype=np.int64), dict(scale_factor=2), TypeError, ["x", "floating", "int64"]),
    (np.zeros((1, 1, 4, 4)), {}, ValueError, ["exactly one of size and scale_factor", "size=None"]),
    (np.zeros((1, 1, 4, 4)), dict(size=4, scale_factor=2), ValueError, ["exactly one", "size=4", "scale_factor=2"]),
    (np.zeros((1, 1, 4, 4)), dict(size=(0, 3)), ValueError, ["size >= 1", "(0, 3)"]),
    (np.zeros((1, 1, 4, 4)), dict(size=(2.5, 3)), TypeError, ["size", "(2.5, 3)"]),
    (np.zeros((1, 1, 4, 4)), dict(scale_factor=-1.0), ValueError, ["scale_factor > 0", "(-1.0, -1.0)"]),
    (np.zeros((1, 1, 4, 4)), dict(scale_factor=0.2), ValueError, ["output size >= 1", "(0, 0)"]),
    (np.zeros((1, 1, 4, 4)), dict(scale_factor="2"), TypeError, ["scale_factor", "'2'"]),
])
def test_bad_inputs_raise_clear_errors(op, x, kwargs, exc, words):
    with pytest.raises(exc) as info:
        op(x, **kwargs)
    message = str(info.value)
    assert message.startswith(f"{op.__name__}: expected")
    for word in words:
        assert word in message, f"{word!r} missing from {message!r}"


def test_more_bad_inputs():
    with pytest.raises(TypeError, match="bilinear_interpolate: expected align_corners to be a bool, got None"):
        bilinear_interpolate(np.zeros((1, 1, 4, 4)), scale_factor=2, align_corners=None)
    _, cache = bilinear_interpolate(np.zeros((1, 2, 4, 4)), scale_factor=2)
    with pytest.raises(ValueError, match=r"bilinear_interpolate_backward: expected dy of shape \(1, 2, 8, 8\)"):
        bilinear_interpolate_backward(np.zeros((1, 2, 8, 7)), cache)
    _, cache = upsample_nearest(np.zeros((1, 2, 4, 4)), scale_factor=2)
    with pytest.raises(ValueError, match=r"upsample_nearest_backward: expected dy of shape \(1, 2, 8, 8\)"):
        upsample_nearest_backward(np.zeros((1, 2, 8, 7)), cache)
    with pytest.raises(ValueError, match="bilinear_kernel: expected kernel_size >= 1"):
        bilinear_kernel(0)
    with pytest.raises(ValueError, match="bilinear_kernel: expected channels to be an int >= 1 or None, got 0"):
        bilinear_kernel(4, 0)

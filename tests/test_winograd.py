"""Winograd F(2x2, 3x3) / F(4x4, 3x3) convolution: the plain path, the loops, PyTorch, float32 error, bad inputs."""
import itertools

import numpy as np
import pytest

from minseg import shapes
from minseg.gradcheck import check_backward
from minseg.ops import conv2d, conv2d_backward
from minseg.ops.conv import _conv2d_backward_plain, _conv2d_plain
from minseg.ops.winograd import (_conv2d_backward_winograd, _conv2d_winograd, conv2d_winograd,
                                 conv2d_winograd_backward, winograd_applies, winograd_matrices, winograd_work_size)
from minseg.reference import conv2d_backward_loops, conv2d_loops

ONE = (1, 1)


def _rel(a, ref):
    """Normwise relative error ``max |a - ref| / max |ref|``."""
    a, ref = np.asarray(a, dtype=np.float64), np.asarray(ref, dtype=np.float64)
    return float(np.abs(a - ref).max() / max(np.abs(ref).max(), 1e-300))


def _inputs(rng, N, C, C_out, H, W, dtype=np.float64):
    x = rng.standard_normal((N, C, H, W)).astype(dtype)
    w = rng.standard_normal((C_out, C, 3, 3)).astype(dtype)
    b = rng.standard_normal(C_out).astype(dtype)
    return x, w, b


# N, C, C_out; H, W (odd, non-square, smaller than the kernel); padding 0, 1, 2, 3 and mixed
CHANNELS = [(1, 1, 1), (2, 3, 4), (3, 4, 2)]
SIZES = [(5, 5), (7, 4), (2, 6), (1, 1), (8, 9), (3, 3), (6, 11), (13, 2)]
PADDINGS = [0, 1, 2, 3, (1, 0), (0, 2)]
GRID = [(ch, hw, p, m) for ch, hw, p, m in itertools.product(CHANNELS, SIZES, PADDINGS, (2, 4))
        if shapes.conv_output_size(hw[0], 3, 1, shapes.pair(p)[0]) >= 1
        and shapes.conv_output_size(hw[1], 3, 1, shapes.pair(p)[1]) >= 1]


@pytest.mark.parametrize("ch,hw,p,m", GRID)
def test_forward_and_backward_match_the_plain_path(ch, hw, p, m):
    (N, C, C_out), (H, W) = ch, hw
    rng = np.random.default_rng(len(GRID) * m + C * 100 + H * 10 + W)
    x, w, _ = _inputs(rng, N, C, C_out, H, W)
    pad = shapes.pair(p)
    y_ref = _conv2d_plain(x, w, ONE, pad, ONE, 1)
    y = _conv2d_winograd(x, w, ONE, pad, ONE, 1, m=m)
    assert y.shape == y_ref.shape
    assert _rel(y, y_ref) < 1e-12
    dy = rng.standard_normal(y.shape)
    dx_ref, dw_ref = _conv2d_backward_plain(dy, x, w, ONE, pad, ONE, 1)
    dx, dw = _conv2d_backward_winograd(dy, x, w, ONE, pad, ONE, 1, m=m)
    assert dx.shape == dx_ref.shape and dw.shape == dw_ref.shape == (C_out, C, 3, 3)
    assert _rel(dx, dx_ref) < 1e-12
    assert _rel(dw, dw_ref) < 1e-12


@pytest.mark.parametrize("case", range(0, len(GRID), 7))
def test_matches_the_loops(case):
    (N, C, C_out), (H, W), p, m = GRID[case]
    rng = np.random.default_rng(case)
    x, w, b = _inputs(rng, N, C, C_out, H, W)
    y, cache = conv2d_winograd(x, w, b, padding=p, m=m)
    assert _rel(y, conv2d_loops(x, w, b, padding=p)) < 1e-12
    dy = rng.standard_normal(y.shape)
    dx, dw, db = conv2d_winograd_backward(dy, cache, m=m)
    dx_ref, dw_ref, db_ref = conv2d_backward_loops(dy, x, w, True, padding=p)
    assert _rel(dx, dx_ref) < 1e-12 and _rel(dw, dw_ref) < 1e-12 and _rel(db, db_ref) < 1e-12


@pytest.mark.parametrize("ch,hw,p,m", GRID[::3])
def test_matches_pytorch_forward_and_all_gradients(ch, hw, p, m):
    torch = pytest.importorskip("torch")
    (N, C, C_out), (H, W) = ch, hw
    rng = np.random.default_rng(C * 1000 + H * 10 + W)
    x, w, b = _inputs(rng, N, C, C_out, H, W)
    y, cache = conv2d_winograd(x, w, b, padding=p, m=m)
    tx, tw, tb = (torch.tensor(a, requires_grad=True) for a in (x, w, b))
    ty = torch.nn.functional.conv2d(tx, tw, tb, padding=p)
    dy = rng.standard_normal(y.shape)
    ty.backward(torch.tensor(dy))
    dx, dw, db = conv2d_winograd_backward(dy, cache, m=m)
    assert _rel(y, ty.detach().numpy()) < 1e-12
    assert _rel(dx, tx.grad.numpy()) < 1e-12
    assert _rel(dw, tw.grad.numpy()) < 1e-12
    assert _rel(db, tb.grad.numpy()) < 1e-12


@pytest.mark.parametrize("m,p,bias", [(2, 1, True), (2, 0, False), (4, 2, True), (4, (0, 1), False)])
def test_gradcheck(m, p, bias):
    rng = np.random.default_rng(m)
    x, w, b = _inputs(rng, 2, 3, 2, 6, 5)
    report = check_backward(conv2d_winograd, conv2d_winograd_backward, {"x": x, "w": w, "b": b if bias else None},
                            padding=p, m=m)
    assert report.passed, str(report)
    assert {r.name for r in report.rows} == ({"x", "w", "b"} if bias else {"x", "w"})


@pytest.mark.parametrize("m", [2, 4])
def test_the_tile_identity_of_the_matrices(m):
    """A^T [(G g G^T) * (B^T d B)] A is the valid 3x3 correlation of one (m+2)x(m+2) tile."""
    BT, G, AT = winograd_matrices(m)
    rng = np.random.default_rng(m)
    d, g = rng.standard_normal((m + 2, m + 2)), rng.standard_normal((3, 3))
    direct = np.array([[np.sum(d[i:i + 3, j:j + 3] * g) for j in range(m)] for i in range(m)])
    assert np.allclose(AT @ ((G @ g @ G.T) * (BT @ d @ BT.T)) @ AT.T, direct, rtol=0, atol=1e-12)


@pytest.mark.parametrize("p", [0, 1, 2])
def test_dx_is_a_full_correlation_with_the_flipped_transposed_kernel(p):
    rng = np.random.default_rng(p)
    x, w, _ = _inputs(rng, 2, 3, 4, 7, 6)
    y, cache = conv2d_winograd(x, w, padding=p)
    dy = rng.standard_normal(y.shape)
    dx, _, _ = conv2d_winograd_backward(dy, cache)
    w_flip_t = np.ascontiguousarray(w[:, :, ::-1, ::-1].transpose(1, 0, 2, 3))  # (C, C_out, 3, 3)
    dx_full, _ = conv2d_winograd(dy, w_flip_t, padding=2 - p)
    assert _rel(dx, dx_full) < 1e-12


def test_a_conv2d_cache_works_and_chunks_agree(monkeypatch):
    rng = np.random.default_rng(0)
    x, w, b = _inputs(rng, 5, 3, 4, 9, 7)
    y, cache = conv2d(x, w, b, padding=1)
    dy = rng.standard_normal(y.shape)
    dx_ref, dw_ref, db_ref = conv2d_backward(dy, cache)
    dx, dw, db = conv2d_winograd_backward(dy, cache)
    assert _rel(dx, dx_ref) < 1e-12 and _rel(dw, dw_ref) < 1e-12 and _rel(db, db_ref) < 1e-12
    # one sample per chunk: the work buffer is reused and the result does not change
    monkeypatch.setattr(shapes, "CHUNK_BYTES", 1)
    y1, cache1 = conv2d_winograd(x, w, b, padding=1)
    dx1, dw1, db1 = conv2d_winograd_backward(dy, cache1)
    assert _rel(y1, y) < 1e-12 and _rel(dx1, dx_ref) < 1e-12 and _rel(dw1, dw_ref) < 1e-12


def test_work_buffer_is_used_and_too_small_a_buffer_is_not():
    rng = np.random.default_rng(1)
    x, w, _ = _inputs(rng, 2, 3, 4, 6, 6)
    ref = _conv2d_winograd(x, w, ONE, ONE, ONE, 1)
    size = winograd_work_size(2, 3, 6, 6)
    buf = np.full(size, np.nan)
    y = _conv2d_winograd(x, w, ONE, ONE, ONE, 1, buf)
    assert np.array_equal(y, ref) and not np.isnan(buf).any()           # V was written into buf
    small = np.full(size - 1, np.nan)
    assert np.array_equal(_conv2d_winograd(x, w, ONE, ONE, ONE, 1, small), ref) and np.isnan(small).all()


# --------------------------------------------------------------------------- float32

def _float32_errors(m, rng, N=2, C=32, C_out=32, H=24, W=20):
    """Normwise relative errors of (y, dx, dw) in float32 against float64, for the Winograd and the plain path."""
    x, w, b = _inputs(rng, N, C, C_out, H, W)
    w /= np.sqrt(9 * C)
    dy = rng.standard_normal((N, C_out, H, W))
    y64, c64 = conv2d(x, w, b, padding=1)
    ref = (y64, *conv2d_backward(dy, c64)[:2])
    x32, w32, b32, dy32 = (a.astype(np.float32) for a in (x, w, b, dy))
    yw, cw = conv2d_winograd(x32, w32, b32, padding=1, m=m)
    dxw, dww, dbw = conv2d_winograd_backward(dy32, cw, m=m)
    assert yw.dtype == dxw.dtype == dww.dtype == dbw.dtype == np.float32   # no silent upcast
    yp, cp = conv2d(x32, w32, b32, padding=1)
    plain = (yp, *conv2d_backward(dy32, cp)[:2])
    return [_rel(a, r) for a, r in zip((yw, dxw, dww), ref)], [_rel(a, r) for a, r in zip(plain, ref)]


@pytest.mark.parametrize("m,bound", [(2, 5e-6), (4, 5e-5)])
def test_float32_error_is_bounded(m, bound):
    """Measured (seed 0): F(2x2) about 2e-7 to 7e-7, F(4x4) about 3e-6 to 1e-5, the plain path 1e-7 to 5e-7."""
    wino, plain = _float32_errors(m, np.random.default_rng(0))
    for name, e, e_plain in zip(("y", "dx", "dw"), wino, plain):
        assert e < bound, f"{name}: float32 error {e:.2e} of F({m}x{m}, 3x3) exceeds {bound:.0e}"
        assert e_plain < 2e-6, f"{name}: float32 error {e_plain:.2e} of the plain path"
    if m == 2:   # F(2x2) stays within a few times the direct sum's rounding
        assert max(wino) < 10 * max(plain)


# --------------------------------------------------------------------------- when it applies, and bad inputs

def test_winograd_applies():
    assert winograd_applies(3) and winograd_applies((3, 3), (1, 1), (1, 1), 1)
    assert not winograd_applies(5) and not winograd_applies((3, 1))
    assert not winograd_applies(3, stride=2) and not winograd_applies(3, stride=(1, 2))
    assert not winograd_applies(3, dilation=2) and not winograd_applies(3, groups=2)


@pytest.mark.parametrize("kwargs,shape_x,shape_w,message", [
    ({}, (1, 2, 5, 5), (3, 2, 5, 5), "conv2d_winograd: expected a 3x3 kernel"),
    ({}, (1, 4, 5, 5), (3, 2, 3, 3), "conv2d_winograd: expected w.shape[1] == C = 4"),
    ({"padding": -1}, (1, 2, 5, 5), (3, 2, 3, 3), "conv2d_winograd: expected padding >= 0, got (-1, -1)"),
    ({}, (1, 2, 2, 5), (3, 2, 3, 3), "conv2d_winograd: expected the 3x3 kernel to fit in the padded input (2, 5)"),
    ({"m": 3}, (1, 2, 5, 5), (3, 2, 3, 3), "conv2d_winograd: expected m in [2, 4], got 3"),
    ({}, (2, 5, 5), (3, 2, 3, 3), "conv2d_winograd: expected x of shape (N, C, H, W), got shape (2, 5, 5)"),
])
def test_bad_inputs(kwargs, shape_x, shape_w, message):
    with pytest.raises(ValueError) as err:
        conv2d_winograd(np.zeros(shape_x), np.zeros(shape_w), **kwargs)
    assert message in str(err.value)


def test_bad_dtype_and_bias():
    x, w = np.zeros((1, 2, 5, 5)), np.zeros((3, 2, 3, 3))
    with pytest.raises(TypeError, match="expected w with the dtype of x"):
        conv2d_winograd(x, w.astype(np.float32))
    with pytest.raises(ValueError, match=r"expected b of shape \(3,\), got shape \(2,\)"):
        conv2d_winograd(x, w, np.zeros(2))


def test_backward_rejects_other_convolutions_and_a_wrong_dy():
    rng = np.random.default_rng(0)
    x, w, _ = _inputs(rng, 1, 2, 3, 7, 7)
    _, cache = conv2d(x, w, stride=2)
    with pytest.raises(ValueError, match="conv2d_winograd_backward: expected a cache of a 3x3 convolution"):
        conv2d_winograd_backward(np.zeros((1, 3, 3, 3)), cache)
    y, cache = conv2d_winograd(x, w, padding=1)
    with pytest.raises(ValueError, match=r"expected dy of shape \(1, 3, 7, 7\), got shape \(1, 3, 7, 6\)"):
        conv2d_winograd_backward(np.zeros((1, 3, 7, 6)), cache)

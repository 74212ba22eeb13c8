"""conv2d / conv2d_backward: gradient checks on a grid, loops, PyTorch, golden fixtures, bad inputs."""
import itertools
from pathlib import Path

import numpy as np
import pytest

from minseg import backend
from minseg.gradcheck import check_backward
from minseg.ops import col2im, conv2d, conv2d_backward, im2col
from minseg.reference import conv2d_backward_loops, conv2d_loops
from minseg.shapes import conv_output_size, pair

FIXTURE = Path(__file__).parent / "fixtures" / "conv_golden.npz"


def _fits(H, W, k, s, p, d):
    (KH, KW), (sh, sw), (ph, pw), (dh, dw) = pair(k), pair(s), pair(p), pair(d)
    return conv_output_size(H, KH, sh, ph, dh) >= 1 and conv_output_size(W, KW, sw, pw, dw) >= 1


def _inputs(rng, N, C, C_out, H, W, k, groups, bias, dtype=np.float64):
    KH, KW = pair(k)
    x = rng.standard_normal((N, C, H, W)).astype(dtype)
    w = rng.standard_normal((C_out, C // groups, KH, KW)).astype(dtype)
    b = rng.standard_normal(C_out).astype(dtype) if bias else None
    return x, w, b


# --------------------------------------------------------------------------- gradient checks

# every stride x padding x dilation; the other axes of the grid rotate through the cases
GRID = list(itertools.product([1, 2, 3], [0, 1, 2], [1, 2, 3]))
KERNELS = [(3, 3), (1, 1), (5, 5), (2, 3), (3, 1)]
GROUPS = ["1", "2", "C"]


@pytest.mark.parametrize("case", range(len(GRID)))
def test_gradcheck_grid(case):
    s, p, d = GRID[case]
    k = KERNELS[case % len(KERNELS)]
    groups_kind = GROUPS[case % 3]
    N = 1 + case % 2                # batch 1 and > 1
    bias = case % 4 != 3            # with and without bias
    H, W = 9, 8                     # odd and non-square
    if not _fits(H, W, k, s, p, d):  # a 5x5 kernel at dilation 3 needs more room
        H, W = 15, 14
    C = 4
    groups = {"1": 1, "2": 2, "C": C}[groups_kind]
    C_out = 2 * groups if groups_kind != "C" else C
    rng = np.random.default_rng(case)
    x, w, b = _inputs(rng, N, C, C_out, H, W, k, groups, bias)
    report = check_backward(conv2d, conv2d_backward, {"x": x, "w": w, "b": b},
                            stride=s, padding=p, dilation=d, groups=groups)
    assert report.passed, str(report)
    assert {r.name for r in report.rows} == ({"x", "w", "b"} if bias else {"x", "w"})


@pytest.mark.parametrize("k,groups", list(itertools.product(KERNELS, [1, 2, 4])))
def test_gradcheck_kernels_and_groups(k, groups):
    rng = np.random.default_rng(7)
    x, w, b = _inputs(rng, 2, 4, 4, 7, 10, k, groups, True)
    report = check_backward(conv2d, conv2d_backward, {"x": x, "w": w, "b": b},
                            stride=(2, 1), padding=(1, 0), dilation=(1, 2), groups=groups)
    assert report.passed, str(report)


def test_gradcheck_catches_a_wrong_backward():
    """The checker itself must fail a backward with a flipped kernel gradient."""
    rng = np.random.default_rng(0)
    x, w, b = _inputs(rng, 1, 2, 3, 6, 6, 3, 1, True)

    def flipped(dy, cache):
        dx, dw, db = conv2d_backward(dy, cache)
        return dx, dw[:, :, ::-1, ::-1], db

    report = check_backward(conv2d, flipped, {"x": x, "w": w, "b": b}, padding=1)
    assert not report.passed
    assert [r.passed for r in report.rows] == [True, False, True]
    assert "FAIL" in str(report)


# --------------------------------------------------------------------------- fast vs loops

LOOP_CASES = [
    # N, C, C_out, H, W, k, stride, padding, dilation, groups, bias
    (2, 3, 4, 7, 6, 3, 1, 1, 1, 1, True),
    (1, 4, 6, 9, 9, (2, 3), (2, 1), (0, 2), (2, 1), 2, False),
    (2, 4, 4, 8, 7, 3, 2, 2, 2, 4, True),
    (1, 2, 3, 5, 5, 5, 3, 2, 1, 1, True),
    (1, 1, 1, 4, 4, 1, 1, 0, 1, 1, False),
    (2, 6, 3, 6, 8, (1, 3), 1, (0, 1), 3, 3, True),
]


@pytest.mark.parametrize("case", LOOP_CASES)
def test_matches_loops(case):
    N, C, C_out, H, W, k, s, p, d, g, bias = case
    rng = np.random.default_rng(1)
    x, w, b = _inputs(rng, N, C, C_out, H, W, k, g, bias)
    hyper = dict(stride=s, padding=p, dilation=d, groups=g)
    y, cache = conv2d(x, w, b, **hyper)
    np.testing.assert_allclose(y, conv2d_loops(x, w, b, **hyper), rtol=1e-12, atol=1e-12)
    dy = rng.standard_normal(y.shape)
    for got, want in zip(conv2d_backward(dy, cache), conv2d_backward_loops(dy, x, w, bias, **hyper)):
        if want is None:
            assert got is None
        else:
            np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)


def test_im2col_col2im_adjoint():
    """<im2col(x), c> == <x, col2im(c)>: col2im is the transpose of im2col."""
    rng = np.random.default_rng(3)
    for k, s, p, d in [(3, 1, 1, 1), ((2, 3), (2, 3), (1, 0), (1, 2)), (3, 2, 2, 2)]:
        x = rng.standard_normal((2, 3, 7, 8))
        cols = im2col(x, k, s, p, d)
        c = rng.standard_normal(cols.shape)
        lhs = float((cols * c).sum())
        rhs = float((x * col2im(c, x.shape, k, s, p, d)).sum())
        assert abs(lhs - rhs) <= 1e-12 * max(1.0, abs(lhs))


def test_im2col_layout():
    """Row (c, kh, kw), column (n, i, j), zeros where the tap reads the padding."""
    x = np.arange(2 * 1 * 3 * 3, dtype=np.float64).reshape(2, 1, 3, 3)
    cols = im2col(x, 2, stride=1, padding=1)  # H_out = W_out = 4
    assert cols.shape == (4, 2 * 16)
    # tap (kh=1, kw=1) at output (n=1, i=1, j=2) reads x_pad[1, 0, 2, 3] = x[1, 0, 1, 2]
    assert cols[3, 16 + 1 * 4 + 2] == x[1, 0, 1, 2]
    # tap (0, 0) at output (0, 0, 0) reads the top-left padding
    assert cols[0, 0] == 0.0


# --------------------------------------------------------------------------- PyTorch conformance

def _torch_conv(torch, x, w, b, dy, **hyper):
    tx = torch.tensor(x, requires_grad=True)
    tw = torch.tensor(w, requires_grad=True)
    tb = torch.tensor(b, requires_grad=True) if b is not None else None
    ty = torch.nn.functional.conv2d(tx, tw, tb, **hyper)
    ty.backward(torch.tensor(dy))
    return ty.detach().numpy(), tx.grad.numpy(), tw.grad.numpy(), None if b is None else tb.grad.numpy()


def _assert_matches_torch(torch, x, w, b, hyper, rtol=1e-12):
    y, cache = conv2d(x, w, b, **hyper)
    dy = np.random.default_rng(0).standard_normal(y.shape)
    ours = (y, *conv2d_backward(dy, cache))
    theirs = _torch_conv(torch, x, w, b, dy, **hyper)
    for name, got, want in zip(["y", "dx", "dw", "db"], ours, theirs):
        if want is None:
            assert got is None
            continue
        scale = max(1.0, float(np.abs(want).max()))
        err = float(np.abs(got - want).max()) / scale
        assert err <= rtol, f"{name}: relative error {err:.2e} for {hyper}"


@pytest.mark.parametrize("case", range(len(GRID)))
def test_matches_torch_grid(case):
    torch = pytest.importorskip("torch")
    s, p, d = GRID[case]
    rng = np.random.default_rng(100 + case)
    groups = [1, 2, 4][case % 3]
    k = KERNELS[case % len(KERNELS)]
    H, W = (11, 10) if _fits(11, 10, k, s, p, d) else (16, 15)
    x, w, b = _inputs(rng, 2, 4, 4, H, W, k, groups, case % 2 == 0)
    _assert_matches_torch(torch, x, w, b, dict(stride=s, padding=p, dilation=d, groups=groups))


def test_matches_torch_random_configs():
    """Seeded random configurations: every hyper-parameter drawn independently, per axis."""
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(2024)
    checked = 0
    while checked < 40:
        groups = int(rng.choice([1, 2, 3]))
        C = groups * int(rng.integers(1, 4))
        C_out = groups * int(rng.integers(1, 4))
        k = tuple(int(v) for v in rng.integers(1, 6, size=2))
        s = tuple(int(v) for v in rng.integers(1, 4, size=2))
        p = tuple(int(v) for v in rng.integers(0, 3, size=2))
        d = tuple(int(v) for v in rng.integers(1, 4, size=2))
        H, W = (int(v) for v in rng.integers(1, 14, size=2))
        if not _fits(H, W, k, s, p, d):
            continue
        x, w, b = _inputs(rng, int(rng.integers(1, 4)), C, C_out, H, W, k, groups, bool(rng.integers(2)))
        _assert_matches_torch(torch, x, w, b, dict(stride=s, padding=p, dilation=d, groups=groups))
        checked += 1


def test_float32_matches_torch_and_keeps_dtype():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(5)
    x, w, b = _inputs(rng, 2, 8, 6, 12, 12, 3, 2, True, dtype=np.float32)
    y, cache = conv2d(x, w, b, padding=1, groups=2)
    dy = rng.standard_normal(y.shape).astype(np.float32)
    grads = conv2d_backward(dy, cache)
    assert y.dtype == np.float32 and all(g.dtype == np.float32 for g in grads)
    theirs = _torch_conv(torch, x, w, b, dy, padding=1, groups=2)
    for got, want in zip((y, *grads), theirs):
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)


def test_large_batch_is_chunked_consistently():
    """Batches larger than one column chunk give the same result as sample by sample."""
    rng = np.random.default_rng(9)
    x, w, b = _inputs(rng, 12, 16, 8, 40, 40, 3, 1, True)
    y, cache = conv2d(x, w, b, padding=1)
    dy = rng.standard_normal(y.shape)
    dx, dw, db = conv2d_backward(dy, cache)
    dw_sum = np.zeros_like(dw)
    for n in range(12):
        y_n, c_n = conv2d(x[n:n + 1], w, b, padding=1)
        np.testing.assert_allclose(y[n:n + 1], y_n, rtol=1e-12, atol=1e-12)
        dx_n, dw_n, _ = conv2d_backward(dy[n:n + 1], c_n)
        np.testing.assert_allclose(dx[n:n + 1], dx_n, rtol=1e-12, atol=1e-12)
        dw_sum += dw_n
    np.testing.assert_allclose(dw, dw_sum, rtol=1e-10, atol=1e-10)


# --------------------------------------------------------------------------- golden fixtures

def test_matches_golden_fixtures():
    """PyTorch results stored by data_scripts/make_golden_conv.py: conformance without torch installed."""
    data = np.load(FIXTURE)
    n_cases = int(data["n_cases"])
    assert n_cases >= 10
    for i in range(n_cases):
        hyper = dict(zip(["stride", "padding", "dilation"],
                         (tuple(int(v) for v in data[f"{i}/{k}"]) for k in ["stride", "padding", "dilation"])))
        hyper["groups"] = int(data[f"{i}/groups"])
        x, w, dy = data[f"{i}/x"], data[f"{i}/w"], data[f"{i}/dy"]
        b = data[f"{i}/b"] if f"{i}/b" in data else None
        y, cache = conv2d(x, w, b, **hyper)
        dx, dw, db = conv2d_backward(dy, cache)
        for name, got in [("y", y), ("dx", dx), ("dw", dw), ("db", db)]:
            if got is None:
                assert f"{i}/{name}" not in data
                continue
            want = data[f"{i}/{name}"]
            np.testing.assert_allclose(got, want, rtol=1e-11, atol=1e-11, err_msg=f"case {i} {name} {hyper}")


# --------------------------------------------------------------------------- backends

def test_same_code_on_every_backend(xp):
    rng = np.random.default_rng(11)
    x, w, b = _inputs(rng, 2, 4, 6, 9, 8, 3, 2, True)
    hyper = dict(stride=2, padding=1, dilation=2, groups=2)
    y_ref, cache_ref = conv2d(x, w, b, **hyper)
    dy = rng.standard_normal(y_ref.shape)
    y, cache = conv2d(xp.asarray(x), xp.asarray(w), xp.asarray(b), **hyper)
    assert backend.get_array_module(y) is xp
    np.testing.assert_allclose(backend.to_numpy(y), y_ref, rtol=1e-12, atol=1e-12)
    for got, want in zip(conv2d_backward(xp.asarray(dy), cache), conv2d_backward(dy, cache_ref)):
        np.testing.assert_allclose(backend.to_numpy(got), want, rtol=1e-12, atol=1e-12)


# --------------------------------------------------------------------------- bad inputs

def _ok():
    return np.zeros((2, 4, 8, 8)), np.zeros((6, 2, 3, 3)), np.zeros(6)


@pytest.mark.parametrize("change,exc,words", [
    (lambda x, w, b: (x[0], w, b, {}), ValueError, ["x", "(N, C, H, W)", "(4, 8, 8)"]),
    (lambda x, w, b: (x, w[0], b, {}), ValueError, ["w", "(2, 3, 3)"]),
    (lambda x, w, b: (x, np.zeros((6, 3, 3, 3)), b, {"groups": 2}), ValueError, ["w.shape[1]", "2", "(6, 3, 3, 3)"]),
    (lambda x, w, b: (x, np.zeros((6, 3, 3, 3)), b, {}), ValueError, ["w.shape[1]", "= 4", "(6, 3, 3, 3)"]),
    (lambda x, w, b: (x, np.zeros((6, 1, 3, 3)), b, {"groups": 3}), ValueError, ["groups=3", "C=4"]),
    (lambda x, w, b: (x, np.zeros((5, 2, 3, 3)), None, {"groups": 2}), ValueError, ["C_out", "groups=2", "5"]),
    (lambda x, w, b: (x, np.zeros((6, 2, 11, 3)), b, {"groups": 2}), ValueError, ["kernel", "(11, 3)", "(8, 8)"]),
    (lambda x, w, b: (x, w, b, {"groups": 2, "padding": -1}), ValueError, ["padding", ">= 0", "(-1, -1)"]),
    (lambda x, w, b: (x, w, b, {"groups": 2, "stride": 0}), ValueError, ["stride", ">= 1", "(0, 0)"]),
    (lambda x, w, b: (x, w, b, {"groups": 2, "dilation": (1, 0)}), ValueError, ["dilation", ">= 1", "(1, 0)"]),
    (lambda x, w, b: (x, w, b, {"groups": 0}), ValueError, ["groups", ">= 1", "0"]),
    (lambda x, w, b: (x, w, np.zeros(5), {"groups": 2}), ValueError, ["b", "(6,)", "(5,)"]),
    (lambda x, w, b: (x, w, b, {"groups": 2, "stride": 1.5}), TypeError, ["stride", "1.5"]),
    (lambda x, w, b: (x.astype(np.int64), w, b, {"groups": 2}), TypeError, ["x", "floating", "int64"]),
    (lambda x, w, b: (x, w.astype(np.float32), b, {"groups": 2}), TypeError, ["w", "float64", "float32"]),
    (lambda x, w, b: ([[1.0]], w, b, {"groups": 2}), TypeError, ["x", "ndarray", "list"]),
])
def test_bad_inputs_raise_clear_errors(change, exc, words):
    x, w, b, hyper = change(*_ok())
    with pytest.raises(exc) as info:
        conv2d(x, w, b, **hyper)
    message = str(info.value)
    assert message.startswith("conv2d: expected")
    for word in words:
        assert word in message, f"{word!r} missing from {message!r}"


def test_backward_rejects_wrong_dy_shape():
    x, w, b = _ok()
    _, cache = conv2d(x, w, b, groups=2, padding=1)
    with pytest.raises(ValueError, match=r"conv2d_backward: expected dy of shape \(2, 6, 8, 8\), got shape \(2, 6, 8, 7\)"):
        conv2d_backward(np.zeros((2, 6, 8, 7)), cache)


def test_mixing_numpy_and_cupy_raises_type_error():
    """A NumPy array mixed with a CuPy one is a TypeError that says so (needs a usable GPU)."""
    if not backend.has_gpu():
        pytest.skip("no usable CUDA device: cannot make a CuPy array")
    import cupy

    x, w, b = _ok()
    with pytest.raises(TypeError, match="numpy.ndarray or all cupy.ndarray"):
        conv2d(cupy.asarray(x), w, b, groups=2)


def test_get_array_module_mix_message_without_gpu():
    """The mix check works on the array types alone, so it is testable without a GPU."""
    class FakeCupy:
        __module__ = "cupy._core.core"
        __cuda_array_interface__ = {}

    FakeCupy.__module__ = "cupy._core.core"
    with pytest.raises(TypeError, match="got a mix"):
        backend.get_array_module(np.zeros(3), FakeCupy())


# --------------------------------------------------------------------------- both paths, each forced

PATH_CASES = [  # (N, C, C_out, H, W, k, groups, padding, dilation): stride 1, where both paths apply
    (2, 3, 4, 7, 9, 3, 1, 1, 1),
    (1, 4, 12, 6, 5, 3, 2, 0, 1),   # K < C_out: the plain path by default
    (3, 2, 2, 8, 8, (2, 3), 1, (1, 0), (2, 1)),
    (2, 6, 6, 5, 7, 3, 6, 2, 2),    # depthwise
    (1, 1, 1, 1, 1, 1, 1, 0, 1),
]


# forward plain / wide rows / one kernel row's columns; the backward of "dy-columns" without col2im
PATHS = ["plain", "wide", "row-taps", "dy-columns"]


def _force(monkeypatch, module, force):
    """Make ``_paths`` pick ``force``: the plain path, wide rows, row taps, or the dy-columns backward."""
    monkeypatch.setattr(module, "_use_wide_rows", lambda stride, K, C_out: force != "plain")
    monkeypatch.setattr(module, "_use_row_taps", lambda stride, K, C_out, taps, H_out, reach: force == "row-taps")
    monkeypatch.setattr(module, "_use_dy_columns", lambda stride, K, C_out, taps: force == "dy-columns")


@pytest.mark.parametrize("force", PATHS)
@pytest.mark.parametrize("case", PATH_CASES)
def test_each_path_forced_matches_the_loops(monkeypatch, force, case):
    """Each path, forced, equals the definition: forward and all three gradients."""
    import minseg.ops.conv as module

    _force(monkeypatch, module, force)
    N, C, C_out, H, W, k, g, p, d = case
    rng = np.random.default_rng(len(force) + N * 7 + H)
    x, w, b = _inputs(rng, N, C, C_out, H, W, k, g, True)
    y, cache = conv2d(x, w, b, padding=p, dilation=d, groups=g)
    np.testing.assert_allclose(y, conv2d_loops(x, w, b, 1, p, d, g), rtol=1e-12, atol=1e-12)
    dy = rng.standard_normal(y.shape)
    for got, want in zip(conv2d_backward(dy, cache), conv2d_backward_loops(dy, x, w, True, 1, p, d, g)):
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("case", PATH_CASES)
def test_the_paths_agree_and_match_torch(monkeypatch, case):
    torch = pytest.importorskip("torch")
    import minseg.ops.conv as module

    N, C, C_out, H, W, k, g, p, d = case
    x, w, b = _inputs(np.random.default_rng(11), N, C, C_out, H, W, k, g, True)
    hyper = dict(padding=p, dilation=d, groups=g)
    results = {}
    for force in PATHS:
        _force(monkeypatch, module, force)
        _assert_matches_torch(torch, x, w, b, hyper)
        y, cache = conv2d(x, w, b, **hyper)
        results[force] = (y, *conv2d_backward(np.ones_like(y), cache))
    for force in PATHS[1:]:
        for a, c in zip(results["plain"], results[force]):
            np.testing.assert_allclose(a, c, rtol=1e-12, atol=1e-12)


DY_COLUMN_CASES = [  # (N, C, C_out, H, W, k, padding, dilation): the dy-columns backward's geometry
    (2, 5, 3, 9, 11, 3, 1, 1),
    (1, 4, 4, 6, 7, (2, 3), (0, 2), 1),
    (3, 3, 2, 10, 8, 3, 2, 2),             # padding = dilation: more output rows than input rows
    (2, 2, 2, 5, 6, (3, 2), (3, 0), (1, 2)),  # padding wider than the kernel's reach
    (1, 3, 1, 4, 4, 4, 0, 1),              # no padding, an even kernel
    (5, 2, 2, 1, 9, (1, 3), (0, 1), 1),    # one row
]


@pytest.mark.parametrize("case", DY_COLUMN_CASES)
def test_dy_columns_backward_edges_match_the_loops_and_torch(monkeypatch, case):
    """``dx`` as a convolution of dy with the flipped kernel, ``dw`` from the same columns: every border pixel."""
    import minseg.ops.conv as module

    monkeypatch.setattr(module, "_use_dy_columns", lambda stride, K, C_out, taps: True)
    from minseg import shapes

    monkeypatch.setattr(shapes, "CHUNK_BYTES", 1)  # one sample per chunk: dw is summed over the chunks
    N, C, C_out, H, W, k, p, d = case
    rng = np.random.default_rng(N + 10 * C + 100 * H + W)
    x, w, b = _inputs(rng, N, C, C_out, H, W, k, 1, False)
    y, cache = conv2d(x, w, padding=p, dilation=d)
    dy = rng.standard_normal(y.shape)
    dx, dw, _ = conv2d_backward(dy, cache)
    want_dx, want_dw, _ = conv2d_backward_loops(dy, x, w, False, 1, p, d, 1)
    np.testing.assert_allclose(dx, want_dx, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(dw, want_dw, rtol=1e-12, atol=1e-12)
    torch = pytest.importorskip("torch")
    xt, wt = torch.from_numpy(x).requires_grad_(), torch.from_numpy(w).requires_grad_()
    torch.nn.functional.conv2d(xt, wt, padding=p, dilation=d).backward(torch.from_numpy(dy))
    np.testing.assert_allclose(dx, xt.grad.numpy(), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(dw, wt.grad.numpy(), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("case", DY_COLUMN_CASES)
def test_row_taps_forward_edges_match_the_loops_and_torch(monkeypatch, case):
    """One kernel row's columns, the kernel rows summed: every border pixel, one sample per chunk."""
    import minseg.ops.conv as module
    from minseg import shapes

    monkeypatch.setattr(module, "_use_row_taps", lambda stride, K, C_out, taps, H_out, reach: True)
    monkeypatch.setattr(shapes, "CHUNK_BYTES", 1)
    N, C, C_out, H, W, k, p, d = case
    rng = np.random.default_rng(N + 10 * C + 100 * H + W + 1)
    x, w, b = _inputs(rng, N, C, C_out, H, W, k, 1, True)
    y, _ = conv2d(x, w, b, padding=p, dilation=d)
    np.testing.assert_allclose(y, conv2d_loops(x, w, b, 1, p, d, 1), rtol=1e-12, atol=1e-12)
    torch = pytest.importorskip("torch")
    ty = torch.nn.functional.conv2d(torch.from_numpy(x), torch.from_numpy(w), torch.from_numpy(b), padding=p, dilation=d)
    np.testing.assert_allclose(y, ty.numpy(), rtol=1e-12, atol=1e-12)


def test_the_path_is_chosen_by_one_rule():
    """Wide rows at stride 1 when the columns are at least as tall as the output (K >= C_out); else plain."""
    from minseg.ops.conv import (_conv2d_backward_as_conv, _conv2d_backward_plain, _conv2d_backward_wide,
                                 _conv2d_plain, _conv2d_row_taps, _conv2d_wide, _paths)

    assert _paths((1, 1), 27, 16)[0] is _conv2d_wide
    # one kernel row's columns when C_out <= 2 C and the output is at least 8x taller than the reach
    assert _paths((1, 1), 32 * 9, 16, 9, 64, 2)[0] is _conv2d_row_taps
    assert _paths((1, 1), 16 * 9, 16, 9, 16, 2)[0] is _conv2d_row_taps
    assert _paths((1, 1), 16 * 9, 32, 9, 32, 2)[0] is _conv2d_row_taps    # C_out = 2 C
    assert _paths((1, 1), 128 * 9, 128, 9, 8, 2)[0] is _conv2d_wide       # 8 rows: 2 of 10 wasted
    assert _paths((1, 1), 16 * 9, 33, 9, 64, 2)[0] is _conv2d_wide        # C_out > 2 C
    assert _paths((1, 1), 3 * 9, 16, 9, 64, 2)[0] is _conv2d_wide
    assert _paths((2, 2), 32 * 9, 16, 9, 64, 2)[0] is _conv2d_plain
    assert _paths((1, 1), 9, 16)[0] is _conv2d_plain
    assert _paths((2, 2), 27, 16)[0] is _conv2d_plain
    # the backward: from the columns of dy when C_out <= C (stride 1), else as the forward chose
    assert _paths((1, 1), 16 * 9, 16, 9)[1] is _conv2d_backward_as_conv
    assert _paths((1, 1), 32 * 9, 16, 9)[1] is _conv2d_backward_as_conv
    assert _paths((1, 1), 16 * 9, 32, 9)[1] is _conv2d_backward_wide
    assert _paths((1, 1), 3 * 9, 16, 9)[1] is _conv2d_backward_wide
    assert _paths((2, 2), 16 * 9, 16, 9)[1] is _conv2d_backward_plain

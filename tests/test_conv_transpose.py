"""conv_transpose2d / conv_transpose2d_backward: gradient checks, loops, PyTorch, golden fixtures, bad inputs."""
import itertools
import json
from pathlib import Path

import numpy as np
import pytest

from minseg import backend
from minseg.gradcheck import check_backward
from minseg.ops import conv2d, conv2d_backward, conv_transpose2d, conv_transpose2d_backward
from minseg.reference import conv_transpose2d_backward_loops, conv_transpose2d_loops
from minseg.shapes import conv_transpose_output_size, pair

FIXTURE = Path(__file__).parent / "fixtures" / "upsampling_golden.npz"


def _inputs(rng, N, C_in, C_out, H, W, k, groups, bias, dtype=np.float64):
    KH, KW = pair(k)
    x = rng.standard_normal((N, C_in, H, W)).astype(dtype)
    w = rng.standard_normal((C_in, C_out // groups, KH, KW)).astype(dtype)
    b = rng.standard_normal(C_out).astype(dtype) if bias else None
    return x, w, b


def _valid_output_padding(o, s, d):
    return all(o[a] < s[a] or o[a] < d[a] for a in range(2))


# --------------------------------------------------------------------------- gradient checks

# stride x padding x dilation; output_padding, kernel, groups, batch and bias rotate through the cases
GRID = list(itertools.product([1, 2, 3], [0, 1, 2], [1, 2]))
KERNELS = [(3, 3), (4, 4), (2, 3), (1, 1), (3, 1)]


@pytest.mark.parametrize("case", range(len(GRID)))
def test_gradcheck_grid(case):
    s, p, d = GRID[case]
    k = KERNELS[case % len(KERNELS)]
    o = (max(s, d) - 1) if case % 2 else 0        # the largest output_padding allowed, or none
    groups = [1, 2][case % 2]
    bias = case % 3 != 2
    rng = np.random.default_rng(case)
    x, w, b = _inputs(rng, 1 + case % 2, 2, 4, 4, 3, k, groups, bias)
    H_out = conv_transpose_output_size(4, pair(k)[0], s, p, o, d)
    W_out = conv_transpose_output_size(3, pair(k)[1], s, p, o, d)
    if min(H_out, W_out) < 1:  # no output: the op must say so instead of returning an empty array
        with pytest.raises(ValueError, match="conv_transpose2d: expected an output size >= 1"):
            conv_transpose2d(x, w, b, stride=s, padding=p, output_padding=o, dilation=d, groups=groups)
        return
    report = check_backward(conv_transpose2d, conv_transpose2d_backward, {"x": x, "w": w, "b": b},
                            stride=s, padding=p, output_padding=o, dilation=d, groups=groups)
    assert report.passed, str(report)
    assert {r.name for r in report.rows} == ({"x", "w", "b"} if bias else {"x", "w"})


def test_gradcheck_per_axis_hyper_parameters():
    rng = np.random.default_rng(3)
    x, w, b = _inputs(rng, 2, 4, 6, 3, 4, (3, 2), 2, True)
    report = check_backward(conv_transpose2d, conv_transpose2d_backward, {"x": x, "w": w, "b": b},
                            stride=(2, 3), padding=(1, 0), output_padding=(1, 2), dilation=(1, 2), groups=2)
    assert report.passed, str(report)


# --------------------------------------------------------------------------- fast vs loops

LOOP_CASES = [
    # N, C_in, C_out, H, W, k, stride, padding, output_padding, dilation, groups, bias
    (2, 3, 2, 4, 5, 3, 1, 0, 0, 1, 1, True),
    (1, 2, 4, 3, 3, 4, 2, 1, 0, 1, 1, False),
    (2, 4, 4, 3, 4, (3, 2), (2, 3), (1, 0), (1, 2), 1, 2, True),
    (1, 2, 2, 4, 3, 3, 1, 2, 1, 2, 2, True),       # output_padding >= stride, allowed by the dilation
    (1, 3, 3, 2, 2, 5, 3, 2, 2, 1, 3, False),
    (1, 1, 1, 1, 1, 2, 2, 0, 1, 1, 1, True),
]


def _assert_matches_loops(case, seed):
    """Forward and every gradient of ``case`` (a LOOP_CASES row) equal the loops to float64 round-off."""
    N, Ci, Co, H, W, k, s, p, o, d, g, bias = case
    rng = np.random.default_rng(seed)
    x, w, b = _inputs(rng, N, Ci, Co, H, W, k, g, bias)
    hyper = dict(stride=s, padding=p, output_padding=o, dilation=d, groups=g)
    y, cache = conv_transpose2d(x, w, b, **hyper)
    np.testing.assert_allclose(y, conv_transpose2d_loops(x, w, b, **hyper), rtol=1e-12, atol=1e-12)
    dy = rng.standard_normal(y.shape)
    for got, want in zip(conv_transpose2d_backward(dy, cache),
                         conv_transpose2d_backward_loops(dy, x, w, bias, **hyper)):
        if want is None:
            assert got is None
        else:
            np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("case", LOOP_CASES)
def test_matches_loops(case):
    _assert_matches_loops(case, 1)


def test_is_conv2d_backward_and_its_backward_is_conv2d():
    """conv_transpose2d(y, w) == conv2d's dx for dy = y, and conv_transpose2d's dx == conv2d(dy, w)."""
    rng = np.random.default_rng(4)
    hyper = dict(stride=2, padding=1, dilation=1, groups=2)
    x = rng.standard_normal((2, 4, 8, 7))           # the convolution's input
    w = rng.standard_normal((6, 2, 3, 3))           # conv: (C_out=6, C_in/g=2); transposed: (C_in=6, C_out/g=2)
    z, cache = conv2d(x, w, **hyper)                # (2, 6, 4, 4)
    t = rng.standard_normal(z.shape)
    dx_conv = conv2d_backward(t, cache)[0]
    y, t_cache = conv_transpose2d(t, w, output_padding=(1, 0), **hyper)
    assert y.shape == x.shape
    np.testing.assert_allclose(y, dx_conv, rtol=1e-12, atol=1e-12)
    dy = rng.standard_normal(y.shape)
    np.testing.assert_allclose(conv_transpose2d_backward(dy, t_cache)[0], conv2d(dy, w, **hyper)[0],
                               rtol=1e-12, atol=1e-12)


# --------------------------------------------------------------------------- PyTorch conformance

def _torch_conv_transpose(torch, x, w, b, dy, **hyper):
    tx, tw = torch.tensor(x, requires_grad=True), torch.tensor(w, requires_grad=True)
    tb = torch.tensor(b, requires_grad=True) if b is not None else None
    ty = torch.nn.functional.conv_transpose2d(tx, tw, tb, **hyper)
    ty.backward(torch.tensor(dy))
    return ty.detach().numpy(), tx.grad.numpy(), tw.grad.numpy(), None if b is None else tb.grad.numpy()


def _assert_matches_torch(torch, x, w, b, hyper, rtol=1e-12):
    y, cache = conv_transpose2d(x, w, b, **hyper)
    dy = np.random.default_rng(0).standard_normal(y.shape)
    ours = (y, *conv_transpose2d_backward(dy, cache))
    for name, got, want in zip(["y", "dx", "dw", "db"], ours, _torch_conv_transpose(torch, x, w, b, dy, **hyper)):
        if want is None:
            assert got is None
            continue
        assert got.shape == want.shape, f"{name}: shape {got.shape} != {want.shape} for {hyper}"
        err = float(np.abs(got - want).max()) / max(1.0, float(np.abs(want).max()))
        assert err <= rtol, f"{name}: relative error {err:.2e} for {hyper}"


@pytest.mark.parametrize("case", range(len(GRID)))
def test_matches_torch_grid(case, torch):
    s, p, d = GRID[case]
    k = KERNELS[case % len(KERNELS)]
    o = (max(s, d) - 1) if case % 2 == 0 else 0
    rng = np.random.default_rng(100 + case)
    x, w, b = _inputs(rng, 2, 4, 4, 5, 4, k, [1, 2, 4][case % 3], case % 2 == 0)
    if conv_transpose_output_size(4, pair(k)[1], s, p, o, d) < 1:  # torch raises too; so must we
        with pytest.raises(ValueError, match="conv_transpose2d: expected an output size >= 1"):
            conv_transpose2d(x, w, b, stride=s, padding=p, output_padding=o, dilation=d, groups=[1, 2, 4][case % 3])
        with pytest.raises(RuntimeError):
            torch.nn.functional.conv_transpose2d(torch.tensor(x), torch.tensor(w), None, stride=s, padding=p,
                                                 output_padding=o, dilation=d, groups=[1, 2, 4][case % 3])
        return
    _assert_matches_torch(torch, x, w, b, dict(stride=s, padding=p, output_padding=o, dilation=d,
                                               groups=[1, 2, 4][case % 3]))


def test_matches_torch_random_configs(torch):
    """Seeded random configurations: every hyper-parameter drawn independently, per axis."""
    rng = np.random.default_rng(2025)
    checked = 0
    while checked < 40:
        groups = int(rng.choice([1, 2, 3]))
        k = tuple(int(v) for v in rng.integers(1, 5, size=2))
        s = tuple(int(v) for v in rng.integers(1, 4, size=2))
        p = tuple(int(v) for v in rng.integers(0, 3, size=2))
        d = tuple(int(v) for v in rng.integers(1, 4, size=2))
        o = tuple(int(v) for v in rng.integers(0, 3, size=2))
        H, W = (int(v) for v in rng.integers(1, 7, size=2))
        if not _valid_output_padding(o, s, d) or min(conv_transpose_output_size(n, k[a], s[a], p[a], o[a], d[a])
                                                     for a, n in enumerate((H, W))) < 1:
            continue
        x, w, b = _inputs(rng, int(rng.integers(1, 3)), groups * int(rng.integers(1, 3)),
                          groups * int(rng.integers(1, 3)), H, W, k, groups, bool(rng.integers(2)))
        _assert_matches_torch(torch, x, w, b, dict(stride=s, padding=p, output_padding=o, dilation=d, groups=groups))
        checked += 1


def test_float32_matches_torch_and_keeps_dtype(torch):
    rng = np.random.default_rng(5)
    x, w, b = _inputs(rng, 2, 8, 6, 9, 9, 4, 2, True, dtype=np.float32)
    hyper = dict(stride=2, padding=1, groups=2)
    y, cache = conv_transpose2d(x, w, b, **hyper)
    dy = rng.standard_normal(y.shape).astype(np.float32)
    grads = conv_transpose2d_backward(dy, cache)
    assert y.dtype == np.float32 and all(g.dtype == np.float32 for g in grads)
    for got, want in zip((y, *grads), _torch_conv_transpose(torch, x, w, b, dy, **hyper)):
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)


def test_large_batch_is_chunked_consistently(monkeypatch):
    """A batch split into several chunks gives the same result as sample by sample."""
    import minseg.shapes as shapes

    monkeypatch.setattr(shapes, "CHUNK_BYTES", 150_000)  # a few samples per chunk here
    rng = np.random.default_rng(9)
    x, w, b = _inputs(rng, 7, 8, 8, 12, 11, 4, 2, True)
    hyper = dict(stride=2, padding=1, groups=2)
    assert 1 < shapes.chunk_size(7, 4 * 8 * 13 * 12 * 8) < 7
    y, cache = conv_transpose2d(x, w, b, **hyper)
    dy = rng.standard_normal(y.shape)
    dx, dw, db = conv_transpose2d_backward(dy, cache)
    dw_sum = np.zeros_like(dw)
    for n in range(7):
        y_n, c_n = conv_transpose2d(x[n:n + 1], w, b, **hyper)
        np.testing.assert_allclose(y[n:n + 1], y_n, rtol=1e-12, atol=1e-12)
        dx_n, dw_n, _ = conv_transpose2d_backward(dy[n:n + 1], c_n)
        np.testing.assert_allclose(dx[n:n + 1], dx_n, rtol=1e-12, atol=1e-12)
        dw_sum += dw_n
    np.testing.assert_allclose(dw, dw_sum, rtol=1e-10, atol=1e-10)


# --------------------------------------------------------------------------- golden fixtures

def test_matches_golden_fixtures():
    """PyTorch results stored by data_scripts/make_golden_upsampling.py: conformance without torch installed."""
    data = np.load(FIXTURE)
    cases = sorted({k.split("/")[1] for k in data.files if k.startswith("conv_transpose2d/")})
    assert len(cases) >= 8
    for i in cases:
        key = f"conv_transpose2d/{i}"
        hyper = json.loads(str(data[f"{key}/config"]))
        hyper = {k: (tuple(v) if isinstance(v, list) else v) for k, v in hyper.items()}
        b = data[f"{key}/b"] if f"{key}/b" in data.files else None
        y, cache = conv_transpose2d(data[f"{key}/x"], data[f"{key}/w"], b, **hyper)
        dx, dw, db = conv_transpose2d_backward(data[f"{key}/dy"], cache)
        for name, got in [("y", y), ("dx", dx), ("dw", dw), ("db", db)]:
            if got is None:
                assert f"{key}/{name}" not in data.files
                continue
            np.testing.assert_allclose(got, data[f"{key}/{name}"], rtol=1e-11, atol=1e-11,
                                       err_msg=f"case {i} {name} {hyper}")


# --------------------------------------------------------------------------- backends

def test_same_code_on_every_backend(xp):
    rng = np.random.default_rng(11)
    x, w, b = _inputs(rng, 2, 4, 6, 5, 4, 3, 2, True)
    hyper = dict(stride=2, padding=1, output_padding=1, dilation=2, groups=2)
    y_ref, cache_ref = conv_transpose2d(x, w, b, **hyper)
    dy = rng.standard_normal(y_ref.shape)
    y, cache = conv_transpose2d(xp.asarray(x), xp.asarray(w), xp.asarray(b), **hyper)
    assert backend.get_array_module(y) is xp
    np.testing.assert_allclose(backend.to_numpy(y), y_ref, rtol=1e-12, atol=1e-12)
    for got, want in zip(conv_transpose2d_backward(xp.asarray(dy), cache), conv_transpose2d_backward(dy, cache_ref)):
        np.testing.assert_allclose(backend.to_numpy(got), want, rtol=1e-12, atol=1e-12)


# --------------------------------------------------------------------------- bad inputs

def _ok():
    return np.zeros((2, 4, 5, 5)), np.zeros((4, 3, 3, 3)), np.zeros(6)  # groups=2 -> C_out = 6


@pytest.mark.parametrize("change,exc,words", [
    (lambda x, w, b: (x[0], w, b, {}), ValueError, ["x", "(N, C_in, H, W)", "(4, 5, 5)"]),
    (lambda x, w, b: (x, w[0], b, {}), ValueError, ["w", "(3, 3, 3)"]),
    (lambda x, w, b: (x, np.zeros((3, 3, 3, 3)), None, {}), ValueError, ["w.shape[0]", "C_in = 4", "(3, 3, 3, 3)"]),
    (lambda x, w, b: (x, w, b, {"groups": 3}), ValueError, ["C_in", "groups=3", "C_in=4"]),
    (lambda x, w, b: (x, w, np.zeros(3), {"groups": 2}), ValueError, ["b", "(6,)", "(3,)"]),
    (lambda x, w, b: (x, w, b, {"groups": 2, "stride": 2, "output_padding": 2}), ValueError,
     ["output_padding", "smaller than stride or dilation", "(2, 2)"]),
    (lambda x, w, b: (x, w, b, {"groups": 2, "output_padding": (0, 1)}), ValueError,
     ["output_padding", "(0, 1)", "stride=(1, 1)", "dilation=(1, 1)"]),
    (lambda x, w, b: (x, w, b, {"groups": 2, "padding": 5}), ValueError, ["output size >= 1", "(-3, -3)", "padding (5, 5)"]),
    (lambda x, w, b: (x, w, b, {"groups": 2, "padding": -1}), ValueError, ["padding", ">= 0", "(-1, -1)"]),
    (lambda x, w, b: (x, w, b, {"groups": 2, "stride": 0}), ValueError, ["stride", ">= 1", "(0, 0)"]),
    (lambda x, w, b: (x, w, b, {"groups": 2, "dilation": (1, 0)}), ValueError, ["dilation", ">= 1", "(1, 0)"]),
    (lambda x, w, b: (x, w, b, {"groups": 0}), ValueError, ["groups", ">= 1", "0"]),
    (lambda x, w, b: (x, w, b, {"groups": 2, "stride": 1.5}), TypeError, ["stride", "1.5"]),
    (lambda x, w, b: (x.astype(np.int64), w, b, {"groups": 2}), TypeError, ["x", "floating", "int64"]),
    (lambda x, w, b: (x, w.astype(np.float32), b, {"groups": 2}), TypeError, ["w", "float64", "float32"]),
    (lambda x, w, b: ([[1.0]], w, b, {"groups": 2}), TypeError, ["x", "ndarray", "list"]),
])
def test_bad_inputs_raise_clear_errors(change, exc, words):
    x, w, b, hyper = change(*_ok())
    with pytest.raises(exc) as info:
        conv_transpose2d(x, w, b, **hyper)
    message = str(info.value)
    assert message.startswith("conv_transpose2d: expected")
    for word in words:
        assert word in message, f"{word!r} missing from {message!r}"


def test_backward_rejects_wrong_dy_shape():
    x, w, b = _ok()
    _, cache = conv_transpose2d(x, w, b, groups=2, stride=2)
    with pytest.raises(ValueError, match=r"conv_transpose2d_backward: expected dy of shape \(2, 6, 11, 11\), "
                                         r"got shape \(2, 6, 11, 10\)"):
        conv_transpose2d_backward(np.zeros((2, 6, 11, 10)), cache)


# --------------------------------------------------------------------------- the plain path, forced

@pytest.mark.parametrize("case", LOOP_CASES)
def test_plain_path_forced_matches_the_loops_and_the_phase_path(monkeypatch, case):
    """``col2im(w_mat.T @ x_mat)``, multiplication by C.T read literally, and its backward by ``im2col(dy)``,
    equal the loops and the phase paths (forward and backward)."""
    import minseg.ops.conv_transpose as module

    N, Ci, Co, H, W, k, s, p, o, d, g, bias = case
    rng = np.random.default_rng(2)
    x, w, b = _inputs(rng, N, Ci, Co, H, W, k, g, bias)
    hyper = dict(stride=s, padding=p, output_padding=o, dilation=d, groups=g)
    y_fast, cache = conv_transpose2d(x, w, b, **hyper)
    dy = rng.standard_normal(y_fast.shape)
    grads_fast = conv_transpose2d_backward(dy, cache)
    monkeypatch.setattr(module, "_use_plain_path", lambda: True)
    y_plain, cache = conv_transpose2d(x, w, b, **hyper)
    grads_plain = conv_transpose2d_backward(dy, cache)
    np.testing.assert_allclose(y_plain, conv_transpose2d_loops(x, w, b, **hyper), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(y_plain, y_fast, rtol=1e-12, atol=1e-12)
    want = conv_transpose2d_backward_loops(dy, x, w, bias, **hyper)
    for plain, fast, loops in zip(grads_plain, grads_fast, want):
        if loops is None:
            assert plain is None and fast is None
            continue
        np.testing.assert_allclose(plain, loops, rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(fast, loops, rtol=1e-12, atol=1e-12)


def test_plain_path_forced_matches_torch_on_the_grid(monkeypatch):
    torch = pytest.importorskip("torch")
    import minseg.ops.conv_transpose as module

    monkeypatch.setattr(module, "_use_plain_path", lambda: True)
    checked = 0
    for case, (s, p, d) in enumerate(GRID):
        k = KERNELS[case % len(KERNELS)]
        o = (max(s, d) - 1) if case % 2 else 0
        g = [1, 2][case % 2]
        x, w, b = _inputs(np.random.default_rng(case), 2, 2, 4, 4, 3, k, g, True)
        if min(conv_transpose_output_size(4, pair(k)[0], s, p, o, d), conv_transpose_output_size(3, pair(k)[1], s, p, o, d)) < 1:
            continue
        hyper = dict(stride=s, padding=p, output_padding=o, dilation=d, groups=g)
        y, _ = conv_transpose2d(x, w, b, **hyper)
        ty = torch.nn.functional.conv_transpose2d(torch.tensor(x), torch.tensor(w), torch.tensor(b), **hyper)
        np.testing.assert_allclose(y, ty.numpy(), rtol=1e-12, atol=1e-12)
        checked += 1
    assert checked >= 12


# --------------------------------------------------------------------------- many phases: one transpose

MANY_PHASE_CASES = [
    # N, C_in, C_out, H, W, k, stride, padding, output_padding, dilation, groups, bias
    (2, 3, 2, 2, 3, 16, 8, 4, 0, 1, 1, True),              # FCN-8s' x8 upsampling, small
    (1, 2, 4, 3, 2, (5, 7), (5, 4), (2, 3), (1, 3), 1, 2, False),
    (1, 2, 2, 2, 2, 3, (4, 5), (0, 1), (5, 0), (6, 2), 1, True),  # output_padding >= stride: rows past the phases
]


@pytest.mark.parametrize("few", [None, 0])
@pytest.mark.parametrize("case", MANY_PHASE_CASES + LOOP_CASES[:3])
def test_pixel_shuffle_by_one_transpose_matches_the_loops(monkeypatch, case, few):
    """More than ``_FEW_PHASES`` phases interleave through a padded image: every border pixel as the loops."""
    import minseg.ops.conv_transpose as module

    if few is not None:  # every case through the transpose
        monkeypatch.setattr(module, "_FEW_PHASES", few)
    _assert_matches_loops(case, case[3] * 10 + case[4])


def test_many_phases_match_torch(torch):
    for N, Ci, Co, H, W, k, s, p, o, d, g, bias in MANY_PHASE_CASES:
        x, w, b = _inputs(np.random.default_rng(5), N, Ci, Co, H, W, k, g, True)
        hyper = dict(stride=s, padding=p, output_padding=o, dilation=d, groups=g)
        y, cache = conv_transpose2d(x, w, b, **hyper)
        tx, tw, tb = (torch.tensor(a, requires_grad=True) for a in (x, w, b))
        ty = torch.nn.functional.conv_transpose2d(tx, tw, tb, **hyper)
        dy = np.random.default_rng(6).standard_normal(y.shape)
        ty.backward(torch.tensor(dy))
        np.testing.assert_allclose(y, ty.detach().numpy(), rtol=1e-12, atol=1e-12)
        for got, want in zip(conv_transpose2d_backward(dy, cache), (tx.grad, tw.grad, tb.grad)):
            np.testing.assert_allclose(got, want.numpy(), rtol=1e-12, atol=1e-12)

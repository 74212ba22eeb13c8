"""The convolution matrix: C @ vec(x) is conv2d, C.T is its backward and the transposed convolution."""
import itertools

import numpy as np
import pytest

from minseg import backend
from minseg.ops import (
    CooMatrix,
    conv2d,
    conv2d_backward,
    conv_transpose2d,
    convolution_matrix,
    convolution_matrix_coo,
)
from minseg.shapes import conv_output_size, pair

# kernel, stride, padding, dilation, groups: every stride x padding x dilation, kernels and groups rotate
GRID = [(k, s, p, d, g) for (s, p, d), k, g in zip(
    itertools.product([1, 2, 3], [0, 1, 2], [1, 2]),
    itertools.cycle([(3, 3), (2, 3), (1, 1), (4, 2), (3, 1)]),
    itertools.cycle([1, 2, 4]))]


def _case(case, H=7, W=6):
    k, s, p, d, g = GRID[case]
    rng = np.random.default_rng(case)
    w = rng.standard_normal((4, 4 // g, *pair(k)))
    x = rng.standard_normal((1, 4, H, W))
    return x, w, dict(stride=s, padding=p, dilation=d, groups=g)


def _fits(H, W, w, s, p, d):
    (sh, sw), (ph, pw), (dh, dw) = pair(s), pair(p), pair(d)
    return conv_output_size(H, w.shape[2], sh, ph, dh) >= 1 and conv_output_size(W, w.shape[3], sw, pw, dw) >= 1


@pytest.mark.parametrize("case", range(len(GRID)))
def test_matrix_times_input_is_conv2d(case):
    x, w, hyper = _case(case)
    if not _fits(7, 6, w, hyper["stride"], hyper["padding"], hyper["dilation"]):
        pytest.skip("kernel does not fit")
    y, _ = conv2d(x, w, **hyper)
    C = convolution_matrix(w, (7, 6), **hyper)
    assert C.shape == (y.size, x.size)
    np.testing.assert_allclose(C @ x.reshape(-1), y.reshape(-1), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("case", range(len(GRID)))
def test_transpose_is_conv2d_backward_and_conv_transpose2d(case):
    """conv2d's dx == C.T @ vec(dy) == conv_transpose2d(dy, w) with the output_padding that restores (H, W)."""
    x, w, hyper = _case(case)
    if not _fits(7, 6, w, hyper["stride"], hyper["padding"], hyper["dilation"]):
        pytest.skip("kernel does not fit")
    y, cache = conv2d(x, w, **hyper)
    dy = np.random.default_rng(1).standard_normal(y.shape)
    C = convolution_matrix(w, (4, 7, 6), **hyper)
    dx = conv2d_backward(dy, cache)[0]
    np.testing.assert_allclose(C.T @ dy.reshape(-1), dx.reshape(-1), rtol=1e-12, atol=1e-12)

    # the size the transposed convolution gives without output_padding, and what is missing to (7, 6)
    (sh, sw), (ph, pw), (dh, dw) = pair(hyper["stride"]), pair(hyper["padding"]), pair(hyper["dilation"])
    H0 = (y.shape[2] - 1) * sh - 2 * ph + dh * (w.shape[2] - 1) + 1
    W0 = (y.shape[3] - 1) * sw - 2 * pw + dw * (w.shape[3] - 1) + 1
    t, _ = conv_transpose2d(dy, w, output_padding=(7 - H0, 6 - W0), **hyper)
    assert t.shape == x.shape
    np.testing.assert_allclose(t.reshape(-1), C.T @ dy.reshape(-1), rtol=1e-12, atol=1e-12)


def test_coo_form_matches_dense_and_scipy():
    rng = np.random.default_rng(3)
    w = rng.standard_normal((6, 2, 3, 2))
    hyper = dict(stride=(2, 1), padding=(1, 2), dilation=(1, 2), groups=2)
    coo = convolution_matrix_coo(w, (4, 5, 6), **hyper)
    C = convolution_matrix(w, (5, 6), **hyper)
    assert isinstance(coo, CooMatrix) and coo.shape == C.shape
    assert coo.vals.size == np.count_nonzero(C)  # only the taps inside the image are stored
    np.testing.assert_array_equal(coo.to_dense(), C)
    v, u = rng.standard_normal(C.shape[1]), rng.standard_normal(C.shape[0])
    np.testing.assert_allclose(coo.matvec(v), C @ v, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(coo.rmatvec(u), C.T @ u, rtol=1e-12, atol=1e-12)
    pytest.importorskip("scipy")
    np.testing.assert_allclose(coo.to_scipy() @ v, C @ v, rtol=1e-12, atol=1e-12)


def test_coo_scales_to_sizes_where_dense_is_too_big():
    """A 16-channel 3x3 convolution on 3x96x96: the dense matrix would hold 4.0e9 entries, the COO form ~4e6."""
    rng = np.random.default_rng(4)
    w = rng.standard_normal((16, 3, 3, 3)).astype(np.float32)
    x = rng.standard_normal((1, 3, 96, 96)).astype(np.float32)
    coo = convolution_matrix_coo(w, (3, 96, 96), padding=1)
    assert coo.shape == (16 * 96 * 96, 3 * 96 * 96) and coo.vals.size < 16 * 96 * 96 * 27 + 1
    y, _ = conv2d(x, w, padding=1)
    np.testing.assert_allclose(coo.matvec(x.reshape(-1)), y.reshape(-1), rtol=1e-4, atol=1e-4)


def test_layout_of_a_small_matrix():
    """Row (o, i, j), column (c, h, w): a 2x2 kernel on a 3x3 image, stride 1, no padding."""
    w = np.arange(1.0, 5.0).reshape(1, 1, 2, 2)  # [[1, 2], [3, 4]]
    C = convolution_matrix(w, (3, 3))
    expected = np.array([
        [1, 2, 0, 3, 4, 0, 0, 0, 0],
        [0, 1, 2, 0, 3, 4, 0, 0, 0],
        [0, 0, 0, 1, 2, 0, 3, 4, 0],
        [0, 0, 0, 0, 1, 2, 0, 3, 4],
    ], dtype=float)
    np.testing.assert_array_equal(C, expected)


def test_same_code_on_every_backend(xp):
    rng = np.random.default_rng(5)
    w = rng.standard_normal((4, 2, 3, 3))
    C_ref = convolution_matrix(w, (5, 4), stride=2, padding=1, groups=2)
    C = convolution_matrix(xp.asarray(w), (5, 4), stride=2, padding=1, groups=2)
    assert backend.get_array_module(C) is xp
    np.testing.assert_array_equal(backend.to_numpy(C), C_ref)


@pytest.mark.parametrize("kwargs,exc,words", [
    (dict(w=np.zeros((2, 2, 3)), input_size=(5, 5)), ValueError, ["w", "(2, 2, 3)"]),
    (dict(w=np.zeros((2, 2, 3, 3), dtype=np.int64), input_size=(5, 5)), TypeError, ["w", "floating", "int64"]),
    (dict(w=np.zeros((2, 2, 3, 3)), input_size=(5,)), ValueError, ["input_size", "(H, W)", "(5,)"]),
    (dict(w=np.zeros((2, 2, 3, 3)), input_size=(3, 5, 5)), ValueError, ["input_size[0]", "= 2", "got 3"]),
    (dict(w=np.zeros((2, 2, 3, 3)), input_size=(2, 2)), ValueError, ["kernel", "(3, 3)", "(2, 2)"]),
    (dict(w=np.zeros((3, 1, 3, 3)), input_size=(5, 5), groups=2), ValueError, ["C_out", "groups=2", "3"]),
    (dict(w=np.zeros((2, 2, 3, 3)), input_size=(5, 5), stride=0), ValueError, ["stride", ">= 1"]),
])
def test_bad_inputs_raise_clear_errors(kwargs, exc, words):
    with pytest.raises(exc) as info:
        convolution_matrix(**kwargs)
    message = str(info.value)
    assert message.startswith("convolution_matrix: expected")
    for word in words:
        assert word in message, f"{word!r} missing from {message!r}"

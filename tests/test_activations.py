"""relu, softmax, log_softmax, dropout: gradient checks, PyTorch conformance, errors."""
import numpy as np
import pytest

from minseg.gradcheck import check_backward, rel_error
from minseg.ops.activations import (dropout, dropout_backward, log_softmax, log_softmax_backward, relu,
                                    relu_backward, softmax, softmax_backward)

from conftest import torch_or_skip


def _tie_free(shape, seed=0):
    """Values at least 0.01 away from 0, so central differences never straddle ReLU's kink."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(shape)
    return np.where(np.abs(x) < 0.01, 0.5, x)


def test_relu_forward_backward(xp):
    x = xp.asarray(_tie_free((2, 3, 4, 5)))
    y, cache = relu(x)
    assert float(xp.abs(y - xp.maximum(x, 0)).max()) == 0
    dy = xp.ones_like(x)
    assert float(xp.abs(relu_backward(dy, cache) - (x > 0)).max()) == 0
    assert check_backward(relu, relu_backward, {"x": x}).passed


def test_relu_nan_and_inf_match_torch():
    """PyTorch zeroes the gradient where y <= 0 only: at a NaN input the gradient flows through."""
    torch = torch_or_skip()
    x = np.array([np.nan, -1.0, 2.0, 0.0, -0.0, np.inf, -np.inf, 1e-300])
    dy = np.arange(1.0, 9.0)
    y, cache = relu(x)
    tx = torch.tensor(x, requires_grad=True)
    ty = torch.relu(tx)
    ty.backward(torch.tensor(dy))
    np.testing.assert_array_equal(y, ty.detach().numpy())
    np.testing.assert_array_equal(relu_backward(dy, cache), tx.grad.numpy())
    np.testing.assert_array_equal(relu_backward(dy, cache), [1.0, 0, 3.0, 0, 0, 6.0, 0, 8.0])


def test_relu_keeps_float32():
    y, cache = relu(np.ones((2, 2), np.float32))
    assert y.dtype == np.float32 and relu_backward(np.ones((2, 2), np.float32), cache).dtype == np.float32


@pytest.mark.parametrize("axis", [1, -1, 0])
def test_softmax_and_log_softmax_gradcheck(axis):
    x = np.random.default_rng(1).standard_normal((2, 4, 3, 3))
    assert check_backward(softmax, softmax_backward, {"x": x}, axis=axis).passed
    assert check_backward(log_softmax, log_softmax_backward, {"x": x}, axis=axis).passed


def test_softmax_is_stable_for_huge_logits():
    x = np.array([[1000.0, 0.0, -1000.0]])
    y, _ = softmax(x)
    ly, _ = log_softmax(x)
    assert np.all(np.isfinite(y)) and np.all(np.isfinite(ly)) and abs(y.sum() - 1) < 1e-12
    assert ly[0, 2] == pytest.approx(-2000.0)


def test_softmax_matches_torch():
    torch = torch_or_skip()
    x = np.random.default_rng(2).standard_normal((2, 5, 3, 4))
    assert rel_error(softmax(x)[0], torch.softmax(torch.from_numpy(x), 1).numpy()) < 1e-12
    assert rel_error(log_softmax(x)[0], torch.log_softmax(torch.from_numpy(x), 1).numpy()) < 1e-12


def test_dropout_mask_scale_and_identity():
    x = np.ones((100, 100))
    y, cache = dropout(x, 0.25, rng=np.random.default_rng(0))
    kept = y != 0
    assert np.allclose(y[kept], 1 / 0.75)
    assert abs(kept.mean() - 0.75) < 0.02
    np.testing.assert_array_equal(dropout_backward(np.ones_like(x), cache), y)
    y_eval, c_eval = dropout(x, 0.25, training=False)
    assert y_eval is x and dropout_backward(x, c_eval) is x
    assert dropout(np.ones(3, np.float32), 0.5, rng=np.random.default_rng(0))[0].dtype == np.float32


def test_dropout_gradcheck_with_fixed_mask():
    x = np.random.default_rng(3).standard_normal((2, 3, 4, 4))
    # a fresh generator with the same seed on every call: the numerical gradient sees one fixed mask
    fwd = lambda x: dropout(x, 0.3, rng=np.random.default_rng(5))  # noqa: E731
    assert check_backward(fwd, dropout_backward, {"x": x}).passed


def test_errors():
    with pytest.raises(TypeError, match="relu: expected x with a floating dtype"):
        relu(np.ones(3, dtype=np.int64))
    with pytest.raises(ValueError, match=r"dropout: expected p in \[0, 1\)"):
        dropout(np.ones(3), 1.0)
    with pytest.raises(ValueError, match="softmax: expected axis"):
        softmax(np.ones((2, 3)), axis=2)
    _, cache = relu(np.ones((2, 3)))
    with pytest.raises(ValueError, match=r"relu_backward: expected dy of shape \(2, 3\)"):
        relu_backward(np.ones((3, 2)), cache)


@pytest.mark.parametrize("shape", [(0, 3, 4, 4), (0, 3), (2, 0, 3)])
def test_empty_inputs_match_torch(shape):
    """An empty batch (N = 0), or an empty channel axis for softmax: empty results of the right shape."""
    torch = torch_or_skip()
    F = torch.nn.functional
    pairs = [(relu, relu_backward, F.relu), (softmax, softmax_backward, lambda t: F.softmax(t, 1)),
             (log_softmax, log_softmax_backward, lambda t: F.log_softmax(t, 1)),
             (lambda x: dropout(x, 0.5, rng=np.random.default_rng(0)), dropout_backward,
              lambda t: F.dropout(t, 0.5, True))]
    for forward, backward, theirs in pairs:
        x = np.zeros(shape)
        y, cache = forward(x)
        dx = backward(np.ones(y.shape), cache)
        tx = torch.tensor(x, requires_grad=True)
        ty = theirs(tx)
        ty.backward(torch.ones_like(ty))
        assert y.shape == tuple(ty.shape) == shape and y.dtype == x.dtype
        assert dx.shape == tuple(tx.grad.shape) == shape

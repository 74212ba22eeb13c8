"""linear: empty batches and empty feature axes, against PyTorch (float64)."""
import numpy as np
import pytest

from minseg.ops.linear import linear, linear_backward

from conftest import torch_or_skip


@pytest.mark.parametrize("x_shape,w_shape", [((0, 4), (3, 4)), ((2, 0), (3, 0)), ((2, 4), (0, 4)), ((0, 0), (0, 0))])
def test_empty_shapes_match_torch(x_shape, w_shape):
    """N = 0 gives an empty output; D_in = 0 gives the bias alone; D_out = 0 an (N, 0) output; gradients alike."""
    torch = torch_or_skip()
    rng = np.random.default_rng(0)
    x, w, b = rng.standard_normal(x_shape), rng.standard_normal(w_shape), rng.standard_normal(w_shape[0])
    y, cache = linear(x, w, b)
    dy = rng.standard_normal(y.shape)
    dx, dw, db = linear_backward(dy, cache)
    tx, tw, tb = (torch.tensor(a, requires_grad=True) for a in (x, w, b))
    ty = torch.nn.functional.linear(tx, tw, tb)
    ty.backward(torch.tensor(dy))
    np.testing.assert_array_equal(y, ty.detach().numpy())
    assert y.shape == (x_shape[0], w_shape[0])
    for ours, theirs in [(dx, tx.grad), (dw, tw.grad), (db, tb.grad)]:
        assert ours.shape == tuple(theirs.shape)
        np.testing.assert_allclose(ours, theirs.numpy(), rtol=1e-12, atol=1e-12)
    if x_shape[1] == 0 and x_shape[0] > 0:
        np.testing.assert_array_equal(y, np.broadcast_to(b, y.shape))   # no inputs: the bias alone

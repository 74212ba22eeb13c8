"""The loop versions in minseg.reference for the layers' math agree with the fast ops.

Loops for convolution, pooling and interpolation are tested in those ops' test
files; these are the loops of softmax, cross-entropy, batch norm, L2
normalisation and global average pooling.
"""
import numpy as np
import pytest

from minseg.ops import (
    batch_norm2d,
    batch_norm2d_backward,
    cross_entropy,
    cross_entropy_backward,
    global_avg_pool2d,
    l2_normalize,
    softmax,
)
from minseg.reference import (
    batch_norm2d_backward_loops,
    batch_norm2d_loops,
    cross_entropy_backward_loops,
    cross_entropy_loops,
    global_avg_pool2d_loops,
    l2_normalize_loops,
    softmax_loops,
)

RTOL = 1e-12


def _close(a, b, rtol=RTOL):
    np.testing.assert_allclose(a, b, rtol=rtol, atol=1e-14)


@pytest.mark.parametrize("axis", [0, 1, -1])
def test_softmax_loops(axis):
    x = np.random.default_rng(0).standard_normal((2, 3, 4, 5)) * 5
    _close(softmax(x, axis=axis)[0], softmax_loops(x, axis=axis))


def _ce_case(seed, ignore=True):
    rng = np.random.default_rng(seed)
    logits = rng.standard_normal((2, 4, 3, 5)) * 3
    target = rng.integers(0, 4, size=(2, 3, 5))
    if ignore:
        target[0, 0, :2] = 255
        target[1, 2, 4] = 255
    return logits, target


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("weighted", [False, True])
def test_cross_entropy_loops_forward_and_backward(reduction, weighted):
    logits, target = _ce_case(1)
    weight = np.array([0.5, 2.0, 1.0, 3.0]) if weighted else None
    loss, cache = cross_entropy(logits, target, weight=weight, ignore_index=255, reduction=reduction)
    _close(loss, cross_entropy_loops(logits, target, weight, 255, reduction))
    dloss = np.random.default_rng(2).standard_normal(target.shape) if reduction == "none" else np.array(0.7)
    dx = cross_entropy_backward(dloss, cache)
    _close(dx, cross_entropy_backward_loops(logits, target, weight, 255, reduction, dloss))
    # ignored pixels get no gradient, in both
    assert np.all(dx[0, :, 0, :2] == 0)


def test_cross_entropy_loops_all_ignored_is_nan_like_torch():
    logits, target = _ce_case(3)
    target[...] = 255
    assert np.isnan(cross_entropy_loops(logits, target, None, 255, "mean"))
    assert np.isnan(cross_entropy(logits, target, ignore_index=255)[0])


def test_batch_norm2d_loops_training_and_eval():
    rng = np.random.default_rng(4)
    x = rng.standard_normal((3, 2, 4, 5)) * 2 + 1
    gamma, beta = rng.standard_normal(2), rng.standard_normal(2)
    y, cache = batch_norm2d(x, gamma, beta, training=True)
    _close(y, batch_norm2d_loops(x, gamma, beta))
    mean, var = rng.standard_normal(2), rng.random(2) + 0.5
    y_eval, _ = batch_norm2d(x, gamma, beta, running_mean=mean, running_var=var, training=False)
    _close(y_eval, batch_norm2d_loops(x, gamma, beta, mean=mean, var=var))


def test_batch_norm2d_backward_loops():
    rng = np.random.default_rng(5)
    x = rng.standard_normal((2, 3, 3, 2))
    gamma, beta = rng.standard_normal(3), rng.standard_normal(3)
    _, cache = batch_norm2d(x, gamma, beta, training=True)
    dy = rng.standard_normal(x.shape)
    dx, dgamma, dbeta = batch_norm2d_backward(dy, cache)
    dx_l, dgamma_l, dbeta_l = batch_norm2d_backward_loops(dy, x, gamma)
    _close(dx, dx_l)
    _close(dgamma, dgamma_l)
    _close(dbeta, dbeta_l)


def test_l2_normalize_loops_including_a_zero_pixel():
    x = np.random.default_rng(6).standard_normal((2, 3, 4, 4))
    x[1, :, 2, 3] = 0.0  # the eps clamp
    _close(l2_normalize(x)[0], l2_normalize_loops(x))


def test_global_avg_pool2d_loops():
    x = np.random.default_rng(7).standard_normal((2, 3, 5, 7))
    _close(global_avg_pool2d(x)[0], global_avg_pool2d_loops(x))

"""Per-pixel softmax cross-entropy: gradient checks, PyTorch conformance (ignore_index, weights), errors."""
import numpy as np
import pytest

from minseg.gradcheck import check_backward, rel_error
from minseg.ops.losses import cross_entropy, cross_entropy_backward

from conftest import torch_or_skip


def _problem(N=2, C=4, H=5, W=3, seed=0, ignore=255, frac_ignored=0.2):
    rng = np.random.default_rng(seed)
    logits = rng.standard_normal((N, C, H, W)) * 2
    target = rng.integers(0, C, size=(N, H, W))
    target[rng.random((N, H, W)) < frac_ignored] = ignore
    return logits, target


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("weighted", [False, True])
def test_gradcheck(reduction, weighted, xp):
    logits, target = _problem()
    weight = xp.asarray([0.5, 2.0, 1.0, 3.0]) if weighted else None
    report = check_backward(cross_entropy, cross_entropy_backward, {"logits": xp.asarray(logits)},
                            target=xp.asarray(target), weight=weight, ignore_index=255, reduction=reduction)
    assert report.passed, report


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("ignore", [255, -100])
def test_matches_torch_forward_and_backward(reduction, weighted, ignore):
    torch = torch_or_skip()
    logits, target = _problem(seed=1, ignore=ignore)
    weight = np.array([0.5, 2.0, 1.0, 3.0]) if weighted else None
    loss, cache = cross_entropy(logits, target, weight=weight, ignore_index=ignore, reduction=reduction)
    dloss = np.random.default_rng(2).standard_normal(loss.shape) if reduction == "none" else 1.0
    dlogits = cross_entropy_backward(dloss, cache)

    tl = torch.from_numpy(logits).requires_grad_(True)
    tw = None if weight is None else torch.from_numpy(weight)
    tloss = torch.nn.functional.cross_entropy(tl, torch.from_numpy(target), weight=tw, ignore_index=ignore,
                                              reduction=reduction)
    tloss.backward(torch.as_tensor(dloss, dtype=torch.float64))
    assert rel_error(loss, tloss.detach().numpy()) < 1e-12
    assert np.abs(dlogits - tl.grad.numpy()).max() < 1e-14


def test_classification_shape_and_no_ignore():
    torch = torch_or_skip()
    rng = np.random.default_rng(3)
    logits, target = rng.standard_normal((6, 10)), rng.integers(0, 10, 6)
    loss, _ = cross_entropy(logits, target)
    assert rel_error(loss, torch.nn.functional.cross_entropy(torch.from_numpy(logits),
                                                             torch.from_numpy(target)).numpy()) < 1e-12


def test_stable_for_huge_logits_and_float32():
    logits = np.array([[[[1e4]], [[-1e4]]]], dtype=np.float32)  # (1, 2, 1, 1)
    loss, cache = cross_entropy(logits, np.array([[[1]]]))
    assert loss.dtype == np.float32 and loss == pytest.approx(2e4)
    d = cross_entropy_backward(1.0, cache)
    assert d.dtype == np.float32 and np.allclose(d.ravel(), [1, -1])


def test_ignored_pixels_get_zero_gradient_and_all_ignored_is_nan():
    logits, target = _problem(frac_ignored=0.5)
    _, cache = cross_entropy(logits, target, ignore_index=255)
    d = cross_entropy_backward(1.0, cache)
    assert np.all(d.transpose(0, 2, 3, 1)[target == 255] == 0)
    with np.errstate(invalid="ignore"):
        loss, cache = cross_entropy(logits, np.full_like(target, 255), ignore_index=255)
        assert np.isnan(loss)  # 0 / 0, as in PyTorch


def test_uniform_logits_give_log_c():
    loss, _ = cross_entropy(np.zeros((1, 5, 4, 4)), np.zeros((1, 4, 4), dtype=np.int64))
    assert loss == pytest.approx(np.log(5))


def test_errors():
    logits, target = _problem()
    with pytest.raises(ValueError, match=r"cross_entropy: expected target of shape \(2, 5, 3\)"):
        cross_entropy(logits, target[:, :4])
    with pytest.raises(TypeError, match="expected target with an integer dtype"):
        cross_entropy(logits, target.astype(np.float64))
    with pytest.raises(ValueError, match=r"expected target values in \[0, 4\) or ignore_index=255, got 7"):
        bad = target.copy()
        bad[0, 0, 0] = 7
        cross_entropy(logits, bad, ignore_index=255)
    with pytest.raises(ValueError, match=r"expected weight of shape \(4,\)"):
        cross_entropy(logits, target, weight=np.ones(3), ignore_index=255)
    with pytest.raises(ValueError, match="expected reduction"):
        cross_entropy(logits, target, reduction="avg", ignore_index=255)
    with pytest.raises(TypeError, match="expected logits with a floating dtype"):
        cross_entropy(logits.astype(np.int32), target)


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("shape", [(0, 3, 4, 4), (0, 3), (2, 3, 0, 4)])
def test_zero_pixels_match_torch(reduction, weighted, shape):
    """An empty batch (or an empty map): mean is 0 / 0 = NaN, sum is 0, none is empty; gradients empty."""
    torch = torch_or_skip()
    logits = np.zeros(shape)
    target = np.zeros((shape[0],) + shape[2:], dtype=np.int64)
    weight = np.array([0.5, 2.0, 1.0]) if weighted else None
    loss, cache = cross_entropy(logits, target, weight=weight, reduction=reduction)
    dloss = np.ones(loss.shape) if reduction == "none" else 1.0
    d = cross_entropy_backward(dloss, cache)
    tl = torch.tensor(logits, requires_grad=True)
    t_loss = torch.nn.functional.cross_entropy(tl, torch.tensor(target), reduction=reduction,
                                               weight=None if weight is None else torch.tensor(weight))
    t_loss.backward(torch.ones_like(t_loss))
    assert loss.shape == tuple(t_loss.shape) and loss.dtype == logits.dtype
    np.testing.assert_array_equal(loss, t_loss.detach().numpy())     # NaN == NaN here: the same NaN
    if reduction == "mean":
        assert np.isnan(loss)
    elif reduction == "sum":
        assert loss == 0
    assert d.shape == tuple(tl.grad.shape) == shape


def test_no_classes_is_refused():
    with pytest.raises(ValueError, match=r"cross_entropy: expected logits with at least one class \(C >= 1\), "
                                         r"got shape \(2, 0, 3\)"):
        cross_entropy(np.zeros((2, 0, 3)), np.zeros((2, 3), dtype=np.int64))

"""The cross_entropy_backward exercise: minseg passes, each named mistake is named, blanks and shapes are clear."""
import numpy as np
import pytest

from minseg import exercises
from minseg.ops import cross_entropy, cross_entropy_backward

NAME = "cross_entropy_backward"


def _onehot(cache):
    C = cache.probs.shape[1]
    return cache.target[:, None] == np.arange(C).reshape(1, C, 1, 1)   # (N, C, H, W)


def _learner(dloss, cache, *, den="cache", mask="weights", sign=1.0, use_dloss=True):
    """A learner's version written from the formula, with switches for the classic slips."""
    probs, t, pw, denominator, reduction = cache
    g = sign * (probs - _onehot(cache))                                  # (N, C, H, W)
    if mask == "weights":
        g = g * pw[:, None]
    elif mask == "zero_one":
        g = g * (pw != 0)[:, None]
    if reduction == "mean" or den == "always":
        if den in ("cache", "always"):
            d = denominator if reduction == "mean" else float(pw.sum())
        elif den == "all":
            d = pw.size
        elif den == "count":
            d = float((pw != 0).sum())
        with np.errstate(invalid="ignore", divide="ignore"):   # "always" with nothing labelled: 0 / 0
            g = g / d
    if use_dloss:
        g = g * (np.asarray(dloss)[:, None] if reduction == "none" else dloss)
    return g


def test_registered_first():
    assert exercises.names()[0] == NAME
    assert exercises.names().index(NAME) < exercises.names().index("im2col")


def test_minseg_passes():
    r = exercises.check(NAME, cross_entropy_backward)
    assert r.passed, str(r)
    assert r.diagnosis is None and "PASS" in str(r)


def test_a_learner_written_from_the_formula_passes():
    r = exercises.check(NAME, _learner)
    assert r.passed, str(r)


def test_the_grid_covers_the_brief():
    cases = exercises.get(NAME).make_cases()
    caches = [c.args[1] for c in cases]
    assert {c.reduction for c in caches} == {"mean", "sum", "none"}
    assert any(c.probs.shape[0] > 1 for c in caches)
    assert any(c.probs.shape[2] != c.probs.shape[3] for c in caches)
    assert any(((c.pixel_weight != 0) & (c.pixel_weight != 1)).any() for c in caches)   # class weights
    assert any((c.pixel_weight == 0).any() for c in caches)                             # ignored pixels
    assert any(((c.pixel_weight == 0).all(axis=(1, 2))).any() and (c.pixel_weight != 0).any()
               for c in caches)                                                         # a whole image ignored
    assert all(not np.allclose(c.args[0], 1.0) for c in cases)                          # dloss is not 1
    assert all(c.numeric is not None for c in cases)


@pytest.mark.parametrize("switches, title", [
    (dict(den="all"), "ignored pixels counted in the mean (divided by all N*H*W pixels)"),
    (dict(mask="none"), "gradient not zero at ignored pixels"),
    (dict(den="count"),
     "mean over pixels with weights ignored in the denominator (divided by the count of labelled pixels)"),
    (dict(mask="zero_one"), "class weights left out of the gradient (only the ignore mask applied)"),
    (dict(sign=-1.0), "softmax minus one-hot with the sign flipped (onehot - probs)"),
    (dict(use_dloss=False), "dloss not multiplied in"),
    (dict(den="always"), "divided by the sum of the pixel weights for every reduction, not only for 'mean'"),
])
def test_each_mistake_is_named(switches, title):
    r = exercises.check(NAME, lambda dloss, cache: _learner(dloss, cache, **switches))
    assert not r.passed
    assert r.diagnosis == title, str(r)
    assert "why:" in str(r)


def test_every_registered_mistake_fails_and_names_itself():
    ex = exercises.get(NAME)
    assert len(ex.mistakes) >= 5
    for m in ex.mistakes:
        r = exercises.check(NAME, m.fn)
        assert not r.passed and r.mistake == m.key, (m.key, str(r))


def test_ignored_pixels_get_exactly_zero():
    logits = np.random.default_rng(0).standard_normal((2, 3, 4, 5))
    target = np.random.default_rng(1).integers(0, 3, size=(2, 4, 5))
    target[0] = 255
    target[1, 2, 3] = 255
    _, cache = cross_entropy(logits, target, ignore_index=255)
    d = cross_entropy_backward(2.0, cache)
    assert np.all(d[0] == 0) and np.all(d[1, :, 2, 3] == 0)
    bad = exercises.check(NAME, lambda dloss, cache: _learner(dloss, cache, mask="none"))
    assert "sample" in str(bad) or "where" in str(bad)


def test_blank_says_not_implemented():
    def cross_entropy_backward_mine(dloss, cache):
        raise NotImplementedError
    r = exercises.check(NAME, cross_entropy_backward_mine)
    assert not r.passed and r.diagnosis == "not implemented yet"
    assert "to do: cross_entropy_backward(dloss, cache)" in str(r)


def test_wrong_shape_has_a_one_line_message():
    r = exercises.check(NAME, lambda dloss, cache: cross_entropy_backward(dloss, cache).transpose(0, 2, 3, 1))
    assert r.diagnosis == "expected dlogits of shape (2, 3, 4, 5), got shape (2, 4, 5, 3)"
    assert "\n" not in r.diagnosis


def test_missing_class_axis_is_a_shape_message():
    r = exercises.check(NAME, lambda dloss, cache: cross_entropy_backward(dloss, cache).sum(axis=1))
    assert r.diagnosis == "expected dlogits of shape (2, 3, 4, 5), got shape (2, 4, 5)"


def test_wrong_dtype():
    r = exercises.check(NAME, lambda dloss, cache: cross_entropy_backward(dloss, cache).astype(np.float32))
    assert r.diagnosis == "expected dlogits with dtype float64 (the input's), got dtype float32"


def test_an_exception_names_the_case():
    def mine(dloss, cache):
        if cache.reduction == "none":
            raise IndexError("too many indices")
        return cross_entropy_backward(dloss, cache)
    r = exercises.check(NAME, mine)
    assert not r.passed and r.diagnosis.startswith("IndexError: too many indices (line")
    assert "reduction='none'" in r.diagnosis


def test_the_graded_answers_are_pytorchs():
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    from minseg.exercises.losses import _GRID  # noqa: PLC0415
    for case, spec in zip(exercises.get(NAME).make_cases(), _GRID):
        dloss, cache = case.args
        ignore_index, reduction = spec[4], spec[1]
        # the case's logits and target, rebuilt from the cache: logits = log(probs) up to a per-pixel constant
        logits = torch.tensor(np.log(cache.probs), requires_grad=True)
        target = np.where(cache.pixel_weight == 0, ignore_index, cache.target)
        weight = None
        if spec[2]:
            w = np.ones(cache.probs.shape[1])
            for c in range(cache.probs.shape[1]):
                on = (cache.target == c) & (cache.pixel_weight != 0)
                if on.any():
                    w[c] = cache.pixel_weight[on][0]
            weight = torch.tensor(w)
        loss = F.cross_entropy(logits, torch.tensor(target), weight=weight, ignore_index=ignore_index,
                               reduction=reduction)
        loss.backward(torch.as_tensor(np.asarray(dloss)))
        expected = cross_entropy_backward(dloss, cache)
        np.testing.assert_allclose(logits.grad.numpy(), expected, rtol=1e-12, atol=1e-15, err_msg=case.label)

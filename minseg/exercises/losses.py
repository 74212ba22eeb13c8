"""Exercise of lesson 01: cross_entropy_backward, the gradient of the per-pixel softmax cross-entropy.

The learner gets ``(dloss, cache)`` with the cache made by minseg's
``cross_entropy`` (``probs, target, pixel_weight, denominator, reduction``)
and returns ``dlogits = dloss * pixel_weight * (probs - onehot(target)) / denominator``.
The cases cover batch > 1, non-square H x W, ignored pixels (a whole image
ignored, and every pixel ignored with "sum"), class weights, each reduction
and an upstream ``dloss`` that is not 1.
"""
from __future__ import annotations

import numpy as np

from ..ops import cross_entropy, cross_entropy_backward
from .core import Output, backward_case, exercise, shape_text

IGNORE = 255

# (N, C, H, W), reduction, class weights?, which pixels are ignored, ignore_index
_GRID = [
    ((2, 3, 4, 5), "mean", False, "some", IGNORE),
    ((2, 4, 3, 6), "mean", True, "some", IGNORE),
    ((3, 3, 5, 4), "mean", False, "image 1", -100),     # a whole image ignored: the mean is over the others
    ((2, 3, 4, 5), "mean", True, "image 0", IGNORE),
    ((2, 3, 4, 5), "sum", True, "some", IGNORE),
    ((2, 3, 3, 4), "sum", False, "all", IGNORE),         # nothing labelled: a zero gradient
    ((2, 3, 3, 4), "none", False, "some", IGNORE),
    ((2, 5, 4, 3), "none", True, "some", IGNORE),
]


def _target(rng, N, C, H, W, ignored, ignore_index):
    """Random class ids (N, H, W) with some pixels, one image, or all pixels set to ``ignore_index``."""
    t = rng.integers(0, C, size=(N, H, W))
    if ignored == "some":
        t[rng.random((N, H, W)) < 0.25] = ignore_index
        t[0, 0, 0] = ignore_index                        # at least one ignored pixel in every such case
    elif ignored == "all":
        t[...] = ignore_index
    else:                                                # "image k"
        t[int(ignored.split()[1])] = ignore_index
    return t


def _cases(rng):
    cases = []
    for (N, C, H, W), reduction, weighted, ignored, ignore_index in _GRID:
        logits = rng.standard_normal((N, C, H, W)) * 2
        target = _target(rng, N, C, H, W, ignored, ignore_index)
        hyper = {"ignore_index": ignore_index, "reduction": reduction}
        parts = [f"logits {shape_text(logits)}", f"reduction={reduction!r}"]
        if weighted:
            hyper["weight"] = rng.uniform(0.5, 3.0, size=C)
            parts.append("class weights")
        parts.append(f"ignored: {ignored}" + (f" (ignore_index={ignore_index})" if ignore_index != IGNORE else ""))
        cases.append(backward_case(cross_entropy, {"logits": logits, "target": target}, ("logits",), rng=rng,
                                   dy_scale=1.5, label="cross_entropy(" + ", ".join(parts) + ")", **hyper))
    return cases


ex_cross_entropy_backward = exercise(
    "cross_entropy_backward", reference=cross_entropy_backward, cases=_cases,
    outputs=[Output("dlogits", axes=("sample", "class", "row", "column"))],
    spec="cross_entropy_backward(dloss, cache) -> dlogits (N, C, H, W) = "
         "dloss * cache.pixel_weight * (cache.probs - onehot(cache.target)) / cache.denominator")


def _softmax_minus_onehot(cache):
    """``probs - onehot(target)``, shape (N, C, H, W)."""
    C = cache.probs.shape[1]
    onehot = cache.target[:, None] == np.arange(C).reshape(1, C, 1, 1)  # (N, C, H, W)
    return cache.probs - onehot


def _scale(dloss, cache):
    """``dloss`` as an array that broadcasts over (N, H, W)."""
    return np.asarray(dloss, dtype=cache.probs.dtype)


def _weighted(cache) -> bool:
    """Whether the forward had class weights (pixel weights other than 0 and 1)."""
    pw = cache.pixel_weight
    return bool(((pw != 0) & (pw != 1)).any())


@ex_cross_entropy_backward.mistake(
    "ignored pixels counted in the mean (divided by all N*H*W pixels)",
    hint="for reduction='mean' the loss is the mean over the labelled pixels only: divide by "
         "cache.denominator = sum of the pixel weights (the number of non-ignored pixels without class weights)")
def _mean_over_all_pixels(dloss, cache):
    if cache.reduction != "mean":
        return cross_entropy_backward(dloss, cache)
    d = _scale(dloss, cache)
    return (d * cache.pixel_weight / cache.pixel_weight.size)[:, None] * _softmax_minus_onehot(cache)


@ex_cross_entropy_backward.mistake(
    "gradient not zero at ignored pixels",
    hint="an ignored pixel is not part of the loss, so its gradient is exactly 0: multiply by "
         "cache.pixel_weight, which is 0 there (cache.target holds class 0 at ignored pixels only as a placeholder)")
def _ignored_not_zeroed(dloss, cache):
    if _weighted(cache):
        raise ValueError("this mistake is only defined without class weights")
    d = _scale(dloss, cache)
    den = cache.denominator if cache.denominator != 0 else 1.0
    return (d / den * np.ones_like(cache.pixel_weight))[:, None] * _softmax_minus_onehot(cache)


@ex_cross_entropy_backward.mistake(
    "mean over pixels with weights ignored in the denominator (divided by the count of labelled pixels)",
    hint="with class weights PyTorch's mean is sum_i w[t_i] loss_i / sum_i w[t_i]: divide by the sum of the "
         "pixel weights (cache.denominator), not by the number of labelled pixels")
def _count_not_weight_sum(dloss, cache):
    if cache.reduction != "mean":
        return cross_entropy_backward(dloss, cache)
    d = _scale(dloss, cache)
    count = float((cache.pixel_weight != 0).sum())
    return (d * cache.pixel_weight / count)[:, None] * _softmax_minus_onehot(cache)


@ex_cross_entropy_backward.mistake(
    "class weights left out of the gradient (only the ignore mask applied)",
    hint="pixel i's term in the loss is w[t_i] * loss_i, so its gradient is multiplied by w[t_i]: "
         "use cache.pixel_weight itself, not just whether it is 0")
def _weights_left_out(dloss, cache):
    d = _scale(dloss, cache)
    mask = (cache.pixel_weight != 0).astype(cache.probs.dtype)
    den = cache.denominator if cache.denominator != 0 else 1.0
    return (d * mask / den)[:, None] * _softmax_minus_onehot(cache)


@ex_cross_entropy_backward.mistake(
    "softmax minus one-hot with the sign flipped (onehot - probs)",
    hint="d(-log p_t)/dz_c = p_c - [c == t]: raising the true class's logit lowers the loss, so its "
         "gradient is negative")
def _sign_flipped(dloss, cache):
    return -cross_entropy_backward(dloss, cache)


@ex_cross_entropy_backward.mistake(
    "dloss not multiplied in",
    hint="the chain rule: dlogits = dloss * dL/dlogits; dloss is a scalar for 'mean' and 'sum' and an "
         "(N, H, W) map for 'none'")
def _dloss_ignored(dloss, cache):
    ones = np.ones(cache.pixel_weight.shape) if cache.reduction == "none" else 1.0
    return cross_entropy_backward(ones, cache)


@ex_cross_entropy_backward.mistake(
    "divided by the sum of the pixel weights for every reduction, not only for 'mean'",
    hint="only reduction='mean' divides; 'sum' and 'none' do not: use cache.denominator, which is 1 for them")
def _always_mean(dloss, cache):
    if cache.reduction == "mean":
        return cross_entropy_backward(dloss, cache)
    den = float(cache.pixel_weight.sum())
    if den == 0:
        raise ValueError("no labelled pixel: nothing to divide by")
    return cross_entropy_backward(dloss, cache) / den

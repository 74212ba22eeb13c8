"""Per-pixel softmax cross-entropy with ``ignore_index`` and class weights, PyTorch's ``F.cross_entropy``.

For logits ``z`` of shape (N, C, H, W) and integer targets ``t`` of shape
(N, H, W), every pixel ``i`` is its own C-way classification:

    p_i    = softmax(z_i)                        over the C channels
    loss_i = -w[t_i] * log p_i[t_i]              = w[t_i] * (logsumexp(z_i) - z_i[t_i])

Pixels whose target equals ``ignore_index`` contribute nothing. With
``reduction="mean"`` (the default) the result is PyTorch's *weighted* mean

    L = sum_i w[t_i] loss_i / sum_i w[t_i]       over pixels i that are not ignored

(with no weights, ``w = 1``: the plain mean over the valid pixels). Its
gradient is the famous ``softmax - one_hot``:

    dL/dz_i = w[t_i] (p_i - onehot(t_i)) / sum_j w[t_j]        (0 for ignored pixels)

``log p`` is computed as ``z - max - log(sum(exp(z - max)))``, never as
``log(softmax(z))``, so large logits neither overflow nor give ``log(0)``.

When *every* pixel is ignored the mean is 0 / 0: NaN, exactly as in PyTorch.

Shapes other than NCHW work too: logits (N, C) with targets (N,) (plain
classification) or (N, C, d1, d2, ...) with targets (N, d1, d2, ...).

References
----------
Long, Shelhamer & Darrell, "Fully Convolutional Networks for Semantic Segmentation", CVPR 2015
(the per-pixel multinomial logistic loss); PyTorch ``torch.nn.CrossEntropyLoss`` for the
``ignore_index`` / ``weight`` semantics.
"""
from __future__ import annotations

import numbers
from typing import NamedTuple

from ..backend import get_array_module
from ..shapes import check_array, check_float

__all__ = ["cross_entropy", "cross_entropy_backward", "CrossEntropyCache"]

_REDUCTIONS = ("mean", "sum", "none")


class CrossEntropyCache(NamedTuple):
    """What ``cross_entropy_backward`` needs.

    Fields
    ------
    probs : (N, C, ...) softmax of the logits
    target : (N, ...) int, ignored pixels replaced by class 0
    pixel_weight : (N, ...) ``w[t_i]``, 0 for ignored pixels (dtype of the logits)
    denominator : float, ``sum(pixel_weight)`` for "mean", 1 otherwise
    reduction : str
    """

    probs: object
    target: object
    pixel_weight: object
    denominator: float
    reduction: str


def _check_args(op, logits, target, weight, ignore_index, reduction):
    check_array(logits, "logits", op)
    check_float(logits, "logits", op)
    check_array(target, "target", op)
    get_array_module(logits, target, weight)  # numpy / cupy mix -> TypeError
    if logits.ndim < 2:
        raise ValueError(f"{op}: expected logits of shape (N, C, ...) with at least 2 dimensions, "
                         f"got shape {tuple(logits.shape)}")
    N, C = logits.shape[:2]
    if C < 1:
        raise ValueError(f"{op}: expected logits with at least one class (C >= 1), got shape {tuple(logits.shape)}")
    expected = (N,) + tuple(logits.shape[2:])
    if tuple(target.shape) != expected:
        raise ValueError(f"{op}: expected target of shape {expected} (logits {tuple(logits.shape)} "
                         f"without the class axis), got shape {tuple(target.shape)}")
    if target.dtype.kind not in "iu":
        raise TypeError(f"{op}: expected target with an integer dtype (class ids), got dtype {target.dtype}")
    if not isinstance(ignore_index, numbers.Integral) or isinstance(ignore_index, bool):
        raise TypeError(f"{op}: expected ignore_index to be an int, got {ignore_index!r}")
    if reduction not in _REDUCTIONS:
        raise ValueError(f"{op}: expected reduction in {_REDUCTIONS}, got {reduction!r}")
    if weight is not None:
        check_array(weight, "weight", op)
        if tuple(weight.shape) != (C,):
            raise ValueError(f"{op}: expected weight of shape ({C},) (one per class), got shape {tuple(weight.shape)}")


def cross_entropy(logits, target, *, weight=None, ignore_index: int = -100, reduction: str = "mean"):
    """Softmax cross-entropy per pixel, reduced over the non-ignored pixels.

    Parameters
    ----------
    logits : ndarray, shape (N, C, H, W) (or (N, C) / (N, C, d1, ...)), float
        Unnormalised class scores.
    target : ndarray of int, shape (N, H, W)
        Class ids in ``[0, C)``, or ``ignore_index``.
    weight : ndarray, shape (C,), optional
        Per-class weights ``w`` (e.g. inverse class frequency); 1 by default.
    ignore_index : int
        Target value whose pixels are skipped (PyTorch's default -100; minseg's
        datasets mark void pixels with 255).
    reduction : {"mean", "sum", "none"}
        "mean": ``sum(w[t_i] loss_i) / sum(w[t_i])``; "sum": ``sum(w[t_i] loss_i)``;
        "none": the (N, H, W) map of ``w[t_i] loss_i`` (0 at ignored pixels).

    Returns
    -------
    loss : ndarray
        0-d for "mean" / "sum", shape (N, H, W) for "none"; dtype of the logits.
    cache : CrossEntropyCache
        ``(probs, target, pixel_weight, denominator, reduction)``.

    Raises
    ------
    ValueError
        Shapes that do not match, a target outside ``[0, C)`` that is not
        ``ignore_index``, an unknown reduction.
    TypeError
        Non-float logits, non-integer targets.

    See Also
    --------
    minseg.reference.cross_entropy_loops : the same, by the definition, with loops.
    """
    op = "cross_entropy"
    _check_args(op, logits, target, weight, ignore_index, reduction)
    xp = get_array_module(logits, target, weight)
    C = logits.shape[1]
    valid = target != ignore_index  # (N, ...)
    t = xp.where(valid, target, 0).astype(xp.int64)  # (N, ...)
    if t.size and (int(t.min()) < 0 or int(t.max()) >= C):
        bad = t[(t < 0) | (t >= C)]
        raise ValueError(f"{op}: expected target values in [0, {C}) or ignore_index={ignore_index}, "
                         f"got {int(bad[0])}")

    z = logits - logits.max(axis=1, keepdims=True)  # (N, C, ...), max is 0
    e = xp.exp(z)
    s = e.sum(axis=1, keepdims=True)  # (N, 1, ...)
    z_t = xp.take_along_axis(z, t[:, None], axis=1)[:, 0]  # (N, ...) shifted logit of the true class
    nll = xp.log(s[:, 0]) - z_t  # (N, ...) -log p[t]
    probs = e / s  # (N, C, ...)

    if weight is None:
        pw = valid.astype(logits.dtype)  # (N, ...)
    else:
        pw = weight.astype(logits.dtype)[t] * valid  # (N, ...)
    per_pixel = nll * pw  # 0 where ignored
    if reduction == "none":
        return per_pixel, CrossEntropyCache(probs, t, pw, 1.0, reduction)
    total = per_pixel.sum()
    if reduction == "sum":
        return total, CrossEntropyCache(probs, t, pw, 1.0, reduction)
    den = pw.sum()
    loss = total / den if float(den) != 0 else total * xp.asarray(float("nan"), dtype=logits.dtype)
    return loss.astype(logits.dtype), CrossEntropyCache(probs, t, pw, float(den), reduction)


def cross_entropy_backward(dloss, cache: CrossEntropyCache):
    """Gradient of ``cross_entropy`` with respect to the logits.

    Parameters
    ----------
    dloss : float, 0-d ndarray, or ndarray of shape (N, H, W) for reduction "none"
        Upstream gradient (1.0 when the loss is the final objective).
    cache : CrossEntropyCache

    Returns
    -------
    dlogits : ndarray, shape (N, C, H, W), dtype of the logits
        ``dloss * pixel_weight * (probs - onehot(target)) / denominator``;
        exactly 0 at ignored pixels.

    See Also
    --------
    minseg.reference.cross_entropy_backward_loops : the same gradient, pixel by pixel.
    """
    op = "cross_entropy_backward"
    probs, t, pw, den, reduction = cache
    xp = get_array_module(probs)
    if reduction == "none":
        check_array(dloss, "dloss", op)
        if tuple(dloss.shape) != tuple(pw.shape):
            raise ValueError(f"{op}: expected dloss of shape {tuple(pw.shape)} for reduction='none', "
                             f"got shape {tuple(dloss.shape)}")
        scale = pw * dloss  # (N, ...)
    else:
        if getattr(dloss, "ndim", 0) != 0 and getattr(dloss, "size", 1) != 1:
            raise ValueError(f"{op}: expected a scalar dloss for reduction={reduction!r}, "
                             f"got shape {tuple(dloss.shape)}")
        d = dloss if getattr(dloss, "ndim", None) is None else dloss.reshape(())
        scale = pw * (d / den if den != 0 else d * float("nan"))  # (N, ...)
    C = probs.shape[1]
    classes = xp.arange(C).reshape((1, C) + (1,) * (probs.ndim - 2))  # (1, C, 1, 1)
    dlogits = probs - (t[:, None] == classes)  # (N, C, ...) softmax - onehot
    dlogits *= scale.astype(probs.dtype, copy=False)[:, None]
    return dlogits

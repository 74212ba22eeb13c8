"""Semantic segmentation metrics: confusion matrix -> pixel accuracy, class accuracy, IoU, mIoU, fwIoU.

Everything comes from one ``(K, K)`` confusion matrix ``cm`` accumulated over
the *whole dataset* (not a mean of per-image scores). Rows are the target
(true) class, columns the predicted class: ``cm[i, j]`` counts pixels of
class ``i`` predicted as ``j``. With ``n_ij = cm[i, j]``,
``t_i = sum_j n_ij`` (target pixels of class i) and
``p_j = sum_i n_ij`` (predicted pixels of class j)::

    pixel accuracy       sum_i n_ii / sum_i t_i
    class accuracy       acc_i = n_ii / t_i                      (NaN when t_i = 0)
    mean class accuracy  mean of acc_i over classes with t_i > 0
    IoU                  IoU_i = n_ii / (t_i + p_i - n_ii)
                               = TP / (TP + FP + FN)             (NaN when t_i = p_i = 0)
    mIoU                 mean of IoU_i over classes whose IoU is not NaN
    fwIoU                sum_i t_i IoU_i / sum_i t_i

A class absent from both prediction and target has no IoU: it is NaN and left
out of the mean. A class absent from the target but predicted somewhere has
IoU 0 and *is* in the mean. All scores are fractions in [0, 1]; the tables
print them x 100.

Panoptic quality (PQ = SQ x RQ), its explanation per segment, panoptic id
encoding and connected components live in :mod:`minseg.panoptic`.

References
----------
J. Long, E. Shelhamer, T. Darrell, "Fully Convolutional Networks for Semantic
Segmentation", CVPR 2015, Sec. 5 (pixel acc., mean acc., mean IU, f.w. IU).
"""
from __future__ import annotations

import numpy as np

from ._checks import check_labels, check_same_shape, pct, show_values
from .backend import get_array_module, to_numpy
from .shapes import _is_int, check_array

__all__ = [
    "confusion_matrix",
    "pixel_accuracy",
    "class_accuracy",
    "mean_class_accuracy",
    "iou_per_class",
    "mean_iou",
    "fw_iou",
    "SegmentationMetrics",
]


# --------------------------------------------------------------------------- helpers

def _safe_divide(num, den):
    """``num / den`` elementwise, NaN where ``den == 0`` (no warning)."""
    xp = get_array_module(num, den)
    num = num.astype(xp.float64)
    den = den.astype(xp.float64)
    return xp.where(den > 0, num / xp.where(den > 0, den, 1.0), xp.nan)


def _nanmean(v) -> float:
    """Mean of the non-NaN entries, NaN when there are none (no warning)."""
    xp = get_array_module(v)
    keep = ~xp.isnan(v)
    n = int(keep.sum())
    return float(v[keep].sum() / n) if n else float("nan")


def pct(v: float, width: int = 6) -> str:
    """A fraction printed as a percentage with one decimal, ``n/a`` for NaN."""
    return f"{'n/a':>{width}}" if v != v else f"{100.0 * v:{width}.1f}"


# =========================================================================== semantic

def _check_classes(num_classes, ignore_index, op: str) -> None:
    """Raise unless ``num_classes >= 1`` and ``ignore_index`` is None or an int outside ``[0, K)``."""
    if not _is_int(num_classes) or num_classes < 1:
        raise ValueError(f"{op}: expected num_classes to be an int >= 1, got {num_classes!r}")
    if ignore_index is not None:
        if not _is_int(ignore_index):
            raise TypeError(f"{op}: expected ignore_index to be an int or None, got {ignore_index!r}")
        if 0 <= ignore_index < num_classes:
            raise ValueError(f"{op}: expected ignore_index outside the class range [0, {num_classes}), "
                             f"got {ignore_index}; an ignored label cannot also be a class")


def confusion_matrix(pred, target, num_classes: int, ignore_index: int | None = None):
    """Count (target class, predicted class) pairs over all pixels: the ``(K, K)`` confusion matrix.

    ``cm[i, j]`` = number of pixels whose target is class ``i`` and whose
    prediction is class ``j`` (rows = target / true class, columns =
    predicted class, as in torchmetrics and scikit-learn). One bincount::

        cm = bincount(target * K + pred, minlength=K * K).reshape(K, K)

    Pixels whose *target* equals ``ignore_index`` are dropped (whatever their
    prediction). Every other pixel must have target and prediction in
    ``[0, K)``; anything else raises, so a label is never wrapped into another
    class or silently dropped. A prediction equal to ``ignore_index`` is
    therefore allowed only where the target is ignored too.

    Parameters
    ----------
    pred : ndarray of int, any shape, e.g. (N, H, W)
        Predicted class per pixel (the argmax of the scores).
    target : ndarray of int, same shape as ``pred``
        True class per pixel, or ``ignore_index``.
    num_classes : int
        ``K >= 1``.
    ignore_index : int or None
        Target value to skip (minseg datasets use 255). Must lie outside
        ``[0, K)``: an ignored label is not a class.

    Returns
    -------
    ndarray of int64, shape (K, K)
        On the device of the inputs.

    Raises
    ------
    TypeError
        Non-array or non-integer inputs.
    ValueError
        Shapes differ, ``num_classes < 1``, ``ignore_index`` inside
        ``[0, K)``, or labels outside ``[0, K)`` (the message lists them).

    References
    ----------
    Long, Shelhamer & Darrell, "Fully Convolutional Networks for Semantic
    Segmentation", CVPR 2015, Sec. 5.
    """
    op = "confusion_matrix"
    check_labels(pred, "pred", op)
    check_labels(target, "target", op)
    check_same_shape(pred, target, "pred and target", op)
    _check_classes(num_classes, ignore_index, op)
    xp = get_array_module(pred, target)
    K = int(num_classes)
    t = target.reshape(-1).astype(xp.int64)                                 # (M,) a copy: modified below
    p = pred.reshape(-1).astype(xp.int64)                                   # (M,)
    keep = t != ignore_index if ignore_index is not None else None          # (M,) bool
    for name, v in (("target", t), ("pred", p)):
        bad = (v < 0) | (v >= K)
        if keep is not None:
            bad &= keep
        if bool(bad.any()):
            where = " at pixels whose target is not ignore_index" if keep is not None else ""
            raise ValueError(f"{op}: expected {name} labels in [0, {K}){where}, got "
                             f"{int(bad.sum())} pixels with values {show_values(v[bad])}")
    # The bin of each pixel, t * K + p, in place; ignored pixels go to an extra bin K * K, cut off below.
    t *= K
    t += p
    if keep is not None:
        t[~keep] = K * K
    return xp.bincount(t, minlength=K * K + 1)[: K * K].reshape(K, K)      # (K, K)


def _check_cm(cm, op: str):
    check_array(cm, "cm", op)
    if cm.ndim != 2 or cm.shape[0] != cm.shape[1]:
        raise ValueError(f"{op}: expected cm of shape (K, K), got shape {tuple(cm.shape)}")
    return cm


def pixel_accuracy(cm) -> float:
    """Fraction of counted pixels predicted correctly: ``sum_i n_ii / sum_ij n_ij``.

    Parameters
    ----------
    cm : ndarray, shape (K, K)
        Confusion matrix, rows = target, columns = prediction.

    Returns
    -------
    float
        NaN when ``cm`` counts no pixels.
    """
    xp = get_array_module(_check_cm(cm, "pixel_accuracy"))
    return float(_safe_divide(xp.trace(cm), cm.sum()))


def class_accuracy(cm):
    """Per-class recall ``acc_i = n_ii / t_i`` with ``t_i = sum_j n_ij`` target pixels of class i.

    Returns
    -------
    ndarray of float64, shape (K,)
        NaN for a class with no target pixels.
    """
    xp = get_array_module(_check_cm(cm, "class_accuracy"))
    return _safe_divide(xp.diagonal(cm), cm.sum(axis=1))


def mean_class_accuracy(cm) -> float:
    """Mean of ``class_accuracy(cm)`` over the classes present in the target (NaN entries left out)."""
    return _nanmean(class_accuracy(cm))


def iou_per_class(cm):
    """Per-class intersection over union ``IoU_i = n_ii / (t_i + p_i - n_ii) = TP / (TP + FP + FN)``.

    ``t_i`` (row sum) counts target pixels of class i, ``p_i`` (column sum)
    predicted pixels of class i.

    Returns
    -------
    ndarray of float64, shape (K,)
        NaN for a class absent from both target and prediction (0 / 0); 0
        for a class predicted but absent from the target.
    """
    xp = get_array_module(_check_cm(cm, "iou_per_class"))
    tp = xp.diagonal(cm)
    return _safe_divide(tp, cm.sum(axis=1) + cm.sum(axis=0) - tp)


def mean_iou(cm) -> float:
    """mIoU: mean of ``iou_per_class(cm)`` over the classes that have an IoU (NaN ones left out).

    NaN when no class has an IoU (an empty matrix). This equals torchmetrics'
    ``JaccardIndex(task="multiclass", average="macro")``.
    """
    return _nanmean(iou_per_class(cm))


def fw_iou(cm) -> float:
    """Frequency-weighted IoU: ``sum_i t_i IoU_i / sum_i t_i``, weights = target pixel counts.

    A class with ``t_i = 0`` has weight 0 (whatever its IoU). NaN when ``cm``
    counts no pixels. Equals torchmetrics' ``average="weighted"``.
    """
    xp = get_array_module(_check_cm(cm, "fw_iou"))
    t = cm.sum(axis=1)
    iou = iou_per_class(cm)
    total = int(t.sum())
    if total == 0:
        return float("nan")
    weighted = xp.where(t > 0, t * xp.nan_to_num(iou), 0.0)                # (K,)
    return float(weighted.sum() / total)


class SegmentationMetrics:
    """Streaming semantic metrics: one dataset-level confusion matrix, scores at the end.

    >>> m = SegmentationMetrics(3, class_names=["bg", "cat", "dog"])
    >>> m.update(np.array([[0, 1], [2, 2]]), np.array([[0, 1], [1, 255]]))
    >>> round(m.compute()["miou"], 4)
    0.5

    Parameters
    ----------
    num_classes : int
    ignore_index : int or None
        Target label to skip; 255 as in minseg datasets.
    class_names : sequence of str, optional
        ``num_classes`` names used by :meth:`table`.

    Attributes
    ----------
    cm : numpy.ndarray of int64, shape (K, K)
        The accumulated confusion matrix, rows = target, as a host copy. The
        sum itself stays on the device of the batches (a CuPy matrix for CuPy
        batches): each ``update`` is one bincount there, and only this small
        matrix ever crosses to the host, when ``cm`` is read.
    """

    def __init__(self, num_classes: int, ignore_index: int | None = 255, class_names=None):
        op = "SegmentationMetrics"
        _check_classes(num_classes, ignore_index, op)
        if class_names is not None:
            class_names = [str(c) for c in class_names]
            if len(class_names) != num_classes:
                raise ValueError(f"{op}: expected {num_classes} class_names, got {len(class_names)}")
        self.num_classes = int(num_classes)
        self.ignore_index = ignore_index
        self.class_names = class_names or [str(i) for i in range(num_classes)]
        self.reset()

    def reset(self) -> None:
        """Forget everything accumulated so far."""
        self._cm = None                # (K, K) int64 on the device of the first batch, once there is one

    @property
    def cm(self):
        """The accumulated ``(K, K)`` confusion matrix, copied to the host (zeros before the first update)."""
        if self._cm is None:
            return np.zeros((self.num_classes, self.num_classes), dtype=np.int64)
        return to_numpy(self._cm).copy()

    def update(self, pred, target) -> None:
        """Add one batch: ``cm += confusion_matrix(pred, target, K, ignore_index)``, on the batch's device.

        Raises
        ------
        TypeError
            When this batch is on another device than the earlier ones.
        """
        cm = confusion_matrix(pred, target, self.num_classes, self.ignore_index)   # (K, K) on the device
        if self._cm is None:
            self._cm = cm
            return
        get_array_module(self._cm, cm)                                           # the same device, or TypeError
        self._cm += cm

    def compute(self) -> dict:
        """Scores from the accumulated matrix.

        Returns
        -------
        dict
            ``pixel_accuracy``, ``mean_class_accuracy``, ``miou``, ``fwiou``
            (floats in [0, 1], NaN when undefined), ``iou`` and
            ``class_accuracy`` (lists of K floats, NaN where undefined).
        """
        cm = self.cm                                                           # one (K, K) copy to the host
        return {
            "pixel_accuracy": pixel_accuracy(cm),
            "mean_class_accuracy": mean_class_accuracy(cm),
            "iou": [float(v) for v in iou_per_class(cm)],
            "class_accuracy": [float(v) for v in class_accuracy(cm)],
            "miou": mean_iou(cm),
            "fwiou": fw_iou(cm),
        }

    def table(self) -> str:
        """A per-class table (IoU and accuracy in %, pixel counts) and the summary scores."""
        r = self.compute()
        cm = self.cm
        width = max(8, *(len(n) for n in self.class_names))
        lines = [f"{'class':<{width}}  {'IoU':>6}  {'acc':>6}  {'target px':>11}  {'pred px':>11}",
                 "-" * (width + 42)]
        t, p = cm.sum(axis=1), cm.sum(axis=0)
        for i, name in enumerate(self.class_names):
            lines.append(f"{name:<{width}}  {pct(r['iou'][i])}  {pct(r['class_accuracy'][i])}  "
                         f"{int(t[i]):>11d}  {int(p[i]):>11d}")
        lines.append("-" * (width + 42))
        lines.append(f"mIoU {pct(r['miou']).strip()}   fwIoU {pct(r['fwiou']).strip()}   "
                     f"pixel acc {pct(r['pixel_accuracy']).strip()}   "
                     f"mean class acc {pct(r['mean_class_accuracy']).strip()}")
        return "\n".join(lines)

    def __repr__(self) -> str:
        return (f"SegmentationMetrics(num_classes={self.num_classes}, ignore_index={self.ignore_index}, "
                f"pixels={int(self.cm.sum())})")

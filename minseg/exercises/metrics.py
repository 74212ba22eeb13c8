"""Exercises of lesson 08: confusion_matrix, iou_per_class, panoptic_quality (PQ of one image).

``confusion_matrix`` and ``iou_per_class`` have the signatures of
``minseg.metrics``; ``panoptic_quality`` has the signature of
``minseg.panoptic.panoptic_quality`` and is called on a list of *one* image,
so it is the PQ of that image. Its cases are built by hand so that the known
mistakes give different answers: a pair with IoU exactly 0.5, a matched
prediction that covers VOID pixels, a prediction lying on a crowd region, one
lying half and one mostly on VOID; then seeded random images.
"""
from __future__ import annotations

import numpy as np

from ..metrics import confusion_matrix, iou_per_class
from ..panoptic import Segment, panoptic_quality, pq_per_category
from .core import AnswerProblem, Case, Output, exercise, shape_text

# =========================================================================== confusion_matrix


def _random_labels(rng, shape, K, ignore_frac=0.0, ignore_index=None, correct=0.6, dtype=np.int64):
    """(target, pred) of ``shape``: pred equals target on about ``correct`` of the pixels, else random."""
    target = rng.integers(0, K, size=shape)
    pred = np.where(rng.random(shape) < correct, target, rng.integers(0, K, size=shape))
    if ignore_frac:
        target = np.where(rng.random(shape) < ignore_frac, ignore_index, target)
    return pred.astype(dtype), target.astype(dtype)


def _cm_cases(rng):
    cases = []

    def add(pred, target, K, ignore_index, note=""):
        kw = {} if ignore_index is None else {"ignore_index": ignore_index}
        label = f"pred/target {shape_text(pred)} {pred.dtype}, num_classes={K}" + (
            f", ignore_index={ignore_index}" if ignore_index is not None else "") + (f" ({note})" if note else "")
        cases.append(Case((pred, target, K), kw, label))

    # the slide's kind: one class against the rest (positive / negative)
    target = np.zeros((5, 7), dtype=np.int64)
    target[1:4, 1:5] = 1                                                   # the true region
    pred = np.zeros((5, 7), dtype=np.int64)
    pred[2:5, 2:6] = 1                                                     # the predicted region
    add(pred, target, 2, None, "two overlapping rectangles")
    add(*_random_labels(rng, (6, 8), 3, 0.2, 255), 3, 255)
    p, t = _random_labels(rng, (2, 9, 11), 5, 0.15, 255)
    p[p == 4], t[t == 4] = 3, 3                                            # class 4 absent from both
    add(p, t, 5, 255, "class 4 absent")
    add(*_random_labels(rng, (37,), 4, 0.2, -1), 4, -1)
    p, t = _random_labels(rng, (10, 12), 21, 0.1, 255, correct=0.7, dtype=np.uint8)
    add(p, t, 21, 255, "uint8 labels, 21 classes as in VOC")
    p, t = _random_labels(rng, (7, 9), 3, 0.25, 255)
    p[t == 255] = np.where(rng.random(int((t == 255).sum())) < 0.5, 255, p[t == 255])  # void predicted on void
    add(p, t, 3, 255, "pred = 255 on some ignored pixels")
    return cases


ex_confusion_matrix = exercise(
    "confusion_matrix", reference=confusion_matrix, cases=_cm_cases,
    outputs=[Output("cm", axes=("target row", "prediction column"), spatial=None)],
    spec="confusion_matrix(pred, target, num_classes, ignore_index=None) -> cm (K, K) int64, "
         "cm[i, j] = pixels with target i predicted as j; pixels whose target is ignore_index dropped")


def _cm_plain(pred, target, K, keep):
    """The (K, K) counts of (target, pred) over the pixels where ``keep`` is True."""
    t, p = target.reshape(-1)[keep.reshape(-1)].astype(np.int64), pred.reshape(-1)[keep.reshape(-1)].astype(np.int64)
    return np.bincount(t * K + p, minlength=K * K).reshape(K, K)            # (K, K)


@ex_confusion_matrix.mistake("rows and columns swapped (pred as rows)",
                             hint="rows are the target (true) class, columns the prediction: "
                                  "cm[i, j] counts target i predicted as j (torchmetrics, scikit-learn)")
def _cm_transposed(pred, target, num_classes, ignore_index=None):
    return confusion_matrix(pred, target, num_classes, ignore_index).T.copy()


_IGNORED_HINT = "drop every pixel whose target equals ignore_index before counting (keep = target != ignore_index)"


@ex_confusion_matrix.mistake("ignored pixels counted", hint=_IGNORED_HINT)
def _cm_ignored_clipped(pred, target, num_classes, ignore_index=None):
    # the ignored label clipped into the last class: np.clip(target, 0, K - 1)
    t = np.clip(target.astype(np.int64), 0, num_classes - 1)
    return _cm_plain(pred, t, num_classes, np.ones(t.shape, dtype=bool))


@ex_confusion_matrix.mistake("ignored pixels counted", hint=_IGNORED_HINT)
def _cm_ignored_as_background(pred, target, num_classes, ignore_index=None):
    # the ignored label replaced by class 0
    t = target.astype(np.int64)
    if ignore_index is not None:
        t = np.where(t == ignore_index, 0, t)
    return _cm_plain(pred, t, num_classes, np.ones(t.shape, dtype=bool))


@ex_confusion_matrix.mistake("ignored pixels counted", hint=_IGNORED_HINT)
def _cm_ignored_as_correct(pred, target, num_classes, ignore_index=None):
    # the ignored pixels counted as predicted correctly (target := pred there)
    t = target.astype(np.int64)
    if ignore_index is not None:
        t = np.where(t == ignore_index, pred, t)
    return _cm_plain(pred, t, num_classes, np.ones(t.shape, dtype=bool))


@ex_confusion_matrix.mistake("bin index target * K + pred computed in uint8 and wrapped around",
                             hint="cast the labels to int64 before target * K + pred: with K = 21, "
                                  "20 * 21 + 20 = 440 does not fit in uint8")
def _cm_uint8_overflow(pred, target, num_classes, ignore_index=None):
    if target.dtype != np.uint8:
        return confusion_matrix(pred, target, num_classes, ignore_index)
    keep = target != ignore_index if ignore_index is not None else np.ones(target.shape, dtype=bool)
    idx = target[keep] * np.uint8(num_classes) + pred[keep]                 # (M,) uint8, wraps mod 256
    return np.bincount(idx, minlength=num_classes ** 2)[:num_classes ** 2].reshape(num_classes, num_classes)


# =========================================================================== iou_per_class

def _iou_cases(rng):
    cases = []

    def add(cm, note):
        cases.append(Case((cm,), {}, f"cm {shape_text(cm)} {cm.dtype} ({note})"))

    add(np.array([[40, 6], [4, 10]], dtype=np.int64), "positive / negative: TN 40, FP 6, FN 4, TP 10")
    cm = rng.integers(0, 30, size=(4, 4)).astype(np.int64)
    cm[2, :], cm[:, 2] = 0, 0
    add(cm, "class 2 absent from prediction and target")
    cm = rng.integers(0, 30, size=(3, 3)).astype(np.int64)
    cm[1, :] = 0
    add(cm, "class 1 predicted but absent from the target")
    cm = rng.integers(0, 20, size=(5, 5)).astype(np.int64) + np.diag(rng.integers(30, 90, size=5))
    add(cm, "every class present")
    add(np.array([[7, 0, 0], [0, 0, 0], [0, 0, 0]], dtype=np.int64), "only class 0 anywhere")
    cm = rng.random((3, 3)) * 10.0
    cm[0, 1] = 0.0
    add(cm, "float counts")
    return cases


def _iou_extract(value, case):
    if isinstance(value, (tuple, list)) and len(value) == 1:
        value = value[0]
    if not isinstance(value, np.ndarray):
        raise AnswerProblem(f"expected iou_per_class to return an ndarray of shape ({case.args[0].shape[0]},), "
                            f"got {type(value).__name__}")
    if value.dtype.kind != "f":
        raise AnswerProblem(f"expected iou as a float64 array (a class without pixels has IoU NaN, which needs "
                            f"a float dtype), got dtype {value.dtype}")
    return (value,)


ex_iou_per_class = exercise(
    "iou_per_class", reference=iou_per_class, cases=_iou_cases,
    outputs=[Output("iou", axes=("class",), spatial=None)], extract=_iou_extract,
    spec="iou_per_class(cm) -> iou (K,) float64, IoU_i = n_ii / (t_i + p_i - n_ii) with t_i the row sum and "
         "p_i the column sum; NaN when t_i = p_i = 0")


def _divide(num, den):
    num, den = np.asarray(num, np.float64), np.asarray(den, np.float64)
    return np.where(den > 0, num / np.where(den > 0, den, 1.0), np.nan)


@ex_iou_per_class.mistake("class absent from both prediction and target given IoU 0 instead of NaN",
                          hint="0 / 0 is undefined: such a class has no IoU (NaN) and is left out of the mean; "
                               "a class predicted but absent from the target does get 0")
def _iou_absent_zero(cm):
    return np.nan_to_num(iou_per_class(cm), nan=0.0)


@ex_iou_per_class.mistake("TP + FP + FN with TP counted twice (union = row + column sums without subtracting TP)",
                          hint="the row sum holds TP + FN, the column sum TP + FP: their sum counts TP twice, "
                               "so subtract it once: union = t_i + p_i - n_ii")
def _iou_tp_twice(cm):
    tp = np.diagonal(cm)
    return _divide(tp, cm.sum(axis=1) + cm.sum(axis=0))


@ex_iou_per_class.mistake("pixel accuracy of the class instead of IoU",
                          hint="n_ii / t_i (the row sum) is the class accuracy (recall): it ignores the false "
                               "positives; IoU divides by t_i + p_i - n_ii")
def _iou_class_accuracy(cm):
    return _divide(np.diagonal(cm), cm.sum(axis=1))


@ex_iou_per_class.mistake("precision of the class instead of IoU (TP / column sum)",
                          hint="n_ii / p_i ignores the false negatives; IoU divides by t_i + p_i - n_ii")
def _iou_precision(cm):
    return _divide(np.diagonal(cm), cm.sum(axis=0))


@ex_iou_per_class.mistake("IoU in percent (x 100) instead of a fraction",
                          hint="the slide's 100 x TP / (TP + FP + FN) is for printing; minseg returns fractions "
                               "in [0, 1]")
def _iou_percent(cm):
    return 100.0 * iou_per_class(cm)


# =========================================================================== panoptic_quality (one image)

_PQ_KEYS = ("tp", "fp", "fn", "sq", "rq", "pq")
_GROUPS = ("All", "Things", "Stuff")


def _paint(shape, rects, fill=0):
    """An id map of ``shape`` filled with ``fill``, then ``(id, r0, r1, c0, c1)`` rectangles painted in order."""
    ids = np.full(shape, fill, dtype=np.int64)
    for sid, r0, r1, c0, c1 in rects:
        ids[r0:r1, c0:c1] = sid
    return ids


def _case_iou_half():
    """A predicted thing covers exactly half of its ground truth: IoU 4 / 8 = 0.5, not a match; and a thing
    found in the right place with the wrong category."""
    gt = _paint((8, 8), [(2, 1, 3, 1, 5), (3, 5, 8, 5, 8), (4, 5, 8, 0, 3)], fill=1)
    pred = _paint((8, 8), [(11, 1, 3, 1, 3), (12, 5, 8, 4, 8), (13, 5, 8, 0, 3)], fill=10)
    return (pred, [Segment(10, 0), Segment(11, 1), Segment(12, 2), Segment(13, 1)],
            gt, [Segment(1, 0), Segment(2, 1), Segment(3, 2), Segment(4, 2)]), "IoU exactly 0.5, a wrong category"


def _case_void():
    """Matched predictions covering VOID: with VOID in the union one IoU drops from 1 to 9/16, one to 0.5;
    and a thing found in the right place with the wrong category."""
    gt = _paint((8, 8), [(0, 1, 6, 1, 6), (2, 2, 5, 2, 5), (0, 6, 8, 2, 4), (4, 6, 8, 4, 8), (8, 1, 5, 6, 8)],
                fill=1)
    pred = _paint((8, 8), [(6, 1, 5, 1, 5), (7, 6, 8, 2, 7), (9, 1, 4, 6, 8)], fill=5)
    return (pred, [Segment(5, 0), Segment(6, 1), Segment(7, 2), Segment(9, 2)],
            gt, [Segment(1, 0), Segment(2, 1), Segment(4, 2), Segment(8, 1)]), \
        "VOID inside matched predictions, a wrong category"


def _case_crowd():
    """A prediction on a crowd region of its category (not a false positive), one on another category's crowd,
    one half on VOID (a false positive) and one mostly on VOID (not); a crowd region nobody predicted."""
    gt = _paint((10, 10), [(2, 0, 4, 0, 6), (3, 6, 9, 6, 9), (4, 6, 9, 0, 3), (5, 4, 6, 8, 10), (0, 9, 10, 0, 10)],
                fill=1)
    pred = _paint((10, 10), [(21, 0, 3, 0, 4), (23, 2, 5, 4, 8), (22, 6, 9, 6, 9), (24, 8, 10, 3, 5),
                             (25, 9, 10, 6, 10), (25, 8, 9, 9, 10), (26, 6, 9, 0, 3)], fill=20)
    return (pred, [Segment(20, 0), Segment(21, 1), Segment(22, 1), Segment(23, 2), Segment(24, 2),
                   Segment(25, 2), Segment(26, 2)],
            gt, [Segment(1, 0), Segment(2, 1, True), Segment(3, 1), Segment(4, 2), Segment(5, 2, True)]), \
        "crowd, VOID"


def _random_image(rng, H=12, W=14):
    """Ground truth: background (0) and a second stuff class (1) with 3-5 things of classes 2, 3, one maybe
    crowd, VOID on some borders; prediction: the things moved, resized, relabelled, dropped or added."""
    rects, segs, sid = [], [Segment(1, 0)], 2
    if rng.random() < 0.7:
        rects.append((sid, 0, int(rng.integers(2, 4)), 0, W))             # a stuff band at the top
        segs.append(Segment(sid, 1))
        sid += 1
    crowd_done = {2: False, 3: False}
    for _ in range(int(rng.integers(3, 6))):
        h, w = int(rng.integers(2, 6)), int(rng.integers(2, 6))
        r0, c0 = int(rng.integers(0, H - h + 1)), int(rng.integers(0, W - w + 1))
        cat = int(rng.integers(2, 4))
        crowd = not crowd_done[cat] and rng.random() < 0.25
        crowd_done[cat] |= crowd
        rects.append((sid, r0, r0 + h, c0, c0 + w))
        segs.append(Segment(sid, cat, crowd))
        sid += 1
    gt = _paint((H, W), rects, fill=1)
    void = np.zeros((H, W), dtype=bool)
    for _, r0, r1, c0, c1 in rects[-2:]:                                   # VOID on the right edge of two
        if rng.random() < 0.6:
            void[r0:r1, c1 - 1] = True
    gt[void] = 0
    gt_segs = [s for s in segs if (gt == s.id).any()]
    prects, psegs, pid = [], [Segment(100, 0)], 101
    for s, (_, r0, r1, c0, c1) in zip(segs[1:], rects):                    # segs[0] is the background
        if rng.random() < 0.15:
            continue                                                       # missed
        dr, dc = (int(v) for v in rng.integers(-1, 2, size=2))
        grow = int(rng.integers(-1, 2))
        cat = s.category_id if rng.random() < 0.85 else (5 - s.category_id if s.category_id >= 2 else s.category_id)
        prects.append((pid, max(r0 + dr, 0), max(r1 + dr + grow, r0 + dr + 1), max(c0 + dc, 0),
                       max(c1 + dc + grow, c0 + dc + 1)))
        psegs.append(Segment(pid, cat))
        pid += 1
    if rng.random() < 0.5:                                                 # a false positive somewhere
        r0, c0 = int(rng.integers(0, H - 2)), int(rng.integers(0, W - 2))
        prects.append((pid, r0, r0 + 2, c0, c0 + 3))
        psegs.append(Segment(pid, int(rng.integers(2, 4))))
    pred = _paint((H, W), prects, fill=100)
    if rng.random() < 0.4:
        pred[H - 1, :3] = 0                                                # unlabelled predicted pixels
    psegs = [s for s in psegs if (pred == s.id).any()]
    return pred, psegs, gt, gt_segs


_CATEGORIES_SMALL = {0: False, 1: True, 2: True}
_CATEGORIES_RANDOM = {0: False, 1: False, 2: True, 3: True}


def _ge_matches_unique(image) -> bool:
    """Whether IoU >= 0.5 still pairs each segment with at most one partner (so that mistake is well defined)."""
    pred, psegs, gt, gsegs = image
    void = gt == 0
    for s in gsegs:
        n = 0
        for p in psegs:
            if p.category_id != s.category_id or s.iscrowd:
                continue
            g_m, p_m = gt == s.id, pred == p.id
            inter = int((g_m & p_m).sum())
            union = int(g_m.sum() + p_m.sum() - inter - (p_m & void).sum())
            n += inter > 0 and 2 * inter >= union
        if n > 1:
            return False
    return True


def _all_scored(image, categories) -> bool:
    r = panoptic_quality([image], categories)
    return all(c["tp"] + c["fp"] + c["fn"] > 0 for c in r["per_class"].values())


def _pq_cases(rng):
    cases = []
    for make in (_case_iou_half, _case_void, _case_crowd):
        image, note = make()
        cases.append(Case(([image], _CATEGORIES_SMALL), {}, f"one image {shape_text(image[0])} ({note})"))
    n = 0
    while n < 5:
        image = _random_image(rng)
        if _all_scored(image, _CATEGORIES_RANDOM) and _ge_matches_unique(image):
            n += 1
            cases.append(Case(([image], _CATEGORIES_RANDOM), {}, f"one image {shape_text(image[0])} (random)"))
    return cases


def _number(d, key, where):
    if not isinstance(d, dict) or key not in d:
        raise AnswerProblem(f"expected {where} to be a dict with key {key!r}, got "
                            + (f"keys {sorted(map(str, d))}" if isinstance(d, dict) else type(d).__name__))
    v = d[key]
    try:
        return float(v)
    except (TypeError, ValueError):
        raise AnswerProblem(f"expected {where}[{key!r}] to be a number, got {type(v).__name__}") from None


def _pq_extract(value, case):
    """(tp, fp, fn, sq, rq, pq), each (C,) over the categories, then All, Things, Stuff, each (pq, sq, rq)."""
    categories = case.args[1]
    if not isinstance(value, dict):
        raise AnswerProblem(f"expected panoptic_quality to return a dict with keys 'per_class', 'All', 'Things', "
                            f"'Stuff', got {type(value).__name__}")
    per = value.get("per_class")
    if not isinstance(per, dict):
        raise AnswerProblem("expected result['per_class'] to be a dict {category_id: {'pq', 'sq', 'rq', 'tp', "
                            f"'fp', 'fn'}}, got {type(per).__name__}")
    missing = [c for c in categories if c not in per]
    if missing:
        raise AnswerProblem(f"expected result['per_class'] to have a key for every category {list(categories)}, "
                            f"got keys {list(per)}")
    out = [np.array([_number(per[c], k, f"result['per_class'][{c}]") for c in categories]) for k in _PQ_KEYS]
    groups = [np.array([_number(value.get(g), k, f"result[{g!r}]") for k in ("pq", "sq", "rq")]) for g in _GROUPS]
    return (*out, *groups)


ex_panoptic_quality = exercise(
    "panoptic_quality", reference=panoptic_quality, cases=_pq_cases, extract=_pq_extract,
    outputs=[Output(k, axes=("category",), spatial=None) for k in _PQ_KEYS]
    + [Output(f"{g} (pq sq rq)", axes=("entry",), spatial=None) for g in _GROUPS],
    spec="panoptic_quality(images, categories, void_id=0) -> {'per_class': {category: {'tp', 'fp', 'fn', "
         "'sq', 'rq', 'pq'}}, 'All' / 'Things' / 'Stuff': {'pq', 'sq', 'rq'}}; here images is a list of one "
         "(pred_ids, pred_segments, gt_ids, gt_segments)")


def _pq_variant(images, categories, void_id=0, *, match_ge=False, void_in_union=False, pixel_sq=False,
                crowd_absorbs=True, void_absorbs=True, crowd_fn=False, any_category=False, fp_fn_weight=0.5,
                swap_sq_rq=False, product_of_means=False):
    """PQ written plainly, segment by segment, with switches that make each known mistake."""
    cats = list(categories)
    tp = dict.fromkeys(cats, 0)
    fp, fn = dict(tp), dict(tp)
    iou_sum = dict.fromkeys(cats, 0.0)
    inter_px, union_px = dict(iou_sum), dict(iou_sum)
    for pred_ids, pred_segments, gt_ids, gt_segments in images:
        void = gt_ids == void_id
        g_mask = {s.id: gt_ids == s.id for s in gt_segments}
        p_mask = {s.id: pred_ids == s.id for s in pred_segments}
        matched_g, matched_p = set(), set()
        for g in gt_segments:
            if g.iscrowd:
                continue
            for p in pred_segments:
                if p.category_id != g.category_id and not any_category:
                    continue
                inter = int((g_mask[g.id] & p_mask[p.id]).sum())
                union = int(g_mask[g.id].sum() + p_mask[p.id].sum() - inter)
                if not void_in_union:
                    union -= int((p_mask[p.id] & void).sum())
                if inter > 0 and (2 * inter >= union if match_ge else 2 * inter > union):
                    tp[g.category_id] += 1
                    iou_sum[g.category_id] += inter / union
                    matched_g.add(g.id)
                    matched_p.add(p.id)
        crowd = {s.category_id: g_mask[s.id] for s in gt_segments if s.iscrowd}
        for g in gt_segments:
            if g.id not in matched_g and (crowd_fn or not g.iscrowd):
                fn[g.category_id] += 1
        for p in pred_segments:
            if p.id in matched_p:
                continue
            absorbed = int((p_mask[p.id] & void).sum()) if void_absorbs else 0
            if crowd_absorbs and p.category_id in crowd:
                absorbed += int((p_mask[p.id] & crowd[p.category_id]).sum())
            if not 2 * absorbed > int(p_mask[p.id].sum()):
                fp[p.category_id] += 1
        for c in cats:                                                     # pixel IoU of each category
            gc = np.isin(gt_ids, [s.id for s in gt_segments if s.category_id == c]) & ~void
            pc = np.isin(pred_ids, [s.id for s in pred_segments if s.category_id == c]) & ~void
            inter_px[c] += int((gc & pc).sum())
            union_px[c] += int((gc | pc).sum())
    per_class = {}
    for c in cats:
        pq, sq, rq = pq_per_category(iou_sum[c], tp[c], fp[c], fn[c])
        if fp_fn_weight != 0.5 and tp[c] + fp[c] + fn[c]:
            den = tp[c] + fp_fn_weight * (fp[c] + fn[c])
            rq, pq = tp[c] / den, iou_sum[c] / den
        if pixel_sq:
            sq = inter_px[c] / union_px[c] if union_px[c] else 0.0
            pq = sq * rq
        if swap_sq_rq:
            sq, rq = rq, sq
        per_class[c] = {"pq": pq, "sq": sq, "rq": rq, "tp": tp[c], "fp": fp[c], "fn": fn[c]}
    out = {"per_class": per_class}
    for group, want in (("All", None), ("Things", True), ("Stuff", False)):
        rows = [per_class[c] for c in cats if (want is None or bool(categories[c]) == want)
                and tp[c] + fp[c] + fn[c] > 0]
        mean = {k: float(np.mean([r[k] for r in rows])) if rows else float("nan") for k in ("pq", "sq", "rq")}
        if product_of_means:
            mean["pq"] = mean["sq"] * mean["rq"]
        out[group] = {**mean, "n": len(rows)}
    return out


_MISTAKES = [
    ("match_ge", "match at IoU >= 0.5 instead of > 0.5",
     "a match needs IoU strictly greater than 0.5 (2 |p & g| > union): that is what makes it unique",
     {"match_ge": True}),
    ("void_in_union", "VOID pixels left in the union",
     "union = |p| + |g| - |p & g| - |p & VOID|: the prediction's pixels on VOID (unlabelled ground truth) "
     "are not counted", {"void_in_union": True}),
    ("pixel_iou", "IoU over pixels instead of matched segments (RQ/SQ mixed up)",
     "SQ is the mean IoU of the matched (TP) segment pairs, not the IoU of all the category's pixels; "
     "RQ = TP / (TP + FP/2 + FN/2) counts segments", {"pixel_sq": True}),
    ("crowd_fp", "crowd regions not excluded from false positives",
     "an unmatched prediction with more than half of its pixels on VOID plus the crowd region of its own "
     "category is not a false positive", {"crowd_absorbs": False}),
    ("crowd_fn", "crowd ground-truth segments counted as false negatives",
     "a crowd region is never matched and never a false negative", {"crowd_fn": True}),
    ("void_fp", "predictions lying mostly on VOID counted as false positives",
     "an unmatched prediction with more than half of its pixels on VOID (plus its category's crowd) is not a "
     "false positive", {"void_absorbs": False}),
    ("any_category", "predictions matched to ground truth of another category",
     "a match needs the same category and IoU > 0.5", {"any_category": True}),
    ("rq_weight_one", "FP and FN weighted 1 instead of 1/2 (RQ = TP / (TP + FP + FN))",
     "RQ = TP / (TP + FP/2 + FN/2), an F1 score", {"fp_fn_weight": 1.0}),
    ("sq_rq_swapped", "SQ and RQ swapped",
     "SQ = sum of matched IoUs / TP, RQ = TP / (TP + FP/2 + FN/2)", {"swap_sq_rq": True}),
    ("product_of_means", "averaged PQ computed as averaged SQ x averaged RQ",
     "All / Things / Stuff PQ is the mean of the per-category PQ, which is not mean SQ x mean RQ",
     {"product_of_means": True}),
]


def _add_pq_mistake(key, title, hint, flags):
    def fn(images, categories, void_id=0):
        return _pq_variant(images, categories, void_id, **flags)
    fn.__name__ = key
    ex_panoptic_quality.mistake(title, hint=hint)(fn)


for _m in _MISTAKES:
    _add_pq_mistake(*_m)

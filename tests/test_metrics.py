"""Tests for minseg.metrics and minseg.panoptic: slide examples, torchmetrics conformance, PQ against a per-segment loop."""
import math

import numpy as np
import pytest

from minseg import backend, panoptic
from minseg.metrics import (
    SegmentationMetrics,
    class_accuracy,
    confusion_matrix,
    fw_iou,
    iou_per_class,
    mean_class_accuracy,
    mean_iou,
    pixel_accuracy,
)
from minseg.panoptic import (
    PanopticQuality,
    Segment,
    connected_components,
    decode_panoptic,
    encode_panoptic,
    explain_panoptic,
    instances_from_semantic,
    panoptic_quality,
    pq_per_category,
)

from conftest import torch_or_skip

nan = float("nan")


def same(a, b):
    """Equal, treating NaN == NaN."""
    return (a != a and b != b) or a == b


# =========================================================================== the slow per-segment loop (oracle)

def pq_loop(images, categories, void_id=0):
    """Panoptic quality the slow, obviously-correct way: one boolean mask per segment, one test per pair.

    ``categories``: ``{category_id: isthing}``. ``images``: (pred_ids,
    pred_segments, gt_ids, gt_segments) with ``Segment`` lists. Follows the
    rules of COCO's ``pq_compute`` literally:

    * IoU(p, g) = |p & g| / |g | (p minus VOID)|,
    * a match is a non-crowd gt and a prediction of the same category with IoU > 0.5,
    * unmatched non-crowd gt -> FN,
    * unmatched prediction -> FP unless more than half of it is VOID or the
      (last-listed) crowd region of its category,
    * per-category sums over the dataset; averages over categories with
      TP + FP + FN > 0.

    Also used by ``benchmarks/bench_metrics.py`` as the baseline.
    """
    stats = {c: {"iou": 0.0, "tp": 0, "fp": 0, "fn": 0} for c in categories}
    for pred_ids, pred_segs, gt_ids, gt_segs in images:
        void = gt_ids == void_id
        gt_mask = {g.id: gt_ids == g.id for g in gt_segs}
        pred_mask = {p.id: pred_ids == p.id for p in pred_segs}
        gt_hit, pred_hit = set(), set()
        for g in sorted(gt_segs, key=lambda s: s.id):
            if g.iscrowd:
                continue
            for p in sorted(pred_segs, key=lambda s: s.id):
                if p.category_id != g.category_id:
                    continue
                inter = np.count_nonzero(gt_mask[g.id] & pred_mask[p.id])
                union = np.count_nonzero(gt_mask[g.id] | (pred_mask[p.id] & ~void))
                if inter / union > 0.5:
                    stats[g.category_id]["iou"] += inter / union
                    stats[g.category_id]["tp"] += 1
                    gt_hit.add(g.id)
                    pred_hit.add(p.id)
        crowd_of = {}
        for g in gt_segs:
            if g.iscrowd:
                crowd_of[g.category_id] = g.id          # the last listed wins, as in the reference
            elif g.id not in gt_hit:
                stats[g.category_id]["fn"] += 1
        for p in pred_segs:
            if p.id in pred_hit:
                continue
            on_void_or_crowd = np.count_nonzero(pred_mask[p.id] & void)
            if p.category_id in crowd_of:
                on_void_or_crowd += np.count_nonzero(pred_mask[p.id] & gt_mask[crowd_of[p.category_id]])
            if on_void_or_crowd / np.count_nonzero(pred_mask[p.id]) > 0.5:
                continue
            stats[p.category_id]["fp"] += 1
    out = {"per_class": {}}
    for c, s in stats.items():
        tp, fp, fn = s["tp"], s["fp"], s["fn"]
        if tp + fp + fn == 0:
            out["per_class"][c] = {"pq": nan, "sq": nan, "rq": nan, "tp": 0, "fp": 0, "fn": 0}
            continue
        den = tp + 0.5 * fp + 0.5 * fn
        out["per_class"][c] = {"pq": s["iou"] / den, "sq": s["iou"] / tp if tp else 0.0, "rq": tp / den,
                               "tp": tp, "fp": fp, "fn": fn}
    for name, want in (("All", None), ("Things", True), ("Stuff", False)):
        scored = [c for c in categories if (want is None or categories[c] == want)
                  and out["per_class"][c]["tp"] + out["per_class"][c]["fp"] + out["per_class"][c]["fn"] > 0]
        n = len(scored)
        out[name] = {k: (sum(out["per_class"][c][k] for c in scored) / n if n else nan) for k in ("pq", "sq", "rq")}
        out[name]["n"] = n
    return out


def random_panoptic_pair(rng, H, W, n_segments, categories, void_frac=0.1, crowd_frac=0.1):
    """A ground-truth id map and a perturbed prediction, both Voronoi partitions, with VOID and crowd.

    The prediction moves the gt seeds a little (so many segments match,
    some near IoU 0.5), relabels a few categories, and leaves some pixels
    VOID. Ids are sparse random integers, as in COCO.
    """
    cats = list(categories)
    yy, xx = np.mgrid[0:H, 0:W]

    def voronoi(seeds):
        d = (yy[..., None] - seeds[:, 0]) ** 2 + (xx[..., None] - seeds[:, 1]) ** 2
        return np.argmin(d, axis=-1)

    seeds = rng.uniform([0, 0], [H, W], size=(n_segments, 2))
    cat_of = rng.choice(cats, size=n_segments)
    gt_idx = voronoi(seeds)
    jitter = rng.normal(scale=0.25 * math.sqrt(H * W / n_segments), size=seeds.shape)
    pred_idx = voronoi(seeds + jitter)
    pred_cat = np.where(rng.random(n_segments) < 0.15, rng.choice(cats, size=n_segments), cat_of)
    gt_ids_of = rng.choice(np.arange(1, 10**6), size=n_segments, replace=False)
    pred_ids_of = rng.choice(np.arange(1, 10**6), size=n_segments, replace=False)
    gt_ids = gt_ids_of[gt_idx]
    pred_ids = pred_ids_of[pred_idx]
    # VOID: a random disc plus scattered pixels in the gt; scattered pixels in the prediction
    cy, cx, r = rng.uniform(0, H), rng.uniform(0, W), rng.uniform(0.1, 0.3) * min(H, W)
    gt_ids[((yy - cy) ** 2 + (xx - cx) ** 2 < r * r) | (rng.random((H, W)) < void_frac)] = 0
    pred_ids[rng.random((H, W)) < void_frac / 2] = 0
    crowd = rng.random(n_segments) < crowd_frac
    gt_segs = [Segment(int(gt_ids_of[k]), int(cat_of[k]), bool(crowd[k]))
               for k in rng.permutation(n_segments) if (gt_ids == gt_ids_of[k]).any()]
    pred_segs = [Segment(int(pred_ids_of[k]), int(pred_cat[k]))
                 for k in range(n_segments) if (pred_ids == pred_ids_of[k]).any()]
    return pred_ids, pred_segs, gt_ids, gt_segs


# =========================================================================== confusion matrix

def test_confusion_matrix_rows_are_target_columns_are_prediction(xp):
    target = xp.asarray([0, 0, 1, 1, 2, 2])
    pred = xp.asarray([0, 1, 1, 1, 0, 2])
    cm = backend.to_numpy(confusion_matrix(pred, target, 3))
    np.testing.assert_array_equal(cm, [[1, 1, 0],
                                       [0, 2, 0],
                                       [1, 0, 1]])
    assert cm.dtype == np.int64


def test_confusion_matrix_any_batch_shape_and_ignore(xp):
    rng = np.random.default_rng(0)
    target = rng.integers(0, 4, size=(2, 3, 5, 7))
    pred = rng.integers(0, 4, size=(2, 3, 5, 7))
    target[0, 0, :2] = 255
    pred[0, 0, 0] = 255                                     # allowed: its target is ignored too
    expected = np.zeros((4, 4), dtype=np.int64)
    for t, p in zip(target.ravel(), pred.ravel()):          # the definition, pixel by pixel
        if t != 255:
            expected[t, p] += 1
    cm = confusion_matrix(xp.asarray(pred), xp.asarray(target), 4, ignore_index=255)
    np.testing.assert_array_equal(backend.to_numpy(cm), expected)
    assert int(cm.sum()) == np.count_nonzero(target != 255)


def test_confusion_matrix_unsigned_and_bool_labels():
    t = np.array([[0, 1], [255, 1]], dtype=np.uint8)
    p = np.array([[0, 0], [3, 1]], dtype=np.uint8)
    np.testing.assert_array_equal(confusion_matrix(p, t, 2, ignore_index=255), [[1, 0], [1, 1]])
    np.testing.assert_array_equal(confusion_matrix(np.array([True, False]), np.array([True, True]), 2),
                                  [[0, 0], [1, 1]])


@pytest.mark.parametrize("which", ["pred", "target"])
def test_out_of_range_labels_raise_and_show_values(which):
    good = np.zeros((2, 3), dtype=np.int64)
    bad = good.copy()
    bad[0, 0], bad[1, 2] = 7, -1
    args = (bad, good) if which == "pred" else (good, bad)
    with pytest.raises(ValueError, match=rf"confusion_matrix: expected {which} labels in \[0, 3\).*2 pixels.*\[-1, 7\]"):
        confusion_matrix(*args, 3, ignore_index=255)


def test_prediction_equal_to_ignore_index_on_a_counted_pixel_raises():
    with pytest.raises(ValueError, match=r"expected pred labels in \[0, 2\) at pixels whose target is not "
                                         r"ignore_index, got 1 pixels with values \[255\]"):
        confusion_matrix(np.array([255, 0]), np.array([1, 0]), 2, ignore_index=255)


def test_confusion_matrix_bad_arguments():
    a = np.zeros((2, 4, 4), dtype=np.int64)
    with pytest.raises(ValueError, match=r"confusion_matrix: expected pred and target of the same shape, "
                                         r"got \(2, 4, 4\) and \(2, 4, 5\)"):
        confusion_matrix(a, np.zeros((2, 4, 5), dtype=np.int64), 3)
    with pytest.raises(TypeError, match="expected pred with an integer dtype.*float32"):
        confusion_matrix(a.astype(np.float32), a, 3)
    with pytest.raises(TypeError, match="expected target to be a numpy or cupy ndarray, got list"):
        confusion_matrix(a, [0, 1], 3)
    with pytest.raises(ValueError, match="expected num_classes to be an int >= 1, got 0"):
        confusion_matrix(a, a, 0)
    with pytest.raises(ValueError, match=r"expected ignore_index outside the class range \[0, 3\), got 0"):
        confusion_matrix(a, a, 3, ignore_index=0)
    with pytest.raises(ValueError, match=r"pixel_accuracy: expected cm of shape \(K, K\), got shape \(2, 3\)"):
        pixel_accuracy(np.zeros((2, 3)))


# =========================================================================== semantic scores (slide examples)

def test_slide_example_iou_is_tp_over_tp_fp_fn():
    # target / prediction on a 4 x 4 image, 3 classes, hand-counted:
    target = np.array([[0, 0, 1, 1],
                       [0, 0, 1, 1],
                       [2, 2, 2, 2],
                       [2, 2, 2, 2]])
    pred = np.array([[0, 1, 1, 1],
                     [0, 0, 1, 2],
                     [2, 2, 2, 2],
                     [0, 2, 2, 2]])
    cm = confusion_matrix(pred, target, 3)
    # class 0: TP 3, FP 1 (bottom-left), FN 1  -> IoU 3/5
    # class 1: TP 3, FP 1 (top row),     FN 1  -> IoU 3/5
    # class 2: TP 7, FP 1 (row 1),       FN 1  -> IoU 7/9
    np.testing.assert_array_equal(cm, [[3, 1, 0], [0, 3, 1], [1, 0, 7]])
    np.testing.assert_allclose(iou_per_class(cm), [3 / 5, 3 / 5, 7 / 9], rtol=0, atol=1e-15)
    assert mean_iou(cm) == pytest.approx((3 / 5 + 3 / 5 + 7 / 9) / 3, abs=1e-15)
    assert pixel_accuracy(cm) == pytest.approx(13 / 16, abs=1e-15)
    np.testing.assert_allclose(class_accuracy(cm), [3 / 4, 3 / 4, 7 / 8], atol=1e-15)
    assert mean_class_accuracy(cm) == pytest.approx((3 / 4 + 3 / 4 + 7 / 8) / 3, abs=1e-15)
    assert fw_iou(cm) == pytest.approx((4 * 3 / 5 + 4 * 3 / 5 + 8 * 7 / 9) / 16, abs=1e-15)


def test_absent_class_has_nan_iou_left_out_but_predicted_absent_class_counts_zero():
    target = np.array([0, 0, 1, 1])
    pred = np.array([0, 0, 1, 3])                           # class 2 nowhere; class 3 only predicted
    cm = confusion_matrix(pred, target, 4)
    iou = iou_per_class(cm)
    assert np.isnan(iou[2])
    assert iou[3] == 0.0
    np.testing.assert_allclose(iou[[0, 1]], [1.0, 0.5])
    assert mean_iou(cm) == pytest.approx((1 + 0.5 + 0) / 3)  # NaN left out, the 0 kept
    assert np.isnan(class_accuracy(cm)[3]) and np.isnan(class_accuracy(cm)[2])
    assert mean_class_accuracy(cm) == pytest.approx((1 + 0.5) / 2)
    assert fw_iou(cm) == pytest.approx((2 * 1 + 2 * 0.5) / 4)


def test_empty_matrix_scores_are_nan_without_warnings():
    cm = np.zeros((3, 3), dtype=np.int64)
    with np.errstate(all="raise"):
        assert math.isnan(pixel_accuracy(cm)) and math.isnan(mean_iou(cm))
        assert math.isnan(fw_iou(cm)) and math.isnan(mean_class_accuracy(cm))


def test_streaming_is_one_dataset_matrix_not_a_mean_of_images():
    m = SegmentationMetrics(2, ignore_index=255)
    a_t, a_p = np.array([0, 0, 0, 1]), np.array([0, 0, 0, 1])   # image 1: perfect, mIoU 1
    b_t, b_p = np.array([1, 1, 1, 1]), np.array([0, 1, 1, 1])   # image 2: class 1 IoU 3/4, class 0 IoU 0
    m.update(a_p, a_t)
    m.update(b_p, b_t)
    cm = confusion_matrix(np.concatenate([a_p, b_p]), np.concatenate([a_t, b_t]), 2)
    np.testing.assert_array_equal(m.cm, cm)
    r = m.compute()
    assert r["iou"] == pytest.approx([3 / 4, 4 / 5])
    assert r["miou"] == pytest.approx((3 / 4 + 4 / 5) / 2)
    per_image = (mean_iou(confusion_matrix(a_p, a_t, 2)) + mean_iou(confusion_matrix(b_p, b_t, 2))) / 2
    assert per_image != pytest.approx(r["miou"])
    m.reset()
    assert m.cm.sum() == 0


def test_segmentation_metrics_table_and_errors():
    m = SegmentationMetrics(3, class_names=["background", "cat", "dog"])
    m.update(np.array([[0, 1], [1, 0]]), np.array([[0, 1], [255, 0]]))
    text = m.table()
    assert "background" in text and "dog" in text and "n/a" in text and "mIoU 100.0" in text
    assert set(m.compute()) == {"pixel_accuracy", "mean_class_accuracy", "iou", "class_accuracy", "miou", "fwiou"}
    with pytest.raises(ValueError, match="SegmentationMetrics: expected 3 class_names, got 2"):
        SegmentationMetrics(3, class_names=["a", "b"])
    with pytest.raises(ValueError, match="ignore_index outside"):
        SegmentationMetrics(3, ignore_index=1)


# =========================================================================== torchmetrics conformance

def _torch_reference_available():
    torch_or_skip()
    return pytest.importorskip("torchmetrics")


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_agrees_with_torchmetrics_jaccard_and_confusion_matrix(seed):
    _torch_reference_available()
    import torch
    from torchmetrics.classification import MulticlassConfusionMatrix, MulticlassJaccardIndex

    rng = np.random.default_rng(seed)
    K = 6
    target = rng.integers(0, K, size=(3, 16, 20))
    pred = np.where(rng.random(target.shape) < 0.7, target, rng.integers(0, K, size=target.shape))
    target[rng.random(target.shape) < 0.1] = 255
    ours = SegmentationMetrics(K, ignore_index=255)
    kw = dict(num_classes=K, ignore_index=255)
    tm_cm, tm_macro = MulticlassConfusionMatrix(**kw), MulticlassJaccardIndex(average="macro", **kw)
    tm_none, tm_weighted = MulticlassJaccardIndex(average="none", **kw), MulticlassJaccardIndex(average="weighted", **kw)
    for i in range(3):                                      # streaming on both sides
        ours.update(pred[i], target[i])
        for m in (tm_cm, tm_macro, tm_none, tm_weighted):
            m.update(torch.from_numpy(pred[i]), torch.from_numpy(target[i]))
    np.testing.assert_array_equal(ours.cm, tm_cm.compute().numpy())
    r = ours.compute()
    np.testing.assert_allclose(r["iou"], tm_none.compute().double().numpy(), rtol=1e-6)
    assert r["miou"] == pytest.approx(float(tm_macro.compute()), rel=1e-6)
    assert r["fwiou"] == pytest.approx(float(tm_weighted.compute()), rel=1e-6)


def test_where_torchmetrics_differs_absent_class():
    """torchmetrics reports 0 (zero_division) for a class absent from both; minseg reports NaN.

    Both leave it out of the macro mean, so mIoU agrees.
    """
    _torch_reference_available()
    import torch
    from torchmetrics.functional.classification import multiclass_jaccard_index

    target, pred = np.array([0, 0, 1, 1]), np.array([0, 1, 1, 1])
    tm_none = multiclass_jaccard_index(torch.from_numpy(pred), torch.from_numpy(target), 3, average="none")
    assert float(tm_none[2]) == 0.0
    assert np.isnan(iou_per_class(confusion_matrix(pred, target, 3))[2])
    tm_macro = multiclass_jaccard_index(torch.from_numpy(pred), torch.from_numpy(target), 3, average="macro")
    assert mean_iou(confusion_matrix(pred, target, 3)) == pytest.approx(float(tm_macro))


# =========================================================================== panoptic: hand-worked examples

THING, STUFF = 1, 2
CATS = {THING: True, STUFF: False}


def test_slide_example_pq_is_sum_iou_over_tp_half_fp_half_fn_and_sq_times_rq():
    # One thing category. gt: three people; prediction: two good masks, one spurious.
    gt = np.array([[1, 1, 1, 1, 0, 2, 2, 2],
                   [1, 1, 1, 1, 0, 2, 2, 2],
                   [3, 3, 0, 0, 0, 0, 0, 0]])
    pred = np.array([[7, 7, 7, 0, 0, 8, 8, 8],
                     [7, 7, 7, 7, 8, 8, 8, 0],
                     [9, 9, 9, 9, 9, 9, 9, 9]])
    gts = [Segment(1, THING), Segment(2, THING), Segment(3, THING)]
    preds = [Segment(7, THING), Segment(8, THING), Segment(9, THING)]
    # gt 1 (8 px) vs pred 7 (7 px): I = 7, U = 8 + 7 - 7 - 0 = 8      -> IoU 7/8, TP
    # gt 2 (6 px) vs pred 8 (6 px, one on VOID): I = 5, U = 6 + 6 - 5 - 1 = 6 -> IoU 5/6, TP
    # gt 3 (2 px) vs pred 9 (8 px, six on VOID): I = 2, U = 2 + 8 - 2 - 6 = 2 -> IoU 1, TP
    r = panoptic_quality([(pred, preds, gt, gts)], {THING: True})
    c = r["per_class"][THING]
    assert (c["tp"], c["fp"], c["fn"]) == (3, 0, 0)
    assert c["iou_sum"] == 7 / 8 + 5 / 6 + 1.0
    assert c["sq"] == pytest.approx((7 / 8 + 5 / 6 + 1) / 3)
    # make gt 3 stuff: pred 9 (a thing) is left unmatched and gt 3 unmatched
    r = panoptic_quality([(pred, preds, gt, [Segment(1, THING), Segment(2, THING), Segment(3, STUFF)])], CATS)
    thing, stuff = r["per_class"][THING], r["per_class"][STUFF]
    # pred 9 (thing) is unmatched; on VOID 6/8 > 1/2 -> ignored. gt 3 (stuff) -> FN.
    assert (thing["tp"], thing["fp"], thing["fn"]) == (2, 0, 0)
    assert (stuff["tp"], stuff["fp"], stuff["fn"]) == (0, 0, 1)
    assert thing["pq"] == (7 / 8 + 5 / 6) / 2 and stuff["pq"] == 0.0 and stuff["sq"] == 0.0
    assert r["All"]["n"] == 2 and r["All"]["pq"] == pytest.approx(((7 / 8 + 5 / 6) / 2 + 0) / 2)


def test_pq_formula_with_fp_and_fn_and_sq_times_rq():
    assert pq_per_category(1.5, 2, 1, 1) == (1.5 / 3, 0.75, 2 / 3)
    pq, sq, rq = pq_per_category(1.7, 2, 3, 1)
    assert pq == pytest.approx(sq * rq) and pq == 1.7 / (2 + 1.5 + 0.5)
    assert all(math.isnan(v) for v in pq_per_category(0.0, 0, 0, 0))
    assert pq_per_category(0.0, 0, 2, 0) == (0.0, 0.0, 0.0)


def test_iou_exactly_one_half_is_not_a_match():
    gt = np.array([[1, 1, 1, 1]])
    pred = np.array([[5, 5, 6, 6]])                         # I = 2, U = 4: IoU = 0.5 exactly
    r = panoptic_quality([(pred, [Segment(5, THING), Segment(6, THING)], gt, [Segment(1, THING)])], CATS)
    c = r["per_class"][THING]
    assert (c["tp"], c["fp"], c["fn"]) == (0, 2, 1)
    assert r["All"]["pq"] == 0.0 and r["All"]["n"] == 1
    # one more pixel of overlap: I = 3, U = 4 -> 0.75, a match
    r = panoptic_quality([(np.array([[5, 5, 5, 6]]), [Segment(5, THING), Segment(6, THING)],
                           gt, [Segment(1, THING)])], CATS)
    assert (r["per_class"][THING]["tp"], r["per_class"][THING]["fp"]) == (1, 1)


def test_void_pixels_leave_the_union():
    gt = np.array([[1, 1, 1, 0, 0, 0]])
    pred = np.array([[5, 5, 5, 5, 5, 5]])                  # IoU 3/6 with VOID kept; 3/3 without
    r = panoptic_quality([(pred, [Segment(5, THING)], gt, [Segment(1, THING)])], CATS)
    assert r["per_class"][THING]["tp"] == 1 and r["per_class"][THING]["iou_sum"] == 1.0


def test_crowd_is_never_fn_and_absorbs_same_category_predictions_only():
    gt = np.array([[1, 1, 1, 1, 2, 2, 2, 2]])
    gts = [Segment(1, THING, iscrowd=True), Segment(2, STUFF)]
    # pred 5 (thing) lies on the thing crowd -> ignored; gt crowd unmatched -> not FN
    r = panoptic_quality([(np.array([[5, 5, 5, 0, 6, 6, 6, 6]]), [Segment(5, THING), Segment(6, STUFF)],
                           gt, gts)], CATS)
    assert (r["per_class"][THING]["fp"], r["per_class"][THING]["fn"]) == (0, 0)
    assert r["per_class"][STUFF]["tp"] == 1
    assert r["Things"]["n"] == 0 and math.isnan(r["Things"]["pq"]) and r["All"]["n"] == 1
    # a stuff prediction on the thing crowd is a false positive (crowd of another category)
    r = panoptic_quality([(np.array([[7, 7, 7, 0, 6, 6, 6, 6]]), [Segment(7, STUFF), Segment(6, STUFF)],
                           gt, gts)], CATS)
    assert (r["per_class"][STUFF]["tp"], r["per_class"][STUFF]["fp"]) == (1, 1)
    # a prediction with IoU > 0.5 with a crowd segment is still not a TP
    r = panoptic_quality([(np.array([[5, 5, 5, 5, 6, 6, 6, 6]]), [Segment(5, THING), Segment(6, STUFF)],
                           gt, gts)], CATS)
    assert r["per_class"][THING]["tp"] == 0 and r["per_class"][THING]["fp"] == 0


def test_exactly_half_on_void_and_crowd_is_still_a_false_positive():
    gt = np.array([[0, 0, 3, 3, 3, 3]])
    pred = np.array([[5, 5, 5, 5, 0, 0]])                  # 2 of 4 px on VOID: not > 50 %
    r = panoptic_quality([(pred, [Segment(5, THING)], gt, [Segment(3, STUFF)])], CATS)
    assert r["per_class"][THING]["fp"] == 1 and r["per_class"][STUFF]["fn"] == 1


def test_only_the_last_listed_crowd_segment_of_a_category_absorbs_predictions():
    gt = np.array([[1, 1, 1, 1, 2, 2, 2, 2]])
    pred = np.array([[0, 0, 0, 0, 5, 5, 5, 9]])            # pred 5: 3 of 4 px on crowd 2
    preds = [Segment(5, THING), Segment(9, STUFF)]
    a = [Segment(2, THING, True), Segment(1, THING, True)]  # crowd 1 listed last: pred 5 counts as FP
    b = [Segment(1, THING, True), Segment(2, THING, True)]  # crowd 2 listed last: pred 5 ignored
    assert panoptic_quality([(pred, preds, gt, a)], CATS)["per_class"][THING]["fp"] == 1
    assert panoptic_quality([(pred, preds, gt, b)], CATS)["per_class"][THING]["fp"] == 0


def test_averages_are_means_of_per_category_scores_not_sq_times_rq():
    # thing: perfect single match (PQ 1, SQ 1, RQ 1); stuff: a match at IoU 0.6 plus an FN (RQ 2/3)
    gt = np.array([[1, 1, 2, 2, 2, 2, 2, 3, 3]])
    pred = np.array([[5, 5, 6, 6, 6, 7, 7, 7, 7]])
    gts = [Segment(1, THING), Segment(2, STUFF), Segment(3, STUFF)]
    preds = [Segment(5, THING), Segment(6, STUFF), Segment(7, STUFF)]
    r = panoptic_quality([(pred, preds, gt, gts)], CATS)
    s = r["per_class"][STUFF]
    # gt 2 / pred 6: I 3, U 5 -> 0.6, a TP; gt 3 / pred 7: I 2, U 4 -> 0.5, no match: one FN and one FP
    assert (s["tp"], s["fp"], s["fn"]) == (1, 1, 1)
    assert s["sq"] == 0.6 and s["rq"] == 0.5 and s["pq"] == 0.3
    a = r["All"]
    assert a["pq"] == pytest.approx((1 + 0.3) / 2) and a["sq"] == pytest.approx((1 + 0.6) / 2)
    assert a["rq"] == pytest.approx((1 + 0.5) / 2)
    assert a["sq"] * a["rq"] == pytest.approx(0.6)          # not the averaged PQ, 0.65


def test_dataset_level_accumulation_over_images():
    img1 = (np.array([[5, 5, 5, 5]]), [Segment(5, THING)], np.array([[1, 1, 1, 0]]), [Segment(1, THING)])
    img2 = (np.array([[0, 0, 0, 0]]), [], np.array([[1, 1, 2, 2]]), [Segment(1, THING), Segment(2, THING)])
    pq = PanopticQuality(CATS)
    pq.update(*img1)
    pq.update(*img2)
    c = pq.compute()["per_class"][THING]
    assert (c["tp"], c["fp"], c["fn"]) == (1, 0, 2)
    assert c["pq"] == 1.0 / (1 + 1)                          # not the mean of per-image PQs (1 and 0)
    assert pq.compute()["per_class"][STUFF]["tp"] == 0 and math.isnan(pq.compute()["per_class"][STUFF]["pq"])
    text = pq.table()
    assert "Things" in text and "n/a" in text
    pq.reset()
    assert pq.tp.sum() == 0


# =========================================================================== panoptic: edge cases

def test_empty_prediction_all_false_negatives():
    gt = np.array([[1, 1, 2, 2]])
    r = panoptic_quality([(np.zeros_like(gt), [], gt, [Segment(1, THING), Segment(2, STUFF)])], CATS)
    assert r["All"] == {"pq": 0.0, "sq": 0.0, "rq": 0.0, "n": 2}


def test_empty_ground_truth_all_false_positives():
    pred = np.array([[3, 3, 4, 4]])
    gt = np.array([[9, 9, 9, 9]])                           # one stuff segment, nothing of category THING
    r = panoptic_quality([(pred, [Segment(3, THING), Segment(4, THING)], gt, [Segment(9, STUFF)])], CATS)
    assert (r["per_class"][THING]["fp"], r["per_class"][STUFF]["fn"]) == (2, 1)
    assert r["All"]["pq"] == 0.0 and r["All"]["n"] == 2


def test_all_void_ground_truth_scores_nothing():
    gt = np.zeros((3, 4), dtype=np.int64)
    pred = np.array([[1, 1, 2, 2]] * 3)
    r = panoptic_quality([(pred, [Segment(1, THING), Segment(2, STUFF)], gt, [])], CATS)
    assert r["All"]["n"] == 0 and math.isnan(r["All"]["pq"])
    rows = explain_panoptic(pred, [Segment(1, THING), Segment(2, STUFF)], gt, [], CATS)
    assert [row.role for row in rows] == ["ignored", "ignored"]


def test_one_class_one_segment_perfect():
    ids = np.full((5, 5), 4)
    r = panoptic_quality([(ids, [Segment(4, STUFF)], ids, [Segment(4, STUFF)])], {STUFF: False})
    assert r["All"] == {"pq": 1.0, "sq": 1.0, "rq": 1.0, "n": 1}
    assert r["Stuff"]["n"] == 1 and r["Things"]["n"] == 0


def test_coco_style_inputs_dicts_and_category_list():
    gt = np.array([[1, 1, 0]])
    cats = [{"id": 1, "isthing": 1, "name": "person"}, {"id": 2, "isthing": 0, "name": "sky"}]
    r = panoptic_quality([(gt, [{"id": 1, "category_id": 1}], gt, [{"id": 1, "category_id": 1, "iscrowd": 0}])],
                         cats)
    assert r["per_class"][1]["name"] == "person" and r["per_class"][1]["pq"] == 1.0


# =========================================================================== panoptic: against the loop

@pytest.fixture(params=["table+bincount", "search+unique"])
def pair_path(request, monkeypatch):
    """Run a test through both ways of remapping ids and counting pairs.

    ``table+bincount``: lookup table over the id range and one bincount over
    all (gt, pred) bins; ``search+unique``: binary search and a sort.
    """
    if request.param == "table+bincount":
        monkeypatch.setattr(panoptic, "_LUT_IDS_PER_PIXEL", 10**9)
        monkeypatch.setattr(panoptic, "_BINS_PER_PIXEL", 10**9)
    else:
        monkeypatch.setattr(panoptic, "_LUT_IDS_PER_PIXEL", 0)
        monkeypatch.setattr(panoptic, "_BINS_PER_PIXEL", 0)
    return request.param


@pytest.mark.parametrize("seed", range(4))
def test_pq_matches_per_segment_loop_on_random_maps(seed, pair_path):
    rng = np.random.default_rng(seed)
    cats = {1: True, 2: True, 3: True, 4: False, 5: False}
    images = [random_panoptic_pair(rng, 40, 48, int(rng.integers(3, 20)), cats) for _ in range(4)]
    ours, ref = panoptic_quality(images, cats), pq_loop(images, cats)
    for group in ("All", "Things", "Stuff"):
        assert all(same(ours[group][k], ref[group][k]) for k in ("pq", "sq", "rq", "n")), group
    for c in cats:
        for k in ("pq", "sq", "rq", "tp", "fp", "fn"):
            assert same(ours["per_class"][c][k], ref["per_class"][c][k]), (c, k)
    counts = sum(ours["per_class"][c][k] for c in cats for k in ("tp", "fp", "fn"))
    assert counts > 0


def test_pq_matches_loop_with_hundreds_of_tiny_segments():
    """Noisy maps: connected components of random labels give hundreds of segments per image."""
    rng = np.random.default_rng(7)
    cats = {0: False, 1: True, 2: True}
    images = []
    for _ in range(2):
        gt_sem = rng.integers(0, 3, size=(24, 24))
        gt_sem[rng.random(gt_sem.shape) < 0.1] = 255
        pred_sem = np.where(rng.random(gt_sem.shape) < 0.3, rng.integers(0, 3, size=gt_sem.shape), gt_sem)
        pred_sem[pred_sem == 255] = 0
        gt_pan = encode_panoptic(gt_sem, instances_from_semantic(gt_sem, [1, 2]), [1, 2])
        pred_pan = encode_panoptic(pred_sem, instances_from_semantic(pred_sem, [1, 2]), [1, 2])
        gt_ids, gt_segs = decode_panoptic(gt_pan, thing_ids=[1, 2])
        pred_ids, pred_segs = decode_panoptic(pred_pan)
        images.append((pred_ids, pred_segs, gt_ids, gt_segs))
    assert min(len(img[1]) for img in images) > 100
    ours, ref = panoptic_quality(images, cats, void_id=-1), pq_loop(images, cats, void_id=-1)
    assert all(same(ours["All"][k], ref["All"][k]) for k in ("pq", "sq", "rq", "n"))
    for c in cats:
        assert all(same(ours["per_class"][c][k], ref["per_class"][c][k]) for k in ("pq", "tp", "fp", "fn"))


def test_random_maps_exercise_every_rule():
    """The random generator produces TPs, FPs, FNs, crowd regions and ignored predictions."""
    rng = np.random.default_rng(0)
    cats = {1: True, 2: True, 3: True, 4: False, 5: False}
    roles = set()
    for _ in range(6):
        img = random_panoptic_pair(rng, 40, 48, 12, cats, crowd_frac=0.3)
        roles |= {row.role for row in explain_panoptic(*img, cats)}
    assert roles == {"TP", "FP", "FN", "crowd", "ignored"}


# =========================================================================== explain

def test_explain_roles_agree_with_counts_and_say_why():
    rng = np.random.default_rng(3)
    cats = {1: True, 2: True, 4: False}
    img = random_panoptic_pair(rng, 30, 30, 10, cats, crowd_frac=0.3)
    rows = explain_panoptic(*img, cats)
    r = panoptic_quality([img], cats)
    count = lambda side, role: sum(row.side == side and row.role == role for row in rows)  # noqa: E731
    assert count("gt", "TP") == count("pred", "TP") == sum(c["tp"] for c in r["per_class"].values())
    assert count("gt", "FN") == sum(c["fn"] for c in r["per_class"].values())
    assert count("pred", "FP") == sum(c["fp"] for c in r["per_class"].values())
    iou_sum = sum(row.iou for row in rows if row.side == "gt" and row.role == "TP")
    assert iou_sum == pytest.approx(sum(c["iou_sum"] for c in r["per_class"].values()))
    partners = {row.id: row.partner for row in rows if row.role == "TP"}
    assert all(partners[partners[i]] == i for i in partners)


def test_explain_small_image_reasons_and_table():
    gt = np.array([[1, 1, 1, 1, 2, 2, 0, 0]])
    pred = np.array([[5, 5, 5, 6, 6, 6, 7, 7]])
    rows = explain_panoptic(pred, [Segment(5, THING), Segment(6, THING), Segment(7, STUFF)],
                            gt, [Segment(1, THING), Segment(2, STUFF)], CATS)
    by = {(r.side, r.id): r for r in rows}
    assert by["gt", 1].role == "TP" and by["gt", 1].partner == 5 and by["gt", 1].iou == 0.75
    assert by["gt", 2].role == "FN" and "best overlap is 6 (category 1) with IoU 0.667" in by["gt", 2].reason
    assert by["pred", 6].role == "FP" and "0/3 = 0%" in by["pred", 6].reason
    assert by["pred", 7].role == "ignored" and "2/2 = 100% > 50%" in by["pred", 7].reason
    text = str(rows)
    assert text.splitlines()[0].split()[:4] == ["side", "id", "cat", "role"] and "ignored" in text
    assert "(no segments)" in str(explain_panoptic(np.zeros((2, 2), int), [], np.zeros((2, 2), int), [], CATS))


def test_explain_crowd_rows():
    gt = np.array([[1, 1, 1, 1, 2, 2]])
    pred = np.array([[5, 5, 5, 0, 6, 6]])
    rows = explain_panoptic(pred, [Segment(5, THING), Segment(6, STUFF)],
                            gt, [Segment(1, THING, iscrowd=True), Segment(2, STUFF)], CATS)
    by = {(r.side, r.id): r for r in rows}
    assert by["gt", 1].role == "crowd" and "never a false negative" in by["gt", 1].reason
    assert by["pred", 5].role == "ignored" and "0 px on VOID + 3 px on crowd 1 = 3/3 = 100%" in by["pred", 5].reason
    assert by["gt", 2].role == by["pred", 6].role == "TP" and by["gt", 2].partner == 6


# =========================================================================== id maps of any dtype and range

@pytest.mark.parametrize("dtype", [np.int16, np.int32, np.uint16, np.uint32, np.int64, np.uint64])
def test_id_maps_of_any_integer_dtype(dtype, pair_path):
    gt = np.array([[0, 3, 3, 3], [7, 7, 7, 0]], dtype=dtype)
    pred = np.array([[3, 3, 3, 3], [9, 9, 0, 0]], dtype=dtype)
    r = panoptic_quality([(pred, [Segment(3, THING), Segment(9, STUFF)], gt, [Segment(3, THING), Segment(7, STUFF)])],
                         CATS)
    assert (r["per_class"][THING]["tp"], r["per_class"][THING]["iou_sum"]) == (1, 1.0)
    assert (r["per_class"][STUFF]["tp"], r["per_class"][STUFF]["iou_sum"]) == (1, 2 / 3)


def test_ids_near_the_dtype_limit_and_coco_rgb2id_ids(pair_path):
    big = np.iinfo(np.int16).max
    gt = np.array([[-1, big, big]], dtype=np.int16)          # void -1: the table starts below 0
    r = panoptic_quality([(gt, [Segment(big, THING)], gt, [Segment(big, THING)])], CATS, void_id=-1)
    assert r["per_class"][THING]["tp"] == 1
    rgb = np.random.default_rng(0).integers(0, 256, size=(6, 8, 3)).astype(np.uint32)
    ids = rgb[..., 0] + 256 * rgb[..., 1] + 256 * 256 * rgb[..., 2]   # COCO's rgb2id: ids up to 2**24
    segs = [Segment(int(i), THING) for i in np.unique(ids) if i != 0]
    r = panoptic_quality([(ids, segs, ids, segs)], CATS)
    assert r["per_class"][THING]["tp"] == len(segs) and r["All"]["pq"] == 1.0


# =========================================================================== encoded ids

def test_encode_decode_round_trip_and_crowd_convention():
    semantic = np.array([[0, 0, 7, 7], [7, 255, 3, 3]])
    instance = np.array([[9, 9, 1, 1], [2, 0, 0, 0]])       # stuff 0 keeps instance 0 whatever is written
    pan = encode_panoptic(semantic, instance, thing_ids=[7, 3], label_divisor=1000)
    np.testing.assert_array_equal(pan, [[0, 0, 7001, 7001], [7002, -1, 3000, 3000]])
    ids, segs = decode_panoptic(pan, 1000, thing_ids=[7, 3])
    assert segs == [Segment(0, 0, False), Segment(3000, 3, True), Segment(7001, 7, False), Segment(7002, 7, False)]
    np.testing.assert_array_equal(ids, pan)


def test_update_encoded_equals_update_with_segment_lists():
    rng = np.random.default_rng(1)
    semantic = rng.integers(0, 3, size=(20, 20))
    gt_sem = semantic.copy()
    gt_sem[:3] = 255
    pred_sem = np.where(rng.random(semantic.shape) < 0.1, rng.integers(0, 3, size=semantic.shape), semantic)
    cats = {0: False, 1: True, 2: True}
    gt_pan = encode_panoptic(gt_sem, instances_from_semantic(gt_sem, [1, 2]), [1, 2])
    pred_pan = encode_panoptic(pred_sem, instances_from_semantic(pred_sem, [1, 2]), [1, 2])
    a = PanopticQuality(cats)
    a.update_encoded(pred_pan, gt_pan, label_divisor=1000)
    pred_ids, pred_segs = decode_panoptic(pred_pan)
    gt_ids, gt_segs = decode_panoptic(gt_pan, thing_ids=[1, 2])
    b = pq_loop([(pred_ids, pred_segs, gt_ids, gt_segs)], cats, void_id=-1)
    assert a.void_id == 0
    for c in cats:
        assert all(same(a.compute()["per_class"][c][k], b["per_class"][c][k]) for k in ("pq", "tp", "fp", "fn"))


def test_encode_errors():
    s = np.zeros((2, 2), dtype=np.int64)
    with pytest.raises(ValueError, match=r"encode_panoptic: expected thing instance ids in \[0, 10\), got \[12\]"):
        encode_panoptic(s + 1, s + 12, thing_ids=[1], label_divisor=10)
    with pytest.raises(ValueError, match="expected semantic and instance of the same shape"):
        encode_panoptic(s, s[0], thing_ids=[1])
    with pytest.raises(ValueError, match=r"decode_panoptic: expected ids >= 0 or void_id=-1, got \[-5\]"):
        decode_panoptic(np.array([-5, 3]))


def test_encode_refuses_a_label_divisor_that_overflows_int64():
    """category * label_divisor + instance must fit in int64: refused before the multiplication wraps around."""
    sem = np.array([[0, 3], [2, 255]])
    ins = np.zeros_like(sem)
    largest_ok = 2**61                                 # (3 + 1) * d <= 2**63: the id 3 d + d - 1 fits
    pan = encode_panoptic(sem, ins, thing_ids=[3], label_divisor=largest_ok)
    assert pan[0, 1] == 3 * largest_ok and pan[1, 1] == -1 and (pan[0, :] >= 0).all()
    _, segments = decode_panoptic(pan, label_divisor=largest_ok)
    assert [s.category_id for s in segments] == [0, 2, 3]          # the ids decode back exactly
    for divisor in (largest_ok + 1, 2**62, 2**64):
        with pytest.raises(ValueError, match=rf"encode_panoptic: expected \(largest category \+ 1\) \* "
                                             rf"label_divisor <= 2\*\*63 \(int64 ids\), got "
                                             rf"label_divisor={divisor} with largest category 3"):
            encode_panoptic(sem, ins, thing_ids=[3], label_divisor=divisor)
    with pytest.raises(ValueError, match="largest category 0"):   # every pixel void: the divisor alone too big
        encode_panoptic(np.full((2, 2), 255), ins, thing_ids=[3], label_divisor=2**63 + 1)


# =========================================================================== panoptic: bad inputs

def test_panoptic_bad_inputs():
    ids = np.array([[1, 1, 2, 0]])
    segs = [Segment(1, THING), Segment(2, STUFF)]
    op = "PanopticQuality.update"
    pq = PanopticQuality(CATS)
    with pytest.raises(ValueError, match=rf"{op}: expected every id in pred_ids to be void_id=0 or listed in "
                                         r"pred_segments, got unlisted ids \[2\]"):
        pq.update(ids, segs[:1], ids, segs)
    with pytest.raises(ValueError, match=r"expected every segment in gt_segments to have pixels in gt_ids, "
                                         r"got no pixels for ids \[5\]"):
        pq.update(ids, segs, ids, segs + [Segment(5, THING)])
    with pytest.raises(ValueError, match=r"expected pred category ids among \[1, 2\], got unknown \[9\]"):
        pq.update(ids, [Segment(1, 9), Segment(2, STUFF)], ids, segs)
    with pytest.raises(ValueError, match=r"expected unique segment ids in gt_segments, got repeated ids \[1\]"):
        pq.update(ids, segs, ids, segs + [Segment(1, STUFF)])
    with pytest.raises(ValueError, match=r"expected pred_ids and gt_ids of the same shape, got \(1, 3\) and \(1, 4\)"):
        pq.update(ids[:, :3], segs, ids, segs)
    with pytest.raises(TypeError, match="expected gt_ids with an integer dtype"):
        pq.update(ids, segs, ids.astype(float), segs)
    with pytest.raises(ValueError, match="expected no segment in gt_segments with the VOID id 0"):
        pq.update(ids, segs, ids, segs + [Segment(0, THING)])
    with pytest.raises(TypeError, match="expected pred_segments entries to be Segment"):
        pq.update(ids, [1, 2], ids, segs)
    with pytest.raises(ValueError, match="expected at least one category"):
        PanopticQuality({})
    assert pq.tp.sum() == 0                                  # failed updates changed nothing


# =========================================================================== connected components

def _scipy_label():
    return pytest.importorskip("scipy.ndimage").label


@pytest.mark.parametrize("connectivity", [4, 8])
@pytest.mark.parametrize("density", [0.3, 0.55, 0.8])
def test_connected_components_match_scipy(connectivity, density):
    label = _scipy_label()
    structure = None if connectivity == 4 else np.ones((3, 3), dtype=int)
    rng = np.random.default_rng(int(density * 100) + connectivity)
    for shape in [(1, 1), (1, 17), (17, 1), (23, 31), (64, 64)]:
        mask = rng.random(shape) < density
        ours, n = connected_components(mask, connectivity)
        ref, n_ref = label(mask, structure=structure)
        assert n == n_ref
        np.testing.assert_array_equal(ours, ref)


def test_connected_components_worst_case_shapes():
    label = _scipy_label()
    H, W = 101, 99
    snake = np.zeros((H, W), dtype=bool)                   # a serpentine: one long path
    snake[::2] = True
    snake[1::4, -1] = True
    snake[3::4, 0] = True
    spiral = np.zeros((H, W), dtype=bool)                  # rings with one gap, joined: a spiral-like maze
    for k in range(0, min(H, W) // 2, 2):
        spiral[k, k:W - k] = spiral[H - 1 - k, k:W - k] = True
        spiral[k:H - k, k] = spiral[k:H - k, W - 1 - k] = True
        spiral[k + 1, k] = False
    for mask in (snake, spiral, np.ones((H, W), bool), np.zeros((H, W), bool), np.eye(H, W, dtype=bool)):
        for connectivity, structure in ((4, None), (8, np.ones((3, 3), int))):
            ours, n = connected_components(mask, connectivity)
            ref, n_ref = label(mask, structure=structure)
            assert n == n_ref
            np.testing.assert_array_equal(ours, ref)
    assert connected_components(snake)[1] == 1


def test_connected_components_hand_example(xp):
    mask = xp.asarray([[1, 1, 0, 0],
                       [0, 0, 0, 1],
                       [1, 0, 1, 1],
                       [0, 1, 0, 0]])
    labels4, n4 = connected_components(mask)
    assert n4 == 4
    np.testing.assert_array_equal(backend.to_numpy(labels4), [[1, 1, 0, 0], [0, 0, 0, 2], [3, 0, 2, 2], [0, 4, 0, 0]])
    labels8, n8 = connected_components(mask, connectivity=8)
    assert n8 == 2                                          # (2,0)-(3,1)-(2,2) join diagonally
    np.testing.assert_array_equal(backend.to_numpy(labels8), [[1, 1, 0, 0], [0, 0, 0, 2], [2, 0, 2, 2], [0, 2, 0, 0]])


def test_instances_from_semantic_numbers_per_class():
    semantic = np.array([[1, 1, 0, 2, 2],
                         [0, 0, 0, 0, 0],
                         [2, 0, 1, 1, 0],
                         [2, 0, 0, 1, 255]])
    inst = instances_from_semantic(semantic, thing_ids=[1, 2])
    np.testing.assert_array_equal(inst, [[1, 1, 0, 1, 1],
                                         [0, 0, 0, 0, 0],
                                         [2, 0, 2, 2, 0],
                                         [2, 0, 0, 2, 0]])
    two_touching = np.array([[1, 1, 2, 2]])                 # different classes never merge
    np.testing.assert_array_equal(instances_from_semantic(two_touching, [1, 2]), [[1, 1, 1, 1]])
    np.testing.assert_array_equal(instances_from_semantic(two_touching, []), [[0, 0, 0, 0]])


def test_instances_from_semantic_agrees_with_scipy_per_class():
    label = _scipy_label()
    rng = np.random.default_rng(5)
    semantic = rng.integers(0, 4, size=(40, 50))
    for connectivity, structure in ((4, None), (8, np.ones((3, 3), int))):
        inst = instances_from_semantic(semantic, thing_ids=[1, 3], connectivity=connectivity)
        for c in range(4):
            ref, _ = label(semantic == c, structure=structure)
            np.testing.assert_array_equal(inst[semantic == c], ref[semantic == c] if c in (1, 3) else 0)


def test_connected_components_bad_inputs():
    with pytest.raises(ValueError, match=r"connected_components: expected mask of shape \(H, W\), got shape \(2, 2, 2\)"):
        connected_components(np.zeros((2, 2, 2), bool))
    with pytest.raises(ValueError, match="expected connectivity 4 or 8, got 6"):
        connected_components(np.zeros((2, 2), bool), connectivity=6)
    with pytest.raises(TypeError, match="expected mask with an integer dtype"):
        connected_components(np.zeros((2, 2)))
    with pytest.raises(ValueError, match=r"instances_from_semantic: expected semantic of shape \(H, W\)"):
        instances_from_semantic(np.zeros(4, int), [1])

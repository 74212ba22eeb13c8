"""Lesson 08's exercises: confusion_matrix, iou_per_class, panoptic_quality (PQ of one image).

minseg's own functions pass; learner-style wrong versions, written here independently of the module's
mistake functions, fail with their mistake named; blanks and wrong shapes get their one-line messages.
"""
import numpy as np
import pytest

from minseg import exercises
from minseg.exercises import metrics as em
from minseg.metrics import confusion_matrix, iou_per_class
from minseg.panoptic import explain_panoptic, panoptic_quality


def test_registered_in_the_lessons_order():
    names = exercises.names()
    i = names.index("confusion_matrix")
    assert names[i:i + 3] == ["confusion_matrix", "iou_per_class", "panoptic_quality"]
    assert i > names.index("conv2d")                                      # lesson 08 after lesson 02


@pytest.mark.parametrize("name, fn", [("confusion_matrix", confusion_matrix), ("iou_per_class", iou_per_class),
                                      ("panoptic_quality", panoptic_quality)])
def test_minseg_passes(name, fn):
    r = exercises.check(name, fn)
    assert r.passed, str(r)
    assert r.diagnosis is None


@pytest.mark.parametrize("name", ["confusion_matrix", "iou_per_class", "panoptic_quality"])
def test_blank_is_not_implemented_yet(name):
    def blank(*args, **kwargs):
        raise NotImplementedError
    r = exercises.check(name, blank)
    assert not r.passed and r.diagnosis == "not implemented yet"
    assert "to do:" in str(r)


# =========================================================================== confusion_matrix

def _keep(target, ignore_index):
    return target != ignore_index if ignore_index is not None else np.ones(target.shape, dtype=bool)


def cm_loops(pred, target, num_classes, ignore_index=None, *, swap=False, ignored_as=None):
    """A learner's loop version; ``ignored_as``: 'clip', 'zero' or 'pred' counts the ignored pixels so."""
    cm = np.zeros((num_classes, num_classes), dtype=np.int64)
    for t, p in zip(target.reshape(-1).tolist(), pred.reshape(-1).tolist()):
        if ignore_index is not None and t == ignore_index:
            if ignored_as is None:
                continue
            t = {"clip": min(max(t, 0), num_classes - 1), "zero": 0, "pred": p}[ignored_as]
        if swap:
            cm[p, t] += 1
        else:
            cm[t, p] += 1
    return cm


def test_cm_loops_is_right():
    assert exercises.check("confusion_matrix", cm_loops).passed


@pytest.mark.parametrize("kw, title", [
    ({"swap": True}, "rows and columns swapped (pred as rows)"),
    ({"ignored_as": "clip"}, "ignored pixels counted"),
    ({"ignored_as": "zero"}, "ignored pixels counted"),
    ({"ignored_as": "pred"}, "ignored pixels counted"),
])
def test_cm_mistakes_are_named(kw, title):
    def mine(pred, target, num_classes, ignore_index=None):
        return cm_loops(pred, target, num_classes, ignore_index, **kw)
    r = exercises.check("confusion_matrix", mine)
    assert not r.passed
    assert r.diagnosis.startswith(title), r.diagnosis


def test_cm_uint8_overflow_is_named():
    def mine(pred, target, num_classes, ignore_index=None):
        keep = _keep(target, ignore_index)
        idx = target[keep] * num_classes + pred[keep]                     # uint8 stays uint8 and wraps
        return np.bincount(idx, minlength=num_classes * num_classes)[:num_classes ** 2].reshape(
            num_classes, num_classes)
    r = exercises.check("confusion_matrix", mine)
    assert r.diagnosis == "bin index target * K + pred computed in uint8 and wrapped around"


def test_cm_wrong_shape_and_dtype_messages():
    def short(pred, target, num_classes, ignore_index=None):
        return confusion_matrix(pred, target, num_classes, ignore_index)[:, :-1]
    r = exercises.check("confusion_matrix", short)
    assert r.diagnosis == "expected cm of shape (2, 2), got shape (2, 1)"

    def floats(pred, target, num_classes, ignore_index=None):
        return confusion_matrix(pred, target, num_classes, ignore_index).astype(np.float64)
    r = exercises.check("confusion_matrix", floats)
    assert r.diagnosis == "expected cm with an integer dtype, got dtype float64"


def test_cm_no_filter_at_all_is_an_error_with_the_case():
    def mine(pred, target, num_classes, ignore_index=None):
        idx = target.reshape(-1).astype(np.int64) * num_classes + pred.reshape(-1)
        return np.bincount(idx, minlength=num_classes ** 2).reshape(num_classes, num_classes)
    r = exercises.check("confusion_matrix", mine)
    assert not r.passed and r.diagnosis.startswith("ValueError: cannot reshape")
    assert "ignore_index=255" in r.diagnosis


# =========================================================================== iou_per_class

def iou_mine(cm, *, absent=np.nan, union="right", scale=1.0):
    cm = np.asarray(cm, dtype=np.float64)
    out = np.empty(cm.shape[0])
    for i in range(cm.shape[0]):
        tp, fn, fp = cm[i, i], cm[i, :].sum() - cm[i, i], cm[:, i].sum() - cm[i, i]
        den = {"right": tp + fp + fn, "twice": 2 * tp + fp + fn, "row": tp + fn, "column": tp + fp}[union]
        out[i] = scale * tp / den if den > 0 else absent
    return out


def test_iou_mine_is_right():
    assert exercises.check("iou_per_class", iou_mine).passed


@pytest.mark.parametrize("kw, title", [
    ({"absent": 0.0}, "class absent from both prediction and target given IoU 0 instead of NaN"),
    ({"union": "twice"}, "TP + FP + FN with TP counted twice (union = row + column sums without subtracting TP)"),
    ({"union": "row"}, "pixel accuracy of the class instead of IoU"),
    ({"union": "column"}, "precision of the class instead of IoU (TP / column sum)"),
    ({"scale": 100.0}, "IoU in percent (x 100) instead of a fraction"),
])
def test_iou_mistakes_are_named(kw, title):
    r = exercises.check("iou_per_class", lambda cm: iou_mine(cm, **kw))
    assert not r.passed
    assert r.diagnosis == title, r.diagnosis
    assert r.hint


def test_iou_integer_division_gets_its_message():
    def mine(cm):
        tp = np.diagonal(cm)
        return tp // np.maximum(cm.sum(0) + cm.sum(1) - tp, 1)
    r = exercises.check("iou_per_class", mine)
    assert r.diagnosis.startswith("expected iou as a float64 array")
    assert "got dtype int64" in r.diagnosis


def test_iou_wrong_shape():
    r = exercises.check("iou_per_class", lambda cm: iou_per_class(cm)[:-1])
    assert r.diagnosis == "expected iou of shape (2,), got shape (1,)"


def test_iou_cases_hold_absent_and_unpredicted_classes():
    cms = [c.args[0] for c in em.ex_iou_per_class.make_cases()]
    ious = [iou_per_class(cm) for cm in cms]
    assert any(np.isnan(v).any() for v in ious)
    assert any(((cm.sum(1) == 0) & (cm.sum(0) > 0)).any() for cm in cms)    # IoU 0, not NaN


# =========================================================================== panoptic_quality

def pq_mine(images, categories, void_id=0, *, ge=False, void_union=False, pixels=False, crowd_fp=False):
    """A learner's plain PQ, written independently of minseg; the switches make the named mistakes."""
    cats = list(categories)
    acc = {c: {"tp": 0, "fp": 0, "fn": 0, "iou": 0.0, "pi": 0, "pu": 0} for c in cats}
    for pred_ids, pred_segs, gt_ids, gt_segs in images:
        void = gt_ids == void_id
        matched = set()
        for g in gt_segs:
            gm = gt_ids == g.id
            hit = None
            for p in pred_segs:
                pm = pred_ids == p.id
                if p.category_id != g.category_id or g.iscrowd:
                    continue
                inter = np.sum(gm & pm)
                union = np.sum(gm | pm) - (0 if void_union else np.sum(pm & void & ~gm))
                iou = inter / union
                if iou > 0.5 or (ge and iou == 0.5):
                    hit = (p.id, iou)
            if hit:
                matched.add(hit[0])
                acc[g.category_id]["tp"] += 1
                acc[g.category_id]["iou"] += hit[1]
            elif not g.iscrowd:
                acc[g.category_id]["fn"] += 1
        for p in pred_segs:
            if p.id in matched:
                continue
            pm = pred_ids == p.id
            on = pm & void
            if not crowd_fp:
                for g in gt_segs:
                    if g.iscrowd and g.category_id == p.category_id:
                        on = on | (pm & (gt_ids == g.id))
            if np.sum(on) * 2 <= np.sum(pm):
                acc[p.category_id]["fp"] += 1
        for c in cats:
            gc = np.isin(gt_ids, [g.id for g in gt_segs if g.category_id == c]) & ~void
            pc = np.isin(pred_ids, [p.id for p in pred_segs if p.category_id == c]) & ~void
            acc[c]["pi"] += int(np.sum(gc & pc))
            acc[c]["pu"] += int(np.sum(gc | pc))
    per = {}
    for c, a in acc.items():
        den = a["tp"] + 0.5 * a["fp"] + 0.5 * a["fn"]
        rq = a["tp"] / den
        sq = (a["pi"] / a["pu"]) if pixels else (a["iou"] / a["tp"] if a["tp"] else 0.0)
        per[c] = {"tp": a["tp"], "fp": a["fp"], "fn": a["fn"], "sq": sq, "rq": rq, "pq": sq * rq}
    out = {"per_class": per}
    for group, want in (("All", None), ("Things", True), ("Stuff", False)):
        rows = [per[c] for c in cats if want is None or categories[c] == want]
        out[group] = {k: float(np.mean([r[k] for r in rows])) for k in ("pq", "sq", "rq")}
    return out


def test_pq_mine_is_right():
    r = exercises.check("panoptic_quality", pq_mine)
    assert r.passed, str(r)


@pytest.mark.parametrize("kw, title", [
    ({"ge": True}, "match at IoU >= 0.5 instead of > 0.5"),
    ({"void_union": True}, "VOID pixels left in the union"),
    ({"pixels": True}, "IoU over pixels instead of matched segments (RQ/SQ mixed up)"),
    ({"crowd_fp": True}, "crowd regions not excluded from false positives"),
])
def test_pq_mistakes_are_named(kw, title):
    r = exercises.check("panoptic_quality", lambda images, categories, void_id=0: pq_mine(
        images, categories, void_id, **kw))
    assert not r.passed
    assert r.diagnosis == title, r.diagnosis


@pytest.mark.parametrize("m", em.ex_panoptic_quality.mistakes, ids=lambda m: m.key)
def test_every_pq_mistake_is_named_alone(m):
    r = exercises.check("panoptic_quality", m.fn)
    assert not r.passed and r.diagnosis == m.title


def test_pq_wrong_structure_messages():
    r = exercises.check("panoptic_quality", lambda images, categories, void_id=0: 0.5)
    assert r.diagnosis.startswith("expected panoptic_quality to return a dict")

    def no_things(images, categories, void_id=0):
        out = panoptic_quality(images, categories, void_id)
        del out["Things"]
        return out
    r = exercises.check("panoptic_quality", no_things)
    assert r.diagnosis == "expected result['Things'] to be a dict with key 'pq', got NoneType"

    def no_fn(images, categories, void_id=0):
        out = panoptic_quality(images, categories, void_id)
        for v in out["per_class"].values():
            del v["fn"]
        return out
    r = exercises.check("panoptic_quality", no_fn)
    assert r.diagnosis.startswith("expected result['per_class'][0] to be a dict with key 'fn'")


def test_pq_variant_without_switches_is_minseg():
    for case in em.ex_panoptic_quality.make_cases():
        a = em._pq_extract(panoptic_quality(*case.args), case)
        b = em._pq_extract(em._pq_variant(*case.args), case)
        for x, y in zip(a, b):
            np.testing.assert_allclose(x, y, rtol=1e-12)


def test_pq_cases_hold_the_boundaries():
    cases = em.ex_panoptic_quality.make_cases()
    rows = [r for c in cases[:3] for r in explain_panoptic(*c.args[0][0], c.args[1])]
    reasons = " | ".join(r.reason for r in rows)
    assert "IoU 0.500" in reasons                                         # the exact-half pair, unmatched
    assert any(r.role == "ignored" and "crowd" in r.reason for r in rows)
    assert any(r.role == "FP" and "= 50%" in r.reason for r in rows)      # half on VOID: still a FP
    assert any(r.role == "ignored" and "+ 0 px on crowd" in r.reason for r in rows)  # mostly on VOID
    for case in cases:
        image, categories = case.args
        assert em._ge_matches_unique(image[0])
        r = panoptic_quality(image, categories)
        assert all(c["tp"] + c["fp"] + c["fn"] > 0 for c in r["per_class"].values())
        assert r["Things"]["n"] > 0 and r["Stuff"]["n"] > 0

"""Panoptic quality PQ = SQ x RQ exactly as the COCO panoptic API computes it, and instances from semantics.

Per category, over the whole dataset::

    PQ = sum_{(p, g) in TP} IoU(p, g) / (|TP| + |FP| / 2 + |FN| / 2)
       = [sum IoU / |TP|] x [|TP| / (|TP| + |FP| / 2 + |FN| / 2)] = SQ x RQ

computed exactly as ``pq_compute`` in the COCO panoptic API
(github.com/cocodataset/panopticapi, ``panopticapi/evaluation.py``):

* VOID (id ``void_id``, 0 by default as in the COCO PNGs) ground-truth pixels
  leave the union: ``IoU = |p & g| / (|p| + |g| - |p & g| - |p & VOID|)``.
* A prediction matches a non-crowd ground-truth segment of the same category
  when their IoU is *strictly* greater than 0.5 (such a match is unique).
* An unmatched non-crowd ground-truth segment is a false negative; a crowd
  segment never is.
* An unmatched prediction is *not* a false positive when more than half of its
  pixels lie on VOID plus the crowd region of its own category. Like the
  reference, only the *last-listed* crowd segment of a category in an image is
  that crowd region.
* IoU sums and TP / FP / FN counts accumulate per category over the dataset;
  a category with TP + FP + FN = 0 is left out of the averages (All, Things,
  Stuff). The averages are plain means of the per-category PQ, SQ and RQ, so
  averaged PQ is **not** averaged SQ x averaged RQ. A category with TP = 0 but
  FP + FN > 0 has SQ = 0 and counts in the averages.

Where minseg differs from panopticapi it says so: a category with no TP, FP or
FN reports NaN for its own PQ / SQ / RQ (panopticapi writes 0.0; neither
averages it), an average over zero categories is NaN (panopticapi raises
ZeroDivisionError), segment areas are always counted from the id maps
(panopticapi takes ground-truth areas from the JSON, which COCO keeps equal
to the PNG counts), and inconsistent inputs (an id in a map that is not
listed, a listed segment with no pixels, an unknown category) raise
``ValueError``.

Also here: :func:`explain_panoptic` (why one image scores what it scores),
:func:`encode_panoptic` / :func:`decode_panoptic` for the common
``category * label_divisor + instance`` ids, and :func:`connected_components`
/ :func:`instances_from_semantic`, a simple instance baseline.

References
----------
A. Kirillov, K. He, R. Girshick, C. Rother, P. Dollar, "Panoptic
Segmentation", CVPR 2019, Sec. 4 (PQ = SQ x RQ).
COCO panoptic API, ``pq_compute`` in ``panopticapi/evaluation.py``
(github.com/cocodataset/panopticapi).
"""
from __future__ import annotations

from typing import NamedTuple

import numpy as np

from .backend import get_array_module, to_numpy
from ._checks import check_labels, check_same_shape, pct, show_values
from .shapes import _is_int

__all__ = [
    "Segment",
    "encode_panoptic",
    "decode_panoptic",
    "pq_per_category",
    "PanopticQuality",
    "panoptic_quality",
    "ExplainRow",
    "PanopticExplanation",
    "explain_panoptic",
    "connected_components",
    "instances_from_semantic",
]


# =========================================================================== panoptic: inputs

class Segment(NamedTuple):
    """One segment of a panoptic id map, as in a COCO ``segments_info`` entry.

    ``iscrowd`` only matters for ground truth (the reference never reads it
    on predictions).
    """

    id: int
    category_id: int
    iscrowd: bool = False


def _as_segments(segments, name: str, op: str) -> list[Segment]:
    """Normalise a list of Segment / (id, category[, iscrowd]) / COCO dicts; reject duplicate ids."""
    out = []
    for s in segments:
        if type(s) is Segment and type(s.id) is int and type(s.category_id) is int and type(s.iscrowd) is bool:
            out.append(s)                                                   # already normal: the common case
            continue
        if isinstance(s, dict):
            try:
                s = Segment(s["id"], s["category_id"], bool(s.get("iscrowd", 0)))
            except KeyError as e:
                raise ValueError(f"{op}: expected every entry of {name} to have keys 'id' and "
                                 f"'category_id', got {s!r}") from e
        elif isinstance(s, (tuple, list)) and len(s) in (2, 3):
            s = Segment(*s)
        else:
            raise TypeError(f"{op}: expected {name} entries to be Segment, (id, category_id[, iscrowd]) "
                            f"or dicts, got {s!r}")
        if not (_is_int(s.id) and _is_int(s.category_id)):
            raise TypeError(f"{op}: expected integer id and category_id in {name}, got {s!r}")
        out.append(Segment(int(s.id), int(s.category_id), bool(s.iscrowd)))
    ids = [s.id for s in out]
    if len(set(ids)) != len(ids):
        dup = sorted({i for i in ids if ids.count(i) > 1})
        raise ValueError(f"{op}: expected unique segment ids in {name}, got repeated ids {dup}")
    return out


class _Categories(NamedTuple):
    ids: list           # category ids, in the order given
    isthing: np.ndarray  # (C,) bool
    names: list         # (C,) str
    index: dict         # category id -> position


def _as_categories(categories, op: str) -> _Categories:
    """Accept ``{id: isthing}``, ``{id: {"isthing":, "name":}}`` or a COCO list of category dicts."""
    if isinstance(categories, dict):
        items = list(categories.items())
    else:
        try:
            items = [(c["id"], c) for c in categories]
        except (TypeError, KeyError) as e:
            raise TypeError(f"{op}: expected categories as a dict {{category_id: isthing}} or a list of "
                            f"COCO category dicts with 'id' and 'isthing', got {categories!r}") from e
    ids, isthing, names = [], [], []
    for cid, info in items:
        if not _is_int(cid):
            raise TypeError(f"{op}: expected integer category ids, got {cid!r}")
        if isinstance(info, dict):
            if "isthing" not in info:
                raise ValueError(f"{op}: expected key 'isthing' for category {cid}, got {info!r}")
            thing, name = bool(info["isthing"]), str(info.get("name", cid))
        else:
            thing, name = bool(info), str(cid)
        ids.append(int(cid))
        isthing.append(thing)
        names.append(name)
    if not ids:
        raise ValueError(f"{op}: expected at least one category, got none")
    return _Categories(ids, np.array(isthing, dtype=bool), names, {c: i for i, c in enumerate(ids)})


def encode_panoptic(semantic, instance, thing_ids, label_divisor: int = 1000,
                    ignore_index: int | None = 255, void_id: int = -1):
    """Combine a semantic map and an instance map into panoptic ids ``category * label_divisor + instance``.

    Stuff categories get instance 0 (whatever ``instance`` holds there);
    ``ignore_index`` pixels become ``void_id``. The default ``void_id = -1``
    cannot collide with a real id (category 0 stuff encodes to 0). On a thing
    category, instance 0 means "no instance id": :func:`decode_panoptic`
    reads it as a crowd region (the Cityscapes convention).

    Parameters
    ----------
    semantic : ndarray of int, shape (H, W) or any shape
    instance : ndarray of int, same shape; in ``[0, label_divisor)`` on thing pixels
    thing_ids : iterable of int
    label_divisor : int
    ignore_index : int or None
    void_id : int

    Returns
    -------
    ndarray of int64, same shape

    Raises
    ------
    ValueError
        Negative categories, thing instance ids outside ``[0, label_divisor)``,
        or a ``label_divisor`` so large that an id would overflow int64.
    """
    op = "encode_panoptic"
    check_labels(semantic, "semantic", op)
    check_labels(instance, "instance", op)
    check_same_shape(semantic, instance, "semantic and instance", op)
    if not _is_int(label_divisor) or label_divisor < 1:
        raise ValueError(f"{op}: expected label_divisor to be an int >= 1, got {label_divisor!r}")
    xp = get_array_module(semantic, instance)
    sem = semantic.astype(xp.int64)
    ins = instance.astype(xp.int64)
    void = sem == ignore_index if ignore_index is not None else xp.zeros(sem.shape, dtype=bool)
    if bool((~void & (sem < 0)).any()):
        raise ValueError(f"{op}: expected semantic labels >= 0 (or ignore_index={ignore_index}), "
                         f"got {show_values(sem[~void & (sem < 0)])}")
    is_thing = xp.isin(sem, xp.asarray(list(thing_ids), dtype=xp.int64)) & ~void
    bad = is_thing & ((ins < 0) | (ins >= label_divisor))
    if bool(bad.any()):
        raise ValueError(f"{op}: expected thing instance ids in [0, {label_divisor}), "
                         f"got {show_values(ins[bad])}")
    largest = int(sem[~void].max()) if bool((~void).any()) else 0
    if largest * label_divisor + label_divisor - 1 > np.iinfo(np.int64).max:   # Python ints: no overflow here
        raise ValueError(f"{op}: expected (largest category + 1) * label_divisor <= 2**63 (int64 ids), "
                         f"got label_divisor={label_divisor} with largest category {largest}")
    pan = sem * label_divisor + xp.where(is_thing, ins, 0)
    return xp.where(void, void_id, pan)


def decode_panoptic(panoptic, label_divisor: int = 1000, void_id: int = -1, thing_ids=()):
    """Split an encoded panoptic map into an id map and its segment list.

    Each distinct value ``v != void_id`` is one segment with id ``v`` and
    category ``v // label_divisor``. A segment of a category in
    ``thing_ids`` with instance ``v % label_divisor == 0`` is marked crowd
    (thing pixels without an instance id; only meaningful for ground truth).

    Returns
    -------
    ids : ndarray of int64, same shape as ``panoptic``
        The encoded values themselves; VOID stays ``void_id``.
    segments : list of Segment
        Sorted by id.
    """
    op = "decode_panoptic"
    check_labels(panoptic, "panoptic", op)
    if not _is_int(label_divisor) or label_divisor < 1:
        raise ValueError(f"{op}: expected label_divisor to be an int >= 1, got {label_divisor!r}")
    xp = get_array_module(panoptic)
    ids = panoptic.astype(xp.int64)
    values = to_numpy(xp.unique(ids))                                      # sorted
    values = values[values != void_id]
    if values.size and values[0] < 0:
        raise ValueError(f"{op}: expected ids >= 0 or void_id={void_id}, got {show_values(values[values < 0])}")
    things = set(int(t) for t in thing_ids)
    segments = [Segment(int(v), int(v) // label_divisor,
                        int(v) // label_divisor in things and int(v) % label_divisor == 0) for v in values]
    return ids, segments


# =========================================================================== panoptic: one image

class _ImageMatch(NamedTuple):
    """Everything PQ needs from one image.

    Segments are sorted by id and indexed 0..G-1 (gt), 0..P-1 (pred). The
    pair table has one row per (gt, pred) pair of segments sharing at least
    one pixel, sorted by (gt id, pred id): the reference's ``gt_pred_map``
    without its VOID rows.
    """

    gt: list                   # (G,) Segment, sorted by id
    pred: list                 # (P,) Segment, sorted by id
    gt_cat: np.ndarray         # (G,) category position
    pred_cat: np.ndarray       # (P,) category position
    gt_crowd: np.ndarray       # (G,) bool
    gt_area: np.ndarray        # (G,) pixels
    pred_area: np.ndarray      # (P,) pixels
    pred_void: np.ndarray      # (P,) pixels of p on gt VOID
    pair_gt: np.ndarray        # (Q,) gt index
    pair_pred: np.ndarray      # (Q,) pred index
    pair_inter: np.ndarray     # (Q,) |g & p|
    pair_union: np.ndarray     # (Q,) |g| + |p| - |g & p| - |p & VOID|
    pair_match: np.ndarray     # (Q,) bool: same category, non-crowd gt, IoU > 0.5 -- the TPs
    crowd_of_pred: np.ndarray  # (P,) gt index of the crowd region of p's category, -1 if none
    absorbed: np.ndarray       # (P,) pixels of p on VOID + that crowd region
    fp_ignored: np.ndarray     # (P,) bool: unmatched but more than half absorbed


# A lookup table remaps ids when their range is at most this many ids per pixel (else binary search).
_LUT_IDS_PER_PIXEL = 8
# Pairs are counted with one bincount over all (G+1)(P+1) bins when there are at most this many bins
# per pixel (the usual case: tens of segments); else with a sort (np.unique) over the pixels.
_BINS_PER_PIXEL = 4


def _dense_ids(ids, keys: np.ndarray, void_id: int, scale: int, dtype, name: str, op: str):
    """Map each pixel's segment id to ``scale x`` its dense index: 0 for VOID, ``1 + i`` for ``keys[i]``.

    ``known = [void_id, *keys]`` and the dense index of an id is its position
    in ``known``. When the ids in the map span a narrow range (at most
    ``_LUT_IDS_PER_PIXEL`` ids per pixel), a lookup table over that range
    does it with one gather per pixel; otherwise (ids spread far apart, as
    COCO's ``rgb2id`` ids can be) a binary search per pixel. ``dtype`` is the
    smallest integer type that holds the result: the table is filled faster.
    An id that is neither VOID nor listed raises.

    Returns
    -------
    ndarray of ``dtype``, shape (M,)  with M = ids.size
    """
    xp = get_array_module(ids)
    flat = ids.reshape(-1)                                                  # (M,)
    if flat.dtype.kind == "b" or flat.dtype.itemsize == 8:
        flat = flat.astype(xp.int64, copy=False)
    if flat.size == 0:
        return xp.zeros(0, dtype=dtype)
    known = np.concatenate([[void_id], keys]).astype(np.int64)             # (S+1,)
    lo, hi = int(flat.min()), int(flat.max())
    if hi - lo <= _LUT_IDS_PER_PIXEL * flat.size:
        lut = xp.full(hi - lo + 1, -1, dtype=dtype)                         # id - lo -> scale x index, -1 unlisted
        inside = (known >= lo) & (known <= hi)
        lut[xp.asarray(known[inside] - lo)] = xp.asarray((np.flatnonzero(inside) * scale).astype(dtype))
        dense = xp.take(lut, flat if lo == 0 else flat.astype(xp.int64) - lo)
    else:
        order = np.argsort(known)
        sorted_known = xp.asarray(known[order])
        pos = xp.minimum(xp.searchsorted(sorted_known, flat), known.size - 1)
        dense = xp.where(sorted_known[pos] == flat, xp.asarray(order * scale)[pos], -1).astype(dtype)
    if int(dense.min()) < 0:
        raise ValueError(f"{op}: expected every id in {name}_ids to be void_id={void_id} or listed in "
                         f"{name}_segments, got unlisted ids {show_values(flat[dense < 0])}")
    return dense


def _match_image(pred_ids, pred_segments, gt_ids, gt_segments, cats: _Categories, void_id: int,
                 op: str) -> _ImageMatch:
    """Pair the segments of one image: count (gt, pred) pixel pairs at once, then apply the rules."""
    check_labels(pred_ids, "pred_ids", op)
    check_labels(gt_ids, "gt_ids", op)
    check_same_shape(pred_ids, gt_ids, "pred_ids and gt_ids", op)
    xp = get_array_module(pred_ids, gt_ids)
    gt_listed = _as_segments(gt_segments, "gt_segments", op)
    gt = sorted(gt_listed, key=lambda s: s.id)
    pred = sorted(_as_segments(pred_segments, "pred_segments", op), key=lambda s: s.id)
    for name, segs in (("gt", gt), ("pred", pred)):
        if any(s.id == void_id for s in segs):
            raise ValueError(f"{op}: expected no segment in {name}_segments with the VOID id {void_id}")
        unknown = sorted({s.category_id for s in segs if s.category_id not in cats.index})
        if unknown:
            raise ValueError(f"{op}: expected {name} category ids among {cats.ids}, got unknown {unknown}")
    G, P = len(gt), len(pred)

    # One key per pixel for its (gt, pred) pair of dense indices (0 = VOID): key = (P + 1) g + p.
    bins = (G + 1) * (P + 1)
    dtype = np.int16 if bins < 2**15 else np.int32 if bins < 2**31 else np.int64
    gt_keys = np.array([s.id for s in gt], dtype=np.int64)
    pred_keys = np.array([s.id for s in pred], dtype=np.int64)
    key = (_dense_ids(gt_ids, gt_keys, void_id, P + 1, dtype, "gt", op)             # (M,) (P + 1) g
           + _dense_ids(pred_ids, pred_keys, void_id, 1, dtype, "pred", op))        # (M,) + p
    if bins <= _BINS_PER_PIXEL * max(key.size, 1024):
        counts = xp.bincount(key, minlength=bins)                           # (bins,)
        keys = xp.flatnonzero(counts)
        counts = counts[keys]
    else:
        keys, counts = xp.unique(key, return_counts=True)
    keys, counts = to_numpy(keys).astype(np.int64), to_numpy(counts).astype(np.int64)   # (Q0,) sorted
    gi, pj = keys // (P + 1), keys % (P + 1)                                # dense, 0 = VOID

    gt_area = np.bincount(gi, weights=counts, minlength=G + 1)[1:].astype(np.int64)    # (G,)
    pred_area = np.bincount(pj, weights=counts, minlength=P + 1)[1:].astype(np.int64)  # (P,)
    for name, segs, area in (("gt", gt, gt_area), ("pred", pred, pred_area)):
        if (area == 0).any():
            raise ValueError(f"{op}: expected every segment in {name}_segments to have pixels in "
                             f"{name}_ids, got no pixels for ids {[s.id for s, a in zip(segs, area) if a == 0]}")
    on_void = (gi == 0) & (pj > 0)
    pred_void = np.zeros(P, dtype=np.int64)
    pred_void[pj[on_void] - 1] = counts[on_void]                            # one VOID row per pred
    real = (gi > 0) & (pj > 0)
    pair_gt, pair_pred, pair_inter = gi[real] - 1, pj[real] - 1, counts[real]  # (Q,)

    gt_cat = np.array([cats.index[s.category_id] for s in gt], dtype=np.int64)
    pred_cat = np.array([cats.index[s.category_id] for s in pred], dtype=np.int64)
    gt_crowd = np.array([s.iscrowd for s in gt], dtype=bool)

    # IoU with VOID removed from the prediction: union = |g| + |p| - |g & p| - |p & VOID|.
    pair_union = gt_area[pair_gt] + pred_area[pair_pred] - pair_inter - pred_void[pair_pred]
    # IoU > 0.5 tested exactly in integers: I / U > 1/2  <=>  2 I > U.
    pair_match = ((gt_cat[pair_gt] == pred_cat[pair_pred]) & ~gt_crowd[pair_gt]
                  & (2 * pair_inter > pair_union))
    pred_matched = np.zeros(P, dtype=bool)
    pred_matched[pair_pred[pair_match]] = True

    # The crowd region of a category is its last-listed crowd segment (as the reference's dict does).
    index_of = {s.id: i for i, s in enumerate(gt)}
    crowd_of_cat = np.full(len(cats.ids), -1, dtype=np.int64)
    for s in gt_listed:                                                     # listed order
        if s.iscrowd:
            crowd_of_cat[cats.index[s.category_id]] = index_of[s.id]
    crowd_of_pred = crowd_of_cat[pred_cat]                                  # (P,)
    on_crowd = pair_gt == crowd_of_pred[pair_pred]                          # (Q,) at most one row per pred
    absorbed = pred_void.copy()
    absorbed[pair_pred[on_crowd]] += pair_inter[on_crowd]
    fp_ignored = ~pred_matched & (2 * absorbed > pred_area)                 # > 50 %, exact in integers
    return _ImageMatch(gt, pred, gt_cat, pred_cat, gt_crowd, gt_area, pred_area, pred_void,
                       pair_gt, pair_pred, pair_inter, pair_union, pair_match,
                       crowd_of_pred, absorbed, fp_ignored)


# =========================================================================== panoptic: scores

def pq_per_category(iou_sum, tp, fp, fn):
    """PQ, SQ, RQ of one category from its dataset-level sums.

    ``PQ = iou_sum / (tp + fp/2 + fn/2)``, ``SQ = iou_sum / tp`` (0 when
    ``tp = 0``), ``RQ = tp / (tp + fp/2 + fn/2)``; ``PQ = SQ x RQ``.

    Returns
    -------
    (pq, sq, rq) : tuple of float
        All NaN when ``tp + fp + fn = 0`` (the category is not scored).
    """
    if tp + fp + fn == 0:
        return float("nan"), float("nan"), float("nan")
    den = tp + 0.5 * fp + 0.5 * fn
    return iou_sum / den, (iou_sum / tp if tp != 0 else 0.0), tp / den


class PanopticQuality:
    """Streaming panoptic quality over a dataset, exactly as COCO's ``pq_compute``.

    >>> pq = PanopticQuality({1: True, 2: False})            # 1: a thing, 2: stuff
    >>> gt = np.array([[1, 1, 2, 2]]); pred = np.array([[5, 5, 5, 6]])
    >>> pq.update(pred, [Segment(5, 1), Segment(6, 2)], gt, [Segment(1, 1), Segment(2, 2)])
    >>> r = pq.compute(); round(r["All"]["pq"], 4), r["All"]["n"]
    (0.3333, 2)

    Parameters
    ----------
    categories : dict or list
        ``{category_id: isthing}``, ``{category_id: {"isthing": 0/1, "name": str}}``
        or COCO's list of category dicts (``id``, ``isthing``, ``name``).
    void_id : int
        Id of unlabelled pixels in the id maps (0 in COCO PNGs after ``rgb2id``).

    Attributes
    ----------
    iou_sum : numpy.ndarray of float64, shape (C,)
    tp, fp, fn : numpy.ndarray of int64, shape (C,)
        Per category, in the order of ``categories``.
    """

    def __init__(self, categories, void_id: int = 0):
        self.categories = _as_categories(categories, "PanopticQuality")
        if not _is_int(void_id):
            raise TypeError(f"PanopticQuality: expected void_id to be an int, got {void_id!r}")
        self.void_id = int(void_id)
        self.reset()

    def reset(self) -> None:
        """Forget everything accumulated so far."""
        C = len(self.categories.ids)
        self.iou_sum = np.zeros(C, dtype=np.float64)
        self.tp = np.zeros(C, dtype=np.int64)
        self.fp = np.zeros(C, dtype=np.int64)
        self.fn = np.zeros(C, dtype=np.int64)

    def update(self, pred_ids, pred_segments, gt_ids, gt_segments) -> None:
        """Add one image.

        Parameters
        ----------
        pred_ids, gt_ids : ndarray of int, shape (H, W)
            Segment id per pixel; ``void_id`` = unlabelled. Every non-VOID id
            must be listed in the matching segment list.
        pred_segments, gt_segments : list of Segment, (id, category_id[, iscrowd]) or COCO dicts
            Every listed segment must have pixels.
        """
        self._add(_match_image(pred_ids, pred_segments, gt_ids, gt_segments, self.categories, self.void_id,
                               "PanopticQuality.update"))

    def update_encoded(self, pred_panoptic, gt_panoptic, label_divisor: int = 1000, void_id: int = -1) -> None:
        """Add one image given as ``category * label_divisor + instance`` maps (see :func:`encode_panoptic`).

        ``void_id`` is the VOID value of these maps (-1 from :func:`encode_panoptic`),
        independent of ``self.void_id``. A ground-truth segment of a thing
        category with instance 0 is a crowd region.
        """
        things = [c for c, t in zip(self.categories.ids, self.categories.isthing) if t]
        pred_ids, pred_segments = decode_panoptic(pred_panoptic, label_divisor, void_id)
        gt_ids, gt_segments = decode_panoptic(gt_panoptic, label_divisor, void_id, thing_ids=things)
        self._add(_match_image(pred_ids, pred_segments, gt_ids, gt_segments, self.categories, void_id,
                               "PanopticQuality.update_encoded"))

    def _add(self, m: _ImageMatch) -> None:
        """Accumulate one image's IoU sums and TP / FP / FN counts per category."""
        C = len(self.categories.ids)
        tp = np.flatnonzero(m.pair_match)                                   # sorted by (gt id, pred id)
        for q in tp:                                                        # at most one per segment
            self.iou_sum[m.gt_cat[m.pair_gt[q]]] += m.pair_inter[q] / m.pair_union[q]
        gt_matched = np.zeros(len(m.gt), dtype=bool)
        gt_matched[m.pair_gt[tp]] = True
        pred_matched = np.zeros(len(m.pred), dtype=bool)
        pred_matched[m.pair_pred[tp]] = True
        self.tp += np.bincount(m.gt_cat[m.pair_gt[tp]], minlength=C)
        self.fn += np.bincount(m.gt_cat[~gt_matched & ~m.gt_crowd], minlength=C)
        self.fp += np.bincount(m.pred_cat[~pred_matched & ~m.fp_ignored], minlength=C)

    def compute(self) -> dict:
        """PQ / SQ / RQ per category and averaged over All, Things and Stuff.

        Returns
        -------
        dict
            ``"All"``, ``"Things"``, ``"Stuff"``: ``{"pq", "sq", "rq", "n"}``,
            means over the ``n`` categories with TP + FP + FN > 0 (NaN when
            ``n = 0``). ``"per_class"``: ``{category_id: {"pq", "sq", "rq",
            "tp", "fp", "fn", "iou_sum", "isthing", "name"}}``. Fractions in [0, 1].
        """
        cats = self.categories
        per_class = {}
        for i, cid in enumerate(cats.ids):
            pq, sq, rq = pq_per_category(float(self.iou_sum[i]), int(self.tp[i]), int(self.fp[i]), int(self.fn[i]))
            per_class[cid] = {"pq": pq, "sq": sq, "rq": rq, "tp": int(self.tp[i]), "fp": int(self.fp[i]),
                              "fn": int(self.fn[i]), "iou_sum": float(self.iou_sum[i]),
                              "isthing": bool(cats.isthing[i]), "name": cats.names[i]}
        results = {}
        for group, want in (("All", None), ("Things", True), ("Stuff", False)):
            pq = sq = rq = 0.0
            n = 0
            for i, cid in enumerate(cats.ids):                              # category order, as the reference
                r = per_class[cid]
                if (want is not None and bool(cats.isthing[i]) != want) or r["tp"] + r["fp"] + r["fn"] == 0:
                    continue
                n += 1
                pq, sq, rq = pq + r["pq"], sq + r["sq"], rq + r["rq"]
            nan = float("nan")
            results[group] = {"pq": pq / n if n else nan, "sq": sq / n if n else nan,
                              "rq": rq / n if n else nan, "n": n}
        results["per_class"] = per_class
        return results

    def table(self) -> str:
        """Per-category PQ / SQ / RQ (in %) with counts, then All / Things / Stuff like panopticapi prints."""
        r = self.compute()
        width = max(10, *(len(n) for n in self.categories.names))
        head = f"{'':<{width}}| {'PQ':>6} {'SQ':>6} {'RQ':>6} {'TP':>6} {'FP':>6} {'FN':>6}  kind"
        lines = [head, "-" * len(head)]
        for cid, c in r["per_class"].items():
            lines.append(f"{c['name']:<{width}}| {pct(c['pq'])} {pct(c['sq'])} {pct(c['rq'])} "
                         f"{c['tp']:>6d} {c['fp']:>6d} {c['fn']:>6d}  {'thing' if c['isthing'] else 'stuff'}")
        lines += ["-" * len(head), f"{'':<{width}}| {'PQ':>6} {'SQ':>6} {'RQ':>6} {'N':>6}"]
        for group in ("All", "Things", "Stuff"):
            g = r[group]
            lines.append(f"{group:<{width}}| {pct(g['pq'])} {pct(g['sq'])} {pct(g['rq'])} {g['n']:>6d}")
        return "\n".join(lines)

    def __repr__(self) -> str:
        return f"PanopticQuality(categories={len(self.categories.ids)}, void_id={self.void_id})"


def panoptic_quality(images, categories, void_id: int = 0) -> dict:
    """One-shot PQ over a list of images: ``PanopticQuality(categories, void_id)`` updated with each.

    Parameters
    ----------
    images : iterable of (pred_ids, pred_segments, gt_ids, gt_segments)
    categories, void_id
        As for :class:`PanopticQuality`.

    Returns
    -------
    dict
        As :meth:`PanopticQuality.compute`.
    """
    pq = PanopticQuality(categories, void_id=void_id)
    for image in images:
        pq.update(*image)
    return pq.compute()


# =========================================================================== panoptic: explain

class ExplainRow(NamedTuple):
    """One segment's part in an image's PQ: ``role`` is TP, FP, FN, crowd (gt) or ignored (pred)."""

    side: str               # "gt" or "pred"
    id: int
    category_id: int
    role: str
    iou: float              # IoU with the partner for TP, NaN otherwise
    partner: int | None     # id of the matched segment for TP
    area: int               # pixels
    reason: str


class PanopticExplanation(list):
    """The rows of :func:`explain_panoptic`; ``str()`` prints them as a table."""

    def table(self) -> str:
        """A fixed-width table: side, id, category, role, IoU, partner, area, reason."""
        head = f"{'side':<5} {'id':>8} {'cat':>5} {'role':<8} {'IoU':>6} {'partner':>8} {'area':>8}  reason"
        lines = [head, "-" * len(head)]
        for r in self:
            iou = "" if r.iou != r.iou else f"{r.iou:.3f}"
            partner = "" if r.partner is None else str(r.partner)
            lines.append(f"{r.side:<5} {r.id:>8} {r.category_id:>5} {r.role:<8} {iou:>6} {partner:>8} "
                         f"{r.area:>8}  {r.reason}")
        if not self:
            lines.append("(no segments)")
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.table()


def _best_overlap(m: _ImageMatch, rows: np.ndarray, segs: list, side_of: np.ndarray, same_cat) -> str:
    """Describe the largest-IoU overlap among the pair-table ``rows`` of one segment."""
    if rows.size == 0:
        return "overlaps no segment"
    iou = m.pair_inter[rows] / m.pair_union[rows]
    k = int(np.argmax(iou))
    other = int(side_of[rows[k]])
    kind = "same category" if same_cat(other) else f"category {segs[other].category_id}"
    kind += ", crowd" if segs[other].iscrowd else ""
    return f"best overlap is {segs[other].id} ({kind}) with IoU {iou[k]:.3f}"


def explain_panoptic(pred_ids, pred_segments, gt_ids, gt_segments, categories, void_id: int = 0):
    """Why one image scores what it scores: every segment as TP, FP, FN, crowd or ignored, with the reason.

    Roles, following COCO's ``pq_compute``:

    * ``TP`` -- matched (same category, IoU > 0.5); ``iou`` and ``partner`` given.
    * ``FN`` -- a non-crowd ground-truth segment with no match.
    * ``crowd`` -- a crowd ground-truth segment: never a false negative.
    * ``FP`` -- an unmatched prediction with at most half of its pixels on
      VOID + the crowd region of its category.
    * ``ignored`` -- an unmatched prediction with more than half on them.

    Parameters
    ----------
    As :meth:`PanopticQuality.update`, plus ``categories`` and ``void_id``.

    Returns
    -------
    PanopticExplanation
        A list of :class:`ExplainRow`, ground truth first, each side sorted by
        id; ``print()`` it for a table.
    """
    cats = _as_categories(categories, "explain_panoptic")
    m = _match_image(pred_ids, pred_segments, gt_ids, gt_segments, cats, void_id, "explain_panoptic")
    rows = PanopticExplanation()
    for i, s in enumerate(m.gt):
        mine = np.flatnonzero(m.pair_gt == i)                               # its rows in the pair table
        tp = mine[m.pair_match[mine]]
        area = int(m.gt_area[i])
        if tp.size:
            q = int(tp[0])
            iou = m.pair_inter[q] / m.pair_union[q]
            rows.append(ExplainRow("gt", s.id, s.category_id, "TP", float(iou), m.pred[m.pair_pred[q]].id, area,
                                   f"matched: same category and IoU {iou:.3f} > 0.5"))
        elif m.gt_crowd[i]:
            rows.append(ExplainRow("gt", s.id, s.category_id, "crowd", float("nan"), None, area,
                                   "crowd region: never a false negative"))
        else:
            best = _best_overlap(m, mine, m.pred, m.pair_pred, lambda k: m.pred_cat[k] == m.gt_cat[i])
            rows.append(ExplainRow("gt", s.id, s.category_id, "FN", float("nan"), None, area,
                                   f"no prediction of its category with IoU > 0.5; {best}"))
    for j, s in enumerate(m.pred):
        mine = np.flatnonzero(m.pair_pred == j)
        tp = mine[m.pair_match[mine]]
        area = int(m.pred_area[j])
        if tp.size:
            q = int(tp[0])
            iou = m.pair_inter[q] / m.pair_union[q]
            rows.append(ExplainRow("pred", s.id, s.category_id, "TP", float(iou), m.gt[m.pair_gt[q]].id, area,
                                   f"matched: same category and IoU {iou:.3f} > 0.5"))
            continue
        void, absorbed = int(m.pred_void[j]), int(m.absorbed[j])
        crowd = f" + {absorbed - void} px on crowd {m.gt[m.crowd_of_pred[j]].id}" if m.crowd_of_pred[j] >= 0 else ""
        share = f"{void} px on VOID{crowd} = {absorbed}/{area} = {absorbed / area:.0%}"
        if m.fp_ignored[j]:
            rows.append(ExplainRow("pred", s.id, s.category_id, "ignored", float("nan"), None, area,
                                   f"unmatched, but {share} > 50%: not a false positive"))
        else:
            best = _best_overlap(m, mine, m.gt, m.pair_gt, lambda k: m.gt_cat[k] == m.pred_cat[j])
            rows.append(ExplainRow("pred", s.id, s.category_id, "FP", float("nan"), None, area,
                                   f"unmatched ({best}); {share} <= 50%"))
    return rows


# =========================================================================== instances

def _label_components(values, fg, connectivity: int):
    """Label the connected regions of equal ``values`` inside ``fg``; 0 outside ``fg``.

    Runs first, then hook-and-jump on the graph of runs, all vectorised:

    1. A *run* is a maximal horizontal stretch of one value inside ``fg``.
       Every pixel points to its run's first pixel: ``parent`` is a forest
       whose roots are run starts.
    2. Edges join runs in neighbouring rows (vertically, plus diagonally for
       8-connectivity) where the pixels have equal values.
    3. Each round, every edge whose ends sit in different trees hooks the
       larger root onto the smaller one (a minimum per root, found by sorting
       the edges), then pointer jumping ``parent = parent[parent]`` flattens
       every tree (Shiloach-Vishkin style). Each round merges every tree with
       at least one neighbour, so O(log n) rounds.

    A component's root ends as its smallest flat index, i.e. its first pixel
    in raster order, so labels 1, 2, ... follow raster order like
    ``scipy.ndimage.label``.

    Returns
    -------
    labels : ndarray of int64, shape (H, W)
    parent : ndarray of int64, shape (H * W,)  root (first pixel) of each pixel's component
    """
    xp = get_array_module(values, fg)
    H, W = values.shape
    n = H * W
    v, f = values.reshape(-1), fg.reshape(-1)                               # (n,)

    # 1. runs: a run starts where fg begins or the value changes along the row
    start = fg.copy()                                                       # (H, W)
    start[:, 1:] &= ~(fg[:, :-1] & (values[:, 1:] == values[:, :-1]))
    start = start.reshape(-1)
    run_first = xp.flatnonzero(start)                                       # (R,) first pixel of each run
    run_of = xp.maximum(xp.cumsum(start) - 1, 0)                            # (n,) run index (fg pixels)
    all_idx = xp.arange(n, dtype=xp.int64)
    parent = xp.where(f, run_first[run_of] if run_first.size else all_idx, all_idx)   # (n,)

    # 2. edges between runs of neighbouring rows
    idx = all_idx.reshape(H, W)
    pairs = [(idx[:-1, :], idx[1:, :])]                                     # down
    if connectivity == 8:
        pairs += [(idx[:-1, :-1], idx[1:, 1:]), (idx[:-1, 1:], idx[1:, :-1])]  # down-right, down-left
    us, ws = [], []
    for a, b in pairs:
        a, b = a.reshape(-1), b.reshape(-1)
        keep = f[a] & f[b] & (v[a] == v[b])
        ra, rb = parent[a[keep]], parent[b[keep]]                           # run roots, in raster order
        new = xp.ones(ra.shape, dtype=bool)                                 # drop repeats of the previous edge
        new[1:] = (ra[1:] != ra[:-1]) | (rb[1:] != rb[:-1])
        us.append(ra[new])
        ws.append(rb[new])
    u, w = xp.concatenate(us), xp.concatenate(ws)                           # (E,)

    # 3. hook and jump until no edge joins two trees
    while True:
        ru, rw = parent[u], parent[w]
        differ = ru != rw
        u, w, ru, rw = u[differ], w[differ], ru[differ], rw[differ]          # drop edges inside a tree
        if u.size == 0:
            break
        hi, lo = xp.maximum(ru, rw), xp.minimum(ru, rw)
        key = xp.sort(hi * n + lo)                                          # by root, then smallest partner
        hi, lo = key // n, key % n
        first = xp.ones(hi.shape, dtype=bool)
        first[1:] = hi[1:] != hi[:-1]
        parent[hi[first]] = lo[first]                                       # each root hooked once
        while True:                                                         # pointer jumping
            jumped = parent[parent]
            if bool((jumped == parent).all()):
                break
            parent = jumped
    is_root = f & (parent == all_idx)
    label_of = xp.cumsum(is_root)                                           # roots numbered in raster order
    labels = xp.where(f, label_of[parent], 0).reshape(H, W)
    return labels, parent


def _check_connectivity(connectivity, op: str) -> None:
    if connectivity not in (4, 8):
        raise ValueError(f"{op}: expected connectivity 4 or 8, got {connectivity!r}")


def connected_components(mask, connectivity: int = 4):
    """Label the connected regions of a 2-D boolean mask.

    Same output as ``scipy.ndimage.label`` (4-connectivity: its default
    cross structure; 8: ``structure=np.ones((3, 3))``): background 0,
    components 1..num numbered in raster order of their first pixel.

    Parameters
    ----------
    mask : ndarray of bool (or 0/1 int), shape (H, W)
    connectivity : {4, 8}
        4: edge neighbours; 8: edge and corner neighbours.

    Returns
    -------
    labels : ndarray of int64, shape (H, W)
    num : int
    """
    op = "connected_components"
    check_labels(mask, "mask", op)
    if mask.ndim != 2:
        raise ValueError(f"{op}: expected mask of shape (H, W), got shape {tuple(mask.shape)}")
    _check_connectivity(connectivity, op)
    fg = mask != 0
    labels, _ = _label_components(fg, fg, connectivity)
    return labels, int(labels.max()) if labels.size else 0


def instances_from_semantic(semantic, thing_ids, connectivity: int = 4):
    """Instance baseline: each connected region of a thing class is one instance.

    Instance ids are numbered 1, 2, ... *per class*, in raster order of each
    region's first pixel; stuff, ignored and other pixels get 0. Combine with
    :func:`encode_panoptic` for panoptic ids.

    Parameters
    ----------
    semantic : ndarray of int, shape (H, W)
    thing_ids : iterable of int
    connectivity : {4, 8}

    Returns
    -------
    ndarray of int64, shape (H, W)
    """
    op = "instances_from_semantic"
    check_labels(semantic, "semantic", op)
    if semantic.ndim != 2:
        raise ValueError(f"{op}: expected semantic of shape (H, W), got shape {tuple(semantic.shape)}")
    _check_connectivity(connectivity, op)
    xp = get_array_module(semantic)
    sem = semantic.astype(xp.int64)
    fg = xp.isin(sem, xp.asarray(list(thing_ids), dtype=xp.int64))
    _, parent = _label_components(sem, fg, connectivity)
    n = sem.size
    flat, fg = sem.reshape(-1), fg.reshape(-1)
    roots = xp.flatnonzero(fg & (parent == xp.arange(n)))                  # (R,) ascending = raster order
    if roots.size == 0:
        return xp.zeros(sem.shape, dtype=xp.int64)
    cls = flat[roots] - flat[roots].min()                                   # >= 0 for the sort key
    order = xp.argsort(cls * n + roots)                                     # by class, then raster order
    cls_sorted = cls[order]
    rank = xp.arange(roots.size) - xp.searchsorted(cls_sorted, cls_sorted) + 1   # 1, 2, ... per class
    inst_of_root = xp.zeros(n, dtype=xp.int64)
    inst_of_root[roots[order]] = rank
    return xp.where(fg, inst_of_root[parent], 0).reshape(sem.shape)

"""Scores of a framework's saved predictions: COCO panoptic folders (PQ) and label-PNG folders (mIoU).

Two readers behind ``minseg pq`` and ``minseg miou``:

* :func:`pq_from_coco` reads the COCO panoptic format -- a JSON file with
  ``categories`` and ``annotations`` (one per image: ``image_id``,
  ``file_name``, ``segments_info`` of ``id``, ``category_id``, ``iscrowd``,
  ``area``) and a folder of RGB PNGs whose colours are segment ids
  (``id = R + 256 G + 256^2 B``, :func:`minseg.data.convert.rgb_to_id`) --
  for the ground truth and for the predictions, and scores them with
  :class:`minseg.panoptic.PanopticQuality`, the rules of COCO's
  ``pq_compute`` (``panopticapi/evaluation.py``):

  - images pair by ``image_id``; the categories (and ``isthing``) come from
    the ground-truth JSON; id 0 is VOID;
  - a prediction and a non-crowd ground-truth segment of its category match
    when ``IoU > 0.5`` with ``union = |p| + |g| - |p & g| - |p & VOID|``;
  - an unmatched prediction is no false positive when more than half of it
    lies on VOID plus the crowd region of its category;
  - prediction areas are counted from the PNG (their ``area`` is not read);
    ground-truth areas are counted too, and a listed ``area`` that differs
    from the count is refused (``pq_compute`` would use the listed one, so
    the numbers could differ).

  Where ``pq_compute`` raises, this raises too (a predicted id missing from
  ``segments_info`` or the reverse, an unknown category, an image without a
  prediction); where it would go on silently with inconsistent ground truth
  (an id in a PNG that its ``segments_info`` does not list, a listed segment
  with no pixels), this refuses as well. Every error is one line naming the
  file. The IoUs are summed in the order of a one-process ``pq_compute``
  (by image, then by (gt id, pred id)), so the numbers agree bit for bit;
  its default multi-process run adds per-process sums, which can move the
  last bits.

* :func:`miou_from_folders` pairs label PNGs by file name (VOC style: one
  channel, or a palette PNG, of class ids; ``ignore_index`` for VOID) and
  accumulates one confusion matrix with
  :class:`minseg.metrics.SegmentationMetrics`.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from .data.convert import _need_dir, _need_file, _pil, _read_index_png
from .metrics import SegmentationMetrics
from .panoptic import PanopticQuality, Segment, _match_image

__all__ = ["read_panoptic_png", "pq_from_coco", "pq_text", "miou_from_folders"]

VOID = 0                       # the id of unlabelled pixels in COCO panoptic PNGs


# =========================================================================== COCO panoptic: reading

def read_panoptic_png(path, op: str = "read_panoptic_png") -> np.ndarray:
    """A COCO panoptic PNG as segment ids ``R + 256 G + 256^2 B``.

    Parameters
    ----------
    path : str or Path
        An RGB (or RGBA: the alpha channel is dropped, as COCO does) PNG.

    Returns
    -------
    ndarray of uint32, shape (H, W)
        Equal to ``rgb_to_id`` of the colours.

    Raises
    ------
    FileNotFoundError
        Missing file.
    ValueError
        Not an image, or not an RGB / RGBA one (a palette or grey PNG holds no
        segment colours); the message names the file.
    """
    path = _need_file(Path(path), op, "panoptic PNG")
    Image = _pil()
    try:
        with Image.open(path) as im:
            im.load()
            if im.mode not in ("RGB", "RGBA"):
                raise ValueError(f"expected an RGB PNG of segment colours, got mode {im.mode}")
            rgb = np.asarray(im)[..., :3].astype(np.uint32)                # (H, W, 3), alpha dropped
    except (OSError, SyntaxError, ValueError) as err:                       # PIL's errors are OSErrors
        raise ValueError(f"{op}: {str(path)!r} is corrupt or not a panoptic PNG: {err}") from None
    # rgb_to_id in uint32 (ids < 2^24 fit): half the memory traffic of its int64 arithmetic
    return rgb[..., 0] + 256 * rgb[..., 1] + 65536 * rgb[..., 2]          # (H, W) uint32


def _read_json(path: Path, op: str, what: str, keys) -> dict:
    """A JSON object with ``keys``, or a one-line error naming the file."""
    _need_file(path, op, f"{what} JSON")
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ValueError(f"{op}: {str(path)!r} is not valid JSON: {err}") from None
    if not isinstance(doc, dict) or any(k not in doc for k in keys):
        raise ValueError(f"{op}: {str(path)!r} is not a COCO panoptic {what} file: expected an object with "
                         f"keys {list(keys)}")
    return doc


def _categories(doc: dict, path: Path, op: str) -> list:
    """The ground truth's categories as a list of ``{"id", "isthing", "name"}``, in the file's order."""
    cats, seen = [], set()
    for c in doc["categories"]:
        if not isinstance(c, dict) or "id" not in c or "isthing" not in c:
            raise ValueError(f"{op}: {str(path)!r}: expected every category to have 'id' and 'isthing', got {c!r}")
        if c["id"] in seen:
            raise ValueError(f"{op}: {str(path)!r}: expected unique category ids, got {c['id']} twice")
        seen.add(c["id"])
        cats.append({"id": c["id"], "isthing": int(c["isthing"] == 1), "name": str(c.get("name", c["id"]))})
    if not cats:
        raise ValueError(f"{op}: {str(path)!r} lists no categories")
    return cats


def _annotations(doc: dict, path: Path, op: str) -> dict:
    """``image_id -> annotation``, each checked for ``file_name`` and ``segments_info``."""
    out = {}
    for ann in doc["annotations"]:
        if not isinstance(ann, dict) or any(k not in ann for k in ("image_id", "file_name", "segments_info")):
            shown = {k: ann[k] for k in ("image_id", "file_name") if k in ann} if isinstance(ann, dict) else ann
            raise ValueError(f"{op}: {str(path)!r}: expected every annotation to have 'image_id', 'file_name' "
                             f"and 'segments_info', got one with {shown!r}")
        if ann["image_id"] in out:
            raise ValueError(f"{op}: {str(path)!r}: expected one annotation per image, got image_id "
                             f"{ann['image_id']!r} twice")
        out[ann["image_id"]] = ann
    return out


def _segments(ann: dict, json_path: Path, png_path: Path, known_cats: dict, is_gt: bool, op: str) -> list:
    """One annotation's ``segments_info`` as :class:`Segment` (``iscrowd`` kept for ground truth only)."""
    segs, seen = [], set()
    for s in ann["segments_info"]:
        if not isinstance(s, dict) or "id" not in s or "category_id" not in s:
            raise ValueError(f"{op}: {str(json_path)!r}: expected every segment of {ann['file_name']!r} to have "
                             f"'id' and 'category_id', got {s!r}")
        sid, cat = s["id"], s["category_id"]
        if not isinstance(sid, int) or isinstance(sid, bool) or not 0 < sid < 2**24:
            what = "is VOID" if sid == VOID else "is no PNG colour"
            raise ValueError(f"{op}: {str(json_path)!r}: segment id {sid!r} of {ann['file_name']!r} {what}; "
                             "expected segment ids in 1..16777215 (R + 256 G + 256^2 B)")
        if sid in seen:
            raise ValueError(f"{op}: {str(json_path)!r}: expected unique segment ids in {ann['file_name']!r}, "
                             f"got id {sid} twice")
        seen.add(sid)
        if cat not in known_cats:
            raise ValueError(f"{op}: {str(png_path)!r}: segment {sid} has category_id {cat}, which is not in "
                             f"the ground truth's categories (listed in {str(json_path)!r})")
        segs.append(Segment(int(sid), int(cat), bool(s.get("iscrowd", 0) == 1) if is_gt else False))
    return segs


def _colour(sid: int) -> tuple:
    return (sid % 256, sid // 256 % 256, sid // 65536)


def _compact(ids: np.ndarray, segs: list, png_path: Path, json_path: Path, op: str):
    """Renumber one PNG's segments ``1..S`` in the order of their ids (VOID stays 0); refuse unlisted ids.

    COCO ids (``R + 256 G + 256^2 B``) lie far apart; small dense ids let
    :mod:`minseg.panoptic` count the (gt, pred) pairs with one lookup table
    and one bincount. The order of the ids is kept, so the segments are
    visited in the same order as with the COCO ids.

    When the listed ids differ in their low 16 bits (``R + 256 G``), each
    pixel's dense id is one gather from a 65536-entry table; otherwise a
    binary search in the sorted ids. Either way the id found is compared with
    the pixel's own, so an id missing from ``segments_info`` cannot pass.

    Returns
    -------
    dense : ndarray of int16 (int32 beyond 32767 segments), shape (H, W)
    segments : list of Segment
        In the listed order (the crowd rule reads it), ids replaced by dense ones.
    known : ndarray of ``ids.dtype``, shape (S + 1,)
        ``known[d]`` is the COCO id of dense id ``d`` (``known[0] = 0``, VOID).
    """
    known = np.array([VOID] + sorted(s.id for s in segs), dtype=ids.dtype)       # (S + 1,) sorted: ids >= 1
    dtype = np.int16 if known.size < 2**15 else np.int32
    flat = ids.reshape(-1)                                                  # (M,)
    low = known & 0xFFFF
    if np.unique(low).size == known.size:
        table = np.zeros(0x10000, dtype=dtype)                              # low 16 bits -> dense id
        table[low] = np.arange(known.size, dtype=dtype)
        dense = table.take(flat & 0xFFFF)                                   # (M,)
    else:
        dense = np.minimum(np.searchsorted(known, flat), known.size - 1).astype(dtype)   # (M,)
    unlisted = known.take(dense) != flat                                    # (M,) the id found is not the pixel's
    if unlisted.any():
        bad = np.unique(flat[unlisted])
        raise ValueError(f"{op}: {str(png_path)!r} has segment id {int(bad[0])} (colour {_colour(int(bad[0]))}) "
                         f"that is not in its segments_info in {str(json_path)!r}" + _more(set(bad.tolist())))
    rank = {int(sid): d for d, sid in enumerate(known)}
    return (dense.reshape(ids.shape), [Segment(rank[s.id], s.category_id, s.iscrowd) for s in segs], known)


def _check_pixels(dense: np.ndarray, known: np.ndarray, png_path: Path, json_path: Path, op: str) -> None:
    """Raise, naming the files, when a listed segment has no pixels in its PNG."""
    present = set(int(known[d]) for d in np.flatnonzero(np.bincount(dense.reshape(-1), minlength=known.size)))
    listed = set(int(v) for v in known[1:])
    if listed - present:
        sid = min(listed - present)
        raise ValueError(f"{op}: {str(json_path)!r} lists segment id {sid} (colour {_colour(sid)}) that has no "
                         f"pixels in {str(png_path)!r}" + _more(listed - present))


def _more(ids: set) -> str:
    return f" (and {len(ids) - 1} more)" if len(ids) > 1 else ""


def pq_from_coco(gt_json, gt_folder, pred_json, pred_folder, progress: bool = False,
                 op: str = "pq_from_coco") -> PanopticQuality:
    """Score COCO panoptic predictions against COCO panoptic ground truth, as ``pq_compute``.

    Parameters
    ----------
    gt_json, pred_json : str or Path
        COCO panoptic JSON files. The ground truth's lists ``categories``
        (``id``, ``isthing``, ``name``) and ``annotations``; the predictions'
        needs ``annotations`` only.
    gt_folder, pred_folder : str or Path
        Folders holding each annotation's ``file_name`` PNG.
    progress : bool
        A progress bar over the images.

    Returns
    -------
    PanopticQuality
        Updated with every ground-truth image; ``.compute()`` gives the
        numbers, :func:`pq_text` prints them.

    Raises
    ------
    FileNotFoundError, ValueError
        One line naming the file: a missing folder, JSON or PNG, a bad JSON,
        an image without a prediction, PNGs of different sizes, an id in a
        PNG that is not in its ``segments_info`` or the reverse, a category
        not in the ground truth's, a listed ground-truth ``area`` that is not
        the PNG's pixel count.
    """
    from .data.formats import progress as bar  # noqa: PLC0415

    gt_json, pred_json = Path(gt_json), Path(pred_json)
    gt_folder = _need_dir(Path(gt_folder), op, "ground-truth PNG")
    pred_folder = _need_dir(Path(pred_folder), op, "prediction PNG")
    gt_doc = _read_json(gt_json, op, "ground-truth", ("annotations", "categories"))
    pred_doc = _read_json(pred_json, op, "prediction", ("annotations",))
    cats = _categories(gt_doc, gt_json, op)
    known = {c["id"]: c for c in cats}
    gt_anns = _annotations(gt_doc, gt_json, op)
    pred_anns = _annotations(pred_doc, pred_json, op)
    if not gt_anns:
        raise ValueError(f"{op}: {str(gt_json)!r} has no annotations")
    pq = PanopticQuality(cats, void_id=VOID)
    for image_id, gt_ann in bar(gt_anns.items(), total=len(gt_anns), desc="PQ", enable=progress):
        if image_id not in pred_anns:
            raise ValueError(f"{op}: {str(pred_json)!r} has no prediction for image_id {image_id!r} "
                             f"(ground truth {gt_ann['file_name']!r})")
        pred_ann = pred_anns[image_id]
        gt_png, pred_png = gt_folder / gt_ann["file_name"], pred_folder / pred_ann["file_name"]
        gt_segs = _segments(gt_ann, gt_json, gt_png, known, True, op)
        pred_segs = _segments(pred_ann, pred_json, pred_png, known, False, op)
        gt_ids, pred_ids = read_panoptic_png(gt_png, op), read_panoptic_png(pred_png, op)   # (H, W) each
        if gt_ids.shape != pred_ids.shape:
            raise ValueError(f"{op}: prediction {str(pred_png)!r} is {pred_ids.shape[0]}x{pred_ids.shape[1]} "
                             f"(H x W) but ground truth {str(gt_png)!r} is {gt_ids.shape[0]}x{gt_ids.shape[1]}; "
                             "expected the same size")
        gt_dense, gt_segs, gt_known = _compact(gt_ids, gt_segs, gt_png, gt_json, op)         # (H, W) 0..G
        pred_dense, pred_segs, pred_known = _compact(pred_ids, pred_segs, pred_png, pred_json, op)  # 0..P
        try:
            m = _match_image(pred_dense, pred_segs, gt_dense, gt_segs, pq.categories, VOID, op)
        except ValueError:                               # a listed segment without pixels: say which file
            _check_pixels(gt_dense, gt_known, gt_png, gt_json, op)
            _check_pixels(pred_dense, pred_known, pred_png, pred_json, op)
            raise
        listed_area = {s["id"]: s["area"] for s in gt_ann["segments_info"] if "area" in s}
        for seg, area in zip(m.gt, m.gt_area):                              # m.gt: sorted by (dense) id
            sid = int(gt_known[seg.id])
            if sid in listed_area and listed_area[sid] != area:
                raise ValueError(f"{op}: {str(gt_json)!r}: segment {sid} of {gt_ann['file_name']!r} has area "
                                 f"{listed_area[sid]} but {int(area)} pixels in {str(gt_png)!r}; expected "
                                 "the pixel count (pq_compute would use the listed area)")
        pq._add(m)
    return pq


# =========================================================================== COCO panoptic: printing

def _f(v: float) -> str:
    """A fraction as ``pq_compute`` prints it: x 100, one decimal, 5 wide (``n/a`` for NaN)."""
    return f"{'n/a':>5}" if v != v else f"{100 * v:5.1f}"


def pq_text(pq: PanopticQuality, per_class: bool = False) -> str:
    """The All / Things / Stuff table of ``pq_compute`` (PQ, SQ, RQ in %, N), optionally per category first.

    Per category: PQ, SQ, RQ and the TP / FP / FN counts; ``n/a`` for a
    category with no TP, FP or FN (``pq_compute`` writes 0.0 there; neither
    averages it).
    """
    r = pq.compute()
    lines = []
    if per_class:
        width = max(10, *(len(c["name"]) + 1 for c in r["per_class"].values()))
        head = (f"{'category':{width}s}| {'id':>5s} {'kind':>5s} | {'PQ':>5s}  {'SQ':>5s}  {'RQ':>5s} "
                f"{'TP':>5s} {'FP':>5s} {'FN':>5s}")
        lines += [head, "-" * len(head)]
        for cid, c in r["per_class"].items():
            lines.append(f"{c['name']:{width}s}| {cid:>5} {'thing' if c['isthing'] else 'stuff':>5s} | "
                         f"{_f(c['pq'])}  {_f(c['sq'])}  {_f(c['rq'])} {c['tp']:5d} {c['fp']:5d} {c['fn']:5d}")
        lines.append("")
    lines += [f"{'':10s}| {'PQ':>5s}  {'SQ':>5s}  {'RQ':>5s} {'N':>5s}", "-" * (10 + 7 * 4)]
    for name in ("All", "Things", "Stuff"):
        g = r[name]
        lines.append(f"{name:10s}| {_f(g['pq'])}  {_f(g['sq'])}  {_f(g['rq'])} {g['n']:5d}")
    return "\n".join(lines)


# =========================================================================== label PNGs: mIoU

def miou_from_folders(gt_folder, pred_folder, num_classes: int, ignore_index: int | None = 255,
                      progress: bool = False, op: str = "miou_from_folders"):
    """Accumulate one confusion matrix over label PNGs paired by file name.

    Parameters
    ----------
    gt_folder, pred_folder : str or Path
        Single-channel (``L``, ``I``, ``I;16``) or palette (``P``) PNGs of
        class ids; every ``*.png`` of ``gt_folder`` needs a prediction of the
        same name in ``pred_folder`` (predictions without a ground truth are
        left out and counted).
    num_classes : int
    ignore_index : int or None
        Ground-truth value that is not scored (VOC: 255).

    Returns
    -------
    metrics : SegmentationMetrics
    n_images : int
    extra : list of str
        Names of the prediction PNGs that have no ground truth.

    Raises
    ------
    FileNotFoundError, ValueError
        One line naming the file: a missing folder or prediction, an empty
        folder, a PNG that is not a label image, sizes that differ, a
        ground-truth value outside ``[0, K)`` and ``ignore_index``, a
        prediction outside ``[0, K)`` on a scored pixel.
    """
    from .data.formats import progress as bar  # noqa: PLC0415

    gt_folder = _need_dir(Path(gt_folder), op, "ground-truth PNG")
    pred_folder = _need_dir(Path(pred_folder), op, "prediction PNG")
    metrics = SegmentationMetrics(num_classes, ignore_index=ignore_index)   # checks K and ignore_index
    K = metrics.num_classes
    gt_files = sorted(p for p in gt_folder.iterdir() if p.suffix.lower() == ".png" and p.is_file())
    if not gt_files:
        raise ValueError(f"{op}: ground-truth folder {str(gt_folder)!r} has no .png files")
    names = {p.name for p in gt_files}
    extra = sorted(p.name for p in pred_folder.iterdir() if p.suffix.lower() == ".png" and p.name not in names)
    for gt_path in bar(gt_files, total=len(gt_files), desc="mIoU", enable=progress):
        pred_path = pred_folder / gt_path.name
        if not pred_path.is_file():
            raise FileNotFoundError(f"{op}: expected prediction {str(pred_path)!r} for ground truth "
                                    f"{str(gt_path)!r}, which does not exist")
        target, pred = _read_index_png(gt_path, op), _read_index_png(pred_path, op)   # (H, W) int64 each
        if target.shape != pred.shape:
            raise ValueError(f"{op}: prediction {str(pred_path)!r} is {pred.shape[0]}x{pred.shape[1]} (H x W) "
                             f"but ground truth {str(gt_path)!r} is {target.shape[0]}x{target.shape[1]}; "
                             "expected the same size")
        scored = target != ignore_index if ignore_index is not None else np.ones(target.shape, dtype=bool)
        for path, values, what in ((gt_path, target[scored], "class ids"), (pred_path, pred[scored], "class ids")):
            bad = (values < 0) | (values >= K)
            if bad.any():
                shown = ", ".join(str(int(v)) for v in np.unique(values[bad])[:5])
                allowed = f"0..{K - 1}" + (f" or {ignore_index}" if ignore_index is not None and path == gt_path
                                           else "")
                where = " on pixels whose ground truth is scored" if path == pred_path else ""
                raise ValueError(f"{op}: {str(path)!r} has {int(bad.sum())} pixels{where} with values [{shown}], "
                                 f"expected {what} {allowed} (--num-classes {K})")
        metrics.update(pred, target)
    return metrics, len(gt_files), extra

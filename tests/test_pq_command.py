"""`minseg pq` and `minseg miou`: scores of saved predictions, against COCO's algorithm written as a plain loop.

``pq_compute_loop`` below is COCO panopticapi's ``pq_compute`` written the
slow, obvious way: files read with PIL on their own, one boolean mask per
segment, one test per (ground truth, prediction) pair, ground-truth areas
taken from the JSON as the reference does. ``minseg pq`` must give the same
numbers on COCO-format folders written here (several images, crowd, VOID,
unmatched segments, a pair at exactly IoU 0.5).
``benchmarks/bench_pq_folder.py`` times it as the baseline.
"""
import json

import numpy as np
import pytest
from PIL import Image

from minseg import cli
from minseg.data.convert import rgb_to_id
from minseg.folder_metrics import miou_from_folders, pq_from_coco, read_panoptic_png

CATEGORIES = [  # ids as sparse as COCO's; things first and stuff after, like COCO
    {"id": 1, "name": "person", "isthing": 1},
    {"id": 3, "name": "car", "isthing": 1},
    {"id": 18, "name": "dog", "isthing": 1},
    {"id": 149, "name": "road", "isthing": 0},
    {"id": 184, "name": "tree-merged", "isthing": 0},
]


# --------------------------------------------------------------------------- the reference algorithm

def _ids_of(path):
    """A panoptic PNG's ids, read independently of minseg: R + 256 G + 256^2 B."""
    rgb = np.array(Image.open(path), dtype=np.uint32)                       # (H, W, 3)
    return rgb[..., 0] + 256 * rgb[..., 1] + 256 * 256 * rgb[..., 2]


def pq_compute_loop(gt_json, gt_folder, pred_json, pred_folder):
    """COCO's pq_compute, one mask per segment: the reference algorithm.

    Rules (panopticapi/evaluation.py): images pair by image_id; VOID is id 0
    of the ground truth; a non-crowd gt and a prediction of the same category
    match when intersection / union > 0.5 with union = pred area + gt area
    (the gt's from the JSON) - intersection - (pred on VOID); unmatched
    non-crowd gt is FN; an unmatched prediction is FP unless more than half of
    it is on VOID plus the crowd region (the last-listed crowd segment) of its
    category. Per category, over the dataset; averages over the categories
    with TP + FP + FN > 0, in the gt JSON's order. Returns pq_compute's dict
    plus tp / fp / fn per class.
    """
    gt_doc = json.loads(open(gt_json).read())
    pred_doc = json.loads(open(pred_json).read())
    categories = {c["id"]: c for c in gt_doc["categories"]}
    stats = {c: {"iou": 0.0, "tp": 0, "fp": 0, "fn": 0} for c in categories}
    preds = {a["image_id"]: a for a in pred_doc["annotations"]}
    for gt_ann in gt_doc["annotations"]:
        pred_ann = preds[gt_ann["image_id"]]
        gt_ids = _ids_of(gt_folder / gt_ann["file_name"])
        pred_ids = _ids_of(pred_folder / pred_ann["file_name"])
        void = gt_ids == 0
        gt_segs = gt_ann["segments_info"]
        pred_segs = pred_ann["segments_info"]
        gt_mask = {g["id"]: gt_ids == g["id"] for g in gt_segs}
        pred_mask = {p["id"]: pred_ids == p["id"] for p in pred_segs}
        gt_hit, pred_hit = set(), set()
        for g in sorted(gt_segs, key=lambda s: s["id"]):                   # the reference's (gt, pred) order
            if g["iscrowd"] == 1:
                continue
            for p in sorted(pred_segs, key=lambda s: s["id"]):
                if p["category_id"] != g["category_id"]:
                    continue
                inter = int(np.count_nonzero(gt_mask[g["id"]] & pred_mask[p["id"]]))
                if inter == 0:
                    continue
                p_area = int(np.count_nonzero(pred_mask[p["id"]]))
                p_void = int(np.count_nonzero(pred_mask[p["id"]] & void))
                union = p_area + g["area"] - inter - p_void
                if inter / union > 0.5:
                    stats[g["category_id"]]["iou"] += inter / union
                    stats[g["category_id"]]["tp"] += 1
                    gt_hit.add(g["id"])
                    pred_hit.add(p["id"])
        crowd_of = {}
        for g in gt_segs:
            if g["id"] in gt_hit:
                continue
            if g["iscrowd"] == 1:
                crowd_of[g["category_id"]] = g["id"]                       # the last listed wins
                continue
            stats[g["category_id"]]["fn"] += 1
        for p in pred_segs:
            if p["id"] in pred_hit:
                continue
            absorbed = int(np.count_nonzero(pred_mask[p["id"]] & void))
            if p["category_id"] in crowd_of:
                absorbed += int(np.count_nonzero(pred_mask[p["id"]] & gt_mask[crowd_of[p["category_id"]]]))
            if absorbed / int(np.count_nonzero(pred_mask[p["id"]])) > 0.5:
                continue
            stats[p["category_id"]]["fp"] += 1
    results = {}
    for name, want in (("All", None), ("Things", True), ("Stuff", False)):
        pq = sq = rq = 0.0
        n = 0
        per_class = {}
        for c, info in categories.items():
            if want is not None and (info["isthing"] == 1) != want:
                continue
            s = stats[c]
            tp, fp, fn = s["tp"], s["fp"], s["fn"]
            if tp + fp + fn == 0:
                per_class[c] = {"pq": 0.0, "sq": 0.0, "rq": 0.0, "tp": 0, "fp": 0, "fn": 0}
                continue
            n += 1
            den = tp + 0.5 * fp + 0.5 * fn
            per_class[c] = {"pq": s["iou"] / den, "sq": s["iou"] / tp if tp else 0.0, "rq": tp / den,
                            "tp": tp, "fp": fp, "fn": fn}
            pq, sq, rq = pq + per_class[c]["pq"], sq + per_class[c]["sq"], rq + per_class[c]["rq"]
        results[name] = {"pq": pq / n if n else float("nan"), "sq": sq / n if n else float("nan"),
                         "rq": rq / n if n else float("nan"), "n": n}
        if name == "All":
            results["per_class"] = per_class
    return results


# --------------------------------------------------------------------------- writing COCO-format folders

def id_to_rgb(ids):
    """(H, W) ids -> (H, W, 3) uint8 colours, COCO's id2rgb."""
    ids = np.asarray(ids, dtype=np.int64)
    return np.stack([ids % 256, ids // 256 % 256, ids // 65536], axis=-1).astype(np.uint8)


def write_coco(root, name, images, categories=CATEGORIES):
    """Write ``root/name.json`` and ``root/name/*.png``; ``images``: (image_id, ids, segments_info) triples.

    ``segments_info`` gets ``area`` (the pixel count) and ``iscrowd`` (0) where missing.
    """
    folder = root / name
    folder.mkdir(parents=True, exist_ok=True)
    anns = []
    for image_id, ids, segs in images:
        file_name = f"{image_id}.png"
        Image.fromarray(id_to_rgb(ids)).save(folder / file_name)
        segs = [{"iscrowd": 0, "area": int((ids == s["id"]).sum()), **s} for s in segs]
        anns.append({"image_id": image_id, "file_name": file_name, "segments_info": segs})
    doc = {"annotations": anns, "categories": categories,
           "images": [{"id": i, "file_name": f"{i}.jpg"} for i, _, _ in images]}
    (root / f"{name}.json").write_text(json.dumps(doc))
    return root / f"{name}.json", folder


def random_image(rng, H, W, n_segments, crowd_share=0.15, void_share=0.1):
    """A random gt and pred id map (rectangles painted over each other) with their segments_info.

    The gt has VOID patches and crowd thing segments; the prediction is the gt
    with shifted, re-labelled, split and extra segments and VOID of its own.
    """
    cat_ids = [c["id"] for c in CATEGORIES]
    things = {c["id"] for c in CATEGORIES if c["isthing"]}

    def paint(n):
        ids = np.zeros((H, W), dtype=np.int64)
        segs = {}
        for _ in range(n):
            sid = int(rng.integers(1, 2**24))
            h, w = rng.integers(3, H // 2 + 3), rng.integers(3, W // 2 + 3)
            r, c = rng.integers(0, H - 2), rng.integers(0, W - 2)
            ids[r:r + h, c:c + w] = sid
            segs[sid] = int(rng.choice(cat_ids))
        return ids, segs

    gt_ids, gt_cat = paint(n_segments)
    for _ in range(3):                                                      # VOID patches
        r, c = rng.integers(0, H), rng.integers(0, W)
        gt_ids[r:r + int(rng.integers(2, 8)), c:c + int(rng.integers(2, 8))] = 0
    gt_ids[rng.random((H, W)) < 0.02 * void_share / 0.1] = 0                 # scattered VOID
    present = [int(v) for v in np.unique(gt_ids) if v != 0]
    gt_segs = [{"id": s, "category_id": gt_cat[s],
                "iscrowd": int(gt_cat[s] in things and rng.random() < crowd_share)} for s in present]

    pred_ids = gt_ids.copy()
    remap = {}
    for s in present:                                                       # new ids, sometimes new categories
        new = int(rng.integers(1, 2**24))
        remap[s] = new
        pred_ids[gt_ids == s] = new
    pred_cat = {remap[s]: (gt_cat[s] if rng.random() < 0.8 else int(rng.choice(cat_ids))) for s in present}
    for s in present:                                                       # shift some segments
        if rng.random() < 0.3:
            mask = np.roll(pred_ids == remap[s], shift=(int(rng.integers(-3, 4)), int(rng.integers(-3, 4))),
                           axis=(0, 1))
            pred_ids[mask] = remap[s]
    extra_ids, extra_cat = paint(max(2, n_segments // 4))                   # extra predicted segments
    pred_ids = np.where(extra_ids > 0, extra_ids, pred_ids)
    pred_cat.update(extra_cat)
    pred_ids[rng.random((H, W)) < 0.03] = 0                                 # unlabelled predicted pixels
    if rng.random() < 0.5:                                                  # VOID prediction on a gt VOID patch
        pred_ids[:2, :] = 0
    present = [int(v) for v in np.unique(pred_ids) if v != 0]
    pred_segs = [{"id": s, "category_id": pred_cat[s]} for s in present]
    return (gt_ids, gt_segs), (pred_ids, pred_segs)


def random_dataset(root, rng, n_images=6, H=40, W=48, n_segments=12, shuffle_pred=True):
    gts, preds = [], []
    for k in range(n_images):
        image_id = 1000 + 7 * k
        (g, gs), (p, ps) = random_image(rng, H, W, n_segments)
        gts.append((image_id, g, gs))
        preds.append((image_id, p, ps))
    if shuffle_pred:
        preds = preds[::-1]                                                 # pairing by image_id, not order
    gt_json, gt_dir = write_coco(root, "gt", gts)
    pred_json, pred_dir = write_coco(root, "pred", preds)
    return gt_json, gt_dir, pred_json, pred_dir


def hand_made_dataset(root):
    """Two images built to hit each rule once; the comments give what the reference scores.

    image 1 (8 x 8): person gt 11 (16 px) and pred 21, 8 px inside it: IoU exactly 0.5, no match
    (FN + FP); car gt 12 (4 px) and pred 22 = 12 plus 4 px of VOID: IoU 4 / (8 + 4 - 4 - 4) = 1, a TP
    only because VOID leaves the union; road gt 13 = the rest, pred 23 a good match; dog pred 24 (6 px)
    with 4 px on VOID: ignored, not FP.
    image 2 (6 x 10): two crowd regions of person (31 then 32, the last listed is the crowd region),
    person pred 41 with 3 of its 4 px on crowd 32: ignored; person pred 42 with 3 of 4 px on crowd 31
    (not the crowd region): FP; tree stuff gt 33 unmatched: FN; road gt 34 and pred 43 matched.
    """
    g1 = np.full((8, 8), 13, dtype=np.int64)
    g1[0:4, 0:4] = 11                                                       # 16 px person
    g1[4:6, 6:8] = 12                                                       # 4 px car
    g1[6:8, 4:8] = 0                                                        # 8 px VOID
    p1 = np.full((8, 8), 23, dtype=np.int64)
    p1[0:2, 0:4] = 21                                                       # 8 px, all inside the person:
                                                                            # I 8, U 8 + 16 - 8 = 16, IoU 0.5
    p1[4:6, 6:8] = 22
    p1[6:8, 6:8] = 22                                                       # + 4 px of VOID
    p1[6:8, 4:6] = 24                                                       # 4 px dog on VOID ...
    p1[5, 4:6] = 24                                                         # ... + 2 px on road: 4/6 > 0.5
    gt_1 = [{"id": 11, "category_id": 1}, {"id": 12, "category_id": 3}, {"id": 13, "category_id": 149}]
    pred_1 = [{"id": 21, "category_id": 1}, {"id": 22, "category_id": 3}, {"id": 23, "category_id": 149},
              {"id": 24, "category_id": 18}]

    g2 = np.full((6, 10), 34, dtype=np.int64)
    g2[0:3, 0:3] = 31                                                       # crowd person, listed first
    g2[0:3, 6:9] = 32                                                       # crowd person, listed last
    g2[4:6, 0:3] = 33                                                       # tree
    p2 = np.full((6, 10), 43, dtype=np.int64)
    p2[0:2, 6:8] = 41
    p2[2, 6] = 41                                                           # 3 px on crowd 32 ...
    p2[3, 6] = 41                                                           # ... + 1 on road: ignored
    p2[0:2, 0:2] = 42
    p2[2, 0] = 42
    p2[3, 0] = 42                                                           # 3 px on crowd 31: FP
    gt_2 = [{"id": 31, "category_id": 1, "iscrowd": 1}, {"id": 32, "category_id": 1, "iscrowd": 1},
            {"id": 33, "category_id": 184}, {"id": 34, "category_id": 149}]
    pred_2 = [{"id": 41, "category_id": 1}, {"id": 42, "category_id": 1}, {"id": 43, "category_id": 149}]
    gt_json, gt_dir = write_coco(root, "gt", [(1, g1, gt_1), (2, g2, gt_2)])
    pred_json, pred_dir = write_coco(root, "pred", [(2, p2, pred_2), (1, p1, pred_1)])
    return gt_json, gt_dir, pred_json, pred_dir


def assert_same_as_reference(pq, ref):
    """Counts equal, scores bit for bit: IoUs are summed in the reference's order ((gt id, pred id), by image)."""
    r = pq.compute()
    for cid, c in ref["per_class"].items():
        mine = r["per_class"][cid]
        assert (mine["tp"], mine["fp"], mine["fn"]) == (c["tp"], c["fp"], c["fn"]), cid
        if c["tp"] + c["fp"] + c["fn"]:
            for k in ("pq", "sq", "rq"):
                assert mine[k] == c[k], (cid, k, mine[k], c[k])
        else:
            assert np.isnan(mine["pq"])                                     # minseg: not scored; COCO: 0.0
    for group in ("All", "Things", "Stuff"):
        assert r[group]["n"] == ref[group]["n"]
        for k in ("pq", "sq", "rq"):
            assert r[group][k] == ref[group][k] or (np.isnan(r[group][k]) and np.isnan(ref[group][k])), (group, k)


# --------------------------------------------------------------------------- pq: numbers

def test_hand_made_rules(tmp_path):
    files = hand_made_dataset(tmp_path)
    ref = pq_compute_loop(*files)
    pq = pq_from_coco(*files)
    assert_same_as_reference(pq, ref)
    c = pq.compute()["per_class"]
    from minseg.panoptic import explain_panoptic
    gt_doc, pred_doc = (json.loads(f.read_text()) for f in (files[0], files[2]))
    rows = explain_panoptic(read_panoptic_png(files[3] / "1.png"), pred_doc["annotations"][1]["segments_info"],
                            read_panoptic_png(files[1] / "1.png"), gt_doc["annotations"][0]["segments_info"],
                            CATEGORIES)
    assert "IoU 0.500" in next(r.reason for r in rows if r.side == "pred" and r.id == 21)   # exactly one half
    assert (c[1]["tp"], c[1]["fp"], c[1]["fn"]) == (0, 2, 1)   # IoU 0.5 not a match (FP + FN); 42 FP; 41 ignored
    assert (c[3]["tp"], c[3]["fp"], c[3]["fn"]) == (1, 0, 0) and c[3]["sq"] == 1.0   # VOID left the union
    assert (c[18]["tp"], c[18]["fp"], c[18]["fn"]) == (0, 0, 0)                     # dog on VOID: ignored
    assert (c[149]["tp"], c[184]["fn"]) == (2, 1)


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_random_folders_equal_reference(tmp_path, seed):
    files = random_dataset(tmp_path, np.random.default_rng(seed))
    ref = pq_compute_loop(*files)
    pq = pq_from_coco(*files)
    assert_same_as_reference(pq, ref)
    assert pq.tp.sum() > 0 and pq.fp.sum() > 0 and pq.fn.sum() > 0     # every kind of outcome occurs
    assert ref["Things"]["n"] > 0 and ref["Stuff"]["n"] > 0


def test_crowd_and_void_change_the_scores(tmp_path):
    """The same folders with iscrowd cleared score differently: crowd handling is exercised, not idle."""
    rng = np.random.default_rng(5)
    gt_json, gt_dir, pred_json, pred_dir = random_dataset(tmp_path, rng)
    doc = json.loads(gt_json.read_text())
    assert sum(s["iscrowd"] for a in doc["annotations"] for s in a["segments_info"]) > 0
    before = pq_from_coco(gt_json, gt_dir, pred_json, pred_dir).compute()
    for a in doc["annotations"]:
        for s in a["segments_info"]:
            s["iscrowd"] = 0
    gt_json.write_text(json.dumps(doc))
    after = pq_from_coco(gt_json, gt_dir, pred_json, pred_dir)
    assert_same_as_reference(after, pq_compute_loop(gt_json, gt_dir, pred_json, pred_dir))
    assert after.compute()["Things"]["pq"] != before["Things"]["pq"]


def test_read_panoptic_png_round_trip(tmp_path):
    ids = np.array([[0, 1, 256], [65536, 2**24 - 1, 12345678]])
    Image.fromarray(id_to_rgb(ids)).save(tmp_path / "a.png")
    np.testing.assert_array_equal(read_panoptic_png(tmp_path / "a.png"), ids)
    rgb = np.random.default_rng(0).integers(0, 256, size=(9, 7, 3)).astype(np.uint8)
    Image.fromarray(rgb).save(tmp_path / "c.png")
    np.testing.assert_array_equal(read_panoptic_png(tmp_path / "c.png"), rgb_to_id(rgb))
    rgba = np.concatenate([id_to_rgb(ids), np.full(ids.shape + (1,), 255, np.uint8)], axis=-1)
    Image.fromarray(rgba).save(tmp_path / "b.png")                          # RGBA: alpha dropped, as COCO
    np.testing.assert_array_equal(read_panoptic_png(tmp_path / "b.png"), ids)


# --------------------------------------------------------------------------- pq: the command

def _rows(text):
    """``name -> [numbers...]`` for the lines ``name | a b c ...`` of a table."""
    out = {}
    for line in text.splitlines():
        if "|" in line:
            name, rest = line.split("|", 1)
            out[name.strip()] = rest.split()
    return out


def _args(files):
    gt_json, gt_dir, pred_json, pred_dir = files
    return ["pq", "--gt-json", str(gt_json), "--gt-folder", str(gt_dir), "--pred-json", str(pred_json),
            "--pred-folder", str(pred_dir), "--no-progress"]


def test_pq_command_prints_pq_compute_table(tmp_path, capsys):
    files = random_dataset(tmp_path, np.random.default_rng(11))
    ref = pq_compute_loop(*files)
    assert cli.main(_args(files)) == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert lines[0] == f"{'':10s}| {'PQ':>5s}  {'SQ':>5s}  {'RQ':>5s} {'N':>5s}"    # pq_compute's header
    assert lines[1] == "-" * 38
    for i, name in enumerate(("All", "Things", "Stuff")):
        g = ref[name]
        assert lines[2 + i] == (f"{name:10s}| {100 * g['pq']:5.1f}  {100 * g['sq']:5.1f}  "
                                f"{100 * g['rq']:5.1f} {g['n']:5d}")


def test_pq_command_per_class(tmp_path, capsys):
    files = random_dataset(tmp_path, np.random.default_rng(12))
    ref = pq_compute_loop(*files)
    assert cli.main(_args(files) + ["--per-class"]) == 0
    rows = _rows(capsys.readouterr().out)
    for c in CATEGORIES:
        r = ref["per_class"][c["id"]]
        row = rows[c["name"]]
        assert row[:2] == [str(c["id"]), "thing" if c["isthing"] else "stuff"]
        if r["tp"] + r["fp"] + r["fn"]:
            assert row[3:6] == [f"{100 * r[k]:.1f}" for k in ("pq", "sq", "rq")]
        else:
            assert row[3:6] == ["n/a"] * 3
        assert row[6:] == [str(r["tp"]), str(r["fp"]), str(r["fn"])]
    assert rows["All"][-1] == str(ref["All"]["n"])


def test_pq_command_in_a_subprocess(tmp_path):
    """The console entry point end to end (python -m minseg)."""
    import subprocess
    import sys

    files = hand_made_dataset(tmp_path)
    res = subprocess.run([sys.executable, "-m", "minseg", *_args(files)], capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    assert _rows(res.stdout)["All"][-1] == str(pq_compute_loop(*files)["All"]["n"])


# --------------------------------------------------------------------------- pq: bad input

def _bad(capsys, argv):
    """Run the command; return its one stderr line (exit status 2 asserted)."""
    assert cli.main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("minseg ") and "\n" not in err and "Traceback" not in err, err
    return err


def _edit_json(path, fn):
    doc = json.loads(path.read_text())
    fn(doc)
    path.write_text(json.dumps(doc))


@pytest.fixture()
def coco(tmp_path):
    return hand_made_dataset(tmp_path)


def test_pq_missing_folder_and_json(coco, capsys, tmp_path):
    gt_json, gt_dir, pred_json, pred_dir = coco
    err = _bad(capsys, _args((gt_json, tmp_path / "nowhere", pred_json, pred_dir)))
    assert "nowhere" in err and "does not exist" in err
    err = _bad(capsys, _args((gt_json, gt_dir, tmp_path / "none.json", pred_dir)))
    assert "none.json" in err
    (tmp_path / "broken.json").write_text("{not json")
    err = _bad(capsys, _args((gt_json, gt_dir, tmp_path / "broken.json", pred_dir)))
    assert "broken.json" in err and "not valid JSON" in err
    (tmp_path / "other.json").write_text(json.dumps({"images": []}))
    err = _bad(capsys, _args((tmp_path / "other.json", gt_dir, pred_json, pred_dir)))
    assert "other.json" in err and "'categories'" in err


def test_pq_missing_png_and_missing_prediction(coco, capsys):
    gt_json, gt_dir, pred_json, pred_dir = coco
    (pred_dir / "2.png").unlink()
    err = _bad(capsys, _args(coco))
    assert "2.png" in err and "does not exist" in err
    _edit_json(pred_json, lambda d: d["annotations"].pop(0))              # image 2's prediction
    err = _bad(capsys, _args(coco))
    assert "no prediction for image_id 2" in err and str(pred_json) in err


def test_pq_sizes_differ(coco, capsys):
    gt_json, gt_dir, pred_json, pred_dir = coco
    ids = read_panoptic_png(pred_dir / "1.png")
    Image.fromarray(id_to_rgb(ids[:, :7])).save(pred_dir / "1.png")
    err = _bad(capsys, _args(coco))
    assert "1.png" in err and "8x7" in err and "8x8" in err


def test_pq_ids_and_segments_info_disagree(coco, capsys):
    gt_json, gt_dir, pred_json, pred_dir = coco
    # a predicted id in the PNG but not in the JSON (pq_compute raises too)
    _edit_json(pred_json, lambda d: d["annotations"][1]["segments_info"].pop(3))   # image 1's pred 24
    err = _bad(capsys, _args(coco))
    assert str(pred_dir / "1.png") in err and "segment id 24" in err and "not in its segments_info" in err
    # a listed prediction with no pixels (pq_compute raises too)
    _edit_json(pred_json, lambda d: d["annotations"][1]["segments_info"].append({"id": 24, "category_id": 18}))
    _edit_json(pred_json, lambda d: d["annotations"][1]["segments_info"].append({"id": 99, "category_id": 18}))
    err = _bad(capsys, _args(coco))
    assert "lists segment id 99" in err and str(pred_dir / "1.png") in err
    _edit_json(pred_json, lambda d: d["annotations"][1]["segments_info"].pop())
    # a ground-truth id in the PNG but not in its JSON
    _edit_json(gt_json, lambda d: d["annotations"][0]["segments_info"].pop(1))     # image 1's car 12
    err = _bad(capsys, _args(coco))
    assert str(gt_dir / "1.png") in err and "segment id 12 (colour (12, 0, 0))" in err


def test_pq_segment_ids_that_are_no_colour(coco, capsys):
    gt_json, gt_dir, pred_json, pred_dir = coco
    for bad in (0, 2**24, -3, "12"):
        _edit_json(pred_json, lambda d: d["annotations"][0]["segments_info"][0].update(id=bad))
        err = _bad(capsys, _args(coco))
        assert f"segment id {bad!r} of '2.png'" in err and str(pred_json) in err


def test_pq_unknown_category_and_bad_area(coco, capsys):
    gt_json, gt_dir, pred_json, pred_dir = coco

    def unknown(d):
        d["annotations"][0]["segments_info"][0]["category_id"] = 77
    _edit_json(pred_json, unknown)
    err = _bad(capsys, _args(coco))
    assert "category_id 77" in err and str(pred_dir / "2.png") in err
    _edit_json(pred_json, lambda d: d["annotations"][0]["segments_info"][0].update(category_id=1))

    def wrong_area(d):
        d["annotations"][0]["segments_info"][0]["area"] = 15
    _edit_json(gt_json, wrong_area)
    err = _bad(capsys, _args(coco))
    assert "segment 11 of '1.png' has area 15 but 16 pixels" in err and str(gt_json) in err

    _edit_json(gt_json, lambda d: d["categories"][0].pop("isthing"))
    err = _bad(capsys, _args(coco))
    assert "'isthing'" in err and str(gt_json) in err


def test_pq_not_an_rgb_png(coco, capsys):
    gt_json, gt_dir, pred_json, pred_dir = coco
    Image.fromarray(np.zeros((8, 8), np.uint8)).save(gt_dir / "1.png")
    err = _bad(capsys, _args(coco))
    assert str(gt_dir / "1.png") in err and "mode L" in err
    (gt_dir / "1.png").write_bytes(b"not a png")
    err = _bad(capsys, _args(coco))
    assert str(gt_dir / "1.png") in err and "corrupt" in err


# --------------------------------------------------------------------------- miou

def _label_folders(root, rng, K=4, n=5, H=12, W=14):
    gt_dir, pred_dir = root / "gt", root / "pred"
    gt_dir.mkdir()
    pred_dir.mkdir()
    gts, preds = [], []
    for k in range(n):
        t = rng.integers(0, K, size=(H, W)).astype(np.uint8)
        t[rng.random((H, W)) < 0.1] = 255
        p = np.where(rng.random((H, W)) < 0.7, t, rng.integers(0, K, size=(H, W))).astype(np.uint8)
        p[(t == 255) & (rng.random((H, W)) < 0.5)] = 255                   # allowed: the target is ignored
        if k == 0:                                                          # a VOC-style palette PNG
            im = Image.fromarray(t, mode="L").convert("P")
            im.putpalette([v for i in range(256) for v in (i, 2 * i % 256, 255 - i)])
            im.save(gt_dir / f"img{k}.png")
        else:
            Image.fromarray(t).save(gt_dir / f"img{k}.png")
        Image.fromarray(p).save(pred_dir / f"img{k}.png")
        gts.append(t.astype(np.int64))
        preds.append(p.astype(np.int64))
    return gt_dir, pred_dir, gts, preds


def _direct_scores(gts, preds, K, ignore=255):
    """Confusion matrix by a loop over pixels, then the scores written out."""
    cm = np.zeros((K, K), dtype=np.int64)
    for t, p in zip(gts, preds):
        for a, b in zip(t.ravel(), p.ravel()):
            if a != ignore:
                cm[a, b] += 1
    tp, rows, cols = np.diag(cm), cm.sum(1), cm.sum(0)
    with np.errstate(invalid="ignore", divide="ignore"):
        iou = tp / (rows + cols - tp)
    return {"iou": iou, "miou": np.nanmean(iou), "fwiou": float((rows * np.nan_to_num(iou)).sum() / rows.sum()),
            "pixel_accuracy": tp.sum() / cm.sum(), "cm": cm}


def test_miou_equals_direct_computation(tmp_path):
    K = 4
    gt_dir, pred_dir, gts, preds = _label_folders(tmp_path, np.random.default_rng(0), K=K)
    metrics, n, extra = miou_from_folders(gt_dir, pred_dir, K)
    want = _direct_scores(gts, preds, K)
    r = metrics.compute()
    assert n == 5 and extra == []
    np.testing.assert_array_equal(metrics.cm, want["cm"])
    np.testing.assert_allclose(r["iou"], want["iou"], rtol=1e-15)
    for k in ("miou", "fwiou", "pixel_accuracy"):
        assert r[k] == pytest.approx(want[k], rel=1e-15)


def test_miou_command(tmp_path, capsys):
    K = 4
    gt_dir, pred_dir, gts, preds = _label_folders(tmp_path, np.random.default_rng(1), K=K)
    Image.fromarray(preds[0].astype(np.uint8)).save(pred_dir / "unrelated.png")
    want = _direct_scores(gts, preds, K)
    assert cli.main(["miou", "--gt-folder", str(gt_dir), "--pred-folder", str(pred_dir), "--num-classes", str(K),
                     "--no-progress"]) == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    for c in range(K):
        row = next(line.split() for line in lines if line.split()[:1] == [str(c)])
        assert row[1] == f"{100 * want['iou'][c]:.1f}"
    assert f"mIoU {100 * want['miou']:.1f}" in out and f"fwIoU {100 * want['fwiou']:.1f}" in out
    assert f"pixel acc {100 * want['pixel_accuracy']:.1f}" in out
    assert "5 images" in out and "1 predictions without ground truth left out (e.g. 'unrelated.png')" in out


def test_miou_no_ignore_index(tmp_path):
    gt_dir, pred_dir = tmp_path / "g", tmp_path / "p"
    gt_dir.mkdir()
    pred_dir.mkdir()
    t = np.array([[0, 1], [2, 2]], np.uint8)
    Image.fromarray(t).save(gt_dir / "a.png")
    Image.fromarray(t[::-1]).save(pred_dir / "a.png")
    metrics, _, _ = miou_from_folders(gt_dir, pred_dir, 3, ignore_index=None)
    assert metrics.cm.sum() == 4


def _miou_args(gt_dir, pred_dir, K=4):
    return ["miou", "--gt-folder", str(gt_dir), "--pred-folder", str(pred_dir), "--num-classes", str(K),
            "--no-progress"]


def test_miou_bad_inputs(tmp_path, capsys):
    gt_dir, pred_dir, gts, preds = _label_folders(tmp_path, np.random.default_rng(2))
    err = _bad(capsys, _miou_args(gt_dir, tmp_path / "nowhere"))
    assert "nowhere" in err and "does not exist" in err
    (tmp_path / "empty").mkdir()
    err = _bad(capsys, _miou_args(tmp_path / "empty", pred_dir))
    assert "empty" in err and "no .png files" in err
    (pred_dir / "img3.png").unlink()
    err = _bad(capsys, _miou_args(gt_dir, pred_dir))
    assert str(pred_dir / "img3.png") in err and str(gt_dir / "img3.png") in err
    Image.fromarray(preds[3][:, :5].astype(np.uint8)).save(pred_dir / "img3.png")
    err = _bad(capsys, _miou_args(gt_dir, pred_dir))
    assert str(pred_dir / "img3.png") in err and "12x5" in err and "12x14" in err
    Image.fromarray(preds[3].astype(np.uint8)).save(pred_dir / "img3.png")
    err = _bad(capsys, _miou_args(gt_dir, pred_dir, K=3))              # class 3 is outside 0..2
    assert str(gt_dir / "img0.png") in err and "values [3]" in err and "--num-classes 3" in err
    bad = preds[1].astype(np.uint8).copy()
    bad[gts[1] != 255] = 9
    Image.fromarray(bad).save(pred_dir / "img1.png")
    err = _bad(capsys, _miou_args(gt_dir, pred_dir))
    assert str(pred_dir / "img1.png") in err and "values [9]" in err
    Image.fromarray(np.zeros((12, 14, 3), np.uint8)).save(pred_dir / "img1.png")
    err = _bad(capsys, _miou_args(gt_dir, pred_dir))
    assert str(pred_dir / "img1.png") in err and "mode RGB" in err
    err = _bad(capsys, _miou_args(gt_dir, pred_dir, K=300))              # 255 inside the classes
    assert "ignore_index" in err


def test_readme_pq_example_is_this_output(tmp_path, capsys):
    """The table in the README's "Scoring saved predictions" is the command's output on random_dataset(seed 11)."""
    from pathlib import Path

    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    section = readme.split("### Scoring saved predictions", 1)[1]
    shown = section.split("```\ncategory", 1)[1].split("```", 1)[0]
    shown = ("category" + shown).strip().splitlines()
    files = random_dataset(tmp_path, np.random.default_rng(11))
    assert cli.main(_args(files) + ["--per-class"]) == 0
    out = capsys.readouterr().out.strip().splitlines()
    assert out[:-1] == shown[:-1]
    assert out[-1].split(";")[0] == shown[-1].split(";")[0]                # the time differs

"""data_scripts: each converter on a tiny fixture built here in the real format, and on bad input."""
import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from minseg import data
from minseg.data import convert

PIL = pytest.importorskip("PIL")
from PIL import Image  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
SCRIPTS = REPO / "data_scripts"
VOC_PALETTE = data.make_palette(256)


def _script(name, monkeypatch):
    """Import data_scripts/<name>.py as a module (its directory on sys.path, as when run)."""
    monkeypatch.syspath_prepend(str(SCRIPTS))
    spec = importlib.util.spec_from_file_location(name, SCRIPTS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _nothing_left(parent: Path, out: Path):
    assert not out.exists()
    assert [p.name for p in parent.iterdir() if p.name.startswith(f".{out.name}")] == []


def _run(args, **kwargs):
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run([sys.executable] + [str(a) for a in args], capture_output=True, text=True, env=env,
                          cwd=REPO, timeout=120, **kwargs)


# --------------------------------------------------------------------------- VOC fixture

def _save_palette_png(path, indices):
    im = Image.fromarray(indices.astype(np.uint8), mode="P")
    im.putpalette(VOC_PALETTE.ravel().tolist())
    im.save(path)


def _voc_labels(H, W, cls, top):
    """Background, one object of class ``cls`` with VOC's 255 border, and its instance map."""
    labels = np.zeros((H, W), dtype=np.uint8)
    labels[top:top + 10, 5:20] = 255
    labels[top + 1:top + 9, 6:19] = cls
    instances = np.where(labels == 255, 255, 0).astype(np.uint8)
    instances[labels == cls] = 1
    return labels, instances


@pytest.fixture
def voc(tmp_path):
    """A 3-image VOC2012 tree: JPEGImages, SegmentationClass, SegmentationObject, ImageSets/Segmentation."""
    root = tmp_path / "VOCdevkit" / "VOC2012"
    for d in ("JPEGImages", "SegmentationClass", "SegmentationObject", "ImageSets/Segmentation"):
        (root / d).mkdir(parents=True)
    rng = np.random.default_rng(0)
    truth = {}
    for name, cls, top in (("2007_000032", 1, 3), ("2007_000039", 15, 10), ("2007_000063", 20, 5)):
        H, W = 30, 40
        Image.fromarray(rng.integers(0, 256, (H, W, 3), dtype=np.uint8)).save(root / "JPEGImages" / f"{name}.jpg")
        labels, instances = _voc_labels(H, W, cls, top)
        _save_palette_png(root / "SegmentationClass" / f"{name}.png", labels)
        _save_palette_png(root / "SegmentationObject" / f"{name}.png", instances)
        truth[name] = labels
    (root / "ImageSets/Segmentation/train.txt").write_text("2007_000032\n2007_000039\n")
    (root / "ImageSets/Segmentation/val.txt").write_text("2007_000063\n")
    return root, truth


def test_prepare_voc_writes_a_loadable_dataset(voc, tmp_path):
    root, truth = voc
    out = convert.prepare_voc(tmp_path / "VOCdevkit", tmp_path / "voc", size=40, show_progress=False)
    train = data.load_dataset(out, "train")
    assert train.images.shape == (2, 3, 40, 40) and train.class_names[15] == "person"
    assert train.things[0] is False and all(train.things[1:])
    np.testing.assert_array_equal(train.labels[1, :30], truth["2007_000039"])   # exact: no rescaling at 40
    assert np.all(train.labels[:, 30:] == 255)                                    # padding is ignore
    assert np.all((train.instances[1] == 1) == (train.labels[1] == 15))
    val = data.load_dataset(out, "val")
    assert set(np.unique(val.labels)) == {0, 20, 255}
    assert data.read_meta(out)["has_instances"] is True


def test_prepare_voc_rescales_labels_with_nearest(voc, tmp_path):
    root, _ = voc
    out = convert.prepare_voc(root, tmp_path / "voc", size=20, splits=["train"], limit=1, show_progress=False)
    ds = data.load_dataset(out)
    assert len(ds) == 1 and ds.images.shape[2:] == (20, 20)
    assert set(np.unique(ds.labels)) <= {0, 1, 255}                                # no invented classes
    assert np.all(ds.labels[0, 15:] == 255)


def test_prepare_voc_reads_rgb_masks(voc, tmp_path):
    root, truth = voc
    labels = truth["2007_000063"]
    rgb = VOC_PALETTE[labels]
    rgb[labels == 255] = (224, 224, 192)
    Image.fromarray(rgb).save(root / "SegmentationClass" / "2007_000063.png")
    out = convert.prepare_voc(root, tmp_path / "voc", size=40, splits=["val"], show_progress=False)
    np.testing.assert_array_equal(data.load_dataset(out, "val").labels[0, :30], labels)


@pytest.mark.parametrize("breakage, error, match", [
    ("no_jpeg_dir", FileNotFoundError, "JPEGImages"),
    ("no_list", FileNotFoundError, r"Segmentation/val\.txt"),
    ("missing_image", FileNotFoundError, r"2007_000063\.jpg"),
    ("index_not_in_palette", ValueError, r"2007_000063\.png' has label index 30 not in the palette"),
    ("colour_not_in_palette", ValueError, r"2007_000063\.png' has mask colour \(1, 2, 3\) not in the palette"),
    ("size_mismatch", ValueError, r"2007_000063\.jpg' is 30x40 .*2007_000063\.png' is 20x20"),
    ("corrupt_image", ValueError, r"2007_000063\.jpg' is corrupt or not an image"),
    ("corrupt_mask", ValueError, r"2007_000063\.png' is corrupt or not an image"),
])
def test_prepare_voc_bad_input_names_the_file_and_writes_nothing(voc, tmp_path, breakage, error, match):
    root, truth = voc
    name = "2007_000063"
    if breakage == "no_jpeg_dir":
        (root / "JPEGImages").rename(root / "images")
    elif breakage == "no_list":
        (root / "ImageSets/Segmentation/val.txt").unlink()
    elif breakage == "missing_image":
        (root / "JPEGImages" / f"{name}.jpg").unlink()
    elif breakage == "index_not_in_palette":
        bad = truth[name].copy()
        bad[0, 0] = 30
        _save_palette_png(root / "SegmentationClass" / f"{name}.png", bad)
    elif breakage == "colour_not_in_palette":
        rgb = VOC_PALETTE[truth[name]]
        rgb[0, 0] = (1, 2, 3)
        Image.fromarray(rgb).save(root / "SegmentationClass" / f"{name}.png")
    elif breakage == "size_mismatch":
        _save_palette_png(root / "SegmentationClass" / f"{name}.png", np.zeros((20, 20)))
    elif breakage == "corrupt_image":
        (root / "JPEGImages" / f"{name}.jpg").write_bytes(b"\xff\xd8\xff\xe0 truncated")
    elif breakage == "corrupt_mask":
        (root / "SegmentationClass" / f"{name}.png").write_bytes(b"not a png at all")
    out = tmp_path / "voc"
    with pytest.raises(error, match=match):
        convert.prepare_voc(root, out, size=40, show_progress=False)
    _nothing_left(tmp_path, out)


def test_prepare_voc_refuses_to_clobber(voc, tmp_path):
    root, _ = voc
    out = convert.prepare_voc(root, tmp_path / "voc", size=40, show_progress=False)
    with pytest.raises(FileExistsError, match="already exists"):
        convert.prepare_voc(root, out, size=40, show_progress=False)
    convert.prepare_voc(root, out, size=32, splits=["val"], overwrite=True, show_progress=False)
    assert data.read_meta(out)["splits"] == {"val": 1}


def test_prepare_voc_main_and_subprocess(voc, tmp_path, monkeypatch, capsys):
    root, _ = voc
    module = _script("prepare_voc", monkeypatch)
    assert module.main(["--root", str(root), "--out", str(tmp_path / "a"), "--size", "40", "--no-progress"]) == 0
    assert data.load_dataset(tmp_path / "a", "val").labels.shape == (1, 40, 40)
    assert module.main(["--root", str(tmp_path / "nowhere"), "--out", str(tmp_path / "b")]) == 1
    assert "prepare_voc.py: error:" in capsys.readouterr().err and not (tmp_path / "b").exists()

    done = _run([SCRIPTS / "prepare_voc.py", "--root", root, "--out", tmp_path / "c", "--size", "24"])
    assert done.returncode == 0, done.stderr
    assert data.load_dataset(tmp_path / "c", "train").images.shape == (2, 3, 24, 24)
    help_ = _run([SCRIPTS / "prepare_voc.py", "--help"])
    assert help_.returncode == 0 and "--root" in help_.stdout


# --------------------------------------------------------------------------- ISBI fixture

def _save_tiff(path, pages):
    frames = [Image.fromarray(p) for p in pages]
    frames[0].save(path, save_all=True, append_images=frames[1:])


@pytest.fixture
def isbi(tmp_path):
    rng = np.random.default_rng(0)
    volume = rng.integers(0, 256, (6, 16, 16), dtype=np.uint8)
    labels = np.where(rng.random((6, 16, 16)) < 0.2, 0, 255).astype(np.uint8)   # 0 = membrane
    root = tmp_path / "isbi"
    root.mkdir()
    _save_tiff(root / "train-volume.tif", volume)
    _save_tiff(root / "train-labels.tif", labels)
    return root, volume, labels


@pytest.mark.parametrize("reader", ["tifffile", "pillow"])
def test_prepare_isbi_writes_a_loadable_dataset(isbi, tmp_path, monkeypatch, reader):
    root, volume, labels = isbi
    if reader == "pillow":
        monkeypatch.setitem(sys.modules, "tifffile", None)      # import tifffile -> ImportError
    else:
        pytest.importorskip("tifffile")
    out = convert.prepare_isbi(root, tmp_path / "out", n_val=1, n_test=1, show_progress=False)
    splits = data.load_splits(out)
    assert {k: len(v) for k, v in splits.items()} == {"train": 4, "val": 1, "test": 1}
    train = splits["train"]
    assert train.class_names == ("cell", "membrane") and train.images.shape == (4, 1, 16, 16)
    np.testing.assert_array_equal(train.labels, (labels[:4] == 0).astype(np.int64))     # membrane = 1
    np.testing.assert_allclose(train.images[:, 0] * 255, volume[:4], atol=1e-3)
    np.testing.assert_array_equal(splits["test"].labels[0], labels[5] == 0)
    small = convert.prepare_isbi(root, tmp_path / "small", size=8, show_progress=False, n_val=1, n_test=0)
    assert data.load_dataset(small).labels.shape == (5, 8, 8)


@pytest.mark.parametrize("breakage, error, match", [
    ("missing", FileNotFoundError, r"train-labels\.tif"),
    ("value_not_in_palette", ValueError, r"train-labels\.tif' has label value 128 not in the palette"),
    ("page_mismatch", ValueError, r"train-volume\.tif' has shape \(6, 16, 16\) .*train-labels\.tif' has \(5, 16, 16\)"),
    ("size_mismatch", ValueError, r"train-labels\.tif' has \(6, 8, 8\)"),
    ("corrupt", ValueError, r"train-volume\.tif' is corrupt"),
])
def test_prepare_isbi_bad_input(isbi, tmp_path, breakage, error, match):
    root, volume, labels = isbi
    if breakage == "missing":
        (root / "train-labels.tif").unlink()
    elif breakage == "value_not_in_palette":
        bad = labels.copy()
        bad[2, 3, 4] = 128
        _save_tiff(root / "train-labels.tif", bad)
    elif breakage == "page_mismatch":
        _save_tiff(root / "train-labels.tif", labels[:5])
    elif breakage == "size_mismatch":
        _save_tiff(root / "train-labels.tif", labels[:, :8, :8])
    elif breakage == "corrupt":
        (root / "train-volume.tif").write_bytes(b"II*\x00garbage")
    out = tmp_path / "out"
    with pytest.raises(error, match=match):
        convert.prepare_isbi(root, out, show_progress=False)
    _nothing_left(tmp_path, out)


def test_prepare_isbi_main(isbi, tmp_path, monkeypatch):
    root, _, _ = isbi
    module = _script("prepare_isbi", monkeypatch)
    assert module.main(["--root", str(root), "--out", str(tmp_path / "o"), "--val", "2", "--test", "0",
                        "--no-progress"]) == 0
    assert data.read_meta(tmp_path / "o")["splits"] == {"train": 4, "val": 2}
    assert module.main(["--root", str(root), "--out", str(tmp_path / "p"), "--val", "3", "--test", "3"]) == 1
    assert not (tmp_path / "p").exists()


# --------------------------------------------------------------------------- COCO panoptic fixture

CATEGORIES = [
    {"id": 1, "name": "person", "isthing": 1, "color": [220, 20, 60], "supercategory": "person"},
    {"id": 3, "name": "car", "isthing": 1, "color": [0, 0, 142], "supercategory": "vehicle"},
    {"id": 184, "name": "sky-other-merged", "isthing": 0, "color": [70, 130, 180], "supercategory": "sky"},
]


def _id_to_rgb(ids):
    return np.stack([ids % 256, ids // 256 % 256, ids // 65536], axis=-1).astype(np.uint8)


@pytest.fixture
def coco(tmp_path):
    """One val image: sky (stuff), two people (one a crowd), a car, and unlabelled pixels."""
    root = tmp_path / "coco"
    (root / "val2017").mkdir(parents=True)
    (root / "annotations" / "panoptic_val2017").mkdir(parents=True)
    H, W = 24, 32
    ids = np.full((H, W), 70000, dtype=np.int64)            # sky; 70000 = (112, 17, 1): uses all three channels
    ids[2:10, 2:10] = 5                                      # person
    ids[12:20, 2:10] = 9                                     # a crowd of people
    ids[5:15, 15:30] = 300                                   # car, id 300 = (44, 1, 0)
    ids[22:, :] = 0                                          # unlabelled
    Image.fromarray(_id_to_rgb(ids)).save(root / "annotations" / "panoptic_val2017" / "000000000139.png")
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (H, W, 3), dtype=np.uint8)).save(
        root / "val2017" / "000000000139.jpg")
    doc = {
        "images": [{"id": 139, "file_name": "000000000139.jpg", "height": H, "width": W}],
        "annotations": [{"image_id": 139, "file_name": "000000000139.png", "segments_info": [
            {"id": 5, "category_id": 1, "iscrowd": 0, "area": 64, "bbox": [2, 2, 8, 8]},
            {"id": 9, "category_id": 1, "iscrowd": 1, "area": 64, "bbox": [2, 12, 8, 8]},
            {"id": 300, "category_id": 3, "iscrowd": 0, "area": 150, "bbox": [15, 5, 15, 10]},
            {"id": 70000, "category_id": 184, "iscrowd": 0, "area": 400, "bbox": [0, 0, 32, 22]},
        ]}],
        "categories": CATEGORIES,
    }
    (root / "annotations" / "panoptic_val2017.json").write_text(json.dumps(doc))
    return root, ids, doc


def test_prepare_coco_panoptic_writes_a_loadable_dataset(coco, tmp_path):
    root, ids, _ = coco
    out = convert.prepare_coco_panoptic(root, tmp_path / "out", size=32, splits=["val"], show_progress=False)
    ds = data.load_dataset(out, "val")
    assert ds.class_names == ("person", "car", "sky-other-merged") and ds.things == (True, True, False)
    assert ds.palette.tolist() == [c["color"] for c in CATEGORIES]
    lab, inst = ds.labels[0, :24], ds.instances[0, :24]
    expect_lab = np.select([ids == 5, ids == 9, ids == 300, ids == 70000], [0, 0, 1, 2], 255)
    expect_inst = np.select([ids == 5, ids == 300], [1, 2], 0)
    np.testing.assert_array_equal(lab, expect_lab)
    np.testing.assert_array_equal(inst, expect_inst)         # crowd: a thing class with instance 0
    assert np.all(ds.labels[0, 24:] == 255)
    assert data.read_meta(out)["coco_category_ids"] == [1, 3, 184]


@pytest.mark.parametrize("breakage, error, match", [
    ("id_not_in_segments", ValueError, r"000000000139\.png' has segment id 300 \(colour \(44, 1, 0\)\) that is not in"),
    ("unknown_category", ValueError, r"panoptic_val2017\.json'.*category_id 7 not in categories"),
    ("malformed_json", ValueError, r"panoptic_val2017\.json' is not valid JSON"),
    ("size_mismatch", ValueError, r"000000000139\.jpg' is 24x32 .*000000000139\.png' is 10x10"),
    ("missing_png_dir", FileNotFoundError, "panoptic_val2017"),
    ("corrupt_png", ValueError, r"000000000139\.png' is corrupt"),
])
def test_prepare_coco_panoptic_bad_input(coco, tmp_path, breakage, error, match):
    root, ids, doc = coco
    json_path = root / "annotations" / "panoptic_val2017.json"
    png_path = root / "annotations" / "panoptic_val2017" / "000000000139.png"
    if breakage == "id_not_in_segments":
        doc["annotations"][0]["segments_info"] = doc["annotations"][0]["segments_info"][:2] + \
            doc["annotations"][0]["segments_info"][3:]
        json_path.write_text(json.dumps(doc))
    elif breakage == "unknown_category":
        doc["annotations"][0]["segments_info"][2]["category_id"] = 7
        json_path.write_text(json.dumps(doc))
    elif breakage == "malformed_json":
        json_path.write_text('{"annotations": [')
    elif breakage == "size_mismatch":
        Image.fromarray(_id_to_rgb(np.full((10, 10), 5))).save(png_path)
    elif breakage == "missing_png_dir":
        png_path.unlink()
        png_path.parent.rmdir()
    elif breakage == "corrupt_png":
        png_path.write_bytes(b"\x89PNG\r\n\x1a\n broken")
    out = tmp_path / "out"
    with pytest.raises(error, match=match):
        convert.prepare_coco_panoptic(root, out, size=32, splits=["val"], show_progress=False)
    _nothing_left(tmp_path, out)


def test_prepare_coco_panoptic_main(coco, tmp_path, monkeypatch):
    root, _, _ = coco
    module = _script("prepare_coco_panoptic", monkeypatch)
    assert module.main(["--root", str(root), "--out", str(tmp_path / "o"), "--splits", "val", "--size", "16",
                        "--no-progress"]) == 0
    assert data.load_dataset(tmp_path / "o", "val").labels.shape == (1, 16, 16)
    assert module.main(["--root", str(root), "--out", str(tmp_path / "p")]) == 1   # no train split here
    assert not (tmp_path / "p").exists()


# --------------------------------------------------------------------------- make_datasets

def test_make_datasets_main_and_subprocess(tmp_path, monkeypatch, capsys):
    module = _script("make_datasets", monkeypatch)
    assert module.main(["coins", "--root", str(tmp_path)]) == 0
    assert "coins ready" in capsys.readouterr().out
    assert data.load_dataset("coins", "test", root=tmp_path).images.shape == (42, 1, 64, 64)
    with pytest.raises(SystemExit):
        module.main(["no-such-set"])
    done = _run([SCRIPTS / "make_datasets.py", "coins", "--root", tmp_path / "sub"])
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "sub" / "coins-seed0" / "meta.json").is_file()
    for script in ("make_datasets.py", "prepare_isbi.py", "prepare_coco_panoptic.py"):
        assert _run([SCRIPTS / script, "--help"]).returncode == 0

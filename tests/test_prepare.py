"""`minseg prepare`: Cityscapes and a folder of your own images, on small fixture folders written here."""
import json
import re

import numpy as np
import pytest

from minseg import data
from minseg.data import convert

pytest.importorskip("PIL")
from PIL import Image  # noqa: E402


def _cityscapes(root, H=16, W=32, split="train"):
    """One frame: road (id 7) top, a car (id 26) object 26001 and 26002, a person crowd (id 24), ego vehicle (1)."""
    label_ids = np.full((H, W), 7, dtype=np.uint8)
    label_ids[H - 2:] = 1                                       # ego vehicle -> ignore
    label_ids[4:8, 2:8] = 26
    label_ids[4:8, 10:14] = 26
    label_ids[9:12, 20:26] = 24                                 # a person group: crowd, instance 0
    inst = label_ids.astype(np.uint16)                          # a 16-bit PNG, as Cityscapes ships it
    inst[4:8, 2:8] = 26001
    inst[4:8, 10:14] = 26002
    for d in (f"leftImg8bit/{split}/aachen", f"gtFine/{split}/aachen"):
        (root / d).mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (H, W, 3), dtype=np.uint8)).save(
        root / f"leftImg8bit/{split}/aachen/aachen_000000_000019_leftImg8bit.png")
    Image.fromarray(label_ids, mode="L").save(root / f"gtFine/{split}/aachen/aachen_000000_000019_gtFine_labelIds.png")
    Image.fromarray(inst.astype(np.uint16)).save(root / f"gtFine/{split}/aachen/aachen_000000_000019_gtFine_instanceIds.png")
    return label_ids


def test_train_id_table_matches_cityscapes_scripts():
    t = convert.CITYSCAPES_TRAIN_IDS
    assert len(t) == 34 and [t[i] for i in (7, 8, 11, 17, 19, 20, 21, 23, 24, 26, 31, 33)] == \
        [0, 1, 2, 5, 6, 7, 8, 10, 11, 13, 16, 18]
    assert all(t[i] == 255 for i in (0, 1, 2, 3, 4, 5, 6, 9, 10, 14, 15, 16, 18, 29, 30))
    assert sorted(v for v in t if v != 255) == list(range(19))


def test_prepare_cityscapes(tmp_path):
    _cityscapes(tmp_path / "cs")
    out = convert.prepare_cityscapes(tmp_path / "cs", tmp_path / "out", size=32, splits=["train"],
                                     show_progress=False)
    ds = data.load_dataset(out, "train")
    assert ds.num_classes == 19 and ds.class_names[13] == "car" and ds.things[13] and not ds.things[0]
    lab, inst = ds.labels[0], ds.instances[0]
    assert lab[0, 0] == 0 and lab[4, 2] == 13 and lab[9, 20] == 11      # road, car, person
    assert np.all(lab[14:16] == 255) and np.all(lab[16:] == 255)         # ego vehicle and the square padding
    assert inst[4, 2] == 1 and inst[4, 10] == 2 and inst[9, 20] == 0 and inst[0, 0] == 0


def test_cityscapes_bad_label_and_missing_mask_name_the_file(tmp_path):
    label_ids = _cityscapes(tmp_path / "cs")
    bad = label_ids.copy()
    bad[0, 0] = 40
    path = tmp_path / "cs/gtFine/train/aachen/aachen_000000_000019_gtFine_labelIds.png"
    Image.fromarray(bad, mode="L").save(path)
    with pytest.raises(ValueError, match=r"labelIds\.png' has label id 40 not in the Cityscapes table"):
        convert.prepare_cityscapes(tmp_path / "cs", tmp_path / "out", splits=["train"], show_progress=False)
    path.unlink()
    with pytest.raises(FileNotFoundError, match=r"leftImg8bit\.png' has no mask"):
        convert.prepare_cityscapes(tmp_path / "cs", tmp_path / "out", splits=["train"], show_progress=False)
    assert not (tmp_path / "out").exists()



def test_minseg_prepare_cityscapes_and_script(tmp_path, capsys):
    """`minseg prepare cityscapes` and data_scripts/prepare_cityscapes.py write the same loadable dataset."""
    import subprocess
    import sys
    from pathlib import Path

    from minseg import cli

    _cityscapes(tmp_path / "cs")
    _cityscapes(tmp_path / "cs", split="val")
    assert cli.main(["prepare", "cityscapes", "--root", str(tmp_path / "cs"), "--out", str(tmp_path / "o"),
                     "--size", "32", "--no-progress"]) == 0
    assert "minseg train --model unet --dataset" in capsys.readouterr().out
    ds = data.load_dataset(tmp_path / "o", "val")
    assert ds.labels[0, 4, 2] == 13 and ds.instances[0, 4, 10] == 2
    assert cli.main(["prepare", "cityscapes", "--root", str(tmp_path / "cs"), "--out", str(tmp_path / "o")]) == 2
    assert "already exists" in capsys.readouterr().err
    repo = Path(__file__).resolve().parents[1]
    proc = subprocess.run([sys.executable, str(repo / "data_scripts/prepare_cityscapes.py"), "--root",
                           str(tmp_path / "cs"), "--out", str(tmp_path / "s"), "--size", "32", "--no-progress"],
                          capture_output=True, text=True, cwd=repo, timeout=120)
    assert proc.returncode == 0, proc.stderr
    np.testing.assert_array_equal(data.load_dataset(tmp_path / "s", "val").labels, ds.labels)


# --------------------------------------------------------------------------- prepare folder

def _folder(root, n=6, H=12, W=16, colour=None, mode="L"):
    """``n`` images with a bright square (class 1) and a dark bar (class 2) on class 0; masks as index or colour PNGs.

    ``colour``: a (3, 3) palette -> RGB masks in those colours; else index PNGs in ``mode`` ("L" or "P").
    """
    rng = np.random.default_rng(1)
    (root / "images").mkdir(parents=True, exist_ok=True)
    (root / "masks").mkdir(parents=True, exist_ok=True)
    labels_all = []
    for i in range(n):
        lab = np.zeros((H, W), dtype=np.uint8)
        r, c = rng.integers(0, H - 5), rng.integers(0, W - 5)
        lab[r:r + 5, c:c + 5] = 1
        lab[H - 2:, :] = 2                                      # the bottom two rows, edge pixels included
        lab[0, W - 1] = 255                                     # one ignored pixel in a corner
        img = rng.integers(0, 60, (H, W, 3), dtype=np.uint8)
        img[lab == 1] += 180
        Image.fromarray(img).save(root / "images" / f"img_{i:02d}.{'jpg' if i % 2 else 'png'}")
        if colour is not None:
            rgb = np.zeros((H, W, 3), dtype=np.uint8)
            for k in range(3):
                rgb[lab == k] = colour[k]
            rgb[lab == 255] = (224, 224, 192)                   # VOC's void cream
            Image.fromarray(rgb).save(root / "masks" / f"img_{i:02d}.png")
        elif mode == "P":
            im = Image.fromarray(lab, mode="P")
            im.putpalette([0, 0, 0, 255, 0, 0, 0, 255, 0] + [0] * (253 * 3))
            im.save(root / "masks" / f"img_{i:02d}.png")
        else:
            Image.fromarray(lab, mode="L").save(root / "masks" / f"img_{i:02d}.png")
        labels_all.append(lab)
    return labels_all


def test_prepare_folder_index_masks_native_size(tmp_path):
    labels = _folder(tmp_path, mode="P")
    (tmp_path / "classes.txt").write_text("# my classes\nbackground\nsquare\n\nbar\n")
    out = convert.prepare_folder(tmp_path / "images", tmp_path / "masks", tmp_path / "ds",
                                 classes=tmp_path / "classes.txt", size=None, val_fraction=1 / 3, show_progress=False)
    meta = data.read_meta(out)
    assert meta["class_names"] == ["background", "square", "bar"] and meta["splits"] == {"train": 4, "val": 2}
    assert meta["palette"] == convert.make_palette(3).tolist() and meta["has_instances"] is False
    train, val = data.load_dataset(out, "train"), data.load_dataset(out, "val")
    names = meta["files"]["train"] + meta["files"]["val"]
    assert sorted(names) == [f"img_{i:02d}.{'jpg' if i % 2 else 'png'}" for i in range(6)]
    got = {n: lab for n, lab in zip(names, np.concatenate([train.labels, val.labels]))}
    for i, lab in enumerate(labels):                            # every label lands unchanged on its own image
        np.testing.assert_array_equal(got[f"img_{i:02d}.{'jpg' if i % 2 else 'png'}"], lab)
    assert train.images.shape == (4, 3, 12, 16) and train.labels[0, 0, 15] == 255
    # the image went along with its mask: the square's pixels are the bright ones
    assert train.images[0].mean(0)[train.labels[0] == 1].min() > train.images[0].mean(0)[train.labels[0] == 0].max()


def test_prepare_folder_colour_masks_and_fit_to_square(tmp_path):
    colours = [(10, 20, 30), (200, 0, 0), (0, 0, 200)]
    labels = _folder(tmp_path, n=3, colour=colours)
    (tmp_path / "classes.txt").write_text("back ground 10 20 30\nsquare 200 0 0\nbar 0 0 200\n")
    out = convert.prepare_folder(tmp_path / "images", tmp_path / "masks", tmp_path / "ds",
                                 classes=tmp_path / "classes.txt", size=32, val_fraction=0, show_progress=False)
    meta = data.read_meta(out)
    assert meta["class_names"] == ["back ground", "square", "bar"] and meta["palette"] == [list(c) for c in colours]
    assert meta["splits"] == {"train": 3}
    ds = data.load_dataset(out, "train")
    assert ds.labels.shape == (3, 32, 32)
    # 12 x 16 scaled by 2 to 24 x 32, then padded with ignore below
    assert np.all(ds.labels[:, 24:] == 255) and np.all(ds.labels[:, 20:24] == 2)
    np.testing.assert_array_equal(ds.labels[0, :24:2, ::2], labels[0])   # nearest: every 2x2 block keeps its id


def test_prepare_folder_without_classes_counts_the_ids(tmp_path):
    _folder(tmp_path, n=2)
    out = convert.prepare_folder(tmp_path / "images", tmp_path / "masks", tmp_path / "ds", size=16,
                                 show_progress=False)
    meta = data.read_meta(out)
    assert meta["class_names"] == ["class_0", "class_1", "class_2"] and meta["splits"] == {"train": 1, "val": 1}


def test_prepare_folder_bad_input_names_the_file(tmp_path):
    colours = [(10, 20, 30), (200, 0, 0), (0, 0, 200)]
    _folder(tmp_path, n=3, colour=colours)
    (tmp_path / "classes.txt").write_text("a 10 20 30\nb 200 0 0\nc 0 0 200\n")
    (tmp_path / "two.txt").write_text("a\nb\n")
    args = (tmp_path / "images", tmp_path / "masks", tmp_path / "ds")
    kw = dict(show_progress=False)
    # a colour not in the palette
    rgb = np.asarray(Image.open(tmp_path / "masks/img_01.png")).copy()
    rgb[3, 3] = (1, 2, 3)
    Image.fromarray(rgb).save(tmp_path / "masks/img_01.png")
    with pytest.raises(ValueError, match=r"img_01\.png' has mask colour \(1, 2, 3\) not in the palette"):
        convert.prepare_folder(*args, classes=tmp_path / "classes.txt", **kw)
    # colour masks and no colours to read them by
    with pytest.raises(ValueError, match=r"img_00\.png' is a colour \(RGB\) PNG.*--classes"):
        convert.prepare_folder(*args, **kw)
    # an index label outside the classes
    for f in (tmp_path / "masks").iterdir():
        f.unlink()
    _folder(tmp_path, n=3)
    with pytest.raises(ValueError, match=r"img_00\.png' has label index 2 not in the palette \(expected 0\.\.1"):
        convert.prepare_folder(*args, classes=tmp_path / "two.txt", **kw)
    # sizes that differ
    Image.fromarray(np.zeros((5, 7), dtype=np.uint8), mode="L").save(tmp_path / "masks/img_02.png")
    with pytest.raises(ValueError, match=r"img_02\.png' is 12x16 .*but mask .*img_02\.png' is 5x7"):
        convert.prepare_folder(*args, **kw)
    # an image without a mask, then a mask without an image
    (tmp_path / "masks/img_02.png").unlink()
    with pytest.raises(FileNotFoundError, match=r"image .*img_02\.png' has no mask"):
        convert.prepare_folder(*args, **kw)
    Image.fromarray(np.zeros((12, 16), dtype=np.uint8), mode="L").save(tmp_path / "masks/extra.png")
    (tmp_path / "images/img_02.png").unlink()
    with pytest.raises(FileNotFoundError, match=r"mask .*extra\.png' has no image"):
        convert.prepare_folder(*args, **kw)
    # native size with images of different sizes
    (tmp_path / "masks/extra.png").unlink()
    Image.fromarray(np.zeros((10, 10, 3), dtype=np.uint8)).save(tmp_path / "images/img_00.png")
    Image.fromarray(np.zeros((10, 10), dtype=np.uint8), mode="L").save(tmp_path / "masks/img_00.png")
    with pytest.raises(ValueError, match=r"img_01\.jpg' is 12x16 but .*img_00\.png' is 10x10; expected one size"):
        convert.prepare_folder(*args, size=None, **kw)
    assert not (tmp_path / "ds").exists()                      # nothing half-written


@pytest.mark.parametrize("text, words", [
    ("", "lists no classes"),
    ("a\na\n", "line 2: class 'a' is listed twice"),
    ("a 1 2 3\nb\n", "line 2: expected every class to have a colour"),
    ("a 1 2 3\nb 1 2 3\n", "line 2: colour (1, 2, 3) is already class 'a'"),
    ("a 1 2 300\n", "line 1: expected colour values in 0..255"),
])
def test_read_classes_errors(tmp_path, text, words):
    (tmp_path / "c.txt").write_text(text)
    with pytest.raises(ValueError, match=re.escape(words)):
        convert.read_classes(tmp_path / "c.txt")


def test_prepare_folder_then_train_two_commands(tmp_path, capsys):
    """`minseg prepare folder` then `minseg train --dataset PATH`: the folder trains."""
    from minseg import cli

    _folder(tmp_path, n=6)
    (tmp_path / "classes.txt").write_text("background\nsquare\nbar\n")
    assert cli.main(["prepare", "folder", "--images", str(tmp_path / "images"), "--masks", str(tmp_path / "masks"),
                     "--out", str(tmp_path / "ds"), "--classes", str(tmp_path / "classes.txt"), "--size", "16",
                     "--val-fraction", "0.34", "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "3 classes (background, square, bar), train 4 images, val 2 images" in out
    assert f"minseg train --model unet --dataset {tmp_path / 'ds'}" in out
    assert cli.main(["train", "--model", "unet", "--dataset", str(tmp_path / "ds"), "--epochs", "1",
                     "--batch-size", "4", "--model-arg", "base_width=4", "--model-arg", "depth=2",
                     "--out", str(tmp_path / "run"), "--no-progress"]) == 0
    metrics = json.loads((tmp_path / "run/metrics.json").read_text())
    assert metrics["class_names"] == ["background", "square", "bar"] and len(metrics["iou"]) == 3
    assert (tmp_path / "run/best.npz").is_file()
    # bad input from the command line: one line naming the file, status 2, nothing written
    (tmp_path / "masks/img_03.png").unlink()
    assert cli.main(["prepare", "folder", "--images", str(tmp_path / "images"), "--masks", str(tmp_path / "masks"),
                     "--out", str(tmp_path / "ds2"), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "img_03.jpg' has no mask" in err and not (tmp_path / "ds2").exists()
    assert cli.main(["prepare", "folder", "--images", str(tmp_path / "images"), "--masks", str(tmp_path / "masks"),
                     "--out", str(tmp_path / "ds2"), "--val-fraction", "1.5", "--no-progress"]) == 2
    assert "expected val_fraction in [0, 1), got 1.5" in capsys.readouterr().err


def test_prepare_folder_colour_masks_with_names_only_use_vocs_colours(tmp_path):
    voc = convert.make_palette(3)                              # black, (128, 0, 0), (0, 128, 0)
    labels = _folder(tmp_path, n=2, colour=[tuple(c) for c in voc])
    (tmp_path / "classes.txt").write_text("background\nsquare\nbar\n")
    out = convert.prepare_folder(tmp_path / "images", tmp_path / "masks", tmp_path / "ds", size=None,
                                 classes=tmp_path / "classes.txt", val_fraction=0, show_progress=False)
    ds = data.load_dataset(out, "train")
    np.testing.assert_array_equal(ds.labels, np.stack(labels))  # the cream corner pixel is 255 too

"""Cityscapes conversion on a small gtFine / leftImg8bit fixture written here."""
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

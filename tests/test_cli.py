"""The `minseg` command: every sub-command end to end on a tiny dataset, exit status, one-line errors."""
import json
import subprocess
import sys

import numpy as np
import pytest

from minseg import cli, data


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory):
    """A prepared dataset directory: bright squares (class 1) on a dark background."""
    rng = np.random.default_rng(0)

    def split(n):
        images = rng.uniform(0.0, 0.3, size=(n, 3, 16, 16)).astype(np.float32)
        labels = np.zeros((n, 16, 16), dtype=np.int64)
        instances = np.zeros((n, 16, 16), dtype=np.int64)
        for i in range(n):
            r, c = rng.integers(0, 10, size=2)
            images[i, :, r:r + 6, c:c + 6] += 0.6
            labels[i, r:r + 6, c:c + 6] = 1
            instances[i, r:r + 6, c:c + 6] = 1
        return images, labels, instances

    meta = {"name": "tiny", "class_names": ["background", "square"], "palette": [[0, 0, 0], [220, 40, 40]],
            "things": [False, True], "ignore_index": 255}
    path = tmp_path_factory.mktemp("data") / "tiny"
    data.write_dataset(path, meta, {"train": split(32), "val": split(8), "test": split(8)})
    return path


def test_gradcheck_command_prints_table(capsys):
    assert cli.main(["gradcheck"]) == 0
    out = capsys.readouterr().out
    assert "max rel err" in out and "gradient checks passed" in out


def test_train_eval_predict(tiny_dir, tmp_path, capsys):
    out = tmp_path / "run"
    assert cli.main(["train", "--model", "pixel", "--dataset", str(tiny_dir), "--epochs", "3", "--batch-size", "8",
                     "--lr", "0.05", "--out", str(out), "--no-progress"]) == 0
    printed = capsys.readouterr().out
    assert "mIoU" in printed and "PQ" in printed
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["miou"] > 0.8 and len(metrics["iou"]) == 2
    assert set(metrics["panoptic"]) == {"All", "Things", "Stuff"}
    assert (out / "predictions.png").stat().st_size > 1000

    assert cli.main(["eval", "--checkpoint", str(out / "best.npz"), "--dataset", str(tiny_dir), "--split", "test",
                     "--json", str(tmp_path / "eval.json")]) == 0
    assert json.loads((tmp_path / "eval.json").read_text())["miou"] > 0.8

    from PIL import Image

    ds = data.load_dataset(tiny_dir, "test")
    Image.fromarray((ds.images[0].transpose(1, 2, 0) * 255).astype(np.uint8)).save(tmp_path / "in.png")
    assert cli.main(["predict", "--checkpoint", str(out / "best.npz"), "--image", str(tmp_path / "in.png"),
                     "--out", str(tmp_path / "mask.png")]) == 0
    mask = np.asarray(Image.open(tmp_path / "mask.png"))
    assert mask.shape == (16, 16, 3)
    # the square is painted in class 1's palette colour
    assert (mask[ds.labels[0] == 1] == [220, 40, 40]).all(axis=1).mean() > 0.8


@pytest.mark.parametrize("argv,words", [
    (["nonsense"], "invalid choice"),
    (["train", "--model", "pixel"], "required: --dataset"),
    (["train", "--model", "pixel", "--dataset", "shapes", "--epochs", "0"], "expected an int >= 1, got '0'"),
    (["train", "--model", "nope", "--dataset", "shapes"], "expected --model in"),
    (["train", "--model", "pixel", "--dataset", "/no/such/dir"], "/no/such/dir"),
    (["eval", "--checkpoint", "/no/such.npz"], "no file at /no/such.npz"),
    (["train", "--model", "pixel", "--dataset", "shapes", "--model-arg", "width"], "key=value"),
])
def test_bad_arguments_give_one_line_and_nonzero_status(argv, words):
    proc = subprocess.run([sys.executable, "-m", "minseg.cli", *argv], capture_output=True, text=True)
    assert proc.returncode == 2
    assert proc.stderr.strip().count("\n") == 0, proc.stderr
    assert proc.stderr.startswith("minseg")
    assert words in proc.stderr
    assert "Traceback" not in proc.stderr


def test_train_without_matplotlib_still_reports_scores(tiny_dir, tmp_path, capsys, monkeypatch):
    """matplotlib is optional: without it the run ends normally, scores printed, no picture."""
    def no_matplotlib(*args, **kwargs):
        raise ImportError("minseg.viz: matplotlib is needed to draw figures")

    monkeypatch.setattr(cli, "_save_predictions_png", no_matplotlib)
    out = tmp_path / "run"
    assert cli.main(["train", "--model", "pixel", "--dataset", str(tiny_dir), "--epochs", "1", "--out", str(out),
                     "--no-progress"]) == 0
    printed = capsys.readouterr().out
    assert "mIoU" in printed and "no predictions.png" in printed
    assert (out / "metrics.json").exists() and not (out / "predictions.png").exists()

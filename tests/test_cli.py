"""The `minseg` command: every sub-command end to end on a tiny dataset, exit status, one-line errors."""
import json
import re
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


def test_version_and_python_dash_m():
    import minseg

    proc = subprocess.run([sys.executable, "-m", "minseg", "--version"], capture_output=True, text=True)
    assert proc.returncode == 0 and proc.stdout.strip() == f"minseg {minseg.__version__}"


def test_demo_has_no_time_budget_by_default():
    args = cli.build_parser().parse_args(["demo"])
    assert args.time_budget is None and args.epochs == cli.DEMO["epochs"]


def test_demo_same_seed_same_numbers(tmp_path, monkeypatch, tiny_dir):
    """Two demo runs with one seed print the same scores (tiny data and model, so the test is quick)."""
    monkeypatch.setitem(cli.DEMO, "dataset", str(tiny_dir))
    monkeypatch.setitem(cli.DEMO, "model_args", {"base_width": 4, "depth": 1})
    metrics = []
    for i in range(2):
        assert cli.main(["demo", "--epochs", "2", "--out", str(tmp_path / f"d{i}"), "--no-progress"]) == 0
        metrics.append(json.loads((tmp_path / f"d{i}" / "metrics.json").read_text()))
    for key in ("miou", "pixel_accuracy", "iou"):
        assert metrics[0][key] == metrics[1][key]
    assert metrics[0]["panoptic"] == metrics[1]["panoptic"]


def test_demo_explains_its_scores(tmp_path, monkeypatch, tiny_dir, capsys):
    monkeypatch.setitem(cli.DEMO, "dataset", str(tiny_dir))
    monkeypatch.setitem(cli.DEMO, "model_args", {"base_width": 4, "depth": 1})
    assert cli.main(["demo", "--epochs", "1", "--out", str(tmp_path / "d"), "--no-progress"]) == 0
    out = capsys.readouterr().out
    scores_at = out.index("mIoU ")
    for word in ("mIoU:", "PQ (panoptic quality)", "SQ (", "RQ (", "Things / Stuff", "instances:",
                 str(tmp_path / "d")):
        assert out.index(word) > scores_at, word


def test_predict_error_has_one_prefix(tmp_path):
    from minseg.models import build_model
    from minseg.train import save_checkpoint

    ckpt = save_checkpoint(tmp_path / "m.npz", build_model("pixel", num_classes=2, in_channels=3, rng=0))
    (tmp_path / "bad.png").write_text("not an image")
    proc = subprocess.run([sys.executable, "-m", "minseg", "predict", "--checkpoint", str(ckpt), "--image",
                           str(tmp_path / "bad.png"), "--out", str(tmp_path / "o.png")], capture_output=True, text=True)
    assert proc.returncode == 2 and proc.stderr.count("minseg predict") == 1, proc.stderr
    assert "bad.png" in proc.stderr and proc.stderr.strip().count("\n") == 0


def test_train_help_lists_each_model_on_one_line(capsys):
    with pytest.raises(SystemExit):
        cli.main(["train", "--help"])
    out = capsys.readouterr().out
    for name in cli.SEGMENTATION_MODELS:
        assert sum(line.split()[:1] == [name] for line in out.splitlines()) == 1, name


def test_classifier_is_refused_before_training(capsys):
    assert cli.main(["train", "--model", "vgg_classifier", "--dataset", "shapes"]) == 2
    err = capsys.readouterr()
    assert "not a segmentation model" in err.err and "training" not in err.out


def test_text_file_as_checkpoint_is_one_clear_line(tmp_path):
    (tmp_path / "notes.txt").write_text("hello\n")
    proc = subprocess.run([sys.executable, "-m", "minseg", "eval", "--checkpoint", str(tmp_path / "notes.txt")],
                          capture_output=True, text=True)
    assert proc.returncode == 2 and proc.stderr.strip().count("\n") == 0
    assert "notes.txt is not a readable minseg checkpoint" in proc.stderr and "pickle" not in proc.stderr


@pytest.mark.parametrize("arg,words", [
    ("base_width=abc", "expected --model-arg base_width to be int like its default"),
    ("no_such=3", "expected --model-arg KEY in"),
])
def test_bad_model_arg_is_named(arg, words, capsys):
    assert cli.main(["train", "--model", "unet", "--dataset", "shapes", "--model-arg", arg]) == 2
    err = capsys.readouterr().err
    assert words in err and "not all arguments converted" not in err and err.strip().count("\n") == 0


def test_predict_and_eval_make_a_missing_output_folder(tiny_dir, tmp_path):
    from PIL import Image

    from minseg.models import build_model
    from minseg.train import save_checkpoint

    ckpt = save_checkpoint(tmp_path / "m.npz", build_model("pixel", num_classes=2, in_channels=3, rng=0),
                           {"dataset": str(tiny_dir)})
    Image.fromarray(np.zeros((16, 16, 3), dtype=np.uint8)).save(tmp_path / "in.png")
    assert cli.main(["predict", "--checkpoint", str(ckpt), "--image", str(tmp_path / "in.png"),
                     "--out", str(tmp_path / "new" / "deeper" / "mask.png")]) == 0
    assert (tmp_path / "new" / "deeper" / "mask.png").is_file()
    assert cli.main(["eval", "--checkpoint", str(ckpt), "--dataset", str(tiny_dir),
                     "--json", str(tmp_path / "other" / "e.json")]) == 0
    assert json.loads((tmp_path / "other" / "e.json").read_text())["miou"] >= 0


def test_every_option_has_help_and_its_default_is_shown():
    def walk(parser):
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                for child in action.choices.values():
                    yield from walk(child)
            elif action.option_strings and action.dest not in ("help", "version"):
                yield parser.prog, action

    import argparse

    seen = 0
    for prog, action in walk(cli.build_parser()):
        seen += 1
        assert action.help, f"{prog} {action.option_strings[0]} has no help"
        if action.default not in (None, False) and not action.required:
            assert "default" in action.help, f"{prog} {action.option_strings[0]} does not show its default"
    assert seen > 25


def test_train_writes_titled_predictions_and_curves_and_predict_overlay(tiny_dir, tmp_path, capsys, monkeypatch):
    """predictions.png has a title with the score, curves.png the history; predict --overlay adds a legend picture."""
    import matplotlib.pyplot as plt
    from PIL import Image

    from minseg import viz

    figs = {}

    def spy(name):
        real = getattr(viz, name)

        def wrapped(*args, **kwargs):
            fig = real(*args, **kwargs)
            figs.setdefault(name, []).append(fig)
            return fig
        return wrapped

    monkeypatch.setattr(viz, "show_grid", spy("show_grid"))
    monkeypatch.setattr(viz, "plot_curves", spy("plot_curves"))
    out = tmp_path / "run"
    assert cli.main(["train", "--model", "pixel", "--dataset", str(tiny_dir), "--epochs", "2", "--batch-size", "8",
                     "--lr", "0.05", "--out", str(out), "--no-progress"]) == 0
    printed = capsys.readouterr().out
    metrics = json.loads((out / "metrics.json").read_text())
    title = figs["show_grid"][0]._suptitle.get_text()
    assert title == (f"pixel on {tiny_dir}: 2 epochs (best {metrics['best_epoch']}), "
                     f"test mIoU {metrics['miou']:.3f}")
    assert [t.get_text() for t in figs["show_grid"][0].legends[0].get_texts()][:2] == ["background", "square"]
    curves = figs["plot_curves"][0]
    _, losses = curves.axes[0].lines[0].get_data()
    _, val = curves.axes[1].lines[0].get_data()
    assert list(losses) == [row["loss"] for row in metrics["history"]["epochs"]]
    assert list(val) == [row["val_miou"] for row in metrics["history"]["epochs"]] and len(val) == 2
    assert (out / "curves.png").stat().st_size > 1000 and str(out / "curves.png") in printed
    assert not plt.get_fignums()                                            # the command closes its figures

    ds = data.load_dataset(tiny_dir, "test")
    Image.fromarray((ds.images[0].transpose(1, 2, 0) * 255).astype(np.uint8)).save(tmp_path / "in.png")
    assert cli.main(["predict", "--checkpoint", str(out / "best.npz"), "--image", str(tmp_path / "in.png"),
                     "--out", str(tmp_path / "mask.png"), "--overlay", str(tmp_path / "pics/overlay.png")]) == 0
    assert np.asarray(Image.open(tmp_path / "mask.png")).shape == (16, 16, 3)    # the plain mask, unchanged
    with Image.open(tmp_path / "pics/overlay.png") as im:
        assert im.format == "PNG" and im.size[0] > 200
    fig = figs["show_grid"][-1]
    assert [ax.get_title() for ax in fig.axes] == ["image", "prediction"]
    assert "square" in [t.get_text() for t in fig.legends[0].get_texts()]
    assert "in.png" in fig._suptitle.get_text() and "pixel" in fig._suptitle.get_text()
    assert "overlay.png" in capsys.readouterr().out


def test_datasets_prints_a_table(tiny_dir, tmp_path, monkeypatch, capsys):
    """`minseg datasets`: name, classes, image size, split sizes, built or not, where, for built-ins and prepared."""
    import shutil

    from minseg.data import registry

    monkeypatch.setenv("MINSEG_DATA", str(tmp_path / "cache"))
    shutil.copytree(tiny_dir, tmp_path / "cache" / "tiny")
    spec = registry.BUILTINS["coins"]                     # a current cache of coins, seed 0 (two tiny splits)
    z = np.zeros((2, 1, 64, 64), np.uint8), np.zeros((2, 64, 64), np.uint8), np.zeros((2, 64, 64), np.uint8)
    data.write_dataset(registry.builtin_path("coins", 0), {
        "name": "coins", "class_names": list(spec.class_names), "palette": spec.palette.tolist(),
        "things": list(spec.things), "ignore_index": 255, "seed": 0, "version": spec.version},
        {s: z for s in spec.sizes})
    (tmp_path / "cache" / "broken").mkdir()
    (tmp_path / "cache" / "broken" / "meta.json").write_text("{")
    assert cli.main(["datasets"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["name", "classes", "image", "(CxHxW)", "splits", "built", "where"]
    rows = {line.split()[0]: line for line in lines[2:] if line and not line.startswith(("cache", "broken:"))}
    assert list(rows) == ["shapes", "digits", "coins", "broken", "tiny"]
    assert "5: background, circle" in rows["shapes"] and "3x64x64" in rows["shapes"]
    assert "train 1000, val 200, test 200" in rows["shapes"] and "no, made on first use" in rows["shapes"]
    assert rows["shapes"].endswith(str(tmp_path / "cache" / "shapes-seed0"))
    assert "1x64x64" in rows["digits"] and "11: background, 0, 1" in rows["digits"]
    assert re.search(r"train 147, val 42, test 42 +yes ", rows["coins"])
    assert "2: background, square" in rows["tiny"] and "3x16x16" in rows["tiny"]
    assert "train 32, val 8, test 8" in rows["tiny"] and rows["tiny"].endswith(str(tmp_path / "cache" / "tiny"))
    assert "unreadable" in rows["broken"] and any(ln.startswith("broken: read_meta:") for ln in lines)
    assert any(ln.startswith(f"cache: {tmp_path / 'cache'}") for ln in lines)
    # the columns line up: every row's "where" starts where the header's does
    col = lines[0].index("where")
    assert all(line[col - 2:col] == "  " and line[col] == "/" for line in rows.values())

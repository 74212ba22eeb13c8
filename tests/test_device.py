"""Training, evaluation, prediction and checkpoints on a device: ``--device cpu|gpu`` and ``Module.to``.

Without a GPU, the GPU path runs on the strict fake device of ``tests/fake_cupy.py``
(NumPy underneath, CuPy's rules on top, every transfer counted), so the code
that moves batches, accumulates metrics on the device and writes checkpoints
from host copies is exercised here; ``benchmarks/gpu_check.py`` runs it on a
real GPU.
"""
import json
import sys
from pathlib import Path

import numpy as np
import pytest

import fake_cupy

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import gpu_check  # noqa: E402  (the device check's tiny dataset)
from minseg import backend, cli, data
from minseg.metrics import SegmentationMetrics
from minseg.models import build_model
from minseg.train import TrainConfig, evaluate, load_checkpoint, predict, restore_checkpoint, save_checkpoint, train


def _tiny(n=16, size=16, seed=0, split="train"):
    """Bright squares (class 1) on a dark background (class 0), an ignored top row: the device check's data."""
    return gpu_check._squares(n, seed, split, size)


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory):
    path = tmp_path_factory.mktemp("data") / "tiny"
    splits = {s: _tiny(n, seed=i, split=s) for i, (s, n) in enumerate((("train", 16), ("val", 8), ("test", 8)))}
    meta = {"name": "tiny", "class_names": ["background", "square"], "palette": [[0, 0, 0], [220, 40, 40]],
            "things": [False, True], "ignore_index": 255}
    data.write_dataset(path, meta, {s: (d.images, d.labels, d.instances) for s, d in splits.items()})
    return path


def _unet(seed=0, dtype=np.float32):
    return build_model("unet", num_classes=2, in_channels=3, base_width=4, depth=2, rng=seed, dtype=dtype)


# --------------------------------------------------------------------------- no GPU: one clear line

@pytest.mark.parametrize("has_cupy, words", [(False, 'cupy is not installed (install the gpu extra: pip install -e ".[gpu]")'),
                                             (True, "cupy is installed but cupy.cuda.is_available() is False "
                                                     "(no usable CUDA device)")])
@pytest.mark.parametrize("argv", [["train", "--model", "pixel", "--dataset", "shapes"], ["demo"],
                                  ["eval", "--checkpoint", "best.npz"],
                                  ["predict", "--checkpoint", "best.npz", "--image", "in.png", "--out", "m.png"]])
def test_device_gpu_without_a_gpu_is_one_clear_line(argv, has_cupy, words, monkeypatch, capsys, tmp_path):
    monkeypatch.setattr(backend, "has_gpu", lambda: False)
    monkeypatch.setattr(backend, "has_cupy", lambda: has_cupy)
    monkeypatch.chdir(tmp_path)
    assert cli.main(argv + ["--device", "gpu"]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""                                             # refused before anything ran
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1, captured.err
    assert lines[0] == f"minseg {argv[0]}: error: --device gpu: no usable GPU here: {words}"


def test_device_option_is_on_the_four_commands_and_checked(capsys):
    for command in ("demo", "train", "eval", "predict"):
        with pytest.raises(SystemExit):
            cli.main([command, "--help"])
        assert "--device {cpu,gpu}" in capsys.readouterr().out
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["train", "--model", "pixel", "--dataset", "shapes", "--device", "tpu"])
    assert exit_info.value.code == 2 and "invalid choice: 'tpu'" in capsys.readouterr().err


def test_device_cpu_changes_nothing(tiny_dir, tmp_path, capsys):
    runs = []
    for extra in ([], ["--device", "cpu"]):
        out = tmp_path / f"run{len(runs)}"
        assert cli.main(["train", "--model", "pixel", "--dataset", str(tiny_dir), "--epochs", "2", "--batch-size", "8",
                         "--lr", "0.05", "--out", str(out), "--no-progress"] + extra) == 0
        runs.append(json.loads((out / "metrics.json").read_text()))
    capsys.readouterr()
    assert [e["loss"] for e in runs[0]["history"]["epochs"]] == [e["loss"] for e in runs[1]["history"]["epochs"]]
    assert runs[0]["miou"] == runs[1]["miou"] and runs[0]["iou"] == runs[1]["iou"]


# --------------------------------------------------------------------------- the GPU path on the strict fake device

def test_same_seed_same_initial_weights_on_both_devices(monkeypatch):
    host = _unet(seed=3).state_dict()
    fake_cupy.install(monkeypatch)
    dev = _unet(seed=3).to("gpu")
    assert dev.device == "gpu" and _unet().device == "cpu"
    state = dev.state_dict()
    assert set(state) == set(host)
    for k, v in state.items():
        assert backend.is_cupy_array(v), k
        np.testing.assert_array_equal(backend.to_numpy(v), host[k], err_msg=k)   # bit for bit


def test_training_on_the_device_matches_the_cpu_and_checkpoints_cross_devices(monkeypatch, tmp_path):
    train_set, val_set = _tiny(), _tiny(8, seed=1, split="val")         # batches are float32
    cfg = TrainConfig(epochs=2, batch_size=8, lr=0.01, progress=False)
    cpu = _unet()
    hist_cpu = train(cpu, train_set, val_set, cfg, out_dir=tmp_path / "cpu", log=lambda s: None)
    fake_cupy.install(monkeypatch)
    gpu = _unet().to("gpu")
    fake_cupy.log.clear()
    hist_gpu = train(gpu, train_set, val_set, cfg, out_dir=tmp_path / "gpu", log=lambda s: None)
    for a, b in zip(hist_gpu.epochs, hist_cpu.epochs):
        assert a["loss"] == pytest.approx(b["loss"], rel=1e-6) and a["val_miou"] == pytest.approx(b["val_miou"], abs=1e-9)
    # what came back to the host: one (K, K) matrix per validation, the checkpoints' host copies, nothing else
    moved = fake_cupy.log.where("to_host")
    assert moved.pop("metrics.SegmentationMetrics.cm") == 2
    assert set(moved) == {"train.save_checkpoint"}, moved
    assert all(backend.is_cupy_array(p.data) for p in gpu.parameters())

    with np.load(tmp_path / "gpu" / "last.npz") as z:                     # written from host copies
        saved = {k[len("state/"):]: z[k] for k in z.files if k.startswith("state/")}
    for k, v in gpu.state_dict().items():
        np.testing.assert_array_equal(saved[k], backend.to_numpy(v), err_msg=k)
    for k, v in cpu.state_dict().items():
        np.testing.assert_allclose(saved[k], v, rtol=1e-4, atol=1e-6, err_msg=k)

    on_cpu, meta = load_checkpoint(tmp_path / "gpu" / "last.npz")
    on_gpu, _ = load_checkpoint(tmp_path / "cpu" / "last.npz", device="gpu")
    assert on_cpu.device == "cpu" and on_gpu.device == "gpu" and meta["epoch"] == 2
    assert all(isinstance(v, np.ndarray) for v in on_cpu.state_dict().values())
    restored = _unet(seed=9).to("gpu")
    restore_checkpoint(restored, tmp_path / "cpu" / "last.npz")
    for k, v in cpu.state_dict().items():
        np.testing.assert_array_equal(backend.to_numpy(on_gpu.state_dict()[k]), v, err_msg=k)
        np.testing.assert_array_equal(backend.to_numpy(restored.state_dict()[k]), v, err_msg=k)

    fake_cupy.log.clear()
    scores = evaluate(on_gpu, val_set)                                    # with panoptic: class ids come back
    assert scores["miou"] == evaluate(cpu, val_set)["miou"]
    assert fake_cupy.log.where("to_host") == {"metrics.SegmentationMetrics.cm": 1, "train.evaluate": 1}
    np.testing.assert_array_equal(predict(on_gpu, val_set.images), predict(cpu, val_set.images))


def test_metrics_accumulate_on_the_device(monkeypatch):
    rng = np.random.default_rng(0)
    pred, target = rng.integers(0, 3, size=(2, 5, 6)), rng.integers(0, 3, size=(2, 5, 6))
    target[0, 0] = 255
    want = SegmentationMetrics(3)
    want.update(pred, target)
    fake_cupy.install(monkeypatch)
    m = SegmentationMetrics(3)
    m.update(backend.to_device(pred[:1], "gpu"), backend.to_device(target[:1], "gpu"))
    m.update(backend.to_device(pred[1:], "gpu"), backend.to_device(target[1:], "gpu"))
    assert backend.is_cupy_array(m._cm)
    assert isinstance(m.cm, np.ndarray)
    np.testing.assert_array_equal(m.cm, want.cm)
    with pytest.raises(TypeError, match="one device"):
        m.update(pred, target)                                            # a host batch after device batches
    m.reset()
    assert m.cm.sum() == 0 and isinstance(m.cm, np.ndarray)


def test_the_commands_run_on_the_device(tiny_dir, tmp_path, monkeypatch, capsys):
    from PIL import Image  # noqa: PLC0415

    results = {}
    for device in ("cpu", "gpu"):
        if device == "gpu":
            fake_cupy.install(monkeypatch)
        out = tmp_path / device
        assert cli.main(["train", "--model", "pixel", "--dataset", str(tiny_dir), "--epochs", "2", "--batch-size", "8",
                         "--lr", "0.05", "--out", str(out), "--no-progress", "--device", device]) == 0
        assert cli.main(["eval", "--checkpoint", str(out / "best.npz"), "--dataset", str(tiny_dir),
                         "--json", str(out / "eval.json"), "--device", device]) == 0
        image = (np.asarray(data.load_dataset(str(tiny_dir), "test").images[0]).transpose(1, 2, 0) * 255)
        Image.fromarray(np.clip(image, 0, 255).astype(np.uint8)).save(tmp_path / "in.png")
        assert cli.main(["predict", "--checkpoint", str(out / "best.npz"), "--image", str(tmp_path / "in.png"),
                         "--out", str(out / "mask.png"), "--device", device]) == 0
        results[device] = (json.loads((out / "metrics.json").read_text()), json.loads((out / "eval.json").read_text()),
                           np.asarray(Image.open(out / "mask.png")))
    printed = capsys.readouterr().out
    assert "on the GPU" in printed
    (train_c, eval_c, mask_c), (train_g, eval_g, mask_g) = results["cpu"], results["gpu"]
    loss_c = [e["loss"] for e in train_c["history"]["epochs"]]
    loss_g = [e["loss"] for e in train_g["history"]["epochs"]]
    assert loss_g == pytest.approx(loss_c, rel=1e-5)                       # float32: round-off may differ
    assert train_g["miou"] == pytest.approx(train_c["miou"], abs=1e-6)
    assert eval_g["miou"] == pytest.approx(eval_c["miou"], abs=1e-6)
    np.testing.assert_array_equal(mask_g, mask_c)


def test_optimizer_state_saves_as_host_copies_and_loads_onto_the_device(monkeypatch):
    from minseg.optim import Adam  # noqa: PLC0415

    fake_cupy.install(monkeypatch)
    model = _unet().to("gpu")
    opt = Adam(model.parameters(), lr=1e-3)
    for p in model.parameters():
        p.grad = p.data * 0.5
    opt.step()
    saved = opt.state_dict()
    buffers = [v for st in saved["state"] for v in st.values() if hasattr(v, "shape")]
    assert buffers and all(isinstance(v, np.ndarray) for v in buffers)
    again = Adam(_unet().to("gpu").parameters(), lr=1e-3)
    again.load_state_dict(saved)
    for st, st2 in zip(opt.state, again.state):
        for k, v in st.items():
            if hasattr(v, "shape"):
                assert backend.is_cupy_array(st2[k]), k
                np.testing.assert_array_equal(backend.to_numpy(st2[k]), backend.to_numpy(v), err_msg=k)

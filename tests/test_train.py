"""Training loop, evaluation and checkpoints: learning, reproducibility, divergence, atomic and validated files."""
import json
import os

import numpy as np
import pytest

from minseg import data
from minseg.models import build_model
from minseg.train import (CheckpointError, TrainConfig, TrainingDiverged, evaluate, load_checkpoint, predict,
                          restore_checkpoint, save_checkpoint, train)


def _tiny_dataset(n=24, size=16, seed=0, split="train"):
    """Bright squares (class 1) on a dark background (class 0), with an ignore border and instances."""
    rng = np.random.default_rng(seed)
    images = rng.uniform(0.0, 0.3, size=(n, 3, size, size)).astype(np.float32)
    labels = np.zeros((n, size, size), dtype=np.int64)
    instances = np.zeros((n, size, size), dtype=np.int32)
    for i in range(n):
        r, c = rng.integers(0, size - 6, size=2)
        images[i, :, r:r + 6, c:c + 6] += 0.6
        labels[i, r:r + 6, c:c + 6] = 1
        instances[i, r:r + 6, c:c + 6] = 1
    labels[:, 0, :] = 255
    return data.Dataset(images=images, labels=labels, instances=instances, class_names=("background", "square"),
                        palette=np.array([[0, 0, 0], [200, 50, 50]], dtype=np.uint8), things=(False, True),
                        ignore_index=255, name="tiny", split=split)


@pytest.fixture(scope="module")
def tiny():
    return _tiny_dataset(), _tiny_dataset(8, seed=1, split="val")


def _model(seed=0):
    return build_model("pixel", num_classes=2, in_channels=3, rng=seed)


def test_training_learns_and_saves_the_best(tiny, tmp_path):
    train_set, val_set = tiny
    model = _model()
    before = evaluate(model, val_set, panoptic=False)["miou"]
    hist = train(model, train_set, val_set, TrainConfig(epochs=4, batch_size=8, lr=0.05, progress=False),
                 out_dir=tmp_path, log=lambda s: None)
    after = evaluate(model, val_set)
    assert after["miou"] > 0.9 > before
    assert len(hist.epochs) == 4 and hist.epochs[-1]["loss"] < hist.epochs[0]["loss"]
    assert {"best.npz", "last.npz"} <= set(os.listdir(tmp_path))
    best, meta = load_checkpoint(tmp_path / "best.npz")
    assert meta["epoch"] == hist.best_epoch and meta["class_names"] == ["background", "square"]
    assert evaluate(best, val_set, panoptic=False)["miou"] == pytest.approx(hist.best_miou)
    assert set(after["panoptic"]) == {"All", "Things", "Stuff"}


def test_seeded_runs_are_bit_for_bit_reproducible(tiny):
    train_set, val_set = tiny
    cfg = TrainConfig(epochs=2, batch_size=8, lr=0.05, progress=False)
    runs = []
    for _ in range(2):
        model = _model(seed=3)
        train(model, train_set, val_set, cfg, log=lambda s: None)
        runs.append(model.state_dict())
    for k in runs[0]:
        np.testing.assert_array_equal(runs[0][k], runs[1][k])


def test_nan_loss_stops_with_the_step_named(tiny):
    train_set, _ = tiny
    bad = train_set.images.copy()
    bad[5, 0, 3, 3] = np.nan
    poisoned = data.Dataset(images=bad, labels=train_set.labels, instances=train_set.instances,
                            class_names=train_set.class_names, palette=train_set.palette, things=train_set.things,
                            ignore_index=255, name="poisoned", split="train")
    with pytest.raises(TrainingDiverged, match=r"loss became nan at epoch 1, step \d+"):
        train(_model(), poisoned, None, TrainConfig(epochs=1, batch_size=4, progress=False, flip=False),
              log=lambda s: None)


def test_bad_config_is_rejected():
    with pytest.raises(ValueError, match="expected optimizer 'adam' or 'sgd', got 'rmsprop'"):
        TrainConfig(optimizer="rmsprop").check()
    with pytest.raises(ValueError, match="expected epochs to be an int >= 1, got 0"):
        TrainConfig(epochs=0).check()
    with pytest.raises(ValueError, match="expected lr > 0"):
        TrainConfig(lr=float("nan")).check()


def test_checkpoint_round_trip(tmp_path):
    model = build_model("unet", num_classes=3, in_channels=1, base_width=4, depth=2, rng=1)
    path = save_checkpoint(tmp_path / "m.npz", model, {"note": "x"})
    again, meta = load_checkpoint(path)
    assert again.name == "unet" and again.config == model.config and meta == {"note": "x"}
    x = np.random.default_rng(0).standard_normal((2, 1, 12, 12)).astype(np.float32)
    np.testing.assert_array_equal(again.predict(x), model.predict(x))
    assert not [p for p in os.listdir(tmp_path) if p != "m.npz"]  # no temporary left behind


def test_interrupted_save_keeps_the_previous_checkpoint(tmp_path, monkeypatch):
    model = _model()
    path = save_checkpoint(tmp_path / "best.npz", model)
    before = path.read_bytes()

    def crash(*args, **kwargs):
        raise KeyboardInterrupt("power cut")

    monkeypatch.setattr(np, "savez", crash)
    with pytest.raises(KeyboardInterrupt):
        save_checkpoint(path, _model(seed=9))
    assert path.read_bytes() == before
    assert os.listdir(tmp_path) == ["best.npz"]


@pytest.mark.parametrize("content", [b"", b"not a zip at all", b"PK\x03\x04 truncated"])
def test_corrupt_checkpoint_fails_clearly(tmp_path, content):
    path = tmp_path / "broken.npz"
    path.write_bytes(content)
    with pytest.raises(CheckpointError, match="broken.npz is not a readable minseg checkpoint"):
        load_checkpoint(path)


def test_missing_checkpoint(tmp_path):
    with pytest.raises(CheckpointError, match="no file at"):
        load_checkpoint(tmp_path / "nope.npz")


def test_mismatched_checkpoint_changes_nothing(tmp_path):
    small = build_model("unet", num_classes=3, in_channels=1, base_width=4, depth=2, rng=1)
    big = build_model("unet", num_classes=3, in_channels=1, base_width=8, depth=2, rng=2)
    path = save_checkpoint(tmp_path / "small.npz", small)
    snapshot = {k: v.copy() for k, v in big.state_dict().items()}
    with pytest.raises(CheckpointError, match="expected a checkpoint of unet"):
        restore_checkpoint(big, path)
    # same config, but one tensor tampered with: rejected before anything is written
    with np.load(path) as z:
        arrays = dict(z)
    key = next(k for k in arrays if k.startswith("state/"))
    arrays[key] = arrays[key][..., :1]
    np.savez(tmp_path / "tampered.npz", **arrays)
    same = build_model("unet", num_classes=3, in_channels=1, base_width=4, depth=2, rng=5)
    same_snapshot = {k: v.copy() for k, v in same.state_dict().items()}
    with pytest.raises(CheckpointError, match="does not fit unet"):
        restore_checkpoint(same, tmp_path / "tampered.npz")
    for k, v in same.state_dict().items():
        np.testing.assert_array_equal(v, same_snapshot[k])
    for k, v in big.state_dict().items():
        np.testing.assert_array_equal(v, snapshot[k])


def test_predict_batches_match_one_pass(tiny):
    train_set, _ = tiny
    model = _model()
    np.testing.assert_array_equal(predict(model, train_set.images, batch_size=5),
                                  model.predict(train_set.images))


def test_metrics_json_is_plain_json(tiny, tmp_path):
    _, val_set = tiny
    result = evaluate(_model(), val_set)
    json.loads(json.dumps(result, default=float))

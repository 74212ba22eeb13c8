"""The training loop, evaluation, prediction, and checkpoints.

One training step, with no autograd::

    logits = model.forward(images)                                   # (B, K, H, W)
    loss, cache = cross_entropy(logits, labels, ignore_index=255)    # mean over labelled pixels
    optimizer.zero_grad()                                            # p.grad = None everywhere
    model.backward(cross_entropy_backward(1.0, cache))               # fills p.grad by hand
    optimizer.step()                                                 # SGD or Adam; skips grad None

``train`` repeats that over shuffled mini-batches, evaluates mIoU on the
validation split after every epoch, and keeps the best checkpoint.

Checkpoints are ``.npz`` files holding the model's registry name, its config,
the class names and palette of its dataset, and its ``state_dict``. They are
written atomically (a temporary file in the same directory, then
``os.replace``), so an interrupted save never destroys the previous one; a
corrupt or mismatched checkpoint fails to load with ``CheckpointError`` and
changes nothing.

A seeded run on the CPU is bit-for-bit reproducible: the weights come from
``seed``, the batch order and augmentation of epoch ``e`` from ``(seed, e)``.

The device is the model's: ``train(model.to("gpu"), ...)`` trains on the GPU.
The data stay on the host; each batch is moved to the model's device
(``to_device``), the confusion matrix is accumulated there, and only the
``(K, K)`` matrix and one loss scalar per step come back. A model is always
initialised on the host (the same seed gives the same weights on either
device) and checkpoints are written from host copies, so a checkpoint saved
on one device loads onto the other.
"""
from __future__ import annotations

import json
import math
import os
import tempfile
import time
import zipfile
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from .backend import to_device, to_numpy
from .data import Compose, Dataset, RandomFlip, batches, progress
from .metrics import SegmentationMetrics
from .models import SegmentationModel, build_model
from .models.registry import check_finite
from .ops import cross_entropy, cross_entropy_backward
from .optim import SGD, Adam, PolyLR
from .panoptic import PanopticQuality, encode_panoptic, instances_from_semantic

__all__ = [
    "TrainConfig", "TrainingDiverged", "CheckpointError", "train", "evaluate", "predict",
    "save_checkpoint", "load_checkpoint", "restore_checkpoint",
]

CHECKPOINT_FORMAT = 1


class TrainingDiverged(RuntimeError):
    """The loss became NaN or infinite; the message names the epoch and step."""


class CheckpointError(ValueError):
    """A checkpoint file is missing, corrupt, or does not fit the model it is loaded into."""


@dataclass
class TrainConfig:
    """Hyper-parameters of ``train``.

    Attributes
    ----------
    epochs : int
    batch_size : int
    lr : float
        Initial learning rate.
    optimizer : {"adam", "sgd"}
    momentum : float
        SGD momentum (ignored by Adam).
    weight_decay : float
    schedule : {"poly", "constant"}
        "poly": DeepLab's ``lr * (1 - step / total) ** 0.9``.
    flip : bool
        Random horizontal flips of image and labels together.
    seed : int
        Fixes batch order and augmentation (the model's weights come from its own seed).
    time_budget : float or None
        Seconds: stop after the first epoch that ends past this budget.
    progress : bool
        Show a progress bar (``tqdm.auto``, when installed).
    """

    epochs: int = 10
    batch_size: int = 16
    lr: float = 1e-3
    optimizer: str = "adam"
    momentum: float = 0.9
    weight_decay: float = 0.0
    schedule: str = "poly"
    flip: bool = True
    seed: int = 0
    time_budget: float | None = None
    progress: bool = True

    def check(self) -> "TrainConfig":
        """Raise ``ValueError`` naming the first field out of range."""
        if not isinstance(self.epochs, int) or self.epochs < 1:
            raise ValueError(f"train: expected epochs to be an int >= 1, got {self.epochs!r}")
        if not isinstance(self.batch_size, int) or self.batch_size < 1:
            raise ValueError(f"train: expected batch_size to be an int >= 1, got {self.batch_size!r}")
        if not (isinstance(self.lr, (int, float)) and math.isfinite(self.lr) and self.lr > 0):
            raise ValueError(f"train: expected lr > 0, got {self.lr!r}")
        if self.optimizer not in ("adam", "sgd"):
            raise ValueError(f"train: expected optimizer 'adam' or 'sgd', got {self.optimizer!r}")
        if self.schedule not in ("poly", "constant"):
            raise ValueError(f"train: expected schedule 'poly' or 'constant', got {self.schedule!r}")
        if self.time_budget is not None and not self.time_budget > 0:
            raise ValueError(f"train: expected time_budget > 0 seconds or None, got {self.time_budget!r}")
        return self


@dataclass
class History:
    """What ``train`` did: per-epoch losses and validation scores, and the best epoch."""

    epochs: list = field(default_factory=list)   # dicts: epoch, loss, val_miou, seconds
    best_epoch: int | None = None
    best_miou: float = float("nan")
    seconds: float = 0.0
    stopped_early: bool = False


# --------------------------------------------------------------------------- training

def _make_optimizer(model, cfg: TrainConfig):
    if cfg.optimizer == "adam":
        return Adam(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    return SGD(model.parameters(), lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)


def train_step(model, optimizer, images, labels, ignore_index: int = 255, weight=None) -> float:
    """One step: forward, per-pixel cross-entropy, hand-written backward, optimiser update; returns the loss.

    ``images`` (B, C, H, W) and ``labels`` (B, H, W) must be on the model's
    device (``train`` moves each batch); the loss comes back as one Python float.

    Every gradient is cleared first, so a parameter this step's backward does
    not reach (a frozen or skipped branch) has ``grad = None`` and the
    optimiser leaves it alone (PyTorch's rule: no update, no momentum or Adam
    step, no weight decay), instead of applying its previous gradient again.
    """
    optimizer.zero_grad()                                                 # no stale gradient survives
    logits = model.forward(images)                                        # (B, K, H, W)
    loss, cache = cross_entropy(logits, labels, weight=weight, ignore_index=ignore_index)
    model.backward(cross_entropy_backward(1.0, cache))
    optimizer.step()
    return float(loss)


def train(model: SegmentationModel, train_set: Dataset, val_set: Dataset | None = None,
          config: TrainConfig | None = None, out_dir=None, log=print) -> History:
    """Train ``model`` on ``train_set``; evaluate on ``val_set`` after every epoch; keep the best checkpoint.

    Parameters
    ----------
    model : SegmentationModel
        Trained in place, on its device (``model.device``: move it with ``model.to("gpu")`` first).
    train_set, val_set : minseg.data.Dataset
        Images (N, C, H, W) float32, labels (N, H, W) int64 with ``ignore_index``.
    config : TrainConfig
    out_dir : path, optional
        Where ``best.npz`` (the best validation mIoU so far) and ``last.npz`` go.
    log : callable
        Receives one line per epoch.

    Returns
    -------
    History

    Raises
    ------
    TrainingDiverged
        When the loss becomes NaN or infinite (the message names epoch and step).
    """
    cfg = (config or TrainConfig()).check()
    if not isinstance(train_set, Dataset):
        raise TypeError(f"train: expected train_set to be a minseg.data.Dataset, got {type(train_set).__name__}")
    if train_set.images.shape[1] != model.config.get("in_channels", train_set.images.shape[1]):
        raise ValueError(f"train: expected images with {model.config['in_channels']} channels for this model, "
                         f"got shape {train_set.images.shape}")
    out_dir = Path(out_dir) if out_dir is not None else None
    if out_dir is not None:
        out_dir.mkdir(parents=True, exist_ok=True)
    optimizer = _make_optimizer(model, cfg)                              # its state lives on the model's device
    device = model.device
    steps_per_epoch = math.ceil(len(train_set.images) / cfg.batch_size)
    schedule = PolyLR(optimizer, max_steps=cfg.epochs * steps_per_epoch) if cfg.schedule == "poly" else None
    transform = Compose([RandomFlip()]) if cfg.flip else None
    meta = {"class_names": list(train_set.class_names), "palette": np.asarray(train_set.palette).tolist(),
            "things": list(train_set.things), "ignore_index": int(train_set.ignore_index),
            "dataset": train_set.name}
    hist = History()
    start = time.perf_counter()
    step = 0
    for epoch in range(1, cfg.epochs + 1):
        t0 = time.perf_counter()
        model.train()
        losses = []
        batch_iter = batches(train_set, cfg.batch_size, shuffle=True, seed=(cfg.seed, epoch), transform=transform)
        for batch in progress(batch_iter, len(batch_iter), f"epoch {epoch}/{cfg.epochs}", cfg.progress):
            step += 1
            images, labels = to_device(batch.images, device), to_device(batch.labels, device)
            loss = train_step(model, optimizer, images, labels, train_set.ignore_index)
            if not math.isfinite(loss):
                raise TrainingDiverged(f"train: loss became {loss} at epoch {epoch}, step {step} "
                                       f"(lr {optimizer.lr:.3g}); lower the learning rate")
            losses.append(loss)
            if schedule is not None:
                schedule.step()
        row = {"epoch": epoch, "loss": float(np.mean(losses))}
        if val_set is not None:
            row["val_miou"] = evaluate(model, val_set, batch_size=max(cfg.batch_size, 32), panoptic=False)["miou"]
            if hist.best_epoch is None or row["val_miou"] > hist.best_miou:
                hist.best_epoch, hist.best_miou = epoch, row["val_miou"]
                if out_dir is not None:
                    save_checkpoint(out_dir / "best.npz", model, {**meta, "epoch": epoch, "val_miou": row["val_miou"]})
        row["seconds"] = time.perf_counter() - t0
        hist.epochs.append(row)
        log(f"epoch {epoch:>3}/{cfg.epochs}  loss {row['loss']:.4f}"
            + (f"  val mIoU {row['val_miou']:.4f}" if "val_miou" in row else "")
            + f"  {row['seconds']:.1f}s")
        if cfg.time_budget is not None and time.perf_counter() - start > cfg.time_budget and epoch < cfg.epochs:
            hist.stopped_early = True
            log(f"time budget of {cfg.time_budget:.0f}s reached after epoch {epoch}")
            break
    hist.seconds = time.perf_counter() - start
    if out_dir is not None:
        save_checkpoint(out_dir / "last.npz", model, {**meta, "epoch": hist.epochs[-1]["epoch"]})
        if val_set is None:
            save_checkpoint(out_dir / "best.npz", model, {**meta, "epoch": hist.epochs[-1]["epoch"]})
    return hist


# --------------------------------------------------------------------------- evaluation

def _device_predictions(model: SegmentationModel, images, batch_size: int):
    """``(start, class ids (B, H, W) on the model's device)`` for each batch of images (N, C, H, W).

    Refuses non-finite pixels first, naming the first by its index in ``images``.
    """
    check_finite("predict", images, "images")
    device = model.device
    for i in range(0, len(images), batch_size):
        yield i, model.predict(to_device(images[i:i + batch_size], device))


def _host_class_ids(batches: list, images):
    """The host batches of class ids joined into (N, H, W); an empty (0, H, W) array for no images."""
    return np.concatenate(batches, axis=0) if batches else np.zeros((0, *images.shape[2:]), dtype=np.int64)


def predict(model: SegmentationModel, images, batch_size: int = 32):
    """Class ids (N, H, W) on the host for images (N, C, H, W), in evaluation mode, batch by batch.

    Each batch goes to the model's device and its class ids come back.

    Raises
    ------
    ValueError
        When an image holds a NaN or inf pixel (the message names the first, by
        its index in ``images``): its class would otherwise be a silent guess.
    """
    return _host_class_ids([to_numpy(pred) for _, pred in _device_predictions(model, images, batch_size)], images)


def evaluate(model: SegmentationModel, dataset: Dataset, batch_size: int = 32, panoptic: bool = True) -> dict:
    """Score ``model`` on ``dataset``: dataset-level confusion matrix metrics, and PQ / SQ / RQ.

    Panoptic predictions come from the semantic prediction with one instance
    per connected region of a thing class (``instances_from_semantic``),
    against the dataset's instance ids.

    Batches run on the model's device and the confusion matrix is accumulated
    there; only the ``(K, K)`` matrix comes to the host (and, for the
    panoptic scores, which are computed on the host, the class ids).

    Returns
    -------
    dict
        ``pixel_accuracy, mean_class_accuracy, iou (per class), miou, fwiou, class_names``
        and, with ``panoptic`` and instance ids available, ``pq, sq, rq`` (All, Things, Stuff).
    """
    sem = SegmentationMetrics(len(dataset.class_names), ignore_index=dataset.ignore_index,
                              class_names=list(dataset.class_names))
    with_panoptic = panoptic and dataset.instances is not None
    device, host_preds = model.device, []
    for i, pred in _device_predictions(model, dataset.images, batch_size):           # (B, H, W) on the device
        sem.update(pred, to_device(dataset.labels[i:i + len(pred)], device))         # the sum stays there too
        if with_panoptic:
            host_preds.append(to_numpy(pred))
    result = dict(sem.compute())                                                     # one (K, K) matrix to the host
    result["class_names"] = list(dataset.class_names)
    if with_panoptic:
        result["panoptic"] = panoptic_scores(_host_class_ids(host_preds, dataset.images), dataset)  # (N, H, W)
    return result


def panoptic_scores(pred, dataset: Dataset) -> dict:
    """PQ, SQ, RQ (All / Things / Stuff) of semantic predictions turned into instances by connected components."""
    thing_ids = [i for i, t in enumerate(dataset.things) if t]
    pq = PanopticQuality({i: bool(t) for i, t in enumerate(dataset.things)})
    for p, y, inst in zip(pred, dataset.labels, dataset.instances):
        pred_pan = encode_panoptic(p, instances_from_semantic(p, thing_ids), thing_ids, ignore_index=None)
        gt_pan = encode_panoptic(y, inst, thing_ids, ignore_index=dataset.ignore_index)
        pq.update_encoded(pred_pan, gt_pan)
    res = pq.compute()
    return {group: {k: res[group][k] for k in ("pq", "sq", "rq", "n")} for group in ("All", "Things", "Stuff")}


# --------------------------------------------------------------------------- checkpoints

def save_checkpoint(path, model: SegmentationModel, meta: dict | None = None) -> Path:
    """Write ``model`` (registry name, config, weights) and ``meta`` to ``path`` atomically.

    The weights are written from host (NumPy) copies, whatever the model's
    device, so the file loads anywhere. The file is written next to ``path``
    under a temporary name and moved into place with ``os.replace``: a crash
    mid-write leaves any previous checkpoint intact.
    """
    path = Path(path)
    header = {"format": CHECKPOINT_FORMAT, "model": model.name, "config": model.config, "meta": meta or {}}
    arrays = {f"state/{k}": to_numpy(v) for k, v in model.state_dict().items()}
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez(f, __header__=np.array(json.dumps(header)), **arrays)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def _read_checkpoint(path):
    """Return (header dict, state dict of numpy arrays), or raise CheckpointError naming the file."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"load_checkpoint: expected a checkpoint file, got no file at {path}")
    if not zipfile.is_zipfile(path):     # before np.load, whose message for a text file is advice about pickles
        raise CheckpointError(f"load_checkpoint: {path} is not a readable minseg checkpoint "
                              "(expected a .npz file written by minseg train)")
    try:
        with np.load(path, allow_pickle=False) as z:
            header = json.loads(str(z["__header__"]))
            state = {k[len("state/"):]: z[k] for k in z.files if k.startswith("state/")}
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile, json.JSONDecodeError) as err:
        raise CheckpointError(f"load_checkpoint: {path} is not a readable minseg checkpoint "
                              f"({type(err).__name__}: {err})") from None
    if not isinstance(header, dict) or header.get("format") != CHECKPOINT_FORMAT or "model" not in header:
        raise CheckpointError(f"load_checkpoint: expected a minseg checkpoint of format {CHECKPOINT_FORMAT} in "
                              f"{path}, got header {header!r:.200}")
    return header, state


def load_checkpoint(path, dtype=np.float32, device: str = "cpu"):
    """Rebuild the model stored in ``path`` on ``device`` (``"cpu"`` or ``"gpu"``); return ``(model, meta)``.

    The model is rebuilt and filled on the host, then moved, so a checkpoint
    written on either device loads onto either.

    Raises
    ------
    CheckpointError
        Missing, corrupt, or inconsistent file (named in the message).
    """
    header, state = _read_checkpoint(path)
    try:
        model = build_model(header["model"], dtype=dtype, **header["config"])
    except (TypeError, ValueError) as err:
        raise CheckpointError(f"load_checkpoint: cannot rebuild model {header['model']!r} from {path}: {err}") from None
    _load_state(model, state, path)
    return model.to(device), header.get("meta", {})


def restore_checkpoint(model: SegmentationModel, path) -> dict:
    """Load the weights in ``path`` into an existing ``model``; return the checkpoint's meta.

    The checkpoint must hold the same architecture (registry name and config).
    On any error the model is left exactly as it was.
    """
    header, state = _read_checkpoint(path)
    if header["model"] != model.name or header["config"] != json.loads(json.dumps(model.config)):
        raise CheckpointError(f"restore_checkpoint: expected a checkpoint of {model.name} {model.config} in {path}, "
                              f"got {header['model']} {header['config']}")
    _load_state(model, state, path)
    return header.get("meta", {})


def _load_state(model, state, path) -> None:
    try:
        model.load_state_dict(state, strict=True)
    except (ValueError, KeyError, TypeError) as err:
        raise CheckpointError(f"load_checkpoint: {path} does not fit {model.name}: {err}") from None


def history_dict(hist: History) -> dict:
    """``History`` as plain JSON-able data."""
    return asdict(hist)

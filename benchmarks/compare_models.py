"""Train several minseg models on the same data with the same time budget and compare their scores.

    python benchmarks/compare_models.py [--budget 150] [--models pixel fcn32s fcn8s unet] [--dataset shapes]

Each model gets as many epochs as fit in the time budget on this machine
(estimated from a few timed steps, so the poly schedule decays to zero within
the budget), trains with Adam, and its best-on-val checkpoint is scored on
the test split. The table shows what the lessons
claim: context beats per-pixel classification, FCN-8s's skips beat FCN-32s's
coarse upsampling, and U-Net is at least as good as FCN-8s.
"""
from __future__ import annotations

import argparse
import math
import tempfile
import time
from pathlib import Path

from minseg import data
from minseg.models import build_model
from minseg.optim import Adam
from minseg.train import TrainConfig, evaluate, load_checkpoint, train, train_step

# per model: constructor arguments and learning rate, sized for 64x64 images on a 2-core CPU
MODELS = {
    "pixel": ({"hidden": [32]}, 1e-2),
    "fcn32s": ({"widths": [16, 32, 64, 64, 64], "convs": [1, 1, 2, 2, 2], "fc_channels": 64}, 3e-3),
    "fcn16s": ({"widths": [16, 32, 64, 64, 64], "convs": [1, 1, 2, 2, 2], "fc_channels": 64}, 3e-3),
    "fcn8s": ({"widths": [16, 32, 64, 64, 64], "convs": [1, 1, 2, 2, 2], "fc_channels": 64}, 3e-3),
    "segnet": ({"widths": [16, 32, 64], "convs": 2}, 3e-3),
    "deeplab": ({"widths": [16, 32, 64, 64], "convs": [1, 1, 2, 2], "aspp_channels": 32}, 3e-3),
    "unet": ({"base_width": 8, "depth": 3}, 3e-3),
}


def epochs_in_budget(name: str, train_set, budget: float, batch_size: int, max_epochs: int) -> int:
    """How many epochs of ``name`` fit in ``budget`` seconds, from three timed training steps."""
    config, lr = MODELS[name]
    model = build_model(name, num_classes=len(train_set.class_names), in_channels=train_set.images.shape[1],
                        **config)
    opt = Adam(model.parameters(), lr=lr)
    x, y = train_set.images[:batch_size], train_set.labels[:batch_size]
    train_step(model, opt, x, y)  # warm-up
    t0 = time.perf_counter()
    for _ in range(3):
        train_step(model, opt, x, y)
    step = (time.perf_counter() - t0) / 3
    epoch = step * math.ceil(len(train_set.images) / batch_size) * 1.15  # + validation
    return max(1, min(max_epochs, int(budget / epoch)))


def run(name: str, splits: dict, budget: float, max_epochs: int, seed: int) -> dict:
    config, lr = MODELS[name]
    train_set = splits["train"]
    epochs = epochs_in_budget(name, train_set, budget, 16, max_epochs)
    model = build_model(name, num_classes=len(train_set.class_names), in_channels=train_set.images.shape[1],
                        rng=seed, **config)
    cfg = TrainConfig(epochs=epochs, batch_size=16, lr=lr, seed=seed, time_budget=budget, progress=False)
    with tempfile.TemporaryDirectory() as tmp:
        hist = train(model, train_set, splits["val"], cfg, out_dir=tmp, log=lambda s: print(f"  {name}: {s}"))
        best, _ = load_checkpoint(Path(tmp) / "best.npz")
    test = evaluate(best, splits["test"])
    return {"model": name, "params": model.num_parameters(), "epochs": len(hist.epochs), "seconds": hist.seconds,
            "val_miou": hist.best_miou, "test_miou": test["miou"], "test_pq": test["panoptic"]["All"]["pq"]}


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--budget", type=float, default=150.0, help="training seconds per model")
    parser.add_argument("--max-epochs", type=int, default=40, help="upper bound on epochs")
    parser.add_argument("--models", nargs="+", default=["pixel", "fcn32s", "fcn8s", "unet"], choices=sorted(MODELS))
    parser.add_argument("--dataset", default="shapes")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    splits = data.load_splits(args.dataset)
    rows = []
    t0 = time.perf_counter()
    for name in args.models:
        rows.append(run(name, splits, args.budget, args.max_epochs, args.seed))
    print(f"\n{args.dataset}: same data, {args.budget:.0f}s training budget each (total {time.perf_counter() - t0:.0f}s)")
    print(f"{'model':<8}{'params':>9}{'epochs':>8}{'train s':>9}{'val mIoU':>10}{'test mIoU':>11}{'test PQ':>9}")
    for r in rows:
        print(f"{r['model']:<8}{r['params']:>9,}{r['epochs']:>8}{r['seconds']:>9.0f}{r['val_miou']:>10.4f}"
              f"{r['test_miou']:>11.4f}{r['test_pq']:>9.4f}")


if __name__ == "__main__":
    main()

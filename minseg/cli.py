"""The ``minseg`` command.

    minseg demo                       train a small U-Net on the built-in shapes data, print scores, save a picture
    minseg train --model M --dataset D [--epochs E --batch-size B --lr LR --out DIR ...]
    minseg eval --checkpoint FILE [--dataset D --split S]
    minseg predict --checkpoint FILE --image IN.png --out MASK.png
    minseg datasets                   list the built-in and prepared datasets
    minseg gradcheck [--verbose]      check every op's backward against central differences

Bad arguments print a one-line error and exit with status 2; a failed check or
a diverged training run exits with status 1.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

__all__ = ["main", "build_parser"]

DEMO = dict(model="unet", dataset="shapes", epochs=8, batch_size=16, lr=3e-3,
            model_args={"base_width": 8, "depth": 3})


class UsageError(Exception):
    """A bad argument found after parsing (unknown model, bad --model-arg ...)."""


class _Parser(argparse.ArgumentParser):
    """An ArgumentParser whose errors are one line, with no usage dump."""

    def error(self, message):  # noqa: D401  (argparse's hook)
        self.exit(2, f"minseg: error: {message}\n")


# --------------------------------------------------------------------------- helpers

def _model_args(pairs) -> dict:
    """Parse ``--model-arg key=value`` pairs; values are JSON when they parse (numbers, lists), else strings."""
    out = {}
    for pair in pairs or []:
        if "=" not in pair:
            raise UsageError(f"expected --model-arg as key=value, got {pair!r}")
        key, value = pair.split("=", 1)
        try:
            out[key] = json.loads(value)
        except json.JSONDecodeError:
            out[key] = value
    return out


def _positive_int(text):
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an int >= 1, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected an int >= 1, got {text!r}")
    return value


def _positive_float(text):
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number > 0, got {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"expected a number > 0, got {text!r}")
    return value


def _scores_text(result: dict) -> str:
    """Summary lines: mIoU, pixel accuracy, per-class IoU, PQ / SQ / RQ."""
    lines = [f"mIoU {result['miou']:.4f}   pixel accuracy {result['pixel_accuracy']:.4f}   "
             f"mean class accuracy {result['mean_class_accuracy']:.4f}   fwIoU {result['fwiou']:.4f}"]
    names = result.get("class_names") or [str(i) for i in range(len(result["iou"]))]
    lines.append("per-class IoU: " + ", ".join(f"{n} {v:.3f}" for n, v in zip(names, result["iou"])))
    pan = result.get("panoptic")
    if pan:
        lines.append("panoptic (connected components as instances): " + "   ".join(
            f"{g} PQ {pan[g]['pq']:.3f} SQ {pan[g]['sq']:.3f} RQ {pan[g]['rq']:.3f}" for g in ("All", "Things", "Stuff")))
    return "\n".join(lines)


def _save_predictions_png(path, model, dataset, n: int = 8):
    """A grid of images, ground truth and predictions for the first ``n`` samples."""
    from . import viz  # noqa: PLC0415  (matplotlib is imported on use)
    from .train import predict  # noqa: PLC0415

    n = min(n, len(dataset.images))
    images = dataset.images[:n]
    pred = predict(model, images)
    viz.show_grid(images, dataset.labels[:n], pred, class_names=dataset.class_names, palette=dataset.palette,
                  titles=["image", "ground truth", "prediction"], path=path)
    return path


def _run_training(model_name, dataset_name, epochs, batch_size, lr, optimizer, seed, out, model_args,
                  time_budget=None, progress=True, split_eval="val"):
    from . import data  # noqa: PLC0415
    from .models import build_model, list_models  # noqa: PLC0415
    from .train import TrainConfig, evaluate, history_dict, load_checkpoint, train  # noqa: PLC0415

    if model_name not in list_models():
        raise UsageError(f"expected --model in {list_models()}, got {model_name!r}")
    splits = data.load_splits(dataset_name)
    train_set = splits["train"]
    val_set = splits.get("val")
    test_set = splits.get(split_eval) or val_set or train_set
    in_channels = train_set.images.shape[1]
    try:
        model = build_model(model_name, num_classes=len(train_set.class_names), in_channels=in_channels,
                            rng=seed, **model_args)
    except TypeError as err:
        raise UsageError(f"bad --model-arg for {model_name}: {err}") from None
    out = Path(out)
    print(f"training {model_name} ({model.num_parameters():,} parameters) on {dataset_name} "
          f"({len(train_set.images)} train / {len(val_set.images) if val_set else 0} val images of "
          f"{tuple(train_set.images.shape[1:])}), {epochs} epochs, batch {batch_size}, {optimizer} lr {lr}")
    cfg = TrainConfig(epochs=epochs, batch_size=batch_size, lr=lr, optimizer=optimizer, seed=seed,
                      time_budget=time_budget, progress=progress)
    hist = train(model, train_set, val_set, cfg, out_dir=out)
    best, _ = load_checkpoint(out / "best.npz")
    result = evaluate(best, test_set)
    result.update({"model": model_name, "model_config": model.config, "dataset": dataset_name,
                   "split": test_set.split if hasattr(test_set, "split") else split_eval,
                   "best_epoch": hist.best_epoch, "train_seconds": hist.seconds, "history": history_dict(hist)})
    (out / "metrics.json").write_text(json.dumps(result, indent=2, default=float))
    print(f"\nbest epoch {hist.best_epoch}, trained in {hist.seconds:.0f}s; scores on the {result['split']} split:")
    print(_scores_text(result))
    written = [out / "best.npz", out / "metrics.json"]
    try:
        written.append(_save_predictions_png(out / "predictions.png", best, test_set))
    except ImportError as err:  # matplotlib is an optional extra: the scores stand without the picture
        print(f"no predictions.png: {err}")
    print("\nwrote " + ", ".join(str(p) for p in written))
    return result


# --------------------------------------------------------------------------- sub-commands

def _cmd_gradcheck(args) -> int:
    from .gradcheck import run_suite  # noqa: PLC0415

    return 0 if run_suite(seed=args.seed, verbose=args.verbose) else 1


def _cmd_train(args) -> int:
    _run_training(args.model, args.dataset, args.epochs, args.batch_size, args.lr, args.optimizer, args.seed,
                  args.out, _model_args(args.model_arg), time_budget=args.time_budget, progress=not args.no_progress,
                  split_eval=args.eval_split)
    return 0


def _cmd_demo(args) -> int:
    t0 = time.perf_counter()
    _run_training(DEMO["model"], DEMO["dataset"], args.epochs, DEMO["batch_size"], DEMO["lr"], "adam",
                  args.seed, args.out, DEMO["model_args"], time_budget=args.time_budget,
                  progress=not args.no_progress, split_eval="test")
    print(f"demo finished in {time.perf_counter() - t0:.0f}s")
    return 0


def _cmd_eval(args) -> int:
    from . import data  # noqa: PLC0415
    from .train import evaluate, load_checkpoint  # noqa: PLC0415

    model, meta = load_checkpoint(args.checkpoint)
    dataset = data.load_dataset(args.dataset or meta.get("dataset"), args.split)
    result = evaluate(model, dataset)
    print(f"{model.name} from {args.checkpoint} on {dataset.name} ({args.split}, {len(dataset.images)} images)")
    print(_scores_text(result))
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2, default=float))
    return 0


def _cmd_predict(args) -> int:
    import numpy as np  # noqa: PLC0415

    from .data.convert import read_image  # noqa: PLC0415
    from .train import load_checkpoint  # noqa: PLC0415
    from .viz import colorize  # noqa: PLC0415

    model, meta = load_checkpoint(args.checkpoint)
    image = read_image(args.image, op="minseg predict").astype(np.float32) / 255.0   # (3, H, W) in [0, 1]
    if model.config.get("in_channels", 3) == 1:
        image = image.mean(axis=0, keepdims=True)                        # (1, H, W) grey
    x = np.ascontiguousarray(image[None])                                # (1, C, H, W)
    labels = model.predict(x)[0]                                         # (H, W)
    palette = np.asarray(meta.get("palette"), dtype=np.uint8) if meta.get("palette") else None
    rgb = colorize(labels, palette)
    from PIL import Image  # noqa: PLC0415

    Image.fromarray(rgb).save(args.out)
    names = meta.get("class_names") or []
    counts = np.bincount(labels.ravel(), minlength=len(names) or 1)
    print(f"wrote {args.out}: " + ", ".join(f"{names[i] if i < len(names) else i} {c}px"
                                            for i, c in enumerate(counts) if c))
    return 0


def _cmd_datasets(args) -> int:
    from . import data  # noqa: PLC0415

    for name in data.list_datasets():
        print(name)
    return 0


# --------------------------------------------------------------------------- parser

def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``minseg`` command, one sub-parser per sub-command."""
    parser = _Parser(prog="minseg", description="Semantic segmentation from scratch in NumPy.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

    p = sub.add_parser("demo", help="train a small U-Net on the built-in shapes data (a few minutes on a CPU)")
    p.add_argument("--out", default="runs/demo", help="output directory (default runs/demo)")
    p.add_argument("--epochs", type=_positive_int, default=DEMO["epochs"])
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--time-budget", type=_positive_float, default=170.0,
                   help="stop after the epoch that passes this many seconds (default 170)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=_cmd_demo)

    p = sub.add_parser("train", help="train a model on a dataset")
    p.add_argument("--model", required=True, help="a registered model: pixel, fcn32s, fcn16s, fcn8s, segnet, deeplab, unet")
    p.add_argument("--dataset", required=True, help="a built-in dataset name or a prepared dataset directory")
    p.add_argument("--epochs", type=_positive_int, default=10)
    p.add_argument("--batch-size", type=_positive_int, default=16)
    p.add_argument("--lr", type=_positive_float, default=1e-3)
    p.add_argument("--optimizer", choices=["adam", "sgd"], default="adam")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default="runs/train", help="output directory (default runs/train)")
    p.add_argument("--model-arg", action="append", metavar="KEY=VALUE",
                   help="a model constructor argument, e.g. --model-arg base_width=16 (repeatable)")
    p.add_argument("--time-budget", type=_positive_float, default=None, help="stop after this many seconds")
    p.add_argument("--eval-split", default="test", help="split scored at the end (default test)")
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=_cmd_train)

    p = sub.add_parser("eval", help="score a checkpoint on a dataset split")
    p.add_argument("--checkpoint", required=True)
    p.add_argument("--dataset", default=None, help="default: the dataset the checkpoint was trained on")
    p.add_argument("--split", default="test")
    p.add_argument("--json", default=None, help="also write the scores to this JSON file")
    p.set_defaults(func=_cmd_eval)

    p = sub.add_parser("predict", help="segment an image file; write a coloured mask PNG")
    p.add_argument("--checkpoint", required=True)
    p.add_argument("--image", required=True)
    p.add_argument("--out", required=True)
    p.set_defaults(func=_cmd_predict)

    p = sub.add_parser("datasets", help="list the datasets minseg can load by name")
    p.set_defaults(func=_cmd_datasets)

    p = sub.add_parser("gradcheck", help="check every op's backward against numerical gradients")
    p.add_argument("--seed", type=int, default=0, help="seed of the random inputs (default 0)")
    p.add_argument("--verbose", "-v", action="store_true", help="print each op's full report")
    p.set_defaults(func=_cmd_gradcheck)
    return parser


def main(argv=None) -> int:
    """Entry point of the ``minseg`` console script; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    from .train import CheckpointError, TrainingDiverged  # noqa: PLC0415

    try:
        return args.func(args)
    except TrainingDiverged as err:
        print(f"minseg {args.command}: {err}", file=sys.stderr)
        return 1
    except (UsageError, CheckpointError, FileNotFoundError, ValueError, TypeError, ImportError) as err:
        print(f"minseg {args.command}: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())

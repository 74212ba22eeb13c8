"""The ``minseg`` command.

    minseg demo                       train a small U-Net on the built-in shapes data, print scores, save a picture
    minseg train --model M --dataset D [--epochs E --batch-size B --lr LR --out DIR ...]
    minseg eval --checkpoint FILE [--dataset D --split S]
    minseg predict --checkpoint FILE --image IN.png --out MASK.png [--overlay PICTURE.png]
    minseg datasets                   a table of the built-in and prepared datasets (classes, size, splits, cache)
    minseg gradcheck [--verbose]      check every op's backward against central differences
    minseg check FILE.npz [...]       check a framework's saved op against minseg (or --torch: every op vs PyTorch)
    minseg pq --gt-json F --gt-folder D --pred-json F --pred-folder D [--per-class]   COCO panoptic PQ / SQ / RQ
    minseg miou --gt-folder D --pred-folder D --num-classes K [--ignore-index 255]    label PNGs: IoU, mIoU, fwIoU

``demo``, ``train``, ``eval`` and ``predict`` take ``--device cpu|gpu`` (default cpu): ``gpu``
runs the same code on CuPy, and stops with a one-line error where no GPU is usable.

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


DEMO_EXPLAINED = """\
what the scores mean:
  mIoU: per class, intersection over union of predicted and true pixels, averaged over the classes (1 = perfect).
  PQ (panoptic quality) = SQ x RQ, over segments: a predicted and a true segment match when their IoU > 0.5.
  SQ (segmentation quality): the mean IoU of the matched segments, i.e. how well matched shapes fit.
  RQ (recognition quality): TP / (TP + FP/2 + FN/2), an F1 score of finding each segment at all.
  Things / Stuff: PQ over countable classes (the shapes, one segment per object) / amorphous ones (background).
  instances: each connected region of a predicted shape class is one predicted object (no instance head).
files in {out}: best.npz (checkpoint), metrics.json (all scores), predictions.png (test images, truth, prediction),
  curves.png (training loss and validation mIoU per epoch)"""


SEGMENTATION_MODELS = {    # the registered models that output a class score per pixel at the input size
    "pixel": "1x1 convolutions only: each pixel classified on its own colour (the no-context baseline)",
    "fcn32s": "FCN on a small VGG: pool5 class scores upsampled 32x",
    "fcn16s": "FCN-32s fused with pool4's scores: upsampled 2x, then 16x",
    "fcn8s": "FCN-16s fused with pool3's scores: upsampled 2x, then 8x",
    "segnet": "encoder-decoder; the decoder unpools with the encoder's max-pooling switches",
    "deeplab": "dilated VGG backbone (output stride 8), ASPP with image pooling, bilinear upsampling",
    "unet": "symmetric encoder-decoder with concatenated skips (--model-arg base_width=8 depth=3)",
}


def _models_epilog() -> str:
    return "models (--model):\n" + "\n".join(f"  {n:<8} {d}" for n, d in SEGMENTATION_MODELS.items())


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


def _check_model_args(model_name: str, model_args: dict) -> None:
    """Refuse a ``--model-arg`` the model does not take, or whose value is not of its default's type."""
    import inspect  # noqa: PLC0415

    from .models import MODELS  # noqa: PLC0415

    fixed = ("self", "rng", "dtype", "num_classes", "in_channels")      # set by minseg train itself
    params = {k: v for k, v in inspect.signature(MODELS[model_name].__init__).parameters.items()
              if k not in fixed and v.kind in (v.POSITIONAL_OR_KEYWORD, v.KEYWORD_ONLY)}
    for key, value in model_args.items():
        if key not in params:
            raise UsageError(f"expected --model-arg KEY in {sorted(params)} for {model_name}, got {key!r}")
        default = params[key].default
        if isinstance(default, bool):
            ok = isinstance(value, bool)
        elif isinstance(default, int):
            ok = isinstance(value, int) and not isinstance(value, bool)
        elif isinstance(default, float):
            ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        else:
            ok = True
        if not ok:
            raise UsageError(f"expected --model-arg {key} to be {type(default).__name__} like its default "
                             f"{default!r}, got {value!r}")


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


def _check_device(device: str) -> str:
    """``device`` (``"cpu"`` or ``"gpu"``) when it is usable here; for ``"gpu"`` without a GPU, a one-line UsageError."""
    from . import backend  # noqa: PLC0415

    reason = backend.gpu_unavailable_reason() if device == "gpu" else None
    if reason is not None:
        raise UsageError(f"--device gpu: no usable GPU here: {reason}")
    return device


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


def _save_predictions_png(path, model, dataset, n: int = 8, title: str | None = None):
    """A grid of images, ground truth and predictions for the first ``n`` samples, with a title and legend."""
    from . import viz  # noqa: PLC0415  (matplotlib is imported on use)
    from .train import predict  # noqa: PLC0415

    n = min(n, len(dataset.images))
    images = dataset.images[:n]
    pred = predict(model, images)
    fig = viz.show_grid(images, dataset.labels[:n], pred, class_names=dataset.class_names, palette=dataset.palette,
                        titles=["image", "ground truth", "prediction"], path=path, title=title)
    import matplotlib.pyplot as plt  # noqa: PLC0415

    plt.close(fig)
    return path


def _save_curves_png(path, history: dict, title: str):
    """``curves.png``: training loss and validation mIoU per epoch."""
    from . import viz  # noqa: PLC0415

    fig = viz.plot_curves(history, path=path, title=title)
    import matplotlib.pyplot as plt  # noqa: PLC0415

    plt.close(fig)
    return path


def _run_training(model_name, dataset_name, epochs, batch_size, lr, optimizer, seed, out, model_args,
                  time_budget=None, progress=True, split_eval="val", device="cpu"):
    from . import data  # noqa: PLC0415
    from .models import build_model, list_models  # noqa: PLC0415
    from .train import TrainConfig, evaluate, history_dict, load_checkpoint, train  # noqa: PLC0415

    _check_device(device)
    if model_name not in SEGMENTATION_MODELS:
        kind = " (a registered model, but not a segmentation model)" if model_name in list_models() else ""
        raise UsageError(f"expected --model in {list(SEGMENTATION_MODELS)}, got {model_name!r}{kind}")
    splits = data.load_splits(dataset_name)
    train_set = splits["train"]
    val_set = splits.get("val")
    test_set = splits.get(split_eval) or val_set or train_set
    in_channels = train_set.images.shape[1]
    _check_model_args(model_name, model_args)
    try:
        model = build_model(model_name, num_classes=len(train_set.class_names), in_channels=in_channels,
                            rng=seed, **model_args)
    except TypeError as err:
        raise UsageError(f"bad --model-arg for {model_name}: {err}") from None
    out = Path(out)
    print(f"training {model_name} ({model.num_parameters():,} parameters) on {dataset_name} "
          f"({len(train_set.images)} train / {len(val_set.images) if val_set else 0} val images of "
          f"{tuple(train_set.images.shape[1:])}), {epochs} epochs, batch {batch_size}, {optimizer} lr {lr}"
          + (" on the GPU" if device == "gpu" else ""))
    model.to(device)                                   # initialised on the host from the seed, then moved
    cfg = TrainConfig(epochs=epochs, batch_size=batch_size, lr=lr, optimizer=optimizer, seed=seed,
                      time_budget=time_budget, progress=progress)
    hist = train(model, train_set, val_set, cfg, out_dir=out)
    best, _ = load_checkpoint(out / "best.npz", device=device)
    result = evaluate(best, test_set)
    result.update({"model": model_name, "model_config": model.config, "dataset": dataset_name,
                   "split": test_set.split if hasattr(test_set, "split") else split_eval,
                   "best_epoch": hist.best_epoch, "train_seconds": hist.seconds, "history": history_dict(hist)})
    (out / "metrics.json").write_text(json.dumps(result, indent=2, default=float))
    print(f"\nbest epoch {hist.best_epoch}, trained in {hist.seconds:.0f}s; scores on the {result['split']} split:")
    print(_scores_text(result))
    written = [out / "best.npz", out / "metrics.json"]
    n_epochs = hist.epochs[-1]["epoch"] if hist.epochs else 0
    title = (f"{model_name} on {dataset_name}: {n_epochs} epoch{'s' * (n_epochs != 1)} "
             f"(best {hist.best_epoch}), {result['split']} mIoU {result['miou']:.3f}")
    try:
        written.append(_save_predictions_png(out / "predictions.png", best, test_set, title=title))
        written.append(_save_curves_png(out / "curves.png", result["history"],
                                        f"{model_name} on {dataset_name}, batch {batch_size}, {optimizer} lr {lr}"))
    except ImportError as err:  # matplotlib is an optional extra: the scores stand without the pictures
        print(f"no predictions.png or curves.png: {err}")
    print("\nwrote " + ", ".join(str(p) for p in written))
    return result


# --------------------------------------------------------------------------- sub-commands

def _cmd_gradcheck(args) -> int:
    from .gradcheck import run_suite  # noqa: PLC0415

    return 0 if run_suite(seed=args.seed, verbose=args.verbose) else 1


def _cmd_train(args) -> int:
    _run_training(args.model, args.dataset, args.epochs, args.batch_size, args.lr, args.optimizer, args.seed,
                  args.out, _model_args(args.model_arg), time_budget=args.time_budget, progress=not args.no_progress,
                  split_eval=args.eval_split, device=args.device)
    return 0


def _cmd_demo(args) -> int:
    t0 = time.perf_counter()
    _run_training(DEMO["model"], DEMO["dataset"], args.epochs, DEMO["batch_size"], DEMO["lr"], "adam",
                  args.seed, args.out, DEMO["model_args"], time_budget=args.time_budget,
                  progress=not args.no_progress, split_eval="test", device=args.device)
    print("\n" + DEMO_EXPLAINED.format(out=args.out))
    print(f"demo finished in {time.perf_counter() - t0:.0f}s")
    return 0


def _cmd_eval(args) -> int:
    from . import data  # noqa: PLC0415
    from .train import evaluate, load_checkpoint  # noqa: PLC0415

    model, meta = load_checkpoint(args.checkpoint, device=_check_device(args.device))
    dataset = data.load_dataset(args.dataset or meta.get("dataset"), args.split)
    result = evaluate(model, dataset)
    print(f"{model.name} from {args.checkpoint} on {dataset.name} ({args.split}, {len(dataset.images)} images)")
    print(_scores_text(result))
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(result, indent=2, default=float))
    return 0


def _cmd_predict(args) -> int:
    import numpy as np  # noqa: PLC0415

    from .data.convert import read_image  # noqa: PLC0415
    from .train import load_checkpoint, predict  # noqa: PLC0415
    from .viz import colorize  # noqa: PLC0415

    model, meta = load_checkpoint(args.checkpoint, device=_check_device(args.device))
    image = read_image(args.image, op="--image").astype(np.float32) / 255.0   # (3, H, W) in [0, 1]
    if model.config.get("in_channels", 3) == 1:
        image = image.mean(axis=0, keepdims=True)                        # (1, H, W) grey
    x = np.ascontiguousarray(image[None])                                # (1, C, H, W)
    labels = predict(model, x)[0]                                        # (H, W) on the host
    palette = np.asarray(meta.get("palette"), dtype=np.uint8) if meta.get("palette") else None
    rgb = colorize(labels, palette)
    from PIL import Image  # noqa: PLC0415

    Path(args.out).parent.mkdir(parents=True, exist_ok=True)         # a new output folder is made, not an Errno 2
    Image.fromarray(rgb).save(args.out)
    names = meta.get("class_names") or []
    counts = np.bincount(labels.ravel(), minlength=len(names) or 1)
    print(f"wrote {args.out}: " + ", ".join(f"{names[i] if i < len(names) else i} {c}px"
                                            for i, c in enumerate(counts) if c))
    if args.overlay:
        from . import viz  # noqa: PLC0415

        Path(args.overlay).parent.mkdir(parents=True, exist_ok=True)
        fig = viz.show_grid(image[None], labels[None], class_names=names or None, palette=palette,
                            titles=["image", "prediction"], alpha=0.5, path=args.overlay,
                            title=f"{model.name} ({meta.get('dataset', '?')}, epoch {meta.get('epoch', '?')}) "
                                  f"on {Path(args.image).name}")
        import matplotlib.pyplot as plt  # noqa: PLC0415

        plt.close(fig)
        print(f"wrote {args.overlay}: the image, the prediction over it, and a legend of the classes")
    return 0


def _cmd_prepare(args) -> int:
    from .data import convert  # noqa: PLC0415

    fn = {"voc": convert.prepare_voc, "isbi": convert.prepare_isbi, "coco-panoptic": convert.prepare_coco_panoptic,
          "cityscapes": convert.prepare_cityscapes}[args.format]
    try:
        path = fn(args.root, args.out, size=args.size, overwrite=args.overwrite, show_progress=not args.no_progress)
    except FileExistsError as err:
        raise UsageError(str(err)) from None
    print(f"wrote {path}; train on it with: minseg train --model unet --dataset {path}")
    return 0


def _cmd_prepare_folder(args) -> int:
    from .data import convert  # noqa: PLC0415

    try:
        path = convert.prepare_folder(args.images, args.masks, args.out, classes=args.classes, size=args.size,
                                      val_fraction=args.val_fraction, seed=args.seed, overwrite=args.overwrite,
                                      show_progress=not args.no_progress)
    except FileExistsError as err:
        raise UsageError(str(err)) from None
    from .data import read_meta  # noqa: PLC0415

    meta = read_meta(path)
    print(f"wrote {path}: {len(meta['class_names'])} classes ({', '.join(meta['class_names'])}), "
          + ", ".join(f"{s} {n} images" for s, n in meta["splits"].items()))
    print(f"train on it with: minseg train --model unet --dataset {path}")
    return 0


def _short(text: str, width: int) -> str:
    return text if len(text) <= width else text[:width - 3] + "..."


def _datasets_table(rows, home) -> str:
    """The ``minseg datasets`` table: name, classes, image size, split sizes, built or not, where."""
    header = ("name", "classes", "image (CxHxW)", "splits", "built", "where")
    lines = []
    for r in rows:
        names = r["class_names"]
        classes = f"{len(names)}: " + _short(", ".join(names), 34) if names else "?"
        image = "x".join(str(d) for d in r["image_shape"]) if r["image_shape"] else "?"
        splits = ", ".join(f"{s} {n}" for s, n in r["splits"].items()) if r["splits"] else "?"
        if r["kind"] == "built-in":
            built = "yes" if r["built"] else "no, made on first use"
        else:
            built = "yes" if r["built"] else "unreadable"
        lines.append((r["name"], classes, image, splits, built, str(r["path"])))
    widths = [max(len(row[i]) for row in [header] + lines) for i in range(len(header) - 1)]

    def fmt(row):
        return "  ".join(cell.ljust(w) for cell, w in zip(row, widths)) + "  " + row[-1]

    out = [fmt(header), fmt(tuple("-" * w for w in widths) + ("-" * 5,))] + [fmt(row) for row in lines]
    out.append(f"\ncache: {home} (set MINSEG_DATA to move it). Built-ins are made there on first use; put a "
               "prepared dataset directory there to load it by name, or pass its path to --dataset.")
    out += [f"{r['name']}: {r['error']}" for r in rows if r.get("error")]
    return "\n".join(out)


def _cmd_check(args) -> int:
    from .check import run_command  # noqa: PLC0415

    return run_command(args.files, rtol=args.rtol, atol=args.atol, torch=args.torch)


def _cmd_pq(args) -> int:
    from .folder_metrics import pq_from_coco, pq_text  # noqa: PLC0415

    t0 = time.perf_counter()
    pq = pq_from_coco(args.gt_json, args.gt_folder, args.pred_json, args.pred_folder, progress=not args.no_progress)
    print(pq_text(pq, per_class=args.per_class))
    print(f"{int(pq.tp.sum())} TP, {int(pq.fp.sum())} FP, {int(pq.fn.sum())} FN; "
          f"scored in {time.perf_counter() - t0:.2f} s")
    return 0


def _cmd_miou(args) -> int:
    from .folder_metrics import miou_from_folders  # noqa: PLC0415

    t0 = time.perf_counter()
    metrics, n, extra = miou_from_folders(args.gt_folder, args.pred_folder, args.num_classes,
                                          ignore_index=None if args.ignore_index < 0 else args.ignore_index,
                                          progress=not args.no_progress)
    print(metrics.table())
    note = f"; {len(extra)} predictions without ground truth left out (e.g. {extra[0]!r})" if extra else ""
    print(f"{n} images, {int(metrics.cm.sum())} scored pixels{note}; scored in {time.perf_counter() - t0:.2f} s")
    return 0


def _cmd_datasets(args) -> int:
    from .data.registry import data_home, describe_datasets  # noqa: PLC0415

    print(_datasets_table(describe_datasets(seed=args.seed), data_home()))
    return 0


# --------------------------------------------------------------------------- parser

def _add_device_option(p) -> None:
    p.add_argument("--device", choices=["cpu", "gpu"], default="cpu",
                   help="cpu (NumPy) or gpu (CuPy; needs the gpu extra and a CUDA device) (default cpu)")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``minseg`` command, one sub-parser per sub-command."""
    from . import __version__  # noqa: PLC0415

    parser = _Parser(prog="minseg", description="Semantic segmentation from scratch in NumPy.")
    parser.add_argument("--version", action="version", version=f"minseg {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

    p = sub.add_parser("demo", help="train a small U-Net on the built-in shapes data (a few minutes on a CPU)")
    p.add_argument("--out", default="runs/demo", help="output directory (default runs/demo)")
    p.add_argument("--epochs", type=_positive_int, default=DEMO["epochs"],
                   help=f"training epochs, all of them always run (default {DEMO['epochs']})")
    p.add_argument("--seed", type=int, default=0, help="seed of the weights, batch order and flips (default 0)")
    p.add_argument("--time-budget", type=_positive_float, default=None,
                   help="optional: stop after the epoch that passes this many seconds (default: none, so the "
                        "same seed gives the same numbers on every run)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    _add_device_option(p)
    p.set_defaults(func=_cmd_demo)

    p = sub.add_parser("train", help="train a model on a dataset", epilog=_models_epilog(),
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", required=True, help="a segmentation model (listed below)")
    p.add_argument("--dataset", required=True, help="a built-in dataset name or a prepared dataset directory")
    p.add_argument("--epochs", type=_positive_int, default=10, help="training epochs (default 10)")
    p.add_argument("--batch-size", type=_positive_int, default=16, help="images per step (default 16)")
    p.add_argument("--lr", type=_positive_float, default=1e-3,
                   help="initial learning rate, decayed by the poly schedule (default 0.001)")
    p.add_argument("--optimizer", choices=["adam", "sgd"], default="adam", help="adam or sgd (default adam)")
    p.add_argument("--seed", type=int, default=0, help="seed of the weights, batch order and flips (default 0)")
    p.add_argument("--out", default="runs/train", help="output directory (default runs/train)")
    p.add_argument("--model-arg", action="append", metavar="KEY=VALUE",
                   help="a model constructor argument, e.g. --model-arg base_width=16 (repeatable)")
    p.add_argument("--time-budget", type=_positive_float, default=None,
                   help="stop after the epoch that passes this many seconds (default: none)")
    p.add_argument("--eval-split", default="test", help="split scored at the end (default test)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    _add_device_option(p)
    p.set_defaults(func=_cmd_train)

    p = sub.add_parser("eval", help="score a checkpoint on a dataset split")
    p.add_argument("--checkpoint", required=True, help="a best.npz or last.npz written by minseg train")
    p.add_argument("--dataset", default=None, help="default: the dataset the checkpoint was trained on")
    p.add_argument("--split", default="test", help="split to score (default test)")
    p.add_argument("--json", default=None, help="also write the scores to this JSON file")
    _add_device_option(p)
    p.set_defaults(func=_cmd_eval)

    p = sub.add_parser("predict", help="segment an image file; write a coloured mask PNG")
    p.add_argument("--checkpoint", required=True, help="a best.npz or last.npz written by minseg train")
    p.add_argument("--image", required=True, help="an image file (PNG, JPEG, ...)")
    p.add_argument("--out", required=True, help="the coloured mask PNG to write (its folder is made if needed)")
    p.add_argument("--overlay", default=None, metavar="PNG",
                   help="also write this PNG: the image and the prediction over it, with a legend (default: none)")
    _add_device_option(p)
    p.set_defaults(func=_cmd_predict)

    p = sub.add_parser("prepare", help="convert downloaded data (VOC, ISBI, COCO panoptic, Cityscapes) or your "
                                       "own folder of images and masks to minseg's format")
    formats = p.add_subparsers(dest="format", metavar="FORMAT", parser_class=_Parser, required=True)
    for fmt, what in (("voc", "the extracted VOC2012 (or VOCdevkit) directory"),
                      ("isbi", "the directory with train-volume.tif and train-labels.tif"),
                      ("coco-panoptic", "the COCO directory (<split>2017/, annotations/)"),
                      ("cityscapes", "the directory holding leftImg8bit/ and gtFine/")):
        q = formats.add_parser(fmt, help=f"convert {fmt}")
        q.add_argument("--root", required=True, help=what)
        q.add_argument("--out", required=True, help="the dataset directory to write (then: minseg train --dataset OUT)")
        q.add_argument("--size", type=_positive_int, default=None if fmt == "isbi" else 128,
                       help="square output size" + (" (default: native)" if fmt == "isbi" else " (default 128)"))
        q.add_argument("--overwrite", action="store_true", help="replace an existing --out")
        q.add_argument("--no-progress", action="store_true", help="no progress bar")
        q.set_defaults(func=_cmd_prepare)
    q = formats.add_parser("folder", help="convert your own folder of images and label PNGs",
                           description="Pair images/<name>.* with masks/<name>.png. A mask is an index PNG "
                                       "(class id per pixel, 255 = ignore) or a colour PNG whose colours the "
                                       "--classes file gives (lines 'name R G B'); any other value is refused.")
    q.add_argument("--images", required=True, help="the folder of images (PNG, JPEG, ...)")
    q.add_argument("--masks", required=True, help="the folder of label PNGs, one per image, of the same name")
    q.add_argument("--out", required=True, help="the dataset directory to write (then: minseg train --dataset OUT)")
    q.add_argument("--classes", default=None,
                   help="a text file, one class per line in label order: 'name' or 'name R G B' "
                        "(default: index masks, classes class_0..class_K-1)")
    q.add_argument("--size", type=_positive_int, default=128,
                   help="square output size: longer side scaled to it, the rest padded with ignore (default 128)")
    q.add_argument("--val-fraction", type=float, default=0.2,
                   help="share of the images held out as the val split (default 0.2)")
    q.add_argument("--seed", type=int, default=0, help="seed of the train / val shuffle (default 0)")
    q.add_argument("--overwrite", action="store_true", help="replace an existing --out")
    q.add_argument("--no-progress", action="store_true", help="no progress bar")
    q.set_defaults(func=_cmd_prepare_folder)

    p = sub.add_parser("datasets", help="a table of the datasets minseg can load by name: classes, image size, "
                                        "splits, whether built, where cached")
    p.add_argument("--seed", type=int, default=0, help="which draw of the built-in datasets to look for (default 0)")
    p.set_defaults(func=_cmd_datasets)

    p = sub.add_parser("gradcheck", help="check every op's backward against numerical gradients")
    p.add_argument("--seed", type=int, default=0, help="seed of the random inputs (default 0)")
    p.add_argument("--verbose", "-v", action="store_true", help="print each op's full report")
    p.set_defaults(func=_cmd_gradcheck)

    p = sub.add_parser("check", help="recompute a framework's saved op (.npz) with minseg and compare, or "
                                     "--torch: every op family against the installed PyTorch",
                       description="Exit status 0 when every file matches, 1 on a mismatch, 2 on a bad file. "
                                   "The .npz format is described in minseg.check's docstring and the README.")
    p.add_argument("files", nargs="*", metavar="FILE.npz", help="check files (keys op, params, input.*, output.*, "
                                                                "optional dy and grad.*)")
    p.add_argument("--rtol", type=float, default=None,
                   help="relative tolerance (default: by the framework array's dtype, as torch.testing)")
    p.add_argument("--atol", type=float, default=None,
                   help="absolute tolerance (default: by the framework array's dtype, as torch.testing)")
    p.add_argument("--torch", action="store_true",
                   help="run every op family through PyTorch and minseg (float64, forward and backward) and print "
                        "a table (default: off)")
    p.set_defaults(func=_cmd_check)

    p = sub.add_parser("pq", help="panoptic quality of COCO-format predictions (PNGs + JSON), as panopticapi's "
                                  "pq_compute", description="Exit status 0, or 2 with one line naming a bad file.")
    p.add_argument("--gt-json", required=True, help="the ground truth's COCO panoptic JSON (with the categories)")
    p.add_argument("--gt-folder", required=True, help="the folder of the ground truth's PNGs")
    p.add_argument("--pred-json", required=True, help="the predictions' COCO panoptic JSON")
    p.add_argument("--pred-folder", required=True, help="the folder of the predictions' PNGs")
    p.add_argument("--per-class", action="store_true", help="also one row per category (default: off)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=_cmd_pq)

    p = sub.add_parser("miou", help="per-class IoU, mIoU, fwIoU and pixel accuracy of label PNGs paired by name",
                       description="Exit status 0, or 2 with one line naming a bad file.")
    p.add_argument("--gt-folder", required=True, help="the folder of ground-truth label PNGs (class id per pixel)")
    p.add_argument("--pred-folder", required=True, help="the folder of predicted label PNGs, same file names")
    p.add_argument("--num-classes", required=True, type=_positive_int, help="the number of classes K")
    p.add_argument("--ignore-index", type=int, default=255,
                   help="ground-truth value left out of the scores (default 255; -1: none)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=_cmd_miou)
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

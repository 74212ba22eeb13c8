"""Find, make and load datasets by name: the built-in ones (made from a seed and cached) and prepared ones.

The cache lives in ``$MINSEG_DATA`` when that is set, else in
``~/.cache/minseg``. A built-in dataset ``name`` made from ``seed`` is the
directory ``<cache>/<name>-seed<seed>``; it is made on first use (a few
seconds), written atomically, and reused afterwards. A directory made by
an older generator (``meta["version"]`` differs) is made again.

Datasets prepared by ``data_scripts/`` (``voc2012``, ``isbi2012``,
``coco-panoptic``) are directories in the same format; put them in the
cache directory to load them by name, or pass their path.
"""
from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from .formats import META_FILE, Dataset, make_palette, read_meta, read_split, split_image_shape, write_dataset
from .photo import COINS_CLASSES, make_coins
from .synthetic import DIGITS_CLASSES, SHAPES_CLASSES, make_digits, make_shapes

__all__ = ["BUILTINS", "Builtin", "data_home", "list_datasets", "builtin_path", "prepare_builtin",
           "load_dataset", "load_splits", "describe_datasets"]


def data_home() -> Path:
    """The dataset cache: ``$MINSEG_DATA`` if set, else ``~/.cache/minseg`` (not created here)."""
    env = os.environ.get("MINSEG_DATA")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "minseg"


@dataclass(frozen=True)
class Builtin:
    """A built-in dataset: what it is and how to make it from a seed."""

    name: str
    description: str
    class_names: tuple
    things: tuple
    sizes: dict                          # split -> number of images
    make: Callable                       # (seed) -> {split: (images, labels, instances)}
    version: int = 2
    source: str = ""
    image_shape: tuple = (3, 64, 64)     # (C, H, W) of every image

    @property
    def palette(self) -> np.ndarray:
        """PASCAL VOC's colours for the classes, ``(K, 3)`` uint8."""
        return make_palette(len(self.class_names))


def _split_seed(seed: int, i: int) -> list:
    return [int(seed), i]


def _make_shapes(seed, sizes):
    return {split: make_shapes(n, seed=_split_seed(seed, i), size=64) for i, (split, n) in enumerate(sizes.items())}


def _make_digits(seed, sizes):
    return {split: make_digits(n, seed=_split_seed(seed, i), size=64, source=split, source_seed=seed)
            for i, (split, n) in enumerate(sizes.items())}


def _make_coins(seed, sizes):
    return make_coins()                  # a photograph: the seed changes nothing


_SPLITS_1400 = {"train": 1000, "val": 200, "test": 200}

BUILTINS = {
    "shapes": Builtin(
        name="shapes",
        description="64x64 RGB, 2-4 overlapping circles/squares/triangles/crosses on a darker textured "
                    "background; colour independent of class; 1-px void band on boundaries",
        class_names=SHAPES_CLASSES,
        things=(False, True, True, True, True),
        sizes=_SPLITS_1400,
        make=lambda seed: _make_shapes(seed, _SPLITS_1400),
        source="minseg.data.synthetic.make_shapes",
    ),
    "digits": Builtin(
        name="digits",
        description="64x64 grey canvases with 2-3 scikit-learn 8x8 digits scaled 2.5-3.5x; "
                    "11 classes (background, 0..9), each digit an instance",
        class_names=DIGITS_CLASSES,
        things=(False,) + (True,) * 10,
        sizes=_SPLITS_1400,
        make=lambda seed: _make_digits(seed, _SPLITS_1400),
        source="minseg.data.synthetic.make_digits (sklearn.datasets.load_digits, bundled)",
        image_shape=(1, 64, 64),
    ),
    "coins": Builtin(
        name="coins",
        description="64x64 crops of scikit-image's bundled coins photograph; background vs coin, "
                    "each coin an instance; mask by watershed + convex hull",
        class_names=COINS_CLASSES,
        things=(False, True),
        sizes={"train": 147, "val": 42, "test": 42},
        make=lambda seed: _make_coins(seed, None),
        source="minseg.data.photo.make_coins (skimage/data/coins.png, bundled)",
        image_shape=(1, 64, 64),
    ),
}


def list_datasets(root=None) -> list[str]:
    """Names ``load_dataset`` accepts: the built-ins, then prepared datasets found in the cache.

    Parameters
    ----------
    root : str or Path, optional
        The cache directory (default ``data_home()``).

    Returns
    -------
    list of str
    """
    names = list(BUILTINS)
    root = Path(root) if root is not None else data_home()
    if root.is_dir():
        builtin_dirs = {f"{n}-seed" for n in BUILTINS}
        for d in sorted(root.iterdir()):
            if (d.is_dir() and not d.name.startswith(".") and (d / META_FILE).is_file()
                    and not any(d.name.startswith(p) for p in builtin_dirs)):
                names.append(d.name)
    return names


def builtin_path(name: str, seed: int = 0, root=None) -> Path:
    """Where the built-in ``name`` made from ``seed`` is cached: ``<root>/<name>-seed<seed>``."""
    root = Path(root) if root is not None else data_home()
    return root / f"{name}-seed{int(seed)}"


def _check_seed(seed, op):
    if not isinstance(seed, (int, np.integer)) or isinstance(seed, bool) or seed < 0:
        raise ValueError(f"{op}: expected seed to be an int >= 0, got {seed!r}")
    return int(seed)


def prepare_builtin(name: str, seed: int = 0, root=None, force: bool = False, verbose: bool = False) -> Path:
    """Make the built-in dataset ``name`` from ``seed`` into the cache, unless it is there already.

    Parameters
    ----------
    name : str
        One of ``BUILTINS``.
    seed : int >= 0
    root : str or Path, optional
        The cache directory (default ``data_home()``).
    force : bool
        Make it again even when cached.
    verbose : bool
        Print what is made and how long it took.

    Returns
    -------
    Path
        The dataset directory.
    """
    if name not in BUILTINS:
        raise ValueError(f"prepare_builtin: expected name in {sorted(BUILTINS)}, got {name!r}")
    seed = _check_seed(seed, "prepare_builtin")
    spec = BUILTINS[name]
    path = builtin_path(name, seed, root)
    if not force and _is_current(path, spec, seed):
        return path
    t0 = time.perf_counter()
    splits = spec.make(seed)
    meta = {"name": name, "class_names": list(spec.class_names), "palette": spec.palette.tolist(),
            "things": list(spec.things), "ignore_index": 255, "has_instances": True,
            "description": spec.description, "source": spec.source, "seed": seed, "version": spec.version}
    write_dataset(path, meta, splits, overwrite=True)   # atomic: readers never see half a dataset
    if verbose:
        sizes = ", ".join(f"{s} {v[0].shape[0]}" for s, v in splits.items())
        print(f"minseg: made {name} (seed {seed}: {sizes}) in {time.perf_counter() - t0:.1f} s -> {path}")
    return path


def _is_current(path: Path, spec: Builtin, seed: int) -> bool:
    """True when ``path`` holds a readable cache of ``spec`` at ``seed`` by the current generator."""
    try:
        meta = read_meta(path)
    except (FileNotFoundError, ValueError):
        return False
    return (meta.get("version") == spec.version and meta.get("seed") == seed
            and all((path / f"{s}.npz").is_file() for s in spec.sizes))


def _resolve(name_or_path, seed, root, op) -> Path:
    if isinstance(name_or_path, str) and name_or_path in BUILTINS:
        return prepare_builtin(name_or_path, seed, root)
    if not isinstance(name_or_path, (str, os.PathLike)):
        raise TypeError(f"{op}: expected name_or_path to be a dataset name or a path, "
                        f"got {type(name_or_path).__name__}")
    path = Path(name_or_path).expanduser()
    if path.is_dir():
        return path
    home = Path(root) if root is not None else data_home()
    if isinstance(name_or_path, str) and os.sep not in name_or_path and (home / name_or_path).is_dir():
        return home / name_or_path
    raise FileNotFoundError(f"{op}: {str(name_or_path)!r} is neither a built-in dataset "
                            f"({', '.join(BUILTINS)}), nor a prepared dataset in {str(home)!r}, nor an existing "
                            "directory")


def load_dataset(name_or_path, split: str = "train", seed: int = 0, root=None) -> Dataset:
    """Load one split of a dataset by name or from a prepared directory.

    Built-in names (``list_datasets()``) are made on first use and cached;
    any other name is looked up in the cache directory; anything else is a
    path to a directory in minseg's format (see ``minseg.data``).

    Parameters
    ----------
    name_or_path : str or Path
        ``"shapes"``, ``"digits"``, ``"coins"``, a prepared name, or a directory.
    split : str, default "train"
        ``"train"``, ``"val"`` or ``"test"`` (whichever the dataset has).
    seed : int, default 0
        For built-ins: which random draw of the data (ignored by ``coins``).
    root : str or Path, optional
        The cache directory (default ``data_home()``).

    Returns
    -------
    Dataset
        ``images`` float32 ``(N, C, H, W)``, ``labels`` int64 ``(N, H, W)``,
        ``instances`` int32 ``(N, H, W)``, and the class names, palette,
        things flags and ``ignore_index``.

    Raises
    ------
    FileNotFoundError
        Unknown name, or a missing directory or file.
    ValueError
        Unknown split, or a malformed ``meta.json`` or corrupt split file (named in the message).
    """
    path = _resolve(name_or_path, seed, root, "load_dataset")
    return read_split(path, split)


def load_splits(name_or_path, seed: int = 0, root=None) -> dict:
    """Every split of a dataset: ``{split: Dataset}`` (see ``load_dataset``)."""
    path = _resolve(name_or_path, seed, root, "load_splits")
    meta = read_meta(path)
    return {split: read_split(path, split, meta) for split in meta["splits"]}


def describe_datasets(root=None, seed: int = 0) -> list[dict]:
    """One row per dataset ``list_datasets`` names: what ``minseg datasets`` prints.

    Parameters
    ----------
    root : str or Path, optional
        The cache directory (default ``data_home()``).
    seed : int, default 0
        Which draw of the built-ins to look for.

    Returns
    -------
    list of dict
        ``name, kind ("built-in" or "prepared"), class_names, image_shape (C, H, W), splits {split: N},
        built (bool: on disk and current), path``. A prepared directory that cannot be read has
        ``error`` set (and None for what it could not read).
    """
    root = Path(root) if root is not None else data_home()
    rows = []
    for name in list_datasets(root):
        if name in BUILTINS:
            spec = BUILTINS[name]
            path = builtin_path(name, seed, root)
            rows.append({"name": name, "kind": "built-in", "class_names": list(spec.class_names),
                         "image_shape": tuple(spec.image_shape), "splits": dict(spec.sizes),
                         "built": _is_current(path, spec, seed), "path": path})
            continue
        path = root / name
        row = {"name": name, "kind": "prepared", "class_names": None, "image_shape": None, "splits": None,
               "built": True, "path": path}
        try:
            meta = read_meta(path)
            row["class_names"], row["splits"] = list(meta["class_names"]), dict(meta["splits"])
            row["image_shape"] = split_image_shape(path, next(iter(meta["splits"])))[1:]
        except (FileNotFoundError, ValueError) as err:
            row["built"], row["error"] = False, str(err)
        rows.append(row)
    return rows

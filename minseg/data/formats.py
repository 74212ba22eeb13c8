"""minseg's on-disk dataset format: read it, check it, write it atomically.

A dataset is one directory::

    <dataset>/
      meta.json     what the numbers mean (see below)
      train.npz     one file per split
      val.npz
      test.npz

``meta.json``::

    {"format": "minseg-dataset", "format_version": 1,
     "name": "shapes",
     "class_names": ["background", "circle", ...],      # K names, label k <-> class_names[k]
     "palette": [[0, 0, 0], [128, 0, 0], ...],          # K colours, RGB 0..255
     "things": [false, true, ...],                      # K flags: countable thing or amorphous stuff
     "ignore_index": 255,
     "has_instances": true,
     "splits": {"train": 1000, "val": 200, "test": 200},
     "source": "...", "seed": 0, "version": 1}          # free-form provenance

Each ``<split>.npz`` (``numpy.savez_compressed``) holds:

- ``images``: ``(N, C, H, W)``, uint8 in 0..255 (read as float32 / 255) or
  float32 in [0, 1];
- ``labels``: ``(N, H, W)``, any integer dtype (uint8 when K < 255), values in
  ``0..K-1`` or ``ignore_index`` (read as int64);
- ``instances``: ``(N, H, W)``, any integer dtype, 0 = no instance (read as int32).

Panoptic convention (Cityscapes' and COCO's converter's): a pixel's segment
is ``(labels, instances)``. Stuff pixels have instance 0; each thing has an
id ``1..k``, unique within its image; a thing-class pixel with instance 0
is a *crowd* region (COCO's ``iscrowd``), which panoptic quality neither
counts as a miss nor as a false positive. Pixels with ``ignore_index`` are
VOID. Where ``has_instances`` is false the dataset has no instance
annotation and is for semantic segmentation only.
"""
from __future__ import annotations

import json
import os
import shutil
import tempfile
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

__all__ = [
    "FORMAT",
    "FORMAT_VERSION",
    "Dataset",
    "read_meta",
    "read_split",
    "write_dataset",
    "check_arrays",
    "make_palette",
    "progress",
    "split_image_shape",
]

FORMAT = "minseg-dataset"
FORMAT_VERSION = 1
META_FILE = "meta.json"
_META_KEYS = ("name", "class_names", "palette", "things", "ignore_index", "splits")


@dataclass(frozen=True, eq=False)
class Dataset:
    """One split of a segmentation dataset, held in memory.

    Attributes
    ----------
    images : ndarray of float32, shape (N, C, H, W)
        Values in [0, 1].
    labels : ndarray of int64, shape (N, H, W)
        Class ids in ``0..K-1``, or ``ignore_index`` (VOID: boundaries, padding).
    instances : ndarray of int32, shape (N, H, W)
        0 for stuff (and crowd), ``1..k`` for each thing in an image.
    class_names : tuple of str, length K
    palette : ndarray of uint8, shape (K, 3)
    things : tuple of bool, length K
        True for countable things, False for stuff (PQ reports both).
    ignore_index : int
    name : str
    split : str
    meta : dict
        The whole ``meta.json`` (provenance: source, seed, version).
    """

    images: np.ndarray
    labels: np.ndarray
    instances: np.ndarray
    class_names: tuple
    palette: np.ndarray
    things: tuple
    ignore_index: int = 255
    name: str = ""
    split: str = ""
    meta: dict = field(default_factory=dict, repr=False)

    def __len__(self) -> int:
        return int(self.images.shape[0])

    @property
    def num_classes(self) -> int:
        """K, the number of classes (``ignore_index`` not counted)."""
        return len(self.class_names)

    @property
    def has_instances(self) -> bool:
        """Whether ``instances`` is annotated (else it is all zeros)."""
        return bool(self.meta.get("has_instances", True))

    def __getitem__(self, i):
        """``(image (C, H, W), labels (H, W), instances (H, W))`` of sample ``i``."""
        return self.images[i], self.labels[i], self.instances[i]

    def __repr__(self) -> str:
        N, C, H, W = self.images.shape
        return (f"Dataset(name={self.name!r}, split={self.split!r}, N={N}, C={C}, H={H}, W={W}, "
                f"classes={list(self.class_names)})")


# --------------------------------------------------------------------------- palette

def make_palette(n: int) -> np.ndarray:
    """PASCAL VOC's colour map for ``n`` classes.

    The bits of the class id ``k`` are spread over the high bits of R, G
    and B: bit ``3j`` of ``k`` sets bit ``7 - j`` of R, bit ``3j + 1`` of G,
    bit ``3j + 2`` of B. Class 0 is black, 1 is ``(128, 0, 0)``, 2 is
    ``(0, 128, 0)``, 15 (person) is ``(192, 128, 128)``.

    Parameters
    ----------
    n : int >= 1

    Returns
    -------
    ndarray of uint8, shape (n, 3)
    """
    if not isinstance(n, (int, np.integer)) or isinstance(n, bool) or n < 1:
        raise ValueError(f"make_palette: expected n to be an int >= 1, got {n!r}")
    k = np.arange(n)
    palette = np.zeros((n, 3), dtype=np.int64)
    for j in range(8):                                       # 8 bit-triples cover ids < 2**24
        for c in range(3):
            bit = (k >> (3 * j + c)) & 1
            palette[:, c] |= bit << (7 - j)
    return palette.astype(np.uint8)


# --------------------------------------------------------------------------- progress

def progress(iterable, total=None, desc=None, enable: bool = True):
    """Wrap ``iterable`` in a ``tqdm.auto`` bar when tqdm is installed and ``enable``; else return it.

    ``tqdm.auto`` draws a widget in Jupyter and text in a terminal.
    """
    if not enable:
        return iterable
    try:
        from tqdm.auto import tqdm  # noqa: PLC0415  (optional, lazy)
    except ImportError:
        return iterable
    return tqdm(iterable, total=total, desc=desc, leave=False)


# --------------------------------------------------------------------------- checks

def check_arrays(images, labels, instances, num_classes: int, ignore_index: int = 255,
                 where: str = "arrays") -> None:
    """Raise ``ValueError`` unless the three arrays form a valid split.

    Checks shapes ``(N, C, H, W)``, ``(N, H, W)``, ``(N, H, W)``, integer
    label and instance dtypes, image range, and that every label is in
    ``0..K-1`` or ``ignore_index``. ``where`` (a file name) starts the message.
    """
    if not isinstance(images, np.ndarray) or images.ndim != 4:
        raise ValueError(f"{where}: expected images of shape (N, C, H, W), got "
                         f"{getattr(images, 'shape', type(images).__name__)}")
    N, C, H, W = images.shape
    for arr_name, arr in (("labels", labels), ("instances", instances)):
        if not isinstance(arr, np.ndarray) or arr.shape != (N, H, W):
            raise ValueError(f"{where}: expected {arr_name} of shape (N, H, W) = {(N, H, W)} to match "
                             f"images {images.shape}, got {getattr(arr, 'shape', type(arr).__name__)}")
        if arr.dtype.kind not in "iu":
            raise ValueError(f"{where}: expected {arr_name} with an integer dtype, got {arr.dtype}")
    if images.dtype == np.uint8:
        pass
    elif images.dtype.kind == "f":
        if images.size and (float(images.min()) < 0.0 or float(images.max()) > 1.0):
            raise ValueError(f"{where}: expected float images in [0, 1], got range "
                             f"[{float(images.min()):.3g}, {float(images.max()):.3g}]")
    else:
        raise ValueError(f"{where}: expected images of dtype uint8 or float32, got {images.dtype}")
    if labels.size:
        flat = labels.ravel()
        if flat.min() < 0:
            raise ValueError(f"{where}: expected labels >= 0, got {int(flat.min())}")
        counts = np.bincount(flat.astype(np.int64))
        bad = [int(v) for v in np.flatnonzero(counts) if v >= num_classes and v != ignore_index]
        if bad:
            raise ValueError(f"{where}: expected labels in 0..{num_classes - 1} or ignore_index={ignore_index}, "
                             f"got values {bad[:10]}")
    if instances.size and instances.min() < 0:
        raise ValueError(f"{where}: expected instances >= 0, got {int(instances.min())}")


def _check_meta(meta, path: Path) -> dict:
    if not isinstance(meta, dict):
        raise ValueError(f"{path}: expected a JSON object, got {type(meta).__name__}")
    if meta.get("format", FORMAT) != FORMAT:
        raise ValueError(f"{path}: expected format {FORMAT!r}, got {meta.get('format')!r}")
    version = meta.get("format_version", FORMAT_VERSION)
    if version != FORMAT_VERSION:
        raise ValueError(f"{path}: expected format_version {FORMAT_VERSION}, got {version!r}")
    missing = [k for k in _META_KEYS if k not in meta]
    if missing:
        raise ValueError(f"{path}: missing keys {missing}; expected all of {list(_META_KEYS)}")
    K = len(meta["class_names"])
    if K == 0 or not all(isinstance(c, str) for c in meta["class_names"]):
        raise ValueError(f"{path}: expected class_names to be a non-empty list of strings, "
                         f"got {meta['class_names']!r}")
    palette = np.asarray(meta["palette"])
    if palette.shape != (K, 3) or palette.dtype.kind not in "iu" or palette.min() < 0 or palette.max() > 255:
        raise ValueError(f"{path}: expected palette of {K} RGB triples in 0..255 (one per class), "
                         f"got shape {palette.shape}")
    if len(meta["things"]) != K or not all(isinstance(t, bool) for t in meta["things"]):
        raise ValueError(f"{path}: expected things to be {K} booleans (one per class), got {meta['things']!r}")
    ignore = meta["ignore_index"]
    if not isinstance(ignore, int) or 0 <= ignore < K:
        raise ValueError(f"{path}: expected ignore_index to be an int outside 0..{K - 1}, got {ignore!r}")
    if not isinstance(meta["splits"], dict) or not meta["splits"]:
        raise ValueError(f"{path}: expected splits to be a non-empty object {{name: size}}, got {meta['splits']!r}")
    return meta


# --------------------------------------------------------------------------- reading

def read_meta(path) -> dict:
    """Read and check ``<path>/meta.json``.

    Raises
    ------
    FileNotFoundError
        When the directory or its ``meta.json`` is missing.
    ValueError
        When ``meta.json`` is not valid JSON or lacks a required key.
    """
    path = Path(path)
    if not path.is_dir():
        raise FileNotFoundError(f"read_meta: dataset directory {str(path)!r} does not exist")
    meta_path = path / META_FILE
    if not meta_path.is_file():
        raise FileNotFoundError(f"read_meta: {str(meta_path)!r} not found; a minseg dataset directory holds "
                                f"meta.json and one <split>.npz per split (see minseg.data)")
    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ValueError(f"read_meta: {str(meta_path)!r} is not valid JSON: {err}") from None
    return _check_meta(meta, meta_path)


def read_split(path, split: str = "train", meta: dict | None = None) -> Dataset:
    """Load one split of a dataset directory into a ``Dataset``.

    Parameters
    ----------
    path : str or Path
        The dataset directory.
    split : str
        One of ``meta["splits"]``.
    meta : dict, optional
        Already read ``meta.json`` (read from ``path`` when None).

    Raises
    ------
    FileNotFoundError
        Missing directory, ``meta.json`` or split file.
    ValueError
        Unknown split, or a corrupt or inconsistent ``.npz`` (the message names the file).
    """
    path = Path(path)
    if meta is None:
        meta = read_meta(path)
    if split not in meta["splits"]:
        raise ValueError(f"read_split: expected split to be one of {sorted(meta['splits'])} for "
                         f"{str(path)!r}, got {split!r}")
    split_path = path / f"{split}.npz"
    if not split_path.is_file():
        raise FileNotFoundError(f"read_split: {str(split_path)!r} not found (listed in meta.json splits)")
    try:
        with np.load(split_path, allow_pickle=False) as z:
            missing = [k for k in ("images", "labels", "instances") if k not in z.files]
            if missing:
                raise ValueError(f"read_split: {str(split_path)!r} lacks arrays {missing}; "
                                 f"expected images, labels, instances")
            images, labels, instances = z["images"], z["labels"], z["instances"]
    except ValueError as err:
        if str(split_path) in str(err):
            raise
        raise ValueError(f"read_split: {str(split_path)!r} is corrupt or not a .npz file: {err}") from None
    except (OSError, EOFError, zipfile.BadZipFile) as err:
        raise ValueError(f"read_split: {str(split_path)!r} is corrupt or not a .npz file: {err}") from None
    K = len(meta["class_names"])
    check_arrays(images, labels, instances, K, meta["ignore_index"], where=f"read_split: {str(split_path)!r}")
    if images.dtype == np.uint8:
        images = images.astype(np.float32) / np.float32(255.0)
    else:
        images = images.astype(np.float32, copy=False)
    return Dataset(
        images=images,
        labels=labels.astype(np.int64),
        instances=instances.astype(np.int32),
        class_names=tuple(meta["class_names"]),
        palette=np.asarray(meta["palette"], dtype=np.uint8),
        things=tuple(bool(t) for t in meta["things"]),
        ignore_index=int(meta["ignore_index"]),
        name=str(meta["name"]),
        split=split,
        meta=meta,
    )


def split_image_shape(path, split: str = "train") -> tuple:
    """``(N, C, H, W)`` of ``<path>/<split>.npz``'s images, read from the ``.npy`` header alone (no array loaded).

    Raises
    ------
    FileNotFoundError, ValueError
        Missing, or not a split file with an ``images`` array (the message names the file).
    """
    split_path = Path(path) / f"{split}.npz"
    if not split_path.is_file():
        raise FileNotFoundError(f"split_image_shape: {str(split_path)!r} not found")
    try:
        with zipfile.ZipFile(split_path) as z, z.open("images.npy") as f:
            major, _ = np.lib.format.read_magic(f)
            read_header = (np.lib.format.read_array_header_1_0 if major == 1
                           else np.lib.format.read_array_header_2_0)
            shape, _, _ = read_header(f)
    except (KeyError, OSError, ValueError, zipfile.BadZipFile) as err:
        raise ValueError(f"split_image_shape: {str(split_path)!r} is corrupt or has no images array: {err}") from None
    return tuple(int(d) for d in shape)


# --------------------------------------------------------------------------- writing

def _smallest_uint(max_value: int):
    for dtype in (np.uint8, np.uint16, np.uint32):
        if max_value <= np.iinfo(dtype).max:
            return dtype
    return np.int64


def write_dataset(path, meta: dict, splits: dict, overwrite: bool = False) -> Path:
    """Write a dataset directory atomically: all of it, or nothing.

    The files go to a temporary directory beside ``path``, which is renamed
    to ``path`` only when every file is written; on any error the temporary
    directory is removed and ``path`` is left as it was.

    Parameters
    ----------
    path : str or Path
        The dataset directory to create.
    meta : dict
        ``name, class_names, palette, things, ignore_index`` and any
        provenance keys; ``splits`` and the format keys are filled in here.
    splits : dict of str -> (images, labels, instances)
        ``images`` ``(N, C, H, W)`` uint8 or float32 in [0, 1]; labels and
        instances ``(N, H, W)`` integers. Stored in the smallest unsigned dtype.
    overwrite : bool
        Replace an existing ``path`` (still atomically) instead of raising.

    Returns
    -------
    Path
        ``path``.

    Raises
    ------
    FileExistsError
        When ``path`` exists and ``overwrite`` is False.
    ValueError
        For inconsistent arrays or meta.
    """
    path = Path(path)
    if path.exists() and not overwrite:
        raise FileExistsError(f"write_dataset: {str(path)!r} already exists; pass overwrite=True "
                              "(--overwrite) to replace it")
    meta = dict(meta)
    meta.setdefault("has_instances", True)
    meta["format"] = FORMAT
    meta["format_version"] = FORMAT_VERSION
    meta["palette"] = np.asarray(meta.get("palette", []), dtype=np.int64).tolist()
    meta["things"] = [bool(t) for t in meta.get("things", [])]
    meta["splits"] = {name: int(arrays[0].shape[0]) for name, arrays in splits.items()}
    _check_meta(meta, path / META_FILE)
    K = len(meta["class_names"])
    for name, (images, labels, instances) in splits.items():
        check_arrays(images, labels, instances, K, meta["ignore_index"], where=f"write_dataset: split {name!r}")

    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.tmp-", dir=path.parent))
    try:
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o777 & ~umask)    # mkdtemp makes it private (0700); a dataset is as readable as any dir
        for name, (images, labels, instances) in splits.items():
            images = images if images.dtype == np.uint8 else images.astype(np.float32)
            labels = labels.astype(_smallest_uint(int(max(labels.max(initial=0), meta["ignore_index"]))))
            instances = instances.astype(_smallest_uint(int(instances.max(initial=0))))
            np.savez_compressed(tmp / f"{name}.npz", images=images, labels=labels, instances=instances)
        (tmp / META_FILE).write_text(json.dumps(meta, indent=1) + "\n", encoding="utf-8")
        _replace_dir(tmp, path, overwrite)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return path


def _replace_dir(src: Path, dst: Path, overwrite: bool) -> None:
    """Rename directory ``src`` to ``dst``; an existing ``dst`` is moved aside first, then deleted."""
    if dst.exists():
        if not overwrite:
            raise FileExistsError(f"write_dataset: {str(dst)!r} appeared while writing; not replacing it")
        old = Path(tempfile.mkdtemp(prefix=f".{dst.name}.old-", dir=dst.parent))
        try:
            os.replace(dst, old / dst.name)
        except FileNotFoundError:        # another writer moved it aside first
            pass
        os.replace(src, dst)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(src, dst)

"""Turn real datasets a user has downloaded into minseg's format (used by ``data_scripts/``).

Nothing here downloads: each function reads the extracted archive from
``root`` and writes a minseg dataset directory to ``out`` (see
``minseg.data.formats``), atomically -- on any error nothing is left at
``out``. Every input file is checked, and an error names the file:

- a missing directory or file -> ``FileNotFoundError``;
- a file that is not a readable image, a malformed JSON, a mask value or
  colour that is not in the dataset's palette, an image and mask of
  different sizes -> ``ValueError``.

Photographs of different sizes are brought to ``size x size`` by
``fit_to_square``: the longer side scaled to ``size`` (bilinear for the
image, nearest for labels and instances), then padded with ``ignore_index``.

- ``prepare_voc``: PASCAL VOC 2012 segmentation (``JPEGImages``,
  ``SegmentationClass`` palette PNGs whose 255 border is ignore,
  ``SegmentationObject`` instance PNGs when present, ``ImageSets/Segmentation``).
- ``prepare_isbi``: the ISBI 2012 EM segmentation challenge (``train-volume.tif``
  and ``train-labels.tif``, 30 pages of 512 x 512), the U-Net paper's data.
- ``prepare_coco_panoptic``: COCO panoptic (``panoptic_<split>2017.json`` and
  the PNGs whose RGB encodes the segment id ``R + 256 G + 256^2 B``).
- ``prepare_cityscapes``: Cityscapes ``gtFine`` label ids to the 19 train ids.
- ``prepare_folder``: a user's own folder of images and label PNGs (index
  PNGs, or colour PNGs with a palette given in a classes file).
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from .formats import make_palette, progress, write_dataset
from .transforms import fit_to_square, resize_bilinear, resize_nearest

__all__ = ["VOC_CLASSES", "ISBI_CLASSES", "read_image", "read_mask", "prepare_voc", "prepare_isbi",
           "prepare_coco_panoptic", "read_tiff_pages", "rgb_to_id", "prepare_cityscapes", "cityscapes_labels",
           "CITYSCAPES_CLASSES", "CITYSCAPES_TRAIN_IDS", "prepare_folder", "read_classes"]

VOC_CLASSES = ("background", "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat",
               "chair", "cow", "diningtable", "dog", "horse", "motorbike", "person", "pottedplant",
               "sheep", "sofa", "train", "tvmonitor")
ISBI_CLASSES = ("cell", "membrane")
VOC_VOID_COLOR = (224, 224, 192)


# --------------------------------------------------------------------------- reading files

def _pil():
    try:
        from PIL import Image  # noqa: PLC0415  (optional dependency, lazy)
    except ImportError:
        raise ImportError("minseg.data.convert: Pillow is needed to read image files; "
                          "install it with `pip install minseg[lessons]`") from None
    return Image


def _need_dir(path: Path, op: str, what: str) -> Path:
    if not path.is_dir():
        raise FileNotFoundError(f"{op}: expected {what} directory {str(path)!r}, which does not exist")
    return path


def _need_file(path: Path, op: str, what: str = "file") -> Path:
    if not path.is_file():
        raise FileNotFoundError(f"{op}: expected {what} {str(path)!r}, which does not exist")
    return path


def read_image(path, op: str = "read_image") -> np.ndarray:
    """An RGB image file as ``(3, H, W)`` uint8.

    Raises
    ------
    FileNotFoundError
        Missing file.
    ValueError
        A file that is not a readable image (the message names it).
    """
    path = _need_file(Path(path), op, "image file")
    Image = _pil()
    try:
        with Image.open(path) as im:
            im.load()
            rgb = np.asarray(im.convert("RGB"), dtype=np.uint8)   # (H, W, 3)
    except (OSError, SyntaxError, ValueError) as err:              # PIL's UnidentifiedImageError is an OSError
        raise ValueError(f"{op}: {str(path)!r} is corrupt or not an image: {err}") from None
    return np.ascontiguousarray(rgb.transpose(2, 0, 1))            # (3, H, W)


def read_mask(path, palette: np.ndarray, op: str = "read_mask", void_color=VOC_VOID_COLOR,
              ignore_index: int = 255) -> np.ndarray:
    """A label PNG as ``(H, W)`` uint8 class ids, ``ignore_index`` where VOID.

    A palette ("P") or greyscale PNG stores the class id itself; an RGB PNG
    stores ``palette[k]``, mapped back to ``k`` here (``void_color`` to
    ``ignore_index``).

    Raises
    ------
    ValueError
        For an unreadable file, or an index or colour that is not in the
        palette (the message names the file and the value).
    """
    path = _need_file(Path(path), op, "mask file")
    Image = _pil()
    K = len(palette)
    try:
        with Image.open(path) as im:
            im.load()
            mode = im.mode
            if mode in ("P", "L", "I;16", "I", "1"):
                mask = np.asarray(im, dtype=np.int64)                          # (H, W) indices ("1": 0 / 1)
            else:
                rgb = np.asarray(im.convert("RGB"), dtype=np.int64)            # (H, W, 3)
    except (OSError, SyntaxError, ValueError) as err:
        raise ValueError(f"{op}: {str(path)!r} is corrupt or not an image: {err}") from None
    if mode in ("P", "L", "I;16", "I", "1"):
        bad = np.unique(mask[(mask >= K) & (mask != ignore_index)])
        if bad.size:
            raise ValueError(f"{op}: {str(path)!r} has label index {int(bad[0])} not in the palette "
                             f"(expected 0..{K - 1} or {ignore_index})")
        return mask.astype(np.uint8 if K < 256 else np.uint16)
    code = (rgb[..., 0] << 16) | (rgb[..., 1] << 8) | rgb[..., 2]             # (H, W) one int per colour
    pal = np.asarray(palette, dtype=np.int64)
    pal_code = (pal[:, 0] << 16) | (pal[:, 1] << 8) | pal[:, 2]                # (K,)
    void_code = (void_color[0] << 16) | (void_color[1] << 8) | void_color[2]
    colours, inverse = np.unique(code, return_inverse=True)
    lut = np.empty(colours.size, dtype=np.int64)
    for j, c in enumerate(colours):
        hit = np.flatnonzero(pal_code == c)
        if hit.size:
            lut[j] = hit[0]
        elif c == void_code:
            lut[j] = ignore_index
        else:
            rgb_c = (int(c) >> 16, (int(c) >> 8) & 255, int(c) & 255)
            raise ValueError(f"{op}: {str(path)!r} has mask colour {rgb_c} not in the palette "
                             f"(expected one of the {K} class colours or the void colour {tuple(void_color)})")
    return lut[inverse.reshape(code.shape)].astype(np.uint8 if K < 256 else np.uint16)


def _check_same_size(image, mask, image_path, mask_path, op):
    if image.shape[-2:] != mask.shape[-2:]:
        raise ValueError(f"{op}: image {str(image_path)!r} is {image.shape[-2]}x{image.shape[-1]} (H x W) "
                         f"but mask {str(mask_path)!r} is {mask.shape[-2]}x{mask.shape[-1]}; expected the same size")


def _check_out(out: Path, overwrite: bool, op: str) -> Path:
    out = Path(out).expanduser()
    if out.exists() and not overwrite:
        raise FileExistsError(f"{op}: output {str(out)!r} already exists; pass overwrite=True (--overwrite) "
                              "to replace it")
    return out


def _check_size(size, op):
    if size is not None and (not isinstance(size, (int, np.integer)) or isinstance(size, bool) or size < 8):
        raise ValueError(f"{op}: expected size to be an int >= 8, got {size!r}")


def _stack(samples):
    images, labels, instances = zip(*samples)
    return np.stack(images), np.stack(labels), np.stack(instances)


# --------------------------------------------------------------------------- PASCAL VOC 2012

def _voc_root(root: Path) -> Path:
    for candidate in (root, root / "VOC2012", root / "VOCdevkit" / "VOC2012"):
        if (candidate / "JPEGImages").is_dir() or (candidate / "SegmentationClass").is_dir():
            return candidate
    return root


def prepare_voc(root, out, size: int = 128, splits=("train", "val"), limit: int | None = None,
                overwrite: bool = False, show_progress: bool = True) -> Path:
    """Convert PASCAL VOC 2012 segmentation into a minseg dataset.

    Parameters
    ----------
    root : str or Path
        The extracted ``VOC2012`` directory (or ``VOCdevkit`` above it), holding
        ``JPEGImages/<id>.jpg``, ``SegmentationClass/<id>.png`` (palette PNGs:
        index = class, 255 = the void border, made ignore), optionally
        ``SegmentationObject/<id>.png`` (index = instance, 255 = void) and
        ``ImageSets/Segmentation/<split>.txt`` (one id per line).
    out : str or Path
        The dataset directory to write.
    size : int, default 128
        Images become ``size x size`` (``fit_to_square``).
    splits : sequence of str
        Lists in ``ImageSets/Segmentation`` to convert (VOC's test masks are not public).
    limit : int, optional
        Keep only the first ``limit`` ids of each list (quick subsets).
    overwrite : bool
    show_progress : bool
        A ``tqdm.auto`` bar per split.

    Returns
    -------
    Path
        ``out``.
    """
    op = "prepare_voc"
    _check_size(size, op)
    out = _check_out(out, overwrite, op)
    root = _voc_root(Path(root).expanduser())
    _need_dir(root, op, "VOC root")
    jpeg = _need_dir(root / "JPEGImages", op, "JPEGImages")
    seg = _need_dir(root / "SegmentationClass", op, "SegmentationClass")
    sets = _need_dir(root / "ImageSets" / "Segmentation", op, "ImageSets/Segmentation")
    obj = root / "SegmentationObject"
    has_instances = obj.is_dir()
    palette = make_palette(len(VOC_CLASSES))
    things = np.array([False] + [True] * (len(VOC_CLASSES) - 1))

    arrays = {}
    for split in splits:
        list_file = _need_file(sets / f"{split}.txt", op, "split list")
        ids = [line.split()[0] for line in list_file.read_text().splitlines() if line.strip()]
        if limit is not None:
            ids = ids[:limit]
        if not ids:
            raise ValueError(f"{op}: split list {str(list_file)!r} is empty; expected one image id per line")
        samples = []
        for image_id in progress(ids, total=len(ids), desc=f"VOC {split}", enable=show_progress):
            image_path, mask_path = jpeg / f"{image_id}.jpg", seg / f"{image_id}.png"
            image = read_image(image_path, op)
            labels = read_mask(mask_path, palette, op)
            _check_same_size(image, labels, image_path, mask_path, op)
            instances = np.zeros(labels.shape, dtype=np.uint16)
            if has_instances:
                obj_path = obj / f"{image_id}.png"
                ids_map = read_mask(obj_path, make_palette(255), op).astype(np.uint16)
                _check_same_size(image, ids_map, image_path, obj_path, op)
                keep = (ids_map != 255) & (labels != 255) & things[np.minimum(labels, len(VOC_CLASSES) - 1)]
                instances = np.where(keep, ids_map, 0).astype(np.uint16)
            samples.append(fit_to_square(image, labels, instances, size))
        arrays[split] = _stack(samples)

    meta = {"name": "voc2012", "class_names": list(VOC_CLASSES), "palette": palette.tolist(),
            "things": things.tolist(), "ignore_index": 255, "has_instances": has_instances,
            "source": f"PASCAL VOC 2012 segmentation from {str(root)!r}, fit_to_square({size})",
            "version": 1}
    return write_dataset(out, meta, arrays, overwrite=overwrite)


# --------------------------------------------------------------------------- ISBI 2012

def read_tiff_pages(path, op: str = "read_tiff_pages") -> np.ndarray:
    """A multi-page greyscale TIFF as ``(pages, H, W)``: tifffile when installed, else Pillow.

    Raises
    ------
    FileNotFoundError, ValueError
        Missing, unreadable, or pages of different sizes (the message names the file).
    """
    path = _need_file(Path(path), op, "TIFF file")
    try:
        import tifffile  # noqa: PLC0415  (optional, lazy; comes with scikit-image)
    except ImportError:
        tifffile = None
    try:
        if tifffile is not None:
            pages = np.asarray(tifffile.imread(path))
        else:
            from PIL import ImageSequence  # noqa: PLC0415

            with _pil().open(path) as im:
                frames = [np.asarray(f.convert("L")) for f in ImageSequence.Iterator(im)]
            if len({f.shape for f in frames}) > 1:
                raise ValueError(f"pages of different sizes {sorted({f.shape for f in frames})}")
            pages = np.stack(frames)
    except Exception as err:  # tifffile raises its own TiffFileError, struct.error, ...
        raise ValueError(f"{op}: {str(path)!r} is corrupt or not a multi-page TIFF: {err}") from None
    if pages.size == 0:
        raise ValueError(f"{op}: {str(path)!r} is corrupt or empty: it holds no image pages")
    if pages.ndim == 2:
        pages = pages[None]
    if pages.ndim != 3:
        raise ValueError(f"{op}: expected {str(path)!r} to hold greyscale pages (pages, H, W), "
                         f"got shape {pages.shape}")
    return pages


def prepare_isbi(root, out, size: int | None = None, n_val: int = 5, n_test: int = 5,
                 overwrite: bool = False, show_progress: bool = True) -> Path:
    """Convert the ISBI 2012 EM membrane set into a minseg dataset.

    Parameters
    ----------
    root : str or Path
        Holds ``train-volume.tif`` (30 pages of 512 x 512, 8-bit) and
        ``train-labels.tif`` (255 = cell interior, 0 = membrane). The challenge's
        ``test-volume.tif`` has no public labels and is not used.
    out : str or Path
    size : int, optional
        Resize slices to ``size x size`` (bilinear image, nearest labels); native when None.
    n_val, n_test : int
        The last ``n_val + n_test`` slices become val and test; the rest train.
        (The U-Net paper trained on all 30 and was scored by the challenge server.)
    overwrite, show_progress : bool

    Returns
    -------
    Path
        ``out``. Classes: 0 cell, 1 membrane (both stuff; no instances).
    """
    op = "prepare_isbi"
    _check_size(size, op)
    out = _check_out(out, overwrite, op)
    root = _need_dir(Path(root).expanduser(), op, "ISBI root")
    vol_path, lab_path = root / "train-volume.tif", root / "train-labels.tif"
    volume = read_tiff_pages(vol_path, op)
    labels_raw = read_tiff_pages(lab_path, op)
    if volume.shape != labels_raw.shape:
        raise ValueError(f"{op}: {str(vol_path)!r} has shape {volume.shape} (pages, H, W) but "
                         f"{str(lab_path)!r} has {labels_raw.shape}; expected the same")
    if volume.dtype != np.uint8:
        raise ValueError(f"{op}: expected 8-bit greyscale pages in {str(vol_path)!r}, got dtype {volume.dtype}")
    values = np.unique(labels_raw)
    bad = values[(values != 0) & (values != 255)]
    if bad.size:
        raise ValueError(f"{op}: {str(lab_path)!r} has label value {int(bad[0])} not in the palette "
                         "(expected 0 = membrane, 255 = cell)")
    n = volume.shape[0]
    if not (isinstance(n_val, int) and isinstance(n_test, int) and n_val >= 0 and n_test >= 0
            and n_val + n_test < n):
        raise ValueError(f"{op}: expected n_val, n_test >= 0 leaving >= 1 training slice of {n}, "
                         f"got n_val={n_val!r}, n_test={n_test!r}")
    images, labels = [], []
    for i in progress(range(n), total=n, desc="ISBI slices", enable=show_progress):
        image = volume[i][None]                                          # (1, H, W)
        lab = np.where(labels_raw[i] == 255, 0, 1).astype(np.uint8)      # cell 0, membrane 1
        if size is not None:
            image = np.clip(np.rint(resize_bilinear(image, size)), 0, 255).astype(np.uint8)
            lab = resize_nearest(lab, size)
        images.append(image)
        labels.append(lab)
    images, labels = np.stack(images), np.stack(labels)
    instances = np.zeros(labels.shape, dtype=np.uint8)
    n_train = n - n_val - n_test
    cuts = {"train": slice(0, n_train), "val": slice(n_train, n_train + n_val), "test": slice(n_train + n_val, n)}
    arrays = {s: (images[c], labels[c], instances[c]) for s, c in cuts.items() if c.stop > c.start}
    meta = {"name": "isbi2012", "class_names": list(ISBI_CLASSES), "palette": [[0, 0, 0], [255, 255, 255]],
            "things": [False, False], "ignore_index": 255, "has_instances": False,
            "source": f"ISBI 2012 EM segmentation from {str(root)!r}" + (f", resized to {size}" if size else ""),
            "version": 1}
    return write_dataset(out, meta, arrays, overwrite=overwrite)


# --------------------------------------------------------------------------- COCO panoptic

def rgb_to_id(rgb: np.ndarray) -> np.ndarray:
    """COCO panoptic PNG colours to segment ids: ``id = R + 256 G + 256^2 B``.

    Parameters
    ----------
    rgb : ndarray of uint8 (or another integer dtype with values in 0..255), shape (H, W, 3)
        Channels last, as COCO's ``rgb2id``; ``read_image`` returns ``(3, H, W)``,
        so pass ``read_image(path).transpose(1, 2, 0)``.

    Returns
    -------
    ndarray of int64, shape (H, W)

    Raises
    ------
    ValueError
        Not of shape (H, W, 3) (a (3, H, W) array, a grey (H, W) one), or values outside 0..255.
    TypeError
        A float or bool array (colours in [0, 1] would give wrong ids).
    """
    op = "rgb_to_id"
    rgb = np.asarray(rgb)
    if rgb.ndim != 3 or rgb.shape[-1] != 3:
        hint = (" (channels first: pass rgb.transpose(1, 2, 0))" if rgb.ndim == 3 and rgb.shape[0] == 3
                else " (a grey image has no segment colours)" if rgb.ndim == 2 else "")
        raise ValueError(f"{op}: expected rgb of shape (H, W, 3), got shape {rgb.shape}{hint}")
    if rgb.dtype.kind not in "ui":
        raise TypeError(f"{op}: expected rgb of an integer dtype (uint8 colours 0..255), got {rgb.dtype}")
    if rgb.size and (int(rgb.min()) < 0 or int(rgb.max()) > 255):
        raise ValueError(f"{op}: expected rgb values in 0..255, got values in "
                         f"{int(rgb.min())}..{int(rgb.max())}")
    rgb = rgb.astype(np.int64)
    return rgb[..., 0] + 256 * rgb[..., 1] + 256 * 256 * rgb[..., 2]


def _first_existing(*paths: Path) -> Path:
    for p in paths:
        if p.exists():
            return p
    return paths[0]


def _read_json(path: Path, op: str) -> dict:
    _need_file(path, op, "annotation file")
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ValueError(f"{op}: {str(path)!r} is not valid JSON: {err}") from None
    if not isinstance(doc, dict) or "annotations" not in doc or "categories" not in doc:
        raise ValueError(f"{op}: {str(path)!r} is not a COCO panoptic file: expected an object with "
                         "'annotations' and 'categories'")
    return doc


def prepare_coco_panoptic(root, out, size: int = 128, splits=("train", "val"), limit: int | None = None,
                          overwrite: bool = False, show_progress: bool = True) -> Path:
    """Convert COCO panoptic segmentation into a minseg dataset (semantic labels + instance ids).

    Parameters
    ----------
    root : str or Path
        The COCO directory, holding ``<split>2017/*.jpg``,
        ``annotations/panoptic_<split>2017.json`` and the PNGs in
        ``annotations/panoptic_<split>2017/`` (the ``annotations/`` level may be
        left out).
    out : str or Path
    size : int, default 128
    splits : sequence of str
        COCO's ``train`` and ``val`` (test has no public annotation).
    limit : int, optional
        Keep only the first ``limit`` annotated images of each split. The
        whole of train2017 (118k images) does not fit in a laptop's memory.
    overwrite, show_progress : bool

    Returns
    -------
    Path
        ``out``. Classes are COCO's categories in order of category id, with
        their colours and ``isthing`` flags. Segment id 0 (unlabelled) is
        ignore; each non-crowd thing segment gets an instance id ``1..k`` in
        its image; stuff and crowd (``iscrowd = 1``) segments get instance 0.
    """
    op = "prepare_coco_panoptic"
    _check_size(size, op)
    out = _check_out(out, overwrite, op)
    root = _need_dir(Path(root).expanduser(), op, "COCO root")
    categories = None
    arrays = {}
    for split in splits:
        json_path = _first_existing(root / "annotations" / f"panoptic_{split}2017.json",
                                    root / f"panoptic_{split}2017.json")
        png_dir = _first_existing(root / "annotations" / f"panoptic_{split}2017", root / f"panoptic_{split}2017")
        doc = _read_json(json_path, op)
        _need_dir(png_dir, op, "panoptic PNG")
        img_dir = _need_dir(root / f"{split}2017", op, "image")
        cats = sorted(doc["categories"], key=lambda c: c["id"])
        if categories is None:
            categories = cats
        elif [c["id"] for c in cats] != [c["id"] for c in categories]:
            raise ValueError(f"{op}: {str(json_path)!r} lists other categories than the first split's; "
                             "expected the same category ids in every split")
        index_of = {c["id"]: k for k, c in enumerate(categories)}
        isthing = [bool(c.get("isthing", 0)) for c in categories]
        K = len(categories)
        ignore = 255 if K < 255 else 65535
        image_files = {im["id"]: im["file_name"] for im in doc.get("images", [])}
        anns = doc["annotations"][:limit] if limit is not None else doc["annotations"]
        if not anns:
            raise ValueError(f"{op}: {str(json_path)!r} has no annotations")
        samples = []
        for ann in progress(anns, total=len(anns), desc=f"COCO {split}", enable=show_progress):
            png_path = png_dir / ann["file_name"]
            image_name = image_files.get(ann.get("image_id"), Path(ann["file_name"]).with_suffix(".jpg").name)
            image_path = img_dir / image_name
            image = read_image(image_path, op)
            ids = rgb_to_id(read_image(png_path, op).transpose(1, 2, 0))           # (H, W) segment ids
            _check_same_size(image, ids, image_path, png_path, op)
            labels, instances = _coco_segments(ids, ann, index_of, isthing, ignore, png_path, json_path, op)
            samples.append(fit_to_square(image, labels, instances, size, ignore_index=ignore))
        arrays[split] = _stack(samples)

    meta = {"name": "coco-panoptic", "class_names": [c["name"] for c in categories],
            "palette": [list(c.get("color", make_palette(len(categories))[k].tolist()))
                        for k, c in enumerate(categories)],
            "things": [bool(c.get("isthing", 0)) for c in categories], "ignore_index": ignore,
            "has_instances": True, "coco_category_ids": [c["id"] for c in categories],
            "source": f"COCO panoptic from {str(root)!r}, fit_to_square({size})", "version": 1}
    return write_dataset(out, meta, arrays, overwrite=overwrite)


def _coco_segments(ids, ann, index_of, isthing, ignore, png_path, json_path, op):
    """Per-pixel class and instance from one image's id map and its ``segments_info``."""
    segments = {s["id"]: s for s in ann.get("segments_info", [])}
    present, inverse = np.unique(ids, return_inverse=True)
    seg_label = np.full(present.size, ignore, dtype=np.int64)
    seg_instance = np.zeros(present.size, dtype=np.int64)
    k = 0
    for j, sid in enumerate(present):
        if sid == 0:                                        # unlabelled: VOID
            continue
        if sid not in segments:
            rgb = (int(sid) % 256, int(sid) // 256 % 256, int(sid) // 65536)
            raise ValueError(f"{op}: {str(png_path)!r} has segment id {int(sid)} (colour {rgb}) that is not in "
                             f"its segments_info in {str(json_path)!r}")
        cat = segments[sid]["category_id"]
        if cat not in index_of:
            raise ValueError(f"{op}: {str(json_path)!r}: segment {int(sid)} of {ann['file_name']!r} has "
                             f"category_id {cat} not in categories")
        seg_label[j] = index_of[cat]
        if isthing[index_of[cat]] and not segments[sid].get("iscrowd", 0):
            k += 1
            seg_instance[j] = k
    inverse = inverse.reshape(ids.shape)
    label_dtype = np.uint8 if ignore == 255 else np.uint16
    return seg_label[inverse].astype(label_dtype), seg_instance[inverse].astype(np.uint16)


# --------------------------------------------------------------------------- Cityscapes

# cityscapesScripts' helpers/labels.py: label id -> trainId for ids 0..33 (255 = ignored in training and
# evaluation). License plate has id -1 and never appears in a *_labelIds.png.
CITYSCAPES_TRAIN_IDS = (255, 255, 255, 255, 255, 255, 255, 0, 1, 255, 255, 2, 3, 4, 255, 255, 255, 5, 255, 6,
                        7, 8, 9, 10, 11, 12, 13, 14, 15, 255, 255, 16, 17, 18)
CITYSCAPES_CLASSES = ("road", "sidewalk", "building", "wall", "fence", "pole", "traffic light", "traffic sign",
                      "vegetation", "terrain", "sky", "person", "rider", "car", "truck", "bus", "train",
                      "motorcycle", "bicycle")
CITYSCAPES_COLORS = ((128, 64, 128), (244, 35, 232), (70, 70, 70), (102, 102, 156), (190, 153, 153),
                     (153, 153, 153), (250, 170, 30), (220, 220, 0), (107, 142, 35), (152, 251, 152),
                     (70, 130, 180), (220, 20, 60), (255, 0, 0), (0, 0, 142), (0, 0, 70), (0, 60, 100),
                     (0, 80, 100), (0, 0, 230), (119, 11, 32))
CITYSCAPES_THINGS = tuple(k >= 11 for k in range(19))     # person .. bicycle have instances


def _read_index_png(path: Path, op: str) -> np.ndarray:
    """A single-channel PNG (8 or 16 bit, or 32-bit 'I') as ``(H, W)`` int64, with a one-line error naming the file."""
    path = _need_file(path, op, "label file")
    try:
        with _pil().open(path) as im:
            im.load()
            if im.mode not in ("L", "P", "I", "I;16"):
                raise ValueError(f"expected a single-channel PNG, got mode {im.mode}")
            return np.asarray(im, dtype=np.int64)
    except (OSError, SyntaxError, ValueError) as err:
        raise ValueError(f"{op}: {str(path)!r} is corrupt or not a label image: {err}") from None


def cityscapes_labels(label_ids: np.ndarray, instance_ids: np.ndarray, path="labels", op="cityscapes_labels"):
    """Map Cityscapes label ids to the 19 train ids (255 ignore) and renumber instances ``1..k``.

    Parameters
    ----------
    label_ids : array of int, shape (H, W)
        A ``*_gtFine_labelIds.png``: ids 0..33 of cityscapesScripts' table.
    instance_ids : array of int, shape (H, W)
        A ``*_gtFine_instanceIds.png``: ``id * 1000 + i`` for each object of a class with
        instances, the plain label id (< 1000) elsewhere (a thing class there is a crowd group).

    Returns
    -------
    labels : ndarray of uint8, shape (H, W)
    instances : ndarray of uint16, shape (H, W)
        0 for stuff and crowd, ``1..k`` for the objects of a thing class (ordered by their id).
    """
    bad = np.unique(label_ids[(label_ids < 0) | (label_ids >= len(CITYSCAPES_TRAIN_IDS))])
    if bad.size:
        raise ValueError(f"{op}: {str(path)!r} has label id {int(bad[0])} not in the Cityscapes table "
                         f"(expected 0..{len(CITYSCAPES_TRAIN_IDS) - 1})")
    labels = np.asarray(CITYSCAPES_TRAIN_IDS, dtype=np.uint8)[label_ids]          # (H, W) train ids
    things = np.asarray(CITYSCAPES_THINGS + (False,) * 237)                      # (256,), 255 -> False
    objects = (instance_ids >= 1000) & things[labels]
    ids, inverse = np.unique(np.where(objects, instance_ids, 0), return_inverse=True)
    renumber = np.arange(ids.size) + (ids[0] != 0)                               # id 0 (none) stays 0, objects 1..k
    return labels, renumber[inverse.reshape(labels.shape)].astype(np.uint16)


def prepare_cityscapes(root, out, size: int = 128, splits=("train", "val"), limit: int | None = None,
                       overwrite: bool = False, show_progress: bool = True) -> Path:
    """Convert Cityscapes fine annotations into a minseg dataset (19 train ids, instances of the 8 thing classes).

    Parameters
    ----------
    root : str or Path
        Holds ``leftImg8bit/<split>/<city>/<stem>_leftImg8bit.png`` and
        ``gtFine/<split>/<city>/<stem>_gtFine_labelIds.png`` and ``..._instanceIds.png``.
    out : str or Path
    size : int, default 128
        Images become ``size x size`` (``fit_to_square``: the 2:1 frames are padded with ignore).
    splits : sequence of str
        Cityscapes' ``train`` and ``val`` (test labels are not public).
    limit : int, optional
        Keep the first ``limit`` images (sorted by name) of each split.
    overwrite, show_progress : bool

    Returns
    -------
    Path
        ``out``.
    """
    op = "prepare_cityscapes"
    _check_size(size, op)
    out = _check_out(out, overwrite, op)
    root = _need_dir(Path(root).expanduser(), op, "Cityscapes root")
    arrays = {}
    for split in splits:
        img_dir = _need_dir(root / "leftImg8bit" / split, op, "leftImg8bit/" + split)
        gt_dir = _need_dir(root / "gtFine" / split, op, "gtFine/" + split)
        images = sorted(img_dir.glob("*/*_leftImg8bit.png"))[:limit]
        if not images:
            raise ValueError(f"{op}: {str(img_dir)!r} has no <city>/*_leftImg8bit.png images")
        samples = []
        for image_path in progress(images, total=len(images), desc=f"Cityscapes {split}", enable=show_progress):
            stem = image_path.name[:-len("_leftImg8bit.png")]
            city = image_path.parent.name
            label_path = gt_dir / city / f"{stem}_gtFine_labelIds.png"
            inst_path = gt_dir / city / f"{stem}_gtFine_instanceIds.png"
            if not label_path.is_file():
                raise FileNotFoundError(f"{op}: image {str(image_path)!r} has no mask: expected {str(label_path)!r}")
            image = read_image(image_path, op)
            label_ids = _read_index_png(label_path, op)
            _check_same_size(image, label_ids, image_path, label_path, op)
            inst_ids = _read_index_png(inst_path, op) if inst_path.is_file() else label_ids
            _check_same_size(image, inst_ids, image_path, inst_path, op)
            labels, instances = cityscapes_labels(label_ids, inst_ids, label_path, op)
            samples.append(fit_to_square(image, labels, instances, size))
        arrays[split] = _stack(samples)
    meta = {"name": "cityscapes", "class_names": list(CITYSCAPES_CLASSES), "palette": [list(c) for c in CITYSCAPES_COLORS],
            "things": list(CITYSCAPES_THINGS), "ignore_index": 255, "has_instances": True,
            "source": f"Cityscapes gtFine from {str(root)!r}, fit_to_square({size})", "version": 1}
    return write_dataset(out, meta, arrays, overwrite=overwrite)


# --------------------------------------------------------------------------- a folder of one's own images

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")


def read_classes(path, op: str = "read_classes"):
    """Read a classes file: one class per line, in label order, optionally with its mask colour.

    Each non-blank line that does not start with ``#`` is ``name`` or
    ``name R G B`` (three ints 0..255, the colour of that class in colour
    mask PNGs); a name may hold spaces (``traffic light 250 170 30``). Line
    ``k`` (counting classes only) is label ``k``. Either every class has a
    colour or none has.

    Parameters
    ----------
    path : str or Path

    Returns
    -------
    names : list of str, length K
    colours : ndarray of uint8, shape (K, 3), or None
        None when the file gives no colours.

    Raises
    ------
    FileNotFoundError, ValueError
        A missing file, an empty one, a duplicate name or colour, colours on
        some lines only (the message names the file and the line).
    """
    path = _need_file(Path(path).expanduser(), op, "classes file")
    names, colours = [], []
    for lineno, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        text = line.strip()
        if not text or text.startswith("#"):
            continue
        parts = text.split()
        colour = None
        if len(parts) >= 4 and all(p.isdigit() for p in parts[-3:]):
            colour = tuple(int(p) for p in parts[-3:])
            if max(colour) > 255:
                raise ValueError(f"{op}: {str(path)!r} line {lineno}: expected colour values in 0..255, "
                                 f"got {colour}")
            text = " ".join(parts[:-3])
        if text in names:
            raise ValueError(f"{op}: {str(path)!r} line {lineno}: class {text!r} is listed twice")
        if colour is not None and colour in colours:
            raise ValueError(f"{op}: {str(path)!r} line {lineno}: colour {colour} is already class "
                             f"{names[colours.index(colour)]!r}")
        if colours and (colour is None) != (colours[0] is None):
            raise ValueError(f"{op}: {str(path)!r} line {lineno}: expected every class to have a colour "
                             "(name R G B) or none to, got a mix")
        names.append(text)
        colours.append(colour)
    if not names:
        raise ValueError(f"{op}: {str(path)!r} lists no classes; expected one class name per line")
    if len(names) > 255:
        raise ValueError(f"{op}: {str(path)!r} lists {len(names)} classes; expected at most 255 "
                         "(255 is the ignore label)")
    return names, (None if colours[0] is None else np.asarray(colours, dtype=np.uint8))


def _files_by_stem(directory: Path, op: str, what: str) -> dict:
    """``{stem: path}`` of the image files in ``directory`` (hidden and non-image files skipped)."""
    found = {}
    for path in sorted(directory.iterdir()):
        if path.name.startswith(".") or not path.is_file() or path.suffix.lower() not in IMAGE_SUFFIXES:
            continue
        if path.stem in found:
            raise ValueError(f"{op}: {what} {str(path)!r} and {str(found[path.stem])!r} have the same name; "
                             "expected one file per name")
        found[path.stem] = path
    if not found:
        raise ValueError(f"{op}: {what} directory {str(directory)!r} holds no image files "
                         f"(expected {', '.join(IMAGE_SUFFIXES)})")
    return found


def _pair_files(images_dir: Path, masks_dir: Path, op: str) -> list:
    """``[(image_path, mask_path)]`` sorted by name; every image must have a mask of the same name and back."""
    images = _files_by_stem(images_dir, op, "image")
    masks = _files_by_stem(masks_dir, op, "mask")
    for stem, image_path in images.items():
        if stem not in masks:
            raise FileNotFoundError(f"{op}: image {str(image_path)!r} has no mask: expected "
                                    f"{str(masks_dir / (stem + '.png'))!r}")
    for stem, mask_path in masks.items():
        if stem not in images:
            raise FileNotFoundError(f"{op}: mask {str(mask_path)!r} has no image of the same name in "
                                    f"{str(images_dir)!r}")
    return [(images[s], masks[s]) for s in sorted(images)]


def _read_folder_mask(path: Path, palette, op: str) -> np.ndarray:
    """A mask as ``(H, W)`` int64: through the palette when given, else an index PNG read as is."""
    if palette is not None:
        return read_mask(path, palette, op).astype(np.int64)
    path = _need_file(path, op, "mask file")
    try:
        with _pil().open(path) as im:
            im.load()
            mode = im.mode
            mask = np.asarray(im, dtype=np.int64) if mode in ("P", "L", "I;16", "I", "1") else None
    except (OSError, SyntaxError, ValueError) as err:
        raise ValueError(f"{op}: {str(path)!r} is corrupt or not an image: {err}") from None
    if mask is None:
        raise ValueError(f"{op}: mask {str(path)!r} is a colour ({mode}) PNG; expected an index PNG "
                         "(one class id per pixel), or pass a classes file with a colour per class "
                         "(--classes, lines 'name R G B')")
    return mask


def _split_indices(n: int, val_fraction: float, seed: int):
    """Train and val indices: a seeded shuffle, ``round(n * val_fraction)`` to val (>= 1 when the fraction > 0)."""
    n_val = int(round(n * val_fraction))
    if val_fraction > 0:
        n_val = max(n_val, 1)
    order = np.random.default_rng(seed).permutation(n)
    return np.sort(order[n_val:]), np.sort(order[:n_val])


def prepare_folder(images, masks, out, classes=None, size: int | None = 128, val_fraction: float = 0.2,
                   seed: int = 0, overwrite: bool = False, show_progress: bool = True) -> Path:
    """Convert a folder of images and a folder of label PNGs into a minseg dataset.

    ``images/<name>.<jpg|png|...>`` is paired with ``masks/<name>.png`` (any
    image suffix; the names must match one to one). A mask is either

    - an index PNG (greyscale ``L``, 16-bit, or palette ``P`` mode): each
      pixel holds its class id ``0..K-1``, 255 = ignore (VOID); or
    - a colour PNG (RGB): each pixel holds its class's colour, given in the
      classes file (``name R G B`` per line; with names only, PASCAL VOC's
      colours ``make_palette(K)``); VOC's void cream ``(224, 224, 192)``
      is ignore. A colour in no class is refused.

    Parameters
    ----------
    images, masks : str or Path
        The two directories.
    out : str or Path
        The dataset directory to write (atomically: all of it or nothing).
    classes : str or Path, optional
        A classes file (see ``read_classes``). Without it the masks must be
        index PNGs, K is the largest id + 1 and the classes are named
        ``class_0 .. class_{K-1}``.
    size : int or None, default 128
        Every image becomes ``size x size`` (``fit_to_square``: the longer
        side scaled to ``size``, the rest padded with ignore). None keeps the
        native size, which all images must then share.
    val_fraction : float in [0, 1), default 0.2
        The share of images (a seeded shuffle, at least one when > 0) that
        becomes the ``val`` split; the rest is ``train``.
    seed : int, default 0
        Seed of that shuffle.
    overwrite, show_progress : bool

    Returns
    -------
    Path
        ``out``. Every class is stuff and ``has_instances`` is false: label
        PNGs hold no instance ids.

    Raises
    ------
    FileNotFoundError
        A missing directory, an image without a mask or a mask without an image.
    ValueError
        An unreadable file, an image and mask of different sizes, a label
        value or colour outside the classes (each names the file).
    """
    op = "prepare_folder"
    _check_size(size, op)
    if not (isinstance(val_fraction, (int, float)) and not isinstance(val_fraction, bool)
            and 0 <= val_fraction < 1):
        raise ValueError(f"{op}: expected val_fraction in [0, 1), got {val_fraction!r}")
    out = _check_out(out, overwrite, op)
    images_dir = _need_dir(Path(images).expanduser(), op, "images")
    masks_dir = _need_dir(Path(masks).expanduser(), op, "masks")
    pairs = _pair_files(images_dir, masks_dir, op)
    names, palette = (None, None)
    if classes is not None:
        names, palette = read_classes(classes, op)
        if palette is None:
            palette = make_palette(len(names))

    samples, first = [], None
    for image_path, mask_path in progress(pairs, total=len(pairs), desc="folder", enable=show_progress):
        image = read_image(image_path, op)                               # (3, H, W) uint8
        labels = _read_folder_mask(mask_path, palette, op)               # (H, W) int64
        _check_same_size(image, labels, image_path, mask_path, op)
        if labels.size and labels.min() < 0:
            raise ValueError(f"{op}: mask {str(mask_path)!r} has label {int(labels.min())}; expected ids >= 0")
        if size is None:
            first = first or (image_path, image.shape[1:])
            if image.shape[1:] != first[1]:
                raise ValueError(f"{op}: image {str(image_path)!r} is {image.shape[1]}x{image.shape[2]} but "
                                 f"{str(first[0])!r} is {first[1][0]}x{first[1][1]}; expected one size, or "
                                 "pass size (--size) to bring them all to size x size")
        else:
            image, labels, _ = fit_to_square(image, labels, None, size)
        samples.append((image, labels, mask_path))

    if names is None:
        top = max(int(np.max(lab, initial=0, where=lab != 255)) for _, lab, _ in samples)
        names = [f"class_{k}" for k in range(top + 1)]
        palette = make_palette(len(names))
        if len(names) > 255:
            worst = next(p for _, lab, p in samples if np.any((lab > 254) & (lab != 255)))
            raise ValueError(f"{op}: mask {str(worst)!r} has label ids above 254; expected 0..254 "
                             "(255 is ignore)")
    K = len(names)
    train_idx, val_idx = _split_indices(len(samples), val_fraction, seed)
    if train_idx.size == 0:
        raise ValueError(f"{op}: {len(samples)} image(s) with val_fraction={val_fraction} leave none to "
                         "train on; expected a smaller val_fraction or more images")
    images_arr = np.stack([s[0] for s in samples])                       # (N, 3, S, S)
    labels_arr = np.stack([s[1] for s in samples]).astype(np.uint8)     # (N, S, S), ids < 255 or 255
    instances_arr = np.zeros(labels_arr.shape, dtype=np.uint8)         # (N, S, S), no instances
    arrays = {"train": (images_arr[train_idx], labels_arr[train_idx], instances_arr[train_idx])}
    if val_idx.size:
        arrays["val"] = (images_arr[val_idx], labels_arr[val_idx], instances_arr[val_idx])
    meta = {"name": out.name, "class_names": list(names), "palette": np.asarray(palette).tolist(),
            "things": [False] * K, "ignore_index": 255, "has_instances": False,
            "files": {"train": [pairs[i][0].name for i in train_idx], "val": [pairs[i][0].name for i in val_idx]},
            "source": f"images {str(images_dir)!r}, masks {str(masks_dir)!r}"
                      + (f", fit_to_square({size})" if size else ", native size")
                      + f", val_fraction {val_fraction}, seed {seed}", "version": 1}
    return write_dataset(out, meta, arrays, overwrite=overwrite)

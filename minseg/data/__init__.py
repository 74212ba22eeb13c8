"""Datasets for minseg: built-in ones that need no download, joint transforms, mini-batches.

Quick start::

    from minseg import data
    data.list_datasets()                      # ['shapes', 'digits', 'coins', ...]
    train = data.load_dataset("shapes", "train")
    train.images.shape, train.labels.shape    # (1000, 3, 64, 64) float32, (1000, 64, 64) int64
    augment = data.Compose([data.RandomScale((0.75, 1.25)), data.RandomCrop(56), data.RandomFlip()])
    for batch in data.batches(train, 32, seed=epoch, transform=augment):
        ...

Built-in datasets (made from a seed on first use, a few seconds, then cached
in ``$MINSEG_DATA`` or ``~/.cache/minseg``):

========  ======================  ==============  ==============================================
name      images                  train/val/test  classes
========  ======================  ==============  ==============================================
shapes    (3, 64, 64) RGB         1000/200/200    background; circle, square, triangle, cross
digits    (1, 64, 64) grey        1000/200/200    background; digits 0..9 (class = digit + 1)
coins     (1, 64, 64) photo crop  147/42/42       background; coin
========  ======================  ==============  ==============================================

``shapes`` is built so that colour does not tell the class (a per-pixel
classifier must fail where a network with context succeeds); ``digits``
composites scikit-learn's bundled handwritten digits; ``coins`` is a real
photograph bundled with scikit-image, with a computed mask (see
``minseg.data.photo``). ``load_digits_classification`` gives the plain
10-class digits for pretraining a backbone.

On-disk format
--------------
One directory per dataset::

    <dataset>/meta.json     name, class_names, palette, things, ignore_index,
                            has_instances, splits {name: N}, provenance
    <dataset>/<split>.npz   images (N, C, H, W) uint8 (or float32 in [0, 1]),
                            labels (N, H, W) unsigned ints, 255 = ignore,
                            instances (N, H, W) unsigned ints, 0 = none

``load_dataset`` returns images as float32 in [0, 1], labels as int64 and
instances as int32. Labels are class ids ``0..K-1`` or ``ignore_index``
(255: object boundaries, padding, VOID). A pixel's panoptic segment is
``(label, instance)``: stuff has instance 0; every thing has its own id
``1..k`` within its image; a thing-class pixel with instance 0 is a crowd
region (COCO ``iscrowd``). ``write_dataset`` writes this format atomically
(temporary directory, then rename), which is what ``data_scripts/`` use to
turn PASCAL VOC 2012, ISBI 2012 and COCO panoptic into minseg datasets.

NumPy is the only dependency to import this package; making ``digits``
needs scikit-learn, ``coins`` scikit-image, and the converters Pillow
(and tifffile for ISBI when present): ``pip install minseg[lessons]``.
"""
from .formats import (Dataset, check_arrays, make_palette, progress, read_meta, read_split,
                      write_dataset)
from .loader import Batch, Batches, batches
from .registry import (BUILTINS, builtin_path, data_home, list_datasets, load_dataset, load_splits,
                       prepare_builtin)
from .synthetic import (DIGITS_CLASSES, SHAPES_CLASSES, ClassificationSet, boundary_band,
                        load_digits_classification, make_digits, make_shapes)
from .transforms import (CenterCrop, Compose, Normalize, RandomCrop, RandomFlip, RandomScale,
                         channel_stats, fit_to_square, resize_bilinear, resize_nearest)

__all__ = [
    # datasets
    "Dataset", "list_datasets", "load_dataset", "load_splits", "data_home", "builtin_path",
    "prepare_builtin", "BUILTINS", "SHAPES_CLASSES", "DIGITS_CLASSES", "make_shapes", "make_digits",
    "boundary_band", "ClassificationSet", "load_digits_classification",
    # on-disk format
    "read_meta", "read_split", "write_dataset", "check_arrays", "make_palette", "progress",
    # batches and transforms
    "Batch", "Batches", "batches", "RandomCrop", "CenterCrop", "RandomFlip", "RandomScale", "Normalize",
    "Compose", "channel_stats", "resize_bilinear", "resize_nearest", "fit_to_square",
]

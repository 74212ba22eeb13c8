"""Mini-batches: shuffle with a seed, transform each sample, stack.

::

    for epoch in range(10):
        for batch in batches(train, 16, seed=epoch, transform=augment):
            ...   # batch.images (B, C, h, w) float32, batch.labels (B, h, w) int64

One ``numpy.random.Generator`` made from ``seed`` draws the order and then
every transform's random parameters, so a seed fixes the whole epoch:
the same seed gives the same batches, byte for byte.
"""
from __future__ import annotations

from typing import NamedTuple

import numpy as np

from .formats import Dataset

__all__ = ["Batch", "Batches", "batches"]


class Batch(NamedTuple):
    """One mini-batch.

    Attributes
    ----------
    images : ndarray of float32, shape (B, C, H, W)
    labels : ndarray of int64, shape (B, H, W)
    instances : ndarray of int32, shape (B, H, W)
    index : ndarray of int64, shape (B,)
        Which samples of the dataset these are.
    """

    images: np.ndarray
    labels: np.ndarray
    instances: np.ndarray
    index: np.ndarray


class Batches:
    """An iterable of ``Batch`` es with a length, so progress bars know the total.

    Iterating twice gives the same batches (the seed is fixed): pass a new
    ``seed`` per epoch for a new order. See ``batches``.
    """

    def __init__(self, dataset, batch_size, shuffle=True, seed=0, transform=None, drop_last=False):
        if not isinstance(dataset, Dataset):
            raise TypeError(f"batches: expected dataset to be a minseg.data.Dataset, got {type(dataset).__name__}")
        if not isinstance(batch_size, (int, np.integer)) or isinstance(batch_size, bool) or batch_size < 1:
            raise ValueError(f"batches: expected batch_size to be an int >= 1, got {batch_size!r}")
        if transform is not None and not callable(transform):
            raise TypeError(f"batches: expected transform to be callable or None, got {type(transform).__name__}")
        self.dataset = dataset
        self.batch_size = int(batch_size)
        self.shuffle = bool(shuffle)
        self.seed = seed
        self.transform = transform
        self.drop_last = bool(drop_last)

    def __len__(self) -> int:
        N, B = len(self.dataset), self.batch_size
        return N // B if self.drop_last else -(-N // B)

    def __iter__(self):
        rng = np.random.default_rng(self.seed)
        N, B = len(self.dataset), self.batch_size
        order = rng.permutation(N) if self.shuffle else np.arange(N)
        for b in range(len(self)):
            index = order[b * B:(b + 1) * B]                     # (B,), the last one may be shorter
            yield self._collate(index, rng)

    def _collate(self, index, rng) -> Batch:
        ds = self.dataset
        if self.transform is None:
            return Batch(ds.images[index], ds.labels[index], ds.instances[index], index.astype(np.int64))
        images, labels, instances = [], [], []
        for i in index:
            image, lab, inst = self.transform(ds.images[i], ds.labels[i], ds.instances[i], rng=rng)
            images.append(image)
            labels.append(lab)
            instances.append(inst)
        shapes = {im.shape for im in images}
        if len(shapes) > 1:
            raise ValueError(f"batches: transform {self.transform!r} gave images of different shapes "
                             f"{sorted(shapes)} in one batch; end it with RandomCrop or CenterCrop to a fixed size")
        return Batch(np.stack(images).astype(np.float32, copy=False), np.stack(labels).astype(np.int64, copy=False),
                     np.stack(instances).astype(np.int32, copy=False), index.astype(np.int64))


def batches(dataset: Dataset, batch_size: int, shuffle: bool = True, seed=0, transform=None,
            drop_last: bool = False) -> Batches:
    """Iterate over ``dataset`` in mini-batches.

    Parameters
    ----------
    dataset : Dataset
    batch_size : int >= 1
    shuffle : bool, default True
        Visit samples in a random order drawn from ``seed`` (else in order).
    seed : int or sequence of int, default 0
        Fixes the order and every random transform; use e.g. the epoch number.
    transform : callable, optional
        ``image, labels, instances = transform(image, labels, instances, rng=rng)``
        per sample, e.g. ``Compose([RandomScale((0.75, 1.25)), RandomCrop(48), RandomFlip()])``.
    drop_last : bool, default False
        Drop a last batch smaller than ``batch_size``.

    Returns
    -------
    Batches
        Iterable of ``Batch(images (B, C, H, W), labels (B, H, W), instances (B, H, W), index (B,))``
        with ``len()`` = number of batches.
    """
    return Batches(dataset, batch_size, shuffle, seed, transform, drop_last)

"""Joint transforms: the same random crop, flip or scale applied to an image and its labels.

A segmentation sample is an image ``(C, H, W)`` with a label map ``(H, W)``
and an instance map ``(H, W)``. Geometry must change all three identically,
so every random transform here draws its parameters **once** from the
``rng`` it is given and applies them to all three. Images are resized with
bilinear interpolation; label and instance maps with nearest-neighbour only:
interpolating labels would invent classes (the mean of "cat" = 8 and
"chair" = 10 is "cow" = 9) and blur instance ids.

Every transform is a callable::

    image, labels, instances = transform(image, labels, instances, rng=rng)

``instances`` may be ``None`` (it is then returned as ``None``). ``rng`` is a
``numpy.random.Generator``; passing it explicitly makes a pipeline
reproducible: the same seed gives the same crops and flips.

The resize functions are plain NumPy with PyTorch's conventions
(``align_corners=False``), written as two small matrix products because
bilinear interpolation is separable: ``Y = A_h X A_w^T``.
"""
from __future__ import annotations

import numbers

import numpy as np

from ..backend import pad_to

__all__ = [
    "bilinear_matrix",
    "nearest_index",
    "resize_bilinear",
    "resize_nearest",
    "fit_to_square",
    "RandomCrop",
    "CenterCrop",
    "RandomFlip",
    "RandomScale",
    "Normalize",
    "Compose",
    "channel_stats",
]


# --------------------------------------------------------------------------- resizing

def bilinear_matrix(size_in: int, size_out: int) -> np.ndarray:
    """The ``(size_out, size_in)`` matrix of 1-D linear interpolation, ``align_corners=False``.

    For output index ``j``::

        src = max((j + 0.5) * size_in / size_out - 0.5, 0)
        i0 = floor(src),  i1 = min(i0 + 1, size_in - 1),  lam = src - i0
        y[j] = (1 - lam) x[i0] + lam x[i1]

    which is PyTorch's ``F.interpolate(mode="bilinear", align_corners=False)``
    along one axis (``antialias=False``: shrinking does not average).

    Parameters
    ----------
    size_in, size_out : int
        Both >= 1.

    Returns
    -------
    A : ndarray of float64, shape (size_out, size_in)
        Each row sums to 1.
    """
    j = np.arange(size_out, dtype=np.float64)
    src = np.maximum((j + 0.5) * size_in / size_out - 0.5, 0.0)
    i0 = np.floor(src).astype(np.int64)
    i0 = np.minimum(i0, size_in - 1)
    i1 = np.minimum(i0 + 1, size_in - 1)
    lam = src - i0
    A = np.zeros((size_out, size_in))
    rows = np.arange(size_out)
    np.add.at(A, (rows, i0), 1.0 - lam)   # i0 == i1 at the last column: weights add to 1
    np.add.at(A, (rows, i1), lam)
    return A


def nearest_index(size_in: int, size_out: int) -> np.ndarray:
    """Source indices of nearest-neighbour resizing, centre-aligned.

    ``i[j] = min(floor((j + 0.5) * size_in / size_out), size_in - 1)``: the
    input pixel whose area contains the centre of output pixel ``j``. This is
    PyTorch's ``mode="nearest-exact"`` (its plain ``"nearest"`` uses
    ``floor(j * size_in / size_out)`` and shifts the map by up to a pixel).

    Returns
    -------
    ndarray of int64, shape (size_out,)
    """
    j = np.arange(size_out, dtype=np.float64)
    return np.minimum(np.floor((j + 0.5) * size_in / size_out).astype(np.int64), size_in - 1)


def _check_size(size, name: str, op: str) -> tuple[int, int]:
    if isinstance(size, numbers.Integral) and not isinstance(size, bool):
        size = (int(size), int(size))
    if (not isinstance(size, (tuple, list)) or len(size) != 2
            or not all(isinstance(s, numbers.Integral) and not isinstance(s, bool) for s in size)):
        raise TypeError(f"{op}: expected {name} to be an int or a pair of ints (H, W), got {size!r}")
    if min(size) < 1:
        raise ValueError(f"{op}: expected {name} >= 1, got {tuple(size)}")
    return int(size[0]), int(size[1])


def resize_bilinear(image: np.ndarray, size) -> np.ndarray:
    """Resize an image ``(C, H, W)`` or ``(H, W)`` to ``size`` with bilinear interpolation.

    ``Y[c] = A_h X[c] A_w^T`` with ``A = bilinear_matrix(...)`` per axis.
    The output keeps a floating input's dtype; an integer image is returned
    as float32.

    Parameters
    ----------
    image : ndarray, shape (C, H, W) or (H, W)
    size : int or (H_out, W_out)

    Returns
    -------
    ndarray, shape (C, H_out, W_out) or (H_out, W_out)
    """
    H_out, W_out = _check_size(size, "size", "resize_bilinear")
    if not isinstance(image, np.ndarray) or image.ndim not in (2, 3):
        raise ValueError("resize_bilinear: expected image of shape (C, H, W) or (H, W), "
                         f"got {_describe(image)}")
    H, W = image.shape[-2:]
    dtype = image.dtype if image.dtype.kind == "f" else np.float32
    A_h = bilinear_matrix(H, H_out)                        # (H_out, H)
    A_w = bilinear_matrix(W, W_out)                        # (W_out, W)
    out = A_h @ image.astype(np.float64) @ A_w.T           # (..., H_out, W_out), broadcast over C
    return out.astype(dtype, copy=False)


def resize_nearest(labels: np.ndarray, size) -> np.ndarray:
    """Resize a label or instance map ``(H, W)`` (or ``(C, H, W)``) with nearest-neighbour.

    Values are copied, never mixed, so class ids and ``ignore_index`` survive.

    Parameters
    ----------
    labels : ndarray, shape (H, W) or (C, H, W)
    size : int or (H_out, W_out)

    Returns
    -------
    ndarray, same dtype, shape (H_out, W_out) or (C, H_out, W_out)
    """
    H_out, W_out = _check_size(size, "size", "resize_nearest")
    if not isinstance(labels, np.ndarray) or labels.ndim not in (2, 3):
        raise ValueError("resize_nearest: expected labels of shape (H, W) or (C, H, W), "
                         f"got {_describe(labels)}")
    H, W = labels.shape[-2:]
    rows = nearest_index(H, H_out)
    cols = nearest_index(W, W_out)
    return labels[..., rows[:, None], cols[None, :]]


def fit_to_square(image, labels, instances, size: int, ignore_index: int = 255):
    """Scale the longer side to ``size``, then pad bottom and right to ``size x size``.

    How ``data_scripts`` bring photographs of different sizes to one array:
    nothing is cropped away, the image is padded with 0 and the labels with
    ``ignore_index`` (so the padding never counts in a loss or a metric), the
    instances with 0.

    Parameters
    ----------
    image : ndarray, shape (C, H, W)
    labels : ndarray, shape (H, W)
    instances : ndarray, shape (H, W), or None
    size : int

    Returns
    -------
    image (C, size, size), labels (size, size), instances (size, size) or None
        Same dtypes as given (a uint8 image is rounded back to uint8).
    """
    C, H, W = image.shape
    scale = size / max(H, W)
    H_new, W_new = max(1, round(H * scale)), max(1, round(W * scale))
    if (H_new, W_new) != (H, W):
        resized = resize_bilinear(image, (H_new, W_new))
        if image.dtype == np.uint8:
            resized = np.clip(np.rint(resized), 0, 255).astype(np.uint8)
        image = resized
        labels = resize_nearest(labels, (H_new, W_new))
        if instances is not None:
            instances = resize_nearest(instances, (H_new, W_new))
    out_image = np.zeros((C, size, size), dtype=image.dtype)
    out_image[:, :H_new, :W_new] = image
    out_labels = np.full((size, size), ignore_index, dtype=labels.dtype)
    out_labels[:H_new, :W_new] = labels
    out_instances = None
    if instances is not None:
        out_instances = np.zeros((size, size), dtype=instances.dtype)
        out_instances[:H_new, :W_new] = instances
    return out_image, out_labels, out_instances


def _describe(x) -> str:
    if isinstance(x, np.ndarray):
        return f"shape {tuple(x.shape)}"
    return f"{type(x).__name__}"


# --------------------------------------------------------------------------- joint transforms

def _check_sample(image, labels, instances, op: str):
    if not isinstance(image, np.ndarray) or image.ndim != 3:
        raise ValueError(f"{op}: expected image of shape (C, H, W), got {_describe(image)}")
    if not isinstance(labels, np.ndarray) or labels.shape != image.shape[1:]:
        raise ValueError(f"{op}: expected labels of shape {tuple(image.shape[1:])} (the image's H, W), "
                         f"got {_describe(labels)}")
    if instances is not None and (not isinstance(instances, np.ndarray) or instances.shape != labels.shape):
        raise ValueError(f"{op}: expected instances of shape {tuple(labels.shape)} or None, "
                         f"got {_describe(instances)}")


def _check_rng(rng, op: str) -> np.random.Generator:
    if not isinstance(rng, np.random.Generator):
        raise TypeError(f"{op}: expected rng to be a numpy.random.Generator "
                        f"(e.g. np.random.default_rng(0)), got {type(rng).__name__}")
    return rng


class RandomCrop:
    """Crop the same random ``(h, w)`` window out of image, labels and instances.

    A sample smaller than the window is first padded (bottom and right):
    image with 0, labels with ``ignore_index``, instances with 0, so padding
    never counts in the loss.

    Parameters
    ----------
    size : int or (h, w)
    ignore_index : int, default 255
    """

    def __init__(self, size, ignore_index: int = 255):
        self.size = _check_size(size, "size", "RandomCrop")
        self.ignore_index = ignore_index

    def __call__(self, image, labels, instances=None, *, rng):
        _check_sample(image, labels, instances, "RandomCrop")
        _check_rng(rng, "RandomCrop")
        image, labels, instances = _pad_to(image, labels, instances, self.size, self.ignore_index)
        h, w = self.size
        _, H, W = image.shape
        top = int(rng.integers(0, H - h + 1))
        left = int(rng.integers(0, W - w + 1))
        window = (slice(top, top + h), slice(left, left + w))
        return (image[(slice(None),) + window], labels[window],
                None if instances is None else instances[window])

    def __repr__(self):
        return f"RandomCrop(size={self.size}, ignore_index={self.ignore_index})"


class CenterCrop:
    """Crop the central ``(h, w)`` window (padding first when smaller); deterministic, ``rng`` unused."""

    def __init__(self, size, ignore_index: int = 255):
        self.size = _check_size(size, "size", "CenterCrop")
        self.ignore_index = ignore_index

    def __call__(self, image, labels, instances=None, *, rng=None):
        _check_sample(image, labels, instances, "CenterCrop")
        image, labels, instances = _pad_to(image, labels, instances, self.size, self.ignore_index)
        h, w = self.size
        _, H, W = image.shape
        top, left = (H - h) // 2, (W - w) // 2
        window = (slice(top, top + h), slice(left, left + w))
        return (image[(slice(None),) + window], labels[window],
                None if instances is None else instances[window])

    def __repr__(self):
        return f"CenterCrop(size={self.size}, ignore_index={self.ignore_index})"


def _pad_to(image, labels, instances, size, ignore_index):
    """Pad bottom/right so that H >= size[0] and W >= size[1]; image 0, labels ignore, instances 0."""
    h, w = size
    _, H, W = image.shape
    pad_h, pad_w = max(0, h - H), max(0, w - W)
    if pad_h == 0 and pad_w == 0:
        return image, labels, instances
    H, W = H + pad_h, W + pad_w
    image, labels = pad_to(image, H, W), pad_to(labels, H, W, value=ignore_index)
    return image, labels, None if instances is None else pad_to(instances, H, W)


class RandomFlip:
    """Mirror image, labels and instances left-right with probability ``p`` (one coin for all three).

    Parameters
    ----------
    p : float in [0, 1], default 0.5
    vertical : bool, default False
        Flip top-bottom instead (with its own probability ``p``) when True.
    """

    def __init__(self, p: float = 0.5, vertical: bool = False):
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"RandomFlip: expected p in [0, 1], got {p}")
        self.p = float(p)
        self.vertical = bool(vertical)

    def __call__(self, image, labels, instances=None, *, rng):
        _check_sample(image, labels, instances, "RandomFlip")
        _check_rng(rng, "RandomFlip")
        if rng.random() >= self.p:
            return image, labels, instances
        axis = -2 if self.vertical else -1
        flip = lambda a: None if a is None else np.flip(a, axis=axis).copy()  # noqa: E731
        return flip(image), flip(labels), flip(instances)

    def __repr__(self):
        return f"RandomFlip(p={self.p}, vertical={self.vertical})"


class RandomScale:
    """Rescale by a factor drawn uniformly from ``scale_range``: bilinear image, nearest labels.

    The output size is ``round(H * s), round(W * s)``, so samples of one batch
    differ in size: follow it with ``RandomCrop`` to get a fixed size (the
    DeepLab-style "random scale, then crop" augmentation).

    Parameters
    ----------
    scale_range : (low, high), 0 < low <= high
    """

    def __init__(self, scale_range=(0.75, 1.25)):
        try:
            low, high = (float(s) for s in scale_range)
        except (TypeError, ValueError):
            raise TypeError(f"RandomScale: expected scale_range to be a pair of numbers (low, high), "
                            f"got {scale_range!r}") from None
        if not 0.0 < low <= high:
            raise ValueError(f"RandomScale: expected 0 < low <= high in scale_range, got {scale_range!r}")
        self.scale_range = (low, high)

    def __call__(self, image, labels, instances=None, *, rng):
        _check_sample(image, labels, instances, "RandomScale")
        _check_rng(rng, "RandomScale")
        s = rng.uniform(*self.scale_range)
        _, H, W = image.shape
        size = (max(1, round(H * s)), max(1, round(W * s)))
        return (resize_bilinear(image, size), resize_nearest(labels, size),
                None if instances is None else resize_nearest(instances, size))

    def __repr__(self):
        return f"RandomScale(scale_range={self.scale_range})"


class Normalize:
    """Per-channel ``(x - mean) / std`` on the image; labels and instances pass through.

    Parameters
    ----------
    mean, std : sequence of float, length C (or a scalar for every channel)
        E.g. from ``channel_stats(train.images)``.
    """

    def __init__(self, mean, std):
        self.mean = np.atleast_1d(np.asarray(mean, dtype=np.float32))
        self.std = np.atleast_1d(np.asarray(std, dtype=np.float32))
        if self.mean.ndim != 1 or self.std.ndim != 1:
            raise ValueError(f"Normalize: expected mean and std to be scalars or 1-D sequences, "
                             f"got shapes {self.mean.shape} and {self.std.shape}")
        if np.any(self.std <= 0):
            raise ValueError(f"Normalize: expected std > 0, got {self.std.tolist()}")

    def __call__(self, image, labels, instances=None, *, rng=None):
        _check_sample(image, labels, instances, "Normalize")
        C = image.shape[0]
        for name, v in (("mean", self.mean), ("std", self.std)):
            if v.size not in (1, C):
                raise ValueError(f"Normalize: expected {name} with 1 or {C} entries (the image's C), got {v.size}")
        out = (image.astype(np.float32) - self.mean[:, None, None]) / self.std[:, None, None]
        return out, labels, instances

    def __repr__(self):
        return f"Normalize(mean={self.mean.tolist()}, std={self.std.tolist()})"


class Compose:
    """Apply transforms in order, all drawing from the same ``rng``."""

    def __init__(self, transforms):
        self.transforms = list(transforms)
        for t in self.transforms:
            if not callable(t):
                raise TypeError(f"Compose: expected callable transforms, got {type(t).__name__}")

    def __call__(self, image, labels, instances=None, *, rng=None):
        for t in self.transforms:
            image, labels, instances = t(image, labels, instances, rng=rng)
        return image, labels, instances

    def __repr__(self):
        inner = ", ".join(repr(t) for t in self.transforms)
        return f"Compose([{inner}])"


def channel_stats(images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel mean and standard deviation of ``images`` ``(N, C, H, W)``, for ``Normalize``.

    Returns
    -------
    mean, std : ndarray of float32, shape (C,)
    """
    if not isinstance(images, np.ndarray) or images.ndim != 4:
        raise ValueError(f"channel_stats: expected images of shape (N, C, H, W), got {_describe(images)}")
    x = images.astype(np.float64)
    return x.mean(axis=(0, 2, 3)).astype(np.float32), x.std(axis=(0, 2, 3)).astype(np.float32)

"""The built-in synthetic datasets, made from a seed: ``shapes`` and ``digits``.

**shapes** -- RGB ``64 x 64`` images of 2 to 4 overlapping, upright shapes
(circle, square, triangle, cross) on a smooth, noisy, darker background.
Colour does *not* give the class away: every shape's colour (any hue,
brighter than the ground), stripe texture and area are drawn from one
distribution, whatever its class. A per-pixel classifier (a 1x1
convolution) can tell *where* the shapes are, from brightness, but not
*which* they are; a network that sees the outline can tell a circle from a
square. A 1-pixel band on each side of every boundary between two segments
is ``ignore_index`` (255), like PASCAL VOC's void border.

**digits** -- greyscale ``64 x 64`` canvases with 2 or 3 of scikit-learn's
bundled 8x8 handwritten digits, each scaled 2.5x to 3.5x (20 to 28 pixels)
and composited at a random place; digits may touch but not cross. Eleven
classes: background and the digits ``"0"`` .. ``"9"`` (the class of digit
``d`` is ``d + 1``). Only the shape of the strokes decides the class. A
pixel is a digit where the scaled digit's ink is > 0.3, and ignored where it
is in (0.1, 0.3] (the blurred rim).

In both, each shape or digit is a *thing* with its own instance id
``1..k`` in its image; background is *stuff* with instance 0.

``load_digits_classification`` gives the plain 10-class digit set (one digit
per image) for pretraining a backbone; it splits the 1,797 source digits the
same way as the ``digits`` segmentation set of the same seed, so no test
digit is ever seen in pretraining.
"""
from __future__ import annotations

from typing import NamedTuple

import numpy as np

from .transforms import resize_bilinear

__all__ = [
    "SHAPES_CLASSES",
    "DIGITS_CLASSES",
    "make_shapes",
    "make_digits",
    "boundary_band",
    "digits_source",
    "digits_source_split",
    "ClassificationSet",
    "load_digits_classification",
]

SHAPES_CLASSES = ("background", "circle", "square", "triangle", "cross")
DIGITS_CLASSES = ("background",) + tuple(str(d) for d in range(10))
IGNORE_INDEX = 255


# --------------------------------------------------------------------------- helpers

def boundary_band(segments: np.ndarray, width: int = 1) -> np.ndarray:
    """Pixels within ``width`` pixels of a boundary between two different segment ids.

    A pixel is on a boundary when one of its 4 neighbours has another id;
    both sides are marked, so ``width=1`` gives a band 2 pixels wide. The
    image border is not a boundary.

    Parameters
    ----------
    segments : ndarray of int, shape (H, W)
        One id per segment, e.g. ``labels * 65536 + instances``.
    width : int >= 1

    Returns
    -------
    ndarray of bool, shape (H, W)
    """
    band = np.zeros(segments.shape, dtype=bool)
    dv = segments[1:, :] != segments[:-1, :]     # (H-1, W) vertical neighbours differ
    dh = segments[:, 1:] != segments[:, :-1]     # (H, W-1) horizontal neighbours differ
    band[1:, :] |= dv
    band[:-1, :] |= dv
    band[:, 1:] |= dh
    band[:, :-1] |= dh
    for _ in range(width - 1):                   # grow by one pixel (4-neighbourhood) per step
        grown = band.copy()
        grown[1:, :] |= band[:-1, :]
        grown[:-1, :] |= band[1:, :]
        grown[:, 1:] |= band[:, :-1]
        grown[:, :-1] |= band[:, 1:]
        band = grown
    return band


def _smooth_noise(rng: np.random.Generator, size: int, cells: int) -> np.ndarray:
    """Low-frequency noise in [0, 1]: a ``cells x cells`` uniform grid, bilinearly upsampled to ``size``."""
    return resize_bilinear(rng.random((cells, cells)), (size, size))


def _to_uint8(x: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(x * 255.0), 0, 255).astype(np.uint8)


def _check_n_size(n, size, op):
    if not isinstance(n, (int, np.integer)) or n < 0:
        raise ValueError(f"{op}: expected n to be an int >= 0, got {n!r}")
    if not isinstance(size, (int, np.integer)) or size < 32:
        raise ValueError(f"{op}: expected size to be an int >= 32, got {size!r}")


# --------------------------------------------------------------------------- shapes

def _shape_mask(kind: int, cy: float, cx: float, r: float, angle: float, yy, xx) -> np.ndarray:
    """Boolean mask of one shape whose area is that of a circle of radius ``r``.

    ``(u, v)`` are pixel-centre coordinates in the shape's frame, rotated by ``angle``.
    """
    dy, dx = yy - cy, xx - cx
    c, s = np.cos(angle), np.sin(angle)
    u, v = c * dx + s * dy, -s * dx + c * dy
    if kind == 1:                                        # circle: u^2 + v^2 <= r^2
        return u * u + v * v <= r * r
    if kind == 2:                                        # square, side a with a^2 = pi r^2
        a = r * np.sqrt(np.pi) / 2
        return (np.abs(u) <= a) & (np.abs(v) <= a)
    if kind == 3:                                        # equilateral triangle, (3 sqrt3 / 4) R^2 = pi r^2
        R = r * np.sqrt(4 * np.pi / (3 * np.sqrt(3)))
        inside = np.ones(u.shape, dtype=bool)
        for k in range(3):                               # 3 half-planes at the inradius R / 2
            t = np.pi / 2 + 2 * np.pi * k / 3
            inside &= u * np.cos(t) + v * np.sin(t) <= R / 2
        return inside
    if kind == 4:                                        # plus sign, arm half-length L, half-width L / 3
        L = r * np.sqrt(9 * np.pi / 20)                  # area 20 L^2 / 9 = pi r^2
        w = L / 3
        return ((np.abs(u) <= L) & (np.abs(v) <= w)) | ((np.abs(u) <= w) & (np.abs(v) <= L))
    raise ValueError(f"_shape_mask: unknown shape kind {kind}")


def _shapes_image(rng: np.random.Generator, size: int):
    """One shapes sample: image (3, S, S) float64 in [0, 1], labels (S, S) uint8, instances (S, S) uint8."""
    S = size
    yy, xx = np.mgrid[0:S, 0:S] + 0.5                   # pixel centres, (S, S) each

    # background: two dark colours mixed by smooth noise
    c1, c2 = rng.uniform(0.0, 0.5, size=(2, 3))         # darker than every shape
    t = _smooth_noise(rng, S, cells=5)                   # (S, S)
    image = c1[:, None, None] + (c2 - c1)[:, None, None] * t[None]   # (3, S, S)

    labels = np.zeros((S, S), dtype=np.uint8)
    instances = np.zeros((S, S), dtype=np.uint8)
    full_area = {}                                       # instance id -> drawn area
    n_shapes = int(rng.integers(2, 5))
    for _ in range(n_shapes):
        for _try in range(20):
            kind = int(rng.integers(1, 5))
            r = rng.uniform(0.10, 0.20) * S              # equal-area radius: 6.4 .. 12.8 px at S = 64
            cy, cx = rng.uniform(0.8 * r, S - 0.8 * r, size=2)
            mask = _shape_mask(kind, cy, cx, r, 0.0, yy, xx)   # upright: outlines a small net learns fast
            area = int(mask.sum())
            if area < 20:
                continue
            # limit occlusion: the new shape mostly free, every earlier shape still >= 60 % visible
            if (mask & (instances > 0)).sum() > 0.3 * area:
                continue
            hidden = np.bincount(instances[mask], minlength=len(full_area) + 1)
            if any((instances == i).sum() - hidden[i] < 0.6 * full_area[i] for i in full_area):
                continue
            break
        else:
            continue
        colour = rng.uniform(0.45, 1.0, size=3)          # brighter than the ground, any hue
        # stripe texture (brightness only): same distribution for every class
        period, theta, phase = rng.uniform(3.0, 8.0), rng.uniform(0, np.pi), rng.uniform(0, 2 * np.pi)
        amp = rng.uniform(0.03, 0.12)
        stripes = amp * np.sin(2 * np.pi * (xx * np.cos(theta) + yy * np.sin(theta)) / period + phase)
        fill = colour[:, None, None] + stripes[None]     # (3, S, S)
        image = np.where(mask[None], fill, image)
        k = len(full_area) + 1
        labels[mask] = kind
        instances[mask] = k
        full_area[k] = area

    image = image + rng.normal(0.0, 0.03, size=image.shape)  # sensor noise everywhere
    band = boundary_band(labels.astype(np.int64) * 256 + instances, width=1)
    labels[band] = IGNORE_INDEX
    instances[band] = 0
    instances = _renumber(instances)
    return np.clip(image, 0.0, 1.0), labels, instances


def _renumber(instances: np.ndarray) -> np.ndarray:
    """Map the instance ids present to ``1..k`` in order (0 stays 0)."""
    ids = np.unique(instances)
    lut = np.zeros(int(ids.max()) + 1, dtype=instances.dtype)
    present = ids[ids > 0]
    lut[present] = np.arange(1, present.size + 1)
    return lut[instances]


def make_shapes(n: int, seed=0, size: int = 64):
    """Generate ``n`` shapes images, deterministically from ``seed``.

    Parameters
    ----------
    n : int
    seed : int or sequence of int
        Anything ``numpy.random.default_rng`` takes.
    size : int, default 64
        Images are ``size x size``.

    Returns
    -------
    images : ndarray of uint8, shape (n, 3, size, size)
    labels : ndarray of uint8, shape (n, size, size)
        ``SHAPES_CLASSES`` ids, 255 on the boundary band.
    instances : ndarray of uint8, shape (n, size, size)
        ``1..k`` per shape, 0 on background and the band.
    """
    _check_n_size(n, size, "make_shapes")
    rng = np.random.default_rng(seed)
    images = np.empty((n, 3, size, size), dtype=np.uint8)
    labels = np.empty((n, size, size), dtype=np.uint8)
    instances = np.empty((n, size, size), dtype=np.uint8)
    for i in range(n):
        image, labels[i], instances[i] = _shapes_image(rng, size)
        images[i] = _to_uint8(image)
    return images, labels, instances


# --------------------------------------------------------------------------- digits

def digits_source():
    """scikit-learn's bundled 8x8 digits: ``(images (1797, 8, 8) float64 in [0, 1], digits (1797,) int64)``.

    Read from the copy inside the scikit-learn package (no download).
    """
    try:
        from sklearn.datasets import load_digits  # noqa: PLC0415  (optional dependency)
    except ImportError:
        raise ImportError("minseg.data digits: scikit-learn is needed for the digits datasets; "
                          "install it with `pip install minseg[lessons]`") from None
    bunch = load_digits()
    return bunch.images / 16.0, bunch.target.astype(np.int64)


def digits_source_split(n_digits: int, seed=0) -> dict:
    """Split source digit indices 60 / 20 / 20 into train / val / test with a seeded permutation.

    Returns
    -------
    dict of str -> ndarray of int64
    """
    perm = np.random.default_rng([int(s) for s in np.atleast_1d(seed)] + [8]).permutation(n_digits)
    n_train, n_val = int(0.6 * n_digits), int(0.2 * n_digits)
    return {"train": np.sort(perm[:n_train]),
            "val": np.sort(perm[n_train:n_train + n_val]),
            "test": np.sort(perm[n_train + n_val:])}


def _digits_canvas(rng, glyphs, targets, size):
    """One canvas: image (1, S, S) float64, labels (S, S) uint8, instances (S, S) uint8."""
    S = size
    base = rng.uniform(0.0, 0.25)
    image = base + 0.1 * (_smooth_noise(rng, S, cells=4) - 0.5)   # (S, S) dim, uneven background
    labels = np.zeros((S, S), dtype=np.uint8)
    instances = np.zeros((S, S), dtype=np.uint8)
    used = np.zeros((S, S), dtype=bool)
    k = 0
    for _ in range(int(rng.integers(2, 4))):
        j = int(rng.integers(len(glyphs)))
        side = int(round(10 * rng.uniform(2.5, 3.5)))              # 8x8 digit 20 .. 28 px, plus margin
        glyph = np.pad(glyphs[j], 1)                               # (10, 10): ink fades to 0 at the edge
        alpha = np.clip(resize_bilinear(glyph, (side, side)), 0.0, 1.0)   # (side, side) ink
        ink = alpha > 0.3
        smudge = alpha > 0.1                                       # ink and its blurred rim
        for _try in range(20):
            top, left = (int(v) for v in rng.integers(0, S - side + 1, size=2))
            window = (slice(top, top + side), slice(left, left + side))
            if (smudge & used[window]).sum() <= 0.05 * smudge.sum():   # digits may touch, not cross
                break
        else:
            continue
        k += 1
        brightness = rng.uniform(0.6, 1.0)
        image[window] = image[window] * (1 - alpha) + brightness * alpha   # "over" compositing
        rim = smudge & ~ink
        labels[window][ink] = targets[j] + 1
        instances[window][ink] = k
        labels[window][rim] = IGNORE_INDEX
        instances[window][rim] = 0
        used[window] |= smudge
    image = image + rng.normal(0.0, 0.03, size=image.shape)
    return np.clip(image, 0.0, 1.0)[None], labels, _renumber(instances)


def make_digits(n: int, seed=0, size: int = 64, source: str = "train", source_seed=0):
    """Generate ``n`` digit canvases, deterministically from ``seed``.

    Parameters
    ----------
    n : int
    seed : int or sequence of int
        Placement, scale and noise.
    size : int, default 64
    source : {"train", "val", "test"}
        Which part of ``digits_source_split(1797, source_seed)`` the digits come from.
    source_seed : int

    Returns
    -------
    images : ndarray of uint8, shape (n, 1, size, size)
    labels : ndarray of uint8, shape (n, size, size)
        ``DIGITS_CLASSES`` ids (digit ``d`` is ``d + 1``), 255 on the rims.
    instances : ndarray of uint8, shape (n, size, size)
    """
    _check_n_size(n, size, "make_digits")
    glyphs, targets = digits_source()
    parts = digits_source_split(len(glyphs), source_seed)
    if source not in parts:
        raise ValueError(f"make_digits: expected source in {sorted(parts)}, got {source!r}")
    idx = parts[source]
    glyphs, targets = glyphs[idx], targets[idx]
    rng = np.random.default_rng(seed)
    images = np.empty((n, 1, size, size), dtype=np.uint8)
    labels = np.empty((n, size, size), dtype=np.uint8)
    instances = np.empty((n, size, size), dtype=np.uint8)
    for i in range(n):
        image, labels[i], instances[i] = _digits_canvas(rng, glyphs, targets, size)
        images[i] = _to_uint8(image)
    return images, labels, instances


class ClassificationSet(NamedTuple):
    """A plain image-classification split (one digit per image).

    Attributes
    ----------
    images : ndarray of float32, shape (N, 1, size, size), in [0, 1]
    targets : ndarray of int64, shape (N,)
        The digit, 0..9 (in the ``digits`` segmentation set the class is ``digit + 1``).
    class_names : tuple of str
        ``("0", ..., "9")``.
    name : str
    split : str
    """

    images: np.ndarray
    targets: np.ndarray
    class_names: tuple
    name: str
    split: str


def load_digits_classification(split: str = "train", seed=0, size: int = 32) -> ClassificationSet:
    """The 10-class digits set for pretraining a backbone (the transfer-learning lesson).

    The same 60 / 20 / 20 split of the 1,797 source digits as
    ``load_dataset("digits", seed=seed)`` uses, each digit drawn as on the
    canvases: the 8x8 digit with a 1-pixel empty margin (10x10), scaled
    bilinearly to ``size x size``. With the default 32 the digit itself is
    25.6 pixels, 3.2x, inside the canvases' 2.5x .. 3.5x. Made on the fly,
    in milliseconds.

    Parameters
    ----------
    split : {"train", "val", "test"}
    seed : int
    size : int >= 8

    Returns
    -------
    ClassificationSet
    """
    if not isinstance(size, (int, np.integer)) or size < 8:
        raise ValueError(f"load_digits_classification: expected size to be an int >= 8, got {size!r}")
    glyphs, targets = digits_source()
    parts = digits_source_split(len(glyphs), seed)
    if split not in parts:
        raise ValueError(f"load_digits_classification: expected split in {sorted(parts)}, got {split!r}")
    idx = parts[split]
    framed = np.pad(glyphs[idx], ((0, 0), (1, 1), (1, 1)))                   # (N, 10, 10)
    images = resize_bilinear(framed.astype(np.float32), (size, size))         # (N, size, size)
    images = np.clip(images, 0.0, 1.0)[:, None]                              # (N, 1, size, size)
    return ClassificationSet(images.astype(np.float32), targets[idx].copy(),
                             DIGITS_CLASSES[1:], "digits-classification", split)

"""The built-in real photograph: scikit-image's ``coins``, with a mask of every coin.

The photograph is ``coins.png`` (303 x 384, greyscale: 24 Greek coins from
Pompeii on a dark ground; Brooklyn Museum Collection, no known copyright
restrictions), which ships *inside* the scikit-image wheel; minseg reads that file directly
(``<skimage>/data/coins.png``) and never calls a function that could fetch
from the network.

The mask is not hand-drawn: it is computed, deterministically, by the
region-based segmentation of scikit-image's own coins tutorial, then tidied
with the one thing we know about coins (they are round, so convex):

1. elevation map = Sobel gradient magnitude of the photograph;
2. markers: pixels < 30 are ground, pixels > 150 are coin;
3. watershed of the elevation map from those markers; fill holes;
4. connected components of at least 100 pixels are the coins (24 of them),
   numbered in row-major order of their first pixel;
5. each coin becomes the convex hull of its component.

A 1-pixel band on each side of every coin outline is ``ignore_index``, where
the computed outline may be off by a pixel. Classes: background (stuff) and
coin (thing); each coin is an instance.

Splits follow the four rows of coins, so that no coin is in two splits:
train = rows 1-2 (``y < 150``), val = row 3 (``150 <= y < 225``), test =
row 4 (``y >= 225``). Each split is the set of ``64 x 64`` crops at a stride
of 16 pixels (plus the last position) that fit inside its band.

Why scikit-image's ``horse`` is not used: it is a silhouette (``True`` is the
background) with no photograph behind it.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from .synthetic import boundary_band

__all__ = ["COINS_CLASSES", "COINS_BANDS", "coins_photo", "coins_mask", "make_coins"]

COINS_CLASSES = ("background", "coin")
COINS_BANDS = {"train": (0, 150), "val": (150, 225), "test": (225, 303)}   # rows of the photograph
IGNORE_INDEX = 255


def _skimage_data_dir() -> Path:
    try:
        import skimage.data  # noqa: PLC0415  (optional dependency, lazy)
    except ImportError:
        raise ImportError("minseg.data coins: scikit-image is needed for the coins dataset; "
                          "install it with `pip install minseg[lessons]`") from None
    return Path(skimage.data.__file__).parent


def coins_photo() -> np.ndarray:
    """The bundled ``coins.png`` as ``(303, 384)`` uint8, read from the scikit-image package itself.

    Raises
    ------
    FileNotFoundError
        When this scikit-image install lacks the bundled file (it is never downloaded).
    """
    path = _skimage_data_dir() / "coins.png"
    if not path.is_file():
        raise FileNotFoundError(f"coins_photo: {str(path)!r} not found; minseg only uses images bundled "
                                "inside the scikit-image package and never downloads one")
    from PIL import Image  # noqa: PLC0415  (pillow comes with scikit-image)

    with Image.open(path) as im:
        return np.asarray(im.convert("L"), dtype=np.uint8)


def coins_mask(photo: np.ndarray) -> np.ndarray:
    """Instance map of the coins: 0 on the ground, ``1..k`` on each coin (see the module docstring).

    Parameters
    ----------
    photo : ndarray of uint8, shape (H, W)

    Returns
    -------
    ndarray of int32, shape (H, W)
    """
    try:
        from scipy import ndimage as ndi  # noqa: PLC0415
        from skimage.filters import sobel  # noqa: PLC0415
        from skimage.morphology import convex_hull_image  # noqa: PLC0415
        from skimage.segmentation import watershed  # noqa: PLC0415
    except ImportError:
        raise ImportError("minseg.data coins: scikit-image is needed for the coins dataset; "
                          "install it with `pip install minseg[lessons]`") from None
    elevation = sobel(photo)
    markers = np.zeros(photo.shape, dtype=np.int32)
    markers[photo < 30] = 1                                     # surely ground
    markers[photo > 150] = 2                                    # surely coin
    coins = ndi.binary_fill_holes(watershed(elevation, markers) == 2)
    components, n = ndi.label(coins)
    sizes = np.bincount(components.ravel(), minlength=n + 1)
    instances = np.zeros(photo.shape, dtype=np.int32)
    k = 0
    for c, sl in enumerate(ndi.find_objects(components), start=1):
        if sizes[c] < 100:                                      # specks, not coins
            continue
        k += 1
        hull = convex_hull_image(components[sl] == c)           # coins are round: fill the bites
        instances[sl][hull & (instances[sl] == 0)] = k
    return instances


def _crop_starts(length: int, crop: int, stride: int) -> list[int]:
    """Start offsets of crops of ``crop`` pixels at ``stride``, the last one flush with the end."""
    starts = list(range(0, length - crop + 1, stride))
    if starts[-1] != length - crop:
        starts.append(length - crop)
    return starts


def make_coins(crop: int = 64, stride: int = 16) -> dict:
    """The coins dataset: ``{split: (images, labels, instances)}``, the same on every call.

    Returns
    -------
    dict of str -> tuple
        ``images`` uint8 ``(N, 1, crop, crop)``, ``labels`` uint8
        ``(N, crop, crop)`` (0 ground, 1 coin, 255 on the outline band),
        ``instances`` uint8 ``(N, crop, crop)`` (coin ids, renumbered per crop
        in order of appearance, 0 on the ground).
    """
    photo = coins_photo()
    instances = coins_mask(photo)
    labels = (instances > 0).astype(np.uint8)
    band = boundary_band(instances, width=1)
    labels[band] = IGNORE_INDEX
    instances = np.where(band, 0, instances)
    W = photo.shape[1]
    out = {}
    for split, (y0, y1) in COINS_BANDS.items():
        ims, labs, insts = [], [], []
        for top in _crop_starts(y1 - y0, crop, stride):
            for left in _crop_starts(W, crop, stride):
                window = (slice(y0 + top, y0 + top + crop), slice(left, left + crop))
                ims.append(photo[window][None])
                labs.append(labels[window])
                insts.append(_renumber_crop(instances[window]))
        out[split] = (np.stack(ims), np.stack(labs), np.stack(insts).astype(np.uint8))
    return out


def _renumber_crop(instances: np.ndarray) -> np.ndarray:
    """Instance ids ``1..k`` in order of first appearance (row-major) within one crop."""
    flat = instances.ravel()
    ids, first = np.unique(flat, return_index=True)
    order = ids[np.argsort(first)]
    order = order[order > 0]
    lut = np.zeros(int(flat.max(initial=0)) + 1, dtype=np.int32)
    lut[order] = np.arange(1, order.size + 1)
    return lut[instances]

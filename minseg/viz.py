"""Pictures of segmentations: colour palettes, label overlays and image grids with a legend.

``make_palette``, ``colorize``, ``colorize_instances`` and ``overlay`` are
plain NumPy and return ``(H, W, 3)`` arrays. ``show_grid`` draws with
matplotlib (imported only when called; ``pip install minseg[lessons]``),
returns the ``Figure`` and, given ``path``, saves it as a PNG. Where no
display is available (a server, the command line, a test run) it switches
matplotlib to the Agg backend first; in Jupyter it leaves the notebook's
inline backend alone.

Colours: class ``k`` gets ``palette[k]``; ``ignore_index`` pixels are drawn in
PASCAL VOC's void colour, cream ``(224, 224, 192)``, as VOC's own label PNGs
show them.
"""
from __future__ import annotations

import os
import sys

import numpy as np

from .data.formats import make_palette

__all__ = [
    "IGNORE_COLOR",
    "make_palette",
    "colorize",
    "colorize_instances",
    "overlay",
    "to_hwc",
    "show_grid",
]

IGNORE_COLOR = (224, 224, 192)   # PASCAL VOC's colour for the void border (index 255)


def _check_labels(labels, palette, ignore_index, op):
    labels = np.asarray(labels)
    palette = np.asarray(palette)
    if labels.dtype.kind not in "iu":
        raise TypeError(f"{op}: expected labels with an integer dtype, got {labels.dtype}")
    if palette.ndim != 2 or palette.shape[1] != 3:
        raise ValueError(f"{op}: expected palette of shape (K, 3), got shape {palette.shape}")
    valid = labels != ignore_index
    if np.any(valid) and (labels[valid].min() < 0 or labels[valid].max() >= len(palette)):
        bad = labels[valid & ((labels < 0) | (labels >= len(palette)))]
        raise ValueError(f"{op}: expected labels in 0..{len(palette) - 1} (the palette's K) or "
                         f"ignore_index={ignore_index}, got {int(bad.flat[0])}")
    return labels, palette, valid


def colorize(labels, palette=None, ignore_index: int = 255) -> np.ndarray:
    """Paint a label map: class ``k`` becomes ``palette[k]``, ``ignore_index`` becomes cream.

    Parameters
    ----------
    labels : array of int, shape (H, W)
    palette : array of uint8, shape (K, 3), optional
        Defaults to ``make_palette(256)``.
    ignore_index : int, default 255

    Returns
    -------
    ndarray of uint8, shape (H, W, 3)
    """
    if palette is None:
        palette = make_palette(256)
    labels, palette, valid = _check_labels(labels, palette, ignore_index, "colorize")
    out = np.empty(labels.shape + (3,), dtype=np.uint8)
    out[...] = IGNORE_COLOR
    out[valid] = palette.astype(np.uint8)[labels[valid]]
    return out


def colorize_instances(instances, seed: int = 0) -> np.ndarray:
    """Paint an instance map: 0 black, every other id a random bright colour (fixed by ``seed``).

    Parameters
    ----------
    instances : array of int, shape (H, W)

    Returns
    -------
    ndarray of uint8, shape (H, W, 3)
    """
    instances = np.asarray(instances)
    if instances.dtype.kind not in "iu" or (instances.size and instances.min() < 0):
        raise ValueError("colorize_instances: expected instances of non-negative integers, "
                         f"got dtype {instances.dtype}")
    n = int(instances.max(initial=0)) + 1
    colours = np.random.default_rng(seed).integers(64, 256, size=(n, 3)).astype(np.uint8)
    colours[0] = 0
    return colours[instances]


def to_hwc(image) -> np.ndarray:
    """An image as ``(H, W, 3)`` float in [0, 1], from ``(C, H, W)``, ``(H, W, C)`` or ``(H, W)``.

    One channel is repeated to grey RGB; uint8 is divided by 255. A 3-D
    array with 1 or 3 in front is read as ``(C, H, W)``, else as ``(H, W, C)``.
    """
    x = np.asarray(image)
    if x.dtype == np.uint8:
        x = x.astype(np.float64) / 255.0
    elif x.dtype.kind != "f":
        raise TypeError(f"to_hwc: expected a float or uint8 image, got dtype {x.dtype}")
    if x.ndim == 3 and x.shape[0] in (1, 3):
        x = np.moveaxis(x, 0, -1)                               # (C, H, W) -> (H, W, C), minseg's layout
    if x.ndim == 2:
        x = x[..., None]
    if x.ndim != 3 or x.shape[-1] not in (1, 3):
        raise ValueError(f"to_hwc: expected image of shape (C, H, W), (H, W, C) or (H, W) with C in (1, 3), "
                         f"got shape {np.shape(image)}")
    if x.shape[-1] == 1:
        x = np.repeat(x, 3, axis=-1)
    return np.clip(x, 0.0, 1.0)


def overlay(image, labels, palette=None, alpha: float = 0.5, ignore_index: int = 255,
            background: int | None = 0) -> np.ndarray:
    """Tint an image with its label colours: ``(1 - alpha) * image + alpha * colour``.

    Parameters
    ----------
    image : array, shape (C, H, W), (H, W, C) or (H, W); float in [0, 1] or uint8
    labels : array of int, shape (H, W)
    palette : array of uint8, shape (K, 3), optional
    alpha : float in [0, 1]
    ignore_index : int
        Ignored pixels are tinted cream.
    background : int or None, default 0
        Pixels of this class are left untinted (None tints every class).

    Returns
    -------
    ndarray of float64, shape (H, W, 3), in [0, 1]
    """
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"overlay: expected alpha in [0, 1], got {alpha}")
    rgb = to_hwc(image)
    labels = np.asarray(labels)
    if labels.shape != rgb.shape[:2]:
        raise ValueError(f"overlay: expected labels of shape {rgb.shape[:2]} (the image's H, W), "
                         f"got shape {labels.shape}")
    colours = colorize(labels, palette, ignore_index).astype(np.float64) / 255.0
    tint = np.ones(labels.shape, dtype=bool) if background is None else labels != background
    a = alpha * tint[..., None]                                  # (H, W, 1)
    return (1.0 - a) * rgb + a * colours


# --------------------------------------------------------------------------- matplotlib

def _pyplot():
    """Import pyplot, switching to Agg first where there is no display and no notebook."""
    try:
        import matplotlib  # noqa: PLC0415  (optional dependency, lazy)
    except ImportError:
        raise ImportError("minseg.viz: matplotlib is needed to draw figures; "
                          "install it with `pip install minseg[lessons]`") from None
    headless = (sys.platform.startswith("linux") and not os.environ.get("DISPLAY")
                and not os.environ.get("WAYLAND_DISPLAY"))
    in_notebook = "ipykernel" in sys.modules
    if headless and not in_notebook and not os.environ.get("MPLBACKEND") and "matplotlib.pyplot" not in sys.modules:
        matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415

    return plt


def show_grid(images, *label_maps, class_names=None, palette=None, titles=None, row_titles=None,
              alpha: float = 0.6, ignore_index: int = 255, background: int | None = None,
              legend: bool = True, instances=None, path=None, cell_size: float = 2.0, dpi: int = 100):
    """Draw a grid: one row per image, the image and then each label map overlaid on it.

    Parameters
    ----------
    images : array, shape (N, C, H, W) (or a sequence of images)
    *label_maps : arrays of int, shape (N, H, W)
        E.g. the ground truth, then one or more predictions. Each adds a column.
    class_names : sequence of str, optional
        For the legend (only classes present in the label maps are listed).
    palette : array of uint8, shape (K, 3), optional
        Defaults to ``make_palette(K)``, K large enough for every value shown
        (so an instance map can be passed as a label map too).
    titles : sequence of str, optional
        Column titles, one per column (default "image", "labels 1", ..., "instances").
    row_titles : sequence of str, optional
        One per row.
    alpha : float
        Opacity of the label colours over the image.
    ignore_index : int
    background : int or None
        A class left untinted (None: tint every class, background too).
    legend : bool
    instances : array of int, shape (N, H, W), optional
        An instance map, drawn as a last column with ``colorize_instances``
        (one random colour per instance; not in the legend).
    path : str or Path, optional
        Also save the figure there as a PNG.
    cell_size : float
        Inches per grid cell.

    Returns
    -------
    matplotlib.figure.Figure
        In a loop, close it with ``matplotlib.pyplot.close(fig)``.
    """
    images = list(images)
    N = len(images)
    if N == 0:
        raise ValueError("show_grid: expected at least one image, got 0")
    maps = []
    for m, lab in enumerate(label_maps):
        lab = np.asarray(lab)
        if lab.ndim != 3 or lab.shape[0] != N:
            raise ValueError(f"show_grid: expected label map {m} of shape (N, H, W) with N = {N} images, "
                             f"got shape {lab.shape}")
        maps.append(lab)
    if instances is not None:
        instances = np.asarray(instances)
        if instances.ndim != 3 or instances.shape[0] != N:
            raise ValueError(f"show_grid: expected instances of shape (N, H, W) with N = {N} images, "
                             f"got shape {instances.shape}")
    n_cols = 1 + len(maps) + (instances is not None)
    if titles is not None and len(titles) != n_cols:
        raise ValueError(f"show_grid: expected {n_cols} titles (one per column), "
                         f"got {len(titles)}")
    if row_titles is not None and len(row_titles) != N:
        raise ValueError(f"show_grid: expected {N} row_titles, got {len(row_titles)}")
    if palette is None:
        K = max([len(class_names) if class_names is not None else 1]
                + [int(m[m != ignore_index].max(initial=0)) + 1 for m in maps])
        palette = make_palette(K)
    palette = np.asarray(palette, dtype=np.uint8)
    if titles is None:
        titles = (["image"] + [f"labels {m + 1}" for m in range(len(maps))]
                  + (["instances"] if instances is not None else []))

    handles = []
    if legend and maps:
        present = np.unique(np.concatenate([m.ravel() for m in maps]))
        handles = [(palette[k] / 255.0,
                    class_names[k] if class_names is not None and k < len(class_names) else str(k))
                   for k in present if k != ignore_index and 0 <= k < len(palette)]
        if np.any(present == ignore_index):
            handles.append((np.array(IGNORE_COLOR) / 255.0, f"ignore ({ignore_index})"))
    width = cell_size * n_cols
    legend_cols = max(1, int(width / 1.2))
    legend_rows = -(-len(handles) // legend_cols)
    legend_h = 0.25 * legend_rows + (0.1 if handles else 0.0)        # inches
    height = cell_size * N + legend_h

    plt = _pyplot()
    fig, axes = plt.subplots(N, n_cols, figsize=(width, height), squeeze=False)
    for i in range(N):
        rgb = to_hwc(images[i])
        axes[i, 0].imshow(rgb, interpolation="nearest")
        for m, lab in enumerate(maps):
            axes[i, m + 1].imshow(overlay(rgb, lab[i], palette, alpha, ignore_index, background),
                                  interpolation="nearest")
        if instances is not None:
            axes[i, -1].imshow(colorize_instances(instances[i]), interpolation="nearest")
        for j in range(n_cols):
            axes[i, j].set_xticks([])
            axes[i, j].set_yticks([])
            if i == 0:
                axes[i, j].set_title(titles[j], fontsize=9)
        if row_titles is not None:
            axes[i, 0].set_ylabel(row_titles[i], fontsize=9)
    if handles:
        from matplotlib.patches import Patch  # noqa: PLC0415

        fig.legend(handles=[Patch(color=c, label=name) for c, name in handles], loc="lower center",
                   ncol=legend_cols, fontsize=8, frameon=False, handlelength=1.0, columnspacing=0.8)
    fig.tight_layout(rect=(0, legend_h / height, 1, 1))
    if path is not None:
        fig.savefig(path, dpi=dpi, format="png")
    return fig

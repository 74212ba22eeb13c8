"""Pictures of segmentations: colour palettes, label overlays and image grids with a legend.

``make_palette``, ``colorize``, ``colorize_instances`` and ``overlay`` are
plain NumPy and return ``(H, W, 3)`` arrays. ``show_grid`` draws with
matplotlib (imported only when called; ``pip install minseg[lessons]``),
returns the ``Figure`` and, given ``path``, saves it as a PNG; so does
``plot_curves`` (loss and validation mIoU per epoch). Where no
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
    "plot_curves",
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
              legend: bool = True, instances=None, path=None, cell_size: float = 2.0, dpi: int = 100,
              title: str | None = None):
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
        Inches of a grid cell's longer side (the cells take the first image's aspect ratio).
    title : str, optional
        A title above the whole grid (e.g. the model, data and score).

    Returns
    -------
    matplotlib.figure.Figure
        In a loop, close it with ``matplotlib.pyplot.close(fig)``.

    Notes
    -----
    The legend stands to the right of the grid, one class a line (more
    columns only when the classes do not fit the grid's height); the figure
    is widened by the legend's width, so a class name never wraps or is cut.
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
    margin, head = 0.1, 0.3                                           # inches: border, column titles
    left = margin + (0.3 if row_titles is not None else 0.0)
    title_h = 0.35 if title else 0.0                                  # inches for the figure title
    H, W = to_hwc(images[0]).shape[:2]
    cell_w, cell_h = cell_size * min(1.0, W / H), cell_size * min(1.0, H / W)
    grid_w = left + cell_w * n_cols + margin
    height = margin + cell_h * N + head + title_h
    legend_ncol, legend_w = _legend_layout([name for _, name in handles], cell_h * N + head)
    width = grid_w + legend_w

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

        fig.legend(handles=[Patch(color=c, label=name) for c, name in handles], loc="center left",
                   bbox_to_anchor=(grid_w / width, 0.5 * (1 - title_h / height)), ncol=legend_ncol,
                   fontsize=_LEGEND_FONT, frameon=False, handlelength=1.0, columnspacing=0.8, borderaxespad=0.2)
    if title:
        fig.suptitle(title, fontsize=10, y=1 - 0.08 / height, va="top")
    fig.subplots_adjust(left=left / width, right=(grid_w - margin) / width, bottom=margin / height,
                        top=1 - (head + title_h) / height, wspace=0.04, hspace=0.04)
    if path is not None:
        fig.savefig(path, dpi=dpi, format="png", bbox_inches="tight", pad_inches=0.05)
    return fig


_LEGEND_FONT = 8          # points
_LEGEND_ROW = 0.21        # inches per legend line at that size
_LEGEND_CHAR = 0.075      # inches per character, a generous average for the default sans-serif at 8 pt


def _legend_layout(names, height: float):
    """Columns and width (inches) of a legend beside a grid ``height`` inches tall: one column while it fits."""
    if not names:
        return 1, 0.0
    rows = max(1, int(height / _LEGEND_ROW))                          # lines that fit beside the grid
    ncol = -(-len(names) // rows)                                     # ceil
    col_w = 0.35 + _LEGEND_CHAR * max(len(n) for n in names)          # patch + gap + longest name
    return ncol, ncol * col_w + 0.2


def plot_curves(history, path=None, title: str | None = None, dpi: int = 100):
    """Training curves: the mean training loss and the validation mIoU per epoch, side by side.

    Parameters
    ----------
    history : dict or list of dict
        ``history_dict(train(...))`` (its ``"epochs"`` list), or that list of
        rows ``{"epoch", "loss", "val_miou" (optional)}``.
    path : str or Path, optional
        Also save the figure there as a PNG.
    title : str, optional

    Returns
    -------
    matplotlib.figure.Figure
        Two axes (loss, val mIoU); the best val epoch is marked with a star.
    """
    rows = history.get("epochs") if isinstance(history, dict) else history
    if not rows or not all(isinstance(r, dict) and "epoch" in r and "loss" in r for r in rows):
        raise ValueError("plot_curves: expected a history with a non-empty list of epochs "
                         "{'epoch', 'loss', ...}, got " + repr(rows)[:80])
    epochs = [r["epoch"] for r in rows]
    loss = [r["loss"] for r in rows]
    val = [(r["epoch"], r["val_miou"]) for r in rows if r.get("val_miou") is not None]
    plt = _pyplot()
    fig, (ax_loss, ax_val) = plt.subplots(1, 2, figsize=(8.0, 3.2))
    ax_loss.plot(epochs, loss, "o-", color="tab:blue", markersize=3)
    ax_loss.set(xlabel="epoch", ylabel="mean training loss", title="loss")
    if val:
        ve, vm = zip(*val)
        best = int(np.argmax(vm))
        ax_val.plot(ve, vm, "o-", color="tab:green", markersize=3, label="val mIoU")
        ax_val.plot([ve[best]], [vm[best]], "*", color="tab:red", markersize=10,
                    label=f"best {vm[best]:.3f} (epoch {ve[best]})")
        ax_val.legend(fontsize=8, loc="lower right")
    else:
        ax_val.text(0.5, 0.5, "no validation split", ha="center", va="center", transform=ax_val.transAxes)
    ax_val.set(xlabel="epoch", ylabel="mIoU", title="validation mIoU", ylim=(0, 1))
    for ax in (ax_loss, ax_val):
        ax.grid(alpha=0.3)
        ax.xaxis.get_major_locator().set_params(integer=True)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    if path is not None:
        fig.savefig(path, dpi=dpi, format="png")
    return fig

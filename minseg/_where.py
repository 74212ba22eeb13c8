"""Where the wrong elements of an array lie, in words: a border, the interior, one channel, every k-th row.

``describe_wrong(mask)`` turns a boolean mask of wrong elements into a
phrase such as ``"all in the last row and column; only channel 2 (of 4)"``.
It is shared by the exercise grader (``minseg.exercises``) and the framework
checker (``minseg.check``); ``describe_period`` adds the strided patterns
(every 2nd row, every 3rd column from column 1) that stride and
output-padding mistakes leave.
"""
from __future__ import annotations

import numpy as np

__all__ = ["describe_wrong", "describe_period"]


def _index_list(idx, size, axis_name):
    items = [str(int(i)) for i in idx[:6]] + (["..."] if len(idx) > 6 else [])
    plural = "s" if len(idx) > 1 else ""
    return f"only {axis_name}{plural} {', '.join(items)} (of {size})"


def _spatial_text(m):
    """Where the True entries of a 2-D mask (H, W) lie: a border, the interior, a corner, some rows..."""
    H, W = m.shape
    rows, cols = np.nonzero(m)
    if rows.size == 1:
        corner = " (a corner)" if rows[0] in (0, H - 1) and cols[0] in (0, W - 1) and H > 1 and W > 1 else ""
        return f"only at row {rows[0]}, column {cols[0]}{corner}"
    r = np.arange(H)[:, None]
    c = np.arange(W)[None, :]
    first_r, last_r = (r == 0) & (c >= 0), (r == H - 1) & (c >= 0)
    first_c, last_c = (c == 0) & (r >= 0), (c == W - 1) & (r >= 0)
    regions = []
    if H > 1:
        regions += [("the first row", first_r), ("the last row", last_r), ("the first and last rows", first_r | last_r)]
    if W > 1:
        regions += [("the first column", first_c), ("the last column", last_c),
                    ("the first and last columns", first_c | last_c)]
    if H > 1 and W > 1:
        regions += [("the first row and column", first_r | first_c), ("the last row and column", last_r | last_c),
                    ("the border rows and columns", first_r | last_r | first_c | last_c)]
    if H > 2 and W > 2:
        regions.append(("the interior (no border pixel)", ~(first_r | last_r | first_c | last_c)))
    elif H > 2:
        regions.append(("the interior rows (not the first or last)", ~(first_r | last_r)))
    elif W > 2:
        regions.append(("the interior columns (not the first or last)", ~(first_c | last_c)))
    fitting = [(int(reg.sum()), text) for text, reg in regions if not (m & ~reg).any() and reg.sum() < m.size]
    if fitting:
        return "all in " + min(fitting)[1]
    if m.all():
        return "at every pixel"
    r0, r1, c0, c1 = rows.min(), rows.max(), cols.min(), cols.max()
    parts = []
    if r1 - r0 + 1 < H:
        parts.append(f"rows {r0}-{r1}" if r1 > r0 else f"row {r0}")
    if c1 - c0 + 1 < W:
        parts.append(f"columns {c0}-{c1}" if c1 > c0 else f"column {c0}")
    where = " and ".join(parts)
    return f"only in {where}" if where else f"spread over the image ({rows.size} of {m.size} pixels)"


def describe_wrong(mask, axes=None, spatial=(-2, -1)) -> str:
    """Say where the True entries of ``mask`` lie, e.g. ``"all in the last row and column; only channel 2 (of 4)"``.

    Parameters
    ----------
    mask : bool ndarray, the wrong elements
    axes : names of the axes (default: sample, channel, row, column for 4-D; axis 0, 1, ... otherwise)
    spatial : the two axes that form an image plane (described as rows and columns), or None
    """
    mask = np.asarray(mask, dtype=bool)
    if mask.ndim == 0 or not mask.any():
        return ""
    if axes is None:
        axes = ("sample", "channel", "row", "column") if mask.ndim == 4 else tuple(f"index {i} of axis"
                                                                                  for i in range(mask.ndim))
    parts = []
    sp = None
    if spatial is not None and mask.ndim >= 2:
        sp = tuple(a % mask.ndim for a in spatial)
        other = tuple(a for a in range(mask.ndim) if a not in sp)
        plane = mask.any(axis=other) if other else mask
        if sp[0] > sp[1]:
            plane = plane.T
        text = _spatial_text(plane)
        if text != "at every pixel" or mask.all():
            parts.append(text)
    for a in range(mask.ndim):
        if sp is not None and a in sp:
            continue
        size = mask.shape[a]
        present = np.nonzero(mask.any(axis=tuple(b for b in range(mask.ndim) if b != a)))[0]
        if size > 1 and present.size < size:
            parts.append(_index_list(present, size, axes[a]))
    if not parts:
        return "everywhere" if mask.all() else "spread over the whole output"
    return "; ".join(parts)


def _ordinal(k: int) -> str:
    suffix = "th" if 10 <= k % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(k % 10, "th")
    return f"{k}{suffix}"


def _period(present, size):
    """``(k, start)`` when ``present`` (sorted indices) is exactly every k-th index from ``start``, k >= 2."""
    if present.size < 2 or present.size == size:
        return None
    k = int(present[1] - present[0])
    start = int(present[0])
    if k < 2 or start >= k:
        return None
    return (k, start) if np.array_equal(present, np.arange(start, size, k)) else None


def describe_period(mask, spatial=(-2, -1)) -> str:
    """A strided pattern of the True entries of ``mask``, e.g. ``"every 2nd row from row 1 and every 2nd column"``.

    Parameters
    ----------
    mask : bool ndarray with at least two axes
    spatial : the two axes (rows, columns) of the image plane

    Returns
    -------
    str
        The rows (and / or columns) that hold a True entry when they are
        exactly every k-th one (k >= 2) starting in the first period, else ``""``.
    """
    mask = np.asarray(mask, dtype=bool)
    if mask.ndim < 2 or not mask.any():
        return ""
    sp = tuple(a % mask.ndim for a in spatial)
    other = tuple(a for a in range(mask.ndim) if a not in sp)
    plane = mask.any(axis=other) if other else mask
    if sp[0] > sp[1]:
        plane = plane.T                                   # (H, W)
    parts = []
    for axis, word in ((1, "row"), (0, "column")):        # rows hold a True entry where any(axis=1)
        present = np.nonzero(plane.any(axis=axis))[0]
        found = _period(present, plane.shape[1 - axis])
        if found:
            k, start = found
            parts.append(f"every {_ordinal(k)} {word}" + (f" from {word} {start}" if start else ""))
    return " and ".join(parts)

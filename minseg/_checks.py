"""Label-array checks and message formatting shared by ``minseg.metrics`` and ``minseg.panoptic``.

Both score integer label maps (class ids, segment ids, panoptic ids) and
print tables of fractions; they check their inputs and format their errors
and tables the same way through these helpers.
"""
from __future__ import annotations

import numpy as np

from .backend import to_numpy
from .shapes import check_array

__all__ = ["check_labels", "check_same_shape", "show_values", "pct"]


def check_labels(x, name: str, op: str):
    """Raise unless ``x`` is a NumPy / CuPy array of integer (or bool) labels; return it."""
    check_array(x, name, op)
    if x.dtype.kind not in "biu":
        raise TypeError(f"{op}: expected {name} with an integer dtype (class labels or segment ids), "
                        f"got dtype {x.dtype}")
    return x


def check_same_shape(a, b, names: str, op: str) -> None:
    """Raise unless ``a`` and ``b`` have the same shape (``names`` like ``"pred and target"``)."""
    if a.shape != b.shape:
        raise ValueError(f"{op}: expected {names} of the same shape, got {tuple(a.shape)} and {tuple(b.shape)}")


def show_values(values, limit: int = 10) -> str:
    """Format a few sorted unique values for an error message: ``[256, 300, ...] (12 distinct)``."""
    values = np.unique(to_numpy(values))
    shown = ", ".join(str(int(v)) for v in values[:limit])
    more = f", ... ({values.size} distinct)" if values.size > limit else ""
    return f"[{shown}{more}]"


def pct(v: float, width: int = 6) -> str:
    """A fraction printed as a percentage with one decimal, ``n/a`` for NaN."""
    return f"{'n/a':>{width}}" if v != v else f"{100.0 * v:{width}.1f}"

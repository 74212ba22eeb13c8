"""``compare(actual, expected)``: how two arrays differ, as a report a person can act on.

An element matches when both values are finite and

    |actual - expected| <= atol + rtol * |expected|

(``torch.testing.assert_close``'s rule), or when both are the same infinity,
or both NaN (``equal_nan=True``, the default here: a reference that gives NaN
where the framework gives NaN agrees with it). Everything else is a mismatch.

The report says what ``assert_close`` says (how many elements mismatch, the
greatest absolute and relative difference with their index) and more: both
values at those indices, where the mismatches lie (the border rows and
columns, one channel, the interior, every k-th pixel), and whether the
NaN / inf patterns agree. Different shapes give a report that says how they
differ, never an exception.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .._where import describe_period, describe_wrong
from ..backend import to_numpy

__all__ = ["compare", "CompareReport", "default_tolerances"]

# torch.testing.assert_close's defaults, by the less precise dtype of the two
_TOLERANCES = {"float16": (1e-3, 1e-5), "bfloat16": (1.6e-2, 1e-5), "float32": (1.3e-6, 1e-5),
               "float64": (1e-7, 1e-7), "complex64": (1.3e-6, 1e-5), "complex128": (1e-7, 1e-7)}


def default_tolerances(*dtypes) -> tuple:
    """``(rtol, atol)`` for the least precise of ``dtypes``, as ``torch.testing.assert_close`` chooses them.

    float16 (1e-3, 1e-5), bfloat16 (1.6e-2, 1e-5), float32 (1.3e-6, 1e-5),
    float64 (1e-7, 1e-7); integers and bools must be equal, (0, 0).
    """
    best = (0.0, 0.0)
    for dt in dtypes:
        try:
            key = np.dtype(dt).name
        except TypeError:                                 # a dtype NumPy does not know, e.g. "bfloat16"
            key = str(dt)
        tol = _TOLERANCES.get(key)
        if tol is not None and tol[0] > best[0]:
            best = tol
    return best


def _as_array(v, name: str):
    """A NumPy array from a NumPy / CuPy array, a number, or anything with ``.detach().cpu().numpy()``."""
    if hasattr(v, "detach") and hasattr(v, "cpu"):       # a torch tensor (torch itself is never imported here)
        v = v.detach().cpu().numpy()
    try:
        return np.asarray(to_numpy(v))
    except Exception as err:  # noqa: BLE001  (turned into the clear error below)
        raise TypeError(f"compare: expected {name} to be an array, got {type(v).__name__} ({err})") from None


def _index_text(idx) -> str:
    return "(" + ", ".join(str(int(i)) for i in idx) + ")" if len(idx) != 1 else f"({int(idx[0])},)"


def _axes_for(ndim: int):
    """Names for describe_wrong: sample/channel/row/column for 4-D, sample/row/column for 3-D, ..."""
    return {4: ("sample", "channel", "row", "column"), 3: ("sample", "row", "column"), 2: ("row", "column"),
            1: ("element",)}.get(ndim)


def _shape_problem(a_shape, e_shape, labels) -> str:
    """What differs between two shapes: the axes that differ and by how much, or a permutation."""
    text = f"shape {a_shape} ({labels[0]}) vs {e_shape} ({labels[1]})"
    if len(a_shape) != len(e_shape):
        squeezed = tuple(s for s in a_shape if s != 1) == tuple(s for s in e_shape if s != 1)
        return text + (f": {len(a_shape)} vs {len(e_shape)} axes" +
                       ("; the same after dropping axes of size 1" if squeezed else ""))
    if sorted(a_shape) == sorted(e_shape):
        return text + ": the same sizes in another order (a layout such as NHWC vs NCHW?)"
    diffs = [f"axis {i} ({a} vs {e})" for i, (a, e) in enumerate(zip(a_shape, e_shape)) if a != e]
    return text + ": differs in " + ", ".join(diffs)


class TextReport:
    """A report that prints as its ``lines()``: ``str``, ``repr`` and Jupyter's display are the same text."""

    def lines(self) -> list:  # pragma: no cover - every report defines it
        raise NotImplementedError

    def __str__(self) -> str:
        return "\n".join(self.lines())

    __repr__ = __str__

    def _repr_pretty_(self, p, cycle):
        p.text(str(self))


@dataclass(repr=False)
class CompareReport(TextReport):
    """What ``compare`` found; ``bool(report)`` is ``report.passed``; prints as a multi-line message.

    Fields
    ------
    name, passed, labels : the array's name, the verdict, how the two sides are called ("actual", "expected")
    actual_shape, expected_shape, actual_dtype, expected_dtype, rtol, atol
    problem : None, or why the values were not compared (different shapes)
    size, n_mismatch : elements compared, elements that mismatch (``percent`` is their share)
    max_abs, max_abs_index, max_abs_values : greatest absolute difference over the elements finite on
        both sides, its index and the (actual, expected) values there
    max_rel, max_rel_index, max_rel_values : the same for ``|actual - expected| / |expected|``
        (inf where expected is 0 and actual is not)
    scaled_error : ``max_abs / max(max |expected|, atol)``, one number for "how exact" that tiny elements
        do not inflate (atol keeps an array of pure round-off, such as a bias gradient before a batch norm,
        from dividing by ~0)
    worst_index, worst_values : the mismatching element furthest outside the tolerance
    where : where the mismatches lie (``describe_wrong`` plus a strided pattern), "" when none
    mismatch_mask : bool array of the mismatches (None on a shape problem)
    nonfinite : one line per NaN / inf disagreement; empty when the patterns agree
    nonfinite_counts : ``{"actual NaN": k, ...}`` over both sides, for the report's NaN / inf line
    """

    name: str
    passed: bool
    actual_shape: tuple
    expected_shape: tuple
    actual_dtype: str
    expected_dtype: str
    rtol: float
    atol: float
    labels: tuple = ("actual", "expected")
    problem: str | None = None
    size: int = 0
    n_mismatch: int = 0
    max_abs: float = 0.0
    max_abs_index: tuple | None = None
    max_abs_values: tuple | None = None
    max_rel: float = 0.0
    max_rel_index: tuple | None = None
    max_rel_values: tuple | None = None
    scaled_error: float = 0.0
    worst_index: tuple | None = None
    worst_values: tuple | None = None
    where: str = ""
    mismatch_mask: np.ndarray | None = field(default=None, repr=False)
    nonfinite: list = field(default_factory=list)
    nonfinite_counts: dict = field(default_factory=dict)

    def __bool__(self) -> bool:
        return bool(self.passed)

    @property
    def percent(self) -> float:
        return 100.0 * self.n_mismatch / self.size if self.size else 0.0

    @property
    def nonfinite_agree(self) -> bool:
        return not self.nonfinite

    def lines(self) -> list:
        """The report as lines: a verdict line, then indented details."""
        A, E = self.labels
        tol = f"rtol {self.rtol:.1e}, atol {self.atol:.1e}"
        if self.problem:
            return [f"{self.name}: FAIL, {self.problem}"]
        if self.passed:
            head = (f"{self.name}: ok, {self.size} elements within {tol}; greatest difference "
                    f"{self.max_abs:.2e} absolute, {self.max_rel:.2e} relative")
        else:
            head = (f"{self.name}: FAIL, {self.n_mismatch} of {self.size} elements ({self.percent:.3g}%) "
                    f"mismatch ({tol})")
        out = [head]
        dtypes = (f"dtype {self.actual_dtype}" if self.actual_dtype == self.expected_dtype
                  else f"dtype {self.actual_dtype} ({A}) vs {self.expected_dtype} ({E})")
        out.append(f"  shape {self.actual_shape}, {dtypes}")
        if not self.passed:
            if self.max_abs_index is not None and self.max_abs == 0:
                out.append("  the elements finite on both sides agree exactly")
            elif self.max_abs_index is not None:
                a, e = self.max_abs_values
                out.append(f"  greatest absolute difference {self.max_abs:.3g} at index "
                           f"{_index_text(self.max_abs_index)}: {a:.8g} ({A}) vs {e:.8g} ({E})")
            if self.max_rel_index is not None and self.max_abs > 0:
                a, e = self.max_rel_values
                out.append(f"  greatest relative difference {self.max_rel:.3g} at index "
                           f"{_index_text(self.max_rel_index)}: {a:.8g} ({A}) vs {e:.8g} ({E})")
            if self.worst_index is not None and self.worst_index not in (self.max_abs_index, self.max_rel_index):
                a, e = self.worst_values
                out.append(f"  furthest outside the tolerance at index {_index_text(self.worst_index)}: "
                           f"{a:.8g} ({A}) vs {e:.8g} ({E})")
            if self.where:
                out.append(f"  where: {self.where}")
        if self.nonfinite:
            out.append("  NaN / inf: the patterns differ: " + "; ".join(self.nonfinite))
        elif self.nonfinite_counts:
            counts = ", ".join(f"{n} {k}" for k, n in self.nonfinite_counts.items())
            out.append(f"  NaN / inf: the patterns agree ({counts} on each side)")
        return out


def _nonfinite_lines(a, e, labels, equal_nan):
    """One line per kind of NaN / inf disagreement, with the count and the first index."""
    A, E = labels
    kinds = [
        (np.isnan(a) & np.isfinite(e), f"NaN in {A} where {E} is finite"),
        (np.isfinite(a) & np.isnan(e), f"finite in {A} where {E} is NaN"),
        (np.isinf(a) & np.isfinite(e), f"inf in {A} where {E} is finite"),
        (np.isfinite(a) & np.isinf(e), f"finite in {A} where {E} is inf"),
        (np.isnan(a) & np.isinf(e), f"NaN in {A} where {E} is inf"),
        (np.isinf(a) & np.isnan(e), f"inf in {A} where {E} is NaN"),
        (np.isinf(a) & np.isinf(e) & (np.sign(a) != np.sign(e)), "infinities of opposite sign"),
    ]
    if not equal_nan:
        kinds.append((np.isnan(a) & np.isnan(e), "NaN on both sides (equal_nan=False)"))
    out = []
    for m, text in kinds:
        n = int(m.sum())
        if n:
            first = np.unravel_index(int(np.argmax(m)), m.shape) if m.ndim else ()
            out.append(f"{n} {text}" + (f", first at {_index_text(first)}" if m.ndim else ""))
    return out


def _counts(a, e):
    out = {}
    for word, fn in (("NaN", np.isnan), ("+inf", np.isposinf), ("-inf", np.isneginf)):
        na, ne = int(fn(a).sum()), int(fn(e).sum())
        if na or ne:
            out[word] = na if na == ne else f"{na} / {ne}"
    return out


def compare(actual, expected, *, rtol=None, atol=None, name: str = "output", equal_nan: bool = True,
            labels=("actual", "expected"), axes=None, spatial=(-2, -1)) -> CompareReport:
    """Compare ``actual`` with ``expected`` elementwise and say how and where they differ.

    Parameters
    ----------
    actual, expected : array_like (NumPy, CuPy, a number, or a framework tensor with ``.detach()``), any shape
    rtol, atol : float, optional
        Tolerances; by default ``default_tolerances`` of the two dtypes (float64: 1e-7 and 1e-7,
        float32: 1.3e-6 and 1e-5, integers exact), as ``torch.testing.assert_close``.
    name : str
        What the array is, for the report (``"output"``, ``"grad.weight"``).
    equal_nan : bool
        NaN matches NaN (default True).
    labels : (str, str)
        How the two sides are called in the report, e.g. ``("torch", "minseg")``.
    axes : tuple of str, optional
        Names of the axes for "where" (default: sample, channel, row, column for 4-D arrays).
    spatial : (int, int) or None
        The two axes described as rows and columns.

    Returns
    -------
    CompareReport
        ``bool(report)`` is whether all elements match; ``print(report)`` gives the message.

    Examples
    --------
    >>> e = np.zeros((1, 2, 4, 4)); a = e.copy(); a[0, 1, -1, :] = 1e-3
    >>> print(compare(a, e).where)
    all in the last row; only channel 1 (of 2)
    """
    a = _as_array(actual, "actual")
    e = _as_array(expected, "expected")
    d_rtol, d_atol = default_tolerances(a.dtype, e.dtype)
    rtol = d_rtol if rtol is None else float(rtol)
    atol = d_atol if atol is None else float(atol)
    report = CompareReport(name, False, tuple(a.shape), tuple(e.shape), str(a.dtype), str(e.dtype), rtol, atol,
                           tuple(labels))
    if a.shape != e.shape:
        report.problem = _shape_problem(tuple(a.shape), tuple(e.shape), labels)
        return report
    for arr, side in ((a, labels[0]), (e, labels[1])):
        if arr.dtype.kind not in "biuf":
            raise TypeError(f"compare: expected {side} to hold numbers (bool, int or float), got dtype {arr.dtype}")
    a64, e64 = a.astype(np.float64), e.astype(np.float64)
    report.size = int(a.size)
    finite = np.isfinite(a64) & np.isfinite(e64)
    with np.errstate(invalid="ignore", over="ignore"):
        diff = np.where(finite, np.abs(a64 - e64), 0.0)
        allowed = atol + rtol * np.abs(e64)
        same_nonfinite = (a64 == e64) | (np.isnan(a64) & np.isnan(e64) & equal_nan)
    mismatch = np.where(finite, diff > allowed, ~same_nonfinite)
    report.mismatch_mask = mismatch
    report.n_mismatch = int(mismatch.sum())
    report.passed = report.n_mismatch == 0
    report.nonfinite = _nonfinite_lines(a64, e64, labels, equal_nan)
    report.nonfinite_counts = _counts(a64, e64)
    if finite.any():
        i = np.unravel_index(int(np.argmax(diff)), diff.shape)
        report.max_abs = float(diff[i])
        report.max_abs_index, report.max_abs_values = i, (float(a64[i]), float(e64[i]))
        with np.errstate(divide="ignore", invalid="ignore"):
            rel = np.where(diff == 0, 0.0, diff / np.abs(e64))
        rel = np.where(finite, rel, 0.0)
        j = np.unravel_index(int(np.argmax(rel)), rel.shape)
        report.max_rel = float(rel[j])
        report.max_rel_index, report.max_rel_values = j, (float(a64[j]), float(e64[j]))
        scale = max(float(np.max(np.abs(np.where(finite, e64, 0.0)))), atol)   # atol: for arrays of round-off
        report.scaled_error = report.max_abs / scale if scale > 0 else report.max_abs
    if report.n_mismatch:
        with np.errstate(divide="ignore", invalid="ignore"):
            excess = np.where(finite, diff / allowed, np.inf)
        excess = np.where(mismatch, excess, -1.0)
        w = np.unravel_index(int(np.argmax(excess)), excess.shape)
        report.worst_index, report.worst_values = w, (float(a64[w]), float(e64[w]))
        report.where = _where(mismatch, axes, spatial)
    return report


def _where(mask, axes, spatial) -> str:
    """"all 12 mismatches: in the last row and column; only channel 2 (of 4)" (plus a strided pattern)."""
    n = int(mask.sum())
    if mask.ndim == 0:
        return ""
    if n == mask.size:
        return "every element"
    axes = axes or _axes_for(mask.ndim)
    sp = spatial if mask.ndim >= 2 else None
    text = describe_wrong(mask, axes, sp)
    period = describe_period(mask, sp) if sp is not None and n > 1 else ""
    if period:                     # a strided pattern says more than a bounding box of rows and columns
        parts = text.split("; ")
        if parts[0].startswith(("only in ", "spread over")):
            parts[0] = period
        else:
            parts.append(period)
        text = "; ".join(parts)
    if n == 1:
        return f"1 element, {text}"
    if text.startswith("all in "):
        return f"all {n} mismatches are {text[4:]}"         # "all 12 mismatches are in the last row and column"
    return f"{n} mismatches, {text}"

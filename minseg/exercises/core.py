"""The grading machinery: run a learner's function on a grid of cases, compare, describe, name the mistake.

An ``Exercise`` holds a reference (minseg's own function), a generator of
``Case`` objects (the arguments to call with), the ``Output`` specs of what
the function returns, and a list of ``Mistake`` functions: the same
signature, returning the answer a typical wrong version gives. ``grade``
calls the learner's function on every case (on copies, so nothing it does
can change the cases), checks arity, type, shape and dtype, compares every
output with the reference elementwise, and, for backward exercises, with
central differences (``minseg.gradcheck.numerical_gradient``). When the
answer is wrong it compares it with every mistake's answer: a mistake whose
answer equals the learner's on every case, and differs from the right one
on at least one, is named in the result's ``diagnosis``.

An element is wrong when ``|yours - expected| > atol + rtol * |expected|``.
"""
from __future__ import annotations

import copy
import html
import os
import time
import traceback
from dataclasses import dataclass, field
from typing import Callable, Sequence

import numpy as np

from .._where import describe_wrong
from ..gradcheck import numerical_gradient, rel_error

__all__ = ["Case", "Output", "Mistake", "Exercise", "Result", "CaseResult", "OutputRow", "AnswerProblem",
           "exercise", "register", "get", "names", "check", "backward_case", "indices_extract", "describe_wrong",
           "shape_text"]

RTOL, ATOL = 1e-6, 1e-9              # learner vs minseg (both float64, only the summation order differs)
NUM_RTOL, NUM_ATOL = 1e-5, 1e-7       # learner vs central differences (gradcheck's tolerance)

_REGISTRY: dict = {}


class AnswerProblem(Exception):
    """A returned value of the wrong kind (arity, type, shape, dtype): the message says what was expected."""


# --------------------------------------------------------------------------- declarations

@dataclass
class Case:
    """One call of the learner's function: ``fn(*args, **kwargs)``.

    label : str, how the case is shown in the report (e.g. ``"x 2x3x7x9, w 4x3x3x3, stride=2"``)
    numeric : callable () -> tuple, optional
        Central-difference values of the outputs (``None`` entries are not checked); backward exercises.
    extra : dict, anything ``Exercise.extract`` needs besides the returned value.
    """

    args: tuple
    kwargs: dict = field(default_factory=dict)
    label: str = ""
    numeric: Callable | None = None
    extra: dict = field(default_factory=dict)


@dataclass
class Output:
    """One returned value: its name and how to describe where its wrong elements lie.

    axes : names of the axes of ``view(value)`` (``("sample", "channel", "row", "column")`` by default for 4-D)
    spatial : the two axes (of the view) that form an image plane, described as rows / columns, or None
    view : callable (array, case) -> array, the array as the description sees it (e.g. im2col's
        columns as (C, KH, KW, N, H_out, W_out)); identity by default
    optional : the reference may return None (e.g. ``db`` without a bias); then None is expected
    """

    name: str
    axes: Sequence[str] | None = None
    spatial: tuple | None = (-2, -1)
    view: Callable | None = None
    optional: bool = False


@dataclass
class Mistake:
    """A known mistake: ``fn`` has the exercise's signature and returns the mistaken answer."""

    key: str
    title: str
    fn: Callable
    hint: str = ""


@dataclass
class Exercise:
    """An exercise: see ``minseg.exercises`` for how to declare one."""

    name: str
    reference: Callable
    cases: Callable                       # rng -> list of Case
    outputs: Sequence[Output]
    returns_cache: bool = False           # a forward op: y alone or (y, cache) like minseg
    extract: Callable | None = None       # (value, case) -> tuple of outputs, raises AnswerProblem
    spec: str = ""                        # what to write, one line (shown in the report)
    seed: int = 0
    mistakes: list = field(default_factory=list)

    def mistake(self, title: str, hint: str = ""):
        """Decorator: register ``fn`` (same signature as the exercise) as a known mistake titled ``title``."""
        def add(fn):
            self.mistakes.append(Mistake(fn.__name__.strip("_"), title, fn, hint))
            return fn
        return add

    def make_cases(self):
        return self.cases(np.random.default_rng(self.seed))


def exercise(name: str, reference: Callable, cases: Callable, outputs, **options) -> Exercise:
    """Declare and register an exercise; returns it so that mistakes can be added with ``@ex.mistake(...)``."""
    outs = [o if isinstance(o, Output) else Output(o) for o in ([outputs] if isinstance(outputs, str) else outputs)]
    ex = Exercise(name, reference, cases, outs, **options)
    return register(ex)


def register(ex: Exercise) -> Exercise:
    if ex.name in _REGISTRY:
        raise ValueError(f"exercises.register: expected a new exercise name, got {ex.name!r} (already registered)")
    _REGISTRY[ex.name] = ex
    return ex


def names() -> list:
    """The exercises' names, in the order of the lessons."""
    return list(_REGISTRY)


def get(name: str) -> Exercise:
    if name not in _REGISTRY:
        import difflib  # noqa: PLC0415

        close = difflib.get_close_matches(str(name), list(_REGISTRY), n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise ValueError(f"exercises.check: expected one of {names()}, got {name!r}{hint}")
    return _REGISTRY[name]


# --------------------------------------------------------------------------- helpers for case generators

def shape_text(a) -> str:
    """``2x3x7x9`` for an array of that shape."""
    return "x".join(str(int(s)) for s in np.shape(a))


def indices_extract(op: str, what: str) -> Callable:
    """An ``extract`` for pooling exercises: ``(y, indices)`` from ``(y, indices)`` or ``(y, cache)`` with
    ``cache.indices`` like minseg's; anything else is an ``AnswerProblem`` naming ``op``. ``what`` says what
    the indices are, for the message when the learner returns one array."""
    def extract(value, case):
        if isinstance(value, np.ndarray):
            raise AnswerProblem(f"expected {op} to return y and {what}, (y, indices) or (y, cache) with "
                                "cache.indices, got one array")
        if not isinstance(value, (tuple, list)) or len(value) != 2:
            got = f"a tuple of {len(value)} values" if isinstance(value, (tuple, list)) else type(value).__name__
            raise AnswerProblem(f"expected {op} to return (y, indices) or (y, cache) with cache.indices, got {got}")
        y, second = value
        if isinstance(second, np.ndarray):
            return y, second
        if hasattr(second, "indices"):
            return y, second.indices
        raise AnswerProblem(f"expected {op} to return (y, indices) or (y, cache) with cache.indices, "
                            f"got (y, {type(second).__name__})")
    return extract


def backward_case(forward: Callable, inputs: dict, grads: Sequence[str], *, rng, label: str = "",
                  numeric: bool = True, dy_scale: float = 1.0, **hyper) -> Case:
    """A case ``(dy, cache)`` for a backward exercise, the cache made by minseg's ``forward``.

    Parameters
    ----------
    forward : minseg's forward op, ``forward(*inputs.values(), **hyper) -> (y, cache)``
    inputs : dict name -> array (or None), in the forward's positional order
    grads : the input names whose gradients the backward returns, in its order
    rng : numpy Generator for ``dy``
    numeric : also check against central differences
    """
    y, cache = forward(*inputs.values(), **hyper)
    dy = rng.standard_normal(np.shape(y)) * dy_scale
    if not label:
        parts = [f"{k} {shape_text(v)}" for k, v in inputs.items() if v is not None]
        parts += [f"{k}={v!r}" for k, v in hyper.items()]
        label = f"{getattr(forward, '__name__', 'forward')}({', '.join(parts)})"

    def num():
        out = []
        for name in grads:
            v = inputs.get(name)
            if v is None or np.asarray(v).dtype.kind != "f":
                out.append(None)
                continue
            names_ = list(inputs)

            def f(v_, name=name):
                args = [v_ if k == name else inputs[k] for k in names_]
                return forward(*args, **hyper)[0]
            out.append(numerical_gradient(f, np.array(v, dtype=np.float64), dy))
        return tuple(out)

    return Case((dy, cache), {}, label, num if numeric else None)


# --------------------------------------------------------------------------- results

@dataclass
class OutputRow:
    """The comparison of one output in one case."""

    name: str
    passed: bool
    problem: str | None = None            # wrong kind / shape / dtype, or None
    max_abs: float = 0.0
    max_rel: float = 0.0
    worst: str = ""                       # "y[1, 2, 0, 4]: 0.52 (yours) vs -1.2 (expected)"
    n_wrong: int = 0
    size: int = 0
    where: str = ""
    numeric_rel: float | None = None      # vs central differences
    numeric_ok: bool = True


@dataclass
class CaseResult:
    label: str
    passed: bool
    rows: list = field(default_factory=list)
    error: str | None = None              # an exception raised by the learner's code
    seconds: float = 0.0


@dataclass
class Result:
    """What ``check`` found. ``passed``; ``diagnosis`` (None when passed, or when no cause is known);
    ``mistake`` (the key of the named known mistake, or None); ``cases``. Prints as a report."""

    name: str
    passed: bool
    diagnosis: str | None
    cases: list
    mistake: str | None = None
    hint: str = ""
    spec: str = ""
    seconds: float = 0.0

    def __str__(self) -> str:
        return "\n".join(self._lines())

    __repr__ = __str__

    def _repr_pretty_(self, p, cycle):
        p.text(str(self))

    def _repr_html_(self) -> str:
        colour = "#1a7f37" if self.passed else "#cf222e"
        lines = self._lines()
        head = html.escape(lines[0])
        body = html.escape("\n".join(lines[1:]))
        return (f'<pre style="white-space: pre-wrap"><b style="color: {colour}">{head}</b>\n{body}</pre>')

    def _lines(self):
        n_ok = sum(c.passed for c in self.cases)
        verdict = "PASS" if self.passed else "FAIL"
        head = f"{self.name}: {verdict} ({n_ok} of {len(self.cases)} cases right, {self.seconds:.2f} s)"
        out = [head]
        if self.diagnosis:
            out.append(f"  diagnosis: {self.diagnosis}")
        if self.hint:
            out.append(f"  why: {self.hint}")
        if self.diagnosis == "not implemented yet":
            if self.spec:
                out.append(f"  to do: {self.spec}")
            return out
        table = []
        for i, c in enumerate(self.cases, 1):
            if c.error:
                table.append((f"{i}", c.label, "", "ERROR", "", "", "", "", c.error))
                continue
            for k, r in enumerate(c.rows):
                first = k == 0
                if r.problem:
                    table.append((f"{i}" if first else "", c.label if first else "", r.name, "FAIL", "",
                                  "", "", "", r.problem))
                    continue
                num = "" if r.numeric_rel is None else f"{r.numeric_rel:.1e}" + ("" if r.numeric_ok else " FAIL")
                wrong = f"{r.n_wrong}/{r.size}" if r.n_wrong else "0"
                table.append((f"{i}" if first else "", c.label if first else "", r.name,
                              "ok" if r.passed else "FAIL", f"{r.max_abs:.1e}", f"{r.max_rel:.1e}", num, wrong,
                              r.where if r.n_wrong else ""))
        heads = ("#", "case", "out", "", "max abs err", "max rel err", "vs num. grad", "wrong", "where")
        has_num = any(row[6] for row in table)
        keep = [j for j in range(len(heads)) if j != 6 or has_num]
        widths = {j: max(len(heads[j]), *(len(row[j]) for row in table)) if table else len(heads[j]) for j in keep}
        last = keep[-1]
        fmt = lambda row: "  ".join(row[j] if j == last else row[j].ljust(widths[j]) for j in keep).rstrip()  # noqa: E731
        out += ["", "  " + fmt(heads)]
        out += ["  " + fmt(row) for row in table]
        worst = [(i, r) for i, c in enumerate(self.cases, 1) for r in c.rows if r.worst and not r.passed]
        if worst:
            out.append("")
            out.append("  worst elements (yours vs expected):")
            shown = set()
            for i, r in worst:
                if (i, r.name) not in shown and len(shown) < 6:
                    shown.add((i, r.name))
                    out.append(f"    case {i}: {r.worst}; {r.n_wrong} of {r.size} wrong, {r.where}")
        return out


# --------------------------------------------------------------------------- running

def _is_learner_frame(filename: str) -> bool:
    here = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))  # minseg/
    np_dir = os.path.dirname(np.__file__)
    f = os.path.abspath(filename)
    return not (f.startswith(here + os.sep) or f.startswith(np_dir + os.sep))


def _exception_text(err: BaseException, fn_name: str) -> str:
    """``ValueError: operands could not be broadcast ... (line 12 in my_conv2d)``: the learner's last line."""
    msg = str(err).strip().splitlines()
    text = f"{type(err).__name__}: {msg[0] if msg else ''}".rstrip(": ")
    frames = [f for f in traceback.extract_tb(err.__traceback__) if _is_learner_frame(f.filename)]
    frames = [f for f in frames if os.path.abspath(f.filename) != os.path.abspath(__file__)]
    if frames:
        f = frames[-1]
        text += f" (line {f.lineno} in {f.name})"
    return text


def _default_extract(ex: Exercise, value, case):
    """The returned value as a tuple of len(ex.outputs), or AnswerProblem saying what was expected."""
    outs = ex.outputs
    names_ = ", ".join(o.name for o in outs)
    if ex.returns_cache:
        if isinstance(value, tuple) and len(value) == 2 and not isinstance(value[1], np.ndarray):
            value = value[0]
        elif isinstance(value, tuple):
            raise AnswerProblem(f"expected {ex.name} to return {names_} (or {names_}, cache like minseg), "
                                f"got a tuple of {len(value)} values")
        return (value,)
    if len(outs) == 1:
        if isinstance(value, (tuple, list)) and len(value) == 1:
            value = value[0]
        elif isinstance(value, tuple):
            raise AnswerProblem(f"expected {ex.name} to return one array {names_}, got a tuple of {len(value)} values")
        return (value,)
    if value is None:
        raise AnswerProblem(f"expected {ex.name} to return {len(outs)} values ({names_}), got None "
                            f"(a missing return?)")
    if not isinstance(value, (tuple, list)):
        raise AnswerProblem(f"expected {ex.name} to return {len(outs)} values ({names_}), "
                            f"got one {type(value).__name__}")
    if len(value) != len(outs):
        raise AnswerProblem(f"expected {ex.name} to return {len(outs)} values ({names_}), got {len(value)}")
    return tuple(value)


def _extract(ex: Exercise, value, case):
    if ex.extract is not None:
        return tuple(ex.extract(value, case))
    return _default_extract(ex, value, case)


def _call(fn, case):
    """``fn`` on deep copies of the case's arguments."""
    args = copy.deepcopy(case.args)
    kwargs = copy.deepcopy(case.kwargs)
    return fn(*args, **kwargs)


def _kind_problem(out: Output, mine, ref):
    """A one-line message when ``mine`` is not the kind of value ``ref`` is (None, array, shape, dtype)."""
    if ref is None:
        if mine is None:
            return None
        return f"expected {out.name} None (as minseg returns here), got {type(mine).__name__}" + (
            f" of shape {tuple(np.shape(mine))}" if hasattr(mine, "shape") else "")
    if mine is None:
        return f"expected {out.name} of shape {tuple(ref.shape)}, got None"
    if not hasattr(mine, "shape") or not hasattr(mine, "dtype"):
        return f"expected {out.name} to be an ndarray of shape {tuple(ref.shape)}, got {type(mine).__name__}"
    if tuple(mine.shape) != tuple(ref.shape):
        return f"expected {out.name} of shape {tuple(ref.shape)}, got shape {tuple(mine.shape)}"
    if ref.dtype.kind in "iu":
        if mine.dtype.kind not in "iu":
            return f"expected {out.name} with an integer dtype, got dtype {mine.dtype}"
    elif mine.dtype != ref.dtype:
        return f"expected {out.name} with dtype {ref.dtype} (the input's), got dtype {mine.dtype}"
    return None


def _wrong_mask(mine, ref):
    a = np.asarray(mine, dtype=np.float64)
    b = np.asarray(ref, dtype=np.float64)
    with np.errstate(invalid="ignore"):
        err = np.abs(a - b)
        bad = ~(err <= ATOL + RTOL * np.abs(b))  # NaN counts as wrong
    agree = (a == b) | (np.isnan(a) & np.isnan(b))  # equal infinities and NaN where NaN is expected are right
    bad &= ~agree
    err = np.where(agree, 0.0, err)  # so -inf vs -inf reports an error of 0, not inf - inf = NaN
    return bad, err


def _same(mine, other) -> bool:
    """Whether two answers agree (kind, shape and values), for matching a known mistake."""
    if mine is None or other is None:
        return mine is None and other is None
    if not hasattr(mine, "shape") or not hasattr(other, "shape") or tuple(mine.shape) != tuple(other.shape):
        return False
    return not _wrong_mask(mine, other)[0].any()


def _compare(out: Output, mine, ref, case, numeric) -> OutputRow:
    problem = _kind_problem(out, mine, ref)
    if problem:
        return OutputRow(out.name, False, problem)
    if ref is None:
        return OutputRow(out.name, True)
    bad, err = _wrong_mask(mine, ref)
    row = OutputRow(out.name, not bad.any(), size=int(ref.size))
    if ref.size:
        a, b = np.asarray(mine, np.float64), np.asarray(ref, np.float64)
        with np.errstate(invalid="ignore"):
            excess = np.where(np.isnan(err), np.inf, err / (ATOL + RTOL * np.abs(b)))
        excess = np.where(bad, excess, 0.0)
        worst = np.unravel_index(int(np.argmax(excess)) if bad.any() else int(np.nanargmax(err)), ref.shape)
        row.max_abs = float(np.nanmax(np.where(np.isnan(err), np.inf, err)))
        with np.errstate(invalid="ignore"):
            row.max_rel = float(np.nan_to_num(rel_error(np.nan_to_num(a, nan=1e300), np.nan_to_num(b, nan=1e300)),
                                              nan=np.inf))
        idx = ", ".join(str(int(i)) for i in worst)
        row.worst = f"{out.name}[{idx}]: {a[worst]:.6g} vs {b[worst]:.6g}"
        row.n_wrong = int(bad.sum())
        if row.n_wrong:
            view = out.view(bad, case) if out.view else bad
            row.where = describe_wrong(view, out.axes, out.spatial)
            if row.n_wrong == row.size:
                row.where = "every element"
    if numeric is not None:
        row.numeric_rel = rel_error(mine, numeric)
        with np.errstate(invalid="ignore"):
            ok = np.abs(np.asarray(mine, np.float64) - numeric) <= NUM_ATOL + NUM_RTOL * np.abs(numeric)
        row.numeric_ok = bool(ok.all())
        row.passed = row.passed and row.numeric_ok
    return row


def grade(ex: Exercise, fn: Callable) -> Result:
    """Run ``fn`` on every case of ``ex`` and build the ``Result``."""
    t_start = time.perf_counter()
    fn_name = getattr(fn, "__name__", "your function")
    cases = ex.make_cases()
    results, answers, refs = [], [], []
    errors, problems = [], []
    for case in cases:
        ref = _extract(ex, _call(ex.reference, case), case)
        refs.append(ref)
        t0 = time.perf_counter()
        try:
            value = _call(fn, case)
        except NotImplementedError:
            return Result(ex.name, False, "not implemented yet", [], spec=ex.spec,
                          seconds=time.perf_counter() - t_start)
        except Exception as err:  # noqa: BLE001  (the learner's code: report it, never crash)
            text = _exception_text(err, fn_name)
            results.append(CaseResult(case.label, False, error=text, seconds=time.perf_counter() - t0))
            errors.append(f"{text}, in case {len(results)}: {case.label}")
            answers.append(None)
            continue
        seconds = time.perf_counter() - t0
        try:
            mine = _extract(ex, value, case)
        except AnswerProblem as p:
            results.append(CaseResult(case.label, False, rows=[OutputRow("", False, str(p))], seconds=seconds))
            problems.append(str(p))
            answers.append(None)
            continue
        answers.append(mine)
        numeric = case.numeric() if case.numeric is not None else (None,) * len(ex.outputs)
        rows = [_compare(o, m, r, case, n) for o, m, r, n in zip(ex.outputs, mine, ref, numeric)]
        problems += [r.problem for r in rows if r.problem]
        results.append(CaseResult(case.label, all(r.passed for r in rows), rows=rows, seconds=seconds))
    passed = all(c.passed for c in results)
    result = Result(ex.name, passed, None, results, spec=ex.spec)
    if not passed:
        found = _match_mistakes(ex, cases, answers, refs, results)
        if found:
            result.mistake = found[0].key
            result.diagnosis = "; ".join(m.title for m in found)
            result.hint = "; ".join(m.hint for m in found if m.hint)
            if errors:
                result.diagnosis += f"; also {errors[0]}"
        elif errors:
            result.diagnosis = errors[0]
        elif problems:
            result.diagnosis = problems[0]
    result.seconds = time.perf_counter() - t_start
    return result


def _match_mistakes(ex: Exercise, cases, answers, refs, results) -> list:
    """The known mistakes that explain the learner's wrong outputs (at most one per output)."""
    wrong_outputs = set()
    for c in results:
        for k, r in enumerate(c.rows):
            if not r.passed and r.name:
                wrong_outputs.add(k)
    if not wrong_outputs:
        return []
    mistaken = []
    for m in ex.mistakes:
        ans = []
        for case in cases:
            try:
                ans.append(_extract(ex, _call(m.fn, case), case))
            except Exception:  # noqa: BLE001  (a mistake that does not apply to this case)
                ans.append(None)
        mistaken.append(ans)
    found = []
    for k in sorted(wrong_outputs):
        for m, ans in zip(ex.mistakes, mistaken):
            checked, covers = 0, False
            for mine, mis, ref in zip(answers, ans, refs):
                if mine is None or mis is None:
                    continue
                if not _same(mine[k], mis[k]):
                    break
                checked += 1
                covers = covers or not _same(mine[k], ref[k])
            else:
                if checked and covers:
                    if m not in found:
                        found.append(m)
                    break
    return found


def check(name: str, fn: Callable) -> Result:
    """Grade the learner's ``fn`` (same signature as minseg's function ``name``) on the exercise's grid.

    Returns
    -------
    Result
        ``.passed``, ``.diagnosis`` (the named known mistake, or a one-line problem such as
        "not implemented yet", or None), and a readable report when printed or shown in a notebook.
    """
    if not callable(fn):
        raise TypeError(f"exercises.check: expected a function as fn, got {type(fn).__name__}")
    return grade(get(name), fn)


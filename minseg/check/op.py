"""``check_op``: recompute one op with minseg from a framework's inputs and compare outputs and gradients.

The framework gives the op's name, its inputs and hyper-parameters under
PyTorch's names (``F.conv2d(input, weight, bias, stride, padding, dilation,
groups)`` has inputs ``input``, ``weight``, ``bias`` and params ``stride``,
``padding``, ...), what it computed (``output``, and ``indices`` for a
max-pool with ``return_indices``), and optionally an upstream gradient
``dy`` with the gradients it got (``grad.input``, ``grad.weight``, ...).
minseg casts the float inputs to float64, runs its forward op and, with
``dy``, its backward op, and compares each array with ``compare``.

When something mismatches, minseg tries the differences it knows of: the
other ``align_corners`` convention, TensorFlow 1's asymmetric resize
(``src = dst * in / out``, no half-pixel offset), ``ceil_mode`` toggled, a
different ``output_padding``, a rotated kernel (true convolution), TF's
``SAME`` padding, batch norm in the other mode or with Keras' momentum; it
recomputes with each and names the one that matches. It also explains what
needs no recompute: overlapping max-unpool indices, pooling windows that lie
entirely in the padding, tied maxima.

``OPS`` lists the ops with their inputs, params (and defaults), outputs and
gradients; ``describe_ops()`` prints them.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from .. import ops
from ..shapes import pair
from .compare import CompareReport, TextReport, compare

__all__ = ["check_op", "OpReport", "OpSpec", "OPS", "describe_ops"]

REQUIRED = object()          # a param without a default
INPUT_ALIASES = {"x": "input"}
OUTPUT_ALIASES = {"y": "output", "out": "output"}
LABELS = ("framework", "minseg")


@dataclass
class OpSpec:
    """One op ``check_op`` can recompute.

    forward : (inputs, params) -> (outputs, backward); ``outputs`` a dict name -> array,
        ``backward(dy)`` a dict input name -> gradient (None where minseg has none)
    inputs, optional : required and optional input names (PyTorch's argument names)
    params : param name -> default (``REQUIRED`` when there is none)
    outputs : output names; the first is the one ``dy`` is the gradient of
    grads : the inputs that have gradients
    integer_inputs : inputs kept as integers (indices, targets)
    diagnose : (ctx) -> list of str, the known differences that explain a mismatch
    """

    name: str
    forward: Callable
    inputs: tuple
    optional: tuple = ()
    params: dict = field(default_factory=dict)
    outputs: tuple = ("output",)
    grads: tuple = ("input",)
    integer_inputs: tuple = ()
    diagnose: Callable | None = None
    summary: str = ""


OPS: dict = {}


def _register(spec: OpSpec, *aliases) -> OpSpec:
    for key in (spec.name, *aliases):
        OPS[key] = spec
    return spec


def describe_ops() -> str:
    """One paragraph per op: inputs, params with defaults, outputs, gradients."""
    lines, seen = [], set()
    for key, s in OPS.items():
        if id(s) in seen:
            continue
        seen.add(id(s))
        aliases = [k for k, v in OPS.items() if v is s and k != s.name]
        params = ", ".join(k if v is REQUIRED else f"{k}={v!r}" for k, v in s.params.items())
        lines.append(f"{s.name}" + (f" (also {', '.join(aliases)})" if aliases else "") + f": {s.summary}")
        lines.append(f"  inputs {', '.join(s.inputs)}" + (f" [optional {', '.join(s.optional)}]" if s.optional else "")
                     + f"; params {params or '-'}; outputs {', '.join(s.outputs)}; grads {', '.join(s.grads) or '-'}")
    return "\n".join(lines)


# --------------------------------------------------------------------------- the report

@dataclass(repr=False)
class OpReport(TextReport):
    """What ``check_op`` found: one ``CompareReport`` per output and gradient, and the diagnosis.

    ``passed`` (also ``bool(report)``); ``reports``; ``diagnosis`` (lines, empty when nothing is known);
    ``error`` (minseg refused the inputs, with why); ``notes`` (what could not be compared, and why: a
    report with notes does not pass);
    ``source`` and ``framework`` name where it came from.
    """

    op: str
    params: dict
    reports: list = field(default_factory=list)
    diagnosis: list = field(default_factory=list)
    error: str | None = None
    source: str | None = None
    framework: str | None = None
    notes: list = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return self.error is None and not self.notes and all(r.passed for r in self.reports)

    def __bool__(self) -> bool:
        return self.passed

    def report(self, name: str) -> CompareReport:
        """The comparison of ``name`` (``"output"``, ``"grad.weight"``, ...)."""
        for r in self.reports:
            if r.name == name:
                return r
        raise KeyError(f"OpReport.report: expected one of {[r.name for r in self.reports]}, got {name!r}")

    def lines(self) -> list:
        args = ", ".join(f"{k}={v!r}" for k, v in self.params.items())
        where = (f" from {self.framework}" if self.framework else "") + (f" [{self.source}]" if self.source else "")
        n_bad = sum(not r.passed for r in self.reports)
        verdict = "PASS" if self.passed else ("ERROR" if self.error else f"FAIL ({n_bad} of {len(self.reports)} "
                                                                        f"arrays mismatch)")
        out = [f"{self.op}({args}){where}: {verdict}"]
        if self.error:
            out.append(f"  minseg refused the inputs: {self.error}")
        for r in self.reports:
            out += ["  " + line for line in r.lines()]
        for n in self.notes:
            out.append(f"  note: {n}")
        for d in self.diagnosis:
            out.append(f"  diagnosis: {d}")
        return out


# --------------------------------------------------------------------------- running

def _jsonable(v):
    """JSON lists become tuples (PyTorch's pairs), recursively."""
    if isinstance(v, list):
        return tuple(_jsonable(u) for u in v)
    return v


def _as_array(v):
    if hasattr(v, "detach") and hasattr(v, "cpu"):
        v = v.detach().cpu().numpy()
    return np.asarray(v)


def _canonical(d, aliases, what, allowed, op):
    out = {}
    for k, v in (d or {}).items():
        key = aliases.get(k, k)
        if key not in allowed:
            raise ValueError(f"check_op: {op} has {what} {list(allowed)}, got {k!r}")
        if key in out:
            raise ValueError(f"check_op: {op} got {what[:-1]} {key!r} twice (as {k!r} and an alias)")
        out[key] = v
    return out


def _prepare(spec, inputs, params):
    """Validate names; return float64 inputs (integers kept) and params with defaults filled in."""
    inp = _canonical(inputs, INPUT_ALIASES, "inputs", spec.inputs + spec.optional, spec.name)
    missing = [k for k in spec.inputs if k not in inp]
    if missing:
        raise ValueError(f"check_op: {spec.name} needs inputs {list(spec.inputs)}, missing {missing}")
    arrays = {}
    for k, v in inp.items():
        if v is None:
            continue
        a = _as_array(v)
        if k in spec.integer_inputs:
            if a.dtype.kind not in "iu":
                raise TypeError(f"check_op: {spec.name} expects input {k!r} with an integer dtype, got {a.dtype}")
            arrays[k] = a.astype(np.int64)
        else:
            if a.dtype.kind not in "iuf":
                raise TypeError(f"check_op: {spec.name} expects input {k!r} of numbers, got dtype {a.dtype}")
            arrays[k] = a.astype(np.float64)
    unknown = [k for k in (params or {}) if k not in spec.params]
    if unknown:
        raise ValueError(f"check_op: {spec.name} takes params {list(spec.params)}, got {unknown[0]!r}")
    p = {}
    for k, default in spec.params.items():
        if k in (params or {}):
            p[k] = _jsonable(params[k])
        elif default is REQUIRED:
            raise ValueError(f"check_op: {spec.name} needs param {k!r}")
        else:
            p[k] = default
    return arrays, p


@dataclass
class _Ctx:
    """Everything a diagnosis may look at."""

    spec: OpSpec
    inputs: dict
    params: dict
    given: dict            # the framework's outputs
    mine: dict             # minseg's outputs
    reports: dict          # name -> CompareReport
    dy: object
    given_grads: dict
    mine_grads: dict
    rtol: float | None
    atol: float | None

    def failed(self, name) -> bool:
        r = self.reports.get(name)
        return r is not None and not r.passed

    def any_output_failed(self) -> bool:
        return any(self.failed(k) for k in self.given)

    def agrees(self, outputs: dict) -> bool:
        """Whether ``outputs`` (a recompute under another convention) explain the mismatch.

        They must match every framework output they have (integers exactly) and differ from
        minseg's own result where that failed; an alternative that changes nothing explains nothing.
        """
        common = [k for k in self.given if k in outputs]
        if not any(self.failed(k) for k in common):
            return False
        for k in common:
            exact = self.given[k].dtype.kind in "biu" and np.asarray(outputs[k]).dtype.kind in "biu"
            if not compare(self.given[k], outputs[k], rtol=0.0 if exact else self.rtol,
                           atol=0.0 if exact else self.atol).passed:
                return False
        return True

    def try_forward(self, **changes):
        """minseg's outputs with some params changed, or None when minseg refuses them."""
        try:
            out, _ = self.spec.forward(self.inputs, {**self.params, **changes})
        except (ValueError, TypeError):
            return None
        return out


def check_op(name: str, inputs: dict, params: dict | None, outputs: dict, grads: dict | None = None, dy=None,
             rtol: float | None = None, atol: float | None = None, *, source: str | None = None,
             framework: str | None = None) -> OpReport:
    """Recompute op ``name`` with minseg in float64 and compare with what a framework computed.

    Parameters
    ----------
    name : str
        An op of ``OPS`` (``conv2d``, ``conv_transpose2d``, ``max_pool2d``, ``max_unpool2d``,
        ``global_avg_pool2d``, ``bilinear_interpolate``, ``upsample_nearest``, ``interpolate``,
        ``batch_norm2d``, ``relu``, ``linear``, ``softmax``, ``log_softmax``, ``cross_entropy``).
    inputs : dict name -> array
        PyTorch's argument names (``input``, ``weight``, ``bias``, ``indices``, ``target``, ...),
        NCHW layout. Float inputs are cast to float64.
    params : dict
        Hyper-parameters under PyTorch's names (``stride``, ``padding``, ``align_corners``, ...).
    outputs : dict name -> array
        What the framework computed: ``output`` (and ``indices``, ``running_mean``, ``running_var``
        where the op has them); any subset.
    grads : dict input name -> array, optional
        The framework's gradients for the upstream gradient ``dy``.
    dy : array, optional
        The upstream gradient of ``output``; needed with ``grads``.
    rtol, atol : float, optional
        Tolerances; by default those of the framework array's dtype (``default_tolerances``).
    source, framework : str, optional
        Shown in the report's first line (a file name, ``"torch 2.13.0"``).

    Returns
    -------
    OpReport
        ``passed``, one report per output and gradient, the diagnosis lines.

    Raises
    ------
    ValueError, TypeError
        An unknown op, input, output, gradient or param name, a missing required input or
        param, grads without dy. (minseg refusing the values themselves is reported, not raised.)
    """
    if name not in OPS:
        import difflib  # noqa: PLC0415

        close = difflib.get_close_matches(str(name), list(OPS), n=1)
        raise ValueError(f"check_op: expected op in {sorted(OPS)}, got {name!r}"
                         + (f" (did you mean {close[0]!r}?)" if close else ""))
    spec = OPS[name]
    arrays, p = _prepare(spec, inputs, params)
    given = {k: _as_array(v) for k, v in _canonical(outputs, OUTPUT_ALIASES, "outputs", spec.outputs,
                                                    spec.name).items()}
    given_grads = {k: _as_array(v) for k, v in _canonical(grads, INPUT_ALIASES, "grads", spec.grads,
                                                          spec.name).items()}
    if not given and not given_grads:
        raise ValueError(f"check_op: expected at least one output of {spec.name} ({list(spec.outputs)}) to compare, "
                         f"got none")
    if given_grads and dy is None:
        raise ValueError(f"check_op: {spec.name} got grads {list(given_grads)} but no dy (the upstream gradient "
                         f"they were computed with)")
    missing = [k for k in given_grads if k not in arrays]
    if missing:
        raise ValueError(f"check_op: {spec.name} got grad {missing[0]!r} but no input {missing[0]!r}")
    shown = {k: v for k, v in p.items() if k in (params or {})}
    report = OpReport(spec.name, shown, source=source, framework=framework)
    try:
        mine, backward = spec.forward(arrays, p)
    except (ValueError, TypeError) as err:
        report.error = str(err)
        report.diagnosis = _refusal_hints(spec, arrays, p, err)
        return report
    reports = {}
    for k, v in given.items():
        if k not in mine:
            raise ValueError(f"check_op: {spec.name} with these params has no output {k!r} (it has {list(mine)})")
        exact = v.dtype.kind in "biu" and np.asarray(mine[k]).dtype.kind in "biu"   # indices: always equal
        reports[k] = compare(v, mine[k], rtol=0.0 if exact else rtol, atol=0.0 if exact else atol, name=k,
                             labels=LABELS)
    mine_grads = {}
    dy64 = None if dy is None else _as_array(dy).astype(np.float64)
    y_mine = mine[spec.outputs[0]]
    if given_grads and dy64.shape != tuple(y_mine.shape):
        report.notes.append(f"gradients not compared: dy has shape {dy64.shape}, minseg's {spec.outputs[0]} "
                            f"{tuple(y_mine.shape)}")
    elif given_grads:
        try:
            mine_grads = backward(dy64)
        except (ValueError, TypeError) as err:
            report.error = f"backward: {err}"
            mine_grads = {}
        for k, v in given_grads.items():
            if k in mine_grads:
                if mine_grads[k] is None:
                    raise ValueError(f"check_op: {spec.name} has no gradient for {k!r} here")
                reports[f"grad.{k}"] = compare(v, mine_grads[k], rtol=rtol, atol=atol, name=f"grad.{k}",
                                               labels=LABELS)
    report.reports = list(reports.values())
    if not report.passed and spec.diagnose is not None:
        ctx = _Ctx(spec, arrays, p, given, mine, reports, dy, given_grads, mine_grads, rtol, atol)
        report.diagnosis = spec.diagnose(ctx)
    return report


def _refusal_hints(spec, arrays, p, err) -> list:
    """Why minseg may refuse a framework's arrays: another weight layout, indices over more than one plane."""
    hints = []
    w = arrays.get("weight")
    if spec.name in ("conv2d", "conv_transpose2d") and w is not None and w.ndim == 4:
        hwio = np.ascontiguousarray(w.transpose(3, 2, 0, 1))
        try:
            spec.forward({**arrays, "weight": hwio}, p)
            hints.append(f"the weight of shape {w.shape} works as {hwio.shape} = weight.transpose(3, 2, 0, 1): it "
                         "looks like TensorFlow / JAX's HWIO layout; save it in PyTorch's OIHW layout")
        except (ValueError, TypeError):
            pass
    if spec.name == "linear" and w is not None and w.ndim == 2:
        try:
            spec.forward({**arrays, "weight": np.ascontiguousarray(w.T)}, p)
            hints.append(f"the weight of shape {w.shape} works transposed: TensorFlow / JAX keep a dense kernel "
                         "as (in, out); PyTorch and minseg as (out, in), save kernel.T")
        except (ValueError, TypeError):
            pass
    if spec.name == "max_unpool2d" and "expected indices in [0," in str(err):
        hints.append("indices past one output plane: minseg (like PyTorch) numbers h * W + w within each (n, c) "
                     "plane; tf.nn.max_pool_with_argmax flattens over (H, W, C), or the whole batch with "
                     "include_batch_in_index=True, in NHWC")
    return hints


# --------------------------------------------------------------------------- convolution

def _pads_same(k, d):
    """PyTorch's padding='same' (stride 1): ``d (k - 1)`` per axis, the odd pixel at the bottom / right."""
    return [(dd * (kk - 1) // 2, dd * (kk - 1) - dd * (kk - 1) // 2) for kk, dd in zip(k, d)]


def _pads_tf_same(H, W, k, s, d):
    """TensorFlow's padding='SAME': output ceil(n / s), the padding it needs split with the extra at the end."""
    out = []
    for n, kk, ss, dd in ((H, k[0], s[0], d[0]), (W, k[1], s[1], d[1])):
        need = max((math.ceil(n / ss) - 1) * ss + dd * (kk - 1) + 1 - n, 0)
        out.append((need // 2, need - need // 2))
    return out


def _conv2d_padded(x, w, b, pads, stride, dilation, groups):
    """conv2d with explicit (top, bottom), (left, right) zero padding: pad, convolve, crop the gradient."""
    (t, bo), (le, ri) = pads
    x_pad = np.pad(x, ((0, 0), (0, 0), (t, bo), (le, ri)))                 # (N, C, H + t + bo, W + le + ri)
    y, cache = ops.conv2d(x_pad, w, b, stride=stride, padding=0, dilation=dilation, groups=groups)
    H, W = x.shape[2:]

    def backward(dy):
        dx, dw, db = ops.conv2d_backward(dy, cache)
        return {"input": dx[:, :, t:t + H, le:le + W], "weight": dw, "bias": db}
    return {"output": y}, backward


def _conv2d(inp, p):
    x, w, b = inp["input"], inp["weight"], inp.get("bias")
    if isinstance(p["padding"], str):
        if p["padding"] not in ("same", "valid"):
            raise ValueError(f"conv2d: expected padding an int, a pair, 'same' or 'valid', got {p['padding']!r}")
        if p["padding"] == "valid":
            pads = ((0, 0), (0, 0))
        else:
            if pair(p["stride"], "stride", "conv2d") != (1, 1):
                raise ValueError(f"conv2d: padding='same' needs stride 1 (as in PyTorch), got {p['stride']!r}")
            pads = _pads_same(w.shape[2:], pair(p["dilation"], "dilation", "conv2d"))
        return _conv2d_padded(x, w, b, pads, p["stride"], p["dilation"], p["groups"])
    y, cache = ops.conv2d(x, w, b, stride=p["stride"], padding=p["padding"], dilation=p["dilation"],
                          groups=p["groups"])

    def backward(dy):
        dx, dw, db = ops.conv2d_backward(dy, cache)
        return {"input": dx, "weight": dw, "bias": db}
    return {"output": y}, backward


def _flipped(ctx):
    """The kernel rotated by 180 degrees: a true convolution instead of cross-correlation."""
    w = ctx.inputs["weight"]
    inp = {**ctx.inputs, "weight": np.ascontiguousarray(w[:, :, ::-1, ::-1])}
    try:
        out, _ = ctx.spec.forward(inp, ctx.params)
    except (ValueError, TypeError):
        return None
    return out


def _diagnose_conv2d(ctx) -> list:
    out = []
    if not ctx.any_output_failed():
        return out
    alt = _flipped(ctx)
    if alt is not None and ctx.agrees(alt):
        out.append("the output matches minseg with the kernel rotated by 180 degrees: the framework computes a "
                   "true convolution (like scipy.signal.convolve2d); PyTorch and minseg cross-correlate")
    x, w = ctx.inputs["input"], ctx.inputs["weight"]
    s, d = pair(ctx.params["stride"], "stride", "conv2d"), pair(ctx.params["dilation"], "dilation", "conv2d")
    pads = _pads_tf_same(*x.shape[2:], w.shape[2:], s, d)
    try:
        alt, _ = _conv2d_padded(x, w, ctx.inputs.get("bias"), pads, s, d, ctx.params["groups"])
    except (ValueError, TypeError):
        alt = None
    if alt is not None and ctx.agrees(alt):
        symmetric = all(a == b for a, b in pads)
        why = (f"that is padding={(pads[0][0], pads[1][0])}, not the padding the params give" if symmetric else
               "the odd pixel at the bottom / right, which a symmetric PyTorch padding cannot express")
        out.append(f"the output matches TensorFlow's padding='SAME': {pads[0]} rows and {pads[1]} columns "
                   f"(top, bottom), (left, right); {why}")
    return out


_register(OpSpec("conv2d", _conv2d, ("input", "weight"), ("bias",),
                 {"stride": 1, "padding": 0, "dilation": 1, "groups": 1},
                 grads=("input", "weight", "bias"), diagnose=_diagnose_conv2d,
                 summary="F.conv2d (padding may be 'same' or 'valid')"))


def _conv_transpose2d(inp, p):
    y, cache = ops.conv_transpose2d(inp["input"], inp["weight"], inp.get("bias"), stride=p["stride"],
                                    padding=p["padding"], output_padding=p["output_padding"],
                                    dilation=p["dilation"], groups=p["groups"])

    def backward(dy):
        dx, dw, db = ops.conv_transpose2d_backward(dy, cache)
        return {"input": dx, "weight": dw, "bias": db}
    return {"output": y}, backward


def _diagnose_conv_transpose2d(ctx) -> list:
    out = []
    if not ctx.any_output_failed():
        return out
    given = ctx.given.get("output")
    s = pair(ctx.params["stride"], "stride", "conv_transpose2d")
    d = pair(ctx.params["dilation"], "dilation", "conv_transpose2d")
    op0 = pair(ctx.params["output_padding"], "output_padding", "conv_transpose2d")
    if given is not None and given.ndim == 4:
        mine = ctx.mine["output"]
        want = tuple(op0[a] + given.shape[2 + a] - mine.shape[2 + a] for a in range(2))
        if want != op0 and all(0 <= want[a] < max(s[a], d[a]) for a in range(2)):
            alt = ctx.try_forward(output_padding=want)
            if alt is not None and ctx.agrees(alt):
                out.append(f"the output matches minseg with output_padding={want} instead of {op0}: output_padding "
                           "differs (it adds rows / columns at the bottom / right; a stride-s conv2d maps s "
                           "input sizes onto one output size, output_padding picks which to invert)")
            elif alt is not None:
                out.append(f"the framework's output size is what output_padding={want} gives (not {op0}), "
                           "but the values differ even then")
    alt = _flipped(ctx)
    if alt is not None and ctx.agrees(alt):
        out.append("the output matches minseg with the kernel rotated by 180 degrees (a flipped kernel)")
    return out


_register(OpSpec("conv_transpose2d", _conv_transpose2d, ("input", "weight"), ("bias",),
                 {"stride": 1, "padding": 0, "output_padding": 0, "groups": 1, "dilation": 1},
                 grads=("input", "weight", "bias"), diagnose=_diagnose_conv_transpose2d,
                 summary="F.conv_transpose2d, weight (C_in, C_out / groups, KH, KW)"))


# --------------------------------------------------------------------------- pooling

def _max_pool2d(inp, p):
    stride = None if p["stride"] in (None, ()) else p["stride"]
    y, cache = ops.max_pool2d(inp["input"], p["kernel_size"], stride, p["padding"], p["dilation"], p["ceil_mode"])
    return {"output": y, "indices": cache.indices}, lambda dy: {"input": ops.max_pool2d_backward(dy, cache)}


def _empty_windows(n_out, n_in, k, s, p, d):
    """Output positions along one axis whose window has no tap inside the input."""
    taps = np.arange(n_out)[:, None] * s - p + np.arange(k)[None, :] * d   # (n_out, k)
    return np.nonzero(~((taps >= 0) & (taps < n_in)).any(axis=1))[0]


def _diagnose_max_pool2d(ctx) -> list:
    out = []
    p = ctx.params
    x = ctx.inputs["input"]
    if ctx.any_output_failed():
        alt = ctx.try_forward(ceil_mode=not p["ceil_mode"])
        if alt is not None and ctx.agrees(alt):
            out.append(f"the output matches minseg with ceil_mode={not p['ceil_mode']} (the output size is rounded "
                       f"{'up' if not p['ceil_mode'] else 'down'}): ceil_mode differs")
        pad = pair(p["padding"], "padding", "max_pool2d")
        if any(pad):
            xz = np.pad(x, ((0, 0), (0, 0), (pad[0], pad[0]), (pad[1], pad[1])))
            try:
                alt, _ = _max_pool2d({"input": xz}, {**p, "padding": 0})
            except (ValueError, TypeError):
                alt = None
            if alt is not None and ctx.agrees({"output": alt["output"]}):
                out.append("the output matches max-pooling over zero padding: the framework pads with 0; PyTorch "
                           "and minseg pad with -inf, so a negative border never loses to the padding")
    k = pair(p["kernel_size"], "kernel_size", "max_pool2d")
    s = k if p["stride"] in (None, ()) else pair(p["stride"], "stride", "max_pool2d")
    pad = pair(p["padding"], "padding", "max_pool2d")
    d = pair(p["dilation"], "dilation", "max_pool2d")
    H_out, W_out = ctx.mine["output"].shape[2:]
    rows = _empty_windows(H_out, x.shape[2], k[0], s[0], pad[0], d[0])
    cols = _empty_windows(W_out, x.shape[3], k[1], s[1], pad[1], d[1])
    if rows.size or cols.size:
        where = ", ".join(([f"output rows {list(map(int, rows))}"] if rows.size else [])
                          + ([f"output columns {list(map(int, cols))}"] if cols.size else []))
        out.append(f"windows lie entirely in the padding ({where}): the output there is -inf; minseg sends their "
                   "gradient nowhere, while PyTorch reports an index outside the plane and adds their gradient "
                   "there, so indices and the input gradient can differ at those windows")
    given_idx, mine_idx = ctx.given.get("indices"), ctx.mine.get("indices")
    if ctx.failed("indices") and given_idx is not None and given_idx.shape == mine_idx.shape:
        bad = given_idx.astype(np.int64) != mine_idx
        plane = x.reshape(x.shape[0], x.shape[1], -1)                       # (N, C, H*W)
        gi = np.clip(given_idx.astype(np.int64), 0, plane.shape[2] - 1).reshape(*plane.shape[:2], -1)
        mi = mine_idx.reshape(*plane.shape[:2], -1)                          # (N, C, H_out*W_out)
        same_value = np.take_along_axis(plane, gi, 2) == np.take_along_axis(plane, mi, 2)
        if bad.any() and same_value.reshape(bad.shape)[bad].all():
            out.append(f"the indices differ at {int(bad.sum())} windows, all with tied maxima (the same value at "
                       "both indices): minseg, like PyTorch's CPU kernel, takes the first maximum in row-major order")
    return out


_register(OpSpec("max_pool2d", _max_pool2d, ("input",), (),
                 {"kernel_size": REQUIRED, "stride": None, "padding": 0, "dilation": 1, "ceil_mode": False,
                  "return_indices": False},
                 outputs=("output", "indices"), diagnose=_diagnose_max_pool2d,
                 summary="F.max_pool2d; indices are flat offsets h * W + w in each plane"))


def _max_unpool2d(inp, p):
    stride = None if p["stride"] in (None, ()) else p["stride"]
    out_size = p["output_size"]
    if out_size is not None:
        out_size = tuple(out_size)[-2:]
    y, cache = ops.max_unpool2d(inp["input"], inp["indices"], p["kernel_size"], stride, p["padding"], out_size)
    return {"output": y}, lambda dy: {"input": ops.max_unpool2d_backward(dy, cache)}


def _diagnose_max_unpool2d(ctx) -> list:
    out = []
    idx = ctx.inputs["indices"]
    N, C = idx.shape[:2]
    flat = idx.reshape(N * C, -1)                                             # (N*C, H*W)
    repeats = sum(int(row.size - np.unique(row).size) for row in flat)
    if repeats:
        text = (f"the indices repeat ({repeats} writes to a position already written, from overlapping pooling "
                "windows): minseg keeps the last write in row-major order of the input, as PyTorch's CPU kernel "
                "on one thread; with several threads or on CUDA which write survives is not defined")
        r = ctx.reports.get("output")
        if r is not None and r.mismatch_mask is not None and r.n_mismatch:
            y = ctx.mine["output"]
            plane = y.shape[2] * y.shape[3]
            counts = np.stack([np.bincount(row, minlength=plane) for row in flat])  # (N*C, H_out*W_out)
            repeated = (counts > 1).reshape(y.shape)
            if not (r.mismatch_mask & ~repeated).any():
                text += f"; all {r.n_mismatch} output mismatches lie at repeated positions"
        out.append(text)
    return out


_register(OpSpec("max_unpool2d", _max_unpool2d, ("input", "indices"), (),
                 {"kernel_size": REQUIRED, "stride": None, "padding": 0, "output_size": None},
                 integer_inputs=("indices",), diagnose=_diagnose_max_unpool2d,
                 summary="F.max_unpool2d with max_pool2d's indices"))


def _global_avg_pool2d(inp, p):
    y, cache = ops.global_avg_pool2d(inp["input"])
    return {"output": y}, lambda dy: {"input": ops.global_avg_pool2d_backward(dy, cache)}


_register(OpSpec("global_avg_pool2d", _global_avg_pool2d, ("input",), summary="F.adaptive_avg_pool2d(x, 1)"))


def _adaptive_avg_pool2d(inp, p):
    size = p["output_size"]
    if size in (1, (1, 1)):
        return _global_avg_pool2d(inp, {})
    y, cache = ops.adaptive_avg_pool2d(inp["input"], size)
    return {"output": y}, lambda dy: {"input": ops.adaptive_avg_pool2d_backward(dy, cache)}


if hasattr(ops, "adaptive_avg_pool2d"):
    _register(OpSpec("adaptive_avg_pool2d", _adaptive_avg_pool2d, ("input",), (), {"output_size": REQUIRED},
                     summary="F.adaptive_avg_pool2d"))


# --------------------------------------------------------------------------- resizing

def _size_from_scale(x, p):
    """PyTorch's recompute_scale_factor=True: the output size from the scale, then the step in / out."""
    sf = p["scale_factor"]
    sh, sw = (sf, sf) if not isinstance(sf, tuple) else sf
    return (int(math.floor(x.shape[2] * sh)), int(math.floor(x.shape[3] * sw)))


def _resize_args(x, p, op):
    if p.get("antialias"):
        raise ValueError(f"{op}: antialias=True is not an op minseg has")
    size = p["size"]
    if size is not None:
        size = tuple(size)[-2:] if isinstance(size, tuple) else size
    if p.get("recompute_scale_factor") and p["scale_factor"] is not None:
        return _size_from_scale(x, p), None
    return size, p["scale_factor"]


def _bilinear(inp, p):
    x = inp["input"]
    size, sf = _resize_args(x, p, "bilinear_interpolate")
    y, cache = ops.bilinear_interpolate(x, size=size, scale_factor=sf, align_corners=bool(p["align_corners"]))
    return {"output": y}, lambda dy: {"input": ops.bilinear_interpolate_backward(dy, cache)}


def _tf1_matrix(in_size, out_size):
    """TensorFlow 1's resize_bilinear (align_corners=False, half_pixel_centers=False) along one axis.

    ``src = dst * in / out`` (no half-pixel offset), ``i0 = floor(src)``,
    ``i1 = min(i0 + 1, in - 1)``, ``lambda = src - i0``: the output grid is
    anchored at the top-left corner, ``0.5 * (1 - in / out)`` input pixels
    from PyTorch's ``(dst + 0.5) * in / out - 0.5``. Used as a diagnosis only.

    Returns
    -------
    A : ndarray of float64, shape (out_size, in_size), ``y = A @ x`` along the axis
    """
    src = np.arange(out_size) * (in_size / out_size)                          # (out,)
    i0 = np.minimum(np.floor(src).astype(np.int64), in_size - 1)
    i1 = np.minimum(i0 + 1, in_size - 1)
    lam = src - i0
    A = np.zeros((out_size, in_size))
    rows = np.arange(out_size)
    A[rows, i0] = 1.0 - lam
    A[rows, i1] += lam
    return A


def _tf1_resize(x, out_hw):
    A_h, A_w = _tf1_matrix(x.shape[2], out_hw[0]), _tf1_matrix(x.shape[3], out_hw[1])
    return np.einsum("oh,nchw,pw->ncop", A_h, x, A_w)                         # (N, C, H_out, W_out)


def _diagnose_bilinear(ctx) -> list:
    out = []
    if not ctx.any_output_failed():
        return out
    p = ctx.params
    ac = bool(p["align_corners"])
    alt = ctx.try_forward(align_corners=not ac)
    if alt is not None and ctx.agrees(alt):
        out.append(f"the output matches minseg with align_corners={not ac}: the framework uses the other "
                   "convention (True: src = dst * (in - 1) / (out - 1), corner pixel centres aligned; False: "
                   "src = (dst + 0.5) * in / out - 0.5, pixels as areas)")
    y = ctx.mine["output"]
    tf1 = _tf1_resize(ctx.inputs["input"], y.shape[2:])
    if ctx.agrees({"output": tf1}):
        out.append("the output matches TensorFlow 1's asymmetric resize (tf.compat.v1.image.resize_bilinear with "
                   "align_corners=False, half_pixel_centers=False): src = dst * in / out, no half-pixel offset, "
                   "so it samples 0.5 * (1 - in / out) input pixels further down / right and the content shifts "
                   "towards the top-left; TF 2's tf.image.resize (half-pixel centres) agrees with "
                   "align_corners=False")
    if p["scale_factor"] is not None:
        flip = not p.get("recompute_scale_factor")
        alt = ctx.try_forward(recompute_scale_factor=flip)
        if alt is not None and ctx.agrees(alt):
            out.append(f"the output matches minseg with recompute_scale_factor={flip}: with a scale_factor the "
                       "source step is 1 / scale_factor unless the scale is recomputed as in / out")
    return out


_BILINEAR_PARAMS = {"size": None, "scale_factor": None, "align_corners": False, "recompute_scale_factor": None,
                    "antialias": False}
_register(OpSpec("bilinear_interpolate", _bilinear, ("input",), (), dict(_BILINEAR_PARAMS),
                 diagnose=_diagnose_bilinear, summary="F.interpolate(mode='bilinear')"), "upsample_bilinear")


def _nearest(inp, p):
    x = inp["input"]
    size, sf = _resize_args(x, p, "upsample_nearest")
    y, cache = ops.upsample_nearest(x, size=size, scale_factor=sf)
    return {"output": y}, lambda dy: {"input": ops.upsample_nearest_backward(dy, cache)}


def _gather(x, src_h, src_w):
    return x[:, :, src_h][:, :, :, src_w]                                     # (N, C, H_out, W_out)


def _diagnose_nearest(ctx) -> list:
    out = []
    if not ctx.any_output_failed():
        return out
    x, y = ctx.inputs["input"], ctx.mine["output"]
    (H, W), (Ho, Wo) = x.shape[2:], y.shape[2:]
    exact = [np.minimum(np.floor((np.arange(o) + 0.5) * (n / o)).astype(np.int64), n - 1)
             for n, o in ((H, Ho), (W, Wo))]
    if ctx.agrees({"output": _gather(x, *exact)}):
        out.append("the output matches nearest with half-pixel centres, src = floor((dst + 0.5) * in / out) "
                   "(PyTorch's mode='nearest-exact', TF 2's tf.image.resize 'nearest'); mode='nearest' is "
                   "src = floor(dst * in / out)")
    corners = [np.round(np.arange(o) * ((n - 1) / (o - 1) if o > 1 else 0.0)).astype(np.int64)
               for n, o in ((H, Ho), (W, Wo))]
    if ctx.agrees({"output": _gather(x, *corners)}):
        out.append("the output matches TensorFlow 1's resize_nearest_neighbor with align_corners=True: "
                   "src = round(dst * (in - 1) / (out - 1))")
    if ctx.params["scale_factor"] is not None:
        flip = not ctx.params.get("recompute_scale_factor")
        alt = ctx.try_forward(recompute_scale_factor=flip)
        if alt is not None and ctx.agrees(alt):
            out.append(f"the output matches minseg with recompute_scale_factor={flip}")
    return out


_register(OpSpec("upsample_nearest", _nearest, ("input",), (),
                 {"size": None, "scale_factor": None, "recompute_scale_factor": None},
                 diagnose=_diagnose_nearest, summary="F.interpolate(mode='nearest')"))


def _interpolate(inp, p):
    mode = p["mode"]
    if mode == "bilinear":
        return _bilinear(inp, {**p, "align_corners": bool(p["align_corners"])})
    if mode == "nearest":
        if p["align_corners"]:
            raise ValueError("interpolate: align_corners only applies to mode='bilinear' (as in PyTorch)")
        return _nearest(inp, p)
    raise ValueError(f"interpolate: expected mode 'bilinear' or 'nearest' (the modes minseg has), got {mode!r}")


def _diagnose_interpolate(ctx) -> list:
    if ctx.params["mode"] == "bilinear":
        return _diagnose_bilinear(ctx)
    return _diagnose_nearest(ctx)


_register(OpSpec("interpolate", _interpolate, ("input",), (), {"mode": "nearest", **_BILINEAR_PARAMS,
                                                                "align_corners": None},
                 diagnose=_diagnose_interpolate, summary="F.interpolate, mode 'bilinear' or 'nearest'"))


# --------------------------------------------------------------------------- layers

def _batch_norm2d(inp, p):
    x = inp["input"]
    rm, rv = inp.get("running_mean"), inp.get("running_var")
    training, m = bool(p["training"]), p["momentum"]
    y, cache = ops.batch_norm2d(x, inp.get("weight"), inp.get("bias"), running_mean=rm, running_var=rv,
                                training=training, eps=p["eps"])
    out = {"output": y}
    if rm is not None and rv is not None:
        if training:
            if m is None:
                raise ValueError("batch_norm2d: momentum=None (a cumulative average over batches) needs the "
                                 "batch count; minseg checks the exponential average only")
            M = x.shape[0] * x.shape[2] * x.shape[3]
            out["running_mean"] = (1 - m) * rm + m * cache.mean        # PyTorch: new = (1 - m) old + m batch
            out["running_var"] = (1 - m) * rv + m * cache.var * M / (M - 1)  # with the unbiased batch variance
        else:
            out["running_mean"], out["running_var"] = rm, rv

    def backward(dy):
        dx, dg, db = ops.batch_norm2d_backward(dy, cache)
        return {"input": dx, "weight": dg, "bias": db}
    return out, backward


def _diagnose_batch_norm(ctx) -> list:
    out = []
    p = ctx.params
    if ctx.failed("output"):
        rm, rv = ctx.inputs.get("running_mean"), ctx.inputs.get("running_var")
        if p["training"] or (rm is not None and rv is not None):
            alt = ctx.try_forward(training=not p["training"])
            if alt is not None and ctx.agrees({"output": alt["output"]}):
                out.append(f"the output matches minseg with training={not p['training']}: the framework normalised "
                           f"with the {'running' if p['training'] else 'batch'} statistics (model.eval() vs "
                           "model.train(), Keras' training= argument)")
    if (ctx.failed("running_mean") or ctx.failed("running_var")) and p["training"] and p["momentum"] is not None:
        alt = ctx.try_forward(momentum=1 - p["momentum"])
        if alt is not None and ctx.agrees({k: alt[k] for k in ("running_mean", "running_var") if k in alt}):
            out.append(f"the running statistics match momentum={1 - p['momentum']:g}: the framework's momentum is "
                       "the weight of the old value (Keras / TensorFlow); PyTorch's momentum=m is Keras' 1 - m")
        elif ctx.failed("running_var") and not ctx.failed("running_mean"):
            x = ctx.inputs["input"]
            biased = x.var(axis=(0, 2, 3))
            m = p["momentum"]
            if ctx.agrees({"running_var": (1 - m) * ctx.inputs["running_var"] + m * biased}):
                out.append("the running variance matches an update with the biased batch variance (divided by "
                           "N*H*W); PyTorch updates it with the unbiased one (N*H*W - 1)")
    return out


_register(OpSpec("batch_norm2d", _batch_norm2d, ("input",), ("running_mean", "running_var", "weight", "bias"),
                 {"training": False, "momentum": 0.1, "eps": 1e-5},
                 outputs=("output", "running_mean", "running_var"), grads=("input", "weight", "bias"),
                 diagnose=_diagnose_batch_norm,
                 summary="F.batch_norm; running_mean / running_var outputs are the updated statistics"),
          "batch_norm")


def _relu(inp, p):
    y, cache = ops.relu(inp["input"])
    return {"output": y}, lambda dy: {"input": ops.relu_backward(dy, cache)}


_register(OpSpec("relu", _relu, ("input",), summary="F.relu"))


def _linear(inp, p):
    y, cache = ops.linear(inp["input"], inp["weight"], inp.get("bias"))

    def backward(dy):
        dx, dw, db = ops.linear_backward(dy, cache)
        return {"input": dx, "weight": dw, "bias": db}
    return {"output": y}, backward


_register(OpSpec("linear", _linear, ("input", "weight"), ("bias",), grads=("input", "weight", "bias"),
                 summary="F.linear, weight (D_out, D_in)"))


def _dropout(inp, p):
    if p["training"] and p["p"] > 0:
        raise ValueError(f"dropout: training=True with p={p['p']!r} draws a random mask, which minseg cannot "
                         "replay; check it in evaluation mode (training=False) or with p=0")
    y, cache = ops.dropout(inp["input"], p["p"], training=False)
    return {"output": y}, lambda dy: {"input": ops.dropout_backward(dy, cache)}


_register(OpSpec("dropout", _dropout, ("input",), (), {"p": 0.5, "training": False},
                 summary="F.dropout in evaluation mode (or p=0): the identity"))


def _softmax_family(forward, backward):
    def run(inp, p):
        y, cache = forward(inp["input"], axis=p["dim"])
        return {"output": y}, lambda dy: {"input": backward(dy, cache)}
    return run


def _diagnose_softmax(ctx) -> list:
    out = []
    x = ctx.inputs["input"]
    for axis in range(x.ndim):
        if axis != ctx.params["dim"] % x.ndim:
            alt = ctx.try_forward(dim=axis)
            if alt is not None and ctx.agrees(alt):
                out.append(f"the output matches minseg with dim={axis} instead of {ctx.params['dim']} (NHWC "
                           "frameworks normalise the last axis)")
    return out


_register(OpSpec("softmax", _softmax_family(ops.softmax, ops.softmax_backward), ("input",), (), {"dim": 1},
                 diagnose=_diagnose_softmax, summary="F.softmax (dim defaults to 1, the channels)"))
_register(OpSpec("log_softmax", _softmax_family(ops.log_softmax, ops.log_softmax_backward), ("input",), (),
                 {"dim": 1}, diagnose=_diagnose_softmax, summary="F.log_softmax (dim defaults to 1)"))


def _cross_entropy(inp, p):
    if p["label_smoothing"]:
        raise ValueError(f"cross_entropy: label_smoothing={p['label_smoothing']!r} is not in minseg's loss "
                         "(only 0.0)")
    loss, cache = ops.cross_entropy(inp["input"], inp["target"], weight=inp.get("weight"),
                                    ignore_index=p["ignore_index"], reduction=p["reduction"])
    return {"output": loss}, lambda dy: {"input": ops.cross_entropy_backward(dy, cache)}


def _diagnose_cross_entropy(ctx) -> list:
    out = []
    if not ctx.failed("output"):
        return out
    red = ctx.params["reduction"]
    for other in ("mean", "sum"):
        if other != red:
            alt = ctx.try_forward(reduction=other)
            if alt is not None and ctx.agrees(alt):
                out.append(f"the loss matches minseg with reduction={other!r} instead of {red!r}")
    if red == "mean":
        total = ctx.try_forward(reduction="sum")
        n_all = ctx.inputs["target"].size
        if total is not None and ctx.agrees({"output": total["output"] / n_all}):
            out.append(f"the loss matches the sum over all {n_all} pixels divided by their count: the framework "
                       "counts ignored pixels in the mean; PyTorch and minseg divide by the (weighted) number of "
                       "pixels that are not ignore_index")
    return out


_register(OpSpec("cross_entropy", _cross_entropy, ("input", "target"), ("weight",),
                 {"ignore_index": -100, "reduction": "mean", "label_smoothing": 0.0},
                 integer_inputs=("target",), diagnose=_diagnose_cross_entropy,
                 summary="F.cross_entropy over (N, C, H, W) logits and (N, H, W) targets; weight: class weights"))


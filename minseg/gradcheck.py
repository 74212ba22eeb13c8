"""Gradient checking: compare a hand-written backward with central differences, in float64.

For an op ``y = f(x1, x2, ...)`` and a fixed upstream gradient ``dy``, the
scalar ``L = sum(f(...) * dy)`` has, for every input ``x``,

    dL/dx[i] ~= (L(x + eps e_i) - L(x - eps e_i)) / (2 eps)

with error ``O(eps^2)`` from truncation plus ``O(u / eps)`` from round-off
(``u`` ~ 1e-16 in float64). ``eps = 1e-6`` balances the two, so a correct
backward agrees to about 1e-9 relative; a wrong sign, a transposed kernel or
an off-by-one is off by order 1.

Typical use, in an exercise::

    >>> from minseg.ops import conv2d, conv2d_backward
    >>> report = check_backward(conv2d, conv2d_backward, {"x": x, "w": w, "b": b},
    ...                         stride=2, padding=1)
    >>> print(report)        # one row per input: errors, worst element, ok / FAIL
    >>> assert report.passed

References
----------
CS231n, "Gradient checks" (http://cs231n.github.io/neural-networks-3/#gradcheck).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Mapping, Sequence

import numpy as np

from .backend import get_array_module, to_numpy

__all__ = ["rel_error", "numerical_gradient", "check_backward", "GradcheckReport", "GradientRow"]


def rel_error(a, b, floor: float = 1e-12) -> float:
    """Largest elementwise relative error ``|a - b| / max(|a|, |b|, floor)``.

    Parameters
    ----------
    a, b : array_like of the same shape
    floor : float
        Denominators are at least this, so entries that are both ~0 do not
        blow up the ratio.

    Returns
    -------
    float
        0 for identical arrays (and for empty ones).
    """
    a = to_numpy(a).astype(np.float64)
    b = to_numpy(b).astype(np.float64)
    if a.shape != b.shape:
        raise ValueError(f"rel_error: expected a and b of the same shape, got {a.shape} and {b.shape}")
    if a.size == 0:
        return 0.0
    den = np.maximum(np.maximum(np.abs(a), np.abs(b)), floor)
    return float(np.max(np.abs(a - b) / den))


def numerical_gradient(f: Callable, x, dy, eps: float = 1e-6):
    """Central-difference gradient of ``L(x) = sum(f(x) * dy)`` with respect to ``x``.

    Parameters
    ----------
    f : callable
        ``f(x) -> y``; called ``2 * x.size`` times. ``x`` is perturbed in place
        and restored, so ``f`` must read it fresh on every call.
    x : ndarray, any shape, float64
    dy : ndarray, shape of ``f(x)``
    eps : float

    Returns
    -------
    ndarray, shape of x
        ``grad[i] = (L(x + eps e_i) - L(x - eps e_i)) / (2 eps)``.
    """
    xp = get_array_module(x, dy)
    grad = xp.zeros_like(x)
    if not x.flags.c_contiguous:
        raise ValueError("numerical_gradient: expected a C-contiguous x (it is perturbed in place), "
                         "got a non-contiguous view; pass x.copy()")
    flat = x.reshape(-1)  # (x.size,), a view: writes perturb x itself
    gflat = grad.reshape(-1)
    for i in range(flat.size):
        old = flat[i].item()
        flat[i] = old + eps
        plus = float((f(x) * dy).sum())
        flat[i] = old - eps
        minus = float((f(x) * dy).sum())
        flat[i] = old
        gflat[i] = (plus - minus) / (2 * eps)
    return grad


@dataclass
class GradientRow:
    """The comparison for one input: analytic vs numerical gradient."""

    name: str
    shape: tuple
    max_abs_error: float
    max_rel_error: float
    worst_index: tuple
    analytic_at_worst: float
    numerical_at_worst: float
    passed: bool


@dataclass
class GradcheckReport:
    """What ``check_backward`` found: one ``GradientRow`` per checked input.

    ``print(report)`` shows a table; ``report.passed`` is True when every
    row is within tolerance: ``|analytic - numerical| <= atol + rtol * |numerical|``
    elementwise.
    """

    op: str
    rows: list = field(default_factory=list)
    rtol: float = 1e-5
    atol: float = 1e-7

    @property
    def passed(self) -> bool:
        return all(r.passed for r in self.rows)

    @property
    def max_rel_error(self) -> float:
        return max((r.max_rel_error for r in self.rows), default=0.0)

    def __str__(self) -> str:
        head = f"gradcheck {self.op}: {'PASS' if self.passed else 'FAIL'}  " \
               f"(ok when |analytic - numerical| <= {self.atol:g} + {self.rtol:g} * |numerical|)"
        cols = ("input", "shape", "max abs err", "max rel err", "worst at", "analytic", "numerical", "")
        lines = [(r.name, str(r.shape), f"{r.max_abs_error:.2e}", f"{r.max_rel_error:.2e}",
                  str(r.worst_index), f"{r.analytic_at_worst:.6g}", f"{r.numerical_at_worst:.6g}",
                  "ok" if r.passed else "FAIL") for r in self.rows]
        widths = [max(len(c), *(len(l[i]) for l in lines)) if lines else len(c) for i, c in enumerate(cols)]
        fmt = "  ".join(f"{{:<{w}}}" for w in widths)
        out = [head, fmt.format(*cols), fmt.format(*("-" * w for w in widths))]
        out += [fmt.format(*l) for l in lines]
        return "\n".join(out)

    __repr__ = __str__


def _compare(name, analytic, numerical, rtol, atol) -> GradientRow:
    a = to_numpy(analytic).astype(np.float64)
    n = to_numpy(numerical).astype(np.float64)
    if a.shape != n.shape:
        raise ValueError(f"check_backward: expected the gradient of {name} with shape {n.shape}, "
                         f"got shape {a.shape}")
    if a.size == 0:
        return GradientRow(name, a.shape, 0.0, 0.0, (), 0.0, 0.0, True)
    err = np.abs(a - n)
    excess = err / (atol + rtol * np.abs(n))  # > 1 means out of tolerance
    worst = np.unravel_index(int(np.argmax(excess)), a.shape)
    return GradientRow(
        name=name, shape=a.shape, max_abs_error=float(err.max()), max_rel_error=rel_error(a, n),
        worst_index=tuple(int(i) for i in worst), analytic_at_worst=float(a[worst]),
        numerical_at_worst=float(n[worst]), passed=bool(excess.max() <= 1.0))


def check_backward(forward: Callable, backward: Callable, inputs, *, dy=None, seed: int = 0,
                   eps: float = 1e-6, rtol: float = 1e-5, atol: float = 1e-7,
                   wrt: Sequence[str] | None = None, name: str | None = None, **hyper) -> GradcheckReport:
    """Check every gradient an op's backward returns against central differences, in float64.

    Parameters
    ----------
    forward : callable
        ``forward(*inputs, **hyper) -> (y, cache)``, a minseg op.
    backward : callable
        ``backward(dy, cache) -> grad`` or a tuple of grads, one per input
        in order (``None`` for an input with no gradient).
    inputs : dict name -> ndarray, or a sequence of ndarrays
        Float arrays are converted to float64 copies; the originals are never
        modified. ``None`` entries (e.g. no bias) and integer arrays (indices,
        labels) are passed through and not checked.
    dy : ndarray, optional
        Upstream gradient; a seeded standard normal of y's shape by default.
    seed : int
        Seed for ``dy``.
    eps, rtol, atol : float
        Step of the central differences, and the tolerance.
    wrt : sequence of str, optional
        Names of the inputs to check (default: every input with a gradient).
    name : str, optional
        Shown in the report; the forward's name and hyper-parameters by default.
    **hyper
        Keyword hyper-parameters passed to ``forward``.

    Returns
    -------
    GradcheckReport
        Prints as a table; ``.passed`` is the verdict.
    """
    if isinstance(inputs, Mapping):
        names, values = list(inputs.keys()), list(inputs.values())
    else:
        values = list(inputs)
        names = [f"input{i}" for i in range(len(values))]
    xp = get_array_module(*values)
    # float inputs become float64 copies; integer inputs (indices, labels) pass through unchecked
    values = [v if v is None or xp.asarray(v).dtype.kind != "f" else xp.array(v, dtype=np.float64)
              for v in values]

    y, cache = forward(*values, **hyper)
    if dy is None:
        dy = xp.asarray(np.random.default_rng(seed).standard_normal(y.shape))
    else:
        dy = xp.asarray(dy, dtype=np.float64)
    grads = backward(dy, cache)
    if not isinstance(grads, tuple):
        grads = (grads,)
    # one gradient per input: a backward may leave off trailing ones (e.g. no db without a bias)
    grads = tuple(grads) + (None,) * (len(values) - len(grads))

    hyper_txt = ", ".join(f"{k}={v!r}" for k, v in hyper.items())
    report = GradcheckReport(name or f"{getattr(forward, '__name__', 'op')}({hyper_txt})", rtol=rtol, atol=atol)
    for i, (n, v) in enumerate(zip(names, values)):
        if v is None or v.dtype.kind != "f" or i >= len(grads) or grads[i] is None or (wrt is not None and n not in wrt):
            continue

        def f_i(x_i, i=i):
            args = list(values)
            args[i] = x_i
            return forward(*args, **hyper)[0]

        num = numerical_gradient(f_i, v, dy, eps)
        report.rows.append(_compare(n, grads[i], num, rtol, atol))
    return report


# --------------------------------------------------------------------------- the built-in suite

@dataclass
class SuiteCase:
    """One entry of the suite run by ``minseg gradcheck``: an op, its inputs and hyper-parameters."""

    name: str
    forward: Callable
    backward: Callable
    make_inputs: Callable  # rng -> dict name -> float64 array
    hyper: dict = field(default_factory=dict)


def builtin_cases() -> list:
    """The gradient checks that ``minseg gradcheck`` runs: every op with a backward, on tiny inputs."""
    from . import ops  # noqa: PLC0415  (gradcheck sits below ops; import on use)

    def conv_inputs(C, C_out, groups, k=(3, 3), H=7, W=6, bias=True):
        def make(rng):
            return {"x": rng.standard_normal((2, C, H, W)),
                    "w": rng.standard_normal((C_out, C // groups, *k)),
                    "b": rng.standard_normal(C_out) if bias else None}
        return make

    def tconv_inputs(C, C_out, groups, k, H, W):
        def make(rng):  # transposed-conv weights are (C_in, C_out // groups, KH, KW)
            return {"x": rng.standard_normal((2, C, H, W)), "w": rng.standard_normal((C, C_out // groups, *k)),
                    "b": rng.standard_normal(C_out)}
        return make

    def tie_free(shape):
        def make(rng):  # distinct values, so the max of every window is unique
            return {"x": rng.permutation(int(np.prod(shape))).reshape(shape) / 10.0}
        return make

    def unpool_inputs(rng):
        pooled, cache = ops.max_pool2d(rng.permutation(2 * 3 * 8 * 8).reshape(2, 3, 8, 8) / 10.0, 2)
        return {"x": rng.standard_normal(pooled.shape), "indices": cache.indices}

    def normal(*shapes, names=("x",)):
        def make(rng):
            return {n: rng.standard_normal(sh) for n, sh in zip(names, shapes)}
        return make

    def ce_inputs(rng):
        target = rng.integers(0, 4, size=(2, 5, 6))
        target[0, 0, :3] = 255  # ignored pixels
        return {"logits": rng.standard_normal((2, 4, 5, 6)), "target": target}

    cases = [
        SuiteCase("conv2d 3x3", ops.conv2d, ops.conv2d_backward, conv_inputs(3, 4, 1), dict(padding=1)),
        SuiteCase("conv2d strided", ops.conv2d, ops.conv2d_backward, conv_inputs(3, 4, 1, (2, 3)),
                  dict(stride=(2, 1), padding=(0, 1))),
        SuiteCase("conv2d dilated", ops.conv2d, ops.conv2d_backward, conv_inputs(2, 3, 1, H=9, W=9),
                  dict(padding=2, dilation=2)),
        SuiteCase("conv2d grouped", ops.conv2d, ops.conv2d_backward, conv_inputs(4, 6, 2, bias=False),
                  dict(groups=2)),
        SuiteCase("conv2d depthwise", ops.conv2d, ops.conv2d_backward, conv_inputs(3, 3, 3),
                  dict(padding=1, groups=3)),
        SuiteCase("conv_transpose2d", ops.conv_transpose2d, ops.conv_transpose2d_backward,
                  tconv_inputs(3, 4, 1, (4, 4), H=4, W=5), dict(stride=2, padding=1)),
        SuiteCase("conv_transpose2d dilated", ops.conv_transpose2d, ops.conv_transpose2d_backward,
                  tconv_inputs(4, 6, 2, (3, 3), H=4, W=4), dict(stride=3, padding=1, output_padding=2,
                                                               dilation=2, groups=2)),
        SuiteCase("max_pool2d", ops.max_pool2d, ops.max_pool2d_backward, tie_free((2, 3, 7, 8)),
                  dict(kernel_size=3, stride=2, padding=1)),
        SuiteCase("max_pool2d ceil dilated", ops.max_pool2d, ops.max_pool2d_backward, tie_free((1, 2, 9, 9)),
                  dict(kernel_size=2, stride=2, dilation=2, ceil_mode=True)),
        SuiteCase("max_unpool2d", ops.max_unpool2d, ops.max_unpool2d_backward, unpool_inputs, dict(kernel_size=2)),
        SuiteCase("bed_of_nails_unpool", ops.bed_of_nails_unpool, ops.bed_of_nails_unpool_backward,
                  normal((2, 3, 4, 5)), dict(stride=2)),
        SuiteCase("upsample_nearest", ops.upsample_nearest, ops.upsample_nearest_backward,
                  normal((2, 3, 4, 5)), dict(size=(7, 9))),
        SuiteCase("bilinear", ops.bilinear_interpolate, ops.bilinear_interpolate_backward,
                  normal((2, 3, 4, 5)), dict(size=(9, 7), align_corners=False)),
        SuiteCase("bilinear align_corners", ops.bilinear_interpolate, ops.bilinear_interpolate_backward,
                  normal((2, 3, 5, 4)), dict(scale_factor=1.5, align_corners=True)),
        SuiteCase("global_avg_pool2d", ops.global_avg_pool2d, ops.global_avg_pool2d_backward, normal((2, 3, 4, 5))),
        SuiteCase("broadcast_to_size", ops.broadcast_to_size, ops.broadcast_to_size_backward,
                  normal((2, 3, 1, 1)), dict(size=(4, 5))),
        SuiteCase("l2_normalize", ops.l2_normalize, ops.l2_normalize_backward, normal((2, 3, 4, 5))),
        SuiteCase("relu", ops.relu, ops.relu_backward, normal((2, 3, 4, 5))),
        SuiteCase("softmax", ops.softmax, ops.softmax_backward, normal((2, 4, 3, 3))),
        SuiteCase("log_softmax", ops.log_softmax, ops.log_softmax_backward, normal((2, 4, 3, 3))),
        SuiteCase("linear", ops.linear, ops.linear_backward,
                  normal((3, 5), (4, 5), (4,), names=("x", "w", "b"))),
        SuiteCase("batch_norm2d", ops.batch_norm2d, ops.batch_norm2d_backward,
                  normal((3, 2, 4, 5), (2,), (2,), names=("x", "gamma", "beta"))),
        SuiteCase("cross_entropy", ops.cross_entropy, ops.cross_entropy_backward, ce_inputs,
                  dict(ignore_index=255)),
        SuiteCase("adaptive_avg_pool2d overlapping", ops.adaptive_avg_pool2d, ops.adaptive_avg_pool2d_backward,
                  normal((2, 3, 7, 5)), dict(output_size=(3, 4))),
        SuiteCase("adaptive_avg_pool2d larger", ops.adaptive_avg_pool2d, ops.adaptive_avg_pool2d_backward,
                  normal((2, 2, 3, 4)), dict(output_size=(5, 7))),
        SuiteCase("adaptive_max_pool2d", ops.adaptive_max_pool2d, ops.adaptive_max_pool2d_backward,
                  tie_free((2, 3, 7, 6)), dict(output_size=(3, 4))),
        SuiteCase("adaptive_max_pool2d larger", ops.adaptive_max_pool2d, ops.adaptive_max_pool2d_backward,
                  tie_free((1, 2, 3, 4)), dict(output_size=(4, 6))),
        SuiteCase("spatial_pyramid_pool max", ops.spatial_pyramid_pool, ops.spatial_pyramid_pool_backward,
                  tie_free((2, 2, 7, 9)), dict(levels=(4, 2, 1), mode="max")),
        SuiteCase("spatial_pyramid_pool avg", ops.spatial_pyramid_pool, ops.spatial_pyramid_pool_backward,
                  normal((2, 2, 5, 6)), dict(levels=(3, 2, 1), mode="avg")),
    ]
    return cases


def run_suite(cases=None, seed: int = 0, verbose: bool = False, out=print) -> bool:
    """Run every case, print one table row per case (and each full report when ``verbose``).

    Returns
    -------
    bool
        True when every case passed.
    """
    cases = builtin_cases() if cases is None else cases
    rows = []
    for i, case in enumerate(cases):
        rng = np.random.default_rng(seed + i)
        report = check_backward(case.forward, case.backward, case.make_inputs(rng), name=case.name, **case.hyper)
        if verbose:
            out(str(report) + "\n")
        hyper = ", ".join(f"{k}={v}" for k, v in case.hyper.items()) or "-"
        worst = max(report.rows, key=lambda r: r.max_rel_error) if report.rows else None
        rows.append((case.name, hyper, ", ".join(r.name for r in report.rows),
                     f"{report.max_rel_error:.1e}", worst.name if worst else "-",
                     "ok" if report.passed else "FAIL"))
    head = ("op", "hyper-parameters", "inputs", "max rel err", "worst", "")
    widths = [max(len(h), *(len(r[j]) for r in rows)) for j, h in enumerate(head)]
    fmt = "  ".join(f"{{:<{w}}}" for w in widths)
    out(fmt.format(*head))
    out(fmt.format(*("-" * w for w in widths)))
    for r in rows:
        out(fmt.format(*r))
    n_fail = sum(r[-1] == "FAIL" for r in rows)
    out(f"\n{len(rows) - n_fail}/{len(rows)} gradient checks passed (float64 central differences)")
    return n_fail == 0

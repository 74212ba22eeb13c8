"""``check_torch_model``: a PyTorch model layer by layer against minseg, and the first layer that diverges.

The model runs forward and backward once, with a seeded upstream gradient,
while hooks on every leaf module record what each call saw: its input (before
the call, so an in-place layer cannot overwrite it), its output, the gradient
that reached its output and the one it sent to its input, and the buffers a
batch norm reads and updates. Then every call of a supported layer is
replayed with ``check_op`` (minseg's op in float64, on exactly the captured
inputs), so each layer is judged on its own: an error does not propagate,
and the first row that fails is the layer that differs.

Supported leaf modules and the op they replay as:

    Conv2d (zeros padding)          conv2d           stride, padding (also 'same' / 'valid'), dilation, groups
    ConvTranspose2d                 conv_transpose2d output_padding (from the output size when given to forward)
    BatchNorm2d                     batch_norm2d     train and eval mode, momentum (also None: cumulative)
    ReLU                            relu
    MaxPool2d                       max_pool2d       with and without return_indices, ceil_mode, dilation
    MaxUnpool2d                     max_unpool2d     output size from the captured output
    Upsample, UpsamplingBilinear2d,
    UpsamplingNearest2d             interpolate      bilinear / nearest, both align_corners
    AdaptiveAvgPool2d               adaptive_avg_pool2d
    Dropout, Dropout2d              dropout          evaluation mode or p=0 (a random mask cannot be replayed)
    Linear                          linear           2-D input
    Softmax, LogSoftmax             softmax, log_softmax

Any other leaf module (and a supported one in a state minseg cannot replay)
is listed as skipped with the reason, never counted as passed. The model is
deep-copied first: its parameters, buffers and ``.grad`` are left as they were.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass, field

import numpy as np

from .compare import TextReport
from .op import OpReport, check_op
from .pytorch import require_torch

__all__ = ["check_torch_model", "ModelReport", "LayerRow"]


@dataclass
class LayerRow:
    """One call of one leaf module: what was replayed and how it compared (or why it was skipped)."""

    index: int
    name: str
    type: str
    op: str | None = None
    report: OpReport | None = None
    skipped: str | None = None
    notes: list = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return self.report is not None and self.report.passed

    def errors(self) -> dict:
        """name -> ``max |minseg - torch| / max |torch|`` (inf for a shape mismatch), per compared array."""
        if self.report is None:
            return {}
        return {r.name: (np.inf if r.problem else r.scaled_error) for r in self.report.reports}


@dataclass(repr=False)
class ModelReport(TextReport):
    """What ``check_torch_model`` found: one row per layer call in execution order.

    ``passed`` (every replayed layer matches; skipped layers are listed, not counted), ``rows``,
    ``first_divergence`` (the first row that fails, or None), ``skipped`` (the rows not replayed).
    """

    model: str
    dtype: str
    rows: list
    output_shape: tuple

    @property
    def replayed(self) -> list:
        return [r for r in self.rows if r.skipped is None]

    @property
    def skipped(self) -> list:
        return [r for r in self.rows if r.skipped is not None]

    @property
    def first_divergence(self) -> LayerRow | None:
        return next((r for r in self.replayed if not r.passed), None)

    @property
    def passed(self) -> bool:
        return bool(self.replayed) and all(r.passed for r in self.replayed)

    def __bool__(self) -> bool:
        return self.passed

    def lines(self) -> list:
        first = self.first_divergence
        n_fail = sum(not r.passed for r in self.replayed)
        head = (f"check_torch_model: {self.model} ({self.dtype}), {len(self.replayed)} layer calls replayed, "
                f"{n_fail} diverge, {len(self.skipped)} skipped: "
                + ("PASS" if self.passed else (f"FAIL, first divergence at #{first.index} {first.name} ({first.type})"
                                                if first else "nothing replayed")))
        table = []
        for r in self.replayed:
            e = r.errors()
            out = e.get("output", None)
            dx = e.get("grad.input")
            params = ", ".join(f"{k[5:]} {v:.1e}" for k, v in e.items()
                               if k.startswith("grad.") and k != "grad.input")
            others = ", ".join(f"{k} {v:.1e}" for k, v in e.items()
                               if not k.startswith("grad.") and k != "output")
            verdict = "ok" if r.passed else ("FAIL" + ("  <- first divergence" if r is first else ""))
            table.append((f"{r.index}", r.name, r.type, r.op or "", "-" if out is None else f"{out:.1e}",
                           "-" if dx is None else f"{dx:.1e}", params or "-", others or "-", verdict))
        heads = ("#", "layer", "type", "op", "output err", "input-grad err", "param-grad err", "other outputs",
                 "verdict")
        lines = [head]
        if table:
            widths = [max(len(row[i]) for row in [heads] + table) for i in range(len(heads))]
            fmt = lambda row: "  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip()  # noqa: E731
            lines += ["  " + fmt(heads)] + ["  " + fmt(row) for row in table]
        lines.append("  err = max |minseg - torch| / max |torch| (at least atol) of each array; every layer replayed "
                     "on its own captured inputs")
        if self.skipped:
            lines.append("  skipped (not replayed, not counted as passed): " +
                         "; ".join(f"#{r.index} {r.name} ({r.type}: {r.skipped})" for r in self.skipped))
        notes = [(r, n) for r in self.replayed for n in r.notes]
        for r, n in notes:
            lines.append(f"  note on #{r.index} {r.name}: {n}")
        if first is not None:
            lines += ["", f"first divergence, #{first.index} {first.name} ({first.type}):"]
            lines += ["  " + line for line in first.report.lines()]
        return lines


# --------------------------------------------------------------------------- capture

@dataclass
class _Call:
    name: str
    module: object
    inputs: tuple
    output: object
    before: dict                       # buffers read by the call, cloned before it (batch norm's running stats)
    after: dict                        # the same buffers after it
    kwargs: dict
    dy: object = None
    dx: object = None


def _np(t):
    return None if t is None else t.detach().cpu().numpy().copy()


def _pair(v):
    return tuple(v) if isinstance(v, (tuple, list)) else v


def _replay_args(torch, call: _Call, n_calls: int):
    """``(op, inputs, params, outputs, grads)`` for ``check_op``, or a string saying why it is skipped."""
    nn = torch.nn
    m = call.module
    x = call.inputs[0] if call.inputs else None
    y = call.output
    if not isinstance(x, np.ndarray):
        return "its first input is not a tensor"
    grads = {"input": call.dx} if call.dx is not None else {}

    def with_params(*names):
        if n_calls > 1:
            return
        for k in names:
            p = getattr(m, k, None)
            if p is not None and p.grad is not None:
                grads[k] = _np(p.grad)

    if isinstance(m, nn.ConvTranspose2d):
        if m.padding_mode != "zeros":
            return f"padding_mode={m.padding_mode!r}: minseg pads with zeros only"
        params = {"stride": _pair(m.stride), "padding": _pair(m.padding), "dilation": _pair(m.dilation),
                  "groups": m.groups, "output_padding": _pair(m.output_padding)}
        if "output_size" in call.kwargs or len(call.inputs) > 1:   # forward(x, output_size): the size decides
            op = []
            for a in range(2):
                base = ((x.shape[2 + a] - 1) * m.stride[a] - 2 * m.padding[a] + m.dilation[a]
                        * (m.kernel_size[a] - 1) + 1)
                op.append(int(y.shape[2 + a] - base))
            params["output_padding"] = tuple(op)
        inputs = {"input": x, "weight": _np(m.weight), "bias": _np(m.bias)}
        with_params("weight", "bias")
        return "conv_transpose2d", inputs, params, {"output": y}, grads
    if isinstance(m, nn.Conv2d):
        if m.padding_mode != "zeros":
            return f"padding_mode={m.padding_mode!r}: minseg pads with zeros only"
        params = {"stride": _pair(m.stride), "padding": _pair(m.padding), "dilation": _pair(m.dilation),
                  "groups": m.groups}
        with_params("weight", "bias")
        return "conv2d", {"input": x, "weight": _np(m.weight), "bias": _np(m.bias)}, params, {"output": y}, grads
    if isinstance(m, nn.BatchNorm2d):
        training = m.training or (m.running_mean is None and m.running_var is None)
        inputs = {"input": x, "weight": _np(m.weight), "bias": _np(m.bias)}
        outputs = {"output": y}
        momentum = 0.0 if m.momentum is None else m.momentum
        use_stats = not training or m.track_running_stats
        if use_stats and m.running_mean is not None:
            inputs["running_mean"], inputs["running_var"] = call.before["running_mean"], call.before["running_var"]
            if training:
                outputs["running_mean"], outputs["running_var"] = call.after["running_mean"], call.after["running_var"]
                if m.momentum is None:           # cumulative average: the factor is 1 / (batches seen)
                    momentum = 1.0 / float(call.after["num_batches_tracked"])
        with_params("weight", "bias")
        return "batch_norm2d", inputs, {"training": bool(training), "momentum": momentum, "eps": m.eps}, outputs, grads
    if isinstance(m, nn.ReLU):
        return "relu", {"input": x}, {}, {"output": y}, grads
    if isinstance(m, nn.MaxPool2d):
        params = {"kernel_size": _pair(m.kernel_size), "stride": _pair(m.stride), "padding": _pair(m.padding),
                  "dilation": _pair(m.dilation), "ceil_mode": bool(m.ceil_mode)}
        outputs = {"output": y[0], "indices": y[1]} if m.return_indices else {"output": y}
        return "max_pool2d", {"input": x}, params, outputs, grads
    if isinstance(m, nn.MaxUnpool2d):
        if len(call.inputs) < 2 or not isinstance(call.inputs[1], np.ndarray):
            return "no indices tensor among its inputs"
        params = {"kernel_size": _pair(m.kernel_size), "stride": _pair(m.stride), "padding": _pair(m.padding),
                  "output_size": tuple(y.shape[2:])}
        return "max_unpool2d", {"input": x, "indices": call.inputs[1]}, params, {"output": y}, grads
    if isinstance(m, nn.Upsample):                    # also UpsamplingBilinear2d / UpsamplingNearest2d
        if m.mode not in ("bilinear", "nearest"):
            return f"mode={m.mode!r}: minseg has bilinear and nearest"
        params = {"mode": m.mode, "size": _pair(m.size), "scale_factor": _pair(m.scale_factor),
                  "recompute_scale_factor": m.recompute_scale_factor}
        if m.mode == "bilinear":
            params["align_corners"] = bool(m.align_corners)
        return "interpolate", {"input": x}, params, {"output": y}, grads
    if isinstance(m, nn.AdaptiveAvgPool2d):
        size = _pair(m.output_size)
        if isinstance(size, tuple) and None in size:
            size = tuple(x.shape[2 + a] if s is None else s for a, s in enumerate(size))
        return "adaptive_avg_pool2d", {"input": x}, {"output_size": size}, {"output": y}, grads
    if isinstance(m, (nn.Dropout, nn.Dropout2d)):
        if m.training and m.p > 0:
            return f"training mode with p={m.p}: a random mask cannot be replayed"
        return "dropout", {"input": x}, {"p": m.p, "training": False}, {"output": y}, grads
    if isinstance(m, nn.Linear):
        if x.ndim != 2:
            return f"input of {x.ndim} axes: minseg's linear takes (N, D_in)"
        with_params("weight", "bias")
        return "linear", {"input": x, "weight": _np(m.weight), "bias": _np(m.bias)}, {}, {"output": y}, grads
    if isinstance(m, (nn.Softmax, nn.LogSoftmax)):
        if m.dim is None:
            return "dim=None (PyTorch's implicit choice)"
        op = "softmax" if isinstance(m, nn.Softmax) else "log_softmax"
        return op, {"input": x}, {"dim": m.dim}, {"output": y}, grads
    return "no minseg op for this layer"


def check_torch_model(module, x, *, dy="random", seed: int = 0, dtype=None, rtol: float | None = None,
                      atol: float | None = None) -> ModelReport:
    """Run a PyTorch model forward and backward, then replay every supported leaf layer with minseg.

    Parameters
    ----------
    module : torch.nn.Module
        Left untouched (a deep copy runs); train / eval mode as it is.
    x : torch.Tensor or ndarray, the model's input (N, C, H, W)
    dy : "random" (seeded standard normal like the model's output), an array, or None (forward only)
    seed : int, the seed of ``dy``
    dtype : torch dtype, optional
        Run the copy in this dtype (``torch.float64`` for a check to round-off); default: as the model is.
    rtol, atol : float, optional
        Tolerances; by default by each array's dtype (``default_tolerances``).

    Returns
    -------
    ModelReport
        One row per leaf-module call (output error, input-gradient error, parameter-gradient errors,
        verdict), the first diverging layer marked, skipped layers listed with the reason.
    """
    torch = require_torch()
    model = copy.deepcopy(module)
    if dtype is not None:
        model = model.to(dtype)
    xt = torch.as_tensor(x).detach().clone()
    if dtype is not None:
        xt = xt.to(dtype)
    xt.requires_grad_(dy is not None)
    names = {m: name for name, m in model.named_modules()}
    leaves = [m for m in model.modules() if not list(m.children())]     # a bare layer is its own leaf
    calls, pending, handles = [], {}, []
    backward_calls = {}
    for m in leaves:
        if getattr(m, "inplace", False):
            m.inplace = False                # in-place layers would overwrite the inputs the hooks keep

        def pre(mod, args, kwargs):
            pending.setdefault(mod, []).append(([_np(a) if torch.is_tensor(a) else a for a in args], dict(kwargs),
                                                {k: _np(b) for k, b in mod.named_buffers(recurse=False)}))

        def post(mod, args, kwargs, out):
            inputs, kw, before = pending[mod].pop()
            output = tuple(_np(o) for o in out) if isinstance(out, tuple) else _np(out)
            after = {k: _np(b) for k, b in mod.named_buffers(recurse=False)}
            call = _Call(names.get(mod, type(mod).__name__) or type(mod).__name__, mod, tuple(inputs), output,
                         before, after, kw)
            calls.append(call)
            backward_calls.setdefault(mod, []).append(call)

        def bwd(mod, grad_input, grad_output):
            waiting = [c for c in backward_calls.get(mod, []) if c.dy is None]
            if waiting:
                c = waiting[-1]                  # backward visits the calls of one module in reverse order
                c.dy = _np(grad_output[0]) if grad_output and grad_output[0] is not None else None
                c.dx = _np(grad_input[0]) if grad_input and grad_input[0] is not None else None
                if c.dy is None:
                    c.dy = np.zeros_like(c.output[0] if isinstance(c.output, tuple) else c.output)

        handles.append(m.register_forward_pre_hook(pre, with_kwargs=True))
        handles.append(m.register_forward_hook(post, with_kwargs=True))
        if dy is not None:
            handles.append(m.register_full_backward_hook(bwd))
    try:
        y = model(xt)
        y_main = y[0] if isinstance(y, (tuple, list)) else y
        if dy is not None:
            d = (np.random.default_rng(seed).standard_normal(tuple(y_main.shape)) if isinstance(dy, str)
                 else np.asarray(dy))
            params = [p for p in model.parameters() if p.requires_grad]
            grads = torch.autograd.grad(y_main, [xt] + params, torch.as_tensor(d, dtype=y_main.dtype),
                                        allow_unused=True)
            for p, g in zip(params, grads[1:]):
                p.grad = g
    finally:
        for h in handles:
            h.remove()
    n_calls = {}
    for c in calls:
        n_calls[c.module] = n_calls.get(c.module, 0) + 1
    rows = []
    for i, c in enumerate(calls, 1):
        row = LayerRow(i, c.name, type(c.module).__name__)
        args = _replay_args(torch, c, n_calls[c.module])
        if isinstance(args, str):
            row.skipped = args
            rows.append(row)
            continue
        op, inputs, params, outputs, grads = args
        inputs = {k: v for k, v in inputs.items() if v is not None}
        row.op = op
        if n_calls[c.module] > 1 and any(getattr(c.module, k, None) is not None for k in ("weight", "bias")):
            row.notes.append(f"called {n_calls[c.module]} times: parameter gradients are summed over the calls "
                             "and not compared per call")
        use_dy = c.dy if (dy is not None and grads) else None
        row.report = check_op(op, inputs, params, outputs, grads if use_dy is not None else None, use_dy,
                              rtol=rtol, atol=atol, framework=f"torch {torch.__version__}")
        rows.append(row)
    dt = str(next(model.parameters()).dtype).replace("torch.", "") if list(model.parameters()) else str(xt.dtype)
    return ModelReport(type(module).__name__, dt, rows, tuple(y_main.shape))

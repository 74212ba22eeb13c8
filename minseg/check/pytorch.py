"""minseg against the installed PyTorch: run an op through ``torch.nn.functional``, and a grid of every op family.

``torch_reference(op, inputs, params)`` computes what ``check_op`` compares
with, through PyTorch in float64, forward and backward with a seeded upstream
gradient. ``torch_table()`` runs every op family on a small grid of
hyper-parameters through both and returns one row per family (configurations,
worst forward and backward error, verdict); ``minseg check --torch`` prints it.

torch is imported inside these functions only: importing minseg never imports it.
"""
from __future__ import annotations

import time
import warnings

import numpy as np

from .op import OPS, check_op

__all__ = ["torch_reference", "torch_grid", "torch_table", "format_torch_table", "require_torch", "TORCH_VERSION_HINT"]

TORCH_VERSION_HINT = "pip install torch==2.13.0"
TABLE_RTOL, TABLE_ATOL = 1e-10, 1e-12      # float64 against float64: only the summation order may differ


def require_torch():
    """``torch``, or ImportError saying how to install it."""
    try:
        import torch  # noqa: PLC0415
    except ImportError:
        raise ImportError(f"PyTorch is not installed; install it with: {TORCH_VERSION_HINT}") from None
    return torch


def _call(F, op, t, p):
    """The PyTorch call of ``op`` on tensors ``t`` with params ``p``: a dict of output tensors."""
    if op == "conv2d":
        return {"output": F.conv2d(t["input"], t["weight"], t.get("bias"), **p)}
    if op == "conv_transpose2d":
        return {"output": F.conv_transpose2d(t["input"], t["weight"], t.get("bias"), **p)}
    if op == "max_pool2d":
        y, idx = F.max_pool2d(t["input"], **{**p, "return_indices": True})
        return {"output": y, "indices": idx}
    if op == "max_unpool2d":
        return {"output": F.max_unpool2d(t["input"], t["indices"], **p)}
    if op == "global_avg_pool2d":
        return {"output": F.adaptive_avg_pool2d(t["input"], 1)}
    if op == "adaptive_avg_pool2d":
        return {"output": F.adaptive_avg_pool2d(t["input"], p["output_size"])}
    if op in ("bilinear_interpolate", "upsample_bilinear"):
        return {"output": F.interpolate(t["input"], mode="bilinear", **p)}
    if op == "upsample_nearest":
        return {"output": F.interpolate(t["input"], mode="nearest", **p)}
    if op == "interpolate":
        return {"output": F.interpolate(t["input"], **p)}
    if op in ("batch_norm2d", "batch_norm"):
        rm = t["running_mean"].clone() if "running_mean" in t else None
        rv = t["running_var"].clone() if "running_var" in t else None
        y = F.batch_norm(t["input"], rm, rv, t.get("weight"), t.get("bias"), **p)
        out = {"output": y}
        if rm is not None:
            out["running_mean"], out["running_var"] = rm, rv
        return out
    if op == "relu":
        return {"output": F.relu(t["input"])}
    if op == "dropout":
        return {"output": F.dropout(t["input"], **p)}
    if op == "linear":
        return {"output": F.linear(t["input"], t["weight"], t.get("bias"))}
    if op == "softmax":
        return {"output": F.softmax(t["input"], **p)}
    if op == "log_softmax":
        return {"output": F.log_softmax(t["input"], **p)}
    if op == "cross_entropy":
        return {"output": F.cross_entropy(t["input"], t["target"], weight=t.get("weight"), **p)}
    raise ValueError(f"torch_reference: expected op in {sorted(OPS)}, got {op!r}")


def _differentiable(op, name):
    return name not in ("running_mean", "running_var", "indices", "target") and not (
        op == "cross_entropy" and name == "weight")


def torch_reference(op: str, inputs: dict, params: dict | None = None, *, dy="random", seed: int = 0) -> dict:
    """Run ``op`` through ``torch.nn.functional`` in float64: outputs, and gradients for a seeded ``dy``.

    Parameters
    ----------
    op : a name of ``minseg.check.OPS``
    inputs : dict name -> NumPy array (PyTorch's argument names, NCHW)
    params : PyTorch's keyword arguments
    dy : "random" (seeded standard normal, shaped like the output), an array, or None (forward only)

    Returns
    -------
    dict with ``outputs`` and ``grads`` (name -> NumPy array) and ``dy`` (the array used, or None).
    """
    torch = require_torch()
    F = torch.nn.functional
    params = dict(params or {})
    t = {}
    for k, v in inputs.items():
        a = np.asarray(v)
        if a.dtype.kind == "f":
            t[k] = torch.tensor(a, dtype=torch.float64, requires_grad=_differentiable(op, k) and dy is not None)
        else:
            t[k] = torch.tensor(a, dtype=torch.int64)
    with warnings.catch_warnings():                       # e.g. padding='same' with an even kernel
        warnings.simplefilter("ignore", UserWarning)
        out = _call(F, op, t, params)
    result = {"outputs": {k: v.detach().numpy().copy() for k, v in out.items()}, "grads": {}, "dy": None}
    if dy is None:
        return result
    y = out["output"]
    d = np.random.default_rng(seed).standard_normal(tuple(y.shape)) if isinstance(dy, str) else np.asarray(dy)
    y.backward(torch.tensor(d, dtype=torch.float64))
    result["dy"] = np.asarray(d, dtype=np.float64)
    result["grads"] = {k: v.grad.numpy().copy() for k, v in t.items() if v.requires_grad and v.grad is not None}
    return result


# --------------------------------------------------------------------------- the grid

def torch_grid(rng) -> list:
    """``(family, op, inputs, params)`` for every configuration of the table: small, odd, non-square sizes."""
    n = rng.standard_normal
    g = []

    def add(family, op, inputs, params):
        g.append((family, op, inputs, params))

    for stride, padding, dilation, groups, bias in [(1, 0, 1, 1, True), (2, 1, 1, 1, False), (1, 2, 2, 1, True),
                                                    (2, (0, 1), 1, 1, True), ((1, 2), 1, (2, 1), 2, False),
                                                    (3, 1, 1, 1, True)]:
        inputs = {"input": n((2, 4, 9, 8)), "weight": n((6, 4 // groups, 3, 2))}
        if bias:
            inputs["bias"] = n(6)
        add("conv2d", "conv2d", inputs, {"stride": stride, "padding": padding, "dilation": dilation, "groups": groups})
    add("conv2d", "conv2d", {"input": n((1, 3, 7, 6)), "weight": n((2, 3, 4, 3))}, {"padding": "same"})
    for stride, padding, out_pad, dilation, groups in [(1, 0, 0, 1, 1), (2, 0, 1, 1, 1), (2, 1, 1, 1, 2),
                                                       (3, 1, (2, 0), 1, 1), (2, 2, 0, 2, 1),
                                                       ((2, 3), (1, 0), (1, 2), 1, 1)]:
        add("conv_transpose2d", "conv_transpose2d",
            {"input": n((2, 4, 5, 6)), "weight": n((4, 6 // groups, 3, 3)), "bias": n(6)},
            {"stride": stride, "padding": padding, "output_padding": out_pad, "dilation": dilation,
             "groups": groups})
    for k, s, p, d, ceil in [(2, 2, 0, 1, False), (3, 2, 1, 1, False), (3, 1, 1, 1, False), (3, 2, 1, 2, False),
                             (2, 2, 0, 1, True), ((3, 2), (2, 1), (1, 0), 1, True)]:
        add("max_pool2d", "max_pool2d", {"input": n((2, 3, 9, 7))},
            {"kernel_size": k, "stride": s, "padding": p, "dilation": d, "ceil_mode": ceil})
    for k, size, out_size in [(2, (8, 6), None), (3, (9, 9), None), (3, (9, 7), (9, 7)), (2, (9, 7), (9, 7))]:
        x = n((2, 3) + size)
        pooled = torch_reference("max_pool2d", {"input": x}, {"kernel_size": k}, dy=None)["outputs"]
        add("max_unpool2d", "max_unpool2d", {"input": pooled["output"], "indices": pooled["indices"]},
            {"kernel_size": k, "output_size": out_size})
    add("adaptive / global avg pool", "global_avg_pool2d", {"input": n((2, 3, 5, 7))}, {})
    if "adaptive_avg_pool2d" in OPS:
        for size in [(2, 3), (3, 5), 4]:
            add("adaptive / global avg pool", "adaptive_avg_pool2d", {"input": n((2, 3, 7, 9))}, {"output_size": size})
    for params in [{"size": (11, 13)}, {"size": (4, 3)}, {"scale_factor": 2}, {"scale_factor": 1.7},
                   {"scale_factor": (0.5, 1.5)}]:
        for ac in (False, True):
            add("bilinear_interpolate", "bilinear_interpolate", {"input": n((2, 3, 6, 5))},
                {**params, "align_corners": ac})
    for params in [{"size": (12, 10)}, {"size": (5, 7)}, {"scale_factor": 2}, {"scale_factor": 1.7},
                   {"scale_factor": (3, 0.5)}]:
        add("upsample_nearest", "upsample_nearest", {"input": n((2, 3, 6, 5))}, params)
    C = 3
    for training in (True, False):
        for affine in (True, False):
            inputs = {"input": n((4, C, 5, 6)) * 2 + 1, "running_mean": n(C), "running_var": rng.uniform(0.5, 2, C)}
            if affine:
                inputs["weight"], inputs["bias"] = n(C), n(C)
            add("batch_norm2d", "batch_norm2d", inputs, {"training": training, "momentum": 0.1, "eps": 1e-5})
    add("relu", "relu", {"input": n((2, 3, 5, 4))}, {})
    add("dropout (evaluation)", "dropout", {"input": n((2, 3, 5, 4))}, {"p": 0.3, "training": False})
    add("linear", "linear", {"input": n((5, 7)), "weight": n((4, 7)), "bias": n(4)}, {})
    add("linear", "linear", {"input": n((3, 6)), "weight": n((2, 6))}, {})
    for dim in (1, -1):
        add("softmax / log_softmax", "softmax", {"input": n((2, 4, 3, 5)) * 3}, {"dim": dim})
        add("softmax / log_softmax", "log_softmax", {"input": n((2, 4, 3, 5)) * 3}, {"dim": dim})
    target = rng.integers(0, 5, (2, 4, 6))
    target[0, 0, :3] = 255
    for params, weight in [({"reduction": "mean"}, None), ({"reduction": "sum"}, None),
                           ({"reduction": "none"}, None), ({"ignore_index": 255}, rng.uniform(0.5, 2, 5)),
                           ({"ignore_index": 255, "reduction": "sum"}, rng.uniform(0.5, 2, 5))]:
        t = target if "ignore_index" in params else np.where(target == 255, 1, target)
        inputs = {"input": n((2, 5, 4, 6)), "target": t}
        if weight is not None:
            inputs["weight"] = weight
        add("cross_entropy", "cross_entropy", inputs, params)
    return g


def torch_table(seed: int = 0, rtol: float = TABLE_RTOL, atol: float = TABLE_ATOL) -> dict:
    """Every op family through PyTorch and minseg (float64, forward and backward); one row per family.

    Returns
    -------
    dict with ``rows`` (family, op names, configs, worst forward / backward error, failures, verdict),
    ``reports`` (every ``OpReport`` that did not pass), ``torch`` (its version), ``seconds``.
    The error of one array is ``max |minseg - torch| / max(max |torch|, atol)`` (``CompareReport.scaled_error``);
    the worst is over the family's configurations.
    """
    torch = require_torch()
    t0 = time.perf_counter()
    rows, failed = {}, []
    for family, op, inputs, params in torch_grid(np.random.default_rng(seed)):
        ref = torch_reference(op, inputs, params, seed=seed)
        rep = check_op(op, inputs, params, ref["outputs"], ref["grads"], ref["dy"], rtol=rtol, atol=atol,
                       framework=f"torch {torch.__version__}")
        row = rows.setdefault(family, {"family": family, "ops": [], "configs": 0, "forward": 0.0, "backward": 0.0,
                                       "failed": 0})
        if op not in row["ops"]:
            row["ops"].append(op)
        row["configs"] += 1
        for r in rep.reports:
            key = "backward" if r.name.startswith("grad.") else "forward"
            err = np.inf if r.problem else r.scaled_error
            row[key] = max(row[key], err)
        if not rep.passed:
            row["failed"] += 1
            failed.append(rep)
    for row in rows.values():
        row["verdict"] = "exact" if not row["failed"] else f"MISMATCH ({row['failed']} of {row['configs']})"
    return {"rows": list(rows.values()), "reports": failed, "torch": torch.__version__,
            "seconds": time.perf_counter() - t0}


def format_torch_table(result: dict) -> str:
    """The table ``minseg check --torch`` prints."""
    head = ("op", "configs", "worst forward err", "worst backward err", "verdict")
    lines = [(r["family"], str(r["configs"]), f"{r['forward']:.1e}", f"{r['backward']:.1e}", r["verdict"])
             for r in result["rows"]]
    widths = [max(len(x[i]) for x in [head] + lines) for i in range(len(head))]
    fmt = lambda row: "  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip()  # noqa: E731
    n_cfg = sum(r["configs"] for r in result["rows"])
    out = [f"minseg against torch {result['torch']}, float64, forward and backward (seeded upstream gradient)",
           fmt(head), fmt(tuple("-" * w for w in widths))] + [fmt(x) for x in lines]
    out.append(f"{n_cfg} configurations in {result['seconds']:.1f} s; error = max |minseg - torch| / max |torch| "
               f"per array (at least atol), worst over the configurations; exact = every array within "
               f"rtol {TABLE_RTOL:.0e}, atol {TABLE_ATOL:.0e}")
    for rep in result["reports"][:5]:
        out += ["", str(rep)]
    return "\n".join(out)

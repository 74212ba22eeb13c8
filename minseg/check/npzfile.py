"""The framework-neutral ``.npz`` file of one op: what any framework writes and ``minseg check`` reads.

Keys (``numpy.savez``; every value a plain array, nothing pickled):

    op              0-d string, a name of ``minseg.check.OPS`` ("conv2d", "bilinear_interpolate", ...)
    params          0-d string, a JSON object of the hyper-parameters under PyTorch's names
                    ({"stride": [2, 2], "padding": 1}); pairs are lists; "{}" when there are none
    input.<name>    the op's inputs under PyTorch's argument names (input.input, input.weight, ...), NCHW
    output.<name>   what the framework computed (output.output, output.indices, ...); at least one
    dy              optional: the upstream gradient of output.output
    grad.<name>     optional, needs dy: the framework's gradient of each input (grad.input, grad.weight)
    framework       optional 0-d string, shown in the report ("torch 2.13.0", "jax 0.4.30")
    version         optional integer, 1

Float arrays may be any float dtype (the default tolerances follow it);
integer inputs (``indices``, ``target``) stay integers.
"""
from __future__ import annotations

import json
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .op import OPS, OpReport, check_op

__all__ = ["CheckCase", "CheckFileError", "save_npz", "load_npz", "check_file", "FORMAT_VERSION"]

FORMAT_VERSION = 1
_PREFIXES = ("input.", "output.", "grad.")
_SCALARS = ("op", "params", "dy", "framework", "version")


class CheckFileError(ValueError):
    """A file that is not a valid check file; the message names the file and what is wrong."""


@dataclass
class CheckCase:
    """One op as a framework computed it (the contents of one check file)."""

    op: str
    params: dict
    inputs: dict
    outputs: dict
    dy: np.ndarray | None = None
    grads: dict = field(default_factory=dict)
    framework: str | None = None


def _to_numpy(v):
    if hasattr(v, "detach") and hasattr(v, "cpu"):       # a torch tensor
        v = v.detach().cpu().numpy()
    return np.asarray(v)


def save_npz(path, op: str, params: dict | None, inputs: dict, outputs: dict, dy=None, grads: dict | None = None,
             framework: str | None = None) -> Path:
    """Write one check file; returns its path.

    Parameters
    ----------
    path : str or Path (``.npz`` is appended by NumPy when missing)
    op, params, inputs, outputs, dy, grads, framework : as in the module docstring
        (arrays may be NumPy arrays or framework tensors with ``.detach()``; tuples in params become lists)
    """
    if op not in OPS:
        raise ValueError(f"save_npz: expected op in {sorted(OPS)}, got {op!r}")
    if grads and dy is None:
        raise ValueError("save_npz: expected dy (the upstream gradient) with grads, got dy=None")
    arrays = {"op": np.array(op), "params": np.array(json.dumps(params or {})), "version": np.array(FORMAT_VERSION)}
    if framework:
        arrays["framework"] = np.array(str(framework))
    for prefix, d in (("input.", inputs), ("output.", outputs), ("grad.", grads or {})):
        for k, v in d.items():
            if v is not None:
                arrays[prefix + k] = _to_numpy(v)
    if dy is not None:
        arrays["dy"] = _to_numpy(dy)
    path = Path(path)
    np.savez(path, **arrays)
    return path if path.suffix == ".npz" else path.with_name(path.name + ".npz")


def _string(z, key, path):
    a = z[key]
    if a.ndim != 0 or a.dtype.kind not in "US":
        raise CheckFileError(f"{path}: expected {key!r} to be a 0-d string, got an array of shape {a.shape} "
                             f"and dtype {a.dtype}")
    return str(a)


def load_npz(path) -> CheckCase:
    """Read and validate one check file; raises ``CheckFileError`` (one line, naming the file) when it is bad."""
    path = Path(path)
    if not path.is_file():
        raise CheckFileError(f"{path}: no such file")
    with open(path, "rb") as f:
        magic = f.read(6)
    if magic == b"\x93NUMPY":
        raise CheckFileError(f"{path}: a single .npy array, expected an .npz archive of named arrays (numpy.savez)")
    if not zipfile.is_zipfile(path):
        raise CheckFileError(f"{path}: not an .npz file (not a zip archive; write it with numpy.savez)")
    try:
        z = np.load(path, allow_pickle=False)
    except (zipfile.BadZipFile, OSError, EOFError) as err:
        raise CheckFileError(f"{path}: not an .npz file ({err})") from None
    except ValueError as err:
        raise CheckFileError(f"{path}: cannot be read without pickle ({err}); save plain arrays") from None
    with z:
        keys = list(z.files)
        try:
            return _read(z, keys, path)
        except ValueError as err:
            if isinstance(err, CheckFileError):
                raise
            raise CheckFileError(f"{path}: {err}") from None


def _read(z, keys, path) -> CheckCase:
    for k in keys:
        if k not in _SCALARS and not (k.startswith(_PREFIXES) and k.split(".", 1)[1]):
            raise CheckFileError(f"{path}: unexpected key {k!r} (expected op, params, input.<name>, output.<name>, "
                                 f"dy, grad.<name>, framework, version)")
    if "op" not in keys:
        raise CheckFileError(f"{path}: missing key 'op' (the op's name, one of {sorted(OPS)})")
    op = _string(z, "op", path)
    if op not in OPS:
        raise CheckFileError(f"{path}: expected op in {sorted(OPS)}, got {op!r}")
    if "version" in keys:
        v = z["version"]
        if v.ndim != 0 or v.dtype.kind not in "iu" or int(v) != FORMAT_VERSION:
            raise CheckFileError(f"{path}: expected version {FORMAT_VERSION}, got {v!r}")
    params = {}
    if "params" in keys:
        text = _string(z, "params", path)
        try:
            params = json.loads(text)
        except json.JSONDecodeError as err:
            raise CheckFileError(f"{path}: 'params' is not valid JSON ({err}): {text[:60]!r}") from None
        if not isinstance(params, dict):
            raise CheckFileError(f"{path}: expected 'params' to be a JSON object, got {type(params).__name__}")

    def group(prefix):
        return {k[len(prefix):]: z[k] for k in keys if k.startswith(prefix)}

    inputs, outputs, grads = group("input."), group("output."), group("grad.")
    if not inputs:
        raise CheckFileError(f"{path}: no input.<name> arrays (the op's inputs)")
    if not outputs and not grads:
        raise CheckFileError(f"{path}: no output.<name> or grad.<name> arrays (nothing to compare)")
    dy = z["dy"] if "dy" in keys else None
    if grads and dy is None:
        raise CheckFileError(f"{path}: grad.{next(iter(grads))} without dy (the upstream gradient it was computed "
                             "with)")
    framework = _string(z, "framework", path) if "framework" in keys else None
    return CheckCase(op, params, inputs, outputs, dy, grads, framework)


def check_file(path, rtol: float | None = None, atol: float | None = None) -> OpReport:
    """``check_op`` on one check file; ``CheckFileError`` when the file (or a name in it) is bad."""
    case = load_npz(path)
    try:
        return check_op(case.op, case.inputs, case.params, case.outputs, case.grads or None, case.dy, rtol=rtol,
                        atol=atol, source=str(path), framework=case.framework)
    except (ValueError, TypeError) as err:
        raise CheckFileError(f"{path}: {str(err).removeprefix('check_op: ')}") from None

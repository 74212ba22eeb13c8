"""minseg as a reference for checking what a framework computes.

Three levels, from one array to a whole op to a file any framework writes:

``compare(actual, expected, rtol=, atol=, name=)``
    A report like ``torch.testing.assert_close``'s message, and more: shapes
    and dtypes, how many elements mismatch (count and %), the greatest
    absolute and relative difference with their indices and both values,
    where the mismatches lie ("all 12 mismatches are in the last row and
    column; only channel 2 (of 4)", "every 2nd row"), whether the NaN / inf
    patterns agree. ``bool(report)`` is the verdict; different shapes give a
    report, never an exception.

``check_op(name, inputs, params, outputs, grads=None, dy=None, rtol=, atol=)``
    Recompute op ``name`` with minseg in float64 from a framework's inputs
    and hyper-parameters (PyTorch's names), compare every output and, with
    ``dy``, every gradient; when a mismatch is one minseg knows (the other
    ``align_corners``, TensorFlow 1's asymmetric resize, ``ceil_mode``,
    ``output_padding``, overlapping unpool indices, windows in the padding,
    batch-norm mode or momentum convention, ...) the report says so.
    ``describe_ops()`` lists the ops, their inputs, params, outputs, grads.

``minseg check FILE.npz ...`` / ``check_file(path)``
    The same from a file. The file format (``save_npz`` writes it):

    =================  =====================================================================
    key                value
    =================  =====================================================================
    ``op``             0-d string: an op of ``OPS`` (``"conv2d"``, ``"bilinear_interpolate"``)
    ``params``         0-d string: a JSON object of hyper-parameters, PyTorch's names,
                       pairs as lists (``{"stride": [2, 2], "padding": 1}``)
    ``input.<name>``   each input under PyTorch's argument name (``input.input``,
                       ``input.weight``, ``input.bias``, ``input.indices``), NCHW
    ``output.<name>``  what the framework computed (``output.output``, ``output.indices``)
    ``dy``             optional: the upstream gradient of ``output.output``
    ``grad.<name>``    optional (needs ``dy``): the framework's gradient of each input
    ``framework``      optional 0-d string shown in the report (``"jax 0.4.30"``)
    ``version``        optional integer, 1
    =================  =====================================================================

    Plain arrays only (read with ``allow_pickle=False``); float arrays of any
    float dtype (the default tolerances follow it, as ``assert_close``'s do),
    integer inputs stay integers. ``minseg check`` exits 0 when every file
    matches, 1 on a mismatch, 2 on a bad file (one line naming the file).

``minseg check --torch`` / ``torch_table()``
    Every op family through the installed PyTorch and minseg on a small grid,
    forward and backward in float64: a table of worst errors and verdicts.

``check_torch_model(module, x)``
    A PyTorch model layer by layer: every supported leaf module replayed with
    minseg's ops on its captured inputs, one row per layer, the first layer
    that diverges marked, unsupported layers listed as skipped.

torch is imported only inside the functions that need it: importing minseg
(or ``minseg.check``) never imports torch.

Examples
--------
>>> from minseg.check import check_op
>>> y_torch = F.interpolate(x, size=(9, 11), mode="bilinear", align_corners=True)
>>> print(check_op("bilinear_interpolate", {"input": x}, {"size": (9, 11)}, {"output": y_torch}))
bilinear_interpolate(size=(9, 11)): FAIL (1 of 1 arrays mismatch)
  ...
  diagnosis: the output matches minseg with align_corners=True: ...
"""
from .compare import CompareReport, compare, default_tolerances
from .npzfile import FORMAT_VERSION, CheckCase, CheckFileError, check_file, load_npz, save_npz
from .op import OPS, OpReport, OpSpec, check_op, describe_ops

__all__ = ["compare", "CompareReport", "default_tolerances", "check_op", "OpReport", "OpSpec", "OPS", "describe_ops",
           "save_npz", "load_npz", "check_file", "CheckCase", "CheckFileError", "FORMAT_VERSION",
           "torch_table", "format_torch_table", "torch_reference", "check_torch_model", "run_command"]


def torch_table(seed: int = 0):
    """Every op family through PyTorch and minseg; see ``minseg.check.pytorch.torch_table``."""
    from .pytorch import torch_table as run  # noqa: PLC0415  (torch on use only)

    return run(seed)


def check_torch_model(module, x, **kwargs):
    """A PyTorch model layer by layer against minseg; see ``minseg.check.model.check_torch_model``."""
    from .model import check_torch_model as run  # noqa: PLC0415

    return run(module, x, **kwargs)


def format_torch_table(result) -> str:
    from .pytorch import format_torch_table as fmt  # noqa: PLC0415

    return fmt(result)


def torch_reference(op, inputs, params=None, **kwargs):
    """``op`` through ``torch.nn.functional`` in float64; see ``minseg.check.pytorch.torch_reference``."""
    from .pytorch import torch_reference as run  # noqa: PLC0415

    return run(op, inputs, params, **kwargs)


def run_command(files, rtol=None, atol=None, torch: bool = False, out=None, err=None) -> int:
    """``minseg check``: print the reports of ``files`` (or the ``--torch`` table); return the exit status.

    0 when everything matches, 1 on a mismatch, 2 on a bad file or a missing torch (one line each on ``err``).
    """
    import sys  # noqa: PLC0415

    out = out or sys.stdout
    err = err or sys.stderr
    if torch:
        from .pytorch import TORCH_VERSION_HINT  # noqa: PLC0415

        try:
            result = torch_table()
        except ImportError:
            print(f"minseg check --torch: PyTorch is not installed; install it with: {TORCH_VERSION_HINT}", file=err)
            return 2
        print(format_torch_table(result), file=out)
        return 0 if not result["reports"] else 1
    if not files:
        print("minseg check: error: expected FILE.npz arguments or --torch", file=err)
        return 2
    status = 0
    for i, path in enumerate(files):
        try:
            report = check_file(path, rtol=rtol, atol=atol)
        except CheckFileError as e:
            print(f"minseg check: error: {e}", file=err)
            status = 2
            continue
        if i:
            print(file=out)
        print(report, file=out)
        if not report.passed and status == 0:
            status = 1
    return status

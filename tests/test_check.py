"""minseg.check: compare reports on hand-made mismatches, check_op against PyTorch with its diagnoses, the .npz
format and the `minseg check` command."""
import json
import subprocess
import sys

import numpy as np
import pytest

from minseg import cli
from minseg.check import (OPS, CheckFileError, check_file, check_op, compare, default_tolerances, load_npz,
                          save_npz)


# --------------------------------------------------------------------------- compare

def test_border_only_error_reports_every_field():
    rng = np.random.default_rng(0)
    e = rng.standard_normal((1, 1, 7, 7))
    a = e.copy()
    a[0, 0, -1, :] += 0.5          # the last row: 7 elements
    a[0, 0, :-1, -1] -= 0.25       # the last column above it: 6 more
    a[0, 0, 6, 2] += 0.5           # the largest difference, 1.0, at (0, 0, 6, 2)
    r = compare(a, e, name="output")
    assert not r and not r.passed
    assert (r.n_mismatch, r.size) == (13, 49)
    assert r.percent == pytest.approx(100 * 13 / 49)
    assert r.max_abs == pytest.approx(1.0) and r.max_abs_index == (0, 0, 6, 2)
    assert r.max_abs_values == (a[0, 0, 6, 2], e[0, 0, 6, 2])
    rel = np.abs(a - e) / np.abs(e)
    assert r.max_rel == pytest.approx(rel.max()) and r.max_rel_index == np.unravel_index(rel.argmax(), rel.shape)
    assert r.where == "all 13 mismatches are in the last row and column"
    assert r.scaled_error == pytest.approx(1.0 / np.abs(e).max())
    assert (r.actual_shape, r.expected_shape, r.actual_dtype, r.rtol, r.atol) == ((1, 1, 7, 7), (1, 1, 7, 7),
                                                                                 "float64", 1e-7, 1e-7)
    assert r.nonfinite == [] and r.nonfinite_agree
    text = str(r)
    assert "13 of 49 elements (26.5%) mismatch" in text
    assert "greatest absolute difference 1 at index (0, 0, 6, 2)" in text
    assert "all 13 mismatches are in the last row and column" in text
    assert r.mismatch_mask.sum() == 13 and r.mismatch_mask[0, 0, -1].all()


def test_one_wrong_channel_and_interior():
    rng = np.random.default_rng(1)
    e = rng.standard_normal((2, 4, 5, 6))
    a = e.copy()
    a[:, 2, 1:-1, 1:-1] *= 1.01
    r = compare(a, e)
    assert r.n_mismatch == 2 * 3 * 4
    assert r.where == "all 24 mismatches are in the interior (no border pixel); only channel 2 (of 4)"
    a = e.copy()
    a[1, 3] += 1.0
    assert compare(a, e).where == "30 mismatches, only sample 1 (of 2); only channel 3 (of 4)"


def test_periodic_pattern_is_named():
    e = np.zeros((1, 2, 8, 9))
    a = e.copy()
    a[:, :, 1::2, ::3] = 1.0
    r = compare(a, e)
    assert r.where == "24 mismatches, every 2nd row from row 1 and every 3rd column"


def test_nan_in_a_different_place():
    e = np.arange(12.0).reshape(3, 4)
    a = e.copy()
    a[1, 1] = np.nan
    e2 = e.copy()
    e2[2, 3] = np.nan
    r = compare(a, e2)
    assert not r.passed and r.n_mismatch == 2 and not r.nonfinite_agree
    assert r.nonfinite == ["1 NaN in actual where expected is finite, first at (1, 1)",
                           "1 finite in actual where expected is NaN, first at (2, 3)"]
    assert r.max_abs == 0.0                                # the finite elements agree
    assert "NaN / inf: the patterns differ" in str(r)
    # the same NaN and infinities on both sides match, and the report says the patterns agree
    b = e.copy()
    b[0, 0], b[0, 1] = np.nan, -np.inf
    same = compare(b.copy(), b)
    assert same.passed and same.nonfinite_agree and same.nonfinite_counts == {"NaN": 1, "-inf": 1}
    assert "the patterns agree (1 NaN, 1 -inf on each side)" in str(same)
    assert not compare(b, b, equal_nan=False).passed
    flipped = b.copy()
    flipped[0, 1] = np.inf
    assert compare(flipped, b).nonfinite == ["1 infinities of opposite sign, first at (0, 1)"]


def test_shape_mismatch_is_a_report_not_a_crash():
    e = np.zeros((2, 3, 5, 6))
    r = compare(np.zeros((2, 3, 4, 6)), e, name="grad.input")
    assert not r.passed
    assert r.problem == "shape (2, 3, 4, 6) (actual) vs (2, 3, 5, 6) (expected): differs in axis 2 (4 vs 5)"
    assert str(r) == "grad.input: FAIL, " + r.problem
    r = compare(np.zeros((2, 5, 6, 3)), e)
    assert "the same sizes in another order (a layout such as NHWC vs NCHW?)" in r.problem
    r = compare(np.zeros((1, 3, 5, 6)), e[0])
    assert "4 vs 3 axes; the same after dropping axes of size 1" in r.problem


def test_tolerances_follow_the_dtype():
    assert default_tolerances(np.float64) == (1e-7, 1e-7)
    assert default_tolerances(np.float32, np.float64) == (1.3e-6, 1e-5)
    assert default_tolerances(np.int64) == (0.0, 0.0)
    e = np.linspace(-1, 1, 50)
    r = compare(e.astype(np.float32), e)
    assert r.passed and (r.rtol, r.atol) == (1.3e-6, 1e-5) and r.actual_dtype == "float32"
    assert not compare(e.astype(np.float32), e, rtol=1e-12, atol=0).passed
    assert not compare(np.array([1, 2, 3]), np.array([1, 2, 4])).passed


def test_labels_and_one_element():
    r = compare(np.array([1.0, 2.0, 3.5]), np.array([1.0, 2.0, 3.0]), labels=("torch", "minseg"), name="y")
    assert r.where == "1 element, only element 2 (of 3)"
    assert "3.5 (torch) vs 3 (minseg)" in str(r)


# --------------------------------------------------------------------------- check_op against PyTorch

def _grid():
    from minseg.check.pytorch import torch_grid

    return torch_grid(np.random.default_rng(0))


def test_every_op_family_is_in_the_grid():
    torch = pytest.importorskip("torch")  # noqa: F841
    ops_in_grid = {op for _, op, _, _ in _grid()}
    assert ops_in_grid >= {"conv2d", "conv_transpose2d", "max_pool2d", "max_unpool2d", "global_avg_pool2d",
                           "bilinear_interpolate", "upsample_nearest", "batch_norm2d", "relu", "linear",
                           "softmax", "log_softmax", "cross_entropy"}


def test_check_op_passes_on_torch_outputs_for_every_op():
    pytest.importorskip("torch")
    from minseg.check.pytorch import torch_reference

    for family, op, inputs, params in _grid():
        ref = torch_reference(op, inputs, params, seed=3)
        rep = check_op(op, inputs, params, ref["outputs"], ref["grads"], ref["dy"], rtol=1e-10, atol=1e-12)
        assert rep.passed, str(rep)
        names = {r.name for r in rep.reports}
        assert "output" in names and any(n.startswith("grad.") for n in names), (op, names)
        assert rep.diagnosis == []


def test_float32_framework_uses_float32_tolerances():
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    rng = np.random.default_rng(0)
    x, w = rng.standard_normal((1, 3, 8, 8)).astype(np.float32), rng.standard_normal((4, 3, 3, 3)).astype(np.float32)
    y = F.conv2d(torch.tensor(x), torch.tensor(w), stride=2, padding=1).numpy()
    rep = check_op("conv2d", {"input": x, "weight": w}, {"stride": 2, "padding": 1}, {"output": y})
    assert rep.passed and rep.reports[0].rtol == 1.3e-6 and rep.reports[0].actual_dtype == "float32"


def _tf1_resize_loop(x, H_out, W_out):
    """TensorFlow 1's resize_bilinear (align_corners=False, half_pixel_centers=False), written out per pixel."""
    N, C, H, W = x.shape
    y = np.empty((N, C, H_out, W_out), dtype=x.dtype)
    for i in range(H_out):
        sy = i * H / H_out
        y0 = int(np.floor(sy))
        y1, ly = min(y0 + 1, H - 1), sy - y0
        for j in range(W_out):
            sx = j * W / W_out
            x0 = int(np.floor(sx))
            x1, lx = min(x0 + 1, W - 1), sx - x0
            top = (1 - lx) * x[:, :, y0, x0] + lx * x[:, :, y0, x1]
            bottom = (1 - lx) * x[:, :, y1, x0] + lx * x[:, :, y1, x1]
            y[:, :, i, j] = (1 - ly) * top + ly * bottom
    return y


def test_diagnosis_tf1_asymmetric_resize():
    x = np.random.default_rng(2).standard_normal((1, 2, 5, 6)).astype(np.float32)
    y = _tf1_resize_loop(x, 9, 11)
    rep = check_op("bilinear_interpolate", {"input": x}, {"size": [9, 11]}, {"output": y})
    assert not rep.passed
    assert any("TensorFlow 1's asymmetric resize" in d and "src = dst * in / out" in d for d in rep.diagnosis)
    assert not any("align_corners=True" in d for d in rep.diagnosis)
    # the mismatch really is the half-pixel shift: the first row and column agree (src = 0 in both)
    assert not rep.reports[0].mismatch_mask[..., 0, 0].any()


def test_diagnosis_align_corners():
    torch = pytest.importorskip("torch")
    from minseg.check.pytorch import torch_reference

    x = np.random.default_rng(3).standard_normal((2, 3, 5, 6))
    ref = torch_reference("bilinear_interpolate", {"input": x}, {"size": (9, 11), "align_corners": True})
    rep = check_op("bilinear_interpolate", {"input": x}, {"size": (9, 11), "align_corners": False}, ref["outputs"],
                   ref["grads"], ref["dy"])
    assert not rep.passed and {r.name for r in rep.reports} == {"output", "grad.input"}
    assert any(d.startswith("the output matches minseg with align_corners=True") for d in rep.diagnosis)
    assert "diagnosis: the output matches minseg with align_corners=True" in str(rep)
    assert torch is not None


def test_diagnosis_ceil_mode_and_output_padding():
    pytest.importorskip("torch")
    from minseg.check.pytorch import torch_reference

    rng = np.random.default_rng(4)
    x = rng.standard_normal((1, 2, 7, 7))
    ref = torch_reference("max_pool2d", {"input": x}, {"kernel_size": 2, "ceil_mode": True})
    rep = check_op("max_pool2d", {"input": x}, {"kernel_size": 2}, ref["outputs"], ref["grads"], ref["dy"])
    assert not rep.passed and rep.report("output").problem.endswith("differs in axis 2 (4 vs 3), axis 3 (4 vs 3)")
    assert any("ceil_mode=True" in d and "ceil_mode differs" in d for d in rep.diagnosis)
    assert rep.notes == ["gradients not compared: dy has shape (1, 2, 4, 4), minseg's output (1, 2, 3, 3)"]

    x, w = rng.standard_normal((1, 2, 4, 5)), rng.standard_normal((2, 3, 3, 3))
    ref = torch_reference("conv_transpose2d", {"input": x, "weight": w},
                          {"stride": 2, "padding": 1, "output_padding": (1, 0)})
    rep = check_op("conv_transpose2d", {"input": x, "weight": w}, {"stride": 2, "padding": 1}, ref["outputs"])
    assert any("output_padding=(1, 0) instead of (0, 0)" in d for d in rep.diagnosis), rep.diagnosis


def test_diagnosis_flipped_kernel_and_tf_layout():
    pytest.importorskip("torch")
    from minseg.check.pytorch import torch_reference

    rng = np.random.default_rng(5)
    x, w = rng.standard_normal((1, 2, 6, 6)), rng.standard_normal((3, 2, 3, 3))
    ref = torch_reference("conv2d", {"input": x, "weight": w}, {"padding": 1}, dy=None)
    rep = check_op("conv2d", {"input": x, "weight": w[:, :, ::-1, ::-1]}, {"padding": 1}, ref["outputs"])
    assert any("rotated by 180 degrees" in d for d in rep.diagnosis)
    rep = check_op("conv2d", {"input": x, "weight": w.transpose(2, 3, 1, 0)}, {"padding": 1}, ref["outputs"])
    assert rep.error and not rep.passed and any("HWIO" in d for d in rep.diagnosis)


def test_diagnosis_overlapping_unpool_indices():
    pytest.importorskip("torch")
    from minseg.check.pytorch import torch_reference

    rng = np.random.default_rng(6)
    pooled = torch_reference("max_pool2d", {"input": rng.standard_normal((1, 1, 6, 6))},
                             {"kernel_size": 3, "stride": 1}, dy=None)["outputs"]
    v, idx = rng.standard_normal(pooled["output"].shape), pooled["indices"]
    first_wins = np.zeros(36)
    for val, i in zip(v.ravel()[::-1], idx.ravel()[::-1]):     # a kernel that keeps the first write, not the last
        first_wins[i] = val
    rep = check_op("max_unpool2d", {"input": v, "indices": idx}, {"kernel_size": 3, "stride": 1, "output_size": [6, 6]},
                   {"output": first_wins.reshape(1, 1, 6, 6)})
    assert not rep.passed
    assert any("the indices repeat" in d and "all" in d and "lie at repeated positions" in d for d in rep.diagnosis)


def test_diagnosis_window_in_padding_and_ties():
    pytest.importorskip("torch")
    from minseg.check.pytorch import torch_reference

    x = np.random.default_rng(7).standard_normal((1, 2, 2, 5))
    p = {"kernel_size": 2, "dilation": (3, 1), "padding": (1, 0)}       # both taps of every window miss the input
    ref = torch_reference("max_pool2d", {"input": x}, p, dy=None)        # (PyTorch's backward writes out of bounds)
    assert check_op("max_pool2d", {"input": x}, p, ref["outputs"]).passed  # -inf and PyTorch's indices, as minseg
    g = np.zeros_like(x)
    g[0, 0, 0, 0] = 1.0
    rep = check_op("max_pool2d", {"input": x}, p, ref["outputs"], {"input": g}, np.ones((1, 2, 1, 2)))
    assert any("windows lie entirely in the padding (output rows [0])" in d for d in rep.diagnosis)

    x = np.zeros((1, 1, 2, 2))                                           # all four tie
    rep = check_op("max_pool2d", {"input": x}, {"kernel_size": 2}, {"output": np.zeros((1, 1, 1, 1)),
                                                                     "indices": np.array([[[[3]]]])})
    assert any("tied maxima" in d for d in rep.diagnosis)


def test_diagnosis_batch_norm_mode_and_momentum():
    pytest.importorskip("torch")
    from minseg.check.pytorch import torch_reference

    rng = np.random.default_rng(8)
    inputs = {"input": rng.standard_normal((4, 3, 3, 3)), "running_mean": rng.standard_normal(3),
              "running_var": rng.uniform(0.5, 2, 3)}
    ref = torch_reference("batch_norm2d", inputs, {"training": True}, dy=None)
    rep = check_op("batch_norm2d", inputs, {"training": False}, {"output": ref["outputs"]["output"]})
    assert any("training=True" in d for d in rep.diagnosis)
    ref = torch_reference("batch_norm2d", inputs, {"training": True, "momentum": 0.9}, dy=None)
    rep = check_op("batch_norm2d", inputs, {"training": True, "momentum": 0.1}, ref["outputs"])
    assert rep.report("output").passed and not rep.report("running_mean").passed
    assert any("momentum=0.9" in d and "Keras" in d for d in rep.diagnosis)


def test_check_op_bad_names_raise():
    x = np.zeros((1, 1, 4, 4))
    with pytest.raises(ValueError, match="did you mean 'conv2d'"):
        check_op("conv2D", {"input": x}, {}, {"output": x})
    with pytest.raises(ValueError, match="takes params"):
        check_op("relu", {"input": x}, {"strid": 1}, {"output": x})
    with pytest.raises(ValueError, match="needs inputs"):
        check_op("conv2d", {"input": x}, {}, {"output": x})
    with pytest.raises(ValueError, match="no dy"):
        check_op("relu", {"input": x}, {}, {"output": x}, grads={"input": x})
    assert check_op("relu", {"x": x - 1}, None, {"y": np.zeros_like(x)}).passed   # the aliases x and y


# --------------------------------------------------------------------------- the file format and the command

def _write_bilinear(path, align_corners_in_file, seed=0):
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    x = torch.tensor(np.random.default_rng(seed).standard_normal((1, 2, 5, 6)), requires_grad=True)
    y = F.interpolate(x, size=(9, 11), mode="bilinear", align_corners=False)
    dy = torch.ones_like(y)
    y.backward(dy)
    return save_npz(path, "bilinear_interpolate", {"size": [9, 11], "align_corners": align_corners_in_file},
                    {"input": x}, {"output": y}, dy, {"input": x.grad}, framework=f"torch {torch.__version__}")


def test_npz_round_trip(tmp_path):
    rng = np.random.default_rng(9)
    x, w, y = rng.standard_normal((1, 2, 4, 4)), rng.standard_normal((3, 2, 3, 3)), rng.standard_normal((1, 3, 2, 2))
    idx = rng.integers(0, 4, (1, 3, 2, 2))
    path = save_npz(tmp_path / "case", "conv2d", {"stride": (2, 2), "padding": 1}, {"input": x, "weight": w},
                    {"output": y}, dy=np.ones_like(y), grads={"input": x}, framework="jax 0.4.30")
    assert path.name == "case.npz" and path.is_file()
    case = load_npz(path)
    assert case.op == "conv2d" and case.params == {"stride": [2, 2], "padding": 1} and case.framework == "jax 0.4.30"
    assert set(case.inputs) == {"input", "weight"} and np.array_equal(case.inputs["weight"], w)
    assert np.array_equal(case.outputs["output"], y) and np.array_equal(case.grads["input"], x)
    assert np.array_equal(case.dy, np.ones_like(y))
    with np.load(path) as z:
        assert json.loads(str(z["params"])) == {"stride": [2, 2], "padding": 1} and int(z["version"]) == 1
    save_npz(tmp_path / "u.npz", "max_unpool2d", {"kernel_size": 2}, {"input": y, "indices": idx}, {"output": x})
    assert load_npz(tmp_path / "u.npz").inputs["indices"].dtype.kind == "i"


def test_check_file_and_exit_codes(tmp_path, capsys):
    good = _write_bilinear(tmp_path / "good.npz", False)
    bad = _write_bilinear(tmp_path / "bad.npz", True)
    assert check_file(good).passed and not check_file(bad).passed
    assert cli.main(["check", str(good)]) == 0
    out = capsys.readouterr().out
    assert "PASS" in out and "from torch" in out and str(good) in out and "grad.input: ok" in out
    assert cli.main(["check", str(good), str(bad)]) == 1
    out = capsys.readouterr().out
    assert "align_corners=False: the framework uses the other convention" in out
    # a loose tolerance makes no difference to a wrong convention, and a tight one still passes float64
    assert cli.main(["check", str(good), "--rtol", "1e-12", "--atol", "1e-14"]) == 0
    broken = tmp_path / "broken.npz"
    broken.write_text("not a zip")
    assert cli.main(["check", str(good), str(bad), str(broken)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"minseg check: error: {broken}: not an .npz file (not a zip archive; write it with numpy.savez)"]


@pytest.mark.parametrize("arrays,words", [
    ({"params": np.array("{}"), "input.input": np.zeros(3), "output.output": np.zeros(3)}, "missing key 'op'"),
    ({"op": np.array("conv3d"), "input.input": np.zeros(3), "output.output": np.zeros(3)}, "expected op in"),
    ({"op": np.array("relu"), "params": np.array("{bad"), "input.input": np.zeros(3), "output.output": np.zeros(3)},
     "'params' is not valid JSON"),
    ({"op": np.array("relu"), "params": np.array("[1]"), "input.input": np.zeros(3), "output.output": np.zeros(3)},
     "expected 'params' to be a JSON object, got list"),
    ({"op": np.array("relu"), "input.input": np.zeros(3), "outputs.output": np.zeros(3)},
     "unexpected key 'outputs.output'"),
    ({"op": np.array("relu"), "input.input": np.zeros(3)}, "nothing to compare"),
    ({"op": np.array("relu"), "output.output": np.zeros(3)}, "no input.<name> arrays"),
    ({"op": np.array("relu"), "input.input": np.zeros(3), "grad.input": np.zeros(3)}, "grad.input without dy"),
    ({"op": np.array("relu"), "params": np.array('{"inplace": true}'), "input.input": np.zeros(3),
      "output.output": np.zeros(3)}, "relu takes params [], got 'inplace'"),
    ({"op": np.array("conv2d"), "input.input": np.zeros((1, 1, 3, 3)), "output.output": np.zeros(3)},
     "conv2d needs inputs ['input', 'weight'], missing ['weight']"),
    ({"op": np.array(["relu"]), "input.input": np.zeros(3), "output.output": np.zeros(3)}, "'op' to be a 0-d string"),
    ({"op": np.array("relu"), "version": np.array(2), "input.input": np.zeros(3), "output.output": np.zeros(3)},
     "expected version 1"),
    ({"op": np.array("relu"), "input.input": np.array([None, 1], dtype=object), "output.output": np.zeros(2)},
     "pickle"),
])
def test_bad_files_give_one_line_naming_the_file(tmp_path, arrays, words, capsys):
    path = tmp_path / "f.npz"
    np.savez(path, **arrays)
    with pytest.raises(CheckFileError, match=None) as info:
        check_file(path)
    assert str(info.value).startswith(f"{path}: ") and words in str(info.value)
    assert cli.main(["check", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and str(path) in err and words in err


def test_missing_file_and_no_arguments(tmp_path, capsys):
    assert cli.main(["check", str(tmp_path / "nope.npz")]) == 2
    assert capsys.readouterr().err.strip() == f"minseg check: error: {tmp_path / 'nope.npz'}: no such file"
    assert cli.main(["check"]) == 2
    assert "expected FILE.npz arguments or --torch" in capsys.readouterr().err


def test_minseg_refusing_the_values_is_a_mismatch_not_a_bad_file(tmp_path, capsys):
    x = np.random.default_rng(0).standard_normal((1, 1, 2, 2))
    path = save_npz(tmp_path / "idx.npz", "max_unpool2d", {"kernel_size": 2},
                    {"input": x, "indices": np.array([[[[0, 5], [17, 30]]]])}, {"output": np.zeros((1, 1, 4, 4))})
    assert cli.main(["check", str(path)]) == 1
    out = capsys.readouterr().out
    assert "ERROR" in out and "minseg refused the inputs: max_unpool2d: expected indices in [0, 16)" in out
    assert "tf.nn.max_pool_with_argmax" in out


def test_torch_table_runs(capsys):
    pytest.importorskip("torch")
    assert cli.main(["check", "--torch"]) == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert lines[1].split() == ["op", "configs", "worst", "forward", "err", "worst", "backward", "err", "verdict"]
    for family in ("conv2d", "conv_transpose2d", "max_pool2d", "max_unpool2d", "bilinear_interpolate",
                   "upsample_nearest", "batch_norm2d", "relu", "linear", "softmax / log_softmax", "cross_entropy"):
        row = next(line for line in lines if line.startswith(family + " "))
        cells = row.split()
        assert cells[-1] == "exact", row
        assert all(float(c) < 1e-12 for c in cells[-3:-1]), row


def test_torch_table_without_torch(monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "torch", None)          # import torch raises ImportError
    assert cli.main(["check", "--torch"]) == 2
    assert capsys.readouterr().err.strip() == ("minseg check --torch: PyTorch is not installed; install it with: "
                                               "pip install torch==2.13.0")


def test_importing_minseg_does_not_import_torch():
    code = "import sys, minseg, minseg.check; assert 'torch' not in sys.modules; print(len(minseg.check.OPS))"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert int(proc.stdout) == len(OPS)


# --------------------------------------------------------------------------- a PyTorch model layer by layer

def _models():
    torch = pytest.importorskip("torch")
    nn = torch.nn

    class FCN(nn.Module):
        """Conv (dilation, groups), BatchNorm in train mode (momentum 0.1 and None), in-place ReLU, MaxPool with
        ceil_mode, Dropout p=0, ConvTranspose2d with output_padding, Upsample bilinear both align_corners."""

        def __init__(self):
            super().__init__()
            self.features = nn.Sequential(
                nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(inplace=True), nn.MaxPool2d(2),
                nn.Conv2d(8, 8, 3, padding=2, dilation=2, groups=2), nn.BatchNorm2d(8, momentum=None), nn.ReLU(),
                nn.Dropout(0.0), nn.MaxPool2d(3, stride=2, padding=1, ceil_mode=True))
            self.score = nn.Conv2d(8, 4, 1)
            self.up = nn.ConvTranspose2d(4, 4, 3, stride=2, padding=1, output_padding=1)
            self.up_corners = nn.Upsample(scale_factor=2, mode="bilinear", align_corners=True)
            self.up_areas = nn.Upsample(size=(15, 17), mode="bilinear", align_corners=False)

        def forward(self, x):
            return self.up_areas(self.up_corners(self.up(self.score(self.features(x)))))

    class UNet(nn.Module):
        """Encoder / decoder with switches (MaxPool return_indices + MaxUnpool), nearest upsampling, a skip,
        BatchNorm and Dropout in eval mode, a global-pool + Linear head, LogSoftmax, and a Sigmoid (no minseg op)."""

        def __init__(self):
            super().__init__()
            self.enc = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU())
            self.pool = nn.MaxPool2d(2, return_indices=True)
            self.mid = nn.Sequential(nn.Conv2d(8, 8, 3, padding="same"), nn.ReLU(inplace=True), nn.Dropout(0.5))
            self.unpool = nn.MaxUnpool2d(2)
            self.down = nn.MaxPool2d(2)
            self.up = nn.Upsample(scale_factor=2, mode="nearest")
            self.dec = nn.Conv2d(16, 8, 3, padding=1)
            self.head = nn.Conv2d(8, 5, 1)
            self.log_softmax = nn.LogSoftmax(dim=1)
            self.gap = nn.AdaptiveAvgPool2d(1)
            self.flat = nn.Flatten()
            self.fc = nn.Linear(8, 5)
            self.gate = nn.Sigmoid()

        def forward(self, x):
            e = self.enc(x)
            p, idx = self.pool(e)
            u = self.unpool(self.mid(p), idx)
            d = self.dec(torch.cat([u, self.up(self.down(e))], 1))
            gate = self.gate(self.fc(self.flat(self.gap(d))))
            return self.log_softmax(self.head(d)) * gate[:, :, None, None]

    torch.manual_seed(0)
    return torch, FCN, UNet


def test_check_torch_model_passes_fcn_and_unet():
    torch, FCN, UNet = _models()
    from minseg.check import check_torch_model

    fcn = FCN().double().train()
    before = {k: v.clone() for k, v in fcn.state_dict().items()}
    r = check_torch_model(fcn, torch.randn(2, 3, 15, 17, dtype=torch.float64))
    assert r.passed and not r.skipped and r.first_divergence is None, str(r)
    assert [row.op for row in r.rows] == ["conv2d", "batch_norm2d", "relu", "max_pool2d", "conv2d", "batch_norm2d",
                                          "relu", "dropout", "max_pool2d", "conv2d", "conv_transpose2d", "interpolate",
                                          "interpolate"]
    bn = r.rows[1].report
    assert {x.name for x in bn.reports} == {"output", "running_mean", "running_var", "grad.input", "grad.weight",
                                            "grad.bias"}
    for row in r.rows:        # round-off only (a conv bias before a batch norm has a gradient of pure round-off)
        assert all(x.scaled_error < 1e-12 or x.max_abs < 1e-13 for x in row.report.reports), row.name
    assert all(torch.equal(before[k], v) for k, v in fcn.state_dict().items())   # the model itself is untouched
    assert all(p.grad is None for p in fcn.parameters())

    unet = UNet().eval()
    r = check_torch_model(unet, torch.randn(2, 3, 8, 10), dtype=torch.float64)
    assert r.passed, str(r)
    assert [(row.name, row.type) for row in r.skipped] == [("flat", "Flatten"), ("gate", "Sigmoid")]
    assert {row.op for row in r.replayed} == {"conv2d", "batch_norm2d", "relu", "max_pool2d", "dropout",
                                              "max_unpool2d", "interpolate", "log_softmax", "adaptive_avg_pool2d",
                                              "linear"}
    pool = next(row for row in r.rows if row.name == "pool")
    assert {x.name for x in pool.report.reports} == {"output", "indices", "grad.input"}
    text = str(r)
    assert "PASS" in text and "skipped (not replayed, not counted as passed): #" in text
    assert "flat (Flatten: no minseg op for this layer)" in text


def test_check_torch_model_finds_the_wrong_layer():
    torch, FCN, UNet = _models()
    from minseg.check import check_torch_model

    class LastRowOff(torch.nn.ConvTranspose2d):
        def forward(self, x, output_size=None):
            y = super().forward(x).clone()
            y[..., -1, :] *= 1.001
            return y

    fcn = FCN()
    fcn.up = LastRowOff(4, 4, 3, stride=2, padding=1, output_padding=1)
    r = check_torch_model(fcn, torch.randn(2, 3, 15, 17))
    assert not r.passed
    first = r.first_divergence
    assert (first.name, first.type, first.op) == ("up", "LastRowOff", "conv_transpose2d")
    assert [row.name for row in r.replayed if not row.passed] == ["up"]
    assert first.report.report("output").where.endswith("are in the last row")
    assert "FAIL, first divergence at #11 up (LastRowOff)" in str(r) and "<- first divergence" in str(r)

    drop = torch.nn.Sequential(torch.nn.Conv2d(1, 2, 3), torch.nn.Dropout(0.5)).train()
    r = check_torch_model(drop, torch.randn(1, 1, 5, 5))
    assert r.passed and r.skipped[0].skipped == "training mode with p=0.5: a random mask cannot be replayed"


def test_more_diagnoses_tf_same_padding_nearest_exact_recompute_scale_and_ignored_mean():
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    rng = np.random.default_rng(10)
    x, w = torch.tensor(rng.standard_normal((1, 2, 8, 8))), torch.tensor(rng.standard_normal((3, 2, 3, 3)))
    y = F.conv2d(F.pad(x, (0, 1, 0, 1)), w, stride=2)                  # TF's SAME for stride 2 on 8: (0, 1)
    rep = check_op("conv2d", {"input": x, "weight": w}, {"stride": 2, "padding": 1}, {"output": y})
    assert any("TensorFlow's padding='SAME': (0, 1) rows and (0, 1) columns" in d for d in rep.diagnosis), rep

    x = torch.tensor(rng.standard_normal((1, 1, 5, 5)))
    y = F.interpolate(x, size=(7, 8), mode="nearest-exact")
    rep = check_op("upsample_nearest", {"input": x}, {"size": [7, 8]}, {"output": y})
    assert any("mode='nearest-exact'" in d for d in rep.diagnosis)
    y = F.interpolate(x, scale_factor=1.7, mode="bilinear", recompute_scale_factor=True)
    rep = check_op("interpolate", {"input": x}, {"mode": "bilinear", "scale_factor": 1.7}, {"output": y})
    assert any("recompute_scale_factor=True" in d for d in rep.diagnosis)
    assert check_op("interpolate", {"input": x}, {"mode": "bilinear", "scale_factor": 1.7,
                                                  "recompute_scale_factor": True}, {"output": y}).passed

    logits, target = torch.tensor(rng.standard_normal((2, 3, 4, 4))), torch.tensor(rng.integers(0, 3, (2, 4, 4)))
    target[0, 0] = 255
    loss_all = F.cross_entropy(logits, target, ignore_index=255, reduction="sum") / target.numel()
    rep = check_op("cross_entropy", {"input": logits, "target": target}, {"ignore_index": 255}, {"output": loss_all})
    assert any("counts ignored pixels in the mean" in d for d in rep.diagnosis)


def test_readme_pytorch_writer_checks_clean(tmp_path, monkeypatch, capsys):
    pytest.importorskip("torch")
    from pathlib import Path

    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    section = readme.split("## Checking a framework", 1)[1]
    block = section.split("From PyTorch:", 1)[1].split("```python\n", 1)[1].split("```", 1)[0]
    monkeypatch.chdir(tmp_path)
    exec(compile(block, "README.md", "exec"), {})
    assert cli.main(["check", "torch_conv.npz"]) == 0
    out = capsys.readouterr().out
    assert "conv2d(stride=2, padding=1) from torch" in out and "grad.weight: ok" in out

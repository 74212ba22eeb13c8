"""The prepared device check runs, and skips cleanly with a message, on a machine without a usable GPU."""
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from minseg import backend

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "benchmarks" / "gpu_check.py"


@pytest.mark.skipif(backend.has_gpu(), reason="a usable GPU is present: the check would really run")
def test_gpu_check_skips_without_gpu(tmp_path):
    out = tmp_path / "check.json"
    proc = subprocess.run([sys.executable, str(SCRIPT), "--out", str(out)], capture_output=True, text=True,
                          timeout=120, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "SKIPPED" in proc.stdout
    assert "cupy" in proc.stdout                      # the reason names what is missing
    assert "pytest -m gpu" in proc.stdout             # and what was skipped
    result = json.loads(out.read_text())
    assert result["status"] == "skipped"
    assert "cupy" in result["reason"]
    assert result["reason"] in proc.stdout
    assert len(result["skipped"]) == 4


def test_gpu_check_step_configs_build_and_give_gradients():
    """The two models the check compares build in float64 and give a gradient for every parameter on the CPU."""
    sys.path.insert(0, str(SCRIPT.parent))
    import gpu_check  # noqa: PLC0415
    from minseg.models import build_model  # noqa: PLC0415

    rng = np.random.default_rng(0)
    x = rng.random((2, 3, 32, 32))
    y = rng.integers(0, 4, size=(2, 32, 32))
    for name, cfg in [("unet", {"num_classes": 4, "in_channels": 3, "base_width": 4, "depth": 2}),
                      ("fcn8s", {"num_classes": 4, "in_channels": 3, "widths": (4, 4, 8, 8, 8),
                                 "convs": (1, 1, 1, 1, 1), "fc_channels": 8})]:
        model = build_model(name, rng=0, dtype=np.float64, **cfg)
        loss, grads = gpu_check._step_grads(model, x, y)
        assert np.isfinite(loss) and loss > 0
        assert set(grads) == {n for n, _ in model.named_parameters()}
        assert all(g.dtype == np.float64 for g in grads.values())
    assert gpu_check.rel_diff(np.array([1.0, 2.0]), np.array([1.0, 2.0])) == 0.0
    assert gpu_check.rel_diff(np.array([1.0, 2.5]), np.array([1.0, 2.0])) == pytest.approx(0.25)


def test_gpu_check_comparisons_pass_on_the_strict_fake_device(monkeypatch):
    """The check's GPU-vs-CPU comparisons, run on the fake GPU of tests/fake_cupy.py (NumPy under CuPy's rules).

    This checks the comparison code itself (devices, transfers, tolerances) where no GPU is present; the
    numbers on a real GPU come from running the script there.
    """
    import fake_cupy  # noqa: PLC0415

    sys.path.insert(0, str(SCRIPT.parent))
    import gpu_check  # noqa: PLC0415

    fake_cupy.install(monkeypatch)
    step = gpu_check.compare_step("unet", {"num_classes": 4, "in_channels": 3, "base_width": 4, "depth": 2},
                                  size=16)
    assert step["ok"] and step["n_grads"] > 0 and not step["grads_missing_on_one_side"], step
    loop = gpu_check.compare_training()
    assert loop["ok"], loop
    assert len(loop["losses_gpu"]) == 2 and loop["checkpoint_weights_rel_diff"] == 0.0


@pytest.mark.slow
def test_the_whole_gpu_check_runs_on_the_strict_fake_device(monkeypatch, tmp_path, capsys):
    """Every step of the check's GPU path (but PyTorch CUDA, and the CuPy test cases stubbed) on the fake GPU.

    A dry run where no GPU is present, so that the one run on a real GPU does not stop at a bug in the script.
    """
    import fake_cupy  # noqa: PLC0415

    sys.path.insert(0, str(SCRIPT.parent))
    import gpu_check  # noqa: PLC0415

    fake_cupy.install(monkeypatch)
    monkeypatch.setattr(gpu_check, "run_gpu_tests", lambda timeout_s: {"ok": True, "returncode": 0, "seconds": 0.0,
                                                                       "summary": "not run in the dry run"})
    monkeypatch.setattr(gpu_check._gpu_time, "__defaults__", (1, 0))    # one timed call, no warm-up
    out = tmp_path / "check.json"
    assert gpu_check.main(["--out", str(out)]) == 0
    result = json.loads(out.read_text())
    assert result["status"] == "ran" and result["ok"] and not result["errors"], result
    assert [r["op"] for r in result["timings"]][-1].startswith("U-Net step")
    assert all(s["max_grad_rel_diff"] <= gpu_check.TOLERANCE for s in result["training_step"])
    assert "gpu_check: PASS" in capsys.readouterr().out

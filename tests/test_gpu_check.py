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
    assert len(result["skipped"]) == 3


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

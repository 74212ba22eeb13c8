"""Lesson 10 without torch: its stored outputs are small, complete and what the lesson computes with torch,
and its solution notebook runs top to bottom with torch hidden (``MINSEG_LESSONS_NO_TORCH=1``)."""
import importlib.util
import time
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK = ROOT / "lessons" / "solutions" / "10_checking_a_framework.ipynb"

_spec = importlib.util.spec_from_file_location("make_lesson10_outputs",
                                               ROOT / "data_scripts" / "make_lesson10_outputs.py")
make = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(make)


def test_stored_outputs_are_small_and_complete():
    files = make.check(make.OUT)                      # raises on a missing lesson key or a file over 200 KB
    assert make.OUT.stat().st_size < 200_000
    assert "meta.framework" in files
    with np.load(make.OUT, allow_pickle=False) as z:
        assert str(z["model.first"]) == "mid_conv (RotatedConv2d)"
        assert "torch" in str(z["meta.framework"])


@pytest.mark.slow
def test_stored_outputs_are_what_the_lesson_computes_now(tmp_path):
    pytest.importorskip("torch")
    pytest.importorskip("torchmetrics")
    fresh = make.record(tmp_path / "fresh.npz")
    with np.load(make.OUT, allow_pickle=False) as stored, np.load(fresh, allow_pickle=False) as now:
        assert sorted(stored.files) == sorted(now.files)
        for k in now.files:
            a, b = stored[k], now[k]
            if k == "model.text":                       # the table's numbers are round-off; its verdicts are not
                assert str(a).splitlines()[0] == str(b).splitlines()[0], k
            elif k == "meta.framework" or a.dtype.kind in "USiub":
                assert np.array_equal(a, b), k
            else:
                np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-12, err_msg=k)


# "env": the lesson's own switch; "blocked": a first cell makes every `import torch` fail, as where it is
# not installed (None in sys.modules makes the import raise ImportError)
BLOCK_TORCH = "import sys\nfor _m in ('torch', 'torchmetrics'):\n    sys.modules[_m] = None"


@pytest.mark.slow
@pytest.mark.parametrize("how", ["env", "blocked"])
def test_solution_runs_with_torch_hidden(how, tmp_path, monkeypatch):
    import nbformat
    from nbclient import NotebookClient

    monkeypatch.setenv("MPLBACKEND", "Agg")
    monkeypatch.delenv("MINSEG_LESSONS_QUICK", raising=False)
    monkeypatch.delenv("MINSEG_LESSONS_RECORD", raising=False)
    if how == "env":
        monkeypatch.setenv("MINSEG_LESSONS_NO_TORCH", "1")
    else:
        monkeypatch.delenv("MINSEG_LESSONS_NO_TORCH", raising=False)
    nb = nbformat.read(NOTEBOOK, as_version=4)
    if how == "blocked":
        nb.cells.insert(0, nbformat.v4.new_code_cell(BLOCK_TORCH))
    client = NotebookClient(nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}})
    start = time.perf_counter()
    client.execute()
    print(f"{NOTEBOOK.relative_to(ROOT)} with torch hidden ({how}): {time.perf_counter() - start:.1f} s")
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    text = "".join(o.get("text", "") for o in outputs if o.output_type == "stream")
    why = "(MINSEG_LESSONS_NO_TORCH=1)" if how == "env" else "(import failed: import of torch halted"
    assert f"no torch here {why}" in text and "READ FROM 10_torch_outputs.npz" in text, text[:400]
    assert "first divergence at #5 mid_conv (RotatedConv2d)" in text
    assert "exit code: 1" in text and "(stored outputs)" in text

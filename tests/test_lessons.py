"""The lessons: each source makes its two committed notebooks, and every notebook runs top to bottom.

The exercise versions run with ``MINSEG_LESSONS_QUICK=1`` (fewer epochs and
smaller trainings, documented in ``lessons/README.md``) to keep the suite
short; the solution versions always run in full, since their numbers tell the
lesson's story, and every ``exercises.check`` they call must pass (each
solution notebook asserts it).
"""
import importlib.util
import os
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LESSONS = ROOT / "lessons"

_spec = importlib.util.spec_from_file_location("lessons_build", LESSONS / "build.py")
build = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(build)

SOURCES = build.sources()


def test_there_are_lessons():
    names = [s.stem for s in SOURCES]
    assert names, "lessons/src/ has no NN_name.py sources"
    assert names == sorted(names)
    assert len({n[:2] for n in names}) == len(names), f"two lessons share a number: {names}"


def test_committed_notebooks_are_what_their_sources_make():
    assert build.stale() == [], "run `python lessons/build.py` and commit the notebooks"


def test_lessons_before_10_do_not_need_torch():
    """Lessons 00-09 run with only the ``lessons`` extra: no code cell imports torch or torchmetrics."""
    import re

    for source in SOURCES:
        if int(source.stem[:2]) >= 10:
            continue
        for cell in build.parse_cells(source.read_text(encoding="utf-8")):
            if cell["type"] == "code":
                found = re.findall(r"^\s*(?:import|from)\s+(torch\w*)", cell["source"], flags=re.M)
                assert not found, f"{source.name} imports {found[0]}"


def test_no_outputs_committed():
    import nbformat

    for source in SOURCES:
        for path in build.targets(source).values():
            nb = nbformat.read(path, as_version=4)
            for cell in nb.cells:
                if cell.cell_type == "code":
                    assert cell.outputs == [] and cell.execution_count is None, path


def test_parse_cells_tags_and_markdown():
    text = ("# a comment before the first cell is not a cell\n"
            "# %% [markdown]\n# # Title\n#\n# prose\n\n"
            "# %%\nx = 1\n\n"
            "# %% tags=[\"task\"]\ndef f():\n    raise NotImplementedError\n"
            "# %% tags=[\"solution\"]\ndef f():\n    return 1\n")
    cells = build.parse_cells(text)
    assert [c["type"] for c in cells] == ["markdown", "code", "code", "code"]
    assert cells[0]["source"] == "# Title\n\nprose"
    assert cells[1] == {"type": "code", "source": "x = 1", "tags": []}
    assert cells[2]["tags"] == ["task"] and cells[3]["tags"] == ["solution"]
    ex = build.make_notebook(cells, "exercise")
    sol = build.make_notebook(cells, "solution")
    assert [c.source for c in ex.cells][-1] == "def f():\n    raise NotImplementedError"
    assert [c.source for c in sol.cells][-1] == "def f():\n    return 1"
    assert len(ex.cells) == len(sol.cells) == 3
    assert ex.metadata.kernelspec.name == "python3"
    with pytest.raises(ValueError, match="version"):
        build.make_notebook(cells, "answers")


def _notebooks():
    for source in SOURCES:
        for version, path in build.targets(source).items():
            yield pytest.param(path, version, id=f"{source.stem}-{version}", marks=pytest.mark.slow)


@pytest.mark.parametrize("path, version", list(_notebooks()))
def test_notebook_runs_top_to_bottom(path, version, tmp_path, monkeypatch):
    import nbformat
    from nbclient import NotebookClient

    monkeypatch.setenv("MPLBACKEND", "Agg")
    # The lessons' models are small: one BLAS thread multiplies their matrices faster than two that
    # spin against each other (measured 12x per DeepLab step on a loaded 2-core machine), same results.
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        monkeypatch.setenv(var, os.environ.get(var, "1"))
    if version == "exercise":
        monkeypatch.setenv("MINSEG_LESSONS_QUICK", "1")
    else:
        monkeypatch.delenv("MINSEG_LESSONS_QUICK", raising=False)
    nb = nbformat.read(path, as_version=4)
    client = NotebookClient(nb, timeout=900, kernel_name="python3",
                            resources={"metadata": {"path": str(tmp_path)}})
    start = time.perf_counter()
    client.execute()
    elapsed = time.perf_counter() - start
    print(f"{path.relative_to(ROOT)}: {elapsed:.1f} s")
    errors = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs if o.output_type == "error"]
    assert not errors

"""Make each lesson's two notebooks from its one source, so they never drift apart.

A lesson's source is ``lessons/src/NN_name.py``, a Python script in the
"percent" cell format that Jupyter tools (jupytext, VS Code, Spyder) read:

    # %% [markdown]
    # # A heading
    # Prose, one ``# `` per line.

    # %%
    x = 1                       # a code cell in both notebooks

    # %% tags=["task"]
    def im2col(...):            # only in the exercise notebook: the blank to fill in
        raise NotImplementedError

    # %% tags=["solution"]
    def im2col(...):            # only in the solution notebook: the worked answer
        ...

From it ``python lessons/build.py`` writes

* ``lessons/NN_name.ipynb``           the exercise version (cells tagged ``solution`` left out),
* ``lessons/solutions/NN_name.ipynb`` the solution version (cells tagged ``task`` left out),

both without outputs. ``python lessons/build.py --check`` writes nothing and
exits 1 when a committed notebook is not what its source makes (the tests run
this check too).
"""
from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

import nbformat

LESSONS = Path(__file__).resolve().parent
SOURCES = LESSONS / "src"
SOLUTIONS = LESSONS / "solutions"

_CELL = re.compile(r"^# %%(?P<markdown> \[markdown\])?(?P<rest>.*)$")
_TAGS = re.compile(r"""tags\s*=\s*(\[[^\]]*\])""")
VERSIONS = {"exercise": "solution", "solution": "task"}   # version -> the tag it leaves out


def parse_cells(text: str) -> list[dict]:
    """Split a percent-format script into cells: ``{"type", "source", "tags"}`` in order.

    Lines before the first ``# %%`` marker are not part of any cell (a module
    docstring or comment for the script's reader). Markdown lines lose their
    leading ``# `` (or a bare ``#``); leading and trailing blank lines of a cell
    are dropped.
    """
    cells, current = [], None
    for line in text.splitlines():
        m = _CELL.match(line)
        if m:
            tags_m = _TAGS.search(m.group("rest"))
            tags = json.loads(tags_m.group(1)) if tags_m else []
            current = {"type": "markdown" if m.group("markdown") else "code", "lines": [], "tags": tags}
            cells.append(current)
        elif current is not None:
            current["lines"].append(line)
    out = []
    for cell in cells:
        lines = cell["lines"]
        if cell["type"] == "markdown":
            lines = [ln[2:] if ln.startswith("# ") else ("" if ln == "#" else ln) for ln in lines]
        while lines and not lines[0].strip():
            lines = lines[1:]
        while lines and not lines[-1].strip():
            lines = lines[:-1]
        out.append({"type": cell["type"], "source": "\n".join(lines), "tags": cell["tags"]})
    return out


def make_notebook(cells: list[dict], version: str) -> nbformat.NotebookNode:
    """The ``"exercise"`` or ``"solution"`` notebook of a lesson's cells, with no outputs."""
    if version not in VERSIONS:
        raise ValueError(f"make_notebook: expected version 'exercise' or 'solution', got {version!r}")
    left_out = VERSIONS[version]
    nb = nbformat.v4.new_notebook()
    nb.metadata = {
        "kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"},
        "language_info": {"name": "python"},
    }
    for i, cell in enumerate(c for c in cells if left_out not in c["tags"]):
        meta = {"tags": cell["tags"]} if cell["tags"] else {}
        if cell["type"] == "markdown":
            nb_cell = nbformat.v4.new_markdown_cell(cell["source"], metadata=meta)
        else:
            nb_cell = nbformat.v4.new_code_cell(cell["source"], metadata=meta)
        nb_cell["id"] = f"cell-{i:03d}"        # stable ids: the same source makes the same file
        nb.cells.append(nb_cell)
    return nb


def targets(source: Path) -> dict[str, Path]:
    """Where the two notebooks of ``lessons/src/NN_name.py`` go."""
    name = source.stem + ".ipynb"
    return {"exercise": LESSONS / name, "solution": SOLUTIONS / name}


def render(source: Path) -> dict[Path, str]:
    """The text of both notebooks made from ``source``, by destination path."""
    cells = parse_cells(source.read_text(encoding="utf-8"))
    return {path: nbformat.writes(make_notebook(cells, version)) + "\n"
            for version, path in targets(source).items()}


def sources() -> list[Path]:
    """Every lesson source, in lesson order."""
    return sorted(SOURCES.glob("[0-9][0-9]_*.py"))


def stale() -> list[Path]:
    """The committed notebooks that differ from what their sources make (or are missing)."""
    bad = []
    for source in sources():
        for path, text in render(source).items():
            if not path.exists() or path.read_text(encoding="utf-8") != text:
                bad.append(path)
    return bad


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description="Make the exercise and solution notebooks from lessons/src/.")
    parser.add_argument("--check", action="store_true",
                        help="write nothing; exit 1 if a committed notebook differs from its source")
    args = parser.parse_args(argv)
    if args.check:
        bad = stale()
        for path in bad:
            print(f"out of date: {path.relative_to(LESSONS.parent)} (run python lessons/build.py)")
        return 1 if bad else 0
    SOLUTIONS.mkdir(exist_ok=True)
    for source in sources():
        for path, text in render(source).items():
            path.write_text(text, encoding="utf-8")
            print(f"wrote {path.relative_to(LESSONS.parent)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

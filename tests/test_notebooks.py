"""The stage notebooks: house style, nbval over CI-sized defaults, and
papermill with injected parameters."""
from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from nanotools import report

NOTEBOOKS = report.stage_notebooks(Path(__file__).resolve().parent.parent / "notebooks")


def _read(path):
    return nbformat.read(str(path), as_version=4)


def test_notebooks_are_numbered_in_stage_order():
    assert [p.stem for p in NOTEBOOKS] == ["01_map", "02_preprocess", "03_phasing",
                                           "04_patterns", "05_summary"]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_house_style(path):
    nb = _read(path)
    nbformat.validate(nb)
    first = nb.cells[0]
    assert first.cell_type == "markdown" and first.source.startswith("# ")
    assert len(first.source.split("\n\n")[1]) > 200  # one paragraph on what the stage does
    code = [c for c in nb.cells if c.cell_type == "code"]
    parameters = [c for c in code if "parameters" in c.metadata.get("tags", [])]
    assert len(parameters) == 1
    for line in parameters[0].source.splitlines():
        target, value = line.split("=", 1)
        literal, comment = value.split("  # ", 1)
        ast.literal_eval(literal.strip())  # plain literals only
        assert target.strip().isidentifier() and comment.strip()  # with what it means / unit
    assert "interactive" in report.declared_parameters(path)
    assert "work_dir" in report.declared_parameters(path)
    summaries = [c for c in code if "nbval-check-output" in c.metadata.get("tags", [])]
    assert len(summaries) == 1 and "summary" in summaries[0].metadata["tags"]
    for cell in code:
        tree = ast.parse("\n".join(line for line in cell.source.splitlines()
                                   if not line.startswith("%")))
        assert not any(isinstance(n, (ast.FunctionDef, ast.ClassDef, ast.Lambda))
                       for n in ast.walk(tree)), cell.source
        # stored without outputs or execution counts (the summary's reference
        # output lives in tests/notebook_summaries.json)
        assert not cell.outputs and cell.execution_count is None, cell.source
    assert len([c for c in code if any(t.startswith("fig:") for t in c.metadata.get("tags", []))
                ]) >= 1


def test_required_figures_are_drawn_by_the_notebooks():
    tags = {t[4:] for p in NOTEBOOKS for c in _read(p).cells
            for t in c.metadata.get("tags", []) if t.startswith("fig:")}
    assert set(report.REQUIRED_FIGURES) <= tags


SUMMARIES = Path(__file__).resolve().parent / "notebook_summaries.json"


def _with_reference_summary(path, copy):
    """Write a copy of the notebook whose summary cell carries its reference
    output (nbval compares only cells that look run, so it gets a count)."""
    import json

    reference = json.loads(SUMMARIES.read_text())[path.name]
    nb = _read(path)
    for cell in nb.cells:
        if cell.cell_type == "code" and "nbval-check-output" in cell.metadata.get("tags", []):
            cell.execution_count = 1
            cell.outputs = [nbformat.v4.new_output("stream", name="stdout", text=reference)]
    nbformat.write(nb, str(copy))


@pytest.fixture(scope="module")
def nbval_run(tmp_path_factory):
    """pytest --nbval-lax over a copy of the notebooks (the stage files land
    beside the copy, not in the repository)."""
    folder = tmp_path_factory.mktemp("nbval")
    for path in NOTEBOOKS:
        _with_reference_summary(path, folder / path.name)
    proc = subprocess.run([sys.executable, "-m", "pytest", "--nbval-lax", "-p",
                           "no:cacheprovider", "-q", "-o", "addopts=", "--rootdir", str(folder),
                           str(folder)], cwd=folder, capture_output=True, text=True,
                          env={**os.environ, "MPLBACKEND": "agg"}, timeout=600)
    return folder, proc


def test_nbval_over_all_notebooks(nbval_run):
    folder, proc = nbval_run
    assert proc.returncode == 0, proc.stdout[-4000:]
    assert " passed" in proc.stdout and "failed" not in proc.stdout
    for stage in ("map", "prepared", "phasing", "patterns"):
        assert (folder / "stages" / f"{stage}.h5").is_file()
    assert (folder / "result.h5").is_file()


def test_papermill_injects_parameters_into_one_stage(nbval_run, tmp_path):
    import papermill

    from nanotools import io

    folder, _ = nbval_run
    executed = tmp_path / "04.ipynb"
    papermill.execute_notebook(str(folder / "04_patterns.ipynb"), str(executed),
                               cwd=str(folder), parameters={"n_clusters": 1,
                                                            "interactive": False,
                                                            "work_dir": "stages"},
                               kernel_name="python3", progress_bar=False)
    nb = _read(executed)
    assert nb.metadata["papermill"]["parameters"]["n_clusters"] == 1
    (summary,) = [c for c in nb.cells if "summary" in c.metadata.get("tags", [])]
    assert summary.outputs[0]["text"].strip().endswith("in 1 clusters")
    found = io.load_stage(folder / "stages" / "patterns.h5")
    assert len(found.clusters) == 1 and found.clusters[0].n_members == len(found.supercells)
    # no widget panel in a papermill run: no widget output anywhere
    assert not any("application/vnd.jupyter.widget-view+json" in o.get("data", {})
                   for c in nb.cells if c.cell_type == "code" for o in c.outputs)


def test_binder_installs_the_package_and_opens_the_first_notebook():
    import tomllib

    root = Path(__file__).resolve().parent.parent
    requirements = (root / "binder" / "requirements.txt").read_text().split()
    assert requirements == ["-e", ".[notebooks]"]  # the package itself, one dependency list
    extra = tomllib.loads((root / "pyproject.toml").read_text())["project"][
        "optional-dependencies"]["notebooks"]
    for needed in ("jupyterlab", "ipywidgets", "ipympl", "papermill"):
        assert any(req.startswith(needed) for req in extra), needed
    readme = (root / "README.md").read_text()
    (link,) = [line for line in readme.splitlines() if "mybinder.org/v2/" in line]
    labpath = link.split("labpath=")[1].split(")")[0].replace("%2F", "/")
    assert (root / labpath).is_file() and labpath == f"notebooks/{NOTEBOOKS[0].name}"

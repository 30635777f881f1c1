"""`nanotools run` / nanotools.report.run_report: papermill execution of the
stage notebooks with injected parameters, report.html, result.h5, and
clean failures."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import h5py
import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_notebook

from nanotools import report
from nanotools.errors import InputError, NanotoolsError, ParameterError

from _demo_report import OVERRIDES, SEED, demo_report


@pytest.fixture(scope="session")
def demo(tmp_path_factory):
    return demo_report(tmp_path_factory.mktemp("demo"))


def test_run_leaves_notebooks_result_and_report(demo):
    out, proc = demo
    assert proc.returncode == 0, proc.stderr
    names = sorted(p.name for p in out.iterdir())
    assert names == ["01_map.ipynb", "02_preprocess.ipynb", "03_phasing.ipynb",
                     "04_patterns.ipynb", "05_summary.ipynb", "report.html", "result.h5",
                     "stages"]
    # one progress line per stage, then the report
    lines = proc.stderr.splitlines()
    for i, stem in enumerate(["01_map", "02_preprocess", "03_phasing", "04_patterns",
                              "05_summary"], 1):
        assert any(line.startswith(f"[{i}/5] {stem} done") for line in lines), proc.stderr
    assert "report:" in lines[-1]
    # nothing left beside the report folder
    assert sorted(p.name for p in out.parent.iterdir()) == ["report"]


def test_overridden_parameters_reach_notebooks_and_provenance(demo):
    out, _ = demo
    phasing_nb = nbformat.read(out / "03_phasing.ipynb", as_version=4)
    injected = phasing_nb.metadata["papermill"]["parameters"]
    assert injected["n_starts"] == 3 and injected["algorithm"] == OVERRIDES["algorithm"]
    assert injected["seed"] == SEED and injected["interactive"] is False
    patterns_nb = nbformat.read(out / "04_patterns.ipynb", as_version=4)
    assert patterns_nb.metadata["papermill"]["parameters"]["n_clusters"] == 2
    with h5py.File(out / "result.h5", "r") as h5:
        process = h5["entry/process"]
        assert int(process["n_starts"][()]) == 3
        assert int(process["n_iterations"][()]) == 60
        assert int(process["seed"][()]) == SEED
        parameters = json.loads(process["parameters"][()])
        assert parameters["n_starts"] == 3 and parameters["n_clusters"] == 2
        assert parameters["algorithm"] == OVERRIDES["algorithm"]
        assert len(h5["entry/clusters/n_members"][()]) == 2
        assert h5["entry/runs/fourier_error"].shape == (3,)
        assert len(process["input_sha256"][()]) == 64
    page = (out / "report.html").read_text()
    assert '<td data-name="n_starts">3</td>' in page
    assert f'<td data-name="algorithm">{OVERRIDES["algorithm"]}</td>' in page


def test_report_embeds_every_figure_and_the_summaries(demo):
    out, _ = demo
    page = (out / "report.html").read_text()
    for name in report.REQUIRED_FIGURES:
        assert f'id="fig-{name}"' in page, name  # attribute order is the serializer's
    assert page.count("data:image/png;base64,") >= len(report.REQUIRED_FIGURES)
    assert "3 starts x 60 iterations" in page  # the phasing notebook's summary line
    assert 'id="provenance"' in page and "input_sha256" in page
    assert "<script" not in page  # one static page


def test_stage_notebook_reruns_alone_from_the_report(demo, tmp_path):
    """Any stage can be re-run alone: the report folder holds its inputs."""
    import papermill

    out, _ = demo
    executed = tmp_path / "03_again.ipynb"
    papermill.execute_notebook(str(out / "03_phasing.ipynb"), str(executed), cwd=str(tmp_path),
                               parameters={"n_starts": 2, "interactive": False,
                                           "algorithm": "ER**5",
                                           "work_dir": str(out / "stages")},
                               kernel_name="python3", progress_bar=False)
    nb = nbformat.read(executed, as_version=4)
    (summary,) = [c for c in nb.cells if "summary" in c.metadata.get("tags", [])]
    assert summary.outputs[0]["text"].startswith("2 starts x 5 iterations")


# ------------------------------------------------------------- failures
def _no_trace(out: Path) -> None:
    assert not out.exists()
    assert not list(out.parent.glob(f".{out.name}*"))


@pytest.mark.parametrize("params, error, match", [
    ({"n_strats": 4}, ParameterError, "unknown parameter 'n_strats'"),
    ({"n_starts": "many"}, ParameterError, "must be of type int"),
    ({"beta": 3.0}, ParameterError, "must be <= 1"),
    ({"texture": "stripes"}, ParameterError, "must be one of"),
])
def test_bad_parameter_fails_before_anything_is_written(tmp_path, params, error, match):
    out = tmp_path / "out"
    with pytest.raises(error, match=match):
        report.run_report(out_dir=out, params=params, progress=None)
    _no_trace(out)


def test_simulation_parameter_with_an_input_is_refused(tmp_path):
    out = tmp_path / "out"
    with pytest.raises(ParameterError, match="only when INPUT is left out"):
        report.run_report(input_path=report.example_path(), out_dir=out,
                          params={"sim_period_nm": 10.0}, progress=None)
    _no_trace(out)


def test_bad_input_fails_before_anything_is_written(tmp_path):
    out = tmp_path / "out"
    with pytest.raises(InputError, match="not found"):
        report.run_report(input_path=tmp_path / "missing.h5", out_dir=out, progress=None)
    junk = tmp_path / "junk.h5"
    junk.write_text("not HDF5 at all")
    with pytest.raises(InputError) as info:
        report.run_report(input_path=junk, out_dir=out, progress=None)
    assert "junk.h5" in str(info.value)
    _no_trace(out)


def test_existing_report_is_kept_without_force(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "result.h5").write_text("an earlier result")
    with pytest.raises(NanotoolsError, match="--force"):
        report.run_report(out_dir=out, progress=None)
    assert (out / "result.h5").read_text() == "an earlier result"


def _notebook(path: Path, *sources: str) -> None:
    cells = [new_code_cell('work_dir = "stages"  # folder of the stage files')]
    cells[0].metadata["tags"] = ["parameters"]
    cells += [new_code_cell(s) for s in sources]
    nb = new_notebook(cells=cells)
    nb.metadata["kernelspec"] = {"name": "python3", "language": "python",
                                 "display_name": "Python 3"}
    nbformat.write(nb, str(path))


def test_failing_stage_names_notebook_and_cell(tmp_path):
    books = tmp_path / "books"
    books.mkdir()
    _notebook(books / "01_fine.ipynb", "x = 1")
    _notebook(books / "02_broken.ipynb", "y = 2", "y / 0")
    out = tmp_path / "out"
    lines = []
    with pytest.raises(report.StageFailed) as info:
        report.run_report(out_dir=out, notebooks=books, progress=lines.append)
    message = str(info.value)
    assert "02_broken.ipynb" in message and "cell 3 (`y / 0`)" in message
    assert "ZeroDivisionError" in message
    assert any(line.startswith("[1/2] 01_fine done") for line in lines)
    assert not out.exists()


def test_force_replaces_a_report_and_a_missing_figure_is_a_failure(tmp_path):
    """A notebook set that writes a result but draws no figures: the run
    fails on the missing figures and leaves the old folder alone; with the
    old folder gone, the check is the same."""
    books = tmp_path / "books"
    books.mkdir()
    _notebook(books / "01_result.ipynb",
              "import h5py\nwith h5py.File('result.h5', 'w') as h5:\n"
              "    h5.create_group('entry/process')")
    out = tmp_path / "out"
    out.mkdir()
    (out / "old.txt").write_text("old")
    with pytest.raises(report.StageFailed, match="drew no 'rsm' figure"):
        report.run_report(out_dir=out, notebooks=books, force=True, progress=None)
    assert (out / "old.txt").read_text() == "old"


def test_cli_bad_parameter_is_one_error_line_and_exit_2(tmp_path):
    out = tmp_path / "out"
    proc = subprocess.run([sys.executable, "-m", "nanotools", "run", "--out", str(out),
                           "-p", "n_starts", "lots"], capture_output=True, text=True,
                          env={**os.environ, "MPLBACKEND": "agg"}, timeout=120)
    assert proc.returncode == 2
    assert proc.stderr.startswith("error: ") and len(proc.stderr.strip().splitlines()) == 1
    assert "n_starts" in proc.stderr
    assert not out.exists()


def test_record_and_load_parameters(tmp_path):
    report.record_parameters(tmp_path, "phasing", {"n_starts": 4, "input_path": "x"})
    report.record_parameters(tmp_path, "patterns", {"n_clusters": 2})
    assert report.load_parameters(tmp_path) == {"n_starts": 4, "n_clusters": 2}
    assert report.started_at(tmp_path) <= report.started_at(tmp_path / "none")


def test_every_registry_parameter_is_declared_by_a_notebook():
    from nanotools.params import PARAMETERS

    declared = set()
    for book in report.stage_notebooks():
        declared |= set(report.declared_parameters(book))
    assert set(PARAMETERS) <= declared, sorted(set(PARAMETERS) - declared)
    assert set(report.RUNNER_PARAMETERS) <= declared

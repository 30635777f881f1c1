"""Batch reports: run the stage notebooks headless and write one HTML page.

:func:`run_report` is what ``nanotools run [INPUT] --out DIR`` calls. It
checks the input and the parameters first (so a mistake costs nothing and
leaves ``DIR`` untouched), executes the numbered notebooks of
:func:`notebook_dir` one after the other with papermill in a scratch
folder, then builds ``report.html`` from the executed notebooks and moves
everything into ``DIR`` at once:

``DIR/01_map.ipynb ... 05_summary.ipynb``
    The executed notebooks, with their figures.
``DIR/stages/``
    Each stage's output (HDF5, :func:`nanotools.io.save_stage`), so any
    notebook can be re-run alone from ``DIR``.
``DIR/result.h5``
    The result file of docs/CONTRACT.md (:func:`nanotools.io.write_result`).
``DIR/report.html``
    One self-contained page: every figure embedded, the parameters and the
    provenance listed.

The notebooks record the parameters they ran with
(:func:`record_parameters`); the summary notebook gathers them
(:func:`load_parameters`) for the provenance of ``result.h5``.
"""
from __future__ import annotations

import base64
import json
import os
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, Callable

from .errors import InputError, NanotoolsError, ParameterError
from .params import PARAMETERS, parse_value

__all__ = [
    "StageFailed",
    "Report",
    "REQUIRED_FIGURES",
    "RUNNER_PARAMETERS",
    "notebook_dir",
    "stage_notebooks",
    "example_path",
    "declared_parameters",
    "record_parameters",
    "load_parameters",
    "started_at",
    "build_html",
    "run_report",
]

#: Figures every report must hold: the ``fig:NAME`` tag of the notebook cell
#: that draws it -> what it shows.
REQUIRED_FIGURES = {
    "rsm": "the map on a log scale, satellites and mask marked",
    "prepared": "the prepared map the phasing sees",
    "support": "the support",
    "convergence": "convergence curves of all starts",
    "located": "the supercells located on each run",
    "clusters": "the k-means clusters with member counts",
    "maps": "amplitude, displacement and strain of the supercell, scale bars in nm",
    "uncertainty": "the uncertainty over the chosen cluster",
    "half_maps": "the half maps of the even and odd starts, their difference and the verdict",
}

#: Parameters the runner itself sets in every notebook that declares them
#: (besides the registry's): where the input is, where stage files go,
#: where the result goes, the seed, and that no widget panel is shown.
RUNNER_PARAMETERS = ("input_path", "work_dir", "result_path", "seed", "interactive")

_STAGE_DIR = "stages"
_RESULT = "result.h5"
_REPORT = "report.html"


class StageFailed(NanotoolsError):
    """A stage notebook raised; the message names the notebook and the cell."""


@dataclass
class Report:
    """What :func:`run_report` left behind.

    Attributes
    ----------
    out_dir
        The report folder.
    html_path, result_path
        ``report.html`` and ``result.h5`` in it.
    notebooks
        The executed notebooks, in order.
    parameters
        Every parameter the notebooks ran with (registry names), and ``seed``.
    stage_times_s
        Wall time of each notebook (s), by notebook name.
    figures
        The ``fig:`` names found in the notebooks' outputs, in order.
    """

    out_dir: Path
    html_path: Path
    result_path: Path
    notebooks: list
    parameters: dict
    stage_times_s: dict = field(default_factory=dict)
    figures: list = field(default_factory=list)


# --------------------------------------------------------------- locations
def notebook_dir() -> Path:
    """The folder of the stage notebooks shipped with the package.

    The repository's ``notebooks/`` folder is installed as the package data
    of ``nanotools.notebooks`` (a ``package-dir`` mapping in
    ``pyproject.toml``), so an editable install and a wheel find it alike.

    Returns
    -------
    Path
        The folder.
    """
    shipped = Path(str(resources.files("nanotools.notebooks")))
    if shipped.is_dir() and any(shipped.glob("[0-9][0-9]_*.ipynb")):
        return shipped
    raise NanotoolsError(f"the stage notebooks are not installed (looked in {shipped})")


def stage_notebooks(folder: str | os.PathLike | None = None) -> list[Path]:
    """The numbered stage notebooks (``NN_name.ipynb``) of a folder, in order.

    Parameters
    ----------
    folder
        Where to look; the shipped notebooks (:func:`notebook_dir`) if None.

    Returns
    -------
    list of Path
        The notebooks, in stage order.
    """
    folder = notebook_dir() if folder is None else Path(folder)
    books = sorted(folder.glob("[0-9][0-9]_*.ipynb"))
    if not books:
        raise NanotoolsError(f"no stage notebooks (NN_name.ipynb) in {folder}")
    return books


def example_path() -> Path:
    """The small simulated map shipped with the package.

    Returns
    -------
    Path
        ``nanotools/data/example.h5`` (NeXus/HDF5).
    """
    path = Path(str(resources.files("nanotools"))) / "data" / "example.h5"
    if not path.is_file():
        raise InputError("the bundled example map is missing from the installation", path)
    return path


def declared_parameters(notebook: str | os.PathLike) -> dict[str, Any]:
    """Read the ``parameters`` cell of a notebook.

    Parameters
    ----------
    notebook
        The notebook file.

    Returns
    -------
    dict
        Name -> default value (a literal; the source text where it is none).
    """
    import papermill

    found = papermill.inspect_notebook(str(notebook))
    out = {}
    for name, info in found.items():
        try:
            out[name] = json.loads(info["default"]) if info["default"] else None
        except (TypeError, ValueError):
            import ast
            try:
                out[name] = ast.literal_eval(info["default"])
            except (ValueError, SyntaxError):
                out[name] = info["default"]
    return out


# --------------------------------------------------------------- provenance
def record_parameters(work_dir: str | os.PathLike, stage: str, values: dict[str, Any]) -> Path:
    """Write the parameters a stage notebook runs with to
    ``work_dir/<stage>.parameters.json`` (with the time it started), for
    :func:`load_parameters` and the provenance of ``result.h5``.

    Parameters
    ----------
    work_dir
        The folder of the stage files.
    stage
        Name of the stage (``"map"``, ``"preprocess"``, ``"phasing"``...).
    values
        Parameter name -> value (plain JSON-able values).

    Returns
    -------
    Path
        The record written.
    """
    folder = Path(work_dir)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{stage}.parameters.json"
    record = {"stage": stage, "started": time.time(), "parameters": dict(values)}
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(record, indent=1, sort_keys=True, default=str))
    os.replace(tmp, path)
    return path


def _records(work_dir: str | os.PathLike) -> list[dict]:
    records = [json.loads(path.read_text()) for path in Path(work_dir).glob("*.parameters.json")]
    return sorted(records, key=lambda r: r["started"])


def load_parameters(work_dir: str | os.PathLike) -> dict[str, Any]:
    """The registry parameters recorded by the stage notebooks of a run.

    Parameters
    ----------
    work_dir
        The folder of the stage files (:func:`record_parameters`).

    Returns
    -------
    dict
        The records merged in the order the stages started; names outside
        :data:`nanotools.params.PARAMETERS` (paths, notebook-only settings)
        are left out.
    """
    merged: dict[str, Any] = {}
    for record in _records(work_dir):
        merged.update({k: v for k, v in record["parameters"].items() if k in PARAMETERS})
    return merged


def started_at(work_dir: str | os.PathLike) -> float:
    """When the first stage of a run started: the start of its wall time.

    Parameters
    ----------
    work_dir
        The folder of the stage files.

    Returns
    -------
    float
        Seconds since the epoch; now if no stage recorded a start.
    """
    records = _records(work_dir)
    return float(records[0]["started"]) if records else time.time()


# --------------------------------------------------------------- checks
def _check_params(params: dict[str, Any] | None, *, simulate: bool) -> dict[str, Any]:
    """Typed, range-checked parameters; ParameterError names the bad one."""
    checked = {}
    for name, value in (params or {}).items():
        checked[name] = parse_value(name, value)
    if not simulate:
        sim = sorted(n for n in checked if PARAMETERS[n].stage == "simulate")
        if sim:
            raise ParameterError(f"parameter '{sim[0]}' describes a simulated map; it applies "
                                 "only when INPUT is left out")
    return checked


def _check_input(input_path: str | os.PathLike, params: dict[str, Any]) -> Path:
    """Read the map once so a bad file fails before anything runs."""
    from . import io

    path = Path(input_path).expanduser()
    if not path.exists():
        raise InputError("input file not found", path)
    if not path.is_file():
        raise InputError("input is not a file", path)
    kwargs = {}
    if params.get("unit_cell"):
        kwargs["unit_cell"] = params["unit_cell"]
    if params.get("hkl"):  # a volume: check the window the first notebook will cut
        kwargs.update(hkl=params["hkl"], window_rlu=params.get("window_rlu", 0.0),
                      reduce=params.get("reduce", "auto"))
    try:
        io.read_map(path, **kwargs)
    except TypeError:  # a reader without that keyword: check the file alone
        io.read_map(path)
    return path.resolve()


def _check_out_dir(out_dir: Path, force: bool) -> None:
    if out_dir.exists() and not out_dir.is_dir():
        raise InputError("--out must be a folder, and a file of that name exists", out_dir)
    if out_dir.is_dir() and any(out_dir.iterdir()) and not force:
        raise NanotoolsError("the output folder exists and is not empty; pass --force to "
                             "replace it", out_dir)
    parent = out_dir.parent
    if not parent.is_dir():
        raise InputError("the output folder's parent does not exist", parent)
    if not os.access(parent, os.W_OK):
        raise InputError("cannot write in the output folder's parent", parent)


# --------------------------------------------------------------- running
def _cell_label(exc: Any, notebook: Any) -> str:
    """'cell 7 (`phased = phasing.phase_retrieval(...`)' for an execution error."""
    source = (getattr(exc, "source", "") or "").strip().splitlines()
    first = source[0] if source else ""
    if len(first) > 60:
        first = first[:57] + "..."
    index = getattr(exc, "cell_index", None)
    code_number = None
    if notebook is not None:
        # count code cells as a person sees them in the stored notebook, without
        # papermill's injected one, up to the cell that holds the error
        number = 0
        for cell in notebook.cells:
            if cell.cell_type != "code" or "injected-parameters" in cell.metadata.get("tags", []):
                continue
            number += 1
            if any(o.get("output_type") == "error" for o in cell.get("outputs", [])):
                code_number = number
                break
    where = f"cell {code_number}" if code_number else f"cell index {index}"
    return f"{where} (`{first}`)" if first else where


def _quiet_kernel_manager(log_path: Path) -> type:
    """A kernel manager whose kernel writes its own stderr (start-up and
    shutdown chatter) to ``log_path`` instead of the terminal; what the
    notebook prints still lands in the executed notebook."""
    from jupyter_client.manager import AsyncKernelManager

    class QuietKernelManager(AsyncKernelManager):
        async def _async_launch_kernel(self, kernel_cmd: list, **kw: Any) -> None:
            log_path.parent.mkdir(parents=True, exist_ok=True)
            kw["stderr"] = open(log_path, "ab")  # noqa: SIM115 - the kernel owns it
            return await super()._async_launch_kernel(kernel_cmd, **kw)

    return QuietKernelManager


def _execute(notebook: Path, output: Path, parameters: dict[str, Any], cwd: Path,
             timeout_s: float | None) -> None:
    import logging

    import nbformat
    import papermill
    from papermill.exceptions import PapermillExecutionError

    # papermill warns about comments it cannot parse and about missing
    # parameters; the run's own progress lines are what a person reads
    logging.getLogger("papermill").setLevel(logging.ERROR)
    try:
        papermill.execute_notebook(str(notebook), str(output), parameters=parameters,
                                   cwd=str(cwd), kernel_name="python3", progress_bar=False,
                                   log_output=False, request_save_on_cell_execute=False,
                                   execution_timeout=timeout_s,
                                   kernel_manager_class=_quiet_kernel_manager(
                                       cwd / _STAGE_DIR / "kernel.log"))
    except PapermillExecutionError as exc:
        try:
            executed = nbformat.read(str(output), as_version=4)
        except Exception:  # noqa: BLE001 - the failure itself is what to report
            executed = None
        raise StageFailed(f"stage {notebook.name} failed at {_cell_label(exc, executed)}: "
                          f"{exc.ename}: {exc.evalue}; the executed notebook is {output}"
                          ) from None


def _default_progress(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def run_report(*, input_path: str | os.PathLike | None = None, out_dir: str | os.PathLike,
               params: dict[str, Any] | None = None, seed: int | None = None,
               force: bool = False, progress: Callable[[str], None] | None = _default_progress,
               notebooks: str | os.PathLike | None = None,
               timeout_s: float | None = None) -> Report:
    """Run the stage notebooks headless and leave a report in ``out_dir``.

    Parameters
    ----------
    input_path
        The map (NeXus/HDF5, see docs/CONTRACT.md). If None: the bundled example
        map, or, if ``params`` sets any simulation parameter (``texture``,
        ``sim_*``), a map simulated with them by the first notebook.
    out_dir
        The report folder; created. An existing non-empty folder is replaced
        only with ``force``.
    params
        Registry parameters (``nanotools.params.PARAMETERS``) to override,
        name -> value (strings from the command line are converted). Each is
        passed to the notebooks that declare it; the rest keep the
        registry's defaults, which are those of a real run (the notebooks'
        own defaults are sized for CI).
    seed
        Random seed of the phasing and of k-means (0 if None).
    force
        Replace an existing report folder.
    progress
        Called with one line per stage; None for silence.
    notebooks
        Folder of the stage notebooks (default: :func:`notebook_dir`).
    timeout_s
        Longest time a single cell may run (s); None for no limit.

    Returns
    -------
    Report
        The folder, its files, the parameters and the stage times.

    Raises
    ------
    ParameterError
        An unknown parameter, or a value of the wrong type or range.
    InputError
        The input cannot be read as a map, or ``out_dir`` cannot be written.
    NanotoolsError
        ``out_dir`` exists and ``force`` is not set.
    StageFailed
        A notebook raised: the message names the notebook and the cell; the
        partial run is kept in a scratch folder named in the message and
        ``out_dir`` is left as it was.
    """
    say = progress or (lambda line: None)
    t0 = time.perf_counter()
    simulate = input_path is None and any(
        PARAMETERS[n].stage == "simulate" for n in (params or {}) if n in PARAMETERS)
    overrides = _check_params(params, simulate=input_path is None)
    if seed is None:
        seed = 0
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ParameterError(f"seed must be a non-negative integer, got {seed!r}")
    out_dir = Path(out_dir).expanduser().absolute()
    _check_out_dir(out_dir, force)
    if input_path is None:
        source = None if simulate else example_path()
    else:
        source = _check_input(input_path, overrides)
    books = stage_notebooks(notebooks)
    full = {name: p.default for name, p in PARAMETERS.items()}
    full.update(overrides)
    declared = {book.name: declared_parameters(book) for book in books}
    used = set().union(*(d.keys() for d in declared.values()))
    unused = sorted(set(overrides) - used)
    if unused:
        raise ParameterError(f"parameter '{unused[0]}' is not used by any stage notebook "
                             f"(in {books[0].parent})")

    runner = {"input_path": "" if source is None else str(source), "work_dir": _STAGE_DIR,
              "result_path": _RESULT, "seed": int(seed), "interactive": False}
    scratch = Path(tempfile.mkdtemp(prefix=f"nanotools-{out_dir.name}-"))
    (scratch / _STAGE_DIR).mkdir()
    say(f"nanotools run: {len(books)} stages on "
        f"{'a simulated map' if source is None else source.name} -> {out_dir}")
    times = {}
    executed = []
    for i, book in enumerate(books, 1):
        names = declared[book.name]
        injected = {k: v for k, v in {**full, **runner}.items() if k in names}
        out_book = scratch / book.name
        t_stage = time.perf_counter()
        say(f"[{i}/{len(books)}] {book.stem} ...")
        _execute(book, out_book, injected, scratch, timeout_s)
        times[book.name] = time.perf_counter() - t_stage
        executed.append(out_book)
        say(f"[{i}/{len(books)}] {book.stem} done ({times[book.name]:.1f} s)")

    result = scratch / _RESULT
    if not result.is_file():
        raise StageFailed(f"the stage notebooks wrote no {_RESULT} (in {scratch}); the last "
                          f"notebook must write it to `result_path`")
    page, figures = build_html(executed, result_path=result, stage_times_s=times,
                               input_path=runner["input_path"] or "simulated map")
    missing = [name for name in REQUIRED_FIGURES if name not in figures]
    if missing:
        raise StageFailed(f"the notebooks drew no '{missing[0]}' figure "
                          f"({REQUIRED_FIGURES[missing[0]]}); partial run kept in {scratch}")
    (scratch / _REPORT).write_text(page, encoding="utf-8")
    _move_into_place(scratch, out_dir)
    say(f"report: {out_dir / _REPORT} ({time.perf_counter() - t0:.1f} s in all)")
    return Report(out_dir=out_dir, html_path=out_dir / _REPORT, result_path=out_dir / _RESULT,
                  notebooks=[out_dir / b.name for b in executed],
                  parameters={**full, "seed": int(seed)}, stage_times_s=times, figures=figures)


def _move_into_place(scratch: Path, out_dir: Path) -> None:
    """Put the finished report where it belongs in as few steps as possible:
    copy next to ``out_dir`` (same file system), then rename; an old folder
    is renamed away first and removed last."""
    staging = out_dir.parent / f".{out_dir.name}.partial-{os.getpid()}"
    if staging.exists():
        shutil.rmtree(staging)
    shutil.move(str(scratch), str(staging))
    old = None
    if out_dir.exists():
        old = out_dir.parent / f".{out_dir.name}.old-{os.getpid()}"
        os.replace(out_dir, old)
    os.replace(staging, out_dir)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


# --------------------------------------------------------------- HTML


def _tags(cell: Any) -> list[str]:
    return list(cell.get("metadata", {}).get("tags", []))


def _provenance(result_path: Path) -> tuple[dict, dict]:
    """(provenance, parameters) of a result file: the short values of
    ``/entry/process`` (read by :func:`nanotools.io.read_result`)."""
    import numpy as np

    from .io import read_result

    try:
        process = dict(read_result(result_path)["process"])
    except InputError as exc:  # the page says so; the run's own checks decide
        return {"error": str(exc)}, {}
    parameters = process.pop("parameters", {})
    provenance = {}
    for key in sorted(process):
        value = process[key]
        if isinstance(value, np.ndarray) and (value.ndim > 1 or value.size > 64):
            continue  # arrays are for programs, not for the page
        provenance[key] = value
    return provenance, parameters


def build_html(notebooks: list, *, result_path: str | os.PathLike,
               stage_times_s: dict | None = None, input_path: str = "",
               title: str = "nanotools report") -> tuple[str, list[str]]:
    """One self-contained HTML page from executed stage notebooks.

    For each notebook: its title and opening paragraph, every figure drawn by
    a cell tagged ``fig:NAME`` (PNG, embedded as base64, captioned by the
    Markdown cell just before it) and the text printed by cells tagged
    ``summary``. Then the parameters and the provenance read from
    ``/entry/process`` of ``result_path``. The page is rendered by
    :func:`nanotools.page.render` (nbconvert's HTML exporter).

    Parameters
    ----------
    notebooks
        The executed stage notebooks, in order.
    result_path
        The run's ``result.h5``.
    stage_times_s
        Notebook file name -> its run time (s).
    input_path
        The input map, as the page names it.
    title
        Page title.

    Returns
    -------
    (page, figures)
        The HTML text and the figure names found, in order.
    """
    import nbformat

    import nanotools

    from . import page

    stage_times_s = stage_times_s or {}
    sections, figures = [], []
    for path in notebooks:
        path = Path(path)
        nb = nbformat.read(str(path), as_version=4)
        cells = []
        caption = ""
        intro_done = False
        for cell in nb.cells:
            if cell.cell_type == "markdown":
                if not intro_done:
                    cells.append(page.markdown(cell.source))
                    intro_done = True
                else:
                    caption = cell.source
                continue
            if cell.cell_type != "code":
                continue
            tags = _tags(cell)
            names = [t.split(":", 1)[1] for t in tags if t.startswith("fig:")]
            if names:
                pngs = [o["data"]["image/png"] for o in cell.get("outputs", [])
                        if o.get("output_type") in ("display_data", "execute_result")
                        and "image/png" in o.get("data", {})]
                for j, png in enumerate(pngs):
                    name = names[min(j, len(names) - 1)]
                    figures.append(name)
                    data = png if isinstance(png, str) else base64.b64encode(png).decode()
                    cells.append(page.figure(name, data.strip(), caption=caption))
                caption = ""
            if "summary" in tags:
                text = "".join(o.get("text", "") for o in cell.get("outputs", [])
                               if o.get("output_type") == "stream")
                if text:
                    cells.append(page.text(text, cls="summary"))
        if path.name in stage_times_s:
            cells.append(page.note(f"stage time: {stage_times_s[path.name]:.1f} s",
                                   cls="timing"))
        sections.extend(page.section(f"stage-{path.stem}", cells, cls="stage"))

    provenance, parameters = _provenance(Path(result_path))
    missing = [n for n in REQUIRED_FIGURES if n not in figures]
    run_info = {"input": input_path, "nanotools": nanotools.__version__,
                "python": sys.version.split()[0],
                "stage times (s)": ", ".join(f"{k}: {v:.1f}" for k, v in stage_times_s.items())}
    cells = [page.markdown(
        "Real-space image of a periodic thin-film nanotexture from an X-ray reciprocal-space "
        "map: phase retrieval from many random starts, supercells located with a sinusoidal "
        "test function, clustered with k-means and averaged.")]
    if missing:
        cells.append(page.note(f"missing figures: {', '.join(missing)}", cls="missing"))
    cells += [page.table(run_info, cls="run"), *sections,
              *page.section("parameters", [page.table(parameters, cls="parameters")],
                            heading="Parameters"),
              *page.section("provenance", [page.table(provenance, cls="provenance")],
                            heading="Provenance")]
    return page.render(title, cells), figures

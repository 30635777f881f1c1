"""A series of maps (temperature, pump-probe delay ...) imaged in parallel on Dask.

``nanotools series INPUT... --out DIR`` runs :func:`run_series`: every map
goes through the same pipeline as ``nanotools reconstruct`` (or, with the
notebook layer installed, the papermill report of ``nanotools run``), one
Dask task per map, on a ``LocalCluster`` by default or on an existing
scheduler. Then the series gets its own report: ``DIR/series.h5`` and
``DIR/series.html`` with the period, the cluster populations and the
displacement amplitude against the series variable, which is read from each
file's metadata (``temperature_K``, a delay ...) or, failing that, is the
order of the files on the command line. One file holding the whole series
(a 4-D NXdata whose first axis is the scan variable, as nxrefine
consolidates temperature scans) is cut into one window per scan first
(``--hkl``; ``DIR/windows/``), the scan variable read from the file.

Layout of ``DIR``::

    DIR/<map name>/result.h5      one reconstruction per map (+ report.html)
    DIR/series.h5                 the series table (NeXus NXdata)
    DIR/series.html               one page with the figure and the table
"""
from __future__ import annotations

import base64
import io as _io
import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .errors import InputError, NanotoolsError, ParameterError

__all__ = ["SeriesEntry", "SeriesResult", "SERIES_VARIABLES", "series_variable",
           "summarise_result", "run_series", "write_series"]

# metadata keys that can order a series, in order of preference, with units
SERIES_VARIABLES = (("temperature_K", "K"), ("delay_ps", "ps"), ("delay_fs", "fs"),
                    ("delay_ns", "ns"), ("delay_s", "s"), ("field_T", "T"),
                    ("pressure_GPa", "GPa"))


@dataclass
class SeriesEntry:
    """One map of the series and what its reconstruction found.

    Attributes
    ----------
    input_path, result_path
        The map and its ``result.h5``.
    variable
        The series variable's value for this map (NaN if unknown).
    period_nm
        The texture period used for the supercell (nm).
    populations
        Member count of every cluster, by cluster label.
    chosen
        The chosen cluster's label.
    displacement_amplitude_A
        Half the peak-to-peak displacement of the chosen supercell (angstrom).
    fourier_error
        Median Fourier error of the starts.
    wall_time_s
        Time of the map's task (s).
    """

    input_path: str
    result_path: str
    variable: float
    period_nm: float
    populations: list
    chosen: int
    displacement_amplitude_A: float
    fourier_error: float
    wall_time_s: float = 0.0


@dataclass
class SeriesResult:
    """The whole series, in the order of the series variable."""

    entries: list
    variable_name: str
    variable_unit: str
    out_dir: str
    wall_time_s: float
    scheduler: str
    notes: list = field(default_factory=list)


def series_variable(metadata: dict) -> tuple[str, str, float] | None:
    """The series variable of a map.

    Parameters
    ----------
    metadata
        The map's metadata (``ReciprocalSpaceMap.metadata``).

    Returns
    -------
    tuple or None
        ``(name, unit, value)`` of the first known variable
        (:data:`SERIES_VARIABLES`) with a finite value, or None.
    """
    for name, unit in SERIES_VARIABLES:
        value = metadata.get(name) if metadata else None
        if value is not None:
            try:
                value = float(value)
            except (TypeError, ValueError):
                continue
            if np.isfinite(value):
                return name, unit, value
    return None


def summarise_result(result_path: str | os.PathLike) -> dict:
    """The series quantities of one reconstruction.

    Parameters
    ----------
    result_path
        A ``result.h5`` (read by :func:`nanotools.io.read_result`).

    Returns
    -------
    dict
        ``period_nm``, ``populations`` (by cluster label), ``chosen``,
        ``displacement_amplitude_A`` (half the peak-to-peak displacement,
        angstrom), ``fourier_error`` (median over the starts).
    """
    from .io import read_result

    result = read_result(result_path)
    cell, clusters = result["supercell"], result["clusters"]
    disp = np.asarray(cell["displacement"], float)
    labels = np.asarray(clusters["label"], int)
    members = np.asarray(clusters["n_members"], int)
    order = np.argsort(labels)
    errors = np.asarray(result["runs"]["fourier_error"], float)
    return dict(period_nm=float(cell["period_nm"]),
                populations=[int(m) for m in members[order]],
                chosen=int(clusters["chosen"]),
                displacement_amplitude_A=float((np.nanmax(disp) - np.nanmin(disp)) / 2),
                fourier_error=float(np.median(errors)))


def _map_dir_names(paths: list[Path]) -> list[str]:
    """One folder name per map: the file's stem, numbered where stems repeat."""
    stems = [p.stem for p in paths]
    return [s if stems.count(s) == 1 else f"{i:03d}_{s}" for i, s in enumerate(stems)]


def _image_one(input_path: str, map_dir: str, params: dict, seed: int, force: bool,
               report: bool, fft_workers: int) -> dict:
    """One map, on a worker: the pipeline (or the papermill report), then its
    summary and series variable. Runs in a worker process, so it sets the
    engine's FFT threads for that process."""
    os.environ["NANOTOOLS_FFT_WORKERS"] = str(fft_workers)
    t0 = time.perf_counter()
    map_dir = Path(map_dir)
    result = map_dir / "result.h5"
    if report:
        from .report import run_report
        run_report(input_path=input_path, out_dir=map_dir, params=params, seed=seed,
                   force=force, progress=None)
    else:
        from .pipeline import reconstruct_file
        map_dir.mkdir(parents=True, exist_ok=True)
        reconstruct_file(input_path, result, params, seed=seed, force=force, progress=False)
    summary = summarise_result(result)
    var = _variable_of(input_path, params)
    summary.update(input_path=str(input_path), result_path=str(result),
                   variable=None if var is None else list(var),
                   wall_time_s=time.perf_counter() - t0)
    return summary


def _variable_of(input_path: str, params: dict) -> tuple[str, str, float] | None:
    """The series variable of one map, read as the pipeline reads the map
    (with ``-p unit_cell`` for r.l.u. axes)."""
    from .io import read_map

    window = {k: params[k] for k in ("window_rlu", "reduce") if k in params}
    return series_variable(read_map(input_path, unit_cell=params.get("unit_cell") or None,
                                    hkl=params.get("hkl") or None, **window).metadata)


def _expand_series_file(path: Path, out_dir: Path, params: dict):
    """A file holding a series (a 4-D NXdata of virtual datasets, as
    nxrefine consolidates scans; a silx image stack): cut each map's window
    (``--hkl``; only the window is read) into ``out_dir/windows/`` and
    return those files and the parameters for them (the window already
    cut); None for a file holding one map."""
    import h5py

    from .io import read_map, write_map
    from .io.nxrefine import describe_volume

    try:
        if not h5py.is_hdf5(path):
            return None
    except OSError:
        return None
    volume = describe_volume(path)
    if volume.scan_axis is None:
        return None
    window = {k: params[k] for k in ("window_rlu", "reduce") if k in params}
    hkl = params.get("hkl") or None
    folder = out_dir / "windows"
    folder.mkdir(parents=True, exist_ok=True)
    axis = volume.scan_axis
    files = []
    for scan in range(volume.n_scans):
        rsm = read_map(path, hkl=hkl, scan=scan, **window)
        value = float(np.ravel(axis.values)[scan])
        name = f"{path.stem}_{axis.name}{value:g}{axis.units or ''}".replace("/", "_")
        files.append(write_map(folder / f"{name}.h5", rsm))
    rest = {k: v for k, v in params.items() if k not in ("hkl", "window_rlu", "reduce")}
    return files, rest


def _report_available() -> bool:
    try:
        import papermill  # noqa: F401

        from . import report  # noqa: F401
    except ImportError:
        return False
    return True


def run_series(input_path: list | None = None, out_dir: str | os.PathLike | None = None, *,
               params: dict | None = None, seed: int = 0, force: bool = False,
               scheduler: str | None = None, n_workers: int | None = None,
               threads_per_worker: int = 1, report: bool | None = None,
               input_paths: list | None = None, timeout_s: float | None = None
               ) -> SeriesResult:
    """Image every map of a series in parallel and write the series report.

    Parameters
    ----------
    input_path
        The map files, in series order.
    out_dir
        The output folder (created); one sub-folder per map.
    params
        Parameters for every map (name -> value), see ``nanotools.params``.
    seed
        Seed of every map's phasing and clustering (the same for all maps).
    force
        Replace existing results; without it an existing ``series.h5`` or
        map result stops the run before any work.
    scheduler
        Address of a running Dask scheduler (``tcp://host:8786``); by default
        a ``LocalCluster`` of ``n_workers`` processes is started and closed.
    n_workers, threads_per_worker
        Size of the local cluster (default: one worker per core, one thread
        each: maps run side by side, each on one core).
    report
        Render each map's papermill report (``report.html``) instead of the
        plain pipeline; by default when the notebook layer is installed.
    input_paths
        Another name for ``input_path``.
    timeout_s
        Give up waiting for the cluster's results after this long.

    Returns
    -------
    SeriesResult
        Every map's summary, in the order of the series variable.
    """
    paths = list(input_paths if input_paths is not None else (input_path or []))
    if isinstance(input_path, (str, os.PathLike)):
        paths = [input_path]
    if not paths:
        raise ParameterError("a series needs at least one input map")
    if out_dir is None:
        raise ParameterError("a series needs an output folder (--out DIR)")
    paths = [Path(p) for p in paths]
    for p in paths:
        if not p.is_file():
            raise InputError("the input file does not exist", p)
    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise InputError("the output path exists and is not a folder", out_dir)
    if (out_dir / "series.h5").exists() and not force:
        raise InputError("the series result exists; pass --force to overwrite it",
                         out_dir / "series.h5")
    from .params import validate
    params = dict(params or {})
    validate(params)  # bad parameters fail here, not on every worker
    if report is None:
        report = _report_available()
    out_dir.mkdir(parents=True, exist_ok=True)
    expanded = _expand_series_file(paths[0], out_dir, params) if len(paths) == 1 else None
    if expanded is not None:  # one file holding the whole series
        paths, params = expanded
    names = _map_dir_names(paths)
    try:
        from dask.distributed import Client, LocalCluster
    except ImportError:
        raise NanotoolsError("nanotools series needs dask[distributed] "
                             "(pip install 'nanotools[dask]')") from None
    t0 = time.perf_counter()
    cluster = None
    if scheduler is None:
        n_workers = n_workers or min(len(paths), os.cpu_count() or 1)
        cluster = LocalCluster(n_workers=n_workers, threads_per_worker=threads_per_worker,
                               processes=True, dashboard_address=None)
        client = Client(cluster)
    else:
        client = Client(scheduler, timeout="30s")
    where = scheduler or f"LocalCluster({n_workers} x {threads_per_worker} threads)"
    try:
        futures = [client.submit(_image_one, str(p), str(out_dir / name), params, seed, force,
                                 report, threads_per_worker, pure=False,
                                 key=f"nanotools-series-{i}-{name}-{time.time_ns()}")
                   for i, (p, name) in enumerate(zip(paths, names))]
        summaries = client.gather(futures) if timeout_s is None else \
            [f.result(timeout=timeout_s) for f in futures]
    finally:
        client.close()
        if cluster is not None:
            cluster.close()
    result = _assemble(summaries, out_dir, time.perf_counter() - t0, where)
    write_series(result, force=True)
    return result


def _assemble(summaries: list[dict], out_dir: Path, wall: float, where: str) -> SeriesResult:
    """Order the maps by the series variable when every map has the same one;
    else keep the file order and say so."""
    found = [s["variable"] for s in summaries]
    notes = []
    if all(v is not None for v in found) and len({v[0] for v in found}) == 1:
        name, unit = found[0][0], found[0][1]
        values = [float(v[2]) for v in found]
        notes.append(f"series variable '{name}' read from each file's metadata")
    else:
        name, unit = "file_order", ""
        values = [float(i) for i in range(len(summaries))]
        notes.append("no common series variable in the files' metadata "
                     f"(looked for {', '.join(n for n, _ in SERIES_VARIABLES)}): file order used")
    entries = [SeriesEntry(input_path=s["input_path"], result_path=s["result_path"],
                           variable=v, period_nm=s["period_nm"], populations=s["populations"],
                           chosen=s["chosen"],
                           displacement_amplitude_A=s["displacement_amplitude_A"],
                           fourier_error=s["fourier_error"], wall_time_s=s["wall_time_s"])
               for s, v in zip(summaries, values)]
    entries.sort(key=lambda e: e.variable)
    return SeriesResult(entries=entries, variable_name=name, variable_unit=unit,
                        out_dir=str(out_dir), wall_time_s=wall, scheduler=where, notes=notes)


def _populations_table(entries) -> np.ndarray:
    """``(n_maps, n_clusters)`` member counts, 0-padded."""
    width = max((len(e.populations) for e in entries), default=0)
    table = np.zeros((len(entries), width), np.int64)
    for i, e in enumerate(entries):
        table[i, :len(e.populations)] = e.populations
    return table


def write_series(result: SeriesResult, *, force: bool = False) -> tuple[Path, Path]:
    """Write ``series.h5`` (NeXus) and ``series.html`` into ``result.out_dir``.

    Each file is written atomically (temporary name, then rename).

    Parameters
    ----------
    result
        The series.
    force
        Replace an existing ``series.h5``.

    Returns
    -------
    tuple of Path
        ``series.h5`` and ``series.html``.
    """
    import h5py

    from .io.hdf5 import atomic_h5, nx_entry
    out_dir = Path(result.out_dir)
    h5_path, html_path = out_dir / "series.h5", out_dir / "series.html"
    if h5_path.exists() and not force:
        raise InputError("the series result exists; pass --force to overwrite it", h5_path)
    e = result.entries
    var = np.array([x.variable for x in e], float)

    def _writer(h5):
        """Fill the new file (called by ``atomic_h5``)."""
        entry = nx_entry(h5, default="series")
        g = entry.create_group("series")
        g.attrs["NX_class"] = "NXdata"
        g.attrs["signal"] = "period_nm"
        g.attrs["auxiliary_signals"] = ["displacement_amplitude", "fourier_error"]
        g.attrs["axes"] = [result.variable_name]
        d = g.create_dataset(result.variable_name, data=var)
        if result.variable_unit:
            d.attrs["units"] = result.variable_unit
        g.create_dataset("period_nm", data=np.array([x.period_nm for x in e])).attrs["units"] = "nm"
        g.create_dataset("displacement_amplitude",
                         data=np.array([x.displacement_amplitude_A for x in e])
                         ).attrs["units"] = "angstrom"
        g.create_dataset("fourier_error", data=np.array([x.fourier_error for x in e]))
        g.create_dataset("cluster_populations", data=_populations_table(e))
        g.create_dataset("chosen_cluster", data=np.array([x.chosen for x in e], np.int64))
        g.create_dataset("wall_time_s", data=np.array([x.wall_time_s for x in e]))
        s = h5py.string_dtype()
        g.create_dataset("input_file", data=np.array([x.input_path for x in e], dtype=object),
                         dtype=s)
        g.create_dataset("result_file", data=np.array([x.result_path for x in e], dtype=object),
                         dtype=s)
        proc = entry.create_group("process")
        proc.attrs["NX_class"] = "NXprocess"
        from . import __version__
        proc.create_dataset("program", data="nanotools", dtype=s)
        proc.create_dataset("version", data=__version__, dtype=s)
        proc.create_dataset("scheduler", data=result.scheduler, dtype=s)
        proc.create_dataset("wall_time_s", data=float(result.wall_time_s))
        proc.create_dataset("notes", data=json.dumps(result.notes), dtype=s)

    atomic_h5(h5_path, _writer, force=True)  # fsynced temporary file, then rename
    tmp = html_path.with_name(f".{html_path.name}.{os.getpid()}.tmp")
    tmp.write_text(_html(result), encoding="utf-8")
    os.replace(tmp, html_path)
    return h5_path, html_path


def _figure_png(result: SeriesResult) -> str:
    """The three panels (period, populations, displacement) as base64 PNG,
    drawn on a Figure of its own (no pyplot, no backend switch)."""
    from matplotlib.figure import Figure

    e = result.entries
    x = [v.variable for v in e]
    label = result.variable_name + (f" ({result.variable_unit})" if result.variable_unit else "")
    fig = Figure(figsize=(6, 7))
    axes = fig.subplots(3, 1, sharex=True)
    axes[0].plot(x, [v.period_nm for v in e], "o-")
    axes[0].set_ylabel("period (nm)")
    pops = _populations_table(e)
    for c in range(pops.shape[1]):
        axes[1].plot(x, pops[:, c], "o-", label=f"cluster {c}")
    axes[1].set_ylabel("cluster members")
    if pops.shape[1]:
        axes[1].legend(fontsize="small")
    axes[2].plot(x, [v.displacement_amplitude_A for v in e], "o-")
    axes[2].set_ylabel("displacement amplitude (Å)")
    axes[2].set_xlabel(label)
    fig.tight_layout()
    buf = _io.BytesIO()
    fig.savefig(buf, format="png", dpi=90)
    return base64.b64encode(buf.getvalue()).decode()


def _html(result: SeriesResult) -> str:
    """``series.html``, rendered by :func:`nanotools.page.render`."""
    from . import page

    e = result.entries
    unit = f" ({result.variable_unit})" if result.variable_unit else ""
    rows = [[f"{v.variable:g}", f"{v.period_nm:.3f}",
             f"{' / '.join(str(p) for p in v.populations)} (chosen {v.chosen})",
             f"{v.displacement_amplitude_A:.4f}", f"{v.fourier_error:.4f}",
             {"href": os.path.relpath(v.result_path, result.out_dir),
              "text": Path(v.input_path).name}] for v in e]
    cells = [page.markdown(f"Each map imaged by the same pipeline ({result.scheduler}, "
                           f"{result.wall_time_s:.1f} s in all)."),
             page.bullets(result.notes),
             page.figure("series", _figure_png(result),
                         alt=f"period, cluster populations and displacement against "
                             f"{result.variable_name}"),
             page.table(rows, cls="series",
                        header=[result.variable_name + unit, "period (nm)",
                                "cluster populations", "displacement amplitude (Å)",
                                "Fourier error", "map"])]
    return page.render(f"Series of {len(e)} maps", cells)

"""The result file (``result.h5``): :class:`Reconstruction`, written by
:func:`write_result` and read by :func:`read_result`.
"""
from __future__ import annotations

import datetime as _dt
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .hdf5 import atomic_h5, nx_data_group, nx_entry
from .hdf5 import decode_attr as _decode
from .hdf5 import write_dataset as _ds

__all__ = ["Reconstruction", "write_result", "read_result", "sha256_file"]


@dataclass
class Reconstruction:
    """Everything one reconstruction produced, as written to ``result.h5``.

    Attributes
    ----------
    supercell
        :class:`nanotools.analysis.SupercellMaps` of the chosen cluster's
        average: ``amplitude``, ``phase`` (rad), ``displacement`` (angstrom),
        strain maps, ``x_nm``, ``z_nm``; arrays ``(n_cell, n_film)``.
    patterns
        :class:`nanotools.patterns.PatternResult` (clusters, chosen, period).
    phasing
        :class:`nanotools.phasing.PhasingResult` of every start.
    parameters
        The full, validated parameter set (``nanotools.params.validate``).
    seed
        The random seed of the phasing and of k-means.
    input_path, input_sha256
        The input map and its SHA-256 (hex).
    wall_time_s, phasing_time_s
        Time of the whole run, and of the phasing iterations alone (s).
    resolution
        From :func:`nanotools.analysis.prtf` (``nm``, ``x_nm``, ``z_nm``).
    notes
        What the pipeline decided (out-of-plane axis, preprocessing notes).
    date, version
        ISO 8601 date of the run and the nanotools version.
    trust
        :class:`nanotools.trust.TrustEstimate` (half maps, misfit, verdict),
        or None.
    """

    supercell: Any
    patterns: Any
    phasing: Any
    parameters: dict
    seed: int
    input_path: str = ""
    input_sha256: str = ""
    wall_time_s: float = 0.0
    phasing_time_s: float = 0.0
    resolution: dict = field(default_factory=dict)
    notes: list = field(default_factory=list)
    date: str = ""
    version: str = ""
    trust: Any = None


def sha256_file(path: str | os.PathLike) -> str:
    """SHA-256 (hex) of a file (:func:`hashlib.file_digest`, which reads it
    in blocks, so big maps need no memory)."""
    import hashlib

    from ..errors import InputError

    try:
        with open(path, "rb") as fh:
            return hashlib.file_digest(fh, "sha256").hexdigest()
    except FileNotFoundError:
        raise InputError("file not found", path) from None
    except IsADirectoryError:
        raise InputError("is a directory, not a file", path) from None
    except OSError as exc:
        raise InputError(f"cannot read the file ({exc.strerror or exc})", path) from None


def write_result(path: str | os.PathLike, reconstruction: Reconstruction, *,
                 force: bool = False) -> Path:
    """Write ``result.h5`` (layout of docs/CONTRACT.md) atomically.

    Layout (all NeXus):

    ``/entry/supercell`` (NXdata, ``signal="amplitude"``, ``axes=["x", "z"]``)
        ``amplitude``, ``phase`` (rad), ``displacement`` (angstrom),
        ``strain_zz``, ``strain_xz``, ``complex_field`` (the chosen complex
        average), ``x``, ``z`` (nm); attributes ``period_nm``, ``G``
        (1/angstrom), and ``estimated_error`` (float), ``reliable`` (bool),
        ``reliable_reason`` (str) when a trust estimate was made.
    ``/entry/trust`` (NXcollection, with a trust estimate)
        ``half_supercells`` ``(2, n_cell, n_film)`` complex (the even and
        the odd starts' chosen averages, the odd one aligned on the even),
        ``spread`` (``|even - odd| / 2`` per pixel, relative to the mean film
        amplitude); attributes ``estimated_error``, ``reliable``,
        ``reliable_reason``, ``half_difference``, ``member_spread``,
        ``fourier_error``, ``noise_floor``, ``misfit_ratio``,
        ``excess_misfit``, ``prior_difference`` (NaN when not checked),
        ``half_cells`` and ``notes``.
    ``/entry/clusters``
        ``chosen``, ``chosen_reason`` (attributes), per-cell ``labels`` and
        ``run_index``, per-cluster ``label``, ``n_members``, ``score``, and
        one NXdata ``cluster_<label>`` with the average and its spread.
    ``/entry/runs``
        The best ``keep_runs`` objects (``objects``, ``supports``,
        ``kept_start_indices``) and every start's ``start_indices``,
        ``fourier_error``, ``llk`` and ``history``.
    ``/entry/process`` (NXprocess)
        ``program``, ``version``, ``date``, ``parameters`` (JSON), ``seed``,
        ``n_starts``, ``n_iterations``, ``algorithm``, ``wall_time_s``,
        ``phasing_time_s``, ``input_file``, ``input_sha256``, ``notes``,
        ``resolution_nm``.

    Parameters
    ----------
    path
        The result file.
    reconstruction
        What to write.
    force
        Replace an existing file; without it an existing result is never
        touched (:class:`InputError`).

    Returns
    -------
    Path
    """
    import json

    import h5py

    from .. import __version__
    from ..errors import InputError

    path = Path(path)
    if path.is_dir():
        raise InputError("the output path is a directory; give a file name (result.h5)", path)
    if path.exists() and not force:
        raise InputError("the output file exists; pass --force to overwrite it", path)
    rec = reconstruction
    maps, pat, ph = rec.supercell, rec.patterns, rec.phasing
    params = dict(rec.parameters)
    keep = int(params.get("keep_runs", 16))

    def writer(h5):
        entry = nx_entry(h5, default="supercell")

        cell = nx_data_group(entry, "supercell", signal="amplitude", axes=["x", "z"])
        cell.attrs["period_nm"] = float(pat.period_nm)
        cell.attrs["G"] = float(pat.G)
        _ds(cell, "amplitude", np.asarray(maps.amplitude))
        _ds(cell, "phase", np.asarray(maps.phase), "rad")
        _ds(cell, "displacement", np.asarray(maps.displacement), "angstrom")
        for name in ("strain_zz", "strain_xz"):
            if getattr(maps, name, None) is not None:
                _ds(cell, name, np.asarray(getattr(maps, name)))
        _ds(cell, "complex_field", np.asarray(pat.best.mean))
        _ds(cell, "x", np.asarray(maps.x_nm, dtype=np.float64), "nm")
        _ds(cell, "z", np.asarray(maps.z_nm, dtype=np.float64), "nm")
        refined = getattr(pat, "refinement", None)
        cell.attrs["refined"] = refined is not None
        if refined is not None:
            cell.attrs["coherence"] = float(refined.coherence)
            cell.attrs["model_misfit"] = float(refined.misfit)
        tr = rec.trust
        if tr is not None:
            cell.attrs["estimated_error"] = float(tr.estimated_error)
            cell.attrs["reliable"] = bool(tr.reliable)
            cell.attrs["reliable_reason"] = str(tr.reliable_reason)
            group = entry.create_group("trust")
            group.attrs["NX_class"] = "NXcollection"
            for name in ("estimated_error", "half_difference", "member_spread", "fourier_error",
                         "noise_floor", "misfit_ratio", "excess_misfit", "prior_difference",
                         "prior_free_misfit"):
                group.attrs[name] = float(getattr(tr, name))
            group.attrs["reliable"] = bool(tr.reliable)
            group.attrs["reliable_reason"] = str(tr.reliable_reason)
            group.attrs["half_cells"] = np.asarray(tr.half_cells, dtype=np.int64)
            group.attrs["notes"] = [str(n) for n in tr.notes] or [""]
            _ds(group, "half_supercells", np.asarray(tr.half_supercells))
            _ds(group, "spread", np.asarray(tr.spread, dtype=np.float64))

        clusters = entry.create_group("clusters")
        clusters.attrs["NX_class"] = "NXcollection"
        clusters.attrs["chosen"] = np.int64(pat.chosen)
        clusters.attrs["chosen_reason"] = str(pat.chosen_reason)
        _ds(clusters, "labels", np.asarray(pat.labels))
        _ds(clusters, "run_index", np.asarray(pat.run_index))
        _ds(clusters, "label", np.array([c.label for c in pat.clusters], dtype=np.int64))
        _ds(clusters, "n_members", np.array([c.n_members for c in pat.clusters], dtype=np.int64))
        _ds(clusters, "score", np.array([c.score for c in pat.clusters], dtype=np.float64))
        for c in pat.clusters:
            g = nx_data_group(clusters, f"cluster_{c.label}", signal="amplitude", axes=["x", "z"])
            g.attrs["label"] = np.int64(c.label)
            g.attrs["n_members"] = np.int64(c.n_members)
            g.attrs["score"] = float(c.score)
            g.attrs["chosen"] = bool(c.label == pat.chosen)
            _ds(g, "mean", np.asarray(c.mean))
            if getattr(c, "average", None) is not None:  # mean is the refined supercell
                _ds(g, "average", np.asarray(c.average))
            _ds(g, "amplitude", np.asarray(c.amplitude))
            _ds(g, "amplitude_std", np.asarray(c.amplitude_std))
            _ds(g, "displacement", np.asarray(c.displacement), "angstrom")
            _ds(g, "displacement_std", np.asarray(c.displacement_std), "angstrom")
            _ds(g, "runs", np.asarray(getattr(c, "runs", np.zeros(0, np.int64))))
            # the axes are shared with the supercell: soft links, no copies
            g["x"] = h5py.SoftLink("/entry/supercell/x")
            g["z"] = h5py.SoftLink("/entry/supercell/z")

        runs = entry.create_group("runs")
        runs.attrs["NX_class"] = "NXcollection"
        order = np.argsort(np.asarray(ph.fourier_error), kind="stable")[:keep]
        _ds(runs, "start_indices", np.asarray(ph.start_indices))
        _ds(runs, "fourier_error", np.asarray(ph.fourier_error))
        _ds(runs, "llk", np.asarray(ph.llk))
        _ds(runs, "history", np.asarray(ph.history), compression="gzip", shuffle=True)
        _ds(runs, "kept_start_indices", np.asarray(ph.start_indices)[order])
        _ds(runs, "objects", np.asarray(ph.objects)[order], compression="gzip")
        _ds(runs, "supports", np.asarray(ph.supports)[order], compression="gzip")

        proc = entry.create_group("process")
        proc.attrs["NX_class"] = "NXprocess"
        string = h5py.string_dtype()
        _ds(proc, "program", "nanotools", dtype=string)
        _ds(proc, "version", rec.version or __version__, dtype=string)
        _ds(proc, "date", rec.date or _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
            dtype=string)
        _ds(proc, "parameters", json.dumps(params, sort_keys=True, default=str), dtype=string)
        _ds(proc, "seed", np.int64(rec.seed))
        _ds(proc, "n_starts", np.int64(len(np.asarray(ph.start_indices))))
        _ds(proc, "n_iterations", np.int64(ph.n_iterations))
        _ds(proc, "algorithm", str(ph.algorithm), dtype=string)
        _ds(proc, "wall_time_s", float(rec.wall_time_s), "s")
        _ds(proc, "phasing_time_s", float(rec.phasing_time_s), "s")
        _ds(proc, "input_file", str(rec.input_path), dtype=string)
        _ds(proc, "input_sha256", str(rec.input_sha256), dtype=string)
        _ds(proc, "notes", [str(n) for n in rec.notes] or [""], dtype=string)
        for key in ("nm", "x_nm", "z_nm"):
            if key in rec.resolution:
                _ds(proc, f"resolution_{key}" if key != "nm" else "resolution_nm",
                    float(rec.resolution[key]), "nm")

    return atomic_h5(path, writer, force=force)


def read_result(path: str | os.PathLike) -> dict:
    """Read a ``result.h5`` written by :func:`write_result`.

    Returns
    -------
    dict
        ``{"supercell": {...}, "clusters": {...}, "runs": {...},
        "process": {...}, "trust": {...}}``: every dataset as a NumPy array
        (strings as ``str``), group attributes merged in,
        ``process["parameters"]`` decoded from JSON; ``clusters["groups"]``
        maps each ``cluster_<label>`` to its datasets; ``trust`` (half maps,
        misfit, verdict) is empty for a result written without one, and
        ``supercell`` then has no ``estimated_error``, ``reliable``,
        ``reliable_reason``.

    Raises
    ------
    InputError
        Missing, not HDF5, or not a nanotools result.
    """
    import json

    import h5py

    from ..errors import InputError

    path = Path(path)
    if not path.is_file():
        raise InputError("file not found", path)

    def load(group) -> dict:
        out = {key: _decode(value) for key, value in group.attrs.items()
               if key not in ("NX_class", "signal", "axes") and not key.endswith("_indices")}
        for key, obj in group.items():
            if isinstance(obj, h5py.Dataset):
                if obj.dtype.kind == "O" or h5py.check_string_dtype(obj.dtype):
                    value = obj.asstr()[()]
                    out[key] = value.tolist() if isinstance(value, np.ndarray) else value
                else:
                    out[key] = obj[()]
        return out

    try:
        with h5py.File(path, "r") as h5:
            if not all(f"entry/{g}" in h5 for g in ("supercell", "clusters", "runs", "process")):
                raise InputError("not a nanotools result file (no /entry/supercell, clusters, "
                                 "runs, process)", path)
            result = {name: load(h5["entry"][name])
                      for name in ("supercell", "clusters", "runs", "process")}
            result["clusters"]["groups"] = {
                key: load(obj) for key, obj in h5["entry/clusters"].items()
                if isinstance(obj, h5py.Group)}
            result["trust"] = load(h5["entry/trust"]) if "entry/trust" in h5 else {}
    except InputError:
        raise
    except (OSError, KeyError, ValueError) as exc:
        raise InputError(f"cannot read the result file ({exc})", path) from None
    try:
        result["process"]["parameters"] = json.loads(result["process"]["parameters"])
    except (KeyError, TypeError, ValueError):
        raise InputError("the result's /entry/process/parameters is not JSON", path) from None
    return result

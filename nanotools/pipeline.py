"""The whole reconstruction in one call: file in, ``result.h5`` out.

:func:`reconstruct_file` is what ``nanotools reconstruct`` runs. It chains
the stages the notebooks call one by one::

    read_map -> prepare -> phase_retrieval (chunks of starts) ->
    find_supercells -> estimate_trust (half maps, misfit) ->
    supercell_maps / prtf -> write_result

Phasing runs in chunks of starts. After each chunk the finished starts are
saved to a checkpoint folder next to the result (``result.h5.partial/``),
keyed by the input's SHA-256, the parameters, the seed and the version; a
rerun with the same key resumes after the last finished chunk, and because
start ``k`` always draws from ``default_rng([seed, k])`` the resumed result
equals an uninterrupted one. The checkpoint is removed once the result is
written. Nothing is ever written under the result's own name except by the
final atomic rename.
"""
from __future__ import annotations

import datetime as _dt
import hashlib
import json
import os
import shutil
import time
import warnings
from pathlib import Path

import numpy as np

from . import __version__
from .errors import InputError, NanotoolsError, ParameterError
from .io import Reconstruction, load_stage, read_map, save_stage, sha256_file, write_result
from .params import arguments_for, to_json, validate
from .phasing import shrink_wrap_threshold_for

__all__ = ["reconstruct_file", "build_reconstruction", "checkpoint_dir", "checkpoint_key",
           "run_phasing"]

_KEY_FILE = "checkpoint.json"


def checkpoint_dir(out_path: str | os.PathLike) -> Path:
    """Where the checkpoint of a result lives.

    Parameters
    ----------
    out_path
        The result file.

    Returns
    -------
    Path
        ``<out_path>.partial/``.
    """
    out_path = Path(out_path)
    return out_path.with_name(out_path.name + ".partial")


def checkpoint_key(input_sha256: str, params: dict, seed: int) -> str:
    """The identity of a run, for its checkpoint.

    A checkpoint is reused only for the same input bytes, parameters, seed
    and nanotools version (a new version may phase differently, and mixing
    starts of two versions would be garbage).

    Parameters
    ----------
    input_sha256
        SHA-256 of the input file (hex).
    params
        The full parameter set.
    seed
        The run's seed.

    Returns
    -------
    str
        SHA-256 (hex) of all of them.
    """
    blob = json.dumps({"input_sha256": input_sha256, "parameters": json.loads(to_json(params)),
                       "seed": int(seed), "version": __version__}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()


def _check_out_folder(folder: Path) -> None:
    """Fail before any work when the result's folder cannot be created: the
    nearest existing ancestor must be a folder this process may write in."""
    existing = folder
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise InputError("cannot create the output folder: a file is in the way", existing)
    if not os.access(existing, os.W_OK | os.X_OK):
        raise InputError("cannot create the output folder: no permission to write in",
                         existing)


def _naming(exc: NanotoolsError, input_path) -> NanotoolsError:
    """The same error, naming the input file if it does not yet (a stage only
    knows the map's ``source``, which for a simulated map is no file)."""
    if str(input_path) in str(exc):
        return exc
    where = f"{exc.path}, in {input_path}" if exc.path else str(input_path)
    return type(exc)(exc.message, path=where)


def _load_checkpoint(folder: Path, key: str) -> list:
    """The finished chunks of a checkpoint with this key, in order; an
    empty list (and the folder cleared) when there is none or it belongs to
    another run."""
    from .phasing import PhasingResult

    marker = folder / _KEY_FILE
    if not folder.exists():
        return []
    if not marker.is_file():
        raise InputError("the checkpoint folder exists but is not a nanotools checkpoint; "
                         "move it away", folder)
    try:
        stored = json.loads(marker.read_text())
    except (OSError, ValueError):
        stored = {}
    if stored.get("key") != key:
        # a different input, parameter set or seed: its starts are not ours
        shutil.rmtree(folder)
        return []
    chunks = []
    expected = 0
    for chunk_file in sorted(folder.glob("starts_*.h5")):
        try:
            chunk = load_stage(chunk_file, PhasingResult)
        except InputError:
            break  # a damaged chunk and everything after it are redone
        if int(chunk.start_indices[0]) != expected:
            break
        chunks.append(chunk)
        expected = int(chunk.start_indices[-1]) + 1
    return chunks


def run_phasing(prepared, params: dict, *, seed: int, checkpoint: Path | None = None,
                key: str = "", chunk_size: int | None = None, progress: bool = True,
                desc: str = "phasing"):
    """Phase ``params["n_starts"]`` starts in chunks, checkpointing each.

    Parameters
    ----------
    prepared
        The :class:`~nanotools.preprocess.PreparedMap`.
    params
        The validated parameter set.
    seed
        Random seed.
    checkpoint
        Checkpoint folder, or None for no checkpoint.
    key
        The run's :func:`checkpoint_key`.
    chunk_size
        Starts per chunk; by default an eighth of the starts (at least 1).
    progress
        Show a tqdm bar on stderr counting finished starts.
    desc
        The bar's label.

    Returns
    -------
    phasing : PhasingResult
        Every start, in start order.
    resumed : int
        Starts taken from the checkpoint.
    """
    from .chunks import phase_in_chunks, start_chunks

    n_starts = int(params["n_starts"])
    chunk_size = max(1, n_starts // 8) if chunk_size is None else max(1, int(chunk_size))
    chunks = _load_checkpoint(checkpoint, key) if checkpoint is not None else []
    done = sum(c.n_starts for c in chunks)
    if chunks and done > n_starts:
        chunks, done = [], 0
    if checkpoint is not None and not chunks:
        checkpoint.mkdir(parents=True, exist_ok=True)
        tmp = checkpoint / (_KEY_FILE + ".tmp")
        tmp.write_text(json.dumps({"key": key, "n_starts": n_starts, "seed": int(seed)}))
        os.replace(tmp, checkpoint / _KEY_FILE)
    resumed = done
    bar = None
    if progress:
        from tqdm.auto import tqdm
        bar = tqdm(total=n_starts, initial=done, unit="start", desc=desc,
                   dynamic_ncols=True, leave=False)

    def _finished(chunk) -> None:
        """Checkpoint a finished chunk and count it on the bar."""
        if checkpoint is not None:
            save_stage(checkpoint / f"starts_{int(chunk.start_indices[0]):07d}.h5", chunk)
        if bar is not None:
            bar.update(chunk.n_starts)

    pieces = start_chunks(n_starts - done, chunk_size, done) if done < n_starts else []
    kwargs = arguments_for("nanotools.phasing.phase_retrieval", params)
    kwargs.pop("n_starts")
    try:
        phased = phase_in_chunks(prepared, pieces, seed=int(seed), done=chunks,
                                 on_chunk=_finished, **kwargs)
    finally:
        if bar is not None:
            bar.close()
    return phased, resumed


def choose_z_grid(prepared, params: dict, *, seed: int, progress: bool = True):
    """``prepared`` on the z grid that cross-validation chooses
    (:func:`nanotools.crossval.choose_z_subpixels`) where ``params`` ask for
    it (``z_subpixels`` 0), with the check's numbers in its notes; otherwise
    ``prepared`` itself.

    Parameters
    ----------
    prepared
        The :class:`~nanotools.preprocess.PreparedMap` on the map's own grid.
    params
        The validated parameter set (its phasing settings are the check's).
    seed
        The run's random seed.
    progress
        Show a tqdm bar on stderr ("grid check").

    Returns
    -------
    PreparedMap
        ``prepared`` itself or refined along z (:func:`~nanotools.preprocess.finer_z_grid`).

    Examples
    --------
    In the preprocessing notebook, after :func:`nanotools.preprocess.prepare`
    (phasing settings at their defaults)::

        prepared = pipeline.choose_z_grid(prepared, params.validate(settings), seed=0)
    """
    from dataclasses import replace

    from . import crossval, preprocess

    if params.get("z_subpixels", 1) != 0:
        return prepared
    bar = None
    if progress:
        from tqdm.auto import tqdm
        bar = tqdm(total=100, unit="%", desc="grid check", dynamic_ncols=True, leave=False)

    def _report(done: int, total: int) -> None:
        """Move the bar to ``done / total``."""
        bar.update(int(100 * done / max(total, 1)) - bar.n)

    try:
        choice = crossval.choose_z_subpixels(
            prepared, seed=seed, progress=_report if bar is not None else None,
            **arguments_for("nanotools.phasing.phase_retrieval", params))
    finally:
        if bar is not None:
            bar.close()
    prepared = replace(prepared, notes=list(prepared.notes) + [choice.note])
    return preprocess.finer_z_grid(prepared, choice.factor)


def build_reconstruction(found, phased, *, parameters: dict, seed: int, input_path: str = "",
                         input_sha256: str = "", notes: list | None = None,
                         date: str | None = None, trust=None) -> Reconstruction:
    """The :class:`~nanotools.io.Reconstruction` of a finished run: the
    chosen cluster's maps and the resolution of its members.

    The one place a reconstruction is put together: :func:`reconstruct_file`
    and the summary notebook both call it, then :func:`nanotools.io.write_result`.

    Parameters
    ----------
    found
        The :class:`~nanotools.patterns.PatternResult`.
    phased
        The :class:`~nanotools.phasing.PhasingResult` of every start.
    parameters
        The full, validated parameter set.
    seed
        The run's random seed.
    input_path, input_sha256
        The input map and its SHA-256 (empty for a simulated map).
    notes
        What the pipeline decided, for the provenance.
    date
        ISO 8601 date of the run; now if None.
    trust
        The :class:`~nanotools.trust.TrustEstimate` (half maps, verdict), or
        None.

    Returns
    -------
    Reconstruction
        With ``wall_time_s`` 0: the caller sets it before writing.
    """
    from . import analysis

    if date is None:
        date = _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds")
    maps = analysis.supercell_maps(found.best.mean, G=found.G, pixel_nm=tuple(found.pixel_nm))
    members = np.asarray(found.supercells)[np.asarray(found.labels) == found.chosen]
    resolution = {}
    if len(members) >= 2:  # the PRTF compares members: one alone gives none
        _, _, resolution = analysis.prtf(members, pixel_nm=tuple(found.pixel_nm))
    return Reconstruction(
        supercell=maps, patterns=found, phasing=phased, parameters=parameters, seed=int(seed),
        input_path=input_path, input_sha256=input_sha256,
        phasing_time_s=float(phased.phasing_time_s), resolution=dict(resolution),
        notes=list(notes or []), date=date, version=__version__, trust=trust)


def assess_trust(prepared, phased, found, params: dict, *, seed: int,
                 chunk_size: int | None = None, progress: bool = False):
    """How far the chosen supercell can be trusted (:mod:`nanotools.trust`).

    Runs ``trust_prior_fraction`` of the starts again without the amplitude
    prior (the same random starts; nothing when the prior is off), then
    :func:`~nanotools.trust.estimate_trust` on the halves, the misfit and
    that prior check.

    Parameters
    ----------
    prepared
        The :class:`~nanotools.preprocess.PreparedMap` phased.
    phased
        The :class:`~nanotools.phasing.PhasingResult` of every start.
    found
        Its :class:`~nanotools.patterns.PatternResult`.
    params
        The validated parameter set the run used.
    seed
        The run's random seed.
    chunk_size, progress
        As for :func:`run_phasing` (the bar reads "prior check").

    Returns
    -------
    TrustEstimate
        The estimate, the verdict and the numbers behind them.
    """
    from . import trust

    n_free = trust.prior_free_starts(
        params["n_starts"], params["amplitude_constraint"],
        **arguments_for("nanotools.trust.prior_free_starts", params))
    prior_free = None
    if n_free:
        prior_free, _ = run_phasing(
            prepared, {**params, "n_starts": n_free, "amplitude_constraint": 0.0}, seed=seed,
            chunk_size=chunk_size, progress=progress, desc="prior check")
    # each half of the starts (and the prior-free ones) through the same pattern recognition
    return trust.estimate_trust(
        phased, prepared, found, prior_free=prior_free,
        find_kwargs=dict(arguments_for("nanotools.patterns.find_supercells", params), seed=seed),
        **arguments_for("nanotools.trust.estimate_trust", params))


def reconstruct_file(input_path: str | os.PathLike, out_path: str | os.PathLike,
                     params: dict | None = None, *, seed: int = 0, force: bool = False,
                     progress: bool = True, checkpoint: bool = True,
                     data_path: str | None = None, axes=None, out_of_plane=None,
                     chunk_size: int | None = None, scan: int | None = None) -> Reconstruction:
    """Reconstruct the supercell of one map file and write ``result.h5``.

    Parameters
    ----------
    input_path
        The map (NeXus/HDF5, ``.npy``/``.npz``; see :func:`nanotools.io.read_map`).
    out_path
        The result file (docs/CONTRACT.md layout). Its folder is created.
    params
        Parameters to override (name -> value; strings are converted), see
        ``nanotools.params.PARAMETERS``.
    seed
        Seed of the phasing starts and of k-means.
    force
        Replace an existing result (without it the run stops before any work).
    progress
        Show a progress bar of the phasing starts.
    checkpoint
        Save finished starts next to the result and resume from them.
    data_path, axes, out_of_plane
        Passed to :func:`nanotools.io.read_map`.
    chunk_size
        Starts per checkpointed chunk (default: an eighth of ``n_starts``).
    scan
        Which map of a series file (4-D NXdata) to image.

    Returns
    -------
    Reconstruction
        What was written.

    Raises
    ------
    InputError, ParameterError
        Bad input or parameters (checked before any long computation).
    """
    from . import patterns, preprocess

    t0 = time.perf_counter()
    date = _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds")
    full = validate(params)
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ParameterError(f"seed must be a non-negative integer, got {seed!r}")
    seed = int(seed)
    out_path = Path(out_path)
    if out_path.is_dir():
        raise InputError("the output path is a directory; give a file name (result.h5)", out_path)
    if out_path.exists() and not force:
        raise InputError("the output file exists; pass --force to overwrite it", out_path)
    _check_out_folder(out_path.parent)
    input_sha = sha256_file(input_path)
    notes = []
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        rsm = read_map(input_path, data_path, axes=axes, unit_cell=full["unit_cell"] or None,
                       out_of_plane=out_of_plane, hkl=full["hkl"] or None,
                       window_rlu=full["window_rlu"], reduce=full["reduce"], scan=scan)
    for w in caught:  # pass them on (the CLI prints them) and keep them in the result
        notes.append(f"warning: {w.message}")
        warnings.warn(w.message, w.category, stacklevel=2)
    notes.extend(str(n) for n in rsm.metadata.get("notes", ()))  # how a window was cut
    # one checkpoint per map of a series
    key_input = input_sha if scan is None else f"{input_sha}:scan{int(scan)}"
    notes.append(f"out-of-plane axis '{rsm.axis_names[-1]}': {rsm.out_of_plane_reason}")
    try:
        prepared = preprocess.prepare(
            rsm, **arguments_for("nanotools.preprocess.prepare", full))
        prepared = choose_z_grid(prepared, full, seed=seed, progress=progress)
        notes.extend(str(n) for n in getattr(prepared, "notes", []))
        wrap_note = shrink_wrap_threshold_for(prepared, full["shrink_wrap_threshold"])[1]
        if wrap_note:
            notes.append(wrap_note)
        try:
            out_path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:  # a file in the way, no permission ...
            raise InputError(f"cannot create the output folder ({exc.strerror or exc})",
                             out_path.parent) from None
        folder = checkpoint_dir(out_path) if checkpoint else None
        key = checkpoint_key(key_input, full, seed)
        phased, resumed = run_phasing(prepared, full, seed=seed, checkpoint=folder, key=key,
                                      chunk_size=chunk_size, progress=progress)
        if resumed:
            notes.append(f"resumed from a checkpoint with {resumed} finished starts")
        found = patterns.find_supercells(
            phased, prepared, seed=seed,
            **arguments_for("nanotools.patterns.find_supercells", full))
        notes.extend(str(n) for n in found.notes)
        trusted = assess_trust(prepared, phased, found, full, seed=seed,
                               chunk_size=chunk_size, progress=progress)
        notes.extend(str(n) for n in trusted.notes)
    except NanotoolsError as exc:
        raise _naming(exc, input_path) from None
    rec = build_reconstruction(found, phased, parameters=full, seed=seed,
                               input_path=str(input_path), input_sha256=input_sha, notes=notes,
                               date=date, trust=trusted)
    rec.wall_time_s = time.perf_counter() - t0
    write_result(out_path, rec, force=force)
    if folder is not None and folder.exists():
        shutil.rmtree(folder, ignore_errors=True)
    return rec

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
import inspect
import json
import os
import shutil
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from . import __version__
from .errors import InputError, NanotoolsError, ParameterError
from .io import Reconstruction, load_stage, read_map, save_stage, sha256_file, write_result
from .params import to_json, validate

__all__ = ["reconstruct_file", "checkpoint_dir", "checkpoint_key", "run_phasing"]

_KEY_FILE = "checkpoint.json"


def checkpoint_dir(out_path: str | os.PathLike) -> Path:
    """Where the checkpoint of ``out_path`` lives: ``<out_path>.partial/``."""
    out_path = Path(out_path)
    return out_path.with_name(out_path.name + ".partial")


def checkpoint_key(input_sha256: str, params: dict, seed: int) -> str:
    """The identity of a run: a checkpoint is reused only for the same
    input bytes, parameters, seed and nanotools version (a new version may
    phase differently, and mixing starts of two versions would be garbage)."""
    blob = json.dumps({"input_sha256": input_sha256, "parameters": json.loads(to_json(params)),
                       "seed": int(seed), "version": __version__}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()


def _call(func, *args, params: dict, **extra):
    """Call a stage function with the registry parameters it accepts (by
    name), plus ``extra``; so the registry can hold parameters of other
    stages without every function having to swallow them."""
    accepted = inspect.signature(func).parameters
    takes_all = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in accepted.values())
    kwargs = {k: v for k, v in params.items() if takes_all or k in accepted}
    kwargs.update(extra)
    return func(*args, **kwargs)


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
                key: str = "", chunk_size: int | None = None, progress: bool = True):
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

    Returns
    -------
    phasing : PhasingResult
        Every start, in start order.
    resumed : int
        Starts taken from the checkpoint.
    """
    from . import phasing

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
        bar = tqdm(total=n_starts, initial=done, unit="start", desc="phasing",
                   dynamic_ncols=True, leave=False)
    try:
        while done < n_starts:
            count = min(chunk_size, n_starts - done)
            chunk = _call(phasing.phase_retrieval, prepared, params=params,
                          n_starts=count, seed=int(seed), start=done)
            if checkpoint is not None:
                save_stage(checkpoint / f"starts_{done:07d}.h5", chunk)
            chunks.append(chunk)
            done += count
            if bar is not None:
                bar.update(count)
    finally:
        if bar is not None:
            bar.close()
    return phasing.concatenate(chunks), resumed


def reconstruct_file(input_path: str | os.PathLike, out_path: str | os.PathLike,
                     params: dict | None = None, *, seed: int = 0, force: bool = False,
                     progress: bool = True, checkpoint: bool = True,
                     data_path: str | None = None, axes=None, out_of_plane=None,
                     chunk_size: int | None = None) -> Reconstruction:
    """Reconstruct the supercell of one map file and write ``result.h5``.

    Parameters
    ----------
    input_path
        The map (NeXus/HDF5, ``.npy``/``.npz``; see :func:`nanotools.io.read_map`).
    out_path
        The result file (CONTRACT.md layout). Its folder is created.
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

    Returns
    -------
    Reconstruction
        What was written.

    Raises
    ------
    InputError, ParameterError
        Bad input or parameters (checked before any long computation).
    """
    from . import analysis, patterns, preprocess, trust

    t0 = time.perf_counter()
    date = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
    full = validate(params)
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ParameterError(f"seed must be a non-negative integer, got {seed!r}")
    seed = int(seed)
    out_path = Path(out_path)
    if out_path.is_dir():
        raise InputError("the output path is a directory; give a file name (result.h5)", out_path)
    if out_path.exists() and not force:
        raise InputError("the output file exists; pass --force to overwrite it", out_path)
    input_sha = sha256_file(input_path)
    notes = []
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        rsm = read_map(input_path, data_path, axes=axes, unit_cell=full["unit_cell"] or None,
                       out_of_plane=out_of_plane)
    for w in caught:  # pass them on (the CLI prints them) and keep them in the result
        notes.append(f"warning: {w.message}")
        warnings.warn(w.message, w.category, stacklevel=2)
    notes.append(f"out-of-plane axis '{rsm.axis_names[-1]}': {rsm.out_of_plane_reason}")
    try:
        prepared = _call(preprocess.prepare, rsm, params=full)
        notes.extend(str(n) for n in getattr(prepared, "notes", []))
        out_path.parent.mkdir(parents=True, exist_ok=True)
        folder = checkpoint_dir(out_path) if checkpoint else None
        key = checkpoint_key(input_sha, full, seed)
        phased, resumed = run_phasing(prepared, full, seed=seed, checkpoint=folder, key=key,
                                      chunk_size=chunk_size, progress=progress)
        if resumed:
            notes.append(f"resumed from a checkpoint with {resumed} finished starts")
        found = _call(patterns.find_supercells, phased, prepared, params=full, seed=seed)
        notes.extend(str(n) for n in found.notes)
        # each half of the starts through the same pattern recognition
        find_kwargs = {k: v for k, v in full.items()
                       if k in inspect.signature(patterns.find_supercells).parameters}
        trusted = _call(trust.estimate_trust, phased, prepared, found, params=full,
                        find_kwargs=dict(find_kwargs, seed=seed))
        notes.extend(str(n) for n in trusted.notes)
    except NanotoolsError as exc:
        raise _naming(exc, input_path) from None
    best = found.best
    maps = analysis.supercell_maps(best.mean, G=found.G, pixel_nm=tuple(found.pixel_nm))
    members = np.asarray(found.supercells)[np.asarray(found.labels) == found.chosen]
    resolution = {}
    if len(members) >= 2:
        _, _, resolution = analysis.prtf(members, pixel_nm=tuple(found.pixel_nm))
    rec = Reconstruction(
        supercell=maps, patterns=found, phasing=phased, parameters=full, seed=seed,
        input_path=str(input_path), input_sha256=input_sha,
        phasing_time_s=float(phased.phasing_time_s), resolution=dict(resolution),
        notes=notes, date=date, version=__version__, trust=trusted)
    rec.wall_time_s = time.perf_counter() - t0
    write_result(out_path, rec, force=force)
    if folder is not None and folder.exists():
        shutil.rmtree(folder, ignore_errors=True)
    return rec

"""Reading reciprocal-space maps and writing results (NeXus/HDF5).

Three groups of functions:

- :func:`read_map` / :func:`write_map`: a reciprocal-space map in and out of
  NeXus/HDF5 (and ``.npy``/``.npz`` in), brought to the canonical order of
  :class:`ReciprocalSpaceMap` (in-plane axes first, out-of-plane last, every
  axis increasing, q in 1/angstrom).
- :func:`save_stage` / :func:`load_stage`: any stage dataclass (or nested
  dicts, lists, arrays of them) to HDF5 and back, bit for bit, so notebooks
  and checkpoints can hand one stage's output to the next.
- :func:`write_result` / :func:`read_result`: the ``result.h5`` layout of
  the contract, written atomically.

Modules, one concern each: :mod:`~nanotools.io.maps` (the map dataclass),
:mod:`~nanotools.io.nexus` and :mod:`~nanotools.io.npy` (readers),
:mod:`~nanotools.io.orientation` (which axis is out-of-plane),
:mod:`~nanotools.io.canonical` (validation and canonical order),
:mod:`~nanotools.io.mapfile` (``read_map``, ``write_map``),
:mod:`~nanotools.io.hdf5` (atomic writer, NeXus helpers, values to HDF5),
:mod:`~nanotools.io.stage` (stage files), :mod:`~nanotools.io.results`
(``result.h5``); beamline and lab files: :mod:`~nanotools.io.links`
(external links and virtual sources, followed relative to the file),
:mod:`~nanotools.io.nxrefine` (QM2 volumes and series described without
reading them), :mod:`~nanotools.io.window` (one reflection's window,
``read_map(..., hkl=...)``), :mod:`~nanotools.io.lab` (``.xrdml``, ``.ras``
through xrayutilities), :mod:`~nanotools.io.describe` (``nanotools check``).
"""
from __future__ import annotations

from .mapfile import read_map, write_map
from .maps import ReciprocalSpaceMap
from .results import Reconstruction, read_result, sha256_file, write_result
from .stage import STAGE_FORMAT, load_stage, save_stage  # noqa: F401 (STAGE_FORMAT as before)

__all__ = ["ReciprocalSpaceMap", "Reconstruction", "read_map", "write_map", "save_stage",
           "load_stage", "write_result", "read_result", "sha256_file"]

# Stage files name a dataclass by its import path (save_stage): keep the
# public path, so files written before and after the split are identical.
for _cls in (ReciprocalSpaceMap, Reconstruction):
    _cls.__module__ = __name__
del _cls

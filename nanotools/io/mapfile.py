"""A reciprocal-space map file in (:func:`read_map`: NeXus/HDF5, ``.npy``,
``.npz``) and out (:func:`write_map`: NeXus/HDF5).
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from .canonical import canonical_map
from .hdf5 import atomic_h5, nx_entry, write_value
from .lab import is_lab_file, read_lab
from .maps import ReciprocalSpaceMap
from .nexus import read_nexus
from .npy import read_numpy

__all__ = ["read_map", "write_map"]


_HDF5_MAGIC = b"\x89HDF\r\n\x1a\n"


def read_map(path: str | os.PathLike, data_path: str | None = None, *, axes=None,
             unit_cell=None, out_of_plane=None, hkl=None, window_rlu: float = 0.0,
             reduce: str = "auto", scan: int | None = None) -> ReciprocalSpaceMap:
    """Read a reciprocal-space map from NeXus/HDF5, ``.npy`` or ``.npz``.

    Parameters
    ----------
    path
        The file. HDF5 is recognised by its signature, not its name.
    data_path
        HDF5 path of the NXdata group (or of the signal dataset) to read;
        by default the file's ``default`` attributes lead to it, else the
        first NXdata group is used.
    axes
        For NumPy files: one entry per array dimension, in the array's
        order, ``(name, start, stop, units)`` (evenly spaced) or
        ``(name, values, units)``; units ``1/angstrom``, ``1/nm`` or ``rlu``.
        An ``.npz`` may instead store ``axes`` (the names), one array per
        name, ``units``, ``mask`` and ``unit_cell``.
    unit_cell
        Lattice constants ``a, b, c`` (angstrom; a string ``"a,b,c"``, one
        number for a cubic cell, or a sequence) to convert r.l.u. axes,
        overriding an NXsample ``unit_cell`` in the file. H, K, L axes use
        a, b, c: ``q = 2 pi h / a`` (orthogonal cell).
    out_of_plane
        Name or file index of the out-of-plane axis, overriding what the
        metadata and data say.
    hkl
        ``(H, K, L)`` (or ``'H K L'``): cut the window around that
        reflection out of an H, K, L volume, reading only the window
        (:func:`nanotools.io.window.read_window`); None or ``''`` reads the
        whole map.
    window_rlu, reduce
        The window's full width (r.l.u.; 0 = from the texture) and how a
        3-D window becomes the map (``auto``, ``slice``, ``sum``, ``none``);
        see :func:`nanotools.io.window.plan_window`.
    scan
        Which map of a series (a 4-D NXdata whose first axis is the scan
        variable, or a stack of 2-D images).

    Returns
    -------
    ReciprocalSpaceMap
        Canonical order (in-plane axes first, out-of-plane last, every axis
        increasing), q in 1/angstrom, float64 intensity with masked pixels
        (mask, NaN, saturated) set to 0, and ``out_of_plane_reason``.

    Raises
    ------
    InputError
        The file is missing, unreadable, not HDF5/NumPy, truncated, has no
        NXdata, a signal that is not 2-D or 3-D, missing or mismatched or
        non-monotonic axes, a mask of the wrong shape, r.l.u. axes with no
        lattice constants, or an intensity that is NaN-only, all zero,
        constant or mostly negative.
    ParameterError
        A bad ``axes``, ``unit_cell`` or ``out_of_plane`` argument.

    Warns
    -----
    UserWarning
        For what can still be imaged: a few negative pixels (set to 0),
        a saturated peak (masked), infinite values (masked), a guessed
        out-of-plane axis.
    """
    from ..errors import InputError, ParameterError

    path = Path(path)
    if not path.exists():
        raise InputError("file not found", path)
    if path.is_dir():
        raise InputError("is a directory, not a file", path)
    try:
        with open(path, "rb") as fh:
            head = fh.read(8)
    except OSError as exc:
        raise InputError(f"cannot read the file ({exc.strerror or exc})", path) from None
    if not head:
        raise InputError("the file is empty", path)
    if is_lab_file(path):
        if hkl not in (None, ""):
            raise ParameterError(f"--hkl cuts a window out of an H, K, L volume; {path.name} "
                                 "is a lab map in angles")
        raw = read_lab(path)
    elif head.startswith(b"\x93NUMPY") or head.startswith(b"PK\x03\x04") or \
            path.suffix.lower() in (".npy", ".npz"):
        raw = read_numpy(path, axes)
    elif head == _HDF5_MAGIC or _is_hdf5_with_userblock(path):
        if hkl not in (None, "") or scan is not None:
            from .window import read_window
            return read_window(path, hkl if hkl not in (None, "") else None,
                               data_path=data_path, scan=scan, window_rlu=window_rlu,
                               reduce=reduce, unit_cell=unit_cell, out_of_plane=out_of_plane)
        raw = read_nexus(path, data_path)
    else:
        raise InputError("not an HDF5/NeXus file (nor .npy/.npz)", path)
    return canonical_map(raw, path, unit_cell=unit_cell, out_of_plane=out_of_plane)


def _is_hdf5_with_userblock(path: Path) -> bool:
    """HDF5 allows a user block: the signature may sit at 512, 1024, ..."""
    try:
        import h5py
        return bool(h5py.is_hdf5(path))
    except (OSError, ValueError):
        return False


# ---------------------------------------------------------------------------
# Writing maps
# ---------------------------------------------------------------------------

def _dataset_names(names: tuple, ndim: int) -> tuple[list, bool]:
    """HDF5 dataset names for the axes; False if the real names had to be
    replaced (a '/', a clash, a reserved name)."""
    ok = (len(names) == ndim and len(set(names)) == ndim
          and all(isinstance(n, str) and n and "/" not in n and n not in (".", "..")
                  and n not in ("intensity", "mask", "nt_metadata") for n in names))
    if ok:
        return list(names), True
    return [f"q{i}" for i in range(ndim)], False


def write_map(path: str | os.PathLike, rsm: ReciprocalSpaceMap) -> Path:
    """Write a map as NeXus/HDF5 so that :func:`read_map` gives it back
    bit for bit.

    Layout: ``/entry/data`` (NXdata, ``signal="intensity"``, ``axes`` = one
    name per dimension, out-of-plane last, attribute ``out_of_plane_axis``),
    ``intensity`` (float64), ``mask`` (bool), one axis dataset per
    dimension (``units="1/angstrom"``), the metadata in ``nt_metadata``;
    ``default`` attributes on ``/`` and ``/entry``. Written atomically.

    Parameters
    ----------
    path
        File to write (replaced if it exists).
    rsm
        The map, in canonical order.

    Returns
    -------
    Path
    """
    from ..errors import InputError

    intensity = np.asarray(rsm.intensity)
    mask = np.asarray(rsm.mask)
    if intensity.ndim not in (2, 3) or mask.shape != intensity.shape or \
            len(rsm.q) != intensity.ndim or \
            any(np.ndim(q) != 1 or len(q) != n for q, n in zip(rsm.q, intensity.shape)):
        raise InputError("inconsistent map: intensity, mask and q do not match in shape", path)
    names = tuple(rsm.axis_names) if rsm.axis_names else (
        ("qx", "qz") if intensity.ndim == 2 else ("qx", "qy", "qz"))
    ds_names, kept = _dataset_names(names, intensity.ndim)

    def writer(h5):
        entry = nx_entry(h5, default="data")
        data = entry.create_group("data")
        data.attrs["NX_class"] = "NXdata"
        data.attrs["signal"] = "intensity"
        data.attrs["axes"] = ds_names
        data.attrs["out_of_plane_axis"] = ds_names[-1]
        for i, name in enumerate(ds_names):
            data.attrs[f"{name}_indices"] = np.int64(i)
            ds = data.create_dataset(name, data=np.asarray(rsm.q[i], dtype=np.float64))
            ds.attrs["units"] = "1/angstrom"
        data.create_dataset("intensity", data=np.asarray(intensity, dtype=np.float64),
                            compression="gzip", compression_opts=4, shuffle=True)
        data["intensity"].attrs["units"] = "counts"
        data.create_dataset("mask", data=mask.astype(bool), compression="gzip")
        data.attrs["nt_axis_names"] = [str(n) for n in names]
        data.attrs["nt_out_of_plane_reason"] = str(rsm.out_of_plane_reason)
        data.attrs["nt_source"] = str(rsm.source)
        write_value(data, "nt_metadata", dict(rsm.metadata))
        temperature = rsm.metadata.get("temperature_K") if isinstance(rsm.metadata, dict) else None
        if isinstance(temperature, (int, float)) and not isinstance(temperature, bool):
            sample = entry.create_group("sample")
            sample.attrs["NX_class"] = "NXsample"
            sample.create_dataset("temperature", data=float(temperature))
            sample["temperature"].attrs["units"] = "K"

    if not kept and not all(isinstance(n, str) for n in names):
        raise InputError(f"axis names must be strings, got {names!r}", path)
    return atomic_h5(Path(path), writer, force=True)

"""What ``nanotools check`` says about a file: the volume on disk (shape,
axes and their ranges, step, lattice, size, series) and the map nanotools
would image (out-of-plane axis and why, the Bragg peak), as one dict that
the command line prints as text or JSON. A volume is never read whole: with
``hkl`` only the window is read, without it a volume larger than
:data:`~nanotools.io.nexus.MAX_WHOLE_VOXELS` is sampled on a coarse grid.
"""
from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np

from .canonical import RawAxis, RawMap, axis_kind, canonical_map, hkl_index
from .mapfile import read_map
from .maps import ReciprocalSpaceMap
from .nexus import MAX_WHOLE_VOXELS
from .nxrefine import Volume, describe_volume, read_block

__all__ = ["describe_file", "bragg_peak", "format_description"]

_COARSE_VOXELS = 2 ** 24  # a volume checked without --hkl is sampled down to this


def bragg_peak(rsm: ReciprocalSpaceMap) -> dict:
    """The strongest measured point after a 3-point median (robust to hot
    pixels): ``index`` and ``q`` (1/angstrom) per axis, canonical order."""
    from scipy import ndimage

    data = np.where(rsm.mask, 0.0, rsm.intensity)
    smooth = ndimage.median_filter(data, size=3, mode="nearest")
    index = np.unravel_index(int(np.argmax(smooth)), smooth.shape)
    # the median only locates it (a hot pixel cannot win); the raw maximum
    # next to it is the peak
    near = tuple(slice(max(i - 1, 0), i + 2) for i in index)
    local = np.unravel_index(int(np.argmax(data[near])), data[near].shape)
    index = tuple(s.start + j for s, j in zip(near, local))
    return dict(axes=list(rsm.axis_names), index=[int(i) for i in index],
                q_inv_angstrom=[float(q[i]) for q, i in zip(rsm.q, index)],
                q_length_inv_angstrom=float(np.sqrt(sum(float(q[i]) ** 2
                                                        for q, i in zip(rsm.q, index)))))


def _q_factor(ax: RawAxis, cell) -> float | None:
    """1/angstrom per unit of the axis, or None (angles, unknown)."""
    kind = axis_kind(ax.units)
    if kind == "q":
        u = str(ax.units).strip().lower()
        return 0.1 if "nm" in u else 1.0
    if kind == "rlu" or (kind is None and hkl_index(ax.name) is not None):
        if ax.scaling_factor:
            return float(ax.scaling_factor)
        which = hkl_index(ax.name)
        if cell is not None and which is not None and len(cell) >= 3:
            return 2 * math.pi / float(cell[which])
    return None


def _axis_entry(ax: RawAxis, n: int, cell) -> dict:
    values = np.asarray(ax.values, float)
    if values.size == n + 1:
        values = 0.5 * (values[1:] + values[:-1])
    step = float(np.median(np.diff(values))) if values.size > 1 else 0.0
    factor = _q_factor(ax, cell)
    units = ax.units or ("r.l.u. (from the name)" if hkl_index(ax.name) is not None else None)
    return dict(name=ax.name, units=units, long_name=ax.long_name, points=int(n),
                range=[float(values[0]), float(values[-1])], step=step,
                range_inv_angstrom=None if factor is None else
                [float(values[0] * factor), float(values[-1] * factor)],
                inv_angstrom_per_unit=factor)


def _coarse_map(volume: Volume, scan, unit_cell, out_of_plane) -> tuple:
    """Every s-th voxel of a map too large to read whole."""
    n = int(np.prod(volume.map_shape))
    stride = max(1, math.ceil((n / _COARSE_VOXELS) ** (1 / len(volume.map_shape))))
    intensity, mask = read_block(volume, tuple(slice(0, m, stride) for m in volume.map_shape),
                                 scan=scan)
    axes = []
    for ax, m in zip(volume.axes, volume.map_shape):
        values = np.asarray(ax.values, float)
        values = 0.5 * (values[1:] + values[:-1]) if values.size == m + 1 else values
        axes.append(RawAxis(ax.name, values[::stride], ax.units, ax.long_name, ax.scaling_factor))
    raw = RawMap(intensity=intensity, mask=mask, axes=axes, unit_cell=volume.unit_cell,
                 where=volume.group)
    return canonical_map(raw, volume.path, unit_cell=unit_cell, out_of_plane=out_of_plane), stride


def describe_file(path: str | os.PathLike, *, data_path: str | None = None, axes=None,
                  unit_cell=None, out_of_plane=None, hkl=None, window_rlu: float = 0.0,
                  reduce: str = "auto", scan: int | None = None) -> dict:
    """Describe a map file for ``nanotools check``.

    Parameters
    ----------
    path, data_path, axes, unit_cell, out_of_plane, hkl, window_rlu, reduce, scan
        As :func:`nanotools.io.read_map`. For a series without ``scan`` the
        first map is checked.

    Returns
    -------
    dict
        ``file``, ``format``; for HDF5 ``shape``, ``dtype``, ``chunks``,
        ``size_on_disk_bytes``, ``signal`` (file:path after links),
        ``axes`` (file order: name, units, range in own units and in
        1/angstrom, step), ``unit_cell``, ``series`` (scan axis) ; then
        ``map`` (what would be imaged: shape, axes, q ranges, masked
        count), ``out_of_plane`` (axis and reason), ``bragg_peak`` (index
        and q in 1/angstrom), ``window`` (with ``hkl``) and ``notes``.

    Raises
    ------
    InputError, ParameterError
        As :func:`nanotools.io.read_map`.
    """
    path = Path(path)
    out: dict = dict(file=str(path), format=None, notes=[])
    volume = None
    try:
        from .lab import is_lab_file
        lab = is_lab_file(path)
        if not lab and path.is_file():
            import h5py
            if h5py.is_hdf5(path):
                volume = describe_volume(path, data_path)
    except OSError:  # not readable as HDF5: read_map below says why
        volume = None
    if volume is not None:
        cell = volume.unit_cell if unit_cell in (None, "") else unit_cell
        if isinstance(cell, str):
            from .canonical import parse_unit_cell
            cell = parse_unit_cell(cell, path)
        out.update(format="NeXus/HDF5", shape=list(volume.shape), dtype=volume.dtype,
                   chunks=None if volume.chunks is None else list(volume.chunks),
                   size_on_disk_bytes=int(volume.bytes_on_disk),
                   signal=f"{volume.signal.file}:{volume.signal.path}", group=volume.group,
                   axes=[_axis_entry(ax, n, cell) for ax, n in zip(volume.axes, volume.map_shape)],
                   unit_cell=None if cell is None else [float(c) for c in cell],
                   temperature_K=volume.temperature_K)
        out["notes"].extend(volume.notes)
        if volume.scan_axis is not None:
            sa = volume.scan_axis
            out["series"] = dict(name=sa.name, units=sa.units, n_scans=volume.n_scans,
                                 values=[float(v) for v in np.ravel(sa.values)[:volume.n_scans]])
            if scan is None:
                scan = 0
                out["notes"].append(f"a series of {volume.n_scans} maps: the first is checked "
                                    "(--scan N picks another)")
    whole = volume is None or int(np.prod(volume.map_shape)) <= MAX_WHOLE_VOXELS
    if hkl not in (None, "") or whole:
        rsm = read_map(path, data_path, axes=axes, unit_cell=unit_cell, out_of_plane=out_of_plane,
                       hkl=hkl if hkl not in (None, "") else None, window_rlu=window_rlu,
                       reduce=reduce, scan=scan)
    else:
        rsm, stride = _coarse_map(volume, scan, unit_cell, out_of_plane)
        out["notes"].append(f"the volume is too large to read whole: checked every {stride}th "
                            "voxel; --hkl H K L reads one reflection's window in full")
    if volume is None:
        out["format"] = rsm.metadata.get("lab_format") or path.suffix.lstrip(".") or "unknown"
        out["shape"] = list(rsm.shape)
        out["axes"] = [dict(name=n, units="1/angstrom", points=len(q),
                            range=[float(q[0]), float(q[-1])],
                            step=float(np.median(np.diff(q))) if len(q) > 1 else 0.0,
                            range_inv_angstrom=[float(q[0]), float(q[-1])],
                            inv_angstrom_per_unit=1.0)
                       for n, q in zip(rsm.axis_names, rsm.q)]
        out["size_on_disk_bytes"] = int(path.stat().st_size)
        for key in ("wavelength_A", "conversion", "angle_ranges_deg"):
            if key in rsm.metadata:
                out[key] = rsm.metadata[key]
    measured = ~rsm.mask
    out["map"] = dict(shape=list(rsm.shape), axes=list(rsm.axis_names),
                      range_inv_angstrom=[[float(q[0]), float(q[-1])] for q in rsm.q],
                      masked=int(rsm.mask.sum()),
                      max=float(rsm.intensity[measured].max()) if measured.any() else 0.0)
    out["out_of_plane"] = dict(axis=rsm.axis_names[-1], reason=rsm.out_of_plane_reason)
    out["bragg_peak"] = bragg_peak(rsm)
    if "window" in rsm.metadata:
        out["window"] = rsm.metadata["window"]
    out["notes"].extend(str(n) for n in rsm.metadata.get("notes", ()) if n not in out["notes"])
    if "unit_conversion" in rsm.metadata:
        out["notes"].extend(rsm.metadata["unit_conversion"])
    return out


def _size(n: int) -> str:
    for unit in ("bytes", "kB", "MB", "GB", "TB"):
        if n < 1000 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "bytes" else f"{n:.1f} {unit}"
        n /= 1000
    return str(n)


def format_description(d: dict) -> str:
    """The text ``nanotools check`` prints for :func:`describe_file`'s dict."""
    lines = [f"{d['file']}: {d['format']}, {len(d['shape'])}-D {tuple(d['shape'])}"
             + (f" {d['dtype']}" if d.get("dtype") else "")
             + f", {_size(d.get('size_on_disk_bytes', 0))} on disk"
             + (f" (signal {d['signal']})" if d.get("signal") else "")]
    for ax in d.get("axes", []):
        q = ax.get("range_inv_angstrom")
        lines.append(f"  {ax['name']}: {ax['range'][0]:.5g} .. {ax['range'][1]:.5g} "
                     f"{ax['units'] or '(no units)'}, {ax['points']} points, step {ax['step']:.4g}"
                     + (f" ({q[0]:.4g} .. {q[1]:.4g} 1/angstrom)" if q else ""))
    if d.get("unit_cell"):
        lines.append("  lattice: " + ", ".join(f"{c:g}" for c in d["unit_cell"])
                     + " (angstrom, degrees)")
    if d.get("series"):
        s = d["series"]
        lines.append(f"  series: {s['n_scans']} maps along '{s['name']}' "
                     f"{s['values'][0]:g} .. {s['values'][-1]:g} {s['units'] or ''}".rstrip())
    if d.get("wavelength_A"):
        lines.append(f"  wavelength {d['wavelength_A']:g} angstrom; {d.get('conversion', '')}")
    m = d["map"]
    lines.append(f"map: {len(m['shape'])}-D map {tuple(m['shape'])}, axes "
                 + ", ".join(f"{n} [{r[0]:.4g}, {r[1]:.4g}] 1/angstrom"
                             for n, r in zip(m["axes"], m["range_inv_angstrom"]))
                 + f"; {m['masked']} masked pixels; max {m['max']:.4g}")
    lines.append(f"out-of-plane axis '{d['out_of_plane']['axis']}': {d['out_of_plane']['reason']}")
    p = d["bragg_peak"]
    lines.append("Bragg peak at " + ", ".join(f"{n} = {q:.5g}" for n, q in
                                              zip(p["axes"], p["q_inv_angstrom"]))
                 + f" 1/angstrom (|q| = {p['q_length_inv_angstrom']:.5g}), index "
                 + str(tuple(p["index"])))
    for note in d.get("notes", []):
        lines.append(f"note: {note}")
    return "\n".join(lines)

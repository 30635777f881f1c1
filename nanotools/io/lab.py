"""Lab reciprocal-space maps in angles: PANalytical ``.xrdml``, Rigaku
``.ras`` (optionally ``.bz2``/``.gz``), and NeXus maps whose axes are angles.

Read through xrayutilities, the library lab diffractionists already use
for these files: its file readers (``XRDMLFile``/``getxrdml_map``,
``RASFile``), its angle-to-q conversion for a coplanar geometry
(``HXRD.Ang2Q`` at the wavelength the file states) and its gridder
(``Gridder2D``), into the same :class:`~nanotools.io.canonical.RawMap` as
every other reader (q in 1/angstrom; bins no measured point fell in are
masked). A file that does not state its wavelength is refused: q cannot be
computed without it.
"""
from __future__ import annotations

import os
import re
from pathlib import Path

import numpy as np

from .canonical import RawAxis, RawMap

__all__ = ["LAB_SUFFIXES", "is_lab_file", "read_lab", "angles_to_q_map"]

LAB_SUFFIXES = (".xrdml", ".ras")
_COMPRESSED = (".bz2", ".gz")


def _format(path: Path) -> str | None:
    suffixes = [s.lower() for s in path.suffixes]
    if suffixes and suffixes[-1] in _COMPRESSED:
        suffixes = suffixes[:-1]
    return suffixes[-1] if suffixes and suffixes[-1] in LAB_SUFFIXES else None


def is_lab_file(path: str | os.PathLike) -> bool:
    """True for ``.xrdml`` and ``.ras`` files (also ``.bz2``/``.gz``)."""
    return _format(Path(path)) is not None


def angles_to_q_map(omega: np.ndarray, two_theta: np.ndarray, intensity: np.ndarray, *,
                    wavelength_A: float, shape: tuple) -> tuple:
    """Coplanar angles to a regular (q_parallel, q_z) grid.

    Parameters
    ----------
    omega, two_theta
        Incidence and scattering angles of every measured point (degrees),
        any shape (flattened).
    intensity
        Counts of every point, same shape.
    wavelength_A
        X-ray wavelength (angstrom).
    shape
        ``(n_parallel, n_z)`` bins of the grid.

    Returns
    -------
    q_parallel, q_z : ndarray
        Bin centres (1/angstrom), increasing.
    grid : ndarray
        Mean intensity per bin, shape ``shape``; NaN where no point fell.
    """
    import xrayutilities as xu

    omega = np.ravel(np.asarray(omega, float))
    two_theta = np.ravel(np.asarray(two_theta, float))
    intensity = np.ravel(np.asarray(intensity, float))
    # idir/ndir only orient the frame: in-plane comes out as qy, the normal as qz
    hxrd = xu.HXRD([1, 0, 0], [0, 0, 1], wl=float(wavelength_A))
    _, q_par, q_z = hxrd.Ang2Q(omega, two_theta)
    mean = xu.Gridder2D(*shape)
    mean(q_par, q_z, intensity)
    hits = xu.Gridder2D(*shape)
    hits.Normalize(False)
    hits.dataRange(mean.xaxis[0], mean.xaxis[-1], mean.yaxis[0], mean.yaxis[-1])
    hits(q_par, q_z, np.ones_like(intensity))
    grid = np.where(hits.data > 0, mean.data, np.nan)
    return np.asarray(mean.xaxis, float), np.asarray(mean.yaxis, float), grid


def _xrdml_wavelength(path: Path) -> float | None:
    """``usedWavelength/kAlpha1`` (angstrom) of an XRDML file, or None."""
    from xml.etree import ElementTree

    from xrayutilities.io.helper import xu_open

    with xu_open(str(path)) as fh:
        root = ElementTree.parse(fh).getroot()
    for node in root.iter():
        if node.tag.rsplit("}", 1)[-1] == "usedWavelength":
            for child in node:
                if child.tag.rsplit("}", 1)[-1] == "kAlpha1" and child.text:
                    value = float(child.text)
                    unit = (child.get("unit") or "Angstrom").lower()
                    return value * 10.0 if unit in ("nm", "nanometer") else value
    return None


def _read_xrdml(path: Path):
    import xrayutilities as xu

    from ..errors import InputError

    wavelength = _xrdml_wavelength(path)
    if wavelength is None:
        raise InputError("the .xrdml file states no wavelength (no <usedWavelength> with "
                         "<kAlpha1>): the angles cannot be converted to q", path)
    measurement = xu.io.XRDMLFile(str(path)).scan
    counts = np.asarray(measurement["detector"], float)
    if counts.ndim != 2:
        raise InputError("the .xrdml file holds a single scan, not a reciprocal-space map "
                         "(several scans, or a 1-D detector)", path)
    omega, two_theta, rate = xu.io.getxrdml_map(path.name, path=str(path.parent))
    count_time = np.ravel(np.asarray(measurement["countTime"], float))
    # xrayutilities gives counts per second; back to counts for the noise model
    scale = float(count_time[0]) if count_time.size and np.allclose(count_time, count_time[0]) \
        else 1.0
    return omega, two_theta, rate * scale, wavelength, counts.shape, \
        {"count_time_s": scale, "scan_axis": measurement.scanmotname}


_RAS_WAVELENGTH = re.compile(r'^\*HW_XG_WAVE_LENGTH_ALPHA1\s+"?([0-9.eE+-]+)"?')


def _read_ras(path: Path):
    import xrayutilities as xu

    from ..errors import InputError

    ras = xu.io.RASFile(str(path))
    if not ras.scans:
        raise InputError("the .ras file holds no scan", path)
    wavelength = None
    for line in ras.scans[0].header:
        m = _RAS_WAVELENGTH.match(line.strip())
        if m:
            wavelength = float(m.group(1))
            break
    if wavelength is None:
        raise InputError("the .ras file states no wavelength (*HW_XG_WAVE_LENGTH_ALPHA1): "
                         "the angles cannot be converted to q", path)
    omegas, thetas, counts = [], [], []
    for scan in ras.scans:
        axis = scan.scan_axis
        column = np.asarray(scan.data[axis], float)
        value = np.asarray(scan.data["int"], float) * np.asarray(scan.data["att"], float)
        om0 = scan.init_mopo.get("Omega")
        tt0 = scan.init_mopo.get("TwoTheta")
        name = axis.replace("-", "").replace("/", "").lower()
        if name in ("twothetaomega", "2thetaomega") and None not in (om0, tt0):
            tt, om = column, om0 + (column - tt0) / 2  # coupled: omega moves half as fast
        elif name == "omega" and tt0 is not None:
            om, tt = column, np.full_like(column, tt0)
        elif name in ("twotheta", "2theta") and om0 is not None:
            tt, om = column, np.full_like(column, om0)
        else:
            raise InputError(f"the .ras scan axis '{axis}' is not Omega, TwoTheta or "
                             "TwoThetaOmega (with both motors' start positions)", path)
        omegas.append(om)
        thetas.append(tt)
        counts.append(value)
    if len(ras.scans) < 2:
        raise InputError("the .ras file holds a single scan, not a reciprocal-space map", path)
    n_points = int(np.median([c.size for c in counts]))
    return (np.concatenate(omegas), np.concatenate(thetas), np.concatenate(counts), wavelength,
            (len(ras.scans), n_points), {"scan_axis": ras.scans[0].scan_axis})


def read_lab(path: str | os.PathLike) -> RawMap:
    """Read a lab RSM (``.xrdml`` or ``.ras``, optionally compressed) and
    grid it in q.

    Parameters
    ----------
    path
        The file.

    Returns
    -------
    RawMap
        Axes ``qx`` (in-plane) and ``qz`` (1/angstrom), one bin per scan
        across and per point along the scans; NaN (masked) where no point
        fell; ``metadata`` holds the wavelength and how the map was made.

    Raises
    ------
    InputError
        No wavelength in the file, a single scan instead of a map, or a
        file xrayutilities cannot parse.
    """
    from xml.etree.ElementTree import ParseError

    from ..errors import InputError

    path = Path(path)
    kind = _format(path)
    try:
        if kind == ".xrdml":
            omega, two_theta, counts, wavelength, shape, extra = _read_xrdml(path)
        else:
            omega, two_theta, counts, wavelength, shape, extra = _read_ras(path)
    except InputError:
        raise
    except (ParseError, OSError, EOFError, ValueError, KeyError, TypeError, IndexError,
            AttributeError) as exc:
        text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise InputError(f"cannot read the {kind} file ({text})", path) from None
    if not (np.isfinite(wavelength) and wavelength > 0):
        raise InputError(f"the {kind} file states a wavelength of {wavelength!r} angstrom", path)
    n_across, n_along = shape
    q_par, q_z, grid = angles_to_q_map(omega, two_theta, counts, wavelength_A=wavelength,
                                       shape=(max(int(n_across), 4), max(int(n_along), 4)))
    raw = RawMap(intensity=grid, mask=None,
                 axes=[RawAxis("qx", q_par, "1/angstrom", "q parallel (1/angstrom)"),
                       RawAxis("qz", q_z, "1/angstrom", "q_z (1/angstrom)")],
                 where=kind)
    raw.metadata.update(extra)
    raw.metadata.update(wavelength_A=float(wavelength), lab_format=kind.lstrip("."),
                        conversion=(f"xrayutilities HXRD.Ang2Q (coplanar, wavelength "
                                    f"{wavelength:g} angstrom), Gridder2D {n_across} x "
                                    f"{n_along} bins"),
                        angle_ranges_deg=dict(omega=[float(np.min(omega)), float(np.max(omega))],
                                              two_theta=[float(np.min(two_theta)),
                                                         float(np.max(two_theta))]))
    return raw

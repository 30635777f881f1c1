"""Reading a map from NeXus/HDF5: the NXdata group, its signal and axes,
units, and the sample's unit cell and temperature.
"""
from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from .canonical import RawAxis, RawMap, axis_kind
from .hdf5 import decode_attr as _decode
from .hdf5 import read_value
from .links import open_dataset, resolve_dataset

__all__ = ["read_nexus", "find_nxdata", "find_unit_cell", "find_temperature",
           "nxdata_axis_names", "units_from_long_name", "find_signal", "find_weights",
           "read_axis", "open_hdf5", "find_wavelength", "MAX_WHOLE_VOXELS"]

#: A signal with more voxels than this (1 GB as float64) is never read
#: whole: a beamline volume is cut to one reflection's window (``--hkl``).
MAX_WHOLE_VOXELS = 2 ** 27


def find_unit_cell(h5, start) -> tuple | None:
    """Lattice constants from an NXsample group (NeXus ``unit_cell`` /
    ``unit_cell_abc``, or NXrefine's and Mantid's ``unitcell_a`` ...)."""
    import h5py

    samples = []

    def visit(name, obj):
        if isinstance(obj, h5py.Group) and _decode(obj.attrs.get("NX_class")) == "NXsample":
            samples.append(obj)

    try:
        start.visititems(visit)
        if start.name != "/":
            h5.visititems(visit)
    except (OSError, RuntimeError, KeyError):
        return None
    for sample in samples:
        for key in ("unit_cell", "unit_cell_abc"):
            if key in sample:
                try:
                    cell = np.asarray(sample[key][...], dtype=float).ravel()
                except (OSError, TypeError, ValueError):
                    continue
                if cell.size >= 3:
                    return tuple(float(v) for v in cell[:6])
        for prefix in ("unit_cell_", "unitcell_", "lattice_"):
            names = [prefix + k for k in ("a", "b", "c")]
            if all(n in sample for n in names):
                try:
                    abc = [float(np.ravel(sample[n][...])[0]) for n in names]
                    angles = [float(np.ravel(sample[prefix + k][...])[0])
                              for k in ("alpha", "beta", "gamma") if prefix + k in sample]
                except (OSError, TypeError, ValueError, IndexError):
                    continue
                return tuple(abc + (angles if len(angles) == 3 else []))
    return None


def find_temperature(h5, start) -> float | None:
    import h5py

    found = []

    def visit(name, obj):
        if (isinstance(obj, h5py.Group) and _decode(obj.attrs.get("NX_class")) == "NXsample"
                and "temperature" in obj and not found):
            try:
                ds = obj["temperature"]
                value = float(np.ravel(ds[...])[0])
                units = str(_decode(ds.attrs.get("units", "K"))).strip()
                if units in ("C", "degC", "celsius", "Celsius"):
                    value += 273.15
                if np.isfinite(value):
                    found.append(value)
            except (OSError, TypeError, ValueError, IndexError, KeyError):
                pass

    try:
        (start if start.name != "/" else h5).visititems(visit)
    except (OSError, RuntimeError, KeyError):
        return None
    return found[0] if found else None


def find_nxdata(h5, data_path, path):
    """The NXdata group to read: ``data_path``, else the ``default`` chain,
    else the first NXdata group in the file."""
    import h5py

    from ..errors import InputError

    if data_path:
        try:
            node = h5[data_path]
        except (KeyError, OSError, ValueError):
            raise InputError(f"no group or dataset '{data_path}' in the file", path) from None
        return node
    node = h5
    # NeXus: the root's `default` names an NXentry, the entry's `default` its
    # NXdata; some writers put a whole path in it.
    for _ in range(8):
        target = _decode(node.attrs.get("default")) if "default" in node.attrs else None
        if not isinstance(target, str) or not target:
            break
        try:
            child = node[target]
        except (KeyError, OSError, ValueError):
            break
        if not isinstance(child, h5py.Group):
            break
        node = child
        if _decode(node.attrs.get("NX_class")) == "NXdata":
            return node
    found = []

    def visit(name, obj):
        if isinstance(obj, h5py.Group) and _decode(obj.attrs.get("NX_class")) == "NXdata":
            found.append(obj)
            return True  # stop at the first one
        return None

    try:
        h5.visititems(visit)
    except (OSError, RuntimeError) as exc:
        raise InputError(f"the HDF5 file is damaged (truncated?): {exc}", path) from None
    if not found:
        raise InputError("no NXdata group in the file (a NeXus map needs an NXdata group "
                         "with 'signal' and 'axes' attributes; --data picks a group)", path)
    return found[0]


def find_signal(node, path) -> tuple:
    """The NXdata group and the name of its signal: the group's ``signal``
    attribute, else (NeXus 2) the dataset with attribute ``signal=1``; when
    ``node`` is the signal dataset itself, its parent. The signal is not
    opened (it may be an external link: see :func:`~nanotools.io.links.resolve_dataset`)."""
    import h5py

    from ..errors import InputError

    if isinstance(node, h5py.Dataset):  # --data pointed at the signal itself
        return node.parent, node.name.rsplit("/", 1)[-1]
    group, where = node, node.name
    signal_name = _decode(group.attrs.get("signal")) if "signal" in group.attrs else None
    if isinstance(signal_name, str) and signal_name:
        if group.get(signal_name, getlink=True) is None:
            raise InputError(f"NXdata group {where} names signal '{signal_name}', "
                             "which does not exist", path)
        return group, signal_name
    for key in group:  # NeXus 2: a dataset with attribute signal=1
        try:
            obj = group[key]
        except (KeyError, OSError):
            continue
        if isinstance(obj, h5py.Dataset) and str(_decode(obj.attrs.get("signal", ""))) == "1":
            return group, key
    raise InputError(f"NXdata group {where} has no 'signal' attribute naming the "
                     "intensity dataset", path)


def find_weights(group, path) -> tuple:
    """``(name, DatasetRef)`` of the NXdata group's weights (the group's
    ``weights`` attribute, else a dataset or link named ``weights``, as
    nxrefine writes), links followed; ``(None, None)`` when there are none."""
    name = _decode(group.attrs.get("weights")) if "weights" in group.attrs else None
    if not (isinstance(name, str) and group.get(name, getlink=True) is not None):
        name = "weights" if group.get("weights", getlink=True) is not None else None
    if name is None:
        return None, None
    return name, resolve_dataset(path, f"{group.name.rstrip('/')}/{name}")


def nxdata_axis_names(group, signal, shape, where: str, path) -> list:
    """One axis name per signal dimension: the group's ``axes`` attribute
    (a list, or ``'a:b:c'``), else the signal's own (NeXus 2); ``"."``
    placeholders (silx writes them for dimensions without an axis) filled
    from ``AXISNAME_indices``; ``None`` where no axis is given."""
    from ..errors import InputError

    axes_attr = None
    for holder in (group, signal):
        if "axes" in holder.attrs:
            axes_attr = _decode(holder.attrs["axes"])
            break
    if isinstance(axes_attr, str):
        axes_attr = [a for a in axes_attr.replace(",", ":").split(":")]
    names: list = [None] * len(shape)
    if isinstance(axes_attr, list):
        if len(axes_attr) != len(shape):
            raise InputError(f"NXdata group {where} lists {len(axes_attr)} axes for a "
                             f"{len(shape)}-D signal {tuple(shape)}", path)
        names = [str(a).strip() for a in axes_attr]
    for key, value in group.attrs.items():
        if key.endswith("_indices"):
            idx = _decode(value)
            idx = idx[0] if isinstance(idx, list) and len(idx) == 1 else idx
            if isinstance(idx, int) and 0 <= idx < len(shape) and names[idx] in (None, ".", ""):
                names[idx] = key[: -len("_indices")]
    return [None if n in (None, ".", "") else n for n in names]


_UNITS_IN_NAME = re.compile(r"[\(\[]\s*([^()\[\]]+?)\s*[\)\]]\s*$")


def units_from_long_name(long_name: str) -> str | None:
    """The units a ``long_name`` ends with, ``'H (r.l.u.)'`` -> ``'r.l.u.'``,
    ``'qx [1/angstrom]'`` -> ``'1/angstrom'`` (silx and nxrefine write units
    there and leave the ``units`` attribute out); None if there are none."""
    m = _UNITS_IN_NAME.search(long_name or "")
    return m.group(1) if m else None


def read_axis(group, name, index: int, where: str, path) -> RawAxis:
    """Axis dataset ``name`` of ``group`` as a :class:`RawAxis`: values,
    ``units`` (else the units its ``long_name`` ends with), ``long_name``
    and, for nxrefine's axes, ``scaling_factor`` (1/angstrom per r.l.u.)."""
    import h5py

    from ..errors import InputError

    if name is None:
        raise InputError(f"NXdata group {where} gives no axis for dimension {index} of "
                         f"the signal (needs an 'axes' attribute)", path)
    if name not in group or not isinstance(group[name], h5py.Dataset):
        raise InputError(f"axis '{name}' named in {where} is missing", path)
    ds = group[name]
    try:
        values = np.asarray(ds[...])
    except (OSError, TypeError, ValueError) as exc:
        raise InputError(f"cannot read axis '{name}' ({exc})", path) from None
    if values.dtype.kind not in "biuf":
        raise InputError(f"axis '{name}' holds {values.dtype} values, not numbers", path)
    units = _decode(ds.attrs.get("units")) if "units" in ds.attrs else None
    long_name = _decode(ds.attrs.get("long_name", ""))
    long_name = long_name if isinstance(long_name, str) else ""
    if not isinstance(units, str):
        units = units_from_long_name(long_name)
    axis = RawAxis(name, values.astype(np.float64).ravel() if values.ndim == 0 else
                   values.astype(np.float64), units, long_name)
    if "scaling_factor" in ds.attrs:
        try:
            axis.scaling_factor = float(np.ravel(ds.attrs["scaling_factor"])[0])
        except (TypeError, ValueError, IndexError):
            pass
    return axis


def open_hdf5(path: Path):
    """Open ``path`` read-only with h5py; an ``InputError`` saying why not
    (truncated, not HDF5) instead of h5py's ``OSError``."""
    import h5py

    from ..errors import InputError

    try:
        return h5py.File(path, "r")
    except OSError as exc:
        text = str(exc)
        if "truncated" in text.lower() or "eof" in text.lower():
            raise InputError("the HDF5 file is truncated (incomplete copy?)", path) from None
        first = text.splitlines()[0] if text else "OSError"
        raise InputError(f"cannot open the HDF5 file ({first})",
                         path) from None


def read_nexus(path: Path, data_path: str | None) -> RawMap:
    """Read the NXdata group ``data_path`` (or the file's default one) of the
    NeXus/HDF5 file ``path``: signal, axes with units, mask, weights, and the
    sample's unit cell and temperature; raises ``InputError`` naming what is
    missing or damaged."""


    from ..errors import InputError

    with open_hdf5(path) as h5:
        try:
            node = find_nxdata(h5, data_path, path)
            where = node.name
            group, signal_name = find_signal(node, path)
            ref = resolve_dataset(path, f"{group.name.rstrip('/')}/{signal_name}")
            with open_dataset(ref, wrapper=path) as signal:
                raw = _read_group(h5, group, signal, where, path)
        except (OSError, RuntimeError) as exc:
            # a damaged header or attribute, wherever h5py meets it (the
            # reads above name the common cases themselves)
            first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise InputError(f"the HDF5 file is damaged (truncated?): {first}", path) from None
    return raw


def _read_group(h5, group, signal, where: str, path: Path) -> RawMap:
    """The rest of :func:`read_nexus`, once the signal is open."""
    import h5py

    from ..errors import InputError

    shape = signal.shape
    if shape is None or len(shape) not in (2, 3):
        ndim = 0 if shape is None else len(shape)
        hint = (" (a series of 3-D volumes: 'nanotools series FILE --hkl H K L' images "
                "each)" if ndim == 4 else "")
        raise InputError(f"the signal {signal.name} has {ndim} dimension(s) {shape}; "
                         f"expected 2 (x, z) or 3 (x, y, z){hint}", path)
    if signal.dtype.kind not in "biuf":
        raise InputError(f"the signal {signal.name} holds {signal.dtype} values; "
                         "expected real numbers (counts)", path)
    if int(np.prod(shape)) > MAX_WHOLE_VOXELS:
        raise InputError(f"the signal {signal.name} {tuple(shape)} holds "
                         f"{int(np.prod(shape)):.3g} voxels, too many to read whole: give "
                         "--hkl H K L to cut one reflection's window", path)
    names = nxdata_axis_names(group, signal, shape, where, path)
    axes = [read_axis(group, name, i, where, path) for i, name in enumerate(names)]
    try:
        intensity = signal[...]
    except (OSError, RuntimeError) as exc:
        raise InputError(f"cannot read the signal {signal.name}: the file is damaged or "
                         f"truncated ({str(exc).splitlines()[0]})", path) from None
    mask = None
    if "mask" in group and isinstance(group["mask"], h5py.Dataset):
        try:
            mask = group["mask"][...]
        except (OSError, RuntimeError) as exc:
            raise InputError(f"cannot read the mask ({exc})", path) from None
    weights = None
    wname, wref = find_weights(group, path)
    if wref is not None:
        with open_dataset(wref, wrapper=path) as wds:
            if wds.shape == shape:
                try:
                    weights = np.asarray(wds[...], dtype=np.float64)
                except (OSError, RuntimeError, TypeError, ValueError):
                    weights = None
    if any(axis_kind(ax.units) == "degrees" for ax in axes):
        return _angle_map(h5, group, axes, intensity, mask, where, path)
    raw = RawMap(intensity=intensity, mask=mask, axes=axes, where=where)
    if weights is not None:
        raw.metadata["weights"] = wname
        raw.stored["weights"] = weights
    hint = (_decode(group.attrs.get("out_of_plane_axis"))
            if "out_of_plane_axis" in group.attrs else None)
    raw.out_of_plane_hint = hint
    entry = group.parent if group.name != "/" else h5
    raw.unit_cell = find_unit_cell(h5, entry)
    temperature = find_temperature(h5, entry)
    if temperature is not None:
        raw.metadata["temperature_K"] = temperature
    # what write_map stored verbatim, so that a round trip is exact
    if "nt_axis_names" in group.attrs:
        raw.stored["axis_names"] = tuple(str(n) for n in _decode(group.attrs["nt_axis_names"])) \
            if isinstance(_decode(group.attrs["nt_axis_names"]), list) else None
    for key in ("nt_out_of_plane_reason", "nt_source"):
        if key in group.attrs:
            raw.stored[key] = str(_decode(group.attrs[key]))
    if "nt_metadata" in group:
        try:
            raw.stored["metadata"] = read_value(group["nt_metadata"])
        except (KeyError, ValueError, TypeError, ImportError, AttributeError, OSError):
            pass
    return raw


def find_wavelength(h5, group) -> float | None:
    """The X-ray wavelength (angstrom) a NeXus file states: a ``wavelength``
    attribute of the NXdata group or its entry, else a dataset
    ``incident_wavelength`` (NXbeam) or ``wavelength`` (NXmonochromator,
    NXsource ...) anywhere in the file; ``units`` nm are converted."""
    import h5py

    for holder in (group, group.parent):
        if "wavelength" in holder.attrs:
            try:
                return float(np.ravel(_decode(holder.attrs["wavelength"]))[0])
            except (TypeError, ValueError, IndexError):
                pass
    found = []

    def visit(name, obj):
        if isinstance(obj, h5py.Dataset) and not found and \
                name.rsplit("/", 1)[-1] in ("incident_wavelength", "wavelength"):
            try:
                value = float(np.ravel(obj[...])[0])
            except (OSError, TypeError, ValueError, IndexError):
                return
            units = str(_decode(obj.attrs.get("units", "angstrom"))).strip().lower()
            value = value * 10.0 if units in ("nm", "nanometer", "nanometre") else value
            if np.isfinite(value) and value > 0:
                found.append(value)

    try:
        h5.visititems(visit)
    except (OSError, RuntimeError, KeyError):
        return None
    return found[0] if found else None


def _angle_map(h5, group, axes, intensity, mask, where, path) -> RawMap:
    """A 2-D map whose axes are omega and two-theta (degrees), converted to
    q and gridded like a lab file (:func:`nanotools.io.lab.angles_to_q_map`)
    at the wavelength the file states."""
    from ..errors import InputError
    from .lab import angles_to_q_map

    names = [ax.name for ax in axes]
    if len(axes) != 2:
        raise InputError(f"axes {', '.join(names)} include angles (degrees): only a 2-D "
                         "(omega, two-theta) map can be converted to q", path)
    norm = ["".join(ch for ch in n.lower() if ch.isalnum()) for n in names]
    is_tt = [any(t in n for t in ("2theta", "twotheta", "tth", "2th", "delta")) for n in norm]
    if sum(is_tt) != 1:
        raise InputError(f"angle axes {', '.join(names)}: cannot tell which is two-theta "
                         "(name it 2theta, two_theta or tth) and which omega", path)
    wavelength = find_wavelength(h5, group)
    if wavelength is None:
        raise InputError(f"axes {', '.join(names)} are angles (degrees); converting them to q "
                         "needs the X-ray wavelength, which the file does not state (NXbeam "
                         "incident_wavelength or NXmonochromator wavelength)", path)
    tt_axis = is_tt.index(True)
    grids = np.meshgrid(axes[0].values, axes[1].values, indexing="ij")
    tt, om = grids[tt_axis], grids[1 - tt_axis]
    values = np.asarray(intensity, float)
    if mask is not None:
        values = np.where(np.asarray(mask, bool), np.nan, values)
    ok = np.isfinite(values)
    shape = (values.shape[1 - tt_axis], values.shape[tt_axis])  # (across, along the scans)
    q_par, q_z, grid = angles_to_q_map(om[ok], tt[ok], values[ok], wavelength_A=wavelength,
                                       shape=shape)
    raw = RawMap(intensity=grid, mask=None,
                 axes=[RawAxis("qx", q_par, "1/angstrom", "q parallel"),
                       RawAxis("qz", q_z, "1/angstrom", "q_z")], where=where)
    raw.metadata.update(wavelength_A=wavelength, conversion=(
        f"angles {names[1 - tt_axis]} (omega), {names[tt_axis]} (two-theta) to q: "
        f"xrayutilities HXRD.Ang2Q (coplanar, wavelength {wavelength:g} angstrom), Gridder2D "
        f"{shape[0]} x {shape[1]} bins"))
    return raw

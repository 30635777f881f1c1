"""Reading a map from NeXus/HDF5: the NXdata group, its signal and axes,
units, and the sample's unit cell and temperature.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from .canonical import RawAxis, RawMap
from .hdf5 import decode_attr as _decode
from .hdf5 import read_value

__all__ = ["read_nexus"]


def _find_unit_cell(h5, start) -> tuple | None:
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


def _find_temperature(h5, start) -> float | None:
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


def _find_nxdata(h5, data_path, path):
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


def read_nexus(path: Path, data_path: str | None) -> RawMap:
    """Read the NXdata group ``data_path`` (or the file's default one) of the
    NeXus/HDF5 file ``path``: signal, axes with units, mask, weights, and the
    sample's unit cell and temperature; raises ``InputError`` naming what is
    missing or damaged."""
    import h5py

    from ..errors import InputError

    try:
        h5 = h5py.File(path, "r")
    except OSError as exc:
        text = str(exc)
        if "truncated" in text.lower() or "eof" in text.lower():
            raise InputError("the HDF5 file is truncated (incomplete copy?)", path) from None
        raise InputError(f"cannot open the HDF5 file ({text.splitlines()[0] if text else 'OSError'})",
                         path) from None
    with h5:
        node = _find_nxdata(h5, data_path, path)
        where = node.name
        if isinstance(node, h5py.Dataset):  # --data pointed at the signal itself
            signal, group = node, node.parent
        else:
            group = node
            signal_name = _decode(group.attrs.get("signal")) if "signal" in group.attrs else None
            signal = None
            if isinstance(signal_name, str) and signal_name:
                if signal_name not in group:
                    raise InputError(f"NXdata group {where} names signal '{signal_name}', "
                                     "which does not exist (broken external link?)", path)
                signal = group[signal_name]
            else:  # NeXus 2: a dataset with attribute signal=1
                for key in group:
                    try:
                        obj = group[key]
                    except (KeyError, OSError):
                        continue
                    if isinstance(obj, h5py.Dataset) and str(_decode(obj.attrs.get("signal", ""))) == "1":
                        signal = obj
                        break
            if signal is None:
                raise InputError(f"NXdata group {where} has no 'signal' attribute naming the "
                                 "intensity dataset", path)
            if not isinstance(signal, h5py.Dataset):
                raise InputError(f"the signal {signal.name} is not a dataset", path)
        shape = signal.shape
        if shape is None or len(shape) not in (2, 3):
            ndim = 0 if shape is None else len(shape)
            raise InputError(f"the signal {signal.name} has {ndim} dimension(s) {shape}; "
                             "expected 2 (x, z) or 3 (x, y, z)", path)
        if signal.dtype.kind not in "biuf":
            raise InputError(f"the signal {signal.name} holds {signal.dtype} values; "
                             "expected real numbers (counts)", path)

        # axis names: group attribute `axes` (list, or 'a:b:c'), else the
        # signal's own `axes` attribute (NeXus 2), else AXIS_indices.
        axes_attr = None
        for holder in (group, signal):
            if "axes" in holder.attrs:
                axes_attr = _decode(holder.attrs["axes"])
                break
        if isinstance(axes_attr, str):
            axes_attr = [a for a in axes_attr.replace(",", ":").split(":")]
        names = [None] * len(shape)
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
        axes = []
        for i, name in enumerate(names):
            if name in (None, ".", ""):
                raise InputError(f"NXdata group {where} gives no axis for dimension {i} of "
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
            axes.append(RawAxis(name, values.astype(np.float64), units if isinstance(units, str)
                                 else None, long_name if isinstance(long_name, str) else ""))
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
        wname = _decode(group.attrs.get("weights")) if "weights" in group.attrs else None
        wname = wname if isinstance(wname, str) and wname in group else (
            "weights" if "weights" in group else None)
        if wname and isinstance(group[wname], h5py.Dataset) and group[wname].shape == shape:
            try:
                weights = np.asarray(group[wname][...], dtype=np.float64)
            except (OSError, RuntimeError, TypeError, ValueError):
                weights = None
        raw = RawMap(intensity=intensity, mask=mask, axes=axes, where=where)
        if weights is not None:
            raw.metadata["weights"] = wname
            raw.stored["weights"] = weights
        hint = _decode(group.attrs.get("out_of_plane_axis")) if "out_of_plane_axis" in group.attrs else None
        raw.out_of_plane_hint = hint
        entry = group.parent if group.name != "/" else h5
        raw.unit_cell = _find_unit_cell(h5, entry)
        temperature = _find_temperature(h5, entry)
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

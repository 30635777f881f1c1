"""Reading a map from a NumPy ``.npy`` or ``.npz`` file."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from .canonical import RawAxis, RawMap, parse_unit_cell

__all__ = ["read_numpy"]


def _linspace_axis(spec, n: int, path) -> RawAxis:
    """One entry of the ``axes`` argument: ``(name, start, stop, units)`` or
    ``(name, values, units)``."""
    from ..errors import ParameterError

    try:
        if len(spec) == 4:
            name, start, stop, units = spec
            values = np.linspace(float(start), float(stop), n)
        elif len(spec) == 3:
            name, values, units = spec
            values = np.asarray(values, dtype=np.float64)
        else:
            raise ValueError
    except (TypeError, ValueError):
        raise ParameterError("an axis must be (NAME, START, STOP, UNITS) or (NAME, VALUES, "
                             f"UNITS), got {spec!r}") from None
    return RawAxis(str(name), values, str(units))


def read_numpy(path: Path, axes_spec) -> RawMap:
    """Read a ``.npy`` array or an ``.npz`` archive (``intensity``, ``mask``,
    ``axes`` and one array per axis, ``units``, ``unit_cell``); ``axes_spec``
    is the ``axes`` argument of :func:`nanotools.io.read_map`."""
    from ..errors import InputError, ParameterError

    try:
        loaded = np.load(path, allow_pickle=False)
    except ValueError as exc:
        raise InputError(f"cannot read the NumPy file ({exc})", path) from None
    except (OSError, EOFError) as exc:
        raise InputError(f"cannot read the NumPy file: damaged or truncated ({exc})",
                         path) from None
    except Exception as exc:  # zipfile.BadZipFile and friends from a damaged .npz
        raise InputError(f"cannot read the NumPy file: damaged or truncated ({exc})",
                         path) from None
    mask = None
    axes = []
    unit_cell = None
    if isinstance(loaded, np.ndarray):
        intensity = loaded
    else:
        try:
            with loaded as npz:
                keys = list(npz.keys())
                arrays = {k: npz[k] for k in keys}
        except Exception as exc:  # BadZipFile, CRC errors, ValueError on pickles
            raise InputError(f"cannot read the .npz file ({exc})", path) from None
        for key in ("intensity", "signal", "data", "counts"):
            if key in arrays:
                intensity = arrays[key]
                break
        else:
            if len(arrays) == 1:
                intensity = next(iter(arrays.values()))
            else:
                raise InputError("the .npz file has no array named 'intensity' (found: "
                                 + ", ".join(keys) + ")", path)
        mask = arrays.get("mask")
        if "unit_cell" in arrays:
            unit_cell = parse_unit_cell(arrays["unit_cell"].tolist(), path)
        if axes_spec is None and "axes" in arrays:
            names = [str(n) for n in np.ravel(arrays["axes"])]
            units = ([str(u) for u in np.ravel(arrays["units"])] if "units" in arrays
                     else ["1/angstrom"] * len(names))
            if len(units) != len(names):
                raise InputError("the .npz 'units' array must have one entry per axis", path)
            for name, unit in zip(names, units):
                if name not in arrays:
                    raise InputError(f"the .npz file lists axis '{name}' but has no array of "
                                     "that name", path)
                axes.append(RawAxis(name, np.asarray(arrays[name]).astype(np.float64)
                                     if np.asarray(arrays[name]).dtype.kind in "biuf"
                                     else np.asarray(arrays[name]), unit))
    if not isinstance(intensity, np.ndarray):
        raise InputError("the file holds no array", path)
    if intensity.ndim not in (2, 3):
        raise InputError(f"the intensity array has {intensity.ndim} dimension(s) "
                         f"{intensity.shape}; expected 2 (x, z) or 3 (x, y, z)", path)
    if intensity.dtype.kind not in "biuf":
        raise InputError(f"the intensity array holds {intensity.dtype} values; expected real "
                         "numbers (counts)", path)
    if axes_spec is not None:
        if len(axes_spec) != intensity.ndim:
            raise ParameterError(f"{len(axes_spec)} axes given for a {intensity.ndim}-D map "
                                 f"{intensity.shape} ({path})")
        axes = [_linspace_axis(spec, n, path) for spec, n in zip(axes_spec, intensity.shape)]
    if not axes:
        raise InputError("a NumPy map needs its axes: give one --axis NAME START STOP UNITS "
                         "per dimension (or store 'axes' and the axis arrays in the .npz)", path)
    if len(axes) != intensity.ndim:
        raise InputError(f"{len(axes)} axes for a {intensity.ndim}-D map {intensity.shape}", path)
    for ax in axes:
        if not isinstance(ax.values, np.ndarray) or ax.values.dtype.kind not in "f":
            raise InputError(f"axis '{ax.name}' does not hold numbers", path)
    return RawMap(intensity=intensity, mask=mask, axes=axes, unit_cell=unit_cell,
                   where="(NumPy array)")

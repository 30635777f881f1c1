"""A map as a reader found it (:class:`RawMap`), validated and brought to the
canonical order of :class:`~nanotools.io.ReciprocalSpaceMap`
(:func:`canonical_map`): in-plane axes first, out-of-plane last, every axis
increasing, q in 1/angstrom.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .maps import ReciprocalSpaceMap
from .orientation import guess_out_of_plane

__all__ = ["RawAxis", "RawMap", "parse_unit_cell", "canonical_map", "hkl_index", "axis_kind"]


# Axis names that say "out-of-plane" (compared lower-case, without '_', '-',
# spaces): q_z, Ql (r.l.u. of a (00l) film), L, q_perp, ...
_OOP_NAMES = {"qz", "ql", "l", "qperp", "qoop", "outofplane", "qoutofplane", "qnormal", "kz"}
_INPLANE_ORDER = {"qx": 0, "h": 0, "qh": 0, "qpar": 0, "qip": 0, "x": 0,
                  "qy": 1, "k": 1, "qk": 1, "y": 1}
_RLU_CELL_INDEX = {"h": 0, "qh": 0, "k": 1, "qk": 1, "l": 2, "ql": 2}
_MIN_POINTS = 4  # an axis with fewer points cannot hold a peak and its width


def _norm_name(name: str) -> str:
    return "".join(ch for ch in str(name).lower() if ch.isalnum())


def _unit_kind(units: str | None):
    """Classify an axis' ``units`` string.

    Returns ``("q", factor)`` (multiply to get 1/angstrom), ``("rlu", None)``
    or ``None`` when the string is not a reciprocal length.
    """
    if units is None:
        return None
    u = str(units).strip().lower().replace(" ", "").replace("ångström", "angstrom")
    u = u.replace("å", "angstrom").replace("**", "^").replace("inverse", "1/")
    if u in {"1/angstrom", "angstrom^-1", "angstrom-1", "1/a", "a^-1", "a-1", "1/ang",
             "ang^-1", "1/angstroms", "angstroms^-1", "1/aa"}:
        return ("q", 1.0)
    if u in {"1/nm", "nm^-1", "nm-1", "1/nanometer", "1/nanometre"}:
        return ("q", 0.1)
    if u in {"rlu", "r.l.u.", "r.l.u", "reciprocallatticeunits", "reciprocallatticeunit"}:
        return ("rlu", None)
    return None


def hkl_index(name: str) -> int | None:
    """0, 1 or 2 for an axis named after H, K or L (``Qh``, ``K``, ``ql`` ...),
    else None."""
    return _RLU_CELL_INDEX.get(_norm_name(name))


def axis_kind(units: str | None) -> str | None:
    """``'q'`` (a reciprocal length), ``'rlu'``, ``'degrees'`` (an angle) or
    None (unknown or missing) for an axis' ``units`` string."""
    kind = _unit_kind(units)
    if kind is not None:
        return kind[0]
    if units is not None and str(units).strip().lower() in ("deg", "degree", "degrees", "°"):
        return "degrees"
    return None


@dataclass
class RawAxis:
    """One axis as a reader found it: dataset ``name``, its ``values`` (any
    order, any reciprocal unit), ``units`` (None if the file gives none),
    NeXus ``long_name`` and nxrefine's ``scaling_factor`` (1/angstrom per
    r.l.u., i.e. 2 pi a*; None if the file gives none)."""

    name: str
    values: np.ndarray
    units: str | None
    long_name: str = ""
    scaling_factor: float | None = None


@dataclass
class RawMap:
    """A map as found in a file, before validation and reordering."""

    intensity: Any
    mask: Any
    axes: list
    unit_cell: tuple | None = None
    out_of_plane_hint: Any = None
    metadata: dict = field(default_factory=dict)
    stored: dict = field(default_factory=dict)  # what write_map stored verbatim
    where: str = ""


def parse_unit_cell(value, path) -> tuple:
    """``'a,b,c'``, one number (cubic) or a sequence -> (a, b, c) in angstrom."""
    from ..errors import ParameterError

    if isinstance(value, str):
        parts = [p for p in value.replace(";", ",").replace(" ", ",").split(",") if p]
    else:
        parts = list(np.ravel(np.asarray(value, dtype=object)))
    try:
        numbers = [float(p) for p in parts]
    except (TypeError, ValueError):
        raise ParameterError(f"unit_cell must be 'a,b,c' in angstrom, got {value!r}") from None
    if len(numbers) == 1:
        numbers = numbers * 3
    if len(numbers) not in (3, 6) or not all(np.isfinite(numbers[:3])) or min(numbers[:3]) <= 0:
        raise ParameterError(f"unit_cell must be three positive lengths 'a,b,c' in angstrom, "
                             f"got {value!r}")
    return tuple(numbers)


def _texture_axis_first(intensity: np.ndarray, valid: np.ndarray, inplane: list,
                        names: list) -> tuple:
    """The two in-plane axes of a 3-D map whose names do not say which is x:
    the one along which the texture's satellites run first (every later
    stage measures the period along the first axis), file order where both
    or neither show satellites.

    Returns ``(inplane, why)``; ``why`` is empty where the order is kept.
    """
    from ..preprocess.measure import satellite_comb  # preprocess imports io

    data = np.where(valid, intensity, 0.0)
    combs = [satellite_comb(data, ~valid, axis=a) for a in inplane]
    found = [c is not None for c in combs]
    if found[1] and not found[0]:
        inplane = inplane[::-1]
    if found[0] == found[1]:
        return inplane, ""
    return inplane, (f"data: the satellites run along '{names[inplane[0]]}', taken as the "
                     f"first in-plane axis (x), '{names[inplane[1]]}' as y")


def _out_of_plane_by_elimination(intensity: np.ndarray, valid: np.ndarray, q_axes: list,
                                 names: list) -> tuple:
    """The out-of-plane axis of a map of an ``(h0l)``-type reflection, where
    neither the peak's distance from the origin nor the fringes tell
    (:func:`~nanotools.io.orientation.guess_out_of_plane`): an axis on which
    the Bragg peak sits at ``q = 0`` is in-plane (a film's reflection always
    has ``l != 0``), so is the axis the texture's satellites run along; the
    axis left is out-of-plane. ``(None, "")`` unless exactly one is left
    (independent stress model, draws 35 and 87: the file's last axis, an
    in-plane one, had been assumed).
    """
    from ..preprocess.measure import satellite_comb  # preprocess imports io

    ndim = intensity.ndim
    data = np.where(valid, intensity, 0.0)
    peak = np.unravel_index(int(np.argmax(data)), data.shape)
    qpeak = np.array([abs(float(q[p])) for q, p in zip(q_axes, peak)])
    at_zero = [a for a in range(ndim) if qpeak[a] < 0.1 * qpeak.max()]
    if len(at_zero) != ndim - 2:
        return None, ""
    rest = [a for a in range(ndim) if a not in at_zero]
    combs = [satellite_comb(data, ~valid, axis=a) is not None for a in rest]
    if sum(combs) != 1:
        return None, ""
    texture, oop = (rest[0], rest[1]) if combs[0] else (rest[1], rest[0])
    zero = "".join(f"the Bragg peak sits at q = {qpeak[a]:.3g} 1/angstrom along '{names[a]}' "
                   "(in-plane: a film's reflection has l != 0) and " for a in at_zero)
    return oop, (f"data: {zero}the satellites run along '{names[texture]}' (in-plane), so "
                 f"'{names[oop]}' is out-of-plane")


def canonical_map(raw: RawMap, path, *, unit_cell=None, out_of_plane=None) -> ReciprocalSpaceMap:
    """Validate a raw map and bring it to the canonical order.

    Parameters
    ----------
    raw
        What a reader (:func:`~nanotools.io.nexus.read_nexus`,
        :func:`~nanotools.io.npy.read_numpy`) found.
    path
        The file, named in error messages.
    unit_cell, out_of_plane
        As for :func:`nanotools.io.read_map`.

    Returns
    -------
    ReciprocalSpaceMap
        See :func:`nanotools.io.read_map` (which calls this), also for the
        errors raised and the warnings given.
    """
    import warnings

    from ..errors import InputError, ParameterError

    intensity = np.asarray(raw.intensity)
    shape = intensity.shape
    ndim = intensity.ndim
    if min(shape) < _MIN_POINTS:
        raise InputError(f"the map {shape} is too small: every axis needs at least "
                         f"{_MIN_POINTS} points", path)
    names = [ax.name for ax in raw.axes]
    if len(set(names)) != len(names):
        raise InputError(f"axis names repeat: {names}", path)

    # --- axes: length, finite, monotonic, units -> absolute q (1/angstrom)
    cell = parse_unit_cell(unit_cell, path) if unit_cell not in (None, "") else raw.unit_cell
    q_axes = []
    conversions = []
    for i, ax in enumerate(raw.axes):
        values = np.asarray(ax.values, dtype=np.float64)
        if values.ndim != 1:
            raise InputError(f"axis '{ax.name}' is not 1-D (shape {values.shape})", path)
        if values.size == shape[i] + 1:  # NeXus histogram: bin edges -> centres
            values = 0.5 * (values[1:] + values[:-1])
        if values.size != shape[i]:
            raise InputError(f"axis '{ax.name}' has {values.size} values but the signal has "
                             f"{shape[i]} along dimension {i}", path)
        if not np.all(np.isfinite(values)):
            raise InputError(f"axis '{ax.name}' holds NaN or infinite values", path)
        step = np.diff(values)
        if not (np.all(step > 0) or np.all(step < 0)):
            raise InputError(f"axis '{ax.name}' is not monotonic (its values must all increase "
                             "or all decrease)", path)
        kind = _unit_kind(ax.units)
        if kind is None:
            label = f"{ax.name} {ax.long_name}".lower()
            if ax.units is None and (_norm_name(ax.name) in _RLU_CELL_INDEX
                                     and ("r.l.u" in label or "rlu" in label
                                          or _norm_name(ax.name).startswith("q")
                                          or _norm_name(ax.name) in ("h", "k", "l"))):
                kind = ("rlu", None)  # NXrefine writes Qh/Qk/Ql with no units attribute
                conversions.append(f"'{ax.name}' has no units; taken as r.l.u. from its name")
            elif ax.units is None:
                raise InputError(f"axis '{ax.name}' has no 'units' attribute; expected "
                                 "1/angstrom or rlu", path)
            else:
                raise InputError(f"axis '{ax.name}' has units '{ax.units}'; expected 1/angstrom "
                                 "(or 1/nm) or rlu", path)
        if kind[0] == "rlu" and ax.scaling_factor and unit_cell in (None, ""):
            # nxrefine's own 2 pi a* (exact for any cell, unlike 2 pi / a)
            values = values * ax.scaling_factor
            conversions.append(f"'{ax.name}' r.l.u. x scaling_factor {ax.scaling_factor:.6g} "
                               "1/angstrom")
        elif kind[0] == "rlu":
            which = _RLU_CELL_INDEX.get(_norm_name(ax.name))
            if which is None:
                raise InputError(f"axis '{ax.name}' is in r.l.u. but its name does not say "
                                 "whether it is H, K or L", path)
            if cell is None:
                raise InputError(f"axis '{ax.name}' is in r.l.u. and no lattice constants are "
                                 "known: give -p unit_cell a,b,c (angstrom) or store an "
                                 "NXsample unit_cell in the file", path)
            if len(cell) == 6 and any(abs(angle - 90.0) > 1e-6 for angle in cell[3:]):
                warnings.warn(f"the unit cell {cell} is not orthogonal; q is computed as "
                              "2 pi h / a per axis (orthogonal approximation)", stacklevel=3)
            values = 2 * np.pi * values / cell[which]
            conversions.append(f"'{ax.name}' r.l.u. x 2 pi / {cell[which]:g} angstrom")
        else:
            values = values * kind[1]
        q_axes.append(values)

    # --- mask and intensity values
    if raw.mask is None:
        mask = np.zeros(shape, bool)
    else:
        mask = np.asarray(raw.mask)
        if mask.shape != shape:
            raise InputError(f"the mask has shape {mask.shape} but the signal has {shape}", path)
        if mask.dtype.kind not in "biu":
            raise InputError(f"the mask holds {mask.dtype} values; expected booleans "
                             "(True = not measured)", path)
        mask = mask.astype(bool)
    intensity = intensity.astype(np.float64)  # copies: the caller's array is not touched
    weights = raw.stored.get("weights")
    if weights is not None:  # NXrefine stores summed counts and their weights
        good = np.isfinite(weights) & (weights > 0)
        intensity = np.where(good, intensity / np.where(good, weights, 1.0), np.nan)
    finite = np.isfinite(intensity)
    if not finite.any():
        raise InputError("the intensity is NaN (or infinite) everywhere", path)
    n_inf = int(np.isinf(intensity).sum())
    if n_inf:
        warnings.warn(f"{n_inf} infinite intensity values masked", stacklevel=3)
    mask = mask | ~finite
    intensity[~finite] = 0.0
    # a masked pixel's value is never used, but must not be a negative intensity
    intensity[mask & (intensity < 0)] = 0.0
    measured = ~mask
    if not measured.any():
        raise InputError("every pixel is masked: nothing was measured", path)
    values = intensity[measured]
    vmax = float(values.max())
    if vmax <= 0:
        if vmax == 0 and float(values.min()) == 0:
            raise InputError("the intensity is zero everywhere", path)
        raise InputError("the intensity is negative (or zero) everywhere", path)
    negative = values < 0
    if negative.any():
        weight = float(-values[negative].sum()) / float(values[~negative].sum())
        if weight > 0.05:
            raise InputError(f"{int(negative.sum())} pixels ({100 * negative.mean():.1f}%) have "
                             f"negative intensity (down to {values.min():.3g}): not counts; "
                             "log-scaled or signed data cannot be imaged", path)
        warnings.warn(f"{int(negative.sum())} pixels have negative intensity (down to "
                      f"{values.min():.3g}; background-subtracted?); set to zero", stacklevel=3)
        intensity[measured & (intensity < 0)] = 0.0
        values = intensity[measured]
    if float(values.min()) == vmax:
        raise InputError(f"the intensity is constant ({vmax:g}) everywhere: no Bragg peak", path)
    at_max = measured & (intensity == vmax)
    n_at_max = int(at_max.sum())
    if n_at_max >= 3 and vmax >= 100:
        # A detector that saturates clips the peak at one value; those pixels
        # are wrong, so they must stay free in the Fourier projection.
        warnings.warn(f"{n_at_max} pixels sit at the maximum value {vmax:g}: the Bragg peak "
                      "looks saturated; they are masked", stacklevel=3)
        mask = mask | at_max
        intensity[at_max] = 0.0

    # --- which axis is out-of-plane
    oop = None
    reason = ""
    if out_of_plane is not None:
        if isinstance(out_of_plane, (int, np.integer)) and not isinstance(out_of_plane, bool):
            if not -ndim <= int(out_of_plane) < ndim:
                raise ParameterError(f"out_of_plane axis {out_of_plane} does not exist in a "
                                     f"{ndim}-D map ({path})")
            oop = int(out_of_plane) % ndim
        elif str(out_of_plane) in names:
            oop = names.index(str(out_of_plane))
        else:
            raise ParameterError(f"out_of_plane axis '{out_of_plane}' is not one of "
                                 f"{', '.join(names)} ({path})")
        reason = f"chosen by the user: '{names[oop]}'"
    if oop is None and isinstance(raw.out_of_plane_hint, str) and raw.out_of_plane_hint in names:
        oop = names.index(raw.out_of_plane_hint)
        reason = f"metadata: the NXdata attribute out_of_plane_axis names '{names[oop]}'"
    if oop is None:
        matches = [i for i, n in enumerate(names) if _norm_name(n) in _OOP_NAMES]
        if len(matches) == 1:
            oop = matches[0]
            reason = f"metadata: the axis name '{names[oop]}' means out-of-plane"
    if oop is None:
        oop, reason = guess_out_of_plane(intensity, ~mask, q_axes, names)
        if oop is None:
            oop, why = _out_of_plane_by_elimination(intensity, ~mask, q_axes, names)
            reason = why or reason
        if oop is None:
            oop = ndim - 1
            reason = (f"assumed the file's last axis '{names[oop]}': " + reason)
            warnings.warn(f"cannot tell the out-of-plane axis; {reason}. Name it with "
                          "--out-of-plane if this is wrong", stacklevel=3)

    # --- reorder: in-plane axes (qx/h before qy/k, else file order), oop last
    inplane = [i for i in range(ndim) if i != oop]
    if "axis_names" not in raw.stored:  # a file from write_map keeps its order
        inplane.sort(key=lambda i: (_INPLANE_ORDER.get(_norm_name(names[i]), 5), i))
        ranks = {_INPLANE_ORDER.get(_norm_name(names[i]), 5) for i in inplane}
        if len(inplane) == 2 and len(ranks) == 1:
            inplane, why = _texture_axis_first(intensity, ~mask, inplane, names)
            if why:
                reason = f"{reason}; {why}"
    order = inplane + [oop]
    intensity = np.transpose(intensity, order)
    mask = np.transpose(mask, order)
    q_out = []
    flipped = []
    for new, old in enumerate(order):
        qa = q_axes[old]
        if qa[0] > qa[-1]:
            intensity = np.flip(intensity, axis=new)
            mask = np.flip(mask, axis=new)
            qa = qa[::-1]
            flipped.append(names[old])
        q_out.append(np.ascontiguousarray(qa))
    intensity = np.ascontiguousarray(intensity)
    mask = np.ascontiguousarray(mask)

    if "metadata" in raw.stored:
        metadata = raw.stored["metadata"]
    else:
        metadata = dict(raw.metadata)
        metadata["file_axes"] = tuple(names)
        if flipped:
            metadata["flipped_axes"] = tuple(flipped)
        if conversions:
            metadata["unit_conversion"] = tuple(conversions)
        if cell is not None:
            metadata["unit_cell"] = tuple(float(c) for c in cell)
        metadata["data_path"] = raw.where
    axis_names = raw.stored.get("axis_names") or tuple(names[i] for i in order)
    return ReciprocalSpaceMap(
        intensity=intensity, mask=mask, q=tuple(q_out), axis_names=tuple(axis_names),
        out_of_plane_reason=raw.stored.get("nt_out_of_plane_reason", reason),
        source=raw.stored.get("nt_source", str(path)), metadata=metadata)

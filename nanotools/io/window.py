"""One reflection's window out of an H, K, L volume, read from disk alone.

A QM2 volume holds 10^8-10^9 voxels and many reflections; nanotools images
one. :func:`plan_window` finds the Bragg peak near the requested ``H K L``
(reading a box of +-0.5 r.l.u. around it, strided if that box is large),
sizes the window from the texture (how far the signal around the peak
stands out of the background along each axis) or from ``window_rlu``, and
decides how a 3-D window becomes the map to phase. :func:`read_window`
then reads that hyperslab and nothing else, so peak memory follows the
window, not the file.

The reduction (``reduce``): where the satellites lie along one in-plane
axis only (a stripe texture: the other in-plane axis shows just the peak's
own width), the window is reduced to the (in-plane, L) plane, by summing
over the narrow axis (``sum``, the default then) or taking the plane through
the peak (``slice``); otherwise it is phased in 3-D (``none``).
"""
from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .canonical import RawAxis, RawMap, axis_kind, canonical_map, hkl_index
from .maps import ReciprocalSpaceMap
from .nexus import MAX_WHOLE_VOXELS
from .nxrefine import Volume, describe_volume, read_block

__all__ = ["Window", "plan_window", "read_window", "parse_hkl", "REDUCTIONS"]

REDUCTIONS = ("auto", "slice", "sum", "none")
SEARCH_HALF_RLU = 0.5      # half the distance to the next integer reflection
SEARCH_MAX_VOXELS = 2 ** 23  # the search box is strided beyond this (64 MB)
MIN_HALF_STEPS = 8         # a window narrower than 17 points holds no texture
STRIPE_RATIO = 3.0         # in-plane extents this unequal: a stripe texture
MARGIN = 1.2               # the window reaches 20 % beyond the last signal


@dataclass
class Window:
    """Where one reflection's window lies in a volume, and how to reduce it.

    Attributes
    ----------
    hkl
        The reflection asked for.
    peak_index
        The Bragg peak found, index per map axis (file order).
    peak_hkl
        The peak's position in r.l.u., one value per map axis (file order).
    slices
        The window, one ``slice`` per map axis (file order).
    half_width_rlu
        Half the window's width per map axis (r.l.u.).
    extent_q
        How far the signal reaches from the peak per map axis (1/angstrom).
    sized_by
        How the window was sized (the texture, or ``window_rlu``).
    reduce
        ``'none'`` (phase the window as it is), ``'slice'`` or ``'sum'``.
    reduce_axis
        The map axis (file order) removed by ``slice``/``sum``, or None.
    notes
        Sentences for the result's notes.
    """

    hkl: tuple
    peak_index: tuple
    peak_hkl: tuple
    slices: tuple
    half_width_rlu: tuple
    extent_q: tuple
    sized_by: str
    reduce: str
    reduce_axis: int | None
    notes: list = field(default_factory=list)

    def as_dict(self) -> dict:
        """Plain values (for JSON and the map's metadata)."""
        return dict(hkl=[float(v) for v in self.hkl],
                    peak_index=[int(i) for i in self.peak_index],
                    peak_hkl=[float(v) for v in self.peak_hkl],
                    index=[[int(s.start), int(s.stop)] for s in self.slices],
                    half_width_rlu=[float(v) for v in self.half_width_rlu],
                    extent_q=[float(v) for v in self.extent_q], sized_by=self.sized_by,
                    reduce=self.reduce, reduce_axis=self.reduce_axis)


def parse_hkl(value) -> tuple:
    """``'0 0 2'``, ``'0,0,2'`` or three numbers -> ``(H, K, L)`` floats."""
    from ..errors import ParameterError

    parts = value.replace(",", " ").split() if isinstance(value, str) else list(value)
    try:
        hkl = tuple(float(p) for p in parts)
    except (TypeError, ValueError):
        raise ParameterError(f"--hkl needs three numbers H K L, got {value!r}") from None
    if len(hkl) != 3 or not all(math.isfinite(v) for v in hkl):
        raise ParameterError(f"--hkl needs three numbers H K L, got {value!r}")
    return hkl


def _centres(values: np.ndarray, n: int) -> np.ndarray:
    values = np.asarray(values, float)
    return 0.5 * (values[1:] + values[:-1]) if values.size == n + 1 else values


def _rlu_axes(volume: Volume) -> list:
    """``(hkl index, r.l.u. values)`` per map axis (file order)."""
    from ..errors import InputError

    out = []
    for ax, n in zip(volume.axes, volume.map_shape):
        which = hkl_index(ax.name)
        kind = axis_kind(ax.units)
        if which is None or kind not in ("rlu", None):
            names = ", ".join(f"'{a.name}' ({a.units or 'no units'})" for a in volume.axes)
            raise InputError(f"--hkl needs H, K, L axes in r.l.u.; the axes are {names}",
                             volume.path)
        out.append((which, _centres(ax.values, n)))
    if len({w for w, _ in out}) != len(out):
        raise InputError("two axes are named after the same Miller index: "
                         + ", ".join(a.name for a in volume.axes), volume.path)
    return out


def _q_per_rlu(ax: RawAxis, which: int, cell) -> float | None:
    if ax.scaling_factor:
        return float(ax.scaling_factor)
    if cell is not None and len(cell) >= 3:
        return 2 * np.pi / float(cell[which])
    return None


def _index_range(values: np.ndarray, lo: float, hi: float) -> tuple:
    """First and one-past-last index of ``values`` (monotonic) within [lo, hi]."""
    inside = np.nonzero((values >= min(lo, hi)) & (values <= max(lo, hi)))[0]
    if inside.size == 0:
        return None
    return int(inside.min()), int(inside.max()) + 1


def _smooth(n: int) -> bool:
    for p in (2, 3, 5):
        while n % p == 0:
            n //= p
    return n == 1


def _fast_slice(peak: int, half: int, n: int, cap: int | None = None) -> slice:
    """``peak +- half`` as a window centred on the peak whose length the FFT
    is fast at (2, 3, 5-smooth: phasing runs thousands of FFTs of it, and
    preprocessing crops the map symmetrically about the peak, so an
    off-centre window would be cut to an arbitrary length); shrunk, still
    centred, where the volume (or ``cap``, a half-length) ends first."""
    want = 2 * half + 1
    room = 2 * min(peak, n - 1 - peak) + 1
    if cap is not None:  # no longer than the measured planes reach
        room = min(room, max(2 * cap + 1, 1))
    length = want if want <= room else room
    if length == want:
        while not _smooth(length):
            length += 1
        if length > room:
            length = room
    while length > 1 and not _smooth(length):
        length -= 1
    start = peak - length // 2
    return slice(start, start + length)


def plan_window(volume: Volume, hkl, *, scan: int | None = None, window_rlu: float = 0.0,
                reduce: str = "auto", out_of_plane: str | None = None) -> Window:
    """Find the Bragg peak near ``hkl`` and plan the window around it.

    Parameters
    ----------
    volume
        From :func:`~nanotools.io.nxrefine.describe_volume`; its map axes
        must be H, K, L (r.l.u.).
    hkl
        ``(H, K, L)`` of the reflection (or a string ``'H K L'``).
    scan
        Which map of a series.
    window_rlu
        Full width of the window along every axis (r.l.u.); 0 sizes it from
        the texture.
    reduce
        ``'auto'``, ``'slice'``, ``'sum'`` or ``'none'`` (see the module).
    out_of_plane
        Name of the out-of-plane axis (default: the L axis).

    Returns
    -------
    Window

    Raises
    ------
    InputError
        The axes are not H, K, L; the reflection lies outside the volume; no
        Bragg peak stands out of the background near it.
    ParameterError
        A bad ``reduce`` or ``window_rlu``.
    """
    from scipy import ndimage

    from ..errors import InputError, ParameterError

    hkl = parse_hkl(hkl)
    if reduce not in REDUCTIONS:
        raise ParameterError(f"reduce must be one of {', '.join(REDUCTIONS)}, got {reduce!r}")
    if not (window_rlu >= 0 and math.isfinite(window_rlu)):
        raise ParameterError(f"window_rlu must be >= 0 (0 = from the texture), got {window_rlu!r}")
    rlu = _rlu_axes(volume)
    ndim = len(rlu)
    label = " ".join(f"{v:g}" for v in hkl)
    # --- the search box around the nominal position
    half_search = window_rlu / 2 if window_rlu > 0 else SEARCH_HALF_RLU
    box = []
    for which, values in rlu:
        rng = _index_range(values, hkl[which] - half_search, hkl[which] + half_search)
        if rng is None or not (min(values[0], values[-1]) - half_search <= hkl[which]
                               <= max(values[0], values[-1]) + half_search):
            ranges = ", ".join(f"{a.name} [{_centres(a.values, n)[0]:.4g}, "
                               f"{_centres(a.values, n)[-1]:.4g}]"
                               for a, n in zip(volume.axes, volume.map_shape))
            raise InputError(f"the reflection ({label}) lies outside the volume ({ranges} "
                             "r.l.u.)", volume.path)
        box.append(rng)
    n_box = int(np.prod([b - a for a, b in box]))
    stride = max(1, math.ceil((n_box / SEARCH_MAX_VOXELS) ** (1 / ndim)))
    data, mask = read_block(volume, tuple(slice(a, b, stride) for a, b in box), scan=scan)
    valid = np.isfinite(data) & (True if mask is None else ~mask)
    data = np.where(valid, data, 0.0)
    # a 3-point median removes hot pixels and single-voxel noise spikes
    smooth = ndimage.median_filter(data, size=3, mode="nearest")
    good = smooth[valid] if valid.any() else smooth.ravel()
    background = float(np.median(good))
    noise = float(1.4826 * np.median(np.abs(good - background)))
    peak = np.unravel_index(int(np.argmax(smooth)), smooth.shape)
    top = float(smooth[peak])
    floor = max(background, noise, 1e-12 * max(top, 1e-300))
    if not top > 10 * floor:
        raise InputError(f"no Bragg peak near ({label}): within +-{half_search:g} r.l.u. the "
                         f"strongest signal is {top:.3g}, {top / floor:.1f} x the background "
                         f"{floor:.3g}", volume.path)
    peak_index = tuple(int(a + p * stride) for (a, _), p in zip(box, peak))
    # --- how far the signal reaches along each axis (in box steps)
    threshold = background + max(5 * noise, 1e-4 * (top - background))
    reach = []
    for axis in range(ndim):
        others = tuple(d for d in range(ndim) if d != axis)
        profile = smooth.max(axis=others) if others else smooth
        above = np.nonzero(profile > threshold)[0]
        reach.append(int(max(peak[axis] - above.min(), above.max() - peak[axis])) * stride)
    steps = [abs(float(np.median(np.diff(v)))) if v.size > 1 else 1.0 for _, v in rlu]
    extent_q = []
    for (which, _), ax, r, step in zip(rlu, volume.axes, reach, steps):
        factor = _q_per_rlu(ax, which, volume.unit_cell)
        extent_q.append(r * step * (factor if factor else 1.0))
    # --- the window
    caps = [None] * ndim
    if window_rlu > 0:
        halves = [max(MIN_HALF_STEPS // 2, int(round(window_rlu / 2 / s))) for s in steps]
        sized_by = f"-p window_rlu {window_rlu:g}"
    else:
        halves = [max(MIN_HALF_STEPS, int(math.ceil(MARGIN * r)) + 2) for r in reach]
        # planes beyond the last measured one on both sides carry nothing:
        # they would only add unconstrained pixels to the phasing
        for axis in range(ndim):
            others = tuple(d for d in range(ndim) if d != axis)
            planes = np.nonzero(valid.any(axis=others) if others else valid)[0]
            if planes.size:
                measured = max(peak[axis] - planes.min(), planes.max() - peak[axis]) * stride
                halves[axis] = max(MIN_HALF_STEPS, min(halves[axis], int(measured)))
                caps[axis] = max(MIN_HALF_STEPS, int(measured))
        sized_by = (f"the texture: signal above {threshold:.3g} (the background {background:.3g} "
                    f"+ max(5 x noise, 1e-4 x peak)) reaches "
                    + ", ".join(f"+-{r * s:.3g}" for r, s in zip(reach, steps))
                    + " r.l.u. along " + ", ".join(a.name for a in volume.axes)
                    + f"; window {MARGIN:g} x that + 2 steps, centred, of an FFT-friendly "
                    "length")
    slices = tuple(_fast_slice(p, h, n, c)
                   for p, h, n, c in zip(peak_index, halves, volume.map_shape, caps))
    half_rlu = tuple(h * s for h, s in zip(halves, steps))
    peak_hkl = tuple(float(v[p]) for (_, v), p in zip(rlu, peak_index))
    notes = [f"window around ({label}): Bragg peak found at "
             + ", ".join(f"{a.name} = {v:.4g}" for a, v in zip(volume.axes, peak_hkl))
             + f" r.l.u.; window {tuple(s.stop - s.start for s in slices)} voxels sized by "
             + sized_by + (f" (peak searched every {stride} voxels)" if stride > 1 else "")]
    # --- 2-D reduction or 3-D phasing
    reduce_axis = None
    chosen = reduce
    if ndim == 3:
        names = [a.name for a in volume.axes]
        if out_of_plane is not None and str(out_of_plane) in names:
            oop = names.index(str(out_of_plane))
        else:
            oop = next(i for i, (w, _) in enumerate(rlu) if w == 2) \
                if any(w == 2 for w, _ in rlu) else ndim - 1
        inplane = [i for i in range(ndim) if i != oop]
        wide, narrow = sorted(inplane, key=lambda i: -extent_q[i])
        ratio = extent_q[wide] / max(extent_q[narrow], 1e-300)
        if reduce == "auto":
            chosen = "sum" if ratio >= STRIPE_RATIO else "none"
            why = (f"the signal reaches {extent_q[wide]:.3g} 1/angstrom along '{names[wide]}' "
                   f"and {extent_q[narrow]:.3g} along '{names[narrow]}' ({ratio:.1f} x)")
            if chosen == "sum":
                notes.append(f"reduce=sum (chosen from the data): {why}, a stripe texture: "
                             f"summed over '{names[narrow]}' to the ('{names[wide]}', "
                             f"'{names[oop]}') plane; -p reduce none phases in 3-D")
            else:
                notes.append(f"reduce=none (chosen from the data): {why}, less than "
                             f"{STRIPE_RATIO:g} x: phased in 3-D; -p reduce sum or slice "
                             "reduces to a plane")
        elif reduce in ("slice", "sum"):
            notes.append(f"reduce={reduce} (asked for): "
                         + (f"the plane '{names[narrow]}' = {peak_hkl[narrow]:.4g} through the "
                            "peak" if reduce == "slice" else f"summed over '{names[narrow]}'")
                         + f" (the in-plane axis of smaller extent, {extent_q[narrow]:.3g} vs "
                         f"{extent_q[wide]:.3g} 1/angstrom)")
        else:
            notes.append("reduce=none (asked for): the window is phased in 3-D")
        if chosen in ("slice", "sum"):
            reduce_axis = narrow
            # summed (or sliced) away: neither centred nor FFT-sized, all of the rod
            p, h, n = peak_index[narrow], halves[narrow], volume.map_shape[narrow]
            slices = tuple(slice(max(0, p - h), min(n, p + h + 1)) if i == narrow else s
                           for i, s in enumerate(slices))
    elif reduce in ("slice", "sum"):
        notes.append(f"reduce={reduce} ignored: the map is already 2-D")
        chosen = "none"
    else:
        chosen = "none"
    return Window(hkl=hkl, peak_index=peak_index, peak_hkl=peak_hkl, slices=slices,
                  half_width_rlu=half_rlu, extent_q=tuple(extent_q), sized_by=sized_by,
                  reduce=chosen, reduce_axis=reduce_axis, notes=notes)


def _series_metadata(volume: Volume, scan: int | None) -> dict:
    """The series variable of map ``scan`` as the metadata key the series
    report knows (``temperature_K`` ...), else the scan axis' own name."""
    meta = {}
    if volume.temperature_K is not None:
        meta["temperature_K"] = float(volume.temperature_K)
    if volume.scan_axis is None or scan is None:
        return meta
    ax = volume.scan_axis
    value = float(_centres(ax.values, volume.n_scans)[int(scan)])
    units = (ax.units or "").strip()
    if "temp" in ax.name.lower() or units in ("K", "kelvin", "C", "degC", "celsius"):
        meta["temperature_K"] = value + 273.15 if units in ("C", "degC", "celsius") else value
    else:
        meta[ax.name] = value
    meta["scan_index"] = int(scan)
    meta["scan_axis"] = ax.name
    return meta


def read_window(path: str | os.PathLike, hkl, *, data_path: str | None = None,
                scan: int | None = None, window_rlu: float = 0.0, reduce: str = "auto",
                unit_cell=None, out_of_plane: str | None = None) -> ReciprocalSpaceMap:
    """Cut the window around reflection ``hkl`` out of a volume file and
    return it as a map, reading only that window from disk.

    Parameters
    ----------
    path
        The volume (nxrefine wrapper, consolidated series, any NXdata with
        H, K, L axes in r.l.u.).
    hkl
        ``(H, K, L)``; None reads the whole map (of a series: map ``scan``).
    data_path
        HDF5 path of the NXdata group (default: the file's default).
    scan
        Which map of a series (index along its first axis).
    window_rlu, reduce, out_of_plane
        See :func:`plan_window`.
    unit_cell
        Lattice constants overriding the file's (see
        :func:`nanotools.io.read_map`).

    Returns
    -------
    ReciprocalSpaceMap
        2-D ``(in-plane, L)`` after ``slice``/``sum``, else 3-D, canonical
        order, q in 1/angstrom; ``metadata['window']`` says where the window
        lies, ``metadata['notes']`` how it was cut.

    Raises
    ------
    InputError, ParameterError
        As :func:`~nanotools.io.nxrefine.describe_volume` and
        :func:`plan_window`, and every check of
        :func:`nanotools.io.read_map` on the window.
    """
    from ..errors import InputError

    path = Path(path)
    volume = describe_volume(path, data_path)
    if hkl is None:  # one whole map of a series
        if int(np.prod(volume.map_shape)) > MAX_WHOLE_VOXELS:
            raise InputError(f"each map of the series {volume.map_shape} is too large to read "
                             "whole: give --hkl H K L to cut one reflection's window", path)
        full = tuple(slice(0, n) for n in volume.map_shape)
        win = Window(hkl=(), peak_index=(), peak_hkl=(), slices=full, half_width_rlu=(),
                     extent_q=(), sized_by="the whole map", reduce="none", reduce_axis=None)
    else:
        win = plan_window(volume, hkl, scan=scan, window_rlu=window_rlu, reduce=reduce,
                          out_of_plane=out_of_plane)
    index = list(win.slices)
    if win.reduce == "slice":
        index[win.reduce_axis] = win.peak_index[win.reduce_axis]  # one plane off the disk
    intensity, mask = read_block(volume, tuple(index), scan=scan)
    if mask is not None:
        intensity = np.where(mask, np.nan, intensity)
    if win.reduce == "sum":
        axis = win.reduce_axis
        measured = np.isfinite(intensity).sum(axis=axis)
        total = np.nansum(intensity, axis=axis)
        n = intensity.shape[axis]
        # scale partly measured lines up to the full width; unmeasured ones stay NaN
        intensity = np.where(measured > 0, total * n / np.maximum(measured, 1), np.nan)
    kept = [i for i in range(len(volume.axes))
            if not (win.reduce in ("slice", "sum") and i == win.reduce_axis)]
    axes = []
    for i in kept:
        ax = volume.axes[i]
        values = _centres(ax.values, volume.map_shape[i])[win.slices[i]]
        axes.append(RawAxis(ax.name, values, ax.units, ax.long_name, ax.scaling_factor))
    meta = _series_metadata(volume, scan)
    meta["window"] = win.as_dict()
    meta["notes"] = list(volume.notes) + list(win.notes)
    raw = RawMap(intensity=intensity, mask=None, axes=axes, unit_cell=volume.unit_cell,
                 metadata=meta, where=volume.group)
    return canonical_map(raw, path, unit_cell=unit_cell, out_of_plane=out_of_plane)

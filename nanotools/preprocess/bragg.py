"""Where the Bragg peak is (:func:`locate_bragg_peak`), from the lattice and
the satellites rather than the brightest pixel, and the substrate's peak and
truncation rod on the specular line (:func:`specular_rod_mask`).

Why not the brightest pixel: for a displacement wave of phase amplitude
``a`` the zeroth order has weight ``J0(a)**2`` and the first ``J1(a)**2``,
so above ``a = 1.43`` rad the first satellite is brighter; and a substrate
peak a few fringes from the film peak is often orders of magnitude brighter
than the film. In-plane, an epitaxial film shares the substrate's lattice:
``q_x = q_y = 0`` for a specular reflection, integer ``H, K`` in r.l.u.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from .measure import _FILL_NOISE, _comb_about_centre, _fill_from_support, _multiple, satellite_comb
from .peak import locate_peak
from .pixels import as_mask, fill_masked, parabola_vertex

__all__ = ["BraggPeak", "lattice_position", "locate_bragg_peak", "rod_line_z",
           "specular_rod_mask", "zeroth_order_z"]

#: A comb tooth further than this from the lattice position (pixels) means
#: the q axis is offset (a sample a little off the diffractometer's axis
#: puts the film's rod beside q_x = 0); the tooth nearest the lattice
#: position is then taken. The comb's line places its teeth within 0.3
#: pixel of a lattice position that is right (validation family, 40
#: draws), while a tolerance in satellite spacings (it was 0.15) left a
#: misalignment of 3 pixels on a 21-pixel spacing silently uncorrected.
_LATTICE_TOLERANCE_PX = 1.0

#: Two adjacent pixels of a resolution-limited peak hold this many times the
#: two pixels that flank them along q_z (3.5 or more for a Lorentzian of
#: half width 0.5 pixel or less; at most 2.3 for the central fringe of a
#: film sampled 2.6 times or more finely than its thickness).
_SHARP_RATIO = 3.0
#: Beside a gap only one flank is measured: a peak is as sharp when the
#: brightest measured pixel and its measured neighbour hold this many times
#: twice the next pixel out, and the counts fall on monotonically for two
#: pixels more (a truncation rod's tail; the fringes of a film sampled 2.6
#: times or more finely rise again within three pixels). Validation family
#: draws 0-99 (every side of the film peak not beside a gap): 1.5-3.6 for a
#: film's monotone fall, 5.6-24 for a substrate peak; draw 92's substrate
#: peak, half in a 3-row gap, 11.8.
_SHARP_RATIO_ONE_SIDED = 4.5


@dataclass
class RodLine:
    """The line through the centroids of the satellites' rods along ``q_z``
    (:func:`rod_line_z`).

    Attributes
    ----------
    z_px
        Its value at the zeroth order (pixels along the last axis).
    orders
        The orders it was fitted on.
    brightest
        The order whose rod holds the most counts.
    zeroth
        The zeroth order's rod along ``q_z`` (counts per row, its columns
        summed), or None where it is not measured.
    """

    z_px: float
    orders: np.ndarray
    brightest: int
    zeroth: np.ndarray | None = None

    name = "line through the centroids of the satellites' rods"

    @property
    def why(self) -> str:
        return f"{self.name} (orders {', '.join(str(k) for k in self.orders)}) at the zeroth order"


@dataclass
class BraggPeak:
    """The film's Bragg peak in a map and how it was found.

    Attributes
    ----------
    position_px
        Sub-pixel position per axis (pixels of the input map).
    reasons
        One line per axis: where the position came from.
    """

    position_px: tuple
    reasons: tuple

    @property
    def note(self) -> str:
        where = ", ".join(f"{p:.2f}" for p in self.position_px)
        # in 3-D both in-plane axes often have the same reason: say it once
        said = list(dict.fromkeys(self.reasons[:-1])) + list(self.reasons[-1:])
        if len(self.reasons) > 2 and len(said) == 2:
            said[0] += " (both in-plane axes)"
        return f"Bragg peak at pixel ({where}): " + "; ".join(said)


def lattice_position(q: np.ndarray, *, axis_name: str = "", metadata: dict | None = None):
    """Where the reciprocal lattice puts an in-plane Bragg position on one axis.

    An axis converted from r.l.u. (``metadata["unit_conversion"]`` names it,
    as :func:`nanotools.io.read_map` records) puts it at the integer ``H``
    (or ``K``) nearest the map's centre, ``q = 2 pi H / a``; an axis in
    absolute 1/angstrom at ``q = 0``, the specular rod. None when that ``q``
    is outside the map.

    Parameters
    ----------
    q
        The axis (1/angstrom, increasing), shape ``(n,)``.
    axis_name
        Its name in the file.
    metadata
        ``ReciprocalSpaceMap.metadata``.

    Returns
    -------
    ``(position_px, reason)`` or None.
    """
    q = np.asarray(q, float)
    metadata = metadata or {}
    target, reason = 0.0, "q = 0 on this absolute axis: the specular rod (lattice)"
    for line in metadata.get("unit_conversion", ()):
        found = re.match(r"'(.+)' r\.l\.u\. x 2 pi / ([0-9.eE+-]+) angstrom", str(line))
        if found and found.group(1) == axis_name:
            a = float(found.group(2))
            index = int(np.round(np.mean(q) * a / (2 * np.pi)))
            target = 2 * np.pi * index / a
            reason = f"{axis_name} = {index} r.l.u. (lattice, a = {a:g} angstrom)"
    if not q[0] <= target <= q[-1]:
        return None
    return float(np.interp(target, q, np.arange(len(q)))), reason


def _every_other(comb, about) -> bool:
    """Whether ``comb`` holds just the odd orders of ``about``: half as fine,
    first orders on both sides and a second order found (the teeth ``comb``
    skipped are there), ``comb``'s teeth an odd number of ``about``'s
    spacings from its centre (within a quarter spacing). Laid about a wrong
    centre, the comb finds side lobes instead, finer by other factors, or
    the satellites themselves as its odd orders with nothing at its even
    ones (stress draws with a misaligned q axis: 238)."""
    orders = set(about.orders)
    if (_multiple(comb.spacing_px / about.spacing_px) != 2 or not {1, -1} <= orders
            or not {2, -2} & orders):
        return False
    offset = (comb.origin_px - about.origin_px) / about.spacing_px
    odd = 2 * np.round((offset - 1) / 2) + 1
    return bool(abs(offset - odd) < 0.25)


#: A tooth is the centroid of the satellites in its own symmetric window
#: when the two are within this share of a spacing (:func:`_zeroth_tooth`).
_CENTRED_SPACINGS = 0.25


def _zeroth_tooth(comb, n: int) -> float:
    """The comb tooth of the zeroth order: the tooth that is the centroid of
    the satellites' intensity in a window symmetric about itself. The first
    moment of ``|F(q_x)|**2`` is the mean phase gradient along ``x``, zero
    for a periodic displacement, so the centroid sits on the zeroth order
    whichever satellite is brightest. Every tooth with a spacing and two
    pixels of map on both sides (or as much as the roomiest tooth has) is
    tried whose window holds at least half the counts (all, where none
    does); of those within :data:`_CENTRED_SPACINGS` of their own window's
    centroid, the one whose window holds the most counts is taken (else the
    one nearest to being centred). Iterating from the brightest tooth stopped on
    a first order brighter than the zeroth, its window cut unevenly by the
    map's edge (stress draw 196: a whole spacing off)."""
    profile = np.nan_to_num(comb.profile)
    profile = np.clip(profile - np.percentile(profile, 5), 0.0, None)
    spacing = abs(comb.spacing_px)
    teeth = comb.origin_px + comb.spacing_px * np.arange(
        np.floor(-comb.origin_px / spacing) - 1, np.ceil((n - comb.origin_px) / spacing) + 2)
    teeth = teeth[(teeth >= 0) & (teeth <= n - 1)]
    room = np.minimum(teeth, n - 1 - teeth)
    # room for the first orders on both sides (a narrow map: the roomiest tooth)
    need = min(spacing + 2.0, float(room.max()))
    tried = []  # (miss in spacings, counts in the window, tooth)
    for centre, half in zip(teeth, room.astype(int)):
        if half < need - 1:
            continue
        lo, hi = int(round(centre)) - half, int(round(centre)) + half
        x = np.arange(lo, hi + 1)
        total = float(profile[lo:hi + 1].sum())
        centroid = float(np.sum(x * profile[lo:hi + 1]) / max(total, 1e-300))
        tried.append((abs(centroid - centre) / spacing, total, float(centre)))
    # a window holding little of the satellites is centred on anything (the
    # noise beside a map's edge: stress draw 137), and a first order between
    # a weak zeroth and a weak second order is centred in its own narrow
    # window (282): of the windows holding at least half the counts, the
    # one with the most among those centred within a quarter spacing, else
    # the one nearest to being centred
    total = float(profile.sum())
    tried = [t for t in tried if t[1] >= 0.5 * total] or tried
    centred = [t for t in tried if t[0] < _CENTRED_SPACINGS]
    if centred:
        return max(centred, key=lambda t: t[1])[2]
    return min(tried)[2]


def _z_profile(intensity: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """The rods of ``intensity`` summed over every in-plane pixel, shape
    ``(nz,)``: masked pixels filled from their neighbours, rows masked
    across (a detector gap along ``q_z``) filled from the film's extent
    where the counts fix it, else by a line."""
    others = tuple(range(intensity.ndim - 1))
    filled = fill_masked(intensity, mask)
    profile = filled.sum(axis=others)
    rows_masked = mask.mean(axis=others) > 0.5  # a gap along z: filled
    z = np.arange(len(profile), dtype=float)
    if rows_masked.any() and not rows_masked.all():
        # across the peak a line misses its top (family draw 22: 1.3 pixels
        # off), the film's extent does not where the counts fix it (see
        # nanotools.preprocess.measure._columns_along)
        line = np.interp(z[rows_masked], z[~rows_masked], profile[~rows_masked])
        fill, sigma = _fill_from_support(np.where(rows_masked, 0.0, profile), rows_masked)
        profile[rows_masked] = fill if sigma <= _FILL_NOISE * np.clip(line, 0, None).sum() \
            else line
    return profile


def _window_centroid(profile: np.ndarray, start: float) -> float:
    """Centroid of ``profile`` in the widest window symmetric about it: the
    fixed point reached from ``start`` (pixels). A flat background weighs
    both sides of such a window alike, so it slows the iteration but does
    not move the fixed point."""
    z = np.arange(len(profile), dtype=float)
    centre = float(start)
    for _ in range(20):
        c = int(round(centre))
        half = min(c, len(profile) - 1 - c)
        if half < 2:
            break
        window = slice(c - half, c + half + 1)
        weights = np.clip(profile[window], 0.0, None)
        new = float(np.sum(z[window] * weights) / max(weights.sum(), 1e-300))
        if abs(new - centre) < 0.01:
            return new
        centre = new
    return centre


#: A satellite's rod enters the line of :func:`rod_line_z` with at least this
#: share of the brightest rod's counts ...
_ROD_MIN_SHARE = 0.01
#: ... and a centroid window reaching this many pixels to each side (a rod
#: running off the map along ``q_z`` has its centroid pulled inside).
_ROD_MIN_HALF = 4


def rod_line_z(intensity: np.ndarray, mask: np.ndarray, x0: float, spacing_px: float):
    """Out-of-plane position of the zeroth order from the rods of every
    satellite: satellite ``m`` sits at ``G + m k``, so with walls or waves
    inclined through the film (``k`` with a component along ``z``) its rod
    is centred ``m k_z`` away from ``G`` along ``q_z``, and the centroids of
    the rods lie on a line whose value at ``m = 0`` is ``G``. Summed over the
    map, rods of unequal brightness (a first order brighter than the zeroth
    and than its opposite order) peak and centre off ``G``; the line does
    not (validation-family laminates with ``J0 < J1``: 2-4 pixels off
    before).

    Each rod is the columns within a quarter spacing of ``x0 + m
    spacing_px`` along the first in-plane axis (summed over the others),
    its centroid :func:`_window_centroid`; rods with a column masked along
    most of ``q_z`` (a substrate rod, a detector gap), fainter than
    :data:`_ROD_MIN_SHARE` of the brightest or too near the map's edge
    along ``q_z`` are left out. The line is fitted by least
    squares weighted by the rods' counts, dropping points more than a pixel
    (or three robust sigma) off it.

    Parameters
    ----------
    intensity
        Counts, shape ``(nx[, ny], nz)``, out-of-plane axis last.
    mask
        Bool, same shape.
    x0
        In-plane position of the zeroth order along axis 0 (pixels).
    spacing_px
        Satellite spacing along axis 0 (pixels).

    Returns
    -------
    RodLine or None
        None where neither the zeroth order nor a pair of opposite orders
        enters the line.
    """
    n = intensity.shape[0]
    s = abs(float(spacing_px))
    columns = np.arange(n)
    orders, centres, counts, zeroth = [], [], [], None
    for m in range(-int(np.ceil(x0 / s)), int(np.ceil((n - 1 - x0) / s)) + 1):
        near = np.abs(columns - (x0 + m * s)) <= max(0.25 * s, 0.5)
        # a column masked along most of q_z (a substrate rod, a gap) leaves
        # the rest of the rod to the tails of what it hides
        if not near.any() or (mask[near].reshape(near.sum(), -1).mean(axis=1) > 0.5).any():
            continue
        profile = _z_profile(intensity[near], mask[near])
        signal = np.clip(profile - np.percentile(profile, 10), 0.0, None)
        start = float(np.argmax(ndimage.gaussian_filter1d(signal, 1.0)))
        c = _window_centroid(signal, start)
        if min(c, len(profile) - 1 - c) < _ROD_MIN_HALF:
            continue
        orders.append(m)
        centres.append(c)
        counts.append(signal.sum())
        if m == 0:
            zeroth = profile
    if not orders:
        return None
    m, c, w = np.array(orders, float), np.array(centres), np.array(counts)
    brightest = int(m[np.argmax(w)])
    keep = w >= _ROD_MIN_SHARE * w.max()
    for _ in range(5):
        if not (0 in m[keep] or any(-k in m[keep] for k in m[keep] if k > 0)):
            return None
        if keep.sum() == 1:  # the zeroth order alone
            return RodLine(float(c[keep][0]), m[keep].astype(int), brightest, zeroth)
        fitted = keep
        slope, z0 = np.polyfit(m[fitted], c[fitted], 1, w=np.sqrt(w[fitted]))
        resid = np.abs(c - (z0 + slope * m))
        spread = 1.4826 * np.median(resid[fitted])
        keep = (w >= _ROD_MIN_SHARE * w.max()) & (resid <= max(1.0, 3 * spread))
        if np.array_equal(keep, fitted) or not keep.any():
            break
    return RodLine(float(z0), m[fitted].astype(int), brightest, zeroth)


def _profile_max(profile: np.ndarray) -> tuple[int, float]:
    """The brightest row of a rod (after a 1-pixel smoothing, so that noise
    does not pick it) and its sub-pixel position (a parabola through the log
    of three samples)."""
    i = int(np.argmax(ndimage.gaussian_filter1d(profile, 1.0)))
    lo, hi = max(i - 1, 0), min(i + 2, len(profile))
    i = lo + int(np.argmax(profile[lo:hi]))
    top = float(i)
    if 0 < i < len(profile) - 1 and np.all(profile[i - 1:i + 2] > 0):
        top += float(np.clip(parabola_vertex(*np.log(profile[i - 1:i + 2])), -0.5, 0.5))
    return i, top


def _film_peak_z(intensity: np.ndarray, mask: np.ndarray, rods: RodLine | None = None):
    """Out-of-plane position of the film peak and why: the maximum of the
    rods summed over the map (sub-pixel by a parabola through the log of
    three samples; the zeroth order's own rod's where that one is the
    brightest and the two disagree, see below), unless a second estimate is
    more than half a fringe
    away: the line through the satellites' rods (``rods``, from
    :func:`rod_line_z`) where there is one, else the centroid of the
    intensity along ``q_z`` (in a window symmetric about it); the line also
    where it is more than a pixel away and the brightest rod is a
    satellite's, on which the maximum then sits. By Parseval
    the first moment of ``|F|**2`` along ``q_z`` is the film's mean phase
    gradient along ``z``, which a texture shifts little (its displacement
    averages out over a period), while the maximum can sit fringes away
    from ``G`` (tilted domains, a first satellite brighter than the zeroth
    order); but where part of the satellites' rods is cut by the map or
    outshines the rest, the centroid moves too, and the line does not."""
    profile = _z_profile(intensity, mask)
    i, top = _profile_max(profile)
    # the zeroth order's own rod, where it is the brightest, overrides the
    # sum where the two maxima are more than a pixel apart and the line
    # through the rods sides with it: the satellites' rods of a texture
    # reversing through the film (a vortex) vanish at G between two lobes,
    # which pull the sum's maximum 1.3-2.1 pixels off (independent stress
    # model, 9 of draws 0-199), while the zeroth rod of inclined walls can
    # sit off G itself (family laminate 304: 1.8 pixels); where the two
    # agree, the sum holds more counts (family draw 219: its skewed zeroth
    # rod peaks 0.4 pixel off, the sum 0.02)
    own = False
    if rods is not None and rods.brightest == 0 and rods.zeroth is not None:
        zeroth_top = _profile_max(rods.zeroth)[1]
        own = (abs(zeroth_top - top) > 1.0
               and abs(zeroth_top - rods.z_px) < abs(top - rods.z_px))
        if own:
            top = zeroth_top
    if rods is not None:
        centre, what, name = rods.z_px, rods.why, rods.name
    else:
        centre = _window_centroid(profile, top)
        name = "centroid of the map's intensity along q_z"
        what = f"{name} (the film's mean lattice)"
    # the maximum is the more precise where the two agree (a rod's centroid
    # moves with its shape: 1 pixel on an amplitude texture whose zeroth
    # order peaks at G); a centroid more than half a fringe away means the
    # maximum is a fringe of a displaced rod, and so does a line more than
    # a pixel away where a satellite's rod is the brightest (a first order
    # brighter than the zeroth, centred less than half a fringe from G:
    # family laminates 69 and 161, 2.0 and 2.7 pixels off before)
    right = np.flatnonzero(np.diff(profile[i:]) > 0)
    left = np.flatnonzero(np.diff(profile[:i + 1][::-1]) > 0)
    fringe = float(np.mean([r[0] if r.size else np.inf for r in (left, right)]))
    tolerance = max(0.5 * fringe, 1.0)
    if rods is not None and rods.brightest != 0:
        tolerance = 1.0
    if abs(centre - top) > tolerance:
        return centre, (f"out-of-plane: {what}; the brightest row is {top - centre:+.1f} "
                        "pixels from it")
    where = "the zeroth order's rod" if own else "the rods summed over the map"
    return top, (f"out-of-plane: maximum of {where} (the "
                 f"{name} agrees within {abs(centre - top):.1f} pixels)")


def zeroth_order_z(intensity: np.ndarray, mask: np.ndarray, in_plane):
    """Out-of-plane position of the film peak from the zeroth order's own
    neighbourhood: :func:`_film_peak_z` on the columns within half a
    satellite spacing of the rod along the first in-plane axis (the
    satellites' axis).

    With the zeroth-order rod masked under a substrate rod, the rods summed
    over the whole map are the satellites', whose profile along ``q_z``
    need not peak at ``G``: the odd orders of a texture reversing through
    the film (a vortex) vanish there between two lobes, and the maximum is a
    lobe. The zeroth order's tails beside the mask still peak at ``G``.

    Parameters
    ----------
    intensity
        Counts, shape ``(nx[, ny], nz)``, out-of-plane axis last.
    mask
        Bool, same shape, the substrate rod included.
    in_plane
        In-plane position of the rod (pixels), one per in-plane axis (or
        one number for a 2-D map). In 3-D the neighbourhood is the line
        along x through the rod (the map's slice at its y): the columns far
        along y beside a rod masked over a few pixels in x and y hold the
        patch's tails, not the zeroth order (a 3-D laminate with a
        substrate: 2.2 pixels off, where the whole map was right).

    Returns
    -------
    tuple or None
        ``(position_px, reason)``: the sub-pixel position along the last
        axis and one line saying how it was found; None when no comb of
        satellites gives the spacing.
    """
    comb = satellite_comb(intensity, mask, axis=0)
    if comb is None:
        return None
    half = 0.5 * abs(comb.spacing_px)
    position = np.atleast_1d(np.asarray(in_plane, float))
    x = np.abs(np.arange(intensity.shape[0]) - position[0]) <= half
    near = (x,) + tuple(slice(int(round(p)), int(round(p)) + 1) for p in position[1:])
    if (~mask[near]).sum() == 0:
        return None
    z, _ = _film_peak_z(intensity[near], mask[near])
    return z, (f"out-of-plane: peak of the zeroth order's rods beside the masked substrate "
               f"rod (within {half:.1f} pixels of it)")


def locate_bragg_peak(intensity: np.ndarray, mask: np.ndarray | None, q: tuple, *,
                      axis_names: tuple = (), metadata: dict | None = None) -> BraggPeak:
    """Find the film's Bragg peak from physics, not from the brightest pixel.

    In-plane (every axis but the last): the reciprocal lattice
    (:func:`lattice_position`) where the axis says it; a comb of satellites
    (:func:`~nanotools.preprocess.measure.satellite_comb`) whose tooth is
    more than a pixel from it moves it to that tooth (an offset q axis).
    Without the lattice, the comb tooth nearest the satellites' intensity
    centroid (the zeroth order even where ``J0 < J1``); without
    satellites either, the brightest feature. Out-of-plane: the maximum of
    the rods summed over the map, or the centroid of the intensity along
    ``q_z`` where it is more than half a fringe away (:func:`_film_peak_z`).
    Mask a substrate rod first (:func:`specular_rod_mask`).

    Parameters
    ----------
    intensity
        Counts, shape ``(nx[, ny], nz)``, out-of-plane axis last.
    mask
        Bool, same shape, or None; ``True`` = not measured.
    q
        One increasing axis per dimension (1/angstrom).
    axis_names, metadata
        ``ReciprocalSpaceMap.axis_names`` and ``.metadata`` (an axis
        converted from r.l.u. is recognised there).

    Returns
    -------
    BraggPeak
    """
    intensity = np.asarray(intensity, float)
    mask = as_mask(intensity, mask)
    names = tuple(axis_names) + ("",) * intensity.ndim
    position, reasons = [], []
    brightest = first_comb = None
    for a in range(intensity.ndim - 1):
        n = intensity.shape[a]
        lattice = lattice_position(q[a], axis_name=names[a], metadata=metadata)
        comb = satellite_comb(intensity, mask, axis=a)
        if a == 0:
            first_comb = comb
        if lattice is not None:
            p, why = lattice
            if comb is not None:
                k = np.round((p - comb.origin_px) / comb.spacing_px)
                tooth = comb.origin_px + k * comb.spacing_px
                if abs(tooth - p) > _LATTICE_TOLERANCE_PX:
                    # the comb followed outward may hold every other order
                    # (a square wave's odd orders beside a weak zeroth):
                    # where the comb laid symmetrically about the lattice
                    # position, every order weighed at once, is that much
                    # finer, judge the lattice by it (stress draw 107)
                    about = _comb_about_centre(comb.profile, p)
                    if about is not None and _every_other(comb, about):
                        k = np.round((p - about.origin_px) / about.spacing_px)
                        tooth = about.origin_px + k * about.spacing_px
                if abs(tooth - p) > _LATTICE_TOLERANCE_PX:
                    why = (f"the satellite nearest the lattice position ({why}, pixel {p:.2f}) "
                           f"is {tooth - p:+.2f} pixels from it: the q axis looks offset; "
                           "the satellite is taken")
                    p = tooth
        elif comb is not None:
            p = _zeroth_tooth(comb, n)
            why = (f"centre of the comb of {len(comb.orders)} satellites along axis {a} "
                   "(the tooth their intensity centroid sits on, in a window symmetric "
                   "about it)")
        else:
            if brightest is None:
                brightest = locate_peak(intensity, mask)
            p = float(brightest[a])
            why = f"brightest feature along axis {a} (no lattice, no satellites)"
        position.append(float(p))
        reasons.append(why)
    # the satellites' rods along the first in-plane axis, where it has a comb
    rods = None if first_comb is None else rod_line_z(intensity, mask, position[0],
                                                      first_comb.spacing_px)
    z, why = _film_peak_z(intensity, mask, rods)
    position.append(z)
    reasons.append(why)
    return BraggPeak(tuple(position), tuple(reasons))


def _pair_ratio(column: np.ndarray, i: int) -> float:
    """How sharp the peak at ``i`` of a profile is: its brighter adjacent
    pair over the two pixels flanking that pair."""
    n = len(column)
    j = i if (i + 1 < n and (i == 0 or not column[i + 1] < column[i - 1])) else i - 1
    if j < 1 or j + 2 >= n:
        return 0.0
    four = column[j - 1:j + 3]
    if not np.all(np.isfinite(four)):  # beside a gap: judged on the measured side
        return _one_sided_ratio(column, i)
    flank = column[j - 1] + column[j + 2]
    return float((column[j] + column[j + 1]) / max(flank, 1.0))


def _one_sided_ratio(column: np.ndarray, i: int) -> float:
    """:func:`_pair_ratio` of a peak at ``i`` beside a gap, from the side
    that is measured: ``i`` and its neighbour over twice the next pixel out,
    where the four pixels after ``i`` fall monotonically (0 where no side
    does), scaled by ``_SHARP_RATIO / _SHARP_RATIO_ONE_SIDED`` so that the
    two-sided threshold applies. A substrate peak whose top is in the gap
    (family draw 92) is otherwise left unmasked, and its rod and peak are
    taken for the film's."""
    best = 0.0
    for s in (1, -1):
        five = column[i::s][:5]  # i and the four pixels after it on side s
        if len(five) < 5 or not np.all(np.isfinite(five)) or not np.all(np.diff(five) < 0):
            continue
        best = max(best, float((five[0] + five[1]) / max(2 * five[2], 1.0)))
    return best * _SHARP_RATIO / _SHARP_RATIO_ONE_SIDED


def specular_rod_mask(intensity: np.ndarray, mask: np.ndarray | None, in_plane: tuple, *,
                      mode: str = "auto", reach_px: int = 3):
    """Find a substrate peak and its truncation rod on the specular line and
    mask the rod.

    The substrate's Bragg peak lies on the specular line (the film's
    in-plane Bragg position), usually a few fringes from the film peak and
    far brighter; its truncation rod runs along the whole ``q_z`` axis,
    resolution-limited across. Along that line film and substrate
    interfere, which the film model cannot explain, so the rod's columns are
    masked over the whole ``q_z`` range (left free in phasing). A peak is
    the substrate's when the brightest pixel within ``reach_px`` of the line
    is sharper along ``q_z`` than any film fringe can be (two adjacent
    pixels hold ``_SHARP_RATIO`` times the two that flank them); the columns
    masked are those where the peak's row is that sharp.

    Parameters
    ----------
    intensity
        Counts, shape ``(nx[, ny], nz)``.
    mask
        Bool, same shape, or None.
    in_plane
        In-plane position of the specular line (pixels), one per in-plane
        axis.
    mode
        {"auto", "yes", "no"}: find it; mask the line's columns (``reach_px``
        // 3 either side, at least the nearest) even if no peak is found; do
        nothing.

    Returns
    -------
    ``(rod_mask, note)``: bool array of the map's shape (``True`` = the
    rod's pixels) and one line saying what was found, or an empty string
    when nothing was looked for.
    """
    intensity = np.asarray(intensity, float)
    mask = as_mask(intensity, mask)
    rod = np.zeros(intensity.shape, bool)
    if mode == "no":
        return rod, "substrate rod: not looked for (mask_specular = no)"
    data = np.where(mask, np.nan, intensity)
    near = tuple(slice(max(int(round(p)) - reach_px, 0), int(round(p)) + reach_px + 1)
                 for p in in_plane) + (slice(0, intensity.shape[-1]),)
    band = data[near]
    if not np.isfinite(band).any():
        return rod, "no substrate peak on the specular line (not measured there)"
    top = np.unravel_index(np.nanargmax(band), band.shape)
    peak = tuple(int(s.start + t) for s, t in zip(near, top))
    sharp = _pair_ratio(data[peak[:-1]], peak[-1]) > _SHARP_RATIO and data[peak] > 100
    if sharp:
        # the columns where the peak's row stays that sharp, outward from it
        z = peak[-1]
        columns = np.zeros(band.shape[:-1], bool)
        for idx in np.ndindex(*band.shape[:-1]):
            full = tuple(s.start + i for s, i in zip(near[:-1], idx))
            column = data[full]
            columns[idx] = (_pair_ratio(column, z) > _SHARP_RATIO
                            or _pair_ratio(column, z + 1) > _SHARP_RATIO
                            or _pair_ratio(column, z - 1) > _SHARP_RATIO)
        labels, _ = ndimage.label(columns)
        keep = labels == labels[top[:-1]]
        rod[near[:-1]] = keep[..., None]
        where = ", ".join(str(int(p)) for p in peak)
        note = (f"substrate peak at pixel ({where}), {_pair_ratio(data[peak[:-1]], z):.0f} "
                f"times sharper along q_z than its flanks: its truncation rod "
                f"({int(keep.sum())} column(s), {int(rod.sum())} pixels) masked")
        return rod, note
    if mode == "yes":
        half = max(reach_px // 3, 0)
        line = tuple(slice(max(int(round(p)) - half, 0), int(round(p)) + half + 1)
                     for p in in_plane)
        rod[line] = True
        return rod, (f"specular rod masked as asked (mask_specular = yes): {int(rod.sum())} "
                     "pixels; no substrate peak found")
    return rod, "no substrate peak on the specular line"

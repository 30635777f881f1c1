"""Lengths measured on the map: the texture period from the satellites
(:func:`measure_period`), the film thickness from the fringes
(:func:`measure_thickness`), the coherent patch from the central
satellite's shape (:func:`measure_patch`), and the line fits they use.

A length ``L`` and the spacing ``dq`` of the features it makes in
reciprocal space are related by ``L = 2 pi / dq``.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy import ndimage, optimize

from ..errors import InputError
from .peak import locate_peak
from .pixels import as_mask, fill_masked, parabola_vertex

__all__ = ["LengthMeasurement", "measure_period", "measure_thickness", "measure_patch"]


@dataclass
class LengthMeasurement:
    """A length measured from a row of equally spaced features of the map.

    Attributes
    ----------
    value_nm, err_nm
        The length and its standard uncertainty (nm).
    spacing_px, spacing_err_px
        Spacing of the features in pixels of the profile they were found in.
    orders, positions_px
        Order and sub-pixel position (pixels along the profile) of each
        feature used in the fit; empty where the length is not a spacing.
    note
        One human-readable line: what was measured and from what.
    """

    value_nm: float
    err_nm: float
    spacing_px: float = float("nan")
    spacing_err_px: float = float("nan")
    orders: np.ndarray = field(default_factory=lambda: np.zeros(0, int))
    positions_px: np.ndarray = field(default_factory=lambda: np.zeros(0))
    note: str = ""


# ---------------------------------------------------------------------------
# Small helpers
# ---------------------------------------------------------------------------

def _step_along(q_step, ndim: int, axis: int) -> float:
    """The q step (1/angstrom per pixel) along ``axis``, from one value for
    every axis or one per axis."""
    return float(np.broadcast_to(np.asarray(q_step, float), (ndim,))[axis])


def _projection(intensity: np.ndarray, mask: np.ndarray, axis: int) -> np.ndarray:
    """Profile along ``axis``: the map summed over every other axis, masked
    pixels filled from their neighbours; NaN where more than half of the
    summed pixels are masked (a detector gap), which would fake a minimum."""
    filled = fill_masked(intensity, mask)
    others = tuple(a for a in range(intensity.ndim) if a != axis)
    profile = filled.sum(axis=others)
    masked_fraction = mask.mean(axis=others)
    profile[masked_fraction > 0.5] = np.nan
    return profile


def _rod(intensity: np.ndarray, mask: np.ndarray, axis: int, peak: np.ndarray) -> np.ndarray:
    """Profile along ``axis`` through the (rounded) peak position: the
    truncation rod. Masked pixels are NaN."""
    index = [int(round(p)) for p in peak]
    index[axis] = slice(None)
    profile = np.asarray(intensity[tuple(index)], float).copy()
    profile[np.asarray(mask[tuple(index)], bool)] = np.nan
    return profile


def _linear_fit(orders: np.ndarray, positions: np.ndarray, weights=None,
                floor_px: float = 0.02):
    """Weighted least-squares line ``position = a + spacing * order``;
    returns ``(a, spacing, spacing_err)``.

    ``weights`` are relative (``1 / sigma**2`` up to a common factor, which
    the scatter of the residuals sets). The error is the regression standard
    error, but never below what a ``floor_px`` error per position gives (a
    line through few, perfectly aligned points is not infinitely precise).
    """
    m = np.asarray(orders, float)
    p = np.asarray(positions, float)
    w = np.ones_like(m) if weights is None else np.asarray(weights, float)
    w = w / w.mean()
    A = np.vstack([np.ones_like(m), m]).T
    AtW = A.T * w
    coef = np.linalg.solve(AtW @ A, AtW @ p)
    cov = np.linalg.inv(AtW @ A)
    resid = p - A @ coef
    dof = len(m) - 2
    sigma2 = max(np.sum(w * resid ** 2) / dof if dof > 0 else 0.0, floor_px ** 2)
    return float(coef[0]), float(coef[1]), float(np.sqrt(sigma2 * cov[1, 1]))


def _length_from_spacing(spacing_px: float, spacing_err_px: float, q_step: float):
    """``L = 2 pi / dq`` in nm from a spacing in pixels of ``q_step``
    (1/angstrom); the error follows by propagation."""
    dq = abs(spacing_px * q_step)
    length = 2 * np.pi / dq / 10.0  # angstrom -> nm
    return float(length), float(length * spacing_err_px / abs(spacing_px))


# ---------------------------------------------------------------------------
# Satellites: the period
# ---------------------------------------------------------------------------

def _first_minima(profile: np.ndarray, centre: int) -> tuple[int | None, int | None]:
    """Index of the first local minimum left and right of ``centre`` (None if
    the profile never rises again); NaN samples are stepped over."""
    out = []
    for step in (-1, 1):
        found = None
        j = centre + step
        while 0 <= j + step < len(profile):
            if np.isfinite(profile[j]) and np.isfinite(profile[j + step]) \
                    and profile[j + step] > profile[j]:
                found = j
                break
            j += step
        out.append(found)
    return out[0], out[1]


def _coarse_spacing(profile: np.ndarray, centre: int, min_lag: float, max_lag: float) -> float:
    """Spacing of the repeating pattern of a profile: the lag of the highest
    autocorrelation of its detrended logarithm between ``min_lag`` and
    ``max_lag``. In the logarithm every satellite counts, not only the
    brightest pair; at the right lag every satellite, with its side lobes,
    lands on its neighbour."""
    finite = np.isfinite(profile)
    logp = np.log(np.where(finite, np.maximum(profile, 0.0), 0.0) + 1.0)
    trend = ndimage.gaussian_filter1d(logp, max(len(profile) / 16, 2.0), mode="nearest")
    d = np.where(finite, logp - trend, 0.0)
    n = len(d)
    spectrum = np.fft.rfft(d, 2 * n)
    acf = np.fft.irfft(np.abs(spectrum) ** 2)[:n]
    lo = int(np.ceil(min_lag))
    hi = int(min(np.floor(max_lag), n - 2))
    if hi <= lo:
        return float("nan")
    lag = lo + int(np.argmax(acf[lo:hi + 1]))
    # a texture whose every k-th satellite is bright (a laminate with thin
    # walls) can correlate best at k spacings: take the shortest lag that
    # correlates nearly as well
    for k in (5, 4, 3, 2):
        sub = lag / k
        if sub < lo:
            continue
        j0, j1 = max(int(np.floor(sub)), 1), min(int(np.ceil(sub)), n - 2)
        j = j0 + int(np.argmax(acf[j0:j1 + 1]))
        if acf[j] >= acf[j - 1] and acf[j] >= acf[j + 1] and acf[j] > 0.8 * acf[lag]:
            lag = j
            break
    if 0 < lag < n - 1:
        return lag + parabola_vertex(acf[lag - 1], acf[lag], acf[lag + 1])
    return float(lag)


def _satellite_series(profile: np.ndarray, centre: float, *, max_misses: int = 1,
                      min_contrast: float = 2.0, snr: float = 5.0):
    """Find the satellites of a projected profile: ``(orders, positions,
    spacing_guess)`` including the central peak (order 0), or None.

    Orders are followed outward from the centre. Each predicted position
    (from a line refitted after every accepted satellite) is searched for a
    local maximum, which must lie close to the prediction, stand
    ``min_contrast`` times above the lowest point between it and the
    previous order, and ``snr`` Poisson sigma above it. A satellite whose
    window touches a NaN (detector gap) is skipped, not taken as the end of
    the series.
    """
    n = len(profile)
    c = int(round(centre))
    if not (0 <= c < n) or not np.isfinite(profile[c]):
        return None
    left, right = _first_minima(profile, c)
    widths = [abs(i - c) for i in (left, right) if i is not None]
    if not widths:
        return None
    half_width = float(np.mean(widths))  # central peak: centre to first zero
    room = max(c, n - 1 - c)
    spacing = _coarse_spacing(profile, c, 1.5 * half_width, room)
    if not np.isfinite(spacing) or spacing < 2:
        return None
    orders, positions = [0], [_refine_max(profile, c)]
    # wide search until both first orders are in, then close to the line:
    # far orders are weak and a side lobe or a diffuse bump must not pass
    wide = max(1.0, min(spacing / 4, 0.75 * half_width + 0.5))
    narrow = max(1.0, min(wide, 0.3 * half_width + 0.5))
    for side in (1, -1):
        misses = 0
        m = 0
        while misses <= max_misses:
            m += side
            if len(orders) >= 2:
                a, s, _ = _linear_fit(orders, positions)
            else:
                a, s = positions[0], spacing
            guess = a + m * s
            search = narrow if (1 in orders and -1 in orders) or abs(m) > 1 else wide
            lo, hi = int(np.floor(guess - search)), int(np.ceil(guess + search))
            if lo < 1 or hi > n - 2:
                break
            if not np.all(np.isfinite(profile[lo - 1:hi + 2])):
                misses += 1
                continue
            i = lo + int(np.argmax(profile[lo:hi + 1]))
            ok = profile[i] >= profile[i - 1] and profile[i] >= profile[i + 1]
            if ok:
                prev = a + (m - side) * s
                between = profile[int(round(min(prev, i))):int(round(max(prev, i))) + 1]
                floor = max(np.nanmin(between), 0.0) if between.size else np.nan
                peak = profile[i]
                ok = (np.isfinite(floor) and peak > min_contrast * floor
                      and peak - floor > snr * np.sqrt(peak + 1))
            if ok:
                x = _refine_max(profile, i)
                ok = abs(x - guess) <= search
            if not ok:
                misses += 1
                continue
            misses = 0
            orders.append(m)
            positions.append(x)
    if len(orders) < 3:
        return None
    return np.array(orders), np.array(positions), spacing


def _robust_line(orders: np.ndarray, positions: np.ndarray, tol: float = 0.3):
    """Intercept and slope of a line through (order, position), refitted
    without the points more than ``tol`` pixels (or 4 robust sigma) off."""
    keep = np.ones(len(orders), bool)
    for _ in range(3):
        a, s, _ = _linear_fit(orders[keep], positions[keep])
        resid = np.abs(positions - (a + s * orders))
        new = resid <= max(tol, 4 * 1.4826 * np.median(resid))
        if new.sum() < 2 or np.array_equal(new, keep):
            break
        keep = new
    return a, s


def _robust_spacing(orders: np.ndarray, positions: np.ndarray, weights=None, *,
                    pairs: bool = False, median_start: bool = False, min_tol: float = 0.3):
    """Line fit of position against order that drops outliers (a satellite
    or fringe displaced by a neighbour or by a superlattice peak, a bad
    pixel).

    With ``pairs``, only orders seen on both sides of the peak are used when
    at least two such pairs exist: the interference of neighbouring
    satellites often shifts the satellites of both sides the same way, and a
    pair cancels that. With ``median_start`` too, the spacings of the single
    pairs, ``(p[k] - p[-k]) / 2k``, give a median line that outliers cannot
    drag, from which they are then rejected (for fringes, all equally sharp,
    a few of them displaced; not for satellites, whose precision falls with
    their order). Returns ``(orders, positions,
    spacing, spacing_err)``.
    """
    orders, positions = np.asarray(orders), np.asarray(positions, float)
    w = np.ones(len(orders)) if weights is None else np.asarray(weights, float)
    start = None
    if pairs:
        both = np.array([(m == 0) or (-m in orders) for m in orders])
        if np.sum(both & (orders > 0)) >= 2:
            orders, positions, w = orders[both], positions[both], w[both]
        if median_start and np.sum(orders > 0) >= 2 and all(-k in orders for k in orders):
            ks = orders[orders > 0]
            slopes = [(positions[orders == k][0] - positions[orders == -k][0]) / (2 * k)
                      for k in ks]
            s0 = float(np.median(slopes))
            start = (float(np.median(positions - s0 * orders)), s0)
    keep = np.ones(len(orders), bool)
    for _ in range(8):
        if start is not None:
            a, s = start
            start = None
        else:
            a, s, _ = _linear_fit(orders[keep], positions[keep], w[keep])
        z = (positions - (a + s * orders)) * np.sqrt(w / w[keep].mean())
        tol = max(min_tol, 3 * 1.4826 * np.median(np.abs(z[keep])))
        new = np.abs(z) <= tol
        if pairs:  # a pair stays or goes together
            new = np.array([new[i] and (orders[i] == 0 or new[orders == -orders[i]].all())
                            for i in range(len(orders))])
        if new.sum() < 3:
            break
        if np.array_equal(new, keep):
            break
        keep = new
    a, s, e = _linear_fit(orders[keep], positions[keep], w[keep])
    return orders[keep], positions[keep], s, e


def _refine_max(profile: np.ndarray, i: int) -> float:
    """Sub-pixel position of a local maximum: parabola through the log of
    the three samples around it."""
    if 0 < i < len(profile) - 1:
        y = np.log(np.maximum(profile[i - 1:i + 2], 1e-12 * max(profile[i], 1e-300)))
        if np.all(np.isfinite(y)):
            return i + float(np.clip(parabola_vertex(*y), -0.5, 0.5))
    return float(i)


def measure_period(intensity: np.ndarray, mask: np.ndarray | None, q_step, *,
                   axis: int = 0, centre: float | None = None) -> LengthMeasurement:
    """Texture period from the spacing of the satellites.

    The map is summed over every axis but ``axis`` (the out-of-plane axis
    too: satellites need not sit on the ``q_z = G`` line, as in the
    checkerboard texture), the satellites are followed outward from the
    Bragg peak (order 0), their sub-pixel positions are fitted by a line
    against their order, and ``period = 2 pi / (slope * q_step)``.

    Parameters
    ----------
    intensity
        Counts, background subtracted or not, shape ``(nx[, ny], nz)``.
    mask
        Bool, same shape, or None.
    q_step
        Momentum-transfer step (1/angstrom per pixel): one value, or one per
        axis.
    axis
        The in-plane axis along which the texture is periodic.
    centre
        Position of the Bragg peak along ``axis`` (pixels); found if None.

    Returns
    -------
    LengthMeasurement
        ``value_nm`` is the period; ``err_nm`` the regression standard error.

    Raises
    ------
    InputError
        If fewer than two satellites are found.
    """
    intensity = np.asarray(intensity, float)
    mask = as_mask(intensity, mask)
    step = _step_along(q_step, intensity.ndim, axis)
    if centre is None:
        centre = float(locate_peak(intensity, mask)[axis])
    profile = _projection(intensity, mask, axis)
    found = _satellite_series(profile, centre)
    if found is None:
        raise InputError("no satellites found along the in-plane axis: cannot measure the "
                         "texture period (give period_nm)")
    orders, positions, _ = found
    # A satellite is displaced by the tails of its neighbours in proportion
    # to their amplitude over its own, so a position's error goes as
    # 1 / sqrt(intensity): weigh by intensity (the faint far orders would
    # otherwise rule the slope through their leverage).
    strength = np.array([max(profile[int(round(x))], 1.0) for x in positions])
    orders, positions, spacing, err = _robust_spacing(orders, positions, strength, pairs=True)
    value, value_err = _length_from_spacing(spacing, err, step)
    n_sat = int(np.sum(orders != 0))
    note = (f"period {value:.2f} ± {value_err:.2f} nm from {n_sat} satellites "
            f"(orders {orders.min()}..{orders.max()})")
    return LengthMeasurement(value, value_err, spacing, err, orders, positions, note)


# ---------------------------------------------------------------------------
# Fringes: the thickness
# ---------------------------------------------------------------------------

def _fringe_spacing(flat: np.ndarray, centre: float, reach: int) -> float:
    """Coarse fringe spacing (pixels) of an envelope-flattened rod: the
    first autocorrelation maximum of its square root (``|sin|``-like, one
    bump per fringe) within ``reach`` pixels of the peak."""
    n = len(flat)
    c = int(round(centre))
    lo, hi = max(c - reach, 0), min(c + reach + 1, n)
    seg = np.sqrt(np.maximum(np.nan_to_num(flat[lo:hi]), 0.0))
    seg[max(c - lo - 1, 0):c - lo + 2] = 0.0  # the flattening zeroes the peak itself
    seg = np.where(np.isfinite(flat[lo:hi]), seg - seg[seg > 0].mean() if np.any(seg > 0)
                   else seg, 0.0)
    m = len(seg)
    acf = np.fft.irfft(np.abs(np.fft.rfft(seg, 2 * m)) ** 2)[:m]
    # first local maximum after the first local minimum
    j = 1
    while j < m - 1 and acf[j + 1] < acf[j]:
        j += 1
    while j < m - 1 and acf[j + 1] >= acf[j]:
        j += 1
    if j >= m - 1 or j < 2:
        return float("nan")
    return j + parabola_vertex(acf[j - 1], acf[j], acf[j + 1])


def _fringe_series(rod: np.ndarray, centre: float, *, max_misses: int = 1,
                   min_depth: float = 0.7, max_order: int = 10, min_counts: float = 25.0):
    """Find the fringe minima of a truncation rod: ``(orders, positions)``
    (orders +-1, +-2, ...; the peak is not a minimum), or None.

    The rod is multiplied by ``(q - q_peak)**2`` first: that flattens the
    ``1/q**2`` envelope of a sharp-edged slab, so each fringe becomes
    ``sin**2``-like and symmetric about its zero, and a parabola through the
    three samples around a minimum finds the zero without the outward bias
    the falling envelope would give it. Orders stop at ``max_order``: far
    out the fringes of a film sampled on a pixel grid drift (aliasing) and
    real interfaces are rough.
    """
    n = len(rod)
    c = int(round(centre))
    if not (2 < c < n - 3) or not np.isfinite(rod[c]) or rod[c] <= 0:
        return None
    flat = rod * (np.arange(n) - centre) ** 2
    # how far the rod holds counts: to where even its fringe maxima fall
    # below min_counts
    tops = ndimage.maximum_filter1d(np.nan_to_num(rod, nan=np.inf), 7, mode="nearest")
    weak = np.flatnonzero(tops < min_counts)
    right = weak[weak > c].min() - c if np.any(weak > c) else n - 1 - c
    left = c - weak[weak < c].max() if np.any(weak < c) else c
    reach = int(max(left, right))
    spacing = _fringe_spacing(flat, centre, reach)
    if not np.isfinite(spacing) or spacing < 1.5:
        return None
    # stay below a quarter of the Nyquist frequency of the film's pixels
    # (n / spacing = film thickness in pixels of the real-space grid)
    max_order = int(np.clip(round(0.25 * n / spacing), 4, max_order))
    orders, positions = [], []
    search = max(0.75, min(spacing / 3, 2.0))
    misses = {1: 0, -1: 0}
    # both sides in turn (1, -1, 2, -2, ...) so the prediction is always a
    # line through both sides, fitted robustly: a fringe displaced by a
    # superlattice peak must not steer the search for the next one
    for k in (side * j for j in range(1, max_order + 1) for side in (1, -1)):
        side = int(np.sign(k))
        if misses[side] > max_misses:
            continue
        if len(set(np.sign(orders))) == 2 and len(orders) >= 3:
            a, s = _robust_line(np.array(orders), np.array(positions))
        elif orders:
            a, s = centre, float(np.median((np.array(positions) - centre) / np.array(orders)))
        else:
            a, s = centre, spacing
        guess = a + k * s
        lo, hi = int(np.floor(guess - search)), int(np.ceil(guess + search))
        if lo < 2 or hi > n - 3:
            misses[side] = max_misses + 1
            continue
        ok = bool(np.all(np.isfinite(flat[lo - 1:hi + 2])))
        if ok:
            i = lo + int(np.argmin(flat[lo:hi + 1]))
            ok = flat[i] <= flat[i - 1] and flat[i] <= flat[i + 1]
        if ok:
            # depth: the minimum against the fringe maxima half a spacing away
            left, right = int(round(i - s / 2)), int(round(i + s / 2))
            top = min(np.nanmax(flat[max(left - 1, 0):left + 2]),
                      np.nanmax(flat[right - 1:right + 2]))
            ok = (np.isfinite(top) and top > 0 and flat[i] < min_depth * top
                  and np.nanmax(rod[i - 1:i + 2]) > min_counts)
        if ok:
            x = i + parabola_vertex(flat[i - 1], flat[i], flat[i + 1])
            ok = abs(x - guess) <= search
        if not ok:
            misses[side] += 1
            continue
        misses[side] = 0
        orders.append(k)
        positions.append(x)
    if len(orders) < 3 or len(set(np.sign(orders))) < 2:
        return None
    return np.array(orders), np.array(positions)


def measure_thickness(intensity: np.ndarray, mask: np.ndarray | None, q_step, *,
                      axis: int = -1, peak=None) -> LengthMeasurement:
    """Film thickness from the spacing of the thickness fringes.

    The fringes are read on the truncation rod through the Bragg peak along
    the out-of-plane ``axis``: there the field is the laterally averaged
    film, a slab whose sharp interfaces give zeros at ``q = 2 pi k / t``.
    Their sub-pixel positions are fitted by a line against ``k`` and
    ``t = 2 pi / (slope * q_step)``. Minima displaced by a superlattice
    peak are dropped by a robust refit.

    Parameters
    ----------
    intensity
        Counts (background subtracted, not clipped, is best: a flat offset
        bends the fringes once the envelope is flattened), shape
        ``(nx[, ny], nz)``.
    mask
        Bool, same shape, or None.
    q_step
        Momentum-transfer step (1/angstrom per pixel): one value or one per
        axis.
    axis
        The out-of-plane axis.
    peak
        Bragg peak position per axis (pixels); found if None.

    Returns
    -------
    LengthMeasurement
        ``value_nm`` is the thickness; ``err_nm`` the regression standard
        error.

    Raises
    ------
    InputError
        If fewer than three fringes are found.
    """
    intensity = np.asarray(intensity, float)
    mask = as_mask(intensity, mask)
    axis = axis % intensity.ndim
    step = _step_along(q_step, intensity.ndim, axis)
    peak = locate_peak(intensity, mask) if peak is None else np.asarray(peak, float)
    rod = _rod(intensity, mask, axis, peak)
    found = _fringe_series(rod, float(peak[axis]))
    if found is None:
        raise InputError("no thickness fringes found along the out-of-plane axis: cannot "
                         "measure the film thickness (give thickness_nm)")
    # minima displaced by a superlattice peak (the checkerboard's layering)
    # are dropped by the robust fit
    orders, positions, spacing, err = _robust_spacing(found[0], found[1], pairs=True,
                                                      median_start=True, min_tol=0.15)
    value, value_err = _length_from_spacing(spacing, err, step)
    note = (f"thickness {value:.2f} ± {value_err:.2f} nm from {len(orders)} fringe minima "
            f"(orders {orders.min()}..{orders.max()})")
    return LengthMeasurement(value, value_err, spacing, err, orders, positions, note)


# ---------------------------------------------------------------------------
# Coherent patch
# ---------------------------------------------------------------------------

def _patch_power(q: np.ndarray, width: float, edge: float) -> np.ndarray:
    """|FT|^2 of a flat top of FWHM ``width`` with cos^2 edges ``edge`` wide
    (the simulator's patch), at angular frequency ``q`` (same length unit).

    The taper is a box of ``width`` convolved with a half-cosine bump of
    ``edge``: its transform is ``width sinc(q width / 2)`` times
    ``cos(q edge / 2) / (1 - (q edge / pi)**2)``.
    """
    box = width * np.sinc(q * width / (2 * np.pi))
    x = q * edge / np.pi
    with np.errstate(invalid="ignore", divide="ignore"):
        bump = np.where(np.abs(np.abs(x) - 1) < 1e-9, np.pi / 4,
                        np.cos(q * edge / 2) / (1 - x ** 2))
    return (box * bump) ** 2


def measure_patch(intensity: np.ndarray, mask: np.ndarray | None, q_step, *,
                  period_nm: float, axis: int = 0, centre: float | None = None,
                  edge_nm: float | None = None) -> LengthMeasurement:
    """Width (FWHM) of the coherent patch along an in-plane axis.

    Every satellite is the transform of the patch envelope; the central one
    (order 0) is the brightest and the cleanest. Its profile, summed over
    the other axes, is fitted within half a satellite spacing by the power
    spectrum of a flat top with cos^2 edges of ``edge_nm`` (least squares on
    the square root of the counts, which weighs the side lobes and is
    Poisson-stable), free in width, centre, scale and a flat floor.

    Parameters
    ----------
    intensity
        Counts, shape ``(nx[, ny], nz)``.
    mask
        Bool, same shape, or None.
    q_step
        Momentum-transfer step (1/angstrom per pixel): one value or one per
        axis.
    period_nm
        Texture period (nm): bounds the fitting window and sets the default
        edge width.
    axis
        The in-plane axis.
    centre
        Position of the Bragg peak along ``axis`` (pixels); found if None.
    edge_nm
        Width of the patch's soft edges (nm); half a period if None.

    Returns
    -------
    LengthMeasurement
        ``value_nm`` is the patch width, ``err_nm`` the fit's standard error.

    Raises
    ------
    InputError
        If the central peak cannot be fitted.
    """
    intensity = np.asarray(intensity, float)
    mask = as_mask(intensity, mask)
    step = _step_along(q_step, intensity.ndim, axis)
    if centre is None:
        centre = float(locate_peak(intensity, mask)[axis])
    edge = period_nm / 2 if edge_nm is None else edge_nm
    profile = _projection(intensity, mask, axis)
    n = len(profile)
    spacing_px = 2 * np.pi / (period_nm * 10.0) / step  # satellite spacing (pixels)
    half = max(2, int(np.floor(0.5 * spacing_px)))
    lo, hi = max(int(round(centre)) - half, 0), min(int(round(centre)) + half, n - 1)
    idx = np.arange(lo, hi + 1)
    y = profile[lo:hi + 1]
    good = np.isfinite(y)
    if good.sum() < 5:
        raise InputError("too few measured pixels around the Bragg peak to measure the "
                         "coherent patch")
    idx, y = idx[good], np.maximum(y[good], 0)
    amp = np.sqrt(y)
    dq_nm = step * 10.0  # q step in 1/nm

    def model(p):
        width, x0, scale, floor = p
        return np.sqrt(scale * _patch_power((idx - x0) * dq_nm, width, edge)
                       / _patch_power(np.zeros(1), width, edge)[0] + floor ** 2)

    # first guess: the full width at half maximum of the central peak is
    # about 0.886 * 2 pi / width
    peak_val = np.nanmax(y)
    above = idx[y >= peak_val / 2]
    fwhm_px = max(above.max() - above.min() + 1.0, 1.0)
    w0 = 0.886 * 2 * np.pi / (fwhm_px * dq_nm)
    p0 = [w0, centre, peak_val, 0.0]
    try:
        fit = optimize.least_squares(lambda p: model(p) - amp, p0,
                                     bounds=([edge, centre - 2, 0, 0],
                                             [np.inf, centre + 2, np.inf, np.inf]),
                                     x_scale=[w0, 1.0, peak_val, 1.0])
    except (ValueError, np.linalg.LinAlgError) as exc:
        raise InputError(f"the central satellite could not be fitted ({exc})") from None
    width = float(fit.x[0])
    dof = max(len(amp) - 4, 1)
    # pinv: the floor often sits on its bound (0), which makes J^T J singular
    cov = np.linalg.pinv(fit.jac.T @ fit.jac) * np.sum(fit.fun ** 2) / dof
    err = float(np.sqrt(max(cov[0, 0], 0.0)))
    note = (f"coherent patch {width:.1f} ± {err:.1f} nm (FWHM) from the shape of the central "
            f"peak, edges {edge:.1f} nm assumed")
    return LengthMeasurement(width, err, note=note)

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
from scipy import interpolate, ndimage, optimize

from ..errors import InputError
from .peak import locate_peak
from .pixels import as_mask, fill_masked, parabola_vertex

__all__ = ["LengthMeasurement", "measure_period", "measure_thickness", "measure_patch",
           "patterson_along", "SatelliteComb", "satellite_comb"]


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
    edge_nm
        For the coherent patch: the width of its soft edges (nm); NaN for
        other lengths.
    """

    value_nm: float
    err_nm: float
    spacing_px: float = float("nan")
    spacing_err_px: float = float("nan")
    orders: np.ndarray = field(default_factory=lambda: np.zeros(0, int))
    positions_px: np.ndarray = field(default_factory=lambda: np.zeros(0))
    note: str = ""
    edge_nm: float = float("nan")


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


def _bridge(profile: np.ndarray, max_run: int) -> np.ndarray:
    """NaN runs of at most ``max_run`` samples (a masked substrate rod, a
    narrow gap) linearly interpolated; longer runs stay NaN."""
    bad = ~np.isfinite(profile)
    if not bad.any() or bad.all():
        return profile
    labels, n_runs = ndimage.label(bad)
    runs = ndimage.sum_labels(bad, labels, index=np.arange(1, n_runs + 1))
    short = np.isin(labels, 1 + np.flatnonzero(runs <= max_run))
    out = profile.copy()
    idx = np.arange(len(profile))
    out[short] = np.interp(idx[short], idx[~bad], profile[~bad])
    return out


def _linear_fit(orders: np.ndarray, positions: np.ndarray, weights=None,
                floor_px: float = 0.02):
    """Weighted least-squares line ``position = a + spacing * order``
    (:func:`numpy.polyfit`); returns ``(a, spacing, spacing_err)``.

    ``weights`` are relative (``1 / sigma**2`` up to a common factor, which
    the scatter of the residuals sets). The error is the regression standard
    error, but never below what a ``floor_px`` error per position gives (a
    line through few, perfectly aligned points is not infinitely precise).
    """
    m = np.asarray(orders, float)
    p = np.asarray(positions, float)
    w = np.ones_like(m) if weights is None else np.asarray(weights, float)
    w = w / w.mean()
    # polyfit weighs residuals by w (1/sigma), so pass sqrt of 1/sigma**2
    (spacing, a), cov = np.polyfit(m, p, 1, w=np.sqrt(w), cov="unscaled")
    resid = p - (a + spacing * m)
    dof = len(m) - 2
    sigma2 = max(np.sum(w * resid ** 2) / dof if dof > 0 else 0.0, floor_px ** 2)
    return float(a), float(spacing), float(np.sqrt(sigma2 * cov[0, 0]))


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


#: A satellite stands this many times above the lowest point beside it ...
_SATELLITE_CONTRAST = 2.0
#: ... and this many Poisson sigma above it.
_SATELLITE_SNR = 5.0


def _stands_out(peak: float, floor: float, min_contrast: float = _SATELLITE_CONTRAST,
                snr: float = _SATELLITE_SNR) -> bool:
    """Whether a local maximum ``peak`` (counts) is a satellite over the
    lowest point ``floor`` beside it: ``min_contrast`` times and ``snr``
    Poisson sigma above it."""
    return bool(peak > min_contrast * floor and peak - floor > snr * np.sqrt(peak + 1))


def _tooth_strength(profile: np.ndarray, positions: np.ndarray) -> np.ndarray:
    """The profile at each tooth (at least 1): the comb fit's weights. A
    satellite is displaced by the tails of its neighbours in proportion to
    their amplitude over its own, so a position's error goes as
    1 / sqrt(intensity): weigh by intensity (the faint far orders would
    otherwise rule the slope through their leverage)."""
    return np.array([max(np.nan_to_num(profile[int(round(x))]), 1.0) for x in positions])


def _satellite_series(profile: np.ndarray, centre: float, *, max_misses: int = 1,
                      min_contrast: float = _SATELLITE_CONTRAST, snr: float = _SATELLITE_SNR):
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
    if 0 <= c < n and not np.isfinite(profile[c]):  # a masked specular rod
        profile = _bridge(profile, max_run=15)
    if 1 <= c < n - 1 and np.all(np.isfinite(profile[c - 1:c + 2])):
        # the centre may fall between pixels: start on the brighter one
        c = c - 1 + int(np.argmax(profile[c - 1:c + 2]))
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
                ok = np.isfinite(floor) and _stands_out(peak, floor, min_contrast, snr)
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


def _robust_spacing(orders: np.ndarray, positions: np.ndarray, weights=None, *,
                    pairs: bool = False, min_tol: float = 0.3):
    """Line fit of position against order that drops outliers (a satellite
    or fringe displaced by a neighbour or by a superlattice peak, a bad
    pixel).

    With ``pairs``, only orders seen on both sides of the peak are used when
    at least two such pairs exist: the interference of neighbouring
    satellites often shifts the satellites of both sides the same way, and a
    pair cancels that. Returns ``(orders, positions, origin, spacing,
    spacing_err)`` of the points kept.
    """
    orders, positions = np.asarray(orders), np.asarray(positions, float)
    w = np.ones(len(orders)) if weights is None else np.asarray(weights, float)
    if pairs:
        both = np.array([(m == 0) or (-m in orders) for m in orders])
        if np.sum(both & (orders > 0)) >= 2:
            orders, positions, w = orders[both], positions[both], w[both]
    keep = np.ones(len(orders), bool)
    for _ in range(8):
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
    return orders[keep], positions[keep], a, s, e


def _refine_max(profile: np.ndarray, i: int) -> float:
    """Sub-pixel position of a local maximum: parabola through the log of
    the three samples around it."""
    if 0 < i < len(profile) - 1:
        y = np.log(np.maximum(profile[i - 1:i + 2], 1e-12 * max(profile[i], 1e-300)))
        if np.all(np.isfinite(y)):
            return i + float(np.clip(parabola_vertex(*y), -0.5, 0.5))
    return float(i)


@dataclass
class SatelliteComb:
    """The satellites along an in-plane axis: ``position = origin + spacing *
    order``, orders counted from an arbitrary satellite (which one is the
    zeroth order is decided elsewhere, see
    :func:`nanotools.preprocess.bragg.locate_bragg_peak`).

    Attributes
    ----------
    origin_px, spacing_px, spacing_err_px
        The comb's line (pixels along the axis) and the slope's standard
        error.
    orders, positions_px
        The satellites found, their orders and sub-pixel positions.
    profile
        The projection they were found on (NaN where a gap hides it).
    """

    origin_px: float
    spacing_px: float
    spacing_err_px: float
    orders: np.ndarray
    positions_px: np.ndarray
    profile: np.ndarray


def satellite_comb(intensity: np.ndarray, mask: np.ndarray | None, *, axis: int = 0,
                   start: float | None = None, centre: float | None = None
                   ) -> SatelliteComb | None:
    """Find the comb of satellites along an in-plane ``axis``.

    The map is projected on ``axis`` (summed over the others), the
    satellites are followed outward from ``start`` (the brightest feature of
    the projection if None) and a line is fitted to their positions against
    their order (pairs of orders on both sides, weighted by intensity, with
    outliers dropped). Returns None when fewer than two satellites are found.

    Parameters
    ----------
    intensity
        Counts, shape ``(nx[, ny], nz)``.
    mask
        Bool, same shape, or None; masked pixels are filled from their
        neighbours, positions more than half masked are NaN.
    axis
        The in-plane axis.
    start
        Pixel along ``axis`` of one satellite (or the peak) to start from.
    centre
        The Bragg peak along ``axis`` (pixels), if known: orders are then
        counted from the tooth nearest it (so pairs of orders are pairs
        about the peak); otherwise from ``start``.

    Returns
    -------
    SatelliteComb or None
    """
    intensity = np.asarray(intensity, float)
    mask = as_mask(intensity, mask)
    profile = _projection(intensity, mask, axis)
    if start is None:
        smooth = ndimage.gaussian_filter1d(np.nan_to_num(profile), 1.0)
        start = float(np.argmax(smooth))
    found = _satellite_series(profile, start)
    if found is None:
        return None
    orders, positions, _ = found
    strength = _tooth_strength(profile, positions)
    if centre is not None:  # count the orders from the tooth nearest the centre
        a, s, _ = _linear_fit(orders, positions, strength)
        orders = orders - int(np.round((centre - a) / s))
    orders, positions, origin, spacing, err = _robust_spacing(orders, positions, strength,
                                                              pairs=True)
    return SatelliteComb(origin, spacing, err, orders, positions, profile)


#: Largest relative standard error of a measured period: the satellites of
#: a texture line up to 0.1-0.5 % (validation family, stress benchmark); a
#: comb scattered by 3 % has a side lobe or noise among its teeth.
_PERIOD_SCATTER = 0.03


def _on_comb(comb: SatelliteComb, profile: np.ndarray) -> bool:
    """Whether the brightest measured sample of ``profile`` (the comb's
    projection) lies within a quarter spacing (at least 2 pixels) of one of
    the comb's teeth."""
    if not np.isfinite(profile).any():
        return False
    brightest = float(np.nanargmax(profile))
    k = np.round((brightest - comb.origin_px) / comb.spacing_px)
    miss = abs(brightest - (comb.origin_px + k * comb.spacing_px))
    return bool(miss <= max(2.0, 0.25 * abs(comb.spacing_px)))


#: Satellite spacings (pixels) are scanned from this one up, in steps of
#: :data:`_COMB_STEP_PX`: closer satellites would overlap their own width.
_MIN_SPACING_PX = 4.0
_COMB_STEP_PX = 0.05
#: Two combs agree when their spacings differ by less than this share.
_COMB_AGREE = 0.05


def _comb_score(profile: np.ndarray, centre: float, spacings: np.ndarray) -> np.ndarray:
    """How well teeth at ``centre +- k s`` (k = 1, 2, ...) sit on the peaks of
    ``profile``, for each spacing ``s``: the sum over the teeth inside the
    profile of its logarithm's 3-pixel maximum at the tooth minus the mean
    of the same at the two midpoints beside it. Teeth on satellites count
    their contrast; teeth laid at random count 0 on average, so the right
    spacing beats its halves (half the teeth fall between satellites, with
    satellites beside them) and its multiples (fewer teeth, satellites at
    their midpoints). NaN samples (a masked rod, a gap) are skipped; -inf
    where fewer than one tooth on each side remains."""
    n = len(profile)
    logp = np.log(np.maximum(profile, 0.0) + 1.0)
    top = ndimage.maximum_filter1d(np.where(np.isfinite(logp), logp, -np.inf), 3)
    scores = np.full(len(spacings), -np.inf)
    for i, s in enumerate(spacings):
        k = np.arange(1, int((n - 1) / s) + 2)
        x = np.concatenate([centre + k * s, centre - k * s])
        side = np.concatenate([np.ones(len(k)), -np.ones(len(k))])
        inside = (x >= 1) & (x <= n - 2)
        x, side = x[inside], side[inside]
        mids = np.clip(np.rint([x - side * s / 2, x + side * s / 2]).astype(int), 0, n - 1)
        with np.errstate(invalid="ignore"):  # -inf - -inf: a masked tooth and midpoint
            contrast = top[np.rint(x).astype(int)] - 0.5 * (top[mids[0]] + top[mids[1]])
        good = np.isfinite(contrast)
        if (good & (side > 0)).any() and (good & (side < 0)).any():
            scores[i] = contrast[good].sum()
    return scores


def _comb_about_centre(profile: np.ndarray, centre: float) -> SatelliteComb | None:
    """The comb of satellites symmetric about a known Bragg peak.

    The spacing that scores best (:func:`_comb_score`) is taken as a guess;
    each tooth is then the local maximum within a fifth of a spacing of its
    guess (NaN-free, at least a pixel), refined to a sub-pixel position, and
    the line is fitted as in :func:`satellite_comb`. Unlike the search that
    follows the orders outward one by one, it needs nothing at the centre
    (a masked specular rod, a zeroth order weaker than its side lobes) and
    weighs every order at once. None where fewer than two teeth are found.
    """
    n = len(profile)
    room = max(centre, n - 1 - centre)
    spacings = np.arange(_MIN_SPACING_PX, room, _COMB_STEP_PX)
    if not spacings.size:
        return None
    scores = _comb_score(profile, centre, spacings)
    if not np.isfinite(scores).any():
        return None
    s = float(spacings[int(np.argmax(scores))])
    orders, positions = [], []
    for side in (1, -1):
        for k in range(1, int(room / s) + 2):
            x = centre + side * k * s
            reach = max(1.0, 0.2 * s)
            lo, hi = int(np.floor(x - reach)), int(np.ceil(x + reach))
            if lo < 1 or hi > n - 2:
                break
            if not np.all(np.isfinite(profile[lo - 1:hi + 2])):
                continue
            i = lo + int(np.argmax(profile[lo:hi + 1]))
            # a satellite, as in :func:`_satellite_series`: a local maximum
            # that stands out above the lowest point within half a spacing
            # (a flat or smooth stretch has none)
            around = profile[max(int(i - s / 2), 0):min(int(i + s / 2) + 1, n)]
            floor = max(float(np.nanmin(around)), 0.0)
            peak = float(profile[i])
            if peak >= profile[i - 1] and peak >= profile[i + 1] and _stands_out(peak, floor):
                orders.append(side * k)
                positions.append(_refine_max(profile, i))
    # the first harmonic is what makes the period: a comb without a first
    # order on either side is laid on something else (the side lobes of
    # every satellite, spaced by the inverse patch width)
    if len(orders) < 2 or not ({1, -1} & set(orders)):
        return None
    orders, positions = np.array(orders), np.array(positions)
    orders, positions, origin, spacing, err = _robust_spacing(
        orders, positions, _tooth_strength(profile, positions), pairs=True)
    return SatelliteComb(origin, spacing, err, orders, positions, profile)


def _multiple(ratio: float) -> int:
    """The whole number ``ratio`` is within :data:`_COMB_AGREE` of (0 if none)."""
    k = int(round(ratio))
    return k if k >= 1 and abs(ratio - k) < _COMB_AGREE * ratio else 0


def _peak_near(profile: np.ndarray, x: float) -> float:
    """Largest finite sample within a pixel of ``x`` (0 outside or masked)."""
    i = int(round(x))
    part = profile[max(i - 1, 0):min(i + 2, len(profile))]
    part = part[np.isfinite(part)]
    return float(part.max()) if part.size else 0.0


def _finer_comb_holds(fine: SatelliteComb, k: int, centre: float) -> bool:
    """Whether a comb ``k`` times finer than another is the texture's: its
    first orders, beside the Bragg peak, must be at least as bright as its
    orders +-k (the coarser comb's first orders). Otherwise its extra teeth
    are the Bragg peak's side lobes or the fringes between satellites (a
    one-patch map), not satellites."""
    def brightness(order: int) -> float:
        return float(np.mean([_peak_near(fine.profile, centre + m * fine.spacing_px)
                              for m in (-order, order)]))
    return brightness(1) >= brightness(k)


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
    # from the peak outward and from the brightest satellite (a masked
    # specular rod or a weak zeroth order can stop the first, or make it
    # take every other satellite): the comb with more satellites
    combs = [c for c in (satellite_comb(intensity, mask, axis=axis, start=centre, centre=centre),
                         satellite_comb(intensity, mask, axis=axis, centre=centre))
             if c is not None]
    # every satellite lies on the comb, the brightest one too: a comb that
    # misses it is made of side lobes and noise (a masked zeroth order with
    # the first orders beside it, a 12 nm laminate measured as 4.3 nm)
    combs = [c for c in combs if _on_comb(c, c.profile)]
    comb = max(combs, key=lambda c: len(c.orders), default=None)
    # and the comb laid symmetrically about the peak, every order weighed at
    # once: it wins where the search outward found nothing (a masked zeroth
    # order whose side lobes outshine weak satellites), where it found
    # every other satellite (an autocorrelation that peaks at two
    # spacings), or where the two disagree otherwise; a coarser one never
    about = _comb_about_centre(_projection(intensity, mask, axis), float(centre))
    if about is not None:
        # the comb is laid from the peak: its on-comb test skips the peak
        # and its side lobes (within 3/4 of a spacing), which a masked
        # specular rod leaves as the brightest samples
        near = np.abs(np.arange(len(about.profile)) - centre) < 0.75 * about.spacing_px
        if not _on_comb(about, np.where(near, np.nan, about.profile)):
            about = None
    if about is not None:
        if comb is None:
            comb = about
        else:
            finer, coarser = (_multiple(comb.spacing_px / about.spacing_px),
                              _multiple(about.spacing_px / comb.spacing_px))
            if finer >= 2:
                if _finer_comb_holds(about, finer, float(centre)):
                    comb = about
            elif finer != 1 and coarser < 2:
                comb = about
    if comb is None:
        raise InputError("no satellites found along the in-plane axis: cannot measure the "
                         "texture period (give period_nm)")
    orders, positions = comb.orders, comb.positions_px
    spacing, err = comb.spacing_px, comb.spacing_err_px
    value, value_err = _length_from_spacing(spacing, err, step)
    n_sat = int(np.sum(orders != 0))
    if value_err > _PERIOD_SCATTER * value:
        # satellites that do not line up are not one comb: a side lobe
        # taken for a satellite where few orders fit the map (a 50-pixel
        # crop with the zeroth order masked: 13.3 ± 1.0 nm for 12)
        raise InputError(
            f"the satellites found along the in-plane axis do not line up: period "
            f"{value:.2f} ± {value_err:.2f} nm from {n_sat} satellites (orders "
            f"{', '.join(str(int(m)) for m in orders)} at pixels "
            f"{', '.join(f'{x:.1f}' for x in positions)}); too few satellites to trust "
            "(give period_nm)")
    note = (f"period {value:.2f} ± {value_err:.2f} nm from {n_sat} satellites "
            f"(orders {orders.min()}..{orders.max()})")
    return LengthMeasurement(value, value_err, spacing, err, orders, positions, note)


# ---------------------------------------------------------------------------
# Patterson function: the thickness
# ---------------------------------------------------------------------------

def _despiked(intensity: np.ndarray, mask: np.ndarray, ratio: float = 4.0) -> np.ndarray:
    """Unmasked hot pixels (brighter than ``ratio`` times their brightest
    neighbour) replaced by the median of their neighbourhood: one spike in a
    rod would add a flat floor to its Patterson function, while no pixel of
    a film's map outshines all its neighbours by that much. (Dark pixels
    are left: a fringe minimum sampled on its zero is one.)"""
    data = np.where(mask, 0.0, np.nan_to_num(intensity))
    footprint = np.ones((3,) * data.ndim, bool)
    footprint[(1,) * data.ndim] = False
    neighbours = ndimage.maximum_filter(data, footprint=footprint, mode="nearest")
    spikes = data > ratio * neighbours + 10.0
    return np.where(spikes, ndimage.median_filter(data, size=3, mode="nearest"), data)


#: The Patterson function of a film sampled at least ~2.2 times along z
#: vanishes at lags beyond this fraction of the column length; masked
#: samples are filled so that it does (see :func:`_fill_from_support`).
_SUPPORT_FRACTION = 0.45
#: Largest Poisson standard deviation of the filled samples' sum, as a
#: fraction of the spline's, over the whole map, for the support's fill to
#: be used. Across the film peak of family draw 22 it is 1 % for a gap of
#: 3 pixels (thickness 23.96 nm for 24.00) and 6 % for 4 (24.01 nm), 650 %
#: for 5: the missing peak's height is an extrapolation whose noise grows
#: exponentially with the gap's width. In a rod's tail the fill is not
#: determined at all (over 100 %: the map's edges cut the fringes, and
#: that leaks into every lag).
_FILL_NOISE = 0.1
#: Largest share of the counts a spline may guess across masked samples
#: before the thickness is refused: a 4-pixel gap beside the film peak of
#: family draw 22, 11 % guessed, gave 4.2 nm for 24.
_MAX_GUESSED = 0.05


def _fill_from_support(column: np.ndarray, bad: np.ndarray, support: float = _SUPPORT_FRACTION
                       ) -> tuple[np.ndarray, float]:
    """The masked samples of one intensity column under which its
    autocorrelation (inverse DFT) vanishes at lags beyond ``support``
    (a fraction of its length; linear least squares), and the Poisson
    standard deviation of their sum.

    Parameters
    ----------
    column
        ``(n,)`` counts; the masked samples' values are ignored.
    bad
        ``(n,)`` bool: the masked samples.

    Returns
    -------
    fill, sigma_sum
        ``(bad.sum(),)`` values (counts) and the standard deviation of their sum.
    """
    n = len(column)
    lags = np.abs(np.fft.fftfreq(n) * n)
    outside = np.flatnonzero(lags > support * n)
    # rows of the inverse DFT at the outside lags, real and imaginary parts stacked
    rows = np.exp(2j * np.pi * np.outer(outside, np.arange(n)) / n) / n
    rows = np.concatenate([rows.real, rows.imag])
    gain = -np.linalg.pinv(rows[:, bad]) @ rows[:, ~bad]   # fill = gain @ measured samples
    measured = np.clip(column[~bad], 0.0, None)
    sigma_sum = float(np.sqrt(np.sum(gain.sum(axis=0) ** 2 * measured)))
    return gain @ measured, sigma_sum


def _columns_along(intensity: np.ndarray, mask: np.ndarray, axis: int,
                   support: float | None = None):
    """The map as rows of profiles along ``axis``: ``(n_columns, n)`` counts
    with masked samples filled (a gap must not cut a column's Fourier
    transform), whether each column is usable (at least half of it
    measured), and the share of the usable columns' counts that a spline
    guessed (0 where the support's fill was used). A ``support`` (fraction
    of the column length) forces the support's fill with that support.

    A cubic spline across a detector gap at the film peak misses the
    peak's true height, and the hole it leaves rings through the whole
    Patterson function (validation-family draw 22: no edge found, the fall
    7-9 % short). The film's finite thickness fixes a short gap's samples
    instead (:func:`_fill_from_support`; draw 22: 23.96 nm for 24.00), and
    they are used where the counts determine them to ``_FILL_NOISE``, all
    columns or none (a mix of the two fills is worse than either); else
    the spline is kept."""
    data = np.moveaxis(np.where(mask, np.nan, intensity), axis, -1)
    data = data.reshape(-1, data.shape[-1])
    good = np.isfinite(data)
    usable = good.mean(axis=1) >= 0.5
    idx = np.arange(data.shape[1])
    gapped = np.flatnonzero(usable & ~good.all(axis=1))
    splines, fills, var, total = [], [], 0.0, 0.0
    for c in gapped:
        fill, sigma = _fill_from_support(np.where(good[c], data[c], 0.0), ~good[c],
                                         _SUPPORT_FRACTION if support is None else support)
        fills.append(fill)
        if support is None:  # the spline, and the fill's noise against it
            splines.append(interpolate.CubicSpline(idx[good[c]], data[c, good[c]])(idx)[~good[c]])
            var, total = var + sigma ** 2, total + float(np.clip(splines[-1], 0.0, None).sum())
    use_fill = support is not None or np.sqrt(var) <= _FILL_NOISE * total
    for i, c in enumerate(gapped):
        data[c, ~good[c]] = np.clip(fills[i] if use_fill else splines[i], 0.0, None)
    data[~usable] = 0.0
    guessed = 0.0 if use_fill else total / max(float(data[usable].sum()), 1e-30)
    return data, usable, guessed


def patterson_along(intensity: np.ndarray, mask: np.ndarray | None, *, axis: int = -1
                    ) -> np.ndarray:
    """Magnitude of the Patterson function along ``axis``, summed over every
    other position of the map.

    The inverse Fourier transform of the intensity along ``q_z`` on one rod
    is the autocorrelation of the film's field along ``z`` there; its
    magnitude is independent of where the peak falls between pixels and of
    a ``q_z`` shift of the rod (inclined walls), and it vanishes beyond
    ``|dz| = t`` on every rod. Summing the magnitudes of all rods uses all
    the data, not only the central rod's fringes. A flat background only
    adds to ``dz = 0``.

    Parameters
    ----------
    intensity
        Counts, shape ``(nx[, ny], nz)``.
    mask
        Bool, same shape, or None; rods less than half measured are left
        out (a masked specular rod), gaps in the others interpolated.
    axis
        The out-of-plane axis.

    Returns
    -------
    float64 array ``(n // 2 + 1,)``: the summed magnitude at ``dz = 0, 1,
    ...`` real-space pixels (``2 pi / (n q_step)`` each).
    """
    return _patterson(intensity, mask, axis)[0]


def _patterson(intensity, mask, axis: int, support: float | None = None
               ) -> tuple[np.ndarray, float, int]:
    """:func:`patterson_along`, the share of the counts in it that a spline
    guessed across masked samples (see :func:`_columns_along`, also for
    ``support``), and the number of rods summed."""
    intensity = np.asarray(intensity, float)
    mask = as_mask(intensity, mask)
    axis = axis % intensity.ndim
    columns, usable, guessed = _columns_along(_despiked(intensity, mask), mask, axis, support)
    n = columns.shape[1]
    pattersons = np.abs(np.fft.ifft(columns[usable], axis=1))
    return pattersons.sum(axis=0)[:n // 2 + 1], guessed, int(usable.sum())


#: Supports tried for a gap's fill when the usual one fails (fractions of
#: the column length; see :func:`_tightest_support`), and the margin added
#: to the one chosen.
_SUPPORT_SCAN = np.arange(0.45, 0.149, -0.01)
_SUPPORT_MARGIN = 0.02
#: Largest chi-square per lag (Poisson noise of the measured samples) of
#: the Patterson function beyond the chosen support for the fill to be
#: used: 0.7-4.9 on family draws with gaps of 3-5 rows that it measured
#: within 1.5 %, 53 or more on draw 22 with gaps of 4-10 rows that it
#: measured 9-76 % wrong.
_SUPPORT_CHI2 = 10.0


def _tightest_support(intensity: np.ndarray, mask: np.ndarray, axis: int
                      ) -> tuple[float, float]:
    """The support (fraction of the column length) under which a detector
    gap's fill best explains the data, plus ``_SUPPORT_MARGIN`` (at most
    ``_SUPPORT_FRACTION``), and the chi-square per lag left beyond it.

    The usual support (``_SUPPORT_FRACTION``, any film the window holds)
    leaves too few lags outside it to pin down a wide gap's samples: on a
    5-row gap across the film peak their fill is mostly noise (family
    draws 62, 130: 57-72 % of the counts guessed). A support near the
    film's own extent pins them down; a support inside the film cannot be
    met and leaves the Patterson function's values beyond it. Each support
    of ``_SUPPORT_SCAN`` fills the gap (:func:`_fill_from_support`); the one
    whose Patterson function beyond it is closest to the Poisson noise of
    the measured samples (``sum(counts) / n**2`` per lag and column) is
    chosen: on maps without a gap that chi-square is 1.0-1.3 at every
    support beyond the film and rises by orders of magnitude inside it.
    """
    data = _despiked(intensity, mask)
    n = intensity.shape[axis]
    lags = np.abs(np.fft.fftfreq(n) * n)
    measured = np.moveaxis(~mask, axis, -1).reshape(-1, n)
    chi2 = []
    for f in _SUPPORT_SCAN:
        columns, usable, _ = _columns_along(data, mask, axis, float(f))
        beyond = np.abs(np.fft.ifft(columns[usable], axis=1)[:, lags > f * n]) ** 2
        noise = np.where(measured[usable], columns[usable], 0.0).sum(axis=1) / n ** 2
        chi2.append(float(beyond.sum() / max(noise.sum() * beyond.shape[1], 1e-300)))
    best = int(np.argmin(chi2))
    return min(float(_SUPPORT_SCAN[best]) + _SUPPORT_MARGIN, _SUPPORT_FRACTION), chi2[best]


#: The edge is guessed where the Patterson function has fallen to this
#: fraction of its value beside dz = 0 (above its floor).
_EDGE_LEVEL = 0.05
#: The line and floor are fitted between these fractions of the guess.
_EDGE_WINDOW = (0.85, 1.3)
#: Where the line and floor misfit, the edge is guessed once more at this
#: lower level, below the shoulder a film strained strongly near its
#: interfaces leaves before its edge (3-5 %; see
#: :func:`_steepest_after_shoulder`), and the line fitted from the fall
#: after that shoulder only.
_SHOULDER_LEVEL = 0.01
#: A step inside the edge window that falls less than this fraction as
#: steeply as the steepest step of the fall after it is a shoulder (see
#: :func:`_steepest_after_shoulder`): 0.1 or less (or a rise) on the
#: family draws with one, about 1 along a straight fall that noise ripples.
_SHOULDER_SLOPE = 0.5
#: A dip below the edge level is mid-film, not the edge, when the function
#: climbs back above this fraction of its value beside dz = 0 (above its
#: floor) after it: the rods of a vortex whose zeroth order is masked (the
#: odd orders' fields change sign through the film) cancel at a lag inside
#: it. Noise near a real edge climbs back by far less.
_DIP_RISE = 0.2
#: Where neither level finds a straight edge, the guess is made where the
#: function leaves its floor: this many standard deviations of the floor's
#: samples above it (at least 0.1 % of the function beside dz = 0). The
#: rods of a vortex (flux-closure) texture fall as a curve from dz = 0
#: nearly to the floor: its displacement vanishes at both interfaces, so
#: every satellite order's field fades towards them and only the last 3-5
#: pixels fall straight (family draws 35, 199, 253; refused before).
_FLOOR_SIGMAS = 5.0
#: ... and the function at the window's start must stand this many times
#: above the floor: a slow tail into the floor (the ringing of a badly
#: filled gap, family draw 117: 1.8 times) is no edge; the vortex draws
#: stand 7-60 times above it there.
_FLOOR_RISE = 4.0
#: ... and its last three steps before the edge must be within this factor
#: of each other: 1.0-2.0 on the vortex draws.
_STRAIGHT_STEPS = 2.5
#: Largest RMS misfit of the edge model, as a fraction of the function's
#: value at the window's start: 0.001-0.01 on most family draws, 0.05 for a
#: Gaussian blob with no interfaces, 0.04-0.09 on the draws whose thickness
#: came out 14-15 % wrong.
_EDGE_MISFIT = 0.04


def _slab_edge(d: np.ndarray, t: float, slope: float, floor: float) -> np.ndarray:
    """Near its edge the Patterson magnitude of a slab falls linearly to zero
    at ``t``; noise leaves a floor that adds in quadrature."""
    return np.hypot(slope * np.maximum(t - d, 0.0), floor)


class _NoFit(Exception):
    """A feature that cannot be fitted (a masked satellite, too few pixels,
    an edge that is not there)."""


def _edge_guess(patterson: np.ndarray, ref: float, floor: float,
                level: float = _EDGE_LEVEL) -> float:
    """First guess of the edge (pixels): where the function falls below
    ``floor + level * (ref - floor)`` and stays there, a dip that climbs
    back above ``_DIP_RISE`` of the way (a mid-film cancellation) passed
    over."""
    d = np.arange(len(patterson))
    below = (patterson < floor + level * (ref - floor)) & (d >= 3)
    high = patterson > floor + _DIP_RISE * (ref - floor)
    for i in np.flatnonzero(below & ~np.r_[False, below[:-1]]):  # starts of dips
        if not high[i:].any():
            return float(i)
    raise _NoFit


def _edge_with_floor(patterson: np.ndarray):
    """Where the summed Patterson magnitude meets its noise floor: a line
    and a floor (:func:`_slab_edge`) fitted with a robust loss near the edge
    guessed where the function has nearly reached the floor
    (:func:`_edge_guess`); where that misfits, once more from the guess at
    ``_SHOULDER_LEVEL`` with the window started at the steepest step of the
    fall after a shoulder (:func:`_steepest_after_shoulder`). Returns
    ``(t, err)`` in pixels."""
    try:
        return _edge_fit(patterson)
    except _NoFit:
        return _edge_fit(patterson, _SHOULDER_LEVEL, from_shoulder=True)


def _ref_and_floor(patterson: np.ndarray) -> tuple[float, float, np.ndarray]:
    """The function's value beside dz = 0 (dz = 0 itself carries the noise
    and a flat background, so the reference is taken just beside it), its
    floor (the median of its last eighth) and those last samples."""
    tail = patterson[-max(len(patterson) // 8, 3):]
    return float(np.median(patterson[1:4])), float(np.median(tail)), tail


def _edge_at_floor(patterson: np.ndarray):
    """:func:`_edge_fit` with the guess made where the function leaves its
    floor (``_FLOOR_SIGMAS``), for a fall that curves nearly all the way
    down; :class:`_NoFit` where the window starts less than ``_FLOOR_RISE``
    times above the floor. Returns ``(t, err)`` in pixels."""
    ref, floor, tail = _ref_and_floor(patterson)
    rise = max(ref - floor, 1e-300)
    level = max(_FLOOR_SIGMAS * float(np.std(tail)), 1e-3 * rise) / rise
    t_px, err = _edge_fit(patterson, level, min_rise=_FLOOR_RISE)
    # an edge falls straight; a blob with no interfaces (a Gaussian) falls
    # by a shrinking share each pixel: 3.5-6 x between steps there
    k = int(t_px)
    steps = -np.diff(patterson[max(k - 3, 0):k + 1])
    if len(steps) < 3 or steps.min() <= 0 or steps.max() > _STRAIGHT_STEPS * steps.min():
        raise _NoFit
    return t_px, err


def _steepest_after_shoulder(patterson: np.ndarray, guess: float, start: float) -> int:
    """Where the line is fitted from when a shoulder interrupts the window
    (pixels): the steepest step of the last fall before ``guess``, found
    walking back from it; walking on while the steps flatten reaches the
    shoulder, a step that falls less than ``_SHOULDER_SLOPE`` times as
    steeply (or rises).

    Near the edge only the film's top and bottom rows overlap, and the
    function falls linearly as long as their fields keep one phase
    relation; a film whose strain varies strongly near its interfaces (a
    harmonic or amplitude texture of 3-3.5 rad) keeps it for 2-3 pixels
    only: before that the rods cancel into a low shoulder (3-5 % of the
    function beside dz = 0, 2-6 pixels long; family draws 54, 79) and the
    fall from it is rounded down to its steepest step. Raises
    :class:`_NoFit` where no shoulder lies after ``start`` (the window's
    usual start): a function that falls all the way (a Gaussian blob), or
    that noise only ripples, has been fitted as it is."""
    g = min(int(guess), len(patterson) - 1)
    if g < 2:
        raise _NoFit
    fall = np.diff(patterson[:g + 1])  # fall[k]: from sample k to k + 1
    k = g - 1
    while k > 0 and fall[k - 1] <= fall[k]:  # back to the steepest step
        k -= 1
    steep = k
    while k > 0 and fall[k - 1] > fall[k]:  # back while the steps flatten
        k -= 1
    if k < start or k == steep or fall[k] < _SHOULDER_SLOPE * fall[steep]:
        raise _NoFit
    return steep


def _edge_fit(patterson: np.ndarray, level: float = _EDGE_LEVEL, from_shoulder: bool = False,
              min_rise: float = 0.0):
    """:func:`_edge_with_floor` with the guess made at ``level``; with
    ``from_shoulder`` the window starts at the steepest step of the fall
    after a shoulder inside it (:class:`_NoFit` where there is none); with
    ``min_rise``, :class:`_NoFit` where the function at the window's start
    is less than that many times the floor."""
    d = np.arange(len(patterson), dtype=float)
    ref, floor, _ = _ref_and_floor(patterson)
    if ref <= 2 * floor:
        raise _NoFit
    guess = _edge_guess(patterson, ref, floor, level)
    # the line is fitted on the last stretch only: away from the edge the
    # function curves (the texture decorrelates the field along z)
    # (at least 3 pixels either side: a thin film spans few pixels)
    start = max(min(_EDGE_WINDOW[0] * guess, guess - 3), 2)
    if from_shoulder:
        start = _steepest_after_shoulder(patterson, guess, start)
    window = (d >= start) & (d <= min(max(_EDGE_WINDOW[1] * guess, guess + 3), len(d) - 1))
    if window.sum() < 5:
        raise _NoFit
    x, y = d[window], patterson[window]
    if y[0] < min_rise * floor:
        raise _NoFit
    scale = float(y.max())
    # first guesses from the data: the fall from the window's start to the
    # floor at the guessed edge
    slope0 = max((y[0] - floor) / max(guess - x[0], 1.0), 1e-6 * scale)
    p0 = [guess, slope0, max(floor, 1e-3 * scale)]
    try:
        fit = optimize.least_squares(lambda p: (_slab_edge(x, *p) - y) / scale, p0,
                                     bounds=([2.0, 0.0, 0.0], [len(d) - 1.0, np.inf, np.inf]),
                                     loss="soft_l1", f_scale=0.02)
    except (ValueError, np.linalg.LinAlgError):
        raise _NoFit from None
    t_px = float(fit.x[0])
    if not (x[0] < t_px < x[-1]) or fit.x[1] <= 0:
        raise _NoFit
    dof = max(len(x) - 3, 1)
    cov = np.linalg.pinv(fit.jac.T @ fit.jac) * np.sum(fit.fun ** 2) / dof
    err = float(np.sqrt(max(cov[0, 0], 0.0)))
    # a film's interfaces make a straight edge; a function that the line
    # and floor misfit (no sharp interfaces, a gap across the film peak, an
    # unmasked substrate) gives no thickness to trust
    if np.sqrt(np.mean(fit.fun ** 2)) > _EDGE_MISFIT:
        raise _NoFit
    # the corner is rounded (partly filled interface rows, the q range's
    # truncation) and the rounding lifts the hinge outward: the straight
    # stretch before it, extrapolated to zero, is what vanishes at t
    straight = (x <= t_px - 1.0) & (y > 3 * fit.x[2])
    if straight.sum() >= 3:
        slope, intercept = np.polyfit(x[straight], y[straight], 1)
        if slope < 0 and abs(-intercept / slope - t_px) < 2.0:
            t_px = float(-intercept / slope)
    return t_px, err


def _edge_at_half_period(patterson: np.ndarray):
    """The edge of a film sampled near the Nyquist limit (thickness close to
    half the real-space period ``2 pi / q_step``): the function falls
    straight to the end of its half period with no floor after it; a line
    through its last 40 % (:func:`numpy.polyfit`) crosses zero at ``t``.
    Returns ``(t, err)`` in pixels."""
    n = len(patterson)
    d = np.arange(n, dtype=float)
    part = d >= max(0.6 * (n - 1), 2)
    if part.sum() < 3:
        raise _NoFit
    (slope, intercept), cov = np.polyfit(d[part], patterson[part], 1, cov="unscaled")
    if slope >= 0:
        raise _NoFit
    t_px = -intercept / slope
    if not (0.6 * (n - 1) < t_px < 1.1 * (n - 1)):
        raise _NoFit
    resid = patterson[part] - (intercept + slope * d[part])
    if np.sqrt(np.mean(resid ** 2)) > _EDGE_MISFIT * patterson[part][0]:
        raise _NoFit  # not a straight fall: no edge to extrapolate
    sigma2 = max(np.sum(resid ** 2) / max(part.sum() - 2, 1), 1e-30)
    # t = -b/a: first-order propagation of the covariance of (a, b)
    grad = np.array([intercept / slope ** 2, -1.0 / slope])
    err = float(np.sqrt(max(grad @ (cov * sigma2) @ grad, 0.0)))
    return float(t_px), err


def measure_thickness(intensity: np.ndarray, mask: np.ndarray | None, q_step, *,
                      axis: int = -1) -> LengthMeasurement:
    """Film thickness from the extent of the Patterson function along ``z``.

    :func:`patterson_along` sums the magnitude of the autocorrelation along
    ``z`` over every rod of the map; for a film of thickness ``t`` it falls
    to zero at ``|dz| = t``, linearly near the edge (only the top and bottom
    interfaces overlap there). A straight line meeting a noise floor
    (:func:`_slab_edge`) is fitted by :func:`scipy.optimize.least_squares`
    with a robust loss between 85 % and 130 % of a first guess (where the
    function has nearly reached its floor); a film sampled near the Nyquist
    limit leaves no floor, and a line through the function's fall gives its
    zero (:func:`_edge_at_half_period`).

    Parameters
    ----------
    intensity
        Counts, background subtracted or not, shape ``(nx[, ny], nz)``.
    mask
        Bool, same shape, or None.
    q_step
        Momentum-transfer step (1/angstrom per pixel): one value or one per
        axis.
    axis
        The out-of-plane axis. The Patterson function does not depend on
        where the peak is: give the whole map, not a window cut around it.

    Returns
    -------
    LengthMeasurement
        ``value_nm`` is the thickness; ``err_nm`` the fit's standard error.

    Raises
    ------
    InputError
        If the Patterson function shows no edge (no film fringes along the
        out-of-plane axis).
    """
    intensity = np.asarray(intensity, float)
    mask = as_mask(intensity, mask)
    axis = axis % intensity.ndim
    n = intensity.shape[axis]
    step = _step_along(q_step, intensity.ndim, axis)
    dz_nm = 2 * np.pi / (n * step) / 10.0
    patterson, guessed, n_rods = _patterson(intensity, mask, axis)
    try:
        if guessed > _MAX_GUESSED:
            raise _NoFit
        t_px, err_px, how = _film_edge(patterson)
    except _NoFit:
        # a detector gap whose usual fill fails: fill it for the tightest
        # support the data bear, and look again
        measured = np.moveaxis(~mask, axis, -1).reshape(-1, n)
        if not np.any((measured.mean(axis=1) >= 0.5) & ~measured.all(axis=1)):
            raise _no_edge(mask, axis) from None
        support, chi2 = _tightest_support(intensity, mask, axis)
        patterson, _, n_rods = _patterson(intensity, mask, axis, support)
        try:
            if chi2 > _SUPPORT_CHI2:
                raise _NoFit
            t_px, err_px, how = _film_edge(patterson)
        except _NoFit:
            if guessed > _MAX_GUESSED:
                raise InputError(
                    f"masked samples hold about {guessed:.0%} of the counts along the "
                    "out-of-plane axis, too many to interpolate and too many for the "
                    "film's extent to fill" + _gap_reason(mask, axis)
                    + ": the thickness cannot be measured (give thickness_nm)") from None
            raise _no_edge(mask, axis) from None
        how += (f", the detector gap filled for a film within {support:.2f} of the window "
                "along z")
    # a film thicker than half the real-space window (fringes sampled less
    # than twice each) wraps its Patterson function, and the edge found in
    # it is the window's own end (a 40 nm film on a 64 nm window measured
    # 32.00 nm). How high the function still is at its end does not tell:
    # on a map of few counts, or interpolated onto an hkl grid, the noise
    # floor reaches 9-18 % of the function beside dz = 0 for a film that
    # fits (a 24 nm laminate on a 64 nm window).
    last = len(patterson) - 1
    if t_px > last - 0.5:
        raise InputError(
            f"no film edge within the real-space window along z: the edge found is at its "
            f"end ({last * dz_nm:.1f} nm, half of 2 pi / q_step); either the film is thicker "
            "than that (its fringes undersampled: measure with a finer q_z step) or a "
            "resolution-limited peak left unmasked (a substrate rod) adds a long tail "
            "(give thickness_nm)")
    value, value_err = t_px * dz_nm, err_px * dz_nm
    note = (f"thickness {value:.2f} ± {value_err:.2f} nm from {how} along z summed over "
            f"{n_rods} rods")
    return LengthMeasurement(value, value_err, note=note)


def _film_edge(patterson: np.ndarray) -> tuple[float, float, str]:
    """The film's edge in the Patterson function (pixels), its standard
    error, and how it was found: a straight fall meeting the floor, else one
    that reaches the window's end (a film sampled near the Nyquist limit),
    else the last straight pixels of a curved fall. :class:`_NoFit` where
    none fits."""
    try:
        return (*_edge_with_floor(patterson), "the extent of the Patterson function")
    except _NoFit:
        pass
    try:
        return (*_edge_at_half_period(patterson), "the Patterson function's straight fall (no "
                "floor: the fringes are sampled near the Nyquist limit)")
    except _NoFit:
        return (*_edge_at_floor(patterson), "the last straight pixels of the Patterson "
                "function's curved fall to its floor")


def _no_edge(mask: np.ndarray, axis: int) -> InputError:
    return InputError("no thickness fringes found along the out-of-plane axis: the Patterson "
                      "function shows no film edge" + _gap_reason(mask, axis)
                      + " (give thickness_nm)")


def _gap_reason(mask: np.ndarray, axis: int) -> str:
    """Why the edge may be hidden: the rows along ``axis`` masked on most
    rods (a detector gap), whose interpolation leaves an error in every
    rod's Patterson function; ``""`` if none."""
    others = tuple(a for a in range(mask.ndim) if a != axis)
    rows = np.flatnonzero(mask.mean(axis=others) > 0.5)
    if not rows.size:
        return ""
    where = f"{rows[0]}" if rows.size == 1 else f"{rows[0]}-{rows[-1]}"
    return (f"; {rows.size} pixel row(s) along it are masked on every rod (a detector gap, "
            f"pixels {where})")




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
                  orders=(0, -1, 1, -2, 2)) -> LengthMeasurement:
    """Width (FWHM) of the coherent patch along an in-plane axis.

    Every satellite is the transform of the patch envelope. Each of
    ``orders`` whose top is measured (not a masked specular rod), in the
    profile summed over the other axes, is fitted within half a satellite
    spacing by the power spectrum of a flat top with cos^2 edges
    (:func:`scipy.optimize.least_squares` on the square root of the counts,
    which weighs the side lobes and is Poisson-stable), free in width, edge
    (from 2 % of the width to all of it, a Hann window, which a Gaussian
    patch resembles), centre, scale and a flat floor. The edge shapes the
    satellite's side lobes and how its top rounds: on the maps of
    ``benchmarks/preprocess_stress.py`` flat-topped patches with edges half
    their FWHM fit as 0.50 of it and Gaussian ones as 0.9-1.0, with their
    FWHM 7-14 % over the truth (10th-90th percentile of draws 0-99) where a
    fixed edge of half a period put it 32 % over (median of draws 0-399).
    An unresolved fit (satellite narrower than
    :data:`_MIN_SATELLITE_FWHM_PX`) is dropped, and so is a satellite much
    broader than the sharpest (:func:`_patch_shaped`:
    disorder and splitting only broaden). The width is the inverse-variance
    mean over the satellites kept, each with a systematic error growing as
    the order squared (:data:`_DISORDER_WIDTH_ERR`; the zeroth order is weak
    where ``J0 < J1``, masked under a substrate rod).

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
        Texture period (nm): bounds the fitting window.
    axis
        The in-plane axis.
    centre
        Position of the Bragg peak along ``axis`` (pixels); found if None.
    orders
        The satellites to fit (0 = the Bragg peak).

    Returns
    -------
    LengthMeasurement
        ``value_nm`` is the patch width, ``err_nm`` its standard error (grown
        by the satellites' disagreement), ``edge_nm`` the edge width (the
        median over the satellites kept).

    Raises
    ------
    InputError
        If no satellite can be fitted.
    """
    intensity = np.asarray(intensity, float)
    mask = as_mask(intensity, mask)
    step = _step_along(q_step, intensity.ndim, axis)
    if centre is None:
        centre = float(locate_peak(intensity, mask)[axis])
    profile = _projection(intensity, mask, axis)
    spacing_px = 2 * np.pi / (period_nm * 10.0) / step  # satellite spacing (pixels)
    fits = {}
    for order in orders:
        try:
            fits[order] = _satellite_width(profile, centre + order * spacing_px, spacing_px,
                                           step * 10.0)
        except _NoFit:
            continue
    if not fits:
        raise InputError("too few measured pixels around the Bragg peak and its first "
                         "satellites to measure the coherent patch")
    edges = {m: f[2] for m, f in fits.items()}
    fits = _patch_shaped({m: f[:2] for m, f in fits.items()})
    edge = float(np.median([edges[m] for m in fits]))
    # inverse-variance mean: a satellite the patch envelope alone does not
    # shape (a first order of a vortex texture split only in part, a weak
    # zeroth order where J0 < J1) fits poorly and weighs little; the error
    # grows with the satellites' disagreement
    widths = np.array([w for w, _ in fits.values()])
    errors = np.array([e for _, e in fits.values()])
    # cell-width disorder broadens order m as m^2: a systematic error of
    # that growth keeps the second orders of an ensemble from pulling the
    # mean down where the zeroth order is masked
    m2 = np.array([float(m) ** 2 for m in fits])
    errors = np.hypot(errors, _DISORDER_WIDTH_ERR * m2 * widths)
    weights = 1.0 / errors ** 2
    width = float(np.sum(weights * widths) / np.sum(weights))
    chi2 = (float(np.sum(weights * (widths - width) ** 2)) / (len(widths) - 1)
            if len(widths) > 1 else 1.0)
    err = float(np.sqrt(max(chi2, 1.0) / np.sum(weights)))
    used = ", ".join(f"{m:+d}" for m in sorted(fits))
    note = (f"coherent patch {width:.1f} ± {err:.1f} nm (FWHM) from the shape of the "
            f"satellites of orders {used}, soft edges {edge:.1f} nm fitted")
    return LengthMeasurement(width, err, note=note, edge_nm=edge)


#: Narrowest satellite (FWHM, pixels) whose width a fit can measure. A
#: satellite sampled by fewer pixels above its half maximum than this fits
#: any wider patch: what is fitted is then a side lobe of a bright
#: neighbour or a noise spike inside the window of a vanishing satellite,
#: and its error collapses to nothing (the family's satellites are 3-5
#: pixels wide).
_MIN_SATELLITE_FWHM_PX = 1.5
#: Smallest relative error of one satellite's width: a smaller one (a fit
#: on its bounds) would outweigh every other satellite.
_MIN_WIDTH_ERR = 1e-3
#: A satellite broader than the sharpest one by more than this factor is
#: not shaped by the patch alone: cell-width disorder (broadening as the
#: order squared), a vortex's split first orders or a satellite lost in the
#: floor widen it, while nothing makes a satellite sharper than its patch.
_MAX_BROADENING = 1.5
#: Standard errors by which the sharpest satellite is discounted before it
#: sets that bound (one noisy fit must not discard the rest).
_SHARPEST_SIGMAS = 2.0
#: Systematic relative error of the width from a satellite of order m, per
#: m^2: jittered cell widths (2-5 % in the validation family) make the
#: phase of order m random-walk across the patch, which narrows the width
#: fitted to the first orders by a few percent and to the second by 10-30 %.
_DISORDER_WIDTH_ERR = 0.02
#: Narrowest soft edge fitted, as a fraction of the patch width: sharper
#: edges change a satellite's shape less than its noise.
_MIN_EDGE_FRACTION = 0.02
#: Starting edge fractions of a satellite's fit: a sharp edge (side lobes)
#: and a soft one (a rounded top, no lobes) are separate minima.
_EDGE_STARTS = (0.1, 0.4, 0.9)


def _patch_shaped(fits: dict) -> dict:
    """The satellite fits (order -> (width, error), nm) that the patch alone
    shapes: those whose width is within :data:`_MAX_BROADENING` of the
    widest width (the sharpest satellite) that is measured to better than
    :data:`_SHARPEST_SIGMAS` standard errors.

    Disorder and splitting only broaden a satellite, so the sharpest
    satellites measure the patch; without the zeroth order (masked under a
    substrate rod) a mean over the first and second orders of a
    disordered or vortex texture, broadened two to six fold, would halve
    the patch.
    """
    fits = {m: (w, max(e, _MIN_WIDTH_ERR * w)) for m, (w, e) in fits.items()}
    sharpest = max(w - _SHARPEST_SIGMAS * e for w, e in fits.values())
    kept = {m: f for m, f in fits.items() if f[0] * _MAX_BROADENING >= sharpest}
    return kept  # never empty: the sharpest satellite passes its own bound


def _satellite_width(profile: np.ndarray, centre: float, spacing_px: float, dq_nm: float):
    """Patch width (nm), its error and the edge width (nm) from one satellite
    of a projected profile: the patch's power spectrum fitted to the square
    root of the counts within half a spacing (least squares, free in width,
    the edge as a fraction of the width, centre, scale and floor; started
    from each of :data:`_EDGE_STARTS`, since a sharp and a soft edge are
    separate minima)."""
    n = len(profile)
    half = max(2, int(np.floor(0.5 * spacing_px)))
    c = int(round(centre))
    lo, hi = max(c - half, 0), min(c + half, n - 1)
    if hi - lo < 4:
        raise _NoFit
    idx = np.arange(lo, hi + 1)
    y = profile[lo:hi + 1]
    good = np.isfinite(y)
    # the satellite's own top must be measured: a masked rod leaves only
    # its shoulders, which fit any width
    if good.sum() < 5 or not np.all(good[max(c - lo - 1, 0):c - lo + 2]):
        raise _NoFit
    idx, y = idx[good], np.maximum(y[good], 0)
    amp = np.sqrt(y)

    def model(p):
        width, frac, x0, scale, floor = p
        e = frac * width
        return np.sqrt(scale * _patch_power((idx - x0) * dq_nm, width, e)
                       / _patch_power(np.zeros(1), width, e)[0] + floor ** 2)

    # first guess: the full width at half maximum of a satellite is about
    # 0.886 * 2 pi / width
    peak_val = float(np.max(y))
    if peak_val <= 0:
        raise _NoFit
    above = idx[y >= peak_val / 2]
    fwhm_px = max(above.max() - above.min() + 1.0, 1.0)
    w0 = 0.886 * 2 * np.pi / (fwhm_px * dq_nm)
    fit = None
    for frac0 in _EDGE_STARTS:
        try:
            trial = optimize.least_squares(
                lambda p: model(p) - amp, [w0, frac0, centre, peak_val, 0.0],
                bounds=([0.2 * w0, _MIN_EDGE_FRACTION, centre - 2, 0, 0],
                        [np.inf, 1.0, centre + 2, np.inf, np.inf]),
                x_scale=[w0, 0.3, 1.0, peak_val, 1.0])
        except (ValueError, np.linalg.LinAlgError):
            continue
        if fit is None or trial.cost < fit.cost:
            fit = trial
    if fit is None:
        raise _NoFit
    dof = max(len(amp) - 5, 1)
    # pinv: the floor often sits on its bound (0), which makes J^T J singular
    cov = np.linalg.pinv(fit.jac.T @ fit.jac) * np.sum(fit.fun ** 2) / dof
    width = float(fit.x[0])
    if 0.886 * 2 * np.pi / (width * dq_nm) < _MIN_SATELLITE_FWHM_PX:
        raise _NoFit
    return width, float(np.sqrt(max(cov[0, 0], 0.0))), float(fit.x[1] * width)

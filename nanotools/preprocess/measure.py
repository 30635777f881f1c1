"""Preprocessing: from a raw reciprocal-space map to the input of phasing.

:func:`prepare` chains the steps below; each is a public function of its own,
usable and tested alone:

- :func:`locate_peak`: sub-pixel position of the Bragg peak, blind to masked
  (hot, dead, gap) pixels.
- :func:`estimate_background` / :func:`subtract_background`: a flat
  background per pixel, from the map's far corners.
- :func:`centre_and_crop`: the peak at index ``n // 2`` of every axis (the FFT
  convention of the package), cropped symmetrically, the mask carried.
- :func:`bin_map`: sum counts over ``bin`` pixels per axis, correcting for
  masked pixels.
- :func:`measure_period`: texture period from the spacing of the satellites
  along the in-plane axis.
- :func:`measure_thickness`: film thickness from the spacing of the thickness
  fringes along the out-of-plane axis.
- :func:`measure_patch`: width of the coherent patch from the shape of the
  central satellite.
- :func:`out_of_plane_score`: which axis is out-of-plane, from the data alone
  (for :func:`nanotools.io.read_map` when the metadata says nothing).

Conventions (``docs/ARCHITECTURE.md``): arrays ``(x, z)`` or ``(x, y, z)``,
out-of-plane axis last; ``q`` in 1/angstrom; lengths in nm; masks ``True`` =
not measured. A length ``L`` and the spacing ``dq`` of the features it makes
in reciprocal space are related by ``L = 2 pi / dq``.
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass, field

import numpy as np
from scipy import ndimage, optimize

from ..errors import InputError, ParameterError
from ..io import ReciprocalSpaceMap

__all__ = ["PreparedMap", "LengthMeasurement", "CentredMap", "prepare", "locate_peak",
           "estimate_background", "subtract_background", "centre_and_crop", "bin_map",
           "measure_period", "measure_thickness", "measure_patch", "out_of_plane_score"]

#: Fraction of "strong" pixels (clearly above the background in the raw map)
#: that subtracting the background may push below zero before we warn.
_CLIP_WARN_FRACTION = 0.03


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


@dataclass
class CentredMap:
    """A map cut out around its Bragg peak by :func:`centre_and_crop`.

    Attributes
    ----------
    intensity, mask
        The window, shape ``(nx[, ny], nz)``, every size even; pixels that
        came from outside the input map are masked (``True``) and zero.
    start
        Index in the input map of the window's first pixel, per axis (may be
        negative where the window was padded).
    residual
        Sub-pixel position of the peak minus the centre of the pixel that
        sits at ``n // 2`` after binning by ``bin``, per axis, in pixels of the
        input map (within +-0.5 for ``bin=1``).
    """

    intensity: np.ndarray
    mask: np.ndarray
    start: tuple
    residual: tuple


@dataclass
class PreparedMap:
    """The map as phasing wants it, with what was measured on it.

    Attributes
    ----------
    intensity
        Background-subtracted counts (float64, >= 0), shape ``(nx[, ny],
        nz)``, every size even, Bragg peak at index ``n // 2`` of every axis;
        zero where masked.
    mask
        Bool, same shape; ``True`` = not measured (free in the Fourier
        projection).
    q_step
        Momentum-transfer step per axis (1/angstrom per pixel), after binning.
    G
        ``|q|`` at the Bragg peak (1/angstrom).
    pixel_nm
        Real-space pixel per axis, ``2 pi / (n * q_step)`` in nm, for the
        prepared (cropped, binned) array.
    period_nm, period_err_nm
        Texture period and its uncertainty (nm); the error is 0 when the
        period was given.
    thickness_nm, thickness_err_nm
        Film thickness and its uncertainty (nm); 0 error when given.
    patch_nm
        Width (FWHM) of the coherent patch along x (nm).
    background
        Flat background subtracted (counts per pixel of the input map).
    peak_index
        Sub-pixel position of the Bragg peak in the input map, per axis.
    notes
        Human-readable lines: what was measured or decided, and how.
    source
        Where the map came from (``ReciprocalSpaceMap.source``).
    peak_residual
        Peak position minus the centre of pixel ``n // 2``, per axis, in
        pixels of the prepared map (the integer centring leaves this; phasing
        may remove the matching linear phase ramp).
    bin
        The binning factor applied.
    """

    intensity: np.ndarray
    mask: np.ndarray
    q_step: tuple
    G: float
    pixel_nm: tuple
    period_nm: float
    period_err_nm: float
    thickness_nm: float
    thickness_err_nm: float
    patch_nm: float
    background: float
    peak_index: tuple
    notes: list = field(default_factory=list)
    source: str = ""
    peak_residual: tuple = ()
    bin: int = 1

    @property
    def ndim(self) -> int:
        return self.intensity.ndim

    @property
    def shape(self) -> tuple:
        return self.intensity.shape


# ---------------------------------------------------------------------------
# Small helpers
# ---------------------------------------------------------------------------

def _step_along(q_step, ndim: int, axis: int) -> float:
    """The q step (1/angstrom per pixel) along ``axis``, from one value for
    every axis or one per axis."""
    return float(np.broadcast_to(np.asarray(q_step, float), (ndim,))[axis])


def _as_mask(intensity: np.ndarray, mask: np.ndarray | None) -> np.ndarray:
    """The mask, with non-finite pixels added (a NaN is never a measurement)."""
    m = ~np.isfinite(intensity)
    if mask is not None:
        m = m | np.asarray(mask, bool)
    return m


def _filled(intensity: np.ndarray, mask: np.ndarray, sigma: float = 1.0) -> np.ndarray:
    """Masked pixels replaced by a Gaussian-weighted mean of their unmasked
    neighbours (normalized convolution), so that hot pixels cannot win a
    maximum and dead pixels cannot make a minimum. Pixels with no unmasked
    neighbour within a few sigma become 0."""
    good = ~mask
    data = np.where(good, np.nan_to_num(intensity), 0.0)
    num = ndimage.gaussian_filter(data, sigma, mode="nearest")
    den = ndimage.gaussian_filter(good.astype(float), sigma, mode="nearest")
    with np.errstate(invalid="ignore", divide="ignore"):
        guess = np.where(den > 1e-3, num / den, 0.0)
    return np.where(good, data, guess)


def _parabola_vertex(ym: float, y0: float, yp: float) -> float:
    """Offset (in samples, clipped to +-1) of the vertex of the parabola
    through three equally spaced samples; 0 where they are collinear."""
    den = ym - 2 * y0 + yp
    if not np.isfinite(den) or den == 0:
        return 0.0
    return float(np.clip(0.5 * (ym - yp) / den, -1.0, 1.0))


def _projection(intensity: np.ndarray, mask: np.ndarray, axis: int) -> np.ndarray:
    """Profile along ``axis``: the map summed over every other axis, masked
    pixels filled from their neighbours; NaN where more than half of the
    summed pixels are masked (a detector gap), which would fake a minimum."""
    filled = _filled(intensity, mask)
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


def _q_steps(rsm: ReciprocalSpaceMap) -> tuple:
    steps = []
    for a, n in enumerate(rsm.intensity.shape):
        q = np.asarray(rsm.q[a], float) if rsm.q is not None and len(rsm.q) > a else None
        if q is None or q.size != n or n < 2:
            raise InputError(f"the q axis {a} does not match the map's shape {rsm.shape}",
                             rsm.source or None)
        step = float(np.mean(np.diff(q)))
        if not np.isfinite(step) or step == 0:
            raise InputError(f"the q axis {a} is not increasing", rsm.source or None)
        steps.append(abs(step))
    return tuple(steps)


# ---------------------------------------------------------------------------
# Bragg peak
# ---------------------------------------------------------------------------

def locate_peak(intensity: np.ndarray, mask: np.ndarray | None = None, *,
                smooth_px: float = 1.0) -> np.ndarray:
    """Sub-pixel position of the Bragg peak (the brightest feature).

    Masked pixels (hot, dead, gap) are ignored: they are replaced by their
    neighbours' mean, the map is smoothed by a Gaussian of ``smooth_px`` so a
    single unmasked outlier cannot win, the brightest raw pixel next to the
    smoothed maximum is taken, and a parabola through the logarithm of its
    neighbours along each axis gives the sub-pixel position (exact for a
    Gaussian peak, within a few hundredths of a pixel for the sinc-like
    peaks of a finite crystal).

    Parameters
    ----------
    intensity
        Counts, shape ``(nx[, ny], nz)``.
    mask
        Bool, same shape; ``True`` = not measured.
    smooth_px
        Smoothing width (pixels) used to choose the maximum.

    Returns
    -------
    float64 array of shape ``(ndim,)``: the position in pixels (index units).
    """
    intensity = np.asarray(intensity, float)
    mask = _as_mask(intensity, mask)
    filled = _filled(intensity, mask)
    smooth = ndimage.gaussian_filter(filled, smooth_px, mode="nearest") if smooth_px > 0 \
        else filled
    top = np.array(np.unravel_index(np.argmax(smooth), smooth.shape))
    # the brightest real pixel within one pixel of the smoothed maximum
    lo = np.maximum(top - 1, 0)
    hi = np.minimum(top + 2, intensity.shape)
    box = filled[tuple(slice(a, b) for a, b in zip(lo, hi))]
    top = lo + np.array(np.unravel_index(np.argmax(box), box.shape))
    position = top.astype(float)
    logf = np.log(np.maximum(filled, 1e-12 * max(filled.max(), 1e-300)))
    for a in range(intensity.ndim):
        i = top[a]
        if 0 < i < intensity.shape[a] - 1:
            idx = list(top)
            vals = []
            for d in (-1, 0, 1):
                idx[a] = i + d
                vals.append(logf[tuple(idx)])
            position[a] += float(np.clip(_parabola_vertex(*vals), -0.5, 0.5))
    return position


# ---------------------------------------------------------------------------
# Background
# ---------------------------------------------------------------------------

def estimate_background(intensity: np.ndarray, mask: np.ndarray | None = None, *,
                        corner_fraction: float = 0.125) -> float:
    """Flat background per pixel, from the map's far corners.

    Each of the ``2**ndim`` corner blocks (``corner_fraction`` of every axis,
    at least 4 pixels) gives the mean of its unmasked pixels after clipping
    outliers (unmasked hot pixels, a streak) above ``mean + 5 sqrt(mean + 1)``;
    the background is the smallest of these means. The smallest, because the
    tails of the truncation rods and of the patch reach some corners and only
    ever add counts; a mean rather than a median, because the median of
    Poisson counts of a few per pixel is stuck on an integer.

    Parameters
    ----------
    intensity
        Counts, shape ``(nx[, ny], nz)``.
    mask
        Bool, same shape; ``True`` = not measured.
    corner_fraction
        Size of a corner block as a fraction of each axis.

    Returns
    -------
    float: counts per pixel (0 if no corner pixel is measured).
    """
    intensity = np.asarray(intensity, float)
    mask = _as_mask(intensity, mask)
    sizes = [max(4, int(round(corner_fraction * n))) for n in intensity.shape]
    sizes = [min(s, n) for s, n in zip(sizes, intensity.shape)]
    means = []
    for corner in np.ndindex(*(2,) * intensity.ndim):
        sl = tuple(slice(0, s) if c == 0 else slice(n - s, n)
                   for c, s, n in zip(corner, sizes, intensity.shape))
        values = intensity[sl][~mask[sl]]
        if values.size < 4:
            continue
        keep = values
        for _ in range(5):  # iterative clipping of upward outliers only
            m = keep.mean()
            new = values[values <= m + 5 * np.sqrt(max(m, 0) + 1)]
            if new.size == keep.size or new.size == 0:
                break
            keep = new
        means.append(float(keep.mean()))
    return max(min(means), 0.0) if means else 0.0


def subtract_background(intensity: np.ndarray, background: float,
                        mask: np.ndarray | None = None, *,
                        warn_fraction: float = _CLIP_WARN_FRACTION) -> np.ndarray:
    """Subtract a flat background and clip at zero.

    Warns (``UserWarning``) when the clipping touches more than
    ``warn_fraction`` of the *strong* pixels, those clearly above the
    background estimated from the corners (5 sigma): a sign that
    ``background`` is too large and is eating signal.

    Parameters
    ----------
    intensity
        Counts, shape ``(nx[, ny], nz)``.
    background
        Counts per pixel to subtract.
    mask
        Bool, same shape; masked pixels are returned as 0 and not counted.

    Returns
    -------
    float64 array, same shape, >= 0.
    """
    intensity = np.asarray(intensity, float)
    mask = _as_mask(intensity, mask)
    good = ~mask
    floor = estimate_background(intensity, mask)
    strong = good & (intensity > floor + 5 * np.sqrt(floor + 1))
    n_strong = int(strong.sum())
    if n_strong:
        clipped = int((strong & (intensity < background)).sum())
        if clipped > warn_fraction * n_strong:
            warnings.warn(f"subtracting a background of {background:.4g} counts per pixel "
                          f"clips {100 * clipped / n_strong:.1f} % of the pixels with signal "
                          f"(the corners suggest {floor:.4g}); the background may be too large",
                          UserWarning, stacklevel=2)
    out = np.where(good, np.nan_to_num(intensity) - background, 0.0)
    return np.clip(out, 0.0, None)


# ---------------------------------------------------------------------------
# Centring, cropping, binning
# ---------------------------------------------------------------------------

def centre_and_crop(intensity: np.ndarray, mask: np.ndarray | None, peak, *,
                    crop=None, bin: int = 1) -> CentredMap:
    """Cut a window with the peak at index ``n // 2`` of every axis.

    The shift is an integer number of pixels (no interpolation of counts);
    the sub-pixel remainder is returned as ``residual``. Without ``crop`` the
    window is the largest that fits symmetrically around the peak; with it,
    the window has that size and pixels from outside the map are masked.

    Parameters
    ----------
    intensity
        Counts, shape ``(nx[, ny], nz)``.
    mask
        Bool, same shape, or None.
    peak
        Sub-pixel peak position per axis (pixels), e.g. from
        :func:`locate_peak`.
    crop
        None, one int for every axis or one per axis (None entries: as large
        as fits): window size in pixels of the input, rounded down to a
        multiple of ``2 * bin``.
    bin
        The window is made ready for :func:`bin_map` by this factor: its
        sizes are multiples of ``2 * bin`` and the peak pixel falls in the
        bin at ``m // 2`` of the binned axis (centred in it for odd ``bin``).

    Returns
    -------
    CentredMap
    """
    intensity = np.asarray(intensity, float)
    mask = _as_mask(intensity, mask)
    ndim = intensity.ndim
    bin = int(bin)
    if bin < 1:
        raise ParameterError(f"bin must be >= 1, got {bin}")
    peak = np.asarray(peak, float)
    if crop is None or np.isscalar(crop):
        crop = (crop,) * ndim
    if len(crop) != ndim:
        raise ParameterError(f"crop must give one size per axis ({ndim}), got {crop}")
    off = (bin - 1) // 2  # the peak pixel sits this far into its bin
    start, sizes, residual = [], [], []
    for a, n in enumerate(intensity.shape):
        p = int(round(peak[a]))
        if crop[a] is None:
            half = min((p - off) // bin, (n - p + off) // bin)  # binned half size
        else:
            half = int(crop[a]) // (2 * bin)
        if half < 1:
            raise InputError(f"the Bragg peak at pixel {p} of axis {a} leaves no room to crop "
                             f"a window of {2 * bin} pixels around it")
        s = p - off - half * bin
        start.append(s)
        sizes.append(2 * half * bin)
        # centre of the binned pixel m//2 in input pixels: s + half*bin + (bin-1)/2
        residual.append(float(peak[a] - (s + half * bin + (bin - 1) / 2)))
    out = np.zeros(sizes)
    out_mask = np.ones(sizes, bool)  # outside the map = not measured
    src, dst = [], []
    for s, m, n in zip(start, sizes, intensity.shape):
        a0, a1 = max(s, 0), min(s + m, n)
        src.append(slice(a0, a1))
        dst.append(slice(a0 - s, a1 - s))
    out[tuple(dst)] = np.where(mask[tuple(src)], 0.0, np.nan_to_num(intensity[tuple(src)]))
    out_mask[tuple(dst)] = mask[tuple(src)]
    return CentredMap(intensity=out, mask=out_mask, start=tuple(start), residual=tuple(residual))


def bin_map(intensity: np.ndarray, mask: np.ndarray | None, factor: int):
    """Bin a map by an integer factor along every axis, summing counts.

    A binned pixel is masked only if all its pixels are masked; otherwise
    the sum of its unmasked pixels is scaled by ``factor**ndim / n_unmasked``
    (the masked ones are assumed to hold the mean of the others), so the
    total counts are conserved where nothing is masked. Trailing pixels that
    do not fill a whole bin are dropped.

    Parameters
    ----------
    intensity
        Counts, shape ``(nx[, ny], nz)``.
    mask
        Bool, same shape, or None.
    factor
        Pixels per bin along each axis (>= 1).

    Returns
    -------
    (intensity, mask): float64 and bool arrays of shape ``n // factor`` per axis.
    """
    intensity = np.asarray(intensity, float)
    mask = _as_mask(intensity, mask)
    factor = int(factor)
    if factor < 1:
        raise ParameterError(f"bin must be >= 1, got {factor}")
    if factor == 1:
        return np.where(mask, 0.0, intensity), mask.copy()
    shape = [n // factor for n in intensity.shape]
    if min(shape) < 1:
        raise ParameterError(f"cannot bin a map of shape {intensity.shape} by {factor}")
    trim = tuple(slice(0, m * factor) for m in shape)
    data = np.where(mask, 0.0, np.nan_to_num(intensity))[trim]
    good = (~mask[trim]).astype(float)
    blocked = []
    for m in shape:
        blocked += [m, factor]
    axes = tuple(range(1, 2 * len(shape), 2))
    total = data.reshape(blocked).sum(axis=axes)
    n_good = good.reshape(blocked).sum(axis=axes)
    out_mask = n_good == 0
    with np.errstate(invalid="ignore", divide="ignore"):
        out = np.where(out_mask, 0.0, total * factor ** len(shape) / n_good)
    return out, out_mask


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
        return lag + _parabola_vertex(acf[lag - 1], acf[lag], acf[lag + 1])
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
            return i + float(np.clip(_parabola_vertex(*y), -0.5, 0.5))
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
    mask = _as_mask(intensity, mask)
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
    return j + _parabola_vertex(acf[j - 1], acf[j], acf[j + 1])


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
            x = i + _parabola_vertex(flat[i - 1], flat[i], flat[i + 1])
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
    mask = _as_mask(intensity, mask)
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
    mask = _as_mask(intensity, mask)
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


# ---------------------------------------------------------------------------
# Which axis is out-of-plane
# ---------------------------------------------------------------------------

def out_of_plane_score(intensity: np.ndarray, mask: np.ndarray | None = None) -> np.ndarray:
    """How much each axis looks like the out-of-plane axis.

    The out-of-plane axis is the one whose truncation rod (the profile
    through the Bragg peak) shows many regular thickness fringes, slowly
    decaying because the film's interfaces are sharp, while its projected
    profile shows no satellites. Along an in-plane axis the soft-edged
    coherent patch gives only a couple of side lobes before the satellites.
    The score of an axis is the number of regular fringe minima on its rod,
    minus the number of satellites in its projection.

    Parameters
    ----------
    intensity
        Counts, shape ``(n0, n1[, n2])`` in any axis order.
    mask
        Bool, same shape, or None.

    Returns
    -------
    float64 array of shape ``(ndim,)``; the out-of-plane axis has the
    largest score.
    """
    intensity = np.asarray(intensity, float)
    mask = _as_mask(intensity, mask)
    peak = locate_peak(intensity, mask)
    background = estimate_background(intensity, mask)
    data = np.where(mask, 0.0, np.nan_to_num(intensity) - background)
    scores = np.zeros(intensity.ndim)
    for a in range(intensity.ndim):
        rod = _rod(data, mask, a, peak)
        fringes = _fringe_series(rod, float(peak[a]))
        n_fringes = 0 if fringes is None else len(fringes[0])
        sats = _satellite_series(_projection(data, mask, a), float(peak[a]))
        n_sats = 0 if sats is None else int(np.sum(sats[0] != 0))
        scores[a] = n_fringes - n_sats
    return scores


# ---------------------------------------------------------------------------
# The whole stage
# ---------------------------------------------------------------------------

def prepare(rsm: ReciprocalSpaceMap, *, period_nm: float = 0.0, thickness_nm: float = 0.0,
            bin: int = 1, background: float = -1.0, crop=None) -> PreparedMap:
    """Prepare a map for phasing and measure the texture on it.

    Steps: locate the Bragg peak; estimate (``background < 0``) and subtract
    a flat background; cut a window with the peak at ``n // 2`` of every
    axis; measure the period, thickness and coherent patch on that window
    (before binning, at full resolution); bin.

    Parameters
    ----------
    rsm
        The map, axes ``(x[, y], z)`` with the out-of-plane axis last.
    period_nm
        Texture period (nm); 0 = measure from the satellite spacing.
    thickness_nm
        Film thickness (nm); 0 = measure from the thickness fringes.
    bin
        Binning factor along every axis (1 = none).
    background
        Flat background (counts per pixel); negative = estimate from the
        map's far corners.
    crop
        Window size in pixels of the input map (one int, or one per axis;
        None = the largest window centred on the peak that fits).

    Returns
    -------
    PreparedMap

    Raises
    ------
    InputError
        If the map holds no counts, or if the period or thickness must be
        measured and no satellites or fringes are found; the message names
        ``rsm.source``.
    ParameterError
        If ``bin`` or ``crop`` is not usable.
    """
    source = rsm.source or None
    intensity = np.asarray(rsm.intensity, float)
    if intensity.ndim not in (2, 3):
        raise InputError(f"the map must have 2 or 3 axes, got shape {intensity.shape}", source)
    mask = _as_mask(intensity, rsm.mask)
    if mask.shape != intensity.shape:
        raise InputError(f"the mask's shape {mask.shape} differs from the map's "
                         f"{intensity.shape}", source)
    good = ~mask
    if not good.any() or not np.any(np.nan_to_num(intensity[good]) > 0):
        raise InputError("the map holds no counts (every measured pixel is zero)", source)
    if np.any(np.nan_to_num(intensity[good]) < 0):
        warnings.warn("the map has negative counts; they are clipped to zero", UserWarning,
                      stacklevel=2)
    if isinstance(bin, bool) or int(bin) != bin or bin < 1:
        raise ParameterError(f"bin must be an integer >= 1, got {bin!r}")
    bin = int(bin)
    q_step0 = _q_steps(rsm)
    notes: list[str] = []

    peak = locate_peak(intensity, mask)
    notes.append("Bragg peak at pixel (" + ", ".join(f"{p:.2f}" for p in peak) + ")")

    corners = estimate_background(intensity, mask)
    if background is None or background < 0:
        background = corners
        notes.append(f"background {background:.4g} counts/pixel from the far corners")
    else:
        background = float(background)
        notes.append(f"background {background:.4g} counts/pixel as given "
                     f"(the corners suggest {corners:.4g})")
    clipped = subtract_background(intensity, background, mask)

    window = centre_and_crop(clipped, mask, peak, crop=crop, bin=bin)
    # measure on the window before clipping: clipping at zero flattens the
    # fringe minima that the thickness is read from
    raw_window = centre_and_crop(np.where(mask, 0.0, np.nan_to_num(intensity) - background),
                                 mask, peak, crop=crop, bin=bin)
    meas_peak = np.array([p - s for p, s in zip(peak, window.start)])
    in_plane = 0
    out_axis = intensity.ndim - 1

    def _measure(func, what, **kw):
        try:
            return func(raw_window.intensity, raw_window.mask, q_step0, **kw)
        except InputError as exc:
            raise InputError(f"{exc.message} ({what})", source) from None

    if period_nm and period_nm > 0:
        period, period_err = float(period_nm), 0.0
        notes.append(f"period {period:.2f} nm as given")
    else:
        m = _measure(measure_period, "period", axis=in_plane, centre=meas_peak[in_plane])
        period, period_err = m.value_nm, m.err_nm
        notes.append(m.note)
    if thickness_nm and thickness_nm > 0:
        thickness, thickness_err = float(thickness_nm), 0.0
        notes.append(f"thickness {thickness:.2f} nm as given")
    else:
        m = _measure(measure_thickness, "thickness", axis=out_axis, peak=meas_peak)
        thickness, thickness_err = m.value_nm, m.err_nm
        notes.append(m.note)
    try:
        m = measure_patch(raw_window.intensity, raw_window.mask, q_step0, period_nm=period,
                          axis=in_plane, centre=meas_peak[in_plane])
        patch = m.value_nm
        notes.append(m.note)
    except InputError as exc:
        patch = 5.0 * period
        notes.append(f"coherent patch not measured ({exc.message}); assumed 5 periods, "
                     f"{patch:.1f} nm")

    out, out_mask = bin_map(window.intensity, window.mask, bin)
    if bin > 1:
        notes.append(f"binned by {bin}: shape {out.shape}")
    q_step = tuple(s * bin for s in q_step0)
    pixel_nm = tuple(float(2 * np.pi / (n * s) / 10.0) for n, s in zip(out.shape, q_step))
    qs = [float(np.interp(p, np.arange(len(q)), np.asarray(q, float)))
          for p, q in zip(peak, rsm.q)]
    G = float(np.sqrt(np.sum(np.square(qs))))
    residual = tuple(r / bin for r in window.residual)
    notes.append("cropped to " + " x ".join(str(n) for n in window.intensity.shape)
                 + f" pixels around the peak; real-space pixel "
                 + " x ".join(f"{p:.3g}" for p in pixel_nm) + " nm")
    return PreparedMap(intensity=out, mask=out_mask, q_step=q_step, G=G, pixel_nm=pixel_nm,
                       period_nm=period, period_err_nm=period_err, thickness_nm=thickness,
                       thickness_err_nm=thickness_err, patch_nm=patch,
                       background=float(background), peak_index=tuple(float(p) for p in peak),
                       notes=notes, source=rsm.source, peak_residual=residual, bin=bin)

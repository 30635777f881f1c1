"""The brightest feature (:func:`locate_peak`, the fallback when neither the
lattice nor the satellites place the Bragg peak) and the flat background
(:func:`estimate_background`, :func:`subtract_background`).
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from .pixels import as_mask, fill_masked, parabola_vertex

__all__ = ["locate_peak", "BackgroundEstimate", "estimate_background", "subtract_background"]


#: Fraction of "strong" pixels (clearly above the background in the raw map)
#: that subtracting the background may push below zero before we warn.
_CLIP_WARN_FRACTION = 0.03


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
    mask = as_mask(intensity, mask)
    filled = fill_masked(intensity, mask)
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
            position[a] += float(np.clip(parabola_vertex(*vals), -0.5, 0.5))
    return position


# ---------------------------------------------------------------------------
# Background
# ---------------------------------------------------------------------------

@dataclass
class BackgroundEstimate:
    """A flat background per pixel and how it was decided.

    Attributes
    ----------
    value, err
        Counts per pixel and the standard error of the floor's fit.
    note
        One human-readable line.
    """

    value: float
    err: float
    note: str


#: Powers tried for the decay of the film's rods along q_z far from the
#: peak: 2 for sharp interfaces, faster for rough ones.
_DECAY_POWERS = (2.0, 3.0, 4.0)


def _median_misfit(weights: np.ndarray, residual: np.ndarray) -> float:
    """Median of ``weights * residual**2`` over the weighted samples, over
    its value for pure noise (0.455, the median of chi-square with one
    degree of freedom): 1 where a model fits to the noise (inf if nothing
    is weighted)."""
    z2 = (weights * residual ** 2)[weights > 0]
    return float(np.median(z2) / 0.455) if z2.size else np.inf


def _floor_fit(columns: np.ndarray, weights: np.ndarray, decay: np.ndarray):
    """Least-squares ``I = b + a_c f(z)`` with one ``a_c`` per column and one
    floor ``b`` (closed form: ``a_c`` eliminated column by column); returns
    ``(b, err_b, chi2_per_dof, model)``."""
    w, f, y = weights, decay, columns
    swf2 = np.sum(w * f * f, axis=1)
    swf = np.sum(w * f, axis=1)
    swy = np.sum(w * y, axis=1)
    swfy = np.sum(w * f * y, axis=1)
    ok = swf2 > 0
    num = np.sum(swy) - np.sum(swfy[ok] * swf[ok] / swf2[ok])
    den = np.sum(w) - np.sum(swf[ok] ** 2 / swf2[ok])
    if den <= 0:
        return 0.0, np.inf, np.inf, np.zeros_like(y)
    b = num / den
    a = np.where(ok, (swfy - b * swf) / np.where(ok, swf2, 1.0), 0.0)
    # the fringes and a texture's streaks misfit a few columns badly: scale
    # the error by the median normalized residual (0.455 for pure noise),
    # not the mean, so they do not swamp the floor's significance
    model = b + a[:, None] * f
    chi2 = _median_misfit(w, y - model)
    return float(b), float(np.sqrt(max(chi2, 1.0) / den)), chi2, model


def _robust_floor_fit(means: np.ndarray, counted: np.ndarray, decay: np.ndarray,
                      start: float):
    """:func:`_floor_fit` (its tuple, the misfit on equal Poisson weights in
    place of its own, see the end) with Poisson weights from the model, not the counts
    (weights from the counts favour the low fluctuations and pull the floor
    down: iteratively reweighted from a flat first guess), and every column
    weighed down by its own misfit, so that a rod the power law does not
    describe (a streak of diffuse intensity, fringes a bin does not average
    out) cannot drag the shared floor."""
    model = np.full(means.shape, max(start, 1.0))
    trust = np.ones((len(means), 1))
    for _ in range(5):
        weights = np.where(counted > 0, counted / np.maximum(model, 0.05), 0.0)
        fit = _floor_fit(means, weights * trust, decay)
        model = fit[3]
        misfit = np.sum(weights * (means - model) ** 2, axis=1) / np.maximum(
            np.sum(counted > 0, axis=1), 1)
        trust = 1.0 / np.maximum(misfit, 1.0)[:, None]
    # the misfit that compares one decay law with another: the columns
    # weighed alike (each fit weighs down the columns it misfits, so its
    # own misfit flatters it: a 1/dq^4 law 0.2 where 1/dq^2 fits 0.9, with
    # the floor 10 counts/pixel for a true 5.9, stress draw 116)
    weights = np.where(counted > 0, counted / np.maximum(fit[3], 0.05), 0.0)
    return fit[:2] + (_median_misfit(weights, means - fit[3]),) + fit[3:]


#: How far (in standard deviations of its own median level) a column's
#: brightest z must stand out to count as a rod whose centre the decay is
#: measured from; a column without one decays from the film peak.
_ROD_SIGNIFICANCE = 5.0

#: Smoothing (pixels, Gaussian sigma along z) before a column's brightest z
#: is taken, so that Poisson noise does not pick a pixel beside the rod.
_ROD_SMOOTH_PX = 1.0

#: How far (pixels along z) a column's brightest z must lie from the film
#: peak before the column's decay is measured from it: within this the fit's
#: own search of the origin (+-1 pixel) covers it, and a rod's fringes or
#: noise do not move it.
_ROD_OFFSET_PX = 2.0


def _rod_centres(columns: np.ndarray, measured: np.ndarray, z0: float) -> np.ndarray:
    """Centre along ``z`` (pixels) of the rod in every column.

    A column's brightest ``z`` (smoothed, refined by a parabola in log
    counts) where it stands :data:`_ROD_SIGNIFICANCE` Poisson deviations
    above the column's median and lies more than :data:`_ROD_OFFSET_PX`
    from the film peak ``z0``; else ``z0``. ``columns`` and ``measured``
    are ``(n_columns, nz)`` (counts, masked pixels 0; bool, ``True`` =
    measured)."""
    weight = ndimage.gaussian_filter1d(measured.astype(float), _ROD_SMOOTH_PX, axis=1,
                                       mode="constant")
    smooth = ndimage.gaussian_filter1d(columns, _ROD_SMOOTH_PX, axis=1, mode="constant")
    with np.errstate(invalid="ignore", divide="ignore"):
        smooth = np.where(weight > 0.5, smooth / weight, 0.0)
    top = np.argmax(smooth, axis=1)
    rows = np.arange(len(columns))
    peak = smooth[rows, top]
    level = np.array([np.median(c[m]) if m.any() else 0.0 for c, m in zip(columns, measured)])
    centres = np.full(len(columns), float(z0))
    nz = columns.shape[1]
    rod = ((peak > level + _ROD_SIGNIFICANCE * np.sqrt(level + 1.0))
           & (np.abs(top - z0) > _ROD_OFFSET_PX))
    for c in np.flatnonzero(rod):
        i = int(top[c])
        centres[c] = float(i)
        if 0 < i < nz - 1 and np.all(smooth[c, i - 1:i + 2] > 0):
            centres[c] += parabola_vertex(*np.log(smooth[c, i - 1:i + 2]))
    return centres


def estimate_background(intensity: np.ndarray, mask: np.ndarray | None = None, *,
                        peak=None, min_distance: float | None = None,
                        significance: float = 5.0) -> BackgroundEstimate:
    """A flat background per pixel, only where the map shows one.

    Far from the film peak along ``q_z`` every rod of the film decays as a
    power of the distance (``1/dq**2`` for sharp interfaces, faster for rough
    ones) from the rod's own centre; a background is the floor that this
    decay approaches. Every in-plane position (column) ``c`` gets
    ``I = b + a_c / |z - z_c|**p``, one amplitude per column and one floor
    ``b`` for the map, fitted by weighted least squares (Poisson weights) on
    the pixels at least ``min_distance`` from ``z_c`` along ``z``, ``p`` in
    2, 3, 4 (the best fit). ``z_c`` is the film peak, or the column's own
    brightest ``z`` where a rod stands out there more than 2 pixels off it
    (the satellites of inclined walls or a tilted lattice lie on a line
    tilted from ``q_x``). The floor is kept only if it stands
    ``significance`` standard errors above zero; otherwise the counts far
    from the peak are the signal's own decay (the diffuse intensity of sharp
    walls reaches the map's corners) and the background is zero.

    Parameters
    ----------
    intensity
        Counts, shape ``(nx[, ny], nz)``, out-of-plane axis last.
    mask
        Bool, same shape; ``True`` = not measured (a masked substrate rod
        included).
    peak
        Bragg peak position per axis (pixels); the brightest feature if None.
    min_distance
        Pixels along ``z`` kept clear of every column's rod centre ``z_c``;
        an eighth of the axis if None.
    significance
        How many standard errors above zero the floor must stand.

    Returns
    -------
    BackgroundEstimate
    """
    intensity = np.asarray(intensity, float)
    mask = as_mask(intensity, mask)
    nz = intensity.shape[-1]
    if peak is None:
        peak = locate_peak(intensity, mask)
    z0 = float(np.asarray(peak, float)[-1])
    if min_distance is None:
        min_distance = max(nz / 8, 4.0)
    flat = np.where(mask, 0.0, np.nan_to_num(intensity)).reshape(-1, nz)
    measured = ~mask.reshape(-1, nz)
    # every rod decays from its own centre: the satellites of inclined walls
    # or a tilted lattice sit off the film peak along z (6 to 28 pixels on
    # held-out family draws), and a rod measured from the film peak decays
    # too slowly on the side it leans to for a power law from there, which
    # the shared fit paid for with a floor (draw 182: 358 counts/pixel for
    # none, with the true peak; draw 154: 115 with the peak a pixel low)
    rod_z = _rod_centres(flat, measured, z0)
    # whole fringes summed (bins of 4 pixels along z, laid from each edge of
    # the map towards the rod), a bin kept for a column only where all of it
    # lies min_distance beyond that column's rod on the side it was laid
    n_bin = 4
    n_bins = nz // n_bin
    low = np.arange(n_bins * n_bin).reshape(n_bins, n_bin)
    z_bins = np.concatenate([low, nz - 1 - low])
    sign = np.repeat([-1.0, 1.0], n_bins)
    offset = z_bins[None, :, :] - rod_z[:, None, None]
    far = np.all(sign[None, :, None] * offset >= min_distance, axis=2)
    counted = measured[:, z_bins].sum(axis=2) * far
    if counted.sum() < 16:
        return BackgroundEstimate(0.0, np.inf, "background 0 counts/pixel: too few pixels far "
                                  "from the peak")
    sums = flat[:, z_bins].sum(axis=2)
    distance = np.where(far, np.abs(offset.mean(axis=2)), 1.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        means = np.where(counted > 0, sums / counted, 0.0)
    # flat first guess: the mean of the bins far from the rods (a column's
    # bins near its own rod are carried with weight 0)
    start = float(np.mean(means[far]))
    # the power and the origin of the decay (every rod's centre found to a
    # fraction of a pixel) are chosen by the fit
    fits = []
    for power in _DECAY_POWERS:
        for shift in (-1.0, -0.5, 0.0, 0.5, 1.0):
            decay = np.maximum(distance + shift * sign, 1.0) ** -power
            fits.append(_robust_floor_fit(means, counted, decay, start)[:3] + (power,))
    b, err, chi2, power = min(fits, key=lambda f: f[2])
    if b > significance * err and b > 0:
        return BackgroundEstimate(b, err, f"background {b:.3g} counts/pixel (± {err:.2g}): the "
                                  f"floor that the rods' 1/dq^{power:g} decay approaches")
    return BackgroundEstimate(0.0, err, f"background 0 counts/pixel: no floor under the rods' "
                              f"decay (fitted {b:.2g} ± {err:.2g})")


def subtract_background(intensity: np.ndarray, background: float,
                        mask: np.ndarray | None = None, *,
                        warn_fraction: float = _CLIP_WARN_FRACTION) -> np.ndarray:
    """Subtract a flat background and clip at zero.

    Warns (``UserWarning``) when the clipping touches more than
    ``warn_fraction`` of the *strong* pixels, those clearly above the
    background estimated by :func:`estimate_background` (5 sigma): a sign that
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
    mask = as_mask(intensity, mask)
    good = ~mask
    floor = estimate_background(intensity, mask).value
    strong = good & (intensity > floor + 5 * np.sqrt(floor + 1))
    n_strong = int(strong.sum())
    if n_strong:
        clipped = int((strong & (intensity < background)).sum())
        if clipped > warn_fraction * n_strong:
            warnings.warn(f"subtracting a background of {background:.4g} counts per pixel "
                          f"clips {100 * clipped / n_strong:.1f} % of the pixels with signal "
                          f"(the map suggests {floor:.4g}); the background may be too large",
                          UserWarning, stacklevel=2)
    out = np.where(good, np.nan_to_num(intensity) - background, 0.0)
    return np.clip(out, 0.0, None)

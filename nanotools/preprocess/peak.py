"""The Bragg peak (:func:`locate_peak`) and the flat background
(:func:`estimate_background`, :func:`subtract_background`).
"""
from __future__ import annotations

import warnings

import numpy as np
from scipy import ndimage

from .pixels import as_mask, fill_masked, parabola_vertex

__all__ = ["locate_peak", "estimate_background", "subtract_background"]


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
    mask = as_mask(intensity, mask)
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
    mask = as_mask(intensity, mask)
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

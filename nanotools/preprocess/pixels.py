"""Pixel helpers shared by the preprocessing steps: the mask of what was not
measured, masked pixels filled from their neighbours, and the sub-pixel
vertex of three samples.
"""
from __future__ import annotations

import numpy as np
from scipy import ndimage

__all__ = ["as_mask", "fill_masked", "parabola_vertex"]


def as_mask(intensity: np.ndarray, mask: np.ndarray | None) -> np.ndarray:
    """The mask, with non-finite pixels added (a NaN is never a measurement)."""
    m = ~np.isfinite(intensity)
    if mask is not None:
        m = m | np.asarray(mask, bool)
    return m


def fill_masked(intensity: np.ndarray, mask: np.ndarray, sigma: float = 1.0) -> np.ndarray:
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


def parabola_vertex(ym: float, y0: float, yp: float) -> float:
    """Offset (in samples, clipped to +-1) of the vertex of the parabola
    through three equally spaced samples; 0 where they are collinear."""
    den = ym - 2 * y0 + yp
    if not np.isfinite(den) or den == 0:
        return 0.0
    return float(np.clip(0.5 * (ym - yp) / den, -1.0, 1.0))

"""Centring, cropping (:func:`centre_and_crop`), binning (:func:`bin_map`) and
the unmeasured q rows that give phasing finer pixels along z
(:func:`extend_unmeasured_z`).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from skimage.measure import block_reduce

from ..errors import InputError, ParameterError
from .pixels import as_mask

__all__ = ["CentredMap", "centre_and_crop", "bin_map", "extend_unmeasured_z"]


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
    mask = as_mask(intensity, mask)
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
    mask = as_mask(intensity, mask)
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
    block = (factor,) * len(shape)
    total = block_reduce(data, block, np.sum)
    n_good = block_reduce(good, block, np.sum)
    out_mask = n_good == 0
    with np.errstate(invalid="ignore", divide="ignore"):
        out = np.where(out_mask, 0.0, total * factor ** len(shape) / n_good)
    return out, out_mask


def extend_unmeasured_z(intensity: np.ndarray, mask: np.ndarray | None, factor: int):
    """Embed a centred map in a Fourier array ``factor`` times taller along z
    (the last axis), the added rows unmeasured (masked, zero).

    Phasing then works on real-space pixels ``factor`` times finer along z
    than the map's own Nyquist grid, the q beyond the map left free. A film
    has sharp interfaces, so its continuous transform reaches every q; on
    the map's own grid a run of pixel averages cannot reproduce the
    thickness fringes of such a film (the transform of a pixel-averaged slab
    differs from the slab's by aliases of its 1/q tails). On a map of an
    independent forward model (``benchmarks/preprocess_stress.py``, draw
    13, 6.6e7 counts) the film's exact transform fits to a Poisson misfit of
    0.40 per pixel (the noise), its pixel averages on the map's own grid to
    11.8 and on a grid twice as fine along z to 0.86. The finer grid doubles
    the unknowns along z, and with them the runs' freedom: on validation
    family draws 0-9 it imaged worse (median 0.269 against 0.139), so it is
    not the default.

    Parameters
    ----------
    intensity
        Counts, shape ``(nx[, ny], nz)``, Bragg peak at ``nz // 2``.
    mask
        Bool, same shape, or None.
    factor
        Real-space pixels per map pixel along z (>= 1).

    Returns
    -------
    (intensity, mask): shape ``(nx[, ny], factor * nz)``, the map's rows at
    ``factor * nz // 2 - nz // 2`` onward, so the peak stays at ``n // 2``.
    """
    intensity = np.asarray(intensity, float)
    mask = as_mask(intensity, mask)
    factor = int(factor)
    if factor < 1:
        raise ParameterError(f"z_subpixels must be >= 1, got {factor}")
    nz = intensity.shape[-1]
    big = factor * nz
    start = big // 2 - nz // 2
    out = np.zeros(intensity.shape[:-1] + (big,))
    out_mask = np.ones(out.shape, bool)
    out[..., start:start + nz] = np.where(mask, 0.0, intensity)
    out_mask[..., start:start + nz] = mask
    return out, out_mask

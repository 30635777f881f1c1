"""Partial coherence: a point-spread function that convolves the model intensity.

A measured map is the incoherent sum of the maps of many coherent patches of
a texture whose cells are not all alike (cell widths jitter by a few per
cent, so higher satellite orders are broader than lower ones). No single
coherent object reproduces such data: phasing then bends the object to fit
the broadened satellites and the mean supercell comes out wrong. Following
Clark et al., Nat. Commun. 3, 993 (2012), the model intensity is the
coherent one convolved with a point-spread function (PSF),

    I_model = |FT(rho)|^2 (*) PSF,

and the Fourier projection rescales the transform by ``sqrt(I / I_model)``
instead of ``sqrt(I) / |FT(rho)|``. The PSF starts as a narrow Gaussian and
is refined during the iterations by Richardson-Lucy steps,

    PSF <- PSF x [(I / I_model) (x) |FT(rho)|^2] / sum |FT(rho)|^2

((x): correlation), kept non-negative, centrosymmetric (an ensemble
broadens symmetrically, and the twin of a solution must stay a solution),
normalised to a sum of 1 and confined to a window: at most half the
satellite spacing along the in-plane axes and half the thickness-fringe
spacing along z, so that it can never move intensity from one satellite or
fringe onto the next (which would let it explain structure, not
coherence).

Each start refines its own PSF, so starts stay independent (any split of
the starts into chunks gives the same result). The PSF is in FFT layout
(zero shift at index 0 of every axis) inside the engine; :func:`centred`
moves it to the middle for display.
"""
from __future__ import annotations

import numpy as np

from .backend import Backend, FFTPlan, RealConvolution

__all__ = ["gaussian_psf", "psf_window", "centred", "psf_fwhm", "PartialCoherence"]


def _offsets(shape: tuple) -> list:
    """Signed pixel offsets along each axis, in FFT layout, as broadcastable arrays."""
    out = []
    for ax, n in enumerate(shape):
        d = np.fft.fftfreq(n) * n
        out.append(d.reshape([-1 if a == ax else 1 for a in range(len(shape))]))
    return out


def psf_window(shape: tuple, half_width_px: tuple) -> np.ndarray:
    """Bool, ``shape``, FFT layout: offsets within ``half_width_px`` (per
    axis, pixels; at least the zero offset) of the origin."""
    inside = np.ones(shape, bool)
    for d, h in zip(_offsets(shape), half_width_px):
        inside = inside & (np.abs(d) <= max(float(h), 0.0) + 1e-9)
    return inside


def gaussian_psf(shape: tuple, fwhm_px: tuple, window: np.ndarray | None = None) -> np.ndarray:
    """A normalised Gaussian PSF of ``fwhm_px`` per axis (pixels; 0 = a delta
    along that axis), FFT layout, zero outside ``window``. Float64, ``shape``."""
    g = np.ones(shape)
    for d, w in zip(_offsets(shape), fwhm_px):
        if w > 0:
            g = g * np.exp(-4 * np.log(2) * (d / w) ** 2)
        else:
            g = g * (d == 0)
    if window is not None:
        g = g * window
    return g / g.sum()


def centred(psf: np.ndarray, n_spatial: int) -> np.ndarray:
    """A PSF (or a batch of them, starts first) moved from FFT layout to the
    middle of the array: ``fftshift`` over the last ``n_spatial`` axes."""
    return np.fft.fftshift(psf, axes=tuple(range(psf.ndim - n_spatial, psf.ndim)))


def psf_fwhm(psf: np.ndarray) -> np.ndarray:
    """Full width at half maximum (pixels) of an FFT-layout PSF along each
    axis, from its second moment (``2 sqrt(2 ln 2) sigma``). ``(ndim,)``."""
    p = np.asarray(psf, float)
    p = p / p.sum()
    return np.array([2 * np.sqrt(2 * np.log(2) * float((p * d ** 2).sum()))
                     for d in _offsets(p.shape)])


class PartialCoherence:
    """One thread's buffers for the PSF model of a chunk of starts.

    Parameters
    ----------
    be
        The backend.
    chunk_len
        Starts per chunk.
    shape
        Map shape ``(nx[, ny], nz)``.
    window
        Bool, ``shape``, FFT layout: where the PSF may be non-zero.
    """

    def __init__(self, be: Backend, chunk_len: int, shape: tuple, window: np.ndarray):
        self.be = be
        self.conv = RealConvolution(be, (chunk_len,) + tuple(shape),
                                    tuple(range(1, len(shape) + 1)))
        self._flat = self.conv.input.reshape(chunk_len, -1)
        self.window = be.asarray(window, be.real_dtype)
        # the centrosymmetric partner of offset d is -d: reverse every axis, then roll by one
        self._axes = tuple(range(1, len(shape) + 1))

    def transfer(self, psf):
        """The transfer function of a batch of PSFs (``(n,) + shape`` real,
        FFT layout, centrosymmetric): its spectrum, real, times the
        convolution's scale. ``(n,) + spectrum shape``, real dtype."""
        self.conv.input[:len(psf)] = psf
        spec = self.conv.spectrum()[:len(psf)]
        return (spec.real * self.conv.scale).astype(self.be.real_dtype)

    def project(self, F, otf, centre, amp, measured, err2, plan: FFTPlan) -> None:
        """The partially coherent Fourier projection of ``F`` (``(chunk,
        n_pixels)``, in place), see
        :meth:`~nanotools.backend.Backend.fourier_projection_partial`;
        ``otf`` the chunk's transfer functions, ``centre`` its PSFs at zero
        shift."""
        self.be.model_intensity(F, plan, self._flat)
        model = self.conv(otf)
        self.be.fourier_projection_partial(F, model.reshape(len(F), -1), centre, amp, measured,
                                           err2, plan)

    def model(self, F, otf, plan: FFTPlan):
        """The model intensity ``|F|^2 (*) PSF`` of a chunk, ``(chunk,
        n_pixels)`` real (a buffer reused by the next call)."""
        self.be.model_intensity(F, plan, self._flat)
        return self.conv(otf).reshape(len(F), -1)

    def refine(self, F, psf, otf, intensity, measured, plan: FFTPlan):
        """One Richardson-Lucy step of the chunk's PSFs.

        Parameters
        ----------
        F
            ``(chunk, n_pixels)`` complex: the transformed current objects
            (plan scaling), unchanged.
        psf
            ``(chunk,) + shape`` real, FFT layout: the current PSFs.
        otf
            Their transfer functions.
        intensity, measured
            ``shape`` real / bool, FFT layout: the data and where they were
            measured (masked pixels do not vote).

        Returns
        -------
        psf, otf
            The refined PSFs and their transfer functions (new arrays).
        """
        xp, conv = self.be.xp, self.conv
        n = len(F)
        spatial = (n,) + (1,) * len(self._axes)
        self.be.model_intensity(F, plan, self._flat)
        total = xp.sum(self._flat, axis=1, dtype=np.float64).reshape(spatial)
        coherent = conv.spectrum().copy()
        model = conv.inverse(coherent * otf)
        # pixels whose model is within the transform's round-off of zero
        # (relative to the brightest) do not vote: their ratio is noise
        floor = 10 * np.finfo(self.be.real_dtype).eps * xp.max(model.reshape(n, -1), axis=1)
        floor = floor.reshape(spatial)
        ratio = conv.input
        xp.divide(intensity, xp.maximum(model, floor), out=ratio)
        ratio[(model <= floor) | ~measured] = 1.0
        spec = conv.spectrum()
        spec *= xp.conj(coherent)
        spec *= conv.scale
        corr = conv.inverse(spec)
        new = psf * xp.maximum(corr, 0) / xp.maximum(total, 1e-30) * self.window
        # centrosymmetric: average with the PSF at -d
        mirrored = xp.roll(xp.flip(new, axis=self._axes), shift=1, axis=self._axes)
        new = 0.5 * (new + mirrored)
        new /= xp.maximum(xp.sum(new, axis=self._axes, keepdims=True), 1e-30)
        new = new.astype(self.be.real_dtype)
        return new, self.transfer(new)

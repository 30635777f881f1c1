"""Phase retrieval: iterative projection algorithms from many random starts.

All starts advance together as one batch array ``(n_starts, nx[, ny], nz)``
(see :mod:`nanotools.backend`). The Fourier projection keeps the measured
modulus where the detector measured and leaves masked pixels free; the
real-space projection keeps the object inside a support that starts as the
measured film slab x coherent patch (a box) and is refined by shrink-wrap
inside that box. The runs are grids of pixel averages of the film: the
measured modulus is damped by the transform of one pixel before it is
imposed (:func:`pixel_transfer`).

References
----------
Fienup, Appl. Opt. 21, 2758 (1982) (ER, HIO).
Luke, Inverse Problems 21, 37 (2005) (RAAR).
Marchesini et al., Phys. Rev. B 68, 140101 (2003) (shrink-wrap).
Shao et al., PNAS 120, e2303312120 (2023) (this method).
"""
from __future__ import annotations

import functools
import queue
import re
import threading
import time
from concurrent.futures import ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import scipy.ndimage

from .backend import Backend, GaussianBlur, get_backend, region_index, update_coefficients
from .coherence import PartialCoherence, centred, gaussian_psf, psf_window
from .errors import ParameterError
from .params import defaults as _defaults

__all__ = ["ALGORITHMS", "PhasingResult", "parse_algorithm", "initial_support",
           "pixel_transfer", "pixel_averaged", "phase_retrieval", "concatenate", "poisson_llk",
           "shrink_wrap_threshold_for"]

ALGORITHMS = ("ER", "HIO", "RAAR")


@dataclass
class PhasingResult:
    """The outcome of every start of a phase retrieval.

    Attributes
    ----------
    objects
        Complex64/128, ``(n_starts, nx[, ny], nz)``: the final real-space
        objects, film centred in the array.
    supports
        Bool, same shape: each start's final support.
    fourier_error
        ``(n_starts,)``: ``|| (|F| - sqrt(I)) ||  /  || sqrt(I) ||`` over the
        measured pixels (0 = fits the data perfectly).
    llk
        ``(n_starts,)``: Poisson negative log-likelihood per measured pixel,
        relative to a perfect fit (0 = perfect).
    history
        ``(n_starts, n_iterations)`` float32: Fourier error at every iteration.
    start_indices
        ``(n_starts,)`` int: the start numbers (start k draws from
        ``default_rng([seed, k])``).
    seed, algorithm, n_iterations, phasing_time_s
        Provenance.
    psf
        ``(n_starts, nx[, ny], nz)`` float32, centred: each start's refined
        point-spread function of the partial-coherence model (sum 1), or
        None when the model was off (see :mod:`nanotools.coherence`).
    """

    objects: np.ndarray
    supports: np.ndarray
    fourier_error: np.ndarray
    llk: np.ndarray
    history: np.ndarray
    start_indices: np.ndarray
    seed: int
    algorithm: str
    n_iterations: int
    phasing_time_s: float
    parameters: dict = field(default_factory=dict)
    psf: np.ndarray | None = None

    @property
    def n_starts(self) -> int:
        return len(self.start_indices)

    def order(self) -> np.ndarray:
        """Start positions sorted from the best (lowest Fourier error) to the worst."""
        return np.argsort(self.fourier_error, kind="stable")


def _report_batch(progress, done: int, n_batch: int, total: int, i: int) -> None:
    """Progress of one batch (``i`` iterations of its ``n_batch`` starts)
    as iterations done over the whole run."""
    progress(done + i * n_batch, total)


def parse_algorithm(sequence: str) -> list[tuple[str, int]]:
    """Parse ``"RAAR**400 HIO**200 ER**100"`` into ``[("RAAR", 400), ...]``.

    Steps are separated by spaces, commas or ``+``; a step without ``**N``
    counts one iteration. Raises :class:`ParameterError` on anything else.
    """
    steps = []
    for token in [t for t in re.split(r"[\s,+]+", sequence.strip()) if t]:
        m = re.fullmatch(r"([A-Za-z]+)(?:\*\*(\d+))?", token)
        if not m or m.group(1).upper() not in ALGORITHMS:
            raise ParameterError(f"algorithm step '{token}' is not ALGO**N with ALGO in "
                                 f"{', '.join(ALGORITHMS)} (sequence: '{sequence}')")
        n = int(m.group(2) or 1)
        if n < 1:
            raise ParameterError(f"algorithm step '{token}' has no iterations")
        steps.append((m.group(1).upper(), n))
    if not steps:
        raise ParameterError("the algorithm sequence is empty")
    return steps


def pixel_transfer(shape: tuple) -> np.ndarray:
    """How averaging over one pixel damps the map: ``prod_axes sinc((k - n // 2) / n)``.

    A map measures the continuous Fourier transform ``F(q)`` of the film,
    while a run is a grid of numbers, one per pixel. Taken as the film's
    averages over the pixels, the grid's discrete transform is ``F(q)``
    times the transform of a pixel-wide box, ``sinc(q d / 2)`` along each
    axis (0.64 at the edge of the map), plus the aliases of ``F`` beyond
    the grid's Nyquist frequency, which this leaves out. Phasing against
    ``sqrt(I) x pixel_transfer`` instead of ``sqrt(I)`` asks the runs for
    those averages, which is what the image and the truth of a benchmark
    are; against ``sqrt(I)`` itself they are the band-limited film sampled
    at the pixel centres, whose sharp interfaces ring. On 120 held-out
    validation-family draws (128 x 64, every preprocessing number true) it
    took 71 draws closer to the truth and 31 further, by more than 0.005;
    at 256 x 128, where the map reaches far into the film's tails, 13 and
    17 of 40 (README, "How it works").

    Parameters
    ----------
    shape
        The prepared map's shape, Bragg peak at ``n // 2`` of every axis.

    Returns
    -------
    numpy.ndarray
        Float ``shape``, between ``(2 / pi) ** ndim`` and 1 (at the peak).
    """
    transfer = np.ones(shape)
    for axis, n in enumerate(shape):
        k = np.arange(n) - n // 2
        transfer = transfer * np.sinc(k / n).reshape([-1 if a == axis else 1
                                                      for a in range(len(shape))])
    return transfer


def pixel_averaged(phasing) -> bool:
    """Whether the runs of ``phasing`` are the film's pixel averages (phased
    with ``pixel_average``), from its parameters; False for a result without
    them (made before the parameter existed, or a bare stand-in).

    Parameters
    ----------
    phasing
        A :class:`PhasingResult` or anything with its ``objects``.

    Returns
    -------
    bool
    """
    return bool(getattr(phasing, "parameters", {}).get("pixel_average", False))


#: Width, in units of the patch's soft-edge width, that the box adds to the
#: patch's FWHM so it holds the envelope down to 5 % of its amplitude: a
#: cos^2 edge falls to 5 % at 0.857 of its width, 0.357 beyond the half
#: maximum on either side. A flat top with edges half its FWHM wide (the
#: stress model's) reaches 1.5 x the FWHM, so a box of 1.15 x the FWHM cut
#: it: runs could not fit those maps.
_EDGE_REACH = 2 * (2 / np.pi * np.arccos(np.sqrt(0.05)) - 0.5)

#: A coherent patch whose fitted soft edges are at least this share of its
#: FWHM has hardly a flat top (a Gaussian is fitted as a Hann window, edge
#: about the FWHM; the stress model's flat tops, edges of half the FWHM, are
#: fitted at 0.50; the validation family's draws 0-119 at 0.02-0.39, our own
#: simulator's at 0.02) ...
SOFT_EDGE_FRACTION = 0.45
#: ... and is shrink-wrapped at no more than this share of the blurred
#: amplitude's maximum: at 0.12 shrink-wrap cut the envelope's sides where
#: they fall below an eighth of the top, which the runs then could not fit
#: (README, "Why phasing misses these maps").
SOFT_EDGE_THRESHOLD = 0.03


def shrink_wrap_threshold_for(prepared, threshold: float) -> tuple[float, str]:
    """The shrink-wrap threshold phasing applies to ``prepared``.

    Parameters
    ----------
    prepared
        The :class:`~nanotools.preprocess.PreparedMap` (its ``patch_nm`` and
        ``patch_edge_nm``).
    threshold
        The requested threshold (``shrink_wrap_threshold``).

    Returns
    -------
    threshold : float
        ``min(threshold, SOFT_EDGE_THRESHOLD)`` where the patch's soft edges
        are at least :data:`SOFT_EDGE_FRACTION` of its FWHM, else ``threshold``.
    note : str
        Why it was lowered, or ``""``.
    """
    patch = float(getattr(prepared, "patch_nm", 0.0) or 0.0)
    edge = float(getattr(prepared, "patch_edge_nm", 0.0) or 0.0)
    if patch <= 0 or edge < SOFT_EDGE_FRACTION * patch or threshold <= SOFT_EDGE_THRESHOLD:
        return float(threshold), ""
    return SOFT_EDGE_THRESHOLD, (
        f"shrink-wrap at {SOFT_EDGE_THRESHOLD:g} of the maximum, not {threshold:g}: the "
        f"coherent patch's soft edges are {edge / patch:.2f} of its FWHM, so its sides fall "
        f"below {threshold:g} of the top inside the film")


def initial_support(shape: tuple, pixel_nm: tuple, *, thickness_nm: float, patch_nm: float,
                    margin: float = 1.15, patch_edge_nm: float = 0.0) -> np.ndarray:
    """The box that must hold the film: slab x coherent patch, enlarged.

    Parameters
    ----------
    shape
        Real-space grid ``(nx[, ny], nz)``.
    pixel_nm
        Pixel size per axis (nm).
    thickness_nm
        Film thickness (nm): the support's height along the last axis.
    patch_nm
        Width (FWHM) of the coherent patch along the in-plane axes (nm).
    margin
        Factor applied to both sizes; above 1 leaves room for the estimates'
        errors.
    patch_edge_nm
        Width of the patch's soft edges (nm): the in-plane size is
        ``patch_nm + 0.713 patch_edge_nm`` (:data:`_EDGE_REACH`) before the
        margin, stopping short of the axis' ends (three pixels free) where
        ``margin x patch_nm`` leaves that much.

    Returns
    -------
    Bool array of ``shape``, centred (``True`` inside).
    """
    support = np.ones(shape, bool)
    for axis, (n, d) in enumerate(zip(shape, pixel_nm)):
        size = (thickness_nm if axis == len(shape) - 1
                else patch_nm + _EDGE_REACH * max(float(patch_edge_nm), 0.0))
        half = margin * size / 2
        coord = (np.arange(n) - n // 2) * d
        if axis < len(shape) - 1 and margin * patch_nm / 2 < (n // 2 - 2) * d:
            # the soft edges' reach may fill the axis where the FWHM does
            # not: stop short of the axis' ends instead (three pixels free)
            half = min(half, (n // 2 - 2) * d)
        inside = np.abs(coord) <= half + 1e-9
        if inside.sum() >= n - 1:
            raise ParameterError(
                f"the support ({2 * half:.1f} nm) fills axis {axis} ({n * d:.1f} nm): the map is "
                "not sampled finely enough in q for this film (oversampling < 2)")
        support &= inside.reshape([-1 if i == axis else 1 for i in range(len(shape))])
    return support


def poisson_llk(model_intensity: np.ndarray, intensity: np.ndarray, measured: np.ndarray
                ) -> np.ndarray:
    """Poisson negative log-likelihood per measured pixel, minus its value for
    a perfect model, so 0 means a perfect fit; about 0.5 for pure noise.

    ``model_intensity`` is ``(n, ...)``; ``intensity`` and ``measured`` the
    data's shape. Returns ``(n,)``.
    """
    m = np.maximum(model_intensity, 1e-12)
    d = np.asarray(intensity, float)
    with np.errstate(divide="ignore", invalid="ignore"):
        term = m - d - d * np.log(m / np.maximum(d, 1e-12))
    term = np.where(measured, term, 0.0)
    axes = tuple(range(1, term.ndim))
    return term.sum(axis=axes) / max(int(measured.sum()), 1)


def _check_prepared(prepared) -> None:
    for name in ("intensity", "mask", "pixel_nm", "thickness_nm", "patch_nm"):
        if not hasattr(prepared, name):
            raise ParameterError(f"phase_retrieval needs a PreparedMap (missing '{name}')")


_D = _defaults("phasing")  # one source of defaults: nanotools.params


def phase_retrieval(prepared, *, n_starts: int = _D["n_starts"], seed: int = 0, start: int = 0,
                    algorithm: str = _D["algorithm"], beta: float = _D["beta"],
                    support_margin: float = _D["support_margin"],
                    shrink_wrap_every: int = _D["shrink_wrap_every"],
                    shrink_wrap_threshold: float = _D["shrink_wrap_threshold"],
                    shrink_wrap_sigma_nm: float = _D["shrink_wrap_sigma_nm"],
                    amplitude_constraint: float = _D["amplitude_constraint"],
                    psf_fwhm_px: float = _D["psf_fwhm_px"],
                    psf_start: float = _D["psf_start"],
                    psf_update_every: int = _D["psf_update_every"],
                    pixel_average: bool = _D["pixel_average"],
                    precision: str = _D["precision"], backend: str | Backend = _D["backend"],
                    batch_size: int | None = None,
                    progress: Callable[[int, int], None] | None = None) -> PhasingResult:
    """Run ``n_starts`` random starts of an algorithm sequence.

    Parameters
    ----------
    prepared
        A :class:`nanotools.preprocess.PreparedMap` (intensity with the Bragg
        peak at ``n // 2``, mask, pixel size, thickness, patch width).
    n_starts
        Number of random starts.
    seed, start
        Start ``k`` (``start <= k < start + n_starts``) draws its random
        initial phases from ``np.random.default_rng([seed, k])``: any split
        of the starts into chunks gives identical starts.
    algorithm
        Sequence of ``ALGO**N`` steps, see :func:`parse_algorithm`.
    beta
        Feedback parameter of HIO and RAAR.
    support_margin
        Enlargement of the initial support box (see :func:`initial_support`).
    shrink_wrap_every
        Update the support every this many iterations (0 = never); the last
        ER step never shrink-wraps, so the final support matches the object.
    shrink_wrap_threshold
        Keep pixels whose blurred amplitude exceeds this fraction of the maximum
        (at most :data:`SOFT_EDGE_THRESHOLD` for a patch with wide soft edges,
        :func:`shrink_wrap_threshold_for`).
    shrink_wrap_sigma_nm
        Blur (Gaussian sigma, nm) of shrink-wrap.
    amplitude_constraint
        0..1: pull the amplitude inside the support towards its average over
        one texture period along x (a texture that is mostly a displacement
        field scatters evenly). The strength falls linearly to 0 at 70 % of
        the sequence, so the last iterations are free. 0 turns it off.
    psf_fwhm_px
        Partial coherence (:mod:`nanotools.coherence`): the model intensity
        is the coherent one convolved with a point-spread function that
        starts as a Gaussian of this full width at half maximum (pixels of
        the map, in-plane axes; at most 0.5 pixel along z) and is refined by
        Richardson-Lucy steps. 0 turns the model off.
    psf_start
        Fraction of the iterations run before the PSF model switches on
        (the first iterations find the texture, the PSF then explains the
        broadening that no single object can).
    psf_update_every
        Iterations between Richardson-Lucy updates of the PSF (0 = keep the
        initial Gaussian).
    pixel_average
        Phase against the measured modulus damped by :func:`pixel_transfer`,
        so that each pixel of a run is the film's average over it (the
        Fourier errors are then against that damped modulus; the LLK is
        always against the counts). False: against the modulus itself.
    precision
        {"single", "double"}.
    backend
        {"numpy", "cupy"} or a :class:`Backend`.
    batch_size
        Starts advanced together (all by default); lower it to save memory.
    progress
        Called as ``progress(iterations_done, iterations_total)``.

    Returns
    -------
    PhasingResult
    """
    _check_prepared(prepared)
    if n_starts < 1:
        raise ParameterError(f"n_starts must be >= 1, got {n_starts}")
    if not 0.0 <= beta <= 1.0:
        raise ParameterError(f"beta must be in [0, 1], got {beta}")
    steps = parse_algorithm(algorithm)
    n_iterations = sum(n for _, n in steps)
    be = backend if isinstance(backend, Backend) else get_backend(backend, precision)
    counts = np.clip(np.nan_to_num(np.asarray(prepared.intensity, float)), 0, None)
    measured_c = ~np.asarray(prepared.mask, bool)
    shape = counts.shape
    transfer2 = pixel_transfer(shape) ** 2 if pixel_average else np.ones(shape)
    intensity = counts * transfer2  # what the runs' pixel grids must reproduce
    support0 = initial_support(shape, tuple(prepared.pixel_nm),
                               thickness_nm=prepared.thickness_nm,
                               patch_nm=prepared.patch_nm, margin=support_margin,
                               patch_edge_nm=getattr(prepared, "patch_edge_nm", 0.0))
    sigma_px = [shrink_wrap_sigma_nm / d for d in prepared.pixel_nm]
    threshold, _ = shrink_wrap_threshold_for(prepared, shrink_wrap_threshold)
    period_px = float(getattr(prepared, "period_nm", 0.0) or 0.0) / prepared.pixel_nm[0]
    if amplitude_constraint > 0 and not (np.isfinite(period_px) and period_px > 0):
        raise ParameterError("the amplitude constraint averages over one texture period, but "
                             "the map's period is unknown: set amplitude_constraint to 0")
    batch_size = n_starts if batch_size is None else max(1, int(batch_size))
    if psf_fwhm_px < 0 or not 0 <= psf_start <= 1 or psf_update_every < 0:
        raise ParameterError("psf_fwhm_px and psf_update_every must be >= 0 and psf_start "
                             f"in [0, 1], got {psf_fwhm_px}, {psf_update_every}, {psf_start}")
    psf0 = None
    if psf_fwhm_px > 0:
        window = _psf_window(shape, prepared, period_px)
        # narrow along z: an ensemble broadens the satellites (in-plane), and
        # a blur along z would wash out the thickness fringes until the
        # Richardson-Lucy steps took it back
        psf0 = gaussian_psf(shape, (psf_fwhm_px,) * (len(shape) - 1) + (min(psf_fwhm_px, 0.5),),
                            window)
        # a floor over the window: Richardson-Lucy steps multiply, so a zero never grows
        psf0 = np.where(window, np.maximum(psf0, 1e-4 * psf0.max()), 0.0)
        psf0 /= psf0.sum()

    t0 = time.perf_counter()
    out_objects, out_supports, out_err, out_llk, out_hist, out_psf = [], [], [], [], [], []
    done, total = 0, n_starts * n_iterations
    for b0 in range(0, n_starts, batch_size):
        ks = np.arange(start + b0, start + min(b0 + batch_size, n_starts))
        obj, sup, err, hist, llk, psf = _run_batch(
            be, intensity, measured_c, support0, ks, counts=counts, transfer2=transfer2,
            seed=seed, steps=steps, beta=beta,
            shrink_wrap_every=shrink_wrap_every, threshold=threshold,
            sigma_px=sigma_px, amplitude_constraint=amplitude_constraint,
            period_px=period_px, psf0=psf0, psf_start_it=int(round(psf_start * n_iterations)),
            psf_update_every=psf_update_every,
            progress=None if progress is None else
            functools.partial(_report_batch, progress, done, len(ks), total))
        done += len(ks) * n_iterations
        out_objects.append(obj), out_supports.append(sup), out_err.append(err)
        out_hist.append(hist), out_llk.append(llk), out_psf.append(psf)
    if progress is not None:
        progress(total, total)
    params = dict(n_starts=n_starts, seed=seed, start=start, algorithm=algorithm, beta=beta,
                  support_margin=support_margin, shrink_wrap_every=shrink_wrap_every,
                  shrink_wrap_threshold=shrink_wrap_threshold,
                  shrink_wrap_threshold_applied=threshold,
                  shrink_wrap_sigma_nm=shrink_wrap_sigma_nm,
                  amplitude_constraint=amplitude_constraint, psf_fwhm_px=psf_fwhm_px,
                  psf_start=psf_start, psf_update_every=psf_update_every,
                  pixel_average=bool(pixel_average), precision=precision, backend=be.name)
    return PhasingResult(
        objects=_joined(out_objects), supports=_joined(out_supports),
        fourier_error=_joined(out_err), llk=_joined(out_llk),
        history=_joined(out_hist), start_indices=np.arange(start, start + n_starts),
        seed=seed, algorithm=algorithm, n_iterations=n_iterations,
        phasing_time_s=time.perf_counter() - t0, parameters=params,
        psf=None if psf0 is None else _joined(out_psf))


def _joined(parts: list) -> np.ndarray:
    """The batches' arrays end to end; one batch's as it is (no copy)."""
    return parts[0] if len(parts) == 1 else np.concatenate(parts)


def _psf_window(shape, prepared, period_px) -> np.ndarray:
    """Where the PSF may be non-zero: half the satellite spacing (``1 /
    period`` in q) along the in-plane axes (the whole axis when the period is
    unknown), half the thickness-fringe spacing along z, at least one pixel
    either side."""
    half = []
    period_nm = period_px * prepared.pixel_nm[0]
    for axis, n in enumerate(shape):
        if axis == len(shape) - 1:
            fringe_px = n * prepared.pixel_nm[-1] / prepared.thickness_nm
            half.append(max(1.0, np.floor(fringe_px / 2)))
        elif period_nm > 0:
            half.append(max(1.0, np.floor(n * prepared.pixel_nm[axis] / period_nm / 2)))
        else:
            half.append(n / 2)
    return psf_window(shape, tuple(half))


def _start_amplitude(intensity, measured_c) -> np.ndarray:
    """The moduli every random start begins from: measured ones, masked
    pixels at the mean measured modulus."""
    mean_amp = float(np.sqrt(intensity[measured_c]).mean())
    return np.where(measured_c, np.sqrt(intensity), mean_amp)


def _initial_objects(be: Backend, psi, start_amp, support0, ks, seed):
    """Fill ``psi`` (the starts ``ks``' rows of the batch) with the random
    starts: ``start_amp`` with random phases, transformed back, centred and
    cut to the box. One start at a time, so the float64 temporaries stay the
    size of one map, not of the batch."""
    spatial = tuple(range(start_amp.ndim))
    for j, k in enumerate(ks):
        phases = np.random.default_rng([seed, int(k)]).uniform(0, 2 * np.pi, start_amp.shape)
        spectrum = np.fft.ifftshift(start_amp * np.exp(1j * phases)).astype(be.complex_dtype)
        start_obj = np.fft.ifftn(spectrum, axes=spatial, norm="ortho")
        psi[j] = be.asarray(np.fft.fftshift(start_obj) * support0, be.complex_dtype)


def _run_batch(be: Backend, intensity, measured_c, support0, ks, *, counts, transfer2,
               seed, steps, beta, shrink_wrap_every, threshold, sigma_px,
               amplitude_constraint, period_px, psf0, psf_start_it, psf_update_every, progress):
    """Advance the starts ``ks`` through ``steps``.

    Layout: the real-space batch stays centred (film in the middle of the
    array, as returned) while Fourier space is in FFT layout (origin at index
    0; the data are ``ifftshift``-ed once). A circular shift in real space
    only multiplies the transform by a unit-modulus phase, which the modulus
    projection leaves alone, so no shift is ever needed inside the loop, and
    the support box is one contiguous box in the middle, on which alone the
    amplitude constraint is evaluated.

    Order: each chunk of starts (one start on the CPU, the whole batch on a
    GPU) runs through every iteration before the next, so a 2-D start's two
    FFTs and per-pixel passes find it in cache, on ``be.workers`` threads
    that take the next chunk when they are free: no thread ever waits for
    another inside the run (with a barrier per iteration, a core slowed for
    a moment by another job held every other core back). Starts never interact and each
    has its own one-thread FFT plans, so the thread count and the split
    change no bit of any start.

    Partial coherence (``psf0`` not None): from iteration ``psf_start_it``
    the Fourier projection is the one of :class:`PartialCoherence`, each
    start's PSF refined every ``psf_update_every`` iterations.

    ``intensity`` is what the runs' transforms must reproduce (the counts
    times ``transfer2``, see :func:`pixel_transfer`); the final LLK is the
    model's divided by ``transfer2`` against the ``counts``.

    Returns the objects, supports, final Fourier errors, error histories,
    Poisson LLK and centred PSFs (None without the model) of the starts, as
    NumPy arrays.
    """
    xp = be.xp
    n = len(ks)
    shape = intensity.shape
    # data in FFT layout, flattened: the Fourier projection is per pixel
    amp_c = np.sqrt(intensity) * measured_c
    amp = be.asarray(np.fft.ifftshift(amp_c).ravel(), be.real_dtype)
    measured = be.asarray(np.fft.ifftshift(measured_c).ravel(), bool)
    norm_data = float(np.sqrt(np.sum(amp_c.astype(be.real_dtype) ** 2)))
    box = be.asarray(support0)
    start_amp = _start_amplitude(intensity, measured_c)  # each thread fills its own starts
    support = xp.empty((n,) + shape, bool)
    support[...] = box
    shape4 = (shape[0], int(np.prod(shape[1:-1])), shape[-1])
    # the amplitude constraint works on the bounding box of the initial support
    bbox = scipy.ndimage.find_objects(support0.reshape(shape4).astype(np.int8))[0]
    corner = tuple(int(b.start) for b in bbox)
    region = tuple(int(b.stop - b.start) for b in bbox)

    # every FFT plan of the batch (its transforms, each thread's blur and
    # coherence model) from one read of the shared wisdom file
    with be.planning():
        plan = be.plan((n,) + shape)
        chunks = plan.chunks
        chunk_len = chunks[0].stop - chunks[0].start
        n_threads = min(be.workers, len(chunks)) if be.name == "numpy" else 1
        # each thread owns its scratch (blur buffers and plans), sized for one chunk
        scratch = [_Scratch(be, chunk_len, shape, corner, region,
                            period_px if amplitude_constraint > 0 else 0.0,
                            sigma_px if shrink_wrap_every else None, psf0)
                   for _ in range(n_threads)]
    # flat and (start, x, y, z) views of the buffers (y of length 1 in 2-D), no copies
    F_flat = plan.F.reshape(n, -1)
    psi4, p4 = plan.psi.reshape((n,) + shape4), plan.F.reshape((n,) + shape4)
    sup4 = support.reshape((n,) + shape4)
    if psf0 is not None:
        psf = xp.empty((n,) + shape, be.real_dtype)
        psf[...] = be.asarray(psf0, be.real_dtype)
        otf = xp.empty((n,) + scratch[0].coherence.conv.spectrum_shape[1:], be.real_dtype)
        for i in range(len(chunks)):
            otf[chunks[i]] = scratch[0].coherence.transfer(psf[chunks[i]])
        psf_centre = psf[(slice(None),) + (0,) * len(shape)].copy()
        data_fft = be.asarray(np.fft.ifftshift(intensity), be.real_dtype)
        measured_fft = be.asarray(np.fft.ifftshift(measured_c))
    denominator = xp.ones((n,) + region, be.real_dtype) if amplitude_constraint > 0 else None

    n_total = sum(k for _, k in steps)
    # squared misfits, written by the Fourier projection itself (no copy per iteration)
    misfit2 = xp.empty((n, n_total), np.float64)
    anneal_end = 0.7 * n_total  # the last 30 % run free, so real contrast returns
    last_step = len(steps) - 1
    schedule = []  # (algorithm, strength, partial, refine the PSF, shrink-wrap) per iteration
    it = 0
    for step_no, (algo, n_it) in enumerate(steps):
        for _ in range(n_it):
            strength = amplitude_constraint * max(0.0, 1 - it / anneal_end) \
                if amplitude_constraint > 0 else 0.0
            partial = psf0 is not None and it >= psf_start_it
            it += 1
            refine = bool(partial and psf_update_every and it % psf_update_every == 0)
            wrap = bool(shrink_wrap_every and it % shrink_wrap_every == 0
                        and not (step_no == last_step and algo == "ER"))
            schedule.append((algo, strength, partial, refine, wrap,
                             wrap and amplitude_constraint > 0 and it < anneal_end))

    block = be.native_block if psf0 is None and plan.native is not None else None
    if block is not None:
        rt = be.real_dtype.type
        c1s = np.array([rt(update_coefficients(a, beta)[0]) for a, *_ in schedule],
                       be.real_dtype)
        c2s = np.array([rt(update_coefficients(a, beta)[1]) for a, *_ in schedule],
                       be.real_dtype)
        strengths = np.array([rt(st) for _, st, *_ in schedule], be.real_dtype)
        keeps = np.array([rt(1 - st) for _, st, *_ in schedule], be.real_dtype)
        use_amp = np.array([st > 0 for _, st, *_ in schedule])
        wraps = [k for k, step in enumerate(schedule) if step[4]]
        constants = (amp, measured, rt(plan.modulus_scale), rt(plan.projection_scale),
                     rt(1e-12), c1s, c2s, strengths, keeps, use_amp)
        # without the amplitude constraint: placeholders of the right types, never read
        blank = be.xp.zeros((1, 1, 1, 1), be.real_dtype)
        no_lateral = (blank, (blank[0],), (blank[0],), blank, blank, 0, 0.0, 1.0)

    def run_native(s, i):
        """Chunk ``i`` through every iteration in compiled blocks of at most
        ten (:attr:`Backend.native_block`), back in Python only for
        shrink-wrap, progress and Ctrl-C: the same arithmetic in the same
        order as :func:`run_start`'s loop, so the same bits."""
        c = chunks[i]
        sup_c = sup4[c]
        lat = s.lateral
        if lat is not None:
            den_c = denominator[c]
            lat.denominator(sup_c, out=den_c)
            lateral = (lat._input, tuple(a for a, _ in lat._passes),
                       tuple(b for _, b in lat._passes), lat._mean, den_c, lat.h, lat.frac,
                       1.0 / (2 * lat.h + 1 + 2 * lat.frac))
        else:
            lateral = no_lateral
        fwd, inv = int(plan.native[0][i]), int(plan.native[1][i])
        it, n_wrap = 0, 0
        while it < n_total:
            stop_at = min(n_total, (it // 10 + 1) * 10)
            while n_wrap < len(wraps) and wraps[n_wrap] < it:
                n_wrap += 1
            if n_wrap < len(wraps):
                stop_at = min(stop_at, wraps[n_wrap] + 1)
            block(fwd, inv, F_flat[c], psi4[c], p4[c], sup_c, misfit2[c], it, stop_at,
                  *constants, *lateral, *corner, be._no_target)
            it = stop_at
            *_, wrap, refresh = schedule[it - 1]
            if wrap:
                support[c] = _shrink_wrap(be, plan.psi[c], box, s.blur, threshold)
                if refresh:
                    lat.denominator(sup_c, out=denominator[c])
            if it % 10 == 0:
                done_iterations[i] = it
                if stop.is_set():  # the caller was interrupted (Ctrl-C, SIGTERM)
                    return

    def run_start(g, i):
        """Chunk ``i`` (one start on the CPU) through every iteration, on
        thread ``g``'s scratch: the start stays in cache from one iteration
        to the next, and no thread waits for another."""
        s = scratch[g]
        if block is not None:
            return run_native(s, i)
        c = chunks[i]
        F_c, psi_c, p_c, sup_c, err_c = F_flat[c], psi4[c], p4[c], sup4[c], misfit2[c]
        den_c = denominator[c] if denominator is not None else None
        if den_c is not None:
            s.lateral.denominator(sup_c, out=den_c)
        for it, (algo, strength, partial, refine, wrap, refresh) in enumerate(schedule):
            # -- Fourier projection: measured modulus where measured, free
            # elsewhere; the misfit comes out of the same pass
            plan.forward(i)
            if partial:
                s.coherence.project(F_c, otf[c], psf_centre[c], amp, measured, err_c[:, it],
                                    plan)
            else:
                be.fourier_projection(F_c, amp, measured, err_c[:, it], plan)
            plan.inverse(i)
            # -- real-space update (p = plan.F)
            if strength > 0:
                target = s.lateral.target(p_c, sup_c, den_c)
                be.real_space_update(psi_c, p_c, sup_c, algorithm=algo, beta=beta,
                                     strength=strength, target=target, corner=corner)
            else:
                be.real_space_update(psi_c, p_c, sup_c, algorithm=algo, beta=beta)
            if refine:
                plan.forward(i)
                psf[c], otf[c] = s.coherence.refine(F_c, psf[c], otf[c], data_fft,
                                                    measured_fft, plan)
                psf_centre[c] = psf[c][(slice(None),) + (0,) * len(shape)]
            if wrap:
                support[c] = _shrink_wrap(be, plan.psi[c], box, s.blur, threshold)
                if refresh:
                    s.lateral.denominator(sup_c, out=den_c)
            if it % 10 == 9:
                done_iterations[i] = it + 1
                if stop.is_set():  # the caller was interrupted (Ctrl-C, SIGTERM)
                    return

    # starts are handed to whichever thread is free (a core slowed by another
    # job does not hold the rest back); every scratch buffer is overwritten
    # before it is read, so which thread's scratch a start uses changes nothing
    free_scratch = queue.SimpleQueue()
    for g in range(n_threads):
        free_scratch.put(g)

    data = np.fft.ifftshift(counts).ravel()
    to_counts = 1.0 / np.fft.ifftshift(transfer2).ravel()
    meas = np.fft.ifftshift(measured_c).ravel()
    llk = np.empty(n)

    def run_one(i):
        """Chunk ``i`` from its random start to its final LLK, on a free thread."""
        g = free_scratch.get()
        try:
            c = chunks[i]
            _initial_objects(be, plan.psi[c], start_amp, support0, ks[c], seed)
            run_start(g, i)
            if done_iterations[i] < n_total and stop.is_set():
                return
            done_iterations[i] = n_total
            # the final model's Poisson LLK, through the same plans (no batch-sized temporaries)
            plan.forward(i)
            if psf0 is not None:
                model = be.asnumpy(scratch[g].coherence.model(F_flat[c], otf[c], plan))
            else:
                model = be.asnumpy(xp.abs(F_flat[c])) ** 2 * plan.modulus_scale ** 2
            llk[c] = poisson_llk(model * to_counts, data, meas)
        finally:
            free_scratch.put(g)

    done_iterations = [0] * len(chunks)
    stop = threading.Event()
    if n_threads == 1 and progress is None:
        for i in range(len(chunks)):
            run_one(i)
    else:
        with ThreadPoolExecutor(n_threads) as pool:
            futures = [pool.submit(run_one, i) for i in range(len(chunks))]
            pending = futures
            try:
                while pending:
                    _, pending = wait(pending, timeout=0.5)
                    if progress is not None:
                        progress(sum(done_iterations) * chunk_len // n)
            except BaseException:
                # stop the threads within ten iterations instead of at the end of the run
                stop.set()
                for f in futures:
                    f.cancel()
                raise
            for f in futures:
                f.result()  # re-raise a thread's error
    history = (np.sqrt(be.asnumpy(misfit2)) / norm_data).astype(np.float32)
    # the batch's own buffers, not copies (the plans are done with them): two
    # copies had added 0.34 s and 0.15 GiB of peak RSS to the QM2-like window
    obj = be.asnumpy(plan.psi)
    sup = be.asnumpy(support)
    psf_out = None if psf0 is None else centred(be.asnumpy(psf), len(shape)).astype(np.float32)
    return obj, sup, history[:, -1].astype(float), history, llk, psf_out


class _Scratch:
    """One thread's buffers and plans for a chunk of starts: the lateral
    amplitude average (if the amplitude constraint is on) and shrink-wrap's
    blur (if shrink-wrap is on) and the partial-coherence model (if on)."""

    def __init__(self, be, chunk_len, shape, corner, region, period_px, sigma_px, psf0):
        self.lateral = _LateralAmplitude(be, chunk_len, len(shape) - 1, corner, region,
                                         period_px) if period_px > 0 else None
        self.blur = GaussianBlur(be, (chunk_len,) + shape, tuple(range(1, len(shape) + 1)),
                                 sigma_px) if sigma_px is not None else None
        self.coherence = PartialCoherence(be, chunk_len, shape, np.asarray(psf0) > 0) \
            if psf0 is not None else None


class _LateralAmplitude:
    """The target of the amplitude constraint of
    :meth:`Backend.real_space_update`: the lateral average of the amplitude
    inside the support.

    Stagnated runs of displacement textures show amplitude stripes at the
    texture period that the true object does not have. A running mean over
    exactly one period along each in-plane axis removes them (and all their
    harmonics: the box's transfer function is zero at every multiple of
    ``1 / period``) and keeps what varies slowly (the soft edges of the
    coherent patch) or only along z (layers, the film's interfaces). The mean
    is taken inside the support (divided by the mean of the support itself,
    the denominator) and only on the box ``region`` at ``corner`` that holds
    the initial support: a few O(n) passes over that box
    (:meth:`Backend.box_mean`, zero beyond its edges, where the support is
    empty anyway). A Gaussian average by FFT over the whole slab cost more
    than the iteration's two FFTs in 3-D. The denominator is computed again
    only when shrink-wrap changes the support.

    Arrays are ``(chunk, x, y, z)``, ``y`` of length 1 for a 2-D map.
    """

    def __init__(self, be: Backend, chunk_len, n_inplane_axes, corner, region, period_px):
        self.be, self.corner = be, corner
        # one period as a box of 2 h + 1 pixels plus frac at either end
        width = max(float(period_px), 1.0)
        self.h = int((width - 1) // 2)
        self.frac = (width - 2 * self.h - 1) / 2
        bufs = [be.empty((chunk_len,) + tuple(region), be.real_dtype) for _ in range(2)]
        # one pass per in-plane axis, from one buffer into the other; the
        # views are made once (this runs for every start at every iteration)
        self._passes = []
        for k in range(n_inplane_axes):
            shape = (chunk_len * int(np.prod(region[:k])), region[k], -1)
            self._passes.append((bufs[k % 2].reshape(shape), bufs[(k + 1) % 2].reshape(shape)))
        self._input, self._mean = bufs[0], bufs[n_inplane_axes % 2]
        self._index = region_index(corner, (chunk_len,) + tuple(region))

    def _average(self):
        """The box mean of ``_input`` along the in-plane axes (``_mean``)."""
        for src, dst in self._passes:
            self.be.box_mean(src, self.h, self.frac, dst)
        return self._mean

    def denominator(self, support, out):
        """The averaged support on the box, at least 1e-6, into ``out``."""
        self._input[...] = support[self._index]
        self.be.xp.maximum(self._average(), 1e-6, out=out)

    def target(self, p, support, denominator):
        """Averaged ``|p|`` x support over ``denominator``, on the box; a
        buffer reused by the next call."""
        self.be.region_amplitude(p, support, self.corner, self._input)
        mean = self._average()
        mean /= denominator
        return mean


def _shrink_wrap(be: Backend, psi, box, blur: GaussianBlur, threshold):
    """New support: blurred amplitude above ``threshold`` x its maximum,
    never outside the initial box. The blur is a Gaussian multiplication in
    Fourier space (two real-to-complex FFTs, every few tens of iterations)."""
    xp = be.xp
    xp.abs(psi, out=blur.input)
    blurred = blur()
    n = len(psi)
    peak = blurred.reshape(n, -1).max(axis=1).reshape((-1,) + (1,) * (psi.ndim - 1))
    return (blurred > threshold * peak) & box


def concatenate(results: list[PhasingResult]) -> PhasingResult:
    """Join results of chunks of starts (same data, seed and algorithm) into one."""
    if not results:
        raise ParameterError("nothing to concatenate")
    first = results[0]
    for r in results[1:]:
        if r.seed != first.seed or r.algorithm != first.algorithm:
            raise ParameterError("cannot concatenate phasing results with different seeds "
                                 "or algorithms")
    cat = lambda name: np.concatenate([getattr(r, name) for r in results])  # noqa: E731
    params = dict(first.parameters)
    params["n_starts"] = sum(r.n_starts for r in results)
    psf = None if any(r.psf is None for r in results) else cat("psf")
    return PhasingResult(objects=cat("objects"), supports=cat("supports"),
                         fourier_error=cat("fourier_error"), llk=cat("llk"),
                         history=cat("history"), start_indices=cat("start_indices"),
                         seed=first.seed, algorithm=first.algorithm,
                         n_iterations=first.n_iterations,
                         phasing_time_s=sum(r.phasing_time_s for r in results),
                         parameters=params, psf=psf)

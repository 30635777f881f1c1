"""Phase retrieval: iterative projection algorithms from many random starts.

All starts advance together as one batch array ``(n_starts, nx[, ny], nz)``
(see :mod:`nanotools.backend`). The Fourier projection keeps the measured
modulus where the detector measured and leaves masked pixels free; the
real-space projection keeps the object inside a support that starts as the
measured film slab x coherent patch (a box) and is refined by shrink-wrap
inside that box.

References
----------
Fienup, Appl. Opt. 21, 2758 (1982) (ER, HIO).
Luke, Inverse Problems 21, 37 (2005) (RAAR).
Marchesini et al., Phys. Rev. B 68, 140101 (2003) (shrink-wrap).
Shao et al., PNAS 120, e2303312120 (2023) (this method).
"""
from __future__ import annotations

import re
import time
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from .backend import Backend, get_backend
from .errors import ParameterError
from .params import defaults as _defaults

__all__ = ["ALGORITHMS", "PhasingResult", "parse_algorithm", "initial_support",
           "phase_retrieval", "concatenate", "poisson_llk"]

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

    @property
    def n_starts(self) -> int:
        return len(self.start_indices)

    def order(self) -> np.ndarray:
        """Start positions sorted from the best (lowest Fourier error) to the worst."""
        return np.argsort(self.fourier_error, kind="stable")


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


def initial_support(shape: tuple, pixel_nm: tuple, *, thickness_nm: float, patch_nm: float,
                    margin: float = 1.15) -> np.ndarray:
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
        Width of the coherent patch along the in-plane axes (nm).
    margin
        Factor applied to both sizes; above 1 leaves room for soft edges and
        for the estimates' errors.

    Returns
    -------
    Bool array of ``shape``, centred (``True`` inside).
    """
    support = np.ones(shape, bool)
    for axis, (n, d) in enumerate(zip(shape, pixel_nm)):
        half = margin * (thickness_nm if axis == len(shape) - 1 else patch_nm) / 2
        coord = (np.arange(n) - n // 2) * d
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
        Keep pixels whose blurred amplitude exceeds this fraction of the maximum.
    shrink_wrap_sigma_nm
        Blur (Gaussian sigma, nm) of shrink-wrap.
    amplitude_constraint
        0..1: pull the amplitude inside the support towards its average over
        one texture period along x (a texture that is mostly a displacement
        field scatters evenly). The strength falls linearly to 0 at 70 % of
        the sequence, so the last iterations are free. 0 turns it off.
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
    intensity = np.clip(np.nan_to_num(np.asarray(prepared.intensity, float)), 0, None)
    measured_c = ~np.asarray(prepared.mask, bool)
    shape = intensity.shape
    support0 = initial_support(shape, tuple(prepared.pixel_nm),
                               thickness_nm=prepared.thickness_nm,
                               patch_nm=prepared.patch_nm, margin=support_margin)
    sigma_px = [shrink_wrap_sigma_nm / d for d in prepared.pixel_nm]
    batch_size = n_starts if batch_size is None else max(1, int(batch_size))

    t0 = time.perf_counter()
    out_objects, out_supports, out_err, out_llk, out_hist = [], [], [], [], []
    done, total = 0, n_starts * n_iterations
    for b0 in range(0, n_starts, batch_size):
        ks = np.arange(start + b0, start + min(b0 + batch_size, n_starts))
        obj, sup, err, hist = _run_batch(
            be, intensity, measured_c, support0, ks, seed=seed, steps=steps, beta=beta,
            shrink_wrap_every=shrink_wrap_every, threshold=shrink_wrap_threshold,
            sigma_px=sigma_px, amplitude_constraint=amplitude_constraint,
            period_px=getattr(prepared, "period_nm", 0.0) / prepared.pixel_nm[0],
            progress=None if progress is None else
            (lambda i, _d=done, _n=len(ks): progress(_d + i * _n, total)))
        done += len(ks) * n_iterations
        model = np.abs(np.fft.fftn(np.fft.ifftshift(obj, axes=tuple(range(1, obj.ndim))),
                                   axes=tuple(range(1, obj.ndim)), norm="ortho")) ** 2
        out_llk.append(poisson_llk(np.fft.fftshift(model, axes=tuple(range(1, obj.ndim))),
                                   intensity, measured_c))
        out_objects.append(obj), out_supports.append(sup), out_err.append(err)
        out_hist.append(hist)
    if progress is not None:
        progress(total, total)
    params = dict(n_starts=n_starts, seed=seed, start=start, algorithm=algorithm, beta=beta,
                  support_margin=support_margin, shrink_wrap_every=shrink_wrap_every,
                  shrink_wrap_threshold=shrink_wrap_threshold,
                  shrink_wrap_sigma_nm=shrink_wrap_sigma_nm,
                  amplitude_constraint=amplitude_constraint, precision=precision,
                  backend=be.name)
    return PhasingResult(
        objects=np.concatenate(out_objects), supports=np.concatenate(out_supports),
        fourier_error=np.concatenate(out_err), llk=np.concatenate(out_llk),
        history=np.concatenate(out_hist), start_indices=np.arange(start, start + n_starts),
        seed=seed, algorithm=algorithm, n_iterations=n_iterations,
        phasing_time_s=time.perf_counter() - t0, parameters=params)


def _run_batch(be: Backend, intensity, measured_c, support0, ks, *, seed, steps, beta,
               shrink_wrap_every, threshold, sigma_px, amplitude_constraint, period_px,
               progress):
    """Advance the starts ``ks`` through ``steps``; FFT layout (origin at index
    0) throughout, so no shifts are needed inside the loop."""
    xp = be.xp
    axes = tuple(range(intensity.ndim))
    # data in FFT layout, on the device
    amp = be.asarray(np.fft.ifftshift(np.sqrt(intensity)), be.real_dtype)
    meas = be.asarray(np.fft.ifftshift(measured_c))
    box = be.asarray(np.fft.ifftshift(support0))
    norm_data = float(xp.sqrt(xp.sum((amp * meas) ** 2)))

    # random starts: measured moduli with random phases, transformed back and
    # cut to the box (masked pixels start at the mean measured modulus)
    mean_amp = float(np.sqrt(intensity[measured_c]).mean())
    phases = np.stack([np.random.default_rng([seed, int(k)]).uniform(0, 2 * np.pi, intensity.shape)
                       for k in ks])
    start_amp = np.where(measured_c, np.sqrt(intensity), mean_amp)
    psi = be.asarray(np.fft.ifftshift(start_amp * np.exp(1j * phases), axes=tuple(a + 1 for a in axes)),
                     be.complex_dtype)
    psi = be.ifft(psi)
    support = xp.broadcast_to(box, psi.shape).copy()
    psi *= support

    n_total = sum(n for _, n in steps)
    history = np.empty((len(ks), n_total), np.float32)
    lateral_filter = None
    if amplitude_constraint > 0:
        shape = intensity.shape
        f = np.meshgrid(*[np.fft.fftfreq(n) for n in shape[:-1]], indexing="ij")
        g = np.exp(-2 * np.pi ** 2 * sum((period_px / 2 * fi) ** 2 for fi in f))
        lateral_filter = be.asarray(g[(None,) + (slice(None),) * len(f) + (None,)],
                                    be.real_dtype)
        anneal_end = 0.7 * n_total  # the last 30 % run free, so real contrast returns
    it = 0
    last_step = len(steps) - 1
    for step_no, (algo, n) in enumerate(steps):
        for _ in range(n):
            # -- Fourier projection: measured modulus where measured, free elsewhere
            F = be.fft(psi.copy())
            modulus = xp.abs(F)
            resid = (modulus - amp) * meas
            history[:, it] = be.asnumpy(
                xp.sqrt(xp.sum(resid.reshape(len(ks), -1) ** 2, axis=1))) / norm_data
            scale = xp.where(meas, amp / xp.maximum(modulus, 1e-12), 1.0).astype(be.real_dtype)
            F *= scale
            p = be.ifft(F)
            # -- real-space update
            strength = amplitude_constraint * max(0.0, 1 - it / anneal_end) \
                if amplitude_constraint > 0 else 0.0
            inside = _constrain_amplitude(be, p, support, strength, lateral_filter) \
                if strength > 0 else p
            if algo == "ER":
                psi = xp.where(support, inside, 0)
            elif algo == "HIO":
                psi = xp.where(support, inside, psi - beta * p)
            else:  # RAAR
                psi = xp.where(support, inside, beta * psi + (1 - 2 * beta) * p)
            it += 1
            if (shrink_wrap_every and it % shrink_wrap_every == 0
                    and not (step_no == last_step and algo == "ER")):
                support = _shrink_wrap(be, psi, box, sigma_px, threshold)
            if progress is not None and it % 10 == 0:
                progress(it)
    obj = np.fft.fftshift(be.asnumpy(psi), axes=tuple(a + 1 for a in axes))
    sup = np.fft.fftshift(be.asnumpy(support), axes=tuple(a + 1 for a in axes))
    return obj, sup, history[:, -1].astype(float), history


def _constrain_amplitude(be: Backend, p, support, strength, lateral_filter):
    """Pull |p| inside the support towards its own average over about one
    texture period along the in-plane axes.

    Stagnated runs of displacement textures show amplitude stripes at the
    texture period that the true object does not have; a lateral average
    removes exactly those and keeps what varies slowly (the soft edges of the
    coherent patch) or only along z (layers, the film's interfaces).
    ``lateral_filter`` is the Gaussian transfer function along x (and y),
    shaped to broadcast over the batch.
    """
    xp = be.xp
    mag = xp.abs(p)
    w = support.astype(be.complex_dtype)
    in_plane = tuple(range(1, p.ndim - 1))
    fft = be._fft
    kw = be._fft_kw
    smooth = lambda a: xp.real(fft.ifftn(fft.fftn(a, axes=in_plane, **kw) * lateral_filter,  # noqa: E731
                                         axes=in_plane, **kw))
    target = smooth(mag * w) / xp.maximum(smooth(w), 1e-6)
    new = (1 - strength) * mag + strength * target
    return p * (new / xp.maximum(mag, 1e-12))


def _shrink_wrap(be: Backend, psi, box, sigma_px, threshold):
    """New support: blurred amplitude above ``threshold`` x its maximum,
    never outside the initial box. The blur is a Gaussian multiplication in
    Fourier space (two FFTs, every few tens of iterations)."""
    xp = be.xp
    shape = psi.shape[1:]
    freqs = np.meshgrid(*[np.fft.fftfreq(n) for n in shape], indexing="ij")
    gauss = np.exp(-2 * np.pi ** 2 * sum((s * f) ** 2 for s, f in zip(sigma_px, freqs)))
    blurred = xp.abs(be.ifft(be.fft(xp.abs(psi).astype(be.complex_dtype)) *
                             be.asarray(gauss, be.real_dtype)))
    peak = blurred.reshape(len(psi), -1).max(axis=1).reshape((-1,) + (1,) * len(shape))
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
    return PhasingResult(objects=cat("objects"), supports=cat("supports"),
                         fourier_error=cat("fourier_error"), llk=cat("llk"),
                         history=cat("history"), start_indices=cat("start_indices"),
                         seed=first.seed, algorithm=first.algorithm,
                         n_iterations=first.n_iterations,
                         phasing_time_s=sum(r.phasing_time_s for r in results),
                         parameters=params)

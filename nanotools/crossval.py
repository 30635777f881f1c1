"""The real-space grid along z, chosen by cross-validation (``-p z_subpixels 0``).

A film has sharp top and bottom interfaces, so its transform reaches every
``q_z``; a run of pixel averages on the map's own Nyquist grid reproduces
only the part inside the map, and the aliases of the rest make its thickness
fringes wrong by several per cent where the map is cut while the film still
scatters (:func:`nanotools.preprocess.extend_unmeasured_z`). A grid twice as
fine along z, with the ``q_z`` range beyond the map left free, models those
interfaces, but doubles the unknowns along z, and on some maps the images
get worse with it.

The check borrows the crystallographer's free R factor (Brunger, Nature
355, 472, 1992): a random share of the measured pixels is held out, a few
starts are phased on each grid without them, and each grid's runs are
scored on the pixels they never saw. The finer grid is taken only where
it predicts them far better (:data:`FREE_MISFIT_GAIN`). What it measures
is which grid this search fits better, not over-fitting alone: on a small
map made on its own grid from a film that grid holds exactly, the finer
grid still predicted the held-out pixels 2.4-3.5 x better (runs on the
coarser grid stagnate more).

Measured (2026-12-07, AMD EPYC, 16 starts per grid, 5 % held out, defaults
otherwise; a scratch script): on the independent stress model's 2-D maps
(``benchmarks/preprocess_stress.py``, draws 0-14) the map's grid left a free
misfit of 44-2 900 per held-out pixel on 10 of 12 draws (1 for a perfect
model), the finer grid 1.3-135, a ratio of 0.01-0.33 (0.62 on one draw);
on validation-family draws 0-9 the ratio was 0.74-0.91 on seven draws and
0.10, 0.26 and 0.43 on three. It is not the default (``z_subpixels`` 1):
end to end it takes the stress maps from a median error of 0.261 to
0.145, but the validation family's films seen through half the q range
(128 x 64 maps) fail the map's own grid just as clearly (ratios
0.09-0.21), and there the finer grid images them worse (README, "The z
grid, chosen by cross-validation").
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field, replace

import numpy as np

from .phasing import phase_retrieval, pixel_averaged
from .preprocess import finer_z_grid
from .trust import model_intensity

__all__ = ["GridChoice", "held_out_pixels", "free_misfit", "choose_z_subpixels",
           "HELD_OUT_SHARE", "FREE_MISFIT_GAIN"]

#: Share of the measured pixels held out of the check's runs.
HELD_OUT_SHARE = 0.05
#: The finer grid is taken where its runs' free misfit is below this share
#: of the map's own grid's: it must predict the held-out pixels about three
#: times better, not merely fit them more closely with more unknowns.
FREE_MISFIT_GAIN = 0.35
#: Real-space pixels per map pixel along z tried, the map's own grid first.
CANDIDATES = (1, 2)


@dataclass
class GridChoice:
    """The outcome of :func:`choose_z_subpixels`.

    Attributes
    ----------
    factor
        Real-space pixels per map pixel along z to phase on.
    free_misfit
        Candidate factor -> its runs' free misfit (mean of
        ``4 (sqrt(k) - sqrt(lambda))^2`` per held-out pixel, about 1 for a
        perfect model at many counts; median over the better half of its runs).
    starts
        Starts phased per candidate.
    held_out
        Pixels held out.
    seconds
        Wall time of the check.
    note
        One sentence with the numbers, for the result's notes.
    """

    factor: int
    free_misfit: dict = field(default_factory=dict)
    starts: int = 0
    held_out: int = 0
    seconds: float = 0.0
    note: str = ""


def held_out_pixels(mask: np.ndarray, *, share: float = HELD_OUT_SHARE,
                    seed: int = 0) -> np.ndarray:
    """A random ``share`` of the measured pixels (``~mask``), fixed by ``seed``.

    Parameters
    ----------
    mask
        Bool, ``(nx[, ny], nz)``, True where unmeasured.
    share
        Fraction of the measured pixels to hold out (0..1).
    seed
        Random seed (``default_rng([seed, 7])``: apart from the starts').

    Returns
    -------
    numpy.ndarray
        Bool, ``mask``'s shape, True on the held-out pixels.
    """
    mask = np.asarray(mask, bool)
    rng = np.random.default_rng([int(seed), 7])
    return ~mask & (rng.random(mask.shape) < share)


def free_misfit(objects: np.ndarray, prepared, held: np.ndarray, *, factor: int = 1,
                pixel_average: bool = True) -> np.ndarray:
    """How well each run predicts the held-out pixels.

    Parameters
    ----------
    objects
        Complex runs ``(n, nx[, ny], factor nz)``, phased on ``prepared``
        refined ``factor`` times along z.
    prepared
        The :class:`~nanotools.preprocess.PreparedMap` on the map's own grid
        (``(nx[, ny], nz)``; background-subtracted counts).
    held
        Bool, ``prepared``'s shape: the held-out pixels.
    factor
        The runs' real-space pixels per map pixel along z.
    pixel_average
        Whether the runs are pixel averages (their modulus damped by
        :func:`~nanotools.phasing.pixel_transfer`).

    Returns
    -------
    numpy.ndarray
        ``(n,)``: the mean over the held-out pixels of
        ``4 (sqrt(k) - sqrt(lambda))^2``, with ``k`` the counts and
        ``lambda`` the run's intensity, both with the subtracted background
        back (about 1 for a perfect model where counts are many, less where
        they are few).
    """
    nz = np.shape(prepared.intensity)[-1]
    first = factor * nz // 2 - nz // 2  # the measured rows' place (extend_unmeasured_z)
    background = float(prepared.background or 0.0) * int(prepared.bin or 1) ** held.ndim
    counts = np.clip(np.asarray(prepared.intensity, float)[held] + background, 0, None)
    out = np.empty(len(objects))
    for i, obj in enumerate(objects):
        model = model_intensity(obj, pixel_average=pixel_average)[..., first:first + nz]
        expected = np.clip(model[held] + background, 0, None)
        out[i] = np.mean(4.0 * (np.sqrt(counts) - np.sqrt(expected)) ** 2)
    return out


def choose_z_subpixels(prepared, *, seed: int = 0, n_starts: int = 32,
                       share: float = HELD_OUT_SHARE, progress=None,
                       **phasing_params) -> GridChoice:
    """Choose the real-space pixels per map pixel along z by cross-validation.

    Holds out ``share`` of the measured pixels, phases ``max(4, n_starts //
    4)`` starts on the map's own grid and on a grid twice as fine along z
    (the ``q_z`` range beyond the map free), and takes the finer grid where
    its runs predict the held-out pixels with a free misfit below
    :data:`FREE_MISFIT_GAIN` times the map's grid's.

    Parameters
    ----------
    prepared
        The :class:`~nanotools.preprocess.PreparedMap` on the map's own grid.
    seed
        Random seed of the held-out pixels and of the check's starts.
    n_starts
        Starts of the main run (the check phases a quarter of them per grid).
    share
        Share of the measured pixels held out.
    progress
        ``progress(done_iterations, total_iterations)`` over both grids, or None.
    **phasing_params
        Keywords of :func:`~nanotools.phasing.phase_retrieval` (the run's own).

    Returns
    -------
    GridChoice
        The factor taken, each candidate's free misfit and the note.
    """
    t0 = time.perf_counter()
    held = held_out_pixels(prepared.mask, share=share, seed=seed)
    probe = replace(prepared, mask=np.asarray(prepared.mask, bool) | held)
    starts = max(4, int(n_starts) // 4)
    params = {k: v for k, v in phasing_params.items() if k not in ("n_starts", "seed")}
    scores = {}
    for i, factor in enumerate(CANDIDATES):
        report = None if progress is None else (
            lambda done, total, i=i: progress(i * total + done, len(CANDIDATES) * total))
        phased = phase_retrieval(finer_z_grid(probe, factor), n_starts=starts, seed=seed,
                                 progress=report, **params)
        misfit = free_misfit(phased.objects, prepared, held, factor=factor,
                             pixel_average=pixel_averaged(phased))
        better = np.argsort(phased.fourier_error)[:max(2, starts // 2)]
        scores[factor] = float(np.median(misfit[better]))
    coarse, fine = scores[CANDIDATES[0]], scores[CANDIDATES[1]]
    factor = CANDIDATES[1] if fine < FREE_MISFIT_GAIN * coarse else CANDIDATES[0]
    ratio = fine / coarse if coarse > 0 else float("nan")
    verdict = (f"so phased on {factor} real-space pixels per map pixel along z"
               if factor > 1 else "so the map's own grid is kept")
    note = (f"z grid by cross-validation: with {int(held.sum())} measured pixels "
            f"({share:.0%}) held out, {starts} starts per grid predict them to a free misfit "
            f"of {coarse:.3g} per pixel on the map's own grid and {fine:.3g} on a grid "
            f"{CANDIDATES[1]} x finer along z ({ratio:.2f} x; the finer grid is taken below "
            f"{FREE_MISFIT_GAIN:g} x), {verdict}")
    seconds = time.perf_counter() - t0
    return GridChoice(factor=factor, free_misfit=scores, starts=starts,
                      held_out=int(held.sum()), seconds=seconds,
                      note=f"{note} (the check took {seconds:.0f} s)")

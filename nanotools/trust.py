"""How far a result can be trusted: half-map agreement and data misfit.

There is no truth to compare with on a measured map, so the error of the
image is estimated from the data, in two independent ways:

1. **Half maps** (the gold standard of cryo-EM): the starts are split into
   two halves by the parity of their start index (start ``k`` always draws
   from ``default_rng([seed, k])``, so the halves are fixed by the seed alone,
   whatever the chunking or threading). Each half goes through pattern
   recognition on its own; the two chosen supercells are aligned (shift,
   twin, phase ramp, global phase, scale) and compared. For random errors
   that are independent between starts, the difference of two halves is
   ``sqrt(2)`` times one half's error, and the average of all starts has
   ``1/sqrt(2)`` of one half's error, so the random error of the full
   average is half the half-map difference, ``d / 2``.
2. **Errors all starts share.** Both halves fit the same noisy data with the
   same algorithm, so the data's noise propagated into the image and the
   algorithm's bias are common to them and invisible to ``d``. On our own
   simulator's textures (17 maps: three textures, seeds 0-4, 3e7 to 1e13
   counts, converged and stopped early) the true error of the average was
   0.5-3 times ``d``, but of the order of the typical distance ``s`` of a
   supercell from the chosen average (:func:`member_spread`): the width of
   the valley of solutions that the data leave open sets both the scatter of
   the starts and the error they share, which more starts do not average
   away. The shared part is taken as :data:`SHARED_ERROR_PER_SPREAD` ``x s``
   with the factor 0.7 set once on those maps (the middle of the measured
   ratios, not fitted draw by draw); the estimate below was then within
   0.56-1.64 times the true error on all 17 of them, and is checked on the
   independent validation family by ``benchmarks/trust_calibration.py``.
3. **Data misfit.** For Poisson counts a perfect model still misses the
   measured moduli by ``E[(sqrt(k) - sqrt(lambda))^2]`` per pixel (1/4 for
   many counts, since ``var(sqrt(Poisson)) ~ 1/4``), which sets the Fourier
   error floor ``sqrt(sum E[...] / sum k)``. Converged runs on the simulated
   maps sit at 0.75-1.05 times the floor (a little below: the support
   absorbs some noise); a misfit well beyond it means the model does not
   explain the data (runs stopped early, partial coherence, a wrong support)
   and that the image may be wrong in a way neither ``d`` nor ``s`` sees.
   How wrong cannot be read from a Fourier-modulus misfit, so it enters the
   verdict, not the estimate.

4. **Dependence on the amplitude prior.** Phasing pulls the amplitude
   towards its average over one period for most of its iterations (a
   displacement texture scatters evenly). Where the texture also modulates
   the scattering strength, or where the data leave the relative phases of
   the satellite orders open (an ensemble destroys the interference between
   orders; a one-patch map keeps it only in the satellites' tails), that
   prior, not the data, may pick the image, and every start agrees on it:
   ``d`` and ``s`` stay small while the image is wrong. So some starts are
   run again without the prior (``trust_prior_fraction`` of them, the same
   random starts) and their chosen supercell is compared with the answer:
   the difference ``p`` is how far the answer rests on the prior, and
   ``p / 2`` enters the estimate like a half-map difference, weighted by how
   well that image fits the data: one whose Fourier error exceeds the
   answer's by 10 % (:data:`PRIOR_FIT_TOLERANCE`) or more is ruled out by
   the data, not left open (weight 0; 1 at equal fit, linear between). On
   the bent wave of our own simulator, a displacement texture, the starts
   without the prior found images 0.14-0.41 away that fit 1.55-1.68 x worse.
   On 20 held-out draws of the validation family (seeds 1000-1019,
   preprocessing from the truth) ``p`` was 0.007-0.20 (median 0.043) where
   the image was within 0.10 of the truth and 0.075-0.74 (median 0.19)
   where it was not.

The estimate is ``sqrt((d/2)^2 + (0.7 s)^2 + (w p/2)^2)`` (``p = 0`` when the
prior is off or not checked); the verdict is reliable when
the estimate, the misfit ratio ``E / floor`` and the number of supercells per
half all pass the thresholds of :mod:`nanotools.params` (stage ``trust``).

References
----------
Rosenthal & Henderson, J. Mol. Biol. 333, 721 (2003) (half maps).
Thibault & Guizar-Sicairos, New J. Phys. 14, 063004 (2012) (Poisson noise
of diffraction data).
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from functools import lru_cache

import numpy as np
from scipy import stats

from .analysis import align_supercell
from .errors import NanotoolsError
from .params import defaults as _defaults
from .phasing import pixel_averaged, pixel_transfer

__all__ = ["SHARED_ERROR_PER_SPREAD", "PRIOR_FIT_TOLERANCE", "TrustEstimate", "split_halves",
           "poisson_sqrt_variance", "poisson_noise_floor", "model_intensity", "run_noise_floor",
           "member_spread",
           "half_map_difference", "trust_verdict", "estimate_trust", "prior_free_starts"]


#: Error shared by all starts per unit of member spread (see the module notes).
SHARED_ERROR_PER_SPREAD = 0.7

#: A prior-free image whose Fourier error exceeds the answer's by more than
#: this share is ruled out by the data (see the module notes, point 4).
PRIOR_FIT_TOLERANCE = 0.1


@dataclass
class TrustEstimate:
    """How far the chosen supercell can be trusted.

    Attributes
    ----------
    estimated_error
        Expected normalised complex error of the final supercell against the
        truth: ``sqrt((half_difference / 2)^2 + (0.7 member_spread)^2)``.
    reliable
        The estimate, the misfit and the supercell counts pass the thresholds.
    reliable_reason
        One sentence with the numbers: why it is or is not trusted.
    half_supercells
        ``(2, n_cell, n_film)`` complex: the chosen average of the even and
        of the odd starts, the odd one aligned onto the even one (zeros when
        a half found no supercells).
    half_difference
        ``||A - B|| / ||A||`` after alignment (1 when a half failed).
    spread
        ``(n_cell, n_film)``: ``|A - B| / 2`` per pixel, the expected error
        of the full average at each pixel, relative to the mean film
        amplitude of ``A``.
    half_cells
        Supercells found in each half (all clusters).
    member_spread
        Median distance of the unit-norm supercells of all starts from the
        unit-norm chosen average (:func:`member_spread`).
    fourier_error
        Median Fourier error of the runs of the chosen cluster.
    noise_floor
        Fourier error a perfect model would have at these counts.
    misfit_ratio
        ``fourier_error / noise_floor`` (1 = fits to the noise).
    excess_misfit
        ``sqrt(max(fourier_error^2 - noise_floor^2, 0))``.
    notes
        What went wrong in a half, if anything.
    prior_difference
        ``||A - P|| / ||A||`` between the answer and the chosen supercell of
        the starts run without the amplitude prior (NaN when not checked or
        when those found no supercells).
    prior_free_misfit
        Median Fourier error of the runs behind that supercell over the
        answer's (``fourier_error``); NaN when not checked.
    """

    estimated_error: float
    reliable: bool
    reliable_reason: str
    half_supercells: np.ndarray
    half_difference: float
    spread: np.ndarray
    half_cells: tuple
    member_spread: float
    fourier_error: float
    noise_floor: float
    misfit_ratio: float
    excess_misfit: float
    notes: list = field(default_factory=list)
    prior_difference: float = float("nan")
    prior_free_misfit: float = float("nan")


def split_halves(phasing) -> tuple:
    """The even and the odd starts of a phase retrieval, as two results.

    The split is by start index, so it depends only on the seed, never on how
    the starts were chunked or threaded.

    Parameters
    ----------
    phasing
        A :class:`nanotools.phasing.PhasingResult`.

    Returns
    -------
    even : PhasingResult
        The starts with even start index.
    odd : PhasingResult
        The starts with odd start index.
    """
    idx = np.asarray(phasing.start_indices)
    halves = []
    for parity in (0, 1):
        sel = np.nonzero(idx % 2 == parity)[0]
        halves.append(replace(
            phasing, objects=np.asarray(phasing.objects)[sel],
            supports=np.asarray(phasing.supports)[sel],
            fourier_error=np.asarray(phasing.fourier_error)[sel],
            llk=np.asarray(phasing.llk)[sel], history=np.asarray(phasing.history)[sel],
            start_indices=idx[sel]))
    return halves[0], halves[1]


@lru_cache(maxsize=1)
def _sqrt_variance_table():
    # E[(sqrt(k) - sqrt(lam))^2] summed over the Poisson pmf on a log grid;
    # above the grid the asymptotic series 1/4 + 7 / (64 lam) is exact to 1e-4
    lam = np.logspace(-6, np.log10(60.0), 400)
    k = np.arange(0, 200)[:, None]
    pmf = stats.poisson.pmf(k, lam[None, :])
    value = (pmf * (np.sqrt(k) - np.sqrt(lam)[None, :]) ** 2).sum(axis=0)
    return np.log(lam), value


def poisson_sqrt_variance(lam: np.ndarray) -> np.ndarray:
    """``E[(sqrt(k) - sqrt(lam))^2]`` for ``k ~ Poisson(lam)``.

    About ``2 lam`` for few counts, a maximum of about 0.45 near ``lam = 1``,
    and ``1/4 + 7 / (64 lam)`` for many counts.

    Parameters
    ----------
    lam
        Expected counts per pixel, any shape (>= 0).

    Returns
    -------
    numpy.ndarray
        The expected squared deviation, ``lam``'s shape.
    """
    lam = np.asarray(lam, float)
    log_grid, value = _sqrt_variance_table()
    small = np.interp(np.log(np.maximum(lam, 1e-6)), log_grid, value)
    small = np.where(lam < 1e-6, 2 * lam, small)
    with np.errstate(divide="ignore"):
        large = 0.25 + 7.0 / (64.0 * np.maximum(lam, 1e-30))
    return np.where(lam > np.exp(log_grid[-1]), large, small)


def model_intensity(obj: np.ndarray, *, pixel_average: bool = False) -> np.ndarray:
    """The intensity a real-space run predicts, on the map's grid.

    ``|FFT(obj)|^2`` with the unitary transform that phase retrieval uses,
    Bragg peak at ``n // 2`` of every axis like the prepared map; divided by
    :func:`~nanotools.phasing.pixel_transfer` squared for a run of pixel
    averages (phased with ``pixel_average``).

    Parameters
    ----------
    obj
        Complex run ``(nx[, ny], nz)``, film centred.
    pixel_average
        Whether ``obj`` holds the film's pixel averages.

    Returns
    -------
    numpy.ndarray
        Expected counts per pixel, float, ``obj``'s shape.
    """
    F = np.fft.fftshift(np.fft.fftn(np.fft.ifftshift(obj), norm="ortho"))
    model = np.abs(F) ** 2
    return model / pixel_transfer(model.shape) ** 2 if pixel_average else model


def poisson_noise_floor(model: np.ndarray, intensity: np.ndarray, mask: np.ndarray, *,
                        background: float = 0.0, weight: np.ndarray | None = None) -> float:
    """Fourier error a perfect model would have, from Poisson noise alone.

    ``sqrt(sum_i E[(sqrt(k_i) - sqrt(lam_i))^2] / sum_i I_i)`` over the
    measured pixels, with ``lam_i`` the model's intensity plus the flat
    background that was subtracted (the counts' own noise), and ``I_i`` the
    data the Fourier error is normalised by. About
    ``0.5 sqrt(N_measured / total_counts)`` when every pixel holds many counts.

    Parameters
    ----------
    model
        Expected counts per pixel (background subtracted), the map's shape.
    intensity
        The prepared map (counts, background subtracted), same shape.
    mask
        Bool, same shape, True = not measured.
    background
        Flat background per pixel that was subtracted (counts).
    weight
        Per-pixel weight of the squared misfits (the map's shape), as in a
        Fourier error against ``sqrt(I) sqrt(weight)``: phasing with
        ``pixel_average`` weighs by :func:`~nanotools.phasing.pixel_transfer`
        squared. None: 1.

    Returns
    -------
    float
        The floor (NaN for a map without counts).
    """
    measured = ~np.asarray(mask, bool)
    lam = np.maximum(np.asarray(model, float)[measured], 0.0) + max(float(background), 0.0)
    w = 1.0 if weight is None else np.asarray(weight, float)[measured]
    total = float((np.clip(np.asarray(intensity, float)[measured], 0, None) * w).sum())
    if total <= 0:
        return float("nan")
    return float(np.sqrt((poisson_sqrt_variance(lam) * w).sum() / total))


def run_noise_floor(obj: np.ndarray, prepared, *, pixel_average: bool = False) -> float:
    """The Poisson floor of a run's Fourier error, in that error's units.

    :func:`poisson_noise_floor` of the run's own model, with the background
    that preprocessing subtracted (per binned pixel) and, for a run of pixel
    averages, the weights of the damped modulus its Fourier error is
    measured against.

    Parameters
    ----------
    obj
        Complex run ``(nx[, ny], nz)``, film centred.
    prepared
        The :class:`~nanotools.preprocess.PreparedMap` it was phased from.
    pixel_average
        Whether the run was phased with ``pixel_average``.

    Returns
    -------
    float
        The floor (NaN for a map without counts).
    """
    obj = np.asarray(obj)
    background = (float(getattr(prepared, "background", 0.0) or 0.0)
                  * int(getattr(prepared, "bin", 1) or 1) ** obj.ndim)
    return poisson_noise_floor(model_intensity(obj, pixel_average=pixel_average),
                               prepared.intensity, prepared.mask, background=background,
                               weight=pixel_transfer(obj.shape) ** 2 if pixel_average else None)


def member_spread(cells: np.ndarray, reference: np.ndarray) -> float:
    """Typical distance of the supercells from the chosen average.

    The median, over every supercell of the runs used (all clusters), of the
    distance between the unit-norm cell and the unit-norm reference. Over
    all cells rather than the chosen cluster's alone, because cells cut
    from one run agree with each other far better than with other runs, and
    a cluster may hold a single run; the median keeps a minority of
    stagnated cells from counting, while a result that only a minority of
    the cells support gets a large spread, as it should.

    Parameters
    ----------
    cells
        Aligned complex supercells ``(n, n_cell, n_film)`` (global phase
        already matched, as :func:`nanotools.patterns.find_supercells`
        leaves them).
    reference
        The chosen average ``(n_cell, n_film)``, in the same frame.

    Returns
    -------
    float
        The median distance (0 = every cell equals the reference, up to
        scale and global phase).
    """
    flat = np.asarray(cells).reshape(len(cells), -1)
    unit = flat / np.maximum(np.linalg.norm(flat, axis=1, keepdims=True), 1e-30)
    ref = np.asarray(reference).ravel()
    ref = ref / max(np.linalg.norm(ref), 1e-30)
    # global phase of each cell onto the reference (the frame is shared, the
    # phase of a single cell may still wander)
    phase = np.exp(1j * np.angle(unit @ np.conj(ref)))
    return float(np.median(np.linalg.norm(unit * np.conj(phase)[:, None] - ref, axis=1)))


def half_map_difference(a: np.ndarray, b: np.ndarray) -> tuple[float, np.ndarray, np.ndarray]:
    """Align half map ``b`` onto ``a`` and measure their difference.

    Parameters
    ----------
    a, b
        Complex supercells ``(n_cell, n_film)``.

    Returns
    -------
    difference : float
        ``||a - b'|| / ||a||`` after removing shift, twin, phase ramp, global
        phase and scale.
    b_aligned : numpy.ndarray
        ``b'``, complex, on ``a``'s rows.
    spread : numpy.ndarray
        ``|a - b'| / 2`` per pixel relative to the mean amplitude of ``a``
        over its film (pixels above half its maximum amplitude).
    """
    b_aligned, info = align_supercell(b, a)
    # the aligner pads a cell a row shorter; compare on the common rows
    n = min(a.shape[1], b_aligned.shape[1])
    a_c = _centre_rows(a, n)
    b_c = _centre_rows(b_aligned, n)
    amp = np.abs(a_c)
    film = amp > 0.5 * amp.max()
    scale = amp[film].mean() if film.any() else 1.0
    return float(info["error"]), b_c, np.abs(a_c - b_c) / (2 * scale)


def _centre_rows(cell: np.ndarray, n_rows: int) -> np.ndarray:
    extra = cell.shape[1] - n_rows
    return cell[:, extra // 2: extra // 2 + n_rows] if extra > 0 else cell


_D = _defaults("trust")  # one source of defaults: nanotools.params


def trust_verdict(*, half_difference: float, member_spread: float, fourier_error: float,
                  noise_floor: float, half_cells: tuple, prior_difference: float | None = None,
                  prior_free_misfit: float | None = None,
                  trust_max_error: float = _D["trust_max_error"],
                  trust_max_misfit: float = _D["trust_max_misfit"],
                  trust_min_cells: int = _D["trust_min_cells"]) -> tuple[float, bool, str]:
    """The estimated error and the verdict, with its reason.

    Parameters
    ----------
    half_difference
        Normalised complex difference of the two half maps (1 if one failed).
    member_spread
        See :func:`member_spread`.
    fourier_error, noise_floor
        The chosen runs' Fourier error and what Poisson noise alone gives.
    half_cells
        Supercells found in each half.
    prior_difference
        Difference from the answer of the starts run without the amplitude
        prior, or None (not checked).
    prior_free_misfit
        Their Fourier error over the answer's (None: taken as 1). An
        alternative that fits the data worse by more than
        :data:`PRIOR_FIT_TOLERANCE` is one the data rule out, so the
        difference counts with the weight ``(1 + tol - ratio) / tol``,
        clipped to [0, 1].
    trust_max_error
        Largest estimated error still called reliable.
    trust_max_misfit
        Largest ``fourier_error / noise_floor`` still called reliable.
    trust_min_cells
        Fewest supercells a half must hold.

    Returns
    -------
    estimated_error : float
        ``sqrt((half_difference / 2)^2 + (0.7 member_spread)^2
        + (w prior_difference / 2)^2)``, ``w`` the weight above.
    reliable : bool
        Every threshold passed.
    reason : str
        One sentence with the numbers.
    """
    ratio = fourier_error / noise_floor if noise_floor > 0 else float("inf")
    shared = SHARED_ERROR_PER_SPREAD * member_spread
    checked = prior_difference is not None and bool(np.isfinite(prior_difference))
    fit = 1.0 if prior_free_misfit is None or not np.isfinite(prior_free_misfit) \
        else float(prior_free_misfit)
    weight = float(np.clip((1 + PRIOR_FIT_TOLERANCE - fit) / PRIOR_FIT_TOLERANCE, 0.0, 1.0))
    prior = weight * float(prior_difference) if checked else 0.0
    estimate = float(np.sqrt((half_difference / 2) ** 2 + shared ** 2 + (prior / 2) ** 2))
    numbers = (f"half maps differ by {half_difference:.3f} (random error "
               f"{half_difference / 2:.3f}), members spread {member_spread:.3f} (shared error "
               f"{shared:.3f}), ")
    if checked:
        numbers += (f"without the amplitude prior the image moves by {prior_difference:.3f} "
                    f"and fits the data {fit:.3f} x as badly (weight {weight:.2f}: prior "
                    f"error {prior / 2:.3f}), ")
    numbers += (f"the chosen runs fit the data to {fourier_error:.3g} against a Poisson floor "
                f"of {noise_floor:.3g}")
    problems = []
    if min(half_cells) < trust_min_cells:
        problems.append(f"a half holds only {min(half_cells)} supercells (at least "
                        f"{trust_min_cells} needed)")
    if estimate > trust_max_error:
        problems.append(f"the estimated error {estimate:.3f} exceeds {trust_max_error:g}")
    if prior / 2 > trust_max_error:
        problems.append("the image rests on the amplitude prior more than on the data")
    if ratio > trust_max_misfit:
        problems.append(f"the data misfit is {ratio:.2f} x the noise floor (at most "
                        f"{trust_max_misfit:g} x), so an error both halves share may hide")
    if problems:
        return estimate, False, "not reliable: " + "; ".join(problems) + f" ({numbers})."
    return estimate, True, (f"reliable: estimated error {estimate:.3f} <= {trust_max_error:g} "
                            f"and misfit {ratio:.2f} x <= {trust_max_misfit:g} x ({numbers}).")


def estimate_trust(phasing, prepared, patterns, *, find=None, find_kwargs: dict | None = None,
                   prior_free=None,
                   trust_max_error: float = _D["trust_max_error"],
                   trust_max_misfit: float = _D["trust_max_misfit"],
                   trust_min_cells: int = _D["trust_min_cells"]) -> TrustEstimate:
    """Half-map difference, data misfit and the verdict for one reconstruction.

    Parameters
    ----------
    phasing
        The :class:`nanotools.phasing.PhasingResult` of all starts.
    prepared
        The :class:`nanotools.preprocess.PreparedMap` phased.
    patterns
        The :class:`nanotools.patterns.PatternResult` of all starts (its
        chosen cluster's runs give the misfit).
    find
        Pattern recognition applied to each half; default
        :func:`nanotools.patterns.find_supercells`.
    find_kwargs
        Its settings, the same as for the full set.
    prior_free
        A :class:`~nanotools.phasing.PhasingResult` of starts run without the
        amplitude prior (see :func:`prior_free_starts`), or None: not checked.
    trust_max_error, trust_max_misfit, trust_min_cells
        See :func:`trust_verdict`.

    Returns
    -------
    TrustEstimate
        The estimate, the verdict and the numbers behind them.
    """
    if find is None:
        from .patterns import find_supercells as find
    kwargs = dict(find_kwargs or {})
    notes = []
    chosen = []
    counts = []
    for name, half in zip(("even", "odd"), split_halves(phasing)):
        try:
            if half.n_starts == 0:
                raise NanotoolsError("no starts")
            found = find(half, prepared, **kwargs)
            chosen.append(found.best.mean)
            counts.append(len(found.supercells))
            notes.extend(f"{name} half: {n}" for n in getattr(found, "notes", []))
        except NanotoolsError as exc:
            notes.append(f"{name} half: pattern recognition failed ({exc.message})")
            chosen.append(None)
            counts.append(0)
    shape = patterns.best.mean.shape
    if chosen[0] is not None and chosen[1] is not None:
        difference, b_aligned, spread = half_map_difference(chosen[0], chosen[1])
        n = b_aligned.shape[1]
        halves = np.stack([_centre_rows(chosen[0], n), b_aligned])
    else:
        difference = 1.0
        halves = np.stack([c if c is not None and c.shape == shape else np.zeros(shape, complex)
                           for c in chosen])
        spread = np.full(halves.shape[1:], np.nan)

    # misfit of the runs that made the answer, against the floor of the best of them
    starts = np.asarray(phasing.start_indices)
    chosen_runs = np.isin(starts, np.asarray(patterns.best.runs))
    if not chosen_runs.any():
        chosen_runs = np.ones(len(starts), bool)
    errors = np.asarray(phasing.fourier_error, float)
    fourier_error = float(np.median(errors[chosen_runs]))
    best = np.nonzero(chosen_runs)[0][np.argmin(errors[chosen_runs])]
    floor = run_noise_floor(phasing.objects[best], prepared,
                            pixel_average=pixel_averaged(phasing))
    spread_members = member_spread(patterns.supercells, patterns.best.mean)
    prior = free_fit = None
    if prior_free is not None:
        try:
            # no prior at all: nor the refinement's
            free = find(prior_free, prepared,
                        **({**kwargs, "refine_prior": 0.0} if "refine_prior" in kwargs else kwargs))
            prior = half_map_difference(patterns.best.mean, free.best.mean)[0]
            free_runs = np.isin(np.asarray(prior_free.start_indices), np.asarray(free.best.runs))
            free_fit = float(np.median(np.asarray(prior_free.fourier_error)[free_runs]))
        except NanotoolsError as exc:  # no alternative image: nothing to weigh
            notes.append(f"without the amplitude prior: pattern recognition failed "
                         f"({exc.message})")
    free_ratio = None if free_fit is None else free_fit / fourier_error
    estimate, reliable, reason = trust_verdict(
        half_difference=difference, member_spread=spread_members, fourier_error=fourier_error,
        noise_floor=floor, half_cells=tuple(counts), prior_difference=prior,
        prior_free_misfit=free_ratio,
        trust_max_error=trust_max_error,
        trust_max_misfit=trust_max_misfit, trust_min_cells=trust_min_cells)
    ratio = fourier_error / floor if floor > 0 else float("inf")
    return TrustEstimate(
        estimated_error=estimate, reliable=reliable, reliable_reason=reason,
        half_supercells=halves, half_difference=float(difference), spread=spread,
        half_cells=tuple(int(c) for c in counts), member_spread=spread_members,
        fourier_error=fourier_error, noise_floor=floor, misfit_ratio=float(ratio),
        excess_misfit=float(np.sqrt(max(fourier_error ** 2 - floor ** 2, 0.0))), notes=notes,
        prior_difference=float("nan") if prior is None else float(prior),
        prior_free_misfit=float("nan") if free_ratio is None else free_ratio)


def prior_free_starts(n_starts: int, amplitude_constraint: float, *,
                      trust_prior_fraction: float = _D["trust_prior_fraction"]) -> int:
    """How many starts to run again without the amplitude prior.

    Parameters
    ----------
    n_starts
        Starts of the main run.
    amplitude_constraint
        Its prior's strength (0: no prior, nothing to check).
    trust_prior_fraction
        The share of ``n_starts`` run again (0 = no check).

    Returns
    -------
    int
        ``ceil(trust_prior_fraction x n_starts)``, at least 2 (a cluster needs two runs),
        or 0 when there is nothing to check.
    """
    if amplitude_constraint <= 0 or trust_prior_fraction <= 0:
        return 0
    return max(2, int(np.ceil(trust_prior_fraction * n_starts)))

"""Pattern recognition: supercells from every run, aligned, clustered, averaged.

Each phase-retrieval run holds several periods of the texture at an arbitrary
lateral position and global phase, possibly as its twin, and some runs
stagnate. Following Shao et al. (PNAS 2023):

1. a sinusoidal test function with the texture's period (measured from the
   satellite spacing) is cross-correlated with each run; its maximum fixes
   where the supercells start, one period apart;
2. the supercells lying inside the coherent patch are cut out (sampled by
   band-limited interpolation, so any period and origin are exact);
3. the phase ramp of the Bragg-peak centre is removed, and all supercells
   are aligned on a reference: lateral shift (periodic), vertical shift,
   twin and global phase;
4. k-means (scikit-learn) clusters the aligned complex supercells (fewer
   clusters, with a note, when there are fewer supercells than clusters);
   clusters whose averages agree within their members' spread are merged,
   since k-means also splits one population into similar parts; the same
   labels average every representation (complex, amplitude, displacement),
   with a per-pixel spread;
5. the answer is the cluster whose members come from the runs that fit the
   data best (lowest median Fourier error) among clusters holding at least
   ``min_cluster_fraction`` of the supercells. Every cluster is kept;
6. on request (``refine_iterations``; off by default) and on a 2-D map,
   the chosen average is refined against the whole map as a periodic
   texture seen through a coherent patch
   (:func:`nanotools.refine.refine_supercell`), which also measures how
   coherent the data are; the plain average stays in ``average``.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np

from .analysis import align_supercell, displacement, supercell_half_rows
from .errors import InputError, ParameterError
from .params import defaults as _defaults
from .phasing import pixel_averaged
from .refine import RefinedSupercell, refine_supercell

__all__ = ["ClusterAverage", "PatternResult", "sinusoidal_test_function", "locate_supercells",
           "cut_supercell", "align_supercells", "cluster_supercells", "merge_similar_clusters",
           "remove_peak_ramp", "choose_cluster", "find_supercells"]


@dataclass
class ClusterAverage:
    """The average of one k-means cluster of supercells.

    Attributes
    ----------
    label
        Cluster number.
    n_members
        Supercells in the cluster.
    mean
        Complex mean supercell ``(n_cell, n_film)``.
    amplitude, amplitude_std
        Mean and per-pixel standard deviation of the members' amplitudes.
    displacement, displacement_std
        Mean and per-pixel standard deviation of the members' displacement
        along G (angstrom).
    score
        Median Fourier error of the runs the members come from (lower is
        better).
    runs
        Start indices of the runs contributing members.
    average
        The members' plain average where ``mean`` is the refined supercell
        (the chosen cluster, :mod:`nanotools.refine`); None otherwise.
    """

    label: int
    n_members: int
    mean: np.ndarray
    amplitude: np.ndarray
    amplitude_std: np.ndarray
    displacement: np.ndarray
    displacement_std: np.ndarray
    score: float
    runs: np.ndarray = field(default_factory=lambda: np.zeros(0, int))
    average: np.ndarray | None = None


@dataclass
class PatternResult:
    """Supercells of all runs, their clusters and the chosen average.

    Attributes
    ----------
    supercells
        Aligned complex supercells ``(n_cells, n_cell, n_film)``.
    run_index
        ``(n_cells,)``: the start index each supercell comes from.
    origin_px
        ``(n_cells, 2)``: where each supercell was cut in its run (x, z
        pixels of the real-space grid, first sample).
    twin
        ``(n_cells,)`` bool: the supercell was its twin and was flipped back.
    labels
        ``(n_cells,)``: k-means cluster of each supercell.
    clusters
        One :class:`ClusterAverage` per cluster, sorted by label.
    chosen
        Label of the cluster taken as the answer; ``chosen_reason`` says why.
    x_nm, z_nm
        Sample coordinates of a supercell (nm; z = 0 at the film centre).
    period_nm, pixel_nm, G
        The period used, the supercell's sampling (nm) and |G| (1/angstrom).
    notes
        What pattern recognition changed on its own (fewer clusters, merged
        clusters, the refinement), one sentence each.
    refinement
        The chosen average refined against the map
        (:class:`nanotools.refine.RefinedSupercell`), or None (off, 3-D, or
        the refinement failed: see the notes).
    """

    supercells: np.ndarray
    run_index: np.ndarray
    origin_px: np.ndarray
    twin: np.ndarray
    labels: np.ndarray
    clusters: list
    chosen: int
    chosen_reason: str
    x_nm: np.ndarray
    z_nm: np.ndarray
    period_nm: float
    pixel_nm: tuple
    G: float
    parameters: dict = field(default_factory=dict)
    notes: list = field(default_factory=list)
    refinement: RefinedSupercell | None = None

    @property
    def best(self) -> ClusterAverage:
        """The chosen cluster's average."""
        return next(c for c in self.clusters if c.label == self.chosen)


def sinusoidal_test_function(n: int, period_px: float) -> np.ndarray:
    """The sinusoidal test function ``exp(2 pi i x / period)``, ``x = 0..n-1``.

    Cross-correlating it with a run along x, ``c(s) = sum_x f(x) t*(x - s)``,
    peaks where the texture's first harmonic has zero phase; one complex
    number per row (the correlation at s = 0) holds the whole curve, since
    ``c(s) = c(0) exp(2 pi i s / period)``.
    """
    return np.exp(2j * np.pi * np.arange(n) / period_px)


def locate_supercells(obj: np.ndarray, *, period_px: float, half_rows: int,
                      patch_threshold: float = 0.5) -> tuple[np.ndarray, float, np.ndarray]:
    """Where the supercells of one run start.

    Parameters
    ----------
    obj
        Complex run ``(nx, nz)``, film roughly centred.
    period_px
        Texture period in pixels (need not be whole).
    half_rows
        A supercell spans rows ``z_c - half_rows .. z_c + half_rows``.
    patch_threshold
        Keep a supercell only if the run's lateral amplitude envelope stays
        above this fraction of its maximum over the whole cell.

    Returns
    -------
    x_origins, z_centre, envelope
        Start of every supercell inside the patch (pixels, float), the film
        centre row (float) and the normalised lateral envelope ``(nx,)``.
    """
    nx, nz = obj.shape
    amp2 = np.abs(obj) ** 2
    # film centre: centroid of the strong part of the vertical profile
    prof = amp2.sum(axis=0)
    if not prof.max() > 0:  # an empty run (a collapsed phasing) holds no supercell
        return np.zeros(0), float(nz // 2), np.zeros(nx)
    strong = prof >= 0.5 * prof.max()
    z_centre = float(np.sum(np.arange(nz)[strong] * prof[strong]) / prof[strong].sum())
    rows = np.clip(np.round(z_centre + np.arange(-half_rows, half_rows + 1)).astype(int), 0, nz - 1)
    film = obj[:, rows]
    # lateral envelope, its running mean over one period: that mean's
    # transfer function is zero at every harmonic of the period, so the
    # texture's own amplitude contrast (and a column's dip) cannot cut
    # cells, while the patch's edges keep their half-height points. Over a
    # quarter period, as before, a map sampled 4 pixels per period (an
    # independent model's maps holding only the first satellites) kept the
    # contrast, and half of such maps had no cell anywhere.
    env = np.sqrt(np.abs(film) ** 2).mean(axis=1)
    k = max(int(round(period_px)), 1)
    env = np.convolve(env, np.ones(k) / k, mode="same")
    env = env / max(env.max(), 1e-30)
    w = (env >= patch_threshold).astype(float)
    # global-phase-free feature: each row relative to its own mean field
    mean_row = (film * w[:, None]).sum(axis=0) / max(w.sum(), 1)
    g = film * np.conj(mean_row)[None, :] * w[:, None]
    c = (g * np.conj(sinusoidal_test_function(nx, period_px))[:, None]).sum(axis=0)  # one per row
    # rows may carry the harmonic with opposite signs (a checkerboard):
    # fold them onto the strongest row before summing
    ref = c[np.argmax(np.abs(c))]
    C = np.sum(c * np.sign(np.real(c * np.conj(ref)) + 1e-30))
    x0 = (np.angle(C) / (2 * np.pi) * period_px) % period_px
    starts = x0 + period_px * np.arange(-int(nx / period_px) - 1, int(nx / period_px) + 2)
    keep = []
    for s in starts:
        idx = np.arange(int(np.floor(s)), int(np.ceil(s + period_px)) + 1)
        if idx[0] >= 0 and idx[-1] < nx and np.all(env[idx] >= patch_threshold):
            keep.append(s)
    return np.array(keep), z_centre, env


def cut_supercell(spectrum: np.ndarray, x0: float, z_centre: float, *, period_px: float,
                  n_cell: int, half_rows: int) -> np.ndarray:
    """One supercell sampled from a run by band-limited (DFT) interpolation.

    Parameters
    ----------
    spectrum
        ``np.fft.fft2(run) / run.size``: the run's Fourier coefficients.
    x0, z_centre
        First column and centre row of the cell (pixels, float).
    period_px, n_cell
        Period (pixels) and samples across it.
    half_rows
        The cell has ``2 half_rows + 1`` rows.

    Returns
    -------
    Complex ``(n_cell, 2 half_rows + 1)``.
    """
    nx, nz = spectrum.shape
    xs = x0 + np.arange(n_cell) * period_px / n_cell
    zs = z_centre + np.arange(-half_rows, half_rows + 1)
    Mx = np.exp(2j * np.pi * np.outer(xs, np.fft.fftfreq(nx) ))
    Mz = np.exp(2j * np.pi * np.outer(zs, np.fft.fftfreq(nz)))
    return Mx @ spectrum @ Mz.T


def align_supercells(cells: np.ndarray, reference: np.ndarray, *, max_dz: int = 3
                     ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Align every supercell on ``reference`` (shift, twin, global phase).

    Returns the aligned cells ``(n, n_cell, n_film)``, the twin flags and the
    normalised correlation with the reference (1 = identical up to scale).
    """
    out = np.empty_like(cells)
    twin = np.zeros(len(cells), bool)
    corr = np.zeros(len(cells))
    for i, c in enumerate(cells):
        out[i], info = align_supercell(c, reference, max_dz=max_dz, refine="peak")
        twin[i], corr[i] = info["twin"], info["correlation"]
    return out, twin, corr


def cluster_supercells(cells: np.ndarray, n_clusters: int, *, seed: int = 0) -> np.ndarray:
    """k-means labels of aligned complex supercells (each scaled to unit norm,
    real and imaginary parts as features)."""
    from sklearn.cluster import KMeans

    n = len(cells)
    k = int(min(n_clusters, n))
    flat = cells.reshape(n, -1)
    flat = flat / np.maximum(np.linalg.norm(flat, axis=1, keepdims=True), 1e-30)
    features = np.concatenate([flat.real, flat.imag], axis=1)
    if k <= 1:
        return np.zeros(n, int)
    # many restarts: a tight good cluster beside scattered stagnated cells is a
    # landscape where k-means often stops in a local minimum
    return KMeans(n_clusters=k, n_init=50, random_state=seed).fit_predict(features)


def _unit_rows(cells: np.ndarray) -> np.ndarray:
    flat = cells.reshape(len(cells), -1)
    return flat / np.maximum(np.linalg.norm(flat, axis=1, keepdims=True), 1e-30)


def merge_similar_clusters(cells: np.ndarray, labels: np.ndarray, *, factor: float = 2.0
                           ) -> tuple[np.ndarray, list]:
    """Merge clusters whose averages agree within their members' spread.

    k-means with a fixed number of clusters also cuts one population of
    good supercells into parts whose averages differ by far less than the
    members scatter around them; choosing between such parts is arbitrary.
    Two clusters are merged when the distance between their (unit-norm,
    global-phase-matched) averages is less than ``factor`` times the rms
    distance of the members of the tighter of the two from their own
    average. The closest such pair is merged first, until none is left.

    Why ``factor = 2``: k-means cutting one Gaussian population along one
    direction leaves the two parts' means up to 2.7 times a part's rms
    spread apart (in one dimension; less in many); on the simulated
    textures the parts of one good population lie 1.1-1.7 spreads apart,
    while clusters of truly different supercells (stagnated runs, a second
    solution) lie 2.3-20 spreads apart.

    Parameters
    ----------
    cells
        Aligned complex supercells ``(n, n_cell, n_film)``.
    labels
        ``(n,)`` k-means labels.
    factor
        Merge when the averages are closer than this many spreads; 0 never
        merges.

    Returns
    -------
    labels, merged
        The new labels (each merged group takes its smallest label) and the
        list of ``(kept_label, merged_label, distance, spread)``.
    """
    labels = np.asarray(labels).copy()
    unit = _unit_rows(np.asarray(cells))
    merged = []
    while True:
        groups = {lab: np.nonzero(labels == lab)[0] for lab in np.unique(labels)}
        if len(groups) < 2:
            return labels, merged
        means, spread = {}, {}
        for lab, idx in groups.items():
            members = unit[idx]
            m = members.mean(axis=0)
            means[lab] = m
            spread[lab] = float(np.sqrt(np.mean(np.sum(np.abs(members - m) ** 2, axis=1))))
        best = None
        keys = sorted(groups)
        for i, a in enumerate(keys):
            for b in keys[i + 1:]:
                ma, mb = means[a], means[b]
                na, nb = np.linalg.norm(ma), np.linalg.norm(mb)
                if na == 0 or nb == 0:
                    continue
                # global phase of b onto a; both scaled to unit norm
                phase = np.exp(1j * np.angle(np.vdot(mb, ma)))
                dist = float(np.linalg.norm(ma / na - phase * mb / nb))
                # a one-member cluster has no spread to judge by
                tight = min((spread[k] for k in (a, b) if len(groups[k]) > 1), default=0.0)
                if dist < factor * tight and (best is None or dist < best[2]):
                    best = (a, b, dist, tight)
        if best is None:
            return labels, merged
        labels[labels == best[1]] = best[0]
        merged.append(best)


def _average(cells, label, members, run_scores, runs, G):
    sel = cells[members]
    # members scaled to the cluster's median norm: the average is a shape
    norms = np.linalg.norm(sel.reshape(len(sel), -1), axis=1)
    sel = sel * (np.median(norms) / np.maximum(norms, 1e-30))[:, None, None]
    mean = sel.mean(axis=0)
    amps = np.abs(sel)
    disp = np.stack([displacement(c * np.exp(-1j * np.angle(np.vdot(mean, c))), G) for c in sel])
    return ClusterAverage(label=int(label), n_members=int(len(sel)), mean=mean,
                          amplitude=amps.mean(axis=0), amplitude_std=amps.std(axis=0),
                          displacement=displacement(mean, G), displacement_std=disp.std(axis=0),
                          score=float(np.median(run_scores[members])),
                          runs=np.unique(runs[members]))


#: Clusters whose median Fourier errors differ by less than this many
#: standard errors of that difference are tied on fit (see
#: :func:`choose_cluster`).
_TIED_STANDARD_ERRORS = 1.0


def choose_cluster(clusters: list, run_error: dict) -> tuple:
    """The answer among ``clusters``: the runs that fit the data best,
    unless the fit does not tell, then the answer most runs found.

    The cluster whose runs have the lowest median Fourier error is taken,
    unless another's median is within ``_TIED_STANDARD_ERRORS`` standard
    errors of the difference (``1.2533 s sqrt(1/n1 + 1/n2)``, ``s`` the
    robust spread of the two clusters' run errors, ``n`` their numbers of
    runs); among the tied, the one made of the most runs is taken (then
    the lower median). Why: converged runs differ in Fourier error by
    amounts the noise and the starts decide, and a handful of runs that
    fit 1-2 % better than a dozen others was the wrong answer more often
    than not (119 family draws at 128 x 64, every preprocessing number
    true: 16 draws chose differently, 14 closer to the truth, 2 further).

    Parameters
    ----------
    clusters
        :class:`ClusterAverage` objects (``score``: median Fourier error of
        their members' runs; ``runs``: start indices).
    run_error
        Fourier error per start index.

    Returns
    -------
    ``(cluster, why)``: the chosen one and a phrase saying why.
    """
    best = min(clusters, key=lambda c: (c.score, -c.n_members))

    def tied(c) -> bool:
        """Whether ``c``'s median is within the tolerance of the lowest."""
        e = np.array([run_error[int(r)] for r in np.concatenate([best.runs, c.runs])])
        spread = 1.4826 * np.median(np.abs(e - np.median(e)))
        standard_error = 1.2533 * spread * np.sqrt(1 / len(best.runs) + 1 / len(c.runs))
        return c.score - best.score <= _TIED_STANDARD_ERRORS * standard_error

    chosen = max((c for c in clusters if tied(c)), key=lambda c: (len(c.runs), -c.score))
    if chosen is best:
        return best, f"lowest median Fourier error of its runs ({best.score:.4g})"
    return chosen, (f"the most runs ({len(chosen.runs)}) among the clusters whose median "
                    f"Fourier error ({chosen.score:.4g}) is within a standard error of the "
                    f"lowest ({best.score:.4g}, cluster {best.label}, {len(best.runs)} runs)")


_D = _defaults("patterns")  # one source of defaults: nanotools.params


def remove_peak_ramp(objects: np.ndarray, residual: tuple) -> np.ndarray:
    """Remove the linear phase ramp that the choice of Bragg-peak centre puts
    on every run.

    The map was centred on the pixel nearest the peak; a peak ``d`` pixels
    past the centre along an axis of ``n`` pixels means the runs carry
    ``exp(+2 pi i d x / n)``, which this divides out (centred on the array,
    so the film centre's phase is unchanged).

    Parameters
    ----------
    objects
        Runs ``(n_runs, nx, nz)``.
    residual
        Peak offset per axis of the map, ``(dx, [dy,] dz)`` pixels; only the
        first (x) and last (z) are used.
    """
    if len(residual) < 2 or not any(residual):
        return objects
    nx, nz = objects.shape[1:]
    x = (np.arange(nx) - nx // 2)[:, None] / nx
    z = (np.arange(nz) - nz // 2)[None, :] / nz
    return objects * np.exp(-2j * np.pi * (residual[0] * x + residual[-1] * z))


def find_supercells(phasing, prepared, *, n_clusters: int = _D["n_clusters"],
                    best_fraction: float = _D["best_fraction"],
                    patch_threshold: float = _D["patch_threshold"],
                    min_cluster_fraction: float = _D["min_cluster_fraction"],
                    cluster_merge_factor: float = _D["cluster_merge_factor"],
                    refine_iterations: int = _D["refine_iterations"],
                    refine_prior: float = _D["refine_prior"],
                    seed: int = 0) -> PatternResult:
    """Locate, cut, align, cluster and average the supercells of all runs.

    Parameters
    ----------
    phasing
        A :class:`nanotools.phasing.PhasingResult` (2-D runs ``(n, nx, nz)``;
        for 3-D runs the middle y slice is used).
    prepared
        The :class:`nanotools.preprocess.PreparedMap` it came from (period,
        thickness, pixel size, G).
    n_clusters
        Number of k-means clusters.
    best_fraction
        Fraction of the runs, best Fourier error first, that are used.
    patch_threshold
        See :func:`locate_supercells`.
    min_cluster_fraction
        A cluster must hold at least this fraction of the supercells to be
        chosen.
    cluster_merge_factor
        Clusters whose averages lie closer than this many member spreads are
        merged before choosing (see :func:`merge_similar_clusters`); 0 never
        merges.
    refine_iterations
        Iterations of the refinement of the chosen average against the map
        (:func:`nanotools.refine.refine_supercell`; 2-D maps); 0 = off.
    refine_prior
        Weight of the refinement's displacement prior (0 = none).
    seed
        Seed of k-means.

    Returns
    -------
    PatternResult
    """
    objects = np.asarray(phasing.objects)
    two_d = objects.ndim == 3 and np.ndim(prepared.intensity) == 2
    if objects.ndim == 4:  # 3-D runs: the texture is imaged in its x-z cross-section
        objects = objects[:, :, objects.shape[2] // 2, :]
    if objects.ndim != 3:
        raise ParameterError(f"expected runs of shape (n, nx, nz), got {objects.shape}")
    if not 0 < best_fraction <= 1:
        raise ParameterError(f"best_fraction must be in (0, 1], got {best_fraction}")
    objects = remove_peak_ramp(objects, getattr(prepared, "peak_residual", ()) or ())
    dx, dz = prepared.pixel_nm[0], prepared.pixel_nm[-1]
    period_px = prepared.period_nm / dx
    if not 2 <= period_px <= objects.shape[1] / 2:
        raise ParameterError(f"period {prepared.period_nm:.3g} nm is not between 2 pixels and "
                             f"half the field of view ({objects.shape[1] * dx / 2:.3g} nm)")
    n_cell = max(int(round(period_px)), 2)
    half_rows = supercell_half_rows(prepared.thickness_nm, dz)
    err = np.asarray(phasing.fourier_error, float)
    n_use = max(1, int(np.ceil(best_fraction * len(objects))))
    use = np.argsort(err, kind="stable")[:n_use]

    cells, runs, origins, scores = [], [], [], []
    for i in use:
        x_origins, z_c, _ = locate_supercells(objects[i], period_px=period_px,
                                              half_rows=half_rows,
                                              patch_threshold=patch_threshold)
        spectrum = np.fft.fft2(objects[i]) / objects[i].size
        for x0 in x_origins:
            cells.append(cut_supercell(spectrum, x0, z_c, period_px=period_px, n_cell=n_cell,
                                       half_rows=half_rows))
            runs.append(phasing.start_indices[i]), origins.append((x0, z_c - half_rows))
            scores.append(err[i])
    notes = []
    if not cells:
        raise InputError(
            f"no supercells found in the {n_use} best runs: no run holds a full period of "
            f"{prepared.period_nm:.3g} nm where its amplitude exceeds patch_threshold="
            f"{patch_threshold:g} of its maximum (the coherent patch may be narrower than one "
            "period, or the phasing failed); lower patch_threshold or check the period")
    if len(cells) < n_clusters:
        notes.append(f"only {len(cells)} supercells in {n_use} runs, fewer than n_clusters="
                     f"{n_clusters}: clustered into {len(cells)} instead")
        n_clusters = len(cells)
    cells, runs, scores = np.array(cells), np.array(runs), np.array(scores)

    # reference: the most central cell of the best run; then the mean of the
    # cells that agree with it best, so one noisy cell does not set the frame
    best_run_cells = np.nonzero(runs == runs[0])[0]
    ref = cells[best_run_cells[len(best_run_cells) // 2]]
    aligned, twin, corr = align_supercells(cells, ref)
    good = corr >= np.median(corr)
    aligned, twin, corr = align_supercells(cells, aligned[good].mean(axis=0))

    labels, merged = merge_similar_clusters(
        aligned, cluster_supercells(aligned, n_clusters, seed=seed), factor=cluster_merge_factor)
    for kept, gone, dist, tight in merged:
        notes.append(f"clusters {kept} and {gone} merged: their averages differ by {dist:.3f}, "
                     f"less than {cluster_merge_factor:g} x the spread of their members "
                     f"({tight:.3f})")
    G = float(prepared.G)
    clusters = [_average(aligned, lab, labels == lab, scores, runs, G)
                for lab in np.unique(labels)]
    floor = max(2, int(np.ceil(min_cluster_fraction * len(cells))))
    eligible = [c for c in clusters if c.n_members >= floor] or clusters
    run_error = dict(zip(np.asarray(phasing.start_indices).tolist(), err.tolist()))
    chosen, why = choose_cluster(eligible, run_error)
    reason = (f"cluster {chosen.label}: {why} among clusters holding at least {floor} of the "
              f"{len(cells)} supercells; {chosen.n_members} members from "
              f"{len(chosen.runs)} runs")
    if merged:
        reason += ("; clusters " + ", ".join(f"{b} into {a}" for a, b, _, _ in merged)
                   + " merged first, as their averages agreed within their spread")
    refinement = None
    if refine_iterations > 0 and two_d:
        try:
            refinement = refine_supercell(
                prepared, chosen.mean, refine_iterations=refine_iterations,
                refine_prior=refine_prior,
                pixel_average=pixel_averaged(phasing))
        except (ParameterError, np.linalg.LinAlgError, ValueError) as exc:
            notes.append(f"the chosen average was not refined: {exc}")
        else:
            notes.extend(refinement.notes)
            reason += "; its average refined against the map"
            clusters = [replace(c, mean=refinement.cell, average=c.mean,
                                displacement=displacement(refinement.cell, G))
                        if c.label == chosen.label else c for c in clusters]
    elif refine_iterations > 0:
        notes.append("the chosen average was not refined: the refinement models 2-D maps only")
    return PatternResult(
        supercells=aligned, run_index=runs, origin_px=np.array(origins), twin=twin,
        labels=labels, clusters=clusters, chosen=chosen.label, chosen_reason=reason,
        x_nm=np.arange(n_cell) * prepared.period_nm / n_cell,
        z_nm=np.arange(-half_rows, half_rows + 1) * dz, period_nm=float(prepared.period_nm),
        pixel_nm=(prepared.period_nm / n_cell, dz), G=G,
        parameters=dict(n_clusters=n_clusters, best_fraction=best_fraction,
                        patch_threshold=patch_threshold,
                        min_cluster_fraction=min_cluster_fraction,
                        cluster_merge_factor=cluster_merge_factor,
                        refine_iterations=refine_iterations, refine_prior=refine_prior,
                        seed=seed),
        notes=notes, refinement=refinement)

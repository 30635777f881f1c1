"""Phasing alone on validation-family draws, every preprocessing number true.

Measures phase retrieval and pattern recognition, not preprocessing: each
draw of :func:`nanotools.simulate.family.draw_family_member` is centred on
its true Bragg peak, given its true period, thickness and coherent-patch
width, its flat background (zero for the others; a smooth one is left in),
and its substrate's rod subtracted when it has one (what preprocessing
does: :func:`nanotools.preprocess.substrate.subtract_substrate_rod`, the
rod modelled from the map itself). Then ``phase_retrieval`` and ``find_supercells`` run with the
registry's defaults (or ``-p NAME VALUE``) and the chosen supercell is
compared with the truth by ``compare_supercells``.

For one-patch draws it also asks why a draw fails: the true object (the
family's complex amplitude on the same crop) is scored like a run, as its
Fourier error over the Poisson floor. ``truth/floor`` near the best run's
``run/floor`` means the data do not tell the wrong image from the right one
(no search can fix it, only a prior or more data); a truth that fits
clearly better means the starts never found it (a search failure).
``truth cut/floor`` scores the truth cut to the initial support: what a
run can reach at best where the map's finite q range makes the discrete
transform ring beyond the film's top and bottom.

``--counts-factor F`` counts each map again at F times its exposure
(:func:`nanotools.simulate.family.recount`).

``--no-substrate`` makes each substrate draw without its substrate peak and
rod (every other parameter the draw's own), so that nothing is masked on
the specular line: what the substrate costs. ``--rod-columns`` masks a
substrate's rod on 7 whole columns over the whole q_z range instead (the
preprocessing of earlier releases, ``-p mask_specular columns``).
``--rod-mask-from-truth SHARE`` masks it only where its expected counts
exceed SHARE of the film's (both known from the draw): what a mask drawn
pixel by pixel would give.

``--pad-z F`` pads the map along q_z to F times its rows with free (masked)
pixels (:func:`nanotools.preprocess.finer_z_grid`, what ``-p z_subpixels F``
does in the pipeline), so that the runs' real-space pixels are F times finer along z; the
chosen supercell is averaged back over groups of F rows before it is
compared (F an integer).

Usage::

    python benchmarks/phasing_family.py --seeds 1000:1012 [--shape 128,64] [--jobs 2]
        [--pad-z 2] [--counts-factor 20]
        [--no-substrate | --rod-columns | --rod-mask-from-truth 0.1]
        [-p NAME VALUE]

Prints one row per draw, then median, 90th percentile and worst error, the
share within 0.05 and the mean phasing time. ``--shape 128,64`` draws
smaller maps of the same family (four times cheaper; for comparing settings).
``--jobs N`` runs N draws at once in separate processes (each draw on its
own, so the rows are the same as with one job when each process has one FFT
thread: ``NANOTOOLS_FFT_WORKERS=1``).
"""
from __future__ import annotations

import argparse
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from contextlib import nullcontext

import numpy as np

from nanotools.analysis import compare_supercells
from nanotools.params import defaults, parse_pairs
from nanotools.patterns import find_supercells
from nanotools.phasing import initial_support, phase_retrieval, pixel_averaged, pixel_transfer
from nanotools.preprocess import (
    PreparedMap,
    centre_and_crop,
    finer_z_grid,
    specular_rod_mask,
    subtract_background,
    subtract_substrate_rod,
)
from nanotools.simulate.family import draw_family_member, recount
from nanotools.trust import run_noise_floor


def prepared_from_truth(member, rod_share: float | None = None,
                        rod_columns: bool = False) -> PreparedMap:
    """The map as phasing wants it, with every number taken from the truth.

    A substrate's rod is subtracted as preprocessing does (found and
    modelled from the map: nothing of it from the truth but the specular
    line's column); with ``rod_columns``, it is masked on 7 columns over
    the whole ``q_z`` range instead; with ``rod_share``, only the pixels
    where the substrate's expected counts exceed that share of the film's
    (both from the truth) are masked."""
    p = member.parameters
    rsm = member.rsm
    intensity = np.asarray(rsm.intensity, float)
    mask = np.array(rsm.mask, bool)
    peak = tuple(float(v) for v in p["bragg_peak_px"])
    if p["substrate"] is not None and rod_share is not None:
        # the member's noise-free map against the same draw without its
        # substrate, counted like the member (recount scales expected)
        film = draw_family_member(p["seed"], shape=rsm.intensity.shape, substrate=False).expected
        film = film * p.get("counts_factor", 1.0)
        mask |= member.expected - film > rod_share * film
    elif p["substrate"] is not None and rod_columns:
        # the specular rod (and its tails along x), left free
        x0 = int(round(peak[0]))
        mask[x0 - 3:x0 + 4, :] = True
    elif p["substrate"] is not None:
        rod = specular_rod_mask(intensity, mask, peak[:-1])[0]
        if rod.any():
            subtracted = subtract_substrate_rod(intensity, mask, rod)
            intensity, mask = subtracted.intensity, subtracted.mask
    background = p["background"]["level"] if p["background"]["kind"] == "flat" else 0.0
    clipped = subtract_background(intensity, background, mask)
    window = centre_and_crop(clipped, mask, peak)
    q_step = tuple(float(s) for s in p["q_step_per_A"])
    pixel_nm = tuple(float(2 * np.pi / (n * s) / 10.0)
                     for n, s in zip(window.intensity.shape, q_step))
    P = float(p["period_nm"])
    return PreparedMap(
        intensity=window.intensity, mask=window.mask, q_step=q_step, G=float(p["G"]),
        pixel_nm=pixel_nm, period_nm=P, period_err_nm=0.0, thickness_nm=float(p["thickness_nm"]),
        thickness_err_nm=0.0, patch_nm=float(p["coherence"]["patch_periods"]) * P,
        patch_edge_nm=float(p["coherence"]["patch_edge_periods"]) * P,
        background=float(background), peak_index=peak, notes=["preprocessing from the truth"],
        source=rsm.source, peak_residual=tuple(window.residual), bin=1)


def fourier_error(obj: np.ndarray, prep: PreparedMap, pixel_average: bool) -> float:
    """The engine's Fourier error of a centred run against the prepared map
    (against the modulus damped by ``pixel_transfer`` for pixel averages)."""
    measured = ~np.asarray(prep.mask, bool)
    amp = np.abs(np.fft.fftshift(np.fft.fftn(np.fft.ifftshift(obj), norm="ortho")))
    data = np.sqrt(np.clip(prep.intensity, 0, None))
    if pixel_average:
        data = data * pixel_transfer(data.shape)
    return float(np.sqrt(((amp - data)[measured] ** 2).sum() / (data[measured] ** 2).sum()))


def misfit_ratio(obj: np.ndarray, prep: PreparedMap, pixel_average: bool) -> float:
    """Fourier error of ``obj`` over the Poisson floor of its own model."""
    return (fourier_error(obj, prep, pixel_average)
            / run_noise_floor(obj, prep, pixel_average=pixel_average))


def true_object(member, prep: PreparedMap, pixel_average: bool = False) -> np.ndarray | None:
    """The one-patch draw's true object on the grid of ``prep`` (None for an
    ensemble): its complex amplitude cut like the map and transformed back
    (damped by ``pixel_transfer`` first for the film's pixel averages)."""
    if member.amplitude is None:
        return None
    peak = tuple(float(v) for v in member.parameters["bragg_peak_px"])
    window = centre_and_crop(np.zeros(member.amplitude.shape), np.zeros(member.amplitude.shape,
                                                                          bool), peak)
    cut = tuple(slice(s, s + n) for s, n in zip(window.start, prep.intensity.shape))
    amplitude = member.amplitude[cut]
    if pixel_average:
        amplitude = amplitude * pixel_transfer(amplitude.shape)
    return np.fft.fftshift(np.fft.ifftn(np.fft.ifftshift(amplitude), norm="ortho"))


def rows_averaged(cell: np.ndarray, factor: int) -> np.ndarray:
    """``(n_cell, n)`` -> ``(n_cell, n // factor)``: the mean of each group of
    ``factor`` rows (a supercell on ``factor`` times coarser pixels)."""
    n = cell.shape[1] // factor * factor
    return cell[:, :n].reshape(cell.shape[0], -1, factor).mean(axis=2)


def run_draw(seed: int, params: dict, *, shape=(256, 128), pipeline_seed: int = 0,
             pad_z: int = 1, counts_factor: float | None = None,
             substrate: bool = True, rod_share: float | None = None,
             rod_columns: bool = False) -> dict:
    """One draw: phasing and pattern recognition against the truth (a row);
    ``counts_factor``: the map counted again (:func:`recount`);
    ``substrate=False``: a substrate draw made without its substrate;
    ``rod_share``, ``rod_columns``: see :func:`prepared_from_truth`."""
    member = draw_family_member(seed, shape=shape, substrate=substrate)
    if counts_factor is not None:
        member = recount(member, counts_factor)
    p = member.parameters
    row = dict(seed=seed, texture=p["texture"]["kind"], coherence=p["coherence"]["model"],
               error=np.inf, best_cluster=np.inf, average=np.nan, seconds=0.0, failure="",
               run_misfit=np.nan, truth_misfit=np.nan, cut_misfit=np.nan)
    try:
        prep = prepared_from_truth(member, rod_share, rod_columns)
        obj = true_object(member, prep, bool(params.get("pixel_average", True)))
        if obj is not None:
            support = initial_support(obj.shape, tuple(prep.pixel_nm),
                                      thickness_nm=prep.thickness_nm, patch_nm=prep.patch_nm,
                                      margin=params.get("support_margin",
                                                        defaults()["support_margin"]),
                                      patch_edge_nm=prep.patch_edge_nm)
            row["cut_misfit"] = misfit_ratio(obj * support, prep,
                                             bool(params.get("pixel_average", True)))
        if pad_z > 1:
            prep = finer_z_grid(prep, pad_z)
        phasing_kw = {k: v for k, v in params.items() if k in defaults("phasing")
                      and k != "keep_runs"}
        t0 = time.perf_counter()
        ph = phase_retrieval(prep, seed=pipeline_seed, **phasing_kw)
        row["seconds"] = time.perf_counter() - t0
        pattern_kw = {k: v for k, v in params.items() if k in defaults("patterns")}
        found = find_supercells(ph, prep, seed=pipeline_seed, **pattern_kw)
        truth = member.supercell(len(found.x_nm),
                                 float(found.z_nm[1] - found.z_nm[0]) * pad_z)

        def error(cell):
            return float(compare_supercells(rows_averaged(cell, pad_z), truth))

        row["error"] = error(found.best.mean)
        if found.best.average is not None:  # the plain average before the refinement
            row["average"] = error(found.best.average)
        row["best_cluster"] = min(error(c.mean) for c in found.clusters)
        pixels = pixel_averaged(ph)
        row["run_misfit"] = misfit_ratio(ph.objects[int(np.argmin(ph.fourier_error))], prep,
                                         pixels)
        if obj is not None and pad_z == 1:
            row["truth_misfit"] = misfit_ratio(obj, prep, pixels)
    except Exception as exc:  # a failure is a result here
        row["failure"] = f"{type(exc).__name__}: {exc}"[:120]
    return row


def _run_one(job: tuple) -> dict:
    seed, params, shape, pad_z, counts_factor, substrate, rod_share, rod_columns = job
    return run_draw(seed, params, shape=shape, pad_z=pad_z, counts_factor=counts_factor,
                    substrate=substrate, rod_share=rod_share, rod_columns=rod_columns)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", default="1000:1012", help="a:b (range) or a,b,c")
    ap.add_argument("--shape", default="256,128")
    ap.add_argument("--jobs", type=int, default=1, help="draws run at once")
    ap.add_argument("--pad-z", type=int, default=1,
                    help="pad the map along q_z to this many times its rows (free pixels)")
    ap.add_argument("--counts-factor", type=float, default=None, metavar="F",
                    help="count each map again at F times its exposure (fresh noise)")
    ap.add_argument("--no-substrate", action="store_true",
                    help="make substrate draws without their substrate (nothing to mask)")
    ap.add_argument("--rod-mask-from-truth", type=float, default=None, metavar="SHARE",
                    help="mask a substrate's rod only where its expected counts exceed SHARE "
                         "of the film's (from the truth) instead of subtracting it")
    ap.add_argument("--rod-columns", action="store_true",
                    help="mask a substrate's rod on 7 whole columns instead of subtracting it")
    ap.add_argument("-p", nargs=2, action="append", default=[], metavar=("NAME", "VALUE"))
    args = ap.parse_args(argv)
    seeds = (range(*map(int, args.seeds.split(":"))) if ":" in args.seeds
             else [int(s) for s in args.seeds.split(",")])
    shape = tuple(int(n) for n in args.shape.split(","))
    params = {**defaults(), **parse_pairs(args.p)}
    rows = []
    jobs = [(seed, params, shape, args.pad_z, args.counts_factor, not args.no_substrate,
             args.rod_mask_from_truth, args.rod_columns) for seed in seeds]
    with ProcessPoolExecutor(args.jobs) if args.jobs > 1 else nullcontext() as pool:
        for r in (pool.map(_run_one, jobs) if pool else map(_run_one, jobs)):
            rows.append(r)
            print(f"{r['seed']:6d} {r['texture']:9s} {r['coherence']:8s} "
                  f"error {r['error']:.3f} (plain average {r['average']:.3f}, best cluster "
                  f"{r['best_cluster']:.3f})  run/floor {r['run_misfit']:.2f} "
                  f"truth/floor {r['truth_misfit']:.2f} truth cut/floor {r['cut_misfit']:.2f}  "
                  f"{r['seconds']:.0f} s {r['failure']}",
                  flush=True)
    e = np.array([r["error"] for r in rows])
    plain = np.array([r["average"] for r in rows])
    if np.isfinite(plain).any():
        print(f"plain averages (before the refinement): median {np.nanmedian(plain):.3f}, "
              f"within 0.05: {np.mean(plain <= 0.05):.0%}")
    print(f"\n{len(rows)} draws, shape {shape}, pad_z {args.pad_z}, "
          f"parameters {parse_pairs(args.p) or 'default'}: "
          f"median {np.median(e):.3f}, 90th percentile {np.percentile(e, 90):.3f}, "
          f"worst {e.max():.3f}, within 0.05: {np.mean(e <= 0.05):.0%}, "
          f"phasing {np.mean([r['seconds'] for r in rows]):.0f} s per map")
    return 0


if __name__ == "__main__":
    sys.exit(main())

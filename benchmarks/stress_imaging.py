"""Imaging against an independent forward model, end to end through files.

The maps of ``benchmarks/preprocess_stress.py`` (a forward model written
apart from :mod:`nanotools.simulate`, one coherent patch, NeXus files in a
user's conventions) go through :func:`nanotools.pipeline.reconstruct_file`
at defaults, as ``nanotools reconstruct`` runs them; the chosen supercell
is compared with the draw's own film, ``s(x) exp(i G.u(x, z))`` over one
period, as the film's pixel averages on the result's grid
(:func:`nanotools.analysis.compare_supercells`: shifts, twin, phase ramp,
global phase and scale removed). Prints one row per draw (error, the
result's ``estimated_error`` and verdict) and the distribution: median,
90th percentile, worst, share within 0.05 and 0.15, and whether every draw
above 0.10 was flagged unreliable.

    MPLBACKEND=agg .venv/bin/python benchmarks/stress_imaging.py --draws 20 --jobs 2

Only the 2-D draws are imaged (3-D maps take minutes each); ``--draws N``
counts draws tried, from ``--first-seed``.
"""
from __future__ import annotations

import argparse
import math
import tempfile
import time
import warnings
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import preprocess_stress as stress
from quality import z_subpixels_of

from nanotools.analysis import compare_supercells, supercell_half_rows
from nanotools.io import read_result
from nanotools.params import parse_pairs
from nanotools.pipeline import reconstruct_file

#: Sub-samples per pixel and axis of the true film's pixel averages.
_OVERSAMPLE = 4


def true_supercell(d: stress.Draw, n_cell: int, dz_nm: float) -> np.ndarray:
    """The draw's film over one period as pixel averages on a result's grid:
    complex ``(n_cell, 2 m + 1)``, rows centred on the film's middle, each
    pixel the mean of the field over its part inside the film times that
    part's share of the pixel (``m`` from
    :func:`nanotools.analysis.supercell_half_rows`)."""
    P, t = d.period_nm, d.thickness_nm
    dx = P / n_cell
    m = supercell_half_rows(t, dz_nm)
    sub = (np.arange(_OVERSAMPLE) + 0.5) / _OVERSAMPLE
    x = ((np.arange(n_cell)[:, None] + sub[None, :] - 0.5) * dx).ravel()
    centre = t / 2 + np.arange(-m, m + 1) * dz_nm
    lo, hi = np.clip(centre - dz_nm / 2, 0, t), np.clip(centre + dz_nm / 2, 0, t)
    z = (lo[:, None] + sub[None, :] * (hi - lo)[:, None]).ravel()
    field = stress.texture_field(d, x, z).reshape(n_cell, _OVERSAMPLE, 2 * m + 1, _OVERSAMPLE)
    return field.mean(axis=(1, 3)) * ((hi - lo) / dz_nm)[None, :]


def image_draw(seed: int, folder: Path, params: dict | None = None) -> dict | None:
    """One 2-D stress draw through ``reconstruct_file``; its row, or None
    for a 3-D draw. A failure of the pipeline is a row with ``error = inf``.
    ``params`` are passed to the pipeline (defaults if None)."""
    d = stress.draw_map(seed)
    if d.ndim != 2:
        return None
    row = dict(seed=seed, texture=d.texture, period_nm=d.period_nm, thickness_nm=d.thickness_nm,
               phase_rad=d.phase_amplitude, counts=d.total_counts, substrate=d.substrate,
               conventions=d.conventions(), error=math.inf, estimated_error=None,
               reliable=None, seconds=None, failure=None)
    src, out = folder / f"stress_{seed}.h5", folder / f"stress_{seed}_result.h5"
    stress.write_nexus(d, src)
    t0 = time.perf_counter()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            reconstruct_file(src, out, dict(params or {}), seed=0, progress=False,
                             checkpoint=False, force=True)
        res = read_result(out)
    except Exception as exc:  # a failure of the pipeline is a result here
        row["failure"] = f"{type(exc).__name__}: {exc}"
        row["seconds"] = time.perf_counter() - t0
        return row
    row["seconds"] = time.perf_counter() - t0
    cell = res["supercell"]
    z = np.asarray(cell["z"])
    truth = true_supercell(d, len(np.asarray(cell["x"])), float(z[1] - z[0]))
    row["error"] = float(compare_supercells(cell["complex_field"], truth))
    row["estimated_error"] = float(cell.get("estimated_error", np.nan))
    row["reliable"] = bool(cell.get("reliable", False))
    row["z_subpixels"] = z_subpixels_of(res["process"].get("notes", []))
    return row


def _run(args):
    seed, folder, params = args
    return image_draw(seed, Path(folder), params)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--draws", type=int, default=20)
    parser.add_argument("--first-seed", type=int, default=0)
    parser.add_argument("--jobs", type=int, default=1)
    parser.add_argument("-p", nargs=2, action="append", default=[], metavar=("NAME", "VALUE"),
                        help="a pipeline parameter (repeatable); defaults otherwise")
    args = parser.parse_args()
    params = parse_pairs(args.p)
    if params:
        print(f"parameters {params}")
    seeds = range(args.first_seed, args.first_seed + args.draws)
    print(f"{'seed':>4} {'texture':>8} {'P nm':>5} {'t nm':>5} {'phi':>4} {'error':>6} "
          f"{'estim':>6} {'reli':>4} {'s':>5}  conventions")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        with ProcessPoolExecutor(max(1, args.jobs)) as pool:
            for r in pool.map(_run, [(s, tmp, params) for s in seeds]):
                if r is None:
                    continue
                rows.append(r)
                extra = f"  FAILED {r['failure']}" if r["failure"] else ""
                if (r.get("z_subpixels") or 1) > 1:
                    extra = f" z{r['z_subpixels']}{extra}"
                print(f"{r['seed']:>4} {r['texture']:>8} {r['period_nm']:>5.1f} "
                      f"{r['thickness_nm']:>5.1f} {r['phase_rad']:>4.1f} {r['error']:>6.3f} "
                      f"{(r['estimated_error'] or np.nan):>6.3f} "
                      f"{'y' if r['reliable'] else 'n':>4} {r['seconds']:>5.0f}  "
                      f"{r['conventions']}{extra}", flush=True)
    e = np.array([r["error"] for r in rows])
    bad = [r for r in rows if r["error"] > 0.10]
    print(f"\n{len(rows)} 2-D draws of {args.draws}: {int(np.sum(~np.isfinite(e)))} failed; "
          f"median {np.median(e):.3f}, 90th percentile {np.percentile(e, 90):.3f}, worst "
          f"{e.max():.3f}; within 0.05 {np.mean(e <= 0.05):.0%}, within 0.15 "
          f"{np.mean(e <= 0.15):.0%}; seconds per map median "
          f"{np.median([r['seconds'] for r in rows]):.0f}")
    print(f"{sum(not r['reliable'] for r in bad)} of {len(bad)} draws above 0.10 flagged "
          f"unreliable; {sum(r['reliable'] for r in rows if r['error'] <= 0.10)} of "
          f"{len(rows) - len(bad)} others called reliable")
    finer = [r["seed"] for r in rows if (r.get("z_subpixels") or 1) > 1]
    print(f"phased on a finer z grid: {len(finer)} of {len(rows)} draws"
          + (f" ({', '.join(map(str, finer))})" if finer else ""))


if __name__ == "__main__":
    main()

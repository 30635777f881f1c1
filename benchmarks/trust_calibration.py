"""Is the error estimate honest? Estimated against true error on the validation family.

For each draw of :func:`nanotools.simulate.family.draw_family_member` (maps
from an independent simulator), runs the stages that ``nanotools
reconstruct`` runs at default parameters (prepare, phase retrieval with the
draw's seed, pattern recognition, :func:`nanotools.trust.estimate_trust`),
compares the chosen supercell with the truth on the same grid and prints one
row per draw: true error, estimated error, the verdict, the half-map
difference and the misfit ratio. The summary checks the issue's acceptance:
every draw with a true error above 0.10 is flagged unreliable, and for the
others the estimate is within a factor of two of the truth. ``--plot FILE``
saves the scatter plot (estimated against true error).

Usage: ``python benchmarks/trust_calibration.py [--draws 12] [--first 0]
[--cache DIR] [--plot trust.png] [--given-geometry]``; ``--cache`` keeps each
draw's phasing so a rerun only repeats pattern recognition and the estimate;
``--given-geometry`` passes the true period and thickness to preprocessing.
"""
from __future__ import annotations

import argparse
import pickle
import time
from pathlib import Path

import numpy as np

from nanotools import patterns, phasing, preprocess, trust
from nanotools.analysis import compare_supercells
from nanotools.errors import NanotoolsError
from nanotools.simulate.family import draw_family_member

BAD = 0.10      # a true error above this must be flagged
FACTOR = 2.0    # the estimate of the others must be within this factor


def run_draw(seed: int, cache: Path | None, *, given_geometry: bool = False) -> dict:
    member = draw_family_member(seed)
    par = member.parameters
    row = dict(seed=seed, texture=par.get("texture", {}).get("kind", "?"),
               coherence=par.get("coherence", {}).get("model", "?"))
    t0 = time.perf_counter()
    stored = cache / f"draw_{seed}.pkl" if cache is not None else None
    try:
        if stored is not None and stored.exists():
            prep, ph = pickle.loads(stored.read_bytes())
        else:
            geometry = (dict(period_nm=member.period_nm, thickness_nm=member.thickness_nm)
                        if given_geometry else {})
            prep = preprocess.prepare(member.rsm, **geometry)
            ph = phasing.phase_retrieval(prep, seed=seed)
            if stored is not None:
                stored.write_bytes(pickle.dumps((prep, ph)))
        found = patterns.find_supercells(ph, prep, seed=seed)
        est = trust.estimate_trust(ph, prep, found, find_kwargs=dict(seed=seed))
    except NanotoolsError as exc:
        row.update(failed=str(exc))
        return row
    except Exception as exc:  # a bug elsewhere in the pipeline: counted, not hidden
        row.update(failed=f"crashed ({type(exc).__name__}: {exc})")
        return row
    n_cell, _ = found.best.mean.shape
    truth = member.supercell(n_cell, found.pixel_nm[1])
    row.update(true=compare_supercells(found.best.mean, truth), estimated=est.estimated_error,
               reliable=est.reliable, half_difference=est.half_difference,
               misfit=est.misfit_ratio, seconds=time.perf_counter() - t0,
               reason=est.reliable_reason)
    return row


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--draws", type=int, default=12)
    ap.add_argument("--first", type=int, default=0)
    ap.add_argument("--cache", type=Path, default=None)
    ap.add_argument("--plot", type=Path, default=None)
    ap.add_argument("--given-geometry", action="store_true",
                    help="give preprocessing the true period and thickness (as a user may), "
                         "so more draws phase well and the estimate is tested on good images too")
    args = ap.parse_args(argv)
    if args.cache is not None:
        args.cache.mkdir(parents=True, exist_ok=True)
    rows = []
    print("| seed | texture | coherence | true error | estimated | reliable | half diff | misfit |")
    print("|---|---|---|---|---|---|---|---|")
    for seed in range(args.first, args.first + args.draws):
        r = run_draw(seed, args.cache, given_geometry=args.given_geometry)
        rows.append(r)
        if "failed" in r:
            print(f"| {seed} | {r['texture']} | {r['coherence']} | failed: {r['failed']} |||||",
                  flush=True)
            continue
        print(f"| {seed} | {r['texture']} | {r['coherence']} | {r['true']:.3f} | "
              f"{r['estimated']:.3f} | {r['reliable']} | {r['half_difference']:.3f} | "
              f"{r['misfit']:.2f} |", flush=True)
    done = [r for r in rows if "failed" not in r]
    bad = [r for r in done if r["true"] > BAD]
    missed = [r for r in bad if r["reliable"]]
    good = [r for r in done if r["true"] <= BAD]
    off = [r for r in good if not 1 / FACTOR <= r["estimated"] / max(r["true"], 1e-12) <= FACTOR]
    ratio = np.array([r["estimated"] / max(r["true"], 1e-12) for r in done])
    print(f"\n{len(done)} draws ({len(rows) - len(done)} failed with an error message); "
          f"true error > {BAD}: {len(bad)}, of which flagged unreliable {len(bad) - len(missed)}"
          f" (missed: {[r['seed'] for r in missed]}); true error <= {BAD}: {len(good)}, of which "
          f"estimate within x{FACTOR:g}: {len(good) - len(off)} (outside: "
          f"{[(r['seed'], round(r['true'], 3), round(r['estimated'], 3)) for r in off]}); "
          f"flagged among those: {sum(not r['reliable'] for r in good)}")
    if len(ratio):
        print(f"estimated / true: median {np.median(ratio):.2f}, range {ratio.min():.2f}-"
              f"{ratio.max():.2f}")
    if args.plot is not None and done:
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots(figsize=(4.5, 4.5))
        t = np.array([r["true"] for r in done])
        e = np.array([r["estimated"] for r in done])
        ok = np.array([r["reliable"] for r in done])
        ax.loglog(t[ok], e[ok], "o", label="reliable")
        ax.loglog(t[~ok], e[~ok], "x", color="tab:red", label="not reliable")
        lim = [min(t.min(), e.min()) / 1.5, max(t.max(), e.max()) * 1.5]
        ax.plot(lim, lim, "k-", lw=0.8)
        ax.fill_between(lim, [v / FACTOR for v in lim], [v * FACTOR for v in lim], color="0.9")
        ax.axvline(BAD, color="0.5", ls="--", lw=0.8)
        ax.set(xlabel="true complex error", ylabel="estimated error", xlim=lim, ylim=lim)
        ax.legend(fontsize=8)
        fig.tight_layout()
        fig.savefig(args.plot, dpi=120)
        print(f"scatter plot: {args.plot}")
    return 0 if not missed and not off else 1


if __name__ == "__main__":
    raise SystemExit(main())

"""How far the image rests on the amplitude prior, against how wrong it is.

For each validation-family draw (every preprocessing number from the truth,
as in ``phasing_family.py``), phases the map twice with the same random
starts, once with the default ``amplitude_constraint`` and once without it,
and prints the true error of each chosen supercell, the mean misfit of the
best 8 runs over the Poisson floor, and the difference between the two
images (``prior_difference`` of :mod:`nanotools.trust`, there computed on
``trust_prior_fraction`` of the starts).

Usage::

    python benchmarks/prior_check.py --seeds 1000:1020 [--json FILE]

The summary splits the draws at a true error of 0.10 and gives the range and
median of the difference on each side.
"""
from __future__ import annotations

import argparse
import json
import sys

import numpy as np
from phasing_family import prepared_from_truth

from nanotools.analysis import compare_supercells
from nanotools.params import defaults
from nanotools.patterns import find_supercells
from nanotools.phasing import phase_retrieval, pixel_averaged
from nanotools.simulate.family import draw_family_member
from nanotools.trust import run_noise_floor


def run_draw(seed: int) -> dict:
    """One draw phased with and without the prior (a row)."""
    member = draw_family_member(seed)
    prep = prepared_from_truth(member)
    row = dict(seed=seed, texture=member.parameters["texture"]["kind"],
               coherence=member.parameters["coherence"]["model"])
    images = {}
    for name, strength in (("prior", defaults()["amplitude_constraint"]), ("free", 0.0)):
        ph = phase_retrieval(prep, seed=0, amplitude_constraint=strength)
        found = find_supercells(ph, prep, seed=0)
        truth = member.supercell(len(found.x_nm), float(found.z_nm[1] - found.z_nm[0]))
        floor = run_noise_floor(ph.objects[int(np.argmin(ph.fourier_error))], prep,
                                pixel_average=pixel_averaged(ph))
        images[name] = found.best.mean
        row[f"error_{name}"] = float(compare_supercells(found.best.mean, truth))
        row[f"misfit_{name}"] = float(np.sort(ph.fourier_error)[:8].mean() / floor)
    row["prior_difference"] = float(compare_supercells(images["free"], images["prior"]))
    return row


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", default="1000:1020", help="a:b (range) or a,b,c")
    ap.add_argument("--json", default=None, metavar="FILE", help="write every row")
    args = ap.parse_args(argv)
    seeds = (range(*map(int, args.seeds.split(":"))) if ":" in args.seeds
             else [int(s) for s in args.seeds.split(",")])
    rows = []
    for seed in seeds:
        r = run_draw(seed)
        rows.append(r)
        print(f"{r['seed']:6d} {r['texture']:9s} {r['coherence']:8s} error with prior "
              f"{r['error_prior']:.3f} ({r['misfit_prior']:.2f} x floor), without "
              f"{r['error_free']:.3f} ({r['misfit_free']:.2f} x), difference "
              f"{r['prior_difference']:.3f}", flush=True)
    for label, pick in (("within 0.10", lambda r: r["error_prior"] <= 0.10),
                        ("above 0.10", lambda r: r["error_prior"] > 0.10)):
        d = [r["prior_difference"] for r in rows if pick(r)]
        if d:
            print(f"{len(d)} draws {label}: difference {min(d):.3f}-{max(d):.3f}, "
                  f"median {np.median(d):.3f}")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(rows, fh, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())

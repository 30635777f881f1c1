"""Preprocessing against the truth on the validation family.

Runs :func:`nanotools.preprocess.prepare` at defaults over family draws
(:func:`nanotools.simulate.draw_family_member`) and prints, per draw and as
median / worst, the error of the Bragg peak position (pixels), of the period,
the thickness and the coherent patch (relative; the truth's patch is its
``patch_periods`` times the period) and of the background (counts per
pixel, against the mean of the true background over the map), with every
failure.

    MPLBACKEND=agg .venv/bin/python benchmarks/preprocess_family.py --draws 30
"""
from __future__ import annotations

import argparse
import warnings

import numpy as np

from nanotools.errors import NanotoolsError
from nanotools.preprocess import prepare
from nanotools.simulate import draw_family_member


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--draws", type=int, default=30)
    parser.add_argument("--first-seed", type=int, default=0)
    args = parser.parse_args()
    rows, failures = [], []
    print(f"{'seed':>4} {'texture':>9} {'model':>8} {'sub':>3} {'J0<J1':>5} {'bkg':>6} "
          f"{'dx px':>6} {'dz px':>6} {'period':>7} {'thick':>7} {'patch':>7} {'bkg err':>8}")
    for seed in range(args.first_seed, args.first_seed + args.draws):
        m = draw_family_member(seed)
        p = m.parameters
        bkg = p["background"]
        true_bkg = 0.0 if bkg["kind"] == "none" else float((m.expected - _film_free(m)).mean())
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                prep = prepare(m.rsm)
        except NanotoolsError as exc:
            failures.append((seed, str(exc)))
            print(f"{seed:>4} failed: {exc}")
            continue
        dx, dz = (np.array(prep.peak_index) - np.array(p["bragg_peak_px"]))
        row = dict(seed=seed, dx=dx, dz=dz, period=prep.period_nm / m.period_nm - 1,
                   thickness=prep.thickness_nm / m.thickness_nm - 1,
                   patch=prep.patch_nm / (p["coherence"]["patch_periods"] * m.period_nm) - 1,
                   background=prep.background - true_bkg)
        rows.append(row)
        print(f"{seed:>4} {p['texture']['kind']:>9} {p['coherence']['model']:>8} "
              f"{'yes' if p['substrate'] else 'no':>3} {str(p['j0_below_j1'])[0]:>5} "
              f"{true_bkg:>6.2f} {dx:>6.2f} {dz:>6.2f} {row['period']:>7.3f} "
              f"{row['thickness']:>7.3f} {row['patch']:>7.3f} {row['background']:>8.3f}")
    print(f"\n{len(rows)} of {args.draws} draws prepared; {len(failures)} failed")
    for key, unit in (("dx", "px"), ("dz", "px"), ("period", "rel"), ("thickness", "rel"),
                      ("patch", "rel"), ("background", "counts/px")):
        values = np.abs([r[key] for r in rows])
        worst = rows[int(np.argmax(values))]["seed"]
        print(f"|{key}| ({unit}): median {np.median(values):.3g}, 90th percentile "
              f"{np.percentile(values, 90):.3g}, worst {values.max():.3g} (seed {worst})")
    # refusals by what was refused, and answers off by more than a user
    # would forgive without a word (the README's preprocessing table)
    refused = {"thickness": 0, "period": 0, "other": 0}
    for _, message in failures:
        kind = ("thickness" if "thickness" in message else
                "period" if "period_nm" in message else "other")
        refused[kind] += 1
    off = {key: [r["seed"] for r in rows if abs(r[key]) > bound]
           for key, bound in SILENT_BOUNDS.items()}
    silent = sorted({s for seeds in off.values() for s in seeds})
    print(f"refused: {len(failures)} ({', '.join(f'{k} {v}' for k, v in refused.items())})")
    print(f"silently off: {len(silent)} draws ("
          + ", ".join(f"{key} beyond {bound:g}: {len(off[key])}"
                      for key, bound in SILENT_BOUNDS.items()) + ")")
    print(f"  seeds: {', '.join(map(str, silent)) or 'none'}")


#: What counts as silently wrong (a prepared draw off by more than this):
#: out-of-plane peak (pixels), period, thickness and patch (relative),
#: background (counts per pixel).
SILENT_BOUNDS = {"dz": 2.0, "period": 0.02, "thickness": 0.04, "patch": 0.2, "background": 1.0}


def _film_free(member) -> np.ndarray:
    """The noise-free map less its background: film and substrate only."""
    p = member.parameters["background"]
    nx, nz = member.expected.shape
    if p["kind"] == "flat":
        return member.expected - p["level"]
    i, j = np.arange(nx)[:, None], np.arange(nz)[None, :]
    (cx, cz), (wx, wz) = p["centre_px"], p["width_px"]
    return member.expected - p["level"] * (0.3 + np.exp(
        -0.5 * (((i - cx) / wx) ** 2 + ((j - cz) / wz) ** 2)))


if __name__ == "__main__":
    main()

"""From the beamline: a simulated QM2 volume through ``--hkl``, against the
same map given as a plain 2-D file, and 2-D reduction against 3-D phasing.

Builds, with nexusformat, the exact nxrefine layout (wrapper + external
links + weights; see :mod:`nanotools.io.nxrefine`) of an H, K, L volume
holding two reflections: the textured film's (0 0 2) map from
:func:`nanotools.simulate.simulate_map`, and a decoy (0 0 1) with another
period. Then runs, with the same parameters and seed:

1. ``plain``: the (0 0 2) map as a plain 2-D NeXus file;
2. ``qm2``: ``reconstruct wrapper.nxs --hkl 0 0 2`` (window cut from the
   volume, summed over K);
3. ``reduce2d`` / ``phase3d``: a 3-D simulated volume (the texture confined
   in y too) cut with ``--hkl 0 0 2``, reduced to the (H, L) plane, or
   phased in 3-D (``-p reduce none``);

and prints the complex error of each against the true supercell
(``compare_supercells``, as ``benchmarks/quality.py``).

Usage: ``python benchmarks/beamline.py [--out DIR] [--seed N] [--only a,b]
[-p NAME VALUE]``; ``--write-only`` just writes the files (for the README's
commands).
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from nanotools.io import write_map
from nanotools.io.nxrefine import consolidate_scans, write_nxrefine_scan
from nanotools.simulate import simulate_map

CELL = (3.9, 3.9, 3.9, 90.0, 90.0, 90.0)


def _to_rlu(q: np.ndarray, a: float) -> np.ndarray:
    return q * a / (2 * np.pi)


def hkl_volume(sim2d, *, decoy=None, n_k: int = 16, sigma_k: float = 1.5,
               l_range=(0.7, 2.3), seed: int = 0):
    """Place a simulated 2-D (x, z) map on an H, K, L grid as the (0 0 2)
    reflection, extended along K with a Gaussian rod profile (``sigma_k``
    steps, summing to 1 so that a sum over K gives the 2-D map back), with
    the ``decoy`` map near (0 0 1); voxels outside both maps are unmeasured
    (weights 0).

    Returns ``data (L, K, H)``, ``weights``, ``H``, ``K``, ``L`` (r.l.u.).
    """
    rng = np.random.default_rng(seed)
    a = CELL[0]
    rsm = sim2d.rsm
    H = _to_rlu(rsm.q[0], a)
    step_h = H[1] - H[0]
    Lmap = _to_rlu(rsm.q[1], a)
    step_l = Lmap[1] - Lmap[0]
    j0 = int(np.argmin(np.abs(Lmap - 2.0)))
    n_lo = int(round((Lmap[j0] - l_range[0]) / step_l))
    n_hi = int(round((l_range[1] - Lmap[j0]) / step_l))
    L = Lmap[j0] + step_l * np.arange(-n_lo, n_hi + 1)
    K = step_h * (np.arange(n_k) - n_k // 2)
    g = np.exp(-0.5 * (K / (sigma_k * step_h)) ** 2)
    g /= g.sum()
    intensity = np.zeros((L.size, K.size, H.size))
    # QM2 volumes are full of unmeasured voxels (weights 0): here everything
    # outside the simulated maps' L ranges
    measured = np.zeros(intensity.shape, bool)

    def put(rsm_part, centre_l):
        jl = int(np.argmin(np.abs(L - centre_l)))
        nz = rsm_part.intensity.shape[1]
        sl = slice(jl - nz // 2, jl - nz // 2 + nz)
        block = rsm_part.intensity.T[:, None, :] * g[None, :, None]  # (l, k, h)
        intensity[sl] = block
        measured[sl] = ~rsm_part.mask.T[:, None, :]

    if decoy is not None:
        put(decoy.rsm, 1.0)
    put(rsm, 2.0)
    # nxrefine stores summed counts and how many frames fed each voxel
    weights = rng.integers(1, 4, intensity.shape).astype(np.float64)
    weights[~measured] = 0.0
    return intensity * weights, weights, H, K, L


def volume_3d(sim3d, *, l_range=(1.7, 2.3)):
    """A 3-D simulated (x, y, z) map on an H, K, L grid at (0 0 2)."""
    a = CELL[0]
    rsm = sim3d.rsm
    H, K, Lmap = (_to_rlu(q, a) for q in rsm.q)
    step_l = Lmap[1] - Lmap[0]
    j0 = int(np.argmin(np.abs(Lmap - 2.0)))
    n_lo = int(round((Lmap[j0] - l_range[0]) / step_l))
    n_hi = int(round((l_range[1] - Lmap[j0]) / step_l))
    L = Lmap[j0] + step_l * np.arange(-n_lo, n_hi + 1)
    intensity = np.zeros((L.size, K.size, H.size))
    measured = np.zeros(intensity.shape, bool)  # unmeasured outside the simulated map
    nz = rsm.intensity.shape[2]
    sl = slice(n_lo - nz // 2, n_lo - nz // 2 + nz)
    intensity[sl] = np.transpose(rsm.intensity, (2, 1, 0))
    measured[sl] = ~np.transpose(rsm.mask, (2, 1, 0))
    weights = measured.astype(np.float64)
    return intensity, weights, H, K, L


def write_demo(folder: Path, *, seed: int = 0) -> dict:
    """Write the demo files; return their paths and the simulations."""
    folder.mkdir(parents=True, exist_ok=True)
    sim = simulate_map("laminate", shape=(256, 128), period_nm=12.0, thickness_nm=40.0,
                       patch_periods=5, total_counts=1e9, gap_pixels=3, seed=seed)
    decoy = simulate_map("checkerboard", shape=(256, 128), period_nm=20.0, thickness_nm=40.0,
                         G=2 * np.pi / CELL[2], total_counts=1e9, gap_pixels=0, seed=seed + 1)
    plain = write_map(folder / "film_002_plain.h5", sim.rsm)
    data, weights, H, K, L = hkl_volume(sim, decoy=decoy, seed=seed)
    wrapper = write_nxrefine_scan(folder, "film", "300K", data, H, K, L, unit_cell=CELL,
                                  weights=weights, temperature_K=300.0)
    # 3-D: the patch (4 periods) confined along y too; every axis oversampled >= 2
    sim3 = simulate_map("laminate", shape=(128, 16, 64), pixel_nm=(1.0, 6.0, 1.0),
                        period_nm=12.8, thickness_nm=20.0, patch_periods=4, total_counts=1e9,
                        gap_pixels=3, seed=seed)
    d3, w3, H3, K3, L3 = volume_3d(sim3)
    wrapper3 = write_nxrefine_scan(folder / "3d", "film3d", "300K", d3, H3, K3, L3,
                                   unit_cell=CELL, weights=w3, temperature_K=300.0)
    return dict(plain=plain, wrapper=wrapper, wrapper3d=wrapper3, sim=sim, sim3d=sim3)


def write_series(folder: Path, temperatures=(300.0, 320.0, 340.0), *, seed: int = 0) -> Path:
    """Scans at several temperatures consolidated into one 4-D file of
    virtual datasets; the period grows with temperature, 128 nm / (10, 9, 8
    ...) at 300, 320, 340 K ... (a whole number of periods in the field of
    view)."""
    wrappers = []
    for i, t in enumerate(temperatures):
        sim = simulate_map("laminate", shape=(128, 64),
                           period_nm=128.0 / (10 - round((t - 300) / 20)),
                           # 24 nm: a film must fit twice in the 64 nm real-space
                           # window along z for its thickness to be measured
                           thickness_nm=24.0, patch_periods=4, total_counts=1e8,
                           gap_pixels=0, seed=seed + i)
        data, weights, H, K, L = hkl_volume(sim, n_k=8, l_range=(1.7, 2.3), seed=seed + i)
        wrappers.append(write_nxrefine_scan(folder, "film", f"{t:g}K", data, H, K, L,
                                            unit_cell=CELL, weights=weights, temperature_K=t))
    return consolidate_scans(wrappers, folder / "film_scans.nxs")


def _on_grid(cell: np.ndarray, pixel_nm: tuple, truth_pixel_nm: tuple, n_cell: int):
    """Resample a complex supercell (n_cell', n_film') with pixel ``pixel_nm``
    onto the truth's pixel (a window is not the simulated map's size, so
    its real-space pixel differs): linear interpolation, periodic along x."""
    from scipy.ndimage import map_coordinates

    nx, nz = cell.shape
    period = nx * pixel_nm[0]
    xs = np.arange(n_cell) * period / n_cell / pixel_nm[0]
    nz_new = int(round(nz * pixel_nm[1] / truth_pixel_nm[-1]))
    zs = np.arange(nz_new) * truth_pixel_nm[-1] / pixel_nm[1]
    X, Z = np.meshgrid(xs, zs, indexing="ij")
    out = [map_coordinates(part, [X, Z], order=1, mode="grid-wrap")
           for part in (cell.real, cell.imag)]
    return out[0] + 1j * out[1]


def _error(result: Path, sim) -> tuple[float, float]:
    from nanotools.analysis import compare_supercells
    from nanotools.io import read_result

    res = read_result(result)
    cell = res["supercell"]["complex_field"]
    x, z = (np.asarray(res["supercell"][k], float) for k in ("x", "z"))
    pixel = (float(np.median(np.diff(x))), float(np.median(np.diff(z))))
    truth = sim.truth_supercell
    truth_pixel = (sim.period_nm / truth.shape[0], sim.pixel_nm[-1])
    if not np.allclose(pixel, truth_pixel, rtol=1e-3) or cell.shape[0] != truth.shape[0]:
        cell = _on_grid(cell, pixel, truth_pixel, truth.shape[0])
    return compare_supercells(cell, truth), float(res["supercell"]["period_nm"])


def main(argv=None) -> int:
    from nanotools.params import parse_pairs
    from nanotools.pipeline import reconstruct_file

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=None, help="folder for the files (default: temporary)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--only", default="plain,qm2,reduce2d,phase3d")
    ap.add_argument("--write-only", action="store_true")
    ap.add_argument("-p", nargs=2, action="append", default=[], metavar=("NAME", "VALUE"))
    args = ap.parse_args(argv)
    params = parse_pairs(args.p)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(args.out or tmp)
        demo = write_demo(folder, seed=args.seed)
        series = write_series(folder / "series", seed=args.seed)
        print(f"wrote {demo['plain']}, {demo['wrapper']}, {demo['wrapper3d']}, {series}")
        if args.write_only:
            return 0
        runs = dict(plain=(demo["plain"], {}, demo["sim"]),
                    qm2=(demo["wrapper"], {"hkl": "0 0 2"}, demo["sim"]),
                    reduce2d=(demo["wrapper3d"], {"hkl": "0 0 2", "reduce": "sum"},
                              demo["sim3d"]),
                    phase3d=(demo["wrapper3d"], {"hkl": "0 0 2", "reduce": "none"},
                             demo["sim3d"]))
        rows = []
        for name in args.only.split(","):
            path, extra, sim = runs[name]
            t0 = time.perf_counter()
            out = folder / f"{name}_result.h5"
            reconstruct_file(path, out, {**params, **extra}, seed=args.seed, progress=False,
                             checkpoint=False, force=True)
            wall = time.perf_counter() - t0
            err, period = _error(out, sim)
            rows.append((name, err, period, wall))
            print(f"{name:9s} error {err:.3f}  period {period:.2f} nm  {wall:.0f} s", flush=True)
        print("| input | complex error | period (nm) | wall time (s) |")
        print("|---|---|---|---|")
        for name, err, period, wall in rows:
            print(f"| {name} | {err:.3f} | {period:.2f} | {wall:.0f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())

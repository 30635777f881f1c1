"""Preprocessing against an independent forward model, through real files.

Each draw builds a map with its own few dozen lines of physics (not
:mod:`nanotools.simulate`), written from ``docs/SCIENCE.md``: a film slab of
thickness ``t`` whose complex density ``rho = s(x, z) exp(i phi(x, z))``
carries a periodic phase ``phi = G.u`` of period ``P`` (stripes, vortices or
smoothed domains), cut by a coherent patch envelope along ``x`` (and ``y``
in 3-D); ``|FT|**2`` is summed directly (a DFT onto any q grid, so the
Bragg peak falls anywhere between pixels), scaled to 1e7-1e9 counts, an
optional substrate peak with its truncation rod and a flat background are
added, and Poisson noise drawn. Every draw also picks the conventions a
user's file would have: q in 1/angstrom, 1/nm or r.l.u. (with an NXsample
unit cell), axis names that say which axis is out-of-plane or do not, the
axes in any order, some stored descending, the peak off the map's centre,
the map cropped unevenly, non-square q steps, a specular or an asymmetric
reflection, a small misalignment of the q_x axis, 2-D or 3-D. The map is
written as NeXus NXdata with h5py (``docs/CONTRACT.md``), read back with
:func:`nanotools.io.read_map`, prepared with
:func:`nanotools.preprocess.prepare` at defaults, and compared with the
truth: the Bragg peak in q (error in pixels of each axis), the period and
thickness (relative), the background (counts per pixel).

    NANOTOOLS_FFTW_PLANNER=estimate MPLBACKEND=agg \\
        .venv/bin/python benchmarks/preprocess_stress.py --draws 50

Prints one row per draw and a summary (median / worst per quantity, every
failure with its seed and conventions). Exit status 0: a benchmark, not a
test.
"""
from __future__ import annotations

import argparse
import tempfile
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import h5py
import numpy as np

from nanotools.errors import NanotoolsError
from nanotools.io import read_map
from nanotools.preprocess import prepare

#: A draw fails where an error exceeds these: the Bragg peak by more than a
#: pixel on any axis, the period by 3 %, the thickness by 5 %, the
#: background by 0.5 counts/pixel plus 25 % of the true level.
PEAK_TOL_PX = 1.0
PERIOD_TOL = 0.03
THICKNESS_TOL = 0.05
BACKGROUND_TOL = (0.5, 0.25)

#: Names a file gives its axes, per unit kind: in-plane x, in-plane y,
#: out-of-plane. The last set says nothing about which is out-of-plane.
Q_NAMES = [("qx", "qy", "qz"), ("Qx", "Qy", "Qz"), ("q_par", "q_y", "q_perp"),
           ("qip", "qy", "qoop"), ("q_a", "q_b", "q_c")]
RLU_NAMES = [("H", "K", "L"), ("Qh", "Qk", "Ql")]


@dataclass
class Draw:
    """The truth of one map and the conventions its file uses.

    Lengths in nm, q in 1/nm (converted to the file's units when written).
    """

    seed: int
    texture: str
    period_nm: float
    thickness_nm: float
    phase_amplitude: float  # rad: peak |G.u|
    patch_nm: float  # patch FWHM along x
    G: tuple  # (Gx, Gz) of the film peak, 1/nm, in the file's frame
    reflection: str  # "specular" or "H0L" with H != 0
    background: float  # counts/pixel
    total_counts: float
    substrate: bool
    ndim: int
    units: str  # "1/angstrom", "1/nm" or "rlu"
    names: tuple  # (x, y, z) names
    file_order: tuple  # file axis k holds physical axis file_order[k] (0 x, 1 y, 2 z)
    descending: tuple  # per physical axis (x, y, z)
    misalignment_nm: float  # offset of the q_x axis (1/nm); the peak sits there
    cell: tuple = ()  # (a, b, c) angstrom written for r.l.u.
    texture_offset: float = 0.0  # rad: where the texture's period starts (film_intensity)
    s_contrast: float = 0.0  # the scattering strength's modulation 1 + s cos(...)
    s_phase: float = 0.0  # rad, its phase
    envelope: str = "flat"  # the coherent patch: "flat" (cos^2 edges) or "gauss"
    q: dict = field(default_factory=dict)  # physical axis -> 1/nm values, increasing
    counts: np.ndarray | None = None  # (nx[, ny], nz)

    def conventions(self) -> str:
        order = "".join("xyz"[a] for a in self.file_order)
        desc = "".join("xyz"[a] for a in self.file_order if self.descending[a]) or "-"
        extra = f" off {self.misalignment_nm:+.3f}/nm" if self.misalignment_nm else ""
        return (f"{self.ndim}D {self.units} {'/'.join(self.names[a] for a in self.file_order)} "
                f"order {order} desc {desc} {self.reflection}"
                f"{' +sub' if self.substrate else ''}{extra}")


# ---------------------------------------------------------------------------
# The forward model
# ---------------------------------------------------------------------------

def _phase(texture: str, x: np.ndarray, z: np.ndarray, period: float, t: float,
           amplitude: float, offset: float) -> np.ndarray:
    """``G.u(x, z)`` (rad), shape ``(len(x), len(z))``: one Fourier-periodic
    displacement field per texture kind, period ``period`` along x."""
    k = 2 * np.pi / period
    arg = k * x[:, None] + offset
    if texture == "stripes":  # u independent of depth
        return amplitude * np.sin(arg) + 0.0 * z[None, :]
    if texture == "vortex":  # flux closure: the wave reverses through the film
        return amplitude * np.sin(arg) * np.cos(np.pi * z[None, :] / t)
    # ferroelastic domains: a smoothed square wave (walls ~ P/10 wide)
    return amplitude * np.tanh(3.0 * np.sin(arg)) / np.tanh(3.0) + 0.0 * z[None, :]


def texture_field(d: Draw, x: np.ndarray, z: np.ndarray) -> np.ndarray:
    """The film's complex density without its patch envelope,
    ``s(x) exp(i G.u(x, z))``, shape ``(len(x), len(z))`` (x in nm, z in nm
    from the film's bottom)."""
    phi = _phase(d.texture, x, z, d.period_nm, d.thickness_nm, d.phase_amplitude,
                 d.texture_offset)
    s = 1.0 + d.s_contrast * np.cos(2 * np.pi * x / d.period_nm + d.s_phase)
    return s[:, None] * np.exp(1j * phi)


def _envelope(x: np.ndarray, width: float, kind: str) -> np.ndarray:
    """Coherent patch envelope of FWHM ``width`` centred at 0: a flat top
    with cos^2 edges half as wide as the top, or a Gaussian."""
    if kind == "gauss":
        return np.exp(-4 * np.log(2) * (x / width) ** 2)
    edge = width / 2
    r = np.clip((np.abs(x) - (width - edge) / 2) / edge, 0.0, 1.0)
    return np.cos(0.5 * np.pi * r) ** 2


def _dft_matrix(dq: np.ndarray, r: np.ndarray) -> np.ndarray:
    """``exp(-i dq r)``, shape ``(len(dq), len(r))``."""
    return np.exp(-1j * np.outer(dq, r))


def film_intensity(d: Draw, rng, qx: np.ndarray, qz: np.ndarray, env_kind: str) -> np.ndarray:
    """``|FT rho|**2`` of the film on the grid ``qx x qz`` (1/nm), shape
    ``(len(qx), len(qz))``, up to a scale. The real-space grid is fine enough
    (pixel under pi / (2 max |q - G|)) that its aliases fall far outside the
    map; the slab spans exactly ``t`` (``N`` samples of ``t / N``)."""
    t = d.thickness_nm
    dqx, dqz = qx - d.G[0], qz - d.G[1]
    step_x = min(0.25, np.pi / (2 * np.abs(dqx).max()))
    step_z = min(0.2, np.pi / (2 * np.abs(dqz).max()))
    half = (d.patch_nm * (1.6 if env_kind == "flat" else 2.2)) / 2
    x = np.arange(-half, half + step_x, step_x)
    nz = int(np.ceil(t / step_z))
    z = (np.arange(nz) + 0.5) * (t / nz)
    d.texture_offset = rng.uniform(0, 2 * np.pi)
    # the scattering strength follows the texture a little (composition)
    d.s_contrast, d.s_phase = rng.uniform(0.0, 0.2), rng.uniform(0, 2 * np.pi)
    rho = _envelope(x, d.patch_nm, env_kind)[:, None] * texture_field(d, x, z)
    field = _dft_matrix(dqx, x) @ rho @ _dft_matrix(dqz, z).T
    return np.abs(field) ** 2


def _axis(rng, G: float, step: float, n: int) -> np.ndarray:
    """``n`` q values of ``step`` with the peak ``G`` between pixels, at a
    random place in the middle 40-60 % (uneven crop)."""
    i0 = rng.integers(int(0.3 * n), int(0.7 * n))
    return G + (np.arange(n) - i0 - rng.uniform(-0.5, 0.5)) * step


def draw_map(seed: int) -> Draw:
    """One random map with its truth and file conventions (see the module
    docstring)."""
    rng = np.random.default_rng(seed)
    P = rng.uniform(6.0, 20.0)
    t = rng.uniform(10.0, 50.0)
    texture = str(rng.choice(["stripes", "vortex", "domains"]))
    amplitude = rng.uniform(0.4, 2.2)
    patch_periods = rng.uniform(3.0, 8.0)
    env_kind = str(rng.choice(["flat", "gauss"]))
    ndim = 3 if rng.random() < 0.25 else 2
    units = str(rng.choice(["1/angstrom", "1/nm", "rlu"], p=[0.45, 0.3, 0.25]))
    a_sub = rng.uniform(3.85, 3.95)  # angstrom, in-plane (film shares it)
    c_film = a_sub * rng.uniform(1.01, 1.06)
    L = int(rng.choice([1, 2, 3]))
    H = 0 if rng.random() < 0.6 else int(rng.choice([1, -1, 2]))
    Gz = 2 * np.pi * L / c_film * 10.0  # 1/nm
    Gx = 2 * np.pi * H / a_sub * 10.0
    misalign = 0.0
    if H == 0 and units != "rlu" and rng.random() < 0.3:
        # a sample a little off the diffractometer's axis: the film's rod
        # sits beside q_x = 0, by a fraction of a satellite spacing
        misalign = float(rng.choice([-1, 1]) * rng.uniform(0.05, 0.4) * 2 * np.pi / P)
    names = RLU_NAMES[rng.integers(len(RLU_NAMES))] if units == "rlu" else \
        Q_NAMES[rng.integers(len(Q_NAMES))]
    file_order = tuple(rng.permutation(3)) if ndim == 3 else \
        ((2, 0) if rng.random() < 0.5 else (0, 2))
    d = Draw(seed=seed, texture=texture, period_nm=P, thickness_nm=t,
             phase_amplitude=amplitude, patch_nm=patch_periods * P,
             G=(Gx + misalign, Gz), reflection="specular" if H == 0 else f"{H}0{L}",
             background=float(rng.choice([0.0, rng.uniform(0.5, 20.0)])),
             total_counts=float(10 ** rng.uniform(7, 9)), substrate=bool(rng.random() < 0.3),
             ndim=ndim, units=units, names=tuple(names), file_order=tuple(file_order),
             descending=tuple(bool(rng.random() < 0.3) for _ in range(3)),
             misalignment_nm=misalign, cell=(a_sub, a_sub, a_sub * rng.uniform(0.995, 1.0)))

    # sampling: 2-4 pixels across a satellite (width 2 pi / patch), 3-5
    # across a fringe (2 pi / t), 3-6 satellites and 6-14 fringes each side
    dqx = 2 * np.pi / (d.patch_nm * rng.uniform(2.0, 4.0))
    dqz = 2 * np.pi / (t * rng.uniform(3.0, 5.0))
    n_sat = rng.uniform(3.0, 6.0)
    nx = int(np.clip(2 * n_sat * (2 * np.pi / P) / dqx, 64, 320))
    nz = int(np.clip(2 * rng.uniform(6.0, 14.0) * (2 * np.pi / t) / dqz, 64, 256))
    qx, qz = _axis(rng, d.G[0], dqx, nx), _axis(rng, Gz, dqz, nz)
    d.envelope = env_kind
    film = film_intensity(d, rng, qx, qz, env_kind)
    if ndim == 3:  # the same patch along y, no texture there
        dqy = 2 * np.pi / (d.patch_nm * rng.uniform(2.0, 3.0))
        qy = _axis(rng, 0.0, dqy, int(rng.integers(24, 41)))
        y = np.arange(-d.patch_nm, d.patch_nm, min(0.5, np.pi / (2 * np.abs(qy).max())))
        across = np.abs(_dft_matrix(qy, y) @ _envelope(y, d.patch_nm, env_kind)) ** 2
        film = film[:, None, :] * across[None, :, None]
        d.q[1] = qy
    expected = film * (d.total_counts / film.sum())
    if d.substrate:
        # resolution-limited across (0.4 pixel), a 1/dq^2 truncation rod
        # along q_z; 2-5 fringes from the film peak, 30-300 x brighter
        Gs = Gz + rng.choice([-1, 1]) * rng.uniform(2.0, 5.0) * 2 * np.pi / t
        across = np.exp(-0.5 * ((qx - d.G[0]) / (0.4 * dqx)) ** 2)
        rod = 1.0 / (1.0 + ((qz - Gs) / (0.3 * dqz)) ** 2)
        sub = across[:, None] * rod[None, :]
        if ndim == 3:
            sub = sub[:, None, :] * np.exp(-0.5 * (qy / (0.4 * dqy)) ** 2)[None, :, None]
        expected = expected + sub * rng.uniform(30, 300) * expected.max()
    expected = expected + d.background
    d.counts = rng.poisson(expected).astype(np.float64)
    d.q[0], d.q[2] = qx, qz
    return d


# ---------------------------------------------------------------------------
# The file, as a user's software would write it
# ---------------------------------------------------------------------------

def write_nexus(d: Draw, path: Path) -> None:
    """The map as NeXus NXdata (``docs/CONTRACT.md``): the signal in the
    draw's axis order, each axis in its units and direction, ``axes`` and
    ``AXIS_indices`` attributes, an NXsample ``unit_cell`` for r.l.u."""
    physical = (0, 1, 2) if d.ndim == 3 else (0, 2)
    order = [physical.index(a) for a in d.file_order]
    counts = np.transpose(d.counts, order)
    with h5py.File(path, "w") as h5:
        h5.attrs["default"] = "entry"
        entry = h5.create_group("entry")
        entry.attrs["NX_class"] = "NXentry"
        entry.attrs["default"] = "data"
        data = entry.create_group("data")
        data.attrs["NX_class"] = "NXdata"
        data.attrs["signal"] = "counts"
        data.attrs["axes"] = [d.names[a] for a in d.file_order]
        for k, a in enumerate(d.file_order):
            values = d.q[a]
            if d.units == "1/angstrom":
                values = values / 10.0
            elif d.units == "rlu":  # h = q a / 2 pi, with a in nm
                values = values * (d.cell[a] / 10.0) / (2 * np.pi)
            if d.descending[a]:
                values = values[::-1]
                counts = np.flip(counts, axis=k)
            data.create_dataset(d.names[a], data=values).attrs["units"] = d.units
            data.attrs[f"{d.names[a]}_indices"] = k
        data.create_dataset("counts", data=counts)
        if d.units == "rlu":
            sample = entry.create_group("sample")
            sample.attrs["NX_class"] = "NXsample"
            sample["unit_cell"] = np.array(list(d.cell) + [90.0, 90.0, 90.0])


# ---------------------------------------------------------------------------
# Comparison
# ---------------------------------------------------------------------------

def evaluate(d: Draw, folder: Path) -> dict:
    """Write, read, prepare and compare one draw; a dict of errors (or of
    the error raised) and the failures found."""
    path = folder / f"stress_{d.seed}.h5"
    write_nexus(d, path)
    row = dict(seed=d.seed, conventions=d.conventions(), failures=[])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            rsm = read_map(path)
            # which file axis became which canonical axis: match the q values
            physical = (0, 1, 2) if d.ndim == 3 else (0, 2)
            truth_q = {a: d.q[a] / 10.0 for a in physical}  # 1/angstrom
            mapping = []
            for q in rsm.q:
                match = [a for a in physical if len(truth_q[a]) == len(q)
                         and np.allclose(truth_q[a], q, rtol=1e-6, atol=1e-9)]
                mapping.append(match[0] if match else None)
            if mapping[-1] != 2 or None in mapping or mapping[0] != 0:
                # the texture's axis must come first, the out-of-plane last
                warned = any("out-of-plane" in str(w.message) for w in caught)
                row["failures"].append("orientation" + (" (warned)" if warned else ""))
                row["error"] = ("canonical axes " + "/".join(rsm.axis_names) + ": "
                                + rsm.out_of_plane_reason)
                return row
            prep = prepare(rsm)
        except NanotoolsError as exc:
            row["error"] = str(exc).replace(str(path), "FILE")
            row["failures"].append("error")
            return row
    row["warnings"] = [str(w.message) for w in caught]
    truth_peak = {0: d.G[0] / 10.0, 1: 0.0, 2: d.G[1] / 10.0}
    dpx = []
    for a, (p, q) in enumerate(zip(prep.peak_index, rsm.q)):
        q_found = float(np.interp(p, np.arange(len(q)), q))
        dpx.append((q_found - truth_peak[mapping[a]]) / (q[1] - q[0]))
    row["dx"], row["dz"] = dpx[0], dpx[-1]
    row["dy"] = dpx[1] if d.ndim == 3 else 0.0
    row["period"] = prep.period_nm / d.period_nm - 1
    row["thickness"] = prep.thickness_nm / d.thickness_nm - 1
    row["background"] = prep.background - d.background
    # reported, not a failure: the coherent patch's FWHM (relative), by the
    # envelope's shape (a Gaussian patch is measured as a flat top's)
    row["patch"] = prep.patch_nm / d.patch_nm - 1
    row["envelope"] = d.envelope
    if max(abs(v) for v in dpx) > PEAK_TOL_PX:
        row["failures"].append("peak")
    if abs(row["period"]) > PERIOD_TOL:
        row["failures"].append("period")
    if abs(row["thickness"]) > THICKNESS_TOL:
        row["failures"].append("thickness")
    if abs(row["background"]) > BACKGROUND_TOL[0] + BACKGROUND_TOL[1] * d.background:
        row["failures"].append("background")
    row["notes"] = prep.notes
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--draws", type=int, default=50)
    parser.add_argument("--first-seed", type=int, default=0)
    parser.add_argument("--verbose", action="store_true", help="print prepare's notes")
    args = parser.parse_args()
    rows = []
    print(f"{'seed':>4} {'texture':>8} {'P nm':>5} {'t nm':>5} {'phi':>4} {'bkg':>5} "
          f"{'dx px':>6} {'dy px':>6} {'dz px':>6} {'period':>7} {'thick':>7} {'bkg err':>7}"
          "  conventions")
    with tempfile.TemporaryDirectory() as tmp:
        for seed in range(args.first_seed, args.first_seed + args.draws):
            d = draw_map(seed)
            row = evaluate(d, Path(tmp))
            row["draw"] = d
            rows.append(row)
            head = (f"{seed:>4} {d.texture:>8} {d.period_nm:>5.1f} {d.thickness_nm:>5.1f} "
                    f"{d.phase_amplitude:>4.1f} {d.background:>5.1f} ")
            if "dx" in row:
                print(head + f"{row['dx']:>6.2f} {row['dy']:>6.2f} {row['dz']:>6.2f} "
                      f"{row['period']:>7.3f} {row['thickness']:>7.3f} "
                      f"{row['background']:>7.2f}  {d.conventions()}"
                      + (f"  FAIL {','.join(row['failures'])}" if row["failures"] else ""))
            else:
                print(head + f"FAIL {','.join(row['failures'])}: "
                      f"{row.get('error')}  {d.conventions()}")
            if args.verbose or row["failures"]:
                for line in row.get("notes", []) + row.get("warnings", []):
                    print(f"       | {line}")
    done = [r for r in rows if "dx" in r]
    print(f"\n{len(done)} of {len(rows)} draws prepared; "
          f"{sum(bool(r['failures']) for r in rows)} with a failure")
    kinds = sorted({r["draw"].units for r in rows})
    print("conventions drawn: units " + ", ".join(
        f"{k} {sum(r['draw'].units == k for r in rows)}" for k in kinds)
          + f"; 3-D {sum(r['draw'].ndim == 3 for r in rows)}"
          + f"; z not last in the file {sum(r['draw'].file_order[-1] != 2 for r in rows)}"
          + f"; a descending axis {sum(any(r['draw'].descending) for r in rows)}"
          + f"; asymmetric reflection {sum(r['draw'].reflection != 'specular' for r in rows)}"
          + f"; misaligned q_x {sum(bool(r['draw'].misalignment_nm) for r in rows)}"
          + f"; substrate {sum(r['draw'].substrate for r in rows)}"
          + f"; background {sum(r['draw'].background > 0 for r in rows)}"
          + "; names that do not say out-of-plane "
          + f"{sum(r['draw'].names[2] == 'q_c' for r in rows)}")
    for key, unit in (("dx", "px"), ("dy", "px"), ("dz", "px"), ("period", "rel"),
                      ("thickness", "rel"), ("background", "counts/px")):
        if not done:
            break
        values = np.abs([r[key] for r in done])
        worst = done[int(np.argmax(values))]["seed"]
        print(f"|{key}| ({unit}): median {np.median(values):.3g}, 90th percentile "
              f"{np.percentile(values, 90):.3g}, worst {values.max():.3g} (seed {worst})")
    for envelope in ("flat", "gauss"):
        patch = np.array([r["patch"] for r in done if r.get("envelope") == envelope])
        if patch.size:
            print(f"patch (rel, {envelope} envelope, {patch.size} draws): median "
                  f"{np.median(patch):+.3f}, 10th-90th percentile "
                  f"{np.percentile(patch, 10):+.3f} to {np.percentile(patch, 90):+.3f}, "
                  f"beyond 20 %: {int(np.sum(np.abs(patch) > 0.2))}")
    failed = [r for r in rows if r["failures"]]
    if failed:
        print("failures (tolerances: peak 1 px, period 3 %, thickness 5 %, background "
              "0.5 + 25 % counts/px):")
        for r in failed:
            print(f"  seed {r['seed']}: {', '.join(r['failures'])}  [{r['conventions']}]")


if __name__ == "__main__":
    main()

"""A seeded validation family of maps, made independently of the tuned simulator.

:func:`draw_family_member` turns one integer seed into one reciprocal-space
map and the truth it was made from. Every random choice is kept in the
member's ``parameters`` dict (JSON-friendly), so a draw is reproducible from
its seed and the worst draws of a benchmark can be tabulated and rebuilt.

Why a second generator
----------------------
The first release was tuned on :mod:`nanotools.simulate.model`: three
hand-written textures, one coherent patch, the map computed as the exact FFT
of the very real-space grid that phasing uses, the Bragg peak exactly on a
pixel, no substrate. Maps made any other way gave errors of 0.07-0.9.
This module shares no texture or film code with it (only the row-count
convention :func:`~nanotools.analysis.supercell_half_rows`, so that the
truth is laid out like the supercells the pipeline writes). It differs in:

* **Textures drawn, not hand-picked.** ``"harmonic"``: a displacement wave of
  1-3 harmonics of the period with random weights, phases, z-profiles and
  bending of the wavefront; ``"laminate"``: domains and walls with random
  wall fraction, width (sharpness), inclination, lattice tilt or shift and
  scattering contrast; ``"amplitude"``: a random harmonic modulation of the
  scattering strength ``s`` on top of a displacement wave; ``"vortex"``: a
  flux-closure displacement ``u = curl psi`` (``psi`` a stream function
  with random core height) projected on a Bragg vector tilted from the
  normal. About a quarter of the draws are strong-phase (peak phase
  1.5-2.5 rad, raised by steps of 10 % up to 3.5 rad until the first
  satellite outshines the zeroth order, ``J0 < J1``); some textures never get
  there (a z-profile with a node, thin walls), so ``parameters["j0_below_j1"]``
  says whether the true supercell has it (8 of the 11 strong draws among
  seeds 0-59).
* **Partial coherence two ways.** ``"patch"``: one coherent patch of
  3.5-6 periods with soft edges. ``"ensemble"``: the incoherent sum of 20-50
  coherent patches, each a new realisation of the texture whose cell widths
  jitter by 2-5 % (so higher satellite orders are broader) at a random
  lateral position; the truth is the undisturbed mean supercell.
* **Its own q grid.** The field is built on a fine real-space grid over the
  whole patch (much finer than the phasing grid) and its Fourier transform
  evaluated at the map's q points as a piecewise-constant field (exact box
  transforms, no aliasing); the q steps are drawn from the wanted
  oversampling (2.6-4 along z, satellite width 3-5 pixels along x), and the
  Bragg peak (qx = 0, qz = G) falls between pixels, a few to tens of pixels
  off the map centre.
* **What real maps hold.** A substrate Bragg peak and truncation rod on
  the specular line on a third of the draws (2-6 fringes from the film
  peak, 10-1000 times brighter, resolution-limited along qx, Lorentzian with
  1/dq^2 tails along qz; added as intensity); zero, flat or smooth
  backgrounds; 1e7-1e9 counts (log-uniform) with Poisson noise; a detector
  gap of 0-5 pixels at a random place along x or z; a few hot and dead
  pixels. Gaps and bad pixels are masked.

The truth (:attr:`FamilyMember.truth_supercell`, or :meth:`FamilyMember.supercell`
on any grid) is one period x the film thickness of the undisturbed texture,
each pixel the average of the field over the part of the pixel inside the
film (the interface rows weighted by their occupancy), the film centred on
the middle row.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field, replace

import numpy as np

from ..analysis import compare_supercells, supercell_half_rows
from ..errors import ParameterError
from ..io import ReciprocalSpaceMap

__all__ = ["FAMILY_TEXTURES", "FamilyMember", "draw_family_member", "family_supercell",
           "order_phase_ambiguity", "recount"]

FAMILY_TEXTURES = ("harmonic", "laminate", "amplitude", "vortex")

#: Phase amplitude above which the first satellite of a sinusoidal
#: displacement wave outshines the zeroth order (J0(a) = J1(a) at 1.4347).
J0_J1_CROSSING_RAD = 1.4347

_TABLE = 1024  # samples per period of the laminate's tabulated profiles


@dataclass
class FamilyMember:
    """One draw of the validation family.

    Attributes
    ----------
    rsm
        The map (absolute q in 1/angstrom, last axis out-of-plane), with its
        mask (gap and bad pixels).
    truth_supercell
        Complex mean supercell ``(n_cell, 2 m + 1)`` on the grid the map
        implies for phasing at bin 1 without cropping (``pixel_nm``).
    period_nm, thickness_nm
        Texture period and film thickness (nm).
    pixel_nm
        ``(dx, dz)`` of ``truth_supercell`` (nm): ``dx = period / n_cell``.
    G
        Length of the Bragg vector (1/angstrom).
    parameters
        Every random choice of the draw (JSON-friendly).
    expected
        The noise-free map (film + substrate + background), float64, the
        shape of ``rsm.intensity``; for tests.
    amplitude
        The film's noise-free complex scattering amplitude on the map's
        pixels (``|amplitude|^2`` is the film's share of ``expected``), for
        the one-patch model; None for an ensemble. With it a benchmark can
        ask whether the truth fits the data better than a reconstruction
        (a search failure) or not (the data do not decide).
    """

    rsm: ReciprocalSpaceMap
    truth_supercell: np.ndarray
    period_nm: float
    thickness_nm: float
    pixel_nm: tuple
    G: float
    parameters: dict = field(default_factory=dict)
    expected: np.ndarray | None = None
    amplitude: np.ndarray | None = None

    def supercell(self, n_cell: int, dz_nm: float) -> np.ndarray:
        """The truth on another grid: see :func:`family_supercell`."""
        return family_supercell(self.parameters["texture"], n_cell=n_cell, dz_nm=dz_nm)


# ---------------------------------------------------------------------------
# Textures: complex field s exp(i phase) of fractional cell coordinate xi
# (one period = 1) and relative height zeta (film bottom 0, top 1).
# ---------------------------------------------------------------------------

def _z_profile(spec: dict, zeta: np.ndarray) -> np.ndarray:
    kind = spec["kind"]
    if kind == "linear":
        return 1.0 + spec["a"] * (2 * zeta - 1)
    if kind == "parabolic":
        return 1.0 + spec["a"] * (2 * zeta - 1) ** 2
    return np.sin(np.pi * spec["n"] * zeta + spec["psi"])  # "standing"


def _harmonic_sum(harmonics: list, xi: np.ndarray, zeta: np.ndarray) -> np.ndarray:
    out = np.zeros(np.broadcast(xi, zeta).shape)
    for h in harmonics:
        bend = h["bend"] * (2 * zeta - 1) ** h["bend_power"]  # wavefront shift (periods)
        out = out + h["weight"] * _z_profile(h["z_profile"], zeta) * np.cos(
            2 * np.pi * h["order"] * (xi - bend) + h["phase0"])
    return out


def _laminate_tables(tex: dict) -> tuple[np.ndarray, np.ndarray]:
    """Phase profile (unit amplitude) and scattering strength over one
    period, tabulated on ``_TABLE`` points and smoothed by the wall width."""
    p = np.arange(_TABLE) / _TABLE
    f = 1.0 - tex["wall_fraction"]
    in_domain = p < f
    # opposite lattice tilts: phase up across a domain, down across a wall
    if tex["profile"] == "tilt":
        phase = np.where(in_domain, -1 + 2 * p / f, 1 - 2 * (p - f) / (1 - f))
    else:  # "shift": domains and walls displaced against each other
        phase = np.where(in_domain, 1.0, -1.0)
    s = np.where(in_domain, 1.0, tex["wall_strength"])
    k = np.fft.fftfreq(_TABLE)
    # a Gaussian of sigma wall_width
    blur = np.exp(-2 * (np.pi * k * tex["wall_width"] * _TABLE) ** 2)
    smooth = [np.fft.ifft(np.fft.fft(a) * blur).real for a in (phase, s)]
    return smooth[0], smooth[1]


def _raw_texture(tex: dict, xi: np.ndarray, zeta: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Scattering strength and unscaled phase of the texture."""
    kind = tex["kind"]
    shape = np.broadcast(xi, zeta).shape
    if kind == "harmonic":
        return np.ones(shape), _harmonic_sum(tex["harmonics"], xi, zeta)
    if kind == "amplitude":
        mod = _harmonic_sum(tex["s_harmonics"], xi, zeta)
        s = 1.0 + tex["s_contrast"] * mod / tex["s_norm"]
        return s, _harmonic_sum(tex["harmonics"], xi, zeta)
    if kind == "laminate":
        phase_t, s_t = _laminate_tables(tex)
        grid = np.arange(_TABLE) / _TABLE
        pos = np.mod(xi, 1.0)
        return (np.broadcast_to(np.interp(pos, grid, s_t, period=1.0), shape),
                np.broadcast_to(np.interp(pos, grid, phase_t, period=1.0), shape))
    if kind == "vortex":
        # stream function psi = sum_k w_k sin(2 pi k xi + phi_k) S(zeta), S = sin(pi zeta^g)^2;
        # u = curl psi: u_x = dpsi/dz, u_z = -dpsi/dx (a flux-closure rotation)
        g, P, t = tex["core_exponent"], tex["period_nm"], tex["thickness_nm"]
        zc = np.clip(zeta, 1e-9, 1.0)
        S = np.sin(np.pi * zc ** g) ** 2
        dS = 2 * np.sin(np.pi * zc ** g) * np.cos(np.pi * zc ** g) * np.pi * g * zc ** (g - 1)
        ux = np.zeros(shape)
        uz = np.zeros(shape)
        for h in tex["harmonics"]:
            arg = 2 * np.pi * h["order"] * xi + h["phase0"]
            ux = ux + h["weight"] * np.sin(arg) * dS / t
            uz = uz - h["weight"] * np.cos(arg) * 2 * np.pi * h["order"] * S / P
        b = tex["G_tilt_rad"]
        return np.ones(shape), np.sin(b) * ux + np.cos(b) * uz
    raise ParameterError(f"unknown family texture '{kind}' (known: {', '.join(FAMILY_TEXTURES)})")


def _texture_field(tex: dict, xi: np.ndarray, zeta: np.ndarray) -> np.ndarray:
    s, raw = _raw_texture(tex, xi, zeta)
    return s * np.exp(1j * tex["phase_amplitude_rad"] * raw / tex["phase_norm"])


def _cell_coordinate(tex: dict, x_nm: np.ndarray, z_nm: np.ndarray) -> np.ndarray:
    """Fractional cell coordinate of the undisturbed texture at (x, z), z
    from the film bottom; laminate walls are inclined (sheared)."""
    return (x_nm - tex.get("wall_slope", 0.0) * (z_nm - tex["thickness_nm"] / 2)) / tex["period_nm"]


def family_supercell(tex: dict, *, n_cell: int, dz_nm: float, oversample: int = 4) -> np.ndarray:
    """The mean supercell of a family texture on a given grid.

    Parameters
    ----------
    tex
        The ``parameters["texture"]`` dict of a :class:`FamilyMember`.
    n_cell
        Samples across one period (``dx = period / n_cell``).
    dz_nm
        Row spacing (nm).
    oversample
        Sub-samples per pixel and axis of the pixel average.

    Returns
    -------
    Complex ``(n_cell, 2 m + 1)``, ``m = supercell_half_rows(thickness, dz)``:
    rows centred on the film's middle, each pixel the mean of the field over
    its part inside the film times that part's fraction of the pixel.
    """
    P, t = tex["period_nm"], tex["thickness_nm"]
    dx = P / n_cell
    m = supercell_half_rows(t, dz_nm)
    sub = (np.arange(oversample) + 0.5) / oversample
    # x: pixel i covers [(i - 1/2) dx, (i + 1/2) dx] around its sample at i dx
    x = (np.arange(n_cell)[:, None] + sub[None, :] - 0.5) * dx          # (n_cell, o)
    # z: the part of each row inside the film [0, t], sampled at its midpoints
    centre = t / 2 + np.arange(-m, m + 1) * dz_nm
    lo, hi = np.clip(centre - dz_nm / 2, 0, t), np.clip(centre + dz_nm / 2, 0, t)
    occupancy = (hi - lo) / dz_nm                                         # (rows,)
    z = lo[:, None] + sub[None, :] * (hi - lo)[:, None]                   # (rows, o)
    X = x[:, None, :, None]
    Z = z[None, :, None, :]
    values = _texture_field(tex, _cell_coordinate(tex, X, Z), Z / t)      # (n_cell, rows, o, o)
    return values.mean(axis=(2, 3)) * occupancy[None, :]


# ---------------------------------------------------------------------------
# Drawing a texture
# ---------------------------------------------------------------------------

def _draw_harmonics(rng: np.random.Generator, *, max_order: int = 3) -> list:
    orders = [1] + sorted(rng.choice(np.arange(2, max_order + 1), rng.integers(0, max_order),
                                     replace=False).tolist())
    out = []
    for k in orders:
        zkind = str(rng.choice(["linear", "parabolic", "standing"]))
        if zkind == "standing":
            zp = dict(kind=zkind, n=int(rng.integers(1, 4)), psi=float(rng.uniform(0, 0.5)))
        else:
            zp = dict(kind=zkind, a=float(rng.uniform(-0.6, 0.6)))
        out.append(dict(order=int(k), weight=1.0 if k == 1 else float(rng.uniform(0.15, 0.6)),
                        phase0=float(rng.uniform(0, 2 * np.pi)), z_profile=zp,
                        bend=float(rng.uniform(-0.25, 0.25)), bend_power=int(rng.integers(1, 3))))
    return out


def _draw_texture(rng: np.random.Generator, *, period_nm: float, thickness_nm: float) -> dict:
    kind = str(rng.choice(FAMILY_TEXTURES))
    tex = dict(kind=kind, period_nm=period_nm, thickness_nm=thickness_nm)
    if kind in ("harmonic", "amplitude"):
        tex["harmonics"] = _draw_harmonics(rng)
    if kind == "amplitude":
        tex["s_harmonics"] = _draw_harmonics(rng, max_order=2)
        tex["s_contrast"] = float(rng.uniform(0.2, 0.6))
        tex["s_norm"] = 1.0
    if kind == "laminate":
        tex.update(wall_fraction=float(rng.uniform(0.1, 0.5)),
                   wall_width=float(rng.uniform(0.005, 0.08)),
                   wall_slope=float(np.tan(np.radians(rng.uniform(-50, 50)))),
                   profile=str(rng.choice(["tilt", "shift"])),
                   wall_strength=float(rng.uniform(0.6, 1.05)))
    if kind == "vortex":
        tex["harmonics"] = [dict(order=1, weight=1.0, phase0=float(rng.uniform(0, 2 * np.pi)))]
        if rng.random() < 0.5:
            tex["harmonics"].append(dict(order=2, weight=float(rng.uniform(0.1, 0.4)),
                                         phase0=float(rng.uniform(0, 2 * np.pi))))
        tex.update(core_exponent=float(rng.uniform(0.7, 1.4)),
                   G_tilt_rad=float(np.radians(rng.uniform(-35, 35))))
    # normalise the raw phase (and s modulation) to unit peak on a reference grid
    xi = np.arange(128)[:, None] / 128
    zeta = (np.arange(64)[None, :] + 0.5) / 64
    if kind == "amplitude":
        tex["s_norm"] = float(np.abs(_harmonic_sum(tex["s_harmonics"], xi, zeta)).max()) or 1.0
    raw = _raw_texture(tex, _cell_coordinate(tex, xi * period_nm, zeta * thickness_nm), zeta)[1]
    tex["phase_norm"] = float(np.abs(raw - raw.mean()).max()) or 1.0
    return tex


def _order_strengths(tex: dict, *, n_cell: int = 64, n_rows: int = 64) -> np.ndarray:
    """Peak intensity of the satellite orders -1, 0, 1 of the true supercell:
    max over qz of |FT_z of the order's Fourier coefficient|^2."""
    cell = family_supercell(tex, n_cell=n_cell, dz_nm=tex["thickness_nm"] / n_rows, oversample=2)
    coeff = np.fft.fft(cell, axis=0)[[-1, 0, 1]]
    rods = np.abs(np.fft.fft(coeff, n=8 * cell.shape[1], axis=1)) ** 2
    return rods.max(axis=1)


# ---------------------------------------------------------------------------
# The map
# ---------------------------------------------------------------------------

def _taper(x_nm: np.ndarray, width_nm: float, edge_nm: float) -> np.ndarray:
    """Flat top with cos^2 edges, full width at half maximum ``width_nm``."""
    a = np.clip((np.abs(x_nm) - (width_nm - edge_nm) / 2) / edge_nm, 0, 1)
    return np.cos(0.5 * np.pi * a) ** 2


def _box_transform(q_nm: np.ndarray, centres_nm: np.ndarray, step_nm: float) -> np.ndarray:
    """``(n_q, n_r)`` matrix of the exact Fourier transform of boxes of width
    ``step_nm`` centred on ``centres_nm`` at the points ``q_nm`` (1/nm)."""
    return step_nm * np.sinc(q_nm[:, None] * step_nm / (2 * np.pi)) * \
        np.exp(-1j * q_nm[:, None] * centres_nm[None, :])


def _jittered_xi(rng: np.random.Generator, x_nm: np.ndarray, *, period_nm: float,
                 jitter: float, reach_nm: float) -> np.ndarray:
    """Fractional cell coordinate of one disordered realisation: cells of
    width ``period (1 + jitter N(0, 1))`` laid from a random start."""
    n = int(np.ceil(2 * reach_nm / period_nm * 1.3)) + 6
    widths = period_nm * np.clip(1 + jitter * rng.standard_normal(n), 0.5, 1.5)
    edges = -reach_nm - period_nm * (1 + rng.random()) + np.concatenate([[0.0], np.cumsum(widths)])
    j = np.clip(np.searchsorted(edges, x_nm, side="right") - 1, 0, n - 1)
    return j + (x_nm - edges[j]) / widths[j]


def _film_intensity(tex: dict, geo: dict, coh: dict, qx_nm: np.ndarray, dqz_nm: np.ndarray,
                    rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray | None]:
    """Noise-free film intensity (arbitrary scale) on the map's q points, and
    the complex amplitude behind it (one-patch model; None for an ensemble,
    which no single amplitude explains)."""
    P, t = tex["period_nm"], tex["thickness_nm"]
    width, edge = coh["patch_periods"] * P, coh["patch_edge_periods"] * P
    reach = (width + edge) / 2
    hx, hz = geo["fine_step_x_nm"], geo["fine_step_z_nm"]
    x = (np.arange(int(np.ceil(2 * reach / hx))) + 0.5) * hx - reach
    z = (np.arange(int(round(t / hz))) + 0.5) * hz  # t is a whole number of fine steps
    Ex = _box_transform(qx_nm, x, hx)
    Ez = _box_transform(dqz_nm, z - t / 2, hz)
    envelope = _taper(x, width, edge)[:, None]
    X, Z = x[:, None], z[None, :]
    sheared = X - tex.get("wall_slope", 0.0) * (Z - t / 2)
    if coh["model"] == "patch":
        xi = sheared / P + coh["texture_offset"]
        rho = envelope * _texture_field(tex, xi, Z / t)
        amplitude = Ex @ rho @ Ez.T
        return np.abs(amplitude) ** 2, amplitude
    total = np.zeros((len(qx_nm), len(dqz_nm)))
    for _ in range(coh["n_patches"]):
        xi = _jittered_xi(rng, sheared, period_nm=P, jitter=coh["jitter"], reach_nm=reach + t)
        rho = envelope * _texture_field(tex, xi, Z / t)
        total += np.abs(Ex @ rho @ Ez.T) ** 2
    return total / coh["n_patches"], None


def _pixel_profile(centres: np.ndarray, position: float, cdf) -> np.ndarray:
    """Integral over each unit pixel of a peak at ``position`` with CDF ``cdf``."""
    return cdf(centres + 0.5 - position) - cdf(centres - 0.5 - position)


def draw_family_member(seed: int, *, ndim: int = 2, shape: tuple = (256, 128),
                       substrate: bool = True) -> FamilyMember:
    """Draw one map of the validation family.

    Parameters
    ----------
    seed
        Non-negative integer; the same seed gives the same map and truth.
    ndim
        Only 2 (maps ``(qx, qz)``) for now.
    shape
        Map size ``(nx, nz)`` (pixels).
    substrate
        False: a draw that has a substrate peak is made without it, to
        measure what the substrate and its masked rod cost. Its parameters
        are still drawn, so every other parameter and the truth are the
        draw's own (the Poisson noise comes from the same stream, but its
        values differ once the expected counts do);
        ``parameters["substrate"]`` is None and
        ``parameters["substrate_left_out"]`` holds them.

    Returns
    -------
    FamilyMember
    """
    from scipy.special import erf

    if ndim != 2:
        raise ParameterError(f"the validation family is 2-D only, got ndim={ndim}")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ParameterError(f"seed must be a non-negative integer, got {seed!r}")
    nx, nz = (int(n) for n in shape)
    rng = np.random.default_rng([int(seed), 20261125])
    P = float(rng.uniform(6.0, 20.0))
    t = float(rng.uniform(10.0, 50.0))
    G = float(2 * np.pi * rng.integers(1, 4) / rng.uniform(3.75, 4.05))  # 00L of a ~3.9 A cell

    tex = _draw_texture(rng, period_nm=P, thickness_nm=t)
    strong = bool(rng.random() < 0.25)
    A = float(rng.uniform(1.5, 2.5) if strong else rng.uniform(0.3, 1.4))
    tex["phase_amplitude_rad"] = A
    strengths = _order_strengths(tex)
    # strong draws: raise the phase until the first satellite outshines the
    # zeroth order (the case the name promises), at most to 3.5 rad
    while strong and strengths[1] >= strengths[[0, 2]].max() and tex["phase_amplitude_rad"] < 3.5:
        tex["phase_amplitude_rad"] = min(1.1 * tex["phase_amplitude_rad"], 3.5)
        strengths = _order_strengths(tex)
    j0_below_j1 = bool(strengths[1] < strengths[[0, 2]].max())

    model = "patch" if rng.random() < 0.5 else "ensemble"
    coh = dict(model=model, patch_edge_periods=float(rng.uniform(0.3, 1.0)))
    if model == "patch":
        coh.update(patch_periods=float(rng.uniform(3.5, 6.0)), texture_offset=float(rng.random()))
    else:
        coh.update(patch_periods=float(rng.uniform(4.0, 8.0)), n_patches=int(rng.integers(20, 51)),
                   jitter=float(rng.uniform(0.02, 0.05)))
    satellite_width_px = float(rng.uniform(3.0, 5.0))
    spacing_px = coh["patch_periods"] * satellite_width_px
    oversampling_z = float(rng.uniform(2.6, 4.0))
    dqx = 2 * np.pi / P / spacing_px         # 1/nm
    dqz = 2 * np.pi / (oversampling_z * t)   # 1/nm
    # position of the Bragg peak (qx = 0, qz = G) in pixels: off the centre, between pixels
    peak_px = (nx // 2 + float(rng.choice([-1, 1]) * rng.uniform(2, 30)),
               nz // 2 + float(rng.choice([-1, 1]) * rng.uniform(2, 20)))
    qx_nm = (np.arange(nx) - peak_px[0]) * dqx
    dqz_nm = (np.arange(nz) - peak_px[1]) * dqz
    # fine real-space grid: boxes at least 8 times finer than the map's largest q needs
    max_order_x = np.abs(qx_nm).max() * P / (2 * np.pi)
    max_fringe_z = np.abs(dqz_nm).max() * t / (2 * np.pi)
    geo = dict(fine_step_x_nm=P / max(32, int(np.ceil(8 * max_order_x))),
               fine_step_z_nm=t / max(64, int(np.ceil(8 * max_fringe_z))))

    film, amplitude = _film_intensity(tex, geo, coh, qx_nm, dqz_nm, rng)
    total_counts = float(10 ** rng.uniform(7, 9))
    scale = total_counts / film.sum()
    film *= scale
    if amplitude is not None:
        amplitude *= np.sqrt(scale)
    expected = film.copy()

    with_substrate, substrate = substrate, None
    if rng.random() < 1 / 3:
        substrate = dict(fringes_from_film=float(rng.choice([-1, 1]) * rng.uniform(2, 6)),
                         brightness=float(10 ** rng.uniform(1, 3)),
                         sigma_x_px=float(rng.uniform(0.4, 0.8)),
                         hwhm_z_px=float(rng.uniform(0.2, 0.5)))
        pos_z = peak_px[1] + substrate["fringes_from_film"] * (2 * np.pi / t) / dqz
        substrate["position_px"] = [peak_px[0], float(pos_z)]
        sx = _pixel_profile(np.arange(nx), peak_px[0],
                            lambda d: 0.5 * erf(d / (np.sqrt(2) * substrate["sigma_x_px"])))
        sz = _pixel_profile(np.arange(nz), pos_z,
                            lambda d: np.arctan(d / substrate["hwhm_z_px"]) / np.pi)
        rod = sx[:, None] * sz[None, :]
        # the rod's brightest pixel (in the map or at its edge) relative to the film's
        peak_pixel = (_pixel_profile(np.zeros(1), 0.0, lambda d: 0.5 * erf(
            d / (np.sqrt(2) * substrate["sigma_x_px"])))[0] *
            _pixel_profile(np.zeros(1), 0.0,
                           lambda d: np.arctan(d / substrate["hwhm_z_px"]) / np.pi)[0])
        if with_substrate:
            expected += rod * substrate["brightness"] * film.max() / peak_pixel

    bkind = str(rng.choice(["none", "flat", "smooth"]))
    background = dict(kind=bkind, level=0.0)
    if bkind != "none":
        background["level"] = float(10 ** rng.uniform(-1, 0.5))
        if bkind == "flat":
            expected += background["level"]
        else:
            centre = [float(rng.uniform(0, nx)), float(rng.uniform(0, nz))]
            widths = [float(rng.uniform(0.3, 1.0) * nx), float(rng.uniform(0.3, 1.0) * nz)]
            background.update(centre_px=centre, width_px=widths)
            i, j = np.arange(nx)[:, None], np.arange(nz)[None, :]
            expected += background["level"] * (0.3 + np.exp(
                -0.5 * (((i - centre[0]) / widths[0]) ** 2 + ((j - centre[1]) / widths[1]) ** 2)))

    counts = rng.poisson(expected).astype(np.float64)
    mask = np.zeros((nx, nz), bool)
    gap = dict(width_px=int(rng.integers(0, 6)), axis=str(rng.choice(["x", "z"])))
    if gap["width_px"]:
        n_axis = nx if gap["axis"] == "x" else nz
        gap["start_px"] = int(rng.integers(0, n_axis - gap["width_px"] + 1))
        sl = slice(gap["start_px"], gap["start_px"] + gap["width_px"])
        if gap["axis"] == "x":
            mask[sl, :] = True
        else:
            mask[:, sl] = True
        counts[mask] = 0.0  # a gap reads nothing
    n_hot, n_dead = int(rng.integers(0, 6)), int(rng.integers(0, 11))
    flat = rng.choice(nx * nz, n_hot + n_dead, replace=False)
    bad = np.unravel_index(flat, (nx, nz))
    mask[bad] = True
    hot = tuple(b[:n_hot] for b in bad)
    counts[hot] = rng.uniform(2, 10, n_hot) * counts.max()
    counts[tuple(b[n_hot:] for b in bad)] = 0.0

    # the truth on the grid this map implies for phasing (bin 1, no crop)
    dx_phasing = 2 * np.pi / (nx * dqx)
    dz_phasing = 2 * np.pi / (nz * dqz)
    n_cell = max(int(round(P / dx_phasing)), 2)
    truth = family_supercell(tex, n_cell=n_cell, dz_nm=dz_phasing)

    parameters = dict(
        generator="nanotools.simulate.family", seed=int(seed), shape=[nx, nz],
        period_nm=P, thickness_nm=t, G=G, texture=tex, strong_phase=strong,
        j0_below_j1=j0_below_j1,
        order_strengths=[float(v) for v in strengths / strengths[1]],
        coherence=coh, satellite_width_px=satellite_width_px, satellite_spacing_px=spacing_px,
        oversampling_z=oversampling_z, q_step_per_A=[dqx / 10, dqz / 10],
        bragg_peak_px=[float(p) for p in peak_px], fine_grid=geo,
        total_counts=total_counts, substrate=substrate if with_substrate else None,
        background=background, gap=gap,
        hot_pixels=[[int(a), int(b)] for a, b in zip(*hot)],
        dead_pixels=[[int(a), int(b)] for a, b in zip(*(b[n_hot:] for b in bad))])
    if not with_substrate and substrate is not None:
        parameters["substrate_left_out"] = substrate
    q = (qx_nm / 10.0, G + dqz_nm / 10.0)  # 1 nm = 10 angstrom
    rsm = ReciprocalSpaceMap(
        intensity=counts, mask=mask, q=q, axis_names=("qx", "qz"),
        out_of_plane_reason="simulated: last axis is out-of-plane",
        source=f"validation family seed {int(seed)} ({tex['kind']}, {model})",
        metadata={"simulation": "validation family", "family_seed": int(seed),
                  "family_parameters_json": json.dumps(parameters)})
    return FamilyMember(rsm=rsm, truth_supercell=truth, period_nm=P, thickness_nm=t,
                        pixel_nm=(P / n_cell, dz_phasing), G=G, parameters=parameters,
                        expected=expected, amplitude=amplitude)


def recount(member: FamilyMember, factor: float) -> FamilyMember:
    """``member`` counted again, as if exposed ``factor`` times as long.

    Fresh Poisson noise on the noise-free map (film, substrate and
    background) times ``factor``, from ``np.random.default_rng([seed, 7])``
    (the same map for the same draw and factor; ``factor = 1`` gives another
    noise realisation at the draw's own counts). The mask and the truth are
    the draw's; ``expected`` and ``amplitude`` are scaled with the counts,
    ``parameters`` gain ``counts_factor`` and their ``total_counts`` scale.
    Whether more counts would have made an image right is the question it
    answers (``benchmarks/quality.py --counts-factor``).
    """
    factor = float(factor)
    if not factor > 0:
        raise ParameterError(f"the counts factor must be positive, got {factor}")
    rng = np.random.default_rng([int(member.parameters["seed"]), 7])
    expected = member.expected * factor
    parameters = dict(member.parameters, counts_factor=factor,
                      total_counts=float(member.parameters["total_counts"]) * factor)
    metadata = dict(member.rsm.metadata, family_parameters_json=json.dumps(parameters))
    rsm = replace(member.rsm, intensity=rng.poisson(expected).astype(np.float64),
                  metadata=metadata)
    amplitude = None if member.amplitude is None else member.amplitude * np.sqrt(factor)
    return replace(member, rsm=rsm, expected=expected, amplitude=amplitude,
                   parameters=parameters)


# ---------------------------------------------------------------------------
# What an ensemble's data leave open
# ---------------------------------------------------------------------------

def _variation_along_x(cell: np.ndarray, rows: np.ndarray) -> float:
    """RMS of the modulus about its mean over the period, relative to the
    mean modulus, on the whole rows ``rows``: what the phasing's amplitude
    prior (the modulus even along x) pulls to zero."""
    a = np.abs(cell[:, rows])
    return float(np.sqrt(((a - a.mean(axis=0)) ** 2).mean()) / a.mean())


def order_phase_ambiguity(cell: np.ndarray, *, directions: int = 60, max_rad: float = 3.0,
                          seed: int = 0) -> float:
    """How far an image can move without changing an ensemble's map.

    In the ensemble model every patch lays its cells from a random start,
    uniform over one period, so the interference between satellite orders
    ``n != m`` averages to zero: the expected map is
    ``sum_n |FT_z c_n(qz)|^2`` (each order's rod, convolved along qx with
    the patch's ``|W|^2``), where ``c_n(z)`` is order ``n`` of the supercell
    along x. Every supercell whose orders are ``exp(i phi_n) c_n`` has that
    map and the same z support; only a real-space prior can tell them apart,
    and the phasing's is the amplitude prior (the modulus even along x).

    This searches such supercells: ``phi = lam d`` along ``directions``
    random directions ``d`` (normal on the orders that carry power, their
    linear part, a lateral shift, removed), ``lam`` from 0 to ``max_rad`` in
    steps of 0.05 until the modulus varies along x more than that of
    ``cell`` (the truth) does (+ 0.001). It returns the largest :func:`compare_supercells` error
    to ``cell`` found: a lower bound on how far an image that fits the data
    exactly and obeys the prior at least as well as the truth can be from
    it. A pure displacement texture (constant modulus) gives about 0; a
    texture of varying scattering strength can give 0.3 or more. It says
    nothing about the one-patch model, whose map keeps the interference.

    Parameters
    ----------
    cell
        Complex supercell ``(n_cell, n_film)`` (one period x the film),
        e.g. :attr:`FamilyMember.truth_supercell`.
    directions, max_rad, seed
        Number of random directions, largest step along each (rad), and the
        seed of the directions.

    Returns
    -------
    float
        The largest error found (0 = the data and the prior pin the image).
    """
    cell = np.asarray(cell, complex)
    n_cell = cell.shape[0]
    column = np.abs(cell).sum(axis=0)
    rows = np.flatnonzero(column > 0.98 * column.max())  # whole film rows only
    orders = np.fft.fft(cell, axis=0)
    power = (np.abs(orders) ** 2).sum(axis=1)
    live = np.flatnonzero(power > 1e-4 * power.max())
    freq = np.fft.fftfreq(n_cell, 1 / n_cell)[live]
    live, freq = live[freq != 0], freq[freq != 0]  # order 0 sets the global phase
    if len(live) == 0:  # no texture: nothing to turn
        return 0.0
    w = power[live]
    reference = _variation_along_x(cell, rows)
    norm = np.linalg.norm(cell)
    rng = np.random.default_rng(seed)
    worst = 0.0
    for _ in range(directions):
        d = rng.standard_normal(len(live))
        d -= (w * freq * d).sum() / (w * freq * freq).sum() * freq
        # follow the path while the prior holds; keep its point farthest from
        # the truth after the best lateral shift (a cheap stand-in for
        # compare_supercells, which then measures that point)
        best, farthest = 0.0, None
        for lam in np.arange(0.05, max_rad + 1e-9, 0.05):
            moved = orders.copy()
            moved[live] *= np.exp(1j * lam * d)[:, None]
            image = np.fft.ifft(moved, axis=0)
            if _variation_along_x(image, rows) > reference + 1e-3:
                break
            overlap = np.abs(np.fft.ifft((np.conj(moved) * orders).sum(axis=1))).max()
            distance = 1 - (overlap / norm ** 2) ** 2  # the norm is unchanged by phi
            if distance > best:
                best, farthest = distance, image
        if farthest is not None:
            worst = max(worst, compare_supercells(farthest, cell))
    return float(worst)

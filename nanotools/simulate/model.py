"""Forward model: reciprocal-space maps of periodic thin-film nanotextures.

The crystal field of the film is ``rho(r) = s(r) exp(i G u(r))``: ``s`` the
local scattering strength, ``u`` the lattice displacement along the Bragg
vector ``G``. It is confined to a film slab of thickness ``t`` along z and to
a *coherent patch* a few periods wide along x (and y), with soft edges: the
part of the film that the beam illuminates coherently. The map is
``|FT(rho)|^2`` around the Bragg peak, scaled to a number of counts, plus a
flat background, with Poisson noise, a detector gap and bad pixels.

Textures (``texture=``):

``"checkerboard"``
    PbTiO3/SrTiO3-like: ``u = A sin(2 pi x / period) sin(2 pi z / period_z)``
    with a weak layer contrast in ``s``.
``"laminate"``
    Ca2RuO4-like: thin walls of a second structural phase between wider
    wires, the walls inclined to the film plane. ``u`` rises linearly across
    a wire and falls across a wall (opposite lattice tilts), ``s`` is lower
    in the walls.
``"bent_wave"``
    A sinusoidal displacement wave whose wavefront bends across the film
    thickness: ``u = A sin(2 pi (x - b(z)) / period)``, ``b`` parabolic.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..analysis import supercell_half_rows
from ..errors import ParameterError
from ..io import ReciprocalSpaceMap

__all__ = ["TEXTURES", "Simulation", "texture_field", "film_object", "simulate_map",
           "truth_supercell"]

TEXTURES = ("checkerboard", "laminate", "bent_wave")

#: Default displacement amplitude per texture (angstrom): about 0.8-1 rad of
#: phase at G = 3.2 1/angstrom, a strong-phase object as in the paper.
_DEFAULT_AMPLITUDE_A = {"checkerboard": 0.30, "laminate": 0.25, "bent_wave": 0.30}


@dataclass
class Simulation:
    """A simulated map with the truth it was made from.

    Attributes
    ----------
    rsm
        The map, as :func:`nanotools.io.read_map` would return it.
    truth
        Complex crystal field on the real-space grid, shape of the map.
    truth_supercell
        Complex field of one period of the texture, without the patch
        envelope: shape ``(n_cell, n_film)``, ``n_cell = round(period /
        pixel_x)`` samples across one period, ``n_film`` pixels across the
        film.
    period_nm, thickness_nm
        Texture period and film thickness (nm).
    pixel_nm
        Real-space pixel size per axis (nm).
    G
        Length of the Bragg vector (1/angstrom).
    parameters
        Everything the map was made with, for provenance.
    """

    rsm: ReciprocalSpaceMap
    truth: np.ndarray
    truth_supercell: np.ndarray
    period_nm: float
    thickness_nm: float
    pixel_nm: tuple
    G: float
    parameters: dict = field(default_factory=dict)


def texture_field(texture: str, x_nm: np.ndarray, z_nm: np.ndarray, *, period_nm: float,
                  thickness_nm: float, displacement_A: float | None = None,
                  wall_fraction: float = 0.25, wall_slope: float = 0.5,
                  bend_nm: float | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Scattering strength ``s`` and displacement ``u`` of a texture.

    Parameters
    ----------
    texture
        One of {"checkerboard", "laminate", "bent_wave"}.
    x_nm, z_nm
        Broadcastable coordinates (nm); ``z_nm`` is measured from the film
        bottom (0) to its top (``thickness_nm``).
    period_nm, thickness_nm
        Lateral period and film thickness (nm).
    displacement_A
        Displacement amplitude (angstrom); a texture-specific default if None.
    wall_fraction
        Laminate only: fraction of the period taken by the walls.
    wall_slope
        Laminate only: lateral shift of the walls per unit height (tan of the
        wall's angle to the film normal).
    bend_nm
        Bent wave only: lateral shift of the wavefront between the film's
        middle and its surfaces (nm); ``period_nm / 4`` if None.

    Returns
    -------
    s, u
        Arrays of the broadcast shape: strength (dimensionless, ~1) and
        displacement along G (angstrom).
    """
    if texture not in TEXTURES:
        raise ParameterError(f"unknown texture '{texture}' (known: {', '.join(TEXTURES)})")
    A = _DEFAULT_AMPLITUDE_A[texture] if displacement_A is None else displacement_A
    x, z = np.broadcast_arrays(np.asarray(x_nm, float), np.asarray(z_nm, float))
    if texture == "checkerboard":
        period_z = thickness_nm / 3.0  # three superlattice bilayers through the film
        u = A * np.sin(2 * np.pi * x / period_nm) * np.sin(2 * np.pi * z / period_z)
        s = 1.0 + 0.1 * np.cos(2 * np.pi * z / period_z)
    elif texture == "laminate":
        # position within the period along the inclined lamellae
        p = np.mod((x - wall_slope * (z - thickness_nm / 2)) / period_nm, 1.0)
        f = 1.0 - wall_fraction
        u = np.where(p < f, -A + 2 * A * p / f, A - 2 * A * (p - f) / (1 - f))
        s = np.where(p < f, 1.0, 0.8)  # the walls' structure scatters less
    else:  # bent_wave
        b = (period_nm / 4 if bend_nm is None else bend_nm) * (2 * z / thickness_nm - 1) ** 2
        u = A * np.sin(2 * np.pi * (x - b) / period_nm)
        s = np.ones_like(x)
    return s, u


def _taper(x_nm: np.ndarray, width_nm: float, edge_nm: float) -> np.ndarray:
    """Flat top of ``width_nm`` (full width at half maximum) with cos^2 edges
    ``edge_nm`` wide: compact support, so the object is truly finite."""
    a = np.abs(x_nm) - (width_nm - edge_nm) / 2
    t = np.clip(a / max(edge_nm, 1e-12), 0, 1)
    return np.cos(0.5 * np.pi * t) ** 2


def _occupancy(z_nm: np.ndarray, thickness_nm: float, dz_nm: float) -> np.ndarray:
    """Fraction of each z pixel inside the film slab centred on z=0 (sharp
    interfaces, sampled so the thickness need not be a whole number of pixels)."""
    return np.clip((thickness_nm / 2 - np.abs(z_nm)) / dz_nm + 0.5, 0, 1)


def film_object(texture: str, shape: tuple, pixel_nm: tuple, *, period_nm: float,
                thickness_nm: float, G: float, patch_nm: float, patch_edge_nm: float,
                **texture_kw) -> np.ndarray:
    """Complex crystal field of the film on a real-space grid.

    Parameters
    ----------
    shape
        ``(nx, nz)`` or ``(nx, ny, nz)``; the film is centred in the array.
    pixel_nm
        Pixel size per axis (nm).
    G
        Bragg vector length (1/angstrom).
    patch_nm, patch_edge_nm
        Width (FWHM) of the coherent patch along the in-plane axes and the
        width of its soft edges (nm).

    Returns
    -------
    complex128 array of ``shape``.
    """
    coords = [(np.arange(n) - n // 2) * d for n, d in zip(shape, pixel_nm)]
    grids = np.meshgrid(*coords, indexing="ij")
    x, z = grids[0], grids[-1]
    s, u = texture_field(texture, x, z + thickness_nm / 2, period_nm=period_nm,
                         thickness_nm=thickness_nm, **texture_kw)
    envelope = _occupancy(z, thickness_nm, pixel_nm[-1])
    for g in grids[:-1]:  # the coherent patch is bounded along every in-plane axis
        envelope = envelope * _taper(g, patch_nm, patch_edge_nm)
    return envelope * s * np.exp(1j * G * u)


def truth_supercell(texture: str, *, period_nm: float, thickness_nm: float, pixel_nm: tuple,
                    G: float, **texture_kw) -> np.ndarray:
    """One period x the film thickness of the texture, no patch envelope.

    Sampled on ``n_cell = round(period_nm / pixel_x)`` points across the
    period and on every z pixel the film touches (``2 m + 1`` rows centred on
    the film, the interface rows weighted by their occupancy), on the same z
    grid as :func:`film_object`. Returns complex, ``(n_cell, n_film)``.
    """
    dx, dz = pixel_nm[0], pixel_nm[-1]
    n_cell = max(int(round(period_nm / dx)), 2)
    x = np.arange(n_cell) * period_nm / n_cell
    m = supercell_half_rows(thickness_nm, dz)
    z = np.arange(-m, m + 1) * dz
    s, u = texture_field(texture, x[:, None], z[None, :] + thickness_nm / 2,
                         period_nm=period_nm, thickness_nm=thickness_nm, **texture_kw)
    return _occupancy(z, thickness_nm, dz)[None, :] * s * np.exp(1j * G * u)


def simulate_map(texture: str = "laminate", *, shape: tuple = (256, 128),
                 pixel_nm: float | tuple = 1.0, period_nm: float = 12.0,
                 thickness_nm: float = 40.0, displacement_A: float | None = None,
                 G: float = 2 * np.pi * 2 / 3.9, patch_periods: float = 5.0,
                 patch_edge_nm: float | None = None, total_counts: float = 1e9,
                 background: float = 1.0, gap_pixels: int = 3, gap_offset: int | None = None,
                 bad_pixel_fraction: float = 5e-4, seed: int = 0,
                 **texture_kw) -> Simulation:
    """Simulate the reciprocal-space map of a textured film.

    Parameters
    ----------
    texture
        One of {"checkerboard", "laminate", "bent_wave"}.
    shape
        Map size ``(nx, nz)`` or ``(nx, ny, nz)`` (pixels); also the size of
        the real-space grid.
    pixel_nm
        Real-space pixel (nm), one value or one per axis. The q step is
        ``2 pi / (n * pixel)``.
    period_nm, thickness_nm
        Texture period and film thickness (nm).
    displacement_A
        Displacement amplitude (angstrom); a texture default if None.
    G
        Bragg vector length (1/angstrom); default the 002 reflection of a
        3.9 angstrom perovskite cell. The peak sits at ``q_z = G``.
    patch_periods
        Width of the coherent patch in periods.
    patch_edge_nm
        Width of its soft edges (nm); half a period if None.
    total_counts
        Counts in the noise-free map (before background).
    background
        Flat background (counts per pixel).
    gap_pixels
        Width of a detector gap (pixels along x, all z; 0 = none).
    gap_offset
        Distance of the gap from the Bragg peak along x (pixels); by default
        just past the first satellite, where it hides real information.
    bad_pixel_fraction
        Fraction of randomly placed bad pixels (masked; half dead, half hot).
    seed
        Seed of the noise, the bad pixels' positions and nothing else.

    Returns
    -------
    Simulation
    """
    shape = tuple(int(n) for n in shape)
    if len(shape) not in (2, 3):
        raise ParameterError(f"shape must have 2 or 3 axes, got {shape}")
    pixel = tuple(float(p) for p in np.broadcast_to(np.asarray(pixel_nm, float), (len(shape),)))
    if patch_edge_nm is None:
        patch_edge_nm = period_nm / 2
    patch_nm = patch_periods * period_nm
    kw = dict(period_nm=period_nm, thickness_nm=thickness_nm, displacement_A=displacement_A,
              **texture_kw)
    truth = film_object(texture, shape, pixel, G=G, patch_nm=patch_nm,
                        patch_edge_nm=patch_edge_nm, **kw)
    cell = truth_supercell(texture, pixel_nm=pixel, G=G, **kw)

    amplitude = np.fft.fftshift(np.fft.fftn(np.fft.ifftshift(truth)))
    intensity = np.abs(amplitude) ** 2
    intensity *= total_counts / intensity.sum()
    rng = np.random.default_rng(seed)
    counts = rng.poisson(intensity + background).astype(np.float64)

    mask = np.zeros(shape, bool)
    if gap_pixels > 0:
        if gap_offset is None:
            gap_offset = int(round(1.5 * shape[0] * pixel[0] / period_nm))
        start = shape[0] // 2 + gap_offset
        mask[start:start + gap_pixels] = True
        counts[mask] = 0.0  # a gap reads nothing
    n_bad = int(round(bad_pixel_fraction * counts.size))
    if n_bad:
        flat = rng.choice(counts.size, n_bad, replace=False)
        bad = np.unravel_index(flat, shape)
        mask[bad] = True
        hot = rng.random(n_bad) < 0.5
        counts[tuple(b[hot] for b in bad)] = 2 * counts.max()  # hot pixels: wildly wrong
        counts[tuple(b[~hot] for b in bad)] = 0.0  # dead pixels

    # absolute momentum transfer (1/angstrom); 1 nm = 10 angstrom
    q = []
    for i, (n, d) in enumerate(zip(shape, pixel)):
        axis = (np.arange(n) - n // 2) * 2 * np.pi / (n * d * 10.0)
        q.append(axis + (G if i == len(shape) - 1 else 0.0))
    names = ("qx", "qz") if len(shape) == 2 else ("qx", "qy", "qz")
    parameters = dict(texture=texture, shape=list(shape), pixel_nm=list(pixel),
                      period_nm=period_nm, thickness_nm=thickness_nm,
                      displacement_A=displacement_A, G=G, patch_periods=patch_periods,
                      patch_edge_nm=patch_edge_nm, total_counts=total_counts,
                      background=background, gap_pixels=gap_pixels, gap_offset=gap_offset,
                      bad_pixel_fraction=bad_pixel_fraction, seed=seed, **texture_kw)
    rsm = ReciprocalSpaceMap(intensity=counts, mask=mask, q=tuple(q), axis_names=names,
                             out_of_plane_reason="simulated: last axis is out-of-plane",
                             source=f"simulated {texture}", metadata={"simulation": parameters})
    return Simulation(rsm=rsm, truth=truth, truth_supercell=cell, period_nm=period_nm,
                      thickness_nm=thickness_nm, pixel_nm=pixel, G=G, parameters=parameters)

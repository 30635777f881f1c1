"""A small simulated film that phases in about a second (shared by tests)."""
from types import SimpleNamespace

import numpy as np

from nanotools.simulate import simulate_map

SMALL = dict(shape=(128, 64), period_nm=8.0, thickness_nm=16.0, patch_periods=4,
             total_counts=1e8)
FAST_ALGORITHM = "HIO**300 RAAR**150 ER**50"


def small_simulation(texture="laminate", **kw):
    return simulate_map(texture, **{**SMALL, **kw})


def prepared_from_truth(sim, background=1.0):
    """What preprocessing should measure, taken from the simulation's truth, so
    phasing and pattern tests do not depend on the preprocessing stage."""
    return SimpleNamespace(
        intensity=np.clip(sim.rsm.intensity - background, 0, None), mask=sim.rsm.mask,
        pixel_nm=sim.pixel_nm, thickness_nm=sim.thickness_nm,
        patch_nm=sim.parameters["patch_periods"] * sim.period_nm, period_nm=sim.period_nm,
        G=sim.G)


def phasing_family_module():
    """``benchmarks/phasing_family.py`` as a module (its ``run_draw``,
    ``prepared_from_truth`` and ``true_object`` for family draws)."""
    import importlib.util
    from pathlib import Path
    spec = importlib.util.spec_from_file_location(
        "phasing_family", Path(__file__).resolve().parents[1] / "benchmarks" / "phasing_family.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def sharp_slab_map(nx=64, nz=48, dz=2.0, t=23.3, residual=0.3):
    """The continuous transform of a film with sharp interfaces (a patch
    of 40 nm with cos^2 sides, 12 nm stripes of 1 rad, t nm thick) on a map's q grid, Bragg peak
    ``residual`` pixels off the centre along z, as noise-free counts (peak
    1e6); and a function that gives the film's pixel averages on a grid of
    ``factor`` pixels per map pixel along z."""
    dx = 2.0
    qx = (np.arange(nx) - nx // 2) * 2 * np.pi / (nx * dx)
    qz = (np.arange(nz) - nz // 2 - residual) * 2 * np.pi / (nz * dz)
    xf = np.arange(-20, 20, 0.05) + 0.025
    def texture(x):
        return np.cos(np.pi * x / 40) ** 2 * np.exp(1j * np.sin(2 * np.pi * x / 12.0))

    fx = texture(xf)
    amp_x = np.exp(-1j * np.outer(qx, xf)) @ fx
    with np.errstate(invalid="ignore", divide="ignore"):  # the slab, exactly
        amp_z = np.where(qz == 0, t, (1 - np.exp(-1j * qz * t)) / (1j * qz))
    counts = np.abs(amp_x[:, None] * amp_z[None, :]) ** 2
    counts *= 1e6 / counts.max()

    def film(factor):
        n = nz * factor
        sub = (np.arange(8) + 0.5) / 8 - 0.5
        x = ((np.arange(nx) - nx // 2)[:, None] + sub).ravel() * dx
        cols = np.where(np.abs(x) < 20, texture(x), 0)
        z = (np.arange(n) - n // 2) * dz / factor + t / 2  # pixel centres, slab [0, t]
        occupancy = np.clip(np.minimum(z + dz / factor / 2, t) - np.maximum(z - dz / factor / 2, 0),
                            0, None) * factor / dz
        ramp = np.exp(1j * 2 * np.pi * residual * z / (nz * dz))
        return cols.reshape(nx, 8).mean(axis=1)[:, None] * (occupancy * ramp)[None, :]
    return counts, film

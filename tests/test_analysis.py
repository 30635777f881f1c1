"""analysis: ambiguity removal, displacement, strain, PRTF, with known answers."""
import numpy as np
import pytest

from nanotools.analysis import (
    align_supercell,
    compare_supercells,
    displacement,
    fourier_shift,
    prtf,
    strain,
    supercell_maps,
)
from nanotools.simulate import TEXTURES, simulate_map


@pytest.fixture(scope="module")
def cells():
    return {t: simulate_map(t, shape=(128, 64), period_nm=12, thickness_nm=20).truth_supercell
            for t in TEXTURES}


@pytest.mark.parametrize("texture", TEXTURES)
@pytest.mark.parametrize("twin", [False, True])
def test_every_ambiguity_is_removed(cells, texture, twin):
    truth = cells[texture]
    nx, nz = truth.shape
    r = np.roll(truth, 5, axis=0) * 2.5 * np.exp(1.3j)          # shift, scale, global phase
    if twin:
        r = np.conj(r[::-1, ::-1])                               # the twin
    r = r * np.exp(1j * 0.05 * (np.arange(nx)[:, None] - 3))     # Bragg-centre ramp
    aligned, info = align_supercell(r, truth)
    assert info["error"] < 1e-6
    assert np.allclose(aligned, truth, atol=1e-6 * np.abs(truth).max())
    if texture != "checkerboard":  # the checkerboard is its own twin, shifted
        assert info["twin"] == twin
        assert abs(info["shift"][0]) == pytest.approx(5, abs=1e-3)


def test_error_measures_noise_and_difference(cells):
    truth = cells["laminate"]
    rng = np.random.default_rng(0)
    noise = 0.1 * np.linalg.norm(truth) / np.sqrt(truth.size)
    gauss = rng.normal(size=truth.shape) + 1j * rng.normal(size=truth.shape)
    noisy = truth + noise * gauss / np.sqrt(2)
    assert compare_supercells(noisy, truth) == pytest.approx(0.1, abs=0.02)
    assert compare_supercells(cells["bent_wave"], truth) > 0.3


def test_fourier_shift_integer_is_roll(cells):
    c = cells["bent_wave"]
    assert np.allclose(fourier_shift(c, 3), np.roll(c, 3, axis=0), atol=1e-10)
    # along z the cell is padded, so a shift moves rows out rather than wrapping
    shifted = fourier_shift(c, 0, 2)
    assert np.allclose(shifted[:, 2:], c[:, :-2], atol=1e-9)


def test_displacement_and_strain_known_field():
    G = 3.2  # 1/angstrom
    x = np.arange(12)[:, None]
    z = np.arange(21)[None, :]
    u = 0.2 * np.sin(2 * np.pi * x / 12) + 0.01 * (z - 10)        # angstrom
    cell = np.exp(1j * G * u) * np.ones((12, 21))
    d = displacement(cell, G)
    assert np.allclose(d - d.mean(), u - u.mean(), atol=1e-9)
    ezz, exz = strain(cell, G, (1.0, 1.0))                          # 1 nm pixels = 10 angstrom
    assert np.allclose(ezz, 0.01 / 10, rtol=1e-9)                   # du/dz: 0.01 A per 10 A
    expected_exz = 0.2 * np.sin(2 * np.pi / 12) / 10 * np.cos(2 * np.pi * x / 12) * np.ones((1, 21))
    assert np.allclose(exz, expected_exz, atol=1e-9)  # central difference of a sine: exact
    maps = supercell_maps(cell, G=G, pixel_nm=(1.0, 1.0))
    assert np.allclose(maps.amplitude, 1) and maps.z_nm[10] == 0


def test_prtf_is_one_for_identical_cells_and_low_for_random(cells):
    c = cells["laminate"]
    q, curve, res = prtf(np.stack([c] * 5), pixel_nm=(1.0, 1.0))
    assert np.allclose(curve[np.isfinite(curve)], 1)
    # resolution at the sampling limit (2 pixels; 2.4 nm if the Nyquist column is empty)
    assert res["x_nm"] <= 2.5 and res["z_nm"] <= 2.5
    rng = np.random.default_rng(1)
    random = np.exp(2j * np.pi * rng.random((40,) + c.shape))
    q, curve, res = prtf(random, pixel_nm=(1.0, 1.0))
    assert np.nanmedian(curve) < 0.3

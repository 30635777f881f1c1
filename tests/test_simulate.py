"""simulate: the forward model's known properties."""
import numpy as np
import pytest

from nanotools.errors import ParameterError
from nanotools.simulate import TEXTURES, simulate_map, texture_field


@pytest.mark.parametrize("texture", TEXTURES)
def test_satellites_sit_at_the_period(texture):
    sim = simulate_map(texture, shape=(256, 128), period_nm=12.8, bad_pixel_fraction=0)
    profile = np.where(sim.rsm.mask, 0, sim.rsm.intensity).sum(axis=1)
    n = 256
    sat = n // 2 + int(round(n * 1.0 / 12.8))  # 20 pixels from the peak for 1 nm pixels
    window = profile[sat - 3:sat + 4]
    assert np.argmax(window) == 3, "first satellite not at 2 pi / period"


def test_map_is_squared_modulus_of_truth():
    sim = simulate_map("laminate", shape=(64, 32), period_nm=8, thickness_nm=10,
                       total_counts=1e12, background=0, gap_pixels=0, bad_pixel_fraction=0)
    model = np.abs(np.fft.fftshift(np.fft.fftn(np.fft.ifftshift(sim.truth)))) ** 2
    model *= 1e12 / model.sum()
    strong = model > 1e6  # Poisson noise below 0.1 %
    assert np.allclose(sim.rsm.intensity[strong], model[strong], rtol=0.02)


def test_noise_mask_and_axes():
    sim = simulate_map("bent_wave", shape=(128, 64), period_nm=8, thickness_nm=16,
                       gap_pixels=3, gap_offset=20, seed=3)
    rsm = sim.rsm
    assert rsm.mask[84:87].all() and not rsm.mask[83].all() and not rsm.mask[87].all()
    assert (rsm.intensity[84:87] == 0).all()  # a gap reads nothing
    # q axes: absolute, increasing, the peak (index n//2) at q_z = G
    assert np.isclose(rsm.q[1][32], sim.G) and np.isclose(rsm.q[0][64], 0.0)
    assert np.allclose(np.diff(rsm.q[0]), 2 * np.pi / (128 * 10.0))
    again = simulate_map("bent_wave", shape=(128, 64), period_nm=8, thickness_nm=16,
                         gap_pixels=3, gap_offset=20, seed=3)
    assert np.array_equal(again.rsm.intensity, rsm.intensity)


def test_truth_supercell_tiles_the_film():
    sim = simulate_map("laminate", shape=(128, 64), period_nm=8, thickness_nm=16,
                       patch_periods=6)
    cell = sim.truth_supercell
    assert cell.shape == (8, 17)  # 8 samples per period; 16 nm film -> rows -8..8
    centre = sim.truth[64:72, 32 - 8:32 + 9]  # x = 0..7 nm, inside the flat top of the patch
    assert np.allclose(centre, cell, atol=1e-12)


def test_checkerboard_has_layer_and_lateral_modulation():
    s, u = texture_field("checkerboard", np.arange(12)[:, None], np.arange(40)[None, :],
                         period_nm=12, thickness_nm=40, displacement_A=0.3)
    assert np.isclose(np.abs(u).max(), 0.3, atol=0.01)
    assert np.allclose(u[0], 0) and s.std() > 0


def test_3d_map():
    sim = simulate_map("bent_wave", shape=(64, 16, 32), period_nm=8, thickness_nm=10,
                       patch_periods=4)
    assert sim.rsm.intensity.shape == (64, 16, 32) and len(sim.rsm.q) == 3
    assert sim.truth.shape == (64, 16, 32)


def test_bad_texture_and_shape():
    with pytest.raises(ParameterError, match="unknown texture"):
        simulate_map("spaghetti")
    with pytest.raises(ParameterError, match="2 or 3 axes"):
        simulate_map(shape=(8,))

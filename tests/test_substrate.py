"""A substrate's truncation rod subtracted for phasing
(:func:`nanotools.preprocess.subtract_substrate_rod`): the model against the
truth's rod, in 2-D on a family draw and in 3-D on a synthetic map, the
refusals, and what ``prepare`` does with it."""
import numpy as np
import pytest

from nanotools.io import ReciprocalSpaceMap
from nanotools.preprocess import prepare, specular_rod_mask, subtract_substrate_rod
from nanotools.preprocess.substrate import _lorentzian_pixels
from nanotools.simulate.family import draw_family_member


def test_rod_of_a_family_draw_matches_the_truth():
    """Draw 41 (one patch, a substrate 121 times the film's peak 2.8 fringes
    below it): the rod modelled from the noisy map holds the true rod's
    counts over its columns to 0.3 % (measured 0.08 %); on the pixels it
    keeps (a fifth to nine tenths of the columns' pixels) the model is off
    by under 1 % of the film's expected counts (median; measured 0.1 %);
    the substrate peak's pixel is masked, and nothing off the columns
    changes."""
    member = draw_family_member(41)
    film = draw_family_member(41, substrate=False).expected
    true_rod = member.expected - film
    intensity = np.asarray(member.rsm.intensity, float)
    mask = np.asarray(member.rsm.mask, bool)
    rod_columns = specular_rod_mask(intensity, mask, member.parameters["bragg_peak_px"][:1])[0]
    out = subtract_substrate_rod(intensity, mask, rod_columns)
    assert out.subtracted and "subtracted" in out.note
    found = rod_columns.any(axis=-1)
    columns = found | np.roll(found, 1) | np.roll(found, -1)     # one more each side
    assert not out.rod[~columns].any()
    assert out.rod.sum() == pytest.approx(true_rod[columns].sum(), rel=0.003)
    kept = ~out.mask[columns] & ~mask[columns]
    assert 0.2 < kept.mean() < 0.9
    off = np.abs(out.rod[columns] - true_rod[columns])[kept] / np.maximum(film[columns][kept], 1)
    assert np.median(off) < 0.01
    assert out.mask[np.unravel_index(np.argmax(true_rod), true_rod.shape)]
    assert np.array_equal(out.intensity[~columns], np.where(mask, 0, intensity)[~columns])
    assert not (out.mask & ~mask)[~columns].any()


def test_rod_in_three_dimensions():
    """A 3-D map: a film peak (Gaussian across, sinc**2 fringes along q_z)
    and a substrate rod 200 times brighter 3 fringes above it, Gaussian of
    0.5 pixel across in x and y, Lorentzian along q_z. Without noise the
    model holds the rod's counts to 0.5 % (measured 0.05 %) and leaves the
    film within 2 % (median over the kept pixels of the columns; measured
    0.4 %)."""
    nx, ny, nz = 32, 32, 96
    x, y, z = np.meshgrid(np.arange(nx) - 16.0, np.arange(ny) - 16.0, np.arange(nz),
                          indexing="ij")
    film = 1e5 * np.exp(-(x ** 2 + y ** 2) / (2 * 2.5 ** 2)) * np.sinc((z - 48) / 8.0) ** 2 + 5.0
    across = np.exp(-(x ** 2 + y ** 2) / (2 * 0.5 ** 2))
    rod = 200 * 1e5 * across * _lorentzian_pixels(z, 72.3, 0.35) / _lorentzian_pixels(0, 0, 0.35)
    intensity = film + rod
    mask = np.zeros(intensity.shape, bool)
    rod_columns = specular_rod_mask(intensity, mask, (16, 16))[0]
    assert rod_columns.any()
    out = subtract_substrate_rod(intensity, mask, rod_columns)
    assert out.subtracted
    columns = out.rod.any(axis=-1)
    assert out.rod.sum() == pytest.approx(rod[columns].sum(), rel=0.005)
    kept = ~out.mask[columns]
    assert kept.mean() > 0.3
    left = np.abs(out.intensity[columns] - film[columns])[kept] / film[columns][kept]
    assert np.median(left) < 0.02


def test_rod_at_the_edge_is_masked_not_subtracted():
    """Rod columns within two columns of the map's edge leave no film beside
    them to measure: nothing is subtracted, the columns are masked."""
    intensity = np.ones((16, 32))
    rod_columns = np.zeros(intensity.shape, bool)
    rod_columns[1] = True
    out = subtract_substrate_rod(intensity, None, rod_columns)
    assert not out.subtracted and "edge" in out.note
    assert np.array_equal(out.mask, rod_columns) and not out.rod.any()


def test_prepare_subtracts_the_rod_and_measures_as_before():
    """``prepare`` on draw 41: the same Bragg peak, period, thickness and
    patch as with the rod's columns masked (the measurements keep the mask),
    but the window phasing gets masks only part of the specular columns:
    the three under the substrate's peak (0.94-0.96 of their pixels, where
    the rod outweighs the film), a tenth of the two beside them and nothing
    more (the map's own bad pixels), against 7 whole columns (measured:
    1 281 pixels masked in the window against 1 748)."""
    rsm = draw_family_member(41).rsm
    subtracted = prepare(rsm)
    columns = prepare(rsm, mask_specular="columns")
    for name in ("peak_index", "period_nm", "thickness_nm", "patch_nm", "background"):
        assert getattr(subtracted, name) == getattr(columns, name), name
    assert any(n.startswith("for phasing, substrate rod subtracted") for n in subtracted.notes)
    assert any(n.startswith("for phasing, the substrate rod's columns stay masked")
               for n in columns.notes)
    centre = subtracted.shape[0] // 2
    share = [subtracted.mask[centre + d].mean() for d in range(-3, 4)]
    assert all(columns.mask[centre + d].all() for d in range(-3, 4))
    assert min(share[2:5]) > 0.9 and max(share[1], share[5]) < 0.15
    assert max(share[0], share[6]) < 0.06
    # beyond the 7 columns, only a few pixels of the model's outer columns
    # where the film is near zero (measured: 4)
    assert (subtracted.mask & ~columns.mask).sum() <= 10
    assert subtracted.mask.sum() < 0.76 * columns.mask.sum()
    with pytest.raises(Exception, match="auto, columns, yes or no"):
        prepare(rsm, mask_specular="subtract")


def test_synthetic_map_keeps_its_film_under_the_rod():
    """The map of ``test_preprocess``'s substrate test built by hand (a
    laminate, a substrate 100 times its peak 3 fringes above): the zeroth
    order's peak pixels, masked with whole columns, are measured after the
    subtraction, within 5 % of the film alone (Poisson noise of the rod
    included)."""
    from nanotools.simulate import simulate_map

    sim = simulate_map("laminate", thickness_nm=24.0)
    nx, nz = sim.rsm.shape
    z = np.arange(nz)
    spacing = nz * sim.pixel_nm[-1] / sim.thickness_nm
    zs = nz // 2 + 3.0 * spacing
    rod = _lorentzian_pixels(z, zs, 0.4)
    rod = rod / rod.max() * 100 * sim.rsm.intensity.max()
    across = np.exp(-0.5 * ((np.arange(nx) - nx // 2) / 0.5) ** 2)
    counts = sim.rsm.intensity + np.random.default_rng(5).poisson(np.outer(across, rod))
    rsm = ReciprocalSpaceMap(intensity=counts, mask=sim.rsm.mask, q=sim.rsm.q, source="synthetic")
    prep = prepare(rsm)
    c = prep.shape[0] // 2
    zc = prep.shape[1] // 2
    assert not prep.mask[c, zc - 1:zc + 2].any()
    film = np.asarray(sim.rsm.intensity, float)[nx // 2, nz // 2 - 1:nz // 2 + 2] - prep.background
    assert prep.intensity[c, zc - 1:zc + 2] == pytest.approx(film, rel=0.05)


def test_prepare_in_three_dimensions_with_a_substrate():
    """A 3-D laminate (96 x 32 x 64) with a substrate 100 times its peak 3
    fringes above it on the specular line: the rod is subtracted, the centre
    column keeps part of its pixels, and the out-of-plane Bragg position is
    the film's (measured 31.95 for 32; the zeroth order's neighbourhood
    taken over the whole y range beside the masked rod had put it at 29.84,
    the patch's tails)."""
    from nanotools.simulate import simulate_map

    sim = simulate_map("laminate", shape=(96, 32, 64), thickness_nm=24.0, period_nm=12.0)
    intensity = np.asarray(sim.rsm.intensity, float)
    nx, ny, nz = intensity.shape
    z = np.arange(nz)
    zs = nz // 2 + 3.0 * nz * sim.pixel_nm[-1] / sim.thickness_nm
    rod = _lorentzian_pixels(z, zs, 0.4)
    rod = rod / rod.max() * 100 * intensity.max()
    x, y = np.arange(nx) - nx // 2, np.arange(ny) - ny // 2
    across = np.exp(-0.5 * (x[:, None] ** 2 + y[None, :] ** 2) / 0.5 ** 2)
    counts = intensity + np.random.default_rng(1).poisson(across[..., None] * rod)
    prep = prepare(ReciprocalSpaceMap(intensity=counts, mask=sim.rsm.mask, q=sim.rsm.q,
                                      source="3-D with substrate"))
    assert any(n.startswith("for phasing, substrate rod subtracted") for n in prep.notes)
    assert prep.peak_index == pytest.approx((48, 16, 32), abs=0.2)
    peak_note = next(n for n in prep.notes if n.startswith("Bragg peak"))
    assert peak_note.count("q = 0 on this absolute axis") == 1  # said once for both axes
    assert "(both in-plane axes)" in peak_note
    assert prep.thickness_nm == pytest.approx(24.0, rel=0.02)
    centre = tuple(n // 2 for n in prep.shape[:-1])
    assert 0.5 < prep.mask[centre].mean() < 1

"""The supercell refinement against the whole map (nanotools.refine)."""
from types import SimpleNamespace

import numpy as np
import pytest

from nanotools.analysis import compare_supercells
from nanotools.patterns import find_supercells
from nanotools.refine import SupercellModel, refine_supercell

from _small import prepared_from_truth, small_simulation


def _synthetic(alpha: float, amplitude_contrast: float = 0.0, shape=(96, 48)):
    """A map made by the model itself: a displacement wave (with optional
    amplitude contrast) of 8 pixels per period through a soft patch."""
    nx, nz = shape
    n_cell, n_rows = 8, 13
    x = np.arange(n_cell) / n_cell
    z = np.linspace(-1, 1, n_rows)
    phase = 1.2 * np.sin(2 * np.pi * x)[:, None] * (1 + 0.3 * z)[None, :]
    amp = 1 + amplitude_contrast * np.cos(2 * np.pi * x)[:, None] * np.ones(n_rows)[None, :]
    cell = amp * np.exp(1j * phase)
    prep = SimpleNamespace(intensity=np.zeros(shape), mask=np.zeros(shape, bool),
                           pixel_nm=(1.0, 1.0), period_nm=8.0, patch_nm=40.0,
                           peak_residual=(0.0, 0.0))
    cols = (nx // 2 - 26, nx // 2 + 27)
    model = SupercellModel(prep, n_cell, n_rows, cols)
    xs = (np.arange(*cols) - nx // 2).astype(float)
    w = np.clip((26 - np.abs(xs)) / 6, 0, 1)
    intensity = model.intensity(model.harmonics(cell), w, 1e6 / model.n_cell, alpha)
    prep.intensity = np.random.default_rng(0).poisson(intensity).astype(float)
    return prep, cell


def test_gradient_matches_finite_differences():
    prep, cell = _synthetic(0.6)
    model = SupercellModel(prep, *cell.shape, (10, 86))
    rng = np.random.default_rng(1)
    c = model.harmonics(cell) * 0.9
    w = rng.random(76)
    L, dc, dw, ds, da = model.loss(c, w, 2.0, 0.3)
    for _ in range(3):
        step_c = 1e-6 * (rng.standard_normal(c.shape) + 1j * rng.standard_normal(c.shape))
        step_w = 1e-6 * rng.standard_normal(w.shape)
        moved = model.loss(c + step_c, w + step_w, 2.0 + 1e-6, 0.3 + 1e-6)[0]
        predicted = np.real(np.vdot(dc, step_c)) + dw @ step_w + (ds + da) * 1e-6
        assert moved - L == pytest.approx(predicted, rel=1e-4)


def test_refinement_recovers_a_blurred_noisy_average():
    # an average of misaligned cells loses its high harmonics; the data keep them
    sim = small_simulation("bent_wave")
    truth = sim.truth_supercell
    k = np.fft.fftfreq(truth.shape[0]) * truth.shape[0]
    start = np.fft.ifft(np.fft.fft(truth, axis=0) * np.exp(-(k / 2.5) ** 2 / 2)[:, None], axis=0)
    rng = np.random.default_rng(1)
    start = start + 0.05 * np.abs(truth).max() * (rng.standard_normal(truth.shape)
                                                  + 1j * rng.standard_normal(truth.shape))
    assert compare_supercells(start, truth) > 0.075
    refined = refine_supercell(prepared_from_truth(sim), start)
    assert compare_supercells(refined.cell, truth) < 0.01  # measured 0.002
    assert refined.coherence > 0.95  # one coherent patch (measured 1.00)
    assert refined.misfit < 0.5 * refined.start_misfit
    assert refined.prior_kept  # a pure displacement wave


def test_incoherent_map_is_fitted_as_an_ensemble():
    prep, cell = _synthetic(0.0)
    refined = refine_supercell(prep, cell * np.exp(0.2j), refine_iterations=150)
    assert refined.coherence < 0.1
    assert "incoherent ensemble" in refined.notes[0]


def test_amplitude_contrast_rules_the_prior_out():
    prep, cell = _synthetic(1.0, amplitude_contrast=0.2)
    refined = refine_supercell(prep, cell, refine_iterations=150)
    assert not refined.prior_kept
    assert refined.prior_misfit_ratio > 1.5  # measured 1.71
    assert "dropped" in refined.notes[1]
    # and where the amplitude is even, the same test keeps it
    prep, cell = _synthetic(1.0)
    refined = refine_supercell(prep, cell, refine_iterations=150)
    assert refined.prior_kept and compare_supercells(refined.cell, cell) < 0.005  # 0.0015


def test_refinement_rejects_3d_maps():
    prep = SimpleNamespace(intensity=np.ones((8, 8, 8)))
    with pytest.raises(Exception, match="2-D"):
        refine_supercell(prep, np.ones((4, 3), complex))


def test_pattern_recognition_refines_the_chosen_average_on_request():
    """Runs holding a blurred copy of the truth (as stagnated runs lose the
    high harmonics): the plain average keeps the blur, the refined one is
    the truth; the plain average stays in ``average``."""
    sim = small_simulation("bent_wave")
    k = np.fft.fftfreq(sim.truth.shape[0]) * sim.truth.shape[0] / 16  # harmonics of the period
    blurred = np.fft.ifft(np.fft.fft(sim.truth, axis=0) * np.exp(-(k / 2.0) ** 2 / 2)[:, None],
                          axis=0)
    runs = np.array([np.roll(blurred, s, axis=0) for s in (0, 3, 5, 11)])
    phasing = SimpleNamespace(objects=runs, fourier_error=np.full(4, 0.05),
                              start_indices=np.arange(4))
    prep = prepared_from_truth(sim)
    off = find_supercells(phasing, prep, n_clusters=1, best_fraction=1.0, refine_iterations=0)
    assert off.refinement is None and off.best.average is None
    plain = compare_supercells(off.best.mean, sim.truth_supercell)
    on = find_supercells(phasing, prep, n_clusters=1, best_fraction=1.0, refine_iterations=300)
    assert on.refinement is not None
    assert np.array_equal(on.best.average, off.best.mean)
    refined = compare_supercells(on.best.mean, sim.truth_supercell)
    assert plain > 0.05 and refined < 0.3 * plain
    assert any("refined against the map" in n for n in on.notes)
    assert "refined against the map" in on.chosen_reason


def test_pixel_averages_are_refined_against_the_damped_modulus():
    """A map whose film has the synthetic cell as its pixel averages (the
    model's intensity divided by pixel_transfer squared): refined as pixel
    averages, as phasing makes them by default, the cell stays on the truth
    (0.002); as point samples it moves 0.20 off it."""
    from nanotools.phasing import pixel_transfer
    prep, cell = _synthetic(1.0)
    prep.intensity = np.random.default_rng(2).poisson(
        _synthetic_intensity(prep, cell) / pixel_transfer(prep.intensity.shape) ** 2
    ).astype(float)
    errors = [compare_supercells(refine_supercell(prep, cell, refine_iterations=150,
                                                  pixel_average=pixels).cell, cell)
              for pixels in (True, False)]
    assert errors[0] < 0.005 and errors[1] > 0.15, errors  # measured 0.002, 0.203


def _synthetic_intensity(prep, cell):
    """The noise-free intensity of :func:`_synthetic`'s model (alpha 1)."""
    nx = prep.intensity.shape[0]
    cols = (nx // 2 - 26, nx // 2 + 27)
    model = SupercellModel(prep, *cell.shape, cols)
    xs = (np.arange(*cols) - nx // 2).astype(float)
    w = np.clip((26 - np.abs(xs)) / 6, 0, 1)
    return model.intensity(model.harmonics(cell), w, 1e6 / model.n_cell, 1.0)

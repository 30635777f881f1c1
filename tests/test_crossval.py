"""The z grid chosen by cross-validation (``nanotools.crossval``, ``-p z_subpixels 0``)."""
import numpy as np
import pytest

from nanotools.crossval import FREE_MISFIT_GAIN, choose_z_subpixels, free_misfit, held_out_pixels
from nanotools.params import validate
from nanotools.pipeline import choose_z_grid
from nanotools.preprocess import PreparedMap
from nanotools.trust import model_intensity

from _small import sharp_slab_map


def _prepared(counts: np.ndarray) -> PreparedMap:
    """The slab map of ``sharp_slab_map`` as preprocessing would hand it on."""
    nx, nz = counts.shape
    return PreparedMap(intensity=counts, mask=np.zeros(counts.shape, bool), q_step=(0.1, 0.1),
                       G=3.0, pixel_nm=(2.0, 2.0), period_nm=12.0, period_err_nm=0.0,
                       thickness_nm=23.3, thickness_err_nm=0.0, patch_nm=30.0,
                       patch_edge_nm=10.0, background=0.0, peak_index=(nx // 2, nz // 2))


def _scaled(obj: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """``obj`` scaled so that its intensity on the measured rows sums to the counts'."""
    model = model_intensity(obj, pixel_average=True)
    first = model.shape[-1] // 2 - counts.shape[-1] // 2
    return obj * np.sqrt(counts.sum() / model[..., first:first + counts.shape[-1]].sum())


def test_held_out_pixels_are_a_share_of_the_measured():
    mask = np.zeros((64, 48), bool)
    mask[:, 20:23] = True  # a detector gap
    held = held_out_pixels(mask, seed=3)
    assert not (held & mask).any()
    assert held.sum() / (~mask).sum() == pytest.approx(0.05, abs=0.01)
    assert np.array_equal(held, held_out_pixels(mask, seed=3))
    assert not np.array_equal(held, held_out_pixels(mask, seed=4))


def test_free_misfit_scores_the_true_film():
    """A map made on its own grid is predicted exactly by the film's pixel
    averages; a film with sharp interfaces is not, and twice as many pixels
    along z (the measured rows in the middle of the finer grid's transform)
    predict it far better: 114.7 and 15.4 per held-out pixel measured
    (15.7 three times finer)."""
    counts, film = sharp_slab_map()
    held = held_out_pixels(np.zeros(counts.shape, bool), seed=0)
    own = model_intensity(film(1), pixel_average=True)
    own *= counts.sum() / own.sum()
    exact = free_misfit(_scaled(film(1), own)[None], _prepared(own), held)
    assert exact[0] < 1e-12
    sharp = {f: free_misfit(_scaled(film(f), counts)[None], _prepared(counts), held, factor=f)[0]
             for f in (1, 2)}
    assert sharp[1] == pytest.approx(114.7, rel=0.01)
    assert sharp[2] == pytest.approx(15.4, rel=0.01)


@pytest.mark.parametrize("seed", [0, 1])
def test_grid_check_takes_the_finer_grid_for_a_sharp_film(seed):
    """Counted with Poisson noise, the sharp film's map is predicted 6.3 and
    4.0 times better on the finer grid (seeds 0 and 1: free misfit 11.6 ->
    1.8, 6.7 -> 1.7 per held-out pixel), so it is taken."""
    counts, _ = sharp_slab_map()
    noisy = np.random.default_rng(seed).poisson(counts).astype(float)
    choice = choose_z_subpixels(_prepared(noisy), seed=seed, n_starts=32)
    assert choice.factor == 2
    assert choice.free_misfit[2] < 0.3 * choice.free_misfit[1]
    assert choice.free_misfit[2] < 2.5
    assert choice.starts == 8 and choice.held_out == pytest.approx(0.05 * counts.size, rel=0.2)
    assert f"below {FREE_MISFIT_GAIN:g} x" in choice.note


def test_pipeline_refines_the_grid_it_chose():
    """``-p z_subpixels 0`` in the pipeline: the prepared map on the chosen
    grid, with the check's numbers in its notes."""
    counts, _ = sharp_slab_map()
    noisy = np.random.default_rng(0).poisson(counts).astype(float)
    params = validate({"z_subpixels": 0})
    out = choose_z_grid(_prepared(noisy), params, seed=0, progress=False)
    assert out.intensity.shape == (64, 96)
    assert out.pixel_nm == (2.0, 1.0)
    assert out.mask[:, :24].all() and not out.mask[:, 24:72].any()
    assert any("cross-validation" in n for n in out.notes)
    assert any("sit in 96" in n for n in out.notes)

"""End to end: a simulated texture recovered from its file within a stated error."""
import pytest

from nanotools.analysis import compare_supercells
from nanotools.io import read_result, write_map
from nanotools.patterns import find_supercells
from nanotools.phasing import phase_retrieval
from nanotools.pipeline import reconstruct_file
from nanotools.preprocess import prepare
from nanotools.simulate import simulate_map

from _small import FAST_ALGORITHM, small_simulation

# Measured (seed 0 is what the test runs; seeds 0-3 give the spread a change
# of random draws brings; NANOTOOLS_FFTW_PLANNER=estimate, AMD EPYC,
# 2026-12-07, after the amplitude pull was vectorised, a round-off change):
# laminate 0.037 (0.032-0.064), bent_wave 0.054 (0.030-0.064). Before it
# (Intel Xeon): laminate 0.053 (0.036-0.072), bent_wave 0.044
# (0.030-0.044). Before the background's decay laws were compared on equal
# weights (this map's true background is 1 count/pixel; it is now
# estimated at 1.31 for the laminate, 0 before, and 1.02 for the bent
# wave, 1.12 before): laminate 0.035-0.057, bent_wave 0.028-0.084.
# Bound: the worst of seeds 0-3 plus 15 %, so a change that only redraws
# the starts passes and a real loss of quality does not.
# Reproduce: this test with seed=s in reconstruct_file, s = 0..3.
# The tuned simulator's map is the exact DFT of the grid its truth lives on
# (point samples of a band-limited film), so these runs use the model that
# matches it, pixel_average false; at the default (pixel averages, for maps
# that are the Fourier transform of a real film) the laminate was 0.058,
# the bent wave 0.050 before it (tests/test_phasing.py tests pixel averages on a
# family draw).
SMALL_BOUND = {"laminate": 0.074, "bent_wave": 0.074}


@pytest.mark.parametrize("texture", ["laminate", "bent_wave"])
def test_small_film_recovered_from_its_file(tmp_path, texture):
    """File -> reconstruct_file -> result.h5: the chosen supercell matches the
    truth; period and thickness are measured, not given. Measured complex
    error at seed 0: laminate 0.037, bent_wave 0.054 (bounds above)."""
    sim = small_simulation(texture)
    src = write_map(tmp_path / "map.h5", sim.rsm)
    params = dict(n_starts=8, algorithm=FAST_ALGORITHM, n_clusters=2, pixel_average=False)
    reconstruct_file(src, tmp_path / "result.h5", params, seed=0, progress=False)
    res = read_result(tmp_path / "result.h5")
    assert res["supercell"]["period_nm"] == pytest.approx(8.0, rel=0.01)
    error = compare_supercells(res["supercell"]["complex_field"], sim.truth_supercell)
    assert error < SMALL_BOUND[texture]


def test_3d_map_is_imaged_in_its_cross_section():
    """Measured complex error at seed 0: 0.054 (seeds 0-2: 0.054-0.074);
    bound: the worst plus 15 %."""
    sim = simulate_map("bent_wave", shape=(64, 24, 32), pixel_nm=(1.0, 3.0, 1.0),
                       period_nm=8, thickness_nm=10, patch_periods=4, total_counts=1e8)
    prep = prepare(sim.rsm)
    runs = phase_retrieval(prep, n_starts=4, seed=0, algorithm="HIO**200 RAAR**100 ER**50")
    assert runs.objects.shape == (4, 64, 24, 32)
    cells = find_supercells(runs, prep, n_clusters=1, best_fraction=0.5)
    truth = sim.truth_supercell
    assert compare_supercells(cells.best.mean, truth) < 0.085


@pytest.mark.slow
@pytest.mark.parametrize("texture", ["checkerboard", "laminate", "bent_wave"])
def test_issue_size_maps_within_bound(tmp_path, texture):
    """The imaging issue's map (about a minute per texture): defaults, seed 0.
    Measured complex error (`make quality`, 2026-11-25): checkerboard 0.022,
    laminate 0.044, bent_wave 0.015; bounds about 1.5 x that, far inside the
    issue's acceptance bound of 0.20, so a loss of quality shows."""
    from benchmarks_quality import run_texture
    r = run_texture(texture, seed=0, params={}, folder=tmp_path)
    assert r["error"] <= {"checkerboard": 0.035, "laminate": 0.065, "bent_wave": 0.03}[texture]

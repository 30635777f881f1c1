"""The validation family's generator: reproducible, and its maps hold what
their parameters say (fast; the pipeline on family draws is further down)."""
import json

import numpy as np
import pytest

from nanotools.analysis import compare_supercells
from nanotools.errors import ParameterError
from nanotools.simulate import draw_family_member
from nanotools.simulate.family import family_supercell, order_phase_ambiguity


def _fwhm(y):
    """Full width at half maximum (pixels, linear interpolation) of a peak
    sitting on the minimum of its window."""
    y = np.asarray(y, float) - np.min(y)
    i = int(np.argmax(y))
    h = y[i] / 2
    left, right = i, i
    while left > 0 and y[left - 1] >= h:
        left -= 1
    while right < len(y) - 1 and y[right + 1] >= h:
        right += 1
    lo = left - 1 + (h - y[left - 1]) / (y[left] - y[left - 1]) if left > 0 else left
    hi = right + (y[right] - h) / (y[right] - y[right + 1]) if right < len(y) - 1 else right
    return hi - lo


def _order_window(member, order):
    """Columns of satellite ``order`` (within a quarter spacing of it)."""
    p = member.parameters
    c = p["bragg_peak_px"][0] + order * p["satellite_spacing_px"]
    half = p["satellite_spacing_px"] / 4
    return slice(int(np.ceil(c - half)), int(np.floor(c + half)) + 1)


def test_same_seed_same_map_and_truth():
    a, b = draw_family_member(7), draw_family_member(7)
    assert np.array_equal(a.rsm.intensity, b.rsm.intensity)
    assert np.array_equal(a.rsm.mask, b.rsm.mask)
    assert np.array_equal(a.truth_supercell, b.truth_supercell)
    assert a.parameters == b.parameters
    assert json.loads(a.rsm.metadata["family_parameters_json"]) == a.parameters
    assert not np.array_equal(a.rsm.intensity, draw_family_member(8).rsm.intensity)


def test_patch_amplitude_is_the_film_and_ensembles_have_none():
    """Seed 31: one patch, no substrate, no background: the noise-free map is
    exactly the squared modulus of the complex amplitude. Seed 33 is an
    ensemble, which no single amplitude explains."""
    patch = draw_family_member(31)
    assert patch.parameters["coherence"]["model"] == "patch"
    assert patch.parameters["substrate"] is None
    assert patch.parameters["background"]["kind"] == "none"
    assert patch.amplitude.shape == patch.rsm.intensity.shape
    np.testing.assert_allclose(np.abs(patch.amplitude) ** 2, patch.expected, rtol=1e-12)
    assert draw_family_member(33).amplitude is None


def test_bad_seed_and_3d_are_refused():
    with pytest.raises(ParameterError):
        draw_family_member(-1)
    with pytest.raises(ParameterError):
        draw_family_member(0, ndim=3)


@pytest.mark.parametrize("seed", [0, 1, 2, 5])
def test_truth_has_the_drawn_period_and_thickness(seed):
    """The truth spans one period (n_cell * dx) and its occupied rows add up to
    the drawn thickness; the map's axes put qx = 0 and qz = G between pixels
    where the parameters say."""
    m = draw_family_member(seed)
    p = m.parameters
    n_cell, n_rows = m.truth_supercell.shape
    assert n_cell * m.pixel_nm[0] == pytest.approx(p["period_nm"], rel=1e-12)
    assert m.period_nm == p["period_nm"] and 6 <= m.period_nm <= 20
    # the texture with s = 1 and no phase: the rows' occupancies add up to t / dz
    flat = {**p["texture"], "kind": "harmonic", "harmonics": [], "phase_amplitude_rad": 0.0}
    occupancy = np.abs(family_supercell(flat, n_cell=n_cell, dz_nm=m.pixel_nm[1]))[0]
    assert len(occupancy) == n_rows
    assert occupancy.sum() * m.pixel_nm[1] == pytest.approx(p["thickness_nm"], rel=1e-9)
    assert 10 <= m.thickness_nm <= 50
    qx, qz = m.rsm.q
    px, pz = p["bragg_peak_px"]
    assert np.interp(px, np.arange(len(qx)), qx) == pytest.approx(0.0, abs=1e-12)
    assert np.interp(pz, np.arange(len(qz)), qz) == pytest.approx(m.G, rel=1e-12)
    assert px != round(px) and pz != round(pz)


def test_truth_on_a_finer_grid_is_the_same_texture():
    """The truth resampled on another grid (what the benchmark does to match a
    reconstruction) agrees with itself: 2x finer, decimated back, error 0.013
    on this laminate (pixel averages of a sharp wall differ a little)."""
    m = draw_family_member(2)
    n_cell, _ = m.truth_supercell.shape
    fine = m.supercell(2 * n_cell, m.pixel_nm[1])
    assert compare_supercells(fine[::2], m.truth_supercell) < 0.03


@pytest.mark.parametrize("seed", [2, 16, 21])
def test_strong_phase_draws_have_the_first_satellite_brighter(seed):
    """Draws flagged j0_below_j1 (and without substrate) show it in the map:
    the brightest pixel of order +1 or -1 outshines that of order 0."""
    m = draw_family_member(seed)
    p = m.parameters
    assert p["j0_below_j1"] and p["substrate"] is None
    assert p["texture"]["phase_amplitude_rad"] > 1.43
    peak = {n: m.expected[_order_window(m, n)].max() for n in (-1, 0, 1)}
    assert max(peak[-1], peak[1]) > 1.2 * peak[0]


def test_about_a_quarter_of_draws_are_strong_phase():
    # the draw does not depend on the map size: small maps make this quick
    flags = [draw_family_member(s, shape=(32, 16)).parameters["strong_phase"] for s in range(40)]
    assert 5 <= sum(flags) <= 15


@pytest.mark.parametrize("seed", [1, 4, 7])
def test_substrate_peak_sits_on_the_specular_line(seed):
    """The brightest unmasked pixel of a substrate draw is on qx = 0 (within
    a pixel) and the rod keeps that column bright along all of qz."""
    m = draw_family_member(seed)
    assert m.parameters["substrate"] is not None
    counts = np.where(m.rsm.mask, 0, m.rsm.intensity)
    i, j = np.unravel_index(np.argmax(counts), counts.shape)
    qx = m.rsm.q[0]
    assert abs(qx[i]) <= (qx[1] - qx[0])
    column = int(round(m.parameters["bragg_peak_px"][0]))
    rod = np.median(m.expected[column - 1:column + 2].max(axis=0))
    beside = np.median(m.expected[column + 3])
    assert rod > 3 * beside


def test_a_substrate_draw_made_without_its_substrate():
    """``substrate=False`` leaves out only the substrate: the same texture,
    truth and film, the noise-free maps differing by the rod alone (on the
    specular columns, a tenth of the film's brightest pixel or more even on
    this small map, whose window the substrate's peak lies beyond; nothing
    beyond 4 pixels of them), and the substrate's parameters kept aside. A
    draw without a substrate is the same map bit for bit."""
    seed, shape = 1, (64, 32)
    a = draw_family_member(seed, shape=shape)
    b = draw_family_member(seed, shape=shape, substrate=False)
    assert a.parameters["substrate"] is not None and b.parameters["substrate"] is None
    assert b.parameters["substrate_left_out"] == a.parameters["substrate"]
    np.testing.assert_array_equal(a.truth_supercell, b.truth_supercell)
    rod = a.expected - b.expected
    assert rod.min() >= 0 and rod.max() > 0.1 * b.expected.max()
    column = int(round(a.parameters["bragg_peak_px"][0]))
    far = np.abs(np.arange(shape[0]) - column) > 4
    assert rod[far].max() < 1e-6 * rod.max()
    c, d = draw_family_member(0, shape=shape), draw_family_member(0, shape=shape, substrate=False)
    assert c.parameters["substrate"] is None
    np.testing.assert_array_equal(c.rsm.intensity, d.rsm.intensity)


@pytest.mark.parametrize("seed, broader", [(6, 1.3), (3, 1.2), (0, None)])
def test_ensemble_higher_orders_are_broader(seed, broader):
    """Cell-width jitter in the ensemble broadens order 3 more than order 1
    (measured FWHM ratio 1.38 for seed 6, 1.25 for seed 3); one coherent
    patch broadens every order alike (seed 0: 0.99)."""
    m = draw_family_member(seed)
    assert m.parameters["coherence"]["model"] == ("ensemble" if broader else "patch")
    profile = m.expected.sum(axis=1)
    sp = m.parameters["satellite_spacing_px"]

    def width(order):
        ws = []
        for sign in (1, -1):
            c = m.parameters["bragg_peak_px"][0] + sign * order * sp
            lo, hi = int(np.ceil(c - sp / 2)), int(np.floor(c + sp / 2))
            if lo >= 0 and hi < len(profile):
                ws.append(_fwhm(profile[lo:hi + 1]))
        return np.mean(ws)

    ratio = width(3) / width(1)
    if broader:
        assert ratio > broader
    else:
        assert ratio == pytest.approx(1.0, abs=0.1)


def test_gaps_and_bad_pixels_are_masked():
    for seed in range(3):
        m = draw_family_member(seed)
        p = m.parameters
        for i, j in p["hot_pixels"] + p["dead_pixels"]:
            assert m.rsm.mask[i, j]
        if p["gap"]["width_px"]:
            sl = slice(p["gap"]["start_px"], p["gap"]["start_px"] + p["gap"]["width_px"])
            gap = m.rsm.mask[sl] if p["gap"]["axis"] == "x" else m.rsm.mask[:, sl]
            assert gap.all()


# ---------------------------------------------------------------------------
# Family draws through the pipeline (the benchmark's own code)
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("seed, bound", [(17, 0.10), (43, 0.14), (57, 0.12)])
def test_easy_family_draws_reconstructed(tmp_path, seed, bound):
    """Three easy draws (one coherent patch, no substrate, weak phase, >1e8
    counts) on small 128 x 64 maps, through ``reconstruct_file`` with 8 starts
    of the default algorithm and 2 clusters (3 s each on 2 shared cores).
    Measured complex errors: 0.073 (laminate), 0.118 (vortex), 0.092
    (amplitude); the bounds leave about 0.02-0.03 of room. (The vortex was
    0.079 before the physics-based preprocessing: its background, read 7 %
    low on this small map, and an 8-start run make it sensitive to small
    changes of the input.)"""
    from benchmarks_quality import run_family_member
    r = run_family_member(seed, params=dict(n_starts=8, n_clusters=2), folder=tmp_path,
                          shape=(128, 64))
    assert r["failure"] is None
    assert r["error"] < bound


@pytest.mark.slow
@pytest.mark.xfail(strict=True, reason="issue 9 not resolved: at defaults seeds 0-9 gave 5 "
                   "preprocessing failures (substrate) and errors 0.05-0.81 on the rest; "
                   "remove this mark when the family meets the goal")
def test_family_meets_the_issue_goal(tmp_path):
    """Issue 9's acceptance check on the first 10 draws at defaults (about
    3 minutes): at least 90 % within 0.05, none above 0.15, no failure."""
    from benchmarks_quality import run_family_member, summarise
    rows = [run_family_member(s, params={}, folder=tmp_path) for s in range(10)]
    s = summarise(rows)
    assert s["failures"] == 0
    assert s["within_005"] >= 0.9
    assert s["worst"] <= 0.15


def test_a_draw_counted_again_has_that_exposure_and_the_same_truth():
    """``recount`` (``quality.py --counts-factor``): the noise-free map times
    the factor, fresh Poisson noise (the same for the same seed), the same
    mask and truth: 20 times the exposure holds 20 times the counts within
    1e-3, and the film's amplitude scales with the square root."""
    from nanotools.simulate.family import recount
    member = draw_family_member(3, shape=(128, 64))
    a, b = recount(member, 20.0), recount(member, 20.0)
    assert np.array_equal(a.rsm.intensity, b.rsm.intensity)
    assert not np.array_equal(recount(member, 1.0).rsm.intensity, member.rsm.intensity)
    assert abs(a.rsm.intensity.sum() / (20 * member.expected.sum()) - 1) < 1e-3
    assert a.parameters["total_counts"] == 20 * member.parameters["total_counts"]
    assert np.array_equal(a.rsm.mask, member.rsm.mask)
    assert np.array_equal(a.truth_supercell, member.truth_supercell)
    if member.amplitude is not None:
        assert np.allclose(np.abs(a.amplitude) ** 2, 20 * np.abs(member.amplitude) ** 2)
    with pytest.raises(ParameterError):
        recount(member, 0.0)


def test_benchmark_summary_counts_failures_and_the_estimate():
    """The family table on made-up rows: a failure (inf) is the worst draw,
    the quantiles take no interpolation through it, the estimate is judged
    as issue 9 asks (above 0.10 flagged; otherwise within a factor of 2)."""
    from benchmarks_quality import summarise

    def row(seed, error, est=None, reliable=None):
        return dict(seed=seed, error=error, seconds=10.0 + seed, estimated_error=est,
                    reliable=reliable)

    rows = [row(0, 0.02, 0.03, True), row(1, 0.04, 0.10, True), row(2, 0.30, 0.2, False),
            row(3, 0.12, 0.05, True), row(4, float("inf"))]
    s = summarise(rows)
    assert s["failures"] == 1 and s["worst"] == float("inf")
    assert s["median"] == 0.12 and s["p90"] == float("inf")
    assert s["within_005"] == pytest.approx(0.4) and s["within_015"] == pytest.approx(0.6)
    assert s["worst_seeds"][:2] == [4, 2]
    e = s["estimate"]
    assert (e["n"], e["above_010"], e["above_010_flagged"], e["unflagged_seeds"]) == (4, 2, 1, [3])
    assert (e["at_most_010"], e["within_factor_2"]) == (2, 1)
    assert summarise([row(0, 0.02)]).get("estimate") is None
    # the draws the data determine: one-patch (None) and ensembles open by at most 0.05
    rows = [dict(row(0, 0.02), ambiguity=None), dict(row(1, 0.30), ambiguity=0.40),
            dict(row(2, 0.04), ambiguity=0.01), dict(row(3, 0.09), ambiguity=None)]
    d = summarise(rows)["determined"]
    assert (d["n"], d["open_seeds"], d["median"]) == (3, [1], 0.04)
    assert d["within_005"] == pytest.approx(2 / 3)


def test_benchmark_estimate_plot_is_written(tmp_path):
    from benchmarks_quality import plot_estimate
    rows = [dict(seed=0, error=0.02, estimated_error=0.03, reliable=True),
            dict(seed=1, error=0.3, estimated_error=0.2, reliable=False),
            dict(seed=2, error=float("inf"), estimated_error=None, reliable=None)]
    plot_estimate(rows, tmp_path / "estimate.png")
    assert (tmp_path / "estimate.png").read_bytes()[:4] == b"\x89PNG"


def test_rod_mask_from_the_truth_is_narrower_than_whole_columns():
    """``benchmarks/phasing_family.py``: on substrate draw 41 the pixels
    where the substrate adds more than 10 % of the film's expected counts
    (``--rod-mask-from-truth 0.1``) lie on the specular columns and cover
    the substrate's peak, but fewer than the 7 whole columns of
    ``--rod-columns`` (measured: 1 416 pixels with the map's own gap,
    against 1 762); the default, the rod subtracted as preprocessing does,
    masks fewer still (1 287), the peak among them."""
    from _small import phasing_family_module

    bench = phasing_family_module()
    member = draw_family_member(41)
    columns = bench.prepared_from_truth(member, rod_columns=True)
    pixels = bench.prepared_from_truth(member, rod_share=0.1)
    subtracted = bench.prepared_from_truth(member)
    assert pixels.mask.sum() < 0.85 * columns.mask.sum()
    assert subtracted.mask.sum() < 0.95 * pixels.mask.sum()
    assert (pixels.mask & ~columns.mask).sum() == 0
    film = draw_family_member(41, substrate=False)
    rod = member.expected - film.expected
    peak = np.unravel_index(np.argmax(rod), rod.shape)
    start = [p - w // 2 for p, w in zip(np.round(member.parameters["bragg_peak_px"]).astype(int),
                                        pixels.mask.shape)]
    assert pixels.mask[peak[0] - start[0], peak[1] - start[1]]
    assert subtracted.mask[peak[0] - start[0], peak[1] - start[1]]


def test_order_phase_ambiguity_of_an_amplitude_wave_is_four_ninths():
    """rho = 1 + cos(theta)/2 and rho' = 1 + i cos(theta)/2 (orders +-1 turned
    by 90 degrees) have the same ensemble map, and rho' varies less along x;
    the best complex fit of rho' to rho misses by sqrt(16/81) = 4/9, the
    largest such miss (a turn by 180 degrees is a shift by half a period)."""
    theta = np.arange(32)[:, None] * 2 * np.pi / 32
    cell = (1 + 0.5 * np.cos(theta)) * np.ones((1, 9))
    assert order_phase_ambiguity(cell) == pytest.approx(4 / 9, abs=0.003)


def test_order_phase_ambiguity_of_a_pure_displacement_wave_is_zero():
    """A constant modulus: any turn of the orders makes it vary along x."""
    theta = np.arange(32)[:, None] * 2 * np.pi / 32
    cell = np.exp(1j * 1.2 * np.cos(theta)) * np.ones((1, 9))
    assert order_phase_ambiguity(cell) < 0.005


@pytest.mark.parametrize("seed, low, high", [(13, 0.0, 0.005), (3, 0.43, 0.48)])
def test_order_phase_ambiguity_of_family_ensembles(seed, low, high):
    """Draw 13 (harmonic ensemble, measured 0.002) is pinned by its data and
    the amplitude prior; draw 3 (amplitude ensemble, 0.455) is not."""
    member = draw_family_member(seed)
    assert member.parameters["coherence"]["model"] == "ensemble"
    assert low <= order_phase_ambiguity(member.truth_supercell) <= high


def test_benchmark_rows_reprinted_with_the_open_column(tmp_path, capsys):
    """``quality.py --rows``: an earlier run's rows without the column get
    it from their seed (ensemble 13: about 0.002; one-patch 2: none) and
    the summary counts the draws the data determine."""
    from benchmarks_quality import summarise_rows

    def row(seed, coherence, error):
        return dict(seed=seed, texture="harmonic", period_nm=10.0, thickness_nm=20.0,
                    counts=1e8, coherence=coherence, substrate=False, j0_below_j1=False,
                    error=error, seconds=1.0, failure=None, estimated_error=None,
                    reliable=None, reliable_reason=None, measured={}, notes=[])

    path = tmp_path / "rows.json"
    path.write_text(json.dumps(dict(rows=[row(13, "ensemble", 0.03), row(2, "patch", None)])))
    assert summarise_rows(path) == 0
    out = capsys.readouterr().out
    assert "leave the image open by more than 0.05 (order-phase ambiguity, the 'open' " \
           "column): 0 (none); on the other 2 draws: median 0.030, within 0.05 50 %" in out
    line13 = next(ln for ln in out.splitlines() if ln.startswith("   13 "))
    assert float(line13.split()[-1]) < 0.005

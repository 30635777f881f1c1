"""Widget panels driven as a person would: set controls, click run, check."""
from __future__ import annotations

import ipywidgets as ipw
import numpy as np
import pytest

from nanotools import phasing as phasing_mod
from nanotools import preprocess, simulate
from nanotools.params import PARAMETERS
from nanotools.widgets import (
    MapPanel,
    PatternsPanel,
    PhasingPanel,
    PreprocessPanel,
    StagePanel,
    control_for,
)

ALGORITHM = "RAAR**30 ER**10"


@pytest.fixture(scope="module")
def simulation():
    return simulate.simulate_map("laminate", shape=(64, 32), pixel_nm=2.0, thickness_nm=16.0,
                                 total_counts=1e7, seed=0)


@pytest.fixture(scope="module")
def prepared(simulation):
    return preprocess.prepare(simulation.rsm)


def test_controls_follow_the_registry():
    assert isinstance(control_for(PARAMETERS["texture"]), ipw.Dropdown)
    assert isinstance(control_for(PARAMETERS["n_starts"]), ipw.BoundedIntText)
    assert isinstance(control_for(PARAMETERS["beta"]), ipw.BoundedFloatText)
    assert isinstance(control_for(PARAMETERS["algorithm"]), ipw.Text)
    beta = control_for(PARAMETERS["beta"], 0.5)
    assert (beta.value, beta.min, beta.max) == (0.5, 0.0, 1.0)
    assert "(nm)" in control_for(PARAMETERS["sim_period_nm"]).description


def test_every_control_has_a_readable_label_with_unit_and_the_help_as_tooltip():
    for p in PARAMETERS.values():
        control = control_for(p)
        assert "_" not in control.description, p.name  # not the raw name
        assert len(control.description) <= 30, p.name  # fits the 15em label whole
        assert control.description.endswith(f"({p.unit})") == bool(p.unit), p.name
        assert control.tooltip.startswith(p.help), p.name
    assert control_for(PARAMETERS["shrink_wrap_sigma_nm"]).description == "shrink-wrap blur (nm)"


def test_unknown_control_is_refused(prepared):
    from nanotools.errors import ParameterError
    with pytest.raises(ParameterError, match="no control 'n_iter'"):
        PhasingPanel(prepared, display=False, n_iter=3)


def test_map_panel_simulates_what_the_controls_say():
    panel = MapPanel(shape=(64, 32), pixel_nm=2.0, display=False, sim_thickness_nm=16.0)
    assert panel.result is None
    panel.controls["texture"].value = "checkerboard"
    panel.controls["sim_total_counts"].value = 1e6
    panel.controls["run"].click()
    assert panel.error is None
    assert panel.simulation.parameters["texture"] == "checkerboard"
    assert panel.rsm.shape == (64, 32)
    assert abs(panel.rsm.intensity.sum() / 1e6 - 1) < 0.1
    assert panel.controls["progress"].value == 1.0
    assert "64x32" in panel.controls["status"].value
    assert panel.plot.n_draws == 1


def test_preprocess_panel_imposes_a_period(simulation):
    panel = PreprocessPanel(simulation.rsm, display=False)
    panel.controls["period_nm"].value = 11.0
    panel.controls["run"].click()
    assert panel.error is None
    assert panel.result.period_nm == pytest.approx(11.0)
    panel.controls["period_nm"].value = 0.0
    panel.controls["run"].click()
    assert panel.result.period_nm == pytest.approx(12.0, rel=0.05)


def test_phasing_panel_runs_the_stage_with_live_plot(prepared):
    panel = PhasingPanel(prepared, display=False, chunks=2, algorithm=ALGORITHM)
    panel.controls["n_starts"].value = 3
    panel.controls["seed"].value = 7
    panel.controls["run"].click()
    assert panel.error is None, panel.error
    result = panel.result
    assert result.n_starts == 3 and result.n_iterations == 40
    assert result.start_indices.tolist() == [0, 1, 2]
    assert panel.n_live_draws == 2  # one redraw per chunk while running
    # the panel calls the same function as the headless path: same starts, same numbers
    direct = phasing_mod.phase_retrieval(prepared, n_starts=3, seed=7, algorithm=ALGORITHM)
    np.testing.assert_allclose(result.fourier_error, direct.fourier_error, rtol=1e-5)
    assert "3 starts x 40 iterations" in panel.controls["status"].value


def test_phasing_panel_reports_a_bad_parameter_without_dying(prepared):
    panel = PhasingPanel(prepared, display=False, algorithm="NOPE**3", n_starts=1)
    panel.controls["run"].click()
    assert panel.result is None
    assert panel.error and "error:" in panel.controls["status"].value
    assert panel.controls["progress"].bar_style == "danger"
    assert not panel.controls["run"].disabled


def test_patterns_panel_clusters(prepared):
    phased = phasing_mod.phase_retrieval(prepared, n_starts=4, seed=0, algorithm=ALGORITHM)
    panel = PatternsPanel(phased, prepared, display=False)
    panel.controls["n_clusters"].value = 2
    panel.controls["best_fraction"].value = 1.0
    # keep both k-means clusters: 4 starts of one good population would
    # otherwise be merged into one (what the default does)
    panel.controls["cluster_merge_factor"].value = 0.0
    panel.controls["run"].click()
    assert panel.error is None, panel.error
    assert len(panel.result.clusters) == 2
    assert sum(c.n_members for c in panel.result.clusters) == len(panel.result.supercells)
    assert "2 clusters" in panel.controls["status"].value


def test_a_given_result_is_drawn_at_once(prepared):
    phased = phasing_mod.phase_retrieval(prepared, n_starts=2, seed=0, algorithm=ALGORITHM)
    panel = PhasingPanel(prepared, display=False, result=phased, n_starts=2)
    assert panel.result is phased and panel.plot.n_draws == 1
    assert panel.plot.figure.axes  # the convergence curves are there
    assert isinstance(panel.widget, ipw.VBox)
    assert issubclass(PhasingPanel, StagePanel)

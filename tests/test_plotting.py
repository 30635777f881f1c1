"""Figures of nanotools.plotting, drawn from small synthetic arrays."""
from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
from matplotlib.figure import Figure

from nanotools import plotting
from nanotools.io import ReciprocalSpaceMap


def _artists(fig, gid):
    return [a for ax in fig.axes for a in ax.get_children() if a.get_gid() == gid]


def _rsm(nx=64, nz=32, period_px=8):
    """A Bragg peak with satellites every ``period_px`` pixels and a gap."""
    x = np.arange(nx) - nx // 2
    z = np.arange(nz) - nz // 2
    peaks = sum(np.exp(-0.5 * ((x[:, None] - m * period_px) ** 2 + z[None, :] ** 2))
                * 10.0 ** (6 - 2 * abs(m)) for m in range(-3, 4))
    intensity = peaks + 1.0
    mask = np.zeros((nx, nz), bool)
    mask[nx // 2 + 12: nx // 2 + 14] = True
    step = 0.01
    q = ((x * step), 3.2 + z * step)
    return ReciprocalSpaceMap(intensity=intensity, mask=mask, q=q, axis_names=("qx", "qz"))


def test_satellites_are_2pi_over_period_apart():
    q = plotting.satellite_positions(12.0, q_centre=0.1, orders=2)
    dq = 2 * np.pi / 120.0  # 12 nm = 120 angstrom
    np.testing.assert_allclose(q, 0.1 + dq * np.array([-2, -1, 1, 2]))
    assert plotting.satellite_positions(12.0, orders=3, q_range=(-0.06, 0.06)).size == 2
    assert plotting.satellite_positions(0.0).size == 0


@pytest.mark.parametrize("algorithm, steps", [
    ("RAAR**400 HIO**200 ER**100", [("RAAR", 400), ("HIO", 200), ("ER", 100)]),
    ("ER", [("ER", 1)]),
    ("hio**5", [("HIO", 5)]),
    ("HIO**5,ER**3", [("HIO", 5), ("ER", 3)]),
    ("HIO**5+ER**3", [("HIO", 5), ("ER", 3)]),
])
def test_convergence_plot_marks_the_steps_the_phasing_runs(algorithm, steps):
    from matplotlib.figure import Figure
    n = sum(k for _, k in steps)
    fig = Figure()
    plotting.plot_convergence(np.ones((2, n)), algorithm=algorithm, fig=fig)
    labels = [t.get_text() for t in fig.axes[0].texts]
    assert labels == [name for name, _ in steps]


@pytest.mark.parametrize("span, length", [(12.0, 2.0), (100.0, 20.0), (40.0, 10.0), (3.0, 0.5)])
def test_nice_length(span, length):
    assert plotting.nice_length(span) == length


def test_rsm_marks_satellites_at_the_period_and_the_mask():
    rsm = _rsm(period_px=8)
    period_nm = 2 * np.pi / (8 * 0.01) / 10.0  # satellites 8 pixels apart
    fig = plotting.plot_rsm(rsm, period_nm=period_nm)
    assert isinstance(fig, Figure)
    (sat,) = _artists(fig, "satellites")
    # orders -3..3 without the Bragg peak itself, 8 pixels of 0.01 1/angstrom apart
    np.testing.assert_allclose(sat.get_xdata(), 0.08 * np.array([-3, -2, -1, 1, 2, 3]),
                               atol=1e-9)
    assert len(_artists(fig, "mask")) == 1
    (img,) = _artists(fig, "rsm")
    assert img.norm.__class__.__name__ == "LogNorm"
    assert "64 masked pixels" in fig.axes[0].get_title()  # 2 columns x 32 rows


def test_rsm_of_a_prepared_map_uses_relative_axes():
    rsm = _rsm()
    prepared = SimpleNamespace(intensity=rsm.intensity, mask=rsm.mask, q_step=(0.01, 0.01),
                               period_nm=7.85)
    fig = plotting.plot_rsm(prepared)
    assert "Delta q_x" in fig.axes[0].get_xlabel()
    assert len(_artists(fig, "satellites")) == 1


def test_convergence_draws_every_start_and_marks_the_best():
    rng = np.random.default_rng(0)
    history = np.cumsum(rng.random((5, 30)), axis=1)[:, ::-1] / 30
    errors = history[:, -1].copy()
    fig = plotting.plot_convergence(history, fourier_error=errors, algorithm="RAAR**20 ER**10")
    lines = [a for a in fig.axes[0].get_lines() if (a.get_gid() or "").startswith("start-")]
    assert len(lines) == 5
    best = int(np.argmin(errors))
    assert fig.axes[0].get_legend().get_texts()[0].get_text() == f"best: start {best}"
    names = [t.get_text() for t in fig.axes[0].texts]
    assert names == ["RAAR", "ER"]


def test_convergence_with_runs_in_progress():
    history = np.full((4, 10), np.nan)
    history[:2] = np.linspace(1, 0.1, 10)
    fig = plotting.plot_convergence(history)
    assert len(fig.axes[0].get_lines()) >= 4


def test_support_and_located_supercells():
    support = np.zeros((40, 20), bool)
    support[10:30, 5:15] = True
    fig = plotting.plot_support(support, pixel_nm=(2.0, 1.0), amplitude=support * 1.0)
    assert "40 x 10 nm" in fig.axes[0].get_title()
    objects = np.ones((3, 40, 20), complex)
    boxes = [[(10, 5, 6, 11), (16, 5, 6, 11)], [(12, 5, 6, 11)], []]
    fig = plotting.plot_located_supercells(objects, boxes=boxes, pixel_nm=2.0,
                                           cell_labels=[[0, 1], [1], []])
    assert len(_artists(fig, "supercell-box")) == 3
    assert "3 cells" in fig._suptitle.get_text()
    # each panel zooms on its boxes and half a box around them (2 nm pixels)
    x = plotting._coords(40, 2.0)
    np.testing.assert_allclose(fig.axes[0].get_xlim(), x[0] + 2.0 * np.array([6.5, 24.5]))
    np.testing.assert_allclose(fig.axes[1].get_xlim(), x[0] + 2.0 * np.array([8.5, 20.5]))


def test_supercell_boxes_from_a_pattern_result():
    patterns = SimpleNamespace(run_index=np.array([5, 5, 7]), origin_px=np.array([[3, 4], [9, 4],
                                                                                   [1, 4]]),
                               labels=np.array([0, 1, 1]), supercells=np.zeros((3, 6, 9)),
                               period_nm=12.0, pixel_nm=(2.0, 1.0))
    phasing = SimpleNamespace(start_indices=np.array([5, 6, 7]),
                              fourier_error=np.array([0.3, 0.1, 0.2]))
    runs, boxes, labels = plotting.supercell_boxes(patterns, phasing, pixel_nm=(1.5, 1.0))
    assert runs.tolist() == [2, 0]  # start 7 fits better than start 5
    assert boxes[1] == [(3.0, 4.0, 8.0, 9.0), (9.0, 4.0, 8.0, 9.0)]
    assert labels == [[1], [0, 1]]


def _cluster(label, n, shift):
    x = np.linspace(0, 2 * np.pi, 6, endpoint=False)[:, None]
    return SimpleNamespace(label=label, n_members=n, amplitude=np.ones((6, 9)),
                           displacement=0.2 * np.sin(x + shift) * np.ones((1, 9)), score=0.1 * n)


def test_clusters_side_by_side_with_member_counts():
    clusters = [_cluster(0, 5, 0.0), _cluster(1, 2, 1.0), _cluster(2, 9, 2.0)]
    fig = plotting.plot_clusters(clusters, x_nm=np.arange(6) * 2.0, z_nm=np.arange(9) - 4.0,
                                 chosen=2)
    titles = [ax.get_title() for ax in fig.axes if ax.get_title()]
    assert [t.split("\n")[0] for t in titles] == ["cluster 0: 5 members", "cluster 1: 2 members",
                                                  "cluster 2: 9 members"]
    assert "16 supercells" in fig._suptitle.get_text()


def test_supercell_maps_have_scale_bars_in_nm():
    x_nm, z_nm = np.arange(12) * 1.0, np.arange(41) - 20.0
    u = 0.3 * np.sin(2 * np.pi * x_nm / 12)[:, None] * np.ones((1, 41))
    fig = plotting.plot_supercell_maps(np.ones((12, 41)), u, x_nm=x_nm, z_nm=z_nm,
                                       strain={"du/dx": np.gradient(u, axis=0) / 10})
    image_axes = [ax for ax in fig.axes if ax.get_images()]
    assert len(image_axes) == 3
    for ax in image_axes:
        (bar,) = [a for a in ax.get_children() if a.get_gid() == "scale-bar"]
        assert bar.txt_label.get_text() == "2 nm"  # a round length near 0.4 x 12 nm
    fig = plotting.plot_uncertainty(np.ones((12, 41)), np.ones((12, 41)), x_nm=x_nm, z_nm=z_nm,
                                    n_members=4)
    assert "n = 4" in fig._suptitle.get_text()


def test_comparison_and_prtf():
    cell = np.exp(1j * np.linspace(0, 1, 12 * 9)).reshape(12, 9)
    fig = plotting.plot_comparison(cell, cell, x_nm=np.arange(12.0), z_nm=np.arange(9.0), G=3.2)
    assert sum(1 for ax in fig.axes if ax.get_images()) == 4
    q = np.linspace(0.1, 4, 8)
    fig = plotting.plot_prtf(q, np.linspace(1, 0.1, 8))
    assert "resolution" in fig.axes[0].get_title()


def test_figures_can_be_redrawn_into_one_figure():
    rsm = _rsm()
    fig = plotting.plot_rsm(rsm)
    again = plotting.plot_convergence(np.ones((2, 5)), fig=fig)
    assert again is fig
    assert len([a for a in fig.axes if a.get_images()]) == 0  # the map is gone

"""One panel per stage: map (simulate), preprocess, phasing, patterns.

Each panel calls the stage function the headless notebooks call, with the
controls' values as keyword arguments (the registry's names are the stage
functions' keyword names), and draws with :mod:`nanotools.plotting`.
"""
from __future__ import annotations

from typing import Any, Callable

import ipywidgets as ipw
import numpy as np
from matplotlib.figure import Figure

from .. import plotting
from ._base import DESCRIPTION_STYLE, LAYOUT, StagePanel

__all__ = ["MapPanel", "PreprocessPanel", "PhasingPanel", "PatternsPanel"]


def _seed_control(value: Any = None) -> ipw.Widget:
    return ipw.BoundedIntText(value=0 if value is None else int(value), min=0, max=2 ** 31 - 1,
                              description="seed", style=DESCRIPTION_STYLE, layout=LAYOUT,
                              tooltip="random seed: start k draws from default_rng([seed, k])")


class MapPanel(StagePanel):
    """Simulate a map (texture, period, thickness, counts, noise seed) and
    show it on a log scale with its satellites and mask.

    Parameters
    ----------
    shape
        Map size in pixels ``(nx, nz)``.
    pixel_nm
        Real-space pixel of the simulation (nm).
    **kwargs
        See :class:`~nanotools.widgets.StagePanel`; ``result`` may be a
        :class:`~nanotools.simulate.Simulation` or a loaded
        :class:`~nanotools.io.ReciprocalSpaceMap` to show first.
    """

    stage = "simulate"
    title = "1. Reciprocal-space map (simulate)"

    def __init__(self, *, shape: tuple = (64, 32), pixel_nm: float = 2.0, **kwargs: Any):
        self.shape = tuple(int(n) for n in shape)
        self.pixel_nm = float(pixel_nm)
        super().__init__(**kwargs)

    @property
    def rsm(self) -> Any:  # numpydoc ignore=RT01
        """The map of the last result (simulated or given)."""
        return getattr(self.result, "rsm", self.result)

    @property
    def simulation(self) -> Any:  # numpydoc ignore=RT01
        """The last :class:`~nanotools.simulate.Simulation`, None for a loaded map."""
        return self.result if hasattr(self.result, "rsm") else None

    def compute(self, values: dict[str, Any],  # numpydoc ignore=GL08
                progress: Callable[[float], None]) -> Any:
        from ..simulate import simulate_map

        return simulate_map(values["texture"], shape=self.shape, pixel_nm=self.pixel_nm,
                            period_nm=values["sim_period_nm"],
                            thickness_nm=values["sim_thickness_nm"],
                            total_counts=values["sim_total_counts"], seed=values["sim_seed"])

    def draw(self, result: Any, fig: Figure) -> None:  # numpydoc ignore=GL08
        plotting.plot_rsm(getattr(result, "rsm", result),
                          period_nm=getattr(result, "period_nm", None), fig=fig)

    def describe(self, result: Any) -> str:  # numpydoc ignore=GL08
        rsm = getattr(result, "rsm", result)
        return (f"map {'x'.join(map(str, rsm.shape))}, {int(np.sum(rsm.mask))} masked pixels, "
                f"{float(np.sum(rsm.intensity[~rsm.mask])):.3g} counts")


class PreprocessPanel(StagePanel):
    """Prepare a map for phasing: measure period and thickness (or impose
    them), bin, subtract the background; show the prepared map.

    Parameters
    ----------
    rsm
        The :class:`~nanotools.io.ReciprocalSpaceMap` to prepare.
    **kwargs
        See :class:`~nanotools.widgets.StagePanel`.
    """

    stage = "preprocess"
    title = "2. Preprocess"
    parameter_names = ("period_nm", "thickness_nm", "bin", "background", "bragg_peak",
                       "mask_specular", "z_subpixels")

    def __init__(self, rsm: Any, **kwargs: Any):
        self.rsm = rsm
        super().__init__(**kwargs)

    def compute(self, values: dict[str, Any],  # numpydoc ignore=GL08
                progress: Callable[[float], None]) -> Any:
        from ..preprocess import prepare

        return prepare(self.rsm, **values)

    def draw(self, result: Any, fig: Figure) -> None:  # numpydoc ignore=GL08
        plotting.plot_rsm(result, period_nm=result.period_nm, fig=fig)

    def describe(self, result: Any) -> str:  # numpydoc ignore=GL08
        return (f"period {result.period_nm:.2f} nm, thickness {result.thickness_nm:.1f} nm, "
                f"map {'x'.join(map(str, np.shape(result.intensity)))}")


class PhasingPanel(StagePanel):
    """Phase retrieval from many random starts, with a live plot of every
    start's convergence.

    The starts run in a few chunks (start ``k`` always draws from
    ``default_rng([seed, k])``, so chunking changes nothing in the result);
    after each chunk the convergence curves are redrawn.

    Parameters
    ----------
    prepared
        The :class:`~nanotools.preprocess.PreparedMap`.
    chunks
        Number of redraws of the live plot during a run.
    **kwargs
        See :class:`~nanotools.widgets.StagePanel`; ``seed`` is a control too.
    """

    stage = "phasing"
    title = "3. Phase retrieval"
    parameter_names = ("n_starts", "algorithm", "beta", "support_margin", "shrink_wrap_every",
                       "shrink_wrap_threshold", "shrink_wrap_sigma_nm", "amplitude_constraint",
                       "psf_fwhm_px", "psf_start", "psf_update_every", "pixel_average",
                       "precision", "backend")
    extra_controls = (("seed", _seed_control),)

    def __init__(self, prepared: Any, *, chunks: int = 4, **kwargs: Any):
        self.prepared = prepared
        self.chunks = max(1, int(chunks))
        self.n_live_draws = 0
        super().__init__(**kwargs)

    def compute(self, values: dict[str, Any],  # numpydoc ignore=GL08
                progress: Callable[[float], None]) -> Any:
        from ..chunks import phase_in_chunks, start_chunks
        from ..phasing import parse_algorithm

        n_starts = values.pop("n_starts")
        n_iter = sum(n for _, n in parse_algorithm(values["algorithm"]))
        live = np.full((n_starts, n_iter), np.nan)

        def _live(part: Any) -> None:
            first = int(part.start_indices[0])
            live[first:first + part.n_starts] = part.history
            plotting.plot_convergence(live, algorithm=values["algorithm"],
                                      fig=self.plot.figure,
                                      title=f"{first + part.n_starts} of {n_starts} starts done")
            self.plot.draw()
            self.n_live_draws += 1

        pieces = start_chunks(n_starts, int(np.ceil(n_starts / self.chunks)))
        return phase_in_chunks(self.prepared, pieces, on_chunk=_live,
                               progress=lambda done, total: progress(done / total), **values)

    def draw(self, result: Any, fig: Figure) -> None:  # numpydoc ignore=GL08
        plotting.plot_convergence(result.history, fourier_error=result.fourier_error,
                                  algorithm=result.algorithm, start_indices=result.start_indices,
                                  fig=fig)

    def describe(self, result: Any) -> str:  # numpydoc ignore=GL08
        return (f"{result.n_starts} starts x {result.n_iterations} iterations, best Fourier "
                f"error {float(np.min(result.fourier_error)):.3g}")


class PatternsPanel(StagePanel):
    """Pattern recognition: locate the supercells in the best runs with a
    sinusoidal test function, cluster them with k-means, average each
    cluster; show the clusters side by side with their member counts.

    Parameters
    ----------
    phasing, prepared
        The :class:`~nanotools.phasing.PhasingResult` and the
        :class:`~nanotools.preprocess.PreparedMap` it came from.
    **kwargs
        See :class:`~nanotools.widgets.StagePanel`; ``seed`` is a control too.
    """

    stage = "patterns"
    title = "4. Pattern recognition"
    extra_controls = (("seed", _seed_control),)

    def __init__(self, phasing: Any, prepared: Any, **kwargs: Any):
        self.phasing = phasing
        self.prepared = prepared
        super().__init__(**kwargs)

    def compute(self, values: dict[str, Any],  # numpydoc ignore=GL08
                progress: Callable[[float], None]) -> Any:
        from ..patterns import find_supercells

        return find_supercells(self.phasing, self.prepared, **values)

    def draw(self, result: Any, fig: Figure) -> None:  # numpydoc ignore=GL08
        plotting.plot_clusters(result.clusters, x_nm=result.x_nm, z_nm=result.z_nm,
                               chosen=result.chosen, fig=fig)

    def describe(self, result: Any) -> str:  # numpydoc ignore=GL08
        chosen = next((c for c in result.clusters if c.label == result.chosen), None)
        members = chosen.n_members if chosen is not None else 0
        return (f"{len(result.supercells)} supercells in {len(result.clusters)} clusters; "
                f"chosen {result.chosen} ({members} members): {result.chosen_reason}")

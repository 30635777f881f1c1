"""ipywidgets panels, one per stage, for JupyterLab and Binder.

Each panel builds its controls from :data:`nanotools.params.PARAMETERS`, has
a run button, a progress bar and a plot (an ipympl canvas where ipympl is
installed), and calls the same stage function the headless path calls::

    panel = PhasingPanel(prepared, n_starts=8, display=False)
    panel.controls["n_starts"].value = 2
    panel.controls["run"].click()
    panel.result            # a PhasingResult

The stage notebooks show the panels when their ``interactive`` parameter is
true; papermill runs set it false.
"""
from ._base import PlotArea, StagePanel, control_for
from .panels import MapPanel, PatternsPanel, PhasingPanel, PreprocessPanel

__all__ = ["StagePanel", "PlotArea", "control_for", "MapPanel", "PreprocessPanel",
           "PhasingPanel", "PatternsPanel"]

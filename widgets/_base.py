"""The frame every stage panel shares: controls from the parameter registry,
a run button, a progress bar, a status line and a plot.

A panel is a thin layer in the manner of hyperspy_gui_ipywidgets: it links
ipywidgets controls to one stage function of the package and calls it; the
notebooks' headless path calls the very same function. Every panel can be
built without being shown (``display=False``) and exposes its controls by
name in :attr:`StagePanel.controls`, so a test sets
``panel.controls["n_starts"].value = 2``, calls
``panel.controls["run"].click()`` and asserts on ``panel.result``.
"""
from __future__ import annotations

import html
import time
import traceback
from typing import Any, Callable

import ipywidgets as ipw
from matplotlib.figure import Figure

from ..errors import NanotoolsError, ParameterError
from ..params import PARAMETERS, Parameter, parse_value

__all__ = ["control_for", "PlotArea", "StagePanel", "DESCRIPTION_STYLE", "LAYOUT"]

#: Label width and control width shared by every panel's controls: the
#: longest label with its unit ("shrink-wrap every (iterations)", 30
#: characters) fits whole.
DESCRIPTION_STYLE = {"description_width": "15em"}
LAYOUT = ipw.Layout(width="30em")


def control_for(parameter: Parameter, value: Any = None) -> ipw.Widget:
    """An ipywidgets control for one registry parameter.

    Choices become a dropdown, bounded numbers a bounded text box, other
    numbers a plain number box, strings a text box. The description is the
    parameter's readable label with its unit ("shrink-wrap blur (nm)"); the
    tooltip is its help text, so the name is never cut short.

    Parameters
    ----------
    parameter
        The registry entry (:data:`nanotools.params.PARAMETERS`).
    value
        Initial value; the registry default if None.
    """
    value = parameter.default if value is None else parse_value(parameter.name, value)
    label = (parameter.label or parameter.name.replace("_", " ")) + (
        f" ({parameter.unit})" if parameter.unit else "")
    common = dict(description=label, style=DESCRIPTION_STYLE, layout=LAYOUT,
                  description_allow_html=False)
    tooltip = f"{parameter.help} [{parameter.name}" + (
        f", {parameter.unit}]" if parameter.unit else "]")
    if parameter.choices is not None:
        widget = ipw.Dropdown(options=list(parameter.choices), value=value, **common)
    elif parameter.type is bool:
        widget = ipw.Checkbox(value=bool(value), **common)
    elif parameter.type in (int, float):
        cls_bounded = ipw.BoundedIntText if parameter.type is int else ipw.BoundedFloatText
        cls_plain = ipw.IntText if parameter.type is int else ipw.FloatText
        if parameter.minimum is not None or parameter.maximum is not None:
            lo = parameter.minimum if parameter.minimum is not None else -1e300
            hi = parameter.maximum if parameter.maximum is not None else 1e300
            if parameter.type is int:
                lo, hi = int(lo), int(min(hi, 2 ** 62))
            widget = cls_bounded(value=value, min=lo, max=hi, **common)
        else:
            widget = cls_plain(value=value, **common)
    else:
        widget = ipw.Text(value=str(value), **common)
    widget.tooltip = tooltip
    return widget


class PlotArea:
    """Where a panel draws: an interactive ipympl canvas when ipympl is
    installed (zoom, pan, live redraws), else a PNG image widget.

    Attributes
    ----------
    figure
        The one Matplotlib figure the panel draws into (``plotting.plot_*(...,
        fig=area.figure)``).
    widget
        The widget to put in the panel.
    """

    def __init__(self, *, width: float = 9.0, height: float = 3.6, interactive: bool = True):
        self.figure = Figure(figsize=(width, height), layout="constrained")
        self.canvas = None
        if interactive:
            try:
                import warnings

                from ipympl.backend_nbagg import Canvas, FigureManager

                self.canvas = Canvas(self.figure)
                with warnings.catch_warnings():  # ipympl's toolbar trips a traitlets warning
                    warnings.simplefilter("ignore", DeprecationWarning)
                    self.canvas.manager = FigureManager(self.canvas, 0)
                self.canvas.header_visible = False
                self.canvas.toolbar_position = "left"
            except ImportError:  # ipympl is optional: fall back to still images
                self.canvas = None
        if self.canvas is None:
            from matplotlib.backends.backend_agg import FigureCanvasAgg

            FigureCanvasAgg(self.figure)
            self.image = ipw.Image(format="png", layout=ipw.Layout(max_width="100%"))
            self.widget = self.image
        else:
            self.image = None
            self.widget = self.canvas
        self.n_draws = 0

    def draw(self) -> None:
        """Send the figure's current state to the page, now.

        A run button's handler blocks the kernel, so an ipympl canvas cannot
        ask for a redraw by itself while a stage runs: render and push the
        image directly; the still-image fallback re-encodes the PNG.
        """
        self.n_draws += 1
        if self.canvas is not None:
            self.canvas.draw()
            try:
                self.canvas.manager.refresh_all()
            except Exception:  # noqa: BLE001 - no page attached (tests, papermill)
                pass
            self.canvas.draw_idle()
        else:
            import io

            buffer = io.BytesIO()
            self.figure.savefig(buffer, format="png", dpi=80)
            self.image.value = buffer.getvalue()


class StagePanel:
    """A panel for one stage: parameter controls, run button, progress, plot.

    Subclasses set :attr:`stage` / :attr:`title` / :attr:`parameter_names`
    and implement :meth:`compute` (call the stage function) and :meth:`draw`
    (plot the result with :mod:`nanotools.plotting`).

    Parameters
    ----------
    display
        Show the panel at once (in a notebook). ``False`` builds it only,
        for tests or to place ``panel.widget`` in a layout of one's own.
    result
        A result computed already (by the notebook's headless cell): it is
        drawn at once and kept as :attr:`result` until the next run.
    interactive_plot
        Use an ipympl canvas if available (default); False draws PNGs.
    **values
        Initial values of the controls (registry names); the rest start at
        the registry defaults.

    Attributes
    ----------
    controls
        Every widget by name: one per parameter, plus ``"run"`` (the button),
        ``"progress"`` and ``"status"``.
    result
        The last computed result (None before the first run).
    widget
        The panel's top-level widget.
    """

    stage: str = ""
    title: str = ""
    parameter_names: tuple = ()
    extra_controls: tuple = ()

    def __init__(self, *, display: bool = True, result: Any = None,
                 interactive_plot: bool = True, **values: Any):
        names = self.parameter_names or tuple(
            n for n, p in PARAMETERS.items() if p.stage == self.stage)
        unknown = sorted(set(values) - set(names) - {n for n, _ in self.extra_controls})
        if unknown:
            raise ParameterError(f"{type(self).__name__} has no control '{unknown[0]}' "
                                 f"(controls: {', '.join(names)})")
        self.controls: dict[str, ipw.Widget] = {}
        for name in names:
            self.controls[name] = control_for(PARAMETERS[name], values.get(name))
        for name, make in self.extra_controls:
            self.controls[name] = make(values.get(name))
        self.controls["run"] = ipw.Button(description="Run", icon="play", button_style="primary",
                                          tooltip=f"run the {self.stage} stage")
        self.controls["progress"] = ipw.FloatProgress(value=0.0, min=0.0, max=1.0,
                                                      description="progress",
                                                      style=DESCRIPTION_STYLE)
        self.controls["status"] = ipw.HTML(value="")
        self.controls["run"].on_click(self._on_click)
        self.plot = PlotArea(interactive=interactive_plot)
        self.result = result
        self.error: str | None = None
        self.n_runs = 0
        header = ipw.HTML(f"<b>{html.escape(self.title)}</b>")
        # controls in two columns above the plot, so a wide figure never
        # squeezes them
        form = ipw.GridBox([self.controls[n] for n in self.controls
                            if n not in ("run", "progress", "status")],
                           layout=ipw.Layout(grid_template_columns="repeat(2, 31em)",
                                             grid_gap="2px 12px"))
        bar = ipw.HBox([self.controls["run"], self.controls["progress"]])
        self.widget = ipw.VBox([header, form, bar, self.controls["status"], self.plot.widget])
        self.widget.add_class("nanotools-panel")
        self.widget.add_class(f"nanotools-{self.stage}")
        if result is not None:
            self._redraw()
            self._say(self.describe(result))
        if display:
            from IPython.display import display as show

            show(self.widget)

    # -- to implement -------------------------------------------------
    def compute(self, values: dict[str, Any], progress: Callable[[float], None]) -> Any:
        """Run the stage with ``values`` (typed, checked); call
        ``progress(fraction)`` as it goes; return the result."""
        raise NotImplementedError

    def draw(self, result: Any, fig: Figure) -> None:
        """Plot ``result`` into ``fig`` (cleared first by the plotting function)."""
        raise NotImplementedError

    def describe(self, result: Any) -> str:
        """One line about a result, shown in the status line."""
        return "done"

    # -- machinery ------------------------------------------------------
    def values(self) -> dict[str, Any]:
        """The controls' current values, typed and range-checked
        (:class:`~nanotools.errors.ParameterError` names a bad one)."""
        out = {}
        for name in self.controls:
            if name in PARAMETERS:
                out[name] = parse_value(name, self.controls[name].value)
            elif name not in ("run", "progress", "status"):
                out[name] = self.controls[name].value
        return out

    def run(self) -> Any:
        """Run the stage with the current control values and draw the result.

        Returns the result; raises what the stage raises (the button's
        handler shows errors in the status line instead).
        """
        button, bar = self.controls["run"], self.controls["progress"]
        values = self.values()
        button.disabled = True
        bar.bar_style = ""
        bar.value = 0.0
        self._say("running ...")
        t0 = time.perf_counter()
        try:
            result = self.compute(values, self._progress)
        except BaseException:
            bar.bar_style = "danger"
            raise
        finally:
            button.disabled = False
        self.result = result
        self.n_runs += 1
        self.error = None
        bar.value = 1.0
        bar.bar_style = "success"
        self._redraw()
        self._say(f"{self.describe(result)} ({time.perf_counter() - t0:.1f} s)")
        return result

    def _on_click(self, _button: Any = None) -> None:
        try:
            self.run()
        except NanotoolsError as exc:
            self.error = str(exc)
            self._say(f"error: {exc}", colour="#b00")
        except Exception as exc:  # noqa: BLE001 - a panel must not die silently
            self.error = "".join(traceback.format_exception_only(type(exc), exc)).strip()
            self._say(f"failed: {self.error}", colour="#b00")

    def _progress(self, fraction: float) -> None:
        self.controls["progress"].value = float(min(max(fraction, 0.0), 1.0))

    def _redraw(self) -> None:
        if self.result is not None:
            self.draw(self.result, self.plot.figure)
            self.plot.draw()

    def _say(self, text: str, colour: str = "#333") -> None:
        self.controls["status"].value = f'<span style="color:{colour}">{html.escape(text)}</span>'

    def _ipython_display_(self) -> None:
        from IPython.display import display as show

        show(self.widget)

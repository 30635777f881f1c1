"""Figures a scientist expects from each stage, as Matplotlib figures.

Every function here only draws: it takes arrays (or a stage's result
dataclass, read by attribute) and returns a :class:`matplotlib.figure.Figure`
made without :mod:`matplotlib.pyplot`, so nothing is kept in pyplot's global
state and the caller decides where the figure goes (a notebook shows it, a
widget draws it on its canvas, a test inspects it). Every ``plot_*``
function takes ``fig=``: an existing figure to clear and draw into instead
of a new one (a widget panel redraws its one canvas in place). Compute code never
plots; plotting code never computes anything but what it draws.

Conventions follow :doc:`ARCHITECTURE`: arrays are ``(x, z)`` with the
out-of-plane axis last, drawn with x across and z up; reciprocal-space axes
in 1/angstrom, real-space axes in nm, displacements in angstrom.
"""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np
from matplotlib.colors import LogNorm
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle
from matplotlib.ticker import MaxNLocator

from .phasing import parse_algorithm

__all__ = [
    "satellite_positions",
    "nice_length",
    "add_scale_bar",
    "plot_rsm",
    "plot_support",
    "plot_convergence",
    "supercell_boxes",
    "plot_located_supercells",
    "plot_clusters",
    "plot_supercell_maps",
    "plot_uncertainty",
    "plot_half_maps",
    "plot_comparison",
    "plot_prtf",
]

#: Colour maps: amplitude sequential, phase/displacement/strain diverging.
AMPLITUDE_CMAP = "gray"
DISPLACEMENT_CMAP = "RdBu_r"
STRAIN_CMAP = "PuOr_r"
INTENSITY_CMAP = "magma"
UNCERTAINTY_CMAP = "viridis"


# ---------------------------------------------------------------- helpers
def satellite_positions(period_nm: float, *, q_centre: float = 0.0, orders: int = 2,
                        q_range: tuple[float, float] | None = None) -> np.ndarray:
    """In-plane momentum transfer of the texture's satellites (1/angstrom).

    Parameters
    ----------
    period_nm
        Texture period (nm); satellites lie ``2 pi / period`` apart.
    q_centre
        In-plane position of the Bragg peak (1/angstrom).
    orders
        Satellite orders ``+-1 .. +-orders`` are returned.
    q_range
        If given, only satellites inside ``[lo, hi]`` are kept.

    Returns
    -------
    Sorted 1-D array, without the Bragg peak itself.
    """
    if not period_nm or period_nm <= 0:
        return np.zeros(0)
    dq = 2 * np.pi / (period_nm * 10.0)  # 1 nm = 10 angstrom
    m = np.array([k for k in range(-orders, orders + 1) if k != 0], float)
    q = q_centre + m * dq
    if q_range is not None:
        lo, hi = min(q_range), max(q_range)
        q = q[(q >= lo) & (q <= hi)]
    return np.sort(q)


def nice_length(span: float, *, fraction: float = 0.25) -> float:
    """A round length (1, 2 or 5 times a power of ten) close to ``fraction``
    of ``span``: the length of a scale bar."""
    if not np.isfinite(span) or span <= 0:
        return 1.0
    target = span * fraction
    power = 10.0 ** np.floor(np.log10(target))
    for step in (5.0, 2.0, 1.0):
        if step * power <= target:
            return step * power
    return power


def add_scale_bar(ax: Any, *, length_nm: float | None = None, color: str = "black",
                  label: str | None = None) -> float:
    """Draw a scale bar in the lower left corner of an image axis whose data
    coordinates are nm; return its length (nm).

    The bar sits on a light translucent box so it reads on any colour map;
    the axis ticks are hidden: the bar alone gives the scale, as on a
    microscope image.
    """
    from mpl_toolkits.axes_grid1.anchored_artists import AnchoredSizeBar

    x0, x1 = sorted(ax.get_xlim())
    z0, z1 = sorted(ax.get_ylim())
    length = nice_length(x1 - x0, fraction=0.4) if length_nm is None else float(length_nm)
    bar = AnchoredSizeBar(ax.transData, length, label if label is not None else f"{length:g} nm",
                          "lower left", pad=0.2, borderpad=0.3, sep=2, color=color,
                          frameon=True, size_vertical=0.015 * (z1 - z0),
                          fontproperties={"size": 7})
    bar.patch.set_facecolor("white")
    bar.patch.set_alpha(0.7)
    bar.patch.set_edgecolor("none")
    bar.set_gid("scale-bar")
    ax.add_artist(bar)
    ax.set_xticks([])
    ax.set_yticks([])
    return length


def _figure(width: float, height: float, fig: Figure | None = None) -> Figure:
    """A new constrained-layout figure, or ``fig`` cleared and resized (a
    widget's canvas that is redrawn in place)."""
    if fig is None:
        return Figure(figsize=(width, height), layout="constrained")
    fig.clear()
    fig.set_layout_engine("constrained")
    fig.set_size_inches(width, height, forward=True)
    return fig


def _extent(x_nm: np.ndarray, z_nm: np.ndarray) -> list[float]:
    """imshow extent so pixel centres sit on the given coordinates."""
    x_nm, z_nm = np.asarray(x_nm, float), np.asarray(z_nm, float)
    dx = x_nm[1] - x_nm[0] if x_nm.size > 1 else 1.0
    dz = z_nm[1] - z_nm[0] if z_nm.size > 1 else 1.0
    return [x_nm[0] - dx / 2, x_nm[-1] + dx / 2, z_nm[0] - dz / 2, z_nm[-1] + dz / 2]


def _panel_width(x_nm: np.ndarray, z_nm: np.ndarray, *, height: float = 2.8) -> float:
    """Width (inches) of an image panel of the given height at equal aspect,
    plus room for a colour bar; kept between 2.2 and 5 inches."""
    span_x = float(np.ptp(np.asarray(x_nm, float))) or 1.0
    span_z = float(np.ptp(np.asarray(z_nm, float))) or 1.0
    return float(np.clip(height * span_x / span_z + 1.3, 2.2, 5.0))


def _coords(n: int, step: float) -> np.ndarray:
    return (np.arange(n) - n // 2) * step


def _image(ax: Any, array: np.ndarray, x_nm: np.ndarray, z_nm: np.ndarray, **kw: Any) -> Any:
    return ax.imshow(np.asarray(array).T, origin="lower", extent=_extent(x_nm, z_nm),
                     interpolation="nearest", **kw)


def _to_2d(array: np.ndarray) -> np.ndarray:
    """A 3-D ``(x, y, z)`` array shown as its central ``y`` slice."""
    array = np.asarray(array)
    if array.ndim == 3:
        return array[:, array.shape[1] // 2, :]
    return array


def _symmetric_limit(values: np.ndarray) -> float:
    finite = np.asarray(values, float)[np.isfinite(values)]
    return float(np.max(np.abs(finite))) if finite.size and np.any(finite) else 1.0


# ------------------------------------------------------------ the map
def plot_rsm(rsm: Any, *, period_nm: float | None = None, title: str | None = None,
             fig: Figure | None = None, orders: int = 3) -> Figure:
    """The reciprocal-space map on a log scale, satellites and mask marked.

    Parameters
    ----------
    rsm
        A :class:`~nanotools.io.ReciprocalSpaceMap` (absolute ``q`` axes) or a
        :class:`~nanotools.preprocess.PreparedMap` (``q_step``, Bragg peak at
        ``n // 2``: axes relative to the peak).
    period_nm
        Texture period (nm) whose satellites are marked along ``q_x`` on the
        Bragg peak's row; taken from ``rsm.period_nm`` if it has one.
    title
        Figure title.
    orders
        Satellite orders to mark.

    Returns
    -------
    Figure with two axes: the map (``gid="rsm"``) with masked pixels drawn
    in cyan (a masked substrate rod included) and satellites as open
    circles (``gid="satellites"``), the Bragg peak as a cross
    (``gid="bragg_peak"``: the brightest pixel of a raw map, the chosen
    peak at ``n // 2`` of a prepared one), and the profile along ``q_x``
    through it.
    """
    intensity = np.asarray(rsm.intensity, float)
    mask = np.asarray(getattr(rsm, "mask", np.zeros(intensity.shape, bool)), bool)
    if intensity.ndim == 3:  # project over y: the x-z map keeps satellites and fringes
        mask = mask.all(axis=1)
        intensity = np.where(np.asarray(rsm.mask), 0.0, intensity).sum(axis=1)
    nx, nz = intensity.shape
    if getattr(rsm, "q", None) is not None and len(rsm.q) >= 2:
        qx, qz = np.asarray(rsm.q[0], float), np.asarray(rsm.q[-1], float)
        labels = ("$q_x$ (1/Å)", "$q_z$ (1/Å)")
    else:
        steps = np.broadcast_to(np.asarray(rsm.q_step, float), (rsm.intensity.ndim,))
        qx, qz = _coords(nx, steps[0]), _coords(nz, steps[-1])
        labels = ("$\\Delta q_x$ (1/Å)", "$\\Delta q_z$ (1/Å)")
    if period_nm is None:
        period_nm = getattr(rsm, "period_nm", None)

    shown = np.where(mask, np.nan, intensity)
    positive = shown[np.isfinite(shown) & (shown > 0)]
    vmax = float(positive.max()) if positive.size else 1.0
    vmin = max(float(np.percentile(positive, 5)) if positive.size else 1e-3, vmax * 1e-7)
    vmin = min(vmin, vmax / 10)

    fig = _figure(9.5, 4.2, fig)
    ax, ax_profile = fig.subplots(1, 2, width_ratios=[1.6, 1])
    img = ax.imshow(np.clip(shown, vmin, None).T, origin="lower", aspect="auto",
                    extent=_extent(qx, qz), cmap=INTENSITY_CMAP,
                    norm=LogNorm(vmin=vmin, vmax=vmax), interpolation="nearest")
    img.set_gid("rsm")
    if mask.any():  # the mask in a colour the intensity map never uses
        overlay = np.zeros(mask.shape + (4,))
        overlay[mask] = (0.0, 0.9, 0.9, 0.9)
        ax.imshow(overlay.transpose(1, 0, 2), origin="lower", aspect="auto",
                  extent=_extent(qx, qz), interpolation="nearest", gid="mask")
    fig.colorbar(img, ax=ax, label="counts (log scale)")
    if getattr(rsm, "q_step", None) is not None:  # prepared: the chosen peak is at n // 2
        ix, iz = nx // 2, nz // 2
    else:
        ix, iz = np.unravel_index(np.nanargmax(np.where(mask, -np.inf, intensity)),
                                  intensity.shape)
    sat = satellite_positions(period_nm or 0.0, q_centre=qx[ix], orders=orders,
                              q_range=(qx[0], qx[-1]))
    if sat.size:
        ax.plot(sat, np.full(sat.size, qz[iz]), "o", mfc="none", mec="white", ms=10, mew=1.2,
                gid="satellites", label=f"satellites ({period_nm:.3g} nm period)")
    ax.plot([qx[ix]], [qz[iz]], "+", color="white", ms=10, label="Bragg peak", gid="bragg_peak")
    ax.set_xlabel(labels[0])
    ax.set_ylabel(labels[1])
    ax.legend(loc="upper right", fontsize=7, framealpha=0.4)
    n_masked = int(mask.sum())
    ax.set_title(f"{nx} x {nz} map, {n_masked} masked pixels (cyan)", fontsize=9)

    profile = np.where(mask[:, iz], np.nan, intensity[:, iz])
    ax_profile.semilogy(qx, np.clip(profile, vmin, None), lw=1, color="k")
    for q in sat:
        ax_profile.axvline(q, color="tab:red", ls=":", lw=0.8)
    ax_profile.set_xlabel(labels[0])
    ax_profile.set_ylabel("counts")
    ax_profile.set_title("profile through the Bragg peak", fontsize=9)
    if title:
        fig.suptitle(title)
    return fig


# ------------------------------------------------------------ phasing
def plot_support(support: np.ndarray, *, pixel_nm: Sequence[float] | float,
                 amplitude: np.ndarray | None = None, title: str | None = None,
    fig: Figure | None = None) -> Figure:
    """The support (where the film may be) in real space, in nm.

    Parameters
    ----------
    support
        Bool ``(nx, nz)`` (or ``(nx, ny, nz)``: the central ``y`` slice).
    pixel_nm
        Real-space pixel per axis (nm).
    amplitude
        Optionally a reconstructed amplitude of the same shape, drawn with
        the support's outline on top.
    """
    support = _to_2d(np.asarray(support, bool))
    pixel = np.broadcast_to(np.asarray(pixel_nm, float), (np.ndim(support),))
    x, z = _coords(support.shape[0], pixel[0]), _coords(support.shape[1], pixel[-1])
    panels = 1 if amplitude is None else 2
    fig = _figure(4.6 * panels, 3.2, fig)
    axes = np.atleast_1d(fig.subplots(1, panels))
    img = _image(axes[0], support.astype(float), x, z, cmap="Greys", vmin=0, vmax=1,
                 aspect="auto")
    img.set_gid("support")
    extent_x = np.ptp(x[support.any(axis=1)]) + pixel[0] if support.any() else 0.0
    extent_z = np.ptp(z[support.any(axis=0)]) + pixel[-1] if support.any() else 0.0
    axes[0].set_title(f"support: {int(support.sum())} px, {extent_x:.0f} x {extent_z:.0f} nm",
                      fontsize=9)
    for ax in axes:
        ax.set_xlabel("x (nm)")
        ax.set_ylabel("z (nm)")
    if amplitude is not None:
        amp = np.abs(_to_2d(np.asarray(amplitude)))
        _image(axes[1], amp, x, z, cmap=AMPLITUDE_CMAP, aspect="auto")
        axes[1].contour(x, z, support.T.astype(float), levels=[0.5], colors="tab:orange",
                        linewidths=0.8)
        axes[1].set_title("best run's amplitude, support outlined", fontsize=9)
    if title:
        fig.suptitle(title)
    return fig


def plot_convergence(history: np.ndarray, *, fourier_error: np.ndarray | None = None,
                     algorithm: str | None = None, start_indices: Sequence[int] | None = None,
                     title: str | None = None,
    fig: Figure | None = None) -> Figure:
    """Convergence curves of all starts: error metric against iteration.

    Parameters
    ----------
    history
        ``(n_starts, n_iterations)`` error per iteration (NaN where not yet
        computed, so a live plot can draw a run in progress).
    fourier_error
        Final error per start; the best start is drawn in colour and the
        distribution shown beside the curves.
    algorithm
        The algorithm sequence (``"RAAR**400 HIO**200"``): its steps are
        marked with vertical lines and named.
    start_indices
        The starts' numbers, for the legend.
    """
    history = np.atleast_2d(np.asarray(history, float))
    n_starts, n_iter = history.shape
    if start_indices is None:
        start_indices = np.arange(n_starts)
    finals = (np.asarray(fourier_error, float) if fourier_error is not None
              else np.array([row[np.isfinite(row)][-1] if np.isfinite(row).any() else np.nan
                             for row in history]))
    best = int(np.nanargmin(finals)) if np.isfinite(finals).any() else 0
    fig = _figure(9.5, 3.6, fig)
    ax, ax_hist = fig.subplots(1, 2, width_ratios=[2.4, 1])
    it = np.arange(1, n_iter + 1)
    for k in range(n_starts):
        if k != best:
            ax.plot(it, history[k], color="0.55", lw=0.7, alpha=0.7, gid=f"start-{k}")
    ax.plot(it, history[best], color="tab:red", lw=1.4, gid=f"start-{best}",
            label=f"best: start {start_indices[best]}")
    positive = history[np.isfinite(history) & (history > 0)]
    if positive.size:
        ax.set_yscale("log")
    ax.set_xlim(1, max(n_iter, 2))
    done = 0
    # the phasing's own parser: the steps drawn are the steps run
    for name, n in (parse_algorithm(algorithm) if algorithm else []):
        ax.axvline(done + 0.5, color="tab:blue", ls=":", lw=0.8)
        ax.text(done + 1, 1.0, name, transform=ax.get_xaxis_transform(), va="top",
                fontsize=7, color="tab:blue")
        done += n
    ax.set_xlabel("iteration")
    ax.set_ylabel("Fourier error")
    ax.set_title(f"{n_starts} starts x {n_iter} iterations", fontsize=9)
    ax.legend(loc="upper right", fontsize=7)
    good = finals[np.isfinite(finals)]
    if good.size:
        ax_hist.hist(good, bins=max(5, min(30, good.size)), color="0.5")
        ax_hist.axvline(finals[best], color="tab:red")
    ax_hist.yaxis.set_major_locator(MaxNLocator(integer=True))
    ax_hist.set_xlabel("final Fourier error")
    ax_hist.set_ylabel("starts")
    if title:
        fig.suptitle(title)
    return fig


# ------------------------------------------------------------ patterns
def supercell_boxes(patterns: Any, phasing: Any, *, pixel_nm: Sequence[float],
                    max_runs: int = 8) -> tuple[np.ndarray, list, list]:
    """Where pattern recognition cut its supercells, as rectangles to draw.

    Parameters
    ----------
    patterns
        A :class:`~nanotools.patterns.PatternResult` (``run_index``,
        ``origin_px``, ``labels``, ``supercells``, ``period_nm``,
        ``pixel_nm``).
    phasing
        The :class:`~nanotools.phasing.PhasingResult` it came from
        (``start_indices``, ``fourier_error``).
    pixel_nm
        Pixel of the runs' real-space grid (nm per axis): a box is one
        period wide.
    max_runs
        At most this many runs, the best (lowest Fourier error) first.

    Returns
    -------
    runs, boxes, labels
        Positions of the runs in ``phasing.objects``; per run, the
        ``(x0, z0, width, height)`` rectangles (pixels) of its supercells;
        per run, their cluster labels. For
        :func:`plot_located_supercells`.
    """
    start_indices = np.asarray(phasing.start_indices)
    run_index = np.asarray(patterns.run_index)
    used = [int(np.nonzero(start_indices == k)[0][0]) for k in np.unique(run_index)
            if np.any(start_indices == k)]
    used.sort(key=lambda r: float(phasing.fourier_error[r]))
    runs = np.asarray(used[:max_runs], int)
    width = float(patterns.period_nm) / float(np.ravel(pixel_nm)[0])
    height = float(np.shape(patterns.supercells)[-1])  # rows of the run's grid
    boxes, labels = [], []
    for r in runs:
        here = np.nonzero(run_index == start_indices[r])[0]
        boxes.append([(float(patterns.origin_px[i][0]), float(patterns.origin_px[i][-1]),
                       width, height) for i in here])
        labels.append([int(patterns.labels[i]) for i in here])
    return runs, boxes, labels


def plot_located_supercells(objects: np.ndarray, *, boxes: Sequence[Sequence[tuple]],
                            pixel_nm: Sequence[float] | float,
                            run_labels: Sequence[str] | None = None, max_runs: int = 8,
                            cell_labels: Sequence[Sequence[int]] | None = None,
                            title: str | None = None,
    fig: Figure | None = None) -> Figure:
    """Each run's amplitude with the supercells located in it outlined.

    Parameters
    ----------
    objects
        ``(n_runs, nx, nz)`` complex reconstructions.
    boxes
        Per run, a list of ``(x0, z0, width, height)`` rectangles in pixels
        of the run's array (lower-left corner, size): the supercells cut out.
    pixel_nm
        Real-space pixel per axis (nm).
    run_labels
        A short label per run (``"start 3, err 0.04"``).
    max_runs
        At most this many runs are drawn (the first ones given).
    cell_labels
        Per run, the k-means cluster of each box: boxes are coloured by it.
    """
    objects = np.asarray(objects)
    n = min(len(objects), max_runs)
    pixel = np.broadcast_to(np.asarray(pixel_nm, float), (objects.ndim - 1,))
    cols = min(n, 4) if n else 1
    rows = max(1, int(np.ceil(n / cols)))
    fig = _figure(3.0 * cols, 2.3 * rows + 0.4, fig)
    axes = np.atleast_1d(fig.subplots(rows, cols, squeeze=False).ravel())
    colours = ["tab:orange", "tab:cyan", "tab:green", "tab:pink", "tab:olive", "tab:purple"]
    total = 0
    for k, ax in enumerate(axes):
        if k >= n:
            ax.set_axis_off()
            continue
        amp = np.abs(_to_2d(objects[k]))
        nx, nz = amp.shape
        x, z = _coords(nx, pixel[0]), _coords(nz, pixel[-1])
        _image(ax, amp, x, z, cmap=AMPLITUDE_CMAP, aspect="auto")
        here = boxes[k] if k < len(boxes) else []
        for j, (bx, bz, w, h) in enumerate(here):
            label = None if cell_labels is None else int(cell_labels[k][j])
            colour = colours[(label or 0) % len(colours)]
            ax.add_patch(Rectangle((x[0] + (bx - 0.5) * pixel[0], z[0] + (bz - 0.5) * pixel[-1]),
                                   w * pixel[0], h * pixel[-1], fill=False, ec=colour, lw=1.2,
                                   gid="supercell-box"))
            total += 1
        if len(here):
            # zoom on the film: the boxes and half a box around them, within the array
            b = np.asarray(here, float)
            lo, hi = b[:, :2] - 0.5 * b[:, 2:], b[:, :2] + 1.5 * b[:, 2:]
            ax.set_xlim(max(x[0], x[0] + (lo[:, 0].min() - 0.5) * pixel[0]),
                        min(x[-1], x[0] + (hi[:, 0].max() - 0.5) * pixel[0]))
            ax.set_ylim(max(z[0], z[0] + (lo[:, 1].min() - 0.5) * pixel[-1]),
                        min(z[-1], z[0] + (hi[:, 1].max() - 0.5) * pixel[-1]))
        ax.set_title(run_labels[k] if run_labels is not None else f"run {k}", fontsize=8)
        ax.set_xlabel("x (nm)", fontsize=8)
        ax.set_ylabel("z (nm)", fontsize=8)
        ax.tick_params(labelsize=7)
    fig.suptitle(title or f"supercells located in {n} runs ({total} cells)", fontsize=10)
    return fig


def plot_clusters(clusters: Sequence[Any], *, x_nm: np.ndarray, z_nm: np.ndarray,
                  chosen: int | None = None, title: str | None = None,
    fig: Figure | None = None) -> Figure:
    """The k-means clusters side by side: amplitude and displacement of each
    cluster's average, titled with its member count.

    Parameters
    ----------
    clusters
        Objects with ``label``, ``n_members``, ``amplitude``, ``displacement``
        (angstrom) and optionally ``score``
        (:class:`~nanotools.patterns.ClusterAverage`).
    x_nm, z_nm
        The supercell's coordinates (nm).
    chosen
        The label of the chosen cluster, framed in red.
    """
    k = max(len(clusters), 1)
    fig = _figure(2.6 * k + 0.8, 4.4, fig)
    axes = fig.subplots(2, k, squeeze=False)
    dlim = max((_symmetric_limit(c.displacement) for c in clusters), default=1.0)
    amax = max((float(np.nanmax(c.amplitude)) for c in clusters), default=1.0)
    im_amp = im_disp = None
    for j, c in enumerate(clusters):
        im_amp = _image(axes[0, j], c.amplitude, x_nm, z_nm, cmap=AMPLITUDE_CMAP, vmin=0,
                        vmax=amax, aspect="auto")
        im_disp = _image(axes[1, j], c.displacement, x_nm, z_nm, cmap=DISPLACEMENT_CMAP,
                         vmin=-dlim, vmax=dlim, aspect="auto")
        score = getattr(c, "score", None)
        head = f"cluster {c.label}: {c.n_members} members"
        if score is not None and np.isfinite(score):
            head += f"\nscore {score:.3g}"
        axes[0, j].set_title(head, fontsize=8, color="tab:red" if c.label == chosen else "k",
                             gid=f"cluster-{c.label}")
        for ax in axes[:, j]:
            ax.tick_params(labelsize=7)
            if c.label == chosen:
                for spine in ax.spines.values():
                    spine.set_edgecolor("tab:red")
                    spine.set_linewidth(2.5)
        axes[1, j].set_xlabel("x (nm)", fontsize=8)
    axes[0, 0].set_ylabel("amplitude\nz (nm)", fontsize=8)
    axes[1, 0].set_ylabel("displacement\nz (nm)", fontsize=8)
    if im_amp is not None:
        fig.colorbar(im_amp, ax=axes[0, :].tolist(), label="amplitude", shrink=0.9)
        fig.colorbar(im_disp, ax=axes[1, :].tolist(), label="u (Å)", shrink=0.9)
    total = sum(int(c.n_members) for c in clusters)
    fig.suptitle(title or f"{len(clusters)} k-means clusters of {total} supercells"
                 + (f" (chosen: {chosen})" if chosen is not None else ""), fontsize=10)
    return fig


# ------------------------------------------------------------ final maps
def plot_supercell_maps(amplitude: np.ndarray, displacement: np.ndarray, *, x_nm: np.ndarray,
                        z_nm: np.ndarray, strain: np.ndarray | dict | None = None,
                        title: str | None = None,
    fig: Figure | None = None, scale_bar_nm: float | None = None) -> Figure:
    """The averaged supercell: amplitude, displacement along G and strain,
    each with a scale bar in nm.

    Parameters
    ----------
    amplitude
        ``(ncx, ncz)`` amplitude (arbitrary units).
    displacement
        ``(ncx, ncz)`` displacement along G (angstrom).
    x_nm, z_nm
        Coordinates of the supercell (nm).
    strain
        One strain map (dimensionless), or a dict of named maps
        (``{"exz": ..., "ezz": ...}``), each drawn in its own panel.
    scale_bar_nm
        Length of the scale bars; chosen from the supercell's width if None.
    """
    panels = [("amplitude", np.asarray(amplitude, float), AMPLITUDE_CMAP, "amplitude", None)]
    dlim = _symmetric_limit(displacement)
    panels.append(("displacement u along G", np.asarray(displacement, float), DISPLACEMENT_CMAP,
                   "u (Å)", dlim))
    if strain is not None:
        named = strain.items() if isinstance(strain, dict) else [("strain", strain)]
        for name, values in named:
            values = np.asarray(values, float)
            panels.append((name, values * 100.0, STRAIN_CMAP, f"{name} (%)",
                           _symmetric_limit(values * 100.0)))
    fig = _figure(_panel_width(x_nm, z_nm) * len(panels), 3.3, fig)
    axes = np.atleast_1d(fig.subplots(1, len(panels)))
    for ax, (name, values, cmap, label, lim) in zip(axes, panels):
        kw = dict(vmin=-lim, vmax=lim) if lim is not None else {}
        img = _image(ax, values, x_nm, z_nm, cmap=cmap, **kw)
        img.set_gid(name.split()[0])
        fig.colorbar(img, ax=ax, label=label, shrink=0.85)
        ax.set_title(name, fontsize=9)
        add_scale_bar(ax, length_nm=scale_bar_nm)
    if title:
        fig.suptitle(title)
    return fig


def plot_uncertainty(amplitude_std: np.ndarray, displacement_std: np.ndarray, *,
                     x_nm: np.ndarray, z_nm: np.ndarray, n_members: int | None = None,
                     title: str | None = None,
    fig: Figure | None = None) -> Figure:
    """The uncertainty of the averaged supercell: the standard deviation of
    amplitude and displacement over the chosen cluster's members."""
    fig = _figure(_panel_width(x_nm, z_nm) * 2, 3.3, fig)
    axes = fig.subplots(1, 2)
    for ax, values, name, label in (
            (axes[0], amplitude_std, "σ amplitude", "σ amplitude"),
            (axes[1], displacement_std, "σ displacement", "σ u (Å)")):
        img = _image(ax, np.asarray(values, float), x_nm, z_nm, cmap=UNCERTAINTY_CMAP, vmin=0)
        img.set_gid(label)
        fig.colorbar(img, ax=ax, label=label, shrink=0.85)
        ax.set_title(f"{name}\nmean {np.nanmean(values):.3g}", fontsize=9)
        add_scale_bar(ax)
    fig.suptitle(title or "uncertainty over the cluster's members"
                 + (f" (n = {n_members})" if n_members else ""), fontsize=10)
    return fig


def plot_half_maps(half_supercells: np.ndarray, spread: np.ndarray, *, x_nm: np.ndarray,
                   z_nm: np.ndarray, G: float, title: str | None = None,
                   fig: Figure | None = None) -> Figure:
    """The two half maps and how far they differ: the displacement
    (``phase / G``, angstrom) of the even and of the odd starts' chosen
    supercell (the odd one aligned on the even one), and ``|even - odd| / 2``
    per pixel relative to the mean film amplitude, the expected error of the
    full average at each pixel (:func:`nanotools.trust.estimate_trust`)."""
    halves = np.asarray(half_supercells)
    fig = _figure(3 * _panel_width(x_nm, z_nm), 3.3, fig)
    axes = fig.subplots(1, 3)
    ulim = max(_symmetric_limit(np.angle(h * np.exp(-1j * np.angle(h.sum()))) / G)
               for h in halves) or 1.0
    for ax, h, name in zip(axes[:2], halves, ("even starts", "odd starts")):
        u = np.angle(h * np.exp(-1j * np.angle(h.sum()))) / G  # global phase off
        img = _image(ax, u, x_nm, z_nm, cmap=DISPLACEMENT_CMAP, vmin=-ulim, vmax=ulim)
        img.set_gid(f"half {name}")
        fig.colorbar(img, ax=ax, label="u (Å)", shrink=0.85)
        ax.set_title(f"{name}: u (Å)", fontsize=9)
        add_scale_bar(ax)
    img = _image(axes[2], np.asarray(spread, float), x_nm, z_nm, cmap=UNCERTAINTY_CMAP, vmin=0)
    img.set_gid("half-map spread")
    fig.colorbar(img, ax=axes[2], label="|even - odd| / 2", shrink=0.85)
    axes[2].set_title(f"half-map spread\nmean {np.nanmean(spread):.3g}", fontsize=9)
    add_scale_bar(axes[2])
    fig.suptitle(title or "half maps: independent halves of the starts", fontsize=10)
    return fig


def plot_comparison(reconstruction: np.ndarray, truth: np.ndarray, *, x_nm: np.ndarray,
                    z_nm: np.ndarray, G: float, title: str | None = None,
    fig: Figure | None = None) -> Figure:
    """Reconstructed and true supercell side by side: amplitude and
    displacement (``phase / G``, angstrom), both already aligned (shift,
    global phase and twin removed by the caller)."""
    rec, tru = np.asarray(reconstruction), np.asarray(truth)
    fig = _figure(2 * _panel_width(x_nm, z_nm), 6.0, fig)
    axes = fig.subplots(2, 2)
    ulim = max(_symmetric_limit(np.angle(tru) / G), _symmetric_limit(np.angle(rec) / G))
    for j, (name, obj) in enumerate((("reconstruction", rec), ("truth", tru))):
        amp = np.abs(obj) / (np.abs(obj).max() or 1.0)
        img_amp = _image(axes[0, j], amp, x_nm, z_nm, cmap=AMPLITUDE_CMAP, vmin=0, vmax=1)
        img_u = _image(axes[1, j], np.angle(obj) / G, x_nm, z_nm, cmap=DISPLACEMENT_CMAP,
                       vmin=-ulim, vmax=ulim)
        fig.colorbar(img_amp, ax=axes[0, j], label="amplitude", shrink=0.85)
        fig.colorbar(img_u, ax=axes[1, j], label="u (Å)", shrink=0.85)
        axes[0, j].set_title(f"{name}: amplitude", fontsize=9)
        axes[1, j].set_title(f"{name}: u (Å)", fontsize=9)
        for ax in axes[:, j]:
            add_scale_bar(ax)
    if title:
        fig.suptitle(title, fontsize=10)
    return fig


def plot_prtf(q: np.ndarray, prtf: np.ndarray, *, resolution_nm: float | None = None,
              threshold: float = 1 / np.e, title: str | None = None,
    fig: Figure | None = None) -> Figure:
    """Phase-retrieval transfer function of the chosen cluster against |q|
    (1/nm), with the threshold (1/e by default) that defines the resolution.

    Parameters
    ----------
    q, prtf
        Radial bins (1/nm) and the PRTF (0..1), as
        :func:`nanotools.analysis.prtf` returns them.
    resolution_nm
        The resolution to quote (nm); if None, ``2 pi / q`` at the first bin
        below the threshold.
    """
    q, prtf = np.asarray(q, float), np.asarray(prtf, float)
    fig = _figure(4.6, 3.2, fig)
    ax = fig.subplots()
    ax.plot(q, prtf, "k.-", lw=1.2, gid="prtf")
    ax.axhline(threshold, color="tab:red", ls=":", lw=1)
    if resolution_nm is None:
        below = np.nonzero(prtf < threshold)[0]
        if below.size and q[below[0]] > 0:
            resolution_nm = 2 * np.pi / q[below[0]]
    if resolution_nm is not None and np.isfinite(resolution_nm) and resolution_nm > 0:
        ax.axvline(2 * np.pi / resolution_nm, color="tab:red", lw=0.8)
        ax.set_title(f"PRTF: resolution ≈ {resolution_nm:.2g} nm", fontsize=9)
    ax.set_ylim(0, 1.05)
    ax.set_xlabel("|q| (1/nm)")
    ax.set_ylabel("PRTF")
    if title:
        fig.suptitle(title)
    return fig

"""The whole stage: :func:`prepare` chains the steps and returns a
:class:`PreparedMap`.
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass, field, replace

import numpy as np

from ..errors import InputError, ParameterError
from ..io import ReciprocalSpaceMap
from .bragg import BraggPeak, locate_bragg_peak, specular_rod_mask, zeroth_order_z
from .crop import bin_map, centre_and_crop, extend_unmeasured_z
from .measure import measure_patch, measure_period, measure_thickness
from .peak import estimate_background, subtract_background
from .pixels import as_mask
from .substrate import subtract_substrate_rod

__all__ = ["PreparedMap", "finer_z_grid", "prepare"]

#: With the substrate rod masked, the out-of-plane peak moves to the zeroth
#: order's neighbourhood where the whole map's rods put it more than this
#: many pixels away (the stress benchmark's tolerance); within it the
#: whole map's estimate, from more rods, is kept.
_Z_TOLERANCE_PX = 1.0


@dataclass
class PreparedMap:
    """The map as phasing wants it, with what was measured on it.

    Attributes
    ----------
    intensity
        Background-subtracted counts (float64, >= 0), shape ``(nx[, ny],
        nz)``, every size even, Bragg peak at index ``n // 2`` of every axis;
        zero where masked. Along z the measured rows are extended by
        unmeasured ones to ``z_subpixels`` times the window's height.
    mask
        Bool, same shape; ``True`` = not measured (free in the Fourier
        projection).
    q_step
        Momentum-transfer step per axis (1/angstrom per pixel), after binning.
    G
        ``|q|`` at the Bragg peak (1/angstrom).
    pixel_nm
        Real-space pixel per axis, ``2 pi / (n * q_step)`` in nm, for the
        prepared (cropped, binned) array.
    period_nm, period_err_nm
        Texture period and its uncertainty (nm); the error is 0 when the
        period was given.
    thickness_nm, thickness_err_nm
        Film thickness and its uncertainty (nm); 0 error when given.
    patch_nm
        Width (FWHM) of the coherent patch along x (nm).
    patch_edge_nm
        Width of the patch's soft (cos^2) edges (nm): 0 for a flat top,
        ``patch_nm`` for a Hann-shaped (near Gaussian) patch.
    background
        Flat background subtracted (counts per pixel of the input map).
    peak_index
        Sub-pixel position of the Bragg peak in the input map, per axis.
    notes
        Human-readable lines: what was measured or decided, and how.
    source
        Where the map came from (``ReciprocalSpaceMap.source``).
    peak_residual
        Peak position minus the centre of pixel ``n // 2``, per axis, in
        pixels of the prepared map (the integer centring leaves this; phasing
        may remove the matching linear phase ramp).
    bin
        The binning factor applied.
    """

    intensity: np.ndarray
    mask: np.ndarray
    q_step: tuple
    G: float
    pixel_nm: tuple
    period_nm: float
    period_err_nm: float
    thickness_nm: float
    thickness_err_nm: float
    patch_nm: float
    background: float
    peak_index: tuple
    notes: list = field(default_factory=list)
    source: str = ""
    peak_residual: tuple = ()
    bin: int = 1
    patch_edge_nm: float = 0.0

    @property
    def ndim(self) -> int:
        return self.intensity.ndim

    @property
    def shape(self) -> tuple:
        return self.intensity.shape


def _q_steps(rsm: ReciprocalSpaceMap) -> tuple:
    steps = []
    for a, n in enumerate(rsm.intensity.shape):
        q = np.asarray(rsm.q[a], float) if rsm.q is not None and len(rsm.q) > a else None
        if q is None or q.size != n or n < 2:
            raise InputError(f"the q axis {a} does not match the map's shape {rsm.shape}",
                             rsm.source or None)
        step = float(np.mean(np.diff(q)))
        if not np.isfinite(step) or step == 0:
            raise InputError(f"the q axis {a} is not increasing", rsm.source or None)
        steps.append(abs(step))
    return tuple(steps)


# ---------------------------------------------------------------------------
# The whole stage
# ---------------------------------------------------------------------------

def _given_peak(bragg_peak: str, rsm: ReciprocalSpaceMap) -> tuple:
    """Pixel position of a ``bragg_peak`` given as ``"qx,qz"`` (or
    ``"qx,qy,qz"``) in 1/angstrom."""
    try:
        values = [float(v) for v in str(bragg_peak).replace(";", ",").split(",")]
    except ValueError:
        values = []
    if len(values) != rsm.intensity.ndim:
        raise ParameterError(f"bragg_peak must be {rsm.intensity.ndim} numbers 'qx,"
                             f"{'qy,' if rsm.intensity.ndim == 3 else ''}qz' in 1/angstrom, "
                             f"got {bragg_peak!r}")
    position = []
    for a, (v, q) in enumerate(zip(values, rsm.q)):
        q = np.asarray(q, float)
        if not q[0] <= v <= q[-1]:
            raise ParameterError(f"bragg_peak {v:g} 1/angstrom is outside the map's axis {a} "
                                 f"({q[0]:.4g} to {q[-1]:.4g})")
        position.append(float(np.interp(v, q, np.arange(len(q)))))
    return tuple(position)


def prepare(rsm: ReciprocalSpaceMap, *, period_nm: float = 0.0, thickness_nm: float = 0.0,
            bin: int = 1, background: float = -1.0, crop=None, bragg_peak: str = "",
            mask_specular: str = "auto", z_subpixels: int = 1) -> PreparedMap:
    """Prepare a map for phasing and measure the texture on it.

    Steps: find the Bragg peak from the lattice and the satellites
    (:func:`~nanotools.preprocess.bragg.locate_bragg_peak`); find and mask a
    substrate rod on the specular line
    (:func:`~nanotools.preprocess.bragg.specular_rod_mask`) for the
    measurements below, then find the
    peak's out-of-plane position again without it (the in-plane position
    stays on the rod: film and substrate share the in-plane lattice; the
    out-of-plane one comes from the zeroth order's neighbourhood,
    :func:`~nanotools.preprocess.bragg.zeroth_order_z`, where the whole
    map's rods put it more than a pixel away);
    for phasing, subtract the rod modelled from the map instead
    (:func:`~nanotools.preprocess.substrate.subtract_substrate_rod`), so
    that the film's zeroth order under it stays measured;
    estimate (``background < 0``) and subtract a flat background; cut a
    window with the peak at ``n // 2`` of every axis; measure the period,
    thickness and coherent patch on that window (before binning, at full
    resolution); bin; extend the q_z range with unmeasured rows so phasing
    works on ``z_subpixels`` real-space pixels per map pixel along z
    (:func:`~nanotools.preprocess.crop.extend_unmeasured_z`).

    Parameters
    ----------
    rsm
        The map, axes ``(x[, y], z)`` with the out-of-plane axis last.
    period_nm
        Texture period (nm); 0 = measure from the satellite spacing.
    thickness_nm
        Film thickness (nm); 0 = measure from the Patterson function.
    bin
        Binning factor along every axis (1 = none).
    background
        Flat background (counts per pixel); negative = estimate from the
        floor the signal's decay approaches (zero when there is none).
    crop
        Window size in pixels of the input map (one int, or one per axis;
        None = the largest window centred on the peak that fits).
    bragg_peak
        ``"qx,qz"`` (``"qx,qy,qz"`` for a 3-D map) in 1/angstrom: the Bragg
        peak's position, overriding the search; ``""`` = find it.
    mask_specular
        {"auto", "columns", "yes", "no"}: where a substrate peak is found
        on the specular line, subtract its rod for phasing (masking only
        the pixels it outweighs the film in); where one is found, mask its
        columns over the whole ``q_z`` range; mask the specular columns
        always; never look for one.
    z_subpixels
        Real-space pixels per map pixel along z for phasing (1 = the map's
        own grid): the map's q_z range is extended by unmeasured rows. 0
        prepares the map's own grid, on which the pipeline's grid check
        (:func:`nanotools.pipeline.choose_z_grid`) then chooses.

    Returns
    -------
    PreparedMap

    Raises
    ------
    InputError
        If the map holds no counts, or if the period or thickness must be
        measured and no satellites or fringes are found; the message names
        ``rsm.source``.
    ParameterError
        If ``bin``, ``crop``, ``bragg_peak`` or ``mask_specular`` is not
        usable.
    """
    source = rsm.source or None
    intensity = np.asarray(rsm.intensity, float)
    if intensity.ndim not in (2, 3):
        raise InputError(f"the map must have 2 or 3 axes, got shape {intensity.shape}", source)
    mask = as_mask(intensity, rsm.mask)
    if mask.shape != intensity.shape:
        raise InputError(f"the mask's shape {mask.shape} differs from the map's "
                         f"{intensity.shape}", source)
    good = ~mask
    if not good.any() or not np.any(np.nan_to_num(intensity[good]) > 0):
        raise InputError("the map holds no counts (every measured pixel is zero)", source)
    if np.any(np.nan_to_num(intensity[good]) < 0):
        warnings.warn("the map has negative counts; they are clipped to zero", UserWarning,
                      stacklevel=2)
    if isinstance(bin, bool) or int(bin) != bin or bin < 1:
        raise ParameterError(f"bin must be an integer >= 1, got {bin!r}")
    bin = int(bin)
    if mask_specular not in ("auto", "columns", "yes", "no"):
        raise ParameterError("mask_specular must be auto, columns, yes or no, got "
                             f"{mask_specular!r}")
    q_step0 = _q_steps(rsm)
    notes: list[str] = []

    given = _given_peak(bragg_peak, rsm) if bragg_peak not in (None, "") else None
    if given is None:
        first = locate_bragg_peak(intensity, mask, rsm.q, axis_names=rsm.axis_names,
                                  metadata=rsm.metadata)
        in_plane = first.position_px[:-1]
    else:
        in_plane = given[:-1]
    rod, rod_note = specular_rod_mask(intensity, mask, in_plane,
                                      mode="auto" if mask_specular == "columns" else mask_specular)
    notes.append(rod_note)
    # what phasing gets: the rod subtracted where one was found (auto); the
    # measurements below keep it masked, as they were built and validated
    phased, phased_mask = intensity, mask | rod
    if mask_specular == "auto" and rod.any():
        subtracted = subtract_substrate_rod(intensity, mask, rod)
        phased, phased_mask = subtracted.intensity, subtracted.mask
        notes.append("for phasing, " + subtracted.note)
    elif rod.any():
        notes.append("for phasing, the substrate rod's columns stay masked over the whole q_z "
                     f"range, left free (mask_specular = {mask_specular})")
    if mask_specular == "no" and specular_rod_mask(intensity, mask, in_plane)[0].any():
        # the user's opt-out stands, but a sharp substrate rod left in lifts
        # the Patterson function's tail (stress draw 42: thickness 50.6 nm
        # for 27.6) and the background floor
        unmasked = ("a substrate peak is on the specular line and left unmasked "
                    "(mask_specular = no): the thickness and background measured with it "
                    "are unreliable (mask_specular = auto masks it)")
        warnings.warn(unmasked, UserWarning, stacklevel=2)
        notes.append(unmasked)
    mask = mask | rod
    if given is None:
        found = locate_bragg_peak(intensity, mask, rsm.q, axis_names=rsm.axis_names,
                                  metadata=rsm.metadata)
        if rod.any():
            # The substrate shares the film's in-plane lattice, so its rod
            # marks the film's in-plane Bragg position, which the first
            # search found. With the rod (and the zeroth order under it)
            # masked, the comb has no tooth there and can start from a
            # satellite, which then passes for the Bragg peak.
            z, z_why = found.position_px[-1], found.reasons[-1]
            # the rods left are the satellites', which can peak off G (a
            # vortex's odd orders vanish at G between two lobes: 2.65 px
            # off); where the zeroth order's own neighbourhood (read with the
            # rod subtracted, whose wings beside the mask put two stress
            # draws 3 pixels off) disagrees by more than a pixel, it is taken
            near = zeroth_order_z(phased, mask, in_plane)
            if near is not None and abs(near[0] - z) > _Z_TOLERANCE_PX:
                z, z_why = near[0], (f"{near[1]}; the rods summed over the map peak "
                                     f"{z - near[0]:+.2f} pixels from it")
            found = BraggPeak(
                tuple(in_plane) + (z,),
                tuple(f"{why} (the substrate's rod is on it; found before masking it)"
                      for why in first.reasons[:-1]) + (z_why,))
        peak = np.array(found.position_px)
        notes.append(found.note)
    else:
        peak = np.array(given)
        notes.append("Bragg peak at pixel (" + ", ".join(f"{p:.2f}" for p in peak)
                     + f"): given as bragg_peak = {bragg_peak}")

    estimate = estimate_background(intensity, mask, peak=peak)
    if background is None or background < 0:
        background = estimate.value
        notes.append(estimate.note)
    else:
        background = float(background)
        notes.append(f"background {background:.4g} counts/pixel as given "
                     f"(the map suggests {estimate.value:.4g})")
    clipped = subtract_background(phased, background, phased_mask)

    window = centre_and_crop(clipped, phased_mask, peak, crop=crop, bin=bin)
    # measure on the window before clipping: clipping at zero flattens the
    # fringe minima that the thickness is read from
    raw_window = centre_and_crop(np.where(mask, 0.0, np.nan_to_num(intensity) - background),
                                 mask, peak, crop=crop, bin=bin)
    meas_peak = np.array([p - s for p, s in zip(peak, window.start)])
    in_plane_axis = 0
    out_axis = intensity.ndim - 1

    def _measure(func, what, **kw):
        try:
            return func(raw_window.intensity, raw_window.mask, q_step0, **kw)
        except InputError as exc:
            raise InputError(f"{exc.message} ({what})", source) from None

    if period_nm and period_nm > 0:
        period, period_err = float(period_nm), 0.0
        notes.append(f"period {period:.2f} nm as given")
    else:
        m = _measure(measure_period, "period", axis=in_plane_axis, centre=meas_peak[in_plane_axis])
        period, period_err = m.value_nm, m.err_nm
        notes.append(m.note)
    if thickness_nm and thickness_nm > 0:
        thickness, thickness_err = float(thickness_nm), 0.0
        notes.append(f"thickness {thickness:.2f} nm as given")
    else:
        # on the whole map, not the window: the Patterson function does not
        # depend on where the peak is, and every row sharpens its edge
        try:
            m = measure_thickness(np.where(mask, 0.0, np.nan_to_num(intensity) - background),
                                  mask, q_step0, axis=out_axis)
        except InputError as exc:
            raise InputError(f"{exc.message} (thickness)", source) from None
        thickness, thickness_err = m.value_nm, m.err_nm
        notes.append(m.note)
    try:
        m = measure_patch(raw_window.intensity, raw_window.mask, q_step0, period_nm=period,
                          axis=in_plane_axis, centre=meas_peak[in_plane_axis])
        patch, patch_edge = m.value_nm, m.edge_nm
        notes.append(m.note)
    except InputError as exc:
        patch, patch_edge = 5.0 * period, 0.5 * period
        notes.append(f"coherent patch not measured ({exc.message}); assumed 5 periods, "
                     f"{patch:.1f} nm, with soft edges of half a period")

    out, out_mask = bin_map(window.intensity, window.mask, bin)
    if bin > 1:
        notes.append(f"binned by {bin}: shape {out.shape}")
    q_step = tuple(s * bin for s in q_step0)
    pixel_nm = tuple(float(2 * np.pi / (n * s) / 10.0) for n, s in zip(out.shape, q_step))
    qs = [float(np.interp(p, np.arange(len(q)), np.asarray(q, float)))
          for p, q in zip(peak, rsm.q)]
    G = float(np.sqrt(np.sum(np.square(qs))))
    residual = tuple(r / bin for r in window.residual)
    notes.append("cropped to " + " x ".join(str(n) for n in window.intensity.shape)
                 + " pixels around the peak; real-space pixel "
                 + " x ".join(f"{p:.3g}" for p in pixel_nm) + " nm")
    prepared = PreparedMap(
        intensity=out, mask=out_mask, q_step=q_step, G=G, pixel_nm=pixel_nm, period_nm=period,
        period_err_nm=period_err, thickness_nm=thickness, thickness_err_nm=thickness_err,
        patch_nm=patch, patch_edge_nm=patch_edge, background=float(background),
        peak_index=tuple(float(p) for p in peak), notes=notes, source=rsm.source,
        peak_residual=residual, bin=bin)
    return finer_z_grid(prepared, max(int(z_subpixels), 1))  # 0: the grid check's to choose


def finer_z_grid(prepared: PreparedMap, factor: int) -> PreparedMap:
    """``prepared`` on ``factor`` real-space pixels per map pixel along z.

    The measured q_z rows are embedded in ``factor`` times as many, the
    others unmeasured (free) (:func:`~nanotools.preprocess.crop.extend_unmeasured_z`),
    and the real-space pixel along z is ``factor`` times finer; a note says
    so. The one place the pipeline, the grid check
    (:mod:`nanotools.crossval`) and the benchmarks refine the z grid.

    Parameters
    ----------
    prepared
        A map on its own grid.
    factor
        Real-space pixels per map pixel along z (>= 1; 1 = the map's own
        grid, its unmeasured pixels set to zero).

    Returns
    -------
    PreparedMap
        Intensity and mask ``(nx[, ny], factor nz)``, ``pixel_nm`` with the
        last entry divided by ``factor``.
    """
    factor = int(factor)
    intensity, mask = extend_unmeasured_z(prepared.intensity, prepared.mask, factor)
    if factor == 1:  # unmeasured pixels zeroed, as on the finer grids
        return replace(prepared, intensity=intensity, mask=mask)
    nz = np.shape(prepared.intensity)[-1]
    note = (f"phased on {factor} real-space pixels per map pixel along z: the {nz} measured "
            f"q_z rows sit in {intensity.shape[-1]}, the others free, so the film's sharp "
            "interfaces are modelled")
    return replace(prepared, intensity=intensity, mask=mask,
                   pixel_nm=tuple(prepared.pixel_nm[:-1]) + (prepared.pixel_nm[-1] / factor,),
                   notes=list(prepared.notes) + [note])

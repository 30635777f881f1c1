"""The one list of user-settable parameters, with defaults, types and ranges.

The command line (``-p NAME VALUE``), the notebooks' ``parameters`` cells and
the widget panels all read this registry, so a parameter is declared once.
Defaults are what a user should get without tuning.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Iterable

from .errors import ParameterError

__all__ = ["Parameter", "PARAMETERS", "defaults", "stage_parameters", "arguments_for",
           "parse_value", "validate", "parse_pairs", "to_json"]


@dataclass(frozen=True)
class Parameter:
    """One parameter: its name, default, Python type, stage and allowed range.

    ``label`` is the short name a person reads beside a widget control (the
    unit is added to it); ``help`` is the sentence behind it (the tooltip,
    the command line's help). ``consumer`` names the one function that takes
    the parameter as a keyword argument of the same name (the simulate
    stage's ``sim_`` names are mapped by the code that simulates);
    :func:`arguments_for` picks its keywords from a parameter set.
    """

    name: str
    default: Any
    type: type
    stage: str
    help: str
    unit: str = ""
    minimum: float | None = None
    maximum: float | None = None
    choices: tuple | None = None
    label: str = ""
    consumer: str = ""

    def __post_init__(self) -> None:
        if not self.consumer:
            object.__setattr__(self, "consumer", _STAGE_CONSUMERS[self.stage])


#: The function that takes a stage's parameters, unless a parameter names its own.
_STAGE_CONSUMERS = {
    "simulate": "nanotools.simulate.simulate_map",
    "input": "nanotools.io.read_map",
    "preprocess": "nanotools.preprocess.prepare",
    "phasing": "nanotools.phasing.phase_retrieval",
    "patterns": "nanotools.patterns.find_supercells",
    "trust": "nanotools.trust.estimate_trust",
}


_P = Parameter
_LIST = [
    # -- simulate (used by `nanotools run` without INPUT and the first notebook)
    _P("texture", "laminate", str, "simulate", "texture to simulate",
       choices=("checkerboard", "laminate", "bent_wave"), label="texture"),
    _P("sim_period_nm", 12.0, float, "simulate", "texture period", "nm", 1e-3, label="period"),
    _P("sim_thickness_nm", 40.0, float, "simulate", "film thickness", "nm", 1e-3,
       label="thickness"),
    _P("sim_total_counts", 1e9, float, "simulate", "total counts in the map", "counts", 1.0,
       label="total"),
    _P("sim_seed", 0, int, "simulate", "seed of the simulated noise", "", 0, label="noise seed"),
    # -- input (reading one reflection's window out of an H, K, L volume)
    _P("hkl", "", str, "input",
       "reflection 'H K L' whose window is cut from an H, K, L volume (--hkl); "
       "empty = the whole map", label="reflection H K L"),
    _P("window_rlu", 0.0, float, "input",
       "full width of the window cut around --hkl along every axis; 0 = sized from the texture",
       "r.l.u.", 0.0, label="window width"),
    _P("reduce", "auto", str, "input",
       "a 3-D window to the (in-plane, L) plane: slice through the peak, sum over the narrow "
       "in-plane axis, or none (phase in 3-D); auto = sum for a stripe texture, else none",
       choices=("auto", "slice", "sum", "none"), label="reduce to 2-D"),
    # -- preprocess
    _P("period_nm", 0.0, float, "preprocess",
       "texture period; 0 = measure from the satellite spacing", "nm", 0.0, label="period"),
    _P("thickness_nm", 0.0, float, "preprocess",
       "film thickness; 0 = measure from the extent of the Patterson function", "nm", 0.0,
       label="thickness"),
    _P("bin", 1, int, "preprocess", "bin the map by this factor along every axis", "", 1, 16,
       label="binning factor"),
    _P("background", -1.0, float, "preprocess",
       "flat background per pixel to subtract; -1 = the floor the signal's decay approaches "
       "(0 when the map shows none)",
       "counts", -1.0, label="background"),
    _P("bragg_peak", "", str, "preprocess",
       "Bragg peak position 'qx,qz' ('qx,qy,qz' in 3-D) in 1/angstrom; empty = found from "
       "the lattice (q = 0, integer H, K) and the satellites' comb", label="Bragg peak (q)"),
    _P("mask_specular", "auto", str, "preprocess",
       "a substrate truncation rod on the specular line: auto = where a substrate peak is "
       "found, subtract its rod modelled from the map for phasing (masking only where it "
       "outweighs the film), columns = where one is found, mask its columns over the whole "
       "q_z range, yes = always mask the specular columns, no = never look for one",
       choices=("auto", "columns", "yes", "no"),
       label="substrate rod"),
    _P("z_subpixels", 1, int, "preprocess",
       "real-space pixels per map pixel along z for phasing: the map's q_z range is extended "
       "by unmeasured (free) rows, so a film's sharp interfaces are modelled; 1 = the map's "
       "own grid; 0 = 1, or 2 where that grid's runs predict held-out pixels far better "
       "(cross-validation, before phasing; see the README)", "", 0, 8, label="z subpixels"),
    _P("unit_cell", "", str, "preprocess",
       "lattice constants 'a,b,c' in angstrom for r.l.u. axes (overrides the file)",
       label="unit cell (a,b,c)",
       consumer="nanotools.io.read_map"),
    # -- phasing
    _P("n_starts", 32, int, "phasing", "number of random starts", "", 1, 100000,
       label="random starts"),
    _P("algorithm", "HIO**1000 RAAR**500 ER**200", str, "phasing",
       "sequence of ALGO**N steps, ALGO in ER, HIO, RAAR; total = n_iterations per start",
       label="algorithm"),
    _P("beta", 0.9, float, "phasing", "feedback parameter of HIO and RAAR", "", 0.0, 1.0,
       label="feedback beta"),
    _P("support_margin", 1.15, float, "phasing",
       "initial support = estimated film slab x coherent patch (its FWHM plus its soft "
       "edges' reach), enlarged by this factor",
       "", 0.5, 4.0,
       label="support margin"),
    _P("shrink_wrap_every", 20, int, "phasing", "shrink-wrap period; 0 = never", "iterations", 0,
       label="shrink-wrap every"),
    _P("shrink_wrap_threshold", 0.12, float, "phasing",
       "shrink-wrap keeps pixels above this fraction of the blurred maximum", "", 0.0, 1.0,
       label="shrink-wrap threshold"),
    _P("shrink_wrap_sigma_nm", 2.0, float, "phasing", "blur width of shrink-wrap", "nm", 0.0,
       label="shrink-wrap blur"),
    _P("amplitude_constraint", 0.5, float, "phasing",
       "pull the amplitude towards its average over one period (0 = off, 1 = hard); "
       "annealed to 0 over the first 70 % of the iterations",
       "", 0.0, 1.0, label="amplitude constraint"),
    _P("psf_fwhm_px", 0.0, float, "phasing",
       "partial coherence: model intensity = coherent intensity convolved with a point-spread "
       "function, starting as a Gaussian of this FWHM and refined (Richardson-Lucy); 0 = off",
       "pixels", 0.0, 16.0, label="PSF start width"),
    _P("psf_start", 0.5, float, "phasing",
       "fraction of the iterations before the point-spread function switches on", "", 0.0, 1.0,
       label="PSF switch-on"),
    _P("psf_update_every", 20, int, "phasing",
       "iterations between updates of the point-spread function; 0 = fixed", "iterations", 0,
       label="PSF update every"),
    _P("pixel_average", True, bool, "phasing",
       "phase against the modulus damped by one pixel's transform (sinc per axis), so that "
       "each pixel of the image is the film's average over it; false = the modulus itself",
       label="pixel averages"),
    _P("precision", "single", str, "phasing", "floating-point precision",
       choices=("single", "double"), label="precision"),
    _P("backend", "numpy", str, "phasing", "array library", choices=("numpy", "cupy"),
       label="array library"),
    _P("keep_runs", 16, int, "phasing", "number of best runs stored in result.h5", "", 0,
       label="runs kept",
       consumer="nanotools.io.write_result"),
    # -- patterns
    _P("n_clusters", 3, int, "patterns", "number of k-means clusters", "", 1, 100,
       label="clusters"),
    _P("best_fraction", 0.5, float, "patterns",
       "fraction of runs (lowest Fourier error) passed to pattern recognition", "", 0.0, 1.0,
       label="best runs fraction"),
    _P("patch_threshold", 0.5, float, "patterns",
       "a supercell is cut only where the run's amplitude envelope exceeds this fraction "
       "of its maximum",
       "", 0.0, 1.0, label="patch threshold"),
    _P("min_cluster_fraction", 0.1, float, "patterns",
       "a cluster must hold at least this fraction of the supercells to be chosen", "", 0.0, 1.0,
       label="min cluster fraction"),
    _P("cluster_merge_factor", 2.0, float, "patterns",
       "clusters whose averages lie closer than this many times their members' rms spread are "
       "merged before choosing; 0 = never merge", "", 0.0, 10.0, label="cluster merge factor"),
    # off by default: on family draws 0-19 at defaults it moved the errors
    # by -0.03..+0.02 (no gain) and doubled the time per map (README,
    # "Refinement against the map"); 300 is what was measured
    _P("refine_iterations", 0, int, "patterns",
       "iterations of the chosen average's refinement against the whole map (a periodic "
       "texture through a coherent patch, whose fitted coherence says whether the data are "
       "one coherent patch or an ensemble; 2-D maps); 0 = off", "iterations", 0,
       label="refinement"),
    _P("refine_prior", 1.0, float, "patterns",
       "weight of the refinement's displacement prior (the amplitude even along x), kept "
       "unless the Poisson noise rules it out against the prior-free fit; 0 = none", "", 0.0,
       label="refinement prior"),
    # -- trust (half maps and data misfit: nanotools.trust)
    # the estimate was 0.56-1.64 x the true error on the calibration maps, so
    # 0.055 flags every result whose true error may exceed 0.10
    _P("trust_max_error", 0.055, float, "trust",
       "a result is reliable only if its estimated complex error is at most this", "", 0.0,
       label="max estimated error"),
    # converged runs fit to 0.75-1.05 x the floor; at 1.3 x the part of the
    # data the model does not explain is 0.8 x the noise (sqrt(1.3^2 - 1)).
    # 1.5 let through a family draw imaged 0.15 wrong whose starts all agreed
    # (misfit 1.42 x; the truth fits such maps to 1.0 x)
    _P("trust_max_misfit", 1.3, float, "trust",
       "a result is reliable only if its runs' Fourier error is at most this multiple of the "
       "Poisson noise floor", "", 1.0, label="max misfit / noise"),
    # on 20 held-out family draws the answer moved by 0.007-0.20 (median
    # 0.043) without the prior where it was right, 0.075-0.74 (median 0.19)
    # where it was wrong
    _P("trust_prior_fraction", 0.5, float, "trust",
       "share of the starts run again without the amplitude prior, to see how far the image "
       "rests on it (0 = not checked)", "", 0.0, 4.0, label="prior check starts",
       consumer="nanotools.trust.prior_free_starts"),
    _P("trust_min_cells", 4, int, "trust",
       "a result is reliable only if each half of the starts yields at least this many "
       "supercells", "", 1, label="min supercells per half"),
]
PARAMETERS: dict[str, Parameter] = {p.name: p for p in _LIST}


def defaults(stage: str | None = None) -> dict[str, Any]:
    """Default value of every parameter.

    Parameters
    ----------
    stage
        Only this stage's parameters, if given.

    Returns
    -------
    dict
        Name -> default.
    """
    return {p.name: p.default for p in _LIST if stage is None or p.stage == stage}


def stage_parameters(params: dict[str, Any], stage: str) -> dict[str, Any]:
    """The entries of a parameter set that belong to one stage.

    Parameters
    ----------
    params
        Name -> value.
    stage
        A stage name (:attr:`Parameter.stage`).

    Returns
    -------
    dict
        The stage's entries.
    """
    return {k: v for k, v in params.items() if PARAMETERS[k].stage == stage}


def arguments_for(consumer: str, params: dict[str, Any]) -> dict[str, Any]:
    """The entries of ``params`` that ``consumer`` takes as keyword arguments.

    Parameters
    ----------
    consumer
        Dotted name of a stage function, e.g. ``"nanotools.phasing.phase_retrieval"``
        (:attr:`Parameter.consumer`).
    params
        A parameter set (name -> value), e.g. from :func:`validate`.

    Returns
    -------
    dict
        The keyword arguments, in the order of ``params``.
    """
    return {k: v for k, v in params.items() if PARAMETERS[k].consumer == consumer}


def parse_value(name: str, value: Any) -> Any:
    """Convert a value to the parameter's type and check its range.

    Parameters
    ----------
    name
        The parameter's name.
    value
        A string from the command line or a literal.

    Returns
    -------
    object
        The typed value.

    Raises
    ------
    ParameterError
        Unknown name, wrong type, outside the range or the choices.
    """
    if name not in PARAMETERS:
        known = ", ".join(sorted(PARAMETERS))
        raise ParameterError(f"unknown parameter '{name}' (known: {known})")
    p = PARAMETERS[name]
    try:
        if p.type is bool:
            if isinstance(value, str):
                if value.lower() not in ("true", "false", "1", "0", "yes", "no"):
                    raise ValueError
                value = value.lower() in ("true", "1", "yes")
            converted = bool(value)
        elif p.type is int:
            if isinstance(value, bool):
                raise ValueError
            f = float(value)
            if not f.is_integer():
                raise ValueError
            converted = int(f)
        elif p.type is float:
            if isinstance(value, bool):
                raise ValueError
            converted = float(value)
            if converted != converted:  # NaN
                raise ValueError
        else:
            if not isinstance(value, str):
                raise ValueError
            converted = value
    except (TypeError, ValueError):
        raise ParameterError(
            f"parameter '{name}' must be of type {p.type.__name__}, got {value!r}") from None
    if p.choices is not None and converted not in p.choices:
        raise ParameterError(f"parameter '{name}' must be one of {', '.join(map(str, p.choices))}, "
                             f"got {converted!r}")
    if p.minimum is not None and converted < p.minimum:
        raise ParameterError(f"parameter '{name}' must be >= {p.minimum}, got {converted!r}")
    if p.maximum is not None and converted > p.maximum:
        raise ParameterError(f"parameter '{name}' must be <= {p.maximum}, got {converted!r}")
    return converted


def validate(params: dict[str, Any] | None = None) -> dict[str, Any]:
    """All parameters: the defaults updated with ``params``, each checked.

    Parameters
    ----------
    params
        Name -> value to override.

    Returns
    -------
    dict
        Every parameter's typed value.
    """
    full = defaults()
    for name, value in (params or {}).items():
        full[name] = parse_value(name, value)
    return full


def parse_pairs(pairs: Iterable[tuple[str, str]]) -> dict[str, Any]:
    """Parse ``-p NAME VALUE`` pairs from the command line.

    Parameters
    ----------
    pairs
        ``(name, value)`` strings.

    Returns
    -------
    dict
        Name -> typed value.
    """
    return {name: parse_value(name, value) for name, value in pairs}


def to_json(params: dict[str, Any]) -> str:
    """The parameter set as JSON, for provenance.

    Parameters
    ----------
    params
        Name -> value.

    Returns
    -------
    str
        JSON with sorted keys.
    """
    return json.dumps(params, sort_keys=True)

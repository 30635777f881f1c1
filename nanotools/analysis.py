"""Physics from a supercell: displacement, strain, comparison, resolution.

A supercell is a complex array ``(n_cell, n_film)``: one texture period along
x (periodic: the cell wraps around) by the film rows along z.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import optimize

from .errors import ParameterError

__all__ = ["SupercellMaps", "supercell_maps", "displacement", "strain",
           "align_supercell", "compare_supercells", "fourier_shift", "prtf",
           "best_integer_shift", "supercell_half_rows"]


@dataclass
class SupercellMaps:
    """Physical maps of one supercell, all ``(n_cell, n_film)``.

    Attributes
    ----------
    amplitude
        Scattering strength (arbitrary units, mean 1 inside the film).
    phase
        Unwrapped phase (radians), amplitude-weighted mean 0.
    displacement
        Lattice displacement along G (angstrom): ``phase / |G|``.
    strain_zz, strain_xz
        ``du/dz`` and ``du/dx`` (dimensionless), from phase differences of
        neighbouring pixels, so no unwrapping enters.
    x_nm, z_nm
        Pixel-centre coordinates (nm); z = 0 at the film centre.
    """

    amplitude: np.ndarray
    phase: np.ndarray
    displacement: np.ndarray
    strain_zz: np.ndarray
    strain_xz: np.ndarray
    x_nm: np.ndarray
    z_nm: np.ndarray


def _remove_global_phase(cell: np.ndarray) -> np.ndarray:
    """Rotate so that the amplitude-weighted mean phase is zero."""
    s = np.sum(cell)
    return cell * np.exp(-1j * np.angle(s)) if abs(s) > 0 else cell


def displacement(cell: np.ndarray, G: float) -> np.ndarray:
    """Displacement along G (angstrom) from the phase of ``cell``: global phase
    removed, unwrapped (scikit-image), divided by ``|G|`` (1/angstrom)."""
    from skimage.restoration import unwrap_phase

    c = _remove_global_phase(np.asarray(cell))
    phase = unwrap_phase(np.angle(c))
    w = np.abs(c) ** 2
    phase -= np.sum(phase * w) / max(np.sum(w), 1e-30)
    return phase / G


def strain(cell: np.ndarray, G: float, pixel_nm: tuple) -> tuple[np.ndarray, np.ndarray]:
    """``(du/dz, du/dx)``, dimensionless, from phase differences of neighbours.

    ``angle(c[i+1] conj(c[i-1])) / (2 d |G|)`` is exact for a linear phase and
    needs no unwrapping. x is periodic (one texture period); along z the
    film's first and last rows use one-sided differences.
    """
    c = np.asarray(cell)
    dx_A, dz_A = pixel_nm[0] * 10.0, pixel_nm[-1] * 10.0
    exz = np.angle(np.roll(c, -1, axis=0) * np.conj(np.roll(c, 1, axis=0))) / (2 * dx_A * G)
    ezz = np.empty(c.shape)
    ezz[:, 1:-1] = np.angle(c[:, 2:] * np.conj(c[:, :-2])) / (2 * dz_A * G)
    ezz[:, 0] = np.angle(c[:, 1] * np.conj(c[:, 0])) / (dz_A * G)
    ezz[:, -1] = np.angle(c[:, -1] * np.conj(c[:, -2])) / (dz_A * G)
    return ezz, exz


def supercell_maps(cell: np.ndarray, *, G: float, pixel_nm: tuple) -> SupercellMaps:
    """Amplitude, phase, displacement (angstrom) and strain maps of a supercell.

    Parameters
    ----------
    cell
        Complex ``(n_cell, n_film)``.
    G
        Bragg vector length (1/angstrom).
    pixel_nm
        ``(dx, dz)`` of the supercell's samples (nm).
    """
    c = _remove_global_phase(np.asarray(cell))
    amp = np.abs(c)
    inside = amp > 0.5 * amp.max()
    scale = amp[inside].mean() if inside.any() else 1.0
    u = displacement(c, G)
    ezz, exz = strain(c, G, pixel_nm)
    nx, nz = c.shape
    return SupercellMaps(amplitude=amp / scale, phase=u * G, displacement=u,
                         strain_zz=ezz, strain_xz=exz,
                         x_nm=np.arange(nx) * pixel_nm[0],
                         z_nm=(np.arange(nz) - nz // 2) * pixel_nm[-1])


def fourier_shift(cell: np.ndarray, shift_x: float, shift_z: float = 0.0) -> np.ndarray:
    """Shift a supercell by ``(shift_x, shift_z)`` pixels (band-limited).

    Periodic along x (a supercell wraps around); along z the cell is padded
    with zeros to twice its height first, so nothing wraps into the film.
    """
    c = np.asarray(cell)
    nx, nz = c.shape
    pad = np.zeros((nx, 2 * nz), complex)
    pad[:, :nz] = c
    kx = np.fft.fftfreq(nx)[:, None]
    kz = np.fft.fftfreq(2 * nz)[None, :]
    out = np.fft.ifft2(np.fft.fft2(pad) * np.exp(-2j * np.pi * (kx * shift_x + kz * shift_z)))
    # keep the original window; what moved out along z is lost, as it should be
    return out[:, :nz]


def _error(t: np.ndarray, r: np.ndarray) -> tuple[float, complex]:
    """min over a complex scalar a of ||a r - t|| / ||t||, and that a."""
    nr = np.vdot(r, r).real
    if nr == 0:
        return 1.0, 0j
    a = np.vdot(r, t) / nr
    return float(np.linalg.norm(a * r - t) / np.linalg.norm(t)), a


def supercell_half_rows(thickness_nm: float, dz_nm: float) -> int:
    """``m`` such that rows ``-m..m`` around the film centre hold every pixel
    the film touches (occupancy > 0).

    Parameters
    ----------
    thickness_nm
        Film thickness (nm).
    dz_nm
        Real-space pixel along the out-of-plane axis (nm).

    Returns
    -------
    int
        ``m``; a supercell has ``2 m + 1`` rows.
    """
    return max(int(np.ceil(thickness_nm / (2 * dz_nm) + 0.5 - 1e-9)) - 1, 0)


def best_integer_shift(t: np.ndarray, r: np.ndarray, max_dz: int) -> tuple[int, int, float]:
    """Cyclic x shift and bounded z shift of ``r`` maximising |<t, shifted r>|.

    Parameters
    ----------
    t, r
        Complex supercells, shape ``(n_cell, n_rows)`` (x cyclic, z rows).
    max_dz
        Largest z shift tried (rows), in both directions; rows shifted in
        are zero.

    Returns
    -------
    sx, sz : int
        Shift of ``r`` along x (in ``-n_cell // 2 .. n_cell // 2``) and z.
    overlap : float
        ``|<t, shifted r>|`` at that shift.
    """
    nx, nz = t.shape
    T = np.fft.fft(t, axis=0)
    best = (0, 0, -1.0)
    for dz in range(-max_dz, max_dz + 1):
        rz = np.zeros_like(r)
        if dz >= 0:
            rz[:, dz:] = r[:, :nz - dz]
        else:
            rz[:, :nz + dz] = r[:, -dz:]
        # correlation over cyclic x shifts, summed over z
        c = np.fft.ifft(T * np.conj(np.fft.fft(rz, axis=0)), axis=0).sum(axis=1)
        k = int(np.argmax(np.abs(c)))
        if np.abs(c[k]) > best[2]:
            best = (k, dz, float(np.abs(c[k])))
    sx = best[0] if best[0] <= nx // 2 else best[0] - nx
    return sx, best[1], best[2]


def _apply(r: np.ndarray, sx: float, sz: float, kx: float, kz: float) -> np.ndarray:
    """Multiply ``r`` by a centred linear phase ramp of (kx, kz) radians per
    pixel, then shift it by (sx, sz) pixels. In this order because a cell cut
    from a ramped field is ``shifted truth x ramp``: the ramp must come off
    before the cyclic shift moves its wrap-around jump into the cell."""
    nx, nz = r.shape
    x = np.arange(nx)[:, None] - (nx - 1) / 2
    z = np.arange(nz)[None, :] - (nz - 1) / 2
    return fourier_shift(r * np.exp(1j * (kx * x + kz * z)), sx, sz)


def _pad_rows(cell: np.ndarray, n_rows: int) -> np.ndarray:
    """``cell`` centred in ``n_rows`` rows, zeros around it."""
    extra = n_rows - cell.shape[1]
    if extra <= 0:
        return cell
    return np.pad(cell, ((0, 0), (extra // 2, extra - extra // 2)))


def _parabola_vertex(y: list) -> float:
    """Offset (-0.5..0.5) of the vertex of the parabola through three values
    at -1, 0, 1: the sub-pixel position of a correlation peak."""
    den = y[0] - 2 * y[1] + y[2]
    return float(np.clip(0.5 * (y[0] - y[2]) / den, -0.5, 0.5)) if den < 0 else 0.0


def _align_on_peak(t: np.ndarray, c: np.ndarray, twins: tuple, max_dz: int
                   ) -> tuple[np.ndarray, dict]:
    """The correlation-peak alignment of :func:`align_supercell`."""
    best = None
    for tw in twins:
        r = np.conj(c[::-1, ::-1]) if tw else c
        sx, sz, _ = best_integer_shift(t, r, max_dz)
        fx = _parabola_vertex([abs(np.vdot(fourier_shift(r, sx + d, sz), t)) for d in (-1, 0, 1)])
        fz = _parabola_vertex([abs(np.vdot(fourier_shift(r, sx, sz + d), t)) for d in (-1, 0, 1)])
        moved = fourier_shift(r, sx + fx, sz + fz)
        a = np.vdot(moved, t)
        score = abs(a) / (np.linalg.norm(moved) * np.linalg.norm(t) + 1e-30)
        if best is None or score > best[0]:
            best = (score, tw, moved, np.exp(1j * np.angle(a)), (sx + fx, sz + fz))
    score, tw, moved, phase, shift = best
    # normalised error and correlation: err**2 = 1 - corr**2 at the best scale
    info = dict(error=float(np.sqrt(max(0.0, 1.0 - score ** 2))), correlation=float(score),
                twin=bool(tw), shift=(float(shift[0]), float(shift[1])), ramp=(0.0, 0.0),
                scale=complex(phase))
    return moved * phase, info


def align_supercell(cell: np.ndarray, reference: np.ndarray, *, twin: bool | None = None,
                    ramp: bool = True, max_dz: int = 3, refine: str = "fit"
                    ) -> tuple[np.ndarray, dict]:
    """Bring ``cell`` onto ``reference``: lateral (periodic) and vertical
    shift, twin, linear phase ramp, global phase and scale.

    The one supercell aligner of the package. Both ways start from the
    integer shift that maximises the correlation (:func:`best_integer_shift`)
    for the cell and for its twin (``conj(cell[::-1, ::-1])``):

    - ``refine="fit"`` minimises the complex error over the sub-pixel shift
      and (with ``ramp``) a linear phase ramp, and scales the cell onto the
      reference: the comparison of a reconstruction with a known truth.
    - ``refine="peak"`` takes the sub-pixel shift from a parabola through the
      correlation peak along each axis and applies only the global phase, so
      each cell keeps its own amplitude: fast enough for the thousands of
      cells of pattern recognition (:func:`nanotools.patterns.align_supercells`).
      ``ramp`` is not used. (skimage's ``phase_cross_correlation`` assumes
      both axes periodic, while z is not, and changes the results.)

    Parameters
    ----------
    cell, reference
        Complex supercells of one shape ``(n_cell, n_film)``.
    twin
        True/False to force the twin choice; None tries both.
    ramp
        Also remove a linear phase ramp (the choice of Bragg-peak centre).
    max_dz
        Largest vertical shift searched (pixels).
    refine
        ``"fit"`` or ``"peak"``, see above.

    Returns
    -------
    aligned, info
        The aligned cell (scaled onto the reference; with ``"peak"`` only
        turned by the global phase) and a dict with ``error`` (normalised
        complex error), ``correlation`` (normalised, 1 = identical up to
        scale), ``shift`` (x, z pixels), ``twin``, ``ramp`` (radians per
        pixel, x and z), ``scale`` (complex factor applied).
    """
    t = np.asarray(reference, complex)
    c = np.asarray(cell, complex)
    if t.ndim != 2 or c.ndim != 2 or t.shape[0] != c.shape[0]:
        raise ParameterError(f"supercells differ in shape: {c.shape} vs {t.shape}")
    # a film measured a row thicker or thinner: pad the shorter cell with
    # empty rows (z is not periodic, so empty rows are what lies beyond it)
    t, c = _pad_rows(t, max(t.shape[1], c.shape[1])), _pad_rows(c, max(t.shape[1], c.shape[1]))
    if not np.any(t) or not np.isfinite(t).all() or not np.isfinite(c).all():
        raise ParameterError("supercells must be finite and the reference non-zero")
    twins = (False, True) if twin is None else (twin,)
    if refine == "peak":
        return _align_on_peak(t, c, twins, max_dz)
    if refine != "fit":
        raise ParameterError(f"refine must be 'fit' or 'peak', got {refine!r}")
    best = None
    for tw in twins:
        r = np.conj(c[::-1, ::-1]) if tw else c
        sx, sz, _ = best_integer_shift(t, r, max_dz)

        def cost(p, r=r):  # r bound now: the loop moves on to the twin
            return _error(t, _apply(r, p[0], p[1], p[2] if ramp else 0.0,
                                    p[3] if ramp else 0.0))[0]

        x0 = np.array([sx, sz, 0.0, 0.0])
        res = optimize.minimize(cost, x0, method="Powell",
                                options={"xtol": 1e-3, "ftol": 1e-7, "maxfev": 4000})
        p = res.x if res.fun <= cost(x0) else x0
        err = cost(p)
        if best is None or err < best[0]:
            best = (err, tw, p)
    err, tw, p = best
    r = np.conj(c[::-1, ::-1]) if tw else c
    moved = _apply(r, p[0], p[1], p[2] if ramp else 0.0, p[3] if ramp else 0.0)
    _, a = _error(t, moved)
    info = dict(error=err, correlation=float(np.sqrt(max(0.0, 1.0 - err ** 2))), twin=bool(tw),
                shift=(float(p[0]), float(p[1])),
                ramp=(float(p[2]), float(p[3])) if ramp else (0.0, 0.0), scale=complex(a))
    return a * moved, info


def compare_supercells(reconstruction: np.ndarray, truth: np.ndarray, *,
                       ramp: bool = True) -> float:
    """Normalised complex error between a reconstructed and a true supercell.

    Removes every ambiguity of the problem first: lateral shift (periodic),
    shift along z, twin (complex conjugate of the inverted cell), linear
    phase ramp, global phase and overall scale; then returns
    ``min || a R' - T || / || T ||``. 0 is perfect; 1 means nothing in common.

    Parameters
    ----------
    reconstruction, truth
        Complex ``(n_cell, n_film)`` arrays with the same ``n_cell``; if
        ``n_film`` differs, the shorter is padded with empty rows.
    """
    return align_supercell(reconstruction, truth, ramp=ramp)[1]["error"]


def prtf(cells: np.ndarray, *, pixel_nm: tuple, threshold: float = 1 / np.e
         ) -> tuple[np.ndarray, np.ndarray, dict]:
    """Phase-retrieval transfer function of aligned supercells, and resolution.

    ``PRTF(q) = |<F_k(q)>| / sqrt(<|F_k(q)|^2>)`` over the members ``k``: 1
    where every start agrees on the phase, towards 0 where they do not.

    Parameters
    ----------
    cells
        Aligned complex supercells ``(n, n_cell, n_film)``.
    pixel_nm
        ``(dx, dz)`` (nm).
    threshold
        The resolution is the smallest length (nm) whose PRTF stays above this.

    Returns
    -------
    q, curve, resolution
        ``q`` (1/nm, radial bins), the azimuthally averaged PRTF, and a dict
        with ``x_nm``, ``z_nm`` (resolution along each axis) and ``nm``
        (radial).
    """
    cells = np.asarray(cells)
    F = np.fft.fft2(cells, axes=(1, 2))
    num = np.abs(F.mean(axis=0))
    den = np.sqrt((np.abs(F) ** 2).mean(axis=0))
    with np.errstate(invalid="ignore", divide="ignore"):
        # Fourier pixels with no power say nothing about agreement: left out
        p2 = np.where(den > 1e-9 * den.max(), num / den, np.nan)
    n_cell, n_film = cells.shape[1:]
    qx = 2 * np.pi * np.fft.fftfreq(n_cell, pixel_nm[0])[:, None]
    qz = 2 * np.pi * np.fft.fftfreq(n_film, pixel_nm[-1])[None, :]
    qr = np.sqrt(qx ** 2 + qz ** 2)
    edges = np.linspace(0, qr.max() + 1e-9, max(min(n_cell, n_film) // 2, 2) + 1)
    idx = np.digitize(qr.ravel(), edges) - 1
    flat = p2.ravel()
    curve = np.array([np.nanmean(flat[idx == i]) if np.isfinite(flat[idx == i]).any()
                      else np.nan for i in range(len(edges) - 1)])
    q = 0.5 * (edges[1:] + edges[:-1])

    def cutoff(line_q, line_p):
        keep = np.isfinite(line_p)
        line_q, line_p = line_q[keep], line_p[keep]
        order = np.argsort(line_q)
        lq, lp = line_q[order], line_p[order]
        ok = lp >= threshold
        # the largest q up to which the PRTF has stayed above threshold
        below = np.nonzero(~ok)[0]
        qmax = lq[below[0] - 1] if len(below) and below[0] > 0 else (lq[-1] if ok.all() else lq[0])
        return float(2 * np.pi / qmax) if qmax > 0 else float("inf")

    res = dict(x_nm=cutoff(np.abs(qx[:, 0]), p2[:, 0]), z_nm=cutoff(np.abs(qz[0]), p2[0]),
               nm=cutoff(q[np.isfinite(curve)], curve[np.isfinite(curve)]))
    return q, curve, res

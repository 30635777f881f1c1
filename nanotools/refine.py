"""The chosen supercell refined as a model of the whole map.

Pattern recognition averages supercells cut out of free-form runs. Each run
is an arbitrary complex field inside its support, with far more freedom than
a periodic texture needs, and on the validation family the runs fit the data
as well as the truth or better (0.79-0.96 x the Poisson floor where the truth
fits to 0.88-1.01 x): the noise they absorb, and the valley of solutions the
data leave open, go into the average. Here the average is refined as what
the film is meant to be, a periodic texture seen through a coherent patch,
with a few hundred numbers instead of tens of thousands:

    rho(x, z) = w(x) T(x, z),    T(x, z) = sum_n c_n(z) exp(2 pi i n x / P)

``c_n(z)`` are the harmonics of the supercell (``n_cell`` of them, each a
profile over the film's rows) and ``w(x) >= 0`` the lateral envelope of the
patch on the map's grid. The transform is separable,
``F(qx, qz) = sum_n W_n(qx) C_n(qz)`` with ``W_n`` the transform of
``w exp(2 pi i n x / P)`` and ``C_n`` that of ``c_n``, so the model costs
matrix products and one-dimensional FFTs, and it holds partial coherence as
one more number. A map that is the incoherent sum over many patches at
random lateral positions (an ensemble) has no interference between
satellite orders, ``sum_n |W_n|^2 |C_n|^2``; one coherent patch has all of
it, ``|F|^2``. The model intensity is the mixture

    I = s [alpha |F|^2 + (1 - alpha) sum_n |W_n|^2 |C_n|^2]

and ``alpha`` (the *coherence*) is fitted with the rest. It tells the user
what the data can say: at alpha near 0 the relative phases of the satellite
orders are not measured and rest on priors (the run's constraints, and the
one below); at alpha near 1 they are measured.

The fit minimises the misfit of the moduli over the measured pixels (the
metric of the phasing, see :mod:`nanotools.phasing`) by L-BFGS-B from the
cluster average. A displacement texture scatters evenly (``|T|`` constant
along x at every height), and the data alone often leave open how evenly:
a penalty on the amplitude's variation along x (weight ``refine_prior``,
relative to the data term) is tried beside the prior-free fit, and kept
unless a likelihood-ratio test on the Poisson noise says the data rule it
out (a real amplitude contrast): then the prior-free fit is taken.

Off by default in the pipeline (``refine_iterations`` 0): on validation
family draws 0-19 it helped one-patch maps a little and moved ensembles
both ways, at twice the time per map; see README, "Refinement against the
map".
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import scipy.ndimage
from scipy import optimize

from .analysis import align_supercell
from .errors import ParameterError
from .phasing import pixel_transfer

__all__ = ["RefinedSupercell", "SupercellModel", "refine_supercell"]

@dataclass
class RefinedSupercell:
    """The outcome of :func:`refine_supercell`.

    Attributes
    ----------
    cell
        Complex refined supercell ``(n_cell, n_rows)``, on the grid of the
        average it started from.
    envelope
        ``(nx,)`` lateral envelope ``w`` of the coherent patch on the map's
        real-space grid (arbitrary scale; zero outside the fitted columns).
    coherence
        ``alpha`` in [0, 1]: 1 = one coherent patch (interference between
        satellite orders measured), 0 = an incoherent ensemble (not measured).
    misfit, start_misfit
        ``|| |F_model| - sqrt(I) || / || sqrt(I) ||`` over the measured
        pixels after and before the refinement (the start with its envelope
        and scale fitted).
    prior_kept
        Whether the displacement prior's fit was taken.
    prior_misfit_ratio
        Misfit of the prior's fit over the prior-free fit's (nan: not tried).
    iterations
        L-BFGS-B iterations of the fit taken.
    notes
        One sentence each: what was decided.
    """

    cell: np.ndarray
    envelope: np.ndarray
    coherence: float
    misfit: float
    start_misfit: float
    prior_kept: bool
    prior_misfit_ratio: float
    iterations: int
    notes: list = field(default_factory=list)


def _cfft(a: np.ndarray, axis: int) -> np.ndarray:
    """Centred, orthonormal FFT along one axis."""
    return np.fft.fftshift(np.fft.fft(np.fft.ifftshift(a, axes=axis), axis=axis, norm="ortho"),
                           axes=axis)


def _cifft(a: np.ndarray, axis: int) -> np.ndarray:
    """Its inverse, which is also its adjoint."""
    return np.fft.fftshift(np.fft.ifft(np.fft.ifftshift(a, axes=axis), axis=axis, norm="ortho"),
                           axes=axis)


class SupercellModel:
    """The separable texture-through-a-patch model of one prepared 2-D map.

    Parameters
    ----------
    prepared
        A :class:`~nanotools.preprocess.PreparedMap` (2-D, Bragg peak at
        ``n // 2`` plus ``peak_residual``).
    n_cell, n_rows
        Shape of the supercell: samples across one period, rows across the
        film (centred on the map's middle row).
    columns
        ``(first, stop)`` columns of the real-space grid where the envelope
        may be non-zero.
    pixel_average
        Model the film's pixel averages, as phasing does by default: the
        data's modulus damped by :func:`~nanotools.phasing.pixel_transfer`.
    """

    def __init__(self, prepared, n_cell: int, n_rows: int, columns: tuple, *,
                 pixel_average: bool = False):
        intensity = np.clip(np.nan_to_num(np.asarray(prepared.intensity, float)), 0, None)
        self.data = np.sqrt(intensity)
        if pixel_average:
            self.data = self.data * pixel_transfer(intensity.shape)
        self.measured = ~np.asarray(prepared.mask, bool)
        self.nx, self.nz = intensity.shape
        if n_rows > self.nz:
            raise ParameterError(f"the supercell's {n_rows} rows exceed the map's {self.nz}")
        dx = float(prepared.pixel_nm[0])
        residual = tuple(getattr(prepared, "peak_residual", ()) or (0.0, 0.0))
        self.n_cell, self.n_rows = int(n_cell), int(n_rows)
        self.orders = np.fft.fftfreq(self.n_cell, 1.0 / self.n_cell).round().astype(int)
        x_px = np.arange(self.nx) - self.nx // 2
        z_px = np.arange(self.nz) - self.nz // 2
        # the map was centred on the pixel nearest the peak: a peak d pixels
        # past the centre is a ramp exp(2 pi i d x / n) on the object
        ramp_x = np.exp(2j * np.pi * residual[0] * x_px / self.nx)
        self.ramp_z = np.exp(2j * np.pi * residual[-1] * z_px / self.nz)
        harmonics = np.exp(2j * np.pi * np.outer(x_px * dx, self.orders) / prepared.period_nm)
        self.first, self.stop = int(columns[0]), int(columns[1])
        self.basis = (harmonics * ramp_x[:, None])[self.first:self.stop]
        self.row0 = self.nz // 2 - self.n_rows // 2
        self.norm2 = float((self.data[self.measured] ** 2).sum())

    def harmonics(self, cell: np.ndarray) -> np.ndarray:
        """Return the harmonics of a supercell along x.

        Parameters
        ----------
        cell
            Complex supercell ``(n_cell, n_rows)``.

        Returns
        -------
        numpy.ndarray
            ``c_n(z)``, the same shape, orders in DFT order.
        """
        return np.fft.fft(cell, axis=0) / self.n_cell

    def cell(self, c: np.ndarray) -> np.ndarray:
        """Return the supercell of harmonics (the inverse of :meth:`harmonics`).

        Parameters
        ----------
        c
            Harmonics ``(n_cell, n_rows)``.

        Returns
        -------
        numpy.ndarray
            The complex supercell ``(n_cell, n_rows)``.
        """
        return np.fft.ifft(c, axis=0) * self.n_cell

    def transforms(self, c: np.ndarray, w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Return the lateral and vertical factors of the separable transform.

        Parameters
        ----------
        c
            Harmonics ``(n_cell, n_rows)``.
        w
            Envelope on the fitted columns ``(stop - first,)``.

        Returns
        -------
        W : numpy.ndarray
            ``W_n(qx)``, ``(nx, n_cell)``, centred like the map.
        C : numpy.ndarray
            ``C_n(qz)``, ``(n_cell, nz)``, centred like the map.
        """
        lateral = np.zeros((self.nx, self.n_cell), complex)
        lateral[self.first:self.stop] = w[:, None] * self.basis
        rows = np.zeros((self.n_cell, self.nz), complex)
        rows[:, self.row0:self.row0 + self.n_rows] = c
        return _cfft(lateral, 0), _cfft(rows * self.ramp_z[None, :], 1)

    def intensity(self, c, w, scale, alpha) -> np.ndarray:
        """Compute the model intensity.

        Parameters
        ----------
        c, w
            Harmonics and envelope, as for :meth:`transforms`.
        scale
            Overall scale ``s``.
        alpha
            Coherence, 0..1.

        Returns
        -------
        numpy.ndarray
            ``(nx, nz)``, counts per pixel.
        """
        *_, coherent, incoherent = self._terms(c, w)
        return scale * (alpha * coherent + (1 - alpha) * incoherent)

    def _terms(self, c, w):
        """``W``, ``C``, ``F = W C``, and the coherent ``|F|^2`` and
        incoherent ``sum_n |W_n|^2 |C_n|^2`` intensities (unscaled)."""
        W, C = self.transforms(c, w)
        F = W @ C
        return W, C, F, np.abs(F) ** 2, (np.abs(W) ** 2) @ (np.abs(C) ** 2)

    def loss(self, c, w, scale, alpha, eps: float = 1e-6):
        """Squared misfit of the moduli over the measured pixels, and its gradient.

        Parameters
        ----------
        c, w, scale, alpha
            As for :meth:`intensity`.
        eps
            Added to the model intensity under the square root (counts),
            so the gradient stays finite where the model is zero.

        Returns
        -------
        L : float
            ``sum (sqrt(I_model) - sqrt(I))^2``.
        dc : numpy.ndarray
            ``dL/dRe c + i dL/dIm c``.
        dw : numpy.ndarray
            ``dL/dw``.
        dscale, dalpha : float
            ``dL/dscale`` and ``dL/dalpha``.
        """
        W, C, F, coherent, incoherent = self._terms(c, w)
        model = np.sqrt(scale * (alpha * coherent + (1 - alpha) * incoherent) + eps)
        residual = np.where(self.measured, model - self.data, 0.0)
        g = residual / model  # dL/dI
        dF = scale * alpha * g * F  # dL/dF*
        dC = W.conj().T @ dF + (scale * (1 - alpha) * ((np.abs(W) ** 2).T @ g)) * C
        dW = dF @ C.conj().T + (scale * (1 - alpha) * (g @ (np.abs(C) ** 2).T)) * W
        dc = (_cifft(dC, 1) * self.ramp_z.conj()[None, :])[:, self.row0:self.row0 + self.n_rows]
        dw = 2 * np.real((_cifft(dW, 0)[self.first:self.stop] * self.basis.conj()).sum(axis=1))
        return (float((residual ** 2).sum()), 2 * dc, dw,
                float((g * (alpha * coherent + (1 - alpha) * incoherent)).sum()),
                float((g * scale * (coherent - incoherent)).sum()))

    def misfit(self, loss: float) -> float:
        """Return the relative misfit of the moduli.

        Parameters
        ----------
        loss
            A squared misfit from :meth:`loss`.

        Returns
        -------
        float
            ``sqrt(loss / sum I)`` over the measured pixels.
        """
        return float(np.sqrt(loss / max(self.norm2, 1e-300)))


def _fit(model: SupercellModel, c0, w0, alpha0, *, prior: float, iterations: int,
         fit_harmonics: bool = True):
    """L-BFGS-B over the harmonics, the envelope (>= 0), log scale and
    logit alpha; the prior penalises the amplitude's variation along x at
    each height, weighted relative to the data term."""
    n_c = c0.size
    weight = prior * model.norm2 / max(float((np.abs(model.cell(c0)) ** 2).sum()), 1e-300)

    def unpack(v):
        c = (v[:n_c] + 1j * v[n_c:2 * n_c]).reshape(c0.shape)
        return c, v[2 * n_c:-2], np.exp(v[-2]), 1.0 / (1.0 + np.exp(-v[-1]))

    def objective(v):
        c, w, scale, alpha = unpack(v)
        L, dc, dw, ds, da = model.loss(c, w, scale, alpha)
        if weight > 0:
            a = model.cell(c)
            amp = np.abs(a)
            spread = amp - amp.mean(axis=0, keepdims=True)
            L += weight * float((spread ** 2).sum())
            # d/da* of sum (|a| - mean|a|)^2 is (|a| - mean|a|) a / |a|
            # (the mean's own term sums to zero); the cell is n_cell ifft(c)
            dc = dc + 2 * weight * np.fft.fft(spread * a / np.maximum(amp, 1e-30), axis=0)
        if not fit_harmonics:
            dc = np.zeros_like(dc)
        grad = np.concatenate([dc.real.ravel(), dc.imag.ravel(), dw,
                               [ds * scale, da * alpha * (1 - alpha)]])
        return L, grad

    alpha0 = float(np.clip(alpha0, 1e-3, 1 - 1e-3))
    start = model.intensity(c0, w0, 1.0, alpha0)
    scale0 = model.norm2 / max(float(start[model.measured].sum()), 1e-300)
    v0 = np.concatenate([c0.real.ravel(), c0.imag.ravel(), w0,
                         [np.log(scale0), np.log(alpha0 / (1 - alpha0))]])
    bounds = [(None, None)] * (2 * n_c) + [(0.0, None)] * len(w0) + [(None, None)] * 2
    res = optimize.minimize(objective, v0, jac=True, method="L-BFGS-B", bounds=bounds,
                            options=dict(maxiter=int(iterations), maxcor=10))
    c, w, scale, alpha = unpack(res.x)
    data_loss = model.loss(c, w, scale, alpha)[0]
    return c, w, scale, alpha, model.misfit(data_loss), int(res.nit)


def refine_supercell(prepared, cell: np.ndarray, *, refine_iterations: int = 300,
                     refine_prior: float = 1.0, pixel_average: bool = False
                     ) -> RefinedSupercell:
    """Refine a supercell as a periodic texture through a coherent patch
    against the whole map (see the module notes).

    Parameters
    ----------
    prepared
        The :class:`~nanotools.preprocess.PreparedMap` phased (2-D).
    cell
        Complex supercell ``(n_cell, n_rows)`` to start from (a cluster
        average), rows centred on the film, ``n_cell`` samples over one
        period ``prepared.period_nm``.
    refine_iterations
        L-BFGS-B iterations of each fit.
    refine_prior
        Weight of the displacement prior relative to the data term (0: the
        prior-free fit only).
    pixel_average
        Whether ``cell`` holds the film's pixel averages (phased with
        ``pixel_average``); see :class:`SupercellModel`.

    Returns
    -------
    RefinedSupercell
        The refined cell in the frame of ``cell``, its envelope, the fitted
        coherence and the misfits, with notes.
    """
    intensity = np.asarray(prepared.intensity)
    cell = np.asarray(cell, complex)
    if intensity.ndim != 2 or cell.ndim != 2:
        raise ParameterError("supercell refinement models 2-D maps only")
    if not np.isfinite(cell).all() or not np.any(cell):
        raise ParameterError("the supercell to refine must be finite and non-zero")
    nx = intensity.shape[0]
    dx, period = float(prepared.pixel_nm[0]), float(prepared.period_nm)
    patch = float(prepared.patch_nm)
    # the envelope may reach a little beyond the measured patch (soft edges,
    # the estimate's error); it starts as the patch with soft edges
    half = min(0.65 * patch / dx, nx / 2 - 1)
    columns = (max(0, int(np.floor(nx // 2 - half))), min(nx, int(np.ceil(nx // 2 + half)) + 1))
    x_nm = (np.arange(*columns) - nx // 2) * dx
    w0 = scipy.ndimage.gaussian_filter1d((np.abs(x_nm) <= patch / 2).astype(float),
                                         0.25 * period / dx) + 1e-3
    model = SupercellModel(prepared, *cell.shape, columns, pixel_average=pixel_average)

    # where the texture sits in the patch matters to the interference terms:
    # try every whole-pixel position of the average with its envelope and
    # scale fitted, and start from the best
    trials = []
    for shift in range(model.n_cell):
        c = model.harmonics(np.roll(cell, shift, axis=0))
        *_, misfit, _ = _fit(model, c, w0, 0.5, prior=0.0, iterations=5,
                             fit_harmonics=False)
        trials.append((misfit, shift))
    start_misfit, shift = min(trials)
    c0 = model.harmonics(np.roll(cell, shift, axis=0))

    free = _fit(model, c0, w0, 0.5, prior=0.0, iterations=refine_iterations)
    chosen, ratio, kept = free, float("nan"), False
    if refine_prior > 0:
        with_prior = _fit(model, c0, w0, 0.5, prior=refine_prior, iterations=refine_iterations)
        ratio = with_prior[4] / max(free[4], 1e-300)
        if _prior_allowed(model, free[4], with_prior[4]):
            chosen, kept = with_prior, True
    c, w, _, alpha, misfit, nit = chosen
    envelope = np.zeros(nx)
    envelope[columns[0]:columns[1]] = w
    # back into the average's frame (shift and global phase; the amplitude
    # is kept), so it compares with the members of its cluster
    refined, _ = align_supercell(model.cell(c), cell, twin=False, refine="peak")
    notes = [f"supercell refined against the map as a periodic texture through a coherent "
             f"patch: misfit {start_misfit:.4f} -> {misfit:.4f}, coherence {alpha:.2f} "
             f"({_coherence_words(alpha)})"]
    if refine_prior > 0:
        notes.append(
            f"displacement prior (weight {refine_prior:g}) "
            + (f"kept: its fit is {ratio:.3f} x the prior-free misfit" if kept else
               f"dropped: its fit is {ratio:.3f} x the prior-free misfit, more than the "
               f"noise allows (the data show amplitude contrast)"))
    return RefinedSupercell(cell=refined, envelope=envelope, coherence=float(alpha),
                            misfit=float(misfit), start_misfit=float(start_misfit),
                            prior_kept=kept, prior_misfit_ratio=float(ratio), iterations=nit,
                            notes=notes)


def _prior_allowed(model: SupercellModel, free_misfit: float, prior_misfit: float) -> bool:
    """Whether the data allow the displacement prior: a likelihood-ratio test.

    The square root of a Poisson count has variance 1/4, so four times the
    squared misfit of the moduli is a chi-square over the measured pixels.
    The prior takes away about one degree of freedom per amplitude it
    evens out (``k = n_rows (n_cell - 1)``), so where it is true the prior
    fit's chi-square exceeds the free fit's by about ``k`` (the noise the
    free fit absorbed), with a spread of ``sqrt(2 k)``; more than three
    spreads beyond that, the data show a real amplitude contrast.
    """
    k = model.n_rows * (model.n_cell - 1)
    excess = 4 * model.norm2 * (prior_misfit ** 2 - free_misfit ** 2)
    return bool(excess <= k + 3 * np.sqrt(2 * k))


def _coherence_words(alpha: float) -> str:
    """What the fitted coherence means for the image, in words."""
    if alpha >= 0.7:
        return "one coherent patch: the relative phases of the satellite orders are measured"
    if alpha <= 0.3:
        return ("an incoherent ensemble: the relative phases of the satellite orders are not "
                "measured and rest on the real-space constraints")
    return "partly coherent: the relative phases of the satellite orders are weakly measured"

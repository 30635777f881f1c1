"""Which axis of a map is out-of-plane, from the data alone."""
from __future__ import annotations

import numpy as np

__all__ = ["guess_out_of_plane"]


def _profile(intensity: np.ndarray, valid: np.ndarray, peak: tuple, axis: int) -> np.ndarray:
    """1-D profile through ``peak`` along ``axis``, averaged over +-1 pixel
    across (robust to one bad pixel), masked pixels interpolated."""
    index = []
    for d, p in enumerate(peak):
        if d == axis:
            index.append(slice(None))
        else:
            index.append(slice(max(p - 1, 0), p + 2))
    block = np.where(valid, intensity, 0.0)[tuple(index)]
    weight = valid[tuple(index)].astype(float)
    others = tuple(d for d in range(intensity.ndim) if d != axis)
    num = block.sum(axis=others)
    den = weight.sum(axis=others)
    good = den > 0
    prof = np.zeros(num.shape)
    prof[good] = num[good] / den[good]
    if good.sum() >= 2 and not good.all():
        idx = np.arange(prof.size)
        prof[~good] = np.interp(idx[~good], idx[good], prof[good])
    return prof


def _fringe_ratio(prof: np.ndarray, p: int) -> tuple[float, float]:
    """Distance from the peak to its first side maximum, over the central
    lobe's full width at half maximum (both in pixels), the smaller of the
    two sides (``inf`` if there is no side maximum), and that width.

    A film's thickness fringes (|sinc|^2) give ~1.6: the first side maximum
    sits at 1.43 fringe spacings and the central lobe is 0.9 spacing wide. A
    lateral satellite of a texture seen through a coherent patch several
    periods wide sits many central-peak widths away (ratio > 3).
    """
    top = prof[p]
    if top <= 0:
        return np.inf, 0.0
    half = top / 2
    widths = []
    for step in (1, -1):
        i = p
        while 0 <= i + step < prof.size and prof[i + step] > half:
            i += step
        if not 0 <= i + step < prof.size:
            return np.inf, float(prof.size)
        a, b = prof[i], prof[i + step]  # linear interpolation of the crossing
        widths.append(abs(i - p) + (a - half) / (a - b) if a != b else abs(i - p))
    fwhm = sum(widths)
    ratios = []
    for step in (1, -1):
        i = p
        while 0 <= i + step < prof.size and prof[i + step] <= prof[i]:
            i += step  # walk down to the first minimum
        minimum = prof[i]
        j = i
        while 0 <= j + step < prof.size and prof[j + step] >= prof[j]:
            j += step  # then up to the next maximum
        if j != i and prof[j] > 1.5 * max(minimum, 1e-300) and prof[j] > 1e-4 * top:
            ratios.append(abs(j - p) / max(fwhm, 1e-9))
    return (min(ratios) if ratios else np.inf), fwhm


def guess_out_of_plane(intensity, valid, q, names):
    """Pick the out-of-plane axis from the data alone.

    Returns ``(index, reason)``; ``index`` is None when the data do not tell.
    Two cues, in order: (1) the film Bragg peak of an (00l)-type reflection
    sits far from the origin along the out-of-plane axis and near zero
    in-plane; (2) thickness fringes: the profile through the peak along the
    out-of-plane axis has side maxima at ~1.6 central-lobe widths.
    """
    from scipy import ndimage

    data = np.where(valid, intensity, 0.0)
    smooth = ndimage.uniform_filter(data, size=3, mode="nearest")
    peak = np.unravel_index(int(np.argmax(smooth)), data.shape)
    qpeak = np.array([abs(float(qi[p])) for qi, p in zip(q, peak)])
    order = np.argsort(qpeak)[::-1]
    # near zero in-plane: within a tenth of the out-of-plane component (a
    # misaligned or miscut sample); an (h0l) reflection can lie farther
    # from the origin in-plane than out of it (201: 3.2 against 1.5
    # 1/angstrom, stress draws 322 and 324), which "twice the next" took
    # for out-of-plane
    if qpeak[order[0]] > 0.3 and qpeak[order[0]] > 10.0 * qpeak[order[1]]:
        i = int(order[0])
        others = ", ".join(f"{qpeak[j]:.3g}" for j in range(len(q)) if j != i)
        return i, (f"data: the Bragg peak sits at |q| = {qpeak[i]:.3g} 1/angstrom along "
                   f"'{names[i]}', far from the origin, and near it along the other "
                   f"axes ({others} 1/angstrom)")
    measured = [_fringe_ratio(_profile(intensity, valid, peak, a), int(peak[a]))
                for a in range(data.ndim)]
    ratios = [m[0] for m in measured]
    fringe_like = [a for a, r in enumerate(ratios) if 1.0 <= r <= 2.6]
    others_clear = all(r > 3.0 for a, r in enumerate(ratios) if a not in fringe_like)
    # A peak less than 2 pixels wide is undersampled: its "side maxima" can be
    # pixel noise, so the fringe cue is only trusted on well-sampled maps.
    sampled = all(m[1] >= 2.0 for m in measured)
    if len(fringe_like) == 1 and others_clear and sampled:
        i = fringe_like[0]
        return i, (f"data: thickness fringes along '{names[i]}' (first side maximum at "
                   f"{ratios[i]:.2f} central-peak widths; "
                   + ", ".join(f"'{names[a]}': {ratios[a]:.2f}" for a in range(len(q)) if a != i)
                   + ")")
    return None, ("the data do not tell which axis is out-of-plane (peak position "
                  + ", ".join(f"{v:.3g}" for v in qpeak) + " 1/angstrom; fringe ratios "
                  + ", ".join(f"{r:.2f}" for r in ratios) + "; peak widths "
                  + ", ".join(f"{m[1]:.1f}" for m in measured) + " pixels)")

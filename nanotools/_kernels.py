"""The compiled per-pixel loops of the phasing engine (Numba), and the
block of iterations that calls FFTW's plans between them
(:attr:`nanotools.backend.Backend.native_block`).

Imported only where Numba is installed (:func:`nanotools.backend._numba_kernels`).
Every function lives at module level so that Numba's on-disk cache finds it
again in the next process: a compiled function that closes over other
compiled functions is keyed on their pickles, which carry a per-process id,
so it was compiled anew, and a new cache file written, in every process.
"""
import numba
import numpy as np
from numba import types

# error_model="numpy": no zero-division checks, so the loops vectorise;
# fastmath limited to reassociation (the error sum in SIMD lanes), fused
# multiply-add and signed zeros: round-off-level changes only.
_OPTS = dict(cache=True, nogil=True, boundscheck=False, error_model="numpy",
             fastmath={"reassoc", "contract", "nsz"})


#: Pixels whose squared misfits are summed in the real dtype (float32 sums
#: vectorise: Numba widens a mixed float32 / int expression to float64,
#: which held this loop to 4 SIMD lanes and cost it a third of its time)
#: before the partial sum joins a float64 total (so the round-off of the
#: misfit stays that of 4 096 terms, also on 3-D maps of millions).
_SUM_BLOCK = 4096


# The measured pixels come as one bool per pixel, the weight 1 or 0 made in
# the loop (``one * measured``; free pixels keep their modulus, ``1 -
# weight``): a 3-D start's projection is bound by memory, and it took 900
# us per 128^3 start with two real arrays (weight and free) against 450
# with one byte per pixel, for the same bits.


@numba.njit(**_OPTS)
def fourier(F, amp, measured, c_mod, c_proj, eps, err2):
    n_starts, n_pixels = F.shape
    one = np.ones(1, amp.dtype)[0]
    for b in range(n_starts):
        total = 0.0
        for i0 in range(0, n_pixels, _SUM_BLOCK):
            n_in = min(_SUM_BLOCK, n_pixels - i0)
            F_in, amp_in = F[b, i0:i0 + n_in], amp[i0:i0 + n_in]
            measured_in = measured[i0:i0 + n_in]
            acc = one - one  # zero in the real dtype
            for i in range(n_in):
                v = F_in[i]
                re, im = v.real, v.imag
                w = one * measured_in[i]
                m = np.sqrt(re * re + im * im) * c_mod
                d = m * w - amp_in[i]
                acc += d * d
                s = (amp_in[i] / max(m, eps) + (one - w)) * c_proj
                F_in[i] = complex(re * s, im * s)
            total += acc
        err2[b] = total


@numba.njit(**_OPTS)
def intensity(F, c2, out):
    n_starts, n_pixels = F.shape
    for b in range(n_starts):
        for i in range(n_pixels):
            v = F[b, i]
            out[b, i] = (v.real * v.real + v.imag * v.imag) * c2


@numba.njit(**_OPTS)
def fourier_partial(F, model, centre, amp, measured, c_mod2, c_proj, eps, err2):
    n_starts, n_pixels = F.shape
    one = np.ones(1, amp.dtype)[0]
    for b in range(n_starts):
        acc = amp[0] * 0
        low = centre[b] * c_mod2
        for i in range(n_pixels):
            v = F[b, i]
            w = one * measured[i]
            m = np.sqrt(max(model[b, i], low * (v.real * v.real + v.imag * v.imag)))
            d = m * w - amp[i]
            acc += d * d
            s = (amp[i] / max(m, eps) + (one - w)) * c_proj
            F[b, i] = complex(v.real * s, v.imag * s)
        err2[b] = acc


@numba.njit(**_OPTS)
def real(psi, p, support, c1, c2, strength, keep, target, x0, y0, z0, use_amp, eps):
    n_starts, nx, ny, nz = psi.shape
    bx, by, bz = target.shape[1:]
    one = keep - keep + 1  # 1 in the real dtype
    for b in range(n_starts):
        for x in range(nx):
            for y in range(ny):
                # a select, not a branch, so the loop vectorises
                for z in range(nz):
                    v = p[b, x, y, z]
                    out = c1 * psi[b, x, y, z] + c2 * v
                    psi[b, x, y, z] = v if support[b, x, y, z] else out
                if use_amp and x0 <= x < x0 + bx and y0 <= y < y0 + by:
                    t = target[b, x - x0, y - y0]
                    psi_row = psi[b, x, y, z0:z0 + bz]
                    s_row = support[b, x, y, z0:z0 + bz]
                    # inside the support psi is p now (the loop above), so
                    # psi is scaled by f there and by 1 outside: one select
                    # of a real factor, which vectorises (a select of the
                    # new or the old complex value kept this loop scalar at
                    # 1.7x the time of the whole first loop)
                    for z in range(bz):
                        v = psi_row[z]
                        re, im = v.real, v.imag
                        mag = np.sqrt(re * re + im * im)
                        f = (keep * mag + strength * t[z]) / max(mag, eps)
                        g = f if s_row[z] else one
                        psi_row[z] = complex(re * g, im * g)


@numba.njit(**_OPTS)
def region_amplitude(p, support, x0, y0, z0, out):
    n_starts, bx, by, bz = out.shape
    for b in range(n_starts):
        for x in range(bx):
            for y in range(by):
                row_p = p[b, x0 + x, y0 + y, z0:z0 + bz]
                row_s = support[b, x0 + x, y0 + y, z0:z0 + bz]
                row = out[b, x, y]
                for z in range(bz):
                    v = row_p[z]
                    row[z] = np.sqrt(v.real * v.real + v.imag * v.imag) * row_s[z]


@numba.njit(**_OPTS)
def box_mean(a, h, frac, scale, out):
    # a running window sum per (n, m) column, the m loop innermost so it
    # runs along contiguous memory and vectorises
    n, length, m = a.shape
    acc = np.empty(m, np.float64)
    for b in range(n):
        acc[:] = 0.0
        for x in range(min(h, length)):
            for j in range(m):
                acc[j] += a[b, x, j]
        for x in range(length):  # acc: the sum of a[x - h .. x + h]
            if x + h < length:
                for j in range(m):
                    acc[j] += a[b, x + h, j]
            if x - h - 1 >= 0:
                for j in range(m):
                    acc[j] -= a[b, x - h - 1, j]
            for j in range(m):
                out[b, x, j] = acc[j] * scale
            if frac > 0 and x - h - 1 >= 0:
                for j in range(m):
                    out[b, x, j] += frac * scale * a[b, x - h - 1, j]
            if frac > 0 and x + h + 1 < length:
                for j in range(m):
                    out[b, x, j] += frac * scale * a[b, x + h + 1, j]


# FFTW's executor, found by name in the library that
# nanotools.backend._NativeFFTW loads before the first call
execute = types.ExternalFunction("fftwf_execute", types.void(types.intp))


@numba.njit(cache=True, nogil=True, boundscheck=False, error_model="numpy")
def block(fwd, inv, F_flat, psi, p, support, err2, it0, it1, amp, measured, c_mod,
          c_proj, eps, c1, c2, strength, keep, use_amp, lateral_in, srcs, dsts, mean, den,
          h, frac, scale, x0, y0, z0, no_target):
    for it in range(it0, it1):
        execute(fwd)
        fourier(F_flat, amp, measured, c_mod, c_proj, eps, err2[:, it])
        execute(inv)
        if use_amp[it]:
            # the lateral amplitude average over one period, as _LateralAmplitude.target
            region_amplitude(p, support, x0, y0, z0, lateral_in)
            for k in range(len(srcs)):
                box_mean(srcs[k], h, frac, scale, dsts[k])
            n, bx, by, bz = mean.shape
            for b in range(n):
                for x in range(bx):
                    for y in range(by):
                        for z in range(bz):
                            mean[b, x, y, z] /= den[b, x, y, z]
            real(psi, p, support, c1[it], c2[it], strength[it], keep[it], mean, x0, y0, z0,
                 True, eps)
        else:
            real(psi, p, support, c1[it], c2[it], strength[it], keep[it], no_target, x0,
                 y0, z0, False, eps)

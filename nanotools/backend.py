"""Array backends for the phasing engine: NumPy (default) or CuPy.

The phasing code is written once against :class:`Backend`: it creates arrays
with ``be.xp`` (NumPy or CuPy), transforms them with an :class:`FFTPlan` and
a :class:`GaussianBlur`, and applies the two per-pixel steps of every
iteration with :meth:`Backend.fourier_projection` and
:meth:`Backend.real_space_update`. All transforms act on a batch: the leading
axis holds the random starts, the transform runs over the others.

Why these choices (measured on a 2-core AMD EPYC, single precision, minimum
of repeats; see ``benchmarks/speed.py``):

- **FFT library: pyFFTW when installed.** Two FFTs of a 32 x 256 x 128 batch
  take 4.9 ns per element with pyFFTW (one thread, FFTW_MEASURE plans bound
  to fixed buffers), 12.6 ns with ``scipy.fft`` (pocketfft) and 26 ns with
  ``numpy.fft``; for 8 x 128^3, 9.9 / 19.4 / 73 ns. FFTW's single-precision
  SIMD codelets are the difference. ``scipy.fft`` is the fallback.
- **Fused per-pixel kernels (Numba) when installed.** The Fourier projection
  (modulus, error, rescaling) costs about 2.2 ns per element as six NumPy
  passes and about 0.5 ns as one compiled loop; the real-space update is one
  loop instead of three or four. Without Numba, and on CuPy, the same steps
  run as array expressions on ``xp`` (same results up to round-off).
- **The amplitude constraint in O(n).** Its target, a running mean over one
  texture period (:meth:`Backend.box_mean`), costs a few passes over the
  support box instead of FFTs over the film slab (which alone cost 1.6 x
  the two-FFT floor for 128^3).
- **No normalisation passes.** FFTW transforms are unnormalised; the
  ``1/sqrt(N)`` and ``1/N`` factors of the unitary transform pair are folded
  into the Fourier projection (``FFTPlan.modulus_scale`` /
  ``FFTPlan.projection_scale``), saving two passes per iteration.
"""
from __future__ import annotations

import hashlib
import json
import os
import platform
import threading
from contextlib import contextmanager, nullcontext
from functools import lru_cache
from pathlib import Path

import numpy as np

from .errors import ParameterError

try:
    import fcntl
except ImportError:  # Windows: threads are still serialised, processes are not
    fcntl = None

__all__ = ["Backend", "FFTPlan", "RealConvolution", "GaussianBlur", "get_backend",
           "gpu_available", "fft_libraries", "cpu_model", "cpu_key", "cpu_key_from",
           "wisdom_path", "shared_wisdom", "fftw_planner", "region_index",
           "update_coefficients"]

# FFTW plans are patient (estimated plans of these sizes are up to 5x
# slower; measured ones 1.25x slower for 256 x 128, and which one a
# measurement picks depends on the load of the moment) and shared through a
# wisdom file, so they are made once per machine and shape, and every
# process on a machine uses the same plan and rounds the same way (see
# FFTPlan). NANOTOOLS_FFTW_PLANNER=measure trades speed for planning time.
_PLANNERS = {"estimate": "FFTW_ESTIMATE", "measure": "FFTW_MEASURE",
             "patient": "FFTW_PATIENT", "exhaustive": "FFTW_EXHAUSTIVE"}


def fftw_planner() -> str:
    """The FFTW planner flag: ``$NANOTOOLS_FFTW_PLANNER`` (estimate,
    measure, patient, exhaustive), patient by default."""
    name = os.environ.get("NANOTOOLS_FFTW_PLANNER", "patient").strip().lower()
    if name not in _PLANNERS:
        raise ParameterError(f"NANOTOOLS_FFTW_PLANNER must be one of {', '.join(_PLANNERS)}, "
                             f"got {name!r}")
    return _PLANNERS[name]


_planning_lock = threading.Lock()
# shared_wisdom calls nested in one thread: only the outermost reads and saves
_planning_depth = threading.local()
# the iterations' transforms run inside phasing's thread pool over starts
# (be.workers threads): each transform itself gets one thread
_ONE_THREAD = {"workers": 1}


#: The CPU features that decide which FFTW codelets run (x86 and Arm SIMD).
_SIMD_FLAGS = ("sse", "avx", "fma", "neon", "asimd", "sve")


@lru_cache(maxsize=1)
def _cpuinfo() -> str:
    try:
        return Path("/proc/cpuinfo").read_text(errors="replace")
    except OSError:
        return ""


def cpu_model() -> str:
    """This processor's model name (``/proc/cpuinfo``, else
    :func:`platform.processor`), for benchmark headers."""
    return _model_and_flags(_cpuinfo())[0] or platform.processor() or "unknown CPU"


def cpu_key() -> str:
    """Name of this processor model for the wisdom file
    (:func:`cpu_key_from` on ``/proc/cpuinfo``; the processor's name where
    there is none). A plan measured on one CPU is only a guess on another: a
    home folder shared by the nodes of a cluster, or a virtual machine moved
    to other hardware, keeps one file per model."""
    return cpu_key_from(_cpuinfo(), platform.processor(), platform.machine())


def _model_and_flags(cpuinfo: str) -> tuple[str, str]:
    """Model name and sorted SIMD flags of the first processor in ``cpuinfo``."""
    model, flags = "", ""
    for line in cpuinfo.splitlines():
        key, _, value = line.partition(":")
        key = key.strip().lower()
        if key in ("model name", "cpu model", "cpu part") and not model:
            model = value.strip()
        elif key in ("flags", "features") and not flags:
            flags = " ".join(sorted(f for f in value.split() if f.startswith(_SIMD_FLAGS)))
        if model and flags:  # the first processor's lines are enough
            break
    return model, flags


def cpu_key_from(cpuinfo: str, processor: str = "", machine: str = "") -> str:
    """``<machine>-<digest>``: the architecture and a digest of the model
    name and the SIMD flags (the features that choose FFTW's codelets) of
    the first processor in ``cpuinfo`` (``/proc/cpuinfo`` text), or of
    ``processor`` when that holds no model name. Flag order and other flags
    (``hypervisor``, microcode features) do not change it."""
    model, flags = _model_and_flags(cpuinfo)
    digest = hashlib.sha1(f"{model or processor}|{flags}".encode()).hexdigest()[:12]
    return f"{machine or 'cpu'}-{digest}"


def wisdom_path() -> Path | None:
    """The FFTW wisdom file shared by every nanotools process of this user on
    this processor model: ``$NANOTOOLS_FFTW_WISDOM``, else
    ``~/.cache/nanotools/fftw-wisdom-<cpu_key()>``; None when the variable is
    set to an empty string (no sharing)."""
    env = os.environ.get("NANOTOOLS_FFTW_WISDOM")
    if env is not None:
        return Path(env) if env else None
    cache = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "nanotools"
    return cache / f"fftw-wisdom-{cpu_key()}"


_WISDOM_FORMAT = "nanotools-fftw-wisdom-1"


def _read_wisdom(path: Path) -> tuple:
    """The wisdom stored in ``path``: JSON text holding FFTW's own wisdom
    strings (text, one per precision), never code, so a file planted in the
    cache folder can at worst give a slow plan. Raises ValueError, KeyError
    or TypeError on anything else."""
    stored = json.loads(path.read_text(encoding="ascii"))
    if stored["format"] != _WISDOM_FORMAT:
        raise ValueError("not nanotools FFTW wisdom")
    return tuple(str(w).encode("ascii") for w in stored["wisdom"])


@contextmanager
def shared_wisdom():
    """Plan under a lock (threads and processes), starting from the shared
    wisdom and saving what was learnt, so that two processes planning the same
    transform at once end with the same plan instead of two measured ones.

    Calls nested in one thread (a batch's set-up around the objects that
    plan for it) read and save the file once, in the outermost: reading,
    importing and exporting a wisdom file of 1.8 MB took 37 ms, three times
    in the set-up of every 2-D run, 3 % of its time."""
    if getattr(_planning_depth, "n", 0):
        yield
        return
    import pyfftw
    path = wisdom_path()
    with _planning_lock:
        _planning_depth.n = 1
        lock_file = None
        unreadable = False  # a file that is not our wisdom is replaced, changed or not
        try:
            if path is not None:
                try:
                    path.parent.mkdir(parents=True, exist_ok=True)
                    lock_file = open(str(path) + ".lock", "a+")
                    if fcntl is not None:
                        fcntl.flock(lock_file, fcntl.LOCK_EX)
                    if path.exists():
                        pyfftw.import_wisdom(_read_wisdom(path))
                except (OSError, ValueError, TypeError, KeyError):
                    # no shared wisdom (or not ours): plans are this process's own
                    unreadable = path.exists()
            before = pyfftw.export_wisdom()
            yield
            after = pyfftw.export_wisdom()
            if path is not None and lock_file is not None and (after != before or unreadable):
                try:
                    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
                    tmp.write_text(json.dumps({"format": _WISDOM_FORMAT,
                                               "wisdom": [w.decode("ascii") for w in after]}))
                    os.replace(tmp, path)
                except OSError:
                    pass
        finally:
            _planning_depth.n = 0
            if lock_file is not None:
                lock_file.close()  # releases the flock


def fft_libraries() -> list[str]:
    """The CPU FFT libraries importable here, fastest first."""
    found = []
    try:
        import pyfftw  # noqa: F401
        found.append("pyfftw")
    except ImportError:
        pass
    found.append("scipy")
    return found


def gpu_available() -> bool:
    """True when CuPy imports and sees at least one CUDA device."""
    try:
        import cupy
        return cupy.cuda.runtime.getDeviceCount() > 0
    except Exception:  # ImportError, CUDARuntimeError, missing driver ...
        return False


class Backend:
    """Array library, precision, FFT library and per-pixel kernels.

    Parameters
    ----------
    name
        {"numpy", "cupy"}.
    precision
        {"single", "double"}: complex64/float32 or complex128/float64.
    workers
        Threads for the CPU FFTs; all cores by default (or the environment
        variable ``NANOTOOLS_FFT_WORKERS``). Dask workers set 1.
    fft_library
        {"pyfftw", "scipy"} for NumPy; the fastest installed by default.
    fused
        Use the compiled (Numba) per-pixel kernels; by default when Numba is
        installed and the backend is NumPy. ``False`` runs the plain array
        expressions (what CuPy always runs).
    """

    def __init__(self, name: str = "numpy", precision: str = "single",
                 workers: int | None = None, fft_library: str | None = None,
                 fused: bool | None = None):
        if precision not in ("single", "double"):
            raise ParameterError(f"precision must be 'single' or 'double', got {precision!r}")
        self.name = name
        self.precision = precision
        self.complex_dtype = np.dtype(np.complex64 if precision == "single" else np.complex128)
        self.real_dtype = np.dtype(np.float32 if precision == "single" else np.float64)
        if workers is None:
            workers = int(os.environ.get("NANOTOOLS_FFT_WORKERS", 0)) or os.cpu_count() or 1
        self.workers = max(1, int(workers))
        if name == "numpy":
            import scipy.fft
            self.xp = np
            known = fft_libraries()
            if fft_library is None:
                fft_library = known[0]
            if fft_library not in ("pyfftw", "scipy"):
                raise ParameterError(f"unknown fft_library {fft_library!r} (known: pyfftw, scipy)")
            if fft_library not in known:
                raise ParameterError("fft_library 'pyfftw' asked for, but pyFFTW is not installed "
                                     "(pip install pyfftw)")
            self.fft_library = fft_library
            self._fft = scipy.fft
            self._fft_kw = {"workers": self.workers}
            self._kernels = _numba_kernels() if fused in (None, True) else None
            self._no_target = np.ones((1, 1, 1, 1), self.real_dtype)
            if fused and self._kernels is None:
                raise ParameterError("fused kernels asked for, but Numba is not installed")
        elif name == "cupy":
            try:
                import cupy
                import cupyx.scipy.fft
            except ImportError:
                raise ParameterError("backend 'cupy' asked for, but CuPy is not installed "
                                     "(pip install 'nanotools[gpu]')") from None
            self.xp = cupy
            self.fft_library = "cufft"
            self._fft = cupyx.scipy.fft
            self._fft_kw = {}
            self._kernels = None  # CuPy fuses its own elementwise expressions well enough
        else:
            raise ParameterError(f"unknown backend {name!r} (known: numpy, cupy)")

    def __repr__(self) -> str:
        return (f"Backend({self.name!r}, {self.precision!r}, fft={self.fft_library}, "
                f"workers={self.workers}, fused={self.fused})")

    @property
    def fused(self) -> bool:
        """Whether the compiled per-pixel kernels are in use."""
        return self._kernels is not None

    # ---------------------------------------------------------------- arrays
    def empty(self, shape, dtype):
        """An uninitialised array on the device (SIMD-aligned for FFTW)."""
        if self.name == "numpy" and self.fft_library == "pyfftw":
            import pyfftw
            return pyfftw.empty_aligned(shape, dtype=dtype)
        return self.xp.empty(shape, dtype=dtype)

    def asarray(self, a, dtype=None):
        """``a`` on this backend's device, with ``dtype``."""
        return self.xp.asarray(a, dtype=dtype)

    def asnumpy(self, a) -> np.ndarray:
        """``a`` as a NumPy array on the host."""
        if self.name == "cupy":
            return self.xp.asnumpy(a)
        return np.asarray(a)

    # ---------------------------------------------------------------- FFTs
    def fft(self, a):
        """Forward unitary FFT over every axis but the first (the batch axis).
        A convenience for one-off transforms; the iterations use :meth:`plan`."""
        axes = tuple(range(1, a.ndim))
        return self._fft.fftn(a, axes=axes, norm="ortho", **self._fft_kw)

    def ifft(self, a):
        """Inverse of :meth:`fft`."""
        axes = tuple(range(1, a.ndim))
        return self._fft.ifftn(a, axes=axes, norm="ortho", **self._fft_kw)

    def planning(self):
        """A context in which every FFT plan made (by :meth:`plan`,
        :class:`RealConvolution`) comes from one read of the shared FFTW
        wisdom (:func:`shared_wisdom`); nothing to do without pyFFTW."""
        if self.name == "numpy" and self.fft_library == "pyfftw":
            return shared_wisdom()
        return nullcontext()

    @property
    def native_block(self):
        """The compiled loop that runs a block of iterations of one start
        with FFTW plans called from compiled code (no Python, no GIL between
        the transforms and the per-pixel passes), or None (no Numba, no
        pyFFTW, double precision, a GPU); see ``nanotools.phasing``."""
        if self.name != "numpy" or self._kernels is None or self.fft_library != "pyfftw" \
                or self.complex_dtype != np.complex64 or _native_fftw() is None:
            return None
        return _native_block()

    def plan(self, shape: tuple) -> FFTPlan:
        """Buffers and reusable transforms for a batch of ``shape``."""
        return FFTPlan(self, tuple(int(n) for n in shape))

    # ---------------------------------------------------------------- kernels
    def fourier_projection(self, F, amp, measured, err2, plan: FFTPlan) -> None:
        """Replace the modulus of ``F`` by the measured one, in place, and
        return each start's squared misfit.

        Parameters
        ----------
        F
            ``(n_starts, n_pixels)`` complex, the transformed batch in the
            plan's scaling; overwritten with the projection, already scaled
            for the plan's inverse transform.
        amp
            ``(n_pixels,)`` real: measured modulus, 0 where not measured.
        measured
            ``(n_pixels,)`` bool: False where masked (masked pixels keep
            their modulus: free).
        err2
            ``(n_starts,)`` float64, out: sum over measured pixels of
            ``(|F| - amp)^2`` (the Fourier error without an extra pass).
        plan
            The :class:`FFTPlan` whose scaling ``F`` carries.
        """
        c_mod = self.real_dtype.type(plan.modulus_scale)
        c_proj = self.real_dtype.type(plan.projection_scale)
        if self._kernels is not None:
            self._kernels["fourier"](F, amp, measured, c_mod, c_proj,
                                     self.real_dtype.type(1e-12), err2)
            return
        xp = self.xp
        m = xp.abs(F)
        if plan.modulus_scale != 1.0:
            m *= c_mod
        d = m * measured
        d -= amp
        err2[...] = xp.sum(d.astype(np.float64) ** 2, axis=1)
        xp.maximum(m, 1e-12, out=m)
        scale = amp / m
        scale += ~measured
        if plan.projection_scale != 1.0:
            scale *= c_proj
        F *= scale

    def model_intensity(self, F, plan: FFTPlan, out) -> None:
        """``|F|^2`` in the unitary scaling, into ``out`` (real, ``F``'s
        shape, ``(n_starts, n_pixels)``): the coherent model intensity that
        the partial-coherence model convolves."""
        c2 = self.real_dtype.type(plan.modulus_scale ** 2)
        if self._kernels is not None:
            self._kernels["intensity"](F, c2, out)
            return
        xp = self.xp
        xp.multiply(F.real, F.real, out=out)
        out += F.imag * F.imag
        if plan.modulus_scale != 1.0:
            out *= c2

    def fourier_projection_partial(self, F, model, centre, amp, measured, err2,
                                   plan: FFTPlan) -> None:
        """The Fourier projection of a partially coherent model, in place:
        ``F`` times ``amp / sqrt(model)`` where measured, unchanged where
        masked (Clark et al., Nat. Commun. 3, 993 (2012)); ``model`` is the
        coherent intensity convolved with the point-spread function.

        Parameters
        ----------
        F
            ``(n_starts, n_pixels)`` complex, in the plan's scaling;
            overwritten, scaled for the plan's inverse transform.
        model
            ``(n_starts, n_pixels)`` real: the model intensity (unitary).
        centre
            ``(n_starts,)`` real: each start's PSF at zero shift. The model
            is at least ``centre |F|^2`` (every term of the convolution is
            non-negative); taking that bound where the transform's round-off
            left less keeps the rescaling finite (at most
            ``1 / sqrt(centre)``) at the darkest pixels.
        amp, measured
            As in :meth:`fourier_projection`.
        err2
            ``(n_starts,)`` float64, out: sum over measured pixels of
            ``(sqrt(model) - amp)^2``.
        """
        c_proj = self.real_dtype.type(plan.projection_scale)
        eps = self.real_dtype.type(1e-12)
        c_mod2 = self.real_dtype.type(plan.modulus_scale ** 2)
        if self._kernels is not None:
            self._kernels["fourier_partial"](F, model, centre, amp, measured, c_mod2, c_proj,
                                             eps, err2)
            return
        xp = self.xp
        coherent = F.real * F.real
        coherent += F.imag * F.imag
        coherent *= c_mod2 * centre[:, None]
        m = xp.sqrt(xp.maximum(model, coherent))
        d = m * measured
        d -= amp
        err2[...] = xp.sum(d.astype(np.float64) ** 2, axis=1)
        xp.maximum(m, eps, out=m)
        scale = amp / m
        scale += ~measured
        if plan.projection_scale != 1.0:
            scale *= c_proj
        F *= scale

    def region_amplitude(self, p, support, corner, out) -> None:
        """``|p|`` inside the support on the box of ``out``'s shape whose
        first pixel is ``corner`` (``(x0, y0, z0)``), into ``out``
        (``(n_starts, bx, by, bz)``); ``p`` and ``support`` are
        ``(n_starts, nx, ny, nz)``."""
        if self._kernels is not None:
            self._kernels["region_amplitude"](p, support, corner[0], corner[1], corner[2], out)
            return
        sl = region_index(corner, out.shape)
        self.xp.multiply(self.xp.abs(p[sl]), support[sl], out=out)

    def box_mean(self, a, h: int, frac: float, out) -> None:
        """Running mean of ``a`` (``(N, L, M)`` real) along its middle axis,
        into ``out`` (same shape, not ``a``): the window holds ``2 h + 1``
        pixels at full weight and one more at weight ``frac`` on each side,
        ``w = 2 h + 1 + 2 frac`` pixels in all, and ``a`` is 0 beyond its
        ends. O(N L M) whatever the width: a running sum (Numba) or a
        difference of cumulative sums (array expressions), both in float64.
        """
        scale = 1.0 / (2 * h + 1 + 2 * frac)
        if self._kernels is not None:
            self._kernels["box_mean"](a, int(h), float(frac), scale, out)
            return
        xp = self.xp
        n, length, m = a.shape
        padded = xp.zeros((n, length + 2 * h + 2, m), np.float64)
        padded[:, h + 1:h + 1 + length] = a
        c = xp.zeros((n, length + 2 * h + 3, m), np.float64)
        xp.cumsum(padded, axis=1, out=c[:, 1:])
        total = c[:, 2 * h + 2:2 * h + 2 + length] - c[:, 1:1 + length]
        total += frac * (padded[:, :length] + padded[:, 2 * h + 2:])
        out[...] = total * scale

    def real_space_update(self, psi, p, support, *, algorithm: str, beta: float,
                          strength: float = 0.0, target=None, corner=(0, 0, 0)) -> None:
        """One real-space step of ER / HIO / RAAR, in place on ``psi``.

        Inside the support ``psi`` becomes ``p`` (the Fourier projection),
        optionally with its amplitude pulled towards ``target`` by
        ``strength``; outside it becomes 0 (ER), ``psi - beta p`` (HIO) or
        ``beta psi + (1 - 2 beta) p`` (RAAR).

        Parameters
        ----------
        psi, p
            ``(n_starts, nx, ny, nz)`` complex (``ny = 1`` for a 2-D map);
            ``p`` may be overwritten.
        support
            Bool, same shape.
        target, corner
            ``(n_starts, bx, by, bz)`` real: the amplitude to pull towards, on
            the box starting at pixel ``corner`` that holds every support
            pixel.
        """
        c1, c2 = update_coefficients(algorithm, beta)
        rt = self.real_dtype.type
        use_amp = strength > 0
        if self._kernels is not None:
            self._kernels["real"](psi, p, support, rt(c1), rt(c2), rt(strength),
                                  rt(1 - strength), target if use_amp else self._no_target,
                                  corner[0], corner[1], corner[2], use_amp, rt(1e-12))
            return
        xp = self.xp
        # outside the support first: it needs p before the amplitude pull
        if algorithm == "ER":
            psi.fill(0)
        else:
            if c1 != 1.0:
                psi *= rt(c1)
            psi += rt(c2) * p
        if use_amp:
            ps = p[region_index(corner, target.shape)]
            mag = xp.abs(ps)
            new = mag * rt(1 - strength)
            new += rt(strength) * target
            new /= xp.maximum(mag, 1e-12)
            ps *= new
        xp.copyto(psi, p, where=support)


def update_coefficients(algorithm: str, beta: float) -> tuple[float, float]:
    """``(c1, c2)`` of the real-space step outside the support:
    ``psi <- c1 psi + c2 p`` (ER 0, 0; HIO 1, -beta; RAAR beta, 1 - 2 beta)."""
    return {"ER": (0.0, 0.0), "HIO": (1.0, -beta), "RAAR": (beta, 1.0 - 2.0 * beta)}[algorithm]


def region_index(corner, shape) -> tuple:
    """Index of the box of ``shape`` (``(n, bx, by, bz)``) at ``corner`` in a
    ``(n, nx, ny, nz)`` batch."""
    return (slice(None),) + tuple(slice(c, c + m) for c, m in zip(corner, shape[1:]))


class FFTPlan:
    """Two batch buffers and the transforms between them, for one batch shape.

    ``psi`` holds the real-space batch, ``F`` its transform. The starts are
    transformed in chunks (:attr:`chunks`, slices of the leading axis): one
    start per chunk on the CPU, so each start's transform, projection and
    update run while it sits in cache, and the whole batch on a GPU.
    :meth:`forward` computes ``F[c]`` from ``psi[c]`` (``psi`` is kept, HIO
    and RAAR need it) and :meth:`inverse` transforms ``F[c]`` back in place.

    With pyFFTW the plans are made once for these buffers, one start per
    plan and one thread per transform, with ``FFTW_PATIENT`` by default
    (:func:`fftw_planner`). A plan is chosen by timing,
    so two processes (a resumed run, a Dask worker) could pick different
    algorithms and round differently: the plans are therefore made under a
    lock from the wisdom file every process shares (:func:`wisdom_path`), so
    every process uses the same plan, for every batch size and thread count,
    and a start's result depends on (seed, k) alone, bit for bit. With
    scipy.fft each transform also runs on one thread: the starts are spread
    over ``be.workers`` threads already, and threads inside each transform
    on top would oversubscribe the cores. The
    transforms are unnormalised: the Fourier projection applies
    :attr:`modulus_scale` to get the unitary modulus and
    :attr:`projection_scale` so the inverse lands on the unitary result.
    """

    def __init__(self, be: Backend, shape: tuple):
        self.be = be
        self.shape = shape
        n = shape[0]
        self.axes = tuple(range(1, len(shape)))
        self.psi = be.empty(shape, be.complex_dtype)
        self.F = be.empty(shape, be.complex_dtype)
        #: ``(forward, inverse)`` FFTW plan addresses per start (int64 arrays)
        #: for :attr:`Backend.native_block`, or None where it cannot run
        self.native = None
        self._fftw = be.name == "numpy" and be.fft_library == "pyfftw"
        self.chunks = [slice(j, j + 1) for j in range(n)] if be.name == "numpy" \
            else [slice(0, n)]
        size = int(np.prod(shape[1:]))
        if self._fftw:
            import pyfftw
            # the forward transform must keep psi: no FFTW_DESTROY_INPUT
            kw = dict(axes=self.axes, flags=(fftw_planner(),), threads=1)
            native = _native_fftw() if be.native_block is not None else None
            with shared_wisdom():
                self._fwd = [pyfftw.FFTW(self.psi[c], self.F[c], direction="FFTW_FORWARD",
                                         **kw) for c in self.chunks]
                self._inv = [pyfftw.FFTW(self.F[c], self.F[c], direction="FFTW_BACKWARD",
                                         **kw) for c in self.chunks]
                if native is not None:
                    # the same transforms again as bare FFTW plans, for whole
                    # blocks of iterations in compiled code; from the same
                    # wisdom, so FFTW picks the same algorithm (same bits)
                    self.native = native.plans(self.psi, self.F, fftw_planner())
            self.modulus_scale = 1.0 / np.sqrt(size)
            self.projection_scale = 1.0 / size
        else:
            self.modulus_scale = self.projection_scale = 1.0
        self._kw = _ONE_THREAD if be.name == "numpy" else {}

    def forward(self, i: int) -> None:
        """``F <- FFT(psi)`` for chunk ``i``."""
        if self._fftw:
            self._fwd[i].execute()
        else:
            c = self.chunks[i]
            self.F[c] = self.be._fft.fftn(self.psi[c], axes=self.axes, norm="ortho",
                                          **self._kw)

    def inverse(self, i: int) -> None:
        """``F <- IFFT(F)``, in place, for chunk ``i``."""
        if self._fftw:
            self._inv[i].execute()
        else:
            c = self.chunks[i]
            self.F[c] = self.be._fft.ifftn(self.F[c], axes=self.axes, norm="ortho",
                                           overwrite_x=True, **self._kw)


class RealConvolution:
    """Circular convolution of a batch of real arrays along some axes, by
    real-to-complex transforms (half the work of complex ones), with plans
    and buffers made once for ``shape``.

    The caller fills :attr:`input`; :meth:`__call__` multiplies its spectrum
    by a transfer function (one for the batch, or one per start) and returns
    the result. :meth:`spectrum` and :meth:`inverse` give the two halves
    separately (the point-spread-function update of
    :mod:`nanotools.coherence` correlates two arrays). Spectra carry the
    unnormalised FFTW scaling; :attr:`scale` (``1/N`` with FFTW, else 1) is
    folded into the transfer functions.

    Parameters
    ----------
    be
        The backend.
    shape
        Batch shape, starts first.
    axes
        The axes to transform (not 0).
    """

    def __init__(self, be: Backend, shape: tuple, axes: tuple):
        self.be, self.shape, self.axes = be, tuple(shape), tuple(axes)
        half = list(self.shape)
        half[self.axes[-1]] = self.shape[self.axes[-1]] // 2 + 1
        self.spectrum_shape = tuple(half)
        self._fftw = be.name == "numpy" and be.fft_library == "pyfftw"
        # one thread per transform: convolutions run inside the pool over starts
        self._kw = _ONE_THREAD if be.name == "numpy" else {}
        self.input = be.empty(self.shape, be.real_dtype)
        if self._fftw:
            import pyfftw
            self._spec = be.empty(self.spectrum_shape, be.complex_dtype)
            self._out = be.empty(self.shape, be.real_dtype)
            kw = dict(axes=self.axes, flags=(fftw_planner(), "FFTW_DESTROY_INPUT"), threads=1)
            with shared_wisdom():
                self._r2c = pyfftw.FFTW(self.input, self._spec, direction="FFTW_FORWARD", **kw)
                self._c2r = pyfftw.FFTW(self._spec, self._out, direction="FFTW_BACKWARD", **kw)
            self.scale = 1.0 / np.prod([self.shape[a] for a in self.axes])
        else:
            self.scale = 1.0

    def frequencies(self) -> list:
        """Frequencies (cycles per pixel) along each transformed axis, in
        the spectrum's layout."""
        freqs = []
        for i, ax in enumerate(self.axes):
            n = self.shape[ax]
            freqs.append(np.fft.rfftfreq(n) if i == len(self.axes) - 1 else np.fft.fftfreq(n))
        return freqs

    def spectrum(self):
        """The spectrum of :attr:`input` (FFTW: may destroy ``input``); with
        pyFFTW a buffer reused by the next call."""
        if self._fftw:
            self._r2c.execute()
            return self._spec
        return self.be._fft.rfftn(self.input, axes=self.axes, **self._kw)

    def inverse(self, spec):
        """The real array whose spectrum is ``spec`` (times :attr:`scale`);
        a buffer reused by the next call."""
        if self._fftw:
            if spec is not self._spec:
                self._spec[...] = spec
            self._c2r.execute()
            return self._out
        return self.be._fft.irfftn(spec, s=[self.shape[a] for a in self.axes], axes=self.axes,
                                   **self._kw)

    def __call__(self, transfer, a=None):
        """``a`` (or :attr:`input`, filled by the caller to save a copy)
        convolved: its spectrum times ``transfer`` (broadcast against the
        spectrum's shape, already times :attr:`scale`), transformed back. A
        buffer reused by the next call."""
        if a is not None:
            self.input[...] = a
        spec = self.spectrum()
        spec *= transfer
        return self.inverse(spec)


class GaussianBlur(RealConvolution):
    """Circular Gaussian blur of a batch of real arrays along some axes:
    a :class:`RealConvolution` with the transfer function
    ``exp(-2 pi^2 sum (sigma_i f_i)^2)``.

    Parameters
    ----------
    be, shape, axes
        See :class:`RealConvolution`.
    sigma_px
        Gaussian sigma per blurred axis, in pixels.
    """

    def __init__(self, be: Backend, shape: tuple, axes: tuple, sigma_px):
        super().__init__(be, shape, axes)
        g = np.zeros([1] * len(self.shape))
        for ax, f, s in zip(self.axes, self.frequencies(), sigma_px):
            g = g + ((s * f) ** 2).reshape([-1 if a == ax else 1 for a in range(len(self.shape))])
        g = np.exp(-2 * np.pi ** 2 * g)
        if self._fftw:  # FFTW is unnormalised (a division, as before: the same bits)
            g = g / np.prod([self.shape[a] for a in self.axes])
        self.transfer = be.asarray(g, be.real_dtype)

    def __call__(self, a=None):
        """The blurred ``a`` (or of :attr:`input`, filled by the caller to save a copy).
        The result is a buffer reused by the next call."""
        return super().__call__(self.transfer, a)


_PLANNER_BITS = {"FFTW_ESTIMATE": 1 << 6, "FFTW_MEASURE": 0, "FFTW_PATIENT": 1 << 5,
                 "FFTW_EXHAUSTIVE": 1 << 3}


class _NativeFFTW:
    """The single-precision FFTW library that pyFFTW loaded, reached through
    ctypes, so that compiled code can run its plans with no Python in
    between (:attr:`Backend.native_block`). The same library, so pyFFTW's
    wisdom (and :func:`shared_wisdom`) covers these plans too."""

    def __init__(self, path: str):
        import ctypes

        import llvmlite.binding

        self.lib = ctypes.CDLL(path)
        # compiled code finds fftwf_execute by name in this library
        llvmlite.binding.load_library_permanently(path)
        self.lib.fftwf_plan_dft.restype = ctypes.c_void_p
        self.lib.fftwf_plan_dft.argtypes = [ctypes.c_int, ctypes.POINTER(ctypes.c_int),
                                            ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int,
                                            ctypes.c_uint]
        self.lib.fftwf_destroy_plan.argtypes = [ctypes.c_void_p]
        self._dims = lambda shape: (ctypes.c_int * len(shape))(*shape)

    def plans(self, psi: np.ndarray, F: np.ndarray, planner: str) -> tuple:
        """Forward (``psi[k] -> F[k]``) and in-place inverse (``F[k]``) plans
        of every start ``k``, as int64 arrays of plan addresses; destroyed
        with ``psi``. Call under :func:`shared_wisdom`."""
        import weakref

        dims = self._dims(psi.shape[1:])
        flags = _PLANNER_BITS[planner]
        fwd = [self.lib.fftwf_plan_dft(len(psi.shape) - 1, dims, psi[k].ctypes.data,
                                       F[k].ctypes.data, -1, flags) for k in range(len(psi))]
        inv = [self.lib.fftwf_plan_dft(len(psi.shape) - 1, dims, F[k].ctypes.data,
                                       F[k].ctypes.data, 1, flags) for k in range(len(psi))]
        if not all(fwd + inv):
            raise RuntimeError("FFTW could not plan the transforms")
        weakref.finalize(psi, _destroy_plans, self.lib, fwd + inv)
        return np.array(fwd, np.int64), np.array(inv, np.int64)


def _destroy_plans(lib, plans) -> None:
    for plan in plans:
        lib.fftwf_destroy_plan(plan)


@lru_cache(maxsize=1)
def _native_fftw() -> _NativeFFTW | None:
    """The library behind pyFFTW's single-precision plans, found among the
    shared objects this process has mapped (Linux), or None: then the
    iterations stay in Python (:attr:`Backend.native_block` is not used)."""
    if os.environ.get("NANOTOOLS_NO_NATIVE_FFTW") or _native_block() is None:
        return None
    try:
        import pyfftw  # noqa: F401  (maps the library)
        with open("/proc/self/maps") as fh:
            paths = {line.split()[-1] for line in fh if "libfftw3f" in line
                     and "_omp" not in line and "_threads" not in line}
        if len(paths) != 1:
            return None
        return _NativeFFTW(paths.pop())
    except (OSError, ImportError, AttributeError, RuntimeError):
        return None


@lru_cache(maxsize=1)
def _native_block():
    """:attr:`Backend.native_block`'s compiled loop (None without Numba)."""
    if _numba_kernels() is None:
        return None
    from . import _kernels
    return _kernels.block


@lru_cache(maxsize=1)
def _numba_kernels() -> dict | None:
    """The fused per-pixel loops, compiled by Numba (None without Numba).

    Each loop reads and writes every pixel once; as NumPy expressions the same
    arithmetic takes four to six passes over the batch. The arithmetic is the
    one of the array expressions in :class:`Backend` (results agree to
    round-off; ``tests/test_backend.py`` checks both).
    """
    if os.environ.get("NANOTOOLS_NO_NUMBA"):
        return None
    try:
        import numba  # noqa: F401
    except ImportError:
        return None
    from . import _kernels  # an error in the loops themselves is not hidden
    return {name: getattr(_kernels, name) for name in
            ("fourier", "fourier_partial", "intensity", "real", "region_amplitude", "box_mean")}


def get_backend(name: str = "numpy", precision: str = "single", workers: int | None = None,
                *, fft_library: str | None = None, fused: bool | None = None) -> Backend:
    """A :class:`Backend` for ``name`` and ``precision`` (see :class:`Backend`)."""
    return Backend(name, precision, workers, fft_library=fft_library, fused=fused)

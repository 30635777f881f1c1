"""Backends: selection, FFT plans, blurs, and the fused kernels against the
plain array expressions (the path CuPy runs)."""
from __future__ import annotations

import numpy as np
import pytest

from nanotools.backend import (
    GaussianBlur,
    _numba_kernels,
    fft_libraries,
    get_backend,
    gpu_available,
)
from nanotools.errors import ParameterError
from nanotools.phasing import phase_retrieval
from nanotools.simulate import simulate_map

from _small import prepared_from_truth


def _rand(shape, dtype, seed=0):
    rng = np.random.default_rng(seed)
    return (rng.normal(size=shape) + 1j * rng.normal(size=shape)).astype(dtype)


def test_bad_choices():
    with pytest.raises(ParameterError):
        get_backend("torch")
    with pytest.raises(ParameterError):
        get_backend("numpy", "half")
    with pytest.raises(ParameterError):
        get_backend("numpy", fft_library="mkl")


def test_cupy_missing_is_a_parameter_error():
    try:
        import cupy  # noqa: F401
    except ImportError:
        with pytest.raises(ParameterError, match="CuPy is not installed"):
            get_backend("cupy")
    else:
        pytest.skip("CuPy is installed")


@pytest.mark.parametrize("library", fft_libraries())
@pytest.mark.parametrize("precision", ["single", "double"])
def test_plan_is_the_unitary_fft(library, precision):
    be = get_backend("numpy", precision, workers=1, fft_library=library)
    a = _rand((3, 12, 10), be.complex_dtype)
    plan = be.plan(a.shape)
    plan.psi[...] = a
    for i in range(len(plan.chunks)):
        plan.forward(i)
    expected = np.fft.fftn(a, axes=(1, 2), norm="ortho")
    tol = 1e-5 if precision == "single" else 1e-12
    # unnormalised plans carry sqrt(N): modulus_scale brings F to the unitary one
    np.testing.assert_allclose(plan.F * plan.modulus_scale, expected,
                               atol=tol * np.abs(expected).max())
    assert np.array_equal(plan.psi, a), "the forward transform must keep psi"
    plan.F *= plan.projection_scale  # what the Fourier projection applies
    for i in range(len(plan.chunks)):
        plan.inverse(i)
    np.testing.assert_allclose(plan.F, a, atol=tol * np.abs(a).max())


@pytest.mark.parametrize("library", fft_libraries())
def test_gaussian_blur_matches_a_complex_fft_blur(library):
    be = get_backend("numpy", "double", workers=1, fft_library=library)
    a = np.random.default_rng(1).random((2, 16, 12, 10))
    blur = GaussianBlur(be, a.shape, (1, 2, 3), [1.5, 2.0, 0.7])
    freqs = np.meshgrid(*[np.fft.fftfreq(n) for n in a.shape[1:]], indexing="ij")
    g = np.exp(-2 * np.pi ** 2 * sum((s * f) ** 2 for s, f in zip([1.5, 2.0, 0.7], freqs)))
    expected = np.real(np.fft.ifftn(np.fft.fftn(a, axes=(1, 2, 3)) * g, axes=(1, 2, 3)))
    np.testing.assert_allclose(blur(a), expected, atol=1e-12)


def _kernel_inputs(dtype, seed=0):
    rng = np.random.default_rng(seed)
    n, nx, nz = 3, 16, 12
    F = _rand((n, nx * nz), dtype, seed)
    F[0, 5] = 0  # a zero modulus must not give NaN
    meas = rng.random(nx * nz) > 0.1
    rdt = np.float32 if dtype == np.complex64 else np.float64
    amp = (rng.random(nx * nz) * meas).astype(rdt)
    return F, amp, meas


@pytest.mark.parametrize("precision", ["single", "double"])
def test_fused_kernels_equal_the_array_expressions(precision):
    fused = get_backend("numpy", precision, workers=1)
    if not fused.fused:
        pytest.skip("Numba is not installed")
    plain = get_backend("numpy", precision, workers=1, fused=False)
    tol = 1e-5 if precision == "single" else 1e-12
    plan = fused.plan((3, 16, 12))
    F, amp, measured = _kernel_inputs(fused.complex_dtype)
    outs = []
    for be in (fused, plain):
        G, err2 = F.copy(), np.zeros(3)
        be.fourier_projection(G, amp, measured, err2, plan)
        outs.append((G, err2))
    assert np.isfinite(outs[0][0]).all()
    np.testing.assert_allclose(outs[0][0], outs[1][0], rtol=tol, atol=tol * 1e-3)
    np.testing.assert_allclose(outs[0][1], outs[1][1], rtol=10 * tol)
    # real-space update, every algorithm, with and without the amplitude pull
    rng = np.random.default_rng(3)
    shape = (3, 16, 2, 12)
    psi0 = _rand(shape, fused.complex_dtype, 4)
    p0 = _rand(shape, fused.complex_dtype, 5)
    support = np.zeros(shape, bool)
    support[:, 4:12, 1:, 3:9] = rng.random((3, 8, 1, 6)) > 0.2
    corner, region = (4, 1, 3), (3, 8, 1, 6)
    target = rng.random(region).astype(fused.real_dtype)
    for algo in ("ER", "HIO", "RAAR"):
        for strength in (0.0, 0.4):
            res = []
            for be in (fused, plain):
                psi, p = psi0.copy(), p0.copy()
                be.real_space_update(psi, p, support, algorithm=algo, beta=0.8,
                                     strength=strength, target=target, corner=corner)
                res.append(psi)
            np.testing.assert_allclose(res[0], res[1], rtol=tol, atol=tol * 1e-3)
            inside = np.abs(res[0][:, 4:12, 1:, 3:9])[support[:, 4:12, 1:, 3:9]]
            pulled = ((1 - strength) * np.abs(p0[:, 4:12, 1:, 3:9])
                      + strength * target)[support[:, 4:12, 1:, 3:9]]
            np.testing.assert_allclose(inside, pulled, rtol=10 * tol)
    out = [np.empty(region, fused.real_dtype) for _ in range(2)]
    fused.region_amplitude(p0, support, corner, out[0])
    plain.region_amplitude(p0, support, corner, out[1])
    np.testing.assert_allclose(out[0], out[1], rtol=tol)
    np.testing.assert_allclose(out[0], np.abs(p0[:, 4:12, 1:, 3:9]) * support[:, 4:12, 1:, 3:9],
                               rtol=tol)


def test_fused_misfit_of_a_3d_start_holds_to_single_precision_round_off():
    """The Fourier projection sums its squared misfits in float32 blocks of
    4 096 pixels (so the loop vectorises) and the blocks in float64: on one
    128^3 start the misfit stays within 1e-6 of the float64 sum, where one
    float32 sum over the 2 million pixels was off by about 1e-4."""
    be = get_backend("numpy", "single", workers=1)
    if not be.fused:
        pytest.skip("Numba is not installed")
    rng = np.random.default_rng(7)
    n = 128 ** 3
    F = (rng.standard_normal((1, n)) + 1j * rng.standard_normal((1, n))).astype(np.complex64)
    F *= rng.lognormal(0, 2, n).astype(np.float32)
    amp = np.abs(F[0]).astype(np.float32) * rng.uniform(0.5, 1.5, n).astype(np.float32)
    measured = np.ones(n, bool)
    exact = np.sum((np.abs(F[0]).astype(np.float64) - amp) ** 2)
    err2 = np.zeros(1)
    be._kernels["fourier"](F, amp, measured, np.float32(1), np.float32(1),
                           np.float32(1e-12), err2)
    assert abs(err2[0] - exact) / exact < 1e-6


@pytest.mark.parametrize("precision", ["single", "double"])
@pytest.mark.parametrize("width", [1.0, 2.0, 5.0, 7.4, 12.25, 40.0])
def test_box_mean_is_a_one_period_convolution(precision, width):
    """The running mean equals an explicit convolution with the window
    [frac, 1, ..., 1, frac] / width (zero beyond the ends), in both the
    compiled and the array-expression form, for windows narrower and wider
    than the axis."""
    from scipy.ndimage import correlate1d

    from nanotools.phasing import _LateralAmplitude
    a = np.random.default_rng(1).random((3, 23, 5))
    lat = _LateralAmplitude(get_backend("numpy", precision), 1, 1, (0, 0, 0), (23, 1, 5), width)
    weights = np.r_[lat.frac, np.ones(2 * lat.h + 1), lat.frac] / width
    assert np.isclose(weights.sum(), 1.0)
    expected = correlate1d(a, weights, axis=1, mode="constant")
    tol = 2e-6 if precision == "single" else 1e-12
    for fused in ([True, False] if _numba_kernels() else [False]):
        be = get_backend("numpy", precision, fused=fused)
        out = np.empty(a.shape, be.real_dtype)
        be.box_mean(a.astype(be.real_dtype), lat.h, lat.frac, out)
        np.testing.assert_allclose(out, expected, rtol=tol, atol=tol)


@pytest.fixture(scope="module")
def small():
    return prepared_from_truth(simulate_map("laminate", shape=(64, 32), period_nm=8,
                                            thickness_nm=10, patch_periods=4, seed=2))


def test_every_cpu_path_gives_the_same_run(small):
    """pyFFTW + Numba, scipy.fft + array expressions, threads: one result up
    to round-off (short run, before HIO amplifies round-off)."""
    kw = dict(n_starts=3, seed=4, algorithm="HIO**15 RAAR**10 ER**10", shrink_wrap_every=10,
              precision="double")
    ref = phase_retrieval(small, backend=get_backend("numpy", "double", workers=1), **kw)
    for be in [get_backend("numpy", "double", workers=1, fft_library="scipy", fused=False),
               get_backend("numpy", "double", workers=2)]:
        other = phase_retrieval(small, backend=be, **kw)
        np.testing.assert_allclose(other.history, ref.history, rtol=2e-7)
        assert np.abs(other.objects - ref.objects).max() < 1e-9 * np.abs(ref.objects).max()


def test_threads_do_not_change_a_single_bit(small):
    kw = dict(n_starts=4, seed=1, algorithm="HIO**30 ER**10")
    one = phase_retrieval(small, backend=get_backend("numpy", workers=1), **kw)
    two = phase_retrieval(small, backend=get_backend("numpy", workers=2), **kw)
    assert np.array_equal(one.objects, two.objects)
    assert np.array_equal(one.history, two.history)


_NATIVE_RUN = """
import sys
import numpy as np
sys.path.insert(0, {tests!r})
from _small import prepared_from_truth
from nanotools.backend import get_backend
from nanotools.phasing import phase_retrieval
from nanotools.simulate import simulate_map
print(get_backend("numpy").native_block is not None)
small = prepared_from_truth(simulate_map("laminate", shape=(64, 32), period_nm=8,
                                         thickness_nm=10, patch_periods=4, seed=2))
run = phase_retrieval(small, n_starts=3, seed=5, algorithm="HIO**30 RAAR**15 ER**12",
                      shrink_wrap_every=7)
np.save({out!r}, np.concatenate([run.objects.ravel(), run.history.ravel()]))
"""


def test_compiled_blocks_give_the_bits_of_the_python_loop(small, tmp_path):
    """Blocks of iterations in compiled code, FFTW called from there
    (``Backend.native_block``), against the loop that calls each step from
    Python (``NANOTOOLS_NO_NATIVE_FFTW``, another process): the same bits,
    with the amplitude constraint on and shrink-wrap every 7 iterations (not
    on a block boundary)."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    if get_backend("numpy").native_block is None:
        pytest.skip("no compiled blocks here (Numba, pyFFTW or /proc/self/maps missing)")
    out = {}
    for name, env in (("native", {}), ("python", {"NANOTOOLS_NO_NATIVE_FFTW": "1"})):
        path = tmp_path / f"{name}.npy"
        code = _NATIVE_RUN.format(tests=str(Path(__file__).parent), out=str(path))
        done = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True,
                              text=True, env={**os.environ, **env})
        assert done.stdout.split()[0] == str(name == "native")  # the path asked for ran
        out[name] = np.load(path)
    assert np.array_equal(out["native"], out["python"])


def test_compiled_block_is_compiled_once_per_machine(tmp_path):
    """Numba's on-disk cache finds the compiled block again in the next
    process: two processes leave one cached block (it was once keyed on
    per-process ids, so every process compiled it again and added a file)."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    if get_backend("numpy").native_block is None:
        pytest.skip("no compiled blocks here (Numba, pyFFTW or /proc/self/maps missing)")
    env = {**os.environ, "NUMBA_CACHE_DIR": str(tmp_path / "numba")}
    for k in range(2):
        code = _NATIVE_RUN.format(tests=str(Path(__file__).parent), out=str(tmp_path / f"{k}.npy"))
        subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, env=env)
    assert np.array_equal(np.load(tmp_path / "0.npy"), np.load(tmp_path / "1.npy"))
    assert len(list((tmp_path / "numba").rglob("*block*.nbc"))) == 1


def test_two_runs_with_the_same_threads_give_the_same_bits(small):
    """Each start runs through every iteration on one thread with its own
    one-thread plans from the shared wisdom: a rerun with the same thread
    count repeats every bit, with the amplitude constraint, shrink-wrap and
    the partial-coherence model on, and so does a run on 1 thread."""
    kw = dict(n_starts=5, seed=3, algorithm="HIO**30 RAAR**10 ER**10", shrink_wrap_every=10,
              psf_fwhm_px=1.0, psf_start=0.5, psf_update_every=5)
    runs = [phase_retrieval(small, backend=get_backend("numpy", workers=w), **kw)
            for w in (2, 2, 1)]
    for other in runs[1:]:
        for name in ("objects", "supports", "history", "psf", "llk"):
            assert np.array_equal(getattr(other, name), getattr(runs[0], name)), name


@pytest.mark.gpu
@pytest.mark.skipif(not gpu_available(), reason="needs CuPy and a CUDA GPU")
def test_cupy_equals_numpy(small):
    kw = dict(n_starts=3, seed=4, algorithm="HIO**15 RAAR**10 ER**10", shrink_wrap_every=10,
              precision="double")
    cpu = phase_retrieval(small, backend="numpy", **kw)
    gpu = phase_retrieval(small, backend="cupy", **kw)
    assert isinstance(gpu.objects, np.ndarray)
    np.testing.assert_allclose(gpu.history, cpu.history, rtol=1e-6)
    assert np.abs(gpu.objects - cpu.objects).max() < 1e-7 * np.abs(cpu.objects).max()


def test_wisdom_is_plain_text_and_a_planted_pickle_is_never_loaded(tmp_path, monkeypatch):
    """The shared FFTW wisdom is JSON text holding FFTW's wisdom strings; a
    file that is not (e.g. a pickle planted in the cache folder) is ignored,
    never unpickled, and replaced by the next plan's wisdom."""
    pyfftw = pytest.importorskip("pyfftw")
    import json
    import pickle

    from nanotools.backend import FFTPlan

    class Boom:
        def __reduce__(self):
            return (exec, ("raise SystemExit('unpickled')",))

    path = tmp_path / "wisdom"
    path.write_bytes(pickle.dumps(Boom()))
    monkeypatch.setenv("NANOTOOLS_FFTW_WISDOM", str(path))
    # a shape no other test plans, and this process's wisdom forgotten (it
    # merges the shared file, where an earlier run may have left this
    # shape), so this plan adds wisdom and the file is rewritten
    pyfftw.forget_wisdom()
    FFTPlan(get_backend("numpy", "single", fft_library="pyfftw"), (1, 17, 19))
    stored = json.loads(path.read_text())
    assert stored["format"] == "nanotools-fftw-wisdom-1"
    assert all(isinstance(w, str) for w in stored["wisdom"]) and len(stored["wisdom"]) == 3


def test_wisdom_file_is_per_processor_model(tmp_path, monkeypatch):
    """FFTW wisdom measured on one CPU model is not read on another: the
    file name carries the model and its SIMD flags (a home folder shared by
    a cluster's AMD and Intel nodes, a VM moved to other hardware), not the
    order of the flags or flags FFTW does not use."""
    from nanotools.backend import _model_and_flags, cpu_key_from, wisdom_path

    epyc = ("processor\t: 0\nmodel name\t: AMD EPYC 7B13\n"
            "flags\t\t: fpu sse sse2 avx avx2 fma hypervisor\n"
            "processor\t: 1\nmodel name\t: AMD EPYC 7B13\nflags\t\t: fpu\n")
    xeon = epyc.replace("AMD EPYC 7B13", "Intel(R) Xeon(R) Processor")
    # the benchmarks name the machine by the first processor's model
    assert _model_and_flags(epyc) == ("AMD EPYC 7B13", "avx avx2 fma sse sse2")
    key = cpu_key_from(epyc, "", "x86_64")
    assert key.startswith("x86_64-") and len(key) == len("x86_64-") + 12
    assert cpu_key_from(xeon, "", "x86_64") != key
    assert cpu_key_from(epyc.replace("avx avx2", "avx avx2 avx512f"), "", "x86_64") != key
    # flag order, non-SIMD flags and later processors' lines change nothing
    assert cpu_key_from(epyc.replace("fma hypervisor", "pdpe1gb fma"), "", "x86_64") == key
    assert cpu_key_from(epyc.replace("sse sse2 avx", "avx sse2 sse"), "", "x86_64") == key
    # no /proc/cpuinfo (macOS, Windows): the processor's name decides
    assert cpu_key_from("", "arm", "arm64") != cpu_key_from("", "i386", "arm64")
    monkeypatch.delenv("NANOTOOLS_FFTW_WISDOM", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    path = wisdom_path()
    assert path.parent == tmp_path / "nanotools" and path.name.startswith("fftw-wisdom-")
    monkeypatch.setenv("NANOTOOLS_FFTW_WISDOM", "")
    assert wisdom_path() is None


def test_scipy_transforms_run_on_one_thread_inside_the_pool(monkeypatch):
    """With scipy.fft the starts are spread over be.workers threads; each
    transform gets one thread (workers threads per transform on top of that
    oversubscribed the cores)."""
    import scipy.fft

    from nanotools.backend import FFTPlan, GaussianBlur

    seen = []
    for name in ("fftn", "ifftn", "rfftn", "irfftn"):
        real = getattr(scipy.fft, name)
        monkeypatch.setattr(scipy.fft, name,
                            lambda *a, _f=real, **k: seen.append(k.get("workers")) or _f(*a, **k))
    be = get_backend("numpy", "single", workers=4, fft_library="scipy")
    plan = FFTPlan(be, (2, 8, 6))
    plan.psi[...] = 1
    plan.forward(0), plan.inverse(0)
    GaussianBlur(be, (2, 8, 6), (1, 2), [1.0, 1.0])(np.ones((2, 8, 6), np.float32))
    assert seen == [1, 1, 1, 1]


def test_a_run_reads_the_shared_wisdom_once(small, tmp_path, monkeypatch):
    """Every plan of a run (its transforms, each thread's blur, the
    partial-coherence model) comes from one read of the shared wisdom file:
    with a read per object, a wisdom file of 1.8 MB had cost a 2-D run 0.11 s
    of its 0.15 s set-up."""
    pytest.importorskip("pyfftw")
    import nanotools.backend as backend

    path = tmp_path / "wisdom"
    monkeypatch.setenv("NANOTOOLS_FFTW_WISDOM", str(path))
    kw = dict(n_starts=3, seed=0, algorithm="HIO**10", psf_fwhm_px=1.0,
              backend=get_backend("numpy", workers=2))
    phase_retrieval(small, **kw)  # plans into the new file
    reads = []
    read = backend._read_wisdom
    monkeypatch.setattr(backend, "_read_wisdom", lambda p: reads.append(p) or read(p))
    phase_retrieval(small, **kw)
    assert reads == [path]

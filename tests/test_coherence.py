"""coherence: the point-spread-function model of partial coherence."""
import numpy as np
import pytest
from scipy.ndimage import gaussian_filter1d

from nanotools.backend import get_backend
from nanotools.coherence import PartialCoherence, centred, gaussian_psf, psf_fwhm, psf_window
from nanotools.errors import ParameterError
from nanotools.phasing import concatenate, phase_retrieval

from _small import phasing_family_module, prepared_from_truth, small_simulation

FWHM = 2 * np.sqrt(2 * np.log(2))  # sigma -> full width at half maximum


@pytest.fixture(scope="module")
def blurred():
    """The small laminate's exact intensity (FFT layout) blurred along x by
    a Gaussian of FWHM 3 pixels, and the true object."""
    sim = small_simulation("laminate", background=0.0, gap_pixels=0, bad_pixel_fraction=0)
    coherent = np.abs(np.fft.fftn(np.fft.ifftshift(sim.truth), norm="ortho")) ** 2
    return sim, gaussian_filter1d(coherent, 3.0 / FWHM, axis=0, mode="wrap")


def _engine(sim, window):
    be = get_backend("numpy", "single")
    pc = PartialCoherence(be, 1, sim.truth.shape, window)
    plan = be.plan((1,) + sim.truth.shape)
    plan.psi[0] = sim.truth
    plan.forward(0)
    return be, pc, plan, plan.F.reshape(1, -1)


def test_gaussian_psf_and_window():
    w = psf_window((16, 8), (3, 1))
    assert w.sum() == 7 * 3 and w[0, 0] and w[3, 1] and w[-3, -1] and not w[4, 0]
    g = gaussian_psf((64, 32), (4.0, 0.0))
    assert g.sum() == pytest.approx(1) and np.all(g[:, 1:] == 0)
    assert psf_fwhm(g)[0] == pytest.approx(4.0, rel=0.02) and psf_fwhm(g)[1] == 0
    assert np.argmax(centred(g[None], 2)[0]) == np.ravel_multi_index((32, 16), (64, 32))


def test_model_is_the_blurred_intensity(blurred):
    """The model of the true object with the true PSF is the blurred map
    (measured relative difference 1.5e-5, single-precision round-off)."""
    sim, data = blurred
    be, pc, plan, F = _engine(sim, np.ones(sim.truth.shape, bool))
    true = gaussian_psf(sim.truth.shape, (3.0, 0.0))[None].astype(np.float32)
    model = pc.model(F, pc.transfer(true), plan).reshape(data.shape)
    assert np.abs(model - data).sum() / data.sum() < 1e-4


def test_richardson_lucy_recovers_a_known_blur(blurred):
    """From the true object and a 1-pixel start, 100 Richardson-Lucy steps
    find the blur: FWHM 3.07 along x (true 3) and 0.23 along z (true 0)."""
    sim, data = blurred
    shape = sim.truth.shape
    window = psf_window(shape, (8, 2))
    be, pc, plan, F = _engine(sim, window)
    psf = gaussian_psf(shape, (1.0, 1.0), window)
    psf = np.where(window, np.maximum(psf, 1e-4 * psf.max()), 0)
    psf = (psf / psf.sum())[None].astype(np.float32)
    otf = pc.transfer(psf)
    for _ in range(100):
        psf, otf = pc.refine(F, psf, otf, data.astype(np.float32), np.ones(shape, bool), plan)
    width = psf_fwhm(psf[0])
    assert width[0] == pytest.approx(3.0, abs=0.25) and width[1] < 0.4
    assert psf.sum() == pytest.approx(1, rel=1e-5) and psf.min() >= 0
    # centrosymmetric: psf(d) = psf(-d)
    assert np.allclose(psf[0], np.roll(psf[0][::-1, ::-1], 1, axis=(0, 1)), atol=1e-7)


def test_phasing_with_the_psf_model(blurred):
    """Phasing with the model on returns one refined PSF per start, the
    starts stay independent of the split, and a bad setting is refused."""
    sim, data = blurred
    prep = prepared_from_truth(sim, background=0.0)
    prep.intensity = np.fft.fftshift(data) * 1e8 / data.sum()
    kw = dict(seed=3, algorithm="HIO**40 ER**20", psf_fwhm_px=1.0, psf_start=0.0,
              psf_update_every=5)
    whole = phase_retrieval(prep, n_starts=2, **kw)
    parts = concatenate([phase_retrieval(prep, n_starts=1, start=k, **kw) for k in (0, 1)])
    assert whole.psf.shape == (2,) + data.shape and np.array_equal(whole.psf, parts.psf)
    assert np.array_equal(whole.objects, parts.objects)
    assert np.allclose(whole.psf.sum(axis=(1, 2)), 1, rtol=1e-5)
    assert phase_retrieval(prep, n_starts=1, algorithm="ER**2").psf is None
    with pytest.raises(ParameterError):
        phase_retrieval(prep, n_starts=1, algorithm="ER**2", psf_fwhm_px=-1.0)


@pytest.mark.skipif(get_backend().fused is False, reason="needs Numba")
def test_fused_partial_projection_equals_the_array_expressions():
    """The compiled kernels and the NumPy expressions (what CuPy runs) agree
    to single-precision round-off, the dark-pixel bound included."""
    rng = np.random.default_rng(0)
    shape = (2, 300)
    F0 = (rng.standard_normal(shape) + 1j * rng.standard_normal(shape)).astype(np.complex64)
    model = rng.uniform(-0.1, 3, shape).astype(np.float32)  # negative: round-off at dark pixels
    amp = rng.uniform(0, 2, 300).astype(np.float32)
    measured = rng.random(300) < 0.9
    amp *= measured
    centre = np.array([0.3, 0.7], np.float32)
    out = []
    for fused in (True, False):
        be = get_backend("numpy", "single", fused=fused)
        plan = be.plan((2, 300))
        F = F0.copy()
        err2 = np.empty(2)
        intensity = np.empty(shape, np.float32)
        be.model_intensity(F, plan, intensity)
        be.fourier_projection_partial(F, model, centre, amp, measured, err2, plan)
        assert np.isfinite(F).all()
        out.append((F, err2, intensity))
    for a, b in zip(*out):
        assert np.allclose(a, b, rtol=1e-5, atol=1e-6)


def test_psf_runs_on_a_3d_map():
    """A small 3-D film phases with the model on: one PSF per start, sum 1."""
    sim = small_simulation("laminate", shape=(32, 16, 32), period_nm=8.0, thickness_nm=10.0,
                           patch_periods=1.5, gap_pixels=0)
    prep = prepared_from_truth(sim)
    r = phase_retrieval(prep, n_starts=2, algorithm="HIO**10 ER**10", psf_fwhm_px=1.0,
                        psf_start=0.0, psf_update_every=5)
    assert r.psf.shape == (2, 32, 16, 32) and np.all(np.isfinite(r.objects))
    assert np.allclose(r.psf.sum(axis=(1, 2, 3)), 1, rtol=1e-5)


@pytest.mark.parametrize("psf", [0.0, 1.0])
def test_an_ensemble_map_is_phased(psf):
    """A family draw made as an incoherent sum of 43 jittered patches
    (seed 1010, laminate, 128 x 64) phased with the true preprocessing
    numbers, 4 short starts: measured errors 0.039 and 0.053 (coherent
    model, two runs: FFTW's measured plans change the round-off) and 0.027
    (PSF model)."""
    row = phasing_family_module().run_draw(
        1010, {"n_starts": 4, "algorithm": "HIO**100 ER**20", "n_clusters": 1,
               "psf_fwhm_px": psf, "psf_start": 0.0, "psf_update_every": 10}, shape=(128, 64))
    assert row["coherence"] == "ensemble" and not row["failure"]
    assert row["error"] < 0.08

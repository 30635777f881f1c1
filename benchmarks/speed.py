"""Speed of the phasing engine against this machine's FFT floor, on every core.

Usage::

    python benchmarks/speed.py            # 2-D, 3-D and the QM2-like window
    python benchmarks/speed.py --quick    # fewer iterations, short cohere-core runs
    python benchmarks/speed.py --cases 2d --no-cohere

Cases: 2-D 256 x 128 x 32 starts, 3-D 128^3 x 8 starts and a QM2-like
window 256 x 16 x 128 x 32 starts. Each case runs in its own child process
(its peak resident memory, ``getrusage``, is its own), all on one machine in
one run:

- **floor**: forward + inverse FFT of the whole batch, complex64, FFTW with
  FFTW_PATIENT plans (made once per machine and shape, kept in the shared
  wisdom file, :func:`nanotools.backend.wisdom_path`) on all cores, and on
  one core; ``scipy.fft`` on all cores too. Median of 10 repeats.
- **engine, defaults**: ``phase_retrieval`` at its defaults (amplitude
  constraint, shrink-wrap every 20, error history; the default sequence
  ``HIO**1000 RAAR**500 ER**200`` scaled down in the same proportions to N
  and 2 N iterations) on all cores and on one core: the difference of the
  two runs' ``phasing_time_s`` over N x starts, every stage of the loop
  counted; the set-up (random starts, plans from the wisdom file, LLK) is
  reported apart. Median of the repeats.
- **engine, plain**: the same sequence without amplitude constraint and
  shrink-wrap.
- **whole default run** (2-D; 3-D and the QM2 window too with
  ``--whole``): ``phasing_time_s`` of the full default sequence on 1 core
  and on all, set-up included (2-D: median of 3; otherwise one run each,
  minutes): the time and the thread scaling a user sees. Each all-core run
  follows its own measurement of the floor, and the ratio of the two is
  reported (median and range of the pairs): on a shared machine both move
  by 10-20 % from one minute to the next, the ratio of neighbours less.
  The per-iteration columns are differences of two short runs; where one
  of them stalls (another process, a page fault storm) they can even fall
  below the floor, which a whole run cannot.
- **one-start pairs**: every thread runs FFT pairs of its own start on its
  own one-thread plans, nothing else (the engine's pattern, bare); its gain
  from 1 to all cores is the ceiling of the engine's thread scaling on
  this machine.
- **cohere-core** (when installed, ``make bench``): HIO with Gaussian
  shrink-wrap on the same data, seconds per iteration of one reconstruction
  (a difference of two short runs).

The full default run (1 700 iterations) is projected from the measured time
per start-iteration. Timings on a shared machine move: ``uptime``'s load is
printed with the table.
"""
from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from types import SimpleNamespace

import numpy as np

CASES = {
    "2d": dict(shape=(256, 128), n_starts=32, n_iter=170, quick_iter=85, repeats=3),
    "3d": dict(shape=(128, 128, 128), n_starts=8, n_iter=34, quick_iter=17, repeats=1),
    # a narrow q window along y: coarse real-space pixels along y
    "qm2": dict(shape=(256, 16, 128), n_starts=32, n_iter=34, quick_iter=17, repeats=1,
                pixel_nm=(1.0, 12.0, 1.0)),
}
FULL_ITERATIONS = 1700  # HIO**1000 RAAR**500 ER**200


def _sequence(n_iter):
    """The default sequence scaled to ``n_iter`` iterations (10 : 5 : 2)."""
    hio, raar = round(n_iter * 10 / 17), round(n_iter * 5 / 17)
    return f"HIO**{hio} RAAR**{raar} ER**{n_iter - hio - raar}"


def _prepared(shape, pixel_nm=1.0):
    from nanotools.simulate import simulate_map
    sim = simulate_map("laminate", shape=shape, pixel_nm=pixel_nm, period_nm=12.0,
                       thickness_nm=40.0,
                       patch_periods=5, seed=0, bad_pixel_fraction=1e-4)
    return SimpleNamespace(intensity=np.clip(sim.rsm.intensity - 1.0, 0, None),
                           mask=sim.rsm.mask, pixel_nm=sim.pixel_nm,
                           thickness_nm=sim.thickness_nm,
                           patch_nm=5 * sim.period_nm, period_nm=sim.period_nm)


def _peak_rss_gib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2 ** 20  # KiB on Linux


def _engine(prep, n_starts, n_iter, repeats, workers, **kw):
    """Seconds per start-iteration and seconds of set-up (random starts,
    plans from the wisdom file, final LLK) of ``phase_retrieval``: runs of
    the scaled default sequence with ``n_iter`` and ``2 n_iter`` iterations
    (``phasing_time_s``, median over ``repeats`` each, after a warm-up run
    that makes the plans); the difference over ``n_iter x n_starts`` is the
    iterations' cost, every stage counted. Also the longer run's result."""
    from nanotools.backend import get_backend
    from nanotools.phasing import phase_retrieval
    be = get_backend("numpy", "single", workers=workers)
    phase_retrieval(prep, n_starts=min(n_starts, be.workers), algorithm=_sequence(n_iter),
                    seed=0, backend=be, **kw)
    times = {n_iter: [], 2 * n_iter: []}
    for _ in range(repeats):
        for m in times:
            res = phase_retrieval(prep, n_starts=n_starts, algorithm=_sequence(m), seed=0,
                                  backend=be, **kw)
            times[m].append(res.phasing_time_s)
    short, long = (float(np.median(times[m])) for m in times)
    per_it = (long - short) / (n_iter * n_starts)
    return per_it, max(short - per_it * n_iter * n_starts, 0.0), res


def _floor_fftw(shape, n_starts, threads):
    """Seconds per start of the forward + inverse FFT of the whole batch:
    FFTW, FFTW_PATIENT plans from (and into) the shared wisdom file."""
    import pyfftw

    from nanotools.backend import shared_wisdom
    a = pyfftw.empty_aligned((n_starts,) + shape, "complex64")
    b = pyfftw.empty_aligned((n_starts,) + shape, "complex64")
    axes = tuple(range(1, len(shape) + 1))
    t = time.perf_counter()
    with shared_wisdom():
        fwd = pyfftw.FFTW(a, b, axes=axes, threads=threads, flags=("FFTW_PATIENT",))
        inv = pyfftw.FFTW(b, b, axes=axes, direction="FFTW_BACKWARD", threads=threads,
                          flags=("FFTW_PATIENT", "FFTW_DESTROY_INPUT"))
    planning = time.perf_counter() - t
    a[...] = np.random.default_rng(0).standard_normal(a.shape)
    times = []
    for _ in range(10):
        t = time.perf_counter()
        fwd.execute()
        inv.execute()
        times.append(time.perf_counter() - t)
    return float(np.median(times)) / n_starts, float(np.min(times)) / n_starts, planning


def _whole_run(prep, n_starts, workers, repeats):
    """Median ``phasing_time_s`` of whole default runs (1 700 iterations),
    set-up included: the figure issue 12 scales (1 core against all)."""
    from nanotools.backend import get_backend
    from nanotools.phasing import phase_retrieval
    be = get_backend("numpy", "single", workers=workers)
    return float(np.median([phase_retrieval(prep, n_starts=n_starts, seed=0,
                                            backend=be).phasing_time_s
                            for _ in range(repeats)]))


def _pairs_ceiling(shape, threads, n_pairs):
    """Seconds per start-iteration of the engine's own pattern with nothing
    else in it: each of ``threads`` threads runs forward + inverse FFT pairs
    of one start on its own one-thread FFTW_PATIENT plans, ``n_pairs`` each.
    Its gain from 1 to all cores is the most any engine that keeps a start
    on one core can get from this machine (shared caches, memory bandwidth
    and the host's scheduling of the virtual cores included)."""
    import threading

    import pyfftw

    from nanotools.backend import shared_wisdom
    axes = tuple(range(len(shape)))
    plans = []
    with shared_wisdom():
        for _ in range(threads):
            a = pyfftw.empty_aligned(shape, "complex64")
            a[...] = np.random.default_rng(0).standard_normal(shape)
            fwd = pyfftw.FFTW(a, a, axes=axes, threads=1, flags=("FFTW_PATIENT",))
            inv = pyfftw.FFTW(a, a, axes=axes, direction="FFTW_BACKWARD", threads=1,
                              flags=("FFTW_PATIENT",), normalise_idft=True)
            plans.append((fwd, inv))

    def work(fwd, inv):
        for _ in range(n_pairs):
            fwd.execute()
            inv.execute()

    best = np.inf
    for _ in range(3):
        pool = [threading.Thread(target=work, args=p) for p in plans]
        t = time.perf_counter()
        for th in pool:
            th.start()
        for th in pool:
            th.join()
        best = min(best, time.perf_counter() - t)
    return best / (threads * n_pairs)


def _floor_scipy(shape, n_starts, workers):
    import scipy.fft
    a = np.random.default_rng(0).standard_normal((n_starts,) + shape).astype(np.complex64)
    axes = tuple(range(1, len(shape) + 1))
    times = []
    for _ in range(5):
        t = time.perf_counter()
        b = scipy.fft.fftn(a, axes=axes, workers=workers)
        scipy.fft.ifftn(b, axes=axes, workers=workers, overwrite_x=True)
        times.append(time.perf_counter() - t)
    return float(np.median(times)) / n_starts


def _cohere(prep, iters, repeats):
    """cohere-core (NumPy backend), HIO with Gaussian shrink-wrap every 20
    iterations, one reconstruction (cohere runs starts one after another):
    seconds per iteration, or the reason it could not run."""
    try:
        import cohere_core
        import cohere_core.controller.phasing as cph
    except Exception as exc:  # not installed, or broken
        return None, f"cohere-core not importable: {type(exc).__name__}: {exc}", ""
    amp = np.sqrt(np.asarray(prep.intensity, np.float32))
    tmp = tempfile.mkdtemp()
    path = os.path.join(tmp, "data.npy")
    np.save(path, amp)
    ndim = amp.ndim
    best = {}
    dtype = ""
    try:
        for _ in range(repeats):
            for n in iters:
                params = dict(algorithm_sequence=f"{n}*HIO", hio_beta=0.9,
                              shrink_wrap_trigger=[1, 20], shrink_wrap_type="GAUSS",
                              shrink_wrap_threshold=0.12, shrink_wrap_gauss_sigma=2.0,
                              initial_support_area=[0.3] * ndim)
                with contextlib.redirect_stdout(io.StringIO()):
                    rec = cph.create_rec(params, path, "np", -1, debug=True)
                    t = time.perf_counter()
                    rc = rec.iterate()
                    dt = time.perf_counter() - t
                if rc != 0:
                    return None, f"cohere-core iterate() returned {rc}", ""
                dtype = str(rec.ds_image.dtype)
                best[n] = min(best.get(n, np.inf), dt)
    except Exception as exc:
        return None, f"cohere-core failed: {type(exc).__name__}: {exc}", ""
    try:
        from importlib.metadata import version as _version
        version = "cohere-core " + _version("cohere-core")
    except Exception:
        version = "cohere-core " + getattr(cohere_core, "__version__", "?")
    return (best[iters[1]] - best[iters[0]]) / (iters[1] - iters[0]), version, dtype


def run_case(name: str, quick: bool, with_cohere: bool, whole: bool = False) -> dict:
    case = CASES[name]
    shape, n_starts = case["shape"], case["n_starts"]
    n_iter = case["quick_iter"] if quick else case["n_iter"]
    repeats = 1 if quick else case["repeats"]
    cores = len(os.sched_getaffinity(0))
    prep = _prepared(shape, case.get("pixel_nm", 1.0))
    out = dict(case=name, shape=list(shape), n_starts=n_starts, n_iter=n_iter, cores=cores)
    out["floor_s"], out["floor_min_s"], out["planning_s"] = _floor_fftw(shape, n_starts, cores)
    out["floor1_s"], _, _ = _floor_fftw(shape, n_starts, 1)
    out["scipy_s"] = _floor_scipy(shape, n_starts, cores)
    n_pairs = max(4, int(2e8 // np.prod(shape)))  # about a second of work per thread
    out["pairs_s"] = _pairs_ceiling(shape, cores, n_pairs)
    out["pairs1_s"] = _pairs_ceiling(shape, 1, n_pairs)
    out["default_s"], out["setup_s"], res = _engine(prep, n_starts, n_iter, repeats, cores)
    out["peak_rss_gib"] = _peak_rss_gib()
    out["default1_s"], _, res1 = _engine(prep, n_starts, n_iter, 1 if quick else repeats, 1)
    out["same_bits_1_vs_all"] = bool(np.array_equal(res.objects, res1.objects))
    out["plain_s"], _, _ = _engine(prep, n_starts, n_iter, repeats, cores,
                                amplitude_constraint=0.0, shrink_wrap_every=0)
    if not quick and (name == "2d" or whole):  # tens of seconds in 2-D, minutes otherwise
        # each run against a floor measured just before it: both move by 10-20 %
        # between minutes on a shared machine, so a ratio of neighbours is steadier
        n_runs = 3 if name == "2d" else 1
        runs, ratios = [], []
        for _ in range(n_runs):
            floor, _, _ = _floor_fftw(shape, n_starts, cores)
            runs.append(_whole_run(prep, n_starts, cores, 1))
            ratios.append(runs[-1] / (n_starts * FULL_ITERATIONS) / floor)
        out["run_s"], out["run_ratios"] = float(np.median(runs)), ratios
        out["run1_s"] = _whole_run(prep, n_starts, 1, n_runs)
        out["peak_rss_gib"] = _peak_rss_gib()  # whole runs can hold more than short ones
    if with_cohere:
        iters = ((4, 10) if quick else (10, 40)) if name == "2d" else ((2, 4) if quick else (2, 6))
        c, info, dtype = _cohere(prep, iters, 1 if quick else 2)
        out["cohere_s"], out["cohere_info"], out["cohere_dtype"] = c, info, dtype
    return out


def _table(rows: list[dict]) -> str:
    us = lambda s: "n/a" if s is None else f"{s * 1e6:.0f}"  # noqa: E731
    lines = [
        "| case | starts | FFTW floor, all cores (us/start-it; median (min)) | floor, 1 core | "
        "scipy.fft, "
        "all cores | engine defaults, all cores | / floor | engine defaults, 1 core | "
        "thread scaling (engine / FFTW batch / one-start pairs) | engine plain | / floor | "
        "full default run (1 700 it.) | cohere-core (us/it) | peak RSS (GiB) |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        shape = " x ".join(str(n) for n in r["shape"])
        d, f, p = r["default_s"], r["floor_s"], r["plain_s"]
        full = d * r["n_starts"] * FULL_ITERATIONS + r["setup_s"]
        c = r.get("cohere_s")
        coh = "not installed" if "cohere_info" not in r or (c is None and "importable"
                                                            in r["cohere_info"]) else us(c)
        lines.append(
            f"| {shape} | {r['n_starts']} | {us(f)} ({us(r['floor_min_s'])}) | "
            f"{us(r['floor1_s'])} | {us(r['scipy_s'])} "
            f"| {us(d)} | {d / f:.2f} | {us(r['default1_s'])} | "
            f"{r['default1_s'] / d:.2f} / {r['floor1_s'] / f:.2f} / "
            f"{r['pairs1_s'] / r['pairs_s']:.2f} | {us(p)} | {p / f:.2f} | "
            + (f"{r['run_s']:.0f} s measured" if "run_s" in r else f"{full:.0f} s projected")
            + f" | {coh} | {r['peak_rss_gib']:.2f} |")
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true",
                    help="half the iterations, one repeat, short cohere-core runs")
    ap.add_argument("--no-cohere", action="store_true")
    ap.add_argument("--cases", nargs="*", default=None, help="2d 3d qm2")
    ap.add_argument("--whole", action="store_true",
                    help="also time whole default runs in 3-D and the QM2 window (minutes)")
    ap.add_argument("--json", default=None, help="also write the rows here")
    ap.add_argument("--child", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child:
        print(json.dumps(run_case(args.child, args.quick, not args.no_cohere, args.whole)))
        return 0
    cases = args.cases or list(CASES)
    rows = []
    for name in cases:
        cmd = [sys.executable, __file__, "--child", name]
        cmd += ["--quick"] if args.quick else []
        cmd += ["--no-cohere"] if args.no_cohere else []
        cmd += ["--whole"] if args.whole else []
        t = time.perf_counter()
        done = subprocess.run(cmd, capture_output=True, text=True)
        if done.returncode != 0:
            print(f"case {name} failed:\n{done.stderr[-3000:]}", file=sys.stderr)
            return 1
        row = json.loads(done.stdout.strip().splitlines()[-1])
        row["load"] = os.getloadavg()[0]
        rows.append(row)
        print(f"# {name}: {time.perf_counter() - t:.0f} s, load {row['load']:.2f}, "
              f"FFTW patient planning {row['planning_s']:.1f} s"
              + (f"; {row.get('cohere_info')} ({row.get('cohere_dtype')}, numpy.fft)"
                 if row.get("cohere_s") else ""), file=sys.stderr)
    print(_table(rows))
    for r in rows:
        if "run_s" in r:
            print(f"\nwhole default run, {r['case']} ({r['n_starts']} starts x {FULL_ITERATIONS} "
                  f"iterations, set-up included, "
                  f"{'median of 3' if len(r['run_ratios']) == 3 else 'one run each'}): "
                  f"{r['run1_s']:.2f} s on 1 core, "
                  f"{r['run_s']:.2f} s on {r['cores']}: thread scaling "
                  f"{r['run1_s'] / r['run_s']:.2f}; "
                  f"{r['run_s'] / (r['n_starts'] * FULL_ITERATIONS) * 1e6:.0f} us per "
                  "start-iteration on all cores, "
                  f"{np.median(r['run_ratios']):.2f} x the all-core floor measured just before "
                  f"each run (pairs: {min(r['run_ratios']):.2f}-{max(r['run_ratios']):.2f}); "
                  f"peak RSS {r['peak_rss_gib']:.2f} GiB")
    from nanotools.backend import cpu_model, wisdom_path
    print(f"\n{cpu_model()}, {rows[0]['cores']} cores; FFTW wisdom {wisdom_path()}; "
          "load average (1 min) after each case: "
          + ", ".join(f"{r['case']} {r['load']:.2f}" for r in rows))
    print("us/start-it: time per start per iteration. floor: forward + inverse FFT of the "
          "whole batch (FFTW_PATIENT, median of 10). engine: difference of phasing_time_s "
          "of whole runs of the default sequence scaled to N and 2 N iterations, over N x "
          "starts, N = " + ", ".join(f"{r['case']} {r['n_iter']}" for r in rows)
          + " (median of repeats); set-up (starts, plans, LLK) apart: "
          + ", ".join(f"{r['case']} {r['setup_s']:.1f} s" for r in rows) + "; plain: no amplitude "
          "constraint, no shrink-wrap. thread scaling: 1 core / all cores, for the engine, "
          "FFTW's batch transform, and one-start FFT pairs on one-thread plans, one "
          "start per thread (the engine's pattern with nothing else in it: the most this "
          "machine gives such an engine). full default run: measured where a whole run "
          "was timed, else projected, set-up + starts x 1 700 iterations. "
          "Same bits with 1 and all cores: "
          + ", ".join(f"{r['case']} {r['same_bits_1_vs_all']}" for r in rows) + ".")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(rows, fh, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())

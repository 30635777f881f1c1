"""Speed of the phasing engine: time per start-iteration, the two-FFT floor,
peak memory, and cohere-core on the same data.

Usage::

    python benchmarks/speed.py            # 2-D 256 x 128 (32 starts), 3-D 128^3 (8 starts)
    python benchmarks/speed.py --big      # also 3-D 256^3 with 8 starts: peak memory
    python benchmarks/speed.py --quick    # fewer repeats and iterations

Every case runs in its own child process (so its peak resident memory, read
with ``getrusage`` right after the engine's part, is its own); cohere-core
then runs in the same child, side by side on the same data. Timings are
minima over repeats (the machine may be shared); the time per
start-iteration is a difference of two runs with N1 and N2 iterations
divided by (N2 - N1) x starts for cohere-core, and for nanotools the fastest
block of 20 iterations timed through the progress callback; set-up (plans,
random starts, the final LLK) is left out either way. The floor is the
engine's own forward + inverse FFT of every start, timed alone.
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
    "2d": dict(shape=(256, 128), n_starts=32, n_iter=200, repeats=3),
    "3d": dict(shape=(128, 128, 128), n_starts=8, n_iter=100, repeats=1),
    "big": dict(shape=(256, 256, 256), n_starts=8, n_iter=4, repeats=1),
}


def _prepared(shape):
    from nanotools.simulate import simulate_map
    sim = simulate_map("laminate", shape=shape, period_nm=12.0, thickness_nm=40.0,
                       patch_periods=5, seed=0, bad_pixel_fraction=1e-4)
    return SimpleNamespace(intensity=np.clip(sim.rsm.intensity - 1.0, 0, None),
                           mask=sim.rsm.mask, pixel_nm=sim.pixel_nm,
                           thickness_nm=sim.thickness_nm,
                           patch_nm=5 * sim.period_nm, period_nm=sim.period_nm)


def _peak_rss_gib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2 ** 20  # KiB on Linux


def _engine(prep, n_starts, n_iter, repeats, backend, first, last, **kw):
    """Seconds per start-iteration: the iterations are timed in blocks of 20
    (each holds one shrink-wrap) through the progress callback, and the
    fastest block between iterations ``first`` and ``last`` counts: the
    minimum over many short blocks is what the machine can do when no one
    else is using it, and set-up (plans, starts, LLK) is left out."""
    from nanotools.phasing import phase_retrieval
    best = np.inf
    for _ in range(repeats):
        stamps = {}

        def progress(done, total):
            stamps[done // n_starts] = time.perf_counter()

        phase_retrieval(prep, n_starts=n_starts, algorithm=f"HIO**{n_iter}", seed=0,
                        backend=backend, progress=progress, **kw)
        for it in range(first, last - 19, 10):
            if it in stamps and it + 20 in stamps:
                best = min(best, stamps[it + 20] - stamps[it])
    return best / (20 * n_starts)


def _wall(prep, n_starts, n_iter, backend):
    """Seconds per start-iteration of one whole run, set-up included."""
    from nanotools.phasing import phase_retrieval
    r = phase_retrieval(prep, n_starts=n_starts, algorithm=f"HIO**{n_iter}", seed=0,
                        backend=backend, shrink_wrap_every=2)
    return r.phasing_time_s / (n_iter * n_starts)


def _floor(backend, shape, n_starts, repeats):
    """Seconds per start of the engine's forward + inverse FFT."""
    plan = backend.plan((n_starts,) + shape)
    plan.psi[...] = 1.0
    best = np.inf
    for _ in range(10):
        t = time.perf_counter()
        for i in range(len(plan.chunks)):
            plan.forward(i)
            plan.inverse(i)
        best = min(best, time.perf_counter() - t)
    return best / n_starts


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


def run_case(name: str, workers: int, quick: bool, with_cohere: bool) -> dict:
    from nanotools.backend import get_backend
    case = CASES[name]
    shape, n_starts, n_iter = case["shape"], case["n_starts"], case["n_iter"]
    repeats = 1 if quick else case["repeats"]
    prep = _prepared(shape)
    be = get_backend("numpy", "single", workers=workers)
    out = dict(case=name, shape=list(shape), n_starts=n_starts, workers=workers,
               backend=repr(be))
    out["floor_s"] = _floor(be, shape, n_starts, repeats)
    if name == "big":
        # a few iterations with every buffer in use (amplitude constraint on,
        # shrink-wrap every 2nd): the point is the peak memory
        out["default_s"] = _wall(prep, n_starts, n_iter, be)
        out["peak_rss_gib"] = _peak_rss_gib()
        return out
    # amplitude constraint on: blocks inside the first 70 % (the annealed part)
    out["default_s"] = _engine(prep, n_starts, n_iter, repeats, be, 20, int(0.7 * n_iter))
    out["plain_s"] = _engine(prep, n_starts, n_iter // 2, repeats, be, 20, n_iter // 2,
                             amplitude_constraint=0.0)
    out["peak_rss_gib"] = _peak_rss_gib()
    if with_cohere:
        iters = (10, 70) if name == "2d" else (4, 14)
        c, info, dtype = _cohere(prep, iters, repeats + 1)
        out["cohere_s"], out["cohere_info"], out["cohere_dtype"] = c, info, dtype
    return out


def _table(rows: list[dict]) -> str:
    lines = [
        "| case | starts | engine, defaults (us/start-it) | engine, plain HIO | two-FFT floor | "
        "ratio defaults / plain | cohere-core (us/it) | speed-up vs cohere | peak RSS (GiB) |",
        "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        shape = " x ".join(str(n) for n in r["shape"])
        us = lambda s: "n/a" if s is None else f"{s * 1e6:.0f}"  # noqa: E731
        d, p, f = r["default_s"], r.get("plain_s"), r["floor_s"]
        ratio = f"{d / f:.2f}" + (f" / {p / f:.2f}" if p else "")
        c = r.get("cohere_s")
        speed = f"{c / d:.1f} x (plain {c / p:.1f} x)" if c and p else (
            "n/a" if "cohere_info" not in r else f"not run: {r['cohere_info']}")
        lines.append(f"| {shape} | {r['n_starts']} | {us(d)} | {us(p)} | {us(f)} | {ratio} | "
                     f"{us(c)} | {speed} | {r['peak_rss_gib']:.2f} |")
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--big", action="store_true", help="also 256^3 x 8 starts (memory)")
    ap.add_argument("--quick", action="store_true", help="one repeat")
    ap.add_argument("--workers", type=int, default=1,
                    help="engine FFT threads (default 1: cohere's numpy.fft is single-threaded)")
    ap.add_argument("--no-cohere", action="store_true")
    ap.add_argument("--cases", nargs="*", default=None, help="2d 3d big")
    ap.add_argument("--child", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child:
        print(json.dumps(run_case(args.child, args.workers, args.quick, not args.no_cohere)))
        return 0
    cases = args.cases or (["2d", "3d"] + (["big"] if args.big else []))
    rows = []
    for name in cases:
        cmd = [sys.executable, __file__, "--child", name, "--workers", str(args.workers)]
        cmd += ["--quick"] if args.quick else []
        cmd += ["--no-cohere"] if args.no_cohere else []
        t = time.perf_counter()
        done = subprocess.run(cmd, capture_output=True, text=True)
        if done.returncode != 0:
            print(f"case {name} failed:\n{done.stderr[-3000:]}", file=sys.stderr)
            return 1
        row = json.loads(done.stdout.strip().splitlines()[-1])
        rows.append(row)
        print(f"# {name}: {row['backend']}, {time.perf_counter() - t:.0f} s"
              + (f"; {row.get('cohere_info')} ({row.get('cohere_dtype')}, numpy.fft)"
                 if row.get("cohere_s") else ""), file=sys.stderr)
    print(_table(rows))
    for r in rows:
        if r["case"] == "big":
            verdict = "fits" if r["peak_rss_gib"] <= 24 else "DOES NOT FIT"
            print(f"\n256^3 x 8 starts: peak RSS {r['peak_rss_gib']:.2f} GiB, {verdict} in 24 GiB")
    print("\nus/start-it: time per start per iteration (min over repeats); floor: the "
          "engine's two FFTs alone; defaults: HIO while the amplitude constraint is on (the "
          "first 70 % of the iterations) with shrink-wrap every 20; plain: HIO without it "
          "(the last 30 % of a default run). 256^3: a whole 4-iteration run, set-up included.")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""What the compiled blocks of iterations are worth, measured in one process.

Alternates runs of ``phase_retrieval`` with the compiled blocks
(``Backend.native_block``) and with the same steps called one by one from
Python, on 1 core and on all, so that drift of a shared machine hits both
alike; prints the median microseconds per start-iteration of each, and each
path's thread scaling. Set-up (random starts, final LLK) is included.

Usage::

    python benchmarks/native_ab.py [--shape 256,128] [--starts 32] [--iterations 340] [--reps 8]
"""
from __future__ import annotations

import argparse
import os
import sys

import numpy as np

import nanotools.backend as backend
from nanotools.phasing import phase_retrieval

sys.path.insert(0, os.path.dirname(__file__))
from speed import _prepared, _sequence  # noqa: E402


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--shape", default="256,128")
    ap.add_argument("--starts", type=int, default=32)
    ap.add_argument("--iterations", type=int, default=340)
    ap.add_argument("--reps", type=int, default=8)
    args = ap.parse_args(argv)
    shape = tuple(int(n) for n in args.shape.split(","))
    prep = _prepared(shape)
    native = backend._native_fftw
    if native() is None:
        print("no compiled blocks on this machine (Numba, pyFFTW or /proc/self/maps missing)")
        return 1
    cores = len(os.sched_getaffinity(0))
    times = {}
    for _ in range(args.reps):
        for path in ("compiled", "python"):
            # the plans ask for the native library when they are made
            backend._native_fftw = native if path == "compiled" else (lambda: None)
            for workers in (cores, 1):
                res = phase_retrieval(prep, n_starts=args.starts,
                                      algorithm=_sequence(args.iterations),
                                      backend=backend.get_backend("numpy", workers=workers))
                times.setdefault((path, workers), []).append(
                    res.phasing_time_s / (args.starts * args.iterations) * 1e6)
    backend._native_fftw = native
    for (path, workers), t in sorted(times.items()):
        print(f"{path:8s} {workers} core(s): median {np.median(t):.1f} us per start-iteration "
              f"(min {min(t):.1f}, {len(t)} runs)")
    for path in ("compiled", "python"):
        scaling = np.median(times[(path, 1)]) / np.median(times[(path, cores)])
        print(f"{path}: thread scaling {scaling:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

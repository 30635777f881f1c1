"""Scaling of distributed phasing: one worker against two, same 64-start job.

Usage::

    python benchmarks/dask_scaling.py [--starts 64] [--iterations 300] [--repeats 2]

Starts a ``LocalCluster`` of one and then two worker processes, one thread
each, the engine on one FFT thread per task, and runs the same job
(:func:`nanotools.distributed.phase_retrieval_distributed`, 8 chunks) on
both; prints the wall times (minimum over repeats, the machine may be
shared), their ratio, and whether the distributed result equals a local
single-process run with the same seed, bit for bit.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from types import SimpleNamespace

import numpy as np


def _prepared():
    from nanotools.simulate import simulate_map
    sim = simulate_map("laminate", shape=(256, 128), period_nm=12.0, thickness_nm=40.0, seed=0)
    return SimpleNamespace(intensity=np.clip(sim.rsm.intensity - 1.0, 0, None),
                           mask=sim.rsm.mask, pixel_nm=sim.pixel_nm,
                           thickness_nm=sim.thickness_nm, patch_nm=5 * sim.period_nm,
                           period_nm=sim.period_nm)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--starts", type=int, default=64)
    ap.add_argument("--iterations", type=int, default=300)
    ap.add_argument("--repeats", type=int, default=2)
    args = ap.parse_args(argv)
    os.environ["NANOTOOLS_FFT_WORKERS"] = "1"  # inherited by the worker processes
    from dask.distributed import Client, LocalCluster

    from nanotools.backend import get_backend
    from nanotools.distributed import phase_retrieval_distributed
    from nanotools.phasing import phase_retrieval

    prep = _prepared()
    kw = dict(seed=5, algorithm=f"HIO**{args.iterations}")
    local = phase_retrieval(prep, n_starts=args.starts, backend=get_backend(workers=1), **kw)
    chunk = max(1, args.starts // 8)
    walls, equal = {}, {}
    for n_workers in (1, 2):
        with LocalCluster(n_workers=n_workers, threads_per_worker=1, processes=True,
                          dashboard_address=None) as cluster, Client(cluster) as client:
            # warm-up: import nanotools, compile the kernels, plan the FFTs on every worker
            phase_retrieval_distributed(prep, client, n_starts=2 * n_workers, chunk=1,
                                        seed=0, algorithm="HIO**2")
            best = np.inf
            for _ in range(args.repeats):
                t = time.perf_counter()
                res = phase_retrieval_distributed(prep, client, n_starts=args.starts,
                                                  chunk=chunk, **kw)
                best = min(best, time.perf_counter() - t)
            walls[n_workers] = best
            equal[n_workers] = all(np.array_equal(getattr(res, f), getattr(local, f))
                                   for f in ("objects", "supports", "history", "llk"))
    print(f"| workers | wall time (s), {args.starts} starts x {args.iterations} iterations, "
          "256 x 128 | equals local run |")
    print("|---|---|---|")
    for n in (1, 2):
        print(f"| {n} | {walls[n]:.2f} | {'yes, bit for bit' if equal[n] else 'NO'} |")
    print(f"\ntwo workers / one worker = {walls[2] / walls[1]:.2f} "
          f"(local single process: {local.phasing_time_s:.2f} s); {os.cpu_count()} cores")
    return 0 if all(equal.values()) else 1


if __name__ == "__main__":
    sys.exit(main())

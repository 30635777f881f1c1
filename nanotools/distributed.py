"""Phase retrieval spread over a Dask cluster, chunk of starts by chunk.

Start ``k`` of seed ``s`` draws from ``np.random.default_rng([s, k])`` and
the engine's transforms do not depend on the batch size (see
:class:`nanotools.backend.FFTPlan`), so any split of the starts into chunks,
computed anywhere, joins (:func:`nanotools.phasing.concatenate`) into the
result of one local run with the same seed; the splitting and joining is
:func:`nanotools.chunks.phase_in_chunks`, here with the chunks on workers.

Examples
--------
>>> from dask.distributed import Client                      # doctest: +SKIP
>>> with Client("tcp://scheduler:8786") as client:            # doctest: +SKIP
...     result = phase_retrieval_distributed(prepared, client, n_starts=512,
...                                          chunk=32, seed=1)
"""
from __future__ import annotations

import time

import numpy as np

from .chunks import phase_in_chunks, start_chunks
from .errors import ParameterError
from .phasing import PhasingResult, phase_retrieval

__all__ = ["phase_retrieval_distributed"]


def _phase_chunk(prepared, *, first: int, count: int, seed: int, fft_workers: int,
                 params: dict) -> PhasingResult:
    """One chunk on a worker, with ``fft_workers`` FFT threads (the worker's
    own threads already run chunks side by side)."""
    from .backend import get_backend
    backend = get_backend(params.pop("backend", "numpy"), params.pop("precision", "single"),
                          workers=fft_workers)
    return phase_retrieval(prepared, n_starts=count, start=first, seed=seed, backend=backend,
                           precision=backend.precision, **params)


def phase_retrieval_distributed(prepared, client, *, n_starts: int, chunk: int | None = None,
                                seed: int = 0, start: int = 0, fft_workers: int = 1,
                                **phasing_params) -> PhasingResult:
    """:func:`nanotools.phasing.phase_retrieval` with the starts spread over
    the workers of a ``dask.distributed`` client.

    Parameters
    ----------
    prepared
        The :class:`~nanotools.preprocess.PreparedMap` (sent to the workers once).
    client
        A ``dask.distributed.Client``.
    n_starts
        As for :func:`~nanotools.phasing.phase_retrieval`.
    chunk
        Starts per task; by default the starts are split evenly, two tasks
        per worker thread (so a slow worker does not hold up the end).
    seed, start
        As for :func:`~nanotools.phasing.phase_retrieval`; the result equals
        a local run with the same values.
    fft_workers
        FFT threads per task. Keep 1 when each worker thread runs a task.
    **phasing_params
        Any other keyword of :func:`~nanotools.phasing.phase_retrieval`
        (``algorithm``, ``beta``, ``precision``, ``backend`` as a name ...).

    Returns
    -------
    PhasingResult
        With ``phasing_time_s`` the wall time of the whole distributed run;
        ``parameters["task_time_s"]`` holds the summed time of the tasks.
    """
    if "progress" in phasing_params or "batch_size" in phasing_params:
        raise ParameterError("progress and batch_size are not available for distributed runs")
    backend = phasing_params.get("backend", "numpy")
    if not isinstance(backend, str):
        raise ParameterError("give the backend by name for a distributed run (it is made "
                             "on each worker)")
    if chunk is None:
        threads = sum(client.nthreads().values()) or 1
        chunk = max(1, int(np.ceil(n_starts / (2 * threads))))
    pieces = start_chunks(n_starts, chunk, start)
    t0 = time.perf_counter()
    # hash=False: a unique key, so a release of an earlier identical scatter
    # cannot take this one with it
    remote = client.scatter(prepared, broadcast=True, hash=False)

    def _on_workers(_phase_one, pieces):
        """The chunks' results, computed on the workers."""
        # the chunks run on the workers with their own backend (_phase_chunk)
        futures = [client.submit(_phase_chunk, remote, first=first, count=count, seed=seed,
                                 fft_workers=fft_workers, params=dict(phasing_params),
                                 pure=False,
                                 key=f"nanotools-phase-{seed}-{first}-{count}-{time.time_ns()}")
                   for first, count in pieces]
        try:
            return client.gather(futures)
        finally:
            for f in futures:
                f.release()

    joined = phase_in_chunks(prepared, pieces, seed=seed, map_chunks=_on_workers)
    joined.parameters["task_time_s"] = joined.phasing_time_s
    joined.parameters["chunk"] = chunk
    joined.phasing_time_s = time.perf_counter() - t0
    return joined

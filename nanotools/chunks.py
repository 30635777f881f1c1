"""Phase retrieval in chunks of starts: the one loop that splits the starts,
phases each chunk and joins the chunks in start order.

Start ``k`` of seed ``s`` always draws from ``np.random.default_rng([s, k])``
and the engine's transforms do not depend on the batch size, so any split of
the starts gives the result of one run start by start. Three callers use
this loop: :func:`nanotools.pipeline.run_phasing` (checkpoint after each
chunk), :func:`nanotools.distributed.phase_retrieval_distributed` (chunks on
Dask workers) and the phasing widget panel (a live plot after each chunk).
"""
from __future__ import annotations

from typing import Any, Callable, Iterable

from .errors import ParameterError

__all__ = ["start_chunks", "phase_in_chunks"]


def start_chunks(n_starts: int, chunk: int, start: int = 0) -> list[tuple[int, int]]:
    """``(first start, number of starts)`` of each chunk, in order.

    Parameters
    ----------
    n_starts
        Number of starts to split.
    chunk
        Starts per chunk (the last chunk may hold fewer).
    start
        Index of the first start.

    Returns
    -------
    list of tuple
        ``(first, count)`` per chunk.
    """
    if n_starts < 1:
        raise ParameterError(f"n_starts must be >= 1, got {n_starts}")
    if chunk < 1:
        raise ParameterError(f"chunk must be >= 1, got {chunk}")
    return [(start + a, min(chunk, n_starts - a)) for a in range(0, n_starts, chunk)]


def phase_in_chunks(prepared: Any, pieces: list[tuple[int, int]], *, seed: int = 0,
                    done: Iterable = (), map_chunks: Callable | None = None,
                    on_chunk: Callable[[Any], None] | None = None,
                    progress: Callable[[int, int], None] | None = None,
                    **phasing_params: Any) -> Any:
    """Phase the starts of every chunk and join them with the chunks ``done``.

    Parameters
    ----------
    prepared
        The :class:`~nanotools.preprocess.PreparedMap`.
    pieces
        ``(first start, number of starts)`` per chunk (:func:`start_chunks`).
    seed
        Random seed of the starts.
    done
        Chunks finished already (e.g. read from a checkpoint), joined first.
    map_chunks
        ``map_chunks(phase_one, pieces)`` returns the chunks' results in any
        order (e.g. computed on Dask workers); by default they are computed
        here, one after the other.
    on_chunk
        Called with each chunk's :class:`~nanotools.phasing.PhasingResult`
        as it arrives (checkpoint it, redraw a plot ...).
    progress
        ``progress(done_iterations, total_iterations)`` over all chunks
        (only when the chunks are computed here).
    **phasing_params
        Keywords of :func:`~nanotools.phasing.phase_retrieval`.

    Returns
    -------
    PhasingResult
        Every start of ``done`` and ``pieces``, in start order.
    """
    from .params import PARAMETERS
    from .phasing import concatenate, parse_algorithm, phase_retrieval

    total = sum(count for _, count in pieces)
    algorithm = phasing_params.get("algorithm", PARAMETERS["algorithm"].default)
    n_iter = sum(n for _, n in parse_algorithm(algorithm)) if progress is not None else 0

    def _phase_one(piece: tuple[int, int]) -> Any:
        """Phase one chunk ``(first, count)`` here."""
        first, count = piece
        offset = sum(c for f, c in pieces if f < first)
        chunk_progress = None
        if progress is not None:
            def chunk_progress(i: int, _total: int) -> None:
                progress(offset * n_iter + i, total * n_iter)
        return phase_retrieval(prepared, **{**phasing_params, "n_starts": count}, seed=seed,
                               start=first, progress=chunk_progress)

    results = list(done)
    for part in (map_chunks or map)(_phase_one, pieces):
        results.append(part)
        if on_chunk is not None:
            on_chunk(part)
    return concatenate(sorted(results, key=lambda r: int(r.start_indices[0])))

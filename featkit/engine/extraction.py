"""``extract``: the features of a data set, computed chunk by chunk, cached, resumable.

It splits the images that are not cached yet into chunks, has a runner compute them
(:mod:`featkit.engine.runners`, or :mod:`featkit.engine.dask` on a cluster), commits every
finished chunk to the cache and returns a :class:`~featkit.features.FeatureSet`. An image
that cannot be read or described is recorded with its reason and skipped; the rest of its
chunk and of the run is kept.
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

import numpy as np
from joblib import effective_n_jobs
from tqdm.auto import tqdm

from featkit._version import dependency_versions
from featkit.cache import FeatureCache
from featkit.data import Dataset, load_dataset
from featkit.engine.runners import ChunkResult, add_notes, extract_chunk, run_local
from featkit.exceptions import FeatkitError, InvalidParameterError
from featkit.extractors.base import Extractor
from featkit.features import FeatureSet
from featkit.hardware import describe_machine
from featkit.registry import create_extractor

__all__ = ["DEFAULT_BATCH_SIZE", "extract", "resolve_inputs"]

logger = logging.getLogger(__name__)

DEFAULT_BATCH_SIZE = 64
#: An extractor failing on this many readable images before any success stops the run.
MAX_FAILURES_WITHOUT_SUCCESS = 16


@dataclass
class _CacheHits:
    """What the cache already holds for a data set: rows, remembered failures, and the
    images still to compute."""

    hashes: list[str | None]  # content hash of each image (None: the file cannot be read)
    positions: list[int]  # images whose rows are cached, in ``rows`` order
    rows: np.ndarray | None
    failed: dict[int, str]  # position -> reason (unreadable, now or when it was cached)
    n_cached: int  # images answered by the cache: rows and remembered failures
    pending: list[int]


def extract(
    extractor: Extractor | str,
    data: Dataset | str | Sequence[Any],
    *,
    n_jobs: int | None = None,
    batch_size: int = DEFAULT_BATCH_SIZE,
    cache_dir: str | os.PathLike | None = None,
    backend: str | None = None,
    scheduler: Any = None,
    progress: bool | None = None,
    on_chunk: Callable[[int, int], None] | None = None,
) -> FeatureSet:
    """Extract features of every image in ``data`` and return them as a FeatureSet.

    Parameters
    ----------
    extractor : Extractor or str
        A fitted extractor, or a registered name built with default parameters.
    data : Dataset, str or sequence
        A Dataset, a spec for :func:`featkit.load_dataset`, or a sequence of images.
    n_jobs : int, optional
        joblib workers (-1: all cores). None (default) times the first few images, then uses
        all cores when the rest is long enough to repay starting them, else this process;
        it cuts a job of slow images into smaller chunks, so that even a job of one chunk
        keeps every core busy.
        For a batched extractor (``cnn``), the number of DataLoader workers that read and
        resize images while this process runs the model (at most 16); None decides from
        the first chunk (see docs/extraction.md).
    batch_size : int, default=64
        Images per chunk: the unit of work, of caching and of resuming.
    cache_dir : path, optional
        Folder of the feature cache; a re-run (or a run resumed after a crash) computes
        only the images whose rows are not there yet.
    backend : str, optional
        joblib backend ("loky", "threading", "multiprocessing", ...). None uses joblib's
        current one (loky, unless a ``joblib.parallel_config`` context says otherwise).
        Not used by batched extractors, which use torch's DataLoader. ``"dask"`` runs each
        chunk as a task on a Dask cluster, batched extractors included (on the workers'
        GPUs when they have them); see :mod:`featkit.engine.dask`.
    scheduler : str or distributed.Client, optional
        With ``backend="dask"``: the scheduler's address (``tcp://host:8786``) or a Client;
        None uses the current default Client.
    progress : bool, optional
        Show a progress bar; by default only on a terminal.
    on_chunk : callable, optional
        Called as ``on_chunk(done, total)`` (in images) after each finished chunk.
    """
    started = time.perf_counter()
    extractor, dataset = resolve_inputs(extractor, data, n_jobs, batch_size, backend, scheduler)
    config = extractor.config
    n = len(dataset)

    blocks: list[tuple[list[int], np.ndarray]] = []  # (dataset positions, their rows)
    failed: dict[int, str] = {}
    stats = {"cached_images": 0, "computed_images": 0, "chunks_computed": 0}
    cache = FeatureCache(cache_dir, config) if cache_dir is not None else None
    hashes: list[str | None] = [None] * n

    bar = tqdm(total=n, unit="img", desc=config["name"], disable=quiet(progress), leave=False)
    with bar:
        pending = list(range(n))
        if cache is not None:
            hits = _read_cache(cache, dataset)
            hashes, failed, pending = hits.hashes, hits.failed, hits.pending
            if hits.rows is not None:
                blocks.append((hits.positions, hits.rows))
            stats["cached_images"] = hits.n_cached
            bar.update(n - len(pending))
        chunks = [pending[i : i + batch_size] for i in range(0, len(pending), batch_size)]
        # Asked for k workers, a job uses at most one a chunk; left to decide (None), the
        # runner may cut a job of slow images into more chunks, one core each at least.
        most = len(pending) if n_jobs is None else len(chunks)
        n_workers = max(1, min(effective_n_jobs(-1 if n_jobs is None else n_jobs), most))
        engine = {"n_jobs": n_jobs, "n_workers": n_workers, "backend": backend}
        if chunks:
            logger.info(
                "extracting %d images with %s in %d chunks on up to %d worker(s)",
                len(pending),
                config["name"],
                len(chunks),
                n_workers,
            )
        done = n - len(pending)
        n_rows = 0
        extraction_errors: dict[int, str] = {}  # position -> why the extractor failed on it
        notes: dict[str, int] = {}
        if backend == "dask":
            from featkit.engine.dask import run_chunks

            runs = run_chunks(extract_chunk, extractor, dataset.items, chunks, scheduler)
        else:
            runs = run_local(extractor, dataset, chunks, n_workers, backend, n_jobs is None)
        # closing: an error here must stop DataLoader workers and restore thread settings.
        # The cache is written by one thread beside the loop, off the critical path: the
        # next chunk's model work starts while this one is saved. Leaving the block (an
        # error included) waits for the chunks already handed to it.
        writer = ThreadPoolExecutor(1, thread_name_prefix="featkit-cache")
        with writer, contextlib.closing(runs):
            for chunk, how in runs:
                engine.update(how)
                _check_dim(blocks, chunk, extractor)
                blocks.append((chunk.ok, chunk.features))
                failed.update(chunk.unreadable)
                failed.update(chunk.failed)
                add_notes(notes, chunk.notes)
                n_rows += len(chunk.ok)
                extraction_errors.update(chunk.failed)
                if n_rows == 0 and len(extraction_errors) >= MAX_FAILURES_WITHOUT_SUCCESS:
                    _raise_systematic(extractor, extraction_errors)
                stats["computed_images"] += len(chunk.positions)
                stats["chunks_computed"] += 1
                if cache is not None:
                    # Only unreadable images are remembered as failures: they depend on the file
                    # alone, while an extractor error may be fixed or transient (memory).
                    writer.submit(
                        _write_chunk,
                        cache,
                        [hashes[p] for p in chunk.ok],  # type: ignore[misc]
                        chunk.features,
                        {
                            hashes[p]: r
                            for p, r in chunk.unreadable.items()
                            if hashes[p] is not None
                        },
                    )
                done += len(chunk.positions)
                bar.update(len(chunk.positions))
                if on_chunk is not None:
                    on_chunk(done, n)

    if extraction_errors and not _blocks_have_rows(blocks):
        _raise_systematic(extractor, extraction_errors)
    elapsed = time.perf_counter() - started
    fs = _assemble(extractor, dataset, blocks, failed)
    fs.provenance = _provenance(
        config, dataset, elapsed, {**engine, "batch_size": batch_size}, cache, stats, len(failed)
    )
    fs.provenance["counts"].update({k: v for k, v in notes.items() if v})
    if failed:
        logger.warning(
            "%d of %d images could not be used (first: %s: %s)",
            len(failed),
            n,
            fs.failed[0]["id"],
            fs.failed[0]["reason"],
        )
    return fs


def _write_chunk(cache: FeatureCache, *args: Any) -> None:
    """Write one chunk to the cache (in the writer thread): a failure costs the cache, said
    in the log, never the run (the rows are in memory)."""
    try:
        cache.write(*args)
    except Exception:
        cache.writable = False
        logger.exception("feature cache disabled after a failed write to %s", cache.directory)


def resolve_inputs(
    extractor: Extractor | str,
    data: Dataset | str | Sequence[Any],
    n_jobs: Any,
    batch_size: Any,
    backend: Any,
    scheduler: Any,
) -> tuple[Extractor, Dataset]:
    """The extractor (built from a name) and the data set, both checked before any work."""
    if isinstance(extractor, str):
        extractor = create_extractor(extractor)
    dataset = _as_dataset(data)
    _validate_engine_args(n_jobs, batch_size, backend, scheduler)
    extractor.validate_params()
    extractor._check_fitted()
    return extractor, dataset


def _validate_engine_args(n_jobs: Any, batch_size: Any, backend: Any, scheduler: Any) -> None:
    """Check the engine's own arguments before any work starts."""
    from joblib.parallel import BACKENDS, EXTERNAL_BACKENDS

    if n_jobs is not None and (isinstance(n_jobs, bool) or not isinstance(n_jobs, int)):
        raise InvalidParameterError(f"n_jobs must be an integer or None, got {n_jobs!r}")
    if n_jobs == 0:
        raise InvalidParameterError("n_jobs must not be 0: use None (auto), -1 (all cores) or k")
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise InvalidParameterError(f"batch_size must be a positive integer, got {batch_size!r}")
    known = sorted(set(BACKENDS) | set(EXTERNAL_BACKENDS))
    if backend is not None and backend not in known:
        raise InvalidParameterError(
            f"unknown joblib backend {backend!r}; known backends: {', '.join(known)}"
        )
    if scheduler is not None and backend != "dask":
        raise InvalidParameterError(
            f"scheduler={scheduler!r} is for backend='dask' (backend is {backend!r})"
        )


def _blocks_have_rows(blocks: list[tuple[list[int], np.ndarray]]) -> bool:
    """Whether any block holds at least one feature row (from the cache or this run)."""
    return any(len(positions) for positions, _ in blocks)


def _raise_systematic(extractor: Extractor, errors: dict[int, str]) -> None:
    first = next(iter(errors.values()), "")
    raise FeatkitError(
        f"{extractor.name or type(extractor).__name__} failed on all {len(errors)} readable "
        "images it tried and succeeded on none; this is a bug or a bad parameter, not bad "
        f"images. First error: {first}"
    )


def _as_dataset(data: Dataset | str | Sequence[Any]) -> Dataset:
    if isinstance(data, Dataset):
        return data
    if isinstance(data, (str, os.PathLike)):
        return load_dataset(data)
    return Dataset.from_items(data)


def quiet(progress: bool | None) -> bool | None:
    # tqdm's disable=None means "only on a terminal".
    return None if progress is None else not progress


def _read_cache(cache: FeatureCache, dataset: Dataset) -> _CacheHits:
    """The rows and failures the cache holds for ``dataset``, and what is left to compute."""
    hashes: list[str | None] = []
    failed: dict[int, str] = {}
    for i, (digest, reason) in enumerate(cache.fingerprints(dataset.items)):
        hashes.append(digest)
        if digest is None:
            failed[i] = reason
    lookup = cache.lookup(h for h in hashes if h is not None)
    positions = [i for i, h in enumerate(hashes) if h in lookup.rows]
    rows = cache.read([lookup.rows[hashes[i]] for i in positions]) if positions else None  # type: ignore[index]
    remembered = [i for i, h in enumerate(hashes) if h in lookup.failures and h not in lookup.rows]
    for i in remembered:
        failed[i] = lookup.failures[hashes[i]]  # type: ignore[index]
    done = set(positions) | set(failed)
    pending = [i for i in range(len(hashes)) if i not in done]
    return _CacheHits(hashes, positions, rows, failed, len(positions) + len(remembered), pending)


def _check_dim(
    blocks: list[tuple[list[int], np.ndarray]], chunk: ChunkResult, extractor: Extractor
) -> None:
    known = [b for _, b in blocks if len(b)]
    if not known or not len(chunk.features):
        return
    expected = known[0].shape[1]
    if chunk.features.shape[1] != expected:
        raise FeatkitError(
            f"{type(extractor).__name__} returned {chunk.features.shape[1]} features for some "
            f"images and {expected} for others; give it a fixed image size"
        )


def _assemble(
    extractor: Extractor,
    dataset: Dataset,
    blocks: list[tuple[list[int], np.ndarray]],
    failed: dict[int, str],
) -> FeatureSet:
    """The FeatureSet of ``blocks`` in dataset order; empties ``blocks`` as it goes."""
    filled = [(np.asarray(p, dtype=np.int64), b) for p, b in blocks if len(p)]
    blocks.clear()
    if filled:
        kept = np.sort(np.concatenate([p for p, _ in filled]))
        X = np.empty((len(kept), filled[0][1].shape[1]), dtype=np.float32)
        # Block by block into one array, each block let go once copied: concatenating then
        # reordering held three copies of the features at once (36 GB for 9,144 Fisher
        # vectors of the published recipe), this holds one and a block.
        while filled:
            positions, rows = filled.pop()
            X[np.searchsorted(kept, positions)] = rows
            del rows
    else:
        kept = np.zeros(0, dtype=np.int64)
        X = np.zeros((0, extractor._feature_dim() or 0), dtype=np.float32)
    failures = [
        {"id": str(dataset.ids[i]), "source": _source_name(dataset.items[i]), "reason": failed[i]}
        for i in sorted(failed)
    ]
    return FeatureSet(
        X=X,
        y=dataset.labels[kept],
        ids=dataset.ids[kept],
        class_names=list(dataset.class_names),
        domains=None if dataset.domains is None else dataset.domains[kept],
        splits=None if dataset.splits is None else dataset.splits[kept],
        failed=failures,
    )


def _source_name(item: Any) -> str:
    if isinstance(item, (str, os.PathLike)):
        return os.fspath(item)
    shape = getattr(item, "shape", None)
    return f"<array {tuple(shape)}>" if shape is not None else f"<{type(item).__name__}>"


def _provenance(
    config: dict[str, Any],
    dataset: Dataset,
    elapsed: float,
    engine: dict[str, Any],
    cache: FeatureCache | None,
    stats: dict[str, int],
    n_failed: int,
) -> dict[str, Any]:
    n = len(dataset)
    return {
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "versions": dependency_versions(),
        "machine": describe_machine(),
        "extractor": config,
        "dataset": dataset.describe(),
        "engine": engine,
        "cache": None if cache is None else {"dir": str(cache.directory), **stats},
        "counts": {"images": n, "failed": n_failed, "computed": stats["computed_images"]},
        "timing": {
            "seconds": round(elapsed, 4),
            "images_per_second": round(n / elapsed, 2) if elapsed > 0 else None,
        },
    }

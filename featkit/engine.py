"""Batch extraction: parallel, cached, resumable, and tolerant of unreadable images.

``extract(extractor, data)`` splits the images that are not cached yet into chunks, runs the
chunks in joblib workers (each pinned to one BLAS/OpenCV/torch thread, so N workers never
oversubscribe N cores), commits every finished chunk to the cache, and returns a
:class:`~featkit.features.FeatureSet`. An image that cannot be read or described is recorded
with its reason and skipped; the rest of its chunk and of the run is kept.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import math
import os
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
from joblib import Parallel, delayed, effective_n_jobs
from threadpoolctl import threadpool_limits
from tqdm.auto import tqdm

from featkit._version import dependency_versions
from featkit.cache import FeatureCache
from featkit.data import Dataset, load_dataset
from featkit.exceptions import (
    DatasetError,
    FeatkitError,
    ImageReadError,
    InvalidParameterError,
)
from featkit.extractors.base import Extractor
from featkit.extractors.params import check_int
from featkit.features import FeatureSet
from featkit.hardware import describe_machine
from featkit.registry import create_extractor
from featkit.store import ShardStore

__all__ = ["extract", "extract_to_store"]

logger = logging.getLogger(__name__)

DEFAULT_BATCH_SIZE = 64
#: An extractor failing on this many readable images before any success stops the run.
MAX_FAILURES_WITHOUT_SUCCESS = 16
#: With n_jobs=None, workers start only when the job would take longer than this on one core.
AUTO_PARALLEL_MIN_SECONDS = 3.0
#: With n_jobs=None, a batched extractor gets data workers only when reading and resizing
#: cost at least this fraction of its model's time (measured on the first chunk).
LOADER_MIN_READ_SHARE = 0.1
#: At most this many DataLoader workers (n_jobs=-1 on a large machine would start one per
#: core, each holding prefetched chunks in shared memory).
MAX_LOADER_WORKERS = 16
#: The options of :func:`extract` that :func:`extract_to_store` passes on.
ENGINE_OPTIONS = ("n_jobs", "batch_size", "cache_dir", "backend", "scheduler")


@dataclass
class _Chunk:
    """The result of one chunk: rows of the images that worked, reasons for the others."""

    positions: list[int]  # dataset positions of the chunk's images
    features: np.ndarray  # (n_ok, d)
    ok: list[int] = field(default_factory=list)  # dataset positions with a row, in row order
    unreadable: dict[int, str] = field(default_factory=dict)  # position -> why it can't be read
    failed: dict[int, str] = field(default_factory=dict)  # position -> why extraction failed
    notes: dict[str, int] = field(default_factory=dict)  # the extractor's transform_notes()


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
        joblib workers (-1: all cores). None (default) uses all cores when the job is long
        enough to repay starting them (judged by timing the first chunk), else this process.
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
        GPUs when they have them); see :mod:`featkit.distributed`.
    scheduler : str or distributed.Client, optional
        With ``backend="dask"``: the scheduler's address (``tcp://host:8786``) or a Client;
        None uses the current default Client.
    progress : bool, optional
        Show a progress bar; by default only on a terminal.
    on_chunk : callable, optional
        Called as ``on_chunk(done, total)`` (in images) after each finished chunk.
    """
    started = time.perf_counter()
    extractor, dataset = _prepare(extractor, data, n_jobs, batch_size, backend, scheduler)
    config = extractor.config
    n = len(dataset)

    blocks: list[tuple[list[int], np.ndarray]] = []  # (dataset positions, their rows)
    failed: dict[int, str] = {}
    stats = {"cached_images": 0, "computed_images": 0, "chunks_computed": 0}
    cache = FeatureCache(cache_dir, config) if cache_dir is not None else None
    hashes: list[str | None] = [None] * n

    bar = tqdm(total=n, unit="img", desc=config["name"], disable=_quiet(progress), leave=False)
    with bar:
        pending = list(range(n))
        if cache is not None:
            pending = _resolve_from_cache(cache, dataset, hashes, blocks, failed, stats)
            bar.update(n - len(pending))
        chunks = [pending[i : i + batch_size] for i in range(0, len(pending), batch_size)]
        n_workers = max(1, min(effective_n_jobs(-1 if n_jobs is None else n_jobs), len(chunks)))
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
            from featkit.distributed import run_chunks

            runs = run_chunks(_extract_chunk, extractor, dataset.items, chunks, scheduler, engine)
        else:
            runs = _run_chunks(
                extractor, dataset, chunks, n_workers, backend, n_jobs is None, engine
            )
        # closing: an error here must stop DataLoader workers and restore thread settings.
        with contextlib.closing(runs):
            for chunk in runs:
                _check_dim(blocks, chunk, extractor)
                blocks.append((chunk.ok, chunk.features))
                failed.update(chunk.unreadable)
                failed.update(chunk.failed)
                _add_notes(notes, chunk.notes)
                n_rows += len(chunk.ok)
                extraction_errors.update(chunk.failed)
                if n_rows == 0 and len(extraction_errors) >= MAX_FAILURES_WITHOUT_SUCCESS:
                    _raise_systematic(extractor, extraction_errors)
                stats["computed_images"] += len(chunk.positions)
                stats["chunks_computed"] += 1
                if cache is not None:
                    # Only unreadable images are remembered as failures: they depend on the file
                    # alone, while an extractor error may be fixed or transient (memory).
                    cache.write(
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


def extract_to_store(
    extractor: Extractor | str,
    data: Dataset | str | Sequence[Any],
    path: str | os.PathLike,
    *,
    shard_images: int = 50_000,
    progress: bool | None = None,
    **engine: Any,
) -> ShardStore:
    """Extract features of every image in ``data`` into a :class:`~featkit.store.ShardStore`
    at ``path``, ``shard_images`` images per shard, never holding more than one shard.

    Each shard is one :func:`extract` call over the next ``shard_images`` images (``engine``:
    its ``n_jobs``, ``batch_size``, ``cache_dir``, ``backend``, ``scheduler``), written once
    complete: a re-run with the same extractor, data and ``shard_images`` resumes after the
    last written shard (and, with a ``cache_dir``, reuses the rows of the unfinished one).
    Images that cannot be used are recorded in ``store.failed``, the rest is kept.
    """
    check_int("extract_to_store", "shard_images", shard_images, low=1)
    unknown = sorted(set(engine) - set(ENGINE_OPTIONS))
    if unknown:
        raise InvalidParameterError(
            f"extract_to_store: unknown option(s) {unknown}; it passes {ENGINE_OPTIONS} on "
            "to extract"
        )
    extractor, dataset = _prepare(
        extractor,
        data,
        engine.get("n_jobs"),
        engine.get("batch_size", DEFAULT_BATCH_SIZE),
        engine.get("backend"),
        engine.get("scheduler"),
    )
    plan = _store_plan(extractor, dataset, shard_images)
    root = Path(path)
    store = _open_store_for(root, plan)
    n = len(dataset)
    slices = [range(i, min(i + shard_images, n)) for i in range(0, n, shard_images)]
    started = time.perf_counter()
    done = store.n_shards if store is not None else 0
    name = extractor.config["name"]
    # Shards of images that all failed, before any row told the feature dimension: written
    # (empty, with their failures) once it is known, so that shard k stays slice k.
    waiting: list[list[dict[str, str]]] = []
    bar = tqdm(total=n, unit="img", desc=name, disable=_quiet(progress), leave=False)
    with bar:
        bar.update(sum(len(s) for s in slices[:done]))
        for part in slices[done:]:
            offset = bar.n
            fs = extract(
                extractor,
                dataset.subset(np.asarray(part)),
                progress=False,
                on_chunk=lambda finished, _total, offset=offset: bar.update(
                    offset + finished - bar.n
                ),
                **engine,
            )
            bar.update(offset + len(part) - bar.n)
            if store is None and fs.dim == 0:
                waiting.append(fs.failed)
                continue
            if store is None:
                store = ShardStore.create(
                    root,
                    fs.dim,
                    dataset.class_names,
                    {"extraction": plan, "provenance": _store_provenance(fs)},
                )
                for failed in waiting:
                    store.append(np.zeros((0, fs.dim), np.float32), [], [], failed)
            store.append(fs.X, fs.y, fs.ids, fs.failed)
    if store is None:
        if not waiting:
            raise DatasetError("there are no images to extract")
        first = waiting[0][0]
        raise DatasetError(
            f"none of the {n} images could be used (first: {first['id']}: {first['reason']})"
        )
    logger.info(
        "%s: %d shards (%d rows, %d images could not be used) in %s, %.1f s",
        name,
        store.n_shards,
        len(store),
        len(store.failed),
        root,
        time.perf_counter() - started,
    )
    return store


def _store_plan(extractor: Extractor, dataset: Dataset, shard_images: int) -> dict[str, Any]:
    """What a store's shards depend on: a store is only resumed by the same plan."""
    digest = hashlib.sha256("\n".join(map(str, dataset.ids.tolist())).encode()).hexdigest()
    return {
        "extractor": extractor.config,
        "n_images": len(dataset),
        "image_ids_sha256": digest,
        "shard_images": int(shard_images),
    }


def _open_store_for(root: Path, plan: dict[str, Any]) -> ShardStore | None:
    """The store at ``root`` when it was written by ``plan`` (to resume); None when the
    folder is new or empty; an error for anything else."""
    if root.exists() and not root.is_dir():
        raise DatasetError(f"cannot write a feature store to {root}: it is a file")
    if not root.is_dir() or not any(root.iterdir()):
        return None
    store = ShardStore(root)  # raises when it is not a store
    # The plan as the manifest holds it (JSON: tuples become lists).
    if store.metadata.get("extraction") != json.loads(json.dumps(plan, default=str)):
        raise DatasetError(
            f"{root} holds a feature store of another extraction (different extractor, "
            "parameters, images or shard_images); resume it with the same ones or choose a "
            "new folder"
        )
    return store


def _store_provenance(fs: FeatureSet) -> dict[str, Any]:
    """The first shard's provenance, less its run-specific counts and timing."""
    keep = ("created", "versions", "machine", "extractor", "dataset", "engine")
    provenance = {k: v for k, v in fs.provenance.items() if k in keep}
    return json.loads(json.dumps(provenance, default=str))


def _prepare(
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


def _quiet(progress: bool | None) -> bool | None:
    # tqdm's disable=None means "only on a terminal".
    return None if progress is None else not progress


def _resolve_from_cache(
    cache: FeatureCache,
    dataset: Dataset,
    hashes: list[str | None],
    blocks: list[tuple[list[int], np.ndarray]],
    failed: dict[int, str],
    stats: dict[str, int],
) -> list[int]:
    """Fill ``blocks``/``failed`` from the cache; return the positions still to compute."""
    for i, (digest, reason) in enumerate(cache.fingerprints(dataset.items)):
        if digest is None:
            failed[i] = reason
        else:
            hashes[i] = digest
    lookup = cache.lookup(h for h in hashes if h is not None)
    hit_positions = [i for i, h in enumerate(hashes) if h in lookup.rows]
    if hit_positions:
        cached = cache.read([lookup.rows[hashes[i]] for i in hit_positions])  # type: ignore[index]
        blocks.append((hit_positions, cached))
    cached_failures = [
        i for i, h in enumerate(hashes) if h in lookup.failures and h not in lookup.rows
    ]
    for i in cached_failures:
        failed[i] = lookup.failures[hashes[i]]  # type: ignore[index]
    stats["cached_images"] = len(hit_positions) + len(cached_failures)
    done = set(hit_positions) | set(failed)
    return [i for i in range(len(hashes)) if i not in done]


def _run_chunks(
    extractor: Extractor,
    dataset: Dataset,
    chunks: list[list[int]],
    n_workers: int,
    backend: str | None,
    auto: bool,
    engine: dict[str, Any],
) -> Iterator[_Chunk]:
    """Yield chunk results in order, in this process or in ``n_workers`` joblib workers."""
    if extractor.batched:
        yield from _run_loader(extractor, dataset, chunks, n_workers, auto, engine)
        return

    def here(chunk: list[int]) -> _Chunk:
        return _extract_chunk(extractor, chunk, _take(dataset.items, chunk), False)

    todo = chunks
    if auto and n_workers > 1:
        # Probe with the first chunk here: starting workers (about 2 s with imports) only
        # pays when the rest of the job would take longer than that on one core.
        started = time.perf_counter()
        yield here(chunks[0])
        estimate = (time.perf_counter() - started) * (len(chunks) - 1)
        todo = chunks[1:]
        if estimate < AUTO_PARALLEL_MIN_SECONDS:
            n_workers = 1
    engine["n_workers"] = n_workers
    if n_workers == 1:
        yield from (here(chunk) for chunk in todo)
        return
    tasks = (
        delayed(_extract_chunk)(extractor, chunk, _take(dataset.items, chunk), True)
        for chunk in todo
    )
    # Ordered generator: results stream back as they finish, so each is cached at once.
    yield from Parallel(n_jobs=n_workers, backend=backend, return_as="generator")(tasks)


def _run_loader(
    extractor: Extractor,
    dataset: Dataset,
    chunks: list[list[int]],
    n_workers: int,
    auto: bool,
    engine: dict[str, Any],
) -> Iterator[_Chunk]:
    """Batched extractors: DataLoader workers read and resize, this process runs the model.

    Data workers get one thread each. With n_jobs=None the first chunk runs here, timing
    reading against the model and counting the cores the model keeps busy. Workers start
    when reading costs at least a tenth of the model's time and there are idle cores for
    them (a GPU model leaves them idle), as many as keep the model fed; a model that
    saturates the CPU reads here (workers would only contend with it for the same cores),
    unless reading costs as much as the model itself.
    """
    import torch
    from torch.utils.data import DataLoader

    if not auto and n_workers == 1:
        n_workers = 0  # n_jobs=1: everything in this process
    # Each worker holds two prepared chunks (about 10 MB each at 224 px) in shared memory.
    n_workers = min(n_workers, MAX_LOADER_WORKERS)
    if auto:
        n_workers = 0
        if len(chunks) > 1:
            chunk, share, busy = _probe_chunk(extractor, dataset, chunks[0])
            yield chunk
            chunks = chunks[1:]
            idle = effective_n_jobs(-1) - busy
            if share >= LOADER_MIN_READ_SHARE and (idle >= 1 or share >= 1):
                wanted = math.ceil(1.25 * share)
                n_workers = max(1, min(wanted, len(chunks), math.floor(max(idle, 1))))
            engine.update(read_share=round(share, 3), model_busy_cores=round(busy, 2))
    engine.update(n_workers=n_workers, runner="dataloader", torch_threads=torch.get_num_threads())
    if not chunks:
        return
    if n_workers:
        extractor._feature_dim()  # load the model here once: forked workers inherit it
    loader = DataLoader(
        _ChunkReader(extractor, dataset.items, chunks),
        batch_size=None,  # each item is already a whole chunk
        num_workers=n_workers,
        prefetch_factor=2 if n_workers else None,
    )
    # Workers are forked (torch's default on Linux: they inherit the loaded model) and
    # torch gives each one thread. OpenCV's thread count cannot be set inside a forked
    # worker (its pool does not survive the fork: the call waits forever), so workers
    # inherit a sequential OpenCV from this process, which does not use OpenCV meanwhile.
    with _opencv_pool_off() if n_workers else contextlib.nullcontext():
        for positions, prepared, ok, unreadable in loader:
            batch = prepared.numpy() if isinstance(prepared, torch.Tensor) else prepared
            yield _describe_chunk(extractor, positions, batch, ok, unreadable)


def _probe_chunk(
    extractor: Extractor, dataset: Dataset, chunk: list[int]
) -> tuple[_Chunk, float, float]:
    """Run one chunk here; return it, the time reading took relative to the model's, and
    the number of cores the model kept busy (CPU time over wall time)."""
    items = _take(dataset.items, chunk)
    with contextlib.suppress(Exception):  # load what reading and the model need, untimed
        extractor.transform_prepared([extractor.prepare(items[0])])
    started = time.perf_counter()
    prepared, ok, unreadable = _prepare_chunk(extractor, chunk, items)
    read = time.perf_counter() - started
    started, cpu = time.perf_counter(), time.process_time()
    result = _describe_chunk(extractor, chunk, prepared, ok, unreadable)
    model = max(time.perf_counter() - started, 1e-9)
    return result, read / model, (time.process_time() - cpu) / model


class _ChunkReader:
    """A map-style dataset whose item i is chunk i, read and prepared (in a worker)."""

    def __init__(self, extractor: Extractor, items: Any, chunks: list[list[int]]) -> None:
        self.extractor = extractor
        self.items = items
        self.chunks = chunks

    def __len__(self) -> int:
        return len(self.chunks)

    def __getitem__(self, index: int) -> tuple[list[int], Any, list[int], dict[int, str]]:
        positions = self.chunks[index]
        prepared, ok, unreadable = _prepare_chunk(
            self.extractor, positions, _take(self.items, positions)
        )
        if prepared and all(p.shape == prepared[0].shape for p in prepared):
            # One array: it crosses to the main process through shared memory, not pickle.
            return positions, np.stack(prepared), ok, unreadable
        return positions, prepared, ok, unreadable


@contextlib.contextmanager
def _opencv_pool_off() -> Iterator[None]:
    """Run OpenCV sequentially (no thread pool) in this block."""
    import cv2

    previous = cv2.getNumThreads()
    cv2.setNumThreads(0)
    try:
        yield
    finally:
        cv2.setNumThreads(previous)


def _take(items: Sequence[Any] | np.ndarray, positions: list[int]) -> Sequence[Any]:
    if isinstance(items, np.ndarray):
        return items[positions]
    return [items[i] for i in positions]


def _extract_chunk(
    extractor: Extractor, positions: list[int], items: Sequence[Any], pin_threads: bool
) -> _Chunk:
    """Prepare and describe one chunk of images; runs in a worker process."""
    with _single_threaded() if pin_threads else contextlib.nullcontext():
        prepared, ok, unreadable = _prepare_chunk(extractor, positions, items)
        return _describe_chunk(extractor, positions, prepared, ok, unreadable)


def _prepare_chunk(
    extractor: Extractor, positions: list[int], items: Sequence[Any]
) -> tuple[list[np.ndarray], list[int], dict[int, str]]:
    """Read and convert a chunk's images; unreadable ones are set aside with the reason."""
    prepared: list[np.ndarray] = []
    ok: list[int] = []
    unreadable: dict[int, str] = {}
    for pos, item in zip(positions, items, strict=True):
        try:
            prepared.append(extractor.prepare(item))
            ok.append(pos)
        except ImageReadError as exc:
            unreadable[pos] = exc.reason
    return prepared, ok, unreadable


def _describe_chunk(
    extractor: Extractor,
    positions: list[int],
    prepared: list[np.ndarray] | np.ndarray,
    ok: list[int],
    unreadable: dict[int, str],
) -> _Chunk:
    """Features of a chunk's prepared images; isolates the images the extractor fails on."""
    failed: dict[int, str] = {}
    try:
        features = extractor.transform_prepared(prepared)
        notes = extractor.transform_notes()
    except Exception as exc:
        features, kept, failed, notes = _one_by_one(extractor, list(prepared), ok)
        if not kept and len(prepared) >= 2:
            # Every image failing the same way is a bug or a bad parameter, not a bad
            # image: stop (finished chunks are already cached) instead of hiding it.
            raise exc
        ok = kept
    return _Chunk(list(positions), features, ok, unreadable, failed, notes)


def _one_by_one(
    extractor: Extractor, prepared: list[np.ndarray], ok: list[int]
) -> tuple[np.ndarray, list[int], dict[int, str], dict[str, int]]:
    """Describe images one at a time to isolate the ones that make the extractor fail."""
    rows, kept, failed = [], [], {}
    notes: dict[str, int] = {}
    for pos, image in zip(ok, prepared, strict=True):
        try:
            rows.append(extractor.transform_prepared([image])[0])
            kept.append(pos)
            _add_notes(notes, extractor.transform_notes())
        except Exception as exc:
            failed[pos] = f"extraction failed: {type(exc).__name__}: {exc}"
    dim = extractor._feature_dim() or 0
    features = np.stack(rows) if rows else np.zeros((0, dim), dtype=np.float32)
    return features, kept, failed, notes


def _add_notes(total: dict[str, int], more: dict[str, int]) -> None:
    for key, value in more.items():
        total[key] = total.get(key, 0) + int(value)


@contextlib.contextmanager
def _single_threaded() -> Iterator[None]:
    """Pin BLAS, OpenCV and torch to one thread in this worker."""
    import cv2

    previous_cv = cv2.getNumThreads()
    cv2.setNumThreads(1)
    torch = sys.modules.get("torch")
    previous_torch = torch.get_num_threads() if torch is not None else None
    if torch is not None:
        torch.set_num_threads(1)
    try:
        with threadpool_limits(limits=1):
            yield
    finally:
        cv2.setNumThreads(previous_cv)
        if torch is not None and previous_torch is not None:
            torch.set_num_threads(previous_torch)


def _check_dim(
    blocks: list[tuple[list[int], np.ndarray]], chunk: _Chunk, extractor: Extractor
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
    blocks = [(p, b) for p, b in blocks if len(p)]
    if blocks:
        positions = np.concatenate([np.asarray(p, dtype=np.int64) for p, _ in blocks])
        order = np.argsort(positions, kind="stable")
        kept = positions[order]
        X = np.concatenate([b for _, b in blocks]).astype(np.float32, copy=False)[order]
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

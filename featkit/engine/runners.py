"""How chunks of images are computed: in this process, in joblib workers, or read by
torch DataLoader workers for a batched extractor (``cnn``) whose model runs here.

Every runner yields ``(ChunkResult, how)`` pairs: the chunk's rows and failures, and how it
was computed (workers, runner, measured read share), which the engine records in the
provenance. Nothing is reported back through the caller's arguments.
"""

from __future__ import annotations

import contextlib
import math
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from joblib import Parallel, delayed, effective_n_jobs
from threadpoolctl import threadpool_limits

from featkit.data import Dataset
from featkit.exceptions import ImageReadError
from featkit.extractors.base import Extractor

__all__ = [
    "ChunkResult",
    "add_notes",
    "describe_chunk",
    "extract_chunk",
    "read_chunk",
    "run_loader",
    "run_local",
]

#: With n_jobs=None, workers start only when the job would take longer than this on one core.
AUTO_PARALLEL_MIN_SECONDS = 3.0
#: With n_jobs=None, a batched extractor gets data workers only when reading and resizing
#: cost at least this fraction of its model's time (measured on the first chunk).
LOADER_MIN_READ_SHARE = 0.1
#: With n_jobs=None, the images timed first (at most) to decide how to run the rest.
PROBE_IMAGES = 8
#: With n_jobs=None, a job is cut into at least this many chunks per core, so that a job of
#: slow images (12 MP photos) uses every core even when it is a single chunk ...
CHUNKS_PER_CORE = 4
#: ... but never into chunks of less work than this, so that sending one costs little.
MIN_CHUNK_SECONDS = 0.2
#: At most this many DataLoader workers (n_jobs=-1 on a large machine would start one per
#: core, each holding prefetched chunks in shared memory).
MAX_LOADER_WORKERS = 16


@dataclass
class ChunkResult:
    """The result of one chunk: rows of the images that worked, reasons for the others."""

    positions: list[int]  # dataset positions of the chunk's images
    features: np.ndarray  # (n_ok, d)
    ok: list[int] = field(default_factory=list)  # dataset positions with a row, in row order
    unreadable: dict[int, str] = field(default_factory=dict)  # position -> why it can't be read
    failed: dict[int, str] = field(default_factory=dict)  # position -> why extraction failed
    notes: dict[str, int] = field(default_factory=dict)  # counts the extractor returned


def run_local(
    extractor: Extractor,
    dataset: Dataset,
    chunks: list[list[int]],
    n_workers: int,
    backend: str | None,
    auto: bool,
) -> Iterator[tuple[ChunkResult, dict[str, Any]]]:
    """Yield each chunk's result, in order, with how it was computed, in this process or in
    ``n_workers`` joblib workers."""
    if extractor.batched:
        yield from run_loader(extractor, dataset, chunks, n_workers, auto)
        return

    def here(chunk: list[int]) -> ChunkResult:
        return extract_chunk(extractor, chunk, _take(dataset.items, chunk), False)

    todo = chunks
    if auto and n_workers > 1:
        # Time a few images here: starting workers (about 2 s with imports) only pays when
        # the rest of the job would take longer than that on one core. The rest is then cut
        # by its measured cost, not by the number of chunks asked for.
        probe, todo = _split_first(chunks, PROBE_IMAGES)
        started = time.perf_counter()
        first = here(probe)
        per_image = (time.perf_counter() - started) / len(probe)
        remaining = sum(len(c) for c in todo)
        if per_image * remaining < AUTO_PARALLEL_MIN_SECONDS:
            n_workers = 1
        else:
            todo = cut_by_cost(todo, n_workers, per_image)
            n_workers = min(n_workers, len(todo))
        yield first, {"n_workers": n_workers}
    how = {"n_workers": n_workers}
    if n_workers == 1:
        yield from ((here(chunk), how) for chunk in todo)
        return
    tasks = (
        delayed(extract_chunk)(extractor, chunk, _take(dataset.items, chunk), True)
        for chunk in todo
    )
    # Ordered generator: results stream back as they finish, so each is cached at once.
    results = Parallel(n_jobs=n_workers, backend=backend, return_as="generator")(tasks)
    yield from ((result, how) for result in results)


def run_loader(
    extractor: Extractor,
    dataset: Dataset,
    chunks: list[list[int]],
    n_workers: int,
    auto: bool,
) -> Iterator[tuple[ChunkResult, dict[str, Any]]]:
    """Batched extractors: DataLoader workers read and resize, this process runs the model.

    Data workers get one thread each. With n_jobs=None the first images (whole forward
    passes, about :data:`PROBE_IMAGES`) run here, timing reading against the model and
    counting the cores the model keeps busy; the rest is then cut by its reading cost
    (:func:`cut_by_cost`), so a short job of slow images still gets workers. Workers start
    when reading costs at least a tenth of the model's time and there are idle cores for
    them (a GPU model leaves them idle), as many as keep the model fed; a model that
    saturates the CPU reads here (workers would only contend with it for the same cores),
    unless reading costs as much as the model itself: then it starves, and every core reads.
    """
    import torch
    from torch.utils.data import DataLoader

    if not auto and n_workers == 1:
        n_workers = 0  # n_jobs=1: everything in this process
    # Each worker holds two prepared chunks (about 10 MB each at 224 px) in shared memory.
    n_workers = min(n_workers, MAX_LOADER_WORKERS)
    how: dict[str, Any] = {"runner": "dataloader", "torch_threads": torch.get_num_threads()}
    if auto and chunks:
        # Time a few images (whole forward passes) here, then decide on the rest.
        multiple = _forward_batch(extractor)
        probe, chunks = _split_first(chunks, multiple * math.ceil(PROBE_IMAGES / multiple))
        result, read_s, model_s, busy = _probe_chunk(extractor, dataset, probe)
        share = read_s / model_s
        cores = effective_n_jobs(-1)
        idle = cores - busy
        # Reading slower than the model starves it: every core reads (the model runs in the
        # gaps). Otherwise workers take only the cores the model leaves idle.
        room = cores if share >= 1 else math.floor(idle)
        n_workers = 0
        if chunks and share >= LOADER_MIN_READ_SHARE and room >= 1:
            wanted = min(math.ceil(1.25 * share), room, MAX_LOADER_WORKERS)
            chunks = cut_by_cost(chunks, wanted, read_s / len(probe), multiple)
            n_workers = max(1, min(wanted, len(chunks)))
        how.update(read_share=round(share, 3), model_busy_cores=round(busy, 2))
        yield result, {**how, "n_workers": n_workers}
    how["n_workers"] = n_workers
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
            yield describe_chunk(extractor, positions, batch, ok, unreadable), how


def _probe_chunk(
    extractor: Extractor, dataset: Dataset, chunk: list[int]
) -> tuple[ChunkResult, float, float, float]:
    """Run one chunk here; return it, the seconds reading took, the seconds the model took,
    and the number of cores the model kept busy (CPU time over wall time)."""
    items = _take(dataset.items, chunk)
    with contextlib.suppress(Exception):  # load what reading and the model need, untimed
        extractor.transform_prepared([extractor.load(items[0])])
    started = time.perf_counter()
    prepared, ok, unreadable = read_chunk(extractor, chunk, items)
    read = time.perf_counter() - started
    started, cpu = time.perf_counter(), time.process_time()
    result = describe_chunk(extractor, chunk, prepared, ok, unreadable)
    model = max(time.perf_counter() - started, 1e-9)
    return result, read, model, (time.process_time() - cpu) / model


def _forward_batch(extractor: Extractor) -> int:
    """Images per forward pass of a batched extractor's model (``cnn`` pads every pass to
    it, so chunks are cut at its multiples), or 1."""
    resolved = getattr(extractor, "resolved_batch_size", None)
    return int(resolved()) if callable(resolved) else 1


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
        prepared, ok, unreadable = read_chunk(
            self.extractor, positions, _take(self.items, positions)
        )
        if prepared and all(
            isinstance(p, np.ndarray) and p.shape == prepared[0].shape for p in prepared
        ):
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


def _split_first(chunks: list[list[int]], n: int) -> tuple[list[int], list[list[int]]]:
    """The first ``n`` images of the first chunk, and the chunks of the others."""
    first, rest = chunks[0][:n], chunks[0][n:]
    return first, ([rest] if rest else []) + chunks[1:]


def cut_by_cost(
    chunks: list[list[int]], n_workers: int, seconds_per_image: float, multiple: int = 1
) -> list[list[int]]:
    """The same images in chunks small enough that each of ``n_workers`` gets several
    (:data:`CHUNKS_PER_CORE`), each still worth :data:`MIN_CHUNK_SECONDS` of work and a
    multiple of ``multiple`` images (a model's forward batch); chunks already that small
    are kept as they are."""
    images = [p for c in chunks for p in c]
    if not images:
        return chunks
    size = max(
        math.ceil(MIN_CHUNK_SECONDS / max(seconds_per_image, 1e-9)),
        math.ceil(len(images) / (CHUNKS_PER_CORE * n_workers)),
    )
    size = multiple * math.ceil(size / multiple)
    if size >= max(len(c) for c in chunks):
        return chunks
    return [images[i : i + size] for i in range(0, len(images), size)]


def _take(items: Sequence[Any] | np.ndarray, positions: list[int]) -> Sequence[Any]:
    if isinstance(items, np.ndarray):
        return items[positions]
    return [items[i] for i in positions]


def extract_chunk(
    extractor: Extractor, positions: list[int], items: Sequence[Any], pin_threads: bool
) -> ChunkResult:
    """Prepare and describe one chunk of images; runs in a worker process."""
    with _single_threaded() if pin_threads else contextlib.nullcontext():
        prepared, ok, unreadable = read_chunk(extractor, positions, items)
        return describe_chunk(extractor, positions, prepared, ok, unreadable)


def read_chunk(
    extractor: Extractor, positions: list[int], items: Sequence[Any]
) -> tuple[list[np.ndarray], list[int], dict[int, str]]:
    """Read and convert a chunk's images (:meth:`Extractor.load`); unreadable ones are set
    aside with the reason."""
    prepared: list[np.ndarray] = []
    ok: list[int] = []
    unreadable: dict[int, str] = {}
    for pos, item in zip(positions, items, strict=True):
        try:
            prepared.append(extractor.load(item))
            ok.append(pos)
        except ImageReadError as exc:
            unreadable[pos] = exc.reason
    return prepared, ok, unreadable


def describe_chunk(
    extractor: Extractor,
    positions: list[int],
    prepared: list[np.ndarray] | np.ndarray,
    ok: list[int],
    unreadable: dict[int, str],
) -> ChunkResult:
    """Features of a chunk's prepared images; isolates the images the extractor fails on."""
    failed: dict[int, str] = {}
    try:
        features, notes = extractor.transform_prepared_with_notes(prepared)
    except Exception as exc:
        features, kept, failed, notes = _one_by_one(extractor, list(prepared), ok)
        if not kept and len(prepared) >= 2:
            # Every image failing the same way is a bug or a bad parameter, not a bad
            # image: stop (finished chunks are already cached) instead of hiding it.
            raise exc
        ok = kept
    return ChunkResult(list(positions), features, ok, unreadable, failed, notes)


def _one_by_one(
    extractor: Extractor, prepared: list[np.ndarray], ok: list[int]
) -> tuple[np.ndarray, list[int], dict[int, str], dict[str, int]]:
    """Describe images one at a time to isolate the ones that make the extractor fail."""
    rows, kept, failed = [], [], {}
    notes: dict[str, int] = {}
    for pos, image in zip(ok, prepared, strict=True):
        try:
            row, more = extractor.transform_prepared_with_notes([image])
            rows.append(row[0])
            kept.append(pos)
            add_notes(notes, more)
        except Exception as exc:
            failed[pos] = f"extraction failed: {type(exc).__name__}: {exc}"
    dim = extractor._feature_dim() or 0
    features = np.stack(rows) if rows else np.zeros((0, dim), dtype=np.float32)
    return features, kept, failed, notes


def add_notes(total: dict[str, int], more: dict[str, int]) -> None:
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

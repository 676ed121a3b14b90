"""Extraction chunks on a Dask cluster (``dask.distributed``), for ``extract(backend="dask")``.

The engine stays where it is: it resolves the cache, cuts the pending images into chunks
and commits each finished chunk to the cache as it arrives. Only the work moves: each chunk
is one task on the cluster, the fitted extractor is sent once to every worker, and results
stream back in the order they finish. A worker that dies loses only its running chunks,
which the scheduler runs again elsewhere; an interrupted run cancels what is left on the
cluster, and a re-run with the same cache computes only the chunks that never arrived.

Workers read the images themselves: paths must mean the same files on every worker (a
shared file system), and each worker needs featkit and the extractor's plugin installed.
A deep extractor with ``device="auto"`` runs on each worker's GPU when it has one.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from featkit.exceptions import FeatkitError, InvalidParameterError

__all__ = ["connect", "run_chunks"]

#: Seconds to wait for a scheduler given by address before saying it cannot be reached.
CONNECT_TIMEOUT = 10


def _distributed() -> Any:
    try:
        import distributed
    except ImportError:
        raise InvalidParameterError(
            "backend='dask' needs dask.distributed: pip install 'featkit[dask]'"
        ) from None
    return distributed


def connect(scheduler: Any) -> tuple[Any, bool]:
    """(client, owned): a ``distributed.Client`` for ``scheduler`` (a Client, an address
    such as ``tcp://host:8786``, or None for the current default client); ``owned`` says
    the caller must close it."""
    distributed = _distributed()
    if isinstance(scheduler, distributed.Client):
        return scheduler, False
    if scheduler is None:
        try:
            return distributed.get_client(), False
        except ValueError:
            raise InvalidParameterError(
                "backend='dask' needs a scheduler: pass scheduler='tcp://host:8786' (or a "
                "distributed.Client), or create a Client first"
            ) from None
    if isinstance(scheduler, str):
        try:
            client = distributed.Client(scheduler, timeout=CONNECT_TIMEOUT, set_as_default=False)
        except (OSError, TimeoutError) as exc:
            raise FeatkitError(f"cannot reach the Dask scheduler at {scheduler!r}: {exc}") from exc
        return client, True
    raise InvalidParameterError(
        f"scheduler must be an address such as 'tcp://host:8786' or a distributed.Client, "
        f"got {type(scheduler).__name__}"
    )


def run_chunks(
    work: Callable[..., Any],
    extractor: Any,
    items: Sequence[Any],
    chunks: list[list[int]],
    scheduler: Any,
) -> Iterator[tuple[Any, dict[str, Any]]]:
    """Yield ``(work(extractor, chunk, chunk_items, True), how)`` for every chunk, computed
    on the cluster, as each finishes (``how``: the backend, the scheduler's address and the
    number of workers); cancel the unfinished ones if the caller stops early."""
    distributed = _distributed()
    if not chunks:  # everything came from the cache
        return
    client, owned = connect(scheduler)
    try:
        workers = client.scheduler_info().get("workers", {})
        how = {"backend": "dask", "scheduler": client.scheduler.address, "n_workers": len(workers)}
        # Sent once to every worker, not pickled into each task (a CNN's config is small,
        # but a fitted codebook is not).
        (remote,) = client.scatter([extractor], broadcast=True, hash=False)
        run = uuid.uuid4().hex[:8]
        futures = [
            client.submit(
                work,
                remote,
                chunk,
                [items[i] for i in chunk],
                True,  # one BLAS/OpenCV/torch thread per task, as in joblib's workers
                key=f"featkit-chunk-{run}-{i}",
                pure=False,
            )
            for i, chunk in enumerate(chunks)
        ]
        try:
            for future in distributed.as_completed(futures, loop=client.loop):
                yield future.result(), how
        finally:
            # An error or an interrupt here must not leave the rest running on the cluster.
            client.cancel(futures)
    finally:
        if owned:
            client.close()

"""``extract_to_store``: features of a data set larger than memory, written shard by shard
into a :class:`~featkit.store.ShardStore`, resumable after the last written shard."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from featkit.data import Dataset
from featkit.engine.extraction import DEFAULT_BATCH_SIZE, extract, quiet, resolve_inputs
from featkit.exceptions import DatasetError, InvalidParameterError
from featkit.extractors.base import Extractor
from featkit.features import FeatureSet
from featkit.store import ShardStore
from featkit.validation import check_int

__all__ = ["ENGINE_OPTIONS", "extract_to_store"]

logger = logging.getLogger(__name__)

#: The options of :func:`~featkit.engine.extract` that :func:`extract_to_store` passes on.
ENGINE_OPTIONS = ("n_jobs", "batch_size", "cache_dir", "backend", "scheduler")


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
    extractor, dataset = resolve_inputs(
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
    bar = tqdm(total=n, unit="img", desc=name, disable=quiet(progress), leave=False)
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

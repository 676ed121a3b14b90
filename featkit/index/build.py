"""Build an index of saved features and measure it: what ``featkit index build`` runs.

:func:`build_index` records in ``index.stats`` the build time, the recall and speed of an
approximate index against exact search, the saved index's size and the process's peak memory.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import numpy as np

from featkit._memory import peak_rss_bytes
from featkit.exceptions import DatasetError
from featkit.features import FeatureSet
from featkit.index.feature_index import FeatureIndex
from featkit.index.recall import query_rows, recall_at_k
from featkit.store import ShardStore, open_features

__all__ = ["build_index", "measure_recall"]


def build_index(
    features: str | os.PathLike | FeatureSet | ShardStore,
    factory: str = "Flat",
    out: str | os.PathLike | None = None,
    *,
    metric: str = "cosine",
    nprobe: int | None = None,
    ef_search: int | None = None,
    device: str = "auto",
    recall_k: int = 10,
    queries: str | os.PathLike | FeatureSet | ShardStore | np.ndarray | None = None,
    train_size: int = 100_000,
    seed: int = 0,
    copy_ids: bool = False,
) -> FeatureIndex:
    """Index saved features (a FeatureSet folder or ``.npz``, or a :class:`ShardStore`
    folder, streamed shard by shard) and save the index to ``out``.

    An approximate index reports recall@``recall_k`` against exact search in
    ``index.stats["recall"]``: on ``queries`` (held-out features: an array, FeatureSet or
    store; up to 1,000 rows, seeded) or, without them, on 1,000 indexed rows. A store's index
    is trained on ``train_size`` rows drawn with ``seed``, and reads its rows' ids and labels
    from the store's files unless ``copy_ids`` (see :meth:`FeatureIndex.from_store`).
    ``index.stats`` also records the build time, the index size and the process's peak
    memory.
    """
    started = time.perf_counter()
    data = features if isinstance(features, (FeatureSet, ShardStore)) else open_features(features)
    if len(data) == 0:
        raise DatasetError("there are no feature rows to index")
    knobs = {"nprobe": nprobe, "ef_search": ef_search, "device": device}
    if isinstance(data, ShardStore):
        index = FeatureIndex.from_store(
            data, factory, metric, train_size=train_size, seed=seed, copy_ids=copy_ids, **knobs
        )
    else:
        index = FeatureIndex.from_features(data, factory, metric, **knobs)
    index.stats["build_seconds"] = round(time.perf_counter() - started, 4)
    if not index.is_exact:
        index.stats["recall"] = measure_recall(index, data, queries, recall_k, seed)
    if out is not None:
        index.save(out)
        index.stats["index_bytes"] = Path(out).stat().st_size
    index.stats["peak_rss_bytes"] = peak_rss_bytes()
    return index


def measure_recall(
    index: FeatureIndex, data: FeatureSet | ShardStore, queries: Any, k: int, seed: int
) -> dict[str, Any]:
    """Recall@``k`` of ``index`` against exact search over ``data``, and the speed of both,
    on up to :data:`~featkit.index.recall.RECALL_QUERIES` rows of ``queries`` (or of ``data``
    without them) drawn with ``seed``."""
    held_out = queries is not None
    Q = query_rows(data if queries is None else queries, seed)
    k = min(k, len(data))
    start = time.perf_counter()
    if isinstance(data, ShardStore):
        _, truth = index.exact_search_store(Q, data, k)
    else:
        _, truth = index.exact_search(Q, data.X, k)
    exact_seconds = time.perf_counter() - start
    start = time.perf_counter()
    _, found = index.search(Q, k)
    search_seconds = time.perf_counter() - start
    return {
        "k": k,
        "recall_at_k": round(recall_at_k(found, truth), 4),
        "queries": len(Q),
        "held_out": held_out,
        "nprobe": index.nprobe,
        "ef_search": index.ef_search,
        "queries_per_second": round(len(Q) / max(search_seconds, 1e-9), 1),
        "exact_queries_per_second": round(len(Q) / max(exact_seconds, 1e-9), 1),
        "seconds": round(exact_seconds + search_seconds, 4),
    }

"""Recall of approximate search against exact search, and the rows it is measured on.

An approximate index (IVF, HNSW, PQ) may miss some of a query's true nearest rows;
:func:`recall_at_k` is the share it finds of those that exact, brute-force search finds
(:func:`exact_knn`, or :func:`exact_knn_store` over a store larger than memory). The queries,
and the training sample of an index built from a store, are seeded draws of distinct rows
(:func:`sample_rows`).
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from featkit._faiss import import_faiss
from featkit.exceptions import InvalidParameterError
from featkit.features import FeatureSet
from featkit.index.factory import as_index_vectors, to_cpu
from featkit.store import ShardStore, open_features

__all__ = [
    "RECALL_QUERIES",
    "exact_knn",
    "exact_knn_store",
    "query_rows",
    "recall_at_k",
    "sample_rows",
    "stored_vectors",
]

#: Rows used as queries when :func:`~featkit.index.build_index` measures the recall of an
#: approximate index.
RECALL_QUERIES = 1000


def recall_at_k(found: np.ndarray, truth: np.ndarray) -> float:
    """Mean share of the true k nearest rows (``truth``, (n, k)) that ``found`` (n, k) has."""
    found, truth = np.asarray(found), np.asarray(truth)
    if found.shape != truth.shape or found.ndim != 2:
        raise InvalidParameterError(f"shapes differ: found {found.shape}, truth {truth.shape}")
    if found.size == 0:
        return float("nan")
    hits = sum(len(np.intersect1d(f[f >= 0], t)) for f, t in zip(found, truth, strict=True))
    return hits / truth.size


def exact_knn(
    X: Any, database: Any, k: int, metric: str, dim: int | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Scores and row numbers (n, k) of the exact k nearest rows of ``database`` to each row
    of ``X`` with ``metric``, by brute force: the reference that recall is measured against."""
    faiss = import_faiss()
    xq = as_index_vectors(X, metric, dim)
    xb = as_index_vectors(database, metric, dim)
    kind = faiss.METRIC_INNER_PRODUCT if metric == "cosine" else faiss.METRIC_L2
    scores, rows = faiss.knn(xq, xb, int(k), metric=kind)
    if metric == "l2":
        scores = np.sqrt(np.maximum(scores, 0.0))
    return scores, rows


def exact_knn_store(
    X: Any, store: ShardStore, k: int, metric: str, dim: int | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """:func:`exact_knn` over the rows of a ShardStore (global row numbers), one shard in
    memory at a time."""
    best_scores = best_rows = None
    offset = 0
    for shard, _ in store.batches(progress=None, desc="exact search"):
        if len(shard) == 0:  # a shard of images that all failed
            continue
        scores, rows = exact_knn(X, shard, min(k, len(shard)), metric, dim)
        rows = np.where(rows >= 0, rows + offset, -1)
        offset += len(shard)
        if best_scores is None:
            best_scores, best_rows = scores, rows
            continue
        scores = np.concatenate([best_scores, scores], axis=1)
        rows = np.concatenate([best_rows, rows], axis=1)
        # Cosine scores are similarities (higher first); l2 scores are distances.
        order = np.argsort(-scores if metric == "cosine" else scores, axis=1, kind="stable")[:, :k]
        best_scores = np.take_along_axis(scores, order, axis=1)
        best_rows = np.take_along_axis(rows, order, axis=1)
    return best_scores, best_rows


def stored_vectors(index: Any, factory: str) -> np.ndarray:
    """The vectors a Flat, IVF-Flat or HNSW-Flat ``index`` keeps, in index order: the database
    of the exact reference when none is given; other kinds are an error that asks for it."""
    faiss = import_faiss()
    base = faiss.downcast_index(to_cpu(index))
    if isinstance(base, faiss.IndexIVFFlat):
        base.make_direct_map()
    elif not isinstance(base, (faiss.IndexFlat, faiss.IndexHNSWFlat)):
        raise InvalidParameterError(
            f"a {factory!r} index does not keep the exact vectors: pass database= "
            "(the indexed features, in index order) to measure its recall"
        )
    return base.reconstruct_n(0, base.ntotal)


def sample_rows(n: int, size: int, seed: int) -> np.ndarray:
    """``min(size, n)`` distinct positions in ``0..n-1`` drawn with ``seed``, in order."""
    return np.sort(np.random.default_rng(seed).choice(n, min(size, n), replace=False))


def query_rows(queries: Any, seed: int) -> np.ndarray:
    """Up to RECALL_QUERIES rows of held-out query features, drawn with ``seed``."""
    if isinstance(queries, (str, os.PathLike)):
        queries = open_features(queries)
    n = len(queries)
    picked = sample_rows(n, RECALL_QUERIES, seed)
    if isinstance(queries, ShardStore):
        return queries.take(picked)
    rows = queries.X if isinstance(queries, FeatureSet) else np.asarray(queries)
    return np.asarray(rows[picked])

"""Recall of approximate search against exact search, and the rows it is measured on.

An approximate index (IVF, HNSW, PQ) may miss some of a query's true nearest rows;
:func:`recall_at_k` is the share it finds. The queries, and the training sample of an index
built from a store, are seeded draws of distinct rows (:func:`sample_rows`).
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from featkit.exceptions import InvalidParameterError
from featkit.features import FeatureSet
from featkit.store import ShardStore, open_features

__all__ = ["RECALL_QUERIES", "query_rows", "recall_at_k", "sample_rows"]

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

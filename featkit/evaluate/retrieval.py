"""Retrieval examples for the report: a few seeded test queries per class and their nearest
training images under one extractor's features, by cosine similarity."""

from __future__ import annotations

from typing import Any

import numpy as np

from featkit.evaluate.protocols import Split
from featkit.features import FeatureSet

__all__ = ["RETRIEVAL_K", "RETRIEVAL_PER_CLASS", "pick_queries", "retrieval_examples"]

#: Queries per class and neighbours per query: a screenful per extractor.
RETRIEVAL_PER_CLASS = 2
RETRIEVAL_K = 5


def pick_queries(
    labels: np.ndarray, *, seed: int = 0, per_class: int = RETRIEVAL_PER_CLASS
) -> list[int]:
    """Positions of ``per_class`` rows of each label (all of a smaller class), drawn with
    ``seed``: class by class in label order, ascending within a class."""
    labels = np.asarray(labels)
    rng = np.random.default_rng(seed)
    picked: list[int] = []
    for label in np.unique(labels):
        rows = np.flatnonzero(labels == label)
        picked += sorted(rng.choice(rows, min(per_class, len(rows)), replace=False).tolist())
    return picked


def retrieval_examples(
    features: FeatureSet,
    split: Split,
    *,
    seed: int = 0,
    per_class: int = RETRIEVAL_PER_CLASS,
    k: int = RETRIEVAL_K,
) -> dict[str, Any]:
    """``per_class`` seeded test rows of each class of ``split`` as queries, each with its
    ``k`` most similar training rows (cosine similarity of the features).

    Returns ``{"split", "k", "metric", "queries": [{"id", "label", "neighbours": [{"id",
    "label", "similarity"}]}]}``. The queries depend only on the seed and the split's test
    labels, so extractors scored on the same images get the same queries: their neighbours
    can be compared side by side.
    """
    train, test = features.subset(split.train), features.subset(split.test)
    picked = pick_queries(test.y, seed=seed, per_class=per_class)
    if not picked or len(train) == 0:
        return {"split": split.name, "k": k, "metric": "cosine", "queries": []}
    queries = np.asarray(test.X[picked], dtype=np.float32)
    # Norms of the training rows one at a time: no normalised copy of a large matrix.
    train_norms = np.sqrt(np.einsum("ij,ij->i", train.X, train.X, dtype=np.float64))
    query_norms = np.linalg.norm(queries.astype(np.float64), axis=1)
    sims = (queries @ np.asarray(train.X).T) / np.maximum(np.outer(query_norms, train_norms), 1e-12)
    top = np.argsort(-sims, axis=1, kind="stable")[:, : min(k, len(train))]
    return {
        "split": split.name,
        "k": k,
        "metric": "cosine",
        "queries": [
            {
                "id": str(test.ids[q]),
                "label": int(test.y[q]),
                "neighbours": [
                    {
                        "id": str(train.ids[j]),
                        "label": int(train.y[j]),
                        "similarity": round(float(sims[i, j]), 4),
                    }
                    for j in top[i]
                ],
            }
            for i, q in enumerate(picked)
        ],
    }

"""Retrieve the indexed images nearest to query images: what ``featkit index search`` runs."""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import numpy as np

from featkit.index.feature_index import FeatureIndex
from featkit.registry import extractor_from_config

__all__ = ["search_images"]


def search_images(
    index: str | os.PathLike | FeatureIndex,
    images: Sequence[Any],
    k: int = 10,
    *,
    extractor: Any | None = None,
    device: str = "auto",
    nprobe: int | None = None,
    ef_search: int | None = None,
) -> list[dict[str, Any]]:
    """Retrieve the k nearest indexed images of each query image.

    ``index``: a saved index path or a FeatureIndex. ``images``: paths (or arrays) of query
    images; they are embedded by the extractor saved with the index (re-created from its
    config), or by ``extractor`` when given (needed for extractors that learn a codebook,
    whose fitted state is not saved with features). ``nprobe`` / ``ef_search`` override the
    saved search knobs of an IVF / HNSW index. Returns one row per result:
    ``{"query", "rank", "id", "path", "label", "score"}`` (rank from 1; score: cosine
    similarity or Euclidean distance).
    """
    idx = index if isinstance(index, FeatureIndex) else FeatureIndex.load(index, device=device)
    if nprobe is not None:
        idx.nprobe = nprobe
    if ef_search is not None:
        idx.ef_search = ef_search
    if isinstance(images, (str, bytes, os.PathLike)):
        images = [images]
    if extractor is None:
        extractor = extractor_from_config(idx.extractor)
    X = extractor.transform(list(images))
    scores, rows = idx.search(X, k)
    results: list[dict[str, Any]] = []
    # All ids at once: an index of a store reads each shard's ids file once.
    ids = np.full(rows.shape, None, dtype=object)
    ids[rows >= 0] = idx.id_of(rows[rows >= 0])
    for q, image in enumerate(images):
        query = os.fspath(image) if isinstance(image, (str, os.PathLike)) else f"<image {q}>"
        labels = idx.label_names(rows[q])
        for rank, (row, score) in enumerate(zip(rows[q], scores[q], strict=True), start=1):
            if row < 0:
                continue
            image_id = str(ids[q, rank - 1])
            results.append(
                {
                    "query": query,
                    "rank": rank,
                    "id": image_id,
                    "path": idx.path_of_id(image_id),
                    "label": labels[rank - 1],
                    "score": float(score),
                }
            )
    return results

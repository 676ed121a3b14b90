"""A cache of classifier scores, so that a re-run of ``compare`` with a cache is instant.

A score row is keyed by what determines it: the training and test features and labels
(content hashes), the classifier with all its parameters, and the versions of featkit and
its dependencies. Every featkit classifier is deterministic for a given seed, so equal
keys mean equal scores; the fit and predict times stored are those of the run that
computed them.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from featkit._version import dependency_versions
from featkit.cache import LAYOUT, atomic_write, content_hash, content_hash_of_rows
from featkit.features import FeatureSet

__all__ = ["ScoreCache"]


class ScoreCache:
    """Score rows under ``root/featkit-cache-v1/scores/``, one JSON file per key."""

    def __init__(self, root: str | os.PathLike) -> None:
        self.directory = Path(root).expanduser() / LAYOUT / "scores"
        self.directory.mkdir(parents=True, exist_ok=True)

    @staticmethod
    def data_key(train: FeatureSet, features: FeatureSet, test_rows: np.ndarray) -> str:
        """The digest of a split's training features and labels and of its test rows of
        ``features`` (hashed once per split, however many classifiers are scored on it)."""
        parts = [
            content_hash(train.X),
            content_hash(train.y),
            content_hash_of_rows(features.X, test_rows),  # equal to hashing the subset
            content_hash(features.y[test_rows]),
        ]
        return hashlib.blake2b(
            json.dumps([parts, list(train.class_names)]).encode(), digest_size=16
        ).hexdigest()

    def key(self, data_key: str, estimator: Any) -> str:
        """The digest of everything a score row depends on: the split's data (its
        :meth:`data_key`), the classifier with all its parameters, and the versions."""
        params = estimator.get_params(deep=True) if hasattr(estimator, "get_params") else {}
        payload = {
            "data": data_key,
            "estimator": type(estimator).__qualname__,
            "params": {k: repr(v) for k, v in sorted(params.items())},
            "versions": dependency_versions(),
        }
        text = json.dumps(payload, sort_keys=True)
        return hashlib.blake2b(text.encode(), digest_size=16).hexdigest()

    def get(self, key: str) -> dict[str, Any] | None:
        """The stored row, or None (also for a file that cannot be read)."""
        try:
            return json.loads((self.directory / f"{key}.json").read_text())
        except (OSError, ValueError):
            return None

    def put(self, key: str, row: dict[str, Any]) -> None:
        """Store a row (atomically)."""
        atomic_write(self.directory / f"{key}.json", json.dumps(row).encode())

"""A k-nearest-neighbour classifier on a FAISS index, with scikit-learn's API.

``FaissKNNClassifier(n_neighbors=20, metric="cosine", weights="similarity")`` is DINO's
k-NN evaluation (votes weighted by ``exp(similarity / temperature)``); with
``weights="uniform"`` or ``"distance"`` it predicts what
``sklearn.neighbors.KNeighborsClassifier(algorithm="brute")`` predicts with the same
metric, except where distances tie at the k-th neighbour (FAISS and scikit-learn may then
keep different neighbours). Ties between classes go to the smallest class label, as in
scikit-learn.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.utils.validation import check_is_fitted

from featkit.exceptions import InvalidParameterError
from featkit.extractors.params import check_float, check_int

__all__ = ["FaissKNNClassifier"]

METRICS = ("cosine", "l2")
WEIGHTS = ("uniform", "distance", "similarity")


class FaissKNNClassifier(ClassifierMixin, BaseEstimator):
    """k-NN classification with exact (``"Flat"``) or approximate FAISS search.

    Parameters
    ----------
    n_neighbors : int, default=5
        Neighbours that vote.
    metric : {"cosine", "l2"}, default="cosine"
        Cosine: inner product of L2-normalised rows (distance 1 - similarity); l2: Euclidean.
    weights : {"uniform", "distance", "similarity"}, default="uniform"
        uniform: one vote each; distance: 1 / distance (scikit-learn's rule: exact matches
        take all the weight); similarity: exp(similarity / temperature) (DINO), cosine only.
    temperature : float, default=0.07
        Temperature of the similarity weights.
    index : str, default="Flat"
        A FAISS index factory string ("Flat", "IVF256,Flat", "HNSW32", ...).
    batch_size : int, default=4096
        Queries searched at a time (bounds the memory of the distance matrix).
    """

    def __init__(
        self,
        n_neighbors: int = 5,
        metric: str = "cosine",
        weights: str = "uniform",
        temperature: float = 0.07,
        index: str = "Flat",
        batch_size: int = 4096,
    ) -> None:
        self.n_neighbors = n_neighbors
        self.metric = metric
        self.weights = weights
        self.temperature = temperature
        self.index = index
        self.batch_size = batch_size

    def _validate(self) -> None:
        name = type(self).__name__
        check_int(name, "n_neighbors", self.n_neighbors, low=1)
        if self.metric not in METRICS:
            raise InvalidParameterError(f"metric must be one of {METRICS}, got {self.metric!r}")
        if self.weights not in WEIGHTS:
            raise InvalidParameterError(f"weights must be one of {WEIGHTS}, got {self.weights!r}")
        if self.weights == "similarity" and self.metric != "cosine":
            raise InvalidParameterError("weights='similarity' needs metric='cosine'")
        check_float(name, "temperature", self.temperature, low=0.0, strict=True)
        check_int(name, "batch_size", self.batch_size, low=1)

    def _prepare(self, X: Any) -> np.ndarray:
        X = np.ascontiguousarray(np.asarray(X, dtype=np.float32))
        if X.ndim != 2:
            raise InvalidParameterError(f"expected a 2-D array of features, got shape {X.shape}")
        if not np.isfinite(X).all():
            raise InvalidParameterError("features contain NaN or inf")
        if self.metric == "cosine":
            norms = np.linalg.norm(X, axis=1, keepdims=True)
            X = X / np.maximum(norms, 1e-12)
        return X

    def fit(self, X: Any, y: Any) -> FaissKNNClassifier:
        """Index the training features ``X`` with their labels ``y``."""
        import faiss

        self._validate()
        X = self._prepare(X)
        y = np.asarray(y)
        if len(y) != len(X):
            raise InvalidParameterError(f"X has {len(X)} rows but y has {len(y)} labels")
        if len(X) < self.n_neighbors:
            raise InvalidParameterError(
                f"n_neighbors={self.n_neighbors} but only {len(X)} training samples"
            )
        self.classes_, self._y = np.unique(y, return_inverse=True)
        metric = faiss.METRIC_INNER_PRODUCT if self.metric == "cosine" else faiss.METRIC_L2
        try:
            index = faiss.index_factory(X.shape[1], self.index, metric)
        except RuntimeError as exc:
            raise InvalidParameterError(f"bad FAISS index string {self.index!r}: {exc}") from None
        if not index.is_trained:
            index.train(X)
        index.add(X)
        self.index_ = index
        self.n_features_in_ = X.shape[1]
        return self

    def kneighbors(
        self, X: Any, n_neighbors: int | None = None, return_distance: bool = True
    ) -> tuple[np.ndarray, np.ndarray] | np.ndarray:
        """Distances (cosine: 1 - similarity; l2: Euclidean) and indices of the neighbours."""
        check_is_fitted(self, "index_")
        k = self.n_neighbors if n_neighbors is None else n_neighbors
        X = self._prepare(X)
        if X.shape[1] != self.n_features_in_:
            raise InvalidParameterError(
                f"X has {X.shape[1]} features, the index was built with {self.n_features_in_}"
            )
        scores, indices = [], []
        for start in range(0, len(X), self.batch_size):
            s, i = self.index_.search(X[start : start + self.batch_size], k)
            scores.append(s)
            indices.append(i)
        score = np.concatenate(scores) if scores else np.zeros((0, k), np.float32)
        index = np.concatenate(indices) if indices else np.zeros((0, k), np.int64)
        if not return_distance:
            return index
        if self.metric == "cosine":
            distance = 1.0 - score
        else:  # FAISS gives squared distances
            distance = np.sqrt(np.maximum(score, 0.0))
        return distance, index

    def predict_proba(self, X: Any) -> np.ndarray:
        """Weighted vote shares of each class (columns in ``classes_`` order)."""
        distance, index = self.kneighbors(X)
        if self.weights == "uniform":
            w = np.ones_like(distance, dtype=np.float64)
        elif self.weights == "distance":
            with np.errstate(divide="ignore"):
                w = 1.0 / distance.astype(np.float64)
            exact = np.isinf(w)
            rows = exact.any(axis=1)
            w[rows] = exact[rows]  # scikit-learn: exact matches take all the weight
        else:
            w = np.exp((1.0 - distance.astype(np.float64)) / self.temperature)
        votes = np.zeros((len(index), len(self.classes_)))
        labels = self._y[index]
        np.add.at(votes, (np.arange(len(index))[:, None], labels), w)
        return votes / votes.sum(axis=1, keepdims=True)

    def predict(self, X: Any) -> np.ndarray:
        """The class with the most (weighted) votes; ties go to the smallest label."""
        return self.classes_[np.argmax(self.predict_proba(X), axis=1)]

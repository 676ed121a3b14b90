"""A k-nearest-neighbour classifier on a FAISS index, with scikit-learn's API.

``FaissKNNClassifier(n_neighbors=20, metric="cosine", weights="similarity")`` is DINO's
k-NN evaluation (votes weighted by ``exp(similarity / temperature)``); with
``weights="uniform"`` or ``"distance"`` it predicts what
``sklearn.neighbors.KNeighborsClassifier(algorithm="brute")`` predicts with the same
metric, except where distances tie at the k-th neighbour (FAISS and scikit-learn may then
keep different neighbours). Ties between classes go to the smallest class label, as in
scikit-learn. The index is a :class:`featkit.index.FeatureIndex`: on a GPU when faiss is a
GPU build and sees one (``device="auto"``).
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_is_fitted, validate_data

from featkit.exceptions import InvalidParameterError
from featkit.index import METRICS, FeatureIndex, resolve_faiss_device
from featkit.store import ShardStore
from featkit.validation import check_float, check_int

__all__ = ["FaissKNNClassifier"]

WEIGHTS = ("uniform", "distance", "similarity")


class FaissKNNClassifier(ClassifierMixin, BaseEstimator):
    """k-NN classification with exact (``"Flat"``) or approximate FAISS search.

    Parameters
    ----------
    n_neighbors : int, default=5
        Neighbours that vote. With fewer training samples, all of them vote (a warning
        says so; scikit-learn raises instead); ``kneighbors(X, k)`` with a k larger than the
        training set raises, as scikit-learn's.
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
    device : {"auto", "cpu", "cuda", "cuda:N"}, default="auto"
        Where the index lives: auto takes a GPU when faiss is a GPU build and sees one;
        "cuda" without a GPU build of faiss is an error.
    """

    def __init__(
        self,
        n_neighbors: int = 5,
        metric: str = "cosine",
        weights: str = "uniform",
        temperature: float = 0.07,
        index: str = "Flat",
        batch_size: int = 4096,
        device: str = "auto",
    ) -> None:
        self.n_neighbors = n_neighbors
        self.metric = metric
        self.weights = weights
        self.temperature = temperature
        self.index = index
        self.batch_size = batch_size
        self.device = device

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
        resolve_faiss_device(self.device)

    def fit(self, X: Any, y: Any) -> FaissKNNClassifier:
        """Index the training features ``X`` with their labels ``y``."""
        self._validate()
        X, y = validate_data(self, X, y, dtype=np.float32, order="C")
        check_classification_targets(y)
        index = FeatureIndex(
            X.shape[1],
            self.index,
            self.metric,
            device=self.device,
            batch_size=self.batch_size,
        )
        return self._set_index(index.add(X), y)

    def fit_store(
        self, store: ShardStore, *, train_size: int = 100_000, seed: int = 0
    ) -> FaissKNNClassifier:
        """Index the labelled rows of a :class:`~featkit.store.ShardStore` larger than
        memory, shard by shard (an IVF / PQ index trains on ``train_size`` rows drawn with
        ``seed``)."""
        self._validate()
        index = FeatureIndex.from_store(
            store,
            self.index,
            self.metric,
            train_size=train_size,
            seed=seed,
            device=self.device,
            batch_size=self.batch_size,
        )
        return self.fit_index(index)

    def fit_index(self, index: FeatureIndex) -> FaissKNNClassifier:
        """Vote with a built :class:`~featkit.index.FeatureIndex` and the labels of its
        rows; its metric must be ``metric`` (its own factory replaces ``index``)."""
        self._validate()
        if index.metric != self.metric:
            raise InvalidParameterError(
                f"the index uses metric={index.metric!r} but this classifier has "
                f"metric={self.metric!r}; make them the same"
            )
        labels = index.labels
        if len(labels) == 0 or (labels < 0).any():
            raise InvalidParameterError(
                f"k-NN needs labelled rows; the index has {len(labels)} rows, "
                f"{int((labels < 0).sum())} of them unlabelled"
            )
        self.n_features_in_ = index.dim
        return self._set_index(index, labels)

    def _set_index(self, index: FeatureIndex, y: np.ndarray) -> FaissKNNClassifier:
        self.classes_, self._y = np.unique(y, return_inverse=True)
        self.index_ = index
        n = index.ntotal
        self.n_neighbors_ = min(self.n_neighbors, n)
        if self.n_neighbors_ < self.n_neighbors:
            # Few-shot training sets can be smaller than k (DINO's 20 > 1 shot x 10 classes);
            # scikit-learn raises at predict time, which would end a whole evaluation.
            warnings.warn(
                f"{type(self).__name__}: n_neighbors={self.n_neighbors} but only {n} "
                f"training samples; all {n} vote",
                UserWarning,
                stacklevel=3,
            )
        return self

    def predict_store(self, store: ShardStore) -> np.ndarray:
        """Predicted labels of every row of a ShardStore, one shard in memory at a time."""
        check_is_fitted(self, "index_")
        batches = store.batches(progress=None, desc="k-NN")
        predicted = [self.predict(X) if len(X) else self.classes_[:0] for X, _ in batches]
        return np.concatenate(predicted or [self.classes_[:0]])

    def kneighbors(
        self, X: Any, n_neighbors: int | None = None, return_distance: bool = True
    ) -> tuple[np.ndarray, np.ndarray] | np.ndarray:
        """Distances (cosine: 1 - similarity; l2: Euclidean) and indices of the neighbours.

        An approximate index may find fewer than k neighbours: those slots hold index -1 and
        distance inf, and get no vote.
        """
        check_is_fitted(self, "index_")
        k = self.n_neighbors if n_neighbors is None else n_neighbors
        check_int(type(self).__name__, "n_neighbors", k, low=1)
        X = validate_data(self, X, dtype=np.float32, order="C", reset=False)
        n_fit = self.index_.ntotal
        if k > n_fit:  # scikit-learn's condition and wording
            raise ValueError(
                f"Expected n_neighbors <= n_samples_fit, but n_neighbors = {k}, "
                f"n_samples_fit = {n_fit}, n_samples = {len(X)}"
            )
        scores, index = self.index_.search(X, k)
        # Cosine distance in [0, 2] as scikit-learn clips it: a float32 similarity of a row
        # with itself can exceed 1, and a negative distance would flip a 1/distance vote.
        distance = np.clip(1.0 - scores, 0.0, 2.0) if self.metric == "cosine" else scores
        distance[index < 0] = np.inf
        if not return_distance:
            return index
        return distance, index

    def predict_proba(self, X: Any) -> np.ndarray:
        """Weighted vote shares of each class (columns in ``classes_`` order)."""
        check_is_fitted(self, "index_")
        return self.vote(*self.kneighbors(X, n_neighbors=self.n_neighbors_))

    def vote(self, distance: np.ndarray, index: np.ndarray) -> np.ndarray:
        """Weighted vote shares of each class (columns in ``classes_`` order) of the
        neighbours that :meth:`kneighbors` found: what :meth:`predict_proba` returns, for a
        caller that also wants the neighbours themselves without searching twice."""
        check_is_fitted(self, "index_")
        distance = np.asarray(distance, dtype=np.float64)
        index = np.asarray(index)
        if self.weights == "uniform":
            w = np.ones_like(distance)
        elif self.weights == "distance":
            with np.errstate(divide="ignore"):
                w = 1.0 / distance
            exact = np.isinf(w) & (index >= 0)
            rows = exact.any(axis=1)
            w[rows] = exact[rows]  # scikit-learn: exact matches take all the weight
        else:
            w = np.exp((1.0 - distance) / self.temperature)
        found = index >= 0
        w[~found] = 0.0
        votes = np.zeros((len(index), len(self.classes_)))
        labels = self._y[np.where(found, index, 0)]
        np.add.at(votes, (np.arange(len(index))[:, None], labels), w)
        total = votes.sum(axis=1, keepdims=True)
        # A query an approximate index found no neighbour for: equal shares.
        return np.divide(votes, total, out=np.full_like(votes, 1 / votes.shape[1]), where=total > 0)

    def predict(self, X: Any) -> np.ndarray:
        """The class with the most (weighted) votes; ties go to the smallest label."""
        proba = self.predict_proba(X)  # first: it raises NotFittedError before fit
        return self.classes_[np.argmax(proba, axis=1)]

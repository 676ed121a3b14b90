"""Scores of feature sets larger than memory: a k-NN vote against a FAISS index of the
training rows (built shard by shard from a ShardStore), or a linear probe trained by SGD over
the training shards; test rows are streamed shard by shard."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import numpy as np

from featkit.classify.knn import FaissKNNClassifier
from featkit.classify.probe import LinearProbe
from featkit.evaluate.metrics import classification_scores
from featkit.exceptions import InvalidParameterError
from featkit.features import FeatureSet
from featkit.index import FeatureIndex
from featkit.store import MANIFEST, ShardStore, open_features

__all__ = ["knn_scores", "probe_scores"]


def knn_scores(
    train: FeatureIndex | ShardStore | str | os.PathLike,
    test: ShardStore | FeatureSet | str | os.PathLike,
    *,
    n_neighbors: int = 20,
    weights: str | None = None,
    temperature: float = 0.07,
    factory: str = "Flat",
    metric: str = "cosine",
    train_size: int = 100_000,
    seed: int = 0,
    device: str = "auto",
) -> dict[str, Any]:
    """Scores (accuracy, balanced accuracy, macro-F1, per class, confusion matrix) of a k-NN
    vote of the labelled ``test`` rows among the ``train`` rows.

    ``train``: a built FeatureIndex (or its saved path), or a ShardStore (or its folder),
    indexed here with ``factory`` and ``metric``. ``test``: a ShardStore or FeatureSet (or
    their folders), read one shard at a time. ``weights`` defaults to DINO's
    ``"similarity"`` for cosine, ``"uniform"`` for l2 (see :class:`FaissKNNClassifier`).
    Test classes are matched to training classes by name.
    """
    started = time.perf_counter()
    index = _as_index(train, factory, metric, train_size, seed, device)
    if weights is None:
        weights = "similarity" if index.metric == "cosine" else "uniform"
    knn = FaissKNNClassifier(
        n_neighbors=n_neighbors, metric=index.metric, weights=weights, temperature=temperature
    )
    knn.fit_index(index)
    return _score(
        knn,
        _as_test(test),
        index.class_names,
        started,
        n_train=index.ntotal,
        n_neighbors=knn.n_neighbors_,
        weights=weights,
        factory=index.factory,
        metric=index.metric,
    )


def probe_scores(
    train: ShardStore | str | os.PathLike,
    test: ShardStore | FeatureSet | str | os.PathLike,
    *,
    C: float = 1.0,
    epochs: int = 30,
    batch_size: int = 1024,
    learning_rate: float = 1e-2,
    device: str = "auto",
    random_state: int = 0,
) -> dict[str, Any]:
    """Scores (as :func:`knn_scores`) of a linear probe (l2 logistic regression,
    :class:`~featkit.classify.LinearProbe` with the ``"sgd"`` solver) trained over the
    shards of the ``train`` store and applied to the labelled ``test`` rows shard by shard.
    Test classes are matched to training classes by name."""
    started = time.perf_counter()
    store = train if isinstance(train, ShardStore) else ShardStore(train)
    probe = LinearProbe(
        C=C,
        solver="sgd",
        epochs=epochs,
        batch_size=batch_size,
        learning_rate=learning_rate,
        device=device,
        random_state=random_state,
    ).fit_store(store)
    return _score(
        probe,
        _as_test(test),
        store.class_names,
        started,
        n_train=len(store),
        C=C,
        epochs=epochs,
        objective=probe.loss_,
        device=probe.device_,
    )


def _score(
    classifier: Any,
    test: ShardStore | FeatureSet,
    train_names: list[str] | None,
    started: float,
    **details: Any,
) -> dict[str, Any]:
    """classification_scores of ``classifier`` on ``test``, streamed, labels by name
    (training labels named by their numbers when the training set has no names), with
    ``details`` of the classifier and the seconds since ``started``."""
    if not train_names:
        train_names = [str(c) for c in range(int(classifier.classes_.max()) + 1)]
    remap = _class_map(test.class_names or train_names, train_names)
    predicted, truth = [], []
    for X, y in _test_batches(test):
        if len(X) == 0:  # a shard of images that all failed
            continue
        if (y < 0).any():
            raise InvalidParameterError("scores need labelled test rows; some have -1")
        predicted.append(classifier.predict(X))
        truth.append(remap[y])
    y_pred, y_true = np.concatenate(predicted), np.concatenate(truth)
    scores = classification_scores(y_true, y_pred, train_names)
    scores["n_test"] = len(y_true)
    return {**scores, **details, "seconds": round(time.perf_counter() - started, 4)}


def _as_index(
    train: Any, factory: str, metric: str, train_size: int, seed: int, device: str
) -> FeatureIndex:
    if isinstance(train, FeatureIndex):
        return train
    if isinstance(train, (str, os.PathLike)) and not (Path(train) / MANIFEST).is_file():
        return FeatureIndex.load(train, device=device)
    store = train if isinstance(train, ShardStore) else ShardStore(train)
    return FeatureIndex.from_store(
        store, factory, metric, train_size=train_size, seed=seed, device=device
    )


def _as_test(test: Any) -> ShardStore | FeatureSet:
    return test if isinstance(test, (ShardStore, FeatureSet)) else open_features(test)


def _test_batches(test: ShardStore | FeatureSet, rows: int = 65_536) -> Any:
    if isinstance(test, ShardStore):
        yield from test.batches(progress=None, desc="scoring")
        return
    for start in range(0, len(test), rows):  # a memory-mapped FeatureSet, in slices
        yield np.asarray(test.X[start : start + rows]), np.asarray(test.y[start : start + rows])


def _class_map(test_names: list[str], train_names: list[str]) -> np.ndarray:
    """Test label -> training label, by class name."""
    position = {name: i for i, name in enumerate(train_names)}
    missing = [name for name in test_names if name not in position]
    if missing:
        raise InvalidParameterError(
            f"test classes {missing} are not among the training classes {train_names}"
        )
    return np.asarray([position[name] for name in test_names], dtype=np.int64)

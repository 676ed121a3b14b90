"""Scores of feature sets larger than memory: a k-NN vote against a FAISS index of the
training rows (built shard by shard from a ShardStore), or a linear probe trained by SGD over
the training shards; test rows are streamed shard by shard."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator, Sequence
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
    return_predictions: bool = False,
    neighbours_of: Sequence[int] | None = None,
) -> dict[str, Any]:
    """Scores (accuracy, balanced accuracy, macro-F1, per class, confusion matrix) of a k-NN
    vote of the labelled ``test`` rows among the ``train`` rows.

    ``train``: a built FeatureIndex (or its saved path), or a ShardStore (or its folder),
    indexed here with ``factory`` and ``metric``. ``test``: a ShardStore or FeatureSet (or
    their folders), read one shard at a time. ``weights`` defaults to DINO's
    ``"similarity"`` for cosine, ``"uniform"`` for l2 (see :class:`FaissKNNClassifier`).
    Test classes are matched to training classes by name.

    ``return_predictions``: the scores also hold ``test_ids``, ``y_true`` and ``y_pred``
    (labels numbered as the training classes), in test row order: O(n) ids and ints, the
    features are still streamed. ``neighbours_of``: positions of test rows whose voting
    neighbours are returned, from the same search, as ``neighbours``: ``{position: {"rows",
    "scores"}}`` (indexed row numbers, best first, and their cosine similarities or l2
    distances, as :meth:`FeatureIndex.search` gives them).
    """
    started = time.perf_counter()
    index = _as_index(train, factory, metric, train_size, seed, device)
    if weights is None:
        weights = "similarity" if index.metric == "cosine" else "uniform"
    knn = FaissKNNClassifier(
        n_neighbors=n_neighbors, metric=index.metric, weights=weights, temperature=temperature
    )
    knn.fit_index(index)
    watched = np.unique(np.asarray([] if neighbours_of is None else neighbours_of, np.int64))
    neighbours: dict[int, dict[str, list[Any]]] = {}

    def predict(X: np.ndarray, offset: int) -> np.ndarray:
        distance, rows = knn.kneighbors(X, n_neighbors=knn.n_neighbors_)
        here = watched[(watched >= offset) & (watched < offset + len(X))]
        for position in here.tolist():
            found = rows[position - offset] >= 0
            d = distance[position - offset][found]
            neighbours[position] = {
                "rows": rows[position - offset][found].tolist(),
                "scores": (1.0 - d if index.metric == "cosine" else d).tolist(),
            }
        return knn.classes_[np.argmax(knn.vote(distance, rows), axis=1)]

    scores = _score(
        predict,
        _as_test(test),
        index.class_names or _numbered(knn.classes_),
        started,
        keep_predictions=return_predictions,
        n_train=index.ntotal,
        n_neighbors=knn.n_neighbors_,
        weights=weights,
        factory=index.factory,
        metric=index.metric,
    )
    if neighbours_of is not None:
        missing = sorted(set(watched.tolist()) - set(neighbours))
        if missing:
            raise InvalidParameterError(
                f"neighbours_of: no test rows at positions {missing[:5]} "
                f"(the test set has {scores['n_test']} rows)"
            )
        scores["neighbours"] = neighbours
    return scores


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
        lambda X, _: probe.predict(X),
        _as_test(test),
        store.class_names or _numbered(probe.classes_),
        started,
        n_train=len(store),
        C=C,
        epochs=epochs,
        objective=probe.loss_,
        device=probe.device_,
    )


def _score(
    predict: Callable[[np.ndarray, int], np.ndarray],
    test: ShardStore | FeatureSet,
    train_names: list[str],
    started: float,
    *,
    keep_predictions: bool = False,
    **details: Any,
) -> dict[str, Any]:
    """classification_scores of ``predict(X, position of X's first row)`` on ``test``,
    streamed, labels matched to ``train_names`` by name, with ``details`` of the classifier
    and the seconds since ``started``; with ``keep_predictions``, the test ids and the true
    and predicted labels too."""
    remap = _class_map(test.class_names or train_names, train_names)
    predicted, truth, ids = [], [], []
    offset = 0
    for X, y, batch_ids in _test_batches(test, with_ids=keep_predictions):
        if len(X) == 0:  # a shard of images that all failed
            continue
        if (y < 0).any():
            raise InvalidParameterError("scores need labelled test rows; some have -1")
        predicted.append(np.asarray(predict(X, offset)))
        truth.append(remap[y])
        ids += batch_ids
        offset += len(X)
    y_pred, y_true = np.concatenate(predicted), np.concatenate(truth)
    scores = classification_scores(y_true, y_pred, train_names)
    scores["n_test"] = len(y_true)
    if keep_predictions:
        scores.update(test_ids=ids, y_true=y_true.tolist(), y_pred=y_pred.tolist())
    return {**scores, **details, "seconds": round(time.perf_counter() - started, 4)}


def _numbered(classes: np.ndarray) -> list[str]:
    """Names of training labels that have none: their numbers."""
    return [str(c) for c in range(int(classes.max()) + 1)]


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


def _test_batches(
    test: ShardStore | FeatureSet, rows: int = 65_536, *, with_ids: bool = False
) -> Iterator[tuple[np.ndarray, np.ndarray, list[str]]]:
    """(rows, labels, ids) of ``test`` one shard (or slice) at a time; the ids are empty
    unless ``with_ids``."""
    if isinstance(test, ShardStore):
        for k, (X, y) in enumerate(test.batches(progress=None, desc="scoring")):
            yield X, y, test.shard_ids(k) if with_ids and len(X) else []
        return
    for start in range(0, len(test), rows):  # a memory-mapped FeatureSet, in slices
        stop = start + rows
        ids = [str(i) for i in test.ids[start:stop]] if with_ids else []
        yield np.asarray(test.X[start:stop]), np.asarray(test.y[start:stop]), ids


def _class_map(test_names: list[str], train_names: list[str]) -> np.ndarray:
    """Test label -> training label, by class name."""
    position = {name: i for i, name in enumerate(train_names)}
    missing = [name for name in test_names if name not in position]
    if missing:
        raise InvalidParameterError(
            f"test classes {missing} are not among the training classes {train_names}"
        )
    return np.asarray([position[name] for name in test_names], dtype=np.int64)

"""FaissKNNClassifier predicts what scikit-learn's brute-force k-NN predicts."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split
from sklearn.neighbors import KNeighborsClassifier

from featkit.classify.knn import FaissKNNClassifier
from featkit.exceptions import InvalidParameterError


@pytest.fixture(scope="module")
def digits():
    X, y = load_digits(return_X_y=True)
    rng = np.random.default_rng(0)
    X = X + rng.normal(0, 0.01, X.shape)  # break the integer ties of raw pixel values
    return train_test_split(X.astype(np.float32), y, test_size=0.3, random_state=0)


@pytest.mark.parametrize("metric", ["cosine", "l2"])
@pytest.mark.parametrize("weights", ["uniform", "distance"])
@pytest.mark.parametrize("k", [1, 5, 10])
def test_same_predictions_and_neighbours_as_sklearn(digits, metric, weights, k):
    Xtr, Xte, ytr, _ = digits
    ours = FaissKNNClassifier(k, metric=metric, weights=weights).fit(Xtr, ytr)
    ref = KNeighborsClassifier(
        k,
        metric="cosine" if metric == "cosine" else "euclidean",
        weights=weights,
        algorithm="brute",
    ).fit(Xtr, ytr)
    np.testing.assert_array_equal(ours.predict(Xte), ref.predict(Xte))
    np.testing.assert_allclose(ours.predict_proba(Xte), ref.predict_proba(Xte), atol=1e-5)
    d, i = ours.kneighbors(Xte)
    d_ref, i_ref = ref.kneighbors(Xte)
    np.testing.assert_array_equal(i, i_ref)
    np.testing.assert_allclose(d, d_ref, rtol=1e-4, atol=1e-4)


def test_dino_weighting_and_chunked_queries(digits):
    Xtr, Xte, ytr, yte = digits
    a = FaissKNNClassifier(20, weights="similarity", batch_size=7).fit(Xtr, ytr)
    b = FaissKNNClassifier(20, weights="similarity").fit(Xtr, ytr)
    np.testing.assert_allclose(a.predict_proba(Xte), b.predict_proba(Xte), atol=1e-6)
    assert a.score(Xte, yte) > 0.95


def test_string_labels_and_approximate_index(digits):
    Xtr, Xte, ytr, yte = digits
    names = np.array([f"digit-{v}" for v in range(10)])
    clf = FaissKNNClassifier(5, index="HNSW32").fit(Xtr, names[ytr])
    assert set(clf.predict(Xte)) <= set(names)
    assert clf.score(Xte, names[yte]) > 0.95


@pytest.mark.parametrize(
    ("params", "match"),
    [
        ({"n_neighbors": 0}, "n_neighbors must be >= 1"),
        ({"metric": "manhattan"}, "metric must be"),
        ({"weights": "similarity", "metric": "l2"}, "needs metric='cosine'"),
        ({"index": "NotAnIndex"}, "bad FAISS index string"),
    ],
)
def test_bad_parameters(digits, params, match):
    Xtr, _, ytr, _ = digits
    with pytest.raises(InvalidParameterError, match=match):
        FaissKNNClassifier(**params).fit(Xtr, ytr)

"""FaissKNNClassifier predicts what scikit-learn's brute-force k-NN predicts."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.datasets import load_digits
from sklearn.metrics import pairwise_distances
from sklearn.model_selection import train_test_split
from sklearn.neighbors import KNeighborsClassifier
from sklearn.utils.estimator_checks import parametrize_with_checks

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


# -- real features, probabilities, DINO weighting, approximate indexes, devices ---------------
@pytest.fixture(scope="module")
def pixel_features():
    """featkit's `pixels` features of scikit-learn's digits (16 x 16 grey, 256-d)."""
    import featkit

    fs = featkit.extract(featkit.create_extractor("pixels"), "digits", progress=False)
    test = np.arange(len(fs)) % 3 == 0
    return fs.X[~test], fs.X[test], fs.y[~test], fs.y[test]


@pytest.mark.parametrize("metric", ["cosine", "l2"])
@pytest.mark.parametrize("k", [1, 5, 10])
def test_real_features_same_predictions_as_sklearn(pixel_features, metric, k):
    Xtr, Xte, ytr, _ = pixel_features
    ours = FaissKNNClassifier(k, metric=metric).fit(Xtr, ytr)
    ref = KNeighborsClassifier(
        k, metric="cosine" if metric == "cosine" else "euclidean", algorithm="brute"
    ).fit(Xtr, ytr)
    np.testing.assert_array_equal(ours.predict(Xte), ref.predict(Xte))
    np.testing.assert_allclose(ours.predict_proba(Xte), ref.predict_proba(Xte), atol=1e-12)
    d, i = ours.kneighbors(Xte)
    d_ref, i_ref = ref.kneighbors(Xte)
    np.testing.assert_allclose(d, d_ref, rtol=1e-4, atol=1e-4)
    # Neighbours agree except where distances tie (documented): a neighbour in another
    # place sits at the same distance, one scikit-learn did not keep ties with its k-th.
    sk_metric = "cosine" if metric == "cosine" else "euclidean"
    for q in np.flatnonzero((i != i_ref).any(axis=1)):
        for p in np.flatnonzero(i[q] != i_ref[q]):
            if i[q, p] in i_ref[q]:
                p_ref = np.flatnonzero(i_ref[q] == i[q, p])[0]
                assert np.isclose(d_ref[q, p], d_ref[q, p_ref], rtol=1e-5, atol=1e-6)
            else:
                true = pairwise_distances(Xte[q : q + 1], Xtr[i[q, p] : i[q, p] + 1], sk_metric)
                assert np.isclose(true[0, 0], d_ref[q, -1], rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize(
    "params",
    [
        {"weights": "uniform"},
        {"weights": "distance", "metric": "l2"},
        {"weights": "similarity", "temperature": 0.02},
        {"weights": "similarity", "index": "IVF8,Flat"},
    ],
)
def test_predict_proba_rows_sum_to_one(pixel_features, params):
    Xtr, Xte, ytr, yte = pixel_features
    clf = FaissKNNClassifier(10, **params).fit(Xtr, ytr)
    proba = clf.predict_proba(Xte)
    assert proba.shape == (len(Xte), 10)
    assert (proba >= 0).all()
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=1e-12)
    np.testing.assert_array_equal(clf.predict(Xte), clf.classes_[proba.argmax(axis=1)])
    assert clf.score(Xte, yte) > 0.9


def test_dino_similarity_weighting_on_a_hand_made_case():
    # One class-0 point close to the query, two class-1 points further away.
    angles = np.radians([0.0, 37.0, -43.0])
    Xtr = np.stack([np.cos(angles), np.sin(angles)], axis=1)
    ytr = np.array([0, 1, 1])
    query = np.array([[np.cos(np.radians(3.0)), np.sin(np.radians(3.0))]])
    sims = np.cos(np.radians([3.0, 34.0, 46.0]))
    uniform = FaissKNNClassifier(3, weights="uniform").fit(Xtr, ytr)
    np.testing.assert_allclose(uniform.predict_proba(query), [[1 / 3, 2 / 3]])
    assert uniform.predict(query)[0] == 1  # two votes beat one
    for temperature in (0.07, 1.0, 100.0):
        dino = FaissKNNClassifier(3, weights="similarity", temperature=temperature)
        w = np.exp(sims / temperature)
        expected = np.array([[w[0], w[1] + w[2]]]) / w.sum()
        np.testing.assert_allclose(dino.fit(Xtr, ytr).predict_proba(query), expected, rtol=1e-5)
        # A sharp temperature lets the near neighbour win; a flat one is a uniform vote.
        assert dino.predict(query)[0] == (0 if temperature < 0.5 else 1)


def test_neighbours_an_approximate_index_misses_get_no_vote():
    rng = np.random.default_rng(0)
    centers = rng.normal(0, 10, (4, 8))
    Xtr = np.concatenate([c + rng.normal(0, 1, (10, 8)) for c in centers]).astype(np.float32)
    ytr = np.arange(40) % 3
    Xte = (centers + rng.normal(0, 1, (4, 8))).astype(np.float32)
    clf = FaissKNNClassifier(25, metric="l2", index="IVF4,Flat").fit(Xtr, ytr)  # nprobe 1
    distance, index = clf.kneighbors(Xte)
    missing = index < 0
    assert missing.any(), "each list holds about 10 rows: some of the 25 slots stay empty"
    assert np.isinf(distance[missing]).all() and np.isfinite(distance[~missing]).all()
    votes = np.array([np.bincount(ytr[row[row >= 0]], minlength=3) for row in index])
    np.testing.assert_allclose(clf.predict_proba(Xte), votes / votes.sum(1, keepdims=True))


def test_device_and_pickle(digits):
    import pickle

    from featkit._faiss import import_faiss

    Xtr, Xte, ytr, _ = digits
    faiss = import_faiss()
    clf = FaissKNNClassifier(5, device="auto").fit(Xtr, ytr)
    has_gpu = hasattr(faiss, "StandardGpuResources") and faiss.get_num_gpus() > 0
    assert clf.index_.device == ("cuda:0" if has_gpu else "cpu")
    again = pickle.loads(pickle.dumps(clf))
    np.testing.assert_array_equal(again.predict_proba(Xte), clf.predict_proba(Xte))
    if not hasattr(faiss, "StandardGpuResources"):
        with pytest.raises(InvalidParameterError, match="needs a GPU build of faiss"):
            FaissKNNClassifier(device="cuda").fit(Xtr, ytr)
    with pytest.raises(InvalidParameterError, match="device must be"):
        FaissKNNClassifier(device="gpu").fit(Xtr, ytr)


@parametrize_with_checks(
    [
        FaissKNNClassifier(),
        FaissKNNClassifier(metric="l2", weights="distance"),
        FaissKNNClassifier(weights="similarity", index="HNSW32"),
    ]
)
def test_sklearn_estimator_checks(estimator, check):
    check(estimator)


def test_fewer_training_samples_than_k_all_vote_with_a_warning():
    X = np.array([[0.0, 1.0], [0.1, 1.0], [1.0, 0.0]], dtype=np.float32)
    y = np.array([0, 0, 1])
    with pytest.warns(UserWarning, match="only 3 training samples"):
        knn = FaissKNNClassifier(n_neighbors=20, metric="l2").fit(X, y)
    reference = KNeighborsClassifier(n_neighbors=3, algorithm="brute").fit(X, y)
    query = np.array([[0.9, 0.1], [0.0, 0.9]], dtype=np.float32)
    np.testing.assert_allclose(knn.predict_proba(query), reference.predict_proba(query))

"""Transferability scores against independent computations, and on real data."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.optimize import minimize
from sklearn.datasets import load_digits
from sklearn.model_selection import LeaveOneOut, cross_val_score
from sklearn.neighbors import KNeighborsClassifier

from featkit.evaluate.transferability import (
    evidence,
    h_score,
    knn_loo_accuracy,
    leep,
    logme,
    nce,
)


def _problem(n: int, d: int, classes: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = rng.integers(0, classes, n)
    centres = rng.normal(size=(classes, d))
    return centres[y] + rng.normal(scale=1.5, size=(n, d)), y


def _evidence_by_optimiser(X: np.ndarray, y: np.ndarray) -> float:
    """Mean over classes of max evidence / n, maximised by a generic optimiser over
    (log alpha, log beta) with :func:`evidence` (no SVD, no fixed point)."""
    values = []
    for c in np.unique(y):
        t = (y == c).astype(float)
        best = minimize(
            lambda p, t=t: -evidence(X, t, np.exp(p[0]), np.exp(p[1])),
            x0=np.zeros(2),
            method="Nelder-Mead",
            options={"xatol": 1e-10, "fatol": 1e-12, "maxiter": 4000},
        )
        values.append(-best.fun)
    return float(np.mean(values)) / len(X)


@pytest.mark.parametrize(("n", "d"), [(120, 10), (30, 50)])
def test_logme_is_the_maximum_a_generic_optimiser_finds(n, d):
    # (30, 50): more features than images, where half of log|A| is alpha alone.
    X, y = _problem(n, d, 3, seed=n)
    assert logme(X, y) == pytest.approx(_evidence_by_optimiser(X, y), abs=1e-6)


def test_h_score_against_a_direct_computation():
    X, y = _problem(60, 4, 3, seed=2)
    mean = X.mean(axis=0)
    cov_f = sum(np.outer(x - mean, x - mean) for x in X) / len(X)
    g = np.array([X[y == label].mean(axis=0) - mean for label in y])
    cov_g = sum(np.outer(v, v) for v in g) / len(X)
    assert h_score(X, y) == pytest.approx(np.trace(np.linalg.inv(cov_f) @ cov_g), rel=1e-10)


def test_h_score_with_more_dimensions_than_images_uses_the_pseudo_inverse():
    X, y = _problem(12, 30, 3, seed=8)
    X[:, 5] = 0.0  # a constant column as well
    centred = X - X.mean(axis=0)
    g = np.array([X[y == label].mean(axis=0) for label in y]) - X.mean(axis=0)
    cov_f, cov_g = centred.T @ centred / len(X), g.T @ g / len(X)
    expected = np.trace(np.linalg.pinv(cov_f) @ cov_g)
    assert h_score(X, y) == pytest.approx(expected, rel=1e-8)
    assert expected == pytest.approx(2.0)  # saturated at C - 1 when d >= n


def test_h_score_of_one_hot_labels_plus_noise():
    # Balanced one-hot labels: cov = (I - 11'/C) / C, eigenvalues 1/C (C-1 times) and 0;
    # with noise variance s2 the score tends to (C - 1) (1/C) / (1/C + s2).
    rng = np.random.default_rng(3)
    classes, s2 = 4, 0.25
    y = np.repeat(np.arange(classes), 5000)
    X = np.eye(classes)[y] + rng.normal(scale=np.sqrt(s2), size=(len(y), classes))
    expected = (classes - 1) * (1 / classes) / (1 / classes + s2)
    assert h_score(X, y) == pytest.approx(expected, rel=0.02)


def _softmax(logits: np.ndarray) -> np.ndarray:
    e = np.exp(logits - logits.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def test_leep_against_a_loop():
    rng = np.random.default_rng(4)
    P = _softmax(rng.normal(scale=2, size=(50, 7)))
    y = rng.integers(0, 3, 50)
    n, Z = P.shape
    joint = {
        (yy, z): sum(P[i, z] for i in range(n) if y[i] == yy) / n
        for yy in range(3)
        for z in range(Z)
    }
    pz = {z: sum(joint[(yy, z)] for yy in range(3)) for z in range(Z)}
    total = 0.0
    for i in range(n):
        total += np.log(sum(joint[(y[i], z)] / pz[z] * P[i, z] for z in range(Z)))
    assert leep(P, y) == pytest.approx(total / n, rel=1e-12)


def test_leep_prefers_predictions_that_determine_the_labels():
    rng = np.random.default_rng(5)
    y = rng.integers(0, 3, 200)
    informative = _softmax(5 * np.eye(6)[2 * y] + rng.normal(size=(200, 6)))
    noise = _softmax(rng.normal(size=(200, 6)))
    assert leep(informative, y) > leep(noise, y)


def test_nce_against_a_direct_count():
    z = np.array([0, 0, 0, 1, 1, 2, 2, 2, 2, 5])
    y = np.array([1, 1, 0, 0, 0, 1, 0, 1, 1, 1])
    n = len(y)
    expected = 0.0
    for zz in set(z.tolist()):
        nz = np.sum(z == zz)
        for yy in set(y.tolist()):
            nyz = np.sum((z == zz) & (y == yy))
            if nyz:
                expected += nyz / n * np.log(nyz / nz)
    assert nce(z, y) == pytest.approx(expected, rel=1e-12)
    assert nce(np.eye(6)[z], y) == pytest.approx(expected, rel=1e-12)  # from probabilities
    assert nce(y, y) == 0.0  # labels that determine y: no entropy left


@pytest.mark.parametrize("k", [1, 5])
def test_knn_loo_accuracy_matches_scikit_learn(k):
    X, y = _problem(90, 8, 3, seed=6)
    knn = KNeighborsClassifier(n_neighbors=k, metric="cosine", algorithm="brute")
    expected = cross_val_score(knn, X, y, cv=LeaveOneOut()).mean()
    assert knn_loo_accuracy(X, y, k=k, block=32) == pytest.approx(expected)


def test_logme_ranks_real_digits_above_shuffled_labels_and_random_features():
    digits = load_digits()
    X, y = digits.data[:400] / 16.0, digits.target[:400]
    rng = np.random.default_rng(7)
    real = logme(X, y)
    assert real > logme(X, rng.permutation(y)) + 0.05
    assert real > logme(rng.normal(size=X.shape), y) + 0.05
    # The other label-using scores agree on the same contrast.
    assert h_score(X, y) > h_score(X, rng.permutation(y))
    assert knn_loo_accuracy(X, y) > 0.9 > knn_loo_accuracy(X, rng.permutation(y))


def test_bad_shapes_are_refused():
    with pytest.raises(ValueError, match="one label per row"):
        logme(np.zeros((5, 2)), np.zeros(4))
    with pytest.raises(ValueError, match="k must be"):
        knn_loo_accuracy(np.ones((3, 2)), np.array([0, 1, 0]), k=3)


def test_source_probabilities_are_the_head_on_the_pooled_embedding(digit_images):
    import torch

    import featkit
    from featkit.evaluate.source_model import (
        _backbone,
        _classifier,
        source_head,
        source_probabilities,
    )

    images = digit_images[0][:6]
    ex = featkit.create_extractor("cnn", image_size=64, precision="fp32", device="cpu")
    classes, why = source_head(ex)
    assert (classes, why) == (1000, "")
    P = source_probabilities(ex, images, batch_size=4)
    assert P.shape == (6, 1000)
    np.testing.assert_allclose(P.sum(axis=1), 1.0, atol=1e-9)
    # Another route to the same logits: the extractor's pooled rows through the classifier.
    pooled = torch.from_numpy(ex.transform(images))
    head = _classifier(_backbone(ex))
    with torch.inference_mode():
        expected = torch.softmax(head(pooled).double(), dim=1).numpy()
    np.testing.assert_allclose(P, expected, atol=1e-5)
    assert P.argmax(axis=1).tolist() == expected.argmax(axis=1).tolist()


def test_extractors_without_a_head_have_no_source_probabilities():
    import featkit
    from featkit.evaluate.source_model import source_head, source_probabilities

    hog = featkit.create_extractor("hog")
    assert source_head(hog)[0] is None
    with pytest.raises(ValueError, match="not a cnn"):
        source_probabilities(hog, np.zeros((1, 8, 8)))


def test_rank_job_and_command_on_digits():
    import json

    from click.testing import CliRunner

    from featkit.cli import cli
    from featkit.evaluate.rank import rank

    result = rank("digits", ["pixels", "hog"], ["knn", "logme", "leep"], per_class=15)
    assert result.sort_by == "knn"
    knn = [result.value(name, "knn") for name in result.extractors()]
    assert knn == sorted(knn, reverse=True)
    assert result.value("hog", "leep") is None  # no head: not applicable, not an error
    assert any("n/a for hog" in line for line in result.lines())
    out = CliRunner().invoke(
        cli, ["rank", "-e", "pixels", "-s", "logme,hscore", "--per-class", "10", "--json", "-q"]
    )
    assert out.exit_code == 0, out.output
    record = json.loads(out.output)
    assert record["order"] == ["pixels"] and {r["score"] for r in record["rows"]} == {
        "logme",
        "hscore",
    }
    bad = CliRunner().invoke(cli, ["rank", "-e", "pixels", "-s", "accuracy"])
    assert bad.exit_code == 2 and "unknown score" in bad.output


def test_source_probabilities_are_cached_with_the_features(digit_images, tmp_path, monkeypatch):
    """The logits are features of a copy of the extractor (its classifier as the layer): a
    second ranking with the same cache directory computes none of them again."""
    import featkit
    from featkit.engine import extraction
    from featkit.evaluate.source_model import source_logits, source_probabilities

    images = digit_images[0][:6]
    ex = featkit.create_extractor("cnn", image_size=64, device="cpu")
    logits = source_logits(ex)
    assert logits.layer == "classifier" and logits.precision == "fp32"
    assert ex.layer == "pooled"  # a copy: the caller's extractor is unchanged
    first = source_probabilities(ex, images, cache_dir=tmp_path)
    seen = []
    real = extraction.extract

    def counted(*args, **kwargs):
        out = real(*args, **kwargs)
        seen.append(out.provenance["cache"]["computed_images"])
        return out

    monkeypatch.setattr(extraction, "extract", counted)
    monkeypatch.setattr(featkit.engine, "extract", counted)
    again = source_probabilities(ex, images, cache_dir=tmp_path)
    assert seen == [0]
    np.testing.assert_array_equal(again, first)


@pytest.mark.parametrize(("n", "d"), [(120, 10), (40, 90)])
def test_shrinkage_h_score_is_the_ledoit_wolf_formula(n, d):
    """Against sklearn's LedoitWolf and a d x d inverse, for n > d and d > n."""
    from sklearn.covariance import LedoitWolf

    from featkit.evaluate.transferability import shrinkage_h_score

    rng = np.random.default_rng(n + d)
    y = rng.integers(0, 4, n)
    X = rng.normal(size=(n, d)) @ rng.normal(size=(d, d)) + 0.8 * y[:, None]
    lw = LedoitWolf().fit(X)
    centred = X - X.mean(axis=0)
    conditional = np.stack([centred[y == c].mean(axis=0) for c in y])  # E[f|y] per row
    between = conditional.T @ conditional / n
    expected = np.trace(np.linalg.inv(lw.covariance_) @ ((1 - lw.shrinkage_) * between))
    assert 0 < lw.shrinkage_ < 1
    assert shrinkage_h_score(X, y) == pytest.approx(expected, rel=1e-9)


def test_shrinkage_h_score_does_not_saturate_where_h_score_does():
    from featkit.evaluate.transferability import shrinkage_h_score

    rng = np.random.default_rng(0)
    y = np.repeat(np.arange(3), 20)
    noise = rng.normal(size=(60, 200))  # d > n: the plain H-score sees C - 1 = 2 for anything
    signal = noise + 1.5 * np.eye(3)[y] @ rng.normal(size=(3, 200))
    assert h_score(noise, y) == pytest.approx(2.0) and h_score(signal, y) == pytest.approx(2.0)
    assert shrinkage_h_score(signal, y) > 2 * shrinkage_h_score(noise, y)
    assert shrinkage_h_score(signal, y) < 2.0

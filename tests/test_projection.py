"""The report's 2-D views are scikit-learn's PCA of the standardized features, also for
features wider than the rows, which are projected from the rows' Gram matrix."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.decomposition import PCA
from sklearn.preprocessing import StandardScaler

from featkit.evaluate import projection
from featkit.evaluate.projection import project_2d


def reference_pca(X, components=2):
    Z = StandardScaler().fit_transform(X.astype(np.float64))
    return PCA(components, random_state=0).fit_transform(Z)


@pytest.fixture(scope="module")
def wide():
    """60 rows of 400 features of different scales and offsets, with a constant column."""
    rng = np.random.default_rng(0)
    X = rng.standard_normal((60, 400)) * np.linspace(0.5, 3.0, 400) + rng.standard_normal(400)
    X[:, 11] = 2.0
    return X.astype(np.float32), np.arange(60) % 3


def test_wide_features_are_projected_like_scikit_learns_pca(wide, monkeypatch):
    X, y = wide
    calls = []
    original = projection._principal_scores
    monkeypatch.setattr(projection, "_principal_scores", lambda *a: calls.append(1) or original(*a))
    view = project_2d(X, y, ids=np.arange(60).astype(str))
    assert calls  # the Gram path ran
    expected = reference_pca(X)
    np.testing.assert_allclose(view["xy"], expected, atol=1e-4 * np.abs(expected).max())
    np.testing.assert_array_equal(view["y"], y)
    # t-SNE starts from 50 principal components, the same as scikit-learn's (to rounding)
    np.testing.assert_allclose(original(X, 50)[:, :10], reference_pca(X, 50)[:, :10], atol=1e-3)


def test_narrow_features_keep_scikit_learns_path(wide):
    X, y = wide
    narrow = X[:, :40]
    np.testing.assert_allclose(project_2d(narrow, y)["xy"], reference_pca(narrow), atol=1e-5)


def test_identical_wide_rows_are_one_point():
    X = np.tile(np.arange(300, dtype=np.float32), (5, 1))
    assert np.all(project_2d(X, np.zeros(5))["xy"] == 0)

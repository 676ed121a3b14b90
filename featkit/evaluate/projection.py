"""2-D projections of features (PCA, t-SNE), computed with the results for the report's
scatter plots."""

from __future__ import annotations

from typing import Any

import numpy as np

from featkit.exceptions import InvalidParameterError

__all__ = ["VIEWS", "VIEW_POINTS", "check_view", "project_2d"]

#: The 2-D projections a report can draw.
VIEWS = ("pca", "tsne")

#: Rows drawn (seeded) for a view: enough to see the clouds, few enough for t-SNE.
VIEW_POINTS = 2000


def check_view(view: str | None) -> None:
    """Raise InvalidParameterError unless ``view`` is one of VIEWS or None (no view)."""
    if view is not None and view not in VIEWS:
        raise InvalidParameterError(f"a 2-D view is 'pca', 'tsne' or None, got {view!r}")


def project_2d(
    X: Any,
    y: np.ndarray,
    method: str = "pca",
    seed: int = 0,
    domain: np.ndarray | None = None,
    ids: np.ndarray | None = None,
) -> dict[str, Any]:
    """``{"xy": (n, 2), "y": (n,), "method": method}`` for a seeded sample of the rows.

    Features are standardised first; ``pca`` keeps the two main directions, ``tsne`` runs
    scikit-learn's t-SNE on a 50-component PCA (slower, shows clusters better). With
    ``domain`` (a label per row, e.g. source or target), the result has it too, sampled
    like ``y``; so with ``ids`` (the image ids, for the report's thumbnails).
    """
    from sklearn.decomposition import PCA
    from sklearn.preprocessing import StandardScaler

    if method not in VIEWS:
        raise InvalidParameterError(f"a 2-D view is 'pca' or 'tsne', got {method!r}")
    rows = np.arange(len(y))
    if len(rows) > VIEW_POINTS:
        rows = np.sort(np.random.default_rng(seed).choice(rows, VIEW_POINTS, replace=False))
    sample = np.asarray(X[rows])
    components = 50 if method == "tsne" else 2
    wide = sample.shape[1] > len(rows)
    if wide:
        # Wide features (327,680-d Fisher vectors): the principal components from the
        # sampled rows' Gram matrix, without the float64 copies of the 2,000 x d sample
        # that scaling and PCA would each make (5 GB apiece).
        Z = _principal_scores(sample, components)
    else:
        Z = StandardScaler().fit_transform(np.asarray(sample, dtype=np.float64))
        if method == "tsne":
            # 50 PCA components first, as the t-SNE authors recommend: faster, less noisy.
            Z = PCA(min(components, *Z.shape), random_state=seed).fit_transform(Z)
    if method == "tsne":
        from sklearn.manifold import TSNE

        perplexity = min(30.0, max(2.0, (len(Z) - 1) / 3))
        xy = TSNE(2, init="pca", random_state=seed, perplexity=perplexity).fit_transform(Z)
    elif wide:
        xy = Z
    else:
        xy = PCA(min(2, *Z.shape), random_state=seed).fit_transform(Z)
    if xy.shape[1] < 2:  # 1-d features (or one row): draw them on a line
        xy = np.pad(xy, ((0, 0), (0, 2 - xy.shape[1])))
    view = {"xy": xy.astype(np.float32), "y": np.asarray(y)[rows], "method": method}
    if domain is not None:
        view["domain"] = np.asarray(domain)[rows]
    if ids is not None:
        view["ids"] = np.asarray(ids)[rows]
    return view


def _principal_scores(X: np.ndarray, components: int) -> np.ndarray:
    """Scores of the standardized rows of ``X`` on their first principal components
    (scikit-learn's ``PCA`` after ``StandardScaler``, signs by ``svd_flip``), from the rows'
    Gram matrix: for n rows of d > n features."""
    import torch

    from featkit.classify.row_space import fit_row_space

    X = X if X.dtype in (np.float32, np.float64) else X.astype(np.float32)
    weights = np.full(len(X), 1.0 / len(X))
    space = fit_row_space(X, weights, torch.device("cpu"), standardize=True)
    if space is None:  # every row alike: one point
        return np.zeros((len(X), 1))
    order = np.arange(space.coords.shape[1])[::-1][:components]  # largest variance first
    Z = space.coords[:, order].astype(np.float64)
    # PCA's sign convention (svd_flip on the components): the largest entry of each
    # component, the unit direction over the features, is positive
    V = space.to_features(X, np.eye(space.coords.shape[1])[order], torch.device("cpu"))
    signs = np.sign(V[np.arange(len(order)), np.argmax(np.abs(V), axis=1)])
    return Z * np.where(signs == 0, 1.0, signs)

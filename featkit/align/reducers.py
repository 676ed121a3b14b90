"""Reducers: one projection for both domains (PCA, LDA), fitted on the source, the target
or both. Not alignment by themselves, but the usual first step and a fair baseline."""

from __future__ import annotations

from numbers import Integral, Real

import numpy as np
from sklearn.decomposition import PCA
from sklearn.discriminant_analysis import LinearDiscriminantAnalysis

from featkit.align._linalg import make_backend
from featkit.align.base import Aligner
from featkit.align.domains import MASKED
from featkit.exceptions import InvalidParameterError
from featkit.stats import RunningMoments, check_moments
from featkit.validation import check_bool

__all__ = ["FIT_ON", "SharedLDA", "SharedPCA"]

#: Which rows a reducer learns from.
FIT_ON = ("source", "target", "both")


def _check_fit_on(fit_on: str, owner: str) -> None:
    if fit_on not in FIT_ON:
        raise InvalidParameterError(f"{owner}: fit_on must be one of {FIT_ON}, got {fit_on!r}")


def _rows(fit_on: str, Xs: np.ndarray, Xt: np.ndarray, owner: str) -> np.ndarray:
    """The source's rows, the target's, or both stacked (source first), as ``fit_on`` says;
    the same for per-row arrays such as labels."""
    _check_fit_on(fit_on, owner)
    if fit_on == "source":
        return Xs
    if fit_on == "target":
        return Xt
    return np.concatenate([Xs, Xt])


class SharedPCA(Aligner):
    """scikit-learn's PCA, fitted on the source, the target or both, applied to both.

    Parameters
    ----------
    n_components : int or float, default=100
        Kept components (capped at what the rows allow), or a share of variance in (0, 1).
    whiten : bool, default=False
        Scale each component to unit variance.
    fit_on : {"source", "target", "both"}, default="both"
        The rows the principal directions are learned from (the target's labels are never
        used).
    random_state : int, default=0
        Seed of scikit-learn's randomized solver, when it picks that one.

    Attributes
    ----------
    components_ : ndarray of shape (k, n_features)
    mean_, explained_variance_, explained_variance_ratio_ : ndarray
        As scikit-learn's PCA.
    pca_ : sklearn.decomposition.PCA or None
        The fitted PCA (None after :meth:`fit_moments`).
    """

    def __init__(
        self,
        n_components: int | float = 100,
        whiten: bool = False,
        fit_on: str = "both",
        random_state: int = 0,
    ) -> None:
        self.n_components = n_components
        self.whiten = whiten
        self.fit_on = fit_on
        self.random_state = random_state

    def _fit(
        self, Xs: np.ndarray, Xt: np.ndarray, ys: np.ndarray | None, yt: np.ndarray | None = None
    ) -> None:
        name = type(self).__name__
        check_bool(name, "whiten", self.whiten)
        X = _rows(self.fit_on, Xs, Xt, name)
        k = self.n_components
        if isinstance(k, int) and not isinstance(k, bool):
            k = min(k, *X.shape)
        self.pca_ = PCA(k, whiten=self.whiten, random_state=self.random_state).fit(X)
        self._keep(
            self.pca_.mean_,
            self.pca_.components_,
            self.pca_.explained_variance_,
            self.pca_.explained_variance_ratio_,
        )

    def fit_moments(self, source: RunningMoments, target: RunningMoments) -> SharedPCA:
        """Fit from each domain's mean and covariance accumulated batch by batch
        (:func:`featkit.stats.moments` over a :class:`~featkit.store.ShardStore`), for
        domains larger than memory: PCA of the ``fit_on`` rows' covariance (both domains
        pooled for ``"both"``), the components scikit-learn's full PCA finds on the arrays.
        ``pca_`` stays None: there is no scikit-learn PCA to keep."""
        name = type(self).__name__
        check_bool(name, "whiten", self.whiten)
        check_moments(name, source, target)
        _check_fit_on(self.fit_on, name)
        pooled = {"source": source, "target": target}.get(self.fit_on)
        if pooled is None:
            pooled = source.copy().merge(target)
        k = self.n_components
        if isinstance(k, bool) or not isinstance(k, Real) or k <= 0:
            raise InvalidParameterError(f"{name}: n_components must be > 0, got {k!r}")
        if not isinstance(k, Integral) and not k < 1:
            raise InvalidParameterError(
                f"{name}: a float n_components is a share of variance in (0, 1), got {k}"
            )
        limit = min(pooled.n, pooled.dim)
        be = make_backend("numpy", "float64", "cpu", name)
        V, variances, total = be.directions_of_covariance(pooled.covariance(ddof=1), limit)
        ratio = variances / (total if total > 0 else 1.0)
        if not isinstance(k, Integral):  # scikit-learn's rule for a variance share
            k = int(np.searchsorted(np.cumsum(ratio), k, side="right") + 1)
        k = min(int(k), limit)
        self.pca_ = None
        self._keep(pooled.mean, V[:, :k].T, variances[:k], ratio[:k])
        self.n_features_in_ = source.dim
        return self

    def _keep(
        self, mean: np.ndarray, components: np.ndarray, variance: np.ndarray, ratio: np.ndarray
    ) -> None:
        self.mean_ = np.asarray(mean)
        self.components_ = np.asarray(components)
        self.explained_variance_ = np.asarray(variance)
        self.explained_variance_ratio_ = np.asarray(ratio)
        self.n_features_out_ = len(self.components_)

    def _transform_source(self, X: np.ndarray) -> np.ndarray:
        # scikit-learn's PCA.transform, in its order of operations, on the kept attributes
        # (of either fit): the same result whatever the rows batched with X.
        Z = X @ self.components_.T
        Z -= self.mean_ @ self.components_.T
        if self.whiten:
            scale = np.sqrt(self.explained_variance_)
            Z /= np.maximum(scale, np.finfo(scale.dtype).eps)
        return Z

    _transform_target = _transform_source


class SharedLDA(Aligner):
    """scikit-learn's linear discriminant analysis on labelled rows, applied to both domains
    (at most n_classes - 1 components).

    Parameters
    ----------
    n_components : int, optional
        Kept discriminant directions (all, n_classes - 1, when None).
    shrinkage : float or "auto", optional
        Shrinkage of the within-class covariance (the ``eigen`` solver); None is the
        ``svd`` solver without shrinkage.
    fit_on : {"source", "target", "both"}, default="source"
        Whose labelled rows the directions are learned from. Target labels are hidden in
        unsupervised domain adaptation; ``target`` and ``both`` use the target rows whose
        label ``fit`` received (not -1), for semi-supervised settings.
    """

    requires_labels = True

    def __init__(
        self,
        n_components: int | None = None,
        shrinkage: float | str | None = None,
        fit_on: str = "source",
    ) -> None:
        self.n_components = n_components
        self.shrinkage = shrinkage
        self.fit_on = fit_on

    def _fit(
        self, Xs: np.ndarray, Xt: np.ndarray, ys: np.ndarray | None, yt: np.ndarray | None = None
    ) -> None:
        name = type(self).__name__
        labels_t = np.full(len(Xt), MASKED) if yt is None else np.asarray(yt)
        X = _rows(self.fit_on, Xs, Xt, name)
        y = _rows(self.fit_on, np.asarray(ys), labels_t, name)  # the labels of X's rows
        labelled = y != MASKED
        if len(np.unique(y[labelled])) < 2:
            raise InvalidParameterError(
                f"{name}: fit_on={self.fit_on!r} has fewer than 2 labelled classes "
                "(target labels are -1 unless you pass them)"
            )
        solver = "svd" if self.shrinkage is None else "eigen"
        k = self.n_components
        if k is not None:
            k = min(int(k), len(np.unique(y[labelled])) - 1, X.shape[1])
        self.lda_ = LinearDiscriminantAnalysis(
            solver=solver, shrinkage=self.shrinkage, n_components=k
        ).fit(X[labelled], y[labelled])
        self.n_features_out_ = self.lda_.transform(X[:1]).shape[1]

    def _transform_source(self, X: np.ndarray) -> np.ndarray:
        return self.lda_.transform(X)

    _transform_target = _transform_source

"""CORAL: correlation alignment (Sun, Feng and Saenko, AAAI 2016).

The source is whitened with its own covariance and re-coloured with the target's::

    A = (Cs + reg I)^(-1/2) (Ct + reg I)^(1/2),      source -> Xs A,    target unchanged

``reg=1`` and the sample covariance (divisor n - 1) are the paper's and its released
code's choices. ``covariance="ledoit-wolf"`` with ``reg=0`` and ``center=True`` is SKADA's
``CORALAdapter()`` (Ledoit-Wolf shrinkage of the standardised features, rescaled), which
featkit computes with one Gram matrix per domain instead of scikit-learn's three.
"""

from __future__ import annotations

from numbers import Real
from typing import Any

import numpy as np
from sklearn.utils.validation import check_is_fitted

from featkit.align._linalg import Backend, make_backend
from featkit.align.base import Aligner
from featkit.exceptions import InvalidParameterError
from featkit.stats import RunningMoments, check_moments
from featkit.validation import check_bool, check_float

__all__ = ["CORAL", "COVARIANCES"]

#: The covariance estimators CORAL accepts (besides a float shrinkage in [0, 1]).
COVARIANCES = ("sample", "empirical", "ledoit-wolf")


class CORAL(Aligner):
    """Correlation alignment: re-colour the source with the target's covariance.

    Parameters
    ----------
    reg : float, default=1.0
        Added to the diagonal of both covariances (the paper's lambda; 1 in the paper).
    covariance : {"sample", "empirical", "ledoit-wolf"} or float, default="sample"
        ``sample``: divisor n - 1 (MATLAB's ``cov``, the authors' code); ``empirical``:
        divisor n; ``ledoit-wolf``: Ledoit-Wolf shrinkage of the standardised features,
        rescaled (SKADA's ``reg="auto"``); a float in [0, 1]: that fixed shrinkage of the
        empirical covariance towards ``trace / d * I`` (SKADA's float ``reg``).
    center : bool, default=True
        Centre each domain on its own mean (the source before whitening, the target
        too), as SKADA does, so both reach the classifier with zero mean. ``False``
        multiplies the raw source by ``A`` and leaves the target as it is, as the paper
        does on data already z-scored per domain (where the two agree).
    dtype : {"float32", "float64"}, default="float32"
        Precision of the covariances and their eigendecompositions. float32 is about
        twice as fast; with ``reg`` >= 1e-3 of the features' variance its outputs agree
        with float64 to 1e-4 relative (``benchmarks/align.py``). Use float64 for
        ``reg=0`` on ill-conditioned covariances.
    backend : {"numpy", "torch"}, default="numpy"
        ``torch`` runs the algebra on torch (on ``device``): the fast path on a GPU.
    device : str, default="auto"
        ``auto``, ``cpu``, ``cuda``, ``cuda:N``; used with ``backend="torch"``.

    Attributes
    ----------
    transform_matrix_ : ndarray of shape (n_features, n_features)
        ``A``: centred source rows are mapped to ``X @ A``.
    mean_source_, mean_target_ : ndarray of shape (n_features,)
    shrinkage_source_, shrinkage_target_ : float
        The shrinkage used (0 unless ``covariance`` shrinks).
    """

    def __init__(
        self,
        reg: float = 1.0,
        covariance: str | float = "sample",
        center: bool = True,
        dtype: str = "float32",
        backend: str = "numpy",
        device: str = "auto",
    ) -> None:
        self.reg = reg
        self.covariance = covariance
        self.center = center
        self.dtype = dtype
        self.backend = backend
        self.device = device

    def _check_params(self) -> Backend:
        name = type(self).__name__
        check_float(name, "reg", self.reg, low=0.0)
        check_bool(name, "center", self.center)
        cov = self.covariance
        if isinstance(cov, str):
            if cov not in COVARIANCES:
                raise InvalidParameterError(
                    f"{name}: covariance must be one of {COVARIANCES} or a shrinkage in [0, 1], "
                    f"got {cov!r}"
                )
        elif not isinstance(cov, Real) or isinstance(cov, bool) or not 0 <= cov <= 1:
            raise InvalidParameterError(
                f"{name}: a float covariance is a shrinkage in [0, 1], got {cov!r}"
            )
        return make_backend(self.backend, self.dtype, self.device, name)

    def _fit(
        self, Xs: np.ndarray, Xt: np.ndarray, ys: np.ndarray | None, yt: np.ndarray | None = None
    ) -> None:
        be = self._check_params()
        for role, X in (("source", Xs), ("target", Xt)):
            if len(X) < 2:
                raise InvalidParameterError(
                    f"{type(self).__name__}: the {role} has {len(X)} row; a covariance needs 2"
                )
        d = Xs.shape[1]
        self._factors: list[tuple[np.ndarray, np.ndarray, float]] | None = None
        self._matrix: np.ndarray | None = None
        if max(len(Xs), len(Xt)) < d and self.covariance != "ledoit-wolf" and self.reg > 0:
            # Fewer rows than features: each covariance is low rank plus a multiple of I,
            # so its powers are too; O(n^2 d) instead of O(d^3) (8,100-d HOG: 1 s, not 2 min).
            mean_s, *factor_s, self.shrinkage_source_ = self._low_rank_power(be, Xs, -0.5)
            mean_t, *factor_t, self.shrinkage_target_ = self._low_rank_power(be, Xt, 0.5)
            self._factors = [tuple(factor_s), tuple(factor_t)]
        else:
            mean_s, cov_s, self.shrinkage_source_ = self._covariance(be, be.asarray(Xs))
            mean_t, cov_t, self.shrinkage_target_ = self._covariance(be, be.asarray(Xt))
            self._set_full_rank(be, cov_s, cov_t)
        self.mean_source_ = be.to_numpy(mean_s)
        self.mean_target_ = be.to_numpy(mean_t)
        self.n_features_out_ = d

    def fit_moments(self, source: RunningMoments, target: RunningMoments) -> CORAL:
        """Fit from each domain's mean and covariance accumulated batch by batch
        (:func:`featkit.stats.moments` over a :class:`~featkit.store.ShardStore`), for
        domains larger than memory: the same alignment as ``fit_domains`` on the full
        arrays. Ledoit-Wolf shrinkage needs the rows themselves and is refused."""
        be = self._check_params()
        name = type(self).__name__
        if self.covariance == "ledoit-wolf":
            raise InvalidParameterError(
                f"{name}: covariance='ledoit-wolf' needs the rows; use 'sample', "
                "'empirical' or a fixed shrinkage with fit_moments"
            )
        check_moments(name, source, target)
        ddof = 1 if self.covariance == "sample" else 0
        shrinkage = 0.0 if isinstance(self.covariance, str) else float(self.covariance)
        cov_s, cov_t = (
            _shrink(be, be.asarray(stats.covariance(ddof)), shrinkage) for stats in (source, target)
        )
        self._factors = None
        self._set_full_rank(be, cov_s, cov_t)
        self.shrinkage_source_ = self.shrinkage_target_ = shrinkage
        self.mean_source_ = source.mean.astype(self.dtype)
        self.mean_target_ = target.mean.astype(self.dtype)
        self.n_features_in_ = self.n_features_out_ = source.dim
        return self

    def _set_full_rank(self, be: Backend, cov_s: Any, cov_t: Any) -> None:
        """``A = (Cs + reg I)^(-1/2) (Ct + reg I)^(1/2)`` as an explicit matrix."""
        eye = be.eye(cov_s.shape[0])
        A = be.spd_power(cov_s + self.reg * eye, -0.5) @ be.spd_power(cov_t + self.reg * eye, 0.5)
        self._matrix = be.to_numpy(A)

    @property
    def transform_matrix_(self) -> np.ndarray:
        """``A`` (n_features x n_features): centred source rows are mapped to ``X @ A``."""
        check_is_fitted(self)
        if self._matrix is None:  # kept as low-rank factors: form it on request
            self._matrix = self._apply(np.eye(self.n_features_in_, dtype=self.dtype))
        return self._matrix

    def _low_rank_power(
        self, be: Backend, X: np.ndarray, power: float
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, float, float]:
        """``(mean, V, coef, base, shrinkage)`` with ``(C + reg I) ** power`` equal to
        ``V diag(coef) V' + base I``, from the thin SVD of the centred rows."""
        X = be.asarray(X)
        n, d = X.shape
        mean = X.mean(0)
        _, S, Vt = be.svd(X - mean)
        ddof = 1 if self.covariance == "sample" else 0
        c = S**2 / (n - ddof)  # the covariance's nonzero eigenvalues
        shrinkage = 0.0 if isinstance(self.covariance, str) else float(self.covariance)
        alpha = 1.0 - shrinkage
        beta = shrinkage * float(c.sum()) / d + float(self.reg)  # the identity's multiple
        coef = (alpha * c + beta) ** power - beta**power
        return (
            be.to_numpy(mean),
            be.to_numpy(Vt.T),
            be.to_numpy(coef),
            beta**power,
            shrinkage,
        )

    def _apply(self, X: np.ndarray) -> np.ndarray:
        """``X @ A`` for centred source rows, by the explicit matrix or the factors."""
        if self._factors is None:
            return X @ self._matrix
        for V, coef, base in self._factors:
            X = ((X @ V) * coef) @ V.T + base * X
        return X

    def _covariance(self, be: Backend, X: Any) -> tuple[Any, Any, float]:
        """``(mean, covariance, shrinkage)`` of one domain, by ``self.covariance``."""
        n = X.shape[0]
        ddof = 1 if self.covariance == "sample" else 0
        mean, cov = be.covariance(X, ddof=ddof)
        if isinstance(self.covariance, str) and self.covariance != "ledoit-wolf":
            return mean, cov, 0.0
        if self.covariance == "ledoit-wolf":
            # SKADA standardises, shrinks the correlation matrix, then rescales.
            scale = cov.diagonal() ** 0.5
            scale = scale + (scale == 0) * 1.0  # constant features: scikit-learn's scale of 1
            Z2 = ((X - mean) / scale) ** 2
            corr = cov / scale[:, None] / scale[None, :]
            shrinkage = _ledoit_wolf_shrinkage(float((Z2.sum(1) ** 2).sum()), corr, n)
        else:
            shrinkage, corr, scale = float(self.covariance), cov, None
        shrunk = _shrink(be, corr, shrinkage)
        if scale is not None:
            shrunk = shrunk * scale[:, None] * scale[None, :]
        return mean, shrunk, shrinkage

    def _transform_source(self, X: np.ndarray) -> np.ndarray:
        Xc = X - self.mean_source_ if self.center else X
        return self._apply(Xc.astype(self.dtype, copy=False))

    def _transform_target(self, X: np.ndarray) -> np.ndarray:
        X = X.astype(self.dtype)  # a copy: outputs never alias the input
        if self.center:
            X -= self.mean_target_
        return X


def _shrink(be: Backend, cov: Any, shrinkage: float) -> Any:
    """``(1 - shrinkage) C + shrinkage trace(C) / d I``."""
    if shrinkage == 0:
        return cov
    mu = float(cov.diagonal().sum()) / cov.shape[0]
    return (1.0 - shrinkage) * cov + shrinkage * mu * be.eye(cov.shape[0])


def _ledoit_wolf_shrinkage(sum_sq_norms: float, emp_cov: Any, n: int) -> float:
    """scikit-learn's Ledoit-Wolf shrinkage (``ledoit_wolf_shrinkage``) from the empirical
    covariance of centred rows and the sum over rows of ``||x_i||^4``.

    scikit-learn sums the entries of ``(X**2).T @ (X**2)``, a second d x d Gram matrix; that
    sum equals ``sum_i ||x_i||^4``, which costs O(n d).
    """
    d = emp_cov.shape[0]
    trace = float(emp_cov.diagonal().sum())
    mu = trace / d
    delta_ = float((emp_cov**2).sum())  # sum of squared entries of X.T X / n
    beta = (sum_sq_norms / n - delta_) / (d * n)
    delta = (delta_ - 2.0 * mu * trace + d * mu**2) / d
    beta = min(beta, delta)
    return 0.0 if beta == 0 else beta / delta

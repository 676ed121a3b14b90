"""TCA: transfer component analysis (Pan, Tsang, Kwok and Yang, IEEE TNN 2011).

A kernel embedding ``Z = K W`` of both domains where their means (in the kernel's feature
space) are close while the pooled variance is kept: ``W`` holds the leading eigenvectors
of ``(I + mu K L K)^(-1) K H K`` (unsupervised TCA, the paper's equation 12), solved as the
symmetric problem ``K H K w = phi (I + mu K L K) w``.
"""

from __future__ import annotations

from numbers import Integral
from typing import Any

import numpy as np
from sklearn.metrics.pairwise import pairwise_kernels
from sklearn.utils import check_random_state

from featkit.align._mmd import centred_scatter, leading_generalized_eigvecs, mmd_scatter
from featkit.align.base import Aligner
from featkit.exceptions import InvalidParameterError
from featkit.validation import check_float, check_int

__all__ = ["KERNELS", "TCA", "domain_mean_vector", "kernel_matrix", "landmarks"]

#: Kernels TCA and JDA accept (scikit-learn's ``pairwise_kernels`` names).
KERNELS = ("linear", "rbf", "laplacian", "cosine", "poly", "sigmoid")


class TCA(Aligner):
    """Transfer component analysis: one kernel embedding for both domains.

    Parameters
    ----------
    n_components : int, default=30
        Dimension of the embedding (capped at the number of fitted rows).
    mu : float, default=1.0
        Weight of the domain-mean term against the regulariser ``tr(W'W)`` (the paper's
        mu; larger aligns the means harder).
    kernel : str, default="linear"
        A scikit-learn pairwise kernel: linear, rbf, laplacian, cosine, poly, sigmoid.
    gamma : float, optional
        Kernel coefficient (scikit-learn's default, 1 / n_features, when None).
    max_samples : int, default=3000
        Fit on at most this many rows (a seeded draw, in proportion to each domain's
        size): the eigenproblem is n x n, so its cost grows as n^3.
    random_state : int, default=0
        Seed of that draw.

    Attributes
    ----------
    components_ : ndarray of shape (n_fit, n_components)
        ``W``: a row is mapped to ``kernel(row, X_fit_) @ W``.
    X_fit_ : ndarray of shape (n_fit, n_features)
        The fitted rows (source first, then target).
    eigenvalues_ : ndarray of shape (n_components,)
    """

    def __init__(
        self,
        n_components: int = 30,
        mu: float = 1.0,
        kernel: str = "linear",
        gamma: float | None = None,
        max_samples: int = 3000,
        random_state: int = 0,
    ) -> None:
        self.n_components = n_components
        self.mu = mu
        self.kernel = kernel
        self.gamma = gamma
        self.max_samples = max_samples
        self.random_state = random_state

    def _check_params(self) -> None:
        name = type(self).__name__
        check_int(name, "n_components", self.n_components, low=1)
        check_float(name, "mu", self.mu, low=0.0)
        check_kernel(name, self.kernel, self.gamma)
        check_int(name, "max_samples", self.max_samples, low=2)

    def _fit(
        self, Xs: np.ndarray, Xt: np.ndarray, ys: np.ndarray | None, yt: np.ndarray | None = None
    ) -> None:
        self._check_params()
        rows_s, rows_t = landmarks(len(Xs), len(Xt), self.max_samples, self.random_state)
        Xs, Xt = Xs[rows_s], Xt[rows_t]
        X = np.concatenate([Xs, Xt]).astype(np.float64, copy=False)
        K = self._kernel(X, X)
        e = domain_mean_vector(len(Xs), len(Xt))
        B = centred_scatter(K)
        A = np.eye(len(X)) + self.mu * mmd_scatter(K, e[:, None], np.ones(1))
        self.eigenvalues_, self.components_ = leading_generalized_eigvecs(B, A, self.n_components)
        self.X_fit_ = X
        self.n_features_out_ = self.components_.shape[1]

    def _kernel(self, X: np.ndarray, Y: np.ndarray) -> np.ndarray:
        return kernel_matrix(X, Y, self.kernel, self.gamma)

    def _embed(self, X: np.ndarray) -> np.ndarray:
        return self._kernel(X.astype(np.float64, copy=False), self.X_fit_) @ self.components_

    # One embedding serves both domains.
    _transform_source = _embed
    _transform_target = _embed


def check_kernel(owner: str, kernel: Any, gamma: Any) -> None:
    """Raise InvalidParameterError unless ``kernel`` is one of KERNELS and ``gamma`` > 0."""
    if kernel not in KERNELS:
        raise InvalidParameterError(f"{owner}: kernel must be one of {KERNELS}, got {kernel!r}")
    if gamma is not None:
        check_float(owner, "gamma", gamma, low=0.0, strict=True)


def kernel_matrix(X: np.ndarray, Y: np.ndarray | None, kernel: str, gamma: float | None) -> Any:
    """scikit-learn's ``pairwise_kernels``, with ``gamma`` passed only to kernels that take
    it (None: scikit-learn's default, 1 / n_features)."""
    params: dict[str, Any] = {}
    if gamma is not None and kernel not in ("linear", "cosine"):
        params["gamma"] = gamma
    return pairwise_kernels(X, Y, metric=kernel, **params)


def domain_mean_vector(n_source: int, n_target: int) -> np.ndarray:
    """``e`` with ``1/ns`` on source rows and ``-1/nt`` on target rows: ``F' e`` is the
    difference of the domains' means, and ``e e'`` the MMD matrix L of TCA."""
    return np.concatenate([np.full(n_source, 1.0 / n_source), np.full(n_target, -1.0 / n_target)])


def landmarks(
    n_source: int, n_target: int, max_samples: Any, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """Sorted rows of each domain to fit on: all of them, or a seeded draw of at most
    ``max_samples`` in all, in proportion to the domains' sizes (at least 2 from each)."""
    n = n_source + n_target
    if not isinstance(max_samples, Integral) or n <= max_samples:
        return np.arange(n_source), np.arange(n_target)
    rng = check_random_state(seed)
    k_s = max(2, min(n_source, round(max_samples * n_source / n)))
    k_t = max(2, min(n_target, max_samples - k_s))
    pick = [np.sort(rng.choice(m, k, replace=False)) for m, k in ((n_source, k_s), (n_target, k_t))]
    return pick[0], pick[1]

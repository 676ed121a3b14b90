"""JDA: joint distribution adaptation (Long, Wang, Ding, Sun and Yu, ICCV 2013).

TCA's marginal mean matching plus one mean-matching term per class, with the target's
classes guessed by a classifier trained on the aligned source and refined over
iterations. As in the authors' code: rows are L2-normalised first; the MMD matrix is
``C e0 e0' + sum_c e_c e_c'`` divided by its Frobenius norm; ``A`` holds the leading
solutions of ``F' H F a = phi (F' M F + lam I) a`` with ``F`` the data (``kernel="linear"``,
the primal form, d x d) or a kernel matrix; each iteration embeds ``Z = F A``,
L2-normalises its rows and relabels the target with a 1-NN classifier.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.base import clone
from sklearn.neighbors import KNeighborsClassifier
from sklearn.preprocessing import normalize

from featkit.align._mmd import centred_scatter, leading_generalized_eigvecs, mmd_scatter
from featkit.align.base import Aligner
from featkit.align.tca import check_kernel, domain_mean_vector, kernel_matrix, landmarks
from featkit.exceptions import InvalidParameterError
from featkit.validation import check_bool, check_float, check_int

__all__ = ["JDA"]


class JDA(Aligner):
    """Joint distribution adaptation: match the domains' marginal and class-conditional means.

    Parameters
    ----------
    n_components : int, default=100
        Dimension of the embedding (the paper's k).
    lam : float, default=0.1
        Weight of the regulariser ``||A||^2`` (the paper's lambda).
    kernel : str, default="linear"
        ``linear`` solves the primal problem (d x d); other scikit-learn kernels the n x n
        kernel problem on at most ``max_samples`` rows.
    gamma : float, optional
        Kernel coefficient (1 / n_features when None).
    n_iter : int, default=10
        Eigen-solves; the first matches marginal means only (no target labels yet).
    classifier : estimator, optional
        Labels the target between iterations; 1-nearest-neighbour by default (the paper's).
    normalize : bool, default=True
        L2-normalise rows before the embedding and after it (the authors' code).
    max_samples : int, default=3000
        Rows fitted by the kernel form (a seeded draw); the primal form uses every row.
    random_state : int, default=0

    Attributes
    ----------
    components_ : ndarray
        ``A``: (n_features, k) for the linear kernel, else (n_fit, k).
    pseudo_labels_ : ndarray of shape (n_target_fit,)
        The target labels guessed in the last iteration.
    n_iter_ : int
    """

    requires_labels = True

    def __init__(
        self,
        n_components: int = 100,
        lam: float = 0.1,
        kernel: str = "linear",
        gamma: float | None = None,
        n_iter: int = 10,
        classifier: Any = None,
        normalize: bool = True,
        max_samples: int = 3000,
        random_state: int = 0,
    ) -> None:
        self.n_components = n_components
        self.lam = lam
        self.kernel = kernel
        self.gamma = gamma
        self.n_iter = n_iter
        self.classifier = classifier
        self.normalize = normalize
        self.max_samples = max_samples
        self.random_state = random_state

    def _check_params(self) -> None:
        name = type(self).__name__
        check_int(name, "n_components", self.n_components, low=1)
        check_float(name, "lam", self.lam, low=0.0, strict=True)
        check_kernel(name, self.kernel, self.gamma)
        check_int(name, "n_iter", self.n_iter, low=1)
        check_bool(name, "normalize", self.normalize)
        check_int(name, "max_samples", self.max_samples, low=2)

    def _fit(
        self, Xs: np.ndarray, Xt: np.ndarray, ys: np.ndarray | None, yt: np.ndarray | None = None
    ) -> None:
        self._check_params()
        assert ys is not None  # Aligner.fit checks requires_labels
        if self.kernel != "linear":
            rows_s, rows_t = landmarks(len(Xs), len(Xt), self.max_samples, self.random_state)
            Xs, Xt, ys = Xs[rows_s], Xt[rows_t], ys[rows_s]
        X = self._as_rows(np.concatenate([Xs, Xt]))
        self.X_fit_ = X if self.kernel != "linear" else None
        F = X if self.kernel == "linear" else self._kernel(X)
        ns, nt = len(Xs), len(Xt)
        classes = np.unique(ys)
        e0 = domain_mean_vector(ns, nt)
        B = centred_scatter(F)
        classifier = KNeighborsClassifier(1) if self.classifier is None else self.classifier
        pseudo = None
        for _ in range(self.n_iter):
            vectors, weights = [e0], [float(len(classes))]  # C e0 e0': the authors' scaling
            if pseudo is not None:
                for c in classes:
                    e = np.zeros(ns + nt)
                    e[:ns][ys == c] = 1.0 / np.count_nonzero(ys == c)
                    hits = pseudo == c
                    if hits.any():
                        e[ns:][hits] = -1.0 / np.count_nonzero(hits)
                    vectors.append(e)
                    weights.append(1.0)
            E, w = np.stack(vectors, axis=1), np.asarray(weights)
            w = w / _frobenius_of_sum(E, w)
            A = mmd_scatter(F, E, w) + self.lam * np.eye(F.shape[1])
            _, components = leading_generalized_eigvecs(B, A, self.n_components)
            Z = self._finish(F @ components)
            model = clone(classifier).fit(Z[:ns], ys)
            pseudo = model.predict(Z[ns:])
        self.components_ = components
        self.pseudo_labels_ = pseudo
        self.n_iter_ = self.n_iter
        self.n_features_out_ = components.shape[1]

    def _as_rows(self, X: np.ndarray) -> np.ndarray:
        """Rows in float64, L2-normalised when ``normalize`` (JDA's input convention)."""
        X = X.astype(np.float64, copy=False)
        return normalize(X) if self.normalize else X

    def _finish(self, Z: np.ndarray) -> np.ndarray:
        return normalize(Z) if self.normalize else Z

    def _kernel(self, X: np.ndarray, Y: np.ndarray | None = None) -> np.ndarray:
        return kernel_matrix(X, Y, self.kernel, self.gamma)

    def _embed(self, X: np.ndarray) -> np.ndarray:
        X = self._as_rows(X)
        F = X if self.X_fit_ is None else self._kernel(X, self.X_fit_)
        return self._finish(F @ self.components_)

    # One embedding serves both domains.
    _transform_source = _embed
    _transform_target = _embed


def _frobenius_of_sum(E: np.ndarray, w: np.ndarray) -> float:
    """``||sum_j w_j e_j e_j'||_F`` without forming the n x n matrix:
    ``sum_jk w_j w_k (e_j . e_k)^2``."""
    G = E.T @ E
    total = float(np.sum(np.outer(w, w) * G**2))
    if total <= 0:
        raise InvalidParameterError("JDA: the MMD matrix is zero (are both domains empty?)")
    return total**0.5

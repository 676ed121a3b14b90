"""Subspace Alignment (Fernando, Habrard, Sebban and Tuytelaars, ICCV 2013).

``Ps`` and ``Pt`` (d x k) hold the top-k principal directions of the source and of the
target. The source basis is aligned onto the target basis by ``M = Ps' Pt``::

    source -> (Xs - mean_s) Ps M,        target -> (Xt - mean_t) Pt

so both land in the target's k-dimensional subspace. This is SKADA's
``SubspaceAlignmentAdapter`` (the same output, with scikit-learn's sign convention for the
principal directions).
"""

from __future__ import annotations

from numbers import Integral, Real
from typing import Any

import numpy as np

from featkit.align._linalg import Backend, make_backend
from featkit.align.base import Aligner
from featkit.exceptions import InvalidParameterError
from featkit.stats import RunningMoments, check_moments
from featkit.validation import check_bool

__all__ = ["SubspaceAlignment", "check_subspace_params", "n_components_for_variance"]


class SubspaceAlignment(Aligner):
    """Align the source's principal subspace onto the target's.

    Parameters
    ----------
    n_components : int or float, default=80
        ``k``, the subspace dimension (80 is common on Office-Caltech SURF features), capped
        at what both domains' rows allow. A float in (0, 1) chooses ``k``: the smallest
        dimension whose principal directions keep that share of the variance in *both*
        domains (see :func:`n_components_for_variance`). To choose it on labels instead,
        grid-search ``n_components`` in a pipeline (``featkit.align.make_da_pipeline``).
    center : bool, default=True
        Centre each domain on its own mean before projecting (PCA's and SKADA's
        convention). ``False`` projects raw rows, as the authors' code does on data
        already z-scored per domain.
    dtype : {"auto", "float32", "float64"}, default="auto"
        Precision of the eigendecompositions; ``auto`` is the input's (float32 features,
        as CNN embeddings are, run in float32, as scikit-learn's PCA does).
    backend, device
        As for :class:`featkit.align.CORAL`.

    Attributes
    ----------
    components_source_, components_target_ : ndarray of shape (n_features, k)
        ``Ps`` and ``Pt``, one principal direction per column.
    alignment_matrix_ : ndarray of shape (k, k)
        ``M = Ps' Pt``.
    explained_variance_ratio_source_, explained_variance_ratio_target_ : ndarray (k,)
    n_components_ : int
    """

    def __init__(
        self,
        n_components: int | float = 80,
        center: bool = True,
        dtype: str = "auto",
        backend: str = "numpy",
        device: str = "auto",
    ) -> None:
        self.n_components = n_components
        self.center = center
        self.dtype = dtype
        self.backend = backend
        self.device = device

    def _check_params(self, input_dtype: str = "float64") -> Backend:
        return check_subspace_params(self, input_dtype)

    def _fit(
        self, Xs: np.ndarray, Xt: np.ndarray, ys: np.ndarray | None, yt: np.ndarray | None = None
    ) -> None:
        be = self._check_params(np.result_type(Xs.dtype, Xt.dtype).name)
        limit = min(Xs.shape[0], Xt.shape[0], Xs.shape[1])
        k = k_fit = limit  # a variance share: all directions, to measure what each k keeps
        if isinstance(self.n_components, Integral):
            k = k_fit = min(int(self.n_components), limit)
        mean_s, Ps, var_s, total_s = be.principal_directions(be.asarray(Xs), k_fit)
        mean_t, Pt, var_t, total_t = be.principal_directions(be.asarray(Xt), k_fit)
        self._set_subspaces(be, (mean_s, Ps, var_s, total_s), (mean_t, Pt, var_t, total_t), k)

    def fit_moments(self, source: RunningMoments, target: RunningMoments) -> SubspaceAlignment:
        """Fit from each domain's mean and covariance accumulated batch by batch
        (:func:`featkit.stats.moments` over a :class:`~featkit.store.ShardStore`), for
        domains larger than memory: the same subspaces as ``fit_domains`` on the full
        arrays (in float64 with ``dtype="auto"``, the precision of the moments)."""
        be = self._check_params("float64")
        name = type(self).__name__
        check_moments(name, source, target)
        limit = min(source.n, target.n, source.dim)
        k = k_fit = limit
        if isinstance(self.n_components, Integral):
            k = k_fit = min(int(self.n_components), limit)
        domains = []
        for stats in (source, target):
            C = be.asarray(stats.covariance(ddof=1))
            domains.append((be.asarray(stats.mean), *be.directions_of_covariance(C, k_fit)))
        self._set_subspaces(be, domains[0], domains[1], k)
        self.n_features_in_ = source.dim
        return self

    def _set_subspaces(
        self, be: Backend, source: tuple[Any, ...], target: tuple[Any, ...], k: int
    ) -> None:
        """Keep ``k`` directions (chosen here for a variance share) of each domain's
        ``(mean, directions, variances, total variance)``, and the alignment."""
        (mean_s, Ps, var_s, total_s), (mean_t, Pt, var_t, total_t) = source, target
        total_s, total_t = total_s if total_s > 0 else 1.0, total_t if total_t > 0 else 1.0
        var_s, var_t = be.to_numpy(var_s), be.to_numpy(var_t)
        if not isinstance(self.n_components, Integral):
            k = n_components_for_variance(var_s / total_s, var_t / total_t, self.n_components)
        Ps, Pt = Ps[:, :k], Pt[:, :k]
        self.components_source_ = be.to_numpy(Ps)
        self.components_target_ = be.to_numpy(Pt)
        self.alignment_matrix_ = be.to_numpy(Ps.T @ Pt)
        self._source_map = be.to_numpy(Ps @ (Ps.T @ Pt))  # Ps M, applied in one product
        self.mean_source_ = be.to_numpy(mean_s)
        self.mean_target_ = be.to_numpy(mean_t)
        self.explained_variance_ratio_source_ = var_s[:k] / total_s
        self.explained_variance_ratio_target_ = var_t[:k] / total_t
        self.n_components_ = self.n_features_out_ = int(k)

    def _transform_source(self, X: np.ndarray) -> np.ndarray:
        Xc = X - self.mean_source_ if self.center else X
        return Xc.astype(self._source_map.dtype, copy=False) @ self._source_map

    def _transform_target(self, X: np.ndarray) -> np.ndarray:
        Xc = X - self.mean_target_ if self.center else X
        return Xc.astype(self.components_target_.dtype, copy=False) @ self.components_target_


def n_components_for_variance(ratio_source: Any, ratio_target: Any, share: float) -> int:
    """The smallest k whose top-k principal directions keep ``share`` of the variance in
    both domains (``ratio_*``: explained variance ratios, in decreasing order)."""
    needed = 1
    for ratios in (ratio_source, ratio_target):
        cumulative = np.cumsum(np.asarray(ratios, dtype=np.float64))
        reached = np.flatnonzero(cumulative >= share - 1e-12)
        needed = max(needed, int(reached[0]) + 1 if len(reached) else len(cumulative))
    return needed


def check_subspace_params(aligner: Aligner, input_dtype: str) -> Backend:
    """Check the parameters subspace aligners share (``n_components``: a dimension or a
    share of variance; ``center``; ``dtype``, ``backend``, ``device``) and return the
    backend they ask for."""
    name = type(aligner).__name__
    k = aligner.n_components
    if isinstance(k, bool) or not isinstance(k, Integral | Real):
        raise InvalidParameterError(f"{name}: n_components must be a number, got {k!r}")
    if isinstance(k, Integral) and k < 1:
        raise InvalidParameterError(f"{name}: n_components must be >= 1, got {k}")
    if not isinstance(k, Integral) and not 0 < k < 1:
        raise InvalidParameterError(
            f"{name}: a float n_components is a share of variance in (0, 1), got {k}"
        )
    check_bool(name, "center", aligner.center)
    dtype = input_dtype if aligner.dtype == "auto" else aligner.dtype
    return make_backend(aligner.backend, dtype, aligner.device, name)

"""Improved Fisher vectors: the ``fisher`` encoder (optional PCA, diagonal GMM)."""

from __future__ import annotations

import itertools
import warnings
from typing import Any

import numpy as np
from sklearn.exceptions import ConvergenceWarning

from featkit.exceptions import InvalidParameterError
from featkit.extractors.encoding.base import PUBLIC_MODULE, LocalEncoder, _check_power
from featkit.extractors.encoding.kernels import (
    _fisher_from_stats,
    _fisher_stats,
    _kmeans_mixture,
    fisher_vector,
    gmm_posteriors,
    pca_basis,
)
from featkit.registry import register_extractor
from featkit.validation import check_int

__all__ = ["FisherVectorEncoder"]


@register_extractor("fisher")
class FisherVectorEncoder(LocalEncoder):
    """Improved Fisher vectors (Perronnin et al. 2010) on a diagonal Gaussian mixture.

    Descriptors are optionally projected by PCA (``pca_dim``: VLFeat/PHOW practice, which
    decorrelates them for the diagonal model), then a
    ``sklearn.mixture.GaussianMixture(covariance_type="diag", random_state=seed)`` is fitted
    with ``reg_covar`` = 1e-4 x the largest per-dimension variance (VLFeat's variance floor).
    The vector holds the gradients with respect to the means then the standard deviations
    (2 x n_components x D per cell, each (K, D) row-major), signed power ``power`` + L2 per
    cell. With a spatial pyramid, a level of n cells is weighted by 1/sqrt(n) (1/s for s x s
    cells) and the whole vector is L2-normalised. Images without descriptors give zeros.
    ``dsift-fisher-chatfield2011`` is the published recipe (docs/extractors.md).

    Parameters
    ----------
    local : str or LocalExtractor, default="dsift"
        Local descriptor extractor: a registered name or an instance (its parameters are
        nested: ``local__step``).
    n_components : int, default=64
        Gaussians in the mixture.
    pca_dim : int or None, default=64
        Dimensions kept by PCA of the descriptors before the mixture; None keeps them all.
    power : float, default=0.5
        Exponent of the signed power normalisation (1 disables it).
    pyramid : tuple of int or (rows, cols) pairs, default=(1,)
        Spatial pyramid levels: grid sides, e.g. (1, 2) for 1x1 + 2x2 cells, or (rows, cols)
        grids: (1, 2, (3, 1)) adds three horizontal bands (Chatfield et al. 2011).
    n_iter : int, default=100
        Maximum EM iterations of the mixture.
    max_descriptors : int, default=100000
        Size of the seeded uniform subsample of training descriptors PCA and EM run on.
    seed : int, default=0
        Seed of the subsample, PCA and the mixture.
    """

    __module__ = PUBLIC_MODULE  # config["class"] and pickles as before the split

    name = "fisher"

    version = "1"

    def __init__(
        self,
        local: Any = "dsift",
        n_components: int = 64,
        pca_dim: int | None = 64,
        power: float = 0.5,
        pyramid: tuple[int, ...] = (1,),
        n_iter: int = 100,
        max_descriptors: int = 100_000,
        seed: int = 0,
    ) -> None:
        self.local = local
        self.n_components = n_components
        self.pca_dim = pca_dim
        self.power = power
        self.pyramid = pyramid
        self.n_iter = n_iter
        self.max_descriptors = max_descriptors
        self.seed = seed

    def validate_params(self) -> None:
        label = self._label
        check_int(label, "n_components", self.n_components, 1, 2**14)
        if self.pca_dim is not None:
            check_int(label, "pca_dim", self.pca_dim, 1)
        _check_power(label, self.power)
        super().validate_params()

    def _cell_dim(self) -> int | None:
        fitted = self.__dict__.get("gmm_means_")
        if fitted is not None:
            d = fitted.shape[1]
        elif self.pca_dim is not None:
            d = int(self.pca_dim)
        else:
            d = self._descriptor_dim()
        return None if d is None else 2 * int(self.n_components) * d

    def _element_names(self) -> list[str]:
        k = int(self.n_components)
        d = self._cell_dim() // (2 * k)
        return [f"{g}{i}_d{j}" for g in ("mu", "sigma") for i in range(k) for j in range(d)]

    def _vocabulary_input_dim(self) -> int:
        return self.gmm_means_.shape[1] if self.pca_components_ is None else len(self.pca_mean_)

    def _fit_vocabulary(self, sample: np.ndarray) -> None:
        from sklearn.mixture import GaussianMixture
        from threadpoolctl import threadpool_limits

        d = sample.shape[1]
        k = int(self.n_components)
        if self.pca_dim is not None:
            if int(self.pca_dim) > min(d, len(sample)):
                raise InvalidParameterError(
                    f"{self._label}: pca_dim={self.pca_dim} exceeds the descriptor dimension "
                    f"{d} or the {len(sample)} training descriptors"
                )
            self.pca_mean_, self.pca_components_ = pca_basis(sample, int(self.pca_dim))
        else:
            self.pca_mean_ = None
            self.pca_components_ = None
        x = np.asarray(self._project(sample), dtype=np.float64)
        if len(x) < k:
            raise InvalidParameterError(
                f"{self._label}: the mixture needs at least n_components={k} descriptors, "
                f"got {len(x)}: give more training images or fewer components"
            )
        reg = max(1e-4 * float(x.var(axis=0).max()), 1e-10)
        weights, means, variances = _kmeans_mixture(x, k, reg, int(self.seed))
        gmm = GaussianMixture(
            n_components=k,
            covariance_type="diag",
            reg_covar=reg,
            max_iter=int(self.n_iter),
            random_state=int(self.seed),
            init_params="random",  # overridden by the k-means initial mixture below
            weights_init=weights,
            means_init=means,
            precisions_init=1.0 / variances,
        )
        # One BLAS/OpenMP thread: the mixture is then the same on any machine, and EM's thin
        # matrix products gain little from threads (and lose much on a busy machine).
        with threadpool_limits(limits=1), warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            gmm.fit(x)
        self.gmm_reg_covar_ = reg
        self.gmm_weights_ = gmm.weights_.astype(np.float64)
        self.gmm_means_ = gmm.means_.astype(np.float64)
        self.gmm_covariances_ = gmm.covariances_.astype(np.float64)
        self.gmm_converged_ = bool(gmm.converged_)
        self.gmm_n_iter_ = int(gmm.n_iter_)

    def _project(self, x: np.ndarray) -> np.ndarray:
        if self.pca_components_ is None:
            return x
        return (x - self.pca_mean_) @ self.pca_components_.T

    def _codes(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        z = self._project(x.astype(np.float64))
        return z, gmm_posteriors(z, self.gmm_weights_, self.gmm_means_, self.gmm_covariances_)

    def _cell(self, codes: tuple[np.ndarray, np.ndarray], mask: np.ndarray) -> np.ndarray:
        z, post = codes
        if not mask.any():
            return np.zeros(2 * self.gmm_means_.size)
        return fisher_vector(
            z[mask],
            self.gmm_weights_,
            self.gmm_means_,
            self.gmm_covariances_,
            posteriors=post[mask],
            power=float(self.power),
        )

    def _blocks(
        self, codes: tuple[np.ndarray, np.ndarray], levels: list[tuple[int, np.ndarray]]
    ) -> list[np.ndarray]:
        """Every cell's Fisher vector from statistics summed over the cells' common parts.

        The descriptors are split once into the pieces that no level's cell boundary
        crosses (1x1 + 2x2 + 3x1: 8 pieces); each piece's sufficient statistics are
        computed once and a cell's are the sum of its pieces'. Each descriptor then enters
        one product with the posteriors instead of one per level (3x faster for 3 levels);
        the vectors are those of ``_cell`` up to rounding.
        """
        z, post = codes
        piece = np.zeros(len(z), dtype=np.int64)
        for n, ids in levels:  # renumbered at each level: no overflow, whatever the grids
            piece = np.unique(piece * n + ids, return_inverse=True)[1].reshape(-1)
        _, first, inverse, counts = np.unique(
            piece, return_index=True, return_inverse=True, return_counts=True
        )
        order = np.argsort(inverse, kind="stable")
        bounds = np.concatenate([[0], np.cumsum(counts)])
        stats = [
            _fisher_stats(z[rows], post[rows])
            for rows in (order[a:b] for a, b in itertools.pairwise(bounds))
        ]
        params = (self.gmm_weights_, self.gmm_means_, self.gmm_covariances_, float(self.power))
        blocks = []
        for n, ids in levels:
            cell_of_piece = ids[first]
            cells = []
            for c in range(n):
                members = np.flatnonzero(cell_of_piece == c)
                if len(members) == 0:
                    cells.append(np.zeros(2 * self.gmm_means_.size))
                    continue
                s0, s1, s2 = (sum(stats[m][i] for m in members) for i in range(3))
                cells.append(
                    _fisher_from_stats(s0, s1, s2, int(counts[members].sum()), *params, True)
                )
            blocks.append(np.stack(cells))
        return blocks

    def _finish(self, blocks: list[np.ndarray]) -> np.ndarray:
        return self._finish_cellwise(blocks)

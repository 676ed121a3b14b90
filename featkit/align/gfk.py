"""GFK: the geodesic flow kernel (Gong, Shi, Sha and Grauman, CVPR 2012).

``Ps`` and ``Pt`` (D x d) span the top-d principal subspaces of the source and of the
target. The geodesic ``Phi(t)`` joins them on the Grassmann manifold (``Phi(0) = Ps``,
``Phi(1)`` spans ``Pt``), and the kernel integrates the projections onto every subspace
along it::

    G = int_0^1 Phi(t) Phi(t)' dt = [Ps U1, Rs U2] [[L1, L2], [L2, L3]] [Ps U1, Rs U2]'

with the principal angles ``theta`` between the subspaces and, per angle,
``L1 = (1 + sin 2theta / 2theta) / 2``, ``L2 = (cos 2theta - 1) / (2 * 2theta)``,
``L3 = (1 - sin 2theta / 2theta) / 2`` (the paper's Lambdas with the integral's 1/2, as in
the authors' ``GFK.m``). Rows are mapped to ``x L`` with ``L L' = G`` (2d columns), so
Euclidean distances and dot products of the mapped rows are the kernel's: a 1-NN on them
is the authors' kernel 1-NN.
"""

from __future__ import annotations

from numbers import Integral
from typing import Any

import numpy as np
from sklearn.utils.validation import check_is_fitted

from featkit.align._linalg import Backend
from featkit.align.base import Aligner
from featkit.align.subspace import check_subspace_params, n_components_for_variance
from featkit.exceptions import InvalidParameterError

__all__ = ["GFK", "geodesic_flow_embedding"]


class GFK(Aligner):
    """Geodesic flow kernel: integrate over the subspaces between the source's and the
    target's principal subspaces.

    Parameters
    ----------
    n_components : int or float, default=20
        ``d``, the dimension of both principal subspaces, capped at what both domains' rows
        allow. The GFK paper uses 10 or 20 on Office-Caltech SURF features (its released
        demo lists the dimension of each pair), the JDA paper 100 on USPS/MNIST pixels. A
        float in (0, 1): the smallest ``d`` whose principal directions keep that share of
        the variance in both domains, as for :class:`SubspaceAlignment`.
    center : bool, default=False
        Centre each domain on its own mean before mapping. ``False`` maps the rows as they
        are, as the authors' kernel ``x' G y`` does (their features are z-scored per
        domain, hence already centred); the subspaces are always those of centred PCA.
    dtype : {"auto", "float32", "float64"}, default="auto"
        Precision of the principal subspaces and of the mapping; ``auto`` is the input's.
        The principal angles and the kernel's factor are computed in float64.
    backend, device
        As for :class:`featkit.align.CORAL` (the PCA runs there).

    Attributes
    ----------
    components_source_, components_target_ : ndarray of shape (n_features, d)
        ``Ps`` and ``Pt``, one principal direction per column.
    principal_angles_ : ndarray of shape (d,)
        The principal angles between the subspaces (radians, ascending).
    transform_matrix_ : ndarray of shape (n_features, 2 * d)
        ``L`` with ``L L' = G``: rows are mapped to ``X @ L``.
    mean_source_, mean_target_ : ndarray of shape (n_features,)
    explained_variance_ratio_source_, explained_variance_ratio_target_ : ndarray (d,)
    n_components_ : int
        ``d``; the output has ``2 * d`` columns.
    """

    def __init__(
        self,
        n_components: int | float = 20,
        center: bool = False,
        dtype: str = "auto",
        backend: str = "numpy",
        device: str = "auto",
    ) -> None:
        self.n_components = n_components
        self.center = center
        self.dtype = dtype
        self.backend = backend
        self.device = device

    def _check_params(self, input_dtype: str) -> Backend:
        return check_subspace_params(self, input_dtype)

    def _fit(
        self, Xs: np.ndarray, Xt: np.ndarray, ys: np.ndarray | None, yt: np.ndarray | None = None
    ) -> None:
        be = self._check_params(np.result_type(Xs.dtype, Xt.dtype).name)
        limit = min(Xs.shape[0], Xt.shape[0], Xs.shape[1])
        k = limit  # a variance share: all directions, to measure what each k keeps
        if isinstance(self.n_components, Integral):
            k = min(int(self.n_components), limit)
        mean_s, Ps, var_s, total_s = be.principal_directions(be.asarray(Xs), k)
        mean_t, Pt, var_t, total_t = be.principal_directions(be.asarray(Xt), k)
        ratio_s = be.to_numpy(var_s) / (total_s if total_s > 0 else 1.0)
        ratio_t = be.to_numpy(var_t) / (total_t if total_t > 0 else 1.0)
        if not isinstance(self.n_components, Integral):
            k = n_components_for_variance(ratio_s, ratio_t, self.n_components)
        Ps, Pt = be.to_numpy(Ps)[:, :k], be.to_numpy(Pt)[:, :k]
        L, theta = geodesic_flow_embedding(Ps, Pt)
        self.components_source_, self.components_target_ = Ps, Pt
        self.principal_angles_ = theta
        self.transform_matrix_ = L.astype(be.dtype)
        self.mean_source_, self.mean_target_ = be.to_numpy(mean_s), be.to_numpy(mean_t)
        self.explained_variance_ratio_source_ = ratio_s[:k]
        self.explained_variance_ratio_target_ = ratio_t[:k]
        self.n_components_ = int(k)
        self.n_features_out_ = 2 * int(k)

    def geodesic_kernel(self) -> np.ndarray:
        """``G`` (n_features x n_features): the kernel is ``k(x, y) = x' G y``."""
        check_is_fitted(self)
        L = self.transform_matrix_.astype(np.float64)
        return L @ L.T

    def _map(self, X: np.ndarray, mean: np.ndarray) -> np.ndarray:
        Xc = X - mean if self.center else X
        return Xc.astype(self.transform_matrix_.dtype, copy=False) @ self.transform_matrix_

    def _transform_source(self, X: np.ndarray) -> np.ndarray:
        return self._map(X, self.mean_source_)

    def _transform_target(self, X: np.ndarray) -> np.ndarray:
        return self._map(X, self.mean_target_)


def geodesic_flow_embedding(Ps: Any, Pt: Any) -> tuple[np.ndarray, np.ndarray]:
    """``(L, theta)``: ``L`` (D x 2d) with ``L L'`` the geodesic flow kernel from the
    subspace spanned by the orthonormal columns of ``Ps`` to that of ``Pt`` (both D x d),
    and the principal angles ``theta`` (ascending)."""
    Ps, Pt = np.asarray(Ps, dtype=np.float64), np.asarray(Pt, dtype=np.float64)
    if Ps.ndim != 2 or Ps.shape != Pt.shape:
        raise InvalidParameterError(
            f"GFK: the two bases must have the same shape (D, d), got {Ps.shape} and {Pt.shape}"
        )
    U1, cos, Vt = np.linalg.svd(Ps.T @ Pt)
    PtV = Pt @ Vt.T
    # (I - Ps Ps') Pt V = -Rs U2 Sigma: the complement's part of each target direction,
    # with the sines as its column norms. Rs (D x (D - d)) itself is never formed, so
    # wide features cost O(D d^2), and d > D / 2 (subspaces that must intersect) works.
    B = PtV - Ps @ (Ps.T @ PtV)
    sin = np.linalg.norm(B, axis=0)
    # arctan2 of both is accurate at every angle; arccos(cos) loses half the digits of
    # small angles, where the kernel's weights are most sensitive.
    theta = np.arctan2(sin, np.clip(cos, 0.0, None))
    l1, l2, l3 = _lambdas(theta)
    # Per angle, the 2 x 2 block [[l1, l2], [l2, l3]] is positive semi-definite with trace
    # 1; its square root is (A + r I) / sqrt(1 + 2 r) with r = sqrt(det A).
    r = np.sqrt(np.clip(l1 * l3 - l2**2, 0.0, None))
    scale = 1.0 / np.sqrt(1.0 + 2.0 * r)
    a11, a12, a22 = (l1 + r) * scale, l2 * scale, (l3 + r) * scale
    source_dirs = Ps @ U1  # Ps U1
    # Rs U2 = -B / sin; an angle of 0 has no complement direction, and its weights vanish.
    comp_dirs = -np.divide(B, sin, out=np.zeros_like(B), where=sin > 0)
    L = np.hstack([source_dirs * a11 + comp_dirs * a12, source_dirs * a12 + comp_dirs * a22])
    order = np.argsort(theta, kind="stable")  # the SVD gives descending cosines already
    d = len(theta)
    return L[:, np.concatenate([order, order + d])], theta[order]


def _lambdas(theta: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The integrals of cos^2, -cos sin and sin^2 of ``t theta`` over t in [0, 1]."""
    sinc = np.sinc(2.0 * theta / np.pi)  # sin(2 theta) / (2 theta), 1 at 0
    # -sin^2 / (2 theta) rather than the paper's (cos 2theta - 1) / (4 theta): the same
    # value, without the cancellation that the division by a small angle would amplify.
    safe = np.where(theta > 0, theta, 1.0)
    l2 = np.where(theta > 0, -(np.sin(theta) ** 2) / (2.0 * safe), 0.0)
    return 0.5 * (1.0 + sinc), l2, 0.5 * (1.0 - sinc)

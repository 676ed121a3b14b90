"""The generalized eigenproblem shared by TCA and JDA.

Both find a projection ``W`` that keeps the variance of the pooled data (``F' H F``, H the
centring matrix) while shrinking the maximum mean discrepancy between the domains
(``F' M F``, M a sum of rank-one terms ``e e'`` over mean-difference vectors ``e``)::

    F' H F w = phi (mu F' M F + lam I) w,      the k largest phi

with ``F`` the data (primal form, d x d matrices) or a kernel matrix (n x n). Building the
matrices from the ``e`` vectors keeps them at O(n k) memory instead of n x n.
"""

from __future__ import annotations

import numpy as np
import scipy.linalg

__all__ = ["centred_scatter", "leading_generalized_eigvecs", "mmd_scatter"]


def centred_scatter(F: np.ndarray) -> np.ndarray:
    """``F' H F`` with ``H = I - 1/n 11'``: the scatter of the rows of F around their mean."""
    Fc = F - F.mean(0)
    return Fc.T @ Fc


def mmd_scatter(F: np.ndarray, vectors: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """``F' M F`` for ``M = sum_j weights[j] * e_j e_j'`` (``vectors``: one e_j per column)."""
    G = F.T @ vectors  # (p, m): F' e_j
    return (G * weights) @ G.T


def leading_generalized_eigvecs(
    B: np.ndarray, A: np.ndarray, n_components: int
) -> tuple[np.ndarray, np.ndarray]:
    """The ``n_components`` largest eigenpairs of ``B w = phi A w`` (A positive definite),
    largest first, each vector with its largest-magnitude entry positive (a fixed sign)."""
    p = B.shape[0]
    k = min(n_components, p)
    B = (B + B.T) / 2  # exact symmetry: rounding in the products breaks it slightly
    A = (A + A.T) / 2
    w, V = scipy.linalg.eigh(B, A, subset_by_index=(p - k, p - 1))
    w, V = w[::-1], V[:, ::-1]
    rows = np.argmax(np.abs(V), axis=0)
    signs = np.sign(V[rows, np.arange(V.shape[1])])
    signs[signs == 0] = 1
    return w, V * signs

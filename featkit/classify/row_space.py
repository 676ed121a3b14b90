"""The span of the training rows, where an l2-penalised linear model's weights lie.

For features X (n x d) centred by their weighted mean mu, the minimiser W (k x d) of any
loss of the logits ``(X - mu) W^T + c`` plus ``||W||^2 / (2 C)`` is a combination of the
centred rows (the representer theorem): a component orthogonal to them changes no logit
and only adds to the penalty. With the Gram matrix ``K = (X - mu)(X - mu)^T = U S U^T``,
the rows' coordinates ``Z = U S^(1/2)`` (n x r) keep every inner product, so the problem
over ``W_z`` (k x r) on Z has the same logits and penalty as the one over W on X, and
``W = W_z S^(-1/2) U^T (X - mu)``.

When d is far above n (the published Fisher vector recipe: 327,680-d for the 3,060
training images of Caltech-101), this replaces every L-BFGS iteration over k x d weights
by one pass forming K, one n x n eigendecomposition and one pass mapping the solution back;
the device holds one block of columns at a time, never a copy of X.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = ["RowSpace", "fingerprint", "fit_row_space"]

#: Bytes of one column block of X on the device (a float32 copy of n x cols).
BLOCK_BYTES = 2**28
#: Directions whose Gram eigenvalue is below this share of the largest are dropped: K is
#: summed from float32 products, whose rounding leaves eigenvalues of that order where the
#: centred rows have none (the centring itself removes one direction).
RTOL = {np.dtype(np.float32): 1e-6, np.dtype(np.float64): 1e-12}


@dataclass
class RowSpace:
    """An orthonormal basis of the span of centred training rows, as coordinates of the rows.

    ``coords`` (n x r) are the rows in that basis (``coords @ coords.T`` is the centred
    Gram matrix); ``basis`` (n x r, ``U S^(-1/2)``) maps weights over ``coords`` back to
    weights over the features; ``mean`` is the weighted feature mean the rows were centred
    by; ``fingerprint`` identifies the rows and weights it was computed from.
    """

    mean: np.ndarray
    coords: np.ndarray
    basis: np.ndarray
    fingerprint: tuple[Any, ...]

    def to_features(self, X: np.ndarray, W_z: np.ndarray, device: Any) -> np.ndarray:
        """Weights over the features (k x d) of weights ``W_z`` (k x r) over ``coords``."""
        import torch

        A = torch.from_numpy(W_z.astype(np.float64) @ self.basis.T).to(device)  # k x n
        W = np.empty((len(W_z), X.shape[1]), dtype=X.dtype)
        for cols, block in _centred_blocks(X, self.mean, device):
            W[:, cols] = (A.to(block.dtype) @ block).cpu().numpy()
        return W

    def to_coords(self, X: np.ndarray, W: np.ndarray, device: Any) -> np.ndarray:
        """Weights over ``coords`` (k x r) of weights ``W`` (k x d) over the features,
        projected on the span (exact for weights that lie in it)."""
        import torch

        WX = torch.zeros((len(W), X.shape[0]), dtype=torch.float64, device=device)
        for cols, block in _centred_blocks(X, self.mean, device):
            Wb = torch.from_numpy(np.ascontiguousarray(W[:, cols], dtype=X.dtype)).to(device)
            WX += (Wb @ block.T).double()
        return WX.cpu().numpy() @ self.basis


def fingerprint(X: np.ndarray, weights: np.ndarray, centre: bool) -> tuple[Any, ...]:
    """What identifies the rows, weights and centring a :class:`RowSpace` was computed from.

    X times a fixed random vector (one pass, no copy): two different matrices give equal
    products only on a set of vectors of measure zero.
    """
    probe = np.random.default_rng(0).standard_normal(X.shape[1]).astype(X.dtype)
    return X.shape, X.dtype.str, (X @ probe).tobytes(), np.asarray(weights).tobytes(), centre


def fit_row_space(
    X: np.ndarray, weights: np.ndarray, device: Any, *, centre: bool = True
) -> RowSpace | None:
    """The span of ``X``'s rows, centred by their ``weights``-mean (weights summing to one)
    when ``centre``; None when those rows are all zero."""
    import torch

    mean = np.zeros(X.shape[1])
    step = _block_columns(X)
    for start in range(0, X.shape[1] if centre else 0, step):
        # column by column block: X.T.astype(float64) at once would copy X
        mean[start : start + step] = weights @ X[:, start : start + step].astype(np.float64)
    mean = mean.astype(X.dtype)
    K = torch.zeros((X.shape[0], X.shape[0]), dtype=torch.float64, device=device)
    for _, block in _centred_blocks(X, mean, device):
        K += (block @ block.T).double()
    S, U = torch.linalg.eigh(K)
    S, U = S.cpu().numpy(), U.cpu().numpy()
    keep = S > S[-1] * RTOL[X.dtype] if S[-1] > 0 else np.zeros(len(S), dtype=bool)
    if not keep.any():
        return None
    S, U = S[keep], U[:, keep]
    root = np.sqrt(S)
    return RowSpace(
        mean=mean,
        coords=np.ascontiguousarray((U * root).astype(X.dtype)),
        basis=U / root,
        fingerprint=fingerprint(X, weights, centre),
    )


def _block_columns(X: np.ndarray) -> int:
    """Columns per block: ``BLOCK_BYTES`` of X's rows."""
    return max(1, BLOCK_BYTES // (X.dtype.itemsize * X.shape[0]))


def _centred_blocks(X: np.ndarray, mean: np.ndarray, device: Any) -> Iterator[tuple[slice, Any]]:
    """Column blocks of ``X - mean`` on ``device``, with the columns they cover."""
    import torch

    step = _block_columns(X)
    for start in range(0, X.shape[1], step):
        cols = slice(start, min(start + step, X.shape[1]))
        block = torch.from_numpy(np.ascontiguousarray(X[:, cols])).to(device)
        yield cols, block - torch.from_numpy(mean[cols]).to(device)

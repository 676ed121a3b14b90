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
the device holds one block of columns at a time, never a copy of X. Standardised features
``(X - shift) / scale`` are formed block by block the same way, so a standardised problem
needs no standardised copy either.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = [
    "RowSpace",
    "fingerprint",
    "fit_row_space",
    "from_transformed",
    "to_transformed",
    "weighted_moments",
]

#: Bytes of one column block of X on the device (a float32 copy of n x cols).
BLOCK_BYTES = 2**28
#: Directions whose Gram eigenvalue is below this share of the largest are dropped: K is
#: summed from float32 products, whose rounding leaves eigenvalues of that order where the
#: centred rows have none (the centring itself removes one direction).
RTOL = {np.dtype(np.float32): 1e-6, np.dtype(np.float64): 1e-12}


@dataclass
class RowSpace:
    """An orthonormal basis of the span of the rows ``(X - shift) / scale``, as coordinates
    of those rows.

    ``coords`` (n x r) are the rows in that basis (``coords @ coords.T`` is their Gram
    matrix); ``basis`` (n x r, ``U S^(-1/2)``) maps weights over ``coords`` back to
    weights over the (shifted and scaled) features; ``fingerprint``, when the caller gave
    one, identifies the rows, weights and transformation it was computed from.
    """

    shift: np.ndarray
    scale: np.ndarray | None
    coords: np.ndarray
    basis: np.ndarray
    fingerprint: tuple[Any, ...] | None = None

    def to_features(self, X: np.ndarray, W_z: np.ndarray, device: Any) -> np.ndarray:
        """Weights over the features (k x d) of weights ``W_z`` (k x r) over ``coords``."""
        import torch

        A = torch.from_numpy(W_z.astype(np.float64) @ self.basis.T).to(device)  # k x n
        W = np.empty((len(W_z), X.shape[1]), dtype=X.dtype)
        for cols, block in _blocks(X, self.shift, self.scale, device):
            W[:, cols] = (A.to(block.dtype) @ block).cpu().numpy()
        return W

    def to_coords(self, X: np.ndarray, W: np.ndarray, device: Any) -> np.ndarray:
        """Weights over ``coords`` (k x r) of weights ``W`` (k x d) over the features,
        projected on the span (exact for weights that lie in it)."""
        import torch

        WX = torch.zeros((len(W), X.shape[0]), dtype=torch.float64, device=device)
        for cols, block in _blocks(X, self.shift, self.scale, device):
            Wb = torch.from_numpy(np.ascontiguousarray(W[:, cols], dtype=X.dtype)).to(device)
            WX += (Wb @ block.T).double()
        return WX.cpu().numpy() @ self.basis


def fingerprint(X: np.ndarray, weights: np.ndarray, how: Any) -> tuple[Any, ...]:
    """What identifies the rows, weights and transformation (``how``) a :class:`RowSpace`
    was computed from.

    X times a fixed random vector (one pass, no copy): two different matrices give equal
    products only on a set of vectors of measure zero.
    """
    probe = np.random.default_rng(0).standard_normal(X.shape[1]).astype(X.dtype)
    return X.shape, X.dtype.str, (X @ probe).tobytes(), np.asarray(weights).tobytes(), how


def fit_row_space(
    X: np.ndarray,
    weights: np.ndarray,
    device: Any,
    *,
    centre: bool = True,
    standardize: bool = False,
    key: tuple[Any, ...] | None = None,
) -> RowSpace | None:
    """The span of ``X``'s rows, centred by their ``weights``-mean (weights summing to one)
    when ``centre`` or ``standardize``, and divided by their weighted standard deviation
    (scikit-learn's ``StandardScaler``, constant columns left unscaled) when
    ``standardize``; None when those rows are all zero. ``key`` is kept as its
    ``fingerprint``."""
    import torch

    shift, scale = weighted_moments(X, weights, centre or standardize, standardize)
    K = torch.zeros((X.shape[0], X.shape[0]), dtype=torch.float64, device=device)
    for _, block in _blocks(X, shift, scale, device):
        K += (block @ block.T).double()
    S, U = torch.linalg.eigh(K)
    S, U = S.cpu().numpy(), U.cpu().numpy()
    keep = S > S[-1] * RTOL[X.dtype] if S[-1] > 0 else np.zeros(len(S), dtype=bool)
    if not keep.any():
        return None
    S, U = S[keep], U[:, keep]
    root = np.sqrt(S)
    return RowSpace(
        shift=shift,
        scale=scale,
        coords=np.ascontiguousarray((U * root).astype(X.dtype)),
        basis=U / root,
        fingerprint=key,
    )


def weighted_moments(
    X: np.ndarray, weights: np.ndarray, mean: bool = True, scale: bool = False
) -> tuple[np.ndarray, np.ndarray | None]:
    """The columns' ``weights``-mean (zeros unless ``mean``) and standard deviation (None
    unless ``scale``), summed in float64 a block of columns at a time, returned in ``X``'s
    dtype.

    The standard deviation is scikit-learn's ``StandardScaler.scale_``: 1 for a column
    whose variance is within float64 rounding of zero. (``StandardScaler.fit`` itself holds
    ``X - mean`` in float64: twice the memory of float32 features.)
    """
    shift = np.zeros(X.shape[1])
    std = np.ones(X.shape[1]) if scale else None
    step = _block_columns(X) // 2  # a float64 block
    for start in range(0, X.shape[1] if mean or scale else 0, max(1, step)):
        block = X[:, start : start + max(1, step)].astype(np.float64)
        mu = weights @ block
        shift[start : start + len(mu)] = mu
        if std is not None:
            block -= mu
            var = weights @ (block * block)
            n = len(X)
            # scikit-learn's _is_constant_feature: the variance's own rounding error bound
            eps = np.finfo(np.float64).eps
            constant = var <= n * eps * var + (n * mu * eps) ** 2
            std[start : start + len(mu)] = np.where(constant, 1.0, np.sqrt(var))
    return shift.astype(X.dtype), None if std is None else std.astype(X.dtype)


def to_transformed(
    previous: tuple[np.ndarray, np.ndarray] | None,
    shift: np.ndarray,
    scale: np.ndarray | None,
) -> tuple[np.ndarray, np.ndarray] | None:
    """A solution ``(coef, intercept)`` over the features as given, as one over
    ``(X - shift) / scale`` (None when there is none, or it was fitted on other features)."""
    if previous is None or np.shape(previous[0])[-1] != len(shift):
        return None
    coef, intercept = (np.asarray(p, dtype=np.float64) for p in previous)
    scaled = coef if scale is None else coef * scale
    return scaled, intercept + coef @ shift.astype(np.float64)


def from_transformed(
    W: np.ndarray, b: np.ndarray, shift: np.ndarray, scale: np.ndarray | None, loss: str
) -> tuple[np.ndarray, np.ndarray]:
    """A solution over ``(X - shift) / scale`` as one over the features as given."""
    coef = W.astype(np.float64)
    if scale is not None:
        coef = coef / scale
    intercept = b.astype(np.float64) - coef @ shift.astype(np.float64)
    if len(intercept) > 1 and loss == "log_loss":
        intercept -= intercept.mean()  # scikit-learn's softmax intercepts sum to zero
    return coef.astype(W.dtype), intercept.astype(W.dtype)


def _block_columns(X: np.ndarray) -> int:
    """Columns per block: ``BLOCK_BYTES`` of X's rows."""
    return max(1, BLOCK_BYTES // (X.dtype.itemsize * X.shape[0]))


def _blocks(
    X: np.ndarray, shift: np.ndarray, scale: np.ndarray | None, device: Any
) -> Iterator[tuple[slice, Any]]:
    """Column blocks of ``(X - shift) / scale`` on ``device``, with the columns they cover."""
    import torch

    step = _block_columns(X)
    for start in range(0, X.shape[1], step):
        cols = slice(start, min(start + step, X.shape[1]))
        # not in place: on the CPU, the one block of a narrow X is X itself
        block = torch.from_numpy(np.ascontiguousarray(X[:, cols])).to(device)
        block = block - torch.from_numpy(shift[cols]).to(device)
        if scale is not None:
            block = block / torch.from_numpy(scale[cols]).to(device)
        yield cols, block

"""Mean and covariance accumulated batch by batch, for data that does not fit in memory."""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from featkit.exceptions import InvalidParameterError

__all__ = ["RunningMoments", "check_moments", "moments"]

#: Rows converted to float64 at a time: 16 MB of copies at 128 dimensions, whatever the
#: size of the batch (a memory-mapped shard is paged in block by block).
BLOCK_ROWS = 16_384


class RunningMoments:
    """Count, mean and scatter matrix of rows seen so far, merged per batch in float64
    (Chan, Golub & LeVeque's pairwise update: no sum of squares that cancels)."""

    def __init__(self, dim: int) -> None:
        self.dim = int(dim)
        self.n = 0
        self.mean = np.zeros(self.dim)
        self.scatter = np.zeros((self.dim, self.dim))  # sum of (x - mean)(x - mean)'

    def update(self, X: np.ndarray) -> RunningMoments:
        """Add the rows of ``X`` (n, dim); a memory-mapped array is read block by block."""
        if X.ndim != 2 or X.shape[1] != self.dim:
            raise InvalidParameterError(
                f"update needs rows of shape (n, {self.dim}), got {X.shape}"
            )
        for start in range(0, len(X), BLOCK_ROWS):
            self._merge(np.asarray(X[start : start + BLOCK_ROWS], dtype=np.float64))
        return self

    def merge(self, other: RunningMoments) -> RunningMoments:
        """Add the rows another RunningMoments has seen (two domains pooled, say)."""
        if other.dim != self.dim:
            raise InvalidParameterError(f"cannot merge moments of {other.dim} and {self.dim} dims")
        self._combine(other.n, other.mean, other.scatter)
        return self

    def copy(self) -> RunningMoments:
        """An independent copy."""
        out = RunningMoments(self.dim)
        out._combine(self.n, self.mean, self.scatter)
        return out

    def _merge(self, X: np.ndarray) -> None:
        batch_mean = X.mean(axis=0)
        centred = X - batch_mean
        self._combine(len(X), batch_mean, centred.T @ centred)

    def _combine(self, m: int, batch_mean: np.ndarray, batch_scatter: np.ndarray) -> None:
        if m == 0:
            return
        delta = batch_mean - self.mean
        total = self.n + m
        self.scatter += batch_scatter + np.outer(delta, delta) * (self.n * m / total)
        self.mean += delta * (m / total)
        self.n = total

    def covariance(self, ddof: int = 1) -> np.ndarray:
        """The covariance matrix (``ddof=1``: the sample covariance, as ``np.cov``)."""
        if self.n <= ddof:
            raise InvalidParameterError(f"covariance needs more than {ddof} rows, got {self.n}")
        return self.scatter / (self.n - ddof)


def moments(batches: Iterable[np.ndarray], dim: int) -> RunningMoments:
    """RunningMoments over every batch of rows (a ShardStore's rows, chunk by chunk)."""
    running = RunningMoments(dim)
    for X in batches:
        running.update(X)
    return running


def check_moments(owner: str, source: RunningMoments, target: RunningMoments) -> None:
    """Refuse two domains' moments that cannot be aligned: other dims, or under 2 rows."""
    if source.dim != target.dim:
        raise InvalidParameterError(
            f"{owner}: source moments of {source.dim} features, target of {target.dim}"
        )
    for role, stats in (("source", source), ("target", target)):
        if stats.n < 2:
            raise InvalidParameterError(f"{owner}: the {role} has {stats.n} row(s); need 2")

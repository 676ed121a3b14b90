"""The dense linear algebra of the aligners, on numpy or on torch (CPU or GPU).

Every function takes and returns arrays of the backend in use (``Backend.asarray`` moves
data in, ``Backend.to_numpy`` out), so CORAL and Subspace Alignment are written once and
run in float64 or float32, on numpy/LAPACK or on torch's CPU or CUDA kernels.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from featkit.devices import resolve_torch_device
from featkit.exceptions import InvalidParameterError

__all__ = ["BACKENDS", "DTYPES", "Backend", "make_backend"]

BACKENDS = ("numpy", "torch")
DTYPES = ("float32", "float64")


@dataclass(frozen=True)
class Backend:
    """Where and in which precision the algebra runs: ``numpy`` or ``torch`` on ``device``."""

    name: str
    dtype: str
    device: str = "cpu"

    def asarray(self, X: Any) -> Any:
        """``X`` as a contiguous array of this backend, dtype and device."""
        if self.name == "numpy":
            return np.ascontiguousarray(X, dtype=self.dtype)
        import torch

        if isinstance(X, torch.Tensor):
            return X.to(device=self.device, dtype=getattr(torch, self.dtype))
        array = np.ascontiguousarray(X, dtype=self.dtype)
        return torch.from_numpy(array).to(self.device)

    def to_numpy(self, A: Any) -> np.ndarray:
        """``A`` as a numpy array on the host."""
        if isinstance(A, np.ndarray):
            return A
        return A.detach().cpu().numpy()

    def eye(self, n: int) -> Any:
        if self.name == "numpy":
            return np.eye(n, dtype=self.dtype)
        import torch

        return torch.eye(n, dtype=getattr(torch, self.dtype), device=self.device)

    def eigh(self, C: Any) -> tuple[Any, Any]:
        """Ascending eigenvalues and the eigenvectors (columns) of a symmetric matrix."""
        if self.name == "numpy":
            return np.linalg.eigh(C)
        import torch

        return torch.linalg.eigh(C)

    def svd(self, X: Any) -> tuple[Any, Any, Any]:
        """Thin SVD ``U, S, Vt`` with descending singular values."""
        if self.name == "numpy":
            return np.linalg.svd(X, full_matrices=False)
        import torch

        return torch.linalg.svd(X, full_matrices=False)

    def clip_min(self, w: Any, low: float) -> Any:
        if self.name == "numpy":
            return np.maximum(w, low)
        return w.clamp(min=low)

    def argmax_abs_sign(self, V: Any) -> Any:
        """For each column of ``V``, the sign of its entry of largest magnitude."""
        if self.name == "numpy":
            rows = np.argmax(np.abs(V), axis=0)
            signs = np.sign(V[rows, np.arange(V.shape[1])])
            signs[signs == 0] = 1
            return signs
        import torch

        rows = torch.argmax(V.abs(), dim=0)
        signs = torch.sign(V[rows, torch.arange(V.shape[1], device=V.device)])
        signs[signs == 0] = 1
        return signs

    def covariance(self, X: Any, ddof: int = 1) -> tuple[Any, Any]:
        """The mean and the covariance (divisor ``n - ddof``) of the rows of ``X``."""
        mean = X.mean(0)
        Xc = X - mean
        return mean, (Xc.T @ Xc) / (X.shape[0] - ddof)

    def spd_power(self, C: Any, power: float) -> Any:
        """``C ** power`` of a symmetric positive (semi-)definite matrix, through eigh.

        Eigenvalues below ``d * eps * max`` are raised to that floor first, so the inverse
        square root of a singular covariance stays finite (rounding makes such eigenvalues
        tiny or negative; raising them bounds the amplification of noise directions).
        """
        w, V = self.eigh(C)
        eps = float(np.finfo(self.dtype).eps)
        floor = max(float(w.max()), 0.0) * C.shape[0] * eps
        w = self.clip_min(w, floor if floor > 0 else eps)
        return (V * w**power) @ V.T

    def principal_directions(self, X: Any, n_components: int) -> tuple[Any, Any, Any, float]:
        """``(mean, components (d, k), explained variances, total variance)`` of the rows
        of ``X``.

        The top ``n_components`` principal directions as columns, each with the sign that
        makes its largest-magnitude entry positive (scikit-learn's PCA convention), so the
        result does not depend on the LAPACK driver. Uses the covariance's eigh when there
        are more rows than features, the thin SVD of the centred data otherwise.
        """
        n, d = X.shape
        if n >= d:
            mean, C = self.covariance(X, ddof=1 if n > 1 else 0)
            return (mean, *self.directions_of_covariance(C, n_components))
        mean = X.mean(0)
        _, S, Vt = self.svd(X - mean)
        all_variances = S**2 / max(n - 1, 1)
        total = float(all_variances.sum())
        V, variances = Vt[:n_components].T, all_variances[:n_components]
        V = V * self.argmax_abs_sign(V)
        return mean, V, self.clip_min(variances, 0.0), total

    def directions_of_covariance(self, C: Any, n_components: int) -> tuple[Any, Any, float]:
        """``(components (d, k), explained variances, total variance)`` of a covariance
        matrix: its top eigenvectors as columns, signed as :meth:`principal_directions`."""
        d = C.shape[0]
        total = float(C.diagonal().sum())
        w, V = self.eigh(C)
        order = list(range(d - 1, d - 1 - n_components, -1))
        V, variances = V[:, order], w[order]
        V = V * self.argmax_abs_sign(V)
        return V, self.clip_min(variances, 0.0), total


def make_backend(backend: str, dtype: str, device: str, owner: str) -> Backend:
    """A validated :class:`Backend`; ``device`` counts only for torch (``auto``: a GPU if
    torch sees one)."""
    if backend not in BACKENDS:
        raise InvalidParameterError(f"{owner}: backend must be one of {BACKENDS}, got {backend!r}")
    if dtype not in DTYPES:
        raise InvalidParameterError(f"{owner}: dtype must be one of {DTYPES}, got {dtype!r}")
    if backend == "numpy":
        if device not in ("auto", "cpu"):
            raise InvalidParameterError(
                f"{owner}: device={device!r} needs backend='torch' (numpy runs on the CPU)"
            )
        return Backend("numpy", dtype, "cpu")
    return Backend("torch", dtype, resolve_torch_device(device, owner))

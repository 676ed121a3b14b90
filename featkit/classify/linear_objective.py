"""The objectives of the linear probe on torch tensors: softmax or binomial cross-entropy,
and the one-vs-rest squared hinge of a linear SVM, with their gradients written out, and
the fitted parameters exported back to scikit-learn's parametrisation."""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["export_coefficients", "loss_and_gradient", "row_loss"]


def row_loss(logits: Any, y: Any, loss: str) -> Any:
    """Per-row loss: cross-entropy (binomial for one logit column, else the softmax's), or
    the one-vs-rest squared hinge."""
    import torch.nn.functional as F

    if loss == "squared_hinge":
        signs = _signs(y, logits.shape[1], logits.dtype)
        return (1.0 - signs * logits).clamp(min=0.0).square().sum(dim=1)
    if logits.shape[1] == 1:
        return F.binary_cross_entropy_with_logits(
            logits[:, 0], y.to(logits.dtype), reduction="none"
        )
    return F.cross_entropy(logits, y, reduction="none")


def _signs(y: Any, k: int, dtype: Any) -> Any:
    """One-vs-rest targets: +1 for the true class, -1 for the others ((n, 1) for two classes)."""
    import torch

    if k == 1:
        return (2.0 * y.to(dtype) - 1.0)[:, None]
    signs = torch.full((len(y), k), -1.0, dtype=dtype, device=y.device)
    signs.scatter_(1, y[:, None], 1.0)
    return signs


def loss_and_gradient(
    X: Any, y: Any, w: Any, W: Any, c: Any, mu: Any, lam: float, loss: str = "log_loss"
) -> tuple[float, Any, Any]:
    """Mean-scaled objective and its gradient in W and c, on centred features.

    ``sum_i w_i CE(x_i - mu, y_i) + lam / 2 ||W||^2`` with ``w`` summing to one; the
    gradient is written out (two GEMMs) rather than taken by autograd, which would keep
    the graph and call more kernels for the same numbers.
    """
    import torch

    with torch.no_grad():
        logits = torch.addmm(c - W @ mu, X, W.T)  # (x - mu) W^T + c
        if loss == "squared_hinge":
            signs = _signs(y, W.shape[0], logits.dtype)
            slack = (1.0 - signs * logits).clamp_(min=0.0)
            ce = slack.square().sum(dim=1)
            G = slack.mul_(signs).mul_(-2.0 * w[:, None])  # d loss / d logits, weighted
        elif W.shape[0] == 1:
            z = logits[:, 0]
            yf = y.to(z.dtype)
            ce = torch.nn.functional.softplus(z) - yf * z
            G = ((torch.sigmoid(z) - yf) * w)[:, None]
        else:
            # one exp pass serves the log-sum-exp and the softmax
            top = logits.max(dim=1, keepdim=True).values
            G = torch.exp(logits - top)
            total = G.sum(dim=1, keepdim=True)
            ce = (top + torch.log(total) - logits.gather(1, y[:, None]))[:, 0]
            G *= w[:, None] / total  # weighted softmax, minus w at the label
            G.scatter_add_(1, y[:, None], -w[:, None])
        gc = G.sum(dim=0)
        gW = torch.mm(G.T, X)
        gW -= gc[:, None] * mu[None, :]
        gW += lam * W
        # the loss in float64: the line search compares values that differ by ~1e-7
        loss = float(torch.dot(ce.double(), w.double())) + 0.5 * lam * float(
            (W.double() ** 2).sum()
        )
    return loss, gW, gc


def export_coefficients(
    W: Any, c: Any, mu: Any, k: int, loss: str
) -> tuple[np.ndarray, np.ndarray]:
    """coef_ and intercept_ as numpy, back in the uncentred parametrisation."""
    import torch

    with torch.no_grad():
        b = c - W @ mu
        if k > 1 and loss == "log_loss":
            # The softmax is unchanged by a common shift; scikit-learn's intercepts sum to
            # zero (its L-BFGS starts at zero and the gradient's class sum is zero).
            b = b - b.mean()
        return W.detach().cpu().numpy().copy(), b.detach().cpu().numpy().copy()

"""Deep domain adaptation losses: what fine-tuning adds to its classification loss to make
the embeddings of the source and the (unlabelled) target images alike.

- ``"dann"`` (Ganin et al. 2016): a domain discriminator learns to tell source from target
  embeddings, and a gradient-reversal layer trains the backbone to defeat it; the
  reversal's weight rises from 0 to 1 as ``2 / (1 + exp(-10 p)) - 1`` over the run's
  progress p, the paper's schedule, so the discriminator is not fought before it learns.
- ``"deep-coral"`` (Sun & Saenko 2016): the squared Frobenius distance between the two
  domains' embedding covariances, ``||C_s - C_t||_F^2 / (4 d^2)``.
- ``"mmd"`` (DAN, Long et al. 2015): the multi-kernel maximum mean discrepancy, the sum of
  five Gaussian kernels whose bandwidths are 1/4 to 4 times the batch's mean squared
  pairwise distance.

Each loss takes the source and target embeddings of one step (``(n_s, d)`` and
``(n_t, d)``) and the run's progress, and returns a scalar; :func:`make_domain_loss` builds
one by name. The discriminator is a module with parameters, trained by the fine-tuning
optimizer and saved in the resumable state; the other two have none.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from featkit.exceptions import InvalidParameterError

__all__ = [
    "ADAPT_METHODS",
    "CoralLoss",
    "DomainAdversarialLoss",
    "DomainLoss",
    "GradientReversal",
    "MMDLoss",
    "coral_loss",
    "dann_coefficient",
    "grad_reverse",
    "make_domain_loss",
    "mk_mmd",
]

#: ``FineTuner(adapt=...)``: "none" or a deep domain adaptation method.
ADAPT_METHODS = ("none", "dann", "deep-coral", "mmd")
#: DAN's kernels: bandwidths at these multiples of the mean squared pairwise distance.
MMD_BANDWIDTHS = (0.25, 0.5, 1.0, 2.0, 4.0)
#: Hidden units of the DANN discriminator (two hidden layers, as in TLlib's).
DISCRIMINATOR_WIDTH = 1024


class GradientReversal(torch.autograd.Function):
    """The identity forward; backward, the gradient times ``-coeff``."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, coeff: float) -> torch.Tensor:  # type: ignore[override]
        ctx.coeff = float(coeff)
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> tuple[torch.Tensor, None]:  # type: ignore[override]
        return grad.neg() * ctx.coeff, None


def grad_reverse(x: torch.Tensor, coeff: float = 1.0) -> torch.Tensor:
    """``x`` unchanged, with its gradient reversed and scaled by ``coeff`` on the way back."""
    return GradientReversal.apply(x, coeff)


def dann_coefficient(progress: float, gamma: float = 10.0) -> float:
    """DANN's weight of the reversed gradient at ``progress`` in [0, 1]: from 0 to ~1."""
    return 2.0 / (1.0 + math.exp(-gamma * float(progress))) - 1.0


def coral_loss(source: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Deep CORAL: ``||C_s - C_t||_F^2 / (4 d^2)``, C the unbiased covariances (rows are
    samples)."""
    d = source.shape[1]
    diff = _covariance(source) - _covariance(target)
    return (diff * diff).sum() / (4.0 * d * d)


def mk_mmd(
    source: torch.Tensor,
    target: torch.Tensor,
    bandwidths: tuple[float, ...] = MMD_BANDWIDTHS,
) -> torch.Tensor:
    """Squared multi-kernel MMD (the biased estimate, any two sample sizes): the mean of
    ``k(s, s')`` plus that of ``k(t, t')`` minus twice that of ``k(s, t)``, ``k`` a sum of
    Gaussian kernels ``exp(-||a - b||^2 / (m * sigma2))`` over the multipliers ``m`` in
    ``bandwidths``, ``sigma2`` the mean squared distance between distinct pooled rows
    (held constant for the gradient)."""
    n_s = source.shape[0]
    pooled = torch.cat([source, target])
    n = pooled.shape[0]
    # Squared distances without a square root, whose gradient at the zero diagonal is not
    # finite.
    norms = pooled.square().sum(1)
    sq = (norms[:, None] + norms[None, :] - 2 * pooled @ pooled.T).clamp_min(0)
    sigma2 = sq.detach().sum() / max(n * n - n, 1)
    sigma2 = torch.clamp(sigma2, min=torch.finfo(sq.dtype).tiny)
    kernel = sum(torch.exp(-sq / (m * sigma2)) for m in bandwidths)
    k_ss = kernel[:n_s, :n_s].mean()
    k_tt = kernel[n_s:, n_s:].mean()
    k_st = kernel[:n_s, n_s:].mean()
    return k_ss + k_tt - 2 * k_st


def _covariance(x: torch.Tensor) -> torch.Tensor:
    centred = x - x.mean(0, keepdim=True)
    return centred.T @ centred / max(x.shape[0] - 1, 1)


class DomainLoss(nn.Module):
    """A deep domain adaptation loss of the source and target embeddings of one step."""

    name = "none"

    def forward(  # type: ignore[override]
        self, source: torch.Tensor, target: torch.Tensor, progress: float
    ) -> torch.Tensor:
        raise NotImplementedError


class CoralLoss(DomainLoss):
    """Deep CORAL (:func:`coral_loss`)."""

    name = "deep-coral"

    def forward(self, source, target, progress):  # type: ignore[override]
        return coral_loss(source, target)


class MMDLoss(DomainLoss):
    """DAN's multi-kernel MMD (:func:`mk_mmd`)."""

    name = "mmd"

    def forward(self, source, target, progress):  # type: ignore[override]
        return mk_mmd(source, target)


class DomainAdversarialLoss(DomainLoss):
    """DANN: the binary cross-entropy of a discriminator telling source (1) from target (0),
    seen by the backbone through a gradient reversal weighted by :func:`dann_coefficient`.

    ``accuracy`` holds the discriminator's accuracy on the last step: near 0.5 when the
    backbone wins, near 1 when the domains stay apart.
    """

    name = "dann"

    def __init__(self, dim: int, width: int = DISCRIMINATOR_WIDTH) -> None:
        super().__init__()
        self.discriminator = nn.Sequential(
            nn.Linear(dim, width),
            nn.BatchNorm1d(width),
            nn.ReLU(),
            nn.Linear(width, width),
            nn.BatchNorm1d(width),
            nn.ReLU(),
            nn.Linear(width, 1),
        )
        self.accuracy = float("nan")

    def forward(self, source, target, progress):  # type: ignore[override]
        features = grad_reverse(torch.cat([source, target]), dann_coefficient(progress))
        logits = self.discriminator(features).squeeze(1)
        domains = torch.cat([logits.new_ones(source.shape[0]), logits.new_zeros(target.shape[0])])
        with torch.no_grad():
            self.accuracy = float(((logits > 0).float() == domains).float().mean())
        return nn.functional.binary_cross_entropy_with_logits(logits, domains)


def make_domain_loss(method: str, dim: int) -> DomainLoss | None:
    """The loss of ``method`` (one of :data:`ADAPT_METHODS`) for ``dim``-d embeddings;
    None for "none"."""
    if method == "none":
        return None
    if method == "dann":
        return DomainAdversarialLoss(dim)
    if method == "deep-coral":
        return CoralLoss()
    if method == "mmd":
        return MMDLoss()
    raise InvalidParameterError(f"adapt must be one of {', '.join(ADAPT_METHODS)}; got {method!r}")

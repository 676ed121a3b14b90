"""Global pooling of a network's activations into one vector per image.

Feature maps are (N, C, H, W); transformer tokens are (N, L, C) with ``prefix_tokens``
leading tokens (the class token, registers) before the patch tokens.
"""

from __future__ import annotations

from typing import Any

__all__ = ["POOLINGS", "pool"]

#: avg and max: over positions (patch tokens for a transformer); gem: generalised mean
#: (Radenović et al., 2018); cls: a transformer's class token.
POOLINGS = ("avg", "max", "gem", "cls")


def pool(activations: Any, how: str, *, prefix_tokens: int = 0, gem_p: float = 3.0) -> Any:
    """Pool (N, C, H, W) maps or (N, L, C) tokens to (N, C); (N, C) passes through."""
    x = activations
    if x.ndim == 2:
        return x
    if x.ndim == 4:
        if how == "cls":
            raise ValueError("pooling='cls' needs transformer tokens, not a feature map")
        x = x.flatten(2).transpose(1, 2)  # (N, H*W, C): pool positions the same way as tokens
    elif x.ndim == 3:
        if how == "cls":
            if prefix_tokens < 1:
                raise ValueError("pooling='cls': this network has no class token")
            return x[:, 0]
        x = x[:, prefix_tokens:]
    else:
        raise ValueError(f"cannot pool activations of shape {tuple(x.shape)}")
    if how == "avg":
        return x.mean(dim=1)
    if how == "max":
        return x.amax(dim=1)
    if how == "gem":
        # GeM is defined on non-negative activations (after a ReLU); clamping keeps it
        # defined for networks whose features can be negative.
        return x.float().clamp(min=1e-6).pow(gem_p).mean(dim=1).pow(1.0 / gem_p)
    raise ValueError(f"unknown pooling {how!r}; choose from {', '.join(POOLINGS)}")

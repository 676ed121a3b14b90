"""The source model's own class probabilities, which LEEP and NCE score: the softmax of a
``cnn`` extractor's network logits (ImageNet's classes for the pretrained weights) on the
images as that extractor prepares them."""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import numpy as np
from sklearn.base import clone

from featkit.data import Dataset
from featkit.extractors.backbones import Backbone, load_backbone
from featkit.extractors.base import Extractor
from featkit.extractors.cnn import CNNExtractor
from featkit.finetune.model import backbone_classifier

__all__ = ["source_head", "source_logits", "source_probabilities"]


def _backbone(extractor: CNNExtractor) -> Backbone:
    return load_backbone(
        extractor.model, pretrained=extractor.pretrained, checkpoint=extractor.checkpoint
    )


def source_head(extractor: Extractor) -> tuple[int | None, str]:
    """``(number of source classes, "")`` when ``extractor`` has a trained classifier head
    whose probabilities LEEP and NCE can use, else ``(None, why not)``."""
    if not isinstance(extractor, CNNExtractor):
        return None, "no source classifier (not a cnn extractor)"
    backbone = _backbone(extractor)
    if backbone.weights == "random":
        return None, "random weights: no trained classifier"
    head = _classifier(backbone)
    out = getattr(head, "out_features", None)
    if not out or out < 2:
        return None, f"{extractor.model} has no classifier head"
    return int(out), ""


def _classifier(backbone: Backbone) -> Any:
    """The network's last linear layer (its classifier), or None."""
    import torch

    model = backbone.model
    if backbone.library == "timm" and hasattr(model, "get_classifier"):
        head = model.get_classifier()
        return head if isinstance(head, torch.nn.Linear) else None
    linear = [m for m in model.modules() if isinstance(m, torch.nn.Linear)]
    return linear[-1] if linear else None


def source_logits(extractor: CNNExtractor) -> CNNExtractor:
    """A copy of ``extractor`` whose rows are its network's logits (the classifier's output
    as its ``layer``), in float32: features like any other, so the engine computes them in
    batches, in workers, and caches them."""
    backbone = _backbone(extractor)
    classifier = backbone_classifier(backbone.model, backbone.library)
    return clone(extractor).set_params(layer=classifier, precision="fp32")


def source_probabilities(
    extractor: CNNExtractor,
    images: Dataset | Sequence[Any],
    batch_size: int = 64,
    *,
    cache_dir: str | os.PathLike | None = None,
    n_jobs: int | None = None,
) -> np.ndarray:
    """(n, source classes) softmax of the network's logits, float64, on the images as
    ``extractor`` prepares them (with ``tta``, of its views' mean logits), in float32 on
    the extractor's device whatever its ``precision``. The logits are extracted by
    :func:`featkit.extract` (``batch_size`` images a chunk), so with ``cache_dir`` a second
    ranking of the same images reads them from the cache."""
    from featkit.engine import extract

    classes, why = source_head(extractor)
    if classes is None:
        raise ValueError(f"no source probabilities: {why}")
    logits = extract(
        source_logits(extractor),
        images,
        batch_size=batch_size,
        cache_dir=cache_dir,
        n_jobs=n_jobs,
        progress=False,
    )
    if logits.failed:
        first = logits.failed[0]
        raise ValueError(
            f"no source probabilities: {len(logits.failed)} images could not be used "
            f"(first: {first['id']}: {first['reason']})"
        )
    z = logits.X.astype(np.float64)
    z -= z.max(axis=1, keepdims=True)  # a stable softmax
    p = np.exp(z)
    return p / p.sum(axis=1, keepdims=True)

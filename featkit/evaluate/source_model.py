"""The source model's own class probabilities, which LEEP and NCE score: the softmax of a
``cnn`` extractor's network logits (ImageNet's classes for the pretrained weights) on the
images as that extractor prepares them."""

from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import Any

import numpy as np

from featkit.data import Dataset
from featkit.devices import resolve_torch_device
from featkit.extractors.backbones import Backbone, load_backbone
from featkit.extractors.base import Extractor
from featkit.extractors.cnn import CNNExtractor

__all__ = ["source_head", "source_probabilities"]


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


def source_probabilities(
    extractor: CNNExtractor,
    images: Dataset | Sequence[Any],
    batch_size: int = 64,
) -> np.ndarray:
    """(n, source classes) softmax of the network's logits, float64, on the images as
    ``extractor.prepare`` gives them (with ``tta``, the mean over its views). In float32 on
    the extractor's device, whatever its ``precision``."""
    import torch

    classes, why = source_head(extractor)
    if classes is None:
        raise ValueError(f"no source probabilities: {why}")
    backbone = _backbone(extractor)
    device = torch.device(resolve_torch_device(extractor.device, "cnn", allow_mps=True))
    model = backbone.model
    if device.type != "cpu":
        model = copy.deepcopy(model).to(device)  # the cached backbone stays on the CPU
    prep = backbone.preprocessing
    mean = torch.tensor(prep.mean, device=device).view(1, 3, 1, 1)
    std = torch.tensor(prep.std, device=device).view(1, 3, 1, 1)
    items = list(images.items) if isinstance(images, Dataset) else list(images)
    out = []
    for start in range(0, len(items), batch_size):
        prepared = np.stack([extractor.prepare(item) for item in items[start : start + batch_size]])
        views = prepared.shape[1] if prepared.ndim == 5 else 1
        batch = prepared.reshape(-1, *prepared.shape[-3:])  # (n * views, S, S, 3) uint8
        x = torch.from_numpy(np.ascontiguousarray(batch)).to(device)
        x = (x.permute(0, 3, 1, 2).float() / 255 - mean) / std
        with torch.inference_mode():
            p = torch.softmax(model(x).double(), dim=1).cpu().numpy()
        out.append(p.reshape(-1, views, p.shape[1]).mean(axis=1))
    if not out:
        return np.zeros((0, classes))
    return np.concatenate(out)

"""The network a fine-tuning run trains: a backbone's pooled embedding and a new linear head.

The embedding is computed exactly as the ``cnn`` extractor's ``layer="pooled"``
(:mod:`featkit.extractors.network`): uint8 NHWC batches normalised on the device with the
weights' mean and std, the channels-last layout, then timm's ``forward_features`` and
``forward_head(pre_logits=True)``, or the input of a torchvision network's last linear
layer. So the backbone saved by :meth:`featkit.finetune.FineTuner.save` and loaded by
``create_extractor("cnn", checkpoint=...)`` gives the embeddings the trainer computed.
The backbone's own classifier (ImageNet's) stays in the network, unused and untrained, so
the saved state dict loads strictly into the architecture it came from.
"""

from __future__ import annotations

import copy
from typing import Any

import torch
from torch import nn

from featkit.exceptions import InvalidParameterError
from featkit.extractors.backbones import Backbone

__all__ = ["ImageClassifier", "backbone_classifier"]


class ImageClassifier(nn.Module):
    """``head(embedding(x))`` for uint8 (n, S, S, 3) batches.

    ``net`` is a private copy of the backbone's network (the one :func:`load_backbone`
    shares between extractors is never trained).
    """

    def __init__(self, backbone: Backbone, n_classes: int, crop_size: int) -> None:
        super().__init__()
        self.net = copy.deepcopy(backbone.model).to(memory_format=torch.channels_last)
        self.library = backbone.library
        prep = backbone.preprocessing
        # As in featkit.extractors.network.Network: on the 0..255 scale of the uint8 input.
        self.register_buffer("mean", torch.tensor(prep.mean).view(1, 3, 1, 1) * 255, False)
        self.register_buffer("std", torch.tensor(prep.std).view(1, 3, 1, 1) * 255, False)
        self.classifier_name = backbone_classifier(self.net, self.library)
        was_training = self.net.training
        self.net.eval()
        with torch.no_grad():
            zeros = torch.zeros((1, crop_size, crop_size, 3), dtype=torch.uint8)
            dim = self.embed(zeros).shape[1]
        self.net.train(was_training)
        self.head = nn.Linear(int(dim), int(n_classes))

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """The pooled embedding of a uint8 (n, S, S, 3) batch on the model's device."""
        x = x.permute(0, 3, 1, 2).float().sub_(self.mean).div_(self.std)
        x = x.contiguous(memory_format=torch.channels_last)
        if self.library == "timm":
            return self.net.forward_head(self.net.forward_features(x), pre_logits=True)
        found: dict[str, Any] = {}

        def keep(module: nn.Module, args: tuple[Any, ...]) -> None:
            found["x"] = args[0]

        linear = dict(self.net.named_modules())[self.classifier_name]
        hook = linear.register_forward_pre_hook(keep)
        try:
            self.net(x)
        finally:
            hook.remove()
        return found["x"]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.embed(x))


def backbone_classifier(net: nn.Module, library: str) -> str:
    """The module name of a network's own classifier: timm's ``get_classifier()``, or a
    torchvision network's last linear layer (whose input is the ``pooled`` layer)."""
    modules = dict(net.named_modules())
    if library == "timm":
        classifier = net.get_classifier()
        for name, module in modules.items():
            if module is classifier:
                return name
        return ""  # no classifier (num_classes=0): every parameter is the backbone's
    linear = [n for n, m in modules.items() if isinstance(m, nn.Linear)]
    if not linear:
        raise InvalidParameterError(
            "this torchvision network has no linear classifier, so no pooled embedding to "
            "fine-tune from"
        )
    return linear[-1]

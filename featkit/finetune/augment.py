"""Augmentation presets for fine-tuning: uint8 images in, uint8 crops out, seeded per image.

Every preset maps a ``(H, W, 3)`` uint8 image to a ``(S, S, 3)`` uint8 crop at the
network's input size ``S``, with torchvision's ``transforms.v2`` (on PIL images, whose
kernels are the fastest for uint8), in the data-loader workers. Normalisation happens
later, on the model's device, as in the ``cnn`` extractor. All presets keep the label:
they move, crop, flip and recolour pixels, they never mix images (no MixUp or CutMix).

- ``"none"``: the evaluation preprocessing itself (the ``cnn`` extractor's resize and
  centre crop), no randomness;
- ``"light"``: a random resized crop (25-100% of the area, aspect 3/4-4/3) and a horizontal
  flip;
- ``"classic"``: the Keras-era recipe: the evaluation resize, then a random rotation
  (±15°), shift (±10%) and zoom (0.85-1.15x), a horizontal flip, and the centre crop.
  No vertical flip: upside-down photos are another class of image;
- ``"randaugment"``: ``light`` then RandAugment (2 operations at magnitude 9, the paper's
  ImageNet setting);
- ``"trivialaugment"``: ``light`` then TrivialAugment Wide (one operation, random strength).

Randomness comes from torch's generator, seeded for each image by :func:`augment`: the
crop an image gets depends on (seed, epoch, image), never on the data-loader worker that
made it, on the number of workers, or on a resume.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from featkit.exceptions import InvalidParameterError
from featkit.extractors.backbones import Preprocessing

__all__ = ["AUGMENT_PRESETS", "augment", "build_augment"]

AUGMENT_PRESETS = ("none", "light", "classic", "randaugment", "trivialaugment")
#: Area range of the random resized crop: ImageNet training uses 8-100%, too harsh for
#: small sets and small inputs (a 64 px crop of 8% of a 227 px photo is mostly blur).
CROP_SCALE = (0.25, 1.0)


def build_augment(preset: str, prep: Preprocessing) -> Callable[[np.ndarray], np.ndarray]:
    """The transform of ``preset``: an (H, W, 3) uint8 image to an (S, S, 3) uint8 crop,
    S = ``prep.crop_size``. Random presets draw from torch's default generator: call them
    through :func:`augment` to seed them."""
    if preset not in AUGMENT_PRESETS:
        raise InvalidParameterError(
            f"augment must be one of {', '.join(AUGMENT_PRESETS)}; got {preset!r}"
        )
    if preset == "none":
        return prep
    from torchvision.transforms import InterpolationMode, v2

    mode = InterpolationMode(prep.interpolation)
    size = prep.crop_size
    crop = [
        v2.RandomResizedCrop(size, scale=CROP_SCALE, interpolation=mode, antialias=True),
        v2.RandomHorizontalFlip(),
    ]
    if preset == "light":
        steps = crop
    elif preset == "classic":
        steps = [
            v2.Resize(prep.resize_size, interpolation=mode, antialias=True),
            v2.RandomAffine(degrees=15, translate=(0.1, 0.1), scale=(0.85, 1.15)),
            v2.RandomHorizontalFlip(),
            v2.CenterCrop(size),
        ]
    elif preset == "randaugment":
        steps = [*crop, v2.RandAugment(num_ops=2, magnitude=9)]
    else:
        steps = [*crop, v2.TrivialAugmentWide()]
    return _OnArrays(v2.Compose(steps))


class _OnArrays:
    """A v2 transform applied to an (H, W, 3) uint8 array through PIL, giving one back.

    PIL images rather than uint8 tensors: torchvision's kernels for them are PIL's, which
    resize a 227 px photo about 10x faster than the tensor kernel with antialiasing.
    """

    def __init__(self, transform: Any) -> None:
        self.transform = transform

    def __call__(self, rgb: np.ndarray) -> np.ndarray:
        from PIL import Image

        out = self.transform(Image.fromarray(np.ascontiguousarray(rgb)))
        return np.array(out, dtype=np.uint8)

    def __repr__(self) -> str:
        return repr(self.transform)


def augment(transform: Callable[[np.ndarray], np.ndarray], rgb: np.ndarray, seed: int) -> Any:
    """``transform(rgb)`` with torch's generator seeded with ``seed``, restored afterwards
    (so the caller's random stream, dropout's in the main process, is not touched)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return transform(rgb)

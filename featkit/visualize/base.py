"""A picture of what an extractor computes: a uint8 RGB image and a line saying what it shows."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["Picture", "to_rgb"]


@dataclass(frozen=True)
class Picture:
    """``image``: uint8 (H, W, 3) RGB; ``caption``: one line saying what it shows."""

    image: np.ndarray
    caption: str


def to_rgb(image: np.ndarray) -> np.ndarray:
    """A writable uint8 (H, W, 3) copy of a uint8 gray (H, W) or RGB (H, W, 3) image."""
    image = np.asarray(image, dtype=np.uint8)
    if image.ndim == 2:
        return np.repeat(image[:, :, None], 3, axis=2)
    return image.copy()


def scale_to_uint8(values: np.ndarray, top: float) -> np.ndarray:
    """``values`` in [0, top] as 0..255 gray levels (all 0 when ``top`` is 0)."""
    if top <= 0:
        return np.zeros(values.shape, dtype=np.uint8)
    return np.clip(np.rint(values * 255.0 / top), 0, 255).astype(np.uint8)

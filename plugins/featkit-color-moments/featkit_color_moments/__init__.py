"""Colour moments (Stricker & Orengo, 1995): mean, std and skewness per channel and region."""

from __future__ import annotations

import itertools

import cv2
import numpy as np

from featkit import Extractor, InputSpec, InvalidParameterError

__all__ = ["ColorMomentsExtractor"]
__version__ = "0.1.0"

_SPACES = {"rgb": None, "hsv": cv2.COLOR_RGB2HSV_FULL, "lab": cv2.COLOR_RGB2LAB}


class ColorMomentsExtractor(Extractor):
    """Colour moments: mean, standard deviation and skewness of each channel, per region.

    Parameters
    ----------
    color_space : {"rgb", "hsv", "lab"}, default="rgb"
        Channels the moments are taken over (8-bit OpenCV conversions, scaled to [0, 1]).
    grid : int, default=1
        The image is cut into grid x grid regions; 1 describes the whole image.
    """

    version = "1"

    def __init__(self, color_space: str = "rgb", grid: int = 1) -> None:
        self.color_space = color_space
        self.grid = grid

    def validate_params(self) -> None:
        if self.color_space not in _SPACES:
            raise InvalidParameterError(
                f"color-moments: color_space must be one of {sorted(_SPACES)}, "
                f"got {self.color_space!r}"
            )
        if (
            isinstance(self.grid, bool)
            or not isinstance(self.grid, int)
            or not 1 <= self.grid <= 16
        ):
            raise InvalidParameterError(
                f"color-moments: grid must be an int in 1..16, got {self.grid!r}"
            )

    def input_spec(self) -> InputSpec:
        return InputSpec(color="rgb", size=None, dtype=np.uint8)

    def _feature_dim(self) -> int:
        return 9 * self.grid**2

    def _transform_one(self, image: np.ndarray) -> np.ndarray:
        code = _SPACES[self.color_space]
        converted = image if code is None else cv2.cvtColor(image, code)
        pixels = converted.astype(np.float64) / 255.0
        h, w = pixels.shape[:2]
        rows = np.linspace(0, h, self.grid + 1).round().astype(int)
        cols = np.linspace(0, w, self.grid + 1).round().astype(int)
        out = []
        for r0, r1 in itertools.pairwise(rows):
            for c0, c1 in itertools.pairwise(cols):
                # A region of a tiny image may be empty: reuse the nearest pixel row/column.
                region = pixels[r0 : max(r1, r0 + 1), c0 : max(c1, c0 + 1)].reshape(-1, 3)
                mean = region.mean(axis=0)
                std = region.std(axis=0)
                third = ((region - mean) ** 3).mean(axis=0)
                # Skewness is the standardised third moment; a flat region has none.
                skew = np.divide(third, std**3, out=np.zeros(3), where=std > 1e-8)
                out.append(np.stack([mean, std, skew], axis=1).reshape(-1))
        return np.concatenate(out).astype(np.float32)

    def get_feature_names_out(self, input_features: object = None) -> np.ndarray:
        """``r{row}c{col}_{channel}_{mean|std|skew}``."""
        channels = {"rgb": "rgb", "hsv": "hsv", "lab": "Lab"}[self.color_space]
        names = [
            f"r{r}c{c}_{ch}_{m}"
            for r in range(self.grid)
            for c in range(self.grid)
            for ch in channels
            for m in ("mean", "std", "skew")
        ]
        return np.asarray(names, dtype=object)

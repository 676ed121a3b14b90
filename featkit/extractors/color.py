"""Colour histograms: joint or per-channel, in RGB, HSV or CIE Lab, over a grid of cells."""

from __future__ import annotations

import cv2
import numpy as np

from featkit.exceptions import InvalidParameterError
from featkit.extractors.base import Extractor, InputSpec, check_decode
from featkit.extractors.lbp import check_grid_fits, grid_cell_index, validate_cell_histograms
from featkit.registry import register_extractor
from featkit.validation import is_int

__all__ = ["ColorHistExtractor"]

# OpenCV conversion from RGB uint8, and the channel letters used in feature names.
_SPACES = {
    "rgb": (None, "rgb"),
    "hsv": (cv2.COLOR_RGB2HSV_FULL, "hsv"),
    "lab": (cv2.COLOR_RGB2Lab, "lab"),
}
#: Largest joint histogram (bins per cell) accepted, e.g. 32 x 32 x 32 = 32768.
MAX_JOINT_BINS = 65536


@register_extractor("color-hist")
class ColorHistExtractor(Extractor):
    """Colour histograms in RGB, HSV or Lab, joint (3-D) or per channel, over a grid of cells.

    Images are read as RGB uint8 (a gray image becomes R = G = B, so its hue and saturation
    are 0 and its Lab a, b are 128; alpha is composited on white) and converted with OpenCV
    on 8 bits, so every channel lies in 0..255: RGB as is; HSV with ``COLOR_RGB2HSV_FULL``
    (hue 0..360 degrees mapped to 0..255, saturation and value 0..255); Lab with
    ``COLOR_RGB2Lab`` (L * 255 / 100, a + 128, b + 128; sRGB colours occupy about 42..226
    of a and 20..223 of b). Each channel is cut into equal bins over 0..255: value ``v``
    falls in bin ``v * bins // 256``. Hue bins start at red (hue 0), so red fills bin 0.
    The vector is, cell by cell (row-major), the joint histogram in C order (first channel
    slowest) or the three channel histograms one after another.

    Parameters
    ----------
    color_space : {"hsv", "rgb", "lab"}, default="hsv"
        Colour space of the histogram.
    bins : int or tuple of int, default=(8, 8, 8)
        Bins per channel (1..256): one number for all three channels, or one per channel.
    joint : bool, default=True
        True: one 3-D joint histogram per cell (product of the bins); False: the three
        channel histograms concatenated (sum of the bins).
    grid : tuple of int, default=(1, 1)
        (rows, cols) of spatial cells; cells split the image like ``np.array_split`` (the
        first ``height % rows`` rows of cells are one pixel taller).
    size : tuple of int or None, default=None
        (height, width) every image is resized to, or None to keep each image's own size
        (an image with fewer pixels than the grid has cells then raises ValueError).
    normalize : {"l1", "none"}, default="l1"
        "l1": each cell's histogram (each channel's, when not joint) sums to 1; "none": raw
        pixel counts.
    decode : {"reduced", "exact"}, default="reduced"
        Large JPEGs at 1/2-1/8 scale, still twice ``size`` (5x faster), or in full: extraction.md.
    """

    version = "1"

    def __init__(
        self,
        color_space: str = "hsv",
        bins: int | tuple[int, int, int] = (8, 8, 8),
        joint: bool = True,
        grid: tuple[int, int] = (1, 1),
        size: tuple[int, int] | None = None,
        normalize: str = "l1",
        decode: str = "reduced",
    ) -> None:
        self.color_space = color_space
        self.bins = bins
        self.joint = joint
        self.grid = grid
        self.size = size
        self.normalize = normalize
        self.decode = decode

    # -- parameters ---------------------------------------------------------------------------
    def _bins(self) -> tuple[int, int, int]:
        if isinstance(self.bins, (tuple, list)):
            return tuple(int(b) for b in self.bins)  # type: ignore[return-value]
        return (int(self.bins),) * 3

    def validate_params(self) -> None:
        check_decode("color-hist", self.decode)
        if not isinstance(self.color_space, str) or self.color_space not in _SPACES:
            raise InvalidParameterError(
                f"color-hist: color_space must be one of {', '.join(map(repr, _SPACES))}, "
                f"got {self.color_space!r}"
            )
        bins = self.bins if isinstance(self.bins, (tuple, list)) else [self.bins]
        if (
            len(bins) != (3 if isinstance(self.bins, (tuple, list)) else 1)
            or not all(is_int(b) for b in bins)
            or not all(1 <= b <= 256 for b in bins)
        ):
            raise InvalidParameterError(
                "color-hist: bins must be an integer in 1..256 or a tuple of three such "
                f"integers, got {self.bins!r}"
            )
        if not isinstance(self.joint, (bool, np.bool_)):
            raise InvalidParameterError(
                f"color-hist: joint must be True or False, got {self.joint!r}"
            )
        if self.joint and int(np.prod(self._bins())) > MAX_JOINT_BINS:
            raise InvalidParameterError(
                f"color-hist: a joint histogram of {self._bins()} bins has "
                f"{int(np.prod(self._bins()))} bins per cell, more than {MAX_JOINT_BINS}; "
                "use fewer bins or joint=False"
            )
        validate_cell_histograms("color-hist", self.grid, self.size, self.normalize)

    def input_spec(self) -> InputSpec:
        size = None if self.size is None else (int(self.size[0]), int(self.size[1]))
        return InputSpec(color="rgb", size=size, dtype=np.uint8, decode=self.decode)

    def _cell_bins(self) -> int:
        bins = self._bins()
        return int(np.prod(bins)) if self.joint else sum(bins)

    def _feature_dim(self) -> int:
        return int(self.grid[0]) * int(self.grid[1]) * self._cell_bins()

    # -- features -----------------------------------------------------------------------------
    def _transform_one(self, image: np.ndarray) -> np.ndarray:
        rows, cols = int(self.grid[0]), int(self.grid[1])
        check_grid_fits("color-hist", image.shape, (rows, cols))
        height, width = image.shape[:2]
        code = _SPACES[self.color_space][0]
        converted = image if code is None else cv2.cvtColor(image, code)
        bins = self._bins()
        # Bin of every 8-bit value, per channel: v * bins // 256.
        quantized = [
            (np.arange(256, dtype=np.intp) * b // 256)[converted[:, :, ch]]
            for ch, b in enumerate(bins)
        ]
        cells = grid_cell_index(height, width, rows, cols)
        n_cells, per_cell = rows * cols, self._cell_bins()
        if self.joint:
            index = (quantized[0] * bins[1] + quantized[1]) * bins[2] + quantized[2]
            index += cells * per_cell
        else:
            offsets = np.cumsum((0, *bins[:2]))
            base = cells * per_cell
            index = np.stack([base + off + q for off, q in zip(offsets, quantized, strict=True)])
        hist = np.bincount(index.ravel(), minlength=n_cells * per_cell).astype(np.float32)
        hist = hist.reshape(n_cells, per_cell)
        if self.normalize == "l1":
            # Each cell (each channel of a cell) counts every pixel of the cell once.
            pixels = np.bincount(cells.ravel(), minlength=n_cells).astype(np.float32)
            hist /= pixels[:, None]
        return hist.ravel()

    def get_feature_names_out(self, input_features: object = None) -> np.ndarray:
        """``{space}_c{row}_{col}_{ch}{i}[_{ch}{j}_{ch}{k}]``, e.g. ``hsv_c0_0_h3_s1_v7``."""
        space = self.color_space
        letters = _SPACES[space][1]
        bins = self._bins()
        if self.joint:
            per_cell = [
                f"{letters[0]}{i}_{letters[1]}{j}_{letters[2]}{k}"
                for i in range(bins[0])
                for j in range(bins[1])
                for k in range(bins[2])
            ]
        else:
            per_cell = [f"{letters[ch]}{i}" for ch in range(3) for i in range(bins[ch])]
        names = [
            f"{space}_c{r}_{c}_{b}"
            for r in range(int(self.grid[0]))
            for c in range(int(self.grid[1]))
            for b in per_cell
        ]
        return np.asarray(names, dtype=object)

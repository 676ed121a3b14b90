"""Local binary patterns: histograms of LBP codes over a grid of cells, at one or more radii."""

from __future__ import annotations

import math
from functools import cache, lru_cache

import cv2
import numpy as np
from skimage.feature import local_binary_pattern

from featkit.exceptions import InvalidParameterError
from featkit.extractors.base import Extractor, InputSpec, check_decode
from featkit.registry import register_extractor
from featkit.validation import is_int

__all__ = ["LBPExtractor", "grid_cell_index", "lbp_n_bins"]

_METHODS = ("uniform", "nri_uniform", "ror", "default")
_NORMALIZE = ("l1", "none")
_MAX_POINTS = {"uniform": 64, "nri_uniform": 64, "ror": 16, "default": 12}
_BINS = {
    "uniform": "P + 2",
    "nri_uniform": "P * (P - 1) + 3",
    "ror": "one per rotation class",
    "default": "2 ** P",
}


def lbp_n_bins(n_points: int, method: str) -> int:
    """Number of histogram bins of one LBP code image with ``n_points`` samples."""
    if method == "uniform":
        return n_points + 2
    if method == "nri_uniform":
        return n_points * (n_points - 1) + 3
    if method == "ror":
        return len(_ror_codes(n_points))
    return 2**n_points


@cache
def _ror_codes(n_points: int) -> np.ndarray:
    """Sorted distinct rotation-minimal P-bit codes (the values skimage's "ror" can give)."""
    return np.unique(_ror_minimum(n_points))


@cache
def _ror_lut(n_points: int) -> np.ndarray:
    """Map from a "ror" code (0 .. 2**P - 1) to its compact bin index."""
    lut = np.searchsorted(_ror_codes(n_points), _ror_minimum(n_points)).astype(np.intp)
    lut.flags.writeable = False
    return lut


def _ror_minimum(n_points: int) -> np.ndarray:
    codes = np.arange(2**n_points, dtype=np.int64)
    mask = 2**n_points - 1
    best = codes.copy()
    for k in range(1, n_points):
        np.minimum(best, ((codes >> k) | (codes << (n_points - k))) & mask, out=best)
    return best


@lru_cache(maxsize=64)
def grid_cell_index(height: int, width: int, rows: int, cols: int) -> np.ndarray:
    """(height, width) map of each pixel's cell number ``row * cols + col`` (read-only).

    Cells cut the image as ``np.array_split`` does: the first ``height % rows`` cell rows
    are one pixel taller than the others (likewise for columns).
    """
    row_of = np.repeat(np.arange(rows), _split_sizes(height, rows))
    col_of = np.repeat(np.arange(cols), _split_sizes(width, cols))
    index = (row_of[:, None] * cols + col_of[None, :]).astype(np.intp)
    index.flags.writeable = False
    return index


def _split_sizes(length: int, parts: int) -> list[int]:
    q, extra = divmod(length, parts)
    return [q + 1] * extra + [q] * (parts - extra)


def check_grid_fits(name: str, shape: tuple[int, ...], grid: tuple[int, int]) -> None:
    """Raise ValueError when an image has fewer pixel rows/columns than the grid has cells."""
    if shape[0] < grid[0] or shape[1] < grid[1]:
        raise ValueError(
            f"{name}: an image of {shape[0]}x{shape[1]} pixels is smaller than the grid of "
            f"{grid[0]}x{grid[1]} cells (every cell needs at least one pixel); use a smaller "
            "grid or set size to resize the images"
        )


def validate_cell_histograms(name: str, grid: object, size: object, normalize: object) -> None:
    """Check the parameters of histograms over a grid of cells (lbp, color-hist).

    A (rows, cols) grid, a (height, width) size or None, and normalize "l1" or "none";
    raise InvalidParameterError, its message starting with ``name``.
    """
    if not _is_int_pair(grid) or min(grid) < 1:
        raise InvalidParameterError(
            f"{name}: grid must be a (rows, cols) pair of positive integers, got {grid!r}"
        )
    if size is not None:
        if not _is_int_pair(size) or min(size) < 1:
            raise InvalidParameterError(
                f"{name}: size must be None or a (height, width) pair of positive integers, "
                f"got {size!r}"
            )
        if size[0] < grid[0] or size[1] < grid[1]:
            raise InvalidParameterError(
                f"{name}: grid {tuple(grid)} has more cells than size {tuple(size)} has pixels"
            )
    if normalize not in _NORMALIZE:
        raise InvalidParameterError(f"{name}: normalize must be 'l1' or 'none', got {normalize!r}")


def _is_int_pair(value: object) -> bool:
    return isinstance(value, (tuple, list)) and len(value) == 2 and all(map(is_int, value))


@register_extractor("lbp")
class LBPExtractor(Extractor):
    """Local binary pattern histograms (Ojala et al. 2002) over a grid of cells.

    The gray image (BT.601 luma, uint8) is resized to ``size``, padded by reflection
    (``BORDER_REFLECT_101``) so that every pixel has a full circle of neighbours, and
    coded with ``skimage.feature.local_binary_pattern`` for each radius. Each cell of the
    grid gets a histogram of the codes of its pixels. The vector is, radius by radius, cell
    by cell (row-major), the bins of each histogram.

    Parameters
    ----------
    radii : int, float or tuple, default=(1, 2, 3)
        Radius or radii in pixels of the sampling circle; one histogram set per radius.
    points : int, tuple or None, default=None
        Number of samples P on each circle: one per radius (a tuple as long as ``radii``),
        or None for ``round(8 * radius)``.
    method : {"uniform", "nri_uniform", "ror", "default"}, default="uniform"
        "uniform": rotation-invariant uniform patterns, P + 2 bins. "nri_uniform":
        non-rotation-invariant uniform patterns (Ahonen et al.), P * (P - 1) + 3 bins.
        "ror": rotation-invariant patterns, one bin per rotation class (36 for P = 8;
        P <= 16). "default": raw P-bit codes, 2 ** P bins (P <= 12).
    grid : tuple of int, default=(4, 4)
        (rows, cols) of cells; cells split the image like ``np.array_split`` (the first
        ``height % rows`` rows of cells are one pixel taller).
    size : tuple of int or None, default=(128, 128)
        (height, width) every image is resized to, or None to keep each image's own size
        (an image with fewer pixels than the grid has cells then raises ValueError).
    normalize : {"l1", "none"}, default="l1"
        "l1": each cell's histogram sums to 1; "none": raw pixel counts.
    decode : {"reduced", "exact"}, default="reduced"
        Large JPEGs at 1/2-1/8 scale, still twice ``size`` (5x faster), or in full: extraction.md.
    """

    version = "1"

    def __init__(
        self,
        radii: int | float | tuple[int | float, ...] = (1, 2, 3),
        points: int | tuple[int, ...] | None = None,
        method: str = "uniform",
        grid: tuple[int, int] = (4, 4),
        size: tuple[int, int] | None = (128, 128),
        normalize: str = "l1",
        decode: str = "reduced",
    ) -> None:
        self.radii = radii
        self.points = points
        self.method = method
        self.grid = grid
        self.size = size
        self.normalize = normalize
        self.decode = decode

    # -- parameters ---------------------------------------------------------------------------
    def _radii(self) -> list[float]:
        radii = self.radii if isinstance(self.radii, (tuple, list)) else [self.radii]
        return [float(r) for r in radii]

    def _points(self) -> list[int]:
        if self.points is None:
            return [round(8 * r) for r in self._radii()]
        if isinstance(self.points, (tuple, list)):
            return [int(p) for p in self.points]
        return [int(self.points)] * len(self._radii())

    def validate_params(self) -> None:
        check_decode("lbp", self.decode)
        radii = self.radii if isinstance(self.radii, (tuple, list)) else [self.radii]
        if len(radii) == 0:
            raise InvalidParameterError("lbp: radii must hold at least one radius")
        for r in radii:
            if (
                isinstance(r, bool)
                or not isinstance(r, (int, float, np.integer, np.floating))
                or not math.isfinite(r)
                or r <= 0
            ):
                raise InvalidParameterError(
                    f"lbp: radii must be positive numbers of pixels, got {r!r} in {self.radii!r}"
                )
        if len(set(self._radii())) != len(radii):
            raise InvalidParameterError(f"lbp: radii must be distinct, got {self.radii!r}")
        if self.method not in _METHODS:
            raise InvalidParameterError(
                f"lbp: method must be one of {', '.join(map(repr, _METHODS))}, got {self.method!r}"
            )
        if self.points is not None:
            if isinstance(self.points, (tuple, list)):
                if len(self.points) != len(radii):
                    raise InvalidParameterError(
                        f"lbp: points must give one count per radius ({len(radii)}), "
                        f"got {self.points!r}"
                    )
                points = list(self.points)
            else:
                points = [self.points]
            if not all(is_int(p) for p in points):
                raise InvalidParameterError(
                    f"lbp: points must be None, an integer or a tuple of integers, "
                    f"got {self.points!r}"
                )
        limit = _MAX_POINTS[self.method]
        for r, p in zip(self._radii(), self._points(), strict=True):
            if not 1 <= p <= limit:
                raise InvalidParameterError(
                    f"lbp: method={self.method!r} takes 1..{limit} points per circle "
                    f"({_BINS[self.method]} bins per cell), got {p} for radius {r:g}; "
                    "set points, or smaller radii"
                )
        validate_cell_histograms("lbp", self.grid, self.size, self.normalize)

    def input_spec(self) -> InputSpec:
        size = None if self.size is None else (int(self.size[0]), int(self.size[1]))
        return InputSpec(color="gray", size=size, dtype=np.uint8, decode=self.decode)

    def _n_bins(self) -> list[int]:
        return [lbp_n_bins(p, self.method) for p in self._points()]

    def _feature_dim(self) -> int:
        return int(self.grid[0]) * int(self.grid[1]) * sum(self._n_bins())

    # -- features -----------------------------------------------------------------------------
    def code_images(self, image: np.ndarray) -> list[np.ndarray]:
        """The code image of one prepared (H, W) uint8 image at each radius: (H, W) intp
        arrays of histogram bin indices (for "ror", the compact bin of the rotation class),
        what the cell histograms count."""
        height, width = image.shape
        pad = math.ceil(max(self._radii())) + 1
        # Reflection gives border pixels real neighbours; skimage would read zeros there.
        padded = cv2.copyMakeBorder(image, pad, pad, pad, pad, cv2.BORDER_REFLECT_101)
        out = []
        for radius, n_points in zip(self._radii(), self._points(), strict=True):
            lbp = local_binary_pattern(padded, n_points, radius, self.method)
            codes = lbp[pad : pad + height, pad : pad + width].astype(np.intp)
            if self.method == "ror":
                codes = _ror_lut(n_points)[codes]
            out.append(codes)
        return out

    def circles(self) -> list[tuple[float, int, int]]:
        """(radius, points P, histogram bins) of each code image, in :meth:`code_images`'
        order; codes run from 0 to bins - 1."""
        return list(zip(self._radii(), self._points(), self._n_bins(), strict=True))

    def _transform_one(self, image: np.ndarray) -> np.ndarray:
        rows, cols = int(self.grid[0]), int(self.grid[1])
        check_grid_fits("lbp", image.shape, (rows, cols))
        height, width = image.shape
        cells = grid_cell_index(height, width, rows, cols)
        n_cells = rows * cols
        parts = []
        for codes, n_bins in zip(self.code_images(image), self._n_bins(), strict=True):
            hist = np.bincount((cells * n_bins + codes).ravel(), minlength=n_cells * n_bins)
            hist = hist.reshape(n_cells, n_bins).astype(np.float32)
            if self.normalize == "l1":
                hist /= hist.sum(axis=1, keepdims=True)  # every cell has at least one pixel
            parts.append(hist.ravel())
        return np.concatenate(parts)

    def get_feature_names_out(self, input_features: object = None) -> np.ndarray:
        """``lbp_r{radius}_c{row}_{col}_b{bin}``, in output order."""
        rows, cols = int(self.grid[0]), int(self.grid[1])
        names = []
        for radius, n_points in zip(self._radii(), self._points(), strict=True):
            bins = (
                _ror_codes(n_points).tolist()
                if self.method == "ror"
                else range(lbp_n_bins(n_points, self.method))
            )
            names += [
                f"lbp_r{radius:g}_c{r}_{c}_b{b}"
                for r in range(rows)
                for c in range(cols)
                for b in bins
            ]
        return np.asarray(names, dtype=object)

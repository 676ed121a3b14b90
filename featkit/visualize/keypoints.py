"""Where local descriptors are taken: SIFT's keypoints and dense SIFT's grid."""

from __future__ import annotations

import cv2
import numpy as np

from featkit.extractors.dsift import DenseSiftExtractor
from featkit.extractors.sift import SiftExtractor
from featkit.visualize.base import Picture, to_rgb

__all__ = ["CENTRE_COLOR", "KEYPOINT_COLOR", "PATCH_COLORS", "dsift_picture", "sift_picture"]

#: Colour of SIFT keypoints, and of dense SIFT's descriptor centres (3x3 dots).
KEYPOINT_COLOR = (0, 255, 0)
CENTRE_COLOR = (255, 0, 0)
#: Outline colours of dense SIFT's patches, one per bin size (cycled).
PATCH_COLORS = ((255, 255, 0), (0, 255, 255), (255, 0, 255), (0, 128, 255), (255, 128, 0))


def sift_picture(extractor: SiftExtractor, image: object) -> Picture:
    """``extractor``'s keypoints on the image it describes: a circle of the keypoint's size
    (its diameter) and a radius along its orientation (OpenCV's rich keypoints)."""
    described, keypoints = extractor.keypoints(extractor.prepare(image))
    # A fixed colour: drawKeypoints' default picks random ones, a picture per call.
    out = cv2.drawKeypoints(
        to_rgb(described),
        keypoints,
        None,
        color=KEYPOINT_COLOR,
        flags=cv2.DRAW_MATCHES_FLAGS_DRAW_RICH_KEYPOINTS,
    )
    height, width = described.shape[:2]
    caption = (
        f"sift: the {len(keypoints)} keypoints described in the {height}x{width} gray image; "
        "circle: the keypoint size (the descriptor spans 6 times it), line: its orientation"
    )
    return Picture(out, caption)


def dsift_picture(extractor: DenseSiftExtractor, image: object) -> Picture:
    """``extractor``'s grid on the image it describes: every descriptor centre as a 3x3 dot
    and, at the centre nearest the middle, each bin size's patch of 4 x 4 spatial bins."""
    prepared = extractor.prepare(image)
    out = to_rgb(prepared)
    height, width = prepared.shape[:2]
    grid = extractor.grid(height, width)
    given = extractor.bin_sizes
    bins = [int(b) for b in given] if isinstance(given, (list, tuple)) else [int(given)]
    if len(grid) == 0:
        caption = f"dsift: the {height}x{width} image is too small for one descriptor"
        return Picture(out, caption)
    centres = grid[: len(grid) // len(bins), :2].astype(np.intp)  # the same for every bin size
    middle = centres[np.argmin(np.hypot(centres[:, 0] - width / 2, centres[:, 1] - height / 2))]
    for k, bin_size in enumerate(bins):
        _outline_patch(out, middle, bin_size, PATCH_COLORS[k % len(PATCH_COLORS)])
    for dy in (-1, 0, 1):  # dots last, on top of the outlines
        for dx in (-1, 0, 1):
            ys = np.clip(centres[:, 1] + dy, 0, height - 1)
            xs = np.clip(centres[:, 0] + dx, 0, width - 1)
            out[ys, xs] = CENTRE_COLOR
    n_rows = len(np.unique(centres[:, 1]))
    n_cols = len(np.unique(centres[:, 0]))
    sizes = ", ".join(f"{b} px ({4 * b}x{4 * b} patch)" for b in bins)
    caption = (
        f"dsift: {n_rows}x{n_cols} = {len(centres)} descriptor centres every "
        f"{int(extractor.step)} px on the {height}x{width} image (red); bins of {sizes}, "
        "one patch outlined with its 4x4 spatial bins at the centre nearest the middle"
    )
    return Picture(out, caption)


def _outline_patch(
    out: np.ndarray, centre: np.ndarray, bin_size: int, color: tuple[int, int, int]
) -> None:
    """Draw the 4 x 4 spatial bins of the descriptor at ``centre`` (x, y): bin centres lie at
    ``centre + (-1.5, -0.5, 0.5, 1.5) * bin``, so bin edges at ``centre + k * bin``."""
    height, width = out.shape[:2]
    x, y = int(centre[0]), int(centre[1])
    reach = 2 * bin_size
    y0, y1 = max(y - reach, 0), min(y + reach, height - 1)
    x0, x1 = max(x - reach, 0), min(x + reach, width - 1)
    for k in range(-2, 3):
        column, row = x + k * bin_size, y + k * bin_size
        if 0 <= column < width:
            out[y0 : y1 + 1, column] = color
        if 0 <= row < height:
            out[row, x0 : x1 + 1] = color

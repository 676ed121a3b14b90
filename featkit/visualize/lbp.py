"""LBP's code images: every pixel's local binary pattern code, one panel per radius."""

from __future__ import annotations

import numpy as np

from featkit.extractors.lbp import LBPExtractor
from featkit.visualize.base import Picture, scale_to_uint8, to_rgb

__all__ = ["SEPARATOR", "lbp_picture"]

#: Colour of the 2-px band between panels: pure red never occurs in a gray code image.
SEPARATOR = (255, 0, 0)
_GAP = 2


def lbp_picture(extractor: LBPExtractor, image: object) -> Picture:
    """The code image of ``image`` (prepared as ``extractor`` prepares it) at each radius,
    left to right: code c of n bins is gray level ``round(255 * c / (n - 1))``."""
    extractor.validate_params()
    prepared = extractor.prepare(image)
    circles = extractor.circles()
    panels = [
        to_rgb(scale_to_uint8(codes, float(max(n_bins - 1, 1))))
        for codes, (_, _, n_bins) in zip(extractor.code_images(prepared), circles, strict=True)
    ]
    height = prepared.shape[0]
    band = np.empty((height, _GAP, 3), dtype=np.uint8)
    band[:] = SEPARATOR
    parts = [panels[0]]
    for panel in panels[1:]:
        parts += [band, panel]
    radii = ", ".join(f"{r:g}" for r, _, _ in circles)
    points = ", ".join(str(p) for _, p, _ in circles)
    order = ", left to right" if len(panels) > 1 else ""
    caption = (
        f"lbp: {extractor.method} code images of the {height}x{prepared.shape[1]} gray image "
        f"at radius {radii} (P = {points}){order}; black = code 0, white = the last "
        f"bin{' (the non-uniform patterns)' if extractor.method == 'uniform' else ''}; the "
        f"features are their histograms over {extractor.grid[0]}x{extractor.grid[1]} cells"
    )
    return Picture(np.concatenate(parts, axis=1), caption)

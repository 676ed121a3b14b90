"""HOG's glyph picture: each cell's orientation histogram drawn as a star of lines.

:func:`hog_glyphs` draws what ``skimage.feature.hog(..., visualize=True)`` draws, with equal
values: in every cell, one line per orientation bin through the cell centre, perpendicular
to the bin's mid-angle gradient direction (so along the edges), its pixels adding that
bin's value of the cell histogram (before block normalisation).
"""

from __future__ import annotations

import numpy as np
from skimage.draw import line

from featkit.extractors.hog import HogExtractor
from featkit.visualize.base import Picture, scale_to_uint8, to_rgb

__all__ = ["WHITE_PERCENTILE", "hog_glyphs", "hog_picture"]

#: Percentile of the drawn (non-zero) glyph pixels shown white in the picture.
WHITE_PERCENTILE = 99.0


def hog_glyphs(
    cells: np.ndarray, pixels_per_cell: tuple[int, int], shape: tuple[int, int]
) -> np.ndarray:
    """skimage's HOG visualisation of ``cells`` (cell rows, cell columns, orientations), the
    cell histograms of an image of ``shape`` (height, width): a float64 (height, width) image."""
    c_row, c_col = int(pixels_per_cell[0]), int(pixels_per_cell[1])
    n_rows, n_cols, n_or = cells.shape
    radius = min(c_row, c_col) // 2 - 1
    mids = np.pi * (np.arange(n_or) + 0.5) / n_or
    d_r, d_c = radius * np.sin(mids), radius * np.cos(mids)
    height, width = int(shape[0]), int(shape[1])
    out = np.zeros(height * width, dtype=np.float64)
    if radius < 0:  # cells under 2 px: lines leave their cell, draw them one by one as skimage
        return _glyphs_one_by_one(cells, (c_row, c_col), (height, width), d_r, d_c)
    # skimage draws from int(centre - dc) to int(centre + dc): with radius >= 0 every
    # coordinate is positive, int() floors, and each cell's line is cell (0, 0)'s shifted
    # by whole cells, so one line per orientation serves every cell.
    r0, c0 = c_row // 2, c_col // 2
    top = (np.arange(n_rows) * c_row)[:, None, None]
    left = (np.arange(n_cols) * c_col)[None, :, None]
    for o in range(n_or):
        rr, cc = line(int(r0 - d_c[o]), int(c0 + d_r[o]), int(r0 + d_c[o]), int(c0 - d_r[o]))
        index = (top + rr) * width + (left + cc)  # (cell rows, cell columns, line pixels)
        weights = np.broadcast_to(cells[:, :, o, None], index.shape)
        out += np.bincount(index.ravel(), weights=weights.ravel(), minlength=out.size)
    return out.reshape(height, width)


def _glyphs_one_by_one(
    cells: np.ndarray,
    ppc: tuple[int, int],
    shape: tuple[int, int],
    d_r: np.ndarray,
    d_c: np.ndarray,
) -> np.ndarray:
    out = np.zeros(shape, dtype=np.float64)
    for r in range(cells.shape[0]):
        for c in range(cells.shape[1]):
            centre = (r * ppc[0] + ppc[0] // 2, c * ppc[1] + ppc[1] // 2)
            for o in range(cells.shape[2]):
                rr, cc = line(
                    int(centre[0] - d_c[o]),
                    int(centre[1] + d_r[o]),
                    int(centre[0] + d_c[o]),
                    int(centre[1] - d_r[o]),
                )
                out[rr, cc] += cells[r, c, o]
    return out


def hog_picture(extractor: HogExtractor, image: object) -> Picture:
    """The glyph image of ``image`` prepared as ``extractor`` prepares it, as gray levels:
    the 99th percentile of the drawn pixels and above is white."""
    prepared = extractor.prepare(image)
    cells = extractor.cell_histograms(prepared)
    glyphs = hog_glyphs(cells, extractor.pixels_per_cell, prepared.shape[:2])
    drawn = glyphs[glyphs > 0]
    # Scaled by the single brightest pixel, most glyphs of a photo are near black; a few
    # strong edges saturating keeps the others visible.
    top = float(np.percentile(drawn, WHITE_PERCENTILE)) if drawn.size else 0.0
    height, width = prepared.shape[:2]
    ppc = extractor.pixels_per_cell
    caption = (
        f"hog: cell histograms of the {height}x{width} {extractor.color} image, "
        f"{cells.shape[0]}x{cells.shape[1]} cells of {ppc[0]}x{ppc[1]} px, "
        f"{cells.shape[2]} orientations, drawn as skimage's hog(visualize=True) draws them: "
        "in each cell a line along the edges of each orientation bin, as bright as the bin "
        "(before block normalisation; the brightest 1% of line pixels white)"
    )
    return Picture(to_rgb(scale_to_uint8(glyphs, top)), caption)

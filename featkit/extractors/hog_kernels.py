"""The numeric kernels of HOG, vectorised over a batch of same-size images.

:mod:`featkit.extractors.hog` states the algorithm (scikit-image's, step for step) and
validates the parameters; this module computes it: gradients (:func:`_gradients`, and the
dominant channel's for colour images), the orientation bin of every pixel
(:func:`_slot_index`), every cell histogram of a chunk of images in one weighted
``np.bincount``, and the block normalisations. :func:`hog_batch` is the entry point.
"""

from __future__ import annotations

import functools
from typing import Any, NamedTuple

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from featkit.exceptions import InvalidParameterError

__all__ = ["HogParams", "block_grid", "cell_histograms", "hog_batch"]

_EPS = 1e-5  # skimage's _hog_normalize_block default
_HYS_CLIP = 0.2  # L2-Hys clipping threshold (Lowe; Dalal and Triggs)
# Images are processed in chunks of about this many pixels: large enough to amortise numpy's
# per-call overhead over small images, small enough that the temporaries stay in cache.
_CHUNK_PIXELS = 1 << 16
# Largest integer below which float32 represents every integer exactly.
_FLOAT32_EXACT = 1 << 24


class HogParams(NamedTuple):
    """Validated HOG parameters, as :func:`hog_batch` takes them."""

    orientations: int
    pixels_per_cell: tuple[int, int]
    cells_per_block: tuple[int, int]
    block_norm: str
    transform_sqrt: bool


# --------------------------------------------------------------------------- layout


def block_grid(
    prefix: str,
    shape: tuple[int, int],
    ppc: tuple[int, int],
    cpb: tuple[int, int],
    subject: str | None = None,
) -> tuple[int, int, int, int]:
    """(cell rows, cell columns, block rows, block columns) of an image of ``shape``.

    Raises :class:`InvalidParameterError` (its message starting with ``prefix``) when not
    one block fits; ``subject`` names what is too small in that message.
    """
    height, width = shape
    subject = subject or f"an image of {height}x{width} pixels (height x width)"
    n_cells = (height // ppc[0], width // ppc[1])
    n_blocks = (n_cells[0] - cpb[0] + 1, n_cells[1] - cpb[1] + 1)
    if n_blocks[0] <= 0 or n_blocks[1] <= 0:
        need = (cpb[0] * ppc[0], cpb[1] * ppc[1])
        raise InvalidParameterError(
            f"{prefix}{subject} is smaller than one block of {cpb[0]}x{cpb[1]} cells of "
            f"{ppc[0]}x{ppc[1]} pixels, which needs at least {need[0]}x{need[1]}; use a "
            "larger size or smaller pixels_per_cell / cells_per_block"
        )
    return n_cells[0], n_cells[1], n_blocks[0], n_blocks[1]


# --------------------------------------------------------------------------- the algorithm


def _gradients(x: np.ndarray, rows: int, cols: int) -> tuple[np.ndarray, np.ndarray]:
    """Central differences of (n, H, W[, C]) images on their top-left ``rows`` x ``cols``.

    Like skimage, the first and last row (column) of the whole image get a zero gradient.
    """
    height, width = x.shape[1:3]
    shape = (x.shape[0], rows, cols, *x.shape[3:])
    g_row = np.zeros(shape, dtype=x.dtype)
    g_col = np.zeros(shape, dtype=x.dtype)
    top = min(rows, height - 1)  # rows 1 .. top-1 have both neighbours
    if top > 1:
        np.subtract(x[:, 2 : top + 1, :cols], x[:, : top - 1, :cols], out=g_row[:, 1:top])
    right = min(cols, width - 1)
    if right > 1:
        np.subtract(x[:, :rows, 2 : right + 1], x[:, :rows, : right - 1], out=g_col[:, :, 1:right])
    return g_row, g_col


def _dominant_gradients(
    x: np.ndarray, rows: int, cols: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per pixel, the gradient of the channel of largest magnitude, and that magnitude.

    ``x`` is (n, H, W, C). Like skimage, magnitudes are ``np.hypot`` in the image's float
    type (its rounding decides near-ties) and the first of equal channels wins.
    """
    planes = np.ascontiguousarray(np.moveaxis(x, -1, 0))  # channel planes, each (n, H, W)
    g_row, g_col = _gradients(planes[0], rows, cols)
    magnitude = np.hypot(g_row, g_col)
    for plane in planes[1:]:
        other_row, other_col = _gradients(plane, rows, cols)
        other = np.hypot(other_row, other_col)
        larger = other > magnitude
        g_row = np.where(larger, other_row, g_row)
        g_col = np.where(larger, other_col, g_col)
        np.maximum(magnitude, other, out=magnitude)
    return g_row, g_col, magnitude


def _slot_index(
    g_row: np.ndarray, g_col: np.ndarray, orientations: int, base: np.ndarray
) -> np.ndarray:
    """Histogram slot of every pixel: ``base - orientations`` plus its signed bin (intp).

    skimage bins ``theta = rad2deg(arctan2(g_row, g_col)) % 180`` (float64) into
    ``[k * w, (k + 1) * w)``, ``w = 180. / orientations``, and a theta at or past the last
    edge into no bin. float64 arctan2 and that modulo would cost more than the rest of HOG
    together, so the bin comes from a float32 angle in bin units, ``q`` in [-n, n], and only
    pixels within ``tol`` of a bin edge (where float32 rounding could matter) are redone
    with skimage's float64 formula. Each cell has ``2n + 2`` slots: slot ``floor(q) + n``
    (folded onto bins ``mod n`` afterwards, so that 180 degrees is bin 0) and a last slot
    for the pixels skimage leaves out. ``base`` holds ``cell * (2n + 2) + n`` per pixel.
    """
    n = orientations
    q = np.arctan2(g_row.astype(np.float32, copy=False), g_col.astype(np.float32, copy=False))
    q *= np.float32(n / np.pi)
    slot = np.floor(q)
    frac = np.subtract(q, slot, out=q)
    frac -= np.float32(0.5)
    # float32 arctan2 is within a few ulps (< 1e-6 rad): tol is hundreds of times that.
    tol = max(1e-3, 1e-5 * n)
    near = np.abs(frac, out=frac) > np.float32(0.5 - tol)
    # Pixels with g_row == 0 (either sign) lie at 0 or 180 degrees: bin 0 either way, and
    # floor(q) in {-n, 0, n} folds there exactly.
    near &= g_row != 0
    slot = slot.astype(base.dtype, copy=False)
    slot += base
    redo = np.flatnonzero(near)
    if redo.size:
        gr = g_row.reshape(-1)[redo].astype(np.float64)
        gc = g_col.reshape(-1)[redo].astype(np.float64)
        theta = np.rad2deg(np.arctan2(gr, gc)) % 180
        # skimage's edges (180. / n) * k in float64; bin n means "no bin": the last slot.
        edges = (180.0 / n) * np.arange(1, n + 1, dtype=np.float64)
        exact = np.searchsorted(edges, theta, side="right")
        exact[exact == n] = n + 1
        slot.reshape(-1)[redo] = base.reshape(-1)[redo] + exact
    return slot.astype(np.intp)


def _normalize_blocks(blocks: np.ndarray, block_norm: str) -> np.ndarray:
    """skimage's block normalisations, in place, of (..., block values) float64 rows."""
    if block_norm in ("L1", "L1-sqrt"):
        # Histograms are non-negative: the L1 norm is the plain sum.
        blocks /= blocks.sum(axis=-1, keepdims=True) + _EPS
        return np.sqrt(blocks, out=blocks) if block_norm == "L1-sqrt" else blocks
    blocks /= np.sqrt(np.einsum("...i,...i->...", blocks, blocks) + _EPS**2)[..., None]
    if block_norm == "L2-Hys":
        np.minimum(blocks, _HYS_CLIP, out=blocks)
        blocks /= np.sqrt(np.einsum("...i,...i->...", blocks, blocks) + _EPS**2)[..., None]
    return blocks


@functools.lru_cache(maxsize=16)
def _slot_base(
    n_images: int, grid: tuple[int, int, int, int], ppc: tuple[int, int], orientations: int
) -> np.ndarray:
    """``cell * (2n + 2) + n`` for every pixel of ``n_images`` images (see _slot_index).

    Cached (read-only): one image at a time through :func:`hog` would otherwise rebuild it
    on every call.
    """
    ncr, ncc = grid[:2]
    slots = 2 * orientations + 2
    total = n_images * ncr * ncc * slots
    # Slots are computed in float (floor(q) + base): float32 holds integers exactly up to 2**24.
    dtype = np.float32 if total <= _FLOAT32_EXACT else np.float64
    cell = (np.arange(ncr * ppc[0]) // ppc[0])[:, None] * ncc + (np.arange(ncc * ppc[1]) // ppc[1])[
        None, :
    ]
    image = np.arange(n_images)[:, None, None] * (ncr * ncc)
    base = ((image + cell) * slots + orientations).astype(dtype)
    base.flags.writeable = False
    return base


def _cell_chunk(
    x: np.ndarray, params: HogParams, grid: tuple[int, int, int, int], base: np.ndarray
) -> np.ndarray:
    """Cell histograms of (n, H, W[, C]) float images (already square-rooted if asked):
    (n, cell rows, cell columns, orientations) float64, each divided by the cell area."""
    n_images, n = x.shape[0], params.orientations
    ppc = params.pixels_per_cell
    ncr, ncc = grid[:2]
    rows, cols = ncr * ppc[0], ncc * ppc[1]
    if x.ndim == 4 and x.shape[3] > 1:
        g_row, g_col, magnitude = _dominant_gradients(x, rows, cols)
    else:
        g_row, g_col = _gradients(x[..., 0] if x.ndim == 4 else x, rows, cols)
        magnitude = np.square(g_row)
        magnitude += np.square(g_col)
        np.sqrt(magnitude, out=magnitude)
    slot = _slot_index(g_row, g_col, n, base[:n_images])

    # One weighted bincount makes every cell histogram of the chunk, then the signed slots
    # fold onto the n bins: slot k (angle k - n bins) and slot n + k are bin k, slot 2n (180
    # degrees) is bin 0, and the last slot (no bin) is dropped.
    slots = 2 * n + 2
    hist = np.bincount(
        slot.reshape(-1), weights=magnitude.reshape(-1), minlength=n_images * ncr * ncc * slots
    ).reshape(n_images, ncr, ncc, slots)
    cells = hist[..., n : 2 * n] + hist[..., :n]
    cells[..., 0] += hist[..., 2 * n]
    cells /= ppc[0] * ppc[1]
    return cells


def _hog_chunk(
    x: np.ndarray, params: HogParams, grid: tuple[int, int, int, int], base: np.ndarray
) -> np.ndarray:
    """HOG of (n, H, W[, C]) float images (already square-rooted if asked): (n, d) float64."""
    n_images, cpb = x.shape[0], params.cells_per_block
    cells = _cell_chunk(x, params, grid, base)
    # (n, nbr, nbc, bins, br, bc) windows -> (n, nbr, nbc, br, bc, bins), skimage's order.
    windows = sliding_window_view(cells, cpb, axis=(1, 2)).transpose(0, 1, 2, 4, 5, 3)
    blocks = np.array(windows, order="C").reshape(n_images, grid[2], grid[3], -1)
    return _normalize_blocks(blocks, params.block_norm).reshape(n_images, -1)


def cell_histograms(images: np.ndarray, params: HogParams) -> np.ndarray:
    """The cell histograms HOG normalises into blocks, of a stack of same-size float images
    (n, H, W) or (n, H, W, C): (n, cell rows, cell columns, orientations) float64.

    Each is the magnitude-weighted orientation histogram divided by the cell area:
    skimage's ``orientation_histogram``, which ``hog(visualize=True)`` draws.
    """
    grid = block_grid("hog: ", images.shape[1:3], params.pixels_per_cell, params.cells_per_block)
    base = _slot_base(images.shape[0], grid, params.pixels_per_cell, params.orientations)
    x = np.sqrt(images) if params.transform_sqrt else images
    return _cell_chunk(x, params, grid, base)


def hog_batch(images: np.ndarray, params: HogParams, out_dtype: Any) -> np.ndarray:
    """HOG of a stack of same-size float images (n, H, W) or (n, H, W, C): (n, d).

    Rows of ``out_dtype``; the images are taken as they are (no rescaling).
    """
    ppc, cpb = params.pixels_per_cell, params.cells_per_block
    grid = block_grid("hog: ", images.shape[1:3], ppc, cpb)
    dim = grid[2] * grid[3] * cpb[0] * cpb[1] * params.orientations
    out = np.empty((images.shape[0], dim), dtype=out_dtype)
    per_image = int(np.prod(images.shape[1:]))
    step = min(images.shape[0], max(1, _CHUNK_PIXELS // max(per_image, 1)))
    base = _slot_base(step, grid, ppc, params.orientations)
    for start in range(0, images.shape[0], step):
        x = images[start : start + step]
        if params.transform_sqrt:
            x = np.sqrt(x)
        out[start : start + step] = _hog_chunk(x, params, grid, base)
    return out

"""The numeric kernels of dense SIFT: orientation maps, separable spatial binning, SIFT's
normalisation, and the per-thread workspace they share.

:mod:`featkit.extractors.dsift` states what is computed (and how it corresponds to
OpenCV and VLFeat) and chooses the grid and the smoothing; :func:`dense_descriptors`
computes the descriptors of one image: the gradient is taken once per smoothing and split
into 8 orientation maps (:func:`_orientation_maps`), each bin size's spatial binning is
a separable filtering of those maps evaluated only at the grid rows and columns
(:func:`_pool`), and each descriptor is normalised as SIFT does (:func:`_normalise`).
"""

from __future__ import annotations

import math
import threading
from collections.abc import Sequence
from functools import lru_cache

import cv2
import numpy as np

from featkit.extractors.sift import SIFT_DIM

__all__ = ["dense_descriptors"]

#: Quantisation of the gradient angle, in steps per orientation bin, for the table look-up:
#: 64 keeps the table (16 KiB) in the L1 cache; 128 costs ~10% more time for no measurable
#: gain in agreement with OpenCV.
_ANGLE_STEPS = 64
#: SIFT's clipping of normalised descriptor values (SIFT_DESCR_MAG_THR).
_CLIP = 0.2
_KX = np.array([[-1.0, 0.0, 1.0]], dtype=np.float32)  # filter2D correlates: I[x+1] - I[x-1]
_KY = np.array([[1.0], [0.0], [-1.0]], dtype=np.float32)  # I[y-1] - I[y+1]: y points up
_ONES = np.ones(SIFT_DIM, dtype=np.float32)


def dense_descriptors(
    image: np.ndarray,
    ys: np.ndarray,
    xs: np.ndarray,
    step: int,
    bins: tuple[int, ...],
    smoothings: Sequence[float],
    window_size: float | None,
    contrast_threshold: float,
    color: str,
) -> np.ndarray:
    """Unit-norm SIFT descriptors of a uint8 image on the grid ``ys`` x ``xs``, per bin size.

    ``ys`` and ``xs`` (non-empty, ``step`` apart) are the centres' rows and columns;
    ``smoothings[i]`` is the standard deviation of the Gaussian the image is smoothed by
    for ``bins[i]`` (0: none). Rows come bin size by bin size, each scanning the grid row
    by row; the columns are 128 per channel of ``color``. A descriptor whose weighted mean
    gradient magnitude is below ``contrast_threshold`` is all zeros.
    """
    height, width = image.shape[:2]
    channels = _channels(image, color)
    n = len(ys) * len(xs)
    # Each (bin size, channel) block is written in place into the result.
    descriptors = np.empty((len(bins) * n, SIFT_DIM * len(channels)), dtype=np.float32)
    # Bin sizes that share a smoothing share their orientation maps.
    groups: dict[float, list[int]] = {}
    for b, smoothing in zip(bins, smoothings, strict=True):
        groups.setdefault(smoothing, []).append(b)
    # Padding the maps need beyond the image so that every kernel window fits.
    margin = min(ys[0], xs[0], height - 1 - ys[-1], width - 1 - xs[-1])
    for smoothing, members in groups.items():
        radius = max(_bin_kernels(b, window_size)[0] for b in members)
        pad = max(0, radius - int(margin))
        for c, channel in enumerate(channels):
            if smoothing > 0:
                channel = cv2.GaussianBlur(
                    channel, (0, 0), smoothing, dst=_WORKSPACE.get("smooth", channel.shape)
                )
            maps = _orientation_maps(channel, pad)
            for b in members:
                radius, kernels = _bin_kernels(b, window_size)
                k = bins.index(b)
                block = descriptors[k * n : (k + 1) * n, c * SIFT_DIM : (c + 1) * SIFT_DIM]
                _pool(maps, pad - radius, ys, xs, step, kernels, out=block)
                scale = _contrast_scale(b, window_size)
                _normalise(block, scale, contrast_threshold)
    return descriptors


def _channels(image: np.ndarray, color: str) -> list[np.ndarray]:
    """Float32 planes (0..255 scale) to describe, from a uint8 gray or RGB image."""
    if color == "gray":
        channel = _WORKSPACE.get("channel", image.shape)
        np.copyto(channel, image, casting="unsafe")
        return [channel]
    rgb = np.asarray(image, dtype=np.float32)
    r, g, b = (np.ascontiguousarray(rgb[..., k]) for k in range(3))
    if color == "rgb":
        return [r, g, b]
    if color == "hsv":
        hsv = cv2.cvtColor(rgb * np.float32(1 / 255), cv2.COLOR_RGB2HSV)
        scale = np.array([255 / 360, 255, 255], dtype=np.float32)
        return [np.ascontiguousarray(hsv[..., k] * scale[k]) for k in range(3)]
    # opponent colours, as vl_phow
    return [
        (r - g) * np.float32(1 / math.sqrt(2)),
        (r + g - 2 * b) * np.float32(1 / math.sqrt(6)),
        (r + g + b) * np.float32(1 / math.sqrt(3)),
    ]


@lru_cache(maxsize=1)
def _orientation_table() -> np.ndarray:
    """Weights of the 8 orientation bins for each quantised angle (rows sum to 1)."""
    t = np.arange(8 * _ANGLE_STEPS + 1) / _ANGLE_STEPS  # angle in bins, 0..8
    dist = np.abs(t[:, None] - np.arange(8)[None, :])
    dist = np.minimum(dist, 8 - dist)  # orientations are circular
    table = np.ascontiguousarray(np.maximum(0.0, 1.0 - dist), dtype=np.float32)
    table.setflags(write=False)
    return table


@lru_cache(maxsize=256)
def _bin_kernels(bin_size: int, window_size: float | None) -> tuple[int, np.ndarray]:
    """Radius R and the 4 spatial kernels (4, 2R+1) of one bin size.

    Kernel ``i`` at offset ``d`` from the descriptor centre is the bilinear weight of bin
    ``i`` (centred at ``(i - 1.5) * bin``) times the Gaussian window; OpenCV's sample
    weights factor the same way along rows and columns.
    """
    radius = math.ceil(2.5 * bin_size) - 1
    d = np.arange(-radius, radius + 1, dtype=np.float64)
    centres = (np.arange(4) - 1.5) * bin_size
    kernels = np.maximum(0.0, 1.0 - np.abs(d[None, :] - centres[:, None]) / bin_size)
    if window_size is not None:
        kernels *= np.exp(-((d / bin_size) ** 2) / (2.0 * float(window_size) ** 2))
    kernels = np.ascontiguousarray(kernels, dtype=np.float32)
    kernels.setflags(write=False)
    return radius, kernels


@lru_cache(maxsize=256)
def _contrast_scale(bin_size: int, window_size: float | None) -> float:
    """Factor from a raw descriptor's L1 norm to its weighted mean gradient magnitude.

    The orientation weights of a pixel sum to 1, so the L1 norm is the sum of gradient
    magnitudes weighted by the 2-D kernels, whose total weight is (sum of the 1-D kernels)^2;
    gradients are twice the derivative of a 0..255 image.
    """
    total = float(_bin_kernels(bin_size, window_size)[1].astype(np.float64).sum())
    return 1.0 / (total * total * 2.0 * 255.0)


def _orientation_maps(channel: np.ndarray, pad: int) -> np.ndarray:
    """Gradient magnitude split into 8 orientation channels, (H + 2 pad, W + 2 pad, 8).

    Linear interpolation between the two nearest orientation bins; zero outside the image
    and on its outermost pixel frame (OpenCV takes no sample there). The result lives in
    the per-thread workspace, valid until the next call in the same thread.
    """
    ws = _WORKSPACE
    height, width = channel.shape
    shape = (height + 2 * pad, width + 2 * pad)
    padded = cv2.copyMakeBorder(
        channel, pad, pad, pad, pad, cv2.BORDER_CONSTANT, dst=ws.get("padded", shape), value=0
    )
    gx = cv2.filter2D(
        padded, cv2.CV_32F, _KX, dst=ws.get("gx", shape), borderType=cv2.BORDER_CONSTANT
    )
    gy = cv2.filter2D(
        padded, cv2.CV_32F, _KY, dst=ws.get("gy", shape), borderType=cv2.BORDER_CONSTANT
    )
    magnitude, angle = cv2.cartToPolar(
        gx, gy, magnitude=ws.get("magnitude", shape), angle=ws.get("angle", shape)
    )  # angle in [0, 2 pi]
    magnitude[: pad + 1] = 0
    magnitude[pad + height - 1 :] = 0
    magnitude[:, : pad + 1] = 0
    magnitude[:, pad + width - 1 :] = 0
    # Angles round to table rows 0..8 * _ANGLE_STEPS (the last row equals the first).
    angle *= np.float32(8 * _ANGLE_STEPS / (2 * math.pi))
    angle += np.float32(0.5)
    index = ws.get("index", shape, np.intp)  # take() is about 10x slower with int32 indices
    np.copyto(index, angle, casting="unsafe")
    maps = ws.get("maps", (*shape, 8))
    _orientation_table().take(index, axis=0, out=maps, mode="clip")
    # In place: replicating the magnitude 8 times first (cv2.merge) runs faster alone, but
    # the extra megabytes cost more than they save once the maps compete for the cache.
    maps *= magnitude[:, :, None]
    return maps


def _pool(
    maps: np.ndarray,
    offset: int,
    ys: np.ndarray,
    xs: np.ndarray,
    step: int,
    kernels: np.ndarray,
    out: np.ndarray,
) -> None:
    """Raw descriptors of the grid (len(ys) * len(xs), 128) into ``out``, from padded maps.

    ``offset`` is the padding left beyond this bin size's kernel radius. Rows first: for
    each grid row, the (2R+1)-row window of the maps times the 4 kernels (a strided view,
    one batched matrix product); then the same along columns on the transposed result.
    """
    ws = _WORKSPACE
    height, width, _ = maps.shape
    ny, nx, taps = len(ys), len(xs), kernels.shape[1]
    flat = maps.reshape(height, width * 8)
    rs, cs = flat.strides
    windows = _windows(flat, int(ys[0]) + offset, (ny, taps, width * 8), (rs * step, rs, cs))
    rows = np.matmul(kernels, windows, out=ws.get("rows", (ny, 4, width * 8)))
    # cv2.transpose moves 8-float pixels at once, far faster than a numpy transposed copy.
    rows = cv2.transpose(rows.reshape(ny * 4, width, 8), dst=ws.get("rows_t", (width, ny * 4, 8)))
    rows = rows.reshape(width, ny * 32)
    rs, cs = rows.strides
    windows = _windows(rows, int(xs[0]) + offset, (nx, taps, ny * 32), (rs * step, rs, cs))
    cells = np.matmul(kernels, windows, out=ws.get("cells", (nx, 4, ny * 32)))
    # (nx, 4 bin columns, ny, 4 bin rows, 8) -> (ny, 4 bin rows, nx, 4 bin columns, 8)
    cells = cv2.transpose(
        cells.reshape(nx * 4, ny * 4, 8), dst=ws.get("cells_t", (ny * 4, nx * 4, 8))
    )
    target = out.view()
    target.shape = (ny, nx, 4, 32)  # raises rather than copies: out must be a row-strided view
    np.copyto(target, cells.reshape(ny, 4, nx, 32).transpose(0, 2, 1, 3))


def _windows(
    array: np.ndarray, first_row: int, shape: tuple[int, int, int], strides: tuple[int, int, int]
) -> np.ndarray:
    """Overlapping row windows of a 2-D C-contiguous array: a read-only strided view.

    Window ``k`` holds rows ``first_row + k * step ...``; callers make sure the last one ends
    inside ``array`` (the padding covers every kernel radius).
    """
    last = first_row * strides[1] + (shape[0] - 1) * strides[0] + shape[1] * strides[1]
    if first_row < 0 or last > array.nbytes:
        raise RuntimeError("dsift: kernel windows run outside the padded maps")
    # np.ndarray over the base is ten times cheaper than numpy's as_strided helper.
    view = np.ndarray(shape, array.dtype, array, first_row * array.strides[0], strides)
    view.flags.writeable = False
    return view


def _normalise(block: np.ndarray, contrast_scale: float, threshold: float) -> None:
    """SIFT normalisation in place: L2, clip at 0.2, L2 again; low-contrast rows become 0."""
    norm = np.sqrt(np.einsum("ij,ij->i", block, block))
    contrast = (block @ _ONES) * np.float32(contrast_scale)  # L1 norm: values are >= 0
    keep = (norm > 0) & (contrast >= threshold)
    np.minimum(block, (norm * np.float32(_CLIP))[:, None], out=block)
    norm = np.sqrt(np.einsum("ij,ij->i", block, block))
    scale = np.divide(1.0, norm, out=np.zeros_like(norm), where=keep & (norm > 0))
    block *= scale[:, None]


class _Workspace(threading.local):
    """Per-thread scratch arrays reused from image to image.

    Fresh multi-megabyte temporaries cost page faults (the allocator hands their memory back
    to the system between images), which here cost as much as the computation itself.
    """

    #: Larger arrays (huge native-size images) are allocated afresh rather than kept.
    max_bytes = 16 << 20

    def __init__(self) -> None:
        self.buffers: dict[str, np.ndarray] = {}
        self.views: dict[tuple[str, tuple[int, ...], np.dtype], np.ndarray] = {}

    def get(self, name: str, shape: tuple[int, ...], dtype: type = np.float32) -> np.ndarray:
        """An uninitialised C-contiguous array of ``shape``, reusing ``name``'s memory."""
        key = (name, shape, dtype)
        view = self.views.get(key)
        if view is not None:
            return view
        dt = np.dtype(dtype)
        size = math.prod(shape)
        if size * dt.itemsize > self.max_bytes:
            return np.empty(shape, dtype=dt)
        buf = self.buffers.get(name)
        if buf is None or buf.dtype != dt or buf.size < size:
            buf = np.empty(size, dtype=dt)
            self.buffers[name] = buf
            # views of the old buffer must not be handed out any more
            self.views = {k: v for k, v in self.views.items() if k[0] != name}
        if len(self.views) > 256:  # many image sizes: start afresh rather than grow
            self.views.clear()
        view = self.views[key] = buf[:size].reshape(shape)
        return view


_WORKSPACE = _Workspace()

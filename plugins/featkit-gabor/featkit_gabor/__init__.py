"""Gabor filter-bank texture energy (Manjunath & Ma, 1996): the mean and standard deviation
of the response magnitude of S scales x K orientations of complex Gabor filters."""

from __future__ import annotations

import math
from functools import lru_cache
from typing import NamedTuple

import cv2
import numpy as np

from featkit import Extractor, InputSpec, InvalidParameterError

__all__ = ["GaborExtractor", "GaborFilter", "filter_bank"]
__version__ = "0.1.0"

#: Ratio of the centre frequencies of neighbouring scales: one octave.
OCTAVE = 2.0


class GaborFilter(NamedTuple):
    """One filter of the bank, in the parametrisation of ``skimage.filters.gabor_kernel``.

    ``theta`` is the direction of the wave vector, from the x axis (columns) towards the y
    axis (rows, pointing down): 0 responds to vertical stripes, pi/2 to horizontal ones.
    ``sigma_x`` (pixels) is the Gaussian's spread along the wave vector, ``sigma_y`` along
    the stripes. ``cv2.getGaborKernel(ksize, sigma_x, theta, 1 / frequency,
    sigma_x / sigma_y, psi)`` divided by ``2 pi sigma_x sigma_y`` is the same kernel: psi=0
    gives its real part, psi=pi/2 its imaginary part.
    """

    scale: int
    orientation: int
    frequency: float
    theta: float
    sigma_x: float
    sigma_y: float


def filter_bank(
    n_scales: int = 4, n_orientations: int = 6, max_frequency: float = 0.25
) -> list[GaborFilter]:
    """The bank, scale by scale: centre frequencies ``max_frequency / 2**s``, orientations
    ``k pi / n_orientations``, bandwidths from Manjunath & Ma's design, chosen so that
    the half-peak contours of neighbouring filters touch in frequency."""
    ln2 = math.log(2.0)
    high = float(max_frequency)
    sigma_u = (OCTAVE - 1) * high / ((OCTAVE + 1) * math.sqrt(2 * ln2))
    sigma_v = (
        math.tan(math.pi / (2 * n_orientations))
        * (high - 2 * ln2 * sigma_u**2 / high)
        / math.sqrt(2 * ln2 - (2 * ln2) ** 2 * sigma_u**2 / high**2)
    )
    bank = []
    for s in range(n_scales):
        dilation = OCTAVE**s
        for k in range(n_orientations):
            bank.append(
                GaborFilter(
                    scale=s,
                    orientation=k,
                    frequency=high / dilation,
                    theta=k * math.pi / n_orientations,
                    sigma_x=dilation / (2 * math.pi * sigma_u),
                    sigma_y=dilation / (2 * math.pi * sigma_v),
                )
            )
    return bank


@lru_cache(maxsize=4)
def _transfer_functions(
    size: int, n_scales: int, n_orientations: int, max_frequency: float
) -> np.ndarray:
    """(n_filters, 2 size, 2 size) float32 frequency responses on the DFT grid of the
    mirrored image: each filter's Gaussian in frequency, peak gain 1, DC removed."""
    freq = np.fft.fftfreq(2 * size)  # cycles per pixel, in the DFT's order
    bank = filter_bank(n_scales, n_orientations, max_frequency)
    out = np.empty((len(bank), 2 * size, 2 * size), dtype=np.float32)
    for j, f in enumerate(bank):
        cos, sin = math.cos(f.theta), math.sin(f.theta)
        # The sampled filter's response is 1-periodic: evaluate the copy nearest the centre.
        u = freq - np.round(freq - f.frequency * cos)
        v = freq - np.round(freq - f.frequency * sin)
        along = u[None, :] * cos + v[:, None] * sin - f.frequency
        across = -u[None, :] * sin + v[:, None] * cos
        # The Fourier transform of the unit-area spatial Gaussian of spreads sigma_x, sigma_y.
        out[j] = np.exp(-2 * math.pi**2 * ((f.sigma_x * along) ** 2 + (f.sigma_y * across) ** 2))
    # Zero-mean filters (as Manjunath & Ma make them): the features ignore the brightness.
    out[:, 0, 0] = 0.0
    out.flags.writeable = False
    return out


def _split_starts(length: int, parts: int) -> np.ndarray:
    """First index of each of ``parts`` cells, cut as ``np.array_split`` cuts."""
    q, extra = divmod(length, parts)
    sizes = [q + 1] * extra + [q] * (parts - extra)
    return np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(np.intp)


class GaborExtractor(Extractor):
    """Gabor texture energy (Manjunath & Ma 1996): mean and std of |response| per filter.

    The gray image is resized to size x size, as float in [0, 1], and filtered with a bank
    of n_scales x n_orientations complex Gabor filters: centre frequencies max_frequency,
    max_frequency / 2, ... (octaves), orientations k pi / n_orientations, bandwidths from
    Manjunath & Ma's design, unit gain at the centre frequency and no DC response. Each
    filter's response magnitude gives its mean and standard deviation, over the whole image
    or over each cell of a grid x grid layout (grid=4 gives a GIST-like descriptor). The
    image is mirrored at its borders (scikit-image's ``mode="reflect"``) and filtered in
    the frequency domain with untruncated filters: the magnitudes equal those of
    ``skimage.filters.gabor`` with a large ``n_stds``. The vector, of length
    grid**2 * n_scales * n_orientations * 2, is cell by cell (row-major), scale by scale,
    orientation by orientation, the mean then the standard deviation.

    Parameters
    ----------
    n_scales : int, default=4
        Number of scales (octaves), 1..6.
    n_orientations : int, default=6
        Number of orientations, evenly spaced over 180 degrees, 2..16.
    max_frequency : float, default=0.25
        Centre frequency of the finest scale, in cycles per pixel, in (0, 0.5]; each
        coarser scale halves it. Manjunath & Ma used 0.4 with 4 scales (down to 0.05).
    size : int, default=128
        Side in pixels of the square the gray image is resized to, 16..512.
    grid : int, default=1
        The statistics are taken over grid x grid cells, 1..16; 1 describes the whole image.
    """

    name = "gabor"
    version = "1"

    def __init__(
        self,
        n_scales: int = 4,
        n_orientations: int = 6,
        max_frequency: float = 0.25,
        size: int = 128,
        grid: int = 1,
    ) -> None:
        self.n_scales = n_scales
        self.n_orientations = n_orientations
        self.max_frequency = max_frequency
        self.size = size
        self.grid = grid

    def validate_params(self) -> None:
        for param, low, high in (
            ("n_scales", 1, 6),
            ("n_orientations", 2, 16),
            ("size", 16, 512),
            ("grid", 1, 16),
        ):
            value = getattr(self, param)
            if (
                isinstance(value, bool)
                or not isinstance(value, (int, np.integer))
                or not low <= value <= high
            ):
                raise InvalidParameterError(
                    f"gabor: {param} must be an int in {low}..{high}, got {value!r}"
                )
        f = self.max_frequency
        if (
            isinstance(f, bool)
            or not isinstance(f, (int, float, np.integer, np.floating))
            or not 0 < f <= 0.5
        ):
            raise InvalidParameterError(
                f"gabor: max_frequency must be a number in (0, 0.5] cycles per pixel, got {f!r}"
            )

    def input_spec(self) -> InputSpec:
        return InputSpec(color="gray", size=(int(self.size), int(self.size)), dtype=np.float32)

    def _feature_dim(self) -> int:
        return int(self.grid) ** 2 * int(self.n_scales) * int(self.n_orientations) * 2

    def _magnitudes(self, image: np.ndarray) -> np.ndarray:
        """|response| of every filter on one prepared image, float32 (n_filters, size, size)."""
        n = int(self.size)
        gains = _transfer_functions(
            n, int(self.n_scales), int(self.n_orientations), float(self.max_frequency)
        )
        # Mirroring to 2n x 2n makes the DFT's circular convolution the reflect-mode one.
        mirrored = np.empty((2 * n, 2 * n), dtype=np.float32)
        mirrored[:n, :n] = image
        mirrored[:n, n:] = image[:, ::-1]
        mirrored[n:] = mirrored[:n][::-1]
        # OpenCV's DFT is about three times faster than numpy's or scipy's at these sizes.
        spectrum = cv2.dft(mirrored, flags=cv2.DFT_COMPLEX_OUTPUT)  # (2n, 2n, re|im)
        product, response = np.empty_like(spectrum), np.empty_like(spectrum)
        out = np.empty((len(gains), n, n), dtype=np.float32)
        flags = cv2.DFT_INVERSE | cv2.DFT_SCALE | cv2.DFT_COMPLEX_OUTPUT
        for j, gain in enumerate(gains):
            np.multiply(spectrum, gain[:, :, None], out=product)
            cv2.dft(product, response, flags=flags)
            np.abs(response.view(np.complex64)[:n, :n, 0], out=out[j])
        return out

    def _transform_one(self, image: np.ndarray) -> np.ndarray:
        magnitudes = self._magnitudes(image)
        n, g = int(self.size), int(self.grid)
        starts = _split_starts(n, g)
        counts = np.diff(np.append(starts, n))
        area = counts[:, None] * counts[None, :]

        def cell_sums(x: np.ndarray) -> np.ndarray:
            # Summed in float64: the variance below is a difference of two sums.
            rows = np.add.reduceat(x, starts, axis=2, dtype=np.float64)
            return np.add.reduceat(rows, starts, axis=1)

        mean = cell_sums(magnitudes) / area
        var = np.maximum(cell_sums(np.square(magnitudes, dtype=np.float64)) / area - mean**2, 0.0)
        stats = np.stack([mean, np.sqrt(var)], axis=-1)  # (filter, row, col, mean|std)
        return stats.transpose(1, 2, 0, 3).reshape(-1).astype(np.float32)

    def response_magnitudes(self, image: object) -> np.ndarray:
        """|response| of each filter on one image (path, array, ...), float32
        (n_scales, n_orientations, size, size): the maps the statistics summarise."""
        self.validate_params()
        maps = self._magnitudes(self.prepare(image))
        return maps.reshape(int(self.n_scales), int(self.n_orientations), *maps.shape[1:])

    def get_feature_names_out(self, input_features: object = None) -> np.ndarray:
        """``s{scale}_o{orientation}_{mean|std}``, prefixed by ``r{row}c{col}_`` if grid > 1."""
        g = int(self.grid)
        cells = [f"r{r}c{c}_" if g > 1 else "" for r in range(g) for c in range(g)]
        names = [
            f"{cell}s{s}_o{k}_{stat}"
            for cell in cells
            for s in range(int(self.n_scales))
            for k in range(int(self.n_orientations))
            for stat in ("mean", "std")
        ]
        return np.asarray(names, dtype=object)

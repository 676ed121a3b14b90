"""Dense SIFT on a regular grid, VLFeat-style (vl_dsift / vl_phow), in numpy and OpenCV.

Rather than describing each keypoint on its own, as ``cv2.SIFT.compute`` does, the image
gradient is computed once and split into 8 orientation maps; the spatial binning of every
descriptor of the grid is then a separable filtering of those maps, evaluated only at the
grid rows and columns (strided windows multiplied by 4 small kernels, one BLAS call per
axis). The cost barely grows with the bin size, and several bin sizes (PHOW) share one
gradient computation. Those kernels are in :mod:`featkit.extractors.dsift_kernels`.

Correspondence with OpenCV
--------------------------
``cv2.SIFT.compute`` on ``cv2.KeyPoint(x, y, size, angle=0)`` (octave 0, the default)
computes, in ``calcSIFTDescriptor`` (``modules/features2d/src/sift.simd.hpp``):

* the image is the octave-0 base of the scale space: Gaussian-blurred with standard
  deviation ``sqrt(max(sigma**2 - 0.5**2, 0.01))`` (1.52 px for ``sigma=1.6``), whatever the
  keypoint size, since ``compute`` builds its pyramid from octave 0 for octave-0 keypoints;
* ``scl = size / 2`` and ``hist_width = SIFT_DESCR_SCL_FCTR * scl = 3 * size / 2``: one
  spatial bin is ``b = 1.5 * size`` pixels wide and the 4 x 4 bins span ``6 * size`` pixels.
  Bin size ``b`` is OpenCV size ``2 * b / 3``: ``size=2.667`` describes a 16-px patch of
  4-px bins. ``radius = round(hist_width * sqrt(2) * (4 + 1) / 2)`` bounds the samples;
* bin centres lie at ``pt + (-1.5, -0.5, 0.5, 1.5) * b`` (``pt`` rounded to the nearest
  pixel); each gradient sample is spread over the 2 x 2 nearest bins by bilinear
  interpolation (so a bin gathers a triangular window 2b wide and a descriptor a 5b-wide
  support) and over the 2 nearest of 8 orientation bins 45 degrees apart, bin ``o``
  centred at ``45 * o`` degrees, angles counter-clockwise with the y axis pointing up
  (``dx = I[y, x+1] - I[y, x-1]``, ``dy = I[y-1, x] - I[y+1, x]``); the outermost pixel
  frame of the image gives no sample;
* each sample is weighted by a Gaussian window of standard deviation 2 bins (half the
  descriptor width): ``window_size=2.0`` here;
* the orientation is relative to ``360 - kp.angle``: ``cv2.KeyPoint``'s default angle, -1,
  rotates the grid by 1 degree, so pass ``angle=0`` for up-right descriptors;
* the 128 values, ordered (bin row, bin column, orientation), index ``(4 * i + j) * 8 + o``,
  are L2-normalised, clipped at 0.2, renormalised, then multiplied by 512, rounded and
  saturated at 255.

``dsift`` computes the same sums for every grid point at once, in the same layout, and
returns the unit-norm float descriptor (OpenCV's divided by 512, before rounding): on
OpenCV's own keypoints (:func:`cv2_dense_sift`, :meth:`DenseSiftExtractor.grid`) the
median per-descriptor correlation is above 0.9999. The only departures are OpenCV's
fixed-point smoothed image and its fast atan2, and the orientation weights here, taken
from a table of angles rounded to 1/64 of a bin (0.7 degree steps, so within 0.35
degree, about OpenCV's own atan2 accuracy).

Speed
-----
Single-threaded on 224 x 224 images, against ``cv2.SIFT.compute`` on the same keypoints:
about 3-5x faster for 16-px patches at step 8 (729 descriptors), about 20x for PHOW bin
sizes 4, 6, 8, 10 at step 4, and the cost barely grows with the bin size where OpenCV's
grows with the patch area (``benchmarks/handcrafted_dsift.py``). Large temporaries live in
a per-thread workspace reused across images.

Correspondence with VLFeat
--------------------------
vl_dsift bins space the same way (bilinear, bins centred on pixels); its 'fast' mode
replaces the Gaussian window by one constant per bin. vl_phow smooths the image with a
Gaussian of ``bin_size / magnif`` (magnif 6) for each bin size and uses a window of 1.5
bins: ``sigma=None, window_size=1.5`` gives that. VLFeat orders and orients its 128 values
differently (a permutation of these); its descriptors are not reproduced bit for bit.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from functools import lru_cache

import cv2
import numpy as np

from featkit.exceptions import InvalidParameterError
from featkit.extractors.base import InputSpec, check_decode
from featkit.extractors.dsift_kernels import dense_descriptors
from featkit.extractors.local import LocalExtractor, LocalFeatures
from featkit.extractors.presets import register_preset
from featkit.extractors.sift import SIFT_DIM, root_sift
from featkit.registry import register_extractor
from featkit.validation import check_bool, check_float, check_int

__all__ = ["DenseSiftExtractor", "DenseSiftPhow", "cv2_dense_sift", "dense_grid"]

_COLORS = ("gray", "rgb", "hsv", "opponent")
#: OpenCV's assumed blur of the input image (SIFT_INIT_SIGMA).
_INIT_SIGMA = 0.5
_MAX_BIN = 256


@lru_cache(maxsize=256)
def _dense_grid(height: int, width: int, step: int, max_bin: int) -> tuple[np.ndarray, np.ndarray]:
    """:func:`dense_grid`, cached (read-only): most images of a run share one size."""
    ys, xs = dense_grid(height, width, step, max_bin)
    ys.setflags(write=False)
    xs.setflags(write=False)
    return ys, xs


def dense_grid(height: int, width: int, step: int, max_bin: int) -> tuple[np.ndarray, np.ndarray]:
    """Rows and columns (pixel indices) of the descriptor centres of a dense grid.

    Centres are ``step`` pixels apart and keep every bin centre of the largest bin size
    inside the image (a margin of ``ceil(1.5 * max_bin)`` pixels); the grid is centred,
    the spare pixels split between both sides. Either array is empty when the image is
    smaller than ``2 * ceil(1.5 * max_bin) + 1`` pixels along it.
    """
    margin = math.ceil(1.5 * max_bin)
    return _axis(int(height), step, margin), _axis(int(width), step, margin)


def _axis(length: int, step: int, margin: int) -> np.ndarray:
    """Centres ``step`` apart along one axis, ``margin`` or more from both ends, centred."""
    span = length - 1 - 2 * margin
    if span < 0:
        return np.zeros(0, dtype=np.intp)
    count = span // step + 1
    start = margin + (span - (count - 1) * step) // 2
    return start + step * np.arange(count, dtype=np.intp)


@lru_cache(maxsize=64)
def _positions(
    height: int, width: int, step: int, bins: tuple[int, ...]
) -> tuple[np.ndarray, np.ndarray]:
    """Centres as fractions of (width, height) and OpenCV sizes, in descriptor order."""
    ys, xs = dense_grid(height, width, step, max(bins))
    gy, gx = np.meshgrid(ys, xs, indexing="ij")
    xy = np.stack([gx.ravel() / width, gy.ravel() / height], axis=1)
    xy = np.tile(xy, (len(bins), 1)).astype(np.float32)
    scales = np.repeat(np.array(bins, dtype=np.float64) * 2.0 / 3.0, gx.size).astype(np.float32)
    xy.setflags(write=False)
    scales.setflags(write=False)
    return xy, scales


@register_extractor("dsift")
class DenseSiftExtractor(LocalExtractor):
    """Dense SIFT: 128-d SIFT descriptors on a regular grid, at one or several bin sizes.

    VLFeat-style (vl_dsift, vl_phow): gradient orientation maps computed once, spatial
    binning by separable filtering, sampled on the grid. With the defaults the descriptors
    are OpenCV's ``cv2.SIFT.compute`` descriptors on the same keypoints (size
    ``2 * bin / 3``, angle 0) up to rounding, several times faster (see the module
    docstring for the exact mapping). Descriptors have unit L2 norm (OpenCV's are these
    x 512); a descriptor whose gradient contrast is below ``contrast_threshold`` (a flat
    region) is all zeros. Rows come bin size by bin size, each scanning the grid row by
    row; ``xy`` are the centres as fractions of the described image's width and height,
    ``scales`` the equivalent OpenCV keypoint sizes ``2 * bin / 3``.

    Parameters
    ----------
    step : int, default=8
        Distance in pixels between neighbouring descriptor centres.
    bin_sizes : int or tuple of int, default=(4,)
        Width in pixels of one of the 4 x 4 spatial bins; a descriptor covers 4 x bin
        pixels (16 for 4). Several sizes describe every grid point at each of them (PHOW,
        e.g. (4, 6, 8, 10)); the grid keeps the largest inside the image.
    sigma : float or None, default=1.6
        Scale of the image the gradients are taken on: it is smoothed by a Gaussian of
        standard deviation ``sqrt(max(sigma**2 - 0.25, 0.01))``, OpenCV's rule for its
        octave-0 image (1.6 reproduces ``cv2.SIFT.compute``); 0 means no smoothing. None
        smooths by ``bin / magnif`` for each bin size, as vl_phow does.
    magnif : float, default=6.0
        vl_phow's magnification factor, used only when ``sigma`` is None.
    window_size : float or None, default=2.0
        Standard deviation, in bins, of the Gaussian that weighs gradients by their distance
        to the descriptor centre (2.0 as OpenCV and Lowe; vl_phow uses 1.5). None weighs
        every pixel alike (bilinear binning only).
    contrast_threshold : float, default=0.001
        A descriptor whose weighted mean gradient magnitude (intensities scaled to 0..1,
        per pixel) is below this is set to zeros instead of amplifying noise; 0 zeroes only
        descriptors of exactly flat patches.
    root_sift : bool, default=False
        Return RootSIFT descriptors: L1-normalised, then square-rooted (unit L2 norm).
    size : tuple of int or None, default=(224, 224)
        (height, width) every image is resized to; None describes images at their own size
        (an image too small for one descriptor gives an empty set; the computation holds
        about 100 bytes per pixel, so shrink large photographs first).
    color : {"gray", "rgb", "hsv", "opponent"}, default="gray"
        Channels described, as vl_phow: gray gives 128-d descriptors; the others describe
        each of 3 channels separately (RGB; HSV with hue scaled to 0..1; opponent colours
        (R-G)/sqrt2, (R+G-2B)/sqrt6, (R+G+B)/sqrt3) and concatenate them (384-d).
    decode : {"reduced", "exact"}, default="reduced"
        Large JPEGs at 1/2-1/8 scale, still twice ``size`` (5x faster), or in full: extraction.md.
    """

    version = "1"

    def __init__(
        self,
        step: int = 8,
        bin_sizes: int | tuple[int, ...] = (4,),
        sigma: float | None = 1.6,
        magnif: float = 6.0,
        window_size: float | None = 2.0,
        contrast_threshold: float = 0.001,
        root_sift: bool = False,
        size: tuple[int, int] | None = (224, 224),
        color: str = "gray",
        decode: str = "reduced",
    ) -> None:
        self.step = step
        self.bin_sizes = bin_sizes
        self.sigma = sigma
        self.magnif = magnif
        self.window_size = window_size
        self.contrast_threshold = contrast_threshold
        self.root_sift = root_sift
        self.size = size
        self.color = color
        self.decode = decode

    # -- parameters -------------------------------------------------------------------------------
    def validate_params(self) -> None:
        check_int("dsift", "step", self.step, 1, 4096)
        check_decode("dsift", self.decode)
        bins = self.bin_sizes
        if isinstance(bins, (list, tuple)):
            if not bins:
                raise InvalidParameterError("dsift: bin_sizes must name at least one bin size")
            for b in bins:
                check_int("dsift", "bin_sizes", b, 1, _MAX_BIN)
            if len(set(bins)) != len(bins):
                raise InvalidParameterError(f"dsift: bin_sizes must be distinct, got {bins!r}")
        else:
            check_int("dsift", "bin_sizes", bins, 1, _MAX_BIN)
        if self.sigma is not None:
            check_float("dsift", "sigma", self.sigma, 0.0)
        check_float("dsift", "magnif", self.magnif, 0.0, strict=True)
        if self.window_size is not None:
            check_float("dsift", "window_size", self.window_size, 0.0, strict=True)
        check_float("dsift", "contrast_threshold", self.contrast_threshold, 0.0)
        check_bool("dsift", "root_sift", self.root_sift)
        if self.color not in _COLORS:
            raise InvalidParameterError(
                f"dsift: color must be one of {', '.join(_COLORS)}; got {self.color!r}"
            )
        if self.size is not None:
            size = self.size
            if (
                not isinstance(size, (tuple, list))
                or len(size) != 2
                or not all(
                    isinstance(s, (int, np.integer)) and not isinstance(s, bool) for s in size
                )
                or not all(0 < s <= 16384 for s in size)
            ):
                raise InvalidParameterError(
                    f"dsift: size must be None or a (height, width) pair of positive "
                    f"integers, got {size!r}"
                )
            need = 2 * math.ceil(1.5 * max(self._bins())) + 1
            if min(size) < need:
                raise InvalidParameterError(
                    f"dsift: size {tuple(size)} is too small for bin size {max(self._bins())}: "
                    f"one descriptor needs {need} pixels per side"
                )

    def _bins(self) -> tuple[int, ...]:
        bins = self.bin_sizes
        return tuple(int(b) for b in bins) if isinstance(bins, (list, tuple)) else (int(bins),)

    def input_spec(self) -> InputSpec:
        return InputSpec(
            color="gray" if self.color == "gray" else "rgb",
            size=None if self.size is None else (int(self.size[0]), int(self.size[1])),
            dtype=np.uint8,
            decode=self.decode,
        )

    def descriptor_dim(self) -> int:
        """128 per described channel: 128 (gray) or 384 (rgb, hsv, opponent)."""
        return SIFT_DIM * (1 if self.color == "gray" else 3)

    # -- geometry ---------------------------------------------------------------------------------
    def grid(self, height: int, width: int) -> np.ndarray:
        """Keypoints of the descriptors of a ``height x width`` (prepared) image.

        A float64 array (m, 3): centre x, centre y (pixels, 0 at the first pixel's centre)
        and the equivalent OpenCV keypoint size ``2 * bin / 3``, one row per descriptor in
        :meth:`describe`'s order. ``cv2.KeyPoint(x, y, size, 0)`` (angle 0) on these rows,
        passed to ``cv2.SIFT_create().compute``, describes the same patches.
        """
        self.validate_params()
        ys, xs = dense_grid(height, width, int(self.step), max(self._bins()))
        gy, gx = np.meshgrid(ys, xs, indexing="ij")
        rows = [
            np.stack([gx.ravel(), gy.ravel(), np.full(gx.size, 2.0 * b / 3.0)], axis=1)
            for b in self._bins()
        ]
        return np.concatenate(rows).astype(np.float64).reshape(-1, 3)

    def cv2_keypoints(self, height: int, width: int) -> list[cv2.KeyPoint]:
        """:meth:`grid` as ``cv2.KeyPoint`` objects (angle 0, octave 0), in the same order."""
        grid = self.grid(height, width)
        return [cv2.KeyPoint(float(x), float(y), float(s), 0.0) for x, y, s in grid]

    # -- description ------------------------------------------------------------------------------
    def _describe_one(self, image: np.ndarray) -> LocalFeatures:
        height, width = image.shape[:2]
        bins = self._bins()
        step = int(self.step)
        ys, xs = _dense_grid(height, width, step, max(bins))
        if len(ys) == 0 or len(xs) == 0:
            return LocalFeatures.empty(self.descriptor_dim())
        descriptors = dense_descriptors(
            image,
            ys,
            xs,
            step,
            bins,
            [self._smoothing(b) for b in bins],
            self.window_size,
            self.contrast_threshold,
            self.color,
        )
        if self.root_sift:
            # Per channel block: each is a SIFT descriptor of its own.
            d = descriptors.reshape(len(descriptors), -1, SIFT_DIM)
            descriptors = root_sift(d.reshape(-1, SIFT_DIM)).reshape(len(descriptors), -1)
        xy, scales = _positions(height, width, step, bins)
        return LocalFeatures(descriptors, xy.copy(), scales.copy())

    def _smoothing(self, bin_size: int) -> float:
        """Standard deviation of the Gaussian applied to the image for ``bin_size``."""
        if self.sigma is None:
            return bin_size / float(self.magnif)
        if self.sigma == 0:
            return 0.0
        return math.sqrt(max(float(self.sigma) ** 2 - _INIT_SIGMA**2, 0.01))


# -- the OpenCV reference -------------------------------------------------------------------------
def cv2_dense_sift(
    image: np.ndarray,
    step: int = 8,
    bin_sizes: int | Sequence[int] = (4,),
    sigma: float | None = 1.6,
    magnif: float = 6.0,
) -> np.ndarray:
    """OpenCV's SIFT descriptors on :class:`DenseSiftExtractor`'s grid: the reference.

    ``image`` is a 2-D uint8 array (the prepared image: no resizing here). Returns
    ``cv2.SIFT.compute``'s float32 descriptors (m, 128), OpenCV's scale (x 512), in
    ``DenseSiftExtractor(step, bin_sizes, sigma, magnif).describe`` order. ``sigma=None``
    (vl_phow smoothing) sets OpenCV's sigma per bin size so that its smoothing is
    ``bin / magnif``. ``sigma=0`` cannot be reproduced (OpenCV smooths by at least 0.1 px).
    """
    image = np.ascontiguousarray(image)
    if image.ndim != 2 or image.dtype != np.uint8:
        raise InvalidParameterError(
            f"cv2_dense_sift: image must be a 2-D uint8 array, got {image.dtype} {image.shape}"
        )
    bins = tuple(bin_sizes) if isinstance(bin_sizes, (list, tuple)) else (bin_sizes,)
    extractor = DenseSiftExtractor(step=step, bin_sizes=bins, sigma=sigma, magnif=magnif, size=None)
    grid = extractor.grid(*image.shape)
    out = []
    for b in bins:
        rows = grid[np.isclose(grid[:, 2], 2.0 * b / 3.0)]
        # OpenCV smooths its octave-0 image by sqrt(sigma^2 - 0.5^2): choose sigma to match.
        cv_sigma = math.sqrt((b / magnif) ** 2 + _INIT_SIGMA**2) if sigma is None else sigma
        keypoints = [cv2.KeyPoint(float(x), float(y), float(s), 0.0) for x, y, s in rows]
        if not keypoints:
            continue
        sift = cv2.SIFT_create(sigma=max(float(cv_sigma), 1e-3))
        kept, desc = sift.compute(image, keypoints)
        if desc is None or len(kept) != len(keypoints):  # pragma: no cover - OpenCV contract
            raise RuntimeError("cv2.SIFT.compute dropped keypoints")
        out.append(desc)
    if not out:
        return np.zeros((0, SIFT_DIM), dtype=np.float32)
    return np.concatenate(out).astype(np.float32)


# -- presets --------------------------------------------------------------------------------------
#: Dense SIFT as Chatfield et al. 2011 computed it for their encodings (the enceval toolkit's
#: PhowExtractor: vl_phow at bin sizes 4, 6, 8, 10, smoothing bin / 6, window 1.5 bins, every
#: 3 pixels; vl_phow's own default step is 2).
DenseSiftPhow = register_preset(
    "dsift-phow",
    DenseSiftExtractor,
    summary=(
        "Dense SIFT at VLFeat's PHOW settings, as in Chatfield et al. 2011: every 3 px, bin "
        "sizes 4, 6, 8, 10, vl_phow smoothing and window."
    ),
    defaults={"step": 3, "bin_sizes": (4, 6, 8, 10), "sigma": None, "window_size": 1.5},
    class_name="DenseSiftPhow",
    module=__name__,
)

"""ORB keypoints and binary descriptors (Rublee et al., ICCV 2011) as a featkit local extractor.

ORB is a FAST corner detector on an image pyramid, ranked by Harris response, with an
oriented, rotation-steered BRIEF descriptor of 256 bits. This plugin gives featkit the set
of ORB descriptors of each image; featkit's encoders turn it into one vector, with no code
here: ``create_extractor("bovw", local="orb")``, ``"vlad"`` or ``"fisher"``, with spatial
pyramids (``pyramid=(1, 2)``).
"""

from __future__ import annotations

import math
from typing import Any

import cv2
import numpy as np

from featkit import InputSpec, InvalidParameterError
from featkit.extractors.local import LocalExtractor, LocalFeatures

__all__ = ["ENLARGE_LIMIT", "ORB_BITS", "OrbExtractor", "orb_image_size"]
__version__ = "0.1.0"

#: Length of an ORB descriptor: 32 bytes of 8 bits.
ORB_BITS = 256
#: ORB's border and patch size in pixels (OpenCV's defaults, fixed here): no keypoint is
#: detected within this distance of the border of any pyramid level.
ORB_PATCH = 31
#: ``min_side`` never enlarges an image's longer side past this many pixels.
ENLARGE_LIMIT = 2048
_SCORES = {"harris": cv2.ORB_HARRIS_SCORE, "fast": cv2.ORB_FAST_SCORE}


def orb_image_size(
    height: int, width: int, min_side: int | None, max_side: int | None
) -> tuple[int, int]:
    """(height, width) ORB runs at: the shorter side raised to ``min_side`` (but the longer
    side never enlarged past ``ENLARGE_LIMIT``), then the longer side capped at ``max_side``
    (the cap wins), aspect ratio kept."""
    scale = 1.0
    if min_side is not None and min(height, width) < min_side:
        scale = min_side / min(height, width)
        # An elongated strip (8 x 4000) would otherwise become gigapixels.
        scale = min(scale, max(1.0, ENLARGE_LIMIT / max(height, width)))
    if max_side is not None and max(height, width) * scale > max_side:
        scale = max_side / max(height, width)
    if scale == 1.0:
        return height, width
    return max(1, round(height * scale)), max(1, round(width * scale))


class OrbExtractor(LocalExtractor):
    """ORB keypoints (FAST + Harris ranking, image pyramid) with 256-bit rotated BRIEF descriptors.

    Each image, converted to uint8 gray, is rescaled by the ``min_side`` / ``max_side`` rule
    and described by OpenCV's ``cv2.ORB``: at most ``n_features`` keypoints, the strongest
    by score, in OpenCV's order. ORB is deterministic for a given image (no random choice;
    the same keypoints for any number of OpenCV threads).

    Descriptors: each 256-bit binary string is unpacked (``np.unpackbits``, most significant
    bit of byte 0 first) into a float32 vector of 0s and 1s. This is the usual way to put
    binary descriptors into a Euclidean bag of words or VLAD: the squared Euclidean distance
    between two such vectors is their Hamming distance, so nearest-word assignment to binary
    words would be exact. Its limits: k-means centroids are bit frequencies, not binary
    strings, so the distance to a word only approximates a Hamming distance; the vectors
    take 32 times the memory of the packed bytes; and a diagonal Gaussian mixture (Fisher
    vectors) models 0/1 data only roughly (a Bernoulli mixture would be exact).

    Positions ``xy`` are the keypoint centres as fractions of the rescaled image's width and
    height, in [0, 1); ``scales`` are OpenCV's keypoint sizes (31 pixels times the pyramid
    level's scale, in rescaled-image pixels). An image where ORB finds no keypoint (a flat
    one) gives an empty set, which the encoders encode as zeros.

    Parameters
    ----------
    n_features : int, default=500
        Keep at most this many keypoints per image, the strongest by score.
    scale_factor : float, default=1.2
        Ratio between consecutive pyramid levels, in (1, 4]; larger covers more scales with
        fewer levels but matches less well.
    n_levels : int, default=8
        Pyramid levels (1 to 32); the smallest is ``scale_factor ** (n_levels - 1)`` times
        smaller than the image.
    fast_threshold : int, default=20
        FAST corner threshold on the intensity difference, 1 to 255; larger values give
        fewer, stronger corners.
    score_type : {"harris", "fast"}, default="harris"
        Score that ranks the keypoints when more than ``n_features`` are found.
    min_side : int or None, default=128
        Enlarge (bilinear) an image whose shorter side is below this many pixels until it
        reaches it, aspect ratio kept. ORB detects nothing within 31 pixels of the border,
        so an image needs more than 62 pixels a side to have any keypoint: 128 leaves a
        66-pixel centre (a 48 x 64 image, enlarged to 128 x 171, gives about 30 to 60
        keypoints). An elongated image is enlarged only until its longer side reaches
        2048 pixels. At least 64. None never enlarges.
    max_side : int or None, default=None
        Shrink (area interpolation) an image whose longer side exceeds this many pixels
        until it equals it, aspect ratio kept; applied after ``min_side``, so it wins for
        very elongated images. At least 64 and at least ``min_side``. None never shrinks.
    """

    name = "orb"
    version = "1"

    def __init__(
        self,
        n_features: int = 500,
        scale_factor: float = 1.2,
        n_levels: int = 8,
        fast_threshold: int = 20,
        score_type: str = "harris",
        min_side: int | None = 128,
        max_side: int | None = None,
    ) -> None:
        self.n_features = n_features
        self.scale_factor = scale_factor
        self.n_levels = n_levels
        self.fast_threshold = fast_threshold
        self.score_type = score_type
        self.min_side = min_side
        self.max_side = max_side

    def validate_params(self) -> None:
        _check_int("n_features", self.n_features, 1, 1_000_000)
        if (
            isinstance(self.scale_factor, bool)
            or not isinstance(self.scale_factor, (int, float, np.integer, np.floating))
            or not math.isfinite(self.scale_factor)
            or not 1.0 < self.scale_factor <= 4.0
        ):
            raise InvalidParameterError(
                f"orb: scale_factor must be a number in (1, 4], got {self.scale_factor!r}"
            )
        _check_int("n_levels", self.n_levels, 1, 32)
        _check_int("fast_threshold", self.fast_threshold, 1, 255)
        if self.score_type not in _SCORES:
            raise InvalidParameterError(
                f"orb: score_type must be one of {sorted(_SCORES)}, got {self.score_type!r}"
            )
        # Below 64 pixels ORB's 31-pixel border leaves no room for a keypoint.
        for param in ("min_side", "max_side"):
            if getattr(self, param) is not None:
                _check_int(param, getattr(self, param), 64, 1 << 16)
        if (
            self.min_side is not None
            and self.max_side is not None
            and self.max_side < self.min_side
        ):
            raise InvalidParameterError(
                f"orb: max_side={self.max_side} must be at least min_side={self.min_side}"
            )

    def input_spec(self) -> InputSpec:
        return InputSpec(color="gray", size=None, dtype=np.uint8)

    def descriptor_dim(self) -> int:
        """256: the bits of an ORB descriptor."""
        return ORB_BITS

    def rescaled(self, image: np.ndarray) -> np.ndarray:
        """The prepared (uint8 gray) image rescaled by the ``min_side`` / ``max_side`` rule:
        the image ORB runs on."""
        image = np.ascontiguousarray(image, dtype=np.uint8)
        h, w = image.shape[:2]
        new_h, new_w = orb_image_size(h, w, self.min_side, self.max_side)
        if (new_h, new_w) == (h, w):
            return image
        shrink = new_h <= h and new_w <= w
        # Area interpolation averages when shrinking (no aliasing); bilinear to enlarge.
        interp = cv2.INTER_AREA if shrink else cv2.INTER_LINEAR
        return cv2.resize(image, (new_w, new_h), interpolation=interp)

    def _create(self) -> Any:
        # One per call: cv2 objects do not pickle, and creating one costs microseconds.
        return cv2.ORB_create(
            nfeatures=int(self.n_features),
            scaleFactor=float(self.scale_factor),
            nlevels=int(self.n_levels),
            edgeThreshold=ORB_PATCH,
            firstLevel=0,
            WTA_K=2,
            scoreType=_SCORES[self.score_type],
            patchSize=ORB_PATCH,
            fastThreshold=int(self.fast_threshold),
        )

    def _describe_one(self, image: np.ndarray) -> LocalFeatures:
        image = self.rescaled(image)
        height, width = image.shape[:2]
        keypoints, packed = self._create().detectAndCompute(image, None)
        if packed is None or len(keypoints) == 0:
            return LocalFeatures.empty(ORB_BITS)
        bits = np.unpackbits(packed, axis=1).astype(np.float32)
        pts = cv2.KeyPoint_convert(keypoints).astype(np.float64).reshape(-1, 2)
        sizes = np.array([kp.size for kp in keypoints], dtype=np.float64)
        xy = pts / np.array([width, height], dtype=np.float64)
        # Keypoints lie inside ORB's border; the clip only guards the [0, 1) contract.
        xy = np.clip(xy, 0.0, np.nextafter(1.0, 0.0))
        return LocalFeatures(bits, xy, sizes)


def _check_int(param: str, value: Any, low: int, high: int) -> None:
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, np.integer))
        or not low <= value <= high
    ):
        raise InvalidParameterError(f"orb: {param} must be an int in {low}..{high}, got {value!r}")

"""SIFT keypoints and descriptors (Lowe 2004), by OpenCV's ``cv2.SIFT``.

``sift`` detects difference-of-Gaussian keypoints and describes each with OpenCV's
128-d descriptor: a set of descriptors per image, to encode (bag of words, VLAD, Fisher)
before classifying. The descriptors are OpenCV's own values: unit L2 norm scaled by 512,
rounded and saturated at 255. RootSIFT (Arandjelovic & Zisserman, CVPR 2012) divides each
descriptor by its L1 norm and takes the square root, which makes the Euclidean distance
between descriptors a Hellinger kernel distance (and gives unit L2 norm).

Dense SIFT on a grid, much faster than OpenCV on the same keypoints, is in
:mod:`featkit.extractors.dsift`.
"""

from __future__ import annotations

from typing import Any

import cv2
import numpy as np

from featkit.extractors.base import InputSpec
from featkit.extractors.local import LocalExtractor, LocalFeatures
from featkit.io import resize_image
from featkit.registry import register_extractor
from featkit.validation import check_bool, check_float, check_int

__all__ = ["SiftExtractor", "root_sift"]

#: Length of a SIFT descriptor: 4 x 4 spatial bins x 8 orientations.
SIFT_DIM = 128


def root_sift(descriptors: np.ndarray) -> np.ndarray:
    """RootSIFT: each row divided by its L1 norm, then square-rooted (all-zero rows stay 0).

    SIFT descriptors are non-negative, so the result has unit L2 norm (Arandjelovic &
    Zisserman, "Three things everyone should know to improve object retrieval", 2012).
    """
    d = np.asarray(descriptors, dtype=np.float32)
    l1 = np.abs(d).sum(axis=1, keepdims=True)
    out = np.divide(np.abs(d), l1, out=np.zeros_like(d), where=l1 > 0)
    return np.sqrt(out, out=out)


@register_extractor("sift")
class SiftExtractor(LocalExtractor):
    """SIFT keypoints (difference-of-Gaussian extrema) with OpenCV's 128-d descriptors.

    Each image (converted to uint8 gray) gives its keypoints' descriptors, OpenCV's values
    as is (unit L2 norm x 512, rounded, saturated at 255; RootSIFT on request). Keypoint
    positions are given as fractions of the described image's width and height, and
    ``scales`` are OpenCV's keypoint sizes (a diameter in pixels of the described image;
    the descriptor spans about 6 x size pixels). An image with no keypoint (a flat one,
    a tiny one) gives an empty set.

    Parameters
    ----------
    n_octave_layers : int, default=3
        Layers per octave of the scale space (OpenCV's ``nOctaveLayers``; 3 as in Lowe's
        paper).
    contrast_threshold : float, default=0.04
        Rejects low-contrast extrema; OpenCV divides it by ``n_octave_layers`` (Lowe's 0.03
        is 0.09 here with 3 layers). Larger values give fewer keypoints.
    edge_threshold : float, default=10
        Rejects edge-like extrema whose ratio of principal curvatures exceeds it; larger
        values keep more keypoints.
    sigma : float, default=1.6
        Gaussian blur of the base octave, in pixels (OpenCV assumes the input carries a
        blur of 0.5 already).
    max_keypoints : int or None, default=None
        Keep at most this many keypoints, the strongest by detector response (ties broken
        by position, size then angle, so the choice is deterministic); they keep OpenCV's
        order. None keeps every keypoint.
    root_sift : bool, default=False
        Return RootSIFT descriptors: L1-normalised, then square-rooted (unit L2 norm).
    max_side : int or None, default=None
        Shrink each image (area interpolation, aspect ratio kept) so that its longer side
        is at most this many pixels before detection; smaller images are left as they
        are. Positions stay fractions of the image, sizes are in the shrunk image's pixels.
        None describes every image at its own size.
    """

    version = "1"

    def __init__(
        self,
        n_octave_layers: int = 3,
        contrast_threshold: float = 0.04,
        edge_threshold: float = 10,
        sigma: float = 1.6,
        max_keypoints: int | None = None,
        root_sift: bool = False,
        max_side: int | None = None,
    ) -> None:
        self.n_octave_layers = n_octave_layers
        self.contrast_threshold = contrast_threshold
        self.edge_threshold = edge_threshold
        self.sigma = sigma
        self.max_keypoints = max_keypoints
        self.root_sift = root_sift
        self.max_side = max_side

    def validate_params(self) -> None:
        check_int("sift", "n_octave_layers", self.n_octave_layers, 1, 16)
        check_float("sift", "contrast_threshold", self.contrast_threshold, 0.0)
        check_float("sift", "edge_threshold", self.edge_threshold, 0.0, strict=True)
        check_float("sift", "sigma", self.sigma, 0.0, strict=True)
        if self.max_keypoints is not None:
            check_int("sift", "max_keypoints", self.max_keypoints, 1)
        check_bool("sift", "root_sift", self.root_sift)
        if self.max_side is not None:
            check_int("sift", "max_side", self.max_side, 8)

    def input_spec(self) -> InputSpec:
        return InputSpec(color="gray", size=None, dtype=np.uint8)

    def descriptor_dim(self) -> int:
        """128: 4 x 4 spatial bins x 8 orientations."""
        return SIFT_DIM

    def _create(self) -> Any:
        # One per call: cv2 objects do not pickle, and creating one costs microseconds.
        return cv2.SIFT_create(
            nfeatures=0,
            nOctaveLayers=int(self.n_octave_layers),
            contrastThreshold=float(self.contrast_threshold),
            edgeThreshold=float(self.edge_threshold),
            sigma=float(self.sigma),
        )

    def keypoints(self, image: np.ndarray) -> tuple[np.ndarray, list[cv2.KeyPoint]]:
        """The image described (a prepared image, shrunk to ``max_side`` if set) and the
        keypoints whose descriptors :meth:`describe` returns, in its order."""
        self.validate_params()
        image, keypoints, _ = self._detect(image)
        return image, keypoints

    def _detect(self, image: np.ndarray) -> tuple[np.ndarray, list[cv2.KeyPoint], np.ndarray]:
        """The described image, its kept keypoints and their raw OpenCV descriptors."""
        image = np.ascontiguousarray(image, dtype=np.uint8)
        if self.max_side is not None and max(image.shape[:2]) > self.max_side:
            h, w = image.shape[:2]
            scale = self.max_side / max(h, w)
            new = (max(1, round(h * scale)), max(1, round(w * scale)))
            image = resize_image(image, new)
        keypoints, descriptors = self._create().detectAndCompute(image, None)
        if descriptors is None or len(keypoints) == 0:
            return image, [], np.zeros((0, SIFT_DIM), dtype=np.float32)
        if self.max_keypoints is not None and len(keypoints) > self.max_keypoints:
            keep = strongest(keypoints, int(self.max_keypoints))
            keypoints, descriptors = [keypoints[i] for i in keep], descriptors[keep]
        return image, list(keypoints), descriptors

    def _describe_one(self, image: np.ndarray) -> LocalFeatures:
        image, keypoints, descriptors = self._detect(image)
        if len(keypoints) == 0:
            return LocalFeatures.empty(SIFT_DIM)
        height, width = image.shape[:2]
        pts = np.array([kp.pt for kp in keypoints], dtype=np.float64).reshape(-1, 2)
        sizes = np.array([kp.size for kp in keypoints], dtype=np.float64)
        descriptors = np.asarray(descriptors, dtype=np.float32)
        if self.root_sift:
            descriptors = root_sift(descriptors)
        xy = pts / np.array([width, height], dtype=np.float64)
        # Positions are inside the image (OpenCV keeps a border), the clip only guards [0, 1).
        xy = np.clip(xy, 0.0, np.nextafter(1.0, 0.0))
        return LocalFeatures(descriptors, xy, sizes)


def strongest(keypoints: Any, k: int) -> np.ndarray:
    """Indices (ascending) of the ``k`` strongest keypoints by response, ties broken
    deterministically by x, y, size and angle."""
    keys = np.array(
        [(kp.response, kp.pt[0], kp.pt[1], kp.size, kp.angle) for kp in keypoints],
        dtype=np.float64,
    ).reshape(-1, 5)
    # np.lexsort sorts by the last key first: response descending, then x, y, size, angle.
    order = np.lexsort((keys[:, 4], keys[:, 3], keys[:, 2], keys[:, 1], -keys[:, 0]))
    return np.sort(order[:k])


# -- parameter checks shared with featkit.extractors.dsift ----------------------------------------

"""Local descriptors: extractors that give a *set* of descriptors per image.

A local extractor (SIFT keypoints, dense SIFT, a plugin's ORB ...) describes one image as
:class:`LocalFeatures`: descriptors ``(m, D)`` with their keypoint positions. It is not a
global feature by itself: an encoding (bag of words, VLAD, Fisher vectors, optionally
with a spatial pyramid, see :mod:`featkit.extractors.encoding`) turns the set into one
vector, and any local extractor, a plugin's included, can be encoded that way.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from featkit.exceptions import InvalidParameterError
from featkit.extractors.base import Extractor

__all__ = ["LocalExtractor", "LocalFeatures"]


@dataclass
class LocalFeatures:
    """The local descriptors of one image.

    ``descriptors``: float32 ``(m, D)``; ``m`` may be 0 (an image with no keypoints).
    ``xy``: float32 ``(m, 2)`` keypoint centres as fractions of the prepared image's width
    and height, in [0, 1): what spatial pyramids bin on. ``scales``: float32 ``(m,)``
    keypoint diameters in pixels, when the extractor has them.
    """

    descriptors: np.ndarray
    xy: np.ndarray
    scales: np.ndarray | None = None

    def __post_init__(self) -> None:
        self.descriptors = np.ascontiguousarray(self.descriptors, dtype=np.float32)
        self.xy = np.ascontiguousarray(self.xy, dtype=np.float32).reshape(-1, 2)
        if self.descriptors.ndim != 2 or len(self.xy) != len(self.descriptors):
            raise ValueError(
                f"LocalFeatures: {self.descriptors.shape} descriptors for {len(self.xy)} positions"
            )
        if self.scales is not None:
            self.scales = np.asarray(self.scales, dtype=np.float32).reshape(-1)

    def __len__(self) -> int:
        return len(self.descriptors)

    @classmethod
    def empty(cls, dim: int) -> LocalFeatures:
        """No descriptors (an image with no keypoints)."""
        return cls(np.zeros((0, dim), np.float32), np.zeros((0, 2), np.float32))


class LocalExtractor(Extractor):
    """Base class of local descriptor extractors.

    Subclasses implement ``_describe_one(image) -> LocalFeatures`` on a prepared image and
    ``descriptor_dim()``. ``describe(images)`` returns one LocalFeatures per image.
    """

    kind = "local"

    def descriptor_dim(self) -> int:
        """Length D of one descriptor."""
        raise NotImplementedError

    def _describe_one(self, image: np.ndarray) -> LocalFeatures:
        raise NotImplementedError

    def describe(self, images: Any) -> list[LocalFeatures]:
        """Local features of each image (paths, arrays, PIL images or a Dataset)."""
        self.validate_params()
        self._check_fitted()
        return self.describe_prepared(self.prepare_many(images))

    def describe_prepared(self, images: list[np.ndarray]) -> list[LocalFeatures]:
        """Local features of images already converted by :meth:`prepare`."""
        return [self._describe_one(image) for image in images]

    def _feature_dim(self) -> int | None:
        return None

    def transform(self, images: Any) -> np.ndarray:
        """Local extractors have no fixed-length output: encode them first."""
        raise InvalidParameterError(
            f"{self.name or type(self).__name__} gives a set of local descriptors per image, "
            "not one vector: wrap it in an encoding, e.g. "
            f"create_extractor('bovw', local='{self.name or 'sift'}'), or call describe()"
        )

    def _transform_with_notes(
        self, images: list[np.ndarray] | np.ndarray
    ) -> tuple[np.ndarray, dict[str, int]]:
        # The one hook under transform_prepared(_with_notes): the engine gets the same error.
        return self.transform(images), {}

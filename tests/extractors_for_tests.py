"""Extractors used by the engine tests; importable by joblib worker processes."""

from __future__ import annotations

import os
import time

import cv2
import numpy as np
import torch
from threadpoolctl import threadpool_info

from featkit.extractors.base import Extractor, InputSpec
from featkit.extractors.pixels import PixelsExtractor


class ThreadProbe(Extractor):
    """Features are the thread counts seen while extracting: OpenCV's, the BLAS maximum and
    torch's (this module imports torch, as a CNN extractor's module would)."""

    def input_spec(self) -> InputSpec:
        return InputSpec(color="gray", size=(4, 4))

    def _feature_dim(self) -> int:
        return 3

    def _transform_one(self, image: np.ndarray) -> np.ndarray:
        blas = max((p["num_threads"] for p in threadpool_info()), default=1)
        return np.array([cv2.getNumThreads(), blas, torch.get_num_threads()], dtype=np.float32)


class FailsOnBrightImages(PixelsExtractor):
    """Pixels, except that it raises on images brighter than a threshold (a real bug shape)."""

    def _transform(self, images: list[np.ndarray]) -> np.ndarray:
        for image in images:
            if image.mean() > 0.5:
                raise ValueError("bright image")
        return super()._transform(images)


class AlwaysFails(PixelsExtractor):
    """Raises on every image: a bug, which the engine must not hide as per-image failures."""

    def _transform(self, images: list[np.ndarray]) -> np.ndarray:
        raise ValueError("broken extractor")


class SlowPixels(PixelsExtractor):
    """Pixels with a delay per batch, to interrupt a run part way.

    The delay comes from the environment, which worker processes inherit; it is not a
    parameter, so it does not change the cache key.
    """

    def _transform(self, images: list[np.ndarray]) -> np.ndarray:
        time.sleep(float(os.environ.get("FEATKIT_TEST_DELAY", "0")))
        return super()._transform(images)


class BrokenOnEveryImage(PixelsExtractor):
    """Raises inside the extractor for every image, one image per chunk (batch_size=1)."""

    calls = 0

    def _transform(self, images: list[np.ndarray]) -> np.ndarray:
        raise RuntimeError("out of memory")


class SlowToRead(PixelsExtractor):
    """Pixels of images that take ``read_s`` seconds each to read (a 12 MP photo's decode),
    and the id of the process that read each one as a last feature."""

    def __init__(self, read_s: float = 0.15, size: int = 4, color: str = "gray") -> None:
        super().__init__(size=size, color=color)
        self.read_s = read_s

    def prepare(self, image):
        time.sleep(self.read_s)
        return super().prepare(image)

    def _feature_dim(self) -> int:
        return super()._feature_dim() + 1

    def _transform(self, images: list[np.ndarray]) -> np.ndarray:
        rows = super()._transform(images)
        return np.column_stack([rows, np.full(len(rows), os.getpid(), np.float32)])

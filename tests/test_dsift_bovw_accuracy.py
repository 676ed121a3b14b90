"""Dense SIFT gives the same bag-of-words accuracy as OpenCV's descriptors on the same grid,
on real photos (PACS): the end-to-end check that matters for users."""

from __future__ import annotations

import numpy as np
from sklearn.model_selection import cross_val_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.svm import LinearSVC

import featkit
from featkit.extractors.base import InputSpec
from featkit.extractors.dsift import DenseSiftExtractor, cv2_dense_sift
from featkit.extractors.encoding import BagOfVisualWords
from featkit.extractors.local import LocalExtractor, LocalFeatures
from tests.conftest import PACS, requires_pacs


class OpenCVDenseSift(LocalExtractor):
    """The reference: OpenCV's SIFT.compute on dsift's grid (unit-length descriptors)."""

    name = "test-opencv-dsift"

    def __init__(self, step: int = 8, size: tuple[int, int] = (128, 128)) -> None:
        self.step = step
        self.size = size

    def input_spec(self) -> InputSpec:
        return InputSpec(color="gray", size=self.size, dtype=np.uint8)

    def descriptor_dim(self) -> int:
        return 128

    def _describe_one(self, image: np.ndarray) -> LocalFeatures:
        d = cv2_dense_sift(image, step=self.step, bin_sizes=(4,))
        d = d / np.maximum(np.linalg.norm(d, axis=1, keepdims=True), 1e-12)
        return LocalFeatures(d, np.zeros((len(d), 2)))


def _accuracy(local: LocalExtractor, images, labels) -> float:
    scores = []
    for seed in (0, 1):  # two codebooks: the comparison should not hinge on one k-means run
        encoder = BagOfVisualWords(local=local, n_words=128, seed=seed)
        X = encoder.fit(images).transform(images)  # unsupervised codebook: no label leak
        model = make_pipeline(StandardScaler(), LinearSVC(C=0.01, max_iter=5000))
        scores.append(cross_val_score(model, X, labels, cv=3).mean())
    return float(np.mean(scores))


def test_bag_of_words_accuracy_equals_opencv_descriptors():
    requires_pacs()
    data = featkit.load_dataset(PACS, domain="photo")
    keep = np.concatenate([np.flatnonzero(data.labels == c)[:40] for c in range(7)])
    subset = data.subset(keep)
    images = [DenseSiftExtractor(size=(128, 128)).prepare(p) for p in subset.items]
    ours = _accuracy(
        DenseSiftExtractor(size=(128, 128), contrast_threshold=0.0), images, subset.labels
    )
    reference = _accuracy(OpenCVDenseSift(), images, subset.labels)
    assert reference > 0.3  # far above chance (1/7): the pipeline itself works
    # Measured here: 0.432 (featkit) vs 0.422 (OpenCV); 0.04 allows for this small set's noise.
    assert abs(ours - reference) <= 0.04, (ours, reference)

"""Bag of visual words: the ``bovw`` encoder (hard or soft assignment, tf-idf)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from featkit.exceptions import InvalidParameterError
from featkit.extractors.encoding.base import PUBLIC_MODULE, CodebookEncoder
from featkit.extractors.encoding.kernels import _nearest, _power_l2
from featkit.extractors.encoding.sampling import _map_chunks
from featkit.extractors.local import LocalFeatures
from featkit.registry import register_extractor
from featkit.validation import check_int, is_number

__all__ = ["BagOfVisualWords"]

_NORMS = ("l1", "l2", "hellinger", None)


@register_extractor("bovw")
class BagOfVisualWords(CodebookEncoder):
    """Bag of visual words: histogram of codebook words (faiss k-means) of local descriptors.

    Hard assignment counts each descriptor in its nearest word. Soft assignment is a
    localised kernel codebook (van Gemert et al. 2010, Liu et al. 2011): a descriptor spreads
    a unit weight over its ``soft_knn`` nearest words in proportion to
    ``exp(-d^2 / (2 soft_sigma^2))``. tf-idf multiplies word k by
    ``idf_k = ln((1 + N) / (1 + n_k)) + 1`` (scikit-learn's smooth idf), n_k the number of the
    N training images that contain word k (the training images are described twice). With a
    spatial pyramid, the histograms of every cell are concatenated and normalised as one
    vector. Images without descriptors give zeros.

    Parameters
    ----------
    local : str or LocalExtractor, default="dsift"
        Local descriptor extractor: a registered name or an instance (its parameters are
        nested: ``local__step``).
    n_words : int, default=1024
        Codebook size (k-means clusters).
    assignment : {"hard", "soft"}, default="hard"
        Nearest word, or kernel-codebook weights over the ``soft_knn`` nearest words.
    soft_sigma : float or None, default=None
        Kernel width of soft assignment, in descriptor units; None learns it in fit as
        ``sqrt(median(d_1^2) / 2)``, d_1 the distance of a training descriptor to its
        nearest word.
    soft_knn : int, default=5
        Words sharing each descriptor in soft assignment.
    tfidf : bool, default=False
        Weight words by their inverse document frequency in the training images.
    pyramid : tuple of int or (rows, cols) pairs, default=(1,)
        Spatial pyramid levels: grid sides, e.g. (1, 2, 4) for 1x1 + 2x2 + 4x4 cells, or
        (rows, cols) grids: (1, 2, (3, 1)) adds three horizontal bands.
    norm : {"l1", "l2", "hellinger"} or None, default="hellinger"
        Normalisation of the whole vector: square root of the L1-normalised histogram
        (power 0.5 + L2: a linear model on it is a Hellinger-kernel machine, measured 5 to 20
        points better than "l1" with a linear SVM), sum to 1 (the classic histogram, for
        chi-square or intersection kernels), unit L2 norm, or None (raw weights).
    n_iter : int, default=20
        k-means iterations.
    max_descriptors : int, default=100000
        Size of the seeded uniform subsample of training descriptors k-means runs on.
    seed : int, default=0
        Seed of the subsample and of k-means.
    """

    __module__ = PUBLIC_MODULE  # config["class"] and pickles as before the split

    name = "bovw"

    version = "1"

    def __init__(
        self,
        local: Any = "dsift",
        n_words: int = 1024,
        assignment: str = "hard",
        soft_sigma: float | None = None,
        soft_knn: int = 5,
        tfidf: bool = False,
        pyramid: tuple[int, ...] = (1,),
        norm: str | None = "hellinger",
        n_iter: int = 20,
        max_descriptors: int = 100_000,
        seed: int = 0,
    ) -> None:
        self.local = local
        self.n_words = n_words
        self.assignment = assignment
        self.soft_sigma = soft_sigma
        self.soft_knn = soft_knn
        self.tfidf = tfidf
        self.pyramid = pyramid
        self.norm = norm
        self.n_iter = n_iter
        self.max_descriptors = max_descriptors
        self.seed = seed

    def validate_params(self) -> None:
        label = self._label
        check_int(label, "n_words", self.n_words, 1, 2**20)
        if self.assignment not in ("hard", "soft"):
            raise InvalidParameterError(
                f"{label}: assignment must be 'hard' or 'soft', got {self.assignment!r}"
            )
        if self.soft_sigma is not None and not (is_number(self.soft_sigma) and self.soft_sigma > 0):
            raise InvalidParameterError(
                f"{label}: soft_sigma must be a positive number or None, got {self.soft_sigma!r}"
            )
        check_int(label, "soft_knn", self.soft_knn, 1)
        if not isinstance(self.tfidf, (bool, np.bool_)):
            raise InvalidParameterError(f"{label}: tfidf must be True or False, got {self.tfidf!r}")
        if self.norm not in _NORMS:
            raise InvalidParameterError(
                f"{label}: norm must be 'l1', 'l2', 'hellinger' or None, got {self.norm!r}"
            )
        super().validate_params()

    def _cell_dim(self) -> int:
        return int(self.n_words)

    def _element_names(self) -> list[str]:
        return [f"w{k}" for k in range(int(self.n_words))]

    def _fit_vocabulary(self, sample: np.ndarray) -> None:
        super()._fit_vocabulary(sample)  # the k-means codebook
        if self.assignment == "soft" and self.soft_sigma is None:
            _, d2 = _nearest(self._index(), sample, 1)
            self.soft_sigma_ = float(math.sqrt(max(float(np.median(d2)), 1e-24) / 2.0))
        self.idf_ = None

    def _fit_after(self, items: list[Any]) -> None:
        if not self.tfidf:
            return
        counts = np.zeros(int(self.n_words), dtype=np.int64)
        for present in _map_chunks(_word_presence, self, items, f"{self._label}: idf"):
            counts += present
        n = len(items)
        self.idf_ = (np.log((1.0 + n) / (1.0 + counts)) + 1.0).astype(np.float32)

    def _sigma(self) -> float:
        if self.soft_sigma is not None:
            return float(self.soft_sigma)
        sigma = self.__dict__.get("soft_sigma_")
        if sigma is None:
            raise InvalidParameterError(
                f"{self._label}: soft assignment was enabled after fitting: fit again"
            )
        return sigma

    def _codes(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        if self.assignment == "hard":
            idx, _ = _nearest(self._index(), x, 1)
            return idx, np.ones(idx.shape)
        knn = min(int(self.soft_knn), len(self.codebook_))
        idx, _ = _nearest(self._index(), x, knn)
        # exact squared distances: faiss's |x|^2 + |c|^2 - 2xc loses digits near the words
        diff = x[:, None, :].astype(np.float64) - self.codebook_[idx].astype(np.float64)
        d2 = np.einsum("mkd,mkd->mk", diff, diff)
        w = np.exp(-(d2 - d2.min(axis=1, keepdims=True)) / (2.0 * self._sigma() ** 2))
        return idx, w / w.sum(axis=1, keepdims=True)

    def _cell(self, codes: tuple[np.ndarray, np.ndarray], mask: np.ndarray) -> np.ndarray:
        idx, w = codes
        hist = np.bincount(idx[mask].ravel(), weights=w[mask].ravel(), minlength=int(self.n_words))
        if self.tfidf:
            hist = hist * self.idf_
        return hist

    def _finish(self, blocks: list[np.ndarray]) -> np.ndarray:
        vec = np.concatenate([b.ravel() for b in blocks])
        if self.norm is None:
            return vec
        if self.norm == "l2":
            return _power_l2(vec, 1.0, True)
        total = vec.sum()
        vec = vec / total if total > 0 else vec
        return np.sqrt(vec) if self.norm == "hellinger" else vec

    def present_words(self, features: Sequence[LocalFeatures]) -> np.ndarray:
        """Boolean (n, n_words): which words each descriptor set contains (for tf-idf)."""
        out = np.zeros((len(features), int(self.n_words)), dtype=bool)
        for i, feats in enumerate(features):
            if len(feats):
                idx, w = self._codes(feats.descriptors)
                out[i, idx[w > 0]] = True
        return out


def _word_presence(encoder: BagOfVisualWords, items: list[Any]) -> np.ndarray:
    """How many images of the chunk contain each word."""
    local = encoder.local_
    feats = local.describe_prepared([local.prepare(item) for item in items])
    return encoder.present_words(feats).sum(axis=0)

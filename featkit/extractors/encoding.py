"""Encodings of local descriptors: bag of visual words, VLAD, Fisher vectors, spatial pyramids.

An encoder turns the *set* of local descriptors of an image (SIFT keypoints, dense SIFT,
a plugin's descriptors: any :class:`~featkit.extractors.local.LocalExtractor`) into one
fixed-length vector. The local extractor is the ``local`` parameter, an instance or a
registered name resolved when fitting, so scikit-learn's nested parameters work
(``set_params(local__step=4)``).

``fit(images)`` describes the training images, draws a seeded uniform subsample of at most
``max_descriptors`` of their descriptors and learns the vocabulary from it: a codebook by
faiss k-means (:class:`BagOfVisualWords`, :class:`VLADEncoder`) or a diagonal Gaussian
mixture by scikit-learn, after an optional PCA (:class:`FisherVectorEncoder`). The fitted
state is numpy arrays in attributes ending with ``_`` (``codebook_``, ``idf_``,
``gmm_means_`` ...); faiss indexes are rebuilt lazily and never pickled.

Spatial pyramid (``pyramid=(1, 2, 4)``: 1x1, 2x2 and 4x4 grids). A descriptor falls in the
cell ``(row, col) = (floor(y * s), floor(x * s))`` of a level with ``s x s`` cells, ``xy``
being its position as a fraction of the image's width and height. The output is level by
level in the order given, cells row-major (top-left, top-right, ..., bottom-right), each
cell's encoding in full before the next cell. Normalisation: bag of words normalises the
whole concatenated histogram at once (every descriptor is counted once per level, so each
level carries the same mass: VLFeat's PHOW); VLAD and Fisher vectors normalise each cell on
its own (intra-normalisation, power, L2), weight a level of ``s x s`` cells by ``1 / s`` so
that every level has the same norm, then L2-normalise the whole vector.

An image with no descriptors encodes as zeros (never NaN); ``n_empty_`` counts them in the
last ``transform`` and a warning is logged.
"""

from __future__ import annotations

import inspect
import logging
import math
import re
import warnings
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
from joblib import Parallel, delayed
from sklearn.base import clone
from sklearn.exceptions import ConvergenceWarning
from tqdm.auto import tqdm

from featkit.exceptions import InvalidParameterError
from featkit.extractors.base import Extractor, InputSpec, _as_image_sequence
from featkit.extractors.local import LocalExtractor, LocalFeatures
from featkit.extractors.params import check_int
from featkit.registry import create_extractor, get_extractor_info, register_extractor

__all__ = [
    "BagOfVisualWords",
    "DenseSiftBagOfWords",
    "DenseSiftFisher",
    "DenseSiftVLAD",
    "FisherVectorEncoder",
    "LocalEncoder",
    "SiftBagOfWords",
    "VLADEncoder",
    "fisher_vector",
    "gmm_posteriors",
    "kmeans_codebook",
    "pca_basis",
    "pyramid_cells",
    "vlad_vector",
]

logger = logging.getLogger(__name__)

#: Images described per task when fitting (the unit of the progress bar and of joblib).
FIT_CHUNK = 16
_NORMS = ("l1", "l2", "hellinger", None)


# -- numeric building blocks (usable on descriptors directly) -------------------------------
def kmeans_codebook(
    descriptors: np.ndarray,
    n_words: int,
    *,
    n_iter: int = 20,
    seed: int = 0,
    max_points_per_centroid: int | None = None,
) -> tuple[np.ndarray, float]:
    """faiss k-means codebook of ``descriptors`` (n, D): float32 (n_words, D) and its inertia.

    ``max_points_per_centroid`` lets faiss train on a seeded subsample of that many points
    per word (faiss's own default is 256); None uses every point (the encoders subsample
    beforehand, to ``max_descriptors``). The result depends only on the data, its order and
    ``seed``, not on the number of threads. The inertia is the sum of squared distances of
    all the points to their nearest word.
    """
    from featkit._faiss import import_faiss

    faiss = import_faiss()

    x = np.ascontiguousarray(descriptors, dtype=np.float32)
    n, d = x.shape
    if n < n_words:
        raise InvalidParameterError(
            f"k-means needs at least n_words={n_words} descriptors, got {n}: give more "
            "training images or fewer words"
        )
    kmeans = faiss.Kmeans(
        d,
        int(n_words),
        niter=int(n_iter),
        seed=int(seed),
        verbose=False,
        min_points_per_centroid=1,  # silences faiss's "please provide 39*k points" warning
        max_points_per_centroid=(
            max(1, -(-n // n_words)) if max_points_per_centroid is None else max_points_per_centroid
        ),
    )
    with _single_threaded_blas():
        kmeans.train(x)
    centroids = np.ascontiguousarray(kmeans.centroids, dtype=np.float32).reshape(n_words, d)
    _, dist = _nearest(_flat_index(centroids), x, 1)
    return centroids, float(dist.sum(dtype=np.float64))


def pca_basis(descriptors: np.ndarray, n_components: int) -> tuple[np.ndarray, np.ndarray]:
    """PCA of descriptors: float32 mean (D,) and components (n_components, D), by variance.

    Eigenvectors of the covariance matrix, each signed so that its largest-magnitude entry
    is positive (scikit-learn's ``svd_flip`` convention for PCA components).
    """
    from threadpoolctl import threadpool_limits

    x = np.asarray(descriptors, dtype=np.float64)
    mean = x.mean(axis=0)
    with threadpool_limits(limits=1, user_api="blas"):
        centred = x - mean
        cov = centred.T @ centred / max(len(x) - 1, 1)
        _, vectors = np.linalg.eigh(cov)
    comps = vectors[:, ::-1][:, :n_components].T
    signs = np.sign(comps[np.arange(len(comps)), np.abs(comps).argmax(axis=1)])
    return mean.astype(np.float32), (comps * signs[:, None]).astype(np.float32)


def pyramid_cells(xy: np.ndarray, side: int) -> np.ndarray:
    """Row-major cell index (row * side + col) of each position in a side x side grid."""
    xy = np.asarray(xy, dtype=np.float64).reshape(-1, 2)
    col = np.clip(np.floor(xy[:, 0] * side), 0, side - 1).astype(np.int64)
    row = np.clip(np.floor(xy[:, 1] * side), 0, side - 1).astype(np.int64)
    return row * side + col


def vlad_vector(
    descriptors: np.ndarray,
    codebook: np.ndarray,
    *,
    assignments: np.ndarray | None = None,
    intra_norm: bool = True,
    power: float = 0.5,
    normalize: bool = True,
) -> np.ndarray:
    """VLAD of one descriptor set: residual sums per nearest word, (K * D,) float64.

    ``intra_norm`` L2-normalises each word's block (Arandjelovic & Zisserman 2013), then
    signed power ``|v| ** power`` and a global L2 normalisation (``normalize``). An empty set
    gives zeros.
    """
    x = np.asarray(descriptors, dtype=np.float64)
    c = np.asarray(codebook, dtype=np.float64)
    k, d = c.shape
    if len(x) == 0:
        return np.zeros(k * d)
    if assignments is None:
        assignments = _nearest(_flat_index(codebook), x, 1)[0][:, 0]
    v = _word_sums(assignments, x - c[assignments], k)
    if intra_norm:
        v = _l2_rows(v)
    return _power_l2(v.ravel(), power, normalize)


def gmm_posteriors(
    descriptors: np.ndarray, weights: np.ndarray, means: np.ndarray, variances: np.ndarray
) -> np.ndarray:
    """Posterior probabilities (n, K) of the components of a diagonal Gaussian mixture."""
    x = np.asarray(descriptors, dtype=np.float64)
    mu = np.asarray(means, dtype=np.float64)
    prec = 1.0 / np.asarray(variances, dtype=np.float64)
    # log N(x | mu_k, diag(var_k)) expanded so that it is one matrix product per term
    log_det = np.sum(np.log(prec), axis=1)
    quad = (x * x) @ prec.T - 2.0 * x @ (mu * prec).T + np.sum(mu * mu * prec, axis=1)[None, :]
    log_prob = -0.5 * (x.shape[1] * np.log(2 * np.pi) + quad) + 0.5 * log_det
    log_prob += np.log(np.asarray(weights, dtype=np.float64))[None, :]
    log_prob -= log_prob.max(axis=1, keepdims=True)
    # below e^-100 a posterior is 0 for any purpose; exact zeros keep subnormal numbers
    # (hundreds of times slower in BLAS) out of the statistics
    log_prob[log_prob < -100.0] = -np.inf
    post = np.exp(log_prob)
    return post / post.sum(axis=1, keepdims=True)


def fisher_vector(
    descriptors: np.ndarray,
    weights: np.ndarray,
    means: np.ndarray,
    variances: np.ndarray,
    *,
    posteriors: np.ndarray | None = None,
    power: float = 0.5,
    normalize: bool = True,
) -> np.ndarray:
    """Improved Fisher vector (Perronnin et al. 2010) of one set, (2 * K * D,) float64.

    Gradients with respect to the means then the standard deviations, each (K, D) row-major::

        G_mu_k    = 1 / (T sqrt(w_k))   sum_t g_t(k) (x_t - mu_k) / sigma_k
        G_sigma_k = 1 / (T sqrt(2 w_k)) sum_t g_t(k) [(x_t - mu_k)^2 / sigma_k^2 - 1]

    then signed power ``|v| ** power`` and L2 (``normalize``). This is the layout of
    ``skimage.feature.fisher_vector`` without its K weight gradients; skimage's sigma block
    has the opposite sign. An empty set gives zeros.
    """
    x = np.asarray(descriptors, dtype=np.float64)
    mu = np.asarray(means, dtype=np.float64)
    var = np.asarray(variances, dtype=np.float64)
    w = np.asarray(weights, dtype=np.float64)
    k, d = mu.shape
    if len(x) == 0:
        return np.zeros(2 * k * d)
    g = gmm_posteriors(x, w, mu, var) if posteriors is None else np.asarray(posteriors)
    t = len(x)
    s0 = g.sum(axis=0)[:, None]  # (K, 1)
    s1 = g.T @ x  # (K, D)
    s2 = g.T @ (x * x)
    sigma = np.sqrt(var)
    g_mu = (s1 - s0 * mu) / (t * np.sqrt(w)[:, None] * sigma)
    g_sigma = (s2 - 2.0 * mu * s1 + s0 * (mu * mu - var)) / (t * np.sqrt(2.0 * w)[:, None] * var)
    return _power_l2(np.concatenate([g_mu.ravel(), g_sigma.ravel()]), power, normalize)


# -- the encoders -------------------------------------------------------------------------
class LocalEncoder(Extractor):
    """Base class of encodings of local descriptors (one vector per image).

    ``fit`` resolves ``local`` (a clone of an instance, or ``create_extractor(name)``) into
    ``local_``. Subclasses learn their vocabulary in ``_fit_vocabulary(sample)`` and encode
    one image in ``_codes`` (per-descriptor work: assignment, posteriors), ``_cell`` (one
    pyramid cell: raw for bag of words, normalised for VLAD and Fisher vectors) and
    ``_finish`` (the levels' (cells, E) blocks into one normalised vector). ``encode``
    encodes descriptor sets computed beforehand (describe once, encode several ways).
    """

    requires_fit = True
    kind = "global"
    # parameters shared by every encoder; subclasses list them in their own __init__
    local: Any
    pyramid: Any
    max_descriptors: int
    seed: int

    # -- parameters ---------------------------------------------------------------------
    @property
    def _label(self) -> str:
        return self.name or type(self).__name__

    def validate_params(self) -> None:
        label = self._label
        local = self.local
        if isinstance(local, str):
            try:
                info = get_extractor_info(local)
            except LookupError as exc:
                raise InvalidParameterError(f"{label}: local={local!r}: {exc}") from exc
            if getattr(info.factory, "kind", "local") != "local":
                raise InvalidParameterError(
                    f"{label}: local={local!r} is a global extractor; give a local one "
                    "(e.g. 'sift', 'dsift')"
                )
        elif isinstance(local, LocalExtractor) or (
            isinstance(local, Extractor) and getattr(local, "kind", "") == "local"
        ):
            local.validate_params()
        else:
            raise InvalidParameterError(
                f"{label}: local must be a registered local extractor name or a LocalExtractor "
                f"instance, got {local!r}"
            )
        pyr = self.pyramid
        if (
            not isinstance(pyr, (tuple, list))
            or not pyr
            or not all(_is_int(s) and 1 <= s <= 64 for s in pyr)
        ):
            raise InvalidParameterError(
                f"{label}: pyramid must be a non-empty tuple of grid sides in 1..64, e.g. "
                f"(1, 2, 4), got {pyr!r}"
            )
        if len(set(pyr)) != len(pyr):
            raise InvalidParameterError(f"{label}: pyramid levels must be distinct, got {pyr!r}")
        check_int(label, "max_descriptors", self.max_descriptors, 1)
        check_int(label, "seed", self.seed, 0, 2**31 - 1)

    def set_params(self, **params: Any) -> LocalEncoder:
        """Set parameters; ``local__name=value`` also works when ``local`` is a name."""
        local = params.get("local", self.local)
        if isinstance(local, str) and any(k.startswith("local__") for k in params):
            params["local"] = create_extractor(local)
        return super().set_params(**params)

    def _local(self) -> Extractor:
        """The fitted local extractor, or the one the ``local`` parameter names."""
        fitted = self.__dict__.get("local_")
        if fitted is not None:
            return fitted
        return create_extractor(self.local) if isinstance(self.local, str) else self.local

    def input_spec(self) -> InputSpec:
        return self._local().input_spec()

    def _n_cells(self) -> int:
        return sum(int(s) ** 2 for s in self.pyramid)

    def _descriptor_dim(self) -> int | None:
        """Dimension the vocabulary works in (after any projection), None when unknown."""
        try:
            return int(self._local().descriptor_dim())
        except Exception:  # an unregistered name or a plugin without descriptor_dim
            return None

    def _cell_dim(self) -> int | None:
        raise NotImplementedError

    def _feature_dim(self) -> int | None:
        cell = self._cell_dim()
        return None if cell is None else cell * self._n_cells()

    @property
    def config(self) -> dict[str, Any]:
        """Extractor config plus the local extractor's (its version invalidates the cache)."""
        cfg = super().config
        try:
            local = self._local()
        except Exception:  # an unregistered name: validate_params reports it
            return cfg
        cfg["local"] = local.config
        return cfg

    def get_feature_names_out(self, input_features: Any = None) -> np.ndarray:
        """``{name}_{cell}_{element}``: cells as ``s{side}_r{row}_c{col}`` (omitted for (1,))."""
        prefix = self._label.replace("-", "_").replace("/", "_")
        elements = self._element_names()
        cells = [f"s{s}_r{r}_c{c}_" for s in self.pyramid for r in range(s) for c in range(s)]
        if list(self.pyramid) == [1]:
            cells = [""]
        return np.asarray([f"{prefix}_{c}{e}" for c in cells for e in elements], dtype=object)

    def _element_names(self) -> list[str]:
        raise NotImplementedError

    # -- fitting ------------------------------------------------------------------------
    def fit(self, images: Any, y: Any = None) -> LocalEncoder:
        """Describe ``images`` and learn the vocabulary from a seeded descriptor subsample.

        Description runs in joblib tasks of ``FIT_CHUNK`` images: set
        ``joblib.parallel_config(n_jobs=...)`` around ``fit`` to use several cores; the
        result does not depend on it.
        """
        self.validate_params()
        items = list(_as_image_sequence(images))
        if not items:
            raise InvalidParameterError(f"{self._label}: fit needs at least one training image")
        local = (
            clone(self.local) if not isinstance(self.local, str) else create_extractor(self.local)
        )
        if local.requires_fit:
            local.fit(items)
        self.local_ = local
        sample, stats = _collect_sample(
            local, items, int(self.max_descriptors), int(self.seed), self._label
        )
        self.n_train_images_ = len(items)
        self.n_train_descriptors_ = stats["descriptors"]
        self.n_empty_fit_ = stats["empty"]
        if stats["empty"]:
            logger.warning(
                "%s: %d of %d training images have no local descriptors",
                self._label,
                stats["empty"],
                len(items),
            )
        if len(sample) == 0:
            raise InvalidParameterError(
                f"{self._label}: the {len(items)} training images gave no local descriptors"
            )
        self.__dict__.pop("_faiss_index", None)
        self._fit_vocabulary(sample)
        self._fit_after(items)
        self.is_fitted_ = True
        logger.info(
            "%s: vocabulary learned from %d of %d descriptors of %d images",
            self._label,
            len(sample),
            stats["descriptors"],
            len(items),
        )
        return self

    def _fit_vocabulary(self, sample: np.ndarray) -> None:
        raise NotImplementedError

    def _fit_after(self, items: list[Any]) -> None:
        """A second pass over the training images, when the encoding needs one (tf-idf)."""

    # -- encoding -----------------------------------------------------------------------
    @property
    def n_empty_(self) -> int | None:
        """Images without descriptors in the last transform/encode (encoded as zeros)."""
        return self.__dict__.get("_n_empty")

    def _transform(self, images: list[np.ndarray]) -> np.ndarray:
        return self.encode(self.local_.describe_prepared(images))

    def transform_notes(self) -> dict[str, int]:
        """``no_local_descriptors``: images of the last transform encoded as zeros."""
        return {"no_local_descriptors": self.n_empty_ or 0}

    def encode(self, features: Sequence[LocalFeatures]) -> np.ndarray:
        """Encode descriptor sets already computed (one LocalFeatures per image), float32."""
        self._check_fitted()
        dim = self._feature_dim()
        out = np.zeros((len(features), dim), dtype=np.float32)
        empty = 0
        for i, feats in enumerate(features):
            if len(feats) == 0:
                empty += 1
                continue
            out[i] = self._encode_one(feats)
        self._n_empty = empty
        if empty:
            logger.warning(
                "%s: %d of %d images have no local descriptors; encoded as zeros",
                self._label,
                empty,
                len(features),
            )
        return out

    def _encode_one(self, feats: LocalFeatures) -> np.ndarray:
        x = feats.descriptors
        expected = self._vocabulary_input_dim()
        if x.shape[1] != expected:
            raise ValueError(
                f"{self._label}: descriptors have {x.shape[1]} dimensions, the vocabulary "
                f"was learned on {expected}"
            )
        codes = self._codes(x)
        blocks = []
        for s in self.pyramid:
            cells = pyramid_cells(feats.xy, int(s))
            blocks.append(np.stack([self._cell(codes, cells == c) for c in range(s * s)]))
        return self._finish(blocks)

    def _vocabulary_input_dim(self) -> int:
        raise NotImplementedError

    def _codes(self, x: np.ndarray) -> Any:
        raise NotImplementedError

    def _cell(self, codes: Any, mask: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def _finish(self, blocks: list[np.ndarray]) -> np.ndarray:
        raise NotImplementedError

    def _index(self) -> Any:
        """The faiss index of the codebook, built on first use (never pickled)."""
        index = self.__dict__.get("_faiss_index")
        if index is None:
            index = _flat_index(self.codebook_)
            self._faiss_index = index
        return index

    def __getstate__(self) -> dict[str, Any]:
        state = super().__getstate__()
        state.pop("_faiss_index", None)  # faiss indexes are not picklable; rebuilt lazily
        return state

    def _finish_cellwise(self, blocks: list[np.ndarray]) -> np.ndarray:
        """Cell-normalised blocks (VLAD, FV): level of s x s cells weighted 1/s, global L2."""
        vec = np.concatenate(
            [b.ravel() / int(s) for b, s in zip(blocks, self.pyramid, strict=True)]
        )
        return _power_l2(vec, 1.0, True)


@register_extractor("bovw")
class BagOfVisualWords(LocalEncoder):
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
    pyramid : tuple of int, default=(1,)
        Spatial pyramid grid sides, e.g. (1, 2, 4) for 1x1 + 2x2 + 4x4 cells.
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
        if self.soft_sigma is not None and not (
            _is_number(self.soft_sigma) and self.soft_sigma > 0
        ):
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
        check_int(label, "n_iter", self.n_iter, 1)
        super().validate_params()

    def _cell_dim(self) -> int:
        return int(self.n_words)

    def _element_names(self) -> list[str]:
        return [f"w{k}" for k in range(int(self.n_words))]

    def _vocabulary_input_dim(self) -> int:
        return self.codebook_.shape[1]

    def _fit_vocabulary(self, sample: np.ndarray) -> None:
        self.codebook_, self.inertia_ = kmeans_codebook(
            sample, int(self.n_words), n_iter=int(self.n_iter), seed=int(self.seed)
        )
        self._faiss_index = None
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


@register_extractor("vlad")
class VLADEncoder(LocalEncoder):
    """VLAD: residuals to the nearest codebook word summed per word (Jegou et al. 2010).

    Each word's block is L2-normalised (intra-normalisation, Arandjelovic & Zisserman 2013),
    then signed power normalisation ``sign(v) |v| ** power`` and L2. With a spatial pyramid,
    each cell is normalised on its own, a level of s x s cells is weighted by 1/s, and the
    whole vector is L2-normalised. Output dimension: n_words x D per cell (D the descriptor
    dimension). Images without descriptors give zeros.

    Parameters
    ----------
    local : str or LocalExtractor, default="dsift"
        Local descriptor extractor: a registered name or an instance (its parameters are
        nested: ``local__step``).
    n_words : int, default=64
        Codebook size (k-means clusters).
    intra_norm : bool, default=True
        L2-normalise each word's residual sum before the power and global normalisation.
    power : float, default=0.5
        Exponent of the signed power normalisation (1 disables it).
    pyramid : tuple of int, default=(1,)
        Spatial pyramid grid sides, e.g. (1, 2) for 1x1 + 2x2 cells.
    n_iter : int, default=20
        k-means iterations.
    max_descriptors : int, default=100000
        Size of the seeded uniform subsample of training descriptors k-means runs on.
    seed : int, default=0
        Seed of the subsample and of k-means.
    """

    name = "vlad"

    version = "1"

    def __init__(
        self,
        local: Any = "dsift",
        n_words: int = 64,
        intra_norm: bool = True,
        power: float = 0.5,
        pyramid: tuple[int, ...] = (1,),
        n_iter: int = 20,
        max_descriptors: int = 100_000,
        seed: int = 0,
    ) -> None:
        self.local = local
        self.n_words = n_words
        self.intra_norm = intra_norm
        self.power = power
        self.pyramid = pyramid
        self.n_iter = n_iter
        self.max_descriptors = max_descriptors
        self.seed = seed

    def validate_params(self) -> None:
        label = self._label
        check_int(label, "n_words", self.n_words, 1, 2**16)
        if not isinstance(self.intra_norm, (bool, np.bool_)):
            raise InvalidParameterError(
                f"{label}: intra_norm must be True or False, got {self.intra_norm!r}"
            )
        _check_power(label, self.power)
        check_int(label, "n_iter", self.n_iter, 1)
        super().validate_params()

    def _cell_dim(self) -> int | None:
        fitted = self.__dict__.get("codebook_")
        d = fitted.shape[1] if fitted is not None else self._descriptor_dim()
        return None if d is None else int(self.n_words) * d

    def _element_names(self) -> list[str]:
        d = self._cell_dim() // int(self.n_words)
        return [f"w{k}_d{j}" for k in range(int(self.n_words)) for j in range(d)]

    def _vocabulary_input_dim(self) -> int:
        return self.codebook_.shape[1]

    def _fit_vocabulary(self, sample: np.ndarray) -> None:
        self.codebook_, self.inertia_ = kmeans_codebook(
            sample, int(self.n_words), n_iter=int(self.n_iter), seed=int(self.seed)
        )
        self._faiss_index = None

    def _codes(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        nn = _nearest(self._index(), x, 1)[0][:, 0]
        return nn, x.astype(np.float64) - self.codebook_[nn].astype(np.float64)

    def _cell(self, codes: tuple[np.ndarray, np.ndarray], mask: np.ndarray) -> np.ndarray:
        nn, residuals = codes
        k = int(self.n_words)
        if not mask.any():
            return np.zeros(k * residuals.shape[1])
        v = _word_sums(nn[mask], residuals[mask], k)
        if self.intra_norm:
            v = _l2_rows(v)
        return _power_l2(v.ravel(), float(self.power), True)

    def _finish(self, blocks: list[np.ndarray]) -> np.ndarray:
        return self._finish_cellwise(blocks)


@register_extractor("fisher")
class FisherVectorEncoder(LocalEncoder):
    """Improved Fisher vectors (Perronnin et al. 2010) on a diagonal Gaussian mixture.

    Descriptors are optionally projected by PCA (``pca_dim``: VLFeat/PHOW practice, which
    decorrelates them for the diagonal model), then a
    ``sklearn.mixture.GaussianMixture(covariance_type="diag", random_state=seed)`` is fitted
    with ``reg_covar`` = 1e-4 x the largest per-dimension variance (VLFeat's variance floor).
    The vector holds the gradients with respect to the means then the standard deviations
    (2 x n_components x D per cell, each (K, D) row-major), signed power ``power`` + L2 per
    cell. With a spatial pyramid, a level of s x s cells is weighted by 1/s and the whole
    vector is L2-normalised. Images without descriptors give zeros.

    Parameters
    ----------
    local : str or LocalExtractor, default="dsift"
        Local descriptor extractor: a registered name or an instance (its parameters are
        nested: ``local__step``).
    n_components : int, default=64
        Gaussians in the mixture.
    pca_dim : int or None, default=64
        Dimensions kept by PCA of the descriptors before the mixture; None keeps them all.
    power : float, default=0.5
        Exponent of the signed power normalisation (1 disables it).
    pyramid : tuple of int, default=(1,)
        Spatial pyramid grid sides, e.g. (1, 2) for 1x1 + 2x2 cells.
    n_iter : int, default=100
        Maximum EM iterations of the mixture.
    max_descriptors : int, default=100000
        Size of the seeded uniform subsample of training descriptors PCA and EM run on.
    seed : int, default=0
        Seed of the subsample, PCA and the mixture.
    """

    name = "fisher"

    version = "1"

    def __init__(
        self,
        local: Any = "dsift",
        n_components: int = 64,
        pca_dim: int | None = 64,
        power: float = 0.5,
        pyramid: tuple[int, ...] = (1,),
        n_iter: int = 100,
        max_descriptors: int = 100_000,
        seed: int = 0,
    ) -> None:
        self.local = local
        self.n_components = n_components
        self.pca_dim = pca_dim
        self.power = power
        self.pyramid = pyramid
        self.n_iter = n_iter
        self.max_descriptors = max_descriptors
        self.seed = seed

    def validate_params(self) -> None:
        label = self._label
        check_int(label, "n_components", self.n_components, 1, 2**14)
        if self.pca_dim is not None:
            check_int(label, "pca_dim", self.pca_dim, 1)
        _check_power(label, self.power)
        check_int(label, "n_iter", self.n_iter, 1)
        super().validate_params()

    def _cell_dim(self) -> int | None:
        fitted = self.__dict__.get("gmm_means_")
        if fitted is not None:
            d = fitted.shape[1]
        elif self.pca_dim is not None:
            d = int(self.pca_dim)
        else:
            d = self._descriptor_dim()
        return None if d is None else 2 * int(self.n_components) * d

    def _element_names(self) -> list[str]:
        k = int(self.n_components)
        d = self._cell_dim() // (2 * k)
        return [f"{g}{i}_d{j}" for g in ("mu", "sigma") for i in range(k) for j in range(d)]

    def _vocabulary_input_dim(self) -> int:
        return self.gmm_means_.shape[1] if self.pca_components_ is None else len(self.pca_mean_)

    def _fit_vocabulary(self, sample: np.ndarray) -> None:
        from sklearn.mixture import GaussianMixture
        from threadpoolctl import threadpool_limits

        d = sample.shape[1]
        k = int(self.n_components)
        if self.pca_dim is not None:
            if int(self.pca_dim) > min(d, len(sample)):
                raise InvalidParameterError(
                    f"{self._label}: pca_dim={self.pca_dim} exceeds the descriptor dimension "
                    f"{d} or the {len(sample)} training descriptors"
                )
            self.pca_mean_, self.pca_components_ = pca_basis(sample, int(self.pca_dim))
        else:
            self.pca_mean_ = None
            self.pca_components_ = None
        x = np.asarray(self._project(sample), dtype=np.float64)
        if len(x) < k:
            raise InvalidParameterError(
                f"{self._label}: the mixture needs at least n_components={k} descriptors, "
                f"got {len(x)}: give more training images or fewer components"
            )
        reg = max(1e-4 * float(x.var(axis=0).max()), 1e-10)
        weights, means, variances = _kmeans_mixture(x, k, reg, int(self.seed))
        gmm = GaussianMixture(
            n_components=k,
            covariance_type="diag",
            reg_covar=reg,
            max_iter=int(self.n_iter),
            random_state=int(self.seed),
            init_params="random",  # overridden by the k-means initial mixture below
            weights_init=weights,
            means_init=means,
            precisions_init=1.0 / variances,
        )
        # One BLAS/OpenMP thread: the mixture is then the same on any machine, and EM's thin
        # matrix products gain little from threads (and lose much on a busy machine).
        with threadpool_limits(limits=1), warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            gmm.fit(x)
        self.gmm_reg_covar_ = reg
        self.gmm_weights_ = gmm.weights_.astype(np.float64)
        self.gmm_means_ = gmm.means_.astype(np.float64)
        self.gmm_covariances_ = gmm.covariances_.astype(np.float64)
        self.gmm_converged_ = bool(gmm.converged_)
        self.gmm_n_iter_ = int(gmm.n_iter_)

    def _project(self, x: np.ndarray) -> np.ndarray:
        if self.pca_components_ is None:
            return x
        return (x - self.pca_mean_) @ self.pca_components_.T

    def _codes(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        z = self._project(x.astype(np.float64))
        return z, gmm_posteriors(z, self.gmm_weights_, self.gmm_means_, self.gmm_covariances_)

    def _cell(self, codes: tuple[np.ndarray, np.ndarray], mask: np.ndarray) -> np.ndarray:
        z, post = codes
        if not mask.any():
            return np.zeros(2 * self.gmm_means_.size)
        return fisher_vector(
            z[mask],
            self.gmm_weights_,
            self.gmm_means_,
            self.gmm_covariances_,
            posteriors=post[mask],
            power=float(self.power),
        )

    def _finish(self, blocks: list[np.ndarray]) -> np.ndarray:
        return self._finish_cellwise(blocks)


# -- registered combinations (subclasses: scikit-learn reads defaults from __init__) ------
@register_extractor("sift-bovw")
class SiftBagOfWords(BagOfVisualWords):
    name = "sift-bovw"

    def __init__(
        self,
        local: Any = "sift",
        n_words: int = 1024,
        assignment: str = "soft",
        soft_sigma: float | None = None,
        soft_knn: int = 5,
        tfidf: bool = False,
        pyramid: tuple[int, ...] = (1,),
        norm: str | None = "hellinger",
        n_iter: int = 20,
        max_descriptors: int = 100_000,
        seed: int = 0,
    ) -> None:
        super().__init__(
            local=local,
            n_words=n_words,
            assignment=assignment,
            soft_sigma=soft_sigma,
            soft_knn=soft_knn,
            tfidf=tfidf,
            pyramid=pyramid,
            norm=norm,
            n_iter=n_iter,
            max_descriptors=max_descriptors,
            seed=seed,
        )


@register_extractor("dsift-bovw")
class DenseSiftBagOfWords(BagOfVisualWords):
    name = "dsift-bovw"

    def __init__(
        self,
        local: Any = "dsift",
        n_words: int = 1024,
        assignment: str = "soft",
        soft_sigma: float | None = None,
        soft_knn: int = 5,
        tfidf: bool = False,
        pyramid: tuple[int, ...] = (1, 2),
        norm: str | None = "hellinger",
        n_iter: int = 20,
        max_descriptors: int = 100_000,
        seed: int = 0,
    ) -> None:
        super().__init__(
            local=local,
            n_words=n_words,
            assignment=assignment,
            soft_sigma=soft_sigma,
            soft_knn=soft_knn,
            tfidf=tfidf,
            pyramid=pyramid,
            norm=norm,
            n_iter=n_iter,
            max_descriptors=max_descriptors,
            seed=seed,
        )


@register_extractor("dsift-vlad")
class DenseSiftVLAD(VLADEncoder):
    name = "dsift-vlad"

    def __init__(
        self,
        local: Any = "dsift",
        n_words: int = 64,
        intra_norm: bool = True,
        power: float = 0.5,
        pyramid: tuple[int, ...] = (1,),
        n_iter: int = 20,
        max_descriptors: int = 100_000,
        seed: int = 0,
    ) -> None:
        super().__init__(
            local=local,
            n_words=n_words,
            intra_norm=intra_norm,
            power=power,
            pyramid=pyramid,
            n_iter=n_iter,
            max_descriptors=max_descriptors,
            seed=seed,
        )


@register_extractor("dsift-fisher")
class DenseSiftFisher(FisherVectorEncoder):
    name = "dsift-fisher"

    def __init__(
        self,
        local: Any = "dsift",
        n_components: int = 64,
        pca_dim: int | None = 64,
        power: float = 0.5,
        pyramid: tuple[int, ...] = (1,),
        n_iter: int = 100,
        max_descriptors: int = 100_000,
        seed: int = 0,
    ) -> None:
        super().__init__(
            local=local,
            n_components=n_components,
            pca_dim=pca_dim,
            power=power,
            pyramid=pyramid,
            n_iter=n_iter,
            max_descriptors=max_descriptors,
            seed=seed,
        )


def _document(cls: type, summary: str) -> None:
    """Give a combination its base class's docstring with its own summary and defaults."""
    base = next(b for b in cls.__mro__[1:] if b.__doc__ and "Parameters" in b.__doc__)
    doc = inspect.getdoc(base) or ""
    defaults = {
        n: p.default for n, p in inspect.signature(cls.__init__).parameters.items() if n != "self"
    }

    def fix(match: re.Match[str]) -> str:
        name = match.group(1)
        return (
            f"{name} : {match.group(2)}, default={defaults[name]!r}"
            if name in defaults
            else match.group(0)
        )

    head, _, params = doc.partition("\nParameters\n")
    body = head.split("\n", 1)[1] if "\n" in head else ""
    params = re.sub(r"^(\w+) : (.*?), default=.*$", fix, params, flags=re.MULTILINE)
    cls.__doc__ = f"{summary}\n{body}\nParameters\n{params}"


_document(
    SiftBagOfWords,
    "Bag of visual words of SIFT keypoints, soft-assigned (kernel codebook), Hellinger.",
)
_document(
    DenseSiftBagOfWords,
    "Bag of visual words of dense SIFT: soft assignment, Hellinger, 1x1 + 2x2 spatial pyramid.",
)
_document(DenseSiftVLAD, "VLAD of dense SIFT descriptors (64 words, intra-normalised).")
_document(DenseSiftFisher, "Improved Fisher vectors of dense SIFT (PCA to 64, 64 Gaussians).")


def _kmeans_mixture(
    x: np.ndarray, k: int, reg: float, seed: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Initial diagonal mixture from faiss k-means clusters (as VLFeat's vl_gmm does)."""
    centres, _ = kmeans_codebook(x, k, n_iter=20, seed=seed)
    labels = _nearest(_flat_index(centres), x, 1)[0][:, 0]
    counts = np.bincount(labels, minlength=k).astype(np.float64)
    order = np.argsort(labels, kind="stable")
    present = np.flatnonzero(counts)
    starts = np.concatenate([[0], np.cumsum(counts[present])[:-1]]).astype(np.int64)
    sums = np.zeros((k, x.shape[1]))
    squares = np.zeros((k, x.shape[1]))
    sums[present] = np.add.reduceat(x[order], starts, axis=0)
    squares[present] = np.add.reduceat(x[order] ** 2, starts, axis=0)
    safe = np.maximum(counts, 1.0)[:, None]
    means = np.where(counts[:, None] > 0, sums / safe, centres.astype(np.float64))
    variances = np.where(counts[:, None] > 1, squares / safe - means**2, x.var(axis=0))
    weights = (counts + 1.0) / (counts.sum() + k)  # no empty component
    return weights, means, np.maximum(variances, 0.0) + reg


# -- fitting helpers (module level: joblib workers import them) ---------------------------
def _collect_sample(
    local: Extractor, items: list[Any], max_keep: int, seed: int, label: str
) -> tuple[np.ndarray, dict[str, int]]:
    """A uniform random subsample of at most ``max_keep`` descriptors of all the images.

    Every descriptor gets a random key from a generator seeded by (seed, image index); the
    ``max_keep`` smallest keys are kept. The result depends neither on the chunking nor on
    the number of joblib workers.
    """
    keys: list[np.ndarray] = []
    descs: list[np.ndarray] = []
    stats = {"descriptors": 0, "empty": 0}
    held = 0
    for k, d, n_desc, n_empty in _map_chunks(
        _describe_chunk, local, items, f"{label}: describing", max_keep, seed, with_start=True
    ):
        keys.append(k)
        descs.append(d)
        held += len(k)
        stats["descriptors"] += n_desc
        stats["empty"] += n_empty
        if held > 2 * max_keep:  # prune the buffer: memory stays O(max_keep)
            keys, descs = [np.concatenate(keys)], [np.concatenate(descs)]
            keys[0], descs[0] = _smallest(keys[0], descs[0], max_keep)
            held = len(keys[0])
    if not keys:
        return np.zeros((0, 0), np.float32), stats
    all_keys, all_descs = _smallest(np.concatenate(keys), np.concatenate(descs), max_keep)
    order = np.argsort(all_keys, kind="stable")
    return np.ascontiguousarray(all_descs[order]), stats


def _smallest(keys: np.ndarray, descs: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    if len(keys) <= n:
        return keys, descs
    part = np.argpartition(keys, n - 1)[:n]
    return keys[part], descs[part]


def _map_chunks(
    func: Any, obj: Any, items: list[Any], desc: str, *args: Any, with_start: bool = False
) -> Iterable[Any]:
    """``func(obj, chunk, *args)`` over chunks of images in joblib tasks, with progress."""
    starts = range(0, len(items), FIT_CHUNK)
    tasks = (
        delayed(func)(obj, items[s : s + FIT_CHUNK], *((s, *args) if with_start else args))
        for s in starts
    )
    bar = tqdm(total=len(items), desc=desc, unit="img", leave=False, delay=2.0, disable=None)
    with bar:
        for s, result in zip(starts, Parallel(return_as="generator")(tasks), strict=True):
            bar.update(min(FIT_CHUNK, len(items) - s))
            yield result


def _describe_chunk(
    local: Extractor, items: list[Any], start: int, max_keep: int, seed: int
) -> tuple[np.ndarray, np.ndarray, int, int]:
    """Describe a chunk of images: random keys and descriptors of its ``max_keep`` first."""
    feats = local.describe_prepared([local.prepare(item) for item in items])
    keys, descs = [], []
    for i, f in enumerate(feats):
        rng = np.random.default_rng([seed, start + i])
        keys.append(rng.random(len(f)))
        descs.append(f.descriptors)
    n_desc = sum(len(f) for f in feats)
    n_empty = sum(len(f) == 0 for f in feats)
    dim = next((f.descriptors.shape[1] for f in feats if f.descriptors.ndim == 2), 0)
    key = np.concatenate(keys) if keys else np.zeros(0)
    desc = np.concatenate(descs) if descs else np.zeros((0, dim), np.float32)
    key, desc = _smallest(key, desc, max_keep)
    return key, desc, n_desc, n_empty


def _word_presence(encoder: BagOfVisualWords, items: list[Any]) -> np.ndarray:
    """How many images of the chunk contain each word."""
    local = encoder.local_
    feats = local.describe_prepared([local.prepare(item) for item in items])
    return encoder.present_words(feats).sum(axis=0)


# -- small numeric helpers ------------------------------------------------------------------
def _flat_index(codebook: np.ndarray) -> Any:
    from featkit._faiss import import_faiss

    faiss = import_faiss()

    c = np.ascontiguousarray(codebook, dtype=np.float32)
    index = faiss.IndexFlatL2(c.shape[1])
    index.add(c)
    return index


def _nearest(index: Any, x: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Indices (n, k) of the k nearest words and their squared distances."""
    with _single_threaded_blas():
        dist, idx = index.search(np.ascontiguousarray(x, dtype=np.float32), k)
    return idx.astype(np.int64), dist


def _single_threaded_blas() -> Any:
    """Limit BLAS to one thread around faiss calls: faiss parallelises with OpenMP, and
    OpenBLAS threads on top of it oversubscribe the cores (2x slower measured on 2 cores)."""
    controller = _CONTROLLER.get("blas")
    if controller is None:
        from featkit._faiss import import_faiss

        import_faiss()  # its BLAS must be loaded before the controller looks
        from threadpoolctl import ThreadpoolController

        controller = _CONTROLLER["blas"] = ThreadpoolController()
    return controller.limit(limits=1, user_api="blas")


_CONTROLLER: dict[str, Any] = {}


def _word_sums(labels: np.ndarray, values: np.ndarray, k: int) -> np.ndarray:
    """Sum of the rows of ``values`` per label: (k, D), zeros for absent labels."""
    out = np.zeros((k, values.shape[1]))
    if len(labels) == 0:
        return out
    order = np.argsort(labels, kind="stable")
    sorted_labels = labels[order]
    starts = np.flatnonzero(np.r_[True, sorted_labels[1:] != sorted_labels[:-1]])
    out[sorted_labels[starts]] = np.add.reduceat(values[order], starts, axis=0)
    return out


def _l2_rows(v: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(v, axis=1, keepdims=True)
    return np.divide(v, norms, out=np.zeros_like(v), where=norms > 0)


def _power_l2(v: np.ndarray, power: float, normalize: bool) -> np.ndarray:
    if power != 1.0:
        v = np.sign(v) * np.abs(v) ** power
    if normalize:
        norm = np.linalg.norm(v)
        v = v / norm if norm > 0 else v
    return v


def _is_int(value: Any) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_))


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(
        value, (bool, np.bool_)
    )


def _check_power(label: str, value: Any) -> None:
    if not _is_number(value) or not 0 < value <= 1:
        raise InvalidParameterError(f"{label}: power must be in (0, 1], got {value!r}")

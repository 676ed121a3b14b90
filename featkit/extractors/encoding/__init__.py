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

Spatial pyramid (``pyramid=(1, 2, 4)``: 1x1, 2x2 and 4x4 grids; a level may also be a
``(rows, cols)`` pair: ``(1, 2, (3, 1))`` adds three horizontal bands, the "3x1" level of
Chatfield et al. 2011). A descriptor falls in the cell ``(row, col) = (floor(y * rows),
floor(x * cols))`` of a level, ``xy`` being its position as a fraction of the image's width
and height. The output is level by level in the order given, cells row-major (top-left,
top-right, ..., bottom-right), each cell's encoding in full before the next cell.
Normalisation: bag of words normalises the whole concatenated histogram at once (every
descriptor is counted once per level, so each level carries the same mass: VLFeat's PHOW);
VLAD and Fisher vectors normalise each cell on its own (intra-normalisation, power, L2),
weight a level of ``n`` cells by ``1 / sqrt(n)`` (``1 / s`` for ``s x s``) so that every
level has the same norm, then L2-normalise the whole vector.

An image with no descriptors encodes as zeros (never NaN); ``n_empty_`` counts them in the
last ``transform`` and a warning is logged.

Where things are: ``kernels`` (k-means codebook, PCA, VLAD, GMM posteriors, Fisher vector,
the faiss/BLAS helpers), ``base`` (:class:`LocalEncoder`, the k-means vocabulary of
:class:`CodebookEncoder`, the spatial pyramid), ``sampling`` (the seeded training
subsample, described in joblib tasks), one module per encoder (``bovw``, ``vlad``,
``fisher``) and ``presets`` (``sift-bovw``, ``dsift-bovw``, ``dsift-vlad``,
``dsift-fisher``, ``dsift-fisher-chatfield2011``). Everything public is importable from
this package.
"""

from featkit.extractors.encoding.base import (
    CodebookEncoder,
    LocalEncoder,
    pyramid_cells,
    pyramid_levels,
)
from featkit.extractors.encoding.bovw import BagOfVisualWords
from featkit.extractors.encoding.fisher import FisherVectorEncoder
from featkit.extractors.encoding.kernels import (
    fisher_vector,
    gmm_posteriors,
    kmeans_codebook,
    pca_basis,
    vlad_vector,
)
from featkit.extractors.encoding.presets import (
    DenseSiftBagOfWords,
    DenseSiftFisher,
    DenseSiftFisherChatfield2011,
    DenseSiftVLAD,
    SiftBagOfWords,
)
from featkit.extractors.encoding.sampling import FIT_CHUNK as FIT_CHUNK  # re-exported
from featkit.extractors.encoding.vlad import VLADEncoder

__all__ = [
    "BagOfVisualWords",
    "CodebookEncoder",
    "DenseSiftBagOfWords",
    "DenseSiftFisher",
    "DenseSiftFisherChatfield2011",
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
    "pyramid_levels",
    "vlad_vector",
]

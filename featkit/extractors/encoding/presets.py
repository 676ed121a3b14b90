"""The registered encoder presets: ``sift-bovw``, ``dsift-bovw``, ``dsift-vlad``, ``dsift-fisher``.

Each is an encoder with other defaults, declared with
:func:`featkit.extractors.presets.register_preset` (the classes are thin subclasses, bound
in the package as before it was split: ``featkit.extractors.encoding.SiftBagOfWords``).
"""

from __future__ import annotations

from featkit.extractors.encoding.base import PUBLIC_MODULE
from featkit.extractors.encoding.bovw import BagOfVisualWords
from featkit.extractors.encoding.fisher import FisherVectorEncoder
from featkit.extractors.encoding.vlad import VLADEncoder
from featkit.extractors.presets import register_preset

__all__ = ["DenseSiftBagOfWords", "DenseSiftFisher", "DenseSiftVLAD", "SiftBagOfWords"]

SiftBagOfWords = register_preset(
    "sift-bovw",
    BagOfVisualWords,
    summary="Bag of visual words of SIFT keypoints, soft-assigned (kernel codebook), Hellinger.",
    defaults={"local": "sift", "assignment": "soft"},
    class_name="SiftBagOfWords",
    module=PUBLIC_MODULE,
)

DenseSiftBagOfWords = register_preset(
    "dsift-bovw",
    BagOfVisualWords,
    summary=(
        "Bag of visual words of dense SIFT: soft assignment, Hellinger, 1x1 + 2x2 spatial pyramid."
    ),
    defaults={"local": "dsift", "assignment": "soft", "pyramid": (1, 2)},
    class_name="DenseSiftBagOfWords",
    module=PUBLIC_MODULE,
)

DenseSiftVLAD = register_preset(
    "dsift-vlad",
    VLADEncoder,
    summary="VLAD of dense SIFT descriptors (64 words, intra-normalised).",
    defaults={"local": "dsift", "n_words": 64},
    class_name="DenseSiftVLAD",
    module=PUBLIC_MODULE,
)

DenseSiftFisher = register_preset(
    "dsift-fisher",
    FisherVectorEncoder,
    summary="Improved Fisher vectors of dense SIFT (PCA to 64, 64 Gaussians).",
    defaults={"local": "dsift", "n_components": 64, "pca_dim": 64},
    class_name="DenseSiftFisher",
    module=PUBLIC_MODULE,
)

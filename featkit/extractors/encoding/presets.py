"""The registered encoder presets: ``sift-bovw``, ``dsift-bovw``, ``dsift-vlad``, ``dsift-fisher``,
``dsift-fisher-chatfield2011``.

Each is an encoder with other defaults, declared with
:func:`featkit.extractors.presets.register_preset` (the classes are thin subclasses, bound
in the package as before it was split: ``featkit.extractors.encoding.SiftBagOfWords``).
"""

from __future__ import annotations

import featkit.extractors.dsift  # noqa: F401  registers dsift-phow, the local of the recipe
from featkit.extractors.encoding.base import PUBLIC_MODULE
from featkit.extractors.encoding.bovw import BagOfVisualWords
from featkit.extractors.encoding.fisher import FisherVectorEncoder
from featkit.extractors.encoding.vlad import VLADEncoder
from featkit.extractors.presets import register_preset

__all__ = [
    "DenseSiftBagOfWords",
    "DenseSiftFisher",
    "DenseSiftFisherChatfield2011",
    "DenseSiftVLAD",
    "SiftBagOfWords",
]

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

#: The improved Fisher vector recipe of Chatfield, Lempitsky, Vedaldi and Zisserman, "The devil
#: is in the details: an evaluation of recent feature encoding methods" (BMVC 2011), as in their
#: enceval toolkit: PHOW dense SIFT every 3 px at 4 scales, PCA to 80 dimensions, 256 diagonal
#: Gaussians, gradients of means and variances, spatial pyramid 1x1 + 2x2 + 3x1, signed square
#: root and L2. 2 x 256 x 80 x 8 = 327,680 dimensions (1.3 MB per image in float32).
DenseSiftFisherChatfield2011 = register_preset(
    "dsift-fisher-chatfield2011",
    FisherVectorEncoder,
    summary=(
        "Improved Fisher vectors at the recipe of Chatfield et al. 2011: PHOW dense SIFT, PCA "
        "to 80, 256 Gaussians, 1x1 + 2x2 + 3x1 pyramid (327,680-d)."
    ),
    defaults={
        "local": "dsift-phow",
        "n_components": 256,
        "pca_dim": 80,
        "pyramid": (1, 2, (3, 1)),
    },
    class_name="DenseSiftFisherChatfield2011",
    module=PUBLIC_MODULE,
)

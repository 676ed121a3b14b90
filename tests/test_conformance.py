"""Every registered extractor, built-in or plugin, passes the conformance checks (as timm's
tests run over its registry)."""

from __future__ import annotations

import pytest

import featkit
from featkit.testing import extractor_checks

# The checks fit on six small images: codebooks are shrunk to what they can hold.
SMALL = {
    "bovw": {"n_words": 16},
    "sift-bovw": {"n_words": 8},
    "dsift-bovw": {"n_words": 16},
    "vlad": {"n_words": 8},
    "dsift-vlad": {"n_words": 8},
    "fisher": {"n_components": 4, "pca_dim": 16},
    "dsift-fisher": {"n_components": 4, "pca_dim": 16},
}
# Deep aliases whose weights need a network run with seeded random weights, small inputs.
SMALL.update(
    {
        f"cnn/{alias}": {"pretrained": False, "image_size": 64}
        for alias in ("resnet18", "resnet50", "convnext_tiny", "vit_small")
    }
)
SMALL["cnn/dinov2_small"] = {"pretrained": False, "image_size": 56}  # 14-pixel patches
SMALL.update({f"cnn/efficientnet_lite{i}": {"image_size": 96} for i in range(3)})

CASES = [
    pytest.param(name, check, id=f"{name}-{check}")
    for name in featkit.list_extractors()
    for check, _ in extractor_checks(name)
]


@pytest.mark.parametrize(("name", "check"), CASES)
def test_registered_extractor_conforms(name, check):
    extractor = featkit.create_extractor(name, **SMALL.get(name, {}))
    dict(extractor_checks(extractor))[check]()

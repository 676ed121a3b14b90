"""Every registered extractor, built-in or plugin, passes the conformance checks (as timm's
tests run over its registry)."""

from __future__ import annotations

import json

import pytest
from sklearn.base import clone

import featkit
from featkit.testing import (
    assert_same_configs,
    configs_in_fresh_process,
    extractor_checks,
    sample_images,
)

# The checks fit on six small images: codebooks are shrunk to what they can hold.
SMALL = {
    "bovw": {"n_words": 16},
    "sift-bovw": {"n_words": 8},
    "dsift-bovw": {"n_words": 16},
    "vlad": {"n_words": 8},
    "dsift-vlad": {"n_words": 8},
    "fisher": {"n_components": 4, "pca_dim": 16},
    "dsift-fisher": {"n_components": 4, "pca_dim": 16},
    "dsift-fisher-chatfield2011": {"n_components": 4, "pca_dim": 16},
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


@pytest.fixture(scope="module")
def fresh_process_configs() -> dict[str, tuple[list[str], list[str]]]:
    """check_config_across_processes for every registered extractor, with one fresh
    interpreter for all of them (one each costs ~3 s of imports, 1.5 min in all)."""
    pairs = {}
    for name in featkit.list_extractors():
        extractor = featkit.create_extractor(name, **SMALL.get(name, {}))
        pairs[name] = (clone(extractor), clone(extractor).fit(sample_images()))
    there = iter(configs_in_fresh_process([e for pair in pairs.values() for e in pair]))
    return {
        name: ([json.dumps(e.config, sort_keys=True) for e in pair], [next(there), next(there)])
        for name, pair in pairs.items()
    }


@pytest.mark.parametrize(("name", "check"), CASES)
def test_registered_extractor_conforms(name, check, request):
    if check == "check_config_across_processes":
        here, there = request.getfixturevalue("fresh_process_configs")[name]
        assert_same_configs(here, there)
        return
    extractor = featkit.create_extractor(name, **SMALL.get(name, {}))
    dict(extractor_checks(extractor))[check]()

"""SIFT keypoints (``sift``) against direct OpenCV calls."""

from __future__ import annotations

import json
import pickle

import cv2
import numpy as np
import pytest
import skimage.data
from sklearn.base import clone

import featkit
import featkit.extractors.sift  # registers "sift"
from featkit.exceptions import InvalidParameterError
from featkit.extractors.local import LocalFeatures
from featkit.extractors.sift import SiftExtractor


@pytest.fixture(scope="module")
def photos() -> list[np.ndarray]:
    """Real photographs (scikit-image), gray uint8, at sizes SIFT finds keypoints in."""
    astronaut = cv2.cvtColor(skimage.data.astronaut(), cv2.COLOR_RGB2GRAY)
    return [
        cv2.resize(skimage.data.camera(), (256, 256), interpolation=cv2.INTER_AREA),
        cv2.resize(astronaut, (240, 240), interpolation=cv2.INTER_AREA),
        cv2.cvtColor(skimage.data.chelsea(), cv2.COLOR_RGB2GRAY)[:200, :300].copy(),
    ]


def cv2_sift(image: np.ndarray, **params) -> tuple[list, np.ndarray]:
    kps, desc = cv2.SIFT_create(**params).detectAndCompute(image, None)
    return list(kps), desc


def test_matches_direct_cv2(photos):
    ex = featkit.create_extractor("sift")
    assert isinstance(ex, SiftExtractor) and ex.kind == "local"
    for image, feats in zip(photos, ex.describe(photos), strict=True):
        kps, desc = cv2_sift(image)
        assert len(kps) > 50
        assert len(feats) == len(kps)
        np.testing.assert_array_equal(feats.descriptors, desc)
        h, w = image.shape
        pts = np.array([kp.pt for kp in kps])
        np.testing.assert_allclose(feats.xy * [w, h], pts, rtol=1e-5, atol=1e-3)
        np.testing.assert_allclose(feats.scales, [kp.size for kp in kps], rtol=1e-6)
        assert ((feats.xy >= 0) & (feats.xy < 1)).all()
        assert feats.descriptors.dtype == np.float32 and feats.xy.dtype == np.float32


def test_parameters_reach_opencv(photos):
    image = photos[0]
    params = {"n_octave_layers": 4, "contrast_threshold": 0.08, "edge_threshold": 5, "sigma": 2.0}
    (feats,) = SiftExtractor(**params).describe([image])
    kps, desc = cv2_sift(image, nOctaveLayers=4, contrastThreshold=0.08, edgeThreshold=5, sigma=2.0)
    assert len(feats) == len(kps) != len(SiftExtractor().describe([image])[0])
    np.testing.assert_array_equal(feats.descriptors, desc)


@pytest.mark.parametrize("k", [1, 10, 57])
def test_max_keypoints_keeps_the_strongest(photos, k):
    image = photos[1]
    kps, desc = cv2_sift(image)
    (feats,) = SiftExtractor(max_keypoints=k).describe([image])
    assert len(feats) == k
    # independent ranking: response descending, then x, y, size, angle
    ranked = sorted(
        range(len(kps)),
        key=lambda i: (-kps[i].response, kps[i].pt[0], kps[i].pt[1], kps[i].size, kps[i].angle),
    )
    keep = sorted(ranked[:k])  # OpenCV's order is kept
    np.testing.assert_array_equal(feats.descriptors, desc[keep])
    h, w = image.shape
    np.testing.assert_allclose(feats.xy * [w, h], [kps[i].pt for i in keep], atol=1e-3)
    kept = {kps[i].response for i in keep}
    dropped = [kps[i].response for i in ranked[k:]]
    assert min(kept) >= max(dropped)
    # more than there are keeps them all
    (everything,) = SiftExtractor(max_keypoints=10_000).describe([image])
    np.testing.assert_array_equal(everything.descriptors, desc)


def test_root_sift(photos):
    image = photos[2]
    _, desc = cv2_sift(image)
    (feats,) = SiftExtractor(root_sift=True).describe([image])
    expected = np.sqrt(desc / desc.sum(axis=1, keepdims=True))
    np.testing.assert_allclose(feats.descriptors, expected, rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(np.linalg.norm(feats.descriptors, axis=1), 1, rtol=1e-5)


@pytest.mark.parametrize("shape", [(224, 224), (1, 1), (3, 7), (16, 16)])
def test_no_keypoints_gives_empty_set(shape):
    (feats,) = SiftExtractor().describe([np.full(shape, 128, np.uint8)])
    assert isinstance(feats, LocalFeatures)
    assert feats.descriptors.shape == (0, 128) and feats.descriptors.dtype == np.float32
    assert feats.xy.shape == (0, 2)


def test_max_side(photos):
    big = cv2.cvtColor(skimage.data.astronaut(), cv2.COLOR_RGB2GRAY)  # 512 x 512
    wide = big[:300]  # 300 x 512
    ex = SiftExtractor(max_side=256)
    for image, size in ((big, (256, 256)), (wide, (256, 150))):
        small = cv2.resize(image, size, interpolation=cv2.INTER_AREA)
        kps, desc = cv2_sift(small)
        (feats,) = ex.describe([image])
        np.testing.assert_array_equal(feats.descriptors, desc)
        np.testing.assert_allclose(feats.xy * size, [kp.pt for kp in kps], atol=1e-3)
    # images already small enough are described as they are
    (feats,) = ex.describe([photos[1]])
    np.testing.assert_array_equal(feats.descriptors, cv2_sift(photos[1])[1])


def test_color_input_is_described_in_gray(tmp_path):
    rgb = cv2.resize(skimage.data.coffee(), (240, 160), interpolation=cv2.INTER_AREA)
    ex = SiftExtractor()
    gray = ex.prepare(rgb)
    assert gray.ndim == 2 and gray.dtype == np.uint8
    (feats,) = ex.describe([rgb])
    np.testing.assert_array_equal(feats.descriptors, cv2_sift(gray)[1])
    path = tmp_path / "coffee.png"
    cv2.imwrite(str(path), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    np.testing.assert_array_equal(ex.describe([path])[0].descriptors, feats.descriptors)


def test_contract(photos):
    ex = SiftExtractor(max_keypoints=100, root_sift=True)
    together = ex.describe(photos)
    for image, feats in zip(photos, together, strict=True):
        (alone,) = ex.describe([image])
        np.testing.assert_array_equal(alone.descriptors, feats.descriptors)
        np.testing.assert_array_equal(alone.xy, feats.xy)
    again = clone(ex).describe(photos)
    for a, b in zip(together, again, strict=True):
        np.testing.assert_array_equal(a.descriptors, b.descriptors)
        np.testing.assert_array_equal(a.scales, b.scales)
    copy = pickle.loads(pickle.dumps(ex))
    np.testing.assert_array_equal(copy.describe(photos[:1])[0].descriptors, together[0].descriptors)
    assert json.dumps(copy.config, sort_keys=True) == json.dumps(ex.config, sort_keys=True)
    assert ex.descriptor_dim() == 128
    with pytest.raises(InvalidParameterError, match="local descriptors"):
        ex.transform(photos)


@pytest.mark.parametrize(
    "params",
    [
        {"n_octave_layers": 0},
        {"n_octave_layers": 2.0},
        {"contrast_threshold": -1},
        {"edge_threshold": 0},
        {"sigma": 0},
        {"sigma": float("inf")},
        {"max_keypoints": 0},
        {"max_keypoints": 5.5},
        {"root_sift": 1},
        {"max_side": 4},
        {"max_side": "256"},
    ],
)
def test_bad_parameters(params):
    with pytest.raises(InvalidParameterError, match=r"^sift: "):
        featkit.create_extractor("sift", **params)
    with pytest.raises(InvalidParameterError, match=r"^sift: "):
        SiftExtractor(**params).describe([np.zeros((64, 64), np.uint8)])

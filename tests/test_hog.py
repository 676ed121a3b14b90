"""The hog extractor and hog(): values against skimage.feature.hog, conformance, errors."""

from __future__ import annotations

import gzip
import pickle
from pathlib import Path

import numpy as np
import pytest
from skimage import data as skdata
from skimage.feature import hog as sk_hog
from sklearn.datasets import load_digits
from sklearn.exceptions import NotFittedError
from sklearn.model_selection import cross_val_score
from sklearn.pipeline import make_pipeline
from sklearn.svm import LinearSVC

import featkit
import featkit.extractors.hog  # registers "hog"
import featkit.extractors.hog_kernels  # the float32 / float64 slot switch, patched below
from featkit.exceptions import InvalidParameterError
from featkit.extractors.hog import HogExtractor, hog, hog_feature_dim
from featkit.io import read_image, resize_image
from featkit.testing import check_extractor, extractor_checks

from .conftest import PACS

FASHION = Path("/usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz")
# skimage sums each cell histogram in float32, featkit in float64: values (all <= 1) agree
# to a few float32 ulps; measured worst case 1.2e-7.
ATOL = 2e-6


def _float(image: np.ndarray) -> np.ndarray:
    return (image / 255.0).astype(np.float32)


def _real_images() -> dict[str, np.ndarray]:
    """Real photos as float32 in [0, 1], cropped to sizes that are no multiple of a cell."""
    images = {
        "astronaut": _float(skdata.astronaut()[:203, :171]),
        "chelsea": _float(skdata.chelsea()[:150, :131]),
        "camera": _float(skdata.camera()[100:261, 200:377]),
    }
    pacs = sorted((PACS / "photo" / "dog").glob("*.jpg"))[:1] if PACS.is_dir() else []
    if pacs:
        images["pacs"] = read_image(pacs[0], mode="rgb", dtype=np.float32)[:181, :197]
    return images


IMAGES = _real_images()

# (orientations, pixels_per_cell, cells_per_block, block_norm, transform_sqrt)
PARAMS = [
    (9, (8, 8), (2, 2), "L2-Hys", False),
    (9, (8, 8), (3, 3), "L2-Hys", True),
    (6, (4, 4), (1, 1), "L1", False),
    (12, (6, 8), (2, 2), "L1-sqrt", True),
    (9, (4, 4), (3, 3), "L2", False),
    (12, (8, 8), (1, 1), "L2-Hys", False),
    (6, (6, 8), (3, 3), "L2", True),
    (7, (5, 7), (2, 3), "L1", False),  # odd cells and a bin width that is no integer
]


def _cosine(a: np.ndarray, b: np.ndarray) -> float:
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))


# (image, channels): every image in gray, and the colour ones with channel_axis=-1 too.
CASES = [(k, "gray") for k in sorted(IMAGES)] + [
    (k, "rgb") for k in sorted(IMAGES) if IMAGES[k].ndim == 3
]


@pytest.mark.parametrize(("name", "channels"), CASES, ids="-".join)
@pytest.mark.parametrize("params", PARAMS, ids=lambda p: "-".join(map(str, p)))
def test_hog_function_equals_skimage(name, params, channels):
    orientations, ppc, cpb, norm, sqrt = params
    image = IMAGES[name]
    axis = -1 if channels == "rgb" else None
    if channels == "gray" and image.ndim == 3:
        image = image[..., 1]
    expected = sk_hog(image, orientations, ppc, cpb, norm, transform_sqrt=sqrt, channel_axis=axis)
    got = hog(image, orientations, ppc, cpb, norm, transform_sqrt=sqrt, channel_axis=axis)
    assert got.dtype == expected.dtype == np.float32
    assert got.shape == expected.shape
    np.testing.assert_allclose(got, expected, rtol=0, atol=ATOL)
    assert _cosine(got.astype(np.float64), expected.astype(np.float64)) > 1 - 1e-9


@pytest.mark.parametrize("dtype", [np.uint8, np.float64, np.float32])
def test_hog_function_follows_skimage_dtype_rules(dtype):
    # skimage computes uint8 images in float64 on 0..255 (no rescaling), float32 in float32.
    image = skdata.camera()[:120, :100]
    image = image.astype(dtype) if dtype == np.uint8 else (image / 255).astype(dtype)
    expected = sk_hog(image, 9, (8, 8), (3, 3), "L1")
    got = hog(image, 9, (8, 8), (3, 3), "L1")
    assert got.dtype == expected.dtype
    np.testing.assert_allclose(got, expected, rtol=0, atol=ATOL)


def test_hog_function_defaults_layout_and_channel_axis():
    image = IMAGES["chelsea"]
    # The plain function keeps skimage's defaults, cells_per_block=(3, 3) included.
    np.testing.assert_allclose(hog(image[..., 0]), sk_hog(image[..., 0]), atol=ATOL)
    expected = sk_hog(image, feature_vector=False, channel_axis=-1)
    got = hog(image, feature_vector=False, channel_axis=-1)
    assert got.shape == expected.shape
    np.testing.assert_allclose(got, expected, atol=ATOL)
    channels_first = np.moveaxis(image, -1, 0)
    np.testing.assert_allclose(hog(channels_first, channel_axis=0), expected.ravel(), atol=ATOL)
    assert hog_feature_dim(image.shape[:2]) == expected.size


@pytest.mark.parametrize("orientations", [1, 2, 3, 4, 6, 7, 8, 9, 12, 14, 36, 180])
def test_exact_bin_edges_on_quantised_images(orientations):
    # Few grey levels make many gradients lie exactly on bin edges (0, 45, 90, 135 degrees,
    # and ratios such as 2:1): the float32 fast path must defer to skimage's float64 rule.
    rng = np.random.default_rng(orientations)
    for levels, dtype in [(2, np.float32), (3, np.float64), (4, np.float32), (5, np.uint8)]:
        image = rng.integers(0, levels, size=(37, 29)) / (levels - 1)
        image = (image * 255).astype(np.uint8) if dtype == np.uint8 else image.astype(dtype)
        for ppc, cpb in [((4, 4), (2, 2)), ((3, 5), (1, 1))]:
            expected = sk_hog(image, orientations, ppc, cpb, "L1")
            np.testing.assert_allclose(
                hog(image, orientations, ppc, cpb, "L1"), expected, atol=ATOL
            )
        rgb = np.stack([image, image[::-1], image[:, ::-1]], axis=-1)  # many equal magnitudes
        expected = sk_hog(rgb, orientations, (4, 4), (2, 2), "L2", channel_axis=-1)
        got = hog(rgb, orientations, (4, 4), (2, 2), "L2", channel_axis=-1)
        np.testing.assert_allclose(got, expected, atol=ATOL)


def test_bin_edges_of_single_gradients():
    # One step edge per image, at angles on and around the 9-bin edges: each votes in
    # exactly the bin skimage chooses.
    for angle in [0, 20, 40, 45, 60, 80, 90, 100, 135, 160, 179, 180, 200, 270, 340]:
        yy, xx = np.mgrid[0:24, 0:24]
        t = np.deg2rad(angle)
        image = ((np.sin(t) * yy + np.cos(t) * xx) > 10).astype(np.float64)
        for n in (4, 6, 9, 12):
            np.testing.assert_allclose(
                hog(image, n, (8, 8), (1, 1), "L1"),
                sk_hog(image, n, (8, 8), (1, 1), "L1"),
                atol=ATOL,
            )


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_angles_rounding_to_180_degrees_vote_nowhere(dtype):
    # g_row = -1e-20 against g_col > 0 gives rad2deg(arctan2) % 180 == 180.0 exactly, at or
    # past skimage's last bin edge: skimage counts those pixels in no bin, and so must we.
    x = np.zeros((16, 16), dtype)
    x[0::2] = np.linspace(0, 1, 16, dtype=dtype)[None, :]
    x[1::4] = dtype(1e-20)
    x[:, 8:] = np.linspace(0, 1, 16, dtype=dtype)[:, None]  # other bins for the L1 norm to see
    for n in (4, 9, 39):
        expected = sk_hog(x, n, (4, 4), (1, 2), "L1")
        np.testing.assert_allclose(hog(x, n, (4, 4), (1, 2), "L1"), expected, atol=ATOL)


def test_float64_slot_indices_for_huge_histograms(monkeypatch):
    # Beyond 2**24 histogram slots per chunk (a huge image with tiny cells) slot indices are
    # computed in float64; force that path on a small image.
    monkeypatch.setattr(featkit.extractors.hog_kernels, "_FLOAT32_EXACT", 0)
    featkit.extractors.hog_kernels._slot_base.cache_clear()
    try:
        image = IMAGES["chelsea"][..., 0]
        expected = sk_hog(image, 9, (2, 2), (2, 2), "L2")
        np.testing.assert_allclose(hog(image, 9, (2, 2), (2, 2), "L2"), expected, atol=ATOL)
    finally:
        featkit.extractors.hog_kernels._slot_base.cache_clear()


def test_slot_indices_stay_exact_past_float32_integers():
    # Slot indices past 2**24 (float32's exact integers) must come out exact.
    from featkit.extractors.hog_kernels import _slot_index

    rng = np.random.default_rng(0)
    g_row, g_col = rng.normal(size=(2, 1, 16, 16)).astype(np.float32)
    small = np.full((1, 16, 16), 9.0, dtype=np.float32)
    big = small.astype(np.float64) + 2**26 + 1
    np.testing.assert_array_equal(
        _slot_index(g_row, g_col, 9, big) - (2**26 + 1), _slot_index(g_row, g_col, 9, small)
    )


# --------------------------------------------------------------------------- the extractor


@pytest.mark.parametrize("params", PARAMS[:5], ids=lambda p: "-".join(map(str, p)))
@pytest.mark.parametrize("color", ["gray", "rgb"])
def test_extractor_equals_skimage_on_prepared_images(params, color):
    orientations, ppc, cpb, norm, sqrt = params
    sources = [(IMAGES[k] * 255).round().astype(np.uint8) for k in ("astronaut", "chelsea")]
    ex = HogExtractor(orientations, ppc, cpb, norm, sqrt, color=color, size=(100, 84))
    X = ex.transform(sources)
    assert X.dtype == np.float32 and X.shape == (2, ex.feature_dim)
    for row, source in zip(X, sources, strict=True):
        array = resize_image(read_image(source, mode=color, dtype=np.float32), (100, 84))
        axis = -1 if color == "rgb" else None
        expected = sk_hog(
            array, orientations, ppc, cpb, norm, transform_sqrt=sqrt, channel_axis=axis
        )
        assert ex.feature_dim == expected.size
        np.testing.assert_allclose(row, expected, rtol=0, atol=ATOL)


def test_batches_spanning_several_chunks_equal_skimage():
    # 20 images of 64x128 are processed in several internal chunks, the last one partial.
    rng = np.random.default_rng(0)
    photo = IMAGES["astronaut"][..., 0]
    crops = [photo[r : r + 128, c : c + 64] for r, c in rng.integers(0, 40, size=(20, 2))]
    X = HogExtractor(size=(128, 64)).transform(crops)
    expected = np.stack([sk_hog(c, cells_per_block=(2, 2)) for c in crops])
    np.testing.assert_allclose(X, expected, atol=ATOL)


@pytest.mark.parametrize("check", [name for name, _ in extractor_checks("hog")])
def test_conformance_gray_default(check):
    dict(extractor_checks("hog"))[check]()


def test_conformance_rgb_and_odd_parameters():
    check_extractor(HogExtractor(12, (6, 5), (3, 3), "L1-sqrt", True, color="rgb", size=(50, 61)))


def test_feature_names_follow_skimage_layout():
    ex = HogExtractor(orientations=6, pixels_per_cell=(8, 6), cells_per_block=(2, 3), size=(40, 45))
    layout = sk_hog(np.zeros((40, 45)), 6, (8, 6), (2, 3), feature_vector=False).shape
    names = ex.get_feature_names_out()
    assert len(names) == ex.feature_dim == int(np.prod(layout)) and len(set(names)) == len(names)
    for index in [(0, 0, 0, 0, 0), (3, 4, 1, 2, 5), (2, 1, 0, 2, 3), (1, 3, 1, 0, 4)]:
        assert names[np.ravel_multi_index(index, layout)] == "hog_b{}_{}_c{}_{}_o{}".format(*index)


def test_default_is_dalal_triggs_blocks_on_128x128_gray():
    ex = featkit.create_extractor("hog")
    assert ex.get_params() == {
        "orientations": 9,
        "pixels_per_cell": (8, 8),
        "cells_per_block": (2, 2),
        "block_norm": "L2-Hys",
        "transform_sqrt": False,
        "color": "gray",
        "size": (128, 128),
        "decode": "reduced",
    }
    assert (
        ex.feature_dim
        == 15 * 15 * 2 * 2 * 9
        == sk_hog(np.zeros((128, 128)), 9, (8, 8), (2, 2)).size
    )


def _fashion_mnist(n: int) -> np.ndarray:
    if FASHION.is_file():
        with gzip.open(FASHION) as f:
            raw = np.frombuffer(f.read(16 + n * 784), dtype=np.uint8, offset=16)
        return raw.reshape(n, 28, 28)
    digits = load_digits().images[:n]  # fallback: real 8x8 digits enlarged to 28x28
    return np.stack([resize_image((d * 255 / 16).astype(np.uint8), (28, 28)) for d in digits])


def test_fashion_mnist_28x28_with_4x4_cells():
    images = _fashion_mnist(60)
    ex = HogExtractor(pixels_per_cell=(4, 4), size=(28, 28))
    X = ex.transform(images)
    assert X.shape == (60, 6 * 6 * 2 * 2 * 9)
    expected = np.stack([sk_hog(_float(i), 9, (4, 4), (2, 2)) for i in images])
    np.testing.assert_allclose(X, expected, atol=ATOL)
    # The same images at their native size, learned by fit.
    native = HogExtractor(pixels_per_cell=(4, 4), size=None).fit(images[:10])
    np.testing.assert_array_equal(native.transform(images), X)


def test_hog_features_classify_digits():
    digits = load_digits()
    images = np.round(digits.images[:600] * 255 / 16).astype(np.uint8)
    pipe = make_pipeline(HogExtractor(pixels_per_cell=(4, 4), size=(32, 32)), LinearSVC())
    assert cross_val_score(pipe, list(images), digits.target[:600], cv=3).mean() > 0.9


# --------------------------------------------------------------------------- errors


@pytest.mark.parametrize(
    ("params", "match"),
    [
        ({"orientations": 0}, "orientations must be a positive integer"),
        ({"orientations": 2.5}, "orientations"),
        ({"orientations": True}, "orientations"),
        ({"pixels_per_cell": 8}, "pixels_per_cell must be a pair"),
        ({"pixels_per_cell": (0, 8)}, "pixels_per_cell"),
        ({"pixels_per_cell": (8, 8, 8)}, "pixels_per_cell"),
        ({"cells_per_block": (2, -1)}, "cells_per_block"),
        ({"cells_per_block": (2.0, 2)}, "cells_per_block"),
        ({"block_norm": "l2"}, "block_norm must be one of L1, L1-sqrt, L2, L2-Hys"),
        ({"transform_sqrt": "yes"}, "transform_sqrt"),
        ({"color": "hsv"}, "color"),
        ({"size": (0, 64)}, "size must be a pair"),
        ({"size": 128}, "size must be a pair"),
        ({"size": (12, 64)}, r"size=\(12, 64\).*smaller than one block.*16x16"),
        ({"pixels_per_cell": (32, 32), "size": (48, 48)}, r"needs at least 64x64"),
    ],
)
def test_bad_parameters_fail_at_creation(params, match):
    with pytest.raises(InvalidParameterError, match=r"^hog: .*" + match):
        featkit.create_extractor("hog", **params)


def test_image_smaller_than_a_block_is_a_clear_error():
    with pytest.raises(InvalidParameterError, match=r"image of 10x30 pixels.*needs at least 16x16"):
        hog(np.zeros((10, 30)), cells_per_block=(2, 2))
    with pytest.raises(ValueError, match=r"image of 7x7 pixels.*needs at least 8x8"):
        hog(np.zeros((7, 7)), pixels_per_cell=(8, 8), cells_per_block=(1, 1))
    with pytest.raises(InvalidParameterError, match="image of 12x40 pixels"):
        HogExtractor(size=None).fit([np.zeros((12, 40), dtype=np.uint8)])


def test_hog_function_rejects_bad_input():
    with pytest.raises(InvalidParameterError, match="channel_axis"):
        hog(np.zeros((32, 32, 3)))
    with pytest.raises(InvalidParameterError, match="block_norm"):
        hog(np.zeros((32, 32)), block_norm="max")
    with pytest.raises(InvalidParameterError, match="non-negative"):
        hog(-np.ones((32, 32)), transform_sqrt=True)


def test_native_size_is_learned_by_fit():
    rng = np.random.default_rng(0)
    same = [rng.integers(0, 256, (40, 48), dtype=np.uint8) for _ in range(4)]
    ex = HogExtractor(size=None)
    assert ex.requires_fit and not HogExtractor().requires_fit
    with pytest.raises(NotFittedError, match="size=None"):
        ex.transform(same)
    with pytest.raises(NotFittedError, match="size=None"):
        featkit.extract(ex, same, n_jobs=1, progress=False)
    ex.fit(same)
    assert ex.image_size_ == (40, 48)
    assert ex.feature_dim == sk_hog(np.zeros((40, 48)), 9, (8, 8), (2, 2)).size
    np.testing.assert_allclose(
        ex.transform(same)[0], sk_hog(_float(same[0]), 9, (8, 8), (2, 2)), atol=ATOL
    )
    assert ex.config["state"] is not None  # the learned size is part of the cache key
    copy = pickle.loads(pickle.dumps(ex))
    np.testing.assert_array_equal(copy.transform(same), ex.transform(same))


def test_native_size_mismatch_names_both_sizes():
    rng = np.random.default_rng(0)
    same = [rng.integers(0, 256, (40, 48), dtype=np.uint8) for _ in range(3)]
    other = rng.integers(0, 256, (48, 40), dtype=np.uint8)  # same feature count, transposed
    with pytest.raises(InvalidParameterError, match=r"image 0 is 40x48 and image 3 is 48x40"):
        HogExtractor(size=None).fit([*same, other])
    ex = HogExtractor(size=None).fit(same)
    with pytest.raises(InvalidParameterError, match=r"image of 48x40 pixels.*works on 40x48"):
        ex.transform([same[0], other])
    # Through the engine: the odd image is reported as failed, with both sizes ...
    fs = featkit.extract(ex, [*same, other], n_jobs=1, progress=False)
    assert fs.X.shape == (3, ex.feature_dim)
    assert len(fs.failed) == 1 and "48x40" in fs.failed[0]["reason"]
    assert "40x48" in fs.failed[0]["reason"]
    # ... and a chunk where every image has the wrong size stops the run with that error.
    with pytest.raises(InvalidParameterError, match=r"48x40 pixels.*works on 40x48"):
        featkit.extract(ex, [other, other], n_jobs=1, progress=False)

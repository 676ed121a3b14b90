"""The color-hist extractor: values against np.histogramdd of OpenCV-converted images."""

from __future__ import annotations

import colorsys

import cv2
import numpy as np
import pytest
from skimage import data
from skimage.color import rgb2lab

import featkit
import featkit.extractors.color  # registers "color-hist"
from featkit.extractors.color import ColorHistExtractor
from featkit.io import read_image
from featkit.testing import check_extractor, extractor_checks
from tests.conftest import PACS

CONVERSIONS = {"rgb": None, "hsv": cv2.COLOR_RGB2HSV_FULL, "lab": cv2.COLOR_RGB2Lab}


def reference_hist(rgb, space, bins, joint, grid):
    """np.histogramdd (joint) or np.histogram per channel, per np.array_split cell."""
    converted = rgb if CONVERSIONS[space] is None else cv2.cvtColor(rgb, CONVERSIONS[space])
    out = []
    for band in np.array_split(converted, grid[0], axis=0):
        for cell in np.array_split(band, grid[1], axis=1):
            pixels = cell.reshape(-1, 3)
            if joint:
                hist, _ = np.histogramdd(pixels, bins=bins, range=[(0, 256)] * 3)
                out.append(hist.ravel() / len(pixels))
            else:
                for ch in range(3):
                    hist, _ = np.histogram(pixels[:, ch], bins=bins[ch], range=(0, 256))
                    out.append(hist / len(pixels))
    return np.concatenate(out)


def _pacs_photo():
    path = PACS / "photo" / "horse"
    files = sorted(path.glob("*.jpg")) if path.is_dir() else []
    if not files:
        pytest.skip(f"PACS photos not found under {path}")
    return read_image(files[0])


@pytest.mark.parametrize("check", [name for name, _ in extractor_checks("color-hist")])
def test_conformance_default(check):
    dict(extractor_checks(ColorHistExtractor()))[check]()


def test_conformance_per_channel_grid_resized():
    check_extractor(
        ColorHistExtractor(
            color_space="lab", bins=(4, 6, 5), joint=False, grid=(2, 3), size=(40, 40)
        )
    )


@pytest.mark.parametrize(
    ("image", "params"),
    [
        ("astronaut", dict(color_space="hsv", bins=(8, 8, 8))),
        ("astronaut", dict(color_space="rgb", bins=(4, 6, 3), grid=(3, 2))),
        ("chelsea", dict(color_space="lab", bins=16, joint=False, grid=(2, 5))),
        ("coffee", dict(color_space="hsv", bins=(18, 3, 3), grid=(4, 4))),
        ("pacs", dict(color_space="lab", bins=(4, 8, 8), grid=(2, 2))),
        ("pacs", dict(color_space="hsv", bins=(32, 1, 256), joint=False)),
    ],
)
def test_matches_histogramdd_of_cv2_conversion(image, params):
    ex = featkit.create_extractor("color-hist", **params)
    rgb = {"astronaut": data.astronaut, "chelsea": data.chelsea, "coffee": data.coffee}.get(
        image, _pacs_photo
    )()
    bins = params["bins"] if isinstance(params["bins"], tuple) else (params["bins"],) * 3
    expected = reference_hist(
        rgb, params["color_space"], bins, params.get("joint", True), params.get("grid", (1, 1))
    )
    got = ex.transform([rgb])[0]
    assert got.shape == expected.shape == (ex.feature_dim,)
    np.testing.assert_allclose(got, expected, atol=1e-6)


def test_resize_then_histogram():
    rgb = data.astronaut()
    ex = ColorHistExtractor(color_space="rgb", bins=4, size=(64, 48))
    small = cv2.resize(rgb, (48, 64), interpolation=cv2.INTER_AREA)
    np.testing.assert_allclose(
        ex.transform([rgb])[0], reference_hist(small, "rgb", (4, 4, 4), True, (1, 1)), atol=1e-6
    )


def _solid(rgb, shape=(20, 30)):
    return np.broadcast_to(np.asarray(rgb, dtype=np.uint8), (*shape, 3)).copy()


@pytest.mark.parametrize("space", ["rgb", "hsv", "lab"])
def test_pure_red_fills_one_bin(space):
    # Expected bins from independent conversions: colorsys (HSV), skimage (CIE Lab, D65).
    if space == "rgb":
        expected = (7, 0, 0)
    elif space == "hsv":
        h, s, v = colorsys.rgb_to_hsv(1.0, 0.0, 0.0)
        expected = (int(h * 256) * 8 // 256, int(s * 255) * 8 // 256, int(v * 255) * 8 // 256)
        assert expected == (0, 7, 7)
    else:
        L, a, b = rgb2lab(np.array([[[1.0, 0.0, 0.0]]]))[0, 0]
        expected = tuple(round(float(v)) * 8 // 256 for v in (L * 255 / 100, a + 128, b + 128))
        assert expected == (4, 6, 6)
    ex = ColorHistExtractor(color_space=space, bins=8)
    hist = ex.transform([_solid((255, 0, 0))])[0].reshape(8, 8, 8)
    assert hist[expected] == 1.0 and hist.sum() == 1.0
    name = ex.get_feature_names_out()[np.ravel_multi_index(expected, (8, 8, 8))]
    i, j, k = expected
    assert name == f"{space}_c0_0_{space[0]}{i}_{space[1]}{j}_{space[2]}{k}"


@pytest.mark.parametrize(("rgb", "hue_bin"), [((0, 255, 0), 2), ((0, 0, 255), 5)])
def test_pure_green_and_blue_hue_bins(rgb, hue_bin):
    h, _, _ = colorsys.rgb_to_hsv(*(c / 255 for c in rgb))
    assert int(h * 256) * 8 // 256 == hue_bin  # hue 120 deg -> 85, 240 deg -> 170 of 0..255
    hist = ColorHistExtractor(bins=8, joint=False).transform([_solid(rgb)])[0]
    np.testing.assert_array_equal(hist[:8], np.eye(8)[hue_bin])
    np.testing.assert_array_equal(hist[8:16], np.eye(8)[7])  # saturation 255
    np.testing.assert_array_equal(hist[16:], np.eye(8)[7])  # value 255


def test_gray_image_has_zero_hue_and_saturation():
    gray = np.full((16, 16), 100, dtype=np.uint8)
    hist = ColorHistExtractor(bins=8).transform([gray])[0].reshape(8, 8, 8)
    assert hist[0, 0, 100 * 8 // 256] == 1.0


def test_grid_cells_see_only_their_pixels():
    # 7 x 5 image, grid 2 x 2: np.array_split gives rows 0..3 | 4..6 and cols 0..2 | 3..4
    image = _solid((0, 0, 255), shape=(7, 5))
    image[:4, :3] = (255, 0, 0)  # exactly the top-left cell
    image[6, 4] = (0, 255, 0)  # one pixel of the bottom-right cell
    ex = ColorHistExtractor(color_space="rgb", bins=2, grid=(2, 2))
    hist = ex.transform([image])[0].reshape(2, 2, 2, 2, 2)  # row, col, r, g, b
    assert hist[0, 0, 1, 0, 0] == 1.0  # only red
    assert hist[0, 1, 0, 0, 1] == 1.0 and hist[1, 0, 0, 0, 1] == 1.0  # only blue
    np.testing.assert_allclose(hist[1, 1, 0, 0, 1], 5 / 6)
    np.testing.assert_allclose(hist[1, 1, 0, 1, 0], 1 / 6)
    names = ex.get_feature_names_out()
    assert names[8] == "rgb_c0_1_r0_g0_b0" and names[-1] == "rgb_c1_1_r1_g1_b1"


def test_normalize_none_and_per_channel_layout():
    image = data.astronaut()[:50, :40]
    ex = ColorHistExtractor(color_space="rgb", bins=(2, 3, 4), joint=False, normalize="none")
    hist = ex.transform([image])[0]
    assert hist.shape == (9,)
    for ch, sl in enumerate((slice(0, 2), slice(2, 5), slice(5, 9))):
        expected, _ = np.histogram(image[:, :, ch], bins=sl.stop - sl.start, range=(0, 256))
        np.testing.assert_array_equal(hist[sl], expected)
    assert ex.get_feature_names_out().tolist() == [
        *("rgb_c0_0_r0", "rgb_c0_0_r1"),
        *("rgb_c0_0_g0", "rgb_c0_0_g1", "rgb_c0_0_g2"),
        *("rgb_c0_0_b0", "rgb_c0_0_b1", "rgb_c0_0_b2", "rgb_c0_0_b3"),
    ]


@pytest.mark.parametrize(
    ("params", "match"),
    [
        (dict(bins=0), "bins must be"),
        (dict(bins=257), "bins must be"),
        (dict(bins=(8, 8)), "bins must be"),
        (dict(bins=(8, 0, 8)), "bins must be"),
        (dict(bins=8.0), "bins must be"),
        (dict(bins=True), "bins must be"),
        (dict(color_space="xyz"), "color_space must be one of"),
        (dict(color_space="HSV"), "color_space must be one of"),
        (dict(joint="yes"), "joint must be"),
        (dict(bins=64), "more than 65536"),
        (dict(grid=(1, 0)), "grid must be"),
        (dict(grid=(8, 8), size=(4, 50)), "more cells than size"),
        (dict(size=(32,)), "size must be None"),
        (dict(normalize="l2"), "normalize must be"),
    ],
)
def test_bad_parameters_fail_at_creation(params, match):
    with pytest.raises(featkit.InvalidParameterError, match=f"^color-hist: .*{match}"):
        featkit.create_extractor("color-hist", **params)


def test_image_smaller_than_grid_is_a_clear_error():
    ex = ColorHistExtractor(grid=(2, 8))
    with pytest.raises(ValueError, match="10x5 pixels is smaller than the grid of 2x8"):
        ex.transform([np.zeros((10, 5, 3), dtype=np.uint8)])
    assert ColorHistExtractor(bins=64, joint=False).transform(
        [_solid((1, 2, 3), (1, 1))]
    ).shape == (
        1,
        192,
    )

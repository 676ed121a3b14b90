import numpy as np
import pytest
from featkit_color_moments import ColorMomentsExtractor
from scipy import stats

import featkit
from featkit.testing import check_extractor, sample_images


def test_conformance():
    check_extractor(ColorMomentsExtractor(grid=2))


def test_registered_through_entry_point():
    assert "color-moments" in featkit.list_extractors()
    assert featkit.describe_extractor("color-moments")["source"] == "featkit-color-moments"


def test_values_match_scipy_moments():
    image = sample_images(1, seed=3)[0]
    features = featkit.create_extractor("color-moments").fit_transform([image])[0]
    pixels = image.reshape(-1, 3).astype(np.float64) / 255.0
    expected = np.stack(
        [pixels.mean(axis=0), pixels.std(axis=0), stats.skew(pixels, axis=0)], axis=1
    ).reshape(-1)
    np.testing.assert_allclose(features, expected, rtol=1e-5, atol=1e-6)


def test_grid_regions_are_row_major():
    image = np.zeros((40, 40, 3), dtype=np.uint8)
    image[:20, 20:] = 255  # top-right region white
    features = ColorMomentsExtractor(grid=2).fit_transform([image])[0].reshape(4, 3, 3)
    means = features[:, 0, 0]
    np.testing.assert_allclose(means, [0.0, 1.0, 0.0, 0.0])


@pytest.mark.parametrize("params", [{"grid": 0}, {"color_space": "xyz"}, {"grid": 2.5}])
def test_bad_parameters(params):
    with pytest.raises(featkit.InvalidParameterError):
        featkit.create_extractor("color-moments", **params)

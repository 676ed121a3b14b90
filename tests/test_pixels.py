"""The pixels extractor: scikit-learn conformance and values against a direct computation."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import Pipeline

import featkit
from featkit.extractors.pixels import PixelsExtractor
from featkit.testing import extractor_checks


@pytest.mark.parametrize("check", [name for name, _ in extractor_checks("pixels")])
def test_conformance(check):
    dict(extractor_checks(PixelsExtractor(size=12, color="rgb")))[check]()


def test_clone_get_set_params():
    ex = PixelsExtractor(size=10, color="rgb")
    twin = clone(ex)
    assert twin is not ex and twin.get_params() == {"size": 10, "color": "rgb", "decode": "reduced"}
    twin.set_params(size=4)
    assert twin.feature_dim == 48 and ex.feature_dim == 300
    assert ex.config != twin.config


def test_values_equal_resized_scaled_pixels(digit_images):
    images, _ = digit_images
    X = PixelsExtractor(size=8).fit_transform(images[:20])
    assert X.dtype == np.float32 and X.shape == (20, 64)
    np.testing.assert_allclose(X, images[:20].reshape(20, -1) / 255.0, atol=1e-7)


def test_rgb_interleaves_channels():
    image = np.zeros((2, 2, 3), dtype=np.uint8)
    image[..., 0] = 255  # red
    X = PixelsExtractor(size=2, color="rgb").transform([image])[0]
    np.testing.assert_array_equal(X, [1, 0, 0] * 4)
    assert PixelsExtractor(size=2, color="rgb").get_feature_names_out()[:3].tolist() == [
        "pixel_0_0_r",
        "pixel_0_0_g",
        "pixel_0_0_b",
    ]


def test_single_path_is_a_clear_error():
    with pytest.raises(featkit.InvalidParameterError, match="wrap it in a list"):
        PixelsExtractor().transform("image.png")


def test_works_in_a_pipeline_with_grid_search(digit_images):
    images, labels = digit_images
    pipe = Pipeline([("features", PixelsExtractor()), ("clf", LogisticRegression(max_iter=500))])
    search = GridSearchCV(pipe, {"features__size": [4, 8]}, cv=2)
    search.fit(list(images[:300]), labels[:300])
    assert search.best_params_["features__size"] in (4, 8)
    assert search.score(list(images[300:500]), labels[300:500]) > 0.8


def test_shrinking_averages_like_a_box_filter():
    # An independent reference: PIL's BOX filter equals area interpolation for integer factors.
    from PIL import Image

    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (32, 32), dtype=np.uint8)
    X = PixelsExtractor(size=16).transform([image])[0]
    box = Image.fromarray(image.astype(np.float32) / 255.0, mode="F").resize((16, 16), Image.BOX)
    np.testing.assert_allclose(X, np.asarray(box).reshape(-1), atol=1e-6)

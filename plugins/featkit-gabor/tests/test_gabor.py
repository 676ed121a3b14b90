import math

import cv2
import numpy as np
import pytest
from featkit_gabor import GaborExtractor, filter_bank
from skimage import data
from skimage.filters import gabor
from sklearn.neighbors import KNeighborsClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

import featkit
from featkit.testing import check_extractor, sample_images


@pytest.fixture(scope="module")
def brick():
    """A real texture, and its maps and features under the default extractor."""
    extractor = GaborExtractor()
    image = data.brick()
    # The filters have no DC response: the references filter the image minus its mean.
    centred = extractor.prepare(image).astype(np.float64)
    centred -= centred.mean()
    stats = extractor.transform([image])[0].reshape(4, 6, 2)
    return centred, extractor.response_magnitudes(image), stats


def test_conformance():
    check_extractor(GaborExtractor(n_scales=3, n_orientations=4, size=32, grid=2))


def test_registered_through_entry_point():
    assert "gabor" in featkit.list_extractors()
    info = featkit.describe_extractor("gabor")
    assert info["source"] == "featkit-gabor"
    # featkit list and the docs read every parameter's text from the numpydoc section.
    assert all(p["doc"] for p in info["parameters"]), info["parameters"]


def test_magnitudes_match_skimage_gabor(brick):
    centred, maps, stats = brick
    for f in filter_bank()[:12]:  # two scales: skimage's direct convolution is slow
        # n_stds=4: the extractor's filters are untruncated; skimage's default of 3 sigmas
        # changes the magnitudes by about 1%.
        real, imag = gabor(
            centred,
            f.frequency,
            theta=f.theta,
            sigma_x=f.sigma_x,
            sigma_y=f.sigma_y,
            n_stds=4,
            mode="reflect",
        )
        expected = np.hypot(real, imag)
        ours = maps[f.scale, f.orientation]
        np.testing.assert_allclose(ours, expected, rtol=0, atol=5e-3 * expected.max())
        mean, std = stats[f.scale, f.orientation]
        np.testing.assert_allclose([mean, std], [expected.mean(), expected.std()], rtol=1e-3)


def test_magnitudes_match_opencv_gabor_kernels(brick):
    """Every filter against cv2.getGaborKernel + filter2D, with the mapping GaborFilter
    documents (5 sigmas: truncation below 1e-4)."""
    centred, maps, stats = brick
    for f in filter_bank():
        cos, sin = abs(math.cos(f.theta)), abs(math.sin(f.theta))
        # skimage's kernel extent, at 5 sigmas.
        half_w = math.ceil(max(5 * f.sigma_x * cos, 5 * f.sigma_y * sin, 1))
        half_h = math.ceil(max(5 * f.sigma_y * cos, 5 * f.sigma_x * sin, 1))
        ksize = (2 * half_w + 1, 2 * half_h + 1)
        norm = 1 / (2 * math.pi * f.sigma_x * f.sigma_y)
        parts = [
            cv2.filter2D(
                centred,
                -1,
                norm
                * cv2.getGaborKernel(
                    ksize, f.sigma_x, f.theta, 1 / f.frequency, f.sigma_x / f.sigma_y, psi
                ),
                borderType=cv2.BORDER_REFLECT,  # scikit-image's "reflect"
            )
            for psi in (0, math.pi / 2)
        ]
        expected = np.hypot(*parts)
        ours = maps[f.scale, f.orientation]
        np.testing.assert_allclose(ours, expected, rtol=0, atol=1e-3 * expected.max())
        mean, std = stats[f.scale, f.orientation]
        np.testing.assert_allclose([mean, std], [expected.mean(), expected.std()], rtol=2e-4)


@pytest.mark.parametrize("n_orientations", [4, 6, 8])
@pytest.mark.parametrize("max_frequency", [0.25, 0.4])
def test_half_peak_contours_of_neighbouring_filters_touch(n_orientations, max_frequency):
    """Manjunath & Ma's design criterion, checked on each filter's frequency response (the
    Gaussian of spreads 1 / (2 pi sigma)): along the axis, scales 0 and 1 cross at half
    their peak; on the bisector of orientations 0 and 1, filter 0 peaks at one half."""
    bank = filter_bank(2, n_orientations, max_frequency)
    fine, coarse = bank[0], bank[n_orientations]

    def response(f, u, v):
        su, sv = 1 / (2 * math.pi * f.sigma_x), 1 / (2 * math.pi * f.sigma_y)
        return np.exp(-0.5 * ((u - f.frequency) ** 2 / su**2 + v**2 / sv**2))

    u = np.linspace(coarse.frequency, fine.frequency, 100_001)
    gap = np.abs(response(fine, u, 0) - response(coarse, u, 0))
    assert response(fine, u[gap.argmin()], 0) == pytest.approx(0.5, abs=1e-4)
    r = np.linspace(0, 0.5, 100_001)
    phi = math.pi / (2 * n_orientations)
    assert response(fine, r * math.cos(phi), r * math.sin(phi)).max() == pytest.approx(0.5)


def test_grid_cells_are_row_major_statistics_of_the_maps():
    extractor = GaborExtractor(n_scales=2, n_orientations=3, size=64, grid=3)  # 64 = 22+21+21
    image = sample_images(1, seed=5)[0]
    maps = extractor.response_magnitudes(image).astype(np.float64)
    names, values = extractor.get_feature_names_out(), extractor.transform([image])[0]
    features = dict(zip(names, values, strict=True))
    assert len(features) == extractor.feature_dim == 3 * 3 * 2 * 3 * 2
    rows = np.array_split(np.arange(64), 3)
    for r, c, s, k in np.ndindex(3, 3, 2, 3):
        cell = maps[s, k][np.ix_(rows[r], rows[c])]
        name = f"r{r}c{c}_s{s}_o{k}"
        assert features[f"{name}_mean"] == pytest.approx(cell.mean(), rel=1e-5)
        assert features[f"{name}_std"] == pytest.approx(cell.std(), rel=1e-4)


def test_feature_names_without_grid():
    names = GaborExtractor().get_feature_names_out()
    assert list(names[:4]) == ["s0_o0_mean", "s0_o0_std", "s0_o1_mean", "s0_o1_std"]
    assert names[-1] == "s3_o5_std" and len(names) == 48


@pytest.mark.parametrize("k", range(6))
def test_grating_peaks_at_its_orientation_and_scale(k):
    """A grating at the second scale's frequency, its wave vector at orientation k (k=0:
    vertical stripes, k=3: horizontal), answers most in channel (scale 1, orientation k)."""
    theta, frequency = k * math.pi / 6, 0.125
    y, x = np.mgrid[0:128, 0:128]
    wave = np.cos(2 * math.pi * frequency * (x * math.cos(theta) + y * math.sin(theta)))
    image = np.round(127.5 + 100 * wave).astype(np.uint8)
    means = GaborExtractor().transform([image])[0].reshape(4, 6, 2)[:, :, 0]
    assert np.unravel_index(means.argmax(), means.shape) == (1, k)
    # Unit gain at the centre frequency: a complex filter keeps one of the cosine's two
    # exponentials, so the magnitude is half its amplitude (100 / 255); less at the border,
    # where the reflection bends oblique stripes.
    assert 0.9 * 50 / 255 < means[1, k] < 1.01 * 50 / 255
    assert means[1, k] > 5 * np.delete(means[1], k).max()


def test_brightness_does_not_change_the_features():
    gray = sample_images(3, seed=2)[2]
    assert gray.ndim == 2
    image = np.round(60 + gray * (130 / 255)).astype(np.uint8)  # 60..190
    a, b = GaborExtractor(size=64, grid=2).transform([image - 40, image + 40])
    np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)


def test_textures_are_told_apart():
    """skimage's brick, grass and gravel photographs cut into 64x64 patches: 1-NN on
    standardised Gabor features (Manjunath & Ma's 0.05..0.4 cycles/pixel bank), trained on
    the left half of each photo, tested on the right half."""
    extractor = GaborExtractor(max_frequency=0.4, size=64)
    X_train, X_test, y_train, y_test = [], [], [], []
    for label, name in enumerate(("brick", "grass", "gravel")):
        photo = getattr(data, name)()
        for r in range(0, 512, 64):
            for c in range(0, 512, 64):
                patch = photo[r : r + 64, c : c + 64]
                X, y = (X_train, y_train) if c < 256 else (X_test, y_test)
                X.append(patch)
                y.append(label)
    model = make_pipeline(extractor, StandardScaler(), KNeighborsClassifier(1))
    accuracy = model.fit(X_train, y_train).score(X_test, y_test)
    assert accuracy >= 0.95, accuracy


@pytest.mark.parametrize(
    ("params", "param"),
    [
        ({"n_scales": 0}, "n_scales"),
        ({"n_scales": 7}, "n_scales"),
        ({"n_scales": 2.0}, "n_scales"),
        ({"n_orientations": 1}, "n_orientations"),
        ({"n_orientations": True}, "n_orientations"),
        ({"max_frequency": 0}, "max_frequency"),
        ({"max_frequency": 0.6}, "max_frequency"),
        ({"max_frequency": float("nan")}, "max_frequency"),
        ({"max_frequency": "0.25"}, "max_frequency"),
        ({"size": 8}, "size"),
        ({"size": (128, 128)}, "size"),
        ({"grid": 0}, "grid"),
        ({"grid": 17}, "grid"),
    ],
)
def test_bad_parameters(params, param):
    with pytest.raises(featkit.InvalidParameterError, match=param):
        featkit.create_extractor("gabor", **params)

"""Dense SIFT (``dsift``) against OpenCV's SIFT descriptors on the same keypoints."""

from __future__ import annotations

import json
import math
import pickle

import cv2
import numpy as np
import pytest
import skimage.data
from sklearn.base import clone

import featkit
import featkit.extractors.dsift  # registers "dsift"
from featkit.exceptions import InvalidParameterError
from featkit.extractors.dsift import DenseSiftExtractor, cv2_dense_sift, dense_grid
from featkit.extractors.local import LocalFeatures
from featkit.io import resize_image


def cv2_descriptors(image: np.ndarray, extractor: DenseSiftExtractor) -> np.ndarray:
    """OpenCV's descriptors on ``extractor``'s grid, built here from cv2 directly."""
    sigma = extractor.sigma
    out = []
    for x, y, size in extractor.grid(*image.shape):
        b = 1.5 * size
        cv_sigma = 1.6 if sigma is None else sigma
        if sigma is None:
            cv_sigma = math.sqrt((b / extractor.magnif) ** 2 + 0.25)
        kp = cv2.KeyPoint(float(x), float(y), float(size), 0.0)  # angle 0: up-right
        out.append((cv_sigma, kp))
    descs = []
    for cv_sigma in dict.fromkeys(s for s, _ in out):
        kps = [kp for s, kp in out if s == cv_sigma]
        _, d = cv2.SIFT_create(sigma=cv_sigma).compute(image, kps)
        descs.append(d)
    return np.concatenate(descs)


def row_corr(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pearson correlation of matching rows."""
    a = a - a.mean(axis=1, keepdims=True)
    b = b - b.mean(axis=1, keepdims=True)
    return (a * b).sum(1) / np.sqrt((a * a).sum(1) * (b * b).sum(1))


@pytest.fixture(scope="module")
def natural() -> list[np.ndarray]:
    """Real photographs (scikit-image), gray, 224 x 224."""
    camera = skimage.data.camera()
    astronaut = cv2.cvtColor(skimage.data.astronaut(), cv2.COLOR_RGB2GRAY)
    return [resize_image(camera, (224, 224)), resize_image(astronaut, (224, 224))]


@pytest.fixture(scope="module")
def coffee() -> np.ndarray:
    return resize_image(skimage.data.coffee(), (224, 224))


# -- geometry -------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("height", "width", "step", "bins"),
    [
        (224, 224, 8, (4,)),
        (224, 224, 4, (4, 6, 8, 10)),
        (100, 160, 5, (3,)),
        (64, 48, 7, (5, 8)),
        (37, 37, 1, (4,)),
    ],
)
def test_grid_count_and_layout(height, width, step, bins):
    ex = DenseSiftExtractor(step=step, bin_sizes=bins, size=None, contrast_threshold=0)
    image = np.random.default_rng(0).integers(0, 256, (height, width), dtype=np.uint8)
    (feats,) = ex.describe([image])
    margin = math.ceil(1.5 * max(bins))
    ny = (height - 1 - 2 * margin) // step + 1
    nx = (width - 1 - 2 * margin) // step + 1
    assert feats.descriptors.shape == (ny * nx * len(bins), 128)
    assert feats.descriptors.dtype == np.float32
    assert feats.xy.shape == (ny * nx * len(bins), 2)
    assert ((feats.xy >= 0) & (feats.xy < 1)).all()
    px = feats.xy * np.array([width, height])
    np.testing.assert_allclose(px, np.round(px), atol=1e-3)  # centres on pixels
    xs, ys = np.unique(np.round(px[:, 0])), np.unique(np.round(px[:, 1]))
    assert len(xs) == nx and len(ys) == ny
    for pos, length in ((xs, width), (ys, height)):
        if len(pos) > 1:
            assert set(np.diff(pos)) == {step}
        left, right = pos[0], length - 1 - pos[-1]
        assert left >= margin and right >= margin and 0 <= right - left <= 1  # centred
    sizes = np.repeat([2 * b / 3 for b in bins], ny * nx)
    np.testing.assert_allclose(feats.scales, sizes, rtol=1e-6)
    np.testing.assert_allclose(ex.grid(height, width)[:, :2], px, atol=1e-3)
    np.testing.assert_allclose(ex.grid(height, width)[:, 2], sizes, rtol=1e-6)


def test_image_too_small_gives_empty_set():
    ex = DenseSiftExtractor(size=None, bin_sizes=(4,))
    (feats,) = ex.describe([np.full((12, 40), 100, np.uint8)])  # 12 < 2 * 6 + 1
    assert feats.descriptors.shape == (0, 128) and feats.xy.shape == (0, 2)
    assert dense_grid(13, 13, 8, 4)[0].tolist() == [6]


# -- agreement with OpenCV ------------------------------------------------------------------------
@pytest.mark.parametrize(
    "params",
    [
        {"step": 8, "bin_sizes": (4,)},  # 16-px patches: cv2 size 2.67
        {"step": 8, "bin_sizes": (4, 6, 8, 10)},  # PHOW bin sizes
        {"step": 6, "bin_sizes": (5, 7)},  # odd bins: bin centres between pixels
        {"step": 8, "bin_sizes": (4, 8), "sigma": None},  # vl_phow smoothing bin / magnif
        {"step": 8, "bin_sizes": (6,), "sigma": 2.5},
    ],
)
def test_matches_cv2_compute_on_same_keypoints(natural, params):
    # Same sums as OpenCV's calcSIFTDescriptor; what differs is its fixed-point smoothed
    # image and fast atan2 (and our 0.7-degree angle table), so after OpenCV's own rounding
    # (x 512, round, saturate at 255) values agree exactly for ~96% of them, within 2 for
    # 99.9% (low-contrast descriptors amplify the differences); measured median correlation
    # 0.99997.
    ex = DenseSiftExtractor(contrast_threshold=0, **params)
    for image in natural:
        ours = ex.describe_prepared([image])[0].descriptors
        ref = cv2_descriptors(image, ex)
        assert ours.shape == ref.shape
        corr = row_corr(ours, ref)
        assert np.median(corr) > 0.9999
        assert np.percentile(corr, 1) > 0.99
        rounded = np.minimum(np.rint(ours * 512), 255)
        diff = np.abs(rounded - ref)
        assert (diff == 0).mean() > 0.94
        assert (diff <= 2).mean() > 0.999
        np.testing.assert_allclose(np.linalg.norm(ours, axis=1), 1, rtol=1e-5)


def test_cv2_dense_sift_helper_equals_direct_cv2(natural):
    image = natural[0]
    for params in ({"step": 8, "bin_sizes": (4, 8)}, {"step": 8, "bin_sizes": (6,), "sigma": None}):
        ex = DenseSiftExtractor(**params)
        np.testing.assert_array_equal(cv2_dense_sift(image, **params), cv2_descriptors(image, ex))
    assert len(DenseSiftExtractor().cv2_keypoints(224, 224)) == 27 * 27
    assert {kp.angle for kp in DenseSiftExtractor().cv2_keypoints(224, 224)} == {0.0}
    with pytest.raises(InvalidParameterError, match="uint8"):
        cv2_dense_sift(image.astype(np.float32))


def test_flat_window_departs_from_cv2_but_correlates(natural):
    # Without the Gaussian window the descriptors differ from OpenCV's, but not by much.
    image = natural[1]
    ref = cv2_descriptors(image, DenseSiftExtractor())
    flat = DenseSiftExtractor(window_size=None, contrast_threshold=0).describe([image])[0]
    corr = row_corr(flat.descriptors, ref)
    assert 0.95 < np.median(corr) < 0.9995


def test_color_channels_are_gray_descriptors_of_each_channel(coffee):
    ex = DenseSiftExtractor(color="rgb", contrast_threshold=0)
    (feats,) = ex.describe([coffee])
    assert ex.descriptor_dim() == 384 and feats.descriptors.shape[1] == 384
    for k in range(3):
        ref = cv2_dense_sift(np.ascontiguousarray(coffee[..., k]))
        block = feats.descriptors[:, 128 * k : 128 * (k + 1)]
        assert np.median(row_corr(block, ref)) > 0.9999
    for color in ("hsv", "opponent"):
        (other,) = DenseSiftExtractor(color=color).describe([coffee])
        assert other.descriptors.shape == feats.descriptors.shape
        assert np.isfinite(other.descriptors).all()
        norms = np.linalg.norm(other.descriptors.reshape(-1, 3, 128), axis=2)
        assert np.all((np.abs(norms - 1) < 1e-5) | (norms == 0))


# -- options --------------------------------------------------------------------------------------
def test_root_sift(natural):
    image = natural[0]
    plain = DenseSiftExtractor().describe([image])[0].descriptors
    root = DenseSiftExtractor(root_sift=True).describe([image])[0].descriptors
    l1 = plain.sum(axis=1, keepdims=True)
    expected = np.sqrt(np.divide(plain, l1, out=np.zeros_like(plain), where=l1 > 0))
    np.testing.assert_allclose(root, expected, atol=1e-6)
    norms = np.linalg.norm(root, axis=1)
    assert np.all((np.abs(norms - 1) < 1e-5) | (norms == 0))
    # and it is RootSIFT of OpenCV's descriptors (the square root magnifies OpenCV's rounding
    # of small values to integers: median correlation 0.9993)
    ref = cv2_dense_sift(image)
    ref_root = np.sqrt(ref / ref.sum(axis=1, keepdims=True))
    nonzero = norms > 0
    assert np.median(row_corr(root[nonzero], ref_root[nonzero])) > 0.999


def test_multiscale_is_scales_concatenated(natural):
    image = natural[1]
    multi = DenseSiftExtractor(bin_sizes=(4, 8)).describe([image])[0]
    single8 = DenseSiftExtractor(bin_sizes=(8,)).describe([image])[0]  # same grid: max bin 8
    n = len(single8)
    assert len(multi) == 2 * n
    np.testing.assert_allclose(multi.scales[:n], 8 / 3, rtol=1e-6)
    np.testing.assert_allclose(multi.scales[n:], 16 / 3, rtol=1e-6)
    np.testing.assert_array_equal(multi.xy[:n], multi.xy[n:])
    np.testing.assert_array_equal(multi.xy[n:], single8.xy)
    np.testing.assert_allclose(multi.descriptors[n:], single8.descriptors, atol=1e-6)
    # order follows bin_sizes as given
    swapped = DenseSiftExtractor(bin_sizes=(8, 4)).describe([image])[0]
    np.testing.assert_allclose(swapped.descriptors[:n], multi.descriptors[n:], atol=1e-6)


def test_flat_image_gives_zero_descriptors_without_nan():
    flat = np.full((224, 224), 128, np.uint8)
    for params in ({}, {"root_sift": True}, {"contrast_threshold": 0.0}, {"color": "rgb"}):
        image = flat if params.get("color") != "rgb" else np.full((224, 224, 3), 90, np.uint8)
        (feats,) = DenseSiftExtractor(**params).describe([image])
        assert len(feats) == 27 * 27
        assert np.isfinite(feats.descriptors).all()
        assert not feats.descriptors.any()


def test_contrast_threshold_units():
    # A sinusoid of amplitude A gray levels and period L has a mean gradient magnitude of
    # 4 A / L per pixel (before the smoothing, which keeps 96% of it at L = 32), i.e.
    # 4 A / L / 255 in 0..1 units: A = 1 gives ~0.0005, A = 6 ~0.0028.
    x = np.arange(224)
    rng = np.random.default_rng(0)

    def sinusoid(amplitude):
        wave = 128 + amplitude * np.sin(2 * np.pi * (x[None, :] + x[:, None] * 0.5) / 32)
        return np.clip(np.rint(wave + rng.normal(0, 0.01, (224, 224))), 0, 255).astype(np.uint8)

    ex = DenseSiftExtractor(contrast_threshold=0.001)
    assert not ex.describe([sinusoid(1)])[0].descriptors.any()
    strong = ex.describe([sinusoid(6)])[0].descriptors
    np.testing.assert_allclose(np.linalg.norm(strong, axis=1), 1, rtol=1e-5)
    weak_kept = DenseSiftExtractor(contrast_threshold=0.0).describe([sinusoid(1)])[0]
    np.testing.assert_allclose(np.linalg.norm(weak_kept.descriptors, axis=1), 1, rtol=1e-5)
    # half flat, half textured: only descriptors reaching the texture survive
    half = np.full((224, 224), 128, np.uint8)
    half[:, 112:] = sinusoid(40)[:, 112:]
    (feats,) = ex.describe([half])
    px = feats.xy[:, 0] * 224
    nonzero = np.linalg.norm(feats.descriptors, axis=1) > 0
    assert not nonzero[px + 2.5 * 4 < 111].any()  # support entirely in the flat half
    assert nonzero[px - 2.5 * 4 > 112].all()


def test_smoothing_and_window_parameters_change_output(natural):
    image = natural[0]
    base = DenseSiftExtractor().describe([image])[0].descriptors
    for params in (
        {"sigma": None},
        {"sigma": 0},
        {"window_size": 1.5},
        {"magnif": 3.0, "sigma": None},
    ):
        other = DenseSiftExtractor(**params).describe([image])[0].descriptors
        assert other.shape == base.shape and not np.allclose(other, base)
    # magnif is ignored unless sigma is None
    same = DenseSiftExtractor(magnif=3.0).describe([image])[0].descriptors
    np.testing.assert_array_equal(same, base)


def test_resize_policy(coffee):
    ex = DenseSiftExtractor(size=(112, 160))
    (feats,) = ex.describe([coffee])
    assert len(feats) == len(ex.grid(112, 160))
    native = DenseSiftExtractor(size=None).describe([coffee[:100, :150]])[0]
    assert len(native) == len(DenseSiftExtractor().grid(100, 150))


# -- the extractor contract -----------------------------------------------------------------------
def test_contract(natural, coffee, tmp_path):
    ex = featkit.create_extractor("dsift", bin_sizes=(4, 6), step=6)
    assert isinstance(ex, DenseSiftExtractor) and ex.kind == "local"
    images = [*natural, coffee, skimage.data.chelsea()]
    together = ex.describe(images)
    assert all(isinstance(f, LocalFeatures) for f in together)
    for feats, image in zip(together, images, strict=True):
        (alone,) = ex.describe([image])
        np.testing.assert_array_equal(alone.descriptors, feats.descriptors)
        np.testing.assert_array_equal(alone.xy, feats.xy)
        assert feats.descriptors.dtype == np.float32 and feats.xy.dtype == np.float32
    again = clone(ex).describe(images)  # deterministic
    for a, b in zip(together, again, strict=True):
        np.testing.assert_array_equal(a.descriptors, b.descriptors)
    copy = pickle.loads(pickle.dumps(ex))
    np.testing.assert_array_equal(copy.describe(images[:1])[0].descriptors, together[0].descriptors)
    assert json.dumps(copy.config, sort_keys=True) == json.dumps(ex.config, sort_keys=True)
    path = tmp_path / "coffee.png"
    cv2.imwrite(str(path), cv2.cvtColor(coffee, cv2.COLOR_RGB2BGR))
    np.testing.assert_array_equal(ex.describe([path])[0].descriptors, together[2].descriptors)
    with pytest.raises(InvalidParameterError, match="local descriptors"):
        ex.transform(images)


@pytest.mark.parametrize(
    "params",
    [
        {"step": 0},
        {"step": 2.5},
        {"bin_sizes": ()},
        {"bin_sizes": (4, 4)},
        {"bin_sizes": (0,)},
        {"bin_sizes": 4.0},
        {"bin_sizes": (4, "8")},
        {"sigma": -1.0},
        {"sigma": float("nan")},
        {"magnif": 0},
        {"window_size": 0.0},
        {"contrast_threshold": -0.1},
        {"root_sift": "yes"},
        {"size": (224,)},
        {"size": (0, 224)},
        {"size": (20, 224)},  # too small for one descriptor of bin 8
        {"color": "lab"},
    ],
)
def test_bad_parameters(params):
    if params.get("size") == (20, 224):
        params = {**params, "bin_sizes": (8,)}
    with pytest.raises(InvalidParameterError, match=r"^dsift: "):
        featkit.create_extractor("dsift", **params)
    with pytest.raises(InvalidParameterError, match=r"^dsift: "):
        DenseSiftExtractor(**params).describe([np.zeros((224, 224), np.uint8)])


def test_int_bin_size_and_describe_docstring():
    ex = DenseSiftExtractor(bin_sizes=6)
    assert len(ex.describe([np.zeros((224, 224), np.uint8)])[0]) == len(ex.grid(224, 224))
    info = featkit.describe_extractor("dsift")
    text = json.dumps(info, default=str)
    for name in ("step", "bin_sizes", "sigma", "window_size", "contrast_threshold", "root_sift"):
        assert name in text

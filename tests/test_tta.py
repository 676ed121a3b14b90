"""Test-time augmentation of the ``cnn`` extractor (``tta``): a row is the mean of the rows
of an image's views, each computed as an image of its own.

The references are independent of featkit's view code: mirrors and crops are cut with
numpy from images whose resize is the identity (PIL returns a copy for a resize to the
image's own size), and their rows are the plain extractor's.
"""

from __future__ import annotations

import json
import subprocess

import numpy as np
import pytest
import torchvision.transforms as T
from PIL import Image
from skimage import data as skdata

import featkit
from featkit.exceptions import InvalidParameterError
from featkit.extractors.cnn import CNNExtractor
from featkit.hardware import cpu_bf16_kernels
from featkit.testing import extractor_checks
from tests.conftest import featkit_command

#: 56-px crops: lite0 resizes to round(56 * 256 / 224) = 64, and five-crop too (8/7 of 56).
#: A 64-px side is then resized to itself, and 64 - 56 is even: the centre crop is symmetric.
SMALL = {"image_size": 56, "precision": "fp32", "device": "cpu"}
#: Tolerance of float32 rows averaged in another order (and of oneDNN's fp32 kernels).
TOL = {"rtol": 1e-5, "atol": 1e-5}


def _cnn(**params) -> CNNExtractor:
    return featkit.create_extractor("cnn", **{**SMALL, **params})


def _image(height: int, width: int, seed: int = 0) -> np.ndarray:
    # A real photo rather than noise: the rows of its views differ clearly.
    rng = np.random.default_rng(seed)
    photo = skdata.chelsea()
    top = rng.integers(0, photo.shape[0] - height + 1)
    left = rng.integers(0, photo.shape[1] - width + 1)
    return np.ascontiguousarray(photo[top : top + height, left : left + width])


def _row(extractor: CNNExtractor, crop: np.ndarray) -> np.ndarray:
    """The plain network's row of an already cropped (S, S, 3) view."""
    return extractor.transform_prepared([np.ascontiguousarray(crop)])[0]


@pytest.mark.parametrize("layer", ["pooled", "stage3,features"])
def test_flip_is_the_mean_of_the_image_and_its_mirror(layer):
    plain, flip = _cnn(layer=layer), _cnn(layer=layer, tta="flip")
    image = _image(64, 64)
    mirrored = np.ascontiguousarray(image[:, ::-1])
    # End to end: the plain extractor on the image and on its numpy mirror.
    expected = (plain.transform([image])[0] + plain.transform([mirrored])[0]) / 2
    got = flip.transform([image])[0]
    np.testing.assert_allclose(got, expected, **TOL)
    # And it is not the plain row: the mirror counts.
    assert np.abs(got - plain.transform([image])[0]).max() > 1e-2


@pytest.mark.parametrize("layer", ["pooled", "stage3,features"])
def test_five_and_ten_crop_are_the_means_of_the_numpy_crops(layer):
    plain = _cnn(layer=layer)
    image = _image(64, 80)  # shorter side 64: resized to itself, crops of 56
    crops = [
        image[0:56, 0:56],  # top left
        image[0:56, 24:80],  # top right
        image[8:64, 0:56],  # bottom left
        image[8:64, 24:80],  # bottom right
        image[4:60, 12:68],  # centre: offsets (64 - 56) / 2 and (80 - 56) / 2
    ]
    rows = np.stack([_row(plain, c) for c in crops])
    np.testing.assert_allclose(
        _cnn(layer=layer, tta="five-crop").transform([image])[0], rows.mean(axis=0), **TOL
    )
    mirrors = np.stack([_row(plain, c[:, ::-1]) for c in crops])
    np.testing.assert_allclose(
        _cnn(layer=layer, tta="ten-crop").transform([image])[0],
        np.concatenate([rows, mirrors]).mean(axis=0),
        **TOL,
    )
    # The five views differ: five-crop is not the centre crop five times.
    assert np.abs(rows[0] - rows[4]).max() > 1e-2


def test_flip_views_are_the_plain_crop_and_its_mirror():
    image = _image(90, 120)  # resized and cropped: the mirror is of the crop, not the image
    crop = _cnn().prepare(image)
    views = _cnn(tta="flip").prepare(image)
    assert views.shape == (2, 56, 56, 3) and views.dtype == np.uint8
    np.testing.assert_array_equal(views[0], crop)
    np.testing.assert_array_equal(views[1], crop[:, ::-1])


@pytest.mark.parametrize(
    ("shape", "params", "resize", "crop"),
    [
        ((280, 400), {}, 256, 224),  # lite0's own preprocessing: bicubic, 256 then 224
        ((130, 100), {"image_size": 56}, 64, 56),  # portrait, upsampled
        ((8, 8), {"image_size": 56}, 64, 56),  # tiny
    ],
)
def test_five_crop_views_match_torchvision_resize_then_five_crop(shape, params, resize, crop):
    extractor = featkit.create_extractor("cnn", tta="ten-crop", **params)
    assert extractor.preprocessing().interpolation == "bicubic"
    image = _image(*shape)
    views = extractor.prepare(image)
    pil = T.Resize(resize, interpolation=T.InterpolationMode.BICUBIC)(Image.fromarray(image))
    expected = [np.asarray(v) for v in T.FiveCrop(crop)(pil)]
    assert views.shape == (10, crop, crop, 3) and views.dtype == np.uint8
    for got, want in zip(views[:5], expected, strict=True):
        np.testing.assert_array_equal(got, want)
    for got, want in zip(views[5:], expected, strict=True):
        np.testing.assert_array_equal(got, want[:, ::-1])


def test_five_crop_resizes_to_at_least_eight_sevenths_of_the_crop(monkeypatch):
    extractor = _cnn(tta="five-crop")
    assert extractor._crop_tta_resize() == 64
    # Weights that resize to the crop itself (crop_pct=1) would give five equal crops of a
    # square image: five-crop resizes to 8/7 of the crop all the same.
    prep = extractor.preprocessing()
    flat = type(prep)(crop_size=224, resize_size=224, interpolation="bicubic")
    monkeypatch.setattr(CNNExtractor, "preprocessing", lambda self: flat)
    assert extractor._crop_tta_resize() == 256
    views = extractor.prepare(_image(224, 224))
    assert not np.array_equal(views[0], views[4])


def test_rows_do_not_depend_on_the_batch_with_views():
    # bf16 where the CPU has it: its kernels round by the batch shape. Passes of 3 views:
    # an image's five views straddle passes, and sit at other places in each call.
    precision = "bf16" if cpu_bf16_kernels() else "fp32"
    extractor = _cnn(tta="five-crop", precision=precision, batch_size=3)
    images = [_image(60 + 3 * i, 70, seed=i) for i in range(7)]
    together = extractor.transform(images)
    alone = np.concatenate([extractor.transform([image]) for image in images])
    in_pairs = np.concatenate([extractor.transform(images[i : i + 2]) for i in range(0, 7, 2)])
    np.testing.assert_array_equal(alone, together)
    np.testing.assert_array_equal(in_pairs, together)
    np.testing.assert_array_equal(extractor.transform(images[::-1])[::-1], together)


def test_config_keys_each_mode_and_none_keeps_the_old_key():
    configs = {tta: _cnn(tta=tta).config for tta in ("none", None, "flip", "five-crop", "ten-crop")}
    # "none" (and None, its command-line spelling) is the extractor before tta existed:
    # the same parameters, so caches written then stay valid.
    before_tta = {
        "batch_size",
        "checkpoint",
        "decode",
        "device",
        "gem_p",
        "image_size",
        "layer",
        "model",
        "pooling",
        "precision",
        "pretrained",
    }
    assert set(configs["none"]["params"]) == before_tta
    assert configs[None] == configs["none"]
    for tta in ("flip", "five-crop", "ten-crop"):
        assert configs[tta]["params"]["tta"] == tta
    keys = {json.dumps(c, sort_keys=True) for c in configs.values()}
    assert len(keys) == 4


@pytest.mark.parametrize("tta", ["mirror", "Flip", 5, True, ""])
def test_bad_tta_is_a_clear_error(tta):
    with pytest.raises(InvalidParameterError, match=r"tta must be one of 'none', 'flip'"):
        featkit.create_extractor("cnn", tta=tta)


def test_prepared_images_without_their_views_are_refused():
    extractor = _cnn(tta="flip")
    with pytest.raises(ValueError, match=r"2 views stacked: \(n, 2, S, S, 3\)"):
        extractor.transform_prepared([np.zeros((56, 56, 3), dtype=np.uint8)])


def _write_images(root, n: int) -> None:
    for i in range(n):
        folder = root / ("a" if i % 2 else "b")
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(_image(70 + 5 * i, 90, seed=i)).save(folder / f"{i}.png")


@pytest.mark.parametrize("n_jobs", [1, 2])
def test_extract_and_cache_with_views(tmp_path, n_jobs):
    _write_images(tmp_path / "imgs", 6)
    cache = tmp_path / "cache"
    plain = featkit.extract(_cnn(), str(tmp_path / "imgs"), cache_dir=cache, batch_size=4)
    five = _cnn(tta="five-crop")
    fs = featkit.extract(five, str(tmp_path / "imgs"), cache_dir=cache, n_jobs=n_jobs)
    assert fs.provenance["cache"]["cached_images"] == 0  # never the plain rows
    assert fs.provenance["extractor"]["params"]["tta"] == "five-crop"
    order = np.argsort([str(i) for i in fs.ids])
    paths = sorted(str(p) for p in (tmp_path / "imgs").rglob("*.png"))
    np.testing.assert_allclose(fs.X[order], five.transform(paths), **TOL)
    assert not np.allclose(fs.X, plain.X, atol=1e-3)
    again = featkit.extract(five, str(tmp_path / "imgs"), cache_dir=cache, n_jobs=n_jobs)
    assert again.provenance["cache"]["cached_images"] == 6
    np.testing.assert_array_equal(again.X, fs.X)


def test_cli_passes_tta_like_any_parameter(tmp_path):
    _write_images(tmp_path / "imgs", 3)
    base = [*featkit_command(), "extract", "-e", "cnn", "-d", str(tmp_path / "imgs"), "-q"]
    base += ["--device", "cpu", "-p", "image_size=56", "-p", "precision=fp32"]
    for tta in ("flip", "none"):  # "none" parses as None: the same as "none"
        out = tmp_path / tta
        done = subprocess.run([*base, "-p", f"tta={tta}", "-o", str(out)], capture_output=True)
        assert done.returncode == 0, done.stderr.decode()
    flip = featkit.FeatureSet.load(tmp_path / "flip")
    assert flip.provenance["extractor"]["params"]["tta"] == "flip"
    assert "tta" not in featkit.FeatureSet.load(tmp_path / "none").provenance["extractor"]["params"]
    paths = sorted(str(p) for p in (tmp_path / "imgs").rglob("*.png"))
    order = np.argsort([str(i) for i in flip.ids])
    np.testing.assert_allclose(flip.X[order], _cnn(tta="flip").transform(paths), **TOL)


@pytest.mark.parametrize("tta", ["flip", "five-crop"])
def test_conformance_checks_pass_with_views(tta):
    extractor = featkit.create_extractor("cnn", image_size=96, tta=tta)
    for name, check in extractor_checks(extractor):
        try:
            check()
        except AssertionError as exc:
            raise AssertionError(f"{name}: {exc}") from exc

"""Reduced-size decoding: ``read_image(min_size=...)`` and the extractors' ``decode`` mode.

Large JPEGs are made here (real photos from skimage, upscaled, with noise) and every
reduced result is checked against an independent full decode (PIL, then OpenCV's area
resize or the weights' preprocessing), never against the code under test.
"""

from __future__ import annotations

import io
import math
from pathlib import Path

import cv2
import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image
from skimage import data as skdata

import featkit
from featkit.exceptions import ImageReadError, InvalidParameterError
from featkit.extractors.base import InputSpec, set_decode
from featkit.io import read_image, resize_image

DECODING = ["hog", "lbp", "pixels", "color-hist", "dsift", "cnn"]


def _photo(width: int, height: int, seed: int = 0, source=skdata.astronaut) -> np.ndarray:
    """A real photo upscaled to width x height (bicubic) with Gaussian noise, uint8 RGB."""
    big = Image.fromarray(source()).resize((width, height), Image.Resampling.BICUBIC)
    noise = np.random.default_rng(seed).normal(0.0, 4.0, (height, width, 3))
    return np.clip(np.asarray(big, dtype=np.float64) + noise, 0, 255).round().astype(np.uint8)


def _jpeg(path: Path, image: np.ndarray | Image.Image, **kw) -> Path:
    img = image if isinstance(image, Image.Image) else Image.fromarray(image)
    img.save(path, "JPEG", **{"quality": 92, **kw})
    return path


def _full_then_area(path: Path | bytes, size: tuple[int, int], gray: bool = False) -> np.ndarray:
    """The reference: PIL's full decode, then OpenCV's area resize (no featkit code)."""
    with Image.open(io.BytesIO(path) if isinstance(path, bytes) else path) as img:
        img = img.convert("L" if gray else "RGB")
        array = np.asarray(img, dtype=np.float32)
    return cv2.resize(array, (size[1], size[0]), interpolation=cv2.INTER_AREA)


def _expected_scale(width: int, height: int, min_size: tuple[int, int]) -> int:
    """The largest of 1, 2, 4, 8 that leaves at least min_size on both axes."""
    return max(s for s in (1, 2, 4, 8) if width / s >= min_size[1] and height / s >= min_size[0])


@pytest.fixture(scope="module")
def large_jpeg(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 2048 x 1536 photo, quality 92."""
    return _jpeg(tmp_path_factory.mktemp("large") / "large.jpg", _photo(2048, 1536))


# --------------------------------------------------------------------------- read_image


@pytest.mark.parametrize(
    ("min_size", "scale"),
    [((100, 100), 8), ((192, 256), 8), ((193, 256), 4), ((300, 300), 4), ((700, 700), 2)],
)
def test_reduced_jpeg_is_the_smallest_scale_still_at_least_min_size(large_jpeg, min_size, scale):
    assert _expected_scale(2048, 1536, min_size) == scale
    out = read_image(large_jpeg, min_size=min_size)
    assert out.shape == (math.ceil(1536 / scale), math.ceil(2048 / scale), 3)
    assert out.shape[0] >= min_size[0] and out.shape[1] >= min_size[1]


@pytest.mark.parametrize(("width", "height"), [(511, 511), (512, 512), (300, 1000), (1001, 997)])
def test_never_smaller_than_min_size_and_full_size_when_no_scale_fits(tmp_path, width, height):
    """A JPEG only slightly larger than the target is decoded at full size, bit for bit."""
    path = _jpeg(tmp_path / "a.jpg", _photo(width, height))
    min_size = (256, 256)
    scale = _expected_scale(width, height, min_size) if min(width, height) >= 256 else 1
    out = read_image(path, min_size=min_size)
    # libjpeg gives ceil(side / scale) pixels; the last is kept when at least half picture
    assert out.shape[:2] == (math.floor(height / scale + 0.5), math.floor(width / scale + 0.5))
    if scale == 1:
        np.testing.assert_array_equal(out, read_image(path))
    else:
        assert out.shape[0] >= 256 and out.shape[1] >= 256


@pytest.mark.parametrize("mode", ["rgb", "gray"])
def test_reduced_then_resized_is_close_to_full_decode_then_resized(large_jpeg, mode):
    size = (120, 160)
    gray = mode == "gray"
    reduced = read_image(large_jpeg, mode=mode, dtype=np.float32, min_size=(240, 320))
    assert reduced.shape[:2] == (384, 512)  # 1/4: the smallest scale keeping 240 x 320
    mine = resize_image(reduced, size) * 255
    reference = _full_then_area(large_jpeg, size, gray=gray)
    diff = np.abs(mine - reference)
    # Chroma is subsampled 2x in the file: colour edges differ most (measured 0.44 mean).
    assert diff.mean() < 0.75 and np.percentile(diff, 99) < 5, (diff.mean(), diff.max())


def test_bytes_and_path_reduce_alike(large_jpeg):
    data = large_jpeg.read_bytes()
    for kind in (bytes, bytearray, memoryview):
        np.testing.assert_array_equal(
            read_image(kind(data), min_size=(100, 100)), read_image(large_jpeg, min_size=(100, 100))
        )


@pytest.mark.parametrize("orientation", [3, 6, 8])
def test_exif_orientation_with_reduced_decode(tmp_path, orientation):
    """The needed size is taken in the stored orientation: stored 1600 x 800 shown as
    800 x 1600 (orientations 6, 8) reduces to 1/8 for 200 x 100 as displayed, with the
    marked corner where the full decode puts it."""
    stored = _photo(1600, 800)
    stored[:160, :160] = [255, 0, 0]  # stored top-left corner
    exif = Image.Exif()
    exif[0x0112] = orientation
    path = tmp_path / "rot.jpg"
    Image.fromarray(stored).save(path, exif=exif, quality=92)
    full = read_image(path)
    shown = (100, 200) if orientation == 3 else (200, 100)
    out = read_image(path, min_size=shown)
    assert out.shape == (*shown, 3)
    assert full.shape[:2] == (shown[0] * 8, shown[1] * 8)
    reference = cv2.resize(full.astype(np.float32), shown[::-1], interpolation=cv2.INTER_AREA)
    assert np.abs(out - reference).mean() < 2.0
    red = (out[..., 0] > 200) & (out[..., 1] < 60)
    np.testing.assert_array_equal(red, (reference[..., 0] > 200) & (reference[..., 1] < 60))
    assert red.sum() >= 100  # the marked corner is there (10 x 10 pixels at 1/8)


def test_exif_rotation_never_gives_less_than_min_size(tmp_path):
    """Stored 800 wide x 1600 high, shown 1600 wide x 800 high: 500 x 100 as displayed
    needs the full decode (in the stored orientation 1/2 would leave 400 rows)."""
    exif = Image.Exif()
    exif[0x0112] = 6
    path = tmp_path / "rot.jpg"
    Image.fromarray(_photo(800, 1600)).save(path, exif=exif, quality=92)
    out = read_image(path, min_size=(500, 100))
    assert out.shape == (800, 1600, 3)
    np.testing.assert_array_equal(out, read_image(path))


@pytest.mark.parametrize(
    ("pil_mode", "save"),
    [("CMYK", {}), ("L", {}), ("RGB", {"progressive": True}), ("RGB", {"subsampling": 0})],
)
@pytest.mark.parametrize("mode", ["rgb", "gray", "unchanged"])
def test_colour_models_and_progressive_jpegs(tmp_path, pil_mode, save, mode):
    image = Image.fromarray(_photo(1024, 768)).convert(pil_mode)
    path = _jpeg(tmp_path / "x.jpg", image, **save)
    assert Image.open(path).mode == pil_mode
    full = read_image(path, mode=mode)
    out = read_image(path, mode=mode, min_size=(96, 128))
    assert out.dtype == full.dtype and out.ndim == full.ndim
    assert out.shape[:2] == (96, 128) and out.shape[2:] == full.shape[2:]  # 1/8
    reference = cv2.resize(full.astype(np.float32), (128, 96), interpolation=cv2.INTER_AREA)
    assert np.abs(out - reference).mean() < 1.5


def test_mpo_camera_file_is_reduced(tmp_path):
    """Phones write MPO files (a JPEG with more frames): the first frame is reduced."""
    first, second = _photo(1024, 768), _photo(512, 384, seed=1, source=skdata.chelsea)
    path = tmp_path / "camera.jpg"
    Image.fromarray(first).save(
        path, "MPO", save_all=True, append_images=[Image.fromarray(second)], quality=92
    )
    assert Image.open(path).format == "MPO"
    out = read_image(path, min_size=(96, 128))
    assert out.shape == (96, 128, 3)
    full = read_image(path)
    assert np.abs(full.astype(np.float64) - first).mean() < 5  # the first frame
    reference = cv2.resize(full.astype(np.float32), (128, 96), interpolation=cv2.INTER_AREA)
    assert np.abs(out - reference).mean() < 1.5


@pytest.mark.parametrize("fmt", ["PNG", "TIFF", "WEBP"])
def test_other_formats_are_read_at_full_size(tmp_path, fmt):
    path = tmp_path / f"a.{fmt.lower()}"
    Image.fromarray(_photo(1024, 768)).save(path, fmt)
    np.testing.assert_array_equal(read_image(path, min_size=(96, 128)), read_image(path))


def test_in_memory_sources_are_never_reduced(large_jpeg):
    with Image.open(large_jpeg) as img:
        out = read_image(img, min_size=(96, 128))
        assert img.size == (2048, 1536)  # the caller's image is left as it was
    assert out.shape == (1536, 2048, 3)
    array = read_image(large_jpeg)
    np.testing.assert_array_equal(read_image(array, min_size=(96, 128)), array)


def test_bad_inputs_fail_alike_with_min_size(tmp_path, large_jpeg, monkeypatch):
    data = large_jpeg.read_bytes()
    cut = tmp_path / "cut.jpg"
    cut.write_bytes(data[: len(data) // 2])
    empty = tmp_path / "empty.jpg"
    empty.write_bytes(b"")
    text = tmp_path / "text.jpg"
    text.write_text("not an image")
    sources = [cut, empty, text, tmp_path / "missing.jpg", tmp_path, data[:2000], b"\xff\xd8junk"]
    for source in sources:
        with pytest.raises(ImageReadError) as exact:
            read_image(source)
        with pytest.raises(ImageReadError) as reduced:
            read_image(source, min_size=(64, 64))
        assert reduced.value.reason == exact.value.reason, source
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)
    with pytest.raises(ImageReadError, match="image too large"):
        read_image(large_jpeg, min_size=(64, 64))


@pytest.mark.parametrize("bad", [64, (64,), (0, 64), (64, -1), (64.0, 64), (True, 64), "64"])
def test_invalid_min_size(large_jpeg, bad):
    with pytest.raises(InvalidParameterError, match="min_size"):
        read_image(large_jpeg, min_size=bad)


# --------------------------------------------------------------------------- extractors


def test_every_extractor_that_reads_at_a_size_has_decode_in_its_config():
    for name in DECODING:
        reduced = featkit.create_extractor(name)
        exact = featkit.create_extractor(name, decode="exact")
        assert reduced.get_params()["decode"] == "reduced"
        assert reduced.config["params"]["decode"] == "reduced"
        assert exact.config["params"]["decode"] == "exact"
        assert reduced.config != exact.config
        assert reduced.input_spec().decode == "reduced" and exact.input_spec().decode == "exact"
        with pytest.raises(InvalidParameterError, match="decode"):
            featkit.create_extractor(name, decode="fast").validate_params()
    # Extractors that describe images at their own size keep exact decoding.
    assert featkit.create_extractor("sift").input_spec().decode == "exact"
    with pytest.raises(InvalidParameterError, match="decode"):
        InputSpec(decode="fast")
    assert InputSpec().decode == "exact"  # a plugin that does not choose keeps its pixels


@pytest.mark.parametrize(
    ("name", "params"),
    [
        ("hog", {}),
        ("hog", {"color": "rgb", "size": (64, 96)}),
        ("lbp", {}),
        ("pixels", {"color": "rgb"}),
        ("color-hist", {"size": (64, 64)}),
    ],
)
def test_exact_decode_reproduces_full_size_rows_bit_for_bit(large_jpeg, name, params):
    exact = featkit.create_extractor(name, decode="exact", **params).fit([large_jpeg])
    spec = exact.input_spec()
    full = resize_image(read_image(large_jpeg, mode=spec.color, dtype=spec.dtype), spec.size)
    np.testing.assert_array_equal(exact.transform([large_jpeg]), exact.transform_prepared([full]))
    reduced = featkit.create_extractor(name, **params).fit([large_jpeg])
    prepared = reduced.prepare(large_jpeg)
    assert prepared.shape == full.shape and prepared.dtype == full.dtype
    assert not np.array_equal(prepared, full)  # it was decoded reduced
    scale = 255.0 if full.dtype == np.float32 else 1.0
    assert np.abs(prepared.astype(np.float64) - full).mean() * scale < 1.0


def test_dsift_exact_and_reduced(large_jpeg):
    exact = featkit.create_extractor("dsift", decode="exact")
    reduced = featkit.create_extractor("dsift")
    full = resize_image(read_image(large_jpeg, mode="gray"), (224, 224))
    a = exact.describe([large_jpeg])[0]
    np.testing.assert_array_equal(a.descriptors, exact.describe_prepared([full])[0].descriptors)
    b = reduced.describe([large_jpeg])[0]
    assert not np.array_equal(a.descriptors, b.descriptors)
    cos = (a.descriptors * b.descriptors).sum(1)
    norms = np.linalg.norm(a.descriptors, axis=1) * np.linalg.norm(b.descriptors, axis=1)
    assert np.median(cos[norms > 0] / norms[norms > 0]) > 0.99


def test_small_jpegs_give_the_same_rows_in_both_modes(tmp_path):
    """A 227-pixel photo (a PACS image) is not reduced for a resize to 128 or 224 pixels:
    bit for bit the same rows. For 16 x 16 pixels it is (1/4 keeps 57 x 57)."""
    path = _jpeg(tmp_path / "small.jpg", _photo(227, 227))
    for name in ("hog", "lbp", "color-hist"):
        params = {"size": (128, 128)} if name == "color-hist" else {}
        a = featkit.create_extractor(name, decode="exact", **params).transform([path])
        b = featkit.create_extractor(name, **params).transform([path])
        np.testing.assert_array_equal(a, b)
    a = featkit.create_extractor("dsift", decode="exact").describe([path])[0]
    b = featkit.create_extractor("dsift").describe([path])[0]
    np.testing.assert_array_equal(a.descriptors, b.descriptors)
    a = featkit.create_extractor("cnn", decode="exact").prepare(path)
    np.testing.assert_array_equal(a, featkit.create_extractor("cnn").prepare(path))
    a = featkit.create_extractor("pixels", decode="exact").prepare(path)
    b = featkit.create_extractor("pixels").prepare(path)
    # Thumbnails of a detailed photo: measured 1.9 gray levels on PACS photos (a 1-pixel
    # crop of the full image moves them by 1.6).
    assert not np.array_equal(a, b) and np.abs(a - b).mean() * 255 < 3.0


def test_cache_keeps_the_modes_apart(tmp_path, large_jpeg):
    cache = tmp_path / "cache"
    exact = featkit.extract(
        featkit.create_extractor("hog", decode="exact"), [large_jpeg], cache_dir=cache
    )
    reduced = featkit.extract(featkit.create_extractor("hog"), [large_jpeg], cache_dir=cache)
    assert reduced.provenance["cache"]["cached_images"] == 0
    assert not np.array_equal(exact.X, reduced.X)
    again = featkit.extract(
        featkit.create_extractor("hog", decode="exact"), [large_jpeg], cache_dir=cache
    )
    assert again.provenance["cache"]["cached_images"] == 1
    np.testing.assert_array_equal(again.X, exact.X)


def test_unreadable_images_are_reported_alike_in_both_modes(tmp_path, large_jpeg):
    cut = tmp_path / "cut.jpg"
    cut.write_bytes(large_jpeg.read_bytes()[:50_000])
    runs = [
        featkit.extract(featkit.create_extractor("hog", decode=mode), [large_jpeg, cut])
        for mode in ("exact", "reduced")
    ]
    assert [len(r) for r in runs] == [1, 1]
    assert runs[0].failed == runs[1].failed and "truncated" in runs[0].failed[0]["reason"]


def _cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a, b = a.astype(np.float64), b.astype(np.float64)
    return (a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))


def test_cnn_reduced_embeddings_match_exact_ones(tmp_path):
    """EfficientNet-Lite0's ImageNet embeddings (the packaged weights) of 5.6 MP photos,
    decoded at 1/4: cosine >= 0.999 on average (>= 0.998 each; measured 0.9996 and 0.9990)
    to the full decode's, which match the weights' own preprocessing of the full image."""
    paths = [
        _jpeg(tmp_path / f"{i}.jpg", _photo(2730, 2048, seed=i, source=source))
        for i, source in enumerate((skdata.chelsea, skdata.coffee))
    ]
    exact = featkit.create_extractor("cnn", decode="exact", precision="fp32")
    reduced = featkit.create_extractor("cnn", precision="fp32")
    prep = exact.preprocessing()
    full = [prep(np.asarray(Image.open(p).convert("RGB"))) for p in paths]  # independent read
    np.testing.assert_array_equal(np.stack([exact.prepare(p) for p in paths]), np.stack(full))
    small = np.stack([reduced.prepare(p) for p in paths])
    assert not np.array_equal(small, np.stack(full))
    assert np.abs(small.astype(np.float64) - np.stack(full)).mean() < 1.5
    cos = _cosines(reduced.transform(paths), exact.transform(paths))
    assert cos.mean() >= 0.999 and cos.min() >= 0.998, cos


def test_cnn_large_png_resizes_with_a_reducing_gap(tmp_path):
    path = tmp_path / "big.png"
    Image.fromarray(_photo(2048, 1536)).save(path, compress_level=1)
    exact = featkit.create_extractor("cnn", decode="exact").prepare(path)
    reduced = featkit.create_extractor("cnn").prepare(path)
    assert reduced.shape == exact.shape and not np.array_equal(reduced, exact)
    assert np.abs(reduced.astype(np.float64) - exact).mean() < 0.6


# --------------------------------------------------------------------------- encodings, CLI


def test_set_decode_reaches_an_encodings_local_extractor():
    bovw = featkit.create_extractor("dsift-bovw")
    before = bovw.config
    assert set_decode(bovw, "reduced") and bovw.config == before  # already: left as it was
    assert bovw.get_params()["local"] == "dsift"
    assert set_decode(bovw, "exact")
    assert (
        bovw.input_spec().decode == "exact" and bovw.config["local"]["params"]["decode"] == "exact"
    )
    assert bovw.config != before
    sift = featkit.create_extractor("sift-bovw")
    assert set_decode(sift, "exact") and not set_decode(sift, "reduced")
    hog = featkit.create_extractor("hog")
    assert set_decode(hog, "exact") and hog.decode == "exact"
    with pytest.raises(InvalidParameterError):
        set_decode(hog, "fast")


def test_cli_decode_option(tmp_path, large_jpeg):
    from featkit.cli import cli

    folder = tmp_path / "data" / "cls"
    folder.mkdir(parents=True)
    (folder / "a.jpg").write_bytes(large_jpeg.read_bytes())
    runner = CliRunner()
    rows = {}
    for mode in ("exact", "reduced"):
        out = tmp_path / mode
        args = ["extract", "-e", "hog", "-d", str(tmp_path / "data"), "-o", str(out), "-q"]
        result = runner.invoke(cli, [*args, "--decode", mode])
        assert result.exit_code == 0, result.output
        features = featkit.FeatureSet.load(out)
        assert features.provenance["extractor"]["params"]["decode"] == mode
        rows[mode] = features.X
    assert not np.array_equal(rows["exact"], rows["reduced"])
    args = ["extract", "-e", "sift", "-d", str(tmp_path / "data"), "-o", str(tmp_path / "s")]
    result = runner.invoke(cli, [*args, "--decode", "reduced"])
    assert result.exit_code != 0 and "full size" in str(result.output) + str(result.exception)


def test_compare_decode(digit_images):
    images, labels = digit_images
    data = featkit.Dataset.from_items(list(images[:120]), labels[:120])
    from featkit.evaluate import compare

    result = compare(
        data, extractors=["pixels"], classifiers=["knn"], decode="exact", progress=False
    )
    assert result.provenance["extractors"]["pixels"]["params"]["decode"] == "exact"

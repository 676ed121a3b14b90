"""decode="device": JPEGs decoded, turned upright, resized and cropped by torch where the
network runs. Here the device is the CPU (libjpeg-turbo through TorchCodec or
torchvision); on a GPU the same code runs nvJPEG. The reference is featkit's own CPU path
(PIL), which the rest of the suite checks against timm's and torchvision's transforms."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
import skimage.data
from PIL import Image

import featkit
from featkit.exceptions import InvalidParameterError
from featkit.extractors import device_decode
from featkit.extractors.device_decode import EncodedJPEG, decode_jpegs, encoded_jpeg


def _cosine(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a, b = a.astype(np.float64), b.astype(np.float64)
    return (a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)


def _save(image: np.ndarray, path: Path, **kwargs) -> str:
    Image.fromarray(image).save(path, **kwargs)
    return str(path)


@pytest.fixture(scope="module")
def photos(tmp_path_factory: pytest.TempPathFactory) -> list[str]:
    """JPEGs of scikit-image's photos: small, large (shrunk a lot), portrait, gray."""
    folder = tmp_path_factory.mktemp("jpegs")
    cat, coffee = skimage.data.chelsea(), skimage.data.coffee()
    large = np.asarray(Image.fromarray(skimage.data.astronaut()).resize((2048, 1536)))
    return [
        _save(cat, folder / "cat.jpg", quality=90),
        _save(coffee, folder / "coffee.jpg", quality=80),
        _save(large, folder / "large.jpg", quality=92),
        _save(np.ascontiguousarray(cat.transpose(1, 0, 2)), folder / "portrait.jpg"),
        _save(skimage.data.camera(), folder / "gray.jpg"),
        _save(skimage.data.rocket(), folder / "rocket.jpeg", quality=70),
    ]


@pytest.mark.parametrize("backend", ["torchcodec", "torchvision"])
def test_rows_are_those_of_exact_decoding(photos, backend, monkeypatch) -> None:
    if backend == "torchcodec":
        pytest.importorskip("torchcodec.decoders", reason="torchcodec is in the test extra")
    monkeypatch.setattr(device_decode, "jpeg_backend", lambda: backend)
    kw = {"device": "cpu", "precision": "fp32", "image_size": 160}
    exact = featkit.create_extractor("cnn", decode="exact", **kw).transform(photos)
    device = featkit.create_extractor("cnn", decode="device", **kw).transform(photos)
    assert device.shape == exact.shape and device.dtype == np.float32
    assert _cosine(device, exact).min() >= 0.999
    assert not np.array_equal(device, exact)  # other arithmetic: close, not equal


def test_the_crop_is_the_cpu_crop_within_a_few_levels(photos) -> None:
    cpu = featkit.create_extractor("cnn", decode="exact", device="cpu")
    device = featkit.create_extractor("cnn", decode="device", device="cpu")
    for path in photos:
        a, b = cpu.prepare(path).astype(float), device.prepare(path).astype(float)
        assert a.shape == b.shape == (224, 224, 3)
        assert np.abs(a - b).mean() < 2.0, path  # same geometry, other rounding


@pytest.mark.parametrize("backend", ["torchcodec", "torchvision"])
@pytest.mark.parametrize("orientation", range(1, 9))
def test_exif_orientation_is_applied_as_pil_applies_it(
    tmp_path, orientation, backend, monkeypatch
) -> None:
    """The device path turns an image upright as PIL's exif_transpose (featkit's CPU
    path) does, for all eight orientations and both decoders (TorchCodec turns JPEGs
    itself, torchvision's does not); a wrong turn would be tens of levels off."""
    if backend == "torchcodec":
        pytest.importorskip("torchcodec.decoders", reason="torchcodec is in the test extra")
    monkeypatch.setattr(device_decode, "jpeg_backend", lambda: backend)
    exif = Image.Exif()
    exif[0x0112] = orientation
    cat = skimage.data.chelsea()[:, :400]  # not square: a quarter turn changes the shape
    path = _save(cat, tmp_path / "turned.jpg", exif=exif, quality=95)
    assert encoded_jpeg(path).orientation == orientation
    cpu = featkit.create_extractor("cnn", decode="exact", device="cpu").prepare(path)
    device = featkit.create_extractor("cnn", decode="device", device="cpu").prepare(path)
    assert np.abs(cpu.astype(float) - device.astype(float)).mean() < 2.0


def test_what_the_device_does_not_decode_is_prepared_on_the_cpu(tmp_path, photos) -> None:
    cnn = featkit.create_extractor("cnn", decode="device", device="cpu")
    cat = skimage.data.chelsea()
    png = _save(cat, tmp_path / "cat.png")
    cmyk = tmp_path / "cmyk.jpg"
    Image.fromarray(cat).convert("CMYK").save(cmyk)
    assert isinstance(cnn.load(photos[0]), EncodedJPEG)
    assert isinstance(cnn.load(Path(photos[4]).read_bytes()), EncodedJPEG)  # bytes too
    for other in (png, str(cmyk), cat, Image.fromarray(cat)):
        loaded = cnn.load(other)
        assert isinstance(loaded, np.ndarray) and loaded.shape == (224, 224, 3)
    np.testing.assert_array_equal(
        cnn.load(png), featkit.create_extractor("cnn", decode="reduced").prepare(png)
    )
    rows = cnn.transform([photos[0], png, str(cmyk), photos[1]])  # one mixed batch
    alone = np.concatenate([cnn.transform([p]) for p in (photos[0], png, str(cmyk), photos[1])])
    np.testing.assert_allclose(rows, alone, rtol=1e-5, atol=1e-6)


def test_a_jpeg_the_device_cannot_decode_leaves_the_others(tmp_path, photos) -> None:
    good = [EncodedJPEG(Path(p).read_bytes()) for p in photos[:2]]
    data = Path(photos[2]).read_bytes()
    cut = EncodedJPEG(data[: len(data) // 3])  # its header parses; its data is cut
    decoded = decode_jpegs([good[0], cut, good[1]], "cpu")
    assert decoded[1] is None
    for pixels, image in zip((decoded[0], decoded[2]), good, strict=True):
        assert tuple(pixels.shape[1:]) == Image.open(io.BytesIO(image.data)).size[::-1]


def test_the_engine_reports_bad_jpegs_and_keeps_the_rest(tmp_path, photos) -> None:
    data = Path(photos[2]).read_bytes()
    (tmp_path / "cut.jpg").write_bytes(data[: len(data) // 3])
    (tmp_path / "garbage.jpg").write_bytes(b"\xff\xd8\xff" + b"not a jpeg" * 10)
    paths = [photos[0], str(tmp_path / "garbage.jpg"), photos[1], str(tmp_path / "cut.jpg")]
    cnn = featkit.create_extractor("cnn", decode="device", device="cpu", image_size=96)
    features = featkit.extract(cnn, paths, n_jobs=2, progress=False)
    reference = cnn.transform([photos[0], photos[1]])
    kept = {str(i): row for i, row in zip(features.ids, features.X, strict=True)}
    np.testing.assert_allclose(kept[features.ids[0]], reference[0], rtol=1e-5, atol=1e-6)
    assert photos[1] in " ".join(map(str, features.ids))
    problems = {Path(f["source"]).name: f["reason"] for f in features.failed}
    assert "garbage.jpg" in problems  # named, not a crash
    # The cut JPEG is decoded as far as PIL can on the CPU, or reported: never lost silently.
    assert ("cut.jpg" in problems) != any("cut.jpg" in str(i) for i in features.ids)


def test_device_decoding_is_its_own_config() -> None:
    reduced = featkit.create_extractor("cnn", decode="reduced", device="cpu")
    device = featkit.create_extractor("cnn", decode="device", device="cpu")
    assert reduced.config != device.config  # the cache never mixes them
    with pytest.raises(InvalidParameterError, match="tta"):
        featkit.create_extractor("cnn", decode="device", tta="flip").validate_params()
    with pytest.raises(InvalidParameterError, match="decode"):
        featkit.create_extractor("cnn", decode="gpu").validate_params()


def test_the_cli_mode_device_reaches_cnn_only() -> None:
    """``--decode device`` (set_decode): cnn decodes on its device; extractors that run on
    the CPU read as with "reduced"."""
    from featkit.extractors.base import set_decode

    cnn, hog = featkit.create_extractor("cnn"), featkit.create_extractor("hog")
    assert set_decode(cnn, "device") and cnn.decode == "device"
    assert set_decode(hog, "device") and hog.decode == "reduced"
    bovw = featkit.create_extractor("dsift-bovw")
    assert set_decode(bovw, "device")
    assert bovw.get_params()["local"] == "dsift"  # its default mode: the config is unchanged
    assert featkit.create_extractor("dsift").decode == "reduced"

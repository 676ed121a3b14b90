"""Tests of featkit.io: every image is made here, and checked against an independent expectation."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from featkit.exceptions import ImageReadError, InvalidParameterError
from featkit.io import IMAGE_EXTENSIONS, is_image_file, read_image, resize_image

RNG = np.random.default_rng(12345)


def _noise(shape: tuple[int, ...], dtype=np.uint8) -> np.ndarray:
    hi = np.iinfo(dtype).max + 1
    return RNG.integers(0, hi, size=shape, dtype=dtype)


def _save(path: Path, image: np.ndarray | Image.Image, fmt: str | None = None, **kw) -> Path:
    img = image if isinstance(image, Image.Image) else Image.fromarray(image)
    img.save(path, fmt, **kw)
    return path


def _gradient16(height: int = 32, width: int = 300) -> np.ndarray:
    """A uint16 gradient that hits 0 and 65535 and many values in between."""
    row = np.linspace(0, 65535, width).round().astype(np.uint16)
    rows = [np.roll(row, k) for k in range(height)]
    return np.stack(rows).astype(np.uint16)


def _expected_u8_from_u16(arr: np.ndarray) -> np.ndarray:
    return np.round(arr.astype(np.float64) * 255 / 65535).astype(np.uint8)


# --------------------------------------------------------------------------- unreadable input


def test_zero_byte_file(tmp_path):
    path = tmp_path / "empty.png"
    path.write_bytes(b"")
    with pytest.raises(ImageReadError, match="empty") as info:
        read_image(path)
    assert str(path) in str(info.value)
    assert info.value.source == path


def test_truncated_jpeg(tmp_path):
    full = _save(tmp_path / "full.jpg", _noise((64, 64, 3)), quality=90)
    data = full.read_bytes()
    cut = tmp_path / "cut.jpg"
    cut.write_bytes(data[: len(data) // 2])
    assert read_image(full).shape == (64, 64, 3)  # the uncut file is fine
    with pytest.raises(ImageReadError, match="truncated or corrupt") as info:
        read_image(cut)
    assert "cut.jpg" in str(info.value)


def test_text_file_named_png(tmp_path):
    path = tmp_path / "notes.png"
    path.write_text("this is not an image\n")
    with pytest.raises(ImageReadError, match="not a recognised image format"):
        read_image(path)


def test_missing_file(tmp_path):
    path = tmp_path / "nowhere" / "missing.jpg"
    with pytest.raises(ImageReadError, match="no such file") as info:
        read_image(str(path))
    assert "missing.jpg" in str(info.value)


def test_directory(tmp_path):
    folder = tmp_path / "folder.png"
    folder.mkdir()
    with pytest.raises(ImageReadError, match="directory"):
        read_image(folder)


def test_empty_bytes():
    with pytest.raises(ImageReadError, match="empty"):
        read_image(b"")


def test_garbage_bytes():
    with pytest.raises(ImageReadError, match="not a recognised image format"):
        read_image(b"\x00\x01garbage" * 10)


@pytest.mark.parametrize("source", [42, None, [[0, 1], [2, 3]], {"path": "a.png"}])
def test_unknown_source_type(source):
    with pytest.raises(ImageReadError, match=type(source).__name__):
        read_image(source)


def test_decompression_bomb(tmp_path, monkeypatch):
    path = _save(tmp_path / "big.png", np.zeros((100, 100), np.uint8))
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 10)
    with pytest.raises(ImageReadError, match="image too large"):
        read_image(path)


def test_unsupported_pil_mode():
    with pytest.raises(ImageReadError, match="unsupported PIL image mode 'La'"):
        read_image(Image.new("La", (4, 4)))


def test_empty_pil_image():
    with pytest.raises(ImageReadError, match="empty image"):
        read_image(Image.new("RGB", (0, 0)))


def test_mode_i_out_of_16_bit_range():
    img = Image.fromarray(np.array([[0, 70000]], dtype=np.int32))
    assert img.mode == "I"
    with pytest.raises(ImageReadError, match=r"outside 0\.\.65535"):
        read_image(img)


# --------------------------------------------------------------------------- 16-bit


def test_png16_float32_keeps_precision(tmp_path):
    arr = _gradient16()
    path = _save(tmp_path / "g16.png", arr)
    assert Image.open(path).mode.startswith("I")  # really a 16-bit file
    out = read_image(path, mode="unchanged", dtype=np.float32)
    assert out.dtype == np.float32 and out.shape == arr.shape
    np.testing.assert_allclose(out, arr / 65535.0, rtol=0, atol=1e-6)
    assert len(np.unique(out)) > 256  # more levels than 8 bits could hold


def test_png16_uint8_rounds(tmp_path):
    arr = _gradient16()
    path = _save(tmp_path / "g16.png", arr)
    out = read_image(path, mode="gray")
    assert out.dtype == np.uint8
    np.testing.assert_array_equal(out, _expected_u8_from_u16(arr))
    rgb = read_image(path)
    assert rgb.shape == (*arr.shape, 3)
    for c in range(3):
        np.testing.assert_array_equal(rgb[:, :, c], _expected_u8_from_u16(arr))


def test_tiff16_round_trip(tmp_path):
    arr = _gradient16(8, 70)
    path = _save(tmp_path / "g16.tif", arr)
    out = read_image(path, mode="unchanged", dtype=np.float32)
    np.testing.assert_allclose(out, arr / 65535.0, rtol=0, atol=1e-6)


def test_mode_i_within_16_bit_range_is_16_bit():
    values = np.array([[0, 100, 255, 30000, 65535]], dtype=np.int32)
    img = Image.fromarray(values)
    assert img.mode == "I"
    out = read_image(img, mode="gray", dtype=np.float32)
    np.testing.assert_allclose(out, values / 65535.0, rtol=0, atol=1e-6)


# --------------------------------------------------------------------------- alpha


def _rgba_pixels() -> np.ndarray:
    return np.array(
        [
            [[255, 0, 0, 255], [0, 255, 0, 0]],  # opaque red, fully transparent green
            [[0, 0, 255, 128], [10, 200, 30, 64]],  # half-transparent blue, mostly transparent
        ],
        dtype=np.uint8,
    )


def _over_white(rgba: np.ndarray) -> np.ndarray:
    a = rgba[..., 3:].astype(np.float64) / 255
    return rgba[..., :3].astype(np.float64) * a + 255 * (1 - a)


def test_rgba_png_composited_on_white(tmp_path):
    rgba = _rgba_pixels()
    path = _save(tmp_path / "rgba.png", rgba)
    out = read_image(path)
    assert out.shape == (2, 2, 3)
    np.testing.assert_array_equal(out[0, 0], [255, 0, 0])  # opaque red stays red
    np.testing.assert_array_equal(out[0, 1], [255, 255, 255])  # transparent becomes white
    np.testing.assert_allclose(out[1, 0], [127, 127, 255], atol=1)  # blue blended with white
    np.testing.assert_allclose(out, _over_white(rgba), atol=0.51)


def test_rgba_png_unchanged_keeps_alpha(tmp_path):
    rgba = _rgba_pixels()
    path = _save(tmp_path / "rgba.png", rgba)
    out = read_image(path, mode="unchanged")
    assert out.shape == (2, 2, 4)
    np.testing.assert_array_equal(out, rgba)
    np.testing.assert_allclose(
        read_image(path, mode="unchanged", dtype=np.float32), rgba / 255.0, atol=1e-7
    )


def test_rgba_gray_composites_then_luma(tmp_path):
    rgba = _rgba_pixels()
    path = _save(tmp_path / "rgba.png", rgba)
    out = read_image(path, mode="gray")
    rgb = _over_white(rgba)
    expected = 0.299 * rgb[..., 0] + 0.587 * rgb[..., 1] + 0.114 * rgb[..., 2]
    assert out[0, 1] == 255
    np.testing.assert_allclose(out, expected, atol=0.51)


def test_gray_alpha_png(tmp_path):
    la = np.array([[[50, 255], [50, 0]], [[200, 128], [0, 255]]], dtype=np.uint8)
    path = _save(tmp_path / "la.png", la)
    assert Image.open(path).mode == "LA"
    gray = read_image(path, mode="gray")
    a = la[..., 1] / 255
    np.testing.assert_allclose(gray, la[..., 0] * a + 255 * (1 - a), atol=0.51)
    rgba = read_image(path, mode="unchanged")
    assert rgba.shape == (2, 2, 4)
    for c in range(3):
        np.testing.assert_array_equal(rgba[..., c], la[..., 0])
    np.testing.assert_array_equal(rgba[..., 3], la[..., 1])


def test_rgb_png_with_colour_key_is_transparent(tmp_path):
    rgb = np.array([[[1, 2, 3], [90, 80, 70]]], dtype=np.uint8)
    path = _save(tmp_path / "key.png", rgb, transparency=(1, 2, 3))
    np.testing.assert_array_equal(read_image(path), [[[255, 255, 255], [90, 80, 70]]])
    np.testing.assert_array_equal(read_image(path, mode="unchanged")[..., 3], [[0, 255]])


# --------------------------------------------------------------------------- colour models


def test_cmyk_jpeg(tmp_path):
    colour = np.array([200, 60, 30], dtype=np.uint8)
    rgb = np.broadcast_to(colour, (32, 48, 3)).copy()
    path = _save(tmp_path / "cmyk.jpg", Image.fromarray(rgb).convert("CMYK"), "JPEG", quality=95)
    assert Image.open(path).mode == "CMYK"
    out = read_image(path)
    assert out.shape == (32, 48, 3) and out.dtype == np.uint8
    assert np.abs(out.astype(np.int16) - colour).mean() < 8


def _palette_image() -> tuple[Image.Image, np.ndarray, np.ndarray]:
    palette = np.array([[255, 0, 0], [0, 255, 0], [0, 0, 255], [10, 20, 30]], dtype=np.uint8)
    index = np.array([[0, 1, 2, 3], [3, 2, 1, 0], [1, 1, 3, 3]], dtype=np.uint8)
    img = Image.new("P", (index.shape[1], index.shape[0]))
    img.putpalette(palette.ravel().tolist() + [0] * (256 - len(palette)) * 3)
    img.putdata(index.ravel().tolist())
    return img, palette, index


def test_palette_gif(tmp_path):
    img, palette, index = _palette_image()
    path = _save(tmp_path / "pal.gif", img)
    assert Image.open(path).mode == "P"
    out = read_image(path)
    np.testing.assert_array_equal(out, palette[index])
    assert read_image(path, mode="unchanged").shape == (3, 4, 3)  # no transparency: RGB


def test_palette_gif_with_transparency(tmp_path):
    img, palette, index = _palette_image()
    path = _save(tmp_path / "pal_t.gif", img, transparency=1)
    expected = palette[index].copy()
    expected[index == 1] = 255
    np.testing.assert_array_equal(read_image(path), expected)
    rgba = read_image(path, mode="unchanged")
    assert rgba.shape == (3, 4, 4)
    np.testing.assert_array_equal(rgba[..., 3], np.where(index == 1, 0, 255))


def test_multi_frame_gif_reads_first_frame(tmp_path):
    frames = [Image.new("RGB", (5, 4), c) for c in ((255, 0, 0), (0, 0, 255))]
    path = tmp_path / "anim.gif"
    frames[0].save(path, save_all=True, append_images=frames[1:])
    assert Image.open(path).n_frames == 2
    out = read_image(path)
    np.testing.assert_array_equal(out, np.broadcast_to([255, 0, 0], (4, 5, 3)))


def test_one_by_one_png(tmp_path):
    path = _save(tmp_path / "one.png", np.array([[[7, 8, 9]]], dtype=np.uint8))
    out = read_image(path)
    assert out.shape == (1, 1, 3)
    np.testing.assert_array_equal(out[0, 0], [7, 8, 9])


def test_exif_orientation_applied(tmp_path):
    src = np.full((20, 40, 3), 128, dtype=np.uint8)  # 40 wide, 20 high
    src[:6, :6] = [255, 0, 0]  # red block in the top-left corner
    img = Image.fromarray(src)
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 CW to display"
    rotated = tmp_path / "rot.jpg"
    img.save(rotated, exif=exif, quality=95)
    plain = _save(tmp_path / "plain.jpg", src, quality=95)

    assert read_image(plain).shape == (20, 40, 3)
    out = read_image(rotated)
    view = np.rot90(src, k=-1)  # what a viewer shows: clockwise quarter turn
    assert out.shape == view.shape == (40, 20, 3)
    assert np.abs(out.astype(np.int16) - view).mean() < 3
    # The marked corner is now top-right, and the other corners are not marked.
    np.testing.assert_allclose(out[2, -3], [255, 0, 0], atol=20)
    for y, x in ((2, 2), (-3, 2), (-3, -3)):
        np.testing.assert_allclose(out[y, x], [128, 128, 128], atol=20)


# --------------------------------------------------------------------------- gray and colour


def test_gray_png_in_rgb_mode(tmp_path):
    gray = _noise((13, 17))
    path = _save(tmp_path / "gray.png", gray)
    out = read_image(path)
    assert out.shape == (13, 17, 3)
    for c in range(3):
        np.testing.assert_array_equal(out[:, :, c], gray)
    np.testing.assert_array_equal(read_image(path, mode="unchanged"), gray)


def test_rgb_in_gray_mode_is_bt601(tmp_path):
    rgb = _noise((31, 29, 3))
    path = _save(tmp_path / "rgb.png", rgb)
    out = read_image(path, mode="gray")
    assert out.shape == (31, 29) and out.dtype == np.uint8
    reference = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
    assert np.abs(out.astype(np.int16) - reference).max() <= 1
    exact = rgb @ np.array([0.299, 0.587, 0.114])
    np.testing.assert_allclose(out, exact, atol=0.51)
    as_float = read_image(path, mode="gray", dtype=np.float32)
    np.testing.assert_allclose(as_float, exact / 255, atol=1e-5)


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16])
@pytest.mark.parametrize("channels", [3, 4])
def test_white_stays_exactly_white(dtype, channels):
    white = np.full((3, 3, channels), np.iinfo(dtype).max, dtype=dtype)
    for mode in ("gray", "rgb"):
        as_float = read_image(white, mode=mode, dtype=np.float32)
        assert as_float.min() == 1.0 and as_float.max() == 1.0
        assert (read_image(white, mode=mode) == 255).all()


def test_uint8_float32_output_is_value_over_255(tmp_path):
    rgb = _noise((9, 11, 3))
    path = _save(tmp_path / "rgb.png", rgb)
    out = read_image(path, dtype=np.float32)
    assert out.dtype == np.float32
    np.testing.assert_allclose(out, rgb / 255.0, rtol=0, atol=1e-7)
    assert out.min() >= 0 and out.max() <= 1


@pytest.mark.parametrize(
    ("name", "fmt", "array", "kw"),
    [
        ("a.pgm", None, _noise((10, 12)), {}),
        ("a.ppm", None, _noise((10, 12, 3)), {}),
        ("a.pnm", "PPM", _noise((10, 12, 3)), {}),
        ("a.bmp", None, _noise((10, 12, 3)), {}),
        ("a.tif", None, _noise((10, 12, 3)), {}),
        ("a.tiff", None, _noise((10, 12, 4)), {}),
        ("a.webp", None, _noise((10, 12, 3)), {"lossless": True}),
        ("a.webp", None, _noise((10, 12, 4)), {"lossless": True, "exact": True}),
        ("a.png", None, _noise((10, 12, 4)), {}),
    ],
)
def test_lossless_round_trips(tmp_path, name, fmt, array, kw):
    path = _save(tmp_path / name, array, fmt, **kw)
    out = read_image(path, mode="unchanged")
    assert out.dtype == np.uint8
    np.testing.assert_array_equal(out, array)


def test_pbm_is_black_and_white(tmp_path):
    bits = np.array([[0, 1, 1], [1, 0, 0]], dtype=bool)
    path = tmp_path / "a.pbm"
    Image.fromarray(bits).save(path)
    assert Image.open(path).mode == "1"
    np.testing.assert_array_equal(read_image(path, mode="gray"), np.where(bits, 255, 0))


def test_float_tiff(tmp_path):
    values = np.linspace(0, 1, 24, dtype=np.float32).reshape(4, 6)
    path = _save(tmp_path / "f.tif", values)
    assert Image.open(path).mode == "F"
    np.testing.assert_array_equal(read_image(path, mode="unchanged", dtype=np.float32), values)


# --------------------------------------------------------------------------- other sources


@pytest.fixture
def corpus(tmp_path) -> list[Path]:
    exif = Image.Exif()
    exif[0x0112] = 6
    rotated = tmp_path / "rot.jpg"
    Image.fromarray(_noise((8, 14, 3))).save(rotated, exif=exif)
    return [
        _save(tmp_path / "rgb.png", _noise((6, 7, 3))),
        _save(tmp_path / "rgba.png", _rgba_pixels()),
        _save(tmp_path / "g16.png", _gradient16(4, 9)),
        _save(tmp_path / "pal.gif", _palette_image()[0], transparency=2),
        rotated,
    ]


@pytest.mark.parametrize("kind", [bytes, bytearray, memoryview])
@pytest.mark.parametrize("mode", ["rgb", "gray", "unchanged"])
def test_bytes_source_equals_path(corpus, kind, mode):
    for path in corpus:
        expected = read_image(path, mode=mode, dtype=np.float32)
        out = read_image(kind(path.read_bytes()), mode=mode, dtype=np.float32)
        np.testing.assert_array_equal(out, expected, err_msg=path.name)


@pytest.mark.parametrize("mode", ["rgb", "gray", "unchanged"])
def test_pil_source_equals_path(corpus, mode):
    for path in corpus:
        expected = read_image(path, mode=mode)
        with Image.open(path) as img:
            size, pil_mode = img.size, img.mode
            out = read_image(img, mode=mode)
            assert (img.size, img.mode) == (size, pil_mode)  # the caller's image is untouched
        np.testing.assert_array_equal(out, expected, err_msg=path.name)


def test_pathlike_and_str_sources_agree(tmp_path):
    path = _save(tmp_path / "rgb.png", _noise((5, 5, 3)))
    np.testing.assert_array_equal(read_image(str(path)), read_image(path))


def test_results_are_private_writeable_and_contiguous(tmp_path):
    path = _save(tmp_path / "rgb.png", _noise((5, 6, 3)))
    with Image.open(path) as img:
        for source in (path, path.read_bytes(), img):
            for mode in ("rgb", "gray", "unchanged"):
                out = read_image(source, mode=mode)
                assert out.flags.c_contiguous and out.flags.writeable, (source, mode)
                out[0, 0] = 0  # does not raise
        first = list(img.getpixel((0, 0)))
    assert first != [0, 0, 0]
    assert read_image(path)[0, 0].tolist() == first


# --------------------------------------------------------------------------- ndarray input


def test_array_bool():
    arr = np.array([[True, False], [False, True]])
    out = read_image(arr, mode="unchanged")
    assert out.dtype == np.uint8
    np.testing.assert_array_equal(out, [[255, 0], [0, 255]])


def test_array_uint16():
    arr = _gradient16(3, 50)
    np.testing.assert_allclose(
        read_image(arr, mode="gray", dtype=np.float32), arr / 65535.0, rtol=0, atol=1e-6
    )
    np.testing.assert_array_equal(read_image(arr, mode="gray"), _expected_u8_from_u16(arr))


def test_every_16_bit_value_rounds_exactly():
    arr = np.arange(65536, dtype=np.uint16).reshape(256, 256)
    np.testing.assert_array_equal(read_image(arr, mode="gray"), _expected_u8_from_u16(arr))
    np.testing.assert_array_equal(
        read_image(arr, mode="gray", dtype=np.float32), (arr / 65535.0).astype(np.float32)
    )


def test_array_big_endian_uint16():
    arr = _gradient16(3, 50)
    np.testing.assert_array_equal(
        read_image(arr.astype(">u2"), mode="gray"), _expected_u8_from_u16(arr)
    )


def test_array_float_in_unit_range(caplog):
    arr = RNG.random((6, 5, 3))  # float64 in [0, 1)
    arr[0, 0] = [0.0, 1.0, 0.5]
    with caplog.at_level(logging.WARNING, logger="featkit.io"):
        as_float = read_image(arr, dtype=np.float32)
        as_u8 = read_image(arr)
    assert not caplog.records  # in range: no rescaling, no warning
    assert as_float.dtype == np.float32
    np.testing.assert_allclose(as_float, arr, atol=1e-7)
    np.testing.assert_array_equal(as_u8, np.round(arr * 255).astype(np.uint8))


def test_array_float_out_of_range_is_rescaled(caplog):
    arr = np.array([[-2.0, 0.0], [3.0, 8.0]], dtype=np.float32)
    with caplog.at_level(logging.WARNING, logger="featkit.io"):
        out = read_image(arr, mode="gray", dtype=np.float32)
    np.testing.assert_allclose(out, (arr + 2) / 10, atol=1e-7)
    assert any(
        r.name == "featkit.io" and r.levelno == logging.WARNING and "rescal" in r.getMessage()
        for r in caplog.records
    )


def test_array_constant_out_of_range_is_clipped(caplog):
    with caplog.at_level(logging.WARNING, logger="featkit.io"):
        high = read_image(np.full((2, 3), 7.5), mode="gray", dtype=np.float32)
        low = read_image(np.full((2, 3), -1.0), mode="gray", dtype=np.float32)
    np.testing.assert_array_equal(high, np.ones((2, 3)))
    np.testing.assert_array_equal(low, np.zeros((2, 3)))
    assert len(caplog.records) == 2


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_array_non_finite(bad):
    arr = np.zeros((4, 4), dtype=np.float32)
    arr[1, 2] = bad
    with pytest.raises(ImageReadError, match="NaN" if np.isnan(bad) else "infinite"):
        read_image(arr)


def test_array_other_integer_types():
    small = np.array([[0, 17, 255]], dtype=np.int64)
    np.testing.assert_array_equal(read_image(small, mode="gray"), [[0, 17, 255]])
    wide = np.array([[0, 256, 65535]], dtype=np.int32)
    np.testing.assert_allclose(
        read_image(wide, mode="gray", dtype=np.float32), wide / 65535.0, atol=1e-6
    )
    for bad in (np.array([[-1, 5]], dtype=np.int16), np.array([[0, 70000]], dtype=np.uint32)):
        with pytest.raises(ImageReadError, match=r"0\.\.255 or 0\.\.65535"):
            read_image(bad)


@pytest.mark.parametrize(
    "shape", [(5,), (4, 4, 2), (4, 4, 5), (2, 3, 3, 3), (0, 4), (4, 0, 3), (3, 3, 0)]
)
def test_array_bad_shapes(shape):
    with pytest.raises(ImageReadError):
        read_image(np.zeros(shape, dtype=np.uint8))


@pytest.mark.parametrize("dtype", [np.complex64, object, "U3"])
def test_array_bad_dtypes(dtype):
    with pytest.raises(ImageReadError, match="dtype"):
        read_image(np.zeros((3, 3), dtype=dtype))


def test_array_single_channel_is_gray():
    arr = _noise((4, 5, 1))
    out = read_image(arr, mode="unchanged")
    assert out.shape == (4, 5)
    np.testing.assert_array_equal(out, arr[:, :, 0])
    assert read_image(arr).shape == (4, 5, 3)


def test_array_rgb_and_rgba_layouts():
    rgba = _rgba_pixels()
    np.testing.assert_array_equal(read_image(rgba, mode="unchanged"), rgba)
    np.testing.assert_allclose(read_image(rgba), _over_white(rgba), atol=0.51)
    rgb = _noise((3, 4, 3))
    exact = rgb @ np.array([0.299, 0.587, 0.114])
    np.testing.assert_allclose(read_image(rgb, mode="gray"), exact, atol=0.51)


@pytest.mark.parametrize(
    ("arr", "kw"),
    [
        (_noise((4, 5, 3)), {}),
        (_noise((4, 5, 3)), {"mode": "unchanged"}),
        (_noise((4, 5)), {"mode": "gray"}),
        (_noise((4, 5, 1)), {"mode": "gray"}),
        (_noise((4, 5, 4)), {"mode": "unchanged"}),
        (RNG.random((4, 5, 3)).astype(np.float32), {"dtype": np.float32}),
        (RNG.random((4, 5)).astype(np.float32), {"mode": "unchanged", "dtype": np.float32}),
        (_noise((4, 5, 3))[:, ::-1], {}),  # non-contiguous input
    ],
)
def test_array_result_does_not_share_memory(arr, kw):
    before = arr.copy()
    out = read_image(arr, **kw)
    assert not np.shares_memory(out, arr)
    assert out.flags.c_contiguous and out.flags.writeable
    out[...] = 0
    np.testing.assert_array_equal(arr, before)


# --------------------------------------------------------------------------- parameters


@pytest.mark.parametrize("mode", ["RGB", "bgr", "grey", "", None, 3])
def test_invalid_mode(mode, tmp_path):
    path = tmp_path / "never-read.png"  # parameters are checked before the source is touched
    with pytest.raises(InvalidParameterError, match="mode"):
        read_image(path, mode=mode)


@pytest.mark.parametrize("dtype", [np.float64, np.uint16, np.int8, float, int, "float16", None, 5])
def test_invalid_dtype(dtype):
    with pytest.raises(InvalidParameterError, match="dtype"):
        read_image(np.zeros((2, 2), dtype=np.uint8), dtype=dtype)


@pytest.mark.parametrize(
    ("dtype", "expected"),
    [("uint8", np.uint8), (np.dtype("float32"), np.float32), ("float32", np.float32)],
)
def test_dtype_spellings(dtype, expected):
    assert read_image(np.zeros((2, 2), dtype=np.uint8), dtype=dtype).dtype == expected


def test_image_extensions():
    assert IMAGE_EXTENSIONS == {
        ".jpg",
        ".jpeg",
        ".png",
        ".pgm",
        ".ppm",
        ".pbm",
        ".pnm",
        ".bmp",
        ".tif",
        ".tiff",
        ".webp",
        ".gif",
    }
    assert all(ext == ext.lower() and ext.startswith(".") for ext in IMAGE_EXTENSIONS)


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("a.jpg", True),
        ("dir/b.JPEG", True),
        (Path("c.Tiff"), True),
        ("d.webp", True),
        (os.path.join("x.png", "notes.txt"), False),
        ("e.txt", False),
        ("png", False),
        (".png", False),  # a hidden file named ".png" has no suffix
        ("f.png.bak", False),
        (42, False),
    ],
)
def test_is_image_file(path, expected):
    assert is_image_file(path) is expected


# --------------------------------------------------------------------------- resize_image


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.float32])
@pytest.mark.parametrize("shape", [(12, 18), (12, 18, 1), (12, 18, 3), (12, 18, 4)])
@pytest.mark.parametrize("size", [(6, 9), (25, 40), (24, 9)])
def test_resize_shapes_and_dtypes(dtype, shape, size):
    image = _noise(shape, np.uint16).astype(dtype)
    out = resize_image(image, size)
    assert out.shape == (*size, *shape[2:])
    assert out.dtype == dtype


def test_resize_shrinking_averages_areas():
    image = _noise((6, 9)).astype(np.float32)
    out = resize_image(image, (2, 3))
    block_means = image.reshape(2, 3, 3, 3).mean(axis=(1, 3))
    np.testing.assert_allclose(out, block_means, atol=1e-3)
    # Shrinking one axis and keeping the other is still a pure shrink: area averaging.
    out = resize_image(image, (6, 3))
    np.testing.assert_allclose(out, image.reshape(6, 3, 3).mean(axis=2), atol=1e-3)


def test_resize_growing_interpolates():
    image = np.array([[0.0, 90.0]], dtype=np.float32)
    out = resize_image(image, (1, 4))
    # Bilinear with pixel centres aligned: 0, 22.5, 67.5, 90.
    np.testing.assert_allclose(out, [[0.0, 22.5, 67.5, 90.0]], atol=1e-4)


def test_resize_one_by_one_upscale():
    image = np.array([[[10, 20, 30, 40]]], dtype=np.uint8)
    out = resize_image(image, (5, 7))
    assert out.shape == (5, 7, 4)
    np.testing.assert_array_equal(out, np.broadcast_to([10, 20, 30, 40], (5, 7, 4)))
    gray = resize_image(np.array([[200]], dtype=np.uint8), (3, 2))
    np.testing.assert_array_equal(gray, np.full((3, 2), 200))


def test_resize_many_channels():
    image = _noise((10, 10, 6)).astype(np.float32)
    out = resize_image(image, (5, 5))
    assert out.shape == (5, 5, 6)
    for c in range(6):
        np.testing.assert_allclose(out[..., c], resize_image(image[..., c], (5, 5)), atol=1e-4)


def test_resize_same_size_returns_input():
    image = _noise((4, 6, 3))
    assert resize_image(image, (4, 6)) is image


@pytest.mark.parametrize(
    "size", [(0, 5), (5, 0), (-1, 5), (5,), (5, 5, 5), (5.0, 5), (True, 5), "ab", None, 5]
)
def test_resize_bad_size(size):
    with pytest.raises(InvalidParameterError, match="size"):
        resize_image(np.zeros((4, 4), dtype=np.uint8), size)


@pytest.mark.parametrize(
    "image", [np.zeros((4, 4), dtype=bool), np.zeros((4, 4), dtype=np.int64), np.zeros(4), [[1]]]
)
def test_resize_bad_image(image):
    with pytest.raises(InvalidParameterError):
        resize_image(image, (2, 2))


def test_resize_accepts_numpy_integer_sizes():
    out = resize_image(np.zeros((4, 4), dtype=np.uint8), (np.int64(2), np.int32(3)))
    assert out.shape == (2, 3)

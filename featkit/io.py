"""Read any image (file, encoded bytes, PIL image or array) into one canonical numpy array.

:func:`read_image` is the single entry point every extractor uses, so that a feature never
depends on how its image was handed over. The canonical array is C-contiguous, writeable,
owned by the caller, and has one of these layouts:

* ``mode="rgb"``: ``(H, W, 3)``; ``mode="gray"``: ``(H, W)``;
  ``mode="unchanged"``: ``(H, W)`` for grey images, ``(H, W, 3)`` for colour, ``(H, W, 4)``
  when the image carries alpha (grey + alpha becomes RGBA).
* ``dtype=np.uint8``: 0..255; ``dtype=np.float32``: 0..1.

Conventions:

* Alpha is composited on a white background in the "rgb" and "gray" modes, the way a viewer
  shows a transparent PNG on a page; "unchanged" keeps it. Palette images and grey/RGB images
  with a transparent colour key count as having alpha.
* Grey from colour is ITU-R BT.601 luma, ``Y = 0.299 R + 0.587 G + 0.114 B`` (the convention
  of PIL and OpenCV), computed in float32.
* 16-bit images become uint8 by rounding ``v * 255 / 65535``; this loses precision, ask for
  ``dtype=np.float32`` (``v / 65535``) to keep it. PIL itself decodes 16-bit *colour* files to
  8 bits per channel; only 16-bit grey images keep their full depth.
* The EXIF orientation is applied, so the array is the image as a viewer shows it. Of a
  multi-frame file (GIF, TIFF) only the first frame is read.
* ``min_size`` (for a caller that resizes the image next) lets a JPEG be decoded at a
  reduced scale: see :func:`read_image`. Without it every image is decoded at full size.
* Arrays are taken as RGB(A), never BGR. Float arrays are intensities in [0, 1]; a float
  image with values outside [0, 1] is rescaled to [0, 1] by its own minimum and maximum (a
  constant one is clipped instead) and a warning is logged on the ``featkit.io`` logger.

Every failure raises :class:`~featkit.exceptions.ImageReadError` naming the source and the
reason; a bad ``mode``, ``dtype``, ``size`` or ``min_size`` raises
:class:`~featkit.exceptions.InvalidParameterError`.
"""

from __future__ import annotations

import io
import logging
import math
import os
import stat
from typing import Any

import cv2
import numpy as np
from PIL import ExifTags, Image, ImageOps, JpegImagePlugin, UnidentifiedImageError

from featkit.exceptions import ImageReadError, InvalidParameterError

__all__ = [
    "IMAGE_EXTENSIONS",
    "ImageInput",
    "is_image_file",
    "read_image",
    "resize_image",
    "stat_image_file",
]

logger = logging.getLogger(__name__)

#: Lower-case file suffixes (with the dot) that image folders accept.
IMAGE_EXTENSIONS: frozenset[str] = frozenset(
    {
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
)

#: Everything :func:`read_image` accepts as a source.
ImageInput = str | os.PathLike | bytes | bytearray | memoryview | Image.Image | np.ndarray

_MODES = ("rgb", "gray", "unchanged")
_DTYPES = (np.dtype(np.uint8), np.dtype(np.float32))

# Full scale of each internal sample type; float32 samples are already intensities in [0, 1].
_U8, _U16, _F = 255.0, 65535.0, 1.0

# PIL modes whose pixels PIL itself converts to RGB before they reach numpy.
_PIL_TO_RGB = frozenset({"CMYK", "YCbCr", "RGBX", "LAB", "HSV"})

# ITU-R BT.601 luma weights for R, G, B.
_BT601 = np.array([0.299, 0.587, 0.114], dtype=np.float32)

# The sample types cv2.resize handles with both INTER_AREA and INTER_LINEAR.
_RESIZE_DTYPES = tuple(np.dtype(t) for t in (np.uint8, np.uint16, np.int16, np.float32, np.float64))


def is_image_file(path: str | os.PathLike) -> bool:
    """Whether ``path`` has an image suffix from :data:`IMAGE_EXTENSIONS` (case-insensitive)."""
    if not isinstance(path, (str, os.PathLike)):
        return False
    return os.path.splitext(os.fsdecode(path))[1].lower() in IMAGE_EXTENSIONS


def read_image(
    source: ImageInput,
    *,
    mode: str = "rgb",
    dtype: Any = np.uint8,
    min_size: tuple[int, int] | None = None,
) -> np.ndarray:
    """Read ``source`` into a canonical array: ``(H, W, 3)``, ``(H, W)`` or as stored.

    ``source`` is a path, the bytes of an encoded file, a ``PIL.Image.Image`` or an array of
    shape (H, W), (H, W, 1), (H, W, 3) or (H, W, 4). ``mode`` is "rgb", "gray" or "unchanged";
    ``dtype`` is ``np.uint8`` (0..255) or ``np.float32`` (0..1). See the module docstring for
    the conventions (alpha on white, BT.601 grey, 16-bit rounding, EXIF orientation).

    ``min_size=(height, width)``, for a caller that resizes the image to that size next:
    a JPEG file or buffer at least twice that size on both axes is decoded with libjpeg's
    DCT scaling (PIL's ``draft``) at the smallest scale, 1/2, 1/4 or 1/8, that keeps it at
    least ``min_size`` on both axes as displayed (the EXIF orientation is taken into
    account). Each side becomes ``side / scale`` rounded half up: libjpeg's last pixel,
    padded, is dropped when less than half of it is picture. That skips most of the
    decoding work of a large photo (5x faster on 12 MP photos), for an image a fraction of
    a gray level from the full decode once resized. Every other source (other formats, a
    smaller JPEG, PIL images, arrays) is read at full size, exactly as without
    ``min_size``; so are the conventions and every failure. None (default): the stored
    size.
    """
    if not isinstance(mode, str) or mode not in _MODES:
        raise InvalidParameterError(f"mode must be one of {', '.join(_MODES)}; got {mode!r}")
    out_dtype = _check_dtype(dtype)
    if min_size is not None:
        min_size = _check_size("min_size", min_size)

    if isinstance(source, np.ndarray):
        pixels, scale = _from_array(source, source)
    elif isinstance(source, Image.Image):
        pixels, scale = _from_pil_image(source, source)
    elif isinstance(source, (str, os.PathLike)):
        pixels, scale = _from_path(source, min_size)
    elif isinstance(source, (bytes, bytearray, memoryview)):
        pixels, scale = _from_bytes(source, min_size)
    else:
        raise ImageReadError(
            source,
            f"unsupported source type {type(source).__module__}.{type(source).__qualname__}; "
            "expected a path, bytes, a PIL image or a numpy array",
        )

    out = _to_mode_and_dtype(pixels, scale, mode, out_dtype)
    # PIL hands out read-only arrays, and untouched input arrays come through as themselves;
    # the caller must get a private, writeable, C-contiguous array either way.
    if (
        not out.flags.c_contiguous
        or not out.flags.writeable
        or (isinstance(source, np.ndarray) and np.may_share_memory(out, source))
    ):
        out = np.array(out, order="C", copy=True)
    return out


def resize_image(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Resize a 2-D or (H, W, C) array to ``size = (height, width)``, keeping its dtype.

    Area interpolation when no axis grows (it averages instead of aliasing), bilinear
    otherwise. An image already of that size is returned as is, not copied.
    """
    height, width = _check_size("size", size)
    if not isinstance(image, np.ndarray) or image.ndim not in (2, 3) or image.size == 0:
        raise InvalidParameterError(
            "image must be a non-empty (H, W) or (H, W, C) array; got "
            + (f"shape {image.shape}" if isinstance(image, np.ndarray) else type(image).__name__)
        )
    native = image.dtype.newbyteorder("=")
    if native not in _RESIZE_DTYPES:
        raise InvalidParameterError(
            f"cannot resize a {image.dtype} image; supported dtypes: "
            + ", ".join(str(d) for d in _RESIZE_DTYPES)
        )
    if image.shape[:2] == (height, width):
        return image
    grows = height > image.shape[0] or width > image.shape[1]
    interpolation = cv2.INTER_LINEAR if grows else cv2.INTER_AREA
    src = np.ascontiguousarray(image, dtype=native)
    if src.ndim == 2 or src.shape[2] <= 4:
        out = cv2.resize(src, (width, height), interpolation=interpolation)
    else:  # OpenCV's area resize takes at most 4 channels at a time
        out = np.concatenate(
            [
                _resize_3d(src[:, :, i : i + 4], (width, height), interpolation)
                for i in range(0, src.shape[2], 4)
            ],
            axis=2,
        )
    if src.ndim == 3 and out.ndim == 2:  # OpenCV drops a trailing channel axis of length 1
        out = out[:, :, None]
    return out


def _resize_3d(src: np.ndarray, dsize: tuple[int, int], interpolation: int) -> np.ndarray:
    out = cv2.resize(np.ascontiguousarray(src), dsize, interpolation=interpolation)
    return out[:, :, None] if out.ndim == 2 else out


# --------------------------------------------------------------------------- parameters


def _check_size(name: str, size: Any) -> tuple[int, int]:
    if (
        not isinstance(size, (tuple, list))
        or len(size) != 2
        or not all(isinstance(s, (int, np.integer)) and not isinstance(s, bool) for s in size)
        or not all(s > 0 for s in size)
    ):
        raise InvalidParameterError(
            f"{name} must be a (height, width) pair of positive integers; got {size!r}"
        )
    return int(size[0]), int(size[1])


def _check_dtype(dtype: Any) -> np.dtype:
    try:
        resolved = np.dtype(dtype)
    except (TypeError, ValueError):
        resolved = None
    # np.dtype(None) is float64, so None is refused here along with every other dtype.
    if dtype is None or resolved not in _DTYPES:
        raise InvalidParameterError(f"dtype must be np.uint8 or np.float32; got {dtype!r}")
    return resolved


# --------------------------------------------------------------------------- sources


def stat_image_file(source: str | os.PathLike) -> os.stat_result:
    """``os.stat`` of an image file, or ImageReadError if it is missing, a folder, not a
    regular file (a FIFO or device would block a reader) or empty."""
    try:
        path = os.fspath(source)
        info = os.stat(path)
    except (FileNotFoundError, NotADirectoryError):
        raise ImageReadError(source, "no such file") from None
    except (OSError, ValueError) as exc:  # permission denied, name too long, NUL in the name
        raise ImageReadError(source, f"cannot access the file: {_reason(exc)}") from None
    if stat.S_ISDIR(info.st_mode):
        raise ImageReadError(source, "is a directory, not an image file")
    if not stat.S_ISREG(info.st_mode):
        # Opening a FIFO or a device could block forever.
        raise ImageReadError(source, "not a regular file")
    if info.st_size == 0:
        raise ImageReadError(source, "empty file (0 bytes)")
    return info


def _from_path(
    source: str | os.PathLike, min_size: tuple[int, int] | None = None
) -> tuple[np.ndarray, float]:
    stat_image_file(source)
    return _decode(os.fspath(source), source, min_size)


def _from_bytes(
    source: bytes | bytearray | memoryview, min_size: tuple[int, int] | None = None
) -> tuple[np.ndarray, float]:
    data = source if isinstance(source, bytes) else bytes(source)
    if not data:
        raise ImageReadError(source, "empty data (0 bytes)")
    return _decode(io.BytesIO(data), source, min_size)


def _decode(
    fp: str | io.BytesIO, source: object, min_size: tuple[int, int] | None = None
) -> tuple[np.ndarray, float]:
    """Open and decode a file or buffer with PIL (a large JPEG at a reduced scale when
    ``min_size`` allows it); every PIL failure becomes ours."""
    try:
        img = Image.open(fp)
    except Image.DecompressionBombError as exc:
        raise ImageReadError(source, f"image too large: {exc}") from None
    except UnidentifiedImageError:
        raise ImageReadError(source, "not a recognised image format") from None
    except FileNotFoundError:  # removed since the stat
        raise ImageReadError(source, "no such file") from None
    except MemoryError:
        raise
    except Exception as exc:  # PIL plugins raise OSError, SyntaxError, struct.error, ...
        raise ImageReadError(source, f"cannot open: {_reason(exc)}") from None
    with img:
        extent = None if min_size is None else _reduce_jpeg(img, min_size)
        return _from_pil_image(img, source, extent)


def _reduce_jpeg(img: Image.Image, min_size: tuple[int, int]) -> tuple[float, float] | None:
    """Have libjpeg decode ``img`` (opened, not loaded) at the smallest DCT scale, 1/2, 1/4
    or 1/8, that keeps it at least ``min_size`` (height, width) as displayed; return the
    picture's extent (width, height) in the reduced pixels, or None when not reduced (other
    formats, a JPEG less than twice that size)."""
    if not isinstance(img, JpegImagePlugin.JpegImageFile):  # JPEG and MPO (camera) files
        return None
    height, width = min_size
    if (
        max(img.width // width, img.width // height) < 2
        or max(img.height // height, img.height // width) < 2
    ):
        return None  # too small to reduce however it is shown: the EXIF block is not read
    if _exif_orientation(img) in (5, 6, 7, 8):
        # Stored transposed: the displayed height is the stored width.
        height, width = width, height
    if min(img.width // width, img.height // height) < 2:
        return None  # no scale would reduce it: not even asked, so the decode is the usual one
    try:
        # mode None keeps the colour mode; PIL picks the largest scale s in (8, 4, 2) with
        # s <= min(W // width, H // height), so W / s >= width and H / s >= height.
        drafted = img.draft(None, (width, height))
    except Exception as exc:  # never worse than the full decode
        logger.debug("decoding at full size, libjpeg scaling refused: %s", exc)
        return None
    if drafted is None:
        return None
    _, (_, _, extent_w, extent_h) = drafted  # (W / s, H / s)
    return float(extent_w), float(extent_h)


def _fit_extent(img: Image.Image, extent: tuple[float, float]) -> Image.Image:
    """A side that is not a multiple of the scale ends in a reduced pixel partly outside the
    picture (libjpeg pads the last blocks). Drop that pixel when less than half of it is
    picture, so that the reduced image spans the full-size one within half a reduced pixel
    (resampling to the exact extent would blur more than it corrects)."""
    keep = (math.floor(extent[0] + 0.5), math.floor(extent[1] + 0.5))
    if keep[0] >= img.width and keep[1] >= img.height:
        return img
    return img.crop((0, 0, min(keep[0], img.width), min(keep[1], img.height)))


def _from_pil_image(
    img: Image.Image, source: object, extent: tuple[float, float] | None = None
) -> tuple[np.ndarray, float]:
    try:
        # Decoding is lazy: load() is where truncated or corrupt data shows up.
        img.load()
        if extent is not None:  # decoded reduced
            img = _fit_extent(img, extent)
        img = _apply_exif_orientation(img)
        img = _to_array_friendly_mode(img, source)
        pixels = np.asarray(img)
    except ImageReadError:
        raise
    except Image.DecompressionBombError as exc:
        raise ImageReadError(source, f"image too large: {exc}") from None
    except MemoryError:
        raise
    except Exception as exc:
        raise ImageReadError(source, f"truncated or corrupt image data: {_reason(exc)}") from None
    if pixels.size == 0:
        raise ImageReadError(source, f"empty image ({img.width}x{img.height} pixels)")
    if img.mode in ("I;16", "I;16L", "I;16B", "I;16N"):
        return pixels.astype(np.uint16, copy=False), _U16  # big-endian data is swapped here
    if img.mode == "I":
        # PIL stores 16-bit PNGs (and some TIFFs) as 32-bit "I"; within 0..65535 it is 16-bit.
        lo, hi = (int(pixels.min()), int(pixels.max())) if pixels.size else (0, 0)
        if lo < 0 or hi > 65535:
            raise ImageReadError(
                source, f"32-bit integer pixels outside 0..65535 (min {lo}, max {hi})"
            )
        return pixels.astype(np.uint16), _U16
    if img.mode == "F":
        return _float_pixels(pixels, source)
    return pixels, _U8


def _exif_orientation(img: Image.Image) -> int:
    """The EXIF orientation (1..8; 1 when absent or unreadable)."""
    try:
        return img.getexif().get(ExifTags.Base.Orientation, 1)
    except Exception as exc:  # a broken EXIF block should not make the pixels unreadable
        logger.debug("ignoring unreadable EXIF data: %s", exc)
        return 1


def _apply_exif_orientation(img: Image.Image) -> Image.Image:
    orientation = _exif_orientation(img)
    if orientation not in (2, 3, 4, 5, 6, 7, 8):
        return img
    # A transposed copy: the caller's image (or our open file) is left as it was.
    return ImageOps.exif_transpose(img)


def _has_transparency(img: Image.Image) -> bool:
    if "transparency" in img.info:
        return True
    palette = img.palette if img.mode == "P" else None
    return palette is not None and palette.mode.endswith("A")


def _to_array_friendly_mode(img: Image.Image, source: object) -> Image.Image:
    """Convert PIL modes that numpy cannot take as is to L, LA, RGB or RGBA (8-bit)."""
    mode = img.mode
    if mode in ("L", "RGB"):
        # A colour key (PNG tRNS) is transparency too; PIL turns it into an alpha channel.
        if _has_transparency(img):
            return img.convert("LA" if mode == "L" else "RGBA")
        return img
    if mode in ("LA", "RGBA", "I;16", "I;16L", "I;16B", "I;16N", "I", "F"):
        return img
    if mode == "1":
        return img.convert("L")  # 0/255
    if mode in ("P", "PA"):
        return img.convert("RGBA" if mode == "PA" or _has_transparency(img) else "RGB")
    if mode == "RGBa":
        return img.convert("RGBA")  # undo the premultiplied alpha
    if mode in _PIL_TO_RGB:
        return img.convert("RGB")
    raise ImageReadError(source, f"unsupported PIL image mode {mode!r}")


def _from_array(arr: np.ndarray, source: object) -> tuple[np.ndarray, float]:
    if arr.size == 0:
        raise ImageReadError(source, "empty array")
    if arr.ndim == 3 and arr.shape[2] == 1:
        arr = arr[:, :, 0]
    if not (arr.ndim == 2 or (arr.ndim == 3 and arr.shape[2] in (3, 4))):
        raise ImageReadError(
            source,
            f"unsupported array shape {arr.shape}; expected (H, W), (H, W, 1), "
            "(H, W, 3) or (H, W, 4)",
        )
    kind, size = arr.dtype.kind, arr.dtype.itemsize
    if kind == "b":
        return arr.astype(np.uint8) * np.uint8(255), _U8
    if kind == "u" and size == 1:
        return arr, _U8
    if kind == "u" and size == 2:
        return arr.astype(np.uint16, copy=False), _U16  # native byte order
    if kind in "iu":
        lo, hi = int(arr.min()), int(arr.max())
        if lo >= 0 and hi <= 255:
            return arr.astype(np.uint8), _U8
        if lo >= 0 and hi <= 65535:
            return arr.astype(np.uint16), _U16
        raise ImageReadError(
            source,
            f"{arr.dtype} values must lie in 0..255 or 0..65535; got min {lo}, max {hi}",
        )
    if kind == "f":
        return _float_pixels(arr, source)
    raise ImageReadError(source, f"unsupported array dtype {arr.dtype}")


def _float_pixels(arr: np.ndarray, source: object) -> tuple[np.ndarray, float]:
    """Float pixels as float32 intensities in [0, 1], rescaling (with a warning) if needed."""
    work = arr.astype(np.float64 if arr.dtype.itemsize > 4 else np.float32, copy=False)
    # min and max propagate NaN, so two reductions find NaN, inf and the range at once.
    lo, hi = work.min(), work.max()
    if np.isnan(lo) or np.isnan(hi):
        raise ImageReadError(source, "float pixels contain NaN")
    if not (np.isfinite(lo) and np.isfinite(hi)):
        raise ImageReadError(source, "float pixels contain infinite values")
    if lo >= 0.0 and hi <= 1.0:
        return work.astype(np.float32, copy=False), _F
    if hi > lo:
        logger.warning(
            "float image %s has values in [%g, %g], outside [0, 1]; rescaling it to [0, 1] "
            "by its own min and max",
            _describe(source),
            lo,
            hi,
        )
        rescaled = (work - lo) / (hi - lo)
    else:
        # A constant image has no range to stretch: clip it into [0, 1] instead.
        logger.warning(
            "float image %s is constant at %g, outside [0, 1]; clipping it to [0, 1]",
            _describe(source),
            lo,
        )
        rescaled = work
    return np.clip(rescaled, 0.0, 1.0).astype(np.float32, copy=False), _F


# --------------------------------------------------------------------------- conversions


def _to_mode_and_dtype(pixels: np.ndarray, scale: float, mode: str, dtype: np.dtype) -> np.ndarray:
    """Channels first (fewest samples to convert), then dtype, then gray -> RGB expansion.

    ``pixels`` is (H, W) or (H, W, C) with C in 2 (gray + alpha), 3 or 4, of uint8, uint16 or
    float32 samples whose full scale is ``scale``.
    """
    channels = 1 if pixels.ndim == 2 else pixels.shape[2]
    expand_to = None
    if mode == "gray":
        if channels in (2, 4):
            pixels = _composite_on_white(pixels, scale)
        if pixels.ndim == 3:
            pixels = _luma(pixels)
    elif mode == "rgb":
        if channels in (2, 4):
            pixels = _composite_on_white(pixels, scale)
        if pixels.ndim == 2:
            expand_to = 3
    elif channels == 2:  # "unchanged": keep alpha, but as RGBA (channels are 1, 3 or 4)
        expand_to = 4

    out = _convert_samples(pixels, scale, dtype)

    if expand_to == 3:
        out = np.repeat(out[:, :, None], 3, axis=2)
    elif expand_to == 4:
        rgba = np.empty((*out.shape[:2], 4), dtype=out.dtype)
        rgba[:, :, :3] = out[:, :, :1]
        rgba[:, :, 3] = out[:, :, 1]
        out = rgba
    return out


def _composite_on_white(pixels: np.ndarray, scale: float) -> np.ndarray:
    """Colour (or gray) over a white page: c * a + white * (1 - a), in float32."""
    alpha = pixels[:, :, -1:].astype(np.float32) / np.float32(scale)
    colour = pixels[:, :, :-1].astype(np.float32)
    out = colour * alpha + np.float32(scale) * (np.float32(1.0) - alpha)
    return out[:, :, 0] if out.shape[2] == 1 else out


def _luma(rgb: np.ndarray) -> np.ndarray:
    """ITU-R BT.601 luma in float32, in the scale of the input."""
    # One (N, 3) @ (3,) product is about three times faster than three strided channel sums.
    return rgb.astype(np.float32, copy=False) @ _BT601


def _convert_samples(pixels: np.ndarray, scale: float, dtype: np.dtype) -> np.ndarray:
    """Samples of full scale ``scale`` to ``dtype``: uint8 rounds, float32 divides by scale."""
    if pixels.dtype == np.uint8 and dtype == np.uint8:
        return pixels
    if pixels.dtype == np.float32 and scale == _F:
        # Intensities in [0, 1], possibly the caller's own array: never written to here.
        if dtype == np.float32:
            return pixels
        out = pixels * np.float32(255.0)
    else:
        # uint8/uint16 samples, or float results of compositing or luma (ours to overwrite).
        from_float = pixels.dtype == np.float32
        out = pixels if from_float else pixels.astype(np.float32)
        if dtype == np.float32:
            out /= np.float32(scale)  # correctly rounded v / scale
            # The luma weights sum to 1 only up to rounding: keep [0, 1] exact.
            return np.clip(out, 0.0, 1.0, out=out) if from_float else out
        if scale != _U8:
            # v * 255 / 65535 = v / 257 is never within 1/514 of a tie, far more than float32
            # error, so rounding in float32 is exact (checked for all 65536 values in tests).
            out *= np.float32(255.0 / scale)
    np.rint(out, out=out)
    np.clip(out, 0.0, 255.0, out=out)
    return out.astype(np.uint8)


# --------------------------------------------------------------------------- messages


def _reason(exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _describe(source: object) -> str:
    if isinstance(source, (str, os.PathLike)):
        return repr(os.fspath(source))
    shape = getattr(source, "shape", None)
    return f"<{type(source).__name__} {tuple(shape)}>" if shape is not None else "<image>"

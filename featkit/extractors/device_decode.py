"""``decode="device"``: JPEGs decoded, turned upright, resized and cropped where the
network runs (nvJPEG on a CUDA GPU).

On a GPU the CPU's decoding is what starves the model (an H100 ran a tenth of its speed
end to end, fed by 15 decoding workers). With ``decode="device"`` a data worker only reads
a JPEG's bytes and its header (mode, EXIF orientation): :class:`EncodedJPEG`. The main
process decodes each chunk's JPEGs in one call on the network's device (TorchCodec's
``decode_jpeg`` where it is installed, else torchvision's: nvJPEG on a GPU, libjpeg-turbo
on the CPU), turns them upright as their EXIF orientation says (TorchCodec does it
itself; after torchvision's decoder, featkit does), resizes them with the
weights' interpolation (antialiased, as PIL shrinks) and centre-crops them there: the
same geometry as :class:`~featkit.extractors.backbones.Preprocessing`, other arithmetic,
so rows are close to ``decode="exact"``'s, not equal (the tests hold them to cosine
0.999).

Everything else is prepared on the CPU as with ``decode="reduced"``: PNGs and other
formats, CMYK JPEGs, arrays and PIL images. A JPEG the device cannot decode (truncated,
progressive on some nvJPEG versions) is decoded again on the CPU, which reads what PIL
can and reports what it cannot; the rest of the batch is kept.
"""

from __future__ import annotations

import functools
import io
import os
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from featkit.extractors.backbones import Preprocessing

__all__ = [
    "EncodedJPEG",
    "decode_jpegs",
    "encoded_jpeg",
    "jpeg_backend",
    "resize_crop",
    "stack_on_device",
]

_JPEG_MAGIC = b"\xff\xd8\xff"
_EXIF_ORIENTATION = 0x0112


@dataclass(frozen=True)
class EncodedJPEG:
    """A JPEG's bytes, read by a data worker, and its EXIF orientation (1: upright)."""

    data: bytes
    orientation: int = 1


def encoded_jpeg(source: Any) -> EncodedJPEG | None:
    """``source`` (a path or bytes) as an :class:`EncodedJPEG` when it is an RGB or gray
    JPEG, else None: the caller prepares it on the CPU, which also names any problem."""
    if isinstance(source, (str, os.PathLike)):
        try:
            with open(source, "rb") as fh:
                if fh.read(3) != _JPEG_MAGIC:
                    return None
                data = _JPEG_MAGIC + fh.read()
        except OSError:
            return None
    elif isinstance(source, (bytes, bytearray, memoryview)):
        data = bytes(source)
        if not data.startswith(_JPEG_MAGIC):
            return None
    else:
        return None
    from PIL import Image

    try:
        with Image.open(io.BytesIO(data)) as image:  # the header only: nothing is decoded
            if image.format != "JPEG" or image.mode not in ("RGB", "L"):
                return None
            orientation = image.getexif().get(_EXIF_ORIENTATION, 1)
    except Exception:  # a header PIL cannot parse: the CPU path reports it
        return None
    return EncodedJPEG(data, orientation if orientation in range(1, 9) else 1)


@functools.cache
def jpeg_backend() -> str:
    """ "torchcodec" where TorchCodec is installed (torchvision's decoders are deprecated
    since 0.29), else "torchvision"."""
    try:
        import torchcodec.decoders  # noqa: F401
    except Exception:  # not installed, or built for another torch: torchvision decodes
        return "torchvision"
    return "torchcodec"


def decode_jpegs(images: Sequence[EncodedJPEG], device: Any) -> list[Any | None]:
    """Each JPEG as an upright uint8 (3, H, W) tensor on ``device``, decoded in one call
    (turned as its EXIF orientation says);
    None for the ones the device could not decode (the call is retried image by image to
    find them)."""
    import torch

    if not images:
        return []
    sources = [torch.frombuffer(bytearray(image.data), dtype=torch.uint8) for image in images]
    # TorchCodec turns JPEGs upright itself; torchvision's decoder (on a GPU) does not.
    turned = jpeg_backend() == "torchcodec"
    try:
        decoded = _decode(sources, device)
    except RuntimeError:
        # One bad JPEG fails the whole call: find it, keep the others.
        decoded = []
        for source in sources:
            try:
                decoded.append(_decode([source], device)[0])
            except RuntimeError:
                decoded.append(None)
    return [
        pixels if pixels is None or turned else _upright(pixels, image.orientation)
        for pixels, image in zip(decoded, images, strict=True)
    ]


def _decode(sources: list[Any], device: Any) -> list[Any]:
    if jpeg_backend() == "torchcodec":
        from torchcodec.decoders import decode_jpeg

        return list(decode_jpeg(sources, mode="RGB", device=device))
    from torchvision.io import ImageReadMode, decode_jpeg

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # said once in the docs instead
        return list(decode_jpeg(sources, mode=ImageReadMode.RGB, device=device))


def _upright(pixels: Any, orientation: int) -> Any:
    """``pixels`` (C, H, W) as PIL's ``ImageOps.exif_transpose`` turns them."""
    import torch

    if orientation == 2:  # mirrored
        return pixels.flip(-1)
    if orientation == 3:  # upside down
        return pixels.flip(-1, -2)
    if orientation == 4:
        return pixels.flip(-2)
    if orientation == 5:  # PIL's TRANSPOSE
        return pixels.transpose(-1, -2)
    if orientation == 6:  # PIL's ROTATE_270: a quarter turn clockwise
        return torch.rot90(pixels, -1, dims=(-2, -1))
    if orientation == 7:  # PIL's TRANSVERSE
        return pixels.flip(-1, -2).transpose(-1, -2)
    if orientation == 8:  # PIL's ROTATE_90: a quarter turn anticlockwise
        return torch.rot90(pixels, 1, dims=(-2, -1))
    return pixels


def resize_crop(pixels: Any, prep: Preprocessing) -> Any:
    """An upright uint8 (3, H, W) tensor resized and centre-cropped as ``prep`` does
    (torchvision's ``Resize`` then ``CenterCrop`` rules), as a (crop, crop, 3) uint8
    tensor on its device."""
    from torchvision.transforms import InterpolationMode
    from torchvision.transforms.v2 import functional as F

    height, width = pixels.shape[-2:]
    if prep.crop_mode == "squash":
        size = [prep.resize_size, prep.resize_size]
    else:  # the shorter side to resize_size, the longer one floored
        short, long = min(width, height), max(width, height)
        other = int(prep.resize_size * long / short)
        size = [other, prep.resize_size] if width <= height else [prep.resize_size, other]
    mode = InterpolationMode(prep.interpolation)
    resized = F.resize(pixels, size, interpolation=mode, antialias=True)
    return F.center_crop(resized, [prep.crop_size, prep.crop_size]).permute(1, 2, 0)


def stack_on_device(
    images: Sequence[Any],
    prep: Preprocessing,
    device: Any,
    on_cpu: Callable[[EncodedJPEG], np.ndarray],
) -> Any:
    """The (n, S, S, 3) uint8 batch of ``images`` (:class:`EncodedJPEG` s, decoded here on
    ``device``, and crops prepared on the CPU) on ``device``; a JPEG the device could not
    decode is prepared by ``on_cpu`` (which raises ImageReadError for an unreadable one)."""
    import torch

    jpegs = [i for i, image in enumerate(images) if isinstance(image, EncodedJPEG)]
    crops: list[Any] = list(images)
    for i, pixels in zip(jpegs, decode_jpegs([images[i] for i in jpegs], device), strict=True):
        crops[i] = on_cpu(images[i]) if pixels is None else resize_crop(pixels, prep)
    return torch.stack(
        [
            crop
            if isinstance(crop, torch.Tensor)
            else torch.from_numpy(np.ascontiguousarray(crop)).to(device)
            for crop in crops
        ]
    )

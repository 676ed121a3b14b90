"""Thumbnails for ``report.html``: small images as data URIs, so the page is one file.

An image that cannot be read gives the reason instead of a URI, and the page names it:
a broken image icon says nothing about which image failed or why.
"""

from __future__ import annotations

import base64
import io
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import numpy as np

__all__ = ["THUMB_SIZE", "Thumbnail", "Thumbnails", "sample"]

#: The longest side of a thumbnail, in pixels: enough to recognise a photo's subject.
THUMB_SIZE = 80
#: JPEG quality of photo thumbnails: at 80 px, lower shows blocks, higher only adds bytes.
JPEG_QUALITY = 75

T = TypeVar("T")


@dataclass(frozen=True)
class Thumbnail:
    """A thumbnail's data URI and pixel size, or why there is none (``uri`` is None)."""

    uri: str | None
    width: int = 0
    height: int = 0
    reason: str = ""


class Thumbnails:
    """Thumbnails by image id, made on first use from ``images`` (id -> path or array) and
    kept: an image shown in several galleries is read once."""

    def __init__(self, images: Mapping[str, Any], size: int = THUMB_SIZE) -> None:
        self.images = images
        self.size = size
        self._made: dict[str, Thumbnail] = {}

    def __bool__(self) -> bool:
        return bool(self.images)

    def get(self, image_id: str) -> Thumbnail:
        """The thumbnail of ``image_id`` (made once)."""
        if image_id not in self._made:
            self._made[image_id] = self._make(image_id)
        return self._made[image_id]

    def _make(self, image_id: str) -> Thumbnail:
        if image_id not in self.images:
            return Thumbnail(None, reason="not among this run's images")
        try:
            return make_thumbnail(self.images[image_id], self.size)
        except Exception as error:  # any unreadable image is named, not fatal to the report
            return Thumbnail(None, reason=f"{type(error).__name__}: {error}"[:200])


def make_thumbnail(source: Any, size: int = THUMB_SIZE) -> Thumbnail:
    """A thumbnail of ``source`` (what :func:`featkit.io.read_image` reads), at most ``size``
    pixels a side: images already that small stay as they are, in PNG (lossless; the page
    scales them up), larger ones are shrunk and saved as JPEG."""
    from PIL import Image

    from featkit.io import read_image

    pixels = read_image(source, mode="rgb", min_size=(size, size))
    if pixels.ndim == 3 and (pixels == pixels[..., :1]).all():
        pixels = pixels[..., 0]  # grey in RGB: a third of the bytes
    image = Image.fromarray(np.ascontiguousarray(pixels))
    buffer = io.BytesIO()
    if max(image.size) <= size:
        image.save(buffer, format="PNG", optimize=True)
        mime = "image/png"
    else:
        image.thumbnail((size, size), Image.Resampling.LANCZOS)
        image.save(buffer, format="JPEG", quality=JPEG_QUALITY, optimize=True)
        mime = "image/jpeg"
    encoded = base64.b64encode(buffer.getvalue()).decode("ascii")
    return Thumbnail(f"data:{mime};base64,{encoded}", image.width, image.height)


def sample(items: Sequence[T], limit: int, seed: int = 0) -> list[T]:
    """At most ``limit`` of ``items``, drawn with ``seed``, in their given order."""
    if len(items) <= limit:
        return list(items)
    keep = np.sort(np.random.default_rng(seed).choice(len(items), limit, replace=False))
    return [items[i] for i in keep.tolist()]

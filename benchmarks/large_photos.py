"""Make large test photos: 12 MP JPEGs (4032 x 3024, quality 92) from real photos.

Run: ``python benchmarks/large_photos.py OUT [--n 40] [--size 4032x3024] [--quality 92]``.

Each file is a PACS photo (``pacs150/photo`` under ``$FEATKIT_SHARED_DATA``, else under
``../shared/data``; 227 px; skimage's sample photos when PACS is absent) centre-cropped to
the target's aspect ratio, upscaled with bicubic interpolation, with Gaussian noise (sigma
6 gray levels, seeded) so that it compresses like a camera's file, about 3 MB (a smooth
upscale alone makes a far smaller file, quicker to decode), saved as a baseline JPEG. The
output is a benchmark input only: it is written to the folder you name, never into the
repository.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("FEATKIT_SHARED_DATA", REPO.parent / "shared" / "data"))
PACS_PHOTO = SHARED / "pacs150" / "photo"


def _sources(n: int) -> list[Image.Image]:
    """n RGB photos: PACS photos spread over the classes, else skimage's sample photos."""
    files = sorted(PACS_PHOTO.rglob("*.jpg"))
    if files:
        picked = files[:: max(1, len(files) // n)][:n]
        return [Image.open(p).convert("RGB") for p in picked]
    from skimage import data as skdata

    photos = [skdata.astronaut(), skdata.chelsea(), skdata.coffee(), skdata.rocket()]
    return [Image.fromarray(photos[i % len(photos)]) for i in range(n)]


def _crop_to_aspect(image: Image.Image, width: int, height: int) -> Image.Image:
    w, h = image.size
    if w * height > h * width:  # too wide: keep the middle columns
        keep = round(h * width / height)
        left = (w - keep) // 2
        return image.crop((left, 0, left + keep, h))
    keep = round(w * height / width)
    top = (h - keep) // 2
    return image.crop((0, top, w, top + keep))


class Noise:
    """Seeded Gaussian noise (sigma in gray levels) for frames of one size: drawn once, then
    each photo takes it at another (seeded) offset, which is about 20x faster than drawing
    12 MP x 3 normal samples per photo."""

    def __init__(self, size: tuple[int, int], sigma: float = 6.0, seed: int = 0) -> None:
        width, height = size
        rng = np.random.default_rng(seed)
        frame = np.rint(rng.standard_normal((height, width, 3), dtype=np.float32) * sigma)
        frame = np.clip(frame, -255, 255)
        # Added and subtracted as two uint8 frames, with OpenCV's saturation.
        self.up = np.maximum(frame, 0).astype(np.uint8)
        self.down = np.maximum(-frame, 0).astype(np.uint8)
        self.rng = rng

    def add_to(self, pixels: np.ndarray) -> np.ndarray:
        dy, dx = (int(v) for v in self.rng.integers(0, pixels.shape[:2]))
        up = np.roll(self.up, (dy, dx), axis=(0, 1))
        down = np.roll(self.down, (dy, dx), axis=(0, 1))
        return cv2.subtract(cv2.add(pixels, up), down)


def make_photo(
    source: Image.Image, size: tuple[int, int] = (4032, 3024), noise: Noise | None = None
) -> Image.Image:
    """``source`` cropped to the aspect of ``size`` (width, height), upscaled, with noise."""
    width, height = size
    big = _crop_to_aspect(source.convert("RGB"), width, height).resize(
        (width, height), Image.Resampling.BICUBIC
    )
    pixels = np.asarray(big)
    if noise is not None:
        pixels = noise.add_to(pixels)
    return Image.fromarray(pixels)


def write_photos(
    out: Path,
    n: int = 40,
    size: tuple[int, int] = (4032, 3024),
    quality: int = 92,
    sources: list[Image.Image] | None = None,
) -> list[Path]:
    """Write ``n`` photos as ``out/photo_XXX.jpg`` (from ``sources``, default PACS photos
    spread over the classes); files already there are kept."""
    out.mkdir(parents=True, exist_ok=True)
    paths = [out / f"photo_{i:03d}.jpg" for i in range(n)]
    todo = [i for i, p in enumerate(paths) if not p.exists()]
    if todo:
        sources = sources if sources is not None else _sources(n)
        noise = Noise(size)
        for i in todo:
            photo = make_photo(sources[i % len(sources)], size, noise)
            # Written under a temporary name: an interrupted run leaves no half file.
            partial = paths[i].with_suffix(".part")
            photo.save(partial, "JPEG", quality=quality, subsampling="4:2:0")
            partial.replace(paths[i])
    return paths


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path, help="folder to write the JPEGs to")
    parser.add_argument("--n", type=int, default=40)
    parser.add_argument("--size", default="4032x3024", help="WIDTHxHEIGHT")
    parser.add_argument("--quality", type=int, default=92)
    args = parser.parse_args()
    width, height = (int(v) for v in args.size.lower().split("x"))
    paths = write_photos(args.out, args.n, (width, height), args.quality)
    mb = sum(p.stat().st_size for p in paths) / len(paths) / 1e6
    print(f"{len(paths)} JPEGs of {width} x {height} in {args.out} ({mb:.1f} MB each)")


if __name__ == "__main__":
    main()

"""HOG benchmark: featkit's hog against skimage.feature.hog, same images, one process, one core.

Run: ``python benchmarks/handcrafted_hog.py [--n 200]``. Prints images/s at 64x128 (the
Dalal-Triggs pedestrian window, height x width) and 224x224, gray, with the extractor's
default parameters (9 orientations, 8x8 cells, 2x2 blocks, L2-Hys), and the agreement of the
values with skimage's (max abs difference, lowest cosine) for every block_norm, gray and rgb.
Target: featkit at least 10x skimage's images/s.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
from skimage import data as skdata
from skimage.feature import hog as sk_hog
from threadpoolctl import threadpool_limits

from featkit.extractors.hog import BLOCK_NORMS, HogExtractor, hog
from featkit.io import read_image, resize_image

PACS_PHOTO = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "pacs150" / "photo"
SIZES = ((128, 64), (224, 224))  # (height, width)
PARAMS = {"orientations": 9, "pixels_per_cell": (8, 8), "cells_per_block": (2, 2)}


def _sources(n: int) -> list[np.ndarray]:
    """n real RGB photos as float32 in [0, 1]: PACS photos if present, else skimage's."""
    files = sorted(PACS_PHOTO.rglob("*.jpg"))
    paths = files[:: max(1, len(files) // n)]  # spread over the classes
    if paths:
        return [read_image(p, mode="rgb", dtype=np.float32) for p in paths[:n]]
    photos = [skdata.astronaut(), skdata.chelsea(), skdata.coffee()]
    rng = np.random.default_rng(0)
    out = []
    for i in range(n):
        photo = photos[i % len(photos)]
        r, c = rng.integers(0, 100, size=2)
        out.append((photo[r : r + 280, c : c + 280] / 255).astype(np.float32))
    return out


def _best_times(fns: dict[str, Callable[[], object]], rounds: int = 5) -> dict[str, float]:
    """Best wall time of each function over interleaved rounds (fair under shared load)."""
    best = dict.fromkeys(fns, float("inf"))
    for _ in range(rounds):
        for name, fn in fns.items():
            start = time.perf_counter()
            fn()
            best[name] = min(best[name], time.perf_counter() - start)
    return best


def _cosine(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a, b = a.astype(np.float64), b.astype(np.float64)
    return (a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1) + 1e-300)


def run(n: int = 200) -> None:
    """Print the speed table (gray) and the agreement table (every block_norm, gray and rgb)."""
    sources = _sources(n)
    print(f"featkit hog vs skimage.feature.hog, {len(sources)} real photos, one thread")
    print("| size (h x w) | skimage img/s | featkit batch img/s | ratio | featkit hog() img/s "
          "| ratio | max abs diff |")  # fmt: skip
    print("|---|---|---|---|---|---|---|")
    with threadpool_limits(limits=1):
        previous = cv2.getNumThreads()
        cv2.setNumThreads(1)
        try:
            for size in SIZES:
                gray = [resize_image(read_image(s, mode="gray", dtype=np.float32), size)
                        for s in sources]  # fmt: skip
                extractor = HogExtractor(**PARAMS, size=size)
                ref = np.stack([sk_hog(g, **PARAMS) for g in gray])
                ours = extractor.transform_prepared(gray)
                times = _best_times(
                    {
                        "skimage": lambda g=gray: [sk_hog(x, **PARAMS) for x in g],
                        "batch": lambda g=gray, e=extractor: e.transform_prepared(g),
                        "one": lambda g=gray: [hog(x, **PARAMS) for x in g],
                    }
                )
                t_sk, t_batch, t_one = times["skimage"], times["batch"], times["one"]
                k = len(gray)
                print(
                    f"| {size[0]}x{size[1]} | {k / t_sk:,.0f} | {k / t_batch:,.0f} | "
                    f"{t_sk / t_batch:.1f}x | {k / t_one:,.0f} | {t_sk / t_one:.1f}x | "
                    f"{np.abs(ours - ref).max():.1e} |"
                )
        finally:
            cv2.setNumThreads(previous)

    print("\nagreement with skimage at 224x224 (same float32 arrays)")
    print("| block_norm | color | transform_sqrt | max abs diff | 1 - min cosine |")
    print("|---|---|---|---|---|")
    subset = sources[: min(len(sources), 50)]
    for block_norm in BLOCK_NORMS:
        for color in ("gray", "rgb"):
            sqrt = block_norm in ("L1", "L2")  # exercise both settings across the table
            extractor = HogExtractor(
                **PARAMS, block_norm=block_norm, transform_sqrt=sqrt, color=color, size=(224, 224)
            )
            arrays = [extractor.prepare(s) for s in subset]
            axis = -1 if color == "rgb" else None
            ref = np.stack([
                sk_hog(a, **PARAMS, block_norm=block_norm, transform_sqrt=sqrt, channel_axis=axis)
                for a in arrays
            ])  # fmt: skip
            ours = extractor.transform_prepared(arrays)
            print(
                f"| {block_norm} | {color} | {sqrt} | {np.abs(ours - ref).max():.1e} | "
                f"{1 - _cosine(ours, ref).min():.1e} |"
            )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=200, help="number of photos")
    run(parser.parse_args().n)

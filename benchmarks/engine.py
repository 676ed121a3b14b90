"""Engine benchmark: plain loop vs extract() at 1 and 2 workers, and the cost of a cached re-run.

Run: ``python benchmarks/engine.py [--data ../shared/data/pacs150] [--n 5000]``. Prints
images/s and ratios measured in this one process; record them in docs/benchmarks.md.
Targets: engine overhead at n_jobs=1 under 10% of a plain loop; n_jobs=2 at least 1.6x
n_jobs=1 with a CPU-heavy extractor; a fully cached re-run under 5% of the first run.
"""

from __future__ import annotations

import argparse
import itertools
import os
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
from skimage.feature import hog

import featkit
from featkit.extractors.base import Extractor, InputSpec

DEFAULT_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "pacs150"


class SkimageHog(Extractor):
    """A CPU-heavy extractor for the scaling test: skimage's HOG at 128x128 (about 10 ms)."""

    name = "bench-skimage-hog"

    def input_spec(self) -> InputSpec:
        return InputSpec(color="gray", size=(128, 128))

    def _feature_dim(self) -> int:
        return 8100

    def _transform_one(self, image: np.ndarray) -> np.ndarray:
        return hog(image, orientations=9, pixels_per_cell=(8, 8), cells_per_block=(2, 2))


def timed(fn, repeat: int = 1) -> tuple[float, object]:
    best, result = float("inf"), None
    for _ in range(repeat):
        start = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - start)
    return best, result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--n", type=int, default=5000, help="images (PACS files are cycled)")
    parser.add_argument("--n-heavy", type=int, default=1000, help="images for the CPU-heavy run")
    args = parser.parse_args()

    files = featkit.load_dataset(args.data).items
    paths = list(itertools.islice(itertools.cycle(files), args.n))
    print(
        f"{len(paths)} images from {args.data} ({len(files)} distinct files), "
        f"{os.cpu_count()} cores"
    )
    pixels = featkit.create_extractor("pixels", size=32)

    # Warm the page cache and the loky pool so that no run pays for the other's start-up.
    featkit.extract(pixels, paths[:200], n_jobs=2, progress=False)
    loop_s, loop_X = timed(lambda: np.stack([pixels.transform([p])[0] for p in paths]), 2)
    one_s, one = timed(lambda: featkit.extract(pixels, paths, n_jobs=1, progress=False), 2)
    two_s, two = timed(lambda: featkit.extract(pixels, paths, n_jobs=2, progress=False), 2)
    auto_s, auto = timed(lambda: featkit.extract(pixels, paths, progress=False), 2)
    for label, got in (("n_jobs=1", one.X), ("n_jobs=2", two.X), ("auto", auto.X)):
        bad = np.flatnonzero(np.abs(got - loop_X).max(axis=1))
        assert not len(bad), f"{label} differs from the loop at rows {bad[:5]} of {len(bad)}"

    n = len(paths)
    print("\npixels (size=32): images/s")
    print(f"  plain Python loop      {n / loop_s:9.0f}")
    print(
        f"  extract(n_jobs=1)      {n / one_s:9.0f}   overhead vs loop {one_s / loop_s - 1:+.1%}"
        "  (target < +10%)"
    )
    print(f"  extract(n_jobs=2)      {n / two_s:9.0f}   speed-up vs n_jobs=1 {one_s / two_s:.2f}x")
    workers = auto.provenance["engine"]["n_workers"]
    print(f"  extract(n_jobs=None)   {n / auto_s:9.0f}   auto mode chose {workers} worker(s)")

    heavy = paths[: args.n_heavy]
    extractor = SkimageHog()
    h1_s, h1 = timed(lambda: featkit.extract(extractor, heavy, n_jobs=1, progress=False))
    h2_s, h2 = timed(lambda: featkit.extract(extractor, heavy, n_jobs=2, progress=False))
    assert np.array_equal(h1.X, h2.X)
    print(f"\nCPU-heavy (skimage hog 128x128, {len(heavy)} images): images/s")
    print(f"  extract(n_jobs=1)      {len(heavy) / h1_s:9.1f}")
    print(
        f"  extract(n_jobs=2)      {len(heavy) / h2_s:9.1f}   speed-up {h1_s / h2_s:.2f}x"
        "  (target >= 1.6x)"
    )

    cache = Path(tempfile.mkdtemp(prefix="featkit-bench-cache-"))
    try:
        first_s, _ = timed(
            lambda: featkit.extract(pixels, paths, n_jobs=1, cache_dir=cache, progress=False)
        )
        again_s, again = timed(
            lambda: featkit.extract(pixels, paths, n_jobs=1, cache_dir=cache, progress=False), 2
        )
        assert again.provenance["cache"]["computed_images"] == 0
        assert np.array_equal(again.X, one.X)
        print("\ncache (pixels, n_jobs=1)")
        print(f"  first run with cache   {first_s:8.2f} s   (no cache: {one_s:.2f} s)")
        print(
            f"  fully cached re-run    {again_s:8.3f} s   = {again_s / first_s:.1%} of the first"
            "  (target < 5%)"
        )
    finally:
        shutil.rmtree(cache, ignore_errors=True)


if __name__ == "__main__":
    main()

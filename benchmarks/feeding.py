"""How fast featkit can feed a model, on any machine: the engine with a model that does
nothing.

Run: ``python benchmarks/feeding.py [--n 2000] [--images DIR] [--image-size 224]``.

A batched extractor reads and prepares images exactly as ``cnn`` does (``read_image``,
then the resize and centre crop of its weights to uint8 S x S x 3, in DataLoader workers),
and its "model" returns zeros at once. ``featkit.extract`` runs it on ``n`` image files
(PACS photos by default) with 2, 3 ... data workers up to the number of cores, then with
``n_jobs=1`` (reading in this process: featkit never starts a single data worker). Per
configuration it prints:

- images/s end to end, and images/s per data worker (what one core reads and prepares);
- the main process's CPU time per image, in microseconds, at the margin (the difference
  between a run of n/2 and one of n images): receiving prepared batches from the workers,
  the extractor's batch bookkeeping, assembling rows and the engine's records. With a GPU
  doing the model's work, this is what the main process itself costs: 1e6 / (us per
  image) is the most images/s one process can feed;
- the main process's fixed CPU cost of a run (forking workers, the engine's set-up).

Goal: at most 50 us per image in the main process with workers (one process able to feed
20,000 images/s), so a GPU is limited by decoding, which scales with cores, never by the
main process. No GPU is needed: the model is a no-op.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import numpy as np
from joblib import effective_n_jobs

import featkit
from featkit.extractors.backbones import Preprocessing
from featkit.io import read_image

PACS = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "pacs150"


class NoOpModel(featkit.Extractor):
    """``cnn``'s reading and preparation, and a model that returns zeros."""

    batched = True

    def __init__(self, image_size: int = 224, dim: int = 1280) -> None:
        self.image_size = image_size
        self.dim = dim

    def prepare(self, image: object) -> np.ndarray:
        size = int(self.image_size)
        prep = Preprocessing(crop_size=size, resize_size=round(size * 256 / 224))
        return prep(read_image(image, mode="rgb", dtype=np.uint8))

    def resolved_batch_size(self) -> int:
        return 32  # the GPU default of cnn: the passes the engine cuts chunks for

    def _feature_dim(self) -> int:
        return int(self.dim)

    def _transform(self, images: list[np.ndarray] | np.ndarray) -> np.ndarray:
        return np.zeros((len(images), int(self.dim)), dtype=np.float32)


def _paths(root: Path, n: int) -> list[str]:
    files = sorted(str(p) for p in root.rglob("*") if p.suffix.lower() in (".jpg", ".png"))
    if not files:
        raise SystemExit(f"no images under {root}")
    return (files * (n // len(files) + 1))[:n]


def _run(extractor: NoOpModel, paths: list[str], n_jobs: int) -> dict[str, float]:
    """images/s, and the main process's CPU time: per image at the margin, and fixed."""
    out = {}
    for n in (len(paths) // 2, len(paths)):
        wall, cpu = time.perf_counter(), time.process_time()  # this process, all threads
        fs = featkit.extract(extractor, paths[:n], n_jobs=n_jobs, batch_size=256, progress=False)
        out[n] = (time.perf_counter() - wall, time.process_time() - cpu)
        assert len(fs) == n, fs.failed[:3]
    (half, (_, cpu_h)), (full, (wall_f, cpu_f)) = out.items()
    # The difference between the two runs is the cost of the extra images alone: starting
    # workers (forks, about 30 ms each) and the engine's set-up cancel out.
    per_image = (cpu_f - cpu_h) / (full - half)
    return {
        "workers": fs.provenance["engine"]["n_workers"],
        "ips": full / wall_f,
        "main_us": 1e6 * per_image,
        "fixed_ms": 1e3 * (cpu_f - per_image * full),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=2000)
    parser.add_argument("--images", type=Path, default=PACS)
    parser.add_argument("--image-size", type=int, default=224)
    args = parser.parse_args()
    paths = _paths(args.images, args.n)
    extractor = NoOpModel(args.image_size)
    with_size = read_image(paths[0]).shape
    print(
        f"{len(paths)} files under {args.images} (first {with_size[1]}x{with_size[0]}), "
        f"prepared to {args.image_size}x{args.image_size}; {os.cpu_count()} CPUs"
    )
    _run(extractor, paths[:64], 1)  # imports, page cache
    head = f"{'data workers':>12} {'images/s':>9} {'per worker':>10} {'main us/img':>11}"
    print(f"{head} {'main fixed ms':>13}")
    # n_jobs=k >= 2 starts k data workers; n_jobs=1 reads in this process.
    for n_jobs in range(2, effective_n_jobs(-1) + 1):
        r = _run(extractor, paths, n_jobs)
        per = r["ips"] / max(r["workers"], 1)
        print(
            f"{r['workers']:>12} {r['ips']:>9.0f} {per:>10.0f} {r['main_us']:>11.0f} "
            f"{r['fixed_ms']:>13.0f}"
        )
    r = _run(extractor, paths, 1)
    print(
        f"{'0 (here)':>12} {r['ips']:>9.0f} {r['ips']:>10.0f} {r['main_us']:>11.0f} "
        f"{r['fixed_ms']:>13.0f}"
    )
    print("goal: main us/img <= 50 with workers (20,000 images/s from one process)")


if __name__ == "__main__":
    main()

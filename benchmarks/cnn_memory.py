"""Deep extraction streams: peak memory for 10,000 images vs 1,000 images.

Run: ``python benchmarks/cnn_memory.py [--sizes 1000 10000] [--model efficientnet_lite0]``.

Each size runs ``featkit.extract(cnn, paths)`` in a fresh process on JPEG files of
``../shared/data/pacs150`` (cycled when more are asked for than exist) and reports the
process's peak RSS, the largest child process's (DataLoader workers), and the size of the returned
feature matrix. Target: peak RSS at 10,000 images within 20% of that at 1,000.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

PACS = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "pacs150"


def _child(n: int, model: str) -> None:
    import featkit

    files = sorted(str(p) for p in PACS.rglob("*.jpg"))
    paths = (files * (n // len(files) + 1))[:n]
    extractor = featkit.create_extractor("cnn", model=model)
    start = time.perf_counter()
    fs = featkit.extract(extractor, paths, progress=False)
    seconds = time.perf_counter() - start
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB -> MiB on Linux
    workers = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    print(
        json.dumps(
            {
                "n": n,
                "peak_rss_mib": round(own, 1),
                "worker_peak_rss_mib": round(workers, 1),
                "features_mib": round(fs.X.nbytes / 2**20, 1),
                "seconds": round(seconds, 1),
                "workers": fs.provenance["engine"]["n_workers"],
            }
        )
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 10000])
    parser.add_argument("--model", default="efficientnet_lite0")
    parser.add_argument("--child", type=int, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child is not None:
        _child(args.child, args.model)
        return
    rows = []
    for n in args.sizes:
        cmd = [sys.executable, __file__, "--child", str(n), "--model", args.model]
        done = subprocess.run(cmd, capture_output=True, text=True, check=True)
        rows.append(json.loads(done.stdout.strip().splitlines()[-1]))
    print(
        "| images | peak RSS (MiB) | largest child process (MiB) | features (MiB) | s | workers |"
    )
    print("|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        print(
            f"| {r['n']:,} | {r['peak_rss_mib']:.0f} | {r['worker_peak_rss_mib']:.0f} | "
            f"{r['features_mib']:.1f} | {r['seconds']:.0f} | {r['workers']} |"
        )
    base = rows[0]["peak_rss_mib"]
    for r in rows[1:]:
        print(
            f"peak RSS at {r['n']:,} images: {r['peak_rss_mib'] / base:.3f}x "
            f"that at {rows[0]['n']:,}"
        )


if __name__ == "__main__":
    main()

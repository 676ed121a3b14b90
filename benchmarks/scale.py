"""Out-of-core features: a streaming pass over a ShardStore larger than a memory budget.

Writes a store of float32 rows ``--ratio`` times larger than ``--budget-mb`` (generated
shard by shard, never whole in memory), then, in a fresh interpreter, accumulates its mean
and covariance shard by shard (``featkit.stats.moments``) and reports that process's peak
resident memory (Linux's VmHWM, reset after the imports) against the budget (target,
issue 8: under the budget at 4x its size)::

    python benchmarks/scale.py                       # 512 MB budget, a 2 GB store
    python benchmarks/scale.py --budget-mb 256 --dim 128 --dir /tmp/store
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from featkit.store import ShardStore

STREAM = """
import json, sys, time
from featkit.stats import moments
from featkit.store import ShardStore

def status_mb(field):
    for line in open("/proc/self/status"):
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024  # kB

baseline = status_mb("VmRSS")  # the interpreter, numpy and featkit's imports
with open("/proc/self/clear_refs", "w") as f:
    f.write("5")  # reset the peak (VmHWM) to the current RSS: the pass alone is measured
store = ShardStore(sys.argv[1])
started = time.perf_counter()
running = moments((X for X, _ in store.batches()), store.dim)
print(json.dumps({"baseline_mb": baseline, "peak_mb": status_mb("VmHWM"), "rows": running.n,
                  "seconds": time.perf_counter() - started,
                  "trace": float(running.covariance().trace())}))
"""


def write_store(path: Path, rows: int, dim: int, shard_rows: int) -> ShardStore:
    """A store of ``rows`` correlated float32 rows, written one shard at a time."""
    rng = np.random.default_rng(0)
    mix = rng.normal(size=(dim, dim)).astype(np.float32) / np.sqrt(dim)
    store = ShardStore.create(path, dim=dim)
    for start in range(0, rows, shard_rows):
        n = min(shard_rows, rows - start)
        store.append(rng.standard_normal((n, dim), dtype=np.float32) @ mix)
    return store


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--budget-mb", type=float, default=512)
    parser.add_argument("--ratio", type=float, default=4.0, help="store size / budget")
    parser.add_argument("--dim", type=int, default=128)
    parser.add_argument("--shard-rows", type=int, default=65_536)
    parser.add_argument("--dir", type=Path, default=None, help="where to write the store")
    args = parser.parse_args()

    rows = int(args.ratio * args.budget_mb * 2**20 / (4 * args.dim))
    root = Path(tempfile.mkdtemp(dir=args.dir)) / "store"
    try:
        started = time.perf_counter()
        store = write_store(root, rows, args.dim, args.shard_rows)
        written = time.perf_counter() - started
        size_mb = sum(f.stat().st_size for f in root.iterdir()) / 2**20
        proc = subprocess.run(
            [sys.executable, "-c", STREAM, str(root)], capture_output=True, text=True, check=True
        )
        result = json.loads(proc.stdout)
    finally:
        shutil.rmtree(root.parent, ignore_errors=True)
    print(
        f"store: {len(store):,} x {args.dim} float32 in {store.n_shards} shards, "
        f"{size_mb:,.0f} MB on disk ({size_mb / args.budget_mb:.1f}x the budget), "
        f"written in {written:.1f} s"
    )
    print("\n| streaming pass (moments) | value |\n|---|---:|")
    print(f"| rows read | {result['rows']:,} |")
    print(f"| seconds | {result['seconds']:.1f} |")
    print(f"| throughput | {size_mb / result['seconds']:,.0f} MB/s |")
    print(f"| peak RSS of the process | {result['peak_mb']:,.0f} MB |")
    print(f"| of which the interpreter and imports | {result['baseline_mb']:,.0f} MB |")
    print(f"| added by the pass | {result['peak_mb'] - result['baseline_mb']:,.0f} MB |")
    print(f"| budget | {args.budget_mb:,.0f} MB |")
    ok = result["peak_mb"] < args.budget_mb
    print(f"\npeak RSS under the budget: {'yes' if ok else 'NO'}")


if __name__ == "__main__":
    main()

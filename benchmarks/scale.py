"""Out-of-core features: a streaming pass over a ShardStore larger than a memory budget, and
large FAISS indexes built from a store.

1. Streaming pass: writes a store of float32 rows ``--ratio`` times larger than
   ``--budget-mb`` (generated shard by shard, never whole in memory), then, in a fresh
   interpreter, accumulates its mean and covariance shard by shard (``featkit.stats.moments``)
   and reports that process's peak resident memory (Linux's VmHWM, reset after the imports)
   against the budget (target, issue 8: under the budget at 4x its size).
2. Indexes: a store of ``--index-rows`` x ``--dim`` rows (1M x 128 by default: clustered,
   anisotropic synthetic data) and 1,000 held-out queries from the same distribution; each
   ``--factories`` index is built by ``featkit.build_index`` in a fresh interpreter (trained
   on ``--train-size`` rows, filled shard by shard) and reported with its build time, peak
   RSS, size against the raw rows, recall@10 and queries/s against exact search streamed over
   the shards (the reference, in the same process)::

    python benchmarks/scale.py                       # both parts
    python benchmarks/scale.py --skip-index --budget-mb 256
    python benchmarks/scale.py --skip-stream --factories IVF1024,Flat IVF1024,PQ32 HNSW32
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

# Run first in each measured interpreter, after its imports: from here on VmHWM is the peak
# of the work alone (Linux's clear_refs "5" resets it to the current RSS).
MEASURE = """
def status_mb(field):
    for line in open("/proc/self/status"):
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024  # kB

baseline = status_mb("VmRSS")
with open("/proc/self/clear_refs", "w") as f:
    f.write("5")
"""

STREAM = (
    """
import json, sys, time
from featkit.stats import moments
from featkit.store import ShardStore
"""
    + MEASURE
    + """
store = ShardStore(sys.argv[1])
started = time.perf_counter()
running = moments((X for X, _ in store.batches()), store.dim)
print(json.dumps({"baseline_mb": baseline, "peak_mb": status_mb("VmHWM"), "rows": running.n,
                  "seconds": time.perf_counter() - started,
                  "trace": float(running.covariance().trace())}))
"""
)


BUILD = (
    """
import json, sys
from featkit._faiss import import_faiss
from featkit.index import build_index

store, queries, factory, out, nprobe, ef_search, train_size = sys.argv[1:]
import_faiss()  # imported before the baseline: the build alone is measured
"""
    + MEASURE
    + """
index = build_index(store, factory, out, metric="l2", queries=queries, train_size=int(train_size),
                    nprobe=int(nprobe) if "IVF" in factory else None,
                    ef_search=int(ef_search) if "HNSW" in factory else None, device="cpu")
print(json.dumps({"baseline_mb": baseline, "peak_mb": status_mb("VmHWM"), **index.stats}))
"""
)


def write_clustered_store(
    path: Path, rows: int, dim: int, shard_rows: int, seed: int, clusters: int = 4096
) -> ShardStore:
    """``rows`` float32 rows around ``clusters`` centres with anisotropic noise: data with
    neighbourhood structure (on isotropic noise no index beats a scan)."""
    rng = np.random.default_rng(0)  # the same centres and mixing for rows and queries
    centres = rng.normal(size=(clusters, dim)).astype(np.float32) * 2
    mix = (rng.normal(size=(dim, dim)) / np.sqrt(dim)).astype(np.float32)
    rng = np.random.default_rng(seed)
    store = ShardStore.create(path, dim=dim)
    for start in range(0, rows, shard_rows):
        n = min(shard_rows, rows - start)
        which = rng.integers(0, clusters, n)
        store.append(centres[which] + rng.standard_normal((n, dim), dtype=np.float32) @ mix)
    return store


def bench_indexes(args: argparse.Namespace, root: Path) -> None:
    started = time.perf_counter()
    store = write_clustered_store(root / "rows", args.index_rows, args.dim, args.shard_rows, 1)
    write_clustered_store(root / "queries", 1000, args.dim, 1000, 2)
    raw_mb = len(store) * args.dim * 4 / 2**20
    print(
        f"\nindex store: {len(store):,} x {args.dim} float32 ({raw_mb:,.0f} MB raw) in "
        f"{store.n_shards} shards, written in {time.perf_counter() - started:.1f} s; "
        f"1,000 held-out queries; train on {args.train_size:,} rows; nprobe={args.nprobe}, "
        f"ef_search={args.ef_search}"
    )
    print(
        "\n| index | build s (train + add) | peak RSS MB (build alone) | index MB | of raw "
        "| recall@10 | queries/s | exact queries/s | speed-up |"
        "\n|---|---:|---:|---:|---:|---:|---:|---:|---:|"
    )
    for factory in args.factories:
        out = root / f"{factory.replace(',', '_')}.faiss"
        command = [sys.executable, "-c", BUILD, str(root / "rows"), str(root / "queries")]
        command += [factory, str(out), str(args.nprobe), str(args.ef_search), str(args.train_size)]
        proc = subprocess.run(command, capture_output=True, text=True)
        if proc.returncode:
            print(f"| {factory} | failed: {proc.stderr.strip().splitlines()[-1]} |")
            continue
        r = json.loads(proc.stdout)
        size_mb = r["index_bytes"] / 2**20
        build = f"{r['build_seconds']:.1f} ({r.get('train_seconds', 0):.1f} + "
        build += f"{r.get('add_seconds', 0):.1f})"
        memory = f"{r['peak_mb']:,.0f} ({r['peak_mb'] - r['baseline_mb']:,.0f})"
        recall = r.get("recall")
        if recall is None:  # an exact index: the reference itself
            search = "1 (exact) | — | — | —"
        else:
            qps, exact = recall["queries_per_second"], recall["exact_queries_per_second"]
            search = f"{recall['recall_at_k']:.3f} | {qps:,.0f} | {exact:,.0f} | {qps / exact:.1f}x"
        size = f"{size_mb:,.1f} | {size_mb / raw_mb:.3f}"
        print(f"| {factory} | {build} | {memory} | {size} | {search} |")
        out.unlink(missing_ok=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--budget-mb", type=float, default=512)
    parser.add_argument("--ratio", type=float, default=4.0, help="store size / budget")
    parser.add_argument("--dim", type=int, default=128)
    parser.add_argument("--shard-rows", type=int, default=65_536)
    parser.add_argument("--dir", type=Path, default=None, help="where to write the store")
    parser.add_argument("--skip-stream", action="store_true", help="no streaming pass")
    parser.add_argument("--skip-index", action="store_true", help="no index benchmark")
    parser.add_argument("--index-rows", type=int, default=1_000_000)
    parser.add_argument("--train-size", type=int, default=100_000)
    parser.add_argument("--nprobe", type=int, default=16, help="IVF lists visited per query")
    parser.add_argument("--ef-search", type=int, default=64, help="HNSW search depth")
    parser.add_argument(
        "--factories",
        nargs="+",
        default=[
            "Flat",
            "IVF1024,Flat",
            "IVF4096,Flat",
            "IVF1024,PQ64",
            "IVF1024,PQ32",
            "OPQ32,IVF1024,PQ32",
            "IVF1024,PQ16",
            "HNSW32",
        ],
    )
    args = parser.parse_args()
    if not args.skip_stream:
        bench_stream(args)
    if not args.skip_index:
        root = Path(tempfile.mkdtemp(dir=args.dir))
        try:
            bench_indexes(args, root)
        finally:
            shutil.rmtree(root, ignore_errors=True)


def bench_stream(args: argparse.Namespace) -> None:
    rows = int(args.ratio * args.budget_mb * 2**20 / (4 * args.dim))
    root = Path(tempfile.mkdtemp(dir=args.dir)) / "store"
    try:
        started = time.perf_counter()
        store = write_clustered_store(root, rows, args.dim, args.shard_rows, seed=1)
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

"""k-NN and index speed: featkit's FaissKNNClassifier vs scikit-learn brute force vs bare faiss.

Measures, in one run:
1. k-NN classification (k=10, L2, uniform votes) of 10,000 queries against 60,000 training
   rows of 1,280-d float32 class-structured features (100 Gaussian classes): fit + predict
   wall time of ``FaissKNNClassifier``, ``KNeighborsClassifier(algorithm="brute")`` and bare
   faiss (``IndexFlatL2`` add + search + a numpy vote); best of ``--repeats`` runs each.
2. The OpenBLAS kernel of faiss's bundled OpenBLAS: the same bare faiss search (d=1280 and
   d=128) in subprocesses, with the kernel OpenBLAS detects (plain ``import faiss``), with
   featkit's choice (``import_faiss``) and with forced kernels (``OPENBLAS_CORETYPE``),
   Prescott being what OpenBLAS 0.3.15 falls back to on CPUs it does not know.
3. An IVF index (``IVF1024,Flat``) of 1,000,000 x 128 vectors, well clustered (1,000
   clusters) and nearly structureless (10,000): build time, and for several nprobe values
   recall@10 against exact search and the speed-up over it.

Run: ``python benchmarks/knn.py`` (heavy: about 5 minutes on 2 cores and 3 GB of memory),
``--quick`` for a small version, ``--skip-knn`` / ``--skip-kernels`` / ``--skip-ivf`` to
leave parts out, ``--threads 1`` for single-thread numbers (steadier on a busy machine).
Timings are wall-clock with every core in use: close other work while it runs (faiss's
OpenMP threads slow down a lot when another process takes a core).
Targets: featkit at least 2.5x faster than scikit-learn, and within 1.25x of bare faiss.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from functools import partial
from typing import Any

import numpy as np

SIZES = {
    "full": {"n_train": 60_000, "n_query": 10_000, "dim": 1280, "ivf_n": 1_000_000},
    "quick": {"n_train": 12_000, "n_query": 2_000, "dim": 1280, "ivf_n": 100_000},
}
K = 10
N_CLASSES = 100


def class_data(n_train: int, n_query: int, dim: int, seed: int = 0) -> tuple[np.ndarray, ...]:
    """Rows of 100 Gaussian classes (centre spread 1, noise 4.5: k-NN accuracy below 1)."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((N_CLASSES, dim), dtype=np.float32)
    y = rng.integers(0, N_CLASSES, n_train + n_query)
    X = rng.standard_normal((len(y), dim), dtype=np.float32)
    X *= 4.5
    X += centres[y]
    return X[:n_train], y[:n_train], X[n_train:], y[n_train:]


def clustered(
    n: int, n_query: int, n_centres: int, dim: int = 128, seed: int = 1
) -> tuple[np.ndarray, ...]:
    """Vectors around ``n_centres`` Gaussian centres (spread 1, noise 1), and queries.

    1,000 centres: well clustered, an IVF index's lists follow the clusters (easy);
    10,000 centres: close to structureless Gaussian data (hard, the worst case for IVF).
    """
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((n_centres, dim), dtype=np.float32)
    out = []
    for size in (n, n_query):
        X = rng.standard_normal((size, dim), dtype=np.float32)
        X += centres[rng.integers(0, n_centres, size)]
        out.append(X)
    return out[0], out[1]


def vote(labels: np.ndarray) -> np.ndarray:
    """Majority class of each row of neighbour labels (ties: smallest label)."""
    counts = np.zeros((len(labels), labels.max() + 1), np.int64)
    np.add.at(counts, (np.arange(len(labels))[:, None], labels), 1)
    return counts.argmax(axis=1)


def timed(fn: Any) -> tuple[float, Any]:
    start = time.perf_counter()
    out = fn()
    return time.perf_counter() - start, out


# -- 1. featkit vs scikit-learn vs bare faiss --------------------------------------------------
def knn_comparison(size: dict[str, int], repeats: int) -> dict[str, Any]:
    from sklearn.neighbors import KNeighborsClassifier

    from featkit._faiss import faiss_blas_info, import_faiss
    from featkit.classify import FaissKNNClassifier

    faiss = import_faiss()
    Xtr, ytr, Xte, yte = class_data(size["n_train"], size["n_query"], size["dim"])
    print(
        f"\n1. k-NN: {len(Xtr):,} train x {len(Xte):,} queries x {Xtr.shape[1]:,} float32, "
        f"k={K}, L2, uniform votes; best of {repeats} (fit + predict, wall clock)"
    )
    print(f"   faiss's OpenBLAS: {faiss_blas_info().get('reason', '?')}")

    def bare() -> np.ndarray:
        index = faiss.IndexFlatL2(Xtr.shape[1])
        index.add(Xtr)
        _, rows = index.search(Xte, K)
        return vote(ytr[rows])

    def ours() -> np.ndarray:
        return FaissKNNClassifier(K, metric="l2").fit(Xtr, ytr).predict(Xte)

    def sklearn() -> np.ndarray:
        clf = KNeighborsClassifier(K, algorithm="brute", metric="euclidean")
        return clf.fit(Xtr, ytr).predict(Xte)

    runs: dict[str, list[float]] = {"bare faiss": [], "featkit": [], "scikit-learn": []}
    preds = {}
    for _ in range(repeats):  # interleaved, so slow spells hit every method alike
        for name, fn in (("bare faiss", bare), ("featkit", ours), ("scikit-learn", sklearn)):
            seconds, preds[name] = timed(fn)
            runs[name].append(seconds)
    best = {name: min(times) for name, times in runs.items()}
    print(f"   {'method':<14} {'seconds':>8} {'runs':>18} {'accuracy':>9} {'same as sk':>11}")
    for name, seconds in best.items():
        acc = (preds[name] == yte).mean()
        same = (preds[name] == preds["scikit-learn"]).mean()
        times = " ".join(f"{t:.1f}" for t in runs[name])
        print(f"   {name:<14} {seconds:8.2f} {times:>18} {acc:9.4f} {same:11.4f}")
    vs_sklearn = best["scikit-learn"] / best["featkit"]
    vs_faiss = best["featkit"] / best["bare faiss"]
    print(
        f"   featkit vs scikit-learn: {vs_sklearn:.2f}x faster (target >= 2.5x) "
        f"{'PASS' if vs_sklearn >= 2.5 else 'MISS'}"
    )
    print(
        f"   featkit / bare faiss:    {vs_faiss:.2f}x the time (target <= 1.25x) "
        f"{'PASS' if vs_faiss <= 1.25 else 'MISS'}"
    )
    return {"best": best, "runs": runs}


# -- 2. the OpenBLAS kernel, in subprocesses -----------------------------------------------------
def kernel_child(mode: str, size: dict[str, int]) -> None:
    """Bare faiss search at d=1280 and d=128 under one kernel setting; prints JSON."""
    if mode == "featkit":
        from featkit._faiss import import_faiss

        faiss = import_faiss()
    else:
        import faiss
    from threadpoolctl import threadpool_info

    arch = next(
        (
            lib.get("architecture")
            for lib in threadpool_info()
            if lib["internal_api"] == "openblas" and "faiss" in lib["filepath"]
        ),
        None,
    )
    out: dict[str, Any] = {"arch": arch}
    for dim in (1280, 128):
        Xtr, _, Xte, _ = class_data(size["n_train"], size["n_query"], dim)
        index = faiss.IndexFlatL2(dim)
        index.add(Xtr)
        out[f"d{dim}"] = min(timed(partial(index.search, Xte, K))[0] for _ in range(2))
    print(json.dumps(out))


def kernel_effect(size: dict[str, int]) -> dict[str, Any]:
    from featkit._faiss import REQUIRED_FLAGS, cpu_flags_and_vendor

    flags, _ = cpu_flags_and_vendor()
    forced = [k for k in ("SkylakeX", "Haswell") if REQUIRED_FLAGS[k] <= flags] + ["Prescott"]
    print(
        f"\n2. faiss's OpenBLAS kernel: bare IndexFlatL2 search of {size['n_query']:,} queries "
        f"in {size['n_train']:,} rows, k={K}, subprocesses, best of 2"
    )
    print(f"   {'setting':<34} {'kernel':<10} {'d=1280 s':>9} {'d=128 s':>8}")
    settings = [("detected (plain import faiss)", "plain", {})]
    settings.append(("featkit import_faiss (auto)", "featkit", {}))
    settings += [(f"OPENBLAS_CORETYPE={k}", "plain", {"OPENBLAS_CORETYPE": k}) for k in forced]
    results = {}
    for label, mode, env_vars in settings:
        env = {
            k: v
            for k, v in os.environ.items()
            if k not in ("OPENBLAS_CORETYPE", "FEATKIT_OPENBLAS_CORETYPE")
        }
        env.update(env_vars)
        cmd = [sys.executable, __file__, "--child", mode, "--size", json.dumps(size)]
        run = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False)
        if run.returncode != 0:
            print(f"   {label:<34} failed: {run.stderr.strip()[-300:]}")
            continue
        res = json.loads(run.stdout.strip().splitlines()[-1])
        results[label] = res
        print(f"   {label:<34} {res['arch']!s:<10} {res['d1280']:9.2f} {res['d128']:8.2f}")
    return results


def sklearn_d128(size: dict[str, int]) -> float:
    from sklearn.neighbors import KNeighborsClassifier

    Xtr, ytr, Xte, _ = class_data(size["n_train"], size["n_query"], 128)
    clf = KNeighborsClassifier(K, algorithm="brute").fit(Xtr, ytr)
    seconds = min(timed(lambda: clf.kneighbors(Xte))[0] for _ in range(2))
    print(f"   (scikit-learn brute kneighbors at d=128 for comparison: {seconds:.2f} s)")
    return seconds


# -- 3. IVF at 1M x 128 --------------------------------------------------------------------------
def ivf(size: dict[str, int]) -> dict[str, Any]:
    from featkit.index import FeatureIndex, recall_at_k

    n, n_query = size["ivf_n"], 5_000 if size["ivf_n"] >= 1_000_000 else 1_000
    nlist = 1024 if n >= 1_000_000 else 256
    print(
        f"\n3. IVF{nlist},Flat vs exact search (Flat): {n:,} x 128 float32, {n_query:,} "
        f"queries, k={K}, L2; speed-up = exact search time / IVF search time"
    )
    results = {}
    for n_centres in (1_000, 10_000):
        X, Q = clustered(n, n_query, n_centres)
        exact = FeatureIndex(128, "Flat", "l2", device="cpu").add(X)
        exact_s, (_, truth) = timed(partial(exact.search, Q, K))
        del exact  # its memory, before the IVF index is built
        approx = FeatureIndex(128, f"IVF{nlist},Flat", "l2", device="cpu").add(X)
        print(
            f"   data: {n_centres:,} Gaussian clusters. Flat search {exact_s:.2f} s "
            f"({n_query / exact_s:,.0f} q/s); IVF train {approx.stats['train_seconds']:.1f} s "
            f"+ add {approx.stats['add_seconds']:.1f} s"
        )
        print(
            f"   {'nprobe':>6} {'search s':>9} {'queries/s':>10} {'recall@10':>10} {'speed-up':>9}"
        )
        rows = []
        for nprobe in (1, 4, 16, 64):
            approx.nprobe = nprobe
            seconds, (_, found) = timed(partial(approx.search, Q, K))
            recall = recall_at_k(found, truth)
            rows.append({"nprobe": nprobe, "seconds": seconds, "recall": recall})
            print(
                f"   {nprobe:>6} {seconds:9.3f} {n_query / seconds:10,.0f} {recall:10.4f} "
                f"{exact_s / seconds:8.1f}x"
            )
        results[n_centres] = {"exact_seconds": exact_s, "rows": rows}
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes (a minute)")
    parser.add_argument("--repeats", type=int, default=2, help="runs of each k-NN method")
    parser.add_argument("--skip-ivf", action="store_true")
    parser.add_argument("--skip-kernels", action="store_true")
    parser.add_argument("--skip-knn", action="store_true")
    parser.add_argument(
        "--threads", type=int, default=None, help="limit BLAS and OpenMP threads (default: all)"
    )
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--size", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        kernel_child(args.child, json.loads(args.size))
        return
    size = SIZES["quick" if args.quick else "full"]
    import sklearn

    from featkit._faiss import import_faiss

    faiss = import_faiss()  # featkit's import first: it may choose the OpenBLAS kernel
    print(
        f"featkit k-NN benchmark ({'quick' if args.quick else 'full'}): {os.cpu_count()} CPUs, "
        f"faiss {faiss.__version__}, scikit-learn {sklearn.__version__}, numpy {np.__version__}"
    )
    print(f"load average at start: {os.getloadavg()[0]:.2f} (other work disturbs the timings)")
    if args.threads:
        from threadpoolctl import threadpool_limits

        threadpool_limits(args.threads)  # BLAS and OpenMP (faiss's and scikit-learn's)
        print(f"threads limited to {args.threads}")
    if not args.skip_knn:
        knn_comparison(size, args.repeats)
    if not args.skip_kernels:
        kernel_effect(size)
        sklearn_d128(size)
    if not args.skip_ivf:
        ivf(size)
    print(f"\nload average at the end: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()

"""A linear SVM on features far wider than the training set: Fisher vectors of the published
recipe (327,680-d) on Caltech-101's protocol (30 training images per class, 102 classes).

Seeded synthetic rows of that shape (weak class means plus noise, L2-normalised like Fisher
vectors): the question is time and memory, which do not depend on the values. Each fit runs
in a child process of its own, which reports its wall time and peak resident memory above
the memory it held once its data was made and the libraries loaded (``ru_maxrss``):

- ``featkit``: the ``svm`` classifier preset (``featkit compare -c svm``): standardised
  features, C chosen on a validation split of the training rows (a warm-started path),
  :class:`~featkit.classify.LinearProbe`'s squared hinge solved over the span of the rows
  (``gram="auto"``), then the refit on all rows and the test predictions;
- ``linearsvc``: scikit-learn's ``LinearSVC`` (liblinear, the same loss, C=1) on the same
  standardised rows, one fit, which is what a user reaching for scikit-learn runs;
- ``featkit-primal``: the preset with ``gram=False`` (L-BFGS over the k x d weights), at
  the reference's size only.

The reference cannot run at Caltech-101's size here (its float64 copy and liblinear's
(index, value) pairs need some 24 GB for 3,060 x 327,680), so both run at a size it fits
(``--ref-classes``, 30 rows each), and ``featkit`` also at the full size. Printed: seconds,
peak extra memory, bytes per feature value of the training set, test accuracy, and the
ratios featkit / linearsvc at the shared size.

Run: ``python benchmarks/wide_svm.py [--dim 327680] [--classes 102] [--ref-classes 10]``.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import resource
import time
from typing import Any

import numpy as np

TRAIN_PER_CLASS = 30
TEST_PER_CLASS = 20
SIGNAL = 0.03


def make_data(classes: int, dim: int, seed: int = 0) -> tuple[np.ndarray, ...]:
    """Train and test rows: a weak class mean plus noise, rows L2-normalised, float32."""
    rng = np.random.default_rng(seed)
    # weak enough that the classes are not separable at a glance in 327,680 dimensions
    means = rng.standard_normal((classes, dim), dtype=np.float32) * SIGNAL

    def rows(per_class: int) -> tuple[np.ndarray, np.ndarray]:
        y = np.repeat(np.arange(classes), per_class)
        X = np.empty((len(y), dim), dtype=np.float32)
        for start in range(0, len(y), 256):  # without a float64 or second full copy
            block = rng.standard_normal((min(256, len(y) - start), dim), dtype=np.float32)
            block += means[y[start : start + 256]]
            block /= np.linalg.norm(block, axis=1, keepdims=True)
            X[start : start + len(block)] = block
        return X, y

    X_train, y_train = rows(TRAIN_PER_CLASS)
    X_test, y_test = rows(TEST_PER_CLASS)
    return X_train, y_train, X_test, y_test


def peak_rss() -> int:
    """Peak resident memory of this process so far, in bytes (Linux: ru_maxrss in KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def run_one(method: str, classes: int, dim: int, queue: Any) -> None:
    """In a child: make the data, fit ``method``, report time, memory and accuracy."""
    X_train, y_train, X_test, y_test = make_data(classes, dim)
    import sklearn.svm  # noqa: F401  libraries loaded first: their memory is not the fit's
    import torch  # noqa: F401

    import featkit.classify  # noqa: F401

    before = peak_rss()
    start = time.perf_counter()
    if method == "linearsvc":
        from sklearn.pipeline import make_pipeline
        from sklearn.preprocessing import StandardScaler
        from sklearn.svm import LinearSVC

        model = make_pipeline(StandardScaler(), LinearSVC(C=1.0, random_state=0))
        model.fit(X_train, y_train)
        chosen = {"C": 1.0}
    else:
        from featkit.classify.presets import make_classifier

        model = make_classifier("svm", seed=0)
        if method == "featkit-primal":
            model.estimator.set_params(gram=False)
        model.fit(X_train, y_train)
        chosen = model.best_params_
    fit_s = time.perf_counter() - start
    accuracy = float(model.score(X_test, y_test))
    queue.put(
        {
            "method": method,
            "rows": len(y_train),
            "classes": classes,
            "dim": dim,
            "fit_s": round(fit_s, 1),
            "extra_gb": round((peak_rss() - before) / 1e9, 2),
            "train_gb": round(X_train.nbytes / 1e9, 2),
            "accuracy": round(accuracy, 4),
            "chosen": chosen,
        }
    )


def measure(method: str, classes: int, dim: int) -> dict[str, Any]:
    """``run_one`` in a fresh process, so each peak is its own."""
    context = multiprocessing.get_context("spawn")
    queue = context.Queue()
    child = context.Process(target=run_one, args=(method, classes, dim, queue))
    child.start()
    child.join()
    if child.exitcode != 0:
        return {"method": method, "classes": classes, "failed": f"exit code {child.exitcode}"}
    result = queue.get()
    result["bytes_per_value"] = round(result["extra_gb"] * 1e9 / (result["rows"] * dim), 1)
    print(json.dumps(result), flush=True)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dim", type=int, default=327_680)
    parser.add_argument("--classes", type=int, default=102)
    parser.add_argument("--ref-classes", type=int, default=10)
    parser.add_argument("--skip-full", action="store_true", help="only the shared size")
    args = parser.parse_args()
    shared = [measure(m, args.ref_classes, args.dim) for m in ("linearsvc", "featkit")]
    shared.append(measure("featkit-primal", args.ref_classes, args.dim))
    full = [] if args.skip_full else [measure("featkit", args.classes, args.dim)]
    print(f"\n{'method':<16} {'rows':>6} {'fit s':>8} {'extra GB':>9} {'B/value':>8} accuracy")
    for r in shared + full:
        if "failed" in r:
            print(f"{r['method']:<16} {r['classes'] * TRAIN_PER_CLASS:>6} {r['failed']}")
            continue
        print(
            f"{r['method']:<16} {r['rows']:>6} {r['fit_s']:>8.1f} {r['extra_gb']:>9.2f} "
            f"{r['bytes_per_value']:>8.1f} {r['accuracy']:.4f}"
        )
    ref, ours = shared[0], shared[1]
    if "failed" not in ref and "failed" not in ours:
        print(
            f"\nfeatkit / linearsvc at {ours['rows']} rows: time {ours['fit_s'] / ref['fit_s']:.2f}"
            f", memory {ours['extra_gb'] / ref['extra_gb']:.2f}"
        )


if __name__ == "__main__":
    main()

"""Accuracy of featkit's default deep extractor (``cnn``: EfficientNet-Lite0, pooled
1280-d ImageNet embedding) on real data, next to ``handcrafted_accuracy.py``.

1. PACS photo domain (``../shared/data/pacs150``), the same 5-fold stratified splits as
   ``handcrafted_accuracy.py``: features extracted once, then (a) the same standardised
   linear SVM (C by inner 3-fold CV) and (b) standardised logistic regression (C by inner
   3-fold CV). Also the effect of precision: fp32 vs bf16 embeddings (cosine similarity
   per image) and the linear SVM's accuracy with each, on the same folds.
2. Fashion-MNIST (official split), a stratified seeded subset (5,000 train / 2,000 test by
   default): ``cnn`` at its own 224 input and at ``image_size=64``, each + linear SVM
   (C in {0.001, 0.01, 0.1} as in the handcrafted Fashion run, dual solver) and logistic
   regression, C by 3-fold CV on the training subset. The 28x28 gray images are made RGB
   and upsampled by the extractor's own preprocessing.

Throughput is the images/s of ``featkit.extract`` computing the features (no cache), with
the network already loaded and warmed up on a few images of the same size and precision.

Run: ``python benchmarks/cnn_accuracy.py [--skip-fashion] [--skip-pacs] [--n-train N]
[--n-test N]`` (about 8 minutes on 2 cores). Reference points from
``handcrafted_accuracy.py``: PACS photo, best 0.689 (``dsift-fisher``); Fashion-MNIST,
``hog`` + linear SVM 0.885, trained on all 60,000 images (here 5,000).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.base import clone
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GridSearchCV, StratifiedKFold, train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

import featkit

# The PACS path and the linear SVM come from the handcrafted benchmark, so that both
# scripts use one protocol.
sys.path.insert(0, str(Path(__file__).resolve().parent))
from handcrafted_accuracy import PACS, linear_svm

WARMUP = 64  # images run through a new extractor config before timing (model load, kernels)


def logistic_regression(cs: tuple[float, ...] = (0.001, 0.01, 0.1, 1.0)) -> GridSearchCV:
    """Standardised multinomial logistic regression, C by inner 3-fold CV."""
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=5000))
    return GridSearchCV(model, {"logisticregression__C": list(cs)}, cv=3, n_jobs=1)


CLASSIFIERS = {"linear SVM": linear_svm, "logistic regression": logistic_regression}


def fashion_svm() -> GridSearchCV:
    """linear_svm() on Fashion-MNIST: the handcrafted benchmark's Fashion grid, dual solver.

    With more samples than features, LinearSVC's dual="auto" picks liblinear's primal
    solver, which took 13 s (C=0.001) to 170 s (C=0.1) per fit on 3,333 x 1280 CNN features
    here; the dual solver, same objective and same accuracies, took 4 s to 16 s.
    """
    return linear_svm((0.001, 0.01, 0.1)).set_params(estimator__linearsvc__dual=True)


def warm_up(extractor: Any, data: Any) -> None:
    """Load the network and build its kernels for this input size and precision (untimed)."""
    featkit.extract(extractor, data.subset(np.arange(min(WARMUP, len(data)))), progress=False)


def timed_extract(extractor: Any, data: Any) -> tuple[Any, float]:
    """Features of ``data`` (computed: no cache) and the seconds that took."""
    start = time.perf_counter()
    features = featkit.extract(extractor, data, progress=False)
    seconds = time.perf_counter() - start
    if features.failed:
        raise RuntimeError(f"{len(features.failed)} images failed: {features.failed[:3]}")
    return features, seconds


def fit_score(make: Any, train: Any, test: Any) -> tuple[float, Any, int]:
    """Test accuracy, chosen C and convergence warnings of one classifier."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ConvergenceWarning)
        search = clone(make()).fit(train.X, train.y)
    n_warn = sum(issubclass(w.category, ConvergenceWarning) for w in caught)
    best_c = next(iter(search.best_params_.values()))
    return search.score(test.X, test.y), best_c, n_warn


def pacs_photo(folds: int = 5) -> None:
    data = featkit.load_dataset(PACS, domain="photo")
    cv = StratifiedKFold(n_splits=folds, shuffle=True, random_state=0)
    splits = list(cv.split(np.zeros(len(data)), data.labels))
    default = featkit.create_extractor("cnn")
    precision = default.resolved_precision()
    print(
        f"\nPACS photo ({len(data)} images, 7 classes), {folds}-fold, cnn (efficientnet_lite0 "
        f"pooled, precision auto -> {precision}), features extracted once:"
    )
    warm_up(default, data)
    features, seconds = timed_extract(default, data)
    rate = len(data) / seconds
    print(f"  extraction: {rate:.1f} images/s ({features.dim}-d, computed, no cache)")
    print(f"{'classifier':<22} {'accuracy':>19}  {'C per fold':<32} {'conv. warnings':>14}")
    svm_scores: list[float] = []
    for label, make in CLASSIFIERS.items():
        scores, cs, n_warn = [], [], 0
        for train_idx, test_idx in splits:
            acc, c, w = fit_score(make, features.subset(train_idx), features.subset(test_idx))
            scores.append(acc)
            cs.append(c)
            n_warn += w
        if label == "linear SVM":
            svm_scores = scores
        cs_text = ", ".join(f"{c:g}" for c in cs)
        acc = f"{np.mean(scores):>9.4f} +- {np.std(scores):.4f}"
        print(f"{label:<22} {acc}  {cs_text:<32} {n_warn:>14}")

    # Precision: fp32 against bf16 on the same images and folds. The default run is reused
    # for the precision it resolved to (same config, so the same features).
    runs = {precision: (features, rate, svm_scores)}
    for name in ("fp32", "bf16"):
        if name in runs:
            continue
        extractor = featkit.create_extractor("cnn", precision=name)
        warm_up(extractor, data)
        feats, seconds = timed_extract(extractor, data)
        r = len(data) / seconds
        scores = [fit_score(linear_svm, feats.subset(tr), feats.subset(te))[0] for tr, te in splits]
        runs[name] = (feats, r, scores)
    a, b = runs["fp32"][0], runs["bf16"][0]
    if not np.array_equal(a.ids, b.ids):
        raise RuntimeError("fp32 and bf16 runs returned images in different orders")
    cos = np.sum(a.X * b.X, axis=1) / (np.linalg.norm(a.X, axis=1) * np.linalg.norm(b.X, axis=1))
    print(f"\nPACS photo, precision (cnn, same {folds} folds, linear SVM):")
    print(f"{'precision':<10} {'extract img/s':>14} {'linear SVM accuracy':>22}")
    for name in ("fp32", "bf16"):
        _, r, scores = runs[name]
        print(f"{name:<10} {r:>14.1f} {np.mean(scores):>13.4f} +- {np.std(scores):.4f}")
    print(
        f"cosine(fp32, bf16) per image: mean {cos.mean():.5f}, min {cos.min():.5f} "
        f"(1 - mean = {1 - cos.mean():.1e})"
    )


def stratified_subset(data: Any, n: int, seed: int) -> Any:
    """A stratified random ``n`` images of ``data`` (all of them when n >= len)."""
    if n >= len(data):
        return data
    idx = np.arange(len(data))
    part, _ = train_test_split(idx, train_size=n, stratify=data.labels, random_state=seed)
    return data.subset(np.sort(part))


def fashion_mnist(n_train: int, n_test: int, seed: int = 0) -> None:
    data = featkit.load_dataset("fashion-mnist", download=False)
    train = stratified_subset(data.select(split="train"), n_train, seed)
    test = stratified_subset(data.select(split="test"), n_test, seed)
    print(
        f"\nFashion-MNIST, stratified subset of the official split ({len(train)} train / "
        f"{len(test)} test, seed {seed}), cnn (precision "
        f"{featkit.create_extractor('cnn').resolved_precision()}):"
    )
    print(
        f"{'input size':<14} {'extract img/s':>14} {'linear SVM':>11} {'(C)':>7} "
        f"{'logistic reg.':>14} {'(C)':>7}"
    )
    for size in (None, 64):
        extractor = featkit.create_extractor("cnn", image_size=size)
        crop = extractor.preprocessing().crop_size
        warm_up(extractor, train)
        feats_tr, s_tr = timed_extract(extractor, train)
        feats_te, s_te = timed_extract(extractor, test)
        rate = (len(train) + len(test)) / (s_tr + s_te)
        results = [
            fit_score(make, feats_tr, feats_te) for make in (fashion_svm, logistic_regression)
        ]
        cells = " ".join(
            f"{acc:>{w}.4f} {c:>7g}" for (acc, c, _), w in zip(results, (11, 14), strict=True)
        )
        label = f"{crop}" + (" (default)" if size is None else "")
        print(f"{label:<14} {rate:>14.1f} {cells}")
        warn = sum(r[2] for r in results)
        if warn:
            print(f"  ({warn} convergence warnings)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--skip-fashion", action="store_true")
    parser.add_argument("--skip-pacs", action="store_true")
    parser.add_argument("--n-train", type=int, default=5000, help="Fashion-MNIST train images")
    parser.add_argument("--n-test", type=int, default=2000, help="Fashion-MNIST test images")
    args = parser.parse_args()
    start = time.perf_counter()
    if not args.skip_pacs:
        pacs_photo()
    if not args.skip_fashion:
        fashion_mnist(args.n_train, args.n_test)
    # The machine may be shared: the load average says whether the rates above were alone.
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    print(f"\ntotal {time.perf_counter() - start:.0f} s; load average at the end {load}")


if __name__ == "__main__":
    main()

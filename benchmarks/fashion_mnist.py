"""Fashion-MNIST, full official protocol (60,000 train / 10,000 test), through ``compare``.

What it measures: the test accuracy of ``pixels``, ``hog`` and ``cnn`` features with the
``knn`` preset (FAISS, DINO-weighted 20-NN, cosine) and the ``svm`` preset (standardised
linear SVM, C chosen on a validation split of the training set), run by
``featkit.evaluate.compare`` exactly as ``featkit compare --data fashion-mnist`` would,
next to the published anchors: the Fashion-MNIST paper's RBF SVC on raw pixels 0.897, and
HOG + SVM 0.926.

Extractors are sized for 28 x 28 images: ``pixels`` at 28 px (784-d), ``hog`` at 28 px
with 4-px cells and 2x2 blocks (1,296-d, as in ``handcrafted_accuracy.py``), ``cnn``
(EfficientNet-Lite0, ImageNet weights, 1,280-d) at ``--cnn-size`` px (default 96).

Run: ``python benchmarks/fashion_mnist.py [--extractors pixels,hog,cnn]
[--classifiers knn,svm] [--cache-dir DIR] [--n-train N]`` (Debian package
``dataset-fashion-mnist``; about 30 minutes on 2 cores, most of it the CNN and the SVM
sweeps; the cache makes a re-run cost only the classifiers). Prints the ranked table and
the per-class F1 of the best pair.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

import featkit
from featkit.evaluate import compare

ANCHORS = {"RBF SVC on raw pixels (paper)": 0.897, "HOG + SVM (published)": 0.926}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--extractors", default="pixels,hog,cnn")
    parser.add_argument("--classifiers", default="knn,svm")
    parser.add_argument("--cnn-size", type=int, default=96)
    parser.add_argument("--cache-dir", default=None)
    parser.add_argument("--n-train", type=int, default=None, help="Subsample the training set.")
    args = parser.parse_args()

    data = featkit.load_dataset("fashion-mnist", download=False)
    if args.n_train:
        rng = np.random.default_rng(0)
        train = np.flatnonzero(data.splits == "train")
        keep = np.sort(
            np.concatenate(
                [
                    rng.choice(train, args.n_train, replace=False),
                    np.flatnonzero(data.splits == "test"),
                ]
            )
        )
        data = data.subset(keep)
    params = {
        "pixels": {"size": 28},
        "hog": {"size": (28, 28), "pixels_per_cell": (4, 4), "cells_per_block": (2, 2)},
        "cnn": {"image_size": args.cnn_size},
    }
    extractors = {
        name: featkit.create_extractor(name, **params.get(name, {}))
        for name in args.extractors.split(",")
    }
    started = time.perf_counter()
    result = compare(
        data,
        extractors=extractors,
        classifiers=args.classifiers.split(","),
        cache_dir=args.cache_dir,
        view=None,
        log=print,
    )
    print(f"\nFashion-MNIST, {len(data)} images, {time.perf_counter() - started:.0f} s in all")
    print(result.table())
    for name, value in ANCHORS.items():
        print(f"  anchor: {name}: {value:.3f}")
    best = result.best()
    row = next(
        r
        for r in result.rows
        if r["extractor"] == best["extractor"] and r["classifier"] == best["classifier"]
    )
    print(f"\nper-class F1 of {best['extractor']} + {best['classifier']}:")
    for cls, values in row["per_class"].items():
        print(f"  {cls:<12} {values['f1']:.3f}")
    for r in result.rows:
        if r["chosen"]:
            print(f"  {r['extractor']} + {r['classifier']}: chose {r['chosen']}")


if __name__ == "__main__":
    main()

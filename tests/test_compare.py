"""The compare job: scores equal an independent scikit-learn computation; report files."""

from __future__ import annotations

import csv
import json

import numpy as np
from sklearn.model_selection import train_test_split
from sklearn.neighbors import KNeighborsClassifier
from sklearn.preprocessing import normalize

import featkit
from featkit.evaluate import compare
from tests.test_cli import run


def test_compare_scores_match_a_direct_sklearn_run(digit_images):
    images, labels = digit_images
    result = compare("digits", extractors=["pixels"], classifiers=["knn"], seed=0)
    (row,) = result.rows
    # Independent: same split rule, features computed directly, sklearn's k-NN.
    X = featkit.create_extractor("pixels").transform(images)
    idx_train, idx_test = train_test_split(
        np.arange(len(labels)), test_size=0.25, random_state=0, stratify=labels
    )
    knn = KNeighborsClassifier(n_neighbors=5, algorithm="brute")
    knn.fit(normalize(X[idx_train]), labels[idx_train])
    expected = knn.score(normalize(X[idx_test]), labels[idx_test])
    assert row["accuracy"] == expected
    assert row["n_test"] == len(idx_test) and row["dim"] == 256
    assert np.asarray(row["confusion_matrix"]).sum() == len(idx_test)


def test_missing_extractors_are_skipped_not_fatal():
    result = compare("digits", extractors=["pixels", "no-such-extractor"], classifiers=["svm"])
    assert [r["extractor"] for r in result.rows] == ["pixels"]
    assert "no-such-extractor" in result.skipped


def test_cli_compare_writes_the_report(tmp_path):
    out = tmp_path / "report"
    proc = run(
        "compare", "--extractors", "pixels", "--classifiers", "knn,logreg", "--out", str(out), "-q"
    )
    assert "pixels" in proc.stdout and "rank" in proc.stdout
    assert {p.name for p in out.iterdir()} >= {"results.json", "results.csv", "report.md"}
    results = json.loads((out / "results.json").read_text())["results"]
    assert [r["classifier"] for r in results] and all(0.9 < r["accuracy"] <= 1 for r in results)
    with open(out / "results.csv") as fh:
        assert len(list(csv.DictReader(fh))) == 2
    assert "| 1 | pixels |" in (out / "report.md").read_text()


def test_local_extractors_are_skipped_with_a_hint():
    result = compare("digits", extractors=["pixels", "dsift"], classifiers=["knn"])
    assert "dsift-bovw" in result.skipped["dsift"]
    assert [r["extractor"] for r in result.rows] == ["pixels"]

"""Result rows and tables: typed rows that read like the dicts they are saved as, one name
per method, and one ranking rendered the same way in the terminal and in report.md."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
from sklearn.neighbors import KNeighborsClassifier

from featkit.data import Dataset
from featkit.evaluate import adapt, compare
from featkit.evaluate.rows import MethodSummary, ScoreRow, method_name, summarize


@pytest.fixture
def two_domains(digit_images) -> Dataset:
    images, labels = digit_images
    items = np.concatenate([images[:200], 255 - images[200:400]])
    domains = ["plain"] * 200 + ["inverted"] * 200
    return Dataset.from_items(items, labels[:400], domains=domains, name="two-domains")


@pytest.fixture
def adapted(two_domains, tmp_path):
    result = adapt(
        two_domains,
        extractor="pixels",
        aligners=("none", "coral"),
        classifiers={"1nn": KNeighborsClassifier(1), "3nn": KNeighborsClassifier(3)},
        view=None,
    )
    result.save(tmp_path / "report", plots=False)
    return result, tmp_path / "report"


def test_rows_are_typed_and_read_like_their_saved_dicts(adapted):
    result, out = adapted
    saved = json.loads((out / "results.json").read_text())["results"]
    assert len(result.rows) == len(saved) == 2 * 2 * 2  # shifts x aligners x classifiers
    for row, doc in zip(result.rows, saved, strict=True):
        assert isinstance(row, ScoreRow)
        assert ScoreRow.from_dict(doc) == row  # a lossless round trip through JSON
        assert dict(row) == doc
        assert row["accuracy"] == row.accuracy and row.get("accuracy") == row.accuracy
        assert "source" in row and "fold" not in row  # a domain-pair row has no fold
        with pytest.raises(KeyError):
            row["fold"]
        assert row.align_s is not None and row.n_failed == 0
    summary = result.summary()
    assert all(isinstance(s, MethodSummary) for s in summary)
    assert summarize([dict(r) for r in result.rows]) == summary  # dict rows summarise alike


def test_a_method_has_one_name_in_every_table(adapted, two_domains):
    result, out = adapted
    names = {s.method for s in result.summary()}
    assert names == {"pixels + 1nn", "pixels + 3nn", "pixels + coral + 1nn", "pixels + coral + 3nn"}
    _, matrix = result.pair_matrix()
    assert {m for m, _ in matrix} == names
    *pair_rows, legend = result.pair_table().splitlines()[2:]
    assert legend == "I = inverted, P = plain"  # domains in sorted order
    assert {re.sub(r"(\s+[\d.]+){3}$", "", line) for line in pair_rows} == names
    report = (out / "report.md").read_text()
    for name in names:
        assert f"| {name} |" in report  # the markdown pair table
    assert "+ none +" not in report + result.pair_table()
    assert method_name({"extractor": "hog", "aligner": "none", "classifier": "svm"}) == "hog + svm"


def test_the_terminal_and_the_report_rank_alike(digit_images, tmp_path):
    images, labels = digit_images
    data = Dataset.from_items(images[:300], labels[:300], name="digits-300")
    result = compare(data, extractors=["pixels"], classifiers=("knn", "logreg"), view=None)
    result.save(tmp_path, plots=False)
    text = result.table().splitlines()
    report = (tmp_path / "report.md").read_text().splitlines()
    table = [line for line in report if line.startswith("| ") and "rank" not in line]
    assert len(text) - 2 == len(table) == len(result.summary())
    rows = zip(text[2:], table, result.summary(), strict=True)
    for rank, (plain, md, summary) in enumerate(rows, start=1):
        plain_cells, md_cells = plain.split(), [c.strip() for c in md.strip("|").split("|")]
        assert plain_cells[:3] == md_cells[:3] == [str(rank), "pixels", summary.classifier]
        assert f"{summary.accuracy:.4f}" in plain_cells and f"{summary.accuracy:.4f}" in md_cells
        assert f"{summary.balanced_accuracy:.4f}" in md_cells  # the report has more columns
    accuracies = [s.accuracy for s in result.summary()]
    assert accuracies == sorted(accuracies, reverse=True)

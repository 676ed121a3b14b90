"""Every example runs, on small data, and prints what its docstring promises."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from sklearn.metrics import label_ranking_average_precision_score
from sklearn.metrics.pairwise import cosine_similarity
from sklearn.neighbors import NearestNeighbors

import featkit
from tests.conftest import PACS, SHARED_DATA, requires_pacs

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def run_example(name: str, *args: str) -> str:
    proc = subprocess.run(
        [sys.executable, str(EXAMPLES / name), *args], capture_output=True, text=True, timeout=600
    )
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def test_baseline_on_digits():
    lines = run_example("baseline_in_ten_lines.py").splitlines()
    assert [line.split()[0] for line in lines] == ["KNeighborsClassifier", "LinearSVC"]
    assert all(float(line.split()[2]) > 0.9 for line in lines)


def test_baseline_on_an_image_folder():
    requires_pacs()
    out = run_example("baseline_in_ten_lines.py", str(PACS / "photo"))
    assert "on 263 images" in out  # 25% of the 1,050 photos


def test_usps_mnist_reproduces_the_jda_paper():
    """The JDA paper's 1-NN baselines exactly, and its JDA numbers within half a point."""
    folder = SHARED_DATA / "usps_mnist_jda"
    if not folder.is_dir():
        pytest.skip(f"the JDA digits pair is not at {folder}")
    out = json.loads(run_example("adapt_usps_mnist.py", str(folder), "--json"))
    accuracy, published = out["accuracy"], out["published"]
    assert accuracy["1-NN"] == [44.70, 65.94]  # USPS→MNIST, MNIST→USPS
    for ours, paper in zip(accuracy["JDA"], published["JDA"], strict=True):
        assert abs(ours - paper) <= 0.5
    # Alignment must change something: SA and JDA beat raw 1-NN on the harder shift.
    assert accuracy["SA"][0] > accuracy["1-NN"][0] + 5
    assert accuracy["JDA"][0] > accuracy["1-NN"][0] + 10


#: Images per class (and per domain): small enough for CI, the same photos in every test
#: so the shared cache extracts them once.
PER_CLASS = "30"


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One feature cache for the examples of this module: the same CNN features of the
    same photos serve three of them."""
    return tmp_path_factory.mktemp("examples-cache")


def test_handcrafted_vs_deep_on_pacs_photos(tmp_path, cache_dir):
    """On photos of ImageNet-like objects, ImageNet embeddings lead handcrafted features by
    far, as on the whole PACS photo domain (docs/benchmarks.md: 0.98 against 0.60-0.69)."""
    requires_pacs()
    out = run_example(
        "handcrafted_vs_deep.py",
        str(PACS / "photo"),
        "--per-class",
        PER_CLASS,
        "--extractors",
        "pixels,hog,lbp,cnn",
        "--out",
        str(tmp_path),
        "--cache-dir",
        str(cache_dir),
    )
    assert "photo: 210 images, 7 classes" in out
    summary = json.loads((tmp_path / "results.json").read_text())["summary"]
    accuracy = {(r["extractor"], r["classifier"]): r["accuracy"] for r in summary}
    assert set(accuracy) == {
        (e, c) for e in ("pixels", "hog", "lbp", "cnn") for c in ("knn", "svm")
    }
    assert max(accuracy["cnn", c] for c in ("knn", "svm")) >= 0.9  # 0.98 on all photos
    assert min(accuracy["cnn", c] for c in ("knn", "svm")) >= 0.85
    best_handcrafted = max(a for (e, _), a in accuracy.items() if e != "cnn")
    assert best_handcrafted <= 0.8
    assert max(accuracy["pixels", c] for c in ("knn", "svm")) <= 0.6  # chance: 1/7
    # The table is ranked, and the gap line is the difference of the two best rows.
    ranked = re.findall(r"^\s+\d+\s+(\S+)\s+(knn|svm)\s+([\d.]+)", out, re.M)
    assert [float(a) for _, _, a in ranked] == sorted(
        (float(a) for _, _, a in ranked), reverse=True
    )
    gap = float(re.search(r"deep - handcrafted: ([+-][\d.]+) points", out).group(1))
    assert gap == pytest.approx(100 * (max(accuracy.values()) - best_handcrafted), abs=0.051)
    assert gap >= 20
    for name in ("report.md", "results.csv", "accuracy.png", "confusion_matrix.png"):
        assert (tmp_path / name).stat().st_size > 0, name


def test_adapt_pacs_photo_to_art(tmp_path, cache_dir):
    """CORAL helps the linear SVM on photo → art_painting, as on the whole subset."""
    requires_pacs()
    out = run_example(
        "adapt_pacs_photo_to_art.py",
        str(PACS),
        "--per-class",
        PER_CLASS,
        "--out",
        str(tmp_path),
        "--cache-dir",
        str(cache_dir),
    )
    assert "photo (210 images) → art_painting (210), 7 classes, cnn features" in out
    rows = json.loads((tmp_path / "results.json").read_text())["results"]
    accuracy = {(r["aligner"], r["classifier"]): 100 * r["accuracy"] for r in rows}
    assert {(r["source"], r["target"]) for r in rows} == {("photo", "art_painting")}
    assert len(rows) == 6  # none, coral, sa x knn, svm
    assert accuracy["coral", "svm"] >= accuracy["none", "svm"] + 3
    assert accuracy["coral", "knn"] > accuracy["none", "knn"]
    # The printed table holds the same numbers.
    printed = re.search(
        r"^coral\s+([\d.]+)\s+([\d.]+)\s+gain\s+([+-][\d.]+)\s+([+-][\d.]+)", out, re.M
    )
    assert float(printed.group(2)) == pytest.approx(accuracy["coral", "svm"], abs=0.051)
    gain = accuracy["coral", "svm"] - accuracy["none", "svm"]
    assert float(printed.group(4)) == pytest.approx(gain, abs=0.11)


def test_write_and_use_a_plugin():
    out = run_example("write_and_use_a_plugin.py")
    assert "conformance: OK" in out
    assert re.findall(r"^ok  check_\w+$", out, re.M), out
    accuracy = dict(re.findall(r"^(\S+)\s+\d+-d\s+k-NN accuracy ([\d.]+)", out, re.M))
    assert set(accuracy) == {"edge-hist", "pixels"}
    # On digits a gradient-orientation histogram is as good as raw pixels (HOG's 0.989 in
    # the README): far above chance (0.1).
    assert float(accuracy["edge-hist"]) > 0.95
    assert float(accuracy["pixels"]) > 0.95


def test_image_retrieval_matches_brute_force_cosine(tmp_path, cache_dir):
    """FAISS neighbours are scikit-learn's brute-force cosine neighbours, and the printed
    precision@5 and mAP are what scikit-learn computes from them."""
    requires_pacs()
    result = json.loads(
        run_example(
            "image_retrieval.py",
            str(PACS / "photo"),
            "--per-class",
            PER_CLASS,
            "--out",
            str(tmp_path),
            "--cache-dir",
            str(cache_dir),
            "--json",
        )
    )
    gallery = featkit.FeatureSet.load(tmp_path / "features" / "gallery")
    queries = featkit.FeatureSet.load(tmp_path / "features" / "queries")
    assert (len(gallery), len(queries)) == (168, 42)
    assert result["queries"] == queries.ids.tolist()

    nn = NearestNeighbors(n_neighbors=5, metric="cosine", algorithm="brute").fit(gallery.X)
    _, neighbours = nn.kneighbors(queries.X)
    assert result["top"] == [gallery.ids[row].tolist() for row in neighbours]
    relevant = gallery.y[None, :] == queries.y[:, None]
    assert result["precision@5"] == pytest.approx(
        np.take_along_axis(relevant, neighbours, axis=1).mean()
    )
    # With one relevant set per query, label-ranking average precision is the mean AP.
    similarity = cosine_similarity(queries.X, gallery.X)
    assert result["mAP"] == pytest.approx(
        label_ranking_average_precision_score(relevant, similarity), abs=1e-4
    )
    assert result["chance"] == pytest.approx(1 / 7)
    # ImageNet embeddings retrieve photos of the query's class far above chance (1/7).
    assert result["precision@5"] >= 0.8
    assert result["mAP"] >= 0.7
    assert len(featkit.FeatureIndex.load(tmp_path / "gallery.faiss")) == 168
    assert (tmp_path / "retrieval.png").stat().st_size > 50_000

"""``featkit index evaluate --out``: the report folder of an index's k-NN evaluation, checked
against scikit-learn's k-NN and a brute-force cosine search on real digit images."""

from __future__ import annotations

import json
import re
import subprocess
from dataclasses import replace
from html import escape

import numpy as np
import pytest
from sklearn.metrics import accuracy_score, balanced_accuracy_score
from sklearn.neighbors import KNeighborsClassifier

import featkit
from featkit.evaluate.index_report import index_knn_evaluation
from featkit.evaluate.out_of_core import knn_scores
from featkit.index import FeatureIndex
from featkit.store import ShardStore
from tests.conftest import featkit_command, write_image_folder

K = 5


pytestmark = pytest.mark.usefixtures("one_faiss_thread")  # conftest.py


@pytest.fixture(scope="module")
def digit_features(tmp_path_factory, digit_images):
    """`pixels` features of 300 real digit images in a class folder, split in two halves
    (the index's rows and the test rows), both saved as FeatureSet folders that know the
    images' root; a small training half leaves some test images misclassified."""
    tmp = tmp_path_factory.mktemp("index-report")
    images, labels = digit_images
    write_image_folder(tmp / "images", images[:300], labels[:300])
    fs = featkit.extract("pixels", str(tmp / "images"), n_jobs=1, progress=False)
    order = np.random.default_rng(0).permutation(len(fs))
    train, test = fs.subset(np.sort(order[:150])), fs.subset(np.sort(order[150:]))
    return train.save(tmp / "train"), test.save(tmp / "test"), train, test


def _unit(X: np.ndarray) -> np.ndarray:
    X = np.asarray(X, dtype=np.float64)
    return X / np.linalg.norm(X, axis=1, keepdims=True)


def _brute_force_top(train: featkit.FeatureSet, Q: np.ndarray, k: int):
    """Exact cosine top-k (row numbers and similarities), in float64."""
    sims = _unit(Q) @ _unit(train.X).T
    top = np.argsort(-sims, axis=1, kind="stable")[:, :k]
    return top, np.take_along_axis(sims, top, axis=1)


def _run(*args: str) -> str:
    proc = subprocess.run([*featkit_command(), *args], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, (proc.stdout, proc.stderr)
    return proc.stdout


def test_cli_index_evaluate_writes_a_report_of_the_same_votes(digit_features, tmp_path):
    train_dir, test_dir, train, test = digit_features
    index = tmp_path / "digits.faiss"
    _run("index", "build", "-f", str(train_dir), "-o", str(index))
    evaluate = ["index", "evaluate", "-i", str(index), "-f", str(test_dir), "-k", str(K)]
    plain = json.loads(_run(*evaluate, "--weights", "uniform", "--json"))
    out = tmp_path / "report"
    printed = json.loads(_run(*evaluate, "--weights", "uniform", "--json", "--out", str(out)))
    assert {p.name for p in out.iterdir()} >= {
        "results.json",
        "results.csv",
        "report.md",
        "report.html",
        "accuracy.png",
        "confusion_matrix.png",
    }
    # --out changes nothing of what is printed but the time it took.
    assert {k: v for k, v in printed.items() if k != "seconds"} == {
        k: v for k, v in plain.items() if k != "seconds"
    }
    doc = json.loads((out / "results.json").read_text())
    (row,) = doc["results"]
    assert row["extractor"] == "pixels" and row["classifier"] == f"{K}-nn@index"
    assert row["accuracy"] == printed["accuracy"] and row["n_test"] == len(test) == 150
    assert row["confusion_matrix"] == printed["confusion_matrix"]
    # scikit-learn's k-NN (uniform votes, brute-force cosine) on the same features.
    ref = KNeighborsClassifier(n_neighbors=K, metric="cosine", algorithm="brute")
    expected = ref.fit(train.X, train.y).predict(test.X)
    assert row["test_ids"] == test.ids.tolist() and row["y_true"] == test.y.tolist()
    assert row["y_pred"] == expected.tolist()
    assert row["accuracy"] == accuracy_score(test.y, expected)
    assert row["balanced_accuracy"] == pytest.approx(balanced_accuracy_score(test.y, expected))
    provenance = doc["provenance"]
    params = provenance["protocol"]["params"]
    assert (params["factory"], params["metric"], params["n_neighbors"]) == ("Flat", "cosine", K)
    assert params["weights"] == "uniform" and params["index"] == str(index)
    assert provenance["job"] == "index evaluate" and provenance["versions"]["faiss"]
    assert provenance["test"]["features"] == str(test_dir)
    # The error gallery names the misclassified test images, with their thumbnails.
    page = (out / "report.html").read_text()
    wrong = [
        i for i, t, p in zip(row["test_ids"], row["y_true"], row["y_pred"], strict=True) if t != p
    ]
    assert 0 < len(wrong) <= 50  # all of them shown (the gallery shows at most 50)
    assert f"Misclassified: {len(wrong)} of 150 test images" in page
    for image_id in wrong:
        assert f"title='{escape(image_id)}: " in page
    assert "data:image/png;base64," in page and "no image at hand" not in page
    assert "not shown" not in page  # every image shown was found under its root
    # The retrieval gallery: each query's neighbours are the exact cosine top-5.
    found = doc["retrieval"]["pixels"]
    assert found["k"] == K and len(found["queries"]) == 2 * len(set(test.y.tolist()))
    position = {image_id: i for i, image_id in enumerate(test.ids.tolist())}
    queries = [position[q["id"]] for q in found["queries"]]
    top, sims = _brute_force_top(train, test.X[queries], K)
    for q, rows, values in zip(found["queries"], top, sims, strict=True):
        assert [n["id"] for n in q["neighbours"]] == train.ids[rows].tolist()
        assert [n["label"] for n in q["neighbours"]] == train.y[rows].tolist()
        np.testing.assert_allclose([n["similarity"] for n in q["neighbours"]], values, atol=1e-3)
    section = page[page.index("<h2 id='retrieval'>") : page.index("<h2", page.index("id='r-"))]
    shown = re.findall(r"<figure class='(?:right|wrong)' title='([^:']+):", section)
    assert shown == [n["id"] for q in found["queries"] for n in q["neighbours"]]
    assert "(cosine similarity)" in section


def test_cli_index_evaluate_text_output_and_no_plots(digit_features, tmp_path):
    train_dir, test_dir, _, _ = digit_features
    index = tmp_path / "digits.faiss"
    _run("index", "build", "-f", str(train_dir), "-o", str(index))
    out = tmp_path / "report"
    text = _run("index", "evaluate", "-i", str(index), "-f", str(test_dir), "-o", str(out))
    text += "\n" + _run("index", "evaluate", "-i", str(index), "-f", str(test_dir))
    doc = json.loads((out / "results.json").read_text())
    accuracy = doc["results"][0]["accuracy"]
    assert text.count(f"accuracy {accuracy:.4f}, balanced accuracy") == 2
    assert f"report: {out / 'report.md'}, {out / 'report.html'}" in text
    assert (out / "accuracy.png").is_file()
    bare = tmp_path / "bare"
    _run("index", "evaluate", "-i", str(index), "-f", str(test_dir), "-o", str(bare), "--no-plots")
    assert not list(bare.glob("*.png")) and (bare / "report.html").is_file()


def test_similarity_votes_equal_a_brute_force_vote(digit_features):
    """DINO's weighted vote (the cosine default), checked against numpy."""
    _, _, train, test = digit_features
    index = FeatureIndex.from_features(train, "Flat", "cosine")
    scores, result = index_knn_evaluation(index, test, n_neighbors=K)
    top, sims = _brute_force_top(train, test.X, K)
    votes = np.zeros((len(test), len(train.class_names)))
    np.add.at(votes, (np.arange(len(test))[:, None], train.y[top]), np.exp(sims / 0.07))
    expected = np.argmax(votes, axis=1)
    (row,) = result.rows
    assert row.y_pred == expected.tolist()
    assert scores["accuracy"] == row.accuracy == accuracy_score(test.y, expected)
    assert scores["weights"] == "similarity" and "test_ids" not in scores
    assert knn_scores(index, test, n_neighbors=K)["accuracy"] == scores["accuracy"]


def test_a_store_is_streamed_with_its_ids_and_an_l2_index_shows_distances(digit_features, tmp_path):
    _, _, train, test = digit_features
    store = ShardStore.from_featureset(test, tmp_path / "test.store", shard_rows=40)
    assert store.n_shards == 4
    index = FeatureIndex.from_features(train, "Flat", "l2")
    _, from_store = index_knn_evaluation(index, store, n_neighbors=K, seed=1)
    _, from_set = index_knn_evaluation(index, test, n_neighbors=K, seed=1)
    untimed = [[replace(r, predict_s=0.0) for r in x.rows] for x in (from_store, from_set)]
    assert untimed[0] == untimed[1] and from_store.retrieval == from_set.retrieval
    assert from_store.rows[0].test_ids == test.ids.tolist()
    ref = KNeighborsClassifier(n_neighbors=K, algorithm="brute").fit(train.X, train.y)
    assert from_store.rows[0].y_pred == ref.predict(test.X).tolist()
    # l2 neighbours carry their distances, as sklearn measures them.
    found = from_store.retrieval["pixels"]
    q = found["queries"][3]
    dist, rows = ref.kneighbors(test.X[[test.ids.tolist().index(q["id"])]])
    assert [n["id"] for n in q["neighbours"]] == train.ids[rows[0]].tolist()
    np.testing.assert_allclose([n["distance"] for n in q["neighbours"]], dist[0], rtol=1e-4)
    page = from_store.save(tmp_path / "l2", plots=False) / "report.html"
    assert "(l2 distance)" in page.read_text()


def test_neighbours_of_come_from_the_voting_search(digit_features):
    _, _, train, test = digit_features
    index = FeatureIndex.from_features(train, "Flat", "cosine")
    scores = knn_scores(index, test, n_neighbors=7, neighbours_of=[0, 149, 42])
    top, sims = _brute_force_top(train, test.X[[0, 149, 42]], 7)
    assert sorted(scores["neighbours"]) == [0, 42, 149]
    for position, rows, values in zip([0, 149, 42], top, sims, strict=True):
        assert scores["neighbours"][position]["rows"] == rows.tolist()
        np.testing.assert_allclose(scores["neighbours"][position]["scores"], values, atol=1e-5)
    with pytest.raises(featkit.exceptions.InvalidParameterError, match="no test rows"):
        knn_scores(index, test, neighbours_of=[150])


def test_an_id_of_two_images_gets_no_thumbnail(digit_images, tmp_path):
    """Test and indexed images from two folders can share an id (a relative path): the
    report leaves such an id without a thumbnail rather than risk the wrong image. Here
    the two folders hold copies of the same images: each query's nearest indexed row has
    its id."""
    images, labels = digit_images
    write_image_folder(tmp_path / "a", images[:60], labels[:60])
    write_image_folder(tmp_path / "b", images[:60], labels[:60])
    a = featkit.extract("pixels", str(tmp_path / "a"), n_jobs=1, progress=False)
    b = featkit.extract("pixels", str(tmp_path / "b"), n_jobs=1, progress=False)
    _, result = index_knn_evaluation(FeatureIndex.from_features(a), b, n_neighbors=3)
    (row,) = result.rows
    found = result.retrieval["pixels"]["queries"]
    outcomes = zip(row.test_ids, row.y_true, row.y_pred, strict=True)
    tested = {i for i, t, p in outcomes if t != p}
    tested |= {q["id"] for q in found}
    indexed = {n["id"] for q in found for n in q["neighbours"]}
    assert tested & indexed  # ids both shown as test images and as indexed ones
    assert not tested & indexed & set(result.images)
    for image_id in tested - indexed:
        assert result.images[image_id] == str(tmp_path / "b" / image_id)
    for image_id in indexed - tested:
        assert result.images[image_id] == str(tmp_path / "a" / image_id)

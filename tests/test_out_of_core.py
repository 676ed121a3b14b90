"""Feature sets larger than memory end to end: extraction into a ShardStore (resumable),
indexes built from it with their build report, and k-NN scores streamed over shards, checked
against in-memory featkit runs and scikit-learn."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import numpy as np
import pytest
from sklearn.metrics import accuracy_score
from sklearn.neighbors import KNeighborsClassifier, NearestNeighbors

import featkit
from featkit.classify.knn import FaissKNNClassifier
from featkit.engine import to_store
from featkit.evaluate.out_of_core import knn_scores
from featkit.features import FeatureSet
from featkit.index import build_index, recall_at_k
from featkit.store import ShardStore
from tests.conftest import featkit_command
from tests.test_engine import _corrupt_three


# -- extraction into a store ------------------------------------------------------------------
def test_a_store_extraction_equals_an_in_memory_one(digit_folder, tmp_path):
    failures = _corrupt_three(digit_folder)
    dataset = featkit.load_dataset(digit_folder)
    store = featkit.extract_to_store(
        "pixels", dataset, tmp_path / "s", shard_images=64, n_jobs=1, progress=False
    )
    whole = featkit.extract("pixels", dataset, n_jobs=1, progress=False)
    assert store.n_shards == 4  # 200 images in slices of 64: 64, 64, 64, 8
    rows = np.concatenate([X for X, _ in store.batches()])
    np.testing.assert_array_equal(rows, whole.X)
    np.testing.assert_array_equal(np.concatenate([y for _, y in store.batches()]), whole.y)
    assert store.ids.tolist() == whole.ids.tolist()
    assert store.class_names == whole.class_names
    # The corrupt images are reported with their reasons; the rest of their shards is kept.
    assert {f["id"] for f in store.failed} == set(failures)
    assert len(store) == 197
    # The store knows its extractor, so an index of it can embed query images.
    assert store.metadata["provenance"]["extractor"] == whole.provenance["extractor"]
    assert store.metadata["provenance"]["machine"] == whole.provenance["machine"]


def test_an_interrupted_store_extraction_resumes_after_its_last_shard(
    digit_folder, tmp_path, monkeypatch
):
    dataset = featkit.load_dataset(digit_folder)
    calls: list[int] = []
    real_extract = to_store.extract

    def interrupted(extractor, data, **kwargs):
        calls.append(len(data))
        if len(calls) == 3:
            raise KeyboardInterrupt
        return real_extract(extractor, data, **kwargs)

    monkeypatch.setattr(to_store, "extract", interrupted)
    with pytest.raises(KeyboardInterrupt):
        featkit.extract_to_store("pixels", dataset, tmp_path / "s", shard_images=50, n_jobs=1)
    assert ShardStore(tmp_path / "s").n_shards == 2
    calls.clear()
    store = featkit.extract_to_store(
        "pixels", dataset, tmp_path / "s", shard_images=50, n_jobs=1, progress=False
    )
    assert calls == [50, 50]  # only the two unwritten shards
    whole = real_extract("pixels", dataset, n_jobs=1, progress=False)
    np.testing.assert_array_equal(np.concatenate([X for X, _ in store.batches()]), whole.X)
    # Another extraction is refused, not mixed into the store.
    with pytest.raises(featkit.DatasetError, match="another extraction"):
        featkit.extract_to_store("pixels", dataset, tmp_path / "s", shard_images=40)
    with pytest.raises(featkit.DatasetError, match="another extraction"):
        featkit.extract_to_store(
            featkit.create_extractor("pixels", size=8), dataset, tmp_path / "s", shard_images=50
        )


@pytest.mark.parametrize("dim_known", [True, False])
def test_a_shard_whose_images_all_failed_is_kept_empty(
    digit_folder, tmp_path, monkeypatch, dim_known
):
    """The first 10 images are corrupt and shards hold 10: shard 0 is written empty with
    its 10 failures (shard k stays slice k for resuming), also when the extractor cannot
    tell its dimension before a row exists, and every consumer skips it."""
    dataset = featkit.load_dataset(digit_folder)
    for item in dataset.items[:10]:
        Path(item).write_bytes(b"not an image")
    extractor = featkit.create_extractor("pixels")
    if not dim_known:
        monkeypatch.setattr(extractor, "_feature_dim", lambda: None)
    store = featkit.extract_to_store(
        extractor, dataset, tmp_path / "s", shard_images=10, n_jobs=1, progress=False
    )
    assert store.n_shards == 20 and store.shard_rows[0] == 0 and len(store) == 190
    assert len(store.failed) == 10
    whole = featkit.extract("pixels", dataset, n_jobs=1, progress=False)
    np.testing.assert_array_equal(np.concatenate([X for X, _ in store.batches()]), whole.X)
    index = featkit.FeatureIndex.from_store(store, "Flat", "l2")
    _, rows = index.exact_search_store(whole.X[:5], store, 3)
    assert rows[:, 0].tolist() == list(range(5))
    assert knn_scores(index, store, n_neighbors=1)["n_test"] == 190
    assert len(FaissKNNClassifier(n_neighbors=1).fit_store(store).predict_store(store)) == 190
    # Nothing usable at all: an empty store with the failures, or, without a dimension to
    # give the store, an error that says why.
    corrupt = dataset.subset(range(10))
    if dim_known:
        empty = featkit.extract_to_store(extractor, corrupt, tmp_path / "t", progress=False)
        assert len(empty) == 0 and len(empty.failed) == 10
    else:
        with pytest.raises(featkit.DatasetError, match="none of the 10 images"):
            featkit.extract_to_store(extractor, corrupt, tmp_path / "t", progress=False)


def test_store_extraction_arguments_are_checked(tmp_path, digit_folder):
    with pytest.raises(featkit.InvalidParameterError, match="shard_images"):
        featkit.extract_to_store("pixels", digit_folder, tmp_path / "s", shard_images=0)
    with pytest.raises(featkit.InvalidParameterError, match="unknown option"):
        featkit.extract_to_store("pixels", digit_folder, tmp_path / "s", jobs=2)
    (tmp_path / "file").write_text("x")
    with pytest.raises(featkit.DatasetError, match="is a file"):
        featkit.extract_to_store("pixels", digit_folder, tmp_path / "file")
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "notes.txt").write_text("x")
    with pytest.raises(featkit.FeatkitError, match="not a feature store"):
        featkit.extract_to_store("pixels", digit_folder, tmp_path / "other")


# -- k-NN over a store ------------------------------------------------------------------------
@pytest.fixture
def labelled_stores(tmp_path):
    """Train and test stores of 8 noisy classes in 16-d, labels tied to the class centres."""
    rng = np.random.default_rng(7)
    centres = rng.normal(size=(8, 16)) * 1.5

    def make(n, name, shard_rows):
        y = rng.integers(0, 8, n)
        X = (centres[y] + rng.normal(size=(n, 16))).astype(np.float32)
        fs = FeatureSet(
            X=X,
            y=y,
            ids=np.asarray([f"{name}{i}" for i in range(n)], dtype=object),
            class_names=[f"c{i}" for i in range(8)],
        )
        return ShardStore.from_featureset(fs, tmp_path / name, shard_rows=shard_rows), fs

    return make(3000, "train", 700), make(900, "test", 250)


@pytest.mark.parametrize(("metric", "weights"), [("l2", "uniform"), ("l2", "distance")])
def test_knn_fitted_on_a_store_predicts_as_sklearn(labelled_stores, metric, weights):
    (train, train_fs), (test, test_fs) = labelled_stores
    knn = FaissKNNClassifier(n_neighbors=7, metric=metric, weights=weights).fit_store(train)
    reference = KNeighborsClassifier(n_neighbors=7, weights=weights, algorithm="brute")
    reference.fit(train_fs.X, train_fs.y)
    expected = reference.predict(test_fs.X)
    np.testing.assert_array_equal(knn.predict_store(test), expected)
    assert knn.n_features_in_ == 16 and knn.classes_.tolist() == list(range(8))


def test_knn_scores_stream_the_test_shards(labelled_stores):
    (train, train_fs), (test, test_fs) = labelled_stores
    scores = knn_scores(train, test, n_neighbors=7, metric="l2")
    reference = KNeighborsClassifier(n_neighbors=7, algorithm="brute")
    expected = accuracy_score(test_fs.y, reference.fit(train_fs.X, train_fs.y).predict(test_fs.X))
    assert scores["accuracy"] == pytest.approx(expected)
    assert 0.5 < expected < 1.0  # the classes overlap: a score that can be wrong
    assert (scores["n_train"], scores["n_test"], scores["weights"]) == (3000, 900, "uniform")
    assert np.sum(scores["confusion_matrix"]) == 900


def test_knn_scores_match_classes_by_name(labelled_stores, tmp_path):
    """A test set whose class list is in another order scores as the original."""
    (train, _), (_, test_fs) = labelled_stores
    order = np.arange(8)[::-1]  # new label of each old label
    shuffled = FeatureSet(
        X=test_fs.X,
        y=order[test_fs.y],
        ids=test_fs.ids,
        class_names=[test_fs.class_names[i] for i in np.argsort(order)],
    )
    index = featkit.FeatureIndex.from_store(train, "Flat", "l2")
    same = knn_scores(index, test_fs, n_neighbors=5)
    assert knn_scores(index, shuffled, n_neighbors=5)["accuracy"] == same["accuracy"]
    renamed = FeatureSet(X=test_fs.X, y=test_fs.y, ids=test_fs.ids, class_names=list("abcdefgh"))
    with pytest.raises(featkit.InvalidParameterError, match="not among the training classes"):
        knn_scores(index, renamed)


def test_knn_needs_labelled_rows(tmp_path):
    store = ShardStore.create(tmp_path / "s", dim=4)
    store.append(np.ones((5, 4), np.float32))
    with pytest.raises(featkit.InvalidParameterError, match="unlabelled"):
        FaissKNNClassifier(n_neighbors=3).fit_store(store)


# -- building an index of a store -------------------------------------------------------------
def test_build_index_of_a_store_reports_recall_on_held_out_queries(labelled_stores, tmp_path):
    (train, train_fs), (test, _) = labelled_stores
    index = build_index(
        train, "IVF16,Flat", tmp_path / "ivf.faiss", metric="l2", nprobe=1, queries=test
    )
    recall = index.stats["recall"]
    assert recall["held_out"] and recall["queries"] == 900 and recall["k"] == 10
    # The same recall, computed here with scikit-learn's exact neighbours.
    queries = test.take(np.arange(900))
    truth = NearestNeighbors(n_neighbors=10).fit(train_fs.X).kneighbors(queries)[1]
    assert recall["recall_at_k"] == pytest.approx(
        recall_at_k(index.search(queries, 10)[1], truth), abs=1e-4
    )
    assert 0.3 < recall["recall_at_k"] < 1.0
    assert index.stats["index_bytes"] == (tmp_path / "ivf.faiss").stat().st_size
    assert index.stats["peak_rss_bytes"] > 50 * 2**20
    assert index.stats["build_seconds"] >= index.stats["train_seconds"]
    # Without held-out queries the build uses indexed rows, and says so.
    assert build_index(train, "IVF16,Flat", metric="l2").stats["recall"]["held_out"] is False


def test_index_ids_added_in_many_parts_are_joined_in_order():
    index = featkit.FeatureIndex(3, "Flat", "l2")
    for part in range(5):
        index.add(
            np.full((2, 3), part, np.float32), ids=[f"{part}a", f"{part}b"], labels=[part] * 2
        )
    assert index.ids.tolist() == [f"{p}{s}" for p in range(5) for s in "ab"]
    assert index.labels.tolist() == [p for p in range(5) for _ in "ab"]
    index.add(np.zeros((1, 3), np.float32))
    assert index.ids[-1] == "10" and index.labels[-1] == -1


def test_cli_extract_store_index_and_evaluate(digit_folder, tmp_path):
    store_dir, index_path = tmp_path / "store", tmp_path / "digits.faiss"
    common = {"capture_output": True, "text": True, "check": True}
    extract = [*featkit_command(), "extract", "-e", "pixels", "-d", str(digit_folder), "-q"]
    out = subprocess.run(
        [*extract, "-o", str(store_dir), "--store", "--shard-images", "80", "-j", "1"], **common
    ).stdout
    assert "200 of 200 images -> 256-d features in 3 shards" in out
    assert ShardStore(store_dir).n_shards == 3
    info = subprocess.run([*featkit_command(), "info", str(store_dir), "--json"], **common)
    summary = json.loads(info.stdout)
    assert (summary["n"], summary["dim"], summary["shards"]) == (200, 256, 3)
    assert summary["extractor"]["name"] == "pixels" and summary["failed"] == 0
    build = [*featkit_command(), "index", "build", "-f", str(store_dir), "-o", str(index_path)]
    out = subprocess.run([*build, "--factory", "IVF4,Flat", "--json"], **common).stdout
    summary = json.loads(out)
    assert summary["n"] == 200 and summary["recall"]["queries"] == 200
    assert summary["index_bytes"] == index_path.stat().st_size
    evaluate = [*featkit_command(), "index", "evaluate", "-i", str(index_path)]
    out = subprocess.run([*evaluate, "-f", str(store_dir), "-k", "1", "--json"], **common)
    scores = json.loads(out.stdout)
    # 1-NN of each indexed row among the indexed rows finds itself (nprobe covers its list).
    assert scores["accuracy"] == 1.0 and scores["n_test"] == 200


# -- an index that reads its ids from the store -------------------------------------------------
def test_an_index_of_a_store_reads_ids_from_the_store(labelled_stores, tmp_path):
    (train, train_fs), (test, _) = labelled_stores
    index = featkit.FeatureIndex.from_store(train, "Flat", "l2")
    assert index.store is train
    rows = np.array([0, 2999, 701, 700])
    assert index.id_of(rows).tolist() == train_fs.ids[rows].tolist()
    np.testing.assert_array_equal(index.labels, train_fs.y)
    path = index.save(tmp_path / "train.faiss")
    sidecar = json.loads((tmp_path / "train.faiss.json").read_text())
    assert "ids" not in sidecar and sidecar["store"]["rows"] == 3000
    loaded = featkit.FeatureIndex.load(path)
    queries = test.take(np.arange(50))
    found = loaded.search(queries, 5)[1]
    assert loaded.id_of(found[0]).tolist() == train_fs.ids[found[0]].tolist()
    np.testing.assert_array_equal(found, index.search(queries, 5)[1])
    # Appending to the store later leaves the indexed rows' ids where they were.
    train.append(np.zeros((3, 16), np.float32), [1, 1, 1], ["x", "y", "z"])
    again = featkit.FeatureIndex.load(path)
    assert len(again) == 3000 and again.id_of([2999])[0] == train_fs.ids[2999]
    # Rows added to the index itself: the ids move into the index, in order.
    again.add(np.ones((1, 16), np.float32), ids=["extra"], labels=[3])
    assert again.store is None and again.ids[-2:].tolist() == [train_fs.ids[2999], "extra"]


def test_a_pickled_index_of_a_store_still_reads_ids_from_the_store(labelled_stores):
    import pickle

    (train, train_fs), (test, _) = labelled_stores
    index = featkit.FeatureIndex.from_store(train, "Flat", "l2", batch_size=100)
    again = pickle.loads(pickle.dumps(index))
    assert again.store.path == train.path and again.batch_size == 100
    rows = np.array([0, 2999, 701, 700])
    assert again.id_of(rows).tolist() == train_fs.ids[rows].tolist()
    np.testing.assert_array_equal(again.labels, train_fs.y)
    queries = test.take(np.arange(50))
    np.testing.assert_array_equal(again.search(queries, 5)[1], index.search(queries, 5)[1])


def test_copied_ids_make_a_saved_index_independent_of_its_store(labelled_stores, tmp_path):
    import shutil

    (train, train_fs), _ = labelled_stores
    copied = build_index(train, "Flat", tmp_path / "copied.faiss", metric="l2", copy_ids=True)
    build_index(train, "Flat", tmp_path / "referring.faiss", metric="l2")
    assert copied.store is None
    shutil.rmtree(train.path)
    loaded = featkit.FeatureIndex.load(tmp_path / "copied.faiss")
    assert loaded.ids.tolist() == train_fs.ids.tolist()
    with pytest.raises(featkit.DatasetError, match="copy_ids=True"):
        featkit.FeatureIndex.load(tmp_path / "referring.faiss")


def test_images_retrieved_from_an_index_of_an_extracted_store(digit_folder, tmp_path):
    """Folder -> extract_to_store -> index of the store -> search_images: each query image
    finds itself first, by path, and the index embeds queries with the store's extractor."""
    store = featkit.extract_to_store(
        "pixels", digit_folder, tmp_path / "s", shard_images=60, n_jobs=1, progress=False
    )
    index_path = tmp_path / "digits.faiss"
    build_index(store, "Flat", index_path)
    queries = sorted(digit_folder.rglob("*.png"))[::50]
    results = featkit.search_images(index_path, queries, k=3)
    firsts = [r for r in results if r["rank"] == 1]
    assert [r["path"] for r in firsts] == [str(q) for q in queries]
    assert all(r["score"] > 0.999 for r in firsts)
    assert {r["label"] for r in firsts} <= set(store.class_names)


def test_knn_on_a_built_index_needs_its_metric(labelled_stores):
    (train, _), _ = labelled_stores
    index = featkit.FeatureIndex.from_store(train, "Flat", "l2")
    with pytest.raises(featkit.InvalidParameterError, match="metric='l2'"):
        FaissKNNClassifier(metric="cosine").fit_index(index)
    knn = FaissKNNClassifier(metric="l2").fit_index(index)
    assert knn.get_params()["index"] == "Flat" and knn.index_ is index


# -- a linear probe over a store ----------------------------------------------------------------
@pytest.fixture(scope="module")
def digits_split(tmp_path_factory):
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    X, y = load_digits(return_X_y=True)
    Xtr, Xte, ytr, _ = train_test_split(
        (X / 16).astype(np.float32), y, test_size=0.3, random_state=0, stratify=y
    )
    fs = FeatureSet(
        X=Xtr,
        y=ytr,
        ids=np.arange(len(Xtr)).astype(str).astype(object),
        class_names=[str(i) for i in range(10)],
    )
    store = ShardStore.from_featureset(fs, tmp_path_factory.mktemp("probe") / "s", shard_rows=300)
    return store, Xtr, ytr, Xte


def test_a_linear_probe_fitted_over_shards_reaches_sklearns_optimum(digits_split):
    """SGD over 5 shards (shard order and rows shuffled each epoch) ends within 0.5% of the
    objective L-BFGS minimises on the arrays, and predicts what LogisticRegression does."""
    from sklearn.linear_model import LogisticRegression

    from featkit.classify import LinearProbe

    store, Xtr, ytr, Xte = digits_split
    params = {"solver": "sgd", "epochs": 100, "batch_size": 32, "random_state": 0}
    streamed = LinearProbe(**params).fit_store(store)
    optimum = LinearProbe().fit(Xtr, ytr).loss_
    assert optimum <= streamed.loss_ < optimum * 1.005
    reference = LogisticRegression(max_iter=5000).fit(Xtr, ytr)
    assert np.mean(streamed.predict(Xte) == reference.predict(Xte)) > 0.99
    again = LinearProbe(**params).fit_store(store)
    np.testing.assert_array_equal(again.coef_, streamed.coef_)  # seeded: the same fit
    with pytest.raises(featkit.InvalidParameterError, match="solver='sgd'"):
        LinearProbe().fit_store(store)


def test_a_linear_probe_needs_labelled_rows_in_the_store(tmp_path):
    from featkit.classify import LinearProbe

    store = ShardStore.create(tmp_path / "s", dim=3)
    store.append(np.ones((4, 3), np.float32), [0, 1, -1, 1])
    with pytest.raises(featkit.InvalidParameterError, match="1 of them unlabelled"):
        LinearProbe(solver="sgd").fit_store(store)


def test_probe_scores_from_python_and_the_cli_agree(digits_split, tmp_path):
    from sklearn.datasets import load_digits

    from featkit.evaluate.out_of_core import probe_scores

    store, _, _, _ = digits_split
    X, y = load_digits(return_X_y=True)
    test = FeatureSet(
        X=(X[::3] / 16).astype(np.float32),
        y=y[::3],
        ids=np.arange(len(y[::3])).astype(str).astype(object),
        class_names=[str(i) for i in range(10)],
    )
    test.save(tmp_path / "test")
    scores = probe_scores(store, test, epochs=20, batch_size=64, device="cpu")
    assert scores["accuracy"] > 0.9 and scores["n_test"] == len(test)
    command = [*featkit_command(), "probe", "-f", str(store.path), "-t", str(tmp_path / "test")]
    out = subprocess.run(
        [*command, "--epochs", "20", "--batch-size", "64", "--device", "cpu", "--json"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert json.loads(out.stdout)["accuracy"] == scores["accuracy"]

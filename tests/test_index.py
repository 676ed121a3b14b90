"""FeatureIndex: exact search like scikit-learn, save/load round trips, recall, retrieval."""

from __future__ import annotations

import json
import pickle

import numpy as np
import pytest
from PIL import Image
from sklearn.neighbors import NearestNeighbors

import featkit
from featkit.exceptions import DatasetError, InvalidParameterError
from featkit.index import FeatureIndex, build_index, recall_at_k, search_images

pytestmark = pytest.mark.usefixtures("one_faiss_thread")  # conftest.py


@pytest.fixture(scope="module")
def digits_dataset():
    return featkit.load_dataset("digits")


@pytest.fixture(scope="module")
def pixels(digits_dataset):
    """featkit's `pixels` features of the digits, with their provenance."""
    return featkit.extract(featkit.create_extractor("pixels"), digits_dataset, progress=False)


@pytest.fixture(scope="module")
def clustered():
    """2,000 rows around 20 overlapping centres in 32-d, and 100 queries near them."""
    rng = np.random.default_rng(0)
    centres = rng.normal(0, 1, (20, 32))
    X = (centres[rng.integers(0, 20, 2000)] + rng.normal(0, 1, (2000, 32))).astype(np.float32)
    Q = (centres[rng.integers(0, 20, 100)] + rng.normal(0, 1, (100, 32))).astype(np.float32)
    return X, Q


@pytest.mark.parametrize("metric", ["cosine", "l2"])
def test_flat_search_equals_sklearn(clustered, metric):
    X, Q = clustered
    index = FeatureIndex.from_features(X, "Flat", metric, batch_size=33)  # several chunks
    scores, rows = index.search(Q, 10)
    ref = NearestNeighbors(n_neighbors=10, metric="cosine" if metric == "cosine" else "euclidean")
    dist, ref_rows = ref.fit(X).kneighbors(Q)
    np.testing.assert_array_equal(rows, ref_rows)
    expected = 1.0 - dist if metric == "cosine" else dist
    np.testing.assert_allclose(scores, expected, rtol=1e-4, atol=1e-4)
    assert index.is_exact and index.recall_at_k(Q, 10) == 1.0


@pytest.mark.parametrize("factory", ["Flat", "IVF16,Flat", "HNSW16", "IVF8,PQ8x4"])
def test_save_load_round_trips_search_results(tmp_path, pixels, factory):
    knobs = {"nprobe": 3} if factory.startswith("IVF") else {}
    if factory.startswith("HNSW"):
        knobs = {"ef_search": 24}
    index = FeatureIndex.from_features(pixels, factory, "cosine", device="cpu", **knobs)
    queries = pixels.X[::7]
    scores, rows = index.search(queries, 8)
    path = index.save(tmp_path / "digits.faiss")
    assert (tmp_path / "digits.faiss.json").is_file()
    loaded = FeatureIndex.load(path)
    scores2, rows2 = loaded.search(queries, 8)
    np.testing.assert_array_equal(rows2, rows)
    np.testing.assert_array_equal(scores2, scores)
    assert (loaded.factory, loaded.metric, loaded.dim, len(loaded)) == (
        factory,
        "cosine",
        256,
        len(pixels),
    )
    assert loaded.nprobe == index.nprobe and loaded.ef_search == index.ef_search
    np.testing.assert_array_equal(loaded.ids, pixels.ids)
    np.testing.assert_array_equal(loaded.labels, pixels.y)
    assert loaded.class_names == pixels.class_names
    assert loaded.extractor == pixels.provenance["extractor"]
    again = pickle.loads(pickle.dumps(loaded))
    np.testing.assert_array_equal(again.search(queries, 8)[1], rows)


@pytest.mark.parametrize(
    ("factory", "knobs"), [("IVF16,Flat", {"nprobe": 5}), ("HNSW16", {"ef_search": 40})]
)
def test_every_field_survives_save_load_and_pickling(tmp_path, clustered, factory, knobs):
    X, Q = clustered
    extractor = {"name": "pixels", "version": "1", "params": {"size": 8}}
    index = FeatureIndex(
        32,
        factory,
        "l2",
        device="cpu",
        batch_size=33,
        class_names=["even", "odd"],
        extractor=extractor,
        **knobs,
    )
    index.add(X, ids=[f"img{i}" for i in range(len(X))], labels=np.arange(len(X)) % 2)
    index.dataset = {"name": "toy", "root": str(tmp_path)}
    path = index.save(tmp_path / "toy.faiss")
    assert json.loads((tmp_path / "toy.faiss.json").read_text())["batch_size"] == 33
    for copy in (FeatureIndex.load(path, device="cpu"), pickle.loads(pickle.dumps(index))):
        assert (copy.dim, copy.factory, copy.metric, copy.device) == (32, factory, "l2", "cpu")
        assert copy.batch_size == 33 and copy.nprobe == index.nprobe
        assert copy.ef_search == index.ef_search
        assert all(getattr(copy, name) == value for name, value in knobs.items())
        assert copy.class_names == ["even", "odd"] and copy.extractor == extractor
        assert copy.dataset == index.dataset and copy.stats == index.stats
        np.testing.assert_array_equal(copy.ids, index.ids)
        np.testing.assert_array_equal(copy.labels, index.labels)
        np.testing.assert_array_equal(copy.search(Q, 5)[1], index.search(Q, 5)[1])


def test_an_index_saved_without_its_batch_size_loads_with_the_default(tmp_path, clustered):
    """Sidecars written before featkit recorded the batch size have no ``batch_size``."""
    X, Q = clustered
    index = FeatureIndex.from_features(X, "Flat", "l2", batch_size=33)
    path = index.save(tmp_path / "old.faiss")
    sidecar = tmp_path / "old.faiss.json"
    meta = json.loads(sidecar.read_text())
    del meta["batch_size"]
    sidecar.write_text(json.dumps(meta))
    loaded = FeatureIndex.load(path)
    assert loaded.batch_size == 4096
    np.testing.assert_array_equal(loaded.search(Q, 5)[1], index.search(Q, 5)[1])


def test_a_pickle_written_before_reduce_still_loads(clustered):
    """The previous FeatureIndex pickled its __dict__ with the FAISS index as bytes."""
    from featkit._faiss import import_faiss

    X, Q = clustered
    index = FeatureIndex.from_features(X, "IVF16,Flat", "l2", nprobe=4, batch_size=33)
    state = dict(vars(index), _index=import_faiss().serialize_index(index.faiss_index))
    old = FeatureIndex.__new__(FeatureIndex)
    old.__setstate__(state)  # what unpickling such a pickle does
    assert (old.nprobe, old.batch_size, old.device) == (4, 33, index.device)
    np.testing.assert_array_equal(old.ids, index.ids)
    np.testing.assert_array_equal(old.search(Q, 5)[1], index.search(Q, 5)[1])


def test_sidecar_is_json_and_checked(tmp_path, clustered):
    X, _ = clustered
    path = FeatureIndex.from_features(X[:50], "Flat", "l2").save(tmp_path / "a.faiss")
    meta = json.loads((tmp_path / "a.faiss.json").read_text())
    assert meta["format"] == "featkit.FeatureIndex" and meta["ids"][:2] == ["0", "1"]
    FeatureIndex.from_features(X[:60], "Flat", "l2").save(tmp_path / "b.faiss")
    (tmp_path / "b.faiss.json").replace(tmp_path / "a.faiss.json")  # describes 60 rows
    with pytest.raises(DatasetError, match="do not match"):
        FeatureIndex.load(path)
    (tmp_path / "a.faiss.json").unlink()
    with pytest.raises(DatasetError, match="not a featkit index"):
        FeatureIndex.load(path)


def test_ivf_recall_is_sensible(clustered):
    X, Q = clustered
    index = FeatureIndex.from_features(X, "IVF32,Flat", "l2")
    truth = NearestNeighbors(n_neighbors=10).fit(X).kneighbors(Q, return_distance=False)
    recalls = {}
    for nprobe in (1, 2, 4, 32):
        index.nprobe = nprobe
        recalls[nprobe] = index.recall_at_k(Q, 10)
        # Same number as an independent reference (scikit-learn's exact neighbours).
        assert recalls[nprobe] == pytest.approx(recall_at_k(index.search(Q, 10)[1], truth))
    assert 0.2 < recalls[1] < recalls[2] <= recalls[4] <= recalls[32] == 1.0  # 32: exact
    assert index.recall_at_k(Q, 10, database=X) == 1.0


def test_recall_needs_the_vectors_of_a_compressed_index(clustered):
    X, Q = clustered
    index = FeatureIndex.from_features(X, "IVF8,PQ8x4", "l2", nprobe=8)
    with pytest.raises(InvalidParameterError, match="pass database="):
        index.recall_at_k(Q, 10)
    assert 0.1 < index.recall_at_k(Q, 10, database=X) < 1.0


def test_add_in_parts_and_default_ids(clustered):
    X, Q = clustered
    whole = FeatureIndex.from_features(X, "Flat", "cosine")
    parts = FeatureIndex(32, "Flat", "cosine").add(X[:700]).add(X[700:], labels=np.ones(1300))
    np.testing.assert_array_equal(parts.search(Q, 5)[1], whole.search(Q, 5)[1])
    assert parts.ids[[0, 699, 700, 1999]].tolist() == ["0", "699", "700", "1999"]
    assert parts.labels[0] == -1 and parts.labels[700] == 1


def test_build_index_and_search_images_finds_the_image_itself(tmp_path, pixels, digits_dataset):
    features_dir = pixels.save(tmp_path / "features")
    out = tmp_path / "digits.faiss"
    index = build_index(features_dir, "HNSW32", out, metric="cosine")
    assert out.is_file() and 0.9 < index.stats["recall"]["recall_at_k"] <= 1.0
    assert build_index(features_dir, "Flat").stats.get("recall") is None  # exact
    picks = [0, 5, 1000, 1796]
    files = []
    for i in picks:
        files.append(tmp_path / f"query{i}.png")
        Image.fromarray(digits_dataset.items[i]).save(files[-1])
    rows = search_images(out, files, k=3)
    assert len(rows) == 3 * len(picks)
    assert set(rows[0]) == {"query", "rank", "id", "path", "label", "score"}
    firsts = [r for r in rows if r["rank"] == 1]
    for i, row, file in zip(picks, firsts, files, strict=True):
        assert row["query"] == str(file)
        assert row["id"] == pixels.ids[i] and row["score"] == pytest.approx(1.0, abs=1e-5)
        assert row["label"] == pixels.class_names[pixels.y[i]]
    scores = [r["score"] for r in rows if r["query"] == str(files[0])]
    assert scores == sorted(scores, reverse=True)
    wider = search_images(out, files[:1], k=3, ef_search=64)  # a search knob at query time
    assert wider[0]["id"] == pixels.ids[0] and len(wider) == 3
    # Arrays work as queries too, and an index object instead of a path.
    arrays = search_images(index, [digits_dataset.items[5]], k=1)
    assert arrays[0]["id"] == pixels.ids[5] and arrays[0]["query"] == "<image 0>"


def test_search_images_paths_of_a_folder_data_set(tmp_path, digits_dataset):
    root = tmp_path / "images"
    for i in range(30):
        folder = root / f"class{digits_dataset.labels[i]}"
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(digits_dataset.items[i]).save(folder / f"{i:02d}.png")
    fs = featkit.extract(featkit.create_extractor("pixels"), str(root), progress=False)
    index = build_index(fs, "Flat", tmp_path / "folder.faiss")
    query = root / "class3" / "03.png"
    top = search_images(tmp_path / "folder.faiss", [query], k=1)[0]
    assert top["id"] == "class3/03.png" and top["label"] == "class3"
    assert top["path"] == str(query)
    assert index.path_of(0).startswith(str(root))


def test_search_images_errors(tmp_path, clustered, pixels):
    X, _ = clustered
    FeatureIndex.from_features(X, "Flat").save(tmp_path / "arrays.faiss")
    with pytest.raises(InvalidParameterError, match="does not record the extractor"):
        search_images(tmp_path / "arrays.faiss", [np.zeros((8, 8), np.uint8)])
    fitted = FeatureIndex.from_features(pixels, "Flat")
    fitted.extractor = {**pixels.provenance["extractor"], "state": "0123abcd"}
    with pytest.raises(InvalidParameterError, match="fitted state is not saved"):
        search_images(fitted, [np.zeros((8, 8), np.uint8)])
    # ... unless the fitted extractor is given.
    rows = search_images(fitted, [np.zeros((8, 8), np.uint8)], extractor=_pixels())
    assert len(rows) == 10


def _pixels():
    return featkit.create_extractor("pixels")


@pytest.mark.parametrize(
    ("make", "match"),
    [
        (lambda: FeatureIndex(8, "NotAnIndex"), "bad FAISS index string"),
        (lambda: FeatureIndex(8, "Flat", "manhattan"), "metric must be"),
        (lambda: setattr(FeatureIndex(8, "HNSW32"), "nprobe", 4), "nprobe applies to IVF"),
        (lambda: setattr(FeatureIndex(8, "Flat"), "ef_search", 4), "ef_search applies to HNSW"),
        (lambda: FeatureIndex(8, "IVF64,Flat").add(np.eye(8)), "cannot train"),
        (lambda: FeatureIndex(8).add(np.ones((3, 9))), "3 rows|9 dimensions"),
        (lambda: FeatureIndex(8).add(np.full((2, 8), np.nan)), "NaN"),
        (lambda: FeatureIndex(8, device="gpu"), "device must be"),
    ],
)
def test_bad_parameters(make, match):
    with pytest.raises(InvalidParameterError, match=match):
        make()


def test_cuda_needs_a_gpu_build():
    from featkit._faiss import import_faiss

    if hasattr(import_faiss(), "StandardGpuResources"):
        pytest.skip("faiss is a GPU build")
    with pytest.raises(InvalidParameterError, match="needs a GPU build of faiss"):
        FeatureIndex(8, device="cuda")
    assert FeatureIndex(8, device="auto").device == "cpu"

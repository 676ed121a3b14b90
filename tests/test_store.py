"""ShardStore (sharded, memory-mapped, appendable feature rows) and RunningMoments
(covariance accumulated shard by shard), checked against numpy on the whole array."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

import featkit
from featkit import store as store_module
from featkit.features import FeatureSet
from featkit.stats import RunningMoments, moments
from featkit.store import ShardStore


@pytest.fixture
def features() -> FeatureSet:
    rng = np.random.default_rng(0)
    X = rng.normal(size=(1050, 16)).astype(np.float32)
    y = rng.integers(0, 3, 1050)
    return FeatureSet(
        X=X,
        y=y,
        ids=np.asarray([f"img{i}" for i in range(1050)], dtype=object),
        class_names=["a", "b", "c"],
    )


def test_round_trip_in_memory_mapped_shards(features, tmp_path):
    store = ShardStore.from_featureset(features, tmp_path / "s", shard_rows=400)
    again = ShardStore(tmp_path / "s")
    assert (len(again), again.dim, again.n_shards) == (1050, 16, 3)
    assert again.class_names == ["a", "b", "c"]
    shards = list(again.batches())
    assert all(isinstance(X, np.memmap) for X, _ in shards)
    assert [len(X) for X, _ in shards] == [400, 400, 250]
    np.testing.assert_array_equal(np.concatenate([X for X, _ in shards]), features.X)
    np.testing.assert_array_equal(np.concatenate([y for _, y in shards]), features.y)
    assert again.ids.tolist() == features.ids.tolist()
    assert repr(store) == f"ShardStore({str(tmp_path / 's')!r}, rows=1050, dim=16, shards=3)"


def test_append_and_take(features, tmp_path):
    store = ShardStore.create(tmp_path / "s", dim=16)
    store.append(features.X[:10])
    store.append(features.X[10:25], features.y[10:25], features.ids[10:25])
    reopened = ShardStore(tmp_path / "s")
    assert len(reopened) == 25
    assert reopened.ids.tolist()[:2] == ["0/0", "0/1"] and reopened.ids[10] == "img10"
    positions = np.array([24, 0, 9, 10, 17])
    np.testing.assert_array_equal(reopened.take(positions), features.X[positions])
    with pytest.raises(featkit.InvalidParameterError, match=r"0\.\.24"):
        reopened.take([25])


def test_bad_input_is_refused_with_a_reason(features, tmp_path):
    store = ShardStore.create(tmp_path / "s", dim=16)
    with pytest.raises(featkit.InvalidParameterError, match=r"shape \(n, 16\)"):
        store.append(features.X[:, :8])
    with pytest.raises(featkit.InvalidParameterError, match="NaN"):
        store.append(np.full((2, 16), np.nan))
    with pytest.raises(featkit.InvalidParameterError, match="3 labels"):
        store.append(features.X[:2], features.y[:3])
    with pytest.raises(featkit.FeatkitError, match="not empty"):
        ShardStore.create(tmp_path / "s", dim=16)
    with pytest.raises(featkit.FeatkitError, match="not a feature store"):
        ShardStore(tmp_path)
    with pytest.raises(featkit.InvalidParameterError, match="dim"):
        ShardStore.create(tmp_path / "t", dim=0)


def test_a_crash_during_append_leaves_the_store_as_it_was(features, tmp_path, monkeypatch):
    store = ShardStore.create(tmp_path / "s", dim=16)
    store.append(features.X[:10])
    real = store_module._write_json_atomic

    def crash_on_manifest(path, data):
        if path.name == store_module.MANIFEST:
            raise OSError("disk full")
        real(path, data)

    monkeypatch.setattr(store_module, "_write_json_atomic", crash_on_manifest)
    with pytest.raises(OSError):
        store.append(features.X[10:20])  # shard files written, manifest not
    monkeypatch.undo()
    reopened = ShardStore(tmp_path / "s")
    assert len(reopened) == 10 and reopened.n_shards == 1
    reopened.append(features.X[20:30])  # reuses the unlisted shard's name
    np.testing.assert_array_equal(reopened.shard(1)[0], features.X[20:30])


def test_running_moments_equal_numpy_on_the_whole_array():
    rng = np.random.default_rng(1)
    # A large common offset: a sum-of-squares formula would lose most digits here.
    X = rng.normal(size=(2000, 12)) @ rng.normal(size=(12, 12)) + 1e4
    cuts = [0, 1, 7, 300, 301, 1500, 2000]
    running = moments((X[a:b] for a, b in itertools.pairwise(cuts)), dim=12)
    assert running.n == 2000
    np.testing.assert_allclose(running.mean, X.mean(axis=0), rtol=1e-12)
    np.testing.assert_allclose(running.covariance(), np.cov(X, rowvar=False), rtol=1e-9)
    np.testing.assert_allclose(
        running.covariance(ddof=0), np.cov(X, rowvar=False, bias=True), rtol=1e-9
    )
    with pytest.raises(featkit.InvalidParameterError, match="more than 1 rows"):
        RunningMoments(3).update(np.ones((1, 3))).covariance()


def test_moments_stream_over_a_store(features, tmp_path):
    store = ShardStore.from_featureset(features, tmp_path / "s", shard_rows=128)
    running = moments((X for X, _ in store.batches()), store.dim)
    X = features.X.astype(np.float64)
    np.testing.assert_allclose(running.covariance(), np.cov(X, rowvar=False), rtol=1e-10)


@pytest.mark.parametrize("covariance", ["sample", "empirical", 0.3])
def test_coral_fitted_from_streamed_moments_equals_coral_on_the_arrays(tmp_path, covariance):
    """Two domains in shard stores, their moments accumulated shard by shard: CORAL's
    alignment equals the one fitted on the whole arrays."""
    from featkit.align import CORAL

    rng = np.random.default_rng(2)
    Xs = rng.normal(size=(900, 20)) @ rng.normal(size=(20, 20))
    Xt = rng.normal(size=(700, 20)) * rng.uniform(0.5, 3, 20) + 5
    stores = []
    for name, X in (("s", Xs), ("t", Xt)):
        fs = FeatureSet(
            X=X.astype(np.float32),
            y=np.zeros(len(X), int),
            ids=np.arange(len(X)).astype(str).astype(object),
            class_names=["x"],
        )
        stores.append(ShardStore.from_featureset(fs, tmp_path / name, shard_rows=256))
    streamed = [moments((X for X, _ in st.batches()), 20) for st in stores]
    Xs32, Xt32 = Xs.astype(np.float32), Xt.astype(np.float32)
    kw = {"covariance": covariance, "dtype": "float64"}
    whole = CORAL(**kw).fit_domains(Xs32, Xt32)
    piecewise = CORAL(**kw).fit_moments(*streamed)
    np.testing.assert_allclose(
        piecewise.transform_matrix_, whole.transform_matrix_, rtol=1e-8, atol=1e-10
    )
    np.testing.assert_allclose(
        piecewise.transform_source(Xs32), whole.transform_source(Xs32), rtol=1e-8, atol=1e-8
    )
    np.testing.assert_allclose(
        piecewise.transform_target(Xt32), whole.transform_target(Xt32), atol=1e-8
    )


def test_coral_from_moments_refuses_what_needs_the_rows():
    from featkit.align import CORAL

    a, b = RunningMoments(3).update(np.eye(3)), RunningMoments(4).update(np.eye(4))
    with pytest.raises(featkit.InvalidParameterError, match="needs the rows"):
        CORAL(covariance="ledoit-wolf").fit_moments(a, a)
    with pytest.raises(featkit.InvalidParameterError, match="3 features, target of 4"):
        CORAL().fit_moments(a, b)
    with pytest.raises(featkit.InvalidParameterError, match="has 1 row"):
        CORAL().fit_moments(a, RunningMoments(3).update(np.ones((1, 3))))


def _two_domains(seed=5, d=20):
    """Source and target rows (float64) with different, strongly anisotropic covariances."""
    rng = np.random.default_rng(seed)
    Xs = rng.normal(size=(900, d)) * np.geomspace(8, 0.1, d) @ _rotation(rng, d) + 3
    Xt = rng.normal(size=(700, d)) * np.geomspace(5, 0.2, d) @ _rotation(rng, d) - 1
    return Xs, Xt


def _rotation(rng, d):
    q, _ = np.linalg.qr(rng.normal(size=(d, d)))
    return q


def _streamed(X, rows=128):
    return moments((X[i : i + rows] for i in range(0, len(X), rows)), X.shape[1])


def test_merged_moments_equal_the_moments_of_both():
    Xs, Xt = _two_domains()
    source = _streamed(Xs)
    pooled = source.copy().merge(_streamed(Xt))
    both = np.concatenate([Xs, Xt])
    np.testing.assert_allclose(pooled.mean, both.mean(axis=0), rtol=1e-12)
    np.testing.assert_allclose(pooled.covariance(), np.cov(both, rowvar=False), rtol=1e-10)
    assert source.n == len(Xs)  # the copy was merged, not the original
    with pytest.raises(featkit.InvalidParameterError, match="merge"):
        source.merge(RunningMoments(3))


@pytest.mark.parametrize("n_components", [6, 0.9])
def test_subspace_alignment_from_moments_equals_the_fit_on_the_arrays(n_components):
    from featkit.align import SubspaceAlignment

    Xs, Xt = _two_domains()
    whole = SubspaceAlignment(n_components).fit_domains(Xs, Xt)
    streamed = SubspaceAlignment(n_components).fit_moments(_streamed(Xs), _streamed(Xt))
    assert streamed.n_components_ == whole.n_components_ and whole.n_components_ < 20
    for name in ("components_source_", "components_target_", "alignment_matrix_"):
        np.testing.assert_allclose(getattr(streamed, name), getattr(whole, name), atol=1e-9)
    np.testing.assert_allclose(streamed.transform_source(Xs), whole.transform_source(Xs), atol=1e-8)
    np.testing.assert_allclose(streamed.transform_target(Xt), whole.transform_target(Xt), atol=1e-8)


@pytest.mark.parametrize(
    ("fit_on", "n_components", "whiten"),
    [("both", 5, False), ("source", 0.95, True), ("target", 3, True)],
)
def test_shared_pca_from_moments_equals_sklearn_pca_on_the_rows(fit_on, n_components, whiten):
    from sklearn.decomposition import PCA

    from featkit.align import SharedPCA

    Xs, Xt = _two_domains()
    rows = {"source": Xs, "target": Xt, "both": np.concatenate([Xs, Xt])}[fit_on]
    reference = PCA(n_components, whiten=whiten, svd_solver="full").fit(rows)
    aligner = SharedPCA(n_components, whiten=whiten, fit_on=fit_on)
    aligner.fit_moments(_streamed(Xs), _streamed(Xt))
    assert aligner.pca_ is None and aligner.n_features_out_ == reference.n_components_
    np.testing.assert_allclose(aligner.components_, reference.components_, atol=1e-9)
    np.testing.assert_allclose(
        aligner.explained_variance_ratio_, reference.explained_variance_ratio_, rtol=1e-9
    )
    np.testing.assert_allclose(aligner.transform_target(Xt), reference.transform(Xt), atol=1e-8)
    # ... and the same as SharedPCA fitted on the arrays.
    on_arrays = SharedPCA(n_components, whiten=whiten, fit_on=fit_on).fit_domains(Xs, Xt)
    np.testing.assert_allclose(
        aligner.transform_source(Xs), on_arrays.transform_source(Xs), atol=1e-6
    )


def test_a_large_batch_is_merged_block_by_block(monkeypatch):
    """update() converts at most BLOCK_ROWS rows to float64 at a time, with the same result."""
    from featkit import stats

    monkeypatch.setattr(stats, "BLOCK_ROWS", 7)
    X = np.random.default_rng(3).normal(size=(100, 5)) * 3 + 2
    running = RunningMoments(5).update(X)
    np.testing.assert_allclose(running.covariance(), np.cov(X, rowvar=False), rtol=1e-12)
    np.testing.assert_allclose(running.mean, X.mean(axis=0), rtol=1e-12)


def _clustered_store(tmp_path, n=6000, dim=24, shard_rows=1000):
    rng = np.random.default_rng(4)
    centres = rng.normal(size=(30, dim)) * 4
    X = (centres[rng.integers(0, 30, n)] + rng.normal(size=(n, dim))).astype(np.float32)
    y = rng.integers(0, 5, n)
    fs = FeatureSet(
        X=X,
        y=y,
        ids=np.asarray([f"r{i}" for i in range(n)], dtype=object),
        class_names=list("abcde"),
    )
    queries = (centres[rng.integers(0, 30, 200)] + rng.normal(size=(200, dim))).astype(np.float32)
    return ShardStore.from_featureset(fs, tmp_path / "s", shard_rows=shard_rows), fs, queries


@pytest.mark.parametrize("metric", ["cosine", "l2"])
def test_an_exact_index_from_a_store_equals_one_from_the_array(tmp_path, metric):
    store, fs, queries = _clustered_store(tmp_path)
    streamed = featkit.FeatureIndex.from_store(store, "Flat", metric)
    whole = featkit.FeatureIndex.from_features(fs, "Flat", metric)
    assert streamed.ids.tolist() == whole.ids.tolist() and len(streamed.ids) == len(fs)
    np.testing.assert_array_equal(streamed.labels, fs.y)
    np.testing.assert_array_equal(streamed.search(queries, 10)[1], whole.search(queries, 10)[1])
    # Exact search shard by shard (merged top-k) equals exact search on the whole array.
    s_scores, s_rows = streamed.exact_search_store(queries, store, 10)
    w_scores, w_rows = whole.exact_search(queries, fs.X, 10)
    np.testing.assert_array_equal(s_rows, w_rows)
    np.testing.assert_allclose(s_scores, w_scores, rtol=1e-5, atol=1e-5)


def test_an_ivf_index_trained_on_a_sample_of_a_store(tmp_path):
    """IVF trained on a 2,000-row sample, filled shard by shard; its recall@10 on held-out
    queries, against exact search streamed over the shards, is what the same index scores
    against exact search on the whole array."""
    from featkit.index import recall_at_k

    store, fs, queries = _clustered_store(tmp_path)
    index = featkit.FeatureIndex.from_store(store, "IVF32,Flat", "l2", train_size=2000, nprobe=1)
    assert len(index.ids) == len(store)
    _, truth = index.exact_search_store(queries, store, 10)
    recall = recall_at_k(index.search(queries, 10)[1], truth)
    assert recall == pytest.approx(index.recall_at_k(queries, 10, database=fs.X))
    assert 0.8 < recall < 1.0  # approximate (0.942 measured), and far from chance
    with pytest.raises(featkit.InvalidParameterError, match="train_size"):
        featkit.FeatureIndex.from_store(store, "IVF32,Flat", train_size=0)


def test_describe_counts_rows_shards_and_failures_of_every_shard(tmp_path):
    provenance = {
        "extractor": {"name": "pixels", "params": {"size": 4}},
        "created": "2024-05-01T10:00:00",
        "timing": {"seconds": 1.5},
        "other": "not described",
    }
    ShardStore.create(tmp_path / "empty", dim=4, class_names=["a", "b"])
    store = ShardStore.create(
        tmp_path / "t", dim=4, class_names=["a", "b"], metadata={"provenance": provenance}
    )
    rows = np.ones((6, 4), np.float32)
    bad = [{"id": f"bad{i}", "source": f"bad{i}.png", "reason": "unreadable"} for i in range(3)]
    store.append(rows[:2], [0, 1], failed=bad[:1])
    store.append(rows[2:5], [1, 1, 0])
    store.append(rows[5:], [0], failed=bad[1:])
    expected = {
        "n": 6,  # 2 + 3 + 1
        "dim": 4,
        "shards": 3,
        "classes": ["a", "b"],
        "domains": None,
        "splits": None,
        "failed": 3,  # 1 in the first shard, 2 in the last
        "extractor": {"name": "pixels", "params": {"size": 4}},
        "created": "2024-05-01T10:00:00",
        "versions": None,
        "timing": {"seconds": 1.5},
    }
    assert ShardStore(tmp_path / "t").describe() == expected
    assert list(store.describe()) == list(expected)  # the order `featkit info --json` prints

    empty = ShardStore(tmp_path / "empty").describe()
    assert (empty["n"], empty["shards"], empty["failed"], empty["extractor"]) == (0, 0, 0, None)

"""FeatureSet: save/load without pickle, memory mapping, selection, npz import."""

from __future__ import annotations

import json

import numpy as np
import pytest

import featkit
from featkit import FeatureSet


def _example(n=12, d=5):
    rng = np.random.default_rng(0)
    return FeatureSet(
        X=rng.normal(size=(n, d)).astype(np.float32),
        y=np.arange(n) % 3,
        ids=[f"img/{i}" for i in range(n)],
        class_names=["a", "b", "c"],
        domains=["src"] * (n // 2) + ["tgt"] * (n - n // 2),
        splits=["train", "test"] * (n // 2),
        failed=[{"id": "img/x", "source": "x.png", "reason": "empty file (0 bytes)"}],
        provenance={"extractor": {"name": "demo"}},
    )


def test_save_load_round_trip_without_pickle(tmp_path):
    fs = _example()
    fs.save(tmp_path / "fs")
    files = sorted(p.name for p in (tmp_path / "fs").iterdir())
    assert files == ["X.npy", "domains.npy", "featureset.json", "ids.npy", "splits.npy", "y.npy"]
    for name in files:
        if name.endswith(".npy"):
            np.load(tmp_path / "fs" / name, allow_pickle=False)  # raises if pickled
    back = FeatureSet.load(tmp_path / "fs")
    assert isinstance(back.X, np.memmap)
    np.testing.assert_array_equal(back.X, fs.X)
    np.testing.assert_array_equal(back.y, fs.y)
    np.testing.assert_array_equal(back.ids, fs.ids)
    np.testing.assert_array_equal(back.domains, fs.domains)
    assert back.class_names == fs.class_names and back.failed == fs.failed
    assert back.provenance == fs.provenance
    assert not isinstance(FeatureSet.load(tmp_path / "fs", mmap=False).X, np.memmap)


def test_select_and_subset():
    fs = _example()
    tgt = fs.select(domain="tgt")
    assert len(tgt) == 6 and set(tgt.domains.tolist()) == {"tgt"}
    np.testing.assert_array_equal(tgt.X, fs.X[6:])
    train = fs.select(split="train")
    assert train.ids.tolist() == [f"img/{i}" for i in range(0, 12, 2)]
    with pytest.raises(featkit.DatasetError, match="no domain 'other'"):
        fs.select(domain="other")


def test_load_errors(tmp_path):
    with pytest.raises(featkit.DatasetError, match=r"featureset\.json is missing"):
        FeatureSet.load(tmp_path)
    (tmp_path / "featureset.json").write_text(json.dumps({"format": "other"}))
    with pytest.raises(featkit.DatasetError, match="not a featkit FeatureSet"):
        FeatureSet.load(tmp_path)


def test_mismatched_lengths_are_refused():
    with pytest.raises(featkit.DatasetError, match="y has 3 entries for 4 rows"):
        FeatureSet(X=np.zeros((4, 2), np.float32), y=[0, 1, 2], ids=list("abcd"), class_names=[])


def test_from_npz(tmp_path):
    rng = np.random.default_rng(1)
    X = rng.normal(size=(8, 3))
    np.savez(tmp_path / "f.npz", X=X, y=np.array(["cat", "dog"] * 4))
    fs = FeatureSet.from_npz(tmp_path / "f.npz")
    assert fs.X.dtype == np.float32 and fs.class_names == ["cat", "dog"]
    np.testing.assert_array_equal(fs.y, [0, 1] * 4)


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda m: m.pop("arrays"), "missing or invalid 'arrays'"),
        (lambda m: m.update(provenance=[]), "missing or invalid 'provenance'"),
        (lambda m: m.update(n="twelve"), "missing or invalid 'n'"),
    ],
)
def test_damaged_manifests_give_clear_errors(tmp_path, mutate, message):
    _example().save(tmp_path / "fs")
    path = tmp_path / "fs" / "featureset.json"
    manifest = json.loads(path.read_text())
    mutate(manifest)
    path.write_text(json.dumps(manifest))
    with pytest.raises(featkit.DatasetError, match=message):
        FeatureSet.load(tmp_path / "fs")


def test_arrays_that_disagree_with_the_manifest_are_refused(tmp_path):
    _example().save(tmp_path / "fs")
    np.save(tmp_path / "fs" / "X.npy", np.zeros((12, 100), np.float32))
    with pytest.raises(featkit.DatasetError, match=r"shape \(12, 100\).*\(12, 5\)"):
        FeatureSet.load(tmp_path / "fs")


def test_save_replaces_a_featureset_and_refuses_other_targets(tmp_path):
    _example(n=12).save(tmp_path / "fs")
    _example(n=6).save(tmp_path / "fs")
    assert len(FeatureSet.load(tmp_path / "fs")) == 6
    assert [p.name for p in tmp_path.iterdir()] == ["fs"]  # no staging folders left
    (tmp_path / "file").write_text("x")
    with pytest.raises(featkit.DatasetError, match="it is a file"):
        _example().save(tmp_path / "file")


def test_paths_expand_the_home_folder(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    _example().save("~/feats")
    assert len(FeatureSet.load("~/feats")) == 12


def test_load_reads_a_features_npz(tmp_path):
    np.savez(tmp_path / "f.npz", X=np.ones((3, 2)), y=[0, 1, 1])
    assert FeatureSet.load(tmp_path / "f.npz").X.shape == (3, 2)


def test_describe_summarises_rows_classes_domains_splits_failures_and_provenance(tmp_path):
    fs = _example(n=8, d=4)
    fs.provenance.update({"created": "2024-05-01T10:00:00", "versions": {"featkit": "9.9"}})
    expected = {
        "n": 8,
        "dim": 4,
        "classes": ["a", "b", "c"],
        "domains": ["src", "tgt"],  # 4 src then 4 tgt, each named once, sorted
        "splits": ["test", "train"],
        "failed": 1,
        "extractor": {"name": "demo"},
        "created": "2024-05-01T10:00:00",
        "versions": {"featkit": "9.9"},
        "timing": None,  # not in the provenance
    }
    assert fs.describe() == expected
    assert list(fs.describe()) == list(expected)  # the order `featkit info --json` prints
    fs.save(tmp_path / "fs")
    assert FeatureSet.load(tmp_path / "fs").describe() == expected
    json.dumps(fs.describe())  # JSON-ready

    bare = FeatureSet(X=np.zeros((2, 3), np.float32), y=[0, 0], ids=["p", "q"], class_names=["x"])
    assert bare.describe() == {
        "n": 2, "dim": 3, "classes": ["x"], "domains": None, "splits": None, "failed": 0,
        "extractor": None, "created": None, "versions": None, "timing": None,
    }  # fmt: skip

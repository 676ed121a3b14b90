"""Evaluation protocols: splits are disjoint, seeded, stratified, and refuse bad input."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.model_selection import StratifiedKFold, train_test_split

from featkit.evaluate import DomainPairs, FewShot, Holdout, KFold, PerClass, make_protocol
from featkit.exceptions import InvalidParameterError

LABELS = np.repeat(np.arange(4), 25)


def test_holdout_matches_sklearn_stratified_split():
    (split,) = Holdout(test_size=0.2, seed=3).splits(LABELS)
    train, test = train_test_split(np.arange(100), test_size=0.2, random_state=3, stratify=LABELS)
    np.testing.assert_array_equal(split.train, np.sort(train))
    np.testing.assert_array_equal(split.test, np.sort(test))
    np.testing.assert_array_equal(split.fit, split.train)  # codebooks never see test rows


def test_holdout_uses_the_datasets_own_split():
    splits = np.array(["train"] * 70 + ["test"] * 30)
    proto = Holdout()
    (split,) = proto.splits(LABELS, splits)
    np.testing.assert_array_equal(split.test, np.arange(70, 100))
    assert "own" in proto.describe()


def test_kfold_scores_every_row_once_and_matches_sklearn():
    folds = KFold(4, seed=1).splits(LABELS)
    tested = np.sort(np.concatenate([f.test for f in folds]))
    np.testing.assert_array_equal(tested, np.arange(100))
    reference = StratifiedKFold(4, shuffle=True, random_state=1).split(LABELS, LABELS)
    for fold, (train, test) in zip(folds, reference, strict=True):
        np.testing.assert_array_equal(fold.test, test)
        np.testing.assert_array_equal(fold.train, train)
        assert not set(fold.train) & set(fold.test)
    assert [f.info["fold"] for f in folds] == [1, 2, 3, 4]


def test_fewshot_draws_n_per_class_from_the_training_rows():
    proto = FewShot(shots=3, repeats=4, seed=0)
    (base,) = Holdout(seed=0).splits(LABELS)
    draws = proto.splits(LABELS)
    assert len(draws) == 4
    for d in draws:
        assert np.bincount(LABELS[d.train]).tolist() == [3, 3, 3, 3]
        assert set(d.train) <= set(base.train)
        np.testing.assert_array_equal(d.test, base.test)
        np.testing.assert_array_equal(d.fit, base.train)
    assert len({d.train.tobytes() for d in draws}) == 4  # different draws
    again = FewShot(shots=3, repeats=4, seed=0).splits(LABELS)
    assert all((a.train == b.train).all() for a, b in zip(draws, again, strict=True))


def test_fewshot_refuses_more_shots_than_a_class_has():
    labels = np.array([0] * 20 + [1] * 4)
    with pytest.raises(InvalidParameterError, match="class 1 has only"):
        FewShot(shots=5).splits(labels)


def test_perclass_trains_on_n_per_class_and_tests_on_the_rest():
    labels = np.array([0] * 31 + [1] * 80 + [2] * 45)  # Caltech-101's smallest class: 31
    draws = PerClass(30, repeats=3, seed=0).splits(labels)
    assert len(draws) == 3
    for d in draws:
        assert np.bincount(labels[d.train]).tolist() == [30, 30, 30]
        assert np.bincount(labels[d.test]).tolist() == [1, 50, 15]
        assert not set(d.train) & set(d.test)
        assert len(d.train) + len(d.test) == len(labels)
        np.testing.assert_array_equal(d.fit, d.train)  # the GMM learns from training images
        assert d.info["shots"] == 30
    assert len({d.test.tobytes() for d in draws}) == 3  # the test rows change with the draw
    again = PerClass(30, repeats=3, seed=0).splits(labels)
    assert all((a.train == b.train).all() for a, b in zip(draws, again, strict=True))
    capped = PerClass(30, max_test=20, seed=0).splits(labels)[0]
    assert np.bincount(labels[capped.test]).tolist() == [1, 20, 15]
    assert set(capped.test) <= set(draws[0].test)


def test_perclass_needs_one_test_image_beyond_the_training_ones():
    with pytest.raises(InvalidParameterError, match="class 0 has 30 images"):
        PerClass(30).splits(np.array([0] * 30 + [1] * 40))
    with pytest.raises(InvalidParameterError, match="unlabelled"):
        PerClass(1).splits(np.array([0, 0, 1, 1, -1]))


def test_domain_pairs_cover_every_ordered_pair():
    domains = np.array(["a"] * 30 + ["b"] * 30 + ["c"] * 40)
    pairs = DomainPairs().splits(LABELS, domains=domains)
    assert [p.name for p in pairs] == ["a→b", "a→c", "b→a", "b→c", "c→a", "c→b"]
    first = pairs[0]
    assert set(domains[first.train]) == {"a"} and set(domains[first.test]) == {"b"}
    assert first.info == {"source": "a", "target": "b"}


def test_domain_pairs_errors_are_clear():
    with pytest.raises(InvalidParameterError, match="needs a data set with domains"):
        DomainPairs().splits(LABELS)
    with pytest.raises(InvalidParameterError, match="2 domains or more"):
        DomainPairs().splits(LABELS, domains=np.array(["a"] * 100))
    with pytest.raises(InvalidParameterError, match="unknown domain 'z'"):
        DomainPairs([("a", "z")]).splits(LABELS, domains=np.array(["a", "b"] * 50))
    with pytest.raises(InvalidParameterError, match="test on its training rows"):
        DomainPairs([("a", "a")]).splits(LABELS, domains=np.array(["a", "b"] * 50))
    with pytest.raises(InvalidParameterError, match="empty list"):
        DomainPairs([]).splits(LABELS, domains=np.array(["a", "b"] * 50))


def test_fewshot_refuses_a_class_missing_from_the_training_pool():
    labels = np.array([0] * 40 + [1] * 40 + [2] * 4)
    splits = np.array(["train"] * 80 + ["test"] * 4)  # class 2 only in the test rows
    with pytest.raises(InvalidParameterError, match="class 2 has only 0"):
        FewShot(shots=1).splits(labels, splits)


@pytest.mark.parametrize(
    ("spec", "kind", "attrs"),
    [
        ("holdout", Holdout, {"seed": 7}),
        ("kfold:10", KFold, {"n_splits": 10, "seed": 7}),
        ("fewshot:5x3", FewShot, {"shots": 5, "repeats": 3}),
        ("fewshot", FewShot, {"shots": 5, "repeats": 5}),
        ("perclass", PerClass, {"n_train": 30, "repeats": 1, "max_test": None, "seed": 7}),
        ("perclass:15x3", PerClass, {"n_train": 15, "repeats": 3, "max_test": None}),
        ("perclass:30x5/50", PerClass, {"n_train": 30, "repeats": 5, "max_test": 50}),
        ("domains", DomainPairs, {}),
    ],
)
def test_make_protocol_parses_the_cli_spelling(spec, kind, attrs):
    proto = make_protocol(spec, seed=7)
    assert isinstance(proto, kind)
    assert {k: getattr(proto, k) for k in attrs} == attrs


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("loo", "unknown protocol"),
        ("kfold:x", "unknown protocol"),
        ("holdout:3", "unknown protocol"),
        ("kfold:1", "n_splits"),
        ("fewshot:0", "shots"),
        ("perclass:0", "n_train"),
        ("perclass:5x2/0", "max_test"),
        ("perclass:ax2", "unknown protocol"),
    ],
)
def test_make_protocol_rejects_bad_specs(spec, message):
    with pytest.raises(InvalidParameterError, match=message):
        make_protocol(spec)

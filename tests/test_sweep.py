"""CSweepClassifier: the C it picks equals a plain GridSearchCV over the same values."""

from __future__ import annotations

import logging

import numpy as np
import pytest
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.datasets import load_digits
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GridSearchCV, StratifiedKFold
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.svm import LinearSVC

from featkit.classify import CSweepClassifier, make_classifier
from featkit.exceptions import InvalidParameterError


@pytest.fixture(scope="module")
def digits():
    X, y = load_digits(return_X_y=True)
    return X[:600], y[:600]


def test_scores_and_choice_equal_grid_search_on_the_values_tried(digits):
    X, y = digits
    svm = make_pipeline(StandardScaler(), LinearSVC(dual=True, max_iter=5000))
    sweep = CSweepClassifier(svm, low=1e-3, high=1e3, refine=False, cv=3).fit(X, y)
    tried = [r["C"] for r in sweep.cv_results_]
    grid = GridSearchCV(
        svm,
        {"linearsvc__C": tried},
        cv=StratifiedKFold(3, shuffle=True, random_state=0),
    ).fit(X, y)
    np.testing.assert_allclose(
        [r["score"] for r in sweep.cv_results_], grid.cv_results_["mean_test_score"]
    )
    assert sweep.best_params_["C"] == pytest.approx(grid.best_params_["linearsvc__C"])
    # Refitted on all the training rows with the chosen C.
    np.testing.assert_array_equal(sweep.predict(X), grid.best_estimator_.predict(X))
    # Two decades without a gain end the coarse pass: the slow weakly regularised fits
    # at the top of the range are skipped.
    assert len(tried) < 7 and max(tried) < 1e3


def test_warm_started_path_gives_the_cold_scores(digits):
    X, y = digits
    logreg = make_pipeline(StandardScaler(), LogisticRegression(max_iter=3000, tol=1e-8))
    sweep = CSweepClassifier(logreg, low=1e-3, high=1e1, refine=False, cv=3).fit(X, y)
    tried = [r["C"] for r in sweep.cv_results_]
    grid = GridSearchCV(
        logreg,
        {"logisticregression__C": tried},
        cv=StratifiedKFold(3, shuffle=True, random_state=0),
    ).fit(X, y)
    np.testing.assert_allclose(
        [r["score"] for r in sweep.cv_results_], grid.cv_results_["mean_test_score"], atol=0.002
    )


def test_refinement_tries_half_decades_around_the_best(digits):
    X, y = digits
    sweep = CSweepClassifier(LogisticRegression(max_iter=500), low=1e-2, high=1e2).fit(X, y)
    tried = sorted(r["C"] for r in sweep.cv_results_)
    best_coarse = max(
        (r for r in sweep.cv_results_ if np.isclose(np.log10(r["C"]) % 1, 0)),
        key=lambda r: r["score"],
    )["C"]
    for q in (-0.5, 0.5):
        assert any(np.isclose(t, best_coarse * 10**q) for t in tried)
    assert sweep.best_score_ == max(r["score"] for r in sweep.cv_results_)


def test_single_image_classes_use_the_middle_of_the_grid(caplog):
    X = np.random.default_rng(0).normal(size=(12, 4))
    y = np.array([0] * 6 + [1] * 5 + [2])
    with caplog.at_level(logging.WARNING, logger="featkit.classify.sweep"):
        sweep = CSweepClassifier(LogisticRegression(C=0.3), low=1e-4, high=1.0).fit(X, y)
    assert sweep.best_params_["C"] == pytest.approx(1e-2)
    assert sweep.best_estimator_.C == pytest.approx(1e-2)
    assert "single training image" in caplog.text


class Step(ClassifierMixin, BaseEstimator):
    """Right (reads the label off column 0) when ``C`` is in [on, off), else always class 0:
    a validation curve with a plateau before its rise, where ties must not stop a sweep."""

    def __init__(self, C=1.0, on=0.1, off=np.inf):
        self.C, self.on, self.off = C, on, off

    def fit(self, X, y):
        self.classes_ = np.unique(y)
        return self

    def predict(self, X):
        right = self.on <= self.C < self.off
        return np.asarray(X)[:, 0].astype(int) if right else np.zeros(len(X), dtype=int)


@pytest.mark.parametrize(("on", "off"), [(0.1, np.inf), (0.5, 5.0), (1e-3, 2e-3)])
def test_plateaus_do_not_stop_the_sweep_short(on, off):
    y = np.repeat([0, 1], 50)
    X = np.c_[y, np.zeros(100)]
    sweep = CSweepClassifier(Step(on=on, off=off), low=1e-4, high=1e2, refine=False).fit(X, y)
    assert on <= sweep.best_params_["C"] < off
    assert sweep.best_score_ == 1.0


@pytest.mark.parametrize(("on", "off", "edge"), [(1e-6, 2e-4, 1e-5), (50.0, np.inf, 1e3)])
def test_grid_grows_past_an_edge_that_beats_its_neighbour(on, off, edge):
    y = np.repeat([0, 1], 50)
    X = np.c_[y, np.zeros(100)]
    sweep = CSweepClassifier(Step(on=on, off=off), low=1e-4, high=1e2, refine=False).fit(X, y)
    tried = [r["C"] for r in sweep.cv_results_]
    assert any(np.isclose(t, edge) for t in tried)
    assert on <= sweep.best_params_["C"] < off


def test_grid_stays_put_when_the_edge_only_ties():
    y = np.repeat([0, 1], 50)
    X = np.c_[y, np.zeros(100)]
    sweep = CSweepClassifier(Step(on=0.0), low=1e-10, high=1e-6, refine=False).fit(X, y)
    tried = [r["C"] for r in sweep.cv_results_]
    assert min(tried) == pytest.approx(1e-10)  # all tie: no extension below the grid
    assert sweep.best_params_["C"] == pytest.approx(1e-10)  # ties: the smallest C


def test_fewshot_sized_training_sets_hold_out_one_image_per_class():
    X, y = load_digits(return_X_y=True)
    idx = np.concatenate([np.flatnonzero(y == c)[:3] for c in range(10)])
    sweep = CSweepClassifier(LogisticRegression(max_iter=500), refine=False)
    sweep.fit(X[idx], y[idx])  # 30 images, 10 classes: 20% would be 6 < 10 classes
    assert sweep.predict(X[:5]).shape == (5,)


def test_bad_cv_is_a_clear_error(digits):
    X, y = digits
    with pytest.raises(InvalidParameterError, match="folds need 500 training images"):
        CSweepClassifier(LogisticRegression(), cv=500).fit(X, y)


@pytest.mark.parametrize("name", ["svm", "logreg", "rbf-svm"])
def test_presets_choose_C_on_the_training_set(name, digits):
    X, y = digits
    clf = make_classifier(name).fit(X[::2], y[::2])
    assert set(clf.best_params_) == {"C"}
    assert (clf.predict(X[1::2]) == y[1::2]).mean() > 0.9


def test_unknown_preset_lists_the_choices():
    with pytest.raises(InvalidParameterError, match="knn, logreg, probe, rbf-svm, svm"):
        make_classifier("forest")


def test_max_samples_sweeps_on_a_subsample_and_refits_on_all(digits):
    X, y = digits
    sweep = CSweepClassifier(
        LogisticRegression(max_iter=1000), low=1e-2, high=1.0, refine=False, max_samples=200
    ).fit(X, y)
    reference = LogisticRegression(max_iter=1000, C=sweep.best_params_["C"]).fit(X, y)
    np.testing.assert_allclose(sweep.best_estimator_.coef_, reference.coef_, rtol=1e-6)
    # 200 rows, 20% held out: every validation score is a multiple of 1/40.
    for r in sweep.cv_results_:
        assert r["score"] * 40 == pytest.approx(round(r["score"] * 40))

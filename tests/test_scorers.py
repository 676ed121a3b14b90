"""featkit.align.scorers and selection against SKADA's scorers, explicit formulas and
GridSearchCV by hand."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import sklearn
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GridSearchCV, StratifiedKFold
from sklearn.preprocessing import StandardScaler
from sklearn.svm import LinearSVC

from featkit.align import CORAL, TCA, SubspaceAlignment, make_da_pipeline, stack_domains
from featkit.align import scorers as fs
from featkit.align.selection import (
    DEFAULT_GRIDS,
    SCORERS,
    DomainHoldout,
    make_scorer,
    select_params,
    selection_pipeline,
)
from featkit.exceptions import InvalidParameterError
from tests.test_align import _digits_domains, _office_domains

skada = pytest.importorskip("skada", reason="skada is in the test extras")
sm = pytest.importorskip("skada.metrics")

TOL = 1e-10


@pytest.fixture(scope="module", params=["office-caltech", "digits"])
def fitted(request):
    """A fitted featkit pipeline, and its rows: source labels, target labels masked."""
    if request.param == "office-caltech":
        Xs, Xt, ys = _office_domains("amazon", "webcam")
        aligner = SubspaceAlignment(20)
    else:
        Xs, Xt, ys = _digits_domains()
        aligner = CORAL(reg=0.1, dtype="float64")
    X, y, sd = stack_domains(Xs, Xt, ys)
    pipe = make_da_pipeline(StandardScaler(), aligner, LogisticRegression(max_iter=500))
    return pipe.fit(X, y, sample_domain=sd), X, y, sd


PAIRS = {
    "importance-weighted": (sm.ImportanceWeightedScorer, fs.ImportanceWeightedScorer, {}),
    "entropy": (sm.PredictionEntropyScorer, fs.PredictionEntropyScorer, {}),
    "entropy-sum": (
        lambda: sm.PredictionEntropyScorer(reduction="sum"),
        lambda: fs.PredictionEntropyScorer(reduction="sum"),
        {},
    ),
    "snd": (sm.SoftNeighborhoodDensity, fs.SoftNeighborhoodDensity, {}),
    "snd-T": (
        lambda: sm.SoftNeighborhoodDensity(T=0.5),
        lambda: fs.SoftNeighborhoodDensity(T=0.5),
        {},
    ),
    "dev-skada": (
        lambda: sm.DeepEmbeddedValidation(random_state=3),
        lambda: fs.DeepEmbeddedValidation(random_state=3, skada_compatible=True),
        {},
    ),
    "circular": (sm.CircularValidation, fs.CircularValidation, {}),
    "mixval": (
        lambda: sm.MixValScorer(random_state=5),
        lambda: fs.MixValScorer(random_state=5),
        {},
    ),
}


def _quiet(scorer, *args, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return scorer(*args, **kwargs)


@pytest.mark.parametrize("name", sorted(PAIRS))
def test_scorer_equals_skada_on_the_same_pipeline(fitted, name):
    pipe, X, y, sd = fitted
    theirs, ours, _ = PAIRS[name]
    expected = _quiet(theirs(), pipe, X, y, sample_domain=sd)
    got = _quiet(ours(), pipe, X, y, sample_domain=sd)
    assert np.isfinite(got)
    assert abs(got - expected) <= TOL * max(1.0, abs(expected))
    # Without sample_domain, the target is the rows labelled -1: the same score.
    assert abs(_quiet(ours(), pipe, X, y) - got) <= TOL * max(1.0, abs(got))


@pytest.mark.parametrize("name", ["entropy", "snd", "dev-skada", "circular", "mixval"])
def test_featkit_scorer_equals_skada_on_a_skada_pipeline(name):
    Xs, Xt, ys = _digits_domains()
    X, y, sd = stack_domains(Xs, Xt, ys)
    pipe = skada.make_da_pipeline(
        StandardScaler(),
        skada.SubspaceAlignmentAdapter(n_components=10),
        LogisticRegression(max_iter=500),
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        pipe.fit(X, y, sample_domain=sd)
    theirs, ours, _ = PAIRS[name]
    expected = _quiet(theirs(), pipe, X, y, sample_domain=sd)
    got = _quiet(ours(), pipe, X, y, sample_domain=sd)
    assert abs(got - expected) <= TOL * max(1.0, abs(expected))


def test_entropy_is_the_explicit_formula(fitted):
    pipe, X, y, sd = fitted
    p = pipe.predict_proba(X[sd < 0], sample_domain=sd[sd < 0])
    expected = np.mean(-p * np.log(p + 1e-7))
    assert abs(fs.PredictionEntropyScorer()(pipe, X, y, sd) + expected) < TOL


def test_importance_weights_are_the_kernel_density_ratio():
    """Gaussian kernels of bandwidth 1: w_i proportional to mean_j k(xs_i, xt_j) divided
    by mean_j k(xs_i, xs_j), written out in numpy."""
    rng = np.random.default_rng(0)
    Xs, Xt = rng.standard_normal((60, 3)), rng.standard_normal((40, 3)) + 0.7

    def density(A, B):
        d2 = ((A[:, None, :] - B[None, :, :]) ** 2).sum(-1)
        return np.exp(-0.5 * d2).mean(1)

    w = density(Xs, Xt) / density(Xs, Xs)
    got = fs.ImportanceWeightedScorer().weights(Xs, Xt)
    np.testing.assert_allclose(got, w / w.sum(), rtol=1e-9)


def test_importance_weighted_is_the_weighted_source_accuracy(fitted):
    pipe, X, y, sd = fitted
    scorer = fs.ImportanceWeightedScorer()
    w = scorer.weights(X[sd > 0], X[sd < 0])
    right = pipe.predict(X[sd > 0], sample_domain=sd[sd > 0]) == y[sd > 0]
    assert abs(scorer(pipe, X, y, sd) - np.sum(w * right)) < TOL


def test_dev_follows_the_paper_and_skada_broadcasts(fitted):
    """The paper's control variate from featkit's weights and losses; SKADA 0.6's value is
    the (n, 1) * (n,) broadcast of the same parts (or, once fixed there, the paper's)."""
    pipe, X, y, sd = fitted
    ours = fs.DeepEmbeddedValidation(random_state=3)
    w, loss = ours.parts(pipe, X, y, sd)
    wl = w * loss
    eta = -np.cov(wl, w)[0, 1] / np.var(w, ddof=1)
    paper = np.mean(wl) + eta * np.mean(w) - eta
    assert abs(ours(pipe, X, y, sd) + paper) < TOL  # a loss: negated
    broadcast = np.mean(w) * np.mean(loss) + loss[0] * loss[1] * (1 - np.mean(w))
    theirs = -_quiet(sm.DeepEmbeddedValidation(random_state=3), pipe, X, y, sample_domain=sd)
    assert abs(theirs - broadcast) < 1e-8 * abs(broadcast) or abs(theirs - paper) < TOL


def test_scorers_need_probabilities_and_masked_labels(fitted):
    _, X, y, sd = fitted
    svm = make_da_pipeline(StandardScaler(), CORAL(), LinearSVC()).fit(X, y, sample_domain=sd)
    with pytest.raises(InvalidParameterError, match="predict_proba"):
        fs.PredictionEntropyScorer()(svm, X, y, sd)
    pipe = fitted[0]
    unmasked = np.where(y < 0, 0, y)
    with pytest.raises(InvalidParameterError, match="mask the target labels"):
        fs.CircularValidation()(pipe, X, unmasked, sd)
    with pytest.raises(InvalidParameterError, match="unknown selection scorer 'nope'"):
        make_scorer("nope")
    assert isinstance(make_scorer("default"), fs.DomainScorer)


# --- GridSearchCV ----------------------------------------------------------------------------


@pytest.mark.parametrize("routing", [False, True])
@pytest.mark.parametrize("scorer_name", ["entropy", "importance-weighted", "circular"])
def test_grid_search_equals_a_loop_over_the_grid(routing, scorer_name):
    Xs, Xt, ys = _digits_domains()
    X, y, sd = stack_domains(Xs, Xt, ys)
    pipe = make_da_pipeline(StandardScaler(), CORAL(dtype="float64"), LogisticRegression())
    grid = [0.01, 1.0, 100.0]
    cv = StratifiedKFold(3, shuffle=True, random_state=0)
    scorer = make_scorer(scorer_name)
    with sklearn.config_context(enable_metadata_routing=routing):
        search = GridSearchCV(pipe, {"coral__reg": grid}, scoring=scorer, cv=cv, refit=False)
        _quiet(search.fit, X, y, sample_domain=sd)
    by_hand = []
    for reg in grid:
        folds = []
        for train, test in cv.split(X, y):
            est = sklearn.base.clone(pipe).set_params(coral__reg=reg)
            est.fit(X[train], y[train], sample_domain=sd[train])
            folds.append(_quiet(scorer, est, X[test], y[test], sample_domain=sd[test]))
        by_hand.append(np.mean(folds))
    np.testing.assert_allclose(search.cv_results_["mean_test_score"], by_hand, atol=1e-12)
    assert search.best_params_ == {"coral__reg": grid[int(np.argmax(by_hand))]}


def test_select_params_is_the_grid_search_on_the_holdout():
    Xs, Xt, ys = _office_domains("amazon", "dslr")
    X, y, sd = stack_domains(Xs, Xt, ys)
    grid = {"n_components": [5, 10], "mu": [0.1, 10.0]}
    best, table = select_params(TCA(), Xs, ys, Xt, scorer="entropy", grid=grid, seed=1)
    assert [row["params"] for row in table] == [
        {"mu": mu, "n_components": k} for mu in grid["mu"] for k in grid["n_components"]
    ]
    ((train, test),) = DomainHoldout(random_state=1).split(X, y)
    assert set(np.flatnonzero(sd < 0)) <= set(train) & set(test)
    assert not set(train) & set(test) & set(np.flatnonzero(sd > 0))
    scores = []
    for row in table:
        est = selection_pipeline(TCA(**row["params"])).fit(X[train], y[train])
        scores.append(fs.PredictionEntropyScorer()(est, X[test], y[test]))
    np.testing.assert_allclose([row["score"] for row in table], scores, atol=1e-12)
    assert best == table[int(np.argmax(scores))]["params"]


def test_default_grids_fit_the_aligners():
    from featkit.align import make_aligner

    for name, grid in DEFAULT_GRIDS.items():
        make_aligner(name, **{k: v[0] for k, v in grid.items()})
    assert set(SCORERS) >= {"importance-weighted", "entropy", "snd", "dev", "circular"}
    with pytest.raises(InvalidParameterError, match="no default grid for aligner 'lda'"):
        select_params(CORAL(), np.zeros((4, 2)), [0, 1, 0, 1], np.ones((3, 2)), name="lda")

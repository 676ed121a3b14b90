"""LinearProbe finds scikit-learn's LogisticRegression solution and follows its conventions."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
from scipy.special import logsumexp
from sklearn.datasets import load_digits
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GridSearchCV, StratifiedKFold, train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.utils.estimator_checks import parametrize_with_checks
from threadpoolctl import threadpool_limits

import featkit
from featkit.classify import probe as probe_module
from featkit.classify.probe import LinearProbe
from featkit.exceptions import InvalidParameterError


@pytest.fixture(autouse=True)
def one_thread():
    """scikit-learn's references on one thread: its OpenMP / BLAS threads on these small
    problems made a 66-iteration fit take 7 s instead of 0.3 s on a busy 2-core machine."""
    with threadpool_limits(1):
        yield


@pytest.fixture(scope="module")
def digits():
    """Standardised digits pixels, float32, a stratified 70/30 split."""
    X, y = load_digits(return_X_y=True)
    Xtr, Xte, ytr, yte = train_test_split(X, y, test_size=0.3, random_state=0, stratify=y)
    scaler = StandardScaler().fit(Xtr)
    return (
        scaler.transform(Xtr).astype(np.float32),
        scaler.transform(Xte).astype(np.float32),
        ytr,
        yte,
    )


@pytest.fixture(scope="module")
def hog_digits():
    """featkit HOG features of digits (32 x 32 images: 324-d), split like ``digits``."""
    fs = featkit.extract(featkit.create_extractor("hog", size=(32, 32)), "digits", progress=False)
    return train_test_split(fs.X, fs.y, test_size=0.3, random_state=0, stratify=fs.y)


def sklearn_objective(X, y, coef, intercept, C):
    """scikit-learn's (mean-scaled) l2 logistic objective in float64, written out here."""
    X, W, b = X.astype(np.float64), coef.astype(np.float64), intercept.astype(np.float64)
    Z = X @ W.T + b
    if W.shape[0] == 1:
        ce = np.logaddexp(0.0, Z[:, 0]) - y * Z[:, 0]
    else:
        ce = logsumexp(Z, axis=1) - Z[np.arange(len(y)), y]
    return ce.mean() + 0.5 / (C * len(y)) * (W * W).sum()


def reference(X, y, C, **kw):
    """scikit-learn's solution, converged far past its default tolerance."""
    return LogisticRegression(C=C, tol=1e-10, max_iter=10000, **kw).fit(X.astype(np.float64), y)


@pytest.mark.parametrize("C", [0.01, 1.0, 100.0])
def test_same_solution_as_sklearn_in_float64(digits, C):
    Xtr, Xte, ytr, _ = digits
    ref = reference(Xtr, ytr, C)
    ours = LinearProbe(C=C, dtype="float64", tol=1e-9, max_iter=5000).fit(Xtr, ytr)
    scale = np.abs(ref.coef_).max()
    assert ours.coef_.shape == ref.coef_.shape == (10, 64)
    assert np.abs(ours.coef_ - ref.coef_).max() < 1e-4 * scale
    np.testing.assert_allclose(ours.intercept_, ref.intercept_, atol=1e-4 * scale)
    np.testing.assert_array_equal(ours.predict(Xte), ref.predict(Xte))
    np.testing.assert_allclose(ours.predict_proba(Xte), ref.predict_proba(Xte), atol=1e-4)
    # loss_ is scikit-learn's mean-scaled objective, computed independently here
    obj = sklearn_objective(Xtr, ytr, ours.coef_, ours.intercept_, C)
    assert ours.loss_ == pytest.approx(obj, rel=1e-9)
    assert obj == pytest.approx(
        sklearn_objective(Xtr, ytr, ref.coef_, ref.intercept_, C), abs=1e-10
    )


@pytest.mark.parametrize("C", [0.1, 1.0])
def test_default_float32_matches_sklearn_accuracy_on_pixels(digits, C):
    Xtr, Xte, ytr, yte = digits
    ref = reference(Xtr, ytr, C)
    ours = LinearProbe(C=C).fit(Xtr, ytr)
    assert abs(ours.score(Xte, yte) - ref.score(Xte, yte)) <= 0.005
    # tol=1e-4 stops short of the exact optimum, as scikit-learn's default does
    assert np.abs(ours.coef_ - ref.coef_).max() < 0.05 * np.abs(ref.coef_).max()
    assert ours.coef_.dtype == np.float32


def test_same_solution_as_sklearn_on_hog_features(hog_digits):
    Xtr, Xte, ytr, yte = hog_digits
    ref = LogisticRegression(C=0.1, tol=1e-6, max_iter=10000).fit(Xtr.astype(np.float64), ytr)
    ours = LinearProbe(C=0.1, dtype="float64", tol=1e-6).fit(Xtr, ytr)
    assert np.abs(ours.coef_ - ref.coef_).max() < 1e-3 * np.abs(ref.coef_).max()
    fast = LinearProbe(C=0.1).fit(Xtr, ytr)  # defaults: float32, tol=1e-4
    assert abs(fast.score(Xte, yte) - ref.score(Xte, yte)) <= 0.005
    assert ref.score(Xte, yte) > 0.95


def test_binary_uses_one_logit_like_sklearn(digits):
    Xtr, Xte, ytr, _ = digits
    keep = np.isin(ytr, [3, 8])
    labels = np.where(ytr[keep] == 3, "three", "eight")
    ref = reference(Xtr[keep], labels, 0.5)
    ours = LinearProbe(C=0.5, dtype="float64", tol=1e-9).fit(Xtr[keep], labels)
    assert ours.coef_.shape == ref.coef_.shape == (1, 64)
    assert ours.intercept_.shape == (1,)
    np.testing.assert_allclose(ours.coef_, ref.coef_, atol=1e-5)
    np.testing.assert_allclose(ours.intercept_, ref.intercept_, atol=1e-5)
    decision = ours.decision_function(Xte)
    assert decision.shape == (len(Xte),)
    np.testing.assert_allclose(decision, ref.decision_function(Xte), atol=1e-4)
    np.testing.assert_array_equal(ours.predict(Xte), ref.predict(Xte))
    np.testing.assert_allclose(ours.predict_proba(Xte), ref.predict_proba(Xte), atol=1e-5)


def test_sample_weight_and_no_intercept_match_sklearn(digits):
    Xtr, _, ytr, _ = digits
    X64 = Xtr.astype(np.float64)
    sw = np.random.default_rng(0).uniform(0.1, 3.0, len(ytr))
    ref = LogisticRegression(tol=1e-8, max_iter=5000).fit(X64, ytr, sample_weight=sw)
    ours = LinearProbe(dtype="float64", tol=1e-8).fit(Xtr, ytr, sample_weight=sw)
    np.testing.assert_allclose(ours.coef_, ref.coef_, atol=1e-4)
    ref = LogisticRegression(tol=1e-8, max_iter=5000, fit_intercept=False).fit(X64, ytr)
    ours = LinearProbe(dtype="float64", tol=1e-8, fit_intercept=False).fit(Xtr, ytr)
    np.testing.assert_allclose(ours.coef_, ref.coef_, atol=1e-4)
    assert not ours.intercept_.any()


def test_offset_features_converge_in_few_iterations(digits):
    # Centring is internal: a large common offset changes neither the solution nor (much)
    # the iteration count, while scikit-learn's L-BFGS needs many more iterations.
    Xtr, _, ytr, _ = digits
    shifted = Xtr + 20.0
    plain = LinearProbe(dtype="float64", tol=1e-8).fit(Xtr, ytr)
    ours = LinearProbe(dtype="float64", tol=1e-8).fit(shifted, ytr)
    np.testing.assert_allclose(ours.coef_, plain.coef_, atol=1e-4)
    np.testing.assert_allclose(ours.predict_proba(shifted), plain.predict_proba(Xtr), atol=1e-5)
    assert ours.n_iter_[0] <= 2 * plain.n_iter_[0]


def test_sgd_is_seeded_and_close_to_lbfgs(digits):
    Xtr, Xte, ytr, yte = digits
    kw = {"solver": "sgd", "batch_size": 64, "epochs": 20, "random_state": 3}
    a = LinearProbe(**kw).fit(Xtr, ytr)
    b = LinearProbe(**kw).fit(Xtr, ytr)
    c = LinearProbe(**{**kw, "random_state": 4}).fit(Xtr, ytr)
    np.testing.assert_array_equal(a.coef_, b.coef_)
    assert not np.array_equal(a.coef_, c.coef_)
    exact = LinearProbe(dtype="float64", tol=1e-8).fit(Xtr, ytr)
    assert a.n_iter_[0] == 20
    # close to the optimum of the same objective, and as accurate within two points
    assert a.loss_ - exact.loss_ < 0.05
    assert a.loss_ == pytest.approx(sklearn_objective(Xtr, ytr, a.coef_, a.intercept_, 1.0))
    assert abs(a.score(Xte, yte) - exact.score(Xte, yte)) <= 0.02


def test_pipeline_and_grid_search_pick_the_same_C_as_sklearn():
    X, y = load_digits(return_X_y=True)
    X, y = X[:600], y[:600]
    grid = [0.001, 0.01, 0.1, 1.0]
    cv = StratifiedKFold(3, shuffle=True, random_state=0)
    ours = GridSearchCV(
        make_pipeline(StandardScaler(), LinearProbe()), {"linearprobe__C": grid}, cv=cv
    ).fit(X, y)
    ref = GridSearchCV(
        make_pipeline(StandardScaler(), LogisticRegression(max_iter=5000)),
        {"logisticregression__C": grid},
        cv=cv,
    ).fit(X, y)
    np.testing.assert_allclose(
        ours.cv_results_["mean_test_score"], ref.cv_results_["mean_test_score"], atol=0.005
    )
    assert ours.best_params_["linearprobe__C"] == ref.best_params_["logisticregression__C"]


def test_chunked_predict_and_threads_restored(digits, monkeypatch):
    Xtr, Xte, ytr, _ = digits
    before = torch.get_num_threads()
    clf = LinearProbe(n_jobs=before + 1).fit(Xtr, ytr)  # a different setting, then restored
    whole = clf.decision_function(Xte)
    monkeypatch.setattr(probe_module, "PREDICT_CHUNK", 7)
    np.testing.assert_allclose(clf.decision_function(Xte), whole, rtol=1e-6, atol=1e-6)
    expected = Xte.astype(np.float64) @ clf.coef_.T.astype(np.float64) + clf.intercept_
    np.testing.assert_allclose(whole, expected, rtol=1e-5, atol=1e-4)
    assert torch.get_num_threads() == before


def test_max_iter_warns(digits):
    Xtr, _, ytr, _ = digits
    with pytest.warns(ConvergenceWarning, match="did not converge") as caught:
        clf = LinearProbe(max_iter=2).fit(Xtr, ytr)
    assert clf.n_iter_[0] == 2
    assert caught[0].filename == __file__  # it names the line that called fit
    with pytest.warns(ConvergenceWarning, match="did not converge") as caught:
        LinearProbe(max_iter=2, standardize=True, gram=True).fit(Xtr[:50], ytr[:50])
    assert caught[0].filename == __file__
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)
        LinearProbe().fit(Xtr, ytr)


@pytest.mark.parametrize(
    ("params", "match"),
    [
        ({"C": 0}, "C must be finite and > 0"),
        ({"C": float("inf")}, "C must be finite"),
        ({"C": "1"}, "C must be a number"),
        ({"solver": "adam"}, "solver must be one of"),
        ({"max_iter": 0}, "max_iter must be >= 1"),
        ({"batch_size": 2.5}, "batch_size must be an integer"),
        ({"dtype": "float16"}, "dtype must be one of"),
        ({"device": "tpu"}, "device must be"),
        ({"device": "cuda:x"}, "bad CUDA device"),
        ({"n_jobs": 0}, "n_jobs must be >= 1"),
        ({"fit_intercept": 1}, "fit_intercept must be True or False"),
        ({"gram": "yes"}, "gram must be 'auto', True or False"),
        ({"gram": 1}, "gram must be 'auto', True or False"),
        ({"gram": True, "solver": "sgd"}, "gram=True solves with lbfgs"),
    ],
)
def test_bad_parameters(digits, params, match):
    Xtr, _, ytr, _ = digits
    with pytest.raises(InvalidParameterError, match=match):
        LinearProbe(**params).fit(Xtr, ytr)


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the error without CUDA")
def test_cuda_without_cuda_is_a_clear_error(digits):
    Xtr, _, ytr, _ = digits
    with pytest.raises(InvalidParameterError, match="CUDA is not available"):
        LinearProbe(device="cuda").fit(Xtr, ytr)
    assert LinearProbe(device="auto").fit(Xtr[:200], ytr[:200]).device_ == "cpu"


def test_bad_data(digits):
    Xtr, _, ytr, _ = digits
    bad = Xtr.copy()
    bad[3, 5] = np.nan
    with pytest.raises(InvalidParameterError, match="NaN"):
        LinearProbe().fit(bad, ytr)
    bad[3, 5] = np.inf
    with pytest.raises(InvalidParameterError, match="infinity"):
        LinearProbe().fit(bad, ytr)
    with pytest.raises(InvalidParameterError, match="inconsistent numbers of samples"):
        LinearProbe().fit(Xtr, ytr[:-1])
    with pytest.raises(InvalidParameterError, match="only one class"):
        LinearProbe().fit(Xtr, np.zeros(len(Xtr)))
    with pytest.raises(InvalidParameterError, match="Unknown label type"):
        LinearProbe().fit(Xtr, np.linspace(0, 1, len(Xtr)))
    with pytest.raises(InvalidParameterError, match="sample_weight"):
        LinearProbe().fit(Xtr, ytr, sample_weight=-np.ones(len(ytr)))
    clf = LinearProbe().fit(Xtr[:300], ytr[:300])
    with pytest.raises(InvalidParameterError, match="features"):
        clf.predict(Xtr[:5, :10])


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_matches_cpu(digits):
    Xtr, Xte, ytr, _ = digits
    cpu = LinearProbe(device="cpu", dtype="float64", tol=1e-8).fit(Xtr, ytr)
    gpu = LinearProbe(device="cuda", dtype="float64", tol=1e-8).fit(Xtr, ytr)
    np.testing.assert_allclose(gpu.coef_, cpu.coef_, atol=1e-5)
    np.testing.assert_allclose(gpu.predict_proba(Xte), cpu.predict_proba(Xte), atol=1e-6)


def _expected_failed_checks(estimator):
    if estimator.standardize and estimator.loss == "squared_hinge":
        # The squared hinge is flat along some directions of the standardized problem:
        # L-BFGS stops on its objective test (the two objectives agree to 1e-13), with
        # decision values 1e-5 apart, whatever tol. log_loss passes the check exactly.
        return {"check_sample_weight_equivalence_on_dense_data": "flat squared hinge"}
    if estimator.dtype == "float32":
        # Fitting with integer weights and with repeated rows give the same optimum, but in
        # float32 the predicted probabilities then agree to ~3e-7, not the check's 1e-7.
        return {"check_sample_weight_equivalence_on_dense_data": "float32 rounding"}
    return {}


@parametrize_with_checks(
    [
        LinearProbe(dtype="float64"),
        LinearProbe(),
        LinearProbe(loss="squared_hinge", dtype="float64"),
        LinearProbe(dtype="float64", gram=True),
        LinearProbe(loss="squared_hinge", dtype="float64", gram=True),
        LinearProbe(dtype="float64", standardize=True),
        LinearProbe(dtype="float64", standardize=True, gram=True),
        LinearProbe(loss="squared_hinge", dtype="float64", standardize=True, gram=True),
    ],
    expected_failed_checks=_expected_failed_checks,
)
def test_sklearn_estimator_checks(estimator, check):
    check(estimator)


def test_warm_start_reaches_the_cold_solution_in_fewer_iterations():
    X, y = load_digits(return_X_y=True)
    X = StandardScaler().fit_transform(X)
    cold = LinearProbe(C=1.0, dtype="float64", tol=1e-8).fit(X, y)
    warm = LinearProbe(C=0.1, dtype="float64", tol=1e-8, warm_start=True).fit(X, y)
    warm.set_params(C=1.0).fit(X, y)
    scale = np.abs(cold.coef_).max()
    np.testing.assert_allclose(warm.coef_, cold.coef_, atol=1e-4 * scale)
    assert warm.n_iter_[0] < cold.n_iter_[0]


@pytest.mark.parametrize("binary", [False, True])
@pytest.mark.parametrize("C", [1e-3, 0.1])
def test_squared_hinge_solves_linearsvcs_problem(C, binary):
    from sklearn.svm import LinearSVC

    X, y = load_digits(return_X_y=True)
    X = StandardScaler().fit_transform(X)
    if binary:
        y = (y > 4).astype(int)
    # Without an intercept the two objectives are the same (liblinear penalises its bias).
    reference = LinearSVC(C=C, fit_intercept=False, dual=False, tol=1e-10, max_iter=100_000)
    reference.fit(X, y)
    probe = LinearProbe(
        C=C, loss="squared_hinge", fit_intercept=False, dtype="float64", tol=1e-10
    ).fit(X, y)
    scale = np.abs(reference.coef_).max()
    np.testing.assert_allclose(probe.coef_, reference.coef_, atol=1e-5 * scale)
    np.testing.assert_array_equal(probe.predict(X), reference.predict(X))
    assert not hasattr(probe, "predict_proba")


def test_squared_hinge_with_intercept_scores_like_linearsvc():
    from sklearn.svm import LinearSVC

    X, y = load_digits(return_X_y=True)
    X = StandardScaler().fit_transform(X)
    reference = LinearSVC(C=0.1, max_iter=10_000).fit(X[::2], y[::2])
    probe = LinearProbe(C=0.1, loss="squared_hinge").fit(X[::2], y[::2])
    assert abs(probe.score(X[1::2], y[1::2]) - reference.score(X[1::2], y[1::2])) <= 0.005


# ------------------------------------------------------------------ the span of the rows


@pytest.fixture(scope="module")
def wide():
    """More features than rows (96 x 700, 4 classes) with a common offset, float64."""
    rng = np.random.default_rng(0)
    y = np.arange(96) % 4
    X = rng.standard_normal((96, 700)) + rng.standard_normal((4, 700))[y] + 5.0
    return X, y, rng.uniform(0.0, 2.0, 96)


@pytest.mark.parametrize("loss", ["log_loss", "squared_hinge"])
@pytest.mark.parametrize("fit_intercept", [True, False])
@pytest.mark.parametrize("weighted", [False, True])
def test_row_space_finds_the_primal_solution(wide, loss, fit_intercept, weighted):
    X, y, sw = wide
    sw = sw if weighted else None
    kw = {"C": 0.05, "loss": loss, "fit_intercept": fit_intercept, "dtype": "float64"}
    primal = LinearProbe(gram=False, tol=1e-10, max_iter=5000, **kw).fit(X, y, sample_weight=sw)
    span = LinearProbe(tol=1e-10, max_iter=5000, **kw).fit(X, y, sample_weight=sw)  # auto
    assert span._in_row_space(X) and not primal._in_row_space(X)
    scale = np.abs(primal.coef_).max()
    # Both stop at the gradient tolerance; the uncentred offset features (no intercept) are
    # ill-conditioned, and the squared hinge is not twice differentiable: the objectives
    # agree to 1e-8, the coefficients to what L-BFGS's stopping leaves.
    atol = (1e-5 if loss == "log_loss" else 2e-4) * scale
    np.testing.assert_allclose(span.coef_, primal.coef_, atol=atol)
    np.testing.assert_allclose(span.intercept_, primal.intercept_, atol=atol * 100)
    assert span.loss_ == pytest.approx(primal.loss_, rel=1e-8)
    np.testing.assert_array_equal(span.predict(X), primal.predict(X))


def test_row_space_solves_linearsvcs_problem_on_wide_features(wide):
    from sklearn.svm import LinearSVC

    X, y, _ = wide
    X = X - X.mean(axis=0)
    # liblinear's dual solver, the reference for n < d (no intercept: the same objective)
    reference = LinearSVC(C=0.01, fit_intercept=False, dual=True, tol=1e-8, max_iter=100_000)
    reference.fit(X, y)
    probe = LinearProbe(
        C=0.01, loss="squared_hinge", fit_intercept=False, dtype="float64", tol=1e-12
    ).fit(X, y)
    assert probe._in_row_space(X)
    np.testing.assert_allclose(
        probe.coef_, reference.coef_, atol=1e-5 * np.abs(reference.coef_).max()
    )
    np.testing.assert_array_equal(probe.predict(X), reference.predict(X))


def test_row_space_matches_logistic_regression_in_float32(wide):
    X, y, _ = wide
    Xtr, Xte, ytr = X[::2].astype(np.float32), X[1::2].astype(np.float32), y[::2]
    ref = reference(Xtr, ytr, C=0.01)
    probe = LinearProbe(C=0.01).fit(Xtr, ytr)
    assert probe._in_row_space(Xtr)
    np.testing.assert_allclose(probe.predict_proba(Xte), ref.predict_proba(Xte), atol=2e-4)


def test_warm_start_reuses_the_span_while_the_rows_are_the_same(wide, monkeypatch):
    from featkit.classify import probe_solvers

    X, y, _ = wide
    cold = LinearProbe(C=1.0, dtype="float64", tol=1e-10).fit(X, y)
    calls = []
    original = probe_solvers.fit_row_space
    monkeypatch.setattr(
        probe_solvers, "fit_row_space", lambda *a, **k: calls.append(1) or original(*a, **k)
    )
    probe = LinearProbe(C=0.01, dtype="float64", tol=1e-10, warm_start=True)
    probe.fit(X, y)
    probe.set_params(C=1.0).fit(X.copy(), y)  # the same rows in another array
    assert len(calls) == 1
    assert probe.loss_ == pytest.approx(cold.loss_, rel=1e-9)  # the same optimum
    np.testing.assert_allclose(probe.coef_, cold.coef_, atol=1e-4 * np.abs(cold.coef_).max())
    probe.fit(X[:-1], y[:-1])  # other rows: a new span
    X2 = X.copy()
    X2[5, 3] += 1.0
    probe.fit(X2, y)
    assert len(calls) == 3  # one new span each
    assert LinearProbe(warm_start=False).fit(X, y)._row_space is None  # nothing kept


def test_row_space_of_duplicated_and_constant_rows(wide):
    X, y, _ = wide
    twice = np.vstack([X[:10], X[:10]])  # rank 10 at most: the span drops the rest
    labels = np.concatenate([y[:10], y[:10]])
    span = LinearProbe(C=0.1, dtype="float64", tol=1e-10, gram=True).fit(twice, labels)
    primal = LinearProbe(C=0.1, dtype="float64", tol=1e-10, gram=False).fit(twice, labels)
    np.testing.assert_allclose(span.coef_, primal.coef_, atol=1e-7 * np.abs(primal.coef_).max())
    same = np.tile(X[:1], (6, 1))  # every row the mean: no direction, the primal solves it
    flat = LinearProbe(gram=True).fit(same, [0, 1, 0, 1, 0, 1])
    np.testing.assert_array_equal(flat.coef_, 0.0)


def test_predict_chunks_wide_rows_by_bytes(wide, monkeypatch):
    X, y, _ = wide
    clf = LinearProbe().fit(X.astype(np.float32), y)
    whole = clf.decision_function(X.astype(np.float32))
    monkeypatch.setattr(probe_module, "PREDICT_BYTES", 700 * 4 * 5)  # 5 rows at a time
    np.testing.assert_allclose(clf.decision_function(X.astype(np.float32)), whole, rtol=1e-6)


@pytest.mark.parametrize("gram", [False, True])
@pytest.mark.parametrize("loss", ["log_loss", "squared_hinge"])
def test_standardize_solves_the_pipelines_problem(wide, gram, loss):
    X, y, sw = wide
    X = X * np.linspace(0.1, 10.0, X.shape[1])  # columns of very different scales
    X[:, 7] = 3.0  # a constant column: StandardScaler leaves it unscaled
    kw = {"C": 0.05, "loss": loss, "dtype": "float64", "tol": 1e-10, "max_iter": 5000}
    # what make_pipeline(StandardScaler(), LinearProbe()) fits, with the weights given to
    # both steps by hand (the same whether scikit-learn's metadata routing is on or not)
    scaler = StandardScaler().fit(X, sample_weight=sw)
    reference = LinearProbe(gram=False, **kw).fit(scaler.transform(X), y, sample_weight=sw)
    probe = LinearProbe(standardize=True, gram=gram, **kw).fit(X, y, sample_weight=sw)
    assert probe._in_row_space(X) == gram
    assert probe.loss_ == pytest.approx(reference.loss_, rel=1e-7)
    scores = reference.decision_function(scaler.transform(X))
    atol = (1e-6 if loss == "log_loss" else 1e-4) * np.abs(scores).max()
    np.testing.assert_allclose(probe.decision_function(X), scores, atol=atol)
    np.testing.assert_array_equal(probe.predict(X), reference.predict(scaler.transform(X)))


def test_standardize_in_the_row_space_makes_no_copy_of_the_features(wide, monkeypatch):
    import tracemalloc

    from featkit.classify import row_space

    X, y, _ = wide
    X = np.tile(X, (1, 40)).astype(np.float32)  # 96 x 28,000: 10.8 MB
    before = X.copy()
    monkeypatch.setattr(row_space, "BLOCK_BYTES", 2**18)  # blocks of 256 kB
    tracemalloc.start()
    try:
        probe = LinearProbe(C=0.01, standardize=True, warm_start=True).fit(X, y)
        probe.set_params(C=0.1).fit(X, y)
        probe.predict(X)
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.reset_peak()
        StandardScaler().fit(X)
        _, scaler_peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 0.5 * X.nbytes  # coef_ (4 x d), blocks, the Gram matrix: no copy of X
    assert scaler_peak > X.nbytes  # what the pipeline's scaler alone holds (float64)
    np.testing.assert_array_equal(X, before)  # and X is not standardized in place


@pytest.mark.parametrize("gram", [False, True])
def test_warm_start_with_standardize_survives_other_features(wide, gram):
    X, y, _ = wide
    probe = LinearProbe(standardize=True, gram=gram, warm_start=True, dtype="float64")
    probe.fit(X, y)
    probe.fit(X[:, :50], y)  # other features: a cold start, not a shape error
    cold = LinearProbe(standardize=True, gram=gram, dtype="float64").fit(X[:, :50], y)
    np.testing.assert_allclose(probe.coef_, cold.coef_, atol=1e-6 * np.abs(cold.coef_).max())

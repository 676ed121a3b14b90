"""featkit.align against SKADA, scipy references and the sample_domain contract."""

from __future__ import annotations

import pickle
import warnings

import numpy as np
import pytest
import scipy.io
import scipy.linalg
import sklearn
from sklearn.base import clone
from sklearn.datasets import load_digits
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from featkit.align import (
    CORAL,
    JDA,
    TCA,
    SelectSource,
    SharedLDA,
    SharedPCA,
    SubspaceAlignment,
    align_domains,
    make_aligner,
    make_da_pipeline,
    stack_domains,
)
from featkit.align.subspace import n_components_for_variance
from featkit.exceptions import InvalidParameterError
from tests.conftest import SHARED_DATA

skada = pytest.importorskip("skada", reason="skada is in the test extras")


def _random_domains(seed: int = 0, d: int = 20) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    Xs = rng.standard_normal((300, d)) @ rng.standard_normal((d, d)) + 1.0
    Xt = 2.0 * rng.standard_normal((200, d)) @ rng.standard_normal((d, d)) - 1.0
    return Xs, Xt, rng.integers(0, 3, len(Xs))


def _digits_domains() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Real features with a real shift: digits pixels, source = upright, target = the
    same kind of digits drawn by other writers and blurred (a smoothing shift)."""
    from scipy.ndimage import uniform_filter

    digits = load_digits()
    half = len(digits.data) // 2
    Xs = digits.data[:half]
    Xt = np.stack([uniform_filter(im, 2).ravel() for im in digits.images[half:]])
    return Xs, Xt, digits.target[:half]


def _office_caltech(name: str) -> tuple[np.ndarray, np.ndarray]:
    """A domain of the Office-Caltech SURF features, normalised as the CORAL authors do."""
    path = SHARED_DATA / "office_caltech10_surf" / f"{name}_SURF_L10.mat"
    if not path.is_file():
        pytest.skip(f"Office-Caltech SURF features not found at {path}")
    mat = scipy.io.loadmat(path)
    X = mat["fts"].astype(np.float64)
    X = X / X.sum(1, keepdims=True)
    X = (X - X.mean(0)) / np.where(X.std(0) > 0, X.std(0), 1.0)
    return X, mat["labels"].ravel() - 1


def _office_domains(source: str, target: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    Xs, ys = _office_caltech(source)
    Xt, _ = _office_caltech(target)
    return Xs, Xt, ys


def _skada_out(adapter, X, sd):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        adapter.fit(X, sample_domain=sd)
        return adapter.transform(X, sample_domain=sd, allow_source=True)


DOMAIN_SOURCES = {
    "random": _random_domains,
    "digits": _digits_domains,
    "office-caltech": lambda: _office_domains("amazon", "webcam"),
}


@pytest.fixture(params=sorted(DOMAIN_SOURCES))
def domains(request):
    Xs, Xt, ys = DOMAIN_SOURCES[request.param]()
    return stack_domains(Xs, Xt, ys)


# --- CORAL ---------------------------------------------------------------------------------


@pytest.mark.parametrize(("skada_reg", "covariance"), [("auto", "ledoit-wolf"), (0.3, 0.3)])
def test_coral_equals_skada(domains, skada_reg, covariance):
    X, _, sd = domains
    expected = _skada_out(skada.CORALAdapter(reg=skada_reg), X, sd)
    ours = CORAL(reg=0.0, covariance=covariance, center=True, dtype="float64")
    got = ours.fit(X, sample_domain=sd).transform(X, sample_domain=sd)
    np.testing.assert_allclose(got, expected, atol=1e-8 * np.abs(expected).max(), rtol=0)


def test_coral_unshrunk_equals_skada_on_full_rank_data():
    """SKADA's ``reg=None`` (no shrinkage) on full-rank covariances. On singular ones
    (constant pixels of digits) SKADA returns NaN; featkit floors the eigenvalues instead
    (test_coral_singular_covariance_stays_finite)."""
    X, _, sd = stack_domains(*_random_domains(17)[:2])
    expected = _skada_out(skada.CORALAdapter(reg=None), X, sd)
    got = CORAL(reg=0.0, covariance="empirical", dtype="float64").fit(X, sample_domain=sd)
    np.testing.assert_allclose(got.transform(X, sample_domain=sd), expected, atol=1e-9)


def test_coral_float32_matches_float64(domains):
    X, _, sd = domains
    exact = CORAL(dtype="float64").fit(X, sample_domain=sd).transform(X, sample_domain=sd)
    fast = CORAL(dtype="float32").fit(X, sample_domain=sd).transform(X, sample_domain=sd)
    assert fast.dtype == np.float32
    np.testing.assert_allclose(fast, exact, atol=1e-4 * np.abs(exact).max(), rtol=0)


def test_coral_is_the_papers_formula():
    """reg=1 and MATLAB's cov: A = (Cs + I)^(-1/2) (Ct + I)^(1/2), by scipy's sqrtm (the
    recipe of ADAPT's CORAL), the raw source times A, the target untouched."""
    Xs, Xt, _ = _random_domains(1)
    cs = np.cov(Xs, rowvar=False) + np.eye(Xs.shape[1])
    ct = np.cov(Xt, rowvar=False) + np.eye(Xt.shape[1])
    A = np.linalg.inv(scipy.linalg.sqrtm(cs)) @ scipy.linalg.sqrtm(ct)
    coral = CORAL(reg=1.0, center=False, dtype="float64").fit_domains(Xs, Xt)
    np.testing.assert_allclose(coral.transform_matrix_, A.real, atol=1e-10)
    np.testing.assert_allclose(coral.transform_source(Xs), Xs @ A.real, atol=1e-9)
    np.testing.assert_array_equal(coral.transform_target(Xt), Xt)


@pytest.mark.parametrize(("covariance", "reg"), [("sample", 1.0), ("empirical", 0.1), (0.3, 0.5)])
def test_coral_with_fewer_rows_than_features_equals_the_explicit_formula(covariance, reg):
    """Fewer rows than features: CORAL works with low-rank factors, never a d x d eigh;
    the result equals the explicit matrix powers."""
    rng = np.random.default_rng(18)
    Xs, Xt = rng.standard_normal((50, 120)) * 3, rng.standard_normal((70, 120)) + 1
    d = Xs.shape[1]

    def regularised(X):
        C = np.cov(X, rowvar=False, ddof=1 if covariance == "sample" else 0)
        if not isinstance(covariance, str):
            C = (1 - covariance) * C + covariance * np.trace(C) / d * np.eye(d)
        return C + reg * np.eye(d)

    A = np.linalg.inv(scipy.linalg.sqrtm(regularised(Xs))) @ scipy.linalg.sqrtm(regularised(Xt))
    coral = CORAL(reg=reg, covariance=covariance, center=True, dtype="float64")
    coral.fit_domains(Xs, Xt)
    assert coral._factors is not None  # the low-rank path ran
    expected = (Xs - Xs.mean(0)) @ A.real
    np.testing.assert_allclose(coral.transform_source(Xs), expected, atol=1e-9)
    np.testing.assert_allclose(coral.transform_matrix_, A.real, atol=1e-10)


def test_coral_matches_target_covariance():
    """After CORAL without regularisation, the source has the target's covariance."""
    Xs, Xt, _ = _random_domains(2)
    Zs, Zt = align_domains(CORAL(reg=0.0, covariance="sample", dtype="float64"), Xs, Xt)
    np.testing.assert_allclose(np.cov(Zs, rowvar=False), np.cov(Xt, rowvar=False), atol=1e-8)
    np.testing.assert_allclose(Zs.mean(0), 0, atol=1e-10)
    np.testing.assert_allclose(Zt.mean(0), 0, atol=1e-10)


def test_coral_torch_backend_matches_numpy():
    pytest.importorskip("torch")
    X, _, sd = stack_domains(*_random_domains(3)[:2])
    ref = CORAL(dtype="float64").fit(X, sample_domain=sd)
    got = CORAL(dtype="float64", backend="torch", device="cpu").fit(X, sample_domain=sd)
    np.testing.assert_allclose(got.transform_matrix_, ref.transform_matrix_, atol=1e-10)
    np.testing.assert_allclose(
        got.transform(X, sample_domain=sd), ref.transform(X, sample_domain=sd), atol=1e-9
    )


def test_coral_singular_covariance_stays_finite():
    """reg=0 on rank-deficient data (more features than rows): eigenvalues are floored."""
    rng = np.random.default_rng(0)
    Xs, Xt = rng.standard_normal((20, 50)), rng.standard_normal((30, 50))
    Zs, _ = align_domains(CORAL(reg=0.0, dtype="float64"), Xs, Xt)
    assert np.isfinite(Zs).all()


# --- Subspace Alignment --------------------------------------------------------------------


@pytest.mark.parametrize("k", [2, 10])
def test_subspace_alignment_equals_skada(domains, k, monkeypatch):
    X, _, sd = domains
    # scikit-learn's PCA picks its randomized solver for the 800-d SURF features, an
    # approximation; SKADA's SA with an exact PCA is what featkit must equal.
    from functools import partial

    from sklearn.decomposition import PCA

    monkeypatch.setattr("skada._subspace.PCA", partial(PCA, svd_solver="full"))
    expected = _skada_out(skada.SubspaceAlignmentAdapter(n_components=k), X, sd)
    got = SubspaceAlignment(k).fit(X, sample_domain=sd).transform(X, sample_domain=sd)
    np.testing.assert_allclose(got, expected, atol=1e-8 * np.abs(expected).max(), rtol=0)


def test_subspace_alignment_wide_data_uses_svd_and_agrees():
    """More features than rows: the SVD path gives SKADA's output too."""
    rng = np.random.default_rng(4)
    Xs, Xt = rng.standard_normal((40, 120)), rng.standard_normal((50, 120)) + 0.5
    X, _, sd = stack_domains(Xs, Xt)
    expected = _skada_out(skada.SubspaceAlignmentAdapter(n_components=8), X, sd)
    got = SubspaceAlignment(8).fit(X, sample_domain=sd).transform(X, sample_domain=sd)
    np.testing.assert_allclose(got, expected, atol=1e-9)


@pytest.mark.parametrize("shape", [(300, 20), (40, 120)])  # eigh path, SVD path
def test_subspace_alignment_torch_backend_matches_numpy(shape):
    pytest.importorskip("torch")
    rng = np.random.default_rng(19)
    Xs, Xt = rng.standard_normal(shape) * 2, rng.standard_normal(shape) + 1
    ref = SubspaceAlignment(8).fit_domains(Xs, Xt)
    got = SubspaceAlignment(8, backend="torch", device="cpu").fit_domains(Xs, Xt)
    np.testing.assert_allclose(got.transform_source(Xs), ref.transform_source(Xs), atol=1e-9)
    np.testing.assert_allclose(got.transform_target(Xt), ref.transform_target(Xt), atol=1e-9)


def test_subspace_alignment_variance_share_chooses_k():
    Xs, Xt, _ = _digits_domains()
    sa = SubspaceAlignment(0.9).fit_domains(Xs, Xt)
    k = sa.n_components_
    assert sa.explained_variance_ratio_source_.sum() >= 0.9 - 1e-9
    assert sa.explained_variance_ratio_target_.sum() >= 0.9 - 1e-9
    smaller = SubspaceAlignment(k - 1).fit_domains(Xs, Xt)
    assert (
        min(
            smaller.explained_variance_ratio_source_.sum(),
            smaller.explained_variance_ratio_target_.sum(),
        )
        < 0.9
    )
    assert sa.transform_source(Xs).shape == (len(Xs), k)


def test_n_components_for_variance():
    assert n_components_for_variance([0.5, 0.3, 0.2], [0.9, 0.1, 0.0], 0.8) == 2
    assert n_components_for_variance([0.5, 0.3, 0.2], [0.9, 0.05, 0.05], 0.95) == 3


# --- TCA and JDA ---------------------------------------------------------------------------


def test_tca_equals_skada_where_definitions_coincide(domains):
    """With mu=0, TCA is kernel PCA of the pooled data: SKADA's eigh of its (then
    symmetric) matrix and featkit's generalized solver agree up to each component's sign."""
    X, _, sd = domains
    X = X[np.r_[0:150, np.flatnonzero(sd < 0)[:150]]]
    sd = np.r_[np.ones(150), -np.ones(150)].astype(int)
    expected = _skada_out(
        skada.TransferComponentAnalysisAdapter(kernel="rbf", n_components=5, mu=0.0), X, sd
    )
    got = TCA(5, mu=0.0, kernel="rbf").fit(X, sample_domain=sd).transform(X, sample_domain=sd)
    got = got * np.sign((got * expected).sum(0))
    np.testing.assert_allclose(got, expected, atol=1e-7 * np.abs(expected).max())


def test_tca_solves_the_papers_eigenproblem():
    """W holds the leading eigenvectors of (I + mu K L K)^-1 K H K (Pan et al. 2011, eq. 12)."""
    Xs, Xt, _ = _random_domains(5, d=6)
    Xs, Xt = Xs[:60], Xt[:40]
    mu = 10.0
    tca = TCA(4, mu=mu, kernel="rbf", gamma=0.05).fit_domains(Xs, Xt)
    X = np.concatenate([Xs, Xt])
    K = np.exp(-0.05 * ((X[:, None] - X[None]) ** 2).sum(-1))
    n = len(X)
    e = np.r_[np.full(60, 1 / 60), np.full(40, -1 / 40)]
    H = np.eye(n) - 1 / n
    M = np.linalg.solve(np.eye(n) + mu * K @ np.outer(e, e) @ K, K @ H @ K)
    top = np.sort(np.linalg.eigvals(M).real)[::-1][:4]
    np.testing.assert_allclose(tca.eigenvalues_, top, rtol=1e-6)
    W = tca.components_
    np.testing.assert_allclose(M @ W, W * tca.eigenvalues_, atol=1e-6 * np.abs(M @ W).max())


def test_tca_reduces_the_domain_mean_gap():
    Xs, Xt, _ = _random_domains(6)
    tca = TCA(5, mu=100.0).fit_domains(Xs, Xt)
    Zs, Zt = tca.transform_source(Xs), tca.transform_target(Xt)
    plain = TCA(5, mu=0.0).fit_domains(Xs, Xt)
    Ps, Pt = plain.transform_source(Xs), plain.transform_target(Xt)

    def gap(a, b):
        return np.linalg.norm(a.mean(0) - b.mean(0)) / np.sqrt(np.concatenate([a, b]).var(0).sum())

    assert gap(Zs, Zt) < 0.1 * gap(Ps, Pt)


def test_tca_subsamples_seeded():
    Xs, Xt, _ = _random_domains(7)
    a = TCA(3, max_samples=100, random_state=1).fit_domains(Xs, Xt)
    b = TCA(3, max_samples=100, random_state=1).fit_domains(Xs, Xt)
    assert len(a.X_fit_) == 100
    np.testing.assert_array_equal(a.transform_target(Xt), b.transform_target(Xt))


def test_jda_beats_no_adaptation_on_a_shift():
    """On the digits blur shift, JDA's 1-NN beats 1-NN on the raw pixels."""
    from sklearn.neighbors import KNeighborsClassifier
    from sklearn.preprocessing import normalize

    digits = load_digits()
    Xs, Xt, ys = _digits_domains()
    yt = digits.target[len(Xs) :]
    raw = KNeighborsClassifier(1).fit(normalize(Xs), ys).score(normalize(Xt), yt)
    jda = JDA(n_components=30, lam=1.0, n_iter=5).fit_domains(Xs, Xt, ys)
    Zs, Zt = jda.transform_source(Xs), jda.transform_target(Xt)
    adapted = KNeighborsClassifier(1).fit(Zs, ys).score(Zt, yt)
    assert adapted > raw
    assert np.mean(jda.pseudo_labels_ == yt) == pytest.approx(adapted, abs=1e-9)


def test_jda_and_lda_need_source_labels():
    Xs, Xt, _ = _random_domains(8)
    for aligner in (JDA(5), SharedLDA()):
        with pytest.raises(InvalidParameterError, match="labels"):
            aligner.fit_domains(Xs, Xt)


# --- reducers ------------------------------------------------------------------------------


@pytest.mark.parametrize("fit_on", ["source", "target", "both"])
def test_shared_pca_fits_on_the_chosen_rows(fit_on):
    from sklearn.decomposition import PCA

    Xs, Xt, _ = _random_domains(9)
    rows = {"source": Xs, "target": Xt, "both": np.concatenate([Xs, Xt])}[fit_on]
    ref = PCA(5, whiten=True).fit(rows)
    pca = SharedPCA(5, whiten=True, fit_on=fit_on).fit_domains(Xs, Xt)
    np.testing.assert_allclose(pca.transform_source(Xs), ref.transform(Xs), atol=1e-10)
    np.testing.assert_allclose(pca.transform_target(Xt), ref.transform(Xt), atol=1e-10)


def test_shared_lda_uses_source_labels_only():
    from sklearn.discriminant_analysis import LinearDiscriminantAnalysis

    Xs, Xt, ys = _random_domains(10)
    ref = LinearDiscriminantAnalysis().fit(Xs, ys)
    lda = SharedLDA().fit_domains(Xs, Xt, ys)
    np.testing.assert_allclose(lda.transform_target(Xt), ref.transform(Xt), atol=1e-10)


def test_shared_lda_on_labelled_target_rows():
    """Semi-supervised: fit_on="target" learns from the target rows whose labels fit got."""
    from sklearn.discriminant_analysis import LinearDiscriminantAnalysis

    Xs, Xt, ys = _random_domains(20)
    yt = np.random.default_rng(1).integers(0, 3, len(Xt))
    yt_partly = yt.copy()
    yt_partly[::2] = -1
    X = np.concatenate([Xs, Xt])
    sd = np.r_[np.ones(len(Xs)), -np.ones(len(Xt))].astype(int)
    lda = SharedLDA(fit_on="target").fit(X, np.r_[ys, yt_partly], sample_domain=sd)
    ref = LinearDiscriminantAnalysis().fit(Xt[1::2], yt[1::2])
    np.testing.assert_allclose(lda.transform_source(Xs), ref.transform(Xs), atol=1e-10)
    with pytest.raises(InvalidParameterError, match="fewer than 2 labelled classes"):
        SharedLDA(fit_on="target").fit_domains(Xs, Xt, ys)


# --- the sample_domain contract ------------------------------------------------------------


def test_rows_keep_their_order_and_domain():
    Xs, Xt, ys = _random_domains(11)
    X, y, sd = stack_domains(Xs, Xt, ys)
    order = np.random.default_rng(0).permutation(len(X))
    for aligner in (CORAL(), SubspaceAlignment(5), TCA(4), JDA(4, n_iter=2), SharedPCA(4)):
        fitted = clone(aligner).fit(X[order], y[order], sample_domain=sd[order])
        out = fitted.transform(X[order], sample_domain=sd[order])
        back = np.empty_like(out)
        back[order] = out
        # float32 products (CORAL's default dtype) may round differently when the rows are
        # batched otherwise (BLAS blocking follows the row count): 1e-6 relative, not bits.
        tol = {"atol": 1e-9} if out.dtype == np.float64 else {"rtol": 1e-5, "atol": 1e-5}
        np.testing.assert_allclose(back[: len(Xs)], fitted.transform_source(Xs), **tol)
        np.testing.assert_allclose(back[len(Xs) :], fitted.transform_target(Xt), **tol)


def test_domains_inferred_from_masked_labels():
    Xs, Xt, ys = _random_domains(12)
    X, y, sd = stack_domains(Xs, Xt, ys)
    explicit = CORAL().fit(X, y, sample_domain=sd).transform(X, sample_domain=sd)
    inferred = CORAL().fit_transform(X, y)
    np.testing.assert_array_equal(inferred, explicit)


def test_transform_without_domains_is_target():
    Xs, Xt, _ = _random_domains(13)
    coral = CORAL().fit_domains(Xs, Xt)
    np.testing.assert_array_equal(coral.transform(Xt), coral.transform_target(Xt))


@pytest.mark.parametrize(
    ("sample_domain", "message"),
    [
        (np.ones(10, dtype=int), "no target rows"),
        (-np.ones(10, dtype=int), "no source rows"),
        (np.ones(9, dtype=int), r"shape \(9,\) for 10 rows"),
        (np.r_[np.ones(5), np.zeros(5)].astype(int), "never 0"),
        (np.array(["s"] * 5 + ["t"] * 5), "integer domain ids"),
    ],
)
def test_sample_domain_errors(sample_domain, message):
    X = np.random.default_rng(0).standard_normal((10, 3))
    with pytest.raises(InvalidParameterError, match=message):
        CORAL().fit(X, sample_domain=sample_domain)


def test_fit_without_any_domain_information():
    X = np.random.default_rng(0).standard_normal((10, 3))
    with pytest.raises(InvalidParameterError, match="fit needs sample_domain"):
        CORAL().fit(X)
    with pytest.raises(InvalidParameterError, match="no label is -1"):
        CORAL().fit(X, np.zeros(10, dtype=int))


def test_feature_count_mismatch_is_clear():
    Xs, Xt, _ = _random_domains(14)
    coral = CORAL().fit_domains(Xs, Xt)
    with pytest.raises(InvalidParameterError, match="fitted on 20"):
        coral.transform(Xt[:, :5])
    with pytest.raises(InvalidParameterError, match="X_target has 5 features"):
        CORAL().fit_domains(Xs, Xt[:, :5])
    with pytest.raises(InvalidParameterError, match="different feature counts"):
        stack_domains(Xs, Xt[:, :5])


@pytest.mark.parametrize(
    ("aligner", "message"),
    [
        (CORAL(reg=-1), "reg"),
        (CORAL(covariance="oas"), "covariance"),
        (CORAL(covariance=1.5), "shrinkage"),
        (CORAL(dtype="float16"), "dtype"),
        (CORAL(backend="jax"), "backend"),
        (CORAL(device="cuda"), "backend='torch'"),
        (SubspaceAlignment(0), "n_components"),
        (SubspaceAlignment(1.5), "share of variance"),
        (TCA(kernel="foo"), "kernel"),
        (SharedPCA(fit_on="all"), "fit_on"),
    ],
)
def test_bad_parameters_are_reported(aligner, message):
    Xs, Xt, _ = _random_domains(15)
    with pytest.raises(InvalidParameterError, match=message):
        aligner.fit_domains(Xs, Xt)


def test_make_aligner():
    assert make_aligner("none") is None
    assert make_aligner("coral", reg=0.5).reg == 0.5
    with pytest.raises(InvalidParameterError, match="unknown aligner 'no-such-aligner'"):
        make_aligner("no-such-aligner")
    with pytest.raises(InvalidParameterError, match="no parameter lam"):
        make_aligner("coral", lam=1)


def test_aligners_clone_and_pickle():
    Xs, Xt, ys = _random_domains(16)
    for aligner in (CORAL(), SubspaceAlignment(4), TCA(3), JDA(3, n_iter=2), SharedLDA()):
        fitted = clone(aligner).fit_domains(Xs, Xt, ys)
        again = pickle.loads(pickle.dumps(fitted))
        np.testing.assert_array_equal(again.transform_target(Xt), fitted.transform_target(Xt))
        assert len(fitted.get_feature_names_out()) == fitted.transform_target(Xt).shape[1]


# --- pipelines -----------------------------------------------------------------------------


def test_pipeline_and_grid_search_with_masked_labels():
    Xs, Xt, ys = _digits_domains()
    X, y, _ = stack_domains(Xs, Xt, ys)
    pipe = make_da_pipeline(StandardScaler(), CORAL(), LogisticRegression(max_iter=200))
    search = GridSearchCV(pipe, {"coral__reg": [0.1, 1.0]}, cv=2).fit(X, y)
    assert search.best_params_["coral__reg"] in (0.1, 1.0)
    yt = load_digits().target[len(Xs) :]
    assert search.score(Xt, yt) > 0.5
    assert isinstance(search.best_estimator_[-1], SelectSource)


def test_pipeline_routes_sample_domain():
    Xs, Xt, ys = _digits_domains()
    X, y, sd = stack_domains(Xs, Xt, ys)
    y = y.copy()
    y[sd < 0] = load_digits().target[len(Xs) :]  # target labels given, but not used
    with sklearn.config_context(enable_metadata_routing=True):
        aligner = SubspaceAlignment(20).set_fit_request(sample_domain=True)
        aligner.set_transform_request(sample_domain=True)
        clf = SelectSource(LogisticRegression(max_iter=300)).set_fit_request(sample_domain=True)
        pipe = make_pipeline(aligner, clf).fit(X, y, sample_domain=sd)
        routed = pipe.predict(Xt, sample_domain=-np.ones(len(Xt), dtype=int))
    direct = SubspaceAlignment(20).fit(X, sample_domain=sd)
    ref = LogisticRegression(max_iter=300).fit(direct.transform_source(Xs), ys)
    np.testing.assert_array_equal(routed, ref.predict(direct.transform_target(Xt)))

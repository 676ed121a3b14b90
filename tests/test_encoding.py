"""Encodings of local descriptors (BoVW, VLAD, Fisher, spatial pyramids) against references.

References are written here independently of featkit: loops over descriptors and words,
scipy's Gaussian densities, scikit-learn's TfidfTransformer, GaussianMixture and PCA, and
``skimage.feature.fisher_vector``.
"""

from __future__ import annotations

import json
import pickle
import warnings

import joblib
import numpy as np
import pytest
from scipy.stats import multivariate_normal
from sklearn.base import clone
from sklearn.feature_extraction.text import TfidfTransformer
from sklearn.linear_model import LogisticRegression
from sklearn.mixture import GaussianMixture
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import Pipeline

import featkit
import featkit.extractors.encoding  # registers the encoders
from featkit import registry
from featkit.extractors.base import InputSpec
from featkit.extractors.encoding import (
    BagOfVisualWords,
    DenseSiftBagOfWords,
    FisherVectorEncoder,
    VLADEncoder,
    kmeans_codebook,
)
from featkit.extractors.local import LocalExtractor, LocalFeatures
from featkit.extractors.pixels import PixelsExtractor
from featkit.io import read_image
from featkit.testing import extractor_checks, sample_images
from tests.conftest import PACS, requires_pacs

LOCAL_NAME = "test-grid-patches"


class GridPatches(LocalExtractor):
    """Raw gray patches on a regular grid: a tiny real local extractor for these tests.

    Parameters
    ----------
    patch : int, default=8
        Patch side in pixels.
    step : int, default=4
        Grid step in pixels.
    """

    # Set here, not by the fixture's registration: a fresh process (the conformance kit's
    # config check) sees the same name.
    name = LOCAL_NAME

    def __init__(self, patch: int = 8, step: int = 4) -> None:
        self.patch = patch
        self.step = step

    def input_spec(self) -> InputSpec:
        return InputSpec(color="gray", dtype=np.float32)

    def descriptor_dim(self) -> int:
        return self.patch**2

    def _describe_one(self, image: np.ndarray) -> LocalFeatures:
        h, w = image.shape
        p, s = self.patch, self.step
        if h < p or w < p:
            return LocalFeatures.empty(p * p)
        ys, xs = np.arange(0, h - p + 1, s), np.arange(0, w - p + 1, s)
        desc = [image[y : y + p, x : x + p].ravel() for y in ys for x in xs]
        xy = [((x + p / 2) / w, (y + p / 2) / h) for y in ys for x in xs]
        return LocalFeatures(np.array(desc), np.array(xy))


@pytest.fixture(scope="module")
def local_name():
    """GridPatches registered under a name for the duration of this module."""
    registry.register_extractor(LOCAL_NAME, overwrite=True)(GridPatches)
    yield LOCAL_NAME
    registry._registry.pop(LOCAL_NAME, None)


@pytest.fixture(scope="module")
def images():
    return sample_images(8, seed=1)


def fitted_with(encoder, **state):
    """An encoder with a hand-made vocabulary (the documented fitted attributes)."""
    for key, value in state.items():
        setattr(encoder, key, value)
    encoder.is_fitted_ = True
    return encoder


def all_descriptors(local, images):
    return np.concatenate([f.descriptors for f in local.describe(images)]).astype(np.float64)


def nearest(x, codebook):
    d2 = ((x[:, None, :] - codebook[None, :, :]) ** 2).sum(-1)
    return d2.argmin(1), d2


# -- bag of words ------------------------------------------------------------------------
CODEBOOK = np.array([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0]], dtype=np.float32)
DESC = np.array([[0.1, 0.0], [0.9, 0.1], [0.2, 0.8], [0.05, 0.05], [0.7, 0.0]], np.float32)
XY = np.array([[0.1, 0.1], [0.9, 0.1], [0.1, 0.9], [0.6, 0.6], [0.4, 0.2]], np.float32)


def test_bovw_hard_histogram_matches_numpy():
    words, _ = nearest(DESC.astype(np.float64), CODEBOOK.astype(np.float64))
    counts = np.bincount(words, minlength=3).astype(float)
    assert counts.tolist() == [2, 2, 1]  # the hand-made case is what it claims to be
    feats = [LocalFeatures(DESC, XY)]
    expected = {
        None: counts,
        "l1": counts / counts.sum(),
        "l2": counts / np.linalg.norm(counts),
        "hellinger": np.sqrt(counts / counts.sum()),
    }
    for norm, want in expected.items():
        enc = fitted_with(BagOfVisualWords(n_words=3, norm=norm), codebook_=CODEBOOK, idf_=None)
        np.testing.assert_allclose(enc.encode(feats)[0], want, rtol=1e-6, err_msg=str(norm))


def test_bovw_soft_assignment_matches_kernel_codebook_formula():
    rng = np.random.default_rng(3)
    codebook = rng.normal(size=(10, 4)).astype(np.float32)
    desc = rng.normal(size=(30, 4)).astype(np.float32)
    sigma, knn = 0.7, 3
    expected = np.zeros(10)
    for x in desc.astype(np.float64):
        d2 = ((codebook - x) ** 2).sum(1)
        near = np.argsort(d2)[:knn]
        w = np.exp(-d2[near] / (2 * sigma**2))
        expected[near] += w / w.sum()
    enc = fitted_with(
        BagOfVisualWords(n_words=10, assignment="soft", soft_sigma=sigma, soft_knn=knn, norm=None),
        codebook_=codebook,
        idf_=None,
    )
    got = enc.encode([LocalFeatures(desc, np.zeros((30, 2)))])[0]
    np.testing.assert_allclose(got, expected, rtol=1e-5)
    assert got.sum() == pytest.approx(30, rel=1e-5)  # each descriptor spreads a unit weight


def test_bovw_learned_sigma_is_median_nearest_distance(images):
    local = GridPatches(step=6)
    enc = BagOfVisualWords(local=local, n_words=12, assignment="soft").fit(images)
    x = all_descriptors(local, images)
    _, d2 = nearest(x, enc.codebook_.astype(np.float64))
    assert enc.soft_sigma_ == pytest.approx(np.sqrt(np.median(d2.min(1)) / 2), rel=1e-4)


def test_bovw_tfidf_matches_sklearn_tfidf_transformer(images):
    local = GridPatches(step=8)
    enc = BagOfVisualWords(local=local, n_words=24, tfidf=True, norm="l1").fit(images)
    codebook = enc.codebook_.astype(np.float64)
    counts = np.stack(
        [
            np.bincount(nearest(f.descriptors.astype(np.float64), codebook)[0], minlength=24)
            for f in local.describe(images)
        ]
    )
    assert (counts == 0).any(), "the case must have words missing from some images"
    reference = TfidfTransformer(norm="l1", smooth_idf=True).fit(counts)
    np.testing.assert_allclose(enc.idf_, reference.idf_, rtol=1e-6)
    test_images = sample_images(3, seed=9)
    test_counts = np.stack(
        [
            np.bincount(nearest(f.descriptors.astype(np.float64), codebook)[0], minlength=24)
            for f in local.describe(test_images)
        ]
    )
    np.testing.assert_allclose(
        enc.transform(test_images), reference.transform(test_counts).toarray(), rtol=1e-5
    )


def test_bovw_fit_then_transform_equals_numpy_on_real_local(images):
    local = GridPatches(step=6)
    enc = BagOfVisualWords(local=local, n_words=20, pyramid=(1, 2)).fit(images)
    codebook = enc.codebook_.astype(np.float64)
    for f, row in zip(local.describe(images), enc.transform(images), strict=True):
        words, _ = nearest(f.descriptors.astype(np.float64), codebook)
        parts = [np.bincount(words, minlength=20)]
        col = np.minimum((f.xy[:, 0] * 2).astype(int), 1)
        r = np.minimum((f.xy[:, 1] * 2).astype(int), 1)
        for cell in range(4):
            parts.append(np.bincount(words[r * 2 + col == cell], minlength=20))
        hist = np.concatenate(parts).astype(float)
        # default norm: Hellinger, the square root of the L1-normalised histogram
        np.testing.assert_allclose(row, np.sqrt(hist / hist.sum()), rtol=1e-5, atol=1e-7)


# -- VLAD -------------------------------------------------------------------------------
def reference_vlad(desc, codebook, intra_norm=True, power=0.5):
    k, d = codebook.shape
    v = np.zeros((k, d))
    for x in desc.astype(np.float64):
        j = int(np.argmin(((codebook - x) ** 2).sum(1)))
        v[j] += x - codebook[j]
    if intra_norm:
        for j in range(k):
            n = np.linalg.norm(v[j])
            if n > 0:
                v[j] /= n
    v = np.sign(v) * np.abs(v) ** power
    n = np.linalg.norm(v)
    return (v / n if n > 0 else v).ravel()


@pytest.mark.parametrize("intra_norm", [True, False])
@pytest.mark.parametrize("power", [0.5, 1.0])
def test_vlad_matches_numpy(intra_norm, power):
    rng = np.random.default_rng(4)
    codebook = rng.normal(size=(6, 5)).astype(np.float32)
    desc = rng.normal(size=(40, 5)).astype(np.float32)
    enc = fitted_with(
        VLADEncoder(n_words=6, intra_norm=intra_norm, power=power), codebook_=codebook
    )
    got = enc.encode([LocalFeatures(desc, np.zeros((40, 2)))])[0]
    want = reference_vlad(desc, codebook.astype(np.float64), intra_norm, power)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


def test_vlad_pyramid_cells_normalised_separately_then_weighted():
    rng = np.random.default_rng(5)
    codebook = rng.normal(size=(4, 3)).astype(np.float32)
    desc = rng.normal(size=(60, 3)).astype(np.float32)
    xy = rng.uniform(0, 1, size=(60, 2)).astype(np.float32)
    enc = fitted_with(VLADEncoder(n_words=4, pyramid=(1, 2)), codebook_=codebook)
    got = enc.encode([LocalFeatures(desc, xy)])[0]
    cb = codebook.astype(np.float64)
    parts = [reference_vlad(desc, cb)]
    cell = np.minimum((xy[:, 1] * 2).astype(int), 1) * 2 + np.minimum((xy[:, 0] * 2).astype(int), 1)
    parts += [reference_vlad(desc[cell == c], cb) / 2 for c in range(4)]
    want = np.concatenate(parts)
    np.testing.assert_allclose(got, want / np.linalg.norm(want), rtol=1e-5, atol=1e-6)
    assert enc.feature_dim == 5 * 4 * 3


def test_vlad_fit_then_transform_equals_numpy(images):
    local = GridPatches(patch=4, step=4)
    enc = VLADEncoder(local=local, n_words=8).fit(images)
    cb = enc.codebook_.astype(np.float64)
    for f, row in zip(local.describe(images), enc.transform(images), strict=True):
        np.testing.assert_allclose(row, reference_vlad(f.descriptors, cb), rtol=1e-4, atol=1e-6)


# -- Fisher vectors -----------------------------------------------------------------------
def reference_fisher(desc, weights, means, variances):
    """Raw improved-FV gradients (means then sigmas), posteriors from scipy's densities."""
    x = desc.astype(np.float64)
    k, d = means.shape
    dens = np.stack(
        [
            weights[j] * multivariate_normal(means[j], np.diag(variances[j])).pdf(x)
            for j in range(k)
        ],
        axis=1,
    )
    gamma = dens / dens.sum(1, keepdims=True)
    g_mu, g_sigma = np.zeros((k, d)), np.zeros((k, d))
    for j in range(k):
        sigma = np.sqrt(variances[j])
        for t in range(len(x)):
            z = (x[t] - means[j]) / sigma
            g_mu[j] += gamma[t, j] * z
            g_sigma[j] += gamma[t, j] * (z**2 - 1)
        g_mu[j] /= len(x) * np.sqrt(weights[j])
        g_sigma[j] /= len(x) * np.sqrt(2 * weights[j])
    return np.concatenate([g_mu.ravel(), g_sigma.ravel()])


def improved(v):
    v = np.sign(v) * np.sqrt(np.abs(v))
    return v / np.linalg.norm(v)


def small_gmm(rng, k=3, d=4):
    weights = rng.dirichlet(np.ones(k) * 3)
    means = rng.normal(size=(k, d))
    variances = rng.uniform(0.5, 2.0, size=(k, d))
    return weights, means, variances


def sklearn_gmm(weights, means, variances):
    gmm = GaussianMixture(n_components=len(weights), covariance_type="diag")
    gmm.weights_, gmm.means_, gmm.covariances_ = weights, means, variances
    gmm.precisions_cholesky_ = 1.0 / np.sqrt(variances)
    return gmm


def test_fisher_matches_direct_formula_and_skimage():
    from skimage.feature import fisher_vector as sk_fisher_vector

    rng = np.random.default_rng(6)
    weights, means, variances = small_gmm(rng)
    desc = rng.normal(size=(25, 4)).astype(np.float32)
    raw = reference_fisher(desc, weights, means, variances)
    enc = fitted_with(
        FisherVectorEncoder(n_components=3, pca_dim=None),
        pca_mean_=None,
        pca_components_=None,
        gmm_weights_=weights,
        gmm_means_=means,
        gmm_covariances_=variances,
    )
    got = enc.encode([LocalFeatures(desc, np.zeros((25, 2)))])[0]
    np.testing.assert_allclose(got, improved(raw), rtol=1e-5, atol=1e-7)
    # skimage: [d_pi (K), d_mu (K*D), d_sigma (K*D)], sigma block of opposite sign
    sk = sk_fisher_vector(desc.astype(np.float64), sklearn_gmm(weights, means, variances))
    kd = 3 * 4
    np.testing.assert_allclose(sk[3 : 3 + kd], raw[:kd], rtol=1e-6, atol=1e-10)
    np.testing.assert_allclose(-sk[3 + kd :], raw[kd:], rtol=1e-6, atol=1e-10)
    sk_ours = np.concatenate([sk[3 : 3 + kd], -sk[3 + kd :]])
    np.testing.assert_allclose(got, improved(sk_ours), rtol=1e-5, atol=1e-7)


def test_fisher_fit_with_pca_then_transform_equals_skimage(images):
    from skimage.feature import fisher_vector as sk_fisher_vector
    from sklearn.decomposition import PCA

    local = GridPatches(patch=4, step=3)
    enc = FisherVectorEncoder(local=local, n_components=4, pca_dim=6).fit(images)
    x = all_descriptors(local, images)
    pca = PCA(n_components=6).fit(x)  # order-free: equal to featkit's on the same descriptors
    dots = np.sum(pca.components_ * enc.pca_components_, axis=1)  # same signs too
    np.testing.assert_allclose(dots, 1.0, atol=1e-3)
    np.testing.assert_allclose(enc.pca_mean_, pca.mean_, atol=1e-6)
    assert enc.feature_dim == 2 * 4 * 6
    gmm = sklearn_gmm(enc.gmm_weights_, enc.gmm_means_, enc.gmm_covariances_)
    k, d = enc.gmm_means_.shape
    for f, row in zip(local.describe(images), enc.transform(images), strict=True):
        z = (f.descriptors.astype(np.float64) - enc.pca_mean_) @ enc.pca_components_.T
        sk = sk_fisher_vector(z, gmm)
        want = improved(np.concatenate([sk[k : k + k * d], -sk[k + k * d :]]))
        np.testing.assert_allclose(row, want, rtol=1e-4, atol=1e-6)


def test_fisher_gmm_is_sklearn_diag_gmm_with_vlfeat_floor(images):
    local = GridPatches(patch=4, step=4)
    enc = FisherVectorEncoder(local=local, n_components=3, pca_dim=None, seed=2).fit(images)
    x = all_descriptors(local, images)
    assert enc.gmm_reg_covar_ == pytest.approx(1e-4 * x.var(axis=0).max(), rel=1e-4)
    assert (enc.gmm_covariances_ >= enc.gmm_reg_covar_ * 0.999).all()
    assert enc.gmm_weights_.sum() == pytest.approx(1.0)
    # a fitted mixture is a fixed point of EM: one more step barely moves it
    ref = GaussianMixture(
        3,
        covariance_type="diag",
        reg_covar=enc.gmm_reg_covar_,
        weights_init=enc.gmm_weights_,
        means_init=enc.gmm_means_,
        precisions_init=1 / enc.gmm_covariances_,
        max_iter=1,
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # ConvergenceWarning of the single step
        ref.fit(x)
    np.testing.assert_allclose(ref.means_, enc.gmm_means_, atol=2e-3)


# -- spatial pyramid --------------------------------------------------------------------
def test_pyramid_dimension_and_top_right_cell():
    enc = fitted_with(
        BagOfVisualWords(n_words=3, pyramid=(1, 2), norm=None), codebook_=CODEBOOK, idf_=None
    )
    one = LocalFeatures(np.array([[0.1, 0.9]], np.float32), np.array([[0.9, 0.1]], np.float32))
    vec = enc.encode([one])[0]
    assert vec.shape == (3 * 5,) and enc.feature_dim == 15
    # level 1 (1 cell) then level 2 cells row-major: (0,0) (0,1) (1,0) (1,1); word 2
    assert np.flatnonzero(vec).tolist() == [2, 3 + 1 * 3 + 2]
    assert enc.get_feature_names_out()[3 + 3 + 2] == "bovw_s2_r0_c1_w2"
    deep = BagOfVisualWords(n_words=3, pyramid=(1, 2, 4))
    assert deep.feature_dim == 3 * 21 and len(set(deep.get_feature_names_out())) == 63
    bottom_left = LocalFeatures(one.descriptors, np.array([[0.05, 0.95]], np.float32))
    enc4 = fitted_with(
        BagOfVisualWords(n_words=3, pyramid=(4,), norm=None), codebook_=CODEBOOK, idf_=None
    )
    assert np.flatnonzero(enc4.encode([bottom_left])[0]).tolist() == [(3 * 4 + 0) * 3 + 2]


def test_pyramid_bovw_levels_carry_equal_mass():
    enc = fitted_with(
        BagOfVisualWords(n_words=3, pyramid=(1, 2, 4), norm="l1"), codebook_=CODEBOOK, idf_=None
    )
    vec = enc.encode([LocalFeatures(DESC, XY)])[0]
    assert vec.sum() == pytest.approx(1.0)
    np.testing.assert_allclose([vec[:3].sum(), vec[3:15].sum(), vec[15:].sum()], 1 / 3, rtol=1e-6)
    enc.set_params(norm="hellinger")  # the square root of that: unit L2 norm, levels alike
    root = enc.encode([LocalFeatures(DESC, XY)])[0]
    np.testing.assert_allclose(root, np.sqrt(vec), rtol=1e-6)
    np.testing.assert_allclose([root[:3] @ root[:3], root[15:] @ root[15:]], 1 / 3, rtol=1e-6)


def test_pyramid_fisher_cells_match_per_cell_reference():
    rng = np.random.default_rng(8)
    weights, means, variances = small_gmm(rng, k=2, d=3)
    desc = rng.normal(size=(50, 3)).astype(np.float32)
    xy = rng.uniform(0, 1, size=(50, 2)).astype(np.float32)
    enc = fitted_with(
        FisherVectorEncoder(n_components=2, pca_dim=None, pyramid=(2, 1)),
        pca_mean_=None,
        pca_components_=None,
        gmm_weights_=weights,
        gmm_means_=means,
        gmm_covariances_=variances,
    )
    got = enc.encode([LocalFeatures(desc, xy)])[0]
    cell = np.minimum((xy[:, 1] * 2).astype(int), 1) * 2 + np.minimum((xy[:, 0] * 2).astype(int), 1)
    parts = [
        improved(reference_fisher(desc[cell == c], weights, means, variances)) / 2 for c in range(4)
    ]
    parts.append(improved(reference_fisher(desc, weights, means, variances)))
    want = np.concatenate(parts)
    np.testing.assert_allclose(got, want / np.linalg.norm(want), rtol=1e-5, atol=1e-7)


def reference_improved_fisher_pyramid(desc, xy, levels, weights, means, variances):
    """Improved FV with a spatial pyramid, from the formulas: each (rows, cols) level's cells
    by their own loop over descriptors, each cell power + L2, a level of n cells weighted
    1 / sqrt(n), then the whole vector L2-normalised."""
    parts = []
    for rows, cols in levels:
        for r in range(rows):
            for c in range(cols):
                inside = [
                    t
                    for t, (x, y) in enumerate(xy)
                    if min(int(np.floor(y * rows)), rows - 1) == r
                    and min(int(np.floor(x * cols)), cols - 1) == c
                ]
                cell = (
                    improved(reference_fisher(desc[inside], weights, means, variances))
                    if inside
                    else np.zeros(2 * means.size)
                )
                parts.append(cell / np.sqrt(rows * cols))
    want = np.concatenate(parts)
    return want / np.linalg.norm(want)


def test_fisher_vector_kernel_equals_direct_formula_in_float64():
    """The kernel itself (float64, no float32 output) to 1e-12: posteriors from scipy's
    Gaussian densities, gradients by a loop over descriptors and Gaussians."""
    from featkit.extractors.encoding import fisher_vector, gmm_posteriors

    rng = np.random.default_rng(11)
    weights, means, variances = small_gmm(rng, k=3, d=4)
    desc = rng.normal(size=(40, 4)) * 1.5
    raw = reference_fisher(desc, weights, means, variances)
    got_raw = fisher_vector(desc, weights, means, variances, power=1.0, normalize=False)
    np.testing.assert_allclose(got_raw, raw, rtol=0, atol=1e-12)
    got = fisher_vector(desc, weights, means, variances)
    np.testing.assert_allclose(got, improved(raw), rtol=0, atol=1e-12)
    dens = np.stack(
        [
            w * multivariate_normal(m, np.diag(v)).pdf(desc)
            for w, m, v in zip(weights, means, variances, strict=True)
        ],
        axis=1,
    )
    np.testing.assert_allclose(
        gmm_posteriors(desc, weights, means, variances),
        dens / dens.sum(1, keepdims=True),
        rtol=0,
        atol=1e-12,
    )


def test_fisher_encoder_with_pca_and_general_pyramid_equals_direct_formulas(images):
    """fit (PCA + mixture) then encode with a 1x1 + 2x2 + 3x1 pyramid (the recipe of
    Chatfield et al. 2011) against the formulas cell by cell: 1e-10 before the float32
    output, float32 rounding after it."""
    local = GridPatches(patch=4, step=3)
    levels = [(1, 1), (2, 2), (3, 1)]
    enc = FisherVectorEncoder(local=local, n_components=3, pca_dim=4, pyramid=(1, 2, (3, 1)))
    enc.fit(images)
    assert enc.feature_dim == 2 * 3 * 4 * 8
    weights, means, variances = enc.gmm_weights_, enc.gmm_means_, enc.gmm_covariances_
    feats = local.describe(images)
    X = enc.transform(images)
    assert X.dtype == np.float32 and X.shape == (len(images), 2 * 3 * 4 * 8)
    for f, row in zip(feats, X, strict=True):
        z = (f.descriptors.astype(np.float64) - enc.pca_mean_) @ enc.pca_components_.T.astype(
            np.float64
        )
        want = reference_improved_fisher_pyramid(z, f.xy, levels, weights, means, variances)
        np.testing.assert_allclose(enc._encode_one(f), want, rtol=0, atol=1e-10)
        np.testing.assert_allclose(row, want, rtol=0, atol=1e-6)


def test_fisher_pooled_cells_equal_cell_by_cell_encoding():
    """The pieces-and-sums pooling of FisherVectorEncoder._blocks against the generic one
    descriptor set per cell (LocalEncoder._blocks), on overlapping odd grids."""
    from featkit.extractors.encoding import LocalEncoder, pyramid_cells, pyramid_levels

    rng = np.random.default_rng(3)
    weights, means, variances = small_gmm(rng, k=4, d=3)
    enc = fitted_with(
        FisherVectorEncoder(n_components=4, pca_dim=None, pyramid=(1, 2, (3, 1), (1, 3), 4)),
        pca_mean_=None,
        pca_components_=None,
        gmm_weights_=weights,
        gmm_means_=means,
        gmm_covariances_=variances,
    )
    desc = rng.normal(size=(120, 3))
    xy = rng.uniform(0, 1, size=(120, 2)) * [0.7, 1.0]  # the 4x4 grid's last column: empty
    codes = enc._codes(desc)
    levels = [(r * c, pyramid_cells(xy, r, c)) for r, c in pyramid_levels(enc.pyramid)]
    fast = enc._blocks(codes, levels)
    slow = LocalEncoder._blocks(enc, codes, levels)
    assert [b.shape for b in fast] == [b.shape for b in slow]
    assert any(not b.any() for b in slow[-1])  # an empty cell encodes as zeros
    for a, b in zip(fast, slow, strict=True):
        np.testing.assert_allclose(a, b, rtol=0, atol=1e-12)


def test_general_pyramid_levels_cells_names_and_validation():
    from featkit.extractors.encoding import pyramid_cells, pyramid_levels

    xy = np.array([[0.9, 0.1], [0.1, 0.5], [0.5, 0.99]])
    assert pyramid_cells(xy, 3, 1).tolist() == [0, 1, 2]  # three horizontal bands
    assert pyramid_cells(xy, 1, 3).tolist() == [2, 0, 1]  # three vertical bands
    assert pyramid_cells(xy, 2).tolist() == pyramid_cells(xy, 2, 2).tolist() == [1, 2, 3]
    assert pyramid_levels((1, 2, (3, 1), [1, 3])) == [(1, 1), (2, 2), (3, 1), (1, 3)]
    enc = BagOfVisualWords(n_words=3, pyramid=(1, (3, 1)), norm="l1")
    assert enc.feature_dim == 3 * 4
    names = enc.get_feature_names_out()
    assert names[3] == "bovw_s3x1_r0_c0_w0" and names[-1] == "bovw_s3x1_r2_c0_w2"
    fitted_with(enc, codebook_=CODEBOOK, idf_=None)
    vec = enc.encode([LocalFeatures(DESC, XY)])[0]
    np.testing.assert_allclose([vec[:3].sum(), vec[3:].sum()], 0.5, rtol=1e-6)  # equal mass
    for bad in [(1, (3,)), (1, (0, 2)), (2, (2, 2)), (1, (3, 1.5)), ((1, 65),)]:
        with pytest.raises(featkit.InvalidParameterError, match="pyramid"):
            BagOfVisualWords(pyramid=bad).validate_params()
    # a config read back from JSON has lists for pairs: the same extractor
    again = featkit.create_extractor("fisher", pyramid=json.loads(json.dumps((1, (3, 1)))))
    assert again.feature_dim == FisherVectorEncoder(pyramid=(1, (3, 1))).feature_dim


def test_chatfield2011_preset_is_the_published_recipe():
    enc = featkit.create_extractor("dsift-fisher-chatfield2011")
    assert (enc.n_components, enc.pca_dim, enc.power) == (256, 80, 0.5)
    assert pyramid_levels_of(enc) == [(1, 1), (2, 2), (3, 1)]
    assert enc.feature_dim == 2 * 256 * 80 * 8 == 327_680
    local = enc._local()
    assert local.name == "dsift-phow"
    assert (local.step, tuple(local.bin_sizes), local.sigma, local.magnif) == (
        3,
        (4, 6, 8, 10),
        None,
        6.0,
    )
    assert local.window_size == 1.5
    # the former default stays: its cached features and published numbers are unchanged
    old = featkit.create_extractor("dsift-fisher")
    assert (old.n_components, old.pca_dim, old.pyramid, old.feature_dim) == (64, 64, (1,), 8192)


def pyramid_levels_of(enc):
    from featkit.extractors.encoding import pyramid_levels

    return pyramid_levels(enc.pyramid)


# -- fitting --------------------------------------------------------------------------------
def test_same_seed_same_codebook_other_seed_differs(images):
    import faiss

    local = GridPatches(step=6)
    a = BagOfVisualWords(local=local, n_words=16, seed=1, max_descriptors=300).fit(images)
    b = BagOfVisualWords(local=local, n_words=16, seed=1, max_descriptors=300).fit(images)
    c = BagOfVisualWords(local=local, n_words=16, seed=2, max_descriptors=300).fit(images)
    np.testing.assert_array_equal(a.codebook_, b.codebook_)
    assert not np.array_equal(a.codebook_, c.codebook_)
    threads = faiss.omp_get_max_threads()
    try:  # faiss's k-means gives the same codebook whatever its thread count
        faiss.omp_set_num_threads(1)
        one = BagOfVisualWords(local=local, n_words=16, seed=1, max_descriptors=300).fit(images)
    finally:
        faiss.omp_set_num_threads(threads)
    np.testing.assert_array_equal(a.codebook_, one.codebook_)


def test_subsample_is_seeded_uniform_and_independent_of_workers():
    imgs = sample_images(40, seed=3)
    local = GridPatches(step=8)
    kw = {"local": local, "n_words": 8, "max_descriptors": 500, "seed": 4}
    seq = VLADEncoder(**kw).fit(imgs)
    with joblib.parallel_config(backend="threading", n_jobs=2):
        par = VLADEncoder(**kw).fit(imgs)
    np.testing.assert_array_equal(seq.codebook_, par.codebook_)
    assert seq.n_train_descriptors_ == sum(len(f) for f in local.describe(imgs)) > 500


def test_kmeans_codebook_is_a_kmeans_fixed_point():
    rng = np.random.default_rng(0)
    centres = rng.normal(scale=5, size=(5, 3))
    x = (centres[rng.integers(0, 5, 2000)] + rng.normal(size=(2000, 3))).astype(np.float32)
    codebook, inertia = kmeans_codebook(x, 5, n_iter=30, seed=0)
    words, d2 = nearest(x.astype(np.float64), codebook.astype(np.float64))
    means = np.stack([x[words == j].mean(0) for j in range(5)])
    np.testing.assert_allclose(codebook, means, atol=1e-3)
    assert inertia == pytest.approx(d2.min(1).sum(), rel=1e-4)


def test_fit_uses_only_the_images_given():
    rng = np.random.default_rng(2)
    dark = [rng.integers(0, 100, (32, 32), dtype=np.uint8) for _ in range(4)]
    bright = [rng.integers(160, 256, (32, 32), dtype=np.uint8) for _ in range(4)]
    local = GridPatches(step=8)
    only_dark = BagOfVisualWords(local=local, n_words=6).fit(dark)
    assert only_dark.codebook_.max() <= 100 / 255 + 1e-6
    assert only_dark.n_train_images_ == 4
    both = BagOfVisualWords(local=local, n_words=6).fit(dark + bright)
    assert both.codebook_.max() >= 160 / 255
    with pytest.raises(featkit.InvalidParameterError, match="n_words=64"):
        BagOfVisualWords(local=local, n_words=64).fit(dark[:1])


# -- empty sets, pickling, parameters -----------------------------------------------------
@pytest.mark.parametrize(
    "encoder",
    [
        BagOfVisualWords(n_words=4, tfidf=True, pyramid=(1, 2)),
        VLADEncoder(n_words=4, pyramid=(1, 2)),
        FisherVectorEncoder(n_components=2, pca_dim=3, pyramid=(1, 2)),
    ],
    ids=["bovw", "vlad", "fisher"],
)
def test_images_without_descriptors_encode_as_zeros(encoder, images, caplog):
    enc = clone(encoder).set_params(local=GridPatches(step=8)).fit(images)
    tiny = np.zeros((4, 4), dtype=np.uint8)  # smaller than a patch: no descriptors
    with caplog.at_level("WARNING", logger="featkit.extractors.encoding"):
        X = enc.transform([images[0], tiny, images[1], tiny])
    assert np.isfinite(X).all()
    assert not X[1].any() and not X[3].any() and X[0].any()
    assert enc.n_empty_ == 2 and "2 of 4 images have no local descriptors" in caplog.text
    enc.transform(images[:2])
    assert enc.n_empty_ == 0
    config = json.dumps(enc.config, sort_keys=True)  # the counter is not fitted state
    enc.transform([tiny])
    assert json.dumps(enc.config, sort_keys=True) == config


def test_pickle_round_trip_rebuilds_the_index(images):
    enc = BagOfVisualWords(local=GridPatches(), n_words=10, assignment="soft").fit(images)
    before = enc.transform(images)  # builds the faiss index
    assert "_faiss_index" in vars(enc)
    copy = pickle.loads(pickle.dumps(enc))
    assert "_faiss_index" not in vars(copy)
    np.testing.assert_array_equal(copy.transform(images), before)
    assert copy.config == enc.config


def test_nested_local_params_clone_and_grid_search(digit_images, local_name):
    enc = BagOfVisualWords(local=GridPatches(patch=4, step=2), n_words=8)
    params = enc.get_params(deep=True)
    assert params["local__patch"] == 4 and params["local__step"] == 2
    enc.set_params(local__step=3)
    assert enc.local.step == 3
    twin = clone(enc)
    assert twin.local is not enc.local and twin.local.get_params() == {"patch": 4, "step": 3}
    assert twin.config == enc.config
    by_name = BagOfVisualWords(local=local_name, n_words=8).set_params(local__step=5)
    assert isinstance(by_name.local, GridPatches) and by_name.local.step == 5
    assert enc.config["local"]["params"] == {"patch": 4, "step": 3}

    digits, labels = digit_images
    big = np.kron(digits[:200], np.ones((1, 2, 2), np.uint8))  # 16x16
    features = BagOfVisualWords(
        local=GridPatches(patch=4), n_words=16, pyramid=(1, 2), norm="hellinger"
    )
    pipe = Pipeline([("features", features), ("clf", LogisticRegression(C=10, max_iter=300))])
    search = GridSearchCV(pipe, {"features__local__step": [2, 4]}, cv=2)
    search.fit(list(big), labels[:200])
    assert search.best_params_["features__local__step"] in (2, 4)
    assert search.best_score_ > 0.6  # chance is 0.1


def test_conformance_with_registered_local(local_name):
    enc = BagOfVisualWords(local=local_name, n_words=8, pyramid=(1, 2))
    for name, check in extractor_checks(enc):
        # The fixture registers the name in this process only: a fresh interpreter cannot
        # resolve it (an entry-point plugin's name it can: test_conformance checks those).
        if name != "check_config_across_processes":
            check()


@pytest.mark.parametrize(
    "encoder",
    [
        BagOfVisualWords(n_words=8, assignment="soft", tfidf=True, norm="hellinger"),
        VLADEncoder(n_words=4, pyramid=(1, 2)),
        FisherVectorEncoder(n_components=3, pca_dim=8),
    ],
    ids=["bovw", "vlad", "fisher"],
)
def test_conformance_with_local_instance(encoder):
    # check_get_set_params compares parameters with ==, which an estimator-valued
    # parameter (a LocalExtractor instance, cloned) cannot pass; clone is tested above.
    enc = clone(encoder).set_params(local=GridPatches(step=6))
    for name, check in extractor_checks(enc):
        if name != "check_get_set_params":
            check()


def test_feature_dim_and_names_before_fit():
    enc = VLADEncoder(local=GridPatches(patch=4), n_words=5, pyramid=(1, 2))
    assert enc.feature_dim == 5 * 16 * 5
    names = enc.get_feature_names_out()
    assert names[0] == "vlad_s1_r0_c0_w0_d0" and len(set(names)) == enc.feature_dim
    fv = FisherVectorEncoder(local=GridPatches(), n_components=2, pca_dim=None)
    assert fv.feature_dim == 2 * 2 * 64
    assert fv.get_feature_names_out()[128] == "fisher_sigma0_d0"


@pytest.mark.parametrize(
    ("params", "match"),
    [
        ({"n_words": 0}, "bovw: n_words"),
        ({"assignment": "fuzzy"}, "bovw: assignment"),
        ({"soft_sigma": -1.0}, "bovw: soft_sigma"),
        ({"pyramid": (1, 1)}, "bovw: pyramid levels must be distinct"),
        ({"pyramid": ()}, "bovw: pyramid"),
        ({"pyramid": (1, 0)}, "bovw: pyramid"),
        ({"norm": "max"}, "bovw: norm"),
        ({"local": "pixels"}, "bovw: local='pixels' is a global extractor"),
        ({"local": PixelsExtractor()}, "bovw: local must be"),
        ({"local": "no-such-extractor"}, "bovw: local='no-such-extractor'"),
        ({"max_descriptors": 0}, "bovw: max_descriptors"),
        ({"tfidf": "yes"}, "bovw: tfidf"),
    ],
)
def test_bad_parameters_are_clear_errors(params, match):
    with pytest.raises(featkit.InvalidParameterError, match=match):
        featkit.create_extractor("bovw", **{"local": GridPatches(), **params})


def test_bad_encoder_specific_parameters(images):
    with pytest.raises(featkit.InvalidParameterError, match="vlad: power"):
        featkit.create_extractor("vlad", local=GridPatches(), power=1.5)
    with pytest.raises(featkit.InvalidParameterError, match="fisher: pca_dim=80 exceeds"):
        FisherVectorEncoder(local=GridPatches(patch=4), n_components=2, pca_dim=80).fit(images)


def test_registered_combinations_show_their_defaults():
    info = featkit.describe_extractor("dsift-bovw")
    defaults = {p["name"]: p["default"] for p in info["parameters"]}
    assert defaults["pyramid"] == (1, 2) and defaults["local"] == "dsift"
    assert defaults["assignment"] == "soft" and defaults["norm"] == "hellinger"
    assert featkit.describe_extractor("bovw")["parameters"][2]["default"] == "hard"
    assert "spatial pyramid" in info["summary"]
    docs = {p["name"]: p["doc"] for p in info["parameters"]}
    assert "k-means" in docs["n_words"]
    assert "default=(1, 2)" in DenseSiftBagOfWords.__doc__
    expected = {
        "bovw": ("dsift", "n_words", 1024),
        "sift-bovw": ("sift", "n_words", 1024),
        "dsift-vlad": ("dsift", "n_words", 64),
        "vlad": ("dsift", "n_words", 64),
        "dsift-fisher": ("dsift", "n_components", 64),
        "dsift-fisher-chatfield2011": ("dsift-phow", "n_components", 256),
        "fisher": ("dsift", "n_components", 64),
    }
    for name, (local, size_param, size) in expected.items():
        params = {p["name"]: p["default"] for p in featkit.describe_extractor(name)["parameters"]}
        assert params["local"] == local and params[size_param] == size, name
        cls = registry.get_extractor_info(name).factory
        assert cls.name == name and cls.requires_fit


# -- the real local extractors and the engine ------------------------------------------------
@pytest.mark.parametrize(
    "name", ["dsift-bovw", "dsift-vlad", "dsift-fisher", "dsift-fisher-chatfield2011", "sift-bovw"]
)
def test_registered_combination_with_real_sift(name):
    module = "featkit.extractors.sift" if name.startswith("sift") else "featkit.extractors.dsift"
    pytest.importorskip(module)
    images = [
        np.kron(read_image(img, mode="gray"), np.ones((3, 3), np.uint8))
        for img in sample_images(6, seed=2)
    ]  # 144x192 gray
    size = {"n_components": 2, "pca_dim": 8} if "fisher" in name else {"n_words": 8}
    enc = featkit.create_extractor(name, max_descriptors=5000, **size)
    X = enc.fit(images).transform(images)
    assert X.shape == (6, enc.feature_dim) and np.isfinite(X).all()
    local = {"sift-bovw": "sift", "dsift-fisher-chatfield2011": "dsift-phow"}.get(name, "dsift")
    assert enc.config["local"]["name"] == local


def test_extract_end_to_end_on_real_images(tmp_path):
    requires_pacs()
    paths = sorted((PACS / "photo" / "dog").glob("*.jpg"))[:6]
    paths += sorted((PACS / "photo" / "house").glob("*.jpg"))[:6]
    enc = BagOfVisualWords(local=GridPatches(patch=8, step=8), n_words=16, pyramid=(1, 2))
    enc.fit([str(p) for p in paths[::2]])
    fs = featkit.extract(enc, [str(p) for p in paths], n_jobs=2, batch_size=4, progress=False)
    assert fs.X.shape == (12, 16 * 5) and fs.X.dtype == np.float32
    np.testing.assert_allclose(fs.X, enc.transform([str(p) for p in paths]), rtol=1e-6)
    np.testing.assert_allclose(np.linalg.norm(fs.X, axis=1), 1.0, rtol=1e-5)

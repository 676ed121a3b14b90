"""Numeric kernels of the encoders, usable on descriptor arrays directly.

k-means codebooks (faiss), PCA bases, VLAD and improved Fisher vectors of one descriptor
set, Gaussian-mixture posteriors and the k-means initial mixture, and the faiss/BLAS
helpers they share: a flat L2 index of a codebook, nearest-word search with BLAS held to
one thread, per-word sums, power and L2 normalisation.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from featkit.exceptions import InvalidParameterError

__all__ = ["fisher_vector", "gmm_posteriors", "kmeans_codebook", "pca_basis", "vlad_vector"]


def kmeans_codebook(
    descriptors: np.ndarray,
    n_words: int,
    *,
    n_iter: int = 20,
    seed: int = 0,
    max_points_per_centroid: int | None = None,
) -> tuple[np.ndarray, float]:
    """faiss k-means codebook of ``descriptors`` (n, D): float32 (n_words, D) and its inertia.

    ``max_points_per_centroid`` lets faiss train on a seeded subsample of that many points
    per word (faiss's own default is 256); None uses every point (the encoders subsample
    beforehand, to ``max_descriptors``). The result depends only on the data, its order and
    ``seed``, not on the number of threads. The inertia is the sum of squared distances of
    all the points to their nearest word.
    """
    from featkit._faiss import import_faiss

    faiss = import_faiss()

    x = np.ascontiguousarray(descriptors, dtype=np.float32)
    n, d = x.shape
    if n < n_words:
        raise InvalidParameterError(
            f"k-means needs at least n_words={n_words} descriptors, got {n}: give more "
            "training images or fewer words"
        )
    kmeans = faiss.Kmeans(
        d,
        int(n_words),
        niter=int(n_iter),
        seed=int(seed),
        verbose=False,
        min_points_per_centroid=1,  # silences faiss's "please provide 39*k points" warning
        max_points_per_centroid=(
            max(1, -(-n // n_words)) if max_points_per_centroid is None else max_points_per_centroid
        ),
    )
    with _single_threaded_blas():
        kmeans.train(x)
    centroids = np.ascontiguousarray(kmeans.centroids, dtype=np.float32).reshape(n_words, d)
    _, dist = _nearest(_flat_index(centroids), x, 1)
    return centroids, float(dist.sum(dtype=np.float64))


def pca_basis(descriptors: np.ndarray, n_components: int) -> tuple[np.ndarray, np.ndarray]:
    """PCA of descriptors: float32 mean (D,) and components (n_components, D), by variance.

    Eigenvectors of the covariance matrix, each signed so that its largest-magnitude entry
    is positive (scikit-learn's ``svd_flip`` convention for PCA components).
    """
    from threadpoolctl import threadpool_limits

    x = np.asarray(descriptors, dtype=np.float64)
    mean = x.mean(axis=0)
    with threadpool_limits(limits=1, user_api="blas"):
        centred = x - mean
        cov = centred.T @ centred / max(len(x) - 1, 1)
        _, vectors = np.linalg.eigh(cov)
    comps = vectors[:, ::-1][:, :n_components].T
    signs = np.sign(comps[np.arange(len(comps)), np.abs(comps).argmax(axis=1)])
    return mean.astype(np.float32), (comps * signs[:, None]).astype(np.float32)


def vlad_vector(
    descriptors: np.ndarray,
    codebook: np.ndarray,
    *,
    assignments: np.ndarray | None = None,
    intra_norm: bool = True,
    power: float = 0.5,
    normalize: bool = True,
) -> np.ndarray:
    """VLAD of one descriptor set: residual sums per nearest word, (K * D,) float64.

    ``intra_norm`` L2-normalises each word's block (Arandjelovic & Zisserman 2013), then
    signed power ``|v| ** power`` and a global L2 normalisation (``normalize``). An empty set
    gives zeros.
    """
    x = np.asarray(descriptors, dtype=np.float64)
    c = np.asarray(codebook, dtype=np.float64)
    k, d = c.shape
    if len(x) == 0:
        return np.zeros(k * d)
    if assignments is None:
        assignments = _nearest(_flat_index(codebook), x, 1)[0][:, 0]
    v = _word_sums(assignments, x - c[assignments], k)
    if intra_norm:
        v = _l2_rows(v)
    return _power_l2(v.ravel(), power, normalize)


def gmm_posteriors(
    descriptors: np.ndarray, weights: np.ndarray, means: np.ndarray, variances: np.ndarray
) -> np.ndarray:
    """Posterior probabilities (n, K) of the components of a diagonal Gaussian mixture."""
    x = np.asarray(descriptors, dtype=np.float64)
    mu = np.asarray(means, dtype=np.float64)
    prec = 1.0 / np.asarray(variances, dtype=np.float64)
    # log N(x | mu_k, diag(var_k)) expanded so that it is one matrix product per term
    log_det = np.sum(np.log(prec), axis=1)
    quad = (x * x) @ prec.T - 2.0 * x @ (mu * prec).T + np.sum(mu * mu * prec, axis=1)[None, :]
    log_prob = -0.5 * (x.shape[1] * np.log(2 * np.pi) + quad) + 0.5 * log_det
    log_prob += np.log(np.asarray(weights, dtype=np.float64))[None, :]
    log_prob -= log_prob.max(axis=1, keepdims=True)
    # below e^-100 a posterior is 0 for any purpose; exact zeros keep subnormal numbers
    # (hundreds of times slower in BLAS) out of the statistics
    log_prob[log_prob < -100.0] = -np.inf
    post = np.exp(log_prob)
    return post / post.sum(axis=1, keepdims=True)


def fisher_vector(
    descriptors: np.ndarray,
    weights: np.ndarray,
    means: np.ndarray,
    variances: np.ndarray,
    *,
    posteriors: np.ndarray | None = None,
    power: float = 0.5,
    normalize: bool = True,
) -> np.ndarray:
    """Improved Fisher vector (Perronnin et al. 2010) of one set, (2 * K * D,) float64.

    Gradients with respect to the means then the standard deviations, each (K, D) row-major::

        G_mu_k    = 1 / (T sqrt(w_k))   sum_t g_t(k) (x_t - mu_k) / sigma_k
        G_sigma_k = 1 / (T sqrt(2 w_k)) sum_t g_t(k) [(x_t - mu_k)^2 / sigma_k^2 - 1]

    then signed power ``|v| ** power`` and L2 (``normalize``). This is the layout of
    ``skimage.feature.fisher_vector`` without its K weight gradients; skimage's sigma block
    has the opposite sign. An empty set gives zeros.
    """
    x = np.asarray(descriptors, dtype=np.float64)
    mu = np.asarray(means, dtype=np.float64)
    var = np.asarray(variances, dtype=np.float64)
    w = np.asarray(weights, dtype=np.float64)
    k, d = mu.shape
    if len(x) == 0:
        return np.zeros(2 * k * d)
    g = gmm_posteriors(x, w, mu, var) if posteriors is None else np.asarray(posteriors)
    return _fisher_from_stats(*_fisher_stats(x, g), len(x), w, mu, var, power, normalize)


def _fisher_stats(x: np.ndarray, g: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Sufficient statistics of a descriptor set: sum_t g_t(k), sum_t g_t(k) x_t, and
    sum_t g_t(k) x_t^2 ((K,), (K, D), (K, D)); sums of subsets add up to the set's."""
    return g.sum(axis=0), g.T @ x, g.T @ (x * x)


def _fisher_from_stats(
    s0: np.ndarray,
    s1: np.ndarray,
    s2: np.ndarray,
    t: int,
    w: np.ndarray,
    mu: np.ndarray,
    var: np.ndarray,
    power: float,
    normalize: bool,
) -> np.ndarray:
    """The improved Fisher vector of a set of ``t`` descriptors from its statistics."""
    if t == 0:
        return np.zeros(2 * mu.size)
    s0 = s0[:, None]
    g_mu = (s1 - s0 * mu) / (t * np.sqrt(w)[:, None] * np.sqrt(var))
    g_sigma = (s2 - 2.0 * mu * s1 + s0 * (mu * mu - var)) / (t * np.sqrt(2.0 * w)[:, None] * var)
    return _power_l2(np.concatenate([g_mu.ravel(), g_sigma.ravel()]), power, normalize)


def _kmeans_mixture(
    x: np.ndarray, k: int, reg: float, seed: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Initial diagonal mixture from faiss k-means clusters (as VLFeat's vl_gmm does)."""
    centres, _ = kmeans_codebook(x, k, n_iter=20, seed=seed)
    labels = _nearest(_flat_index(centres), x, 1)[0][:, 0]
    counts = np.bincount(labels, minlength=k).astype(np.float64)
    order = np.argsort(labels, kind="stable")
    present = np.flatnonzero(counts)
    starts = np.concatenate([[0], np.cumsum(counts[present])[:-1]]).astype(np.int64)
    sums = np.zeros((k, x.shape[1]))
    squares = np.zeros((k, x.shape[1]))
    sums[present] = np.add.reduceat(x[order], starts, axis=0)
    squares[present] = np.add.reduceat(x[order] ** 2, starts, axis=0)
    safe = np.maximum(counts, 1.0)[:, None]
    means = np.where(counts[:, None] > 0, sums / safe, centres.astype(np.float64))
    variances = np.where(counts[:, None] > 1, squares / safe - means**2, x.var(axis=0))
    weights = (counts + 1.0) / (counts.sum() + k)  # no empty component
    return weights, means, np.maximum(variances, 0.0) + reg


# -- small numeric helpers ------------------------------------------------------------------
def _flat_index(codebook: np.ndarray) -> Any:
    from featkit._faiss import import_faiss

    faiss = import_faiss()

    c = np.ascontiguousarray(codebook, dtype=np.float32)
    index = faiss.IndexFlatL2(c.shape[1])
    index.add(c)
    return index


def _nearest(index: Any, x: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Indices (n, k) of the k nearest words and their squared distances."""
    with _single_threaded_blas():
        dist, idx = index.search(np.ascontiguousarray(x, dtype=np.float32), k)
    return idx.astype(np.int64), dist


def _single_threaded_blas() -> Any:
    """Limit BLAS to one thread around faiss calls: faiss parallelises with OpenMP, and
    OpenBLAS threads on top of it oversubscribe the cores (2x slower measured on 2 cores)."""
    controller = _CONTROLLER.get("blas")
    if controller is None:
        from featkit._faiss import import_faiss

        import_faiss()  # its BLAS must be loaded before the controller looks
        from threadpoolctl import ThreadpoolController

        controller = _CONTROLLER["blas"] = ThreadpoolController()
    return controller.limit(limits=1, user_api="blas")


_CONTROLLER: dict[str, Any] = {}


def _word_sums(labels: np.ndarray, values: np.ndarray, k: int) -> np.ndarray:
    """Sum of the rows of ``values`` per label: (k, D), zeros for absent labels."""
    out = np.zeros((k, values.shape[1]))
    if len(labels) == 0:
        return out
    order = np.argsort(labels, kind="stable")
    sorted_labels = labels[order]
    starts = np.flatnonzero(np.r_[True, sorted_labels[1:] != sorted_labels[:-1]])
    out[sorted_labels[starts]] = np.add.reduceat(values[order], starts, axis=0)
    return out


def _l2_rows(v: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(v, axis=1, keepdims=True)
    return np.divide(v, norms, out=np.zeros_like(v), where=norms > 0)


def _power_l2(v: np.ndarray, power: float, normalize: bool) -> np.ndarray:
    if power != 1.0:
        v = np.sign(v) * np.abs(v) ** power
    if normalize:
        norm = np.linalg.norm(v)
        v = v / norm if norm > 0 else v
    return v

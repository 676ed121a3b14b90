"""Transferability scores: how well features (or a source model's predictions) suit labels,
computed from ``(X, y)`` without training a classifier. Higher is better for every score.

- :func:`logme`: LogME (You et al., ICML 2021), the maximised evidence of a Bayesian linear
  model from the features to each one-vs-rest label, per image, averaged over classes.
- :func:`h_score`: H-score (Bao et al., ICIP 2019), ``tr(cov(f)^+ cov(E[f|y]))``.
- :func:`shrinkage_h_score`: H-score with the Ledoit-Wolf shrunk covariance (Ibrahim et al.,
  2022), which does not saturate when the dimensions approach the number of images.
- :func:`leep`: LEEP (Nguyen et al., ICML 2020), from the source model's class probabilities.
- :func:`nce`: NCE (Tran et al., ICCV 2019), ``-H(Y|Z)`` for the source model's labels Z.
- :func:`knn_loo_accuracy`: leave-one-out accuracy of a cosine k-NN, a cheap baseline.
"""

from __future__ import annotations

import numpy as np

__all__ = [
    "evidence",
    "h_score",
    "knn_loo_accuracy",
    "leep",
    "logme",
    "nce",
    "shrinkage_h_score",
]


def _labels(y: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """``y`` as class indices 0..C-1 and the class values, checked against ``n`` rows."""
    y = np.asarray(y)
    if y.ndim != 1 or len(y) != n:
        raise ValueError(f"y must be one label per row ({n}), got shape {y.shape}")
    classes, codes = np.unique(y, return_inverse=True)
    return codes, classes


def _features(X: np.ndarray) -> np.ndarray:
    X = np.asarray(X, dtype=np.float64)
    if X.ndim != 2:
        raise ValueError(f"X must be (n, d), got shape {X.shape}")
    return X


def evidence(X: np.ndarray, t: np.ndarray, alpha: float, beta: float) -> float:
    """Log evidence of the Bayesian linear model ``t = X w + noise`` with prior
    ``w ~ N(0, I / alpha)`` and noise precision ``beta`` (the quantity LogME maximises),
    computed directly: ``A = alpha I + beta X'X``, ``m = beta A^-1 X't``."""
    X = _features(X)
    t = np.asarray(t, dtype=np.float64)
    n, d = X.shape
    A = alpha * np.eye(d) + beta * X.T @ X
    m = beta * np.linalg.solve(A, X.T @ t)
    residual = float(np.sum((t - X @ m) ** 2))
    _, logdet = np.linalg.slogdet(A)
    return float(
        n / 2 * np.log(beta)
        + d / 2 * np.log(alpha)
        - n / 2 * np.log(2 * np.pi)
        - beta / 2 * residual
        - alpha / 2 * float(m @ m)
        - logdet / 2
    )


def logme(X: np.ndarray, y: np.ndarray, *, tol: float = 1e-10, max_iter: int = 1000) -> float:
    """LogME: for each class, the evidence of a linear model from ``X`` to the one-vs-rest
    target, maximised over (alpha, beta) by You et al.'s fixed point; the mean over
    classes of max evidence / n.

    Iterates to a relative change in alpha/beta below ``tol`` (the reference code stops
    after 11 steps or 1e-2), so the value is the maximum itself.
    """
    X = _features(X)
    n, d = X.shape
    codes, classes = _labels(y, n)
    # One SVD for every class: in its basis each fixed-point step costs O(min(n, d)).
    u, s, _ = np.linalg.svd(X, full_matrices=False)
    sigma = s**2  # eigenvalues of X'X (the others are 0)
    T = np.eye(len(classes))[codes]  # (n, C) one-vs-rest targets
    Z = u.T @ T  # targets in the left singular basis
    outside = np.sum(T**2, axis=0) - np.sum(Z**2, axis=0)  # part no w can fit
    values = [
        _max_evidence(Z[:, c], max(float(outside[c]), 0.0), s, sigma, n, d, tol, max_iter)
        for c in range(len(classes))
    ]
    return float(np.mean(values)) / n


def _max_evidence(
    z: np.ndarray,
    outside: float,
    s: np.ndarray,
    sigma: np.ndarray,
    n: int,
    d: int,
    tol: float,
    max_iter: int,
) -> float:
    """The evidence at You et al.'s fixed point for one target (``z``: its coordinates in
    the left singular basis, ``outside``: its squared norm outside it)."""

    def posterior(alpha: float, beta: float) -> tuple[float, float, float]:
        shrink = alpha + beta * sigma
        m2 = float(np.sum((beta * s * z / shrink) ** 2))  # m'm
        residual = outside + float(np.sum((alpha * z / shrink) ** 2))  # ||t - X m||^2
        gamma = float(np.sum(beta * sigma / shrink))
        return m2, residual, gamma

    alpha, beta = 1.0, 1.0
    for _ in range(max_iter):
        m2, residual, gamma = posterior(alpha, beta)
        # Tiny floors keep a degenerate target (all one class, or fitted exactly) finite.
        new_alpha = gamma / max(m2, 1e-300)
        new_beta = (n - gamma) / max(residual, 1e-300)
        done = abs(new_alpha - alpha) <= tol * alpha and abs(new_beta - beta) <= tol * beta
        alpha, beta = new_alpha, new_beta
        if done:
            break
    m2, residual, _ = posterior(alpha, beta)
    logdet = float(np.sum(np.log(alpha + beta * sigma))) + (d - len(sigma)) * np.log(alpha)
    return float(
        n / 2 * np.log(beta)
        + d / 2 * np.log(alpha)
        - n / 2 * np.log(2 * np.pi)
        - beta / 2 * residual
        - alpha / 2 * m2
        - logdet / 2
    )


def h_score(X: np.ndarray, y: np.ndarray) -> float:
    """H-score: ``tr(cov(f)^+ cov(E[f|y]))``, with population covariances and the
    pseudo-inverse (features are often rank-deficient). With at least as many dimensions as
    images minus classes it saturates at C - 1: it ranks features when n >> d."""
    X = _features(X)
    codes, classes = _labels(y, len(X))
    centred = X - X.mean(axis=0)
    means = np.zeros((len(classes), X.shape[1]))
    np.add.at(means, codes, centred)
    means /= np.bincount(codes)[:, None]
    # In the SVD of the centred rows, cov(f)^+ = n V S^-2 V', and E[f|y] lies in their row
    # space, so the trace is sum_c n_c ||S^-1 V' mean_c||^2: O(n d min(n, d)), no d x d
    # inverse (a pinv of HOG's 8100 x 8100 covariance took minutes).
    _, s, vh = np.linalg.svd(centred, full_matrices=False)
    keep = s > s.max(initial=0.0) * max(X.shape) * np.finfo(np.float64).eps
    projected = means @ vh[keep].T / s[keep]  # each class mean in the whitened basis
    return float(np.sum(np.bincount(codes)[:, None] * projected**2))


def shrinkage_h_score(X: np.ndarray, y: np.ndarray) -> float:
    """Shrinkage H-score (Ibrahim, Ponomareva and Mazumder, 2022):
    ``tr(cov_a(f)^-1 (1 - a) cov(E[f|y]))``, where ``cov_a = (1 - a) cov(f) + a mu I`` is
    the Ledoit-Wolf estimate (``mu`` the mean variance, ``a`` its shrinkage, as
    ``sklearn.covariance.LedoitWolf`` computes them), population covariances throughout.
    Unlike :func:`h_score`, it does not saturate at C - 1 when ``d`` approaches ``n``."""
    X = _features(X)
    n, d = X.shape
    codes, classes = _labels(y, n)
    centred = X - X.mean(axis=0)
    counts = np.bincount(codes)
    means = np.zeros((len(classes), d))
    np.add.at(means, codes, centred)
    means /= counts[:, None]
    _, s, vh = np.linalg.svd(centred, full_matrices=False)
    variances = s**2 / n  # the eigenvalues of cov(f) in its row space; 0 elsewhere
    shrinkage, mu = _ledoit_wolf(centred, s)
    # The class means lie in the row space, where cov_a's eigenvalues are
    # (1 - a) s^2 / n + a mu: O(n d min(n, d)), no d x d matrix (HOG has d = 8100).
    eigenvalues = (1 - shrinkage) * variances + shrinkage * mu
    keep = eigenvalues > 0
    projected = means @ vh[keep].T
    between = np.sum(counts[:, None] * projected**2, axis=0) / n  # diag of V' cov(E[f|y]) V
    return float((1 - shrinkage) * np.sum(between / eigenvalues[keep]))


def _ledoit_wolf(centred: np.ndarray, s: np.ndarray) -> tuple[float, float]:
    """(shrinkage, mean variance) of centred rows, as ``sklearn.covariance.
    ledoit_wolf_shrinkage`` computes them (Ledoit and Wolf, 2004), from the n x n Gram
    matrix instead of the d x d covariance."""
    n, d = centred.shape
    trace = float(np.sum(s**2)) / n  # tr(cov(f))
    mu = trace / d
    squared_norms = np.sum(centred**2, axis=1)
    beta_ = float(np.sum(squared_norms**2))  # sum over rows of ||x||^4
    delta_ = float(np.sum(s**4)) / n**2  # ||X'X||_F^2 / n^2 = ||cov(f)||_F^2
    beta = (beta_ / n - delta_) / (d * n)
    delta = (delta_ - 2.0 * mu * trace + d * mu**2) / d
    beta = min(beta, delta)
    return (0.0 if beta == 0 else beta / delta), mu


def _probabilities(probabilities: np.ndarray) -> np.ndarray:
    P = np.asarray(probabilities, dtype=np.float64)
    if P.ndim != 2:
        raise ValueError(f"probabilities must be (n, source classes), got shape {P.shape}")
    return P


def leep(probabilities: np.ndarray, y: np.ndarray) -> float:
    """LEEP: the mean log-likelihood of ``y`` under the expected empirical predictor, which
    maps the source model's class probabilities to target labels through the empirical
    conditional ``P(y|z)`` (Nguyen et al., eq. 2)."""
    P = _probabilities(probabilities)
    n = len(P)
    codes, classes = _labels(y, n)
    joint = np.zeros((len(classes), P.shape[1]))  # P(y, z)
    np.add.at(joint, codes, P / n)
    marginal = joint.sum(axis=0)  # P(z)
    conditional = np.divide(joint, marginal, out=np.zeros_like(joint), where=marginal > 0)
    predicted = np.sum(P * conditional[codes], axis=1)  # sum_z P(y_i|z) theta_i(z)
    return float(np.mean(np.log(predicted)))


def nce(source_labels: np.ndarray, y: np.ndarray) -> float:
    """NCE: the negative conditional entropy ``-H(Y|Z)`` of the target labels given the
    source labels Z (e.g. the argmax of the source model's probabilities), from counts."""
    z = np.asarray(source_labels)
    if z.ndim == 2:  # probabilities: the source model's predicted labels
        z = z.argmax(axis=1)
    n = len(z)
    codes, _ = _labels(y, n)
    _, zc = np.unique(z, return_inverse=True)
    joint = np.zeros((codes.max() + 1, zc.max() + 1))
    np.add.at(joint, (codes, zc), 1.0 / n)
    marginal = joint.sum(axis=0)
    present = joint > 0
    return float(np.sum(joint[present] * np.log((joint / marginal)[present])))


def knn_loo_accuracy(X: np.ndarray, y: np.ndarray, k: int = 5, block: int = 1024) -> float:
    """Leave-one-out accuracy of a k-NN with cosine similarity and a majority vote (ties:
    the smallest class, as scikit-learn's KNeighborsClassifier). Exact, O(n^2 d)."""
    X = _features(X)
    n = len(X)
    codes, classes = _labels(y, n)
    if not 1 <= k < n:
        raise ValueError(f"k must be between 1 and n - 1 = {n - 1}, got {k}")
    norms = np.linalg.norm(X, axis=1, keepdims=True)
    # Zero rows stay zero (similarity 0 to everything), as sklearn's cosine distance has it.
    unit = np.divide(X, norms, out=np.zeros_like(X), where=norms > 0)
    correct = 0
    for start in range(0, n, block):
        rows = np.arange(start, min(start + block, n))
        similarity = unit[rows] @ unit.T
        similarity[np.arange(len(rows)), rows] = -np.inf  # leave the image itself out
        nearest = np.argpartition(-similarity, k - 1, axis=1)[:, :k]
        votes = np.zeros((len(rows), len(classes)), dtype=np.int64)
        np.add.at(votes, (np.repeat(np.arange(len(rows)), k), codes[nearest].ravel()), 1)
        correct += int(np.sum(votes.argmax(axis=1) == codes[rows]))
    return correct / n

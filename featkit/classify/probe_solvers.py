"""The solvers of the linear probe: full-batch L-BFGS and mini-batch Adam, in torch.

Each solver minimises the objective :mod:`featkit.classify.linear_objective` defines, on
features centred by their weighted mean (see :func:`centred_problem`), and returns the
solution in scikit-learn's parametrisation: ``(coef, intercept, n_iter, final objective)``.

- :func:`fit_lbfgs`: the features on the device once, scipy's L-BFGS-B on the host with
  scikit-learn's settings, torch's loss and gradient on the device;
- :func:`fit_lbfgs_in_row_space`: the same problem over the span of the training rows
  (:mod:`featkit.classify.row_space`), for features of far more dimensions than rows;
- :func:`fit_sgd`: seeded mini-batches of an in-memory array moved to the device one at a
  time, Adam with a cosine-decayed learning rate;
- :func:`fit_sgd_store`: the same on a :class:`~featkit.store.ShardStore` larger than
  memory, one shard in host memory at a time.

:class:`~featkit.classify.probe.LinearProbe` validates the parameters, chooses the solver
and keeps its result.
"""

from __future__ import annotations

import math
import sys
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
from sklearn.exceptions import ConvergenceWarning
from threadpoolctl import threadpool_limits

from featkit.classify.linear_objective import (
    export_coefficients,
    loss_and_gradient,
    row_loss,
)
from featkit.classify.row_space import (
    RowSpace,
    fingerprint,
    fit_row_space,
    from_transformed,
    to_transformed,
)
from featkit.store import ShardStore

__all__ = [
    "SolverSettings",
    "as_tensor",
    "centred_problem",
    "fit_lbfgs",
    "fit_lbfgs_in_row_space",
    "fit_sgd",
    "fit_sgd_store",
]

# Rows whose exact objective is evaluated at a time after sgd: bounds the device memory of
# a (chunk x d) slice and its (chunk x n_classes) logits, as the probe's PREDICT_CHUNK does.
OBJECTIVE_CHUNK = 16384

#: A solver's result: coef_, intercept_, iterations (L-BFGS) or epochs (sgd), objective.
Solution = tuple[np.ndarray, np.ndarray, int, float]
#: A mini-batch or chunk: features, label indices, and the rows' weights in the mean loss.
Batch = tuple[Any, Any, Any]


@dataclass(frozen=True)
class SolverSettings:
    """The hyperparameters of :class:`~featkit.classify.probe.LinearProbe` a solver reads.

    Validated by the estimator; see its docstring for their meaning.
    """

    loss: str
    C: float
    fit_intercept: bool
    tol: float
    max_iter: int
    epochs: int
    batch_size: int
    learning_rate: float


def as_tensor(X: np.ndarray) -> Any:
    """A torch view of ``X`` without a copy, also of read-only (memory-mapped) arrays."""
    import torch

    with warnings.catch_warnings():
        # torch warns that it cannot protect read-only memory; the tensor is never written
        warnings.filterwarnings("ignore", message="The given NumPy array is not writable")
        return torch.from_numpy(X)


def centred_problem(
    X: Any, sw: np.ndarray, n_classes: int, device: Any, settings: SolverSettings
) -> tuple[int, Any, Any, float]:
    """Logit count, normalised weights, feature mean and l2 strength of the problem."""
    import torch

    k = 1 if n_classes == 2 else n_classes
    total = float(sw.sum(dtype=np.float64))
    w = torch.from_numpy(sw / total).to(X.device)
    # Centring the features is a reparametrisation, not a change of problem: the
    # unpenalised intercept absorbs the mean (b = c - W mu). It decouples the bias from
    # the weights, which L-BFGS and Adam converge much faster on when the features have
    # a large common offset (CNN activations are non-negative). Any mu gives the same
    # optimum, so its rounding does not matter: export uses the same mu.
    mu = X.T @ w if settings.fit_intercept else torch.zeros_like(X[0])
    # scikit-learn's l2_reg_strength: the penalty of the mean-scaled objective
    return k, w.to(device), mu.to(device), 1.0 / (float(settings.C) * total)


# --------------------------------------------------------------------- L-BFGS


def fit_lbfgs(
    X: np.ndarray,
    y_idx: np.ndarray,
    sw: np.ndarray,
    n_classes: int,
    device: Any,
    settings: SolverSettings,
    previous: tuple[np.ndarray, np.ndarray] | None = None,
    name: str = "LinearProbe",
) -> Solution:
    """Full-batch L-BFGS-B (scipy, scikit-learn's settings) on torch's loss and gradient.

    ``previous`` is a former ``(coef_, intercept_)`` to start from (warm start), used when
    its shape fits; ``name`` prefixes the ``ConvergenceWarning``.
    """
    import torch
    from scipy.optimize import minimize

    Xt = as_tensor(X).to(device)  # the one copy to the device (none on CPU)
    yt = torch.from_numpy(y_idx).to(device)
    k, w, mu, lam = centred_problem(Xt, sw, n_classes, device, settings)
    d = X.shape[1]
    fit_intercept = settings.fit_intercept

    def split(theta: np.ndarray) -> tuple[Any, Any]:
        t = torch.from_numpy(theta).to(device=device, dtype=Xt.dtype)
        c = t[k * d :] if fit_intercept else torch.zeros_like(t[:k])
        return t[: k * d].view(k, d), c

    def loss_grad(theta: np.ndarray) -> tuple[float, np.ndarray]:
        W, c = split(theta)
        loss, gW, gc = loss_and_gradient(Xt, yt, w, W, c, mu, lam, settings.loss)
        g = torch.cat([gW.ravel(), gc]) if fit_intercept else gW.ravel()
        return loss, g.cpu().numpy().astype(np.float64)

    # scikit-learn's optimiser and settings (sklearn.linear_model._logistic): scipy's
    # L-BFGS-B in float64 on the host, on a vector the size of coef_ (12,810 numbers
    # for 1,280 x 10); the loss and gradient, all the work, run in torch on the device.
    # (torch.optim.LBFGS was slower on CPU: its two-loop recursion runs ~20 tiny
    # multi-threaded BLAS calls per iteration, 12 ms each on a busy 2-core machine,
    # which took half of the fit time; it also costs 1-4 s of torch imports.)
    theta0 = _warm_theta(k, d, mu, fit_intercept, previous)
    # One BLAS thread for scipy: its L-BFGS-B works on vectors the size of coef_,
    # where threads only cost (10x slower fits measured on 1,078 x 1,764 digits HOG
    # with 2 threads on a busy 2-core machine). torch's GEMMs use their own threads.
    with threadpool_limits(limits=1, user_api="blas"):
        result = minimize(
            loss_grad,
            theta0,
            method="L-BFGS-B",
            jac=True,
            options={
                "maxiter": settings.max_iter,
                "maxls": 50,
                "gtol": float(settings.tol),
                "ftol": 64 * np.finfo(float).eps,
            },
        )
    if result.status != 0:
        warnings.warn(
            f"{name}: L-BFGS did not converge after {result.nit} "
            f"iterations ({result.message}); increase max_iter or scale the features",
            ConvergenceWarning,
            stacklevel=_first_caller_outside_featkit_classify(),
        )
    W, c = split(result.x)
    W_np, b_np = export_coefficients(W, c, mu, k, settings.loss)
    return W_np, b_np, min(int(result.nit), settings.max_iter), float(result.fun)


def fit_lbfgs_in_row_space(
    X: np.ndarray,
    y_idx: np.ndarray,
    sw: np.ndarray,
    n_classes: int,
    device: Any,
    settings: SolverSettings,
    previous: tuple[np.ndarray, np.ndarray] | None = None,
    name: str = "LinearProbe",
    space: RowSpace | None = None,
    standardize: bool = False,
) -> tuple[Solution, RowSpace | None]:
    """:func:`fit_lbfgs`'s problem solved over the span of the rows of ``X`` (standardised
    by their weighted mean and deviation first, when ``standardize``): the same minimiser,
    with L-BFGS on n x r coordinates instead of n x d features. The solution is returned
    over the features as given.

    ``space`` is a former fit's span, reused when it was computed from the same rows,
    weights and settings (a warm-started path of C values computes it once). Returns the
    solution and the span (None when the transformed rows are all zero).
    """
    weights = sw.astype(np.float64) / sw.sum(dtype=np.float64)
    centre = settings.fit_intercept
    key = fingerprint(X, weights, (centre, standardize))
    if space is None or space.fingerprint != key:
        space = fit_row_space(X, weights, device, centre=centre, standardize=standardize, key=key)
    k, d = (1 if n_classes == 2 else n_classes), X.shape[1]
    if space is None:  # no direction to weigh: the intercepts alone (zeros without them)
        nothing = np.zeros((len(X), 1), dtype=X.dtype)
        _, b, n_iter, loss = fit_lbfgs(nothing, y_idx, sw, n_classes, device, settings)
        return (np.zeros((k, d), dtype=X.dtype), b, n_iter, loss), None
    previous_t = to_transformed(previous, space.shift, space.scale)
    previous_z = None
    if previous_t is not None:  # the same logits over the coordinates of the rows
        previous_z = (space.to_coords(X, previous_t[0], device), previous_t[1])
    W_z, b_z, n_iter, loss = fit_lbfgs(
        space.coords, y_idx, sw, n_classes, device, settings, previous_z, name
    )
    W, b = from_transformed(
        space.to_features(X, W_z, device), b_z, space.shift, space.scale, settings.loss
    )
    return (W, b, n_iter, loss), space


def _first_caller_outside_featkit_classify() -> int:
    """The ``stacklevel`` of the first frame outside ``featkit.classify``, counted from
    the caller: a warning then names the user's line, whichever path led to the solver."""
    frame, level = sys._getframe(1), 1
    while frame.f_back is not None and frame.f_globals.get("__name__", "").startswith(
        "featkit.classify"
    ):
        frame, level = frame.f_back, level + 1
    return level


def _warm_theta(
    k: int,
    d: int,
    mu: Any,
    fit_intercept: bool,
    previous: tuple[np.ndarray, np.ndarray] | None,
) -> np.ndarray:
    """The starting point: zeros, or ``previous`` when it has the problem's shape."""
    size = k * d + (k if fit_intercept else 0)
    if previous is None or previous[0].shape != (k, d):
        return np.zeros(size)
    coef, intercept = previous
    W = np.asarray(coef, dtype=np.float64)
    parts = [W.ravel()]
    if fit_intercept:  # back to the centred parametrisation: c = b + W mu
        mu_np = mu.detach().cpu().numpy().astype(np.float64)
        parts.append(np.asarray(intercept, dtype=np.float64) + W @ mu_np)
    return np.concatenate(parts)


# --------------------------------------------------------------------- mini-batch Adam


def fit_sgd(
    X: np.ndarray,
    y_idx: np.ndarray,
    sw: np.ndarray,
    n_classes: int,
    device: Any,
    settings: SolverSettings,
    seed: int,
) -> Solution:
    """Adam on seeded mini-batches of ``X``, which stays in host memory."""
    import torch

    # The features stay in host memory; each mini-batch is gathered and moved.
    Xh = as_tensor(X)
    yh = torch.from_numpy(y_idx)
    k, w, mu, lam = centred_problem(Xh, sw, n_classes, device, settings)
    wh = w.cpu()
    n = X.shape[0]
    batch = min(settings.batch_size, n)

    def epoch(generator: Any) -> Iterator[Batch]:
        order = torch.randperm(n, generator=generator)
        for start in range(0, n, batch):
            idx = order[start : start + batch]
            # w sums to 1 over all rows: scaled by n / rows it estimates the mean loss
            yield Xh[idx], yh[idx], wh[idx] * (n / len(idx))

    def chunks() -> Iterator[Batch]:
        for start in range(0, n, OBJECTIVE_CHUNK):
            sl = slice(start, start + OBJECTIVE_CHUNK)
            yield Xh[sl], yh[sl], wh[sl]

    return _run_sgd(epoch, chunks, math.ceil(n / batch), k, mu, lam, device, settings, seed)


def fit_sgd_store(
    store: ShardStore,
    y_idx: np.ndarray,
    n_classes: int,
    dtype: Any,
    device: Any,
    settings: SolverSettings,
    seed: int,
) -> Solution:
    """Adam on the rows of ``store`` (label indices ``y_idx``), equally weighted.

    Each epoch visits the shards in a random order and each shard's rows in a random
    order, one shard in host memory at a time; the feature mean comes from one streamed
    pass first. ``dtype`` is the numpy dtype of the computation.
    """
    import torch

    n, d = len(store), store.dim
    k = 1 if n_classes == 2 else n_classes
    mean = np.zeros(d)
    if settings.fit_intercept:  # centred features, as in centred_problem
        for X, _ in store.batches():
            mean += X.sum(axis=0, dtype=np.float64)
        mean /= n
    mu = torch.from_numpy(mean.astype(dtype)).to(device)
    lam = 1.0 / (float(settings.C) * n)
    starts = np.cumsum([0, *store.shard_rows])
    y_all = torch.from_numpy(y_idx)
    batch = settings.batch_size

    def shard(j: int) -> tuple[Any, Any]:
        X, _ = store.shard(j)
        return as_tensor(np.asarray(X, dtype=dtype)), y_all[starts[j] : starts[j + 1]]

    def epoch(generator: Any) -> Iterator[Batch]:
        for j in torch.randperm(store.n_shards, generator=generator).tolist():
            Xs, ys = shard(j)
            order = torch.randperm(len(Xs), generator=generator)
            for start in range(0, len(Xs), batch):
                idx = order[start : start + batch]
                yield Xs[idx], ys[idx], torch.full((len(idx),), 1.0 / len(idx), dtype=Xs.dtype)

    def chunks() -> Iterator[Batch]:
        for j in range(store.n_shards):
            Xs, ys = shard(j)
            yield Xs, ys, torch.full((len(Xs),), 1.0 / n, dtype=Xs.dtype)

    steps = sum(math.ceil(rows / batch) for rows in store.shard_rows)
    return _run_sgd(epoch, chunks, steps, k, mu, lam, device, settings, seed)


def _run_sgd(
    epoch: Callable[[Any], Iterator[Batch]],
    chunks: Callable[[], Iterator[Batch]],
    steps_per_epoch: int,
    k: int,
    mu: Any,
    lam: float,
    device: Any,
    settings: SolverSettings,
    seed: int,
) -> Solution:
    """Adam on mini-batches ``(x, y, w)`` from ``epoch(generator)``, ``settings.epochs``
    times, then the exact objective over ``chunks()``; ``w`` of a batch sums to one
    (its rows' share of the mean loss, rescaled), of all chunks together to one."""
    import torch

    fit_intercept, loss_name = settings.fit_intercept, settings.loss
    learning_rate, epochs = settings.learning_rate, settings.epochs
    W = torch.zeros((k, mu.shape[0]), dtype=mu.dtype, device=device, requires_grad=True)
    c = torch.zeros(k, dtype=mu.dtype, device=device, requires_grad=fit_intercept)
    params = [W, c] if fit_intercept else [W]
    # Plain Adam with the l2 term in the loss (not AdamW's decoupled decay): the
    # stochastic gradients are then unbiased for scikit-learn's objective itself.
    optimizer = torch.optim.Adam(params, lr=learning_rate)
    total_steps = steps_per_epoch * epochs
    generator = torch.Generator().manual_seed(seed)
    pin = device.type == "cuda"
    step = 0
    for _ in range(epochs):
        for xb, yb, wb in epoch(generator):
            if pin:
                xb, yb, wb = xb.pin_memory(), yb.pin_memory(), wb.pin_memory()
            xb = xb.to(device, non_blocking=True)
            yb = yb.to(device, non_blocking=True)
            wb = wb.to(device, non_blocking=True)
            for group in optimizer.param_groups:  # cosine decay to zero
                cosine = 0.5 * (1 + math.cos(math.pi * step / total_steps))
                group["lr"] = learning_rate * cosine
            optimizer.zero_grad(set_to_none=False)
            logits = torch.addmm(c - W @ mu, xb, W.T)
            loss = torch.dot(row_loss(logits, yb, loss_name), wb) + 0.5 * lam * (W * W).sum()
            loss.backward()
            optimizer.step()
            step += 1
    with torch.no_grad():  # the exact final objective, in chunks
        W, c = W.detach(), c.detach()
        objective = 0.5 * lam * float((W.double() ** 2).sum())
        for xb, yb, wb in chunks():
            logits = torch.addmm(c - W @ mu, xb.to(device), W.T)
            ce = row_loss(logits, yb.to(device), loss_name)
            objective += float(torch.dot(ce.double(), wb.to(device).double()))
    W_np, b_np = export_coefficients(W, c, mu, k, loss_name)
    return W_np, b_np, epochs, objective

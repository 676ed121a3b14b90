"""A torch linear probe: scikit-learn's multinomial logistic regression, on CPU or GPU.

``LinearProbe(C=C)`` minimises the objective of
``sklearn.linear_model.LogisticRegression(C=C)`` (l2 penalty, lbfgs)::

    sum_i CE(x_i W^T + b, y_i) + 1 / (2 C) * ||W||^2        (intercept b not penalised)

scikit-learn (checked in 1.9: ``sklearn.linear_model._logistic``) minimises this
objective divided by the total sample weight (``LinearModelLoss``: the mean loss plus
``0.5 * l2_reg_strength * ||W||^2`` with ``l2_reg_strength = 1 / (C * n_samples)``); the
minimiser, and so ``coef_``, ``intercept_`` and every prediction, is the same. Two
classes use one logit (``coef_`` of shape ``(1, d)``, binomial loss) and more classes
the softmax (``coef_`` of shape ``(n_classes, d)``), as scikit-learn does; the
intercepts of the softmax sum to zero, as scikit-learn's do, so the solutions are
directly comparable. The problem is strictly convex, so any solver that converges finds
the same coefficients: ``C`` can be swept with the same grid as for ``LogisticRegression``
or ``LinearSVC``.

``loss="squared_hinge"`` is a linear SVM instead: one-vs-rest L2-loss SVMs, the problem of
``sklearn.svm.LinearSVC(C=C)`` (liblinear's default ``squared_hinge`` loss)::

    sum_i sum_k max(0, 1 - Y_ik (x_i w_k + b_k))^2 + 1 / (2 C) * ||W||^2

with Y_ik = +1 for the true class and -1 otherwise (one column for two classes). The
intercept is not penalised (liblinear penalises it, through ``intercept_scaling``); with
``fit_intercept=False`` the two problems are identical. No probabilities for this loss.

Solvers: ``"lbfgs"`` moves the features to the device once and runs scikit-learn's own
optimiser (scipy's L-BFGS-B, same settings) on torch's full-batch loss and gradient, so
the work runs in float32 on the CPU or GPU; ``"sgd"`` streams seeded mini-batches from
host memory through Adam with a cosine-decayed learning rate and the same l2 term, for
sets that do not fit on the device. Both live in :mod:`featkit.classify.probe_solvers`.
With far more features than rows (``gram="auto"``: fewer rows than features), lbfgs solves
the same problem over the span of the training rows (:mod:`featkit.classify.row_space`):
one n x n Gram matrix instead of k x d weights at every iteration.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.utils import check_random_state
from sklearn.utils.metaestimators import available_if
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import _check_sample_weight, check_is_fitted, validate_data

from featkit.classify.probe_solvers import (
    SolverSettings,
    as_tensor,
    fit_lbfgs,
    fit_lbfgs_in_row_space,
    fit_sgd,
    fit_sgd_store,
)
from featkit.classify.row_space import from_transformed, to_transformed, weighted_moments
from featkit.devices import resolve_torch_device
from featkit.exceptions import InvalidParameterError
from featkit.store import ShardStore
from featkit.validation import check_bool, check_float, check_int

__all__ = ["LinearProbe"]

SOLVERS = ("lbfgs", "sgd")
LOSSES = ("log_loss", "squared_hinge")
DTYPES = ("float32", "float64")
# Rows scored at a time by predict / decision_function: bounds the device memory of a
# (chunk x d) slice and its (chunk x n_classes) logits; fewer rows for wide features, at
# most PREDICT_BYTES of them (16,384 rows of 327,680-d Fisher vectors would be 21 GB).
PREDICT_CHUNK = 16384
PREDICT_BYTES = 2**28
GRAM = ("auto", True, False)
# Below this many multiply-adds per GEMM one CPU thread is faster (see _torch_threads).
SMALL_WORK = 2**24


class LinearProbe(ClassifierMixin, BaseEstimator):
    """Multinomial logistic regression (l2) in torch, with scikit-learn's classifier API.

    Parameters
    ----------
    C : float, default=1.0
        Inverse regularisation strength, as in ``LogisticRegression``: the penalty is
        ``||W||^2 / (2 C)`` against the summed cross-entropy.
    loss : {"log_loss", "squared_hinge"}, default="log_loss"
        Softmax regression (``LogisticRegression``'s problem) or one-vs-rest L2-loss linear
        SVMs (``LinearSVC``'s problem, intercept unpenalised).
    solver : {"lbfgs", "sgd"}, default="lbfgs"
        ``lbfgs``: full batch on the device, scipy's L-BFGS-B as in scikit-learn;
        ``sgd``: mini-batches streamed from host memory (Adam, cosine learning rate).
    tol : float, default=1e-4
        lbfgs stops when the largest absolute (projected) gradient entry of the
        mean-scaled objective falls below ``tol``, scikit-learn's rule (taken here in the
        centred parametrisation, see the code).
    max_iter : int, default=1000
        Largest number of L-BFGS iterations; a ``ConvergenceWarning`` says when it was hit.
    epochs : int, default=30
        Passes over the data (sgd).
    batch_size : int, default=1024
        Rows per mini-batch (sgd).
    learning_rate : float, default=1e-2
        Peak Adam learning rate (sgd), decayed to zero by a cosine schedule. sgd is for
        large sets: with few batches per epoch (a few thousand rows) it stops short of the
        optimum unless ``epochs`` grows; use lbfgs there.
    fit_intercept : bool, default=True
        Learn an unpenalised bias per class.
    device : str, default="auto"
        ``"auto"`` (CUDA when available, else CPU), ``"cpu"``, ``"cuda"`` or ``"cuda:N"``.
    dtype : {"float32", "float64"}, default="float32"
        Precision of the computation; float64 to match scikit-learn to more digits.
    n_jobs : int or None, default=None
        CPU threads torch uses during fit and predict (restored afterwards); -1 uses every
        core; None: one thread for small problems (under 2**24 multiply-adds per pass),
        else torch's setting.
    random_state : int, RandomState or None, default=None
        Seeds the mini-batch order (sgd); lbfgs is deterministic.
    warm_start : bool, default=False
        lbfgs starts from the previous fit's solution (same classes and features), as
        ``LogisticRegression(warm_start=True)``: a path of C values costs a fraction of
        cold fits.
    standardize : bool, default=False
        Scale the features to zero mean and unit variance first (scikit-learn's
        ``StandardScaler`` statistics, weighted by ``sample_weight``), folded into
        ``coef_`` and ``intercept_``, so ``predict`` takes the features as they are: the
        problem of ``make_pipeline(StandardScaler(), LinearProbe())`` without the scaled
        copies of the training and test sets (each as large as the set itself: 4 GB for
        3,060 Fisher vectors of the published recipe), and none at all over the span of
        the rows (``gram``).
    gram : {"auto", True, False}, default="auto"
        lbfgs over the span of the training rows: their n x n Gram matrix is formed in one
        pass and L-BFGS runs on n x n coordinates, the same minimiser as over the
        features (the representer theorem), found with far less work and memory when
        features outnumber rows (327,680-d Fisher vectors of a few thousand images).
        ``"auto"``: when there are fewer rows than features. With ``warm_start`` the span
        is kept and reused while the rows are the same.

    Attributes
    ----------
    classes_ : ndarray of shape (n_classes,)
    coef_ : ndarray of shape (1, n_features) for two classes, else (n_classes, n_features)
    intercept_ : ndarray of shape (1,) or (n_classes,)
    n_features_in_ : int
    n_iter_ : ndarray of shape (1,)
        L-BFGS iterations (lbfgs) or epochs (sgd), as in ``LogisticRegression.n_iter_``.
    loss_ : float
        Final mean-scaled objective (scikit-learn's scaling: the objective above / n).
    device_ : str
        The device the model was fitted on.
    """

    def __init__(
        self,
        C: float = 1.0,
        loss: str = "log_loss",
        solver: str = "lbfgs",
        tol: float = 1e-4,
        max_iter: int = 1000,
        epochs: int = 30,
        batch_size: int = 1024,
        learning_rate: float = 1e-2,
        fit_intercept: bool = True,
        device: str = "auto",
        dtype: str = "float32",
        n_jobs: int | None = None,
        random_state: Any = None,
        warm_start: bool = False,
        standardize: bool = False,
        gram: Any = "auto",
    ) -> None:
        self.C = C
        self.loss = loss
        self.solver = solver
        self.tol = tol
        self.max_iter = max_iter
        self.epochs = epochs
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.fit_intercept = fit_intercept
        self.device = device
        self.dtype = dtype
        self.n_jobs = n_jobs
        self.random_state = random_state
        self.warm_start = warm_start
        self.standardize = standardize
        self.gram = gram

    # ----------------------------------------------------------------- validation

    def _check_params(self) -> None:
        name = type(self).__name__
        check_float(name, "C", self.C, low=0.0, strict=True)
        if self.loss not in LOSSES:
            raise InvalidParameterError(f"{name}: loss must be one of {LOSSES}, got {self.loss!r}")
        if self.solver not in SOLVERS:
            raise InvalidParameterError(
                f"{name}: solver must be one of {SOLVERS}, got {self.solver!r}"
            )
        check_float(name, "tol", self.tol, low=0.0)
        check_int(name, "max_iter", self.max_iter, low=1)
        check_int(name, "epochs", self.epochs, low=1)
        check_int(name, "batch_size", self.batch_size, low=1)
        check_float(name, "learning_rate", self.learning_rate, low=0.0, strict=True)
        check_bool(name, "fit_intercept", self.fit_intercept)
        check_bool(name, "standardize", self.standardize)
        if self.dtype not in DTYPES:
            raise InvalidParameterError(
                f"{name}: dtype must be one of {DTYPES}, got {self.dtype!r}"
            )
        if self.n_jobs is not None and self.n_jobs != -1:
            check_int(name, "n_jobs", self.n_jobs, low=1)
        if not any(self.gram is g for g in GRAM):
            raise InvalidParameterError(
                f"{name}: gram must be 'auto', True or False, got {self.gram!r}"
            )
        if self.gram is True and self.solver != "lbfgs":
            raise InvalidParameterError(
                f"{name}: gram=True solves with lbfgs; got solver={self.solver!r}"
            )
        resolve_torch_device(self.device, "LinearProbe")

    def _check_X(self, X: Any, y: Any = "no_validation", *, reset: bool) -> Any:
        """X (and y) as C-contiguous arrays of the working dtype; ValueErrors become ours."""
        dtype = np.float32 if self.dtype == "float32" else np.float64
        try:
            if isinstance(y, str) and y == "no_validation":
                return validate_data(self, X, reset=reset, dtype=dtype, order="C")
            X, y = validate_data(self, X, y, reset=reset, dtype=dtype, order="C")
            check_classification_targets(y)
        except InvalidParameterError:
            raise
        except ValueError as exc:  # NaN / inf, shapes, label types: same text, our type
            raise InvalidParameterError(str(exc)) from None
        return X, y

    # ----------------------------------------------------------------- fitting

    def fit(self, X: Any, y: Any, sample_weight: Any = None) -> LinearProbe:
        """Fit on features ``X`` (n_samples, n_features) and labels ``y``."""
        import torch

        self._check_params()
        X, y = self._check_X(X, y, reset=True)
        self.classes_, y_idx = np.unique(y, return_inverse=True)
        n_classes = len(self.classes_)
        if n_classes < 2:
            raise InvalidParameterError(
                f"{type(self).__name__} needs samples of at least 2 classes, "
                f"the data contains only one class: {self.classes_[0]!r}"
            )
        try:
            sw = _check_sample_weight(sample_weight, X, dtype=X.dtype)
        except ValueError as exc:
            raise InvalidParameterError(str(exc)) from None
        if sample_weight is not None and (np.any(sw < 0) or sw.sum() <= 0):
            raise InvalidParameterError("sample_weight must be >= 0 with a positive sum")

        device = torch.device(resolve_torch_device(self.device, "LinearProbe"))
        seed = int(check_random_state(self.random_state).randint(np.iinfo(np.int32).max))
        rows = X.shape[0] if self.solver == "lbfgs" else min(X.shape[0], self.batch_size)
        work = rows * X.shape[1] * (1 if n_classes == 2 else n_classes)
        if self._in_row_space(X):
            work = X.shape[0] * X.shape[0] * X.shape[1]  # forming the Gram matrix
        with _torch_threads(self.n_jobs, work, device):
            if self._in_row_space(X):
                W, b, n_iter, loss = self._fit_in_row_space(X, y_idx, sw, n_classes, device)
            else:
                W, b, n_iter, loss = self._fit_on_features(X, y_idx, sw, n_classes, device, seed)
        return self._set_solution(W, b, n_iter, loss, device)

    def _fit_in_row_space(
        self, X: np.ndarray, y_idx: np.ndarray, sw: np.ndarray, n_classes: int, device: Any
    ) -> tuple[np.ndarray, np.ndarray, int, float]:
        """lbfgs over the span of the rows (``gram``), standardized there if asked."""
        space = getattr(self, "_row_space", None) if self.warm_start else None
        solution, space = fit_lbfgs_in_row_space(
            X,
            y_idx,
            sw,
            n_classes,
            device,
            self._settings(),
            self._previous_solution(),
            type(self).__name__,
            space,
            standardize=self.standardize,
        )
        # kept for the next warm-started fit only: n x n numbers
        self._row_space = space if self.warm_start else None
        return solution

    def _fit_on_features(
        self,
        X: np.ndarray,
        y_idx: np.ndarray,
        sw: np.ndarray,
        n_classes: int,
        device: Any,
        seed: int,
    ) -> tuple[np.ndarray, np.ndarray, int, float]:
        """lbfgs or sgd over the k x d weights, on a standardized copy if asked."""
        settings, previous = self._settings(), self._previous_solution()
        if self.standardize:
            shift, scale = weighted_moments(X, sw / sw.sum(dtype=np.float64), True, True)
            X = _standardized(X, shift, scale)
            previous = to_transformed(previous, shift, scale)
        if self.solver == "lbfgs":
            name = type(self).__name__
            W, b, n_iter, loss = fit_lbfgs(
                X, y_idx, sw, n_classes, device, settings, previous, name
            )
        else:
            W, b, n_iter, loss = fit_sgd(X, y_idx, sw, n_classes, device, settings, seed)
        if self.standardize:
            W, b = from_transformed(W, b, shift, scale, settings.loss)
        return W, b, n_iter, loss

    def _in_row_space(self, X: np.ndarray) -> bool:
        """Whether lbfgs solves over the span of the rows (``gram``)."""
        if self.solver != "lbfgs" or self.gram is False:
            return False
        return self.gram is True or X.shape[0] < X.shape[1]

    def _set_solution(
        self, W: np.ndarray, b: np.ndarray, n_iter: int, loss: float, device: Any
    ) -> LinearProbe:
        """Keep a solver's result as the fitted attributes."""
        self.coef_ = W
        self.intercept_ = b
        self.n_iter_ = np.array([n_iter], dtype=np.int32)
        self.loss_ = loss
        self.device_ = str(device)
        return self

    def _settings(self) -> SolverSettings:
        """The hyperparameters the solvers read (validated by _check_params)."""
        return SolverSettings(
            loss=self.loss,
            C=self.C,
            fit_intercept=self.fit_intercept,
            tol=self.tol,
            max_iter=self.max_iter,
            epochs=self.epochs,
            batch_size=self.batch_size,
            learning_rate=self.learning_rate,
        )

    def _previous_solution(self) -> tuple[np.ndarray, np.ndarray] | None:
        """The former fit's ``(coef_, intercept_)`` for lbfgs to start from (warm_start)."""
        previous = getattr(self, "coef_", None)
        if not self.warm_start or previous is None:
            return None
        return previous, self.intercept_

    def fit_store(self, store: ShardStore) -> LinearProbe:
        """Fit on the labelled rows of a :class:`~featkit.store.ShardStore` larger than
        memory, with the ``"sgd"`` solver: each epoch visits the shards in a random order
        and each shard's rows in a random order, one shard in host memory at a time
        (equal sample weights; the feature mean comes from one streamed pass first)."""
        import torch

        self._check_params()
        name = type(self).__name__
        if self.standardize:
            raise InvalidParameterError(
                f"{name}.fit_store does not standardize: scale the store's features first, "
                "or use standardize=False"
            )
        if self.solver != "sgd":
            raise InvalidParameterError(
                f"{name}.fit_store streams mini-batches from the shards: use solver='sgd' "
                "(lbfgs needs every row at each iteration)"
            )
        labels = store.labels
        if len(labels) == 0 or (labels < 0).any():
            raise InvalidParameterError(
                f"{name}.fit_store needs labelled rows; the store has {len(labels)} rows, "
                f"{int((labels < 0).sum())} of them unlabelled (-1)"
            )
        self.classes_, y_idx = np.unique(labels, return_inverse=True)
        if len(self.classes_) < 2:
            raise InvalidParameterError(
                f"{name} needs samples of at least 2 classes, the store holds only one: "
                f"{self.classes_[0]!r}"
            )
        n, d = len(store), store.dim
        dtype = np.float32 if self.dtype == "float32" else np.float64
        device = torch.device(resolve_torch_device(self.device, "LinearProbe"))
        seed = int(check_random_state(self.random_state).randint(np.iinfo(np.int32).max))
        k = 1 if len(self.classes_) == 2 else len(self.classes_)
        settings = self._settings()
        with _torch_threads(self.n_jobs, min(n, self.batch_size) * d * k, device):
            W, b, n_iter, loss = fit_sgd_store(
                store, y_idx, len(self.classes_), dtype, device, settings, seed
            )
        self.n_features_in_ = d
        return self._set_solution(W, b, n_iter, loss, device)

    # ----------------------------------------------------------------- prediction

    def decision_function(self, X: Any) -> np.ndarray:
        """Logits ``X @ coef_.T + intercept_``: (n_samples,) for two classes, else 2-D."""
        import torch

        check_is_fitted(self, "coef_")
        X = self._check_X(X, reset=False)
        device = torch.device(resolve_torch_device(self.device, "LinearProbe"))
        out = np.empty((len(X), self.coef_.shape[0]), dtype=X.dtype)
        chunk = max(1, min(PREDICT_CHUNK, PREDICT_BYTES // (X.dtype.itemsize * X.shape[1])))
        work = min(len(X), chunk) * X.shape[1] * self.coef_.shape[0]
        with _torch_threads(self.n_jobs, work, device), torch.inference_mode():
            W = torch.from_numpy(self.coef_.astype(X.dtype)).to(device)
            b = torch.from_numpy(self.intercept_.astype(X.dtype)).to(device)
            for start in range(0, len(X), chunk):
                xb = as_tensor(X[start : start + chunk]).to(device)
                out[start : start + len(xb)] = torch.addmm(b, xb, W.T).cpu().numpy()
        return out[:, 0] if out.shape[1] == 1 else out

    @available_if(lambda self: self.loss == "log_loss")
    def predict_proba(self, X: Any) -> np.ndarray:
        """Class probabilities (softmax of the logits; columns in ``classes_`` order)."""
        scores = self.decision_function(X).astype(np.float64)
        if scores.ndim == 1:
            p = 1.0 / (1.0 + np.exp(-scores))
            return np.column_stack([1.0 - p, p])
        scores -= scores.max(axis=1, keepdims=True)
        e = np.exp(scores)
        return e / e.sum(axis=1, keepdims=True)

    @available_if(lambda self: self.loss == "log_loss")
    def predict_log_proba(self, X: Any) -> np.ndarray:
        """Logarithm of ``predict_proba``."""
        return np.log(self.predict_proba(X))

    def predict(self, X: Any) -> np.ndarray:
        """The class with the largest logit."""
        scores = self.decision_function(X)
        index = (scores > 0).astype(int) if scores.ndim == 1 else np.argmax(scores, axis=1)
        return self.classes_[index]


# --------------------------------------------------------------------- helpers


def _standardized(X: np.ndarray, shift: np.ndarray, scale: np.ndarray) -> np.ndarray:
    """``(X - shift) / scale`` in X's dtype, a block of rows at a time (no float64 copy)."""
    out = np.empty_like(X)
    step = max(1, PREDICT_BYTES // max(1, X[:1].nbytes))
    for start in range(0, len(X), step):
        np.subtract(X[start : start + step], shift, out=out[start : start + step])
        out[start : start + step] /= scale
    return out


@contextmanager
def _torch_threads(n_jobs: int | None, work: float, device: Any) -> Iterator[None]:
    """Run the block with the CPU threads torch should use, then restore the setting.

    ``n_jobs`` None picks: one thread when a GEMM of the problem is small (``work``,
    rows x features x logits, under 2**24 multiply-adds, about a millisecond on one core),
    else torch's current setting. Threads that wake for tiny kernels cost more than they
    give: fitting ``load_digits`` took 1-3 s with torch's two threads on a busy 2-core
    machine and 0.07 s with one.
    """
    import torch

    if n_jobs is None:
        n_jobs = 1 if device.type == "cpu" and work < SMALL_WORK else None
    if n_jobs is None:
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads((os.cpu_count() or 1) if n_jobs == -1 else n_jobs)
    try:
        yield
    finally:
        torch.set_num_threads(before)

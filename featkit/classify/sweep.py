"""Choose a regularisation strength by validation on the training set, then refit on all of it.

``CSweepClassifier(LinearSVC())`` searches ``C`` on a log grid, coarse (one value per
decade) then fine (half decades around the best), the way CLIP_benchmark and DINOv2 tune
their linear probes. The coarse pass runs from strong to weak regularisation and stops
after two decades without a gain; the grid grows by a decade when the best value lies on
its edge, so a preset's range never silently caps the choice. Estimators with
``warm_start`` (``LogisticRegression``, ``LinearProbe``) follow the path of values, each fit
starting from the previous solution. The test set is never looked at.
"""

from __future__ import annotations

import logging
import warnings
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin, MetaEstimatorMixin, clone
from sklearn.exceptions import ConvergenceWarning
from sklearn.metrics import check_scoring
from sklearn.model_selection import StratifiedKFold, StratifiedShuffleSplit
from sklearn.pipeline import Pipeline
from sklearn.utils import _safe_indexing
from sklearn.utils.metaestimators import available_if
from sklearn.utils.validation import check_is_fitted

from featkit.exceptions import InvalidParameterError
from featkit.validation import check_float, check_int

__all__ = ["CSweepClassifier"]

logger = logging.getLogger(__name__)

#: Decades a sweep may extend beyond its grid when the best value is on the edge.
MAX_EXTENSIONS = 3


class CSweepClassifier(MetaEstimatorMixin, ClassifierMixin, BaseEstimator):
    """A classifier whose ``C`` (or another log-scale parameter) is chosen on the training set.

    Parameters
    ----------
    estimator : classifier or Pipeline
        What to tune; in a Pipeline the parameter of the last step is tuned.
    param : str, default="C"
        The parameter's name (of the last step, for a Pipeline).
    low, high : float, default=1e-4, 1e4
        The coarse grid: every decade from ``low`` to ``high``.
    refine : bool, default=True
        Then try half a decade either side of the best coarse value.
    cv : int or None, default=None
        None: one stratified 80/20 validation split of the training set (fast; at least one
        image per class is held out); an int: stratified k-fold on the training set. With a
        single training image in a class there is nothing to validate on: the middle of
        the grid (the geometric mean of ``low`` and ``high``) is used, with a warning.
    scoring : str, default="accuracy"
        Any scikit-learn scorer name.
    max_samples : int or None, default=None
        Sweep on a stratified seeded subsample of at most this many training rows (the
        refit uses all of them): on 60,000 Fashion-MNIST images a linear SVM fit takes
        minutes, and the choice of C barely moves beyond a few thousand rows.
    random_state : int, default=0
        Seed of the validation split.

    Attributes
    ----------
    best_params_ : dict
        The chosen value, e.g. ``{"C": 0.01}``.
    cv_results_ : list of dict
        Every value tried with its mean validation score, in the order tried.
    best_estimator_ : estimator
        The estimator refitted on the whole training set with the chosen value.
    """

    def __init__(
        self,
        estimator: Any,
        param: str = "C",
        low: float = 1e-4,
        high: float = 1e4,
        refine: bool = True,
        cv: int | None = None,
        scoring: str = "accuracy",
        max_samples: int | None = None,
        random_state: int = 0,
    ) -> None:
        self.estimator = estimator
        self.param = param
        self.low = low
        self.high = high
        self.refine = refine
        self.cv = cv
        self.scoring = scoring
        self.max_samples = max_samples
        self.random_state = random_state

    def _param_path(self) -> str:
        if isinstance(self.estimator, Pipeline):
            return f"{self.estimator.steps[-1][0]}__{self.param}"
        return self.param

    def _splitter(self, y: np.ndarray) -> Any:
        """The validation scheme, or None when a class is too small to validate on."""
        counts = np.bincount(np.unique(y, return_inverse=True)[1])
        smallest = counts.min()
        if self.cv is None:
            if smallest < 2:
                return None
            # At least one validation image per class (few-shot training sets are tiny).
            test_size = max(0.2, len(counts) / len(y))
            return StratifiedShuffleSplit(1, test_size=test_size, random_state=self.random_state)
        check_int(type(self).__name__, "cv", self.cv, low=2)
        if smallest < self.cv:
            raise InvalidParameterError(
                f"cv={self.cv} folds need {self.cv} training images per class; the smallest "
                f"class has {smallest}"
            )
        return StratifiedKFold(self.cv, shuffle=True, random_state=self.random_state)

    def _sweep_rows(self, y: np.ndarray) -> np.ndarray | None:
        """A stratified seeded subsample of ``max_samples`` rows, or None for all rows."""
        if self.max_samples is None or len(y) <= self.max_samples:
            return None
        check_int(type(self).__name__, "max_samples", self.max_samples, low=2)
        n_classes = len(np.unique(y))
        size = max(self.max_samples, 2 * n_classes)
        picker = StratifiedShuffleSplit(1, train_size=size, random_state=self.random_state)
        rows, _ = next(picker.split(np.zeros(len(y)), y))
        return np.sort(rows)

    def _final_step(self) -> Any:
        return (
            self.estimator.steps[-1][1] if isinstance(self.estimator, Pipeline) else self.estimator
        )

    def _score(self, value: float) -> float:
        """Mean validation score of one value over the validation splits."""
        if value in self._scores:
            return self._scores[value]
        path = self._param_path()
        scores = []
        with warnings.catch_warnings():
            # Candidates far from the optimum may stop at max_iter; only the refit's
            # warnings are the user's business.
            warnings.simplefilter("ignore", ConvergenceWarning)
            for k, (X_train, y_train, X_val, y_val) in enumerate(self._folds):
                # Warm-startable estimators keep one model per split: each fit starts from
                # the solution for the previous value, as a regularisation path (glmnet).
                model = self._models.get(k) or clone(self.estimator)
                if self._warm:
                    self._models[k] = model
                model.set_params(**{path: value}).fit(X_train, y_train)
                scores.append(self._scorer(model, X_val, y_val))
        self._scores[value] = float(np.mean(scores))
        return self._scores[value]

    def _at(self, exponent: int) -> float:
        """Score of 10**exponent, or -inf when it was not tried."""
        for value, score in self._scores.items():
            if np.isclose(np.log10(value), exponent, rtol=0, atol=1e-9):
                return score
        return -np.inf

    def _best(self) -> float:
        # Highest score; ties go to the smallest value (the most regularised model).
        return max(sorted(self._scores), key=lambda v: self._scores[v])

    def fit(self, X: Any, y: Any) -> CSweepClassifier:
        """Sweep the parameter on (X, y), then refit the estimator on all of it."""
        name = type(self).__name__
        check_float(name, "low", self.low, low=0.0, strict=True)
        check_float(name, "high", self.high, low=self.low)
        y = np.asarray(y)
        splitter = self._splitter(y)
        if splitter is None:
            return self._fit_without_sweep(X, y)
        rows = self._sweep_rows(y)
        # All rows: no copy of X (60,000 x 1,280 is 300 MB).
        X_sweep, y_sweep = (X, y) if rows is None else (_safe_indexing(X, rows), y[rows])
        # Each fold's rows are gathered once, not again for every value tried.
        self._folds = [
            (_safe_indexing(X_sweep, tr), y_sweep[tr], _safe_indexing(X_sweep, va), y_sweep[va])
            for tr, va in splitter.split(X_sweep, y_sweep)
        ]
        self._scores: dict[float, float] = {}
        self._models: dict[int, Any] = {}
        self._warm = "warm_start" in self._final_step().get_params(deep=False)
        if self._warm:
            warm = self._param_path()[: -len(self.param)] + "warm_start"
            self._models = {
                k: clone(self.estimator).set_params(**{warm: True}) for k in range(len(self._folds))
            }
        self._scorer = check_scoring(self.estimator, scoring=self.scoring)
        lo, hi = int(np.floor(np.log10(self.low))), int(np.ceil(np.log10(self.high)))
        # Coarse pass, from strong to weak regularisation. Validation accuracy against C
        # rises then falls; two decades in a row below the best end the pass, which skips
        # the weakly regularised fits, the slowest by far (liblinear: 10x the iterations).
        # Ties do not count: strongly regularised models often predict alike over several
        # decades before the accuracy rises.
        stale = 0
        for e in range(lo, hi + 1):
            best_before = max(self._scores.values(), default=-np.inf)
            stale = stale + 1 if self._score(10.0**e) < best_before else 0
            if stale == 2:
                hi = e
                break
        for _ in range(MAX_EXTENSIONS):
            # Grow the grid past an edge only when the edge beats its neighbour (a tie
            # means a plateau, not an optimum beyond the edge).
            if self._at(lo) > self._at(lo + 1):
                lo -= 1
                self._score(10.0**lo)
            elif stale < 2 and self._at(hi) > self._at(hi - 1):
                hi += 1
                self._score(10.0**hi)
            else:
                break
        if self.refine:
            best = self._best()
            for q in (-0.5, 0.5):
                self._score(best * 10.0**q)
        chosen = self._best()
        self.best_params_ = {self.param: chosen}
        self.best_score_ = self._scores[chosen]
        self.cv_results_ = [{self.param: v, "score": s} for v, s in self._scores.items()]
        # The folds' rows and models go before the refit: with 327,680-d Fisher vectors
        # the folds alone are as large as the training set.
        del self._folds, self._models, self._scorer
        self.best_estimator_ = clone(self.estimator).set_params(**{self._param_path(): chosen})
        self.best_estimator_.fit(X, y)
        self._copy_fitted_attributes()
        return self

    def _fit_without_sweep(self, X: Any, y: np.ndarray) -> CSweepClassifier:
        # One image in a class leaves nothing to validate on: take the middle of the grid
        # (geometric), a value the preset's range deems reasonable.
        value = float(np.sqrt(self.low * self.high))
        logger.warning(
            "a class has a single training image: no %s sweep, %s=%.3g (the middle of the "
            "grid) is used",
            self.param,
            self.param,
            value,
        )
        self.best_params_ = {self.param: value}
        self.best_score_ = float("nan")
        self.cv_results_ = []
        self.best_estimator_ = clone(self.estimator).set_params(**{self._param_path(): value})
        self.best_estimator_.fit(X, y)
        self._copy_fitted_attributes()
        return self

    def _copy_fitted_attributes(self) -> None:
        self.classes_ = self.best_estimator_.classes_
        n_features = getattr(self.best_estimator_, "n_features_in_", None)
        if n_features is not None:
            self.n_features_in_ = n_features

    def predict(self, X: Any) -> np.ndarray:
        """Predictions of the refitted estimator."""
        check_is_fitted(self, "best_estimator_")
        return self.best_estimator_.predict(X)

    @available_if(lambda self: hasattr(self.estimator, "decision_function"))
    def decision_function(self, X: Any) -> np.ndarray:
        """Decision values of the refitted estimator."""
        check_is_fitted(self, "best_estimator_")
        return self.best_estimator_.decision_function(X)

    @available_if(lambda self: hasattr(self.estimator, "predict_proba"))
    def predict_proba(self, X: Any) -> np.ndarray:
        """Class probabilities of the refitted estimator."""
        check_is_fitted(self, "best_estimator_")
        return self.best_estimator_.predict_proba(X)

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
from sklearn.utils.metaestimators import available_if
from sklearn.utils.validation import check_is_fitted

from featkit.exceptions import InvalidParameterError
from featkit.extractors.params import check_float, check_int

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
        single training image in a class there is nothing to validate on: the estimator's
        own value is kept, with a warning.
    scoring : str, default="accuracy"
        Any scikit-learn scorer name.
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
        random_state: int = 0,
    ) -> None:
        self.estimator = estimator
        self.param = param
        self.low = low
        self.high = high
        self.refine = refine
        self.cv = cv
        self.scoring = scoring
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

    def _final_step(self) -> Any:
        return (
            self.estimator.steps[-1][1] if isinstance(self.estimator, Pipeline) else self.estimator
        )

    def _score(self, value: float, X: np.ndarray, y: np.ndarray) -> float:
        """Mean validation score of one value over the validation splits."""
        if value in self._scores:
            return self._scores[value]
        path = self._param_path()
        scores = []
        with warnings.catch_warnings():
            # Candidates far from the optimum may stop at max_iter; only the refit's
            # warnings are the user's business.
            warnings.simplefilter("ignore", ConvergenceWarning)
            for k, (train, val) in enumerate(self._splits):
                # Warm-startable estimators keep one model per split: each fit starts from
                # the solution for the previous value, as a regularisation path (glmnet).
                model = self._models.get(k) or clone(self.estimator)
                if self._warm:
                    self._models[k] = model
                model.set_params(**{path: value}).fit(X[train], y[train])
                scores.append(self._scorer(model, X[val], y[val]))
        self._scores[value] = float(np.mean(scores))
        return self._scores[value]

    def _best(self) -> float:
        # Highest score; ties go to the smallest value (the most regularised model).
        return max(sorted(self._scores), key=lambda v: self._scores[v])

    def fit(self, X: Any, y: Any) -> CSweepClassifier:
        """Sweep the parameter on (X, y), then refit the estimator on all of it."""
        name = type(self).__name__
        check_float(name, "low", self.low, low=0.0, strict=True)
        check_float(name, "high", self.high, low=self.low)
        X, y = np.asarray(X), np.asarray(y)
        splitter = self._splitter(y)
        if splitter is None:
            return self._fit_without_sweep(X, y)
        self._splits = list(splitter.split(X, y))
        self._scores: dict[float, float] = {}
        self._models: dict[int, Any] = {}
        self._warm = "warm_start" in self._final_step().get_params(deep=False)
        if self._warm:
            warm = self._param_path()[: -len(self.param)] + "warm_start"
            self._models = {
                k: clone(self.estimator).set_params(**{warm: True})
                for k in range(len(self._splits))
            }
        self._scorer = check_scoring(self.estimator, scoring=self.scoring)
        lo, hi = int(np.floor(np.log10(self.low))), int(np.ceil(np.log10(self.high)))
        # Coarse pass, from strong to weak regularisation. Validation accuracy against C
        # rises then falls; two decades in a row without a gain end the pass, which skips
        # the weakly regularised fits, the slowest by far (liblinear: 10x the iterations).
        stale = 0
        for e in range(lo, hi + 1):
            best_before = max(self._scores.values(), default=-np.inf)
            stale = 0 if self._score(10.0**e, X, y) > best_before else stale + 1
            if stale == 2:
                hi = e
                break
        for _ in range(MAX_EXTENSIONS):
            best = self._best()
            if np.isclose(best, 10.0**lo):
                lo -= 1
                self._score(10.0**lo, X, y)
            elif np.isclose(best, 10.0**hi) and stale < 2:
                hi += 1
                self._score(10.0**hi, X, y)
            else:
                break
        if self.refine:
            best = self._best()
            for q in (-0.5, 0.5):
                self._score(best * 10.0**q, X, y)
        chosen = self._best()
        self.best_params_ = {self.param: chosen}
        self.best_score_ = self._scores[chosen]
        self.cv_results_ = [{self.param: v, "score": s} for v, s in self._scores.items()]
        self.best_estimator_ = clone(self.estimator).set_params(**{self._param_path(): chosen})
        self.best_estimator_.fit(X, y)
        self.classes_ = self.best_estimator_.classes_
        self.n_features_in_ = getattr(self.best_estimator_, "n_features_in_", X.shape[1])
        del self._splits, self._models, self._scorer
        return self

    def _fit_without_sweep(self, X: Any, y: np.ndarray) -> CSweepClassifier:
        # One image in a class leaves nothing to validate on: keep the estimator's own value.
        value = self.estimator.get_params()[self._param_path()]
        logger.warning(
            "a class has a single training image: no %s sweep, %s=%s kept",
            self.param,
            self.param,
            value,
        )
        self.best_params_ = {self.param: value}
        self.best_score_ = float("nan")
        self.cv_results_ = []
        self.best_estimator_ = clone(self.estimator).fit(X, y)
        self.classes_ = self.best_estimator_.classes_
        self.n_features_in_ = getattr(self.best_estimator_, "n_features_in_", np.shape(X)[1])
        return self

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
        """Class probabilities of the refitted estimator ."""
        check_is_fitted(self, "best_estimator_")
        return self.best_estimator_.predict_proba(X)

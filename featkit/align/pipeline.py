"""Aligners inside scikit-learn pipelines: train the classifier on the source rows only.

In a ``Pipeline([aligner, classifier])`` fitted on source and target rows, the classifier
must not see the target rows (their labels are masked as -1). :class:`SelectSource` wraps
it to fit on the labelled source rows; :func:`make_da_pipeline` builds the pair. Domains
reach the aligner either as ``sample_domain`` (with scikit-learn's metadata routing on) or
through the masked labels alone. :class:`DAPipeline`, what :func:`make_da_pipeline` returns,
takes ``sample_domain`` in every method itself, as SKADA's pipelines do, so SKADA's
scorers and featkit's (:mod:`featkit.align.scorers`) work on it with or without metadata
routing, and ``GridSearchCV(...).fit(X, y, sample_domain=...)`` passes it through.
"""

from __future__ import annotations

import inspect
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin, MetaEstimatorMixin, clone
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.utils.metadata_routing import MetadataRequest
from sklearn.utils.metaestimators import available_if
from sklearn.utils.validation import check_is_fitted

from featkit.align.domains import MASKED, check_domains
from featkit.exceptions import InvalidParameterError

__all__ = ["DAPipeline", "SelectSource", "make_da_pipeline"]


def _estimator_has(attr: str) -> Any:
    return lambda self: hasattr(self.estimator, attr)


class SelectSource(MetaEstimatorMixin, ClassifierMixin, BaseEstimator):
    """Fit ``estimator`` on the source rows only; predict on any rows.

    Source rows are those with a positive ``sample_domain`` when it is given, else those
    whose label is not the mask -1. Scoring counts only rows with a label.
    """

    def __init__(self, estimator: Any) -> None:
        self.estimator = estimator

    def fit(self, X: Any, y: Any, *, sample_domain: Any = None) -> SelectSource:
        """Fit a clone of ``estimator`` on the labelled source rows of ``X``."""
        y = np.asarray(y)
        keep = y != MASKED if sample_domain is None else np.asarray(sample_domain) > 0
        keep &= y != MASKED
        if not keep.any():
            raise InvalidParameterError(
                "SelectSource: no labelled source rows to fit the classifier on"
            )
        self.estimator_ = clone(self.estimator).fit(np.asarray(X)[keep], y[keep])
        self.classes_ = self.estimator_.classes_
        return self

    def predict(self, X: Any) -> np.ndarray:
        check_is_fitted(self)
        return self.estimator_.predict(X)

    @available_if(_estimator_has("predict_proba"))
    def predict_proba(self, X: Any) -> np.ndarray:
        check_is_fitted(self)
        return self.estimator_.predict_proba(X)

    @available_if(_estimator_has("decision_function"))
    def decision_function(self, X: Any) -> np.ndarray:
        check_is_fitted(self)
        return self.estimator_.decision_function(X)

    def score(self, X: Any, y: Any, sample_weight: Any = None) -> float:
        """Accuracy on the rows that have a label (masked rows are left out), weighted by
        ``sample_weight`` when it is given (importance-weighted validation)."""
        y = np.asarray(y)
        keep = y != MASKED
        if not keep.any():
            raise InvalidParameterError("SelectSource: no labelled rows to score")
        right = self.predict(np.asarray(X)[keep]) == y[keep]
        if sample_weight is None:
            return float(np.mean(right))
        return float(np.average(right, weights=np.asarray(sample_weight)[keep]))


def _takes_domains(method: Any) -> bool:
    try:
        return "sample_domain" in inspect.signature(method).parameters
    except (TypeError, ValueError):
        return False


def _final_has(attr: str) -> Any:
    return lambda self: hasattr(self._final_estimator, attr)


def _all_transform(self: Pipeline) -> bool:
    return all(s in (None, "passthrough") or hasattr(s, "transform") for _, s in self.steps)


class DAPipeline(Pipeline):
    """A :class:`~sklearn.pipeline.Pipeline` whose methods take ``sample_domain`` and give
    it to the steps that use it (aligners), as SKADA's pipelines do.

    ``fit(X, y, sample_domain=None)``: without ``sample_domain`` the target rows are those
    labelled -1. Steps before the last are fitted on every row (the aligners with the
    domains); the last step on the labelled source rows (a :class:`SelectSource` does it
    itself). ``predict``, ``predict_proba``, ``decision_function``, ``score`` and
    ``transform`` map rows by their ``sample_domain`` (none: target rows). ``allow_source``
    is SKADA's keyword, accepted and ignored: featkit's aligners transform source rows.
    It needs no metadata routing, and declares what it consumes for when routing is on.
    """

    def fit(self, X: Any, y: Any = None, *, sample_domain: Any = None) -> DAPipeline:
        """Fit every step on the source and target rows of ``X``."""
        X = np.asarray(X) if not hasattr(X, "shape") else X
        domains = check_domains(len(X), y, sample_domain, owner="DAPipeline")
        Xt = X
        for i, (name, step) in enumerate(self.steps[:-1]):
            if step is None or step == "passthrough":
                continue
            fitted = clone(step)
            kwargs = {"sample_domain": domains} if _takes_domains(fitted.fit) else {}
            Xt = fitted.fit(Xt, y, **kwargs).transform(Xt, **kwargs)
            self.steps[i] = (name, fitted)
        last = self._final_estimator
        if last is not None and last != "passthrough":
            if _takes_domains(last.fit):
                last.fit(Xt, y, sample_domain=domains)
            else:  # a plain classifier: only the labelled source rows
                keep = (domains > 0) & (np.asarray(y) != MASKED)
                last.fit(Xt[keep], np.asarray(y)[keep])
        return self

    def _map(self, X: Any, sample_domain: Any, steps: Any = None) -> Any:
        """``X`` through the transformers, each row by its domain (none: target rows; one
        id: every row)."""
        if sample_domain is not None and np.ndim(sample_domain) == 0:
            sample_domain = np.full(len(X), sample_domain, dtype=np.int64)
        for _, step in self.steps[:-1] if steps is None else steps:
            if step is None or step == "passthrough":
                continue
            if _takes_domains(step.transform):
                X = step.transform(X, sample_domain=sample_domain)
            else:
                X = step.transform(X)
        return X

    @available_if(_final_has("predict"))
    def predict(self, X: Any, *, sample_domain: Any = None, allow_source: Any = None) -> Any:
        return self._final_estimator.predict(self._map(X, sample_domain))

    @available_if(_final_has("predict_proba"))
    def predict_proba(
        self, X: Any, *, sample_domain: Any = None, allow_source: Any = None
    ) -> np.ndarray:
        return self._final_estimator.predict_proba(self._map(X, sample_domain))

    @available_if(_final_has("predict_log_proba"))
    def predict_log_proba(
        self, X: Any, *, sample_domain: Any = None, allow_source: Any = None
    ) -> np.ndarray:
        return self._final_estimator.predict_log_proba(self._map(X, sample_domain))

    @available_if(_final_has("decision_function"))
    def decision_function(
        self, X: Any, *, sample_domain: Any = None, allow_source: Any = None
    ) -> np.ndarray:
        return self._final_estimator.decision_function(self._map(X, sample_domain))

    @available_if(_final_has("score"))
    def score(
        self,
        X: Any,
        y: Any = None,
        sample_weight: Any = None,
        *,
        sample_domain: Any = None,
        allow_source: Any = None,
    ) -> float:
        """The last step's score of the mapped rows (accuracy on the labelled rows for a
        :class:`SelectSource`), weighted by ``sample_weight`` when given."""
        kwargs = {} if sample_weight is None else {"sample_weight": sample_weight}
        return self._final_estimator.score(self._map(X, sample_domain), y, **kwargs)

    @available_if(_all_transform)
    def transform(self, X: Any, *, sample_domain: Any = None, allow_source: Any = None) -> Any:
        return self._map(X, sample_domain, self.steps)

    def fit_transform(self, X: Any, y: Any = None, *, sample_domain: Any = None) -> Any:
        return self.fit(X, y, sample_domain=sample_domain).transform(
            X, sample_domain=check_domains(len(X), y, sample_domain, owner="DAPipeline")
        )

    def fit_predict(self, X: Any, y: Any = None, *, sample_domain: Any = None) -> Any:
        return self.fit(X, y, sample_domain=sample_domain).predict(
            X, sample_domain=check_domains(len(X), y, sample_domain, owner="DAPipeline")
        )

    def get_metadata_routing(self) -> MetadataRequest:
        """With metadata routing on: ``sample_domain`` for every method, and
        ``sample_weight`` for ``score``. The pipeline hands them to its steps itself."""
        request = MetadataRequest(owner=type(self).__name__)
        for method in ("fit", "predict", "predict_proba", "predict_log_proba", "score"):
            getattr(request, method).add_request(param="sample_domain", alias=True)
        for method in ("decision_function", "transform"):
            getattr(request, method).add_request(param="sample_domain", alias=True)
        request.score.add_request(param="sample_weight", alias=True)
        return request


def make_da_pipeline(*steps: Any) -> DAPipeline:
    """A :class:`DAPipeline` of ``steps`` (named as ``make_pipeline`` names them) whose last
    step, a classifier, is wrapped in :class:`SelectSource`.

    ``make_da_pipeline(StandardScaler(), CORAL(), LinearSVC())`` fits on source and target
    rows (target labels -1, or ``sample_domain``), trains the SVM on the aligned source, and
    predicts target rows. Its parameters are ``coral__reg`` and so on, for a grid search.
    """
    if not steps:
        raise InvalidParameterError("make_da_pipeline needs at least a classifier")
    *head, last = steps
    if not isinstance(last, SelectSource):
        last = SelectSource(last)
    plain = make_pipeline(*head, last)
    return DAPipeline(plain.steps)

"""Aligners inside scikit-learn pipelines: train the classifier on the source rows only.

In a ``Pipeline([aligner, classifier])`` fitted on source and target rows, the classifier
must not see the target rows (their labels are masked as -1). :class:`SelectSource` wraps
it to fit on the labelled source rows; :func:`make_da_pipeline` builds the pair. Domains
reach the aligner either as ``sample_domain`` (with scikit-learn's metadata routing on) or
through the masked labels alone.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin, MetaEstimatorMixin, clone
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.utils.metaestimators import available_if
from sklearn.utils.validation import check_is_fitted

from featkit.align.domains import MASKED
from featkit.exceptions import InvalidParameterError

__all__ = ["SelectSource", "make_da_pipeline"]


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
        """Accuracy on the rows that have a label (masked rows are left out)."""
        y = np.asarray(y)
        keep = y != MASKED
        if not keep.any():
            raise InvalidParameterError("SelectSource: no labelled rows to score")
        return float(np.mean(self.predict(np.asarray(X)[keep]) == y[keep]))


def make_da_pipeline(*steps: Any) -> Pipeline:
    """``make_pipeline`` whose last step, a classifier, is wrapped in :class:`SelectSource`.

    ``make_da_pipeline(StandardScaler(), CORAL(), LinearSVC())`` fits on source and target
    rows (target labels -1), trains the SVM on the aligned source, and predicts target rows.
    """
    if not steps:
        raise InvalidParameterError("make_da_pipeline needs at least a classifier")
    *head, last = steps
    if not isinstance(last, SelectSource):
        last = SelectSource(last)
    return make_pipeline(*head, last)

"""Label-free scores of a fitted domain-adaptation pipeline: model selection without target labels.

Each scorer is a scikit-learn scorer, ``scorer(estimator, X, y, sample_domain=None)``,
higher is better (losses come negated, as SKADA returns them), so it serves as
``GridSearchCV(..., scoring=scorer)``. ``X`` holds source and target rows; the target rows'
labels are masked as -1 and never read (without ``sample_domain``, the rows labelled -1 are
the target). They are SKADA's scorers (``skada.metrics``), rewritten on numpy and
scikit-learn so featkit does not need SKADA, and tested equal to them on the same fitted
pipeline (tests/test_scorers.py):

- :class:`ImportanceWeightedScorer`: the source accuracy, each source row weighted by
  ``p_target(x) / p_source(x)`` from two kernel density estimates (Sugiyama et al. 2007).
- :class:`PredictionEntropyScorer`: minus the mean entropy of the target predictions
  (Morerio et al. 2018): confident predictions score high.
- :class:`SoftNeighborhoodDensity`: the entropy of the target rows' soft neighbourhoods in
  prediction space (Saito et al. 2021): predictions that form dense clusters score high.
- :class:`DeepEmbeddedValidation`: minus the importance-weighted log loss on held-out source
  rows, the weights from a source/target classifier on the pipeline's features, with a
  control variate (You et al. 2019).
- :class:`CircularValidation`: refit with the target's predicted labels as the source, and
  score the source's true labels (Bruzzone & Marconcini 2010).
- :class:`MixValScorer`: the accuracy on mixed target pairs against their pseudo-labels
  (Hu et al. 2023).

The estimator is a :class:`~featkit.align.DAPipeline` (``make_da_pipeline``) or a SKADA
pipeline: whatever takes ``sample_domain`` in ``predict_proba``. Where SKADA 0.6 departs
from the paper it cites (the control variate of deep embedded validation, see the class),
featkit follows the paper and says so.
"""

from __future__ import annotations

import inspect
import warnings
from copy import deepcopy
from typing import Any

import numpy as np
from sklearn import get_config
from sklearn.base import clone
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import balanced_accuracy_score, check_scoring
from sklearn.model_selection import train_test_split
from sklearn.neighbors import KernelDensity
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import LabelEncoder
from sklearn.utils import check_random_state
from sklearn.utils.extmath import softmax
from sklearn.utils.metadata_routing import MetadataRequest

from featkit.align.domains import MASKED, check_domains
from featkit.exceptions import InvalidParameterError

__all__ = [
    "CircularValidation",
    "DeepEmbeddedValidation",
    "DomainScorer",
    "ImportanceWeightedScorer",
    "MixValScorer",
    "PredictionEntropyScorer",
    "SoftNeighborhoodDensity",
]


def _domain_kwargs(
    estimator: Any, method: str, sample_domain: np.ndarray, allow_source: bool = False
) -> dict[str, Any]:
    """The keywords that tell ``estimator.method`` each row's domain, if it takes them: a
    :class:`~featkit.align.DAPipeline` names them; a pipeline with scikit-learn's metadata
    routing on (SKADA's) routes them."""
    try:
        params = inspect.signature(getattr(estimator, method)).parameters
    except (TypeError, ValueError):
        params = {}
    if "sample_domain" in params:
        out: dict[str, Any] = {"sample_domain": sample_domain}
        if allow_source and "allow_source" in params:
            out["allow_source"] = True
        return out
    if isinstance(estimator, Pipeline) and get_config().get("enable_metadata_routing"):
        return {"sample_domain": sample_domain, **({"allow_source": True} if allow_source else {})}
    return {}


def _call(
    estimator: Any, method: str, X: np.ndarray, domains: np.ndarray, allow_source: bool = False
) -> Any:
    kwargs = _domain_kwargs(estimator, method, domains, allow_source)
    return getattr(estimator, method)(X, **kwargs)


def _check_proba(estimator: Any, name: str) -> None:
    if not hasattr(estimator, "predict_proba"):
        raise InvalidParameterError(
            f"{name} needs an estimator with predict_proba; {type(estimator).__name__} has "
            "none (use a probabilistic classifier, e.g. LogisticRegression)"
        )


class DomainScorer:
    """Base of the label-free scorers: ``scorer(estimator, X, y, sample_domain=None)``.

    ``X`` and ``y`` hold source and target rows (target labels -1); ``sample_domain`` is
    inferred from the masked labels when it is not given, as SKADA does. The score is
    ``sign * value``, with ``sign = 1`` when ``greater_is_better``, so that higher is
    always better for a grid search.
    """

    #: Whether the raw value is a score (True) or a loss (False), by default.
    greater_is_better = True

    def __call__(
        self, estimator: Any, X: Any, y: Any = None, sample_domain: Any = None, **kwargs: Any
    ) -> float:
        X = np.asarray(X)
        if y is None:
            raise InvalidParameterError(
                f"{type(self).__name__}: needs the labels y (target rows masked as -1)"
            )
        y = np.asarray(y)
        domains = check_domains(len(X), y, sample_domain, owner=type(self).__name__)
        return self._sign() * self._score(estimator, X, y, domains)

    def _sign(self) -> int:
        return 1 if self.greater_is_better else -1

    def _score(self, estimator: Any, X: np.ndarray, y: np.ndarray, domains: np.ndarray) -> Any:
        raise NotImplementedError

    def get_metadata_routing(self) -> MetadataRequest:
        """With scikit-learn's metadata routing on, a search hands ``sample_domain`` over."""
        request = MetadataRequest(owner=type(self).__name__)
        request.score.add_request(param="sample_domain", alias=True)
        return request

    def __repr__(self) -> str:
        params = ", ".join(f"{k}={v!r}" for k, v in vars(self).items() if not k.startswith("_"))
        return f"{type(self).__name__}({params})"


class ImportanceWeightedScorer(DomainScorer):
    """The estimator's score on the source rows, weighted by ``p_t(x) / p_s(x)``.

    The two densities are kernel density estimates (``weight_estimator``, default
    ``KernelDensity()``: a Gaussian kernel of bandwidth 1) fitted on the source and on the
    target rows of ``X`` as given (before any step of the pipeline); the weights are
    normalised to sum to 1. ``scoring`` (default: the estimator's own ``score``, accuracy)
    must take ``sample_weight``. Sugiyama et al., JMLR 2007; SKADA's
    ``ImportanceWeightedScorer``.
    """

    def __init__(
        self,
        weight_estimator: Any = None,
        scoring: Any = None,
        greater_is_better: bool = True,
    ) -> None:
        self.weight_estimator = weight_estimator
        self.scoring = scoring
        self.greater_is_better = greater_is_better

    def weights(self, X_source: np.ndarray, X_target: np.ndarray) -> np.ndarray:
        """The normalised importance weights of the source rows."""
        base = KernelDensity() if self.weight_estimator is None else self.weight_estimator
        Xs, Xt = X_source.reshape(len(X_source), -1), X_target.reshape(len(X_target), -1)
        log_ps = clone(base).fit(Xs).score_samples(Xs)
        log_pt = clone(base).fit(Xt).score_samples(Xs)
        w = np.exp(log_pt - log_ps)
        if w.sum() != 0:
            return w / w.sum()
        warnings.warn("all importance weights are zero: using uniform weights", stacklevel=3)
        return np.ones_like(w) / len(w)

    def _score(self, estimator: Any, X: np.ndarray, y: np.ndarray, domains: np.ndarray) -> float:
        source = domains > 0
        w = self.weights(X[source], X[~source])
        if self.scoring is None:
            if not _takes_weights(estimator):
                raise InvalidParameterError(
                    f"ImportanceWeightedScorer: {type(estimator).__name__}.score takes no "
                    "sample_weight"
                )
            kwargs = _domain_kwargs(estimator, "score", domains[source], allow_source=True)
            return float(estimator.score(X[source], y[source], sample_weight=w, **kwargs))
        scorer = check_scoring(estimator, self.scoring)
        return float(scorer(estimator, X[source], y[source], sample_weight=w))


def _takes_weights(estimator: Any) -> bool:
    try:
        params = inspect.signature(estimator.score).parameters
    except (AttributeError, TypeError, ValueError):
        return False
    return "sample_weight" in params


class PredictionEntropyScorer(DomainScorer):
    """Minus the mean entropy of the target rows' predicted class probabilities.

    ``reduction='mean'`` averages ``-p log p`` over rows and classes (SKADA's convention:
    the mean row entropy divided by the number of classes), ``'sum'`` sums it, ``'none'``
    returns the ``(n_target, n_classes)`` terms. ``log p`` is the estimator's
    ``predict_log_proba`` when it has one, else ``log(p + 1e-7)``. Morerio et al., ICLR
    2018; SKADA's ``PredictionEntropyScorer``.
    """

    greater_is_better = False

    def __init__(self, greater_is_better: bool = False, reduction: str = "mean") -> None:
        if reduction not in ("none", "mean", "sum"):
            raise InvalidParameterError(
                f"unknown reduction {reduction!r}: choose from 'none', 'mean', 'sum'"
            )
        self.greater_is_better = greater_is_better
        self.reduction = reduction

    def _score(self, estimator: Any, X: np.ndarray, y: np.ndarray, domains: np.ndarray) -> Any:
        _check_proba(estimator, "PredictionEntropyScorer")
        target = domains < 0
        proba = _call(estimator, "predict_proba", X[target], domains[target])
        if hasattr(estimator, "predict_log_proba"):
            log_proba = _call(estimator, "predict_log_proba", X[target], domains[target])
        else:
            log_proba = np.log(proba + 1e-7)
        terms = -proba * log_proba
        terms[np.isneginf(log_proba)] = 0.0  # p log p -> 0 as p -> 0
        if self.reduction == "none":
            return terms
        return float(np.sum(terms) if self.reduction == "sum" else np.mean(terms))


class SoftNeighborhoodDensity(DomainScorer):
    """The mean entropy of each target row's soft neighbourhood in prediction space.

    The target rows' probability vectors are L2-normalised; their similarities divided by
    the temperature ``T`` (0.05, the paper's) go through a row softmax (the diagonal
    negated, as in SKADA); the score is the mean row entropy: high when predictions form
    dense clusters. Saito et al., ICCV 2021; SKADA's ``SoftNeighborhoodDensity``.
    """

    def __init__(self, T: float = 0.05, greater_is_better: bool = True) -> None:
        self.T = T
        self.greater_is_better = greater_is_better

    def _score(self, estimator: Any, X: np.ndarray, y: np.ndarray, domains: np.ndarray) -> float:
        _check_proba(estimator, "SoftNeighborhoodDensity")
        target = domains < 0
        proba = np.asarray(_call(estimator, "predict_proba", X[target], domains[target]))
        norms = np.linalg.norm(proba, axis=1, keepdims=True)
        proba = proba / np.where(norms == 0, 1.0, norms)
        similarity = proba @ proba.T / self.T
        np.fill_diagonal(similarity, -np.diag(similarity))
        similarity = softmax(similarity)
        return float(np.mean(np.sum(-similarity * np.log(similarity), axis=1)))


class DeepEmbeddedValidation(DomainScorer):
    """Minus the importance-weighted log loss on held-out source rows, with a control variate.

    A third of the source rows (``random_state``) is held out; a domain classifier
    (``domain_classifier``, default ``LogisticRegression()``) learns the other source rows
    against the target rows on the pipeline's features (the output of its last step with
    ``transform``, each row mapped as a target row, as SKADA does); the held-out rows'
    weights are ``(n_train / n_target) p(target | x) / p(source | x)``; their per-row log
    losses ``l`` give ``mean(w l) + eta mean(w) - eta`` with ``eta = -cov(w l, w) / var(w)``
    (You et al., ICML 2019, eq. 5).

    SKADA 0.6 multiplies an ``(n, 1)`` weight column by the ``(n,)`` losses, an ``(n, n)``
    matrix, so its ``cov`` is that of two of the matrix's columns and its mean that of
    the whole matrix; its value is ``mean(w) mean(l) + l0 l1 (1 - mean(w))``.
    ``skada_compatible=True`` reproduces it (for comparisons); the default is the paper's.
    The weights and the losses are SKADA's (tests/test_scorers.py checks both).
    """

    greater_is_better = False

    def __init__(
        self,
        domain_classifier: Any = None,
        loss_func: Any = None,
        random_state: Any = None,
        greater_is_better: bool = False,
        skada_compatible: bool = False,
    ) -> None:
        self.domain_classifier = domain_classifier
        self.loss_func = loss_func
        self.random_state = random_state
        self.greater_is_better = greater_is_better
        self.skada_compatible = skada_compatible

    def parts(
        self, estimator: Any, X: np.ndarray, y: np.ndarray, domains: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """The held-out source rows' weights and losses."""
        _check_proba(estimator, "DeepEmbeddedValidation")
        features = _features(estimator)
        source = domains > 0
        rng = check_random_state(self.random_state)
        X_train, X_val, _, y_val, _, d_val = train_test_split(
            X[source], y[source], domains[source], test_size=0.33, random_state=rng
        )
        f_train, f_val, f_target = features(X_train), features(X_val), features(X[~source])
        base = LogisticRegression() if self.domain_classifier is None else self.domain_classifier
        domain = clone(base).fit(
            np.concatenate([f_train, f_target]),
            np.concatenate([np.ones(len(f_train)), np.zeros(len(f_target))]),
        )
        p = domain.predict_proba(f_val)
        weights = (len(f_train) / len(f_target)) * p[:, 0] / p[:, 1]
        proba = np.asarray(_call(estimator, "predict_proba", X_val, d_val, allow_source=True))
        if self.loss_func is not None:
            losses = np.asarray(self.loss_func(y_val, proba), dtype=float)
        else:
            classes = getattr(estimator, "classes_", None)
            index = y_val if classes is None else np.searchsorted(classes, y_val)
            picked = proba[np.arange(len(proba)), np.asarray(index, dtype=int)]
            losses = -np.log(np.clip(picked, 1e-15, 1 - 1e-15))
        return weights, losses

    def _score(self, estimator: Any, X: np.ndarray, y: np.ndarray, domains: np.ndarray) -> float:
        w, loss = self.parts(estimator, X, y, domains)
        if self.skada_compatible:  # SKADA 0.6's (n, 1) * (n,) broadcast
            weighted = w[:, None] * loss[None, :]
            cov = np.cov(np.concatenate([weighted, w[:, None]], axis=1), rowvar=False)[0, 1]
        else:
            weighted = w * loss
            cov = np.cov(weighted, w)[0, 1]
        var = np.var(w, ddof=1)
        eta = 0.0 if var == 0 else -cov / var
        return float(np.mean(weighted) + eta * np.mean(w) - eta)


def _features(estimator: Any) -> Any:
    """The pipeline up to its last step with ``transform`` (rows mapped as target rows), or
    the identity."""
    if isinstance(estimator, Pipeline):
        for index in range(len(estimator.steps) - 1, -1, -1):
            if hasattr(estimator.steps[index][1], "transform"):
                head = estimator[: index + 1]
                return lambda X: np.asarray(head.transform(X))
    return lambda X: X


class CircularValidation(DomainScorer):
    """Refit on the target rows labelled with their predictions, score on the source rows.

    The target rows' predicted labels make a backward problem (target as source, source as
    target, ``sample_domain`` negated); a copy of the estimator is fitted on it and predicts
    the source rows, scored against their true labels by ``source_scorer`` (balanced
    accuracy). When every target row gets one label, the backward model is taken to
    predict that label everywhere. Bruzzone & Marconcini, TPAMI 2010; SKADA's
    ``CircularValidation``.
    """

    def __init__(
        self, source_scorer: Any = balanced_accuracy_score, greater_is_better: bool = True
    ) -> None:
        if not callable(source_scorer):
            raise InvalidParameterError(f"source_scorer must be callable, got {source_scorer!r}")
        self.source_scorer = source_scorer
        self.greater_is_better = greater_is_better

    def _score(self, estimator: Any, X: np.ndarray, y: np.ndarray, domains: np.ndarray) -> float:
        if not (y == MASKED).any() or (y < MASKED).any():
            raise InvalidParameterError(
                "CircularValidation: mask the target labels as -1 (it refits on predictions)"
            )
        source = domains > 0
        predicted = np.asarray(_call(estimator, "predict", X[~source], domains[~source]))
        if len(np.unique(predicted)) == 1:
            warnings.warn("every target row is predicted as one class", stacklevel=3)
            return float(self.source_scorer(y[source], np.full_like(y[source], predicted[0])))
        encoder = LabelEncoder().fit(predicted)
        backward_domains = -domains
        backward_y = np.zeros_like(y)
        backward_y[~source] = encoder.transform(predicted)
        backward_y[source] = MASKED
        try:
            backward = deepcopy(estimator)
        except (TypeError, AttributeError):
            backward = clone(estimator)
        kwargs = _domain_kwargs(backward, "fit", backward_domains)
        backward.fit(X, backward_y, **kwargs)
        back = _call(backward, "predict", X[source], backward_domains[source])
        return float(self.source_scorer(y[source], encoder.inverse_transform(back)))


class MixValScorer(DomainScorer):
    """Accuracy on mixed pairs of target rows against the pseudo-label of the heavier one.

    Each target row is mixed with a random other, ``alpha x_a + (1 - alpha) x_b``; pairs
    whose predicted labels agree (``ice_type='intra'``) and disagree (``'inter'``) are scored
    apart and averaged (``'both'``). Hu et al., NeurIPS 2023; SKADA's ``MixValScorer``.
    """

    def __init__(
        self,
        alpha: float = 0.55,
        ice_type: str = "both",
        scoring: Any = None,
        greater_is_better: bool = True,
        random_state: Any = None,
    ) -> None:
        if ice_type not in ("both", "intra", "inter"):
            raise InvalidParameterError("ice_type must be 'both', 'intra' or 'inter'")
        self.alpha = alpha
        self.ice_type = ice_type
        self.scoring = scoring
        self.greater_is_better = greater_is_better
        self.random_state = random_state

    def _score(self, estimator: Any, X: np.ndarray, y: np.ndarray, domains: np.ndarray) -> float:
        scorer = check_scoring(estimator, self.scoring)
        target = domains < 0
        Xt = X[target]
        order = check_random_state(self.random_state).permutation(len(Xt))
        labels_a = np.asarray(_call(estimator, "predict", Xt, domains[target]))
        labels_b = labels_a[order]
        mixed = self.alpha * Xt + (1 - self.alpha) * Xt[order]
        labels = labels_a if self.alpha >= 0.5 else labels_b

        def ice(rows: np.ndarray) -> float:
            if len(rows) == 0:
                return np.nan
            d = np.full(len(rows), -1)
            kwargs = _domain_kwargs(estimator, "score", d) if self.scoring is None else {}
            if self.scoring is None:
                return float(estimator.score(mixed[rows], labels[rows], **kwargs))
            return float(scorer(estimator, mixed[rows], labels[rows]))

        same, diff = np.flatnonzero(labels_a == labels_b), np.flatnonzero(labels_a != labels_b)
        if self.ice_type == "intra":
            return ice(same)
        if self.ice_type == "inter":
            return ice(diff)
        return float(np.nanmean([ice(same), ice(diff)]))

"""Choosing an aligner's parameters without target labels: scorers by name, default grids, a split.

:func:`select_params` runs scikit-learn's ``GridSearchCV`` over a
:class:`~featkit.align.DAPipeline` (the aligner, then a logistic regression on standardised
aligned features: the scorers need probabilities) with a label-free scorer of
:mod:`featkit.align.scorers`, on :class:`DomainHoldout`'s split: the pipeline is fitted on
two thirds of the labelled source rows and every unlabelled target row, and scored on the
held-out source rows and every target row. The target labels are never read.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

import numpy as np
from sklearn.base import clone
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GridSearchCV, train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from featkit.align.domains import MASKED, stack_domains
from featkit.align.pipeline import DAPipeline, SelectSource
from featkit.align.scorers import (
    CircularValidation,
    DeepEmbeddedValidation,
    DomainScorer,
    ImportanceWeightedScorer,
    MixValScorer,
    PredictionEntropyScorer,
    SoftNeighborhoodDensity,
)
from featkit.exceptions import InvalidParameterError

__all__ = [
    "DEFAULT_GRIDS",
    "DEFAULT_SCORER",
    "SCORERS",
    "SCORER_DESCRIPTIONS",
    "DomainHoldout",
    "make_scorer",
    "select_params",
    "selection_pipeline",
]

#: Scorer name -> a factory taking the seed.
SCORERS: dict[str, Callable[[int], DomainScorer]] = {
    "importance-weighted": lambda seed: ImportanceWeightedScorer(),
    "entropy": lambda seed: PredictionEntropyScorer(),
    "snd": lambda seed: SoftNeighborhoodDensity(),
    "dev": lambda seed: DeepEmbeddedValidation(random_state=seed),
    "circular": lambda seed: CircularValidation(),
    "mixval": lambda seed: MixValScorer(random_state=seed),
}

SCORER_DESCRIPTIONS = {
    "importance-weighted": "source accuracy weighted by p_target/p_source (kernel densities)",
    "entropy": "minus the mean entropy of the target predictions",
    "snd": "soft neighbourhood density of the target predictions (Saito et al. 2021)",
    "dev": "deep embedded validation: weighted held-out source log loss (You et al. 2019)",
    "circular": "circular validation: refit on predicted target labels, score the source",
    "mixval": "accuracy on mixed target pairs against their pseudo-labels (Hu et al. 2023)",
}

#: What ``featkit adapt --select`` uses when asked for ``default`` (docs/selection.md).
DEFAULT_SCORER = "circular"

#: The parameters each aligner's selection chooses among (docs/selection.md).
DEFAULT_GRIDS: dict[str, dict[str, list[Any]]] = {
    "coral": {"reg": [0.01, 0.1, 1.0, 10.0]},
    "sa": {"n_components": [10, 20, 40, 80]},
    "gfk": {"n_components": [10, 20, 40]},
    "pca": {"n_components": [20, 50, 100]},
    "tca": {"n_components": [10, 30, 60], "mu": [0.1, 1.0, 10.0]},
    "jda": {"n_components": [30, 100], "lam": [0.1, 1.0]},
}


def make_scorer(name: str, *, seed: int = 0) -> DomainScorer:
    """The scorer called ``name`` (``default``: :data:`DEFAULT_SCORER`)."""
    key = str(name).strip().lower()
    key = DEFAULT_SCORER if key == "default" else key
    if key not in SCORERS:
        raise InvalidParameterError(
            f"unknown selection scorer {name!r}; choose from default, {', '.join(SCORERS)}"
        )
    return SCORERS[key](seed)


class DomainHoldout:
    """One split for a label-free search: hold out a stratified share of the source rows.

    Train: the other source rows and every target row; test: the held-out source rows and
    every target row (target rows are unlabelled: seeing them at fit is the transductive
    setting of the aligners). Source rows are those whose label is not -1.
    """

    def __init__(self, test_size: float = 1 / 3, random_state: int = 0) -> None:
        self.test_size = test_size
        self.random_state = random_state

    def split(self, X: Any, y: Any, groups: Any = None) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        labels = np.asarray(y)
        source = np.flatnonzero(labels != MASKED)
        target = np.flatnonzero(labels == MASKED)
        if not len(target):
            raise InvalidParameterError("DomainHoldout: no target rows (labels -1)")
        counts = np.unique(labels[source], return_counts=True)[1]
        stratify = labels[source] if counts.min() >= 2 else None
        fit, held = train_test_split(
            source, test_size=self.test_size, random_state=self.random_state, stratify=stratify
        )
        yield np.sort(np.concatenate([fit, target])), np.sort(np.concatenate([held, target]))

    def get_n_splits(self, X: Any = None, y: Any = None, groups: Any = None) -> int:
        return 1


def selection_pipeline(aligner: Any, classifier: Any = None) -> DAPipeline:
    """``aligner`` then ``classifier`` (default: standardised features and a logistic
    regression, probabilistic as the scorers need), steps named ``align`` and ``classify``."""
    if classifier is None:
        classifier = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000))
    return DAPipeline([("align", clone(aligner)), ("classify", SelectSource(classifier))])


def select_params(
    aligner: Any,
    X_source: Any,
    y_source: Any,
    X_target: Any,
    *,
    scorer: str | DomainScorer = DEFAULT_SCORER,
    grid: Mapping[str, Sequence[Any]] | None = None,
    name: str | None = None,
    classifier: Any = None,
    cv: Any = None,
    seed: int = 0,
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The parameters of ``aligner`` in ``grid`` that ``scorer`` ranks best, without the
    target labels, and every candidate's score.

    ``grid`` defaults to :data:`DEFAULT_GRIDS` ``[name]``; ``cv`` to :class:`DomainHoldout`.
    Returns ``(best, table)``: ``best`` the chosen parameters, ``table`` one
    ``{"params": ..., "score": ...}`` per candidate, in the grid's order.
    """
    if grid is None:
        if name is None or name not in DEFAULT_GRIDS:
            raise InvalidParameterError(
                f"no default grid for aligner {name!r}; give grid= (grids exist for "
                f"{', '.join(DEFAULT_GRIDS)})"
            )
        grid = DEFAULT_GRIDS[name]
    unknown = set(grid) - set(aligner.get_params())
    if unknown:
        raise InvalidParameterError(
            f"{type(aligner).__name__} has no parameter {', '.join(sorted(unknown))}"
        )
    chosen_scorer = make_scorer(scorer, seed=seed) if isinstance(scorer, str) else scorer
    X, y, _ = stack_domains(X_source, X_target, y_source)
    search = GridSearchCV(
        selection_pipeline(aligner, classifier),
        {f"align__{k}": list(v) for k, v in grid.items()},
        scoring=chosen_scorer,
        cv=DomainHoldout(random_state=seed) if cv is None else cv,
        refit=False,
        error_score="raise",
    )
    search.fit(X, y)
    strip = len("align__")
    table = [
        {"params": {k[strip:]: v for k, v in p.items()}, "score": float(s)}
        for p, s in zip(
            search.cv_results_["params"], search.cv_results_["mean_test_score"], strict=True
        )
    ]
    best = {k[strip:]: v for k, v in search.best_params_.items()}
    return best, table

"""Evaluation: protocols, metrics and scoring over FeatureSets; the compare, adapt and rank jobs."""

from featkit.evaluate.adapt import adapt, source_target_dataset
from featkit.evaluate.compare import compare, default_extractors, resolve_extractors
from featkit.evaluate.metrics import classification_scores
from featkit.evaluate.protocols import (
    DomainPairs,
    FewShot,
    Holdout,
    KFold,
    PerClass,
    Protocol,
    Split,
    make_protocol,
)
from featkit.evaluate.rank import RankResult, rank
from featkit.evaluate.results import EvaluationResult, summarize
from featkit.evaluate.scoring import evaluate_features

__all__ = [
    "DomainPairs",
    "EvaluationResult",
    "FewShot",
    "Holdout",
    "KFold",
    "PerClass",
    "Protocol",
    "RankResult",
    "Split",
    "adapt",
    "classification_scores",
    "compare",
    "default_extractors",
    "evaluate_features",
    "make_protocol",
    "rank",
    "resolve_extractors",
    "source_target_dataset",
    "summarize",
]

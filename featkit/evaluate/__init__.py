"""Evaluation: metrics and protocols over FeatureSets, and the compare job."""

from featkit.evaluate.compare import CompareResult, compare
from featkit.evaluate.metrics import classification_scores

__all__ = ["CompareResult", "classification_scores", "compare"]

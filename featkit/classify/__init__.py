"""Classifiers for features: named scikit-learn presets."""

from featkit.classify.presets import CLASSIFIERS, make_classifier

__all__ = ["CLASSIFIERS", "make_classifier"]

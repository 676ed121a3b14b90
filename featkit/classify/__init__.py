"""Classifiers for features: FAISS k-NN, a torch linear probe, C sweeps and named presets."""

from featkit.classify.knn import FaissKNNClassifier
from featkit.classify.presets import CLASSIFIERS, make_classifier
from featkit.classify.probe import LinearProbe
from featkit.classify.sweep import CSweepClassifier

__all__ = [
    "CLASSIFIERS",
    "CSweepClassifier",
    "FaissKNNClassifier",
    "LinearProbe",
    "make_classifier",
]

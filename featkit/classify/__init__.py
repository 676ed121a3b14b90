"""Classifiers for features: named scikit-learn presets and a FAISS k-NN classifier."""

from featkit.classify.knn import FaissKNNClassifier
from featkit.classify.presets import CLASSIFIERS, make_classifier

__all__ = ["CLASSIFIERS", "FaissKNNClassifier", "make_classifier"]

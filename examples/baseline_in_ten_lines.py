"""A k-NN and a linear SVM baseline on any image folder, in ten lines of featkit.

Usage: python examples/baseline_in_ten_lines.py [DATA]   (DATA: folder, .csv, .npz or
a built-in name; default: digits). Prints the held-out accuracy of each classifier.
"""

import sys

from sklearn.neighbors import KNeighborsClassifier
from sklearn.svm import LinearSVC

import featkit

data = featkit.load_dataset(sys.argv[1] if len(sys.argv) > 1 else "digits")
train, test = data.train_test_split(test_size=0.25, seed=0)
extractor = featkit.create_extractor("pixels", size=16)
train_features, test_features = featkit.extract(extractor, train), featkit.extract(extractor, test)
for classifier in (KNeighborsClassifier(n_neighbors=5), LinearSVC(C=0.1)):
    classifier.fit(train_features.X, train_features.y)
    accuracy = classifier.score(test_features.X, test_features.y)
    print(f"{type(classifier).__name__:<22} accuracy {accuracy:.4f} on {len(test_features)} images")

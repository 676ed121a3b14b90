"""Named classifier presets: the baselines users build in minutes, tuned on the training set.

Every preset that has a regularisation strength chooses it by validation on the training
set (:class:`~featkit.classify.sweep.CSweepClassifier`: a log grid, coarse then fine), so
the numbers are honest without hand-tuning: the test rows are never looked at. ``finetune``
is the one preset that trains on images (a :class:`~featkit.finetune.FineTuner`), not on
features: only ``compare`` has the images it needs.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sklearn.base import ClassifierMixin
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.svm import SVC

from featkit.classify.knn import FaissKNNClassifier
from featkit.classify.sweep import CSweepClassifier
from featkit.exceptions import InvalidParameterError

__all__ = ["CLASSIFIERS", "CLASSIFIER_DESCRIPTIONS", "FINETUNE_SETTINGS", "make_classifier"]

#: Training rows the C sweeps validate on (a stratified subsample; the refit uses all).
SWEEP_SAMPLES = 10_000


def _sweep(estimator: ClassifierMixin, low: float, high: float, seed: int) -> ClassifierMixin:
    """Standardised features, C chosen on a validation split of the training rows."""
    return CSweepClassifier(
        make_pipeline(StandardScaler(), estimator),
        low=low,
        high=high,
        max_samples=SWEEP_SAMPLES,
        random_state=seed,
    )


def _probe_sweep(probe: ClassifierMixin, low: float, high: float, seed: int) -> ClassifierMixin:
    """``_sweep`` for a LinearProbe, which standardizes inside its fit: the same problem
    as behind a StandardScaler, without the scaled copies (4 GB for the 3,060 training
    Fisher vectors of the published recipe, in each fit and again at predict)."""
    return CSweepClassifier(
        probe.set_params(standardize=True),
        low=low,
        high=high,
        max_samples=SWEEP_SAMPLES,
        random_state=seed,
    )


def _knn(seed: int) -> ClassifierMixin:
    # DINO's k-NN evaluation: cosine similarity, 20 neighbours voting with exp(sim / 0.07).
    return FaissKNNClassifier(n_neighbors=20, metric="cosine", weights="similarity")


def _linear_svm(seed: int) -> ClassifierMixin:
    from featkit.classify.probe import LinearProbe

    # LinearSVC's problem (one-vs-rest squared hinge), solved by the probe's L-BFGS on a
    # warm-started path: liblinear cannot warm-start, and its sweep on 60,000 Fashion-MNIST
    # images ran for more than 20 minutes on raw pixels alone.
    svm = LinearProbe(loss="squared_hinge", random_state=seed)
    return _probe_sweep(svm, 1e-4, 1e-1, seed)


def _rbf_svm(seed: int) -> ClassifierMixin:
    svm = SVC(kernel="rbf", gamma="scale", random_state=seed)
    return _sweep(svm, 1e-1, 1e3, seed)


def _logreg(seed: int) -> ClassifierMixin:
    logreg = LogisticRegression(max_iter=2000)
    return _sweep(logreg, 1e-4, 1e2, seed)


def _probe(seed: int) -> ClassifierMixin:
    from featkit.classify.probe import LinearProbe

    probe = LinearProbe(random_state=seed)
    return _probe_sweep(probe, 1e-4, 1e2, seed)


#: The finetune preset's training settings: the best of docs/benchmarks.md's measurements
#: (PACS, 20 images per class): the last two stages gained 8 points over the frozen
#: features on sketches, with light augmentation, lr 3e-3, batches of 16, 10 epochs and no
#: validation split (with a few dozen images per class, early stopping was too noisy).
FINETUNE_SETTINGS: dict[str, Any] = {
    "strategy": "last:2",
    "augment": "light",
    "epochs": 10,
    "lr": 3e-3,
    "batch_size": 16,
    "validation_fraction": 0.0,
}


def _finetune(seed: int) -> ClassifierMixin:
    from featkit.finetune import FineTuner

    # Trains on images, not on features: compare gives it each cnn extractor's network
    # (featkit.evaluate.image_learners).
    return FineTuner(**FINETUNE_SETTINGS, random_state=seed)


CLASSIFIERS: dict[str, Callable[[int], ClassifierMixin]] = {
    "knn": _knn,
    "svm": _linear_svm,
    "rbf-svm": _rbf_svm,
    "logreg": _logreg,
    "probe": _probe,
    "finetune": _finetune,
}
CLASSIFIER_DESCRIPTIONS = {
    "knn": "FAISS 20-NN, cosine similarity, votes weighted by exp(sim / 0.07) (DINO)",
    "svm": "linear SVM (one-vs-rest squared hinge, LinearSVC's problem, solved by featkit's "
    "torch probe) on standardised features, C chosen on a validation split",
    "rbf-svm": "RBF SVM (gamma='scale') on standardised features, C chosen on a validation split",
    "logreg": "scikit-learn logistic regression on standardised features, C chosen on a "
    "validation split",
    "probe": "featkit's torch linear probe (softmax regression, L-BFGS; GPU when present) on "
    "standardised features, C chosen on a validation split",
    "finetune": "the cnn extractor's network fine-tuned on the training images (FineTuner: "
    "its last two stages and a new head, light augmentation, 10 epochs, lr 3e-3, batches of "
    "16, no validation split); compare only, cnn extractors only",
}


def make_classifier(name: str, *, seed: int = 0) -> Any:
    """A fresh, unfitted classifier for a preset name (see ``CLASSIFIERS``)."""
    try:
        factory = CLASSIFIERS[name]
    except KeyError:
        raise InvalidParameterError(
            f"unknown classifier {name!r}; choose from {', '.join(sorted(CLASSIFIERS))}"
        ) from None
    return factory(seed)

"""Scoring learners that train on images, not on feature rows: a fine-tuned network
(:class:`~featkit.finetune.FineTuner`) scored on the same splits, with the same metrics and
the same :class:`~featkit.evaluate.rows.ScoreRow`, as the classifiers fitted on extracted
features, so that tables, reports and charts treat it like any other method.

``compare`` gives each ``cnn`` extractor's network to the ``finetune`` classifier: the row
``cnn + finetune`` is that network fine-tuned, next to ``cnn + svm`` on its frozen features.
"""

from __future__ import annotations

import inspect
import logging
import os
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
from sklearn.base import clone
from sklearn.utils import get_tags

from featkit.data import Dataset
from featkit.evaluate.metrics import classification_scores
from featkit.evaluate.protocols import Split
from featkit.evaluate.rows import ScoreRow, method_name, row_identity
from featkit.exceptions import InvalidParameterError
from featkit.extractors.base import Extractor

logger = logging.getLogger(__name__)

__all__ = [
    "BACKBONE_PARAMS",
    "describe_learners",
    "image_split",
    "learner_for_extractor",
    "learns_from_images",
    "refuse_image_learners",
    "score_images",
]

#: The parameters a learner takes from the ``cnn`` extractor whose network it fine-tunes.
BACKBONE_PARAMS = ("model", "pretrained", "checkpoint", "image_size", "device")


def learns_from_images(estimator: Any) -> bool:
    """Whether ``estimator`` fits on images rather than on feature rows: scikit-learn's
    ``input_tags.two_d_array`` tag is False, as :class:`~featkit.finetune.FineTuner` sets."""
    try:
        return not get_tags(estimator).input_tags.two_d_array
    except (AttributeError, TypeError, ValueError):  # not a scikit-learn estimator
        return False


def refuse_image_learners(classifiers: Mapping[str, Any]) -> None:
    """Raise a clear error for a classifier of ``classifiers`` that trains on images, where
    only features are at hand."""
    for name, estimator in classifiers.items():
        if learns_from_images(estimator):
            raise InvalidParameterError(
                f"classifier {name!r} trains a network on images, not on feature rows: "
                "use it in compare, which has the images (it fine-tunes each cnn "
                "extractor's network)"
            )


def learner_for_extractor(
    extractor: Extractor,
    learner: Any,
    *,
    verbose: bool | None = None,
    say: Callable[[str], None] | None = None,
) -> Any | None:
    """An unfitted copy of ``learner`` that fine-tunes ``extractor``'s network: its model,
    pretrained weights or checkpoint, input size and device (``BACKBONE_PARAMS``); None when
    ``extractor`` is not a ``cnn`` extractor. ``verbose`` (when not None) sets the learner's
    progress bar. A backbone parameter the learner was given that differs from the
    extractor's is replaced, and ``say`` is told: the row names the extractor's network."""
    from featkit.extractors.cnn import CNNExtractor

    if not isinstance(extractor, CNNExtractor):
        return None
    say = say or logger.info
    mine = learner.get_params(deep=False)
    theirs = extractor.get_params(deep=False)
    defaults = _defaults(type(learner))
    backbone = {}
    for key in BACKBONE_PARAMS:
        if key not in mine or key not in theirs:
            continue
        if key == "device" and theirs[key] == "mps":
            continue  # the cnn extractor runs on Apple GPUs; the trainer does not
        if mine[key] != theirs[key] and mine[key] != defaults.get(key, mine[key]):
            say(
                f"{type(learner).__name__}({key}={mine[key]!r}) replaced by the extractor's "
                f"{key}={theirs[key]!r}: the row fine-tunes the extractor's network"
            )
        backbone[key] = theirs[key]
    out = clone(learner).set_params(**backbone)
    if verbose is not None and "verbose" in mine:
        out.set_params(verbose=verbose)
    return out


def _defaults(cls: type) -> dict[str, Any]:
    return {
        name: p.default
        for name, p in inspect.signature(cls.__init__).parameters.items()
        if p.default is not inspect.Parameter.empty
    }


def image_split(split: Split, feature_ids: np.ndarray, dataset: Dataset) -> Split:
    """``split``, whose rows index features with ids ``feature_ids``, in rows of ``dataset``:
    the images the features came from (those an extractor could not use stay out)."""
    position = {image_id: i for i, image_id in enumerate(dataset.ids.tolist())}

    def rows(idx: np.ndarray) -> np.ndarray:
        return np.array([position[i] for i in feature_ids[idx].tolist()], dtype=np.int64)

    return Split(split.name, rows(split.train), rows(split.test), rows(split.fit), split.info)


def score_images(
    dataset: Dataset,
    split: Split,
    learners: Mapping[str, Any],
    *,
    protocol: str,
    extractor: str,
    aligner: str = "none",
    target_images: Sequence[Any] | None = None,
    log: Callable[[str], None] | None = None,
) -> list[ScoreRow]:
    """Fit each learner on the split's training images of ``dataset``, score its test images.

    ``split`` indexes the images of ``dataset``; ``learners`` are unfitted, ``{classifier
    name: learner}`` (each is cloned, the given objects stay unfitted). The rows have the
    fields of :func:`~featkit.evaluate.scoring.score_split`'s: ``dim`` is the embedding
    the head reads, ``fit_s`` and ``predict_s`` include reading and preprocessing the
    images, ``chosen`` holds the epoch kept when a validation split chose it.
    ``target_images`` (unlabelled images of the target domain, for deep domain adaptation)
    go to ``fit`` when given. Rows are not cached: fine-tuning is retrained on every run.
    """
    train, test = dataset.subset(split.train), dataset.subset(split.test)
    rows = []
    for name, learner in learners.items():
        identity = row_identity(
            split, extractor=extractor, aligner=aligner, classifier=name, protocol=protocol
        )
        if log is not None:
            log(f"  {method_name(identity)} [{split.name}]: training on {len(train)} images ...")
        outcome = _fit_and_score(clone(learner), train, test, dataset.class_names, target_images)
        rows.append(ScoreRow(**identity, **outcome))
        if log is not None:
            chosen = "".join(f", {k}={v:.3g}" for k, v in outcome["chosen"].items())
            log(
                f"  {rows[-1].method} [{split.name}]: accuracy {outcome['accuracy']:.4f} "
                f"(fit {outcome['fit_s']:.1f}s{chosen})"
            )
    return rows


def _fit_and_score(
    learner: Any,
    train: Dataset,
    test: Dataset,
    class_names: Sequence[str],
    target_images: Sequence[Any] | None,
) -> dict[str, Any]:
    # Integer labels in, integer labels out: the metrics index class_names with them.
    extra = {} if target_images is None else {"target_images": target_images}
    t0 = time.perf_counter()
    learner.fit(train.items, train.labels, **extra)
    t1 = time.perf_counter()
    pred = np.asarray(learner.predict(test.items))
    t2 = time.perf_counter()
    return {
        "n_train": len(train),
        "n_test": len(test),
        "dim": _embedding_dim(learner),
        "fit_s": round(t1 - t0, 4),
        "predict_s": round(t2 - t1, 4),
        "chosen": _chosen(learner),
        **classification_scores(test.labels, pred, class_names),
        "test_ids": test.ids.tolist(),
        "y_true": test.labels.tolist(),
        "y_pred": pred.tolist(),
    }


def _embedding_dim(learner: Any) -> int:
    """The width of the embedding the fitted learner's head reads (0 when unknown)."""
    head = getattr(getattr(learner, "model_", None), "head", None)
    return int(getattr(head, "in_features", getattr(learner, "n_features_in_", 0)))


def _chosen(learner: Any) -> dict[str, float]:
    """The epoch a validation split chose (early stopping keeps the best one's weights)."""
    if getattr(learner, "best_val_accuracy_", None) is None:
        return {}
    return {"epoch": float(learner.best_epoch_)}


def describe_learners(learners: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    """``{"image_learners": {method: parameters}}`` for the provenance, when there are any:
    the description of a preset does not say which network it fine-tuned."""
    described = {
        f"{extractor} + {classifier}": {
            k: str(v) if isinstance(v, os.PathLike) else v
            for k, v in learner.get_params(deep=False).items()
        }
        for extractor, by_name in learners.items()
        for classifier, learner in by_name.items()
    }
    return {"image_learners": described} if described else {}

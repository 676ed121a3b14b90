"""Score classifiers on features under a protocol: one tidy row per classifier and split."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from typing import Any

import numpy as np
from sklearn.base import ClassifierMixin, clone

from featkit.classify.presets import make_classifier
from featkit.evaluate.image_learners import refuse_image_learners
from featkit.evaluate.metrics import classification_scores
from featkit.evaluate.projection import check_view, project_2d
from featkit.evaluate.protocols import Protocol, Split, make_protocol
from featkit.evaluate.provenance import job_provenance
from featkit.evaluate.results import EvaluationResult
from featkit.evaluate.retrieval import retrieval_examples
from featkit.evaluate.rows import ScoreRow, method_name, row_identity
from featkit.evaluate.score_cache import ScoreCache
from featkit.exceptions import InvalidParameterError
from featkit.features import FeatureSet
from featkit.hardware import describe_runtime

logger = logging.getLogger(__name__)

#: Training sets at least this big (rows x dims) get a line before their fit, not only after.
LARGE_FIT = 20_000_000
#: Test rows are predicted in chunks of at most this many bytes: a pipeline's scaler copies
#: what it is given (2,300 test Fisher vectors of the published recipe are 3 GB).
PREDICT_BYTES = 2**28

ClassifierSpec = Sequence[str] | Mapping[str, ClassifierMixin]

__all__ = ["evaluate_features", "resolve_classifiers", "score_split"]


def resolve_classifiers(
    classifiers: ClassifierSpec, *, seed: int = 0, images: bool = False
) -> dict[str, ClassifierMixin]:
    """``{name: unfitted estimator}`` from preset names or a ``{name: estimator}`` mapping.

    Unknown preset names fail here, before any extraction or fitting, and so do learners
    that train on images (``finetune``) unless the job has the images (``images=True``).
    """
    if isinstance(classifiers, Mapping):
        out = dict(classifiers)
    else:
        out = {name: make_classifier(name, seed=seed) for name in classifiers}
    if not out:
        raise InvalidParameterError("no classifiers to evaluate")
    if not images:
        refuse_image_learners(out)
    return out


def score_split(
    features: FeatureSet,
    split: Split,
    classifiers: Mapping[str, ClassifierMixin],
    *,
    protocol: str,
    extractor: str,
    aligner: str = "none",
    cache: ScoreCache | None = None,
    log: Callable[[str], None] | None = None,
) -> list[ScoreRow]:
    """Fit each classifier on the split's training rows of ``features``, score the test rows.

    ``split`` indexes the rows of ``features``. Returns one tidy row per classifier with the
    scikit-learn metrics, fit and predict times, and the hyper-parameters a sweep chose.
    With a ``cache``, a classifier already scored on the same features is not refitted.
    """
    refuse_image_learners(classifiers)  # they would fail on feature rows, less clearly
    # The training rows are gathered for the fit; the test rows are read where they are, a
    # chunk at a time (2,300 Fisher vectors of the published recipe would be a 3 GB copy).
    train, test = features.subset(split.train), split.test
    data_key = None if cache is None else cache.data_key(train, features, test)
    rows = []
    for name, estimator in classifiers.items():
        identity = row_identity(
            split, extractor=extractor, aligner=aligner, classifier=name, protocol=protocol
        )
        key = None if cache is None else cache.key(data_key, estimator)
        outcome = None if cache is None else cache.get(key)
        if outcome is not None and "y_pred" not in outcome:
            outcome = None  # cached before rows kept their predictions: refit once, re-cache
        cached = outcome is not None
        if outcome is None:
            outcome = _fit_and_score(estimator, train, features, test, identity, log)
            if cache is not None:
                cache.put(key, outcome)
        # The cache keys the features, not the ids: the same pixels under other names score
        # alike, so the ids and true labels come from this split, the predictions in order.
        images = {"test_ids": features.ids[test].tolist(), "y_true": features.y[test].tolist()}
        rows.append(ScoreRow(**identity, **outcome, **images))
        if log is not None:
            chosen = "".join(f", {k}={v:.3g}" for k, v in outcome["chosen"].items())
            how = "cached" if cached else f"fit {outcome['fit_s']:.1f}s"
            log(
                f"  {rows[-1].method} [{split.name}]: accuracy {outcome['accuracy']:.4f} "
                f"({how}{chosen})"
            )
    return rows


def _fit_and_score(
    estimator: ClassifierMixin,
    train: FeatureSet,
    features: FeatureSet,
    test: np.ndarray,
    identity: dict[str, Any],
    log: Callable[[str], None] | None,
) -> dict[str, Any]:
    """Fit a clone of ``estimator`` on ``train``, score it on the ``test`` rows of ``features``."""
    clf = clone(estimator)
    if log is not None and train.X.size >= LARGE_FIT:
        log(
            f"  {method_name(identity)} [{identity['split']}]: "
            f"fitting on {len(train)} x {train.dim} ..."
        )
    t0 = time.perf_counter()
    clf.fit(train.X, train.y)
    t1 = time.perf_counter()
    pred = _predict_in_chunks(clf, features.X, test)
    t2 = time.perf_counter()
    return {
        "n_train": len(train),
        "n_test": len(test),
        "dim": train.dim,
        "fit_s": round(t1 - t0, 4),
        "predict_s": round(t2 - t1, 4),
        "chosen": _chosen_params(clf),
        **classification_scores(features.y[test], pred, features.class_names),
        "y_pred": np.asarray(pred).tolist(),
    }


def _predict_in_chunks(clf: Any, X: np.ndarray, rows: np.ndarray | None = None) -> np.ndarray:
    """``clf.predict(X[rows])`` (all of ``X`` by default), gathering a chunk of at most
    ``PREDICT_BYTES`` at a time."""
    rows = np.arange(len(X)) if rows is None else np.asarray(rows)
    step = max(1, PREDICT_BYTES // max(1, X[:1].nbytes))
    if len(rows) <= step:
        return np.asarray(clf.predict(X[rows]))
    parts = [clf.predict(X[rows[i : i + step]]) for i in range(0, len(rows), step)]
    return np.concatenate(parts)


def _chosen_params(clf: Any) -> dict[str, float]:
    """What a sweep chose (``best_params_``), found on the estimator or a pipeline step."""
    steps = [s for _, s in clf.steps] if hasattr(clf, "steps") else [clf]
    for step in steps:
        best = getattr(step, "best_params_", None)
        if best:
            return {k: float(v) for k, v in best.items()}
    return {}


def evaluate_features(
    features: FeatureSet | Mapping[str, FeatureSet],
    classifiers: ClassifierSpec = ("knn", "svm", "probe"),
    protocol: str | Protocol = "holdout",
    *,
    test_size: float = 0.25,
    seed: int = 0,
    view: str | None = "pca",
    log: Callable[[str], None] | None = None,
) -> EvaluationResult:
    """Score ``classifiers`` under ``protocol`` on features extracted earlier.

    ``features`` is one FeatureSet or ``{name: FeatureSet}`` (several extractors on the
    same images: all are scored on the images they share, with the same splits, so the
    comparison is paired). Upstream fitting (codebooks) was done at extraction, so the
    protocol's ``fit`` rows are not used. Unlabelled rows (label -1) are left out.
    """
    say = log or logger.info
    check_view(view)  # fail now, not after the extraction and the fits
    sets = dict(features) if isinstance(features, Mapping) else {_name(features): features}
    if not sets:
        raise InvalidParameterError("no features to evaluate")
    proto = make_protocol(protocol, seed=seed, test_size=test_size)
    estimators = resolve_classifiers(classifiers, seed=seed)
    sets = _paired(sets, say)
    first = next(iter(sets.values()))
    splits = proto.splits(first.y, first.splits, first.domains)
    rows: list[ScoreRow] = []
    views = {}
    retrieval = {}
    for name, fs in sets.items():
        config = fs.provenance.get("extractor") or {}
        if config.get("runtime"):
            machine = fs.provenance.get("machine")
            say(f"{name} was extracted in {describe_runtime(config['runtime'], machine)}")
        if config.get("state") is not None and proto.name != "holdout":
            say(
                f"{name} learned from images (a codebook) when it was extracted: under "
                f"{proto.name}, that fit may have seen the test rows of some splits"
            )
        extract_s = fs.provenance.get("timing", {}).get("seconds", 0.0)
        for split in splits:
            part = score_split(fs, split, estimators, protocol=proto.name, extractor=name, log=log)
            rows += [replace(row, extract_s=extract_s) for row in part]
        if view is not None:
            views[name] = project_2d(fs.X, fs.y, view, seed, ids=fs.ids)
        if splits:
            retrieval[name] = retrieval_examples(fs, splits[0], seed=seed)
    dataset = dict(first.provenance.get("dataset", {}))
    dataset.setdefault("name", "features")
    dataset["class_names"] = list(first.class_names)
    dataset["n_images"] = len(first)
    provenance = job_provenance(
        "evaluate",
        dataset=dataset,
        protocol=proto,
        n_splits=len(splits),
        extractors={n: fs.provenance.get("extractor") for n, fs in sets.items()},
        estimators=estimators,
        seed=seed,
        machines={n: fs.provenance.get("machine") for n, fs in sets.items()},
    )
    return EvaluationResult(rows=rows, provenance=provenance, views=views, retrieval=retrieval)


def _paired(sets: dict[str, FeatureSet], say: Callable[[str], None]) -> dict[str, FeatureSet]:
    """The labelled rows every set shares, in the first set's order (a paired comparison)."""
    labelled = {n: fs.subset(fs.y >= 0) if (fs.y < 0).any() else fs for n, fs in sets.items()}
    if len(labelled) == 1:
        return labelled
    common = set.intersection(*(set(fs.ids.tolist()) for fs in labelled.values()))
    order = [i for i in next(iter(labelled.values())).ids.tolist() if i in common]
    out = {}
    for name, fs in labelled.items():
        position = {image_id: k for k, image_id in enumerate(fs.ids.tolist())}
        if len(order) < len(fs):
            say(f"{name}: scoring the {len(order)} of its {len(fs)} images every set has")
        out[name] = fs.subset(np.array([position[i] for i in order], dtype=np.int64))
    if not order:
        raise InvalidParameterError("the feature sets share no image ids: nothing to compare")
    return out


def _name(features: FeatureSet) -> str:
    return str(features.provenance.get("extractor", {}).get("name", "features"))

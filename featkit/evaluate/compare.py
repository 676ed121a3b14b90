"""The compare job: extractors x classifiers on one data set, under one protocol.

Features are extracted once per extractor, or once per distinct set of training images for
extractors that learn from images (a BoVW codebook is fitted on the training rows of each
split, never on test rows), then every classifier is fitted and scored on every split.
A classifier that trains on images (``finetune``) fine-tunes each ``cnn`` extractor's
network on the same split's training images instead (:mod:`featkit.evaluate.image_learners`).
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from typing import Any

import numpy as np

from featkit.data import Dataset, load_dataset
from featkit.evaluate.extraction import announce_runtimes, extract_for_splits
from featkit.evaluate.image_learners import (
    describe_learners,
    image_split,
    learner_for_extractor,
    learns_from_images,
    score_images,
)
from featkit.evaluate.projection import check_view, project_2d
from featkit.evaluate.protocols import Protocol, make_protocol
from featkit.evaluate.provenance import job_provenance
from featkit.evaluate.results import EvaluationResult, image_sources
from featkit.evaluate.retrieval import retrieval_examples
from featkit.evaluate.rows import ScoreRow
from featkit.evaluate.score_cache import ScoreCache
from featkit.evaluate.scoring import ClassifierSpec, resolve_classifiers, score_split
from featkit.exceptions import (
    ExtractorNotFoundError,
    InvalidParameterError,
    PluginLoadError,
)
from featkit.extractors.base import Extractor, set_decode
from featkit.registry import create_extractor, list_extractors

logger = logging.getLogger(__name__)

__all__ = [
    "DEFAULT_CLASSIFIERS",
    "DEFAULT_EXTRACTORS",
    "compare",
    "default_extractors",
    "resolve_extractors",
]

#: Extractors compared by default, in this order, when they are installed.
DEFAULT_EXTRACTORS = ("pixels", "hog", "dsift-bovw", "cnn")
DEFAULT_CLASSIFIERS = ("knn", "svm", "probe")
#: Images at most this many pixels on a side count as tiny (digits, MNIST, USPS, CIFAR).
TINY_SIDE = 32


def default_extractors(dataset: Dataset | None = None) -> dict[str, Extractor]:
    """The default extractors that are installed, sized for ``dataset``'s images.

    For tiny in-memory images (at most 32 px a side) HOG runs on 32 x 32 images with
    4-px cells, dense SIFT on 64 x 64 images (8-px bins every 8 px, 256 words) and the CNN
    at 96 px: upsampling 8 px digits to 128 or 224 px costs time and adds nothing. Measured
    on digits: the CNN at 96 px beats 224 px by 3 points of k-NN accuracy and runs 4x
    faster; dense SIFT gains 2 points and runs 10x faster. Other images keep each
    extractor's defaults.
    """
    side = _array_side(dataset)
    tiny = side is not None and side <= TINY_SIDE
    params: dict[str, dict[str, Any]] = {
        "hog": {"size": (32, 32), "pixels_per_cell": (4, 4)} if tiny else {},
        "dsift-bovw": (
            {
                "local__size": (64, 64),
                "local__step": 8,
                "local__bin_sizes": (8,),
                "n_words": 256,
            }
            if tiny
            else {}
        ),
        "cnn": {"image_size": 96} if tiny else {},
    }
    available = set(list_extractors())
    return {
        name: create_extractor(name, **params.get(name, {}))
        for name in DEFAULT_EXTRACTORS
        if name in available
    }


def _array_side(dataset: Dataset | None) -> int | None:
    items = None if dataset is None else dataset.items
    if isinstance(items, np.ndarray) and items.ndim >= 3:
        return int(max(items.shape[1:3]))
    return None


def compare(
    data: str | os.PathLike | Dataset = "digits",
    extractors: Sequence[str] | Mapping[str, Extractor] | None = None,
    classifiers: ClassifierSpec = DEFAULT_CLASSIFIERS,
    *,
    protocol: str | Protocol = "holdout",
    test_size: float = 0.25,
    seed: int = 0,
    n_jobs: int | None = None,
    device: str | None = None,
    decode: str | None = None,
    cache_dir: str | os.PathLike | None = None,
    progress: bool | None = None,
    view: str | None = "pca",
    log: Callable[[str], None] | None = None,
) -> EvaluationResult:
    """Extract features with each extractor, then fit and score each classifier on each
    split of ``protocol``.

    Parameters
    ----------
    data : spec or Dataset
        What :func:`featkit.load_dataset` accepts; default scikit-learn's ``digits``.
    extractors : names, {name: extractor}, or None
        None: :func:`default_extractors`; those not installed are skipped with a message.
    classifiers : names or {name: estimator}
        Presets (``knn``, ``svm``, ``rbf-svm``, ``logreg``, ``probe``, ``finetune``) or your
        estimators. ``finetune`` (or your :class:`~featkit.finetune.FineTuner`, whose
        backbone parameters are replaced by the extractor's) fine-tunes each ``cnn``
        extractor's network on the training images; other extractors get no such row.
    protocol : str or Protocol
        ``holdout``, ``kfold[:K]``, ``fewshot[:N[xR]]``, ``perclass[:N[xR][/T]]``,
        ``domains`` (see :mod:`featkit.evaluate.protocols`).
    test_size, seed : float, int
        Held-out share (when the data set has no split) and the seed of everything random.
    n_jobs : int, optional
        Extraction workers (see :func:`featkit.extract`).
    device : str, optional
        Device of extractors that have one (``cnn``): ``cpu``, ``cuda``, ``auto``.
    decode : {"reduced", "exact"}, optional
        How the extractors decode large JPEGs (:func:`featkit.extractors.base.set_decode`);
        None keeps each one's own ``decode`` parameter ("reduced" by default).
    cache_dir : path, optional
        Feature and score cache: a re-run skips the extraction, and the classifiers already
        scored on the same features and splits.
    view : {"pca", "tsne", None}
        The 2-D projection of each extractor's features for the report.
    log : callable, optional
        Receives progress lines (default: this module's logger).
    """
    say = log or logger.info
    check_view(view)  # fail now, not after the extraction and the fits
    dataset = data if isinstance(data, Dataset) else load_dataset(data)
    unlabelled = int((dataset.labels < 0).sum())
    if unlabelled:
        say(f"leaving out {unlabelled} unlabelled images: they can be neither trained nor scored")
        dataset = dataset.subset(dataset.labels >= 0)
    proto = make_protocol(protocol, seed=seed, test_size=test_size)
    splits = proto.splits(dataset.labels, dataset.splits, dataset.domains)
    estimators = resolve_classifiers(classifiers, seed=seed, images=True)
    on_features = {n: e for n, e in estimators.items() if not learns_from_images(e)}
    on_images = {n: e for n, e in estimators.items() if learns_from_images(e)}
    chosen, skipped = resolve_extractors(extractors, dataset=dataset, say=say)
    leave_out_local(chosen, skipped, say)
    if device is not None:
        for extractor in chosen.values():
            if "device" in extractor.get_params():
                extractor.set_params(device=device)
    learners = _image_learners(chosen, on_images, on_features, progress, say)
    if on_images and cache_dir is not None:
        say(f"{', '.join(on_images)}: not cached, retrained on every run")
    if decode is not None:
        for name, extractor in chosen.items():
            if not set_decode(extractor, decode):
                say(f"{name} decodes every image at full size (decode={decode!r} does not apply)")
    say(f"{dataset.name}: {len(dataset)} images, {proto.name}: {proto.describe()}")
    announce_runtimes(chosen, say)

    rows: list[ScoreRow] = []
    configs: dict[str, Any] = {}
    views: dict[str, dict[str, Any]] = {}
    retrieval: dict[str, dict[str, Any]] = {}
    kwargs = {"n_jobs": n_jobs, "cache_dir": cache_dir, "progress": progress}
    scores = None if cache_dir is None else ScoreCache(cache_dir)
    for name, extractor in chosen.items():
        if not on_features and not learners.get(name):
            continue  # nothing to score on its features
        extract_s = 0.0
        name_rows: list[ScoreRow] = []
        image_rows: list[ScoreRow] = []
        for part in extract_for_splits(name, extractor, dataset, splits, say=say, **kwargs):
            extract_s += part.seconds
            configs[name] = part.extractor.config
            features = part.features
            failed = len(features.failed)
            for split in part.splits:
                if on_features:
                    scored = score_split(
                        features,
                        split,
                        on_features,
                        protocol=proto.name,
                        extractor=name,
                        cache=scores,
                        log=say,
                    )
                    name_rows += [replace(row, n_failed=failed) for row in scored]
                if learners.get(name):
                    # The images whose features the other classifiers of this split saw.
                    tuned = score_images(
                        dataset,
                        image_split(split, features.ids, dataset),
                        learners[name],
                        protocol=proto.name,
                        extractor=name,
                        log=say,
                    )
                    image_rows += [replace(row, n_failed=failed) for row in tuned]
            if view is not None and name not in views:
                views[name] = project_2d(features.X, features.y, view, seed, ids=features.ids)
            if name not in retrieval and part.splits:
                retrieval[name] = retrieval_examples(features, part.splits[0], seed=seed)
        # A fine-tuned network reads the images, not the extracted features: its time is
        # its fit_s, and its extract_s stays 0.
        rows += [replace(row, extract_s=round(extract_s, 3)) for row in name_rows] + image_rows

    provenance = job_provenance(
        "compare",
        dataset=dataset.describe(),
        protocol=proto,
        n_splits=len(splits),
        extractors=configs,
        estimators=estimators,
        seed=seed,
        unlabelled_left_out=unlabelled,
        label_counts=np.bincount(dataset.labels, minlength=dataset.n_classes).tolist(),
        **describe_learners(learners),
    )
    return EvaluationResult(
        rows=rows,
        provenance=provenance,
        skipped=skipped,
        views=views,
        retrieval=retrieval,
        images=image_sources(dataset),
    )


def _image_learners(
    chosen: Mapping[str, Extractor],
    on_images: Mapping[str, Any],
    on_features: Mapping[str, Any],
    progress: bool | None,
    say: Callable[[str], None],
) -> dict[str, dict[str, Any]]:
    """``{extractor: {classifier: learner}}``: each image learner set up to fine-tune each
    ``cnn`` extractor's network; other extractors get none, with one line saying so. An
    error when that leaves nothing to score."""
    if not on_images:
        return {}
    # The learner's bar follows compare's progress bars: None, only on a terminal.
    verbose = progress if progress is not None else sys.stderr.isatty()
    out: dict[str, dict[str, Any]] = {}
    for name, extractor in chosen.items():
        mine = {
            c: learner_for_extractor(extractor, learner, verbose=verbose, say=say)
            for c, learner in on_images.items()
        }
        out[name] = {c: learner for c, learner in mine.items() if learner is not None}
        if not out[name]:
            say(
                f"{', '.join(on_images)}: no row for {name} (it fine-tunes a cnn extractor's "
                "network)"
            )
    if not on_features and not any(out.values()):
        raise InvalidParameterError(
            f"{', '.join(on_images)} fine-tunes a cnn extractor's network, and none of "
            f"{', '.join(chosen)} is one: add cnn to the extractors, or a feature classifier"
        )
    return out


def resolve_extractors(
    extractors: Sequence[str] | Mapping[str, Extractor] | None,
    params: Mapping[str, Mapping[str, Any]] | None = None,
    dataset: Dataset | None = None,
    say: Callable[[str], None] | None = None,
) -> tuple[dict[str, Extractor], dict[str, str]]:
    """The extractors to compare by name, and the names skipped with the reason.

    ``extractors``: names (each built with its ``params``; one that is not installed is
    skipped), ``{name: extractor}`` (used as given) or None (:func:`default_extractors` for
    ``dataset``; a default that is not registered is skipped). ``params``:
    ``{name: {key: value}}`` for the named extractors, or set on the given or default ones;
    naming one that is not compared raises InvalidParameterError (in the words of the
    command line's ``-p NAME.KEY=VALUE``). ``say`` receives ``skipping NAME: WHY`` for each
    skipped name (default: this module's logger).
    """
    say = say or logger.info
    params = params or {}
    skipped: dict[str, str] = {}

    def skip(name: str, why: str) -> None:
        # Said at once: a later extractor's bad parameter must not hide what was skipped.
        skipped[name] = why
        say(f"skipping {name}: {why}")

    if extractors is None:
        chosen = default_extractors(dataset)
        for name in DEFAULT_EXTRACTORS:
            if name not in chosen:
                skip(name, "not registered in this installation")
    elif isinstance(extractors, Mapping):
        chosen = dict(extractors)
    else:
        chosen = {}
        for name in extractors:
            try:
                chosen[name] = create_extractor(name, **params.get(name, {}))
            except (ExtractorNotFoundError, PluginLoadError) as exc:
                skip(name, str(exc))
    for name, values in params.items():
        if name in skipped:
            continue  # asked for but not installed: skipped, not an error
        if name not in chosen:
            raise InvalidParameterError(f"-p {name}.KEY: {name!r} is not compared")
        if extractors is None or isinstance(extractors, Mapping):
            chosen[name].set_params(**values)  # named ones were built with their params
    return chosen, skipped


def leave_out_local(
    chosen: dict[str, Extractor],
    skipped: dict[str, str],
    say: Callable[[str], None],
    job: str = "compare",
) -> None:
    """Move local extractors from ``chosen`` to ``skipped``, saying so: ``job`` (compare,
    rank) takes one vector per image; raise when nothing is left to ``job``."""
    for name, extractor in list(chosen.items()):
        if extractor.kind == "local":
            skipped[name] = f"local descriptors: {job} an encoding of them, e.g. {name}-bovw"
            say(f"skipping {name}: {skipped[name]}")
            del chosen[name]
    if not chosen:
        raise InvalidParameterError(f"no extractor to {job}: {skipped or 'none given'}")

"""The adapt job: train on one domain, test on another, with and without alignment.

Features are extracted once (or once per source domain for extractors that learn from
images), then for every ordered pair of domains and every aligner, the aligner is fitted
on the source rows and the unlabelled target rows, each classifier is trained on the
aligned source and scored on the aligned target: the domain-pair matrix of domain
adaptation papers, one row per method.

Deep domain adaptation (``dann``, ``deep-coral``, ``mmd``) sits beside the aligners: the
``cnn`` extractor's network is fine-tuned on the source images towards the unlabelled
target images (:class:`~featkit.finetune.FineTuner` with ``adapt=``), and its own head is
scored on the target: the row ``cnn + dann + finetune``. The ``finetune`` classifier with
the ``none`` aligner is the same fine-tuning without the adaptation loss, its control.

With ``select=SCORER``, each aligner's parameters are chosen per shift among its default
grid (:data:`featkit.align.selection.DEFAULT_GRIDS`) by a label-free scorer
(:func:`featkit.align.selection.select_params`): the target labels are not read. The
chosen parameters are in each row's ``chosen``, as ``ALIGNER.PARAM``.
"""

from __future__ import annotations

import logging
import os
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from typing import Any

import numpy as np
from sklearn.base import clone

from featkit.align import ALIGNER_DESCRIPTIONS, ALIGNERS, Aligner, make_aligner
from featkit.align.selection import (
    DEFAULT_GRIDS,
    DEFAULT_SCORER,
    SCORER_DESCRIPTIONS,
    make_scorer,
    select_params,
)
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
from featkit.evaluate.protocols import DomainPairs, Split
from featkit.evaluate.provenance import job_provenance
from featkit.evaluate.results import EvaluationResult, image_sources
from featkit.evaluate.retrieval import retrieval_examples
from featkit.evaluate.rows import ScoreRow
from featkit.evaluate.score_cache import ScoreCache
from featkit.evaluate.scoring import ClassifierSpec, resolve_classifiers, score_split
from featkit.exceptions import InvalidParameterError
from featkit.extractors.base import Extractor, set_decode
from featkit.features import FeatureSet
from featkit.registry import create_extractor

logger = logging.getLogger(__name__)

__all__ = [
    "DEEP_METHODS",
    "DEFAULT_ALIGNERS",
    "adapt",
    "make_adaptation",
    "source_target_dataset",
]

DEFAULT_ALIGNERS = ("none", "coral", "sa")
#: Deep domain adaptation methods, by ``FineTuner(adapt=...)`` name (featkit.finetune.domain).
DEEP_METHODS = ("dann", "deep-coral", "mmd")
#: What a deep method's row is scored with: the fine-tuned network's own head.
DEEP_CLASSIFIER = "finetune"
DEEP_DESCRIPTION = (
    "the cnn extractor's network fine-tuned on the source images towards the unlabelled "
    "target images (featkit.finetune), scored with its own head"
)
#: The view drawn for "before alignment".
BEFORE = "none"

AlignerSpec = Sequence[str] | Mapping[str, Any]


def adapt(
    data: str | os.PathLike | Dataset | None = None,
    *,
    source: str | os.PathLike | Dataset | None = None,
    target: str | os.PathLike | Dataset | None = None,
    extractor: str | Extractor = "cnn",
    aligners: AlignerSpec = DEFAULT_ALIGNERS,
    classifiers: ClassifierSpec = ("svm",),
    pairs: Sequence[tuple[str, str]] | None = None,
    seed: int = 0,
    n_jobs: int | None = None,
    device: str | None = None,
    decode: str | None = None,
    cache_dir: str | os.PathLike | None = None,
    progress: bool | None = None,
    view: str | None = "pca",
    log: Callable[[str], None] | None = None,
    select: str | None = None,
) -> EvaluationResult:
    """Score ``classifiers`` on every domain shift of ``data``, after each aligner.

    Parameters
    ----------
    data : spec or Dataset, optional
        A data set with domains (a ``root/domain/class/*`` folder, a manifest with a
        domain column): every ordered pair of its domains is a shift.
    source, target : spec or Dataset, optional
        Instead of ``data``: two data sets with the same class names (one shift).
    extractor : name or Extractor
        The features to align (``cnn``, ``hog`` ...).
    aligners : names or {name: aligner}
        ``none`` (no alignment), ``pca``, ``lda``, ``sa``, ``coral``, ``tca``, ``jda``, ``gfk``
        (:func:`featkit.align.make_aligner`), or your own aligners by name; and the deep
        methods ``dann``, ``deep-coral``, ``mmd`` (or your
        :class:`~featkit.finetune.FineTuner` with ``adapt`` set), which fine-tune a ``cnn``
        extractor's network towards the target images (:func:`make_adaptation`) and are
        scored with its own head (classifier ``finetune``).
    classifiers : names or {name: estimator}
        Presets (``svm``, ``logreg``, ``knn``, ``probe``, ``rbf-svm``) or your estimators;
        trained on the (aligned) source only. ``finetune`` fine-tunes the ``cnn``
        extractor's network on the source images alone (rows of the ``none`` aligner): the
        control of the deep methods.
    pairs : [(source, target)], optional
        The shifts to run (default: every ordered pair of domains).
    seed, n_jobs, device, decode, cache_dir, progress, view, log
        As for :func:`featkit.evaluate.compare`. ``view`` draws source and target features of the
        first shift in 2-D before and after each aligner.
    select : scorer name, optional
        Choose each aligner's parameters per shift, without target labels, by this
        label-free scorer (``default``, ``importance-weighted``, ``entropy``, ``snd``,
        ``dev``, ``circular``, ``mixval``: :data:`featkit.align.selection.SCORERS`) among
        its grid in :data:`~featkit.align.selection.DEFAULT_GRIDS` (``coral`` reg, ``sa``,
        ``gfk`` and ``pca`` n_components, ``tca`` n_components and mu, ``jda``
        n_components and lam); aligners without a grid keep their parameters.
    """
    say = log or logger.info
    check_view(view)
    if select is not None:
        make_scorer(select, seed=seed)  # an unknown name fails before any extraction
    dataset = _load(data, source, target)
    if data is None and pairs is None:  # a source and a target: that one shift
        pairs = [(str(dataset.domains[0]), str(dataset.domains[-1]))]  # source rows first
    unlabelled = int((dataset.labels < 0).sum())
    if unlabelled:
        say(f"leaving out {unlabelled} unlabelled images: they can be neither trained nor scored")
        dataset = dataset.subset(dataset.labels >= 0)
    protocol = DomainPairs(pairs)
    splits = protocol.splits(dataset.labels, dataset.splits, dataset.domains)
    chosen_aligners, deep = _resolve_aligners(aligners, seed)
    grids = _selection_grids(chosen_aligners) if select is not None else {}
    if select is not None and not grids:
        say(f"select={select}: none of the aligners has a grid to choose from")
    estimators = resolve_classifiers(classifiers, seed=seed, images=True)
    on_features = {n: e for n, e in estimators.items() if not learns_from_images(e)}
    on_images = {n: e for n, e in estimators.items() if learns_from_images(e)}
    name, ex = _resolve_extractor(extractor, device)
    learners = _image_learners(name, ex, chosen_aligners, on_images, deep, progress, say)
    if decode is not None and not set_decode(ex, decode):
        say(f"{name} decodes every image at full size (decode={decode!r} does not apply)")
    say(
        f"{dataset.name}: {len(dataset)} images, domains {', '.join(dataset.domain_names)}; "
        f"{len(splits)} shifts x {len(chosen_aligners)} aligners x {len(on_features)} "
        f"classifiers"
        + (f", and {', '.join(f'{name} + {a}' for a in learners)}" if learners else "")
    )
    announce_runtimes({name: ex}, say)

    rows: list[ScoreRow] = []
    views: dict[str, dict[str, Any]] = {}
    retrieval: dict[str, dict[str, Any]] = {}
    scores = None if cache_dir is None else ScoreCache(cache_dir)
    kwargs = {"n_jobs": n_jobs, "cache_dir": cache_dir, "progress": progress}
    config: dict[str, Any] = {}
    extract_s = 0.0
    view_shift: str | None = None  # the views show the first shift
    image_rows: list[ScoreRow] = []
    for part in extract_for_splits(name, ex, dataset, splits, say=say, **kwargs):
        extract_s += part.seconds
        config = part.extractor.config
        failed = len(part.features.failed)
        for split in part.splits:
            if view is not None and view_shift is None:
                view_shift = split.name
            if not retrieval:  # target images as queries, their nearest source images
                retrieval[name] = retrieval_examples(part.features, split, seed=seed)
            if learners:
                # The images whose features the aligners of this shift saw.
                images = image_split(split, part.features.ids, dataset)
                target_images = dataset.subset(images.test).items
                for aligner_name, learner in learners.items():
                    tuned = score_images(
                        dataset,
                        images,
                        {DEEP_CLASSIFIER: learner},
                        protocol=protocol.name,
                        extractor=name,
                        aligner=aligner_name,
                        target_images=None if aligner_name == BEFORE else target_images,
                        log=say,
                    )
                    image_rows += [replace(row, n_failed=failed) for row in tuned]
            if not on_features:
                continue
            for aligner_name, aligner in chosen_aligners.items():
                started = time.perf_counter()
                picked: dict[str, Any] = {}
                if aligner_name in grids:
                    aligner, picked = _select(
                        part.features, split, aligner, grids[aligner_name], select, seed
                    )
                    described = ", ".join(f"{k}={v}" for k, v in picked.items())
                    say(f"  {split.name} {aligner_name}: {select} chose {described}")
                aligned, local = _align(part.features, split, aligner)
                align_s = time.perf_counter() - started
                scored = score_split(
                    aligned,
                    local,
                    on_features,
                    protocol=protocol.name,
                    extractor=name,
                    aligner=aligner_name,
                    cache=scores,
                    log=say,
                )
                extra = {f"{aligner_name}.{k}": v for k, v in picked.items()}
                rows += [
                    replace(
                        row,
                        align_s=round(align_s, 4),
                        n_failed=failed,
                        chosen={**row.chosen, **extra},
                    )
                    for row in scored
                ]
                if view is not None and split.name == view_shift:
                    _add_views(
                        views, part.features, split, aligner_name, aligned, local, view, seed
                    )
    # A fine-tuned network reads the images, not the extracted features: its extract_s
    # stays 0, its time is its fit_s.
    rows = [replace(row, extract_s=round(extract_s, 3)) for row in rows] + image_rows

    provenance = job_provenance(
        "adapt",
        dataset=dataset.describe(),
        protocol=protocol,
        n_splits=len(splits),
        extractors={name: config},
        estimators=estimators,
        seed=seed,
        unlabelled_left_out=unlabelled,
        aligners={
            **{
                a: _describe_aligner(a, al)
                + ("; its parameters chosen per shift (see selection)" if a in grids else "")
                for a, al in chosen_aligners.items()
            },
            **{m: f"FineTuner(adapt={m!r}): {DEEP_DESCRIPTION}" for m in deep},
        },
        **describe_learners({f"{name} + {a}": {DEEP_CLASSIFIER: lr} for a, lr in learners.items()}),
        **_describe_selection(select, grids),
    )
    return EvaluationResult(
        rows=rows,
        provenance=provenance,
        views=views,
        retrieval=retrieval,
        images=image_sources(dataset),
    )


def source_target_dataset(
    source: str | os.PathLike | Dataset, target: str | os.PathLike | Dataset
) -> Dataset:
    """One data set with two domains, named after the two data sets, from a source and a
    target data set whose class names are the same (in any order)."""
    src = source if isinstance(source, Dataset) else load_dataset(source)
    tgt = target if isinstance(target, Dataset) else load_dataset(target)
    if set(src.class_names) != set(tgt.class_names):
        only_s = sorted(set(src.class_names) - set(tgt.class_names))
        only_t = sorted(set(tgt.class_names) - set(src.class_names))
        raise InvalidParameterError(
            f"source {src.name!r} and target {tgt.name!r} have different classes: "
            f"only in the source {only_s[:5]}, only in the target {only_t[:5]}"
        )
    names = (src.name, tgt.name) if src.name != tgt.name else ("source", "target")
    # The target's labels, renumbered to the source's class order.
    remap = np.array([src.class_names.index(c) for c in tgt.class_names], dtype=np.int64)
    tgt_labels = np.where(tgt.labels >= 0, remap[np.maximum(tgt.labels, 0)], -1)
    items = [*list(src.items), *list(tgt.items)]
    return Dataset(
        items=items,
        labels=np.concatenate([src.labels, tgt_labels]),
        class_names=list(src.class_names),
        ids=np.array([f"{names[0]}/{i}" for i in src.ids] + [f"{names[1]}/{i}" for i in tgt.ids]),
        domains=np.array([names[0]] * len(src) + [names[1]] * len(tgt)),
        name=f"{names[0]}→{names[1]}",
    )


def _load(
    data: str | os.PathLike | Dataset | None,
    source: str | os.PathLike | Dataset | None,
    target: str | os.PathLike | Dataset | None,
) -> Dataset:
    if data is not None and (source is not None or target is not None):
        raise InvalidParameterError("give either data (with domains) or source and target")
    if data is not None:
        dataset = data if isinstance(data, Dataset) else load_dataset(data)
        if dataset.domains is None:
            raise InvalidParameterError(
                f"{dataset.name!r} has no domains: use a root/domain/class/* folder or a "
                "manifest with a domain column, or give source and target separately"
            )
        return dataset
    if source is None or target is None:
        raise InvalidParameterError("adapt needs data with domains, or both source and target")
    return source_target_dataset(source, target)


def make_adaptation(name: str, *, seed: int = 0, **params: Any) -> Any:
    """An aligner (:func:`featkit.align.make_aligner`; None for ``"none"``), or for a deep
    method (``dann``, ``deep-coral``, ``mmd``) an unfitted
    :class:`~featkit.finetune.FineTuner` with the ``finetune`` classifier's settings,
    ``adapt=name`` and ``params`` (FineTuner parameters, e.g. ``epochs=5``)."""
    key = str(name).strip().lower()
    if key not in DEEP_METHODS:
        return make_aligner(key, **params)
    from featkit.classify.presets import FINETUNE_SETTINGS
    from featkit.finetune import FineTuner

    settings = {**FINETUNE_SETTINGS, "random_state": seed, **params, "adapt": key}
    try:
        return FineTuner(**settings)
    except TypeError as error:  # an unknown keyword
        raise InvalidParameterError(f"{key}: {error}") from None


def _resolve_aligners(
    aligners: AlignerSpec, seed: int
) -> tuple[dict[str, Aligner | None], dict[str, Any]]:
    """The shallow aligners by name, and the deep methods' unfitted FineTuners by name."""
    if isinstance(aligners, Mapping):
        given = dict(aligners)
    else:
        given = {str(a).strip().lower(): make_adaptation(a, seed=seed) for a in aligners}
    if not given:
        raise InvalidParameterError("no aligners: give at least 'none'")
    chosen, deep = {}, {}
    for name, aligner in given.items():
        if learns_from_images(aligner):
            if getattr(aligner, "adapt", "none") == "none":
                raise InvalidParameterError(
                    f"aligner {name!r} is a FineTuner without adapt: give it adapt='dann', "
                    "'deep-coral' or 'mmd' (plain fine-tuning is the 'finetune' classifier)"
                )
            deep[name] = aligner
        elif aligner is not None and not isinstance(aligner, Aligner):
            raise InvalidParameterError(
                f"aligner {name!r} is a {type(aligner).__name__}, not a featkit.align.Aligner"
            )
        else:
            chosen[name] = aligner
    return chosen, deep


def _image_learners(
    name: str,
    extractor: Extractor,
    aligners: Mapping[str, Aligner | None],
    on_images: Mapping[str, Any],
    deep: Mapping[str, Any],
    progress: bool | None,
    say: Callable[[str], None],
) -> dict[str, Any]:
    """``{aligner: learner}``: the deep methods and, under the ``none`` aligner, the image
    classifier (plain fine-tuning), each set up to fine-tune the extractor's network."""
    wanted = dict(deep)
    if on_images and BEFORE not in aligners:
        say(f"{', '.join(on_images)}: fine-tunes without alignment, so only with aligner 'none'")
    elif on_images:
        if len(on_images) > 1:
            raise InvalidParameterError(
                f"one classifier that trains on images at most, got {', '.join(on_images)}"
            )
        wanted[BEFORE] = next(iter(on_images.values()))
    if not wanted:
        return {}
    # The learners' bars follow adapt's progress bars: None, only on a terminal.
    verbose = progress if progress is not None else sys.stderr.isatty()
    out = {}
    for method, learner in wanted.items():
        mine = learner_for_extractor(extractor, learner, verbose=verbose, say=say)
        if mine is None:
            what = ", ".join(on_images) if method == BEFORE else method
            raise InvalidParameterError(
                f"{what} fine-tunes a cnn extractor's network; "
                f"{name} is not one (use -e cnn, or a cnn/MODEL alias)"
            )
        out[method] = mine
    return out


def _selection_grids(aligners: Mapping[str, Aligner | None]) -> dict[str, dict[str, list[Any]]]:
    """The grid each aligner's parameters are chosen among, by aligner name: the default
    grid of its name, or of its class's name for an aligner given under another name."""
    out = {}
    for name, aligner in aligners.items():
        if aligner is None:
            continue
        keys = [name] + [k for k, cls in ALIGNERS.items() if type(aligner) is cls]
        key = next((k for k in keys if k in DEFAULT_GRIDS), None)
        if key is not None:
            out[name] = DEFAULT_GRIDS[key]
    return out


def _select(
    features: FeatureSet,
    split: Split,
    aligner: Aligner,
    grid: Mapping[str, list[Any]],
    scorer: str,
    seed: int,
) -> tuple[Aligner, dict[str, Any]]:
    """``aligner`` with the parameters ``scorer`` chose on this shift (no target labels)."""
    source, target = features.subset(split.train), features.subset(split.test)
    best, _ = select_params(
        aligner, source.X, source.y, target.X, scorer=scorer, grid=grid, seed=seed
    )
    return clone(aligner).set_params(**best), best


def _describe_selection(select: str | None, grids: Mapping[str, Any]) -> dict[str, Any]:
    if select is None:
        return {}
    key = str(select).strip().lower()
    key = DEFAULT_SCORER if key == "default" else key
    return {
        "selection": {
            "scorer": key,
            "description": SCORER_DESCRIPTIONS[key],
            "grids": dict(grids),
            "split": "fitted on 2/3 of the labelled source rows (stratified, seed) and every "
            "target row; scored on the other source rows and every target row, unlabelled",
            "classifier": "StandardScaler + LogisticRegression(max_iter=1000) on the aligned "
            "features; the chosen parameters then serve every classifier",
        }
    }


def _describe_aligner(name: str, aligner: Aligner | None) -> str:
    """The preset's description when ``aligner`` is that preset unchanged, else its repr."""
    if aligner is None:
        return ALIGNER_DESCRIPTIONS["none"]
    if name in ALIGNERS and ALIGNERS[name]().get_params() == aligner.get_params():
        return ALIGNER_DESCRIPTIONS[name]
    return repr(aligner)


def _resolve_extractor(extractor: str | Extractor, device: str | None) -> tuple[str, Extractor]:
    if isinstance(extractor, str):
        name, ex = extractor, create_extractor(extractor)
    else:
        name, ex = str(extractor.config.get("name", type(extractor).__name__)), extractor
    if ex.kind == "local":
        raise InvalidParameterError(
            f"{name} gives local descriptors: align an encoding of them, e.g. {name}-bovw"
        )
    if device is not None and "device" in ex.get_params():
        ex.set_params(device=device)
    return name, ex


def _align(features: FeatureSet, split: Split, aligner: Aligner | None) -> tuple[FeatureSet, Split]:
    """The split's source and target rows, aligned, as a FeatureSet with a split into it."""
    source, target = features.subset(split.train), features.subset(split.test)
    ns, nt = len(source), len(target)
    local = Split(split.name, np.arange(ns), np.arange(ns, ns + nt), np.arange(ns), split.info)
    both = features.subset(np.concatenate([split.train, split.test]))
    if aligner is None:
        return both, local
    fitted = clone(aligner).fit_domains(source.X, target.X, source.y)
    Z = np.concatenate([fitted.transform_source(source.X), fitted.transform_target(target.X)])
    return FeatureSet(
        X=np.ascontiguousarray(Z, dtype=np.float32),
        y=both.y,
        ids=both.ids,
        class_names=both.class_names,
        domains=both.domains,
        provenance=both.provenance,
    ), local


def _add_views(
    views: dict[str, dict[str, Any]],
    features: FeatureSet,
    split: Split,
    aligner_name: str,
    aligned: FeatureSet,
    local: Split,
    method: str,
    seed: int,
) -> None:
    """2-D views of the shift's source and target, before (raw) and after alignment."""
    domain = np.array(["source"] * len(local.train) + ["target"] * len(local.test))
    if BEFORE not in views:
        raw = features.subset(np.concatenate([split.train, split.test]))
        views[BEFORE] = {
            **project_2d(raw.X, raw.y, method, seed, domain, ids=raw.ids),
            "shift": split.name,
        }
    if aligner_name != BEFORE:
        views[aligner_name] = {
            **project_2d(aligned.X, aligned.y, method, seed, domain, ids=aligned.ids),
            "shift": split.name,
        }

"""The adapt job: train on one domain, test on another, with and without alignment.

Features are extracted once (or once per source domain for extractors that learn from
images), then for every ordered pair of domains and every aligner, the aligner is fitted
on the source rows and the unlabelled target rows, each classifier is trained on the
aligned source and scored on the aligned target: the domain-pair matrix of domain
adaptation papers, one row per method.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from typing import Any

import numpy as np
from sklearn.base import clone

from featkit.align import ALIGNER_DESCRIPTIONS, ALIGNERS, Aligner, make_aligner
from featkit.data import Dataset, load_dataset
from featkit.evaluate.extraction import announce_runtimes, extract_for_splits
from featkit.evaluate.projection import check_view, project_2d
from featkit.evaluate.protocols import DomainPairs, Split
from featkit.evaluate.provenance import job_provenance
from featkit.evaluate.results import EvaluationResult
from featkit.evaluate.rows import ScoreRow
from featkit.evaluate.score_cache import ScoreCache
from featkit.evaluate.scoring import ClassifierSpec, resolve_classifiers, score_split
from featkit.exceptions import InvalidParameterError
from featkit.extractors.base import Extractor, set_decode
from featkit.features import FeatureSet
from featkit.registry import create_extractor

logger = logging.getLogger(__name__)

__all__ = ["DEFAULT_ALIGNERS", "adapt", "source_target_dataset"]

DEFAULT_ALIGNERS = ("none", "coral", "sa")
#: The view drawn for "before alignment".
BEFORE = "none"

AlignerSpec = Sequence[str] | Mapping[str, Aligner | None]


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
        ``none`` (no alignment), ``pca``, ``lda``, ``sa``, ``coral``, ``tca``, ``jda``
        (:func:`featkit.align.make_aligner`), or your own aligners by name.
    classifiers : names or {name: estimator}
        Presets (``svm``, ``logreg``, ``knn``, ``probe``, ``rbf-svm``) or your estimators;
        trained on the (aligned) source only.
    pairs : [(source, target)], optional
        The shifts to run (default: every ordered pair of domains).
    seed, n_jobs, device, decode, cache_dir, progress, view, log
        As for :func:`featkit.evaluate.compare`. ``view`` draws source and target features of the
        first shift in 2-D before and after each aligner.
    """
    say = log or logger.info
    check_view(view)
    dataset = _load(data, source, target)
    if data is None and pairs is None:  # a source and a target: that one shift
        pairs = [(str(dataset.domains[0]), str(dataset.domains[-1]))]  # source rows first
    unlabelled = int((dataset.labels < 0).sum())
    if unlabelled:
        say(f"leaving out {unlabelled} unlabelled images: they can be neither trained nor scored")
        dataset = dataset.subset(dataset.labels >= 0)
    protocol = DomainPairs(pairs)
    splits = protocol.splits(dataset.labels, dataset.splits, dataset.domains)
    chosen_aligners = _resolve_aligners(aligners)
    estimators = resolve_classifiers(classifiers, seed=seed)
    name, ex = _resolve_extractor(extractor, device)
    if decode is not None and not set_decode(ex, decode):
        say(f"{name} decodes every image at full size (decode={decode!r} does not apply)")
    say(
        f"{dataset.name}: {len(dataset)} images, domains {', '.join(dataset.domain_names)}; "
        f"{len(splits)} shifts x {len(chosen_aligners)} aligners x {len(estimators)} classifiers"
    )
    announce_runtimes({name: ex}, say)

    rows: list[ScoreRow] = []
    views: dict[str, dict[str, Any]] = {}
    scores = None if cache_dir is None else ScoreCache(cache_dir)
    kwargs = {"n_jobs": n_jobs, "cache_dir": cache_dir, "progress": progress}
    config: dict[str, Any] = {}
    extract_s = 0.0
    view_shift: str | None = None  # the views show the first shift
    for part in extract_for_splits(name, ex, dataset, splits, say=say, **kwargs):
        extract_s += part.seconds
        config = part.extractor.config
        for split in part.splits:
            if view is not None and view_shift is None:
                view_shift = split.name
            for aligner_name, aligner in chosen_aligners.items():
                started = time.perf_counter()
                aligned, local = _align(part.features, split, aligner)
                align_s = time.perf_counter() - started
                scored = score_split(
                    aligned,
                    local,
                    estimators,
                    protocol=protocol.name,
                    extractor=name,
                    aligner=aligner_name,
                    cache=scores,
                    log=say,
                )
                failed = len(part.features.failed)
                rows += [replace(row, align_s=round(align_s, 4), n_failed=failed) for row in scored]
                if view is not None and split.name == view_shift:
                    _add_views(
                        views, part.features, split, aligner_name, aligned, local, view, seed
                    )
    rows = [replace(row, extract_s=round(extract_s, 3)) for row in rows]

    provenance = job_provenance(
        "adapt",
        dataset=dataset.describe(),
        protocol=protocol,
        n_splits=len(splits),
        extractors={name: config},
        estimators=estimators,
        seed=seed,
        unlabelled_left_out=unlabelled,
        aligners={a: _describe_aligner(a, al) for a, al in chosen_aligners.items()},
    )
    return EvaluationResult(rows=rows, provenance=provenance, views=views)


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


def _resolve_aligners(aligners: AlignerSpec) -> dict[str, Aligner | None]:
    if isinstance(aligners, Mapping):
        chosen = dict(aligners)
    else:
        chosen = {str(a).strip().lower(): make_aligner(a) for a in aligners}
    if not chosen:
        raise InvalidParameterError("no aligners: give at least 'none'")
    for name, aligner in chosen.items():
        if aligner is not None and not isinstance(aligner, Aligner):
            raise InvalidParameterError(
                f"aligner {name!r} is a {type(aligner).__name__}, not a featkit.align.Aligner"
            )
    return chosen


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
        views[BEFORE] = {**project_2d(raw.X, raw.y, method, seed, domain), "shift": split.name}
    if aligner_name != BEFORE:
        views[aligner_name] = {
            **project_2d(aligned.X, aligned.y, method, seed, domain),
            "shift": split.name,
        }

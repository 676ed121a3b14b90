"""The rank job: transferability scores of feature sets on labelled images, no classifier
trained (:mod:`featkit.evaluate.transferability`).

Each extractor's features are extracted once with featkit's engine and cache, as
``compare`` extracts them (an extractor that learns from images, a BoVW codebook, is fitted
on all the images: it uses no labels). LEEP and NCE score the source network's own class
probabilities (:mod:`featkit.evaluate.source_model`) and are "not applicable" for
extractors without a classifier head.
"""

from __future__ import annotations

import logging
import math
import os
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from featkit._version import __version__
from featkit.data import Dataset, load_dataset
from featkit.evaluate.compare import leave_out_local, resolve_extractors
from featkit.evaluate.extraction import announce_runtimes, extract_for_splits
from featkit.evaluate.protocols import Split
from featkit.evaluate.source_model import source_head, source_probabilities
from featkit.evaluate.transferability import (
    h_score,
    knn_loo_accuracy,
    leep,
    logme,
    nce,
    shrinkage_h_score,
)
from featkit.exceptions import InvalidParameterError
from featkit.extractors.base import Extractor, set_decode
from featkit.hardware import describe_machine

logger = logging.getLogger(__name__)

__all__ = ["DEFAULT_SCORES", "SCORES", "RankResult", "RankRow", "rank"]

#: Scores of features: ``score(X, y)``.
FEATURE_SCORES: dict[str, Callable[..., float]] = {
    "logme": logme,
    "hscore": h_score,
    "hscore-shrink": shrinkage_h_score,
    "knn": knn_loo_accuracy,
}
#: Scores of the source model's probabilities: ``score(P, y)``.
SOURCE_SCORES: dict[str, Callable[[np.ndarray, np.ndarray], float]] = {"leep": leep, "nce": nce}
SCORES = (*FEATURE_SCORES, *SOURCE_SCORES)
DEFAULT_SCORES = ("logme", "hscore", "hscore-shrink", "knn", "leep", "nce")


@dataclass
class RankRow:
    """One score of one extractor's features: ``value`` None when it does not apply
    (``note`` says why); ``seconds`` the score's own time."""

    extractor: str
    score: str
    value: float | None
    seconds: float
    note: str = ""


@dataclass
class RankResult:
    """The scores of every extractor, sorted by ``sort_by`` (best first), with extraction
    times and the seconds the source probabilities took (``source_s``)."""

    rows: list[RankRow]
    scores: list[str]
    sort_by: str
    extract_s: dict[str, float]
    source_s: dict[str, float]
    dims: dict[str, int]
    skipped: dict[str, str] = field(default_factory=dict)
    provenance: dict[str, Any] = field(default_factory=dict)

    def extractors(self) -> list[str]:
        """Extractor names, best first by ``sort_by`` (those without that score last)."""
        names = list(dict.fromkeys(r.extractor for r in self.rows))
        value = {r.extractor: r.value for r in self.rows if r.score == self.sort_by}
        return sorted(
            names, key=lambda n: -math.inf if value.get(n) is None else value[n], reverse=True
        )

    def value(self, extractor: str, score: str) -> float | None:
        """One score of one extractor (None when it does not apply)."""
        for row in self.rows:
            if row.extractor == extractor and row.score == score:
                return row.value
        raise KeyError((extractor, score))

    def lines(self) -> list[str]:
        """The table: one line per extractor, best first, each score with its seconds."""
        cells = {(r.extractor, r.score): r for r in self.rows}
        header = f"{'extractor':<24} {'dim':>6}" + "".join(f" {s:>16}" for s in self.scores)
        out = [f"sorted by {self.sort_by} (higher is better); in brackets: seconds", header]
        notes: dict[str, str] = {}
        for name in self.extractors():
            line = f"{name:<24} {self.dims.get(name, 0):>6}"
            for score in self.scores:
                row = cells[(name, score)]
                if row.value is None:
                    line += f" {'n/a':>16}"
                    notes[name] = row.note
                else:
                    line += f" {f'{row.value:.4f} [{row.seconds:.2f}]':>16}"
            source = (
                f", source probabilities {self.source_s[name]:.1f} s"
                if name in self.source_s
                else ""
            )
            line += f"   (extraction {self.extract_s.get(name, 0.0):.1f} s{source})"
            out.append(line)
        out += [f"n/a for {name}: {why}" for name, why in notes.items()]
        out += [f"skipped {name}: {why}" for name, why in self.skipped.items()]
        return out

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready record: rows, order, times and provenance."""
        return {
            "sort_by": self.sort_by,
            "order": self.extractors(),
            "scores": self.scores,
            "rows": [asdict(r) for r in self.rows],
            "extract_s": self.extract_s,
            "source_s": self.source_s,
            "dims": self.dims,
            "skipped": self.skipped,
            "provenance": self.provenance,
        }


def resolve_scores(scores: Sequence[str] | None) -> list[str]:
    """The score names, checked; None: :data:`DEFAULT_SCORES`."""
    names = list(scores) if scores else list(DEFAULT_SCORES)
    unknown = [s for s in names if s not in SCORES]
    if unknown:
        raise InvalidParameterError(f"unknown score {unknown[0]!r}: use {', '.join(SCORES)}")
    return list(dict.fromkeys(names))


def rank(
    data: str | os.PathLike | Dataset = "digits",
    extractors: Sequence[str] | Mapping[str, Extractor] | None = None,
    scores: Sequence[str] | None = None,
    *,
    params: Mapping[str, Mapping[str, Any]] | None = None,
    sort_by: str | None = None,
    k: int = 5,
    per_class: int | None = None,
    seed: int = 0,
    n_jobs: int | None = None,
    device: str | None = None,
    decode: str | None = None,
    cache_dir: str | os.PathLike | None = None,
    progress: bool | None = None,
    log: Callable[[str], None] | None = None,
) -> RankResult:
    """Score each extractor's features on the labelled images of ``data`` with each
    transferability score, without training a classifier.

    Parameters
    ----------
    data, extractors, params :
        As :func:`featkit.evaluate.compare` and its ``resolve_extractors`` take them.
    scores : names, optional
        ``logme``, ``hscore``, ``knn`` (leave-one-out accuracy of a cosine ``k``-NN),
        ``leep``, ``nce``; None: all five.
    sort_by : str, optional
        The score the table is sorted by (default: the first of ``scores``).
    per_class : int, optional
        Score at most this many images of each class (a seeded draw).
    n_jobs, device, decode, cache_dir, progress, log :
        As in :func:`featkit.evaluate.compare`.
    """
    say = log or logger.info
    names = resolve_scores(scores)
    sort_by = sort_by or names[0]
    if sort_by not in names:
        raise InvalidParameterError(f"sort_by={sort_by!r} is not among the scores {names}")
    dataset = data if isinstance(data, Dataset) else load_dataset(data)
    labelled = dataset.labels >= 0
    if not labelled.all():
        say(f"leaving out {int((~labelled).sum())} unlabelled images")
        dataset = dataset.subset(np.flatnonzero(labelled))
    if per_class is not None:
        dataset = dataset.sample_per_class(per_class, seed=seed)
    chosen, skipped = resolve_extractors(extractors, params, dataset, say=say)
    leave_out_local(chosen, skipped, say, job="rank")
    for extractor in chosen.values():
        if device is not None and "device" in extractor.get_params():
            extractor.set_params(device=device)
        if decode is not None:
            set_decode(extractor, decode)
    say(f"{dataset.name}: {len(dataset)} images, {dataset.n_classes} classes")
    announce_runtimes(chosen, say)

    everything = np.arange(len(dataset))
    whole = Split("all", everything, everything[:0], everything)  # fit on all: no labels used
    kwargs = {"n_jobs": n_jobs, "cache_dir": cache_dir, "progress": progress}
    rows: list[RankRow] = []
    extract_s: dict[str, float] = {}
    source_s: dict[str, float] = {}
    dims: dict[str, int] = {}
    configs: dict[str, Any] = {}
    for name, extractor in chosen.items():
        part = next(extract_for_splits(name, extractor, dataset, [whole], say=say, **kwargs))
        features = part.features
        extract_s[name] = round(part.seconds, 3)
        configs[name] = part.extractor.config
        X, y = features.X, features.y
        dims[name] = int(X.shape[1])
        for score in (s for s in names if s in FEATURE_SCORES):
            rows.append(_timed(name, score, FEATURE_SCORES[score], X, y, k))
        wanted = [s for s in names if s in SOURCE_SCORES]
        if not wanted:
            continue
        _, why = source_head(part.extractor)
        if why:
            rows += [RankRow(name, s, None, 0.0, why) for s in wanted]
            continue
        started = time.perf_counter()
        say(f"computing {name}'s source class probabilities")
        # The same images as the feature rows: those that failed to extract are left out.
        position = {image_id: i for i, image_id in enumerate(dataset.ids.tolist())}
        images = dataset.subset(np.array([position[i] for i in features.ids.tolist()]))
        P = source_probabilities(part.extractor, images, cache_dir=cache_dir, n_jobs=n_jobs)
        source_s[name] = round(time.perf_counter() - started, 3)
        rows += [_timed(name, s, SOURCE_SCORES[s], P, y) for s in wanted]

    provenance = {
        "job": "rank",
        "featkit": __version__,
        "dataset": dataset.describe(),
        "extractors": configs,
        "scores": names,
        "k": k,
        "per_class": per_class,
        "seed": seed,
        "machine": describe_machine(),
    }
    return RankResult(rows, names, sort_by, extract_s, source_s, dims, skipped, provenance)


def _timed(
    name: str,
    score: str,
    fn: Callable[..., float],
    X: np.ndarray,
    y: np.ndarray,
    k: int | None = None,
) -> RankRow:
    started = time.perf_counter()
    value = fn(X, y, k=k) if score == "knn" else fn(X, y)
    return RankRow(name, score, float(value), round(time.perf_counter() - started, 4))

"""Evaluation protocols: how a labelled set is split into training and test rows.

A protocol turns labels (and, where it needs them, a data set's own splits or domains) into
a list of :class:`Split`. Each split says which rows train the classifier, which are scored,
and which rows anything *unsupervised* upstream (a BoVW codebook, an aligner) may learn from:
never a test row, except for domain adaptation, where the unlabelled target is the point.

- :class:`Holdout`: the data set's own train/test split, else a stratified seeded one.
- :class:`KFold`: stratified k-fold cross-validation, seeded.
- :class:`FewShot`: n labelled images per class drawn from the holdout's training rows,
  repeated with different seeds, scored on the holdout's test rows (mean and std).
- :class:`PerClass`: n training images per class, the rest tested, repeated with
  different seeds (Caltech-101's protocol: 30 per class, the rest for testing).
- :class:`DomainPairs`: train on one domain, test on another, for every ordered pair
  (the domain-pair matrix of domain adaptation papers; shared with ``featkit adapt``).

``make_protocol("kfold:10")`` parses the command-line spelling.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from sklearn.model_selection import KFold as _PlainKFold
from sklearn.model_selection import StratifiedKFold, train_test_split

from featkit.exceptions import InvalidParameterError
from featkit.validation import check_float, check_int

__all__ = [
    "DomainPairs",
    "FewShot",
    "Holdout",
    "KFold",
    "PerClass",
    "Protocol",
    "Split",
    "make_protocol",
]


@dataclass(frozen=True, eq=False)
class Split:
    """One train/test split: row positions into the labelled set, and a name for reports.

    ``fit`` are the rows upstream unsupervised steps may learn from (labels unused).
    ``info`` holds what identifies the split in tidy results (fold, shots, repeat,
    source and target domains).
    """

    name: str
    train: np.ndarray
    test: np.ndarray
    fit: np.ndarray
    info: dict[str, Any] = field(default_factory=dict)


class Protocol:
    """Base class: ``splits(labels, splits=None, domains=None)`` gives the list of Split."""

    name = "protocol"

    def splits(
        self,
        labels: np.ndarray,
        splits: np.ndarray | None = None,
        domains: np.ndarray | None = None,
    ) -> list[Split]:
        raise NotImplementedError

    def describe(self) -> str:
        """The protocol in words, for reports."""
        raise NotImplementedError

    def params(self) -> dict[str, Any]:
        """Parameters for provenance records."""
        return {k: v for k, v in vars(self).items() if not k.startswith("_")}

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.params().items())
        return f"{type(self).__name__}({args})"


def _can_stratify(labels: np.ndarray, n_per_class: int) -> bool:
    return bool(len(labels)) and int(np.unique(labels, return_counts=True)[1].min()) >= n_per_class


def _has_own_split(splits: np.ndarray | None) -> bool:
    return splits is not None and {"train", "test"} <= set(splits.tolist())


class Holdout(Protocol):
    """One train/test split: the data set's own when it has one, else stratified and seeded.

    Parameters
    ----------
    test_size : float, default=0.25
        Share of the rows held out when the data set has no split of its own.
    seed : int, default=0
        Seed of the split.
    """

    name = "holdout"

    def __init__(self, test_size: float = 0.25, seed: int = 0) -> None:
        check_float("Holdout", "test_size", test_size, low=0.0, strict=True)
        if test_size >= 1:
            raise InvalidParameterError(f"Holdout: test_size must be below 1, got {test_size}")
        check_int("Holdout", "seed", seed, low=0)
        self.test_size = test_size
        self.seed = seed
        self._own = False

    def splits(
        self,
        labels: np.ndarray,
        splits: np.ndarray | None = None,
        domains: np.ndarray | None = None,
    ) -> list[Split]:
        labels = np.asarray(labels)
        rows = np.arange(len(labels))
        self._own = _has_own_split(splits)
        if self._own:
            train, test = rows[splits == "train"], rows[splits == "test"]
        else:
            stratify = labels if _can_stratify(labels, 2) else None
            train, test = train_test_split(
                rows, test_size=self.test_size, random_state=self.seed, stratify=stratify
            )
            train, test = np.sort(train), np.sort(test)
        if not len(train) or not len(test):
            raise InvalidParameterError(
                f"holdout: {len(train)} training and {len(test)} test rows; both must be non-empty"
            )
        return [Split("holdout", train, test, fit=train)]

    def describe(self) -> str:
        if self._own:
            return "the data set's own train/test split"
        return f"stratified {1 - self.test_size:.0%}/{self.test_size:.0%} split, seed {self.seed}"


class KFold(Protocol):
    """Stratified k-fold cross-validation (plain k-fold when a class has fewer than k rows).

    Parameters
    ----------
    n_splits : int, default=5
        Number of folds; every row is scored once.
    seed : int, default=0
        Seed of the shuffle before folding.
    """

    name = "kfold"

    def __init__(self, n_splits: int = 5, seed: int = 0) -> None:
        check_int("KFold", "n_splits", n_splits, low=2)
        check_int("KFold", "seed", seed, low=0)
        self.n_splits = n_splits
        self.seed = seed
        self._stratified = True

    def splits(
        self,
        labels: np.ndarray,
        splits: np.ndarray | None = None,
        domains: np.ndarray | None = None,
    ) -> list[Split]:
        labels = np.asarray(labels)
        if len(labels) < self.n_splits:
            raise InvalidParameterError(
                f"kfold: {self.n_splits} folds need at least {self.n_splits} rows, "
                f"got {len(labels)}"
            )
        self._stratified = _can_stratify(labels, self.n_splits)
        if self._stratified:
            folds = StratifiedKFold(self.n_splits, shuffle=True, random_state=self.seed)
        else:
            folds = _PlainKFold(self.n_splits, shuffle=True, random_state=self.seed)
        out = []
        for i, (train, test) in enumerate(folds.split(np.zeros(len(labels)), labels), start=1):
            out.append(Split(f"fold {i}/{self.n_splits}", train, test, fit=train, info={"fold": i}))
        return out

    def describe(self) -> str:
        kind = "stratified" if self._stratified else "plain (a class has too few rows)"
        return f"{kind} {self.n_splits}-fold cross-validation, seed {self.seed}"


class FewShot(Protocol):
    """``shots`` labelled images per class, drawn ``repeats`` times from the holdout's
    training rows; each draw is scored on the holdout's test rows.

    The unsupervised upstream steps may learn from the whole training pool (its labels
    unused), as in semi-supervised few-shot evaluation.

    Parameters
    ----------
    shots : int, default=5
        Labelled training images per class.
    repeats : int, default=5
        Independent draws; results are reported as mean and standard deviation.
    test_size : float, default=0.25
        Held-out share when the data set has no split of its own.
    seed : int, default=0
        Seed of the holdout split; draw r uses seed + r.
    """

    name = "fewshot"

    def __init__(self, shots: int = 5, repeats: int = 5, test_size: float = 0.25, seed: int = 0):
        check_int("FewShot", "shots", shots, low=1)
        check_int("FewShot", "repeats", repeats, low=1)
        self.shots = shots
        self.repeats = repeats
        self.test_size = test_size
        self.seed = seed
        self._holdout = Holdout(test_size, seed)

    def splits(
        self,
        labels: np.ndarray,
        splits: np.ndarray | None = None,
        domains: np.ndarray | None = None,
    ) -> list[Split]:
        labels = np.asarray(labels)
        if (labels < 0).any():
            raise InvalidParameterError("fewshot: leave out unlabelled rows (label -1) first")
        (base,) = self._holdout.splits(labels, splits, domains)
        pool_labels = labels[base.train]
        present = np.unique(labels)
        counts = np.bincount(pool_labels, minlength=labels.max(initial=-1) + 1)
        short = [int(c) for c in present if counts[c] < self.shots]
        if short:
            raise InvalidParameterError(
                f"fewshot: {self.shots} shots per class, but class {short[0]} has only "
                f"{counts[short[0]]} training images; use fewer shots"
            )
        out = []
        for r in range(self.repeats):
            rng = np.random.default_rng(self.seed + r)
            chosen = [
                rng.choice(base.train[pool_labels == c], size=self.shots, replace=False)
                for c in present
            ]
            train = np.sort(np.concatenate(chosen))
            out.append(
                Split(
                    f"{self.shots}-shot #{r + 1}",
                    train,
                    base.test,
                    fit=base.train,
                    info={"shots": self.shots, "repeat": r + 1},
                )
            )
        return out

    def describe(self) -> str:
        return (
            f"{self.shots} training images per class, {self.repeats} seeded draws, "
            f"scored on the test rows of the {self._holdout.describe()}"
        )

    def params(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in ("shots", "repeats", "test_size", "seed")}


class PerClass(Protocol):
    """n random training images per class, the rest of the labelled images tested.

    Caltech-101's protocol (``PerClass(30)``: 30 training images per class, the rest for
    testing, several seeded draws; report the balanced accuracy, the mean of the per-class
    recognition rates, as the papers do). Unlike :class:`FewShot`, the test rows change
    with each draw and there is no fixed holdout: a class needs only ``n_train + 1`` images.

    Parameters
    ----------
    n_train : int, default=30
        Training images per class.
    repeats : int, default=1
        Independent draws (seed, seed + 1, ...); results are reported as mean and std.
    max_test : int or None, default=None
        At most this many test images per class (a seeded sample of the rest), as papers
        that cap Caltech-101's large classes do (50); None tests all the others.
    seed : int, default=0
        Seed of the first draw.
    """

    name = "perclass"

    def __init__(
        self, n_train: int = 30, repeats: int = 1, max_test: int | None = None, seed: int = 0
    ) -> None:
        check_int("PerClass", "n_train", n_train, low=1)
        check_int("PerClass", "repeats", repeats, low=1)
        if max_test is not None:
            check_int("PerClass", "max_test", max_test, low=1)
        check_int("PerClass", "seed", seed, low=0)
        self.n_train = n_train
        self.repeats = repeats
        self.max_test = max_test
        self.seed = seed

    def splits(
        self,
        labels: np.ndarray,
        splits: np.ndarray | None = None,
        domains: np.ndarray | None = None,
    ) -> list[Split]:
        labels = np.asarray(labels)
        if (labels < 0).any():
            raise InvalidParameterError("perclass: leave out unlabelled rows (label -1) first")
        classes, counts = np.unique(labels, return_counts=True)
        if len(classes) and counts.min() <= self.n_train:
            short = classes[np.argmin(counts)]
            raise InvalidParameterError(
                f"perclass: {self.n_train} training images per class and at least one to "
                f"test, but class {short} has {counts.min()} images; use fewer"
            )
        out = []
        for r in range(self.repeats):
            rng = np.random.default_rng(self.seed + r)
            train, test = [], []
            for c in classes:
                rows = rng.permutation(np.flatnonzero(labels == c))
                train.append(rows[: self.n_train])
                test.append(rows[self.n_train :][: self.max_test])
            train_rows, test_rows = np.sort(np.concatenate(train)), np.sort(np.concatenate(test))
            out.append(
                Split(
                    f"{self.n_train}-per-class #{r + 1}",
                    train_rows,
                    test_rows,
                    fit=train_rows,
                    info={"shots": self.n_train, "repeat": r + 1},
                )
            )
        return out

    def describe(self) -> str:
        tested = "the rest" if self.max_test is None else f"up to {self.max_test} per class"
        return (
            f"{self.n_train} training images per class, {tested} tested, "
            f"{self.repeats} seeded draw{'s' if self.repeats > 1 else ''}"
        )


class DomainPairs(Protocol):
    """Train on all the rows of a source domain, test on all the rows of a target domain.

    Parameters
    ----------
    pairs : list of (source, target), optional
        The shifts to evaluate; by default every ordered pair of distinct domains.
    """

    name = "domains"

    def __init__(self, pairs: Sequence[tuple[str, str]] | None = None) -> None:
        self.pairs = None if pairs is None else [tuple(p) for p in pairs]
        self._pairs: list[tuple[str, str]] = []

    def splits(
        self,
        labels: np.ndarray,
        splits: np.ndarray | None = None,
        domains: np.ndarray | None = None,
    ) -> list[Split]:
        if domains is None:
            raise InvalidParameterError(
                "the domains protocol needs a data set with domains (a multi-domain folder "
                "root/domain/class/*, or a manifest with a domain column)"
            )
        names = sorted(set(domains.tolist()))
        if len(names) < 2:
            raise InvalidParameterError(
                f"the domains protocol needs 2 domains or more, got {names}"
            )
        pairs = (
            self.pairs
            if self.pairs is not None
            else [(s, t) for s in names for t in names if s != t]
        )
        if not pairs:
            raise InvalidParameterError("the domains protocol got an empty list of pairs")
        for source, target in pairs:
            for d in (source, target):
                if d not in names:
                    raise InvalidParameterError(f"unknown domain {d!r}; the domains are {names}")
            if source == target:
                raise InvalidParameterError(
                    f"domain pair ({source!r}, {target!r}) would test on its training rows"
                )
        self._pairs = list(pairs)
        rows = np.arange(len(domains))
        return [
            Split(
                f"{s}→{t}",
                rows[domains == s],
                rows[domains == t],
                fit=rows[domains == s],
                info={"source": s, "target": t},
            )
            for s, t in pairs
        ]

    def describe(self) -> str:
        n = len(self._pairs) if self._pairs else "every"
        return f"train on one domain, test on another ({n} ordered pairs)"


def make_protocol(spec: str | Protocol, *, seed: int = 0, test_size: float = 0.25) -> Protocol:
    """A protocol from its command-line spelling.

    ``holdout``, ``kfold`` / ``kfold:K``, ``fewshot`` / ``fewshot:N`` / ``fewshot:NxR``
    (N shots, R repeats), ``perclass:N`` / ``perclass:NxR`` / ``perclass:NxR/T`` (N per
    class, R draws, at most T tested per class), ``domains``. A Protocol instance is
    returned unchanged.
    """
    if isinstance(spec, Protocol):
        return spec
    name, _, arg = str(spec).strip().lower().partition(":")
    try:  # int() fails on a malformed count; the protocols' own checks raise their messages
        if name == "holdout" and not arg:
            return Holdout(test_size=test_size, seed=seed)
        if name == "kfold":
            return KFold(int(arg) if arg else 5, seed=seed)
        if name == "fewshot":
            shots, _, repeats = arg.partition("x")
            return FewShot(
                int(shots) if shots else 5,
                int(repeats) if repeats else 5,
                test_size=test_size,
                seed=seed,
            )
        if name == "perclass":
            counts, _, cap = arg.partition("/")
            n_train, _, repeats = counts.partition("x")
            return PerClass(
                int(n_train) if n_train else 30,
                int(repeats) if repeats else 1,
                max_test=int(cap) if cap else None,
                seed=seed,
            )
        if name in ("domains", "domain-pairs") and not arg:
            return DomainPairs()
    except InvalidParameterError:
        raise
    except ValueError:
        pass
    raise InvalidParameterError(
        f"unknown protocol {spec!r}; use holdout, kfold[:K], fewshot[:N[xR]], "
        "perclass[:N[xR][/T]] or domains"
    )

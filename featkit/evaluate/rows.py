"""Score rows: one classifier scored on one split, and one method's means over its splits.

Both are frozen dataclasses that read like the dicts they are saved as (``row["accuracy"]``,
``dict(row)``, ``"source" in row``), so results load back from ``results.json`` as plain
dicts and code written against dict rows keeps working. A field that is None is absent:
a k-fold row has a ``fold`` and no ``source``.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field, fields
from typing import Any

import numpy as np

__all__ = ["MethodSummary", "ScoreRow", "method_name", "row_identity", "summarize"]

#: What identifies a split in a row, by protocol: k-fold, few-shot, domain pairs.
SPLIT_FIELDS = ("fold", "shots", "repeat", "source", "target")


def row_identity(
    split: Any, *, extractor: str, aligner: str, classifier: str, protocol: str
) -> dict[str, Any]:
    """The fields that name a row: the method, the protocol, and the split (its name and
    ``info``: fold, shots, source and target ...)."""
    return {
        "extractor": extractor,
        "aligner": aligner,
        "classifier": classifier,
        "protocol": protocol,
        "split": split.name,
        **split.info,
    }


def method_name(row: Mapping[str, Any]) -> str:
    """``extractor + classifier``, with the aligner between them when there is one: the one
    name a method goes by in every table, chart and log line."""
    aligner = row.get("aligner", "none")
    middle = [] if aligner == "none" else [aligner]
    return " + ".join([row["extractor"], *middle, row["classifier"]])


class _Record(Mapping[str, Any]):
    """Mapping access to a dataclass's fields, leaving out those that are None."""

    def __getitem__(self, key: str) -> Any:
        value = getattr(self, key, None) if key in self._field_names() else None
        if value is None:
            raise KeyError(key)
        return value

    def __iter__(self) -> Iterator[str]:
        return (name for name in self._field_names() if getattr(self, name) is not None)

    def __len__(self) -> int:
        return sum(1 for _ in self)

    @classmethod
    def _field_names(cls) -> tuple[str, ...]:
        return tuple(f.name for f in fields(cls))  # type: ignore[arg-type]

    @property
    def method(self) -> str:
        """See :func:`method_name`."""
        return method_name(self)


@dataclass(frozen=True, eq=True)
class ScoreRow(_Record):
    """One classifier fitted on one split's training rows and scored on its test rows.

    ``extract_s`` is the extractor's time over the whole job, ``align_s`` the aligner's on
    this split (adapt only), ``n_failed`` the images the extractor could not read or use;
    ``chosen`` the hyper-parameters a sweep picked on the training rows. ``test_ids``,
    ``y_true`` and ``y_pred`` are the test images and their true and predicted labels, in
    the same order: what the report's error and disagreement galleries show.
    """

    extractor: str
    aligner: str
    classifier: str
    protocol: str
    split: str
    accuracy: float
    balanced_accuracy: float
    macro_f1: float
    n_train: int
    n_test: int
    dim: int
    fit_s: float
    predict_s: float
    per_class: dict[str, dict[str, float]] = field(default_factory=dict)
    confusion_matrix: list[list[int]] = field(default_factory=list)
    chosen: dict[str, float] = field(default_factory=dict)
    extract_s: float = 0.0
    align_s: float | None = None
    n_failed: int | None = None
    fold: int | None = None
    shots: int | None = None
    repeat: int | None = None
    source: str | None = None
    target: str | None = None
    test_ids: list[str] | None = None
    y_true: list[int] | None = None
    y_pred: list[int] | None = None

    @classmethod
    def from_dict(cls, row: Mapping[str, Any]) -> ScoreRow:
        """A row from its dict (``results.json``, the score cache); unknown keys are an error."""
        return cls(**row)


@dataclass(frozen=True, eq=True)
class MethodSummary(_Record):
    """One method (extractor x aligner x classifier): means over its splits, the accuracy's
    standard deviation, and the number of splits."""

    extractor: str
    aligner: str
    classifier: str
    n_splits: int
    accuracy: float
    accuracy_std: float
    balanced_accuracy: float
    macro_f1: float
    dim: int
    extract_s: float
    fit_s: float
    predict_s: float


def summarize(rows: Sequence[Mapping[str, Any]]) -> list[MethodSummary]:
    """One :class:`MethodSummary` per (extractor, aligner, classifier), best first."""
    groups: dict[tuple[str, str, str], list[Mapping[str, Any]]] = {}
    for r in rows:
        groups.setdefault((r["extractor"], r["aligner"], r["classifier"]), []).append(r)
    out = []
    for (extractor, aligner, classifier), members in groups.items():
        acc = np.array([m["accuracy"] for m in members])
        out.append(
            MethodSummary(
                extractor=extractor,
                aligner=aligner,
                classifier=classifier,
                n_splits=len(members),
                accuracy=float(acc.mean()),
                accuracy_std=float(acc.std()),
                balanced_accuracy=float(np.mean([m["balanced_accuracy"] for m in members])),
                macro_f1=float(np.mean([m["macro_f1"] for m in members])),
                dim=members[0]["dim"],
                extract_s=float(members[0].get("extract_s", 0.0)),
                fit_s=float(np.mean([m["fit_s"] for m in members])),
                predict_s=float(np.mean([m["predict_s"] for m in members])),
            )
        )
    return sorted(out, key=lambda r: (-r.accuracy, r.extractor, r.classifier))

"""Evaluation results: tidy rows, their summary, and the report folder they are saved as."""

from __future__ import annotations

import csv
import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from featkit.evaluate.rows import SPLIT_FIELDS, MethodSummary, ScoreRow, method_name, summarize
from featkit.exceptions import InvalidParameterError

if TYPE_CHECKING:
    from featkit.data import Dataset

__all__ = ["EvaluationResult", "image_sources", "summarize"]

#: Scalar columns of ``results.csv``, in order; split details follow when present.
CSV_KEYS = (
    "extractor",
    "aligner",
    "classifier",
    "protocol",
    "split",
    "accuracy",
    "balanced_accuracy",
    "macro_f1",
    "n_train",
    "n_test",
    "dim",
    "extract_s",
    "fit_s",
    "predict_s",
)


@dataclass
class EvaluationResult:
    """Tidy rows (one :class:`ScoreRow` per extractor x aligner x classifier x split) with
    provenance.

    ``views`` holds, per extractor, a 2-D projection of its features
    (``{"xy": (n, 2), "y": (n,), "ids": (n,), "method": "pca"}``) for the report's scatter
    plots. ``retrieval`` holds, per extractor, a few seeded test queries and their nearest
    training images (:func:`featkit.evaluate.retrieval.retrieval_examples`). ``images``
    maps image ids to what the images are read from (paths or arrays), for the thumbnails
    of ``report.html``; it is not saved, and without it the galleries name the images.
    """

    rows: list[ScoreRow]
    provenance: dict[str, Any]
    skipped: dict[str, str] = field(default_factory=dict)
    views: dict[str, dict[str, Any]] = field(default_factory=dict)
    retrieval: dict[str, dict[str, Any]] = field(default_factory=dict)
    images: Mapping[str, Any] = field(default_factory=dict, repr=False, compare=False)

    def summary(self) -> list[MethodSummary]:
        """One row per extractor x aligner x classifier: means over splits, best first."""
        return summarize(self.rows)

    def best(self) -> MethodSummary:
        """The method with the highest mean accuracy."""
        summary = self.summary()
        if not summary:
            raise InvalidParameterError("no results: nothing was scored")
        return summary[0]

    def table(self) -> str:
        """The summary as a plain-text table, best first (with an aligner column when
        anything was aligned): what ``featkit compare`` prints."""
        from featkit.report.tables import ranking_table

        return ranking_table(self.summary())

    def pair_table(self) -> str | None:
        """The domain-pair matrix as plain text (accuracy in %, one row per method, one
        column per shift, the average last); None unless the protocol had domain pairs."""
        from featkit.report.tables import pair_table

        return pair_table(self)

    def pair_matrix(self) -> tuple[list[str], list[tuple[str, list[float]]]] | None:
        """For the domains protocol: (shift names, [(method, accuracy per shift + average)])."""
        pairs = [r for r in self.rows if "source" in r]
        if not pairs:
            return None
        shifts = list(dict.fromkeys(r["split"] for r in pairs))
        methods: dict[str, dict[str, float]] = {}
        for r in pairs:
            methods.setdefault(method_name(r), {})[r["split"]] = r["accuracy"]
        table = []
        for method, accs in methods.items():
            values = [accs.get(s, float("nan")) for s in shifts]
            table.append((method, [*values, float(np.nanmean(values))]))
        return shifts, table

    def to_json(self) -> dict[str, Any]:
        """The JSON document saved as ``results.json``."""
        doc = {
            "summary": [dict(r) for r in self.summary()],
            "results": [dict(r) for r in self.rows],
            "skipped": self.skipped,
            "provenance": self.provenance,
        }
        if self.retrieval:
            doc["retrieval"] = self.retrieval
        return doc

    def save(
        self,
        directory: str | os.PathLike,
        *,
        plots: bool = True,
        disagree: Sequence[str] | None = None,
    ) -> Path:
        """Write ``results.json``, ``results.csv``, ``report.md``, ``report.html`` and (with
        ``plots``) the PNG charts into ``directory``. ``disagree``: the two methods whose
        disagreements ``report.html`` shows, as the report names them (``["hog + svm",
        "cnn + svm"]``); one that is not in this result is a ValueError that lists them,
        before anything is written."""
        from featkit.report import write_report
        from featkit.report.html import check_pair

        if disagree is not None:
            disagree = check_pair([s.method for s in self.summary()], disagree)
        out = Path(directory)
        out.mkdir(parents=True, exist_ok=True)
        (out / "results.json").write_text(compact_json(self.to_json()) + "\n")
        split_keys = [k for k in SPLIT_FIELDS if any(k in r for r in self.rows)]
        with open(out / "results.csv", "w", newline="") as fh:
            writer = csv.DictWriter(fh, fieldnames=[*CSV_KEYS, *split_keys, "chosen"])
            writer.writeheader()
            for r in self.rows:
                row = {k: r.get(k, "") for k in (*CSV_KEYS, *split_keys)}
                row["chosen"] = json.dumps(r.get("chosen", {}))
                writer.writerow(row)
        write_report(self, out, plots=plots, disagree=disagree)
        return out


def image_sources(dataset: Dataset) -> dict[str, Any]:
    """``{image id: path or array}``: what ``report.html`` reads its thumbnails from."""
    return dict(zip(dataset.ids.tolist(), dataset.items, strict=True))


def compact_json(doc: Any) -> str:
    """``doc`` as JSON indented by 2, except that a list of numbers or strings stays on one
    line: each row's test ids and predictions would otherwise take a line per image."""
    return _compact(json.loads(json.dumps(doc, default=_json)), 0)


def _compact(value: Any, depth: int) -> str:
    pad, inner = "  " * depth, "  " * (depth + 1)
    if isinstance(value, dict) and value:
        items = [f"{inner}{json.dumps(k)}: {_compact(v, depth + 1)}" for k, v in value.items()]
        return "{\n" + ",\n".join(items) + f"\n{pad}}}"
    if isinstance(value, list) and any(isinstance(v, (dict, list)) for v in value):
        items = [f"{inner}{_compact(v, depth + 1)}" for v in value]
        return "[\n" + ",\n".join(items) + f"\n{pad}]"
    return json.dumps(value)


def _json(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")

"""Evaluation results: tidy rows, their summary, and the report folder they are saved as."""

from __future__ import annotations

import csv
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from featkit.evaluate.rows import SPLIT_FIELDS, MethodSummary, ScoreRow, method_name, summarize
from featkit.exceptions import InvalidParameterError

__all__ = ["EvaluationResult", "summarize"]

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
    (``{"xy": (n, 2), "y": (n,), "method": "pca"}``) for the report's scatter plots.
    """

    rows: list[ScoreRow]
    provenance: dict[str, Any]
    skipped: dict[str, str] = field(default_factory=dict)
    views: dict[str, dict[str, Any]] = field(default_factory=dict)

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
        return {
            "summary": [dict(r) for r in self.summary()],
            "results": [dict(r) for r in self.rows],
            "skipped": self.skipped,
            "provenance": self.provenance,
        }

    def save(self, directory: str | os.PathLike, *, plots: bool = True) -> Path:
        """Write ``results.json``, ``results.csv``, ``report.md`` and (with ``plots``) the
        PNG charts into ``directory``."""
        from featkit.report import write_report

        out = Path(directory)
        out.mkdir(parents=True, exist_ok=True)
        (out / "results.json").write_text(json.dumps(self.to_json(), indent=2, default=_json))
        split_keys = [k for k in SPLIT_FIELDS if any(k in r for r in self.rows)]
        with open(out / "results.csv", "w", newline="") as fh:
            writer = csv.DictWriter(fh, fieldnames=[*CSV_KEYS, *split_keys, "chosen"])
            writer.writeheader()
            for r in self.rows:
                row = {k: r.get(k, "") for k in (*CSV_KEYS, *split_keys)}
                row["chosen"] = json.dumps(r.get("chosen", {}))
                writer.writerow(row)
        write_report(self, out, plots=plots)
        return out


def _json(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")

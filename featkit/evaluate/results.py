"""Evaluation results: tidy rows, their summary, and the report folder they are saved as."""

from __future__ import annotations

import csv
import json
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

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
SPLIT_KEYS = ("fold", "shots", "repeat", "source", "target")


@dataclass
class EvaluationResult:
    """Tidy rows (one per extractor x aligner x classifier x split) with provenance.

    ``views`` holds, per extractor, a 2-D projection of its features
    (``{"xy": (n, 2), "y": (n,), "method": "pca"}``) for the report's scatter plots.
    """

    rows: list[dict[str, Any]]
    provenance: dict[str, Any]
    skipped: dict[str, str] = field(default_factory=dict)
    views: dict[str, dict[str, Any]] = field(default_factory=dict)

    def summary(self) -> list[dict[str, Any]]:
        """One row per extractor x aligner x classifier: means over splits, best first."""
        return summarize(self.rows)

    def best(self) -> dict[str, Any]:
        """The summary row with the highest mean accuracy."""
        summary = self.summary()
        if not summary:
            raise InvalidParameterError("no results: nothing was scored")
        return summary[0]

    def table(self) -> str:
        """A plain-text table of the summary, best first (with an aligner column when
        anything was aligned)."""
        summary = self.summary()
        spread = any(r["n_splits"] > 1 for r in summary)
        aligned = any(r["aligner"] != "none" for r in summary)
        acc_head = "accuracy ± std" if spread else "accuracy"
        width = max([len(r["extractor"]) for r in summary] + [9])
        a_width = max([len(r["aligner"]) for r in summary] + [7])
        align_head = f"{'aligner':<{a_width}} " if aligned else ""
        header = (
            f"{'rank':>4}  {'extractor':<{width}} {align_head}{'classifier':<10} "
            f"{acc_head:>15} {'macro-F1':>8} {'dim':>6} {'extract s':>9} {'fit s':>7}"
        )
        lines = [header, "-" * len(header)]
        for i, r in enumerate(summary, start=1):
            acc = f"{r['accuracy']:.4f}"
            if spread:
                acc += f" ± {r['accuracy_std']:.4f}"
            align_cell = f"{r['aligner']:<{a_width}} " if aligned else ""
            lines.append(
                f"{i:>4}  {r['extractor']:<{width}} {align_cell}{r['classifier']:<10} "
                f"{acc:>15} {r['macro_f1']:>8.4f} {r['dim']:>6} {r['extract_s']:>9.2f} "
                f"{r['fit_s']:>7.2f}"
            )
        return "\n".join(lines)

    def pair_table(self) -> str | None:
        """The domain-pair matrix as plain text: one row per method, one column per shift,
        the average last (accuracy in %); None unless the protocol had domain pairs.

        Shifts are written with the domains' initials (``P→S``) when those are distinct,
        with a legend line."""
        matrix = self.pair_matrix()
        if matrix is None:
            return None
        shifts, table = matrix
        domains = list(
            dict.fromkeys(d for r in self.rows if "source" in r for d in (r["source"], r["target"]))
        )
        initials = {d: str(d)[:1].upper() for d in domains}
        legend = None
        if len(set(initials.values())) == len(domains) and any(len(d) > 1 for d in domains):
            by_shift = {r["split"]: r for r in self.rows if "source" in r}
            shifts = [
                f"{initials[by_shift[s]['source']]}→{initials[by_shift[s]['target']]}"
                for s in shifts
            ]
            legend = ", ".join(f"{v} = {d}" for d, v in initials.items())
        width = max(len(m) for m, _ in table)
        cols = [max(len(s), 5) for s in shifts]
        header = f"{'method':<{width}} " + " ".join(
            f"{s:>{c}}" for s, c in zip(shifts, cols, strict=True)
        )
        header += f" {'avg':>5}"
        lines = [header, "-" * len(header)]
        for method, values in table:
            cells = " ".join(f"{100 * v:>{c}.1f}" for v, c in zip(values[:-1], cols, strict=True))
            lines.append(f"{method:<{width}} {cells} {100 * values[-1]:>5.1f}")
        if legend:
            lines.append(legend)
        return "\n".join(lines)

    def pair_matrix(self) -> tuple[list[str], list[tuple[str, list[float]]]] | None:
        """For the domains protocol: (shift names, [(method, accuracy per shift + average)])."""
        pairs = [r for r in self.rows if "source" in r]
        if not pairs:
            return None
        shifts = list(dict.fromkeys(r["split"] for r in pairs))
        methods: dict[str, dict[str, float]] = {}
        for r in pairs:
            method = f"{r['extractor']} + {r['aligner']} + {r['classifier']}"
            methods.setdefault(method, {})[r["split"]] = r["accuracy"]
        table = []
        for method, accs in methods.items():
            values = [accs.get(s, float("nan")) for s in shifts]
            table.append((method, [*values, float(np.nanmean(values))]))
        return shifts, table

    def to_json(self) -> dict[str, Any]:
        """The JSON document saved as ``results.json``."""
        return {
            "summary": self.summary(),
            "results": self.rows,
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
        split_keys = [k for k in SPLIT_KEYS if any(k in r for r in self.rows)]
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


def summarize(rows: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per (extractor, aligner, classifier): means over splits, and the accuracy's
    standard deviation, best first."""
    groups: dict[tuple[str, str, str], list[dict[str, Any]]] = {}
    for r in rows:
        groups.setdefault((r["extractor"], r["aligner"], r["classifier"]), []).append(r)
    out = []
    for (extractor, aligner, classifier), members in groups.items():
        acc = np.array([m["accuracy"] for m in members])
        out.append(
            {
                "extractor": extractor,
                "aligner": aligner,
                "classifier": classifier,
                "n_splits": len(members),
                "accuracy": float(acc.mean()),
                "accuracy_std": float(acc.std()),
                "balanced_accuracy": float(np.mean([m["balanced_accuracy"] for m in members])),
                "macro_f1": float(np.mean([m["macro_f1"] for m in members])),
                "dim": members[0]["dim"],
                "extract_s": float(members[0].get("extract_s", 0.0)),
                "fit_s": float(np.mean([m["fit_s"] for m in members])),
                "predict_s": float(np.mean([m["predict_s"] for m in members])),
            }
        )
    return sorted(out, key=lambda r: (-r["accuracy"], r["extractor"], r["classifier"]))

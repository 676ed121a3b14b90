"""The report page: ``report.md`` with the ranked table, the charts and the provenance."""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from featkit.hardware import bf16_kernel_name, describe_runtime
from featkit.report.tables import chosen_lines, escape_cell, pair_table, ranking_table

if TYPE_CHECKING:
    from featkit.evaluate.results import EvaluationResult
    from featkit.evaluate.rows import MethodSummary, ScoreRow

logger = logging.getLogger(__name__)

__all__ = ["render_markdown", "runtime_lines", "write_charts", "write_markdown"]

ACCURACY_PNG = "accuracy.png"
CONFUSION_PNG = "confusion_matrix.png"
VIEWS_PNG = "features_2d.png"
ALIGNMENT_PNG = "alignment_2d.png"


def write_markdown(result: EvaluationResult, out: Path, charts: dict[str, str]) -> Path:
    """Write ``report.md`` into ``out``, showing the ``charts`` (from :func:`write_charts`)."""
    path = out / "report.md"
    path.write_text(render_markdown(result, charts))
    return path


def write_charts(result: EvaluationResult, out: Path) -> dict[str, str]:
    """Draw the PNG charts into ``out``: ``{chart: file name}``."""
    from featkit.report.plots import (
        accuracy_chart,
        alignment_views_chart,
        confusion_matrix_chart,
        feature_views_chart,
    )

    summary = result.summary()
    if not summary:
        return {}
    class_names = result.provenance["dataset"]["class_names"]
    charts = {}
    accuracy_chart(summary, out / ACCURACY_PNG)
    charts["accuracy"] = ACCURACY_PNG
    best = summary[0]
    matrix = _summed_confusion(result.rows, best)
    title = f"{best.method}: accuracy {best['accuracy']:.3f}"
    confusion_matrix_chart(matrix, class_names, title, out / CONFUSION_PNG)
    charts["confusion"] = CONFUSION_PNG
    if result.views and all("domain" in v for v in result.views.values()):
        alignment_views_chart(result.views, out / ALIGNMENT_PNG)
        charts["alignment"] = ALIGNMENT_PNG
    elif result.views:
        feature_views_chart(result.views, class_names, out / VIEWS_PNG)
        charts["views"] = VIEWS_PNG
    return charts


def _summed_confusion(rows: Sequence[ScoreRow], best: MethodSummary) -> Any:
    """The best pair's confusion matrix, summed over its splits (k-fold: every row once)."""
    import numpy as np

    keys = ("extractor", "aligner", "classifier")
    members = [r for r in rows if all(r[k] == best[k] for k in keys)]
    return np.sum([np.asarray(r["confusion_matrix"]) for r in members], axis=0)


def _machine_lines(prov: dict[str, Any]) -> list[str]:
    """Where the numbers were computed, and in which precision each deep extractor ran:
    bf16 results differ in their last digits between CPU kinds and GPU models."""
    machine = prov.get("machine")
    if not machine:
        return []
    kernels = bf16_kernel_name(machine.get("cpu_bf16"))
    text = f"Computed on {machine.get('cpu', '?')} ({machine.get('cores', '?')} cores"
    text += f", bf16 in {kernels}" if kernels else ", no native bf16"
    if machine.get("gpus"):
        text += ", GPU " + ", ".join(machine["gpus"])
    return ["", text + ")."] + [f"{line}." for line in runtime_lines(prov, code=True)]


def runtime_lines(prov: dict[str, Any], *, code: bool = False) -> list[str]:
    """ "cnn ran in bf16 on the CPU (...)" for each extractor of a result that ran on a
    device in a precision (``code``: the name in markdown code quotes)."""
    lines = []
    machines = prov.get("machines") or {}  # per feature set, when scored from saved ones
    for name, config in (prov.get("extractors") or {}).items():
        runtime = (config or {}).get("runtime")
        if runtime:
            machine = machines.get(name) or prov.get("machine")
            shown = f"`{escape_cell(name)}`" if code else name
            lines.append(f"{shown} ran in {describe_runtime(runtime, machine)}")
    return lines


def render_markdown(result: EvaluationResult, charts: dict[str, str]) -> str:
    """The report page as markdown text."""
    prov = result.provenance
    data, protocol = prov["dataset"], prov["protocol"]
    summary = result.summary()
    lines = [
        f"# featkit {prov.get('job', 'evaluate')}: {data['name']}",
        "",
        f"{data.get('n_images', '?')} images, {len(data['class_names'])} classes. "
        f"Protocol: {protocol['name']} ({protocol['description']}). "
        f"featkit {prov.get('featkit', '?')}, seed {prov.get('seed', 0)}.",
        *_machine_lines(prov),
        "",
        ranking_table(summary, markdown=True),
    ]
    pairs = pair_table(result, markdown=True)
    if pairs is not None:
        lines += ["", "## Accuracy (%) per domain shift", "", pairs]
    if "accuracy" in charts:
        lines += [
            "",
            "## Accuracy",
            "",
            f"![accuracy per extractor and classifier]({charts['accuracy']})",
        ]
    if "confusion" in charts:
        best = summary[0]
        lines += [
            "",
            f"## Confusion matrix of the best pair: {best.method}",
            "",
            f"![confusion matrix]({charts['confusion']})",
        ]
    if "views" in charts:
        method = next(iter(result.views.values()))["method"]
        lines += [
            "",
            "## Features in 2-D",
            "",
            f"Each extractor's features projected to 2-D ({method}), coloured by class: "
            "classes that form separate clouds are easy for a linear classifier or k-NN.",
            "",
            f"![features in 2-D]({charts['views']})",
        ]
    if "alignment" in charts:
        view = next(iter(result.views.values()))
        lines += [
            "",
            f"## Source and target in 2-D: {escape_cell(view.get('shift', ''))}",
            "",
            f"The features of one shift projected to 2-D ({view['method']}), before alignment "
            "and after each aligner, coloured by domain: aligned domains overlap.",
            "",
            f"![source and target before and after alignment]({charts['alignment']})",
        ]
    failed = {r["extractor"]: r.get("n_failed", 0) for r in result.rows if r.get("n_failed")}
    if failed:
        lines += [""] + [
            f"{count} images could not be used by `{name}` and are not scored."
            for name, count in failed.items()
        ]
    chosen = chosen_lines(result.rows)
    lines += ["", "## Classifiers", ""]
    lines += [f"- `{c}`: {d}" for c, d in prov.get("classifiers", {}).items()]
    if chosen:
        lines += ["", "Hyper-parameters chosen without the test rows:", ""]
        lines += [f"- {method}: {values}" for method, values in chosen]
    if result.skipped:
        lines += ["", "## Skipped", ""]
        lines += [f"- `{name}`: {why}" for name, why in result.skipped.items()]
    lines += [
        "",
        "## Provenance",
        "",
        "```json",
        json.dumps(
            {
                k: prov[k]
                for k in ("featkit", "versions", "machine", "extractors", "seed")
                if k in prov
            },
            indent=2,
            default=str,
        ),
        "```",
    ]
    return "\n".join(lines) + "\n"

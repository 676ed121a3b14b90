"""Plain-text summaries for the terminal: a result's ranking, and what building an index
measured."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

from featkit.report.markdown import runtime_lines
from featkit.report.tables import pair_table, ranking_table

if TYPE_CHECKING:
    from featkit.evaluate.results import EvaluationResult
    from featkit.index import FeatureIndex

__all__ = ["index_build_lines", "index_build_summary", "result_lines"]


def result_lines(result: EvaluationResult) -> list[str]:
    """What ``featkit compare``, ``adapt`` and ``evaluate`` print: the data set and protocol,
    how each deep extractor ran, the ranking, the domain-pair matrix (when there are
    domain pairs) and the skipped extractors."""
    data, protocol = result.provenance["dataset"], result.provenance["protocol"]
    lines = [f"{data['name']}: {data.get('n_images', '?')} images, {protocol['description']}"]
    lines += runtime_lines(result.provenance)
    lines.append(ranking_table(result.summary()))
    pairs = pair_table(result)
    if pairs is not None:
        lines += ["", "accuracy (%) per domain shift:", pairs]
    return lines + [f"skipped {name}: {why}" for name, why in result.skipped.items()]


#: ``FeatureIndex.stats`` entries of the JSON summary, in its order.
_BUILD_STATS = ("build_seconds", "train_seconds", "add_seconds", "index_bytes", "peak_rss_bytes")


def index_build_summary(index: FeatureIndex, out: str | os.PathLike) -> dict[str, Any]:
    """A JSON-ready summary of an index from :func:`featkit.index.build_index`, saved to
    ``out``: factory, metric, rows, build timings, sizes, device and recall (or None)."""
    stats = index.stats
    summary: dict[str, Any] = {
        "out": str(out),
        "factory": index.factory,
        "metric": index.metric,
        "n": index.ntotal,
    }
    summary.update({key: stats.get(key) for key in _BUILD_STATS})
    return {**summary, "device": index.device, "recall": stats.get("recall")}


def index_build_lines(index: FeatureIndex, out: str | os.PathLike) -> list[str]:
    """The lines ``featkit index build`` prints: rows, factory, metric and file; build time,
    size and peak memory; for an approximate index, recall@k against exact search."""
    stats = index.stats
    lines = [f"{index.ntotal} rows indexed with {index.factory!r} ({index.metric}); saved to {out}"]
    peak = stats["peak_rss_bytes"]
    memory = f", peak memory of this process {peak / 2**20:,.0f} MB" if peak else ""
    lines.append(
        f"built in {stats['build_seconds']:.1f} s; index {stats['index_bytes'] / 2**20:,.1f} MB"
        + memory
    )
    recall = stats.get("recall")
    if recall:
        which = "held-out queries" if recall["held_out"] else "indexed rows as queries"
        lines.append(
            f"recall@{recall['k']} against exact search: {recall['recall_at_k']:.4f} "
            f"({recall['queries']} {which}); {recall['queries_per_second']:,.0f} queries/s, "
            f"exact {recall['exact_queries_per_second']:,.0f} queries/s"
        )
    return lines

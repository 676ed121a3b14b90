"""Report charts (matplotlib, no screen needed): accuracy bars, confusion matrix, 2-D views."""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import numpy as np

__all__ = [
    "accuracy_chart",
    "alignment_views_chart",
    "confusion_matrix_chart",
    "feature_views_chart",
]


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")  # files only: works on servers and in CI
    import matplotlib.pyplot as plt

    return plt


def accuracy_chart(summary: Sequence[dict[str, Any]], path: str | os.PathLike) -> None:
    """Grouped bars: mean accuracy per extractor (groups) and classifier (bars), with the
    standard deviation over splits as error bars when there are several splits."""
    plt = _pyplot()
    extractors = list(dict.fromkeys(_group(r, summary) for r in summary))
    classifiers = list(dict.fromkeys(r["classifier"] for r in summary))
    by_key = {(_group(r, summary), r["classifier"]): r for r in summary}
    width = 0.8 / max(len(classifiers), 1)
    fig, ax = plt.subplots(figsize=(max(6.0, 1.3 * len(extractors) + 3), 3.8))
    x = np.arange(len(extractors))
    for j, clf in enumerate(classifiers):
        rows = [by_key.get((e, clf)) for e in extractors]
        acc = [r["accuracy"] if r else np.nan for r in rows]
        spread = any(r and r["n_splits"] > 1 for r in rows)
        err = [r["accuracy_std"] if r else 0.0 for r in rows] if spread else None
        bars = ax.bar(
            x + (j - (len(classifiers) - 1) / 2) * width, acc, width, yerr=err, label=clf, capsize=2
        )
        ax.bar_label(bars, fmt="%.3f", fontsize=7, padding=2, rotation=90)
    ax.set_xticks(x, extractors)
    ax.set_ylabel("accuracy")
    low = np.nanmin([r["accuracy"] for r in summary]) if summary else 0.0
    ax.set_ylim(max(0.0, low - 0.1), 1.06)  # headroom for the bar labels
    ax.set_yticks([t for t in ax.get_yticks() if t <= 1.0])
    ax.legend(title="classifier", fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    aligned = any(r["aligner"] != "none" for r in summary)
    ax.set_title(f"Accuracy per {'method' if aligned else 'extractor'} and classifier")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def _group(row: dict[str, Any], summary: Sequence[dict[str, Any]]) -> str:
    """A bar group's label: the extractor, plus the aligner when anything was aligned."""
    if all(r["aligner"] == "none" for r in summary):
        return row["extractor"]
    extractors = {r["extractor"] for r in summary}
    return row["aligner"] if len(extractors) == 1 else f"{row['extractor']} + {row['aligner']}"


def confusion_matrix_chart(
    matrix: Sequence[Sequence[int]],
    class_names: Sequence[str],
    title: str,
    path: str | os.PathLike,
) -> None:
    """A confusion matrix (rows: true class, columns: predicted), counts in the cells."""
    from sklearn.metrics import ConfusionMatrixDisplay

    plt = _pyplot()
    n = len(class_names)
    size = min(12.0, max(4.5, 0.5 * n + 2))
    fig, ax = plt.subplots(figsize=(size, size))
    display = ConfusionMatrixDisplay(np.asarray(matrix), display_labels=list(class_names))
    display.plot(
        ax=ax,
        cmap="Blues",
        colorbar=False,
        include_values=n <= 30,
        xticks_rotation="vertical" if n > 6 else "horizontal",
    )
    ax.set_title(title)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def feature_views_chart(
    views: dict[str, dict[str, Any]], class_names: Sequence[str], path: str | os.PathLike
) -> None:
    """One scatter panel per extractor: its features in 2-D, coloured by class."""
    plt = _pyplot()
    names = list(views)
    cols = min(len(names), 4)
    rows = -(-len(names) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(3.4 * cols, 3.3 * rows + 0.6), squeeze=False)
    cmap = plt.get_cmap("tab10" if len(class_names) <= 10 else "tab20")
    for ax, name in zip(axes.flat, names, strict=False):
        view = views[name]
        xy, y = np.asarray(view["xy"]), np.asarray(view["y"])
        ax.scatter(
            xy[:, 0],
            xy[:, 1],
            c=y,
            cmap=cmap,
            vmin=0,
            vmax=cmap.N - 1,
            s=4,
            alpha=0.7,
            linewidths=0,
        )
        ax.set_title(f"{name} ({view['method']})", fontsize=9)
        ax.set_xticks([])
        ax.set_yticks([])
    for ax in axes.flat[len(names) :]:
        ax.axis("off")
    handles = [
        plt.Line2D([], [], marker="o", ls="", color=cmap(i), label=c)
        for i, c in enumerate(class_names[: cmap.N])
    ]
    ncol = min(len(handles), 5 * cols)
    legend_rows = -(-len(handles) // max(ncol, 1))
    fig.legend(handles=handles, loc="lower center", ncol=ncol, fontsize=7, frameon=False)
    fig.tight_layout(rect=(0, 0.05 * legend_rows / rows + 0.03, 1, 1))
    fig.savefig(path, dpi=120)
    plt.close(fig)


def alignment_views_chart(views: dict[str, dict[str, Any]], path: str | os.PathLike) -> None:
    """One scatter panel per aligner (``none`` first: before alignment): the source and the
    target features of one shift in 2-D, coloured by domain."""
    plt = _pyplot()
    names = list(views)
    cols = min(len(names), 4)
    rows = -(-len(names) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(3.4 * cols, 3.3 * rows + 0.6), squeeze=False)
    colours = {"source": "tab:blue", "target": "tab:orange"}
    for ax, name in zip(axes.flat, names, strict=False):
        view = views[name]
        xy, domain = np.asarray(view["xy"]), np.asarray(view["domain"])
        for which, colour in colours.items():
            keep = domain == which
            ax.scatter(xy[keep, 0], xy[keep, 1], c=colour, s=4, alpha=0.5, linewidths=0)
        title = "before alignment" if name == "none" else name
        ax.set_title(f"{title} ({view['method']})", fontsize=9)
        ax.set_xticks([])
        ax.set_yticks([])
    for ax in axes.flat[len(names) :]:
        ax.axis("off")
    shift = next(iter(views.values())).get("shift", "")
    handles = [
        plt.Line2D([], [], marker="o", ls="", color=c, label=f"{d} ({part})")
        for (d, c), part in zip(colours.items(), shift.split("→"), strict=False)
    ]
    fig.legend(handles=handles, loc="lower center", ncol=2, fontsize=8, frameon=False)
    fig.tight_layout(rect=(0, 0.06 / rows + 0.03, 1, 1))
    fig.savefig(path, dpi=120)
    plt.close(fig)

"""The report folder's pages: ``report.md`` with its PNG charts, and ``report.html``."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from featkit.report.html import write_html
from featkit.report.markdown import write_charts, write_markdown

if TYPE_CHECKING:
    from featkit.evaluate.results import EvaluationResult

__all__ = ["write_report"]


def write_report(
    result: EvaluationResult,
    out: Path,
    *,
    plots: bool = True,
    disagree: Sequence[str] | None = None,
) -> Path:
    """Write ``report.md`` and ``report.html`` (and, with ``plots``, the PNG charts) into
    ``out``; returns the path of ``report.md``. ``disagree``: the two methods whose
    disagreements ``report.html`` shows (default: see :func:`~featkit.report.html.
    render_html`)."""
    charts = write_charts(result, out) if plots else {}
    write_html(result, out, charts, methods=disagree)
    return write_markdown(result, out, charts)

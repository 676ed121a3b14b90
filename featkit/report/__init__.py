"""Reports of evaluation results: a markdown page with PNG charts (matplotlib)."""

from featkit.report.markdown import write_report

__all__ = ["write_report"]

"""Reports of evaluation results: a markdown page with PNG charts (matplotlib), and the
same as one self-contained HTML page with thumbnails of the images."""

from featkit.report.folder import write_report

__all__ = ["write_report"]

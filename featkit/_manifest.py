"""Reading the JSON file that describes a saved FeatureSet or FeatureIndex."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from featkit.exceptions import DatasetError

__all__ = ["read_manifest"]


def read_manifest(path: Path, fmt: str, what: str) -> dict[str, Any]:
    """The JSON object in ``path`` whose ``"format"`` is ``fmt``.

    An unreadable file, invalid JSON, or another format (``what`` names the expected one, e.g.
    "FeatureSet manifest") raises :class:`~featkit.exceptions.DatasetError`; the caller
    checks the file exists and its ``format_version``, with its own messages.
    """
    try:
        manifest = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise DatasetError(f"cannot read {path}: {exc}") from exc
    if not isinstance(manifest, dict) or manifest.get("format") != fmt:
        raise DatasetError(f"{path} is not a featkit {what}")
    return manifest

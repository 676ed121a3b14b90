"""CSV manifests: one image per row, columns ``path,label[,domain][,split]``."""

from __future__ import annotations

import csv
import os
from pathlib import Path

import numpy as np

from featkit.data.dataset import UNLABELLED, Dataset
from featkit.exceptions import DatasetError

REQUIRED = ("path",)
OPTIONAL = ("label", "domain", "split")


def load_manifest(csv_path: str | os.PathLike) -> Dataset:
    """Load a CSV manifest; relative paths are resolved against the CSV's folder.

    ``label`` may be any text (classes are sorted names); an empty label is unlabelled.
    Missing files are kept: extraction reports them as failures with the reason.
    """
    path = Path(csv_path)
    if not path.is_file():
        raise DatasetError(f"manifest {os.fspath(csv_path)!r} does not exist")
    try:
        with open(path, newline="", encoding="utf-8-sig") as fh:
            reader = csv.DictReader(fh)
            columns = [c.strip() for c in reader.fieldnames or []]
            rows = [{k.strip(): (v or "").strip() for k, v in row.items() if k} for row in reader]
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise DatasetError(f"cannot read manifest {path}: {exc}") from exc
    if "path" not in columns:
        raise DatasetError(
            f"manifest {path} has columns {columns}; it needs a 'path' column "
            f"(optional: {', '.join(OPTIONAL)})"
        )
    if not rows:
        raise DatasetError(f"manifest {path} lists no images")
    for line, row in enumerate(rows, start=2):
        if not row.get("path"):
            raise DatasetError(f"manifest {path}, line {line}: empty path")
    base = path.parent
    paths = [str(_resolve(base, r["path"])) for r in rows]
    raw_labels = [r.get("label", "") for r in rows]
    class_names = sorted({lab for lab in raw_labels if lab}, key=_natural_key)
    index = {name: i for i, name in enumerate(class_names)}
    labels = np.asarray([index[lab] if lab else UNLABELLED for lab in raw_labels])
    has = {c: c in columns for c in ("domain", "split")}
    return Dataset(
        items=paths,
        labels=labels,
        class_names=class_names,
        ids=np.asarray([r["path"] for r in rows]),
        domains=np.asarray([r["domain"] for r in rows]) if has["domain"] else None,
        splits=np.asarray([r["split"] for r in rows]) if has["split"] else None,
        name=path.stem,
        root=str(base),
        info={"source": f"CSV manifest {path.name}"},
    )


def _resolve(base: Path, value: str) -> Path:
    p = Path(value).expanduser()
    return p if p.is_absolute() else base / p


def _natural_key(name: str) -> tuple[int, float | str]:
    # Numeric labels sort as numbers ("2" before "10"); others alphabetically.
    try:
        return (0, float(name))
    except ValueError:
        return (1, name)

"""FeatureSet: feature rows with their labels, domains, ids, failures and provenance.

Saved as plain ``.npy`` arrays plus a ``featureset.json`` manifest: no pickle, readable
from any language, and memory-mappable so large sets load without being read whole.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from featkit._manifest import read_manifest
from featkit.exceptions import DatasetError

__all__ = ["FeatureSet"]

FORMAT = "featkit.FeatureSet"
FORMAT_VERSION = 1
#: Provenance entries that ``describe()`` reports, of a FeatureSet and a feature store alike.
DESCRIBED_PROVENANCE = ("extractor", "created", "versions", "timing")


@dataclass(eq=False)
class FeatureSet:
    """Features ``X`` (n, d) float32 of the images that were read, with their metadata.

    ``y``, ``ids``, ``domains`` and ``splits`` are aligned with the rows of ``X``.
    ``failed`` lists the images that could not be used: ``{"id", "source", "reason"}``.
    ``provenance`` records versions, the extractor config, the data set and timings.
    """

    X: np.ndarray
    y: np.ndarray
    ids: np.ndarray
    class_names: list[str]
    domains: np.ndarray | None = None
    splits: np.ndarray | None = None
    failed: list[dict[str, str]] = field(default_factory=list)
    provenance: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        n = len(self.X)
        if self.X.ndim != 2:
            raise DatasetError(f"FeatureSet: X must be 2-D (n, d), got shape {self.X.shape}")
        self.y = np.asarray(self.y, dtype=np.int64)
        self.ids = np.asarray(self.ids, dtype=str)
        if self.domains is not None:
            self.domains = np.asarray(self.domains, dtype=str)
        if self.splits is not None:
            self.splits = np.asarray(self.splits, dtype=str)
        for attr in ("y", "ids", "domains", "splits"):
            value = getattr(self, attr)
            if value is not None and len(value) != n:
                raise DatasetError(f"FeatureSet: {attr} has {len(value)} entries for {n} rows")

    def __len__(self) -> int:
        return len(self.X)

    def __repr__(self) -> str:
        extractor = self.provenance.get("extractor", {}).get("name", "?")
        parts = [f"n={len(self)}", f"d={self.dim}", f"extractor={extractor!r}"]
        if self.domains is not None:
            parts.append(f"domains={sorted(set(self.domains.tolist()))}")
        if self.failed:
            parts.append(f"failed={len(self.failed)}")
        return f"FeatureSet({', '.join(parts)})"

    @property
    def dim(self) -> int:
        """Feature dimension d."""
        return int(self.X.shape[1])

    def describe(self) -> dict[str, Any]:
        """A JSON-ready summary: rows, dimension, classes, domains, splits, the count of
        failed images, and the extractor, creation time, versions and timing of the
        provenance (None where it does not say)."""
        summary: dict[str, Any] = {
            "n": len(self),
            "dim": self.dim,
            "classes": list(self.class_names),
            "domains": None if self.domains is None else sorted(set(self.domains.tolist())),
            "splits": None if self.splits is None else sorted(set(self.splits.tolist())),
            "failed": len(self.failed),
        }
        summary.update({key: self.provenance.get(key) for key in DESCRIBED_PROVENANCE})
        return summary

    def subset(self, indices: np.ndarray | list[int]) -> FeatureSet:
        """Rows at ``indices`` (integer positions or a boolean mask); failures are kept."""
        idx = np.asarray(indices)
        if idx.dtype == bool:
            idx = np.flatnonzero(idx)
        return replace(
            self,
            X=np.asarray(self.X[idx]),
            y=self.y[idx],
            ids=self.ids[idx],
            domains=None if self.domains is None else self.domains[idx],
            splits=None if self.splits is None else self.splits[idx],
        )

    def select(self, *, domain: str | None = None, split: str | None = None) -> FeatureSet:
        """Rows of one domain and/or split."""
        mask = np.ones(len(self), dtype=bool)
        for value, column, what in (
            (domain, self.domains, "domain"),
            (split, self.splits, "split"),
        ):
            if value is None:
                continue
            if column is None or value not in set(column.tolist()):
                have = [] if column is None else sorted(set(column.tolist()))
                raise DatasetError(f"this FeatureSet has no {what} {value!r}; it has {have}")
            mask &= column == value
        return self.subset(mask)

    @classmethod
    def from_npz(cls, path: str | os.PathLike) -> FeatureSet:
        """Features computed elsewhere: an ``.npz`` with ``X`` (n, d), optional ``y``,
        ``class_names``, ``ids``, ``domains`` and ``split``."""
        src = Path(path)
        try:
            with np.load(src, allow_pickle=False) as archive:
                data = {k: archive[k] for k in archive.files}
        except (OSError, ValueError) as exc:
            raise DatasetError(f"cannot read {src}: {exc}") from exc
        if "X" not in data or data["X"].ndim != 2:
            raise DatasetError(f"{src} needs a 2-D feature array 'X' (n, d)")
        X = np.ascontiguousarray(data["X"], dtype=np.float32)
        n = len(X)
        if "y" in data and "class_names" not in data:
            uniques, y = np.unique(np.asarray(data["y"]).reshape(-1), return_inverse=True)
            class_names = [str(u) for u in uniques]
        else:
            y = np.asarray(data.get("y", np.full(n, -1))).reshape(-1)
            class_names = [str(c) for c in data.get("class_names", [])]
        return cls(
            X=X,
            y=y,
            ids=data.get("ids", np.asarray([f"{src.stem}/{i}" for i in range(n)])),
            class_names=class_names,
            domains=data.get("domains"),
            splits=data.get("split"),
            provenance={"source": f"npz features {src.name}"},
        )

    def save(self, directory: str | os.PathLike) -> Path:
        """Write ``X.npy``, ``y.npy``, ``ids.npy`` (and domains/splits) and ``featureset.json``.

        The folder is written beside its destination and renamed into place, so a crash
        never leaves a mix of old and new files; an existing FeatureSet there is replaced.
        """
        out = Path(directory).expanduser()
        check_output_folder(out)
        out.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
        try:
            self._write(staging)
            if out.exists():
                old = out.with_name(f".{out.name}.old-{os.getpid()}")
                os.replace(out, old)
                os.replace(staging, out)
                shutil.rmtree(old, ignore_errors=True)
            else:
                os.replace(staging, out)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        return out

    def _write(self, out: Path) -> None:
        arrays = {"X": np.ascontiguousarray(self.X, dtype=np.float32), "y": self.y, "ids": self.ids}
        if self.domains is not None:
            arrays["domains"] = self.domains
        if self.splits is not None:
            arrays["splits"] = self.splits
        for key, value in arrays.items():
            np.save(out / f"{key}.npy", value, allow_pickle=False)
        manifest = {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "n": len(self),
            "dim": self.dim,
            "arrays": sorted(arrays),
            "class_names": list(self.class_names),
            "failed": self.failed,
            "provenance": self.provenance,
        }
        (out / "featureset.json").write_text(json.dumps(manifest, indent=2, default=str))

    @classmethod
    def load(cls, directory: str | os.PathLike, *, mmap: bool = True) -> FeatureSet:
        """Read a FeatureSet written by :meth:`save` (or an ``.npz`` of features, see
        :meth:`from_npz`); ``mmap`` maps ``X`` instead of reading it."""
        src = Path(directory).expanduser()
        if src.suffix.lower() == ".npz" and src.is_file():
            return cls.from_npz(src)
        manifest_path = src / "featureset.json"
        if not manifest_path.is_file():
            raise DatasetError(f"{src} is not a saved FeatureSet: featureset.json is missing")
        manifest = read_manifest(manifest_path, FORMAT, "FeatureSet manifest")
        problem = _manifest_problem(manifest)
        if problem:
            raise DatasetError(f"{manifest_path} is damaged: {problem}")
        if manifest.get("format_version", 0) > FORMAT_VERSION:
            raise DatasetError(
                f"{src} was written by a newer featkit (format {manifest['format_version']}); "
                "upgrade featkit to read it"
            )
        arrays = {}
        for key in manifest["arrays"]:
            path = src / f"{key}.npy"
            try:
                arrays[key] = np.load(path, mmap_mode="r" if mmap and key == "X" else None)
            except (OSError, ValueError) as exc:
                raise DatasetError(f"cannot read {path}: {exc}") from exc
        expected = (manifest["n"], manifest["dim"])
        if arrays["X"].shape != expected:
            raise DatasetError(
                f"{src}: X.npy has shape {arrays['X'].shape} but the manifest says {expected}; "
                "the folder was modified or partly written"
            )
        return cls(
            X=arrays["X"],
            y=arrays["y"],
            ids=arrays["ids"],
            class_names=list(manifest["class_names"]),
            domains=arrays.get("domains"),
            splits=arrays.get("splits"),
            failed=list(manifest.get("failed", [])),
            provenance=dict(manifest.get("provenance", {})),
        )


def check_output_folder(out: Path) -> None:
    """Refuse a destination that is a file, or a non-empty folder that is not a FeatureSet."""
    if out.exists() and not out.is_dir():
        raise DatasetError(f"cannot save features to {out}: it is a file")
    if out.is_dir() and any(out.iterdir()) and not (out / "featureset.json").is_file():
        raise DatasetError(
            f"cannot save features to {out}: it is a non-empty folder that is not a FeatureSet"
        )


def _manifest_problem(manifest: dict[str, Any]) -> str | None:
    checks = {
        "n": lambda v: isinstance(v, int) and v >= 0,
        "dim": lambda v: isinstance(v, int) and v >= 0,
        "arrays": lambda v: isinstance(v, list) and {"X", "y", "ids"} <= set(v),
        "class_names": lambda v: isinstance(v, list),
        "failed": lambda v: isinstance(v, list),
        "provenance": lambda v: isinstance(v, dict),
    }
    for key, ok in checks.items():
        if key not in manifest or not ok(manifest[key]):
            return f"missing or invalid {key!r}"
    return None

"""A sharded, appendable feature store for feature sets larger than memory.

A store is a folder of shards, each ``shard-NNNNN.npy`` (float32 rows, read memory-mapped)
with ``shard-NNNNN.labels.npy`` (int64) and ``shard-NNNNN.ids.json``, listed in
``manifest.json`` with their row counts. A shard is written first and the manifest, the
commit marker, is replaced atomically after it: a crash mid-append leaves the store as it
was before that append.

>>> store = ShardStore.create("feats.store", dim=128)          # doctest: +SKIP
>>> store.append(X_chunk, y_chunk, ids_chunk)                   # doctest: +SKIP
>>> for X, y in store.batches(): ...                            # doctest: +SKIP
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from featkit.cache import atomic_write
from featkit.exceptions import FeatkitError, InvalidParameterError
from featkit.features import DESCRIBED_PROVENANCE, FeatureSet

__all__ = ["ShardStore", "open_features"]

MANIFEST = "manifest.json"
FORMAT = "featkit-shards-v1"


class ShardStore:
    """Feature rows in float32 shards on disk, with labels and ids; open with
    ``ShardStore(path)``, make with :meth:`create` or :meth:`from_featureset`."""

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)
        manifest = self.path / MANIFEST
        if not manifest.is_file():
            raise FeatkitError(f"{self.path} is not a feature store (no {MANIFEST})")
        self._manifest = json.loads(manifest.read_text())
        if self._manifest.get("format") != FORMAT:
            raise FeatkitError(f"{manifest}: unknown format {self._manifest.get('format')!r}")

    @classmethod
    def create(
        cls,
        path: str | os.PathLike,
        dim: int,
        class_names: Sequence[str] = (),
        metadata: dict[str, Any] | None = None,
    ) -> ShardStore:
        """An empty store of ``dim``-dimensional rows in a new (or empty) folder."""
        if isinstance(dim, bool) or not isinstance(dim, (int, np.integer)) or dim < 1:
            raise InvalidParameterError(f"dim must be a positive int, got {dim!r}")
        root = Path(path)
        if root.exists() and any(root.iterdir()):
            raise FeatkitError(f"{root} exists and is not empty; open it with ShardStore(path)")
        root.mkdir(parents=True, exist_ok=True)
        manifest = {
            "format": FORMAT,
            "dim": int(dim),
            "class_names": list(class_names),
            "metadata": metadata or {},
            "shards": [],
        }
        _write_json_atomic(root / MANIFEST, manifest)
        return cls(root)

    @classmethod
    def from_featureset(
        cls, features: Any, path: str | os.PathLike, shard_rows: int = 100_000
    ) -> ShardStore:
        """A store holding a FeatureSet's rows, labels and ids, ``shard_rows`` per shard."""
        store = cls.create(
            path, features.X.shape[1], features.class_names, {"provenance": features.provenance}
        )
        for start in range(0, len(features.X), shard_rows):
            stop = start + shard_rows
            store.append(features.X[start:stop], features.y[start:stop], features.ids[start:stop])
        return store

    # -- what it holds ----------------------------------------------------------------------
    @property
    def dim(self) -> int:
        """Length of one row."""
        return int(self._manifest["dim"])

    @property
    def class_names(self) -> list[str]:
        """Names of the label values."""
        return list(self._manifest["class_names"])

    @property
    def metadata(self) -> dict[str, Any]:
        """What the store was made from (``{"provenance": ...}`` of a FeatureSet)."""
        return dict(self._manifest.get("metadata") or {})

    @property
    def n_shards(self) -> int:
        """Number of shards."""
        return len(self._manifest["shards"])

    @property
    def shard_rows(self) -> list[int]:
        """Row count of each shard."""
        return [int(entry["rows"]) for entry in self._manifest["shards"]]

    def __len__(self) -> int:
        return sum(s["rows"] for s in self._manifest["shards"])

    def __repr__(self) -> str:
        rows, shards = len(self), self.n_shards
        return f"ShardStore({str(self.path)!r}, rows={rows}, dim={self.dim}, shards={shards})"

    def describe(self) -> dict[str, Any]:
        """A JSON-ready summary, the keys of :meth:`FeatureSet.describe` with ``shards``
        (domains and splits are None: a store keeps neither), reading the failures of every
        shard and the provenance kept in its metadata."""
        provenance = self.metadata.get("provenance") or {}
        summary: dict[str, Any] = {
            "n": len(self),
            "dim": self.dim,
            "shards": self.n_shards,
            "classes": self.class_names,
            "domains": None,
            "splits": None,
            "failed": len(self.failed),
        }
        summary.update({key: provenance.get(key) for key in DESCRIBED_PROVENANCE})
        return summary

    # -- writing ----------------------------------------------------------------------------
    def append(
        self,
        X: np.ndarray,
        y: np.ndarray | None = None,
        ids: Sequence[Any] | None = None,
        failed: Sequence[dict[str, str]] = (),
    ) -> None:
        """Add rows as one new shard (labels -1 and ids ``shard/row`` when not given), with
        the images that could not be used for it (``{"id", "source", "reason"}`` each)."""
        X = np.ascontiguousarray(X, dtype=np.float32)
        if X.ndim != 2 or X.shape[1] != self.dim:
            raise InvalidParameterError(
                f"append needs rows of shape (n, {self.dim}), got {X.shape}"
            )
        if not np.isfinite(X).all():
            raise InvalidParameterError("append: the rows hold NaN or inf")
        n = len(X)
        y = np.full(n, -1, np.int64) if y is None else np.asarray(y, dtype=np.int64).reshape(-1)
        k = self.n_shards
        ids = [f"{k}/{i}" for i in range(n)] if ids is None else [str(i) for i in ids]
        if len(y) != n or len(ids) != n:
            raise InvalidParameterError(f"append: {n} rows but {len(y)} labels and {len(ids)} ids")
        name = f"shard-{k:05d}"
        # Shard files first, then the manifest: a crash in between leaves an unlisted shard,
        # which the next append overwrites.
        _save_npy_atomic(self.path / f"{name}.npy", X)
        _save_npy_atomic(self.path / f"{name}.labels.npy", y)
        _write_json_atomic(self.path / f"{name}.ids.json", {"ids": ids, "failed": list(failed)})
        manifest = dict(self._manifest)
        manifest["shards"] = [*self._manifest["shards"], {"name": name, "rows": n}]
        _write_json_atomic(self.path / MANIFEST, manifest)
        self._manifest = manifest

    # -- reading ----------------------------------------------------------------------------
    def shard(self, k: int) -> tuple[np.ndarray, np.ndarray]:
        """(rows, labels) of shard ``k``; the rows are memory-mapped, read-only."""
        entry = self._manifest["shards"][k]
        X = np.load(self.path / f"{entry['name']}.npy", mmap_mode="r")
        y = np.load(self.path / f"{entry['name']}.labels.npy")
        if X.shape != (entry["rows"], self.dim) or len(y) != entry["rows"]:
            raise FeatkitError(f"{self.path}: shard {entry['name']} does not match the manifest")
        return X, y

    def batches(
        self, progress: bool | None = False, desc: str = "shards"
    ) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """(rows, labels) of each shard in turn: one shard in memory at a time.

        ``progress``: a bar counting rows (None: only on a terminal, after 2 s).
        """
        disable = None if progress is None else not progress
        with tqdm(
            total=len(self), unit="row", desc=desc, disable=disable, leave=False, delay=2.0
        ) as bar:
            for k in range(self.n_shards):
                X, y = self.shard(k)
                yield X, y
                bar.update(len(X))

    def shard_ids(self, k: int) -> list[str]:
        """Ids of the rows of shard ``k``."""
        entry = self._manifest["shards"][k]
        return json.loads((self.path / f"{entry['name']}.ids.json").read_text())["ids"]

    def ids_at(self, rows: Sequence[int] | np.ndarray) -> np.ndarray:
        """Ids of the rows at the given global positions, reading only their shards."""
        rows = self._check_positions(rows)
        out = np.empty(len(rows), dtype=object)
        owner = self._owners(rows)
        starts = self._starts()
        for k in np.unique(owner):
            mask = owner == k
            ids = self.shard_ids(int(k))
            out[mask] = [ids[i] for i in (rows[mask] - starts[k]).tolist()]
        return out

    @property
    def labels(self) -> np.ndarray:
        """Label of every row (int64, -1: none), in row order: 8 bytes a row in memory."""
        parts = [
            np.load(self.path / f"{entry['name']}.labels.npy") for entry in self._manifest["shards"]
        ]
        return np.concatenate(parts) if parts else np.zeros(0, np.int64)

    @property
    def failed(self) -> list[dict[str, str]]:
        """The images that could not be used, with their reasons, over all shards."""
        out: list[dict[str, str]] = []
        for entry in self._manifest["shards"]:
            path = self.path / f"{entry['name']}.ids.json"
            out += json.loads(path.read_text()).get("failed", [])
        return out

    @property
    def ids(self) -> np.ndarray:
        """Row ids, in row order (all of them in memory: prefer :meth:`shard_ids`)."""
        ids: list[str] = []
        for k in range(self.n_shards):
            ids += self.shard_ids(k)
        return np.asarray(ids, dtype=object)

    def take(self, rows: Sequence[int] | np.ndarray) -> np.ndarray:
        """The rows at the given global positions (a sample for training an index), float32."""
        rows = self._check_positions(rows)
        starts = self._starts()
        out = np.empty((len(rows), self.dim), dtype=np.float32)
        owner = self._owners(rows)
        for k in np.unique(owner):
            mask = owner == k
            X, _ = self.shard(int(k))
            out[mask] = X[rows[mask] - starts[k]]
        return out

    def _check_positions(self, rows: Sequence[int] | np.ndarray) -> np.ndarray:
        rows = np.asarray(rows, dtype=np.int64).reshape(-1)
        if rows.size and (rows.min() < 0 or rows.max() >= len(self)):
            raise InvalidParameterError(f"row positions must be in 0..{len(self) - 1}")
        return rows

    def _starts(self) -> np.ndarray:
        """Global position of the first row of each shard, and the row count last."""
        return np.cumsum([0] + [s["rows"] for s in self._manifest["shards"]])

    def _owners(self, rows: np.ndarray) -> np.ndarray:
        """The shard of each global position."""
        return np.searchsorted(self._starts(), rows, side="right") - 1


def open_features(path: str | os.PathLike) -> FeatureSet | ShardStore:
    """The saved features at ``path``: a ShardStore (a folder with a store manifest) or a
    FeatureSet (a folder or ``.npz``, memory-mapped)."""
    if (Path(path) / MANIFEST).is_file():
        return ShardStore(path)
    return FeatureSet.load(path)


def _save_npy_atomic(path: Path, array: np.ndarray) -> None:
    tmp = path.with_suffix(".tmp.npy")
    np.save(tmp, array)
    os.replace(tmp, path)


def _write_json_atomic(path: Path, data: dict[str, Any]) -> None:
    atomic_write(path, json.dumps(data, default=str).encode())

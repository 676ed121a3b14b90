"""FeatureIndex: a FAISS index of feature rows with their ids, labels and extractor config.

It is made from a factory string (``"Flat"`` exact search, ``"IVF1024,Flat"``, ``"HNSW32"``,
``"IVF256,PQ16"``, ...), built from a FeatureSet, an array or a ShardStore larger than memory,
searched in batches, and saved as the FAISS file plus a JSON sidecar (``PATH.json``), no
pickle. The faiss calls under it are in :mod:`featkit.index.factory`, its files in
:mod:`featkit.index.persistence`, and the exact search its recall is measured against in
:mod:`featkit.index.recall`.
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from featkit._faiss import import_faiss
from featkit.exceptions import InvalidParameterError
from featkit.features import FeatureSet
from featkit.index.factory import (
    SearchKnob,
    as_index_vectors,
    faiss_message,
    is_flat,
    new_index,
    resolve_faiss_device,
    set_search_parameter,
    to_cpu,
    to_device,
)
from featkit.index.persistence import read_index_files, write_index_files
from featkit.index.recall import (
    exact_knn,
    exact_knn_store,
    recall_at_k,
    sample_rows,
    stored_vectors,
)
from featkit.store import ShardStore
from featkit.validation import check_bool, check_int

__all__ = ["FeatureIndex"]

#: Queries searched at a time unless told: also what an index saved before featkit recorded
#: its batch size is loaded with.
DEFAULT_BATCH_SIZE = 4096


class FeatureIndex:
    """A FAISS index of feature rows with their ids, labels and extractor config.

    Parameters
    ----------
    dim : int
        Feature dimension.
    factory : str, default="Flat"
        FAISS index factory string: "Flat" (exact), "IVF1024,Flat", "HNSW32", "IVF256,PQ16"...
    metric : {"cosine", "l2"}, default="cosine"
        Cosine: scores are similarities (higher is closer); l2: Euclidean distances.
    device : {"auto", "cpu", "cuda", "cuda:N"}, default="auto"
        Where the index lives; auto takes a GPU when faiss is a GPU build and sees one.
    nprobe, ef_search : int, optional
        Search knobs of IVF (lists visited) and HNSW (candidate list size) indexes.
    batch_size : int, default=4096
        Queries searched at a time (bounds the memory of the score matrix); saved with the
        index like the search knobs.
    class_names : sequence of str, optional
        Names of the labels given to :meth:`add`.
    extractor : dict, optional
        Config of the extractor that made the features (``Extractor.config``), saved with the
        index so :func:`search_images` can embed query images the same way.
    """

    def __init__(
        self,
        dim: int,
        factory: str = "Flat",
        metric: str = "cosine",
        *,
        device: str = "auto",
        nprobe: int | None = None,
        ef_search: int | None = None,
        batch_size: int = DEFAULT_BATCH_SIZE,
        class_names: Sequence[str] | None = None,
        extractor: dict[str, Any] | None = None,
    ) -> None:
        check_int("FeatureIndex", "dim", dim, low=1)
        check_int("FeatureIndex", "batch_size", batch_size, low=1)
        self.dim = int(dim)
        self.factory = factory
        self.metric = metric
        self.batch_size = int(batch_size)
        self.class_names = None if class_names is None else [str(c) for c in class_names]
        self.extractor = extractor
        self.dataset: dict[str, Any] | None = None
        self.stats: dict[str, Any] = {}
        self._place(new_index(self.dim, factory, metric), device)
        self._store: ShardStore | None = None  # ids and labels read from a store's files
        self.ids = np.zeros(0, dtype=str)
        self.labels = np.zeros(0, dtype=np.int64)
        self._nprobe: int | None = None
        self._ef_search: int | None = None
        if nprobe is not None:
            self.nprobe = nprobe
        if ef_search is not None:
            self.ef_search = ef_search

    def _place(self, cpu_index: Any, device: str, *, fall_back_to_cpu: bool = False) -> None:
        """Put ``cpu_index`` on ``device`` (auto / cpu / cuda / cuda:N). An index type that
        cannot run on a GPU stays on the CPU unless a cuda device was asked for; with
        ``fall_back_to_cpu`` (unpickling) a missing GPU means the CPU, not an error."""
        self._device_request = device
        self._exact = is_flat(cpu_index)
        try:
            resolved = resolve_faiss_device(device)
        except InvalidParameterError:
            if not fall_back_to_cpu:
                raise
            resolved = "cpu"  # unpickled where that GPU is missing
        strict = not fall_back_to_cpu and device.startswith("cuda")
        self._index, self.device = to_device(cpu_index, resolved, strict=strict)

    # -- building ------------------------------------------------------------------------------
    @classmethod
    def from_features(
        cls,
        features: FeatureSet | Any,
        factory: str = "Flat",
        metric: str = "cosine",
        *,
        ids: Sequence[str] | None = None,
        labels: Sequence[int] | None = None,
        class_names: Sequence[str] | None = None,
        **kwargs: Any,
    ) -> FeatureIndex:
        """An index of a FeatureSet (its ids, labels, class names and extractor config) or of
        an array of rows (with optional ``ids``, ``labels`` and ``class_names``)."""
        if isinstance(features, FeatureSet):
            index = cls(
                features.dim,
                factory,
                metric,
                class_names=features.class_names,
                extractor=features.provenance.get("extractor"),
                **kwargs,
            )
            index.dataset = _dataset_summary(features.provenance)
            index.add(features.X, ids=features.ids, labels=features.y)
            return index
        X = np.asarray(features)
        if X.ndim != 2:
            raise InvalidParameterError(f"expected a 2-D array of features, got shape {X.shape}")
        index = cls(X.shape[1], factory, metric, class_names=class_names, **kwargs)
        index.add(X, ids=ids, labels=labels)
        return index

    @classmethod
    def from_store(
        cls,
        store: Any,
        factory: str = "Flat",
        metric: str = "cosine",
        *,
        train_size: int = 100_000,
        seed: int = 0,
        copy_ids: bool = False,
        **kwargs: Any,
    ) -> FeatureIndex:
        """An index of a :class:`~featkit.store.ShardStore` larger than memory: trained on
        ``train_size`` rows drawn at random (seeded), then filled shard by shard.

        The ids and labels of its rows stay in the store's files and are read when needed
        (a saved index records the store's path): a 40-character id held in memory would
        cost more than a PQ code. ``copy_ids=True`` copies them into the index instead,
        which makes a saved index independent of the store.
        """
        check_int("FeatureIndex.from_store", "train_size", train_size, low=1)
        check_bool("FeatureIndex.from_store", "copy_ids", copy_ids)
        provenance = store.metadata.get("provenance") or {}
        index = cls(
            store.dim,
            factory,
            metric,
            class_names=store.class_names,
            extractor=provenance.get("extractor"),
            **kwargs,
        )
        index.dataset = _dataset_summary(provenance)
        if not index._index.is_trained:
            index.train(store.take(sample_rows(len(store), train_size, seed)))
        for k, (X, y) in enumerate(store.batches(progress=None, desc=f"indexing ({factory})")):
            if len(X) == 0:  # a shard of images that all failed
                continue
            if copy_ids:
                index.add(X, ids=store.shard_ids(k), labels=y)
            else:
                index._add_vectors(X)
        if not copy_ids:
            index._use_store(store, len(store))
        return index

    def exact_search_store(self, X: Any, store: Any, k: int = 10) -> tuple[np.ndarray, np.ndarray]:
        """Exact k-nearest rows of a ShardStore (global row numbers), one shard in memory at
        a time: the reference for the recall of an index built :meth:`from_store`."""
        return exact_knn_store(X, store, k, self.metric, self.dim)

    def train(self, X: Any) -> FeatureIndex:
        """Train the index (IVF centroids, PQ codebooks) on rows ``X``; no-op for Flat/HNSW."""
        if self._index.is_trained:
            return self
        X = as_index_vectors(X, self.metric, self.dim)
        start = time.perf_counter()
        try:
            self._index.train(X)
        except RuntimeError as exc:
            raise InvalidParameterError(
                f"cannot train a {self.factory!r} index on {len(X)} vectors: "
                f"{faiss_message(exc)} (give more vectors or choose fewer lists / centroids)"
            ) from None
        self.stats["train_seconds"] = round(time.perf_counter() - start, 4)
        self._apply_knobs()  # some knobs only exist once trained
        return self

    def add(
        self, X: Any, ids: Sequence[str] | None = None, labels: Sequence[int] | None = None
    ) -> FeatureIndex:
        """Add rows ``X`` (training the index on them first if it is untrained), with their
        ids (default: row numbers) and integer labels (default: -1, none)."""
        X = as_index_vectors(X, self.metric, self.dim)
        n0, n = self._n_rows, len(X)
        ids_arr = np.asarray([str(i) for i in range(n0, n0 + n)] if ids is None else ids, str)
        labels_arr = np.full(n, -1, np.int64) if labels is None else np.asarray(labels, np.int64)
        if len(ids_arr) != n or len(labels_arr) != n:
            raise InvalidParameterError(
                f"{n} rows but {len(ids_arr)} ids and {len(labels_arr)} labels"
            )
        if self._store is not None:  # rows of a store, then other rows: hold all ids here
            self.ids, self.labels = self.ids, self.labels
        self._add_vectors(X)
        # Kept in parts and joined when read: joining on every add is quadratic in the number
        # of shards of a large store.
        self._id_parts.append(ids_arr)
        self._label_parts.append(labels_arr)
        self._n_rows += n
        return self

    def _add_vectors(self, X: Any) -> None:
        """Add rows to the FAISS index alone (training it on them first if untrained)."""
        X = as_index_vectors(X, self.metric, self.dim)
        if not self._index.is_trained:
            self.train(X)
        start = time.perf_counter()
        self._index.add(X)
        self.stats["add_seconds"] = round(
            self.stats.get("add_seconds", 0.0) + time.perf_counter() - start, 4
        )

    def _use_store(self, store: ShardStore, rows: int) -> None:
        """Read the ids and labels of the index's ``rows`` rows from ``store``'s files."""
        self._store, self._n_rows = store, int(rows)
        self._id_parts, self._label_parts = [], []

    @property
    def store(self) -> ShardStore | None:
        """The ShardStore that holds the ids and labels of the rows, if any."""
        return self._store

    def id_of(self, rows: Sequence[int] | np.ndarray) -> np.ndarray:
        """Ids of the given row numbers (read from the store's files for an index that
        refers to its store)."""
        rows = np.asarray(rows, dtype=np.int64).reshape(-1)
        if self._store is not None:
            if rows.size and (rows.min() < 0 or rows.max() >= self._n_rows):
                raise InvalidParameterError(f"row numbers must be in 0..{self._n_rows - 1}")
            return self._store.ids_at(rows).astype(str)
        return self.ids[rows]

    @property
    def ids(self) -> np.ndarray:
        """Id of each indexed row, in index order (all of them read into memory for an
        index that refers to its store: prefer :meth:`id_of`)."""
        if self._store is not None:
            return np.asarray(self._store.ids_at(np.arange(self._n_rows)), dtype=str)
        if len(self._id_parts) != 1:
            self._id_parts = [np.concatenate(self._id_parts or [np.zeros(0, dtype=str)])]
        return self._id_parts[0]

    @ids.setter
    def ids(self, value: Any) -> None:
        self._id_parts = [np.asarray(value, dtype=str)]
        self._n_rows = len(self._id_parts[0])
        self._store = None

    @property
    def labels(self) -> np.ndarray:
        """Integer label of each indexed row (-1: none), in index order."""
        if self._store is not None and not self._label_parts:
            self._label_parts = [self._store.labels[: self._n_rows]]  # 8 bytes a row, kept
        if len(self._label_parts) != 1:
            self._label_parts = [np.concatenate(self._label_parts or [np.zeros(0, np.int64)])]
        return self._label_parts[0]

    @labels.setter
    def labels(self, value: Any) -> None:
        self._label_parts = [np.asarray(value, dtype=np.int64)]

    # -- searching -------------------------------------------------------------------------------
    def search(self, X: Any, k: int = 10) -> tuple[np.ndarray, np.ndarray]:
        """Scores (n, k) and row numbers (n, k) of the k nearest rows of each query row.

        Cosine: similarities, best first; l2: Euclidean distances, nearest first. An
        approximate index may find fewer than k rows: those slots hold row -1, score NaN.
        """
        check_int("FeatureIndex.search", "k", k, low=1)
        X = as_index_vectors(X, self.metric, self.dim)
        scores = np.empty((len(X), k), np.float32)
        rows = np.empty((len(X), k), np.int64)
        for start in range(0, len(X), self.batch_size):
            stop = start + self.batch_size
            scores[start:stop], rows[start:stop] = self._index.search(X[start:stop], k)
        if self.metric == "l2":  # faiss gives squared distances
            np.sqrt(np.maximum(scores, 0.0, out=scores), out=scores)
        scores[rows < 0] = np.nan
        return scores, rows

    def exact_search(self, X: Any, database: Any, k: int = 10) -> tuple[np.ndarray, np.ndarray]:
        """Exact k-nearest rows of ``database`` (the indexed rows, in index order) with this
        index's metric: the reference of :meth:`recall_at_k`."""
        return exact_knn(X, database, k, self.metric, self.dim)

    def recall_at_k(self, queries: Any, k: int = 10, database: Any | None = None) -> float:
        """Mean share of each query's exact k nearest rows that this index finds (1.0 for an
        exact index). ``database``: the indexed rows in index order; without it they are read
        back from the index, which works for indexes that keep them (Flat, IVF-Flat, HNSW)."""
        if database is None:
            database = stored_vectors(self._index, self.factory)
        _, truth = self.exact_search(queries, database, k)
        _, found = self.search(queries, k)
        return recall_at_k(found, truth)

    # -- knobs ---------------------------------------------------------------------------------
    nprobe = SearchKnob(
        "nprobe", "Inverted lists an IVF index visits per query (more: slower, better recall)."
    )
    ef_search = SearchKnob(
        "efSearch", "Candidate list size of an HNSW search (more: slower, better recall)."
    )

    def _set_knob(self, name: str, value: int) -> None:
        set_search_parameter(self._index, name, value, device=self.device, factory=self.factory)

    def _apply_knobs(self) -> None:
        for name, value in (("nprobe", self._nprobe), ("efSearch", self._ef_search)):
            if value is not None:
                self._set_knob(name, value)

    # -- facts -----------------------------------------------------------------------------------
    @property
    def ntotal(self) -> int:
        """Rows in the index."""
        return int(self._index.ntotal)

    def __len__(self) -> int:
        return self.ntotal

    @property
    def is_exact(self) -> bool:
        """True for exhaustive search (a Flat index)."""
        return self._exact

    @property
    def faiss_index(self) -> Any:
        """The FAISS index itself."""
        return self._index

    def label_names(self, rows: np.ndarray) -> list[str | None]:
        """Class name of each row number (None where unlabelled or unknown)."""
        out: list[str | None] = []
        names = self.class_names or []
        for r in np.asarray(rows).ravel():
            y = int(self.labels[r]) if 0 <= r < len(self.labels) else -1
            out.append(names[y] if 0 <= y < len(names) else (str(y) if y >= 0 else None))
        return out

    def path_of(self, row: int) -> str | None:
        """File of an indexed row: the data set root joined with its id, or the id itself
        when that is an existing file; None otherwise (arrays, built-in data sets)."""
        return self.path_of_id(str(self.id_of([row])[0]))

    def path_of_id(self, image_id: str) -> str | None:
        """File of an indexed row's id (see :meth:`path_of`), for a caller that holds ids."""
        root = (self.dataset or {}).get("root")
        if root:
            return os.fspath(Path(root) / image_id)
        return image_id if os.path.isfile(image_id) else None

    def __repr__(self) -> str:
        return (
            f"FeatureIndex(n={self.ntotal}, dim={self.dim}, factory={self.factory!r}, "
            f"metric={self.metric!r}, device={self.device!r})"
        )

    # -- saving ----------------------------------------------------------------------------------
    def save(self, path: str | os.PathLike) -> Path:
        """Write the FAISS index to ``path`` and its metadata to ``path + '.json'``."""
        return write_index_files(path, self._index, self._meta())

    @classmethod
    def load(cls, path: str | os.PathLike, *, device: str = "auto") -> FeatureIndex:
        """Read an index written by :meth:`save`."""
        meta, cpu_index, store = read_index_files(path)
        return cls._from_meta(meta, cpu_index, device, store=store)

    def _meta(self) -> dict[str, Any]:
        """What :meth:`save` writes beside the FAISS index and pickling carries, as
        :meth:`_from_meta` reads it: every field but the device, which the reader chooses."""
        meta: dict[str, Any] = {
            "factory": self.factory,
            "metric": self.metric,
            "dim": self.dim,
            "n": self.ntotal,
            "nprobe": self._nprobe,
            "ef_search": self._ef_search,
            "batch_size": self.batch_size,
            "class_names": self.class_names,
            "extractor": self.extractor,
            "dataset": self.dataset,
            "stats": self.stats,
        }
        if self._store is not None:
            meta["store"] = {"path": str(self._store.path.resolve()), "rows": self._n_rows}
        else:
            meta.update(ids=self.ids, labels=self.labels)
        return meta

    @classmethod
    def _from_meta(
        cls,
        meta: dict[str, Any],
        cpu_index: Any,
        device: str,
        *,
        store: ShardStore | None = None,
        fall_back_to_cpu: bool = False,
    ) -> FeatureIndex:
        """The index that :meth:`_meta` describes, around ``cpu_index``, on ``device``; the
        ids and labels of its rows come from ``store`` when the index refers to one."""
        self = cls.__new__(cls)
        self.dim = int(meta["dim"])
        self.factory = str(meta["factory"])
        self.metric = str(meta["metric"])
        # Sidecars written before featkit recorded the batch size have none: the default.
        self.batch_size = int(meta.get("batch_size", DEFAULT_BATCH_SIZE))
        self.class_names = meta.get("class_names")
        self.extractor = meta.get("extractor")
        self.dataset = meta.get("dataset")
        self.stats = dict(meta.get("stats") or {})
        self._place(cpu_index, device, fall_back_to_cpu=fall_back_to_cpu)
        if store is not None:
            self._use_store(store, int(meta["store"]["rows"]))
        else:
            self.ids = np.asarray(meta["ids"], dtype=str)
            self.labels = np.asarray(meta["labels"], dtype=np.int64)
        self._nprobe, self._ef_search = meta.get("nprobe"), meta.get("ef_search")
        self._apply_knobs()
        return self

    def __reduce__(self) -> tuple[Any, ...]:
        # Pickled (joblib pickles FaissKNNClassifier) as what save writes, with the FAISS
        # index as bytes (a GPU one by its CPU copy) and the store object itself, and rebuilt
        # by _from_meta like a loaded index: the field list is written once.
        faiss = import_faiss()
        data = faiss.serialize_index(to_cpu(self._index))
        return (_unpickle, (type(self), self._meta(), data, self._device_request, self._store))

    def __setstate__(self, state: dict[str, Any]) -> None:
        # Only pickles written before __reduce__ existed come here (new ones carry no state):
        # their state is the instance's __dict__ with the FAISS index as bytes.
        self.__dict__.update(state)
        cpu_index = import_faiss().deserialize_index(state["_index"])
        self._place(cpu_index, state.get("_device_request", "auto"), fall_back_to_cpu=True)
        self._apply_knobs()


def _unpickle(
    cls: type[FeatureIndex],
    meta: dict[str, Any],
    data: np.ndarray,
    device: str,
    store: ShardStore | None,
) -> FeatureIndex:
    """A pickled FeatureIndex (see ``FeatureIndex.__reduce__``)."""
    cpu_index = import_faiss().deserialize_index(data)
    return cls._from_meta(meta, cpu_index, device, store=store, fall_back_to_cpu=True)


def _dataset_summary(provenance: dict[str, Any]) -> dict[str, Any] | None:
    """Name and root of the data set the features came from (to resolve image paths)."""
    dataset = provenance.get("dataset")
    if not isinstance(dataset, dict):
        return None
    return {"name": dataset.get("name"), "root": dataset.get("root")}

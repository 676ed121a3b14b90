"""The files of a saved FeatureIndex: the FAISS index and its JSON sidecar (``PATH.json``).

The sidecar holds what the FAISS file does not: the fields of the FeatureIndex (as
``FeatureIndex._meta`` gives them), and the ids and labels of its rows, or the path of the
feature store whose files hold them. Both files are written beside their destinations and
renamed in place, so a reader never sees half a file; reading checks that they describe the
same rows.
"""

from __future__ import annotations

import json
import os
import tempfile
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from featkit._faiss import import_faiss
from featkit._manifest import read_manifest
from featkit._version import __version__
from featkit.exceptions import DatasetError, FeatkitError, InvalidParameterError
from featkit.index.factory import faiss_message, to_cpu
from featkit.store import ShardStore

__all__ = ["FORMAT", "FORMAT_VERSION", "read_index_files", "write_index_files"]

FORMAT = "featkit.FeatureIndex"
#: Sidecars may gain keys without a new version: a reader takes a default for a missing one.
FORMAT_VERSION = 1


def write_index_files(path: str | os.PathLike, index: Any, meta: dict[str, Any]) -> Path:
    """Write the FAISS ``index`` (a GPU one by its CPU copy) to ``path``, and ``meta`` with
    the format and the versions that wrote it to ``path + '.json'``; returns ``path``."""
    faiss = import_faiss()
    out = Path(path).expanduser()
    if out.is_dir():
        raise InvalidParameterError(f"cannot save an index to {out}: it is a folder")
    out.parent.mkdir(parents=True, exist_ok=True)
    meta = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "versions": {"featkit": __version__, "faiss": getattr(faiss, "__version__", None)},
        **meta,
        # The ids and labels of the rows (when the sidecar holds them) come as arrays.
        **{key: np.asarray(meta[key]).tolist() for key in ("ids", "labels") if key in meta},
    }
    # Written beside their destinations and renamed in place: never half a file.
    sidecar = _sidecar(out)
    tmp_index = _temp_beside(out)
    tmp_meta = _temp_beside(sidecar)
    try:
        faiss.write_index(to_cpu(index), str(tmp_index))
        tmp_meta.write_text(json.dumps(meta, default=str))
        os.replace(tmp_index, out)
        os.replace(tmp_meta, sidecar)
    finally:
        for tmp in (tmp_index, tmp_meta):
            tmp.unlink(missing_ok=True)
    return out


def read_index_files(path: str | os.PathLike) -> tuple[dict[str, Any], Any, ShardStore | None]:
    """The sidecar's fields, the CPU FAISS index, and the store that holds the ids and labels
    of its rows (None when the sidecar holds them) of an index written by
    :func:`write_index_files`, checked to describe the same rows."""
    faiss = import_faiss()
    src = Path(path).expanduser()
    sidecar = _sidecar(src)
    if not src.is_file():
        raise DatasetError(f"no index file at {src}")
    if not sidecar.is_file():
        raise DatasetError(f"{src} has no {sidecar.name} beside it: not a featkit index")
    meta = read_manifest(sidecar, FORMAT, "index description")
    if meta.get("format_version", 0) > FORMAT_VERSION:
        raise DatasetError(f"{src} was written by a newer featkit; upgrade featkit to read it")
    try:
        cpu_index = faiss.read_index(str(src))
    except RuntimeError as exc:
        raise DatasetError(f"cannot read {src}: {faiss_message(exc)}") from None
    store = _referenced_store(meta, src) if "store" in meta else None
    n = int(meta["store"]["rows"]) if store is not None else len(meta.get("ids") or [])
    n_labels = n if store is not None else len(meta.get("labels") or [])
    if (cpu_index.d, cpu_index.ntotal, n) != (meta.get("dim"), n, n_labels):
        raise DatasetError(
            f"{src} holds {cpu_index.ntotal} rows of {cpu_index.d} dimensions but "
            f"{sidecar.name} describes {n} of {meta.get('dim')}: the files do not match"
        )
    return meta, cpu_index, store


def _referenced_store(meta: dict[str, Any], src: Path) -> ShardStore:
    """The feature store whose files hold the ids and labels of a saved index's rows."""
    path, rows = meta["store"]["path"], int(meta["store"]["rows"])
    try:
        store = ShardStore(path)
    except FeatkitError as exc:
        raise DatasetError(
            f"{src} reads the ids and labels of its rows from the feature store {path}, "
            f"which cannot be opened ({exc}); rebuild the index, or build it with "
            "copy_ids=True (--copy-ids) to make it independent of the store"
        ) from None
    if len(store) < rows:
        raise DatasetError(f"{src} indexes {rows} rows but the store {path} has {len(store)}")
    return store


def _sidecar(path: Path) -> Path:
    return path.with_name(path.name + ".json")


def _temp_beside(path: Path) -> Path:
    fd, name = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    os.close(fd)
    return Path(name)

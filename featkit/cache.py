"""A content-addressed, crash-safe store of feature rows, one folder per extractor config.

Rows are keyed by a hash of each image's *content* (not its path), under a folder keyed by
the extractor's ``config`` and the featkit version, so renamed or reordered images are still
found and a changed parameter never reuses stale features. Rows are written in chunks:
``<chunk>.npy`` first, then ``<chunk>.json``, each by atomic rename; the JSON manifest is the
commit marker, so a run killed at any instant leaves only whole chunks or ignorable
temporaries, and a re-run recomputes just the chunks that never committed.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import os
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from featkit._version import __version__
from featkit.exceptions import CacheError, ImageReadError
from featkit.io import read_image, stat_image_file

__all__ = ["CacheLookup", "FeatureCache", "content_hash"]

logger = logging.getLogger(__name__)

LAYOUT = "featkit-cache-v1"
_CHUNK_BYTES = 1 << 20


def content_hash(source: Any) -> str:
    """A hex digest of an image source's content: file bytes, encoded bytes or array data."""
    # SHA-256 runs in hardware (SHA-NI) on current CPUs: about twice BLAKE2b's speed here.
    h = hashlib.sha256()
    if isinstance(source, (str, os.PathLike)):
        with open(source, "rb") as fh:
            while block := fh.read(_CHUNK_BYTES):
                h.update(block)
    elif isinstance(source, (bytes, bytearray, memoryview)):
        h.update(source)
    elif isinstance(source, np.ndarray):
        h.update(f"ndarray:{source.dtype.str}:{source.shape}".encode())
        # the buffer itself: tobytes() would copy it (4 GB of Fisher vectors for 3,060 rows)
        h.update(np.ascontiguousarray(source).reshape(-1).view(np.uint8))
    elif isinstance(source, Image.Image):
        # Hash what featkit reads from it, so that the palette, transparency and EXIF
        # orientation count: raw PIL bytes of two palette images can match while they differ.
        canonical = read_image(source, mode="unchanged", dtype=np.float32)
        h.update(f"pil:{canonical.shape}".encode())
        h.update(canonical.tobytes())
    else:
        raise TypeError(f"cannot hash an image source of type {type(source).__name__}")
    return h.hexdigest()[:32]


def content_hash_of_rows(X: np.ndarray, rows: np.ndarray) -> str:
    """``content_hash(X[rows])``, gathering a few rows at a time rather than all of them."""
    rows = np.asarray(rows)
    h = hashlib.sha256()
    h.update(f"ndarray:{X.dtype.str}:{(len(rows), *X.shape[1:])}".encode())
    step = max(1, 64 * _CHUNK_BYTES // max(1, X[:1].nbytes))
    for start in range(0, len(rows), step):
        h.update(np.ascontiguousarray(X[rows[start : start + step]]).reshape(-1).view(np.uint8))
    return h.hexdigest()[:32]


def config_key(config: dict[str, Any]) -> str:
    """The digest naming a config's cache folder; the featkit version is part of it."""
    payload = json.dumps({"config": config, "featkit": __version__}, sort_keys=True, default=str)
    return hashlib.blake2b(payload.encode(), digest_size=16).hexdigest()


@dataclass
class CacheLookup:
    """What the cache holds for a list of content hashes."""

    rows: dict[str, tuple[str, int]]  # content hash -> (chunk id, row in that chunk)
    failures: dict[str, str]  # content hash -> reason the image could not be used
    n_chunks: int


class FeatureCache:
    """Feature rows of one extractor config, stored as committed chunks under ``root``."""

    def __init__(self, root: str | os.PathLike, config: dict[str, Any]) -> None:
        name = re.sub(r"[^a-z0-9_.-]+", "_", str(config.get("name", "extractor")).lower())
        self.directory = Path(root).expanduser() / LAYOUT / name / config_key(config)
        self.config = config
        self.writable = True
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            marker = self.directory / "config.json"
            if not marker.exists():
                atomic_write(marker, json.dumps(config, indent=2, sort_keys=True).encode())
        except OSError as exc:
            raise CacheError(f"cannot use cache folder {root}: {exc}") from exc

    def fingerprints(self, items: Sequence[Any]) -> list[tuple[str | None, str]]:
        """Content hash of each image source, or (None, reason) when it cannot be read."""
        memo = _FileHashMemo(self.directory.parent.parent / "file-hashes.json")
        out: list[tuple[str | None, str]] = []
        for item in items:
            try:
                if isinstance(item, (str, os.PathLike)):
                    # The same checks and reasons as reading: never open a FIFO or device.
                    info = stat_image_file(item)
                    digest = memo.get(item, info)
                    if digest is None:
                        digest = content_hash(item)
                        memo.put(item, info, digest)
                else:
                    digest = content_hash(item)
                out.append((digest, ""))
            except ImageReadError as exc:
                out.append((None, exc.reason))
            except OSError as exc:  # vanished or unreadable between stat and read
                out.append((None, f"cannot read the file: {exc.strerror or exc}"))
            except TypeError as exc:
                out.append((None, str(exc)))
        memo.save()
        return out

    def lookup(self, hashes: Iterable[str]) -> CacheLookup:
        """Which of ``hashes`` have committed rows or recorded failures."""
        wanted = set(hashes)
        rows: dict[str, tuple[str, int]] = {}
        failures: dict[str, str] = {}
        n_chunks = 0
        for manifest in sorted(self.directory.glob("*.json")):
            if manifest.name == "config.json":
                continue
            try:
                meta = json.loads(manifest.read_text())
                chunk = meta["chunk"]
                ok_hashes = meta["hashes"]
                failed = meta["failed"]
                expected = len(ok_hashes) * int(meta["dim"]) * 4
                complete = (self.directory / f"{chunk}.npy").stat().st_size >= expected
            except (OSError, ValueError, KeyError, TypeError) as exc:
                logger.warning("ignoring unreadable cache chunk %s: %s", manifest, exc)
                continue
            if not complete:
                logger.warning("ignoring truncated cache chunk %s", manifest)
                continue
            n_chunks += 1
            for row, h in enumerate(ok_hashes):
                if h in wanted:
                    rows.setdefault(h, (chunk, row))
            for h, reason in failed.items():
                if h in wanted and h not in rows:
                    failures.setdefault(h, reason)
        return CacheLookup(rows=rows, failures=failures, n_chunks=n_chunks)

    def read(self, hits: Sequence[tuple[str, int]]) -> np.ndarray:
        """The rows at ``hits`` (chunk id, row) in the order given, as one float32 array."""
        by_chunk: dict[str, list[int]] = {}
        for pos, (chunk, _) in enumerate(hits):
            by_chunk.setdefault(chunk, []).append(pos)
        out: np.ndarray | None = None
        for chunk, positions in by_chunk.items():
            data = np.load(self.directory / f"{chunk}.npy", mmap_mode="r")
            if out is None:
                out = np.empty((len(hits), data.shape[1]), dtype=np.float32)
            out[positions] = data[[hits[p][1] for p in positions]]
        return out if out is not None else np.zeros((0, 0), dtype=np.float32)

    def write(self, hashes: Sequence[str], X: np.ndarray, failed: dict[str, str]) -> str | None:
        """Commit one chunk: rows ``X`` for ``hashes`` and the reasons of ``failed`` hashes."""
        if not self.writable:
            return None
        ident = hashlib.blake2b(
            "\n".join([*hashes, "--", *sorted(failed)]).encode(), digest_size=12
        ).hexdigest()
        try:
            buf = io.BytesIO()
            np.save(buf, np.ascontiguousarray(X, dtype=np.float32), allow_pickle=False)
            atomic_write(self.directory / f"{ident}.npy", buf.getvalue())
            meta = {
                "chunk": ident,
                "hashes": list(hashes),
                "failed": failed,
                "dim": int(X.shape[1]),
            }
            atomic_write(self.directory / f"{ident}.json", json.dumps(meta).encode())
        except OSError as exc:
            # Never lose the run for the cache: keep going without it and say so once.
            self.writable = False
            logger.warning("feature cache disabled, cannot write to %s: %s", self.directory, exc)
            return None
        return ident


class _FileHashMemo:
    """Remembers each file's content hash with its size, times and inode, the way git's
    index does, so that a re-run stats unchanged files instead of reading them again."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.dirty = False
        try:
            entries = json.loads(path.read_text())
        except (OSError, ValueError):
            entries = {}
        self.entries: dict[str, list[Any]] = entries if isinstance(entries, dict) else {}

    @staticmethod
    def _signature(item: str | os.PathLike, st: os.stat_result) -> tuple[str, list[int]]:
        sig = [st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino]
        return os.path.abspath(item), sig

    def get(self, item: str | os.PathLike, st: os.stat_result) -> str | None:
        key, sig = self._signature(item, st)
        entry = self.entries.get(key)
        return entry[4] if isinstance(entry, list) and entry[:4] == sig else None

    def put(self, item: str | os.PathLike, st: os.stat_result, digest: str) -> None:
        key, sig = self._signature(item, st)
        self.entries[key] = [*sig, digest]
        self.dirty = True

    def save(self) -> None:
        if not self.dirty:
            return
        try:
            atomic_write(self.path, json.dumps(self.entries).encode())
        except OSError as exc:  # only a speed-up: never fail a run for it
            logger.debug("cannot save the file-hash memo %s: %s", self.path, exc)


def atomic_write(path: Path, payload: bytes) -> None:
    """Write ``payload`` to ``path`` so that a reader never sees a partial file."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    # No fsync: rename is atomic against a killed process, and lookup() checks each chunk's
    # size, so even a chunk torn by a power cut is recomputed rather than trusted.
    with open(tmp, "wb") as fh:
        fh.write(payload)
    os.replace(tmp, path)

"""The training descriptors of an encoder: a seeded uniform subsample of every image's
local descriptors, described in joblib tasks of ``FIT_CHUNK`` images with a progress bar.

The helpers are module-level functions so that joblib's workers can import them.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np
from joblib import Parallel, delayed
from tqdm.auto import tqdm

from featkit.extractors.base import Extractor

__all__ = ["FIT_CHUNK"]

#: Images described per task when fitting (the unit of the progress bar and of joblib).
FIT_CHUNK = 16


def _collect_sample(
    local: Extractor, items: list[Any], max_keep: int, seed: int, label: str
) -> tuple[np.ndarray, dict[str, int]]:
    """A uniform random subsample of at most ``max_keep`` descriptors of all the images.

    Every descriptor gets a random key from a generator seeded by (seed, image index); the
    ``max_keep`` smallest keys are kept. The result depends neither on the chunking nor on
    the number of joblib workers.
    """
    keys: list[np.ndarray] = []
    descs: list[np.ndarray] = []
    stats = {"descriptors": 0, "empty": 0}
    held = 0
    for k, d, n_desc, n_empty in _map_chunks(
        _describe_chunk, local, items, f"{label}: describing", max_keep, seed, with_start=True
    ):
        keys.append(k)
        descs.append(d)
        held += len(k)
        stats["descriptors"] += n_desc
        stats["empty"] += n_empty
        if held > 2 * max_keep:  # prune the buffer: memory stays O(max_keep)
            keys, descs = [np.concatenate(keys)], [np.concatenate(descs)]
            keys[0], descs[0] = _smallest(keys[0], descs[0], max_keep)
            held = len(keys[0])
    if not keys:
        return np.zeros((0, 0), np.float32), stats
    all_keys, all_descs = _smallest(np.concatenate(keys), np.concatenate(descs), max_keep)
    order = np.argsort(all_keys, kind="stable")
    return np.ascontiguousarray(all_descs[order]), stats


def _smallest(keys: np.ndarray, descs: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    if len(keys) <= n:
        return keys, descs
    part = np.argpartition(keys, n - 1)[:n]
    return keys[part], descs[part]


def _map_chunks(
    func: Any, obj: Any, items: list[Any], desc: str, *args: Any, with_start: bool = False
) -> Iterable[Any]:
    """``func(obj, chunk, *args)`` over chunks of images in joblib tasks, with progress."""
    starts = range(0, len(items), FIT_CHUNK)
    tasks = (
        delayed(func)(obj, items[s : s + FIT_CHUNK], *((s, *args) if with_start else args))
        for s in starts
    )
    bar = tqdm(total=len(items), desc=desc, unit="img", leave=False, delay=2.0, disable=None)
    with bar:
        for s, result in zip(starts, Parallel(return_as="generator")(tasks), strict=True):
            bar.update(min(FIT_CHUNK, len(items) - s))
            yield result


def _describe_chunk(
    local: Extractor, items: list[Any], start: int, max_keep: int, seed: int
) -> tuple[np.ndarray, np.ndarray, int, int]:
    """Describe a chunk of images: random keys and descriptors of its ``max_keep`` first."""
    feats = local.describe_prepared([local.prepare(item) for item in items])
    keys, descs = [], []
    for i, f in enumerate(feats):
        rng = np.random.default_rng([seed, start + i])
        keys.append(rng.random(len(f)))
        descs.append(f.descriptors)
    n_desc = sum(len(f) for f in feats)
    n_empty = sum(len(f) == 0 for f in feats)
    dim = next((f.descriptors.shape[1] for f in feats if f.descriptors.ndim == 2), 0)
    key = np.concatenate(keys) if keys else np.zeros(0)
    desc = np.concatenate(descs) if descs else np.zeros((0, dim), np.float32)
    key, desc = _smallest(key, desc, max_keep)
    return key, desc, n_desc, n_empty

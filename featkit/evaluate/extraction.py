"""Features for the splits of a protocol: one extraction per distinct set of fit rows.

An extractor that learns from images (a BoVW codebook) is fitted on the ``fit`` rows of
each split, never on test rows, and extracts once per distinct fit set; other extractors
extract once for every split. Shared by ``compare`` and ``adapt``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from sklearn.base import clone

from featkit.data import Dataset
from featkit.engine import extract
from featkit.evaluate.protocols import Split
from featkit.exceptions import ImageReadError
from featkit.extractors.base import Extractor
from featkit.features import FeatureSet
from featkit.hardware import describe_runtime
from featkit.io import read_image

__all__ = ["SplitFeatures", "announce_runtimes", "extract_for_splits"]


def announce_runtimes(extractors: Mapping[str, Extractor], say: Callable[[str], None]) -> None:
    """Say how each extractor with a device and a precision (``cnn``) will run: numbers
    from bf16 features differ in their last digits between CPU kinds and GPU models."""
    for name, extractor in extractors.items():
        runtime = extractor.config.get("runtime")
        if runtime:
            say(f"{name} runs in {describe_runtime(runtime)}")


@dataclass
class SplitFeatures:
    """Features of every image and the splits they serve, in feature rows.

    Images that failed to extract drop out of the splits. ``extractor`` is the (fitted)
    extractor that produced them; ``seconds`` the fit and extraction time.
    """

    features: FeatureSet
    splits: list[Split]
    extractor: Extractor
    seconds: float


def extract_for_splits(
    name: str,
    extractor: Extractor,
    dataset: Dataset,
    splits: Sequence[Split],
    *,
    say: Callable[[str], None],
    **extract_kwargs: Any,
) -> Iterator[SplitFeatures]:
    """Yield the features of ``dataset`` for groups of ``splits`` (one group, or one per
    distinct fit set when ``extractor`` learns from images); ``extract_kwargs`` go to
    :func:`featkit.extract`."""
    groups = _fit_groups(splits) if extractor.requires_fit else {None: list(splits)}
    for fit_rows, members in groups.items():
        started = time.perf_counter()
        ex = extractor
        if fit_rows is not None:
            ex = clone(extractor)
            fit_set = dataset.subset(np.frombuffer(fit_rows, dtype=np.int64))
            say(f"fitting {name} on {len(fit_set)} training images")
            try:
                ex.fit(fit_set)
            except ImageReadError:
                # Extraction skips unreadable images; fitting must too, not end the run.
                fit_set = _readable(fit_set, say)
                ex.fit(fit_set)
        # Only the images the splits use: perclass:30/50 leaves most of Caltech-101's
        # large classes out, and each of its Fisher vectors is 1.3 MB and 0.2 s.
        used = np.unique(np.concatenate([np.concatenate([s.train, s.test]) for s in members]))
        target = dataset if len(used) == len(dataset) else dataset.subset(used)
        say(f"extracting {name} features of {len(target)} images")
        features = extract(ex, target, **extract_kwargs)
        if features.failed:
            say(f"  {len(features.failed)} images could not be used by {name}; not scored")
        position = {image_id: i for i, image_id in enumerate(features.ids.tolist())}
        mapped = [_map_split(split, dataset, position) for split in members]
        yield SplitFeatures(features, mapped, ex, time.perf_counter() - started)


def _readable(dataset: Dataset, say: Callable[[str], None]) -> Dataset:
    """The images of ``dataset`` that can be read (the others are reported and left out)."""
    keep = []
    for i, item in enumerate(dataset.items):
        try:
            read_image(item)
        except ImageReadError as exc:
            say(f"  not fitting on {dataset.ids[i]}: {exc.reason}")
            continue
        keep.append(i)
    return dataset.subset(np.asarray(keep, dtype=np.int64))


def _fit_groups(splits: Sequence[Split]) -> dict[bytes, list[Split]]:
    """Splits grouped by the rows an extractor learns from (one fit and extraction each)."""
    groups: dict[bytes, list[Split]] = {}
    for split in splits:
        key = np.sort(split.fit).astype(np.int64).tobytes()
        groups.setdefault(key, []).append(split)
    return groups


def _map_split(split: Split, dataset: Dataset, position: dict[str, int]) -> Split:
    """The split in feature rows (``position``: image id -> row): images that failed to
    extract drop out of it."""

    def rows(idx: np.ndarray) -> np.ndarray:
        ids = dataset.ids[idx].tolist()
        return np.array([position[i] for i in ids if i in position], dtype=np.int64)

    return Split(split.name, rows(split.train), rows(split.test), rows(split.fit), split.info)

"""The training data of a fine-tuning run: images read and augmented in data-loader workers,
seeds derived from (seed, epoch, image), the validation split, and the data's hash.

Nothing here carries random state from one epoch to the next: the order of an epoch, the
augmentation of each image and the generator of the training step are all derived from
the run's seed and the epoch number, so a run resumed after its k-th epoch replays epoch
k + 1 exactly as an uninterrupted run does, and the number of workers changes nothing.
"""

from __future__ import annotations

import hashlib
import math
import os
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch

from featkit.data import Dataset
from featkit.exceptions import InvalidParameterError
from featkit.finetune.augment import augment
from featkit.io import read_image

__all__ = [
    "ImageRows",
    "data_hash",
    "derive_seed",
    "epoch_order",
    "items_and_labels",
    "make_loader",
    "target_order",
    "validation_split",
]

# Streams of derive_seed: one per use, so no two uses share random numbers.
HEAD, EPOCH, ORDER, AUGMENT, SPLIT, LOADER, TARGET = range(7)


def derive_seed(seed: int, *keys: int) -> int:
    """A 63-bit seed for (seed, *keys): independent streams for each key tuple."""
    state = np.random.SeedSequence([int(seed), *map(int, keys)]).generate_state(2, np.uint32)
    return int((int(state[0]) << 31) ^ int(state[1]))


def epoch_order(n: int, seed: int, epoch: int) -> list[int]:
    """The order the n training images are visited in during ``epoch``."""
    return np.random.default_rng(derive_seed(seed, ORDER, epoch)).permutation(n).tolist()


class ImageRows(torch.utils.data.Dataset):
    """Images and labels, read and transformed on demand.

    Indexed by ``(i, epoch)``: image i as ``transform`` makes it in that epoch, seeded by
    (seed, epoch, i). ``items`` are anything :func:`featkit.io.read_image` reads (paths,
    arrays, bytes, PIL images); ``read`` turns one into an RGB uint8 array (default: a full
    decode; evaluation passes the ``cnn`` extractor's ``prepare``, so that predictions and
    embeddings see the pixels the extractor of the saved backbone will see).
    """

    def __init__(
        self,
        items: Sequence[Any],
        labels: np.ndarray,
        transform: Callable[[np.ndarray], np.ndarray],
        seed: int,
        read: Callable[[Any], np.ndarray] | None = None,
    ) -> None:
        self.items = items
        self.labels = np.asarray(labels, dtype=np.int64)
        self.transform = transform
        self.seed = int(seed)
        self.read = read

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, key: tuple[int, int]) -> tuple[np.ndarray, int]:
        i, epoch = key
        item = self.items[i]
        rgb = read_image(item, mode="rgb") if self.read is None else self.read(item)
        image = augment(self.transform, rgb, derive_seed(self.seed, AUGMENT, epoch, i))
        return image, int(self.labels[i])


def make_loader(
    rows: ImageRows,
    order: Sequence[int],
    epoch: int,
    batch_size: int,
    num_workers: int,
    pin_memory: bool = False,
) -> torch.utils.data.DataLoader:
    """Batches of (uint8 (n, S, S, 3), int64 (n,)) in ``order``; the epoch seeds the crops."""
    return torch.utils.data.DataLoader(
        rows,
        batch_size=batch_size,
        sampler=[(int(i), int(epoch)) for i in order],
        num_workers=num_workers,
        pin_memory=pin_memory,
        worker_init_fn=_one_thread if num_workers else None,
        # The loader draws its workers' base seed even with no workers: from its own
        # generator, not from torch's default one, which the training step uses.
        generator=torch.Generator().manual_seed(derive_seed(rows.seed, LOADER, epoch)),
        persistent_workers=False,
    )


def _one_thread(worker_id: int) -> None:
    """Workers decode and augment one image at a time: one thread each, not one per core."""
    torch.set_num_threads(1)


def validation_split(y: np.ndarray, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(train, validation) row indices: ``fraction`` of the rows, stratified by class when
    every class has two rows or more and the split can hold one of each; sorted."""
    n = len(y)
    if fraction <= 0:
        return np.arange(n), np.zeros(0, dtype=np.int64)
    from sklearn.model_selection import ShuffleSplit, StratifiedShuffleSplit

    n_val = max(1, math.floor(fraction * n))
    _, counts = np.unique(y, return_counts=True)
    stratify = counts.min() >= 2 and len(counts) <= n_val <= n - len(counts)
    cls = StratifiedShuffleSplit if stratify else ShuffleSplit
    splitter = cls(n_splits=1, test_size=n_val, random_state=derive_seed(seed, SPLIT) % 2**32)
    train, val = next(splitter.split(np.zeros(n), y))
    return np.sort(train), np.sort(val)


def data_hash(items: Sequence[Any], y: np.ndarray) -> str:
    """``"blake2b:<hex>"`` of the images' bytes (file contents for paths) and the labels, in
    order: the identity of a training set, for the saved record and for resuming."""
    h = hashlib.blake2b(digest_size=16)
    h.update(f"n={len(items)}".encode())
    for item in items:
        h.update(_item_digest(item))
    labels = np.asarray(y)
    h.update(str((labels.dtype.str, labels.shape)).encode())
    h.update(repr(labels.tolist()).encode())
    return f"blake2b:{h.hexdigest()}"


def _item_digest(item: Any) -> bytes:
    """The digest of one image source: the bytes of a file, an encoded image or an array."""
    h = hashlib.blake2b(digest_size=16)
    if isinstance(item, (str, os.PathLike)):
        h.update(b"file")
        with open(item, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                h.update(block)
    elif isinstance(item, (bytes, bytearray, memoryview)):
        h.update(b"bytes")
        h.update(bytes(item))
    elif isinstance(item, np.ndarray):
        h.update(str(("array", item.dtype.str, item.shape)).encode())
        h.update(np.ascontiguousarray(item).tobytes())
    else:  # a PIL image
        h.update(str(("pil", item.mode, item.size)).encode())
        h.update(item.tobytes())
    return h.digest()


def as_is(image: np.ndarray) -> np.ndarray:
    """The identity transform: images already prepared by ``read``."""
    return image


def target_order(n: int, n_needed: int, seed: int, epoch: int) -> list[int]:
    """``n_needed`` indices of the n target images for ``epoch``: seeded permutations of
    all of them, one after another, cut at ``n_needed``."""
    out: list[int] = []
    k = 0
    while len(out) < n_needed:
        rng = np.random.default_rng(derive_seed(seed, TARGET, epoch, k))
        out += rng.permutation(n).tolist()
        k += 1
    return out[:n_needed]


def items_and_labels(images: Any, y: Any, need_labels: bool = True) -> tuple[list[Any], np.ndarray]:
    """The image sources as a list, and the labels (a Dataset's own when ``y`` is None)."""
    if isinstance(images, Dataset):
        if y is None:
            if need_labels and (images.labels < 0).any():
                raise InvalidParameterError(
                    f"data set {images.name!r} has unlabelled images (label -1): pass y, or "
                    "keep the labelled images"
                )
            y = np.asarray(images.class_names, dtype=object)[images.labels]
        items: Sequence[Any] = images.items
    elif isinstance(images, (str, bytes, os.PathLike)):
        raise InvalidParameterError(
            "expected a sequence of images (paths, arrays or a Dataset), got a single "
            f"{type(images).__name__}; wrap it in a list"
        )
    elif isinstance(images, np.ndarray):
        if images.ndim not in (3, 4):
            raise InvalidParameterError(
                f"an image batch array must be (n, H, W) or (n, H, W, C); got {images.shape}"
            )
        items = images
    elif hasattr(images, "__len__") and hasattr(images, "__getitem__"):
        items = images
    else:
        raise InvalidParameterError(f"expected a sequence of images, got {type(images).__name__}")
    items = list(items)
    if not need_labels:
        return items, np.zeros(len(items), dtype=np.int64)
    if y is None:
        raise InvalidParameterError("FineTuner.fit needs labels y (or a labelled Dataset)")
    y = np.asarray(y)
    if y.ndim != 1 or len(y) != len(items):
        raise InvalidParameterError(
            f"y must be one label per image: {len(items)} images, y of shape {y.shape}"
        )
    return items, y

"""Images stored as arrays in an ``.npz`` file: ``X`` (n, H, W[, C]) and optional ``y``."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from featkit.data.dataset import UNLABELLED, Dataset
from featkit.exceptions import DatasetError


def load_npz(path: str | os.PathLike, *, image_shape: tuple[int, ...] | None = None) -> Dataset:
    """Load images ``X`` with labels ``y`` (and optional ``class_names``, ``domains``, ``split``).

    ``X`` of shape (n, H, W) or (n, H, W, C) holds images; a 2-D ``X`` holds flattened
    images and needs ``image_shape`` (for example ``(16, 16)``). Feature vectors that are
    not images belong in :meth:`featkit.FeatureSet.from_npz` instead.
    """
    src = Path(path)
    if not src.is_file():
        raise DatasetError(f"npz file {os.fspath(path)!r} does not exist")
    try:
        with np.load(src, allow_pickle=False) as archive:
            data = {k: archive[k] for k in archive.files}
    except (OSError, ValueError) as exc:
        raise DatasetError(f"cannot read {src}: {exc}") from exc
    if "X" not in data:
        raise DatasetError(f"{src} has arrays {sorted(data)}; it needs 'X' (and usually 'y')")
    X = data["X"]
    if X.ndim == 2:
        if image_shape is None:
            raise DatasetError(
                f"{src}: X is 2-D {X.shape}: flattened images need image_shape=(H, W); "
                "features belong in FeatureSet.from_npz"
            )
        try:
            X = X.reshape((len(X), *image_shape))
        except ValueError as exc:
            raise DatasetError(f"{src}: cannot reshape X {X.shape} to {image_shape}") from exc
    if X.ndim not in (3, 4):
        raise DatasetError(f"{src}: X must be (n, H, W) or (n, H, W, C), got {X.shape}")
    n = len(X)
    if "y" in data:
        y = np.asarray(data["y"]).reshape(-1)
        if len(y) != n:
            raise DatasetError(f"{src}: y has {len(y)} labels for {n} images")
        if "class_names" in data:
            class_names = [str(c) for c in data["class_names"]]
            labels = y.astype(np.int64)
        else:
            uniques, labels = np.unique(y, return_inverse=True)
            class_names = [str(u) for u in uniques]
    else:
        labels = np.full(n, UNLABELLED, dtype=np.int64)
        class_names = [str(c) for c in data.get("class_names", [])]
    width = len(str(max(n - 1, 0)))
    return Dataset(
        items=X,
        labels=labels,
        class_names=class_names,
        ids=np.asarray([f"{src.stem}/{i:0{width}d}" for i in range(n)]),
        domains=data.get("domains"),
        splits=data.get("split", data.get("splits")),
        name=src.stem,
        root=str(src.parent),
        info={"source": f"npz arrays {src.name}"},
    )

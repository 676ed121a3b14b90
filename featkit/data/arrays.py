"""Images stored as arrays in an ``.npz`` file: ``X`` (n, H, W[, C]) and optional ``y``."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np

from featkit.data.dataset import UNLABELLED, Dataset
from featkit.exceptions import DatasetError

logger = logging.getLogger(__name__)


def load_npz(path: str | os.PathLike, *, image_shape: tuple[int, ...] | None = None) -> Dataset:
    """Load images ``X`` with labels ``y`` (and optional ``class_names``, ``domains``, ``split``).

    ``X`` of shape (n, H, W) or (n, H, W, C) holds images; a 2-D ``X`` holds flattened
    images and needs ``image_shape`` (for example ``(16, 16)``). Float images in [0, 1]
    are used as they are, in [0, 255] divided by 255, otherwise rescaled by the file's own
    range. Negative labels mark unlabelled images. Feature vectors that are not images
    load with :meth:`featkit.FeatureSet.load` (or ``featkit info FILE.npz``) instead.
    """
    src = Path(path).expanduser()
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
    if X.ndim == 4 and X.shape[-1] not in (1, 3, 4):
        hint = (
            " (it looks channels-first: transpose to (n, H, W, C))"
            if X.shape[1] in (1, 3, 4)
            else ""
        )
        raise DatasetError(f"{src}: X {X.shape} must have 1, 3 or 4 channels last{hint}")
    X = _intensity_scale(X, src)
    n = len(X)
    if "y" in data:
        y = np.asarray(data["y"]).reshape(-1)
        if len(y) != n:
            raise DatasetError(f"{src}: y has {len(y)} labels for {n} images")
        labels = np.full(n, UNLABELLED, dtype=np.int64)
        # Negative integer labels mark unlabelled images, as an empty label does in a CSV.
        labelled = y >= 0 if y.dtype.kind in "iuf" else np.ones(n, dtype=bool)
        if "class_names" in data:
            class_names = [str(c) for c in data["class_names"]]
            labels[labelled] = y[labelled].astype(np.int64)
        else:
            uniques, codes = np.unique(y[labelled], return_inverse=True)
            class_names = [str(u) for u in uniques]
            labels[labelled] = codes
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


def _intensity_scale(X: np.ndarray, src: Path) -> np.ndarray:
    """Float images on one scale for the whole file: [0, 1] as is, [0, 255] divided by 255,
    anything else by the file's own minimum and maximum (never image by image)."""
    if X.dtype.kind != "f":
        return X
    if not np.isfinite(X).all():
        raise DatasetError(f"{src}: X contains NaN or inf")
    lo, hi = float(X.min()), float(X.max())
    if lo >= 0 and hi <= 1:
        return X
    if lo >= 0 and hi <= 255:
        logger.info("%s: float images in [0, 255] are divided by 255", src)
        return (X / 255.0).astype(np.float32)
    logger.warning("%s: float images in [%g, %g] are rescaled to [0, 1] as a whole", src, lo, hi)
    return ((X - lo) / (hi - lo if hi > lo else 1.0)).astype(np.float32)

"""Data sets: image folders, CSV manifests, npz arrays and built-ins, behind one call."""

from __future__ import annotations

import inspect
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from featkit.data.arrays import load_npz
from featkit.data.dataset import UNLABELLED, Dataset, ImageSource
from featkit.data.folder import load_image_folder
from featkit.data.manifest import load_manifest
from featkit.exceptions import DatasetError

__all__ = [
    "UNLABELLED",
    "Dataset",
    "ImageSource",
    "list_datasets",
    "load_dataset",
    "load_image_folder",
    "load_manifest",
    "load_npz",
]


def list_datasets() -> list[str]:
    """Names of the built-in data sets."""
    from featkit.data.builtin import BUILTIN_DATASETS

    return sorted(BUILTIN_DATASETS)


def load_dataset(
    spec: str | os.PathLike | Dataset,
    *,
    domain: str | Sequence[str] | None = None,
    split: str | None = None,
    root: str | os.PathLike | None = None,
    download: bool = True,
    **options: Any,
) -> Dataset:
    """Resolve ``spec`` into a Dataset.

    ``spec`` is a built-in name (``digits``, ``fashion-mnist``, ``mnist``, ``usps``), an image
    folder (``root/class/*`` or ``root/domain/class/*``), a ``.csv`` manifest
    (``path,label[,domain][,split]``) or an ``.npz`` file (``X``, ``y``). ``domain`` and
    ``split`` keep a part of it; ``root`` and ``download`` apply to built-ins; other
    ``options`` go to the loader (``layout=`` for folders, ``image_shape=`` for npz).
    """
    from featkit.data.builtin import BUILTIN_DATASETS

    if isinstance(spec, Dataset):
        dataset = spec
    elif isinstance(spec, str) and spec.lower() in BUILTIN_DATASETS:
        loader = BUILTIN_DATASETS[spec.lower()]
        accepted = inspect.signature(loader).parameters
        kwargs = {"root": root, "download": download, **options}
        dataset = loader(**{k: v for k, v in kwargs.items() if k in accepted})
    else:
        path = Path(spec).expanduser()
        if path.is_dir():
            dataset = load_image_folder(path, **options)
        elif path.suffix.lower() == ".csv":
            dataset = load_manifest(path)
        elif path.suffix.lower() == ".npz":
            dataset = load_npz(path, **options)
        elif path.exists():
            raise DatasetError(
                f"{os.fspath(spec)!r} is neither a folder, a .csv manifest nor an .npz file"
            )
        else:
            raise DatasetError(
                f"no data set {os.fspath(spec)!r}: not a built-in "
                f"({', '.join(sorted(BUILTIN_DATASETS))}) and no such file or folder"
            )
    if domain is not None or split is not None:
        dataset = dataset.select(domain=domain, split=split)
    return dataset

"""Image folders: ``root/class/*`` and multi-domain ``root/domain/class/*``."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from featkit.data.dataset import Dataset
from featkit.exceptions import DatasetError
from featkit.io import is_image_file


def load_image_folder(root: str | os.PathLike, *, layout: str = "auto") -> Dataset:
    """Load ``root/class/image`` (layout "class") or ``root/domain/class/image`` ("domain").

    With ``layout="auto"`` a folder whose sub-folders hold only folders is multi-domain.
    Files are sorted by path, so ids and order are stable; hidden files and non-image
    suffixes are ignored.
    """
    base = Path(root).expanduser()
    if not base.is_dir():
        raise DatasetError(f"image folder {os.fspath(root)!r} does not exist or is not a folder")
    subdirs = _visible_dirs(base)
    if not subdirs:
        raise DatasetError(
            f"{base} has no class sub-folders; expected root/class/image or root/domain/class/image"
        )
    if layout == "auto":
        nested = [bool(_visible_dirs(d)) and not _images_in(d) for d in subdirs]
        if any(nested) and not all(nested):
            mixed = [d.name for d, is_nested in zip(subdirs, nested, strict=True) if is_nested]
            raise DatasetError(
                f"{base} mixes layouts: {mixed} hold sub-folders while others hold images; "
                "use root/class/image or root/domain/class/image throughout"
            )
        layout = "domain" if all(nested) else "class"
    if layout not in ("class", "domain"):
        raise DatasetError(f"layout must be 'auto', 'class' or 'domain', got {layout!r}")

    groups = [(d.name, d) for d in subdirs] if layout == "domain" else [(None, base)]
    class_names = sorted({c.name for _, g in groups for c in _visible_dirs(g)})
    index = {name: i for i, name in enumerate(class_names)}
    paths: list[str] = []
    labels: list[int] = []
    domains: list[str] = []
    for domain, group in groups:
        for class_dir in _visible_dirs(group):
            for image in _images_in(class_dir):
                paths.append(str(image))
                labels.append(index[class_dir.name])
                domains.append(domain or "")
    if not paths:
        raise DatasetError(f"no image files under {base} (accepted suffixes: see featkit.io)")
    return Dataset(
        items=paths,
        labels=np.asarray(labels),
        class_names=class_names,
        ids=np.asarray([Path(p).relative_to(base).as_posix() for p in paths]),
        domains=np.asarray(domains) if layout == "domain" else None,
        name=base.name,
        root=str(base),
        info={"source": f"image folder ({layout} layout)"},
    )


def _visible_dirs(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))


def _images_in(folder: Path) -> list[Path]:
    # Broken symlinks are kept: extraction then reports them instead of losing them silently.
    return sorted(
        p
        for p in folder.iterdir()
        if (p.is_file() or p.is_symlink()) and not p.name.startswith(".") and is_image_file(p)
    )

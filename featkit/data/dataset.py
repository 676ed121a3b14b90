"""Dataset: image sources with labels, class names, optional domains and splits, and stable ids."""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Union

import numpy as np

from featkit.exceptions import DatasetError, InvalidParameterError

#: One image source: a file path, or an in-memory array (H, W) or (H, W, C).
ImageSource = Union[str, os.PathLike, np.ndarray]  # noqa: UP007 - a runtime alias on 3.10

UNLABELLED = -1


@dataclass(eq=False)
class Dataset:
    """Images (paths or arrays) with integer labels, class names and stable ids.

    ``labels[i]`` indexes ``class_names``; ``-1`` marks an unlabelled image. ``domains`` and
    ``splits`` are optional per-image strings (``"photo"``, ``"train"``). ``ids`` are stable
    across runs and machines: paths relative to the data set root, or ``name/index``.
    """

    items: Sequence[ImageSource] | np.ndarray
    labels: np.ndarray
    class_names: list[str]
    ids: np.ndarray
    domains: np.ndarray | None = None
    splits: np.ndarray | None = None
    name: str = "images"
    root: str | None = None
    info: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        n = len(self.items)
        self.labels = np.asarray(self.labels, dtype=np.int64)
        self.ids = np.asarray(self.ids, dtype=str)
        for attr in ("labels", "ids", "domains", "splits"):
            value = getattr(self, attr)
            if value is not None and len(value) != n:
                raise DatasetError(
                    f"data set {self.name!r}: {attr} has {len(value)} entries for {n} images"
                )
        if self.domains is not None:
            self.domains = np.asarray(self.domains, dtype=str)
        if self.splits is not None:
            self.splits = np.asarray(self.splits, dtype=str)
        if n and len(set(self.ids.tolist())) != n:
            raise DatasetError(f"data set {self.name!r}: image ids are not unique")
        if n and (self.labels.max(initial=-1) >= len(self.class_names) or self.labels.min() < -1):
            raise DatasetError(f"data set {self.name!r}: a label is outside 0..n_classes-1")

    @classmethod
    def from_items(
        cls,
        items: Sequence[ImageSource] | np.ndarray,
        labels: Sequence[Any] | np.ndarray | None = None,
        *,
        class_names: Sequence[str] | None = None,
        domains: Sequence[str] | None = None,
        name: str = "images",
    ) -> Dataset:
        """Wrap a sequence of paths or arrays (and optional labels of any type) as a Dataset."""
        n = len(items)
        if labels is None:
            codes = np.full(n, UNLABELLED, dtype=np.int64)
            names = list(class_names or [])
        elif class_names is not None:
            codes = np.asarray(labels, dtype=np.int64)
            names = list(class_names)
        else:
            uniques, codes = np.unique(np.asarray(labels), return_inverse=True)
            names = [str(u) for u in uniques]
        if isinstance(items, np.ndarray) or not all(
            isinstance(it, (str, os.PathLike)) for it in items
        ):
            ids = np.array([f"{name}/{i:0{len(str(max(n - 1, 0)))}d}" for i in range(n)])
        else:
            ids = np.array([os.fspath(p) for p in items])
            if len(set(ids.tolist())) != n:  # the same file twice: keep ids unique
                ids = np.array([f"{p}#{i}" for i, p in enumerate(ids)])
        return cls(
            items=items, labels=codes, class_names=names, ids=ids, domains=domains, name=name
        )

    def __len__(self) -> int:
        return len(self.items)

    def __iter__(self) -> Iterator[ImageSource]:
        return iter(self.items)

    def __getitem__(self, index: int) -> ImageSource:
        return self.items[index]

    def __repr__(self) -> str:
        parts = [f"{self.name!r}", f"n={len(self)}", f"classes={len(self.class_names)}"]
        if self.domains is not None:
            parts.append(f"domains={self.domain_names}")
        if self.splits is not None:
            parts.append(f"splits={sorted(set(self.splits.tolist()))}")
        return f"Dataset({', '.join(parts)})"

    @property
    def n_classes(self) -> int:
        """Number of classes."""
        return len(self.class_names)

    @property
    def domain_names(self) -> list[str]:
        """Sorted distinct domain names (empty when the data set has no domains)."""
        return [] if self.domains is None else sorted(set(self.domains.tolist()))

    def subset(self, indices: Sequence[int] | np.ndarray) -> Dataset:
        """A new Dataset with the images at ``indices`` (a boolean mask or integer positions)."""
        idx = np.asarray(indices)
        if idx.dtype == bool:
            idx = np.flatnonzero(idx)
        idx = idx.astype(np.int64, copy=False)
        items = (
            self.items[idx]
            if isinstance(self.items, np.ndarray)
            else [self.items[i] for i in idx.tolist()]
        )
        return replace(
            self,
            items=items,
            labels=self.labels[idx],
            ids=self.ids[idx],
            domains=None if self.domains is None else self.domains[idx],
            splits=None if self.splits is None else self.splits[idx],
        )

    def sample_per_class(self, n: int, seed: int = 0) -> Dataset:
        """At most ``n`` images of each class (of each class in each domain, when the data
        set has domains), drawn at random with ``seed``, in their original order."""
        if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
            raise InvalidParameterError(f"sample_per_class: n must be an int >= 1, got {n!r}")
        groups = [None] if self.domains is None else self.domain_names
        keep = []
        for domain in groups:
            in_domain = True if domain is None else self.domains == domain
            for c in range(self.n_classes):
                rows = np.flatnonzero(in_domain & (self.labels == c))
                keep.append(np.random.default_rng([seed, c]).permutation(rows)[:n])
        return self.subset(np.sort(np.concatenate(keep)))

    def select(
        self, *, domain: str | Sequence[str] | None = None, split: str | None = None
    ) -> Dataset:
        """The images of the given domain(s) and/or split; an unknown name raises DatasetError."""
        mask = np.ones(len(self), dtype=bool)
        if domain is not None:
            wanted = [domain] if isinstance(domain, str) else list(domain)
            missing = sorted(set(wanted) - set(self.domain_names))
            if missing:
                raise DatasetError(
                    f"data set {self.name!r} has no domain {missing[0]!r}; "
                    f"its domains are {self.domain_names or 'none'}"
                )
            mask &= np.isin(self.domains, wanted)
        if split is not None:
            available = [] if self.splits is None else sorted(set(self.splits.tolist()))
            if split not in available:
                raise DatasetError(
                    f"data set {self.name!r} has no split {split!r}; "
                    f"its splits are {available or 'none (use train_test_split)'}"
                )
            mask &= self.splits == split
        return self.subset(mask)

    def train_test_split(self, test_size: float = 0.25, seed: int = 0) -> tuple[Dataset, Dataset]:
        """(train, test): the data set's own split when it has one, else stratified and
        seeded (plain random when a class has fewer than 2 images); see describe_split."""
        if self._has_own_split():
            return self.select(split="train"), self.select(split="test")
        from sklearn.model_selection import train_test_split

        stratify = self.labels if self._can_stratify() else None
        train_idx, test_idx = train_test_split(
            np.arange(len(self)), test_size=test_size, random_state=seed, stratify=stratify
        )
        return self.subset(np.sort(train_idx)), self.subset(np.sort(test_idx))

    def describe_split(self, test_size: float = 0.25) -> str:
        """How :meth:`train_test_split` splits this data set, in words."""
        if self._has_own_split():
            return "the data set's own train/test split"
        kind = "stratified" if self._can_stratify() else "random (a class has < 2 images)"
        return f"{kind} {1 - test_size:.0%}/{test_size:.0%} split"

    def _has_own_split(self) -> bool:
        return self.splits is not None and {"train", "test"} <= set(self.splits.tolist())

    def _can_stratify(self) -> bool:
        return bool(len(self)) and (self.labels >= 0).all() and np.bincount(self.labels).min() >= 2

    def describe(self) -> dict[str, Any]:
        """A JSON-ready summary: name, root, size, classes, domains, splits."""
        out: dict[str, Any] = {
            "name": self.name,
            "root": self.root,
            "n_images": len(self),
            "class_names": list(self.class_names),
        }
        if self.domains is not None:
            out["domains"] = self.domain_names
        if self.splits is not None:
            out["splits"] = sorted(set(self.splits.tolist()))
        out.update(self.info)
        return out

"""The base class of the encoders, :class:`LocalEncoder`, and the spatial pyramid.

``LocalEncoder`` resolves and fits the ``local`` extractor, draws the training sample,
validates the shared parameters (``local``, ``pyramid``, ``n_iter``, ``max_descriptors``,
``seed``), and encodes an image cell by cell of the pyramid; a subclass supplies the
vocabulary and the per-cell encoding. ``CodebookEncoder`` is the vocabulary of bag of words
and VLAD: a k-means codebook of ``n_words`` words, searched with faiss.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import numpy as np
from sklearn.base import clone

from featkit.exceptions import InvalidParameterError
from featkit.extractors.base import Extractor, InputSpec, _as_image_sequence
from featkit.extractors.encoding.kernels import _flat_index, _power_l2, kmeans_codebook
from featkit.extractors.encoding.sampling import _collect_sample
from featkit.extractors.local import LocalExtractor, LocalFeatures
from featkit.registry import create_extractor, get_extractor_info
from featkit.validation import check_int, is_int, is_number

__all__ = ["PUBLIC_MODULE", "CodebookEncoder", "LocalEncoder", "pyramid_cells", "pyramid_levels"]

#: Where the encoder classes say they live (``__module__``): the package, as before it was
#: split, so that ``config["class"]`` (part of the feature cache key), pickles and the
#: logger's name did not change.
PUBLIC_MODULE = "featkit.extractors.encoding"

logger = logging.getLogger(PUBLIC_MODULE)


def pyramid_cells(xy: np.ndarray, side: int, cols: int | None = None) -> np.ndarray:
    """Row-major cell index (row * cols + col) of each position in a grid of cells.

    The grid has ``side`` rows and ``cols`` columns (``side`` too when None: a side x side
    grid); ``xy`` are positions as fractions of the image's width and height.
    """
    rows = int(side)
    cols = rows if cols is None else int(cols)
    xy = np.asarray(xy, dtype=np.float64).reshape(-1, 2)
    col = np.clip(np.floor(xy[:, 0] * cols), 0, cols - 1).astype(np.int64)
    row = np.clip(np.floor(xy[:, 1] * rows), 0, rows - 1).astype(np.int64)
    return row * cols + col


def pyramid_levels(pyramid: Any) -> list[tuple[int, int]]:
    """The (rows, cols) grid of each level of a ``pyramid`` parameter, in its order.

    A level is an int ``s`` (an s x s grid) or a pair ``(rows, cols)``: ``(3, 1)`` is three
    horizontal bands, the "3x1" level of Chatfield et al. 2011. Lists count as pairs (a
    pyramid read back from a JSON config).
    """
    out = []
    for level in pyramid:
        if isinstance(level, (tuple, list)):
            out.append((int(level[0]), int(level[1])))
        else:
            out.append((int(level), int(level)))
    return out


def _valid_level(level: Any) -> bool:
    if isinstance(level, (tuple, list)):
        return len(level) == 2 and all(is_int(v) and 1 <= v <= 64 for v in level)
    return is_int(level) and 1 <= level <= 64


class LocalEncoder(Extractor):
    """Base class of encodings of local descriptors (one vector per image).

    ``fit`` resolves ``local`` (a clone of an instance, or ``create_extractor(name)``) into
    ``local_``. Subclasses learn their vocabulary in ``_fit_vocabulary(sample)`` and encode
    one image in ``_codes`` (per-descriptor work: assignment, posteriors), ``_cell`` (one
    pyramid cell: raw for bag of words, normalised for VLAD and Fisher vectors; or
    ``_blocks``, every cell of every level at once) and ``_finish`` (the levels' (cells, E)
    blocks into one normalised vector). ``encode`` encodes descriptor sets computed
    beforehand (describe once, encode several ways).
    """

    __module__ = PUBLIC_MODULE  # config["class"] and pickles as before the split

    requires_fit = True
    kind = "global"
    # Parameters shared by every encoder, checked by validate_params. Subclasses still list
    # them in their own __init__: scikit-learn (get_params, clone) and register_preset read
    # the parameters and their defaults from the class's own __init__ signature.
    local: Any
    pyramid: Any
    n_iter: int  # iterations of the vocabulary's learning (k-means, EM)
    max_descriptors: int
    seed: int

    # -- parameters ---------------------------------------------------------------------
    @property
    def _label(self) -> str:
        return self.name or type(self).__name__

    def validate_params(self) -> None:
        """Check the shared parameters; a subclass checks its own first, then calls this."""
        label = self._label
        # n_iter first: each encoder used to check it last, just before calling this, so
        # the first error among several bad parameters stays the one it was.
        check_int(label, "n_iter", self.n_iter, 1)
        local = self.local
        if isinstance(local, str):
            try:
                info = get_extractor_info(local)
            except LookupError as exc:
                raise InvalidParameterError(f"{label}: local={local!r}: {exc}") from exc
            if getattr(info.factory, "kind", "local") != "local":
                raise InvalidParameterError(
                    f"{label}: local={local!r} is a global extractor; give a local one "
                    "(e.g. 'sift', 'dsift')"
                )
        elif isinstance(local, LocalExtractor) or (
            isinstance(local, Extractor) and getattr(local, "kind", "") == "local"
        ):
            local.validate_params()
        else:
            raise InvalidParameterError(
                f"{label}: local must be a registered local extractor name or a LocalExtractor "
                f"instance, got {local!r}"
            )
        pyr = self.pyramid
        if not isinstance(pyr, (tuple, list)) or not pyr or not all(map(_valid_level, pyr)):
            raise InvalidParameterError(
                f"{label}: pyramid must be a non-empty tuple of levels, each a grid side or a "
                f"(rows, cols) pair in 1..64, e.g. (1, 2, 4) or (1, 2, (3, 1)), got {pyr!r}"
            )
        levels = pyramid_levels(pyr)
        if len(set(levels)) != len(levels):
            raise InvalidParameterError(f"{label}: pyramid levels must be distinct, got {pyr!r}")
        check_int(label, "max_descriptors", self.max_descriptors, 1)
        check_int(label, "seed", self.seed, 0, 2**31 - 1)

    def set_params(self, **params: Any) -> LocalEncoder:
        """Set parameters; ``local__name=value`` also works when ``local`` is a name."""
        local = params.get("local", self.local)
        if isinstance(local, str) and any(k.startswith("local__") for k in params):
            params["local"] = create_extractor(local)
        return super().set_params(**params)

    def _local(self) -> Extractor:
        """The fitted local extractor, or the one the ``local`` parameter names."""
        fitted = self.__dict__.get("local_")
        if fitted is not None:
            return fitted
        return create_extractor(self.local) if isinstance(self.local, str) else self.local

    def input_spec(self) -> InputSpec:
        return self._local().input_spec()

    def _n_cells(self) -> int:
        return sum(r * c for r, c in pyramid_levels(self.pyramid))

    def _descriptor_dim(self) -> int | None:
        """Dimension the vocabulary works in (after any projection), None when unknown."""
        try:
            return int(self._local().descriptor_dim())
        except Exception:  # an unregistered name or a plugin without descriptor_dim
            return None

    def _cell_dim(self) -> int | None:
        raise NotImplementedError

    def _feature_dim(self) -> int | None:
        cell = self._cell_dim()
        return None if cell is None else cell * self._n_cells()

    @property
    def config(self) -> dict[str, Any]:
        """Extractor config plus the local extractor's (its version invalidates the cache)."""
        cfg = super().config
        try:
            local = self._local()
        except Exception:  # an unregistered name: validate_params reports it
            return cfg
        cfg["local"] = local.config
        return cfg

    def get_feature_names_out(self, input_features: Any = None) -> np.ndarray:
        """``{name}_{cell}_{element}``: cells as ``s{side}_r{row}_c{col}``, or
        ``s{rows}x{cols}_r{row}_c{col}`` for a (rows, cols) level (omitted for (1,))."""
        prefix = self._label.replace("-", "_").replace("/", "_")
        elements = self._element_names()
        cells = [
            f"s{_level_tag(level)}_r{r}_c{c}_"
            for level in self.pyramid
            for r, c in np.ndindex(*pyramid_levels([level])[0])
        ]
        if list(self.pyramid) == [1]:
            cells = [""]
        return np.asarray([f"{prefix}_{c}{e}" for c in cells for e in elements], dtype=object)

    def _element_names(self) -> list[str]:
        raise NotImplementedError

    # -- fitting ------------------------------------------------------------------------
    def fit(self, images: Any, y: Any = None) -> LocalEncoder:
        """Describe ``images`` and learn the vocabulary from a seeded descriptor subsample.

        Description runs in joblib tasks of ``FIT_CHUNK`` images: set
        ``joblib.parallel_config(n_jobs=...)`` around ``fit`` to use several cores; the
        result does not depend on it.
        """
        self.validate_params()
        items = list(_as_image_sequence(images))
        if not items:
            raise InvalidParameterError(f"{self._label}: fit needs at least one training image")
        local = (
            clone(self.local) if not isinstance(self.local, str) else create_extractor(self.local)
        )
        if local.requires_fit:
            local.fit(items)
        self.local_ = local
        sample, stats = _collect_sample(
            local, items, int(self.max_descriptors), int(self.seed), self._label
        )
        self.n_train_images_ = len(items)
        self.n_train_descriptors_ = stats["descriptors"]
        self.n_empty_fit_ = stats["empty"]
        if stats["empty"]:
            logger.warning(
                "%s: %d of %d training images have no local descriptors",
                self._label,
                stats["empty"],
                len(items),
            )
        if len(sample) == 0:
            raise InvalidParameterError(
                f"{self._label}: the {len(items)} training images gave no local descriptors"
            )
        self.__dict__.pop("_faiss_index", None)
        self._fit_vocabulary(sample)
        self._fit_after(items)
        self.is_fitted_ = True
        logger.info(
            "%s: vocabulary learned from %d of %d descriptors of %d images",
            self._label,
            len(sample),
            stats["descriptors"],
            len(items),
        )
        return self

    def _fit_vocabulary(self, sample: np.ndarray) -> None:
        raise NotImplementedError

    def _fit_after(self, items: list[Any]) -> None:
        """A second pass over the training images, when the encoding needs one (tf-idf)."""

    # -- encoding -----------------------------------------------------------------------
    @property
    def n_empty_(self) -> int | None:
        """Images without descriptors in the last transform/encode (encoded as zeros): a
        diagnostic for interactive use; the engine counts them from the returned notes."""
        return self.__dict__.get("_n_empty")

    def _transform(self, images: list[np.ndarray]) -> np.ndarray:
        return self._transform_with_notes(images)[0]

    def _transform_with_notes(
        self, images: list[np.ndarray] | np.ndarray
    ) -> tuple[np.ndarray, dict[str, int]]:
        features = self.local_.describe_prepared(images)
        empty = sum(len(f) == 0 for f in features)
        return self.encode(features), {"no_local_descriptors": empty}

    def encode(self, features: Sequence[LocalFeatures]) -> np.ndarray:
        """Encode descriptor sets already computed (one LocalFeatures per image), float32."""
        self._check_fitted()
        dim = self._feature_dim()
        out = np.zeros((len(features), dim), dtype=np.float32)
        empty = 0
        for i, feats in enumerate(features):
            if len(feats) == 0:
                empty += 1
                continue
            out[i] = self._encode_one(feats)
        self._n_empty = empty
        if empty:
            logger.warning(
                "%s: %d of %d images have no local descriptors; encoded as zeros",
                self._label,
                empty,
                len(features),
            )
        return out

    def _encode_one(self, feats: LocalFeatures) -> np.ndarray:
        x = feats.descriptors
        expected = self._vocabulary_input_dim()
        if x.shape[1] != expected:
            raise ValueError(
                f"{self._label}: descriptors have {x.shape[1]} dimensions, the vocabulary "
                f"was learned on {expected}"
            )
        codes = self._codes(x)
        levels = [(r * c, pyramid_cells(feats.xy, r, c)) for r, c in pyramid_levels(self.pyramid)]
        return self._finish(self._blocks(codes, levels))

    def _blocks(self, codes: Any, levels: list[tuple[int, np.ndarray]]) -> list[np.ndarray]:
        """The (cells, E) block of each level, given (number of cells, cell of each
        descriptor) per level: ``_cell`` of each cell; an encoder may pool faster."""
        return [np.stack([self._cell(codes, ids == c) for c in range(n)]) for n, ids in levels]

    def _vocabulary_input_dim(self) -> int:
        raise NotImplementedError

    def _codes(self, x: np.ndarray) -> Any:
        raise NotImplementedError

    def _cell(self, codes: Any, mask: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def _finish(self, blocks: list[np.ndarray]) -> np.ndarray:
        raise NotImplementedError

    def __getstate__(self) -> dict[str, Any]:
        state = super().__getstate__()
        state.pop("_faiss_index", None)  # faiss indexes are not picklable; rebuilt lazily
        return state

    def _finish_cellwise(self, blocks: list[np.ndarray]) -> np.ndarray:
        """Cell-normalised blocks (VLAD, FV): a level of n cells weighted 1/sqrt(n) (1/s for
        s x s cells), so that every level has the same norm; then global L2."""
        vec = np.concatenate([b.ravel() / np.sqrt(len(b)) for b in blocks])
        return _power_l2(vec, 1.0, True)


class CodebookEncoder(LocalEncoder):
    """Base class of the encoders whose vocabulary is a k-means codebook (bag of words, VLAD).

    ``fit`` learns ``codebook_`` (``n_words`` x D) and ``inertia_`` by faiss k-means of the
    training sample, seeded with ``seed``, in ``n_iter`` iterations; ``_index()`` is the
    faiss index descriptors are assigned with. A subclass checks ``n_words`` (its own
    upper bound) and may extend ``_fit_vocabulary`` (it calls this one first).
    """

    __module__ = PUBLIC_MODULE  # exported from the package, as LocalEncoder

    n_words: int

    def _vocabulary_input_dim(self) -> int:
        return self.codebook_.shape[1]

    def _fit_vocabulary(self, sample: np.ndarray) -> None:
        self.codebook_, self.inertia_ = kmeans_codebook(
            sample, int(self.n_words), n_iter=int(self.n_iter), seed=int(self.seed)
        )
        self._faiss_index = None

    def _index(self) -> Any:
        """The faiss index of the codebook, built on first use (never pickled)."""
        index = self.__dict__.get("_faiss_index")
        if index is None:
            index = _flat_index(self.codebook_)
            self._faiss_index = index
        return index


def _level_tag(level: Any) -> str:
    if isinstance(level, (tuple, list)):
        return f"{int(level[0])}x{int(level[1])}"
    return str(int(level))


def _check_power(label: str, value: Any) -> None:
    if not is_number(value) or not 0 < value <= 1:
        raise InvalidParameterError(f"{label}: power must be in (0, 1], got {value!r}")

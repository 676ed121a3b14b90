"""The Extractor contract: a scikit-learn transformer from images to float32 feature rows.

An extractor is built with plain parameters (``get_params`` / ``set_params`` / ``clone``
work), learns what it needs in ``fit`` (a codebook; nothing for HOG or a frozen CNN) and
maps images to a float32 array ``(n, feature_dim)`` in ``transform``. Images may be paths,
arrays, PIL images, encoded bytes, or a :class:`~featkit.data.Dataset`. Its ``config``
(name, parameters, version, fitted state) is the key of featkit's feature cache.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

import numpy as np
from sklearn.base import BaseEstimator, TransformerMixin

from featkit.exceptions import InvalidParameterError, NotFittedError
from featkit.io import read_image, resize_image

__all__ = ["DECODE_MODES", "Extractor", "InputSpec", "check_decode", "set_decode"]

#: How encoded images are decoded before the resize to ``InputSpec.size``: "reduced" lets a
#: large JPEG be decoded at 1/2, 1/4 or 1/8 scale (libjpeg's DCT scaling, about 5x faster on
#: 12 MP photos); "exact" decodes every image at full size.
DECODE_MODES = ("reduced", "exact")
#: A reduced decode keeps at least this many times the size the image is resized to next,
#: so that the resize's own filter still does most of the shrinking.
REDUCED_DECODE_MARGIN = 2


def reduced_decode_size(size: tuple[int, int]) -> tuple[int, int]:
    """The smallest (height, width) a reduced decode may give for a resize to ``size``."""
    return REDUCED_DECODE_MARGIN * int(size[0]), REDUCED_DECODE_MARGIN * int(size[1])


@dataclass(frozen=True)
class InputSpec:
    """What an extractor needs of its input images.

    ``color``: ``"gray"`` (H, W) or ``"rgb"`` (H, W, 3). ``size``: (height, width) every
    image is resized to, or None to keep each image's own size. ``dtype``: uint8 (0..255)
    or float32 (0..1). ``decode``: ``"exact"`` reads every image at full size before the
    resize; ``"reduced"`` lets a JPEG at least 4x ``size`` be decoded at a reduced scale
    that keeps at least twice ``size`` (:func:`reduced_decode_size`, passed as
    :func:`featkit.io.read_image`'s ``min_size``); it changes nothing when ``size`` is
    None. The default is "exact", so that an extractor that does not choose (a plugin's)
    keeps its pixels; the built-in extractors take it from their ``decode`` parameter,
    which their ``config`` (the cache key) records.
    """

    color: Literal["gray", "rgb"] = "rgb"
    size: tuple[int, int] | None = None
    dtype: type = np.uint8
    decode: Literal["reduced", "exact"] = "exact"

    def __post_init__(self) -> None:
        check_decode("InputSpec", self.decode)


def check_decode(name: str, decode: Any) -> None:
    """Raise InvalidParameterError unless ``decode`` is one of :data:`DECODE_MODES`."""
    if not isinstance(decode, str) or decode not in DECODE_MODES:
        raise InvalidParameterError(f"{name}: decode must be 'reduced' or 'exact', got {decode!r}")


def set_decode(extractor: Extractor, decode: str) -> bool:
    """Have ``extractor`` decode images in mode ``decode`` ("reduced", "exact" or
    "device"); return whether it does now.

    "device" (JPEGs decoded where the network runs) applies to extractors that can
    (``device_decode``: ``cnn``); the others, which run on the CPU, read as "reduced".

    Sets its ``decode`` parameter, or that of the local extractor an encoding reads images
    with (``local__decode``; a local extractor given by name becomes an instance only when
    the mode changes, so that the config, the cache key, stays the same otherwise). An
    extractor without the parameter (``sift``, most plugins) decodes every image at full
    size: True for "exact", False for "reduced".
    """
    if decode == "device":
        if extractor.device_decode:
            extractor.set_params(decode="device")
            return True
        decode = "reduced"
    check_decode("decode", decode)
    params = extractor.get_params(deep=True)
    for key in ("decode", "local__decode"):
        if key in params:
            if params[key] != decode:
                extractor.set_params(**{key: decode})
            return True
    local = params.get("local")
    if isinstance(local, str):
        from featkit.registry import create_extractor

        try:
            named = create_extractor(local)
        except Exception:  # an unknown name: validate_params reports it
            return decode == "exact"
        if "decode" in named.get_params(deep=False):
            if named.get_params(deep=False)["decode"] != decode:
                extractor.set_params(local=named.set_params(decode=decode))
            return True
    return decode == "exact"


class Extractor(TransformerMixin, BaseEstimator):
    """Base class of featkit extractors: images in, float32 feature rows out.

    Subclasses set the class attributes, store their parameters unchanged in ``__init__``
    (the scikit-learn rule), and implement ``_transform`` (or ``_transform_one``) and
    ``_feature_dim``; stateful ones set ``requires_fit`` and implement ``_fit``.
    """

    #: Registry name; set by :func:`featkit.register_extractor`.
    name: ClassVar[str] = ""
    #: Bump when the output changes for the same parameters: it invalidates cached features.
    version: ClassVar[str] = "1"
    #: ``"global"`` (one vector per image) or ``"local"`` (a set of descriptors per image).
    kind: ClassVar[str] = "global"
    #: True when ``fit`` learns from images (a codebook); False for fixed extractors.
    requires_fit: ClassVar[bool] = False
    #: True when ``transform`` uses every core itself (a torch network): the engine then
    #: decodes images in DataLoader workers and runs whole batches in this process, instead
    #: of running chunks in single-threaded joblib workers.
    batched: ClassVar[bool] = False
    #: Whether ``decode="device"`` is one of its modes (JPEGs decoded by its network's
    #: device: ``cnn``).
    device_decode: ClassVar[bool] = False

    # -- to implement ---------------------------------------------------------------------
    def validate_params(self) -> None:
        """Raise InvalidParameterError for a bad parameter, before any native code runs."""

    def input_spec(self) -> InputSpec:
        """The colour, size and dtype the images are converted to before extraction."""
        return InputSpec()

    def _feature_dim(self) -> int | None:
        """Output dimension, or None when unknown until fitted."""
        return None

    def _fit(self, images: list[np.ndarray], y: np.ndarray | None) -> None:
        """Learn from prepared images (only called when ``requires_fit``)."""

    def _transform(self, images: list[np.ndarray]) -> np.ndarray:
        """Features of prepared images, shape (n, feature_dim)."""
        if not images:
            return np.zeros((0, self.feature_dim), dtype=np.float32)
        return np.stack([self._transform_one(img) for img in images])

    def _transform_with_notes(
        self, images: list[np.ndarray] | np.ndarray
    ) -> tuple[np.ndarray, dict[str, int]]:
        """Features of prepared images and counts about them worth a line in a run's summary
        (images without local descriptors...), which the engine adds up over chunks. Override
        to return notes; the default has none (or a plugin's own ``transform_notes()``)."""
        return self._transform(images), self.transform_notes()

    def transform_notes(self) -> dict[str, int]:
        """Counts about the last transform, read right after it. Kept for plugins written
        against it; new code returns its notes from ``_transform_with_notes`` instead, so
        that nothing is left in the extractor between calls."""
        return {}

    def _transform_one(self, image: np.ndarray) -> np.ndarray:
        """Feature vector of one prepared image."""
        raise NotImplementedError(
            f"{type(self).__name__} implements neither _transform nor _transform_one"
        )

    # -- the scikit-learn API ---------------------------------------------------------------
    def fit(self, images: Any, y: Any = None) -> Extractor:
        """Learn what the extractor needs from ``images`` (nothing for fixed extractors)."""
        self.validate_params()
        if self.requires_fit:
            prepared = self.prepare_many(images)
            self._fit(prepared, None if y is None else np.asarray(y))
        self.is_fitted_ = True
        return self

    def transform(self, images: Any) -> np.ndarray:
        """Features of ``images`` as a float32 array of shape (n, feature_dim)."""
        self.validate_params()
        self._check_fitted()
        return self.transform_prepared([self.load(img) for img in _as_image_sequence(images)])

    def transform_prepared(self, images: list[np.ndarray] | np.ndarray) -> np.ndarray:
        """Features of images already converted by :meth:`prepare` or :meth:`load` (a list,
        or an array stacking them), float32 (n, d)."""
        return self.transform_prepared_with_notes(images)[0]

    def transform_prepared_with_notes(
        self, images: list[np.ndarray] | np.ndarray
    ) -> tuple[np.ndarray, dict[str, int]]:
        """:meth:`transform_prepared`, and the counts worth a line in a run's summary (for
        example ``{"no_local_descriptors": 2}``), returned rather than left in the extractor."""
        rows, notes = self._transform_with_notes(images)
        out = np.ascontiguousarray(rows, dtype=np.float32)
        if out.ndim != 2 or len(out) != len(images):
            raise RuntimeError(
                f"{type(self).__name__} returned features of shape {out.shape} "
                f"for {len(images)} images"
            )
        return out, dict(notes)

    def prepare(self, image: Any) -> np.ndarray:
        """Read one image (path, array, bytes, PIL) and convert it to ``input_spec()``."""
        spec = self.input_spec()
        # "reduced": a large JPEG is decoded at a scale keeping twice spec.size, then resized
        reduce_to = None
        if spec.decode == "reduced" and spec.size is not None:
            reduce_to = reduced_decode_size(spec.size)
        array = read_image(image, mode=spec.color, dtype=spec.dtype, min_size=reduce_to)
        return array if spec.size is None else resize_image(array, spec.size)

    def load(self, image: Any) -> Any:
        """What a data worker hands to :meth:`transform_prepared` for one image: by default
        :meth:`prepare`'s array (``cnn`` with ``decode="device"``: a JPEG's bytes)."""
        return self.prepare(image)

    def prepare_many(self, images: Any) -> list[np.ndarray]:
        """``prepare`` over a sequence of images, a (n, H, W[, C]) array or a Dataset."""
        return [self.prepare(img) for img in _as_image_sequence(images)]

    @property
    def feature_dim(self) -> int:
        """Length of one feature vector."""
        dim = self._feature_dim()
        if dim is None:
            raise NotFittedError(
                f"{type(self).__name__}'s feature dimension is known once it is fitted"
            )
        return int(dim)

    @property
    def config(self) -> dict[str, Any]:
        """A JSON-ready identity: name, class, version, parameters and fitted state.

        Equal configs give equal features for equal images; it keys the feature cache.
        """
        return {
            "name": self._registered_name(),
            "class": f"{type(self).__module__}.{type(self).__qualname__}",
            "version": str(self.version),
            "params": {k: _jsonable(v) for k, v in sorted(self.get_params(deep=False).items())},
            "state": self._state_fingerprint() if self.requires_fit else None,
        }

    def get_feature_names_out(self, input_features: Any = None) -> np.ndarray:
        """Names of the output features: ``{name}{i}``."""
        prefix = self._registered_name().replace("-", "_").replace("/", "_")
        return np.asarray([f"{prefix}{i}" for i in range(self.feature_dim)], dtype=object)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.requires_fit = self.requires_fit
        tags.input_tags.two_d_array = False
        return tags

    # -- helpers ----------------------------------------------------------------------------
    def _registered_name(self) -> str:
        """The registry name, also in a process that has not loaded the plugins yet (a
        joblib worker unpickling a plugin's extractor): the name is part of the cache key."""
        if not self.name:
            from featkit.registry import load_all

            load_all()  # registering a plugin's class sets its ``name``
        return self.name or type(self).__name__.lower()

    def _check_fitted(self) -> None:
        if self.requires_fit and not getattr(self, "is_fitted_", False):
            raise NotFittedError(
                f"this {type(self).__name__} is not fitted yet: call fit(training_images) first"
            )

    def _state_fingerprint(self) -> str:
        """A hash of the fitted attributes (names ending in '_'), for the cache key."""
        h = hashlib.blake2b(digest_size=16)
        for key in sorted(k for k in vars(self) if k.endswith("_") and not k.startswith("_")):
            value = getattr(self, key)
            h.update(key.encode())
            if isinstance(value, np.ndarray):
                h.update(str((value.dtype.str, value.shape)).encode())
                h.update(np.ascontiguousarray(value).tobytes())
            else:
                h.update(json.dumps(_jsonable(value), sort_keys=True).encode())
        return h.hexdigest()


def _as_image_sequence(images: Any) -> Sequence[Any] | Iterable[Any]:
    if isinstance(images, (str, bytes, os.PathLike)):
        raise InvalidParameterError(
            "expected a sequence of images (paths, arrays or a Dataset), got a single "
            f"{type(images).__name__}; wrap it in a list"
        )
    if isinstance(images, np.ndarray):
        if images.ndim < 3 or (images.dtype == object and images.ndim != 1):
            raise InvalidParameterError(
                f"an image batch array must be (n, H, W) or (n, H, W, C); got {images.shape}"
            )
        return images  # iterating yields the images along the first axis
    if not hasattr(images, "__iter__"):
        raise InvalidParameterError(f"expected a sequence of images, got {type(images).__name__}")
    return images


def _jsonable(value: Any) -> Any:
    """A JSON-ready, stable form of a parameter value."""
    if isinstance(value, (str, bool, int, float)) or value is None:
        return value
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in sorted(value.items(), key=lambda kv: str(kv[0]))}
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    if isinstance(value, np.ndarray):
        return {"ndarray": hashlib.blake2b(value.tobytes(), digest_size=16).hexdigest()}
    if isinstance(value, type):
        return f"{value.__module__}.{value.__qualname__}"
    if isinstance(value, BaseEstimator):
        return {type(value).__qualname__: _jsonable(value.get_params(deep=False))}
    return repr(value)

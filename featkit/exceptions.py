"""featkit's exceptions: every error featkit raises on purpose derives from FeatkitError."""

from __future__ import annotations

import os
from collections.abc import Sequence

from sklearn.exceptions import NotFittedError as _SklearnNotFittedError


class FeatkitError(Exception):
    """Base class of every error featkit raises on purpose."""


class ImageReadError(FeatkitError, ValueError):
    """An image could not be read or decoded; names the source and the reason."""

    def __init__(self, source: object, reason: str) -> None:
        self.source = source
        self.reason = reason
        super().__init__(f"cannot read image {_describe(source)}: {reason}")


class ExtractorNotFoundError(FeatkitError, LookupError):
    """No extractor is registered under the requested name."""

    def __init__(self, name: str, close_matches: Sequence[str] = ()) -> None:
        self.name = name
        self.close_matches = list(close_matches)
        hint = (
            f"; did you mean {', '.join(repr(m) for m in self.close_matches)}?"
            if self.close_matches
            else "; run `featkit list` to see the available extractors"
        )
        super().__init__(f"unknown extractor {name!r}{hint}")

    def __str__(self) -> str:  # LookupError would otherwise quote the whole message
        return self.args[0]


class PluginLoadError(FeatkitError, ImportError):
    """A plugin registered through the `featkit.extractors` entry point failed to load."""

    def __init__(self, name: str, distribution: str | None, reason: str) -> None:
        self.plugin = name
        self.distribution = distribution
        self.reason = reason
        origin = f" (from package {distribution!r})" if distribution else ""
        super().__init__(f"plugin {name!r}{origin} failed to load: {reason}")


class InvalidParameterError(FeatkitError, ValueError):
    """A parameter has a wrong type or value; raised before any native code runs."""


class DatasetError(FeatkitError, ValueError):
    """A data set specification cannot be resolved or its files are malformed."""


class NotFittedError(FeatkitError, _SklearnNotFittedError):
    """An extractor that learns from images (a codebook) was used before ``fit``."""


class WeightsNotFoundError(FeatkitError, FileNotFoundError):
    """Pretrained weights are neither installed nor downloadable; says how to get them."""

    def __str__(self) -> str:  # OSError would otherwise format the message as errno fields
        return str(self.args[0])


class CacheError(FeatkitError):
    """The feature cache is unusable (for example, its folder cannot be written)."""


def _describe(source: object) -> str:
    """A short human name for an image source: its path, or its kind and size."""
    if isinstance(source, (str, os.PathLike)):
        return repr(os.fspath(source))
    if isinstance(source, (bytes, bytearray, memoryview)):
        return f"<{len(source)} bytes>"
    shape = getattr(source, "shape", None)
    if shape is not None:
        return f"<array {tuple(shape)} {getattr(source, 'dtype', '')}>"
    return f"<{type(source).__name__}>"

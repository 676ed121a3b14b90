"""The extractor registry: names to factories, built-ins and entry-point plugins.

Modelled on timm's ``_registry.py``: a decorator registers a class (or factory) under a
lower-case name; ``create_extractor(name, **params)`` builds one. Third-party packages
declare the entry-point group ``featkit.extractors``; they are discovered lazily on the
first registry query, never at ``import featkit``, and one that fails to import is recorded
as broken with its reason while every other extractor keeps working.
"""

from __future__ import annotations

import difflib
import fnmatch
import importlib
import inspect
import logging
import re
import threading
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from importlib.metadata import EntryPoint, entry_points
from typing import Any, TypeVar

from featkit.exceptions import ExtractorNotFoundError, InvalidParameterError, PluginLoadError

__all__ = [
    "ENTRY_POINT_GROUP",
    "ExtractorInfo",
    "broken_plugins",
    "create_extractor",
    "describe_extractor",
    "extractor_from_config",
    "get_extractor_info",
    "list_extractors",
    "register_extractor",
]

logger = logging.getLogger(__name__)

ENTRY_POINT_GROUP = "featkit.extractors"
BUILTIN_SOURCE = "featkit"
_NAME_RE = re.compile(r"^[a-z0-9][a-z0-9_.\-/]*$")

F = TypeVar("F", bound=Callable[..., Any])


@dataclass(frozen=True)
class ExtractorInfo:
    """What the registry knows of one extractor: its name, factory and where it comes from."""

    name: str
    factory: Callable[..., Any]
    source: str  # "featkit" for built-ins, else the plugin's distribution name

    @property
    def summary(self) -> str:
        """First line of the factory's docstring."""
        doc = inspect.getdoc(self.factory) or ""
        return doc.strip().splitlines()[0] if doc.strip() else ""


_registry: dict[str, ExtractorInfo] = {}
_broken: dict[str, PluginLoadError] = {}
_lock = threading.RLock()
_state = {"builtins": False, "plugins": False}
_loading_source: list[str] = []  # distribution whose entry point is being imported


def register_extractor(name: str | None = None, *, overwrite: bool = False) -> Callable[[F], F]:
    """Decorator registering an Extractor class or factory function under ``name``.

    The name defaults to the class's ``name`` attribute. Registering a name again warns and
    replaces the old entry (pass ``overwrite=True`` to replace silently).
    """

    def decorator(factory: F) -> F:
        reg_name = name if name is not None else getattr(factory, "name", "")
        if not isinstance(reg_name, str) or not _NAME_RE.match(reg_name):
            raise InvalidParameterError(
                f"invalid extractor name {reg_name!r}: use lower-case letters, digits, "
                "'-', '_', '.' or '/', starting with a letter or digit"
            )
        if inspect.isclass(factory) and "name" not in vars(factory):
            # Not inherited: a subclass registered under its own name must report that name.
            factory.name = reg_name
        source = _loading_source[-1] if _loading_source else BUILTIN_SOURCE
        with _lock:
            old = _registry.get(reg_name)
            if old is not None and old.factory is not factory and not overwrite:
                warnings.warn(
                    f"extractor {reg_name!r} is registered again: {_qualname(old.factory)} "
                    f"(from {old.source}) is replaced by {_qualname(factory)} (from {source})",
                    stacklevel=2,
                )
            _registry[reg_name] = ExtractorInfo(reg_name, factory, source)
        return factory

    return decorator


def list_extractors(pattern: str | None = None) -> list[str]:
    """Sorted names of the working extractors, optionally filtered by a glob ``pattern``."""
    load_all()
    names = sorted(_registry)
    return fnmatch.filter(names, pattern) if pattern else names


def broken_plugins() -> dict[str, PluginLoadError]:
    """Plugins whose entry point failed to load, by entry-point name, with the error."""
    load_all()
    return dict(_broken)


def get_extractor_info(name: str) -> ExtractorInfo:
    """The registry entry for ``name``; unknown names raise ExtractorNotFoundError."""
    load_all()
    info = _registry.get(name)
    if info is not None:
        return info
    if name in _broken:
        raise _broken[name]
    matches = difflib.get_close_matches(name.lower(), list(_registry), n=3, cutoff=0.5)
    raise ExtractorNotFoundError(name, matches)


def create_extractor(name: str, **params: Any) -> Any:
    """Build the extractor registered as ``name`` with ``params``; parameters are validated."""
    info = get_extractor_info(name)
    accepted = _parameters(info.factory)
    takes_kwargs = any(
        p.kind is inspect.Parameter.VAR_KEYWORD
        for p in inspect.signature(info.factory).parameters.values()
    )
    # scikit-learn's nested names (``local__step=4``) go to set_params once it is built.
    nested = {k: v for k, v in params.items() if "__" in k}
    params = {k: v for k, v in params.items() if "__" not in k}
    unknown = sorted(set(params) - set(accepted))
    if unknown and not takes_kwargs:
        valid = ", ".join(accepted) or "none"
        raise InvalidParameterError(
            f"extractor {name!r} has no parameter {unknown[0]!r}; its parameters are: {valid}"
        )
    extractor = info.factory(**params)
    if nested:
        try:
            extractor.set_params(**nested)
        except ValueError as exc:  # scikit-learn's message names the valid parameters
            raise InvalidParameterError(f"extractor {name!r}: {exc}") from None
    validate = getattr(extractor, "validate_params", None)
    if callable(validate):
        validate()
    return extractor


def extractor_from_config(config: dict[str, Any] | None) -> Any:
    """The extractor described by a FeatureSet's ``provenance["extractor"]``, re-created
    with :func:`featkit.create_extractor`; a clear error when that cannot reproduce it."""
    if not config or "name" not in config:
        raise InvalidParameterError(
            "this index does not record the extractor of its features (it was built from an "
            "array or an .npz): search it with query features (FeatureIndex.search) instead"
        )
    if config.get("state") is not None:
        raise InvalidParameterError(
            f"the {config['name']!r} extractor of this index learned from images (a codebook) "
            "and its fitted state is not saved with the features: pass the fitted extractor "
            "(search_images(..., extractor=...)) or search with query features"
        )
    extractor = create_extractor(config["name"], **dict(config.get("params") or {}))
    version = str(getattr(extractor, "version", config.get("version")))
    if config.get("version") is not None and version != str(config["version"]):
        raise InvalidParameterError(
            f"the index was built with {config['name']!r} version {config['version']}, this "
            f"featkit has version {version}: its features may differ; rebuild the index"
        )
    return extractor


def describe_extractor(name: str) -> dict[str, Any]:
    """Name, summary, source, version, kind and parameters (default and doc) of an extractor."""
    info = get_extractor_info(name)
    docs = _numpydoc_parameters(inspect.getdoc(info.factory) or "")
    params = []
    for pname, param in _parameters(info.factory).items():
        default = None if param.default is inspect.Parameter.empty else param.default
        params.append({"name": pname, "default": default, "doc": docs.get(pname, "")})
    doc = inspect.getdoc(info.factory) or ""
    description = doc.split("\nParameters\n")[0].strip()
    return {
        "name": info.name,
        "summary": info.summary,
        "description": description,
        "source": info.source,
        "version": getattr(info.factory, "version", None),
        "kind": getattr(info.factory, "kind", None),
        "parameters": params,
        # Optional sections an extractor adds (the cnn lists the weights usable offline).
        "extra": extra()
        if callable(extra := getattr(info.factory, "describe_extra", None))
        else {},
    }


def load_all() -> None:
    """Import the built-in extractors, then the entry-point plugins, once each."""
    if _state["builtins"] and _state["plugins"]:
        return
    with _lock:
        if not _state["builtins"]:
            importlib.import_module("featkit.extractors")
            _state["builtins"] = True
        if not _state["plugins"]:
            _state["plugins"] = True
            for ep in entry_points(group=ENTRY_POINT_GROUP):
                _load_plugin(ep)


def _load_plugin(ep: EntryPoint) -> None:
    dist = ep.dist.name if ep.dist is not None else None
    _loading_source.append(dist or ep.value)
    try:
        obj = ep.load()
    except Exception as exc:  # a plugin must never break the registry: record why it failed
        _broken[ep.name] = PluginLoadError(ep.name, dist, f"{type(exc).__name__}: {exc}")
        logger.warning("%s", _broken[ep.name])
        return
    finally:
        _loading_source.pop()
    if ep.name not in _registry and callable(obj):
        # The entry point names the class or factory itself instead of registering it.
        _loading_source.append(dist or ep.value)
        try:
            register_extractor(ep.name)(obj)
        except InvalidParameterError as exc:
            _broken[ep.name] = PluginLoadError(ep.name, dist, str(exc))
        finally:
            _loading_source.pop()


def _parameters(factory: Callable[..., Any]) -> dict[str, inspect.Parameter]:
    target = factory.__init__ if inspect.isclass(factory) else factory
    sig = inspect.signature(target)
    return {
        n: p
        for n, p in sig.parameters.items()
        if n != "self" and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
    }


def _numpydoc_parameters(doc: str) -> dict[str, str]:
    """Parameter descriptions from the numpydoc ``Parameters`` section of a docstring."""
    lines = doc.splitlines()
    try:
        start = next(i for i, line in enumerate(lines) if line.strip() == "Parameters") + 2
    except StopIteration:
        return {}
    out: dict[str, str] = {}
    current: str | None = None
    for line in lines[start:]:
        if line.strip() and not line.startswith(" "):
            if set(line.strip()) <= {"-"}:  # underline: the previous line titled the next section
                out.pop(current or "", None)
                break
            current = line.split(":")[0].strip()
            out[current] = ""
        elif current is not None and line.strip():
            out[current] = (out[current] + " " + line.strip()).strip()
    return out


def _qualname(obj: Any) -> str:
    return f"{getattr(obj, '__module__', '?')}.{getattr(obj, '__qualname__', repr(obj))}"

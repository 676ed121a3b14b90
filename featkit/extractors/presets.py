"""Presets: registry names for an extractor class with other defaults.

A preset is to featkit what a model entrypoint is to timm (``resnet50`` is ``ResNet`` with
the depths of ResNet-50): one declaration names a combination of an extractor class and
the defaults that make it, and registers it. Every built-in combination (``sift-bovw``,
``dsift-vlad`` ...) and every ``cnn/<alias>`` is declared with :func:`register_preset`
(``featkit/extractors/encoding/presets.py``, the bottom of ``featkit/extractors/cnn.py``)::

    register_preset("cnn/resnet50", CNNExtractor, summary="ResNet-50 ...",
                    defaults={"model": "torchvision:resnet50"}, class_name="CNN_resnet50",
                    module="featkit.extractors.cnn")

The preset is a subclass of the base class, not a factory function, because scikit-learn
reads an estimator's parameters and their defaults from its class's ``__init__`` and
``clone`` rebuilds it as ``type(estimator)(**params)``. So an instance of a preset

- reports the name it was registered under (``name``, ``config["name"]``: the cache key);
- keeps its defaults through ``get_params``, ``clone``, ``GridSearchCV`` and the repr;
- is described by ``describe_extractor`` with the preset's defaults and the base class's
  parameter docs;
- pickles by reference to ``module.class_name``, so a fresh interpreter (a joblib worker,
  the conformance kit's config check) finds the class by importing ``module``.
"""

from __future__ import annotations

import inspect
import sys
import types
from collections.abc import Mapping
from typing import Any, TypeVar

from featkit.registry import register_extractor

__all__ = ["register_preset"]

T = TypeVar("T")


def register_preset(
    name: str,
    base: type[T],
    *,
    summary: str,
    defaults: Mapping[str, Any],
    class_name: str,
    module: str,
) -> type[T]:
    """Register ``base`` with other ``defaults`` as the extractor ``name``; return the class.

    Parameters
    ----------
    name : str
        Registry name; instances report it as their ``name`` and ``config["name"]``.
    base : type
        The extractor class the preset configures.
    summary : str
        One-line summary: the first line of the preset's docstring (``featkit list``).
    defaults : mapping
        New defaults of some of ``base``'s parameters; the others keep theirs.
    class_name : str
        Name of the class, bound under it in ``module`` so that instances pickle.
    module : str
        The (imported or importing) module the class is bound in and says it lives in.
    """
    cls = type(base)(
        class_name,
        (base,),
        {
            "__module__": module,
            "__qualname__": class_name,
            "__doc__": _preset_doc(base, summary, defaults),
            "__init__": _with_defaults(base.__init__, defaults, f"{class_name}.__init__"),
            "name": name,
        },
    )
    setattr(sys.modules[module], class_name, cls)
    return register_extractor(name)(cls)


def _with_defaults(
    init: types.FunctionType, defaults: Mapping[str, Any], qualname: str
) -> types.FunctionType:
    """A copy of ``init`` whose parameters default to ``defaults``.

    The copy shares the code of ``init``, so a preset runs exactly its base's ``__init__``.
    Its defaults are where Python keeps them (``__defaults__``, ``__kwdefaults__``), so
    calls, ``inspect.signature`` and scikit-learn agree without a faked ``__signature__``.
    """
    if not isinstance(init, types.FunctionType):
        raise TypeError(f"a preset needs a plain __init__ function, got {init!r}")
    params = inspect.signature(init).parameters
    with_default = {n for n, p in params.items() if p.default is not inspect.Parameter.empty}
    unknown = sorted(set(defaults) - with_default)
    if unknown:
        raise TypeError(f"{init.__qualname__} has no parameter with a default named {unknown}")
    code = init.__code__
    old = init.__defaults__ or ()
    positional = code.co_varnames[code.co_argcount - len(old) : code.co_argcount]
    copy = types.FunctionType(
        code,
        init.__globals__,
        init.__name__,
        tuple(defaults.get(n, d) for n, d in zip(positional, old, strict=True)),
        init.__closure__,
    )
    if init.__kwdefaults__:
        copy.__kwdefaults__ = {n: defaults.get(n, d) for n, d in init.__kwdefaults__.items()}
    copy.__annotations__ = dict(init.__annotations__)
    copy.__doc__ = init.__doc__
    copy.__module__ = init.__module__
    copy.__qualname__ = qualname
    return copy


def _preset_doc(base: type, summary: str, defaults: Mapping[str, Any]) -> str:
    """``summary``, then ``base``'s docstring after its own summary paragraph, with the
    numpydoc ``Parameters`` entries of ``defaults`` stating the preset's values.

    The rest is kept word for word: ``describe_extractor`` then gives the preset the
    parameter docs of its base, and the docs generator shows it as a variant of it.
    """
    doc = inspect.getdoc(base) or ""
    _, _, rest = doc.partition("\n\n")
    lines = rest.splitlines()
    section = ""
    for i, line in enumerate(lines):
        underlined = i + 1 < len(lines) and set(lines[i + 1].strip()) == {"-"}
        if underlined and not line.startswith(" "):
            section = line.strip()
            continue
        param, sep, kind = line.partition(" : ")
        if section == "Parameters" and sep and not line.startswith(" ") and param in defaults:
            kind = kind.split(", default=")[0].removesuffix(", optional")
            lines[i] = f"{param} : {kind}, default={defaults[param]!r}"
    return "\n".join([summary, "", *lines]).strip() + "\n"

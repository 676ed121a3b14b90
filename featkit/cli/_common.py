"""Helpers shared by the commands: exit codes, ``-p`` parsing, progress lines, scores."""

from __future__ import annotations

import ast
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import click

from featkit.exceptions import InvalidParameterError

EXIT_USAGE = 2
EXIT_FAILED_IMAGES = 1


def echo_err(message: str) -> None:
    """Print a progress or warning line on stderr."""
    click.echo(message, err=True)


def split_list(value: str | None) -> list[str] | None:
    """``"a, b,,c"`` -> ``["a", "b", "c"]``; None stays None."""
    return None if value is None else [v.strip() for v in value.split(",") if v.strip()]


def parse_params(pairs: Sequence[str]) -> dict[str, Any]:
    """Parse ``-p`` pairs: ``["size=16", "cells=8,8"]`` -> ``{"size": 16, "cells": (8, 8)}``."""
    params: dict[str, Any] = {}
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        key = key.strip()
        if not sep or not key.isidentifier():
            raise InvalidParameterError(f"-p expects KEY=VALUE (e.g. -p size=16), got {pair!r}")
        params[key] = parse_value(raw.strip())
    return params


def parse_value(raw: str) -> Any:
    """A command-line value as a Python value: numbers, booleans, None, tuples, else text."""
    lowered = raw.lower()
    if lowered in ("true", "false"):
        return lowered == "true"
    if lowered in ("none", "null"):
        return None
    if "," in raw and not raw.startswith(("[", "(")):
        return tuple(parse_value(part.strip()) for part in raw.split(","))
    try:
        return ast.literal_eval(raw)
    except (ValueError, SyntaxError):
        return raw


def named_params(
    pairs: Sequence[str], flag: str = "-p", example: str = "cnn.image_size=128"
) -> dict[str, dict[str, Any]]:
    """``["cnn.image_size=128"]`` -> ``{"cnn": {"image_size": 128}}``."""
    out: dict[str, dict[str, Any]] = {}
    for pair in pairs:
        name, dot, rest = pair.partition(".")
        if not dot or "=" not in rest:
            raise InvalidParameterError(
                f"{flag} expects NAME.KEY=VALUE (e.g. {flag} {example}), got {pair!r}"
            )
        out.setdefault(name.strip(), {}).update(parse_params([rest]))
    return out


def scoring_kwargs(classifiers: str, seed: int, view: str, quiet: bool) -> dict[str, Any]:
    """The arguments compare, adapt and evaluate_features take from the options they share:
    the ``--classifiers`` list, ``--seed``, ``--view`` (``none``: no 2-D projection) and the
    progress lines on stderr (``log``), which ``-q`` turns off."""
    return {
        "classifiers": split_list(classifiers) or [],
        "seed": seed,
        "view": None if view == "none" else view,
        "log": None if quiet else echo_err,
    }


def extraction_kwargs(
    n_jobs: int | None, device: str | None, cache_dir: Path | None, quiet: bool
) -> dict[str, Any]:
    """The arguments compare and adapt take from ``-j``, ``--device`` and ``--cache-dir``,
    and ``progress``: False under ``-q`` (no progress bars), else None (the default)."""
    return {
        "n_jobs": n_jobs,
        "device": device,
        "cache_dir": cache_dir,
        "progress": False if quiet else None,
    }


def echo_scores(scores: dict[str, Any], as_json: bool, heading: str) -> None:
    """Print streamed scores: the JSON, or a heading and the headline numbers."""
    if as_json:
        click.echo(json.dumps(scores, indent=2))
        return
    click.echo(heading)
    click.echo(
        f"accuracy {scores['accuracy']:.4f}, balanced accuracy "
        f"{scores['balanced_accuracy']:.4f}, macro-F1 {scores['macro_f1']:.4f} "
        f"({scores['seconds']:.1f} s)"
    )

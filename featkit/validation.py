"""Parameter checks shared by every part of featkit (extractors, aligners, classifiers,
indexes, protocols): each raises InvalidParameterError naming the owner and the parameter,
before any native code (OpenCV, torch, faiss) sees the value."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from featkit.exceptions import InvalidParameterError

__all__ = ["check_bool", "check_float", "check_int", "is_int", "is_number"]


def is_int(value: Any) -> bool:
    """Whether ``value`` is an integer (Python or numpy), not a bool."""
    return isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_))


def is_number(value: Any) -> bool:
    """Whether ``value`` is a real number (Python or numpy), not a bool."""
    return isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(
        value, (bool, np.bool_)
    )


def check_int(name: str, param: str, value: Any, low: int, high: int | None = None) -> None:
    """Raise InvalidParameterError unless ``value`` is an int in [low, high]."""
    if not is_int(value):
        raise InvalidParameterError(
            f"{name}: {param} must be an integer, got {value!r} ({type(value).__name__})"
        )
    if value < low or (high is not None and value > high):
        bound = f">= {low}" if high is None else f"in {low}..{high}"
        raise InvalidParameterError(f"{name}: {param} must be {bound}, got {value}")


def check_float(name: str, param: str, value: Any, low: float, *, strict: bool = False) -> None:
    """Raise InvalidParameterError unless ``value`` is a finite number >= low (> if strict)."""
    if not is_number(value):
        raise InvalidParameterError(
            f"{name}: {param} must be a number, got {value!r} ({type(value).__name__})"
        )
    if not math.isfinite(float(value)) or value < low or (strict and value == low):
        op = ">" if strict else ">="
        raise InvalidParameterError(f"{name}: {param} must be finite and {op} {low}, got {value}")


def check_bool(name: str, param: str, value: Any) -> None:
    """Raise InvalidParameterError unless ``value`` is a bool."""
    if not isinstance(value, (bool, np.bool_)):
        raise InvalidParameterError(
            f"{name}: {param} must be True or False, got {value!r} ({type(value).__name__})"
        )

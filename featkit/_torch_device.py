"""Resolve a user's device string ("auto", "cpu", "cuda", "cuda:N") for torch code paths."""

from __future__ import annotations

from typing import Any

from featkit.exceptions import InvalidParameterError

__all__ = ["resolve_torch_device"]


def resolve_torch_device(device: Any, owner: str) -> str:
    """A torch device string for ``device``, or an error that names ``owner``.

    ``auto`` is the first GPU when torch sees one, else the CPU; a GPU that is not there is
    an error, not a silent fall-back to the CPU.
    """
    import torch

    if not isinstance(device, str):
        raise InvalidParameterError(
            f"{owner}: device must be 'auto', 'cpu', 'cuda' or 'cuda:N', got {device!r}"
        )
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cpu":
        return "cpu"
    if device == "cuda" or device.startswith("cuda:"):
        index = device[5:]
        if index and not index.isdigit():
            raise InvalidParameterError(f"{owner}: bad CUDA device {device!r}")
        if not torch.cuda.is_available():
            raise InvalidParameterError(
                f"{owner}: device={device!r} but CUDA is not available "
                "(no GPU, or a CPU-only torch build); use device='cpu' or 'auto'"
            )
        if index and int(index) >= torch.cuda.device_count():
            raise InvalidParameterError(
                f"{owner}: device={device!r} but only {torch.cuda.device_count()} "
                "CUDA device(s) are visible"
            )
        return device
    raise InvalidParameterError(
        f"{owner}: device must be 'auto', 'cpu', 'cuda' or 'cuda:N', got {device!r}"
    )

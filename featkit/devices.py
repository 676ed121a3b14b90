"""One resolver for the device strings users give torch code paths: "auto", "cpu", "cuda",
"cuda:N" (and "mps" where the caller supports it), used by the cnn extractor, the linear
probe and the torch backend of the aligners."""

from __future__ import annotations

from typing import Any

from featkit.exceptions import InvalidParameterError

__all__ = ["resolve_torch_device"]


def resolve_torch_device(device: Any, owner: str, *, allow_mps: bool = False) -> str:
    """A torch device string for ``device``, or an error that names ``owner``.

    ``auto`` is the first GPU when torch sees one, else the CPU; a GPU that is not there is
    an error, not a silent fall-back to the CPU.
    """
    import torch

    names = "'auto', 'cpu', 'cuda', 'cuda:N'" + (" or 'mps'" if allow_mps else "")
    if not isinstance(device, str):
        raise InvalidParameterError(f"{owner}: device must be {names}, got {device!r}")
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cpu":
        return "cpu"
    if device == "mps" and allow_mps:
        if not torch.backends.mps.is_available():
            raise InvalidParameterError(f"{owner}: device='mps' but MPS is not available")
        return device
    if device == "cuda" or device.startswith("cuda:"):
        index = device[5:]
        if index and not index.isdigit():
            raise InvalidParameterError(f"{owner}: bad CUDA device {device!r}")
        if not torch.cuda.is_available():
            built = "with" if torch.version.cuda else "without"
            raise InvalidParameterError(
                f"{owner}: device={device!r} but CUDA is not available: no CUDA GPU is "
                f"available (torch {torch.__version__} is built {built} CUDA); use "
                "device='cpu' or 'auto'"
            )
        if index and int(index) >= torch.cuda.device_count():
            raise InvalidParameterError(
                f"{owner}: device={device!r} but only {torch.cuda.device_count()} "
                "CUDA device(s) are visible"
            )
        return device
    raise InvalidParameterError(f"{owner}: device must be {names}, got {device!r}")

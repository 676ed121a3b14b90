"""Checkpoint files of a network: loading a state dict (torch or safetensors, never a
pickle) into it, and the file's identity (path stamp, content digest) for caches."""

from __future__ import annotations

import hashlib
import os
import threading
from pathlib import Path
from typing import Any

from featkit.exceptions import FeatkitError, WeightsNotFoundError
from featkit.extractors.packaged_weights import (
    convert_lukemelas_state_dict,
    is_lukemelas_state_dict,
)

__all__ = ["checkpoint_digest", "checkpoint_stamp", "load_checkpoint", "load_safetensors"]


def checkpoint_stamp(checkpoint: str | os.PathLike | None) -> tuple[Any, ...] | None:
    """(resolved path, size, modification time) of a checkpoint file; None for no file.

    Size and time are None when the file cannot be read.
    """
    if checkpoint is None:
        return None
    path = Path(checkpoint).expanduser().resolve()
    try:
        stat = path.stat()
    except OSError:
        return (str(path), None, None)
    return (str(path), stat.st_size, stat.st_mtime_ns)


_digests: dict[tuple[Any, ...], str] = {}
_digests_lock = threading.Lock()


def checkpoint_digest(checkpoint: str | os.PathLike | None) -> str | None:
    """``"sha256:<hex>"`` of a checkpoint file's bytes; None for no file or one unreadable.

    The content, not the path: a copy elsewhere or on another machine has the same digest,
    a file rewritten in place has another one, whatever its size and modification time.
    Hashed once per process and file version (path, size, modification time): 30 ms for
    the 19 MB of EfficientNet-Lite0's checkpoint.
    """
    stamp = checkpoint_stamp(checkpoint)
    if stamp is None or stamp[1] is None:
        return None
    with _digests_lock:
        if stamp in _digests:
            return _digests[stamp]
    h = hashlib.sha256()
    try:
        with open(stamp[0], "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                h.update(block)
    except OSError:
        return None
    digest = f"sha256:{h.hexdigest()}"
    with _digests_lock:
        _digests[stamp] = digest
    return digest


def load_checkpoint(net: Any, path: str) -> None:
    """Load a state dict file into ``net`` strictly, with a clear error when it does not fit."""
    import torch

    if not Path(path).is_file():
        raise WeightsNotFoundError(f"checkpoint {path!r} does not exist")
    if Path(path).suffix == ".safetensors":
        state = load_safetensors(path)
    else:
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as exc:
            raise FeatkitError(
                f"cannot load checkpoint {path!r} as a state dict ({type(exc).__name__}: "
                f"{exc}); featkit loads with weights_only=True: save it with "
                "torch.save(model.state_dict()), or as .safetensors"
            ) from exc
    for key in ("state_dict", "model", "model_state_dict"):
        if isinstance(state, dict) and isinstance(state.get(key), dict):
            state = state[key]
    if not isinstance(state, dict):
        raise FeatkitError(f"checkpoint {path!r} holds a {type(state).__name__}, not a state dict")
    state = {k.removeprefix("module."): v for k, v in state.items()}
    if is_lukemelas_state_dict(state):
        state = convert_lukemelas_state_dict(state, net)
    try:
        result = net.load_state_dict(state, strict=False)
    except RuntimeError as exc:  # shapes that differ: torch lists them all
        first = str(exc).split("\n\t")[1:3]
        raise FeatkitError(
            f"checkpoint {path!r} does not fit {type(net).__name__}: {'; '.join(first)}"
        ) from None
    if result.missing_keys or result.unexpected_keys:
        raise FeatkitError(
            f"checkpoint {path!r} does not fit {type(net).__name__}: "
            f"{len(result.missing_keys)} missing keys (first: {result.missing_keys[:3]}), "
            f"{len(result.unexpected_keys)} unexpected (first: {result.unexpected_keys[:3]})"
        )


def load_safetensors(path: str) -> dict[str, Any]:
    """The tensors of a .safetensors file (no pickle: the format holds tensors only)."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    try:
        return load_file(path, device="cpu")
    except (SafetensorError, OSError, ValueError) as exc:
        raise FeatkitError(
            f"cannot load checkpoint {path!r} as safetensors ({type(exc).__name__}: {exc})"
        ) from exc

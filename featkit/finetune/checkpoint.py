"""What a fine-tuning run writes: its resumable state after every epoch, and the fine-tuned
backbone as safetensors with a JSON record.

**Resumable state** (``<checkpoint_dir>/last.pt``): the weights (backbone and head), the
optimizer's and the schedule's state, the epoch reached, the history, the best weights so
far and the early-stopping count, with a fingerprint of the parameters and the data. It
is written to a temporary file then renamed, after each epoch, so a run killed at any
moment leaves the previous epoch's state whole. torch's format, read back with
``weights_only=True`` (tensors and plain containers only: no code is unpickled).

**Export** (:func:`export_backbone`): the backbone's state dict as ``.safetensors`` (no
pickle at all), with the record in the file's metadata and beside it as ``.json``. The
state dict is the network's own (with its untrained ImageNet classifier), so it loads
strictly into the architecture it came from: ``create_extractor("cnn", model=...,
checkpoint=...)`` reads it back. The new head goes to its own file,
``<name>.head.safetensors`` (:func:`export_head`), so that ``FineTuner.load`` can
predict again without the backbone file holding keys its architecture lacks.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

import torch

from featkit.exceptions import FeatkitError

__all__ = [
    "RECORD_FORMAT",
    "STATE_FILE",
    "export_backbone",
    "export_head",
    "finetuned_extractor",
    "head_path",
    "load_head",
    "load_state",
    "read_record",
    "save_state",
]

STATE_FILE = "last.pt"
STATE_FORMAT = 1
RECORD_FORMAT = "featkit.finetune/1"
_METADATA_KEY = "featkit_finetune"


def save_state(directory: str | os.PathLike, state: dict[str, Any]) -> Path:
    """Write ``state`` to ``directory/last.pt`` atomically (temporary file, then rename)."""
    folder = Path(directory)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / STATE_FILE
    fd, tmp = tempfile.mkstemp(prefix=".last.", suffix=".tmp", dir=folder)
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save({"format": STATE_FORMAT, **state}, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def load_state(directory: str | os.PathLike) -> dict[str, Any] | None:
    """The state saved in ``directory``, or None when there is none."""
    path = Path(directory) / STATE_FILE
    if not path.is_file():
        return None
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise FeatkitError(
            f"cannot read the fine-tuning state {str(path)!r} ({type(exc).__name__}: {exc}); "
            "delete it to start over"
        ) from exc
    if not isinstance(state, dict) or state.get("format") != STATE_FORMAT:
        raise FeatkitError(
            f"{str(path)!r} is not a featkit fine-tuning state of format {STATE_FORMAT}; "
            "delete it to start over"
        )
    return state


def export_backbone(
    net: torch.nn.Module, path: str | os.PathLike, record: dict[str, Any]
) -> tuple[Path, Path]:
    """Write ``net``'s state dict to ``path`` (.safetensors) and ``record`` to the .json
    beside it; the record also goes into the safetensors metadata. Returns both paths."""
    from safetensors.torch import save_file

    path = Path(path)
    if path.suffix != ".safetensors":
        path = path.with_name(path.name + ".safetensors")
    path.parent.mkdir(parents=True, exist_ok=True)
    # Contiguous copies: channels-last weights are not, and safetensors stores plain
    # row-major tensors (it also refuses tensors that share memory).
    tensors = {k: v.detach().cpu().contiguous().clone() for k, v in net.state_dict().items()}
    record = {"format": RECORD_FORMAT, **record, "checkpoint": path.name}
    text = json.dumps(record, indent=2, sort_keys=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        save_file(tensors, tmp, metadata={_METADATA_KEY: text})
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    sidecar = path.with_suffix(".json")
    sidecar.write_text(text + "\n", encoding="utf-8")
    return path, sidecar


def head_path(path: str | os.PathLike) -> Path:
    """Where the head of the backbone exported to ``path`` is: ``<name>.head.safetensors``."""
    path = Path(path)
    return path.with_name(path.name.removesuffix(".safetensors") + ".head.safetensors")


def export_head(head: torch.nn.Linear, path: str | os.PathLike) -> Path:
    """Write the linear head's ``weight`` and ``bias`` beside the backbone at ``path``."""
    from safetensors.torch import save_file

    target = head_path(path)
    tensors = {k: v.detach().cpu().contiguous().clone() for k, v in head.state_dict().items()}
    save_file(tensors, str(target))
    return target


def load_head(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """The head saved beside the backbone at ``path`` (an error naming the file if it is
    missing)."""
    from safetensors.torch import load_file

    target = head_path(path)
    if not target.is_file():
        raise FeatkitError(
            f"no head beside {str(path)!r} (expected {target.name}): the backbone loads as "
            "a cnn extractor (finetuned_extractor), but predicting needs its head"
        )
    return load_file(str(target))


def read_record(path: str | os.PathLike) -> dict[str, Any]:
    """The record of an exported backbone: from its .json, else from the safetensors
    metadata (the file alone is enough)."""
    path = Path(path)
    if path.suffix == ".json" and path.is_file():
        return json.loads(path.read_text(encoding="utf-8"))
    sidecar = path.with_suffix(".json")
    if sidecar.is_file():
        return json.loads(sidecar.read_text(encoding="utf-8"))
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as f:
        metadata = f.metadata() or {}
    if _METADATA_KEY not in metadata:
        raise FeatkitError(f"{str(path)!r} holds no featkit fine-tuning record")
    return json.loads(metadata[_METADATA_KEY])


def finetuned_extractor(path: str | os.PathLike, **overrides: Any) -> Any:
    """The ``cnn`` extractor of an exported backbone: ``create_extractor("cnn", model=...,
    checkpoint=path, image_size=...)`` with the model and input size of its record;
    ``overrides`` set other parameters (``precision``, ``layer``, ``device`` ...)."""
    from featkit.registry import create_extractor

    path = Path(path)
    if path.suffix == ".json":
        path = path.with_suffix(".safetensors")
    record = read_record(path)
    params = {k: v for k, v in record["extractor"].items() if k != "name"}
    return create_extractor("cnn", **{**params, "checkpoint": str(path), **overrides})

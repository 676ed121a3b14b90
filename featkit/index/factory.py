"""FAISS indexes from factory strings, the devices they run on and their search parameters.

The faiss calls under :class:`~featkit.index.FeatureIndex`: an empty index from a factory
string and a metric, moving it to a GPU and back (:func:`resolve_faiss_device` also serves
:class:`~featkit.classify.knn.FaissKNNClassifier`), setting and reading its search parameters
(``nprobe``, ``efSearch``), the vectors it takes, and faiss's error messages made readable.
faiss itself is imported through :func:`featkit._faiss.import_faiss`, which picks its BLAS
kernel.
"""

from __future__ import annotations

import logging
import re
from typing import Any

import numpy as np

from featkit._faiss import import_faiss
from featkit.exceptions import InvalidParameterError
from featkit.validation import check_int

__all__ = [
    "METRICS",
    "SearchKnob",
    "as_index_vectors",
    "faiss_message",
    "is_flat",
    "new_index",
    "read_search_parameter",
    "resolve_faiss_device",
    "set_search_parameter",
    "to_cpu",
    "to_device",
]

logger = logging.getLogger(__name__)

METRICS = ("cosine", "l2")

_GPU: dict[int, Any] = {}
#: featkit's names of the FAISS search parameters, for error messages.
_PARAMETER_NAMES = {"nprobe": "nprobe", "efSearch": "ef_search"}


def resolve_faiss_device(device: str) -> str:
    """``"cpu"`` or ``"cuda:N"`` for ``device`` in auto / cpu / cuda / cuda:N.

    ``auto`` takes GPU 0 when faiss is a GPU build and sees a GPU; ``cuda`` without either is
    an error that says so. It asks faiss, not torch (:mod:`featkit.devices`): pip's faiss-cpu
    sees no GPU beside a CUDA torch.
    """
    if not isinstance(device, str) or not re.fullmatch(r"auto|cpu|cuda(:\d+)?", device):
        raise InvalidParameterError(f"device must be 'auto', 'cpu' or 'cuda[:N]', got {device!r}")
    if device == "cpu":
        return "cpu"
    faiss = import_faiss()
    gpu_build = hasattr(faiss, "StandardGpuResources") and hasattr(faiss, "index_cpu_to_gpu")
    n_gpus = faiss.get_num_gpus() if gpu_build else 0
    if device == "auto":
        return "cuda:0" if n_gpus > 0 else "cpu"
    if not gpu_build:
        raise InvalidParameterError(
            f"device={device!r} needs a GPU build of faiss (conda's faiss-gpu, or a build with "
            "CUDA); the installed faiss is CPU-only: use device='cpu' or 'auto'"
        )
    gpu = int(device.partition(":")[2] or 0)
    if gpu >= n_gpus:
        raise InvalidParameterError(f"device={device!r} but faiss sees {n_gpus} GPU(s)")
    return f"cuda:{gpu}"


def new_index(dim: int, factory: str, metric: str) -> Any:
    """An empty CPU FAISS index from a factory string (inner product for cosine)."""
    faiss = import_faiss()
    if metric not in METRICS:
        raise InvalidParameterError(f"metric must be one of {METRICS}, got {metric!r}")
    if not isinstance(factory, str) or not factory.strip():
        raise InvalidParameterError(f"bad FAISS index string {factory!r}")
    kind = faiss.METRIC_INNER_PRODUCT if metric == "cosine" else faiss.METRIC_L2
    try:
        index = faiss.index_factory(int(dim), factory, kind)
    except RuntimeError as exc:
        raise InvalidParameterError(
            f"bad FAISS index string {factory!r}: {faiss_message(exc)}"
        ) from None
    _no_polysemous_training(faiss, index)
    return index


def _no_polysemous_training(faiss: Any, index: Any) -> None:
    """Skip the polysemous training of PQ codes that the factory turns on: it only serves
    the polysemous search mode, which featkit never enables, and took 27 s of the 28 s
    training of a "PQ16" index on 1,797 vectors (it does not shrink with the data)."""
    parts = [faiss.downcast_index(index)]
    try:
        parts.append(faiss.extract_index_ivf(index))
    except (RuntimeError, AttributeError):
        pass
    inner = getattr(parts[0], "index", None)  # a pre-transform (PCA, OPQ) wraps the index
    if inner is not None:
        parts.append(faiss.downcast_index(inner))
    for part in parts:
        if hasattr(part, "do_polysemous_training"):
            part.do_polysemous_training = False


def to_device(index: Any, device: str, *, strict: bool) -> tuple[Any, str]:
    """``index`` moved to ``device`` ("cpu" or "cuda:N"), and the device it ended on.

    Index types FAISS cannot put on a GPU (HNSW, ...) stay on the CPU unless ``strict``.
    """
    if device == "cpu":
        return index, "cpu"
    faiss = import_faiss()
    gpu_id = int(device.partition(":")[2])
    if gpu_id not in _GPU:  # one set of resources (streams, scratch memory) per GPU
        _GPU[gpu_id] = faiss.StandardGpuResources()
    try:
        gpu = faiss.index_cpu_to_gpu(_GPU[gpu_id], gpu_id, index)
    except RuntimeError as exc:
        if strict:
            raise InvalidParameterError(
                f"faiss cannot run this index on {device}: {faiss_message(exc)}"
            ) from None
        logger.debug("index stays on the CPU: %s", exc)
        return index, "cpu"
    return gpu, device


def to_cpu(index: Any) -> Any:
    """A CPU copy of a GPU index (the index itself when it is on the CPU)."""
    faiss = import_faiss()
    if hasattr(faiss, "index_gpu_to_cpu") and "Gpu" in type(index).__name__:
        return faiss.index_gpu_to_cpu(index)
    return index


def set_search_parameter(index: Any, name: str, value: int, *, device: str, factory: str) -> None:
    """Set the FAISS search parameter ``name`` ("nprobe" of IVF, "efSearch" of HNSW) of
    ``index`` on ``device``; an index without it is an error naming its ``factory`` string."""
    faiss = import_faiss()
    space = faiss.GpuParameterSpace() if device != "cpu" else faiss.ParameterSpace()
    try:
        space.set_index_parameter(index, name, value)
    except RuntimeError:
        kind = "IVF" if name == "nprobe" else "HNSW"
        raise InvalidParameterError(
            f"{_PARAMETER_NAMES[name]} applies to {kind} indexes, not {factory!r}"
        ) from None


def read_search_parameter(index: Any, name: str, *, device: str) -> int | None:
    """The value of the FAISS search parameter ``name`` of ``index``; None when it has none,
    or on a GPU."""
    if device != "cpu":
        return None  # not copying a GPU index back to read it: faiss's default applies
    faiss = import_faiss()
    if name == "nprobe":
        try:
            return int(faiss.extract_index_ivf(index).nprobe)
        except (RuntimeError, AttributeError):
            return None
    base = faiss.downcast_index(index)
    hnsw = getattr(base, "hnsw", None)
    return None if hnsw is None else int(hnsw.efSearch)


def as_index_vectors(X: Any, metric: str, dim: int | None = None) -> np.ndarray:
    """Float32 C-contiguous rows, L2-normalised for cosine; checks shape and finiteness."""
    X = np.ascontiguousarray(np.asarray(X, dtype=np.float32))
    if X.ndim != 2:
        raise InvalidParameterError(f"expected a 2-D array of features, got shape {X.shape}")
    if dim is not None and X.shape[1] != dim:
        raise InvalidParameterError(f"features have {X.shape[1]} dimensions, the index {dim}")
    if not np.isfinite(X).all():
        raise InvalidParameterError("features contain NaN or inf")
    if metric == "cosine":
        norms = np.linalg.norm(X, axis=1, keepdims=True)
        X = X / np.maximum(norms, 1e-12)
    return X


def faiss_message(exc: BaseException) -> str:
    """What went wrong, from a faiss error ("Error in <C++ signature> at file:line: Error:
    'check' failed: message")."""
    text = " ".join(str(exc).split())
    for marker in ("failed: ", "Error: "):
        if marker in text:
            return text.rsplit(marker, 1)[1]
    return text or type(exc).__name__


def is_flat(cpu_index: Any) -> bool:
    """True when ``cpu_index`` is a Flat index: exhaustive, exact search."""
    faiss = import_faiss()
    return isinstance(faiss.downcast_index(cpu_index), faiss.IndexFlat)


class SearchKnob:
    """A FAISS search parameter as an attribute of a
    :class:`~featkit.index.FeatureIndex` (``nprobe``, ``ef_search``).

    Reading it gives the value set on this index, else the one FAISS uses. Setting it
    checks the value (an int >= 1), sets it in FAISS and keeps it in ``_<name>``, which the
    index saves and applies again once trained or loaded (``_apply_knobs``). One descriptor
    instead of a property pair per parameter: the two differ only in their names.
    """

    def __init__(self, faiss_name: str, doc: str) -> None:
        self.faiss_name = faiss_name
        self.__doc__ = doc

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name
        self.attr = f"_{name}"

    def __get__(self, index: Any, owner: type | None = None) -> int | SearchKnob | None:
        if index is None:  # looked up on the class: the descriptor, with its docstring
            return self
        value = getattr(index, self.attr)
        if value is not None:
            return value
        return read_search_parameter(index._index, self.faiss_name, device=index.device)

    def __set__(self, index: Any, value: int) -> None:
        check_int("FeatureIndex", self.name, value, low=1)
        index._set_knob(self.faiss_name, int(value))
        setattr(index, self.attr, int(value))

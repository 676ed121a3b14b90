"""``precision="auto"`` on a GPU: the fastest precision whose rows stay close to float32's.

Which precision is fastest depends on the GPU and the network: on an H100, EfficientNet-
Lite0 ran 14.7k images/s in fp16, 12.0k in fp32 (channels last) and 10.1k in bf16, so a
rule such as "bf16 from Ampere on" picks the slowest. So featkit measures, once per GPU
kind, network, weights, input and batch size and torch version: a few forward passes of
real photos (scikit-image's samples) in each precision the GPU supports, timed after a
warm-up, and the cosine of each image's row to its float32 row. The choice is float32
unless a reduced precision keeps every row within cosine :data:`MIN_COSINE` of float32's
and is at least :data:`MIN_SPEEDUP` times faster; then the fastest such precision.

The choice is kept in ``$XDG_CACHE_HOME/featkit/gpu-precision.json`` (``~/.cache`` by
default) with its measurements, and reused: timings vary from run to run, and a choice
made again on noise would change the features of the next run. Delete the file to measure
again; set ``precision`` to fix it.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

__all__ = [
    "MIN_COSINE",
    "MIN_SPEEDUP",
    "PrecisionTrial",
    "calibration_photos",
    "choose_precision",
    "decision_file",
    "measure_precisions",
    "remembered_precision",
]

logger = logging.getLogger(__name__)

#: A reduced precision's rows must keep at least this cosine to their float32 rows.
MIN_COSINE = 0.999
#: ... and it must be at least this much faster than float32 to be chosen.
MIN_SPEEDUP = 1.05
#: Timed passes per precision, after :data:`WARMUP_PASSES` untimed ones.
TIMED_PASSES = 5
WARMUP_PASSES = 2


@dataclass(frozen=True)
class PrecisionTrial:
    """One precision's measurement: images/s at the extractor's batch, and the smallest
    cosine of a row to its float32 row."""

    precision: str
    images_per_s: float
    min_cosine: float


def choose_precision(
    trials: Sequence[PrecisionTrial],
    min_cosine: float = MIN_COSINE,
    min_speedup: float = MIN_SPEEDUP,
) -> str:
    """fp32, unless a trial keeps its rows within ``min_cosine`` of fp32's and runs at
    least ``min_speedup`` times fp32's images/s: then the fastest of those."""
    fp32 = next((t for t in trials if t.precision == "fp32"), None)
    if fp32 is None:
        raise ValueError("choose_precision needs the fp32 trial, the reference")
    good = [
        t
        for t in trials
        if t.precision != "fp32"
        and t.min_cosine >= min_cosine
        and t.images_per_s >= min_speedup * fp32.images_per_s
    ]
    return max(good, key=lambda t: t.images_per_s).precision if good else "fp32"


def measure_precisions(
    run: Callable[[str, np.ndarray], np.ndarray],
    images: np.ndarray,
    precisions: Sequence[str],
    synchronize: Callable[[], None] = lambda: None,
) -> list[PrecisionTrial]:
    """Time ``run(precision, images)`` (the rows of one forward pass) in each precision,
    after a warm-up, and compare its rows with fp32's (which is always measured)."""
    rows: dict[str, np.ndarray] = {}
    seconds: dict[str, float] = {}
    for precision in ["fp32", *(p for p in precisions if p != "fp32")]:
        for _ in range(WARMUP_PASSES):  # kernels chosen, memory allocated, clocks up
            out = run(precision, images)
        synchronize()
        started = time.perf_counter()
        for _ in range(TIMED_PASSES):
            out = run(precision, images)
        synchronize()
        seconds[precision] = (time.perf_counter() - started) / TIMED_PASSES
        rows[precision] = np.asarray(out, dtype=np.float64)
    reference = rows["fp32"]
    trials = []
    for precision, r in rows.items():
        norms = np.linalg.norm(r, axis=1) * np.linalg.norm(reference, axis=1)
        cosine = (r * reference).sum(axis=1) / np.maximum(norms, 1e-30)
        trials.append(
            PrecisionTrial(precision, len(images) / seconds[precision], float(cosine.min()))
        )
    return trials


def calibration_photos() -> list[np.ndarray]:
    """Real photos to time and compare the precisions on (scikit-image's samples, shipped
    with it): noise or black images would hide how reduced precision treats real ones."""
    import skimage.data

    return [
        skimage.data.astronaut(),
        skimage.data.chelsea(),
        skimage.data.coffee(),
        skimage.data.rocket(),
        skimage.data.camera(),
    ]


def decision_file() -> Path:
    """Where the choices are kept: ``$XDG_CACHE_HOME/featkit/gpu-precision.json``."""
    root = os.environ.get("XDG_CACHE_HOME") or "~/.cache"
    return Path(root).expanduser() / "featkit" / "gpu-precision.json"


def remembered_precision(key: str, measure: Callable[[], list[PrecisionTrial]]) -> str:
    """The precision chosen for ``key`` before (this process or an earlier one), or chosen
    now from ``measure()`` and kept with its measurements."""
    if key in _CHOSEN:
        return _CHOSEN[key]
    path = decision_file()
    try:
        kept = json.loads(path.read_text())
    except (OSError, ValueError):  # no file yet, or a broken one: measure again
        kept = {}
    entry = kept.get(key) if isinstance(kept, dict) else None
    if isinstance(entry, dict) and entry.get("precision") in ("fp32", "fp16", "bf16"):
        _CHOSEN[key] = entry["precision"]
        return _CHOSEN[key]
    logger.info("precision='auto': timing fp32, fp16 and bf16 once for %s", key)
    trials = measure()
    chosen = choose_precision(trials)
    _CHOSEN[key] = chosen
    record: dict[str, Any] = {"precision": chosen, "trials": [asdict(t) for t in trials]}
    logger.info("precision='auto' chose %s: %s", chosen, record["trials"])
    kept = kept if isinstance(kept, dict) else {}
    kept[key] = record
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(json.dumps(kept, indent=2, sort_keys=True) + "\n")
        tmp.replace(path)  # atomic: another process reads the old file or the new one
    except OSError as error:  # a read-only home: the choice holds for this process
        logger.warning("could not keep the precision choice in %s: %s", path, error)
    return chosen


#: The choices of this process, by key.
_CHOSEN: dict[str, str] = {}

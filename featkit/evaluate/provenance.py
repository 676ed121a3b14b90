"""The provenance record every evaluation result carries: what was run, on which data, with
which protocol, extractors and classifiers, by which versions on which machine."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from featkit._version import __version__, dependency_versions
from featkit.classify.presets import CLASSIFIER_DESCRIPTIONS
from featkit.evaluate.protocols import Protocol
from featkit.hardware import describe_machine

__all__ = ["job_provenance"]


def job_provenance(
    job: str,
    *,
    dataset: dict[str, Any],
    protocol: Protocol,
    n_splits: int,
    extractors: Mapping[str, Any],
    estimators: Mapping[str, Any],
    seed: int,
    unlabelled_left_out: int | None = None,
    **extra: Any,
) -> dict[str, Any]:
    """The provenance of a ``job`` ("compare", "adapt", "evaluate"): ``dataset`` is the data
    set's description, ``extractors`` their configs, ``estimators`` the classifiers by name;
    ``extra`` adds job-specific entries (aligners, label counts...)."""
    protocol_record = {
        "name": protocol.name,
        "description": protocol.describe(),
        "params": protocol.params(),
        "n_splits": n_splits,
    }
    if unlabelled_left_out is not None:
        protocol_record["unlabelled_left_out"] = unlabelled_left_out
    return {
        "job": job,
        "featkit": __version__,
        "versions": dependency_versions(),
        "machine": describe_machine(),
        "dataset": dataset,
        "protocol": protocol_record,
        "extractors": dict(extractors),
        "classifiers": {c: CLASSIFIER_DESCRIPTIONS.get(c, repr(e)) for c, e in estimators.items()},
        "seed": seed,
        **extra,
    }

"""SKADA's ``sample_domain`` convention: which rows are source and which are target.

``sample_domain`` is one integer per row: positive ids are source domains, negative ids are
target domains, and 0 is not allowed. Target labels may be masked with ``-1``. When no
``sample_domain`` is given at fit, it is inferred from the labels as SKADA does: rows
labelled ``-1`` are the target (id ``-2``), the others the source (id ``1``). Aligners in
featkit learn one source and one target distribution: several source ids (or several
target ids) are pooled.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.utils.validation import check_array

from featkit.exceptions import InvalidParameterError

__all__ = [
    "MASKED",
    "SOURCE_ID",
    "TARGET_ID",
    "check_domains",
    "domain_masks",
    "stack_domains",
]

#: The label of a row whose label is hidden (an unlabelled target row).
MASKED = -1
#: The ids :func:`stack_domains` and label inference give to the source and the target.
SOURCE_ID = 1
TARGET_ID = -2


def stack_domains(
    X_source: Any, X_target: Any, y_source: Any = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(X, y, sample_domain)`` from a source and a target array (target labels masked).

    The inverse of :func:`domain_masks`: source rows first, then target rows. Without
    ``y_source`` every label is ``-1``.
    """
    Xs = check_array(X_source, dtype=(np.float64, np.float32), input_name="X_source")
    Xt = check_array(X_target, dtype=(np.float64, np.float32), input_name="X_target")
    if Xs.shape[1] != Xt.shape[1]:
        raise InvalidParameterError(
            f"source and target have different feature counts: {Xs.shape[1]} and {Xt.shape[1]}"
        )
    if y_source is None:
        ys = np.full(len(Xs), MASKED, dtype=np.int64)
    else:
        ys = np.asarray(y_source)
        if ys.dtype.kind in "biu":  # uint8 labels (MATLAB files) cannot hold the mask -1
            ys = ys.astype(np.int64)
        if ys.shape != (len(Xs),):
            raise InvalidParameterError(f"y_source has shape {ys.shape} for {len(Xs)} source rows")
    dtype = np.result_type(Xs.dtype, Xt.dtype)
    X = np.concatenate([Xs.astype(dtype, copy=False), Xt.astype(dtype, copy=False)])
    y = np.concatenate([ys, np.full(len(Xt), MASKED, dtype=ys.dtype)])
    sample_domain = np.concatenate(
        [np.full(len(Xs), SOURCE_ID, dtype=np.int64), np.full(len(Xt), TARGET_ID, dtype=np.int64)]
    )
    return X, y, sample_domain


def check_domains(
    n_rows: int,
    y: Any = None,
    sample_domain: Any = None,
    *,
    owner: str = "aligner",
    fitting: bool = True,
) -> np.ndarray:
    """A validated ``sample_domain`` for ``n_rows`` rows, with a clear error when it is wrong.

    At fit (``fitting=True``), a missing ``sample_domain`` is inferred from ``y`` (``-1`` is
    target) and both a source and a target row are required. At transform, a missing
    ``sample_domain`` means every row is target data: what one predicts on.
    """
    if sample_domain is None:
        if not fitting:
            return np.full(n_rows, TARGET_ID, dtype=np.int64)
        if y is None:
            raise InvalidParameterError(
                f"{owner}: fit needs sample_domain (positive ids for source rows, negative "
                "for target rows), or labels y with the target rows masked as -1"
            )
        labels = np.asarray(y)
        if labels.shape != (n_rows,):
            raise InvalidParameterError(f"{owner}: y has shape {labels.shape} for {n_rows} rows")
        sample_domain = np.where(labels == MASKED, TARGET_ID, SOURCE_ID)
        if not (sample_domain < 0).any():
            raise InvalidParameterError(
                f"{owner}: no target rows: no label is -1 and no sample_domain was given; "
                "pass sample_domain, or mask the target labels as -1"
            )
    domains = np.asarray(sample_domain)
    if domains.ndim != 1 or len(domains) != n_rows:
        raise InvalidParameterError(
            f"{owner}: sample_domain has shape {domains.shape} for {n_rows} rows of X"
        )
    if domains.dtype.kind == "f" and np.all(np.isfinite(domains)) and np.all(domains % 1 == 0):
        domains = domains.astype(np.int64)
    if domains.dtype.kind not in "iu":
        raise InvalidParameterError(
            f"{owner}: sample_domain must hold integer domain ids, got dtype {domains.dtype}"
        )
    domains = domains.astype(np.int64, copy=False)
    if (domains == 0).any():
        raise InvalidParameterError(
            f"{owner}: sample_domain has 0 at row {int(np.argmax(domains == 0))}: domain ids are "
            "positive for sources and negative for targets, never 0"
        )
    if fitting:
        if not (domains > 0).any():
            raise InvalidParameterError(
                f"{owner}: no source rows: every sample_domain id is negative (target)"
            )
        if not (domains < 0).any():
            raise InvalidParameterError(
                f"{owner}: no target rows: every sample_domain id is positive (source); "
                "an aligner learns from both domains"
            )
    return domains


def domain_masks(sample_domain: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Boolean masks of the source rows and of the target rows."""
    source = np.asarray(sample_domain) > 0
    return source, ~source

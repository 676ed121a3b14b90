"""Aligner: a scikit-learn transformer that learns from source and target rows.

Subclasses implement ``_fit(Xs, Xt, ys)``, ``_transform_source(X)`` and
``_transform_target(X)``; the base class handles SKADA's ``sample_domain`` convention
(:mod:`featkit.align.domains`), validation, row order and the two-array helpers.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.utils.validation import check_array, check_is_fitted

from featkit.align.domains import MASKED, check_domains, domain_masks
from featkit.exceptions import InvalidParameterError

__all__ = ["Aligner", "align_domains"]


class Aligner(TransformerMixin, BaseEstimator):
    """Base class of featkit's domain aligners (CORAL, Subspace Alignment, TCA, ...).

    ``fit(X, y=None, sample_domain=...)`` learns from the source rows (positive domain
    ids) and the target rows (negative ids); ``transform(X, sample_domain=...)`` maps each
    row by its domain, and rows with no ``sample_domain`` are taken as target rows (what
    a classifier trained on the aligned source predicts on). ``fit_domains(Xs, Xt, ys)``,
    ``transform_source`` and ``transform_target`` do the same for two plain arrays.
    """

    #: Whether ``fit`` needs the source labels (LDA, JDA).
    requires_labels = False

    def fit(self, X: Any, y: Any = None, *, sample_domain: Any = None) -> Aligner:
        """Learn the alignment from source and target rows of ``X``.

        Parameters
        ----------
        X : array of shape (n_samples, n_features)
            Source and target rows.
        y : array of shape (n_samples,), optional
            Labels; target rows may be masked as -1. Without ``sample_domain``, the rows
            labelled -1 are taken as the target.
        sample_domain : array of shape (n_samples,), optional
            Positive ids for source rows, negative ids for target rows.
        """
        X = self._check_X(X, reset=True)
        domains = check_domains(len(X), y, sample_domain, owner=type(self).__name__)
        return self._fit_rows(X, y, domains)

    def _fit_rows(self, X: np.ndarray, y: Any, domains: np.ndarray) -> Aligner:
        """Fit on validated rows and domains: split them into source and target."""
        name = type(self).__name__
        source, target = domain_masks(domains)
        ys = yt = None
        if y is not None:
            labels = np.asarray(y)
            if labels.shape != (len(X),):
                raise InvalidParameterError(f"{name}: y has shape {labels.shape} for {len(X)} rows")
            ys, yt = labels[source], labels[target]
        return self._fit_checked(X[source], X[target], ys, yt)

    def fit_domains(self, X_source: Any, X_target: Any, y_source: Any = None) -> Aligner:
        """Fit on a source array and a target array (the plain two-array form)."""
        name = type(self).__name__
        Xs = self._check_X(X_source, reset=True, input_name="X_source")
        Xt = self._check_X(X_target, reset=False, input_name="X_target")
        ys = None
        if y_source is not None:
            ys = np.asarray(y_source)
            if ys.shape != (len(Xs),):
                raise InvalidParameterError(
                    f"{name}: y_source has shape {ys.shape} for {len(Xs)} source rows"
                )
        return self._fit_checked(Xs, Xt, ys)

    def _fit_checked(
        self, Xs: np.ndarray, Xt: np.ndarray, ys: np.ndarray | None, yt: np.ndarray | None = None
    ) -> Aligner:
        name = type(self).__name__
        for role, X in (("source", Xs), ("target", Xt)):
            if len(X) == 0:
                raise InvalidParameterError(f"{name}: no {role} rows")
        if self.requires_labels and (ys is None or (ys == MASKED).all()):
            raise InvalidParameterError(f"{name}: fit needs the labels y of the source rows")
        if self.requires_labels and (ys == MASKED).any():
            raise InvalidParameterError(
                f"{name}: {int((ys == MASKED).sum())} source rows have the masked label -1"
            )
        self._fit(Xs, Xt, ys, yt)
        return self

    def transform(self, X: Any, *, sample_domain: Any = None) -> np.ndarray:
        """Map source rows (positive ids) and target rows (negative ids, or no
        ``sample_domain``) into the aligned space, in the order of ``X``."""
        check_is_fitted(self)
        X = self._check_X(X, reset=False)
        domains = check_domains(
            len(X), None, sample_domain, owner=type(self).__name__, fitting=False
        )
        return self._transform_rows(X, domains)

    def _transform_rows(self, X: np.ndarray, domains: np.ndarray) -> np.ndarray:
        """Map validated rows by their validated domains, in the order of ``X``."""
        source, target = domain_masks(domains)
        if source.all():
            return self._transform_source(X)
        if target.all():
            return self._transform_target(X)
        Zs, Zt = self._transform_source(X[source]), self._transform_target(X[target])
        out = np.empty((len(X), Zs.shape[1]), dtype=np.result_type(Zs.dtype, Zt.dtype))
        out[source], out[target] = Zs, Zt
        return out

    def fit_transform(
        self, X: Any, y: Any = None, *, sample_domain: Any = None, **fit_params: Any
    ) -> np.ndarray:
        """Fit, then transform the same rows (sources as sources, even when their domain
        was inferred from the masked labels)."""
        X = self._check_X(X, reset=True)
        domains = check_domains(len(X), y, sample_domain, owner=type(self).__name__)
        return self._fit_rows(X, y, domains)._transform_rows(X, domains)

    def transform_source(self, X: Any) -> np.ndarray:
        """Map source-domain rows into the aligned space."""
        check_is_fitted(self)
        return self._transform_source(self._check_X(X, reset=False))

    def transform_target(self, X: Any) -> np.ndarray:
        """Map target-domain rows into the aligned space."""
        check_is_fitted(self)
        return self._transform_target(self._check_X(X, reset=False))

    def get_feature_names_out(self, input_features: Any = None) -> np.ndarray:
        """``aligned0``, ``aligned1``, ... (one per output column)."""
        check_is_fitted(self)
        prefix = type(self).__name__.lower()
        return np.asarray([f"{prefix}{i}" for i in range(self.n_features_out_)], dtype=object)

    def _check_X(self, X: Any, *, reset: bool, input_name: str = "X") -> np.ndarray:
        name = type(self).__name__
        X = check_array(X, dtype=(np.float64, np.float32), input_name=input_name, estimator=name)
        if reset:
            self.n_features_in_ = X.shape[1]
        elif X.shape[1] != self.n_features_in_:
            raise InvalidParameterError(
                f"{name}: {input_name} has {X.shape[1]} features, but the aligner was fitted "
                f"on {self.n_features_in_}"
            )
        return X

    def __sklearn_tags__(self) -> Any:
        tags = super().__sklearn_tags__()
        tags.target_tags.required = self.requires_labels
        return tags

    # Subclasses implement these three. ``yt`` are the target rows' labels when fit got
    # them (-1 where masked); only semi-supervised steps (LDA on the target) may use them.
    def _fit(
        self, Xs: np.ndarray, Xt: np.ndarray, ys: np.ndarray | None, yt: np.ndarray | None = None
    ) -> None:
        raise NotImplementedError

    def _transform_source(self, X: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def _transform_target(self, X: np.ndarray) -> np.ndarray:
        raise NotImplementedError


def align_domains(
    aligner: Aligner, X_source: Any, X_target: Any, y_source: Any = None
) -> tuple[np.ndarray, np.ndarray]:
    """Fit ``aligner`` on a source and a target array; return both, aligned.

    ``Zs, Zt = align_domains(CORAL(), Xs, Xt)``: train a classifier on ``Zs`` and
    ``y_source``, predict on ``Zt``.
    """
    aligner.fit_domains(X_source, X_target, y_source)
    return aligner.transform_source(X_source), aligner.transform_target(X_target)

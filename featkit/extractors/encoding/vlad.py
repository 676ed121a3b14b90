"""VLAD: the ``vlad`` encoder (residuals to the nearest word, intra-normalised)."""

from __future__ import annotations

from typing import Any

import numpy as np

from featkit.exceptions import InvalidParameterError
from featkit.extractors.encoding.base import PUBLIC_MODULE, CodebookEncoder, _check_power
from featkit.extractors.encoding.kernels import _l2_rows, _nearest, _power_l2, _word_sums
from featkit.registry import register_extractor
from featkit.validation import check_int

__all__ = ["VLADEncoder"]


@register_extractor("vlad")
class VLADEncoder(CodebookEncoder):
    """VLAD: residuals to the nearest codebook word summed per word (Jegou et al. 2010).

    Each word's block is L2-normalised (intra-normalisation, Arandjelovic & Zisserman 2013),
    then signed power normalisation ``sign(v) |v| ** power`` and L2. With a spatial pyramid,
    each cell is normalised on its own, a level of n cells is weighted by 1/sqrt(n), and the
    whole vector is L2-normalised. Output dimension: n_words x D per cell (D the descriptor
    dimension). Images without descriptors give zeros.

    Parameters
    ----------
    local : str or LocalExtractor, default="dsift"
        Local descriptor extractor: a registered name or an instance (its parameters are
        nested: ``local__step``).
    n_words : int, default=64
        Codebook size (k-means clusters).
    intra_norm : bool, default=True
        L2-normalise each word's residual sum before the power and global normalisation.
    power : float, default=0.5
        Exponent of the signed power normalisation (1 disables it).
    pyramid : tuple of int or (rows, cols) pairs, default=(1,)
        Spatial pyramid levels: grid sides, e.g. (1, 2) for 1x1 + 2x2 cells, or (rows, cols)
        grids: (1, 2, (3, 1)) adds three horizontal bands (Chatfield et al. 2011).
    n_iter : int, default=20
        k-means iterations.
    max_descriptors : int, default=100000
        Size of the seeded uniform subsample of training descriptors k-means runs on.
    seed : int, default=0
        Seed of the subsample and of k-means.
    """

    __module__ = PUBLIC_MODULE  # config["class"] and pickles as before the split

    name = "vlad"

    version = "1"

    def __init__(
        self,
        local: Any = "dsift",
        n_words: int = 64,
        intra_norm: bool = True,
        power: float = 0.5,
        pyramid: tuple[int, ...] = (1,),
        n_iter: int = 20,
        max_descriptors: int = 100_000,
        seed: int = 0,
    ) -> None:
        self.local = local
        self.n_words = n_words
        self.intra_norm = intra_norm
        self.power = power
        self.pyramid = pyramid
        self.n_iter = n_iter
        self.max_descriptors = max_descriptors
        self.seed = seed

    def validate_params(self) -> None:
        label = self._label
        check_int(label, "n_words", self.n_words, 1, 2**16)
        if not isinstance(self.intra_norm, (bool, np.bool_)):
            raise InvalidParameterError(
                f"{label}: intra_norm must be True or False, got {self.intra_norm!r}"
            )
        _check_power(label, self.power)
        super().validate_params()

    def _cell_dim(self) -> int | None:
        fitted = self.__dict__.get("codebook_")
        d = fitted.shape[1] if fitted is not None else self._descriptor_dim()
        return None if d is None else int(self.n_words) * d

    def _element_names(self) -> list[str]:
        d = self._cell_dim() // int(self.n_words)
        return [f"w{k}_d{j}" for k in range(int(self.n_words)) for j in range(d)]

    def _codes(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        nn = _nearest(self._index(), x, 1)[0][:, 0]
        return nn, x.astype(np.float64) - self.codebook_[nn].astype(np.float64)

    def _cell(self, codes: tuple[np.ndarray, np.ndarray], mask: np.ndarray) -> np.ndarray:
        nn, residuals = codes
        k = int(self.n_words)
        if not mask.any():
            return np.zeros(k * residuals.shape[1])
        v = _word_sums(nn[mask], residuals[mask], k)
        if self.intra_norm:
            v = _l2_rows(v)
        return _power_l2(v.ravel(), float(self.power), True)

    def _finish(self, blocks: list[np.ndarray]) -> np.ndarray:
        return self._finish_cellwise(blocks)

"""The registered combinations: ``sift-bovw``, ``dsift-bovw``, ``dsift-vlad``, ``dsift-fisher``."""

from __future__ import annotations

import inspect
import re
from typing import Any

from featkit.extractors.encoding.base import PUBLIC_MODULE
from featkit.extractors.encoding.bovw import BagOfVisualWords
from featkit.extractors.encoding.fisher import FisherVectorEncoder
from featkit.extractors.encoding.vlad import VLADEncoder
from featkit.registry import register_extractor

__all__ = ["DenseSiftBagOfWords", "DenseSiftFisher", "DenseSiftVLAD", "SiftBagOfWords"]


# -- registered combinations (subclasses: scikit-learn reads defaults from __init__) ------
@register_extractor("sift-bovw")
class SiftBagOfWords(BagOfVisualWords):
    __module__ = PUBLIC_MODULE  # config["class"] and pickles as before the split
    name = "sift-bovw"

    def __init__(
        self,
        local: Any = "sift",
        n_words: int = 1024,
        assignment: str = "soft",
        soft_sigma: float | None = None,
        soft_knn: int = 5,
        tfidf: bool = False,
        pyramid: tuple[int, ...] = (1,),
        norm: str | None = "hellinger",
        n_iter: int = 20,
        max_descriptors: int = 100_000,
        seed: int = 0,
    ) -> None:
        super().__init__(
            local=local,
            n_words=n_words,
            assignment=assignment,
            soft_sigma=soft_sigma,
            soft_knn=soft_knn,
            tfidf=tfidf,
            pyramid=pyramid,
            norm=norm,
            n_iter=n_iter,
            max_descriptors=max_descriptors,
            seed=seed,
        )


@register_extractor("dsift-bovw")
class DenseSiftBagOfWords(BagOfVisualWords):
    __module__ = PUBLIC_MODULE  # config["class"] and pickles as before the split
    name = "dsift-bovw"

    def __init__(
        self,
        local: Any = "dsift",
        n_words: int = 1024,
        assignment: str = "soft",
        soft_sigma: float | None = None,
        soft_knn: int = 5,
        tfidf: bool = False,
        pyramid: tuple[int, ...] = (1, 2),
        norm: str | None = "hellinger",
        n_iter: int = 20,
        max_descriptors: int = 100_000,
        seed: int = 0,
    ) -> None:
        super().__init__(
            local=local,
            n_words=n_words,
            assignment=assignment,
            soft_sigma=soft_sigma,
            soft_knn=soft_knn,
            tfidf=tfidf,
            pyramid=pyramid,
            norm=norm,
            n_iter=n_iter,
            max_descriptors=max_descriptors,
            seed=seed,
        )


@register_extractor("dsift-vlad")
class DenseSiftVLAD(VLADEncoder):
    __module__ = PUBLIC_MODULE  # config["class"] and pickles as before the split
    name = "dsift-vlad"

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
        super().__init__(
            local=local,
            n_words=n_words,
            intra_norm=intra_norm,
            power=power,
            pyramid=pyramid,
            n_iter=n_iter,
            max_descriptors=max_descriptors,
            seed=seed,
        )


@register_extractor("dsift-fisher")
class DenseSiftFisher(FisherVectorEncoder):
    __module__ = PUBLIC_MODULE  # config["class"] and pickles as before the split
    name = "dsift-fisher"

    def __init__(
        self,
        local: Any = "dsift",
        n_components: int = 64,
        pca_dim: int | None = 64,
        power: float = 0.5,
        pyramid: tuple[int, ...] = (1,),
        n_iter: int = 100,
        max_descriptors: int = 100_000,
        seed: int = 0,
    ) -> None:
        super().__init__(
            local=local,
            n_components=n_components,
            pca_dim=pca_dim,
            power=power,
            pyramid=pyramid,
            n_iter=n_iter,
            max_descriptors=max_descriptors,
            seed=seed,
        )


def _document(cls: type, summary: str) -> None:
    """Give a combination its base class's docstring with its own summary and defaults."""
    base = next(b for b in cls.__mro__[1:] if b.__doc__ and "Parameters" in b.__doc__)
    doc = inspect.getdoc(base) or ""
    defaults = {
        n: p.default for n, p in inspect.signature(cls.__init__).parameters.items() if n != "self"
    }

    def fix(match: re.Match[str]) -> str:
        name = match.group(1)
        return (
            f"{name} : {match.group(2)}, default={defaults[name]!r}"
            if name in defaults
            else match.group(0)
        )

    head, _, params = doc.partition("\nParameters\n")
    body = head.split("\n", 1)[1] if "\n" in head else ""
    params = re.sub(r"^(\w+) : (.*?), default=.*$", fix, params, flags=re.MULTILINE)
    cls.__doc__ = f"{summary}\n{body}\nParameters\n{params}"


_document(
    SiftBagOfWords,
    "Bag of visual words of SIFT keypoints, soft-assigned (kernel codebook), Hellinger.",
)
_document(
    DenseSiftBagOfWords,
    "Bag of visual words of dense SIFT: soft assignment, Hellinger, 1x1 + 2x2 spatial pyramid.",
)
_document(DenseSiftVLAD, "VLAD of dense SIFT descriptors (64 words, intra-normalised).")
_document(DenseSiftFisher, "Improved Fisher vectors of dense SIFT (PCA to 64, 64 Gaussians).")

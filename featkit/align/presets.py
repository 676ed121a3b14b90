"""Aligners by name, as the command line and ``featkit.adapt`` spell them."""

from __future__ import annotations

from typing import Any

from featkit.align.base import Aligner
from featkit.align.coral import CORAL
from featkit.align.gfk import GFK
from featkit.align.jda import JDA
from featkit.align.reducers import SharedLDA, SharedPCA
from featkit.align.subspace import SubspaceAlignment
from featkit.align.tca import TCA
from featkit.exceptions import InvalidParameterError

__all__ = ["ALIGNERS", "ALIGNER_DESCRIPTIONS", "make_aligner"]

#: Name -> aligner class. ``none`` (no alignment) is handled by callers.
ALIGNERS: dict[str, type[Aligner]] = {
    "pca": SharedPCA,
    "lda": SharedLDA,
    "sa": SubspaceAlignment,
    "coral": CORAL,
    "tca": TCA,
    "jda": JDA,
    "gfk": GFK,
}

ALIGNER_DESCRIPTIONS = {
    "none": "no alignment: train on the source features, test on the target's",
    "pca": "PCA fitted on both domains (100 components), the same projection for both",
    "lda": "LDA fitted on the labelled source, the same projection for both",
    "sa": "Subspace Alignment (Fernando et al. 2013), 80 components, each domain centred",
    "coral": "CORAL (Sun et al. 2016): source re-coloured, reg=1, each domain centred",
    "tca": "TCA (Pan et al. 2011), linear kernel, 30 components, mu=1",
    "jda": "JDA (Long et al. 2013), linear, 100 components, lambda=0.1, 10 iterations, 1-NN",
    "gfk": "GFK (Gong et al. 2012): geodesic flow kernel between 20-d principal subspaces",
}


def make_aligner(name: str, **params: Any) -> Aligner | None:
    """The aligner called ``name`` with ``params``; ``None`` for ``"none"``."""
    key = str(name).strip().lower()
    if key == "none":
        if params:
            raise InvalidParameterError(f"aligner 'none' takes no parameters, got {params}")
        return None
    if key not in ALIGNERS:
        known = ", ".join(["none", *ALIGNERS])
        raise InvalidParameterError(f"unknown aligner {name!r}; choose from {known}")
    aligner = ALIGNERS[key]()
    unknown = set(params) - set(aligner.get_params())
    if unknown:
        raise InvalidParameterError(
            f"aligner {key!r} has no parameter {', '.join(sorted(unknown))}; "
            f"its parameters: {', '.join(sorted(aligner.get_params()))}"
        )
    return aligner.set_params(**params)

"""Domain alignment: scikit-learn transformers that learn from source and target features.

They follow SKADA's convention: ``fit(X, y, sample_domain=...)`` with positive domain ids
for source rows and negative ids for target rows (target labels may be masked as -1), and
``transform(X, sample_domain=...)``. ``fit_domains(Xs, Xt)`` and :func:`align_domains` are
the plain two-array forms.

- :class:`CORAL`: correlation alignment (Sun et al. 2016).
- :class:`SubspaceAlignment`: subspace alignment (Fernando et al. 2013).
- :class:`TCA`: transfer component analysis (Pan et al. 2011).
- :class:`JDA`: joint distribution adaptation (Long et al. 2013).
- :class:`GFK`: the geodesic flow kernel (Gong et al. 2012).
- :class:`SharedPCA`, :class:`SharedLDA`: one projection for both domains.
"""

from featkit.align.base import Aligner, align_domains
from featkit.align.coral import CORAL
from featkit.align.domains import check_domains, stack_domains
from featkit.align.gfk import GFK
from featkit.align.jda import JDA
from featkit.align.pipeline import DAPipeline, SelectSource, make_da_pipeline
from featkit.align.presets import ALIGNER_DESCRIPTIONS, ALIGNERS, make_aligner
from featkit.align.reducers import SharedLDA, SharedPCA
from featkit.align.subspace import SubspaceAlignment
from featkit.align.tca import TCA

__all__ = [
    "ALIGNERS",
    "ALIGNER_DESCRIPTIONS",
    "CORAL",
    "GFK",
    "JDA",
    "TCA",
    "Aligner",
    "DAPipeline",
    "SelectSource",
    "SharedLDA",
    "SharedPCA",
    "SubspaceAlignment",
    "align_domains",
    "check_domains",
    "make_aligner",
    "make_da_pipeline",
    "stack_domains",
]

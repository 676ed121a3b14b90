"""Search indexes of features: build, add, search, save and load FAISS indexes.

``FeatureIndex`` wraps a FAISS index made from a factory string (``"Flat"`` exact search,
``"IVF1024,Flat"``, ``"HNSW32"``, ``"IVF256,PQ16"``, ...) with the ids, labels and class names
of its rows and the config of the extractor that made them, so a query image can be embedded
the same way. It is saved as the FAISS file plus a JSON sidecar (``PATH.json``), no pickle.

Metrics: ``"cosine"`` (rows L2-normalised, inner product; scores are similarities, higher is
closer) and ``"l2"`` (scores are Euclidean distances, lower is closer). Approximate indexes
report recall@k against exact search (:meth:`FeatureIndex.recall_at_k`).

The command line uses :func:`build_index` and :func:`search_images`.

Modules: ``factory`` (FAISS indexes from factory strings, devices, vectors),
``feature_index`` (:class:`FeatureIndex`), ``persistence`` (its files: the FAISS index and
the JSON sidecar), ``recall`` (recall@k and the rows it is measured on), ``build``
(:func:`build_index` and its statistics), ``retrieval`` (:func:`search_images`). Every name
is importable from ``featkit.index`` itself.
"""

from featkit._memory import peak_rss_bytes
from featkit.index.build import build_index
from featkit.index.factory import (
    METRICS,
    as_index_vectors,
    new_index,
    resolve_faiss_device,
    to_cpu,
    to_device,
)
from featkit.index.feature_index import FeatureIndex
from featkit.index.persistence import FORMAT, FORMAT_VERSION
from featkit.index.recall import RECALL_QUERIES, recall_at_k
from featkit.index.retrieval import search_images
from featkit.registry import extractor_from_config

__all__ = [
    "FORMAT",
    "FORMAT_VERSION",
    "METRICS",
    "RECALL_QUERIES",
    "FeatureIndex",
    "as_index_vectors",
    "build_index",
    "extractor_from_config",
    "new_index",
    "peak_rss_bytes",
    "recall_at_k",
    "resolve_faiss_device",
    "search_images",
    "to_cpu",
    "to_device",
]

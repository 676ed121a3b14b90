"""Batch extraction: parallel, cached, resumable, and tolerant of unreadable images.

- :func:`extract` (:mod:`featkit.engine.extraction`): a data set's features in memory, as a
  :class:`~featkit.features.FeatureSet`, chunk by chunk, each chunk committed to the cache.
- :func:`extract_to_store` (:mod:`featkit.engine.to_store`): the same, shard by shard, into a
  :class:`~featkit.store.ShardStore` larger than memory.
- :mod:`featkit.engine.runners`: where chunks are computed (this process, joblib workers
  pinned to one thread each, or torch DataLoader workers feeding a model here), and
  :mod:`featkit.engine.dask`: on a Dask cluster.
"""

from featkit.engine.extraction import DEFAULT_BATCH_SIZE, extract
from featkit.engine.to_store import ENGINE_OPTIONS, extract_to_store

__all__ = ["DEFAULT_BATCH_SIZE", "ENGINE_OPTIONS", "extract", "extract_to_store"]

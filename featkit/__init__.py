"""featkit: classical and deep image features side by side.

>>> import featkit
>>> extractor = featkit.create_extractor("pixels", size=8)
>>> features = featkit.extract(extractor, "digits")      # a FeatureSet
>>> features.X.shape
(1797, 64)
"""

from featkit._version import __version__
from featkit.data import Dataset, list_datasets, load_dataset
from featkit.engine import extract, extract_to_store
from featkit.exceptions import (
    CacheError,
    DatasetError,
    ExtractorNotFoundError,
    FeatkitError,
    ImageReadError,
    InvalidParameterError,
    PluginLoadError,
)
from featkit.extractors.base import Extractor, InputSpec
from featkit.features import FeatureSet
from featkit.index import FeatureIndex, build_index, search_images
from featkit.io import read_image
from featkit.registry import (
    broken_plugins,
    create_extractor,
    describe_extractor,
    list_extractors,
    register_extractor,
)
from featkit.store import ShardStore
from featkit.visualize import show

__all__ = [
    "CacheError",
    "Dataset",
    "DatasetError",
    "Extractor",
    "ExtractorNotFoundError",
    "FeatkitError",
    "FeatureIndex",
    "FeatureSet",
    "ImageReadError",
    "InputSpec",
    "InvalidParameterError",
    "PluginLoadError",
    "ShardStore",
    "__version__",
    "broken_plugins",
    "build_index",
    "create_extractor",
    "describe_extractor",
    "extract",
    "extract_to_store",
    "list_datasets",
    "list_extractors",
    "load_dataset",
    "read_image",
    "register_extractor",
    "search_images",
    "show",
]

"""Built-in extractors; importing this package registers them."""

from featkit.extractors.base import Extractor, InputSpec
from featkit.extractors.pixels import PixelsExtractor

__all__ = ["Extractor", "InputSpec", "PixelsExtractor"]

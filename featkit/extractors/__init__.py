"""Built-in extractors; importing this package registers them."""

from featkit.extractors.base import Extractor, InputSpec
from featkit.extractors.cnn import CNNExtractor
from featkit.extractors.color import ColorHistExtractor
from featkit.extractors.dsift import DenseSiftExtractor
from featkit.extractors.encoding import BagOfVisualWords, FisherVectorEncoder, VLADEncoder
from featkit.extractors.hog import HogExtractor
from featkit.extractors.lbp import LBPExtractor
from featkit.extractors.local import LocalExtractor, LocalFeatures
from featkit.extractors.pixels import PixelsExtractor
from featkit.extractors.sift import SiftExtractor

__all__ = [
    "BagOfVisualWords",
    "CNNExtractor",
    "ColorHistExtractor",
    "DenseSiftExtractor",
    "Extractor",
    "FisherVectorEncoder",
    "HogExtractor",
    "InputSpec",
    "LBPExtractor",
    "LocalExtractor",
    "LocalFeatures",
    "PixelsExtractor",
    "SiftExtractor",
    "VLADEncoder",
]

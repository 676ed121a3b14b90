"""``picture(image, "hog")``: the picture of what an extractor computes on one image."""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.base import clone

from featkit.exceptions import ExtractorNotFoundError, InvalidParameterError
from featkit.extractors.base import Extractor
from featkit.extractors.cnn import CNNExtractor
from featkit.extractors.dsift import DenseSiftExtractor
from featkit.extractors.hog import HogExtractor
from featkit.extractors.lbp import LBPExtractor
from featkit.extractors.sift import SiftExtractor
from featkit.registry import create_extractor, get_extractor_info, list_extractors
from featkit.validation import check_int
from featkit.visualize.base import Picture
from featkit.visualize.cam import cnn_picture
from featkit.visualize.hog import hog_picture
from featkit.visualize.keypoints import dsift_picture, sift_picture
from featkit.visualize.lbp import lbp_picture

__all__ = ["MAX_ZOOM", "picture", "show", "shown_extractors"]

MAX_ZOOM = 16

#: The extractor classes with a picture, and how to draw it (subclasses too: cnn/resnet50).
_DRAWERS: tuple[tuple[type, Any], ...] = (
    (HogExtractor, hog_picture),
    (LBPExtractor, lbp_picture),
    (SiftExtractor, sift_picture),
    (DenseSiftExtractor, dsift_picture),
)


def shown_extractors() -> list[str]:
    """Registered names with a picture: hog, lbp, sift, dsift, cnn and their presets."""
    classes = (*(cls for cls, _ in _DRAWERS), CNNExtractor)
    names = []
    for name in list_extractors():
        factory = get_extractor_info(name).factory
        if isinstance(factory, type) and issubclass(factory, classes):
            names.append(name)
    return names


def _supported() -> str:
    """What show draws, the cnn/NAME presets in one word."""
    names = shown_extractors()
    plain = [n for n in names if "/" not in n]
    presets = " and the cnn/NAME presets of CNNs" if len(plain) < len(names) else ""
    return f"featkit show draws {', '.join(plain)}{presets}"


def picture(
    image: Any,
    extractor: str | Extractor,
    *,
    class_index: int | None = None,
    cnn_map: str = "auto",
    zoom: int = 1,
    **params: Any,
) -> Picture:
    """The picture of what ``extractor`` (a registered name with its ``params``, or an
    instance) computes on ``image`` (a path, array, bytes or PIL image), prepared as the
    extractor prepares it, with a caption.

    hog: the cell histograms as skimage's ``hog(visualize=True)`` draws them. lbp: the code
    image at each radius. sift: the keypoints with size and orientation. dsift: the grid of
    descriptor centres and the patch of each bin size. cnn: Grad-CAM for ``class_index``
    (None: the predicted class) of the ImageNet head, or the activation map of the last
    feature map (``cnn_map``: "auto", "gradcam" or "activation"; auto draws the activation
    map for a fine-tuned checkpoint, which holds no head). ``zoom``: each pixel becomes a
    zoom x zoom square (the values stay those drawn).
    """
    check_int("show", "zoom", zoom, 1, MAX_ZOOM)
    drawn = _draw(image, _instance(extractor, params), class_index, cnn_map)
    if zoom == 1:
        return drawn
    zoomed = np.repeat(np.repeat(drawn.image, zoom, axis=0), zoom, axis=1)
    return Picture(zoomed, f"{drawn.caption} (zoomed {zoom}x)")


def _draw(image: Any, extractor: Extractor, class_index: int | None, cnn_map: str) -> Picture:
    if isinstance(extractor, CNNExtractor):
        return cnn_picture(extractor, image, class_index=class_index, cnn_map=cnn_map)
    if class_index is not None or cnn_map != "auto":
        raise InvalidParameterError("show: a class and a map kind apply to cnn extractors only")
    for cls, draw in _DRAWERS:
        if isinstance(extractor, cls):
            return draw(extractor, image)
    name = getattr(extractor, "name", "") or type(extractor).__name__
    raise InvalidParameterError(f"no picture for extractor {name!r}: {_supported()}")


def show(image: Any, extractor: str | Extractor, **kwargs: Any) -> np.ndarray:
    """:func:`picture`'s image alone: uint8 (H, W, 3) RGB."""
    return picture(image, extractor, **kwargs).image


def _instance(extractor: str | Extractor, params: dict[str, Any]) -> Extractor:
    if isinstance(extractor, Extractor):
        # A copy: the caller's extractor keeps its parameters.
        return clone(extractor).set_params(**params) if params else extractor
    if not isinstance(extractor, str):
        raise InvalidParameterError(
            f"extractor must be a registered name or an Extractor, got {type(extractor).__name__}"
        )
    try:
        return create_extractor(extractor, **params)
    except ExtractorNotFoundError as exc:
        error = ExtractorNotFoundError(exc.name, exc.close_matches)
        error.args = (f"{exc}; {_supported()}",)  # the same error, saying what show draws
        raise error from None

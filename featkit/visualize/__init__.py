"""Pictures of features: what an extractor computes on one image, as a uint8 RGB array.

``featkit.show(image, "hog", pixels_per_cell=(8, 8))`` (and ``featkit show IMAGE -e hog``)
draws HOG's cell histograms as skimage draws them, LBP's code images, SIFT's keypoints,
dense SIFT's grid, or a CNN's Grad-CAM or activation map over the crop it sees. One module
per picture: :mod:`~featkit.visualize.hog`, :mod:`~featkit.visualize.lbp`,
:mod:`~featkit.visualize.keypoints` (sift, dsift), :mod:`~featkit.visualize.cam` (cnn);
:mod:`~featkit.visualize.pictures` picks one for an extractor.
"""

from featkit.visualize.base import Picture
from featkit.visualize.cam import activation_map, grad_cam, overlay_heat_map
from featkit.visualize.hog import hog_glyphs
from featkit.visualize.pictures import picture, show, shown_extractors

__all__ = [
    "Picture",
    "activation_map",
    "grad_cam",
    "hog_glyphs",
    "overlay_heat_map",
    "picture",
    "show",
    "shown_extractors",
]

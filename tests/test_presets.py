"""Presets (featkit.extractors.presets): a registered class with other defaults reports its
registry name, keeps its defaults through scikit-learn, describes itself and pickles."""

from __future__ import annotations

import pickle

import pytest
from sklearn.base import clone

import featkit
from featkit import registry
from featkit.extractors.pixels import PixelsExtractor
from featkit.extractors.presets import register_preset
from featkit.testing import extractor_checks


@pytest.fixture
def tiny_rgb():
    """A preset of ``pixels`` registered (and bound in this module) for one test."""
    cls = register_preset(
        "test-tiny-rgb-pixels",
        PixelsExtractor,
        summary="Pixels at 4x4 in colour.",
        defaults={"size": 4, "color": "rgb"},
        class_name="TinyRgbPixels",
        module=__name__,
    )
    yield cls
    registry._registry.pop("test-tiny-rgb-pixels", None)
    globals().pop("TinyRgbPixels", None)


def test_a_preset_is_its_base_with_other_defaults(tiny_rgb):
    extractor = featkit.create_extractor("test-tiny-rgb-pixels")
    assert isinstance(extractor, PixelsExtractor) and type(extractor) is tiny_rgb
    assert extractor.get_params() == {"size": 4, "color": "rgb", "decode": "reduced"}
    assert extractor.name == "test-tiny-rgb-pixels" == extractor.config["name"]
    assert PixelsExtractor.name == "pixels" and PixelsExtractor().get_params()["size"] == 16
    resized = {"size": 5, "color": "rgb", "decode": "reduced"}
    assert clone(extractor.set_params(size=5)).get_params() == resized
    copy = pickle.loads(pickle.dumps(extractor))
    assert type(copy) is tiny_rgb and copy.config == extractor.config
    assert repr(tiny_rgb()) == "TinyRgbPixels()"  # scikit-learn reads the preset's defaults


def test_a_preset_describes_its_defaults_with_its_base_docs(tiny_rgb):
    info = featkit.describe_extractor("test-tiny-rgb-pixels")
    base = featkit.describe_extractor("pixels")
    assert info["summary"] == "Pixels at 4x4 in colour."
    defaults = {p["name"]: p["default"] for p in info["parameters"]}
    assert defaults == {"size": 4, "color": "rgb", "decode": "reduced"}
    assert [p["doc"] for p in info["parameters"]] == [p["doc"] for p in base["parameters"]]
    assert "size : int, default=4" in tiny_rgb.__doc__
    assert 'color : {"gray", "rgb"}, default=\'rgb\'' in tiny_rgb.__doc__


def test_a_preset_conforms(tiny_rgb):
    for name, check in extractor_checks(tiny_rgb()):
        # The name is registered in this process only: a fresh interpreter cannot import
        # this test module's preset by the registry (built-in presets are checked there).
        if name != "check_config_across_processes":
            check()


def test_a_preset_default_must_name_a_parameter():
    with pytest.raises(TypeError, match=r"no parameter with a default named \['sise'\]"):
        register_preset(
            "test-bad-preset",
            PixelsExtractor,
            summary="Misspelt.",
            defaults={"sise": 4},
            class_name="BadPreset",
            module=__name__,
        )
    assert "test-bad-preset" not in registry._registry


@pytest.mark.parametrize("name", ["cnn/resnet50", "cnn/efficientnet_lite1", "dsift-bovw"])
def test_built_in_presets_report_their_registry_name(name):
    extractor = featkit.create_extractor(name, **({"pretrained": False} if "cnn" in name else {}))
    assert extractor.name == name == extractor.config["name"]
    assert clone(extractor).name == name == pickle.loads(pickle.dumps(extractor)).name
    assert type(extractor).__module__ in ("featkit.extractors.cnn", "featkit.extractors.encoding")

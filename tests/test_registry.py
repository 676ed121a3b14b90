"""The registry: built-ins, entry-point plugins (working and broken), errors, describe."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import warnings
from pathlib import Path

import pytest

import featkit
from featkit import registry
from featkit.extractors.pixels import PixelsExtractor
from tests.conftest import featkit_command


def test_builtins_are_listed():
    assert "pixels" in featkit.list_extractors()
    assert featkit.list_extractors("pix*") == ["pixels"]
    assert featkit.list_extractors("nothing-like-this*") == []


def test_create_returns_configured_extractor():
    extractor = featkit.create_extractor("pixels", size=8, color="rgb")
    assert isinstance(extractor, PixelsExtractor)
    assert extractor.get_params() == {"size": 8, "color": "rgb", "decode": "reduced"}
    assert extractor.feature_dim == 8 * 8 * 3


def test_unknown_name_suggests_close_matches():
    with pytest.raises(featkit.ExtractorNotFoundError) as info:
        featkit.create_extractor("pixel")
    assert "pixels" in info.value.close_matches
    assert "did you mean 'pixels'" in str(info.value)


def test_unknown_and_bad_parameters_are_rejected_at_creation():
    with pytest.raises(featkit.InvalidParameterError, match=r"no parameter 'sise'.*size, color"):
        featkit.create_extractor("pixels", sise=8)
    with pytest.raises(featkit.InvalidParameterError, match="size must be an integer"):
        featkit.create_extractor("pixels", size="big")
    with pytest.raises(featkit.InvalidParameterError, match="color must be"):
        featkit.create_extractor("pixels", color="cmyk")


def test_describe_gives_parameters_with_defaults_and_docs():
    info = featkit.describe_extractor("pixels")
    assert info["source"] == "featkit"
    params = {p["name"]: p for p in info["parameters"]}
    assert params["size"]["default"] == 16
    assert "square" in params["size"]["doc"]
    assert params["color"]["default"] == "gray"


def test_reregistering_warns_and_replaces():
    class Variant(PixelsExtractor):
        """Another pixels."""

    name = "test-reregister"
    registry.register_extractor(name)(PixelsExtractor)
    try:
        with pytest.warns(UserWarning, match="registered again"):
            registry.register_extractor(name)(Variant)
        assert registry.get_extractor_info(name).factory is Variant
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # overwrite=True is silent
            registry.register_extractor(name, overwrite=True)(PixelsExtractor)
    finally:
        registry._registry.pop(name, None)


@pytest.mark.parametrize("bad", ["Pixels", "has space", "", "-lead"])
def test_invalid_names_are_refused(bad):
    with pytest.raises(featkit.InvalidParameterError):
        registry.register_extractor(bad)(PixelsExtractor)


def test_installed_plugin_is_discovered_without_being_imported():
    # A fresh interpreter: the plugin package must come in through its entry point alone.
    code = textwrap.dedent(
        """
        import json, sys
        import featkit
        before = "featkit_color_moments" in sys.modules
        names = featkit.list_extractors()
        info = featkit.describe_extractor("color-moments")
        x = featkit.create_extractor("color-moments", grid=2)
        print(json.dumps({"before": before, "names": names, "source": info["source"],
                          "dim": x.feature_dim}))
        """
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    result = json.loads(out.stdout)
    assert result["before"] is False
    assert "color-moments" in result["names"] and "pixels" in result["names"]
    assert result["source"] == "featkit-color-moments"
    assert result["dim"] == 36


def _fake_distribution(site: Path, dist: str, module: str, source: str, entry: str) -> None:
    """A real, minimal installed distribution: a module and a dist-info with entry points."""
    (site / f"{module}.py").write_text(textwrap.dedent(source))
    info = site / f"{dist.replace('-', '_')}-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(f"[featkit.extractors]\n{entry}\n")


def test_broken_plugin_is_reported_and_the_rest_works(tmp_path):
    _fake_distribution(
        tmp_path,
        "featkit-broken-demo",
        "broken_demo_plugin",
        "raise RuntimeError('boom: missing native library')\n",
        "broken-demo = broken_demo_plugin:Extractor",
    )
    env = {"PYTHONPATH": str(tmp_path), "PATH": "/usr/bin:/bin"}
    listing = subprocess.run(
        [*featkit_command(), "list", "--json"], capture_output=True, text=True, env=env
    )
    assert listing.returncode == 0, listing.stderr
    data = json.loads(listing.stdout)
    broken = {b["name"]: b for b in data["broken"]}
    assert "broken-demo" in broken
    assert broken["broken-demo"]["source"] == "featkit-broken-demo"
    assert "RuntimeError: boom: missing native library" in broken["broken-demo"]["error"]
    assert "pixels" in [e["name"] for e in data["extractors"]]

    code = (
        "import featkit\n"
        "print(featkit.create_extractor('pixels').feature_dim)\n"
        "try:\n"
        "    featkit.create_extractor('broken-demo')\n"
        "except featkit.PluginLoadError as e:\n"
        "    print('PluginLoadError', e)\n"
    )
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    assert run.returncode == 0, run.stderr
    lines = run.stdout.splitlines()
    assert lines[0] == "256"
    assert lines[1].startswith("PluginLoadError plugin 'broken-demo'")


def test_entry_point_to_a_factory_registers_under_its_name(tmp_path):
    _fake_distribution(
        tmp_path,
        "featkit-factory-demo",
        "factory_demo_plugin",
        """
        from featkit.extractors.pixels import PixelsExtractor

        def tiny_pixels(size: int = 4):
            '''Pixels at 4x4.'''
            return PixelsExtractor(size=size)
        """,
        "tiny-pixels = factory_demo_plugin:tiny_pixels",
    )
    code = (
        "import featkit\n"
        "print(featkit.create_extractor('tiny-pixels').feature_dim,"
        " featkit.describe_extractor('tiny-pixels')['source'])\n"
    )
    env = {"PYTHONPATH": str(tmp_path), "PATH": "/usr/bin:/bin"}
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    assert run.returncode == 0, run.stderr
    assert run.stdout.split() == ["16", "featkit-factory-demo"]


def test_nested_parameters_reach_the_inner_estimator():
    extractor = featkit.create_extractor("dsift-bovw", n_words=8, local__step=12)
    assert extractor.get_params()["local__step"] == 12
    with pytest.raises(featkit.InvalidParameterError, match="dsift-bovw"):
        featkit.create_extractor("dsift-bovw", local__nonsense=1)


def test_a_registered_subclass_reports_its_own_name():
    class Small(PixelsExtractor):
        """Pixels at 4x4."""

    registry.register_extractor("test-small-pixels")(Small)
    try:
        assert Small.name == "test-small-pixels" and PixelsExtractor.name == "pixels"
        assert featkit.create_extractor("test-small-pixels").config["name"] == "test-small-pixels"
    finally:
        registry._registry.pop("test-small-pixels", None)

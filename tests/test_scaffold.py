"""featkit new-plugin: the generated package installs, registers and passes its own tests."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from featkit import FeatureSet
from featkit.exceptions import InvalidParameterError
from featkit.scaffold import write_plugin
from tests.conftest import featkit_command


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> tuple[Path, dict[str, str]]:
    """Two generated plugins (global and local) installed into a private folder; the
    environment that puts that folder on the path."""
    root = tmp_path_factory.mktemp("plugins")
    proc = subprocess.run(
        [*featkit_command(), "new-plugin", "gray-hist", "-o", str(root)],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stderr
    assert (root / "featkit-gray-hist" / "pyproject.toml").is_file()
    write_plugin("dense-patch", root, local=True)
    site = root / "site"
    pip = subprocess.run(
        [
            *(sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(site)),
            str(root / "featkit-gray-hist"),
            str(root / "featkit-dense-patch"),
        ],
        capture_output=True,
        text=True,
    )
    assert pip.returncode == 0, pip.stderr
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(site), os.getcwd()])}
    return root, env


def _run(args: list[str], env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(args, capture_output=True, text=True, env=env, cwd=cwd)


def test_generated_plugins_register_through_entry_points(installed):
    root, env = installed
    proc = _run([*featkit_command(), "list"], env, root)
    assert proc.returncode == 0, proc.stderr
    lines = {line.split()[0]: line.split() for line in proc.stdout.splitlines() if line.strip()}
    assert lines["gray-hist"][1:3] == ["global", "featkit-gray-hist"]
    assert lines["dense-patch"][1:3] == ["local", "featkit-dense-patch"]


def test_generated_plugins_pass_their_own_tests(installed):
    """As generated: the conformance kit, the entry point, a value check, bad parameters,
    and for the local one, featkit's bag of words over its descriptors."""
    root, env = installed
    tests = [str(root / f"featkit-{n}" / "tests") for n in ("gray-hist", "dense-patch")]
    proc = _run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *tests], env, root)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "8 passed" in proc.stdout


def test_a_generated_plugin_works_in_extract_and_compare(installed, digit_folder):
    root, env = installed
    out = root / "feats"
    proc = _run(
        [
            *featkit_command(),
            *("extract", "-e", "gray-hist", "-q", "--data", str(digit_folder), "--out", str(out)),
        ],
        env,
        root,
    )
    assert proc.returncode == 0, proc.stderr
    features = FeatureSet.load(out)
    assert features.X.shape == (200, 32)  # 200 digits, the template's 32 bins
    assert features.provenance["extractor"]["name"] == "gray-hist"
    proc = _run(
        [
            *featkit_command(),
            *("compare", "--data", str(digit_folder), "--extractors", "gray-hist"),
            *("--classifiers", "knn", "-o", str(root / "report"), "--no-plots"),
        ],
        env,
        root,
    )
    assert proc.returncode == 0, proc.stderr
    assert "gray-hist" in proc.stdout


@pytest.mark.parametrize("name", ["Gabor", "gabor_bank", "-x", "9lives", ""])
def test_bad_names(name, tmp_path):
    with pytest.raises(InvalidParameterError, match="plugin name"):
        write_plugin(name, tmp_path)


def test_existing_folder_is_not_overwritten(tmp_path):
    write_plugin("gabor", tmp_path)
    with pytest.raises(InvalidParameterError, match="already exists"):
        write_plugin("gabor", tmp_path)

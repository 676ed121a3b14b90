"""Every example runs, on small data, and prints what its docstring promises."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import PACS, SHARED_DATA, requires_pacs

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def run_example(name: str, *args: str) -> str:
    proc = subprocess.run(
        [sys.executable, str(EXAMPLES / name), *args], capture_output=True, text=True, timeout=600
    )
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def test_baseline_on_digits():
    lines = run_example("baseline_in_ten_lines.py").splitlines()
    assert [line.split()[0] for line in lines] == ["KNeighborsClassifier", "LinearSVC"]
    assert all(float(line.split()[2]) > 0.9 for line in lines)


def test_baseline_on_an_image_folder():
    requires_pacs()
    out = run_example("baseline_in_ten_lines.py", str(PACS / "photo"))
    assert "on 263 images" in out  # 25% of the 1,050 photos


def test_usps_mnist_reproduces_the_jda_paper():
    """The JDA paper's 1-NN baselines exactly, and its JDA numbers within half a point."""
    folder = SHARED_DATA / "usps_mnist_jda"
    if not folder.is_dir():
        pytest.skip(f"the JDA digits pair is not at {folder}")
    out = json.loads(run_example("adapt_usps_mnist.py", str(folder), "--json"))
    accuracy, published = out["accuracy"], out["published"]
    assert accuracy["1-NN"] == [44.70, 65.94]  # USPS→MNIST, MNIST→USPS
    for ours, paper in zip(accuracy["JDA"], published["JDA"], strict=True):
        assert abs(ours - paper) <= 0.5
    # Alignment must change something: SA and JDA beat raw 1-NN on the harder shift.
    assert accuracy["SA"][0] > accuracy["1-NN"][0] + 5
    assert accuracy["JDA"][0] > accuracy["1-NN"][0] + 10

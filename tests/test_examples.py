"""Every example runs, on small data, and prints what its docstring promises."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.conftest import PACS, requires_pacs

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

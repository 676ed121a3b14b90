"""examples/reproduce_coral_office_caltech.py reproduces the CORAL paper's Table 3.

The published numbers are read from the shared data README (an independent copy of the
table, not the example's constant); the example runs once (about 20-40 s on 2 cores).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import SHARED_DATA

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "reproduce_coral_office_caltech.py"
OFFICE = SHARED_DATA / "office_caltech10_surf"
SHIFTS = ["A→C", "A→D", "A→W", "C→A", "C→D", "C→W", "D→A", "D→C", "D→W", "W→A", "W→C", "W→D"]


def published_table() -> dict[str, list[float]]:
    """Table 3 of Sun et al. (AAAI 2016) as the shared data README quotes it."""
    table = {}
    for line in (SHARED_DATA / "README.md").read_text(encoding="utf-8").splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if cells[0] == "shift" and "A→C" in cells:
            assert cells[1:13] == SHIFTS, "the README's column order changed"
        if cells[0] in ("NA", "SA", "CORAL") and len(cells) == 14:
            table[cells[0]] = [float(c) for c in cells[1:13]]
    assert set(table) == {"NA", "SA", "CORAL"}, "Table 3 not found in the shared README"
    return table


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> tuple[str, dict, dict[str, list[float]]]:
    """``(stdout, json report, published table)`` of one run with CV seed 0."""
    if not OFFICE.is_dir():
        pytest.skip(f"Office-Caltech10 SURF not found at {OFFICE} (set FEATKIT_SHARED_DATA)")
    out = tmp_path_factory.mktemp("coral") / "report.json"
    proc = subprocess.run(
        [sys.executable, str(EXAMPLE), str(OFFICE), "--seed", "0", "--json", str(out)],
        capture_output=True,
        text=True,
        timeout=600,
        # One BLAS thread: the matrices are small, and OpenBLAS threads that spin on a busy
        # 2-core runner made CORAL's 800 x 800 eigh 40x slower in a measurement.
        env={**os.environ, "OPENBLAS_NUM_THREADS": "1"},
    )
    assert proc.returncode == 0, proc.stderr
    return proc.stdout, json.loads(out.read_text()), published_table()


def printed_rows(stdout: str) -> dict[str, list[float]]:
    """The table rows of the printout: ``{"NA ours": [12 shifts + avg], ...}``."""
    rows = {}
    for line in stdout.splitlines():
        parts = line.split()
        if len(parts) == 15 and parts[1] in ("ours", "paper"):
            rows[f"{parts[0]} {parts[1]}"] = [float(p) for p in parts[2:]]
    return rows


def test_printed_table_matches_report_and_readme(run):
    stdout, report, paper = run
    rows = printed_rows(stdout)
    assert len(rows) == 6, stdout
    for method in ("NA", "SA", "CORAL"):
        assert rows[f"{method} paper"][:12] == paper[method]
        ours = report["methods"][method]
        assert rows[f"{method} ours"][:12] == pytest.approx(ours["shifts"], abs=0.051)
        assert rows[f"{method} ours"][12] == pytest.approx(ours["average"], abs=0.0051)
    assert "runtime" in stdout


def test_no_adaptation_meets_the_target(run):
    """NA does not depend on the CV split here (every seed picks the same accuracy)."""
    _, report, paper = run
    ours = np.array(report["methods"]["NA"]["shifts"])
    assert abs(ours.mean() - np.mean(paper["NA"])) <= 0.5
    assert np.abs(ours - paper["NA"]).max() <= 2.0
    assert report["methods"]["NA"]["target_met"]


@pytest.mark.parametrize("method, n_differing", [("SA", 0), ("CORAL", 2)])
def test_shifts_match_up_to_the_choice_of_C(run, method, n_differing):
    """Every shift is the paper's within 2 points, or the paper's value is ours at another
    C of the grid (the paper's CV split chose another C): the kernel itself is right.
    With seed 0, CORAL differs on C→A and C→D only."""
    _, report, paper = run
    result = report["methods"][method]
    for i, acc in enumerate(result["shifts"]):
        if abs(acc - paper[method][i]) > 2.0:
            per_C = result["differing"][SHIFTS[i]]["per_C"]
            assert min(abs(a - paper[method][i]) for a in per_C.values()) < 0.15, SHIFTS[i]
    assert len(result["differing"]) == n_differing


def test_sa_average_within_half_a_point_with_seed_0(run):
    """The issue's target for SA, with CV seed 0. It depends on the CV split: over seeds
    0..19 the SA average spans 41.52 .. 42.38 (paper 41.52; A→D is 36.3 at C=0.001, 43.3
    at C=0.01). CORAL's seed-0 average is 48.21 against 48.82: the split picks C=0.01 on
    C→D (36.3; the paper's 45.9 is ours at C=0.001), which
    test_shifts_match_up_to_the_choice_of_C checks; its spread over seeds is 47.38 ..
    49.03."""
    _, report, paper = run
    assert abs(report["methods"]["SA"]["average"] - np.mean(paper["SA"])) <= 0.5


@pytest.mark.parametrize("method", ["SA", "CORAL"])
def test_average_within_the_cv_spread(run, method):
    """Within 1 point with any CV seed of 0..19 (the spread above)."""
    _, report, paper = run
    assert abs(report["methods"][method]["average"] - np.mean(paper[method])) <= 1.0

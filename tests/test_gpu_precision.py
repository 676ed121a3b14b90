"""precision="auto" on a GPU: the choice rule, the measurement (run here on the CPU, where
float32 and bfloat16 both exist) and the kept decision. On a GPU, test_gpu checks that the
extractor uses them."""

from __future__ import annotations

import json

import numpy as np
import pytest
from sklearn.base import clone

import featkit
from featkit.extractors import gpu_precision
from featkit.extractors.gpu_precision import (
    MIN_COSINE,
    PrecisionTrial,
    calibration_photos,
    choose_precision,
    decision_file,
    measure_precisions,
    remembered_precision,
)


def _trials(**speeds_and_cosines: tuple[float, float]) -> list[PrecisionTrial]:
    return [PrecisionTrial(p, s, c) for p, (s, c) in speeds_and_cosines.items()]


def test_the_fastest_close_precision_wins() -> None:
    # The H100 figures for EfficientNet-Lite0: fp16 fastest, bf16 slower than fp32.
    trials = _trials(fp32=(12_000, 1.0), fp16=(14_700, 0.9999), bf16=(10_100, 0.9995))
    assert choose_precision(trials) == "fp16"


def test_a_precision_that_moves_the_rows_is_not_chosen() -> None:
    trials = _trials(fp32=(12_000, 1.0), fp16=(20_000, MIN_COSINE - 1e-4), bf16=(15_000, 0.9995))
    assert choose_precision(trials) == "bf16"
    trials = _trials(fp32=(12_000, 1.0), fp16=(20_000, 0.99))
    assert choose_precision(trials) == "fp32"


def test_a_gain_within_timing_noise_keeps_fp32() -> None:
    # 3% faster: within run-to-run noise, not worth rows that differ from fp32's.
    assert choose_precision(_trials(fp32=(10_000, 1.0), fp16=(10_300, 1.0))) == "fp32"
    assert choose_precision(_trials(fp32=(10_000, 1.0), fp16=(10_600, 1.0))) == "fp16"
    with pytest.raises(ValueError, match="fp32"):
        choose_precision(_trials(fp16=(1.0, 1.0)))


def test_measured_cosines_are_those_of_the_rows() -> None:
    """On the CPU: bf16 rows against fp32 rows of the same photos, computed here directly."""
    extractor = featkit.create_extractor("cnn", device="cpu", image_size=64, batch_size=8)
    photos = [extractor.prepare(image) for image in calibration_photos()]
    images = np.stack([photos[i % len(photos)] for i in range(8)])
    runs = {p: clone(extractor).set_params(precision=p) for p in ("fp32", "bf16")}
    calls: list[str] = []

    def run(precision: str, batch: np.ndarray) -> np.ndarray:
        calls.append(precision)
        return runs[precision].transform_prepared(batch)

    trials = {t.precision: t for t in measure_precisions(run, images, ["bf16"])}
    assert calls == ["fp32"] * 7 + ["bf16"] * 7  # 2 warm-up and 5 timed passes each
    assert trials["fp32"].min_cosine == pytest.approx(1.0, abs=1e-12)
    a = runs["bf16"].transform_prepared(images).astype(np.float64)
    b = runs["fp32"].transform_prepared(images).astype(np.float64)
    cosine = (a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)
    assert trials["bf16"].min_cosine == pytest.approx(cosine.min(), abs=1e-9)
    assert 0.9 < trials["bf16"].min_cosine < 1.0  # bf16 moves the rows, a little
    assert all(t.images_per_s > 0 for t in trials.values())


@pytest.fixture
def cache_home(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    monkeypatch.setattr(gpu_precision, "_CHOSEN", {})
    return tmp_path


def test_the_choice_is_measured_once_and_kept(cache_home) -> None:
    measured: list[int] = []

    def measure() -> list[PrecisionTrial]:
        measured.append(1)
        return _trials(fp32=(100.0, 1.0), fp16=(180.0, 0.9999))

    assert remembered_precision("H100 | lite0", measure) == "fp16"
    assert decision_file() == cache_home / "featkit" / "gpu-precision.json"
    kept = json.loads(decision_file().read_text())
    assert kept["H100 | lite0"]["precision"] == "fp16"
    assert {t["precision"] for t in kept["H100 | lite0"]["trials"]} == {"fp32", "fp16"}
    assert remembered_precision("H100 | lite0", measure) == "fp16"
    gpu_precision._CHOSEN.clear()  # a new process reads the file: no second measurement
    assert remembered_precision("H100 | lite0", measure) == "fp16"
    assert len(measured) == 1
    # Another key is measured, and both are kept.
    assert remembered_precision("A100 | lite0", lambda: _trials(fp32=(1.0, 1.0))) == "fp32"
    assert set(json.loads(decision_file().read_text())) == {"H100 | lite0", "A100 | lite0"}


def test_a_broken_decision_file_is_measured_again(cache_home) -> None:
    decision_file().parent.mkdir(parents=True)
    decision_file().write_text("{not json")
    assert remembered_precision("k", lambda: _trials(fp32=(1.0, 1.0), bf16=(2.0, 1.0))) == "bf16"
    assert json.loads(decision_file().read_text())["k"]["precision"] == "bf16"

"""Shared fixtures: the shared benchmark data folder and small real image folders."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("FEATKIT_SHARED_DATA", REPO.parent / "shared" / "data"))
PACS = SHARED_DATA / "pacs150"


def featkit_command() -> list[str]:
    """The featkit CLI of this interpreter's environment."""
    return [sys.executable, "-m", "featkit.cli"]


def requires_pacs() -> None:
    if not PACS.is_dir():
        pytest.skip(f"PACS subset not found at {PACS} (set FEATKIT_SHARED_DATA)")


@pytest.fixture(scope="session")
def digit_images() -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's 8x8 digits as uint8 images and their labels."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    return np.round(digits.images * 255 / 16).astype(np.uint8), digits.target


def write_image_folder(
    root: Path, images: np.ndarray, labels: np.ndarray, suffix: str = ".png"
) -> list[Path]:
    """Write ``root/<label>/<i>.png`` for each image; returns the paths in order."""
    paths = []
    for i, (img, label) in enumerate(zip(images, labels, strict=True)):
        folder = root / f"class_{label}"
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"img_{i:04d}{suffix}"
        Image.fromarray(img).save(path)
        paths.append(path)
    return paths


@pytest.fixture
def digit_folder(tmp_path: Path, digit_images) -> Path:
    """200 real digit images (upscaled to 32x32) in a class folder layout."""
    images, labels = digit_images
    big = np.stack([np.asarray(Image.fromarray(i).resize((32, 32))) for i in images[:200]])
    write_image_folder(tmp_path / "digits", big, labels[:200])
    return tmp_path / "digits"


@pytest.fixture(scope="module")
def one_faiss_thread():
    """Small data: faiss's OpenMP threads only add overhead, and on a shared 2-core machine
    a busy core makes each of k-means' parallel regions wait (100x slower measured)."""
    from featkit._faiss import import_faiss

    faiss = import_faiss()
    before = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(1)
    yield
    faiss.omp_set_num_threads(before)

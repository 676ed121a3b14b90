"""The GPU paths give what the CPU paths give. These run only where CUDA is available (the
lent GPU machine, a user's workstation); CI has no GPU, and the CPU-only error paths are
tested in test_cnn, test_probe, test_align and test_index."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
import torch

import featkit
from featkit.align import CORAL, SubspaceAlignment
from featkit.testing import check_extractor, sample_images

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


def _cosine(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a, b = a.astype(np.float64), b.astype(np.float64)
    return (a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)


def test_cnn_fp32_on_cuda_matches_cpu():
    images = sample_images(8)
    kw = {"precision": "fp32", "image_size": 96}
    cpu = featkit.create_extractor("cnn", device="cpu", **kw).fit(images).transform(images)
    gpu = featkit.create_extractor("cnn", device="cuda", **kw).fit(images).transform(images)
    assert gpu.dtype == np.float32 and gpu.shape == cpu.shape
    # cuDNN sums in another order than oneDNN: close (1.3e-6 of the largest value measured
    # on an H100), not bit for bit. With cuDNN's default TF32 it was 1.7e-2.
    np.testing.assert_allclose(gpu, cpu, rtol=1e-4, atol=1e-4 * np.abs(cpu).max())


def test_cnn_auto_precision_on_cuda_is_measured_and_close_to_fp32(tmp_path, monkeypatch):
    """auto times fp32, fp16 and bf16 once on this GPU, keeps the choice in the decision
    file, and its rows stay within the cosine it promises."""
    from featkit.extractors import gpu_precision

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    monkeypatch.setattr(gpu_precision, "_CHOSEN", {})
    images = sample_images(8)
    auto = featkit.create_extractor("cnn", device="cuda", image_size=96)
    chosen = auto.resolved_precision()
    (record,) = json.loads(gpu_precision.decision_file().read_text()).values()
    trials = [gpu_precision.PrecisionTrial(**t) for t in record["trials"]]
    assert chosen == record["precision"] == gpu_precision.choose_precision(trials)
    print("precision trials on", torch.cuda.get_device_name(), record)
    fp32 = featkit.create_extractor("cnn", device="cuda", precision="fp32", image_size=96)
    a, b = auto.fit(images).transform(images), fp32.fit(images).transform(images)
    assert _cosine(a, b).min() > 0.99
    assert auto.config["runtime"]["precision"] == chosen


def test_streamed_passes_equal_passes_one_at_a_time():
    """On CUDA the passes overlap their copies (pinned staging, a side stream, rows back
    asynchronously): the rows are those of passes run and waited for one at a time, and
    each pass's own images, wherever the pass sits (odd counts, a padded last pass)."""
    from featkit.extractors.passes import launch_passes

    extractor = featkit.create_extractor(
        "cnn", device="cuda", precision="fp32", image_size=96, batch_size=8
    )
    images = np.stack([extractor.prepare(im) for im in sample_images(37, seed=2)])
    streamed = extractor.transform_prepared(images)
    one_by_one = []
    for start in range(0, len(images), 8):
        launched = []
        launch_passes(
            images[start : start + 8],
            8,
            torch.device("cuda"),
            extractor._forward_on_device,
            launched,
        )
        torch.cuda.synchronize()
        one_by_one.append(launched[0].wait())
    np.testing.assert_array_equal(streamed, np.concatenate(one_by_one))
    assert streamed.shape[0] == 37


def test_engine_on_cuda_matches_cpu(tmp_path):
    from PIL import Image

    paths = []
    for i, image in enumerate(sample_images(40, seed=1)):
        paths.append(str(tmp_path / f"{i}.png"))
        Image.fromarray(image).save(paths[-1])
    kw = {"precision": "fp32", "image_size": 96, "batch_size": 16}
    cpu = featkit.extract(
        featkit.create_extractor("cnn", device="cpu", **kw), paths, progress=False
    )
    gpu = featkit.extract(
        featkit.create_extractor("cnn", device="cuda", **kw), paths, n_jobs=2, progress=False
    )
    assert list(gpu.ids) == list(cpu.ids)
    assert _cosine(gpu.X, cpu.X).min() > 0.9999


def test_coral_on_cuda_matches_numpy():
    rng = np.random.default_rng(0)
    Xs = rng.normal(size=(300, 40)) @ rng.normal(size=(40, 40))
    Xt = rng.normal(size=(250, 40)) * 2 + 1
    ref = CORAL(dtype="float64").fit_domains(Xs, Xt)
    gpu = CORAL(dtype="float64", backend="torch", device="cuda").fit_domains(Xs, Xt)
    np.testing.assert_allclose(gpu.transform_matrix_, ref.transform_matrix_, rtol=1e-6, atol=1e-8)
    np.testing.assert_allclose(gpu.transform_source(Xs), ref.transform_source(Xs), atol=1e-6)
    # Fewer rows than features: the low-rank path on the GPU too.
    Xs, Xt = rng.normal(size=(50, 120)), rng.normal(size=(60, 120)) * 3
    ref = CORAL(dtype="float64").fit_domains(Xs, Xt)
    gpu = CORAL(dtype="float64", backend="torch", device="cuda").fit_domains(Xs, Xt)
    np.testing.assert_allclose(gpu.transform_source(Xs), ref.transform_source(Xs), atol=1e-6)


def test_subspace_alignment_on_cuda_matches_numpy():
    rng = np.random.default_rng(1)
    Xs, Xt = rng.normal(size=(200, 30)), rng.normal(size=(180, 30)) @ rng.normal(size=(30, 30))
    ref = SubspaceAlignment(8, dtype="float64").fit_domains(Xs, Xt)
    gpu = SubspaceAlignment(8, dtype="float64", backend="torch", device="cuda").fit_domains(Xs, Xt)
    np.testing.assert_allclose(gpu.transform_source(Xs), ref.transform_source(Xs), atol=1e-6)
    np.testing.assert_allclose(gpu.transform_target(Xt), ref.transform_target(Xt), atol=1e-6)


@pytest.mark.parametrize("precision", ["auto", "fp32"])
def test_cuda_features_repeat_in_a_fresh_process(tmp_path, precision):
    """Deterministic cuDNN: another process picks the same algorithms, to the last bit."""
    from PIL import Image
    from skimage import data as skdata

    image = tmp_path / "cat.png"
    Image.fromarray(skdata.chelsea()).save(image)
    code = (
        "import sys, numpy as np, featkit; np.save(sys.argv[2], featkit.create_extractor("
        "'cnn', device='cuda', precision=sys.argv[3]).transform([sys.argv[1]]))"
    )
    out = tmp_path / "x.npy"
    subprocess.run([sys.executable, "-c", code, str(image), str(out), precision], check=True)
    here = featkit.create_extractor("cnn", device="cuda", precision=precision)
    np.testing.assert_array_equal(np.load(out), here.transform([str(image)]))


@pytest.mark.parametrize("precision", ["auto", "fp32"])
def test_cuda_batch_of_one_equals_a_batch(precision):
    """Measured equal to the bit on an H100 with deterministic cuDNN; asserted to float
    tolerance (another GPU may pick other algorithms per batch size)."""
    images = sample_images(8, seed=2)
    extractor = featkit.create_extractor("cnn", device="cuda", precision=precision)
    together = extractor.transform(images)
    alone = np.concatenate([extractor.transform([img]) for img in images])
    if precision == "fp32":
        np.testing.assert_allclose(alone, together, rtol=1e-5, atol=1e-5)
    else:
        assert _cosine(alone, together).min() > 0.999


def test_cnn_on_cuda_passes_the_conformance_kit():
    check_extractor(featkit.create_extractor("cnn", device="cuda", image_size=96))

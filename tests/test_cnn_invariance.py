"""A deep feature row depends only on its image, the parameters and the precision: not on
the other images of its call, the chunking, the workers, or where a resumed run restarted.

In bf16 the kernels choose their blocking, hence their rounding, by the batch shape: on an
Intel CPU with AMX a ViT's row moved by 0.0125 between a batch of 1 and one of 8. featkit
runs every forward pass at one fixed shape. These tests force bf16 where the CPU has it,
and rerun the check under oneDNN's AVX512_CORE kernels, which reproduce that batch
dependence on any AVX-512 CPU (AMD Zen 4 included).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import featkit
from featkit.hardware import cpu_bf16_kernels

needs_bf16 = pytest.mark.skipif(
    cpu_bf16_kernels() is None,
    reason="this CPU has no native bfloat16 (neither the avx512_bf16 nor the amx_bf16 flag)",
)

#: A conv net with real weights, a transformer and a conv net with Linear layers, small.
MODELS = {
    "efficientnet_lite0": {"model": "efficientnet_lite0", "image_size": 96},
    "vit_small": {"model": "cnn/vit_small", "pretrained": False, "image_size": 64},
    "convnext_tiny": {"model": "cnn/convnext_tiny", "pretrained": False, "image_size": 64},
}


def _create(spec: dict, **params) -> featkit.Extractor:
    spec = dict(spec)
    name = spec.pop("model")
    if name.startswith("cnn/"):
        return featkit.create_extractor(name, **spec, **params)
    return featkit.create_extractor("cnn", model=name, **spec, **params)


def _images(n: int, seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.integers(0, 256, (70 + 3 * i, 90, 3), dtype=np.uint8) for i in range(n)]


@needs_bf16
@pytest.mark.parametrize("model", MODELS)
def test_bf16_rows_do_not_depend_on_the_batch(model):
    extractor = _create(MODELS[model], precision="bf16", batch_size=4, device="cpu")
    assert extractor.config["runtime"]["cpu_bf16"] == cpu_bf16_kernels()
    images = _images(11)
    together = extractor.transform(images)  # passes of 4, 4 and 3 + 1 padding
    alone = np.concatenate([extractor.transform([image]) for image in images])
    in_threes = np.concatenate([extractor.transform(images[i : i + 3]) for i in range(0, 11, 3)])
    reversed_order = extractor.transform(images[::-1])[::-1]
    # Bit for bit: padding gives every image the same arithmetic wherever it sits.
    np.testing.assert_array_equal(alone, together)
    np.testing.assert_array_equal(in_threes, together)
    np.testing.assert_array_equal(reversed_order, together)
    # And it is bf16 indeed: not the float32 rows.
    fp32 = _create(MODELS[model], precision="fp32", batch_size=4, device="cpu")
    assert not np.array_equal(fp32.transform(images[:2]), together[:2])


ISA_SCRIPT = textwrap.dedent(
    """
    import json, sys
    import numpy as np
    import torch
    import featkit

    # The batch dependence shows with 2 threads or more: the kernels split the work by
    # batch and threads. One thread is what Dask and joblib workers run with.
    torch.set_num_threads(2)
    rng = np.random.default_rng(0)
    images = [rng.integers(0, 256, (70, 90, 3), dtype=np.uint8) for _ in range(8)]
    out = {}
    for name, kw in json.loads(sys.argv[1]).items():
        ex = featkit.create_extractor("cnn", precision="bf16", batch_size=8, device="cpu", **kw)
        together = ex.transform(images)
        alone = np.concatenate([ex.transform([image]) for image in images])
        # The same network without featkit's padding: a pass of 1 against a pass of 8.
        prepared = np.stack([ex.prepare(image) for image in images])
        unpadded = np.concatenate([ex._forward(prepared[i : i + 1]) for i in range(8)])
        torch.set_num_threads(1)
        one_thread = ex.transform(images)
        torch.set_num_threads(2)
        out[name] = {
            "featkit": float(np.abs(alone - together).max()),
            "one_thread": float(np.abs(one_thread - together).max()),
            "unpadded": float(np.abs(unpadded - together).max()),
        }
    print(json.dumps(out))
    """
)


def _has_avx512() -> bool:
    try:
        return "avx512f" in Path("/proc/cpuinfo").read_text()
    except OSError:
        return False


@pytest.mark.skipif(not _has_avx512(), reason="oneDNN's AVX512_CORE kernels need AVX-512")
def test_rows_do_not_depend_on_the_batch_with_batch_dependent_kernels(tmp_path):
    """oneDNN's AVX512_CORE bf16 kernels pick the ViT's matmul blocking by the batch (as
    the AMX ones do): without padding a pass of 1 differs from a pass of 8; with it, not,
    and not with one thread either."""
    models = {
        "vit_small": {"model": "vit_small_patch16_224", "pretrained": False, "image_size": 64},
        "efficientnet_lite0": {"image_size": 96},
    }
    script = tmp_path / "isa.py"
    script.write_text(ISA_SCRIPT)
    env = {k: v for k, v in os.environ.items() if not k.endswith("_NUM_THREADS")}
    env["ONEDNN_MAX_CPU_ISA"] = "AVX512_CORE"  # (Dask's LocalCluster sets OMP_NUM_THREADS=1)
    run = subprocess.run(
        [sys.executable, str(script), json.dumps(models)],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    found = json.loads(run.stdout.strip().splitlines()[-1])
    for name, diffs in found.items():
        assert diffs["featkit"] == 0.0 and diffs["one_thread"] == 0.0, (name, diffs)
    if found["vit_small"]["unpadded"] == 0.0:
        pytest.skip(
            "this torch's AVX512_CORE kernels no longer depend on the batch: the padded "
            "rows are identical, but the check has nothing to catch"
        )


def _folder(root: Path, n: int) -> Path:
    for i, image in enumerate(_images(n, seed=3)):
        folder = root / ("a" if i % 2 else "b")
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(image).save(folder / f"{i:03d}.png")
    return root


@needs_bf16
def test_bf16_engine_rows_do_not_depend_on_chunks_or_workers(tmp_path):
    folder = _folder(tmp_path / "images", 21)
    extractor = _create(MODELS["vit_small"], precision="bf16", batch_size=4, device="cpu")
    reference = extractor.transform(sorted(str(p) for p in folder.rglob("*.png")))
    order = None
    for n_jobs, batch_size in [(1, 64), (1, 5), (2, 3)]:
        fs = featkit.extract(
            extractor, folder, n_jobs=n_jobs, batch_size=batch_size, progress=False
        )
        if order is None:
            order = np.argsort([str(i) for i in fs.ids])
        np.testing.assert_array_equal(fs.X[order], reference, err_msg=f"{n_jobs=} {batch_size=}")


@needs_bf16
def test_a_bf16_run_resumed_after_an_interrupt_equals_a_clean_run(tmp_path):
    folder = _folder(tmp_path / "images", 23)
    extractor = _create(MODELS["efficientnet_lite0"], precision="bf16", device="cpu")
    cache = tmp_path / "cache"
    arrived = []

    def interrupt(done: int, total: int) -> None:
        arrived.append(done)
        if len(arrived) == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        featkit.extract(
            extractor, folder, cache_dir=cache, batch_size=5, n_jobs=1, on_chunk=interrupt
        )
    # The rest is computed in other chunks (of 7, each ending on a padded pass).
    resumed = featkit.extract(extractor, folder, cache_dir=cache, batch_size=7, n_jobs=1)
    assert resumed.provenance["cache"]["cached_images"] == 10
    assert resumed.provenance["cache"]["computed_images"] == 13
    clean = featkit.extract(extractor, folder, cache_dir=tmp_path / "clean", n_jobs=1)
    assert resumed.ids.tolist() == clean.ids.tolist()
    np.testing.assert_array_equal(resumed.X, clean.X)

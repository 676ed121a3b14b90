"""extract(backend="dask") on a real dask.distributed LocalCluster of two worker processes:
the same features as a local run, a dead worker loses nothing, an interrupted run resumes
with only the chunks that never arrived."""

from __future__ import annotations

import logging
import os
import signal
import threading
import time

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

import featkit
from featkit.cli import cli
from tests.extractors_for_tests import SlowPixels

distributed = pytest.importorskip("distributed")

N_IMAGES = 500


@pytest.fixture(scope="module")
def cluster():
    """Two single-threaded worker processes, which can import this test package."""
    with pytest.MonkeyPatch.context() as mp:
        repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
        mp.setenv("PYTHONPATH", os.pathsep.join([repo, os.environ.get("PYTHONPATH", "")]))
        mp.setenv("OPENBLAS_NUM_THREADS", "1")
        local = distributed.LocalCluster(
            n_workers=2,
            threads_per_worker=1,
            processes=True,
            dashboard_address=None,
            silence_logs=logging.CRITICAL,
        )
    with local, distributed.Client(local, set_as_default=False) as client:
        yield local, client


@pytest.fixture(scope="module")
def folder(tmp_path_factory, digit_images_module):
    """500 digits as 32x32 PNGs in class folders, and one file that is not an image."""
    images, labels = digit_images_module
    root = tmp_path_factory.mktemp("digits500")
    for i in range(N_IMAGES):
        (root / str(labels[i])).mkdir(exist_ok=True)
        big = np.kron(images[i], np.ones((4, 4), np.uint8))
        Image.fromarray(big).save(root / str(labels[i]) / f"{i:04d}.png")
    (root / "3" / "broken.png").write_bytes(b"not a png")
    return root


@pytest.fixture(scope="module")
def digit_images_module():
    from sklearn.datasets import load_digits

    digits = load_digits()
    return (digits.images * 16).clip(0, 255).astype(np.uint8), digits.target


HOG = {"size": (32, 32), "pixels_per_cell": (4, 4)}


def test_dask_extraction_equals_a_local_run(cluster, folder):
    local, client = cluster
    extractor = featkit.create_extractor("hog", **HOG)
    here = featkit.extract(extractor, folder, n_jobs=1, progress=False)
    there = featkit.extract(
        extractor, folder, backend="dask", scheduler=client, batch_size=32, progress=False
    )
    assert len(there) == N_IMAGES and len(there.failed) == 1
    assert "broken.png" in there.failed[0]["id"] and there.failed == here.failed
    assert there.ids.tolist() == here.ids.tolist()
    np.testing.assert_array_equal(there.X, here.X)
    engine = there.provenance["engine"]
    assert engine["backend"] == "dask" and engine["n_workers"] == 2
    assert engine["scheduler"] == local.scheduler_address
    # Both workers took part.
    assert len({w for w in client.run(os.getpid).values()}) == 2


def test_a_scheduler_address_works_like_a_client(cluster, folder):
    local, _ = cluster
    extractor = featkit.create_extractor("pixels", size=8)
    here = featkit.extract(extractor, folder, n_jobs=1, progress=False)
    there = featkit.extract(
        extractor, folder, backend="dask", scheduler=local.scheduler_address, progress=False
    )
    np.testing.assert_array_equal(there.X, here.X)


def test_a_store_extracted_on_the_cluster_equals_a_local_run(cluster, folder, tmp_path):
    """extract_to_store passes the Dask backend on: shards computed on the workers."""
    _, client = cluster
    extractor = featkit.create_extractor("pixels", size=8)
    here = featkit.extract(extractor, folder, n_jobs=1, progress=False)
    store = featkit.extract_to_store(
        extractor, folder, tmp_path / "s", shard_images=200, backend="dask", scheduler=client
    )
    assert store.n_shards == 3 and [f["id"] for f in store.failed] == [here.failed[0]["id"]]
    np.testing.assert_array_equal(np.concatenate([X for X, _ in store.batches()]), here.X)
    assert store.ids.tolist() == here.ids.tolist()


def test_a_worker_killed_mid_run_loses_no_chunk(cluster, folder):
    """SIGKILL one worker after the first chunks arrive: the scheduler runs its chunks on
    the other worker (the nanny restarts the dead one) and every image comes back."""
    _, client = cluster
    client.run(os.environ.__setitem__, "FEATKIT_TEST_DELAY", "0.05")
    victim = sorted(client.scheduler_info()["workers"])[0]
    killed = threading.Event()

    def kill_one_worker(done: int, total: int) -> None:
        if not killed.is_set() and done >= 3 * 16:
            pid = client.run(os.getpid, workers=[victim])[victim]
            os.kill(pid, signal.SIGKILL)
            killed.set()

    try:
        fs = featkit.extract(
            SlowPixels(size=8),
            folder,
            backend="dask",
            scheduler=client,
            batch_size=16,
            progress=False,
            on_chunk=kill_one_worker,
        )
    finally:
        client.run(os.environ.__setitem__, "FEATKIT_TEST_DELAY", "0")
        client.wait_for_workers(2, timeout=60)
    assert killed.is_set()
    reference = featkit.extract(featkit.create_extractor("pixels", size=8), folder, n_jobs=1)
    assert fs.ids.tolist() == reference.ids.tolist()
    np.testing.assert_array_equal(fs.X, reference.X)


def test_an_interrupted_run_resumes_with_only_the_missing_chunks(cluster, folder, tmp_path):
    _, client = cluster
    extractor = featkit.create_extractor("hog", **HOG)
    cache = tmp_path / "cache"
    arrived = []

    def interrupt(done: int, total: int) -> None:
        arrived.append(done)
        if len(arrived) == 4:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        featkit.extract(
            extractor,
            folder,
            backend="dask",
            scheduler=client,
            cache_dir=cache,
            batch_size=25,
            progress=False,
            on_chunk=interrupt,
        )
    # The cancelled run leaves nothing running on the cluster.
    deadline = time.monotonic() + 30
    while any(client.processing().values()) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not any(client.processing().values())
    resumed = featkit.extract(
        extractor, folder, backend="dask", scheduler=client, cache_dir=cache, batch_size=25
    )
    counts = resumed.provenance["cache"]
    assert counts["cached_images"] == 4 * 25
    assert counts["computed_images"] == N_IMAGES + 1 - 4 * 25  # the broken file too
    np.testing.assert_array_equal(
        resumed.X, featkit.extract(extractor, folder, n_jobs=1, progress=False).X
    )


def test_cli_extract_on_a_dask_cluster(cluster, folder, tmp_path):
    local, _ = cluster
    out = tmp_path / "features"
    result = CliRunner().invoke(
        cli,
        [
            "extract",
            "-e",
            "pixels",
            "-p",
            "size=8",
            "-d",
            str(folder),
            "-o",
            str(out),
            "--backend",
            "dask",
            "--scheduler",
            local.scheduler_address,
            "-q",
        ],
    )
    assert result.exit_code == 0, result.output
    fs = featkit.FeatureSet.load(out)
    assert len(fs) == N_IMAGES and fs.provenance["engine"]["backend"] == "dask"


def test_dask_arguments_are_checked_before_any_work(folder):
    pixels = featkit.create_extractor("pixels", size=8)
    with pytest.raises(featkit.InvalidParameterError, match="needs a scheduler"):
        featkit.extract(pixels, folder, backend="dask")
    with pytest.raises(featkit.InvalidParameterError, match="is for backend='dask'"):
        featkit.extract(pixels, folder, scheduler="tcp://127.0.0.1:1")
    with pytest.raises(featkit.InvalidParameterError, match="an address such as"):
        featkit.extract(pixels, folder, backend="dask", scheduler=8786)

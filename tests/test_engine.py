"""The batch engine: failures, parallel determinism, cache, resume after SIGKILL."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

import featkit
from featkit.cache import LAYOUT
from featkit.engine.runners import CHUNKS_PER_CORE, cut_by_cost
from tests.extractors_for_tests import (
    AlwaysFails,
    FailsOnBrightImages,
    SlowToRead,
    ThreadProbe,
)


def _corrupt_three(folder: Path) -> dict[str, str]:
    files = sorted(folder.rglob("*.png"))
    zero, truncated, text = files[5], files[50], files[120]
    zero.write_bytes(b"")
    data = truncated.read_bytes()
    truncated.write_bytes(data[: len(data) // 2])
    text.write_text("this is not an image")
    return {
        p.relative_to(folder).as_posix(): kind
        for p, kind in [(zero, "empty"), (truncated, "truncated"), (text, "not a recognised image")]
    }


def _chunk_manifests(cache: Path) -> list[Path]:
    """Committed chunk manifests: LAYOUT/extractor/config-key/<chunk>.json."""
    return sorted(p for p in cache.glob(f"{LAYOUT}/*/*/*.json") if p.name != "config.json")


def _reference_pixels(paths, size=16):
    """Pixels computed directly with PIL + OpenCV, independent of the engine."""
    import cv2
    from PIL import Image

    rows = []
    for p in paths:
        gray = np.asarray(Image.open(p).convert("RGB"), dtype=np.float32)
        luma = (gray @ np.array([0.299, 0.587, 0.114], dtype=np.float32)) / 255.0
        interp = cv2.INTER_AREA if luma.shape[0] > size else cv2.INTER_LINEAR
        rows.append(cv2.resize(luma, (size, size), interpolation=interp).reshape(-1))
    return np.stack(rows)


def test_corrupt_images_are_reported_and_skipped(digit_folder):
    expected_failures = _corrupt_three(digit_folder)
    fs = featkit.extract("pixels", featkit.load_dataset(digit_folder), n_jobs=1, progress=False)
    assert fs.X.shape == (197, 256)
    assert len(fs.failed) == 3
    failed = {f["id"]: f["reason"] for f in fs.failed}
    assert set(failed) == set(expected_failures)
    for ident, kind in expected_failures.items():
        assert kind in failed[ident], failed[ident]
        assert ident not in set(fs.ids.tolist())
    # Every kept row is right: compare with a direct computation.
    paths = [digit_folder / i for i in fs.ids]
    np.testing.assert_allclose(fs.X, _reference_pixels(paths), atol=2e-3)


def test_one_and_two_workers_give_identical_arrays(digit_folder):
    _corrupt_three(digit_folder)
    one = featkit.extract("pixels", digit_folder, n_jobs=1, batch_size=16, progress=False)
    two = featkit.extract("pixels", digit_folder, n_jobs=2, batch_size=16, progress=False)
    assert two.provenance["engine"]["n_workers"] == 2
    np.testing.assert_array_equal(one.X, two.X)
    np.testing.assert_array_equal(one.ids, two.ids)
    assert one.failed == two.failed


def test_workers_are_pinned_to_one_thread(digit_folder):
    fs = featkit.extract(ThreadProbe(), digit_folder, n_jobs=2, batch_size=20, progress=False)
    assert fs.provenance["engine"]["n_workers"] == 2
    assert fs.X.shape[1] == 3  # OpenCV, BLAS and torch threads
    assert (fs.X == 1).all(), np.unique(fs.X, axis=0)


def test_extraction_failure_of_one_image_is_isolated(digit_images):
    images = digit_images[0][:40].copy()
    images[7] = 255  # the one bright image
    fs = featkit.extract(FailsOnBrightImages(size=8), list(images), n_jobs=1, progress=False)
    assert len(fs) == 39
    assert [f["id"] for f in fs.failed] == ["images/07"]
    assert "extraction failed: ValueError: bright image" in fs.failed[0]["reason"]


def test_an_extractor_failing_on_every_image_raises(digit_images):
    images, _ = digit_images
    with pytest.raises(ValueError, match="broken extractor"):
        featkit.extract(AlwaysFails(), list(images[:20]), n_jobs=1, progress=False)


def test_cache_rerun_computes_nothing_and_matches(digit_folder, tmp_path):
    _corrupt_three(digit_folder)
    cache = tmp_path / "cache"
    first = featkit.extract(
        "pixels", digit_folder, cache_dir=cache, batch_size=32, n_jobs=1, progress=False
    )
    # The zero-byte file is refused by its size before any chunk: 199 images are computed.
    assert first.provenance["cache"]["computed_images"] == 199
    assert first.provenance["cache"]["chunks_computed"] == 7
    again = featkit.extract(
        "pixels", digit_folder, cache_dir=cache, batch_size=32, n_jobs=1, progress=False
    )
    assert again.provenance["cache"]["computed_images"] == 0
    assert again.provenance["cache"]["chunks_computed"] == 0
    assert again.provenance["cache"]["cached_images"] == 199  # + the zero-byte file, by size
    np.testing.assert_array_equal(first.X, again.X)
    assert first.failed == again.failed


def test_cache_is_keyed_by_content_not_path(digit_folder, tmp_path):
    cache = tmp_path / "cache"
    featkit.extract("pixels", digit_folder, cache_dir=cache, n_jobs=1, progress=False)
    moved = tmp_path / "renamed"
    digit_folder.rename(moved)
    for p in list(moved.rglob("*.png"))[:10]:
        p.rename(p.with_name("renamed_" + p.name))
    fs = featkit.extract("pixels", moved, cache_dir=cache, n_jobs=1, progress=False)
    assert fs.provenance["cache"]["computed_images"] == 0
    assert len(fs) == 200


def test_changed_parameter_invalidates_cache(digit_folder, tmp_path):
    cache = tmp_path / "cache"
    small = featkit.extract(
        featkit.create_extractor("pixels", size=8),
        digit_folder,
        cache_dir=cache,
        n_jobs=1,
        progress=False,
    )
    large = featkit.extract(
        featkit.create_extractor("pixels", size=12),
        digit_folder,
        cache_dir=cache,
        n_jobs=1,
        progress=False,
    )
    assert small.dim == 64 and large.dim == 144
    assert large.provenance["cache"]["cached_images"] == 0
    assert large.provenance["cache"]["computed_images"] == 200
    configs = list((cache / LAYOUT / "pixels").iterdir())
    assert len(configs) == 2


def test_new_images_are_the_only_ones_computed(digit_folder, tmp_path):
    cache = tmp_path / "cache"
    ds = featkit.load_dataset(digit_folder)
    featkit.extract("pixels", ds.subset(range(150)), cache_dir=cache, n_jobs=1, progress=False)
    fs = featkit.extract("pixels", ds, cache_dir=cache, n_jobs=1, progress=False)
    assert fs.provenance["cache"]["cached_images"] == 150
    assert fs.provenance["cache"]["computed_images"] == 50
    reference = featkit.extract("pixels", ds, n_jobs=1, progress=False)
    np.testing.assert_array_equal(fs.X, reference.X)


RESUMABLE_SCRIPT = textwrap.dedent(
    """
    import json, os, sys
    import featkit
    from tests.extractors_for_tests import SlowPixels

    folder, cache = sys.argv[1], sys.argv[2]
    os.environ["FEATKIT_TEST_DELAY"] = sys.argv[3]  # inherited by worker processes
    fs = featkit.extract(SlowPixels(), folder, cache_dir=cache, batch_size=10, n_jobs=1,
                         progress=False)
    print(json.dumps(fs.provenance["cache"]))
    """
)


def _complete_run(script: Path, folder: Path, cache: Path, env: dict[str, str]) -> dict:
    """Run the resumable script to the end (no delay); return its cache counts."""
    rerun = subprocess.run(
        [sys.executable, str(script), str(folder), str(cache), "0"],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(rerun.stdout.strip().splitlines()[-1])


def test_run_killed_with_sigkill_resumes_with_only_missing_chunks(digit_folder, tmp_path):
    script = tmp_path / "run.py"
    script.write_text(RESUMABLE_SCRIPT)
    cache = tmp_path / "cache"
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    proc = subprocess.Popen(
        [sys.executable, str(script), str(digit_folder), str(cache), "0.15"], env=env
    )

    def committed() -> int:
        return len(_chunk_manifests(cache))

    deadline = time.monotonic() + 60
    while committed() < 4 and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL
    done = committed()
    assert 4 <= done < 20, f"{done} chunks committed before the kill"

    stats = _complete_run(script, digit_folder, cache, env)
    assert stats["cached_images"] == 10 * done
    assert stats["chunks_computed"] == 20 - done
    assert stats["computed_images"] == 200 - 10 * done

    resumed = featkit.extract(
        "pixels", digit_folder, cache_dir=tmp_path / "fresh", n_jobs=1, progress=False
    )
    from tests.extractors_for_tests import SlowPixels

    final = featkit.extract(
        SlowPixels(), digit_folder, cache_dir=cache, batch_size=10, n_jobs=1, progress=False
    )
    assert final.provenance["cache"]["computed_images"] == 0
    np.testing.assert_array_equal(final.X, resumed.X)


def test_torn_chunk_files_are_ignored(digit_folder, tmp_path):
    cache = tmp_path / "cache"
    fs = featkit.extract(
        "pixels", digit_folder, cache_dir=cache, batch_size=50, n_jobs=1, progress=False
    )
    manifests = _chunk_manifests(cache)
    manifests[0].write_text('{"chunk": "trunc')  # a torn manifest: that chunk is recomputed
    (manifests[1].parent / ".leftover.npy.123.tmp").write_bytes(b"partial")
    again = featkit.extract(
        "pixels", digit_folder, cache_dir=cache, batch_size=50, n_jobs=1, progress=False
    )
    assert again.provenance["cache"]["computed_images"] == 50
    np.testing.assert_array_equal(again.X, fs.X)


def test_progress_callback_and_provenance(digit_folder):
    seen = []
    fs = featkit.extract(
        "pixels",
        digit_folder,
        n_jobs=1,
        batch_size=64,
        progress=False,
        on_chunk=lambda done, total: seen.append((done, total)),
    )
    assert seen == [(64, 200), (128, 200), (192, 200), (200, 200)]
    prov = fs.provenance
    assert prov["extractor"]["name"] == "pixels"
    assert prov["extractor"]["params"] == {"color": "gray", "decode": "reduced", "size": 16}
    assert prov["versions"]["featkit"] == featkit.__version__
    assert prov["dataset"]["n_images"] == 200
    assert prov["timing"]["seconds"] > 0


def test_in_memory_arrays_and_bad_batch_size(digit_images):
    images, labels = digit_images
    ds = featkit.Dataset.from_items(images[:30], labels[:30])
    fs = featkit.extract("pixels", ds, n_jobs=1, progress=False)
    direct = featkit.create_extractor("pixels").transform(images[:30])
    np.testing.assert_array_equal(fs.X, direct)
    np.testing.assert_array_equal(fs.y, labels[:30])
    with pytest.raises(featkit.InvalidParameterError, match="batch_size"):
        featkit.extract("pixels", ds, batch_size=0)


def test_progress_bar_on_request(digit_folder, capsys):
    featkit.extract("pixels", digit_folder, n_jobs=1, progress=True)
    err = capsys.readouterr().err
    assert "pixels" in err and "/200" in err and "img/s" in err
    featkit.extract("pixels", digit_folder, n_jobs=1, progress=False)
    assert capsys.readouterr().err == ""


def test_auto_mode_stays_in_process_for_a_quick_job(digit_folder):
    fs = featkit.extract("pixels", digit_folder, batch_size=20, progress=False)
    assert fs.provenance["engine"]["n_jobs"] is None
    assert fs.provenance["engine"]["n_workers"] == 1  # 200 tiny images: not worth 2 s of start-up


def test_auto_mode_uses_every_core_for_one_chunk_of_slow_images(digit_images):
    """40 images in one chunk of 64 that take 0.15 s each to read (12 MP photos): the job is
    cut by its measured cost, so both cores work (the second one idled before)."""
    images = list(digit_images[0][:40])
    fs = featkit.extract(SlowToRead(0.15), images, progress=False)  # batch_size=64
    assert fs.provenance["engine"]["n_workers"] == 2
    readers = set(fs.X[:, -1].astype(int).tolist())
    assert len(readers - {os.getpid()}) >= 2  # two worker processes read images
    alone = featkit.extract(SlowToRead(0.0), images, n_jobs=1, progress=False)
    np.testing.assert_array_equal(fs.X[:, :-1], alone.X[:, :-1])  # same rows, same order


def test_cut_by_cost_keeps_the_images_and_their_order():
    chunks = [list(range(64)), list(range(64, 100))]
    cut = cut_by_cost(chunks, n_workers=2, seconds_per_image=0.1)
    assert [p for c in cut for p in c] == list(range(100))
    # 100 images for 2 workers: at least CHUNKS_PER_CORE chunks each, none under 0.2 s.
    assert len(cut) >= 2 * CHUNKS_PER_CORE and all(len(c) >= 2 for c in cut)
    assert all(len(c) % 8 == 0 for c in cut_by_cost(chunks, 2, 0.1, multiple=8)[:-1])
    # Cheap images: chunks of 0.2 s would be larger than the ones asked for; kept as they are.
    assert cut_by_cost(chunks, n_workers=2, seconds_per_image=1e-4) == chunks


def test_pil_images_with_different_palettes_are_not_confused(tmp_path):
    from PIL import Image

    indices = np.arange(64, dtype=np.uint8).reshape(8, 8) % 4
    images = []
    for palette in (
        [255, 0, 0, 0, 255, 0, 0, 0, 255, 9, 9, 9],
        [9, 9, 9, 0, 0, 255, 0, 255, 0, 255, 0, 0],
    ):
        img = Image.fromarray(indices, mode="P")
        img.putpalette(palette + [0] * (768 - len(palette)))
        images.append(img)
    extractor = featkit.create_extractor("pixels", size=8, color="rgb")
    direct = extractor.transform(images)
    assert not np.array_equal(direct[0], direct[1])
    cache = tmp_path / "cache"
    featkit.extract(extractor, images[:1], cache_dir=cache, n_jobs=1, progress=False)
    fs = featkit.extract(extractor, images[1:], cache_dir=cache, n_jobs=1, progress=False)
    assert fs.provenance["cache"]["cached_images"] == 0
    np.testing.assert_array_equal(fs.X[0], direct[1])


def test_fifo_in_a_manifest_with_cache_is_reported_not_hung(digit_folder, tmp_path):
    fifo = tmp_path / "fifo.png"
    os.mkfifo(fifo)
    images = sorted(digit_folder.rglob("*.png"))[:5]
    manifest = tmp_path / "list.csv"
    manifest.write_text("path,label\n" + "".join(f"{p},x\n" for p in [*images, fifo]))
    fs = featkit.extract("pixels", manifest, cache_dir=tmp_path / "c", n_jobs=1, progress=False)
    assert len(fs) == 5
    assert [(f["source"], f["reason"]) for f in fs.failed] == [(str(fifo), "not a regular file")]


def test_systematic_failure_one_image_per_chunk_raises_and_is_not_cached(digit_folder, tmp_path):
    from tests.extractors_for_tests import BrokenOnEveryImage

    cache = tmp_path / "cache"
    with pytest.raises(featkit.FeatkitError, match="failed on all 16 readable images"):
        featkit.extract(
            BrokenOnEveryImage(),
            digit_folder,
            batch_size=1,
            cache_dir=cache,
            n_jobs=1,
            progress=False,
        )
    # Nothing about those images was remembered: a fixed extractor recomputes them all.
    fs = featkit.extract(
        featkit.create_extractor("pixels"), digit_folder, cache_dir=cache, n_jobs=1, progress=False
    )
    assert len(fs) == 200 and fs.provenance["cache"]["cached_images"] == 0


def test_extraction_failures_are_retried_on_a_rerun(digit_images, tmp_path):
    images = digit_images[0][:40].copy()
    images[7] = 255
    cache = tmp_path / "cache"
    first = featkit.extract(
        FailsOnBrightImages(size=8), list(images), cache_dir=cache, n_jobs=1, progress=False
    )
    again = featkit.extract(
        FailsOnBrightImages(size=8), list(images), cache_dir=cache, n_jobs=1, progress=False
    )
    assert len(first.failed) == len(again.failed) == 1
    assert again.provenance["cache"]["computed_images"] == 1  # retried, not read from cache


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"n_jobs": 0}, "n_jobs must not be 0"),
        ({"n_jobs": 1.5}, "n_jobs must be an integer"),
        ({"backend": "nope"}, "unknown joblib backend 'nope'"),
        ({"batch_size": 0}, "batch_size must be a positive integer"),
    ],
)
def test_invalid_engine_arguments_fail_before_any_work(kwargs, message, digit_images):
    with pytest.raises(featkit.InvalidParameterError, match=message):
        featkit.extract("pixels", list(digit_images[0][:5]), progress=False, **kwargs)


def test_cache_dir_expands_the_home_folder(digit_images, tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    featkit.extract(
        "pixels", list(digit_images[0][:5]), cache_dir="~/fk-cache", n_jobs=1, progress=False
    )
    assert (tmp_path / "fk-cache" / LAYOUT).is_dir()
    assert not Path("~").exists()


def test_sigkill_with_two_workers_at_an_arbitrary_moment(digit_folder, tmp_path):
    script = tmp_path / "run.py"
    script.write_text(RESUMABLE_SCRIPT.replace("n_jobs=1", "n_jobs=2"))
    cache = tmp_path / "cache"
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    proc = subprocess.Popen(
        [sys.executable, str(script), str(digit_folder), str(cache), "0.2"], env=env
    )
    # Kill while workers run, not right after a commit: wait for the first chunk, then a
    # delay that is not a multiple of a chunk's duration.
    deadline = time.monotonic() + 60
    while not _chunk_manifests(cache) and time.monotonic() < deadline:
        time.sleep(0.01)
    time.sleep(0.33)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    done = len(_chunk_manifests(cache))
    assert 1 <= done < 20
    stats = _complete_run(script, digit_folder, cache, env)
    assert stats["chunks_computed"] == 20 - done
    reference = featkit.extract("pixels", digit_folder, n_jobs=1, progress=False)
    from tests.extractors_for_tests import SlowPixels

    final = featkit.extract(
        SlowPixels(), digit_folder, cache_dir=cache, batch_size=10, n_jobs=1, progress=False
    )
    assert final.provenance["cache"]["computed_images"] == 0
    np.testing.assert_array_equal(final.X, reference.X)


def test_images_without_local_descriptors_are_counted_in_the_summary(tmp_path):
    from featkit.testing import sample_images

    images = sample_images(8)
    flat = [np.full((64, 64), 128, np.uint8), np.full((40, 50, 3), 7, np.uint8)]
    extractor = featkit.create_extractor("sift-bovw", n_words=4).fit(images)
    fs = featkit.extract(extractor, images[:3] + flat, n_jobs=1, progress=False)
    assert len(fs) == 5 and not fs.failed
    assert fs.provenance["counts"]["no_local_descriptors"] == 2  # the two flat images
    np.testing.assert_array_equal(fs.X[3:], 0)
    # The counts come back with the rows (also from workers), not through the extractor.
    rows, notes = extractor.transform_prepared_with_notes(extractor.prepare_many(flat))
    assert notes == {"no_local_descriptors": 2} and not rows.any()
    two = featkit.extract(extractor, (images[:3] + flat) * 4, n_jobs=2, batch_size=5)
    assert two.provenance["counts"]["no_local_descriptors"] == 8


class _SlowReader(featkit.Extractor):
    """A batched extractor whose reading dominates (sleeps) or whose model does."""

    batched = True

    def __init__(self, read_s: float = 0.0, model_s: float = 0.0) -> None:
        self.read_s = read_s
        self.model_s = model_s

    def prepare(self, image):
        time.sleep(self.read_s)
        return np.asarray(image, dtype=np.float32).reshape(-1)[:4]

    def _feature_dim(self) -> int:
        return 4

    def _transform(self, images):
        time.sleep(self.model_s * len(images))
        return np.asarray(images, dtype=np.float32).reshape(len(images), 4)


@pytest.mark.parametrize(
    ("read_s", "model_s", "workers"), [(0.02, 0.0005, True), (0.0, 0.01, False)]
)
def test_batched_extractor_gets_data_workers_only_when_reading_is_costly(read_s, model_s, workers):
    images = [np.full((4, 4), i, np.uint8) for i in range(24)]
    fs = featkit.extract(_SlowReader(read_s, model_s), images, batch_size=4)
    engine = fs.provenance["engine"]
    assert engine["runner"] == "dataloader"
    assert (engine["n_workers"] > 0) is workers, engine
    np.testing.assert_array_equal(fs.X[:, 0], np.arange(24, dtype=np.float32))


def test_a_batched_job_of_one_chunk_gets_data_workers_when_reading_is_slow():
    images = [np.full((4, 4), i, np.uint8) for i in range(24)]
    fs = featkit.extract(_SlowReader(0.05, 0.0005), images)  # one chunk of 64
    assert fs.provenance["engine"]["n_workers"] > 0
    np.testing.assert_array_equal(fs.X[:, 0], np.arange(24, dtype=np.float32))


def test_a_failed_cache_write_costs_the_cache_not_the_run(
    digit_folder, tmp_path, monkeypatch, caplog
):
    """The cache is written beside the loop (a writer thread): an error there disables the
    cache, says so, and the run still returns every row."""
    from featkit.cache import FeatureCache

    calls = []

    def broken(self, *args):
        if not self.writable:  # as FeatureCache.write does
            return None
        calls.append(1)
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(FeatureCache, "write", broken)
    fs = featkit.extract(
        "pixels", digit_folder, cache_dir=tmp_path / "c", batch_size=50, n_jobs=1, progress=False
    )
    reference = featkit.extract("pixels", digit_folder, n_jobs=1, progress=False)
    np.testing.assert_array_equal(fs.X, reference.X)
    assert len(calls) == 1  # disabled after the first failure
    assert "feature cache disabled after a failed write" in caplog.text


def test_array_hashes_are_of_the_bytes_and_a_subset_hashes_like_its_copy():
    import hashlib

    from featkit.cache import content_hash, content_hash_of_rows

    X = np.random.default_rng(0).standard_normal((300, 50)).astype(np.float32)
    digest = hashlib.sha256(b"ndarray:<f4:(300, 50)" + X.tobytes()).hexdigest()[:32]
    assert content_hash(X) == digest  # what caches written before were keyed by
    assert content_hash(X[:, ::2]) == content_hash(np.ascontiguousarray(X[:, ::2]))
    rows = np.random.default_rng(1).permutation(300)[:123]
    assert content_hash_of_rows(X, rows) == content_hash(X[rows])
    assert content_hash_of_rows(X, rows[:0]) == content_hash(X[:0])
    assert content_hash_of_rows(X, rows) != content_hash_of_rows(X, rows[::-1])

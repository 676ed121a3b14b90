"""Reduced-size decoding of large photos: speed, and how far features move from exact decoding.

Run: ``python benchmarks/decode.py PHOTOS [--n 40] [--rounds 2] [--upscaled 30]``.
``PHOTOS`` is a folder of large JPEGs; missing ones are made there by
``benchmarks/large_photos.py`` (4032 x 3024, quality 92, PACS photos upscaled with noise).

1. One photo at a time, one thread (best of ``--rounds``): PIL full decode, full decode +
   resize, PIL ``draft`` (libjpeg DCT scaling) + resize, OpenCV ``IMREAD_REDUCED_*``, and
   ``prepare()`` of hog and cnn in both modes; ``prepare()`` of PACS's 227-pixel images.
2. End to end, ``featkit.extract`` with its defaults (files to rows): images/s of ``hog``,
   ``lbp`` and ``cnn`` with ``decode="exact"`` and ``"reduced"``, and for ``cnn`` the
   ratio to the bare network on prepared tensors timed in the same round (as
   ``benchmarks/cnn.py``); also ``cnn`` with ``n_jobs=2``, and in chunks of 16 images.
3. ``cnn`` embeddings (fp32), reduced against exact: cosine on the large photos and on
   PACS (every domain), and how many PACS images are decoded reduced at all; ``hog`` and
   ``lbp`` rows likewise; ``cnn`` at each DCT scale it could keep (1/8, 1/4, 1/2); and
   large PNGs (``PHOTOS/png``: full decode, then ``cnn``'s reducing gap).
4. ``decode="device"`` (JPEGs decoded, resized and cropped by torch on ``--device``:
   nvJPEG on a GPU, libjpeg-turbo on the CPU): ``cnn`` (fp32) cosine to exact decoding on
   the large photos and PACS, and images/s end to end against the other modes.
5. PACS photo domain: whether ``hog``, ``dsift`` and ``cnn`` prepare its 227-pixel photos
   the same in both modes (then their rows and accuracies are the same); and accuracy,
   5-fold stratified linear SVM (C by inner 3-fold CV), exact against reduced, of
   ``hog``, ``dsift-vlad`` (codebook on the training folds) and ``cnn`` on ``--upscaled``
   photos per class of it made 12 MP by the generator (``PHOTOS/pacs-upscaled``), where
   the reduced path really runs.

Every ratio compares figures taken in the same run; the machine may be shared.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

import cv2
import numpy as np
from joblib import Parallel, delayed
from PIL import Image
from sklearn.base import clone
from sklearn.model_selection import GridSearchCV, StratifiedKFold
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.svm import LinearSVC

sys.path.insert(0, str(Path(__file__).resolve().parent))

import large_photos
import torch

import featkit
from featkit.io import read_image

PACS = large_photos.SHARED / "pacs150"
MODES = ("exact", "reduced")


def _best(fn, paths: list[Path], rounds: int) -> float:
    """Best mean milliseconds per photo over ``rounds`` passes."""
    best = float("inf")
    for _ in range(rounds):
        start = time.perf_counter()
        for p in paths:
            fn(p)
        best = min(best, (time.perf_counter() - start) / len(paths))
    return best * 1000


def _pil(path: Path, draft: tuple[int, int] | None = None) -> np.ndarray:
    with Image.open(path) as img:
        if draft is not None:
            img.draft(None, draft)
        return np.asarray(img.convert("RGB"))


def per_photo(paths: list[Path], rounds: int) -> None:
    cv2.setNumThreads(1)
    torch.set_num_threads(1)
    w, h = Image.open(paths[0]).size
    hog = {m: featkit.create_extractor("hog", decode=m) for m in MODES}
    cnn = {m: featkit.create_extractor("cnn", decode=m) for m in MODES}
    area = cv2.INTER_AREA
    rows = {
        "PIL full decode": lambda p: _pil(p),
        "PIL full decode + area resize to 256 x 256": lambda p: cv2.resize(
            _pil(p), (256, 256), interpolation=area
        ),
        "PIL draft 1/8 + area resize to 256 x 256": lambda p: cv2.resize(
            _pil(p, (w // 8, h // 8)), (256, 256), interpolation=area
        ),
        "PIL draft 1/4 + area resize to 256 x 256": lambda p: cv2.resize(
            _pil(p, (w // 4, h // 4)), (256, 256), interpolation=area
        ),
        "OpenCV IMREAD_REDUCED_COLOR_8 (file)": lambda p: cv2.imread(
            str(p), cv2.IMREAD_REDUCED_COLOR_8
        ),
        "OpenCV IMREAD_REDUCED_COLOR_4 (file)": lambda p: cv2.imread(
            str(p), cv2.IMREAD_REDUCED_COLOR_4
        ),
        "read_image(min_size=(256, 256)) (hog's reduced read)": lambda p: read_image(
            p, mode="gray", dtype=np.float32, min_size=(256, 256)
        ),
    }
    for m in MODES:
        rows[f"hog.prepare, decode={m!r}"] = hog[m].prepare
    for m in MODES:
        rows[f"cnn.prepare, decode={m!r}"] = cnn[m].prepare
    lbp = featkit.create_extractor("lbp")
    small = {p: lbp.prepare(p) for p in paths}
    rows["lbp.transform_prepared of the 128 x 128 image (no decoding)"] = lambda p: (
        lbp.transform_prepared([small[p]])
    )
    for ex in cnn.values():
        ex.prepare(paths[0])  # load the weights' preprocessing outside the timing
    print(f"\n| one {w} x {h} photo, one thread (best of {rounds}) | ms |\n|---|---:|")
    for label, fn in rows.items():
        print(f"| {label} | {_best(fn, paths, rounds):.1f} |")
    files = featkit.load_dataset(PACS).items
    pacs = list(files[:: max(1, len(files) // 500)][:500])
    print(f"\n| {len(pacs)} PACS images (227 px), one thread | exact ms | reduced ms |")
    print("|---|---:|---:|")
    for name in ("pixels", "hog", "lbp", "dsift", "cnn"):
        extractors = {m: featkit.create_extractor(name, decode=m) for m in MODES}
        got = {m: _best(ex.prepare, pacs, rounds) for m, ex in extractors.items()}
        print(f"| `{name}.prepare` | {got['exact']:.3f} | {got['reduced']:.3f} |")
    torch.set_num_threads(os.cpu_count() or 1)
    cv2.setNumThreads(-1)


def _extract_rate(extractor, paths: list[Path], **kw) -> float:
    start = time.perf_counter()
    featkit.extract(extractor, paths, progress=False, **kw)
    return len(paths) / (time.perf_counter() - start)


def end_to_end(paths: list[Path], rounds: int) -> None:
    import cnn as cnn_bench

    print(f"\n| featkit.extract, {len(paths)} photos, defaults | exact img/s | reduced img/s |")
    print("|---|---:|---:|")
    for name in ("hog", "lbp"):
        rates = {m: [] for m in MODES}
        for _ in range(rounds):
            for m in MODES:
                rates[m].append(_extract_rate(featkit.create_extractor(name, decode=m), paths))
        e, r = max(rates["exact"]), max(rates["reduced"])
        print(f"| `{name}` | {e:.1f} | {r:.1f} ({r / e:.1f}x) |")

    extractors = {m: featkit.create_extractor("cnn", decode=m) for m in MODES}
    ex = extractors["reduced"]
    _ = ex.feature_dim  # the network is loaded before timing, as in a long run
    prep = ex.preprocessing()
    batch_n = ex.resolved_batch_size()
    uint8 = np.stack([ex.prepare(p) for p in paths[:batch_n]])
    mean = torch.tensor(prep.mean).view(1, 3, 1, 1)
    std = torch.tensor(prep.std).view(1, 3, 1, 1)
    batch = (torch.from_numpy(uint8).permute(0, 3, 1, 2).float() / 255 - mean) / std
    device = ex._device()
    bare = cnn_bench._bare(ex.model, device, batch, 200)
    best = max(bare, key=bare.get)
    print(
        f"\n`cnn` ({ex.model}, {ex.resolved_precision()}, passes of {batch_n}): bare network "
        f"on prepared tensors, best configuration {best} {bare[best]:.1f} images/s"
    )
    # The defaults make one chunk of 64 of 40 photos, read in this process; chunks of 16
    # let DataLoader workers read while the network runs.
    runs = [(m, None, 64) for m in MODES] + [("reduced", 2, 64)]
    runs += [(m, 2, 16) for m in MODES]
    results: dict[tuple[str, int | None, int], list[tuple[float, float]]] = {r: [] for r in runs}
    for _ in range(rounds):
        for mode, n_jobs, batch_size in runs:
            # the bare network right before each run: the machine's speed drifts
            reference = cnn_bench._bare(ex.model, device, batch, 200, best)[best]
            ips = _extract_rate(extractors[mode], paths, n_jobs=n_jobs, batch_size=batch_size)
            results[(mode, n_jobs, batch_size)].append((ips, ips / reference))
    print(
        f"\n| `cnn` end to end, {len(paths)} photos, {rounds} rounds | images/s (best) "
        f"| ratio to the bare network in the same round (median) |\n|---|---:|---:|"
    )
    for (mode, n_jobs, batch_size), got in results.items():
        label = f"decode={mode!r}, n_jobs={n_jobs}, batch_size={batch_size}"
        ratio = statistics.median(r for _, r in got)
        print(f"| {label} | {max(i for i, _ in got):.1f} | {ratio:.3f} |")


def _cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a, b = a.astype(np.float64), b.astype(np.float64)
    return (a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))


def _prepared(extractor, paths: list, n_jobs: int = 2) -> list[np.ndarray]:
    return Parallel(n_jobs=n_jobs)(delayed(extractor.prepare)(p) for p in paths)


def cnn_cosines(photos: list[Path], pacs: list[Path]) -> None:
    exact = featkit.create_extractor("cnn", decode="exact", precision="fp32")
    reduced = featkit.create_extractor("cnn", precision="fp32")
    print("\n| `cnn` (fp32) reduced vs exact | images | reduced decodes | cosine mean | min |")
    print("|---|---:|---:|---:|---:|")
    for label, paths in (("large photos", photos), ("PACS, every domain", pacs)):
        a = _prepared(exact, paths)
        b = _prepared(reduced, paths)
        differ = sum(not np.array_equal(x, y) for x, y in zip(a, b, strict=True))
        cos = _cosines(exact.transform_prepared(a), reduced.transform_prepared(b))
        print(f"| {label} | {len(paths)} | {differ} | {cos.mean():.5f} | {cos.min():.5f} |")


def device_decoding(photos: list[Path], pacs: list[Path], rounds: int, device: str) -> None:
    """decode="device": JPEGs decoded, resized and cropped by torch on ``device`` (nvJPEG on
    a GPU): cosine to exact decoding (fp32), and images/s end to end against "reduced" in
    the same round."""
    from featkit.extractors.device_decode import jpeg_backend

    kw = {"precision": "fp32", "device": device}
    exact = featkit.create_extractor("cnn", decode="exact", **kw)
    on_device = featkit.create_extractor("cnn", decode="device", **kw)
    print(
        f"\n| `cnn` (fp32) decode='device' ({jpeg_backend()} on {device}) vs exact "
        "| images | cosine mean | min |\n|---|---:|---:|---:|"
    )
    for label, paths in (("large photos", photos), ("PACS, every domain", pacs)):
        cos = _cosines(exact.transform(paths), on_device.transform(paths))
        print(f"| {label} | {len(paths)} | {cos.mean():.5f} | {cos.min():.5f} |")
    modes = {m: featkit.create_extractor("cnn", decode=m, device=device) for m in MODES}
    modes["device"] = featkit.create_extractor("cnn", decode="device", device=device)
    _ = modes["device"].feature_dim  # the network loaded before timing
    print(
        f"\n| `cnn` end to end, {rounds} rounds (best), n_jobs=None | "
        + " | ".join(f"{m} img/s" for m in modes)
        + " |\n|---|"
        + "---:|" * len(modes)
    )
    for label, paths in (("large photos", photos), ("PACS", pacs)):
        rates = {m: max(_extract_rate(e, paths) for _ in range(rounds)) for m, e in modes.items()}
        print(f"| {label} | " + " | ".join(f"{r:.1f}" for r in rates.values()) + " |")


def feature_moves(photos: list[Path], png_dir: Path, rounds: int) -> None:
    """How far rows move: hog and lbp at the reduced scale; cnn at each scale it could
    keep; cnn on large PNGs (full decode, then a reducing gap)."""
    print("\n| reduced vs exact rows, large photos | cosine mean | min |\n|---|---:|---:|")
    for name in ("hog", "lbp"):
        exact, reduced = (featkit.create_extractor(name, decode=m) for m in MODES)
        cos = _cosines(
            exact.transform_prepared(_prepared(exact, photos)),
            reduced.transform_prepared(_prepared(reduced, photos)),
        )
        print(f"| `{name}` ({len(photos)}) | {cos.mean():.5f} | {cos.min():.5f} |")

    cnn = featkit.create_extractor("cnn", decode="exact", precision="fp32")
    prep = cnn.preprocessing()
    few = photos[:16]
    w, h = Image.open(few[0]).size
    full = np.stack([prep(_pil(p)) for p in few])
    rows = cnn.transform_prepared(full)
    print(
        f"\n| `cnn` (fp32) on {len(few)} photos, scale kept | mean abs difference of the "
        "input (gray levels) | cosine mean | min | ms per photo, draft + resize |"
        "\n|---|---:|---:|---:|---:|"
    )
    for scale in (8, 4, 2):
        draft = (w // scale, h // scale)
        small = np.stack([prep(_pil(p, draft)) for p in few])
        cos = _cosines(rows, cnn.transform_prepared(small))
        ms = _best(lambda p, d=draft: prep(_pil(p, d)), few[:5], rounds)
        diff = np.abs(small.astype(np.float64) - full).mean()
        print(f"| 1/{scale} | {diff:.3f} | {cos.mean():.5f} | {cos.min():.5f} | {ms:.1f} |")

    png_dir.mkdir(parents=True, exist_ok=True)
    pngs = []
    for p in photos[:6]:
        png = png_dir / (p.stem + ".png")
        if not png.exists():
            Image.open(p).save(png, compress_level=6)
        pngs.append(png)
    reduced = featkit.create_extractor("cnn", precision="fp32")
    ms = {
        m: _best(featkit.create_extractor("cnn", decode=m).prepare, pngs[:3], rounds) for m in MODES
    }
    read = _best(read_image, pngs[:3], rounds)
    cos = _cosines(
        cnn.transform_prepared(_prepared(cnn, pngs)),
        reduced.transform_prepared(_prepared(reduced, pngs)),
    )
    mb = pngs[0].stat().st_size / 1e6
    print(
        f"\n{len(pngs)} of the photos as PNG ({mb:.0f} MB): read_image {read:.0f} ms; "
        f"cnn.prepare exact {ms['exact']:.0f} ms, reduced (reducing gap 2) "
        f"{ms['reduced']:.0f} ms; cosine mean {cos.mean():.5f}, min {cos.min():.5f}"
    )


def _svm() -> GridSearchCV:
    model = make_pipeline(StandardScaler(), LinearSVC(max_iter=5000, random_state=0))
    return GridSearchCV(model, {"linearsvc__C": [0.001, 0.01, 0.1, 1.0]}, cv=3, n_jobs=1)


def _accuracy(name: str, prepared: list[np.ndarray], labels: np.ndarray) -> tuple[float, float]:
    """5-fold accuracy of ``name`` + linear SVM on images prepared once (arrays at the
    extractor's size: preparing them again is a no-op); codebooks on the training folds."""
    cv = StratifiedKFold(n_splits=5, shuffle=True, random_state=0)
    extractor = featkit.create_extractor(name)
    X = None
    if not extractor.requires_fit:
        X = extractor.transform_prepared([extractor.prepare(p) for p in prepared])
    scores = []
    for train, test in cv.split(np.zeros(len(labels)), labels):
        if X is None or extractor.requires_fit:
            fitted = clone(extractor).fit([prepared[i] for i in train])
            X = fitted.transform(prepared)
        model = clone(_svm()).fit(X[train], labels[train])
        scores.append(model.score(X[test], labels[test]))
    return float(np.mean(scores)), float(np.std(scores))


def accuracy(upscaled_per_class: int, photos_dir: Path) -> None:
    data = featkit.load_dataset(PACS, domain="photo")
    labels = np.asarray(data.labels)
    names = {"hog": "hog", "dsift-vlad": "dsift", "cnn": "cnn"}
    # PACS's own 227-pixel photos: when every image is prepared the same in both modes the
    # rows, hence the accuracies, are the same; only that is checked here.
    print("\n| PACS photo, 227 px (1,050) | prepared images equal in both modes |\n|---|---:|")
    for name, reader in names.items():
        prepared = {
            m: _prepared(featkit.create_extractor(reader, decode=m), data.items) for m in MODES
        }
        pairs = zip(prepared["exact"], prepared["reduced"], strict=True)
        same = sum(np.array_equal(a, b) for a, b in pairs)
        print(f"| `{name}` | {same} of {len(data)} |")
    if not upscaled_per_class:
        return
    keep = np.concatenate(
        [np.flatnonzero(labels == c)[:upscaled_per_class] for c in np.unique(labels)]
    )
    sources = [Image.open(data.items[i]).convert("RGB") for i in keep]
    started = time.perf_counter()
    items = large_photos.write_photos(photos_dir / "pacs-upscaled", len(keep), sources=sources)
    y = labels[keep]
    print(f"\n({len(items)} upscaled photos ready in {time.perf_counter() - started:.0f} s)")
    print(
        f"\n| PACS photo upscaled to 4032 x 3024 ({len(items)}) | exact accuracy | reduced "
        "accuracy | mean abs difference of the prepared images (gray levels) |\n"
        "|---|---:|---:|---:|"
    )
    for name, reader in names.items():
        prepared = {m: _prepared(featkit.create_extractor(reader, decode=m), items) for m in MODES}
        scale = 255.0 if prepared["exact"][0].dtype == np.float32 else 1.0
        diff = np.mean(
            [
                np.abs(a.astype(np.float64) - b).mean() * scale
                for a, b in zip(prepared["exact"], prepared["reduced"], strict=True)
            ]
        )
        got = {m: _accuracy(name, prepared[m], y) for m in MODES}
        print(
            f"| `{name}` | {got['exact'][0]:.4f} +- {got['exact'][1]:.4f} | "
            f"{got['reduced'][0]:.4f} +- {got['reduced'][1]:.4f} | {diff:.3f} |"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("photos", type=Path, help="folder of large JPEGs (made when missing)")
    parser.add_argument("--n", type=int, default=40, help="large photos for the timings")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--pacs-n", type=int, default=280, help="PACS images for the cosines")
    parser.add_argument(
        "--upscaled", type=int, default=30, help="photos per class upscaled (0: none)"
    )
    parser.add_argument(
        "--skip", default="", help="parts to skip: time,extract,cosine,device,accuracy"
    )
    parser.add_argument("--device", default="auto", help="of decode='device' (auto, cuda, cpu)")
    args = parser.parse_args()
    skip = set(args.skip.split(","))
    started = time.perf_counter()
    photos = large_photos.write_photos(args.photos, args.n)
    mb = sum(p.stat().st_size for p in photos) / len(photos) / 1e6
    print(
        f"{len(photos)} photos in {args.photos}, {mb:.1f} MB each; {os.cpu_count()} cores, "
        f"torch {torch.__version__} ({torch.get_num_threads()} threads)"
    )
    if "time" not in skip:
        per_photo(photos[:10], args.rounds)
    if "extract" not in skip:
        end_to_end(photos, args.rounds)
    files = featkit.load_dataset(PACS).items
    pacs = list(files[:: max(1, len(files) // args.pacs_n)][: args.pacs_n])
    if "cosine" not in skip:
        cnn_cosines(photos, pacs)
        feature_moves(photos, args.photos / "png", args.rounds)
    if "device" not in skip:
        device_decoding(photos, pacs, args.rounds, args.device)
    if "accuracy" not in skip:
        accuracy(args.upscaled, args.photos)
    print(f"\n({time.perf_counter() - started:.0f} s in all)")


if __name__ == "__main__":
    main()

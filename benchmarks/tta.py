"""Test-time augmentation of the ``cnn`` extractor (``tta``) on PACS: accuracy and speed.

``cnn`` at its defaults (EfficientNet-Lite0, ImageNet weights, 224 px, pooled 1280-d,
precision auto) with ``tta`` = none, flip, five-crop (each a separate feature config):

1. In-domain: PACS photo and sketch (``--domains``), the 5-fold stratified splits and the
   standardised linear SVM (C by inner 3-fold CV) of ``cnn_accuracy.py``; accuracy per
   mode, its paired per-fold difference to "none", and the extraction's images/s (when
   the features were computed, not read from the cache; the network warmed up first).
2. Domain shift: the 12 ordered pairs of PACS domains with ``featkit.evaluate.adapt``,
   aligners none and coral, the ``svm`` preset (as the PACS table of docs/benchmarks.md:
   none + svm 49.5, coral + svm 64.7 on average without tta); the accuracy per shift and
   its difference to tta="none".

Features and scores are cached in ``--cache-dir``, so a rerun (another ``--modes``) only
computes what is new. Run::

    python benchmarks/tta.py                              # none, flip, five-crop
    python benchmarks/tta.py --modes none,flip --skip-pairs
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.model_selection import StratifiedKFold

import featkit
from featkit.evaluate import adapt

sys.path.insert(0, str(Path(__file__).resolve().parent))
from cnn_accuracy import fit_score  # the PACS protocol of cnn_accuracy.py
from handcrafted_accuracy import linear_svm

WARMUP = 16  # images through a new config before timing: model load, kernels, workers


def default_pacs() -> Path:
    shared = os.environ.get("FEATKIT_SHARED_DATA")
    root = Path(shared) if shared else Path(__file__).resolve().parents[1].parent / "shared/data"
    return root / "pacs150"


def in_domain(
    data_root: Path, domain: str, modes: list[str], cache: Path, folds: int
) -> dict[str, tuple[list[float], float | None]]:
    """Per mode: the linear SVM's accuracy per fold and the images/s (None when cached)."""
    data = featkit.load_dataset(data_root, domain=domain)
    cv = StratifiedKFold(n_splits=folds, shuffle=True, random_state=0)
    splits = list(cv.split(np.zeros(len(data)), data.labels))
    out: dict[str, tuple[list[float], float | None]] = {}
    for mode in modes:
        extractor = featkit.create_extractor("cnn", tta=mode)
        featkit.extract(extractor, data.subset(np.arange(WARMUP)), progress=False)  # untimed
        started = time.perf_counter()
        features = featkit.extract(extractor, data, cache_dir=cache, progress=False)
        seconds = time.perf_counter() - started
        if features.failed:
            raise RuntimeError(f"{len(features.failed)} images failed: {features.failed[:3]}")
        computed = features.provenance["cache"]["cached_images"] == 0
        rate = len(data) / seconds if computed else None
        scores = [
            fit_score(linear_svm, features.subset(tr), features.subset(te))[0] for tr, te in splits
        ]
        out[mode] = (scores, rate)
        speed = f"{rate:.1f} images/s" if rate else "cached"
        print(f"  {domain} tta={mode}: {np.mean(scores):.4f} +- {np.std(scores):.4f} ({speed})")
    return out


def print_in_domain(domain: str, n: int, results: dict[str, Any], folds: int) -> None:
    print(f"\nPACS {domain} ({n} images), {folds}-fold, cnn + linear SVM:")
    print(f"{'tta':<10} {'accuracy':>18} {'vs none (paired)':>20} {'img/s':>8} {'x none':>7}")
    base_scores, base_rate = results["none"]
    for mode, (scores, rate) in results.items():
        diff = np.asarray(scores) - np.asarray(base_scores)
        paired = f"{diff.mean():+.4f} +- {diff.std():.4f}" if mode != "none" else ""
        speed = f"{rate:8.1f}" if rate else f"{'cached':>8}"
        ratio = f"{base_rate / rate:6.2f}x" if rate and base_rate else ""
        acc = f"{np.mean(scores):.4f} +- {np.std(scores):.4f}"
        print(f"{mode:<10} {acc:>18} {paired:>20} {speed} {ratio:>7}")


def domain_pairs(data_root: Path, modes: list[str], cache: Path) -> dict[str, Any]:
    """Per mode: (shift names, [(method, accuracies per shift + average)]) and seconds."""
    out = {}
    for mode in modes:
        started = time.perf_counter()
        result = adapt(
            data=str(data_root),
            extractor=featkit.create_extractor("cnn", tta=mode),
            aligners=["none", "coral"],
            classifiers=["svm"],
            cache_dir=cache,
            view=None,
            progress=False,
        )
        seconds = time.perf_counter() - started
        out[mode] = (result.pair_matrix(), seconds)
        print(f"  adapt tta={mode}: {seconds:.0f} s")
    return out


def print_pairs(results: dict[str, Any]) -> None:
    shifts, _ = results["none"][0]
    short = [_short(s) for s in shifts]
    print("\nPACS domain pairs (accuracy %), cnn + svm, train on the source, test on the target:")
    print(f"{'tta':<10} {'method':<18} " + " ".join(f"{s:>6}" for s in [*short, "avg"]))
    base = dict(results["none"][0][1])
    for mode, ((_, table), _) in results.items():
        for method, values in table:
            cells = " ".join(f"{100 * v:6.1f}" for v in values)
            print(f"{mode:<10} {method:<18} {cells}")
            if mode != "none":
                diff = 100 * (np.asarray(values) - np.asarray(base[method]))
                wins = int((diff[:-1] > 0).sum())
                cells = " ".join(f"{d:+6.1f}" for d in diff)
                print(f"{'':<10} {'  vs none':<18} {cells}  (better on {wins}/{len(shifts)})")


def _short(shift: str) -> str:
    """A shift's short name: art_painting→cartoon is A→C."""
    source, _, target = shift.partition("→")
    return f"{source[:1].upper()}→{target[:1].upper()}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, default=default_pacs())
    parser.add_argument("--modes", default="none,flip,five-crop")
    parser.add_argument("--domains", default="photo,sketch")
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--cache-dir", type=Path, default=Path("/tmp/featkit-tta-cache"))
    parser.add_argument("--skip-in-domain", action="store_true")
    parser.add_argument("--skip-pairs", action="store_true")
    args = parser.parse_args()
    modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    if modes[0] != "none":
        modes.insert(0, "none")  # the reference of every difference
    extractor = featkit.create_extractor("cnn")
    print(
        f"cnn (efficientnet_lite0, 224 px, precision auto -> {extractor.resolved_precision()}, "
        f"passes of {extractor.resolved_batch_size()} views), {os.cpu_count()} cores; "
        f"tta modes: {', '.join(modes)}; cache {args.cache_dir}"
    )
    if not args.skip_in_domain:
        for domain in [d.strip() for d in args.domains.split(",") if d.strip()]:
            results = in_domain(args.data, domain, modes, args.cache_dir, args.folds)
            n = len(featkit.load_dataset(args.data, domain=domain))
            print_in_domain(domain, n, results, args.folds)
    if not args.skip_pairs:
        print_pairs(domain_pairs(args.data, modes, args.cache_dir))


if __name__ == "__main__":
    main()

"""Fine-tuning EfficientNet-Lite0 on one PACS domain against the frozen-feature linear probe.

One domain of ``../shared/data/pacs150`` (photo by default: 1,050 images, 7 classes) is
split per seed into ``--per-class`` training images per class and the rest as the test
set. On the same split and input size:

- ``probe``: the ``cnn`` extractor's frozen embeddings (fp32) and featkit's
  ``LinearProbe`` (logistic regression, C = 1.0), the baseline fine-tuning has to beat;
- ``FineTuner`` with ``strategy`` in head / last:2 / full, each with ``augment="none"`` and
  ``"light"`` (``--runs`` chooses, as ``strategy/augment``), ``--epochs`` epochs, the
  library's other defaults (AdamW, lr 1e-3, layer decay 0.75, one warm-up epoch, label
  smoothing 0.1, 10% validation split for the best epoch).

Reported per method: test accuracy (mean and std over the seeds) and seconds per fit.
Run: ``python benchmarks/finetune.py [--domain photo] [--per-class 20] [--image-size 64]
[--epochs 8] [--lr 1e-3] [--validation-fraction 0.1] [--seeds 0 1 2] [--runs head/none
full/light ...] [--n-jobs 1]``: 3-7 minutes on 2 CPU cores with ``--n-jobs 1``
(docs/benchmarks.md has the numbers). At 224 px with every image of a domain it is a GPU
job.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

import featkit
from featkit.classify import LinearProbe
from featkit.finetune import FineTuner
from featkit.finetune.loop import torch_threads

DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "pacs150"
PACS = Path(os.environ.get("FEATKIT_SHARED_DATA", DEFAULT_DATA.parent)) / "pacs150"


def split(domain: Path, per_class: int, seed: int) -> tuple[list, list, list, list]:
    """``per_class`` training images per class (seeded), the rest for testing."""
    rng = np.random.default_rng(seed)
    train, y_train, test, y_test = [], [], [], []
    for folder in sorted(p for p in domain.iterdir() if p.is_dir()):
        files = sorted(str(f) for f in folder.iterdir())
        order = rng.permutation(len(files))
        for rank, i in enumerate(order):
            (train if rank < per_class else test).append(files[i])
            (y_train if rank < per_class else y_test).append(folder.name)
    return train, y_train, test, y_test


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--domain", default="photo")
    parser.add_argument("--per-class", type=int, default=20)
    parser.add_argument("--image-size", type=int, default=64)
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--validation-fraction", type=float, default=0.1)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument(
        "--runs",
        nargs="+",
        default=[f"{s}/{a}" for s in ("head", "last:2", "full") for a in ("none", "light")],
        help="strategy/augment pairs",
    )
    parser.add_argument("--n-jobs", type=int, default=None, help="torch threads (None: torch's)")
    parser.add_argument("--test-limit", type=int, default=None, help="test images per seed")
    args = parser.parse_args()
    domain = PACS / args.domain
    if not domain.is_dir():
        sys.exit(f"no PACS domain at {domain} (set FEATKIT_SHARED_DATA)")

    results: dict[str, list[tuple[float, float]]] = {}
    for seed in args.seeds:
        train, y_train, test, y_test = split(domain, args.per_class, seed)
        if args.test_limit:
            keep = np.random.default_rng(seed).permutation(len(test))[: args.test_limit]
            test, y_test = [test[i] for i in keep], [y_test[i] for i in keep]
        print(f"seed {seed}: {len(train)} training, {len(test)} test images", flush=True)

        started = time.perf_counter()
        extractor = featkit.create_extractor("cnn", image_size=args.image_size, precision="fp32")
        with torch_threads(args.n_jobs):
            Xtr, Xte = extractor.transform(train), extractor.transform(test)
        probe = LinearProbe(C=1.0, n_jobs=args.n_jobs).fit(Xtr, y_train)
        accuracy = float(probe.score(Xte, y_test))
        _record(results, "probe (frozen cnn features)", accuracy, time.perf_counter() - started)

        for run in args.runs:
            strategy, augment = run.rsplit("/", 1)
            started = time.perf_counter()
            tuner = FineTuner(
                strategy=strategy,
                augment=augment,
                image_size=args.image_size,
                epochs=args.epochs,
                batch_size=args.batch_size,
                lr=args.lr,
                validation_fraction=args.validation_fraction,
                random_state=seed,
                n_jobs=args.n_jobs,
                num_workers=0,
            ).fit(train, y_train)
            seconds = time.perf_counter() - started
            accuracy = float(tuner.score(test, y_test))
            name = f"{strategy}, augment={augment} ({tuner.precision_})"
            _record(results, name, accuracy, seconds, tuner.n_epochs_)

    print(
        f"\nPACS {args.domain}, {args.per_class} training images per class, "
        f"{args.image_size} px, {args.epochs} epochs, batches of {args.batch_size}, "
        f"lr {args.lr}, validation {args.validation_fraction}, seeds {args.seeds}"
    )
    print("| method | test accuracy | s per fit | epochs run |\n|---|---:|---:|---|")
    for name, rows in results.items():
        acc = np.array([r[0] for r in rows])
        secs = np.array([r[1] for r in rows])
        epochs = ", ".join(str(r[2]) for r in rows) if rows[0][2] is not None else ""
        print(f"| {name} | {acc.mean():.3f} ± {acc.std():.3f} | {secs.mean():.0f} | {epochs} |")


def _record(
    results: dict, name: str, accuracy: float, seconds: float, epochs: int | None = None
) -> None:
    results.setdefault(name, []).append((accuracy, seconds, epochs))
    ran = "" if epochs is None else f", {epochs} epochs"
    print(f"  {name}: accuracy {accuracy:.3f} in {seconds:.1f} s{ran}", flush=True)


if __name__ == "__main__":
    main()

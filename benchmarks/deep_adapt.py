"""Deep domain adaptation (DANN, Deep CORAL, MMD) against shallow CORAL on the 12 PACS pairs.

For every ordered pair of PACS domains (``../shared/data/pacs150``: photo, art_painting,
cartoon, sketch; 7 classes) and every seed:

- a seeded sample of ``--per-class`` labelled source images per class trains, and as many
  unlabelled target images per class (labels unused) are the adaptation's target set;
  every target image is scored (the transductive protocol of the DA papers);
- ``coral + svm``: the frozen ``cnn`` embeddings (fp32, same input size), featkit's CORAL
  fitted on the source sample and the unlabelled target sample, the linear SVM preset;
  ``none + svm`` without CORAL;
- ``FineTuner(strategy, adapt=...)`` for each ``--methods`` entry ("none": fine-tuning on
  the source alone, the control), the same epochs, batch size and learning rate.

Prints one line per run as it goes, appends it to ``--out`` (JSON lines; a re-run skips
the runs already there, so it can be stopped and continued), then the table of the
averages over pairs with their seed spread, and the seconds per fit.

Run: ``python benchmarks/deep_adapt.py [--image-size 64] [--per-class 50] [--epochs 6]
[--methods none dann deep-coral] [--seeds 0 1 2] [--pairs photo:sketch ...] [--out
FILE]``; about 30 s per fine-tuning at the defaults on 2 CPU cores, 108 fits in all (an
hour). At 224 px and whole domains it is a GPU job.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

import featkit
from featkit.align import make_aligner
from featkit.classify import make_classifier
from featkit.finetune import FineTuner
from featkit.finetune.loop import torch_threads

DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
PACS = Path(os.environ.get("FEATKIT_SHARED_DATA", DEFAULT_DATA)) / "pacs150"
DOMAINS = ("photo", "art_painting", "cartoon", "sketch")


def domain_images(domain: str) -> tuple[list[str], np.ndarray]:
    paths, labels = [], []
    for folder in sorted(p for p in (PACS / domain).iterdir() if p.is_dir()):
        files = sorted(str(f) for f in folder.iterdir())
        paths += files
        labels += [folder.name] * len(files)
    return paths, np.array(labels)


def sample(labels: np.ndarray, per_class: int | None, seed: int) -> np.ndarray:
    """Seeded indices of ``per_class`` rows of each class (all of them for None)."""
    rng = np.random.default_rng(seed)
    rows = []
    for cls in np.unique(labels):
        idx = np.flatnonzero(labels == cls)
        rows += sorted(rng.permutation(idx)[:per_class].tolist())
    return np.array(sorted(rows))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--image-size", type=int, default=64)
    parser.add_argument("--per-class", type=int, default=50)
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--strategy", default="last:2")
    parser.add_argument("--augment", default="light")
    parser.add_argument("--adapt-weight", type=float, default=1.0)
    parser.add_argument("--methods", nargs="+", default=["none", "dann", "deep-coral"])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--pairs", nargs="+", default=None, help="source:target")
    parser.add_argument("--n-jobs", type=int, default=None, help="torch threads")
    parser.add_argument("--out", type=Path, default=Path("deep_adapt.jsonl"))
    args = parser.parse_args()
    if not PACS.is_dir():
        sys.exit(f"no PACS at {PACS} (set FEATKIT_SHARED_DATA)")
    pairs = (
        [tuple(p.split(":")) for p in args.pairs]
        if args.pairs
        else list(itertools.permutations(DOMAINS, 2))
    )
    setting = {
        k: getattr(args, k)
        for k in ("image_size", "per_class", "epochs", "batch_size", "lr", "strategy", "augment")
    }
    setting["adapt_weight"] = args.adapt_weight
    done = _done(args.out, setting)
    data = {d: domain_images(d) for d in DOMAINS}
    extractor = featkit.create_extractor("cnn", image_size=args.image_size, precision="fp32")
    features: dict[str, np.ndarray] = {}

    for seed, (source, target) in itertools.product(args.seeds, pairs):
        xs, ys = data[source]
        xt, yt = data[target]
        train = sample(ys, args.per_class, seed)
        unlabelled = sample(yt, args.per_class, seed + 1000)
        for method in ["none + svm", "coral + svm", *args.methods]:
            key = (source, target, seed, method)
            if key in done:
                continue
            started = time.perf_counter()
            if method.endswith("+ svm"):
                for domain in (source, target):
                    if domain not in features:
                        with torch_threads(args.n_jobs):
                            features[domain] = extractor.transform(data[domain][0])
                fs, ft = features[source][train], features[target]
                aligner = make_aligner(method.split(" + ")[0])
                if aligner is not None:
                    aligner.fit_domains(fs, ft[unlabelled], ys[train])
                    fs, ft = aligner.transform_source(fs), aligner.transform_target(ft)
                clf = make_classifier("svm", seed=seed).fit(fs, ys[train])
                accuracy = float(np.mean(clf.predict(ft) == yt))
                epochs_run = None
            else:
                tuner = FineTuner(
                    strategy=args.strategy,
                    augment=args.augment,
                    image_size=args.image_size,
                    epochs=args.epochs,
                    batch_size=args.batch_size,
                    lr=args.lr,
                    validation_fraction=0.0,  # no target labels to choose an epoch with
                    adapt=method,
                    adapt_weight=args.adapt_weight,
                    random_state=seed,
                    n_jobs=args.n_jobs,
                    num_workers=0,
                )
                target_images = None if method == "none" else [xt[i] for i in unlabelled]
                tuner.fit([xs[i] for i in train], ys[train], target_images=target_images)
                accuracy = float(tuner.score(xt, yt))
                epochs_run = tuner.n_epochs_
            seconds = time.perf_counter() - started
            row = {
                "source": source,
                "target": target,
                "seed": seed,
                "method": method,
                "accuracy": accuracy,
                "seconds": round(seconds, 1),
                **setting,
                "epochs_run": epochs_run,
            }
            print(json.dumps(row), flush=True)
            with args.out.open("a") as f:
                f.write(json.dumps(row) + "\n")
            done[key] = row

    _table(done, args.seeds, pairs)


def _done(path: Path, setting: dict) -> dict:
    """The runs of this setting already in ``path``."""
    done = {}
    if path.exists():
        for line in path.read_text().splitlines():
            row = json.loads(line)
            if all(row.get(k) == v for k, v in setting.items()):
                done[(row["source"], row["target"], row["seed"], row["method"])] = row
    return done


def _table(done: dict, seeds: list[int], pairs: list[tuple[str, str]]) -> None:
    methods = sorted({k[3] for k in done}, key=lambda m: (not m.endswith("svm"), m))
    short = {d: d[0].upper() for d in DOMAINS}
    header = " | ".join(f"{short[s]}→{short[t]}" for s, t in pairs)
    print(f"\n| method | {header} | average | s per fit |")
    print("|---|" + "---:|" * (len(pairs) + 2))
    for method in methods:
        cells, per_seed, secs = [], [], []
        for s, t in pairs:
            accs = [
                done[(s, t, seed, method)]["accuracy"]
                for seed in seeds
                if (s, t, seed, method) in done
            ]
            cells.append(f"{100 * np.mean(accs):.1f}" if accs else "")
        for seed in seeds:
            accs = [
                done[(s, t, seed, method)]["accuracy"]
                for s, t in pairs
                if (s, t, seed, method) in done
            ]
            if len(accs) == len(pairs):
                per_seed.append(100 * np.mean(accs))
        secs = [r["seconds"] for k, r in done.items() if k[3] == method]
        average = f"{np.mean(per_seed):.1f} ± {np.std(per_seed):.1f}" if per_seed else ""
        print(f"| {method} | {' | '.join(cells)} | {average} | {np.mean(secs):.0f} |")


if __name__ == "__main__":
    main()

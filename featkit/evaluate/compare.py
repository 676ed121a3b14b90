"""The compare job: extractors x classifiers on one data set, one honest holdout split."""

from __future__ import annotations

import csv
import json
import logging
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.base import clone

from featkit._version import __version__
from featkit.classify.presets import CLASSIFIER_DESCRIPTIONS, make_classifier
from featkit.data import Dataset, load_dataset
from featkit.engine import extract
from featkit.evaluate.metrics import classification_scores
from featkit.exceptions import ExtractorNotFoundError, PluginLoadError
from featkit.registry import create_extractor, list_extractors

logger = logging.getLogger(__name__)

#: Extractors compared by default, in this order, when they are installed.
DEFAULT_EXTRACTORS = ("pixels", "hog", "dsift-bovw", "cnn")
DEFAULT_CLASSIFIERS = ("knn", "svm", "logreg")
SUMMARY_KEYS = (
    "extractor",
    "classifier",
    "accuracy",
    "balanced_accuracy",
    "macro_f1",
    "dim",
    "extract_s",
    "fit_s",
    "predict_s",
)


@dataclass
class CompareResult:
    """Tidy result rows (one per extractor x classifier) with the run's provenance."""

    rows: list[dict[str, Any]]
    provenance: dict[str, Any]
    skipped: dict[str, str] = field(default_factory=dict)

    def ranked(self) -> list[dict[str, Any]]:
        """Rows sorted by accuracy, best first."""
        return sorted(self.rows, key=lambda r: (-r["accuracy"], r["extractor"], r["classifier"]))

    def table(self) -> str:
        """A plain-text table of the ranked rows."""
        header = (
            f"{'rank':>4}  {'extractor':<14} {'classifier':<8} {'accuracy':>8} "
            f"{'macro-F1':>8} {'dim':>6} {'extract s':>9} {'fit s':>7}"
        )
        lines = [header, "-" * len(header)]
        for i, r in enumerate(self.ranked(), start=1):
            lines.append(
                f"{i:>4}  {r['extractor']:<14} {r['classifier']:<8} {r['accuracy']:>8.4f} "
                f"{r['macro_f1']:>8.4f} {r['dim']:>6} {r['extract_s']:>9.2f} {r['fit_s']:>7.2f}"
            )
        return "\n".join(lines)

    def save(self, directory: str | os.PathLike) -> Path:
        """Write ``results.json``, ``results.csv`` and ``report.md`` into ``directory``."""
        out = Path(directory)
        out.mkdir(parents=True, exist_ok=True)
        payload = {"results": self.ranked(), "skipped": self.skipped, "provenance": self.provenance}
        (out / "results.json").write_text(json.dumps(payload, indent=2))
        with open(out / "results.csv", "w", newline="") as fh:
            writer = csv.DictWriter(fh, fieldnames=SUMMARY_KEYS)
            writer.writeheader()
            for r in self.ranked():
                writer.writerow({k: r[k] for k in SUMMARY_KEYS})
        (out / "report.md").write_text(self._markdown())
        return out

    def _markdown(self) -> str:
        data = self.provenance["dataset"]
        split = self.provenance["protocol"]
        lines = [
            f"# featkit compare: {data['name']}",
            "",
            f"{split['n_train']} training and {split['n_test']} test images "
            f"({split['description']}), {len(data['class_names'])} classes. "
            f"featkit {__version__}, seed {split['seed']}.",
            "",
            "| rank | extractor | classifier | accuracy | balanced acc. | macro-F1 | dim "
            "| extract (s) | fit (s) |",
            "|---:|---|---|---:|---:|---:|---:|---:|---:|",
        ]
        for i, r in enumerate(self.ranked(), start=1):
            lines.append(
                f"| {i} | {r['extractor']} | {r['classifier']} | {r['accuracy']:.4f} | "
                f"{r['balanced_accuracy']:.4f} | {r['macro_f1']:.4f} | {r['dim']} | "
                f"{r['extract_s']:.2f} | {r['fit_s']:.2f} |"
            )
        failed = {r["extractor"]: r["n_failed"] for r in self.rows if r["n_failed"]}
        for name, count in failed.items():
            lines += ["", f"{count} images could not be used by `{name}` and are not scored."]
        lines += ["", "Classifiers:", ""]
        used = sorted({r["classifier"] for r in self.rows})
        lines += [f"- `{c}`: {CLASSIFIER_DESCRIPTIONS.get(c, c)}" for c in used]
        if self.skipped:
            lines += ["", "Skipped:", ""]
            lines += [f"- `{name}`: {why}" for name, why in self.skipped.items()]
        return "\n".join(lines) + "\n"


def compare(
    data: str | os.PathLike | Dataset = "digits",
    extractors: Sequence[str] | None = None,
    classifiers: Sequence[str] = DEFAULT_CLASSIFIERS,
    *,
    test_size: float = 0.25,
    seed: int = 0,
    n_jobs: int | None = None,
    cache_dir: str | os.PathLike | None = None,
    progress: bool | None = None,
    log: Callable[[str], None] | None = None,
) -> CompareResult:
    """Extract features with each extractor, fit each classifier on the training split and
    score it on the test split (the data set's own split, else stratified and seeded).

    Extractors that are not installed are skipped and listed in ``CompareResult.skipped``.
    """
    say = log or logger.info
    dataset = data if isinstance(data, Dataset) else load_dataset(data)
    unlabelled = int((dataset.labels < 0).sum())
    if unlabelled:
        say(f"leaving out {unlabelled} unlabelled images: they can be neither trained nor scored")
        dataset = dataset.subset(dataset.labels >= 0)
    train, test = dataset.train_test_split(test_size=test_size, seed=seed)
    protocol = {
        "name": "holdout",
        "description": dataset.describe_split(test_size),
        "unlabelled_left_out": unlabelled,
        "seed": seed,
        "test_size": test_size,
        "n_train": len(train),
        "n_test": len(test),
    }
    for name in classifiers:
        make_classifier(name)  # unknown names fail now, not after the extraction
    available = set(list_extractors())
    if extractors is None:
        names = [e for e in DEFAULT_EXTRACTORS if e in available]
        skipped = {
            e: "not registered in this installation"
            for e in DEFAULT_EXTRACTORS
            if e not in available
        }
    else:
        names, skipped = list(extractors), {}
    rows: list[dict[str, Any]] = []
    configs = {}
    for name in names:
        try:
            extractor = create_extractor(name)
        except (ExtractorNotFoundError, PluginLoadError) as exc:
            skipped[name] = str(exc)
            say(f"skipping {name}: {exc}")
            continue
        if extractor.kind == "local":
            skipped[name] = f"local descriptors: compare an encoding of them, e.g. {name}-bovw"
            say(f"skipping {name}: {skipped[name]}")
            continue
        say(f"extracting {name} features of {len(dataset)} images")
        started = time.perf_counter()
        if extractor.requires_fit:
            extractor.fit(train)  # learned from the training images only
        kwargs = {"n_jobs": n_jobs, "cache_dir": cache_dir, "progress": progress}
        train_fs = extract(extractor, train, **kwargs)
        test_fs = extract(extractor, test, **kwargs)
        extract_s = time.perf_counter() - started
        n_failed = len(train_fs.failed) + len(test_fs.failed)
        if n_failed:
            say(f"  {n_failed} images could not be used by {name}; they are not scored")
        configs[name] = extractor.config
        for clf_name in classifiers:
            clf = clone(make_classifier(clf_name))
            t0 = time.perf_counter()
            clf.fit(train_fs.X, train_fs.y)
            t1 = time.perf_counter()
            pred = clf.predict(test_fs.X)
            t2 = time.perf_counter()
            scores = classification_scores(test_fs.y, pred, dataset.class_names)
            rows.append(
                {
                    "extractor": name,
                    "classifier": clf_name,
                    "dim": train_fs.dim,
                    "n_train": len(train_fs),
                    "n_test": len(test_fs),
                    "n_failed": n_failed,
                    "extract_s": round(extract_s, 3),
                    "fit_s": round(t1 - t0, 3),
                    "predict_s": round(t2 - t1, 3),
                    **scores,
                }
            )
            say(f"  {name} + {clf_name}: accuracy {scores['accuracy']:.4f}")
    provenance = {
        "featkit": __version__,
        "dataset": dataset.describe(),
        "protocol": protocol,
        "extractors": configs,
        "classifiers": {c: CLASSIFIER_DESCRIPTIONS.get(c, c) for c in classifiers},
        "seed": seed,
        "label_counts": np.bincount(dataset.labels[dataset.labels >= 0]).tolist(),
    }
    return CompareResult(rows=rows, provenance=provenance, skipped=skipped)

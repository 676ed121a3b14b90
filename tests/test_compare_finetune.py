"""``finetune`` as a classifier of compare: the row equals an independent fine-tuning on the
same split, follows compare's seed, is retrained rather than read from the score cache,
applies to cnn extractors only, and is refused where there are no images.

Small and on the CPU: 18 PACS sketches of 3 classes, EfficientNet-Lite0 at 32 px, three
epochs, one torch thread (the same seed gives the same weights at the same thread count).
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import numpy as np
import pytest
from sklearn.metrics import (
    accuracy_score,
    balanced_accuracy_score,
    confusion_matrix,
    f1_score,
)
from sklearn.model_selection import train_test_split

import featkit
from featkit.classify import FaissKNNClassifier, make_classifier
from featkit.classify.presets import FINETUNE_SETTINGS
from featkit.data import Dataset, load_dataset
from featkit.evaluate import compare, evaluate_features
from featkit.evaluate.image_learners import (
    learner_for_extractor,
    learns_from_images,
    score_images,
)
from featkit.evaluate.protocols import Split
from featkit.evaluate.scoring import resolve_classifiers, score_split
from featkit.exceptions import InvalidParameterError
from featkit.finetune import FineTuner
from featkit.finetune.loop import torch_threads
from tests.conftest import PACS, featkit_command, requires_pacs

#: Fast and deterministic: one thread, no data-loader workers, fp32.
TINY = {
    "strategy": "last:2",
    "augment": "light",
    "epochs": 3,
    "batch_size": 4,  # predicts all three classes (with 8 a single one)
    "lr": 3e-3,
    "validation_fraction": 0.0,
    "precision": "fp32",
    "num_workers": 0,
    "n_jobs": 1,
}


def _cnn() -> featkit.Extractor:
    return featkit.create_extractor("cnn", image_size=32, precision="fp32")


def copy_sketches(root: Path, n_classes: int = 3, per_class: int = 6) -> Path:
    """``root/<class>/*.png``: the first PACS sketches of the first classes."""
    requires_pacs()
    for folder in sorted((PACS / "sketch").iterdir())[:n_classes]:
        (root / folder.name).mkdir(parents=True)
        for f in sorted(folder.iterdir())[:per_class]:
            (root / folder.name / f.name).write_bytes(f.read_bytes())
    return root


@pytest.fixture(scope="module")
def sketches(tmp_path_factory: pytest.TempPathFactory) -> Dataset:
    return load_dataset(copy_sketches(tmp_path_factory.mktemp("sketches")))


def test_the_finetune_row_equals_an_independent_fine_tuning(sketches):
    tuner = FineTuner(**TINY)
    result = compare(
        sketches,
        extractors={"cnn": _cnn()},
        classifiers={"knn": FaissKNNClassifier(5, metric="cosine"), "finetune": tuner},
        view=None,
    )
    rows = {r.method: r for r in result.rows}
    assert set(rows) == {"cnn + knn", "cnn + finetune"}
    row = rows["cnn + finetune"]
    assert not hasattr(tuner, "model_")  # compare fitted a copy

    # Independent: the holdout's rule, the file paths and class names, a FineTuner of the
    # same settings on the extractor's network, scikit-learn's metrics.
    labels = sketches.labels
    train, test = train_test_split(
        np.arange(len(labels)), test_size=0.25, random_state=0, stratify=labels
    )
    train, test = np.sort(train), np.sort(test)
    names = np.asarray(sketches.class_names)
    mine = FineTuner(**TINY, image_size=32).fit(
        [sketches.items[i] for i in train], names[labels[train]]
    )
    pred = mine.predict([sketches.items[i] for i in test])
    truth = names[labels[test]]
    assert row.accuracy == accuracy_score(truth, pred)
    assert row.balanced_accuracy == balanced_accuracy_score(truth, pred)
    assert row.macro_f1 == f1_score(truth, pred, average="macro", labels=names, zero_division=0)
    assert row.confusion_matrix == confusion_matrix(truth, pred, labels=names).tolist()
    assert (row.n_train, row.n_test, row.dim) == (len(train), len(test), 1280)
    assert row.n_test == rows["cnn + knn"].n_test  # the same split as the feature rows
    assert row.extract_s == 0.0 and row.fit_s > 0 and row.predict_s > 0
    assert row.chosen == {}  # no validation split chose an epoch
    # The report's tables and files take it like any other row.
    summary = {s.method: s for s in result.summary()}
    assert summary["cnn + finetune"].accuracy == row.accuracy
    params = result.provenance["image_learners"]["cnn + finetune"]
    assert params["model"] == "efficientnet_lite0" and params["image_size"] == 32


def test_the_preset_follows_the_seed_and_is_retrained_not_cached(sketches, tmp_path):
    lines: list[str] = []
    runs = []
    with torch_threads(1):  # the preset uses torch's threads: the same count both times
        for _ in range(2):
            runs.append(
                compare(
                    sketches,
                    extractors={"cnn": _cnn()},
                    classifiers=["finetune"],
                    seed=3,
                    cache_dir=tmp_path,
                    view=None,
                    log=lines.append,
                )
            )
    first, again = ([dict(r) for r in run.rows] for run in runs)
    assert [r["classifier"] for r in first] == ["finetune"]
    without_times = [{k: v for k, v in r.items() if not k.endswith("_s")} for r in first]
    assert [{k: v for k, v in r.items() if not k.endswith("_s")} for r in again] == without_times
    assert sum("cnn + finetune [holdout]: training on" in line for line in lines) == 2
    assert "finetune: not cached, retrained on every run" in lines
    params = runs[0].provenance["image_learners"]["cnn + finetune"]
    assert params["random_state"] == 3  # compare's seed
    assert {k: params[k] for k in FINETUNE_SETTINGS} == FINETUNE_SETTINGS


def test_extractors_that_are_not_cnns_get_no_finetune_row_and_a_line(sketches):
    lines: list[str] = []
    result = compare(
        sketches,
        extractors=["pixels"],
        classifiers={"knn": FaissKNNClassifier(5), "finetune": FineTuner(**TINY)},
        view=None,
        log=lines.append,
    )
    assert [r.method for r in result.rows] == ["pixels + knn"]
    assert "finetune: no row for pixels (it fine-tunes a cnn extractor's network)" in lines
    with pytest.raises(InvalidParameterError, match="none of pixels is one"):
        compare(sketches, extractors=["pixels"], classifiers=["finetune"], view=None)


def test_the_learner_fine_tunes_the_extractors_network():
    cnn = featkit.create_extractor("cnn", model="efficientnet_lite1", image_size=48)
    lines: list[str] = []
    given = FineTuner(model="torchvision:resnet18", epochs=1)
    learner = learner_for_extractor(cnn, given, verbose=True, say=lines.append)
    assert learner is not given and given.model == "torchvision:resnet18"
    params = learner.get_params()
    assert (params["model"], params["image_size"], params["epochs"]) == (
        "efficientnet_lite1",
        48,
        1,
    )
    assert params["verbose"] is True
    assert len(lines) == 1 and "model='torchvision:resnet18'" in lines[0]
    assert "replaced by the extractor's model='efficientnet_lite1'" in lines[0]
    # Parameters left at their defaults are taken silently.
    assert learner_for_extractor(cnn, FineTuner(), say=lines.append).model == "efficientnet_lite1"
    assert len(lines) == 1
    assert learner_for_extractor(featkit.create_extractor("pixels"), given) is None


def test_learners_on_images_are_refused_where_there_are_only_features():
    assert learns_from_images(FineTuner()) and not learns_from_images(make_classifier("svm"))
    with pytest.raises(InvalidParameterError, match="trains a network on images"):
        resolve_classifiers(["knn", "finetune"])
    assert set(resolve_classifiers(["knn", "finetune"], images=True)) == {"knn", "finetune"}
    features = featkit.extract("pixels", "digits", progress=False)
    with pytest.raises(InvalidParameterError, match="'finetune' trains a network on images"):
        evaluate_features(features, classifiers=["finetune"], view=None)
    rows = np.arange(len(features))
    split = Split("holdout", rows[::2], rows[1::2], rows[::2])
    with pytest.raises(InvalidParameterError, match="use it in compare"):
        score_split(features, split, {"ft": FineTuner()}, protocol="holdout", extractor="x")


def test_cli_compare_with_finetune_end_to_end(tmp_path):
    data = copy_sketches(tmp_path / "data")
    out = tmp_path / "report"
    # One torch thread: the preset's fit is steady on a machine shared with other jobs.
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(
        [
            *featkit_command(), "compare", "--data", str(data), "--extractors", "pixels,cnn",
            "-p", "cnn.image_size=32", "--classifiers", "knn,finetune", "--out", str(out),
            "--no-plots",
        ],
        capture_output=True, text=True, timeout=600, env=env,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert "no row for pixels" in proc.stderr
    assert "cnn + finetune [holdout]: training on 13 images" in proc.stderr
    assert "finetune" in proc.stdout  # the ranking
    doc = json.loads((out / "results.json").read_text())
    methods = {(r["extractor"], r["classifier"]) for r in doc["summary"]}
    assert methods == {("pixels", "knn"), ("cnn", "knn"), ("cnn", "finetune")}
    (row,) = [r for r in doc["results"] if r["classifier"] == "finetune"]
    assert row["n_test"] == 5 and 0 <= row["accuracy"] <= 1
    assert "`finetune`: the cnn extractor's network fine-tuned" in (out / "report.md").read_text()


def test_score_images_gives_target_images_to_fit_for_deep_adaptation(sketches):
    """The path ``adapt`` can take: the test domain's images, unlabelled, go to ``fit``."""
    requires_pacs()
    photos = load_dataset(PACS / "photo")
    photos = photos.subset(np.isin(photos.labels, [0, 1, 2])).sample_per_class(3)
    targets = list(photos.items)
    rows = np.arange(len(sketches))
    split = Split("sketch→photo", rows[::2], rows[1::2], rows[::2], {"source": "s"})
    settings = {**TINY, "image_size": 32, "adapt": "deep-coral"}
    (row,) = score_images(
        sketches,
        split,
        {"finetune": FineTuner(**settings)},
        protocol="domains",
        extractor="cnn",
        aligner="deep-coral",
        target_images=targets,
    )
    assert row.method == "cnn + deep-coral + finetune" and row.source == "s"
    names = np.asarray(sketches.class_names)
    mine = FineTuner(**settings).fit(
        [sketches.items[i] for i in rows[::2]], names[sketches.labels[::2]], target_images=targets
    )
    assert mine.adapt_ == "deep-coral"
    pred = mine.predict([sketches.items[i] for i in rows[1::2]])
    truth = names[sketches.labels[1::2]]
    assert row.confusion_matrix == confusion_matrix(truth, pred, labels=names).tolist()
    # Without them the learner refuses to train: score_images must pass them on.
    with pytest.raises(InvalidParameterError, match="needs unlabelled target images"):
        score_images(
            sketches,
            split,
            {"finetune": FineTuner(**settings)},
            protocol="domains",
            extractor="cnn",
        )

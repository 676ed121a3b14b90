"""Deep domain adaptation in ``featkit adapt``: ``dann``, ``deep-coral`` and ``mmd`` sit
beside the shallow aligners on the same domain-pair matrix; each row equals an independent
FineTuner fitted on the source images towards the target images; ``finetune`` with the
``none`` aligner is plain fine-tuning (the control); misuse is a clear error; the command
line runs it.

Small and on the CPU: 12 PACS photos and 12 sketches of 3 classes, EfficientNet-Lite0 at
32 px, two epochs, one torch thread.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import numpy as np
import pytest
from sklearn.metrics import accuracy_score

import featkit
from featkit.data import load_dataset
from featkit.evaluate import adapt
from featkit.evaluate.adapt import make_adaptation
from featkit.exceptions import InvalidParameterError
from featkit.finetune import FineTuner
from tests.conftest import PACS, featkit_command, requires_pacs

TINY = {
    "strategy": "last:2",
    "augment": "light",
    "epochs": 2,
    "batch_size": 4,
    "lr": 3e-3,
    "validation_fraction": 0.0,
    "precision": "fp32",
    "num_workers": 0,
    "n_jobs": 1,
}


def copy_domains(root: Path, per_class: int = 4) -> Path:
    """``root/<domain>/<class>/*``: the first PACS photos and sketches of 3 classes."""
    requires_pacs()
    for domain in ("photo", "sketch"):
        for folder in sorted((PACS / domain).iterdir())[:3]:
            (root / domain / folder.name).mkdir(parents=True)
            for f in sorted(folder.iterdir())[:per_class]:
                (root / domain / folder.name / f.name).write_bytes(f.read_bytes())
    return root


@pytest.fixture(scope="module")
def domains(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return copy_domains(tmp_path_factory.mktemp("pacs"))


def _cnn() -> featkit.Extractor:
    return featkit.create_extractor("cnn", image_size=32, precision="fp32")


def test_deep_rows_equal_independent_fine_tuning(domains):
    result = adapt(
        domains,
        extractor=_cnn(),
        aligners={
            "none": None,
            "coral": make_adaptation("coral"),
            "deep-coral": FineTuner(**TINY, adapt="deep-coral"),
        },
        classifiers={"svm": featkit.classify.make_classifier("svm")},
        pairs=[("photo", "sketch")],
        view=None,
    )
    rows = {r.method: r for r in result.rows}
    assert set(rows) == {"cnn + svm", "cnn + coral + svm", "cnn + deep-coral + finetune"}
    row = rows["cnn + deep-coral + finetune"]
    assert (row.source, row.target) == ("photo", "sketch")
    assert row.n_test == rows["cnn + svm"].n_test == 12

    # Independent: the photo images with their labels, the sketches unlabelled, the same
    # settings on the extractor's network; scikit-learn's accuracy on the sketches.
    data = load_dataset(domains)
    names = np.asarray(data.class_names)
    source = data.domains == "photo"
    items = np.asarray(data.items, dtype=object)
    mine = FineTuner(**TINY, adapt="deep-coral", image_size=32)
    mine.fit(list(items[source]), names[data.labels[source]], target_images=list(items[~source]))
    truth = names[data.labels[~source]]
    assert row.accuracy == accuracy_score(truth, mine.predict(list(items[~source])))
    described = result.provenance["image_learners"]["cnn + deep-coral + finetune"]
    assert described["adapt"] == "deep-coral" and described["image_size"] == 32
    assert "FineTuner(adapt='deep-coral')" in result.provenance["aligners"]["deep-coral"]
    # The pair matrix and the ranking take the deep row like any other.
    assert "cnn + deep-coral + finetune" in result.pair_table()


def test_finetune_with_no_aligner_is_the_control(domains):
    result = adapt(
        domains,
        extractor=_cnn(),
        aligners={"none": None, "dann": FineTuner(**TINY, adapt="dann")},
        classifiers={"finetune": FineTuner(**TINY)},
        pairs=[("photo", "sketch")],
        view=None,
    )
    methods = sorted(r.method for r in result.rows)
    assert methods == ["cnn + dann + finetune", "cnn + finetune"]
    plain = next(r for r in result.rows if r.method == "cnn + finetune")
    data = load_dataset(domains)
    names = np.asarray(data.class_names)
    items = np.asarray(data.items, dtype=object)
    source = data.domains == "photo"
    mine = FineTuner(**TINY, image_size=32).fit(list(items[source]), names[data.labels[source]])
    truth = names[data.labels[~source]]
    assert plain.accuracy == accuracy_score(truth, mine.predict(list(items[~source])))


def test_presets_carry_the_finetune_settings_and_the_seed():
    dann = make_adaptation("dann", seed=7, epochs=3)
    assert isinstance(dann, FineTuner)
    assert (dann.adapt, dann.random_state, dann.epochs, dann.strategy) == (
        "dann",
        7,
        3,
        "last:2",
    )
    with pytest.raises(InvalidParameterError, match=r"dann: .*unexpected keyword"):
        make_adaptation("dann", epoch=3)


def test_misuse_is_clear(domains):
    with pytest.raises(InvalidParameterError, match="dann fine-tunes a cnn extractor's network"):
        adapt(domains, extractor="hog", aligners=["none", "dann"], pairs=[("photo", "sketch")])
    with pytest.raises(InvalidParameterError, match="finetune fine-tunes a cnn extractor's"):
        adapt(domains, extractor="hog", aligners=["none"], classifiers=["finetune"])
    with pytest.raises(InvalidParameterError, match="FineTuner without adapt"):
        adapt(domains, extractor=_cnn(), aligners={"mine": FineTuner()})


def test_the_command_line_runs_deep_methods(domains, tmp_path):
    out = tmp_path / "report"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    command = [
        *featkit_command(),
        "adapt",
        "--data",
        str(domains),
        "-e",
        "cnn",
        "-p",
        "image_size=32",
        "-p",
        "precision=fp32",
        "-a",
        "none,dann",
        "-A",
        "dann.epochs=1",
        "-A",
        "dann.batch_size=4",
        "-A",
        "dann.num_workers=0",
        "--classifiers",
        "knn",
        "--pairs",
        "photo:sketch",
        "--out",
        str(out),
        "--no-plots",
        "-q",
    ]
    done = subprocess.run(command, capture_output=True, text=True, env=env, check=False)
    assert done.returncode == 0, done.stderr
    saved = json.loads((out / "results.json").read_text())
    methods = {(row["aligner"], row["classifier"]) for row in saved["summary"]}
    assert methods == {("none", "knn"), ("dann", "finetune")}
    (dann,) = [row for row in saved["results"] if row["aligner"] == "dann"]
    assert (dann["classifier"], dann["source"], dann["target"]) == ("finetune", "photo", "sketch")
    assert 0.0 <= dann["accuracy"] <= 1.0 and dann["n_test"] == 12
    assert "cnn + dann + finetune" in (out / "report.md").read_text()

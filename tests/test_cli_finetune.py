"""``featkit finetune``: the saved backbone is the one the trainer makes from the same
settings (bitwise), its extractor gives the trainer's embeddings, held-out images are
scored, a re-run resumes, and mistakes give a clear error with exit code 2.

Small and on the CPU: 18 PACS sketches of 3 classes, EfficientNet-Lite0 at 32 px, two
epochs, one torch thread (bitwise equal weights need the same thread count).
"""

from __future__ import annotations

import csv
import inspect
import json
import shlex
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from safetensors.torch import load_file

import featkit
from featkit.cli import cli, parse_params
from featkit.cli.finetune import ADAPT_CHOICES, AUGMENT_CHOICES, finetune_command
from featkit.data import load_dataset
from featkit.finetune import AUGMENT_PRESETS, FineTuner, read_record
from featkit.finetune.domain import ADAPT_METHODS
from featkit.finetune.loop import torch_threads
from tests.conftest import PACS, featkit_command, requires_pacs
from tests.test_compare_finetune import copy_sketches

SETTINGS = {
    "strategy": "last:2",
    "augment": "light",
    "epochs": 2,
    "batch_size": 4,
    "lr": 3e-3,
    "image_size": 32,
    "validation_fraction": 0.25,
    "precision": "fp32",
    "random_state": 5,
}
ARGS = [
    "--strategy", "last:2", "--augment", "light", "--epochs", "2", "--batch-size", "4",
    "--lr", "3e-3", "--image-size", "32", "--validation-fraction", "0.25",
    "--precision", "fp32", "--seed", "5", "-j", "1", "--workers", "0",
]  # fmt: skip


@pytest.fixture(scope="module")
def sketches(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return copy_sketches(tmp_path_factory.mktemp("sketches"))


@pytest.fixture(scope="module")
def cli_run(sketches, tmp_path_factory) -> tuple[Path, dict, subprocess.CompletedProcess]:
    """``featkit finetune`` with a held-out quarter of the images, its JSON outcome."""
    out = tmp_path_factory.mktemp("run") / "out"
    args = ["finetune", "--data", str(sketches), "--out", str(out), *ARGS, "--test-size", "0.25"]
    proc = subprocess.run(
        [*featkit_command(), *args, "--json"], capture_output=True, text=True, timeout=600
    )
    assert proc.returncode == 0, proc.stderr
    return out, json.loads(proc.stdout), proc


@pytest.fixture(scope="module")
def reference(sketches) -> tuple[FineTuner, object]:
    """The trainer itself, with the same settings, on the same training images."""
    train, test = load_dataset(sketches).train_test_split(0.25, seed=5)
    return FineTuner(**SETTINGS, num_workers=0, n_jobs=1).fit(train), test


def test_the_saved_backbone_is_the_trainers_and_loads_as_an_extractor(cli_run, reference):
    out, outcome, _ = cli_run
    tuner, test = reference
    path = out / "backbone.safetensors"
    assert outcome["checkpoint"] == str(path) and path.is_file()
    saved, mine = load_file(str(path)), tuner.model_.net.state_dict()
    assert saved.keys() == mine.keys()
    assert all(torch.equal(saved[k], mine[k].cpu()) for k in saved)  # bitwise

    record = read_record(path)
    assert record == json.loads((out / "backbone.json").read_text())
    assert (record["strategy"], record["epochs"], record["image_size"]) == ("last:2", 2, 32)
    assert record["classes"] == ["dog", "elephant", "giraffe"] and record["seed"] == 5
    assert record["data_hash"] == tuner.data_hash_  # the same training images

    # The printed command's -p values build the extractor; it embeds like the trainer.
    words = shlex.split(outcome["use"]["extract"])
    params = parse_params([words[i + 1] for i, w in enumerate(words) if w == "-p"])
    expected = {"model": "efficientnet_lite0", "checkpoint": str(path.resolve()), "image_size": 32}
    assert params == expected
    extractor = featkit.create_extractor("cnn", **params, precision="fp32")
    images = list(test.items)
    np.testing.assert_allclose(extractor.transform(images), tuner.embed(images), atol=1e-4)
    with torch_threads(1):  # bitwise at the trainer's batch shape and thread count
        same = extractor.set_params(batch_size=len(images)).transform(images)
    np.testing.assert_array_equal(same, tuner.embed(images))
    assert f"-p cnn.checkpoint={path.resolve()} " in outcome["use"]["compare"]


def test_history_and_held_out_scores(cli_run, reference):
    out, outcome, _ = cli_run
    tuner, test = reference
    history = json.loads((out / "history.json").read_text())
    assert [{k: v for k, v in r.items() if k != "seconds"} for r in history] == [
        {k: v for k, v in r.items() if k != "seconds"} for r in tuner.history_
    ]
    with open(out / "history.csv") as fh:
        rows = list(csv.DictReader(fh))
    assert [int(r["epoch"]) for r in rows] == [1, 2]
    assert float(rows[-1]["loss"]) == pytest.approx(history[-1]["loss"])
    assert outcome["n_train"] == tuner.n_train_ == 10 and outcome["n_val"] == 3
    assert outcome["best_epoch"] == tuner.best_epoch_
    expected = tuner.score(test, np.asarray(test.class_names)[test.labels])
    assert outcome["test"]["accuracy"] == expected and outcome["test"]["n_test"] == 5
    assert json.loads((out / "scores.json").read_text()) == outcome["test"]


def test_the_text_output_says_what_was_saved_and_how_to_use_it(sketches, tmp_path):
    out = tmp_path / "out"
    runner = CliRunner()
    result = runner.invoke(
        cli, ["finetune", "--data", str(sketches), "--out", str(out), *ARGS, "--epochs", "1"]
    )
    assert result.exit_code == 0, result.output
    assert "fine-tuned efficientnet_lite0 (last:2: the head, blocks.5," in result.stdout
    assert f"saved {out / 'backbone.safetensors'}" in result.stdout
    assert "featkit compare --data IMAGES --extractors cnn" in result.stdout
    assert "fine-tuning efficientnet_lite0 (last:2, augment light) on 18 images" in result.stderr


def test_a_rerun_with_a_checkpoint_dir_resumes(sketches, tmp_path):
    args = ["finetune", "--data", str(sketches), *ARGS, "--epochs", "1", "--json", "-q"]
    state = ["--checkpoint-dir", str(tmp_path / "state")]
    first = CliRunner().invoke(cli, [*args, "--out", str(tmp_path / "a"), *state])
    assert first.exit_code == 0, first.output
    assert json.loads(first.stdout)["resumed_from"] is None
    a = load_file(str(tmp_path / "a" / "backbone.safetensors"))
    # Into the same output folder: an earlier run's output is overwritten, not refused.
    again = CliRunner().invoke(cli, [*args, "--out", str(tmp_path / "a"), *state])
    assert again.exit_code == 0, again.output
    assert json.loads(again.stdout)["resumed_from"] == 1  # a finished run is not retrained
    b = load_file(str(tmp_path / "a" / "backbone.safetensors"))
    assert all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--data", "/no/such/folder"], "no such file or folder"),
        (["--data", "ONE_CLASS"], "needs at least two classes"),
        (["--data", "SKETCHES", "--strategy", "last:x"], "strategy must be 'head'"),
        (["--data", "SKETCHES", "--strategy", "last:99"], "use last:1 .. last:8"),
        (["--data", "SKETCHES", "--out", "A_FILE"], "it is a file"),
        (["--data", "SKETCHES", "--test-data", "/no/such/folder"], "no such file or folder"),
        (["--data", "ONE_CLASS", "--test-data", "SKETCHES"], "classes the training images do not"),
    ],
)
def test_mistakes_give_one_line_and_exit_2(args, message, sketches, tmp_path):
    one = tmp_path / "one" / "dog"
    one.mkdir(parents=True)
    for f in sorted((sketches / "dog").iterdir()):
        (one / f.name).write_bytes(f.read_bytes())
    (tmp_path / "file").write_text("x")
    where = {
        "SKETCHES": str(sketches),
        "ONE_CLASS": str(one.parent),
        "A_FILE": str(tmp_path / "file"),
    }
    args = [where.get(a, a) for a in args]
    if "--out" not in args:
        args += ["--out", str(tmp_path / "out")]
    result = CliRunner().invoke(
        cli, ["finetune", *args, "--epochs", "1", "--image-size", "32", "-q"]
    )
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("featkit: error:"), result.stderr
    assert message in lines[0]
    assert result.exception is None or isinstance(result.exception, SystemExit)
    assert not (tmp_path / "out").exists()  # nothing written


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--patience", "0"], "Invalid value for '--patience'"),
        (["--augment", "heavy"], "Invalid value for '--augment'"),
        (["--test-size", "1.5"], "Invalid value for '--test-size'"),
        (["--test-size", "0.2", "--test-data", "x"], "give --test-data or --test-size, not both"),
        (["--adapt", "dann"], "--adapt and --target-data go together"),
        (["--target-data", "x"], "--adapt and --target-data go together"),
        (["--adapt", "coral", "--target-data", "x"], "Invalid value for '--adapt'"),
    ],
)
def test_bad_options_are_usage_errors(args, message, tmp_path):
    result = CliRunner().invoke(cli, ["finetune", "--data", "x", "--out", str(tmp_path), *args])
    assert result.exit_code == 2 and message in result.stderr, result.output


def test_the_options_default_to_the_trainers_defaults():
    defaults = {name: p.default for name, p in inspect.signature(FineTuner).parameters.items()}
    ctx = finetune_command.make_context("finetune", ["--data", "x", "--out", "y"])
    options = {**ctx.params, "random_state": ctx.params["seed"]}
    for name in (
        "model", "strategy", "augment", "epochs", "batch_size", "lr", "image_size",
        "validation_fraction", "patience", "precision", "device", "n_jobs", "num_workers",
        "random_state", "checkpoint_dir", "adapt", "adapt_weight",
    ):  # fmt: skip
        assert options[name] == defaults[name], name
    assert AUGMENT_CHOICES == AUGMENT_PRESETS
    assert ADAPT_CHOICES == ADAPT_METHODS


def test_adapting_to_target_images_is_the_trainers(sketches, tmp_path):
    """--adapt with --target-data: the trainer's weights with the same target images."""
    photos = tmp_path / "photos"
    requires_pacs()
    for folder in sorted(p for p in sketches.iterdir() if p.is_dir()):
        (photos / folder.name).mkdir(parents=True)
        for f in sorted((PACS / "photo" / folder.name).iterdir())[:4]:
            (photos / folder.name / f.name).write_bytes(f.read_bytes())
    out = tmp_path / "out"
    args = ["finetune", "--data", str(photos), "--out", str(out), *ARGS]
    args += ["--target-data", str(sketches), "--adapt", "deep-coral", "--epochs", "1", "-q"]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    record = read_record(out / "backbone.safetensors")
    assert record["adapt"] == "deep-coral"
    assert record["n_target"] == len(load_dataset(sketches))
    header = (out / "history.csv").read_text().splitlines()[0].split(",")
    assert header[-2:] == ["adapt_loss", "seconds"]  # no discriminator: no domain_accuracy

    mine = FineTuner(**{**SETTINGS, "epochs": 1}, adapt="deep-coral", num_workers=0, n_jobs=1)
    with torch_threads(1):
        mine.fit(load_dataset(photos), target_images=load_dataset(sketches).items)
    saved = load_file(out / "backbone.safetensors")
    for key, value in mine.model_.net.state_dict().items():
        torch.testing.assert_close(saved[key], value, rtol=0, atol=0, msg=key)

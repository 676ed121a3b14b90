"""``featkit finetune``: fine-tune a backbone on labelled images and save it as a ``cnn``
extractor's checkpoint, with its record, its training history and, optionally, its score
on test images."""

from __future__ import annotations

import csv
import json
import shlex
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import click

from featkit.cli._common import echo_err, parse_value
from featkit.cli._options import path_option
from featkit.exceptions import DatasetError, InvalidParameterError

#: The files written to --out: the backbone (and its .json record beside it), the history.
BACKBONE = "backbone.safetensors"
HISTORY = "history"
#: FineTuner's augmentation presets and adaptation methods (featkit.finetune.AUGMENT_PRESETS
#: and featkit.finetune.domain.ADAPT_METHODS; a test keeps them equal), listed here so that
#: ``featkit --help`` does not import torch.
AUGMENT_CHOICES = ("none", "light", "classic", "randaugment", "trivialaugment")
ADAPT_CHOICES = ("none", "dann", "deep-coral", "mmd")
HISTORY_COLUMNS = ("epoch", "loss", "accuracy", "val_loss", "val_accuracy", "lr", "seconds")
#: The history's columns of an adapting run, before "seconds".
ADAPT_COLUMNS = ("adapt_loss", "domain_accuracy")


def _patience(ctx: click.Context, param: click.Parameter, value: str) -> int | None:
    """``--patience``: an int >= 1, or ``none`` (run every epoch)."""
    parsed = parse_value(value)
    if parsed is None or (isinstance(parsed, int) and not isinstance(parsed, bool) and parsed > 0):
        return parsed
    raise click.BadParameter(f"expected an integer >= 1 or none, got {value!r}")


@click.command("finetune")
@click.option(
    "-d",
    "--data",
    required=True,
    help="Labelled training images: folder, .csv, .npz or built-in name.",
)
@click.option("--domain", multiple=True, help="Keep only this domain of DATA (repeatable).")
@click.option("--split", default=None, help="Keep only this split of DATA (train, test ...).")
@path_option(
    "-o", "--out", required=True, help="Folder for the backbone, its record and the history."
)
@click.option(
    "--model",
    default="efficientnet_lite0",
    show_default=True,
    help="A cnn extractor model: featkit alias, timm name or torchvision:NAME.",
)
@click.option(
    "--strategy",
    default="head",
    show_default=True,
    help="head, last:N (also the last N stages) or full.",
)
@click.option(
    "--augment",
    type=click.Choice(AUGMENT_CHOICES),
    default="light",
    show_default=True,
    help="Augmentation of the training images.",
)
@click.option(
    "--epochs",
    type=int,
    default=10,
    show_default=True,
    help="Most epochs (early stopping may end sooner).",
)
@click.option("--batch-size", type=int, default=32, show_default=True, help="Images per step.")
@click.option(
    "--lr", type=float, default=1e-3, show_default=True, help="Peak learning rate of the head."
)
@click.option(
    "--image-size", type=int, default=None, help="Input crop size [default: the weights' own]."
)
@click.option(
    "--validation-fraction",
    type=float,
    default=0.1,
    show_default=True,
    help="Share of the training images that picks the best epoch (0: keep the last).",
)
@click.option(
    "--patience",
    default="3",
    show_default=True,
    callback=_patience,
    metavar="N|none",
    help="Epochs without a better validation accuracy before stopping.",
)
@click.option(
    "--precision",
    type=click.Choice(["auto", "fp32", "bf16", "fp16"]),
    default="auto",
    show_default=True,
    help="Autocast precision.",
)
@click.option("--device", default="auto", show_default=True, help="auto, cpu, cuda, cuda:N.")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of everything random.")
@click.option("-j", "--n-jobs", type=int, default=None, help="Torch threads [default: torch's].")
@click.option(
    "--workers",
    "num_workers",
    type=int,
    default=None,
    help="Data-loader processes [default: auto].",
)
@path_option(
    "--checkpoint-dir",
    default=None,
    help="Save the state after every epoch there; a re-run resumes from it.",
)
@click.option(
    "--test-data",
    default=None,
    help="Labelled test images (same class names) to score the fine-tuned network on.",
)
@click.option(
    "--test-size",
    type=click.FloatRange(0, 1, min_open=True, max_open=True),
    default=None,
    help="Hold out this share of DATA (its own test split when it has one) and score on it.",
)
@click.option(
    "--target-data",
    default=None,
    help="Unlabelled images of the domain to adapt to (with --adapt); labels are not used.",
)
@click.option(
    "--adapt",
    type=click.Choice(ADAPT_CHOICES),
    default="none",
    show_default=True,
    help="Deep domain adaptation towards --target-data: DANN, Deep CORAL or DAN's MMD.",
)
@click.option(
    "--adapt-weight",
    type=float,
    default=1.0,
    show_default=True,
    help="Weight of the adaptation loss against the classification loss.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the outcome as JSON.")
@click.option("-q", "--quiet", is_flag=True, help="No progress bar.")
def finetune_command(
    data: str,
    domain: Sequence[str],
    split: str | None,
    out: Path,
    model: str,
    strategy: str,
    augment: str,
    epochs: int,
    batch_size: int,
    lr: float,
    image_size: int | None,
    validation_fraction: float,
    patience: int | None,
    precision: str,
    device: str,
    seed: int,
    n_jobs: int | None,
    num_workers: int | None,
    checkpoint_dir: Path | None,
    test_data: str | None,
    test_size: float | None,
    target_data: str | None,
    adapt: str,
    adapt_weight: float,
    as_json: bool,
    quiet: bool,
) -> None:
    """Fine-tune a pretrained backbone on the labelled images of DATA and save it to OUT as
    a cnn extractor's checkpoint (backbone.safetensors, its record backbone.json, the
    history as history.json and history.csv).

    The Python call: FineTuner(model=..., strategy=..., ...).fit(images, labels).save(path)
    (featkit.finetune; docs/finetune.md).
    """
    from featkit.data import load_dataset
    from featkit.finetune import FineTuner

    if test_data is not None and test_size is not None:
        raise click.UsageError("give --test-data or --test-size, not both")
    if (adapt == "none") != (target_data is None):
        raise click.UsageError(
            "--adapt and --target-data go together: the method, and the images it adapts to"
        )
    out = out.expanduser()
    _check_out(out)  # fail now, not after the training
    tuner = FineTuner(
        model=model,
        strategy=strategy,
        augment=augment,
        epochs=epochs,
        batch_size=batch_size,
        lr=lr,
        validation_fraction=validation_fraction,
        patience=patience,
        image_size=image_size,
        precision=precision,
        device=device,
        num_workers=num_workers,
        n_jobs=n_jobs,
        random_state=seed,
        adapt=adapt,
        adapt_weight=adapt_weight,
        checkpoint_dir=None if checkpoint_dir is None else checkpoint_dir.expanduser(),
        verbose=not quiet,
    )
    train = load_dataset(data, domain=list(domain) or None, split=split)
    train = _labelled(train, "DATA", quiet)
    test = None
    if test_size is not None:
        if not quiet:
            echo_err(f"{train.name}: {train.describe_split(test_size)} (seed {seed})")
        train, test = train.train_test_split(test_size, seed)
    elif test_data is not None:
        test = _labelled(load_dataset(test_data), "--test-data", quiet)
        _check_test_classes(train, test)  # now, not after the training
    target = None
    if target_data is not None:
        target = load_dataset(target_data).items  # unlabelled: any labels are ignored
    if not quiet:
        towards = "" if target is None else f", adapting ({adapt}) to {len(target)} images"
        echo_err(
            f"fine-tuning {model} ({strategy}, augment {augment}) on {len(train)} images of "
            f"{len(set(train.labels.tolist()))} classes{towards}"
        )
    started = time.perf_counter()
    tuner.fit(train, target_images=target)
    seconds = time.perf_counter() - started
    path = tuner.save(out / BACKBONE)
    _write_history(tuner.history_, out / HISTORY)
    outcome: dict[str, Any] = {
        "checkpoint": str(path),
        "record": str(path.with_suffix(".json")),
        "history": [str(out / f"{HISTORY}.json"), str(out / f"{HISTORY}.csv")],
        "n_train": tuner.n_train_,
        "n_val": tuner.n_val_,
        "epochs": tuner.n_epochs_,
        "best_epoch": tuner.best_epoch_,
        "validation_accuracy": tuner.best_val_accuracy_,
        "stopped_early": tuner.stopped_early_,
        "resumed_from": tuner.resumed_from_,
        "seconds": round(seconds, 3),
        "use": _usage(tuner, path),
    }
    if test is not None:
        outcome["test"] = _test_scores(tuner, train, test)
        (out / "scores.json").write_text(json.dumps(outcome["test"], indent=2) + "\n")
    if as_json:
        click.echo(json.dumps(outcome, indent=2))
        return
    _echo_outcome(outcome, tuner)


def _check_out(out: Path) -> None:
    """Refuse a file, or a non-empty folder that is not an earlier run's output."""
    if out.exists() and not out.is_dir():
        raise DatasetError(f"cannot save the fine-tuned backbone to {out}: it is a file")
    if out.is_dir() and any(out.iterdir()) and not (out / BACKBONE).with_suffix(".json").is_file():
        raise DatasetError(
            f"cannot save the fine-tuned backbone to {out}: it is a non-empty folder that is "
            "not the output of featkit finetune"
        )


def _labelled(dataset: Any, what: str, quiet: bool) -> Any:
    """``dataset`` without its unlabelled images (said unless ``quiet``)."""
    unlabelled = int((dataset.labels < 0).sum())
    if unlabelled == len(dataset):
        raise DatasetError(f"{what} {dataset.name!r} has no labelled images to train or score")
    if unlabelled:
        if not quiet:
            echo_err(f"{what}: leaving out {unlabelled} unlabelled images")
        dataset = dataset.subset(dataset.labels >= 0)
    return dataset


def _write_history(history: list[dict[str, Any]], stem: Path) -> None:
    """The per-epoch history as ``stem.json`` and ``stem.csv``."""
    stem.with_suffix(".json").write_text(json.dumps(history, indent=2) + "\n")
    with open(stem.with_suffix(".csv"), "w", newline="") as fh:
        present = [c for c in ADAPT_COLUMNS if history and c in history[0]]
        columns = [*HISTORY_COLUMNS[:-1], *present, HISTORY_COLUMNS[-1]]
        writer = csv.DictWriter(fh, fieldnames=columns, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(history)


def _check_test_classes(train: Any, test: Any) -> None:
    """Refuse test images of a class no training image has: the network cannot predict it."""
    trained = {train.class_names[i] for i in set(train.labels.tolist())}
    unknown = sorted({test.class_names[i] for i in set(test.labels.tolist())} - trained)
    if unknown:
        raise InvalidParameterError(
            f"the test images have classes the training images do not: {unknown[:5]}"
        )


def _test_scores(tuner: Any, train: Any, test: Any) -> dict[str, Any]:
    """Accuracy, balanced accuracy, macro-F1 (and per class) of ``tuner`` on ``test``,
    in the order of the training set's class names."""
    from featkit.evaluate.metrics import classification_scores

    names = list(train.class_names)
    y_true = [names.index(test.class_names[i]) for i in test.labels.tolist()]
    started = time.perf_counter()
    # fit(Dataset) learned class names: predictions are names, scored in training order.
    pred = [names.index(p) for p in tuner.predict(test).tolist()]
    scores = classification_scores(y_true, pred, names)
    return {"n_test": len(test), "seconds": round(time.perf_counter() - started, 3), **scores}


def _usage(tuner: Any, path: Path) -> dict[str, str]:
    """How to use the saved backbone: as an extractor on the command line and in Python."""
    params = [f"model={tuner.model}", f"checkpoint={path.resolve()}"]
    if tuner.image_size is not None:
        params.append(f"image_size={tuner.image_size}")
    extract = " ".join(f"-p {shlex.quote(p)}" for p in params)
    compare = " ".join(f"-p {shlex.quote('cnn.' + p)}" for p in params)
    return {
        "extract": f"featkit extract -e cnn {extract} --data IMAGES --out FEATURES",
        "compare": f"featkit compare --data IMAGES --extractors cnn {compare}",
        "python": f"featkit.finetune.finetuned_extractor({str(path.resolve())!r})",
    }


def _echo_outcome(outcome: dict[str, Any], tuner: Any) -> None:
    """The outcome in a few lines: training, test scores, files, and how to use them."""
    val = outcome["validation_accuracy"]
    kept = (
        f"best epoch {outcome['best_epoch']}, validation accuracy {val:.4f}"
        if val is not None
        else "no validation split: the last epoch's weights"
    )
    stopped = ", stopped early" if outcome["stopped_early"] else ""
    resumed = (
        f", resumed after epoch {outcome['resumed_from']}"
        if outcome["resumed_from"] is not None
        else ""
    )
    trained = ", ".join(["the head", *tuner.trainable_stages_])
    images = f"{outcome['n_train']} images"
    if outcome["n_val"]:
        images += f" (and {outcome['n_val']} validation images)"
    epochs = f"{outcome['epochs']} epoch{'s' if outcome['epochs'] != 1 else ''}"
    click.echo(
        f"fine-tuned {tuner.model} ({tuner.strategy}: {trained}) on {images}: "
        f"{epochs} ({kept}{stopped}{resumed}) in {outcome['seconds']:.1f} s"
    )
    if "test" in outcome:
        t = outcome["test"]
        click.echo(
            f"test: accuracy {t['accuracy']:.4f}, balanced accuracy {t['balanced_accuracy']:.4f}, "
            f"macro-F1 {t['macro_f1']:.4f} on {t['n_test']} images"
        )
    click.echo(f"saved {outcome['checkpoint']} (record {outcome['record']})")
    click.echo(f"history: {', '.join(outcome['history'])}")
    click.echo("use it as an extractor:")
    for how, line in outcome["use"].items():
        click.echo(f"  {how + ':':<8} {line}")

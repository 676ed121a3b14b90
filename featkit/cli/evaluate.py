"""``featkit compare``, ``adapt``, ``evaluate`` and ``probe``: classifiers scored on
features, with a report folder or the headline numbers."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import click

from featkit.cli._common import (
    echo_err,
    echo_scores,
    extraction_kwargs,
    named_params,
    parse_params,
    scoring_kwargs,
    split_list,
)
from featkit.cli._options import (
    cache_dir_option,
    decode_option,
    extractor_params_option,
    features_option,
    path_option,
    report_flags,
    report_options,
    view_option,
)
from featkit.exceptions import InvalidParameterError


@click.command("compare")
@click.option("-d", "--data", default="digits", show_default=True, help="Data set spec.")
@click.option(
    "-e", "--extractors", default=None, help="Comma-separated names (default: the built-in four)."
)
@extractor_params_option
@cache_dir_option
@click.option(
    "--device", default=None, help="Device of deep extractors: auto, cpu, cuda, cuda:N, mps."
)
@decode_option
@click.option(
    "-j",
    "--n-jobs",
    type=int,
    default=None,
    help="Extraction workers (-1: all cores; default: auto).",
)
@report_options
def compare_command(
    data: str,
    extractors: str | None,
    params: Sequence[str],
    cache_dir: Path | None,
    device: str | None,
    decode: str | None,
    n_jobs: int | None,
    classifiers: str,
    protocol: str,
    out: Path | None,
    test_size: float,
    seed: int,
    view: str,
    disagree: tuple[str, str] | None,
    no_plots: bool,
    as_json: bool,
    quiet: bool,
) -> None:
    """Rank extractors x classifiers on DATA (default: scikit-learn's digits) and write a
    report folder: results.json, results.csv, report.md, report.html and PNG charts."""
    from featkit.data import load_dataset
    from featkit.evaluate.compare import DEFAULT_EXTRACTORS, compare, resolve_extractors

    names = split_list(extractors)
    _check_disagree(disagree, names or DEFAULT_EXTRACTORS, ["none"], classifiers)
    dataset = load_dataset(data)
    chosen: Any = names
    per_extractor = named_params(params)
    if per_extractor:
        # With -p the extractors are built here, before compare(): one that is not
        # installed is announced on stderr even with -q (it is not among compare's skipped).
        chosen, _ = resolve_extractors(names, per_extractor, dataset, say=echo_err)
    result = compare(
        dataset,
        extractors=chosen,
        protocol=protocol,
        test_size=test_size,
        **scoring_kwargs(classifiers, seed, view, quiet),
        **extraction_kwargs(n_jobs, device, cache_dir, quiet),
        decode=decode,
    )
    _finish(result, out or Path("compare-report"), no_plots, as_json, disagree)


@click.command("adapt")
@click.option("-d", "--data", default=None, help="A data set with domains (root/domain/class/*).")
@click.option("--source", default=None, help="Source data set spec (with --target).")
@click.option("--target", default=None, help="Target data set spec (with --source).")
@click.option("-e", "--extractor", default="cnn", show_default=True, help="Extractor name.")
@click.option(
    "-p", "--param", "params", multiple=True, metavar="KEY=VALUE", help="Extractor parameter."
)
@click.option(
    "-a",
    "--align",
    default="none,coral,sa",
    show_default=True,
    help="Comma-separated aligners: none, pca, lda, sa, coral, tca, jda, gfk; deep methods "
    "(fine-tune the cnn network towards the target): dann, deep-coral, mmd.",
)
@click.option(
    "-A",
    "--align-param",
    "align_params",
    multiple=True,
    metavar="NAME.KEY=VALUE",
    help="A parameter of one aligner (repeatable), e.g. -A sa.n_components=40, "
    "-A dann.epochs=5 (a FineTuner parameter).",
)
@click.option(
    "--classifiers",
    "--classifier",
    default="svm",
    show_default=True,
    help="Comma-separated presets: svm, logreg, knn, probe, rbf-svm; finetune (the cnn "
    "network fine-tuned on the source alone, with aligner none).",
)
@click.option(
    "--select",
    "select",
    default=None,
    metavar="SCORER",
    help="Choose each aligner's parameters per shift without target labels, by a label-free "
    "scorer: default, importance-weighted, entropy, snd, dev, circular, mixval "
    "(docs/selection.md). Grids: coral reg; sa, gfk, pca n_components; tca n_components "
    "and mu; jda n_components and lam.",
)
@click.option(
    "--pairs",
    default=None,
    help="Shifts to run, e.g. photo:sketch,sketch:photo (default: every ordered pair).",
)
@path_option("-o", "--out", default=Path("adapt-report"), show_default=True, help="Report folder.")
@cache_dir_option
@click.option("--device", default=None, help="Device of a deep extractor: auto, cpu, cuda.")
@decode_option
@click.option("-j", "--n-jobs", type=int, default=None, help="Extraction workers.")
@click.option("--seed", default=0, show_default=True, help="Seed of fits and views.")
@view_option("2-D projection of source and target before and after alignment.")
@report_flags
def adapt_command(
    data: str | None,
    source: str | None,
    target: str | None,
    extractor: str,
    params: Sequence[str],
    align: str,
    align_params: Sequence[str],
    classifiers: str,
    select: str | None,
    pairs: str | None,
    out: Path,
    cache_dir: Path | None,
    device: str | None,
    decode: str | None,
    n_jobs: int | None,
    seed: int,
    view: str,
    disagree: tuple[str, str] | None,
    no_plots: bool,
    as_json: bool,
    quiet: bool,
) -> None:
    """Train on one domain, test on another, before and after alignment: the domain-pair
    matrix (rows: methods, columns: shifts, then the average) and a report folder."""
    from featkit.align.selection import make_scorer
    from featkit.evaluate.adapt import DEEP_CLASSIFIER, adapt, make_adaptation
    from featkit.registry import create_extractor

    if data is None and (source is None or target is None):
        raise click.UsageError("give --data (a data set with domains) or --source and --target")
    if data is not None and (source is not None or target is not None):
        raise click.UsageError("give either --data or --source and --target, not both")
    if select is not None:
        make_scorer(select)  # an unknown scorer fails before any extraction
    names = split_list(align) or []
    per_aligner = named_params(align_params, flag="-A", example="sa.n_components=40")
    unknown = set(per_aligner) - set(names)
    if unknown:
        raise InvalidParameterError(f"-A {sorted(unknown)[0]}.KEY: that aligner is not in --align")
    aligners = {
        name: make_adaptation(name, seed=seed, **per_aligner.get(name, {})) for name in names
    }
    shifts = None
    if pairs:
        shifts = []
        for pair in split_list(pairs) or []:
            s, colon, t = pair.partition(":")
            if not colon:
                raise InvalidParameterError(f"--pairs expects SOURCE:TARGET, got {pair!r}")
            shifts.append((s, t))
    chosen = create_extractor(extractor, **parse_params(params))
    # The methods adapt may score: each aligner with each classifier, and the deep
    # methods (and the finetune classifier) under the name of the fine-tuned network's head.
    name = str(chosen.config.get("name", extractor))
    _check_disagree(disagree, [name], names, f"{classifiers},{DEEP_CLASSIFIER}")
    result = adapt(
        data,
        source=source,
        target=target,
        extractor=chosen,
        aligners=aligners,
        pairs=shifts,
        select=select,
        **scoring_kwargs(classifiers, seed, view, quiet),
        **extraction_kwargs(n_jobs, device, cache_dir, quiet),
        decode=decode,
    )
    _finish(result, out, no_plots, as_json, disagree)


@click.command("evaluate")
@features_option(
    "A FeatureSet folder from `featkit extract` (repeat to compare several).",
    "feature_dirs",
    multiple=True,
)
@report_options
def evaluate_command(
    feature_dirs: Sequence[Path],
    classifiers: str,
    protocol: str,
    out: Path | None,
    test_size: float,
    seed: int,
    view: str,
    disagree: tuple[str, str] | None,
    no_plots: bool,
    as_json: bool,
    quiet: bool,
) -> None:
    """Score classifiers on features extracted earlier, under a protocol, with a report."""
    from featkit.evaluate.scoring import evaluate_features
    from featkit.features import FeatureSet

    sets: dict[str, Any] = {}
    for directory in feature_dirs:
        fs = FeatureSet.load(directory)
        name = fs.provenance.get("extractor", {}).get("name") or directory.name
        sets[name if name not in sets else str(directory)] = fs
    _check_disagree(disagree, list(sets), ["none"], classifiers)
    result = evaluate_features(
        sets,
        protocol=protocol,
        test_size=test_size,
        **scoring_kwargs(classifiers, seed, view, quiet),
    )
    _finish(result, out or Path("evaluate-report"), no_plots, as_json, disagree)


def _check_disagree(
    disagree: Sequence[str] | None,
    extractors: Sequence[str],
    aligners: Sequence[str],
    classifiers: str,
) -> None:
    """Refuse ``--disagree`` before any work when it names a method the run cannot score:
    not one of ``extractors`` (+ ``aligners``) + ``classifiers``. A method it may score
    but does not (an extractor that is not installed) is refused by :func:`_finish`."""
    if disagree is None:
        return
    from featkit.report.html import check_pair

    planned = [
        " + ".join([e, *([] if a == "none" else [a]), c])
        for e in extractors
        for a in aligners
        for c in dict.fromkeys(split_list(classifiers) or [])
    ]
    try:
        check_pair(planned, disagree)
    except ValueError as error:
        raise click.BadParameter(str(error), param_hint="'--disagree'") from None


def _finish(
    result: Any, out: Path, no_plots: bool, as_json: bool, disagree: Sequence[str] | None = None
) -> None:
    """Save the report folder, then print the ranked table (or the JSON). A ``--disagree``
    method that the run did not score is an error after the folder is saved, with the
    default pair: the scores are not lost."""
    from featkit.report.html import check_pair

    try:
        if disagree is not None:
            check_pair([s.method for s in result.summary()], disagree)
    except ValueError as error:
        result.save(out, plots=not no_plots)
        raise click.BadParameter(
            f"{error}. {out / 'report.html'} shows the default pair.", param_hint="'--disagree'"
        ) from None
    result.save(out, plots=not no_plots, disagree=disagree)
    if as_json:
        click.echo(json.dumps(result.to_json(), indent=2, default=str))
        return
    from featkit.report.text import result_lines

    for line in result_lines(result):
        click.echo(line)
    click.echo(f"report: {out / 'report.md'}, {out / 'report.html'}")


@click.command("probe")
@features_option(
    "Labelled training features: a feature store (from `featkit extract --store`).", "train"
)
@path_option(
    "-t",
    "--test",
    required=True,
    help="Labelled test features: a feature store or a FeatureSet folder.",
)
@click.option("-C", "C", default=1.0, show_default=True, help="Inverse l2 strength (sklearn's C).")
@click.option("--epochs", default=30, show_default=True, help="Passes over the shards.")
@click.option("--batch-size", default=1024, show_default=True, help="Rows per mini-batch.")
@click.option("--learning-rate", default=1e-2, show_default=True, help="Peak Adam step.")
@click.option("--device", default="auto", show_default=True, help="auto, cpu, cuda, cuda:N.")
@click.option("--seed", default=0, show_default=True, help="Seed of the mini-batch order.")
@click.option("--json", "as_json", is_flag=True, help="Print the scores as JSON.")
def probe_command(
    train: Path,
    test: Path,
    C: float,
    epochs: int,
    batch_size: int,
    learning_rate: float,
    device: str,
    seed: int,
    as_json: bool,
) -> None:
    """Train a linear probe (l2 logistic regression) over the shards of a feature store and
    score it on test features, one shard in memory at a time."""
    from featkit.evaluate.out_of_core import probe_scores

    scores = probe_scores(
        train,
        test,
        C=C,
        epochs=epochs,
        batch_size=batch_size,
        learning_rate=learning_rate,
        device=device,
        random_state=seed,
    )
    echo_scores(
        scores,
        as_json,
        f"linear probe (C={C}, {epochs} epochs on {scores['device']}) trained on "
        f"{scores['n_train']} rows, scored on {scores['n_test']} test rows:",
    )

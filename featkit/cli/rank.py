"""``featkit rank``: transferability scores of feature sets on labelled images, without
training a classifier."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import click

from featkit.cli._common import echo_err, named_params, split_list
from featkit.cli._options import cache_dir_option, decode_option, extractor_params_option


@click.command("rank")
@click.option("-d", "--data", default="digits", show_default=True, help="Data set spec.")
@click.option(
    "-e",
    "--extractors",
    default=None,
    help="Comma-separated names (default: the built-in four: pixels, hog, dsift-bovw, cnn).",
)
@extractor_params_option
@click.option(
    "-s",
    "--scores",
    default="logme,hscore,hscore-shrink,knn,leep,nce",
    show_default=True,
    help="Comma-separated: logme, hscore, hscore-shrink (Ledoit-Wolf shrunk H-score), knn "
    "(leave-one-out cosine k-NN accuracy), leep, nce (leep and nce: extractors with a "
    "classifier head, such as cnn).",
)
@click.option("--sort-by", default=None, help="Score to sort by [default: the first one].")
@click.option("-k", default=5, show_default=True, help="Neighbours of the knn score.")
@click.option("--per-class", type=int, default=None, help="Score at most N images per class.")
@click.option("--seed", default=0, show_default=True, help="Seed of --per-class.")
@cache_dir_option
@click.option(
    "--device", default=None, help="Device of deep extractors: auto, cpu, cuda, cuda:N, mps."
)
@decode_option
@click.option("-j", "--n-jobs", type=int, default=None, help="Extraction workers.")
@click.option("--json", "as_json", is_flag=True, help="Print the results as JSON.")
@click.option("-q", "--quiet", is_flag=True, help="No progress output.")
def rank_command(
    data: str,
    extractors: str | None,
    params: Sequence[str],
    scores: str,
    sort_by: str | None,
    k: int,
    per_class: int | None,
    seed: int,
    cache_dir: Path | None,
    device: str | None,
    decode: str | None,
    n_jobs: int | None,
    as_json: bool,
    quiet: bool,
) -> None:
    """Rank feature sets on DATA's labelled images by transferability scores (LogME,
    H-score, k-NN leave-one-out accuracy, LEEP, NCE), no classifier trained: a table sorted
    by score, with the seconds each took."""
    from featkit.evaluate.rank import rank

    result = rank(
        data,
        extractors=split_list(extractors),
        scores=split_list(scores),
        params=named_params(params),
        sort_by=sort_by,
        k=k,
        per_class=per_class,
        seed=seed,
        n_jobs=n_jobs,
        device=device,
        decode=decode,
        cache_dir=cache_dir,
        progress=False if quiet else None,
        log=None if quiet else echo_err,
    )
    if as_json:
        click.echo(json.dumps(result.to_json(), indent=2, default=str))
        return
    for line in result.lines():
        click.echo(line)

"""``featkit index build | search | evaluate``: FAISS indexes of saved features."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import click

from featkit.cli._common import echo_scores
from featkit.cli._options import features_option, index_path_option, path_option, search_options


@click.group("index")
def index_group() -> None:
    """Build FAISS indexes of saved features and retrieve similar images."""


@index_group.command("build")
@features_option(
    "A FeatureSet folder (from `featkit extract`) or .npz, or a feature store folder "
    "(read shard by shard)."
)
@click.option(
    "--factory",
    default="Flat",
    show_default=True,
    help="FAISS index factory string: Flat, IVF1024,Flat, HNSW32, IVF256,PQ16 ...",
)
@path_option("-o", "--out", required=True, help="Index file.")
@click.option("--metric", type=click.Choice(["cosine", "l2"]), default="cosine", show_default=True)
@search_options
@click.option("-k", "recall_k", default=10, show_default=True, help="k of the recall@k check.")
@path_option(
    "--queries",
    default=None,
    help="Held-out query features (FeatureSet or store) for the recall check; "
    "default: 1,000 indexed rows.",
)
@click.option(
    "--train-size",
    type=int,
    default=100_000,
    show_default=True,
    help="Rows of a store drawn to train IVF / PQ.",
)
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the samples.")
@click.option(
    "--copy-ids",
    is_flag=True,
    help="Copy a store's row ids and labels into the index (by default it reads them from "
    "the store's files).",
)
@click.option("--json", "as_json", is_flag=True, help="Print the index summary as JSON.")
def index_build_command(
    features: Path,
    factory: str,
    out: Path,
    metric: str,
    nprobe: int | None,
    ef_search: int | None,
    device: str,
    recall_k: int,
    queries: Path | None,
    train_size: int,
    seed: int,
    copy_ids: bool,
    as_json: bool,
) -> None:
    """Index saved features; report build time, size, peak memory and, for an approximate
    index, recall@k against exact search."""
    from featkit.index import build_index
    from featkit.report.text import index_build_lines, index_build_summary

    index = build_index(
        features,
        factory,
        out,
        metric=metric,
        nprobe=nprobe,
        ef_search=ef_search,
        device=device,
        recall_k=recall_k,
        queries=queries,
        train_size=train_size,
        seed=seed,
        copy_ids=copy_ids,
    )
    if as_json:
        click.echo(json.dumps(index_build_summary(index, out), indent=2))
        return
    for line in index_build_lines(index, out):
        click.echo(line)


@index_group.command("search")
@index_path_option
@click.option(
    "--image",
    "images",
    multiple=True,
    required=True,
    help="A query image (repeatable); embedded by the index's extractor.",
)
@click.option("-k", default=10, show_default=True, help="Results per query.")
@search_options
@click.option("--json", "as_json", is_flag=True, help="Print JSON rows.")
def index_search_command(
    index_path: Path,
    images: Sequence[str],
    k: int,
    nprobe: int | None,
    ef_search: int | None,
    device: str,
    as_json: bool,
) -> None:
    """Retrieve the k indexed images nearest to each query image (embedded by the index's
    extractor)."""
    from featkit.index import search_images

    rows = search_images(
        index_path, list(images), k, device=device, nprobe=nprobe, ef_search=ef_search
    )
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    query = None
    for r in rows:
        if r["query"] != query:
            query = r["query"]
            click.echo(f"{query}:")
        where = r["path"] or r["id"]
        label = f"  [{r['label']}]" if r["label"] is not None else ""
        click.echo(f"  {r['rank']:>3}  {r['score']:.4f}  {where}{label}")


@index_group.command("evaluate")
@index_path_option
@features_option("Labelled test features: a FeatureSet folder or a feature store (streamed).")
@click.option("-k", "n_neighbors", default=20, show_default=True, help="Neighbours that vote.")
@click.option(
    "--weights",
    type=click.Choice(["uniform", "distance", "similarity"]),
    default=None,
    help="Vote weights [default: similarity (DINO) for cosine, uniform for l2].",
)
@search_options
@path_option(
    "-o",
    "--out",
    default=None,
    help="Also write a report folder (results.json, results.csv, report.md, report.html "
    "with the error and retrieval galleries, PNG charts).",
)
@click.option(
    "--seed", type=int, default=0, show_default=True, help="Seed of the report's queries."
)
@click.option("--no-plots", is_flag=True, help="With --out: write no PNG charts.")
@click.option("--json", "as_json", is_flag=True, help="Print the scores as JSON.")
def index_evaluate_command(
    index_path: Path,
    features: Path,
    n_neighbors: int,
    weights: str | None,
    nprobe: int | None,
    ef_search: int | None,
    device: str,
    out: Path | None,
    seed: int,
    no_plots: bool,
    as_json: bool,
) -> None:
    """k-NN accuracy of labelled test features voting among the indexed rows' labels; with
    --out, the report folder of the same votes (per-class scores, confusion matrix, the
    misclassified test images, the nearest indexed images of a few test queries)."""
    from featkit.evaluate.index_report import index_knn_evaluation
    from featkit.evaluate.out_of_core import knn_scores
    from featkit.index import FeatureIndex

    if out is not None:
        scores, result = index_knn_evaluation(
            index_path,
            features,
            n_neighbors=n_neighbors,
            weights=weights,
            nprobe=nprobe,
            ef_search=ef_search,
            seed=seed,
            device=device,
        )
        result.save(out, plots=not no_plots)
    else:
        index = FeatureIndex.load(index_path, device=device)
        if nprobe is not None:
            index.nprobe = nprobe
        if ef_search is not None:
            index.ef_search = ef_search
        scores = knn_scores(index, features, n_neighbors=n_neighbors, weights=weights)
    echo_scores(
        scores,
        as_json,
        f"{scores['n_neighbors']}-NN ({scores['weights']} votes) of {scores['n_test']} test rows "
        f"among {scores['n_train']} indexed rows ({scores['factory']!r}, {scores['metric']}):",
    )
    if out is not None and not as_json:
        click.echo(f"report: {out / 'report.md'}, {out / 'report.html'}")

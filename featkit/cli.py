"""The ``featkit`` command line: a thin shell over the Python API.

User mistakes (unknown extractor, missing data, bad parameter) print one line and exit 2;
``--strict`` makes unreadable images an error (exit 1). Every command is one documented
Python call away: ``list_extractors``, ``describe_extractor``, ``extract``, ``FeatureSet.load``.
"""

from __future__ import annotations

import ast
import json
import logging
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import click

from featkit._version import __version__
from featkit.exceptions import FeatkitError, InvalidParameterError

EXIT_USAGE = 2
EXIT_FAILED_IMAGES = 1


class _Group(click.Group):
    """Turns featkit's own errors into one clear line and exit code 2."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except FeatkitError as exc:
            click.echo(f"featkit: error: {exc}", err=True)
            ctx.exit(EXIT_USAGE)
        except KeyboardInterrupt:
            click.echo(
                "featkit: interrupted (with --cache-dir, finished chunks are kept and a re-run "
                "resumes)",
                err=True,
            )
            ctx.exit(130)


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, "--version", "-V", prog_name="featkit")
@click.option("-v", "--verbose", count=True, help="More log output (-vv for debug).")
def cli(verbose: int) -> None:
    """featkit: classical and deep image features side by side."""
    level = logging.WARNING if verbose == 0 else logging.INFO if verbose == 1 else logging.DEBUG
    logging.basicConfig(level=level, format="featkit: %(levelname)s: %(message)s")


@cli.command("list")
@click.argument("pattern", required=False)
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
def list_command(pattern: str | None, as_json: bool) -> None:
    """List the extractors (built-in and plugins) and plugins that failed to load."""
    from featkit.registry import broken_plugins, get_extractor_info, list_extractors

    rows = []
    for name in list_extractors(pattern):
        # The registry entry, not describe_extractor: its extra sections (the cnn's
        # offline weights) import torch, 3 s for a list.
        info = get_extractor_info(name)
        kind = getattr(info.factory, "kind", None)
        rows.append({"name": name, "source": info.source, "kind": kind, "summary": info.summary})
    broken = [
        {"name": n, "source": e.distribution, "error": e.reason}
        for n, e in sorted(broken_plugins().items())
    ]
    if as_json:
        click.echo(json.dumps({"extractors": rows, "broken": broken}, indent=2))
        return
    width = max([len(r["name"]) for r in rows] + [4])
    src_width = max([len(r["source"]) for r in rows] + [6])
    for r in rows:
        kind = "local " if r["kind"] == "local" else "global"
        click.echo(f"{r['name']:<{width}}  {kind}  {r['source']:<{src_width}}  {r['summary']}")
    for b in broken:
        source = b["source"] or "?"
        click.echo(f"{b['name']:<{width}}  BROKEN  {source:<{src_width}}  {b['error']}")


@cli.command("describe")
@click.argument("name")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def describe_command(name: str, as_json: bool) -> None:
    """Show an extractor's description and parameters."""
    from featkit.registry import describe_extractor

    info = describe_extractor(name)
    if as_json:
        click.echo(json.dumps(info, indent=2, default=repr))
        return
    click.echo(
        f"{info['name']}  (from {info['source']}, version {info['version']}, {info['kind']})"
    )
    click.echo("")
    click.echo(info["description"])
    click.echo("")
    click.echo("Parameters (-p NAME=VALUE):")
    for p in info["parameters"]:
        click.echo(f"  {p['name']} = {p['default']!r}")
        if p["doc"]:
            click.echo(f"      {p['doc']}")
    for title, lines in info.get("extra", {}).items():
        click.echo("")
        click.echo(f"{title}:")
        for line in lines:
            click.echo(f"  {line}")


@cli.command("extract")
@click.option("-e", "--extractor", "extractor_name", required=True, help="Registered name.")
@click.option(
    "-p", "--param", "params", multiple=True, metavar="KEY=VALUE", help="Extractor parameter."
)
@click.option("-d", "--data", "data", required=True, help="Folder, .csv, .npz or built-in name.")
@click.option("-o", "--out", "out", required=True, type=click.Path(path_type=Path))
@click.option("--domain", multiple=True, help="Keep only this domain (repeatable).")
@click.option("--split", default=None, help="Keep only this split (train, test ...).")
@click.option(
    "-j", "--n-jobs", type=int, default=None, help="Workers (-1: all cores; default: auto)."
)
@click.option("--batch-size", default=64, show_default=True, help="Images per chunk.")
@click.option("--cache-dir", type=click.Path(path_type=Path), default=None, help="Feature cache.")
@click.option(
    "--backend", default=None, help="joblib backend (default: loky), or dask for a Dask cluster."
)
@click.option(
    "--scheduler", default=None, help="With --backend dask: the scheduler (tcp://host:8786)."
)
@click.option(
    "--device", default=None, help="Device of a deep extractor: auto, cpu, cuda, cuda:N, mps."
)
@click.option("--fit-data", default=None, help="Images to fit a learning extractor on.")
@click.option("--fit-split", default=None, help="Split of DATA to fit a learning extractor on.")
@click.option(
    "--store",
    "as_store",
    is_flag=True,
    help="Write OUT as a sharded feature store (larger than memory; a re-run resumes).",
)
@click.option(
    "--shard-images",
    default=50_000,
    show_default=True,
    help="With --store: images per shard (the unit of resuming).",
)
@click.option("--strict", is_flag=True, help="Exit 1 when any image could not be used.")
@click.option("-q", "--quiet", is_flag=True, help="No progress bar.")
def extract_command(
    extractor_name: str,
    params: Sequence[str],
    data: str,
    out: Path,
    domain: Sequence[str],
    split: str | None,
    n_jobs: int | None,
    batch_size: int,
    cache_dir: Path | None,
    backend: str | None,
    scheduler: str | None,
    device: str | None,
    fit_data: str | None,
    fit_split: str | None,
    as_store: bool,
    shard_images: int,
    strict: bool,
    quiet: bool,
) -> None:
    """Extract features of every image in DATA and save them as a FeatureSet in OUT (or,
    with --store, as a sharded feature store).

    Extractors that learn from images (codebooks) are fitted first: on --fit-data, on
    --fit-split of DATA, or on DATA's own 'train' split.
    """
    from featkit.data import load_dataset
    from featkit.engine import extract, extract_to_store
    from featkit.features import check_output_folder
    from featkit.registry import create_extractor

    if not as_store:
        check_output_folder(out.expanduser())  # fail now, not after the extraction
    extractor_params = parse_params(params)
    if device is not None:
        extractor_params["device"] = device  # an extractor without a device says so
    extractor = create_extractor(extractor_name, **extractor_params)
    full = load_dataset(data)
    dataset = full.select(domain=list(domain) or None, split=split) if domain or split else full
    if extractor.requires_fit:
        _fit_extractor(extractor, extractor_name, full, fit_data, fit_split, quiet)
    engine = {
        "n_jobs": n_jobs,
        "batch_size": batch_size,
        "cache_dir": cache_dir,
        "backend": backend,
        "scheduler": scheduler,
        "progress": False if quiet else None,
    }
    if as_store:
        started = time.perf_counter()
        store = extract_to_store(extractor, dataset, out, shard_images=shard_images, **engine)
        click.echo(
            f"{extractor_name}: {len(store)} of {len(dataset)} images -> {store.dim}-d features "
            f"in {store.n_shards} shards ({time.perf_counter() - started:.2f} s this run); "
            f"feature store {out}"
        )
        _report_failed(store.failed, out / "shard-*.ids.json", strict)
        return
    features = extract(extractor, dataset, **engine)
    features.save(out)
    timing = features.provenance["timing"]
    cache = features.provenance.get("cache")
    cached = f", {cache['cached_images']} from cache" if cache else ""
    click.echo(
        f"{extractor_name}: {len(features)} of {len(dataset)} images -> {features.dim}-d "
        f"features in {timing['seconds']:.2f} s ({timing['images_per_second']} img/s{cached}); "
        f"saved to {out}"
    )
    counts = features.provenance.get("counts", {})
    if counts.get("no_local_descriptors"):
        click.echo(
            f"{counts['no_local_descriptors']} image(s) had no local descriptors (encoded as "
            "zeros)",
            err=True,
        )
    _report_failed(features.failed, out / "featureset.json", strict)


def _report_failed(failed: list[dict[str, str]], where: Path, strict: bool) -> None:
    """List the images that could not be used; with ``strict``, exit with an error."""
    if not failed:
        return
    click.echo(f"{len(failed)} image(s) could not be used:", err=True)
    for f in failed[:10]:
        click.echo(f"  {f['id']}: {f['reason']}", err=True)
    if len(failed) > 10:
        click.echo(f"  ... and {len(failed) - 10} more (see {where})", err=True)
    if strict:
        sys.exit(EXIT_FAILED_IMAGES)


def _fit_extractor(
    extractor: Any,
    name: str,
    full: Any,
    fit_data: str | None,
    fit_split: str | None,
    quiet: bool,
) -> None:
    from featkit.data import load_dataset

    if fit_data is not None:
        fit_set = load_dataset(fit_data)
    elif fit_split is not None:
        fit_set = full.select(split=fit_split)
    elif full.splits is not None and "train" in set(full.splits.tolist()):
        fit_set = full.select(split="train")
    else:
        raise InvalidParameterError(
            f"{name} learns from images (a codebook): pass --fit-data SPEC (training images) "
            "or --fit-split SPLIT"
        )
    if not quiet:
        click.echo(f"fitting {name} on {len(fit_set)} images", err=True)
    extractor.fit(fit_set)


_PROTOCOL_HELP = "holdout, kfold[:K], fewshot[:N[xR]] (N shots, R draws) or domains."


def _report_options(func: Any) -> Any:
    """Options shared by compare and evaluate."""
    options = [
        click.option(
            "--classifiers",
            default="knn,svm,probe",
            show_default=True,
            help="Comma-separated presets: knn, svm, rbf-svm, logreg, probe.",
        ),
        click.option("--protocol", default="holdout", show_default=True, help=_PROTOCOL_HELP),
        click.option(
            "-o",
            "--out",
            type=click.Path(path_type=Path),
            default=None,
            help="Report folder [default: compare-report or evaluate-report].",
        ),
        click.option("--test-size", default=0.25, show_default=True, help="Held-out share."),
        click.option("--seed", default=0, show_default=True, help="Seed of splits and fits."),
        click.option(
            "--view",
            type=click.Choice(["pca", "tsne", "none"]),
            default="pca",
            show_default=True,
            help="2-D projection of the features in the report.",
        ),
        click.option("--no-plots", is_flag=True, help="Write no PNG charts."),
        click.option("--json", "as_json", is_flag=True, help="Print the results as JSON."),
        click.option("-q", "--quiet", is_flag=True, help="No progress output."),
    ]
    for option in reversed(options):
        func = option(func)
    return func


@cli.command("compare")
@click.option("-d", "--data", default="digits", show_default=True, help="Data set spec.")
@click.option(
    "--extractors", default=None, help="Comma-separated names (default: the built-in four)."
)
@click.option(
    "-p",
    "--param",
    "params",
    multiple=True,
    help="NAME.KEY=VALUE for one extractor (repeatable), e.g. -p cnn.image_size=128.",
)
@click.option(
    "--cache-dir",
    type=click.Path(path_type=Path),
    default=None,
    help="Feature and score cache: a re-run skips what it has done.",
)
@click.option(
    "--device", default=None, help="Device of deep extractors: auto, cpu, cuda, cuda:N, mps."
)
@click.option(
    "-j",
    "--n-jobs",
    type=int,
    default=None,
    help="Extraction workers (-1: all cores; default: auto).",
)
@_report_options
def compare_command(
    data: str,
    extractors: str | None,
    params: Sequence[str],
    cache_dir: Path | None,
    device: str | None,
    n_jobs: int | None,
    classifiers: str,
    protocol: str,
    out: Path | None,
    test_size: float,
    seed: int,
    view: str,
    no_plots: bool,
    as_json: bool,
    quiet: bool,
) -> None:
    """Rank extractors x classifiers on DATA (default: scikit-learn's digits) and write a
    report folder: results.json, results.csv, report.md and PNG charts."""
    from featkit.data import load_dataset
    from featkit.evaluate.compare import compare, default_extractors
    from featkit.exceptions import ExtractorNotFoundError, PluginLoadError
    from featkit.registry import create_extractor

    say = None if quiet else lambda msg: click.echo(msg, err=True)
    dataset = load_dataset(data)
    names = _split_list(extractors)
    chosen: Any = names
    per_extractor = _named_params(params)
    if per_extractor:
        chosen = default_extractors(dataset) if names is None else {}
        for name in names or []:
            try:
                chosen[name] = create_extractor(name, **per_extractor.get(name, {}))
            except (ExtractorNotFoundError, PluginLoadError) as exc:
                click.echo(f"skipping {name}: {exc}", err=True)  # as without -p: not fatal
        for name, values in per_extractor.items():
            if name not in chosen and name in (names or []):
                continue  # not installed: skipped above
            if name not in chosen:
                raise InvalidParameterError(f"-p {name}.KEY: {name!r} is not compared")
            if names is None:
                chosen[name].set_params(**values)
    result = compare(
        dataset,
        extractors=chosen,
        classifiers=_split_list(classifiers) or [],
        protocol=protocol,
        test_size=test_size,
        seed=seed,
        n_jobs=n_jobs,
        device=device,
        cache_dir=cache_dir,
        progress=False if quiet else None,
        view=None if view == "none" else view,
        log=say,
    )
    _finish(result, out or Path("compare-report"), no_plots, as_json)


@cli.command("adapt")
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
    help="Comma-separated aligners: none, pca, lda, sa, coral, tca, jda.",
)
@click.option(
    "-A",
    "--align-param",
    "align_params",
    multiple=True,
    metavar="NAME.KEY=VALUE",
    help="A parameter of one aligner (repeatable), e.g. -A sa.n_components=40.",
)
@click.option(
    "--classifiers",
    "--classifier",
    default="svm",
    show_default=True,
    help="Comma-separated presets: svm, logreg, knn, probe, rbf-svm.",
)
@click.option(
    "--pairs",
    default=None,
    help="Shifts to run, e.g. photo:sketch,sketch:photo (default: every ordered pair).",
)
@click.option(
    "-o",
    "--out",
    type=click.Path(path_type=Path),
    default=Path("adapt-report"),
    show_default=True,
    help="Report folder.",
)
@click.option(
    "--cache-dir",
    type=click.Path(path_type=Path),
    default=None,
    help="Feature and score cache: a re-run skips what it has done.",
)
@click.option("--device", default=None, help="Device of a deep extractor: auto, cpu, cuda.")
@click.option("-j", "--n-jobs", type=int, default=None, help="Extraction workers.")
@click.option("--seed", default=0, show_default=True, help="Seed of fits and views.")
@click.option(
    "--view",
    type=click.Choice(["pca", "tsne", "none"]),
    default="pca",
    show_default=True,
    help="2-D projection of source and target before and after alignment.",
)
@click.option("--no-plots", is_flag=True, help="Write no PNG charts.")
@click.option("--json", "as_json", is_flag=True, help="Print the results as JSON.")
@click.option("-q", "--quiet", is_flag=True, help="No progress output.")
def adapt_command(
    data: str | None,
    source: str | None,
    target: str | None,
    extractor: str,
    params: Sequence[str],
    align: str,
    align_params: Sequence[str],
    classifiers: str,
    pairs: str | None,
    out: Path,
    cache_dir: Path | None,
    device: str | None,
    n_jobs: int | None,
    seed: int,
    view: str,
    no_plots: bool,
    as_json: bool,
    quiet: bool,
) -> None:
    """Train on one domain, test on another, before and after alignment: the domain-pair
    matrix (rows: methods, columns: shifts, then the average) and a report folder."""
    from featkit.align import make_aligner
    from featkit.evaluate.adapt import adapt
    from featkit.registry import create_extractor

    if data is None and (source is None or target is None):
        raise click.UsageError("give --data (a data set with domains) or --source and --target")
    if data is not None and (source is not None or target is not None):
        raise click.UsageError("give either --data or --source and --target, not both")
    say = None if quiet else lambda msg: click.echo(msg, err=True)
    names = _split_list(align) or []
    per_aligner = _named_params(align_params, flag="-A", example="sa.n_components=40")
    unknown = set(per_aligner) - set(names)
    if unknown:
        raise InvalidParameterError(f"-A {sorted(unknown)[0]}.KEY: that aligner is not in --align")
    aligners = {name: make_aligner(name, **per_aligner.get(name, {})) for name in names}
    shifts = None
    if pairs:
        shifts = []
        for pair in _split_list(pairs) or []:
            s, colon, t = pair.partition(":")
            if not colon:
                raise InvalidParameterError(f"--pairs expects SOURCE:TARGET, got {pair!r}")
            shifts.append((s, t))
    result = adapt(
        data,
        source=source,
        target=target,
        extractor=create_extractor(extractor, **parse_params(params)),
        aligners=aligners,
        classifiers=_split_list(classifiers) or [],
        pairs=shifts,
        seed=seed,
        n_jobs=n_jobs,
        device=device,
        cache_dir=cache_dir,
        progress=False if quiet else None,
        view=None if view == "none" else view,
        log=say,
    )
    _finish(result, out, no_plots, as_json)


@cli.command("new-plugin")
@click.argument("name")
@click.option("--local", is_flag=True, help="A local descriptor (encoded by BoVW, VLAD ...).")
@click.option(
    "-o",
    "--out",
    type=click.Path(path_type=Path),
    default=Path("."),
    show_default=True,
    help="Folder to write featkit-NAME/ into.",
)
def new_plugin_command(name: str, local: bool, out: Path) -> None:
    """Write featkit-NAME/, a ready-to-install extractor plugin package: pyproject with the
    featkit.extractors entry point, a working extractor, conformance tests, a README."""
    from featkit.scaffold import write_plugin

    root = write_plugin(name, out, local=local)
    click.echo(f"wrote {root}")
    click.echo(f'next: pip install -e "{root}[test]" && python -m pytest -q {root}')


@cli.command("evaluate")
@click.option(
    "-f",
    "--features",
    "feature_dirs",
    multiple=True,
    required=True,
    type=click.Path(path_type=Path),
    help="A FeatureSet folder from `featkit extract` (repeat to compare several).",
)
@_report_options
def evaluate_command(
    feature_dirs: Sequence[Path],
    classifiers: str,
    protocol: str,
    out: Path | None,
    test_size: float,
    seed: int,
    view: str,
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
    result = evaluate_features(
        sets,
        classifiers=_split_list(classifiers) or [],
        protocol=protocol,
        test_size=test_size,
        seed=seed,
        view=None if view == "none" else view,
        log=None if quiet else lambda msg: click.echo(msg, err=True),
    )
    _finish(result, out or Path("evaluate-report"), no_plots, as_json)


def _finish(result: Any, out: Path, no_plots: bool, as_json: bool) -> None:
    """Save the report folder, then print the ranked table (or the JSON)."""
    result.save(out, plots=not no_plots)
    if as_json:
        click.echo(json.dumps(result.to_json(), indent=2, default=str))
        return
    data, protocol = result.provenance["dataset"], result.provenance["protocol"]
    click.echo(f"{data['name']}: {data.get('n_images', '?')} images, {protocol['description']}")
    from featkit.report.markdown import runtime_lines

    for line in runtime_lines(result.provenance):
        click.echo(line)
    click.echo(result.table())
    pairs = result.pair_table()
    if pairs is not None:
        click.echo("")
        click.echo("accuracy (%) per domain shift:")
        click.echo(pairs)
    for name, why in result.skipped.items():
        click.echo(f"skipped {name}: {why}")
    click.echo(f"report: {out / 'report.md'}")


def _named_params(
    pairs: Sequence[str], flag: str = "-p", example: str = "cnn.image_size=128"
) -> dict[str, dict[str, Any]]:
    """``["cnn.image_size=128"]`` -> ``{"cnn": {"image_size": 128}}``."""
    out: dict[str, dict[str, Any]] = {}
    for pair in pairs:
        name, dot, rest = pair.partition(".")
        if not dot or "=" not in rest:
            raise InvalidParameterError(
                f"{flag} expects NAME.KEY=VALUE (e.g. {flag} {example}), got {pair!r}"
            )
        out.setdefault(name.strip(), {}).update(parse_params([rest]))
    return out


@cli.group("index")
def index_group() -> None:
    """Build FAISS indexes of saved features and retrieve similar images."""


@index_group.command("build")
@click.option(
    "-f",
    "--features",
    required=True,
    type=click.Path(path_type=Path),
    help="A FeatureSet folder (from `featkit extract`) or .npz, or a feature store folder "
    "(read shard by shard).",
)
@click.option(
    "--factory",
    default="Flat",
    show_default=True,
    help="FAISS index factory string: Flat, IVF1024,Flat, HNSW32, IVF256,PQ16 ...",
)
@click.option("-o", "--out", required=True, type=click.Path(path_type=Path), help="Index file.")
@click.option("--metric", type=click.Choice(["cosine", "l2"]), default="cosine", show_default=True)
@click.option("--nprobe", type=int, default=None, help="IVF lists visited per query.")
@click.option("--ef-search", type=int, default=None, help="HNSW search depth.")
@click.option("--device", default="auto", show_default=True, help="auto, cpu, cuda, cuda:N.")
@click.option("-k", "recall_k", default=10, show_default=True, help="k of the recall@k check.")
@click.option(
    "--queries",
    type=click.Path(path_type=Path),
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
    stats = index.stats
    recall = stats.get("recall")
    if as_json:
        summary = {"out": str(out), "factory": factory, "metric": metric, "n": index.ntotal}
        keys = ("build_seconds", "train_seconds", "add_seconds", "index_bytes", "peak_rss_bytes")
        summary.update({key: stats.get(key) for key in keys})
        click.echo(json.dumps({**summary, "device": index.device, "recall": recall}, indent=2))
        return
    click.echo(f"{index.ntotal} rows indexed with {factory!r} ({metric}); saved to {out}")
    peak = stats["peak_rss_bytes"]
    memory = f", peak memory of this process {peak / 2**20:,.0f} MB" if peak else ""
    click.echo(
        f"built in {stats['build_seconds']:.1f} s; index {stats['index_bytes'] / 2**20:,.1f} MB"
        + memory
    )
    if recall:
        which = "held-out queries" if recall["held_out"] else "indexed rows as queries"
        click.echo(
            f"recall@{recall['k']} against exact search: {recall['recall_at_k']:.4f} "
            f"({recall['queries']} {which}); {recall['queries_per_second']:,.0f} queries/s, "
            f"exact {recall['exact_queries_per_second']:,.0f} queries/s"
        )


@index_group.command("search")
@click.option("-i", "--index", "index_path", required=True, type=click.Path(path_type=Path))
@click.option(
    "--image",
    "images",
    multiple=True,
    required=True,
    help="A query image (repeatable); embedded by the index's extractor.",
)
@click.option("-k", default=10, show_default=True, help="Results per query.")
@click.option("--nprobe", type=int, default=None, help="IVF lists visited per query.")
@click.option("--ef-search", type=int, default=None, help="HNSW search depth.")
@click.option("--device", default="auto", show_default=True, help="auto, cpu, cuda, cuda:N.")
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
@click.option("-i", "--index", "index_path", required=True, type=click.Path(path_type=Path))
@click.option(
    "-f",
    "--features",
    required=True,
    type=click.Path(path_type=Path),
    help="Labelled test features: a FeatureSet folder or a feature store (streamed).",
)
@click.option("-k", "n_neighbors", default=20, show_default=True, help="Neighbours that vote.")
@click.option(
    "--weights",
    type=click.Choice(["uniform", "distance", "similarity"]),
    default=None,
    help="Vote weights [default: similarity (DINO) for cosine, uniform for l2].",
)
@click.option("--nprobe", type=int, default=None, help="IVF lists visited per query.")
@click.option("--ef-search", type=int, default=None, help="HNSW search depth.")
@click.option("--device", default="auto", show_default=True, help="auto, cpu, cuda, cuda:N.")
@click.option("--json", "as_json", is_flag=True, help="Print the scores as JSON.")
def index_evaluate_command(
    index_path: Path,
    features: Path,
    n_neighbors: int,
    weights: str | None,
    nprobe: int | None,
    ef_search: int | None,
    device: str,
    as_json: bool,
) -> None:
    """k-NN accuracy of labelled test features voting among the indexed rows' labels."""
    from featkit.evaluate.out_of_core import knn_scores
    from featkit.index import FeatureIndex

    index = FeatureIndex.load(index_path, device=device)
    if nprobe is not None:
        index.nprobe = nprobe
    if ef_search is not None:
        index.ef_search = ef_search
    scores = knn_scores(index, features, n_neighbors=n_neighbors, weights=weights)
    _echo_scores(
        scores,
        as_json,
        f"{scores['n_neighbors']}-NN ({scores['weights']} votes) of {scores['n_test']} test rows "
        f"among {scores['n_train']} indexed rows ({scores['factory']!r}, {scores['metric']}):",
    )


@cli.command("probe")
@click.option(
    "-f",
    "--features",
    "train",
    required=True,
    type=click.Path(path_type=Path),
    help="Labelled training features: a feature store (from `featkit extract --store`).",
)
@click.option(
    "-t",
    "--test",
    required=True,
    type=click.Path(path_type=Path),
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
    _echo_scores(
        scores,
        as_json,
        f"linear probe (C={C}, {epochs} epochs on {scores['device']}) trained on "
        f"{scores['n_train']} rows, scored on {scores['n_test']} test rows:",
    )


def _echo_scores(scores: dict[str, Any], as_json: bool, heading: str) -> None:
    """Print streamed scores: the JSON, or a heading and the headline numbers."""
    if as_json:
        click.echo(json.dumps(scores, indent=2))
        return
    click.echo(heading)
    click.echo(
        f"accuracy {scores['accuracy']:.4f}, balanced accuracy "
        f"{scores['balanced_accuracy']:.4f}, macro-F1 {scores['macro_f1']:.4f} "
        f"({scores['seconds']:.1f} s)"
    )


def _split_list(value: str | None) -> list[str] | None:
    return None if value is None else [v.strip() for v in value.split(",") if v.strip()]


@cli.command("info")
@click.argument("directory", type=click.Path(path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def info_command(directory: Path, as_json: bool) -> None:
    """Summarise a saved FeatureSet or feature store: size, classes, extractor, failures,
    provenance."""
    from featkit.store import ShardStore, open_features

    saved = open_features(directory)
    if isinstance(saved, ShardStore):
        store = saved
        provenance = store.metadata.get("provenance") or {}
        summary = {
            "path": str(directory),
            "n": len(store),
            "dim": store.dim,
            "shards": store.n_shards,
            "classes": store.class_names,
            "domains": None,
            "splits": None,
            "failed": len(store.failed),
        }
    else:
        fs = saved
        provenance = fs.provenance
        summary = {
            "path": str(directory),
            "n": len(fs),
            "dim": fs.dim,
            "classes": fs.class_names,
            "domains": None if fs.domains is None else sorted(set(fs.domains.tolist())),
            "splits": None if fs.splits is None else sorted(set(fs.splits.tolist())),
            "failed": len(fs.failed),
        }
    for key in ("extractor", "created", "versions", "timing"):
        summary[key] = provenance.get(key)
    if as_json:
        click.echo(json.dumps(summary, indent=2))
        return
    ext = summary["extractor"] or {}
    shards = f" in {summary['shards']} shards (feature store)" if "shards" in summary else ""
    click.echo(f"{directory}: {summary['n']} rows x {summary['dim']} features{shards}")
    click.echo(f"  extractor: {ext.get('name', '?')} {json.dumps(ext.get('params', {}))}")
    click.echo(f"  classes ({len(summary['classes'])}): {', '.join(summary['classes'])}")
    if summary["domains"]:
        click.echo(f"  domains: {', '.join(summary['domains'])}")
    if summary["splits"]:
        click.echo(f"  splits: {', '.join(summary['splits'])}")
    click.echo(f"  failed images: {summary['failed']}")
    if summary["created"]:
        made_with = (summary["versions"] or {}).get("featkit", "?")
        click.echo(f"  created: {summary['created']} with featkit {made_with}")


def parse_params(pairs: Sequence[str]) -> dict[str, Any]:
    """Parse ``-p`` pairs: ``["size=16", "cells=8,8"]`` -> ``{"size": 16, "cells": (8, 8)}``."""
    params: dict[str, Any] = {}
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        key = key.strip()
        if not sep or not key.isidentifier():
            raise InvalidParameterError(f"-p expects KEY=VALUE (e.g. -p size=16), got {pair!r}")
        params[key] = parse_value(raw.strip())
    return params


def parse_value(raw: str) -> Any:
    """A command-line value as a Python value: numbers, booleans, None, tuples, else text."""
    lowered = raw.lower()
    if lowered in ("true", "false"):
        return lowered == "true"
    if lowered in ("none", "null"):
        return None
    if "," in raw and not raw.startswith(("[", "(")):
        return tuple(parse_value(part.strip()) for part in raw.split(","))
    try:
        return ast.literal_eval(raw)
    except (ValueError, SyntaxError):
        return raw


def main(argv: Sequence[str] | None = None) -> None:
    """Entry point of the ``featkit`` console script."""
    cli.main(args=list(argv) if argv is not None else None, prog_name="featkit")


if __name__ == "__main__":  # pragma: no cover
    main()

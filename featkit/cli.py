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
    from featkit.registry import broken_plugins, describe_extractor, list_extractors

    names = list_extractors(pattern)
    rows = []
    for name in names:
        info = describe_extractor(name)
        rows.append({k: info[k] for k in ("name", "source", "kind", "summary")})
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
@click.option("--backend", default=None, help="joblib backend (default: loky).")
@click.option(
    "--device", default=None, help="Device of a deep extractor: auto, cpu, cuda, cuda:N, mps."
)
@click.option("--fit-data", default=None, help="Images to fit a learning extractor on.")
@click.option("--fit-split", default=None, help="Split of DATA to fit a learning extractor on.")
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
    device: str | None,
    fit_data: str | None,
    fit_split: str | None,
    strict: bool,
    quiet: bool,
) -> None:
    """Extract features of every image in DATA and save them as a FeatureSet in OUT.

    Extractors that learn from images (codebooks) are fitted first: on --fit-data, on
    --fit-split of DATA, or on DATA's own 'train' split.
    """
    from featkit.data import load_dataset
    from featkit.engine import extract
    from featkit.features import check_output_folder
    from featkit.registry import create_extractor

    check_output_folder(out.expanduser())  # fail now, not after the extraction
    extractor_params = parse_params(params)
    if device is not None:
        extractor_params["device"] = device  # an extractor without a device says so
    extractor = create_extractor(extractor_name, **extractor_params)
    full = load_dataset(data)
    dataset = full.select(domain=list(domain) or None, split=split) if domain or split else full
    if extractor.requires_fit:
        _fit_extractor(extractor, extractor_name, full, fit_data, fit_split, quiet)
    features = extract(
        extractor,
        dataset,
        n_jobs=n_jobs,
        batch_size=batch_size,
        cache_dir=cache_dir,
        backend=backend,
        progress=False if quiet else None,
    )
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
    if features.failed:
        click.echo(f"{len(features.failed)} image(s) could not be used:", err=True)
        for f in features.failed[:10]:
            click.echo(f"  {f['id']}: {f['reason']}", err=True)
        if len(features.failed) > 10:
            click.echo(
                f"  ... and {len(features.failed) - 10} more (see {out / 'featureset.json'})",
                err=True,
            )
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


@cli.command("compare")
@click.option("-d", "--data", default="digits", show_default=True, help="Data set spec.")
@click.option("--extractors", default=None, help="Comma-separated names (default: built-ins).")
@click.option("--classifiers", default="knn,svm,logreg", show_default=True)
@click.option(
    "-o",
    "--out",
    type=click.Path(path_type=Path),
    default=Path("compare-report"),
    show_default=True,
    help="Report folder.",
)
@click.option("--test-size", default=0.25, show_default=True, help="Held-out share.")
@click.option("--seed", default=0, show_default=True)
@click.option(
    "-j", "--n-jobs", type=int, default=None, help="Workers (-1: all cores; default: auto)."
)
@click.option("--cache-dir", type=click.Path(path_type=Path), default=None)
@click.option("--json", "as_json", is_flag=True, help="Print the results as JSON.")
@click.option("-q", "--quiet", is_flag=True, help="No progress output.")
def compare_command(
    data: str,
    extractors: str | None,
    classifiers: str,
    out: Path,
    test_size: float,
    seed: int,
    n_jobs: int | None,
    cache_dir: Path | None,
    as_json: bool,
    quiet: bool,
) -> None:
    """Compare extractors x classifiers on DATA (default: scikit-learn's digits)."""
    from featkit.evaluate.compare import compare

    result = compare(
        data,
        extractors=_split_list(extractors),
        classifiers=_split_list(classifiers) or [],
        test_size=test_size,
        seed=seed,
        n_jobs=n_jobs,
        cache_dir=cache_dir,
        progress=False if quiet else None,
        log=None if quiet else lambda msg: click.echo(msg, err=True),
    )
    result.save(out)
    if as_json:
        click.echo(json.dumps({"results": result.ranked(), "skipped": result.skipped}, indent=2))
        return
    protocol = result.provenance["protocol"]
    click.echo(
        f"{result.provenance['dataset']['name']}: {protocol['n_train']} train / "
        f"{protocol['n_test']} test images ({protocol['description']}, seed {seed})"
    )
    click.echo(result.table())
    for name, why in result.skipped.items():
        click.echo(f"skipped {name}: {why}")
    click.echo(f"report: {out / 'report.md'}")


def _split_list(value: str | None) -> list[str] | None:
    return None if value is None else [v.strip() for v in value.split(",") if v.strip()]


@cli.command("info")
@click.argument("directory", type=click.Path(path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def info_command(directory: Path, as_json: bool) -> None:
    """Summarise a saved FeatureSet: size, classes, extractor, failures, provenance."""
    from featkit.features import FeatureSet

    fs = FeatureSet.load(directory)
    summary = {
        "path": str(directory),
        "n": len(fs),
        "dim": fs.dim,
        "classes": fs.class_names,
        "domains": None if fs.domains is None else sorted(set(fs.domains.tolist())),
        "splits": None if fs.splits is None else sorted(set(fs.splits.tolist())),
        "failed": len(fs.failed),
        "extractor": fs.provenance.get("extractor"),
        "created": fs.provenance.get("created"),
        "versions": fs.provenance.get("versions"),
        "timing": fs.provenance.get("timing"),
    }
    if as_json:
        click.echo(json.dumps(summary, indent=2))
        return
    ext = summary["extractor"] or {}
    click.echo(f"{directory}: {summary['n']} rows x {summary['dim']} features")
    click.echo(f"  extractor: {ext.get('name', '?')} {json.dumps(ext.get('params', {}))}")
    click.echo(f"  classes ({len(fs.class_names)}): {', '.join(fs.class_names)}")
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

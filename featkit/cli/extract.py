"""``featkit extract``: features of a data set, saved as a FeatureSet or a feature store."""

from __future__ import annotations

import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import click

from featkit.cli._common import EXIT_FAILED_IMAGES, parse_params
from featkit.cli._options import decode_option, path_option
from featkit.exceptions import InvalidParameterError


@click.command("extract")
@click.option("-e", "--extractor", "extractor_name", required=True, help="Registered name.")
@click.option(
    "-p", "--param", "params", multiple=True, metavar="KEY=VALUE", help="Extractor parameter."
)
@click.option("-d", "--data", "data", required=True, help="Folder, .csv, .npz or built-in name.")
@path_option("-o", "--out", "out", required=True)
@click.option("--domain", multiple=True, help="Keep only this domain (repeatable).")
@click.option("--split", default=None, help="Keep only this split (train, test ...).")
@click.option(
    "-j", "--n-jobs", type=int, default=None, help="Workers (-1: all cores; default: auto)."
)
@click.option("--batch-size", default=64, show_default=True, help="Images per chunk.")
@path_option("--cache-dir", default=None, help="Feature cache.")
@click.option(
    "--backend", default=None, help="joblib backend (default: loky), or dask for a Dask cluster."
)
@click.option(
    "--scheduler", default=None, help="With --backend dask: the scheduler (tcp://host:8786)."
)
@click.option(
    "--device", default=None, help="Device of a deep extractor: auto, cpu, cuda, cuda:N, mps."
)
@decode_option
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
    decode: str | None,
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
    from featkit.extractors.base import set_decode
    from featkit.features import check_output_folder
    from featkit.registry import create_extractor

    if not as_store:
        check_output_folder(out.expanduser())  # fail now, not after the extraction
    extractor_params = parse_params(params)
    if device is not None:
        extractor_params["device"] = device  # an extractor without a device says so
    extractor = create_extractor(extractor_name, **extractor_params)
    if decode is not None and not set_decode(extractor, decode):
        raise InvalidParameterError(
            f"{extractor_name} decodes every image at full size: --decode {decode} does not "
            "apply to it"
        )
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
    """Fit a learning extractor on --fit-data, on --fit-split of DATA, or on DATA's own
    'train' split."""
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

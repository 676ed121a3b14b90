"""``featkit info``: the summary of a saved FeatureSet or feature store."""

from __future__ import annotations

import json
from pathlib import Path

import click


@click.command("info")
@click.argument("directory", type=click.Path(path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def info_command(directory: Path, as_json: bool) -> None:
    """Summarise a saved FeatureSet or feature store: size, classes, extractor, failures,
    provenance."""
    from featkit.store import open_features

    summary = {"path": str(directory), **open_features(directory).describe()}
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

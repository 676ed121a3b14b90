"""``featkit list``, ``featkit describe`` and ``featkit new-plugin``: the extractor registry
and plugin scaffolding."""

from __future__ import annotations

import json
from pathlib import Path

import click

from featkit.cli._options import path_option


@click.command("list")
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


@click.command("describe")
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


@click.command("new-plugin")
@click.argument("name")
@click.option("--local", is_flag=True, help="A local descriptor (encoded by BoVW, VLAD ...).")
@path_option(
    "-o", "--out", default=Path("."), show_default=True, help="Folder to write featkit-NAME/ into."
)
def new_plugin_command(name: str, local: bool, out: Path) -> None:
    """Write featkit-NAME/, a ready-to-install extractor plugin package: pyproject with the
    featkit.extractors entry point, a working extractor, conformance tests, a README."""
    from featkit.scaffold import write_plugin

    root = write_plugin(name, out, local=local)
    click.echo(f"wrote {root}")
    click.echo(f'next: pip install -e "{root}[test]" && python -m pytest -q {root}')

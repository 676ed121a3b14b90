"""MkDocs hook: the extractor family pages and the CLI reference, generated at build time.

Registered in ``mkdocs.yml`` (``hooks:``). The pages are written from featkit's registry
(``list_extractors``, ``describe_extractor``, ``broken_plugins``) and from the click
command tree of ``featkit.cli`` in the environment that builds the docs, so they cannot
drift from the code: a new extractor, parameter or option appears on the next build, and
an installed plugin lands on the plugin page by itself.

- ``extractors/handcrafted.md``, ``extractors/local.md``, ``extractors/deep.md`` and
  ``extractors/plugins.md`` are added as virtual files (nothing is written under docs/).
- In ``cli.md`` the line ``<!-- featkit:cli-reference -->`` is replaced by the reference.
"""

from __future__ import annotations

import html
import inspect
import re
from dataclasses import dataclass
from typing import Any

import click
from mkdocs.structure.files import File, Files

CLI_MARKER = "<!-- featkit:cli-reference -->"
BUILTIN_SOURCE = "featkit"  # ExtractorInfo.source of built-ins (featkit.registry.BUILTIN_SOURCE)


@dataclass(frozen=True)
class Family:
    """One generated page of extractors."""

    key: str
    title: str
    intro: str

    @property
    def path(self) -> str:
        return f"extractors/{self.key}.md"


FAMILIES = (
    Family(
        "handcrafted",
        "Handcrafted global descriptors",
        "One fixed-length vector per image, computed by a fixed formula: nothing is learned "
        "from the images. The conventions behind the values (which reference each one "
        "equals, and how closely) are in [Extractors](../extractors.md#built-in-extractors).",
    ),
    Family(
        "local",
        "Local descriptors and encoders",
        "Local extractors (`kind` local) describe an image as a *set* of descriptors; "
        "encoders (every extractor with a `local` parameter) learn a vocabulary in `fit` "
        "and turn any local extractor's sets, a plugin's included, into one vector. See "
        "[Extractors](../extractors.md#sift-and-dsift-local-descriptors) and "
        "[encodings](../extractors.md#encodings-bovw-vlad-fisher-and-spatial-pyramids).",
    ),
    Family(
        "deep",
        "Deep features",
        "Embeddings of pretrained networks (timm or torchvision), run by torch on the CPU "
        "or a GPU. Models, layers, pooling, weights and precision are explained in "
        "[Extractors](../extractors.md#cnn-deep-features).",
    ),
    Family(
        "plugins",
        "Plugin extractors",
        "Extractors registered by installed packages through the `featkit.extractors` "
        "entry point, grouped by package. This page lists the plugins installed where the "
        "documentation was built; `featkit list` lists yours. Writing one: "
        "[Plugin guide](../plugins.md).",
    ),
)


# -- extractors ---------------------------------------------------------------------------
def _instance(info: Any) -> Any:
    """The extractor with its default parameters, or None when its factory needs some.

    Extractors store their parameters unchanged in ``__init__`` (scikit-learn's rule), so
    this loads no weights; it tells what the class says only at run time (``requires_fit``
    is a property of some, and factory functions hide the class).
    """
    try:
        return info.factory()
    except Exception:  # a plugin factory with required arguments: describe it without
        return None


def family_of(info: Any, description: dict[str, Any]) -> str:
    """The family key of a registry entry.

    The source decides first, so any installed plugin lands on the plugin page whatever
    it does. Among built-ins: local extractors and encoders (a ``local`` parameter), then
    networks (``batched``: the transform runs torch on every core itself), else handcrafted.
    """
    if description["source"] != BUILTIN_SOURCE:
        return "plugins"
    names = {p["name"] for p in description["parameters"]}
    if description["kind"] == "local" or "local" in names:
        return "local"
    return "deep" if getattr(_instance(info), "batched", False) else "handcrafted"


def _anchor(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")


def _code(text: str) -> str:
    """Inline code safe inside a Markdown table cell (pipes would split the cell)."""
    return "<code>" + html.escape(text, quote=False).replace("|", "&#124;") + "</code>"


def _cell(text: str) -> str:
    """Docstring text for a table cell: ``code`` spans kept, pipes escaped."""
    parts = re.split(r"``(.+?)``|`(.+?)`", text)
    out = []
    for i, part in enumerate(parts):
        if part is None:
            continue
        out.append(_code(part) if i % 3 else html.escape(part, quote=False).replace("|", "&#124;"))
    return "".join(out)


def _prose(text: str) -> str:
    """Docstring prose as Markdown: RST double backticks become single ones."""
    return re.sub(r"``(.+?)``", r"`\1`", text)


def _body(description: dict[str, Any]) -> str:
    """The description without its first paragraph (the summary)."""
    parts = description["description"].split("\n\n", 1)
    return parts[1].strip() if len(parts) > 1 else ""


def _signature(description: dict[str, Any]) -> list[tuple[str, str]]:
    return [(p["name"], p["doc"]) for p in description["parameters"]]


Entry = tuple[Any, dict[str, Any]]  # (registry info, describe_extractor's dict)


def _same_but_defaults(a: dict[str, Any], b: dict[str, Any]) -> bool:
    """Same parameters (names and docs), description body, extras and kind."""
    return (
        _signature(a) == _signature(b)
        and _body(a) == _body(b)
        and a["extra"] == b["extra"]
        and a["kind"] == b["kind"]
    )


def _reading_order(entries: list[Entry]) -> list[tuple[Entry, dict[str, Any] | None]]:
    """Each entry with the one it is a variant of (None: shown in full).

    An extractor that differs from another only by its defaults (``dsift-bovw`` from
    ``bovw``, ``cnn/resnet50`` from ``cnn``) points to the shortest-named one instead of
    repeating its table. Full entries come alphabetically, each followed by its variants.
    """
    bases: list[Entry] = []
    variants: dict[str, list[Entry]] = {}
    for entry in sorted(entries, key=lambda e: (len(e[1]["name"]), e[1]["name"])):
        base = next((b for b in bases if _same_but_defaults(b[1], entry[1])), None)
        if base is None:
            bases.append(entry)
            variants[entry[1]["name"]] = []
        else:
            variants[base[1]["name"]].append(entry)
    order: list[tuple[Entry, dict[str, Any] | None]] = []
    for base in sorted(bases, key=lambda e: e[1]["name"]):
        order.append((base, None))
        for variant in sorted(variants[base[1]["name"]], key=lambda e: e[1]["name"]):
            order.append((variant, base[1]))
    return order


def _meta(info: Any, description: dict[str, Any]) -> str:
    facts = [f"kind: {description['kind'] or '?'}", f"version {description['version']}"]
    facts.append(f"from `{description['source']}`")
    if getattr(_instance(info), "requires_fit", False) is True:
        facts.append("learns from images with its defaults (`fit` before `transform`)")
    return " · ".join(facts)


def _usage(name: str) -> str:
    return (
        f'`featkit.create_extractor("{name}", ...)` · '
        f"`featkit extract -e {name} -p KEY=VALUE ...` · `featkit describe {name}`"
    )


def _parameter_table(description: dict[str, Any]) -> list[str]:
    if not description["parameters"]:
        return ["No parameters.", ""]
    rows = ["| parameter | default | description |", "|---|---|---|"]
    for p in description["parameters"]:
        rows.append(f"| {_code(p['name'])} | {_code(repr(p['default']))} | {_cell(p['doc'])} |")
    return [*rows, ""]


def _render_extractor(
    info: Any, description: dict[str, Any], base: dict[str, Any] | None, level: str
) -> list[str]:
    name = description["name"]
    lines = [f"{level} `{name}` {{ #{_anchor(name)} }}", "", _prose(description["summary"]), ""]
    lines += [_meta(info, description), "", _usage(name), ""]
    if base is not None:
        defaults = {p["name"]: p["default"] for p in base["parameters"]}
        changed = [
            f"`{p['name']}={p['default']!r}`"
            for p in description["parameters"]
            if p["default"] != defaults[p["name"]]
        ]
        lines.append(
            f"The parameters of [`{base['name']}`](#{_anchor(base['name'])})"
            + (f", with other defaults: {', '.join(changed)}." if changed else ".")
        )
        return [*lines, ""]
    body = _body(description)
    if body:
        lines += [_prose(body), ""]
    lines += _parameter_table(description)
    for title, entries in description["extra"].items():
        lines += [f"**{title}** (where these docs were built; `featkit describe {name}`):", ""]
        lines += [f"- {_prose(entry)}" for entry in entries] + [""]
    return lines


def _summary_table(rows: list[tuple[str, dict[str, Any]]]) -> list[str]:
    out = ["| extractor | kind | source | summary |", "|---|---|---|---|"]
    for name, d in rows:
        link = f"[{_code(name)}](#{_anchor(name)})"
        out.append(f"| {link} | {d['kind']} | {_code(d['source'])} | {_cell(d['summary'])} |")
    return [*out, ""]


def extractor_pages() -> dict[str, str]:
    """Markdown of every family page, by path under docs/."""
    import featkit
    from featkit.registry import get_extractor_info

    grouped: dict[str, list[Entry]] = {f.key: [] for f in FAMILIES}
    for name in featkit.list_extractors():
        info = get_extractor_info(name)
        description = featkit.describe_extractor(name)
        grouped[family_of(info, description)].append((info, description))

    pages = {}
    for family in FAMILIES:
        entries = grouped[family.key]
        lines = [f"# {family.title}", "", family.intro, ""]
        lines += [
            "*Generated from the registry when the documentation is built "
            f"(featkit {featkit.__version__}).*",
            "",
        ]
        if family.key == "plugins":
            lines += _plugin_sections(entries)
        elif not entries:
            lines += ["No extractor of this family is registered.", ""]
        else:
            lines += _summary_table(sorted((d["name"], d) for _, d in entries))
            for (info, description), base in _reading_order(entries):
                lines += _render_extractor(info, description, base, "##")
        pages[family.path] = "\n".join(lines).rstrip() + "\n"
    return pages


def _plugin_sections(entries: list[Entry]) -> list[str]:
    import featkit

    lines: list[str] = []
    if entries:
        lines += _summary_table(sorted(((d["name"], d) for _, d in entries)))
    else:
        lines += ["No plugin was installed where this documentation was built.", ""]
    packages = sorted({d["source"] for _, d in entries})
    for package in packages:
        lines += [f"## Package `{package}` {{ #package-{_anchor(package)} }}", ""]
        own = [e for e in entries if e[1]["source"] == package]
        for (info, description), base in _reading_order(own):
            lines += _render_extractor(info, description, base, "###")
    broken = featkit.broken_plugins()
    if broken:
        lines += ["## Plugins that failed to load", ""]
        lines += [f"- {_code(name)}: {_cell(str(err))}" for name, err in sorted(broken.items())]
        lines.append("")
    return lines


# -- command line -------------------------------------------------------------------------
def _commands(group: click.Group, ctx: click.Context) -> list[tuple[click.Context, str]]:
    """Every (sub)command below ``group`` with its context and full name, depth first."""
    out = []
    for name in group.list_commands(ctx):
        command = group.get_command(ctx, name)
        if command is None or command.hidden:
            continue
        sub = click.Context(command, info_name=name, parent=ctx, **command.context_settings)
        out.append((sub, sub.command_path))
        if isinstance(command, click.Group):
            out += _commands(command, sub)
    return out


def _render_command(ctx: click.Context, path: str, level: str) -> list[str]:
    command = ctx.command
    lines = [f"{level} `{path}` {{ #{_anchor(path)} }}", ""]
    if command.help:
        help_text = inspect.cleandoc(command.help).replace("\b\n", "")
        lines += [_prose(html.escape(help_text, quote=False)), ""]
    usage = " ".join(command.collect_usage_pieces(ctx))
    lines += ["```text", f"{path} {usage}".rstrip(), "```", ""]
    if isinstance(command, click.Group):
        subs = [n for n in command.list_commands(ctx) if not command.get_command(ctx, n).hidden]
        links = ", ".join(f"[`{path} {n}`](#{_anchor(f'{path} {n}')})" for n in subs)
        lines += [f"Commands: {links}.", ""]
    params = command.get_params(ctx)
    arguments = [p for p in params if isinstance(p, click.Argument)]
    if arguments:
        described = [
            f"`{p.human_readable_name}`" + ("" if p.required else " (optional)") for p in arguments
        ]
        lines += [f"Arguments: {', '.join(described)}.", ""]
    options = [p.get_help_record(ctx) for p in params if not isinstance(p, click.Argument)]
    options = [record for record in options if record is not None]
    if options:
        lines += ["| option | description |", "|---|---|"]
        lines += [f"| {_code(decl)} | {_cell(text)} |" for decl, text in options]
        lines.append("")
    return lines


def cli_reference() -> str:
    """Markdown reference of ``featkit`` and every subcommand, from the click tree."""
    from featkit.cli import cli

    root = click.Context(cli, info_name="featkit", **cli.context_settings)
    lines = ["## Reference", ""]
    lines += [
        "*Generated from the click command tree when the documentation is built; each "
        "section is what `featkit COMMAND -h` prints.*",
        "",
    ]
    lines += _render_command(root, "featkit", "###")
    for ctx, path in _commands(cli, root):
        lines += _render_command(ctx, path, "###")
    return "\n".join(lines).rstrip() + "\n"


# -- MkDocs events ------------------------------------------------------------------------
def on_files(files: Files, config: Any) -> Files:
    for path, markdown in extractor_pages().items():
        files.append(File.generated(config, path, content=markdown))
    return files


def on_page_markdown(markdown: str, page: Any, config: Any, files: Files) -> str:
    if page.file.src_uri != "cli.md":
        return markdown
    if CLI_MARKER not in markdown:
        raise ValueError(f"docs/cli.md lost its {CLI_MARKER} line: the reference goes there")
    return markdown.replace(CLI_MARKER, cli_reference())

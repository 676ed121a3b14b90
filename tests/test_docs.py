"""The documentation site: ``mkdocs build --strict`` and the pages generated from the code.

The build runs once per module in a subprocess (``mkdocs.yml`` at the repository root,
output in a temporary folder). Strict mode turns every MkDocs warning into an error, and
``mkdocs.yml`` sets link, anchor and omitted-file validation to ``warn``, so a successful
build means that every internal link and anchor resolves and every page is in the nav;
``test_strict_validation_covers_links_and_anchors`` keeps that configuration honest.
"""

from __future__ import annotations

import html
import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("mkdocs", reason="mkdocs is in the test extras (the docs build)")
pytest.importorskip("material", reason="mkdocs-material is in the test extras")

import click
import yaml

import featkit
from featkit.cli import cli
from featkit.registry import ExtractorInfo, get_extractor_info

ROOT = Path(__file__).resolve().parent.parent
FAMILY_PAGES = ("handcrafted", "local", "deep", "plugins")
# A heading whose text starts with a code span: an extractor or a command section.
HEADING = re.compile(r'<h[23] id="[^"]*"><code>([^<]+)</code>')


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("site")
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1", "OPENBLAS_NUM_THREADS": "1"}
    proc = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "-f", "mkdocs.yml", "-d", str(out)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, f"mkdocs build --strict failed:\n{proc.stdout}\n{proc.stderr}"
    assert "WARNING" not in proc.stderr, proc.stderr
    return out


def _headings(path: Path) -> list[str]:
    return HEADING.findall(path.read_text(encoding="utf-8"))


def test_strict_build_writes_every_page(site: Path) -> None:
    nav_pages = [
        "index.html",
        "quickstart/index.html",
        "concepts/index.html",
        "coming-from/index.html",
        "cli/index.html",
        *(f"extractors/{family}/index.html" for family in FAMILY_PAGES),
    ]
    for page in nav_pages:
        assert (site / page).is_file(), page
    assert not (site / "hooks").exists()  # the generator is not published


def test_every_registered_extractor_has_one_section(site: Path) -> None:
    where: dict[str, list[str]] = {}
    for family in FAMILY_PAGES:
        for name in _headings(site / "extractors" / family / "index.html"):
            where.setdefault(name, []).append(family)
    for name in featkit.list_extractors():
        assert len(where.get(name, [])) == 1, f"{name!r} is on {where.get(name)}"
        if get_extractor_info(name).source != "featkit":
            assert where[name] == ["plugins"], name
    assert set(where) == set(featkit.list_extractors())


def _command_paths(group: click.Group, prefix: str) -> list[tuple[str, click.Command]]:
    out = []
    ctx = click.Context(group, info_name=prefix)
    for name in group.list_commands(ctx):
        command = group.get_command(ctx, name)
        out.append((f"{prefix} {name}", command))
        if isinstance(command, click.Group):
            out += _command_paths(command, f"{prefix} {name}")
    return out


def test_cli_reference_lists_every_command_and_option(site: Path) -> None:
    page = (site / "cli" / "index.html").read_text(encoding="utf-8")
    headings = set(HEADING.findall(page))
    commands = _command_paths(cli, "featkit")
    assert len(commands) >= 10  # list, describe, extract, ..., index build, index search
    for path, command in [("featkit", cli), *commands]:
        assert path in headings, path
        ctx = click.Context(command)
        for param in command.params:
            if isinstance(param, click.Option):
                decl = param.get_help_record(ctx)[0]  # "-e, --extractor TEXT"
                escaped = html.escape(decl, quote=False).replace("|", "&#124;")
                assert f"<code>{escaped}</code>" in page, f"{path}: {decl}"


def test_strict_validation_covers_links_and_anchors() -> None:
    config = yaml.safe_load((ROOT / "mkdocs.yml").read_text(encoding="utf-8"))
    validation = config["validation"]
    for key in ("omitted_files", "absolute_links", "unrecognized_links", "anchors"):
        assert validation[key] == "warn", key  # strict mode makes these errors


def test_a_new_plugin_lands_on_the_plugin_page(monkeypatch: pytest.MonkeyPatch) -> None:
    """Classification is by source, then kind: no list of names to keep up to date."""
    spec = importlib.util.spec_from_file_location(
        "featkit_docs_generate", ROOT / "docs" / "hooks" / "generate.py"
    )
    generate = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, spec.name, generate)  # its dataclass looks itself up
    spec.loader.exec_module(generate)

    class Fake(featkit.Extractor):
        """A fake descriptor for this test.

        Parameters
        ----------
        width : int, default=3
            How wide.
        """

        kind = "local"

        def __init__(self, width: int = 3) -> None:
            self.width = width

    featkit.list_extractors()  # load the registry before adding to it
    from featkit import registry

    monkeypatch.setitem(registry._registry, "zz-fake", ExtractorInfo("zz-fake", Fake, "zz-pkg"))
    monkeypatch.setitem(registry._registry, "zz-local", ExtractorInfo("zz-local", Fake, "featkit"))
    # Only these entries, so that the test does not import torch to describe the cnn.
    monkeypatch.setattr(featkit, "list_extractors", lambda: ["pixels", "zz-fake", "zz-local"])
    pages = generate.extractor_pages()
    plugins, local = pages["extractors/plugins.md"], pages["extractors/local.md"]
    assert "### `zz-fake`" in plugins and "Package `zz-pkg`" in plugins
    assert "| <code>width</code> | <code>3</code> | How wide. |" in plugins
    assert "## `zz-local`" in local and "zz-local" not in plugins
    assert "## `pixels`" in pages["extractors/handcrafted.md"]

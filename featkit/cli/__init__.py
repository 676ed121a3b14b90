"""The ``featkit`` command line: a thin shell over the Python API.

User mistakes (unknown extractor, missing data, bad parameter) print one line and exit 2;
``--strict`` makes unreadable images an error (exit 1). Every command is one documented
Python call away: ``list_extractors``, ``describe_extractor``, ``extract``, ``FeatureSet.load``.

One module a family of commands: :mod:`~featkit.cli.extractors` (list, describe,
new-plugin), :mod:`~featkit.cli.extract`, :mod:`~featkit.cli.evaluate` (compare, adapt,
evaluate, probe), :mod:`~featkit.cli.finetune`, :mod:`~featkit.cli.index` (the index group),
:mod:`~featkit.cli.info`, :mod:`~featkit.cli.show` (pictures of features) and
:mod:`~featkit.cli.rank` (transferability scores), with the helpers
and options they share in ``_common`` and ``_options``; this one holds the ``featkit`` group
and :func:`main`, the console script's entry point.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import click

from featkit._version import __version__
from featkit.cli._common import EXIT_FAILED_IMAGES, EXIT_USAGE, parse_params, parse_value
from featkit.cli.evaluate import adapt_command, compare_command, evaluate_command, probe_command
from featkit.cli.extract import extract_command
from featkit.cli.extractors import describe_command, list_command, new_plugin_command
from featkit.cli.finetune import finetune_command
from featkit.cli.index import index_group
from featkit.cli.info import info_command
from featkit.cli.rank import rank_command
from featkit.cli.show import show_command
from featkit.exceptions import FeatkitError

__all__ = ["EXIT_FAILED_IMAGES", "EXIT_USAGE", "cli", "main", "parse_params", "parse_value"]


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


# click lists a group's commands sorted by name, so the order here changes no help text.
for _command in (
    list_command,
    describe_command,
    new_plugin_command,
    extract_command,
    compare_command,
    adapt_command,
    evaluate_command,
    probe_command,
    finetune_command,
    index_group,
    info_command,
    show_command,
    rank_command,
):
    cli.add_command(_command)


def main(argv: Sequence[str] | None = None) -> None:
    """Entry point of the ``featkit`` console script."""
    cli.main(args=list(argv) if argv is not None else None, prog_name="featkit")

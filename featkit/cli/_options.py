"""Options that several commands share, declared once so that their help stays the same."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

F = TypeVar("F", bound=Callable[..., Any])

_PROTOCOL_HELP = (
    "holdout, kfold[:K], fewshot[:N[xR]] (N shots, R draws), perclass[:N[xR][/T]] (N training "
    "images per class, the rest tested, at most T per class; Caltech-101: perclass:30) or domains."
)


def stack(*options: Callable[[F], F]) -> Callable[[F], F]:
    """One decorator of several options, listed by ``--help`` in the given order."""

    def apply(func: F) -> F:
        for option in reversed(options):  # the decorator nearest the function lists last
            func = option(func)
        return func

    return apply


def path_option(*decls: str, **kwargs: Any) -> Callable[[F], F]:
    """``click.option(*decls, **kwargs)`` whose value is a file or folder, as a ``Path``."""
    return click.option(*decls, type=click.Path(path_type=Path), **kwargs)


def features_option(help: str, *dest: str, **kwargs: Any) -> Callable[[F], F]:
    """``-f/--features``, required: the saved features a command reads, described by ``help``;
    ``dest`` names the parameter when it is not ``features``."""
    return path_option("-f", "--features", *dest, required=True, help=help, **kwargs)


def view_option(description: str) -> Callable[[F], F]:
    """``--view pca|tsne|none``: the 2-D projection in a report, with its ``description``."""
    return click.option(
        "--view",
        type=click.Choice(["pca", "tsne", "none"]),
        default="pca",
        show_default=True,
        help=description,
    )


#: ``--decode`` of extract, compare and adapt.
decode_option = click.option(
    "--decode",
    type=click.Choice(["reduced", "exact", "device"]),
    default=None,
    help="How large JPEGs are decoded: reduced (DCT-scaled to the size the extractor "
    "needs, then resized; the extractors' default), exact (full size first) or device "
    "(cnn: decoded and resized on its device, nvJPEG on a GPU; others: reduced).",
)

#: ``--cache-dir`` of compare and adapt.
#: ``-p NAME.KEY=VALUE`` of the commands that run several extractors (compare, rank).
extractor_params_option = click.option(
    "-p",
    "--param",
    "params",
    multiple=True,
    help="NAME.KEY=VALUE for one extractor (repeatable), e.g. -p cnn.image_size=128.",
)
cache_dir_option = path_option(
    "--cache-dir", default=None, help="Feature and score cache: a re-run skips what it has done."
)


def _two_methods(
    ctx: click.Context, param: click.Parameter, value: str | None
) -> tuple[str, str] | None:
    """``"hog + svm,cnn+svm"`` -> ``("hog + svm", "cnn + svm")``."""
    if value is None:
        return None
    from featkit.report.html import spell_method

    names = [spell_method(v) for v in value.split(",") if v.strip()]
    if len(names) != 2 or names[0] == names[1]:
        raise click.BadParameter(
            f"two different methods, comma-separated, as the report names them "
            f"(e.g. 'hog + svm,cnn + svm'); got {value!r}"
        )
    return names[0], names[1]


#: ``--disagree``: the two methods whose disagreements report.html shows.
disagree_option = click.option(
    "--disagree",
    metavar="METHOD,METHOD",
    default=None,
    callback=_two_methods,
    help="The two methods whose disagreements report.html shows, as the report names them, "
    "e.g. 'hog + svm,cnn + svm' [default: the best method and the best of another "
    "extractor (adapt: aligner)].",
)

#: ``--disagree``, ``--no-plots``, ``--json`` and ``-q`` of the commands that write a
#: report folder.
report_flags = stack(
    disagree_option,
    click.option("--no-plots", is_flag=True, help="Write no PNG charts."),
    click.option("--json", "as_json", is_flag=True, help="Print the results as JSON."),
    click.option("-q", "--quiet", is_flag=True, help="No progress output."),
)

#: The classifiers, protocol and report options of compare and evaluate.
report_options = stack(
    click.option(
        "--classifiers",
        default="knn,svm,probe",
        show_default=True,
        help="Comma-separated presets: knn, svm, rbf-svm, logreg, probe; in compare also "
        "finetune (fine-tunes each cnn extractor's network on the training images).",
    ),
    click.option("--protocol", default="holdout", show_default=True, help=_PROTOCOL_HELP),
    path_option(
        "-o",
        "--out",
        default=None,
        help="Report folder [default: compare-report or evaluate-report].",
    ),
    click.option("--test-size", default=0.25, show_default=True, help="Held-out share."),
    click.option("--seed", default=0, show_default=True, help="Seed of splits and fits."),
    view_option("2-D projection of the features in the report."),
    report_flags,
)

#: ``-i/--index`` of index search and index evaluate: the index file to load.
index_path_option = path_option("-i", "--index", "index_path", required=True)

#: ``--nprobe``, ``--ef-search`` and ``--device`` of the index commands.
search_options = stack(
    click.option("--nprobe", type=int, default=None, help="IVF lists visited per query."),
    click.option("--ef-search", type=int, default=None, help="HNSW search depth."),
    click.option("--device", default="auto", show_default=True, help="auto, cpu, cuda, cuda:N."),
)

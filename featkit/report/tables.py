"""The two tables of a result, each defined once and rendered as plain text (the terminal)
or as markdown (``report.md``): the ranking of methods, and the domain-pair matrix."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from featkit.evaluate.results import EvaluationResult
    from featkit.evaluate.rows import MethodSummary

__all__ = ["chosen_lines", "pair_table", "ranking_table", "row_method"]


@dataclass(frozen=True)
class Column:
    """A table column: its header, its cell text for a row, and where it is shown.

    ``width`` is the least width in plain text (cells are padded to the widest);
    ``terminal=False`` columns appear only in the report page, where width is free.
    """

    header: str
    cell: Callable[[Any], str]
    numeric: bool = True
    width: int = 0
    terminal: bool = True


def ranking_columns(summary: Sequence[MethodSummary]) -> list[Column]:
    """The ranking's columns: the method (with an aligner column when anything was aligned),
    its mean accuracy (± std over splits when there are several), and its costs."""
    spread = any(r.n_splits > 1 for r in summary)
    columns = [Column("extractor", lambda r: r.extractor, numeric=False, width=9)]
    if any(r.aligner != "none" for r in summary):
        columns.append(Column("aligner", lambda r: r.aligner, numeric=False, width=7))
    columns.append(Column("classifier", lambda r: r.classifier, numeric=False, width=10))
    if spread:
        columns += [
            Column(
                "accuracy ± std", lambda r: f"{r.accuracy:.4f} ± {r.accuracy_std:.4f}", width=15
            ),
            Column("splits", lambda r: str(r.n_splits), terminal=False),
        ]
    else:
        columns.append(Column("accuracy", lambda r: f"{r.accuracy:.4f}", width=15))
    return [
        *columns,
        Column("balanced acc.", lambda r: f"{r.balanced_accuracy:.4f}", terminal=False),
        Column("macro-F1", lambda r: f"{r.macro_f1:.4f}", width=8),
        Column("dim", lambda r: str(r.dim), width=6),
        Column("extract s", lambda r: f"{r.extract_s:.2f}", width=9),
        Column("fit s", lambda r: f"{r.fit_s:.2f}", width=7),
    ]


def ranking_table(summary: Sequence[MethodSummary], *, markdown: bool = False) -> str:
    """The methods ranked by mean accuracy, best first (``summary`` is in that order)."""
    columns = ranking_columns(summary)
    if not markdown:
        columns = [c for c in columns if c.terminal]
    cells = [[c.cell(r) for c in columns] for r in summary]
    if markdown:
        rank = Column("rank", str)
        rows = [[str(i), *row] for i, row in enumerate(cells, start=1)]
        return _markdown([rank, *columns], rows)
    return _plain(columns, cells, ranked=True)


def pair_table(result: EvaluationResult, *, markdown: bool = False) -> str | None:
    """The domain-pair matrix: one row per method, one column per shift and the average, in
    percent, as domain adaptation papers print it; None unless the protocol had domain pairs.

    Shifts are written with the domains' initials (``P→S``) when those are distinct, with a
    legend line."""
    matrix = result.pair_matrix()
    if matrix is None:
        return None
    shifts, table = matrix
    shifts, legend = _short_shifts(shifts, [r for r in result.rows if "source" in r])
    columns = [Column("method", lambda r: r[0], numeric=False)]
    for k, shift in enumerate(shifts):
        columns.append(Column(shift, lambda r, k=k: f"{100 * r[1][k]:.1f}", width=5))
    columns.append(Column("avg", lambda r: f"{100 * r[1][-1]:.1f}", width=5))
    rows = [[c.cell(row) for c in columns] for row in table]
    if markdown:
        text = _markdown(columns, rows)
        return f"{text}\n\n{legend}." if legend else text
    text = _plain(columns, rows)
    return f"{text}\n{legend}" if legend else text


def _short_shifts(
    shifts: list[str], rows: Sequence[Mapping[str, Any]]
) -> tuple[list[str], str | None]:
    """Shift names as the domains' initials (``P→S``) and their legend, when the initials
    are distinct and shorter than the names; otherwise the names as they are."""
    domains = list(dict.fromkeys(d for r in rows for d in (r["source"], r["target"])))
    initials = {d: str(d)[:1].upper() for d in domains}
    if len(set(initials.values())) < len(domains) or all(len(str(d)) <= 1 for d in domains):
        return shifts, None
    by_shift = {r["split"]: r for r in rows}
    short = [f"{initials[by_shift[s]['source']]}→{initials[by_shift[s]['target']]}" for s in shifts]
    return short, ", ".join(f"{v} = {d}" for d, v in initials.items())


def _plain(
    columns: Sequence[Column], rows: Sequence[Sequence[str]], *, ranked: bool = False
) -> str:
    """A plain-text table: a header, a rule, then the rows (numbered with ``ranked``), each
    column as wide as its widest cell and at least its ``width``."""
    widths = [
        max([c.width, len(c.header)] + [len(row[k]) for row in rows]) for k, c in enumerate(columns)
    ]

    def line(rank: str, texts: Sequence[str]) -> str:
        padded = " ".join(
            f"{t:>{w}}" if c.numeric else f"{t:<{w}}"
            for t, w, c in zip(texts, widths, columns, strict=True)
        )
        return f"{rank:>4}  {padded}" if ranked else padded

    header = line("rank", [c.header for c in columns])
    body = [line(str(i), row) for i, row in enumerate(rows, start=1)]
    return "\n".join([header, "-" * len(header), *body])


def _markdown(columns: Sequence[Column], rows: Sequence[Sequence[str]]) -> str:
    """A markdown table, numbers right-aligned, cells escaped."""
    lines = [
        "| " + " | ".join(escape_cell(c.header) for c in columns) + " |",
        "|" + "".join("---:|" if c.numeric else "---|" for c in columns),
    ]
    lines += ["| " + " | ".join(escape_cell(t) for t in row) + " |" for row in rows]
    return "\n".join(lines)


def escape_cell(text: Any) -> str:
    """Text safe inside a markdown table cell."""
    return str(text).replace("|", "\\|").replace("\n", " ")


def chosen_lines(rows: Sequence[Mapping[str, Any]]) -> list[tuple[str, str]]:
    """(method, "values") for the hyper-parameters chosen without the test rows: each
    method's first split when the splits are folds or draws of one data set, and every
    shift for domain pairs, where the choice (``--select``) is made per pair."""
    lines: list[tuple[str, str]] = []
    seen: set[tuple[Any, ...]] = set()
    for r in rows:
        if not r.get("chosen"):
            continue
        method = row_method(r)
        shift = f"{r['source']} → {r['target']}" if "source" in r and "target" in r else None
        key = (method, shift)
        if key in seen:
            continue
        seen.add(key)
        values = ", ".join(f"{k}={_value(v)}" for k, v in r["chosen"].items())
        lines.append((method if shift is None else f"{method}, {shift}", values))
    return lines


def _value(value: Any) -> str:
    return f"{value:.3g}" if isinstance(value, float) else str(value)


def row_method(row: Mapping[str, Any]) -> str:
    """As :func:`featkit.evaluate.rows.method_name` (the report does not import evaluate)."""
    aligner = row.get("aligner", "none")
    middle = [] if aligner == "none" else [aligner]
    return " + ".join([row["extractor"], *middle, row["classifier"]])
